/* upcred — upstream credentials (upcred.h): static, client credentials, token exchange,
 * forwarded; the shared token cache with single-flight fetches. */
#include "upcred.h"
#include "auth.h"
#include "b64.h"
#include "buf.h"
#include "log.h"
#include "redis.h"
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define BUCKETS          4096
#define MAX_ENTRIES      50000
#define SWEEP_EVERY      1024          /* new entries between two sweeps of expired ones */
#define FETCH_MAX_BODY   (1u << 20)
#define FAIL_REMEMBER_MS 1000          /* a failed fetch answers every ask for this long */
#define MARGIN_MAX_MS    30000         /* refresh at most this long before expiry */
#define DEFAULT_TTL_MS   300000        /* a token whose lifetime nobody states */
#define OPAQUE_CALLER_MS 300000        /* a caller token that is no JWT: kept this long after its last use */
#define POLL_FIRST_MS    2
#define POLL_MAX_MS      32
#define SHARED_WAIT_MS   200           /* a miss waits this long for the shared cache (Redis) */
#define SHARED_MIN_MS    1000          /* a shared token used for less than this: fetched anew */

static const char GRANT_EXCHANGE[] = "urn:ietf:params:oauth:grant-type:token-exchange";
static const char TYPE_ACCESS[] = "urn:ietf:params:oauth:token-type:access_token";

enum { T_CALLER, T_EXCHANGE, T_CLIENT };
enum { OP_WAITING, OP_RESUMING, OP_DONE };

typedef struct fetch fetch;

typedef struct tok {
    struct tok *next;          /* hash chain */
    int         kind;          /* T_* */
    size_t      server;        /* T_CALLER: SIZE_MAX */
    uint8_t     key[16];       /* the caller; zero for T_CLIENT */
    char       *value;         /* T_CALLER: the caller's token; else the Authorization value */
    int64_t     until_ms;      /* used until then (wall clock) */
    int         fetching;
    int64_t     fetch_deadline_ms;   /* a fetch older than this is taken for lost */
    fetch      *fetch;
    uint64_t    gen;           /* bumped when a fetch ends */
    char        err[256];      /* why the last fetch failed ("" when it did not) */
    int64_t     err_until_ms;
} tok;

struct fetch {
    fetch      *prev, *next;   /* U.fetches */
    uv_loop_t  *loop;
    up_call    *call;
    gateway    *gw;
    int         kind;
    size_t      server;
    uint8_t     key[16];
    int64_t     cap_ms;        /* T_EXCHANGE: the caller's token's exp */
    redis_op   *rop;           /* a look in the shared cache (then no call yet) */
    upclient  **up;            /* its loop's upstream client, for the fetch after a shared miss */
    long        status;
    buf         body;
};

struct upcred_op {
    upcred_op  *prev, *next;   /* U.ops while waiting */
    upcred_op  *rnext;         /* on a resume list */
    uv_loop_t  *loop;
    uv_timer_t  timer;
    gateway    *gw;
    upclient  **up;            /* the loop's upstream client (NULL once it stopped) */
    size_t      server;
    int         kind;
    uint8_t     key[16];
    uint64_t    gen;           /* the entry's gen when this op began to wait */
    upcred_fn   fn;
    void       *ud;
    int         state;         /* OP_* */
    int         cancelled;
    unsigned    delay_ms;
};

typedef struct srv_rt {
    const gw_server_cfg *cfg;
    int      bridged;          /* stdio / legacy SSE: the bridge holds the connection */
    char    *static_auth;      /* credential / credentialEnv / credentialFile (current) */
    char    *ca;               /* gatewayCACertPEM + caCert (owned: the config that had it may go), or NULL */
    char    *secret[2];        /* current client secrets: [0] tokenExchange, [1] clientCredentials */
} srv_rt;

static struct {
    pthread_mutex_t lock;      /* everything below */
    int             ready;     /* atomic: set once init is done */
    const gw_config *cfg;
    srv_rt         *srv;       /* per server slot: capacity srv_cap, never moved */
    size_t          n_srv;     /* slots set up (atomic: a reload adds some) */
    size_t          srv_cap;
    tok           **b;
    size_t          count;
    size_t          adds;
    upcred_op      *ops;
    fetch          *fetches;
} U = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *dupstr(const char *s) { return s ? strdup(s) : NULL; }

/* ---- init ---------------------------------------------------------------------------------- */

/* Slot i of cfg (config.h) is set up; U.lock held. */
static void srv_setup(const gw_config *cfg, size_t i)
{
    srv_rt *r = &U.srv[i];
    const gw_server_cfg *s = r->cfg = &cfg->servers[i];
    r->bridged = s->transport != GW_TRANSPORT_HTTP;
    r->static_auth = dupstr(s->credential);
    const char *g = cfg->gateway_ca_pem, *c = s->ca_cert;
    if (g && c) {
        size_t n = strlen(g) + strlen(c) + 2;
        if ((r->ca = malloc(n))) snprintf(r->ca, n, "%s\n%s", g, c);
    } else {
        r->ca = dupstr(c ? c : g);
    }
    if (s->cred) {
        if (s->cred->exchange) r->secret[0] = dupstr(s->cred->exchange->client_secret);
        if (s->cred->client) r->secret[1] = dupstr(s->cred->client->client_secret);
        if (r->bridged && (s->cred->exchange || s->cred->client || s->cred->forward || s->cred->headers.n ||
                           s->cred->client_cert || s->cred->tls_server_name))
            log_warn(s->name, "tokenExchange, clientCredentials, forwardAuthorization, headers, clientCert and "
                              "tlsServerName apply to Streamable HTTP servers only: ignored for this %s server",
                     s->transport == GW_TRANSPORT_STDIO ? "stdio" : "legacy SSE");
        if (s->cred->client_cert && !s->cred->client_key)
            log_warn(s->name, "clientCert without clientKey: no client certificate is presented");
    }
}

