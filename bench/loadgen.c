/* loadgen — the MCP load generator of the benchmark (bench/run.sh drives it).
 *
 * One thread, epoll, non-blocking keep-alive connections, llhttp to read the answers (plain
 * JSON, chunked, or SSE). Every connection first opens an MCP session (initialize →
 * Mcp-Session-Id, then notifications/initialized) and from then on sends real Streamable HTTP
 * POSTs: Content-Type: application/json, Accept: application/json, text/event-stream,
 * Mcp-Session-Id, MCP-Protocol-Version (the version initialize returned) and any --header.
 * Each answer is checked: HTTP 200 and a JSON-RPC result carrying the request's id (no
 * "error" member, no isError) — anything else counts as an error.
 *
 * Modes (--mode):
 *   throughput  closed loop: --conns connections, each with one request in flight, for
 *               --duration seconds after --warmup; reports calls/s and latency percentiles.
 *   rate        open loop at --rate requests/s spread over --conns connections; latency is
 *               measured from the scheduled send time (no coordinated omission).
 *   sessions    creates --count sessions (initialize + notifications/initialized) over a pool
 *               of --conns keep-alive connections; RSS of --rss-pid before/after.
 *   sse         creates --streams sessions, opens one GET SSE stream per session (one
 *               connection each), reads RSS, calls --trigger (a tool whose call makes the
 *               upstream send tools/list_changed) and counts the streams that receive the
 *               notification.
 *   startup     --runs times: exec the command after "--" pinned to --cpu, and time the first
 *               accepted TCP connection, the first /healthz answer and, with --expect a,b,c,
 *               the first tools/list that contains each listed string.
 *   init        prints the session id of one new session (for wrk).
 * CPU time of other processes over the measured window: --cpu-pid NAME=PID (repeatable),
 * read from /proc/PID/stat (utime + stime, all threads).
 * Output: one JSON object on stdout. */
#include <llhttp.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_HDRS     16
#define MAX_PIDS     8
#define OUT_CAP      16384
#define BODY_CAP     (1u << 20)
#define MAX_CONNECTING 128          /* connects in progress at once (listen backlogs) */

enum { M_THROUGHPUT, M_RATE, M_SESSIONS, M_SSE, M_STARTUP, M_INIT };
enum { R_NONE, R_INIT, R_NOTIF, R_CALL, R_GET, R_TRIGGER };
enum { S_CLOSED, S_CONNECTING, S_IDLE, S_BUSY, S_STREAM, S_DEAD };

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- options ------------------------------------------------------------------------------ */

static struct {
    int         mode;
    const char *host;
    int         port;
    const char *path;
    const char *hdrs[MAX_HDRS];
    int         n_hdrs;
    const char *method;       /* tools/call, tools/list, ping */
    const char *tool;
    const char *args;
    const char *proto;        /* protocolVersion asked for in initialize */
    int         conns;
    double      duration, warmup, rate;
    long        count, streams;
    const char *trigger;
    const char *cpu_name[MAX_PIDS];
    pid_t       cpu_pid[MAX_PIDS];
    int         n_cpu;
    pid_t       rss_pid;
    int         runs, cpu;
    const char *expect;
    const char *log;
    char      **cmd;
    const char *label;
    double      timeout;
    int         no_notif;
} O = {
    .host = "127.0.0.1", .port = 0, .path = "/mcp", .method = "tools/call", .tool = "echo",
    .args = "{\"text\":\"hello\"}", .proto = "2025-11-25", .conns = 32, .duration = 5, .warmup = 1,
    .count = 20000, .streams = 5000, .runs = 5, .cpu = -1, .label = "", .timeout = 20,
};

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen --mode throughput|rate|sessions|sse|startup|init --port P [options]\n"
            "  --host H --path /mcp --header 'Name: value' (repeatable)\n"
            "  --method tools/call|tools/list|ping --tool NAME --args JSON --proto VERSION\n"
            "  --conns N --duration S --warmup S --rate R --count N --streams N --trigger TOOL\n"
            "  --cpu-pid NAME=PID (repeatable) --rss-pid PID --label TEXT --timeout S --no-notif\n"
            "  startup: --runs N --cpu C --expect a,b,c --log FILE -- command args...\n");
    exit(2);
}

/* ---- /proc ---------------------------------------------------------------------------------- */

