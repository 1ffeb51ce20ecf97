/* authz — who may see and call what (see authz.h and docs/authorization.md). */
#include "authz.h"
#include "auth.h"
#include "b64.h"
#include "buf.h"
#include "log.h"
#include "prm.h"
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static const char *const method_names[AUTHZ_METHODS] = {
    "tools/call", "prompts/get", "resources/read", "resources/subscribe", "resources/unsubscribe", "completion/complete",
};

/* The method whose decision shows an entry in its list. */
static const int list_method[CAT_KINDS] = {AUTHZ_TOOLS_CALL, AUTHZ_PROMPTS_GET, AUTHZ_RESOURCES_READ,
                                           AUTHZ_RESOURCES_READ};
/* Catalog kind → the block's kind (templates are resources). */
static const int akind[CAT_KINDS] = {GW_AUTHZ_TOOL, GW_AUTHZ_PROMPT, GW_AUTHZ_RESOURCE, GW_AUTHZ_RESOURCE};
static const char *const default_prefix[GW_AUTHZ_KINDS] = {"tool:", "prompt:", "resource:"};

int authz_method_id(const char *name)
{
    for (int i = 0; i < AUTHZ_METHODS; i++)
        if (!strcmp(method_names[i], name)) return i;
    return -1;
}

const char *authz_method_name(int id) { return id >= 0 && id < AUTHZ_METHODS ? method_names[id] : "?"; }

/* For compiling a policy (start, reload), where running out of memory is fatal as in config.c;
 * the request path uses calloc and refuses the request instead. */
static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fputs("mcp-gateway: out of memory (authorization)\n", stderr);
        abort();
    }
    return p;
}

static inline int bit(const uint64_t *set, size_t i) { return (int)((set[i >> 6] >> (i & 63)) & 1); }
static inline void bit_set(uint64_t *set, size_t i) { set[i >> 6] |= (uint64_t)1 << (i & 63); }

/* ---- globs: split at '*' once; matched without allocation ------------------------------------- */

typedef struct seg { const char *s; size_t len; } seg;
typedef struct glob {
    const char *pat;   /* as written (owned by the config) */
    seg        *seg;   /* the literal runs between '*'s; n == 1: no '*' (exact) */
    size_t      n;
} glob;

static void glob_compile(glob *g, const char *pat)
{
    g->pat = pat;
    g->n = 1;
    for (const char *p = pat; *p; p++) g->n += *p == '*';
    g->seg = xcalloc(g->n, sizeof *g->seg);
    size_t i = 0;
    for (const char *p = pat;; p++) {
        const char *e = strchr(p, '*');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        g->seg[i++] = (seg){p, l};
        if (!e) break;
        p = e;
    }
}

static int glob_match(const glob *g, const char *s)
{
    if (g->n == 1) return strcmp(g->pat, s) == 0;
    size_t sl = strlen(s);
    const seg *first = &g->seg[0], *last = &g->seg[g->n - 1];
    if (sl < first->len + last->len || memcmp(s, first->s, first->len) || memcmp(s + sl - last->len, last->s, last->len))
        return 0;
    /* the middle runs in order, each at its leftmost place: right for '*'-only patterns */
    const char *p = s + first->len, *end = s + sl - last->len;
    for (size_t i = 1; i + 1 < g->n; i++) {
        const seg *m = &g->seg[i];
        if (!m->len) continue;
        const char *f = memmem(p, (size_t)(end - p), m->s, m->len);
        if (!f) return 0;
        p = f + m->len;
    }
    return 1;
}

int authz_glob_match(const char *pattern, const char *s)
{
    glob g;
    glob_compile(&g, pattern);
    int m = glob_match(&g, s);
    free(g.seg);
    return m;
}

/* ---- the compiled policy ---------------------------------------------------------------------- */

typedef struct claim_cond {
    const char **path;  size_t n_path;
    int          contains;
    const char  *value;
    int          is_int;  long long ival;
    int          is_num;  double    dval;
} claim_cond;

typedef struct crule {
    char       *name;                       /* owned: the rule's name or "rule <n> (line <l>)" */
    int         allow;
    uint64_t   *servers;                    /* bitset over the config's servers; NULL = any */
    unsigned    kinds;                      /* bit per GW_AUTHZ_* kind it applies to */
    glob       *names[GW_AUTHZ_KINDS];      /* none for a kind it applies to: every name */
    size_t      n_names[GW_AUTHZ_KINDS];
    unsigned    methods;                    /* 0 = every method */
    const gw_authz_rule_cfg *cfg;           /* the condition values */
    claim_cond *claims;
    char       *scope;                      /* owned: scopes + required scopes, for the challenge */
} crule;

struct authz_policy {
    const gw_config *cfg;
    size_t      n_servers;                  /* the server slots its bitsets cover */
    int         mode;
    int         default_allow;
    crule      *rules;   size_t n_rules;
    size_t      words;                      /* uint64 words of a bitset over the rules */
    const char *prefix[GW_AUTHZ_KINDS];
    size_t      prefix_len[GW_AUTHZ_KINDS];
};

struct authz_subject {
    json_t   *claims;         /* borrowed from the identity */
    json_t   *resource_access;
    uint64_t *ok;             /* rule i: its conditions hold */
    uint64_t *ok_but_scope;   /* rule i: its conditions other than scopes hold */
};

