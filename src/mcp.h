/* mcp — the Streamable HTTP endpoint /mcp: transport rules, sessions, local answers,
 * GET streams. See mcp.c. */
#ifndef GW_MCP_H
#define GW_MCP_H
#include "gateway.h"
#include <jansson.h>
#include "auth.h"

/* id: the caller's verified identity, NULL when authentication is off. vs: the virtual server
 * whose endpoint /v/<name>/mcp was asked for, -1 for /mcp (where X-Mcp-Virtualserver may name one). */
void mcp_handle(worker *w, http_req *req, const auth_identity *id, int vs);
int  mcp_origin_allowed(const gateway *gw, const char *origin);

/* Answers with CORS headers for the request's Origin and, when given, Mcp-Session-Id. */
void mcp_reply(worker *w, http_req *req, int status, const char *ctype, const char *body, size_t len,
               const char *session_id);
void mcp_reply_error(worker *w, http_req *req, int status, json_t *id, int code, const char *message);
/* The same with extra header lines ("Retry-After: 5\r\n"). */
void mcp_reply_error_hdr(worker *w, http_req *req, int status, const char *headers, json_t *id, int code,
                         const char *message);
void mcp_extra_headers(worker *w, http_req *req, char *out, size_t cap, const char *session_id);

/* GET streams of one loop. */
void mcp_broadcast_list_changed(worker *w, int kind);

#endif
