#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>
#include "jsonrpc.h"

static const jr_limits lim3 = {.max_depth = 3, .max_id_len = 8, .max_method_len = 16};

static int parse(const char *s, const jr_limits *lim, json_t **out, char *err)
{
    return jsonrpc_parse(s, strlen(s), lim, out, err, 128);
}

static void assert_parses(const char *s, const jr_limits *lim)
{
    json_t *j = (json_t *)1;
    char err[128] = "";
    int rc = parse(s, lim, &j, err);
    if (rc) print_error("unexpected parse error for %s: %s\n", s, err);
    assert_int_equal(rc, 0);
    assert_non_null(j);
    json_decref(j);
}

static void assert_parse_fails(const char *s, const jr_limits *lim, const char *msg)
{
    json_t *j = (json_t *)1;
    char err[128] = "";
    assert_int_equal(parse(s, lim, &j, err), JR_PARSE_ERROR);
    assert_null(j);
    assert_true(err[0] != '\0');
    if (msg) assert_string_equal(err, msg);
}

static void depth_limit(void **state)
{
    assert_parses("[[[1]]]", &lim3);
    assert_parse_fails("[[[[1]]]]", &lim3, "nesting deeper than 3");
    assert_parses("{\"a\":{\"b\":{\"c\":1}}}", &lim3);
    assert_parse_fails("{\"a\":{\"b\":{\"c\":{}}}}", &lim3, "nesting deeper than 3");
    assert_parses("[{\"a\":[1]},{\"b\":[2]},[[3]]]", &lim3); /* siblings do not add up */
    assert_parse_fails("[{\"a\":[{}]}]", &lim3, "nesting deeper than 3");
    /* brackets inside strings are ignored */
    assert_parses("{\"[[[[\":\"{{{{[[[[\"}", &lim3);
    /* an escaped quote does not end the string ... */
    assert_parses("{\"a\":\"\\\"[[[[{{{{\"}", &lim3);
    /* ... but an escaped backslash followed by a quote does */
    assert_parse_fails("{\"a\":\"\\\\\",\"b\":[[[1]]]}", &lim3, "nesting deeper than 3");
    assert_parses("{\"a\":\"\\\\\",\"b\":[[1]]}", &lim3);
    /* checked before jansson: an unterminated deep body reports depth, not syntax */
    assert_parse_fails("[[[[[", &lim3, "nesting deeper than 3");
    /* defaults: NULL limits and a 0 field both mean JR_DEFAULT_MAX_DEPTH */
    char deep[2 * JR_DEFAULT_MAX_DEPTH + 4];
    memset(deep, '[', JR_DEFAULT_MAX_DEPTH);
    memset(deep + JR_DEFAULT_MAX_DEPTH, ']', JR_DEFAULT_MAX_DEPTH);
    deep[2 * JR_DEFAULT_MAX_DEPTH] = '\0';
    assert_parses(deep, NULL);
    const jr_limits zero = {0};
    assert_parses(deep, &zero);
    memmove(deep + 1, deep, strlen(deep) + 1);
    strcat(deep, "]");
    assert_parse_fails(deep, NULL, "nesting deeper than 64");
}

