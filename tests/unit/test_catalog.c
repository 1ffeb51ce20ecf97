/* catalog — federated tool names, conflicts, the tools/list result, virtual servers,
 * and the published snapshot's reference counting. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "catalog.h"
#include "config.h"
#include "log.h"

static json_t *jparse(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, 0, &e);
    if (!j) fail_msg("bad test JSON: %s: %s", e.text, s);
    return j;
}

/* Conflicts are logged as warnings: keep the test output clean. */
static int quiet_setup(void **state)
{
    (void)state;
    log_setup(LOG_ERROR + 1, 0);
    return 0;
}

/* Names in tools_result, in order, joined by ','. */
static void result_names(const char *res, size_t len, char *out, size_t cap)
{
    json_error_t e;
    json_t *j = json_loadb(res, len, 0, &e);
    assert_non_null(j);
    assert_true(json_is_object(j));
    assert_int_equal(json_object_size(j), 1);
    json_t *arr = json_object_get(j, "tools");
    assert_true(json_is_array(arr));
    out[0] = '\0';
    size_t i;
    json_t *t;
    json_array_foreach(arr, i, t) {
        const char *n = json_string_value(json_object_get(t, "name"));
        assert_non_null(n);
        if (i) strncat(out, ",", cap - strlen(out) - 1);
        strncat(out, n, cap - strlen(out) - 1);
    }
    json_decref(j);
}

static void names_prefixes_lookup(void **state)
{
    (void)state;
    json_t *t1 = jparse("[{\"name\":\"greet\",\"inputSchema\":{\"type\":\"object\"}},"
                        " {\"name\":\"add\",\"inputSchema\":{\"type\":\"object\"}}]");
    json_t *t2 = jparse("[{\"name\":\"hello_world\",\"inputSchema\":{\"type\":\"object\"}},"
                        " {\"name\":\"greet\",\"inputSchema\":{\"type\":\"object\"}}]");
    json_t *t3 = jparse("[{\"name\":\"plain\",\"inputSchema\":{}}]");
    cat_input in[] = {
        {.name = "ns/s1", .prefix = "s1_", .ready = 1, .message = "ok", .last_validated = 111, .tools = t1},
        {.name = "ns/s2", .prefix = "s2-", .ready = 1, .message = NULL, .tools = t2},
        {.name = "ns/s3", .prefix = "", .ready = 1, .tools = t3},
        {.name = "ns/s4", .prefix = NULL, .ready = 1, .tools = NULL},   /* ready, no list */
    };
    catalog *c = catalog_build(NULL, in, 4);
    assert_non_null(c);
    assert_int_equal(c->refs, 1);
    assert_int_equal(c->n_servers, 4);
    assert_string_equal(c->servers[0].name, "ns/s1");
    assert_string_equal(c->servers[0].message, "ok");
    assert_int_equal(c->servers[0].last_validated, 111);
    assert_int_equal(c->servers[0].ready, 1);
    assert_int_equal(c->servers[0].n_tools, 2);
    assert_string_equal(c->servers[1].message, "");   /* NULL message → "" */
    assert_int_equal(c->servers[1].n_tools, 2);
    assert_int_equal(c->servers[2].n_tools, 1);
    assert_int_equal(c->servers[3].n_tools, 0);
    assert_int_equal(c->n_conflicts, 0);

    /* sorted by federated name (bytewise) */
    assert_int_equal(c->n_tools, 5);
    const char *want[] = {"plain", "s1_add", "s1_greet", "s2-greet", "s2-hello_world"};
    for (size_t i = 0; i < 5; i++) assert_string_equal(c->tools[i].fed_name, want[i]);

    const cat_tool *ct = catalog_find_tool(c, "s1_greet");
    assert_non_null(ct);
    assert_int_equal(ct->server, 0);
    assert_string_equal(ct->up_name, "greet");
    ct = catalog_find_tool(c, "s2-greet");
    assert_non_null(ct);
    assert_int_equal(ct->server, 1);
    assert_string_equal(ct->up_name, "greet");
    ct = catalog_find_tool(c, "s2-hello_world");
    assert_non_null(ct);
    assert_string_equal(ct->up_name, "hello_world");
    ct = catalog_find_tool(c, "plain");
    assert_non_null(ct);
    assert_int_equal(ct->server, 2);
    assert_string_equal(ct->up_name, "plain");
    assert_null(catalog_find_tool(c, "greet"));      /* only under its prefix */
    assert_null(catalog_find_tool(c, "s1_"));
    assert_null(catalog_find_tool(c, ""));
    assert_null(catalog_find_tool(c, "S1_greet"));   /* case-sensitive */

    char names[512];
    result_names(c->tools_result, c->tools_result_len, names, sizeof names);
    assert_string_equal(names, "plain,s1_add,s1_greet,s2-greet,s2-hello_world");
    assert_int_equal(strlen(c->tools_result), c->tools_result_len);
    /* no virtual servers without a config */
    assert_int_equal(c->n_vs, 0);
    assert_null(catalog_vs_result(c, "anything", NULL));

    /* the input is borrowed and left untouched */
    assert_string_equal(json_string_value(json_object_get(json_array_get(t1, 0), "name")), "greet");
    catalog_unref(c);
    /* the input stays usable after the catalog is gone */
    assert_int_equal(json_array_size(t1), 2);
    json_decref(t1);
    json_decref(t2);
    json_decref(t3);
}

