/* reqstats — the request and tool-call metrics of the worker loops: requests to the MCP
 * endpoints by JSON-RPC method and HTTP status, tool calls by server, tool and outcome with a
 * duration histogram. Each worker writes its own counters (relaxed atomics, no lock); /metrics
 * (the control loop) adds them up.
 *
 * Cardinality is bounded: methods are a fixed list (anything else is "other"), statuses a fixed
 * list ("other" beyond), tools only those of the catalog, at most REQSTATS_TOOLS (server, tool)
 * pairs per worker (then "_other" per server). */
#ifndef GW_REQSTATS_H
#define GW_REQSTATS_H
#include <stddef.h>
#include <stdint.h>
#include "buf.h"

#define REQSTATS_TOOLS 1024

/* The method label. */
enum {
    RM_UNKNOWN,          /* the body was not read or not a JSON-RPC message */
    RM_INITIALIZE, RM_PING, RM_TOOLS_LIST, RM_TOOLS_CALL, RM_PROMPTS_LIST, RM_PROMPTS_GET,
    RM_RESOURCES_LIST, RM_RESOURCES_TEMPLATES_LIST, RM_RESOURCES_READ, RM_RESOURCES_SUBSCRIBE,
    RM_RESOURCES_UNSUBSCRIBE, RM_COMPLETION_COMPLETE, RM_LOGGING_SET_LEVEL,
    RM_N_INITIALIZED, RM_N_CANCELLED, RM_N_PROGRESS, RM_N_ROOTS_LIST_CHANGED,
    RM_OTHER_REQUEST,    /* a request with another method */
    RM_OTHER_NOTIFICATION,
    RM_RESPONSE,         /* the client's answer to a server→client request */
    RM_GET, RM_DELETE, RM_OPTIONS, RM_OTHER_HTTP,   /* not a POST */
    RM_COUNT
};

struct gateway;

int  reqstats_init(int n_workers, size_t server_slots);
void reqstats_free(void);
const char *reqstats_method_name(int m);
/* kind: jsonrpc.h JR_*; method may be NULL (responses). */
int  reqstats_method(int kind, const char *method);
/* status 0: no response was sent (the client left first). */
void reqstats_request(int wi, int method, int status);
/* The statistics entry (+ 1) of tool on server for this worker; 0 when none can be had. Call on
 * the worker's own loop. */
int  reqstats_tool(int wi, size_t server, const char *tool);
/* A call measured by entry (from reqstats_tool) ended with outcome (trace.h TO_*) after ns. */
void reqstats_tool_done(int wi, int entry, int outcome, uint64_t ns);
const char *reqstats_outcome_name(int outcome);
/* Appends the exposition (HELP, TYPE, samples) of the metrics above and the span counters. */
void reqstats_render(struct gateway *gw, buf *b);
#endif
