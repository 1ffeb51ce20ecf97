/* Tests for jwt: keys are generated at test time (RSA 2048, EC P-256, Ed25519, plus a foreign
 * EC key and a small RSA key), exported into a JWKS built here, and tokens are signed here. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "b64.h"
#include "jwt.h"

static struct {
    EVP_PKEY *rsa, *ec, *ed, *ec_foreign, *rsa_small;
    jwk_set *set;
} F;

/* ---- helpers ------------------------------------------------------------------------- */

static char *b64(const void *p, size_t n)
{
    char *s = malloc(b64url_enc_len(n) + 1);
    assert_non_null(s);
    b64url_encode(p, n, s);
    return s;
}

static char *cat(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *cat(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    assert_true(vasprintf(&s, fmt, ap) >= 0);
    va_end(ap);
    return s;
}

static char *bn_b64(EVP_PKEY *k, const char *param, int pad)
{
    BIGNUM *bn = NULL;
    unsigned char buf[1024];
    assert_int_equal(EVP_PKEY_get_bn_param(k, param, &bn), 1);
    int n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
    assert_true(n > 0);
    BN_free(bn);
    return b64(buf, (size_t)n);
}

/* The public JWK of k as a JSON object, with kid and optional alg/use. */
static json_t *jwk_of(EVP_PKEY *k, const char *kid, const char *alg, const char *use)
{
    json_t *o = json_object();
    if (EVP_PKEY_is_a(k, "RSA")) {
        char *n = bn_b64(k, OSSL_PKEY_PARAM_RSA_N, 0), *e = bn_b64(k, OSSL_PKEY_PARAM_RSA_E, 0);
        json_object_set_new(o, "kty", json_string("RSA"));
        json_object_set_new(o, "n", json_string(n));
        json_object_set_new(o, "e", json_string(e));
        free(n);
        free(e);
    } else if (EVP_PKEY_is_a(k, "EC")) {
        char *x = bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_X, 32), *y = bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_Y, 32);
        json_object_set_new(o, "kty", json_string("EC"));
        json_object_set_new(o, "crv", json_string("P-256"));
        json_object_set_new(o, "x", json_string(x));
        json_object_set_new(o, "y", json_string(y));
        free(x);
        free(y);
    } else {
        unsigned char raw[32];
        size_t rl = sizeof raw;
        assert_int_equal(EVP_PKEY_get_raw_public_key(k, raw, &rl), 1);
        char *x = b64(raw, rl);
        json_object_set_new(o, "kty", json_string("OKP"));
        json_object_set_new(o, "crv", json_string("Ed25519"));
        json_object_set_new(o, "x", json_string(x));
        free(x);
    }
    if (kid) json_object_set_new(o, "kid", json_string(kid));
    if (alg) json_object_set_new(o, "alg", json_string(alg));
    if (use) json_object_set_new(o, "use", json_string(use));
    return o;
}

/* Parses {"keys": array} (array stolen); asserts success. */
static jwk_set *set_of(json_t *array)
{
    json_t *doc = json_pack("{s:o}", "keys", array);
    char *s = json_dumps(doc, JSON_COMPACT);
    char err[256] = "";
    jwk_set *set = jwks_parse(s, strlen(s), err, sizeof err);
    if (!set) fail_msg("jwks_parse: %s", err);
    free(s);
    json_decref(doc);
    return set;
}

/* Parses a JWKS text expected to fail; returns 1 when it did, with a reason. */
static int jwks_refused(const char *text, size_t len)
{
    char err[256] = "";
    jwk_set *s = jwks_parse(text, len, err, sizeof err);
    if (s) {
        jwks_unref(s);
        return 0;
    }
    assert_true(err[0] != '\0');
    return 1;
}

/* Signs header.payload (JSON texts, base64url-encoded here) with k under sigalg:
 * RS*, PS*, ES* (JOSE raw R||S), EdDSA; wrong variants "ES256-DER" (the DER form),
 * "PS256-SALTMAX" (salt longer than the hash), "PS256-MGF1SHA1" (MGF1 with another hash);
 * HS256 (HMAC keyed with hkey), or none (empty signature). Returns a malloc'd token. */
static char *sign_raw(const char *sigalg, EVP_PKEY *k, const void *hkey, size_t hkeylen, const char *hdr, const char *pl)
{
    char *h = b64(hdr, strlen(hdr)), *p = b64(pl, strlen(pl));
    char *in = cat("%s.%s", h, p);
    free(h);
    free(p);
    unsigned char sig[1024];
    size_t sl = 0;
    if (strcmp(sigalg, "none") == 0) {
        sl = 0;
    } else if (strcmp(sigalg, "HS256") == 0) {
        unsigned int ul = 0;
        assert_non_null(HMAC(EVP_sha256(), hkey, (int)hkeylen, (unsigned char *)in, strlen(in), sig, &ul));
        sl = ul;
    } else {
        const EVP_MD *md = strcmp(sigalg, "EdDSA") == 0 ? NULL
                         : strstr(sigalg, "256")        ? EVP_sha256()
                         : strstr(sigalg, "384")        ? EVP_sha384()
                                                        : EVP_sha512();
        EVP_MD_CTX *mc = EVP_MD_CTX_new();
        EVP_PKEY_CTX *pc = NULL;
        assert_int_equal(EVP_DigestSignInit(mc, &pc, md, NULL, k), 1);
        if (sigalg[0] == 'P') {
            assert_true(EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) > 0);
            int salt = strstr(sigalg, "SALTMAX") ? RSA_PSS_SALTLEN_MAX : RSA_PSS_SALTLEN_DIGEST;
            assert_true(EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, salt) > 0);
            assert_true(EVP_PKEY_CTX_set_rsa_mgf1_md(pc, strstr(sigalg, "MGF1SHA1") ? EVP_sha1() : md) > 0);
        }
        sl = sizeof sig;
        assert_int_equal(EVP_DigestSign(mc, sig, &sl, (unsigned char *)in, strlen(in)), 1);
        EVP_MD_CTX_free(mc);
        if (sigalg[0] == 'E' && sigalg[1] == 'S' && !strstr(sigalg, "DER")) {
            const unsigned char *dp = sig;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &dp, (long)sl);
            assert_non_null(es);
            int clen = strstr(sigalg, "384") ? 48 : 32;
            assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, clen), clen);
            assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + clen, clen), clen);
            ECDSA_SIG_free(es);
            sl = 2 * (size_t)clen;
        }
    }
    char *s = b64(sig, sl);
    char *tok = cat("%s.%s", in, s);
    free(in);
    free(s);
    return tok;
}

