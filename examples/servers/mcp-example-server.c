/* mcp-example-server — a small MCP server speaking Streamable HTTP (spec 2025-11-25; also
 * accepts 2025-06-18 and 2025-03-26), used as an upstream in the gateway's tests.
 *
 * One libuv loop, the project's http layer (src/http.h), jansson for JSON. Endpoint /mcp:
 *   POST    JSON-RPC (single message or, for old clients, a batch); answered with
 *           application/json, or text/event-stream when a call streams (slow) — 202 when the
 *           body holds only notifications/responses.
 *   GET     an SSE stream of server→client notifications for the session (list_changed).
 *   DELETE  ends the session.
 * Sessions live in a small table (LRU, capped). Timed tools (slow, sleep) run on uv timers.
 *
 * Lifetimes: an `exchange` is one POST in flight; the http layer may call req->on_abort
 * from inside any http_* call we make on that request (a write fails, the client is gone), so
 * an exchange is reference-held (busy) by every frame that uses it and freed by whoever drops
 * the last hold once it is dead. A `stream` is one GET SSE stream; its on_abort unlinks and
 * frees it, so loops over streams save the next pointer before writing. */
#include "b64.h"
#include "buf.h"
#include "http.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <llhttp.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <signal.h>
#include <unistd.h>
#include <uv.h>

#define SERVER_VERSION      "1.0.0"
#define LATEST_PROTOCOL     "2025-11-25"
#define DEFAULT_PORT        9001
#define DEFAULT_MAX_SESSIONS 10000
#define PAGE_SIZE           4
#define SESSION_BUCKETS     16384          /* power of two */
#define MAX_BODY            (4u << 20)
#define MAX_SLOW_STEPS      1000
#define MAX_SLOW_DELAY_MS   60000
#define MAX_SLEEP_MS        3600000
#define SSE_HEADERS         "Cache-Control: no-cache\r\n"

static const char *const supported_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26"};
/* MCP logging levels (RFC 5424 order) */
static const char *const log_levels[] = {"debug", "info", "notice", "warning", "error",
                                         "critical", "alert", "emergency"};
enum { MCP_LOG_DEBUG, MCP_LOG_INFO };

typedef struct session  session;
typedef struct stream   stream;
typedef struct exchange exchange;
typedef struct op       op;

struct stream {               /* an open GET SSE stream */
    http_req *req;
    session  *sess;
    stream   *prev, *next;
};

struct session {
    char      id[33];         /* 32 hex characters */
    char      proto[16];      /* negotiated protocol version */
    int       log_level;      /* index in log_levels: messages below it are not sent */
    session  *hnext;          /* hash chain */
    session  *lprev, *lnext;  /* LRU list, head = most recently used */
    stream   *streams;
};

struct exchange {             /* one POST in flight */
    http_req *req;            /* NULL once answered or aborted */
    session  *sess;           /* NULL when the session ended meanwhile */
    int       busy;           /* holds by frames on the stack */
    int       dead;           /* answered or aborted: freed when busy drops to 0 */
    int       dispatching;
    int       batch;
    int       json_ok, sse_ok;/* from Accept */
    int       sse;            /* the response is an open event stream */
    int       n_requests;     /* requests (with id) in the body */
    int       pending;        /* ops not finished */
    json_t   *responses;      /* array, buffered until the response is written */
    char      extra[96];      /* extra response header lines */
    op       *ops;
    exchange *prev, *next;    /* all exchanges */
};

enum { OP_SLOW, OP_SLEEP };

struct op {                   /* a timer-driven tool call */
    uv_timer_t timer;
    exchange  *ex;            /* NULL once finished or cancelled; freed in the close callback */
    json_t    *id;
    json_t    *token;         /* progressToken or NULL */
    int        kind;
    long       step, steps;
    op        *prev, *next;
};

/* ---- tools ------------------------------------------------------------------------------ */

typedef json_t *(*tool_fn)(exchange *ex, json_t *id, json_t *args, json_t *meta);

typedef struct tool_def {
    const char *name;
    const char *title;
    const char *description;
    const char *input_schema;
    const char *output_schema;   /* NULL when none */
    tool_fn     fn;
} tool_def;

static json_t *tool_echo(exchange *, json_t *, json_t *, json_t *);
static json_t *tool_greet(exchange *, json_t *, json_t *, json_t *);
static json_t *tool_add(exchange *, json_t *, json_t *, json_t *);
static json_t *tool_headers(exchange *, json_t *, json_t *, json_t *);
static json_t *tool_slow(exchange *, json_t *, json_t *, json_t *);
static json_t *tool_fail(exchange *, json_t *, json_t *, json_t *);
static json_t *tool_toggle(exchange *, json_t *, json_t *, json_t *);
static json_t *tool_sleep(exchange *, json_t *, json_t *, json_t *);
static json_t *tool_surprise(exchange *, json_t *, json_t *, json_t *);

#define NO_ARGS "{\"type\":\"object\",\"properties\":{},\"additionalProperties\":false}"

static const tool_def tool_table[] = {
    {"echo", "Echo", "Returns its text argument unchanged.",
     "{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\",\"description\":\"Text to echo back\"}},"
     "\"required\":[\"text\"]}", NULL, tool_echo},
    {"greet", "Greet", "Greets someone by name, saying which server answered.",
     "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"description\":\"Who to greet\"}},"
     "\"required\":[\"name\"]}", NULL, tool_greet},
    {"add", "Add", "Adds two numbers; the sum is also returned as structured content.",
     "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"number\",\"description\":\"First addend\"},"
     "\"b\":{\"type\":\"number\",\"description\":\"Second addend\"}},\"required\":[\"a\",\"b\"]}",
     "{\"type\":\"object\",\"properties\":{\"sum\":{\"type\":\"number\"}},\"required\":[\"sum\"]}", tool_add},
    {"headers", "Request headers",
     "Returns the HTTP request headers this server received for the call, as a JSON object with "
     "lower-cased names.", NO_ARGS, NULL, tool_headers},
    {"slow", "Slow task",
     "Works for steps × delay_ms milliseconds, sending a progress notification per step when the "
     "request carries a progressToken, and a log message.",
     "{\"type\":\"object\",\"properties\":{"
     "\"steps\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":1000,\"default\":3,\"description\":\"Number of steps\"},"
     "\"delay_ms\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":60000,\"default\":100,"
     "\"description\":\"Milliseconds between steps\"}}}", NULL, tool_slow},
    {"fail", "Fail", "Always fails with a tool execution error (isError: true).", NO_ARGS, NULL, tool_fail},
    {"toggle", "Toggle tool list",
     "Adds the tool 'surprise' (or removes it when present) and notifies every open GET stream "
     "with notifications/tools/list_changed.", NO_ARGS, NULL, tool_toggle},
    {"sleep", "Sleep", "Waits ms milliseconds, then answers \"slept\".",
     "{\"type\":\"object\",\"properties\":{\"ms\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":3600000,"
     "\"description\":\"Milliseconds to wait\"}},\"required\":[\"ms\"]}", NULL, tool_sleep},
};
#define N_BASE_TOOLS (sizeof tool_table / sizeof tool_table[0])

