/* session — the per-process session table: entries, upstream ids, revocation, reaping. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "session.h"

#define NOW  1700000000u
#define HOUR 3600u

static void free_ups(char **up, size_t n)
{
    if (!up) return;
    for (size_t i = 0; i < n; i++) free(up[i]);
    free(up);
}

/* An entry has room for the server slots it uses only (a reload adds slots); revoke still
 * returns n_servers entries. */
static void upstream_slots_grow(void **state)
{
    (void)state;
    session_table *t = session_table_new(10, 100, 600);
    char out[32];
    assert_int_equal(session_touch(t, "g", NOW + HOUR, NOW), SESS_OK);
    assert_int_equal(session_get_upstream(t, "g", 70, out, sizeof out), -1);
    session_set_upstream(t, "g", 70, "v s70");
    session_set_upstream(t, "g", 3, "v s3");
    assert_int_equal(session_get_upstream(t, "g", 70, out, sizeof out), 0);
    assert_string_equal(out, "v s70");
    session_set_upstream(t, "g", 100, "x");   /* beyond the table's slots: ignored */
    assert_int_equal(session_get_upstream(t, "g", 100, out, sizeof out), -1);
    char **up = session_revoke(t, "g", NOW);
    assert_non_null(up);
    assert_string_equal(up[3], "v s3");
    assert_string_equal(up[70], "v s70");
    assert_null(up[99]);
    free_ups(up, 100);
    session_table_free(t);
}

static void touch_creates(void **state)
{
    (void)state;
    session_table *t = session_table_new(100, 3, 600);
    assert_non_null(t);
    assert_int_equal(session_count(t), 0);
    assert_int_equal(session_touch(t, "sid-a", NOW + HOUR, NOW), SESS_OK);
    assert_int_equal(session_count(t), 1);
    assert_int_equal(session_touch(t, "sid-a", NOW + HOUR, NOW + 1), SESS_OK);   /* same entry */
    assert_int_equal(session_count(t), 1);
    assert_int_equal(session_touch(t, "sid-b", NOW + HOUR, NOW), SESS_OK);
    assert_int_equal(session_count(t), 2);
    session_table_free(t);
    session_table_free(NULL);
}

static void upstream_ids(void **state)
{
    (void)state;
    session_table *t = session_table_new(100, 3, 600);
    char out[64];
    /* unknown session: nothing, and set is ignored */
    assert_int_equal(session_get_upstream(t, "nope", 0, out, sizeof out), -1);
    session_set_upstream(t, "nope", 0, "x");
    assert_int_equal(session_get_upstream(t, "nope", 0, out, sizeof out), -1);
    assert_int_equal(session_count(t), 0);

    assert_int_equal(session_touch(t, "s1", NOW + HOUR, NOW), SESS_OK);
    for (size_t k = 0; k < 3; k++) assert_int_equal(session_get_upstream(t, "s1", k, out, sizeof out), -1);
    session_set_upstream(t, "s1", 0, "up-zero");
    session_set_upstream(t, "s1", 2, "up-two");
    assert_int_equal(session_get_upstream(t, "s1", 0, out, sizeof out), 0);
    assert_string_equal(out, "up-zero");
    assert_int_equal(session_get_upstream(t, "s1", 1, out, sizeof out), -1);
    assert_int_equal(session_get_upstream(t, "s1", 2, out, sizeof out), 0);
    assert_string_equal(out, "up-two");
    /* replace, clear */
    session_set_upstream(t, "s1", 0, "up-zero-b");
    assert_int_equal(session_get_upstream(t, "s1", 0, out, sizeof out), 0);
    assert_string_equal(out, "up-zero-b");
    session_set_upstream(t, "s1", 2, NULL);
    assert_int_equal(session_get_upstream(t, "s1", 2, out, sizeof out), -1);
    /* out of range server index */
    session_set_upstream(t, "s1", 3, "bad");
    assert_int_equal(session_get_upstream(t, "s1", 3, out, sizeof out), -1);
    /* too small an output buffer: not copied */
    char small[4] = "zzz";
    assert_int_equal(session_get_upstream(t, "s1", 0, small, sizeof small), -1);
    assert_string_equal(small, "zzz");
    /* exactly fitting */
    char fit[10];
    assert_int_equal(session_get_upstream(t, "s1", 0, fit, sizeof fit), 0);
    assert_string_equal(fit, "up-zero-b");
    /* other sessions are separate */
    assert_int_equal(session_touch(t, "s2", NOW + HOUR, NOW), SESS_OK);
    assert_int_equal(session_get_upstream(t, "s2", 0, out, sizeof out), -1);
    session_table_free(t);
}

