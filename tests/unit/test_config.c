/* test_config — the option table (defaults, flags, env, bounds, --help) and the YAML loader
 * (Kuadrant's shape, errors with file:line, unknown keys as warnings). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "config.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

/* ---- helpers ---- */

typedef struct capture { int fd, saved; FILE *tmp; } capture;

static void cap_start(capture *c, int fd)
{
    fflush(NULL);
    c->fd = fd;
    c->tmp = tmpfile();
    assert_non_null(c->tmp);
    c->saved = dup(fd);
    dup2(fileno(c->tmp), fd);
}

static const char *cap_end(capture *c, char *out, size_t n)
{
    fflush(NULL);
    dup2(c->saved, c->fd);
    close(c->saved);
    rewind(c->tmp);
    size_t l = fread(out, 1, n - 1, c->tmp);
    out[l] = '\0';
    fclose(c->tmp);
    return out;
}

static gw_config *fresh(void)
{
    gw_config *cfg = calloc(1, sizeof *cfg);
    assert_non_null(cfg);
    config_defaults(cfg);
    return cfg;
}

/* Runs config_load on a NULL-terminated argument list. */
static int load(gw_config **cfg, char *err, size_t errlen, ...)
{
    char *argv[32] = {"mcp-gateway"};
    int argc = 1;
    va_list ap;
    va_start(ap, errlen);
    for (char *a; (a = va_arg(ap, char *)) && argc < 31;) argv[argc++] = a;
    va_end(ap);
    err[0] = '\0';
    return config_load(argc, argv, cfg, err, errlen);
}

/* Loads yaml as "t.yaml" into a fresh config; returns the rc and leaves the config in *out. */
static int yload(const char *yaml, gw_config **out, char *err, size_t errlen)
{
    *out = fresh();
    err[0] = '\0';
    return config_load_yaml(*out, "t.yaml", yaml, strlen(yaml), err, errlen);
}

static void expect_yaml_error(const char *yaml, const char *want)
{
    gw_config *cfg;
    char err[512];
    assert_int_equal(yload(yaml, &cfg, err, sizeof err), -1);
    assert_string_equal(err, want);
    assert_int_equal(cfg->n_servers, 0);
    config_free(cfg);
}

/* ---- options ---- */

static void test_defaults(void **state)
{
    (void)state;
    gw_config *c = fresh();
    assert_null(c->config_file);
    assert_string_equal(c->listen_addr, "127.0.0.1:8080");
    assert_null(c->public_host);
    assert_string_equal(c->metrics_addr, "");
    assert_int_equal(c->log_level, 0);
    assert_string_equal(c->log_format, "txt");
    assert_int_equal(c->session_length_min, 1440);
    assert_int_equal(c->check_interval_s, 60);
    assert_int_equal(c->enforce_capability_filtering, 0);
    assert_int_equal(c->max_request_body, 5242880);
    assert_int_equal(c->max_header_size, 16384);
    assert_int_equal(c->max_headers, 100);
    assert_int_equal(c->max_url_length, 8192);
    assert_int_equal(c->max_json_depth, 64);
    assert_int_equal(c->max_sessions, 100000);
    assert_int_equal(c->session_idle_s, 3600);
    assert_int_equal(c->upstream_timeout_ms, 30000);
    assert_int_equal(c->max_upstream_response, 16 << 20);
    assert_int_equal(c->header_timeout_ms, 10000);
    assert_int_equal(c->idle_timeout_ms, 75000);
    assert_int_equal(c->body_timeout_ms, 30000);
    assert_int_equal(c->max_sse_streams, 10000);
    assert_int_equal(c->max_client_queue, 4 << 20);
    assert_int_equal(c->max_sessions_per_subject, 1000);
    assert_int_equal(c->max_id_len, 256);
    assert_int_equal(c->max_method_len, 128);
    assert_int_equal(c->max_upstream_concurrency, 1024);
    assert_int_equal(c->max_session_events, 256);
    assert_int_equal(c->max_session_event_bytes, 1 << 20);
    assert_int_equal(c->workers, 0);
    assert_null(c->allowed_origins);
    assert_null(c->signing_key);
    assert_null(c->cache_url);
    assert_int_equal(c->check_config, 0);
    assert_int_equal(c->allow_anonymous, 0);
    assert_int_equal(c->n_servers, 0);
    assert_int_equal(c->n_vservers, 0);
    assert_null(c->gateway_ca_pem);
    config_free(c);
}