#define PAYLOAD "{\"sub\":\"alice\",\"iss\":\"https://idp.example\",\"aud\":\"mcp\",\"exp\":4102444800,\"scope\":\"tools:read\"}"

/* A token with header {"alg":alg,"kid":kid} (no kid when NULL), signed by k under sigalg. */
static char *sign(const char *sigalg, EVP_PKEY *k, const char *alg, const char *kid, const char *payload)
{
    char *hdr = kid ? cat("{\"alg\":\"%s\",\"kid\":\"%s\",\"typ\":\"JWT\"}", alg, kid)
                    : cat("{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
    char *tok = sign_raw(sigalg, k, NULL, 0, hdr, payload ? payload : PAYLOAD);
    free(hdr);
    return tok;
}

/* jwt_verify on a NUL-terminated token against set; frees the token; asserts the result code.
 * On JWT_OK the result is checked and released. */
static void expect(jwk_set *set, char *tok, int want, const char *err_has)
{
    jwt t;
    char err[256] = "";
    int rc = jwt_verify(tok, strlen(tok), set, &t, err, sizeof err);
    if (rc != want) fail_msg("token %.60s...: got %d (%s), want %d", tok, rc, err, want);
    if (err_has && !strstr(err, err_has)) fail_msg("error \"%s\" lacks \"%s\"", err, err_has);
    if (rc == JWT_OK) {
        assert_true(json_is_object(t.header));
        assert_true(json_is_object(t.payload));
    } else {
        assert_null(t.header);
        assert_null(t.payload);
        assert_true(err[0] != '\0');
    }
    jwt_free(&t);
    free(tok);
}

static int setup(void **state)
{
    F.rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    F.rsa_small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    F.ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    F.ec_foreign = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    F.ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!F.rsa || !F.rsa_small || !F.ec || !F.ec_foreign || !F.ed) return -1;

    json_t *keys = json_array();
    json_array_append_new(keys, jwk_of(F.rsa, "rsa1", NULL, "sig"));
    json_array_append_new(keys, jwk_of(F.ec, "ec1", "ES256", NULL));
    json_array_append_new(keys, jwk_of(F.ed, "ed1", "EdDSA", "sig"));
    json_array_append_new(keys, jwk_of(F.rsa, "rsa384", "RS384", NULL));
    json_array_append_new(keys, jwk_of(F.rsa_small, "rsa1024", NULL, NULL));
    /* Skipped: encryption keys, unsupported types and curves, algs that are not ours. */
    json_array_append_new(keys, jwk_of(F.rsa, "enc1", NULL, "enc"));
    json_array_append_new(keys, jwk_of(F.rsa, "oaep", "RSA-OAEP", NULL));
    json_array_append_new(keys, jwk_of(F.ec, "ec-as-rs", "RS256", NULL));
    json_array_append_new(keys, json_pack("{s:s,s:s,s:s}", "kty", "oct", "kid", "hmac", "k", "c2VjcmV0"));
    json_array_append_new(keys, json_pack("{s:s,s:s,s:s,s:s,s:s}", "kty", "EC", "crv", "P-521", "kid", "p521", "x",
                                          "AA", "y", "AA"));
    json_array_append_new(keys, json_pack("{s:s,s:s,s:s,s:s}", "kty", "OKP", "crv", "X25519", "kid", "x25519", "x", "AA"));
    json_t *ops = jwk_of(F.ed, "sign-only", NULL, NULL);
    json_object_set_new(ops, "key_ops", json_pack("[s]", "sign"));
    json_array_append_new(keys, ops);
    F.set = set_of(keys);
    return 0;
}

static int teardown(void **state)
{
    jwks_unref(F.set);
    EVP_PKEY_free(F.rsa);
    EVP_PKEY_free(F.rsa_small);
    EVP_PKEY_free(F.ec);
    EVP_PKEY_free(F.ec_foreign);
    EVP_PKEY_free(F.ed);
    return 0;
}

/* ---- JWKS ---------------------------------------------------------------------------- */

static void jwks_contents(void **state)
{
    assert_int_equal(jwks_count(F.set), 5);
    assert_true(jwks_has_kid(F.set, "rsa1"));
    assert_true(jwks_has_kid(F.set, "ec1"));
    assert_true(jwks_has_kid(F.set, "ed1"));
    assert_true(jwks_has_kid(F.set, "rsa384"));
    assert_true(jwks_has_kid(F.set, "rsa1024"));
    const char *skipped[] = {"enc1", "oaep", "ec-as-rs", "hmac", "p521", "x25519", "sign-only", "nope", ""};
    for (size_t i = 0; i < sizeof skipped / sizeof *skipped; i++) assert_false(jwks_has_kid(F.set, skipped[i]));

    /* Several holders: each drops its own reference; the last one frees (valgrind checks). */
    jwks_ref(F.set);
    jwks_ref(F.set);
    jwks_unref(F.set);
    jwks_unref(F.set);
    assert_int_equal(jwks_count(F.set), 5);
    jwks_unref(NULL);

    /* All keys skipped: an empty set, against which nothing verifies. */
    jwk_set *empty = set_of(json_pack("[{s:s,s:s}]", "kty", "oct", "k", "AA"));
    assert_int_equal(jwks_count(empty), 0);
    expect(empty, sign("RS256", F.rsa, "RS256", "rsa1", NULL), JWT_UNKNOWN_KID, NULL);
    expect(empty, sign("RS256", F.rsa, "RS256", NULL, NULL), JWT_UNKNOWN_KID, NULL);
    jwks_unref(empty);
}

