/* test_config_diff — what a reload changes (src/config_diff.c): which servers keep their slot,
 * which take a new one and why, which go; prefixes and maxConcurrency in place; virtual servers,
 * authorization, and the blocks that need a restart; the line the log gets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "config.h"
#include "config_diff.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static gw_config *load(const char *yaml)
{
    gw_config *cfg = calloc(1, sizeof *cfg);
    assert_non_null(cfg);
    config_defaults(cfg);
    char err[512] = "";
    if (config_load_yaml(cfg, "t.yaml", yaml, strlen(yaml), err, sizeof err) != 0) fail_msg("t.yaml: %s", err);
    return cfg;
}

static const char two_servers[] =
    "servers:\n"
    "  - {name: a, url: http://a/mcp, prefix: a_}\n"
    "  - {name: b, url: http://b/mcp, prefix: b_, credential: Bearer b}\n";

/* next vs running, described */
typedef struct pair {
    gw_config *run, *next;
    cfgdiff    d;
    char       desc[1024];
} pair;

static void diff(pair *p, const char *running, const char *next)
{
    p->run = load(running);
    p->next = load(next);
    config_diff(p->run, p->next, &p->d);
    config_diff_describe(p->run, p->next, &p->d, p->desc, sizeof p->desc);
}

static void done(pair *p)
{
    config_diff_free(&p->d);
    config_free(p->run);
    config_free(p->next);
}

static void test_no_change(void **state)
{
    (void)state;
    pair p;
    diff(&p, two_servers, two_servers);
    assert_int_equal(p.d.n_servers, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_true(p.d.servers[i].kept);
        assert_int_equal(p.d.servers[i].slot, i);
        assert_false(p.d.servers[i].prefix_changed);
    }
    assert_int_equal(p.d.n_removed, 0);
    assert_int_equal(p.d.n_new, 0);
    assert_false(p.d.vservers_changed);
    assert_false(p.d.authz_changed);
    assert_string_equal(p.d.restart, "");
    assert_string_equal(p.desc, "no change");
    done(&p);
}

/* Added servers take new slots after the running ones, in file order; order in the file may change. */
static void test_added_and_reordered(void **state)
{
    (void)state;
    pair p;
    diff(&p, two_servers,
         "servers:\n"
         "  - {name: c, url: http://c/mcp, prefix: c_}\n"
         "  - {name: b, url: http://b/mcp, prefix: b_, credential: Bearer b}\n"
         "  - {name: d, url: http://d/mcp}\n"
         "  - {name: a, url: http://a/mcp, prefix: a_}\n");
    assert_int_equal(p.d.n_new, 2);
    assert_false(p.d.servers[0].kept);
    assert_false(p.d.servers[0].replaced);
    assert_int_equal(p.d.servers[0].slot, 2);   /* c */
    assert_true(p.d.servers[1].kept);
    assert_int_equal(p.d.servers[1].slot, 1);   /* b */
    assert_int_equal(p.d.servers[2].slot, 3);   /* d */
    assert_true(p.d.servers[3].kept);
    assert_int_equal(p.d.servers[3].slot, 0);   /* a */
    assert_int_equal(p.d.n_removed, 0);
    assert_string_equal(p.desc, "added c, d");
    done(&p);
}

/* A prefix or maxConcurrency change keeps the slot (the upstream session lives on). */
static void test_in_place(void **state)
{
    (void)state;
    pair p;
    diff(&p, two_servers,
         "servers:\n"
         "  - {name: a, url: http://a/mcp, prefix: one_, maxConcurrency: 5}\n"
         "  - {name: b, url: http://b/mcp, credential: Bearer b}\n");
    assert_true(p.d.servers[0].kept);
    assert_true(p.d.servers[0].prefix_changed);
    assert_true(p.d.servers[0].concurrency_changed);
    assert_true(p.d.servers[1].kept);
    assert_true(p.d.servers[1].prefix_changed);   /* b_ -> none */
    assert_int_equal(p.d.n_new, 0);
    assert_int_equal(p.d.n_removed, 0);
    assert_string_equal(p.desc, "prefix of a: \"a_\" -> \"one_\"; maxConcurrency of a: 0 -> 5; prefix of b: \"b_\" -> \"\"");
    done(&p);
}

