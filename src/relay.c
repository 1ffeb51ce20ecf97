/* relay — one client request forwarded to the upstream that owns it, the answer relayed back
 * as it streams. Steps: find (or create) this session's upstream session — initialize and
 * notifications/initialized on first use, again when the upstream has forgotten it —, POST the
 * request with the gateway's own id, then relay: a JSON answer is re-identified and sent as
 * application/json; an SSE answer opens an SSE response to the client at its first interim
 * message (progress, logging), each event passed through, the final response re-identified.
 * Before the first upstream request the upstream's credential is chosen (upcred.h: static,
 * client credentials, the caller's exchanged or forwarded token), which may wait for the IdP;
 * a 401 drops that credential and tries once more with a fresh one. */
#include "relay.h"
#include "catalog.h"
#include "log.h"
#include "mcp.h"
#include "redis.h"
#include "sse.h"
#include "streams.h"
#include "up_rpc.h"
#include "upcred.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { RL_INIT, RL_NOTIFY, RL_CALL };

typedef struct relay {
    worker        *w;
    http_req      *req;          /* NULL once the client is gone */
    gw_server_cfg *srv;   /* only srv->inflight is written (atomically) */
    size_t         server;
    char           gw_sid[SESSION_ID_MAX];
    char           up_sid[192];  /* "<version> <session id>" as stored in the session table */
    const char    *up_version;   /* points into up_sid */
    const char    *up_session;   /* points into up_sid */
    uint8_t        proto;
    uint32_t       client_caps;  /* SESSION_CAP_*: what the upstream may ask the client for */
    char           inflight[300];/* "c:<client id>" registered for notifications/cancelled, or "" */
    json_t        *msg;          /* the client's message, id replaced (owned) */
    json_t        *client_id;    /* owned */
    uint64_t       up_id;
    int            step;
    int            retried;
    long           status;
    int            sse;          /* upstream answers with SSE */
    int            streaming;    /* client SSE response open */
    int            answered;
    int            paused;       /* upstream reads paused while the client's queue drains */
    int            detached;     /* the client left mid-stream: events go to the store (resumption) */
    char           stream_id[24];/* of the SSE response, for event ids */
    uint64_t       seq;
    int            in_cb;        /* inside one of our callbacks: an abort only marks req NULL */
    upcred_who     who;          /* the caller, for per-caller credentials */
    char          *auth;         /* Authorization for this upstream (owned) or NULL */
    int            auth_ready;   /* auth is chosen */
    int            auth_retried; /* a 401 already got a fresh credential */
    upcred_op     *cred_op;      /* waiting for the credential */
    redis_op      *redis_op;     /* waiting for the session's shared state (redis.h) */
    up_rpc        *rpc;
    up_call       *call;
    buf            body;
    sse_parser     parser;
    trace_call     tc;           /* request id, trace context, tool call metrics (trace.h) */
} relay;

static void relay_step(relay *r);

static void relay_free(relay *r)
{
    trace_call_end(&r->tc, r->status);
    __atomic_sub_fetch(&r->srv->inflight, 1, __ATOMIC_RELAXED);
    if (r->inflight[0])
        session_pending_get(r->w->gw->sessions, r->gw_sid, r->inflight, NULL, NULL, 0, 1);
    upcred_cancel(r->cred_op);
    redis_cancel(r->redis_op);
    free(r->auth);
    json_decref(r->msg);
    json_decref(r->client_id);
    buf_free(&r->body);
    sse_parser_free(&r->parser);
    free(r);
}

/* The client went away: stop the upstream work. */
static void on_abort(http_req *req)
{
    relay *r = req->ud;
    r->req = NULL;
    if (r->streaming && !r->answered) {
        /* the client lost its SSE response: the call goes on, its events are kept for the
         * client to resume with Last-Event-ID (and follow on its GET stream) */
        r->detached = 1;
        if (r->paused && r->call) { r->paused = 0; up_call_pause(r->call, 0); }
        return;
    }
    if (r->in_cb) return;        /* the callback on the stack sees req == NULL and cleans up */
    if (r->cred_op) { upcred_cancel(r->cred_op); r->cred_op = NULL; }
    if (r->rpc) { up_rpc_cancel(r->rpc); r->rpc = NULL; }
    if (r->call) { up_call_cancel(r->call); r->call = NULL; }
    relay_free(r);
}

