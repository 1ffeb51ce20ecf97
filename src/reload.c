/* reload — SIGHUP and file changes → a new config, checked in full, then swapped (reload.h).
 *
 * The steps of one reload, all on the control loop:
 *   1. read: config_load() with the process's own argv (flags and environment are the same; the
 *      file is read again) — any error: logged with file:line, the running config stays;
 *   2. compare (config_diff.h): which servers keep their slot, which take a new one, which go;
 *      refused when the slot table has no room for the new slots;
 *   3. build: the new servers are moved into their slots (beyond the published count: no loop can
 *      see them yet), stdio / legacy SSE ones get their bridge url, the authorization block is
 *      compiled and the virtual servers' metadata built — a failure undoes the moves;
 *   4. publish: prefixes and maxConcurrency change in place, removed slots are marked, gw->cfg is
 *      swapped, upmgr publishes a catalog without the removed servers (list_changed), the bridge
 *      stops taking sessions for removed servers, every worker is woken to take the config;
 *   5. once every worker has taken it (worker.cfg_gen): the replaced config is freed, and the new
 *      servers are contacted (upmgr) and started (bridge) — so no loop can meet a slot its config
 *      does not have. A reload asked meanwhile runs then.
 * The config the process started with is kept to the end: auth.c and prm.c point into its auth
 * blocks (which need a restart: a reload keeps them, copied into the new config). */
#include "reload.h"
#include "authz.h"
#include "config_diff.h"
#include "log.h"
#include "prm.h"
#include "upcred.h"
#include "upmgr.h"
#include <errno.h>
#include <libgen.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEBOUNCE_MS   200           /* file events: reload once they have been quiet this long */
#define GRACE_POLL_MS 10            /* how often the workers' progress is checked */
#define HASH_MAX      (16u << 20)   /* the config file's own cap (config.c) */

static struct {
    gateway       *gw;
    uv_loop_t     *loop;
    bridge       **bridges;
    int            argc;
    char         **argv;
    gw_config     *boot;        /* the start's config: kept to the end */
    gw_config     *retired;     /* replaced; freed once no worker uses it (NULL: none, or the boot one) */
    size_t         cap;         /* slot table capacity */
    int            started;
    int            stopping;
    int            applying;    /* published; waiting for the workers */
    int            again;       /* asked meanwhile: 1 file change, 2 SIGHUP */
    uv_signal_t    hup;
    uv_fs_event_t  watch;
    int            watching;
    uv_timer_t     debounce;
    uv_timer_t     grace;
    unsigned char  hash[32];    /* the file as last read (applied or refused) */
    int            have_hash;
    uint64_t       applied, failed, loaded_at;
    int            last_ok;
} R = {.last_ok = 1};

/* ---- the file's content, to tell a real change from directory noise ---------------------------- */

static int file_hash(const char *path, unsigned char out[32])
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    char chunk[16384];
    size_t n, total = 0;
    while (ok && (n = fread(chunk, 1, sizeof chunk, f)) > 0 && (total += n) <= HASH_MAX)
        ok = EVP_DigestUpdate(md, chunk, n);
    ok = ok && !ferror(f) && total <= HASH_MAX && EVP_DigestFinal_ex(md, out, NULL);
    EVP_MD_CTX_free(md);
    fclose(f);
    return ok ? 0 : -1;
}

/* ---- configs in use ------------------------------------------------------------------------------- */

/* Frees a config that is no longer in use, but not the slot table it shares. */
static void config_retire_free(gw_config *c)
{
    if (!c) return;
    authz_policy_free(c->policy);
    prm_set_free(c->prm);
    free(c->order);
    c->policy = NULL, c->prm = NULL, c->order = NULL;
    c->servers = NULL;
    c->n_servers = 0;
    config_free(c);
}