static double proc_cpu_s(pid_t pid)
{
    char path[64], b[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(b, 1, sizeof b - 1, f);
    fclose(f);
    b[n] = '\0';
    char *p = strrchr(b, ')');
    if (!p) return -1;
    /* after ")": state(3) ppid(4) ... utime(14) stime(15) */
    unsigned long ut = 0, st = 0;
    int field = 2;
    for (char *t = p + 1; *t && field < 15;) {
        while (*t == ' ') t++;
        field++;
        if (field == 14) ut = strtoul(t, NULL, 10);
        if (field == 15) st = strtoul(t, NULL, 10);
        while (*t && *t != ' ') t++;
    }
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long proc_status_kb(pid_t pid, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ':') { v = strtol(line + kl + 1, NULL, 10); break; }
    fclose(f);
    return v;
}

/* Busy seconds of each CPU (user, nice, system, irq, softirq, steal) from /proc/stat. */
#define MAX_CPUS 64
static int proc_cpus_busy(double *busy)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return 0;
    char line[512];
    int n = 0;
    double tck = (double)sysconf(_SC_CLK_TCK);
    while (fgets(line, sizeof line, f) && n < MAX_CPUS) {
        if (strncmp(line, "cpu", 3) || line[3] < '0' || line[3] > '9') continue;
        unsigned long long v[8] = {0};
        int cpu;
        if (sscanf(line, "cpu%d %llu %llu %llu %llu %llu %llu %llu %llu", &cpu, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                   &v[6], &v[7]) < 9 || cpu != n) break;
        busy[n++] = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / tck;
    }
    fclose(f);
    return n;
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* ---- connections ---------------------------------------------------------------------------- */

typedef struct conn {
    int       fd;
    int       state;
    int       req;            /* what is in flight (R_*) */
    int       idx;
    llhttp_t  parser;
    llhttp_settings_t *settings;
    /* the session */
    char      sid[512];
    char      proto[32];
    int       has_session;
    long      session_no;     /* sse: index of the session this connection streams */
    /* the request being written */
    char      out[OUT_CAP];
    size_t    out_len, out_off;
    long      id;
    uint64_t  t_sent, t_intended;
    /* the answer being read */
    char      hfield[64];
    size_t    hfield_len;
    int       hdr_which;      /* 1 mcp-session-id, 2 content-type */
    char      hval[512];
    size_t    hval_len;
    int       status;
    int       sse;            /* answer is text/event-stream */
    char     *body;
    size_t    body_len, body_cap;
    int       body_over;
    int       complete;       /* a whole answer was read */
    int       match;          /* sse streams: bytes of "list_changed" matched so far */
    int       notified;
    int       want_reconnect;
    int       stream_open;
    int       in_idle;        /* rate: on the idle stack */
} conn;

static int     ep;
static int     tfd = -1;
static conn   *C;
static int     n_conns;
static int     connecting;
static llhttp_settings_t settings;

/* results */
static uint64_t *lat;          /* ns */
static size_t    n_lat, cap_lat;
static long      ok_calls, errors, err_status, err_body, err_conn;
static long      next_id = 1;
static char      first_error[512];

static void note_error(conn *c, const char *what)
{
    errors++;
    if (!first_error[0]) {
        char snip[200] = "";
        if (c && c->body_len) {
            size_t n = c->body_len < sizeof snip - 1 ? c->body_len : sizeof snip - 1;
            for (size_t i = 0; i < n; i++) snip[i] = (c->body[i] >= 32 && c->body[i] < 127 && c->body[i] != '"' && c->body[i] != '\\') ? c->body[i] : '.';
            snip[n] = '\0';
        }
        snprintf(first_error, sizeof first_error, "%s (status %d) %s", what, c ? c->status : 0, snip);
    }
}

static void lat_add(uint64_t ns)
{
    if (n_lat == cap_lat) {
        cap_lat = cap_lat ? cap_lat * 2 : 65536;
        lat = realloc(lat, cap_lat * sizeof *lat);
        if (!lat) die("out of memory");
    }
    lat[n_lat++] = ns;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(double p)
{
    if (!n_lat) return 0;
    size_t i = (size_t)(p / 100.0 * (double)(n_lat - 1) + 0.5);
    if (i >= n_lat) i = n_lat - 1;
    return (double)lat[i] / 1000.0;
}

/* llhttp callbacks */
static int on_begin(llhttp_t *p)
{
    conn *c = p->data;
    c->status = 0;
    c->sse = 0;
    c->body_len = 0;
    c->body_over = 0;
    c->hdr_which = 0;
    c->hval_len = 0;
    c->hfield_len = 0;
    return 0;
}

static int on_hfield(llhttp_t *p, const char *at, size_t n)
{
    conn *c = p->data;
    if (c->hfield_len + n < sizeof c->hfield) { memcpy(c->hfield + c->hfield_len, at, n); c->hfield_len += n; }
    else c->hfield_len = sizeof c->hfield;   /* too long: no header we care about */
    return 0;
}

static int on_hfield_done(llhttp_t *p)
{
    conn *c = p->data;
    c->hdr_which = 0;
    if (c->hfield_len == 14 && !strncasecmp(c->hfield, "mcp-session-id", 14)) c->hdr_which = 1;
    else if (c->hfield_len == 12 && !strncasecmp(c->hfield, "content-type", 12)) c->hdr_which = 2;
    c->hfield_len = 0;
    c->hval_len = 0;
    return 0;
}

static int on_hvalue(llhttp_t *p, const char *at, size_t n)
{
    conn *c = p->data;
    if (!c->hdr_which) return 0;
    if (c->hval_len + n < sizeof c->hval) { memcpy(c->hval + c->hval_len, at, n); c->hval_len += n; }
    return 0;
}

static int on_hvalue_done(llhttp_t *p)
{
    conn *c = p->data;
    c->hval[c->hval_len] = '\0';
    if (c->hdr_which == 1 && c->req == R_INIT) {
        memcpy(c->sid, c->hval, c->hval_len + 1);
    } else if (c->hdr_which == 2) {
        c->sse = strncasecmp(c->hval, "text/event-stream", 17) == 0;
    }
    c->hdr_which = 0;
    return 0;
}

static void stream_opened(conn *c);

static int on_headers_done(llhttp_t *p)
{
    conn *c = p->data;
    c->status = p->status_code;
    if (c->req == R_GET && c->status == 200 && c->sse) stream_opened(c);
    return 0;
}

static const char notif_pat[] = "list_changed";

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    conn *c = p->data;
    if (c->req == R_GET) {
        for (size_t i = 0; i < n && !c->notified; i++) {
            if (at[i] == notif_pat[c->match]) {
                if (++c->match == (int)sizeof notif_pat - 1) c->notified = 1;
            } else {
                c->match = at[i] == notif_pat[0];
            }
        }
        return 0;
    }
    if (c->body_len + n > BODY_CAP) { c->body_over = 1; return 0; }
    if (c->body_len + n > c->body_cap) {
        size_t nc = c->body_cap ? c->body_cap : 4096;
        while (nc < c->body_len + n) nc *= 2;
        c->body = realloc(c->body, nc);
        if (!c->body) die("out of memory");
        c->body_cap = nc;
    }
    memcpy(c->body + c->body_len, at, n);
    c->body_len += n;
    return 0;
}

static int on_complete(llhttp_t *p)
{
    conn *c = p->data;
    c->complete = 1;
    if (!llhttp_should_keep_alive(p)) c->want_reconnect = 1;
    return HPE_PAUSED;   /* one answer at a time: handled after llhttp_execute returns */
}

/* ---- writing requests ------------------------------------------------------------------------- */

static char host_hdr[128];

static size_t put(char *o, size_t at, const char *s)
{
    size_t n = strlen(s);
    if (at + n >= OUT_CAP) die("request too large");
    memcpy(o + at, s, n);
    return at + n;
}

/* Builds a POST with body b (len bl) into c->out. */
static void build_post(conn *c, const char *b, size_t bl, int with_session)
{
    char *o = c->out;
    size_t n = 0;
    n = put(o, n, "POST ");
    n = put(o, n, O.path);
    n = put(o, n, " HTTP/1.1\r\nHost: ");
    n = put(o, n, host_hdr);
    n = put(o, n, "\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n");
    if (with_session) {
        n = put(o, n, "Mcp-Session-Id: ");
        n = put(o, n, c->sid);
        n = put(o, n, "\r\nMCP-Protocol-Version: ");
        n = put(o, n, c->proto);
        n = put(o, n, "\r\n");
    }
    for (int i = 0; i < O.n_hdrs; i++) { n = put(o, n, O.hdrs[i]); n = put(o, n, "\r\n"); }
    char cl[48];
    snprintf(cl, sizeof cl, "Content-Length: %zu\r\n\r\n", bl);
    n = put(o, n, cl);
    if (n + bl >= OUT_CAP) die("request too large");
    memcpy(o + n, b, bl);
    c->out_len = n + bl;
    c->out_off = 0;
}

static void build_get(conn *c)
{
    char *o = c->out;
    size_t n = 0;
    n = put(o, n, "GET ");
    n = put(o, n, O.path);
    n = put(o, n, " HTTP/1.1\r\nHost: ");
    n = put(o, n, host_hdr);
    n = put(o, n, "\r\nAccept: text/event-stream\r\nMcp-Session-Id: ");
    n = put(o, n, c->sid);
    n = put(o, n, "\r\nMCP-Protocol-Version: ");
    n = put(o, n, c->proto);
    n = put(o, n, "\r\n");
    for (int i = 0; i < O.n_hdrs; i++) { n = put(o, n, O.hdrs[i]); n = put(o, n, "\r\n"); }
    n = put(o, n, "\r\n");
    c->out_len = n;
    c->out_off = 0;
}

static void ep_mod(conn *c, uint32_t ev)
{
    struct epoll_event e = {.events = ev, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
}

static void conn_fail(conn *c, const char *what);

static void flush_out(conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (w > 0) { c->out_off += (size_t)w; continue; }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) { ep_mod(c, EPOLLIN | EPOLLOUT); return; }
        conn_fail(c, "write failed");
        return;
    }
}

