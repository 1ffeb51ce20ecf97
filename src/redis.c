/* redis — the shared store of the replicas (redis.h): URL, connections, session state, routing of the
 * clients' answers, the event store. Every connection belongs to one loop and is touched by that loop's
 * thread only; what crosses threads is the session table (locked), a few atomics and the workers' inboxes. */
#include "redis.h"
#include "session_id.h"
#include "b64.h"
#include "log.h"
#include "relay.h"
#include "server.h"
#include "streams.h"
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define LOAD_TIMEOUT_MS    200     /* a request waits this long for its session's shared state */
#define FETCH_TIMEOUT_MS   1000    /* a GET resuming another replica's stream waits this long for its events */
#define CONNECT_TIMEOUT_MS 3000    /* resolve + connect + AUTH/SELECT */
#define STALL_MS           3000    /* commands waiting without any answer this long: the connection is reset */
#define BACKOFF_MIN_MS     100
#define BACKOFF_MAX_MS     5000
#define MAX_OUTSTANDING    100000  /* commands waiting per connection; more are dropped */

/* ---- URL ------------------------------------------------------------------------------------------ */

static int fail(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "CACHE_CONNECTION_STRING: %s", msg);
    return -1;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes in[0..n) into out (NUL-terminated). -1 on a bad escape, a NUL or no room. */
static int pct_decode(const char *in, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)in[i];
        if (ch == '%') {
            if (i + 2 >= n) return -1;
            int hi = hexval(in[i + 1]), lo = hexval(in[i + 2]);
            if (hi < 0 || lo < 0) return -1;
            ch = hi * 16 + lo;
            i += 2;
        }
        if (!ch || o + 1 >= cap) return -1;
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return 0;
}

int redis_url_parse(const char *url, redis_url *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof *u);
    u->port = 6379;
    if (!url || !*url) return fail(err, errlen, "empty");
    if (!strncasecmp(url, "rediss://", 9))
        return fail(err, errlen,
                    "rediss:// (TLS) is not supported: this build's hiredis (0.14) has no TLS. Run a TLS tunnel "
                    "beside the gateway (stunnel, ghostunnel, a sidecar) and point redis://127.0.0.1:<port> at it");
    if (strncasecmp(url, "redis://", 8))
        return fail(err, errlen, "must be redis://[[user]:password@]host[:port][/db]");
    const char *p = url + 8;
    size_t alen = strcspn(p, "/?#");
    const char *end = p + alen, *hp = p;
    const char *at = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == '@') at = q;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (!colon) return fail(err, errlen, "the user info must be user:password or :password");
        if (pct_decode(p, (size_t)(colon - p), u->user, sizeof u->user) ||
            pct_decode(colon + 1, (size_t)(at - colon - 1), u->pass, sizeof u->pass))
            return fail(err, errlen, "bad percent-encoding (or too long) in the user or password");
        u->has_pass = u->pass[0] != '\0';
        if (!u->has_pass && u->user[0]) return fail(err, errlen, "a user needs a password (user:password@)");
        hp = at + 1;
    }
    const char *port = NULL, *hend = end;
    if (*hp == '[') {
        const char *rb = memchr(hp, ']', (size_t)(end - hp));
        if (!rb || rb == hp + 1) return fail(err, errlen, "bad [IPv6] host");
        if (rb + 1 < end) {
            if (rb[1] != ':') return fail(err, errlen, "bad [IPv6]:port");
            port = rb + 2;
        }
        if ((size_t)(rb - hp - 1) >= sizeof u->host) return fail(err, errlen, "host too long");
        memcpy(u->host, hp + 1, (size_t)(rb - hp - 1));
        u->host[rb - hp - 1] = '\0';
        for (const char *q = u->host; *q; q++)
            if (hexval(*q) < 0 && *q != ':' && *q != '.') return fail(err, errlen, "bad [IPv6] host");
    } else {
        const char *colon = memchr(hp, ':', (size_t)(end - hp));
        if (colon) { port = colon + 1; hend = colon; }
        if (hend == hp) return fail(err, errlen, "no host");
        if ((size_t)(hend - hp) >= sizeof u->host) return fail(err, errlen, "host too long");
        for (const char *q = hp; q < hend; q++)
            if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') || *q == '.' ||
                  *q == '-' || *q == '_'))
                return fail(err, errlen, "bad character in the host");
        memcpy(u->host, hp, (size_t)(hend - hp));
        u->host[hend - hp] = '\0';
    }
    if (port) {
        long v = 0;
        const char *q = port;
        for (; q < end && *q >= '0' && *q <= '9' && v <= 65535; q++) v = v * 10 + (*q - '0');
        if (q == port || q != end || v < 1 || v > 65535) return fail(err, errlen, "bad port");
        u->port = (int)v;
    }
    const char *rest = end;
    if (*rest == '/') {
        rest++;
        long v = 0;
        const char *q = rest;
        for (; *q >= '0' && *q <= '9' && v <= 1000000; q++) v = v * 10 + (*q - '0');
        if (v > 1000000 || (*q && *q != '?')) return fail(err, errlen, "the path must be the database number (/0, /1, ...)");
        u->db = (int)v;
        rest = q;
    }
    if (*rest == '?') u->query_ignored = 1;
    else if (*rest) return fail(err, errlen, "unexpected text after the host");
    return 0;
}

void redis_session_key(const char *sid, char key[33], uint64_t *expires)
{
    unsigned char h[SHA256_DIGEST_LENGTH];
    size_t n = strlen(sid);
    SHA256((const unsigned char *)sid, n, h);
    for (int i = 0; i < 16; i++) snprintf(key + 2 * i, 3, "%02x", h[i]);
    *expires = 0;
    unsigned char pl[56];
    size_t pn = 0;
    if (n == SESSION_ID_LEN && !strncmp(sid, "v1.", 3) && b64url_decode(sid + 3, 72, pl, &pn) == 0 && pn == 54)
        for (int i = 8; i < 16; i++) *expires = *expires << 8 | pl[i];
}

/* ---- hiredis on libuv ---------------------------------------------------------------------------------
 * As hiredis's adapters/libuv.h, except that a poll error (a refused connect: POLLERR) is passed to
 * hiredis as the events it waited for, so that it reads the socket's error at once; 0.14's adapter drops
 * it, and a refused connection would wait for the connect timeout. */

typedef struct uvev {
    redisAsyncContext *ac;
    uv_poll_t          poll;
    int                events;
} uvev;

static void uvev_poll(uv_poll_t *h, int status, int events)
{
    uvev *p = h->data;
    int ev = status ? p->events : events;
    if (p->ac && (ev & UV_READABLE)) redisAsyncHandleRead(p->ac);
    if (p->ac && (ev & UV_WRITABLE)) redisAsyncHandleWrite(p->ac);
}

static void uvev_set(uvev *p, int on, int flag)
{
    p->events = on ? p->events | flag : p->events & ~flag;
    if (p->events) uv_poll_start(&p->poll, p->events, uvev_poll);
    else uv_poll_stop(&p->poll);
}