/* Other connection settings: a new slot; the old one is removed, but the log says "replaced". */
static void test_replaced(void **state)
{
    (void)state;
    pair p;
    diff(&p, two_servers,
         "servers:\n"
         "  - {name: a, url: http://a2/mcp, prefix: a_}\n"
         "  - {name: b, url: http://b/mcp, prefix: b_, credential: Bearer other, state: Disabled}\n");
    assert_false(p.d.servers[0].kept);
    assert_true(p.d.servers[0].replaced);
    assert_int_equal(p.d.servers[0].old_slot, 0);
    assert_int_equal(p.d.servers[0].slot, 2);
    assert_string_equal(p.d.servers[0].changed, "url");
    assert_string_equal(p.d.servers[1].changed, "state, credential");   /* names, never the values */
    assert_int_equal(p.d.servers[1].slot, 3);
    assert_int_equal(p.d.n_new, 2);
    assert_int_equal(p.d.n_removed, 2);
    assert_int_equal(p.d.removed[0], 0);
    assert_int_equal(p.d.removed[1], 1);
    assert_string_equal(p.desc, "replaced a (url), b (state, credential)");
    assert_null(strstr(p.desc, "Bearer"));
    done(&p);
}

static void test_removed(void **state)
{
    (void)state;
    pair p;
    diff(&p, two_servers, "servers:\n  - {name: b, url: http://b/mcp, prefix: b_, credential: Bearer b}\n");
    assert_int_equal(p.d.n_removed, 1);
    assert_int_equal(p.d.removed[0], 0);
    assert_true(p.d.servers[0].kept);
    assert_string_equal(p.desc, "removed a");
    done(&p);
    diff(&p, two_servers, "");   /* an empty file: every server goes */
    assert_int_equal(p.d.n_servers, 0);
    assert_int_equal(p.d.n_removed, 2);
    assert_string_equal(p.desc, "removed a, b");
    done(&p);
}

/* Servers behind the bridge are compared by what was written, not by their bridge url. */
static void test_bridged(void **state)
{
    (void)state;
    static const char y[] =
        "servers:\n"
        "  - {name: s, command: node, args: [srv.js, --x], prefix: s_}\n"
        "  - {name: l, url: http://legacy/sse, transport: sse}\n";
    pair p;
    p.run = load(y);
    /* as the bridge leaves them: url replaced, the legacy one kept aside */
    gw_server_cfg *s = &p.run->servers[0], *l = &p.run->servers[1];
    s->url = strdup("http://127.0.0.1:1/secret/0");
    char *legacy = l->url;
    l->url = strdup("http://127.0.0.1:1/secret/1");
    l->written_url = legacy;
    p.next = load(y);
    config_diff(p.run, p.next, &p.d);
    assert_true(p.d.servers[0].kept);
    assert_true(p.d.servers[1].kept);
    config_diff_free(&p.d);
    config_free(p.next);

    p.next = load("servers:\n"
                  "  - {name: s, command: node, args: [srv.js, --y], env: {A: '1'}, prefix: s_}\n"
                  "  - {name: l, url: http://legacy2/sse, transport: sse}\n");
    config_diff(p.run, p.next, &p.d);
    assert_string_equal(p.d.servers[0].changed, "args, env");
    assert_string_equal(p.d.servers[1].changed, "url");
    config_diff_free(&p.d);
    config_free(p.next);

    p.next = load("servers:\n"
                  "  - {name: s, url: http://now-http/mcp, prefix: s_}\n"
                  "  - {name: l, url: http://legacy/sse}\n");
    config_diff(p.run, p.next, &p.d);
    assert_string_equal(p.d.servers[0].changed, "transport, command, args");
    assert_string_equal(p.d.servers[1].changed, "transport");
    config_diff_free(&p.d);
    config_free(p.next);
    free(legacy);
    config_free(p.run);
}

/* gatewayCACertPEM is part of every HTTP server's connection: all of them are replaced; stdio not. */
static void test_gateway_ca(void **state)
{
    (void)state;
    pair p;
    diff(&p, "servers:\n  - {name: a, url: https://a/mcp}\n  - {name: s, command: node}\n",
         "gatewayCACertPEM: \"-----BEGIN CERTIFICATE-----\"\n"
         "servers:\n  - {name: a, url: https://a/mcp}\n  - {name: s, command: node}\n");
    assert_true(p.d.servers[0].replaced);
    assert_string_equal(p.d.servers[0].changed, "gatewayCACertPEM");
    assert_true(p.d.servers[1].kept);
    done(&p);
}

/* After a reload the running config's own servers are listed by order; removed slots (even with
 * the same name) are never kept, and new slots follow every slot used so far. */
