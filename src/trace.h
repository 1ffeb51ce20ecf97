/* trace — request ids, W3C Trace Context and OpenTelemetry traces (OTLP/HTTP JSON).
 *
 * Request ids. Every request on the MCP listener gets one: the client's X-Request-Id when it is
 * sane (1 to 64 of [A-Za-z0-9._-]), else the trace id of a valid traceparent, else a new trace id
 * (32 random hex digits). It is answered as X-Request-Id, and every log line written while the
 * request is handled carries it (log_request: the router, relay.c's callbacks and up_http.c's
 * callbacks of the upstream requests made for it).
 *
 * Trace Context. traceparent is checked strictly (W3C Trace Context level 1: lower-case hex,
 * version not ff, version 00 exactly 55 characters, later versions parsed as the spec says, ids
 * not all zero, one header only); an invalid one is ignored (a new trace starts). tracestate is
 * kept only with a valid traceparent, when it is at most 512 bytes of visible ASCII.
 *
 * Tracing on (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces):
 * a SERVER span per request on an MCP endpoint (child of the client's span when it sent a
 * sampled traceparent), and a CLIENT span per upstream HTTP request made for it (initialize,
 * notifications/initialized, the call itself), child of the SERVER span; the upstream receives
 * that CLIENT span's id in traceparent (same trace id, tracestate passed on). A client's
 * traceparent with the sampled flag off is honoured: nothing is recorded and it goes upstream
 * unchanged. Tracing off: nothing is recorded; a client's traceparent and tracestate go upstream
 * unchanged (the gateway is then a transparent hop).
 *
 * Export. A finished span is a record pushed into its worker's ring (bounded, one producer, one
 * consumer, no lock); a full ring drops it (counted). The exporter gives records back to their
 * worker through a second ring, so that workers reuse them instead of allocating. The control loop drains the
 * rings every second, or as soon as one holds TRACE_BATCH spans (the worker wakes it), writes OTLP
 * JSON and POSTs it with its own libcurl client, at most TRACE_BATCH spans a request and
 * TRACE_INFLIGHT requests at a time; nothing is retried (a failed batch is counted). Workers never
 * wait for the collector. What is left at shutdown is sent once, after the workers have stopped.
 *
 * Metrics (src/reqstats.c): every MCP request is counted by JSON-RPC method and status when it
 * ends; tool calls by server, tool and outcome with their duration. */
#ifndef GW_TRACE_H
#define GW_TRACE_H
#include <stddef.h>
#include <stdint.h>
#include "log.h"

#define TRACE_RID_MAX   64     /* X-Request-Id */
#define TRACESTATE_MAX  512
#define TRACE_BATCH     512    /* spans per export request; a ring this full wakes the exporter */
#define TRACE_INFLIGHT  2      /* export requests at a time */
#define TRACE_RING      4096   /* spans waiting per worker */

struct http_req;
struct worker;
struct gateway;
struct up_req;
struct json_t;
struct span;
typedef struct uv_loop_s uv_loop_t;

typedef struct trace_parent {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t flags;             /* bit 0: sampled */
} trace_parent;

/* W3C traceparent (s: the header value, NUL-terminated) → 0 and *out, or -1 when invalid. */
int  trace_parse_traceparent(const char *s, trace_parent *out);
/* 1 when s is a request id to honour: 1..64 of [A-Za-z0-9._-]. */
int  trace_request_id_ok(const char *s);
/* 1 when s is a tracestate to pass on: 1..512 bytes of visible ASCII and spaces. */
int  trace_tracestate_ok(const char *s);
/* n bytes → 2n lower-case hex digits and a NUL. */
void trace_hex(const uint8_t *b, size_t n, char *out);

/* What a tool call, or any relayed request, came to (metrics, spans). */
enum trace_outcome { TO_NONE, TO_OK, TO_TOOL_ERROR, TO_RPC_ERROR, TO_UPSTREAM_ERROR, TO_CANCELLED, TO_COUNT };

