/* mcp — the Streamable HTTP endpoint /mcp (MCP 2025-11-25; 2025-06-18 and 2025-03-26 accepted).
 * The transport rules come first (Origin, Host, method, media types, protocol version,
 * virtual server, session), then the JSON-RPC message: answered here (initialize, ping, lists
 * from the catalog, filtered by authz.c) or, when authz.c allows it, relayed to the one upstream
 * that owns it (relay.c). The same code serves a virtual server's endpoint /v/<name>/mcp. */
#include "mcp.h"
#include "authz.h"
#include "catalog.h"
#include "prm.h"
#include "log.h"
#include "redis.h"
#include "relay.h"
#include "sse.h"
#include "streams.h"
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char expose[] = "Access-Control-Expose-Headers: Mcp-Session-Id, MCP-Protocol-Version, WWW-Authenticate, X-Request-Id\r\n";

/* ---- answers ------------------------------------------------------------------------------ */

/* CORS for an allowed Origin (the check already passed), and the session header. */
void mcp_extra_headers(worker *w, http_req *req, char *out, size_t cap, const char *session_id)
{
    buf b = {out, 0, cap, cap - 1};
    out[0] = '\0';
    const char *origin = http_req_header(req, "origin");
    if (origin) {
        buf_printf(&b, "Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n", origin);
        buf_appends(&b, expose);
    }
    if (session_id) buf_printf(&b, "Mcp-Session-Id: %s\r\n", session_id);
}

void mcp_reply(worker *w, http_req *req, int status, const char *ctype, const char *body, size_t len,
               const char *session_id)
{
    char extra[768];
    mcp_extra_headers(w, req, extra, sizeof extra, session_id);
    http_respond(req, status, extra, ctype, body, len);
}

void mcp_reply_error_hdr(worker *w, http_req *req, int status, const char *headers, json_t *id, int code,
                         const char *message)
{
    char mem[1024];
    buf b = {mem, 0, sizeof mem, sizeof mem - 1};
    if (jsonrpc_error(&b, id, code, message) != 0) {
        b.len = 0;
        jsonrpc_error(&b, NULL, code, NULL);
    }
    char extra[1024];
    mcp_extra_headers(w, req, extra, sizeof extra, NULL);
    if (headers) strncat(extra, headers, sizeof extra - strlen(extra) - 1);
    http_respond(req, status, extra, "application/json", b.data, b.len);
}

void mcp_reply_error(worker *w, http_req *req, int status, json_t *id, int code, const char *message)
{
    mcp_reply_error_hdr(w, req, status, NULL, id, code, message);
}

static void reply_result(worker *w, http_req *req, json_t *id, const char *result, size_t len, const char *sid)
{
    buf b;
    buf_init(&b, len + 512);
    char *ids = json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT);
    buf_printf(&b, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":", ids ? ids : "null");
    free(ids);
    buf_append(&b, result, len);
    buf_append(&b, "}", 1);
    mcp_reply(w, req, 200, "application/json", b.data, b.len, sid);
    buf_free(&b);
}

/* ---- transport checks ----------------------------------------------------------------------- */

/* "http://localhost:*" matches http://localhost and http://localhost:<port>. */
static int origin_match(const char *pat, const char *origin)
{
    size_t pl = strlen(pat);
    if (pl >= 2 && strcmp(pat + pl - 2, ":*") == 0) {
        size_t base = pl - 2;
        if (strncasecmp(pat, origin, base) != 0) return 0;
        const char *rest = origin + base;
        if (*rest == '\0') return 1;
        if (*rest != ':' || !rest[1]) return 0;
        for (rest++; *rest; rest++)
            if (*rest < '0' || *rest > '9') return 0;
        return 1;
    }
    return strcasecmp(pat, origin) == 0;
}

int mcp_origin_allowed(const gateway *gw, const char *origin)
{
    for (size_t i = 0; i < gw->n_origins; i++)
        if (origin_match(gw->origins[i], origin)) return 1;
    return 0;
}

/* On a loopback bind, a Host naming anything but loopback (or the public host) is a DNS
 * rebinding attempt. */