void upcred_init(const gw_config *cfg)
{
    if (__atomic_load_n(&U.ready, __ATOMIC_ACQUIRE) && __atomic_load_n(&U.n_srv, __ATOMIC_ACQUIRE) >= cfg->n_servers)
        return;
    pthread_mutex_lock(&U.lock);
    if (!U.ready) {
        U.cfg = cfg;
        U.srv_cap = cfg->servers_cap > cfg->n_servers ? cfg->servers_cap : cfg->n_servers;
        U.srv = calloc(U.srv_cap ? U.srv_cap : 1, sizeof *U.srv);
        U.b = calloc(BUCKETS, sizeof *U.b);
        if (!U.srv || !U.b) { fputs("mcp-gateway: out of memory\n", stderr); abort(); }
    }
    if (cfg->n_servers > U.srv_cap) { fputs("mcp-gateway: upcred: more server slots than set up\n", stderr); abort(); }
    for (size_t i = U.n_srv; i < cfg->n_servers; i++) srv_setup(cfg, i);   /* the slots a reload added */
    if (cfg->n_servers > U.n_srv) __atomic_store_n(&U.n_srv, cfg->n_servers, __ATOMIC_RELEASE);
    __atomic_store_n(&U.ready, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&U.lock);
}

static void tok_free(tok *t)
{
    free(t->value);
    free(t);
}

