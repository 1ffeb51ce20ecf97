/* bridge — stdio and legacy SSE upstreams behind a private Streamable HTTP endpoint (bridge.h).
 *
 * Per server: one backend — a link (a child on stdio, or a legacy SSE connection), initialized
 * once — that many bridge sessions (Mcp-Session-Id issued here) share; with perSession, one
 * backend per session, started by its initialize and stopped when the session ends. Over a
 * backend:
 *   - a session's request gets a fresh id for the server (also its progress token when the
 *     client gave one), mapped back on the response; notifications/cancelled is re-identified;
 *   - the response goes back as JSON, or as SSE when something for that request comes first:
 *     progress (by its token), logging (to the latest call in flight), a server→client request;
 *   - a server→client request (sampling, elicitation, roots) goes on the stream of the latest
 *     call in flight whose session declared the capability, else on the GET stream of the
 *     session of the latest call, else it is answered with an error; its id is remapped and the
 *     session's response POSTed here goes back with the server's own id; ping is answered here;
 *   - resources/subscribe is reference-counted over sessions and notifications/resources/updated
 *     reaches the GET streams of the sessions subscribed to that URI; other notifications
 *     (list_changed, ...) reach every session's GET stream;
 *   - calls older than --upstream-timeout (the gateway gave up) are cancelled and answered; a
 *     server that leaves 3 pings (upmgr's health checks) in a row unanswered is restarted;
 *   - when the link goes down, the calls in flight get JSON-RPC errors and every session on it
 *     ends (404 from then on: the gateway initializes a new one, which waits until the server is
 *     back, or gets its own new child).
 * Everything runs on the control loop; the workers reach it over loopback TCP like any upstream. */
#include "bridge.h"
#include "buf.h"
#include "jsonrpc.h"
#include "log.h"
#include "server.h"
#include "session_id.h"
#include "sse.h"
#include "up_legacy_sse.h"
#include "up_stdio.h"
#include <arpa/inet.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SECRET_LEN        64          /* hex characters of the path secret */
#define SID_BUCKETS       1024
#define TICK_MS           1000
#define KEEPALIVE_MS      15000
#define MAX_CALLS         10000       /* in flight per backend */
#define MAX_S2C           1024        /* server→client requests waiting for their answer, per backend */
#define MAX_STREAMS       8           /* GET streams per session */
#define SESSION_SLACK_S   60          /* kept this long past the gateway's idle timeout */
#define PINGS_LOST_MAX    3           /* unanswered pings in a row (upmgr's) that restart the link */

enum { B_DOWN, B_INIT, B_READY };

typedef struct bserver bserver;
typedef struct bbackend bbackend;
typedef struct bsession bsession;

typedef struct bstream {          /* a session's GET stream */
    struct bstream *prev, *next;
    bsession       *s;
    http_req       *req;
} bstream;

typedef struct bcall {            /* a session's request in flight to the server */
    struct bcall *prev, *next;    /* the backend's calls, oldest first */
    bbackend     *be;
    uint64_t      id;             /* the id the server sees; also its progress token */
    bsession     *s;              /* NULL once the session has ended */
    http_req     *req;            /* NULL once the client has gone */
    json_t       *client_id;
    json_t       *token;          /* the client's progressToken, or NULL */
    int           streaming;      /* answering as SSE */
    int           routable;       /* may carry logging and server→client requests (not ping, lists) */
    int           ping;
    uint64_t      since;          /* uv_now when sent */
} bcall;

typedef struct bs2c {             /* a server→client request waiting for its answer */
    struct bs2c *next;
    uint64_t     id;              /* the id the session sees */
    json_t      *server_id;
    bsession    *s;
    uint64_t     call;            /* the call whose stream carried it, or 0 */
} bs2c;

typedef struct bsub {             /* one session subscribed to one resource */
    struct bsub *next;
    bsession    *s;
    char         uri[];
} bsub;

struct bsession {
    char         sid[40];
    bserver     *srv;
    bbackend    *be;              /* the link it uses */
    json_t      *caps;            /* the client capabilities it declared */
    char         proto[16];
    bstream     *streams;
    size_t       n_streams;
    uint64_t     last_used;       /* uv_now */
    bsession    *hnext;           /* hash chain */
    bsession    *prev, *next;     /* the server's sessions */
};

typedef struct bwait {            /* an initialize waiting for the server to be ready */
    struct bwait *next;
    bbackend     *be;
    http_req     *req;
    json_t       *msg;
    uint64_t      since;
} bwait;

struct bbackend {                 /* one link and everything that runs over it */
    bserver             *srv;
    up_link             *link;    /* NULL once stopped */
    int                  state;
    int                  dedicated;     /* perSession: serves one session and ends with it */
    json_t              *init_result;
    char                 version[16];
    uint64_t             init_id, init_since;
    uint64_t             next_id;
    bcall               *calls, *calls_tail;
    size_t               n_calls;
    bs2c                *s2c;
    size_t               n_s2c;
    uint64_t             next_s2c;
    bsub                *subs;
    size_t               n_sessions;
    bsession            *last_session;  /* the session of the latest routable call */
    bwait               *waiting;
    int                  pings_lost;    /* pings in a row whose client gave up before the answer */
    bbackend            *prev, *next;   /* the server's backends */
};

struct bserver {
    struct bridge       *b;
    size_t               idx;     /* its server slot (config.h) */
    const gw_server_cfg *cfg;
    char                *target;  /* legacy SSE: the server's own url */
    char                *ca;      /* legacy SSE: gatewayCACertPEM of the config it came with (owned) */
    int                  added;   /* url set (bridge_add); served once started */
    int                  served;  /* enabled: has (or makes) backends */
    int                  retiring;/* a reload removed it: no new session; stopped once its calls end */
    uint64_t             retire_until;
    bbackend            *backends;      /* one, or with perSession one per session */
    size_t               n_backends;
    bsession            *sessions;
    size_t               n_sessions;
};

struct bridge {
    gateway     *gw;
    uv_loop_t   *loop;
    http_server *http;
    uv_timer_t   tick;
    uint64_t     last_keepalive;
    char         secret[SECRET_LEN + 1];
    int          port;
    bserver     *servers;     /* per server slot: capacity servers_cap, never moved */
    size_t       n;           /* slots known */
    size_t       cap;
    bsession    *hash[SID_BUCKETS];
    int          open;            /* links + http server + timer not yet closed */
    int          draining;        /* bridge_stop: calls in flight may finish, nothing new starts */
    uint64_t     drain_until;
    int          stopping;        /* everything is being closed */
};

static const char *sname(bserver *srv) { return srv->cfg->name; }
static const char *bname(bbackend *be) { return be->srv->cfg->name; }

/* ---- small helpers ----------------------------------------------------------------------------- */