static int host_allowed(const gateway *gw, const char *host)
{
    if (!gw->loopback) return 1;
    if (!host) return 0;
    char h[256];
    size_t n = strlen(host);
    if (n >= sizeof h) return 0;
    memcpy(h, host, n + 1);
    char *end = h[0] == '[' ? strchr(h, ']') : strrchr(h, ':');
    if (h[0] == '[') { if (!end) return 0; end[1] = '\0'; }
    else if (end) *end = '\0';
    if (!strcasecmp(h, "localhost") || !strcmp(h, "127.0.0.1") || !strcmp(h, "[::1]")) return 1;
    const char *ph = gw->cfg->public_host;
    if (ph && *ph) {
        size_t pl = strcspn(ph, ":");
        if (strlen(h) == pl && strncasecmp(h, ph, pl) == 0) return 1;
    }
    return 0;
}

static int header_has(const char *v, const char *token)
{
    return v && strcasestr(v, token) != NULL;
}

/* Validates Mcp-Session-Id (and that it belongs to the caller). Returns 0, or answers the
 * request and returns -1 — or returns -1 when the request waits for the session's shared state
 * (redis.h: it is routed again once that is loaded; force: loaded even when this process has it). */
static int session_check(worker *w, http_req *req, const auth_identity *id, session_claims *cl, const char **sid,
                         int force)
{
    gateway *gw = w->gw;
    *sid = http_req_header(req, "mcp-session-id");
    if (!*sid) {
        mcp_reply_error(w, req, 400, NULL, JR_INVALID_REQUEST, "Bad Request: Mcp-Session-Id header is required");
        return -1;
    }
    uint64_t now = (uint64_t)time(NULL);
    int rc = session_id_decode(gw->keys, *sid, strlen(*sid), now, cl);
    static const uint8_t anonymous[16];
    if (rc == SESSION_ID_OK && memcmp(cl->subject, id ? id->subject : anonymous, sizeof cl->subject) != 0) {
        log_info("session", "session used by another subject than its creator: refused");
        rc = SESS_REVOKED;   /* another subject's session: as if it did not exist */
    } else if (rc == SESSION_ID_OK) rc = session_touch(gw->sessions, *sid, cl->expires, now);
    else rc = SESS_REVOKED;
    if (rc == SESS_FULL) {
        mcp_reply_error(w, req, 503, NULL, JR_INTERNAL_ERROR, "too many sessions");
        return -1;
    }
    if (rc != SESS_OK) {
        mcp_reply_error(w, req, 404, NULL, JR_INVALID_REQUEST, "Session not found");
        return -1;
    }
    if (redis_session_check(w, req, *sid, force)) return -1;
    return 0;
}

/* ---- methods answered here -------------------------------------------------------------------- */

static uint32_t client_caps(json_t *params)
{
    json_t *caps = json_object_get(params, "capabilities");
    uint32_t c = 0;
    if (json_object_get(caps, "sampling")) c |= SESSION_CAP_SAMPLING;
    json_t *el = json_object_get(caps, "elicitation");
    if (el) {
        c |= SESSION_CAP_ELICITATION;
        if (json_object_get(el, "url")) c |= SESSION_CAP_ELICITATION_URL;
    }
    json_t *roots = json_object_get(caps, "roots");
    if (roots) {
        c |= SESSION_CAP_ROOTS;
        if (json_is_true(json_object_get(roots, "listChanged"))) c |= SESSION_CAP_ROOTS_LIST_CHANGED;
    }
    return c;
}

