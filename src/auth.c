/* auth — bearer token validation and the key sets behind it (see auth.h). */
#include "auth.h"
#include "authz.h"
#include "b64.h"
#include "buf.h"
#include "jwt.h"
#include "log.h"
#include "mcp.h"
#include "prm.h"
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define REFRESH_MS        (5 * 60 * 1000)   /* periodic JWKS refresh */
#define RETRY_MS          5000              /* while an issuer has no keys yet */
#define KID_REFRESH_MS    10000             /* an unknown kid triggers at most one fetch per this */
#define FETCH_TIMEOUT_MS  10000
#define FETCH_MAX         (1 << 20)

typedef struct issuer {
    const gw_issuer_cfg *cfg;
    pthread_mutex_t      lock;
    jwk_set             *keys;        /* current set, under lock */
    uint64_t             gen;         /* bumped with each new set (atomic) */
    char                *jwks_uri;    /* configured or discovered (control loop only) */
    uint64_t             last_fetch;  /* ms, control loop */
    int                  busy;        /* a fetch is in flight */
    struct fetch        *inflight;    /* that fetch: freed by auth_stop when the loop stops first */
    int                  want;        /* a worker met an unknown kid (atomic) */
    int                  step;        /* discovery: 0 openid-configuration, 1 RFC 8414 */
} issuer;

static struct {
    gateway   *gw;
    int        on;
    issuer    *iss;
    size_t     n_iss;
    const char **iss_urls;
    const char **auds;   size_t n_auds;
    const char **scopes; size_t n_scopes;
    char      *challenge;        /* Bearer resource_metadata="…"[, scope="…"] */
    uv_loop_t *loop;
    upclient  *up;
    uv_timer_t tick;
    uv_async_t wake;
    int        started;
} A;

static uint64_t stats[AUTH_STAT_COUNT];   /* atomics, read by /metrics */
#define STAT(i) __atomic_add_fetch(&stats[i], 1, __ATOMIC_RELAXED)

uint64_t auth_stat(int i) { return i >= 0 && i < AUTH_STAT_COUNT ? __atomic_load_n(&stats[i], __ATOMIC_RELAXED) : 0; }

struct auth_cache {
    size_t          slots;
    auth_identity **e;           /* direct-mapped by token hash: bounded, no eviction list */
};

/* ---- setup --------------------------------------------------------------------------------- */

int auth_enabled(void) { return A.on; }

int auth_init(gateway *gw)
{
    const gw_config *cfg = gw->cfg;
    A.gw = gw;
    if (authz_init(gw) < 0) {   /* authorization (authz.c) starts here too; never serve without it */
        fputs("mcp-gateway: authorization could not start (see above)\n", stderr);
        exit(1);
    }
    A.on = config_auth_on(cfg);
    if (!A.on) return 0;
    const gw_auth_cfg *a = &cfg->auth;
    A.n_iss = a->n_issuers;
    A.iss = calloc(A.n_iss, sizeof *A.iss);
    A.iss_urls = calloc(A.n_iss, sizeof *A.iss_urls);
    for (size_t i = 0; i < A.n_iss; i++) {
        A.iss[i].cfg = &a->issuers[i];
        pthread_mutex_init(&A.iss[i].lock, NULL);
        A.iss[i].jwks_uri = a->issuers[i].jwks_uri ? strdup(a->issuers[i].jwks_uri) : NULL;
        A.iss_urls[i] = a->issuers[i].issuer_url;
    }
    /* audiences: configured, else the resource URI (the MCP spec's rule) */
    if (a->audiences.n) {
        A.auds = (const char **)a->audiences.v;
        A.n_auds = a->audiences.n;
    } else {
        A.auds = calloc(1, sizeof *A.auds);
        A.auds[0] = a->resource;
        A.n_auds = 1;
    }
    A.scopes = (const char **)a->required_scopes.v;
    A.n_scopes = a->required_scopes.n;
    buf b;
    buf_init(&b, 8192);
    buf_printf(&b, "Bearer resource_metadata=\"%s\"", prm_url());
    if (A.n_scopes) {
        buf_appends(&b, ", scope=\"");
        for (size_t i = 0; i < A.n_scopes; i++) buf_printf(&b, "%s%s", i ? " " : "", A.scopes[i]);
        buf_appends(&b, "\"");
    }
    A.challenge = buf_take(&b, NULL);
    return 0;
}

