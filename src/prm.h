/* prm — OAuth 2.0 Protected Resource Metadata (RFC 9728) at /.well-known/oauth-protected-resource
 * and every path under it, in Kuadrant's field order and CORS headers; never behind auth. Each
 * virtual server's path form /v/<name>/mcp has its own document at its path-inserted location. */
#ifndef GW_PRM_H
#define GW_PRM_H
#include "gateway.h"

/* Builds the gateway's own document and metadata URL (once, at start: the auth blocks need a
 * restart), and cfg->prm. */
int  prm_init(gw_config *cfg);
void prm_free(void);
/* The documents of cfg's virtual servers (their path forms), kept with it (cfg->prm): a reload
 * builds them for the new config. NULL when out of memory (the gateway's own serve then). */
struct prm_set *prm_set_new(const gw_config *cfg);
void prm_set_free(struct prm_set *set);
/* Serves the document of the request's path (virtual servers: the loop's config, w->cfg). */
void prm_handle(worker *w, http_req *req);
/* "<origin of resource>/.well-known/oauth-protected-resource<path of resource>", or the
 * relative form when the resource is not absolute. */
const char *prm_url(void);
/* The same for virtual server vs (index into cfg->vservers) and its path form /v/<name>/mcp
 * (resource "<base>/v/<name>/mcp", where <base> is the resource without its final /mcp);
 * vs < 0: the gateway's own. */
const char *prm_url_vs(const gw_config *cfg, int vs);
const char *prm_resource_vs(const gw_config *cfg, int vs);   /* that resource URI (an audience its tokens may carry) */
#endif