static void do_initialize(worker *w, http_req *req, jr_msg *m, const auth_identity *id)
{
    gateway *gw = w->gw;
    const char *asked = json_string_value(json_object_get(m->params, "protocolVersion"));
    if (!json_is_object(m->params) || !asked) {
        mcp_reply_error(w, req, 400, m->id, JR_INVALID_PARAMS, "initialize needs params.protocolVersion");
        return;
    }
    int proto = session_proto_index(asked);
    if (proto < 0) proto = SESSION_PROTO_COUNT - 1;   /* answer with the latest we speak */
    session_claims cl;
    uint64_t now = (uint64_t)time(NULL);
    session_claims_init(&cl, now, (uint64_t)gw->cfg->session_length_min * 60);
    cl.proto = (uint8_t)proto;
    cl.client_caps = client_caps(m->params);
    if (id) memcpy(cl.subject, id->subject, sizeof cl.subject);   /* the session is bound to its subject */
    char sid[SESSION_ID_MAX];
    session_id_encode(gw->keys, &cl, sid);
    int rc = session_open(gw->sessions, sid, cl.expires, now, cl.subject);
    if (rc == SESS_OK) redis_session_opened(w, sid);
    if (rc == SESS_FULL) {
        mcp_reply_error(w, req, 503, m->id, JR_INTERNAL_ERROR, "too many sessions: try again later");
        return;
    }
    if (rc == SESS_SUBJECT_FULL) {   /* this caller's own sessions: end some (DELETE) or wait for them to idle out */
        mcp_reply_error_hdr(w, req, 429, "Retry-After: 60\r\n", m->id, JR_INTERNAL_ERROR,
                            "too many sessions for this user: close some (DELETE) or try again later");
        return;
    }
    char result[768];
    int n = snprintf(result, sizeof result,
                     "{\"protocolVersion\":\"%s\",\"capabilities\":{\"tools\":{\"listChanged\":true},"
                     "\"prompts\":{\"listChanged\":true},\"resources\":{\"subscribe\":true,\"listChanged\":true},"
                     "\"logging\":{},\"completions\":{}},"
                     "\"serverInfo\":{\"name\":\"mcp-gateway\",\"version\":\"" GW_VERSION "\"}}",
                     session_proto_name((uint8_t)proto));
    reply_result(w, req, m->id, result, (size_t)n, sid);
}

/* A list: what this caller may use (authz.c: virtual server, trusted header, rules, roles). */
static void do_list(worker *w, http_req *req, jr_msg *m, enum cat_kind kind, authz_req *az)
{
    static const char *const empty[CAT_KINDS] = {"{\"tools\":[]}", "{\"prompts\":[]}", "{\"resources\":[]}",
                                                 "{\"resourceTemplates\":[]}"};
    catalog *c = catalog_acquire();
    size_t len = 0;
    const char *res = c ? authz_list(az, c, kind, &len) : NULL;
    if (!res) { res = empty[kind]; len = strlen(res); }
    reply_result(w, req, m->id, res, len, NULL);
    catalog_unref(c);
}

/* A call authz.c refused. Outside the request's virtual server, or with hideDenied, exactly the
 * answer for a name that does not exist; else the seed's 403, with an insufficient_scope
 * challenge only when a token with more scopes would be allowed (clients then step up; for a
 * role or group, which no scope grants, they would only loop). */
static void reply_denied(worker *w, http_req *req, jr_msg *m, const authz_req *az, const authz_result *r,
                         enum cat_kind kind, const char *name)
{
    if (r->vs || authz_hide_denied()) {
        char e[300];
        if (kind >= CAT_RESOURCES) {
            snprintf(e, sizeof e, "Resource not found: %.200s", name);
            mcp_reply_error(w, req, 200, m->id, -32002, e);
        } else {
            snprintf(e, sizeof e, "Unknown %s: %.200s", kind == CAT_TOOLS ? "tool" : "prompt", name);
            mcp_reply_error(w, req, 200, m->id, JR_INVALID_PARAMS, e);
        }
        return;
    }
    char extra[4096];
    buf b = {extra, 0, sizeof extra, sizeof extra - 1};
    extra[0] = '\0';
    if (r->scope)
        buf_printf(&b, "WWW-Authenticate: Bearer error=\"insufficient_scope\", scope=\"%s\", resource_metadata=\"%s\"\r\n",
                   r->scope, prm_url_vs(w->cfg, az->vs));
    char cors[768];
    mcp_extra_headers(w, req, cors, sizeof cors, NULL);
    buf_appends(&b, cors);
    http_respond(req, 403, extra, "application/json", AUTHZ_FORBIDDEN_BODY, sizeof AUTHZ_FORBIDDEN_BODY - 1);
}

/* Routes a request naming a tool or prompt (params.name, or params.ref.name) to its server,
 * rewriting the name to the upstream's own. */
