/* test_authz — the `authorization:` block: its YAML (errors with file:line), the rule compiler
 * and evaluator (globs, first match, default, claim conditions, the roles convention, the
 * insufficient_scope step-up), decisions without allocation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "authz.h"
#include "config.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

static const char servers_yaml[] =
    "servers:\n"
    "  - name: example/server1\n"
    "    url: http://127.0.0.1:9001/mcp\n"
    "    prefix: s1_\n"
    "  - name: example/server2\n"
    "    url: http://127.0.0.1:9002/mcp\n"
    "    prefix: s2_\n";

static gw_config *load(const char *authz_yaml, char *err, size_t errlen)
{
    gw_config *c = calloc(1, sizeof *c);
    assert_non_null(c);
    config_defaults(c);
    char yaml[8192];
    snprintf(yaml, sizeof yaml, "%s%s", servers_yaml, authz_yaml);
    err[0] = '\0';
    if (config_load_yaml(c, "t.yaml", yaml, strlen(yaml), err, errlen) != 0) {
        config_free(c);
        return NULL;
    }
    return c;
}

typedef struct fixture {
    gw_config     *cfg;
    authz_policy  *p;
} fixture;

static void setup_policy(fixture *f, const char *authz_yaml)
{
    char err[512];
    f->cfg = load(authz_yaml, err, sizeof err);
    if (!f->cfg) fail_msg("config: %s", err);
    f->p = authz_policy_new(f->cfg, "t.yaml", err, sizeof err);
    if (!f->p) fail_msg("policy: %s", err);
}

static void teardown_policy(fixture *f)
{
    authz_policy_free(f->p);
    config_free(f->cfg);
}

/* The decision for claims (JSON text, NULL = anonymous). */
static int decide(fixture *f, const char *claims, size_t server, enum cat_kind kind, const char *name, int method,
                  authz_result *r)
{
    json_t *c = claims ? json_loads(claims, 0, NULL) : NULL;
    if (claims && !c) fail_msg("bad claims JSON: %s", claims);
    authz_subject *s = authz_subject_new(f->p, c);
    int a = authz_eval(f->p, s, server, kind, name, method, r);
    authz_subject_free(s);
    json_decref(c);
    return a;
}

static int tool(fixture *f, const char *claims, size_t server, const char *name)
{
    authz_result r;
    return decide(f, claims, server, CAT_TOOLS, name, AUTHZ_TOOLS_CALL, &r);
}

static void expect_error(const char *authz_yaml, const char *want)
{
    char err[512];
    gw_config *c = load(authz_yaml, err, sizeof err);
    if (c) {
        config_free(c);
        fail_msg("loaded, expected error \"%s\"", want);
    }
    if (!strstr(err, want)) fail_msg("error \"%s\" does not contain \"%s\"", err, want);
}

/* ---- globs ---- */

static void test_glob(void **state)
{
    (void)state;
    assert_true(authz_glob_match("greet", "greet"));
    assert_false(authz_glob_match("greet", "greets"));
    assert_false(authz_glob_match("greet", "gree"));
    assert_true(authz_glob_match("*", ""));
    assert_true(authz_glob_match("*", "anything"));
    assert_true(authz_glob_match("**", "x"));
    assert_true(authz_glob_match("get_*", "get_"));
    assert_true(authz_glob_match("get_*", "get_user"));
    assert_false(authz_glob_match("get_*", "set_user"));
    assert_true(authz_glob_match("*_user", "get_user"));
    assert_false(authz_glob_match("*_user", "get_users"));
    assert_true(authz_glob_match("*lete*", "delete_all"));
    assert_true(authz_glob_match("a*b*c", "abc"));
    assert_true(authz_glob_match("a*b*c", "aXbYbZc"));
    assert_false(authz_glob_match("a*b*c", "aXcYb"));
    assert_false(authz_glob_match("a*a", "a"));          /* prefix and suffix do not overlap */
    assert_true(authz_glob_match("a*a", "aa"));
    assert_true(authz_glob_match("*.*", "file:///a.txt"));
    assert_true(authz_glob_match("file:///logs/*", "file:///logs/2025/01.txt"));
    assert_false(authz_glob_match("", "x"));
    assert_true(authz_glob_match("", ""));
    assert_true(authz_glob_match("x*y*y", "xyyy"));
    assert_true(authz_glob_match("x*yz*y", "xyzy"));
    assert_false(authz_glob_match("x*yz*z", "xyz"));    /* the middle run may not use the suffix's 'z' */
}