static const tool_def surprise_def = {"surprise", "Surprise", "Appears and disappears with 'toggle'.",
                                      NO_ARGS, NULL, tool_surprise};

/* ---- global state ----------------------------------------------------------------------- */

static struct {
    uv_loop_t   *loop;
    http_server *srv;
    const char  *name;
    int          enabled[N_BASE_TOOLS];
    json_t      *defs[N_BASE_TOOLS];     /* tool definitions, built once */
    json_t      *surprise_json;
    int          surprise;               /* the extra tool is listed */
    session     *buckets[SESSION_BUCKETS];
    session     *lru_head, *lru_tail;
    size_t       n_sessions, max_sessions;
    exchange    *exchanges;
    uv_signal_t  sigint, sigterm;
    int          stopping;
    int          any_origin;
} G;

/* ---- small helpers ---------------------------------------------------------------------- */

static json_t *text_result(const char *text, int is_error)
{
    json_t *r = json_pack("{s:[{s:s,s:s}]}", "content", "type", "text", "text", text);
    if (is_error) json_object_set_new(r, "isError", json_true());
    return r;
}

/* Neither id nor result is stolen. */
static json_t *rpc_result(json_t *id, json_t *result)
{
    return json_pack("{s:s,s:O,s:O}", "jsonrpc", "2.0", "id", id ? id : json_null(), "result", result);
}

static json_t *rpc_error(json_t *id, int code, const char *msg)
{
    return json_pack("{s:s,s:O,s:{s:i,s:s}}", "jsonrpc", "2.0", "id", id ? id : json_null(),
                     "error", "code", code, "message", msg);
}

static json_t *rpc_notification(const char *method, json_t *params)
{
    return json_pack("{s:s,s:s,s:o}", "jsonrpc", "2.0", "method", method, "params", params);
}

/* An error answered at the HTTP level with a JSON-RPC error body (id null). */
static void respond_error(http_req *req, int status, int code, const char *msg, const char *extra)
{
    json_t *e = rpc_error(NULL, code, msg);
    char *s = json_dumps(e, JSON_COMPACT);
    json_decref(e);
    http_respond_take(req, status, extra, "application/json", s, strlen(s));
}

/* Shortest text that reads back as the same double; integers without a fraction. */
static void fmt_number(double v, char *out, size_t n)
{
    if (v == floor(v) && fabs(v) < 1e15) { snprintf(out, n, "%.0f", v); return; }
    for (int p = 1; p <= 17; p++) {
        snprintf(out, n, "%.*g", p, v);
        if (strtod(out, NULL) == v) return;
    }
}

/* Does a comma-separated header value list the media type (or a wildcard covering it)? */
static int accepts(const char *accept, const char *type)
{
    if (!accept) return 1;
    size_t tl = strlen(type);
    const char *slash = strchr(type, '/');
    size_t major = slash ? (size_t)(slash - type) : tl;
    for (const char *p = accept; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        const char *e = p;
        while (*e && *e != ',' && *e != ';' && *e != ' ' && *e != '\t') e++;
        size_t l = (size_t)(e - p);
        if (l) {
            if ((l == tl && strncasecmp(p, type, tl) == 0) || (l == 3 && memcmp(p, "*/*", 3) == 0) ||
                (l == major + 2 && strncasecmp(p, type, major) == 0 && memcmp(p + major, "/*", 2) == 0))
                return 1;
        }
        while (*e && *e != ',') e++;
        p = e;
    }
    return 0;
}

static int media_type_is(const char *ctype, const char *type)
{
    if (!ctype) return 0;
    while (*ctype == ' ') ctype++;
    size_t tl = strlen(type);
    if (strncasecmp(ctype, type, tl) != 0) return 0;
    char c = ctype[tl];
    return c == '\0' || c == ';' || c == ' ' || c == '\t';
}

static int version_supported(const char *v)
{
    for (size_t i = 0; i < sizeof supported_versions / sizeof supported_versions[0]; i++)
        if (strcmp(v, supported_versions[i]) == 0) return 1;
    return 0;
}

/* DNS-rebinding protection (spec: servers MUST validate Origin): allow no Origin, a loopback
 * origin, or one whose host:port is the Host header. */
static int origin_allowed(http_req *req)
{
    const char *origin = http_req_header(req, "origin");
    if (!origin || G.any_origin) return 1;
    const char *h = strstr(origin, "://");
    if (!h) return 0;
    h += 3;
    size_t hl = strcspn(h, "/");
    const char *host = http_req_header(req, "host");
    if (host && strlen(host) == hl && strncasecmp(h, host, hl) == 0) return 1;
    /* strip the port */
    size_t nl = hl;
    if (h[0] == '[') { const char *rb = memchr(h, ']', hl); nl = rb ? (size_t)(rb - h) + 1 : hl; }
    else { const char *colon = memchr(h, ':', hl); if (colon) nl = (size_t)(colon - h); }
    static const char *const loop[] = {"localhost", "127.0.0.1", "[::1]"};
    for (size_t i = 0; i < 3; i++)
        if (strlen(loop[i]) == nl && strncasecmp(h, loop[i], nl) == 0) return 1;
    return 0;
}

/* ---- sessions --------------------------------------------------------------------------- */

static uint32_t sid_hash(const char *id)
{
    uint32_t h = 2166136261u;
    for (; *id; id++) { h ^= (unsigned char)*id; h *= 16777619u; }
    return h & (SESSION_BUCKETS - 1);
}

static session *session_find(const char *id)
{
    if (!id || strlen(id) != 32) return NULL;
    for (session *s = G.buckets[sid_hash(id)]; s; s = s->hnext)
        if (strcmp(s->id, id) == 0) return s;
    return NULL;
}

static void lru_unlink(session *s)
{
    if (s->lprev) s->lprev->lnext = s->lnext; else G.lru_head = s->lnext;
    if (s->lnext) s->lnext->lprev = s->lprev; else G.lru_tail = s->lprev;
    s->lprev = s->lnext = NULL;
}

