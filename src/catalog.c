#include "catalog.h"
#include "config.h"
#include "buf.h"
#include "log.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t pub_lock = PTHREAD_MUTEX_INITIALIZER;
static catalog *published;

static const struct kind_info {
    const char *key;      /* the field that names an entry */
    const char *result;   /* the list's field in the result */
    const char *what;     /* for messages */
    int         by_uri;   /* URIs are namespaced only on conflict; names always get the prefix */
} kinds[CAT_KINDS] = {
    [CAT_TOOLS] = {"name", "tools", "tool", 0},
    [CAT_PROMPTS] = {"name", "prompts", "prompt", 0},
    [CAT_RESOURCES] = {"uri", "resources", "resource", 1},
    [CAT_TEMPLATES] = {"uriTemplate", "resourceTemplates", "resource template", 1},
};

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const cat_entry *)a)->fed_name, ((const cat_entry *)b)->fed_name);
}

static json_t *input_list(const cat_input *in, enum cat_kind k)
{
    switch (k) {
    case CAT_TOOLS: return in->tools;
    case CAT_PROMPTS: return in->prompts;
    case CAT_RESOURCES: return in->resources;
    default: return in->templates;
    }
}

/* Which names a virtual server shows (NULL list = all). */
static int vs_keeps(const gw_vserver_cfg *vs, enum cat_kind k, const char *name)
{
    char *const *names = k == CAT_TOOLS ? vs->tools : vs->prompts;
    size_t n = k == CAT_TOOLS ? vs->n_tools : vs->n_prompts;
    int set = k == CAT_TOOLS ? vs->tools_set : vs->prompts_set;
    if (!set || k > CAT_PROMPTS) return 1;
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0) return 1;
    return 0;
}