static void revoke(void **state)
{
    (void)state;
    session_table *t = session_table_new(100, 3, 600);
    assert_int_equal(session_touch(t, "s1", NOW + HOUR, NOW), SESS_OK);
    session_set_upstream(t, "s1", 0, "u0");
    session_set_upstream(t, "s1", 2, "u2");
    char **up = session_revoke(t, "s1", NOW + 5);
    assert_non_null(up);
    assert_string_equal(up[0], "u0");
    assert_null(up[1]);
    assert_string_equal(up[2], "u2");
    free_ups(up, 3);
    assert_int_equal(session_touch(t, "s1", NOW + HOUR, NOW + 6), SESS_REVOKED);
    assert_int_equal(session_touch(t, "s1", NOW + HOUR, NOW + 7), SESS_REVOKED);
    char out[32];
    assert_int_equal(session_get_upstream(t, "s1", 0, out, sizeof out), -1);
    session_set_upstream(t, "s1", 1, "late");   /* ignored on a revoked entry */
    assert_int_equal(session_get_upstream(t, "s1", 1, out, sizeof out), -1);
    assert_int_equal(session_count(t), 1);      /* the tombstone stays */
    /* a second revoke: no upstream ids left */
    up = session_revoke(t, "s1", NOW + 8);
    if (up)
        for (size_t i = 0; i < 3; i++) assert_null(up[i]);
    free_ups(up, 3);
    assert_int_equal(session_touch(t, "s1", NOW + HOUR, NOW + 9), SESS_REVOKED);
    /* other sessions unaffected */
    assert_int_equal(session_touch(t, "s2", NOW + HOUR, NOW), SESS_OK);
    session_table_free(t);
}

static void revoke_unknown_leaves_tombstone(void **state)
{
    (void)state;
    session_table *t = session_table_new(100, 2, 600);
    assert_null(session_revoke(t, "ghost", NOW));
    assert_int_equal(session_count(t), 1);
    assert_int_equal(session_touch(t, "ghost", NOW + HOUR, NOW + 1), SESS_REVOKED);
    char out[8];
    assert_int_equal(session_get_upstream(t, "ghost", 0, out, sizeof out), -1);
    /* the tombstone survives a reap well past the idle time */
    session_reap(t, NOW + 10 * HOUR);
    assert_int_equal(session_touch(t, "ghost", NOW + 20 * HOUR, NOW + 10 * HOUR), SESS_REVOKED);
    session_table_free(t);
}

static void max_sessions(void **state)
{
    (void)state;
    session_table *t = session_table_new(5, 1, 600);
    char id[32];
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof id, "cap-%d", i);
        assert_int_equal(session_touch(t, id, NOW + HOUR, NOW), SESS_OK);
    }
    assert_int_equal(session_count(t), 5);
    assert_int_equal(session_touch(t, "cap-new", NOW + HOUR, NOW), SESS_FULL);
    assert_int_equal(session_touch(t, "cap-new2", NOW + HOUR, NOW), SESS_FULL);
    assert_int_equal(session_count(t), 5);
    /* existing ones still work when full */
    assert_int_equal(session_touch(t, "cap-3", NOW + HOUR, NOW + 1), SESS_OK);
    /* after expiry frees room, new ones fit again */
    assert_int_equal(session_reap(t, NOW + HOUR), 5);
    assert_int_equal(session_count(t), 0);
    assert_int_equal(session_touch(t, "cap-new", NOW + 2 * HOUR, NOW + HOUR), SESS_OK);
    session_table_free(t);
}