static void send_req(conn *c, int kind, uint64_t intended)
{
    char body[4096];
    int bl;
    c->req = kind;
    c->complete = 0;
    if (c->state != S_CONNECTING) c->state = S_BUSY;
    c->id = next_id++;
    switch (kind) {
    case R_INIT:
        bl = snprintf(body, sizeof body,
                      "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"%s\","
                      "\"capabilities\":{},\"clientInfo\":{\"name\":\"loadgen\",\"version\":\"1\"}}}", c->id, O.proto);
        c->sid[0] = '\0';
        build_post(c, body, (size_t)bl, 0);
        break;
    case R_NOTIF:
        bl = snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
        build_post(c, body, (size_t)bl, 1);
        break;
    case R_CALL:
        if (!strcmp(O.method, "tools/call"))
            bl = snprintf(body, sizeof body,
                          "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"tools/call\",\"params\":{\"name\":\"%s\",\"arguments\":%s}}",
                          c->id, O.tool, O.args);
        else
            bl = snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"%s\"}", c->id, O.method);
        build_post(c, body, (size_t)bl, 1);
        break;
    case R_TRIGGER:
        bl = snprintf(body, sizeof body,
                      "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"tools/call\",\"params\":{\"name\":\"%s\",\"arguments\":{}}}",
                      c->id, O.trigger);
        build_post(c, body, (size_t)bl, 1);
        break;
    case R_GET:
        c->match = 0;
        c->notified = 0;
        c->stream_open = 0;
        build_get(c);
        break;
    }
    c->t_intended = intended;
    c->t_sent = now_ns();
    if (c->state != S_CONNECTING) flush_out(c);   /* else on_connected sends it */
}

/* ---- connecting --------------------------------------------------------------------------------- */

static struct sockaddr_in addr;

static void conn_open(conn *c)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    llhttp_init(&c->parser, HTTP_RESPONSE, &settings);
    c->parser.data = c;
    c->want_reconnect = 0;
    int rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
    if (rc < 0 && errno != EINPROGRESS) die("connect to %s:%d: %s", O.host, O.port, strerror(errno));
    c->state = S_CONNECTING;
    connecting++;
    struct epoll_event e = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) < 0) die("epoll_ctl: %s", strerror(errno));
}

static void conn_close(conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    if (c->state == S_CONNECTING) connecting--;
    c->fd = -1;
    c->state = S_CLOSED;
    c->out_len = c->out_off = 0;
    c->complete = 0;
}

/* ---- the modes' state --------------------------------------------------------------------------- */

static uint64_t t_start, win_start, win_end, t_stop;
static int      in_window, window_done, stopping;
static double   cpu0[MAX_PIDS], cpu1[MAX_PIDS], self0, self1;
static double   sys0[MAX_CPUS], sys1[MAX_CPUS];
static int      n_sys;
static long     win_calls, win_errors;
static long     sessions_wanted, sessions_started, sessions_done, sessions_err;
static long     streams_open, streams_failed, streams_notified;
static uint64_t t_trigger, t_first_notif, t_last_notif, t_trigger_answered;
static int      trigger_ok;
static long     ready_conns;
static char   **sids;            /* sse: the sessions' ids and versions */
static char   **sprotos;
static long     next_stream;
static int      phase;           /* sse: 0 sessions, 1 streams, 2 settle, 3 waiting for notifications */
static long     rss_before_kb, rss_after_kb, rss_base_kb;
/* open loop */
static uint64_t period_ns, next_due;
static uint64_t *backlog;
static size_t   bl_head, bl_tail, bl_cap;
static conn   **idle;
static int      n_idle;
static long     late_drops;

static void window_begin(uint64_t t)
{
    in_window = 1;
    win_start = t;
    for (int i = 0; i < O.n_cpu; i++) cpu0[i] = proc_cpu_s(O.cpu_pid[i]);
    self0 = self_cpu_s();
    n_sys = proc_cpus_busy(sys0);
    n_lat = 0;
    win_calls = 0;
    win_errors = errors;
}

static void window_finish(uint64_t t)
{
    if (!in_window || window_done) return;
    window_done = 1;
    in_window = 0;
    win_end = t;
    for (int i = 0; i < O.n_cpu; i++) cpu1[i] = proc_cpu_s(O.cpu_pid[i]);
    self1 = self_cpu_s();
    proc_cpus_busy(sys1);
    win_errors = errors - win_errors;
}

