/* upmgr — the upstream manager, on the control loop: for each configured server it
 * initializes a session of its own, lists the tools (every page), keeps a GET stream open for
 * list_changed, pings every --mcp-check-interval seconds, withdraws the tools after 3
 * consecutive failures and brings them back when the server answers again. Every change
 * publishes a new catalog; a change of the federated tool list is announced to clients.
 * Requests carry the gateway's own credential for the server (upcred.h: static or client
 * credentials, fetched before a step when it is not at hand); a 401 drops it and tries once more.
 * Servers are indexed by slot (config.h); a reload (upmgr_reload) stops the removed ones, ending
 * their upstream sessions, and starts the added ones. */
#include "upmgr.h"
#include "catalog.h"
#include "log.h"
#include "sse.h"
#include "up_rpc.h"
#include "upcred.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FAILS_TO_WITHDRAW 3
#define MAX_TOOL_PAGES    100

enum phase { PH_DOWN, PH_INIT, PH_NOTIFY, PH_LIST, PH_READY };

typedef struct up_server {
    struct upmgr        *m;
    size_t               idx;
    const gw_server_cfg *cfg;
    int                  phase;
    int                  published;  /* its tools are in the catalog */
    int                  failures;
    int                  relist;     /* list_changed arrived while busy */
    int                  pages;
    char                 sid[160];
    char                 version[16];
    char                 message[512];
    time_t               last_validated;
    json_t              *lists[CAT_KINDS]; /* current lists (owned): tools, prompts, resources, templates */
    json_t              *paging;     /* the list being collected (owned) */
    int                  kind;       /* which list is being collected */
    int                  has[CAT_KINDS]; /* the upstream offers this kind (from its capabilities) */
    up_rpc              *rpc;        /* in flight */
    up_call             *stream;     /* GET stream for notifications */
    sse_parser           sse;
    int                  stream_ok;  /* GET is supported (not 405) */
    char                *auth;       /* the gateway's credential for it (owned) or NULL */
    upcred_op           *cred_op;    /* waiting for it */
    int                  cred_then;  /* what runs once it is known: 0 server_step, 1 the ping */
    uint64_t             cred_fresh; /* when auth was delivered (uv_now + 1): used as it is, once, soon */
    int                  auth_retried; /* a 401 already got a fresh credential */
    int                  started;    /* stepped by the timer (a reload's new server: once every loop
                                      * uses the config that has it) */
    int                  dead;       /* a reload removed it: stopped, nothing runs for it any more */
} up_server;

struct upmgr {
    gateway    *gw;
    uv_loop_t  *loop;
    upclient   *up;
    uv_timer_t  tick;
    up_server  *servers;      /* per server slot (config.h): capacity servers_cap, never moved */
    size_t      n;            /* slots known */
    uint64_t    next_id;
    char       *last[CAT_KINDS];  /* list results last announced */
    int         stopping;
};

static void server_step(up_server *s);

static void base_req(up_server *s, up_req *r, long timeout_ms)
{
    memset(r, 0, sizeof *r);
    r->url = s->cfg->url;
    r->session_id = s->sid[0] ? s->sid : NULL;
    r->protocol_version = s->version[0] ? s->version : NULL;
    r->authorization = s->auth;
    r->timeout_ms = timeout_ms;
    r->max_body = (size_t)s->m->gw->cfg->max_upstream_response;
    upcred_prepare(s->m->gw->cfg, s->idx, r);   /* CAs, client certificate, extra headers */
}

static long rpc_timeout(up_server *s) { return s->m->gw->cfg->upstream_timeout_ms; }

/* ---- the catalog ------------------------------------------------------------------------ */

/* A new catalog from the config's servers, in file order; force: announce every list as changed
 * (a reload changed what callers may see: virtual servers, authorization). */
static void publish(struct upmgr *m, int force)
{
    const gw_config *cfg = m->gw->cfg;
    size_t n = gw_config_n_live(cfg);
    cat_input *in = calloc(n ? n : 1, sizeof *in);
    size_t *slots = calloc(n ? n : 1, sizeof *slots);
    for (size_t i = 0; in && slots && i < n; i++) {
        up_server *s = &m->servers[slots[i] = gw_config_live(cfg, i)];
        in[i].name = s->cfg->name;
        in[i].prefix = s->cfg->prefix;
        in[i].ready = s->published;
        in[i].message = s->message;
        in[i].last_validated = s->last_validated;
        in[i].tools = s->lists[CAT_TOOLS];
        in[i].prompts = s->lists[CAT_PROMPTS];
        in[i].resources = s->lists[CAT_RESOURCES];
        in[i].templates = s->lists[CAT_TEMPLATES];
    }
    catalog *c = in && slots ? catalog_build_at(cfg, in, slots, n) : NULL;
    free(in);
    free(slots);
    if (!c) return;
    int changed[CAT_KINDS];
    for (int k = 0; k < CAT_KINDS; k++) {
        const char *now = c->lists[k].result;
        changed[k] = force || !m->last[k] || strcmp(m->last[k], now) != 0;
        if (changed[k]) {
            free(m->last[k]);
            m->last[k] = strdup(now);
        }
    }
    catalog_publish(c);
    for (int k = 0; k < CAT_TEMPLATES; k++)
        if (changed[k] || (k == CAT_RESOURCES && changed[CAT_TEMPLATES])) gateway_list_changed(m->gw, k);
}