int auth_exempt(const gateway *gw, const char *path)
{
    if (!strncmp(path, "/.well-known/", 13)) return 1;
    if (!strcmp(path, "/healthz") || !strcmp(path, "/readyz")) return 1;
    if (!gw->cfg->auth.protect_status && (!strcmp(path, "/status") || !strncmp(path, "/status/", 8))) return 1;
    return 0;
}

long auth_issuer_keys(size_t i)
{
    if (i >= A.n_iss) return -1;
    pthread_mutex_lock(&A.iss[i].lock);
    long n = A.iss[i].keys ? (long)jwks_count(A.iss[i].keys) : 0;
    pthread_mutex_unlock(&A.iss[i].lock);
    return n;
}

static jwk_set *keys_acquire(issuer *is)
{
    pthread_mutex_lock(&is->lock);
    jwk_set *k = is->keys;
    if (k) jwks_ref(k);
    pthread_mutex_unlock(&is->lock);
    return k;
}

/* ---- key sets: discovery and JWKS fetch on the control loop ---------------------------------- */

typedef struct fetch {
    issuer *is;
    int     jwks;     /* fetching the JWKS itself (else discovery) */
    long    status;
    buf     body;
} fetch;

static void issuer_fetch(issuer *is);

static uint64_t now_ms(void) { return uv_now(A.loop); }

static void fetch_head(up_call *c, void *ud, long status, const char *ctype, const char *sid) { ((fetch *)ud)->status = status; }

static void fetch_data(up_call *c, void *ud, const char *d, size_t n)
{
    fetch *f = ud;
    if (buf_append(&f->body, d, n) == 0) return;
    log_warn(f->is->cfg->issuer_url, "%s larger than %d bytes: ignored", f->jwks ? "JWKS" : "metadata", FETCH_MAX);
    up_call_cancel(c);   /* no more callbacks for this call: f is ours to free */
    f->is->busy = 0;
    buf_free(&f->body);
    free(f);
}

static void fetch_done(up_call *c, void *ud, const char *err)
{
    fetch *f = ud;
    issuer *is = f->is;
    is->busy = 0;
    is->inflight = NULL;   /* f is freed below, whichever way this ends */
    const char *name = is->cfg->issuer_url;
    if (err || f->status != 200) {
        char why[64];
        snprintf(why, sizeof why, "HTTP %ld", f->status);
        if (!f->jwks && is->step == 0 && !err) {
            is->step = 1;   /* no OIDC discovery: try RFC 8414 */
            buf_free(&f->body);
            free(f);
            issuer_fetch(is);
            return;
        }
        STAT(AUTH_STAT_KEYS_FAILED);
        log_warn(name, "%s fetch failed: %s%s", f->jwks ? "JWKS" : "metadata", err ? err : why,
                 is->keys ? " (keeping the last good keys)" : "");
    } else if (!f->jwks) {
        json_t *m = json_loadb(f->body.data ? f->body.data : "", f->body.len, 0, NULL);
        const char *u = json_string_value(json_object_get(m, "jwks_uri"));
        const char *iss = json_string_value(json_object_get(m, "issuer"));
        if (iss && strcmp(iss, name) != 0)
            log_warn(name, "metadata names issuer %s: tokens must carry iss %s exactly", iss, name);
        if (u) {
            free(is->jwks_uri);
            is->jwks_uri = strdup(u);
            json_decref(m);
            buf_free(&f->body);
            free(f);
            issuer_fetch(is);
            return;
        }
        log_warn(name, "metadata has no jwks_uri");
        json_decref(m);
    } else {
        char e[200];
        jwk_set *k = jwks_parse(f->body.data ? f->body.data : "", f->body.len, e, sizeof e);
        STAT(k ? AUTH_STAT_KEYS_LOADED : AUTH_STAT_KEYS_FAILED);
        if (!k) log_warn(name, "JWKS rejected: %s%s", e, is->keys ? " (keeping the last good keys)" : "");
        else {
            pthread_mutex_lock(&is->lock);
            jwk_set *old = is->keys;
            is->keys = k;
            __atomic_add_fetch(&is->gen, 1, __ATOMIC_RELEASE);
            pthread_mutex_unlock(&is->lock);
            if (!old) log_info(name, "signing keys loaded: %zu key(s)", jwks_count(k));
            else log_debug(name, "signing keys refreshed: %zu key(s)", jwks_count(k));
            jwks_unref(old);
        }
    }
    buf_free(&f->body);
    free(f);
}