static void uvev_add_read(void *d) { uvev_set(d, 1, UV_READABLE); }
static void uvev_del_read(void *d) { uvev_set(d, 0, UV_READABLE); }
static void uvev_add_write(void *d) { uvev_set(d, 1, UV_WRITABLE); }
static void uvev_del_write(void *d) { uvev_set(d, 0, UV_WRITABLE); }
static void uvev_closed(uv_handle_t *h) { free(h->data); }

static void uvev_cleanup(void *d)
{
    uvev *p = d;
    p->ac = NULL;   /* the context is going */
    uv_close((uv_handle_t *)&p->poll, uvev_closed);
}

static int uvev_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    uvev *p = calloc(1, sizeof *p);
    if (!p) return REDIS_ERR;
    if (uv_poll_init(loop, &p->poll, ac->c.fd) != 0) {
        free(p);
        return REDIS_ERR;
    }
    p->ac = ac;
    p->poll.data = p;
    ac->ev.addRead = uvev_add_read;
    ac->ev.delRead = uvev_del_read;
    ac->ev.addWrite = uvev_add_write;
    ac->ev.delWrite = uvev_del_write;
    ac->ev.cleanup = uvev_cleanup;
    ac->ev.data = p;
    return REDIS_OK;
}

/* ---- process state ------------------------------------------------------------------------------------ */

typedef struct rconn rconn;
enum { RC_WAIT, RC_RESOLVING, RC_CONNECTING, RC_READY };

struct rconn {
    uv_loop_t         *loop;
    worker            *w;           /* NULL: the control loop's subscriber */
    redisAsyncContext *ac;          /* the live context, NULL between attempts */
    int                state;
    int                counted;     /* counted in R.n_ready */
    int                closing;
    int                timer_closed;
    int                gai_busy;
    int                setup_left;  /* setup replies (AUTH, SELECT, PING) before it is ready */
    uv_timer_t         timer;       /* back-off, connect timeout, then the watchdog */
    uv_getaddrinfo_t   gai;
    uint64_t           backoff_ms;
    size_t             outstanding; /* commands sent, not answered */
    uint64_t           progress_ms; /* the last answer (or the first command after none waited) */
    int                drop_logged;
};

static struct {
    gateway  *gw;
    int       enabled;
    redis_url url;
    char      where[300];   /* host:port/db, for the log (never the password) */
    char      chan[48];     /* mcpgw:<db>:ctl */
    unsigned  n_conns, n_ready;   /* atomics */
    int       down_logged, ever_up;  /* atomics */
    uint32_t  epoch;        /* atomic: +1 per (re)subscription */
    uint64_t  slow_logged;  /* atomic: when the last "did not answer in time" was logged (ms) */
    rconn    *sub;
    int       tok_on;       /* tokens are shared (GATEWAY_SIGNING_KEY set) */
    uint8_t   tok_key[32];  /* their sealing key */
} R;

static const char loaded_marker = 0;   /* req->ud of a request routed again after its load */

int redis_enabled(void) { return R.enabled; }

const char *redis_state(void)
{
    if (!R.enabled) return NULL;
    unsigned ready = __atomic_load_n(&R.n_ready, __ATOMIC_RELAXED), n = __atomic_load_n(&R.n_conns, __ATOMIC_RELAXED);
    return ready >= n && n ? "connected" : "unreachable";
}

int redis_init(gateway *gw, char *err, size_t errlen)
{
    const char *url = gw->cfg->cache_url;
    if (!url || !*url) return 0;
    if (redis_url_parse(url, &R.url, err, errlen)) return -1;
    R.gw = gw;
    R.enabled = 1;
    if (strchr(R.url.host, ':')) snprintf(R.where, sizeof R.where, "[%s]:%d/%d", R.url.host, R.url.port, R.url.db);
    else snprintf(R.where, sizeof R.where, "%s:%d/%d", R.url.host, R.url.port, R.url.db);
    snprintf(R.chan, sizeof R.chan, "mcpgw:%d:ctl", R.url.db);
    if (R.url.query_ignored) log_warn("redis", "CACHE_CONNECTION_STRING: the ?parameters are ignored");
    const char *sk = gw->cfg->signing_key;
    if (sk && *sk && redis_token_key(sk, strlen(sk), R.tok_key) == 0) R.tok_on = 1;
    else log_info("redis", "GATEWAY_SIGNING_KEY is not set: upstream tokens are not shared through Redis");
    return 0;
}

/* ---- connections ------------------------------------------------------------------------------------------ */

static void rc_timer(uv_timer_t *t);
static void rc_fail(rconn *c, const char *why);

static void rc_arm(rconn *c, uint64_t ms, uint64_t repeat)
{
    if (!c->closing) uv_timer_start(&c->timer, rc_timer, ms, repeat);
}

/* An answer from ac: accounted for on its connection. NULL when ac is not (or no more) the live one. */
static rconn *rc_seen(const redisAsyncContext *ac)
{
    rconn *c = ac->data;
    if (!c || c->ac != ac) return NULL;
    if (c->outstanding) c->outstanding--;
    c->progress_ms = uv_now(c->loop);
    return c;
}

static int rc_raw(rconn *c, redisCallbackFn *fn, void *pd, int argc, const char **argv, const size_t *lens)
{
    if (!c->ac || redisAsyncCommandArgv(c->ac, fn, pd, argc, argv, lens) != REDIS_OK) return -1;
    if (c->outstanding++ == 0) c->progress_ms = uv_now(c->loop);
    return 0;
}

/* A command on a ready connection; -1 (nothing sent) otherwise. */
static int rc_send(rconn *c, redisCallbackFn *fn, void *pd, int argc, const char **argv, const size_t *lens)
{
    if (!c || c->state != RC_READY) return -1;
    if (c->outstanding >= MAX_OUTSTANDING) {
        if (!c->drop_logged) log_warn("redis", "%zu commands wait for Redis: new ones are dropped", c->outstanding);
        c->drop_logged = 1;
        return -1;
    }
    c->drop_logged = 0;
    return rc_raw(c, fn, pd, argc, argv, lens);
}

static void rc_ready(rconn *c)
{
    c->state = RC_READY;
    c->backoff_ms = BACKOFF_MIN_MS;
    rc_arm(c, 1000, 1000);   /* the watchdog */
    if (c->counted) return;
    c->counted = 1;
    unsigned n = __atomic_add_fetch(&R.n_ready, 1, __ATOMIC_RELAXED);
    if (n < __atomic_load_n(&R.n_conns, __ATOMIC_RELAXED)) return;
    if (__atomic_exchange_n(&R.down_logged, 0, __ATOMIC_RELAXED))
        log_info("redis", "Redis at %s is reachable again: sessions are shared with the other replicas", R.where);
    else if (!__atomic_exchange_n(&R.ever_up, 1, __ATOMIC_RELAXED))
        log_info("redis", "connected to Redis at %s: sessions are shared with the other replicas", R.where);
}

