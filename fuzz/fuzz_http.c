/* fuzz_http — the HTTP/1.1 server glue of src/http.c (llhttp callbacks, limits, pipelining,
 * pausing and resuming, responses and streams, lingering close), driven end to end.
 *
 * Two real http_servers live on one uv loop for the whole process, listening on abstract Unix
 * sockets (no ports, no TIME_WAIT; libuv's TCP handle works on any stream socket): one with
 * keep-alive and roomy limits, one without keep-alive and with tight limits. Each input opens a
 * connection, sends its bytes (in fuzzer-chosen chunks, the loop turned between them so that
 * each arrives in its own read), half-closes or closes, and turns the loop until the server has
 * closed the connection and every deferred answer has run.
 *
 * Input: [control][k chunk lengths][request bytes]
 *   control bits 0-2  k, the number of chunks before the rest (lengths 1..256)
 *   bit 3             the server without keep-alive and with tight limits
 *   bit 4             close the socket after sending (instead of a half-close): writes fail
 *   bit 5             do not read the answers until everything is sent: the write queue fills
 * The handler answers by the first letter of the path: a (later, from a timer), s (a chunked
 * stream), S (stream begun now, ended later), F (a flood of stream writes until the queue is
 * cut), c (close after), x (over 1 KiB of extra headers echoing request headers), e (204),
 * t (http_respond_take), anything else an echo of the request.
 * Checks, beyond the sanitizers: what the handler gets is consistent (path, query, headers
 * NUL-terminated with their lengths, no CR, LF or NUL inside, counts and body within the limits);
 * the bytes the client receives parse as a sequence of HTTP/1.1 responses (llhttp, response
 * mode); the server closes every connection and nothing waits forever. */
#include "http.h"
#include "log.h"
#include "fuzz_util.h"
#include <errno.h>
#include <fcntl.h>
#include <llhttp.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

typedef struct fsrv {
    http_server       *srv;
    http_limits        lim;
    struct sockaddr_un addr;
    socklen_t          addrlen;
} fsrv;

static uv_loop_t loop;
static fsrv servers[2];
static int n_deferred;  /* timers not yet fired and closed */
static int n_handled;

typedef struct deferred {
    uv_timer_t t;
    http_req  *req;
    int        mode;
} deferred;

/* ---- handler ------------------------------------------------------------------------------ */

static void check_req(http_req *req, const http_limits *lim)
{
    /* walks every header; '(' is not a token character, so no request can have this header */
    FZ_CHECK(http_req_header(req, "(absent)") == NULL, "a header that cannot exist was found");
    FZ_CHECK(req->path && strlen(req->path) == req->path_len, "path length");
    FZ_CHECK(!strpbrk(req->path, " \r\n"), "space, CR or LF in the path");
    FZ_CHECK(req->query && !strpbrk(req->query, " \r\n"), "query");
    FZ_CHECK(req->path_len + strlen(req->query) <= lim->max_url, "url over max_url");
    FZ_CHECK(req->n_headers <= lim->max_headers, "%zu headers over %zu", req->n_headers, lim->max_headers);
    FZ_CHECK(req->n_headers == 0 || req->headers, "headers array");
    for (size_t i = 0; i < req->n_headers; i++) {
        const http_header *h = &req->headers[i];
        FZ_CHECK(h->name && h->value, "header %zu of %zu has no name or value", i, req->n_headers);
        FZ_CHECK(h->name_len && strlen(h->name) == h->name_len, "header name length");
        FZ_CHECK(strlen(h->value) == h->value_len, "header value length");
        FZ_CHECK(!strpbrk(h->name, " \t\r\n:"), "bad byte in header name '%s'", h->name);
        FZ_CHECK(!strpbrk(h->value, "\r\n"), "CR or LF in the value of %s", h->name);
        FZ_CHECK(!h->value_len || (h->value[0] != ' ' && h->value[0] != '\t' && h->value[h->value_len - 1] != ' ' &&
                                   h->value[h->value_len - 1] != '\t'), "value not trimmed");
        FZ_CHECK(http_req_header(req, h->name) != NULL, "http_req_header misses %s", h->name);
    }
    FZ_CHECK(req->body.len <= lim->max_body, "body of %zu over max_body", req->body.len);
    FZ_CHECK(http_method_str(req->method) != NULL, "method");
    /* 9: llhttp takes a request line without a version ("GET /") as HTTP/0.9 */
    FZ_CHECK(req->http_minor == 0 || req->http_minor == 1 || req->http_minor == 9, "HTTP/x.%d", req->http_minor);
}