static void arm_timer(uint64_t abs_ns)
{
    struct itimerspec its = {0};
    its.it_value.tv_sec = (time_t)(abs_ns / 1000000000u);
    its.it_value.tv_nsec = (long)(abs_ns % 1000000000u);
    if (!its.it_value.tv_sec && !its.it_value.tv_nsec) its.it_value.tv_nsec = 1;
    timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void start_load(void);
static void next_session(conn *c);
static void open_next_streams(void);

/* A connection lost: its request (if any) is an error; reconnect keeping the session. */
static void conn_fail(conn *c, const char *what)
{
    int was = c->req;
    int had_stream = c->state == S_STREAM || (was == R_GET);
    if (was != R_NONE && !(was == R_GET && c->stream_open)) {
        err_conn++;
        note_error(c, what);
        if (was == R_GET) streams_failed++;
        if (was == R_INIT && (O.mode == M_SESSIONS || O.mode == M_SSE)) sessions_err++;
    }
    if (had_stream && c->stream_open) { streams_failed++; streams_open--; }
    conn_close(c);
    c->req = R_NONE;
    if (stopping || O.mode == M_SSE) { c->state = S_DEAD; return; }
    conn_open(c);
}

static int body_has(conn *c, const char *s)
{
    return c->body_len && memmem(c->body, c->body_len, s, strlen(s)) != NULL;
}

/* The answer carries "id":<id> (not followed by another digit). */
static int body_has_id(conn *c, long id)
{
    char pat[40];
    int n = snprintf(pat, sizeof pat, "\"id\":%ld", id);
    const char *p = c->body, *end = c->body + c->body_len;
    while (p < end) {
        const char *f = memmem(p, (size_t)(end - p), pat, (size_t)n);
        if (!f) return 0;
        const char *a = f + n;
        if (a >= end || *a < '0' || *a > '9') return 1;
        p = f + 1;
    }
    return 0;
}

static int answer_ok(conn *c)
{
    if (c->status != 200) { err_status++; note_error(c, "HTTP status"); return 0; }
    if (c->body_over || !body_has(c, "\"result\"") || body_has(c, "\"error\":{") || body_has(c, "\"isError\":true") ||
        !body_has_id(c, c->id)) {
        err_body++;
        note_error(c, "not a JSON-RPC result for the request");
        return 0;
    }
    return 1;
}

static void take_proto(conn *c)
{
    const char *k = "\"protocolVersion\":\"";
    const char *f = c->body_len ? memmem(c->body, c->body_len, k, strlen(k)) : NULL;
    if (!f) { snprintf(c->proto, sizeof c->proto, "%s", O.proto); return; }
    f += strlen(k);
    size_t i = 0;
    while (f + i < c->body + c->body_len && f[i] != '"' && i < sizeof c->proto - 1) { c->proto[i] = f[i]; i++; }
    c->proto[i] = '\0';
}

/* open loop: a request is due at time t */
static void issue(uint64_t t)
{
    while (n_idle > 0) {
        conn *c = idle[--n_idle];
        c->in_idle = 0;
        if (c->state != S_IDLE) continue;   /* reconnecting: comes back through conn_ready */
        send_req(c, R_CALL, t);
        return;
    }
    if ((bl_tail + 1) % bl_cap == bl_head) { late_drops++; return; }
    backlog[bl_tail] = t;
    bl_tail = (bl_tail + 1) % bl_cap;
}

static void conn_ready(conn *c)
{
    c->state = S_IDLE;
    c->req = R_NONE;
    if (O.mode == M_THROUGHPUT) {
        if (t_start && !stopping) send_req(c, R_CALL, now_ns());
    } else if (O.mode == M_RATE) {
        if (!t_start) return;   /* before the start (a reconnect while the others initialize) */
        if (bl_head != bl_tail && !stopping) {
            uint64_t t = backlog[bl_head];
            bl_head = (bl_head + 1) % bl_cap;
            send_req(c, R_CALL, t);
        } else if (!c->in_idle) {
            c->in_idle = 1;
            idle[n_idle++] = c;
        }
    }
}

static void handle_answer(conn *c)
{
    uint64_t t = now_ns();
    int kind = c->req;
    c->req = R_NONE;
    switch (kind) {
    case R_INIT:
        if (c->status != 200 || !c->sid[0] || !body_has(c, "\"result\"")) {
            note_error(c, "initialize failed");
            if (O.mode == M_SESSIONS || O.mode == M_SSE) { sessions_err++; next_session(c); return; }
            die("initialize failed: %s", first_error);
        }
        take_proto(c);
        c->has_session = 1;
        if (O.no_notif) goto initialized;
        send_req(c, R_NOTIF, t);
        return;
    case R_NOTIF:
        if (c->status < 200 || c->status > 299) {
            note_error(c, "notifications/initialized refused");
            if (O.mode == M_SESSIONS || O.mode == M_SSE) { sessions_err++; next_session(c); return; }
            die("notifications/initialized failed: %s", first_error);
        }
    initialized:
        if (O.mode == M_SESSIONS || O.mode == M_SSE) {
            if (O.mode == M_SSE) {
                sids[sessions_done] = strdup(c->sid);
                sprotos[sessions_done] = strdup(c->proto);
            }
            sessions_done++;
            next_session(c);
            return;
        }
        ready_conns++;
        c->state = S_IDLE;
        if (ready_conns == n_conns) start_load();
        else if (t_start) conn_ready(c);
        return;
    case R_CALL: {
        int ok = answer_ok(c);
        if (O.mode == M_THROUGHPUT) {
            /* closed loop: the answers completed inside the window */
            if (ok && in_window && t <= win_end) { win_calls++; lat_add(t - c->t_sent); }
        } else if (ok && c->t_intended >= win_start && c->t_intended < t_stop) {
            /* open loop: the requests scheduled inside the window, from their scheduled time */
            win_calls++;
            lat_add(t - c->t_intended);
        }
        if (ok) ok_calls++;
        conn_ready(c);
        return;
    }
    case R_TRIGGER:
        t_trigger_answered = t;
        trigger_ok = answer_ok(c);
        c->state = S_IDLE;
        return;
    }
}

static void stream_opened(conn *c)
{
    c->stream_open = 1;
    c->state = S_STREAM;
    streams_open++;
}

/* sessions and sse: the next initialize on this pool connection, or done */
static void next_session(conn *c)
{
    c->state = S_IDLE;
    if (sessions_started < sessions_wanted) {
        sessions_started++;
        send_req(c, R_INIT, now_ns());
    }
}

static void on_readable(conn *c)
{
    char b[65536];
    for (;;) {
        ssize_t r = read(c->fd, b, sizeof b);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN) return;
        if (r <= 0) {
            if (c->req != R_NONE && c->req != R_GET && !c->complete) llhttp_finish(&c->parser);
            if (c->complete && c->req != R_NONE && c->req != R_GET) {
                /* an answer delimited by the close: take it, then reconnect */
                conn_close(c);
                if (!stopping && O.mode != M_SSE) conn_open(c); else c->state = S_DEAD;
                handle_answer(c);
                return;
            }
            conn_fail(c, r == 0 ? "connection closed by the server" : "read error");
            return;
        }
        const char *p = b;
        size_t n = (size_t)r;
        while (n) {
            llhttp_errno_t e = llhttp_execute(&c->parser, p, n);
            if (e == HPE_OK) break;
            if (e == HPE_PAUSED) {
                size_t used = (size_t)(llhttp_get_error_pos(&c->parser) - p);
                llhttp_resume(&c->parser);
                p += used;
                n -= used;
                if (c->req != R_NONE && c->complete) {
                    c->complete = 0;
                    if (c->req == R_GET) {   /* the server ended a stream */
                        c->req = R_NONE;
                        if (c->stream_open) { streams_open--; streams_failed++; c->stream_open = 0; }
                        continue;
                    }
                    if (c->want_reconnect) {   /* Connection: close */
                        conn_close(c);
                        if (!stopping && O.mode != M_SSE) conn_open(c); else c->state = S_DEAD;
                        handle_answer(c);
                        return;
                    }
                    handle_answer(c);
                } else {
                    note_error(c, "unexpected bytes from the server");
                }
                continue;
            }
            note_error(c, llhttp_errno_name(e));
            conn_fail(c, "invalid HTTP from the server");
            return;
        }
        if ((size_t)r < sizeof b) return;
    }
}