static void test_precedence(void **state)
{
    (void)state;
    gw_config *c;
    char err[256];
    setenv("MCP_GATEWAY_WORKERS", "4", 1);
    setenv("MCP_GATEWAY_LOG_FORMAT", "json", 1);
    setenv("MCP_GATEWAY_MAX_SESSIONS", "7", 1);
    setenv("MCP_GATEWAY_ALLOW_ANONYMOUS", "true", 1);
    setenv("MCP_GATEWAY_METRICS_ADDR", "", 1); /* empty = unset */
    setenv("GATEWAY_SIGNING_KEY", "0123456789abcdef0123456789abcdef", 1);
    assert_int_equal(load(&c, err, sizeof err, "--workers", "8", "--log-format=txt", "-check-config",
                          "--allow-anonymous=false", "--log-level", "-4",
                          "--mcp-broker-public-address=0.0.0.0:9000", NULL), 0);
    assert_int_equal(c->workers, 8);                       /* flag over env */
    assert_string_equal(c->log_format, "txt");
    assert_int_equal(c->allow_anonymous, 0);
    assert_int_equal(c->max_sessions, 7);                  /* env over default */
    assert_string_equal(c->signing_key, "0123456789abcdef0123456789abcdef");
    assert_string_equal(c->metrics_addr, "");
    assert_int_equal(c->check_config, 1);                  /* bare boolean, single dash */
    assert_int_equal(c->log_level, -4);                    /* a value may start with '-' */
    assert_string_equal(c->listen_addr, "0.0.0.0:9000");
    assert_int_equal(c->max_headers, 100);                 /* default */
    config_free(c);
    unsetenv("MCP_GATEWAY_WORKERS");
    unsetenv("MCP_GATEWAY_LOG_FORMAT");
    unsetenv("MCP_GATEWAY_MAX_SESSIONS");
    unsetenv("MCP_GATEWAY_ALLOW_ANONYMOUS");
    unsetenv("MCP_GATEWAY_METRICS_ADDR");
    unsetenv("GATEWAY_SIGNING_KEY");
}

/* --log-level takes Kuadrant's numbers or their names; OTEL_* come from the environment only */
static void test_log_level_names_otel(void **state)
{
    (void)state;
    gw_config *c;
    char err[256];
    static const struct { const char *v; int level; } ok[] = {
        {"debug", -4}, {"info", 0}, {"warn", 4}, {"error", 8}, {"WARN", 4}, {"-4", -4}, {"8", 8}, {"2", 2}};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        assert_int_equal(load(&c, err, sizeof err, "--log-level", ok[i].v, NULL), 0);
        assert_int_equal(c->log_level, ok[i].level);
        config_free(c);
    }
    assert_int_equal(load(&c, err, sizeof err, "--log-level", "verbose", NULL), -1);
    assert_string_equal(err, "--log-level: 'verbose' is not a number");
    assert_int_equal(load(&c, err, sizeof err, "--log-level", "debug=", NULL), -1);
    assert_int_equal(load(&c, err, sizeof err, "--log-level", "9", NULL), -1);
    setenv("MCP_GATEWAY_LOG_LEVEL", "error", 1);
    setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318", 1);
    assert_int_equal(load(&c, err, sizeof err, NULL), 0);
    assert_int_equal(c->log_level, 8);
    assert_string_equal(c->otel_endpoint, "http://collector:4318");
    assert_null(c->otel_traces_endpoint);
    assert_string_equal(c->otel_service_name, "mcp-gateway");   /* default */
    config_free(c);
    unsetenv("MCP_GATEWAY_LOG_LEVEL");
    unsetenv("OTEL_EXPORTER_OTLP_ENDPOINT");
}

