/* gateway — the process-wide state and the per-loop worker, shared by the modules on a
 * request's path. One gateway per process; N workers, each a thread with its own libuv loop,
 * listener (SO_REUSEPORT), HTTP connections and upstream client; one control loop (the main
 * thread) runs the upstream manager, the session reaper and signals. */
#ifndef GW_GATEWAY_H
#define GW_GATEWAY_H
#include <pthread.h>
#include <stdint.h>
#include <uv.h>
#include "config.h"
#include "http.h"
#include "jsonrpc.h"
#include "session.h"
#include "session_id.h"
#include "upstream.h"

typedef struct gateway gateway;
typedef struct worker worker;
typedef struct mcp_stream mcp_stream;

struct worker {
    gateway     *gw;
    int          idx;
    const gw_config *cfg;       /* the config this loop uses: gw->cfg as of its latest wake (a
                                 * reload's new config is taken between two callbacks, so that
                                 * indexes into it — virtual servers — stay consistent) */
    uint64_t     cfg_gen;       /* cfg->generation (atomic: read by reload.c) */
    uv_loop_t    loop;
    uv_async_t   wake;          /* list_changed fan-out, stop */
    uv_timer_t   keepalive;     /* SSE comments on idle GET streams */
    pthread_t    thread;
    http_server *http;
    upclient    *up;
    struct auth_cache *auth;    /* verified tokens of this loop */
    struct rconn *redis;        /* this loop's Redis connection (redis.h); NULL without CACHE_CONNECTION_STRING */
    uint64_t    *calls;         /* tools/call routed, per server slot (relaxed atomics, read by /metrics) */
    mcp_stream  *streams;       /* open GET streams of this loop */
    size_t       n_streams;
    uint64_t     next_up_id;    /* ids of requests this loop sends upstream */
    uint64_t     next_stream;   /* stream ids and tokens of this loop */
    pthread_mutex_t inbox_lock; /* streams.c: frames for this loop's streams from other loops */
    struct inbox_msg *inbox;
    uint64_t     seen_lists[4];     /* list versions already announced (per catalog kind) */
    int          stopping;
    int          listen_fd;
};

struct gateway {
    gw_config *_Atomic cfg;     /* the current config; a reload replaces it (src/reload.c) */
    session_keyring *keys;
    session_table   *sessions;
    jr_limits        jlim;
    worker          *workers;
    int              n_workers;
    uv_loop_t       *ctl_loop;
    struct upmgr    *mgr;
    char           **origins;   /* allowed Origin patterns ("http://localhost:*") */
    size_t           n_origins;
    int              loopback;  /* bound to a loopback address: Host is checked */
    uint64_t         list_version[4]; /* bumped when a federated list changes (atomic; catalog kinds) */
    size_t           n_sse;           /* open GET streams, all loops (atomic) */
    int              draining;        /* SIGTERM seen: /readyz answers 503 (atomic) */
    uint64_t         started;
};

/* An id for a request this loop sends upstream (or to the client on an upstream's behalf):
 * unique across the process's loops, since one upstream session may serve calls from several. */
static inline uint64_t worker_next_id(worker *w) { return ((uint64_t)(w->idx + 1) << 40) | ++w->next_up_id; }

/* Asks every worker to announce notifications/<kind>/list_changed to its GET streams
 * (kind: a catalog kind; resource templates are announced as resources). */
void gateway_list_changed(gateway *gw, int kind);
#endif
