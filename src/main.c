/* mcp-gateway — wires the modules: configuration, keys, sessions, listeners and worker loops,
 * the upstream manager on the control loop, signals. */
#include "auth.h"
#include "bridge.h"
#include "catalog.h"
#include "metrics.h"
#include "prm.h"
#include "redis.h"
#include "reload.h"
#include "config.h"
#include "gateway.h"
#include "log.h"
#include "server.h"
#include "trace.h"
#include "upmgr.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static gateway gw;
static uv_signal_t sig_int, sig_term;
static bridge *bridges;   /* stdio and legacy SSE upstreams (bridge.h); NULL when none */

static void add_origin(const char *o)
{
    gw.origins = realloc(gw.origins, (gw.n_origins + 1) * sizeof *gw.origins);
    gw.origins[gw.n_origins++] = strdup(o);
}

static void setup_origins(const gw_config *cfg)
{
    if (cfg->allowed_origins && *cfg->allowed_origins) {
        char *list = strdup(cfg->allowed_origins), *save = NULL;
        for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            while (*t == ' ') t++;
            size_t l = strlen(t);
            while (l && t[l - 1] == ' ') t[--l] = '\0';
            if (l) add_origin(t);
        }
        free(list);
        return;
    }
    static const char *defaults[] = {"http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*",
                                     "https://localhost:*", "https://127.0.0.1:*", "https://[::1]:*"};
    for (size_t i = 0; i < sizeof defaults / sizeof *defaults; i++) add_origin(defaults[i]);
    if (cfg->public_host && *cfg->public_host) {
        char o[512];
        snprintf(o, sizeof o, "http://%s", cfg->public_host);
        add_origin(o);
        snprintf(o, sizeof o, "https://%s", cfg->public_host);
        add_origin(o);
    }
}

static void on_signal(uv_signal_t *s, int signum)
{
    log_info(NULL, "signal %d: draining (no new connections; calls in flight finish)", signum);
    __atomic_store_n(&gw.draining, 1, __ATOMIC_RELAXED);
    reload_stop();
    redis_stop();
    upmgr_stop(gw.mgr);
    gw.mgr = NULL;
    bridge_stop(bridges);   /* stops the stdio children */
    bridges = NULL;
    auth_stop();
    metrics_stop();
    for (int i = 0; i < gw.n_workers; i++) server_stop_worker(&gw.workers[i]);
    uv_signal_stop(&sig_int);
    uv_signal_stop(&sig_term);
    uv_close((uv_handle_t *)&sig_int, NULL);
    uv_close((uv_handle_t *)&sig_term, NULL);
}

static void print_check(const gw_config *cfg)
{
    printf("configuration OK: %zu server(s), %zu virtual server(s)\n", cfg->n_servers, cfg->n_vservers);
    for (size_t i = 0; i < cfg->n_servers; i++) {
        const gw_server_cfg *s = &cfg->servers[i];
        if (s->transport == GW_TRANSPORT_STDIO) {
            printf("  %s stdio: %s", s->name, s->command);
            for (size_t a = 0; a < s->args.n; a++) printf(" %s", s->args.v[a]);
        } else {
            printf("  %s %s%s", s->name, s->url, s->transport == GW_TRANSPORT_SSE ? " (legacy SSE)" : "");
        }
        printf(" prefix=\"%s\"%s\n", s->prefix, s->enabled ? "" : " (disabled)");
    }
}