static void policy_free(authz_policy *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->n_rules; i++) {
        crule *r = &p->rules[i];
        free(r->name);
        free(r->servers);
        for (int k = 0; k < GW_AUTHZ_KINDS; k++) {
            for (size_t j = 0; j < r->n_names[k]; j++) free(r->names[k][j].seg);
            free(r->names[k]);
        }
        for (size_t j = 0; r->claims && j < r->cfg->n_claims; j++) free(r->claims[j].path);
        free(r->claims);
        free(r->scope);
    }
    free(p->rules);
    free(p);
}

void authz_policy_free(authz_policy *p) { policy_free(p); }

authz_policy *authz_policy_new(const gw_config *cfg, const char *file, char *err, size_t errlen)
{
    const gw_authz_cfg *a = &cfg->authz;
    if (!a->on) return NULL;
    authz_policy *p = xcalloc(1, sizeof *p);
    p->cfg = cfg;
    p->mode = a->mode;
    p->default_allow = a->default_allow;
    for (int k = 0; k < GW_AUTHZ_KINDS; k++) {
        p->prefix[k] = a->role_prefix[k] ? a->role_prefix[k] : default_prefix[k];
        p->prefix_len[k] = strlen(p->prefix[k]);
    }
    p->n_rules = (a->mode & GW_AUTHZ_RULES) ? a->n_rules : 0;
    p->rules = xcalloc(p->n_rules, sizeof *p->rules);
    p->words = (p->n_rules + 63) / 64;
    size_t swords = (cfg->n_servers + 63) / 64;
    p->n_servers = cfg->n_servers;
    for (size_t i = 0; i < p->n_rules; i++) {
        const gw_authz_rule_cfg *rc = &a->rules[i];
        crule *r = &p->rules[i];
        r->cfg = rc;
        r->allow = rc->allow;
        char nm[300];
        if (rc->name) snprintf(nm, sizeof nm, "%s", rc->name);
        else snprintf(nm, sizeof nm, "rule %zu (line %d)", i + 1, rc->line);
        r->name = strdup(nm);
        if (rc->servers.n) {
            r->servers = xcalloc(swords, sizeof *r->servers);
            for (size_t j = 0; j < rc->servers.n; j++) {
                size_t found = 0;   /* every slot of that name: once reloaded, a name may have had several */
                for (size_t s = 0; s < cfg->n_servers; s++)
                    if (!strcmp(cfg->servers[s].name, rc->servers.v[j])) { bit_set(r->servers, s); found++; }
                if (!found) {   /* config.c checks this first; a config built by hand may not */
                    snprintf(err, errlen, "%s:%d: rule '%s' names unknown server '%s'", file,
                             rc->server_lines ? rc->server_lines[j] : rc->line, r->name, rc->servers.v[j]);
                    policy_free(p);
                    return NULL;
                }
            }
        }
        r->kinds = rc->kinds ? rc->kinds : (1u << GW_AUTHZ_KINDS) - 1;
        for (int k = 0; k < GW_AUTHZ_KINDS; k++) {
            r->n_names[k] = rc->names[k].n;
            r->names[k] = xcalloc(rc->names[k].n, sizeof *r->names[k]);
            for (size_t j = 0; j < rc->names[k].n; j++) glob_compile(&r->names[k][j], rc->names[k].v[j]);
            if ((rc->kinds & (1u << k)) && !rc->names[k].n) r->kinds &= ~(1u << k);   /* `tools: []`: none */
        }
        r->methods = rc->methods;
        if (rc->n_claims) {
            r->claims = xcalloc(rc->n_claims, sizeof *r->claims);
            for (size_t j = 0; j < rc->n_claims; j++) {
                const gw_authz_claim_cfg *cc = &rc->claims[j];
                claim_cond *c = &r->claims[j];
                c->path = xcalloc(cc->path.n, sizeof *c->path);
                for (size_t q = 0; q < cc->path.n; q++) c->path[q] = cc->path.v[q];
                c->n_path = cc->path.n;
                c->contains = cc->contains;
                c->value = cc->value;
                char *end;
                c->ival = strtoll(c->value, &end, 10);
                c->is_int = *c->value && !*end;
                c->dval = strtod(c->value, &end);
                c->is_num = *c->value && !*end;
            }
        }
        if (rc->scopes.n) {   /* the challenge names what the rule needs and what every token needs */
            buf b;
            buf_init(&b, 1 << 16);
            const gw_strlist *lists[2] = {&rc->scopes, &cfg->auth.required_scopes};
            for (int l = 0; l < 2; l++)
                for (size_t j = 0; j < lists[l]->n; j++) {
                    const char *s = lists[l]->v[j];
                    int dup = 0;
                    for (size_t q = 0; q < rc->scopes.n && l == 1; q++) dup |= !strcmp(rc->scopes.v[q], s);
                    if (!dup) buf_printf(&b, "%s%s", b.len ? " " : "", s);
                }
            r->scope = buf_take(&b, NULL);
        }
    }
    return p;
}

/* ---- conditions: once per token ---------------------------------------------------------------- */

static json_t *claim_at(json_t *claims, const char *const *path, size_t n)
{
    json_t *v = claims;
    for (size_t i = 0; v && i < n; i++) v = json_object_get(v, path[i]);
    return v;
}

