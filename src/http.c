/* http — HTTP/1.1 server connections: accept, parse (llhttp), limits, timeouts, write queue.
 * See http.h for the model: one request in flight per connection, parser paused meanwhile. */
#include "http.h"
#include "log.h"
#include <llhttp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define HTTP_READ_CHUNK   65536
#define HTTP_PENDING_MAX  (256 * 1024)   /* bytes read ahead while a request is in flight */
#define HTTP_MAX_CONNS    100000

enum conn_state { CS_IDLE, CS_HEADERS, CS_BODY, CS_INFLIGHT, CS_CLOSING };
enum hdr_state { HS_URL = 0, HS_NAME = 1, HS_VALUE = 2, HS_VALUE_DONE = 3, HS_NAME_DONE = 4 };
#define HTTP_LINGER_MS 2000        /* after a final response: read and discard, then close */

struct http_conn {
    uv_tcp_t        tcp;          /* first: handle->data unused, container_of by cast */
    uv_timer_t      timer;
    http_server    *srv;
    llhttp_t        parser;
    http_req       *req;          /* being parsed or in flight */
    buf             pending;      /* bytes read while paused, not yet parsed */
    size_t          queued;       /* bytes handed to uv_write and not yet written */
    int             hdr_state;    /* HS_*: where in the header section the parser is */
    size_t          trailer_bytes;
    const char     *exec_start;   /* the bytes llhttp_execute is parsing (obs-fold check) */
    int             tail_lf_ws;   /* the bytes parsed before exec_start end in LF [SP/HT]* */
    int             state;
    int             error_status; /* set by a parser callback that rejects the request */
    int             reading;
    int             close_after;
    int             closing;
    int             failed;       /* a write failed: closed from the loop, never re-entrantly */
    int             counted;      /* in srv->n_conns until its handles have closed */
    int             in_parse;
    int             ready;        /* a complete request waits to be dispatched */     /* conn_parse is on the stack: finished requests don't recurse */
    int             handles_open;
    struct http_conn *prev, *next;
};

struct http_server {
    uv_loop_t      *loop;
    uv_tcp_t        listener;
    http_limits     lim;
    http_handler_fn fn;
    void           *ctx;
    llhttp_settings_t settings;
    http_conn      *conns;
    size_t          n_conns;
    int             closing;
    int             listening;
    void          (*close_cb)(http_server *, void *);
    void           *close_arg;
    char            rbuf[HTTP_READ_CHUNK];  /* shared read buffer: parsing copies what it keeps */
    int             rbuf_busy;
    uint64_t        responses[6];           /* by status class (1xx…5xx; [0] other), read by /metrics */
};

typedef struct write_req {
    uv_write_t  w;
    http_conn  *conn;
    size_t      len;
    char        data[];
} write_req;

static void conn_close(http_conn *c);
static void conn_close_timer(uv_timer_t *t);
static void conn_fail_later(http_conn *c);
static void conn_dispatch(http_conn *c);
static void conn_parse(http_conn *c, const char *data, size_t len);
static void conn_arm_timer(http_conn *c);
static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);

/* ---- small helpers ---------------------------------------------------------------------- */

const char *http_status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default:  return "Unknown";
    }
}

const char *http_method_str(int method) { return llhttp_method_name((llhttp_method_t)method); }

const char *http_req_header(const http_req *req, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->n_headers; i++)
        if (req->headers[i].name_len == n && strncasecmp(req->headers[i].name, name, n) == 0)
            return req->headers[i].value;
    return NULL;
}

size_t http_server_connections(const http_server *s) { return __atomic_load_n(&s->n_conns, __ATOMIC_RELAXED); }

uint64_t http_server_responses(const http_server *s, int cls)
{
    return cls >= 0 && cls <= 5 ? __atomic_load_n(&s->responses[cls], __ATOMIC_RELAXED) : 0;
}

static void req_free(http_req *r)
{
    if (!r) return;
    if (r->tr.id[0]) trace_req_end(r);   /* routed: counted, its span finished */
    buf_free(&r->raw);
    buf_free(&r->body);
    free(r->headers);
    free(r);
}

/* ---- writing ---------------------------------------------------------------------------- */