static void lru_push(session *s)
{
    s->lnext = G.lru_head;
    s->lprev = NULL;
    if (G.lru_head) G.lru_head->lprev = s; else G.lru_tail = s;
    G.lru_head = s;
}

static void session_touch(session *s)
{
    if (G.lru_head == s) return;
    lru_unlink(s);
    lru_push(s);
}

static void session_destroy(session *s)
{
    session **pp = &G.buckets[sid_hash(s->id)];
    while (*pp && *pp != s) pp = &(*pp)->hnext;
    if (*pp) *pp = s->hnext;
    lru_unlink(s);
    G.n_sessions--;
    for (exchange *ex = G.exchanges; ex; ex = ex->next)
        if (ex->sess == s) ex->sess = NULL;
    while (s->streams) {
        stream *st = s->streams;
        s->streams = st->next;
        http_req *req = st->req;
        req->on_abort = NULL;
        req->ud = NULL;
        free(st);
        http_stream_end(req);
    }
    free(s);
}

static session *session_new(const char *proto)
{
    while (G.n_sessions >= G.max_sessions && G.lru_tail) {
        log_debug(G.lru_tail->id, "session table full: evicting the least recently used session");
        session_destroy(G.lru_tail);
    }
    session *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    unsigned char rnd[16];
    do {
        if (uv_random(NULL, NULL, rnd, sizeof rnd, 0, NULL) != 0) {
            for (size_t i = 0; i < sizeof rnd; i++) rnd[i] = (unsigned char)(rand() & 0xff);
        }
        for (size_t i = 0; i < sizeof rnd; i++) snprintf(s->id + 2 * i, 3, "%02x", rnd[i]);
    } while (session_find(s->id));
    snprintf(s->proto, sizeof s->proto, "%s", proto);
    s->log_level = MCP_LOG_DEBUG;
    uint32_t h = sid_hash(s->id);
    s->hnext = G.buckets[h];
    G.buckets[h] = s;
    lru_push(s);
    G.n_sessions++;
    return s;
}

/* ---- SSE -------------------------------------------------------------------------------- */

/* Writes one message event. Returns -1 when the connection died: the request is gone then
 * (its on_abort has already run). */
static int sse_send(http_req *req, json_t *msg)
{
    char *s = json_dumps(msg, JSON_COMPACT);
    if (!s) return 0;
    buf b;
    buf_init(&b, (size_t)64 << 20);
    int rc = buf_printf(&b, "event: message\ndata: %s\n\n", s);
    free(s);
    if (rc == BUF_OK) rc = http_stream_write(req, b.data, b.len) < 0 ? -1 : 0;
    else rc = 0;
    buf_free(&b);
    return rc;
}

static void stream_on_abort(http_req *req)
{
    stream *st = req->ud;
    if (!st) return;
    if (st->sess) {
        if (st->prev) st->prev->next = st->next; else st->sess->streams = st->next;
        if (st->next) st->next->prev = st->prev;
    }
    free(st);
}

/* Sends msg on every open GET stream of every session. */
static void broadcast(json_t *msg)
{
    for (session *s = G.lru_head; s; s = s->lnext)
        for (stream *st = s->streams, *next; st; st = next) {
            next = st->next;               /* st is freed when the write finds the client gone */
            sse_send(st->req, msg);
        }
}

/* ---- exchanges -------------------------------------------------------------------------- */

static void ex_free(exchange *ex)
{
    if (ex->prev) ex->prev->next = ex->next; else G.exchanges = ex->next;
    if (ex->next) ex->next->prev = ex->prev;
    json_decref(ex->responses);
    free(ex);
}

static void ex_release(exchange *ex)
{
    if (--ex->busy == 0 && ex->dead) ex_free(ex);
}

static void op_closed(uv_handle_t *h)
{
    op *o = h->data;
    json_decref(o->id);
    json_decref(o->token);
    free(o);
}

static void op_unlink(op *o)
{
    exchange *ex = o->ex;
    if (o->prev) o->prev->next = o->next; else ex->ops = o->next;
    if (o->next) o->next->prev = o->prev;
    o->prev = o->next = NULL;
    o->ex = NULL;
    ex->pending--;
    uv_timer_stop(&o->timer);
    uv_close((uv_handle_t *)&o->timer, op_closed);
}

static void ex_on_abort(http_req *req)
{
    exchange *ex = req->ud;
    if (!ex) return;
    log_debug(ex->sess ? ex->sess->id : NULL, "client went away before the response ended");
    ex->req = NULL;
    ex->dead = 1;
    while (ex->ops) op_unlink(ex->ops);
    if (!ex->busy) ex_free(ex);
}

/* Switches the exchange to an event stream and writes what was buffered. */
static void ex_start_sse(exchange *ex)
{
    if (ex->sse || !ex->req) return;
    ex->sse = 1;
    ex->busy++;
    http_stream_begin(ex->req, 200, SSE_HEADERS, "text/event-stream");
    while (ex->req && json_array_size(ex->responses)) {
        json_t *m = json_incref(json_array_get(ex->responses, 0));
        json_array_remove(ex->responses, 0);
        sse_send(ex->req, m);
        json_decref(m);
    }
    ex_release(ex);
}

static void ex_reply(exchange *ex, json_t *resp)
{
    if (!ex->req) { json_decref(resp); return; }
    if (ex->sse) {
        ex->busy++;
        sse_send(ex->req, resp);
        json_decref(resp);
        ex_release(ex);
    } else {
        json_array_append_new(ex->responses, resp);
    }
}

/* A server→client message related to the request: only on an event stream, else dropped. */
static void ex_notify(exchange *ex, json_t *msg)
{
    if (ex->req && ex->sse) {
        ex->busy++;
        sse_send(ex->req, msg);
        ex_release(ex);
    }
    json_decref(msg);
}

static void ex_log(exchange *ex, int level, const char *text)
{
    if (ex->sess && level < ex->sess->log_level) return;
    ex_notify(ex, rpc_notification("notifications/message",
                                   json_pack("{s:s,s:s,s:s}", "level", log_levels[level], "logger", G.name,
                                             "data", text)));
}