static const up_callbacks fetch_cb = {fetch_head, fetch_data, fetch_done};

static void issuer_fetch(issuer *is)
{
    if (is->busy) return;
    fetch *f = calloc(1, sizeof *f);
    if (!f) return;
    f->is = is;
    buf_init(&f->body, FETCH_MAX);
    char url[2048];
    if (is->jwks_uri) {
        f->jwks = 1;
        snprintf(url, sizeof url, "%s", is->jwks_uri);
    } else {
        const char *base = is->cfg->issuer_url;
        size_t bl = strlen(base);
        while (bl && base[bl - 1] == '/') bl--;
        if (is->step == 0) snprintf(url, sizeof url, "%.*s/.well-known/openid-configuration", (int)bl, base);
        else {
            /* RFC 8414: the well-known segment goes between the host and the issuer's path */
            const char *p = strstr(base, "://");
            const char *path = p ? strchr(p + 3, '/') : NULL;
            size_t ol = path ? (size_t)(path - base) : bl;
            snprintf(url, sizeof url, "%.*s/.well-known/oauth-authorization-server%.*s", (int)ol, base,
                     path ? (int)(bl - ol) : 0, path ? path : "");
        }
    }
    up_req r = {.url = url, .method = "GET", .timeout_ms = FETCH_TIMEOUT_MS, .max_body = FETCH_MAX,
                .ca_pem = A.gw->cfg->gateway_ca_pem};
    is->busy = 1;
    is->last_fetch = now_ms();
    if (!upclient_send(A.up, &r, &fetch_cb, f)) {
        is->busy = 0;
        buf_free(&f->body);
        free(f);
    } else {
        is->inflight = f;
    }
}

static void on_tick(uv_timer_t *t)
{
    uint64_t now = now_ms();
    for (size_t i = 0; i < A.n_iss; i++) {
        issuer *is = &A.iss[i];
        int empty = !is->keys;
        if (now - is->last_fetch >= (empty ? RETRY_MS : REFRESH_MS)) {
            if (!is->cfg->jwks_uri && empty) { free(is->jwks_uri); is->jwks_uri = NULL; is->step = 0; }
            issuer_fetch(is);
        }
    }
}

static void on_wake(uv_async_t *a)
{
    uint64_t now = now_ms();
    for (size_t i = 0; i < A.n_iss; i++) {
        issuer *is = &A.iss[i];
        if (__atomic_exchange_n(&is->want, 0, __ATOMIC_ACQ_REL) && now - is->last_fetch >= KID_REFRESH_MS) {
            log_info(is->cfg->issuer_url, "unknown key id in a token: fetching the JWKS again");
            issuer_fetch(is);
        }
    }
}

void auth_start(gateway *gw, uv_loop_t *loop)
{
    if (!A.on) return;
    A.loop = loop;
    A.up = upclient_new(loop);
    uv_timer_init(loop, &A.tick);
    uv_timer_start(&A.tick, on_tick, 1000, 1000);
    uv_async_init(loop, &A.wake, on_wake);
    A.started = 1;
    for (size_t i = 0; i < A.n_iss; i++) issuer_fetch(&A.iss[i]);
}

