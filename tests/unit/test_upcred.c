/* test_upcred — upstream credentials: the servers[] keys of config.c's "upstream credentials"
 * section (sources, exclusivity, headers, PEM checks, messages without secrets), and upcred.c
 * (form encoding, token answers and their lifetimes, static and forwarded credentials, a
 * credentialFile read again on 401, CAs, a failing fetch shared by two askers). The exchange
 * and client-credentials flows against a real IdP are in tests/e2e/67-credentials.test.mjs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "b64.h"
#include "buf.h"
#include "config.h"
#include "gateway.h"
#include "upcred.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SECRET "s3cr3t-value-0042"
#define S(lit) lit, strlen(lit)

static gw_config *load(const char *yaml, char *err, size_t errlen, int *rc)
{
    gw_config *cfg = calloc(1, sizeof *cfg);
    assert_non_null(cfg);
    config_defaults(cfg);
    err[0] = '\0';
    *rc = config_load_yaml(cfg, "t.yaml", yaml, strlen(yaml), err, errlen);
    return cfg;
}

static void expect_error(const char *yaml, const char *want)
{
    char err[512];
    int rc;
    gw_config *cfg = load(yaml, err, sizeof err, &rc);
    if (rc != -1) fail_msg("accepted: %s", yaml);
    if (!strstr(err, want)) fail_msg("error '%s' does not contain '%s'", err, want);
    if (strstr(err, SECRET)) fail_msg("error '%s' shows the secret", err);
    config_free(cfg);
}

static char *write_tmp(const char *content)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/test_upcred_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    close(fd);
    return path;
}

/* ---- config ---- */