/* Writes the HTTP response once every request of the body is answered. */
static void ex_maybe_finish(exchange *ex)
{
    if (ex->dead || !ex->req || ex->dispatching || ex->pending) return;
    ex->busy++;
    size_t n = json_array_size(ex->responses);
    /* a request must be answered with JSON or SSE: SSE when the client takes no JSON, or
     * when nothing is left to say (a cancelled request) */
    if (!ex->sse && ex->n_requests && (!ex->json_ok || (n == 0 && ex->sse_ok))) ex_start_sse(ex);
    if (ex->req) {
        http_req *req = ex->req;
        ex->req = NULL;
        ex->dead = 1;
        req->on_abort = NULL;
        req->ud = NULL;
        if (ex->sse) {
            http_stream_end(req);
        } else if (n == 0) {
            http_respond(req, 202, ex->extra[0] ? ex->extra : NULL, NULL, NULL, 0);
        } else {
            json_t *body = ex->batch ? json_incref(ex->responses) : json_incref(json_array_get(ex->responses, 0));
            char *s = json_dumps(body, JSON_COMPACT);
            json_decref(body);
            http_respond_take(req, 200, ex->extra[0] ? ex->extra : NULL, "application/json", s, strlen(s));
        }
    }
    ex_release(ex);
}

/* ---- timed tools ------------------------------------------------------------------------ */

static void op_finish(op *o, json_t *result)
{
    exchange *ex = o->ex;
    json_t *id = json_incref(o->id);
    op_unlink(o);
    ex->busy++;
    ex_reply(ex, rpc_result(id, result));
    json_decref(result);
    json_decref(id);
    ex_maybe_finish(ex);
    ex_release(ex);
}

static void op_on_timer(uv_timer_t *t)
{
    op *o = t->data;
    exchange *ex = o->ex;
    if (!ex) return;
    if (o->kind == OP_SLEEP) {
        json_t *r = text_result("slept", 0);
        op_finish(o, r);
        return;
    }
    o->step++;
    if (o->token) {
        char msg[64];
        snprintf(msg, sizeof msg, "step %ld of %ld", o->step, o->steps);
        ex->busy++;
        ex_notify(ex, rpc_notification("notifications/progress",
                                       json_pack("{s:O,s:I,s:I,s:s}", "progressToken", o->token,
                                                 "progress", (json_int_t)o->step, "total",
                                                 (json_int_t)o->steps, "message", msg)));
        int alive = o->ex != NULL;
        ex_release(ex);
        if (!alive) return;
    }
    if (o->step >= o->steps) {
        char text[64];
        snprintf(text, sizeof text, "done after %ld steps", o->steps);
        json_t *r = text_result(text, 0);
        op_finish(o, r);
    }
}

static op *op_start(exchange *ex, int kind, json_t *id, json_t *token, uint64_t delay, uint64_t repeat)
{
    op *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    uv_timer_init(G.loop, &o->timer);
    o->timer.data = o;
    o->ex = ex;
    o->kind = kind;
    o->id = json_incref(id);
    o->token = token ? json_incref(token) : NULL;
    o->next = ex->ops;
    if (ex->ops) ex->ops->prev = o;
    ex->ops = o;
    ex->pending++;
    uv_timer_start(&o->timer, op_on_timer, delay, repeat);
    return o;
}

/* ---- tool implementations --------------------------------------------------------------- */

static json_t *tool_echo(exchange *ex, json_t *id, json_t *args, json_t *meta)
{
    json_t *t = json_object_get(args, "text");
    if (!json_is_string(t)) return text_result("echo: argument 'text' (string) is required", 1);
    return json_pack("{s:[{s:s,s:O}]}", "content", "type", "text", "text", t);   /* keeps NULs */
}

static json_t *tool_greet(exchange *ex, json_t *id, json_t *args, json_t *meta)
{
    json_t *n = json_object_get(args, "name");
    if (!json_is_string(n)) return text_result("greet: argument 'name' (string) is required", 1);
    buf b;
    buf_init(&b, (size_t)16 << 20);
    buf_printf(&b, "Hello, %s! (from %s)", json_string_value(n), G.name);
    json_t *r = text_result(b.data ? b.data : "", 0);
    buf_free(&b);
    return r;
}

static json_t *tool_add(exchange *ex, json_t *id, json_t *args, json_t *meta)
{
    json_t *a = json_object_get(args, "a"), *b = json_object_get(args, "b");
    if (!json_is_number(a) || !json_is_number(b))
        return text_result("add: arguments 'a' and 'b' (numbers) are required", 1);
    char text[64];
    json_t *sum;
    long long is;
    if (json_is_integer(a) && json_is_integer(b) &&
        !__builtin_add_overflow((long long)json_integer_value(a), (long long)json_integer_value(b), &is)) {
        snprintf(text, sizeof text, "%lld", is);
        sum = json_integer((json_int_t)is);
    } else {
        double d = json_number_value(a) + json_number_value(b);
        if (!isfinite(d)) return text_result("add: the sum is not finite", 1);
        fmt_number(d, text, sizeof text);
        sum = json_real(d);
    }
    json_t *r = text_result(text, 0);
    json_object_set_new(r, "structuredContent", json_pack("{s:o}", "sum", sum));
    return r;
}