static void on_write(uv_write_t *w, int status)
{
    write_req *wr = (write_req *)w;
    http_conn *c = wr->conn;
    size_t before = c->queued;
    c->queued -= wr->len;
    free(wr);
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->queued == 0 && c->state == CS_IDLE && !c->closing) conn_arm_timer(c);   /* idle from now */
    if (c->req && c->req->on_drain && before > c->srv->lim.max_write_queue / 2 &&
        c->queued <= c->srv->lim.max_write_queue / 2)
        c->req->on_drain(c->req);
}

/* Writes iov with uv_try_write, queues the rest. Returns -1 when the connection is dead. */
static int conn_writev(http_conn *c, uv_buf_t *iov, int n)
{
    if (c->closing || c->failed) return -1;
    size_t total = 0;
    for (int i = 0; i < n; i++) total += iov[i].len;
    size_t done = 0;
    if (c->queued == 0) {
        int r = uv_try_write((uv_stream_t *)&c->tcp, iov, (unsigned)n);
        if (r >= 0) done = (size_t)r;
        else if (r != UV_EAGAIN) { conn_fail_later(c); return -1; }
    }
    if (done == total) return 0;
    write_req *wr = malloc(sizeof *wr + (total - done));
    if (!wr) { conn_fail_later(c); return -1; }
    size_t off = 0, skip = done;
    for (int i = 0; i < n; i++) {
        size_t l = iov[i].len;
        if (skip >= l) { skip -= l; continue; }
        memcpy(wr->data + off, iov[i].base + skip, l - skip);
        off += l - skip;
        skip = 0;
    }
    wr->conn = c;
    wr->len = off;
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)off);
    if (uv_write(&wr->w, (uv_stream_t *)&c->tcp, &b, 1, on_write) < 0) {
        free(wr);
        conn_fail_later(c);
        return -1;
    }
    c->queued += off;
    return 0;
}

static void head_build(buf *h, http_req *req, int status, const char *extra, const char *ctype, long clen)
{
    buf_printf(h, "HTTP/1.1 %d %s\r\n", status, http_status_text(status));
    if (ctype) buf_printf(h, "Content-Type: %s\r\n", ctype);
    if (clen >= 0) buf_printf(h, "Content-Length: %ld\r\n", clen);
    else if (req->http_minor >= 1) buf_appends(h, "Transfer-Encoding: chunked\r\n");
    if (extra) buf_appends(h, extra);
    if (req->tr.id[0]) {   /* checked: [A-Za-z0-9._-] */
        buf_appends(h, "X-Request-Id: ");
        buf_appends(h, req->tr.id);
        buf_appends(h, "\r\n");
    }
    if (!req->keep_alive || req->conn->close_after || !req->conn->srv->lim.idle_timeout_ms)
        buf_appends(h, "Connection: close\r\n");
    else if (req->http_minor == 0)
        buf_appends(h, "Connection: keep-alive\r\n");   /* HTTP/1.0 keeps only what is announced */
    buf_appends(h, "\r\n");
}

/* The response is out and FIN sent: from now on the client gets HTTP_LINGER_MS to go. */
static void on_shutdown(uv_shutdown_t *sr, int status)
{
    http_conn *c = sr->data;
    free(sr);
    if (status == 0 && !c->closing) uv_timer_start(&c->timer, (uv_timer_cb)conn_close_timer, HTTP_LINGER_MS, 0);
}

/* Lingering close (as nginx): send FIN once the response is written, then read and discard
 * what the client still sends for a while, so that an early answer (413, 431) is not lost
 * to a TCP reset of unread data. */