void auth_stop(void)
{
    if (A.started) {
        uv_timer_stop(&A.tick);
        uv_close((uv_handle_t *)&A.tick, NULL);
        uv_close((uv_handle_t *)&A.wake, NULL);
        upclient_free(A.up);   /* cancels the fetches in flight without their callbacks: */
        for (size_t i = 0; i < A.n_iss; i++) {
            fetch *f = A.iss[i].inflight;
            if (f) { buf_free(&f->body); free(f); }
            A.iss[i].inflight = NULL;
            A.iss[i].busy = 0;
        }
        A.started = 0;
    }
}

void auth_free(void)
{
    auth_stop();
    authz_free();
    for (size_t i = 0; i < A.n_iss; i++) {
        jwks_unref(A.iss[i].keys);
        free(A.iss[i].jwks_uri);
        pthread_mutex_destroy(&A.iss[i].lock);
    }
    free(A.iss);
    free(A.iss_urls);
    if (A.auds && A.gw && !A.gw->cfg->auth.audiences.n) free(A.auds);
    free(A.challenge);
    memset(&A, 0, sizeof A);
}

/* ---- the verified-token cache ------------------------------------------------------------------ */

auth_cache *auth_cache_new(size_t slots)
{
    auth_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->slots = slots;
    c->e = calloc(slots, sizeof *c->e);
    return c;
}

static void ident_free(auth_identity *id)
{
    if (!id) return;
    authz_ident_free(id->authz);
    json_decref(id->claims);
    free(id);
}

void auth_cache_free(auth_cache *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->slots; i++) ident_free(c->e[i]);
    free(c->e);
    free(c);
}

/* ---- answers ---------------------------------------------------------------------------------- */

static void deny(worker *w, http_req *req, int vs, int status, const char *error, const char *desc)
{
    STAT(status == 403 ? AUTH_STAT_FORBIDDEN : AUTH_STAT_UNAUTHORIZED);
    char hdr[4096], cors[768];
    buf b = {hdr, 0, sizeof hdr, sizeof hdr - 1};
    if (status == 403)
        buf_printf(&b, "WWW-Authenticate: Bearer error=\"insufficient_scope\", scope=\"");
    else if (vs < 0)
        buf_printf(&b, "WWW-Authenticate: %s", A.challenge);
    else {   /* the path form of a virtual server: its own metadata */
        buf_printf(&b, "WWW-Authenticate: Bearer resource_metadata=\"%s\"", prm_url_vs(w->cfg, vs));
        if (A.n_scopes) {
            buf_appends(&b, ", scope=\"");
            for (size_t i = 0; i < A.n_scopes; i++) buf_printf(&b, "%s%s", i ? " " : "", A.scopes[i]);
            buf_appends(&b, "\"");
        }
    }
    if (status == 403) {
        for (size_t i = 0; i < A.n_scopes; i++) buf_printf(&b, "%s%s", i ? " " : "", A.scopes[i]);
        buf_printf(&b, "\", resource_metadata=\"%s\"", prm_url_vs(w->cfg, vs));
    } else if (error) {
        buf_printf(&b, ", error=\"%s\"", error);
        if (desc) {
            buf_appends(&b, ", error_description=\"");
            for (const char *p = desc; *p; p++)   /* a quoted-string: no quotes, backslashes or controls */
                if (*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20) buf_append(&b, p, 1);
            buf_appends(&b, "\"");
        }
    }
    buf_appends(&b, "\r\n");
    const char *origin = http_req_header(req, "origin");
    cors[0] = '\0';
    if (origin && mcp_origin_allowed(w->gw, origin)) mcp_extra_headers(w, req, cors, sizeof cors, NULL);
    buf_appends(&b, cors);
    if (status == 403) {
        static const char body[] = "{\"error\":\"Forbidden\",\"message\":\"Insufficient scope.\"}";
        http_respond(req, 403, hdr, "application/json", body, sizeof body - 1);
    } else {
        static const char body[] = "{\"error\":\"Unauthorized\",\"message\":\"Authentication required.\"}";
        http_respond(req, 401, hdr, "application/json", body, sizeof body - 1);
    }
}

