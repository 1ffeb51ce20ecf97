/* log — one logging family for the whole gateway: levels as Kuadrant's --log-level
 * (-4 debug, 0 info, 4 warn, 8 error), text or JSON lines on stderr. Thread-safe. */
#ifndef GW_LOG_H
#define GW_LOG_H
#include <stddef.h>

enum { LOG_DEBUG = -4, LOG_INFO = 0, LOG_WARN = 4, LOG_ERROR = 8 };

void log_setup(int level, int json);
int  log_enabled(int level);

/* The request this thread is handling (a worker loop runs one callback at a time): while set,
 * every line carries "request_id" (and "trace_id" when the request is traced). Returns what was
 * set before, for the caller to put back: { log_req prev = log_request(id, tid); ...;
 * log_request(prev.id, prev.trace_id); }. NULL = none. */
typedef struct log_req { const char *id, *trace_id; } log_req;
log_req log_request(const char *id, const char *trace_id);
void log_msg(int level, const char *ctx, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A line with fields of its own: in JSON each pair is a field ("msg" holds msg), in text they
 * follow msg as key=value. A NULL value is null / "-". */
void log_fields(int level, const char *ctx, const char *msg, const char *const kv[][2], size_t n);

/* ctx: a short context (session id, server name, "config") or NULL. */
#define log_debug(ctx, ...) do { if (log_enabled(LOG_DEBUG)) log_msg(LOG_DEBUG, ctx, __VA_ARGS__); } while (0)
#define log_info(ctx, ...)  log_msg(LOG_INFO, ctx, __VA_ARGS__)
#define log_warn(ctx, ...)  log_msg(LOG_WARN, ctx, __VA_ARGS__)
#define log_error(ctx, ...) log_msg(LOG_ERROR, ctx, __VA_ARGS__)
#endif