static void on_connected(conn *c)
{
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    connecting--;
    if (err) {
        c->state = S_CONNECTING;   /* conn_close decrements again */
        connecting++;
        note_error(NULL, strerror(err));
        err_conn++;
        if (O.mode == M_SSE) { streams_failed++; conn_close(c); c->state = S_DEAD; open_next_streams(); return; }
        conn_close(c);
        usleep(1000);
        conn_open(c);
        return;
    }
    ep_mod(c, EPOLLIN);
    if (c->out_off < c->out_len) {   /* a request was made while connecting */
        c->state = S_BUSY;
        flush_out(c);
        return;
    }
    c->state = S_IDLE;
    if (O.mode == M_SSE && phase == 1) {
        send_req(c, R_GET, now_ns());
        return;
    }
    if (O.mode == M_SESSIONS || (O.mode == M_SSE && phase == 0)) {
        next_session(c);
        return;
    }
    if (!c->has_session) { send_req(c, R_INIT, now_ns()); return; }
    conn_ready(c);
}

/* ---- starting the load ---------------------------------------------------------------------- */

static void start_load(void)
{
    t_start = now_ns();
    uint64_t w = (uint64_t)(O.warmup * 1e9), d = (uint64_t)(O.duration * 1e9);
    win_start = t_start + w;
    win_end = win_start + d;
    t_stop = win_end;
    if (w == 0) window_begin(t_start);
    if (O.mode == M_THROUGHPUT) {
        arm_timer(w ? win_start : win_end);
        for (int i = 0; i < n_conns; i++)
            if (C[i].state == S_IDLE) send_req(&C[i], R_CALL, now_ns());
    } else {
        period_ns = (uint64_t)(1e9 / O.rate);
        next_due = t_start;
        bl_cap = (size_t)(O.rate * 2) + 1024;
        backlog = malloc(bl_cap * sizeof *backlog);
        idle = malloc((size_t)n_conns * sizeof *idle);
        n_idle = 0;
        for (int i = 0; i < n_conns; i++) { C[i].in_idle = 1; idle[n_idle++] = &C[i]; }
        arm_timer(next_due);
    }
}

static void on_timer(void)
{
    uint64_t x;
    if (read(tfd, &x, sizeof x) < 0) { /* nothing */ }
    uint64_t t = now_ns();
    if (O.mode == M_THROUGHPUT) {
        if (!in_window && !window_done && t >= win_start) { window_begin(win_start); arm_timer(win_end); return; }
        if (t >= win_end) { window_finish(t); stopping = 1; }
        return;
    }
    if (O.mode == M_RATE) {
        if (!in_window && !window_done && t >= win_start) window_begin(win_start);
        while (next_due <= t && next_due < t_stop) {
            issue(next_due);
            next_due += period_ns;
        }
        if (next_due >= t_stop) {
            if (t >= t_stop) { window_finish(t_stop); stopping = 1; return; }
            arm_timer(t_stop);
        } else {
            arm_timer(next_due);
        }
    }
}

static int busy_conns(void)
{
    int n = 0;
    for (int i = 0; i < n_conns; i++) n += C[i].state == S_BUSY || C[i].state == S_CONNECTING;
    return n;
}

static void event_loop(int (*done)(void), double limit_s)
{
    struct epoll_event evs[256];
    uint64_t deadline = now_ns() + (uint64_t)(limit_s * 1e9);
    while (!done()) {
        if (now_ns() > deadline) break;
        int n = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) { on_timer(); continue; }
            conn *c = evs[i].data.ptr;
            if (c->fd < 0) continue;
            if (c->state == S_CONNECTING) {
                if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_connected(c);
                continue;
            }
            if (evs[i].events & EPOLLOUT) {
                if (c->out_off < c->out_len) flush_out(c);
                if (c->fd >= 0 && c->out_off >= c->out_len) ep_mod(c, EPOLLIN);
            }
            if (c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) on_readable(c);
        }
    }
}

/* ---- mode: throughput / rate ------------------------------------------------------------------------ */

static int load_done(void)
{
    if (!stopping) return 0;
    return busy_conns() == 0;
}

static void print_cpu(double calls)
{
    printf(",\"cpu\":{");
    for (int i = 0; i < O.n_cpu; i++) {
        double s = cpu1[i] - cpu0[i];
        printf("%s\"%s\":{\"pid\":%d,\"cpu_s\":%.3f,\"us_per_call\":%.2f,\"rss_kb\":%ld,\"hwm_kb\":%ld}", i ? "," : "",
               O.cpu_name[i], (int)O.cpu_pid[i], s, calls > 0 ? s * 1e6 / calls : 0.0,
               proc_status_kb(O.cpu_pid[i], "VmRSS"), proc_status_kb(O.cpu_pid[i], "VmHWM"));
    }
    double ss = self1 - self0;
    printf("%s\"loadgen\":{\"cpu_s\":%.3f,\"us_per_call\":%.2f}}", O.n_cpu ? "," : "", ss, calls > 0 ? ss * 1e6 / calls : 0.0);
    /* how busy each CPU was over the window (everything on it, ours and others') */
    double secs = (double)(win_end - win_start) / 1e9;
    printf(",\"cpu_busy\":[");
    for (int i = 0; i < n_sys; i++) printf("%s%.3f", i ? "," : "", secs > 0 ? (sys1[i] - sys0[i]) / secs : 0.0);
    printf("]");
}

