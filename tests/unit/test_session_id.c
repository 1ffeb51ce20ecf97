#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>
#include "session_id.h"

#define KEY_A "0123456789abcdef0123456789abcdef"
#define KEY_B "fedcba9876543210fedcba9876543210-b"
#define T0    1700000000u

/* Computed independently with the openssl CLI:
 *   payload = created|expires|nonce|proto|caps|subject|0, base64url
 *   mk  = openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt key:KEY_A
 *                      -kdfopt "info:mcp-gateway session-id v1" HKDF
 *   tag = openssl mac -digest SHA256 -macopt hexkey:mk HMAC  over "v1." payload */
static const char kat_id[] =
    "v1.AAAAAGVT8QAAAAAAZVP_EAABAgMEBQYHCAkKCwwNDg8CAAAAH6ChoqOkpaanqKmqq6ytrq8A"
    ".bgVkcPMu47ZcBrvuI4HI74iPZIcY8vHlFLepzfJrY8s";

static void kat_claims(session_claims *c)
{
    memset(c, 0, sizeof *c);
    c->created = T0;
    c->expires = T0 + 3600;
    for (int i = 0; i < 16; i++) c->nonce[i] = (uint8_t)i;
    c->proto = 2;
    c->client_caps = 0x1f;
    for (int i = 0; i < 16; i++) c->subject[i] = (uint8_t)(0xa0 + i);
}

static void assert_claims_equal(const session_claims *a, const session_claims *b)
{
    assert_true(a->created == b->created);
    assert_true(a->expires == b->expires);
    assert_memory_equal(a->nonce, b->nonce, 16);
    assert_int_equal(a->proto, b->proto);
    assert_int_equal(a->client_caps, b->client_caps);
    assert_memory_equal(a->subject, b->subject, 16);
}

static void known_answer(void **state)
{
    char err[128];
    session_keyring *kr = session_keyring_new(KEY_A, NULL, err, sizeof err);
    assert_non_null(kr);
    assert_false(session_keyring_is_random(kr));
    session_claims c, d;
    kat_claims(&c);
    char id[SESSION_ID_MAX];
    assert_int_equal(session_id_encode(kr, &c, id), SESSION_ID_LEN);
    assert_string_equal(id, kat_id);
    assert_int_equal(session_id_decode(kr, kat_id, strlen(kat_id), T0 + 1, &d), SESSION_ID_OK);
    assert_claims_equal(&c, &d);
    session_keyring_free(kr);
}

static void roundtrip_and_charset(void **state)
{
    session_keyring *kr = session_keyring_new(KEY_B, "", NULL, 0);
    assert_non_null(kr);
    for (int i = 0; i < 50; i++) {
        session_claims c, d;
        session_claims_init(&c, T0 + (uint64_t)i, 60);
        c.proto = (uint8_t)(i % SESSION_PROTO_COUNT);
        c.client_caps = (uint32_t)i;
        c.subject[i % 16] = (uint8_t)i;
        char id[SESSION_ID_MAX];
        assert_int_equal(session_id_encode(kr, &c, id), SESSION_ID_LEN);
        assert_int_equal(strlen(id), SESSION_ID_LEN);
        for (size_t k = 0; k < SESSION_ID_LEN; k++) assert_true(id[k] > 0x20 && id[k] < 0x7f);
        assert_int_equal(session_id_decode(kr, id, SESSION_ID_LEN, T0, &d), SESSION_ID_OK);
        assert_claims_equal(&c, &d);
    }
    session_keyring_free(kr);
}

static void expiry(void **state)
{
    session_keyring *kr = session_keyring_new(KEY_A, NULL, NULL, 0);
    session_claims c, d;
    kat_claims(&c);
    char id[SESSION_ID_MAX];
    session_id_encode(kr, &c, id);
    assert_int_equal(session_id_decode(kr, id, SESSION_ID_LEN, T0 + 3599, NULL), SESSION_ID_OK);
    assert_int_equal(session_id_decode(kr, id, SESSION_ID_LEN, T0 + 3600, &d), SESSION_ID_EXPIRED);
    assert_claims_equal(&c, &d); /* authentic claims are still reported */
    assert_int_equal(session_id_decode(kr, id, SESSION_ID_LEN, UINT64_MAX, NULL), SESSION_ID_EXPIRED);
    session_keyring_free(kr);
}

