/* up_http — the upstream interface on libcurl multi, driven by a libuv loop
 * (CURLMOPT_SOCKETFUNCTION → uv_poll per socket, CURLMOPT_TIMERFUNCTION → one uv_timer).
 *
 * Trust: CURLOPT_CAINFO_BLOB replaces libcurl's default bundle, so an extra PEM is appended to
 * the system bundle (read once) and the combination kept, per distinct PEM, for the process's
 * life (at most UP_CA_CACHE of them; beyond, each request builds its own). */
#include "upstream.h"
#include "log.h"
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <strings.h>

#define UP_EASY_POOL 64
#define UP_CA_CACHE  64

struct upclient {
    uv_loop_t  *loop;
    CURLM      *multi;
    uv_timer_t  timer;
    CURL       *pool[UP_EASY_POOL];  /* reused easy handles */
    int         n_pool;
    up_call    *calls;               /* in flight, for upclient_free */
    up_call    *deferred;            /* sent from inside libcurl: added when it returns */
    up_call    *dead;                /* cancelled from inside libcurl: removed when it returns */
    int         in_curl;             /* inside curl_multi_socket_action (no recursive API calls) */
    int         closing;
    struct up_sock **socks;          /* by fd: a poll handle lives as long as its socket */
    size_t      n_socks;
};

struct up_call {
    upclient          *u;
    CURL              *easy;
    struct curl_slist *headers;
    up_callbacks       cb;
    void              *ud;
    char              *body;
    size_t             body_len;
    int                attempts;     /* at_most_once: requests libcurl started (once_prereq) */
    int                resend_refused;
    size_t             received;
    size_t             max_body;
    char               session_id[160];
    char               content_type[128];
    struct curl_slist *connect_to;   /* tls_server_name: where the connection really goes */
    char              *ca_blob;      /* a combined bundle of this call's own (the cache was full) */
    int                tls;          /* https, and whether a client certificate was presented */
    int                client_cert;
    int                answered;     /* a status line came */
    char               errbuf[CURL_ERROR_SIZE];
    char               err[512];     /* on_done's message when it needs more than a constant */
    int                head_sent;
    int                cancelled;
    int                in_callback;
    int                too_big;
    int                added;        /* in the multi handle */
    int                finishing;    /* in check_done: freed there, whatever happens */
    char               rid[65];      /* the client request's id and trace id, for log lines */
    char               tid[33];
    up_call           *prev, *next;
    up_call           *qnext;        /* on u->deferred or u->dead */
};

typedef struct up_sock {
    uv_poll_t     poll;
    curl_socket_t fd;
    upclient     *u;
} up_sock;

static void check_done(upclient *u);

