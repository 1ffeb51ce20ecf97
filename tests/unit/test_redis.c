/* redis — CACHE_CONNECTION_STRING parsing, the store key of a session, and the session table's side of the
 * shared store (load epochs, the shared last use, forgetting idle entries). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include "redis.h"
#include "session.h"
#include "session_id.h"

static redis_url ok(const char *url)
{
    redis_url u;
    char err[512] = "";
    int rc = redis_url_parse(url, &u, err, sizeof err);
    if (rc) fail_msg("%s: %s", url, err);
    return u;
}

static void bad(const char *url, const char *needle)
{
    redis_url u;
    char err[512] = "";
    assert_int_equal(redis_url_parse(url, &u, err, sizeof err), -1);
    if (!strstr(err, needle)) fail_msg("%s: '%s' lacks '%s'", url, err, needle);
    assert_non_null(strstr(err, "CACHE_CONNECTION_STRING"));
}

static void test_url_full(void **st)
{
    redis_url u = ok("redis://gw:s3cr%40t%3A@redis.example:6380/3");
    assert_string_equal(u.host, "redis.example");
    assert_int_equal(u.port, 6380);
    assert_string_equal(u.user, "gw");
    assert_string_equal(u.pass, "s3cr@t:");
    assert_true(u.has_pass);
    assert_int_equal(u.db, 3);
    assert_false(u.query_ignored);
}

static void test_url_defaults(void **st)
{
    redis_url u = ok("redis://mcp-gateway-redis");
    assert_string_equal(u.host, "mcp-gateway-redis");
    assert_int_equal(u.port, 6379);
    assert_false(u.has_pass);
    assert_string_equal(u.user, "");
    assert_int_equal(u.db, 0);
    u = ok("REDIS://127.0.0.1:6379/");
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.db, 0);
    u = ok("redis://:onlypass@10.0.0.5/15");   /* AUTH <password> (the default user) */
    assert_string_equal(u.user, "");
    assert_string_equal(u.pass, "onlypass");
    assert_true(u.has_pass);
    assert_int_equal(u.db, 15);
    u = ok("redis://:@h");                      /* empty password: no AUTH */
    assert_false(u.has_pass);
}

static void test_url_ipv6_and_query(void **st)
{
    redis_url u = ok("redis://[::1]:7000/2");
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 7000);
    assert_int_equal(u.db, 2);
    bad("redis://[fe80::1%25eth0]", "IPv6");   /* no zone ids */
}

static void test_url_query_ignored(void **st)
{
    redis_url u = ok("redis://h:1/4?protocol=3&dial_timeout=5s");
    assert_int_equal(u.db, 4);
    assert_true(u.query_ignored);
    u = ok("redis://h?x=1");
    assert_true(u.query_ignored);
    assert_int_equal(u.db, 0);
}

static void test_url_errors(void **st)
{
    bad("", "empty");
    bad("rediss://h:6380/0", "TLS");
    bad("rediss://h:6380/0", "stunnel");
    bad("http://h:6379", "redis://");
    bad("redis://", "no host");
    bad("redis://:6379", "no host");
    bad("redis://h:0", "port");
    bad("redis://h:65536", "port");
    bad("redis://h:12ab", "port");
    bad("redis://h:", "port");
    bad("redis://user@h", "user info");
    bad("redis://user:@h", "password");
    bad("redis://u:p%zz@h", "percent");
    bad("redis://u:p%4@h", "percent");
    bad("redis://u:p%00@h", "percent");
    bad("redis://h/abc", "database");
    bad("redis://h/1/2", "database");
    bad("redis://h/99999999", "database");
    bad("redis://h#frag", "after the host");
    bad("redis://h o/0", "host");
    bad("redis://[::1/0", "IPv6");
    bad("redis://[]:1", "IPv6");
    bad("redis://[::1]x", "IPv6");
    bad("redis://[zz::1]", "IPv6");
    bad("redis://::1:6379", "no host");      /* IPv6 needs brackets */
}

static void test_url_never_leaks_the_password(void **st)
{
    redis_url u;
    char err[512] = "";
    assert_int_equal(redis_url_parse("redis://u:topsecret@h:x", &u, err, sizeof err), -1);
    assert_null(strstr(err, "topsecret"));
}

