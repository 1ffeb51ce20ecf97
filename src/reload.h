/* reload — the configuration reloaded while the gateway runs, on SIGHUP and when the config file
 * changes (inotify on its directory: an editor's rename and Kubernetes' swap of the `..data`
 * symlink are seen like a write). Everything runs on the control loop.
 *
 * A reload reads the flags, the environment and the file again (config_load) and validates them
 * fully; a bad file keeps the running config and is logged with file:line. Otherwise the new
 * config is published (gateway.cfg) and each worker takes it between two callbacks (worker.cfg);
 * the config it replaces is freed once every worker has taken the new one. What changes
 * (config_diff.h): servers added, replaced (other connection settings) and removed — only those
 * are (dis)connected —, prefixes and maxConcurrency in place, virtual servers, authorization.
 * Sessions and streams stay open. The auth blocks and the trusted-header key need a restart:
 * logged, not applied. See docs/architecture.md, "Configuration reloads". */
#ifndef GW_RELOAD_H
#define GW_RELOAD_H
#include <stdint.h>
#include "bridge.h"
#include "gateway.h"

/* Server slots at start for n configured servers: each server a reload adds or replaces takes
 * one for the process's life; beyond, reloads that need more are refused. */
#define RELOAD_SLOTS(n) (4 * (n) + 64)

/* At start, before anything keeps a pointer into gw->cfg: makes its servers the slot table.
 * argc/argv: what config_load read, read again by each reload. */
int  reload_init(gateway *gw, int argc, char **argv, char *err, size_t errlen);
/* Once everything runs: SIGHUP and the file's directory are watched. bridges: main's bridge
 * (created here when a reload adds the first stdio or legacy SSE server). */
void reload_start(gateway *gw, uv_loop_t *loop, bridge **bridges);
void reload_stop(void);          /* SIGTERM: no more reloads; handles close */
void reload_free(gateway *gw);   /* after the loops have stopped: every config and the slot table */

typedef struct reload_stats {
    uint64_t applied, failed;
    int      last_ok;            /* the last reload was applied (1 when there was none) */
    uint64_t loaded_at;          /* when the running config was loaded (unix seconds) */
} reload_stats;
void reload_get_stats(reload_stats *st);
#endif