static void test_sources(void **state)
{
    (void)state;
    char err[512], yaml[2048];
    int rc;
    setenv("UPCRED_T_CRED", "Bearer " SECRET "\n", 1);
    setenv("UPCRED_T_HDR", "hdr-" SECRET, 1);
    char *f = strdup(write_tmp("Bearer from-file\n\n"));
    snprintf(yaml, sizeof yaml,
             "servers:\n"
             "  - {name: a, url: 'http://a/mcp', credential: 'Bearer literal'}\n"
             "  - {name: b, url: 'http://b/mcp', credentialEnv: UPCRED_T_CRED}\n"
             "  - name: c\n"
             "    url: http://c/mcp\n"
             "    credentialFile: %s\n"
             "    headers: {X-Tenant: acme, X-Key: {env: UPCRED_T_HDR}, X-F: {file: %s}}\n"
             "  - name: d\n"
             "    url: https://d/mcp\n"
             "    credential: ''\n"
             "    tokenExchange: {tokenUrl: 'https://idp/token', clientId: gw, clientSecret: x, clientAuth: client_secret_post,\n"
             "                    audience: aud-d, scope: 'read write', resource: 'https://d/'}\n"
             "    clientCredentials: {tokenUrl: 'https://idp/token', clientId: gw2, clientSecretEnv: UPCRED_T_HDR}\n"
             "    tlsServerName: d.internal\n"
             "  - {name: e, url: 'http://e/mcp', forwardAuthorization: true}\n",
             f, f);
    gw_config *cfg = load(yaml, err, sizeof err, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(cfg->n_servers, 5);
    assert_string_equal(cfg->servers[0].credential, "Bearer literal");
    assert_string_equal(cfg->servers[0].cred->cred_key, "credential");
    assert_string_equal(cfg->servers[1].credential, "Bearer " SECRET);   /* trailing newline trimmed */
    assert_string_equal(cfg->servers[1].cred->cred_key, "credentialEnv");
    assert_string_equal(cfg->servers[2].credential, "Bearer from-file");
    assert_string_equal(cfg->servers[2].cred->cred_file, f);
    const gw_strlist *h = &cfg->servers[2].cred->headers;
    assert_int_equal(h->n, 3);
    assert_string_equal(h->v[0], "X-Tenant: acme");
    assert_string_equal(h->v[1], "X-Key: hdr-" SECRET);
    assert_string_equal(h->v[2], "X-F: Bearer from-file");
    const gw_upcred_cfg *d = cfg->servers[3].cred;
    assert_null(cfg->servers[3].credential);
    assert_non_null(d->exchange);
    assert_string_equal(d->exchange->token_url, "https://idp/token");
    assert_string_equal(d->exchange->client_id, "gw");
    assert_string_equal(d->exchange->client_secret, "x");
    assert_int_equal(d->exchange->auth_post, 1);
    assert_string_equal(d->exchange->audience, "aud-d");
    assert_string_equal(d->exchange->scope, "read write");
    assert_string_equal(d->exchange->resource, "https://d/");
    assert_string_equal(d->client->client_secret, "hdr-" SECRET);
    assert_int_equal(d->client->auth_post, 0);
    assert_string_equal(d->tls_server_name, "d.internal");
    assert_int_equal(cfg->servers[4].cred->forward, 1);
    config_free(cfg);
    unlink(f);
    free(f);
}

static void test_errors(void **state)
{
    (void)state;
    setenv("UPCRED_T_CRED", "Bearer " SECRET, 1);
    unsetenv("UPCRED_T_UNSET");
    expect_error("servers:\n  - {name: a, url: 'http://a/', credential: 'Bearer " SECRET "', credentialEnv: UPCRED_T_CRED}\n",
                 "t.yaml:2: server 'a': 'credentialEnv' and 'credential' (line 2) both give the gateway's credential");
    expect_error("servers:\n  - {name: a, url: 'http://a/', credentialEnv: UPCRED_T_UNSET}\n",
                 "t.yaml:2: server 'a': credentialEnv: environment variable UPCRED_T_UNSET is not set");
    expect_error("servers:\n  - {name: a, url: 'http://a/', credentialEnv: 'not a name'}\n",
                 "must name an environment variable");
    expect_error("servers:\n  - {name: a, url: 'http://a/', credentialFile: /nonexistent/x}\n",
                 "credentialFile: /nonexistent/x No such file or directory");
    expect_error("servers:\n  - {name: a, url: 'http://a/', credential: \"Bearer " SECRET "\\r\\nX: y\"}\n",
                 "the value of 'credential' contains a line break");
    expect_error("servers:\n  - {name: a, url: 'http://a/', tokenExchange: {clientId: c}}\n", "tokenExchange needs tokenUrl");
    expect_error("servers:\n  - {name: a, url: 'http://a/', tokenExchange: {tokenUrl: 'http://i/t'}}\n", "tokenExchange needs clientId");
    expect_error("servers:\n  - {name: a, url: 'http://a/', tokenExchange: {tokenUrl: 'ftp://i/t', clientId: c}}\n",
                 "tokenExchange.tokenUrl must start with http");
    expect_error("servers:\n  - {name: a, url: 'http://a/', tokenExchange: {tokenUrl: 'http://i/t', clientId: c, bogus: 1}}\n",
                 "unknown key 'bogus' in tokenExchange");
    expect_error("servers:\n  - {name: a, url: 'http://a/', tokenExchange: {tokenUrl: 'http://i/t', clientId: c, "
                 "clientSecret: '" SECRET "', clientSecretEnv: UPCRED_T_CRED}}\n",
                 "has two client secrets");
    expect_error("servers:\n  - {name: a, url: 'http://a/', tokenExchange: {tokenUrl: 'http://i/t', clientId: c, clientAuth: jwt}}\n",
                 "clientAuth must be client_secret_basic or client_secret_post");
    expect_error("servers:\n  - {name: a, url: 'http://a/', tokenExchange: {tokenUrl: 'http://i/t', clientId: c}, "
                 "forwardAuthorization: true}\n",
                 "'forwardAuthorization' and 'tokenExchange' both choose the caller's credential");
    expect_error("servers:\n  - {name: a, url: 'http://a/', clientCredentials: {tokenUrl: 'http://i/t', clientId: c}, "
                 "credentialEnv: UPCRED_T_CRED}\n",
                 "'credentialEnv' and 'clientCredentials'");
    expect_error("servers:\n  - {name: a, url: 'http://a/', headers: {Authorization: '" SECRET "'}}\n",
                 "header 'Authorization' is the gateway's own (use credential");
    expect_error("servers:\n  - {name: a, url: 'http://a/', headers: {Mcp-Session-Id: x}}\n", "header 'Mcp-Session-Id' is the gateway's own");
    expect_error("servers:\n  - {name: a, url: 'http://a/', headers: {'Bad Name': x}}\n", "a header name must be an HTTP token");
    expect_error("servers:\n  - {name: a, url: 'http://a/', headers: {X-A: {vault: x}}}\n", "the source must be value, env or file");
    expect_error("servers:\n  - {name: a, url: 'http://a/', headers: {X-A: x, x-a: y}}\n", "header 'x-a' is given twice");
    expect_error("servers:\n  - {name: a, url: 'http://a/', clientCert: 'not pem'}\n", "clientCert is not a PEM certificate");
    expect_error("servers:\n  - {name: a, url: 'http://a/', clientKeyFile: /nonexistent/k}\n", "clientKeyFile: /nonexistent/k");
    expect_error("servers:\n  - {name: a, url: 'http://a/', tlsServerName: 'a b'}\n", "tlsServerName must be a DNS name");
    expect_error("servers:\n  - {name: a, url: 'http://a/', forwardAuthorization: maybe}\n", "'forwardAuthorization' must be true or false");
}

/* ---- upcred ---- */

static void test_form(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, 4096);
    upcred_form_add(&b, "grant_type", "urn:ietf:params:oauth:grant-type:token-exchange");
    upcred_form_add(&b, "scope", "read write");
    upcred_form_add(&b, "skipped", NULL);
    upcred_form_add(&b, "x", "a+b&c=d/é~._-");
    assert_string_equal(b.data, "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&scope=read+write"
                                "&x=a%2Bb%26c%3Dd%2F%C3%A9~._-");
    buf_free(&b);
}

