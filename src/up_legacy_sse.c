/* up_legacy_sse — the legacy HTTP+SSE transport as a client (see up_legacy_sse.h).
 * One GET stream at a time; outgoing messages are POSTed one after the other, in order (the
 * transport has no other ordering guarantee: notifications/initialized must not overtake
 * initialize's successors). The POST answers (202 Accepted) carry nothing. */
#include "up_legacy_sse.h"
#include "log.h"
#include "sse.h"
#include "upstream.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define POST_QUEUE_MAX (64u << 20)      /* bytes waiting to be POSTed */
#define POST_TIMEOUT_MS 30000
#define ENDPOINT_TIMEOUT_MS 30000        /* from connecting to the endpoint event */

typedef struct qmsg {
    struct qmsg *next;
    size_t       len;
    char         data[];
} qmsg;

typedef struct up_lsse {
    up_link      link;           /* first: the bridge holds an up_link * */
    uv_loop_t   *loop;
    upclient    *http;           /* this link's own HTTP client */
    const gw_server_cfg *cfg;
    const char  *url;            /* the SSE endpoint */
    const char  *ca;
    size_t       max_event;
    up_call     *stream;         /* the GET stream, NULL when down */
    long         status;
    int          is_sse;
    sse_parser   parser;
    char        *post_url;       /* from the endpoint event */
    int          up;
    int          stopping;
    uv_timer_t   timer;          /* reconnect back-off */
    uint64_t     backoff_ms;
    uint64_t     started_ms;
    qmsg        *qhead, *qtail;
    size_t       queued;
    up_call     *post;           /* the POST in flight */
    long         post_status;
    void       (*done)(void *);
    void        *done_arg;
} up_lsse;

static void connect_stream(up_lsse *l);
static void pump(up_lsse *l);

static const char *name(up_lsse *l) { return l->cfg->name; }

static void drop_queue(up_lsse *l)
{
    for (qmsg *m = l->qhead, *n; m; m = n) { n = m->next; free(m); }
    l->qhead = l->qtail = NULL;
    l->queued = 0;
}

static void on_timer(uv_timer_t *t) { connect_stream(t->data); }

static void lost(up_lsse *l, const char *why);

/* Connected, but no endpoint event in time: a server that will not talk. */
static void on_endpoint_timeout(uv_timer_t *t)
{
    up_lsse *l = t->data;
    if (!l->up && l->stream) lost(l, "no endpoint event within 30 s");
}

/* The connection is gone (or never came): tell the bridge, reconnect later. */
static void lost(up_lsse *l, const char *why)
{
    if (l->stream) { up_call_cancel(l->stream); l->stream = NULL; }
    if (l->post) { up_call_cancel(l->post); l->post = NULL; }
    drop_queue(l);
    free(l->post_url);
    l->post_url = NULL;
    if (l->stopping) return;
    if (l->up) {
        l->up = 0;
        log_warn(name(l), "legacy SSE connection lost: %s", why);
        l->link.cb.on_down(l->link.ud, why);
        if (l->stopping) return;    /* stopped from on_down */
    } else {
        log_warn(name(l), "legacy SSE connection failed: %s", why);
    }
    uint64_t now = uv_now(l->loop);
    if (l->started_ms && now - l->started_ms >= UP_LINK_BACKOFF_MAX_MS) l->backoff_ms = UP_LINK_BACKOFF_MIN_MS;
    l->started_ms = 0;
    uint64_t delay = l->backoff_ms;
    l->backoff_ms = delay * 2 > UP_LINK_BACKOFF_MAX_MS ? UP_LINK_BACKOFF_MAX_MS : delay * 2;
    uv_timer_start(&l->timer, on_timer, delay, 0);
}

/* ---- the endpoint URL ------------------------------------------------------------------------- */

static size_t origin_len(const char *u)
{
    const char *p = strstr(u, "://");
    if (!p) return 0;
    p += 3;
    return (size_t)(p - u) + strcspn(p, "/?#");
}

/* The POST URL from an endpoint event: absolute (same origin as the stream only), absolute
 * path, or relative to the stream's URL. NULL when unusable. */