void upcred_free(void)
{
    pthread_mutex_lock(&U.lock);
    if (U.ready) {
        for (size_t i = 0; i < BUCKETS; i++)
            for (tok *t = U.b[i], *n; t; t = n) { n = t->next; tok_free(t); }
        for (fetch *f = U.fetches, *n; f; f = n) { n = f->next; buf_free(&f->body); free(f); }
        for (size_t i = 0; i < U.n_srv; i++) {
            free(U.srv[i].static_auth);
            free(U.srv[i].ca);
            free(U.srv[i].secret[0]);
            free(U.srv[i].secret[1]);
        }
        free(U.srv);
        free(U.b);
        U.srv = NULL, U.b = NULL, U.n_srv = 0, U.srv_cap = 0, U.count = 0, U.fetches = NULL, U.ops = NULL;
        __atomic_store_n(&U.ready, 0, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&U.lock);
}

static const gw_upcred_cfg *cred(size_t server) { return U.srv[server].cfg->cred; }

/* Which credential a request to server carries: who NULL = discovery (the gateway's), else a call
 * made for a client (its own, when the server has one for callers). */
enum { SRC_NONE, SRC_STATIC, SRC_FORWARD, SRC_EXCHANGE, SRC_CLIENT };
static int source(size_t server, const upcred_who *who)
{
    const srv_rt *r = &U.srv[server];
    const gw_upcred_cfg *c = r->cfg->cred;
    if (r->bridged) return SRC_NONE;
    if (who && c && c->exchange) return SRC_EXCHANGE;
    if (who && c && c->forward) return SRC_FORWARD;
    if (c && c->client) return SRC_CLIENT;
    return r->cfg->credential ? SRC_STATIC : SRC_NONE;
}

void upcred_prepare(const gw_config *cfg, size_t server, up_req *u)
{
    upcred_init(cfg);
    const srv_rt *r = &U.srv[server];
    if (r->bridged) return;
    u->ca_pem = r->ca;
    const gw_upcred_cfg *c = r->cfg->cred;
    if (!c) return;
    u->headers = (const char *const *)c->headers.v;
    u->n_headers = c->headers.n;
    if (c->client_cert && c->client_key) {
        u->client_cert = c->client_cert;
        u->client_key = c->client_key;
    }
    u->tls_server_name = c->tls_server_name;
}

int upcred_needs_caller(const gw_config *cfg, size_t server)
{
    upcred_init(cfg);
    const gw_upcred_cfg *c = cred(server);
    return !U.srv[server].bridged && c && (c->exchange || c->forward);
}

/* ---- the cache ------------------------------------------------------------------------------ */

static size_t slot(int kind, size_t server, const uint8_t key[16])
{
    uint64_t h = 1469598103934665603ULL;
    h = (h ^ (uint64_t)kind) * 1099511628211ULL;
    h = (h ^ (uint64_t)server) * 1099511628211ULL;
    for (int i = 0; i < 16; i++) h = (h ^ key[i]) * 1099511628211ULL;
    return (size_t)(h % BUCKETS);
}

static tok *find(int kind, size_t server, const uint8_t key[16])
{
    for (tok *t = U.b[slot(kind, server, key)]; t; t = t->next)
        if (t->kind == kind && t->server == server && !memcmp(t->key, key, 16)) return t;
    return NULL;
}

/* Drops entries nobody can use any more (not fetching, expired, no failure to remember). */
static void sweep(int64_t now)
{
    for (size_t i = 0; i < BUCKETS; i++)
        for (tok **pp = &U.b[i]; *pp;) {
            tok *t = *pp;
            if (!t->fetching && t->until_ms <= now && t->err_until_ms <= now) {
                *pp = t->next;
                tok_free(t);
                U.count--;
            } else {
                pp = &t->next;
            }
        }
}

static tok *find_or_add(int kind, size_t server, const uint8_t key[16])
{
    tok *t = find(kind, server, key);
    if (t) return t;
    if (U.count >= MAX_ENTRIES || ++U.adds % SWEEP_EVERY == 0) sweep(now_ms());
    if (U.count >= MAX_ENTRIES || !(t = calloc(1, sizeof *t))) return NULL;
    t->kind = kind;
    t->server = server;
    memcpy(t->key, key, 16);
    size_t s = slot(kind, server, key);
    t->next = U.b[s];
    U.b[s] = t;
    U.count++;
    return t;
}

/* ---- the caller ------------------------------------------------------------------------------- */

int64_t upcred_jwt_exp(const char *token)
{
    const char *a = strchr(token, '.'), *b = a ? strchr(a + 1, '.') : NULL;
    if (!b || (size_t)(b - a - 1) > 12000) return 0;
    size_t n = (size_t)(b - a - 1), out = 0;
    unsigned char *p = malloc(b64url_dec_len(n) + 1);
    int64_t exp = 0;
    if (p && b64url_decode(a + 1, n, p, &out) == 0) {
        json_t *j = json_loadb((const char *)p, out, 0, NULL);
        json_t *e = json_object_get(j, "exp");
        if (json_is_number(e) && json_number_value(e) > 0 && json_number_value(e) < 4e15)
            exp = (int64_t)json_number_value(e);
        json_decref(j);
    }
    free(p);
    return exp;
}

static const char *bearer_of(http_req *req)
{
    const char *h = http_req_header(req, "authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return NULL;
    h += 7;
    while (*h == ' ') h++;
    return *h ? h : NULL;
}

static void token_key(const char *token, uint8_t key[16])
{
    uint8_t full[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    /* its own domain ("upcred caller token" and its NUL first): never equal to a subject hash */
    if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1 || EVP_DigestUpdate(c, "upcred caller token", 20) != 1 ||
        EVP_DigestUpdate(c, token, strlen(token)) != 1 || EVP_DigestFinal_ex(c, full, &n) != 1 || n < 16) {
        fputs("mcp-gateway: SHA-256 failed\n", stderr);
        abort();
    }
    EVP_MD_CTX_free(c);
    memcpy(key, full, 16);
}

static void remember_token(const uint8_t key[16], const char *token)
{
    int64_t now = now_ms();
    pthread_mutex_lock(&U.lock);
    tok *t = find_or_add(T_CALLER, SIZE_MAX, key);
    if (t && (!t->value || strcmp(t->value, token) != 0)) {
        int64_t exp = upcred_jwt_exp(token);
        char *v = strdup(token);
        if (v) {
            free(t->value);
            t->value = v;
            t->until_ms = exp ? exp * 1000 : now + OPAQUE_CALLER_MS;
        }
    } else if (t && !upcred_jwt_exp(t->value)) {
        t->until_ms = now + OPAQUE_CALLER_MS;
    }
    pthread_mutex_unlock(&U.lock);
}

static int nonzero(const uint8_t *k)
{
    for (int i = 0; i < 16; i++)
        if (k[i]) return 1;
    return 0;
}

static void hex16(const uint8_t k[16], char out[33])
{
    for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", k[i]);
}

void upcred_caller(gateway *gw, http_req *req, const session_claims *cl, const char *gw_sid, upcred_who *who)
{
    upcred_init(gw->cfg);
    memset(who, 0, sizeof *who);
    const char *token = bearer_of(req);
    session_claims dec;
    if (!cl && gw_sid && gw->keys && auth_enabled()) {   /* the session's claims, from its id */
        int rc = session_id_decode(gw->keys, gw_sid, strlen(gw_sid), (uint64_t)time(NULL), &dec);
        if (rc == SESSION_ID_OK || rc == SESSION_ID_EXPIRED) cl = &dec;
    }
    if (auth_enabled() && cl && nonzero(cl->subject)) {
        memcpy(who->key, cl->subject, 16);   /* verified: the session is bound to it */
        who->set = 1;
    } else if (token) {
        token_key(token, who->key);
        who->set = 1;
        if (gw_sid && gw->sessions) {   /* for messages sent outside a request: "u:" = this key */
            char hex[33];
            hex16(who->key, hex);
            session_pending_get(gw->sessions, gw_sid, "u:", NULL, NULL, 0, 1);
            session_pending_put(gw->sessions, gw_sid, "u:", 0, hex);
        }
    }
    if (who->set && token && strlen(token) < 65536) remember_token(who->key, token);
}

void upcred_caller_of_session(gateway *gw, const char *gw_sid, upcred_who *who)
{
    upcred_init(gw->cfg);
    memset(who, 0, sizeof *who);
    session_claims cl;
    int rc = gw->keys ? session_id_decode(gw->keys, gw_sid, strlen(gw_sid), (uint64_t)time(NULL), &cl) : -1;
    if ((rc == SESSION_ID_OK || rc == SESSION_ID_EXPIRED) && auth_enabled() && nonzero(cl.subject)) {
        memcpy(who->key, cl.subject, 16);
        who->set = 1;
        return;
    }
    char hex[40];
    if (gw->sessions && session_pending_get(gw->sessions, gw_sid, "u:", NULL, hex, sizeof hex, 0) == 0 && strlen(hex) == 32) {
        for (int i = 0; i < 16; i++) {
            unsigned v;
            if (sscanf(hex + 2 * i, "%2x", &v) != 1) return;
            who->key[i] = (uint8_t)v;
        }
        who->set = 1;
    }
}

/* ---- token endpoint requests ----------------------------------------------------------------- */

void upcred_form_add(buf *b, const char *name, const char *value)
{
    if (!value) return;
    if (b->len) buf_append(b, "&", 1);
    for (int pass = 0; pass < 2; pass++) {
        for (const unsigned char *p = (const unsigned char *)(pass ? value : name); *p; p++) {
            if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || strchr("-._~", *p))
                buf_append(b, p, 1);
            else if (*p == ' ')
                buf_append(b, "+", 1);
            else
                buf_printf(b, "%%%02X", *p);
        }
        if (!pass) buf_append(b, "=", 1);
    }
}

/* "Basic base64(urlencode(id) ':' urlencode(secret))" (RFC 6749 section 2.3.1), malloc'd. */
static char *basic_auth(const char *id, const char *secret)
{
    buf raw, enc;
    buf_init(&raw, 1 << 16);
    upcred_form_add(&raw, id, secret);   /* "id=secret", form-encoded */
    char *eq = raw.data ? strchr(raw.data, '=') : NULL;
    if (!eq) { buf_free(&raw); return NULL; }
    *eq = ':';
    buf_init(&enc, 1 << 17);
    buf_appends(&enc, "Basic ");
    size_t need = 4 * ((raw.len + 2) / 3) + 1;
    char *out = malloc(need);
    if (out) {
        EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)raw.data, (int)raw.len);
        buf_appends(&enc, out);
        free(out);
    }
    buf_free(&raw);
    return buf_take(&enc, NULL);
}