static void reap(void **state)
{
    (void)state;
    session_table *t = session_table_new(100, 2, 600);   /* idle 600 s */
    assert_int_equal(session_touch(t, "short", NOW + 100, NOW), SESS_OK);   /* expires first */
    assert_int_equal(session_touch(t, "idle", NOW + HOUR, NOW), SESS_OK);
    assert_int_equal(session_touch(t, "busy", NOW + HOUR, NOW), SESS_OK);
    session_set_upstream(t, "idle", 1, "u-idle");
    session_set_upstream(t, "busy", 0, "u-busy");
    assert_int_equal(session_count(t), 3);

    /* nothing due yet */
    assert_int_equal(session_reap(t, NOW + 50), 0);
    assert_int_equal(session_count(t), 3);

    /* "short" expires; nothing idle yet */
    assert_int_equal(session_touch(t, "busy", NOW + HOUR, NOW + 300), SESS_OK);
    assert_int_equal(session_reap(t, NOW + 100), 1);
    assert_int_equal(session_count(t), 2);
    /* an expired entry is gone: touching it creates a fresh one (the id's own check is elsewhere) */

    /* at NOW+600 "idle" (last used NOW) is revoked, "busy" (NOW+300) is not */
    assert_int_equal(session_reap(t, NOW + 600), 1);
    assert_int_equal(session_count(t), 2);     /* idle entry stays as a tombstone */
    assert_int_equal(session_touch(t, "idle", NOW + HOUR, NOW + 601), SESS_REVOKED);
    char out[32];
    assert_int_equal(session_get_upstream(t, "idle", 1, out, sizeof out), -1);
    assert_int_equal(session_touch(t, "busy", NOW + HOUR, NOW + 601), SESS_OK);
    assert_int_equal(session_get_upstream(t, "busy", 0, out, sizeof out), 0);
    assert_string_equal(out, "u-busy");
    /* reaping again does not count the tombstone twice */
    assert_int_equal(session_reap(t, NOW + 602), 0);

    /* at the ids' expiry both go */
    assert_int_equal(session_reap(t, NOW + HOUR), 2);
    assert_int_equal(session_count(t), 0);
    session_table_free(t);
}

static void reap_no_idle_limit(void **state)
{
    (void)state;
    session_table *t = session_table_new(100, 1, 0);   /* idle 0 = no idle revocation */
    assert_int_equal(session_touch(t, "a", NOW + HOUR, NOW), SESS_OK);
    assert_int_equal(session_reap(t, NOW + HOUR - 1), 0);
    assert_int_equal(session_touch(t, "a", NOW + HOUR, NOW + HOUR - 1), SESS_OK);
    assert_int_equal(session_reap(t, NOW + HOUR), 1);
    session_table_free(t);
}

static void zero_servers(void **state)
{
    (void)state;
    session_table *t = session_table_new(10, 0, 60);
    char out[8];
    assert_int_equal(session_touch(t, "z", NOW + HOUR, NOW), SESS_OK);
    session_set_upstream(t, "z", 0, "x");
    assert_int_equal(session_get_upstream(t, "z", 0, out, sizeof out), -1);
    char **up = session_revoke(t, "z", NOW);
    free_ups(up, 0);
    assert_int_equal(session_touch(t, "z", NOW + HOUR, NOW), SESS_REVOKED);
    session_table_free(t);
}

/* Enough entries that the shards' bucket arrays grow; everything stays findable. */
static void many_entries_grow(void **state)
{
    (void)state;
    enum { N = 140000 };
    session_table *t = session_table_new(N, 1, 600);
    char id[32], out[32], want[32];
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "grow-%d", i);
        assert_int_equal(session_touch(t, id, NOW + HOUR, NOW), SESS_OK);
        if (i % 1000 == 0) {
            snprintf(want, sizeof want, "u%d", i);
            session_set_upstream(t, id, 0, want);
        }
    }
    assert_int_equal(session_count(t), N);
    assert_int_equal(session_touch(t, "one-more", NOW + HOUR, NOW), SESS_FULL);
    for (int i = 0; i < N; i += 1000) {
        snprintf(id, sizeof id, "grow-%d", i);
        snprintf(want, sizeof want, "u%d", i);
        assert_int_equal(session_get_upstream(t, id, 0, out, sizeof out), 0);
        assert_string_equal(out, want);
    }
    for (int i = 0; i < N; i += 7) {
        snprintf(id, sizeof id, "grow-%d", i);
        assert_int_equal(session_touch(t, id, NOW + HOUR, NOW + 1), SESS_OK);
    }
    assert_int_equal(session_count(t), N);
    assert_int_equal(session_reap(t, NOW + HOUR), N);
    assert_int_equal(session_count(t), 0);
    session_table_free(t);
}

