/* upstream — one small interface for HTTP requests to upstream MCP servers, driven from a
 * libuv loop. The implementation (up_http.c) is libcurl multi; a plain-HTTP keep-alive pool
 * can replace it behind this interface. One upclient per loop; not thread-safe.
 *
 * A call streams: on_head once the status line and headers are in, on_data for each piece
 * of the body as it arrives (SSE relays without buffering), on_done exactly once at the end
 * (err = NULL on success, else a message valid during the callback: copy what you keep). After
 * up_call_cancel() no callback runs.
 *
 * TLS: https upstreams are verified against the system's CA bundle plus ca_pem; tls_server_name
 * verifies (and sends as SNI) another name than the URL's host, while the connection still goes
 * to the URL's host and port and Host stays the URL's; client_cert/client_key present a client
 * certificate (mTLS). Certificate failures come back as a message that says what to configure. */
#ifndef GW_UPSTREAM_H
#define GW_UPSTREAM_H
#include <stddef.h>
#include <uv.h>

typedef struct upclient upclient;
typedef struct up_call up_call;

typedef struct up_req {
    const char *url;
    const char *method;            /* "POST", "GET", "DELETE" */
    const char *body;              /* POST body, copied by the call (may be NULL) */
    size_t      body_len;
    const char *session_id;        /* Mcp-Session-Id or NULL */
    const char *protocol_version;  /* MCP-Protocol-Version or NULL */
    const char *authorization;     /* verbatim Authorization header or NULL */
    const char *last_event_id;     /* Last-Event-ID or NULL */
    const char *ca_pem;            /* extra trust (PEM), added to the system's CA bundle; or NULL */
    const char *content_type;      /* of the POST body; NULL = application/json */
    const char *const *headers;    /* n_headers extra "Name: value" lines, or NULL */
    size_t      n_headers;
    const char *client_cert;       /* PEM client certificate (mTLS) or NULL */
    const char *client_key;        /* PEM private key of client_cert */
    const char *tls_server_name;   /* name verified in the certificate and sent as SNI, or NULL */
    long        timeout_ms;        /* whole call; 0 = none (long-lived GET streams) */
    size_t      max_body;          /* cap on the response body; 0 = none */
    int         at_most_once;      /* POST: never sent twice — when a reused connection dies before
                                    * the answer, the call fails instead of libcurl resending it */
    const char *traceparent;       /* W3C trace context to send (trace.h), or NULL */
    const char *tracestate;
    const char *request_id;        /* the client request this is made for: its log lines carry it */
    const char *trace_id;          /* (hex) likewise, when traced */
} up_req;

typedef struct up_callbacks {
    void (*on_head)(up_call *c, void *ud, long status, const char *content_type, const char *session_id);
    void (*on_data)(up_call *c, void *ud, const char *data, size_t len);
    void (*on_done)(up_call *c, void *ud, const char *err);
} up_callbacks;

upclient *upclient_new(uv_loop_t *loop);
void      upclient_free(upclient *u);       /* cancels every call; callbacks are not run */
up_call  *upclient_send(upclient *u, const up_req *r, const up_callbacks *cb, void *ud);
void      up_call_cancel(up_call *c);
void      up_call_pause(up_call *c, int paused);  /* back-pressure: stop reading the upstream */
#endif