static void parse_errors(void **state)
{
    assert_parse_fails("{\"a\":1,\"a\":2}", NULL, NULL);
    assert_parse_fails("{\"x\":{\"a\":1,\"a\":1}}", NULL, NULL);
    assert_parses("[{\"a\":1},{\"a\":1}]", NULL);          /* same key, different objects */
    assert_parse_fails("{\"a\":\"\xff\"}", NULL, NULL);      /* invalid UTF-8 */
    assert_parse_fails("{\"a\":\"\xc0\xaf\"}", NULL, NULL);  /* overlong */
    assert_parse_fails("{\"a\":\"\xed\xa0\x80\"}", NULL, NULL); /* encoded surrogate */
    assert_parse_fails("{\"a\":\"\\u0000\"}", NULL, NULL);   /* NUL */
    assert_parse_fails("", NULL, NULL);
    assert_parse_fails("{} x", NULL, NULL);
    assert_parse_fails("{\"a\":1,}", NULL, NULL);
    assert_parse_fails("{'a':1}", NULL, NULL);
    assert_parse_fails("{\"a\":01}", NULL, NULL);
    assert_parse_fails("{\"id\":99999999999999999999}", NULL, NULL); /* beyond int64 */
    assert_parses("{\"a\":\"\xc3\xa9\xf0\x9f\x98\x80\"}", NULL);
    assert_parses("  {\"a\":[]}\r\n", NULL);
    assert_parses("1", NULL); /* parses; classify rejects it */
    /* err may be NULL; only len bytes are read */
    json_t *j;
    assert_int_equal(jsonrpc_parse("{}garbage", 2, NULL, &j, NULL, 0), 0);
    json_decref(j);
    assert_int_equal(jsonrpc_parse("[[", 2, &lim3, &j, NULL, 0), JR_PARSE_ERROR);
}

/* Parses s (must succeed) and classifies it. */
static int classify(const char *s, jr_msg *m, json_t **keep, char *err)
{
    json_t *j;
    char perr[128];
    if (jsonrpc_parse(s, strlen(s), NULL, &j, perr, sizeof perr)) fail_msg("parse %s: %s", s, perr);
    int rc = jsonrpc_classify(j, &lim3, m, err, 128);
    if (keep) *keep = j;
    else json_decref(j);
    return rc;
}

static void invalid_shapes(void **state)
{
    static const char *bad[] = {
        "1", "\"x\"", "null", "[]", "[{\"jsonrpc\":\"2.0\",\"method\":\"a\"}]",
        /* jsonrpc member */
        "{\"id\":1,\"method\":\"a\"}",
        "{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"a\"}",
        "{\"jsonrpc\":2.0,\"id\":1,\"method\":\"a\"}",
        "{\"jsonrpc\":\"2.0 \",\"id\":1,\"method\":\"a\"}",
        "{\"jsonrpc\":\"2\",\"id\":1,\"method\":\"a\"}",
        "{\"jsonrpc\":null,\"id\":1,\"method\":\"a\"}",
        /* id */
        "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"a\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"a\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":1.0,\"method\":\"a\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":1e3,\"method\":\"a\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"a\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"a\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":[1],\"method\":\"a\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":\"123456789\",\"method\":\"a\"}", /* 9 > max_id_len 8 */
        /* method */
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":1}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":null}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":[\"a\"]}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"12345678901234567\"}", /* 17 > 16 */
        /* params */
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\",\"params\":\"x\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\",\"params\":1}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\",\"params\":null}",
        "{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"params\":true}",
        /* request mixed with response */
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\",\"result\":{}}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\",\"error\":{\"code\":1,\"message\":\"m\"}}",
        /* responses */
        "{\"jsonrpc\":\"2.0\",\"id\":1}",
        "{\"jsonrpc\":\"2.0\"}",
        "{\"jsonrpc\":\"2.0\",\"result\":{}}",
        "{\"jsonrpc\":\"2.0\",\"id\":null,\"result\":{}}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},\"error\":{\"code\":1,\"message\":\"m\"}}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":\"boom\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":null}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"message\":\"m\"}}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":1}}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":1.5,\"message\":\"m\"}}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":\"1\",\"message\":\"m\"}}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":1,\"message\":2}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        jr_msg m;
        char err[128] = "";
        int rc = classify(bad[i], &m, NULL, err);
        if (rc != JR_INVALID_REQUEST) fail_msg("accepted: %s", bad[i]);
        assert_true(err[0] != '\0');
        assert_null(m.method);
    }
}