int reload_init(gateway *gw, int argc, char **argv, char *err, size_t errlen)
{
    gw_config *cfg = gw->cfg;
    R.gw = gw;
    R.argc = argc;
    R.argv = argv;
    R.boot = cfg;
    R.cap = RELOAD_SLOTS(cfg->n_servers);
    gw_server_cfg *slots = realloc(cfg->servers, R.cap * sizeof *slots);
    if (!slots) { snprintf(err, errlen, "out of memory"); return -1; }
    memset(slots + cfg->n_servers, 0, (R.cap - cfg->n_servers) * sizeof *slots);
    cfg->servers = slots;
    cfg->servers_cap = R.cap;
    cfg->generation = 1;
    R.loaded_at = (uint64_t)time(NULL);
    if (cfg->config_file && *cfg->config_file) R.have_hash = file_hash(cfg->config_file, R.hash) == 0;
    return 0;
}

/* ---- applying a new config ------------------------------------------------------------------------ */

static void failed(const char *why, const char *msg)
{
    R.failed++;
    R.last_ok = 0;
    log_error("reload", "%s: %s; the running configuration (generation %llu) stays", why, msg,
              (unsigned long long)R.gw->cfg->generation);
}

/* The workers that have not taken the config of generation gen yet. */
static int workers_behind(uint64_t gen)
{
    int n = 0;
    for (int i = 0; i < R.gw->n_workers; i++) {
        worker *w = &R.gw->workers[i];
        if (w->http && !w->stopping && __atomic_load_n(&w->cfg_gen, __ATOMIC_ACQUIRE) < gen) n++;
    }
    return n;
}

static void run(const char *why, int force);

static void on_grace(uv_timer_t *t)
{
    if (workers_behind(R.gw->cfg->generation)) return;
    uv_timer_stop(t);
    config_retire_free(R.retired);   /* no loop uses it any more */
    R.retired = NULL;
    R.applying = 0;
    bridge_reload(*R.bridges, 1);    /* the new servers: started, then contacted */
    upmgr_reload(R.gw->mgr, 1, 0);
    if (R.again) {
        int force = R.again == 2;
        R.again = 0;
        run(force ? "SIGHUP (while the previous reload was being applied)" : "file change", force);
    }
}

/* Undoes step 3 for the new slots [from, to) of the slot table. */
static void unmove(gw_server_cfg *slots, size_t from, size_t to)
{
    if (to <= from) return;
    for (size_t i = from; i < to; i++)
        if (slots[i].transport != GW_TRANSPORT_HTTP) bridge_forget(*R.bridges, i);
    gw_server_cfg *tmp = calloc(to - from, sizeof *tmp);
    if (!tmp) return;   /* a leak, not a crash */
    memcpy(tmp, slots + from, (to - from) * sizeof *tmp);
    memset(slots + from, 0, (to - from) * sizeof *slots);
    config_servers_free(tmp, to - from);
}