/* Per request, inside http_req (zeroed with it): what the router, mcp.c and relay.c learn. */
typedef struct trace_req {
    char          id[TRACE_RID_MAX + 1];  /* the request id ("" = none: answered without one) */
    char          tid[33];                /* the trace id in hex while recording, else "" */
    uint8_t       active;                 /* an MCP endpoint request: counted when it ends */
    uint8_t       method;                 /* its JSON-RPC method (reqstats.h RM_*) */
    uint8_t       has_parent;             /* a valid traceparent came: parent */
    uint8_t       outcome;                /* TO_*, when relayed */
    uint16_t      status;                 /* of the response, once its head is written */
    int16_t       worker;
    int32_t       server;                 /* slot routed to + 1; 0 = none */
    int32_t       tool;                   /* the worker's tool statistics entry + 1; 0 = none */
    trace_parent  parent;                 /* the client's traceparent */
    const char   *tracestate;             /* the client's (a header value), when kept */
    struct span  *span;                   /* the SERVER span being recorded, or NULL */
} trace_req;

/* Per relayed request (relay.c), copied from its trace_req when it starts: the upstream requests
 * made for it carry its ids, and it outlives a client that goes away. */
typedef struct trace_call {
    char          id[TRACE_RID_MAX + 1];
    char          tid[33];
    uint8_t       mode;                   /* 0 nothing to propagate, 1 the client's traceparent as is,
                                           * 2 recording: CLIENT spans under parent_span */
    uint8_t       outcome;                /* TO_* */
    int16_t       worker;
    int32_t       tool;                   /* as in trace_req */
    int32_t       server;                 /* slot + 1 */
    trace_parent  ctx;                    /* trace id, and the span upstream requests descend from */
    uint64_t      start_ns;               /* uv_hrtime() at the start (tool call duration) */
    char         *tracestate;             /* owned, or NULL */
    char          traceparent[56];        /* what the current upstream request carries */
    struct span  *span;                   /* the CLIENT span of the current upstream request */
} trace_call;

/* ---- the process (main.c) ---- */
/* Before the workers start: per-worker state, and the exporter when an endpoint is set (its
 * handles on the control loop, unreferenced). */
int  trace_init(struct gateway *gw, uv_loop_t *ctl);
int  trace_enabled(void);
/* After the workers have stopped: sends what is left and closes the exporter (the control loop
 * must run once more); trace_free() after that loop run. */
void trace_shutdown(void);
void trace_free(void);
/* Spans exported (the collector answered 2xx), dropped (a ring was full) and failed (an export
 * request failed; not retried). */
void trace_span_counts(uint64_t *exported, uint64_t *dropped, uint64_t *failed);

/* ---- a request (server.c, http.c, mcp.c) ---- */
/* The router, before anything else: the request id, the client's trace context, the SERVER span
 * when mcp (an MCP endpoint) and tracing is on. Sets log_request (to a copy of the ids kept per
 * thread, so that lines written after the answer freed the request still have them); the caller
 * puts back what it returns once the handler returns. */
log_req trace_req_begin(struct worker *w, struct http_req *req, int mcp);
/* http.c, when the request is freed (answered or aborted): counted, SERVER span finished. */
void trace_req_end(struct http_req *req);
/* mcp.c: the request's JSON-RPC message (kind: jsonrpc.h JR_*). */
void trace_req_method(struct http_req *req, int kind, const char *method);
/* mcp.c: the call names server (a slot) and, for tools/call, the federated tool name (in the
 * catalog); allowed: authorization let it through (only then is the tool call measured). */
void trace_req_target(struct worker *w, struct http_req *req, size_t server, const char *tool, int allowed);

/* ---- a relayed request (relay.c) ---- */
void trace_call_start(trace_call *c, struct worker *w, struct http_req *req, size_t server);
/* Before each upstream request: u gets the request id, traceparent and tracestate; a CLIENT span
 * starts for rpc_method (NULL: msg's method). */
void trace_call_send(trace_call *c, struct up_req *u, const char *rpc_method, struct json_t *msg);
/* The upstream request ended (HTTP status, or err). */
void trace_call_done(trace_call *c, long status, const char *err);
/* The answer to the client is decided: final (the upstream's response) or NULL (the gateway's
 * error); req: the client's request if it is still there. First call wins. */
void trace_call_outcome(trace_call *c, struct http_req *req, struct json_t *final);
/* The relay ends: tool call measured, open span finished, memory freed. */
void trace_call_end(trace_call *c, long status);
/* For callbacks that do not come through up_http.c: log lines carry c's ids. Returns the
 * previous log_req, to put back. */
log_req trace_call_log(const trace_call *c);
#endif