static void rc_fail(rconn *c, const char *why)
{
    if (c->ac) {   /* never from the connect/disconnect callbacks: they clear c->ac first */
        redisAsyncContext *ac = c->ac;
        c->ac = NULL;
        redisAsyncFree(ac);   /* waiting callbacks get NULL (now, or after the callback we are in) */
    }
    c->outstanding = 0;
    if (c->counted) {
        c->counted = 0;
        __atomic_sub_fetch(&R.n_ready, 1, __ATOMIC_RELAXED);
    }
    if (c->closing) return;
    if (!__atomic_exchange_n(&R.down_logged, 1, __ATOMIC_RELAXED))
        log_warn("redis", "Redis at %s unreachable (%s): serving from this process's own state (lossy for sessions "
                          "that move between replicas); reconnecting with back-off", R.where, why);
    else
        log_debug("redis", "%s connection: %s; next attempt in %llu ms", c->w ? "worker" : "subscriber", why,
                  (unsigned long long)c->backoff_ms);
    c->state = RC_WAIT;
    uint64_t jitter = 0;
    RAND_bytes((unsigned char *)&jitter, sizeof jitter);
    rc_arm(c, c->backoff_ms + jitter % (c->backoff_ms / 4 + 1), 0);
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
}

static void rc_on_connect(const redisAsyncContext *ac, int status)
{
    rconn *c = ac->data;
    if (!c || c->ac != ac || status == REDIS_OK) return;   /* ready once the setup replies are in */
    char why[200];
    snprintf(why, sizeof why, "%s", ac->errstr && *ac->errstr ? ac->errstr : "cannot connect");
    c->ac = NULL;   /* hiredis frees it */
    rc_fail(c, why);
}

static void rc_on_disconnect(const redisAsyncContext *ac, int status)
{
    rconn *c = ac->data;
    if (!c || c->ac != ac) return;
    char why[200];
    snprintf(why, sizeof why, "%s", ac->errstr && *ac->errstr ? ac->errstr : "connection closed");
    c->ac = NULL;   /* hiredis frees it */
    rc_fail(c, why);
}

static void rc_on_setup(redisAsyncContext *ac, void *reply, void *pd)
{
    rconn *c = rc_seen(ac);
    redisReply *r = reply;
    if (!c || !r || c->state != RC_CONNECTING) return;   /* no reply: the disconnect callback follows */
    if (r->type == REDIS_REPLY_ERROR) {
        char why[300];
        snprintf(why, sizeof why, "%s answered %.*s", (const char *)pd, (int)r->len, r->str ? r->str : "");
        rc_fail(c, why);
        return;
    }
    if (--c->setup_left == 0) rc_ready(c);
}

static void ctl_message(const char *msg, size_t len);

static void rc_on_sub(redisAsyncContext *ac, void *reply, void *pd)
{
    rconn *c = ac->data;
    redisReply *r = reply;
    if (!c || c->ac != ac || !r) return;
    c->progress_ms = uv_now(c->loop);
    if (r->type == REDIS_REPLY_ERROR) {
        char why[300];
        snprintf(why, sizeof why, "SUBSCRIBE answered %.*s", (int)r->len, r->str ? r->str : "");
        rc_fail(c, why);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || r->element[0]->type != REDIS_REPLY_STRING) return;
    const char *kind = r->element[0]->str;
    if (!strcasecmp(kind, "subscribe")) {
        if (c->outstanding) c->outstanding--;
        if (c->state == RC_CONNECTING && --c->setup_left == 0) {
            __atomic_add_fetch(&R.epoch, 1, __ATOMIC_RELAXED);   /* what was published meanwhile is unknown */
            rc_ready(c);
        }
    } else if (!strcasecmp(kind, "message") && r->element[2]->type == REDIS_REPLY_STRING) {
        ctl_message(r->element[2]->str, r->element[2]->len);
    }
}

static void rc_on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    rconn *c = req->data;
    c->gai_busy = 0;
    char ip[INET6_ADDRSTRLEN] = "";
    if (!status && res) {
        if (res->ai_family == AF_INET) inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, ip, sizeof ip);
        else if (res->ai_family == AF_INET6) inet_ntop(AF_INET6, &((struct sockaddr_in6 *)res->ai_addr)->sin6_addr, ip, sizeof ip);
    }
    uv_freeaddrinfo(res);
    if (c->closing) {
        if (c->timer_closed) free(c);
        return;
    }
    if (c->state != RC_RESOLVING) return;   /* timed out meanwhile */
    if (status || !ip[0]) {
        char why[300];
        snprintf(why, sizeof why, "cannot resolve %s: %s", R.url.host, status ? uv_strerror(status) : "no address");
        rc_fail(c, why);
        return;
    }
    redisAsyncContext *ac = redisAsyncConnect(ip, R.url.port);
    if (!ac || ac->err) {
        char why[200];
        snprintf(why, sizeof why, "%s", ac && ac->errstr ? ac->errstr : "out of memory");
        if (ac) redisAsyncFree(ac);
        rc_fail(c, why);
        return;
    }
    ac->data = c;
    if (uvev_attach(ac, c->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        rc_fail(c, "cannot watch the socket");
        return;
    }
    redisEnableKeepAlive(&ac->c);   /* a silent peer is found by TCP keep-alive */
    redisAsyncSetConnectCallback(ac, rc_on_connect);
    redisAsyncSetDisconnectCallback(ac, rc_on_disconnect);
    c->ac = ac;
    c->state = RC_CONNECTING;
    c->outstanding = 0;
    c->setup_left = 0;
    if (R.url.has_pass) {   /* AUTH [user] password */
        const char *av[3];
        size_t al[3];
        int n = 0;
        av[n] = "AUTH";
        al[n++] = 4;
        if (R.url.user[0]) { av[n] = R.url.user; al[n++] = strlen(R.url.user); }
        av[n] = R.url.pass;
        al[n++] = strlen(R.url.pass);
        if (!rc_raw(c, rc_on_setup, (void *)"AUTH", n, av, al)) c->setup_left++;
    }
    if (c->w) {
        char db[16];
        snprintf(db, sizeof db, "%d", R.url.db);
        const char *sel[2] = {"SELECT", db};
        size_t sl[2] = {6, strlen(db)};
        if (R.url.db && !rc_raw(c, rc_on_setup, (void *)"SELECT", 2, sel, sl)) c->setup_left++;
        const char *ping[1] = {"PING"};
        size_t pl[1] = {4};
        if (!rc_raw(c, rc_on_setup, (void *)"PING", 1, ping, pl)) c->setup_left++;
    } else {
        const char *sub[2] = {"SUBSCRIBE", R.chan};
        size_t sl[2] = {9, strlen(R.chan)};
        if (!rc_raw(c, rc_on_sub, NULL, 2, sub, sl)) c->setup_left++;
    }
    if (!c->setup_left) rc_fail(c, "cannot queue the setup commands");
}