/* ---- the YAML block ---- */

static void test_yaml_block(void **state)
{
    (void)state;
    char err[512];
    gw_config *c = load("authorization:\n"
                        "  mode: rules+roles\n"
                        "  default: allow\n"
                        "  hideDenied: true\n"
                        "  audit: false\n"
                        "  rolePrefixes: {resource: \"res:\"}\n"
                        "  rules:\n"
                        "    - name: one\n"
                        "      effect: deny\n"
                        "      servers: example/server2\n"
                        "      tools: [\"del*\", drop]\n"
                        "      methods: [tools/call]\n"
                        "      when:\n"
                        "        groups: ops\n"
                        "        scopes: [a, b]\n"
                        "        claims:\n"
                        "          - {path: resource_access.x.roles, contains: admin}\n"
                        "          - {path: [\"https://example.com/tenant\"], equals: 42}\n"
                        "    - effect: allow\n",
                        err, sizeof err);
    if (!c) fail_msg("%s", err);
    const gw_authz_cfg *a = &c->authz;
    assert_true(a->on);
    assert_int_equal(a->mode, GW_AUTHZ_RULES | GW_AUTHZ_ROLES);
    assert_true(a->default_allow);
    assert_true(a->hide_denied);
    assert_false(a->audit);
    assert_string_equal(a->role_prefix[GW_AUTHZ_RESOURCE], "res:");
    assert_null(a->role_prefix[GW_AUTHZ_TOOL]);
    assert_int_equal(a->n_rules, 2);
    const gw_authz_rule_cfg *r = &a->rules[0];
    assert_string_equal(r->name, "one");
    assert_int_equal(r->line, 15);
    assert_int_equal(r->allow, 0);
    assert_int_equal(r->servers.n, 1);
    assert_string_equal(r->servers.v[0], "example/server2");
    assert_int_equal(r->server_lines[0], 17);
    assert_int_equal(r->kinds, 1u << GW_AUTHZ_TOOL);
    assert_int_equal(r->names[GW_AUTHZ_TOOL].n, 2);
    assert_int_equal(r->methods, 1u << AUTHZ_TOOLS_CALL);
    assert_int_equal(r->groups.n, 1);
    assert_int_equal(r->scopes.n, 2);
    assert_int_equal(r->n_claims, 2);
    assert_int_equal(r->claims[0].path.n, 3);
    assert_string_equal(r->claims[0].path.v[1], "x");
    assert_true(r->claims[0].contains);
    assert_int_equal(r->claims[1].path.n, 1);
    assert_string_equal(r->claims[1].path.v[0], "https://example.com/tenant");
    assert_string_equal(r->claims[1].value, "42");
    assert_null(a->rules[1].name);
    assert_int_equal(a->rules[1].allow, 1);
    config_free(c);

    /* no block: nothing on */
    c = load("", err, sizeof err);
    assert_non_null(c);
    assert_false(c->authz.on);
    config_free(c);
}