static json_t *tool_headers(exchange *ex, json_t *id, json_t *args, json_t *meta)
{
    json_t *o = json_object();
    http_req *req = ex->req;
    for (size_t i = 0; req && i < req->n_headers; i++) {
        const http_header *h = &req->headers[i];
        char name[256];
        size_t nl = h->name_len < sizeof name - 1 ? h->name_len : sizeof name - 1;
        for (size_t k = 0; k < nl; k++) {
            char c = h->name[k];
            name[k] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
        }
        name[nl] = '\0';
        json_t *prev = json_object_get(o, name);
        if (prev) {   /* repeated field: combined as a list (RFC 9110 §5.3) */
            buf b;
            buf_init(&b, (size_t)1 << 20);
            buf_printf(&b, "%s, %s", json_string_value(prev), h->value);
            json_object_set_new(o, name, json_stringn(b.data ? b.data : "", b.len));
            buf_free(&b);
        } else {
            json_object_set_new(o, name, json_stringn(h->value, h->value_len));
        }
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    json_t *r = text_result(s ? s : "{}", 0);
    free(s);
    return r;
}

/* An optional integer argument within [0, max]; -1 when invalid. */
static long int_arg(json_t *args, const char *key, long def, long max)
{
    json_t *v = json_object_get(args, key);
    if (!v || json_is_null(v)) return def;
    if (!json_is_number(v)) return -1;
    double d = json_number_value(v);
    if (!(d >= 0) || d > (double)max || d != floor(d)) return -1;
    return (long)d;
}

static json_t *tool_slow(exchange *ex, json_t *id, json_t *args, json_t *meta)
{
    long steps = int_arg(args, "steps", 3, MAX_SLOW_STEPS);
    long delay = int_arg(args, "delay_ms", 100, MAX_SLOW_DELAY_MS);
    if (steps < 0 || delay < 0)
        return text_result("slow: 'steps' must be an integer in [0, 1000] and 'delay_ms' in [0, 60000]", 1);
    json_t *token = json_object_get(meta, "progressToken");
    if (ex->sse_ok) ex_start_sse(ex);
    char text[96];
    snprintf(text, sizeof text, "slow: starting %ld steps, %ld ms apart", steps, delay);
    ex_log(ex, MCP_LOG_INFO, text);
    if (!ex->req) return text_result("client gone", 1);   /* dropped */
    if (steps == 0) return text_result("done after 0 steps", 0);
    op *o = op_start(ex, OP_SLOW, id, token, (uint64_t)delay, (uint64_t)(delay ? delay : 1));
    if (!o) return text_result("slow: out of memory", 1);
    o->steps = steps;
    return NULL;
}

static json_t *tool_fail(exchange *ex, json_t *id, json_t *args, json_t *meta)
{
    return text_result("this tool always fails", 1);
}

static json_t *tool_toggle(exchange *ex, json_t *id, json_t *args, json_t *meta)
{
    G.surprise = !G.surprise;
    log_debug(NULL, "toggle: tool 'surprise' %s", G.surprise ? "added" : "removed");
    json_t *n = json_pack("{s:s,s:s}", "jsonrpc", "2.0", "method", "notifications/tools/list_changed");
    broadcast(n);
    json_decref(n);
    return text_result("tool list changed", 0);
}

static json_t *tool_sleep(exchange *ex, json_t *id, json_t *args, json_t *meta)
{
    json_t *v = json_object_get(args, "ms");
    long ms = v ? int_arg(args, "ms", 0, MAX_SLEEP_MS) : -1;
    if (ms < 0) return text_result("sleep: argument 'ms' (integer in [0, 3600000]) is required", 1);
    if (!op_start(ex, OP_SLEEP, id, NULL, (uint64_t)ms, 0)) return text_result("sleep: out of memory", 1);
    return NULL;
}

static json_t *tool_surprise(exchange *ex, json_t *id, json_t *args, json_t *meta)
{
    return text_result("surprise!", 0);
}

/* ---- JSON-RPC methods ------------------------------------------------------------------- */

/* The tools currently offered, in listing order. */
static size_t active_tools(const tool_def **defs, json_t **json)
{
    size_t n = 0;
    for (size_t i = 0; i < N_BASE_TOOLS; i++)
        if (G.enabled[i]) { defs[n] = &tool_table[i]; json[n] = G.defs[i]; n++; }
    if (G.surprise) { defs[n] = &surprise_def; json[n] = G.surprise_json; n++; }
    return n;
}

static json_t *m_initialize(exchange *ex, json_t *id, json_t *params)
{
    session *s = ex->sess;
    json_t *caps = json_pack("{s:{s:b},s:{}}", "tools", "listChanged", 1, "logging");
    return json_pack("{s:s,s:o,s:{s:s,s:s}}", "protocolVersion", s->proto, "capabilities", caps,
                     "serverInfo", "name", G.name, "version", SERVER_VERSION);
}

static json_t *m_tools_list(exchange *ex, json_t *id, json_t *params, int *err, const char **errmsg)
{
    const tool_def *defs[N_BASE_TOOLS + 1];
    json_t *js[N_BASE_TOOLS + 1];
    size_t n = active_tools(defs, js), off = 0;
    json_t *cursor = json_object_get(params, "cursor");
    if (cursor && !json_is_null(cursor)) {
        /* cursors are base64url("tools:<offset>") */
        const char *c = json_string_value(cursor);
        unsigned char dec[64];
        size_t cl = c ? strlen(c) : 0, dl = 0;
        char tail;
        unsigned long v;
        if (!c || cl == 0 || b64url_dec_len(cl) >= sizeof dec || b64url_decode(c, cl, dec, &dl) != 0 ||
            (dec[dl] = '\0', sscanf((char *)dec, "tools:%lu%c", &v, &tail) != 1)) {
            *err = -32602;
            *errmsg = "Invalid params: invalid cursor";
            return NULL;
        }
        off = v;
    }
    json_t *tools = json_array();
    for (size_t i = off; i < n && i < off + PAGE_SIZE; i++) json_array_append(tools, js[i]);
    json_t *r = json_pack("{s:o}", "tools", tools);
    if (off + PAGE_SIZE < n) {
        char plain[32], enc[48];
        int pl = snprintf(plain, sizeof plain, "tools:%zu", off + PAGE_SIZE);
        b64url_encode(plain, (size_t)pl, enc);
        json_object_set_new(r, "nextCursor", json_string(enc));
    }
    return r;
}

/* Returns the result, NULL with *err set for a JSON-RPC error, or NULL with *err 0 when the
 * call goes on asynchronously. */
static json_t *m_tools_call(exchange *ex, json_t *id, json_t *params, int *err, const char **errmsg,
                            char *msgbuf, size_t msglen)
{
    json_t *name = json_object_get(params, "name");
    json_t *args = json_object_get(params, "arguments");
    if (!json_is_string(name)) {
        *err = -32602; *errmsg = "Invalid params: 'name' (string) is required";
        return NULL;
    }
    if (args && !json_is_null(args) && !json_is_object(args)) {
        *err = -32602; *errmsg = "Invalid params: 'arguments' must be an object";
        return NULL;
    }
    const tool_def *defs[N_BASE_TOOLS + 1];
    json_t *js[N_BASE_TOOLS + 1];
    size_t n = active_tools(defs, js);
    const char *nm = json_string_value(name);
    for (size_t i = 0; i < n; i++)
        if (strcmp(defs[i]->name, nm) == 0) {
            json_t *empty = NULL;
            if (!json_is_object(args)) args = empty = json_object();
            json_t *r = defs[i]->fn(ex, id, args, json_object_get(params, "_meta"));
            json_decref(empty);
            return r;
        }
    snprintf(msgbuf, msglen, "Unknown tool: %s", nm);
    *err = -32602;
    *errmsg = msgbuf;
    return NULL;
}

static json_t *m_set_level(exchange *ex, json_t *params, int *err, const char **errmsg)
{
    const char *lv = json_string_value(json_object_get(params, "level"));
    for (int i = 0; lv && i < (int)(sizeof log_levels / sizeof log_levels[0]); i++)
        if (strcmp(lv, log_levels[i]) == 0) {
            if (ex->sess) ex->sess->log_level = i;
            return json_object();
        }
    *err = -32602;
    *errmsg = "Invalid params: unknown logging level";
    return NULL;
}

static void handle_request(exchange *ex, json_t *id, const char *method, json_t *params)
{
    ex->n_requests++;
    int err = 0;
    const char *errmsg = NULL;
    char msgbuf[320];
    json_t *result = NULL;
    if (params && !json_is_object(params)) {
        err = -32602; errmsg = "Invalid params: params must be an object";
    } else if (strcmp(method, "initialize") == 0) {
        if (ex->batch || !ex->sess) { err = -32600; errmsg = "Invalid Request: initialize must not be part of a batch"; }
        else result = m_initialize(ex, id, params);
    } else if (strcmp(method, "ping") == 0) {
        result = json_object();
    } else if (strcmp(method, "tools/list") == 0) {
        result = m_tools_list(ex, id, params, &err, &errmsg);
    } else if (strcmp(method, "tools/call") == 0) {
        result = m_tools_call(ex, id, params, &err, &errmsg, msgbuf, sizeof msgbuf);
        if (!result && !err) return;   /* answered later */
    } else if (strcmp(method, "logging/setLevel") == 0) {
        result = m_set_level(ex, params, &err, &errmsg);
    } else {
        snprintf(msgbuf, sizeof msgbuf, "Method not found: %s", method);
        err = -32601; errmsg = msgbuf;
    }
    if (result) {
        ex_reply(ex, rpc_result(id, result));
        json_decref(result);
    } else {
        ex_reply(ex, rpc_error(id, err ? err : -32603, errmsg ? errmsg : "Internal error"));
    }
}

static void handle_notification(exchange *ex, const char *method, json_t *params)
{
    if (strcmp(method, "notifications/cancelled") == 0 && ex->sess) {
        json_t *rid = json_object_get(params, "requestId");
        if (!rid) return;
        for (exchange *e = G.exchanges; e; e = e->next) {
            if (e->sess != ex->sess || e->dead) continue;
            for (op *o = e->ops; o; o = o->next)
                if (json_equal(o->id, rid)) {
                    log_debug(ex->sess->id, "request cancelled by the client");
                    e->busy++;
                    op_unlink(o);           /* no response for a cancelled request */
                    ex_maybe_finish(e);
                    ex_release(e);
                    return;
                }
        }
    }
    /* notifications/initialized and anything else: nothing to do */
}

static void handle_message(exchange *ex, json_t *msg)
{
    if (!json_is_object(msg)) {
        ex_reply(ex, rpc_error(NULL, -32600, "Invalid Request"));
        return;
    }
    const char *ver = json_string_value(json_object_get(msg, "jsonrpc"));
    json_t *method = json_object_get(msg, "method");
    json_t *id = json_object_get(msg, "id");
    json_t *params = json_object_get(msg, "params");
    if (!ver || strcmp(ver, "2.0") != 0) {
        ex_reply(ex, rpc_error(json_is_string(id) || json_is_integer(id) ? id : NULL, -32600,
                               "Invalid Request: jsonrpc must be \"2.0\""));
        return;
    }
    if (json_is_string(method)) {
        if (!id) { handle_notification(ex, json_string_value(method), params); return; }
        if (!json_is_string(id) && !json_is_integer(id)) {
            ex_reply(ex, rpc_error(NULL, -32600, "Invalid Request: id must be a string or an integer"));
            return;
        }
        handle_request(ex, id, json_string_value(method), params);
        return;
    }
    if (!method && id && (json_object_get(msg, "result") || json_object_get(msg, "error")))
        return;   /* a response from the client: this server sends no requests */
    ex_reply(ex, rpc_error(json_is_string(id) || json_is_integer(id) ? id : NULL, -32600, "Invalid Request"));
}

/* ---- HTTP ------------------------------------------------------------------------------- */

/* Session of a request that must have one; answers 400/404 and returns NULL otherwise. */
static session *require_session(http_req *req)
{
    const char *sid = http_req_header(req, "mcp-session-id");
    if (!sid) {
        log_debug(NULL, "%s %s: no session id -> 400", http_method_str(req->method), req->path);
        respond_error(req, 400, -32000, "Bad Request: Mcp-Session-Id header is required", NULL);
        return NULL;
    }
    session *s = session_find(sid);
    if (!s) {
        log_debug(NULL, "%s %s: unknown session %.64s -> 404", http_method_str(req->method), req->path, sid);
        respond_error(req, 404, -32001, "Session not found", NULL);
        return NULL;
    }
    const char *pv = http_req_header(req, "mcp-protocol-version");
    if (pv && !version_supported(pv)) {
        char m[160];
        snprintf(m, sizeof m, "Bad Request: Unsupported protocol version: %.64s", pv);
        log_debug(s->id, "%s %s: %s", http_method_str(req->method), req->path, m);
        respond_error(req, 400, -32000, m, NULL);
        return NULL;
    }
    session_touch(s);
    return s;
}

static void handle_post(http_req *req)
{
    const char *accept = http_req_header(req, "accept");
    int json_ok = accepts(accept, "application/json"), sse_ok = accepts(accept, "text/event-stream");
    if (!json_ok && !sse_ok) {
        log_debug(NULL, "POST %s: Accept %s -> 406", req->path, accept);
        respond_error(req, 406, -32000, "Not Acceptable: Client must accept application/json and text/event-stream", NULL);
        return;
    }
    if (!media_type_is(http_req_header(req, "content-type"), "application/json")) {
        log_debug(NULL, "POST %s: not JSON -> 415", req->path);
        respond_error(req, 415, -32000, "Unsupported Media Type: Content-Type must be application/json", NULL);
        return;
    }
    json_error_t jerr;
    json_t *body = req->body.len ? json_loadb(req->body.data, req->body.len, JSON_ALLOW_NUL, &jerr) : NULL;
    if (!body) {
        log_debug(NULL, "POST %s: invalid JSON -> 400", req->path);
        respond_error(req, 400, -32700, "Parse error", NULL);
        return;
    }
    int batch = json_is_array(body);
    if ((batch && json_array_size(body) == 0) || (!batch && !json_is_object(body))) {
        log_debug(NULL, "POST %s: not a JSON-RPC message -> 400", req->path);
        respond_error(req, 400, -32600, "Invalid Request", NULL);
        json_decref(body);
        return;
    }
    json_t *first = batch ? json_array_get(body, 0) : body;
    const char *m0 = json_string_value(json_object_get(first, "method"));
    int is_init = !batch && m0 && strcmp(m0, "initialize") == 0 && json_object_get(body, "id");
    session *s;
    if (is_init) {
        json_t *params = json_object_get(body, "params");
        const char *want = json_string_value(json_object_get(params, "protocolVersion"));
        s = session_new(want && version_supported(want) ? want : LATEST_PROTOCOL);
        if (!s) { respond_error(req, 503, -32000, "Out of memory", NULL); json_decref(body); return; }
    } else if (!(s = require_session(req))) {
        json_decref(body);
        return;
    }
    if (log_enabled(LOG_DEBUG)) {
        const char *tool = NULL;
        if (m0 && strcmp(m0, "tools/call") == 0)
            tool = json_string_value(json_object_get(json_object_get(first, "params"), "name"));
        log_debug(s->id, "POST %s %s%s%s%s", req->path, batch ? "batch " : "", m0 ? m0 : "(response)",
                  tool ? " " : "", tool ? tool : "");
    }

    exchange *ex = calloc(1, sizeof *ex);
    if (!ex) { respond_error(req, 503, -32000, "Out of memory", NULL); json_decref(body); return; }
    ex->req = req;
    ex->sess = s;
    ex->batch = batch;
    ex->json_ok = json_ok;
    ex->sse_ok = sse_ok;
    ex->responses = json_array();
    if (is_init) snprintf(ex->extra, sizeof ex->extra, "Mcp-Session-Id: %s\r\n", s->id);
    ex->next = G.exchanges;
    if (G.exchanges) G.exchanges->prev = ex;
    G.exchanges = ex;
    req->ud = ex;
    req->on_abort = ex_on_abort;

    ex->busy = 1;
    ex->dispatching = 1;
    if (batch) {
        for (size_t i = 0; i < json_array_size(body) && !ex->dead; i++) handle_message(ex, json_array_get(body, i));
    } else {
        handle_message(ex, body);
    }
    ex->dispatching = 0;
    json_decref(body);
    /* a single invalid message is a client error at the HTTP level too */
    if (!batch && !ex->sse && ex->req && !ex->pending && json_array_size(ex->responses) == 1) {
        json_t *e = json_object_get(json_array_get(ex->responses, 0), "error");
        json_int_t code = json_integer_value(json_object_get(e, "code"));
        if (e && code == -32600) {
            ex->dead = 1;
            ex->req = NULL;
            req->on_abort = NULL;
            req->ud = NULL;
            char *txt = json_dumps(json_array_get(ex->responses, 0), JSON_COMPACT);
            http_respond_take(req, 400, NULL, "application/json", txt, strlen(txt));
        }
    }
    ex_maybe_finish(ex);
    ex_release(ex);
}

static void handle_get(http_req *req)
{
    session *s = require_session(req);
    if (!s) return;
    if (!accepts(http_req_header(req, "accept"), "text/event-stream")) {
        log_debug(s->id, "GET %s: does not accept text/event-stream -> 406", req->path);
        respond_error(req, 406, -32000, "Not Acceptable: Client must accept text/event-stream", NULL);
        return;
    }
    stream *st = calloc(1, sizeof *st);
    if (!st) { respond_error(req, 503, -32000, "Out of memory", NULL); return; }
    st->req = req;
    st->sess = s;
    st->next = s->streams;
    if (s->streams) s->streams->prev = st;
    s->streams = st;
    req->ud = st;
    req->on_abort = stream_on_abort;
    log_debug(s->id, "GET %s: event stream opened", req->path);
    http_stream_begin(req, 200, SSE_HEADERS, "text/event-stream");   /* st may be gone after this */
}

static void handle_delete(http_req *req)
{
    session *s = require_session(req);
    if (!s) return;
    log_debug(s->id, "DELETE %s: session ended", req->path);
    session_destroy(s);
    http_respond(req, 200, NULL, NULL, NULL, 0);
}

static void on_request(http_req *req, void *ctx)
{
    if (G.stopping) {
        http_req_close_after(req);
        respond_error(req, 503, -32000, "Server shutting down", NULL);
        return;
    }
    if (strcmp(req->path, "/healthz") == 0 && req->method == HTTP_GET) {
        http_respond(req, 200, NULL, "text/plain", "ok\n", 3);
        return;
    }
    if (strcmp(req->path, "/mcp") != 0) {
        log_debug(NULL, "%s %s: not found", http_method_str(req->method), req->path);
        respond_error(req, 404, -32000, "Not Found", NULL);
        return;
    }
    if (!origin_allowed(req)) {
        log_debug(NULL, "%s %s: origin %s refused", http_method_str(req->method), req->path,
                  http_req_header(req, "origin"));
        respond_error(req, 403, -32000, "Forbidden: Origin not allowed", NULL);
        return;
    }
    switch (req->method) {
    case HTTP_POST:   handle_post(req); break;
    case HTTP_GET:    handle_get(req); break;
    case HTTP_DELETE: handle_delete(req); break;
    default:
        log_debug(NULL, "%s %s: method not allowed", http_method_str(req->method), req->path);
        respond_error(req, 405, -32000, "Method not allowed", "Allow: GET, POST, DELETE\r\n");
    }
}

/* ---- startup and shutdown --------------------------------------------------------------- */

/* The server is freed only after uv_run has returned: http.c may call this before the last
 * connection's handles have finished closing, and their close callbacks still read it. */
static void on_server_closed(http_server *s, void *arg)
{
    log_debug(NULL, "listener and connections closed");
}

static void on_signal(uv_signal_t *h, int signum)
{
    if (G.stopping) return;
    G.stopping = 1;
    log_info(NULL, "signal %d: shutting down", signum);
    uv_close((uv_handle_t *)&G.sigint, NULL);
    uv_close((uv_handle_t *)&G.sigterm, NULL);
    while (G.lru_head) session_destroy(G.lru_head);     /* ends the GET streams */
    /* answer what is in flight */
    for (exchange *ex = G.exchanges, *next; ex; ex = next) {
        ex->busy++;
        while (ex->ops) {
            json_t *id = json_incref(ex->ops->id);
            op_unlink(ex->ops);
            ex_reply(ex, rpc_error(id, -32000, "Server shutting down"));
            json_decref(id);
        }
        ex_maybe_finish(ex);
        next = ex->next;
        ex_release(ex);
    }
    http_server_close(G.srv, on_server_closed, NULL);
}

static int listen_socket(const char *host, int port, char *shown, size_t shown_len)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET; v4->sin_port = htons((uint16_t)port); sl = sizeof *v4;
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6; v6->sin6_port = htons((uint16_t)port); sl = sizeof *v6;
    } else {
        struct addrinfo hints = {0}, *ai = NULL;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE;
        int rc = getaddrinfo(host, NULL, &hints, &ai);
        if (rc || !ai) { fprintf(stderr, "mcp-example-server: cannot resolve %s: %s\n", host, gai_strerror(rc)); return -1; }
        memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
        sl = ai->ai_addrlen;
        freeaddrinfo(ai);
        if (ss.ss_family == AF_INET) v4->sin_port = htons((uint16_t)port); else v6->sin6_port = htons((uint16_t)port);
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) { perror("mcp-example-server: socket"); return -1; }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 511) < 0) {
        fprintf(stderr, "mcp-example-server: cannot listen on %s:%d: %s\n", host, port, strerror(errno));
        close(fd);
        return -1;
    }
    sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    char addr[INET6_ADDRSTRLEN];
    if (ss.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &v6->sin6_addr, addr, sizeof addr);
        snprintf(shown, shown_len, "[%s]:%u", addr, ntohs(v6->sin6_port));
    } else {
        inet_ntop(AF_INET, &v4->sin_addr, addr, sizeof addr);
        snprintf(shown, shown_len, "%s:%u", addr, ntohs(v4->sin_port));
    }
    return fd;
}

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: mcp-example-server [options]\n"
            "An example MCP server (Streamable HTTP, protocol 2025-11-25) at http://HOST:PORT/mcp.\n\n"
            "  --port N            TCP port (default %d; 0 picks a free one)\n"
            "  --host ADDR         address to bind (default 127.0.0.1)\n"
            "  --name NAME         serverInfo name (default mcp-example)\n"
            "  --tools a,b,c       tools to offer (default all):",
            DEFAULT_PORT);
    for (size_t i = 0; i < N_BASE_TOOLS; i++) fprintf(f, " %s", tool_table[i].name);
    fprintf(f,
            "\n"
            "  --max-sessions N    sessions kept, least recently used evicted (default %d)\n"
            "  --allow-any-origin  skip the Origin check (default: only loopback or the Host itself)\n"
            "  -v, --verbose       debug logging (one line per request)\n"
            "  -h, --help          this help\n",
            DEFAULT_MAX_SESSIONS);
}

