/* streams — GET streams, upstream GET relays, resumption and cross-loop delivery (streams.h). */
#include "streams.h"
#include "catalog.h"
#include "log.h"
#include "mcp.h"
#include "redis.h"
#include "sse.h"
#include "upcred.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct upget upget;

struct mcp_stream {
    worker     *w;
    http_req   *req;
    mcp_stream *prev, *next;
    uint64_t    token;
    char        sid[SESSION_ID_MAX];
    char        id[24];          /* stream id of the events written here */
    uint64_t    seq;
    upget     **up;              /* per server slot: the upstream GET relayed here, or NULL */
    size_t      n_up;            /* slots up has room for (a reload may add more) */
    upcred_who  who;             /* the caller, for per-caller upstream credentials */
};

struct upget {
    mcp_stream *s;
    size_t      server;
    up_call    *call;
    upcred_op  *op;              /* waiting for the upstream's credential */
    char       *auth;            /* the credential the GET went with (owned) */
    char        stored[192];     /* "<version>\0<session id>" of the upstream session */
    sse_parser  parser;
};

typedef struct inbox_msg {
    struct inbox_msg *next;
    uint64_t          token;
    long              server;    /* >= 0: open this upstream; < 0: deliver data */
    size_t            len;
    char              data[];
} inbox_msg;

void streams_init(worker *w)
{
    pthread_mutex_init(&w->inbox_lock, NULL);
}

void streams_free(worker *w)
{
    for (inbox_msg *m = w->inbox, *n; m; m = n) { n = m->next; free(m); }
    w->inbox = NULL;
    pthread_mutex_destroy(&w->inbox_lock);
}

void streams_new_id(worker *w, char prefix, char out[24])
{
    snprintf(out, 24, "%c%d.%llx", prefix, w->idx, (unsigned long long)++w->next_stream);
}

static mcp_stream *find_token(worker *w, uint64_t token)
{
    for (mcp_stream *s = w->streams; s; s = s->next)
        if (s->token == token) return s;
    return NULL;
}

/* ---- writing -------------------------------------------------------------------------------- */

/* One message (compact JSON) on the stream, with an id, kept for resumption. */
static void stream_send(mcp_stream *s, const char *json, size_t len)
{
    char head[64];
    int n = snprintf(head, sizeof head, "id: %s/%llu\ndata: ", s->id, (unsigned long long)++s->seq);
    int wi;
    uint64_t tok;
    session_event_add(s->w->gw->sessions, s->sid, s->id, s->seq, json, len, &wi, &tok);
    redis_note_event(s->w, s->sid, s->id, s->seq, json, len);
    buf b;
    buf_init(&b, len + 128);
    buf_append(&b, head, (size_t)n);
    buf_append(&b, json, len);
    buf_append(&b, "\n\n", 2);
    http_stream_write(s->req, b.data, b.len);
    buf_free(&b);
}

/* ---- upstream GET streams ---------------------------------------------------------------------- */

static void upget_free(upget *g)
{
    upcred_cancel(g->op);
    free(g->auth);
    if (g->call) up_call_cancel(g->call);
    sse_parser_free(&g->parser);
    free(g);
}