static void echo(http_req *req)
{
    buf b;
    buf_init(&b, 1 << 20);
    buf_printf(&b, "%s %s?%s minor=%d keep=%d\n", http_method_str(req->method), req->path, req->query,
               req->http_minor, req->keep_alive);
    for (size_t i = 0; i < req->n_headers; i++)
        buf_printf(&b, "%s: %s\n", req->headers[i].name, req->headers[i].value);
    buf_append(&b, req->body.data, req->body.len);
    http_respond(req, 200, "X-Fuzz: 1\r\n", "text/plain", b.data, b.len);
    buf_free(&b);
}

static void deferred_closed(uv_handle_t *h)
{
    free(h->data);
    n_deferred--;
}

static void deferred_fire(uv_timer_t *t)
{
    deferred *d = t->data;
    if (d->req) {
        d->req->on_abort = NULL;
        if (d->mode == 'S') {
            if (http_stream_write(d->req, "later\n", 6) == 0) http_stream_end(d->req);
        } else {
            echo(d->req);
        }
    }
    uv_close((uv_handle_t *)&d->t, deferred_closed);
}

static void deferred_abort(http_req *req)
{
    deferred *d = req->ud;
    d->req = NULL;
}

static void on_drain(http_req *req) { (void)req; }

static void defer(http_req *req, int mode)
{
    deferred *d = calloc(1, sizeof *d);
    FZ_CHECK(d, "calloc");
    d->req = req;
    d->mode = mode;
    d->t.data = d;
    req->ud = d;
    req->on_abort = deferred_abort;
    uv_timer_init(&loop, &d->t);
    uv_timer_start(&d->t, deferred_fire, 0, 0);
    n_deferred++;
}

static void handler(http_req *req, void *ctx)
{
    fsrv *s = ctx;
    n_handled++;
    check_req(req, &s->lim);
    char mode = req->path_len > 1 ? req->path[1] : 0;
    switch (mode) {
    case 'a':
        defer(req, 'a');
        break;
    case 's':
        http_stream_begin(req, 200, "Cache-Control: no-cache\r\n", "text/event-stream");
        if (http_stream_write(req, "data: 1\n\n", 9) < 0) return;   /* dropped: the request goes with it */
        if (http_stream_write(req, req->body.data, req->body.len) < 0) return;
        http_stream_end(req);
        break;
    case 'S':
        http_stream_begin(req, 200, NULL, "text/event-stream");
        req->on_drain = on_drain;
        defer(req, 'S');
        break;
    case 'F': {
        static char chunk[8192];
        memset(chunk, 'f', sizeof chunk);
        http_stream_begin(req, 200, NULL, "application/octet-stream");
        for (int i = 0; i < 64; i++)
            if (http_stream_write(req, chunk, sizeof chunk) < 0) return;   /* cut: closed from the loop */
        http_stream_end(req);
        break;
    }
    case 'c':
        http_req_close_after(req);
        echo(req);
        break;
    case 'x': {
        buf e;
        buf_init(&e, 1 << 16);
        buf_appends(&e, "X-Pad: ");
        for (int i = 0; i < 1100; i++) buf_append(&e, "p", 1);
        buf_appends(&e, "\r\n");
        for (size_t i = 0; i < req->n_headers && i < 16; i++)
            buf_printf(&e, "X-Echo-%s: %s\r\n", req->headers[i].name, req->headers[i].value);
        http_respond(req, 200, e.data, "text/plain", "x", 1);
        buf_free(&e);
        break;
    }
    case 'e':
        http_respond(req, 204, NULL, NULL, NULL, 0);
        break;
    case 't': {
        char *b = strdup(req->path);
        http_respond_take(req, 404, NULL, "text/plain", b, strlen(b));
        break;
    }
    default:
        echo(req);
    }
}

/* ---- the client's view: responses must parse -------------------------------------------- */

static int resp_complete;
static int on_resp_complete(llhttp_t *p) { (void)p; resp_complete++; return 0; }

/* ---- setup -------------------------------------------------------------------------------- */

static void start_server(fsrv *s, int idx, const http_limits *lim)
{
    s->lim = *lim;
    s->srv = http_server_new(&loop, lim, handler, s);
    FZ_CHECK(s->srv, "http_server_new");
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    FZ_CHECK(fd >= 0, "socket");
    memset(&s->addr, 0, sizeof s->addr);
    s->addr.sun_family = AF_UNIX;
    int n = snprintf(s->addr.sun_path + 1, sizeof s->addr.sun_path - 1, "mcp-gateway-fuzz-http-%d-%d", (int)getpid(), idx);
    s->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
    FZ_CHECK(bind(fd, (struct sockaddr *)&s->addr, s->addrlen) == 0, "bind: %s", strerror(errno));
    FZ_CHECK(listen(fd, 64) == 0, "listen");
    int rc = http_server_listen_fd(s->srv, fd);
    FZ_CHECK(rc == 0, "http_server_listen_fd: %s", uv_strerror(rc));
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    signal(SIGPIPE, SIG_IGN);
    log_setup(1000, 0);
    FZ_CHECK(uv_loop_init(&loop) == 0, "uv_loop_init");
    static const http_limits roomy = {.max_header_size = 4096, .max_headers = 32, .max_url = 1024,
                                      .max_body = 8192, .max_write_queue = 64 * 1024, .idle_timeout_ms = 60000};
    static const http_limits tight = {.max_header_size = 512, .max_headers = 4, .max_url = 64, .max_body = 64,
                                      .max_write_queue = 4096, .idle_timeout_ms = 0};
    start_server(&servers[0], 0, &roomy);
    start_server(&servers[1], 1, &tight);
    return 0;
}