static void conn_linger(http_conn *c)
{
    c->state = CS_CLOSING;
    uv_shutdown_t *sr = malloc(sizeof *sr);
    if (sr) sr->data = c;
    uv_timer_stop(&c->timer);   /* the linger time starts once the response is written (on_shutdown) */
    if (!sr || uv_shutdown(sr, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
        free(sr);
        conn_close(c);
        return;
    }
    if (!c->reading) {
        c->reading = 1;
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
}

/* The response is complete: next request, or close. */
static void req_finish(http_req *req)
{
    http_conn *c = req->conn;
    int keep = req->keep_alive && !c->close_after && !c->srv->closing && c->srv->lim.idle_timeout_ms > 0;
    req_free(req);
    c->req = NULL;
    if (c->failed) return;   /* the close is on its way */
    if (!keep) {
        conn_linger(c);
        return;
    }
    c->state = CS_IDLE;
    llhttp_resume(&c->parser);
    if (c->queued == 0) conn_arm_timer(c);   /* else when the response is written (on_write) */
    else uv_timer_stop(&c->timer);
    if (c->in_parse) return;   /* the conn_parse loop below us goes on with its bytes */
    if (c->pending.len) {
        /* parse what arrived meanwhile; conn_parse may dispatch the next request */
        buf p = c->pending;
        buf_init(&c->pending, HTTP_PENDING_MAX);
        conn_parse(c, p.data, p.len);
        buf_free(&p);
    }
    if (!c->closing && !c->reading && c->state != CS_INFLIGHT) {
        c->reading = 1;
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
}

void http_req_close_after(http_req *req) { req->conn->close_after = 1; }

/* Writes the status line and headers, and body when given. clen < 0: a chunked stream. */
static void write_head(http_req *req, int status, const char *extra, const char *ctype, long clen,
                       const void *body, size_t len)
{
    char hb[1024];
    buf h = {hb, 0, sizeof hb, sizeof hb - 1};
    int cls = status / 100;
    req->tr.status = (uint16_t)status;
    __atomic_add_fetch(&req->conn->srv->responses[cls >= 1 && cls <= 5 ? cls : 0], 1, __ATOMIC_RELAXED);
    head_build(&h, req, status, extra, ctype, clen);
    buf big;
    int heap = 0;
    if (h.len >= sizeof hb - 1) { /* extra headers overflowed the stack buffer */
        buf_init(&big, 65536);
        head_build(&big, req, status, extra, ctype, clen);
        h = big;
        heap = 1;
    }
    uv_buf_t iov[2] = {uv_buf_init(h.data, (unsigned)h.len), uv_buf_init((char *)body, (unsigned)len)};
    conn_writev(req->conn, iov, len ? 2 : 1);
    if (heap) buf_free(&big);
}

void http_respond(http_req *req, int status, const char *extra, const char *ctype, const void *body, size_t len)
{
    write_head(req, status, extra, ctype, (long)len, body, len);
    req->done = 1;
    req_finish(req);
}

void http_respond_take(http_req *req, int status, const char *extra, const char *ctype, char *body, size_t len)
{
    http_respond(req, status, extra, ctype, body, len);
    free(body);
}

void http_stream_begin(http_req *req, int status, const char *extra, const char *ctype)
{
    if (req->http_minor == 0) req->conn->close_after = 1; /* close-delimited body */
    write_head(req, status, extra, ctype, -1, NULL, 0);
    req->streaming = 1;
}

int http_stream_write(http_req *req, const void *data, size_t len)
{
    http_conn *c = req->conn;
    if (!len) return 0;
    if (c->closing || c->failed) return -1;
    if (c->queued > c->srv->lim.max_write_queue) {
        log_warn("http", "client write queue over %zu bytes: dropping the slow client", c->srv->lim.max_write_queue);
        conn_fail_later(c);
        return -1;
    }
    if (req->http_minor == 0) {
        uv_buf_t iov = uv_buf_init((char *)data, (unsigned)len);
        return conn_writev(c, &iov, 1);
    }
    char sz[24];
    int n = snprintf(sz, sizeof sz, "%zx\r\n", len);
    uv_buf_t iov[3] = {uv_buf_init(sz, (unsigned)n), uv_buf_init((char *)data, (unsigned)len),
                       uv_buf_init("\r\n", 2)};
    return conn_writev(c, iov, 3);
}

void http_stream_end(http_req *req)
{
    if (req->http_minor >= 1) {
        uv_buf_t iov = uv_buf_init("0\r\n\r\n", 5);
        conn_writev(req->conn, &iov, 1);
    }
    req->done = 1;
    req_finish(req);
}

size_t http_req_queued(const http_req *req) { return req->conn->queued; }

/* An error detected by the http layer itself: answer and close. */
static void conn_fail(http_conn *c, int status)
{
    if (!c->req) {
        c->req = calloc(1, sizeof *c->req);
        if (!c->req) { conn_close(c); return; }
        c->req->conn = c;
        buf_init(&c->req->raw, 0);
        buf_init(&c->req->body, 0);
        c->req->http_minor = 1;
    }
    c->close_after = 1;
    char body[160];
    int n = snprintf(body, sizeof body, "{\"error\":\"%s\"}", http_status_text(status));
    c->state = CS_INFLIGHT;
    http_respond(c->req, status, NULL, "application/json", body, (size_t)n);
}

/* ---- parsing ---------------------------------------------------------------------------- */

#define CONN(p) ((http_conn *)(p)->data)

static int on_message_begin(llhttp_t *p)
{
    http_conn *c = CONN(p);
    http_req *r = calloc(1, sizeof *r);
    if (!r) return -1;
    r->conn = c;
    buf_init(&r->raw, c->srv->lim.max_header_size);
    buf_init(&r->body, c->srv->lim.max_body);
    c->req = r;
    c->hdr_state = HS_URL;
    c->trailer_bytes = 0;
    c->state = CS_HEADERS;
    conn_arm_timer(c);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    http_conn *c = CONN(p);
    if (c->req->raw.len + len > c->srv->lim.max_url) { c->error_status = 414; return -1; }
    if (buf_append(&c->req->raw, at, len)) { c->error_status = 414; return -1; }
    return 0;
}

/* Header bytes are stored in req->raw as: url \0 (name \0 value \0)* — offsets fixed up at the
 * end of the header section. hdr_state: 0 in the url, 1 in a name, 4 name complete, 2 in a
 * value, 3 value complete. Trailers (after a chunked body) are counted against the header
 * limit and dropped: the header pointers are already handed out. */

static int hdr_fail(http_conn *c, int status)
{
    c->error_status = status;
    return -1;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    http_conn *c = CONN(p);
    http_req *r = c->req;
    if (c->state != CS_HEADERS) {   /* a trailer */
        c->trailer_bytes += len;
        return c->trailer_bytes > c->srv->lim.max_header_size ? hdr_fail(c, 431) : 0;
    }
    if (c->hdr_state != HS_NAME) {   /* a new name: end the url or the previous value */
        if (c->hdr_state != HS_URL && c->hdr_state != HS_VALUE_DONE) return hdr_fail(c, 400);
        if (buf_append(&r->raw, "", 1) || ++r->n_headers > c->srv->lim.max_headers) return hdr_fail(c, 431);
        c->hdr_state = HS_NAME;
    }
    return buf_append(&r->raw, at, len) ? hdr_fail(c, 431) : 0;
}

/* A field name ends at the colon: empty, or whitespace before the colon, is an error (RFC 9112
 * section 5.1). */
static int on_header_field_complete(llhttp_t *p)
{
    http_conn *c = CONN(p);
    if (c->state != CS_HEADERS) return 0;
    buf *raw = &c->req->raw;
    if (c->hdr_state != HS_NAME || !raw->len || raw->data[raw->len - 1] == '\0') return hdr_fail(c, 400);
    /* the name is a token (RFC 9110 section 5.6.2): no spaces, controls or separators */
    static const char tchar_extra[] = "!#$%&'*+-.^_`|~";
    for (size_t i = raw->len; i > 0 && raw->data[i - 1] != '\0'; i--) {
        unsigned char ch = (unsigned char)raw->data[i - 1];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch && strchr(tchar_extra, ch))))
            return hdr_fail(c, 400);
    }
    c->hdr_state = HS_NAME_DONE;
    return 0;
}

