/* streams — the clients' GET streams (server→client messages outside calls) and the delivery of
 * events between loops.
 *
 * A GET stream registers as its session's current stream (session_set_get). For each upstream
 * the session has a session with, it opens the upstream's own GET stream and relays what comes
 * (notifications such as resources/updated; requests such as sampling, with ids remapped like
 * those made during a call). Every event the gateway writes on a stream carries an id
 * "<stream>/<seq>" and is kept in the session's bounded event store: a client that lost a
 * stream (a POST's SSE response too) opens GET with Last-Event-ID and gets the rest, and what a
 * detached call still produces follows on that GET stream — on whichever loop it is, through
 * that loop's inbox (a mutex-protected queue and a uv_async). */
#ifndef GW_STREAMS_H
#define GW_STREAMS_H
#include "gateway.h"

/* GET /mcp, after the transport and session checks: takes over req. */
void streams_open(worker *w, http_req *req, const char *sid, const session_claims *cl);
/* The same, with the SSE frames (may be NULL) of another replica's stream, read from Redis (redis.h), replayed
 * instead of this process's own. */
void streams_open_replayed(worker *w, http_req *req, const char *sid, const session_claims *cl, const char *frames,
                           size_t frames_len);

/* From any thread: a complete SSE frame for the stream with this token on worker wi. */
void streams_deliver(gateway *gw, int wi, uint64_t token, const char *frame, size_t len);
/* From any thread: the session of that stream now has an upstream session with server. */
void streams_open_upstream(gateway *gw, int wi, uint64_t token, size_t server);
/* From any thread: every loop ends its GET streams of sid (revoked on another replica). */
void streams_close_session_all(gateway *gw, const char *sid);
/* The inbox, on the worker's loop (called from its uv_async). */
void streams_on_wake(worker *w);

void streams_broadcast(worker *w, const char *json, size_t len);   /* one message to every GET stream of the loop */
void streams_keepalive(worker *w);
void streams_close_session(worker *w, const char *sid);
void streams_close_all(worker *w);
/* The loop took a reloaded config (w->cfg): relays of removed servers' GET streams end. */
void streams_reload(worker *w);
void streams_init(worker *w);
void streams_free(worker *w);   /* the inbox, after the loop has stopped */

/* A new stream id for this loop ("<prefix><worker>.<n>"). */
void streams_new_id(worker *w, char prefix, char out[24]);
#endif
