/* sse — the incremental Server-Sent Events parser and the writer's framing. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sse.h"

/* Collected events, one record per line: "event|id|data" (id "-" when none). */
typedef struct rec {
    buf    out;
    int    n;
    size_t last_len;
} rec;

static void on_event(void *ud, const char *event, const char *data, size_t len, const char *id)
{
    rec *r = ud;
    assert_non_null(event);
    assert_non_null(data);
    assert_int_equal(strlen(data), len);   /* NUL-terminated, no embedded NUL here */
    buf_printf(&r->out, "%s|%s|", event, id ? id : "-");
    buf_append(&r->out, data, len);
    buf_append(&r->out, "\n", 1);
    r->n++;
    r->last_len = len;
}

static void rec_init(rec *r)
{
    memset(r, 0, sizeof *r);
    buf_init(&r->out, 1 << 20);
}

static const char *rec_str(rec *r) { return r->out.data ? r->out.data : ""; }

/* Feeds s in pieces of `step` bytes (0 = all at once); returns the last feed's rc. */
static int feed_steps(sse_parser *p, const char *s, size_t n, size_t step)
{
    if (!step) return sse_parser_feed(p, s, n);
    for (size_t i = 0; i < n; i += step) {
        size_t k = n - i < step ? n - i : step;
        int rc = sse_parser_feed(p, s + i, k);
        if (rc) return rc;
    }
    return 0;
}

/* Parses s whole, byte by byte, and in every two-piece split; each must give `want`. */
static void check_all_splits(const char *s, const char *want, int n_events)
{
    size_t n = strlen(s);
    for (size_t step = 0; step <= 3; step++) {
        sse_parser p;
        rec r;
        rec_init(&r);
        sse_parser_init(&p, 4096, on_event, &r);
        assert_int_equal(feed_steps(&p, s, n, step), 0);
        assert_string_equal(rec_str(&r), want);
        assert_int_equal(r.n, n_events);
        sse_parser_free(&p);
        buf_free(&r.out);
    }
    for (size_t cut = 0; cut <= n; cut++) {
        sse_parser p;
        rec r;
        rec_init(&r);
        sse_parser_init(&p, 4096, on_event, &r);
        assert_int_equal(sse_parser_feed(&p, s, cut), 0);
        assert_int_equal(sse_parser_feed(&p, s + cut, n - cut), 0);
        if (strcmp(rec_str(&r), want) != 0) fail_msg("split at %zu: got '%s' want '%s'", cut, rec_str(&r), want);
        sse_parser_free(&p);
        buf_free(&r.out);
    }
}

static void basic_events(void **state)
{
    (void)state;
    check_all_splits("data: {\"a\":1}\n\n"
                     "event: endpoint\ndata: /x\n\n",
                     "message|-|{\"a\":1}\n"
                     "endpoint|-|/x\n",
                     2);
}

static void line_endings(void **state)
{
    (void)state;
    const char *want = "message|-|one\nmessage|-|two\nmessage|-|three\n";
    check_all_splits("data: one\n\ndata: two\n\ndata: three\n\n", want, 3);
    check_all_splits("data: one\r\n\r\ndata: two\r\n\r\ndata: three\r\n\r\n", want, 3);
    check_all_splits("data: one\r\rdata: two\r\rdata: three\r\r", want, 3);
    /* mixed in one stream */
    check_all_splits("data: one\r\n\ndata: two\r\r\ndata: three\n\r", want, 3);
}

static void multiline_data(void **state)
{
    (void)state;
    check_all_splits("data: a\ndata: b\r\ndata:c\rdata\n\n", "message|-|a\nb\nc\n\n", 1);
    /* only the first space after the colon is dropped */
    check_all_splits("data:  two spaces\n\n", "message|-| two spaces\n", 1);
    /* an empty data line still makes an event (with empty data) */
    check_all_splits("data:\n\n", "message|-|\n", 1);
    /* a colon in the value is kept */
    check_all_splits("data: a:b: c\n\n", "message|-|a:b: c\n", 1);
}