static void route_named(worker *w, http_req *req, jr_msg *m, json_t *msg, const char *sid, session_claims *cl,
                        enum cat_kind kind, json_t *holder, authz_req *az, int method)
{
    const char *what = kind == CAT_TOOLS ? "tool" : "prompt";
    const char *name = json_string_value(json_object_get(holder, "name"));
    if (!name) {
        char e[96];
        snprintf(e, sizeof e, "%s needs params.%sname", m->method, holder == m->params ? "" : "ref.");
        mcp_reply_error(w, req, 200, m->id, JR_INVALID_PARAMS, e);
        return;
    }
    catalog *c = catalog_acquire();
    const cat_entry *t = c ? catalog_find(c, kind, name) : NULL;
    if (!t) {
        char e[300];
        snprintf(e, sizeof e, "Unknown %s: %.200s", what, name);
        mcp_reply_error(w, req, 200, m->id, JR_INVALID_PARAMS, e);
        catalog_unref(c);
        return;
    }
    authz_result r;
    int allowed = authz_call(az, kind, t, method, &r);
    trace_req_target(w, req, (size_t)t->server, kind == CAT_TOOLS ? t->fed_name : NULL, allowed);   /* metrics, span */
    if (!allowed) {   /* refused before anything reaches the upstream */
        reply_denied(w, req, m, az, &r, kind, name);
        catalog_unref(c);
        return;
    }
    size_t server = (size_t)t->server;
    json_object_set_new(holder, "name", json_string(t->up_name));   /* the upstream's own name */
    catalog_unref(c);
    if (kind == CAT_TOOLS) __atomic_add_fetch(&w->calls[server], 1, __ATOMIC_RELAXED);
    relay_start(w, req, sid, cl, server, json_incref(msg));
}

/* Routes a request naming a resource URI (params.uri, or params.ref.uri) to its server. */
static void route_uri(worker *w, http_req *req, jr_msg *m, json_t *msg, const char *sid, session_claims *cl,
                      json_t *holder, authz_req *az, int method)
{
    const char *uri = json_string_value(json_object_get(holder, "uri"));
    if (!uri) {
        mcp_reply_error(w, req, 200, m->id, JR_INVALID_PARAMS, "params.uri is required");
        return;
    }
    catalog *c = catalog_acquire();
    const char *up = NULL;
    int server = -1;
    enum cat_kind kind = CAT_RESOURCES;
    if (c && holder != m->params) {   /* completion on a template names its uriTemplate */
        const cat_entry *t = catalog_find(c, CAT_TEMPLATES, uri);
        if (t) { server = t->server; up = t->up_name; kind = CAT_TEMPLATES; }
    }
    if (server < 0 && c) server = catalog_route_uri(c, uri, &up);
    if (server < 0) {
        char e[300];
        snprintf(e, sizeof e, "Resource not found: %.200s", uri);
        mcp_reply_error(w, req, 200, m->id, -32002, e);
        catalog_unref(c);
        return;
    }
    cat_entry ent = {.fed_name = uri, .up_name = up, .server = server};
    authz_result r;
    int allowed = authz_call(az, kind, &ent, method, &r);
    trace_req_target(w, req, (size_t)server, NULL, allowed);
    if (!allowed) {   /* refused before anything reaches the upstream */
        reply_denied(w, req, m, az, &r, kind, uri);
        catalog_unref(c);
        return;
    }
    if (up != uri) json_object_set_new(holder, "uri", json_string(up));
    catalog_unref(c);
    relay_start(w, req, sid, cl, (size_t)server, json_incref(msg));
}

static void do_complete(worker *w, http_req *req, jr_msg *m, json_t *msg, const char *sid, session_claims *cl,
                        authz_req *az)
{
    json_t *ref = json_object_get(m->params, "ref");
    const char *type = json_string_value(json_object_get(ref, "type"));
    if (type && !strcmp(type, "ref/prompt")) route_named(w, req, m, msg, sid, cl, CAT_PROMPTS, ref, az, AUTHZ_COMPLETE);
    else if (type && !strcmp(type, "ref/resource")) route_uri(w, req, m, msg, sid, cl, ref, az, AUTHZ_COMPLETE);
    else mcp_reply_error(w, req, 200, m->id, JR_INVALID_PARAMS,
                         "completion/complete needs params.ref of type ref/prompt or ref/resource");
}