/* "--flag value" or "--flag=value" */
static const char *flag_value(int argc, char **argv, int *i, const char *flag)
{
    size_t fl = strlen(flag);
    if (strncmp(argv[*i], flag, fl) != 0) return NULL;
    if (argv[*i][fl] == '=') return argv[*i] + fl + 1;
    if (argv[*i][fl] != '\0') return NULL;
    if (*i + 1 >= argc) {
        fprintf(stderr, "mcp-example-server: %s needs a value\n", flag);
        exit(2);
    }
    return argv[++*i];
}

static long parse_long(const char *s, const char *flag, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "mcp-example-server: invalid %s: %s\n", flag, s);
        exit(2);
    }
    return v;
}

static void select_tools(const char *list)
{
    for (size_t i = 0; i < N_BASE_TOOLS; i++) G.enabled[i] = 0;
    const char *p = list;
    while (*p) {
        size_t l = strcspn(p, ",");
        const char *s = p;
        size_t sl = l;
        while (sl && (*s == ' ')) { s++; sl--; }
        while (sl && s[sl - 1] == ' ') sl--;
        if (sl) {
            size_t i = 0;
            while (i < N_BASE_TOOLS && !(strlen(tool_table[i].name) == sl && strncmp(tool_table[i].name, s, sl) == 0)) i++;
            if (i == N_BASE_TOOLS) {
                fprintf(stderr, "mcp-example-server: unknown tool in --tools: %.*s\n", (int)sl, s);
                exit(2);
            }
            G.enabled[i] = 1;
        }
        p += l;
        if (*p == ',') p++;
    }
}

