#include "catalog.h"
#include "config.h"
#include "buf.h"
#include "log.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t pub_lock = PTHREAD_MUTEX_INITIALIZER;
static catalog *published;

static int tool_cmp(const void *a, const void *b)
{
    return strcmp(((const cat_tool *)a)->fed_name, ((const cat_tool *)b)->fed_name);
}

/* {"tools":[...]} of the tools for which keep(i) holds. */
static char *tools_result(const catalog *c, json_t *objs, int (*keep)(const catalog *, size_t, void *), void *arg,
                          size_t *len)
{
    buf b;
    buf_init(&b, (size_t)1 << 30);
    buf_appends(&b, "{\"tools\":[");
    int first = 1;
    for (size_t i = 0; i < c->n_tools; i++) {
        if (keep && !keep(c, i, arg)) continue;
        json_t *t = json_object_get(objs, c->tools[i].fed_name);   /* borrowed */
        char *s = json_dumps(t, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!s) continue;
        if (!first) buf_append(&b, ",", 1);
        buf_appends(&b, s);
        free(s);
        first = 0;
    }
    buf_appends(&b, "]}");
    return buf_take(&b, len);
}

static int keep_vs(const catalog *c, size_t i, void *arg)
{
    const gw_vserver_cfg *vs = arg;
    if (!vs->tools_set) return 1;
    for (size_t k = 0; k < vs->n_tools; k++)
        if (strcmp(vs->tools[k], c->tools[i].fed_name) == 0) return 1;
    return 0;
}

catalog *catalog_build(const gw_config *cfg, const cat_input *in, size_t n)
{
    static uint64_t version;
    catalog *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->refs = 1;
    c->version = __atomic_add_fetch(&version, 1, __ATOMIC_RELAXED);
    c->store = json_object();
    json_t *objs = json_object();      /* fed_name → tool object */
    json_object_set_new(c->store, "tools", objs);
    json_t *ups = json_array();        /* upstream names, same order as they were added */
    json_object_set_new(c->store, "up", ups);
    json_t *owner = json_object();     /* fed_name → server index (first wins) */
    c->servers = calloc(n ? n : 1, sizeof *c->servers);
    c->n_servers = n;
    size_t cap = 0;
    for (size_t s = 0; s < n; s++) {
        cat_server *cs = &c->servers[s];
        cs->name = strdup(in[s].name);
        cs->ready = in[s].ready;
        cs->message = strdup(in[s].message ? in[s].message : "");
        cs->last_validated = in[s].last_validated;
        if (!in[s].ready || !json_is_array(in[s].tools)) continue;
        cs->n_tools = json_array_size(in[s].tools);
        cap += cs->n_tools;
    }
    c->tools = calloc(cap ? cap : 1, sizeof *c->tools);
    for (size_t s = 0; s < n; s++) {
        if (!in[s].ready || !json_is_array(in[s].tools)) continue;
        size_t i;
        json_t *t;
        json_array_foreach(in[s].tools, i, t) {
            const char *name = json_string_value(json_object_get(t, "name"));
            if (!name) continue;
            char fed[1024];
            snprintf(fed, sizeof fed, "%s%s", in[s].prefix ? in[s].prefix : "", name);
            json_t *prev = json_object_get(owner, fed);
            if (prev) {
                char msg[1400];
                size_t ps = (size_t)json_integer_value(prev);
                snprintf(msg, sizeof msg, "%s: tool of server %s conflicts with server %s (earlier in the config); dropped",
                         fed, in[s].name, in[ps].name);
                log_warn("catalog", "%s", msg);
                c->conflicts = realloc(c->conflicts, (c->n_conflicts + 1) * sizeof *c->conflicts);
                c->conflicts[c->n_conflicts++] = strdup(msg);
                continue;
            }
            json_object_set_new(owner, fed, json_integer((json_int_t)s));
            json_t *copy = json_deep_copy(t);
            json_object_set_new(copy, "name", json_string(fed));
            json_object_set_new(objs, fed, copy);
            json_array_append_new(ups, json_string(name));
            cat_tool *ct = &c->tools[c->n_tools++];
            /* both strings live in c->store: the object key and the array element */
            ct->fed_name = json_object_iter_key(json_object_iter_at(objs, fed));
            ct->up_name = json_string_value(json_array_get(ups, json_array_size(ups) - 1));
            ct->server = (int)s;
        }
    }
    json_decref(owner);
    qsort(c->tools, c->n_tools, sizeof *c->tools, tool_cmp);
    c->tools_result = tools_result(c, objs, NULL, NULL, &c->tools_result_len);
    if (cfg && cfg->n_vservers) {
        c->n_vs = cfg->n_vservers;
        c->vs_names = calloc(c->n_vs, sizeof *c->vs_names);
        c->vs_results = calloc(c->n_vs, sizeof *c->vs_results);
        for (size_t v = 0; v < c->n_vs; v++) {
            c->vs_names[v] = strdup(cfg->vservers[v].name);
            c->vs_results[v] = tools_result(c, objs, keep_vs, &cfg->vservers[v], NULL);
        }
    }
    return c;
}

const cat_tool *catalog_find_tool(const catalog *c, const char *fed_name)
{
    cat_tool key = {.fed_name = fed_name};
    return bsearch(&key, c->tools, c->n_tools, sizeof *c->tools, tool_cmp);
}

const char *catalog_vs_result(const catalog *c, const char *vs_name, size_t *len)
{
    for (size_t v = 0; v < c->n_vs; v++)
        if (strcmp(c->vs_names[v], vs_name) == 0) {
            if (len) *len = strlen(c->vs_results[v]);
            return c->vs_results[v];
        }
    return NULL;
}

void catalog_ref(catalog *c) { __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED); }

void catalog_unref(catalog *c)
{
    if (!c || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
    for (size_t s = 0; s < c->n_servers; s++) {
        free(c->servers[s].name);
        free(c->servers[s].message);
    }
    for (size_t v = 0; v < c->n_vs; v++) {
        free(c->vs_names[v]);
        free(c->vs_results[v]);
    }
    for (size_t i = 0; i < c->n_conflicts; i++) free(c->conflicts[i]);
    free(c->conflicts);
    free(c->vs_names);
    free(c->vs_results);
    free(c->servers);
    free(c->tools);
    free(c->tools_result);
    json_decref(c->store);
    free(c);
}

void catalog_publish(catalog *c)
{
    pthread_mutex_lock(&pub_lock);
    catalog *old = published;
    published = c;
    pthread_mutex_unlock(&pub_lock);
    catalog_unref(old);
}

catalog *catalog_acquire(void)
{
    pthread_mutex_lock(&pub_lock);
    catalog *c = published;
    if (c) catalog_ref(c);
    pthread_mutex_unlock(&pub_lock);
    return c;
}