static void rc_connect(rconn *c)
{
    if (c->gai_busy) { rc_arm(c, c->backoff_ms, 0); return; }   /* an old lookup still runs */
    c->state = RC_RESOLVING;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    c->gai.data = c;
    int rc = uv_getaddrinfo(c->loop, &c->gai, rc_on_resolved, R.url.host, NULL, &hints);
    if (rc) {
        rc_fail(c, uv_strerror(rc));
        return;
    }
    c->gai_busy = 1;
    rc_arm(c, CONNECT_TIMEOUT_MS, 0);
}

static void rc_timer(uv_timer_t *t)
{
    rconn *c = t->data;
    switch (c->state) {
    case RC_WAIT: rc_connect(c); break;
    case RC_RESOLVING:
    case RC_CONNECTING: rc_fail(c, "timed out connecting"); break;
    case RC_READY:
        if (c->outstanding && uv_now(c->loop) - c->progress_ms > STALL_MS) rc_fail(c, "no answer for 3 s");
        break;
    }
}

static rconn *rc_new(uv_loop_t *loop, worker *w)
{
    rconn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->loop = loop;
    c->w = w;
    c->backoff_ms = BACKOFF_MIN_MS;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    __atomic_add_fetch(&R.n_conns, 1, __ATOMIC_RELAXED);
    rc_arm(c, 0, 0);   /* the first attempt runs on the loop's own thread */
    return c;
}

static void rc_timer_closed(uv_handle_t *h)
{
    rconn *c = h->data;
    c->timer_closed = 1;
    if (!c->gai_busy) free(c);
}

static void rc_close(rconn *c)
{
    if (!c) return;
    c->closing = 1;
    uv_timer_stop(&c->timer);
    rc_fail(c, "closing");
    __atomic_sub_fetch(&R.n_conns, 1, __ATOMIC_RELAXED);
    if (c->gai_busy) uv_cancel((uv_req_t *)&c->gai);
    uv_close((uv_handle_t *)&c->timer, rc_timer_closed);
}

void redis_start(gateway *gw, uv_loop_t *ctl)
{
    if (R.enabled && !R.sub) R.sub = rc_new(ctl, NULL);
}

void redis_stop(void)
{
    rc_close(R.sub);
    R.sub = NULL;
}

void redis_worker_open(worker *w)
{
    if (!R.enabled) return;
    /* ids this loop gives (upstream request ids, stream ids) start at a random point: an upstream session and
     * a session's event store are shared with other processes, whose counters must not meet these */
    uint64_t r[2] = {0, 0};
    RAND_bytes((unsigned char *)r, sizeof r);
    w->next_up_id = r[0] & ((1ull << 36) - 1);
    w->next_stream = r[1] & ((1ull << 36) - 1);
    w->redis = rc_new(&w->loop, w);
}

void redis_worker_close(worker *w)
{
    rc_close(w->redis);
    w->redis = NULL;
}

/* ---- commands ------------------------------------------------------------------------------------------------ */

typedef struct rargs {
    int         n;
    const char *v[10];
    size_t      l[10];
    char        num[10][24];
} rargs;

static void arg(rargs *a, const char *s, size_t n) { a->v[a->n] = s; a->l[a->n++] = n; }
static void args(rargs *a, const char *s) { arg(a, s, strlen(s)); }
static void argu(rargs *a, unsigned long long u)
{
    int n = snprintf(a->num[a->n], sizeof a->num[0], "%llu", u);
    arg(a, a->num[a->n], (size_t)n);
}

static rconn *ready_conn(worker *w)
{
    rconn *c = w ? w->redis : NULL;
    return c && c->state == RC_READY ? c : NULL;
}

static void on_ack(redisAsyncContext *ac, void *reply, void *pd)
{
    rc_seen(ac);
    redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_ERROR) log_debug("redis", "%s: %.*s", pd ? (const char *)pd : "command", (int)r->len, r->str);
}

static void send_cmd(rconn *c, const char *what, rargs *a) { rc_send(c, on_ack, (void *)what, a->n, a->v, a->l); }

/* The server slot named name that this process shares (Streamable HTTP, not removed), or -1. */
static long shared_slot(const gw_config *cfg, const char *name, size_t len)
{
    for (size_t i = 0; i < cfg->n_servers; i++) {
        const gw_server_cfg *s = &cfg->servers[i];
        if (s->transport == GW_TRANSPORT_HTTP && gw_server_live(s) && strlen(s->name) == len && !memcmp(s->name, name, len))
            return (long)i;
    }
    return -1;
}

static int is_shared(const gw_config *cfg, size_t server)
{
    return server < cfg->n_servers && cfg->servers[server].transport == GW_TRANSPORT_HTTP && gw_server_live(&cfg->servers[server]);
}

/* The session's keys: "mcpgw:<kind>:{K}". */
typedef struct skeys {
    char     k[33];
    uint64_t expires;
    char     s[48], e[48], eb[48];
} skeys;

static int session_keys(const char *sid, skeys *k)
{
    redis_session_key(sid, k->k, &k->expires);
    snprintf(k->s, sizeof k->s, "mcpgw:s:{%s}", k->k);
    snprintf(k->e, sizeof k->e, "mcpgw:e:{%s}", k->k);
    snprintf(k->eb, sizeof k->eb, "mcpgw:eb:{%s}", k->k);
    return k->expires > (uint64_t)time(NULL) ? 0 : -1;   /* nothing to keep for an expired (or odd) id */
}

static void expire_at(rconn *c, const char *key, uint64_t when)
{
    rargs a = {0};
    args(&a, "EXPIREAT");
    args(&a, key);
    argu(&a, when);
    send_cmd(c, "EXPIREAT", &a);
}

static void publish(rconn *c, const char *msg, size_t len)
{
    rargs a = {0};
    args(&a, "PUBLISH");
    args(&a, R.chan);
    arg(&a, msg, len);
    send_cmd(c, "PUBLISH", &a);
}

static void hset(rconn *c, const skeys *k, const char *field, size_t flen, const char *val, size_t vlen)
{
    rargs a = {0};
    args(&a, "HSET");
    args(&a, k->s);
    arg(&a, field, flen);
    arg(&a, val, vlen);
    send_cmd(c, "HSET", &a);
    expire_at(c, k->s, k->expires);
}

void redis_note_upstream(worker *w, const char *sid, size_t server, const char *stored)
{
    rconn *c = ready_conn(w);
    skeys k;
    if (!c || !stored || !is_shared(w->cfg, server) || session_keys(sid, &k)) return;
    const char *name = w->cfg->servers[server].name;
    size_t nl = strlen(name), sl = strlen(stored);
    char *f = malloc(nl + sl + SESSION_ID_MAX + 8);
    if (!f) return;
    int fl = snprintf(f, nl + 3, "u:%s", name);
    hset(c, &k, f, (size_t)fl, stored, sl);
    /* every process that has the session learns it (and opens its GET stream where the client's is) */
    int ml = sprintf(f, "U\n%s\n%s\n%s", sid, name, stored);
    publish(c, f, (size_t)ml);
    free(f);
}

