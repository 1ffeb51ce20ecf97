#include "log.h"
#include "buf.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_level = LOG_INFO;
static int log_json;
static _Thread_local log_req cur;   /* the request this thread is handling */

log_req log_request(const char *id, const char *trace_id)
{
    log_req prev = cur;
    cur.id = id && *id ? id : NULL;
    cur.trace_id = trace_id && *trace_id ? trace_id : NULL;
    return prev;
}

void log_setup(int level, int json)
{
    log_level = level;
    log_json = json;
}

int log_enabled(int level) { return level >= log_level; }

static const char *level_name(int level)
{
    if (level <= LOG_DEBUG) return "debug";
    if (level < LOG_WARN) return "info";
    if (level < LOG_ERROR) return "warn";
    return "error";
}

static void timestamp(char when[40])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t wl = strftime(when, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + wl, 40 - wl, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* One write(2) per line, so that lines of several threads never interleave. */
static void emit(buf *b, size_t cap)
{
    if (b->len == 0 || b->data[b->len - 1] != '\n') { /* truncated: still end the line */
        if (b->len >= cap - 1) b->len = cap - 2;
        b->data[b->len++] = '\n';
    }
    ssize_t w = write(STDERR_FILENO, b->data, b->len);
    (void)w;
}

static void json_head(buf *b, const char *when, int level, const char *ctx, const char *msg)
{
    buf_printf(b, "{\"time\":\"%s\",\"level\":\"%s\"", when, level_name(level));
    if (ctx) { buf_appends(b, ",\"ctx\":\""); buf_json_str(b, ctx, strlen(ctx)); buf_appends(b, "\""); }
    buf_appends(b, ",\"msg\":\"");
    buf_json_str(b, msg, strlen(msg));
    buf_appends(b, "\"");
    /* the ids are checked ([A-Za-z0-9._-], hex): no escaping needed */
    if (cur.id) { buf_appends(b, ",\"request_id\":\""); buf_appends(b, cur.id); buf_appends(b, "\""); }
    if (cur.trace_id) { buf_appends(b, ",\"trace_id\":\""); buf_appends(b, cur.trace_id); buf_appends(b, "\""); }
}

/* Text lines: the ids after the message, as key=value. */
static void txt_ids(buf *b)
{
    if (cur.id) buf_printf(b, " request_id=%s", cur.id);
    if (cur.trace_id) buf_printf(b, " trace_id=%s", cur.trace_id);
}

void log_fields(int level, const char *ctx, const char *msg, const char *const kv[][2], size_t n)
{
    if (!log_enabled(level)) return;
    char when[40], line[8192];
    timestamp(when);
    buf b = {line, 0, sizeof line, sizeof line - 1};
    if (log_json) {
        json_head(&b, when, level, ctx, msg);
        for (size_t i = 0; i < n; i++) {
            buf_printf(&b, ",\"%s\":", kv[i][0]);
            if (!kv[i][1]) { buf_appends(&b, "null"); continue; }
            buf_append(&b, "\"", 1);
            buf_json_str(&b, kv[i][1], strlen(kv[i][1]));
            buf_append(&b, "\"", 1);
        }
        if (buf_appends(&b, "}\n")) { /* too long: the head alone, still valid JSON */
            b.len = 0;
            json_head(&b, when, level, ctx, msg);
            buf_appends(&b, ",\"truncated\":true}\n");
        }
    } else {
        buf_printf(&b, "%s %-5s %s%s%s%s", when, level_name(level), ctx ? "[" : "", ctx ? ctx : "", ctx ? "] " : "", msg);
        for (size_t i = 0; i < n; i++) buf_printf(&b, " %s=%s", kv[i][0], kv[i][1] ? kv[i][1] : "-");
        txt_ids(&b);
        buf_appends(&b, "\n");
    }
    emit(&b, sizeof line);
}

void log_msg(int level, const char *ctx, const char *fmt, ...)
{
    if (!log_enabled(level)) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    char when[40];
    timestamp(when);
    char line[4096];
    buf b = {line, 0, sizeof line, sizeof line - 1};
    if (log_json) {
        json_head(&b, when, level, ctx, msg);
        buf_appends(&b, "}\n");
    } else {
        buf_printf(&b, "%s %-5s %s%s%s%s", when, level_name(level), ctx ? "[" : "", ctx ? ctx : "",
                   ctx ? "] " : "", msg);
        txt_ids(&b);
        buf_appends(&b, "\n");
    }
    emit(&b, sizeof line);
}
