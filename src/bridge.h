/* bridge — upstream servers that do not speak Streamable HTTP (stdio children, legacy HTTP+SSE
 * servers) made to look like Streamable HTTP ones, so that the rest of the gateway (upmgr,
 * relay) treats every upstream alike.
 *
 * On the control loop, one private HTTP endpoint on 127.0.0.1 (random port) serves every such
 * server at http://127.0.0.1:<port>/<secret>/<slot>; the secret is 32 random bytes drawn at
 * start, so nothing else on the machine can use it. Each server has one link (up_link.h: a child
 * or a legacy SSE connection), initialized once by the bridge with the client capabilities the
 * gateway can route (sampling, elicitation, roots); the bridge's own sessions (one per gateway
 * session and one for upmgr) share it, with request ids and progress tokens remapped. See
 * docs/architecture.md, "Stdio and legacy SSE upstreams". */
#ifndef GW_BRIDGE_H
#define GW_BRIDGE_H
#include <stddef.h>
#include <uv.h>
#include "gateway.h"

typedef struct bridge bridge;

/* When some server of gw->cfg is stdio or legacy SSE: listens, starts the links of the enabled
 * ones, and replaces those servers' url in gw->cfg with their bridge URL (the legacy SSE url is
 * kept by the bridge). Must run before the workers and upmgr start, which read the urls.
 * Returns 0 with *out (NULL when no server needs the bridge), or -1 with a message in err. */
int  bridge_start(gateway *gw, uv_loop_t *loop, bridge **out, char *err, size_t errlen);

/* Reload (src/reload.c), on the control loop. bridge_add, before the config that has slot is
 * published: gives sc (a stdio or legacy SSE server in a new slot) its bridge url, starting the
 * bridge when there is none (*b NULL); gateway_ca: that config's gatewayCACertPEM (copied).
 * bridge_reload, once it is published: removed slots take no new session and stop once their
 * calls in flight end (within --upstream-timeout); start: the added slots start serving. */
int  bridge_add(bridge **b, gateway *gw, uv_loop_t *loop, gw_server_cfg *sc, size_t slot, const char *gateway_ca,
                char *err, size_t errlen);
void bridge_reload(bridge *b, int start);
void bridge_forget(bridge *b, size_t slot);   /* undoes bridge_add: the reload failed later on */

/* Drains, then stops: new requests get 503 at once, the calls in flight may finish (within
 * --upstream-timeout, like the workers' drain); then the sessions end, the children get SIGTERM,
 * the connections close, and the bridge frees itself once every handle has closed. NULL is fine. */
void bridge_stop(bridge *b);
#endif