static void jwks_refusals(void **state)
{
#define REFUSED(s) assert_true(jwks_refused((s), strlen(s)))
    REFUSED("");
    REFUSED("not json");
    REFUSED("[]");
    REFUSED("{}");
    REFUSED("{\"keys\":{}}");
    REFUSED("{\"keys\":[1]}");
    REFUSED("{\"keys\":[{\"n\":\"AQAB\"}]}");                          /* no kty */
    REFUSED("{\"keys\":[{\"kty\":7}]}");                               /* kty not a string */
    REFUSED("{\"keys\":[{\"kty\":\"EC\",\"x\":\"AA\",\"y\":\"AA\"}]}"); /* EC without crv */
    REFUSED("{\"keys\":[],\"keys\":[]}");                              /* duplicate member */
    REFUSED("{\"keys\":[{\"kty\":\"RSA\",\"e\":\"AQAB\"}]}");          /* no n */

    /* Valid keys with one parameter broken. */
    json_t *good = jwk_of(F.rsa, "r", NULL, NULL);
    struct { json_t *base; const char *member, *value; } cases[] = {
        {good, "n", "AQAB=="},           /* padding */
        {good, "n", "ab+c"},             /* not the url alphabet */
        {good, "n", ""},                 /* empty */
        {good, "n", "AAAA"},             /* even (zero) modulus */
        {good, "e", "AQA"},              /* even exponent 256 */
        {good, "e", "AQ"},               /* exponent 1 */
        {good, "e", "AQAAAAAAAAAB"},     /* 9 bytes */
        {good, "kid", NULL},             /* kid not a string (set to 5 below) */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_t *k = json_deep_copy(cases[i].base);
        json_object_set_new(k, cases[i].member, cases[i].value ? json_string(cases[i].value) : json_integer(5));
        json_t *doc = json_pack("{s:[o]}", "keys", k);
        char *s = json_dumps(doc, JSON_COMPACT);
        if (!jwks_refused(s, strlen(s))) fail_msg("accepted JWK with %s = %s", cases[i].member, cases[i].value);
        free(s);
        json_decref(doc);
    }
    json_decref(good);

    /* EC: x one byte short; a point off the curve. */
    json_t *ec = jwk_of(F.ec, "e", NULL, NULL);
    char *x = strdup(json_string_value(json_object_get(ec, "x")));
    json_t *k = json_deep_copy(ec);
    unsigned char raw[33];
    size_t rl;
    assert_int_equal(b64url_decode(x, strlen(x), raw, &rl), 0);
    char *shortx = b64(raw, 31);
    json_object_set_new(k, "x", json_string(shortx));
    json_t *doc = json_pack("{s:[o]}", "keys", k);
    char *s = json_dumps(doc, JSON_COMPACT);
    assert_true(jwks_refused(s, strlen(s)));
    free(s);
    json_decref(doc);
    free(shortx);
    raw[31] ^= 1;
    char *offx = b64(raw, 32);
    k = json_deep_copy(ec);
    json_object_set_new(k, "x", json_string(offx));
    doc = json_pack("{s:[o]}", "keys", k);
    s = json_dumps(doc, JSON_COMPACT);
    assert_true(jwks_refused(s, strlen(s)));
    free(s);
    json_decref(doc);
    free(offx);
    free(x);
    json_decref(ec);

    /* Caps: 65 keys; more than 1 MiB. */
    json_t *many = json_array();
    for (int i = 0; i < JWKS_MAX_KEYS + 1; i++) json_array_append_new(many, json_pack("{s:s}", "kty", "oct"));
    doc = json_pack("{s:o}", "keys", many);
    s = json_dumps(doc, JSON_COMPACT);
    assert_true(jwks_refused(s, strlen(s)));
    free(s);
    json_decref(doc);
    size_t big = JWKS_MAX_BYTES + 1;
    char *huge = malloc(big + 1);
    memset(huge, ' ', big);
    memcpy(huge, "{\"keys\":[]}", 11);
    huge[big] = '\0';
    char err[128] = "";
    assert_null(jwks_parse(huge, big, err, sizeof err));
    assert_non_null(strstr(err, "larger"));
    free(huge);
#undef REFUSED
}

/* A document of exactly JWKS_MAX_BYTES is accepted. */
static void jwks_cap_boundary(void **state)
{
    size_t len = JWKS_MAX_BYTES;
    char *text = malloc(len);
    memset(text, ' ', len);
    memcpy(text, "{\"keys\":[]}", 11);
    jwk_set *s = jwks_parse(text, len, NULL, 0);
    assert_non_null(s);
    assert_int_equal(jwks_count(s), 0);
    jwks_unref(s);
    free(text);
}

/* ---- signatures ---------------------------------------------------------------------- */