static void apply(const char *why, gw_config *next)
{
    gateway *gw = R.gw;
    gw_config *cur = gw->cfg;
    const char *path = cur->config_file;
    gw_server_cfg *slots = cur->servers;
    size_t base = cur->n_servers;
    char msg[1024], desc[2048];
    cfgdiff d;
    config_diff(cur, next, &d);
    if (base + d.n_new > R.cap) {
        snprintf(msg, sizeof msg, "%s: %zu new server slot(s) needed, %zu left of %zu (each server a reload adds or "
                 "changes takes one for the process's life): restart the gateway to apply it", path, d.n_new,
                 R.cap - base, R.cap);
        failed(why, msg);
        goto drop;
    }
    config_diff_describe(cur, next, &d, desc, sizeof desc);
    /* what needs a restart stays as it runs, here too, so that the next reload compares with it */
    config_auth_copy(&next->auth, &cur->auth);
    free(next->authz.trusted_key);
    next->authz.trusted_key = cur->authz.trusted_key ? strdup(cur->authz.trusted_key) : NULL;

    /* 3. build */
    size_t n = next->n_servers;
    size_t *order = calloc(n ? n : 1, sizeof *order);
    if (!order) { failed(why, "out of memory"); goto drop; }
    for (size_t i = 0; i < n; i++) {
        order[i] = d.servers[i].slot;
        if (d.servers[i].kept) continue;
        slots[d.servers[i].slot] = next->servers[i];   /* moved: the entry is the slot's now */
        memset(&next->servers[i], 0, sizeof next->servers[i]);
    }
    char err[512];
    for (size_t i = 0; i < n; i++) {
        gw_server_cfg *sc = &slots[order[i]];
        if (d.servers[i].kept || sc->transport == GW_TRANSPORT_HTTP) continue;
        if (bridge_add(R.bridges, gw, R.loop, sc, order[i], next->gateway_ca_pem, err, sizeof err) != 0) {
            failed(why, err);
            free(order);
            unmove(slots, base, base + d.n_new);
            goto drop;
        }
    }
    gw_server_cfg *parsed = next->servers;   /* the kept servers' entries as read: prefixes below */
    size_t n_parsed = next->n_servers;
    next->servers = slots;
    next->n_servers = base + d.n_new;
    next->servers_cap = R.cap;
    next->order = order;
    next->n_order = n;
    next->generation = cur->generation + 1;
    if (authz_attach(next, err, sizeof err) != 0 || !(next->prm = prm_set_new(next))) {
        failed(why, next->policy || !next->authz.on ? "out of memory" : err);
        authz_policy_free(next->policy);
        next->policy = NULL;
        free(next->order);
        next->order = NULL;
        next->servers = parsed;
        next->n_servers = n_parsed;
        unmove(slots, base, base + d.n_new);
        goto drop;
    }

    /* 4. publish */
    for (size_t i = 0; i < n; i++) {
        const cfgdiff_server *e = &d.servers[i];
        if (!e->kept) continue;
        if (e->prefix_changed) {   /* read on this loop only (upmgr) */
            char *p = slots[e->slot].prefix;
            slots[e->slot].prefix = parsed[i].prefix;
            parsed[i].prefix = p;
        }
        if (e->concurrency_changed) __atomic_store_n(&slots[e->slot].max_concurrency, parsed[i].max_concurrency, __ATOMIC_RELAXED);
    }
    config_servers_free(parsed, n_parsed);   /* the kept servers' duplicates, the old prefixes */
    for (size_t k = 0; k < d.n_removed; k++) __atomic_store_n(&slots[d.removed[k]].removed, 1, __ATOMIC_RELAXED);
    upcred_init(next);   /* the new slots' credentials, before any loop can see them */
    gw->cfg = next;   /* (an atomic store: gateway.h) */
    R.retired = cur == R.boot ? NULL : cur;
    R.applied++;
    R.last_ok = 1;
    R.loaded_at = (uint64_t)time(NULL);
    log_info("reload", "%s: %s applied (generation %llu): %s", why, path, (unsigned long long)next->generation, desc);
    if (d.restart[0])
        log_warn("reload", "%s: %s changed: needs a restart (not applied; the running values stay)", path, d.restart);
    upmgr_reload(gw->mgr, 0, d.vservers_changed || d.authz_changed);
    bridge_reload(*R.bridges, 0);
    for (int i = 0; i < gw->n_workers; i++)
        if (gw->workers[i].http) uv_async_send(&gw->workers[i].wake);
    R.applying = 1;
    uv_timer_start(&R.grace, on_grace, GRACE_POLL_MS, GRACE_POLL_MS);
    config_diff_free(&d);
    return;
drop:
    config_diff_free(&d);
    config_free(next);
}

