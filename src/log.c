#include "log.h"
#include "buf.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_level = LOG_INFO;
static int log_json;

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

void log_msg(int level, const char *ctx, const char *fmt, ...)
{
    if (!log_enabled(level)) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    size_t wl = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + wl, sizeof when - wl, ".%03ldZ", ts.tv_nsec / 1000000);

    char line[4096];
    buf b = {line, 0, sizeof line, sizeof line - 1};
    if (log_json) {
        buf_printf(&b, "{\"time\":\"%s\",\"level\":\"%s\"", when, level_name(level));
        if (ctx) { buf_appends(&b, ",\"ctx\":\""); buf_json_str(&b, ctx, strlen(ctx)); buf_appends(&b, "\""); }
        buf_appends(&b, ",\"msg\":\"");
        buf_json_str(&b, msg, strlen(msg));
        buf_appends(&b, "\"}\n");
    } else {
        buf_printf(&b, "%s %-5s %s%s%s%s\n", when, level_name(level), ctx ? "[" : "", ctx ? ctx : "",
                   ctx ? "] " : "", msg);
    }
    if (b.len == 0 || b.data[b.len - 1] != '\n') { /* truncated: still end the line */
        if (b.len >= sizeof line - 1) b.len = sizeof line - 2;
        line[b.len++] = '\n';
    }
    ssize_t w = write(STDERR_FILENO, line, b.len);
    (void)w;
}