static void accepts_each_alg(void **state)
{
    static const struct { const char *alg, *kid; int which; } ok[] = {
        {"RS256", "rsa1", 0}, {"RS384", "rsa1", 0}, {"RS512", "rsa1", 0}, {"PS256", "rsa1", 0},
        {"PS384", "rsa1", 0}, {"PS512", "rsa1", 0}, {"ES256", "ec1", 1},  {"EdDSA", "ed1", 2},
        {"RS384", "rsa384", 0},
    };
    EVP_PKEY *keys[] = {F.rsa, F.ec, F.ed};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        char *tok = sign(ok[i].alg, keys[ok[i].which], ok[i].alg, ok[i].kid, NULL);
        jwt t;
        char err[256] = "";
        int rc = jwt_verify(tok, strlen(tok), F.set, &t, err, sizeof err);
        if (rc != JWT_OK) fail_msg("%s/%s: %d %s", ok[i].alg, ok[i].kid, rc, err);
        assert_string_equal(t.alg, ok[i].alg);
        assert_string_equal(t.kid, ok[i].kid);
        assert_string_equal(json_string_value(json_object_get(t.payload, "sub")), "alice");
        assert_string_equal(json_string_value(json_object_get(t.header, "typ")), "JWT");
        jwt_free(&t);
        assert_null(t.payload);
        jwt_free(&t); /* harmless twice */
        free(tok);
    }
}

static void kidless_tokens(void **state)
{
    /* Without a kid: the only key that fits alg. RS256 fits rsa1 only (rsa384 is bound to
     * RS384, rsa1024 is too small); EdDSA fits ed1 only. */
    jwt t;
    char *tok = sign("RS256", F.rsa, "RS256", NULL, NULL);
    assert_int_equal(jwt_verify(tok, strlen(tok), F.set, &t, NULL, 0), JWT_OK);
    assert_string_equal(t.kid, "");
    jwt_free(&t);
    free(tok);
    expect(F.set, sign("EdDSA", F.ed, "EdDSA", NULL, NULL), JWT_OK, NULL);

    /* Two EC keys and no kid: ambiguous. A kid shared by two keys: each is tried. */
    json_t *keys = json_array();
    json_array_append_new(keys, jwk_of(F.ec, "same", NULL, NULL));
    json_array_append_new(keys, jwk_of(F.ec_foreign, "same", NULL, NULL));
    jwk_set *two = set_of(keys);
    expect(two, sign("ES256", F.ec, "ES256", NULL, NULL), JWT_UNKNOWN_KID, "2 keys");
    expect(two, sign("ES256", F.ec, "ES256", "same", NULL), JWT_OK, NULL);
    expect(two, sign("ES256", F.ec_foreign, "ES256", "same", NULL), JWT_OK, NULL);
    jwks_unref(two);
    expect(NULL, sign("ES256", F.ec, "ES256", "ec1", NULL), JWT_UNKNOWN_KID, NULL);
}

static void refuses_none_and_hmac(void **state)
{
    expect(F.set, sign_raw("none", NULL, NULL, 0, "{\"alg\":\"none\"}", PAYLOAD), JWT_BAD_ALG, "alg none not allowed");
    expect(F.set, sign_raw("none", NULL, NULL, 0, "{\"alg\":\"none\",\"kid\":\"rsa1\"}", PAYLOAD), JWT_BAD_ALG, NULL);
    expect(F.set, sign_raw("none", NULL, NULL, 0, "{\"alg\":\"None\"}", PAYLOAD), JWT_BAD_ALG, NULL);
    expect(F.set, sign_raw("none", NULL, NULL, 0, "{\"alg\":\"\"}", PAYLOAD), JWT_BAD_ALG, NULL);
    /* "none" with a real signature attached changes nothing. */
    expect(F.set, sign("RS256", F.rsa, "none", "rsa1", NULL), JWT_BAD_ALG, NULL);
    expect(F.set, sign("RS256", F.rsa, "rs256", "rsa1", NULL), JWT_BAD_ALG, NULL);
    expect(F.set, sign("RS256", F.rsa, "ES512", "rsa1", NULL), JWT_BAD_ALG, NULL);

    /* Key confusion: HMAC keyed with the RSA public key, as a verifier that feeds the JWK's
     * key material to HS256 would compute it. */
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(bio, F.rsa), 1);
    char *pem;
    long pemlen = BIO_get_mem_data(bio, &pem);
    expect(F.set, sign_raw("HS256", NULL, pem, (size_t)pemlen, "{\"alg\":\"HS256\",\"kid\":\"rsa1\"}", PAYLOAD),
           JWT_BAD_ALG, "alg HS256 not allowed");
    expect(F.set, sign_raw("HS256", NULL, pem, (size_t)pemlen, "{\"alg\":\"HS256\"}", PAYLOAD), JWT_BAD_ALG, NULL);
    BIO_free(bio);
    /* Non-printable alg text is quoted safely. */
    expect(F.set, sign_raw("none", NULL, NULL, 0, "{\"alg\":\"HS\\u0001\\n\"}", PAYLOAD), JWT_BAD_ALG, "HS??");
    expect(F.set, sign_raw("none", NULL, NULL, 0, "{\"alg\":\"a\\\"b\\\\c\"}", PAYLOAD), JWT_BAD_ALG, "alg a?b?c not");
    expect(F.set, sign("RS256", F.rsa, "RS256", "k\\\"x", NULL), JWT_UNKNOWN_KID, "unknown kid k?x");
}

