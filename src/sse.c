#include "sse.h"
#include <string.h>

void sse_parser_init(sse_parser *p, size_t max_event, sse_event_fn fn, void *ud)
{
    memset(p, 0, sizeof *p);
    buf_init(&p->line, max_event);
    buf_init(&p->data, max_event);
    p->fn = fn;
    p->ud = ud;
}

void sse_parser_free(sse_parser *p)
{
    buf_free(&p->line);
    buf_free(&p->data);
}

static void copy_field(char *dst, size_t cap, const char *v, size_t n)
{
    if (n >= cap) n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static int sse_line(sse_parser *p, const char *l, size_t n)
{
    if (n == 0) { /* dispatch */
        if (p->has_data && p->fn)
            p->fn(p->ud, p->event[0] ? p->event : "message", p->data.data ? p->data.data : "", p->data.len,
                  p->id[0] ? p->id : NULL);
        buf_reset(&p->data);
        p->has_data = 0;
        p->event[0] = '\0';
        return 0;
    }
    if (l[0] == ':') return 0; /* comment */
    const char *colon = memchr(l, ':', n);
    size_t fl = colon ? (size_t)(colon - l) : n;
    const char *v = colon ? colon + 1 : l + n;
    size_t vl = colon ? n - fl - 1 : 0;
    if (vl && *v == ' ') { v++; vl--; }
    if (fl == 4 && memcmp(l, "data", 4) == 0) {
        if (p->has_data && buf_append(&p->data, "\n", 1)) return -1;
        if (buf_append(&p->data, v, vl)) return -1;
        p->has_data = 1;
    } else if (fl == 5 && memcmp(l, "event", 5) == 0) {
        copy_field(p->event, sizeof p->event, v, vl);
    } else if (fl == 2 && memcmp(l, "id", 2) == 0) {
        if (!memchr(v, '\0', vl)) copy_field(p->id, sizeof p->id, v, vl);
    }
    return 0; /* retry and unknown fields are ignored */
}

int sse_parser_feed(sse_parser *p, const char *s, size_t n)
{
    size_t i = 0;
    if (!n) return 0;   /* an empty chunk between CR and LF must not forget the CR */
    if (p->last_cr && s[0] == '\n') i = 1;
    p->last_cr = 0;
    size_t start = i;
    for (; i < n; i++) {
        char c = s[i];
        if (c != '\n' && c != '\r') continue;
        const char *l = s + start;
        size_t ll = i - start;
        if (p->line.len) {
            if (buf_append(&p->line, l, ll)) return -1;
            l = p->line.data;
            ll = p->line.len;
        }
        if (sse_line(p, l, ll)) return -1;
        buf_reset(&p->line);
        if (c == '\r') {
            if (i + 1 < n) { if (s[i + 1] == '\n') i++; }
            else p->last_cr = 1;
        }
        start = i + 1;
    }
    if (start < n && buf_append(&p->line, s + start, n - start)) return -1;
    return 0;
}

int sse_format(buf *out, const char *id, const char *event, const char *data, size_t len)
{
    int rc = 0;
    if (id) rc |= buf_printf(out, "id: %s\n", id);
    if (event) rc |= buf_printf(out, "event: %s\n", event);
    rc |= buf_append(out, "data: ", 6);
    rc |= buf_append(out, data, len);
    rc |= buf_append(out, "\n\n", 2);
    return rc ? -1 : 0;
}