static void set_message(up_server *s, const char *fmt, const char *arg)
{
    snprintf(s->message, sizeof s->message, fmt, arg ? arg : "");
}

static void do_ping(up_server *s);

/* A failure of any step: count it; withdraw the tools after FAILS_TO_WITHDRAW in a row. */
static void server_failed(up_server *s, const char *what, const char *err, long status)
{
    s->failures++;
    s->rpc = NULL;
    char msg[480];
    if (status == 401 || status == 403)   /* never the upstream's body */
        snprintf(msg, sizeof msg, "%s failed: authentication to the upstream failed (HTTP %ld)", what, status);
    else
        snprintf(msg, sizeof msg, "%s failed: %s", what, err ? err : "unknown error");
    set_message(s, "%s", msg);
    log_warn(s->cfg->name, "%s (%d in a row)", msg, s->failures);
    if (status == 404 || (status == 400 && s->phase == PH_READY)) {
        s->sid[0] = '\0';          /* the upstream forgot our session: start over */
        s->phase = PH_DOWN;
    } else if (s->phase != PH_READY) {
        s->phase = PH_DOWN;
    }
    if (s->failures >= FAILS_TO_WITHDRAW && s->published) {
        log_warn(s->cfg->name, "withdrawing its tools after %d consecutive failures", s->failures);
        s->published = 0;
        s->phase = PH_DOWN;
        s->sid[0] = '\0';
        if (s->stream) { up_call_cancel(s->stream); s->stream = NULL; }
        publish(s->m, 0);
    }
    if (status == 401 && !s->auth_retried && !s->m->stopping &&
        upcred_rejected(s->m->gw, s->m->loop, s->idx, NULL, s->auth)) {   /* once: a fresh credential, the step again */
        s->auth_retried = 1;
        if (s->phase == PH_READY) do_ping(s);
        else server_step(s);
    }
}

/* ---- the gateway's credential for the server -------------------------------------------------- */

static void on_cred(void *ud, char *auth, const char *err)
{
    up_server *s = ud;
    s->cred_op = NULL;
    if (err) {
        free(auth);
        server_failed(s, "authentication", err, 0);
        return;
    }
    free(s->auth);
    s->auth = auth;
    s->cred_fresh = uv_now(s->m->loop) + 1;
    if (s->cred_then) do_ping(s);
    else server_step(s);
}

/* 1 when the credential is at hand (s->auth); else 0: then comes back to server_step (then = 0)
 * or the ping (then = 1) once it is, or the failure was counted. */
static int have_cred(up_server *s, int then)
{
    if (s->cred_op) return 0;   /* already waiting */
    int fresh = s->cred_fresh && uv_now(s->m->loop) + 1 - s->cred_fresh < 1000;
    s->cred_fresh = 0;
    if (fresh) return 1;   /* just delivered (even if already stale: no second fetch in a row) */
    char *auth = NULL, err[256];
    int rc = upcred_get(s->m->gw, s->m->loop, &s->m->up, s->idx, NULL, &auth, err, sizeof err, on_cred, s, &s->cred_op);
    if (rc == UPCRED_READY) {
        free(s->auth);
        s->auth = auth;
        return 1;
    }
    if (rc == UPCRED_PENDING) s->cred_then = then;
    else server_failed(s, "authentication", err, 0);
    return 0;
}

/* ---- GET stream: notifications from the upstream ------------------------------------------ */

