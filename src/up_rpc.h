/* up_rpc — one JSON-RPC exchange with an upstream over Streamable HTTP: POST the message,
 * accept the answer as application/json or as an SSE stream (events before the response are
 * skipped), hand over the response object. Used for the cold paths (initialize, lists, ping);
 * the hot relay path (relay.c) streams instead. */
#ifndef GW_UP_RPC_H
#define GW_UP_RPC_H
#include <jansson.h>
#include "upstream.h"

typedef struct up_rpc up_rpc;
/* resp: the whole JSON-RPC response object (borrowed, valid during the call) or NULL with
 * err set. status: the HTTP status (0 when none). session_id: the Mcp-Session-Id answered. */
typedef void (*up_rpc_fn)(void *ud, json_t *resp, const char *err, long status, const char *session_id);

/* Sends method/params (params stolen, may be NULL). id 0 = a notification: the callback then
 * gets resp NULL, err NULL on a 2xx. base gives url, session, version, auth, timeout. */
up_rpc *up_rpc_send(upclient *u, const up_req *base, const char *method, json_t *params, uint64_t id,
                    up_rpc_fn fn, void *ud);
void    up_rpc_cancel(up_rpc *r);
#endif