static void comments_and_fields(void **state)
{
    (void)state;
    /* comments and unknown fields are ignored; blank lines without data dispatch nothing */
    check_all_splits(": keep-alive\n\n"
                     ":\n"
                     "retry: 1000\n"
                     "foo: bar\n"
                     "\n\n"
                     ": comment inside\n"
                     "id: 7\n"
                     "event: message\n"
                     "data: x\n"
                     "\n",
                     "message|7|x\n", 1);
    /* event resets after dispatch; id persists (last event id) */
    check_all_splits("id: 1\nevent: e1\ndata: a\n\n"
                     "data: b\n\n"
                     "id: 2\ndata: c\n\n",
                     "e1|1|a\n"
                     "message|1|b\n"
                     "message|2|c\n",
                     3);
    /* an event with only an id/event but no data is not dispatched */
    check_all_splits("event: ping\nid: 9\n\ndata: y\n\n", "message|9|y\n", 1);
    /* a field name without colon: "data" alone is an empty data line */
    check_all_splits("data\ndata\n\n", "message|-|\n\n", 1);
}

static void unterminated_event_is_not_dispatched(void **state)
{
    (void)state;
    sse_parser p;
    rec r;
    rec_init(&r);
    sse_parser_init(&p, 4096, on_event, &r);
    assert_int_equal(sse_parser_feed(&p, "data: a\n", 8), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(sse_parser_feed(&p, "data: b", 7), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(sse_parser_feed(&p, "\n", 1), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(sse_parser_feed(&p, "\n", 1), 0);
    assert_int_equal(r.n, 1);
    assert_string_equal(rec_str(&r), "message|-|a\nb\n");
    sse_parser_free(&p);
    buf_free(&r.out);
}

static void long_event_across_chunks(void **state)
{
    (void)state;
    /* an event well under max_event but larger than any chunk */
    char big[3000];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    buf s;
    buf_init(&s, 1 << 16);
    buf_printf(&s, "data: %s\r\n\r\n", big);
    for (size_t step = 1; step <= 7; step += 3) {
        sse_parser p;
        rec r;
        rec_init(&r);
        sse_parser_init(&p, 4096, on_event, &r);
        assert_int_equal(feed_steps(&p, s.data, s.len, step), 0);
        assert_int_equal(r.n, 1);
        assert_int_equal(r.last_len, sizeof big - 1);
        sse_parser_free(&p);
        buf_free(&r.out);
    }
    buf_free(&s);
}

static void event_too_large(void **state)
{
    (void)state;
    char big[200];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char msg[300];
    int n = snprintf(msg, sizeof msg, "data: %s\n\n", big);

    /* whole */
    sse_parser p;
    rec r;
    rec_init(&r);
    sse_parser_init(&p, 64, on_event, &r);
    assert_int_equal(sse_parser_feed(&p, msg, (size_t)n), -1);
    assert_int_equal(r.n, 0);
    sse_parser_free(&p);

    /* byte by byte: the partial line buffer overflows */
    sse_parser_init(&p, 64, on_event, &r);
    assert_int_equal(feed_steps(&p, msg, (size_t)n, 1), -1);
    assert_int_equal(r.n, 0);
    sse_parser_free(&p);

    /* many short data lines add up past the limit */
    buf s;
    buf_init(&s, 1 << 16);
    for (int i = 0; i < 20; i++) buf_appends(&s, "data: 0123456789\n");
    buf_appends(&s, "\n");
    sse_parser_init(&p, 64, on_event, &r);
    assert_int_equal(sse_parser_feed(&p, s.data, s.len), -1);
    assert_int_equal(r.n, 0);
    sse_parser_free(&p);
    sse_parser_init(&p, 64, on_event, &r);
    assert_int_equal(feed_steps(&p, s.data, s.len, 5), -1);
    assert_int_equal(r.n, 0);
    sse_parser_free(&p);

    /* just under the limit passes */
    sse_parser_init(&p, 64, on_event, &r);
    memset(big, 'y', 50);
    big[50] = '\0';
    n = snprintf(msg, sizeof msg, "data: %s\n\n", big);
    assert_int_equal(feed_steps(&p, msg, (size_t)n, 1), 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.last_len, 50);
    sse_parser_free(&p);
    buf_free(&s);
    buf_free(&r.out);
}

static void many_events_one_chunk(void **state)
{
    (void)state;
    buf s, want;
    buf_init(&s, 1 << 20);
    buf_init(&want, 1 << 20);
    for (int i = 0; i < 500; i++) {
        buf_printf(&s, "id: %d\r\ndata: {\"n\":%d}\r\n\r\n", i, i);
        buf_printf(&want, "message|%d|{\"n\":%d}\n", i, i);
    }
    for (size_t step = 0; step <= 13; step += 13) {
        sse_parser p;
        rec r;
        rec_init(&r);
        sse_parser_init(&p, 1024, on_event, &r);
        assert_int_equal(feed_steps(&p, s.data, s.len, step), 0);
        assert_int_equal(r.n, 500);
        assert_string_equal(rec_str(&r), want.data);
        sse_parser_free(&p);
        buf_free(&r.out);
    }
    buf_free(&s);
    buf_free(&want);
}

static void format_exact(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, 1 << 16);
    assert_int_equal(sse_format(&b, NULL, NULL, "{\"a\":1}", 7), 0);
    assert_string_equal(b.data, "data: {\"a\":1}\n\n");
    assert_int_equal(b.len, 15);
    buf_reset(&b);
    assert_int_equal(sse_format(&b, "42", "message", "{}", 2), 0);
    assert_string_equal(b.data, "id: 42\nevent: message\ndata: {}\n\n");
    buf_reset(&b);
    assert_int_equal(sse_format(&b, "s1-7", NULL, "xyz", 2), 0);   /* len bounds the data */
    assert_string_equal(b.data, "id: s1-7\ndata: xy\n\n");
    buf_reset(&b);
    assert_int_equal(sse_format(&b, NULL, "endpoint", "", 0), 0);
    assert_string_equal(b.data, "event: endpoint\ndata: \n\n");
    /* appends */
    assert_int_equal(sse_format(&b, NULL, NULL, "1", 1), 0);
    assert_string_equal(b.data, "event: endpoint\ndata: \n\ndata: 1\n\n");
    buf_free(&b);

    /* over the buffer's cap: -1 */
    buf_init(&b, 10);
    assert_int_equal(sse_format(&b, NULL, NULL, "0123456789", 10), -1);
    buf_free(&b);

    /* round trip through the parser */
    buf_init(&b, 1 << 16);
    sse_format(&b, "5", "note", "{\"k\":\"v\"}", 9);
    sse_format(&b, NULL, NULL, "[1,2]", 5);
    sse_parser p;
    rec r;
    rec_init(&r);
    sse_parser_init(&p, 1024, on_event, &r);
    assert_int_equal(feed_steps(&p, b.data, b.len, 1), 0);
    assert_string_equal(rec_str(&r), "note|5|{\"k\":\"v\"}\nmessage|5|[1,2]\n");
    sse_parser_free(&p);
    buf_free(&r.out);
    buf_free(&b);
}

/* Parser and record in a fixture, freed by teardown even when an assertion fails. */
typedef struct pfx {
    sse_parser p;
    rec        r;
} pfx;

static int pfx_setup(void **state)
{
    pfx *x = calloc(1, sizeof *x);
    rec_init(&x->r);
    sse_parser_init(&x->p, 4096, on_event, &x->r);
    *state = x;
    return 0;
}

static int pfx_teardown(void **state)
{
    pfx *x = *state;
    sse_parser_free(&x->p);
    buf_free(&x->r.out);
    free(x);
    return 0;
}

/* An empty chunk is a no-op, also between the CR and the LF of one CRLF. */
static void empty_chunks(void **state)
{
    pfx *x = *state;
    assert_int_equal(sse_parser_feed(&x->p, "", 0), 0);
    assert_int_equal(sse_parser_feed(&x->p, "data: a\r", 8), 0);
    assert_int_equal(sse_parser_feed(&x->p, "", 0), 0);
    assert_int_equal(sse_parser_feed(&x->p, "\ndata: b\r\n", 10), 0);
    assert_int_equal(x->r.n, 0);   /* the LF ended "data: a", it was not an empty line */
    assert_int_equal(sse_parser_feed(&x->p, "\r\n", 2), 0);
    assert_string_equal(rec_str(&x->r), "message|-|a\nb\n");
    assert_int_equal(x->r.n, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(basic_events),
        cmocka_unit_test(line_endings),
        cmocka_unit_test(multiline_data),
        cmocka_unit_test(comments_and_fields),
        cmocka_unit_test(unterminated_event_is_not_dispatched),
        cmocka_unit_test(long_event_across_chunks),
        cmocka_unit_test(event_too_large),
        cmocka_unit_test(many_events_one_chunk),
        cmocka_unit_test(format_exact),
        cmocka_unit_test_setup_teardown(empty_chunks, pfx_setup, pfx_teardown),
    };
    return cmocka_run_group_tests_name("sse", tests, NULL, NULL);
}