/* obs-fold (RFC 9112 section 5.2): llhttp accepts a value continued on a line that starts
 * with SP or HT and hands the continuation over as one more piece of the value (or, after an
 * empty value, as its first piece). A value piece never legitimately follows a line feed and
 * whitespace, so looking back from it finds the fold — into the bytes of earlier reads through
 * tail_lf_ws when the piece starts a read. */
static int after_fold(const http_conn *c, const char *at)
{
    const char *q = at;
    while (q > c->exec_start && (q[-1] == ' ' || q[-1] == '\t')) q--;
    return q > c->exec_start ? q[-1] == '\n' : c->tail_lf_ws;
}

static void note_tail(http_conn *c, const char *start, const char *end)
{
    const char *q = end;
    while (q > start && (q[-1] == ' ' || q[-1] == '\t')) q--;
    if (q > start) c->tail_lf_ws = q[-1] == '\n';
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    http_conn *c = CONN(p);
    http_req *r = c->req;
    if (c->state != CS_HEADERS) {
        c->trailer_bytes += len;
        return c->trailer_bytes > c->srv->lim.max_header_size ? hdr_fail(c, 431) : 0;
    }
    if (c->hdr_state == HS_NAME_DONE) {   /* end the name */
        if (buf_append(&r->raw, "", 1)) return hdr_fail(c, 431);
        c->hdr_state = HS_VALUE;
    } else if (c->hdr_state != HS_VALUE) {
        return hdr_fail(c, 400);   /* a value without a name */
    }
    if (len && after_fold(c, at)) return hdr_fail(c, 400);   /* an empty value is a 0-length piece at the next line */
    return buf_append(&r->raw, at, len) ? hdr_fail(c, 431) : 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    http_conn *c = CONN(p);
    if (c->state != CS_HEADERS) return 0;
    if (c->hdr_state == HS_NAME_DONE) {   /* an empty value: no value callback came */
        if (buf_append(&c->req->raw, "", 1)) return hdr_fail(c, 431);
    } else if (c->hdr_state != HS_VALUE) {
        return hdr_fail(c, 400);
    }
    c->hdr_state = HS_VALUE_DONE;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    http_conn *c = CONN(p);
    http_req *r = c->req;
    if (c->hdr_state != HS_URL && c->hdr_state != HS_VALUE_DONE) return hdr_fail(c, 400);   /* a name without value */
    /* HTTP/1.0 and 1.1 only: an HTTP/0.9 request line (no version) is 400, HTTP/2+ in text 505 */
    if (llhttp_get_http_major(p) != 1) return hdr_fail(c, llhttp_get_http_major(p) > 1 ? 505 : 400);
    if (buf_append(&r->raw, "", 1)) return hdr_fail(c, 431);   /* ends the url or the last value */
    if (c->hdr_state == HS_URL && buf_append(&r->raw, "", 1)) return hdr_fail(c, 431);
    /* split url into path and query */
    char *url = r->raw.data;
    size_t ulen = strlen(url);
    char *q = memchr(url, '?', ulen);
    r->path = url;
    r->path_len = q ? (size_t)(q - url) : ulen;
    r->query = q ? q + 1 : "";
    if (q) *q = '\0';
    /* headers */
    int hosts = 0;
    if (r->n_headers) {
        r->headers = calloc(r->n_headers, sizeof *r->headers);
        if (!r->headers) { c->error_status = 500; return -1; }
        char *s = url + ulen + 1, *end = r->raw.data + r->raw.len;
        for (size_t i = 0; i < r->n_headers && s < end; i++) {
            http_header *h = &r->headers[i];
            h->name = s; h->name_len = strlen(s); s += h->name_len + 1;
            if (s >= end) break;
            /* trim optional whitespace of the value */
            while (*s == ' ' || *s == '\t') s++;
            size_t vl = strlen(s);
            char *v = s;
            s += vl + 1;
            while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) v[--vl] = '\0';
            h->value = v; h->value_len = vl;
            /* more than one Host is 400 (RFC 9112 section 3.2): which one would the checks see? */
            if (h->name_len == 4 && !strncasecmp(h->name, "host", 4) && ++hosts > 1) return hdr_fail(c, 400);
        }
    }
    r->method = llhttp_get_method(p);
    r->http_minor = llhttp_get_http_minor(p);
    r->keep_alive = llhttp_should_keep_alive(p);
    r->start_ns = uv_hrtime();
    if (p->content_length > c->srv->lim.max_body && !(p->flags & F_CHUNKED)) {
        c->error_status = 413;
        return -1;
    }
    c->state = CS_BODY;
    conn_arm_timer(c);
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    http_conn *c = CONN(p);
    if (buf_append(&c->req->body, at, len)) { c->error_status = 413; return -1; }
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    http_conn *c = CONN(p);
    c->state = CS_INFLIGHT;
    c->ready = 1;
    return HPE_PAUSED;
}