/* A scalar claim value equal to the condition's value. */
static int value_eq(const claim_cond *c, json_t *v)
{
    if (json_is_string(v)) return !strcmp(json_string_value(v), c->value);
    if (json_is_integer(v)) return c->is_int && json_integer_value(v) == c->ival;
    if (json_is_real(v)) return c->is_num && json_real_value(v) == c->dval;
    if (json_is_true(v)) return !strcmp(c->value, "true");
    if (json_is_false(v)) return !strcmp(c->value, "false");
    return 0;
}

/* s is one of the space-separated tokens of list */
static int has_token(const char *list, const char *s)
{
    size_t n = strlen(s);
    for (const char *p = list; *p;) {
        while (*p == ' ') p++;
        size_t l = strcspn(p, " ");
        if (l == n && n && !memcmp(p, s, n)) return 1;
        p += l;
    }
    return 0;
}

static int claim_holds(const claim_cond *c, json_t *claims)
{
    json_t *v = claim_at(claims, c->path, c->n_path);
    if (!v) return 0;
    if (!c->contains) return value_eq(c, v);
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) if (value_eq(c, e)) return 1;
        return 0;
    }
    if (json_is_string(v)) return has_token(json_string_value(v), c->value);
    if (json_is_object(v)) return json_object_get(v, c->value) != NULL;
    return 0;
}

/* A string array claim holding one of the values (groups also match Keycloak's "/<name>"). */
static int array_has_any(json_t *arr, const gw_strlist *want, int group_path)
{
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        const char *s = json_string_value(e);
        if (!s) continue;
        for (size_t j = 0; j < want->n; j++)
            if (!strcmp(s, want->v[j]) || (group_path && s[0] == '/' && !strcmp(s + 1, want->v[j]))) return 1;
    }
    return 0;
}

/* RFC 9068 "scope" (space-separated; an array accepted), else "scp" (Okta, Entra ID). */
static int has_scope(json_t *claims, const char *want)
{
    json_t *sc = json_object_get(claims, "scope");
    if (!sc) sc = json_object_get(claims, "scp");
    if (json_is_string(sc)) return has_token(json_string_value(sc), want);
    size_t i;
    json_t *e;
    json_array_foreach(sc, i, e) if (json_is_string(e) && !strcmp(json_string_value(e), want)) return 1;
    return 0;
}

static int str_in(const char *s, const gw_strlist *l)
{
    for (size_t i = 0; s && i < l->n; i++)
        if (!strcmp(s, l->v[i])) return 1;
    return 0;
}

/* Conditions of r other than scopes. */
static int conds_hold(const crule *r, json_t *claims)
{
    const gw_authz_rule_cfg *c = r->cfg;
    if (c->groups.n && !array_has_any(json_object_get(claims, "groups"), &c->groups, 1)) return 0;
    if (c->realm_roles.n &&
        !array_has_any(json_object_get(json_object_get(claims, "realm_access"), "roles"), &c->realm_roles, 0))
        return 0;
    if (c->subjects.n && !str_in(json_string_value(json_object_get(claims, "sub")), &c->subjects)) return 0;
    if (c->client_ids.n) {
        const char *cid = json_string_value(json_object_get(claims, "client_id"));
        if (!cid) cid = json_string_value(json_object_get(claims, "azp"));
        if (!str_in(cid, &c->client_ids)) return 0;
    }
    for (size_t i = 0; i < c->n_claims; i++)
        if (!claim_holds(&r->claims[i], claims)) return 0;
    return 1;
}

authz_subject *authz_subject_new(const authz_policy *p, json_t *claims)
{
    size_t words = p ? p->words : 0;
    authz_subject *s = calloc(1, sizeof *s + 2 * (words ? words : 1) * sizeof(uint64_t));
    if (!s) return NULL;   /* a request path: the caller refuses (decide), the process goes on */
    s->ok = (uint64_t *)(s + 1);
    s->ok_but_scope = s->ok + (words ? words : 1);
    s->claims = claims;
    s->resource_access = json_object_get(claims, "resource_access");
    for (size_t i = 0; p && i < p->n_rules; i++) {
        const crule *r = &p->rules[i];
        int has_claims = r->cfg->groups.n || r->cfg->realm_roles.n || r->cfg->subjects.n || r->cfg->client_ids.n ||
                         r->cfg->n_claims || r->cfg->scopes.n;
        if (has_claims && !claims) continue;   /* anonymous: only unconditional rules hold */
        if (!conds_hold(r, claims)) continue;
        bit_set(s->ok_but_scope, i);
        int scopes = 1;
        for (size_t j = 0; j < r->cfg->scopes.n && scopes; j++) scopes = has_scope(claims, r->cfg->scopes.v[j]);
        if (scopes) bit_set(s->ok, i);
    }
    return s;
}

void authz_subject_free(authz_subject *s) { free(s); }

/* ---- decisions -------------------------------------------------------------------------------------- */

static int rule_covers(const authz_policy *p, const crule *r, size_t server, int k, const char *name, int method)
{
    if (!(r->kinds & (1u << k))) return 0;
    if (r->methods && !(r->methods & (1u << method))) return 0;
    if (r->servers && (server >= p->n_servers || !bit(r->servers, server))) return 0;
    if (!r->n_names[k]) return 1;
    for (size_t i = 0; i < r->n_names[k]; i++)
        if (glob_match(&r->names[k][i], name)) return 1;
    return 0;
}