int main(int argc, char **argv)
{
    char err[1024];
    gw_config *cfg = NULL;
    int rc = config_load(argc, argv, &cfg, err, sizeof err);
    if (rc == 1) return 0;
    if (rc != 0) {
        fprintf(stderr, "mcp-gateway: %s\n", err);
        return 1;
    }
    log_setup(cfg->log_level, cfg->log_format && !strcmp(cfg->log_format, "json"));
    gw.cfg = cfg;
    gw.started = (uint64_t)time(NULL);
    struct sockaddr_storage ss;
    if (server_parse_addr(cfg->listen_addr, &ss, err, sizeof err)) goto fail;
    char kerr[512];
    gw.keys = session_keyring_new(cfg->signing_key, getenv("GATEWAY_SIGNING_KEY_PREVIOUS"), kerr, sizeof kerr);
    if (!gw.keys) {
        snprintf(err, sizeof err, "GATEWAY_SIGNING_KEY: %s", kerr);
        goto fail;
    }
    if (redis_init(&gw, err, sizeof err)) goto fail;   /* CACHE_CONNECTION_STRING well-formed (not reached yet) */
    if (cfg->check_config) {
        print_check(cfg);
        return 0;
    }
    if (reload_init(&gw, argc, argv, err, sizeof err)) goto fail;   /* first: the servers become slots */
    if (session_keyring_is_random(gw.keys))
        log_warn(NULL, "GATEWAY_SIGNING_KEY is not set: using a random key; sessions will not survive a restart "
                       "nor work on another replica");
    gw.loopback = server_is_loopback(&ss);
    prm_init(cfg);
    auth_init(&gw);
    if (!gw.loopback && !auth_enabled() && !cfg->allow_anonymous) {
        snprintf(err, sizeof err,
                 "refusing to listen on non-loopback %s without authentication (set OAUTH_AUTHORIZATION_SERVERS "
                 "or auth.issuers); pass --allow-anonymous to do it anyway",
                 cfg->listen_addr);
        goto fail;
    }
    setup_origins(cfg);
    gw.jlim.max_depth = (size_t)cfg->max_json_depth;
    gw.jlim.max_id_len = (size_t)cfg->max_id_len;
    gw.jlim.max_method_len = (size_t)cfg->max_method_len;
    gw.sessions = session_table_new((size_t)cfg->max_sessions, cfg->servers_cap, (uint64_t)cfg->session_idle_s);
    if (!gw.sessions) { snprintf(err, sizeof err, "out of memory"); goto fail; }
    session_table_set_subject_cap(gw.sessions, (size_t)cfg->max_sessions_per_subject);
    session_table_set_event_caps(gw.sessions, (size_t)cfg->max_session_events, (size_t)cfg->max_session_event_bytes);
    if (redis_enabled()) session_table_set_shared(gw.sessions, 1);   /* idle here is not idle everywhere */
    signal(SIGPIPE, SIG_IGN);

    http_limits lim = {
        .max_header_size = (size_t)cfg->max_header_size,
        .max_headers = (size_t)cfg->max_headers,
        .max_url = (size_t)cfg->max_url_length,
        .max_body = (size_t)cfg->max_request_body,
        .max_write_queue = (size_t)cfg->max_client_queue,
        .header_timeout_ms = (uint64_t)cfg->header_timeout_ms,
        .body_timeout_ms = (uint64_t)cfg->body_timeout_ms,
        .idle_timeout_ms = (uint64_t)cfg->idle_timeout_ms,
    };
    if (server_check_free(&ss, err, sizeof err)) goto fail;   /* not silently shared with another process */
    /* before the workers and upmgr: it gives stdio and legacy SSE servers their url */
    if (bridge_start(&gw, uv_default_loop(), &bridges, err, sizeof err) != 0) goto fail;
    gw.n_workers = cfg->workers > 0 ? cfg->workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (gw.n_workers < 1) gw.n_workers = 1;
    gw.workers = calloc((size_t)gw.n_workers, sizeof *gw.workers);
    for (int i = 0; i < gw.n_workers; i++) {
        worker *w = &gw.workers[i];
        w->gw = &gw;
        w->idx = i;
        w->listen_fd = server_listen(&ss, err, sizeof err);
        if (w->listen_fd < 0) goto fail;
    }
    /* per-worker counters and the span exporter (its handles on the control loop): before the workers */
    if (trace_init(&gw, uv_default_loop())) { snprintf(err, sizeof err, "out of memory"); goto fail; }
    for (int i = 0; i < gw.n_workers; i++)
        if (server_start_worker(&gw.workers[i], &lim)) {
            snprintf(err, sizeof err, "cannot start worker %d", i);
            goto fail;
        }
    uv_loop_t *loop = uv_default_loop();
    gw.ctl_loop = loop;
    gw.mgr = upmgr_start(&gw, loop);
    auth_start(&gw, loop);
    metrics_start(&gw, loop);
    redis_start(&gw, loop);   /* the subscriber; the workers' connections are already trying */
    if (auth_enabled())
        log_info(NULL, "authentication on: %zu issuer(s), resource %s, metadata at %s", cfg->auth.n_issuers,
                 cfg->auth.resource, prm_url());
    uv_signal_init(loop, &sig_int);
    uv_signal_init(loop, &sig_term);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    reload_start(&gw, loop, &bridges);
    log_info(NULL, "mcp-gateway %s listening on http://%s/mcp with %d worker(s), %zu upstream server(s)", GW_VERSION,
             cfg->listen_addr, gw.n_workers, cfg->n_servers);
    uv_run(loop, UV_RUN_DEFAULT);
    for (int i = 0; i < gw.n_workers; i++) server_join_worker(&gw.workers[i]);
    for (int i = 0; i < gw.n_workers; i++) free(gw.workers[i].calls);
    trace_shutdown();   /* the spans of the drain go out in this last run of the loop */
    uv_run(loop, UV_RUN_DEFAULT);
    trace_free();
    uv_loop_close(loop);
    catalog_publish(NULL);
    auth_free();
    prm_free();
    session_table_free(gw.sessions);
    session_keyring_free(gw.keys);
    for (size_t i = 0; i < gw.n_origins; i++) free(gw.origins[i]);
    free(gw.origins);
    free(gw.workers);
    reload_free(&gw);   /* every config, the boot one (cfg) included */
    log_info(NULL, "stopped");
    return 0;
fail:
    fprintf(stderr, "mcp-gateway: %s\n", err);
    config_free(cfg);
    return 1;
}