static void test_session_key(void **st)
{
    char kerr[256];
    session_keyring *kr = session_keyring_new("0123456789abcdef0123456789abcdef", NULL, kerr, sizeof kerr);
    assert_non_null(kr);
    session_claims c;
    session_claims_init(&c, 1700000000, 3600);
    char id[SESSION_ID_MAX], key[33], key2[33];
    assert_int_equal(session_id_encode(kr, &c, id), SESSION_ID_LEN);
    uint64_t exp = 0;
    redis_session_key(id, key, &exp);
    assert_int_equal(strlen(key), 32);
    assert_true(exp == 1700003600u);
    for (const char *p = key; *p; p++) assert_true((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'));
    assert_null(strstr(id, key));                 /* not the id itself */
    redis_session_key(id, key2, &exp);
    assert_string_equal(key, key2);               /* the same on every replica */
    id[60] = id[60] == 'A' ? 'B' : 'A';
    redis_session_key(id, key2, &exp);
    assert_string_not_equal(key, key2);
    redis_session_key("not-an-id", key2, &exp);   /* an odd id has no expiry: nothing is stored for it */
    assert_true(exp == 0);
    session_keyring_free(kr);
}

static void test_session_shared_state(void **st)
{
    session_table *t = session_table_new(10, 4, 600);
    int load, touch;
    assert_int_equal(session_touch(t, "a", 5000, 1000), SESS_OK);
    session_shared_state(t, "a", 1, 1000, 75, &load, &touch);
    assert_true(load);                            /* never loaded */
    assert_true(touch);                           /* never written */
    session_shared_state(t, "a", 1, 1010, 75, &load, &touch);
    assert_true(load);
    assert_false(touch);                          /* written at 1000: due again at 1075 */
    session_shared_loaded(t, "a", 1);
    session_shared_state(t, "a", 1, 1075, 75, &load, &touch);
    assert_false(load);
    assert_true(touch);
    session_shared_state(t, "a", 2, 1076, 75, &load, &touch);   /* a new epoch: load again */
    assert_true(load);
    assert_false(touch);
    session_shared_state(t, "a", 0, 1076, 0, &load, &touch);    /* epoch 0 (never subscribed): always */
    assert_true(load);
    assert_false(touch);                          /* every 0: never due */
    session_shared_state(t, "none", 1, 1076, 75, &load, &touch);
    assert_false(load);
    assert_false(touch);
    assert_true(session_exists(t, "a"));
    assert_false(session_exists(t, "b"));
    free(session_revoke(t, "a", 1100));
    session_shared_state(t, "a", 3, 1100, 75, &load, &touch);
    assert_false(load);                           /* a tombstone has nothing to load */
    assert_true(session_exists(t, "a"));
    session_table_free(t);
}

static void test_session_has_stream(void **st)
{
    session_table *t = session_table_new(10, 4, 600);
    int wi;
    uint64_t tok;
    assert_int_equal(session_touch(t, "a", 5000, 1000), SESS_OK);
    assert_false(session_has_stream(t, "a", "p0.1"));
    session_event_add(t, "a", "p0.1", 1, "{}", 2, &wi, &tok);
    assert_true(session_has_stream(t, "a", "p0.1"));
    assert_false(session_has_stream(t, "a", "p0.2"));
    assert_false(session_has_stream(t, "b", "p0.1"));
    session_table_free(t);
}

/* With a shared store the reaper forgets an idle entry (another replica may serve it) instead of keeping a
 * tombstone that would answer 404 here. */
static void test_reap_forgets_when_shared(void **st)
{
    session_table *t = session_table_new(10, 4, 60);
    char out[64];
    assert_int_equal(session_touch(t, "a", 5000, 1000), SESS_OK);
    session_set_upstream(t, "a", 1, "2025-11-25 up-a");
    assert_int_equal(session_reap(t, 1100), 1);
    assert_int_equal(session_touch(t, "a", 5000, 1101), SESS_REVOKED);   /* alone: revoked */
    session_table_free(t);

    t = session_table_new(10, 4, 60);
    session_table_set_shared(t, 1);
    assert_int_equal(session_touch(t, "a", 5000, 1000), SESS_OK);
    session_set_upstream(t, "a", 1, "2025-11-25 up-a");
    assert_int_equal(session_reap(t, 1100), 1);
    assert_int_equal(session_count(t), 0);
    assert_false(session_exists(t, "a"));
    assert_int_equal(session_touch(t, "a", 5000, 1101), SESS_OK);   /* shared: a fresh entry, loaded again */
    assert_int_equal(session_get_upstream(t, "a", 1, out, sizeof out), -1);
    free(session_revoke(t, "a", 1102));                             /* DELETE keeps its tombstone */
    assert_int_equal(session_reap(t, 1300), 0);
    assert_int_equal(session_touch(t, "a", 5000, 1301), SESS_REVOKED);
    session_table_free(t);
}

/* The shared token cache: sealed values open only with the same key and the same key name. */
static void test_token_seal(void **st)
{
    uint8_t k1[32], k2[32], k1b[32];
    assert_int_equal(redis_token_key("a signing key of at least thirty-two bytes", 42, k1), 0);
    assert_int_equal(redis_token_key("a signing key of at least thirty-two bytes", 42, k1b), 0);
    assert_int_equal(redis_token_key("another signing key, also long enough!!!!", 42, k2), 0);
    assert_memory_equal(k1, k1b, 32);
    assert_memory_not_equal(k1, k2, 32);

    char n1[REDIS_TOKEN_NAME_MAX], n2[REDIS_TOKEN_NAME_MAX];
    redis_token_name("caller-1", 8, n1);
    redis_token_name("caller-2", 8, n2);
    assert_int_equal(strncmp(n1, "mcpgw:t:{", 9), 0);
    assert_int_equal(strlen(n1), 9 + 32 + 1);
    assert_null(strstr(n1, "caller"));
    assert_string_not_equal(n1, n2);

    const char *plain = "1893456000000 Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";
    size_t n = 0, m = 0;
    char *sealed = redis_seal(k1, n1, plain, strlen(plain), &n);
    assert_non_null(sealed);
    assert_int_equal(strlen(sealed), n);
    assert_int_equal(strncmp(sealed, "v1.", 3), 0);
    assert_null(strstr(sealed, "eyJ"));
    assert_null(strstr(sealed, "Bearer"));
    assert_null(strchr(sealed + 3, '.'));
    char *again = redis_seal(k1, n1, plain, strlen(plain), NULL);   /* a fresh nonce each time */
    assert_string_not_equal(sealed, again);
    free(again);

    char *open = redis_unseal(k1, n1, sealed, n, &m);
    assert_non_null(open);
    assert_int_equal(m, strlen(plain));
    assert_string_equal(open, plain);
    free(open);

    assert_null(redis_unseal(k1, n2, sealed, n, NULL));   /* moved to another key name */
    assert_null(redis_unseal(k2, n1, sealed, n, NULL));   /* another signing key */
    for (size_t i = 3; i < n; i += 7) {                     /* any altered character */
        char *t = strdup(sealed);
        t[i] = t[i] == 'A' ? 'B' : 'A';
        char *o = redis_unseal(k1, n1, t, n, NULL);
        if (o) fail_msg("altered at %zu: opened", i);
        free(t);
    }
    assert_null(redis_unseal(k1, n1, sealed, n - 4, NULL));  /* truncated */
    assert_null(redis_unseal(k1, n1, sealed + 1, n - 1, NULL));
    assert_null(redis_unseal(k1, n1, "v1.", 3, NULL));
    assert_null(redis_unseal(k1, n1, "v1.AAAA", 7, NULL));
    assert_null(redis_unseal(k1, n1, plain, strlen(plain), NULL));
    free(sealed);

    sealed = redis_seal(k1, n1, "", 0, &n);   /* empty plaintext: still authenticated */
    assert_non_null(sealed);
    open = redis_unseal(k1, n1, sealed, n, &m);
    assert_non_null(open);
    assert_int_equal(m, 0);
    free(open);
    assert_null(redis_unseal(k1, n2, sealed, n, NULL));
    free(sealed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_full),
        cmocka_unit_test(test_url_defaults),
        cmocka_unit_test(test_url_ipv6_and_query),
        cmocka_unit_test(test_url_query_ignored),
        cmocka_unit_test(test_url_errors),
        cmocka_unit_test(test_url_never_leaks_the_password),
        cmocka_unit_test(test_session_key),
        cmocka_unit_test(test_session_shared_state),
        cmocka_unit_test(test_session_has_stream),
        cmocka_unit_test(test_reap_forgets_when_shared),
        cmocka_unit_test(test_token_seal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