static void on_drain(http_req *req)
{
    relay *r = req->ud;
    if (r->paused && r->call) {
        r->paused = 0;
        up_call_pause(r->call, 0);
    }
}

static void relay_message(relay *r, json_t *m, int final);

/* The call ends with a JSON-RPC error naming the server. */
static void relay_error(relay *r, int code, const char *fmt, const char *arg)
{
    trace_call_outcome(&r->tc, r->req, NULL);
    char msg[512];
    snprintf(msg, sizeof msg, fmt, r->srv->name, arg ? arg : "");
    buf e;
    buf_init(&e, 4096);
    jsonrpc_error(&e, r->client_id, code, msg);
    json_t *m = json_loadb(e.data, e.len, 0, NULL);
    buf_free(&e);
    if (m) relay_message(r, m, 1);
    json_decref(m);
    r->answered = 1;
}

/* Sends one upstream message (already re-identified) to the client. */
static void relay_message(relay *r, json_t *m, int final)
{
    if (!r->req && !r->detached) return;
    char *s = json_dumps(m, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    if (!s) return;
    if (final && !r->streaming) {
        r->req->on_abort = NULL;
        mcp_reply(r->w, r->req, 200, "application/json", s, strlen(s), NULL);
        r->req = NULL;
        free(s);
        return;
    }
    if (!r->streaming) {
        char extra[512];
        mcp_extra_headers(r->w, r->req, extra, sizeof extra, NULL);
        strncat(extra, "Cache-Control: no-cache\r\n", sizeof extra - strlen(extra) - 1);
        http_stream_begin(r->req, 200, extra, "text/event-stream");
        r->streaming = 1;
        streams_new_id(r->w, 'p', r->stream_id);
        if (r->proto >= 2) {   /* 2025-11-25: an id to resume from before anything else */
            char prime[80];
            int pn = snprintf(prime, sizeof prime, "id: %s/0\nretry: 1000\ndata: \n\n", r->stream_id);
            http_stream_write(r->req, prime, (size_t)pn);
        }
    }
    /* every event has an id and is kept, so that a client that loses the stream resumes */
    size_t len = strlen(s);
    buf b;
    buf_init(&b, len + 128);
    buf_printf(&b, "id: %s/%llu\ndata: ", r->stream_id, (unsigned long long)++r->seq);
    buf_append(&b, s, len);
    buf_append(&b, "\n\n", 2);
    int wi;
    uint64_t tok;
    session_event_add(r->w->gw->sessions, r->gw_sid, r->stream_id, r->seq, s, len, &wi, &tok);
    redis_note_event(r->w, r->gw_sid, r->stream_id, r->seq, s, len);
    free(s);
    if (!r->req) {   /* detached: to the session's GET stream, wherever it is */
        if (wi >= 0) streams_deliver(r->w->gw, wi, tok, b.data, b.len);
        buf_free(&b);
        return;
    }
    int rc = http_stream_write(r->req, b.data, b.len);
    buf_free(&b);
    if (rc < 0) return;   /* the client is being dropped: on_abort follows */
    if (!final && r->call && !r->paused && http_req_queued(r->req) > (size_t)r->w->gw->cfg->max_client_queue / 2) {
        r->paused = 1;   /* back-pressure: stop reading the upstream until the client drains */
        up_call_pause(r->call, 1);
    }
    if (final) {
        r->req->on_abort = NULL;
        http_stream_end(r->req);
        r->req = NULL;
    }
}

/* One message from the upstream: the response to our request, or something before it. */
static void relay_upstream_msg(relay *r, const char *data, size_t len)
{
    json_t *m = json_loadb(data, len, 0, NULL);
    if (!json_is_object(m)) { json_decref(m); return; }
    json_t *id = json_object_get(m, "id");
    jr_msg jm;
    char why[200];
    if (jsonrpc_classify(m, NULL, &jm, why, sizeof why) != 0) {
        /* checked like a client's message: a broken answer to this call becomes the gateway's
         * own error (never relayed as it came); anything else broken is dropped */
        log_warn(r->srv->name, "invalid JSON-RPC message from the upstream dropped: %s", why);
        if (!json_object_get(m, "method") && json_is_integer(id) && (uint64_t)json_integer_value(id) == r->up_id) {
            char arg[240];
            snprintf(arg, sizeof arg, " (%s)", why);
            relay_error(r, JR_INTERNAL_ERROR, "upstream server %s sent an invalid response%s", arg);
        }
        json_decref(m);
        return;
    }
    int is_resp = !json_object_get(m, "method") && (json_object_get(m, "result") || json_object_get(m, "error"));
    if (!is_resp && id && json_object_get(m, "method")) {
        /* a request from the upstream (sampling, elicitation, roots): the client answers it by
         * a POST of its own, which mcp.c routes back through the session's pending map */
        worker *w = r->w;
        uint64_t gid = worker_next_id(w);
        char key[40], *orig = json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT);
        snprintf(key, sizeof key, "s:%llu", (unsigned long long)gid);
        if (orig && session_pending_put(w->gw->sessions, r->gw_sid, key, r->server, orig) == 0) {
            redis_note_pending(w, r->gw_sid, gid, r->server, r->up_version, r->up_session, orig);   /* answered anywhere */
            json_object_set_new(m, "id", json_integer((json_int_t)gid));
            relay_message(r, m, 0);
        } else {
            log_warn(r->srv->name, "server-to-client request dropped: too many pending for this session");
        }
        free(orig);
    } else if (is_resp) {
        if (json_is_integer(id) && (uint64_t)json_integer_value(id) == r->up_id) {
            trace_call_outcome(&r->tc, r->req, m);
            json_object_set(m, "id", r->client_id);
            r->answered = 1;
            relay_message(r, m, 1);
        }
    } else if (!catalog_owns_notification(json_string_value(json_object_get(m, "method")))) {
        /* notifications (progress: the token is the client's own, untouched); list_changed is
         * announced by the gateway once its own list has changed (catalog.h) */
        relay_message(r, m, 0);
    }
    json_decref(m);
}