static void logging_level(void **state)
{
    (void)state;
    session_table *t = session_table_new(10, 1, 600);
    char out[16];
    assert_int_equal(session_get_level(t, "l", out, sizeof out), -1);   /* unknown */
    session_set_level(t, "l", "debug");                                  /* ignored: unknown */
    assert_int_equal(session_get_level(t, "l", out, sizeof out), -1);
    assert_int_equal(session_touch(t, "l", NOW + HOUR, NOW), SESS_OK);
    assert_int_equal(session_get_level(t, "l", out, sizeof out), -1);   /* none yet */
    session_set_level(t, "l", "warning");
    assert_int_equal(session_get_level(t, "l", out, sizeof out), 0);
    assert_string_equal(out, "warning");
    session_set_level(t, "l", "emergency");
    assert_int_equal(session_get_level(t, "l", out, sizeof out), 0);
    assert_string_equal(out, "emergency");
    assert_int_equal(session_touch(t, "other", NOW + HOUR, NOW), SESS_OK);
    assert_int_equal(session_get_level(t, "other", out, sizeof out), -1);
    session_table_free(t);
}

static void pending_maps(void **state)
{
    (void)state;
    session_table *t = session_table_new(10, 3, 600);
    char val[64];
    size_t server = 99;
    assert_int_equal(session_pending_put(t, "p", "c:1", 0, "x"), -1);   /* unknown session */
    assert_int_equal(session_pending_get(t, "p", "c:1", &server, val, sizeof val, 0), -1);
    assert_int_equal(session_touch(t, "p", NOW + HOUR, NOW), SESS_OK);
    assert_int_equal(session_pending_get(t, "p", "c:1", &server, val, sizeof val, 0), -1);
    assert_int_equal(session_pending_put(t, "p", "c:1", 2, "up-7"), 0);
    assert_int_equal(session_pending_put(t, "p", "s:gw-1", 1, "\"abc\""), 0);
    /* peek */
    assert_int_equal(session_pending_get(t, "p", "c:1", &server, val, sizeof val, 0), 0);
    assert_int_equal(server, 2);
    assert_string_equal(val, "up-7");
    assert_int_equal(session_pending_get(t, "p", "c:1", NULL, NULL, 0, 0), 0);
    /* take */
    server = 99;
    assert_int_equal(session_pending_get(t, "p", "s:gw-1", &server, val, sizeof val, 1), 0);
    assert_int_equal(server, 1);
    assert_string_equal(val, "\"abc\"");
    assert_int_equal(session_pending_get(t, "p", "s:gw-1", &server, val, sizeof val, 1), -1);
    assert_int_equal(session_pending_get(t, "p", "c:1", &server, val, sizeof val, 1), 0);
    assert_int_equal(session_pending_get(t, "p", "c:1", &server, val, sizeof val, 0), -1);
    /* per-session cap */
    char key[32];
    for (int i = 0; i < SESSION_PENDING_MAX; i++) {
        snprintf(key, sizeof key, "c:%d", i);
        assert_int_equal(session_pending_put(t, "p", key, (size_t)i % 3, key), 0);
    }
    assert_int_equal(session_pending_put(t, "p", "c:over", 0, "x"), -1);
    assert_int_equal(session_pending_get(t, "p", "c:17", &server, val, sizeof val, 1), 0);
    assert_string_equal(val, "c:17");
    assert_int_equal(server, 17 % 3);
    assert_int_equal(session_pending_put(t, "p", "c:over", 0, "x"), 0);   /* room again */
    /* other sessions have their own map */
    assert_int_equal(session_touch(t, "q", NOW + HOUR, NOW), SESS_OK);
    assert_int_equal(session_pending_get(t, "q", "c:1", &server, val, sizeof val, 0), -1);
    assert_int_equal(session_pending_put(t, "q", "c:1", 0, "q1"), 0);
    /* revocation drops the map and refuses new entries */
    char **up = session_revoke(t, "p", NOW);
    free_ups(up, 3);
    assert_int_equal(session_pending_get(t, "p", "c:1", &server, val, sizeof val, 0), -1);
    assert_int_equal(session_pending_put(t, "p", "c:new", 0, "x"), -1);
    assert_int_equal(session_pending_get(t, "q", "c:1", &server, val, sizeof val, 0), 0);
    assert_string_equal(val, "q1");
    session_table_free(t);   /* frees q's map (valgrind checks) */
}

