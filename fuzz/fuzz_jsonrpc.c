/* fuzz_jsonrpc — jsonrpc_parse, jsonrpc_classify and jsonrpc_error on arbitrary bodies.
 *
 * The whole input is a request body. It is parsed twice, with the default limits and with
 * tight ones; each message (the body, or each element of a batch) is classified, and an error
 * reply is built for it. Beyond "no crash, no leak, no UB", the target checks what jsonrpc.h
 * promises:
 *   - a body that parses nests no deeper than max_depth (the pre-scan is exact enough);
 *   - a classified message obeys its kind (a request has an id and a method within the length
 *     limits, params is structured, a response has an id and no method, ...);
 *   - every error reply is valid JSON with the id echoed (string or integer, else null), the
 *     code, and the message unchanged when it is valid UTF-8 — also for messages taken from the
 *     input and from jansson's error text, which quotes input bytes. */
#include "jsonrpc.h"
#include "buf.h"
#include "fuzz_util.h"
#include <string.h>

static size_t json_depth(json_t *v)
{
    size_t d = 0, m;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            if ((m = json_depth(json_array_get(v, i))) > d) d = m;
        return d + 1;
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *e;
        json_object_foreach(v, k, e)
            if ((m = json_depth(e)) > d) d = m;
        return d + 1;
    }
    return 0;
}

static void check_error_reply(json_t *id, int code, const char *message)
{
    buf b;
    buf_init(&b, 1 << 20);
    FZ_CHECK(jsonrpc_error(&b, id, code, message) == BUF_OK, "jsonrpc_error failed");
    json_error_t je;
    json_t *r = json_loadb(b.data, b.len, JSON_REJECT_DUPLICATES, &je);
    FZ_CHECK(r != NULL, "error reply is not JSON (%s): %.*s", je.text, (int)b.len, b.data);
    FZ_CHECK(json_is_object(r) && json_object_size(r) == 3, "reply shape");
    json_t *v = json_object_get(r, "jsonrpc");
    FZ_CHECK(json_is_string(v) && strcmp(json_string_value(v), "2.0") == 0, "jsonrpc member");
    json_t *rid = json_object_get(r, "id");
    if (json_is_integer(id) || json_is_string(id)) FZ_CHECK(json_equal(rid, id), "id not echoed");
    else FZ_CHECK(json_is_null(rid), "id should be null");
    json_t *e = json_object_get(r, "error");
    FZ_CHECK(json_is_object(e) && json_is_integer(json_object_get(e, "code")) &&
             json_integer_value(json_object_get(e, "code")) == code, "error.code");
    json_t *m = json_object_get(e, "message");
    FZ_CHECK(json_is_string(m), "error.message");
    const char *want = message ? message : jsonrpc_code_text(code);
    json_t *valid = json_string(want); /* NULL when want is not valid UTF-8 */
    if (valid) FZ_CHECK(json_equal(valid, m), "valid UTF-8 message changed: %s", want);
    else FZ_CHECK(strstr(json_string_value(m), "\xef\xbf\xbd"), "invalid UTF-8 not replaced by U+FFFD");
    json_decref(valid);
    json_decref(r);
    buf_free(&b);
}

static void check_msg(json_t *msg, const jr_limits *lim, const char *input_msg)
{
    jr_msg m;
    char err[256] = "";
    size_t max_id = lim ? lim->max_id_len : JR_DEFAULT_MAX_ID_LEN;
    size_t max_method = lim ? lim->max_method_len : JR_DEFAULT_MAX_METHOD_LEN;
    int rc = jsonrpc_classify(msg, lim, &m, err, sizeof err);
    if (rc == 0) {
        FZ_CHECK(json_is_object(msg), "classified a non-object");
        json_t *v = json_object_get(msg, "jsonrpc");
        FZ_CHECK(json_is_string(v) && strcmp(json_string_value(v), "2.0") == 0, "jsonrpc member");
        if (m.id) {
            FZ_CHECK(m.id == json_object_get(msg, "id"), "id not borrowed from msg");
            FZ_CHECK(json_is_integer(m.id) || (json_is_string(m.id) && json_string_length(m.id) <= max_id), "id type");
        }
        switch (m.kind) {
        case JR_REQUEST:
        case JR_NOTIFICATION:
            FZ_CHECK((m.kind == JR_REQUEST) == (m.id != NULL), "request without id / notification with id");
            FZ_CHECK(m.method && *m.method, "no method");
            FZ_CHECK(strlen(m.method) == json_string_length(json_object_get(msg, "method")), "NUL in method");
            FZ_CHECK(strlen(m.method) <= max_method, "method too long");
            FZ_CHECK(!m.params || json_is_object(m.params) || json_is_array(m.params), "params type");
            FZ_CHECK(!json_object_get(msg, "result") && !json_object_get(msg, "error"), "request with result");
            break;
        case JR_RESPONSE:
            FZ_CHECK(m.id && !m.method, "response shape");
            FZ_CHECK(!json_object_get(msg, "result") != !json_object_get(msg, "error"), "result xor error");
            break;
        default:
            fz_fail("kind %d", (int)m.kind);
        }
        check_error_reply(m.id, JR_METHOD_NOT_FOUND, m.method);
    } else {
        FZ_CHECK(rc == JR_INVALID_REQUEST, "classify returned %d", rc);
        FZ_CHECK(err[0], "no reason");
        check_error_reply(m.id, rc, err);
    }
    check_error_reply(m.id, JR_INTERNAL_ERROR, NULL);
    check_error_reply(m.id, -32000, input_msg);
}

static void run(const char *body, size_t len, const jr_limits *lim, const char *input_msg)
{
    json_t *root = NULL;
    char err[256] = "";
    size_t max_depth = lim ? lim->max_depth : JR_DEFAULT_MAX_DEPTH;
    int rc = jsonrpc_parse(body, len, lim, &root, err, sizeof err);
    if (rc) {
        FZ_CHECK(rc == JR_PARSE_ERROR && !root && err[0], "parse failure contract");
        check_error_reply(NULL, rc, err);
        return;
    }
    FZ_CHECK(root != NULL, "parse gave no value");
    FZ_CHECK(json_depth(root) <= max_depth, "nesting %zu deeper than %zu", json_depth(root), max_depth);
    check_msg(root, lim, input_msg);
    if (json_is_array(root))
        for (size_t i = 0; i < json_array_size(root) && i < 16; i++) check_msg(json_array_get(root, i), lim, input_msg);
    json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const jr_limits tight = {.max_depth = 3, .max_id_len = 8, .max_method_len = 12};
    char msg[512];
    size_t n = size < sizeof msg - 1 ? size : sizeof msg - 1;
    memcpy(msg, data, n);
    msg[n] = '\0';
    run((const char *)data, size, NULL, msg);
    run((const char *)data, size, &tight, msg);
    return 0;
}
