/* up_link — a message link to one upstream MCP server that does not speak Streamable HTTP: a
 * child process on stdio (up_stdio.c) or a legacy HTTP+SSE connection (up_legacy_sse.c). The
 * bridge (bridge.c) drives it; the link keeps itself connected: it starts at once, and after a
 * loss it reconnects (restarts) by itself with back-off, 1 s doubling to 30 s.
 *
 * Events, all on the loop that created the link:
 *   on_up       connected: messages may be sent (the bridge then initializes the server)
 *   on_message  one JSON-RPC message from the server (borrowed: valid during the call)
 *   on_down     lost (why: a constant or short text); what was sent is void; on_up follows
 *               when the link is back. Never called during send(). */
#ifndef GW_UP_LINK_H
#define GW_UP_LINK_H
#include <jansson.h>
#include <stddef.h>

typedef struct up_link up_link;

typedef struct up_link_cb {
    void (*on_up)(void *ud);
    void (*on_message)(void *ud, json_t *msg);
    void (*on_down)(void *ud, const char *why);
} up_link_cb;

typedef struct up_link_ops {
    /* One message (compact JSON, no newline), copied. 0, or -1 when the link is down or its
     * output queue is over its cap (the message is dropped). */
    int  (*send)(up_link *l, const char *json, size_t len);
    /* Drops the connection (kills the child) and reconnects with back-off: for a server that
     * does not answer initialize. */
    void (*restart)(up_link *l, const char *why);
    /* Stops for good: no event after this call; done(arg) once every handle has closed and the
     * link is freed (a child gets SIGTERM, then SIGKILL after a grace period). */
    void (*stop)(up_link *l, void (*done)(void *arg), void *arg);
} up_link_ops;

struct up_link {
    const up_link_ops *ops;
    up_link_cb         cb;
    void              *ud;
};

static inline int  up_link_send(up_link *l, const char *json, size_t len) { return l->ops->send(l, json, len); }
static inline void up_link_restart(up_link *l, const char *why) { l->ops->restart(l, why); }
static inline void up_link_stop(up_link *l, void (*done)(void *arg), void *arg) { l->ops->stop(l, done, arg); }

/* Back-off between reconnects: 1 s, doubling to 30 s; back to 1 s after 30 s of good service. */
#define UP_LINK_BACKOFF_MIN_MS 1000u
#define UP_LINK_BACKOFF_MAX_MS 30000u
#endif
