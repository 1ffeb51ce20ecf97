/* server — the listeners and the worker loops: N threads, each with its own libuv loop, its
 * own SO_REUSEPORT listening socket (the kernel spreads connections), HTTP connections and
 * upstream client; plus the router from path to module: /mcp and the virtual servers' own
 * endpoints /v/<name>/mcp to mcp.c (an unknown name is 404, like any unknown path). */
#include "server.h"
#include "auth.h"
#include "authz.h"
#include "health.h"
#include "prm.h"
#include "log.h"
#include "mcp.h"
#include "redis.h"
#include "streams.h"
#include <arpa/inet.h>
#include <llhttp.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define KEEPALIVE_MS 15000

/* "host:port", "[v6]:port" or ":port" → sockaddr. */
int server_parse_addr(const char *addr, struct sockaddr_storage *ss, char *err, size_t errlen)
{
    char host[256];
    const char *port;
    if (addr[0] == '[') {
        const char *e = strchr(addr, ']');
        if (!e || e[1] != ':') goto bad;
        snprintf(host, sizeof host, "%.*s", (int)(e - addr - 1), addr + 1);
        port = e + 2;
    } else {
        const char *c = strrchr(addr, ':');
        if (!c) goto bad;
        snprintf(host, sizeof host, "%.*s", (int)(c - addr), addr);
        port = c + 1;
    }
    char *end;
    long p = strtol(port, &end, 10);
    if (!*port || *end || p < 0 || p > 65535) goto bad;
    memset(ss, 0, sizeof *ss);
    if (!host[0]) strcpy(host, "0.0.0.0");
    if (!strcmp(host, "localhost")) strcpy(host, "127.0.0.1");
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)p);
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)p);
    } else {
        goto bad;
    }
    return 0;
bad:
    snprintf(err, errlen, "--mcp-broker-public-address: '%s' is not host:port (IPv4, [IPv6] or localhost)", addr);
    return -1;
}

int server_is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

int server_check_free(const struct sockaddr_storage *ss, char *err, size_t errlen)
{
    /* without SO_REUSEPORT, a bind fails when anything (another gateway too) has the port */
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) { snprintf(err, errlen, "cannot listen: %s", strerror(errno)); return -1; }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    socklen_t len = ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    int rc = bind(fd, (const struct sockaddr *)ss, len);
    if (rc < 0) snprintf(err, errlen, "cannot listen: %s", strerror(errno));
    close(fd);
    return rc < 0 ? -1 : 0;
}

int server_listen(const struct sockaddr_storage *ss, char *err, size_t errlen)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) goto fail;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    socklen_t len = ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    if (bind(fd, (const struct sockaddr *)ss, len) < 0) goto fail;
    if (listen(fd, 4096) < 0) goto fail;
    return fd;
fail:
    snprintf(err, errlen, "cannot listen: %s", strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
}

/* ---- routing ------------------------------------------------------------------------------ */

static void route(http_req *req, void *ctx)
{
    worker *w = ctx;
    const char *p = req->path;
    /* /mcp, or a virtual server's own endpoint /v/<name>/mcp (the name taken literally, slashes and all) */
    int vs = authz_vs_path(w->cfg, p);   /* -2: not that form; -1: no such virtual server */
    int is_mcp = !strcmp(p, "/mcp") || vs >= 0;
    log_req prev = trace_req_begin(w, req, is_mcp);   /* request id and trace context: in every log line */
    const auth_identity *id = NULL;
    if (!strncmp(p, "/.well-known/oauth-protected-resource", 37) && (p[37] == '\0' || p[37] == '/'))
        prm_handle(w, req);   /* never behind auth */
    else if (auth_enabled() && !auth_exempt(w->gw, p) && !(req->method == HTTP_OPTIONS && is_mcp) &&
             !(id = auth_check(w, req, vs >= 0 ? vs : -1)))
        ;   /* answered 401/403 */
    else if (is_mcp) mcp_handle(w, req, id, vs >= 0 ? vs : -1);
    else if (!strcmp(p, "/healthz") || !strcmp(p, "/readyz") || !strcmp(p, "/status") || !strncmp(p, "/status/", 8)) {
        if (req->method != HTTP_GET && req->method != HTTP_HEAD)
            http_respond(req, 405, "Allow: GET\r\n", "application/json", "{\"error\":\"Method Not Allowed\"}", 30);
        else health_handle(w, req);
    } else {
        http_respond(req, 404, NULL, "application/json", "{\"error\":\"Not Found\"}", 21);
    }
    log_request(prev.id, prev.trace_id);
}