static void on_sse_event(void *ud, const char *event, const char *data, size_t len, const char *id)
{
    relay *r = ud;
    if (strcmp(event, "message") == 0 && len) relay_upstream_msg(r, data, len);
}

static void on_head(up_call *c, void *ud, long status, const char *ctype, const char *sid)
{
    relay *r = ud;
    r->status = status;
    r->sse = ctype && strncmp(ctype, "text/event-stream", 17) == 0;
}

static void on_data(up_call *c, void *ud, const char *d, size_t n)
{
    relay *r = ud;
    if (r->status < 200 || r->status >= 300) return;   /* error bodies are not relayed */
    r->in_cb = 1;
    if (r->sse) {
        if (sse_parser_feed(&r->parser, d, n)) relay_error(r, JR_INTERNAL_ERROR, "upstream %s: event too large%s", "");
    } else if (buf_append(&r->body, d, n)) {
        relay_error(r, JR_INTERNAL_ERROR, "upstream %s: response too large%s", "");
    }
    if ((!r->req && !r->detached) || r->answered) {   /* done with this call */
        r->call = NULL;
        up_call_cancel(c);
        relay_free(r);
        return;
    }
    r->in_cb = 0;
}

/* The upstream refused the credential (401/403). After a 401, once, the credential is dropped and
 * the step sent again with a fresh one; otherwise the call ends with an error naming the server
 * (never the upstream's body). The relay is gone or waiting again when this returns. */
static void auth_refused(relay *r, long status)
{
    if (status == 401 && !r->auth_retried && upcred_rejected(r->w->gw, &r->w->loop, r->server, &r->who, r->auth)) {
        r->auth_retried = 1;
        free(r->auth);
        r->auth = NULL;
        r->auth_ready = 0;
        buf_reset(&r->body);
        relay_step(r);
        return;
    }
    char st[16];
    snprintf(st, sizeof st, "%ld", status);
    relay_error(r, JR_INTERNAL_ERROR,
                status == 401 ? "authentication to upstream server %s failed (HTTP %s)"
                              : "upstream server %s refused the gateway's credential (HTTP %s)", st);
    relay_free(r);
}