static void sanitize_code(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    for (; in && *in && n + 1 < cap && n < 64; in++)
        if ((*in >= 'a' && *in <= 'z') || (*in >= 'A' && *in <= 'Z') || (*in >= '0' && *in <= '9') || *in == '_' ||
            *in == '-' || *in == '.')
            out[n++] = *in;
    out[n] = '\0';
}

char *upcred_parse_token(const char *body, size_t len, int64_t now, int64_t cap_ms, int64_t *until_ms, char *err,
                         size_t errlen)
{
    json_t *j = json_loadb(body ? body : "", len, 0, NULL);
    const char *at = json_string_value(json_object_get(j, "access_token"));
    const char *tt = json_string_value(json_object_get(j, "token_type"));
    json_t *ei = json_object_get(j, "expires_in");
    char *out = NULL;
    if (!json_is_object(j)) snprintf(err, errlen, "the token endpoint's answer is not a JSON object");
    else if (!at || !*at) snprintf(err, errlen, "the token endpoint's answer has no access_token");
    else if (tt && strcasecmp(tt, "Bearer") != 0) {
        char code[70];
        sanitize_code(tt, code, sizeof code);
        snprintf(err, errlen, "the token endpoint issued a token of type '%s', not Bearer", code);
    } else {
        int bad = 0;
        for (const char *p = at; *p; p++)
            if ((unsigned char)*p <= 0x20 || *p == 0x7f) bad = 1;
        if (bad) snprintf(err, errlen, "the token endpoint's access_token is not a valid header value");
        else if ((out = malloc(strlen(at) + 8))) {
            sprintf(out, "Bearer %s", at);
            /* expires_in, and the JWT's own exp when it is earlier (expires_in counts from the
             * answer, exp from a whole second before it); neither: DEFAULT_TTL_MS */
            int64_t exp_ms = now + DEFAULT_TTL_MS, e = upcred_jwt_exp(at);
            if (json_is_number(ei) && json_number_value(ei) > 0 && json_number_value(ei) < 1e9)
                exp_ms = now + (int64_t)(json_number_value(ei) * 1000);
            else if (e)
                exp_ms = e * 1000;
            if (e && e * 1000 < exp_ms && e * 1000 > now) exp_ms = e * 1000;   /* (a past exp: clock skew) */
            int64_t life = exp_ms - now, margin = life / 10;
            if (margin > MARGIN_MAX_MS) margin = MARGIN_MAX_MS;
            if (margin < 0) margin = 0;
            *until_ms = exp_ms - margin;
            if (cap_ms > 0 && *until_ms > cap_ms) *until_ms = cap_ms;
        }
    }
    json_decref(j);
    return out;
}

static void resume_local(uv_loop_t *loop, tok *t);
static void fetch_unlink(fetch *f)
{
    if (f->prev) f->prev->next = f->next; else U.fetches = f->next;
    if (f->next) f->next->prev = f->prev;
    f->prev = f->next = NULL;
}

static void fetch_head(up_call *c, void *ud, long status, const char *ctype, const char *sid)
{
    ((fetch *)ud)->status = status;
}

static void fetch_data(up_call *c, void *ud, const char *d, size_t n)
{
    buf_append(&((fetch *)ud)->body, d, n);   /* beyond the cap the answer is refused below */
}

static const char *what(int kind) { return kind == T_EXCHANGE ? "token exchange" : "client credentials"; }

/* A client secret file read again (the IdP refused the client). Outside the lock. */
static void reread_secret(size_t server, int kind)
{
    const gw_oauth_client_cfg *o = kind == T_EXCHANGE ? cred(server)->exchange : cred(server)->client;
    char *v = NULL, why[128];
    if (!o->secret_file || config_secret_file(o->secret_file, &v, why, sizeof why) < 0) return;
    pthread_mutex_lock(&U.lock);
    char **cur = &U.srv[server].secret[kind == T_EXCHANGE ? 0 : 1];
    if (!*cur || strcmp(*cur, v) != 0) {
        log_info(U.srv[server].cfg->name, "%s: client secret read again from its file", what(kind));
        free(*cur);
        *cur = v;
        v = NULL;
    }
    pthread_mutex_unlock(&U.lock);
    free(v);
}

/* The entry's name in the shared cache (redis.h): hashes the kind, the caller's key and the server's IdP
 * settings, never a token or a subject in clear. */
static void shared_name(int kind, size_t server, const uint8_t key[16], char name[REDIS_TOKEN_NAME_MAX])
{
    const gw_oauth_client_cfg *o = kind == T_EXCHANGE ? cred(server)->exchange : cred(server)->client;
    buf b;
    buf_init(&b, 1 << 20);
    buf_append(&b, kind == T_EXCHANGE ? "x" : "c", 2);
    buf_append(&b, key, 16);
    const char *parts[] = {U.srv[server].cfg->name, o->token_url, o->client_id, o->audience, o->scope, o->resource};
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) {
        const char *p = parts[i] ? parts[i] : "";
        buf_append(&b, p, strlen(p) + 1);
    }
    redis_token_name(b.data ? b.data : "", b.len, name);
    buf_free(&b);
}