static void valid_shapes(void **state)
{
    jr_msg m;
    json_t *j;
    char err[128];

    assert_int_equal(classify("{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"method\":\"tools/list\"}", &m, &j, err), 0);
    assert_int_equal(m.kind, JR_REQUEST);
    assert_string_equal(json_string_value(m.id), "abc");
    assert_string_equal(m.method, "tools/list");
    assert_null(m.params);
    json_decref(j);

    assert_int_equal(classify("{\"jsonrpc\":\"2.0\",\"id\":\"12345678\",\"method\":\"1234567890123456\","
                              "\"params\":{\"x\":1}}", &m, &j, err), 0); /* both exactly at the limit */
    assert_int_equal(m.kind, JR_REQUEST);
    assert_true(json_is_object(m.params));
    json_decref(j);

    assert_int_equal(classify("{\"jsonrpc\":\"2.0\",\"id\":-7,\"method\":\"a\",\"params\":[1,2]}", &m, &j, err), 0);
    assert_true(json_is_array(m.params));
    assert_int_equal(json_integer_value(m.id), -7);
    json_decref(j);

    assert_int_equal(classify("{\"jsonrpc\":\"2.0\",\"id\":\"\",\"method\":\"a\"}", &m, &j, err), 0);
    json_decref(j);

    assert_int_equal(classify("{\"method\":\"notifications/x\",\"jsonrpc\":\"2.0\"}", &m, &j, err), 0);
    assert_int_equal(m.kind, JR_NOTIFICATION);
    assert_null(m.id);
    json_decref(j);

    assert_int_equal(classify("{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}", &m, &j, err), 0);
    assert_int_equal(m.kind, JR_RESPONSE);
    assert_null(m.method);
    assert_int_equal(json_integer_value(m.id), 3);
    json_decref(j);

    assert_int_equal(classify("{\"jsonrpc\":\"2.0\",\"id\":\"s\",\"result\":null}", &m, &j, err), 0);
    assert_int_equal(m.kind, JR_RESPONSE);
    json_decref(j);

    assert_int_equal(classify("{\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":-32601,\"message\":\"no\","
                              "\"data\":[1]}}", &m, &j, err), 0);
    assert_int_equal(m.kind, JR_RESPONSE);
    json_decref(j);
}