static void on_done(up_call *c, void *ud, const char *err)
{
    relay *r = ud;
    trace_call_done(&r->tc, r->status, err);
    r->call = NULL;
    r->in_cb = 1;
    if (!r->req && !r->detached) { relay_free(r); return; }
    if (!err && (r->status == 401 || r->status == 403) && !r->streaming) { auth_refused(r, r->status); return; }
    if (!err && (r->status == 404 || (r->status == 400 && r->up_session)) && !r->retried && !r->streaming) {
        /* the upstream no longer knows the session: a new one, then the call again, once */
        r->retried = 1;
        session_set_upstream(r->w->gw->sessions, r->gw_sid, r->server, NULL);
        r->up_sid[0] = '\0';
        r->up_session = r->up_version = NULL;
        r->step = RL_INIT;
        buf_reset(&r->body);
        relay_step(r);
        return;
    }
    if (err) relay_error(r, JR_INTERNAL_ERROR, "upstream server %s unavailable: %s", err);
    else if (r->status < 200 || r->status >= 300) {
        char st[32];
        snprintf(st, sizeof st, "%ld", r->status);
        relay_error(r, JR_INTERNAL_ERROR, "upstream server %s answered HTTP %s", st);
    } else if (!r->sse) {
        relay_upstream_msg(r, r->body.data ? r->body.data : "", r->body.len);
        if (!r->answered) relay_error(r, JR_INTERNAL_ERROR, "upstream server %s sent no valid response%s", "");
    } else if (!r->answered) {
        relay_error(r, JR_INTERNAL_ERROR, "upstream server %s ended its stream without a response%s", "");
    }
    relay_free(r);
}

static const up_callbacks relay_cb = {on_head, on_data, on_done};

static void up_base(relay *r, up_req *u)
{
    const gw_config *cfg = r->w->gw->cfg;
    memset(u, 0, sizeof *u);
    u->url = r->srv->url;
    u->session_id = r->up_session;
    u->protocol_version = r->up_version;
    u->authorization = r->auth;
    u->timeout_ms = cfg->upstream_timeout_ms;
    u->max_body = (size_t)cfg->max_upstream_response;
    upcred_prepare(cfg, r->server, u);   /* CAs, client certificate, extra headers */
}

static void split_up_sid(relay *r)
{
    char *sp = strchr(r->up_sid, ' ');
    if (!sp) { r->up_sid[0] = '\0'; return; }
    *sp = '\0';
    r->up_version = r->up_sid;
    r->up_session = *(sp + 1) ? sp + 1 : NULL;
}

static void ignore_answer(void *ud, json_t *resp, const char *err, long status, const char *sid) {}

/* ---- messages outside the call path: sent once their credential is known ---------------------- */

typedef struct later {
    worker      *w;
    size_t       server;
    upcred_who   who;
    upcred_op   *op;
    int          del;         /* DELETE the upstream session, nobody waits */
    char        *body;        /* a message to POST, nobody waits (owned); or NULL for an rpc: */
    json_t      *params;      /* its params (owned) */
    up_rpc_fn    fn;          /* its answer; always called */
    void        *ud;
    char         version[32];
    char         session[160];
} later;

static void later_free(later *l)
{
    upcred_cancel(l->op);
    free(l->body);
    json_decref(l->params);
    free(l);
}

static void later_send(later *l, const char *auth)
{
    worker *w = l->w;
    up_req u = {.url = w->gw->cfg->servers[l->server].url, .session_id = l->session[0] ? l->session : NULL,
                .protocol_version = l->version, .authorization = auth,
                .timeout_ms = w->gw->cfg->upstream_timeout_ms, .max_body = 1 << 20};
    upcred_prepare(w->gw->cfg, l->server, &u);
    if (l->del) {
        static const up_callbacks none = {NULL, NULL, NULL};
        u.method = "DELETE";
        u.timeout_ms = 5000;
        upclient_send(w->up, &u, &none, NULL);
        return;
    }
    if (l->body) {
        static const up_callbacks none = {NULL, NULL, NULL};
        u.method = "POST";
        u.body = l->body;
        u.body_len = strlen(l->body);
        upclient_send(w->up, &u, &none, NULL);
        return;
    }
    json_t *params = l->params;
    l->params = NULL;
    if (!up_rpc_send(w->up, &u, "logging/setLevel", params, worker_next_id(w), l->fn, l->ud))
        l->fn(l->ud, NULL, "could not send", 0, NULL);
}

static void later_fail(later *l, const char *err)
{
    if (l->body || l->del) log_warn(l->w->gw->cfg->servers[l->server].name, "message to the upstream dropped: %s", err);
    else l->fn(l->ud, NULL, err, 0, NULL);
}

