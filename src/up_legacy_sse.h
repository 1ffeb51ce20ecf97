/* up_legacy_sse — an upstream MCP server over the legacy HTTP+SSE transport (2024-11-05): GET
 * the server's url opens an SSE stream whose first `endpoint` event names the URL to POST
 * messages to (same origin only); the server's messages, responses included, arrive as
 * `message` events on that stream. Reconnects with back-off when the stream ends. See up_link.h. */
#ifndef GW_UP_LEGACY_SSE_H
#define GW_UP_LEGACY_SSE_H
#include <uv.h>
#include "config.h"
#include "up_link.h"

/* Connects to cfg->url on loop, at once, with cfg->credential as Authorization and cfg->ca_cert
 * (or ca_pem, the gateway's bundle) as extra trust. cfg and ca_pem must outlive the link.
 * max_event caps one SSE event. */
up_link *up_legacy_sse_new(uv_loop_t *loop, const gw_server_cfg *cfg, const char *url, const char *ca_pem,
                           size_t max_event, const up_link_cb *cb, void *ud);
#endif
