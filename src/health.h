/* health — /healthz, /readyz, /status and /status/<name> (Kuadrant's JSON shape). */
#ifndef GW_HEALTH_H
#define GW_HEALTH_H
#include "gateway.h"

void health_handle(worker *w, http_req *req);
#endif