/* A JWT-shaped token whose payload is json (not signed: upcred reads exp only). */
static char *fake_jwt(const char *json)
{
    char p[512];
    b64url_encode(json, strlen(json), p);
    char *t = malloc(strlen(p) + 64);
    sprintf(t, "eyJhbGciOiJSUzI1NiJ9.%s.c2ln", p);
    return t;
}

static void test_parse_token(void **state)
{
    (void)state;
    char err[256];
    int64_t until, now = 1800000000000LL;
    char *a = upcred_parse_token(S("{\"access_token\":\"abc\",\"token_type\":\"bearer\",\"expires_in\":300}"), now, 0,
                                 &until, err, sizeof err);
    assert_string_equal(a, "Bearer abc");
    assert_int_equal(until, now + 300000 - 30000);          /* 30 s before expiry */
    free(a);
    a = upcred_parse_token(S("{\"access_token\":\"abc\",\"expires_in\":3}"), now, 0, &until, err, sizeof err);
    assert_int_equal(until, now + 3000 - 300);              /* short-lived: a tenth of its life before */
    free(a);
    a = upcred_parse_token(S("{\"access_token\":\"abc\",\"expires_in\":300}"), now, now + 60000, &until, err, sizeof err);
    assert_int_equal(until, now + 60000);                   /* never past the caller's token */
    free(a);
    char *jwt = fake_jwt("{\"sub\":\"u\",\"exp\":1800000100}");
    assert_int_equal(upcred_jwt_exp(jwt), 1800000100);
    char body[700];
    int n = snprintf(body, sizeof body, "{\"access_token\":\"%s\",\"expires_in\":3600}", jwt);
    a = upcred_parse_token(body, (size_t)n, now, 0, &until, err, sizeof err);
    assert_int_equal(until, 1800000100000LL - 10000);       /* the JWT's exp is earlier than expires_in */
    free(a);
    n = snprintf(body, sizeof body, "{\"access_token\":\"%s\"}", jwt);
    a = upcred_parse_token(body, (size_t)n, now, 0, &until, err, sizeof err);
    assert_int_equal(until, 1800000100000LL - 10000);       /* no expires_in: the JWT's exp */
    free(a);
    free(jwt);
    a = upcred_parse_token(S("{\"access_token\":\"opaque\"}"), now, 0, &until, err, sizeof err);
    assert_int_equal(until, now + 300000 - 30000);          /* nobody says: 5 minutes */
    free(a);
    assert_int_equal(upcred_jwt_exp("opaque"), 0);
    assert_int_equal(upcred_jwt_exp("a.!!.c"), 0);

    assert_null(upcred_parse_token(S("{\"access_token\":\"abc\",\"token_type\":\"DPoP\"}"), now, 0, &until, err, sizeof err));
    assert_string_equal(err, "the token endpoint issued a token of type 'DPoP', not Bearer");
    assert_null(upcred_parse_token(S("{\"token_type\":\"Bearer\"}"), now, 0, &until, err, sizeof err));
    assert_string_equal(err, "the token endpoint's answer has no access_token");
    assert_null(upcred_parse_token(S("{\"access_token\":\"a\\r\\nX: y\"}"), now, 0, &until, err, sizeof err));
    assert_string_equal(err, "the token endpoint's access_token is not a valid header value");
    assert_null(upcred_parse_token(S("nope"), now, 0, &until, err, sizeof err));
    assert_string_equal(err, "the token endpoint's answer is not a JSON object");
}