static void run_load(void)
{
    for (int i = 0; i < n_conns; i++) conn_open(&C[i]);
    double limit = O.warmup + O.duration + O.timeout;
    event_loop(load_done, limit);
    if (!window_done) window_finish(now_ns());
    /* stop: whatever is still in flight after the grace period is abandoned */
    qsort(lat, n_lat, sizeof *lat, cmp_u64);
    double sum = 0;
    for (size_t i = 0; i < n_lat; i++) sum += (double)lat[i];
    double mean = n_lat ? sum / (double)n_lat / 1000.0 : 0.0;
    double secs = (double)(win_end - win_start) / 1e9;
    printf("{\"mode\":\"%s\",\"label\":\"%s\",\"conns\":%d,\"seconds\":%.3f,\"calls\":%ld,\"errors\":%ld,"
           "\"err_status\":%ld,\"err_body\":%ld,\"err_conn\":%ld,\"rps\":%.1f",
           O.mode == M_THROUGHPUT ? "throughput" : "rate", O.label, n_conns, secs, win_calls, errors, err_status,
           err_body, err_conn, secs > 0 ? (double)win_calls / secs : 0.0);
    if (O.mode == M_RATE) printf(",\"target_rate\":%.1f,\"dropped\":%ld", O.rate, late_drops);
    printf(",\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,\"mean_us\":%.1f", pct(50),
           pct(90), pct(99), pct(99.9), n_lat ? (double)lat[n_lat - 1] / 1000.0 : 0.0, mean);
    print_cpu((double)win_calls);
    if (first_error[0]) printf(",\"first_error\":\"%s\"", first_error);
    printf("}\n");
}

/* ---- mode: sessions ------------------------------------------------------------------------------------ */

static int sessions_finished(void)
{
    return sessions_done + sessions_err >= sessions_wanted;
}

static void run_sessions(void)
{
    sessions_wanted = O.count;
    if (O.rss_pid) rss_before_kb = proc_status_kb(O.rss_pid, "VmRSS");
    double c0 = O.rss_pid ? proc_cpu_s(O.rss_pid) : 0;
    uint64_t t0 = now_ns();
    for (int i = 0; i < n_conns; i++) conn_open(&C[i]);
    event_loop(sessions_finished, O.timeout + (double)O.count / 500.0);
    uint64_t t1 = now_ns();
    double c1 = O.rss_pid ? proc_cpu_s(O.rss_pid) : 0;
    for (int i = 0; i < n_conns; i++) conn_close(&C[i]);
    usleep(300000);
    if (O.rss_pid) rss_after_kb = proc_status_kb(O.rss_pid, "VmRSS");
    double secs = (double)(t1 - t0) / 1e9;
    long delta = rss_after_kb - rss_before_kb;
    printf("{\"mode\":\"sessions\",\"label\":\"%s\",\"conns\":%d,\"wanted\":%ld,\"count\":%ld,\"errors\":%ld,\"seconds\":%.3f,"
           "\"per_s\":%.1f,\"rss_before_kb\":%ld,\"rss_after_kb\":%ld,\"rss_bytes_per_session\":%.1f,\"cpu_us_per_session\":%.2f",
           O.label, n_conns, sessions_wanted, sessions_done, sessions_err + (sessions_wanted - sessions_done - sessions_err),
           secs, secs > 0 ? (double)sessions_done / secs : 0.0, rss_before_kb, rss_after_kb,
           sessions_done ? (double)delta * 1024.0 / (double)sessions_done : 0.0,
           sessions_done ? (c1 - c0) * 1e6 / (double)sessions_done : 0.0);
    if (first_error[0]) printf(",\"first_error\":\"%s\"", first_error);
    printf("}\n");
}

/* ---- mode: sse -------------------------------------------------------------------------------------------- */

static conn *S;           /* stream connections */
static long  n_streams;

static void open_next_streams(void)
{
    while (next_stream < n_streams && connecting < MAX_CONNECTING) {
        conn *c = &S[next_stream];
        c->idx = (int)next_stream;
        snprintf(c->sid, sizeof c->sid, "%s", sids[next_stream]);
        snprintf(c->proto, sizeof c->proto, "%s", sprotos[next_stream]);
        c->has_session = 1;
        next_stream++;
        conn_open(c);
    }
}

static int streams_settled(void)
{
    open_next_streams();
    return next_stream >= n_streams && streams_open + streams_failed >= n_streams;
}

static int notifs_done(void)
{
    long got = 0;
    uint64_t t = now_ns();
    for (long i = 0; i < n_streams; i++)
        if (S[i].notified) {
            got++;
            if (!S[i].t_intended) {
                S[i].t_intended = t;   /* first seen (to the loop's resolution) */
                if (!t_first_notif) t_first_notif = t;
                t_last_notif = t;
            }
        }
    streams_notified = got;
    return t_trigger_answered && got >= streams_open;
}

static void run_sse(void)
{
    n_streams = O.streams;
    sessions_wanted = O.streams;
    sids = calloc((size_t)n_streams, sizeof *sids);
    sprotos = calloc((size_t)n_streams, sizeof *sprotos);
    S = calloc((size_t)n_streams, sizeof *S);
    if (!sids || !sprotos || !S) die("out of memory");
    for (long i = 0; i < n_streams; i++) { S[i].fd = -1; S[i].settings = &settings; }
    /* 1. sessions */
    phase = 0;
    uint64_t t0 = now_ns();
    for (int i = 0; i < n_conns; i++) conn_open(&C[i]);
    event_loop(sessions_finished, O.timeout + (double)O.streams / 500.0);
    if (sessions_done < n_streams) die("sse: only %ld of %ld sessions could be created: %s", sessions_done, n_streams, first_error);
    double sess_s = (double)(now_ns() - t0) / 1e9;
    usleep(200000);
    rss_base_kb = O.rss_pid ? proc_status_kb(O.rss_pid, "VmRSS") : 0;
    /* 2. streams */
    phase = 1;
    uint64_t t1 = now_ns();
    event_loop(streams_settled, O.timeout + (double)O.streams / 500.0);
    double open_s = (double)(now_ns() - t1) / 1e9;
    usleep(300000);
    rss_after_kb = O.rss_pid ? proc_status_kb(O.rss_pid, "VmRSS") : 0;
    /* 3. one notification for all */
    phase = 3;
    conn *tc = &C[0];
    if (tc->state != S_IDLE) die("sse: the trigger connection is not ready");
    for (long i = 0; i < n_streams; i++) S[i].t_intended = 0;
    t_trigger = now_ns();
    send_req(tc, R_TRIGGER, t_trigger);
    event_loop(notifs_done, O.timeout);
    notifs_done();
    long delta = rss_after_kb - rss_base_kb;
    printf("{\"mode\":\"sse\",\"label\":\"%s\",\"streams\":%ld,\"opened\":%ld,\"failed\":%ld,\"sessions_s\":%.3f,\"open_s\":%.3f,"
           "\"rss_base_kb\":%ld,\"rss_after_kb\":%ld,\"rss_bytes_per_stream\":%.1f,\"trigger_ok\":%d,\"trigger_ms\":%.3f,"
           "\"notified\":%ld,\"fanout_first_ms\":%.3f,\"fanout_last_ms\":%.3f",
           O.label, n_streams, streams_open, streams_failed, sess_s, open_s, rss_base_kb, rss_after_kb,
           streams_open ? (double)delta * 1024.0 / (double)streams_open : 0.0, trigger_ok,
           t_trigger_answered ? (double)(t_trigger_answered - t_trigger) / 1e6 : -1.0, streams_notified,
           t_first_notif ? (double)(t_first_notif - t_trigger) / 1e6 : -1.0,
           t_last_notif ? (double)(t_last_notif - t_trigger) / 1e6 : -1.0);
    if (first_error[0]) printf(",\"first_error\":\"%s\"", first_error);
    printf("}\n");
}