static void wrong_keys(void **state)
{
    expect(F.set, sign("RS256", F.rsa, "RS256", "nope", NULL), JWT_UNKNOWN_KID, "unknown kid nope");
    expect(F.set, sign("RS256", F.rsa, "RS256", "enc1", NULL), JWT_UNKNOWN_KID, NULL); /* use=enc was skipped */
    /* A foreign key signing under a known kid. */
    expect(F.set, sign("ES256", F.ec_foreign, "ES256", "ec1", NULL), JWT_BAD_SIGNATURE, "does not verify");
    expect(F.set, sign("EdDSA", F.ed, "EdDSA", "ed1", NULL), JWT_OK, NULL);
    /* alg / kty mismatch, both ways, and an EdDSA token naming the RSA key. */
    expect(F.set, sign("RS256", F.rsa, "RS256", "ec1", NULL), JWT_BAD_ALG, "needs a key of type RSA");
    expect(F.set, sign("ES256", F.ec, "ES256", "rsa1", NULL), JWT_BAD_ALG, NULL);
    expect(F.set, sign("EdDSA", F.ed, "EdDSA", "rsa1", NULL), JWT_BAD_ALG, NULL);
    /* The key says RS384: RS256 and PS384 under its kid are refused. */
    expect(F.set, sign("RS256", F.rsa, "RS256", "rsa384", NULL), JWT_BAD_ALG, "key is for RS384");
    expect(F.set, sign("PS384", F.rsa, "PS384", "rsa384", NULL), JWT_BAD_ALG, NULL);
    /* RSA below 2048 bits. */
    expect(F.set, sign("RS256", F.rsa_small, "RS256", "rsa1024", NULL), JWT_BAD_ALG, "1024 bits");
    /* PKCS#1 v1.5 signature presented as PSS and the reverse. */
    expect(F.set, sign("RS256", F.rsa, "PS256", "rsa1", NULL), JWT_BAD_SIGNATURE, NULL);
    expect(F.set, sign("PS256", F.rsa, "RS256", "rsa1", NULL), JWT_BAD_SIGNATURE, NULL);
    /* PSS with another salt length or MGF1 hash. */
    expect(F.set, sign("PS256-SALTMAX", F.rsa, "PS256", "rsa1", NULL), JWT_BAD_SIGNATURE, NULL);
    expect(F.set, sign("PS256-MGF1SHA1", F.rsa, "PS256", "rsa1", NULL), JWT_BAD_SIGNATURE, NULL);
    /* Hash mismatch. */
    expect(F.set, sign("RS512", F.rsa, "RS256", "rsa1", NULL), JWT_BAD_SIGNATURE, NULL);
    /* ECDSA in DER rather than JOSE's R||S. */
    expect(F.set, sign("ES256-DER", F.ec, "ES256", "ec1", NULL), JWT_BAD_SIGNATURE, NULL);
}

/* Replaces segment i (0..2) of tok with the base64url of text, or with raw when text is NULL. */
static char *swap_segment(const char *tok, int i, const char *text, const char *raw)
{
    const char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
    char *seg = text ? b64(text, strlen(text)) : strdup(raw);
    char *out = i == 0 ? cat("%s%s", seg, d1)
              : i == 1 ? cat("%.*s.%s%s", (int)(d1 - tok), tok, seg, d2)
                       : cat("%.*s.%s", (int)(d2 - tok), tok, seg);
    free(seg);
    return out;
}

static void tampering(void **state)
{
    char *good = sign("RS256", F.rsa, "RS256", "rsa1", NULL);
    /* Payload changed after signing. */
    expect(F.set, swap_segment(good, 1, "{\"sub\":\"mallory\",\"exp\":4102444800}", NULL), JWT_BAD_SIGNATURE, NULL);
    /* Header changed after signing (alg still fits). */
    expect(F.set, swap_segment(good, 0, "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", NULL), JWT_BAD_SIGNATURE, NULL);
    /* One signature bit flipped; signature truncated. */
    char *t = strdup(good);
    char *last = t + strlen(t) - 5;
    *last = *last == 'A' ? 'B' : 'A';
    expect(F.set, t, JWT_BAD_SIGNATURE, NULL);
    t = strdup(good);
    t[strlen(t) - 6] = '\0'; /* 342 → 336 characters: still base64url, 252 bytes */
    expect(F.set, t, JWT_BAD_SIGNATURE, "does not verify");
    free(good);

    good = sign("EdDSA", F.ed, "EdDSA", "ed1", NULL);
    expect(F.set, swap_segment(good, 1, "{\"sub\":\"alice\",\"exp\":4102444801}", NULL), JWT_BAD_SIGNATURE, NULL);
    free(good);
    good = sign("ES256", F.ec, "ES256", "ec1", NULL);
    expect(F.set, swap_segment(good, 1, "{\"sub\":\"alice\",\"exp\":4102444801}", NULL), JWT_BAD_SIGNATURE, NULL);
    /* ECDSA: R = S = 0, and all-ones (>= n). */
    char zero[64] = {0}, ones[64];
    memset(ones, 0xff, sizeof ones);
    char *z = b64(zero, sizeof zero), *o = b64(ones, sizeof ones);
    expect(F.set, swap_segment(good, 2, NULL, z), JWT_BAD_SIGNATURE, NULL);
    expect(F.set, swap_segment(good, 2, NULL, o), JWT_BAD_SIGNATURE, NULL);
    free(z);
    free(o);
    free(good);
}