/* ---- verification ------------------------------------------------------------------------------ */

/* The issuer a token claims (unverified: only to choose the key set). */
static issuer *pick_issuer(const char *tok, size_t len)
{
    if (A.n_iss == 1) return &A.iss[0];
    const char *d1 = memchr(tok, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : NULL;
    if (!d2 || d2 - d1 - 1 > JWT_MAX_LEN) return NULL;
    unsigned char *raw = malloc((size_t)(d2 - d1));
    size_t n = 0;
    issuer *found = NULL;
    if (raw && b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), raw, &n) == 0) {
        json_t *p = json_loadb((const char *)raw, n, 0, NULL);
        const char *iss = json_string_value(json_object_get(p, "iss"));
        for (size_t i = 0; iss && i < A.n_iss && !found; i++)
            if (!strcmp(iss, A.iss[i].cfg->issuer_url)) found = &A.iss[i];
        json_decref(p);
    }
    free(raw);
    return found;
}

static void copy_claim(json_t *claims, const char *name, char *dst, size_t cap)
{
    const char *v = json_string_value(json_object_get(claims, name));
    snprintf(dst, cap, "%s", v ? v : "");
}

const auth_identity *auth_check(worker *w, http_req *req, int vs)
{
    const char *h = http_req_header(req, "authorization");
    if (!h) { deny(w, req, vs, 401, NULL, NULL); return NULL; }
    if (strncasecmp(h, "Bearer ", 7) != 0) { deny(w, req, vs, 401, "invalid_request", "the Authorization scheme must be Bearer"); return NULL; }
    const char *tok = h + 7;
    while (*tok == ' ') tok++;
    size_t len = strlen(tok);
    if (!len || len > JWT_MAX_LEN) { deny(w, req, vs, 401, "invalid_token", "malformed token"); return NULL; }

    uint8_t key[32];
    SHA256((const unsigned char *)tok, len, key);
    auth_cache *c = w->auth;
    size_t slot;
    memcpy(&slot, key, sizeof slot);
    slot %= c->slots;
    int64_t now = (int64_t)time(NULL);
    auth_identity *hit = c->e[slot];
    if (hit && !memcmp(hit->key, key, sizeof key)) {
        int ok = now < hit->exp + w->gw->cfg->auth.leeway_s;   /* never used past exp */
        issuer *his = hit->issuer;
        uint64_t gen = __atomic_load_n(&his->gen, __ATOMIC_ACQUIRE);
        if (ok && gen != hit->keys_gen) {   /* new key set: is its key still there? */
            jwk_set *ks = keys_acquire(his);
            ok = ks && (hit->kid[0] ? jwks_has_kid(ks, hit->kid) : jwks_count(ks) > 0);
            jwks_unref(ks);
            hit->keys_gen = gen;
        }
        if (ok && hit->aud_vs >= 0 && hit->aud_gen != w->cfg->generation) ok = 0;   /* a reload: vs may be another */
        if (ok && hit->aud_vs >= 0 && hit->aud_vs != vs) {   /* issued for another path's resource */
            deny(w, req, vs, 401, "invalid_token", "the token's audience is another virtual server's endpoint");
            return NULL;
        }
        if (ok) { STAT(AUTH_STAT_CACHED); return hit; }
        ident_free(hit);
        c->e[slot] = NULL;
    }

    issuer *is = pick_issuer(tok, len);
    if (!is) { deny(w, req, vs, 401, "invalid_token", "token issuer is not trusted"); return NULL; }
    uint64_t gen = __atomic_load_n(&is->gen, __ATOMIC_ACQUIRE);
    jwk_set *keys = keys_acquire(is);
    if (!keys) {
        __atomic_store_n(&is->want, 1, __ATOMIC_RELEASE);
        uv_async_send(&A.wake);
        deny(w, req, vs, 401, "invalid_token", "the issuer's signing keys are not loaded yet");
        return NULL;
    }
    jwt t;
    char err[200];
    int rc = jwt_verify(tok, len, keys, &t, err, sizeof err);
    jwks_unref(keys);
    if (rc == JWT_UNKNOWN_KID) {
        __atomic_store_n(&is->want, 1, __ATOMIC_RELEASE);   /* maybe a rotation: refresh, rate-limited */
        uv_async_send(&A.wake);
    }
    if (rc == JWT_ERROR) {
        log_error("auth", "token verification failed: %s", err);
        http_respond(req, 503, "Retry-After: 1\r\n", "application/json",
                     "{\"error\":\"Service Unavailable\",\"message\":\"token verification failed\"}", 69);
        return NULL;
    }
    if (rc != JWT_OK) {
        log_debug("auth", "token rejected: %s", err);
        deny(w, req, vs, 401, "invalid_token", err);
        return NULL;
    }
    jwt_policy pol = {.issuers = (const char *const *)&is->cfg->issuer_url, .n_issuers = 1, .audiences = A.auds, .n_audiences = A.n_auds,
                      .required_scopes = A.scopes, .n_required_scopes = A.n_scopes, .leeway_s = w->gw->cfg->auth.leeway_s};
    rc = jwt_check_claims(&t, &pol, now, err, sizeof err);
    int aud_vs = -1;
    if (rc == JWT_BAD_AUDIENCE && vs >= 0) {
        /* on /v/<name>/mcp a token issued for that path's own resource URI is good too (there only) */
        const char *vs_aud = prm_resource_vs(w->cfg, vs);
        pol.audiences = &vs_aud;
        pol.n_audiences = 1;
        if ((rc = jwt_check_claims(&t, &pol, now, err, sizeof err)) == JWT_CLAIMS_OK) aud_vs = vs;
    }
    if (rc != JWT_CLAIMS_OK) {
        log_debug("auth", "token rejected: %s", err);
        jwt_free(&t);
        deny(w, req, vs, rc == JWT_INSUFFICIENT_SCOPE ? 403 : 401, "invalid_token", err);
        return NULL;
    }
    auth_identity *id = calloc(1, sizeof *id);
    if (!id) { jwt_free(&t); deny(w, req, vs, 401, "invalid_token", "out of memory"); return NULL; }
    memcpy(id->key, key, sizeof key);
    double exp = json_number_value(json_object_get(t.payload, "exp"));   /* checked present above */
    id->exp = exp > 4e18 ? (int64_t)4e18 : (int64_t)exp;                  /* clamped: no overflow below */
    id->issuer = is;
    id->aud_vs = aud_vs;
    id->aud_gen = w->cfg->generation;
    id->keys_gen = gen;
    snprintf(id->kid, sizeof id->kid, "%s", t.kid);
    id->claims = t.payload;
    t.payload = NULL;
    jwt_free(&t);
    copy_claim(id->claims, "sub", id->sub, sizeof id->sub);
    copy_claim(id->claims, "iss", id->iss, sizeof id->iss);
    copy_claim(id->claims, "client_id", id->client_id, sizeof id->client_id);
    if (!id->client_id[0]) copy_claim(id->claims, "azp", id->client_id, sizeof id->client_id);
    char subj[800];
    int n = snprintf(subj, sizeof subj, "%s\n%s", id->iss, id->sub[0] ? id->sub : id->client_id);
    uint8_t full[32];
    SHA256((const unsigned char *)subj, (size_t)n, full);
    memcpy(id->subject, full, sizeof id->subject);
    ident_free(c->e[slot]);
    c->e[slot] = id;
    STAT(AUTH_STAT_VERIFIED);
    return id;
}