/* A token obtained: written to the shared cache until it stops being used here ("<until ms> <value>"). */
static void shared_put(uv_loop_t *loop, int kind, size_t server, const uint8_t key[16], const char *value,
                       int64_t until, int64_t now)
{
    if (!redis_tokens_enabled() || until - now < SHARED_MIN_MS) return;
    char name[REDIS_TOKEN_NAME_MAX];
    shared_name(kind, server, key, name);
    size_t n = strlen(value) + 32;
    char *plain = malloc(n);
    if (!plain) return;
    snprintf(plain, n, "%lld %s", (long long)until, value);
    redis_token_set(loop, name, plain, (uint64_t)(until - now));
    OPENSSL_cleanse(plain, strlen(plain));
    free(plain);
}

static void fetch_done(up_call *c, void *ud, const char *cerr)
{
    fetch *f = ud;
    const char *name = U.srv[f->server].cfg->name;
    char err[256] = "";
    int64_t now = now_ms(), until = 0;
    char *value = NULL;
    if (cerr) snprintf(err, sizeof err, "%s at the IdP failed: %s", what(f->kind), cerr);
    else if (f->body.len >= FETCH_MAX_BODY) snprintf(err, sizeof err, "%s at the IdP failed: answer too large", what(f->kind));
    else if (f->status < 200 || f->status >= 300) {
        json_t *j = json_loadb(f->body.data ? f->body.data : "", f->body.len, 0, NULL);
        char code[70];
        sanitize_code(json_string_value(json_object_get(j, "error")), code, sizeof code);
        json_decref(j);
        snprintf(err, sizeof err, "%s at the IdP failed: HTTP %ld%s%s", what(f->kind), f->status, code[0] ? " " : "", code);
        if (f->status == 401 || !strcmp(code, "invalid_client")) reread_secret(f->server, f->kind);
    } else {
        char why[200];
        value = upcred_parse_token(f->body.data, f->body.len, now, f->cap_ms, &until, why, sizeof why);
        if (!value) snprintf(err, sizeof err, "%s at the IdP failed: %s", what(f->kind), why);
    }
    if (err[0]) log_warn(name, "%s", err);
    else log_debug(name, "%s: token obtained, used for %lld s", what(f->kind), (long long)((until - now) / 1000));
    if (value) shared_put(f->loop, f->kind, f->server, f->key, value, until, now);

    pthread_mutex_lock(&U.lock);
    fetch_unlink(f);
    tok *t = find(f->kind, f->server, f->key);
    if (t && t->fetch == f) {
        t->fetching = 0;
        t->fetch = NULL;
        t->gen++;
        free(t->value);
        t->value = value;
        value = NULL;
        t->until_ms = until;
        snprintf(t->err, sizeof t->err, "%s", err);
        t->err_until_ms = err[0] ? now + FAIL_REMEMBER_MS : 0;
        resume_local(f->loop, t);   /* unlocks */
    } else {
        pthread_mutex_unlock(&U.lock);
    }
    free(value);
    buf_free(&f->body);
    free(f);
}

static const up_callbacks fetch_cb = {fetch_head, fetch_data, fetch_done};

/* Starts the fetch for entry t (locked; t->fetching already set). Returns 0, or -1 with err. */
static int fetch_start(gateway *gw, uv_loop_t *loop, upclient *up, tok *t, const char *subject_token, int64_t cap_ms,
                       char *err, size_t errlen)
{
    const gw_oauth_client_cfg *o = t->kind == T_EXCHANGE ? cred(t->server)->exchange : cred(t->server)->client;
    const char *secret = U.srv[t->server].secret[t->kind == T_EXCHANGE ? 0 : 1];
    fetch *f = calloc(1, sizeof *f);
    if (!f) { snprintf(err, errlen, "out of memory"); return -1; }
    f->loop = loop;
    f->gw = gw;
    f->kind = t->kind;
    f->server = t->server;
    memcpy(f->key, t->key, 16);
    f->cap_ms = cap_ms;
    buf_init(&f->body, FETCH_MAX_BODY);
    buf form;
    buf_init(&form, 1 << 20);
    if (t->kind == T_EXCHANGE) {
        upcred_form_add(&form, "grant_type", GRANT_EXCHANGE);
        upcred_form_add(&form, "subject_token", subject_token);
        upcred_form_add(&form, "subject_token_type", TYPE_ACCESS);
        upcred_form_add(&form, "requested_token_type", TYPE_ACCESS);
        upcred_form_add(&form, "audience", o->audience ? o->audience : U.srv[t->server].cfg->name);
    } else {
        upcred_form_add(&form, "grant_type", "client_credentials");
        upcred_form_add(&form, "audience", o->audience);
    }
    upcred_form_add(&form, "scope", o->scope);
    upcred_form_add(&form, "resource", o->resource);
    char *basic = NULL;
    if (o->auth_post || !secret) {
        upcred_form_add(&form, "client_id", o->client_id);
        if (secret) upcred_form_add(&form, "client_secret", secret);
    } else {
        basic = basic_auth(o->client_id, secret);
    }
    up_req r = {.url = o->token_url, .method = "POST", .body = form.data ? form.data : "", .body_len = form.len,
                .content_type = "application/x-www-form-urlencoded", .authorization = basic,
                .ca_pem = gw->cfg->gateway_ca_pem, .timeout_ms = gw->cfg->upstream_timeout_ms,
                .max_body = FETCH_MAX_BODY};
    f->call = upclient_send(up, &r, &fetch_cb, f);
    if (basic) OPENSSL_cleanse(basic, strlen(basic));
    free(basic);
    if (form.data) OPENSSL_cleanse(form.data, form.len);
    buf_free(&form);
    if (!f->call) {
        buf_free(&f->body);
        free(f);
        snprintf(err, errlen, "%s: cannot start the request to the IdP", what(t->kind));
        return -1;
    }
    t->fetch = f;
    t->fetch_deadline_ms = now_ms() + gw->cfg->upstream_timeout_ms + 5000;
    f->next = U.fetches;
    if (U.fetches) U.fetches->prev = f;
    U.fetches = f;
    return 0;
}