static char *resolve_endpoint(const char *base, const char *data, size_t len)
{
    while (len && (*data == ' ' || *data == '\t')) data++, len--;
    while (len && (data[len - 1] == ' ' || data[len - 1] == '\r' || data[len - 1] == '\n')) len--;
    if (!len || memchr(data, '\0', len) || memchr(data, '\n', len)) return NULL;
    size_t ol = origin_len(base);
    if (!ol) return NULL;
    char *out = NULL;
    if (!strncasecmp(data, "http://", 7) || !strncasecmp(data, "https://", 8)) {
        size_t dl = origin_len(data);
        if (dl != ol || strncasecmp(data, base, ol) != 0) return NULL;   /* another origin: refused */
        out = strndup(data, len);
    } else if (data[0] == '/' && (len < 2 || data[1] != '/')) {
        if (asprintf(&out, "%.*s%.*s", (int)ol, base, (int)len, data) < 0) out = NULL;
    } else if (data[0] != '/') {
        size_t pl = ol + strcspn(base + ol, "?#");          /* the stream URL without its query */
        while (pl > ol && base[pl - 1] != '/') pl--;        /* its directory */
        if (pl == ol) { if (asprintf(&out, "%.*s/%.*s", (int)ol, base, (int)len, data) < 0) out = NULL; }
        else if (asprintf(&out, "%.*s%.*s", (int)pl, base, (int)len, data) < 0) out = NULL;
    }
    return out;
}

/* ---- the GET stream ---------------------------------------------------------------------------- */

static void on_event(void *ud, const char *event, const char *data, size_t len, const char *id)
{
    up_lsse *l = ud;
    if (!l->stream || l->stopping) return;   /* dropped while this chunk was being parsed */
    if (!strcmp(event, "endpoint")) {
        char *u = resolve_endpoint(l->url, data, len);
        if (!u) {
            log_error(name(l), "unusable endpoint event (another origin or not a URL): %.200s", data);
            lost(l, "unusable endpoint event");
            return;
        }
        free(l->post_url);
        l->post_url = u;
        if (!l->up) {
            uv_timer_stop(&l->timer);
            l->up = 1;
            l->started_ms = uv_now(l->loop);
            log_info(name(l), "legacy SSE connection open");
            l->link.cb.on_up(l->link.ud);
            pump(l);
        }
    } else if (!strcmp(event, "message") && l->up) {
        json_t *m = json_loadb(data, len, 0, NULL);
        if (json_is_object(m)) l->link.cb.on_message(l->link.ud, m);
        else log_warn(name(l), "not a JSON-RPC message on the SSE stream (dropped): %.200s", data);
        json_decref(m);
    }
}

static void on_head(up_call *c, void *ud, long status, const char *ctype, const char *sid)
{
    up_lsse *l = ud;
    l->status = status;
    l->is_sse = ctype && !strncasecmp(ctype, "text/event-stream", 17);
}

static void on_data(up_call *c, void *ud, const char *d, size_t n)
{
    up_lsse *l = ud;
    if (l->status != 200 || !l->is_sse) return;   /* reported when it ends */
    if (sse_parser_feed(&l->parser, d, n) != 0 && l->stream) lost(l, "an SSE event over the size limit");
}

static void on_done(up_call *c, void *ud, const char *err)
{
    up_lsse *l = ud;
    l->stream = NULL;
    char why[96];
    if (err) snprintf(why, sizeof why, "%s", err);
    else if (l->status != 200) snprintf(why, sizeof why, "GET answered HTTP %ld", l->status);
    else if (!l->is_sse) snprintf(why, sizeof why, "GET answered without text/event-stream");
    else snprintf(why, sizeof why, "the SSE stream ended");
    lost(l, why);
}

static const up_callbacks stream_cb = {on_head, on_data, on_done};

static void connect_stream(up_lsse *l)
{
    if (l->stopping || l->stream) return;
    sse_parser_free(&l->parser);
    sse_parser_init(&l->parser, l->max_event, on_event, l);
    l->status = 0;
    l->is_sse = 0;
    up_req r = {.url = l->url, .method = "GET", .authorization = l->cfg->credential, .ca_pem = l->ca};
    l->stream = upclient_send(l->http, &r, &stream_cb, l);
    if (!l->stream) lost(l, "cannot start the GET request");
    else uv_timer_start(&l->timer, on_endpoint_timeout, ENDPOINT_TIMEOUT_MS, 0);
}