/* ---- concurrency smoke ---- */

#define THREADS 4
#define IDS     10000

typedef struct worker {
    session_table *t;
    int            no;
    int            errors;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    char id[32], up[32], out[32];
    for (int round = 0; round < 2; round++)
        for (int k = 0; k < IDS; k++) {
            /* threads share the id space, in different orders */
            int i = (k * 7919 + w->no * 2503) % IDS;
            snprintf(id, sizeof id, "conc-%d", i);
            if (session_touch(w->t, id, NOW + HOUR, NOW + (uint64_t)k) != SESS_OK) w->errors++;
            snprintf(up, sizeof up, "t%d-%d", w->no, i);
            session_set_upstream(w->t, id, (size_t)w->no % 2, up);
            if (session_get_upstream(w->t, id, (size_t)w->no % 2, out, sizeof out) != 0) w->errors++;
            else if (strncmp(out, "t", 1) != 0) w->errors++;
            if (i % 97 == 0 && w->no == 3 && round == 1) {
                char **r = session_revoke(w->t, id, NOW);
                free_ups(r, 2);
            }
        }
    return NULL;
}

static void concurrency_smoke(void **state)
{
    (void)state;
    session_table *t = session_table_new(IDS * 2, 2, 600);
    pthread_t th[THREADS];
    worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker){.t = t, .no = i};
        assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(session_count(t), IDS);
    /* revoked ones answer REVOKED; the others are fine and hold an upstream id */
    char id[32], out[32];
    int revoked = 0;
    for (int i = 0; i < IDS; i++) {
        snprintf(id, sizeof id, "conc-%d", i);
        int rc = session_touch(t, id, NOW + HOUR, NOW + 2 * IDS);
        if (i % 97 == 0) {
            assert_int_equal(rc, SESS_REVOKED);
            revoked++;
        } else {
            /* workers 0 and 2 raced the revocations, so only non-revoked ids are checked */
            assert_int_equal(rc, SESS_OK);
            assert_int_equal(session_get_upstream(t, id, 0, out, sizeof out), 0);
            assert_int_equal(session_get_upstream(t, id, 1, out, sizeof out), 0);
        }
    }
    assert_true(revoked > 0);
    /* worker 3 revokes only after its own touch and get: never an error; the others may meet a
     * revoked id (touch REVOKED, get -1) on each of their two visits: at most 4 per revoked id */
    assert_int_equal(w[3].errors, 0);
    for (int i = 0; i < 3; i++) assert_true(w[i].errors <= 4 * revoked);
    assert_int_equal(session_reap(t, NOW + HOUR), IDS);
    session_table_free(t);
}

/* --max-sessions-per-subject: a subject's live sessions are counted; revoke, idle reaping and
 * expiry give the slot back; anonymous sessions are not counted; other subjects are not affected. */