static void id_echoed_on_failure(void **state)
{
    jr_msg m;
    json_t *j;
    char err[128];
    assert_int_equal(classify("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":1}", &m, &j, err), JR_INVALID_REQUEST);
    assert_string_equal(err, "\"method\" must be a non-empty string");
    assert_int_equal(json_integer_value(m.id), 7);
    json_decref(j);
    assert_int_equal(classify("{\"jsonrpc\":\"1.0\",\"id\":\"x\",\"method\":\"a\"}", &m, &j, err), JR_INVALID_REQUEST);
    assert_string_equal(err, "\"jsonrpc\" must be \"2.0\"");
    assert_string_equal(json_string_value(m.id), "x");
    json_decref(j);
    assert_int_equal(classify("{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"a\"}", &m, &j, err), JR_INVALID_REQUEST);
    assert_string_equal(err, "\"id\" must be a string or an integer");
    assert_null(m.id);
    json_decref(j);
    assert_int_equal(classify("{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"a\"}", &m, &j, err), JR_INVALID_REQUEST);
    assert_string_equal(err, "\"id\" must not be null");
    json_decref(j);
    assert_int_equal(classify("{\"jsonrpc\":\"2.0\",\"id\":\"123456789\",\"method\":\"a\"}", &m, &j, err),
                     JR_INVALID_REQUEST);
    assert_string_equal(err, "\"id\" is longer than 8 bytes");
    json_decref(j);
    /* err may be NULL */
    assert_int_equal(jsonrpc_classify(NULL, NULL, &m, NULL, 0), JR_INVALID_REQUEST);
}

static void big_integer_id(void **state)
{
    const char *s = "{\"jsonrpc\":\"2.0\",\"id\":9007199254740993,\"method\":\"ping\"}";
    jr_msg m;
    json_t *j;
    char err[128];
    assert_int_equal(classify(s, &m, &j, err), 0);
    assert_true(json_integer_value(m.id) == 9007199254740993LL);
    buf b;
    buf_init(&b, 1024);
    assert_int_equal(jsonrpc_error(&b, m.id, JR_METHOD_NOT_FOUND, NULL), BUF_OK);
    assert_string_equal(b.data, "{\"jsonrpc\":\"2.0\",\"id\":9007199254740993,"
                                "\"error\":{\"code\":-32601,\"message\":\"Method not found\"}}");
    json_decref(j);
    /* the extremes of int64 survive too */
    assert_int_equal(classify("{\"jsonrpc\":\"2.0\",\"id\":-9223372036854775808,\"method\":\"a\"}", &m, &j, err), 0);
    buf_reset(&b);
    jsonrpc_error(&b, m.id, 1, "x");
    assert_string_equal(b.data, "{\"jsonrpc\":\"2.0\",\"id\":-9223372036854775808,\"error\":{\"code\":1,\"message\":\"x\"}}");
    json_decref(j);
    buf_free(&b);
}

static void error_bodies(void **state)
{
    buf b;
    buf_init(&b, 4096);
    assert_int_equal(jsonrpc_error(&b, NULL, JR_PARSE_ERROR, NULL), BUF_OK);
    assert_string_equal(b.data, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"Parse error\"}}");
    assert_int_equal(b.len, strlen(b.data));

    /* appends; string ids and messages are escaped */
    json_t *id = json_string("a\"b\\c\n");
    assert_int_equal(jsonrpc_error(&b, id, JR_INVALID_REQUEST, "bad \"thing\"\t\x01"), BUF_OK);
    assert_string_equal(b.data,
                        "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"Parse error\"}}"
                        "{\"jsonrpc\":\"2.0\",\"id\":\"a\\\"b\\\\c\\n\",\"error\":{\"code\":-32600,"
                        "\"message\":\"bad \\\"thing\\\"\\t\\u0001\"}}");
    json_decref(id);

    /* ids of other types are written as null */
    buf_reset(&b);
    json_t *real = json_real(1.5);
    jsonrpc_error(&b, real, JR_INTERNAL_ERROR, NULL);
    assert_string_equal(b.data, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32603,\"message\":\"Internal error\"}}");
    json_decref(real);

    /* ill-formed UTF-8 in the message becomes U+FFFD; well-formed passes through */
    buf_reset(&b);
    jsonrpc_error(&b, NULL, -32000, "\xc3\xa9 \xff x \xe2\x82 \xed\xa0\x80 \xf0\x9f\x98\x80 \xc3");
    assert_string_equal(b.data, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32000,\"message\":"
                                "\"\xc3\xa9 \\ufffd x \\ufffd\\ufffd \\ufffd\\ufffd\\ufffd \xf0\x9f\x98\x80 \\ufffd\"}}");
    json_t *back = json_loads(b.data, 0, NULL);
    assert_non_null(back);
    json_decref(back);

    /* every standard code has its text */
    assert_string_equal(jsonrpc_code_text(JR_INVALID_PARAMS), "Invalid params");
    assert_string_equal(jsonrpc_code_text(-32000), "Server error");
    buf_free(&b);

    /* too small: fails and leaves b as it was */
    buf_init(&b, 40);
    buf_appends(&b, "keep");
    assert_int_equal(jsonrpc_error(&b, NULL, JR_PARSE_ERROR, NULL), BUF_TOOBIG);
    assert_int_equal(b.len, 4);
    assert_string_equal(b.data, "keep");
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(depth_limit),
        cmocka_unit_test(parse_errors),
        cmocka_unit_test(invalid_shapes),
        cmocka_unit_test(valid_shapes),
        cmocka_unit_test(id_echoed_on_failure),
        cmocka_unit_test(big_integer_id),
        cmocka_unit_test(error_bodies),
    };
    return cmocka_run_group_tests_name("jsonrpc", tests, NULL, NULL);
}
