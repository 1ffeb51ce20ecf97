/* trace: W3C traceparent parsing (strict), request ids, tracestate, the request context the
 * router builds and what upstream requests carry when tracing is off; reqstats' labels. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <llhttp.h>
#include "gateway.h"
#include "reqstats.h"
#include "trace.h"

#define TP_OK "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static void traceparent_valid(void **state)
{
    trace_parent p;
    assert_int_equal(trace_parse_traceparent(TP_OK, &p), 0);
    static const uint8_t tid[16] = {0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
                                    0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36};
    static const uint8_t sid[8] = {0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7};
    assert_memory_equal(p.trace_id, tid, 16);
    assert_memory_equal(p.span_id, sid, 8);
    assert_int_equal(p.flags, 1);
    assert_int_equal(trace_parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", &p), 0);
    assert_int_equal(p.flags, 0);
    /* unknown flags of version 00 are kept (passed on as they came) */
    assert_int_equal(trace_parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09", &p), 0);
    assert_int_equal(p.flags, 9);
    /* a later version: the four fields, more after a dash; only the sampled flag is known */
    assert_int_equal(trace_parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03", &p), 0);
    assert_int_equal(p.flags, 1);
    assert_int_equal(trace_parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds", &p), 0);
    assert_memory_equal(p.trace_id, tid, 16);
}

static void traceparent_invalid(void **state)
{
    static const char *const bad[] = {
        "",
        "00",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",            /* no flags */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",          /* short flags */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",         /* upper case */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
        "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",         /* forbidden version */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",         /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",         /* zero span id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",   /* version 00 is exactly 55 */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",
        " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",        /* later version: a dash must follow */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",         /* separators */
        "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
        "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",         /* field lengths */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-701",
        "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01",         /* not hex */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902g7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-g1",
        "-0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        trace_parent p;
        memset(&p, 0x5a, sizeof p);
        if (trace_parse_traceparent(bad[i], &p) != -1) fail_msg("accepted: '%s'", bad[i]);
    }
}

static void request_ids(void **state)
{
    assert_true(trace_request_id_ok("a"));
    assert_true(trace_request_id_ok("req-42_A.b"));
    char id[80];
    memset(id, 'x', 64);
    id[64] = '\0';
    assert_true(trace_request_id_ok(id));
    id[64] = 'x';
    id[65] = '\0';
    assert_false(trace_request_id_ok(id));   /* 65 */
    static const char *const bad[] = {"", "a b", "a/b", "a\"b", "a:b", "é", "a\tb", "a,b", "<x>"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (trace_request_id_ok(bad[i])) fail_msg("accepted request id '%s'", bad[i]);
}

static void tracestate(void **state)
{
    assert_true(trace_tracestate_ok("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"));
    char s[600];
    memset(s, 'a', 512);
    s[512] = '\0';
    assert_true(trace_tracestate_ok(s));
    s[512] = 'a';
    s[513] = '\0';
    assert_false(trace_tracestate_ok(s));
    assert_false(trace_tracestate_ok(""));
    assert_false(trace_tracestate_ok("a=b\tc"));
    assert_false(trace_tracestate_ok("a=\x7f"));
}

static void hex(void **state)
{
    const uint8_t b[3] = {0x00, 0xab, 0xff};
    char out[7];
    trace_hex(b, 3, out);
    assert_string_equal(out, "00abff");
}

/* ---- the router's context, tracing off -------------------------------------------------------- */

typedef struct fake {
    http_req    req;
    http_header h[8];
    worker      w;
} fake;

static void fake_init(fake *f, const char *const (*hv)[2], size_t n)
{
    memset(f, 0, sizeof *f);
    for (size_t i = 0; i < n; i++) {
        f->h[i].name = hv[i][0];
        f->h[i].name_len = strlen(hv[i][0]);
        f->h[i].value = hv[i][1];
        f->h[i].value_len = strlen(hv[i][1]);
    }
    f->req.headers = f->h;
    f->req.n_headers = n;
    f->req.path = "/mcp";
    f->req.method = HTTP_POST;
}

static int is_hex32(const char *s)
{
    if (strlen(s) != 32) return 0;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'))) return 0;
    return 1;
}

static void request_context(void **state)
{
    fake f;
    /* nothing sent: a fresh id of 32 hex digits, nothing to propagate */
    fake_init(&f, NULL, 0);
    log_req prev = trace_req_begin(&f.w, &f.req, 1);
    log_request(prev.id, prev.trace_id);
    assert_true(is_hex32(f.req.tr.id));
    assert_false(f.req.tr.has_parent);
    trace_call c = {0};
    up_req u = {0};
    trace_call_start(&c, &f.w, &f.req, 0);
    trace_call_send(&c, &u, "initialize", NULL);
    assert_string_equal(u.request_id, f.req.tr.id);
    assert_null(u.traceparent);
    assert_null(u.tracestate);
    trace_call_end(&c, 200);

    /* a sane X-Request-Id wins; a valid traceparent and its tracestate go upstream as they came */
    const char *const hv[][2] = {{"X-Request-Id", "client-req.7"}, {"traceparent", TP_OK}, {"tracestate", "k=v"}};
    fake_init(&f, hv, 3);
    prev = trace_req_begin(&f.w, &f.req, 1);
    log_request(prev.id, prev.trace_id);
    assert_string_equal(f.req.tr.id, "client-req.7");
    assert_true(f.req.tr.has_parent);
    memset(&c, 0, sizeof c);
    memset(&u, 0, sizeof u);
    trace_call_start(&c, &f.w, &f.req, 0);
    trace_call_send(&c, &u, "initialize", NULL);
    assert_string_equal(u.traceparent, TP_OK);
    assert_string_equal(u.tracestate, "k=v");
    assert_string_equal(u.request_id, "client-req.7");
    trace_call_end(&c, 200);

    /* no X-Request-Id: the trace id is the request id; an insane X-Request-Id is ignored */
    const char *const hv2[][2] = {{"x-request-id", "has space"}, {"TraceParent", TP_OK}};
    fake_init(&f, hv2, 2);
    prev = trace_req_begin(&f.w, &f.req, 1);
    log_request(prev.id, prev.trace_id);
    assert_string_equal(f.req.tr.id, "4bf92f3577b34da6a3ce929d0e0e4736");

    /* two traceparents: neither is trusted; a tracestate without a valid traceparent is dropped */
    const char *const hv3[][2] = {{"traceparent", TP_OK}, {"traceparent", TP_OK}, {"tracestate", "k=v"}};
    fake_init(&f, hv3, 3);
    prev = trace_req_begin(&f.w, &f.req, 1);
    log_request(prev.id, prev.trace_id);
    assert_false(f.req.tr.has_parent);
    assert_null(f.req.tr.tracestate);
    assert_true(is_hex32(f.req.tr.id));
    assert_string_not_equal(f.req.tr.id, "4bf92f3577b34da6a3ce929d0e0e4736");

    /* an invalid one starts anew; a tracestate over 512 bytes is not passed on */
    static char big[600];
    memset(big, 'a', 513);
    const char *const hv4[][2] = {{"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"}};
    fake_init(&f, hv4, 1);
    prev = trace_req_begin(&f.w, &f.req, 1);
    log_request(prev.id, prev.trace_id);
    assert_false(f.req.tr.has_parent);
    const char *const hv5[][2] = {{"traceparent", TP_OK}, {"tracestate", big}};
    fake_init(&f, hv5, 2);
    prev = trace_req_begin(&f.w, &f.req, 1);
    log_request(prev.id, prev.trace_id);
    assert_true(f.req.tr.has_parent);
    assert_null(f.req.tr.tracestate);

    /* routed twice (a request that waited): the same id */
    fake_init(&f, NULL, 0);
    prev = trace_req_begin(&f.w, &f.req, 1);
    char first[TRACE_RID_MAX + 1];
    strcpy(first, f.req.tr.id);
    trace_req_begin(&f.w, &f.req, 1);
    log_request(prev.id, prev.trace_id);
    assert_string_equal(f.req.tr.id, first);
}

static void ids_differ(void **state)
{
    fake a, b;
    fake_init(&a, NULL, 0);
    fake_init(&b, NULL, 0);
    log_req prev = trace_req_begin(&a.w, &a.req, 0);
    trace_req_begin(&b.w, &b.req, 0);
    log_request(prev.id, prev.trace_id);
    assert_string_not_equal(a.req.tr.id, b.req.tr.id);
}

/* ---- reqstats ------------------------------------------------------------------------------- */

static void methods(void **state)
{
    assert_int_equal(reqstats_method(JR_REQUEST, "tools/call"), RM_TOOLS_CALL);
    assert_string_equal(reqstats_method_name(reqstats_method(JR_REQUEST, "tools/call")), "tools/call");
    assert_string_equal(reqstats_method_name(reqstats_method(JR_REQUEST, "resources/templates/list")),
                        "resources/templates/list");
    assert_string_equal(reqstats_method_name(reqstats_method(JR_REQUEST, "x/unknown")), "other");
    assert_string_equal(reqstats_method_name(reqstats_method(JR_NOTIFICATION, "notifications/initialized")),
                        "notifications/initialized");
    assert_string_equal(reqstats_method_name(reqstats_method(JR_NOTIFICATION, "notifications/x")), "notifications/other");
    assert_string_equal(reqstats_method_name(reqstats_method(JR_NOTIFICATION, "tools/call")), "notifications/other");
    assert_string_equal(reqstats_method_name(reqstats_method(JR_RESPONSE, NULL)), "response");
}

static void tool_cap_and_render(void **state)
{
    assert_int_equal(reqstats_init(1, 4), 0);
    int a = reqstats_tool(0, 0, "s1_echo");
    assert_true(a > 0);
    assert_int_equal(reqstats_tool(0, 0, "s1_echo"), a);
    int b = reqstats_tool(0, 1, "s1_echo");   /* another server: another entry */
    assert_true(b > 0 && b != a);
    char name[32];
    for (int i = 0; i < REQSTATS_TOOLS - 2; i++) {
        snprintf(name, sizeof name, "t%d", i);
        assert_true(reqstats_tool(0, 2, name) > 0);
    }
    int o1 = reqstats_tool(0, 2, "beyond-1"), o2 = reqstats_tool(0, 2, "beyond-2");
    assert_true(o1 > 0);
    assert_int_equal(o1, o2);   /* past the cap: one "_other" entry per server */
    assert_int_equal(reqstats_tool(0, 0, "t0"), reqstats_tool(0, 0, "t1"));
    reqstats_tool_done(0, a, TO_OK, 3000000);            /* 3 ms */
    reqstats_tool_done(0, a, TO_TOOL_ERROR, 2000000000); /* 2 s */
    reqstats_tool_done(0, o1, TO_OK, 1000);
    reqstats_request(0, RM_TOOLS_CALL, 200);
    reqstats_request(0, RM_TOOLS_CALL, 200);
    reqstats_request(0, RM_UNKNOWN, 401);
    reqstats_request(0, RM_GET, 0);
    reqstats_request(0, RM_PING, 299);

    gw_server_cfg servers[3] = {{.name = "alpha"}, {.name = "beta"}, {.name = "gamma"}};
    gw_config cfg = {.servers = servers, .n_servers = 3};
    gateway gw = {.cfg = &cfg};
    buf b2;
    buf_init(&b2, 1 << 24);
    reqstats_render(&gw, &b2);
    const char *t = b2.data;
    assert_non_null(strstr(t, "# TYPE mcp_gateway_requests_total counter\n"));
    assert_non_null(strstr(t, "mcp_gateway_requests_total{method=\"tools/call\",status=\"200\"} 2\n"));
    assert_non_null(strstr(t, "mcp_gateway_requests_total{method=\"unknown\",status=\"401\"} 1\n"));
    assert_non_null(strstr(t, "mcp_gateway_requests_total{method=\"GET\",status=\"none\"} 1\n"));
    assert_non_null(strstr(t, "mcp_gateway_requests_total{method=\"ping\",status=\"other\"} 1\n"));
    assert_non_null(strstr(t, "# TYPE mcp_gateway_tool_call_duration_seconds histogram\n"));
    static const char ok[] = "mcp_gateway_tool_call_duration_seconds_bucket{server=\"alpha\",tool=\"s1_echo\",outcome=\"ok\",";
    char line[300];
    snprintf(line, sizeof line, "%sle=\"0.001\"}", ok);
    assert_null(strstr(t, line));   /* no such bucket */
    snprintf(line, sizeof line, "%sle=\"0.005\"} 1\n", ok);
    assert_non_null(strstr(t, line));
    snprintf(line, sizeof line, "%sle=\"+Inf\"} 1\n", ok);
    assert_non_null(strstr(t, line));
    assert_non_null(strstr(t, "mcp_gateway_tool_call_duration_seconds_bucket{server=\"alpha\",tool=\"s1_echo\","
                              "outcome=\"tool_error\",le=\"1\"} 0\n"));
    assert_non_null(strstr(t, "mcp_gateway_tool_call_duration_seconds_bucket{server=\"alpha\",tool=\"s1_echo\","
                              "outcome=\"tool_error\",le=\"2.5\"} 1\n"));
    assert_non_null(strstr(t, "mcp_gateway_tool_call_duration_seconds_count{server=\"alpha\",tool=\"s1_echo\","
                              "outcome=\"tool_error\"} 1\n"));
    assert_non_null(strstr(t, "mcp_gateway_tool_call_duration_seconds_sum{server=\"alpha\",tool=\"s1_echo\","
                              "outcome=\"tool_error\"} 2.000000\n"));
    assert_non_null(strstr(t, "mcp_gateway_tool_call_duration_seconds_count{server=\"gamma\",tool=\"_other\",outcome=\"ok\"} 1\n"));
    assert_null(strstr(t, "tool=\"t5\""));   /* never called: no series */
    assert_non_null(strstr(t, "mcp_gateway_trace_spans_total{result=\"dropped\"} 0\n"));
    buf_free(&b2);
    reqstats_free();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(traceparent_valid),
        cmocka_unit_test(traceparent_invalid),
        cmocka_unit_test(request_ids),
        cmocka_unit_test(tracestate),
        cmocka_unit_test(hex),
        cmocka_unit_test(request_context),
        cmocka_unit_test(ids_differ),
        cmocka_unit_test(methods),
        cmocka_unit_test(tool_cap_and_render),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