/* ---- the shared cache (Redis) ------------------------------------------------------------------ */

static void shared_got(void *ud, char *plain);

/* Entry t (locked, fetching set) is looked up in the shared cache: 0 when the look started (it ends in
 * shared_got), -1 when there is none to make. */
static int shared_start(gateway *gw, uv_loop_t *loop, upclient **up, tok *t)
{
    if (!redis_tokens_enabled()) return -1;
    fetch *f = calloc(1, sizeof *f);
    if (!f) return -1;
    f->loop = loop;
    f->gw = gw;
    f->kind = t->kind;
    f->server = t->server;
    f->up = up;
    memcpy(f->key, t->key, 16);
    char name[REDIS_TOKEN_NAME_MAX];
    shared_name(t->kind, t->server, t->key, name);
    if (!(f->rop = redis_token_get(loop, name, SHARED_WAIT_MS, shared_got, f))) {
        free(f);
        return -1;
    }
    t->fetch = f;
    t->fetch_deadline_ms = now_ms() + SHARED_WAIT_MS + gw->cfg->upstream_timeout_ms + 5000;
    f->next = U.fetches;
    if (U.fetches) U.fetches->prev = f;
    U.fetches = f;
    return 0;
}

/* The shared cache answered (plain: "<until ms> <value>", or NULL: nothing usable, Redis slow or down). */
static void shared_got(void *ud, char *plain)
{
    fetch *f = ud;
    int64_t now = now_ms(), until = 0;
    char *value = NULL, *sp = plain ? strchr(plain, ' ') : NULL;
    if (sp && sp[1]) {
        until = strtoll(plain, NULL, 10);
        value = strdup(sp + 1);
    }
    if (plain) {
        OPENSSL_cleanse(plain, strlen(plain));
        free(plain);
    }
    const char *name = U.srv[f->server].cfg->name;
    char err[256] = "";
    pthread_mutex_lock(&U.lock);
    fetch_unlink(f);
    tok *t = find(f->kind, f->server, f->key);
    if (!t || t->fetch != f) {
        pthread_mutex_unlock(&U.lock);
        goto out;
    }
    t->fetch = NULL;
    tok *c = f->kind == T_EXCHANGE ? find(T_CALLER, SIZE_MAX, f->key) : NULL;
    int caller_ok = f->kind != T_EXCHANGE || (c && c->value && now < c->until_ms);
    if (value && caller_ok) {
        if (c && until > c->until_ms) until = c->until_ms;   /* never past the caller's own token */
        if (until - now >= SHARED_MIN_MS) {
            t->fetching = 0;
            t->gen++;
            free(t->value);
            t->value = value;
            value = NULL;
            t->until_ms = until;
            t->err[0] = '\0';
            t->err_until_ms = 0;
            log_debug(name, "%s: token taken from the shared cache, used for %lld s", what(f->kind),
                      (long long)((until - now) / 1000));
            resume_local(f->loop, t);   /* unlocks */
            goto out;
        }
    }
    if (!caller_ok) snprintf(err, sizeof err, "token exchange needs the caller's token, and none is at hand");
    else if (!*f->up) snprintf(err, sizeof err, "the gateway is stopping");
    else if (fetch_start(f->gw, f->loop, *f->up, t, c ? c->value : NULL, c ? c->until_ms : 0, err, sizeof err) == 0) {
        pthread_mutex_unlock(&U.lock);
        goto out;
    }
    t->fetching = 0;
    t->gen++;
    snprintf(t->err, sizeof t->err, "%s", err);
    t->err_until_ms = now + FAIL_REMEMBER_MS;
    resume_local(f->loop, t);   /* unlocks */
out:
    if (value) OPENSSL_cleanse(value, strlen(value));
    free(value);
    free(f);
}

/* ---- acquiring -------------------------------------------------------------------------------- */

/* One look at the entry for (kind, server, key), starting a fetch when it needs one. Locks. For
 * an op already waiting, gen is the entry's gen when it began: the fetch it waited for has
 * ended when the gen moved, and its outcome is the op's answer even if already stale. */
