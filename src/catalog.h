/* catalog — the federated view of all upstreams: which servers are ready, their tools under
 * federated names (prefix + name), conflicts. Built by the upstream manager on the control
 * loop, published as an immutable, reference-counted snapshot; loops acquire the current one
 * per request (a mutex held for one pointer copy and an atomic increment) and never modify it. */
#ifndef GW_CATALOG_H
#define GW_CATALOG_H
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <jansson.h>

/* The four federated lists. Tools and prompts are named prefix + name (plain concatenation,
 * as Kuadrant). Resources and resource templates keep their URIs when unique across upstreams;
 * a URI that an earlier server already offers is namespaced as
 *     urn:mcp-gateway:<prefix, or the server name when it has none>:<original URI>
 * which the gateway reverses when routing (and templates expand into that form too). */
enum cat_kind { CAT_TOOLS, CAT_PROMPTS, CAT_RESOURCES, CAT_TEMPLATES, CAT_KINDS };

#define CAT_URN "urn:mcp-gateway:"

typedef struct cat_tool {
    const char *fed_name;  /* federated name or URI (owned by the catalog) */
    const char *up_name;   /* the upstream's own name or URI */
    int         server;    /* index into config servers: a slot (config.h) */
} cat_tool, cat_entry;

typedef struct cat_list {
    cat_entry *e;       size_t n;           /* sorted by fed_name */
    char      *result;  size_t result_len;  /* {"tools":[...]} etc., ready to send */
    char     **vs;                          /* per virtual server (tools and prompts only) */
} cat_list;

typedef struct cat_server {
    char   *name;
    int     ready;          /* initialized and listing works; its tools are published */
    char   *message;        /* human-readable state */
    time_t  last_validated; /* last successful contact */
    size_t  n_tools;        /* tools it offers (before conflicts) */
    size_t  n_prompts;
} cat_server;

typedef struct catalog {
    int         refs;         /* atomic */
    uint64_t    version;
    cat_server *servers;      size_t n_servers;
    cat_list    lists[CAT_KINDS];
    /* the tool list under its historical names */
    cat_tool   *tools;        size_t n_tools;      /* sorted by fed_name */
    char       *tools_result; size_t tools_result_len;  /* {"tools":[...]} ready to send */
    char      **vs_names;     char **vs_results;   size_t n_vs; /* per virtual server (tools) */
    char      **conflicts;    size_t n_conflicts;  /* "name: server A vs server B" */
    json_t     *store;        /* owns the tool objects (read-only once published) */
} catalog;

/* Builder input: per server, its tools as a JSON array (borrowed) or NULL when not ready. */
typedef struct cat_input {
    const char *name;
    const char *prefix;
    int         ready;
    const char *message;
    time_t      last_validated;
    json_t     *tools;      /* array of tool objects, borrowed */
    json_t     *prompts;    /* arrays of the other kinds, borrowed, NULL = none */
    json_t     *resources;
    json_t     *templates;
} cat_input;

struct gw_config;
catalog *catalog_build(const struct gw_config *cfg, const cat_input *in, size_t n);
/* The same, with slots[i] the server index (config.h: a slot) of in[i], given in file order. */
catalog *catalog_build_at(const struct gw_config *cfg, const cat_input *in, const size_t *slots, size_t n);
const cat_tool *catalog_find_tool(const catalog *c, const char *fed_name);
const cat_entry *catalog_find(const catalog *c, enum cat_kind kind, const char *fed_name);
/* The server owning a resource URI (listed, namespaced, or matching a template's literal
 * prefix) and the upstream's URI in *up (pointing into uri or the catalog). -1 when none. */
int catalog_route_uri(const catalog *c, const char *uri, const char **up);
const char *catalog_vs_result(const catalog *c, const char *vs_name, size_t *len); /* NULL = unknown vs */
/* The list result of kind, for the virtual server vs_name when given and known. */
const char *catalog_result(const catalog *c, enum cat_kind kind, const char *vs_name, size_t *len);
void catalog_ref(catalog *c);
void catalog_unref(catalog *c);

/* The published snapshot (process-wide). */
void     catalog_publish(catalog *c);   /* takes the caller's reference */
catalog *catalog_acquire(void);         /* new reference; never NULL after the first publish */
/* notifications/{tools,prompts,resources}/list_changed: an upstream's is about its own list and
 * goes to upmgr (which re-lists); clients hear the gateway's own, once the federated list has
 * changed — never the upstream's, which would come early and twice. */
int catalog_owns_notification(const char *method);
#endif