static void test_yaml_errors(void **state)
{
    (void)state;
    /* servers are listed above on lines 1..7 */
    expect_error("authorization:\n"                          /* 8 */
                 "  mode: rules\n"                           /* 9 */
                 "  rules:\n"                                /* 10 */
                 "    - effect: allow\n"                     /* 11 */
                 "      servers: [example/server1, nope]\n", /* 12 */
                 "t.yaml:12: rule '(unnamed)' names unknown server 'nope'");
    expect_error("authorization:\n"
                 "  mode: rules\n"
                 "  rules:\n"
                 "    - name: r\n"
                 "      effect: allow\n"
                 "      servers:\n"
                 "        - example/server1\n"
                 "        - example/server3\n",              /* 15 */
                 "t.yaml:15: rule 'r' names unknown server 'example/server3'");
    /* a rule naming a server that comes later in the file is fine */
    char err[512];
    gw_config *c = calloc(1, sizeof *c);
    config_defaults(c);
    static const char later[] = "authorization:\n  mode: rules\n  rules: [{effect: allow, servers: [a]}]\n"
                                "servers:\n  - name: a\n    url: http://x\n";
    assert_int_equal(config_load_yaml(c, "t.yaml", later, sizeof later - 1, err, sizeof err), 0);
    config_free(c);

    expect_error("authorization:\n  mode: rules\n  rules:\n    - tools: [x]\n", "t.yaml:11: rule has no 'effect'");
    expect_error("authorization:\n  mode: rules\n  rules:\n    - effect: permit\n", "t.yaml:11: 'effect' must be allow or deny");
    expect_error("authorization:\n  mode: rules\n  rules:\n    - effect: allow\n      methods: [tools/call, tools/list]\n",
                 "t.yaml:12: unknown method 'tools/list' in a rule");
    expect_error("authorization:\n  mode: everything\n", "t.yaml:9: 'mode' must be roles, rules or rules+roles");
    expect_error("authorization:\n  default: deny\n", "t.yaml:8: authorization has no 'mode'");
    expect_error("authorization:\n", "t.yaml:8: 'authorization' is empty");
    expect_error("authorization:\n  mode: roles\n  rules: [{effect: allow}]\n", "t.yaml:8: authorization has rules but");
    expect_error("authorization:\n  mode: rules\n  rules:\n    - effect: allow\n      when: {team: a}\n",
                 "t.yaml:12: unknown condition 'team'");
    expect_error("authorization:\n  mode: rules\n  rules:\n    - effect: allow\n      when:\n        claims: [{equals: x}]\n",
                 "t.yaml:13: claim condition has no 'path'");
    expect_error("authorization:\n  mode: rules\n  rules:\n    - effect: allow\n      when:\n        claims: [{path: a}]\n",
                 "t.yaml:13: claim condition needs 'equals' or 'contains'");
    expect_error("authorization:\n  mode: rules\n  rules:\n    - effect: allow\n      colour: red\n",
                 "t.yaml:12: unknown key 'colour' in a rule");
    expect_error("authorization:\n  mode: roles\n  deafult: allow\n", "t.yaml:10: unknown key 'deafult' in authorization");
    expect_error("authorization:\n  mode: roles\n  default: maybe\n", "t.yaml:10: 'default' must be allow or deny");
    expect_error("authorization:\n  mode: rules\n  rules:\n    - effect: allow\n      tools: {a: b}\n",
                 "t.yaml:12: 'tools' must be a string or a list of strings");
    expect_error("authorization:\n  mode: rules\n  rules:\n    - effect: allow\n      when: {scopes: [\"a b\"]}\n",
                 "t.yaml:12: scope 'a b' has a character");
}

/* ---- decisions ---- */