static void later_cred(void *ud, char *auth, const char *err)
{
    later *l = ud;
    l->op = NULL;
    if (err) later_fail(l, err);
    else later_send(l, auth);
    free(auth);
    later_free(l);
}

/* Sends l (taken) now, or when its credential is known. */
static void later_go(later *l)
{
    char *auth = NULL, err[256];
    int rc = upcred_get(l->w->gw, &l->w->loop, &l->w->up, l->server, &l->who, &auth, err, sizeof err, later_cred, l,
                        &l->op);
    if (rc == UPCRED_PENDING) return;
    if (rc == UPCRED_READY) later_send(l, auth);
    else later_fail(l, err);
    free(auth);
    later_free(l);
}

static later *later_new(worker *w, size_t server, const upcred_who *who, const char *version, const char *up_session)
{
    later *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->w = w;
    l->server = server;
    if (who) l->who = *who;
    snprintf(l->version, sizeof l->version, "%s", version ? version : "");
    snprintf(l->session, sizeof l->session, "%s", up_session ? up_session : "");
    return l;
}

/* logging/setLevel to one upstream session; fn always gets the answer (or ignore_answer). */
static void send_level(worker *w, size_t server, const upcred_who *who, const char *version, const char *up_session,
                       const char *level, up_rpc_fn fn, void *ud)
{
    later *l = later_new(w, server, who, version, up_session);
    if (!l) { fn(ud, NULL, "out of memory", 0, NULL); return; }
    l->params = json_pack("{s:s}", "level", level);
    l->fn = fn;
    l->ud = ud;
    later_go(l);
}

/* logging/setLevel answered once every upstream session of the client's session has it, so
 * that a call right after already runs at the new level. */
typedef struct level_fanout {
    worker   *w;
    http_req *req;       /* NULL once the client is gone */
    json_t   *id;
    int       pending;
} level_fanout;

static void level_finish(level_fanout *lf)
{
    if (lf->req) {
        lf->req->on_abort = NULL;
        char *ids = json_dumps(lf->id, JSON_ENCODE_ANY | JSON_COMPACT);
        char body[400];
        int n = snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{}}", ids ? ids : "null");
        free(ids);
        mcp_reply(lf->w, lf->req, 200, "application/json", body, (size_t)n, NULL);
    }
    json_decref(lf->id);
    free(lf);
}

static void level_answer(void *ud, json_t *resp, const char *err, long status, const char *sid)
{
    level_fanout *lf = ud;
    if (--lf->pending == 0) level_finish(lf);
}

static void level_abort(http_req *req)
{
    ((level_fanout *)req->ud)->req = NULL;
}

void relay_set_level_all(worker *w, http_req *req, json_t *id, const char *gw_sid, const char *level)
{
    level_fanout *lf = calloc(1, sizeof *lf);
    if (!lf) { mcp_reply_error(w, req, 500, id, JR_INTERNAL_ERROR, "out of memory"); return; }
    lf->w = w;
    lf->req = req;
    lf->id = json_incref(id);
    lf->pending = 1;   /* held until every send is out */
    req->ud = lf;
    req->on_abort = level_abort;
    upcred_who who = {0};
    int have_who = 0;
    for (size_t i = 0; i < w->gw->cfg->n_servers; i++) {
        char stored[192];
        if (session_get_upstream(w->gw->sessions, gw_sid, i, stored, sizeof stored) != 0) continue;
        char *sp = strchr(stored, ' ');
        if (!sp) continue;
        *sp = '\0';
        if (!have_who && upcred_needs_caller(w->gw->cfg, i)) {
            upcred_caller(w->gw, req, NULL, gw_sid, &who);
            have_who = 1;
        }
        lf->pending++;
        send_level(w, i, &who, stored, sp[1] ? sp + 1 : NULL, level, level_answer, lf);
    }
    if (--lf->pending == 0) level_finish(lf);
}

