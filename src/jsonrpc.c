#include "jsonrpc.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* A limit from lim, or its default when lim is NULL or the field is 0. */
#define JR_LIM(lim, field, dflt) ((lim) && (lim)->field ? (lim)->field : (size_t)(dflt))

/* err may be NULL: every failure path writes through this. */
static void jr_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void jr_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* 1 when body nests arrays/objects deeper than max. Brackets inside strings don't count;
 * a backslash in a string skips the next byte, so \" does not end it. Malformed input is
 * left for jansson to report. */
static int jr_too_deep(const char *body, size_t len, size_t max)
{
    size_t depth = 0;
    int in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = body[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > max) return 1;
        } else if ((c == ']' || c == '}') && depth) {
            depth--;
        }
    }
    return 0;
}

int jsonrpc_parse(const char *body, size_t len, const jr_limits *lim, json_t **out, char *err, size_t errlen)
{
    size_t max_depth = JR_LIM(lim, max_depth, JR_DEFAULT_MAX_DEPTH);
    *out = NULL;
    if (jr_too_deep(body, len, max_depth)) {
        jr_err(err, errlen, "nesting deeper than %zu", max_depth);
        return JR_PARSE_ERROR;
    }
    json_error_t je;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!root) {
        jr_err(err, errlen, "%s at offset %d", je.text, je.position);
        return JR_PARSE_ERROR;
    }
    *out = root;
    return 0;
}

/* Checks an id that is present. Returns 0 when it is a string (≤ max) or an integer. */
static int jr_check_id(json_t *id, size_t max, char *err, size_t errlen)
{
    if (json_is_integer(id)) return 0;
    if (json_is_string(id)) {
        if (json_string_length(id) <= max) return 0;
        jr_err(err, errlen, "\"id\" is longer than %zu bytes", max);
        return -1;
    }
    jr_err(err, errlen, json_is_null(id) ? "\"id\" must not be null" : "\"id\" must be a string or an integer");
    return -1;
}

int jsonrpc_classify(json_t *msg, const jr_limits *lim, jr_msg *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(msg)) {
        jr_err(err, errlen, "message is not an object");
        return JR_INVALID_REQUEST;
    }
    /* All borrowed from msg. */
    json_t *ver = json_object_get(msg, "jsonrpc");
    json_t *id = json_object_get(msg, "id");
    json_t *method = json_object_get(msg, "method");
    json_t *params = json_object_get(msg, "params");
    json_t *result = json_object_get(msg, "result");
    json_t *error = json_object_get(msg, "error");

    if (id) {
        if (jr_check_id(id, JR_LIM(lim, max_id_len, JR_DEFAULT_MAX_ID_LEN), err, errlen))
            return JR_INVALID_REQUEST;
        out->id = id;
    }
    if (!json_is_string(ver) || json_string_length(ver) != 3 || memcmp(json_string_value(ver), "2.0", 3) != 0) {
        jr_err(err, errlen, "\"jsonrpc\" must be \"2.0\"");
        return JR_INVALID_REQUEST;
    }

    if (method) {
        size_t max = JR_LIM(lim, max_method_len, JR_DEFAULT_MAX_METHOD_LEN);
        if (!json_is_string(method) || json_string_length(method) == 0) {
            jr_err(err, errlen, "\"method\" must be a non-empty string");
            return JR_INVALID_REQUEST;
        }
        if (json_string_length(method) > max) {
            jr_err(err, errlen, "\"method\" is longer than %zu bytes", max);
            return JR_INVALID_REQUEST;
        }
        if (result || error) {
            jr_err(err, errlen, "a request cannot carry \"result\" or \"error\"");
            return JR_INVALID_REQUEST;
        }
        if (params && !json_is_object(params) && !json_is_array(params)) {
            jr_err(err, errlen, "\"params\" must be an object or an array");
            return JR_INVALID_REQUEST;
        }
        out->kind = id ? JR_REQUEST : JR_NOTIFICATION;
        out->method = json_string_value(method); /* no NUL inside: jansson rejects \u0000 */
        out->params = params;
        return 0;
    }

    if (!result && !error) {
        jr_err(err, errlen, "missing \"method\"");
        return JR_INVALID_REQUEST;
    }
    if (result && error) {
        jr_err(err, errlen, "a response cannot carry both \"result\" and \"error\"");
        return JR_INVALID_REQUEST;
    }
    if (!id) {
        jr_err(err, errlen, "a response needs an \"id\"");
        return JR_INVALID_REQUEST;
    }
    if (error && !(json_is_object(error) && json_is_integer(json_object_get(error, "code")) &&
                   json_is_string(json_object_get(error, "message")))) {
        jr_err(err, errlen, "\"error\" must be an object with an integer \"code\" and a string \"message\"");
        return JR_INVALID_REQUEST;
    }
    out->kind = JR_RESPONSE;
    return 0;
}

const char *jsonrpc_code_text(int code)
{
    switch (code) {
    case JR_PARSE_ERROR: return "Parse error";
    case JR_INVALID_REQUEST: return "Invalid Request";
    case JR_METHOD_NOT_FOUND: return "Method not found";
    case JR_INVALID_PARAMS: return "Invalid params";
    case JR_INTERNAL_ERROR: return "Internal error";
    default: return "Server error";
    }
}

/* Length of the well-formed UTF-8 sequence at s[0..n) (1..4), or 0 (RFC 3629: no overlongs,
 * no surrogates, nothing above U+10FFFF). */
static size_t jr_utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; /* bounds for the second byte */
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) len = 2;
    else if (c >= 0xe0 && c <= 0xef) { len = 3; if (c == 0xe0) lo = 0xa0; if (c == 0xed) hi = 0x9f; }
    else if (c >= 0xf0 && c <= 0xf4) { len = 4; if (c == 0xf0) lo = 0x90; if (c == 0xf4) hi = 0x8f; }
    else return 0;
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    return len;
}

/* Appends s as a JSON string with its quotes; ill-formed UTF-8 bytes become \ufffd. */
static int jr_append_str(buf *b, const char *s, size_t n)
{
    int rc = buf_append(b, "\"", 1);
    size_t run = 0, i = 0; /* s[run..i) is well-formed and not yet written */
    while (!rc && i < n) {
        size_t l = jr_utf8_len((const unsigned char *)s + i, n - i);
        if (l) { i += l; continue; }
        if (!(rc = buf_json_str(b, s + run, i - run))) rc = buf_append(b, "\\ufffd", 6);
        run = ++i;
    }
    if (!rc) rc = buf_json_str(b, s + run, n - run);
    if (!rc) rc = buf_append(b, "\"", 1);
    return rc;
}

int jsonrpc_error(buf *b, json_t *id, int code, const char *message)
{
    size_t mark = b->len;
    if (!message) message = jsonrpc_code_text(code);
    int rc = buf_appends(b, "{\"jsonrpc\":\"2.0\",\"id\":");
    if (rc) goto fail;
    if (json_is_integer(id)) rc = buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(id));
    else if (json_is_string(id)) rc = jr_append_str(b, json_string_value(id), json_string_length(id));
    else rc = buf_appends(b, "null");
    if (rc || (rc = buf_printf(b, ",\"error\":{\"code\":%d,\"message\":", code))) goto fail;
    if ((rc = jr_append_str(b, message, strlen(message))) || (rc = buf_appends(b, "}}"))) goto fail;
    return BUF_OK;
fail:
    b->len = mark;
    if (b->data) b->data[mark] = '\0';
    return rc;
}