static void test_default_and_first_match(void **state)
{
    (void)state;
    fixture f;
    setup_policy(&f, "authorization:\n"
                     "  mode: rules\n"
                     "  rules:\n"
                     "    - {name: no-delete, effect: deny, tools: [\"delete_*\"]}\n"
                     "    - {name: all-s1, effect: allow, servers: [example/server1]}\n"
                     "    - {name: late-deny, effect: deny, servers: [example/server1], tools: [echo]}\n");
    authz_result r;
    assert_true(decide(&f, "{}", 0, CAT_TOOLS, "echo", AUTHZ_TOOLS_CALL, &r));
    assert_string_equal(r.rule, "all-s1");             /* first match wins: late-deny never decides */
    assert_null(r.scope);
    assert_false(decide(&f, "{}", 0, CAT_TOOLS, "delete_all", AUTHZ_TOOLS_CALL, &r));
    assert_string_equal(r.rule, "no-delete");          /* explicit deny before the broad allow */
    assert_false(decide(&f, "{}", 1, CAT_TOOLS, "echo", AUTHZ_TOOLS_CALL, &r));
    assert_string_equal(r.rule, "default");            /* default deny */
    assert_true(decide(&f, "{}", 0, CAT_PROMPTS, "summary", AUTHZ_PROMPTS_GET, &r)); /* no kind named: every kind */
    assert_true(decide(&f, NULL, 0, CAT_RESOURCES, "file:///a", AUTHZ_RESOURCES_READ, &r)); /* anonymous too */
    teardown_policy(&f);

    setup_policy(&f, "authorization:\n  mode: rules\n  default: allow\n"
                     "  rules: [{effect: deny, servers: [example/server2], prompts: [secret]}]\n");
    assert_true(decide(&f, "{}", 1, CAT_TOOLS, "secret", AUTHZ_TOOLS_CALL, &r));   /* a prompt rule: tools pass */
    assert_false(decide(&f, "{}", 1, CAT_PROMPTS, "secret", AUTHZ_PROMPTS_GET, &r));
    assert_false(decide(&f, "{}", 1, CAT_PROMPTS, "secret", AUTHZ_COMPLETE, &r));
    assert_true(decide(&f, "{}", 0, CAT_PROMPTS, "secret", AUTHZ_PROMPTS_GET, &r)); /* other server */
    assert_string_equal(r.rule, "default");
    teardown_policy(&f);

    /* methods narrow a rule; `tools: []` names none */
    setup_policy(&f, "authorization:\n  mode: rules\n"
                     "  rules:\n"
                     "    - {effect: allow, prompts: [\"*\"], methods: [completion/complete]}\n"
                     "    - {effect: allow, tools: []}\n"
                     "    - {effect: allow, resources: [\"file:///public/*\"]}\n");
    assert_true(decide(&f, "{}", 0, CAT_PROMPTS, "p", AUTHZ_COMPLETE, &r));
    assert_false(decide(&f, "{}", 0, CAT_PROMPTS, "p", AUTHZ_PROMPTS_GET, &r));
    assert_false(decide(&f, "{}", 0, CAT_TOOLS, "t", AUTHZ_TOOLS_CALL, &r));
    assert_true(decide(&f, "{}", 1, CAT_RESOURCES, "file:///public/a.txt", AUTHZ_RESOURCES_READ, &r));
    assert_true(decide(&f, "{}", 1, CAT_TEMPLATES, "file:///public/{name}", AUTHZ_RESOURCES_READ, &r));
    assert_false(decide(&f, "{}", 1, CAT_RESOURCES, "file:///private/a.txt", AUTHZ_RESOURCES_READ, &r));
    teardown_policy(&f);
}