static void test_bounds(void **state)
{
    (void)state;
    gw_config *c;
    char err[256];
    assert_int_equal(load(&c, err, sizeof err, "--workers", "500", NULL), -1);
    assert_null(c);
    assert_string_equal(err, "--workers: 500 is out of range 0..256");
    assert_int_equal(load(&c, err, sizeof err, "--max-headers=-1", NULL), -1);
    assert_string_equal(err, "--max-headers: -1 is out of range 1..1000");
    assert_int_equal(load(&c, err, sizeof err, "--max-sessions", "99999999999999999999", NULL), -1);
    assert_string_equal(err, "--max-sessions: 99999999999999999999 is out of range 1..10000000");
    assert_int_equal(load(&c, err, sizeof err, "--upstream-timeout", "500ms", NULL), -1);
    assert_string_equal(err, "--upstream-timeout: 500ms is out of range 1..3600 seconds");
    assert_int_equal(load(&c, err, sizeof err, "--workers", "two", NULL), -1);
    assert_string_equal(err, "--workers: 'two' is not a number");
    assert_int_equal(load(&c, err, sizeof err, "--log-format", "xml", NULL), -1);
    assert_string_equal(err, "--log-format: 'xml' is not one of txt|json");
    assert_int_equal(load(&c, err, sizeof err, "--check-config=maybe", NULL), -1);
    assert_string_equal(err, "--check-config: 'maybe' is not true or false");
    assert_int_equal(load(&c, err, sizeof err, "--workers", NULL), -1);
    assert_string_equal(err, "--workers: missing value");
    setenv("MCP_GATEWAY_WORKERS", "999", 1);
    assert_int_equal(load(&c, err, sizeof err, NULL), -1);
    assert_string_equal(err, "MCP_GATEWAY_WORKERS: 999 is out of range 0..256");
    unsetenv("MCP_GATEWAY_WORKERS");
}

static void test_units(void **state)
{
    (void)state;
    gw_config *c;
    char err[256];
    assert_int_equal(load(&c, err, sizeof err, "--max-request-body-size", "5m", "--max-client-write-queue=1g",
                          "--max-header-size", "32K", "--upstream-timeout", "2", "--header-timeout=2m",
                          "--body-timeout", "1500ms", "--keepalive-timeout", "0", NULL), 0);
    assert_int_equal(c->max_request_body, 5 << 20);
    assert_int_equal(c->max_client_queue, 1L << 30);
    assert_int_equal(c->max_header_size, 32 << 10);
    assert_int_equal(c->upstream_timeout_ms, 2000);
    assert_int_equal(c->header_timeout_ms, 120000);
    assert_int_equal(c->body_timeout_ms, 1500);
    assert_int_equal(c->idle_timeout_ms, 0);
    config_free(c);
    assert_int_equal(load(&c, err, sizeof err, "--max-request-body-size", "5x", NULL), -1);
    assert_string_equal(err, "--max-request-body-size: '5x' is not a size (bytes, or with k/m/g)");
    assert_int_equal(load(&c, err, sizeof err, "--max-request-body-size", "2g", NULL), -1);
    assert_string_equal(err, "--max-request-body-size: 2g is out of range 1..1073741824");
}

static void test_unknown_flag(void **state)
{
    (void)state;
    gw_config *c;
    char err[256];
    assert_int_equal(load(&c, err, sizeof err, "--workers", "2", "--bogus=1", NULL), -1);
    assert_null(c);
    assert_string_equal(err, "unknown flag '--bogus' (see --help)");
    assert_int_equal(load(&c, err, sizeof err, "stray", NULL), -1);
    assert_string_equal(err, "unexpected argument 'stray' (see --help)");
}

static void test_help_version(void **state)
{
    (void)state;
    gw_config *c;
    char err[256], out[16384];
    capture cap;
    cap_start(&cap, STDOUT_FILENO);
    int rc = load(&c, err, sizeof err, "--version", NULL);
    cap_end(&cap, out, sizeof out);
    assert_int_equal(rc, 1);
    assert_null(c);
    assert_string_equal(out, "mcp-gateway 0.1.0\n");

    cap_start(&cap, STDOUT_FILENO);
    rc = load(&c, err, sizeof err, "-h", NULL);
    cap_end(&cap, out, sizeof out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "Usage: mcp-gateway"));
    assert_non_null(strstr(out, "--workers <0..256>"));
    assert_non_null(strstr(out, "env MCP_GATEWAY_WORKERS, default: \"0\""));
    assert_non_null(strstr(out, "--max-upstream-response-size <bytes 1k..1g>"));
    assert_non_null(strstr(out, "env GATEWAY_SIGNING_KEY <string>"));
    assert_non_null(strstr(out, "--mcp-gateway-config <string>"));
}