static int acquire(gateway *gw, uv_loop_t *loop, upclient **up, int kind, size_t server, const uint8_t key[16],
                   const uint64_t *waited, uint64_t *gen, char **auth, char *err, size_t errlen)
{
    int64_t now = now_ms();
    int rc;
    pthread_mutex_lock(&U.lock);
    tok *t = find_or_add(kind, server, key);
    if (!t) {
        pthread_mutex_unlock(&U.lock);
        snprintf(err, errlen, "%s: too many cached tokens", what(kind));
        return UPCRED_FAILED;
    }
    if (t->fetching && now > t->fetch_deadline_ms) {   /* its loop went away: forget it */
        if (t->fetch) t->fetch = NULL;
        t->fetching = 0;
        t->gen++;
    }
    *gen = t->gen;
    if (waited && *waited != t->gen && !t->fetching && (t->value || t->err[0])) {
        /* the fetch this op waited for ended: its outcome, even if already stale (else the
         * token was dropped since: acquire anew, below) */
        if (t->value) {
            *auth = strdup(t->value);
            rc = *auth ? UPCRED_READY : UPCRED_FAILED;
            if (!*auth) snprintf(err, errlen, "out of memory");
        } else {
            snprintf(err, errlen, "%s", t->err);
            rc = UPCRED_FAILED;
        }
        pthread_mutex_unlock(&U.lock);
        return rc;
    }
    if (t->value && now < t->until_ms) {
        *auth = strdup(t->value);
        pthread_mutex_unlock(&U.lock);
        if (!*auth) { snprintf(err, errlen, "out of memory"); return UPCRED_FAILED; }
        return UPCRED_READY;
    }
    if (t->fetching) { pthread_mutex_unlock(&U.lock); return UPCRED_PENDING; }
    if (t->err[0] && now < t->err_until_ms) {
        snprintf(err, errlen, "%s", t->err);
        pthread_mutex_unlock(&U.lock);
        return UPCRED_FAILED;
    }
    /* a fetch of our own */
    if (!*up) {
        pthread_mutex_unlock(&U.lock);
        snprintf(err, errlen, "the gateway is stopping");
        return UPCRED_FAILED;
    }
    char *subject = NULL;
    int64_t cap = 0;
    if (kind == T_EXCHANGE) {
        tok *c = find(T_CALLER, SIZE_MAX, key);
        if (!c || !c->value || now >= c->until_ms) {
            pthread_mutex_unlock(&U.lock);
            snprintf(err, errlen, "token exchange needs the caller's token, and none is at hand");
            return UPCRED_FAILED;
        }
        subject = c->value;
        cap = c->until_ms;   /* the caller's exp (or, for an opaque token, its last use + 5 minutes) */
    }
    t->fetching = 1;
    if (shared_start(gw, loop, up, t) == 0) {   /* a look in the shared cache first */
        pthread_mutex_unlock(&U.lock);
        return UPCRED_PENDING;
    }
    if (fetch_start(gw, loop, *up, t, subject, cap, err, errlen) < 0) {
        t->fetching = 0;
        t->gen++;
        snprintf(t->err, sizeof t->err, "%s", err);
        t->err_until_ms = now + FAIL_REMEMBER_MS;
        pthread_mutex_unlock(&U.lock);
        return UPCRED_FAILED;
    }
    pthread_mutex_unlock(&U.lock);
    return UPCRED_PENDING;
}

static void op_closed(uv_handle_t *h) { free(h->data); }

static void op_unlink(upcred_op *op)
{
    if (op->prev) op->prev->next = op->next; else U.ops = op->next;
    if (op->next) op->next->prev = op->prev;
    op->prev = op->next = NULL;
}

static void op_finish(upcred_op *op, char *auth, const char *err)
{
    op->state = OP_DONE;
    uv_timer_stop(&op->timer);
    if (!op->cancelled) op->fn(op->ud, auth, err);
    else free(auth);
    uv_close((uv_handle_t *)&op->timer, op_closed);
}

static void op_poll(uv_timer_t *tm);

/* One more look for a waiting op (not locked, not linked while looking). */
static void op_check(upcred_op *op)
{
    char *auth = NULL, err[256] = "";
    uint64_t gen;
    if (op->cancelled) { op_finish(op, NULL, NULL); return; }
    if (!*op->up) { op_finish(op, NULL, "the gateway is stopping"); return; }
    int rc = acquire(op->gw, op->loop, op->up, op->kind, op->server, op->key, &op->gen, &gen, &auth, err, sizeof err);
    if (rc != UPCRED_PENDING) { op_finish(op, auth, rc == UPCRED_READY ? NULL : err); return; }
    pthread_mutex_lock(&U.lock);
    op->gen = gen;
    op->state = OP_WAITING;
    op->next = U.ops;
    if (U.ops) U.ops->prev = op;
    U.ops = op;
    pthread_mutex_unlock(&U.lock);
    op->delay_ms = op->delay_ms ? (op->delay_ms * 2 > POLL_MAX_MS ? POLL_MAX_MS : op->delay_ms * 2) : POLL_FIRST_MS;
    uv_timer_start(&op->timer, op_poll, op->delay_ms, 0);
}

static void op_poll(uv_timer_t *tm)
{
    upcred_op *op = tm->data;
    pthread_mutex_lock(&U.lock);
    if (op->state != OP_WAITING) { pthread_mutex_unlock(&U.lock); return; }
    op_unlink(op);
    op->state = OP_RESUMING;
    pthread_mutex_unlock(&U.lock);
    op_check(op);
}

/* The fetch of t, on loop, ended (locked; unlocks): this loop's waiters for t go on now. */
static void resume_local(uv_loop_t *loop, tok *t)
{
    upcred_op *list = NULL;
    for (upcred_op *op = U.ops, *n; op; op = n) {
        n = op->next;
        if (op->loop == loop && op->kind == t->kind && op->server == t->server && !memcmp(op->key, t->key, 16)) {
            op_unlink(op);
            op->state = OP_RESUMING;
            op->rnext = list;
            list = op;
        }
    }
    pthread_mutex_unlock(&U.lock);
    while (list) {
        upcred_op *op = list;
        list = op->rnext;
        if (op->cancelled) op_finish(op, NULL, NULL);
        else op_check(op);
    }
}

void upcred_cancel(upcred_op *op)
{
    if (!op) return;
    pthread_mutex_lock(&U.lock);
    int st = op->state;
    if (st == OP_WAITING) op_unlink(op);
    op->cancelled = 1;
    pthread_mutex_unlock(&U.lock);
    if (st == OP_WAITING) op_finish(op, NULL, NULL);   /* RESUMING: finished by whoever resumes it */
}

static char *bearer_value(const char *token)
{
    char *v = malloc(strlen(token) + 8);
    if (v) sprintf(v, "Bearer %s", token);
    return v;
}