static char *dump(json_t *m) { return json_dumps(m, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY); }

/* Sends one message to the server; -1 when the link refuses it. */
static int to_server(bbackend *be, json_t *m)
{
    char *s = dump(m);
    int rc = s && be->link ? up_link_send(be->link, s, strlen(s)) : -1;
    free(s);
    return rc;
}

static void error_to_server(bbackend *be, json_t *id, int code, const char *msg)
{
    json_t *m = json_pack("{s:s,s:O,s:{s:i,s:s}}", "jsonrpc", "2.0", "id", id, "error", "code", code, "message", msg);
    to_server(be, m);
    json_decref(m);
}

static void respond_error(http_req *req, int status, json_t *id, int code, const char *msg)
{
    buf b;
    buf_init(&b, 8192);
    jsonrpc_error(&b, id, code, msg);
    http_respond(req, status, NULL, "application/json", b.data, b.len);
    buf_free(&b);
}

static int id_is(json_t *id, uint64_t v) { return json_is_integer(id) && (uint64_t)json_integer_value(id) == v; }

/* ---- backends ------------------------------------------------------------------------------------ */

static void on_link_up(void *ud);
static void on_link_message(void *ud, json_t *msg);
static void on_link_down(void *ud, const char *why);
static void closed_one(struct bridge *b);

static bbackend *backend_new(bserver *srv, int dedicated)
{
    static const up_link_cb cb = {on_link_up, on_link_message, on_link_down};
    struct bridge *b = srv->b;
    const gw_config *cfg = b->gw->cfg;
    bbackend *be = calloc(1, sizeof *be);
    if (!be) return NULL;
    be->srv = srv;
    be->dedicated = dedicated;
    if (srv->cfg->transport == GW_TRANSPORT_STDIO)
        be->link = up_stdio_new(b->loop, srv->cfg, (size_t)cfg->max_upstream_response, &cb, be);
    else
        be->link = up_legacy_sse_new(b->loop, srv->cfg, srv->target, srv->ca,
                                     (size_t)cfg->max_upstream_response, &cb, be);
    if (!be->link) { free(be); return NULL; }
    b->open++;
    be->next = srv->backends;
    if (srv->backends) srv->backends->prev = be;
    srv->backends = be;
    srv->n_backends++;
    return be;
}

static void on_backend_stopped(void *arg)
{
    bbackend *be = arg;
    struct bridge *b = be->srv->b;
    json_decref(be->init_result);
    free(be);
    closed_one(b);
}

/* Stops its link for good (nothing else may point at it any more: no session, call or wait);
 * freed once the link has closed. */
static void backend_stop(bbackend *be)
{
    bserver *srv = be->srv;
    if (be->prev) be->prev->next = be->next; else srv->backends = be->next;
    if (be->next) be->next->prev = be->prev;
    srv->n_backends--;
    up_link *l = be->link;
    be->link = NULL;
    be->state = B_DOWN;
    up_link_stop(l, on_backend_stopped, be);
}

/* ---- sessions ---------------------------------------------------------------------------------- */

static unsigned sid_hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h % SID_BUCKETS;
}

static bsession *session_find(bserver *srv, const char *sid)
{
    if (!sid) return NULL;
    for (bsession *s = srv->b->hash[sid_hash(sid)]; s; s = s->hnext)
        if (s->srv == srv && !strcmp(s->sid, sid)) return s;
    return NULL;
}

static void stream_end(bstream *st)
{
    bsession *s = st->s;
    if (st->prev) st->prev->next = st->next; else s->streams = st->next;
    if (st->next) st->next->prev = st->prev;
    s->n_streams--;
    if (st->req) {
        st->req->on_abort = NULL;
        http_stream_end(st->req);
    }
    free(st);
}

/* Writes one message to the session's first GET stream. -1 when it has none. */
static int session_push(bsession *s, json_t *m)
{
    if (!s->streams) return -1;
    char *d = dump(m);
    if (!d) return -1;
    buf b;
    buf_init(&b, (size_t)1 << 30);
    sse_format(&b, NULL, NULL, d, strlen(d));
    free(d);
    int rc = http_stream_write(s->streams->req, b.data, b.len);   /* over its cap: dropped, on_abort follows */
    buf_free(&b);
    return rc < 0 ? -1 : 0;
}

static void sub_drop_session(bbackend *be, bsession *s);
static void call_fail(struct bcall *c, const char *msg);

/* Ends a session; a dedicated backend (perSession) ends with it. */
static void session_free(bsession *s, const char *why)
{
    bserver *srv = s->srv;
    bbackend *be = s->be;
    bsession **pp = &srv->b->hash[sid_hash(s->sid)];
    while (*pp && *pp != s) pp = &(*pp)->hnext;
    if (*pp) *pp = s->hnext;
    if (s->prev) s->prev->next = s->next; else srv->sessions = s->next;
    if (s->next) s->next->prev = s->prev;
    srv->n_sessions--;
    be->n_sessions--;
    while (s->streams) stream_end(s->streams);
    for (bs2c **q = &be->s2c; *q;) {        /* its server→client requests: nobody will answer */
        bs2c *r = *q;
        if (r->s != s) { q = &r->next; continue; }
        *q = r->next;
        be->n_s2c--;
        if (be->state == B_READY) error_to_server(be, r->server_id, JR_INTERNAL_ERROR, why);
        json_decref(r->server_id);
        free(r);
    }
    for (bcall *c = be->calls; c; c = c->next)
        if (c->s == s) c->s = NULL;
    if (be->last_session == s) be->last_session = NULL;
    sub_drop_session(be, s);
    json_decref(s->caps);
    free(s);
    if (be->dedicated && !be->n_sessions && !be->waiting) {
        char msg[256];
        snprintf(msg, sizeof msg, "upstream server %s: %s", bname(be), why);
        while (be->calls) call_fail(be->calls, msg);   /* nothing of this child may outlive it */
        backend_stop(be);
    }
}

static bsession *session_new(bbackend *be, json_t *caps, const char *proto)
{
    bserver *srv = be->srv;
    struct bridge *b = srv->b;
    size_t cap = (size_t)b->gw->cfg->max_sessions + 64;
    if (srv->n_sessions >= cap) {            /* full: the least recently used goes */
        bsession *lru = srv->sessions;
        for (bsession *s = srv->sessions; s; s = s->next)
            if (s->last_used < lru->last_used) lru = s;
        log_warn(sname(srv), "bridge: %zu sessions: ending the least recently used", srv->n_sessions);
        session_free(lru, "the client session ended");
    }
    bsession *s = calloc(1, sizeof *s);
    unsigned char rnd[16];
    if (!s || RAND_bytes(rnd, sizeof rnd) != 1) { free(s); return NULL; }
    for (size_t i = 0; i < sizeof rnd; i++) snprintf(s->sid + 2 * i, 3, "%02x", rnd[i]);
    s->srv = srv;
    s->be = be;
    s->caps = json_is_object(caps) ? json_deep_copy(caps) : json_object();
    snprintf(s->proto, sizeof s->proto, "%s", proto);
    s->last_used = uv_now(b->loop);
    unsigned h = sid_hash(s->sid);
    s->hnext = b->hash[h];
    b->hash[h] = s;
    s->next = srv->sessions;
    if (srv->sessions) srv->sessions->prev = s;
    srv->sessions = s;
    srv->n_sessions++;
    be->n_sessions++;
    return s;
}