static void on_up_event(void *ud, const char *event, const char *data, size_t len, const char *id)
{
    upget *g = ud;
    mcp_stream *s = g->s;
    if (strcmp(event, "message") != 0 || !len) return;
    json_t *m = json_loadb(data, len, 0, NULL);
    if (!json_is_object(m)) { json_decref(m); return; }
    json_t *mid = json_object_get(m, "id");
    if (!mid && catalog_owns_notification(json_string_value(json_object_get(m, "method")))) {
        json_decref(m);   /* upmgr re-lists; the gateway announces its own list_changed */
        return;
    }
    if (mid && json_object_get(m, "method")) {
        /* a request from the upstream outside any call: remapped like those during calls */
        worker *w = s->w;
        uint64_t gid = worker_next_id(w);
        char key[40], *orig = json_dumps(mid, JSON_ENCODE_ANY | JSON_COMPACT);
        snprintf(key, sizeof key, "s:%llu", (unsigned long long)gid);
        if (!orig || session_pending_put(w->gw->sessions, s->sid, key, g->server, orig) != 0) {
            free(orig);
            json_decref(m);
            return;
        }
        redis_note_pending(w, s->sid, gid, g->server, g->stored, g->stored + strlen(g->stored) + 1, orig);
        free(orig);
        json_object_set_new(m, "id", json_integer((json_int_t)gid));
    }
    char *out = json_dumps(m, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(m);
    if (out) stream_send(s, out, strlen(out));
    free(out);
}

static void on_up_head(up_call *c, void *ud, long status, const char *ctype, const char *sid)
{
    upget *g = ud;
    if (status == 401)   /* the next GET gets a fresh credential */
        upcred_rejected(g->s->w->gw, &g->s->w->loop, g->server, &g->s->who, g->auth);
}

static void on_up_data(up_call *c, void *ud, const char *d, size_t n)
{
    upget *g = ud;
    if (sse_parser_feed(&g->parser, d, n)) {
        log_warn(g->s->w->gw->cfg->servers[g->server].name, "upstream GET stream: event too large, stream dropped");
        g->call = NULL;
        up_call_cancel(c);
    }
}

static void on_up_done(up_call *c, void *ud, const char *err)
{
    upget *g = ud;
    g->call = NULL;   /* the upstream ended it (or has none: 405); not reopened until the next GET */
}

static const up_callbacks upget_cb = {on_up_head, on_up_data, on_up_done};

static void upget_send(upget *g)
{
    worker *w = g->s->w;
    const gw_server_cfg *srv = &w->gw->cfg->servers[g->server];
    const char *version = g->stored, *session = g->stored + strlen(g->stored) + 1;
    up_req r = {.url = srv->url, .method = "GET", .session_id = session, .protocol_version = version,
                .authorization = g->auth};
    upcred_prepare(w->gw->cfg, g->server, &r);
    g->call = upclient_send(w->up, &r, &upget_cb, g);
}

static void upget_cred(void *ud, char *auth, const char *err)
{
    upget *g = ud;
    g->op = NULL;
    if (err) {
        log_debug(g->s->w->gw->cfg->servers[g->server].name, "upstream GET stream not opened: %s", err);
        free(auth);
        return;
    }
    free(g->auth);
    g->auth = auth;
    upget_send(g);
}

static void open_upstream(mcp_stream *s, size_t server)
{
    worker *w = s->w;
    gateway *gw = w->gw;
    if (server >= gw->cfg->n_servers || !gw_server_live(&gw->cfg->servers[server])) return;
    if (server >= s->n_up) {   /* a slot added by a reload */
        upget **up = realloc(s->up, (server + 1) * sizeof *up);
        if (!up) return;
        memset(up + s->n_up, 0, (server + 1 - s->n_up) * sizeof *up);
        s->up = up;
        s->n_up = server + 1;
    }
    if (s->up[server] && (s->up[server]->call || s->up[server]->op)) return;
    char stored[192];
    if (session_get_upstream(gw->sessions, s->sid, server, stored, sizeof stored) != 0) return;
    char *sp = strchr(stored, ' ');
    if (!sp || !sp[1]) return;   /* a stateless upstream: no stream to open */
    *sp = '\0';
    upget *g = s->up[server];
    if (!g) {
        g = calloc(1, sizeof *g);
        if (!g) return;
        g->s = s;
        g->server = server;
        sse_parser_init(&g->parser, (size_t)gw->cfg->max_upstream_response, on_up_event, g);
        s->up[server] = g;
    }
    memcpy(g->stored, stored, sizeof g->stored);   /* "<version>\0<session id>" */
    char *auth = NULL, err[256];
    int rc = upcred_get(gw, &w->loop, &w->up, server, &s->who, &auth, err, sizeof err, upget_cred, g, &g->op);
    if (rc == UPCRED_PENDING) return;
    if (rc == UPCRED_FAILED) {
        log_debug(gw->cfg->servers[server].name, "upstream GET stream not opened: %s", err);
        return;
    }
    free(g->auth);
    g->auth = auth;
    upget_send(g);
}

/* ---- the client's GET stream ---------------------------------------------------------------------- */

static void stream_unlink(mcp_stream *s)
{
    worker *w = s->w;
    if (s->prev) s->prev->next = s->next; else w->streams = s->next;
    if (s->next) s->next->prev = s->prev;
    w->n_streams--;
    __atomic_sub_fetch(&w->gw->n_sse, 1, __ATOMIC_RELAXED);
    session_clear_get(w->gw->sessions, s->sid, s->token);
}

static void stream_free(mcp_stream *s)
{
    for (size_t i = 0; s->up && i < s->n_up; i++)
        if (s->up[i]) upget_free(s->up[i]);
    free(s->up);
    free(s);
}

static void stream_abort(http_req *req)
{
    mcp_stream *s = req->ud;
    stream_unlink(s);
    stream_free(s);
}

/* "<stream>/<seq>" → stream and seq; 0 when well-formed. */
static int parse_event_id(const char *v, char stream[24], uint64_t *seq)
{
    const char *slash = strrchr(v, '/');
    if (!slash || slash == v || (size_t)(slash - v) >= 24) return -1;
    char *end;
    unsigned long long n = strtoull(slash + 1, &end, 10);
    if (*end || end == slash + 1) return -1;
    memcpy(stream, v, (size_t)(slash - v));
    stream[slash - v] = '\0';
    *seq = n;
    return 0;
}

void streams_open(worker *w, http_req *req, const char *sid, const session_claims *cl)
{
    const char *last = http_req_header(req, "last-event-id");
    char stream[24];
    uint64_t seq = 0;
    /* a stream this process has no events of may be another replica's: its events are in Redis */
    if (last && parse_event_id(last, stream, &seq) == 0 && !session_has_stream(w->gw->sessions, sid, stream) &&
        redis_resume_stream(w, req, sid, cl, stream, seq))
        return;
    streams_open_replayed(w, req, sid, cl, NULL, 0);
}

void streams_open_replayed(worker *w, http_req *req, const char *sid, const session_claims *cl, const char *frames,
                           size_t frames_len)
{
    gateway *gw = w->gw;
    mcp_stream *s = calloc(1, sizeof *s);
    if (s) s->up = calloc((s->n_up = gw->cfg->n_servers) ? s->n_up : 1, sizeof *s->up);
    if (!s || !s->up) {
        if (s) free(s);
        mcp_reply_error(w, req, 500, NULL, JR_INTERNAL_ERROR, "out of memory");
        return;
    }
    s->w = w;
    s->req = req;
    s->token = ((uint64_t)(w->idx + 1) << 48) | ++w->next_stream;
    snprintf(s->sid, sizeof s->sid, "%s", sid);
    streams_new_id(w, 'g', s->id);
    s->next = w->streams;
    if (w->streams) w->streams->prev = s;
    w->streams = s;
    w->n_streams++;
    __atomic_add_fetch(&gw->n_sse, 1, __ATOMIC_RELAXED);
    req->ud = s;
    req->on_abort = stream_abort;
    for (size_t i = 0; i < gw->cfg->n_servers; i++)
        if (upcred_needs_caller(gw->cfg, i)) { upcred_caller(gw, req, cl, sid, &s->who); break; }

    char extra[768];
    mcp_extra_headers(w, req, extra, sizeof extra, NULL);
    strncat(extra, "Cache-Control: no-cache\r\n", sizeof extra - strlen(extra) - 1);
    http_stream_begin(req, 200, extra, "text/event-stream");
    buf b;
    buf_init(&b, (size_t)gw->cfg->max_session_event_bytes * 2 + 4096);
    if (cl->proto >= 2)   /* 2025-11-25: prime the client with an id to resume from, and a retry */
        buf_printf(&b, "id: %s/0\nretry: 1000\ndata: \n\n", s->id);
    else
        buf_appends(&b, ": stream open\n\n");
    const char *last = http_req_header(req, "last-event-id");
    char stream[24];
    uint64_t seq = 0;
    int resume = last && parse_event_id(last, stream, &seq) == 0;
    if (frames) {   /* read from Redis; the stream is registered for what comes next */
        buf_append(&b, frames, frames_len);
        resume = 0;
    }
    size_t n = session_event_replay(gw->sessions, sid, resume ? stream : NULL, seq, &b, w->idx, s->token);
    if (resume) log_debug("session", "resuming stream %s after %llu: %zu event(s) replayed", stream, (unsigned long long)seq, n);
    http_stream_write(req, b.data, b.len);
    buf_free(&b);
    for (size_t i = 0; i < gw->cfg->n_servers; i++) open_upstream(s, i);
}

/* ---- cross-loop delivery ------------------------------------------------------------------------- */

static void post(gateway *gw, int wi, uint64_t token, long server, const char *data, size_t len)
{
    if (wi < 0 || wi >= gw->n_workers) return;
    worker *w = &gw->workers[wi];
    inbox_msg *m = malloc(sizeof *m + len);
    if (!m) return;
    m->next = NULL;
    m->token = token;
    m->server = server;
    m->len = len;
    if (len) memcpy(m->data, data, len);
    pthread_mutex_lock(&w->inbox_lock);
    inbox_msg **pp = &w->inbox;
    size_t depth = 0;
    while (*pp) { pp = &(*pp)->next; depth++; }
    if (depth < 100000) *pp = m; else { free(m); m = NULL; }
    pthread_mutex_unlock(&w->inbox_lock);
    if (m) uv_async_send(&w->wake);
}

void streams_deliver(gateway *gw, int wi, uint64_t token, const char *frame, size_t len)
{
    post(gw, wi, token, -1, frame, len);
}

void streams_open_upstream(gateway *gw, int wi, uint64_t token, size_t server)
{
    post(gw, wi, token, (long)server, NULL, 0);
}

void streams_close_session_all(gateway *gw, const char *sid)
{
    for (int i = 0; i < gw->n_workers; i++) post(gw, i, 0, -2, sid, strlen(sid) + 1);
}

void streams_on_wake(worker *w)
{
    pthread_mutex_lock(&w->inbox_lock);
    inbox_msg *m = w->inbox;
    w->inbox = NULL;
    pthread_mutex_unlock(&w->inbox_lock);
    while (m) {
        inbox_msg *n = m->next;
        mcp_stream *s = m->server == -2 ? NULL : find_token(w, m->token);
        if (m->server == -2) streams_close_session(w, m->data);   /* ended on another replica */
        else if (s && m->server >= 0) open_upstream(s, (size_t)m->server);
        else if (s) http_stream_write(s->req, m->data, m->len);
        free(m);
        m = n;
    }
}

/* ---- every stream of the loop ------------------------------------------------------------------------ */

void streams_broadcast(worker *w, const char *json, size_t len)
{
    for (mcp_stream *s = w->streams, *next; s; s = next) {
        next = s->next;   /* a failed write closes the stream (later, from the loop) */
        stream_send(s, json, len);
    }
}

void streams_keepalive(worker *w)
{
    for (mcp_stream *s = w->streams, *next; s; s = next) {
        next = s->next;
        http_stream_write(s->req, ": keep-alive\n\n", 14);
    }
}

static void stream_end(mcp_stream *s)
{
    http_req *r = s->req;
    r->on_abort = NULL;
    stream_unlink(s);
    stream_free(s);
    http_stream_end(r);
}

void streams_close_session(worker *w, const char *sid)
{
    for (mcp_stream *s = w->streams, *n; s; s = n) {
        n = s->next;
        if (strcmp(s->sid, sid) == 0) stream_end(s);
    }
}

/* Shutdown: each stream gets a last event telling its client to reconnect in a second (to
 * another replica), then ends. */
void streams_close_all(worker *w)
{
    while (w->streams) {
        http_stream_write(w->streams->req, "retry: 1000\n\n", 13);
        stream_end(w->streams);
    }
}

/* A reload took effect on this loop: upstream GET relays of removed servers end (the clients'
 * streams stay open). */
void streams_reload(worker *w)
{
    for (mcp_stream *s = w->streams; s; s = s->next)
        for (size_t i = 0; i < s->n_up; i++)
            if (s->up[i] && !gw_server_live(&w->cfg->servers[i])) {
                upget_free(s->up[i]);
                s->up[i] = NULL;
            }
}