static void test_conditions(void **state)
{
    (void)state;
    fixture f;
    setup_policy(&f, "authorization:\n  mode: rules\n"
                     "  rules:\n"
                     "    - {effect: allow, tools: [g], when: {groups: [accounting, finance]}}\n"
                     "    - {effect: allow, tools: [r], when: {realmRoles: admin}}\n"
                     "    - {effect: allow, tools: [s], when: {subject: [u1, u2]}}\n"
                     "    - {effect: allow, tools: [c], when: {clientId: mcp-cli}}\n"
                     "    - {effect: allow, tools: [sc], when: {scopes: [read, write]}}\n"
                     "    - effect: allow\n"
                     "      tools: [k]\n"
                     "      when:\n"
                     "        claims:\n"
                     "          - {path: [resource_access, example/server1, roles], contains: \"tool:greet\"}\n"
                     "          - {path: tenant.id, equals: 42}\n"
                     "    - {effect: allow, tools: [b], when: {claims: [{path: flags.beta, equals: true}]}}\n"
                     "    - {effect: allow, tools: [t], when: {claims: [{path: amr, contains: mfa}]}}\n"
                     "    - {effect: allow, tools: [two], when: {groups: ops, subject: u9}}\n");
    /* groups: any of; Keycloak's full path "/accounting" too */
    assert_true(tool(&f, "{\"groups\":[\"mcp-users\",\"accounting\"]}", 0, "g"));
    assert_true(tool(&f, "{\"groups\":[\"/finance\"]}", 0, "g"));
    assert_false(tool(&f, "{\"groups\":[\"engineering\"]}", 0, "g"));
    assert_false(tool(&f, "{\"groups\":\"accounting\"}", 0, "g"));   /* not an array */
    assert_false(tool(&f, NULL, 0, "g"));                             /* anonymous */
    /* realm roles */
    assert_true(tool(&f, "{\"realm_access\":{\"roles\":[\"x\",\"admin\"]}}", 0, "r"));
    assert_false(tool(&f, "{\"realm_access\":{\"roles\":[\"administrator\"]}}", 0, "r"));
    /* subject, client id (client_id, else azp) */
    assert_true(tool(&f, "{\"sub\":\"u2\"}", 0, "s"));
    assert_false(tool(&f, "{\"sub\":\"u3\"}", 0, "s"));
    assert_true(tool(&f, "{\"azp\":\"mcp-cli\"}", 0, "c"));
    assert_true(tool(&f, "{\"client_id\":\"mcp-cli\",\"azp\":\"other\"}", 0, "c"));
    assert_false(tool(&f, "{\"client_id\":\"other\",\"azp\":\"mcp-cli\"}", 0, "c"));
    /* scopes: all of, from scope (string or array) or scp */
    assert_true(tool(&f, "{\"scope\":\"openid read write\"}", 0, "sc"));
    assert_false(tool(&f, "{\"scope\":\"openid read\"}", 0, "sc"));
    assert_false(tool(&f, "{\"scope\":\"readwrite\"}", 0, "sc"));
    assert_true(tool(&f, "{\"scp\":[\"write\",\"read\"]}", 0, "sc"));
    assert_true(tool(&f, "{\"scp\":\"read write\"}", 0, "sc"));
    /* claims: paths with '/' in a key (list form), contains in an array, equals on a number */
    assert_true(tool(&f, "{\"resource_access\":{\"example/server1\":{\"roles\":[\"tool:greet\"]}},\"tenant\":{\"id\":42}}", 0, "k"));
    assert_false(tool(&f, "{\"resource_access\":{\"example/server1\":{\"roles\":[\"tool:greet\"]}},\"tenant\":{\"id\":43}}", 0, "k"));
    assert_false(tool(&f, "{\"resource_access\":{\"example/server1\":{\"roles\":[\"tool:echo\"]}},\"tenant\":{\"id\":42}}", 0, "k"));
    assert_true(tool(&f, "{\"resource_access\":{\"example/server1\":{\"roles\":[\"tool:greet\"]}},\"tenant\":{\"id\":\"42\"}}", 0, "k"));
    assert_true(tool(&f, "{\"flags\":{\"beta\":true}}", 0, "b"));
    assert_false(tool(&f, "{\"flags\":{\"beta\":\"yes\"}}", 0, "b"));
    assert_true(tool(&f, "{\"amr\":\"pwd mfa\"}", 0, "t"));   /* contains in a space-separated string */
    assert_false(tool(&f, "{\"amr\":\"pwd mfa2\"}", 0, "t"));
    /* every condition of a rule must hold */
    assert_true(tool(&f, "{\"groups\":[\"ops\"],\"sub\":\"u9\"}", 0, "two"));
    assert_false(tool(&f, "{\"groups\":[\"ops\"],\"sub\":\"u8\"}", 0, "two"));
    teardown_policy(&f);
}

static void test_roles(void **state)
{
    (void)state;
    fixture f;
    static const char claims[] =
        "{\"resource_access\":{\"example/server1\":{\"roles\":[\"tool:greet\",\"prompt:summary\","
        "\"resource:file:///a.txt\",\"resource:file:///logs/{day}\"]},"
        "\"example/server2\":{\"roles\":[\"tool:add\"]},\"account\":{\"roles\":[\"tool:echo\"]}}}";
    setup_policy(&f, "authorization:\n  mode: roles\n");
    authz_result r;
    assert_true(decide(&f, claims, 0, CAT_TOOLS, "greet", AUTHZ_TOOLS_CALL, &r));
    assert_string_equal(r.rule, "roles");
    assert_false(decide(&f, claims, 1, CAT_TOOLS, "greet", AUTHZ_TOOLS_CALL, &r));   /* roles are per server */
    assert_string_equal(r.rule, "default");
    assert_null(r.scope);                                                           /* no scope fixes a role */
    assert_true(tool(&f, claims, 1, "add"));
    assert_false(tool(&f, claims, 0, "echo"));
    assert_false(tool(&f, claims, 0, "summary"));                                   /* prompt: is not tool: */
    assert_true(decide(&f, claims, 0, CAT_PROMPTS, "summary", AUTHZ_PROMPTS_GET, &r));
    assert_true(decide(&f, claims, 0, CAT_RESOURCES, "file:///a.txt", AUTHZ_RESOURCES_READ, &r));
    assert_false(decide(&f, claims, 0, CAT_RESOURCES, "file:///b.txt", AUTHZ_RESOURCES_READ, &r));
    assert_true(decide(&f, claims, 0, CAT_TEMPLATES, "file:///logs/{day}", AUTHZ_RESOURCES_READ, &r));
    assert_true(decide(&f, claims, 0, CAT_RESOURCES, "file:///logs/2025-01-01", AUTHZ_RESOURCES_READ, &r));
    assert_false(tool(&f, NULL, 0, "greet"));
    assert_false(tool(&f, "{\"resource_access\":[]}", 0, "greet"));
    teardown_policy(&f);

    /* rules first, then roles, then the default; and other prefixes */
    setup_policy(&f, "authorization:\n  mode: rules+roles\n  default: allow\n"
                     "  rolePrefixes: {tool: \"mcp-tool-\"}\n"
                     "  rules: [{effect: deny, tools: [greet], when: {groups: [interns]}}]\n");
    assert_false(tool(&f, "{\"groups\":[\"interns\"],\"resource_access\":{\"example/server1\":{\"roles\":[\"mcp-tool-greet\"]}}}", 0, "greet"));
    assert_true(decide(&f, "{\"resource_access\":{\"example/server1\":{\"roles\":[\"mcp-tool-greet\"]}}}", 0, CAT_TOOLS,
                       "greet", AUTHZ_TOOLS_CALL, &r));
    assert_string_equal(r.rule, "roles");
    assert_true(decide(&f, "{}", 0, CAT_TOOLS, "greet", AUTHZ_TOOLS_CALL, &r));
    assert_string_equal(r.rule, "default");
    teardown_policy(&f);
}