static void call_unlink(up_call *c)
{
    upclient *u = c->u;
    if (c->prev) c->prev->next = c->next; else u->calls = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void call_free(up_call *c)
{
    upclient *u = c->u;
    if (c->added) curl_multi_remove_handle(u->multi, c->easy);
    if (u->n_pool < UP_EASY_POOL && !u->closing) {
        curl_easy_reset(c->easy);
        u->pool[u->n_pool++] = c->easy;
    } else {
        curl_easy_cleanup(c->easy);
    }
    curl_slist_free_all(c->headers);
    curl_slist_free_all(c->connect_to);
    free(c->ca_blob);
    free(c->body);
    free(c);
}

/* ---- trust: the system bundle plus extra PEM ------------------------------------------------ */

typedef struct ca_entry {
    struct ca_entry *next;
    char            *pem;      /* the extra PEM, as given */
    size_t           pem_len;
    char            *blob;     /* system bundle + "\n" + pem */
    size_t           len;
} ca_entry;

static pthread_mutex_t ca_lock = PTHREAD_MUTEX_INITIALIZER;
static ca_entry *ca_cache;
static int       ca_count;
static char     *sys_bundle;      /* read once (global_init); "" when none was found */
static size_t    sys_bundle_len;

static void load_system_bundle(void)
{
    const char *paths[4] = {NULL, "/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
                            "/etc/ssl/cert.pem"};
    CURL *e = curl_easy_init();
    char *def = NULL;
    if (e && curl_easy_getinfo(e, CURLINFO_CAINFO, &def) == CURLE_OK && def) paths[0] = def;   /* libcurl's default */
    for (size_t i = 0; i < 4 && !sys_bundle; i++) {
        FILE *f = paths[i] ? fopen(paths[i], "rb") : NULL;
        if (!f) continue;
        size_t cap = 1 << 18, n = 0, r;
        char *b = malloc(cap + 1);
        while (b && (r = fread(b + n, 1, cap - n, f)) > 0) {
            n += r;
            if (n == cap && n < (64u << 20)) {
                char *nb = realloc(b, cap * 2 + 1);
                if (!nb) { free(b); b = NULL; break; }
                b = nb;
                cap *= 2;
            }
        }
        fclose(f);
        if (b && n) { b[n] = '\0'; sys_bundle = b; sys_bundle_len = n; }
        else free(b);
    }
    if (e) curl_easy_cleanup(e);
    if (!sys_bundle) {
        log_warn("upstream", "no system CA bundle found: https upstreams are verified against the configured CAs only");
        sys_bundle = calloc(1, 1);
        sys_bundle_len = 0;
    }
}

static char *ca_build(const char *pem, size_t pem_len, size_t *len)
{
    char *b = malloc(sys_bundle_len + pem_len + 2);
    if (!b) return NULL;
    memcpy(b, sys_bundle, sys_bundle_len);
    b[sys_bundle_len] = '\n';
    memcpy(b + sys_bundle_len + 1, pem, pem_len);
    b[sys_bundle_len + 1 + pem_len] = '\0';
    *len = sys_bundle_len + 1 + pem_len;
    return b;
}

/* The combined bundle for pem: from the cache (kept for the process's life), or built for this
 * call alone (*own, freed with it). */
static const char *ca_combined(const char *pem, size_t *len, char **own)
{
    size_t pl = strlen(pem);
    *own = NULL;
    pthread_mutex_lock(&ca_lock);
    for (ca_entry *e = ca_cache; e; e = e->next)
        if (e->pem_len == pl && !memcmp(e->pem, pem, pl)) {
            pthread_mutex_unlock(&ca_lock);
            *len = e->len;
            return e->blob;
        }
    ca_entry *e = ca_count < UP_CA_CACHE ? calloc(1, sizeof *e) : NULL;
    if (e && (e->pem = strdup(pem)) && (e->blob = ca_build(pem, pl, &e->len))) {
        e->pem_len = pl;
        e->next = ca_cache;
        ca_cache = e;
        ca_count++;
        pthread_mutex_unlock(&ca_lock);
        *len = e->len;
        return e->blob;
    }
    if (e) { free(e->pem); free(e); }
    pthread_mutex_unlock(&ca_lock);
    return *own = ca_build(pem, pl, len);
}

/* ---- tls_server_name: the URL names the certificate's host, CONNECT_TO the real one -------- */

static int set_server_name(up_call *c, const up_req *r, struct curl_slist **h)
{
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL, *eport = NULL, *url = NULL;
    int rc = -1;
    if (u && curl_url_set(u, CURLUPART_URL, r->url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
        curl_url_get(u, CURLUPART_PORT, &eport, 0);   /* only when the URL has one */
        char line[600];
        snprintf(line, sizeof line, "Host: %s%s%s", host, eport ? ":" : "", eport ? eport : "");
        *h = curl_slist_append(*h, line);
        snprintf(line, sizeof line, "%s:%s:%s:%s", r->tls_server_name, port, host, port);
        c->connect_to = curl_slist_append(NULL, line);
        if (c->connect_to && curl_url_set(u, CURLUPART_HOST, r->tls_server_name, 0) == CURLUE_OK &&
            curl_url_get(u, CURLUPART_URL, &url, 0) == CURLUE_OK) {
            curl_easy_setopt(c->easy, CURLOPT_URL, url);
            curl_easy_setopt(c->easy, CURLOPT_CONNECT_TO, c->connect_to);
            rc = 0;
        }
    }
    curl_free(host); curl_free(port); curl_free(eport); curl_free(url);
    curl_url_cleanup(u);
    return rc;
}

/* What a failed transfer means, in words that say what to configure. */
static const char *call_error(up_call *c, CURLcode res)
{
    const char *detail = c->errbuf[0] ? c->errbuf : curl_easy_strerror(res);
    switch (res) {
    case CURLE_PEER_FAILED_VERIFICATION:
        snprintf(c->err, sizeof c->err, "TLS: the upstream's certificate is not trusted (%s): %s", detail,
                 strstr(detail, "subject name") || strstr(detail, "hostname")
                     ? "set tlsServerName to a name the certificate carries, or use that name in the url"
                     : "add its CA as caCert or gatewayCACertPEM");
        return c->err;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
        /* TLS 1.3: a refused client certificate is an alert after the handshake, or the connection
         * closed under the first request */
        if (!c->tls || c->answered) return curl_easy_strerror(res);
        if (!strstr(detail, "alert")) {
            snprintf(c->err, sizeof c->err, "TLS: the upstream closed the connection before answering (%s)%s", detail,
                     c->client_cert ? "" : ": does it require a client certificate (clientCert, clientKey)?");
            return c->err;
        }
        /* fall through */
    case CURLE_SSL_CONNECT_ERROR:
        snprintf(c->err, sizeof c->err, "TLS handshake with the upstream failed (%s)%s", detail,
                 strstr(detail, "alert") && !c->client_cert ? ": does it require a client certificate (clientCert, clientKey)?"
                                                            : "");
        return c->err;
    case CURLE_SSL_CERTPROBLEM:
        snprintf(c->err, sizeof c->err, "TLS: the client certificate cannot be used (%s)", detail);
        return c->err;
    case CURLE_SSL_CACERT_BADFILE:
        snprintf(c->err, sizeof c->err, "TLS: the trusted CA certificates cannot be loaded (%s): check caCert and "
                                        "gatewayCACertPEM", detail);
        return c->err;
    default:
        return curl_easy_strerror(res);
    }
}

/* ---- libcurl ↔ libuv glue ---------------------------------------------------------------- */

/* libcurl forbids calling it back from its callbacks: calls started or cancelled meanwhile
 * were queued, and are applied here, once it has returned. */
static void after_curl(upclient *u)
{
    check_done(u);
    while (u->dead) {
        up_call *c = u->dead;
        u->dead = c->qnext;
        call_free(c);
    }
    while (u->deferred) {
        up_call *c = u->deferred;
        u->deferred = c->qnext;
        c->added = 1;
        if (curl_multi_add_handle(u->multi, c->easy) != CURLM_OK) {
            c->added = 0;
            call_unlink(c);
            if (c->cb.on_done) c->cb.on_done(c, c->ud, "cannot start the upstream request");
            call_free(c);
        }
    }
}

static void socket_action(upclient *u, curl_socket_t fd, int flags)
{
    int running;
    u->in_curl++;
    curl_multi_socket_action(u->multi, fd, flags, &running);
    u->in_curl--;
    if (!u->in_curl) after_curl(u);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    up_sock *s = p->data;
    int flags = 0;
    if (status < 0) flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    }
    socket_action(s->u, s->fd, flags);
}

static void on_sock_closed(uv_handle_t *h) { free(h->data); }

/* The poll handle of fd, made on first use. libcurl says CURL_POLL_REMOVE after every transfer on
 * a kept-alive connection: the handle is only stopped then, and closed when libcurl closes the
 * socket (close_cb) — not rebuilt for each call (that cost 6 epoll_ctl a call). */
static up_sock *sock_get(upclient *u, curl_socket_t fd)
{
    if (fd < 0) return NULL;
    if ((size_t)fd >= u->n_socks) {
        size_t n = u->n_socks ? u->n_socks : 64;
        while (n <= (size_t)fd) n *= 2;
        up_sock **t = realloc(u->socks, n * sizeof *t);
        if (!t) return NULL;
        memset(t + u->n_socks, 0, (n - u->n_socks) * sizeof *t);
        u->socks = t;
        u->n_socks = n;
    }
    up_sock *s = u->socks[fd];
    if (s) return s;
    s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->fd = fd;
    s->u = u;
    if (uv_poll_init_socket(u->loop, &s->poll, fd)) { free(s); return NULL; }
    s->poll.data = s;
    u->socks[fd] = s;
    return s;
}

static int close_cb(void *clientp, curl_socket_t fd)
{
    upclient *u = clientp;
    up_sock *s = fd >= 0 && (size_t)fd < u->n_socks ? u->socks[fd] : NULL;
    if (s) {   /* before the fd goes: epoll must forget it while it is still open */
        u->socks[fd] = NULL;
        uv_poll_stop(&s->poll);
        uv_close((uv_handle_t *)&s->poll, on_sock_closed);
    }
    return close(fd);
}

static int sock_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *sockp)
{
    upclient *u = userp;
    up_sock *s = sockp;
    if (what == CURL_POLL_REMOVE) {
        if (s) uv_poll_stop(&s->poll);   /* kept until libcurl closes the socket */
        return 0;
    }
    if (!s) {
        s = sock_get(u, fd);
        if (!s) return -1;
        curl_multi_assign(u->multi, fd, s);
    }
    int ev = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) ev |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) ev |= UV_WRITABLE;
    uv_poll_start(&s->poll, ev, on_poll);
    return 0;
}

