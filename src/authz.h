/* authz — who may see and call which tool, prompt and resource (docs/authorization.md).
 *
 * One decision, applied the same way to lists (tools/list, prompts/list, resources/list,
 * resources/templates/list show only what the caller may use) and to calls (tools/call,
 * prompts/get, resources/read|subscribe|unsubscribe, completion/complete), made of, in order:
 *   1. the virtual server the request selected (path /v/<name>/mcp or X-Mcp-Virtualserver);
 *   2. the trusted header x-mcp-authorized (ES256, TRUSTED_HEADER_PUBLIC_KEY), when in use;
 *   3. the `authorization:` block: its rules (first match wins), then the Keycloak roles
 *      convention (resource_access["<server name>"].roles holds "tool:<upstream name>"), then
 *      its default. Without the block, 3 allows everything (as before it existed).
 * Every step must allow. The block is compiled once per config, at start and on each reload
 * (cfg->policy, read through the loop's config worker.cfg): servers resolved to slot indexes,
 * globs split at '*', claim paths split; what a token's claims make of the rules' conditions is
 * computed once per token and config (authz_subject, kept with the verified token in the loop's
 * token cache), so a decision is bit tests and name matches, without allocation. Filtered lists
 * are cached per caller, catalog version and config. */
#ifndef GW_AUTHZ_H
#define GW_AUTHZ_H
#include <jansson.h>
#include <stdint.h>
#include "catalog.h"
#include "config.h"
#include "gateway.h"

struct auth_identity;
struct authz_ident;

/* The methods a rule may name (`methods:`), in bit order. */
enum { AUTHZ_TOOLS_CALL, AUTHZ_PROMPTS_GET, AUTHZ_RESOURCES_READ, AUTHZ_RESOURCES_SUBSCRIBE,
       AUTHZ_RESOURCES_UNSUBSCRIBE, AUTHZ_COMPLETE, AUTHZ_METHODS };
#define AUTHZ_METHOD_LIST \
    "tools/call, prompts/get, resources/read, resources/subscribe, resources/unsubscribe, completion/complete"
int         authz_method_id(const char *name);   /* -1 when not one of them */
const char *authz_method_name(int id);

/* The seed's answer to a refused call (HTTP 403). */
#define AUTHZ_FORBIDDEN_BODY "{\"error\":\"Forbidden\",\"message\":\"MCP Access denied: Insufficient permissions.\"}"

/* ---- the compiled policy (the `authorization:` block) -------------------------------------- */

typedef struct authz_policy authz_policy;
typedef struct authz_subject authz_subject;

typedef struct authz_result {
    int         allow;
    const char *rule;    /* what decided: a rule's name, "roles", "default", "virtualServer",
                          * "trustedHeader", "none" (static or owned by the policy) */
    const char *scope;   /* denied, and a token with these scopes would be allowed: the value of
                          * the insufficient_scope challenge (owned by the policy); else NULL */
    int         vs;      /* denied by the virtual server: the name is not part of it */
} authz_result;

/* Compiles cfg->authz (NULL with no block: everything allowed). The policy points into cfg,
 * which must outlive it. NULL with a message "file:line: what" on error. */
authz_policy *authz_policy_new(const gw_config *cfg, const char *file, char *err, size_t errlen);
void          authz_policy_free(authz_policy *p);
/* Compiles and drops the policy, and checks the trusted-header key: what start would refuse. */
int           authz_validate(const gw_config *cfg, char *err, size_t errlen);

/* What claims (borrowed, NULL = anonymous) make of the policy's conditions. */
authz_subject *authz_subject_new(const authz_policy *p, json_t *claims);   /* NULL: out of memory */
void           authz_subject_free(authz_subject *s);

/* The policy's decision for one name (the upstream's own tool/prompt name, or resource URI or
 * URI template) of server (index into cfg->servers). kind: CAT_TOOLS, CAT_PROMPTS,
 * CAT_RESOURCES or CAT_TEMPLATES; method: AUTHZ_*. Allocates nothing. Returns r->allow. */
int authz_eval(const authz_policy *p, const authz_subject *s, size_t server, enum cat_kind kind, const char *name,
               int method, authz_result *r);

/* '*' matches any run of characters (none included); everything else itself. */
int authz_glob_match(const char *pattern, const char *s);

/* ---- the gateway's authorization (main, workers) ------------------------------------------- */

/* Compiles the policy (gw->cfg->policy, unless attached already) and loads the trusted-header key. */
int  authz_init(gateway *gw);
/* Compiles cfg's authorization block against its server slots into cfg->policy (NULL without a
 * block; the config's owner frees it with authz_policy_free). -1 with "file:line: what". */
int  authz_attach(gw_config *cfg, char *err, size_t errlen);
void authz_free(void);
int  authz_hide_denied(void);
/* The virtual server named name[0..len) (index into cfg->vservers), or -1. */
int  authz_vs_find(const gw_config *cfg, const char *name, size_t len);
/* "/v/<name>/mcp" (name used literally, '/' included): its index; -1 for an unknown name;
 * -2 when the path has not that form. */
int  authz_vs_path(const gw_config *cfg, const char *path);

/* One request's view: who asks, through which virtual server, with which trusted header. */
typedef struct authz_req {
    worker                     *w;
    http_req                   *req;
    const struct auth_identity *id;       /* NULL when authentication is off */
    int                         vs;       /* -1: none */
    const char                 *sid;      /* the gateway session, for the audit log */
    int                         th;       /* trusted header state (authz.c), 0 = not looked at yet */
    const void                 *caps;     /* its capabilities when valid */
    uint64_t                    th_key;   /* its hash, for the list cache */
} authz_req;

void authz_req_init(authz_req *az, worker *w, http_req *req, const struct auth_identity *id, int vs, const char *sid);
/* The list result ({"tools":[...]} etc.) this caller may see: the catalog's own when nothing
 * filters, else the entries of the caller's cached entry set, concatenated in this loop's
 * buffer. Valid until the next authz call of this loop. */
const char *authz_list(authz_req *az, const catalog *c, enum cat_kind kind, size_t *len);
/* May the caller use entry e (of kind) with method? Fills r; logs the audit line. */
int authz_call(authz_req *az, enum cat_kind kind, const cat_entry *e, int method, authz_result *r);

/* The per-token cache kept in auth_identity (auth.c frees it with the identity). */
void authz_ident_free(struct authz_ident *ai);
#endif