static void on_notified(void *ud, json_t *resp, const char *err, long status, const char *sid)
{
    relay *r = ud;
    trace_call_done(&r->tc, status, err);
    r->rpc = NULL;
    r->in_cb = 1;
    if (!r->req) { relay_free(r); return; }
    if (status == 401 || status == 403) { auth_refused(r, status); return; }
    if (err) { relay_error(r, JR_INTERNAL_ERROR, "upstream server %s: initialization failed: %s", err); relay_free(r); return; }
    /* remember it for the session's next calls: "<version> <session id>" */
    char stored[192];
    snprintf(stored, sizeof stored, "%s %s", r->up_version, r->up_session ? r->up_session : "");
    session_set_upstream(r->w->gw->sessions, r->gw_sid, r->server, stored);
    redis_note_upstream(r->w, r->gw_sid, r->server, stored);   /* for the other replicas */
    char level[16];
    if (session_get_level(r->w->gw->sessions, r->gw_sid, level, sizeof level) == 0)
        send_level(r->w, r->server, &r->who, r->up_version, r->up_session, level, ignore_answer, NULL);
    int wi;
    uint64_t tok;   /* the session's GET stream relays this upstream's own stream from now on */
    if (r->up_session && session_get_get(r->w->gw->sessions, r->gw_sid, &wi, &tok) == 0)
        streams_open_upstream(r->w->gw, wi, tok, r->server);
    r->step = RL_CALL;
    relay_step(r);
}

static void on_initialized(void *ud, json_t *resp, const char *err, long status, const char *sid)
{
    relay *r = ud;
    trace_call_done(&r->tc, status, err);
    r->rpc = NULL;
    r->in_cb = 1;
    if (!r->req) { relay_free(r); return; }
    json_t *result = json_object_get(resp, "result");
    if (!json_is_object(result) && (status == 401 || status == 403)) { auth_refused(r, status); return; }
    if (!json_is_object(result)) {
        relay_error(r, JR_INTERNAL_ERROR, "upstream server %s: initialize failed: %s", err ? err : "error answer");
        relay_free(r);
        return;
    }
    const char *v = json_string_value(json_object_get(result, "protocolVersion"));
    if (!v || session_proto_index(v) < 0) v = session_proto_name(r->proto);
    snprintf(r->up_sid, sizeof r->up_sid, "%s %s", v, sid ? sid : "");
    split_up_sid(r);
    r->step = RL_NOTIFY;
    relay_step(r);
}

/* The credential is known: the step it waited for goes on. */
static void on_cred(void *ud, char *auth, const char *err)
{
    relay *r = ud;
    r->cred_op = NULL;
    r->in_cb = 1;
    log_req prev = trace_call_log(&r->tc);   /* this comes from the credential's fetch, not the call */
    if (!r->req && !r->detached) { free(auth); relay_free(r); }
    else if (err) {
        free(auth);
        relay_error(r, JR_INTERNAL_ERROR, "authentication to upstream server %s failed: %s", err);
        relay_free(r);
    } else {
        free(r->auth);
        r->auth = auth;
        r->auth_ready = 1;
        relay_step(r);
    }
    log_request(prev.id, prev.trace_id);
}

