#include "prm.h"
#include <llhttp.h>
#include <stdlib.h>
#include <string.h>

static char  *doc;       /* the compact JSON document */
static size_t doc_len;
static char  *url;       /* where the resource's metadata lives */

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

int prm_init(const gw_config *cfg)
{
    const gw_auth_cfg *a = &cfg->auth;
    const char *name = a->resource_name ? a->resource_name : "MCP Server";
    const char *res = a->resource ? a->resource : "/mcp";
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
    doc = buf_take(&b, &doc_len);

    /* RFC 9728 section 3.1: the well-known segment goes between the origin and the path */
    const char *p = strstr(res, "://");
    const char *path = p ? strchr(p + 3, '/') : res;
    size_t origin_len = p ? (path ? (size_t)(path - res) : strlen(res)) : 0;
    if (!path) path = "";
    buf_init(&b, 1 << 16);
    buf_printf(&b, "%.*s/.well-known/oauth-protected-resource%s", (int)origin_len, res, path);
    url = buf_take(&b, NULL);
    return 0;
}

void prm_free(void)
{
    free(doc); doc = NULL;
    free(url); url = NULL;
}

const char *prm_url(void) { return url; }

void prm_handle(worker *w, http_req *req)
{
    (void)w;
    if (req->method == HTTP_OPTIONS) {
        http_respond(req, 200, cors, NULL, NULL, 0);
        return;
    }
    http_respond(req, 200, cors, "application/json", req->method == HTTP_HEAD ? NULL : doc,
                 req->method == HTTP_HEAD ? 0 : doc_len);
}