static void conflicts_later_loses(void **state)
{
    (void)state;
    json_t *a = jparse("[{\"name\":\"x_tool\",\"description\":\"from A\"},{\"name\":\"only_a\"}]");
    json_t *b = jparse("[{\"name\":\"tool\",\"description\":\"from B\"},{\"name\":\"only_b\"}]");
    json_t *d = jparse("[{\"name\":\"dup\"},{\"name\":\"dup\",\"description\":\"second\"}]");
    /* A: "x_tool" plain; B: prefix "x_" + "tool" → also "x_tool"; B is later and loses */
    cat_input in[] = {
        {.name = "A", .prefix = "", .ready = 1, .tools = a},
        {.name = "B", .prefix = "x_", .ready = 1, .tools = b},
        {.name = "D", .prefix = "d_", .ready = 1, .tools = d},
    };
    catalog *c = catalog_build(NULL, in, 3);
    assert_non_null(c);
    const cat_tool *ct = catalog_find_tool(c, "x_tool");
    assert_non_null(ct);
    assert_int_equal(ct->server, 0);
    assert_string_equal(ct->up_name, "x_tool");
    assert_non_null(catalog_find_tool(c, "x_only_b"));
    assert_non_null(catalog_find_tool(c, "only_a"));
    assert_non_null(catalog_find_tool(c, "d_dup"));
    assert_int_equal(c->n_tools, 4);   /* x_tool, only_a, x_only_b, d_dup */
    /* the servers' own counts are before conflicts */
    assert_int_equal(c->servers[1].n_tools, 2);
    assert_int_equal(c->servers[2].n_tools, 2);

    assert_int_equal(c->n_conflicts, 2);
    assert_non_null(strstr(c->conflicts[0], "x_tool"));
    assert_non_null(strstr(c->conflicts[0], "B"));
    assert_non_null(strstr(c->conflicts[0], "A"));
    assert_true(strstr(c->conflicts[0], "B") < strstr(c->conflicts[0], "server A"));   /* B is the one dropped */
    assert_non_null(strstr(c->conflicts[1], "d_dup"));

    /* the winner's object is the one published */
    json_t *r = json_loadb(c->tools_result, c->tools_result_len, 0, NULL);
    assert_non_null(r);
    size_t i;
    json_t *t;
    int seen = 0;
    json_array_foreach(json_object_get(r, "tools"), i, t) {
        const char *n = json_string_value(json_object_get(t, "name"));
        if (strcmp(n, "x_tool") == 0) {
            assert_string_equal(json_string_value(json_object_get(t, "description")), "from A");
            seen++;
        }
        if (strcmp(n, "d_dup") == 0) {
            assert_null(json_object_get(t, "description"));   /* the first one of D */
            seen++;
        }
    }
    assert_int_equal(seen, 2);
    json_decref(r);
    catalog_unref(c);

    /* swapping the input order swaps the winner */
    cat_input in2[] = {in[1], in[0]};
    c = catalog_build(NULL, in2, 2);
    ct = catalog_find_tool(c, "x_tool");
    assert_non_null(ct);
    assert_int_equal(ct->server, 0);           /* index into this input: B */
    assert_string_equal(ct->up_name, "tool");
    assert_int_equal(c->n_conflicts, 1);
    catalog_unref(c);
    json_decref(a);
    json_decref(b);
    json_decref(d);
}

