/* redis — what replicas share when CACHE_CONNECTION_STRING is set: hiredis (0.14, async) on the loops.
 *
 * Without it each process keeps its sessions alone (session.h). With it, what another replica needs to
 * carry a session on is written to Redis as it changes — fire-and-forget commands, the local table stays
 * the fast path — and read when a process meets a session it has not loaded:
 *
 *   mcpgw:s:{K}        hash. "u:<server name>" → "<version> <upstream session id>" (Streamable HTTP
 *                      servers only: a stdio or legacy SSE server's bridge session exists in one process);
 *                      "lvl" → the client's logging/setLevel; "t" → last use (unix seconds, written at
 *                      most every --session-idle-timeout/8 per process); "rev" → revoked (DELETE).
 *   mcpgw:e:{K}        list of the session's SSE events "<stream>/<seq> <data>", oldest first, capped by
 *                      --max-session-events and, with mcpgw:eb:{K} (its byte count), by
 *                      --max-session-event-bytes (one Lua script per event).
 *   mcpgw:p:{K}:<id>   a server→client request relayed to the client with the gateway's <id> (JSON):
 *                      "<server name>\n<version> <upstream session>\n<the upstream's id>", so that the
 *                      answer, POSTed to any replica, reaches the upstream session that asked.
 *   mcpgw:<db>:ctl     channel: "R\n<sid>" revoked, "U\n<sid>\n<server>\n<stored>" an upstream session
 *                      created, "L\n<sid>\n<level>" a level set, "P\n<sid>\n<id>" a server→client request
 *                      answered through another replica; each process applies them to the entries it has
 *                      (and opens the upstream's GET stream when it holds the client's).
 *
 *   mcpgw:t:{H}        an upstream token the gateway obtained (RFC 8693 token exchange per caller, or its
 *                      own client-credentials token), sealed: "v1." base64url(nonce ‖ AES-256-GCM(
 *                      "<until ms> <Authorization value>") ‖ tag), the key name as AAD, the key
 *                      HKDF-SHA256(GATEWAY_SIGNING_KEY, info "mcp-gateway upstream-token cache v1"); H
 *                      hashes the caller's cache key and the server's IdP settings (no token, no subject).
 *                      PX: until the token stops being used. Not shared without GATEWAY_SIGNING_KEY.
 *
 * K is the hex of the first 16 bytes of SHA-256(session id): the id, a bearer credential, is in no key.
 * Every key expires with the session id (EXPIREAT its expiry); mcpgw:p:* after the upstream timeout + 60 s.
 *
 * Connections: one per worker loop for commands and one on the control loop subscribed to the channel.
 * Each resolves the host (uv_getaddrinfo), connects, AUTHs (user and password, or password), SELECTs the
 * db; a failure or a lost connection is retried with back-off (100 ms doubling to 5 s). A command that sees
 * no progress for 3 s resets its connection; at most 100000 commands wait per connection (more are
 * dropped). While a connection is down its loop serves from local state (lossy): /readyz reports
 * "redis":"unreachable" (still 200) and the log says so once per outage, and again when it is back.
 * Each (re)subscription starts a new epoch: entries loaded before it are loaded again on their next
 * request, since revocations published meanwhile were missed. */
#ifndef GW_REDIS_H
#define GW_REDIS_H
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "gateway.h"

typedef struct redis_url {
    char host[256];      /* a name, an IPv4 address or an IPv6 address (without brackets) */
    int  port;           /* default 6379 */
    char user[256];      /* "" = AUTH with the password alone */
    char pass[512];
    int  has_pass;
    int  db;             /* SELECT, default 0 */
    int  query_ignored;  /* the URL had ?... parameters, which are ignored */
} redis_url;

/* redis://[[user]:password@]host[:port][/db][?ignored]. user and password are percent-decoded.
 * rediss:// (TLS) is refused with a message saying how to reach a TLS Redis. 0 or -1 with err. */
int redis_url_parse(const char *url, redis_url *u, char *err, size_t errlen);
/* The store key of a session: hex of SHA-256(id)[0..16] (33 bytes with the NUL); also the id's expiry
 * (read from its payload, which the caller has verified; 0 when the id is malformed). */
void redis_session_key(const char *sid, char key[33], uint64_t *expires);

/* Process lifetime. redis_init: with cfg->cache_url set, parses it (-1 and err when malformed); a
 * process without it has every other function below do nothing. redis_start (control loop, after the
 * workers): the subscriber; redis_stop: closes it. */