static gateway *gw_for(const char *yaml)
{
    char err[512];
    int rc;
    gw_config *cfg = load(yaml, err, sizeof err, &rc);
    if (rc) fail_msg("%s", err);
    gateway *gw = calloc(1, sizeof *gw);
    gw->cfg = cfg;
    upcred_free();
    upcred_init(cfg);
    return gw;
}

static void gw_done(gateway *gw)
{
    upcred_free();
    config_free(gw->cfg);
    free(gw);
}

static int get_now(gateway *gw, size_t server, const upcred_who *who, char **auth)
{
    char err[256];
    upcred_op *op = NULL;
    return upcred_get(gw, NULL, NULL, server, who, auth, err, sizeof err, NULL, NULL, &op);
}

static void test_static_and_forward(void **state)
{
    (void)state;
    char *f = strdup(write_tmp("Bearer one\n"));
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "gatewayCACertPEM: GWCA\n"
             "servers:\n"
             "  - {name: a, url: 'http://a/', credential: 'Bearer lit', caCert: SRVCA, headers: {X-T: t}}\n"
             "  - {name: b, url: 'http://b/', credentialFile: %s}\n"
             "  - {name: c, url: 'http://c/', forwardAuthorization: true, credential: 'Bearer gw'}\n"
             "  - {name: d, url: 'http://d/'}\n",
             f);
    gateway *gw = gw_for(yaml);
    char *auth = NULL;
    upcred_who anon = {0};
    assert_int_equal(get_now(gw, 0, NULL, &auth), UPCRED_READY);
    assert_string_equal(auth, "Bearer lit");
    free(auth);
    assert_int_equal(get_now(gw, 3, &anon, &auth), UPCRED_READY);
    assert_null(auth);

    up_req u = {0};
    upcred_prepare(gw->cfg, 0, &u);
    assert_string_equal(u.ca_pem, "GWCA\nSRVCA");
    assert_int_equal(u.n_headers, 1);
    assert_string_equal(u.headers[0], "X-T: t");
    memset(&u, 0, sizeof u);
    upcred_prepare(gw->cfg, 3, &u);
    assert_string_equal(u.ca_pem, "GWCA");

    /* credentialFile: read again on a 401; a retry only when it changed */
    assert_int_equal(upcred_rejected(gw, NULL, 1, NULL, "Bearer one"), 0);
    FILE *fp = fopen(f, "w");
    fputs("Bearer two\n", fp);
    fclose(fp);
    assert_int_equal(upcred_rejected(gw, NULL, 1, NULL, "Bearer one"), 1);
    assert_int_equal(get_now(gw, 1, NULL, &auth), UPCRED_READY);
    assert_string_equal(auth, "Bearer two");
    free(auth);
    assert_int_equal(upcred_rejected(gw, NULL, 0, NULL, "Bearer lit"), 0);   /* a literal cannot change */

    /* forwardAuthorization: the caller's token on its calls, the gateway's credential for discovery */
    assert_int_equal(upcred_needs_caller(gw->cfg, 2), 1);
    assert_int_equal(upcred_needs_caller(gw->cfg, 0), 0);
    http_header hd[1] = {{"Authorization", 13, "Bearer caller-token", 19}};
    http_req req = {.headers = hd, .n_headers = 1};
    upcred_who who;
    upcred_caller(gw, &req, NULL, NULL, &who);
    assert_int_equal(who.set, 1);
    assert_int_equal(get_now(gw, 2, &who, &auth), UPCRED_READY);
    assert_string_equal(auth, "Bearer caller-token");
    free(auth);
    assert_int_equal(get_now(gw, 2, NULL, &auth), UPCRED_READY);
    assert_string_equal(auth, "Bearer gw");
    free(auth);
    assert_int_equal(get_now(gw, 2, &anon, &auth), UPCRED_READY);   /* a caller without a token: nothing */
    assert_null(auth);
    assert_int_equal(upcred_rejected(gw, NULL, 2, &who, "Bearer caller-token"), 0);
    gw_done(gw);
    unlink(f);
    free(f);
}

