/* prm — OAuth 2.0 Protected Resource Metadata (RFC 9728) at /.well-known/oauth-protected-resource
 * and every path under it, in Kuadrant's field order and CORS headers; never behind auth. Each
 * virtual server's path form /v/<name>/mcp has its own document at its path-inserted location. */
#ifndef GW_PRM_H
#define GW_PRM_H
#include "gateway.h"

/* Builds the document and the metadata URL from the config (once, at start). */
int  prm_init(const gw_config *cfg);
void prm_free(void);
void prm_handle(worker *w, http_req *req);
/* "<origin of resource>/.well-known/oauth-protected-resource<path of resource>", or the
 * relative form when the resource is not absolute. */
const char *prm_url(void);
/* The same for virtual server vs's path form /v/<name>/mcp (resource "<base>/v/<name>/mcp",
 * where <base> is the resource without its final /mcp); vs < 0: the gateway's own. */
const char *prm_url_vs(int vs);
const char *prm_resource_vs(int vs);   /* that resource URI (an audience its tokens may carry) */
#endif