/* logging/setLevel applies to every upstream of the session: now to those it has, later to
 * those it starts (relay.c sends the stored level after initializing). */
static void do_set_level(worker *w, http_req *req, jr_msg *m, const char *sid)
{
    static const char *const levels[] = {"debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"};
    const char *level = json_string_value(json_object_get(m->params, "level"));
    size_t i = 0;
    while (level && i < 8 && strcmp(levels[i], level)) i++;
    if (!level || i == 8) {
        mcp_reply_error(w, req, 200, m->id, JR_INVALID_PARAMS, "logging/setLevel needs params.level (debug … emergency)");
        return;
    }
    session_set_level(w->gw->sessions, sid, levels[i]);
    redis_note_level(w, sid, levels[i]);
    relay_set_level_all(w, req, m->id, sid, levels[i]);   /* answers when the upstreams have it */
}

static void do_request(worker *w, http_req *req, jr_msg *m, json_t *msg, const char *sid, session_claims *cl,
                       authz_req *az)
{
    const char *meth = m->method;
    int has_params = json_is_object(m->params);
    if (!strcmp(meth, "ping")) reply_result(w, req, m->id, "{}", 2, NULL);
    else if (!strcmp(meth, "tools/list")) do_list(w, req, m, CAT_TOOLS, az);
    else if (!strcmp(meth, "prompts/list")) do_list(w, req, m, CAT_PROMPTS, az);
    else if (!strcmp(meth, "resources/list")) do_list(w, req, m, CAT_RESOURCES, az);
    else if (!strcmp(meth, "resources/templates/list")) do_list(w, req, m, CAT_TEMPLATES, az);
    else if (!strcmp(meth, "tools/call") || !strcmp(meth, "prompts/get")) {
        int tool = meth[0] == 't';
        if (!has_params) mcp_reply_error(w, req, 200, m->id, JR_INVALID_PARAMS, "params.name is required");
        else route_named(w, req, m, msg, sid, cl, tool ? CAT_TOOLS : CAT_PROMPTS, m->params, az,
                         tool ? AUTHZ_TOOLS_CALL : AUTHZ_PROMPTS_GET);
    } else if (!strcmp(meth, "resources/read") || !strcmp(meth, "resources/subscribe") ||
               !strcmp(meth, "resources/unsubscribe")) {
        if (!has_params) mcp_reply_error(w, req, 200, m->id, JR_INVALID_PARAMS, "params.uri is required");
        else route_uri(w, req, m, msg, sid, cl, m->params, az, authz_method_id(meth));
    } else if (!strcmp(meth, "completion/complete")) do_complete(w, req, m, msg, sid, cl, az);
    else if (!strcmp(meth, "logging/setLevel")) do_set_level(w, req, m, sid);
    else if (!strcmp(meth, "initialize"))
        mcp_reply_error(w, req, 400, m->id, JR_INVALID_REQUEST, "initialize must not carry a session id");
    else {
        char msg2[200];
        snprintf(msg2, sizeof msg2, "Method not found: %.120s", meth);
        mcp_reply_error(w, req, 200, m->id, JR_METHOD_NOT_FOUND, msg2);
    }
}

/* ---- POST / GET / DELETE ------------------------------------------------------------------------ */