static void malformed(void **state)
{
    char *good = sign("RS256", F.rsa, "RS256", "rsa1", NULL);
    const char *d1 = strchr(good, '.'), *d2 = strchr(d1 + 1, '.');
    /* Segment counts. */
    expect(F.set, cat("%.*s", (int)(d2 - good), good), JWT_MALFORMED, "three");
    expect(F.set, cat("%s.%s", good, d2 + 1), JWT_MALFORMED, "three");
    expect(F.set, cat("%s.", good), JWT_MALFORMED, NULL);
    expect(F.set, cat("%s", "abc"), JWT_MALFORMED, NULL);
    expect(F.set, cat("%s", ".."), JWT_MALFORMED, NULL);
    expect(F.set, cat("%s", ""), JWT_MALFORMED, "empty");
    expect(F.set, cat(".%s", d1 + 1), JWT_MALFORMED, NULL);
    /* Base64: padding, '+' and '/', whitespace, a lone trailing character. */
    expect(F.set, cat("%.*s=%s", (int)(d1 - good), good, d1), JWT_MALFORMED, "base64url");
    expect(F.set, cat("%.*s==%s", (int)(d2 - good), good, d2), JWT_MALFORMED, "base64url");
    expect(F.set, cat("%s=", good), JWT_MALFORMED, "base64url");
    char *t = strdup(good);
    t[d1 - good + 3] = '+';
    expect(F.set, t, JWT_MALFORMED, "base64url");
    t = strdup(good);
    t[d2 - good + 3] = '/';
    expect(F.set, t, JWT_MALFORMED, "base64url");
    expect(F.set, cat("%.*s %s", (int)(d1 - good), good, d1), JWT_MALFORMED, NULL);
    size_t sl = strlen(d2 + 1);
    expect(F.set, cat("%s%.*s", good, (int)((5 - sl % 4) % 4), "AAA"), JWT_MALFORMED, NULL); /* length = 1 mod 4 */

    /* Header: not JSON, not an object, no alg, alg not a string, crit, kid wrong. */
    expect(F.set, swap_segment(good, 0, "not json", NULL), JWT_MALFORMED, "header");
    expect(F.set, swap_segment(good, 0, "[\"RS256\"]", NULL), JWT_MALFORMED, "header");
    expect(F.set, swap_segment(good, 0, "\"RS256\"", NULL), JWT_MALFORMED, "header");
    expect(F.set, swap_segment(good, 0, "{\"kid\":\"rsa1\"}", NULL), JWT_MALFORMED, "no alg");
    expect(F.set, swap_segment(good, 0, "{\"alg\":256}", NULL), JWT_MALFORMED, "no alg");
    expect(F.set, swap_segment(good, 0, "{\"alg\":\"RS256\",\"alg\":\"RS256\"}", NULL), JWT_MALFORMED, NULL);
    expect(F.set, swap_segment(good, 0, "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"crit\":[\"b64\"],\"b64\":false}", NULL),
           JWT_MALFORMED, "crit");
    expect(F.set, swap_segment(good, 0, "{\"alg\":\"RS256\",\"kid\":5}", NULL), JWT_MALFORMED, "kid");
    char longkid[200];
    memset(longkid, 'k', sizeof longkid - 1);
    longkid[sizeof longkid - 1] = '\0';
    expect(F.set, sign("RS256", F.rsa, "RS256", longkid, NULL), JWT_MALFORMED, "kid");
    /* Empty signature under a real alg. */
    expect(F.set, cat("%.*s.", (int)(d2 - good), good), JWT_MALFORMED, "empty signature");

    /* Validly signed but the payload is not a JSON object. */
    expect(F.set, sign("RS256", F.rsa, "RS256", "rsa1", "[\"sub\",\"alice\"]"), JWT_MALFORMED, "payload");
    expect(F.set, sign("RS256", F.rsa, "RS256", "rsa1", "not json"), JWT_MALFORMED, "payload");
    expect(F.set, sign("RS256", F.rsa, "RS256", "rsa1", "{\"exp\":1,\"exp\":2}"), JWT_MALFORMED, "payload");
    free(good);

    /* Size: a signed token over JWT_MAX_LEN is refused; one just within it verifies. */
    char *pad = malloc(JWT_MAX_LEN);
    memset(pad, 'x', JWT_MAX_LEN - 1);
    pad[JWT_MAX_LEN - 1] = '\0';
    char *pl = cat("{\"exp\":4102444800,\"pad\":\"%s\"}", pad);
    char *big = sign("EdDSA", F.ed, "EdDSA", "ed1", pl);
    assert_true(strlen(big) > JWT_MAX_LEN);
    expect(F.set, big, JWT_MALFORMED, "longer than");
    free(pl);
    /* Padding chosen so that the token is just within JWT_MAX_LEN characters. */
    char *probe = sign("EdDSA", F.ed, "EdDSA", "ed1", "{\"exp\":4102444800,\"pad\":\"\"}");
    size_t base = strlen(probe);
    free(probe);
    size_t room = (JWT_MAX_LEN - base) / 4 * 3;
    pad[room] = '\0';
    pl = cat("{\"exp\":4102444800,\"pad\":\"%s\"}", pad);
    big = sign("EdDSA", F.ed, "EdDSA", "ed1", pl);
    assert_true(strlen(big) <= JWT_MAX_LEN);
    expect(F.set, big, JWT_OK, NULL);
    free(pl);
    free(pad);

    /* The token need not be NUL-terminated: only len bytes are read. */
    char *tok = sign("ES256", F.ec, "ES256", "ec1", NULL);
    size_t n = strlen(tok);
    char *copy = malloc(n);
    memcpy(copy, tok, n);
    jwt jt;
    assert_int_equal(jwt_verify(copy, n, F.set, &jt, NULL, 0), JWT_OK);
    jwt_free(&jt);
    assert_int_equal(jwt_verify(copy, n - 1, F.set, &jt, NULL, 0), JWT_MALFORMED); /* 85 signature characters */
    assert_int_equal(jwt_verify(NULL, 0, F.set, &jt, NULL, 0), JWT_MALFORMED);
    free(copy);
    free(tok);
}

/* ---- claims -------------------------------------------------------------------------- */

static int claims(const char *payload, const jwt_policy *p, int64_t now)
{
    jwt t = {0};
    json_error_t je;
    t.payload = json_loads(payload, 0, &je);
    if (!t.payload) fail_msg("bad test JSON %s: %s", payload, je.text);
    char err[256] = "";
    int rc = jwt_check_claims(&t, p, now, err, sizeof err);
    if (rc != JWT_CLAIMS_OK) assert_true(err[0] != '\0');
    jwt_free(&t);
    return rc;
}

