/* stdio-echo — the benchmark's backend for MCP proxies that only front stdio servers
 * (supergateway, mcp-proxy). It answers like build/mcp-example-server's `echo` tool, with the
 * same library (jansson) doing the same work per call (parse the message, build the result,
 * serialize it), over newline-delimited JSON-RPC on stdin/stdout (MCP stdio transport).
 *   initialize          → protocolVersion (the client's when known), capabilities.tools
 *   notifications/...   → nothing
 *   ping                → {}
 *   tools/list          → the echo tool
 *   tools/call echo     → {content:[{type:text,text:<text>}]}
 *   anything else       → -32601 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const versions[] = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"};

static void send_msg(json_t *m)
{
    char *s = json_dumps(m, JSON_COMPACT);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        fflush(stdout);
        free(s);
    }
    json_decref(m);
}

static void reply(json_t *id, json_t *result)
{
    send_msg(json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", id, "result", result));
}

static void reply_error(json_t *id, int code, const char *msg)
{
    send_msg(json_pack("{s:s,s:O,s:{s:i,s:s}}", "jsonrpc", "2.0", "id", id ? id : json_null(), "error", "code", code,
                       "message", msg));
}

static void handle(json_t *msg)
{
    const char *method = json_string_value(json_object_get(msg, "method"));
    json_t *id = json_object_get(msg, "id");
    json_t *params = json_object_get(msg, "params");
    if (!method || !id) return;   /* notifications, responses */
    if (!strcmp(method, "initialize")) {
        const char *want = json_string_value(json_object_get(params, "protocolVersion"));
        const char *v = versions[0];
        for (size_t i = 0; want && i < sizeof versions / sizeof *versions; i++)
            if (!strcmp(want, versions[i])) v = versions[i];
        reply(id, json_pack("{s:s,s:{s:{}},s:{s:s,s:s}}", "protocolVersion", v, "capabilities", "tools", "serverInfo",
                            "name", "stdio-echo", "version", "1.0.0"));
    } else if (!strcmp(method, "ping")) {
        reply(id, json_object());
    } else if (!strcmp(method, "tools/list")) {
        reply(id, json_pack("{s:[{s:s,s:s,s:{s:s,s:{s:{s:s}},s:[s]}}]}", "tools", "name", "echo", "description",
                            "Returns its text argument unchanged.", "inputSchema", "type", "object", "properties",
                            "text", "type", "string", "required", "text"));
    } else if (!strcmp(method, "tools/call")) {
        const char *name = json_string_value(json_object_get(params, "name"));
        json_t *text = json_object_get(json_object_get(params, "arguments"), "text");
        if (!name || strcmp(name, "echo") != 0) { reply_error(id, -32602, "Unknown tool"); return; }
        if (!json_is_string(text)) {
            reply(id, json_pack("{s:[{s:s,s:s}],s:b}", "content", "type", "text", "text",
                                "echo: argument 'text' (string) is required", "isError", 1));
            return;
        }
        reply(id, json_pack("{s:[{s:s,s:O}]}", "content", "type", "text", "text", text));
    } else {
        reply_error(id, -32601, "Method not found");
    }
}

int main(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        json_error_t e;
        json_t *msg = json_loadb(line, (size_t)n, 0, &e);
        if (!msg) { reply_error(NULL, -32700, "Parse error"); continue; }
        if (json_is_array(msg)) {
            for (size_t i = 0; i < json_array_size(msg); i++) handle(json_array_get(msg, i));
        } else {
            handle(msg);
        }
        json_decref(msg);
    }
    free(line);
    return 0;
}
