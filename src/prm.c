#include "prm.h"
#include <llhttp.h>
#include <stdlib.h>
#include <string.h>

#define PRM_PATH "/.well-known/oauth-protected-resource"

/* One resource: /mcp, or the path form /v/<name>/mcp of a virtual server. */
typedef struct prm_res {
    char  *doc;       /* the compact JSON document */
    size_t doc_len;
    char  *url;       /* where its metadata lives (what WWW-Authenticate names) */
    char  *resource;  /* its resource URI (the audience its tokens carry) */
    char  *path;      /* the metadata's path on this server ("/.well-known/…/v/<name>/mcp") */
} prm_res;

static prm_res  main_res;

/* Per virtual server of one config (kept with it: cfg->prm). */
struct prm_set {
    prm_res *res;
    size_t   n;
};

static const char cors[] =
    "Access-Control-Allow-Origin: *\r\n"
    "Access-Control-Allow-Methods: GET, POST, PUT, DELETE, OPTIONS, HEAD\r\n"
    "Access-Control-Allow-Headers: Content-Type, Authorization, Accept, Origin, X-Requested-With, MCP-Protocol-Version\r\n"
    "Access-Control-Max-Age: 3600\r\n";

static void str_array(buf *b, const gw_strlist *l, const char *dflt)
{
    buf_append(b, "[", 1);
    if (!l->n && dflt) {
        buf_printf(b, "\"%s\"", dflt);
    }
    for (size_t i = 0; i < l->n; i++) {
        if (i) buf_append(b, ",", 1);
        buf_append(b, "\"", 1);
        buf_json_str(b, l->v[i], strlen(l->v[i]));
        buf_append(b, "\"", 1);
    }
    buf_append(b, "]", 1);
}

static void res_build(prm_res *r, const gw_auth_cfg *a, const char *res)
{
    const char *name = a->resource_name ? a->resource_name : "MCP Server";
    buf b;
    buf_init(&b, 1 << 20);
    buf_appends(&b, "{\"resource_name\":\"");
    buf_json_str(&b, name, strlen(name));
    buf_appends(&b, "\",\"resource\":\"");
    buf_json_str(&b, res, strlen(res));
    buf_appends(&b, "\",\"authorization_servers\":");
    str_array(&b, &a->authorization_servers, NULL);
    buf_appends(&b, ",\"bearer_methods_supported\":");
    str_array(&b, &a->bearer_methods, "header");
    buf_appends(&b, ",\"scopes_supported\":");
    str_array(&b, &a->scopes_supported, "basic");
    buf_appends(&b, "}");
    r->doc = buf_take(&b, &r->doc_len);
    r->resource = strdup(res);

    /* RFC 9728 section 3.1: the well-known segment goes between the origin and the path */
    const char *p = strstr(res, "://");
    const char *path = p ? strchr(p + 3, '/') : res;
    size_t origin_len = p ? (path ? (size_t)(path - res) : strlen(res)) : 0;
    if (!path) path = "";
    buf_init(&b, 1 << 16);
    buf_printf(&b, "%.*s" PRM_PATH "%s", (int)origin_len, res, path);
    r->url = buf_take(&b, NULL);
    r->path = strdup(r->url + origin_len);
}

int prm_init(gw_config *cfg)
{
    const gw_auth_cfg *a = &cfg->auth;
    res_build(&main_res, a, a->resource ? a->resource : "/mcp");
    cfg->prm = prm_set_new(cfg);
    return 0;
}

struct prm_set *prm_set_new(const gw_config *cfg)
{
    const gw_auth_cfg *a = &cfg->auth;
    const char *res = a->resource ? a->resource : "/mcp";
    /* a virtual server's path form: the resource with /mcp replaced by /v/<name>/mcp */
    size_t rl = strlen(res), base = rl >= 4 && !strcmp(res + rl - 4, "/mcp") ? rl - 4 : rl;
    struct prm_set *set = calloc(1, sizeof *set);
    if (!set) return NULL;
    set->res = calloc(cfg->n_vservers ? cfg->n_vservers : 1, sizeof *set->res);
    if (!set->res) { free(set); return NULL; }
    for (size_t i = 0; i < cfg->n_vservers; i++, set->n++) {
        buf b;
        buf_init(&b, 1 << 16);
        buf_printf(&b, "%.*s/v/%s/mcp", (int)base, res, cfg->vservers[i].name);
        char *vr = buf_take(&b, NULL);
        res_build(&set->res[i], a, vr);
        free(vr);
    }
    return set;
}

static void res_free(prm_res *r)
{
    free(r->doc); r->doc = NULL;
    free(r->url); r->url = NULL;
    free(r->resource); r->resource = NULL;
    free(r->path); r->path = NULL;
}

void prm_set_free(struct prm_set *set)
{
    if (!set) return;
    for (size_t i = 0; i < set->n; i++) res_free(&set->res[i]);
    free(set->res);
    free(set);
}

void prm_free(void) { res_free(&main_res); }

const char *prm_url(void) { return main_res.url; }

static const prm_res *vs_res(const gw_config *cfg, int vs)
{
    const struct prm_set *set = cfg ? cfg->prm : NULL;
    return set && vs >= 0 && (size_t)vs < set->n ? &set->res[vs] : &main_res;
}

const char *prm_url_vs(const gw_config *cfg, int vs) { return vs_res(cfg, vs)->url; }
const char *prm_resource_vs(const gw_config *cfg, int vs) { return vs_res(cfg, vs)->resource; }

void prm_handle(worker *w, http_req *req)
{
    if (req->method == HTTP_OPTIONS) {
        http_respond(req, 200, cors, NULL, NULL, 0);
        return;
    }
    const prm_res *r = &main_res;   /* every path under the well-known one, as Kuadrant … */
    const struct prm_set *set = w->cfg->prm;
    for (size_t i = 0; set && i < set->n; i++)   /* … but a virtual server's path form has its own */
        if (!strcmp(req->path, set->res[i].path)) r = &set->res[i];
    http_respond(req, 200, cors, "application/json", req->method == HTTP_HEAD ? NULL : r->doc,
                 req->method == HTTP_HEAD ? 0 : r->doc_len);
}