static void not_ready_contributes_nothing(void **state)
{
    (void)state;
    json_t *a = jparse("[{\"name\":\"t\"}]");
    json_t *b = jparse("[{\"name\":\"t\"},{\"name\":\"u\"}]");
    cat_input in[] = {
        {.name = "down", .prefix = "", .ready = 0, .message = "connection refused", .tools = b},
        {.name = "up", .prefix = "", .ready = 1, .message = "ready", .tools = a},
    };
    catalog *c = catalog_build(NULL, in, 2);
    assert_int_equal(c->n_servers, 2);
    assert_int_equal(c->servers[0].ready, 0);
    assert_string_equal(c->servers[0].message, "connection refused");
    assert_int_equal(c->servers[0].n_tools, 0);
    assert_int_equal(c->n_tools, 1);
    const cat_tool *ct = catalog_find_tool(c, "t");
    assert_non_null(ct);
    assert_int_equal(ct->server, 1);           /* no conflict with a server that is down */
    assert_null(catalog_find_tool(c, "u"));
    assert_int_equal(c->n_conflicts, 0);
    assert_string_equal(c->tools_result, "{\"tools\":[{\"name\":\"t\"}]}");
    catalog_unref(c);

    /* nothing ready at all; and no servers at all */
    in[1].ready = 0;
    c = catalog_build(NULL, in, 2);
    assert_int_equal(c->n_tools, 0);
    assert_string_equal(c->tools_result, "{\"tools\":[]}");
    assert_int_equal(c->tools_result_len, strlen("{\"tools\":[]}"));
    assert_null(catalog_find_tool(c, "t"));
    catalog_unref(c);
    c = catalog_build(NULL, NULL, 0);
    assert_non_null(c);
    assert_int_equal(c->n_servers, 0);
    assert_string_equal(c->tools_result, "{\"tools\":[]}");
    assert_null(catalog_find_tool(c, "t"));
    catalog_unref(c);
    catalog_unref(NULL);
    json_decref(a);
    json_decref(b);
}

static void tool_objects_passed_through(void **state)
{
    (void)state;
    const char *src =
        "[{\"name\":\"weather\",\"title\":\"Weather\",\"description\":\"d\","
        "\"inputSchema\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]},"
        "\"outputSchema\":{\"type\":\"object\",\"properties\":{\"t\":{\"type\":\"number\"}}},"
        "\"annotations\":{\"readOnlyHint\":true,\"title\":\"W\"},"
        "\"_meta\":{\"vendor/x\":{\"n\":[1,2,null]},\"ü\":\"\\u0001\"},"
        "\"x-extra\":42},"
        " {\"inputSchema\":{},\"name\":\"second\"},"
        " {\"description\":\"no name: skipped\"},"
        " {\"name\":7}]";
    json_t *tools = jparse(src);
    cat_input in[] = {{.name = "s", .prefix = "p_", .ready = 1, .tools = tools}};
    catalog *c = catalog_build(NULL, in, 1);
    assert_int_equal(c->n_tools, 2);   /* nameless and non-string names are skipped */

    json_t *res = json_loadb(c->tools_result, c->tools_result_len, 0, NULL);
    assert_non_null(res);
    json_t *arr = json_object_get(res, "tools");
    assert_int_equal(json_array_size(arr), 2);
    /* each equals its input but for the name */
    json_t *want0 = json_deep_copy(json_array_get(tools, 0));
    json_object_set_new(want0, "name", json_string("p_weather"));
    json_t *want1 = json_deep_copy(json_array_get(tools, 1));
    json_object_set_new(want1, "name", json_string("p_second"));
    assert_true(json_equal(json_array_get(arr, 0), want1));   /* sorted: p_second < p_weather */
    assert_true(json_equal(json_array_get(arr, 1), want0));
    json_decref(want0);
    json_decref(want1);
    json_decref(res);
    /* key order is kept, the name replaced in place */
    assert_non_null(strstr(c->tools_result, "{\"inputSchema\":{},\"name\":\"p_second\"}"));
    assert_non_null(strstr(c->tools_result, "{\"name\":\"p_weather\",\"title\":\"Weather\",\"description\":\"d\","));
    assert_string_equal(json_string_value(json_object_get(json_array_get(tools, 0), "name")), "weather");
    catalog_unref(c);
    json_decref(tools);
}

static const char vs_yaml[] =
    "servers:\n"
    "  - name: ns/s1\n"
    "    url: http://127.0.0.1:1/mcp\n"
    "    prefix: s1_\n"
    "  - name: ns/s2\n"
    "    url: http://127.0.0.1:2/mcp\n"
    "    prefix: s2_\n"
    "virtualServers:\n"
    "  - name: ns/dev\n"
    "    tools: [s2_b, s1_a, s1_gone]\n"
    "  - name: ns/none\n"
    "    tools: []\n"
    "  - name: ns/all\n"
    "    prompts: [x]\n";