/* ---- blocking helpers (startup, init) --------------------------------------------------------------------- */


/* One request on a new connection; reads one answer into c. Returns 0 or -1. */
static int sync_request(conn *c, int kind, int timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) { close(fd); return -1; }
    llhttp_init(&c->parser, HTTP_RESPONSE, &settings);
    c->parser.data = c;
    c->fd = fd;
    c->complete = 0;
    if (kind == R_GET) {   /* GET /healthz */
        c->req = R_CALL;
        snprintf(c->out, sizeof c->out, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", host_hdr);
        c->out_len = strlen(c->out);
    } else {
        c->req = kind;
        char body[512];
        int bl;
        c->id = next_id++;
        if (kind == R_INIT) {
            bl = snprintf(body, sizeof body,
                          "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"%s\","
                          "\"capabilities\":{},\"clientInfo\":{\"name\":\"loadgen\",\"version\":\"1\"}}}", c->id, O.proto);
            c->sid[0] = '\0';
            build_post(c, body, (size_t)bl, 0);
        } else if (kind == R_NOTIF) {
            bl = snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
            build_post(c, body, (size_t)bl, 1);
        } else {
            bl = snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"tools/list\"}", c->id);
            build_post(c, body, (size_t)bl, 1);
        }
    }
    if (write(fd, c->out, c->out_len) != (ssize_t)c->out_len) { close(fd); return -1; }
    char b[65536];
    for (;;) {
        ssize_t r = read(fd, b, sizeof b);
        if (r <= 0) { close(fd); return -1; }
        llhttp_errno_t e = llhttp_execute(&c->parser, b, (size_t)r);
        if (e == HPE_PAUSED || c->complete) break;
        if (e != HPE_OK) { close(fd); return -1; }
    }
    close(fd);
    c->fd = -1;
    return 0;
}