static void rotation(void **state)
{
    session_keyring *old = session_keyring_new(KEY_A, NULL, NULL, 0);
    session_keyring *rot = session_keyring_new(KEY_B, " , " KEY_A " ,,", NULL, 0);
    session_keyring *other = session_keyring_new(KEY_B, NULL, NULL, 0);
    assert_non_null(old);
    assert_non_null(rot);
    assert_non_null(other);
    session_claims c, d;
    kat_claims(&c);
    char a[SESSION_ID_MAX], b[SESSION_ID_MAX];
    session_id_encode(old, &c, a);
    session_id_encode(rot, &c, b);
    assert_string_not_equal(a, b);                         /* the current key signs */
    assert_int_equal(session_id_decode(rot, a, SESSION_ID_LEN, T0, &d), SESSION_ID_OK);
    assert_claims_equal(&c, &d);
    assert_int_equal(session_id_decode(rot, b, SESSION_ID_LEN, T0, NULL), SESSION_ID_OK);
    assert_int_equal(session_id_decode(other, b, SESSION_ID_LEN, T0, NULL), SESSION_ID_OK);
    assert_int_equal(session_id_decode(other, a, SESSION_ID_LEN, T0, &d), SESSION_ID_BADSIG);
    assert_int_equal(d.expires, 0);                        /* zeroed on failure */
    assert_int_equal(session_id_decode(old, b, SESSION_ID_LEN, T0, NULL), SESSION_ID_BADSIG);
    session_keyring_free(old);
    session_keyring_free(rot);
    session_keyring_free(other);
}

static void keyring_errors(void **state)
{
    char err[128];
    assert_null(session_keyring_new("0123456789abcdef0123456789abcde", NULL, err, sizeof err)); /* 31 */
    assert_string_equal(err, "signing key is shorter than 32 bytes");
    assert_null(session_keyring_new(KEY_A, KEY_B ",short", err, sizeof err));
    assert_string_equal(err, "previous signing key #2 is shorter than 32 bytes");
    assert_null(strstr(err, "short,")); /* never echoes key material */
    /* too many previous keys */
    char csv[1024] = "";
    for (int i = 0; i <= SESSION_KEYRING_MAX_PREVIOUS; i++) strcat(strcat(csv, KEY_A), ",");
    assert_null(session_keyring_new(KEY_B, csv, err, sizeof err));
    csv[strlen(csv) - sizeof KEY_A] = '\0'; /* drop one: exactly the maximum */
    session_keyring *kr = session_keyring_new(KEY_B, csv, err, sizeof err);
    assert_non_null(kr);
    session_keyring_free(kr);
    session_keyring_free(NULL);
}

static void random_keys(void **state)
{
    session_keyring *r1 = session_keyring_new(NULL, NULL, NULL, 0);
    session_keyring *r2 = session_keyring_new("", NULL, NULL, 0);
    assert_non_null(r1);
    assert_non_null(r2);
    assert_true(session_keyring_is_random(r1));
    assert_true(session_keyring_is_random(r2));
    session_claims c;
    session_claims_init(&c, T0, 60);
    char id[SESSION_ID_MAX];
    session_id_encode(r1, &c, id);
    assert_int_equal(session_id_decode(r1, id, SESSION_ID_LEN, T0, NULL), SESSION_ID_OK);
    assert_int_equal(session_id_decode(r2, id, SESSION_ID_LEN, T0, NULL), SESSION_ID_BADSIG);
    session_keyring_free(r1);
    session_keyring_free(r2);
}