/* The Keycloak convention: resource_access["<server name>"].roles holds "<prefix><name>". A
 * resource role naming a URI template ("resource:file:///logs/{day}") covers the URIs that
 * start with its literal part. */
static int roles_allow(const authz_policy *p, const authz_subject *s, size_t server, int k, const char *name)
{
    json_t *roles = json_object_get(json_object_get(s->resource_access, p->cfg->servers[server].name), "roles");
    const char *pre = p->prefix[k];
    size_t pl = p->prefix_len[k];
    size_t i;
    json_t *e;
    json_array_foreach(roles, i, e) {
        const char *role = json_string_value(e);
        if (!role || strncmp(role, pre, pl)) continue;
        const char *rest = role + pl;
        if (!strcmp(rest, name)) return 1;
        if (k == GW_AUTHZ_RESOURCE) {
            size_t lit = strcspn(rest, "{");
            if (rest[lit] && lit && !strncmp(rest, name, lit)) return 1;
        }
    }
    return 0;
}

int authz_eval(const authz_policy *p, const authz_subject *s, size_t server, enum cat_kind kind, const char *name,
               int method, authz_result *r)
{
    r->scope = NULL;
    r->vs = 0;
    if (!p) {
        r->allow = 1;
        r->rule = "none";
        return 1;
    }
    int k = akind[kind];
    const crule *step_up = NULL;   /* the first rule that would match with more scopes */
    for (size_t i = 0; i < p->n_rules; i++) {
        const crule *c = &p->rules[i];
        if (!rule_covers(p, c, server, k, name, method)) continue;
        if (bit(s->ok, i)) {
            r->allow = c->allow;
            r->rule = c->name;
            if (!c->allow && step_up && step_up->allow) r->scope = step_up->scope;
            return r->allow;
        }
        if (!step_up && bit(s->ok_but_scope, i)) step_up = c;
    }
    if ((p->mode & GW_AUTHZ_ROLES) && roles_allow(p, s, server, k, name)) {
        r->allow = 1;
        r->rule = "roles";
        return 1;
    }
    r->allow = p->default_allow;
    r->rule = "default";
    if (!r->allow && step_up && step_up->allow) r->scope = step_up->scope;
    return r->allow;
}

/* ---- trusted header: x-mcp-authorized, ES256 over TRUSTED_HEADER_PUBLIC_KEY ----------------------- */

static EVP_PKEY *load_key(const char *pem, char *err, size_t errlen)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!k) {
        snprintf(err, errlen, "TRUSTED_HEADER_PUBLIC_KEY: not a PEM public key (-----BEGIN PUBLIC KEY-----)");
        return NULL;
    }
    char curve[64] = "";
    size_t cl = 0;
    if (EVP_PKEY_get_base_id(k) != EVP_PKEY_EC ||
        !EVP_PKEY_get_utf8_string_param(k, "group", curve, sizeof curve, &cl) ||
        (strcmp(curve, "prime256v1") && strcmp(curve, "P-256"))) {
        snprintf(err, errlen, "TRUSTED_HEADER_PUBLIC_KEY: must be an EC P-256 key (ES256)");
        EVP_PKEY_free(k);
        return NULL;
    }
    return k;
}

#define TH_MAX 16384   /* a longer header is refused before any decoding */

/* Verifies an ES256 compact JWS with key; returns its payload (new reference) or NULL with a
 * reason. The header must name alg ES256 and carry no crit; kid and typ are not looked at (the
 * one configured key is the only one trusted). */
static json_t *es256_verify(EVP_PKEY *key, const char *tok, size_t len, const char **why)
{
    const char *d1 = memchr(tok, '.', len), *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : NULL;
    if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)) || len > TH_MAX) { *why = "not a compact JWS"; return NULL; }
    size_t hl = (size_t)(d1 - tok), pl = (size_t)(d2 - d1 - 1), sl = len - (size_t)(d2 + 1 - tok);
    unsigned char raw[TH_MAX], sig[80];
    size_t n;
    json_t *h = NULL, *payload = NULL;
    if (b64url_decode(tok, hl, raw, &n) || !(h = json_loadb((const char *)raw, n, JSON_REJECT_DUPLICATES, NULL)) ||
        !json_is_object(h)) { *why = "bad header"; goto done; }
    const char *alg = json_string_value(json_object_get(h, "alg"));
    if (!alg || strcmp(alg, "ES256") || json_object_get(h, "crit")) { *why = "alg is not ES256"; goto done; }
    if (sl != 86 || b64url_decode(d2 + 1, sl, sig, &n) || n != 64) { *why = "bad signature"; goto done; }
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
    unsigned char der[80], *dp = der;
    int dl = -1;
    if (es && r && s && ECDSA_SIG_set0(es, r, s)) {
        r = s = NULL;
        if (i2d_ECDSA_SIG(es, NULL) <= (int)sizeof der) dl = i2d_ECDSA_SIG(es, &dp);
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = dl > 0 && md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
             EVP_DigestVerify(md, der, (size_t)dl, (const unsigned char *)tok, (size_t)(d2 - tok)) == 1;
    EVP_MD_CTX_free(md);
    if (!ok) { *why = "signature does not verify"; goto done; }
    if (b64url_decode(d1 + 1, pl, raw, &n) ||
        !(payload = json_loadb((const char *)raw, n, JSON_REJECT_DUPLICATES, NULL)) || !json_is_object(payload)) {
        json_decref(payload);
        payload = NULL;
        *why = "bad payload";
    }
done:
    json_decref(h);
    return payload;
}

