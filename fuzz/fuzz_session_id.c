/* fuzz_session_id — session_id_decode with a fixed keyring (a current and a previous key).
 *
 * Input: [mode][rest].
 *   mode bit 0 clear: rest is the id as a client sends it;
 *   mode bit 0 set:   rest's first 75 bytes are taken as the signed part "v1." B64URL(payload)
 *     and the target appends "." and a tag it computes itself (HKDF-SHA256 then HMAC-SHA256, as
 *     session_id.h specifies) with the current key (bit 1 clear) or the previous one: MACs
 *     cannot be forged by mutation, so this is how arbitrary payloads reach the checks after
 *     the MAC.
 * Checks: the return code is one of the four; out is zeroed unless the id is authentic; an
 * authentic id has a known protocol, EXPIRED exactly when now >= expires, and re-encodes with
 * the key that signed it to the very same 119 bytes (one encoding per id); BADSIG exactly when
 * the shape is right but neither key's tag (computed here, independently) matches; decoding
 * with out = NULL gives the same answer. */
#include "session_id.h"
#include "b64.h"
#include "fuzz_util.h"
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <string.h>

#define K0 "fuzz-session-signing-key-current-0123456789"
#define K1 "fuzz-session-signing-key-previous-0123456789"

static session_keyring *ring;      /* K0 signs, K1 verifies */
static session_keyring *ring_k[2]; /* each key alone, to re-encode */
static uint8_t mac_key[2][32];

static void derive(const char *ikm, uint8_t out[32])
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *k = EVP_KDF_CTX_new(kdf);
    EVP_KDF_free(kdf);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, strlen(ikm)),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, "mcp-gateway session-id v1", 25),
        OSSL_PARAM_construct_end(),
    };
    FZ_CHECK(k && EVP_KDF_derive(k, out, 32, params) == 1, "HKDF");
    EVP_KDF_CTX_free(k);
}

static void tag(int key, const char *signed75, char out[44])
{
    uint8_t t[32];
    unsigned tl = 0;
    FZ_CHECK(HMAC(EVP_sha256(), mac_key[key], 32, (const uint8_t *)signed75, 75, t, &tl) && tl == 32, "HMAC");
    FZ_CHECK(b64url_encode(t, 32, out) == 43, "b64url_encode");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char err[128];
    ring = session_keyring_new(K0, " " K1 " ,", err, sizeof err);
    ring_k[0] = session_keyring_new(K0, NULL, err, sizeof err);
    ring_k[1] = session_keyring_new(K1, NULL, err, sizeof err);
    FZ_CHECK(ring && ring_k[0] && ring_k[1], "keyring: %s", err);
    derive(K0, mac_key[0]);
    derive(K1, mac_key[1]);
    /* the independent tag agrees with session_id_encode */
    session_claims c;
    session_claims_init(&c, 1700000000, 3600);
    char id[SESSION_ID_MAX], t[44];
    FZ_CHECK(session_id_encode(ring, &c, id) == SESSION_ID_LEN, "encode");
    tag(0, id, t);
    FZ_CHECK(memcmp(id + 76, t, 43) == 0, "the target's HMAC disagrees with session_id.h's");
    return 0;
}

static int shape_ok(const char *id, size_t len)
{
    uint8_t b[64];
    size_t n;
    return len == SESSION_ID_LEN && !memcmp(id, "v1.", 3) && id[75] == '.' && !b64url_decode(id + 3, 72, b, &n) &&
           n == 54 && !b64url_decode(id + 76, 43, b, &n) && n == 32;
}

static void check(const char *id, size_t len, uint64_t now)
{
    session_claims c;
    memset(&c, 0x5a, sizeof c);
    int rc = session_id_decode(ring, id, len, now, &c);
    FZ_CHECK(rc == SESSION_ID_OK || rc == SESSION_ID_MALFORMED || rc == SESSION_ID_BADSIG || rc == SESSION_ID_EXPIRED,
             "rc %d", rc);
    FZ_CHECK(session_id_decode(ring, id, len, now, NULL) == rc, "answer depends on out");

    int signer = -1;
    if (shape_ok(id, len)) {
        char t[44];
        for (int k = 0; k < 2 && signer < 0; k++) {
            tag(k, id, t);
            if (CRYPTO_memcmp(t, id + 76, 43) == 0) signer = k;
        }
        FZ_CHECK((rc == SESSION_ID_BADSIG) == (signer < 0), "BADSIG (%d) but signer %d", rc, signer);
    } else {
        FZ_CHECK(rc == SESSION_ID_MALFORMED, "bad shape accepted: rc %d", rc);
    }

    if (rc == SESSION_ID_OK || rc == SESSION_ID_EXPIRED) {
        FZ_CHECK(signer >= 0, "authentic without a signer");
        FZ_CHECK(c.proto < SESSION_PROTO_COUNT && session_proto_name(c.proto), "proto %u", c.proto);
        FZ_CHECK((rc == SESSION_ID_EXPIRED) == (now >= c.expires), "expiry");
        char again[SESSION_ID_MAX];
        FZ_CHECK(session_id_encode(ring_k[signer], &c, again) == SESSION_ID_LEN, "re-encode");
        FZ_CHECK(memcmp(again, id, SESSION_ID_LEN) == 0, "re-encoding differs:\n%.*s\n%s", (int)len, id, again);
    } else {
        static const session_claims zero;
        FZ_CHECK(memcmp(&c, &zero, sizeof c) == 0, "out not zeroed on %d", rc);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    uint8_t mode = fz_u8(&in);
    char id[SESSION_ID_MAX + 64];
    const char *p = (const char *)in.p;
    size_t len = in.n;
    if ((mode & 1) && len >= 75) {
        memcpy(id, p, 75);
        id[75] = '.';
        tag(mode & 2 ? 1 : 0, id, id + 76);
        p = id;
        len = SESSION_ID_LEN;
    }
    check(p, len, 1800000000);
    check(p, len, 0);
    check(p, len, UINT64_MAX);
    return 0;
}