static void malformed(void **state)
{
    session_keyring *kr = session_keyring_new(KEY_A, NULL, NULL, 0);
    char id[SESSION_ID_MAX + 8];
    strcpy(id, kat_id);
    const uint64_t now = T0;
    assert_int_equal(session_id_decode(kr, NULL, 0, now, NULL), SESSION_ID_MALFORMED);
    assert_int_equal(session_id_decode(kr, "", 0, now, NULL), SESSION_ID_MALFORMED);
    assert_int_equal(session_id_decode(kr, id, SESSION_ID_LEN - 1, now, NULL), SESSION_ID_MALFORMED);
    strcat(id, "A");
    assert_int_equal(session_id_decode(kr, id, SESSION_ID_LEN + 1, now, NULL), SESSION_ID_MALFORMED);
    /* every position, every non-identical byte value class: never OK */
    static const char subst[] = {'A', 'B', 'g', 'z', '0', '9', '-', '_', '.', '=', '+', '/', ' ', '\n', '\0', '\x80', '\xff'};
    for (size_t i = 0; i < SESSION_ID_LEN; i++) {
        for (size_t s = 0; s < sizeof subst; s++) {
            strcpy(id, kat_id);
            if (id[i] == subst[s]) continue;
            id[i] = subst[s];
            int rc = session_id_decode(kr, id, SESSION_ID_LEN, now, NULL);
            assert_true(rc == SESSION_ID_MALFORMED || rc == SESSION_ID_BADSIG);
        }
    }
    /* non-canonical last character of the tag ('s' → 't' sets an unused bit) */
    strcpy(id, kat_id);
    id[SESSION_ID_LEN - 1] = 't';
    assert_int_equal(session_id_decode(kr, id, SESSION_ID_LEN, now, NULL), SESSION_ID_MALFORMED);
    /* other prefix */
    strcpy(id, kat_id);
    id[1] = '2';
    assert_int_equal(session_id_decode(kr, id, SESSION_ID_LEN, now, NULL), SESSION_ID_MALFORMED);
    /* well-formed tag that does not match */
    strcpy(id, kat_id);
    memset(id + 76, 'A', 43);
    assert_int_equal(session_id_decode(kr, id, SESSION_ID_LEN, now, NULL), SESSION_ID_BADSIG);
    /* a bit flip in the payload is caught by the MAC */
    strcpy(id, kat_id);
    id[40] = id[40] == 'A' ? 'B' : 'A';
    assert_int_equal(session_id_decode(kr, id, SESSION_ID_LEN, now, NULL), SESSION_ID_BADSIG);
    session_keyring_free(kr);
}

static void authentic_but_unknown_layout(void **state)
{
    session_keyring *kr = session_keyring_new(KEY_A, NULL, NULL, 0);
    session_claims c;
    kat_claims(&c);
    c.proto = SESSION_PROTO_COUNT;
    char id[SESSION_ID_MAX];
    session_id_encode(kr, &c, id);
    assert_int_equal(session_id_decode(kr, id, SESSION_ID_LEN, T0, NULL), SESSION_ID_MALFORMED);
    session_keyring_free(kr);
}

static void claims_init(void **state)
{
    session_claims a, b;
    session_claims_init(&a, T0, 1800);
    session_claims_init(&b, T0, 1800);
    assert_true(a.created == T0 && a.expires == T0 + 1800);
    assert_memory_not_equal(a.nonce, b.nonce, 16);
    assert_int_equal(a.proto, 0);
    assert_int_equal(a.client_caps, 0);
    static const uint8_t zero[16];
    assert_memory_equal(a.subject, zero, 16);
    session_claims_init(&a, UINT64_MAX - 5, 60);
    assert_true(a.expires == UINT64_MAX);
}

static void proto_names(void **state)
{
    assert_string_equal(session_proto_name(0), "2025-03-26");
    assert_string_equal(session_proto_name(1), "2025-06-18");
    assert_string_equal(session_proto_name(2), "2025-11-25");
    assert_null(session_proto_name(3));
    assert_null(session_proto_name(255));
    for (uint8_t i = 0; i < SESSION_PROTO_COUNT; i++)
        assert_int_equal(session_proto_index(session_proto_name(i)), i);
    assert_int_equal(session_proto_index("2024-11-05"), -1);
    assert_int_equal(session_proto_index("2025-11-25 "), -1);
    assert_int_equal(session_proto_index(""), -1);
    assert_int_equal(session_proto_index(NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(known_answer),
        cmocka_unit_test(roundtrip_and_charset),
        cmocka_unit_test(expiry),
        cmocka_unit_test(rotation),
        cmocka_unit_test(keyring_errors),
        cmocka_unit_test(random_keys),
        cmocka_unit_test(malformed),
        cmocka_unit_test(authentic_but_unknown_layout),
        cmocka_unit_test(claims_init),
        cmocka_unit_test(proto_names),
    };
    return cmocka_run_group_tests_name("session_id", tests, NULL, NULL);
}