enum { TH_UNSET = 0, TH_OFF, TH_CAPS, TH_NONE };

typedef struct th_entry {
    uint8_t  key[32];
    int      used;
    int      valid;
    int64_t  until;     /* unix seconds: exp, or a minute for a refused header */
    json_t  *caps;      /* {"tools":{"<server>":["name"]},...} */
} th_entry;
#define TH_SLOTS 64

/* ---- per loop: the anonymous caller's cache and the trusted-header cache ------------------------- */

/* Per caller (token, or a loop's anonymous caller): which entries of each list it may see, as
 * a bitset over the catalog's sorted entries, for one catalog version, virtual server and
 * trusted header. A few bytes per cached token, whatever the list's size. */
struct authz_ident {
    authz_subject *subj;
    uint64_t       subj_gen;   /* the config generation whose policy subj was computed for */
    struct list_slot { uint64_t version; uint64_t gen; int vs; uint64_t th; uint64_t *bits; } list[CAT_KINDS];
};

/* Per loop: each entry of a catalog list serialized once per catalog version, so that a
 * filtered list is a concatenation. */
typedef struct frag_set {
    uint64_t version;
    size_t   n;
    char   **s;      /* NULL when an entry could not be serialized */
    size_t  *len;
} frag_set;

typedef struct authz_local {
    struct authz_ident anon;
    th_entry           th[TH_SLOTS];
    frag_set           frags[CAT_KINDS];
    buf                out;    /* the last filtered list (authz_list's answer) */
} authz_local;

static struct {
    gateway       *gw;
    EVP_PKEY      *th_key;
    int            th_mode;       /* a key is configured, or --enforce-capability-filtering */
    int            enforce;
    pthread_key_t  local;
    int            local_made;
} Z;

void authz_ident_free(struct authz_ident *ai)
{
    if (!ai) return;
    authz_subject_free(ai->subj);
    for (int k = 0; k < CAT_KINDS; k++) free(ai->list[k].bits);
    free(ai);
}

static void frags_clear(frag_set *f)
{
    for (size_t i = 0; i < f->n; i++) free(f->s[i]);
    free(f->s);
    free(f->len);
    *f = (frag_set){0};
}

static void local_free(void *v)
{
    authz_local *l = v;
    if (!l) return;
    authz_subject_free(l->anon.subj);
    for (int k = 0; k < CAT_KINDS; k++) {
        free(l->anon.list[k].bits);
        frags_clear(&l->frags[k]);
    }
    for (int i = 0; i < TH_SLOTS; i++) json_decref(l->th[i].caps);
    buf_free(&l->out);
    free(l);
}

/* This loop's scratch state; NULL when it cannot be allocated (the request is refused). */
static authz_local *local_get(void)
{
    authz_local *l = pthread_getspecific(Z.local);
    if (!l) {
        if (!(l = calloc(1, sizeof *l))) return NULL;
        for (int k = 0; k < CAT_KINDS; k++) l->anon.list[k].vs = -2;
        buf_init(&l->out, (size_t)1 << 30);
        pthread_setspecific(Z.local, l);
    }
    return l;
}

/* ---- setup -------------------------------------------------------------------------------------- */

int authz_validate(const gw_config *cfg, char *err, size_t errlen)
{
    authz_policy *p = authz_policy_new(cfg, cfg->config_file ? cfg->config_file : "config", err, errlen);
    if (!p && cfg->authz.on) return -1;
    policy_free(p);
    if (cfg->authz.trusted_key && *cfg->authz.trusted_key) {
        EVP_PKEY *k = load_key(cfg->authz.trusted_key, err, errlen);
        if (!k) return -1;
        EVP_PKEY_free(k);
    }
    return 0;
}

int authz_attach(gw_config *cfg, char *err, size_t errlen)
{
    if (!cfg->authz.on) return 0;
    authz_policy *p = authz_policy_new(cfg, cfg->config_file ? cfg->config_file : "config", err, errlen);
    if (!p) return -1;
    int claims = 0;
    for (size_t i = 0; i < p->n_rules; i++) {
        const gw_authz_rule_cfg *r = p->rules[i].cfg;
        claims |= r->groups.n || r->scopes.n || r->realm_roles.n || r->subjects.n || r->client_ids.n || r->n_claims;
    }
    if (!config_auth_on(cfg) && (claims || (cfg->authz.mode & GW_AUTHZ_ROLES)))
        log_warn("authz", "authentication is off: rule conditions and roles see no token and never hold");
    log_info("authz", "authorization on: mode %s%s%s, %zu rule(s), default %s%s",
             (cfg->authz.mode & GW_AUTHZ_RULES) ? "rules" : "",
             cfg->authz.mode == (GW_AUTHZ_RULES | GW_AUTHZ_ROLES) ? "+" : "",
             (cfg->authz.mode & GW_AUTHZ_ROLES) ? "roles" : "", p->n_rules,
             cfg->authz.default_allow ? "allow" : "deny", cfg->authz.hide_denied ? ", denied names hidden" : "");
    cfg->policy = p;
    return 0;
}