/* Parses len bytes; dispatches a complete request; keeps unparsed bytes in c->pending. */
static void conn_parse(http_conn *c, const char *data, size_t len)
{
    c->in_parse++;
    while (len && !c->closing) {
        if (c->state == CS_INFLIGHT || c->state == CS_CLOSING) {
            if (c->state == CS_CLOSING) break;            /* nothing more is read after a close */
            if (buf_append(&c->pending, data, len)) { conn_fail_later(c); break; }
            if (c->pending.len > HTTP_PENDING_MAX / 2 && c->reading) {
                uv_read_stop((uv_stream_t *)&c->tcp);   /* back-pressure on a pipelining client */
                c->reading = 0;
            }
            break;
        }
        c->exec_start = data;
        llhttp_errno_t err = llhttp_execute(&c->parser, data, len);
        if (err == HPE_OK) { note_tail(c, data, data + len); break; }
        if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
            /* HPE_PAUSED_UPGRADE: an Upgrade offer (h2c, websocket) we do not take; the
             * connection stays HTTP/1.1 (RFC 9110 section 7.8) */
            if (err == HPE_PAUSED_UPGRADE) llhttp_resume_after_upgrade(&c->parser);
            const char *pos = llhttp_get_error_pos(&c->parser);
            size_t used = pos ? (size_t)(pos - data) : len;
            note_tail(c, data, data + used);
            data += used;
            len -= used;
            if (c->ready) conn_dispatch(c);   /* may finish synchronously and resume */
            continue;
        }
        int status = c->error_status ? c->error_status : 400;
        if (err == HPE_USER && !c->error_status) status = 500;
        log_debug("http", "bad request: %s (%s) -> %d", llhttp_errno_name(err), llhttp_get_error_reason(&c->parser), status);
        conn_fail(c, status);
        break;
    }
    c->in_parse--;
}

