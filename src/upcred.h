/* upcred — the credentials the gateway presents to each upstream (docs/external-servers.md).
 *
 * Per server, from its config entry (config.h, "upstream credentials"):
 *   - the gateway's own credential, used for discovery (upmgr) and for calls when nothing
 *     per-caller is configured: a static Authorization (credential, credentialEnv,
 *     credentialFile — the file read again on a 401) or an OAuth client-credentials token
 *     (clientCredentials), fetched from the IdP, cached until shortly before its expiry;
 *   - a per-caller credential for calls made on behalf of a client: an RFC 8693 token
 *     exchange of the caller's token (tokenExchange), cached per (caller, server) — the
 *     audience and scope are the server's — until shortly before its expiry and never past
 *     the caller's own token; or, only on request, the caller's own token (forwardAuthorization);
 *   - extra headers, the CAs it is verified against (system bundle + gatewayCACertPEM + caCert),
 *     a client certificate, tlsServerName (upcred_prepare).
 *
 * Tokens are fetched asynchronously on the asking loop's upclient. The cache is shared by every
 * loop (one mutex, held for lookups only); a token is fetched once however many loops ask at the
 * same time (single flight): the asking loop's waiters are resumed when its fetch ends, the other
 * loops' waiters poll the entry on a short timer. A failed fetch is remembered for a second, so
 * that a burst of calls does not hammer the IdP.
 *
 * The caller: a verified subject (the session's subject hash) when authentication is on, else
 * the hash of the bearer token the request carries. Its latest token is kept (until its exp) so
 * that messages sent outside a request (cancellations, answers to server requests) and token
 * refreshes can use it.
 *
 * Secrets never appear in logs, /status or error messages. Servers reached through the bridge
 * (stdio, legacy SSE) get nothing from here: the bridge holds their connection. */
#ifndef GW_UPCRED_H
#define GW_UPCRED_H
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "gateway.h"

typedef struct upcred_who {
    uint8_t key[16];   /* the caller's cache key */
    int     set;       /* 0: no caller known (no token, no subject) */
} upcred_who;

typedef struct upcred_op upcred_op;
/* authorization: the Authorization header value (malloc'd, the callee frees it) or NULL for
 * none; err: NULL, or why there is no credential (valid during the call). Never called from
 * inside upcred_get. */
typedef void (*upcred_fn)(void *ud, char *authorization, const char *err);

enum { UPCRED_READY = 0, UPCRED_PENDING = 1, UPCRED_FAILED = -1 };

/* Builds the per-server state: once, then for the server slots a reload adds (idempotent; every
 * entry point below calls it; reload.c calls it with a new config before publishing it). */
void upcred_init(const gw_config *cfg);
void upcred_free(void);   /* after every loop has stopped (tests) */

/* Fills u's TLS and header fields for server: ca_pem (gatewayCACertPEM + caCert), headers,
 * client_cert/client_key, tls_server_name. Pointers stay valid for the process's life. */
void upcred_prepare(const gw_config *cfg, size_t server, up_req *u);
/* The server's calls need the caller (tokenExchange or forwardAuthorization). */
int  upcred_needs_caller(const gw_config *cfg, size_t server);
/* Who calls, from a request in hand (its Authorization header and its session's claims: cl, or
 * NULL to decode them from gw_sid);
 * remembers the caller's latest token. gw_sid: the session, for upcred_caller_of_session. */
void upcred_caller(gateway *gw, http_req *req, const session_claims *cl, const char *gw_sid, upcred_who *who);
/* Who owns a session, without a request (messages sent outside one). */
void upcred_caller_of_session(gateway *gw, const char *gw_sid, upcred_who *who);

/* The Authorization for one request to server: who NULL = the gateway's own (discovery), else on
 * behalf of that caller. UPCRED_READY: *auth set (malloc'd or NULL for none); UPCRED_FAILED: err
 * set (no secret in it); UPCRED_PENDING: fn(ud, …) follows on this loop, *op cancels it. loop and
 * *up: the asking loop and its upstream client, where a fetch runs; a waiter whose *up has become
 * NULL (the loop is stopping) gets an error. */
int  upcred_get(gateway *gw, uv_loop_t *loop, upclient **up, size_t server, const upcred_who *who, char **auth,
                char *err, size_t errlen, upcred_fn fn, void *ud, upcred_op **op);
void upcred_cancel(upcred_op *op);   /* fn is not called */

/* The upstream answered 401 (or 403) to a request sent with auth (as upcred_get gave it): drop
 * that token (also from the shared cache, through loop's Redis connection), read a credential file again. Returns 1 when another attempt may get another
 * credential (once per request: the caller keeps count), 0 when it would be the same. */
int  upcred_rejected(gateway *gw, uv_loop_t *loop, size_t server, const upcred_who *who, const char *auth);

/* The loop is stopping (before its upclient is freed): its waiters get "the gateway is stopping",
 * its fetches are dropped. */
void upcred_loop_stop(uv_loop_t *loop);

/* ---- exposed for the unit tests ---------------------------------------------------------- */
/* application/x-www-form-urlencoded "&name=value" appended to *b (NULL value: nothing). */
struct buf;
void upcred_form_add(struct buf *b, const char *name, const char *value);
/* A token endpoint's 2xx body → "Bearer <access_token>" (malloc'd) and the time (unix ms) to
 * stop using it: shortly before its expiry (expires_in, else the JWT's exp, else 5 minutes),
 * and not after cap_ms when cap_ms > 0. NULL with err on a bad answer. */
char *upcred_parse_token(const char *body, size_t len, int64_t now_ms, int64_t cap_ms, int64_t *until_ms, char *err,
                         size_t errlen);
/* The "exp" claim of a JWT (unix seconds), 0 when it has none or is no JWT (nothing verified). */
int64_t upcred_jwt_exp(const char *token);
#endif