static void on_stream_event(void *ud, const char *event, const char *data, size_t len, const char *id)
{
    up_server *s = ud;
    json_t *msg = json_loadb(data, len, 0, NULL);
    const char *method = json_string_value(json_object_get(msg, "method"));
    json_t *rid = json_object_get(msg, "id");
    if (method && rid) {
        /* a request to the gateway's own discovery session (it declared the client features so
         * that servers list everything): roots are none, the rest is no one's to answer here */
        json_t *ans = !strcmp(method, "roots/list")
            ? json_pack("{s:s,s:O,s:{s:[]}}", "jsonrpc", "2.0", "id", rid, "result", "roots")
            : json_pack("{s:s,s:O,s:{s:i,s:s}}", "jsonrpc", "2.0", "id", rid, "error", "code", -32601, "message",
                        "the gateway's discovery session has no user to ask");
        char *body = json_dumps(ans, JSON_COMPACT);
        json_decref(ans);
        up_req r;
        base_req(s, &r, rpc_timeout(s));
        r.method = "POST";
        r.body = body;
        r.body_len = body ? strlen(body) : 0;
        static const up_callbacks none = {NULL, NULL, NULL};
        if (body) upclient_send(s->m->up, &r, &none, NULL);
        free(body);
    } else if (method && (!strcmp(method, "notifications/tools/list_changed") || !strcmp(method, "notifications/prompts/list_changed") ||
                   !strcmp(method, "notifications/resources/list_changed"))) {
        log_info(s->cfg->name, "%s: listing again", method + 14);
        if (s->phase == PH_READY && !s->rpc) { s->phase = PH_LIST; server_step(s); }
        else s->relist = 1;
    }
    json_decref(msg);
}

static void on_stream_head(up_call *c, void *ud, long status, const char *ctype, const char *sid)
{
    up_server *s = ud;
    if (status == 405) s->stream_ok = 0;
}

static void on_stream_data(up_call *c, void *ud, const char *d, size_t n)
{
    up_server *s = ud;
    if (sse_parser_feed(&s->sse, d, n)) { up_call_cancel(c); s->stream = NULL; }
}

static void on_stream_done(up_call *c, void *ud, const char *err)
{
    up_server *s = ud;
    s->stream = NULL;   /* reopened on the next tick */
}

static const up_callbacks stream_cb = {on_stream_head, on_stream_data, on_stream_done};

static void open_stream(up_server *s)
{
    if (s->stream || !s->stream_ok || !s->sid[0]) return;
    sse_parser_free(&s->sse);
    sse_parser_init(&s->sse, 1 << 20, on_stream_event, s);
    up_req r;
    base_req(s, &r, 0);
    r.method = "GET";
    s->stream = upclient_send(s->m->up, &r, &stream_cb, s);
}

/* ---- the steps: initialize → notifications/initialized → tools/list (pages) → ready ------- */

static const char *const list_method[CAT_KINDS] = {"tools/list", "prompts/list", "resources/list",
                                                  "resources/templates/list"};
static const char *const list_key[CAT_KINDS] = {"tools", "prompts", "resources", "resourceTemplates"};

static void on_list(void *ud, json_t *resp, const char *err, long status, const char *sid);

/* Asks for the next page of the current kind, or the first page of the next kind offered. */
static void list_next(up_server *s, const char *cursor)
{
    while (!cursor && s->kind < CAT_KINDS && !s->has[s->kind]) s->kind++;
    if (s->kind >= CAT_KINDS) { s->rpc = NULL; return; }
    up_req r;
    base_req(s, &r, rpc_timeout(s));
    s->rpc = up_rpc_send(s->m->up, &r, list_method[s->kind], cursor ? json_pack("{s:s}", "cursor", cursor) : NULL,
                         ++s->m->next_id, on_list, s);
}

static void on_list(void *ud, json_t *resp, const char *err, long status, const char *sid)
{
    up_server *s = ud;
    s->rpc = NULL;
    json_t *result = json_object_get(resp, "result");
    json_t *items = json_object_get(result, list_key[s->kind]);
    if (!json_is_array(items)) {
        char what[64];
        snprintf(what, sizeof what, "%s", list_method[s->kind]);
        json_decref(s->paging); s->paging = NULL;
        if (s->kind != CAT_TOOLS && !err) {   /* an optional list that fails: go on without it */
            log_warn(s->cfg->name, "%s failed: %s", what, "no list in the answer");
            s->kind++;
            list_next(s, NULL);
            if (s->rpc) return;
        } else {
            server_failed(s, what, err ? err : "no list in the answer", status);
            return;
        }
    } else {
        if (!s->paging) s->paging = json_array();
        json_array_extend(s->paging, items);
        const char *next = json_string_value(json_object_get(result, "nextCursor"));
        if (next && *next && ++s->pages < MAX_TOOL_PAGES) {
            list_next(s, next);
            return;
        }
        json_decref(s->lists[s->kind]);
        s->lists[s->kind] = s->paging;
        s->paging = NULL;
        s->pages = 0;
        s->kind++;
        list_next(s, NULL);
        if (s->rpc) return;
    }
    /* every list is in */
    s->phase = PH_READY;
    s->failures = 0;
    s->auth_retried = 0;
    s->published = 1;
    s->last_validated = time(NULL);
    snprintf(s->message, sizeof s->message, "server ready with %zu tools, %zu prompts, %zu resources",
             json_array_size(s->lists[CAT_TOOLS]), json_array_size(s->lists[CAT_PROMPTS]),
             json_array_size(s->lists[CAT_RESOURCES]));
    log_info(s->cfg->name, "%s", s->message);
    publish(s->m, 0);
    open_stream(s);
    if (s->relist) { s->relist = 0; s->phase = PH_LIST; server_step(s); }
}