/* A request that waited (redis.c: its session's shared state) is routed again from the start. */
void server_redispatch(worker *w, http_req *req) { route(req, w); }

/* ---- workers --------------------------------------------------------------------------------- */

static void on_closed_handle(uv_handle_t *h) { (void)h; }

static void on_http_closed(http_server *s, void *arg)
{
    worker *w = arg;
    http_server_free(s);
    w->http = NULL;
    upclient_free(w->up);
    w->up = NULL;
    auth_cache_free(w->auth);
    w->auth = NULL;
    redis_worker_close(w);
    uv_close((uv_handle_t *)&w->wake, on_closed_handle);
    uv_close((uv_handle_t *)&w->keepalive, on_closed_handle);
}

static void on_drain_timeout(uv_timer_t *t)
{
    worker *w = t->data;
    log_warn(NULL, "drain timeout: closing %zu connection(s) still open", http_server_connections(w->http));
    http_server_close_all(w->http);
}

static void on_wake(uv_async_t *a)
{
    worker *w = a->data;
    if (__atomic_load_n(&w->stopping, __ATOMIC_ACQUIRE) == 1) {   /* set by the control loop */
        /* drain: no new connections, GET streams told to reconnect elsewhere, calls in flight
         * finish — for at most their upstream timeout, then whatever is left is closed */
        __atomic_store_n(&w->stopping, 2, __ATOMIC_RELAXED);
        streams_close_all(w);
        uv_timer_stop(&w->keepalive);
        uv_timer_start(&w->keepalive, on_drain_timeout, (uint64_t)w->gw->cfg->upstream_timeout_ms + 2000, 0);
        http_server_close(w->http, on_http_closed, w);
        return;
    }
    const gw_config *cfg = w->gw->cfg;
    if (cfg != w->cfg) {   /* a reload: this loop takes the new config now, between callbacks */
        w->cfg = cfg;
        streams_reload(w);
        __atomic_store_n(&w->cfg_gen, cfg->generation, __ATOMIC_RELEASE);
    }
    streams_on_wake(w);
    for (int k = 0; k < 4; k++) {
        uint64_t v = __atomic_load_n(&w->gw->list_version[k], __ATOMIC_ACQUIRE);
        if (v != w->seen_lists[k]) {
            w->seen_lists[k] = v;
            mcp_broadcast_list_changed(w, k);
        }
    }
}

static void on_keepalive(uv_timer_t *t) { streams_keepalive(t->data); }

static void *worker_main(void *arg)
{
    worker *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    return NULL;
}

int server_start_worker(worker *w, const http_limits *lim)
{
    if (uv_loop_init(&w->loop)) return -1;
    streams_init(w);
    w->http = http_server_new(&w->loop, lim, route, w);
    w->up = upclient_new(&w->loop);
    w->auth = auth_cache_new(16384);
    w->cfg = w->gw->cfg;
    w->cfg_gen = w->cfg->generation;
    size_t slots = w->cfg->servers_cap > w->cfg->n_servers ? w->cfg->servers_cap : w->cfg->n_servers;
    w->calls = calloc(slots ? slots : 1, sizeof *w->calls);   /* every slot a reload may add */
    if (!w->http || !w->up || !w->auth) return -1;
    redis_worker_open(w);
    uv_async_init(&w->loop, &w->wake, on_wake);
    w->wake.data = w;
    uv_timer_init(&w->loop, &w->keepalive);
    w->keepalive.data = w;
    uv_timer_start(&w->keepalive, on_keepalive, KEEPALIVE_MS, KEEPALIVE_MS);
    for (int k = 0; k < 4; k++) w->seen_lists[k] = __atomic_load_n(&w->gw->list_version[k], __ATOMIC_ACQUIRE);
    if (http_server_listen_fd(w->http, w->listen_fd)) return -1;
    return pthread_create(&w->thread, NULL, worker_main, w) ? -1 : 0;
}

void server_stop_worker(worker *w)
{
    __atomic_store_n(&w->stopping, 1, __ATOMIC_RELEASE);
    uv_async_send(&w->wake);
}

void server_join_worker(worker *w)
{
    pthread_join(w->thread, NULL);
    uv_loop_close(&w->loop);
    streams_free(w);
}

void gateway_list_changed(gateway *gw, int kind)
{
    __atomic_add_fetch(&gw->list_version[kind], 1, __ATOMIC_RELEASE);
    for (int i = 0; i < gw->n_workers; i++)
        if (gw->workers[i].http) uv_async_send(&gw->workers[i].wake);
}