int  redis_init(gateway *gw, char *err, size_t errlen);
void redis_start(gateway *gw, uv_loop_t *ctl);
void redis_stop(void);
int  redis_enabled(void);
/* For /readyz: NULL when not configured, else "connected" (every connection of this process is up) or
 * "unreachable". */
const char *redis_state(void);

/* A worker's connection: opened before its thread starts, closed when its loop stops. */
void redis_worker_open(worker *w);
void redis_worker_close(worker *w);

/* ---- sessions (mcp.c) ---- */
/* After session_touch: loads the session's shared state when this process has not (or force: GET, DELETE,
 * logging/setLevel, which need the whole picture) and refreshes its shared last use. Returns 1 when the
 * request waits for Redis (at most 200 ms): it is then routed again from the start (server.c) and this call
 * returns 0 for it. */
int  redis_session_check(worker *w, http_req *req, const char *sid, int force);
/* The request was routed again after a load (relay.c: no need to load again for a missing upstream). */
int  redis_req_loaded(const http_req *req);
void redis_session_opened(worker *w, const char *sid);                  /* initialize: nothing to load */
void redis_revoke(worker *w, const char *sid);                          /* DELETE: tombstone + publish */
void redis_note_level(worker *w, const char *sid, const char *level);
/* A client's response to a server→client request this process did not relay: looked up in Redis and sent
 * to the upstream session that asked. 0 when a lookup started (msg is kept), -1 otherwise. */
int  redis_client_response(worker *w, const char *sid, json_t *msg);

/* ---- relay.c, streams.c ---- */
typedef struct redis_op redis_op;
/* Loads the session's shared state into the table (for an upstream session another replica may have
 * created), then cb(ud) — also on timeout or failure. NULL (and no cb) when there is nothing to wait for. */
redis_op *redis_session_refresh(worker *w, const char *sid, void (*cb)(void *ud), void *ud);
void redis_cancel(redis_op *op);                                        /* cb is not called; NULL ok */
void redis_note_upstream(worker *w, const char *sid, size_t server, const char *stored);
void redis_note_pending(worker *w, const char *sid, uint64_t gid, size_t server, const char *version,
                        const char *up_session, const char *orig_id);
void redis_note_event(worker *w, const char *sid, const char *stream, uint64_t seq, const char *data, size_t len);
/* GET with Last-Event-ID naming a stream this process has no events of: the events after `after` are read
 * from Redis, then streams_open_replayed() goes on (with nothing after a timeout). 1 when it waits. */
int  redis_resume_stream(worker *w, http_req *req, const char *sid, const session_claims *cl, const char *stream,
                         uint64_t after);

/* ---- upcred.c: the shared token cache (mcpgw:t:{H}) ---- */
#define REDIS_TOKEN_NAME_MAX 48
/* Sharing tokens is on: Redis configured and GATEWAY_SIGNING_KEY set. */
int  redis_tokens_enabled(void);
/* "mcpgw:t:{H}": H the hex of SHA-256("mcp-gateway token name" ‖ id)[0..16]. */
void redis_token_name(const void *id, size_t n, char name[REDIS_TOKEN_NAME_MAX]);
/* HKDF-SHA256(signing key, info "mcp-gateway upstream-token cache v1") → key. 0 or -1. */
int  redis_token_key(const char *signing_key, size_t n, uint8_t key[32]);
/* AES-256-GCM with a random 12-byte nonce, name as AAD: "v1." base64url(nonce ‖ ciphertext ‖ tag), malloc'd
 * (NUL-terminated, *outlen its length). NULL on failure. */
char *redis_seal(const uint8_t key[32], const char *name, const void *plain, size_t n, size_t *outlen);
/* The inverse: the plaintext (malloc'd, NUL-terminated, *outlen its length) or NULL when the value is malformed,
 * was sealed under another key or for another name, or was altered. */
char *redis_unseal(const uint8_t key[32], const char *name, const char *sealed, size_t n, size_t *outlen);
/* On loop (a worker's; others have no connection): GET name, at most timeout_ms, then cb(ud, plaintext or NULL)
 * on that loop (the callee frees the plaintext). NULL (and no cb) when nothing was sent (Redis down, off, or
 * another loop). */
redis_op *redis_token_get(uv_loop_t *loop, const char *name, uint64_t timeout_ms, void (*cb)(void *ud, char *plain),
                          void *ud);
/* Fire-and-forget: SET name sealed(plain) PX ttl_ms; DEL name. Nothing when Redis is down. */
void redis_token_set(uv_loop_t *loop, const char *name, const char *plain, uint64_t ttl_ms);
void redis_token_del(uv_loop_t *loop, const char *name);
#endif