static void on_notified(void *ud, json_t *resp, const char *err, long status, const char *sid)
{
    up_server *s = ud;
    s->rpc = NULL;
    if (err) { server_failed(s, "notifications/initialized", err, status); return; }
    s->phase = PH_LIST;
    server_step(s);
}

static void on_init(void *ud, json_t *resp, const char *err, long status, const char *sid)
{
    up_server *s = ud;
    s->rpc = NULL;
    json_t *result = json_object_get(resp, "result");
    if (!json_is_object(result)) {
        server_failed(s, "initialize", err ? err : "error answer", status);
        return;
    }
    snprintf(s->sid, sizeof s->sid, "%s", sid ? sid : "");
    const char *v = json_string_value(json_object_get(result, "protocolVersion"));
    snprintf(s->version, sizeof s->version, "%s", v && session_proto_index(v) >= 0 ? v : "2025-11-25");
    json_t *caps = json_object_get(result, "capabilities");
    s->has[CAT_TOOLS] = 1;   /* asked even when not declared: a server without tools answers an empty list */
    s->has[CAT_PROMPTS] = json_object_get(caps, "prompts") != NULL;
    s->has[CAT_RESOURCES] = s->has[CAT_TEMPLATES] = json_object_get(caps, "resources") != NULL;
    s->stream_ok = 1;
    s->phase = PH_NOTIFY;
    server_step(s);
}

static void server_step(up_server *s)
{
    if (s->rpc || s->m->stopping || s->cred_op) return;
    if (s->phase != PH_NOTIFY && !have_cred(s, 0)) return;   /* a fresh credential before each chain */
    up_req r;
    base_req(s, &r, rpc_timeout(s));
    switch (s->phase) {
    case PH_DOWN:
    case PH_INIT:
        s->phase = PH_INIT;
        s->sid[0] = s->version[0] = '\0';
        r.session_id = NULL;
        r.protocol_version = NULL;
        s->rpc = up_rpc_send(s->m->up, &r, "initialize",
                             /* every client feature, so that servers that register tools by the
                              * client's capabilities (server-everything) list them all; calls
                              * go through sessions initialized with each client's own */
                             json_pack("{s:s,s:{s:{},s:{s:{},s:{}},s:{s:b}},s:{s:s,s:s}}", "protocolVersion", "2025-11-25",
                                       "capabilities", "sampling", "elicitation", "form", "url", "roots", "listChanged", 0,
                                       "clientInfo", "name", "mcp-gateway", "version", GW_VERSION),
                             ++s->m->next_id, on_init, s);
        break;
    case PH_NOTIFY:
        s->rpc = up_rpc_send(s->m->up, &r, "notifications/initialized", NULL, 0, on_notified, s);
        break;
    case PH_LIST:
        s->pages = 0;
        s->kind = CAT_TOOLS;
        json_decref(s->paging);
        s->paging = NULL;
        list_next(s, NULL);
        break;
    default:
        break;
    }
    if (!s->rpc && s->phase != PH_READY) server_failed(s, "request", "could not start", 0);
}

static void on_ping(void *ud, json_t *resp, const char *err, long status, const char *sid)
{
    up_server *s = ud;
    s->rpc = NULL;
    if (!resp || !json_object_get(resp, "result")) {
        server_failed(s, "ping", err ? err : "error answer", status);
        return;
    }
    s->failures = 0;
    s->auth_retried = 0;
    s->last_validated = time(NULL);
    open_stream(s);
}

static void do_ping(up_server *s)
{
    if (s->rpc || s->m->stopping || s->cred_op || !have_cred(s, 1)) return;
    up_req r;
    base_req(s, &r, rpc_timeout(s) < 10000 ? rpc_timeout(s) : 10000);
    s->rpc = up_rpc_send(s->m->up, &r, "ping", NULL, ++s->m->next_id, on_ping, s);
}