static void virtual_servers(void **state)
{
    (void)state;
    gw_config *cfg = calloc(1, sizeof *cfg);
    assert_non_null(cfg);
    config_defaults(cfg);
    char err[256];
    assert_int_equal(config_load_yaml(cfg, "vs.yaml", vs_yaml, strlen(vs_yaml), err, sizeof err), 0);
    assert_int_equal(cfg->n_vservers, 3);

    json_t *t1 = jparse("[{\"name\":\"a\"},{\"name\":\"c\"}]");
    json_t *t2 = jparse("[{\"name\":\"b\"}]");
    cat_input in[] = {
        {.name = "ns/s1", .prefix = "s1_", .ready = 1, .tools = t1},
        {.name = "ns/s2", .prefix = "s2_", .ready = 1, .tools = t2},
    };
    catalog *c = catalog_build(cfg, in, 2);
    assert_int_equal(c->n_vs, 3);
    size_t len = 0;
    const char *r = catalog_vs_result(c, "ns/dev", &len);
    assert_non_null(r);
    assert_int_equal(len, strlen(r));
    /* the catalog's order (sorted), not the list's; unknown names are ignored */
    assert_string_equal(r, "{\"tools\":[{\"name\":\"s1_a\"},{\"name\":\"s2_b\"}]}");
    r = catalog_vs_result(c, "ns/none", &len);
    assert_non_null(r);
    assert_string_equal(r, "{\"tools\":[]}");
    assert_int_equal(len, 12);
    r = catalog_vs_result(c, "ns/all", NULL);   /* tools omitted = all */
    assert_non_null(r);
    assert_string_equal(r, c->tools_result);
    assert_string_equal(r, "{\"tools\":[{\"name\":\"s1_a\"},{\"name\":\"s1_c\"},{\"name\":\"s2_b\"}]}");
    assert_null(catalog_vs_result(c, "ns/unknown", &len));
    assert_null(catalog_vs_result(c, "ns/de", &len));
    catalog_unref(c);

    /* by hand: a virtual server whose tool's server is down */
    gw_vserver_cfg vs = {.name = "hand", .tools = (char *[]){"s2_b"}, .n_tools = 1, .tools_set = 1};
    gw_config cfg2 = *cfg;
    cfg2.vservers = &vs;
    cfg2.n_vservers = 1;
    in[1].ready = 0;
    c = catalog_build(&cfg2, in, 2);
    assert_string_equal(catalog_vs_result(c, "hand", NULL), "{\"tools\":[]}");
    catalog_unref(c);

    config_free(cfg);
    json_decref(t1);
    json_decref(t2);
}

static void versions_increase(void **state)
{
    (void)state;
    catalog *a = catalog_build(NULL, NULL, 0);
    catalog *b = catalog_build(NULL, NULL, 0);
    assert_true(b->version > a->version);
    catalog_unref(a);
    catalog_unref(b);
}

static void publish_acquire_refcounts(void **state)
{
    (void)state;
    json_t *t = jparse("[{\"name\":\"t\"}]");
    cat_input in[] = {{.name = "s", .prefix = "", .ready = 1, .tools = t}};
    catalog *c1 = catalog_build(NULL, in, 1);
    catalog_publish(c1);                      /* takes the build's reference */
    assert_int_equal(c1->refs, 1);
    catalog *h1 = catalog_acquire();
    assert_ptr_equal(h1, c1);
    assert_int_equal(c1->refs, 2);
    catalog *h2 = catalog_acquire();
    assert_ptr_equal(h2, c1);
    assert_int_equal(c1->refs, 3);
    catalog_unref(h2);
    assert_int_equal(c1->refs, 2);

    /* a new snapshot: holders keep the old one alive until they let go */
    in[0].prefix = "v2_";
    catalog *c2 = catalog_build(NULL, in, 1);
    catalog_publish(c2);
    assert_int_equal(c1->refs, 1);            /* only h1 now */
    assert_non_null(catalog_find_tool(h1, "t"));
    assert_string_equal(h1->tools_result, "{\"tools\":[{\"name\":\"t\"}]}");
    catalog *h3 = catalog_acquire();
    assert_ptr_equal(h3, c2);
    assert_non_null(catalog_find_tool(h3, "v2_t"));
    catalog_ref(h3);
    assert_int_equal(c2->refs, 3);
    catalog_unref(h3);
    catalog_unref(h3);
    assert_int_equal(c2->refs, 1);
    catalog_unref(h1);                        /* c1 freed here (valgrind checks) */

    /* publishing NULL drops the last snapshot (c2 freed) */
    catalog_publish(NULL);
    assert_null(catalog_acquire());
    json_decref(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names_prefixes_lookup),
        cmocka_unit_test(conflicts_later_loses),
        cmocka_unit_test(not_ready_contributes_nothing),
        cmocka_unit_test(tool_objects_passed_through),
        cmocka_unit_test(virtual_servers),
        cmocka_unit_test(versions_increase),
        cmocka_unit_test(publish_acquire_refcounts),
    };
    return cmocka_run_group_tests_name("catalog", tests, quiet_setup, NULL);
}