static void on_timeout(uv_timer_t *t)
{
    socket_action(t->data, CURL_SOCKET_TIMEOUT, 0);
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    upclient *u = userp;
    if (timeout_ms < 0) uv_timer_stop(&u->timer);
    else uv_timer_start(&u->timer, on_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---- per-call callbacks ------------------------------------------------------------------ */

static void send_head(up_call *c)
{
    if (c->head_sent) return;
    c->head_sent = 1;
    long status = 0;
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
    if (c->cb.on_head) {
        c->in_callback = 1;
        log_req prev = log_request(c->rid, c->tid);
        c->cb.on_head(c, c->ud, status, c->content_type, c->session_id[0] ? c->session_id : NULL);
        log_request(prev.id, prev.trace_id);
        c->in_callback = 0;
    }
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    up_call *c = ud;
    size_t len = size * n;
    if (len >= 4 && strncmp(p, "HTTP", 4) == 0) { /* a new header block (e.g. after a redirect) */
        c->answered = 1;
        c->session_id[0] = c->content_type[0] = '\0';
        return len;
    }
    const char *colon = memchr(p, ':', len);
    if (!colon) return len;
    size_t nl = (size_t)(colon - p);
    const char *v = colon + 1, *end = p + len;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) end--;
    size_t vl = (size_t)(end - v);
    char *dst = NULL;
    size_t cap = 0;
    if (nl == 14 && strncasecmp(p, "mcp-session-id", 14) == 0) { dst = c->session_id; cap = sizeof c->session_id; }
    else if (nl == 12 && strncasecmp(p, "content-type", 12) == 0) { dst = c->content_type; cap = sizeof c->content_type; }
    if (dst) {
        if (vl >= cap) vl = cap - 1;
        memcpy(dst, v, vl);
        dst[vl] = '\0';
    }
    return len;
}

static size_t on_write(char *p, size_t size, size_t n, void *ud)
{
    up_call *c = ud;
    size_t len = size * n;
    if (c->cancelled) return 0;   /* aborts the transfer */
    c->received += len;
    if (c->max_body && c->received > c->max_body) {
        c->too_big = 1;
        return 0;
    }
    send_head(c);
    if (c->cancelled) return 0;
    if (c->cb.on_data) {
        c->in_callback = 1;
        log_req prev = log_request(c->rid, c->tid);
        c->cb.on_data(c, c->ud, p, len);
        log_request(prev.id, prev.trace_id);
        c->in_callback = 0;
    }
    return c->cancelled ? 0 : len;
}

static void check_done(upclient *u)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(u->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        up_call *c = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
        CURLcode res = m->data.result;
        if (c->cancelled) continue;   /* on u->dead, freed there */
        call_unlink(c);
        c->finishing = 1;
        {
            const char *err = NULL;
            if (c->too_big) err = "upstream response too large";
            else if (res == CURLE_OPERATION_TIMEDOUT) err = "upstream timed out";
            else if (res == CURLE_COULDNT_CONNECT) err = "upstream refused the connection";
            else if (c->resend_refused)
                err = "upstream closed the connection without answering; not sent again, since it may have run";
            else if (res != CURLE_OK) err = call_error(c, res);
            if (!err) send_head(c);
            if (!c->cancelled && c->cb.on_done) {
                c->in_callback = 1;
                log_req prev = log_request(c->rid, c->tid);
                c->cb.on_done(c, c->ud, err);
                log_request(prev.id, prev.trace_id);
            }
        }
        call_free(c);
    }
}