static json_t *build_def(const tool_def *d)
{
    json_error_t e;
    json_t *in = json_loads(d->input_schema, 0, &e);
    json_t *t = json_pack("{s:s,s:s,s:s,s:o}", "name", d->name, "title", d->title, "description",
                          d->description, "inputSchema", in);
    if (d->output_schema) json_object_set_new(t, "outputSchema", json_loads(d->output_schema, 0, &e));
    return t;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    long port = DEFAULT_PORT;
    int verbose = 0;
    G.name = "mcp-example";
    G.max_sessions = DEFAULT_MAX_SESSIONS;
    for (size_t i = 0; i < N_BASE_TOOLS; i++) G.enabled[i] = 1;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) { usage(stdout); return 0; }
        else if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--verbose") == 0) verbose = 1;
        else if (strcmp(argv[i], "--allow-any-origin") == 0) G.any_origin = 1;
        else if ((v = flag_value(argc, argv, &i, "--port"))) port = parse_long(v, "--port", 0, 65535);
        else if ((v = flag_value(argc, argv, &i, "--host"))) host = v;
        else if ((v = flag_value(argc, argv, &i, "--name"))) G.name = v;
        else if ((v = flag_value(argc, argv, &i, "--tools"))) select_tools(v);
        else if ((v = flag_value(argc, argv, &i, "--max-sessions")))
            G.max_sessions = (size_t)parse_long(v, "--max-sessions", 1, 100000000);
        else {
            fprintf(stderr, "mcp-example-server: unknown argument: %s\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    log_setup(verbose ? LOG_DEBUG : LOG_INFO, 0);
    signal(SIGPIPE, SIG_IGN);

    for (size_t i = 0; i < N_BASE_TOOLS; i++) G.defs[i] = build_def(&tool_table[i]);
    G.surprise_json = build_def(&surprise_def);

    char shown[INET6_ADDRSTRLEN + 16];
    int fd = listen_socket(host, (int)port, shown, sizeof shown);
    if (fd < 0) return 1;

    G.loop = uv_default_loop();
    http_limits lim = {
        .max_header_size = 64 * 1024, .max_headers = 200, .max_url = 8192, .max_body = MAX_BODY,
        .max_write_queue = 16u << 20, .header_timeout_ms = 30000, .body_timeout_ms = 30000,
        .idle_timeout_ms = 120000,
    };
    G.srv = http_server_new(G.loop, &lim, on_request, NULL);
    int rc = G.srv ? http_server_listen_fd(G.srv, fd) : UV_ENOMEM;
    if (rc) {
        fprintf(stderr, "mcp-example-server: listen: %s\n", uv_strerror(rc));
        return 1;
    }
    uv_signal_init(G.loop, &G.sigint);
    uv_signal_init(G.loop, &G.sigterm);
    uv_signal_start(&G.sigint, on_signal, SIGINT);
    uv_signal_start(&G.sigterm, on_signal, SIGTERM);

    printf("mcp-example-server %s listening on http://%s/mcp\n", G.name, shown);
    fflush(stdout);

    uv_run(G.loop, UV_RUN_DEFAULT);

    http_server_free(G.srv);

    for (size_t i = 0; i < N_BASE_TOOLS; i++) json_decref(G.defs[i]);
    json_decref(G.surprise_json);
    if (uv_loop_close(G.loop) != 0) log_warn(NULL, "event loop closed with handles still open");
    return 0;
}