/* ---- the YAML file ---- */

static const char good_yaml[] =
    "# two servers and a virtual server\n"                     /* 1 */
    "servers:\n"                                               /* 2 */
    "  - name: mcp-test/server1\n"                             /* 3 */
    "    url: http://127.0.0.1:9001/mcp\n"                     /* 4 */
    "    hostname: server1.mcp.local\n"                        /* 5 */
    "    Prefix: test1_\n"                                     /* 6: keys are case-insensitive */
    "    credential: \"Bearer xyz\"\n"                         /* 7 */
    "    userSpecificList: false\n"                            /* 8 */
    "    category: [weather]\n"                                /* 9 */
    "    hint: forecasts\n"                                    /* 10 */
    "    tags: [prod]\n"                                       /* 11 */
    "  - name: mcp-test/server2\n"                             /* 12 */
    "    url: https://example.com/mcp\n"                       /* 13 */
    "    state: Disabled\n"                                    /* 14 */
    "    caCert: |\n"                                          /* 15 */
    "      -----BEGIN CERTIFICATE-----\n"                      /* 16 */
    "virtualServers:\n"                                        /* 17 */
    "  - name: mcp-system/dev-tools\n"                         /* 18 */
    "    tools: [test1_greet, test2_hello_world]\n"            /* 19 */
    "  - name: mcp-system/none\n"                              /* 20 */
    "    tools: []\n"                                          /* 21 */
    "    prompts: [nothing_here]\n"                            /* 22 */
    "gatewayCACertPEM: \"PEM\"\n"                              /* 23 */
    "oauthProtectedResource: {resourceName: x}\n"              /* 24 */
    "auth: {issuers: [{issuerUrl: \"http://idp/realms/mcp\"}], audiences: [a], leewaySeconds: 5}\n" /* 25 */
    "authorization: {mode: roles}\n";                            /* 26 */

static void test_yaml_good(void **state)
{
    (void)state;
    gw_config *c;
    char err[512], log[4096];
    capture cap;
    cap_start(&cap, STDERR_FILENO);
    int rc = yload(good_yaml, &c, err, sizeof err);
    cap_end(&cap, log, sizeof log);
    assert_int_equal(rc, 0);
    assert_string_equal(log, ""); /* nothing unknown */

    assert_int_equal(c->n_servers, 2);
    gw_server_cfg *s = &c->servers[0];
    assert_string_equal(s->name, "mcp-test/server1");
    assert_string_equal(s->url, "http://127.0.0.1:9001/mcp");
    assert_string_equal(s->prefix, "test1_");
    assert_string_equal(s->hostname, "server1.mcp.local");
    assert_string_equal(s->credential, "Bearer xyz");
    assert_string_equal(c->auth.resource_name, "x");
    assert_int_equal(c->auth.n_issuers, 1);
    assert_string_equal(c->auth.issuers[0].issuer_url, "http://idp/realms/mcp");
    assert_null(c->auth.issuers[0].jwks_uri);
    assert_int_equal(c->auth.audiences.n, 1);
    assert_string_equal(c->auth.audiences.v[0], "a");
    assert_int_equal(c->auth.leeway_s, 5);
    assert_null(s->ca_cert);
    assert_int_equal(s->enabled, 1);
    assert_int_equal(s->line, 3);
    s = &c->servers[1];
    assert_string_equal(s->name, "mcp-test/server2");
    assert_string_equal(s->prefix, "");
    assert_null(s->credential);
    assert_string_equal(s->ca_cert, "-----BEGIN CERTIFICATE-----\n");
    assert_int_equal(s->enabled, 0);
    assert_int_equal(s->line, 12);

    assert_int_equal(c->n_vservers, 2);
    gw_vserver_cfg *v = &c->vservers[0];
    assert_string_equal(v->name, "mcp-system/dev-tools");
    assert_int_equal(v->tools_set, 1);
    assert_int_equal(v->n_tools, 2);
    assert_string_equal(v->tools[0], "test1_greet");
    assert_string_equal(v->tools[1], "test2_hello_world");
    assert_int_equal(v->prompts_set, 0); /* omitted = all */
    assert_int_equal(v->line, 18);
    v = &c->vservers[1];
    assert_int_equal(v->tools_set, 1);   /* [] = none */
    assert_int_equal(v->n_tools, 0);
    assert_int_equal(v->n_prompts, 1);
    assert_string_equal(c->gateway_ca_pem, "PEM");

    /* A failing reload leaves the loaded servers in force. */
    assert_int_equal(config_load_yaml(c, "t.yaml", "servers: x\n", 11, err, sizeof err), -1);
    assert_int_equal(c->n_servers, 2);
    assert_string_equal(c->servers[0].name, "mcp-test/server1");
    /* A good one replaces them. */
    assert_int_equal(config_load_yaml(c, "t.yaml", "", 0, err, sizeof err), 0);
    assert_int_equal(c->n_servers, 0);
    assert_null(c->gateway_ca_pem);
    config_free(c);
}

