#include "session_id.h"
#include "b64.h"
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SID_PREFIX      "v1."
#define SID_PREFIX_LEN  3
#define SID_PAYLOAD     54
#define SID_PAYLOAD_B64 72                               /* b64url_enc_len(54) */
#define SID_TAG         32
#define SID_TAG_B64     43                               /* b64url_enc_len(32) */
#define SID_SIGNED      (SID_PREFIX_LEN + SID_PAYLOAD_B64) /* 75: the bytes the tag covers */
#define SID_KEY         32
#define SID_HKDF_INFO   "mcp-gateway session-id v1"

_Static_assert(SID_SIGNED + 1 + SID_TAG_B64 == SESSION_ID_LEN, "id length");
_Static_assert(SESSION_ID_LEN < SESSION_ID_MAX, "id fits with its NUL");

struct session_keyring {
    size_t  n;                                       /* keys in use; key[0] signs */
    int     random;
    uint8_t key[1 + SESSION_KEYRING_MAX_PREVIOUS][SID_KEY]; /* derived MAC keys */
};

static const char *const session_protos[SESSION_PROTO_COUNT] = {"2025-03-26", "2025-06-18", "2025-11-25"};

const char *session_proto_name(uint8_t proto)
{
    return proto < SESSION_PROTO_COUNT ? session_protos[proto] : NULL;
}

int session_proto_index(const char *version)
{
    if (!version) return -1;
    for (int i = 0; i < SESSION_PROTO_COUNT; i++)
        if (strcmp(version, session_protos[i]) == 0) return i;
    return -1;
}

int gw_hkdf_sha256(const void *ikm, size_t n, const char *info, uint8_t *out, size_t outlen)
{
    int rc = -1;
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    EVP_KDF_free(kdf);
    if (!kctx) return -1;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, n),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info)),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_KDF_derive(kctx, out, outlen, params) == 1) rc = 0;
    EVP_KDF_CTX_free(kctx);
    return rc;
}

/* mac_key = HKDF-SHA256(ikm, no salt, SID_HKDF_INFO). Returns 0 or -1. */
static int session_derive(const void *ikm, size_t n, uint8_t out[SID_KEY])
{
    return gw_hkdf_sha256(ikm, n, SID_HKDF_INFO, out, SID_KEY);
}

static int session_key_add(session_keyring *kr, const char *k, size_t n, char *err, size_t errlen)
{
    if (n < SESSION_KEY_MIN_LEN) {
        if (kr->n == 0) snprintf(err, errlen, "signing key is shorter than %d bytes", SESSION_KEY_MIN_LEN);
        else snprintf(err, errlen, "previous signing key #%zu is shorter than %d bytes", kr->n, SESSION_KEY_MIN_LEN);
        return -1;
    }
    if (kr->n == 1 + SESSION_KEYRING_MAX_PREVIOUS) {
        snprintf(err, errlen, "more than %d previous signing keys", SESSION_KEYRING_MAX_PREVIOUS);
        return -1;
    }
    if (session_derive(k, n, kr->key[kr->n])) {
        snprintf(err, errlen, "HKDF-SHA256 unavailable");
        return -1;
    }
    kr->n++;
    return 0;
}

session_keyring *session_keyring_new(const char *current, const char *previous_csv, char *err, size_t errlen)
{
    char dummy[1];
    if (!err || !errlen) { err = dummy; errlen = sizeof dummy; }
    session_keyring *kr = calloc(1, sizeof *kr);
    if (!kr) { snprintf(err, errlen, "out of memory"); return NULL; }

    if (current && *current) {
        if (session_key_add(kr, current, strlen(current), err, errlen)) goto fail;
    } else {
        uint8_t rnd[SID_KEY];
        int ok = RAND_bytes(rnd, sizeof rnd) == 1;
        ok = ok && session_key_add(kr, (const char *)rnd, sizeof rnd, err, errlen) == 0;
        OPENSSL_cleanse(rnd, sizeof rnd);
        if (!ok) { snprintf(err, errlen, "cannot generate a random signing key"); goto fail; }
        kr->random = 1;
    }

    for (const char *p = previous_csv; p && *p;) {
        const char *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        const char *s = p, *e = end;
        while (s < e && (*s == ' ' || *s == '\t')) s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
        if (e > s && session_key_add(kr, s, (size_t)(e - s), err, errlen)) goto fail;
        p = *end ? end + 1 : end;
    }
    return kr;
fail:
    session_keyring_free(kr);
    return NULL;
}