static void test_step_up_scope(void **state)
{
    (void)state;
    fixture f;
    setup_policy(&f, "auth:\n  requiredScopes: [basic]\n"
                     "authorization:\n  mode: rules+roles\n"
                     "  rules:\n"
                     "    - {name: interns, effect: deny, tools: [wipe], when: {groups: interns}}\n"
                     "    - {name: writers, effect: allow, tools: [add, wipe], when: {scopes: [tools:write, basic]}}\n"
                     "    - {name: eng, effect: allow, tools: [deploy], when: {scopes: [deploy], groups: [eng]}}\n");
    authz_result r;
    /* a scope would allow it: the challenge names the rule's scopes and the required ones */
    assert_false(decide(&f, "{\"scope\":\"basic\"}", 0, CAT_TOOLS, "add", AUTHZ_TOOLS_CALL, &r));
    assert_string_equal(r.rule, "default");
    assert_non_null(r.scope);
    assert_string_equal(r.scope, "tools:write basic");
    assert_true(decide(&f, "{\"scope\":\"basic tools:write\"}", 0, CAT_TOOLS, "add", AUTHZ_TOOLS_CALL, &r));
    assert_null(r.scope);
    /* an explicit deny first: no scope helps */
    assert_false(decide(&f, "{\"scope\":\"basic\",\"groups\":[\"interns\"]}", 0, CAT_TOOLS, "wipe", AUTHZ_TOOLS_CALL, &r));
    assert_string_equal(r.rule, "interns");
    assert_null(r.scope);
    /* a scope and a group: without the group no scope helps; with it, the scope does */
    assert_false(decide(&f, "{\"scope\":\"basic\"}", 0, CAT_TOOLS, "deploy", AUTHZ_TOOLS_CALL, &r));
    assert_null(r.scope);
    assert_false(decide(&f, "{\"scope\":\"basic\",\"groups\":[\"eng\"]}", 0, CAT_TOOLS, "deploy", AUTHZ_TOOLS_CALL, &r));
    assert_string_equal(r.scope, "deploy basic");
    /* roles decide where no rule matched; a role denial carries no scope */
    assert_false(decide(&f, "{\"scope\":\"basic\"}", 0, CAT_TOOLS, "other", AUTHZ_TOOLS_CALL, &r));
    assert_null(r.scope);
    teardown_policy(&f);
}

/* No policy: everything allowed (the gateway as before the block existed). */
static void test_no_policy(void **state)
{
    (void)state;
    char err[256];
    gw_config *c = load("", err, sizeof err);
    assert_non_null(c);
    assert_null(authz_policy_new(c, "t.yaml", err, sizeof err));
    assert_int_equal(authz_validate(c, err, sizeof err), 0);
    authz_result r;
    authz_subject *s = authz_subject_new(NULL, NULL);
    assert_true(authz_eval(NULL, s, 0, CAT_TOOLS, "x", AUTHZ_TOOLS_CALL, &r));
    authz_subject_free(s);
    config_free(c);
}