int authz_init(gateway *gw)
{
    gw_config *cfg = gw->cfg;
    char err[512];
    Z.gw = gw;
    if (!Z.local_made && pthread_key_create(&Z.local, local_free) == 0) Z.local_made = 1;
    if (!cfg->policy && authz_attach(cfg, err, sizeof err) < 0) { log_error("authz", "%s", err); return -1; }
    if (cfg->authz.trusted_key && *cfg->authz.trusted_key) {
        Z.th_key = load_key(cfg->authz.trusted_key, err, sizeof err);
        if (!Z.th_key) { log_error("authz", "%s", err); return -1; }
    }
    Z.enforce = cfg->enforce_capability_filtering;
    Z.th_mode = Z.th_key || Z.enforce;
    if (Z.enforce && !Z.th_key)
        log_warn("authz", "--enforce-capability-filtering without TRUSTED_HEADER_PUBLIC_KEY: every list is empty");
    else if (Z.th_key)
        log_info("authz", "trusted header x-mcp-authorized verified with TRUSTED_HEADER_PUBLIC_KEY%s",
                 Z.enforce ? " (required: --enforce-capability-filtering)" : "");
    return 0;
}

void authz_free(void)
{
    EVP_PKEY_free(Z.th_key);
    if (Z.local_made) {
        local_free(pthread_getspecific(Z.local));   /* the main thread's, if it made one */
        pthread_setspecific(Z.local, NULL);
        pthread_key_delete(Z.local);
    }
    memset(&Z, 0, sizeof Z);
}

int authz_hide_denied(void) { return Z.gw && Z.gw->cfg->authz.on && Z.gw->cfg->authz.hide_denied; }

int authz_vs_find(const gw_config *cfg, const char *name, size_t len)
{
    for (size_t i = 0; i < cfg->n_vservers; i++)
        if (strlen(cfg->vservers[i].name) == len && !memcmp(cfg->vservers[i].name, name, len)) return (int)i;
    return -1;
}

int authz_vs_path(const gw_config *cfg, const char *path)
{
    size_t n = strlen(path);
    if (n < 8 || strncmp(path, "/v/", 3) || strcmp(path + n - 4, "/mcp")) return -2;
    return authz_vs_find(cfg, path + 3, n - 7);
}

/* ---- per request ---------------------------------------------------------------------------------- */

void authz_req_init(authz_req *az, worker *w, http_req *req, const struct auth_identity *id, int vs, const char *sid)
{
    *az = (authz_req){.w = w, .req = req, .id = id, .vs = vs, .sid = sid};
}

/* The last x-mcp-authorized value: a proxy in front (Authorino) appends its own after any the
 * client sent, as another field or joined with ", " (a JWS has no commas). */
static const char *th_header(const http_req *req)
{
    const char *v = NULL;
    for (size_t i = 0; i < req->n_headers; i++)
        if (req->headers[i].name_len == 16 && !strncasecmp(req->headers[i].name, "x-mcp-authorized", 16))
            v = req->headers[i].value;
    const char *comma = v ? strrchr(v, ',') : NULL;
    if (comma) for (v = comma + 1; *v == ' ' || *v == '\t'; v++) {}
    return v;
}

static void th_resolve(authz_req *az)
{
    if (az->th) return;
    const char *h = th_header(az->req);
    if (!Z.th_mode && !h) { az->th = TH_OFF; return; }
    if (!h || !*h || !Z.th_key) {
        if (h) log_debug("authz", "x-mcp-authorized present but no TRUSTED_HEADER_PUBLIC_KEY: nothing allowed");
        az->th = (h || Z.enforce) ? TH_NONE : TH_OFF;
        return;
    }
    size_t len = strlen(h);
    uint8_t key[32];
    SHA256((const unsigned char *)h, len, key);
    uint64_t k64;
    memcpy(&k64, key, sizeof k64);
    authz_local *l = local_get();
    if (!l) { az->th = TH_NONE; return; }   /* out of memory: nothing allowed for this request */
    th_entry *e = &l->th[k64 % TH_SLOTS];
    int64_t now = (int64_t)time(NULL), leeway = Z.gw->cfg->auth.leeway_s;
    if (!e->used || memcmp(e->key, key, sizeof key) || now >= e->until + (e->valid ? leeway : 0)) {
        json_decref(e->caps);
        *e = (th_entry){.used = 1};
        memcpy(e->key, key, sizeof key);
        const char *why = NULL;
        json_t *p = es256_verify(Z.th_key, h, len, &why);
        json_t *exp = json_object_get(p, "exp"), *nbf = json_object_get(p, "nbf");
        const char *capstr = json_string_value(json_object_get(p, "allowed-capabilities"));
        if (p && exp && (!json_is_number(exp) || now >= (int64_t)json_number_value(exp) + leeway)) why = "expired";
        else if (p && nbf && (!json_is_number(nbf) || now + leeway < (int64_t)json_number_value(nbf))) why = "not yet valid";
        else if (p && !capstr) why = "no allowed-capabilities claim (a JSON string)";
        else if (p) {
            /* not inside json_is_object(): a macro that evaluates its argument twice (a leak found by LSan) */
            e->caps = json_loads(capstr, JSON_REJECT_DUPLICATES, NULL);
            if (!json_is_object(e->caps)) {
                why = "allowed-capabilities is not a JSON object";
                json_decref(e->caps);
                e->caps = NULL;
            }
        }
        if (p && !why) {
            e->valid = 1;
            e->until = exp ? (int64_t)json_number_value(exp) : INT64_MAX / 2;
        } else {
            e->until = now + 60;   /* the same refused header is not verified again for a minute */
            log_debug("authz", "x-mcp-authorized refused: %s", why ? why : "?");
        }
        json_decref(p);
    }
    if (!e->valid) { az->th = TH_NONE; return; }
    az->th = TH_CAPS;
    az->caps = e->caps;
    az->th_key = k64 | 1;   /* never 0 (0 = no header in the list cache key) */
}