static void relay_step(relay *r)
{
    worker *w = r->w;
    if (!r->auth_ready) {   /* the upstream's credential first (may wait for the IdP) */
        char err[256];
        int rc = upcred_get(w->gw, &w->loop, &w->up, r->server, &r->who, &r->auth, err, sizeof err, on_cred, r,
                            &r->cred_op);
        if (rc == UPCRED_PENDING) { r->in_cb = 0; return; }
        if (rc == UPCRED_FAILED) {
            relay_error(r, JR_INTERNAL_ERROR, "authentication to upstream server %s failed: %s", err);
            relay_free(r);
            return;
        }
        r->auth_ready = 1;
    }
    up_req u;
    up_base(r, &u);
    static const char *const step_method[] = {"initialize", "notifications/initialized", NULL};   /* NULL: the client's */
    trace_call_send(&r->tc, &u, step_method[r->step], r->msg);   /* ids, traceparent, a CLIENT span */
    switch (r->step) {
    case RL_INIT: {
        u.session_id = u.protocol_version = NULL;
        /* the client's own capabilities: the upstream may ask for sampling, elicitation and
         * roots only when the client can answer */
        json_t *caps = json_object();
        if (r->client_caps & SESSION_CAP_SAMPLING) json_object_set_new(caps, "sampling", json_object());
        if (r->client_caps & SESSION_CAP_ELICITATION) {
            json_t *el = json_object();
            if (r->client_caps & SESSION_CAP_ELICITATION_URL) {
                json_object_set_new(el, "form", json_object());
                json_object_set_new(el, "url", json_object());
            }
            json_object_set_new(caps, "elicitation", el);
        }
        if (r->client_caps & SESSION_CAP_ROOTS)
            json_object_set_new(caps, "roots", json_pack("{s:b}", "listChanged", (r->client_caps & SESSION_CAP_ROOTS_LIST_CHANGED) != 0));
        json_t *params = json_pack("{s:s,s:o,s:{s:s,s:s}}", "protocolVersion", session_proto_name(r->proto),
                                   "capabilities", caps, "clientInfo", "name", "mcp-gateway", "version", GW_VERSION);
        r->rpc = up_rpc_send(w->up, &u, "initialize", params, worker_next_id(w), on_initialized, r);
        break;
    }
    case RL_NOTIFY:
        r->rpc = up_rpc_send(w->up, &u, "notifications/initialized", NULL, 0, on_notified, r);
        break;
    case RL_CALL: {
        r->up_id = worker_next_id(w);
        if (!r->inflight[0]) {   /* so that notifications/cancelled finds the upstream's id */
            char *cid = json_dumps(r->client_id, JSON_ENCODE_ANY | JSON_COMPACT);
            char upid[24];
            snprintf(upid, sizeof upid, "%llu", (unsigned long long)r->up_id);
            snprintf(r->inflight, sizeof r->inflight, "c:%s", cid ? cid : "");
            if (!cid || strlen(cid) > 250 || session_pending_put(w->gw->sessions, r->gw_sid, r->inflight, r->server, upid))
                r->inflight[0] = '\0';
            free(cid);
        } else {
            char upid[24];
            snprintf(upid, sizeof upid, "%llu", (unsigned long long)r->up_id);
            session_pending_get(w->gw->sessions, r->gw_sid, r->inflight, NULL, NULL, 0, 1);
            session_pending_put(w->gw->sessions, r->gw_sid, r->inflight, r->server, upid);
        }
        json_object_set_new(r->msg, "id", json_integer((json_int_t)r->up_id));
        char *body = json_dumps(r->msg, JSON_COMPACT | JSON_PRESERVE_ORDER);
        u.method = "POST";
        u.body = body;
        u.body_len = body ? strlen(body) : 0;
        u.at_most_once = 1;   /* a call may have effects: never sent twice (src/up_http.c) */
        r->status = 0;
        r->sse = 0;
        r->call = body ? upclient_send(w->up, &u, &relay_cb, r) : NULL;
        free(body);
        break;
    }
    }
    if (!r->rpc && !r->call) { relay_error(r, JR_INTERNAL_ERROR, "upstream server %s: could not send%s", ""); relay_free(r); return; }
    r->in_cb = 0;   /* waiting for the upstream now */
}

/* The session's shared state is loaded (or Redis did not answer in time): on with the upstream session it
 * names, or a new one. */
static void relay_refreshed(void *ud)
{
    relay *r = ud;
    r->redis_op = NULL;
    r->in_cb = 1;
    if (session_get_upstream(r->w->gw->sessions, r->gw_sid, r->server, r->up_sid, sizeof r->up_sid) == 0) {
        split_up_sid(r);
        r->step = RL_CALL;
    } else {
        r->step = RL_INIT;
    }
    relay_step(r);
}