/* ---- POSTing messages --------------------------------------------------------------------------- */

static void post_head(up_call *c, void *ud, long status, const char *ctype, const char *sid)
{
    ((up_lsse *)ud)->post_status = status;
}

static void post_done(up_call *c, void *ud, const char *err)
{
    up_lsse *l = ud;
    l->post = NULL;
    if (err || l->post_status < 200 || l->post_status >= 300) {
        char why[96];
        if (err) snprintf(why, sizeof why, "%s", err);
        else snprintf(why, sizeof why, "HTTP %ld", l->post_status);
        log_warn(name(l), "POST to the message endpoint failed: %s", why);
        if (!err && (l->post_status == 404 || l->post_status == 400)) {   /* the server forgot the session */
            lost(l, "the server no longer knows the session");
            return;
        }
    }
    pump(l);
}

static const up_callbacks post_cb = {post_head, NULL, post_done};

static void pump(up_lsse *l)
{
    if (l->post || !l->qhead || !l->post_url || l->stopping) return;
    qmsg *m = l->qhead;
    l->qhead = m->next;
    if (!l->qhead) l->qtail = NULL;
    l->queued -= m->len;
    up_req r = {.url = l->post_url, .method = "POST", .body = m->data, .body_len = m->len,
                .authorization = l->cfg->credential, .ca_pem = l->ca, .timeout_ms = POST_TIMEOUT_MS, .max_body = 65536};
    l->post_status = 0;
    l->post = upclient_send(l->http, &r, &post_cb, l);
    free(m);
    if (!l->post) {
        log_warn(name(l), "cannot POST to the message endpoint");
        pump(l);
    }
}

static int link_send(up_link *lk, const char *json, size_t len)
{
    up_lsse *l = (up_lsse *)lk;
    if (!l->up || l->queued + len > POST_QUEUE_MAX) return -1;
    qmsg *m = malloc(sizeof *m + len);
    if (!m) return -1;
    m->next = NULL;
    m->len = len;
    memcpy(m->data, json, len);
    if (l->qtail) l->qtail->next = m; else l->qhead = m;
    l->qtail = m;
    l->queued += len;
    pump(l);
    return 0;
}

static void link_restart(up_link *lk, const char *why)
{
    up_lsse *l = (up_lsse *)lk;
    if (l->stream) lost(l, why);
}

static void on_timer_closed(uv_handle_t *h)
{
    up_lsse *l = h->data;
    void (*done)(void *) = l->done;
    void *arg = l->done_arg;
    upclient_free(l->http);       /* cancels what is left; closes its own handles */
    sse_parser_free(&l->parser);
    free(l->post_url);
    free(l);
    if (done) done(arg);
}

static void link_stop(up_link *lk, void (*done)(void *), void *arg)
{
    up_lsse *l = (up_lsse *)lk;
    l->stopping = 1;
    l->done = done;
    l->done_arg = arg;
    lost(l, "stopping");
    uv_timer_stop(&l->timer);
    uv_close((uv_handle_t *)&l->timer, on_timer_closed);
}

static const up_link_ops lsse_ops = {link_send, link_restart, link_stop};

up_link *up_legacy_sse_new(uv_loop_t *loop, const gw_server_cfg *cfg, const char *url, const char *ca_pem,
                           size_t max_event, const up_link_cb *cb, void *ud)
{
    up_lsse *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->http = upclient_new(loop);
    if (!l->http) { free(l); return NULL; }
    l->link.ops = &lsse_ops;
    l->link.cb = *cb;
    l->link.ud = ud;
    l->loop = loop;
    l->cfg = cfg;
    l->url = url;
    l->ca = cfg->ca_cert ? cfg->ca_cert : ca_pem;
    l->max_event = max_event;
    l->backoff_ms = UP_LINK_BACKOFF_MIN_MS;
    sse_parser_init(&l->parser, max_event, on_event, l);
    uv_timer_init(loop, &l->timer);
    l->timer.data = l;
    uv_timer_start(&l->timer, on_timer, 0, 0);   /* connect from the loop, not from here */
    return &l->link;
}
