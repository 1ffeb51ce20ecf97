#include "metrics.h"
#include "auth.h"
#include "catalog.h"
#include "log.h"
#include "reload.h"
#include "reqstats.h"
#include "server.h"
#include <llhttp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static http_server *srv;

/* A label value: backslash, quote and newline escaped. */
void metrics_label(buf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"') buf_printf(b, "\\%c", *v);
        else if (*v == '\n') buf_appends(b, "\\n");
        else buf_append(b, v, 1);
    }
}

void metrics_head(buf *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

char *metrics_render(gateway *gw, size_t *len)
{
    buf b;
    buf_init(&b, (size_t)64 << 20);
    metrics_head(&b, "mcp_gateway_info", "gauge", "Version of the gateway.");
    buf_printf(&b, "mcp_gateway_info{version=\"%s\"} 1\n", GW_VERSION);
    metrics_head(&b, "mcp_gateway_start_time_seconds", "gauge", "Start time of the process (unix seconds).");
    buf_printf(&b, "mcp_gateway_start_time_seconds %llu\n", (unsigned long long)gw->started);

    static const char *const cls[] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
    metrics_head(&b, "mcp_gateway_http_responses_total", "counter", "HTTP responses sent, by status class.");
    for (int c = 1; c <= 5; c++) {
        uint64_t n = 0;
        for (int i = 0; i < gw->n_workers; i++)
            if (gw->workers[i].http) n += http_server_responses(gw->workers[i].http, c);
        buf_printf(&b, "mcp_gateway_http_responses_total{code=\"%s\"} %llu\n", cls[c], (unsigned long long)n);
    }
    uint64_t conns = 0;
    for (int i = 0; i < gw->n_workers; i++)
        if (gw->workers[i].http) conns += http_server_connections(gw->workers[i].http);
    metrics_head(&b, "mcp_gateway_connections", "gauge", "Open client connections.");
    buf_printf(&b, "mcp_gateway_connections %llu\n", (unsigned long long)conns);
    metrics_head(&b, "mcp_gateway_sessions", "gauge", "Sessions this process holds state for (tombstones included).");
    buf_printf(&b, "mcp_gateway_sessions %zu\n", session_count(gw->sessions));
    metrics_head(&b, "mcp_gateway_sse_streams", "gauge", "Open GET (SSE) streams.");
    buf_printf(&b, "mcp_gateway_sse_streams %zu\n", __atomic_load_n(&gw->n_sse, __ATOMIC_RELAXED));

    catalog *c = catalog_acquire();
    metrics_head(&b, "mcp_gateway_upstream_up", "gauge", "1 when the upstream server is ready and its tools are published.");
    for (size_t s = 0; c && s < c->n_servers; s++) {
        buf_appends(&b, "mcp_gateway_upstream_up{server=\"");
        metrics_label(&b, c->servers[s].name);
        buf_printf(&b, "\"} %d\n", c->servers[s].ready);
    }
    metrics_head(&b, "mcp_gateway_upstream_tools", "gauge", "Tools the upstream server offers.");
    for (size_t s = 0; c && s < c->n_servers; s++) {
        buf_appends(&b, "mcp_gateway_upstream_tools{server=\"");
        metrics_label(&b, c->servers[s].name);
        buf_printf(&b, "\"} %zu\n", c->servers[s].n_tools);
    }
    /* per server of the config, in file order; a server a reload replaced has had other slots:
     * they count under its name too (a counter never goes back) */
    const gw_config *cfg = gw->cfg;
    size_t n_live = gw_config_n_live(cfg);
    metrics_head(&b, "mcp_gateway_tool_calls_total", "counter", "tools/call requests routed to the upstream server.");
    for (size_t l = 0; l < n_live; l++) {
        const char *name = cfg->servers[gw_config_live(cfg, l)].name;
        uint64_t n = 0;
        for (size_t s = 0; s < cfg->n_servers; s++) {
            if (strcmp(cfg->servers[s].name, name)) continue;
            for (int i = 0; i < gw->n_workers; i++)
                if (gw->workers[i].calls) n += __atomic_load_n(&gw->workers[i].calls[s], __ATOMIC_RELAXED);
        }
        buf_appends(&b, "mcp_gateway_tool_calls_total{server=\"");
        metrics_label(&b, name);
        buf_printf(&b, "\"} %llu\n", (unsigned long long)n);
    }
    metrics_head(&b, "mcp_gateway_upstream_inflight", "gauge", "Client calls in flight to the upstream server (capped by maxConcurrency).");
    for (size_t l = 0; l < n_live; l++) {
        const char *name = cfg->servers[gw_config_live(cfg, l)].name;
        size_t n = 0;
        for (size_t s = 0; s < cfg->n_servers; s++)
            if (!strcmp(cfg->servers[s].name, name)) n += __atomic_load_n(&cfg->servers[s].inflight, __ATOMIC_RELAXED);
        buf_appends(&b, "mcp_gateway_upstream_inflight{server=\"");
        metrics_label(&b, name);
        buf_printf(&b, "\"} %zu\n", n);
    }
    metrics_head(&b, "mcp_gateway_tool_conflicts", "gauge", "Federated names dropped because an earlier server has them.");
    buf_printf(&b, "mcp_gateway_tool_conflicts %zu\n", c ? c->n_conflicts : 0);
    catalog_unref(c);

    reload_stats rs;
    reload_get_stats(&rs);
    metrics_head(&b, "mcp_gateway_config_reloads_total", "counter", "Configuration reloads (SIGHUP, file change), by result.");
    buf_printf(&b, "mcp_gateway_config_reloads_total{result=\"applied\"} %llu\n", (unsigned long long)rs.applied);
    buf_printf(&b, "mcp_gateway_config_reloads_total{result=\"failed\"} %llu\n", (unsigned long long)rs.failed);
    metrics_head(&b, "mcp_gateway_config_last_reload_successful", "gauge", "0 when the last reload failed (the running config was kept).");
    buf_printf(&b, "mcp_gateway_config_last_reload_successful %d\n", rs.last_ok);
    metrics_head(&b, "mcp_gateway_config_last_reload_success_timestamp_seconds", "gauge",
         "When the running config was loaded (unix seconds).");
    buf_printf(&b, "mcp_gateway_config_last_reload_success_timestamp_seconds %llu\n", (unsigned long long)rs.loaded_at);
    metrics_head(&b, "mcp_gateway_config_generation", "gauge", "The running config: 1 at start, +1 per applied reload.");
    buf_printf(&b, "mcp_gateway_config_generation %llu\n", (unsigned long long)cfg->generation);
    metrics_head(&b, "mcp_gateway_server_slots", "gauge",
         "Upstream server slots: used (each added or changed server takes one for the process's life) and capacity.");
    buf_printf(&b, "mcp_gateway_server_slots{state=\"used\"} %zu\n", cfg->n_servers);
    buf_printf(&b, "mcp_gateway_server_slots{state=\"capacity\"} %zu\n", cfg->servers_cap);

    static const char *const results[] = {"verified", "cached", "unauthorized", "forbidden"};
    metrics_head(&b, "mcp_gateway_auth_total", "counter", "Authentication outcomes (verified: a token checked in full).");
    for (int i = AUTH_STAT_VERIFIED; i <= AUTH_STAT_FORBIDDEN; i++)
        buf_printf(&b, "mcp_gateway_auth_total{result=\"%s\"} %llu\n", results[i], (unsigned long long)auth_stat(i));
    metrics_head(&b, "mcp_gateway_jwks_fetches_total", "counter", "Key set fetches from the issuers.");
    buf_printf(&b, "mcp_gateway_jwks_fetches_total{result=\"loaded\"} %llu\n",
               (unsigned long long)auth_stat(AUTH_STAT_KEYS_LOADED));
    buf_printf(&b, "mcp_gateway_jwks_fetches_total{result=\"failed\"} %llu\n",
               (unsigned long long)auth_stat(AUTH_STAT_KEYS_FAILED));
    reqstats_render(gw, &b);   /* requests by method and status, tool calls, spans (src/reqstats.c) */
    return buf_take(&b, len);
}

static void handle(http_req *req, void *ctx)
{
    if (strcmp(req->path, "/metrics") != 0) {
        http_respond(req, 404, NULL, "text/plain", "not found\n", 10);
        return;
    }
    if (req->method != HTTP_GET && req->method != HTTP_HEAD) {
        http_respond(req, 405, "Allow: GET\r\n", "text/plain", "method not allowed\n", 19);
        return;
    }
    size_t len;
    char *text = metrics_render(ctx, &len);
    http_respond_take(req, 200, NULL, "text/plain; version=0.0.4; charset=utf-8", text, len);
}

void metrics_start(gateway *gw, uv_loop_t *loop)
{
    const char *addr = gw->cfg->metrics_addr;
    if (!addr || !*addr) return;
    struct sockaddr_storage ss;
    char err[256];
    int fd = -1;
    if (server_parse_addr(addr, &ss, err, sizeof err) == 0) fd = server_listen(&ss, err, sizeof err);
    if (fd < 0) {
        log_warn("metrics", "--metrics-addr %s: %s; /metrics is off", addr, err);
        return;
    }
    http_limits lim = {.max_header_size = 8192, .max_headers = 50, .max_url = 1024, .max_body = 1024,
                       .max_write_queue = 64 << 20, .header_timeout_ms = 10000, .body_timeout_ms = 10000,
                       .idle_timeout_ms = 30000};
    srv = http_server_new(loop, &lim, handle, gw);
    if (!srv || http_server_listen_fd(srv, fd)) {
        log_warn("metrics", "--metrics-addr %s: cannot listen; /metrics is off", addr);
        return;
    }
    log_info("metrics", "Prometheus metrics on http://%s/metrics", addr);
}

static void on_closed(http_server *s, void *arg) { http_server_free(s); }

void metrics_stop(void)
{
    if (srv) http_server_close(srv, on_closed, NULL);
    srv = NULL;
}