void relay_start(worker *w, http_req *req, const char *gw_sid, const session_claims *cl, size_t server, json_t *msg)
{
    gw_server_cfg *srv = &w->gw->cfg->servers[server];
    long cap = __atomic_load_n(&srv->max_concurrency, __ATOMIC_RELAXED);   /* a reload may change it */
    if (!cap) cap = w->gw->cfg->max_upstream_concurrency;
    if (__atomic_add_fetch(&srv->inflight, 1, __ATOMIC_RELAXED) > (size_t)cap && cap) {
        __atomic_sub_fetch(&srv->inflight, 1, __ATOMIC_RELAXED);
        char m[400];
        snprintf(m, sizeof m, "upstream server %s is busy: %ld calls in flight (its limit); try again later", srv->name, cap);
        mcp_reply_error_hdr(w, req, 429, "Retry-After: 1\r\n", json_object_get(msg, "id"), JR_INTERNAL_ERROR, m);
        json_decref(msg);
        return;
    }
    int loaded = redis_req_loaded(req);   /* its session's shared state was just loaded (redis.h) */
    relay *r = calloc(1, sizeof *r);
    if (!r) {
        __atomic_sub_fetch(&srv->inflight, 1, __ATOMIC_RELAXED);
        mcp_reply_error(w, req, 500, json_object_get(msg, "id"), JR_INTERNAL_ERROR, "out of memory");
        json_decref(msg);
        return;
    }
    r->w = w;
    r->req = req;
    r->server = server;
    r->srv = srv;
    r->proto = cl->proto;
    r->client_caps = cl->client_caps;
    r->msg = msg;
    r->client_id = json_incref(json_object_get(msg, "id"));
    trace_call_start(&r->tc, w, req, server);
    snprintf(r->gw_sid, sizeof r->gw_sid, "%s", gw_sid);
    if (upcred_needs_caller(w->gw->cfg, server)) upcred_caller(w->gw, req, cl, gw_sid, &r->who);
    buf_init(&r->body, (size_t)w->gw->cfg->max_upstream_response);
    sse_parser_init(&r->parser, (size_t)w->gw->cfg->max_upstream_response, on_sse_event, r);
    req->ud = r;
    req->on_abort = on_abort;
    req->on_drain = on_drain;
    r->in_cb = 1;
    if (session_get_upstream(w->gw->sessions, gw_sid, server, r->up_sid, sizeof r->up_sid) == 0) {
        split_up_sid(r);
        r->step = RL_CALL;
    } else if (!loaded && (r->redis_op = redis_session_refresh(w, gw_sid, relay_refreshed, r))) {
        r->in_cb = 0;   /* another replica may have started this upstream session: asked Redis first */
        return;
    } else {
        r->step = RL_INIT;
    }
    relay_step(r);
}

/* ---- messages from the client that belong to an upstream -------------------------------------- */

void relay_send_upstream(worker *w, const char *gw_sid, size_t server, json_t *msg)
{
    char stored[192];
    if (session_get_upstream(w->gw->sessions, gw_sid, server, stored, sizeof stored) != 0) return;
    char *sp = strchr(stored, ' ');
    if (!sp || !sp[1]) return;
    *sp = '\0';
    relay_send_upstream_as(w, gw_sid, server, stored, sp + 1, msg);
}

void relay_send_upstream_as(worker *w, const char *gw_sid, size_t server, const char *version, const char *up_session,
                            json_t *msg)
{
    upcred_who who = {0};
    if (upcred_needs_caller(w->gw->cfg, server)) upcred_caller_of_session(w->gw, gw_sid, &who);
    later *l = later_new(w, server, &who, version, up_session);
    if (!l) return;
    if (!(l->body = json_dumps(msg, JSON_COMPACT | JSON_PRESERVE_ORDER))) { later_free(l); return; }
    later_go(l);
}

void relay_end_upstream(worker *w, const char *gw_sid, size_t server, const char *version, const char *up_session)
{
    upcred_who who = {0};
    if (upcred_needs_caller(w->gw->cfg, server)) upcred_caller_of_session(w->gw, gw_sid, &who);
    later *l = later_new(w, server, &who, version, up_session);
    if (!l) return;
    l->del = 1;
    later_go(l);
}

int relay_client_response(worker *w, const char *gw_sid, json_t *msg)
{
    char key[300], orig[300];
    char *id = json_dumps(json_object_get(msg, "id"), JSON_ENCODE_ANY | JSON_COMPACT);
    snprintf(key, sizeof key, "s:%s", id ? id : "");
    free(id);
    size_t server;
    if (session_pending_get(w->gw->sessions, gw_sid, key, &server, orig, sizeof orig, 1) != 0) return -1;
    json_t *oid = json_loads(orig, JSON_DECODE_ANY, NULL);
    json_object_set_new(msg, "id", oid ? oid : json_null());
    relay_send_upstream(w, gw_sid, server, msg);
    return 0;
}

void relay_client_cancel(worker *w, const char *gw_sid, json_t *msg)
{
    json_t *params = json_object_get(msg, "params");
    char key[300], upid[32];
    char *id = json_dumps(json_object_get(params, "requestId"), JSON_ENCODE_ANY | JSON_COMPACT);
    snprintf(key, sizeof key, "c:%s", id ? id : "");
    free(id);
    size_t server;
    if (session_pending_get(w->gw->sessions, gw_sid, key, &server, upid, sizeof upid, 0) != 0) return;
    json_object_set_new(params, "requestId", json_integer((json_int_t)strtoull(upid, NULL, 10)));
    relay_send_upstream(w, gw_sid, server, msg);
}
