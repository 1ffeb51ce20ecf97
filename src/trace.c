/* trace — request ids, W3C Trace Context, spans and their OTLP/HTTP JSON export (trace.h).
 *
 * Cost. Tracing off, a request gets a request id (one pass over its headers, 16 random bytes from
 * a per-thread generator, 32 hex digits), an X-Request-Id line in its answer, and one relaxed
 * atomic add when it ends (reqstats); a tools/call adds a hash lookup of its name and a few adds.
 * Nothing is allocated. Tracing on, each span is a record (~0.7 KiB, reused: see ring) filled with
 * copies of what it names, and the upstream request formats its traceparent; SHA-256 of the
 * session id once per request; the JSON is written by the control loop, without printf. */
#include "trace.h"
#include "gateway.h"
#include "http.h"
#include "reqstats.h"
#include "upstream.h"
#include <jansson.h>
#include <llhttp.h>
#include <openssl/evp.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

enum { KIND_SERVER = 2, KIND_CLIENT = 3 };   /* OTLP SpanKind */

typedef struct span {
    uint8_t  trace_id[16], span_id[8], parent[8];
    int16_t  worker;         /* whose ring it goes to, and comes back to */
    uint8_t  kind;
    uint8_t  has_parent;
    uint8_t  outcome;        /* TO_* */
    uint8_t  method;         /* SERVER: RM_* */
    int      status;         /* HTTP status; 0 = none */
    int      port;           /* CLIENT: server.port */
    uint64_t start, end;     /* unix ns */
    char     http_method[8];
    char     path[96];       /* SERVER: url.path (truncated) */
    char     rid[TRACE_RID_MAX + 1];
    char     session[24];    /* SERVER: "sha256:" + 12 hex digits of Mcp-Session-Id */
    char     server[96];     /* the upstream's configured name (truncated) */
    char     address[64];    /* CLIENT: server.address */
    char     rpc[48];        /* CLIENT: the JSON-RPC method sent */
    char     tool[128];      /* gen_ai.tool.name */
    char     err[128];       /* CLIENT: why the request failed */
} span;

#define TRACE_FREE TRACE_RING   /* records given back to a worker for reuse */

/* Finished spans go to the exporter through slot; their records come back through fslot, so
 * that a worker reuses them instead of allocating (a record freed by another thread would
 * churn the worker's malloc arena). Both are single producer, single consumer. */
typedef struct ring {
    alignas(64) size_t head;          /* the worker's: spans pushed (release) */
    alignas(64) size_t tail;          /* the exporter's: spans taken (release) */
    alignas(64) size_t fhead;         /* the exporter's: records given back (release) */
    alignas(64) size_t ftail;         /* the worker's: records reused (release) */
    EVP_MD_CTX *md;                   /* the worker's: SHA-256 of session ids */
    span  *slot[TRACE_RING];
    span  *fslot[TRACE_FREE];
} ring;

typedef struct batch {
    size_t n;
    long   status;
} batch;

static struct {
    gateway    *gw;
    int         n_workers;
    int         on;                    /* an endpoint is set */
    char       *url;
    char      **hdrs;
    size_t      n_hdrs;
    const char *service;
    ring       *rings;
    uv_loop_t  *loop;
    upclient   *up;
    uv_timer_t  timer;
    uv_async_t  wake;
    int         handles;               /* timer and wake initialized */
    int         inflight;
    int         stopping;
    int         failing;               /* the last export failed: logged once until one works */
    buf         out;                   /* the JSON of a batch (kept: upclient_send copies it) */
    EVP_MD     *sha256;                /* fetched once: a fetch per digest costs more than the digest */
    uint64_t    exported, dropped, failed;   /* atomics */
} T;

/* ---- ids ------------------------------------------------------------------------------------- */

static _Thread_local uint64_t rng[4];
static _Thread_local int rng_seeded;

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256**, seeded per thread from getrandom: ids need to be unique, not secret */
static uint64_t rnd(void)
{
    if (!rng_seeded) {
        if (getrandom(rng, sizeof rng, 0) != (ssize_t)sizeof rng) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            rng[0] = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32);
            rng[1] = (uint64_t)getpid() * 0x9e3779b97f4a7c15ULL;
            rng[2] = (uint64_t)(uintptr_t)&rng_seeded;
            rng[3] = 0x2545f4914f6cdd1dULL;
        }
        rng_seeded = 1;
    }
    uint64_t r = rotl(rng[1] * 5, 7) * 9, t = rng[1] << 17;
    rng[2] ^= rng[0];
    rng[3] ^= rng[1];
    rng[1] ^= rng[2];
    rng[0] ^= rng[3];
    rng[2] ^= t;
    rng[3] = rotl(rng[3], 45);
    return r;
}