static void test_trusted_key(void **state)
{
    (void)state;
    char err[256];
    gw_config *c = load("authorization:\n  mode: roles\n  trustedHeaderPublicKey: nope\n", err, sizeof err);
    assert_non_null(c);
    assert_int_equal(authz_validate(c, err, sizeof err), -1);
    assert_non_null(strstr(err, "TRUSTED_HEADER_PUBLIC_KEY"));
    free(c->authz.trusted_key);
    /* a P-256 key is accepted; an RSA key is not */
    c->authz.trusted_key = strdup("-----BEGIN PUBLIC KEY-----\n"
                                  "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEcKjYh+w5N0JF98v2ccR2vtj3470D\n"
                                  "AVg+WlMnFUf/SPF6ryiRvsZjyk8RVjj9VVI59aiILewrs2xkEiwYOqDE6g==\n"
                                  "-----END PUBLIC KEY-----\n");
    assert_int_equal(authz_validate(c, err, sizeof err), 0);
    free(c->authz.trusted_key);
    c->authz.trusted_key = strdup("-----BEGIN PUBLIC KEY-----\n"
                                  "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC+K85HVC5XIFPobH6eKDiwNImx\n"
                                  "Hfjku5xYIsFvnJ21iYdTR45BJ6tO8zbpD/GIgijUCbKhqa25+Vzx4IIZsIrWN2US\n"
                                  "aZTvxkCj1nfzFGNgasFWZYZDxA8ivshAtWNGAslXzHisrBdTs+h5JWzSCiuLo+xV\n"
                                  "YYiqcugW0ufjawC/FwIDAQAB\n"
                                  "-----END PUBLIC KEY-----\n");
    assert_int_equal(authz_validate(c, err, sizeof err), -1);
    assert_non_null(strstr(err, "P-256"));
    config_free(c);
}

static void test_methods(void **state)
{
    (void)state;
    assert_int_equal(authz_method_id("tools/call"), AUTHZ_TOOLS_CALL);
    assert_int_equal(authz_method_id("completion/complete"), AUTHZ_COMPLETE);
    assert_int_equal(authz_method_id("tools/list"), -1);
    for (int i = 0; i < AUTHZ_METHODS; i++) assert_int_equal(authz_method_id(authz_method_name(i)), i);
}

/* Many rules: the decision is still a walk over compiled rules (a smoke test of size, not a benchmark). */
static void test_many_rules(void **state)
{
    (void)state;
    char yaml[16384];
    size_t n = (size_t)snprintf(yaml, sizeof yaml, "authorization:\n  mode: rules\n  rules:\n");
    for (int i = 0; i < 50; i++)
        n += (size_t)snprintf(yaml + n, sizeof yaml - n,
                              "    - {effect: %s, servers: [example/server%d], tools: [\"t%d_*\"], when: {groups: [g%d]}}\n",
                              i % 5 ? "allow" : "deny", 1 + i % 2, i, i % 7);
    fixture f;
    setup_policy(&f, yaml);
    json_t *claims = json_loads("{\"groups\":[\"g3\",\"g4\"]}", 0, NULL);
    authz_subject *s = authz_subject_new(f.p, claims);
    authz_result r;
    int allowed = 0;
    for (int i = 0; i < 50; i++) {
        char name[32];
        snprintf(name, sizeof name, "t%d_x", i);
        allowed += authz_eval(f.p, s, (size_t)(i % 2), CAT_TOOLS, name, AUTHZ_TOOLS_CALL, &r);
    }
    /* rules with groups g3/g4 (i % 7 in {3,4}) that allow (i % 5 != 0) */
    int want = 0;
    for (int i = 0; i < 50; i++) want += (i % 7 == 3 || i % 7 == 4) && i % 5;
    assert_int_equal(allowed, want);
    authz_subject_free(s);
    json_decref(claims);
    teardown_policy(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_glob),
        cmocka_unit_test(test_yaml_block),
        cmocka_unit_test(test_yaml_errors),
        cmocka_unit_test(test_default_and_first_match),
        cmocka_unit_test(test_conditions),
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_step_up_scope),
        cmocka_unit_test(test_no_policy),
        cmocka_unit_test(test_trusted_key),
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_many_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
