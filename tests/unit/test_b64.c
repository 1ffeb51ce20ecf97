#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>
#include "b64.h"

static void rfc4648_vectors(void **state)
{
    static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *enc[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (size_t i = 0; i < sizeof plain / sizeof *plain; i++) {
        char out[16];
        size_t n = strlen(plain[i]);
        assert_int_equal(b64url_encode(plain[i], n, out), strlen(enc[i]));
        assert_int_equal(b64url_enc_len(n), strlen(enc[i]));
        assert_string_equal(out, enc[i]);
        unsigned char dec[16];
        size_t dl = 99;
        assert_int_equal(b64url_decode(enc[i], strlen(enc[i]), dec, &dl), 0);
        assert_int_equal(dl, n);
        assert_memory_equal(dec, plain[i], n);
    }
}

static void url_alphabet(void **state)
{
    const unsigned char in[] = {0xfb, 0xff};
    char out[8];
    assert_int_equal(b64url_encode(in, 2, out), 3);
    assert_string_equal(out, "-_8");
    unsigned char dec[4];
    size_t dl;
    assert_int_equal(b64url_decode("-_8", 3, dec, &dl), 0);
    assert_int_equal(dl, 2);
    assert_memory_equal(dec, in, 2);
}

static void roundtrip_all_lengths(void **state)
{
    unsigned char in[100], dec[100];
    char enc[140];
    for (size_t i = 0; i < sizeof in; i++) in[i] = (unsigned char)(i * 151 + 7);
    for (size_t n = 0; n <= sizeof in; n++) {
        size_t el = b64url_encode(in, n, enc);
        assert_int_equal(el, b64url_enc_len(n));
        assert_int_equal(strlen(enc), el);
        assert_true(b64url_dec_len(el) == n);
        size_t dl;
        assert_int_equal(b64url_decode(enc, el, dec, &dl), 0);
        assert_int_equal(dl, n);
        assert_memory_equal(dec, in, n);
    }
}

static void rejects(void **state)
{
    unsigned char dec[16];
    size_t dl;
    static const char *bad[] = {
        "Zg==", "Zm8=", "Zg=",         /* padding */
        "Zm+v", "Zm/v",                /* standard alphabet */
        "Zm9 v", "Zm9v\n", " Zg", "Zm\t8", "Zm\r\n8",
        "Z",  "Zm9vY",                 /* length ≡ 1 mod 4 */
        "Zh", "Zm9", "Zm9vYh", "Zm9vYmF", /* non-canonical trailing bits */
        "Zm\xc3\xa9", "Z.", "Zm9v.",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(b64url_decode(bad[i], strlen(bad[i]), dec, &dl), -1);
    /* an embedded NUL counts as a character, and is rejected */
    assert_int_equal(b64url_decode("Zm\0v", 4, dec, &dl), -1);
    /* only n characters are read */
    assert_int_equal(b64url_decode("Zm9v====", 4, dec, &dl), 0);
    assert_int_equal(dl, 3);
    assert_int_equal(b64url_decode(NULL, 0, dec, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rfc4648_vectors),
        cmocka_unit_test(url_alphabet),
        cmocka_unit_test(roundtrip_all_lengths),
        cmocka_unit_test(rejects),
    };
    return cmocka_run_group_tests_name("b64", tests, NULL, NULL);
}