static void rnd_id(uint8_t *out, size_t n)   /* n = 8 or 16; never all zero */
{
    do {
        for (size_t i = 0; i < n; i += 8) {
            uint64_t r = rnd();
            memcpy(out + i, &r, 8);
        }
    } while (!memcmp(out, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", n));
}

void trace_hex(const uint8_t *b, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[b[i] >> 4];
        out[2 * i + 1] = hx[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static int lohex(char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; }

/* n bytes from 2n lower-case hex digits; -1 on anything else or when all are zero */
static int unhex(const char *s, uint8_t *out, size_t n)
{
    uint8_t any = 0;
    for (size_t i = 0; i < n; i++) {
        int hi = lohex(s[2 * i]), lo = hi < 0 ? -1 : lohex(s[2 * i + 1]);
        if (lo < 0) return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
        any |= out[i];
    }
    return any ? 0 : -1;
}

/* version "-" trace-id "-" parent-id "-" trace-flags, all lower-case hex (W3C Trace Context). */
int trace_parse_traceparent(const char *s, trace_parent *out)
{
    size_t len = strlen(s);
    if (len < 55) return -1;
    int v0 = lohex(s[0]), v1 = lohex(s[1]);
    if (v0 < 0 || v1 < 0 || (v0 == 15 && v1 == 15)) return -1;   /* ff is forbidden */
    int version = v0 << 4 | v1;
    if (s[2] != '-' || s[35] != '-' || s[52] != '-') return -1;
    if (version == 0 && len != 55) return -1;
    if (version > 0 && len > 55 && s[55] != '-') return -1;     /* a later version: more fields after a dash */
    trace_parent p;
    if (unhex(s + 3, p.trace_id, 16) || unhex(s + 36, p.span_id, 8)) return -1;
    int f0 = lohex(s[53]), f1 = lohex(s[54]);
    if (f0 < 0 || f1 < 0) return -1;
    p.flags = (uint8_t)(f0 << 4 | f1);
    if (version > 0) p.flags &= 1;   /* only the flags this version knows */
    *out = p;
    return 0;
}

int trace_request_id_ok(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (n >= TRACE_RID_MAX || !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                                    c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return n > 0;
}

int trace_tracestate_ok(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (n >= TRACESTATE_MAX || (unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7e) return 0;
    return n > 0;
}

static uint64_t now_unix_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void copy(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= cap) n = cap - 1;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

/* ---- spans: per worker, to the exporter ---------------------------------------------------- */

static void span_push(int wi, span *s)
{
    if (!T.rings || wi < 0 || wi >= T.n_workers) { free(s); return; }
    ring *r = &T.rings[wi];
    size_t h = r->head, t = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
    if (h - t >= TRACE_RING) {
        free(s);
        __atomic_add_fetch(&T.dropped, 1, __ATOMIC_RELAXED);
        return;
    }
    r->slot[h & (TRACE_RING - 1)] = s;
    __atomic_store_n(&r->head, h + 1, __ATOMIC_RELEASE);
    if (h + 1 - t == TRACE_BATCH) uv_async_send(&T.wake);   /* a batch is ready: no need to wait the second */
}

static span *span_new(int wi, int kind)
{
    span *s = NULL;
    if (T.rings && wi >= 0 && wi < T.n_workers) {   /* a record the exporter gave back */
        ring *r = &T.rings[wi];
        size_t t = r->ftail, h = __atomic_load_n(&r->fhead, __ATOMIC_ACQUIRE);
        if (t < h) {
            s = r->fslot[t & (TRACE_FREE - 1)];
            __atomic_store_n(&r->ftail, t + 1, __ATOMIC_RELEASE);
            memset(s, 0, sizeof *s);
        }
    }
    if (!s && !(s = calloc(1, sizeof *s))) {
        __atomic_add_fetch(&T.dropped, 1, __ATOMIC_RELAXED);
        return NULL;
    }
    s->worker = (int16_t)wi;
    s->kind = (uint8_t)kind;
    return s;
}

/* The exporter is done with s: back to its worker, or freed when that one has enough. */
static void span_release(span *s)
{
    ring *r = s->worker >= 0 && s->worker < T.n_workers ? &T.rings[s->worker] : NULL;
    if (r) {
        size_t h = r->fhead, t = __atomic_load_n(&r->ftail, __ATOMIC_ACQUIRE);
        if (h - t < TRACE_FREE) {
            r->fslot[h & (TRACE_FREE - 1)] = s;
            __atomic_store_n(&r->fhead, h + 1, __ATOMIC_RELEASE);
            return;
        }
    }
    free(s);
}

/* ---- a request --------------------------------------------------------------------------------- */

static _Thread_local char tl_id[TRACE_RID_MAX + 1], tl_tid[33];      /* the router's request */
static _Thread_local char tl_cid[TRACE_RID_MAX + 1], tl_ctid[33];    /* a relay's callback */

log_req trace_req_begin(worker *w, http_req *req, int mcp)
{
    trace_req *t = &req->tr;
    if (t->id[0]) goto scope;   /* routed again (a request that waited for something): the same ids */
    t->worker = (int16_t)w->idx;
    t->active = (uint8_t)(mcp != 0);
    const char *tp = NULL, *ts = NULL, *xr = NULL;
    int n_tp = 0, n_ts = 0;
    for (size_t i = 0; i < req->n_headers; i++) {   /* one pass for the three names */
        const http_header *h = &req->headers[i];
        if (h->name_len == 11 && !strncasecmp(h->name, "traceparent", 11)) { tp = h->value; n_tp++; }
        else if (h->name_len == 10 && !strncasecmp(h->name, "tracestate", 10)) { ts = h->value; n_ts++; }
        else if (h->name_len == 12 && !xr && !strncasecmp(h->name, "x-request-id", 12)) xr = h->value;
    }
    if (n_tp == 1 && trace_parse_traceparent(tp, &t->parent) == 0) {   /* two are as bad as a broken one */
        t->has_parent = 1;
        if (n_ts == 1 && trace_tracestate_ok(ts)) t->tracestate = ts;
    }
    span *s = NULL;
    if (mcp && T.on && (!t->has_parent || (t->parent.flags & 1)) && (s = span_new(w->idx, KIND_SERVER))) {
        if (t->has_parent) {
            memcpy(s->trace_id, t->parent.trace_id, 16);
            memcpy(s->parent, t->parent.span_id, 8);
            s->has_parent = 1;
        } else {
            rnd_id(s->trace_id, 16);
        }
        rnd_id(s->span_id, 8);
        s->start = now_unix_ns() - (uv_hrtime() - req->start_ns);   /* from its end of headers */
        copy(s->http_method, sizeof s->http_method, http_method_str(req->method));
        copy(s->path, sizeof s->path, req->path);
        trace_hex(s->trace_id, 16, t->tid);
        t->span = s;
    }
    if (xr && trace_request_id_ok(xr)) copy(t->id, sizeof t->id, xr);
    else if (s) memcpy(t->id, t->tid, 33);
    else if (t->has_parent) trace_hex(t->parent.trace_id, 16, t->id);
    else {
        uint8_t r[16];
        rnd_id(r, 16);
        trace_hex(r, 16, t->id);
    }
    if (s) copy(s->rid, sizeof s->rid, t->id);
scope:
    memcpy(tl_id, t->id, sizeof tl_id);
    memcpy(tl_tid, t->tid, sizeof tl_tid);
    return log_request(tl_id, tl_tid);
}

void trace_req_method(http_req *req, int kind, const char *method)
{
    req->tr.method = (uint8_t)reqstats_method(kind, method);
}

void trace_req_target(worker *w, http_req *req, size_t server, const char *tool, int allowed)
{
    trace_req *t = &req->tr;
    t->server = (int32_t)server + 1;
    if (tool && allowed) t->tool = reqstats_tool(w->idx, server, tool);
    if (t->span) {
        copy(t->span->server, sizeof t->span->server, w->cfg->servers[server].name);
        if (tool) copy(t->span->tool, sizeof t->span->tool, tool);
    }
}

static int http_kind(int m)
{
    return m == HTTP_GET ? RM_GET : m == HTTP_DELETE ? RM_DELETE : m == HTTP_OPTIONS ? RM_OPTIONS : RM_OTHER_HTTP;
}

void trace_req_end(http_req *req)
{
    trace_req *t = &req->tr;
    int m = t->method;
    if (m == RM_UNKNOWN && req->method != HTTP_POST) m = http_kind(req->method);
    if (t->active) reqstats_request(t->worker, m, t->status);
    if (log_enabled(LOG_DEBUG)) {   /* an access line */
        log_req prev = log_request(t->id, t->tid);
        log_debug("http", "%s %s%s%s -> %d in %.1f ms", http_method_str(req->method), req->path,
                  t->active && req->method == HTTP_POST ? " " : "",
                  t->active && req->method == HTTP_POST ? reqstats_method_name(m) : "", t->status,
                  (double)(uv_hrtime() - req->start_ns) / 1e6);
        log_request(prev.id, prev.trace_id);
    }
    span *s = t->span;
    if (!s) return;
    t->span = NULL;
    s->end = now_unix_ns();
    s->status = t->status;
    s->method = (uint8_t)m;
    if (!s->outcome) s->outcome = t->outcome;
    const char *sid = http_req_header(req, "mcp-session-id");
    ring *r = &T.rings[s->worker];
    if (sid && !r->md) r->md = EVP_MD_CTX_new();
    uint8_t md[EVP_MAX_MD_SIZE];
    if (sid && r->md && EVP_DigestInit_ex2(r->md, T.sha256, NULL) && EVP_DigestUpdate(r->md, sid, strlen(sid)) &&
        EVP_DigestFinal_ex(r->md, md, NULL)) {   /* never the session id itself: a bearer credential */
        memcpy(s->session, "sha256:", 7);
        trace_hex(md, 6, s->session + 7);
    }
    span_push(t->worker, s);
}

/* ---- a relayed request ------------------------------------------------------------------------ */

static void traceparent_fmt(char out[56], const uint8_t trace_id[16], const uint8_t span_id[8], uint8_t flags)
{
    memcpy(out, "00-", 3);
    trace_hex(trace_id, 16, out + 3);
    out[35] = '-';
    trace_hex(span_id, 8, out + 36);
    out[52] = '-';
    trace_hex(&flags, 1, out + 53);
}

void trace_call_start(trace_call *c, worker *w, http_req *req, size_t server)
{
    const trace_req *t = &req->tr;
    memcpy(c->id, t->id, sizeof c->id);
    memcpy(c->tid, t->tid, sizeof c->tid);
    c->worker = t->worker;
    c->tool = t->tool;
    c->server = (int32_t)server + 1;
    c->start_ns = uv_hrtime();
    if (t->span) {
        c->mode = 2;
        memcpy(c->ctx.trace_id, t->span->trace_id, 16);
        memcpy(c->ctx.span_id, t->span->span_id, 8);
        c->ctx.flags = 1;
    } else if (t->has_parent) {   /* not recorded here: the client's context goes on as it came */
        c->mode = 1;
        c->ctx = t->parent;
        traceparent_fmt(c->traceparent, c->ctx.trace_id, c->ctx.span_id, c->ctx.flags);
    }
    if (c->mode && t->tracestate) c->tracestate = strdup(t->tracestate);
}

static void client_finish(trace_call *c)
{
    span *s = c->span;
    c->span = NULL;
    if (!s->end) s->end = now_unix_ns();
    span_push(c->worker, s);
}

/* host and port of an http(s) URL */
static void url_host(const char *url, char *host, size_t cap, int *port)
{
    const char *p = strstr(url, "://");
    int https = !strncasecmp(url, "https", 5);
    p = p ? p + 3 : url;
    const char *at = p + strcspn(p, "/?#");
    const char *cred = memchr(p, '@', (size_t)(at - p));
    if (cred) p = cred + 1;
    const char *end = p;
    if (*p == '[') { end = strchr(p, ']'); end = end && end < at ? end + 1 : at; }
    else end = p + strcspn(p, ":/?#");
    size_t n = (size_t)(end - p) < cap - 1 ? (size_t)(end - p) : cap - 1;
    memcpy(host, p, n);
    host[n] = '\0';
    *port = *end == ':' ? atoi(end + 1) : https ? 443 : 80;
}

void trace_call_send(trace_call *c, up_req *u, const char *rpc_method, json_t *msg)
{
    u->request_id = c->id;
    u->trace_id = c->tid[0] ? c->tid : NULL;
    if (!c->mode) return;
    if (c->span) client_finish(c);   /* the previous upstream request of this call */
    span *s;
    if (c->mode == 2 && (s = span_new(c->worker, KIND_CLIENT))) {
        memcpy(s->trace_id, c->ctx.trace_id, 16);
        memcpy(s->parent, c->ctx.span_id, 8);
        s->has_parent = 1;
        rnd_id(s->span_id, 8);
        s->start = now_unix_ns();
        copy(s->http_method, sizeof s->http_method, u->method ? u->method : "POST");
        copy(s->rid, sizeof s->rid, c->id);
        const gw_server_cfg *srv = &T.gw->cfg->servers[c->server - 1];   /* slots never move */
        copy(s->server, sizeof s->server, srv->name);
        url_host(srv->url ? srv->url : "", s->address, sizeof s->address, &s->port);
        if (!rpc_method) rpc_method = json_string_value(json_object_get(msg, "method"));
        copy(s->rpc, sizeof s->rpc, rpc_method);
        if (rpc_method && !strcmp(rpc_method, "tools/call"))   /* the upstream's own name */
            copy(s->tool, sizeof s->tool, json_string_value(json_object_get(json_object_get(msg, "params"), "name")));
        c->span = s;
        traceparent_fmt(c->traceparent, s->trace_id, s->span_id, 1);
    } else if (c->mode == 2) {
        traceparent_fmt(c->traceparent, c->ctx.trace_id, c->ctx.span_id, 1);   /* no memory: the server span */
    }
    u->traceparent = c->traceparent;
    u->tracestate = c->tracestate;
}

void trace_call_done(trace_call *c, long status, const char *err)
{
    span *s = c->span;
    if (!s) return;
    s->status = (int)status;
    if (err) copy(s->err, sizeof s->err, err);
    s->end = now_unix_ns();
}

void trace_call_outcome(trace_call *c, http_req *req, json_t *final)
{
    if (c->outcome || (!c->tool && c->mode != 2)) return;   /* neither measured nor recorded */
    int o = TO_UPSTREAM_ERROR;
    if (final) {
        json_t *res = json_object_get(final, "result");
        o = json_object_get(final, "error") || !res ? TO_RPC_ERROR
            : json_is_true(json_object_get(res, "isError")) ? TO_TOOL_ERROR : TO_OK;
    }
    c->outcome = (uint8_t)o;
    if (c->span) c->span->outcome = (uint8_t)o;
    if (req) req->tr.outcome = (uint8_t)o;
}

void trace_call_end(trace_call *c, long status)
{
    if (c->span) {
        if (!c->span->end) c->span->status = (int)status;
        if (!c->span->outcome) c->span->outcome = c->outcome ? c->outcome : TO_CANCELLED;
        client_finish(c);
    }
    if (c->tool) reqstats_tool_done(c->worker, c->tool, c->outcome ? c->outcome : TO_CANCELLED, uv_hrtime() - c->start_ns);
    c->tool = 0;
    free(c->tracestate);
    c->tracestate = NULL;
}

log_req trace_call_log(const trace_call *c)
{
    memcpy(tl_cid, c->id, sizeof tl_cid);
    memcpy(tl_ctid, c->tid, sizeof tl_ctid);
    return log_request(tl_cid, tl_ctid);
}

/* ---- export (the control loop) ---------------------------------------------------------------- */

/* The JSON is written with appends only (printf would be most of the exporter's time). */
static void put_u64(buf *b, uint64_t v)
{
    char d[24];
    size_t i = sizeof d;
    do d[--i] = (char)('0' + v % 10); while ((v /= 10));
    buf_append(b, d + i, sizeof d - i);
}

static void put_str(buf *b, const char *v)   /* a JSON string, quotes included */
{
    buf_append(b, "\"", 1);
    buf_json_str(b, v, strlen(v));
    buf_append(b, "\"", 1);
}

static void attr_key(buf *b, int *n, const char *k)
{
    buf_appends(b, (*n)++ ? ",{\"key\":\"" : "{\"key\":\"");
    buf_appends(b, k);
}

static void attr_str(buf *b, int *n, const char *k, const char *v)
{
    if (!v || !*v) return;
    attr_key(b, n, k);
    buf_appends(b, "\",\"value\":{\"stringValue\":");
    put_str(b, v);
    buf_appends(b, "}}");
}

static void attr_int(buf *b, int *n, const char *k, uint64_t v)
{
    attr_key(b, n, k);
    buf_appends(b, "\",\"value\":{\"intValue\":\"");
    put_u64(b, v);
    buf_appends(b, "\"}}");
}

static void span_json(buf *b, const span *s, int first)
{
    char id[33];
    buf_appends(b, first ? "{\"traceId\":\"" : ",{\"traceId\":\"");
    trace_hex(s->trace_id, 16, id);
    buf_append(b, id, 32);
    buf_appends(b, "\",\"spanId\":\"");
    trace_hex(s->span_id, 8, id);
    buf_append(b, id, 16);
    if (s->has_parent) {
        buf_appends(b, "\",\"parentSpanId\":\"");
        trace_hex(s->parent, 8, id);
        buf_append(b, id, 16);
    }
    /* SERVER "POST /mcp tools/call" (the method is a bounded name); CLIENT "tools/call echo"
     * (the MCP semantic conventions: method and target) */
    int named = s->method >= RM_INITIALIZE && s->method <= RM_RESPONSE;
    const char *method = s->kind == KIND_SERVER ? reqstats_method_name(s->method) : s->rpc;
    char name[300];
    buf nb = {name, 0, sizeof name, sizeof name - 1};
    if (s->kind == KIND_SERVER) {
        buf_appends(&nb, s->http_method);
        buf_appends(&nb, " ");
        buf_appends(&nb, s->path);
        if (named) { buf_appends(&nb, " "); buf_appends(&nb, method); }
    } else {
        buf_appends(&nb, s->rpc[0] ? s->rpc : s->http_method);
        if (s->tool[0]) { buf_appends(&nb, " "); buf_appends(&nb, s->tool); }
    }
    name[nb.len] = '\0';
    buf_appends(b, "\",\"name\":");
    put_str(b, name);
    buf_appends(b, s->kind == KIND_SERVER ? ",\"kind\":2,\"startTimeUnixNano\":\"" : ",\"kind\":3,\"startTimeUnixNano\":\"");
    put_u64(b, s->start);
    buf_appends(b, "\",\"endTimeUnixNano\":\"");
    put_u64(b, s->end >= s->start ? s->end : s->start);
    buf_appends(b, "\",\"attributes\":[");
    int n = 0;
    attr_str(b, &n, "http.request.method", s->http_method);
    if (s->status > 0) attr_int(b, &n, "http.response.status_code", (uint64_t)s->status);
    attr_str(b, &n, "http.request_id", s->rid);
    if (s->kind == KIND_SERVER) {
        attr_str(b, &n, "url.path", s->path);
        if (named) attr_str(b, &n, "mcp.method.name", method);
        attr_str(b, &n, "mcp.session.id", s->session);
    } else {
        attr_str(b, &n, "mcp.method.name", s->rpc);
        attr_str(b, &n, "server.address", s->address);
        if (s->port > 0) attr_int(b, &n, "server.port", (uint64_t)s->port);
    }
    attr_str(b, &n, "mcp.server", s->server);
    attr_str(b, &n, "gen_ai.tool.name", s->tool);
    if (s->outcome) attr_str(b, &n, "mcp.outcome", reqstats_outcome_name(s->outcome));
    /* the error: for a SERVER span a 5xx (a 4xx is the client's), for a CLIENT span any failure;
     * a JSON-RPC or tool error in a 200 answer for both */
    char etype[32] = "";
    if (s->kind == KIND_CLIENT && s->err[0]) strcpy(etype, "transport");
    else if (s->status >= 500 || (s->kind == KIND_CLIENT && s->status >= 400)) snprintf(etype, sizeof etype, "%d", s->status);
    else if (s->outcome == TO_TOOL_ERROR || s->outcome == TO_RPC_ERROR || s->outcome == TO_UPSTREAM_ERROR)
        snprintf(etype, sizeof etype, "%s", reqstats_outcome_name(s->outcome));
    else if (s->kind == KIND_SERVER && !s->status) strcpy(etype, "cancelled");
    if (etype[0]) attr_str(b, &n, "error.type", etype);
    buf_appends(b, "],\"status\":{");
    if (etype[0] && strcmp(etype, "cancelled")) {
        buf_appends(b, "\"code\":2");
        if (s->err[0]) {
            buf_appends(b, ",\"message\":");
            put_str(b, s->err);
        }
    }
    buf_appends(b, "}}");
}

static void on_export_head(up_call *c, void *ud, long status, const char *ctype, const char *sid)
{
    ((batch *)ud)->status = status;
}

static void final_close(uv_timer_t *t);
static void flush(void);

static void on_export_done(up_call *c, void *ud, const char *err)
{
    batch *bt = ud;
    T.inflight--;
    if (!err && bt->status >= 200 && bt->status < 300) {
        __atomic_add_fetch(&T.exported, bt->n, __ATOMIC_RELAXED);
        if (T.failing) log_info("trace", "spans reach the collector again");
        T.failing = 0;
    } else {
        __atomic_add_fetch(&T.failed, bt->n, __ATOMIC_RELAXED);
        char why[64];
        if (!err) snprintf(why, sizeof why, "HTTP %ld", bt->status);
        if (!T.failing) log_warn("trace", "export to %s failed (%s): %zu span(s) lost; not retried", T.url, err ? err : why, bt->n);
        else log_debug("trace", "export failed (%s): %zu span(s) lost", err ? err : why, bt->n);
        T.failing = 1;
    }
    free(bt);
    if (!T.stopping) {   /* a batch waiting meanwhile goes now, not at the next tick */
        for (int w = 0; w < T.n_workers; w++)
            if (__atomic_load_n(&T.rings[w].head, __ATOMIC_ACQUIRE) - T.rings[w].tail >= TRACE_BATCH) { flush(); break; }
    }
    if (T.stopping && T.inflight == 0) {   /* not from inside libcurl's callback: on the next loop turn */
        uv_ref((uv_handle_t *)&T.timer);
        uv_timer_start(&T.timer, final_close, 0, 0);
    }
}

static const up_callbacks export_cb = {on_export_head, NULL, on_export_done};

/* Takes up to TRACE_BATCH spans from the rings (round robin from where the last batch stopped)
 * and POSTs them. Returns the number sent. */
static size_t export_batch(void)
{
    static int next;
    span *got[TRACE_BATCH];
    size_t n = 0;
    for (int k = 0; k < T.n_workers && n < TRACE_BATCH; k++) {
        ring *r = &T.rings[(next + k) % T.n_workers];
        size_t t = r->tail, h = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);
        while (t < h && n < TRACE_BATCH) got[n++] = r->slot[t++ & (TRACE_RING - 1)];
        __atomic_store_n(&r->tail, t, __ATOMIC_RELEASE);
    }
    next = (next + 1) % (T.n_workers ? T.n_workers : 1);
    if (!n) return 0;
    buf b = T.out;
    buf_reset(&b);
    buf_appends(&b, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
    int na = 0;
    attr_str(&b, &na, "service.name", T.service);
    attr_str(&b, &na, "service.version", GW_VERSION);
    attr_str(&b, &na, "telemetry.sdk.name", "mcp-gateway");
    attr_str(&b, &na, "telemetry.sdk.language", "c");
    buf_appends(&b, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"mcp-gateway\",\"version\":\"" GW_VERSION "\"},\"spans\":[");
    for (size_t i = 0; i < n; i++) {
        span_json(&b, got[i], i == 0);
        span_release(got[i]);
    }
    int bad = buf_appends(&b, "]}]}]}");
    batch *bt = calloc(1, sizeof *bt);
    up_req u = {.url = T.url, .method = "POST", .body = b.data, .body_len = b.len, .headers = (const char *const *)T.hdrs,
                .n_headers = T.n_hdrs, .timeout_ms = T.stopping ? 2000 : 10000, .max_body = 1 << 20};   /* exit waits ≤ 2 s */
    if (bad || !bt || !upclient_send(T.up, &u, &export_cb, bt)) {
        free(bt);
        __atomic_add_fetch(&T.failed, n, __ATOMIC_RELAXED);
    } else {
        bt->n = n;
        T.inflight++;
    }
    T.out = b;
    return n;
}

static void flush(void)
{
    while (T.inflight < TRACE_INFLIGHT && export_batch() > 0) {}
}

static void on_tick(uv_timer_t *t) { flush(); }
static void on_wake(uv_async_t *a) { if (!T.stopping) flush(); }

static void on_closed(uv_handle_t *h) { (void)h; }

static void final_close(uv_timer_t *t)
{
    if (T.up) upclient_free(T.up);
    T.up = NULL;
    uv_close((uv_handle_t *)&T.timer, on_closed);
    uv_close((uv_handle_t *)&T.wake, on_closed);
    T.handles = 0;
}

/* "k=v,k2=v2" (values URL-encoded) → "k: v" lines; a pair that would not be a header is skipped. */
static void parse_headers(const char *spec)
{
    char *spec_copy = strdup(spec), *save = NULL;
    for (char *p = spec_copy ? strtok_r(spec_copy, ",", &save) : NULL; p; p = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(p, '=');
        if (!eq) continue;
        *eq = '\0';
        char *k = p, *v = eq + 1;
        while (*k == ' ' || *k == '\t') k++;
        size_t kl = strlen(k);
        while (kl && (k[kl - 1] == ' ' || k[kl - 1] == '\t')) k[--kl] = '\0';
        int ok = kl > 0;
        for (size_t i = 0; i < kl && ok; i++)
            ok = (k[i] >= 'a' && k[i] <= 'z') || (k[i] >= 'A' && k[i] <= 'Z') || (k[i] >= '0' && k[i] <= '9') ||
                 strchr("!#$%&'*+-.^_`|~", k[i]);
        char val[1024];
        size_t vl = 0;
        for (const char *q = v; *q && ok && vl < sizeof val - 1; q++) {
            int c = (unsigned char)*q;
            if (c == '%' && q[1] && q[2]) {
                char hx[3] = {q[1], q[2], 0};
                char *end;
                long x = strtol(hx, &end, 16);
                if (!*end) { c = (int)x; q += 2; }
            }
            if (c < 0x20 || c == 0x7f) ok = 0;
            val[vl++] = (char)c;
        }
        while (vl && val[vl - 1] == ' ') vl--;
        val[vl] = '\0';
        char *vs = val;
        while (*vs == ' ') vs++;
        if (!ok) { log_warn("trace", "OTEL_EXPORTER_OTLP_HEADERS: '%s' skipped (not a header)", k); continue; }
        size_t n = kl + strlen(vs) + 3;
        char *line = malloc(n), **nh = realloc(T.hdrs, (T.n_hdrs + 1) * sizeof *nh);
        if (!line || !nh) { free(line); if (nh) T.hdrs = nh; continue; }
        snprintf(line, n, "%s: %s", k, vs);
        T.hdrs = nh;
        T.hdrs[T.n_hdrs++] = line;
    }
    free(spec_copy);
}

int trace_init(gateway *gw, uv_loop_t *ctl)
{
    const gw_config *cfg = gw->cfg;
    T.gw = gw;
    T.n_workers = gw->n_workers;
    size_t slots = cfg->servers_cap > cfg->n_servers ? cfg->servers_cap : cfg->n_servers;
    if (reqstats_init(gw->n_workers, slots)) return -1;
    const char *full = cfg->otel_traces_endpoint, *base = cfg->otel_endpoint;
    if ((!full || !*full) && (!base || !*base)) return 0;
    if (full && *full) T.url = strdup(full);
    else {
        size_t n = strlen(base) + 16;
        T.url = malloc(n);
        if (T.url) snprintf(T.url, n, "%s%sv1/traces", base, base[strlen(base) - 1] == '/' ? "" : "/");
    }
    if (!T.url) return -1;
    if (strncasecmp(T.url, "http://", 7) && strncasecmp(T.url, "https://", 8)) {
        log_warn("trace", "OTLP endpoint %s is not an http(s) URL: tracing is off", T.url);
        free(T.url);
        T.url = NULL;
        return 0;
    }
    T.service = cfg->otel_service_name && *cfg->otel_service_name ? cfg->otel_service_name : "mcp-gateway";
    if (cfg->otel_headers && *cfg->otel_headers) parse_headers(cfg->otel_headers);
    size_t rl = (size_t)gw->n_workers * sizeof *T.rings;   /* a multiple of 64: the counters' alignment */
    if ((T.rings = aligned_alloc(alignof(ring), rl))) memset(T.rings, 0, rl);
    buf_init(&T.out, (size_t)64 << 20);
    T.sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    T.up = upclient_new(ctl);
    if (!T.rings || !T.up || !T.sha256) return -1;
    T.loop = ctl;
    uv_timer_init(ctl, &T.timer);
    uv_async_init(ctl, &T.wake, on_wake);
    uv_unref((uv_handle_t *)&T.timer);   /* neither keeps the control loop from ending at shutdown */
    uv_unref((uv_handle_t *)&T.wake);
    uv_timer_start(&T.timer, on_tick, 1000, 1000);
    T.handles = 1;
    T.on = 1;
    log_info("trace", "OpenTelemetry traces to %s (OTLP/HTTP JSON), service.name %s", T.url, T.service);
    return 0;
}

int trace_enabled(void) { return T.on; }

void trace_shutdown(void)
{
    if (!T.handles) return;
    T.stopping = 1;
    uv_timer_stop(&T.timer);
    for (int i = 0; i < 64 && export_batch() > 0; i++) {}   /* what the workers left, at once */
    if (T.inflight == 0) {
        uv_ref((uv_handle_t *)&T.timer);
        uv_timer_start(&T.timer, final_close, 0, 0);
    }
}

void trace_free(void)
{
    T.on = 0;
    for (int w = 0; T.rings && w < T.n_workers; w++) {   /* anything the shutdown could not send */
        ring *r = &T.rings[w];
        for (size_t t = r->tail; t < r->head; t++) free(r->slot[t & (TRACE_RING - 1)]);
        for (size_t t = r->ftail; t < r->fhead; t++) free(r->fslot[t & (TRACE_FREE - 1)]);
        EVP_MD_CTX_free(r->md);
    }
    free(T.rings);
    T.rings = NULL;
    buf_free(&T.out);
    EVP_MD_free(T.sha256);
    T.sha256 = NULL;
    for (size_t i = 0; i < T.n_hdrs; i++) free(T.hdrs[i]);
    free(T.hdrs);
    T.hdrs = NULL;
    T.n_hdrs = 0;
    free(T.url);
    T.url = NULL;
    reqstats_free();
}

void trace_span_counts(uint64_t *exported, uint64_t *dropped, uint64_t *failed)
{
    *exported = __atomic_load_n(&T.exported, __ATOMIC_RELAXED);
    *dropped = __atomic_load_n(&T.dropped, __ATOMIC_RELAXED);
    *failed = __atomic_load_n(&T.failed, __ATOMIC_RELAXED);
}
