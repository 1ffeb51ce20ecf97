/* config_diff — what a reload changes (config_diff.h). Comparisons look at values as loaded
 * (secrets resolved), and report setting names only: nothing here prints a value but prefixes. */
#include "config_diff.h"
#include "buf.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noreturn)) static void oom(void)
{
    fputs("mcp-gateway: out of memory while comparing configs\n", stderr);
    abort();
}

static int str_eq(const char *a, const char *b) { return a == b || (a && b && !strcmp(a, b)); }

static int list_eq(const gw_strlist *a, const gw_strlist *b)
{
    if (a->n != b->n) return 0;
    for (size_t i = 0; i < a->n; i++)
        if (!str_eq(a->v[i], b->v[i])) return 0;
    return 1;
}

static int names_eq(char *const *a, size_t na, char *const *b, size_t nb)
{
    if (na != nb) return 0;
    for (size_t i = 0; i < na; i++)
        if (!str_eq(a[i], b[i])) return 0;
    return 1;
}

static int oauth_eq(const gw_oauth_client_cfg *a, const gw_oauth_client_cfg *b)
{
    if (!a || !b) return a == b;
    return str_eq(a->token_url, b->token_url) && str_eq(a->client_id, b->client_id) &&
           str_eq(a->client_secret, b->client_secret) && str_eq(a->secret_file, b->secret_file) &&
           a->auth_post == b->auth_post && str_eq(a->audience, b->audience) && str_eq(a->scope, b->scope) &&
           str_eq(a->resource, b->resource);
}

/* ---- servers ------------------------------------------------------------------------------------ */

static void add_name(buf *b, size_t *n, const char *name)
{
    if ((*n)++) buf_appends(b, ", ");
    buf_appends(b, name);
}

/* The url as written: a legacy SSE server's slot holds the bridge's url. */
static const char *written_url(const gw_server_cfg *s) { return s->written_url ? s->written_url : s->url; }

size_t config_server_diff(const gw_server_cfg *a, const char *ca_a, const gw_server_cfg *b, const char *ca_b,
                          char *out, size_t cap)
{
    static const gw_upcred_cfg none;
    const gw_upcred_cfg *ca = a->cred ? a->cred : &none, *cb = b->cred ? b->cred : &none;
    buf o = {out, 0, cap, cap ? cap - 1 : 0};
    size_t n = 0;
    if (cap) out[0] = '\0';
    if (!a->enabled != !b->enabled) add_name(&o, &n, "state");
    if (a->transport != b->transport) add_name(&o, &n, "transport");
    if (a->transport != GW_TRANSPORT_STDIO && b->transport != GW_TRANSPORT_STDIO) {
        if (!str_eq(written_url(a), written_url(b))) add_name(&o, &n, "url");
        if (!str_eq(ca_a, ca_b)) add_name(&o, &n, "gatewayCACertPEM");
    }
    if (!str_eq(a->command, b->command)) add_name(&o, &n, "command");
    if (!list_eq(&a->args, &b->args)) add_name(&o, &n, "args");
    if (!list_eq(&a->env, &b->env)) add_name(&o, &n, "env");
    if (!str_eq(a->cwd, b->cwd)) add_name(&o, &n, "cwd");
    if (!a->per_session != !b->per_session) add_name(&o, &n, "perSession");
    if (a->per_session && b->per_session && a->max_children != b->max_children) add_name(&o, &n, "maxChildren");
    if (!str_eq(a->credential, b->credential)) add_name(&o, &n, "credential");
    if (!str_eq(ca->cred_file, cb->cred_file)) add_name(&o, &n, "credentialFile");
    if (!str_eq(a->ca_cert, b->ca_cert)) add_name(&o, &n, "caCert");
    if (!list_eq(&ca->headers, &cb->headers)) add_name(&o, &n, "headers");
    if (!oauth_eq(ca->exchange, cb->exchange)) add_name(&o, &n, "tokenExchange");
    if (!oauth_eq(ca->client, cb->client)) add_name(&o, &n, "clientCredentials");
    if (!ca->forward != !cb->forward) add_name(&o, &n, "forwardAuthorization");
    if (!str_eq(ca->client_cert, cb->client_cert)) add_name(&o, &n, "clientCert");
    if (!str_eq(ca->client_key, cb->client_key)) add_name(&o, &n, "clientKey");
    if (!str_eq(ca->tls_server_name, cb->tls_server_name)) add_name(&o, &n, "tlsServerName");
    return n;
}