static void conn_dispatch(http_conn *c)
{
    http_req *r = c->req;
    c->state = CS_INFLIGHT;
    c->ready = 0;
    uv_timer_stop(&c->timer);
    c->srv->fn(r, c->srv->ctx);
}

/* ---- connection lifecycle ---------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    http_conn *c = (http_conn *)h;
    if (c->srv->rbuf_busy) { /* nested read (should not happen): use a private buffer */
        b->base = malloc(sz);
        b->len = b->base ? sz : 0;
        return;
    }
    c->srv->rbuf_busy = 1;
    b->base = c->srv->rbuf;
    b->len = sizeof c->srv->rbuf;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    http_conn *c = (http_conn *)s;
    http_server *srv = c->srv;
    int shared = b->base == srv->rbuf;
    if (n > 0 && c->state == CS_CLOSING) ;   /* lingering: discard */
    else if (n > 0) conn_parse(c, b->base, (size_t)n);
    else if (n == UV_EOF && c->state == CS_INFLIGHT && c->req && !c->req->streaming) {
        /* half-close after a request: answer it, then close */
        uv_read_stop(s);
        c->reading = 0;
        c->close_after = 1;
    } else if (n < 0) {
        /* EOF or error: a streaming request is aborted; an idle connection just closes */
        conn_close(c);
    }
    if (shared) srv->rbuf_busy = 0;
    else free(b->base);
}

static void on_handle_closed(uv_handle_t *h)
{
    http_conn *c = h->data;
    if (--c->handles_open > 0) return;
    http_server *s = c->srv;
    if (c->counted) __atomic_sub_fetch(&s->n_conns, 1, __ATOMIC_RELAXED);
    buf_free(&c->pending);
    free(c);
    if (s->closing && s->n_conns == 0 && !s->listening && s->close_cb) {
        void (*cb)(http_server *, void *) = s->close_cb;
        s->close_cb = NULL;
        cb(s, s->close_arg);
    }
}