static void do_post(worker *w, http_req *req, const auth_identity *id, int vs)
{
    gateway *gw = w->gw;
    const char *ctype = http_req_header(req, "content-type");
    if (!ctype || strncasecmp(ctype, "application/json", 16) != 0 || (ctype[16] && ctype[16] != ';' && ctype[16] != ' ')) {
        mcp_reply_error(w, req, 415, NULL, JR_INVALID_REQUEST, "Unsupported Media Type: Content-Type must be application/json");
        return;
    }
    const char *accept = http_req_header(req, "accept");
    if (accept && !header_has(accept, "application/json") && !header_has(accept, "text/event-stream") &&
        !header_has(accept, "*/*")) {
        mcp_reply_error(w, req, 406, NULL, JR_INVALID_REQUEST,
                        "Not Acceptable: Accept must include application/json and text/event-stream");
        return;
    }
    json_t *msg = NULL;
    char err[200];
    if (jsonrpc_parse(req->body.data ? req->body.data : "", req->body.len, &gw->jlim, &msg, err, sizeof err) != 0) {
        char m2[260];
        snprintf(m2, sizeof m2, "Parse error: %s", err);
        mcp_reply_error(w, req, 400, NULL, JR_PARSE_ERROR, m2);
        return;
    }
    if (json_is_array(msg)) {
        /* batches: only 2025-03-26 had them; this gateway answers every later revision with -32600 */
        json_decref(msg);
        mcp_reply_error(w, req, 400, NULL, JR_INVALID_REQUEST, "Invalid Request: JSON-RPC batches are not supported");
        return;
    }
    jr_msg m;
    if (jsonrpc_classify(msg, &gw->jlim, &m, err, sizeof err) != 0) {
        char m2[260];
        snprintf(m2, sizeof m2, "Invalid Request: %s", err);
        mcp_reply_error(w, req, 400, m.id, JR_INVALID_REQUEST, m2);
        json_decref(msg);
        return;
    }
    trace_req_method(req, (int)m.kind, m.method);   /* the metrics' method label */
    if (m.kind == JR_REQUEST && !strcmp(m.method, "initialize") && !http_req_header(req, "mcp-session-id")) {
        do_initialize(w, req, &m, id);
        json_decref(msg);
        return;
    }
    session_claims cl;
    const char *sid;
    int force = m.kind == JR_REQUEST && !strcmp(m.method, "logging/setLevel");   /* every upstream session */
    if (session_check(w, req, id, &cl, &sid, force) != 0) { json_decref(msg); return; }
    if (m.kind == JR_RESPONSE) {
        /* the client's answer to a server→client request: back to the upstream that asked (asked
         * through another replica: found in Redis) */
        if (relay_client_response(w, sid, msg) != 0 && redis_client_response(w, sid, msg) != 0)
            log_debug("session", "a response for no pending server request: ignored");
        mcp_reply(w, req, 202, NULL, NULL, 0, NULL);
        json_decref(msg);
        return;
    }
    if (m.kind == JR_NOTIFICATION) {
        if (!strcmp(m.method, "notifications/cancelled")) relay_client_cancel(w, sid, msg);
        else if (!strcmp(m.method, "notifications/roots/list_changed"))
            for (size_t i = 0; i < gw->cfg->n_servers; i++)
                if (gw_server_live(&gw->cfg->servers[i])) relay_send_upstream(w, sid, i, msg);
        mcp_reply(w, req, 202, NULL, NULL, 0, NULL);
        json_decref(msg);
        return;
    }
    authz_req az;
    authz_req_init(&az, w, req, id, vs, sid);
    do_request(w, req, &m, msg, sid, &cl, &az);
    json_decref(msg);
}

static void do_get(worker *w, http_req *req, const auth_identity *id)
{
    gateway *gw = w->gw;
    const char *accept = http_req_header(req, "accept");
    if (!header_has(accept, "text/event-stream")) {
        mcp_reply_error(w, req, 406, NULL, JR_INVALID_REQUEST, "Not Acceptable: GET needs Accept: text/event-stream");
        return;
    }
    session_claims cl;
    const char *sid;
    if (session_check(w, req, id, &cl, &sid, 1) != 0) return;   /* every upstream session's stream */
    if (__atomic_load_n(&gw->n_sse, __ATOMIC_RELAXED) >= (size_t)gw->cfg->max_sse_streams) {
        mcp_reply_error_hdr(w, req, 429, "Retry-After: 5\r\n", NULL, JR_INTERNAL_ERROR,
                            "too many SSE streams open: try again later");
        return;
    }
    streams_open(w, req, sid, &cl);
}