/* Did the session's client declare what this server→client request needs? */
static int session_can(bsession *s, const char *method, json_t *params)
{
    if (!strcmp(method, "sampling/createMessage")) return json_object_get(s->caps, "sampling") != NULL;
    if (!strcmp(method, "roots/list")) return json_object_get(s->caps, "roots") != NULL;
    if (!strcmp(method, "elicitation/create")) {
        json_t *el = json_object_get(s->caps, "elicitation");
        const char *mode = json_string_value(json_object_get(params, "mode"));
        if (!el) return 0;
        if (mode && !strcmp(mode, "url")) return json_object_get(el, "url") != NULL;
        return 1;
    }
    return 1;
}

/* ---- resource subscriptions, counted over sessions ------------------------------------------------ */

static int sub_count(bbackend *be, const char *uri)
{
    int n = 0;
    for (bsub *u = be->subs; u; u = u->next) n += !strcmp(u->uri, uri);
    return n;
}

static bsub **sub_find(bbackend *be, bsession *s, const char *uri)
{
    bsub **pp = &be->subs;
    while (*pp && ((*pp)->s != s || strcmp((*pp)->uri, uri))) pp = &(*pp)->next;
    return pp;
}

/* A request of the bridge's own whose answer nobody waits for. */
static void fire_and_forget(bbackend *be, const char *method, json_t *params)
{
    json_t *m = json_pack("{s:s,s:I,s:s,s:o}", "jsonrpc", "2.0", "id", (json_int_t)++be->next_id, "method", method,
                          "params", params);
    to_server(be, m);
    json_decref(m);
}

static void sub_drop_session(bbackend *be, bsession *s)
{
    for (bsub **pp = &be->subs; *pp;) {
        bsub *u = *pp;
        if (u->s != s) { pp = &u->next; continue; }
        *pp = u->next;
        if (be->state == B_READY && !be->dedicated && !sub_count(be, u->uri))
            fire_and_forget(be, "resources/unsubscribe", json_pack("{s:s}", "uri", u->uri));
        free(u);
    }
}

/* ---- calls -------------------------------------------------------------------------------------- */

static void call_free(bcall *c)
{
    bbackend *be = c->be;
    if (c->prev) c->prev->next = c->next; else be->calls = c->next;
    if (c->next) c->next->prev = c->prev; else be->calls_tail = c->prev;
    be->n_calls--;
    if (c->req) c->req->on_abort = NULL;
    json_decref(c->client_id);
    json_decref(c->token);
    free(c);
}

static bcall *call_find(bbackend *be, json_t *id)
{
    if (!json_is_integer(id)) return NULL;
    for (bcall *c = be->calls_tail; c; c = c->prev)
        if (id_is(id, c->id)) return c;
    return NULL;
}

/* Sends one message (already re-identified) to the call's client; final ends the call. */
static void call_deliver(bcall *c, json_t *m, int final)
{
    http_req *req = c->req;
    if (!req) { if (final) call_free(c); return; }
    char *d = dump(m);
    if (!d) { if (final) call_free(c); return; }
    if (final && !c->streaming) {
        req->on_abort = NULL;
        c->req = NULL;
        http_respond_take(req, 200, NULL, "application/json", d, strlen(d));
        call_free(c);
        return;
    }
    if (!c->streaming) {
        c->streaming = 1;
        http_stream_begin(req, 200, "Cache-Control: no-cache\r\n", "text/event-stream");
    }
    buf b;
    buf_init(&b, (size_t)1 << 30);
    sse_format(&b, NULL, NULL, d, strlen(d));
    free(d);
    http_stream_write(req, b.data, b.len);   /* over the cap: the connection is dropped, on_abort follows */
    buf_free(&b);
    if (final) {
        req->on_abort = NULL;
        c->req = NULL;
        http_stream_end(req);
        call_free(c);
    }
}

static void call_fail(bcall *c, const char *msg)
{
    json_t *m = json_pack("{s:s,s:O,s:{s:i,s:s}}", "jsonrpc", "2.0", "id", c->client_id, "error", "code",
                          JR_INTERNAL_ERROR, "message", msg);
    call_deliver(c, m, 1);
    json_decref(m);
}

/* The client went away (or timed out): the server may stop working on it. */
static void call_abort(http_req *req)
{
    bcall *c = req->ud;
    bbackend *be = c->be;
    c->req = NULL;
    if (be->state == B_READY) {
        json_t *m = json_pack("{s:s,s:s,s:{s:I,s:s}}", "jsonrpc", "2.0", "method", "notifications/cancelled", "params",
                              "requestId", (json_int_t)c->id, "reason", "the client went away");
        to_server(be, m);
        json_decref(m);
    }
    call_free(c);
}

/* The call that should carry something the server sends without saying for which request
 * (logging, server→client requests): the latest routable one in flight whose session can take it. */
static bcall *latest_call(bbackend *be, const char *method, json_t *params)
{
    for (bcall *c = be->calls_tail; c; c = c->prev)
        if (c->req && c->routable && c->s && (!method || session_can(c->s, method, params))) return c;
    return NULL;
}

/* ---- from the server ------------------------------------------------------------------------------ */

static void answer_initialize(bbackend *be, http_req *req, json_t *msg);

static void init_done(bbackend *be, json_t *msg)
{
    json_t *result = json_object_get(msg, "result");
    if (!json_is_object(result)) {
        const char *e = json_string_value(json_object_get(json_object_get(msg, "error"), "message"));
        log_error(bname(be), "initialize failed: %s", e ? e : "no result");
        up_link_restart(be->link, "initialize failed");
        return;
    }
    json_decref(be->init_result);
    be->init_result = json_incref(result);
    const char *v = json_string_value(json_object_get(result, "protocolVersion"));
    snprintf(be->version, sizeof be->version, "%s", v ? v : "2025-11-25");
    json_t *n = json_pack("{s:s,s:s}", "jsonrpc", "2.0", "method", "notifications/initialized");
    to_server(be, n);
    json_decref(n);
    be->state = B_READY;
    json_t *info = json_object_get(result, "serverInfo");
    const char *in = json_string_value(json_object_get(info, "name")), *iv = json_string_value(json_object_get(info, "version"));
    log_info(bname(be), "bridge: ready (%s %s, protocol %s)", in ? in : "?", iv ? iv : "?", be->version);
    while (be->waiting) {
        bwait *w = be->waiting;
        be->waiting = w->next;
        w->req->on_abort = NULL;
        answer_initialize(be, w->req, w->msg);
        json_decref(w->msg);
        free(w);
    }
}