/* ---- virtual servers, authorization, what needs a restart ------------------------------------------ */

static int vservers_eq(const gw_config *a, const gw_config *b)
{
    if (a->n_vservers != b->n_vservers) return 0;
    for (size_t i = 0; i < a->n_vservers; i++) {
        const gw_vserver_cfg *x = &a->vservers[i], *y = &b->vservers[i];
        if (!str_eq(x->name, y->name) || x->tools_set != y->tools_set || x->prompts_set != y->prompts_set ||
            !names_eq(x->tools, x->n_tools, y->tools, y->n_tools) ||
            !names_eq(x->prompts, x->n_prompts, y->prompts, y->n_prompts))
            return 0;
    }
    return 1;
}

static int rule_eq(const gw_authz_rule_cfg *x, const gw_authz_rule_cfg *y)
{
    if (!str_eq(x->name, y->name) || x->allow != y->allow || x->kinds != y->kinds || x->methods != y->methods ||
        !list_eq(&x->servers, &y->servers) || !list_eq(&x->groups, &y->groups) || !list_eq(&x->scopes, &y->scopes) ||
        !list_eq(&x->realm_roles, &y->realm_roles) || !list_eq(&x->subjects, &y->subjects) ||
        !list_eq(&x->client_ids, &y->client_ids) || x->n_claims != y->n_claims)
        return 0;
    for (int k = 0; k < GW_AUTHZ_KINDS; k++)
        if (!list_eq(&x->names[k], &y->names[k])) return 0;
    for (size_t j = 0; j < x->n_claims; j++)
        if (!list_eq(&x->claims[j].path, &y->claims[j].path) || x->claims[j].contains != y->claims[j].contains ||
            !str_eq(x->claims[j].value, y->claims[j].value))
            return 0;
    return 1;
}

static int authz_eq(const gw_authz_cfg *a, const gw_authz_cfg *b)
{
    if (a->on != b->on || a->mode != b->mode || a->default_allow != b->default_allow ||
        a->hide_denied != b->hide_denied || a->audit != b->audit || a->n_rules != b->n_rules)
        return 0;
    for (int k = 0; k < GW_AUTHZ_KINDS; k++)
        if (!str_eq(a->role_prefix[k], b->role_prefix[k])) return 0;
    for (size_t i = 0; i < a->n_rules; i++)
        if (!rule_eq(&a->rules[i], &b->rules[i])) return 0;
    return 1;
}

static int auth_eq(const gw_auth_cfg *a, const gw_auth_cfg *b)
{
    if (!str_eq(a->resource_name, b->resource_name) || !str_eq(a->resource, b->resource) ||
        !list_eq(&a->authorization_servers, &b->authorization_servers) ||
        !list_eq(&a->bearer_methods, &b->bearer_methods) || !list_eq(&a->scopes_supported, &b->scopes_supported) ||
        a->enabled != b->enabled || a->n_issuers != b->n_issuers || !list_eq(&a->audiences, &b->audiences) ||
        a->leeway_s != b->leeway_s || !list_eq(&a->required_scopes, &b->required_scopes) ||
        a->protect_status != b->protect_status)
        return 0;
    for (size_t i = 0; i < a->n_issuers; i++)
        if (!str_eq(a->issuers[i].issuer_url, b->issuers[i].issuer_url) ||
            !str_eq(a->issuers[i].jwks_uri, b->issuers[i].jwks_uri))
            return 0;
    return 1;
}

/* ---- the whole diff ------------------------------------------------------------------------------- */