void redis_note_level(worker *w, const char *sid, const char *level)
{
    rconn *c = ready_conn(w);
    skeys k;
    if (!c || session_keys(sid, &k)) return;
    hset(c, &k, "lvl", 3, level, strlen(level));
    char m[SESSION_ID_MAX + 32];
    int ml = snprintf(m, sizeof m, "L\n%s\n%s", sid, level);
    publish(c, m, (size_t)ml);
}

void redis_revoke(worker *w, const char *sid)
{
    rconn *c = ready_conn(w);
    skeys k;
    if (!c) {
        if (R.enabled)
            log_warn("redis", "session ended while Redis is unreachable: the other replicas still accept it until it expires");
        return;
    }
    if (session_keys(sid, &k)) return;
    rargs a = {0};
    args(&a, "DEL");
    args(&a, k.s);
    args(&a, k.e);
    args(&a, k.eb);
    send_cmd(c, "DEL", &a);
    hset(c, &k, "rev", 3, "1", 1);   /* a tombstone until the id expires: a process loading it answers 404 */
    char m[SESSION_ID_MAX + 8];
    int ml = snprintf(m, sizeof m, "R\n%s", sid);
    publish(c, m, (size_t)ml);
}

void redis_note_pending(worker *w, const char *sid, uint64_t gid, size_t server, const char *version,
                        const char *up_session, const char *orig_id)
{
    rconn *c = ready_conn(w);
    skeys k;
    if (!c || !is_shared(w->cfg, server) || !up_session || !*up_session || session_keys(sid, &k)) return;
    char key[96];
    snprintf(key, sizeof key, "mcpgw:p:{%s}:%llu", k.k, (unsigned long long)gid);
    const char *name = w->cfg->servers[server].name;
    size_t cap = strlen(name) + strlen(version) + strlen(up_session) + strlen(orig_id) + 8;
    char *v = malloc(cap);
    if (!v) return;
    int vl = snprintf(v, cap, "%s\n%s %s\n%s", name, version, up_session, orig_id);
    uint64_t now = (uint64_t)time(NULL), ttl = (uint64_t)w->cfg->upstream_timeout_ms / 1000 + 60;
    if (now + ttl > k.expires) ttl = k.expires - now;
    rargs a = {0};
    args(&a, "SET");
    args(&a, key);
    arg(&a, v, (size_t)vl);
    args(&a, "EX");
    argu(&a, ttl ? ttl : 1);
    send_cmd(c, "SET", &a);
    free(v);
}

/* KEYS[1] the list, KEYS[2] its byte count; ARGV: the event, max events, max bytes, expiry. */
static const char event_script[] =
    "local n = redis.call('RPUSH', KEYS[1], ARGV[1])\n"
    "local b = redis.call('INCRBY', KEYS[2], string.len(ARGV[1]))\n"
    "local me, mb = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "while n > 0 and (n > me or b > mb) do\n"
    "  local o = redis.call('LPOP', KEYS[1])\n"
    "  if not o then break end\n"
    "  b = redis.call('DECRBY', KEYS[2], string.len(o))\n"
    "  n = n - 1\n"
    "end\n"
    "redis.call('EXPIREAT', KEYS[1], ARGV[4])\n"
    "redis.call('EXPIREAT', KEYS[2], ARGV[4])\n"
    "return n\n";

void redis_note_event(worker *w, const char *sid, const char *stream, uint64_t seq, const char *data, size_t len)
{
    rconn *c = ready_conn(w);
    skeys k;
    size_t max_ev = (size_t)w->cfg->max_session_events, max_b = (size_t)w->cfg->max_session_event_bytes;
    if (!c || !max_ev || len > max_b || session_keys(sid, &k)) return;   /* as the local store: not kept */
    char head[64];
    int hl = snprintf(head, sizeof head, "%s/%llu ", stream, (unsigned long long)seq);
    char *ev = malloc((size_t)hl + len);
    if (!ev) return;
    memcpy(ev, head, (size_t)hl);
    memcpy(ev + hl, data, len);
    rargs a = {0};
    args(&a, "EVAL");
    arg(&a, event_script, sizeof event_script - 1);
    args(&a, "2");
    args(&a, k.e);
    args(&a, k.eb);
    arg(&a, ev, (size_t)hl + len);
    argu(&a, max_ev);
    argu(&a, max_b + (size_t)hl);   /* the byte cap counts each event's "<stream>/<seq> " too */
    argu(&a, k.expires);
    send_cmd(c, "EVAL (event store)", &a);
    free(ev);
}

/* ---- waiting for Redis ------------------------------------------------------------------------------------------ */

enum { OP_LOAD, OP_REFRESH, OP_RESP, OP_FETCH, OP_TOK };

struct redis_op {
    worker        *w;
    int            kind;
    http_req      *req;          /* OP_LOAD, OP_FETCH: the request waiting; NULL once the client left */
    void         (*cb)(void *ud);/* OP_REFRESH */
    void         (*tcb)(void *ud, char *plain); /* OP_TOK */
    void          *ud;
    int            cancelled;
    int            got;          /* a reply was read */
    int            replied;      /* hiredis is done with the op */
    int            finished;     /* its continuation ran (or was skipped) */
    int            closed;       /* its timer is closed */
    int            timer_on;
    uint32_t       epoch;        /* at the start of a load */
    uv_timer_t     timer;
    char           sid[SESSION_ID_MAX];
    char         **kv;           /* HGETALL: field, value, ... (owned) */
    size_t         n_kv;
    char          *val;          /* GET (owned) */
    size_t         val_len;
    buf            frames;       /* LRANGE: the SSE frames to replay */
    size_t         n_frames;
    session_claims cl;           /* OP_FETCH */
    char           stream[24];
    uint64_t       after;
    json_t        *msg;          /* OP_RESP (owned) */
    char           pkey[96];
};

static void op_free(redis_op *o)
{
    for (size_t i = 0; i < o->n_kv; i++) free(o->kv[i]);
    free(o->kv);
    free(o->val);
    buf_free(&o->frames);
    json_decref(o->msg);
    free(o);
}

static redis_op *op_new(worker *w, int kind, const char *sid)
{
    redis_op *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    o->w = w;
    o->kind = kind;
    snprintf(o->sid, sizeof o->sid, "%s", sid);
    o->epoch = __atomic_load_n(&R.epoch, __ATOMIC_RELAXED);
    return o;
}