static void server_request(bbackend *be, json_t *msg)
{
    json_t *id = json_object_get(msg, "id");
    const char *method = json_string_value(json_object_get(msg, "method"));
    json_t *params = json_object_get(msg, "params");
    if (!strcmp(method, "ping")) {
        json_t *m = json_pack("{s:s,s:O,s:{}}", "jsonrpc", "2.0", "id", id, "result");
        to_server(be, m);
        json_decref(m);
        return;
    }
    bcall *c = latest_call(be, method, params);
    bsession *s = c ? c->s : be->last_session;
    char e[200];
    if (!s || (!c && !s->streams)) {
        snprintf(e, sizeof e, "no client to answer %.64s: it was sent outside any request of a client", method);
        error_to_server(be, id, JR_INTERNAL_ERROR, e);
        return;
    }
    if (!c && !session_can(s, method, params)) {
        snprintf(e, sizeof e, "the client did not declare the capability %.64s needs", method);
        error_to_server(be, id, JR_METHOD_NOT_FOUND, e);
        return;
    }
    if (be->n_s2c >= MAX_S2C) {
        error_to_server(be, id, JR_INTERNAL_ERROR, "too many requests to clients waiting for an answer");
        return;
    }
    bs2c *r = calloc(1, sizeof *r);
    if (!r) return;
    r->id = ++be->next_s2c;
    r->server_id = json_incref(id);
    r->s = s;
    r->call = c ? c->id : 0;
    r->next = be->s2c;
    be->s2c = r;
    be->n_s2c++;
    json_object_set_new(msg, "id", json_integer((json_int_t)r->id));
    if (c) call_deliver(c, msg, 0);
    else session_push(s, msg);
}

/* To the GET streams of the backend's sessions (those subscribed to uri, when given). */
static void fan_out(bbackend *be, json_t *msg, const char *uri)
{
    for (bsession *s = be->srv->sessions; s; s = s->next)
        if (s->be == be && (!uri || *sub_find(be, s, uri))) session_push(s, msg);
}

static void server_notification(bbackend *be, json_t *msg)
{
    const char *method = json_string_value(json_object_get(msg, "method"));
    json_t *params = json_object_get(msg, "params");
    if (!strcmp(method, "notifications/progress")) {
        bcall *c = call_find(be, json_object_get(params, "progressToken"));
        if (!c || !c->token) return;   /* for a call already answered or gone */
        json_object_set(params, "progressToken", c->token);
        call_deliver(c, msg, 0);
    } else if (!strcmp(method, "notifications/message")) {
        bcall *c = latest_call(be, NULL, NULL);
        if (c) call_deliver(c, msg, 0);
        else fan_out(be, msg, NULL);
    } else if (!strcmp(method, "notifications/cancelled")) {
        json_t *rid = json_object_get(params, "requestId");
        for (bs2c **q = &be->s2c; *q; q = &(*q)->next) {
            bs2c *r = *q;
            if (!json_equal(r->server_id, rid)) continue;
            json_object_set_new(params, "requestId", json_integer((json_int_t)r->id));
            bcall *c = NULL;
            for (bcall *k = be->calls; k && r->call && !c; k = k->next)
                if (k->id == r->call && k->req) c = k;
            if (c) call_deliver(c, msg, 0);
            else if (r->s) session_push(r->s, msg);
            *q = r->next;
            be->n_s2c--;
            json_decref(r->server_id);
            free(r);
            break;
        }
    } else if (!strcmp(method, "notifications/resources/updated")) {
        const char *uri = json_string_value(json_object_get(params, "uri"));
        if (uri) fan_out(be, msg, uri);
    } else {
        fan_out(be, msg, NULL);      /* list_changed and the rest */
    }
}

static void server_response(bbackend *be, json_t *msg)
{
    json_t *id = json_object_get(msg, "id");
    if (be->state == B_INIT && id_is(id, be->init_id)) { init_done(be, msg); return; }
    bcall *c = call_find(be, id);
    if (!c) return;   /* cancelled, or one of the bridge's own fire-and-forget requests */
    if (c->ping) be->pings_lost = 0;
    json_object_set(msg, "id", c->client_id);
    call_deliver(c, msg, 1);
}

static void on_link_message(void *ud, json_t *msg)
{
    bbackend *be = ud;
    const char *method = json_string_value(json_object_get(msg, "method"));
    json_t *id = json_object_get(msg, "id");
    if (be->state == B_DOWN) return;
    if (method && id) server_request(be, msg);
    else if (method) server_notification(be, msg);
    else if (id && (json_object_get(msg, "result") || json_object_get(msg, "error"))) server_response(be, msg);
    else log_debug(bname(be), "bridge: a message that is no JSON-RPC request, notification or response: dropped");
}

static void on_link_up(void *ud)
{
    bbackend *be = ud;
    be->state = B_INIT;
    be->pings_lost = 0;
    be->init_id = ++be->next_id;
    be->init_since = uv_now(be->srv->b->loop);
    json_t *m = json_pack("{s:s,s:I,s:s,s:{s:s,s:{s:{},s:{s:{},s:{}},s:{s:b}},s:{s:s,s:s}}}", "jsonrpc", "2.0", "id",
                          (json_int_t)be->init_id, "method", "initialize", "params", "protocolVersion", "2025-11-25",
                          "capabilities", "sampling", "elicitation", "form", "url", "roots", "listChanged", 1,
                          "clientInfo", "name", "mcp-gateway", "version", GW_VERSION);
    if (to_server(be, m) != 0) up_link_restart(be->link, "cannot send initialize");
    json_decref(m);
}

/* Everything that depended on the server's session ends: calls, requests to clients, sessions
 * (a dedicated backend stops with its session). */
static void backend_reset(bbackend *be, const char *why)
{
    char msg[256];
    snprintf(msg, sizeof msg, "upstream server %s: %s", bname(be), why);
    be->state = B_DOWN;
    while (be->calls) call_fail(be->calls, msg);
    while (be->s2c) {
        bs2c *r = be->s2c;
        be->s2c = r->next;
        json_decref(r->server_id);
        free(r);
    }
    be->n_s2c = 0;
    for (bsub *u = be->subs, *n; u; u = n) { n = u->next; free(u); }
    be->subs = NULL;
    json_decref(be->init_result);
    be->init_result = NULL;
    for (bsession *s = be->srv->sessions, *n; s; s = n) {
        n = s->next;
        if (s->be == be) session_free(s, msg);   /* a dedicated be stops (it is freed later) */
    }
}

