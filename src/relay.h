/* relay — forwards one client request to the upstream that owns it and relays the answer
 * (JSON or SSE) back with the client's id. See relay.c. */
#ifndef GW_RELAY_H
#define GW_RELAY_H
#include "gateway.h"
#include <jansson.h>

/* msg: the client's request with params already rewritten for the upstream (stolen). */
void relay_start(worker *w, http_req *req, const char *gw_sid, uint8_t proto, size_t server, json_t *msg);
/* Sends logging/setLevel to every upstream session this gateway session has (nobody waits). */
void relay_set_level_all(worker *w, const char *gw_sid, const char *level);
#endif