static void test_yaml_errors(void **state)
{
    (void)state;
    expect_yaml_error("servers:\n"
                      "  - name: a\n"
                      "    url: [http://x\n",
                      "t.yaml:4: did not find expected ',' or ']' (while parsing a flow sequence at line 3)");
    expect_yaml_error("servers:\n"
                      "  - name: a\n"
                      "   url: http://x\n",
                      "t.yaml:3: did not find expected '-' indicator (while parsing a block collection at line 2)");
    expect_yaml_error("servers:\n"
                      "  name: a\n",
                      "t.yaml:2: 'servers' must be a list");
    expect_yaml_error("- a\n", "t.yaml:1: the top level must be a mapping");
    expect_yaml_error("servers:\n"
                      "  - name: a\n"
                      "    url: http://x\n"
                      "    maxConcurrency: 0\n",
                      "t.yaml:4: 'maxConcurrency' must be an integer 1..1000000");
    expect_yaml_error("servers:\n"
                      "  - name: a\n"
                      "    url: http://x\n"
                      "    maxConcurrency: many\n",
                      "t.yaml:4: 'maxConcurrency' must be an integer 1..1000000");
    expect_yaml_error("servers:\n"
                      "  - name: a\n"
                      "    url: http://x\n"
                      "  - name: b\n"
                      "    prefix: b_\n",
                      "t.yaml:4: server 'b' has no 'url'");
    expect_yaml_error("servers:\n"
                      "  - url: http://x\n",
                      "t.yaml:2: server has no 'name'");
    expect_yaml_error("servers:\n"
                      "  - name: [a]\n",
                      "t.yaml:2: 'name' must be a string");
    expect_yaml_error("servers:\n"
                      "  - name: a\n"
                      "    url: ftp://x\n",
                      "t.yaml:3: url 'ftp://x' must start with http:// or https://");
    expect_yaml_error("servers:\n"
                      "  - name: a\n"
                      "    url: http://x\n"
                      "    prefix: Bad-\n",
                      "t.yaml:4: prefix 'Bad-' must match ^[a-z0-9][a-z0-9_]*$");
    expect_yaml_error("auth:\n  issuers:\n    - jwksUri: http://x/jwks\n",
                      "t.yaml:3: issuer has no 'issuerUrl'");
    expect_yaml_error("auth:\n  leewaySeconds: soon\n",
                      "t.yaml:2: 'leewaySeconds' must be an integer 0..3600");
    expect_yaml_error("oauthProtectedResource: [1]\n",
                      "t.yaml:1: 'oauthProtectedResource' must be a mapping");
    expect_yaml_error("servers:\n"
                      "  - name: a\n"
                      "    url: http://x\n"
                      "    prefix: _a\n",
                      "t.yaml:4: prefix '_a' must match ^[a-z0-9][a-z0-9_]*$");
    expect_yaml_error("servers:\n"
                      "  - name: a\n"
                      "    url: http://x\n"
                      "  - name: b\n"
                      "    url: http://y\n"
                      "  - url: http://z\n"
                      "    name: a\n",
                      "t.yaml:7: duplicate server name 'a' (first at line 2)");
    expect_yaml_error("servers:\n"
                      "  - name: a\n"
                      "    url: http://x\n"
                      "    state: Paused\n",
                      "t.yaml:4: state 'Paused' must be Enabled or Disabled");
    expect_yaml_error("virtualServers:\n"
                      "  - name: v\n"
                      "    tools: greet\n",
                      "t.yaml:3: 'tools' must be a list");
    expect_yaml_error("virtualServers:\n"
                      "  - tools: [greet]\n",
                      "t.yaml:2: virtual server has no 'name'");
}