static void on_link_down(void *ud, const char *why)
{
    bbackend *be = ud;
    log_warn(bname(be), "bridge: the server is down (%s): ending %zu session(s), failing %zu call(s)", why,
             be->n_sessions, be->n_calls);
    backend_reset(be, why);
}

/* ---- from the gateway (HTTP) ---------------------------------------------------------------------- */

/* The protocol version for a session: the one its client asked when the server's is not older. */
static const char *pick_version(bbackend *be, const char *asked)
{
    if (asked && (session_proto_index(asked) >= 0 || !strcmp(asked, "2024-11-05")) && strcmp(asked, be->version) <= 0)
        return asked;
    return be->version;
}

static void answer_initialize(bbackend *be, http_req *req, json_t *msg)
{
    json_t *params = json_object_get(msg, "params");
    const char *proto = pick_version(be, json_string_value(json_object_get(params, "protocolVersion")));
    bsession *s = session_new(be, json_object_get(params, "capabilities"), proto);
    if (!s) { respond_error(req, 500, json_object_get(msg, "id"), JR_INTERNAL_ERROR, "out of memory"); return; }
    json_t *result = json_deep_copy(be->init_result);
    json_object_set_new(result, "protocolVersion", json_string(proto));
    json_t *m = json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", json_object_get(msg, "id"), "result", result);
    char *d = dump(m);
    json_decref(m);
    char extra[96];
    snprintf(extra, sizeof extra, "Mcp-Session-Id: %s\r\n", s->sid);
    if (d) http_respond_take(req, 200, extra, "application/json", d, strlen(d));
    else respond_error(req, 500, NULL, JR_INTERNAL_ERROR, "out of memory");
}

/* An initialize that no longer waits: a dedicated backend nobody else needs stops. */
static void wait_free(bwait *w)
{
    bbackend *be = w->be;
    for (bwait **pp = &be->waiting; *pp; pp = &(*pp)->next)
        if (*pp == w) { *pp = w->next; break; }
    json_decref(w->msg);
    free(w);
    if (be->dedicated && !be->waiting && !be->n_sessions && be->link) backend_stop(be);
}

static void wait_abort(http_req *req) { wait_free(req->ud); }

static void wait_timeout(bwait *w, const char *why)
{
    w->req->on_abort = NULL;
    respond_error(w->req, 503, json_object_get(w->msg, "id"), JR_INTERNAL_ERROR, why);
    wait_free(w);
}

static void do_initialize(bserver *srv, http_req *req, json_t *msg)
{
    bbackend *be = srv->cfg->per_session ? NULL : srv->backends;
    if (!be) {                         /* perSession: a child of its own */
        if (srv->n_backends >= (size_t)srv->cfg->max_children) {
            char e[160];
            snprintf(e, sizeof e, "upstream server %s: %zu children already (maxChildren): try again later",
                     sname(srv), srv->n_backends);
            respond_error(req, 503, json_object_get(msg, "id"), JR_INTERNAL_ERROR, e);
            return;
        }
        if (!(be = backend_new(srv, 1))) {
            respond_error(req, 500, json_object_get(msg, "id"), JR_INTERNAL_ERROR, "cannot start the server");
            return;
        }
    }
    if (be->state == B_READY) { answer_initialize(be, req, msg); return; }
    bwait *w = calloc(1, sizeof *w);   /* until the server is (back) up */
    if (!w) { respond_error(req, 500, NULL, JR_INTERNAL_ERROR, "out of memory"); return; }
    w->be = be;
    w->req = req;
    w->msg = json_incref(msg);
    w->since = uv_now(srv->b->loop);
    w->next = be->waiting;
    be->waiting = w;
    req->ud = w;
    req->on_abort = wait_abort;
}

static int is_routable(const char *method)
{
    static const char *const no[] = {"ping", "tools/list", "prompts/list", "resources/list",
                                     "resources/templates/list", "logging/setLevel"};
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        if (!strcmp(method, no[i])) return 0;
    return 1;
}

/* resources/subscribe and unsubscribe: the server sees the first subscriber and the last one. */
static int subscription(bbackend *be, bsession *s, http_req *req, jr_msg *m)
{
    int sub = !strcmp(m->method, "resources/subscribe");
    if (!sub && strcmp(m->method, "resources/unsubscribe")) return 0;
    const char *uri = json_string_value(json_object_get(m->params, "uri"));
    if (!uri) return 0;                       /* the server says what is wrong */
    bsub **pp = sub_find(be, s, uri);
    int others = sub_count(be, uri) - (*pp != NULL);
    if (sub && !*pp) {
        bsub *u = malloc(sizeof *u + strlen(uri) + 1);
        if (u) {
            u->s = s;
            strcpy(u->uri, uri);
            u->next = be->subs;
            be->subs = u;
        }
    } else if (!sub && *pp) {
        bsub *u = *pp;
        *pp = u->next;
        free(u);
    }
    if (!others) return 0;                    /* the server is told */
    json_t *r = json_pack("{s:s,s:O,s:{}}", "jsonrpc", "2.0", "id", m->id, "result");
    char *d = dump(r);
    json_decref(r);
    if (d) http_respond_take(req, 200, NULL, "application/json", d, strlen(d));
    else respond_error(req, 500, m->id, JR_INTERNAL_ERROR, "out of memory");
    return 1;
}

static void start_call(bsession *s, http_req *req, jr_msg *m, json_t *msg)
{
    bbackend *be = s->be;
    if (be->state != B_READY) {
        respond_error(req, 503, m->id, JR_INTERNAL_ERROR, "the upstream server is restarting");
        return;
    }
    if (subscription(be, s, req, m)) return;
    if (be->n_calls >= MAX_CALLS) {
        respond_error(req, 200, m->id, JR_INTERNAL_ERROR, "too many requests in flight to this upstream server");
        return;
    }
    bcall *c = calloc(1, sizeof *c);
    if (!c) { respond_error(req, 500, m->id, JR_INTERNAL_ERROR, "out of memory"); return; }
    c->be = be;
    c->id = ++be->next_id;
    c->s = s;
    c->req = req;
    c->client_id = json_incref(m->id);
    c->routable = is_routable(m->method);
    c->ping = !strcmp(m->method, "ping");
    c->since = uv_now(be->srv->b->loop);
    json_t *meta = json_object_get(m->params, "_meta");
    json_t *token = json_object_get(meta, "progressToken");
    if (token) {
        c->token = json_incref(token);
        json_object_set_new(meta, "progressToken", json_integer((json_int_t)c->id));
    }
    json_object_set_new(msg, "id", json_integer((json_int_t)c->id));
    c->prev = be->calls_tail;
    if (be->calls_tail) be->calls_tail->next = c; else be->calls = c;
    be->calls_tail = c;
    be->n_calls++;
    if (c->routable) be->last_session = s;
    req->ud = c;
    req->on_abort = call_abort;
    if (to_server(be, msg) != 0) call_fail(c, "the upstream server does not take requests now");
}