/* The trusted header's word on one name. Kuadrant's rule for a kind the claim does not list:
 * everything when filtering is not enforced, nothing when it is. */
static int caps_allow(const authz_req *az, enum cat_kind kind, size_t server, const char *up_name)
{
    static const char *const keys[CAT_KINDS] = {"tools", "prompts", "resources", "resources"};
    json_t *byk = json_object_get((json_t *)az->caps, keys[kind]);
    if (!byk) return !Z.enforce;
    json_t *names = json_object_get(byk, Z.gw->cfg->servers[server].name);
    size_t i;
    json_t *e;
    json_array_foreach(names, i, e) if (json_is_string(e) && !strcmp(json_string_value(e), up_name)) return 1;
    return 0;
}

static int vs_keeps(const gw_vserver_cfg *vs, enum cat_kind k, const char *fed_name)
{
    if (k > CAT_PROMPTS) return 1;
    int set = k == CAT_TOOLS ? vs->tools_set : vs->prompts_set;
    if (!set) return 1;
    char *const *names = k == CAT_TOOLS ? vs->tools : vs->prompts;
    size_t n = k == CAT_TOOLS ? vs->n_tools : vs->n_prompts;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(names[i], fed_name)) return 1;
    return 0;
}

/* Out of memory on a request path (NULL below) refuses that request, never ends the process. */
static struct authz_ident *caller(authz_req *az)
{
    if (!az->id) {
        authz_local *l = local_get();
        return l ? &l->anon : NULL;
    }
    auth_identity *id = (auth_identity *)az->id;   /* its authz cache is this loop's to fill */
    if (!id->authz) {
        if (!(id->authz = calloc(1, sizeof *id->authz))) return NULL;
        for (int k = 0; k < CAT_KINDS; k++) id->authz->list[k].vs = -2;
    }
    return id->authz;
}

static const authz_subject *subject(authz_req *az)
{
    struct authz_ident *ai = caller(az);
    if (!ai) return NULL;
    if (ai->subj && ai->subj_gen != az->w->cfg->generation) {   /* computed for an earlier policy */
        authz_subject_free(ai->subj);
        ai->subj = NULL;
    }
    if (!ai->subj) {
        ai->subj = authz_subject_new(az->w->cfg->policy, az->id ? az->id->claims : NULL);
        ai->subj_gen = az->w->cfg->generation;
    }
    return ai->subj;
}

static int decide(authz_req *az, enum cat_kind kind, size_t server, const char *up_name, const char *fed_name,
                  int method, authz_result *r)
{
    r->scope = NULL;
    r->vs = 0;
    const gw_config *cfg = az->w->cfg;   /* the loop's: az->vs is an index into it */
    if (az->vs >= 0 && !vs_keeps(&cfg->vservers[az->vs], kind, fed_name)) {
        r->allow = 0;
        r->rule = "virtualServer";
        r->vs = 1;
        return 0;
    }
    if (az->th == TH_NONE || (az->th == TH_CAPS && !caps_allow(az, kind, server, up_name))) {
        r->allow = 0;
        r->rule = "trustedHeader";
        return 0;
    }
    if (cfg->policy) {
        const authz_subject *subj = subject(az);
        if (!subj) {
            r->allow = 0;
            r->rule = "outOfMemory";
            return 0;
        }
        authz_eval(cfg->policy, subj, server, kind, up_name, method, r);
        if (r->scope && !auth_enabled()) r->scope = NULL;   /* no token, no step-up */
        return r->allow;
    }
    r->allow = 1;
    r->rule = az->th == TH_CAPS ? "trustedHeader" : az->vs >= 0 ? "virtualServer" : "none";
    return 1;
}

/* The catalog's JSON object of one entry (borrowed; the snapshot's store is read-only once
 * published: see catalog.c build_kind for its layout, store[<result key>]["objs"][<name>]). */
static json_t *entry_object(const catalog *c, enum cat_kind kind, const char *fed_name)
{
    static const char *const result_key[CAT_KINDS] = {"tools", "prompts", "resources", "resourceTemplates"};
    return json_object_get(json_object_get(json_object_get(c->store, result_key[kind]), "objs"), fed_name);
}