static void on_tick(uv_timer_t *t)
{
    struct upmgr *m = t->data;
    for (size_t i = 0; i < m->n; i++) {
        up_server *s = &m->servers[i];
        if (!s->started || s->dead || !s->cfg->enabled || s->rpc || s->cred_op) continue;
        if (s->phase == PH_READY) do_ping(s);
        else server_step(s);
    }
    session_reap(m->gw->sessions, (uint64_t)time(NULL));
}

static void server_init(struct upmgr *m, size_t i)
{
    up_server *s = &m->servers[i];
    s->m = m;
    s->idx = i;
    s->cfg = &m->gw->cfg->servers[i];
    s->stream_ok = 1;
    sse_parser_init(&s->sse, 1 << 20, on_stream_event, s);
    set_message(s, s->cfg->enabled ? "connecting" : "disabled", NULL);
}

/* A reload removed it: everything in flight is cancelled, its upstream session ended. */
static void server_stop(up_server *s)
{
    s->dead = 1;
    upcred_cancel(s->cred_op);
    s->cred_op = NULL;
    if (s->rpc) up_rpc_cancel(s->rpc);
    s->rpc = NULL;
    if (s->stream) up_call_cancel(s->stream);
    s->stream = NULL;
    if (s->sid[0]) {   /* nobody waits for the answer */
        static const up_callbacks none = {NULL, NULL, NULL};
        up_req r;
        base_req(s, &r, 5000);
        r.method = "DELETE";
        upclient_send(s->m->up, &r, &none, NULL);
        s->sid[0] = '\0';
    }
    free(s->auth);
    s->auth = NULL;
    s->published = 0;
    for (int k = 0; k < CAT_KINDS; k++) {
        json_decref(s->lists[k]);
        s->lists[k] = NULL;
    }
    json_decref(s->paging);
    s->paging = NULL;
}

struct upmgr *upmgr_start(gateway *gw, uv_loop_t *loop)
{
    struct upmgr *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->gw = gw;
    m->loop = loop;
    m->up = upclient_new(loop);
    m->n = gw->cfg->n_servers;
    size_t cap = gw->cfg->servers_cap > m->n ? gw->cfg->servers_cap : m->n;
    m->servers = calloc(cap ? cap : 1, sizeof *m->servers);
    for (size_t i = 0; i < m->n; i++) {
        server_init(m, i);
        m->servers[i].started = 1;
    }
    publish(m, 0);   /* an empty catalog first: clients can connect at once */
    for (size_t i = 0; i < m->n; i++)
        if (m->servers[i].cfg->enabled) server_step(&m->servers[i]);
    uv_timer_init(loop, &m->tick);
    m->tick.data = m;
    uint64_t every = (uint64_t)gw->cfg->check_interval_s * 1000;
    uv_timer_start(&m->tick, on_tick, every, every);
    return m;
}

void upmgr_reload(struct upmgr *m, int start, int force_lists)
{
    if (!m || m->stopping) return;
    const gw_config *cfg = m->gw->cfg;
    for (size_t i = 0; i < m->n; i++) {
        up_server *s = &m->servers[i];
        if (!s->dead && !gw_server_live(s->cfg)) {
            log_info(s->cfg->name, "removed by the reload: its upstream session ends, its tools leave the catalog");
            server_stop(s);
        }
    }
    for (; m->n < cfg->n_servers; m->n++) server_init(m, m->n);
    publish(m, force_lists);
    for (size_t i = 0; start && i < m->n; i++) {
        up_server *s = &m->servers[i];
        if (s->started || s->dead) continue;
        s->started = 1;
        if (s->cfg->enabled) server_step(s);
    }
}

void upmgr_stop(struct upmgr *m)
{
    if (!m) return;
    m->stopping = 1;
    uv_timer_stop(&m->tick);
    uv_close((uv_handle_t *)&m->tick, NULL);
    upcred_loop_stop(m->loop);   /* before the client goes: token fetches on it end */
    for (size_t i = 0; i < m->n; i++) {
        up_server *s = &m->servers[i];
        upcred_cancel(s->cred_op);
        s->cred_op = NULL;
        free(s->auth);
        s->auth = NULL;
        if (s->rpc) up_rpc_cancel(s->rpc);
        s->rpc = NULL;
        s->stream = NULL;   /* freed with the client */
        sse_parser_free(&s->sse);
        for (int k = 0; k < CAT_KINDS; k++) json_decref(s->lists[k]);
        json_decref(s->paging);
    }
    upclient_free(m->up);
    free(m->servers);
    for (int k = 0; k < CAT_KINDS; k++) free(m->last[k]);
    free(m);
}