static void session_notification(bsession *s, jr_msg *m, json_t *msg)
{
    bbackend *be = s->be;
    if (!strcmp(m->method, "notifications/initialized") || !strcmp(m->method, "notifications/progress")) return;
    if (!strcmp(m->method, "notifications/cancelled")) {
        json_t *rid = json_object_get(m->params, "requestId");
        bcall *c = NULL;   /* the oldest: should two loops of the gateway use one id, it was first */
        for (bcall *k = be->calls; k && !c; k = k->next)
            if (k->s == s && json_equal(k->client_id, rid)) c = k;
        if (!c) return;
        json_object_set_new(m->params, "requestId", json_integer((json_int_t)c->id));
    }
    to_server(be, msg);   /* roots/list_changed and the rest */
}

/* The session's answer to a server→client request: back with the server's own id. */
static void session_response(bsession *s, jr_msg *m, json_t *msg)
{
    bbackend *be = s->be;
    for (bs2c **q = &be->s2c; *q; q = &(*q)->next) {
        bs2c *r = *q;
        if (r->s != s || !id_is(m->id, r->id)) continue;
        json_object_set(msg, "id", r->server_id);
        to_server(be, msg);
        *q = r->next;
        be->n_s2c--;
        json_decref(r->server_id);
        free(r);
        return;
    }
}

static bsession *need_session(bserver *srv, http_req *req)
{
    const char *sid = http_req_header(req, "mcp-session-id");
    if (!sid) { respond_error(req, 400, NULL, JR_INVALID_REQUEST, "Bad Request: Mcp-Session-Id is required"); return NULL; }
    bsession *s = session_find(srv, sid);
    if (!s) { respond_error(req, 404, NULL, -32001, "Session not found"); return NULL; }
    s->last_used = uv_now(srv->b->loop);
    return s;
}

static void do_post(bserver *srv, http_req *req)
{
    json_t *msg = NULL;
    char err[200];
    jr_msg m;
    if (jsonrpc_parse(req->body.data ? req->body.data : "", req->body.len, &srv->b->gw->jlim, &msg, err, sizeof err)) {
        respond_error(req, 400, NULL, JR_PARSE_ERROR, err);
        return;
    }
    if (json_is_array(msg)) {
        respond_error(req, 400, NULL, JR_INVALID_REQUEST, "batches are not supported");
    } else if (jsonrpc_classify(msg, &srv->b->gw->jlim, &m, err, sizeof err)) {
        respond_error(req, 400, m.id, JR_INVALID_REQUEST, err);
    } else if (m.kind == JR_REQUEST && srv->b->draining) {
        respond_error(req, 503, m.id, JR_INTERNAL_ERROR, "the gateway is stopping");   /* answers and notifications go on */
    } else if (m.kind == JR_REQUEST && !strcmp(m.method, "initialize")) {
        do_initialize(srv, req, msg);
    } else {
        bsession *s = need_session(srv, req);
        if (s && m.kind == JR_REQUEST) {
            start_call(s, req, &m, msg);
        } else if (s) {
            if (m.kind == JR_RESPONSE) session_response(s, &m, msg);
            else session_notification(s, &m, msg);
            http_respond(req, 202, NULL, NULL, NULL, 0);
        }
    }
    json_decref(msg);
}

static void get_abort(http_req *req)
{
    bstream *st = req->ud;
    st->req = NULL;
    stream_end(st);
}

static void do_get(bserver *srv, http_req *req)
{
    bsession *s = need_session(srv, req);
    if (!s) return;
    if (s->n_streams >= MAX_STREAMS) {
        respond_error(req, 429, NULL, JR_INTERNAL_ERROR, "too many GET streams for this session");
        return;
    }
    bstream *st = calloc(1, sizeof *st);
    if (!st) { respond_error(req, 500, NULL, JR_INTERNAL_ERROR, "out of memory"); return; }
    st->s = s;
    st->req = req;
    st->next = s->streams;
    if (s->streams) s->streams->prev = st;
    s->streams = st;
    s->n_streams++;
    req->ud = st;
    req->on_abort = get_abort;
    http_stream_begin(req, 200, "Cache-Control: no-cache\r\n", "text/event-stream");
    http_stream_write(req, ": stream open\n\n", 15);
}

static void on_request(http_req *req, void *ctx)
{
    struct bridge *b = ctx;
    const char *p = req->path;
    /* /<secret>/<index>: anything else is 404, with no hint of what exists */
    if (req->path_len < SECRET_LEN + 3 || p[0] != '/' || p[SECRET_LEN + 1] != '/' ||
        CRYPTO_memcmp(p + 1, b->secret, SECRET_LEN) != 0) {
        http_respond(req, 404, NULL, "application/json", "{\"error\":\"Not Found\"}", 21);
        return;
    }
    char *end;
    unsigned long idx = strtoul(p + SECRET_LEN + 2, &end, 10);
    if (*end || end == p + SECRET_LEN + 2 || idx >= b->n || !b->servers[idx].served) {
        http_respond(req, 404, NULL, "application/json", "{\"error\":\"Not Found\"}", 21);
        return;
    }
    bserver *srv = &b->servers[idx];
    if (srv->retiring && req->method == HTTP_POST && !http_req_header(req, "mcp-session-id")) {
        http_respond(req, 404, NULL, "application/json", "{\"error\":\"Not Found\"}", 21);   /* removed by a reload */
        return;
    }
    if (b->stopping || (b->draining && req->method == HTTP_GET)) {
        respond_error(req, 503, NULL, JR_INTERNAL_ERROR, "the gateway is stopping");
        return;
    }
    switch (req->method) {
    case HTTP_POST: do_post(srv, req); break;
    case HTTP_GET: do_get(srv, req); break;
    case HTTP_DELETE: {
        bsession *s = need_session(srv, req);
        if (!s) return;
        session_free(s, "the client session ended");
        http_respond(req, 200, NULL, NULL, NULL, 0);
        break;
    }
    default:
        http_respond(req, 405, "Allow: GET, POST, DELETE\r\n", "application/json", "{\"error\":\"Method Not Allowed\"}", 30);
    }
}

/* ---- the timer: initialize and wait timeouts, idle sessions, keep-alives -------------------------- */

/* Calls older than the gateway's own --upstream-timeout (it has given up on them; the http layer
 * cannot tell a client that left from one that half-closed) are cancelled on the link and
 * answered. A ping that upmgr stopped waiting for (after at most 10 s) counts as lost: a server
 * that loses PINGS_LOST_MAX in a row is alive but deaf (a blocked event loop) and is restarted. */