void session_keyring_free(session_keyring *kr)
{
    if (!kr) return;
    OPENSSL_cleanse(kr, sizeof *kr);
    free(kr);
}

int session_keyring_is_random(const session_keyring *kr) { return kr->random; }

static void put_be(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v = v << 8 | p[i];
    return v;
}

static int session_mac(const uint8_t key[SID_KEY], const char *signed_part, uint8_t tag[SID_TAG])
{
    unsigned int tl = 0;
    if (!HMAC(EVP_sha256(), key, SID_KEY, (const unsigned char *)signed_part, SID_SIGNED, tag, &tl)) return -1;
    return tl == SID_TAG ? 0 : -1;
}

size_t session_id_encode(const session_keyring *kr, const session_claims *c, char out[SESSION_ID_MAX])
{
    uint8_t p[SID_PAYLOAD] = {0}, tag[SID_TAG];
    put_be(p, c->created, 8);
    put_be(p + 8, c->expires, 8);
    memcpy(p + 16, c->nonce, 16);
    p[32] = c->proto;
    put_be(p + 33, c->client_caps, 4);
    memcpy(p + 37, c->subject, 16);
    /* p[53] reserved = 0 */

    memcpy(out, SID_PREFIX, SID_PREFIX_LEN);
    b64url_encode(p, sizeof p, out + SID_PREFIX_LEN);
    if (session_mac(kr->key[0], out, tag)) { out[0] = '\0'; return 0; }
    out[SID_SIGNED] = '.';
    b64url_encode(tag, sizeof tag, out + SID_SIGNED + 1);
    return SESSION_ID_LEN;
}

int session_id_decode(const session_keyring *kr, const char *id, size_t len, uint64_t now, session_claims *out)
{
    uint8_t p[SID_PAYLOAD], tag[SID_TAG], mac[SID_TAG];
    size_t pl, tl;
    if (out) memset(out, 0, sizeof *out);

    /* Shape first, no crypto: exact length, prefix, separator, strict base64url both sides
     * (b64url_decode rejects any other character and non-canonical trailing bits). */
    if (!id || len != SESSION_ID_LEN || memcmp(id, SID_PREFIX, SID_PREFIX_LEN) != 0 || id[SID_SIGNED] != '.')
        return SESSION_ID_MALFORMED;
    if (b64url_decode(id + SID_PREFIX_LEN, SID_PAYLOAD_B64, p, &pl) || pl != SID_PAYLOAD)
        return SESSION_ID_MALFORMED;
    if (b64url_decode(id + SID_SIGNED + 1, SID_TAG_B64, tag, &tl) || tl != SID_TAG)
        return SESSION_ID_MALFORMED;

    int good = 0;
    for (size_t k = 0; k < kr->n && !good; k++)
        good = session_mac(kr->key[k], id, mac) == 0 && CRYPTO_memcmp(mac, tag, SID_TAG) == 0;
    if (!good) return SESSION_ID_BADSIG;

    /* Authentic; still refuse layouts this version never writes. */
    if (p[53] != 0 || p[32] >= SESSION_PROTO_COUNT) return SESSION_ID_MALFORMED;
    session_claims c;
    c.created = get_be(p, 8);
    c.expires = get_be(p + 8, 8);
    memcpy(c.nonce, p + 16, 16);
    c.proto = p[32];
    c.client_caps = (uint32_t)get_be(p + 33, 4);
    memcpy(c.subject, p + 37, 16);
    if (out) *out = c;
    return now >= c.expires ? SESSION_ID_EXPIRED : SESSION_ID_OK;
}

void session_claims_init(session_claims *c, uint64_t now, uint64_t lifetime_s)
{
    memset(c, 0, sizeof *c);
    c->created = now;
    c->expires = lifetime_s > UINT64_MAX - now ? UINT64_MAX : now + lifetime_s;
    if (RAND_bytes(c->nonce, sizeof c->nonce) != 1) {
        fputs("session_id: RAND_bytes failed\n", stderr);
        abort();
    }
}
