/* config_diff — what a reload changes, computed before anything is applied (pure functions over
 * two configs; src/reload.c applies the result).
 *
 * The running config is in use (config.h: servers is the slot table, order its own servers);
 * the next one is as loaded from the file. A server of the next config keeps the slot of the
 * running server of the same name when their connection settings are equal — the prefix and
 * maxConcurrency may differ: they change in place —; otherwise it takes a new slot, numbered from
 * the running config's n_servers on, in file order. A running server that no next server keeps
 * is removed (a replaced one too: its name lives on in a new slot). */
#ifndef GW_CONFIG_DIFF_H
#define GW_CONFIG_DIFF_H
#include "config.h"

typedef struct cfgdiff_server {
    size_t slot;               /* kept: the running slot; else the new slot it takes */
    int    kept;               /* same name and same connection settings as a running server */
    int    replaced;           /* not kept, but a running server has this name: changed lists why */
    int    prefix_changed;     /* kept, with another prefix */
    int    concurrency_changed;/* kept, with another maxConcurrency */
    size_t old_slot;           /* kept or replaced: the running server's slot */
    char   changed[160];       /* replaced: the settings that differ, "url, credential" (never values) */
} cfgdiff_server;

typedef struct cfgdiff {
    cfgdiff_server *servers;  size_t n_servers;   /* one per server of next, file order */
    size_t         *removed;  size_t n_removed;   /* running slots that no server of next keeps */
    size_t          n_new;                        /* new slots taken */
    int             vservers_changed;             /* virtualServers differ */
    int             authz_changed;                /* the authorization block differs */
    char            restart[200];  /* settings that differ and that a reload does not apply ("" = none) */
} cfgdiff;

/* Fills d (zeroed first); config_diff_free releases it. */
void config_diff(const gw_config *running, const gw_config *next, cfgdiff *d);
void config_diff_free(cfgdiff *d);

/* The connection settings of a (in a config whose gatewayCACertPEM is ca_a) and b (ca_b) that
 * differ, as comma-separated names into out ("" when none). Returns how many differ. A server
 * behind the bridge is compared by what was written (written_url), not by its bridge url. */
size_t config_server_diff(const gw_server_cfg *a, const char *ca_a, const gw_server_cfg *b, const char *ca_b,
                          char *out, size_t cap);

/* One line saying what the reload changes ("added s3; removed s4; replaced s2 (url); prefix of
 * s1: s1_ -> one_; virtual servers; authorization"), or "no change". */
void config_diff_describe(const gw_config *running, const gw_config *next, const cfgdiff *d, char *out, size_t cap);
#endif