/* ---- public -------------------------------------------------------------------------------- */

static void global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    load_system_bundle();
}

upclient *upclient_new(uv_loop_t *loop)
{
    static uv_once_t once = UV_ONCE_INIT;
    uv_once(&once, global_init);
    upclient *u = calloc(1, sizeof *u);
    if (!u) return NULL;
    u->loop = loop;
    u->multi = curl_multi_init();
    uv_timer_init(loop, &u->timer);
    u->timer.data = u;
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, u);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, u);
    curl_multi_setopt(u->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
    curl_multi_setopt(u->multi, CURLMOPT_MAXCONNECTS, 256L);
    return u;
}

static void on_timer_closed(uv_handle_t *h) { free(h->data); }

void upclient_free(upclient *u)
{
    u->closing = 1;
    u->deferred = NULL;            /* those are on u->calls too */
    while (u->calls) {
        up_call *c = u->calls;
        call_unlink(c);
        call_free(c);
    }
    while (u->dead) {
        up_call *c = u->dead;
        u->dead = c->qnext;
        call_free(c);
    }
    for (int i = 0; i < u->n_pool; i++) curl_easy_cleanup(u->pool[i]);
    u->n_pool = 0;
    curl_multi_cleanup(u->multi);   /* closes the cached connections: close_cb closes their polls */
    for (size_t i = 0; i < u->n_socks; i++)   /* sockets libcurl closed without telling (none expected) */
        if (u->socks[i]) {
            uv_poll_stop(&u->socks[i]->poll);
            uv_close((uv_handle_t *)&u->socks[i]->poll, on_sock_closed);
        }
    free(u->socks);
    u->socks = NULL;
    u->n_socks = 0;
    uv_timer_stop(&u->timer);
    uv_close((uv_handle_t *)&u->timer, on_timer_closed);
}