static void op_parse(redis_op *o, redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR) {
        log_debug("redis", "read refused: %.*s", (int)r->len, r->str);
        return;
    }
    if (o->kind == OP_LOAD || o->kind == OP_REFRESH) {
        if (r->type != REDIS_REPLY_ARRAY) return;
        o->kv = calloc(r->elements ? r->elements : 1, sizeof *o->kv);
        if (!o->kv) return;
        for (size_t i = 0; i < r->elements; i++) {
            redisReply *e = r->element[i];
            if (e->type != REDIS_REPLY_STRING || !(o->kv[i] = strndup(e->str, e->len))) break;
            o->n_kv = i + 1;
        }
        o->n_kv &= ~(size_t)1;
        o->got = 1;
    } else if (o->kind == OP_RESP || o->kind == OP_TOK) {
        if (r->type == REDIS_REPLY_STRING && (o->val = strndup(r->str, r->len))) o->val_len = r->len;
        o->got = 1;
    } else if (o->kind == OP_FETCH) {
        if (r->type != REDIS_REPLY_ARRAY) return;
        size_t sl = strlen(o->stream);
        buf_init(&o->frames, (size_t)o->w->cfg->max_session_event_bytes * 2 + 4096);
        for (size_t i = 0; i < r->elements; i++) {
            redisReply *e = r->element[i];
            if (e->type != REDIS_REPLY_STRING || e->len <= sl + 1 || memcmp(e->str, o->stream, sl) || e->str[sl] != '/')
                continue;
            const char *sp = memchr(e->str, ' ', e->len);
            if (!sp) continue;
            char *end;
            unsigned long long seq = strtoull(e->str + sl + 1, &end, 10);
            if (end != sp || seq <= o->after) continue;
            if (buf_printf(&o->frames, "id: %.*s\ndata: ", (int)(sp - e->str), e->str) ||
                buf_append(&o->frames, sp + 1, e->len - (size_t)(sp + 1 - e->str)) || buf_append(&o->frames, "\n\n", 2))
                break;
            o->n_frames++;
        }
        o->got = 1;
    }
}

static void op_done(redis_op *o);
static void op_closed(uv_handle_t *h)
{
    redis_op *o = h->data;
    o->closed = 1;
    if (o->replied) op_free(o);
}

static void op_timer(uv_timer_t *t)
{
    redis_op *o = t->data;
    o->finished = 1;
    uv_close((uv_handle_t *)&o->timer, op_closed);
    if (!o->cancelled) op_done(o);
}

static void op_reply(redisAsyncContext *ac, void *reply, void *pd)
{
    redis_op *o = pd;
    rc_seen(ac);
    o->replied = 1;
    if (!o->finished) {
        if (reply) op_parse(o, reply);
        uv_timer_start(&o->timer, op_timer, 0, 0);   /* goes on from the loop, outside hiredis */
    } else if (o->closed) {
        op_free(o);
    }
}

/* Sends the op's command and waits at most timeout_ms. -1 (o freed) when nothing could be sent. */
static int op_send(redis_op *o, uint64_t timeout_ms, rargs *a)
{
    if (rc_send(ready_conn(o->w), op_reply, o, a->n, a->v, a->l)) {
        op_free(o);
        return -1;
    }
    uv_timer_init(&o->w->loop, &o->timer);
    o->timer.data = o;
    uv_timer_start(&o->timer, op_timer, timeout_ms, 0);
    return 0;
}

static void op_req_abort(http_req *req)
{
    redis_op *o = req->ud;
    o->req = NULL;
}

static void log_slow(const char *what)
{
    uint64_t now = uv_hrtime() / 1000000, last = __atomic_load_n(&R.slow_logged, __ATOMIC_RELAXED);
    if (last && now - last < 10000) return;   /* at most every 10 s */
    __atomic_store_n(&R.slow_logged, now, __ATOMIC_RELAXED);
    log_warn("redis", "Redis did not answer in time: %s", what);
}

static void free_up(worker *w, char **up)
{
    if (!up) return;
    for (size_t i = 0; i < w->cfg->n_servers; i++) free(up[i]);
    free(up);
}

static int kv_has(const redis_op *o, const char *field)
{
    for (size_t i = 0; i + 1 < o->n_kv; i += 2)
        if (!strcmp(o->kv[i], field)) return 1;
    return 0;
}

/* The session's shared state (HGETALL) into the table. */
static void apply_state(redis_op *o)
{
    worker *w = o->w;
    session_table *t = w->gw->sessions;
    uint64_t now = (uint64_t)time(NULL), last = 0, idle = (uint64_t)w->cfg->session_idle_s;
    int revoked = 0;
    for (size_t i = 0; i + 1 < o->n_kv; i += 2) {
        if (!strcmp(o->kv[i], "rev")) revoked = 1;
        else if (!strcmp(o->kv[i], "t")) last = strtoull(o->kv[i + 1], NULL, 10);
    }
    if (!revoked && last && idle && last + idle + idle / 8 <= now) {
        log_debug("session", "a session idle on every replica for %llu s: ended", (unsigned long long)(now - last));
        revoked = 1;
    }
    if (revoked) {
        free_up(w, session_revoke(t, o->sid, now));
        return;
    }
    for (size_t i = 0; i + 1 < o->n_kv; i += 2) {
        const char *f = o->kv[i], *v = o->kv[i + 1];
        if (!strncmp(f, "u:", 2)) {
            long slot = shared_slot(w->cfg, f + 2, strlen(f + 2));
            if (slot >= 0 && strchr(v, ' ')) session_set_upstream(t, o->sid, (size_t)slot, v);
        } else if (!strcmp(f, "lvl") && strlen(v) < 12) {
            session_set_level(t, o->sid, v);
        }
    }
    session_shared_loaded(t, o->sid, o->epoch);
    /* what this process has and Redis lacks (written while it was unreachable, or lost with a restart
     * without persistence) goes back to it */
    rconn *c = ready_conn(w);
    skeys k;
    if (!c || session_keys(o->sid, &k)) return;
    char stored[192], f[300];
    for (size_t i = 0; i < w->cfg->n_servers; i++) {
        if (!is_shared(w->cfg, i) || session_get_upstream(t, o->sid, i, stored, sizeof stored)) continue;
        int fl = snprintf(f, sizeof f, "u:%s", w->cfg->servers[i].name);
        if (fl >= (int)sizeof f || kv_has(o, f)) continue;
        hset(c, &k, f, (size_t)fl, stored, strlen(stored));
    }
    if (!kv_has(o, "lvl") && session_get_level(t, o->sid, stored, sizeof stored) == 0)
        hset(c, &k, "lvl", 3, stored, strlen(stored));
}