/* ---- one input ---------------------------------------------------------------------------- */

typedef struct client {
    int      fd;
    int      eof;
    llhttp_t parser;
    llhttp_settings_t settings;
    size_t   received;
} client;

static void client_read(client *c)
{
    char b[65536];
    while (!c->eof) {
        ssize_t n = recv(c->fd, b, sizeof b, 0);
        if (n > 0) {
            if (c->received == 0) FZ_CHECK(n >= 5 && !memcmp(b, "HTTP/", 5), "answer does not start with HTTP/");
            c->received += (size_t)n;
            llhttp_errno_t e = llhttp_execute(&c->parser, b, (size_t)n);
            FZ_CHECK(e == HPE_OK, "the server's answer does not parse: %s (%s)", llhttp_errno_name(e),
                     llhttp_get_error_reason(&c->parser));
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            c->eof = 1;   /* FIN, or a reset after the server closed with unread bytes */
        } else {
            break;
        }
    }
}

static void turn(client *c, int read)
{
    uv_run(&loop, UV_RUN_NOWAIT);
    if (read) client_read(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    uint8_t ctl = fz_u8(&in);
    size_t ncuts, got;
    const uint8_t *cuts = fz_bytes(&in, ctl & 7, &ncuts);
    fsrv *s = &servers[(ctl >> 3) & 1];
    int abrupt = ctl & 0x10, read_late = ctl & 0x20;

    client c = {0};
    llhttp_settings_init(&c.settings);
    c.settings.on_message_complete = on_resp_complete;
    llhttp_init(&c.parser, HTTP_RESPONSE, &c.settings);
    resp_complete = 0;
    n_handled = 0;

    c.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    FZ_CHECK(c.fd >= 0, "socket");
    FZ_CHECK(connect(c.fd, (struct sockaddr *)&s->addr, s->addrlen) == 0, "connect: %s", strerror(errno));
    FZ_CHECK(fcntl(c.fd, F_SETFL, O_NONBLOCK) == 0, "O_NONBLOCK");
    for (int i = 0; i < 1000 && http_server_connections(s->srv) == 0; i++) uv_run(&loop, UV_RUN_NOWAIT);
    FZ_CHECK(http_server_connections(s->srv) == 1, "not accepted");

    /* send: the k chunks, then the rest */
    int sent_all = 1;
    for (size_t i = 0; i <= ncuts && sent_all; i++) {
        size_t want = i < ncuts ? (size_t)cuts[i] + 1 : in.n;
        const uint8_t *p = fz_bytes(&in, want, &got);
        uint64_t t0 = uv_hrtime();
        while (got) {
            ssize_t n = send(c.fd, p, got, MSG_NOSIGNAL);
            if (n > 0) { p += n; got -= (size_t)n; continue; }
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                FZ_CHECK(uv_hrtime() - t0 < 5000000000ull, "the server stopped reading for 5 s");
                turn(&c, 1);
                continue;
            }
            sent_all = 0;   /* the server closed: the rest is not wanted */
            break;
        }
        turn(&c, !read_late);
    }
    if (abrupt) {
        close(c.fd);
        c.fd = -1;
        c.eof = 1;
    } else {
        shutdown(c.fd, SHUT_WR);
    }

    /* until the server has closed the connection and nothing is pending */
    uint64_t t0 = uv_hrtime();
    while (!c.eof || http_server_connections(s->srv) || n_deferred) {
        turn(&c, 1);
        if (c.eof && c.fd >= 0) { close(c.fd); c.fd = -1; }
        FZ_CHECK(uv_hrtime() - t0 < 5000000000ull, "connection not done after 5 s: eof %d, connections %zu, deferred %d",
                 c.eof, http_server_connections(s->srv), n_deferred);
    }
    if (c.fd >= 0) close(c.fd);
    FZ_CHECK(resp_complete <= n_handled + 1, "%d answers to %d requests", resp_complete, n_handled);
    return 0;
}