/* This loop's serialized entries of one list of catalog c. */
static const frag_set *frags(authz_local *lo, const catalog *c, enum cat_kind kind)
{
    frag_set *f = &lo->frags[kind];
    const cat_list *l = &c->lists[kind];
    if (f->s && f->version == c->version && f->n == l->n) return f;
    frags_clear(f);
    f->s = calloc(l->n ? l->n : 1, sizeof *f->s);
    f->len = calloc(l->n ? l->n : 1, sizeof *f->len);
    if (!f->s || !f->len) { frags_clear(f); return NULL; }
    f->n = l->n;
    f->version = c->version;
    for (size_t i = 0; i < l->n; i++) {
        f->s[i] = json_dumps(entry_object(c, kind, l->e[i].fed_name), JSON_COMPACT | JSON_PRESERVE_ORDER);
        f->len[i] = f->s[i] ? strlen(f->s[i]) : 0;
    }
    return f;
}

const char *authz_list(authz_req *az, const catalog *c, enum cat_kind kind, size_t *len)
{
    static const char *const empty[CAT_KINDS] = {"{\"tools\":[]}", "{\"prompts\":[]}", "{\"resources\":[]}",
                                                 "{\"resourceTemplates\":[]}"};
    static const char *const result_key[CAT_KINDS] = {"tools", "prompts", "resources", "resourceTemplates"};
    const gw_config *cfg = az->w->cfg;
    th_resolve(az);
    const char *vsn = az->vs >= 0 ? cfg->vservers[az->vs].name : NULL;
    if (!cfg->policy && az->th == TH_OFF &&   /* nothing per caller: the catalog's own (per virtual server) … */
        (!vsn || kind > CAT_PROMPTS || catalog_vs_result(c, vsn, NULL)))   /* … unless it predates a reload's vs */
        return catalog_result(c, kind, vsn, len);
    if (az->th == TH_NONE) {
        *len = strlen(empty[kind]);
        return empty[kind];
    }
    const cat_list *l = &c->lists[kind];
    struct authz_ident *ai = caller(az);
    authz_local *lo = local_get();
    if (!ai || !lo) goto none;   /* out of memory: an empty list for this request */
    struct list_slot *sl = &ai->list[kind];
    if (!sl->bits || sl->version != c->version || sl->gen != cfg->generation || sl->vs != az->vs ||
        sl->th != az->th_key) {
        free(sl->bits);
        if (!(sl->bits = calloc((l->n + 63) / 64 + 1, sizeof *sl->bits))) goto none;
        for (size_t i = 0; i < l->n; i++) {
            const cat_entry *e = &l->e[i];
            authz_result r;
            if (decide(az, kind, (size_t)e->server, e->up_name, e->fed_name, list_method[kind], &r)) bit_set(sl->bits, i);
        }
        sl->version = c->version;
        sl->gen = cfg->generation;
        sl->vs = az->vs;
        sl->th = az->th_key;
    }
    const frag_set *f = frags(lo, c, kind);
    if (!f) goto none;
    buf *b = &lo->out;
    buf_reset(b);
    int rc = buf_printf(b, "{\"%s\":[", result_key[kind]);
    int first = 1;
    for (size_t i = 0; i < l->n && !rc; i++) {
        if (!bit(sl->bits, i) || !f->s[i]) continue;
        if (!first) rc |= buf_append(b, ",", 1);
        rc |= buf_append(b, f->s[i], f->len[i]);
        first = 0;
    }
    rc |= buf_appends(b, "]}");
    if (rc) goto none;
    *len = b->len;
    return b->data;
none:
    *len = strlen(empty[kind]);
    return empty[kind];
}

/* ---- the audit line -------------------------------------------------------------------------------- */

static void audit(const authz_req *az, int method, size_t server, const char *fed_name, const char *up_name,
                  const authz_result *r)
{
    const gw_config *cfg = az->w->cfg;
    int level = (cfg->authz.on ? cfg->authz.audit : Z.th_mode) ? LOG_INFO : LOG_DEBUG;
    if (!log_enabled(level)) return;
    const char *sub = az->id ? az->id->sub : "", *client = az->id ? az->id->client_id : "";
    char sess[16] = "";
    if (az->sid) {   /* a session id is a bearer credential: a hash of it identifies it in the log */
        uint8_t h[32];
        SHA256((const unsigned char *)az->sid, strlen(az->sid), h);
        for (int i = 0; i < 6; i++) snprintf(sess + 2 * i, 3, "%02x", h[i]);
    }
    const char *vs = az->vs >= 0 ? cfg->vservers[az->vs].name : NULL;
    const char *srv = cfg->servers[server].name, *m = authz_method_name(method);
    const char *kv[][2] = {{"subject", *sub ? sub : NULL}, {"client", *client ? client : NULL},
                           {"session", *sess ? sess : NULL}, {"method", m}, {"server", srv}, {"name", fed_name},
                           {"upstreamName", up_name}, {"virtualServer", vs},
                           {"decision", r->allow ? "allow" : "deny"}, {"rule", r->rule}};
    log_fields(level, "audit", "authorization decision", kv, sizeof kv / sizeof *kv);
}

int authz_call(authz_req *az, enum cat_kind kind, const cat_entry *e, int method, authz_result *r)
{
    th_resolve(az);
    if (!az->w->cfg->policy && az->th == TH_OFF && az->vs < 0) {   /* nothing to decide */
        *r = (authz_result){.allow = 1, .rule = "none"};
        return 1;
    }
    decide(az, kind, (size_t)e->server, e->up_name, e->fed_name, method, r);
    audit(az, method, (size_t)e->server, e->fed_name, e->up_name, r);
    return r->allow;
}