int upcred_get(gateway *gw, uv_loop_t *loop, upclient **up, size_t server, const upcred_who *who, char **auth,
               char *err, size_t errlen, upcred_fn fn, void *ud, upcred_op **opp)
{
    upcred_init(gw->cfg);
    *auth = NULL;
    if (opp) *opp = NULL;
    int src = source(server, who);
    uint8_t key[16] = {0};
    int kind;
    switch (src) {
    case SRC_NONE:
        return UPCRED_READY;
    case SRC_STATIC:
        if (!cred(server) || !cred(server)->cred_file) {   /* cannot change: no lock on the hot path */
            *auth = dupstr(U.srv[server].cfg->credential);
        } else {
            pthread_mutex_lock(&U.lock);
            *auth = dupstr(U.srv[server].static_auth);
            pthread_mutex_unlock(&U.lock);
        }
        if (!*auth) { snprintf(err, errlen, "out of memory"); return UPCRED_FAILED; }
        return UPCRED_READY;
    case SRC_FORWARD: {
        if (!who->set) return UPCRED_READY;   /* nothing to forward */
        pthread_mutex_lock(&U.lock);
        tok *c = find(T_CALLER, SIZE_MAX, who->key);
        if (c && c->value && now_ms() < c->until_ms) *auth = bearer_value(c->value);
        pthread_mutex_unlock(&U.lock);
        return UPCRED_READY;
    }
    case SRC_EXCHANGE:
        if (!who->set) {
            snprintf(err, errlen, "the request carries no token to exchange (tokenExchange needs the caller's token)");
            return UPCRED_FAILED;
        }
        memcpy(key, who->key, 16);
        kind = T_EXCHANGE;
        break;
    default:
        kind = T_CLIENT;
        break;
    }
    uint64_t gen;
    int rc = acquire(gw, loop, up, kind, server, key, NULL, &gen, auth, err, errlen);
    if (rc != UPCRED_PENDING) return rc;
    upcred_op *op = calloc(1, sizeof *op);
    if (!op) { snprintf(err, errlen, "out of memory"); return UPCRED_FAILED; }
    op->loop = loop;
    op->gw = gw;
    op->up = up;
    op->server = server;
    op->kind = kind;
    memcpy(op->key, key, 16);
    op->fn = fn;
    op->ud = ud;
    uv_timer_init(loop, &op->timer);
    op->timer.data = op;
    pthread_mutex_lock(&U.lock);
    /* the fetch may have ended between acquire and here (another loop's): then gen has moved
     * and the first poll answers */
    op->gen = gen;
    op->state = OP_WAITING;
    op->next = U.ops;
    if (U.ops) U.ops->prev = op;
    U.ops = op;
    pthread_mutex_unlock(&U.lock);
    op->delay_ms = POLL_FIRST_MS;
    uv_timer_start(&op->timer, op_poll, op->delay_ms, 0);
    *opp = op;
    return UPCRED_PENDING;
}

/* ---- 401 ------------------------------------------------------------------------------------- */

int upcred_rejected(gateway *gw, uv_loop_t *loop, size_t server, const upcred_who *who, const char *auth)
{
    upcred_init(gw->cfg);
    int src = source(server, who);
    const char *name = U.srv[server].cfg->name;
    if (src == SRC_EXCHANGE || src == SRC_CLIENT) {
        uint8_t key[16] = {0};
        if (src == SRC_EXCHANGE) {
            if (!who->set) return 0;
            memcpy(key, who->key, 16);
        }
        int kind = src == SRC_EXCHANGE ? T_EXCHANGE : T_CLIENT;
        if (loop && redis_tokens_enabled()) {   /* the other replicas must not hand it out again */
            char rname[REDIS_TOKEN_NAME_MAX];
            shared_name(kind, server, key, rname);
            redis_token_del(loop, rname);
        }
        pthread_mutex_lock(&U.lock);
        tok *t = find(kind, server, key);
        if (t && t->value && auth && !strcmp(t->value, auth)) {
            free(t->value);
            t->value = NULL;
            t->until_ms = 0;
            t->err[0] = '\0';
            t->err_until_ms = 0;
        }
        pthread_mutex_unlock(&U.lock);
        log_info(name, "the upstream refused its %s token: dropped, a new one is fetched",
                 src == SRC_EXCHANGE ? "exchanged" : "client-credentials");
        return 1;
    }
    if (src == SRC_STATIC && cred(server) && cred(server)->cred_file) {
        char *v = NULL, why[128];
        if (config_secret_file(cred(server)->cred_file, &v, why, sizeof why) < 0) {
            log_warn(name, "credentialFile %s %s", cred(server)->cred_file, why);
            return 0;
        }
        int changed = 0;
        pthread_mutex_lock(&U.lock);
        char **cur = &U.srv[server].static_auth;
        if (!*cur || strcmp(*cur, v) != 0) {
            free(*cur);
            *cur = v;
            v = NULL;
            changed = 1;
        }
        pthread_mutex_unlock(&U.lock);
        free(v);
        if (changed) log_info(name, "credentialFile read again after a 401: the credential changed");
        return changed;
    }
    return 0;
}

/* ---- stop ------------------------------------------------------------------------------------- */

void upcred_loop_stop(uv_loop_t *loop)
{
    if (!__atomic_load_n(&U.ready, __ATOMIC_ACQUIRE)) return;
    upcred_op *list = NULL;
    fetch *dead = NULL;
    pthread_mutex_lock(&U.lock);
    for (upcred_op *op = U.ops, *n; op; op = n) {
        n = op->next;
        if (op->loop != loop) continue;
        op_unlink(op);
        op->state = OP_RESUMING;
        op->rnext = list;
        list = op;
    }
    for (fetch *f = U.fetches, *n; f; f = n) {
        n = f->next;
        if (f->loop != loop) continue;
        fetch_unlink(f);
        tok *t = find(f->kind, f->server, f->key);
        if (t && t->fetch == f) {
            t->fetch = NULL;
            t->fetching = 0;
            t->gen++;
        }
        f->next = dead;
        dead = f;
    }
    pthread_mutex_unlock(&U.lock);
    while (dead) {
        fetch *f = dead;
        dead = f->next;
        if (f->call) up_call_cancel(f->call);
        redis_cancel(f->rop);
        buf_free(&f->body);
        free(f);
    }
    while (list) {
        upcred_op *op = list;
        list = op->rnext;
        op_finish(op, NULL, op->cancelled ? NULL : "the gateway is stopping");
    }
}