static void do_delete(worker *w, http_req *req, const auth_identity *id)
{
    session_claims cl;
    const char *sid;
    if (session_check(w, req, id, &cl, &sid, 1) != 0) return;   /* every upstream session, to end them */
    char **up = session_revoke(w->gw->sessions, sid, (uint64_t)time(NULL));
    redis_revoke(w, sid);   /* everywhere */
    if (up) {
        /* end the upstream sessions too (best effort, nobody waits), with each server's credentials */
        for (size_t i = 0; i < w->gw->cfg->n_servers; i++) {
            if (!up[i]) continue;
            char *sp = strchr(up[i], ' ');
            if (sp && sp[1]) {
                *sp = '\0';
                relay_end_upstream(w, sid, i, up[i], sp + 1);
            }
            free(up[i]);
        }
        free(up);
    }
    streams_close_session(w, sid);   /* this loop's; others end when their clients see the 404s */
    mcp_reply(w, req, 200, NULL, NULL, 0, NULL);
}

void mcp_handle(worker *w, http_req *req, const auth_identity *id, int vs)
{
    gateway *gw = w->gw;
    const char *origin = http_req_header(req, "origin");
    if (origin && !mcp_origin_allowed(gw, origin)) {
        http_respond(req, 403, NULL, "application/json", "{\"error\":\"Forbidden\",\"message\":\"Origin not allowed\"}", 51);
        return;
    }
    if (!host_allowed(gw, http_req_header(req, "host"))) {
        http_respond(req, 403, NULL, "application/json", "{\"error\":\"Forbidden\",\"message\":\"Host not allowed\"}", 49);
        return;
    }
    const char *pv = http_req_header(req, "mcp-protocol-version");
    if (pv && session_proto_index(pv) < 0 && req->method != HTTP_OPTIONS) {
        char m[160];
        snprintf(m, sizeof m, "Bad Request: unsupported MCP-Protocol-Version %.40s", pv);
        mcp_reply_error(w, req, 400, NULL, JR_INVALID_REQUEST, m);
        return;
    }
    const char *vh = req->method != HTTP_OPTIONS ? http_req_header(req, "x-mcp-virtualserver") : NULL;
    if (vh) {   /* Kuadrant's header form; an unknown name is 400 (404 would end the client's session) */
        int hv = authz_vs_find(w->cfg, vh, strlen(vh));
        if (hv < 0 || (vs >= 0 && hv != vs)) {
            char m[300];
            snprintf(m, sizeof m, "Bad Request: %s virtual server '%.200s' (X-Mcp-Virtualserver)",
                     hv < 0 ? "unknown" : "another", vh);
            mcp_reply_error(w, req, 400, NULL, JR_INVALID_REQUEST, m);
            return;
        }
        vs = hv;
    }
    switch (req->method) {
    case HTTP_POST: do_post(w, req, id, vs); break;
    case HTTP_GET: do_get(w, req, id); break;
    case HTTP_DELETE: do_delete(w, req, id); break;
    case HTTP_OPTIONS: {
        char extra[1024];
        mcp_extra_headers(w, req, extra, sizeof extra, NULL);
        strncat(extra,
                "Access-Control-Allow-Methods: GET, POST, DELETE, OPTIONS\r\n"
                "Access-Control-Allow-Headers: Content-Type, Authorization, Accept, Mcp-Session-Id, "
                "MCP-Protocol-Version, Last-Event-ID, X-Mcp-Virtualserver\r\nAccess-Control-Max-Age: 3600\r\n",
                sizeof extra - strlen(extra) - 1);
        http_respond(req, 204, extra, NULL, NULL, 0);
        break;
    }
    default:
        http_respond(req, 405, "Allow: GET, POST, DELETE, OPTIONS\r\n", "application/json",
                     "{\"error\":\"Method Not Allowed\"}", 30);
    }
}

/* Writes notifications/<kind>/list_changed to every GET stream of this loop. */
void mcp_broadcast_list_changed(worker *w, int kind)
{
    static const char *const names[] = {"tools", "prompts", "resources", "resources"};
    char ev[128];
    int n = snprintf(ev, sizeof ev, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/%s/list_changed\"}",
                     names[kind & 3]);
    streams_broadcast(w, ev, (size_t)n);
}