/* {"<result>":[...]} of the entries a virtual server keeps (vs NULL: all). */
static char *list_result(const cat_list *l, enum cat_kind k, json_t *objs, const gw_vserver_cfg *vs, size_t *len)
{
    buf b;
    buf_init(&b, (size_t)1 << 30);
    buf_printf(&b, "{\"%s\":[", kinds[k].result);
    int first = 1;
    for (size_t i = 0; i < l->n; i++) {
        if (vs && !vs_keeps(vs, k, l->e[i].fed_name)) continue;
        json_t *t = json_object_get(objs, l->e[i].fed_name);   /* borrowed */
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

static void conflict(catalog *c, const char *msg)
{
    log_warn("catalog", "%s", msg);
    c->conflicts = realloc(c->conflicts, (c->n_conflicts + 1) * sizeof *c->conflicts);
    c->conflicts[c->n_conflicts++] = strdup(msg);
}

static void build_kind(catalog *c, const gw_config *cfg, const cat_input *in, const size_t *slots, size_t n,
                       enum cat_kind k)
{
    const struct kind_info *ki = &kinds[k];
    cat_list *l = &c->lists[k];
    json_t *objs = json_object();      /* fed_name → object, owned by the store */
    json_t *ups = json_array();        /* upstream names, kept alive for up_name */
    json_t *owner = json_object();     /* fed_name → server index (first wins) */
    json_t *slot = json_object();
    json_object_set_new(slot, "objs", objs);
    json_object_set_new(slot, "ups", ups);
    json_object_set_new(c->store, ki->result, slot);
    size_t cap = 0;
    for (size_t s = 0; s < n; s++)
        if (in[s].ready) cap += json_array_size(input_list(&in[s], k));
    l->e = calloc(cap ? cap : 1, sizeof *l->e);
    for (size_t s = 0; s < n; s++) {
        json_t *arr = input_list(&in[s], k);
        if (!in[s].ready || !json_is_array(arr)) continue;
        size_t i;
        json_t *t;
        json_array_foreach(arr, i, t) {
            const char *name = json_string_value(json_object_get(t, ki->key));
            if (!name) continue;
            const char *pfx = in[s].prefix ? in[s].prefix : "";
            if (strlen(name) + strlen(pfx) + sizeof CAT_URN + strlen(in[s].name) + 2 > 2048) {
                log_warn(in[s].name, "%s name longer than 2000 bytes: not published", ki->what);
                continue;
            }
            char fed[2048];
            if (ki->by_uri) snprintf(fed, sizeof fed, "%s", name);
            else snprintf(fed, sizeof fed, "%s%s", pfx, name);
            json_t *prev = json_object_get(owner, fed);
            if (prev && ki->by_uri) {   /* namespace the later server's URI */
                snprintf(fed, sizeof fed, CAT_URN "%s:%s", *pfx ? pfx : in[s].name, name);
                prev = json_object_get(owner, fed);
            }
            if (prev) {
                char msg[2600];
                size_t ps = (size_t)json_integer_value(prev);
                snprintf(msg, sizeof msg, "%s: %s of server %s conflicts with server %s (earlier in the config); dropped",
                         fed, ki->what, in[s].name, in[ps].name);
                conflict(c, msg);
                continue;
            }
            json_object_set_new(owner, fed, json_integer((json_int_t)s));
            json_t *copy = json_deep_copy(t);
            json_object_set_new(copy, ki->key, json_string(fed));
            json_object_set_new(objs, fed, copy);
            json_array_append_new(ups, json_string(name));
            cat_entry *e = &l->e[l->n++];
            /* both strings live in c->store: the object key and the array element */
            e->fed_name = json_object_iter_key(json_object_iter_at(objs, fed));
            e->up_name = json_string_value(json_array_get(ups, json_array_size(ups) - 1));
            e->server = (int)(slots ? slots[s] : s);
        }
    }
    json_decref(owner);
    qsort(l->e, l->n, sizeof *l->e, entry_cmp);
    l->result = list_result(l, k, objs, NULL, &l->result_len);
    if (cfg && cfg->n_vservers && k <= CAT_PROMPTS) {
        l->vs = calloc(cfg->n_vservers, sizeof *l->vs);
        for (size_t v = 0; v < cfg->n_vservers; v++) l->vs[v] = list_result(l, k, objs, &cfg->vservers[v], NULL);
    }
}

catalog *catalog_build(const gw_config *cfg, const cat_input *in, size_t n) { return catalog_build_at(cfg, in, NULL, n); }

catalog *catalog_build_at(const gw_config *cfg, const cat_input *in, const size_t *slots, size_t n)
{
    static uint64_t version;
    catalog *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->refs = 1;
    c->version = __atomic_add_fetch(&version, 1, __ATOMIC_RELAXED);
    c->store = json_object();
    c->servers = calloc(n ? n : 1, sizeof *c->servers);
    c->n_servers = n;
    for (size_t s = 0; s < n; s++) {
        cat_server *cs = &c->servers[s];
        cs->name = strdup(in[s].name);
        cs->ready = in[s].ready;
        cs->message = strdup(in[s].message ? in[s].message : "");
        cs->last_validated = in[s].last_validated;
        if (!in[s].ready) continue;
        cs->n_tools = json_array_size(in[s].tools);
        cs->n_prompts = json_array_size(in[s].prompts);
    }
    for (int k = 0; k < CAT_KINDS; k++) build_kind(c, cfg, in, slots, n, (enum cat_kind)k);
    cat_list *t = &c->lists[CAT_TOOLS];
    c->tools = t->e;
    c->n_tools = t->n;
    c->tools_result = t->result;
    c->tools_result_len = t->result_len;
    if (cfg && cfg->n_vservers) {
        c->n_vs = cfg->n_vservers;
        c->vs_names = calloc(c->n_vs, sizeof *c->vs_names);
        for (size_t v = 0; v < c->n_vs; v++) c->vs_names[v] = strdup(cfg->vservers[v].name);
        c->vs_results = t->vs;
    }
    return c;
}

const cat_entry *catalog_find(const catalog *c, enum cat_kind kind, const char *fed_name)
{
    cat_entry key = {.fed_name = fed_name};
    const cat_list *l = &c->lists[kind];
    return bsearch(&key, l->e, l->n, sizeof *l->e, entry_cmp);
}

const cat_tool *catalog_find_tool(const catalog *c, const char *fed_name)
{
    return catalog_find(c, CAT_TOOLS, fed_name);
}

int catalog_route_uri(const catalog *c, const char *uri, const char **up)
{
    const cat_entry *e = catalog_find(c, CAT_RESOURCES, uri);
    if (e) { *up = e->up_name; return e->server; }
    if (!strncmp(uri, CAT_URN, sizeof CAT_URN - 1)) {   /* urn:mcp-gateway:<key>:<original> */
        const char *k = uri + sizeof CAT_URN - 1;
        const char *colon = strchr(k, ':');
        if (!colon) return -1;
        /* the key (a prefix or a server name) is that of some namespaced entry of its server */
        for (int kind = CAT_RESOURCES; kind <= CAT_TEMPLATES; kind++) {
            const cat_list *l = &c->lists[kind];
            for (size_t i = 0; i < l->n; i++)
                if (colon > k && !strncmp(l->e[i].fed_name, uri, (size_t)(colon + 1 - uri))) {
                    *up = colon + 1;
                    return l->e[i].server;
                }
        }
        return -1;
    }
    /* a template's expansion: the longest literal prefix before its first '{' */
    const cat_list *l = &c->lists[CAT_TEMPLATES];
    size_t best = 0;
    int server = -1;
    for (size_t i = 0; i < l->n; i++) {
        const char *t = l->e[i].fed_name;
        size_t lit = strcspn(t, "{");
        if (lit > best && !strncmp(t, uri, lit)) {
            best = lit;
            server = l->e[i].server;
        }
    }
    if (server >= 0) *up = uri;
    return server;
}

const char *catalog_result(const catalog *c, enum cat_kind kind, const char *vs_name, size_t *len)
{
    const cat_list *l = &c->lists[kind];
    if (vs_name && l->vs)
        for (size_t v = 0; v < c->n_vs; v++)
            if (strcmp(c->vs_names[v], vs_name) == 0) {
                if (len) *len = strlen(l->vs[v]);
                return l->vs[v];
            }
    if (len) *len = l->result_len;
    return l->result;
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
    for (int k = 0; k < CAT_KINDS; k++) {
        cat_list *l = &c->lists[k];
        if (l->vs)
            for (size_t v = 0; v < c->n_vs; v++) free(l->vs[v]);
        free(l->vs);
        free(l->e);
        free(l->result);
    }
    for (size_t v = 0; v < c->n_vs; v++) free(c->vs_names[v]);
    for (size_t i = 0; i < c->n_conflicts; i++) free(c->conflicts[i]);
    free(c->conflicts);
    free(c->vs_names);
    free(c->servers);
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

int catalog_owns_notification(const char *method)
{
    return method && (!strcmp(method, "notifications/tools/list_changed") ||
                      !strcmp(method, "notifications/prompts/list_changed") ||
                      !strcmp(method, "notifications/resources/list_changed"));
}