static void run(const char *why, int force)
{
    gateway *gw = R.gw;
    if (R.stopping || __atomic_load_n(&gw->draining, __ATOMIC_RELAXED)) return;
    if (R.applying) {   /* after the one in progress */
        if (R.again < (force ? 2 : 1)) R.again = force ? 2 : 1;
        return;
    }
    const char *path = gw->cfg->config_file;
    if (!path || !*path) {
        log_warn("reload", "%s: there is no --mcp-gateway-config file: nothing to reload", why);
        return;
    }
    unsigned char h[32];
    int have = file_hash(path, h) == 0;
    if (!force && (!have || (R.have_hash && !memcmp(h, R.hash, sizeof h)))) return;   /* unchanged, or gone for now */
    if (have) memcpy(R.hash, h, sizeof h);
    R.have_hash = have;
    gw_config *next = NULL;
    char err[1024];
    int rc = config_load(R.argc, R.argv, &next, err, sizeof err);
    if (rc != 0) {
        failed(why, rc > 0 ? "unexpected --help or --version" : err);
        return;
    }
    apply(why, next);
}

/* ---- triggers ------------------------------------------------------------------------------------- */

static void on_hup(uv_signal_t *s, int signum)
{
    (void)s;
    (void)signum;
    run("SIGHUP", 1);
}

static void on_debounce(uv_timer_t *t)
{
    (void)t;
    run("file change", 0);
}

static void on_fs(uv_fs_event_t *h, const char *name, int events, int status)
{
    (void)h, (void)name, (void)events;
    if (status < 0) {
        log_warn("reload", "watching the config file's directory: %s", uv_strerror(status));
        return;
    }
    uv_timer_start(&R.debounce, on_debounce, DEBOUNCE_MS, 0);   /* (again) */
}

void reload_start(gateway *gw, uv_loop_t *loop, bridge **bridges)
{
    R.loop = loop;
    R.bridges = bridges;
    uv_signal_init(loop, &R.hup);
    uv_signal_start(&R.hup, on_hup, SIGHUP);
    uv_timer_init(loop, &R.debounce);
    uv_timer_init(loop, &R.grace);
    R.started = 1;
    const char *path = gw->cfg->config_file;
    if (!path || !*path) return;
    /* the directory, not the file: a rename onto the file (editors) or of the directory's
     * `..data` symlink (Kubernetes ConfigMap and Secret volumes) replaces what the name means */
    char *copy = strdup(path);
    const char *dir = copy ? dirname(copy) : NULL;
    int rc = dir ? uv_fs_event_init(loop, &R.watch) : UV_ENOMEM;
    if (rc == 0) {
        R.watching = 1;
        rc = uv_fs_event_start(&R.watch, on_fs, dir, 0);
    }
    if (rc != 0)
        log_warn("reload", "cannot watch %s for changes (%s): reload with SIGHUP", dir ? dir : path, uv_strerror(rc));
    else
        log_info("reload", "watching %s for changes to %s; SIGHUP reloads too", dir, path);
    free(copy);
}

void reload_stop(void)
{
    if (!R.started || R.stopping) return;
    R.stopping = 1;
    uv_signal_stop(&R.hup);
    uv_close((uv_handle_t *)&R.hup, NULL);
    uv_timer_stop(&R.debounce);
    uv_close((uv_handle_t *)&R.debounce, NULL);
    uv_timer_stop(&R.grace);
    uv_close((uv_handle_t *)&R.grace, NULL);
    if (R.watching) uv_close((uv_handle_t *)&R.watch, NULL);   /* closing stops it */
}

void reload_free(gateway *gw)
{
    gw_config *cur = gw->cfg;
    if (R.boot) {
        gw_server_cfg *slots = cur->servers;
        size_t n = cur->n_servers;
        if (R.retired != R.boot) config_retire_free(R.retired);
        if (cur != R.boot) config_retire_free(cur);
        config_retire_free(R.boot);
        config_servers_free(slots, n);
    } else {
        config_free(cur);   /* reload_init never ran */
    }
    gw->cfg = NULL;
    memset(&R, 0, sizeof R);
    R.last_ok = 1;
}

void reload_get_stats(reload_stats *st)
{
    *st = (reload_stats){.applied = R.applied, .failed = R.failed, .last_ok = R.last_ok, .loaded_at = R.loaded_at};
}