static void op_done(redis_op *o)
{
    worker *w = o->w;
    if (!o->replied && o->kind == OP_TOK) log_slow("an upstream token is obtained without the shared cache");
    else if (!o->replied && o->kind != OP_RESP) log_slow("a session goes on with this process's own state (lossy)");
    switch (o->kind) {
    case OP_TOK: {
        size_t n = 0;
        char *plain = o->val ? redis_unseal(R.tok_key, o->pkey, o->val, o->val_len, &n) : NULL;
        if (o->val && !plain) log_debug("redis", "a shared token does not open (another signing key?): ignored");
        o->tcb(o->ud, plain);
        break;
    }
    case OP_LOAD:
    case OP_REFRESH:
        if (o->got) apply_state(o);
        if (o->kind == OP_REFRESH) {
            o->cb(o->ud);
        } else if (o->req) {
            http_req *req = o->req;
            o->req = NULL;
            req->on_abort = NULL;
            req->ud = (void *)&loaded_marker;
            server_redispatch(w, req);   /* from the start: auth, the session (loaded now), the method */
        }
        break;
    case OP_FETCH:
        if (o->req) {
            http_req *req = o->req;
            o->req = NULL;
            req->on_abort = NULL;
            log_debug("session", "resuming stream %s after %llu: %zu event(s) from Redis", o->stream,
                      (unsigned long long)o->after, o->n_frames);
            streams_open_replayed(w, req, o->sid, &o->cl, o->n_frames ? o->frames.data : NULL, o->frames.len);
        }
        break;
    case OP_RESP: {
        if (!o->val) {
            log_debug("session", "a response for no pending server request (nor in Redis): ignored");
            break;
        }
        rconn *c = ready_conn(w);
        if (c) {   /* answered: the replica that relayed the request drops its own entry for it */
            rargs a = {0};
            args(&a, "DEL");
            args(&a, o->pkey);
            send_cmd(c, "DEL", &a);
            const char *gid = strrchr(o->pkey, ':') + 1;
            char m[SESSION_ID_MAX + 40];
            int ml = snprintf(m, sizeof m, "P\n%s\n%s", o->sid, gid);
            publish(c, m, (size_t)ml);
        }
        char *nl1 = strchr(o->val, '\n'), *nl2 = nl1 ? strchr(nl1 + 1, '\n') : NULL, *sp = nl1 ? strchr(nl1 + 1, ' ') : NULL;
        long slot = nl1 ? shared_slot(w->cfg, o->val, (size_t)(nl1 - o->val)) : -1;
        json_t *oid = nl2 ? json_loads(nl2 + 1, JSON_DECODE_ANY, NULL) : NULL;
        if (slot < 0 || !oid || !sp || sp > nl2) {
            json_decref(oid);
            log_debug("session", "a response routed through Redis names no server here: ignored");
            break;
        }
        *sp = *nl2 = '\0';
        json_object_set_new(o->msg, "id", oid);
        log_debug("session", "a response to a request another replica relayed: sent to %s through Redis",
                  w->cfg->servers[slot].name);
        relay_send_upstream_as(w, o->sid, (size_t)slot, nl1 + 1, sp + 1, o->msg);
        break;
    }
    }
}

int redis_req_loaded(const http_req *req) { return req->ud == (const void *)&loaded_marker; }

int redis_session_check(worker *w, http_req *req, const char *sid, int force)
{
    if (!w->redis || redis_req_loaded(req)) return 0;
    rconn *c = ready_conn(w);
    uint64_t now = (uint64_t)time(NULL), idle = (uint64_t)w->cfg->session_idle_s;
    int load = 0, touch = 0;
    session_shared_state(w->gw->sessions, sid, __atomic_load_n(&R.epoch, __ATOMIC_RELAXED), now,
                         c ? (idle / 8 ? idle / 8 : 1) : 0, &load, &touch);
    skeys k;
    if (!c || (!touch && !load && !force) || session_keys(sid, &k)) return 0;
    if (touch) {   /* the last use all replicas see, for the idle timeout */
        char t[24];
        int tl = snprintf(t, sizeof t, "%llu", (unsigned long long)now);
        hset(c, &k, "t", 1, t, (size_t)tl);
    }
    if (!load && !force) return 0;
    redis_op *o = op_new(w, OP_LOAD, sid);
    if (!o) return 0;
    o->req = req;
    rargs a = {0};
    args(&a, "HGETALL");
    args(&a, k.s);
    if (op_send(o, LOAD_TIMEOUT_MS, &a)) return 0;
    req->ud = o;
    req->on_abort = op_req_abort;
    return 1;
}

void redis_session_opened(worker *w, const char *sid)
{
    if (w->redis) session_shared_loaded(w->gw->sessions, sid, __atomic_load_n(&R.epoch, __ATOMIC_RELAXED));
}

redis_op *redis_session_refresh(worker *w, const char *sid, void (*cb)(void *ud), void *ud)
{
    skeys k;
    if (!ready_conn(w) || session_keys(sid, &k)) return NULL;
    redis_op *o = op_new(w, OP_REFRESH, sid);
    if (!o) return NULL;
    o->cb = cb;
    o->ud = ud;
    rargs a = {0};
    args(&a, "HGETALL");
    args(&a, k.s);
    return op_send(o, LOAD_TIMEOUT_MS, &a) ? NULL : o;
}

void redis_cancel(redis_op *o)
{
    if (o) o->cancelled = 1;
}

int redis_client_response(worker *w, const char *sid, json_t *msg)
{
    skeys k;
    if (!ready_conn(w) || session_keys(sid, &k)) return -1;
    char *id = json_dumps(json_object_get(msg, "id"), JSON_ENCODE_ANY | JSON_COMPACT);
    if (!id || strlen(id) > 24) { free(id); return -1; }   /* the gateway's ids are integers */
    redis_op *o = op_new(w, OP_RESP, sid);
    if (!o) { free(id); return -1; }
    snprintf(o->pkey, sizeof o->pkey, "mcpgw:p:{%s}:%s", k.k, id);
    free(id);
    o->msg = json_incref(msg);
    rargs a = {0};
    args(&a, "GET");
    args(&a, o->pkey);
    return op_send(o, LOAD_TIMEOUT_MS * 5, &a);
}

int redis_resume_stream(worker *w, http_req *req, const char *sid, const session_claims *cl, const char *stream,
                        uint64_t after)
{
    skeys k;
    if (!ready_conn(w) || session_keys(sid, &k)) return 0;
    redis_op *o = op_new(w, OP_FETCH, sid);
    if (!o) return 0;
    o->req = req;
    o->cl = *cl;
    snprintf(o->stream, sizeof o->stream, "%s", stream);
    o->after = after;
    rargs a = {0};
    args(&a, "LRANGE");
    args(&a, k.e);
    args(&a, "0");
    args(&a, "-1");
    if (op_send(o, FETCH_TIMEOUT_MS, &a)) return 0;
    req->ud = o;
    req->on_abort = op_req_abort;
    return 1;
}

/* ---- the shared token cache ------------------------------------------------------------------------------------- */

#define TOK_INFO "mcp-gateway upstream-token cache v1"
#define TOK_NONCE 12
#define TOK_TAG 16

int redis_tokens_enabled(void) { return R.enabled && R.tok_on; }

