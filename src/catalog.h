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

typedef struct cat_tool {
    const char *fed_name;  /* prefix + upstream name (owned by the catalog) */
    const char *up_name;   /* upstream's own name */
    int         server;    /* index into config servers */
} cat_tool;

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
    cat_tool   *tools;        size_t n_tools;      /* sorted by fed_name */
    char       *tools_result; size_t tools_result_len;  /* {"tools":[...]} ready to send */
    char      **vs_names;     char **vs_results;   size_t n_vs; /* per virtual server */
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
} cat_input;

struct gw_config;
catalog *catalog_build(const struct gw_config *cfg, const cat_input *in, size_t n);
const cat_tool *catalog_find_tool(const catalog *c, const char *fed_name);
const char *catalog_vs_result(const catalog *c, const char *vs_name, size_t *len); /* NULL = unknown vs */
void catalog_ref(catalog *c);
void catalog_unref(catalog *c);

/* The published snapshot (process-wide). */
void     catalog_publish(catalog *c);   /* takes the caller's reference */
catalog *catalog_acquire(void);         /* new reference; never NULL after the first publish */
#endif