static void calls_expire(bbackend *be, uint64_t now)
{
    uint64_t timeout = (uint64_t)be->srv->b->gw->cfg->upstream_timeout_ms;
    uint64_t ping_timeout = timeout < 10000 ? timeout : 10000;
    for (bcall *c = be->calls, *n; c; c = n) {
        n = c->next;
        if (now - c->since <= (c->ping ? ping_timeout : timeout) + 1000) continue;
        if (c->ping) be->pings_lost++;
        json_t *m = json_pack("{s:s,s:s,s:{s:I,s:s}}", "jsonrpc", "2.0", "method", "notifications/cancelled", "params",
                              "requestId", (json_int_t)c->id, "reason", "timed out");
        to_server(be, m);
        json_decref(m);
        call_fail(c, "the upstream server did not answer in time");
    }
    if (be->pings_lost >= PINGS_LOST_MAX) {
        be->pings_lost = 0;
        log_warn(bname(be), "bridge: %d pings in a row unanswered", PINGS_LOST_MAX);
        up_link_restart(be->link, "it does not answer ping");
    }
}

/* Stops every backend of the server: calls in flight fail, sessions end, children stop. */
static void server_stop_all(bserver *srv, const char *why)
{
    while (srv->backends) {
        bbackend *be = srv->backends;
        be->dedicated = 0;                 /* stopped below, not by its session's end */
        backend_reset(be, why);
        while (be->waiting) wait_timeout(be->waiting, why);
        backend_stop(be);
    }
}

/* A server a reload removed: stopped once its calls in flight have ended (or had their
 * --upstream-timeout). */
static void retire_check(bserver *srv, uint64_t now)
{
    size_t calls = 0;
    for (bbackend *be = srv->backends; be; be = be->next) calls += be->n_calls;
    if (calls && now < srv->retire_until) return;
    log_info(sname(srv), "bridge: stopping the removed server (%zu call(s) still in flight)", calls);
    srv->retiring = 0;
    srv->served = 0;
    server_stop_all(srv, "the server was removed from the configuration");
}

static void on_tick(uv_timer_t *t)
{
    struct bridge *b = t->data;
    uint64_t now = uv_now(b->loop);
    uint64_t timeout = (uint64_t)b->gw->cfg->upstream_timeout_ms;
    uint64_t idle = ((uint64_t)b->gw->cfg->session_idle_s + SESSION_SLACK_S) * 1000;
    int keepalive = now - b->last_keepalive >= KEEPALIVE_MS;
    if (keepalive) b->last_keepalive = now;
    for (size_t i = 0; i < b->n; i++) {
        bserver *srv = &b->servers[i];
        if (srv->retiring) retire_check(srv, now);
        for (bbackend *be = srv->backends, *nb; be; be = nb) {
            nb = be->next;
            if (be->state == B_INIT && now - be->init_since > timeout) up_link_restart(be->link, "initialize timed out");
            if (be->state == B_READY) calls_expire(be, now);
            for (bwait *w = be->waiting, *nw; w; w = nw) {     /* (the newest first) */
                nw = w->next;
                if (now - w->since > timeout) wait_timeout(w, "the upstream server is not ready");
            }
        }
        for (bsession *s = srv->sessions, *n; s; s = n) {
            n = s->next;
            int busy = s->streams != NULL;
            for (bcall *c = s->be->calls; c && !busy; c = c->next) busy = c->s == s;
            if (!busy && now - s->last_used > idle) {
                session_free(s, "the client session ended");
            } else if (keepalive) {
                for (bstream *st = s->streams, *sn; st; st = sn) {
                    sn = st->next;
                    http_stream_write(st->req, ": keep-alive\n\n", 14);
                }
            }
        }
    }
}

/* ---- start and stop ---------------------------------------------------------------------------- */

static void bridge_free(struct bridge *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->servers[i].target);
        free(b->servers[i].ca);
    }
    free(b->servers);
    free(b);
}

static void closed_one(struct bridge *b)
{
    if (--b->open == 0) bridge_free(b);
}

static void on_http_closed(http_server *s, void *arg)
{
    http_server_free(s);
    closed_one(arg);
}
static void on_tick_closed(uv_handle_t *h) { closed_one(h->data); }

static size_t calls_in_flight(struct bridge *b)
{
    size_t n = 0;
    for (size_t i = 0; i < b->n; i++)
        for (bbackend *be = b->servers[i].backends; be; be = be->next) n += be->n_calls;
    return n;
}

/* The end of the drain: everything closes. */
static void bridge_finish(struct bridge *b)
{
    if (b->stopping) return;
    b->stopping = 1;
    uv_timer_stop(&b->tick);
    for (size_t i = 0; i < b->n; i++) server_stop_all(&b->servers[i], "the gateway is stopping");
    http_server_close(b->http, on_http_closed, b);
    uv_close((uv_handle_t *)&b->tick, on_tick_closed);
}

static void on_drain_tick(uv_timer_t *t)
{
    struct bridge *b = t->data;
    size_t n = calls_in_flight(b);
    if (n && uv_now(b->loop) < b->drain_until) return;
    if (n) log_warn(NULL, "bridge: drain timeout: failing %zu call(s) still in flight", n);
    bridge_finish(b);
}

void bridge_stop(struct bridge *b)
{
    if (!b || b->draining) return;
    b->draining = 1;       /* like the workers: the calls in flight finish, within their upstream timeout */
    b->drain_until = uv_now(b->loop) + (uint64_t)b->gw->cfg->upstream_timeout_ms + 1000;
    for (size_t i = 0; i < b->n; i++)
        for (bbackend *be = b->servers[i].backends; be; be = be->next)
            while (be->waiting) wait_timeout(be->waiting, "the gateway is stopping");
    if (!calls_in_flight(b)) { bridge_finish(b); return; }
    uv_timer_stop(&b->tick);
    uv_timer_start(&b->tick, on_drain_tick, 50, 50);
}

/* libcurl sends to a proxy named in the environment unless NO_PROXY exempts the host: the
 * bridge's secret URL must stay on loopback. Called before any thread starts (setenv). */
static void no_proxy_for_loopback(void)
{
    static const char *const proxies[] = {"http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"};
    int any = 0;
    for (size_t i = 0; i < 4; i++) any |= getenv(proxies[i]) && *getenv(proxies[i]);
    if (!any) return;
    static const char *const vars[] = {"no_proxy", "NO_PROXY"};
    for (size_t i = 0; i < 2; i++) {
        const char *v = getenv(vars[i]);
        char nv[4096];
        if (v && *v) snprintf(nv, sizeof nv, "%s,127.0.0.1", v);
        else snprintf(nv, sizeof nv, "127.0.0.1");
        setenv(vars[i], nv, 1);
    }
}