void redis_token_name(const void *id, size_t n, char name[REDIS_TOKEN_NAME_MAX])
{
    uint8_t md[SHA256_DIGEST_LENGTH];
    unsigned char *m = malloc(23 + n);
    if (!m) abort();
    memcpy(m, "mcp-gateway token name", 23);   /* its NUL too */
    memcpy(m + 23, id, n);
    SHA256(m, 23 + n, md);
    free(m);
    char hex[33];
    for (int i = 0; i < 16; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    snprintf(name, REDIS_TOKEN_NAME_MAX, "mcpgw:t:{%s}", hex);
}

int redis_token_key(const char *signing_key, size_t n, uint8_t key[32])
{
    return gw_hkdf_sha256(signing_key, n, TOK_INFO, key, 32);
}

char *redis_seal(const uint8_t key[32], const char *name, const void *plain, size_t n, size_t *outlen)
{
    if (n > (1u << 20)) return NULL;
    size_t raw_len = TOK_NONCE + n + TOK_TAG;
    unsigned char *raw = malloc(raw_len);
    char *out = malloc(3 + b64url_enc_len(raw_len) + 1);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int ok = raw && out && c && RAND_bytes(raw, TOK_NONCE) == 1, len = 0;
    ok = ok && EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, TOK_NONCE, NULL) == 1 &&
         EVP_EncryptInit_ex(c, NULL, NULL, key, raw) == 1 &&
         EVP_EncryptUpdate(c, NULL, &len, (const unsigned char *)name, (int)strlen(name)) == 1 &&
         EVP_EncryptUpdate(c, raw + TOK_NONCE, &len, plain, (int)n) == 1 && (size_t)len == n &&
         EVP_EncryptFinal_ex(c, raw + TOK_NONCE + n, &len) == 1 &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TOK_TAG, raw + TOK_NONCE + n) == 1;
    EVP_CIPHER_CTX_free(c);
    if (ok) {
        memcpy(out, "v1.", 3);
        size_t m = b64url_encode(raw, raw_len, out + 3);
        if (outlen) *outlen = 3 + m;
    }
    if (raw) OPENSSL_cleanse(raw, raw_len);
    free(raw);
    if (!ok) { free(out); return NULL; }
    return out;
}

char *redis_unseal(const uint8_t key[32], const char *name, const char *sealed, size_t n, size_t *outlen)
{
    if (n < 3 || memcmp(sealed, "v1.", 3) || n > (2u << 20)) return NULL;
    size_t raw_len = 0;
    unsigned char *raw = malloc(b64url_dec_len(n - 3) + 1);
    if (!raw || b64url_decode(sealed + 3, n - 3, raw, &raw_len) || raw_len < TOK_NONCE + TOK_TAG) {
        free(raw);
        return NULL;
    }
    size_t m = raw_len - TOK_NONCE - TOK_TAG;
    char *out = malloc(m + 1);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int len = 0;
    int ok = out && c && EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, TOK_NONCE, NULL) == 1 &&
             EVP_DecryptInit_ex(c, NULL, NULL, key, raw) == 1 &&
             EVP_DecryptUpdate(c, NULL, &len, (const unsigned char *)name, (int)strlen(name)) == 1 &&
             EVP_DecryptUpdate(c, (unsigned char *)out, &len, raw + TOK_NONCE, (int)m) == 1 && (size_t)len == m &&
             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TOK_TAG, raw + TOK_NONCE + m) == 1 &&
             EVP_DecryptFinal_ex(c, (unsigned char *)out + m, &len) == 1;
    EVP_CIPHER_CTX_free(c);
    OPENSSL_cleanse(raw, raw_len);
    free(raw);
    if (!ok) {
        if (out) OPENSSL_cleanse(out, m);
        free(out);
        return NULL;
    }
    out[m] = '\0';
    if (outlen) *outlen = m;
    return out;
}

/* The worker whose loop this is, or NULL (the control loop). */
static worker *worker_of(uv_loop_t *loop)
{
    gateway *gw = R.gw;
    for (int i = 0; gw && i < gw->n_workers; i++)
        if (&gw->workers[i].loop == loop) return &gw->workers[i];
    return NULL;
}

redis_op *redis_token_get(uv_loop_t *loop, const char *name, uint64_t timeout_ms, void (*cb)(void *ud, char *plain),
                          void *ud)
{
    worker *w;
    if (!redis_tokens_enabled() || !(w = worker_of(loop)) || !ready_conn(w)) return NULL;
    redis_op *o = op_new(w, OP_TOK, "");
    if (!o) return NULL;
    o->tcb = cb;
    o->ud = ud;
    snprintf(o->pkey, sizeof o->pkey, "%s", name);
    rargs a = {0};
    args(&a, "GET");
    args(&a, o->pkey);
    return op_send(o, timeout_ms, &a) ? NULL : o;
}

void redis_token_set(uv_loop_t *loop, const char *name, const char *plain, uint64_t ttl_ms)
{
    worker *w;
    rconn *c;
    if (!redis_tokens_enabled() || !(w = worker_of(loop)) || !(c = ready_conn(w)) || !ttl_ms) return;
    size_t n = 0;
    char *v = redis_seal(R.tok_key, name, plain, strlen(plain), &n);
    if (!v) return;
    rargs a = {0};
    args(&a, "SET");
    args(&a, name);
    arg(&a, v, n);
    args(&a, "PX");
    argu(&a, ttl_ms);
    send_cmd(c, "SET (token)", &a);
    free(v);
}

void redis_token_del(uv_loop_t *loop, const char *name)
{
    worker *w;
    rconn *c;
    if (!redis_tokens_enabled() || !(w = worker_of(loop)) || !(c = ready_conn(w))) return;
    rargs a = {0};
    args(&a, "DEL");
    args(&a, name);
    send_cmd(c, "DEL (token)", &a);
}

/* ---- the channel (control loop) ---------------------------------------------------------------------------------- */

static void ctl_message(const char *msg, size_t len)
{
    gateway *gw = R.gw;
    char *m = strndup(msg, len);
    if (!m) return;
    char *f[4] = {m, NULL, NULL, NULL};
    for (int i = 1; i < 4; i++) {
        char *nl = f[i - 1] ? strchr(f[i - 1], '\n') : NULL;
        if (nl) { *nl = '\0'; f[i] = nl + 1; }
    }
    const char *sid = f[1];
    if (!sid || strlen(sid) >= SESSION_ID_MAX || !session_exists(gw->sessions, sid)) { free(m); return; }
    const gw_config *cfg = __atomic_load_n(&gw->cfg, __ATOMIC_ACQUIRE);
    if (!strcmp(f[0], "R")) {
        char **up = session_revoke(gw->sessions, sid, (uint64_t)time(NULL));
        if (up) {
            for (size_t i = 0; i < cfg->n_servers; i++) free(up[i]);
            free(up);
        }
        streams_close_session_all(gw, sid);
        log_debug("session", "a session ended on another replica: ended here too");
    } else if (!strcmp(f[0], "U") && f[2] && f[3]) {
        long slot = shared_slot(cfg, f[2], strlen(f[2]));
        int wi;
        uint64_t tok;
        if (slot >= 0) {
            session_set_upstream(gw->sessions, sid, (size_t)slot, f[3]);
            if (session_get_get(gw->sessions, sid, &wi, &tok) == 0) streams_open_upstream(gw, wi, tok, (size_t)slot);
        }
    } else if (!strcmp(f[0], "L") && f[2] && strlen(f[2]) < 12) {
        session_set_level(gw->sessions, sid, f[2]);
    } else if (!strcmp(f[0], "P") && f[2] && strlen(f[2]) < 32) {
        char key[40];
        snprintf(key, sizeof key, "s:%s", f[2]);
        session_pending_get(gw->sessions, sid, key, NULL, NULL, 0, 1);
    }
    free(m);
}