/* An at-most-once request. When a kept-alive connection dies before the answer starts,
 * libcurl sends the request again on a fresh one; the upstream may have run the call already,
 * so the second attempt is refused before it is sent (CURLOPT_PREREQFUNCTION runs before each
 * attempt) and the call fails instead of running twice. The body stays in CURLOPT_POSTFIELDS,
 * which libcurl sends with the headers in one write (a read callback costs a second one). */
static int once_prereq(void *ud, char *conn_primary_ip, char *conn_local_ip, int conn_primary_port,
                       int conn_local_port)
{
    (void)conn_primary_ip, (void)conn_local_ip, (void)conn_primary_port, (void)conn_local_port;
    up_call *c = ud;
    if (c->attempts++ == 0) return CURL_PREREQFUNC_OK;
    c->resend_refused = 1;
    return CURL_PREREQFUNC_ABORT;
}

up_call *upclient_send(upclient *u, const up_req *r, const up_callbacks *cb, void *ud)
{
    up_call *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->u = u;
    c->cb = *cb;
    c->ud = ud;
    c->max_body = r->max_body;
    c->easy = u->n_pool ? u->pool[--u->n_pool] : curl_easy_init();
    if (!c->easy) { free(c); return NULL; }
    CURL *e = c->easy;
    char line[512];
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Accept: application/json, text/event-stream");
    h = curl_slist_append(h, "Expect:");
    if (r->body) {
        snprintf(line, sizeof line, "Content-Type: %s", r->content_type ? r->content_type : "application/json");
        h = curl_slist_append(h, line);
    }
    if (r->session_id) {
        snprintf(line, sizeof line, "Mcp-Session-Id: %s", r->session_id);
        h = curl_slist_append(h, line);
    }
    if (r->protocol_version) {
        snprintf(line, sizeof line, "MCP-Protocol-Version: %s", r->protocol_version);
        h = curl_slist_append(h, line);
    }
    if (r->last_event_id) {
        snprintf(line, sizeof line, "Last-Event-ID: %s", r->last_event_id);
        h = curl_slist_append(h, line);
    }
    if (r->authorization) {
        size_t n = strlen(r->authorization) + 32;
        char *a = malloc(n);
        if (a) {
            snprintf(a, n, "Authorization: %s", r->authorization);
            h = curl_slist_append(h, a);
            free(a);
        }
    }
    for (size_t i = 0; i < r->n_headers; i++) h = curl_slist_append(h, r->headers[i]);
    if (r->traceparent) {   /* checked or made by trace.c: hex and dashes */
        snprintf(line, sizeof line, "traceparent: %s", r->traceparent);
        h = curl_slist_append(h, line);
        char ts[600];
        if (r->tracestate && strlen(r->tracestate) < sizeof ts - 16) {   /* ≤ 512 bytes of visible ASCII (trace.c) */
            snprintf(ts, sizeof ts, "tracestate: %s", r->tracestate);
            h = curl_slist_append(h, ts);
        }
    }
    if (r->request_id) { size_t n = strnlen(r->request_id, sizeof c->rid - 1); memcpy(c->rid, r->request_id, n); c->rid[n] = '\0'; }
    if (r->trace_id) { size_t n = strnlen(r->trace_id, sizeof c->tid - 1); memcpy(c->tid, r->trace_id, n); c->tid[n] = '\0'; }
    curl_easy_setopt(e, CURLOPT_URL, r->url);
    if (r->tls_server_name && !strncasecmp(r->url, "https://", 8) && set_server_name(c, r, &h) < 0) {
        curl_slist_free_all(h);
        call_free(c);
        return NULL;
    }
    c->headers = h;
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PRIVATE, c);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, close_cb);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, u);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (r->timeout_ms > 0) curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, r->timeout_ms);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    c->tls = !strncasecmp(r->url, "https://", 8);
    c->client_cert = r->client_cert && r->client_key;
    if (r->ca_pem) {   /* the system bundle plus this PEM: the cached combination outlives the call */
        size_t len = 0;
        const char *ca = ca_combined(r->ca_pem, &len, &c->ca_blob);
        if (ca) {
            struct curl_blob blob = {(void *)ca, len, CURL_BLOB_NOCOPY};
            curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &blob);
        }
    }
    if (r->client_cert && r->client_key) {
        struct curl_blob cert = {(void *)r->client_cert, strlen(r->client_cert), CURL_BLOB_COPY};
        struct curl_blob key = {(void *)r->client_key, strlen(r->client_key), CURL_BLOB_COPY};
        curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
        curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &cert);
        curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
        curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &key);
    }
    if (strcmp(r->method, "POST") == 0) {
        c->body = malloc(r->body_len + 1);
        if (!c->body) { call_free(c); return NULL; }
        memcpy(c->body, r->body, r->body_len);
        c->body_len = r->body_len;
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)r->body_len);
        if (r->at_most_once) {   /* a second attempt is refused (once_prereq) */
            curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, once_prereq);
            curl_easy_setopt(e, CURLOPT_PREREQDATA, c);
        }
    } else if (strcmp(r->method, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
    }
    c->next = u->calls;
    if (u->calls) u->calls->prev = c;
    u->calls = c;
    if (u->in_curl) {
        c->qnext = u->deferred;
        u->deferred = c;
        return c;
    }
    c->added = 1;
    if (curl_multi_add_handle(u->multi, e) != CURLM_OK) {
        c->added = 0;
        call_unlink(c);
        call_free(c);
        return NULL;
    }
    return c;
}

void up_call_cancel(up_call *c)
{
    if (c->finishing) { c->cancelled = 1; return; }
    if (c->cancelled) return;
    c->cancelled = 1;
    upclient *u = c->u;
    call_unlink(c);
    if (!c->added) {               /* still on u->deferred */
        for (up_call **pp = &u->deferred; *pp; pp = &(*pp)->qnext)
            if (*pp == c) { *pp = c->qnext; break; }
        call_free(c);
        return;
    }
    if (u->in_curl || c->in_callback) {   /* removed once libcurl has returned */
        c->qnext = u->dead;
        u->dead = c;
        return;
    }
    call_free(c);
}

void up_call_pause(up_call *c, int paused)
{
    if (c->cancelled) return;
    curl_easy_pause(c->easy, paused ? CURLPAUSE_RECV : CURLPAUSE_CONT);
}