static void test_yaml_unknown_key(void **state)
{
    (void)state;
    gw_config *c;
    char err[512], log[4096];
    capture cap;
    cap_start(&cap, STDERR_FILENO);
    int rc = yload("servers:\n"
                   "  - name: a\n"
                   "    enabled: false\n"
                   "    url: http://x\n"
                   "colour: blue\n",
                   &c, err, sizeof err);
    cap_end(&cap, log, sizeof log);
    assert_int_equal(rc, 0);
    assert_int_equal(c->n_servers, 1);
    assert_int_equal(c->servers[0].enabled, 1); /* Kuadrant ignores `enabled` */
    assert_non_null(strstr(log, "t.yaml:3: unknown key 'enabled' ignored"));
    assert_non_null(strstr(log, "t.yaml:5: unknown key 'colour' ignored"));
    config_free(c);
}

static void test_file(void **state)
{
    (void)state;
    gw_config *c;
    char err[512], path[] = "/tmp/test_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static const char y[] = "servers:\n  - name: s\n    url: http://127.0.0.1:1/mcp\n    prefix: s_\n";
    assert_int_equal(write(fd, y, sizeof y - 1), (ssize_t)(sizeof y - 1));
    close(fd);

    assert_int_equal(load(&c, err, sizeof err, "--mcp-gateway-config", path, NULL), 0);
    assert_int_equal(c->n_servers, 1);
    assert_string_equal(c->servers[0].prefix, "s_");
    config_free(c);

    c = fresh();
    assert_int_equal(config_load_file(c, "/nonexistent/gateway.yaml", err, sizeof err), -1);
    assert_string_equal(err, "/nonexistent/gateway.yaml: No such file or directory");
    config_free(c);

    /* Errors name the file. */
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "servers: 1\n", 11), 11);
    close(fd);
    char want[600];
    snprintf(want, sizeof want, "%s:1: 'servers' must be a list", path);
    assert_int_equal(load(&c, err, sizeof err, "--mcp-gateway-config", path, NULL), -1);
    assert_null(c);
    assert_string_equal(err, want);
    unlink(path);
}

/* The shipped example stays valid (run from the repository root, as make does). */
static void test_example(void **state)
{
    (void)state;
    if (access("examples/gateway.yaml", R_OK) != 0) skip();
    gw_config *c = fresh();
    char err[512];
    assert_int_equal(config_load_file(c, "examples/gateway.yaml", err, sizeof err), 0);
    assert_int_equal(c->n_servers, 2);
    assert_string_equal(c->servers[0].name, "example/server1");
    assert_string_equal(c->servers[0].url, "http://127.0.0.1:9001/mcp");
    assert_string_equal(c->servers[0].prefix, "s1_");
    assert_string_equal(c->servers[1].name, "example/server2");
    assert_string_equal(c->servers[1].url, "http://127.0.0.1:9002/mcp");
    assert_string_equal(c->servers[1].prefix, "s2_");
    assert_int_equal(c->n_vservers, 1);
    config_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_log_level_names_otel),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_units),
        cmocka_unit_test(test_unknown_flag),
        cmocka_unit_test(test_help_version),
        cmocka_unit_test(test_yaml_good),
        cmocka_unit_test(test_yaml_errors),
        cmocka_unit_test(test_yaml_unknown_key),
        cmocka_unit_test(test_file),
        cmocka_unit_test(test_example),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