static void run_init(void)
{
    static conn c;
    c.settings = &settings;
    if (sync_request(&c, R_INIT, 5000) || c.status != 200 || !c.sid[0]) die("initialize failed (status %d)", c.status);
    take_proto(&c);
    sync_request(&c, R_NOTIF, 5000);
    printf("%s %s\n", c.sid, c.proto);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    if (n <= 0) return -1;
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void run_startup(void)
{
    if (!O.cmd || !O.cmd[0]) die("startup: no command after --");
    int runs = O.runs;
    double *conn_ms = calloc((size_t)runs, sizeof(double)), *health_ms = calloc((size_t)runs, sizeof(double));
    char *exp_list[32];
    int n_exp = 0;
    char *expcopy = O.expect ? strdup(O.expect) : NULL;
    for (char *s = expcopy, *save = NULL, *t; s && n_exp < 32 && (t = strtok_r(n_exp ? NULL : s, ",", &save));) exp_list[n_exp++] = t;
    double *exp_ms = calloc((size_t)(runs * (n_exp ? n_exp : 1)), sizeof(double));
    double *all_ms = calloc((size_t)runs, sizeof(double));
    int good = 0;
    for (int r = 0; r < runs; r++) {
        uint64_t t0 = now_ns();
        pid_t pid = fork();
        if (pid < 0) die("fork: %s", strerror(errno));
        if (pid == 0) {
            if (O.cpu >= 0) {
                cpu_set_t set;
                CPU_ZERO(&set);
                CPU_SET(O.cpu, &set);
                sched_setaffinity(0, sizeof set, &set);
            }
            int lf = open(O.log ? O.log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (lf >= 0) { dup2(lf, 1); dup2(lf, 2); }
            execvp(O.cmd[0], O.cmd);
            _exit(127);
        }
        /* 1. first accepted connection */
        uint64_t t_conn = 0, deadline = t0 + 10000000000ull;
        while (!t_conn && now_ns() < deadline) {
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0) t_conn = now_ns();
            close(fd);
            if (!t_conn) {
                int st;
                if (waitpid(pid, &st, WNOHANG) == pid) die("startup: %s exited before listening", O.cmd[0]);
                struct timespec ts = {0, 50000};
                nanosleep(&ts, NULL);
            }
        }
        if (!t_conn) die("startup: no connection within 10 s");
        /* 2. first /healthz answer */
        static conn c;
        c.settings = &settings;
        uint64_t t_health = 0;
        while (!t_health && now_ns() < deadline) {
            if (sync_request(&c, R_GET, 2000) == 0 && c.status == 200) t_health = now_ns();
        }
        conn_ms[r] = (double)(t_conn - t0) / 1e6;
        health_ms[r] = t_health ? (double)(t_health - t0) / 1e6 : -1;
        /* 3. the tools/list answers that contain each expected string */
        if (n_exp) {
            uint64_t seen[32] = {0};
            int n_seen = 0;
            int have_session = 0;
            uint64_t dl = t0 + (uint64_t)(O.timeout * 1e9);
            while (n_seen < n_exp && now_ns() < dl) {
                if (!have_session) {
                    if (sync_request(&c, R_INIT, 2000) == 0 && c.status == 200 && c.sid[0]) {
                        take_proto(&c);
                        have_session = 1;
                    } else { usleep(500); continue; }
                }
                if (sync_request(&c, R_CALL, 2000) == 0 && c.status == 200) {
                    uint64_t t = now_ns();
                    for (int i = 0; i < n_exp; i++)
                        if (!seen[i] && memmem(c.body, c.body_len, exp_list[i], strlen(exp_list[i]))) { seen[i] = t; n_seen++; }
                }
                if (n_seen < n_exp) usleep(500);
            }
            uint64_t last = 0;
            for (int i = 0; i < n_exp; i++) {
                exp_ms[r * n_exp + i] = seen[i] ? (double)(seen[i] - t0) / 1e6 : -1;
                if (!seen[i]) last = UINT64_MAX; else if (last != UINT64_MAX && seen[i] > last) last = seen[i];
            }
            all_ms[r] = last == UINT64_MAX ? -1 : (double)(last - t0) / 1e6;
        }
        kill(pid, SIGTERM);
        int st;
        uint64_t kd = now_ns() + 3000000000ull;
        while (waitpid(pid, &st, WNOHANG) == 0) {
            if (now_ns() > kd) { kill(pid, SIGKILL); waitpid(pid, &st, 0); break; }
            usleep(1000);
        }
        good++;
        usleep(50000);
    }
    double hm[runs];
    memcpy(hm, health_ms, sizeof hm);
    printf("{\"mode\":\"startup\",\"label\":\"%s\",\"runs\":%d,\"connect_ms\":[", O.label, good);
    for (int r = 0; r < runs; r++) printf("%s%.3f", r ? "," : "", conn_ms[r]);
    printf("],\"healthz_ms\":[");
    for (int r = 0; r < runs; r++) printf("%s%.3f", r ? "," : "", health_ms[r]);
    printf("]");
    if (n_exp) {
        printf(",\"expect\":{");
        for (int i = 0; i < n_exp; i++) {
            double v[runs];
            for (int r = 0; r < runs; r++) v[r] = exp_ms[r * n_exp + i];
            printf("%s\"%s\":%.3f", i ? "," : "", exp_list[i], median(v, runs));
        }
        printf("},\"all_expected_ms\":%.3f", median(all_ms, runs));
    }
    printf(",\"connect_ms_median\":%.3f,\"healthz_ms_median\":%.3f}\n", median(conn_ms, runs), median(hm, runs));
    fflush(stdout);
    free(conn_ms);
    free(health_ms);
    free(exp_ms);
    free(all_ms);
    free(expcopy);
}

/* ---- main ----------------------------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
#define ARG() (i + 1 < argc ? argv[++i] : (usage(), (char *)NULL))
        if (!strcmp(a, "--")) { O.cmd = argv + i + 1; break; }
        else if (!strcmp(a, "--mode")) {
            const char *m = ARG();
            if (!strcmp(m, "throughput")) O.mode = M_THROUGHPUT;
            else if (!strcmp(m, "rate")) O.mode = M_RATE;
            else if (!strcmp(m, "sessions")) O.mode = M_SESSIONS;
            else if (!strcmp(m, "sse")) O.mode = M_SSE;
            else if (!strcmp(m, "startup")) O.mode = M_STARTUP;
            else if (!strcmp(m, "init")) O.mode = M_INIT;
            else usage();
        }
        else if (!strcmp(a, "--host")) O.host = ARG();
        else if (!strcmp(a, "--port")) O.port = atoi(ARG());
        else if (!strcmp(a, "--path")) O.path = ARG();
        else if (!strcmp(a, "--header")) { if (O.n_hdrs == MAX_HDRS) die("too many --header"); O.hdrs[O.n_hdrs++] = ARG(); }
        else if (!strcmp(a, "--method")) O.method = ARG();
        else if (!strcmp(a, "--tool")) O.tool = ARG();
        else if (!strcmp(a, "--args")) O.args = ARG();
        else if (!strcmp(a, "--proto")) O.proto = ARG();
        else if (!strcmp(a, "--conns")) O.conns = atoi(ARG());
        else if (!strcmp(a, "--duration")) O.duration = atof(ARG());
        else if (!strcmp(a, "--warmup")) O.warmup = atof(ARG());
        else if (!strcmp(a, "--rate")) O.rate = atof(ARG());
        else if (!strcmp(a, "--count")) O.count = atol(ARG());
        else if (!strcmp(a, "--streams")) O.streams = atol(ARG());
        else if (!strcmp(a, "--trigger")) O.trigger = ARG();
        else if (!strcmp(a, "--rss-pid")) O.rss_pid = (pid_t)atoi(ARG());
        else if (!strcmp(a, "--runs")) O.runs = atoi(ARG());
        else if (!strcmp(a, "--cpu")) O.cpu = atoi(ARG());
        else if (!strcmp(a, "--expect")) O.expect = ARG();
        else if (!strcmp(a, "--log")) O.log = ARG();
        else if (!strcmp(a, "--label")) O.label = ARG();
        else if (!strcmp(a, "--timeout")) O.timeout = atof(ARG());
        else if (!strcmp(a, "--no-notif")) O.no_notif = 1;
        else if (!strcmp(a, "--cpu-pid")) {
            char *v = ARG(), *eq = strchr(v, '=');
            if (!eq || O.n_cpu == MAX_PIDS) usage();
            *eq = '\0';
            O.cpu_name[O.n_cpu] = v;
            O.cpu_pid[O.n_cpu++] = (pid_t)atoi(eq + 1);
        }
        else usage();
    }
    if (!O.port) usage();
    if (O.mode == M_RATE && O.rate <= 0) die("--rate is required");
    if (O.mode == M_SSE && !O.trigger) die("--trigger is required");
    signal(SIGPIPE, SIG_IGN);
    snprintf(host_hdr, sizeof host_hdr, "%s:%d", O.host, O.port);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)O.port);
    if (inet_pton(AF_INET, O.host, &addr.sin_addr) != 1) die("--host must be an IPv4 address");

    llhttp_settings_init(&settings);
    settings.on_message_begin = on_begin;
    settings.on_header_field = on_hfield;
    settings.on_header_field_complete = on_hfield_done;
    settings.on_header_value = on_hvalue;
    settings.on_header_value_complete = on_hvalue_done;
    settings.on_headers_complete = on_headers_done;
    settings.on_body = on_body;
    settings.on_message_complete = on_complete;

    if (O.mode == M_STARTUP) { run_startup(); return 0; }
    if (O.mode == M_INIT) { run_init(); return 0; }

    ep = epoll_create1(EPOLL_CLOEXEC);
    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct epoll_event te = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &te);
    n_conns = O.conns;
    C = calloc((size_t)n_conns, sizeof *C);
    for (int i = 0; i < n_conns; i++) { C[i].fd = -1; C[i].idx = i; C[i].settings = &settings; }

    switch (O.mode) {
    case M_THROUGHPUT:
    case M_RATE: run_load(); break;
    case M_SESSIONS: run_sessions(); break;
    case M_SSE: run_sse(); break;
    }
    fflush(stdout);
    return 0;
}