/* Listens on 127.0.0.1 (a random port); no server yet. */
static struct bridge *bridge_new(gateway *gw, uv_loop_t *loop, char *err, size_t errlen)
{
    const gw_config *cfg = gw->cfg;
    struct bridge *b = calloc(1, sizeof *b);
    if (!b) { snprintf(err, errlen, "bridge: out of memory"); return NULL; }
    b->gw = gw;
    b->loop = loop;
    b->cap = cfg->servers_cap > cfg->n_servers ? cfg->servers_cap : cfg->n_servers;
    b->servers = calloc(b->cap ? b->cap : 1, sizeof *b->servers);
    unsigned char rnd[SECRET_LEN / 2];
    if (!b->servers || RAND_bytes(rnd, sizeof rnd) != 1) {
        snprintf(err, errlen, "bridge: cannot draw its secret");
        bridge_free(b);
        return NULL;
    }
    for (size_t i = 0; i < sizeof rnd; i++) snprintf(b->secret + 2 * i, 3, "%02x", rnd[i]);
    OPENSSL_cleanse(rnd, sizeof rnd);

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    in4->sin_family = AF_INET;
    in4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    in4->sin_port = 0;
    char lerr[256];
    int fd = server_listen(&ss, lerr, sizeof lerr);
    socklen_t sl = sizeof ss;
    if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        snprintf(err, errlen, "bridge: %s", fd < 0 ? lerr : "getsockname failed");
        if (fd >= 0) close(fd);
        bridge_free(b);
        return NULL;
    }
    b->port = ntohs(in4->sin_port);
    size_t big = (size_t)(cfg->max_upstream_response > cfg->max_request_body ? cfg->max_upstream_response
                                                                              : cfg->max_request_body);
    http_limits lim = {
        .max_header_size = 65536, .max_headers = 100, .max_url = 4096, .max_body = big,
        .max_write_queue = big * 4, .header_timeout_ms = 10000, .body_timeout_ms = 30000,
        .idle_timeout_ms = 300000,
    };
    b->http = http_server_new(loop, &lim, on_request, b);
    if (!b->http || http_server_listen_fd(b->http, fd) != 0) {
        snprintf(err, errlen, "bridge: cannot serve on 127.0.0.1:%d", b->port);
        return NULL;   /* at start the process exits; a reload that fails here leaves it behind */
    }
    b->open = 2;   /* the http server and the timer */
    uv_timer_init(loop, &b->tick);
    b->tick.data = b;
    uv_timer_start(&b->tick, on_tick, TICK_MS, TICK_MS);
    b->last_keepalive = uv_now(loop);
    return b;
}

/* Gives slot i (stdio or legacy SSE) its bridge url; the bridge takes the legacy url. */
static int server_add(struct bridge *b, gw_server_cfg *sc, size_t i, const char *gateway_ca)
{
    if (i >= b->cap) return -1;
    bserver *srv = &b->servers[i];
    srv->b = b;
    srv->idx = i;
    srv->cfg = sc;
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/%s/%zu", b->port, b->secret, i);
    char *ca = gateway_ca ? strdup(gateway_ca) : NULL, *own = strdup(url);
    if (!own || (gateway_ca && !ca)) {
        free(ca);
        free(own);
        return -1;
    }
    srv->target = sc->url;             /* the legacy SSE url, now the bridge's */
    sc->written_url = srv->target;
    srv->ca = ca;
    sc->url = own;
    srv->added = 1;
    if (b->n <= i) b->n = i + 1;
    return 0;
}

/* Starts serving slot i: its shared child (or legacy connection) now, per-session ones later. */
static int server_start(bserver *srv)
{
    const gw_server_cfg *sc = srv->cfg;
    if (!srv->added || srv->served || !sc->enabled || !gw_server_live(sc)) return 0;
    srv->served = 1;
    if (!sc->per_session && !backend_new(srv, 0)) return -1;
    log_info(sc->name, "bridge: %s server behind the bridge%s", sc->transport == GW_TRANSPORT_STDIO ? "stdio" : "legacy SSE",
             sc->per_session ? " (a child per client session)" : "");
    return 0;
}

int bridge_start(gateway *gw, uv_loop_t *loop, struct bridge **out, char *err, size_t errlen)
{
    gw_config *cfg = gw->cfg;
    *out = NULL;
    no_proxy_for_loopback();   /* now, before any thread: a reload may need the bridge later */
    size_t needed = 0;
    for (size_t i = 0; i < cfg->n_servers; i++) needed += cfg->servers[i].transport != GW_TRANSPORT_HTTP;
    if (!needed) return 0;
    struct bridge *b = bridge_new(gw, loop, err, errlen);
    if (!b) return -1;
    for (size_t i = 0; i < cfg->n_servers; i++) {
        gw_server_cfg *sc = &cfg->servers[i];
        if (sc->transport == GW_TRANSPORT_HTTP) continue;
        if (server_add(b, sc, i, cfg->gateway_ca_pem) != 0) { snprintf(err, errlen, "bridge: out of memory"); return -1; }
        if (server_start(&b->servers[i]) != 0) {
            snprintf(err, errlen, "bridge: cannot start server %s", sc->name);
            return -1;
        }
    }
    *out = b;
    return 0;
}

int bridge_add(struct bridge **bp, gateway *gw, uv_loop_t *loop, gw_server_cfg *sc, size_t slot,
               const char *gateway_ca, char *err, size_t errlen)
{
    if (!*bp && !(*bp = bridge_new(gw, loop, err, errlen))) return -1;
    if ((*bp)->draining || server_add(*bp, sc, slot, gateway_ca) != 0) {
        snprintf(err, errlen, "bridge: cannot take server %s", sc->name);
        return -1;
    }
    return 0;
}

void bridge_forget(struct bridge *b, size_t slot)
{
    if (!b || slot >= b->cap || b->servers[slot].served) return;
    bserver *srv = &b->servers[slot];
    free(srv->target);
    free(srv->ca);
    memset(srv, 0, sizeof *srv);
}

void bridge_reload(struct bridge *b, int start)
{
    if (!b || b->draining) return;
    uint64_t now = uv_now(b->loop);
    for (size_t i = 0; i < b->n; i++) {
        bserver *srv = &b->servers[i];
        if (srv->added && !srv->retiring && !gw_server_live(srv->cfg)) {
            srv->added = 0;
            if (!srv->served) continue;
            srv->retiring = 1;   /* its calls in flight may finish (on_tick) */
            srv->retire_until = now + (uint64_t)b->gw->cfg->upstream_timeout_ms + 1000;
            log_info(sname(srv), "bridge: removed by the reload: no new sessions; stopped once its calls end");
            retire_check(srv, now);
        } else if (start && srv->added && server_start(srv) != 0) {
            log_error(sname(srv), "bridge: cannot start the server");
        }
    }
}
