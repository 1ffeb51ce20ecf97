/* fuzz_sse — the SSE parser (sse_parser_feed) on arbitrary streams cut at fuzzer-chosen points,
 * and sse_format.
 *
 * Input: [max_event selector][k][k chunk lengths][stream]. The stream is parsed three ways with
 * the same max_event: whole in one call, in the k chunks given (lengths 0..255, empty chunks
 * included) followed by the rest, and (when short) one byte per call. Checks:
 *   - the events reported (name, data, id) do not depend on the chunking: when every way
 *     succeeds they are identical; when one fails (an event or line over max_event), what it
 *     reported before is a prefix of what the others did;
 *   - each event's name and id fit their fields, data is at most max_event bytes, NUL-terminated,
 *     and holds no CR;
 *   - an event written with sse_format (data without LF) parses back to the same event. */
#include "sse.h"
#include "buf.h"
#include "fuzz_util.h"
#include <string.h>

typedef struct rec {
    buf    log;        /* every event, serialized */
    size_t max_event;
    size_t n;
} rec;

static void on_event(void *ud, const char *event, const char *data, size_t len, const char *id)
{
    rec *r = ud;
    FZ_CHECK(event && *event && strlen(event) < 64, "event name");
    FZ_CHECK(!id || (*id && strlen(id) < 256), "id");
    FZ_CHECK(data && data[len] == '\0', "data not NUL-terminated");
    FZ_CHECK(len <= r->max_event, "data of %zu bytes over max_event %zu", len, r->max_event);
    FZ_CHECK(!memchr(data, '\r', len), "CR in data");
    buf_printf(&r->log, "E%zu:%s|D%zu:", strlen(event), event, len);
    buf_append(&r->log, data, len);
    buf_printf(&r->log, "|I%s\n", id ? id : "(none)");
    r->n++;
}

static int parse(const uint8_t *s, size_t n, const uint8_t *cuts, size_t ncuts, size_t max_event, int bytewise,
                 rec *r)
{
    sse_parser p;
    buf_init(&r->log, 64u << 20);
    r->max_event = max_event;
    r->n = 0;
    sse_parser_init(&p, max_event, on_event, r);
    int rc = 0;
    size_t off = 0;
    if (bytewise) {
        for (; off < n && rc == 0; off++) rc = sse_parser_feed(&p, (const char *)s + off, 1);
    } else {
        for (size_t i = 0; i < ncuts && rc == 0; i++) {
            size_t l = cuts[i] <= n - off ? cuts[i] : n - off;
            rc = sse_parser_feed(&p, (const char *)s + off, l);
            off += l;
        }
        if (rc == 0) rc = sse_parser_feed(&p, (const char *)s + off, n - off);
    }
    FZ_CHECK(rc == 0 || rc == -1, "feed returned %d", rc);
    sse_parser_free(&p);
    return rc;
}

static int is_prefix(const buf *a, const buf *b) /* a is a prefix of b */
{
    return a->len <= b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static void compare(const char *what, int rc_a, rec *a, int rc_b, rec *b)
{
    if (rc_a == 0 && rc_b == 0)
        FZ_CHECK(a->log.len == b->log.len && (a->log.len == 0 || !memcmp(a->log.data, b->log.data, a->log.len)),
                 "%s: events differ:\n--- whole\n%.*s--- other\n%.*s", what, (int)a->log.len, a->log.data ? a->log.data : "",
                 (int)b->log.len, b->log.data ? b->log.data : "");
    else
        FZ_CHECK(is_prefix(&a->log, &b->log) || is_prefix(&b->log, &a->log), "%s: events before a failure differ", what);
}

/* Each event of the reference run, written with sse_format and parsed back. */
typedef struct one {
    int    n;
    char   event[64], id[256];
    buf    data;
} one;

static void on_one(void *ud, const char *event, const char *data, size_t len, const char *id)
{
    one *o = ud;
    o->n++;
    snprintf(o->event, sizeof o->event, "%s", event);
    snprintf(o->id, sizeof o->id, "%s", id ? id : "");
    buf_reset(&o->data);
    buf_append(&o->data, data, len);
}

static void roundtrip(const char *event, const char *data, size_t len, const char *id)
{
    if (memchr(data, '\n', len)) return; /* sse_format's contract: no newline in data */
    buf out;
    buf_init(&out, 64u << 20);
    FZ_CHECK(sse_format(&out, id, event, data, len) == 0, "sse_format failed");
    one o = {0};
    buf_init(&o.data, 64u << 20);
    sse_parser p;
    sse_parser_init(&p, 64u << 20, on_one, &o);
    FZ_CHECK(sse_parser_feed(&p, out.data, out.len) == 0, "formatted event does not parse");
    FZ_CHECK(o.n == 1, "formatted event parsed as %d events", o.n);
    FZ_CHECK(strcmp(o.event, event) == 0, "event name changed: '%s' -> '%s'", event, o.event);
    FZ_CHECK(strcmp(o.id, id ? id : "") == 0, "id changed");
    FZ_CHECK(o.data.len == len && (len == 0 || memcmp(o.data.data, data, len) == 0), "data changed");
    sse_parser_free(&p);
    buf_free(&o.data);
    buf_free(&out);
}

static void on_event_rt(void *ud, const char *event, const char *data, size_t len, const char *id)
{
    on_event(ud, event, data, len, id);
    roundtrip(event, data, len, id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    uint8_t sel = fz_u8(&in);
    size_t max_event = sel & 0x80 ? (size_t)1 << 20 : 8 + (size_t)(sel & 0x7f) * 8; /* 8..1024, or 1 MiB */
    size_t ncuts = fz_u8(&in) % 17, got;
    const uint8_t *cuts = fz_bytes(&in, ncuts, &got);
    ncuts = got;

    rec whole, chunked, bytes;
    /* the reference run also checks sse_format on each event */
    sse_parser p;
    buf_init(&whole.log, 64u << 20);
    whole.max_event = max_event;
    whole.n = 0;
    sse_parser_init(&p, max_event, on_event_rt, &whole);
    int rc_whole = sse_parser_feed(&p, (const char *)in.p, in.n);
    sse_parser_free(&p);

    int rc_chunked = parse(in.p, in.n, cuts, ncuts, max_event, 0, &chunked);
    compare("chunked", rc_whole, &whole, rc_chunked, &chunked);
    buf_free(&chunked.log);
    if (in.n <= 2048) {
        int rc_bytes = parse(in.p, in.n, NULL, 0, max_event, 1, &bytes);
        compare("byte by byte", rc_whole, &whole, rc_bytes, &bytes);
        buf_free(&bytes.log);
    }
    buf_free(&whole.log);
    return 0;
}
