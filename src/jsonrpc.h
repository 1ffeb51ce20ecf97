/* jsonrpc — JSON-RPC 2.0 message parsing and validation on jansson, and error bodies.
 * Parsing is bounded before jansson sees a byte (nesting depth); validation follows the
 * JSON-RPC 2.0 spec plus MCP's rules (ids are never null, params is structured). */
#ifndef GW_JSONRPC_H
#define GW_JSONRPC_H
#include <stddef.h>
#include <jansson.h>
#include "buf.h"

enum {
    JR_PARSE_ERROR = -32700,
    JR_INVALID_REQUEST = -32600,
    JR_METHOD_NOT_FOUND = -32601,
    JR_INVALID_PARAMS = -32602,
    JR_INTERNAL_ERROR = -32603
};

typedef enum { JR_REQUEST, JR_NOTIFICATION, JR_RESPONSE } jr_kind;

/* A NULL jr_limits, or a 0 field, means the default below. Lengths are in bytes. */
typedef struct jr_limits {
    size_t max_depth;      /* arrays/objects nested deeper than this are a parse error */
    size_t max_id_len;     /* string ids */
    size_t max_method_len;
} jr_limits;
#define JR_DEFAULT_MAX_DEPTH      64
#define JR_DEFAULT_MAX_ID_LEN     256
#define JR_DEFAULT_MAX_METHOD_LEN 128

/* Parses body[0..len): first a single pass over the bytes that counts [ and { outside
 * strings (deeper than max_depth → "nesting deeper than N"), then json_loadb() with
 * JSON_REJECT_DUPLICATES | JSON_DECODE_ANY (jansson also rejects invalid UTF-8 and \u0000).
 * Returns 0 with *out owned by the caller (json_decref), or JR_PARSE_ERROR with *out = NULL
 * and a short message in err (may be NULL). A scalar top level parses; classify rejects it. */
int jsonrpc_parse(const char *body, size_t len, const jr_limits *lim, json_t **out, char *err, size_t errlen);

typedef struct jr_msg {
    jr_kind     kind;
    json_t     *id;      /* borrowed from msg; NULL for notifications */
    const char *method;  /* borrowed from msg; NULL for responses */
    json_t     *params;  /* borrowed from msg; NULL when absent */
} jr_msg;

/* Validates one message object (a batch element or the whole body):
 *   "jsonrpc" is exactly "2.0";
 *   "id", when present, is a string (≤ max_id_len) or an integer — not null, real or bool;
 *   with "method" (a non-empty string ≤ max_method_len): a request when "id" is present,
 *     else a notification; "params", if present, is an object or array; no "result"/"error";
 *   without "method": a response with "id" and exactly one of "result" (any value) or
 *     "error" (an object with an integer "code" and a string "message").
 * Returns 0 with *out filled, or JR_INVALID_REQUEST with a message in err (may be NULL).
 * Even on failure out->id is set when "id" was valid, so the error reply can echo it. */
int jsonrpc_classify(json_t *msg, const jr_limits *lim, jr_msg *out, char *err, size_t errlen);

/* Appends {"jsonrpc":"2.0","id":<id>,"error":{"code":N,"message":"..."}} to b. id is echoed
 * when it is a string or an integer, otherwise (NULL included) written as null. message NULL
 * → the spec's text for code; invalid UTF-8 in message becomes U+FFFD so the body is always
 * valid JSON. Returns BUF_OK, or a BUF_* error with b unchanged. */
int jsonrpc_error(buf *b, json_t *id, int code, const char *message);

/* The JSON-RPC spec's message for a standard code ("Parse error", ...), or "Server error". */
const char *jsonrpc_code_text(int code);
#endif