/* ---- fetches: a failing token endpoint, asked twice at once ---- */

typedef struct answer { int called; char *auth; char err[256]; } answer;

static void on_answer(void *ud, char *auth, const char *err)
{
    answer *a = ud;
    a->called++;
    a->auth = auth;
    snprintf(a->err, sizeof a->err, "%s", err ? err : "");
}

static void test_fetch_failure(void **state)
{
    (void)state;
    gateway *gw = gw_for("servers:\n"
                         "  - name: cc\n"
                         "    url: http://127.0.0.1:1/mcp\n"
                         "    clientCredentials: {tokenUrl: 'http://127.0.0.1:1/token', clientId: c, clientSecret: '" SECRET "'}\n"
                         "  - name: te\n"
                         "    url: http://127.0.0.1:1/mcp\n"
                         "    tokenExchange: {tokenUrl: 'http://127.0.0.1:1/token', clientId: c}\n");
    uv_loop_t loop;
    uv_loop_init(&loop);
    upclient *up = upclient_new(&loop);
    answer a1 = {0}, a2 = {0};
    char *auth = NULL, err[256];
    upcred_op *op1, *op2;
    assert_int_equal(upcred_get(gw, &loop, &up, 0, NULL, &auth, err, sizeof err, on_answer, &a1, &op1), UPCRED_PENDING);
    assert_int_equal(upcred_get(gw, &loop, &up, 0, NULL, &auth, err, sizeof err, on_answer, &a2, &op2), UPCRED_PENDING);
    for (int i = 0; i < 500 && (!a1.called || !a2.called); i++) uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(a1.called, 1);
    assert_int_equal(a2.called, 1);
    assert_null(a1.auth);
    assert_string_equal(a1.err, "client credentials at the IdP failed: upstream refused the connection");
    assert_string_equal(a2.err, a1.err);
    /* remembered for a second: the next ask fails at once, without a request */
    assert_int_equal(upcred_get(gw, &loop, &up, 0, NULL, &auth, err, sizeof err, on_answer, &a1, &op1), UPCRED_FAILED);
    assert_string_equal(err, a1.err);

    /* token exchange without a caller token, and a cancelled wait */
    upcred_who who = {.set = 1};
    assert_int_equal(upcred_get(gw, &loop, &up, 1, &who, &auth, err, sizeof err, on_answer, &a1, &op1), UPCRED_FAILED);
    assert_string_equal(err, "token exchange needs the caller's token, and none is at hand");
    upcred_who none = {0};
    assert_int_equal(upcred_get(gw, &loop, &up, 1, &none, &auth, err, sizeof err, on_answer, &a1, &op1), UPCRED_FAILED);
    assert_non_null(strstr(err, "carries no token"));
    usleep(1100 * 1000);
    answer a3 = {0};
    assert_int_equal(upcred_get(gw, &loop, &up, 0, NULL, &auth, err, sizeof err, on_answer, &a3, &op1), UPCRED_PENDING);
    upcred_cancel(op1);
    upcred_loop_stop(&loop);
    upclient_free(up);
    up = NULL;
    for (int i = 0; i < 100 && uv_run(&loop, UV_RUN_NOWAIT); i++) {}
    assert_int_equal(a3.called, 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    gw_done(gw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sources),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_form),
        cmocka_unit_test(test_parse_token),
        cmocka_unit_test(test_static_and_forward),
        cmocka_unit_test(test_fetch_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