static void claims_time(void **state)
{
    jwt_policy p = {0};
    assert_int_equal(claims("{\"exp\":1000}", &p, 999), JWT_CLAIMS_OK);
    assert_int_equal(claims("{\"exp\":1000}", &p, 1000), JWT_EXPIRED);
    assert_int_equal(claims("{\"exp\":1000}", &p, 5000), JWT_EXPIRED);
    assert_int_equal(claims("{\"exp\":1000.5}", &p, 1000), JWT_CLAIMS_OK);
    assert_int_equal(claims("{\"exp\":1000.5}", &p, 1001), JWT_EXPIRED);
    p.leeway_s = 60;
    assert_int_equal(claims("{\"exp\":1000}", &p, 1030), JWT_CLAIMS_OK);
    assert_int_equal(claims("{\"exp\":1000}", &p, 1059), JWT_CLAIMS_OK);
    assert_int_equal(claims("{\"exp\":1000}", &p, 1060), JWT_EXPIRED);
    p.leeway_s = -100; /* treated as 0 */
    assert_int_equal(claims("{\"exp\":1000}", &p, 999), JWT_CLAIMS_OK);
    assert_int_equal(claims("{\"exp\":1000}", &p, 1000), JWT_EXPIRED);
    p.leeway_s = 0;

    assert_int_equal(claims("{}", &p, 0), JWT_MISSING_EXP);
    assert_int_equal(claims("{\"exp\":null}", &p, 0), JWT_MISSING_EXP);
    assert_int_equal(claims("{\"exp\":\"4102444800\"}", &p, 0), JWT_MISSING_EXP);
    assert_int_equal(claims("{\"exp\":9223372036854775807}", &p, INT64_MAX - 1), JWT_CLAIMS_OK);

    assert_int_equal(claims("{\"exp\":5000,\"nbf\":2000}", &p, 1000), JWT_NOT_YET_VALID);
    assert_int_equal(claims("{\"exp\":5000,\"nbf\":2000}", &p, 1999), JWT_NOT_YET_VALID);
    assert_int_equal(claims("{\"exp\":5000,\"nbf\":2000}", &p, 2000), JWT_CLAIMS_OK);
    assert_int_equal(claims("{\"exp\":5000,\"nbf\":\"2000\"}", &p, 3000), JWT_NOT_YET_VALID);
    p.leeway_s = 60;
    assert_int_equal(claims("{\"exp\":5000,\"nbf\":2000}", &p, 1940), JWT_CLAIMS_OK);
    assert_int_equal(claims("{\"exp\":5000,\"nbf\":2000}", &p, 1939), JWT_NOT_YET_VALID);
    /* Expiry is checked before nbf. */
    assert_int_equal(claims("{\"exp\":1000,\"nbf\":2000}", &p, 1500), JWT_EXPIRED);

    jwt none = {0};
    assert_int_equal(jwt_check_claims(&none, &p, 0, NULL, 0), JWT_MALFORMED);
}

static void claims_issuer_audience(void **state)
{
    const char *iss[] = {"https://a.example", "https://b.example"};
    const char *aud[] = {"mcp", "https://gw.example/mcp"};
    jwt_policy p = {.issuers = iss, .n_issuers = 2};
    assert_int_equal(claims("{\"exp\":9e9,\"iss\":\"https://b.example\"}", &p, 0), JWT_CLAIMS_OK);
    assert_int_equal(claims("{\"exp\":9e9,\"iss\":\"https://c.example\"}", &p, 0), JWT_BAD_ISSUER);
    assert_int_equal(claims("{\"exp\":9e9,\"iss\":\"https://a.example/\"}", &p, 0), JWT_BAD_ISSUER);
    assert_int_equal(claims("{\"exp\":9e9,\"iss\":\"https://A.example\"}", &p, 0), JWT_BAD_ISSUER);
    assert_int_equal(claims("{\"exp\":9e9,\"iss\":\"https://a.exampl\"}", &p, 0), JWT_BAD_ISSUER);
    assert_int_equal(claims("{\"exp\":9e9}", &p, 0), JWT_BAD_ISSUER);
    assert_int_equal(claims("{\"exp\":9e9,\"iss\":[\"https://a.example\"]}", &p, 0), JWT_BAD_ISSUER);

    p = (jwt_policy){.audiences = aud, .n_audiences = 2};
    assert_int_equal(claims("{\"exp\":9e9,\"aud\":\"mcp\"}", &p, 0), JWT_CLAIMS_OK);
    assert_int_equal(claims("{\"exp\":9e9,\"aud\":\"other\"}", &p, 0), JWT_BAD_AUDIENCE);
    assert_int_equal(claims("{\"exp\":9e9,\"aud\":[\"other\",\"https://gw.example/mcp\"]}", &p, 0), JWT_CLAIMS_OK);
    assert_int_equal(claims("{\"exp\":9e9,\"aud\":[\"other\",\"more\"]}", &p, 0), JWT_BAD_AUDIENCE);
    assert_int_equal(claims("{\"exp\":9e9,\"aud\":[]}", &p, 0), JWT_BAD_AUDIENCE);
    assert_int_equal(claims("{\"exp\":9e9,\"aud\":[\"mcp\",7]}", &p, 0), JWT_BAD_AUDIENCE);
    assert_int_equal(claims("{\"exp\":9e9,\"aud\":\"mcp2\"}", &p, 0), JWT_BAD_AUDIENCE);
    assert_int_equal(claims("{\"exp\":9e9}", &p, 0), JWT_BAD_AUDIENCE);
    assert_int_equal(claims("{\"exp\":9e9,\"aud\":{\"mcp\":1}}", &p, 0), JWT_BAD_AUDIENCE);

    /* Unconfigured lists are not checked. */
    p = (jwt_policy){0};
    assert_int_equal(claims("{\"exp\":9e9}", &p, 0), JWT_CLAIMS_OK);
    assert_int_equal(claims("{\"exp\":9e9,\"iss\":5,\"aud\":5}", &p, 0), JWT_CLAIMS_OK);
}