static void test_running_slots(void **state)
{
    (void)state;
    pair p;
    p.run = load("servers:\n"
                 "  - {name: a, url: http://old/mcp}\n"
                 "  - {name: b, url: http://b/mcp}\n"
                 "  - {name: c, url: http://a/mcp}\n");
    /* slot 0 (a, http://old) was replaced by slot 2: rename slot 2 to a, mark slot 0 removed */
    free(p.run->servers[2].name);
    p.run->servers[2].name = strdup("a");
    p.run->servers[0].removed = 1;
    size_t order[] = {2, 1};
    p.run->order = order;
    p.run->n_order = 2;
    p.next = load("servers:\n"
                  "  - {name: a, url: http://old/mcp}\n"   /* back to the old url: a new slot, never slot 0 */
                  "  - {name: b, url: http://b/mcp}\n");
    config_diff(p.run, p.next, &p.d);
    assert_true(p.d.servers[0].replaced);
    assert_int_equal(p.d.servers[0].old_slot, 2);
    assert_int_equal(p.d.servers[0].slot, 3);
    assert_true(p.d.servers[1].kept);
    assert_int_equal(p.d.servers[1].slot, 1);
    assert_int_equal(p.d.n_removed, 1);
    assert_int_equal(p.d.removed[0], 2);
    config_diff_describe(p.run, p.next, &p.d, p.desc, sizeof p.desc);
    assert_string_equal(p.desc, "replaced a (url)");
    p.run->order = NULL;
    done(&p);
}

static void test_vservers_and_authz(void **state)
{
    (void)state;
    pair p;
    diff(&p, two_servers,
         "servers:\n"
         "  - {name: a, url: http://a/mcp, prefix: a_}\n"
         "  - {name: b, url: http://b/mcp, prefix: b_, credential: Bearer b}\n"
         "virtualServers:\n  - {name: v, tools: [a_echo]}\n"
         "authorization:\n  mode: rules\n  rules:\n    - {effect: deny, servers: [b], tools: [x]}\n");
    assert_true(p.d.vservers_changed);
    assert_true(p.d.authz_changed);
    assert_string_equal(p.desc, "virtual servers (1); authorization");
    done(&p);

    static const char with[] = "servers:\n  - {name: b, url: http://b/mcp}\n"
                               "authorization:\n  mode: rules\n  rules:\n    - {effect: deny, servers: [b], tools: [x]}\n";
    diff(&p, with, with);
    assert_false(p.d.authz_changed);
    done(&p);
    diff(&p, with, "servers:\n  - {name: b, url: http://b/mcp}\n"
                   "authorization:\n  mode: rules\n  rules:\n    - {effect: deny, servers: [b], tools: [y]}\n");
    assert_true(p.d.authz_changed);
    done(&p);
    diff(&p, with, "servers:\n  - {name: b, url: http://b/mcp}\n");
    assert_string_equal(p.desc, "authorization (removed)");
    done(&p);
}

/* The auth blocks and the trusted-header key need a restart: reported, by name. */
static void test_restart(void **state)
{
    (void)state;
    pair p;
    diff(&p, two_servers,
         "oauthProtectedResource:\n  resource: https://gw.example/mcp\n"
         "authorization:\n  mode: roles\n  trustedHeaderPublicKey: \"-----BEGIN PUBLIC KEY-----\"\n");
    assert_string_equal(p.d.restart, "auth / oauthProtectedResource, authorization.trustedHeaderPublicKey");
    assert_int_equal(p.d.n_removed, 2);
    done(&p);
}

/* What reload keeps running: a deep copy, usable after the source is gone, equal for the diff. */
static void test_auth_copy(void **state)
{
    (void)state;
    static const char y[] = "oauthProtectedResource:\n  resource: https://gw.example/mcp\n"
                            "  authorizationServers: [https://idp/realms/a]\n  scopesSupported: [x, y]\n"
                            "auth:\n  audiences: [one, two]\n  requiredScopes: [x]\n  leewaySeconds: 5\n"
                            "  issuers:\n    - {issuerUrl: https://idp/realms/a, jwksUri: https://idp/jwks}\n";
    gw_config *src = load(y), *dst = load("servers: []\n"), *same = load(y);
    config_auth_copy(&dst->auth, &src->auth);
    config_free(src);
    cfgdiff d;
    config_diff(dst, same, &d);
    assert_string_equal(d.restart, "");
    assert_string_equal(dst->auth.resource, "https://gw.example/mcp");
    assert_int_equal(dst->auth.audiences.n, 2);
    assert_string_equal(dst->auth.issuers[0].jwks_uri, "https://idp/jwks");
    config_diff_free(&d);
    config_free(dst);
    config_free(same);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_change),
        cmocka_unit_test(test_added_and_reordered),
        cmocka_unit_test(test_in_place),
        cmocka_unit_test(test_replaced),
        cmocka_unit_test(test_removed),
        cmocka_unit_test(test_bridged),
        cmocka_unit_test(test_gateway_ca),
        cmocka_unit_test(test_running_slots),
        cmocka_unit_test(test_vservers_and_authz),
        cmocka_unit_test(test_restart),
        cmocka_unit_test(test_auth_copy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
