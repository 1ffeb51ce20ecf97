#include "health.h"
#include "catalog.h"
#include "redis.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void rfc3339(time_t t, char *out, size_t cap)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void server_json(buf *b, const cat_server *s)
{
    char when[40] = "0001-01-01T00:00:00Z";
    if (s->last_validated) rfc3339(s->last_validated, when, sizeof when);
    buf_appends(b, "{\"id\":\"");
    buf_json_str(b, s->name, strlen(s->name));
    buf_appends(b, "\",\"name\":\"");
    buf_json_str(b, s->name, strlen(s->name));
    buf_printf(b, "\",\"lastValidated\":\"%s\",\"message\":\"", when);
    buf_json_str(b, s->message, strlen(s->message));
    buf_printf(b, "\",\"ready\":%s,\"totalTools\":%zu,\"totalPrompts\":%zu}", s->ready ? "true" : "false",
               s->n_tools, s->n_prompts);
}

static void json_reply(http_req *req, int status, buf *b)
{
    http_respond(req, status, "Cache-Control: no-store\r\n", "application/json", b->data, b->len);
    buf_free(b);
}

void health_handle(worker *w, http_req *req)
{
    const char *p = req->path;
    if (strcmp(p, "/healthz") == 0) {
        http_respond(req, 200, NULL, "text/plain", "ok", 2);
        return;
    }
    catalog *c = catalog_acquire();
    size_t ready = 0, n = c ? c->n_servers : 0;
    for (size_t i = 0; i < n; i++) ready += c->servers[i].ready;
    buf b;
    buf_init(&b, (size_t)64 << 20);
    if (strcmp(p, "/readyz") == 0) {
        int draining = __atomic_load_n(&w->gw->draining, __ATOMIC_RELAXED);
        int ok = !draining && (n == 0 || ready > 0);
        const char *rs = redis_state();   /* not a reason to be unready: the process serves from its own state */
        buf_printf(&b, "{\"ready\":%s,\"healthyServers\":%zu,\"totalServers\":%zu%s%s%s%s}", ok ? "true" : "false", ready,
                   n, draining ? ",\"draining\":true" : "", rs ? ",\"redis\":\"" : "", rs ? rs : "", rs ? "\"" : "");
        json_reply(req, ok ? 200 : 503, &b);
    } else if (strcmp(p, "/status") == 0 || strcmp(p, "/status/") == 0) {
        buf_appends(&b, "{\"servers\":[");
        for (size_t i = 0; i < n; i++) {
            if (i) buf_append(&b, ",", 1);
            server_json(&b, &c->servers[i]);
        }
        buf_printf(&b, "],\"overallValid\":%s,\"totalServers\":%zu,\"healthyServers\":%zu,\"unHealthyServers\":%zu,"
                       "\"toolConflicts\":[", ready == n ? "true" : "false", n, ready, n - ready);
        for (size_t i = 0; c && i < c->n_conflicts; i++) {
            buf_appends(&b, i ? ",\"" : "\"");
            buf_json_str(&b, c->conflicts[i], strlen(c->conflicts[i]));
            buf_append(&b, "\"", 1);
        }
        char when[40];
        rfc3339(time(NULL), when, sizeof when);
        buf_printf(&b, "],\"timestamp\":\"%s\"}", when);
        json_reply(req, 200, &b);
    } else { /* /status/<name>: the name is used literally and may contain '/' */
        const char *name = p + strlen("/status/");
        const cat_server *s = NULL;
        for (size_t i = 0; i < n && !s; i++)
            if (strcmp(c->servers[i].name, name) == 0) s = &c->servers[i];
        if (s) {
            server_json(&b, s);
            json_reply(req, 200, &b);
        } else {
            buf_appends(&b, "{\"error\":\"server not found\"}");
            json_reply(req, 404, &b);
        }
    }
    catalog_unref(c);
}
