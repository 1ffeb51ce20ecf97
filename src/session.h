/* session — what this process holds for a gateway session: the upstream session ids (one per
 * upstream, created lazily), revocation, idle time. The id itself is self-contained and signed
 * (session_id.h): any replica with the key accepts it, and a process that has no entry for a
 * valid id simply starts a fresh one (re-initializing upstreams: lossy for stateful upstreams).
 * Revocation (DELETE, reaping) reaches only this process: the entry stays as a tombstone until
 * the id's own expiry. Shared by all loops: 64 shards, each with its own mutex. */
#ifndef GW_SESSION_H
#define GW_SESSION_H
#include <stddef.h>
#include <stdint.h>
#include "buf.h"

typedef struct session_table session_table;

/* n_servers: the server slots there may ever be (config.h: servers_cap); an entry has room for
 * the ones it uses only. */
session_table *session_table_new(size_t max_sessions, size_t n_servers, uint64_t idle_s);
void session_table_free(session_table *t);

enum { SESS_OK = 0, SESS_REVOKED = -1, SESS_FULL = -2, SESS_SUBJECT_FULL = -3 };
#define SESSION_SUBJECT_LEN 16   /* session_claims.subject: truncated SHA-256 of issuer and subject */
/* Finds or creates the entry for a verified id; touches it. SESS_REVOKED after DELETE/reap. */
int  session_touch(session_table *t, const char *id, uint64_t expires, uint64_t now);
/* A new session (initialize) of subject (all zero = anonymous): like session_touch, and counted
 * for the subject until revoked or dropped; SESS_SUBJECT_FULL when the subject already has
 * max_per_subject live sessions here. Anonymous sessions are capped by max_sessions only. */
int  session_open(session_table *t, const char *id, uint64_t expires, uint64_t now,
                  const uint8_t subject[SESSION_SUBJECT_LEN]);
void session_table_set_subject_cap(session_table *t, size_t max_per_subject);   /* 0 = none */
size_t session_subject_count(session_table *t, const uint8_t subject[SESSION_SUBJECT_LEN]);
/* Copies the upstream session id for server into out (NUL-terminated). 0 when present. */
int  session_get_upstream(session_table *t, const char *id, size_t server, char *out, size_t cap);
void session_set_upstream(session_table *t, const char *id, size_t server, const char *up_sid);
/* Marks revoked; returns the upstream session ids (malloc'd array of malloc'd strings or NULL
 * entries, n_servers long) so that the caller can end them upstream; NULL when unknown. */
char **session_revoke(session_table *t, const char *id, uint64_t now);
/* Removes expired entries and revokes idle ones. Returns how many were dropped. */
size_t session_reap(session_table *t, uint64_t now);
/* The logging level the client asked for (logging/setLevel), applied to new upstream sessions. */
void session_set_level(session_table *t, const char *id, const char *level);
int  session_get_level(session_table *t, const char *id, char *out, size_t cap);   /* 0 when set */
size_t session_count(session_table *t);

/* Small per-session maps for what crosses requests: a client request in flight (key "c:ID")
 * → its server and upstream id, so that notifications/cancelled reaches the right upstream;
 * a server→client request relayed to the client (key "s:GATEWAY-ID") → its server and the
 * upstream's own id, so that the client's response goes back. At most SESSION_PENDING_MAX each
 * session: put fails beyond. */
#define SESSION_PENDING_MAX 256

/* Resumability: the SSE events this process wrote on the session's streams, so that a client
 * that lost a stream resumes with Last-Event-ID ("<stream>/<seq>"). Bounded per session
 * (SESSION_EVENTS_MAX events, SESSION_EVENT_BYTES bytes unless set otherwise with
 * session_table_set_event_caps: --max-session-events, --max-session-event-bytes): the oldest go
 * first; an event larger than the byte cap is not kept (nor is any with a cap of 0 events). */
#define SESSION_EVENTS_MAX   256
#define SESSION_EVENT_BYTES  (1u << 20)
void   session_table_set_event_caps(session_table *t, size_t max_events, size_t max_bytes);
/* Stores an event; worker and token get the session's current GET stream (-1/0 when none), the
 * place where events of a stream whose client left go next. */
void   session_event_add(session_table *t, const char *id, const char *stream, uint64_t seq, const char *data,
                         size_t len, int *worker, uint64_t *token);
/* Appends to out the SSE frames of stream's events after seq (none when stream is NULL) and, in
 * the same critical section, makes (worker, token) the session's GET stream: an event stored
 * later is delivered there, none is lost or sent twice. Returns how many were replayed. */
size_t session_event_replay(session_table *t, const char *id, const char *stream, uint64_t after, buf *out,
                            int worker, uint64_t token);
/* The session's current GET stream (one: the spec forbids sending a message on several). */
void   session_set_get(session_table *t, const char *id, int worker, uint64_t token);
void   session_clear_get(session_table *t, const char *id, uint64_t token);   /* only if still that one */
int    session_get_get(session_table *t, const char *id, int *worker, uint64_t *token);  /* 0 when one */
/* The shared store (redis.h). With shared set, the reaper forgets an idle entry (frees it, no tombstone):
 * the session may be in use on another replica, and the store decides when it is loaded again. */
void session_table_set_shared(session_table *t, int shared);
/* load: the entry was not loaded in this epoch (epoch 0: always); touch: its shared last use was not
 * written for `every` seconds (0: never due) — it then counts as written at now. Both 0 when revoked. */
void session_shared_state(session_table *t, const char *id, uint32_t epoch, uint64_t now, uint64_t every,
                          int *load, int *touch);
void session_shared_loaded(session_table *t, const char *id, uint32_t epoch);
int  session_exists(session_table *t, const char *id);                        /* an entry, tombstones too */
int  session_has_stream(session_table *t, const char *id, const char *stream); /* events of stream kept here */
int  session_pending_put(session_table *t, const char *id, const char *key, size_t server, const char *val);
/* Copies the value (and server) of key; removes the entry when take is set. 0 when found. */
int  session_pending_get(session_table *t, const char *id, const char *key, size_t *server, char *val, size_t cap,
                         int take);
#endif