static void conn_close(http_conn *c)
{
    if (c->closing) return;
    c->closing = 1;
    http_server *s = c->srv;
    if (c->req) {
        http_req *r = c->req;
        c->req = NULL;
        if (!r->done && r->on_abort && c->state == CS_INFLIGHT) r->on_abort(r);
        req_free(r);
    }
    if (c->prev) c->prev->next = c->next; else s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    uv_timer_stop(&c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static void conn_close_timer(uv_timer_t *t) { conn_close(t->data); }

/* A write failed (peer reset, no memory): close from the loop, so that no caller up the stack
 * sees its request vanish. */
static void conn_fail_later(http_conn *c)
{
    if (c->failed || c->closing) return;
    c->failed = 1;
    uv_timer_start(&c->timer, conn_close_timer, 0, 0);
}

static void on_timer(uv_timer_t *t)
{
    http_conn *c = t->data;
    if (c->state == CS_HEADERS || c->state == CS_BODY) {
        log_debug("http", "client too slow: request timeout");
        conn_fail(c, 408);
    } else {
        conn_close(c);   /* idle keep-alive connection */
    }
}

/* Called on each state change only, so the header timer runs from a request's first byte
 * (slowloris: trickling bytes does not extend it). */
static void conn_arm_timer(http_conn *c)
{
    const http_limits *l = &c->srv->lim;
    uint64_t ms = c->state == CS_IDLE ? l->idle_timeout_ms : c->state == CS_HEADERS ? l->header_timeout_ms
                : c->state == CS_BODY ? l->body_timeout_ms : 0;
    if (ms) uv_timer_start(&c->timer, on_timer, ms, 0);
    else uv_timer_stop(&c->timer);
}

static void on_connection(uv_stream_t *ls, int status)
{
    http_server *s = ls->data;
    if (status < 0) return;
    http_conn *c = calloc(1, sizeof *c);
    if (!c) return;
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles_open = 2;
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) < 0 || s->n_conns >= HTTP_MAX_CONNS || s->closing) {
        c->closing = 1;
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
        uv_close((uv_handle_t *)&c->timer, on_handle_closed);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    buf_init(&c->pending, HTTP_PENDING_MAX);
    llhttp_init(&c->parser, HTTP_REQUEST, &s->settings);
    c->parser.data = c;
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    __atomic_add_fetch(&s->n_conns, 1, __ATOMIC_RELAXED);
    c->counted = 1;
    c->state = CS_IDLE;
    c->reading = 1;
    conn_arm_timer(c);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

http_server *http_server_new(uv_loop_t *loop, const http_limits *lim, http_handler_fn fn, void *ctx)
{
    http_server *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->loop = loop;
    s->lim = *lim;
    s->fn = fn;
    s->ctx = ctx;
    llhttp_settings_init(&s->settings);
    s->settings.on_message_begin = on_message_begin;
    s->settings.on_url = on_url;
    s->settings.on_header_field = on_header_field;
    s->settings.on_header_value = on_header_value;
    s->settings.on_header_field_complete = on_header_field_complete;
    s->settings.on_header_value_complete = on_header_value_complete;
    s->settings.on_headers_complete = on_headers_complete;
    s->settings.on_body = on_body;
    s->settings.on_message_complete = on_message_complete;
    return s;
}

int http_server_listen_fd(http_server *s, int fd)
{
    int rc = uv_tcp_init(s->loop, &s->listener);
    if (rc) return rc;
    s->listener.data = s;
    if ((rc = uv_tcp_open(&s->listener, fd))) return rc;
    if ((rc = uv_listen((uv_stream_t *)&s->listener, 4096, on_connection))) return rc;
    s->listening = 1;
    return 0;
}

static void on_listener_closed(uv_handle_t *h)
{
    http_server *s = h->data;
    s->listening = 0;
    if (s->n_conns == 0 && s->close_cb) {
        void (*cb)(http_server *, void *) = s->close_cb;
        s->close_cb = NULL;
        cb(s, s->close_arg);
    }
}

void http_server_close(http_server *s, void (*cb)(http_server *, void *), void *arg)
{
    s->closing = 1;
    s->close_cb = cb;
    s->close_arg = arg;
    for (http_conn *c = s->conns, *n; c; c = n) {
        n = c->next;
        if (c->state == CS_IDLE || c->state == CS_HEADERS) conn_close(c);
        else c->close_after = 1;
    }
    if (s->listening) uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    else if (s->n_conns == 0 && cb) { s->close_cb = NULL; cb(s, arg); }
}

void http_server_close_all(http_server *s)
{
    for (http_conn *c = s->conns, *n; c; c = n) {
        n = c->next;
        conn_close(c);
    }
}

void http_server_free(http_server *s) { free(s); }
