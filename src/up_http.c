/* up_http — the upstream interface on libcurl multi, driven by a libuv loop
 * (CURLMOPT_SOCKETFUNCTION → uv_poll per socket, CURLMOPT_TIMERFUNCTION → one uv_timer). */
#include "upstream.h"
#include "log.h"
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define UP_EASY_POOL 64

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
};

struct up_call {
    upclient          *u;
    CURL              *easy;
    struct curl_slist *headers;
    up_callbacks       cb;
    void              *ud;
    char              *body;
    size_t             received;
    size_t             max_body;
    char               session_id[160];
    char               content_type[128];
    int                head_sent;
    int                cancelled;
    int                in_callback;
    int                too_big;
    int                added;        /* in the multi handle */
    int                finishing;    /* in check_done: freed there, whatever happens */
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
    free(c->body);
    free(c);
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

static int sock_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *sockp)
{
    upclient *u = userp;
    up_sock *s = sockp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            uv_poll_stop(&s->poll);
            uv_close((uv_handle_t *)&s->poll, on_sock_closed);
            curl_multi_assign(u->multi, fd, NULL);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s) return -1;
        s->fd = fd;
        s->u = u;
        if (uv_poll_init_socket(u->loop, &s->poll, fd)) { free(s); return -1; }
        s->poll.data = s;
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
        c->cb.on_head(c, c->ud, status, c->content_type, c->session_id[0] ? c->session_id : NULL);
        c->in_callback = 0;
    }
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    up_call *c = ud;
    size_t len = size * n;
    if (len >= 4 && strncmp(p, "HTTP", 4) == 0) { /* a new header block (e.g. after a redirect) */
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
        c->cb.on_data(c, c->ud, p, len);
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
            else if (res != CURLE_OK) err = curl_easy_strerror(res);
            if (!err) send_head(c);
            if (!c->cancelled && c->cb.on_done) {
                c->in_callback = 1;
                c->cb.on_done(c, c->ud, err);
            }
        }
        call_free(c);
    }
}

/* ---- public -------------------------------------------------------------------------------- */

static void global_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

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
    curl_multi_cleanup(u->multi);
    uv_timer_stop(&u->timer);
    uv_close((uv_handle_t *)&u->timer, on_timer_closed);
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
    if (r->body) h = curl_slist_append(h, "Content-Type: application/json");
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
    c->headers = h;
    curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PRIVATE, c);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (r->timeout_ms > 0) curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, r->timeout_ms);
    if (r->ca_pem) {
        struct curl_blob blob = {(void *)r->ca_pem, strlen(r->ca_pem), CURL_BLOB_COPY};
        curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &blob);
    }
    if (strcmp(r->method, "POST") == 0) {
        c->body = malloc(r->body_len + 1);
        if (!c->body) { call_free(c); return NULL; }
        memcpy(c->body, r->body, r->body_len);
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)r->body_len);
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
