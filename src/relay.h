/* relay — forwards one client request to the upstream that owns it and relays the answer
 * (JSON or SSE) back with the client's id. See relay.c. */
#ifndef GW_RELAY_H
#define GW_RELAY_H
#include "gateway.h"
#include <jansson.h>

/* msg: the client's request with params already rewritten for the upstream (stolen). */
void relay_start(worker *w, http_req *req, const char *gw_sid, const session_claims *cl, size_t server, json_t *msg);
/* Sends one message (a response or a notification, already rewritten) to the upstream session
 * this gateway session has with server; dropped when it has none. Nobody waits. */
void relay_send_upstream(worker *w, const char *gw_sid, size_t server, json_t *msg);
/* The same with the upstream session given (version, session id): from another replica, through Redis. */
void relay_send_upstream_as(worker *w, const char *gw_sid, size_t server, const char *version, const char *up_session,
                            json_t *msg);
/* Ends an upstream session (DELETE, nobody waits) with the credential, CAs and headers of that
 * server (upcred.h), on behalf of the gateway session's caller. */
void relay_end_upstream(worker *w, const char *gw_sid, size_t server, const char *version, const char *up_session);
/* The client's answer to a server→client request relayed earlier: back to its upstream. */
int  relay_client_response(worker *w, const char *gw_sid, json_t *msg);
/* notifications/cancelled for a request of this session in flight upstream. */
void relay_client_cancel(worker *w, const char *gw_sid, json_t *msg);
/* Sends logging/setLevel to every upstream session this gateway session has and answers req
 * (id) once all have answered. */
void relay_set_level_all(worker *w, http_req *req, json_t *id, const char *gw_sid, const char *level);
#endif