static void claims_scopes(void **state)
{
    const char *need[] = {"tools:read", "tools:call"};
    jwt_policy p = {.required_scopes = need, .n_required_scopes = 2};
    assert_int_equal(claims("{\"exp\":9e9,\"scope\":\"openid tools:call  tools:read\"}", &p, 0), JWT_CLAIMS_OK);
    assert_int_equal(claims("{\"exp\":9e9,\"scope\":\"tools:read\"}", &p, 0), JWT_INSUFFICIENT_SCOPE);
    assert_int_equal(claims("{\"exp\":9e9,\"scope\":\"tools:reader tools:call\"}", &p, 0), JWT_INSUFFICIENT_SCOPE);
    assert_int_equal(claims("{\"exp\":9e9,\"scope\":\"tools:read,tools:call\"}", &p, 0), JWT_INSUFFICIENT_SCOPE);
    assert_int_equal(claims("{\"exp\":9e9,\"scope\":\"TOOLS:READ tools:call\"}", &p, 0), JWT_INSUFFICIENT_SCOPE);
    assert_int_equal(claims("{\"exp\":9e9,\"scope\":\"\"}", &p, 0), JWT_INSUFFICIENT_SCOPE);
    assert_int_equal(claims("{\"exp\":9e9,\"scp\":[\"tools:call\",\"tools:read\"]}", &p, 0), JWT_CLAIMS_OK);
    assert_int_equal(claims("{\"exp\":9e9,\"scp\":[\"tools:call\"]}", &p, 0), JWT_INSUFFICIENT_SCOPE);
    assert_int_equal(claims("{\"exp\":9e9,\"scp\":[\"tools:call tools:read\"]}", &p, 0), JWT_INSUFFICIENT_SCOPE);
    assert_int_equal(claims("{\"exp\":9e9,\"scp\":\"tools:read tools:call\"}", &p, 0), JWT_CLAIMS_OK);
    assert_int_equal(claims("{\"exp\":9e9,\"scp\":[1,2]}", &p, 0), JWT_INSUFFICIENT_SCOPE);
    assert_int_equal(claims("{\"exp\":9e9,\"scope\":7}", &p, 0), JWT_INSUFFICIENT_SCOPE);
    assert_int_equal(claims("{\"exp\":9e9}", &p, 0), JWT_INSUFFICIENT_SCOPE);
    /* "scope" wins over "scp" when both are present. */
    assert_int_equal(claims("{\"exp\":9e9,\"scope\":\"tools:read\",\"scp\":[\"tools:read\",\"tools:call\"]}", &p, 0),
                     JWT_INSUFFICIENT_SCOPE);
    /* No required scopes: nothing to check. */
    p.n_required_scopes = 0;
    assert_int_equal(claims("{\"exp\":9e9}", &p, 0), JWT_CLAIMS_OK);

    /* The whole path: a verified token, then its claims. */
    const char *iss[] = {"https://idp.example"}, *aud[] = {"mcp"}, *read[] = {"tools:read"};
    jwt_policy full = {iss, 1, aud, 1, read, 1, 30};
    char *tok = sign("PS256", F.rsa, "PS256", "rsa1", NULL);
    jwt t;
    char err[128];
    assert_int_equal(jwt_verify(tok, strlen(tok), F.set, &t, err, sizeof err), JWT_OK);
    assert_int_equal(jwt_check_claims(&t, &full, (int64_t)time(NULL), err, sizeof err), JWT_CLAIMS_OK);
    assert_int_equal(jwt_check_claims(&t, &full, 4102444800 + 30, err, sizeof err), JWT_EXPIRED);
    full.required_scopes = need;
    full.n_required_scopes = 2;
    assert_int_equal(jwt_check_claims(&t, &full, 0, err, sizeof err), JWT_INSUFFICIENT_SCOPE);
    assert_non_null(strstr(err, "tools:call"));
    jwt_free(&t);
    free(tok);
}

/* ---- timing (prints, asserts nothing about speed) ------------------------------------ */

static void verify_speed(void **state)
{
    const char *env = getenv("JWT_BENCH_ITERS");
    int iters = env && atoi(env) > 0 ? atoi(env) : 2000;
    static const struct { const char *alg, *kid; int which; } cases[] = {
        {"RS256", "rsa1", 0}, {"PS256", "rsa1", 0}, {"ES256", "ec1", 1}, {"EdDSA", "ed1", 2}};
    EVP_PKEY *keys[] = {F.rsa, F.ec, F.ed};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        char *tok = sign(cases[c].alg, keys[cases[c].which], cases[c].alg, cases[c].kid, NULL);
        size_t n = strlen(tok);
        jwt t;
        assert_int_equal(jwt_verify(tok, n, F.set, &t, NULL, 0), JWT_OK);
        jwt_free(&t);
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (int i = 0; i < iters; i++) {
            jwt_verify(tok, n, F.set, &t, NULL, 0);
            jwt_free(&t);
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
        double us = ((double)(b.tv_sec - a.tv_sec) * 1e6 + (double)(b.tv_nsec - a.tv_nsec) / 1e3) / iters;
        print_message("jwt_verify %s: %.1f us per token (%d iterations, %zu-byte token)\n", cases[c].alg, us, iters, n);
        free(tok);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(jwks_contents),
        cmocka_unit_test(jwks_refusals),
        cmocka_unit_test(jwks_cap_boundary),
        cmocka_unit_test(accepts_each_alg),
        cmocka_unit_test(kidless_tokens),
        cmocka_unit_test(refuses_none_and_hmac),
        cmocka_unit_test(wrong_keys),
        cmocka_unit_test(tampering),
        cmocka_unit_test(malformed),
        cmocka_unit_test(claims_time),
        cmocka_unit_test(claims_issuer_audience),
        cmocka_unit_test(claims_scopes),
        cmocka_unit_test(verify_speed),
    };
    return cmocka_run_group_tests_name("jwt", tests, setup, teardown);
}