void config_diff(const gw_config *running, const gw_config *next, cfgdiff *d)
{
    memset(d, 0, sizeof *d);
    size_t n_live = gw_config_n_live(running);
    d->n_servers = next->n_servers;
    d->servers = calloc(next->n_servers ? next->n_servers : 1, sizeof *d->servers);
    unsigned char *keeps = calloc(n_live ? n_live : 1, 1);   /* per running server: a next one keeps it */
    if (!d->servers || !keeps) oom();
    for (size_t i = 0; i < next->n_servers; i++) {
        const gw_server_cfg *ns = &next->servers[i];
        cfgdiff_server *e = &d->servers[i];
        size_t j = 0;
        while (j < n_live && strcmp(running->servers[gw_config_live(running, j)].name, ns->name)) j++;
        if (j < n_live) {
            const gw_server_cfg *rs = &running->servers[gw_config_live(running, j)];
            e->old_slot = gw_config_live(running, j);
            if (!config_server_diff(rs, running->gateway_ca_pem, ns, next->gateway_ca_pem, e->changed, sizeof e->changed)) {
                e->kept = 1;
                e->slot = e->old_slot;
                e->prefix_changed = !str_eq(rs->prefix, ns->prefix);
                e->concurrency_changed = rs->max_concurrency != ns->max_concurrency;
                keeps[j] = 1;
                continue;
            }
            e->replaced = 1;
        }
        e->slot = running->n_servers + d->n_new++;
    }
    d->removed = calloc(n_live ? n_live : 1, sizeof *d->removed);
    if (!d->removed) oom();
    for (size_t j = 0; j < n_live; j++)
        if (!keeps[j]) d->removed[d->n_removed++] = gw_config_live(running, j);
    free(keeps);
    d->vservers_changed = !vservers_eq(running, next);
    d->authz_changed = !authz_eq(&running->authz, &next->authz);
    buf r = {d->restart, 0, sizeof d->restart, sizeof d->restart - 1};
    size_t nr = 0;
    if (!auth_eq(&running->auth, &next->auth)) add_name(&r, &nr, "auth / oauthProtectedResource");
    if (!str_eq(running->authz.trusted_key, next->authz.trusted_key))
        add_name(&r, &nr, "authorization.trustedHeaderPublicKey");
}

void config_diff_free(cfgdiff *d)
{
    free(d->servers);
    free(d->removed);
    memset(d, 0, sizeof *d);
}

static void sep(buf *b) { if (b->len) buf_appends(b, "; "); }

void config_diff_describe(const gw_config *running, const gw_config *next, const cfgdiff *d, char *out, size_t cap)
{
    buf b = {out, 0, cap, cap ? cap - 1 : 0};
    if (!cap) return;
    out[0] = '\0';
    const char *what[2] = {"added", "replaced"};
    for (int r = 0; r < 2; r++) {
        size_t n = 0;
        for (size_t i = 0; i < d->n_servers; i++) {
            const cfgdiff_server *e = &d->servers[i];
            if (e->kept || e->replaced != r) continue;
            if (!n++) { sep(&b); buf_printf(&b, "%s ", what[r]); }
            else buf_appends(&b, ", ");
            buf_appends(&b, next->servers[i].name);
            if (r) buf_printf(&b, " (%s)", e->changed);
        }
    }
    size_t n = 0;
    for (size_t k = 0; k < d->n_removed; k++) {
        const char *name = running->servers[d->removed[k]].name;
        int replaced = 0;
        for (size_t i = 0; i < d->n_servers && !replaced; i++)
            replaced = d->servers[i].replaced && d->servers[i].old_slot == d->removed[k];
        if (replaced) continue;
        if (!n++) { sep(&b); buf_appends(&b, "removed "); }
        else buf_appends(&b, ", ");
        buf_appends(&b, name);
    }
    for (size_t i = 0; i < d->n_servers; i++) {
        const cfgdiff_server *e = &d->servers[i];
        const gw_server_cfg *rs = e->kept ? &running->servers[e->slot] : NULL, *ns = &next->servers[i];
        if (e->prefix_changed) {
            sep(&b);
            buf_printf(&b, "prefix of %s: \"%s\" -> \"%s\"", ns->name, rs->prefix ? rs->prefix : "", ns->prefix ? ns->prefix : "");
        }
        if (e->concurrency_changed) {
            sep(&b);
            buf_printf(&b, "maxConcurrency of %s: %ld -> %ld", ns->name, rs->max_concurrency, ns->max_concurrency);
        }
    }
    if (d->vservers_changed) { sep(&b); buf_printf(&b, "virtual servers (%zu)", next->n_vservers); }
    if (d->authz_changed) { sep(&b); buf_appends(&b, next->authz.on ? "authorization" : "authorization (removed)"); }
    if (!b.len) buf_appends(&b, "no change");
}