static void subject_cap(void **state)
{
    (void)state;
    session_table *t = session_table_new(100, 1, 600);
    session_table_set_subject_cap(t, 2);
    uint8_t alice[SESSION_SUBJECT_LEN] = {1, 2, 3}, bob[SESSION_SUBJECT_LEN] = {9}, anon[SESSION_SUBJECT_LEN] = {0};
    assert_int_equal(session_open(t, "a1", NOW + HOUR, NOW, alice), SESS_OK);
    assert_int_equal(session_open(t, "a2", NOW + 100, NOW, alice), SESS_OK);
    assert_int_equal(session_subject_count(t, alice), 2);
    assert_int_equal(session_open(t, "a3", NOW + HOUR, NOW, alice), SESS_SUBJECT_FULL);
    assert_int_equal(session_count(t), 2);   /* nothing was created for the refused one */
    assert_int_equal(session_open(t, "b1", NOW + HOUR, NOW, bob), SESS_OK);
    for (int i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof id, "anon%d", i);
        assert_int_equal(session_open(t, id, NOW + HOUR, NOW, anon), SESS_OK);
    }
    assert_int_equal(session_subject_count(t, anon), 0);
    /* opening the same id again does not count twice */
    assert_int_equal(session_open(t, "b1", NOW + HOUR, NOW, bob), SESS_OK);
    assert_int_equal(session_subject_count(t, bob), 1);
    /* revoke frees a slot (twice does not free two) */
    free_ups(session_revoke(t, "a1", NOW + 1), 1);
    free_ups(session_revoke(t, "a1", NOW + 1), 1);
    assert_int_equal(session_subject_count(t, alice), 1);
    assert_int_equal(session_open(t, "a4", NOW + HOUR, NOW + 1, alice), SESS_OK);
    assert_int_equal(session_open(t, "a5", NOW + HOUR, NOW + 1, alice), SESS_SUBJECT_FULL);
    /* expiry of a2 (NOW + 100) frees a slot */
    session_reap(t, NOW + 101);
    assert_int_equal(session_subject_count(t, alice), 1);
    assert_int_equal(session_open(t, "a5", NOW + HOUR, NOW + 101, alice), SESS_OK);
    /* idle reaping frees them all */
    session_reap(t, NOW + 101 + 601);
    assert_int_equal(session_subject_count(t, alice), 0);
    assert_int_equal(session_subject_count(t, bob), 0);
    /* a cap of 0 is no cap */
    session_table_set_subject_cap(t, 0);
    for (int i = 0; i < 10; i++) {
        char id[16];
        snprintf(id, sizeof id, "many%d", i);
        assert_int_equal(session_open(t, id, NOW + 2 * HOUR, NOW + 800, alice), SESS_OK);
    }
    assert_int_equal(session_subject_count(t, alice), 10);
    session_table_free(t);   /* frees the counts too (ASan checks) */
}

/* --max-session-events / --max-session-event-bytes: the oldest go first; an event over the byte
 * cap is not kept but the GET stream is still reported; 0 events keeps nothing. */
static void event_caps(void **state)
{
    (void)state;
    session_table *t = session_table_new(10, 1, 600);
    session_table_set_event_caps(t, 3, 100);
    assert_int_equal(session_touch(t, "e", NOW + HOUR, NOW), SESS_OK);
    session_set_get(t, "e", 1, 77);
    int wk;
    uint64_t tok;
    for (uint64_t i = 1; i <= 5; i++) {
        session_event_add(t, "e", "s1", i, "0123456789", 10, &wk, &tok);
        assert_int_equal(wk, 1);
        assert_int_equal(tok, 77);
    }
    buf out;
    buf_init(&out, 1 << 16);
    assert_int_equal(session_event_replay(t, "e", "s1", 0, &out, 1, 77), 3);   /* 3, 4, 5 */
    buf_free(&out);
    char big[200];
    memset(big, 'x', sizeof big);
    session_event_add(t, "e", "s1", 6, big, sizeof big, &wk, &tok);
    assert_int_equal(wk, 1);   /* delivered, not kept */
    buf_init(&out, 1 << 16);
    assert_int_equal(session_event_replay(t, "e", "s1", 5, &out, 1, 77), 0);
    buf_free(&out);
    session_table_set_event_caps(t, 0, 100);
    session_event_add(t, "e", "s1", 7, "a", 1, &wk, &tok);
    assert_int_equal(wk, 1);
    buf_init(&out, 1 << 16);
    assert_int_equal(session_event_replay(t, "e", "s1", 6, &out, 1, 77), 0);
    buf_free(&out);
    session_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(touch_creates),
        cmocka_unit_test(upstream_ids),
        cmocka_unit_test(upstream_slots_grow),
        cmocka_unit_test(revoke),
        cmocka_unit_test(revoke_unknown_leaves_tombstone),
        cmocka_unit_test(max_sessions),
        cmocka_unit_test(reap),
        cmocka_unit_test(reap_no_idle_limit),
        cmocka_unit_test(zero_servers),
        cmocka_unit_test(logging_level),
        cmocka_unit_test(pending_maps),
        cmocka_unit_test(many_entries_grow),
        cmocka_unit_test(concurrency_smoke),
        cmocka_unit_test(subject_cap),
        cmocka_unit_test(event_caps),
    };
    return cmocka_run_group_tests_name("session", tests, NULL, NULL);
}
