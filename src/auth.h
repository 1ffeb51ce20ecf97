/* auth — the gateway as an OAuth 2.1 resource server: bearer tokens (JWT) verified against each
 * trusted issuer's JWKS, claims checked (iss, aud, exp/nbf, scopes), verified tokens cached per
 * worker, 401/403 answers with WWW-Authenticate pointing at the protected resource metadata.
 *
 * Key sets are fetched on the control loop (discovery: <issuer>/.well-known/openid-configuration,
 * then RFC 8414's /.well-known/oauth-authorization-server; or the configured jwksUri), refreshed
 * every 5 minutes and on an unknown kid (at most once per 10 s per issuer), and kept when the
 * issuer is unreachable. Workers read the current set of an issuer under a mutex held for one
 * reference count. */
#ifndef GW_AUTH_H
#define GW_AUTH_H
#include <stdint.h>
#include <jansson.h>
#include "gateway.h"

typedef struct auth_identity {
    uint8_t  key[32];       /* SHA-256 of the token: the cache key */
    int64_t  exp;           /* never used past this */
    uint8_t  subject[16];   /* truncated SHA-256 of iss "\n" sub: what sessions are bound to */
    char     sub[256];
    char     iss[512];
    char     client_id[256];
    json_t  *claims;        /* the verified payload (owned; read by the loop that cached it) */
    void    *issuer;        /* the issuer whose key verified it */
    uint64_t keys_gen;      /* that issuer's key-set generation when last checked */
    char     kid[128];      /* the key that verified it */
    int      aud_vs;        /* -1: its audience is the gateway's resource (good on every path);
                             * else the virtual server whose path-form resource it was issued for
                             * (good only on /v/<that name>/mcp) */
    uint64_t aud_gen;       /* the config generation aud_vs is an index of */
    struct authz_ident *authz;  /* authorization's cache for this token (authz.c; this loop's) */
} auth_identity;

typedef struct auth_cache auth_cache;   /* one per worker: no locks on the hot path */

int  auth_init(gateway *gw);                       /* from the config; 0 when auth is off. Starts
                                                    * authorization (authz_init) too: exits if it fails */
void auth_start(gateway *gw, uv_loop_t *ctl_loop); /* begins fetching key sets */
void auth_stop(void);   /* control loop: stops fetching (keys stay usable) */
void auth_free(void);   /* after the workers have stopped */
int  auth_enabled(void);
/* Paths never authenticated: /.well-known/ (by prefix), /healthz, /readyz, /status unless
 * auth.protectStatus. Never decided by the query or a substring. */
int  auth_exempt(const gateway *gw, const char *path);

auth_cache *auth_cache_new(size_t slots);
void        auth_cache_free(auth_cache *c);

/* Authenticates req, a request for the endpoint of virtual server vs (the path form
 * /v/<name>/mcp; -1 for /mcp and every other path): its tokens may also carry that path's own
 * resource URI as audience. Returns the identity (valid until the next call on this worker's
 * cache), or NULL after answering the request with 401/403 (the challenge names the metadata of
 * the path's resource). */
const auth_identity *auth_check(worker *w, http_req *req, int vs);

/* Counters for /metrics. */
enum { AUTH_STAT_VERIFIED, AUTH_STAT_CACHED, AUTH_STAT_UNAUTHORIZED, AUTH_STAT_FORBIDDEN, AUTH_STAT_KEYS_LOADED,
       AUTH_STAT_KEYS_FAILED, AUTH_STAT_COUNT };
uint64_t auth_stat(int which);

/* For tests and /status: how many keys an issuer has now (-1 unknown issuer). */
long auth_issuer_keys(size_t i);
#endif
