#include "jwt.h"
#include "b64.h"
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Key kinds, by what an algorithm needs. */
enum { KEY_RSA, KEY_P256, KEY_P384, KEY_ED25519 };
static const char *const jwt_key_names[] = {"RSA", "EC P-256", "EC P-384", "OKP Ed25519"};

typedef struct jwt_alg {
    const char *name;
    int kind;                   /* KEY_* */
    const EVP_MD *(*md)(void);  /* NULL for EdDSA (no separate digest) */
    int pss;                    /* RSA: 1 = PSS, 0 = PKCS#1 v1.5 */
} jwt_alg;

static const jwt_alg jwt_algs[] = {
    {"RS256", KEY_RSA, EVP_sha256, 0},  {"RS384", KEY_RSA, EVP_sha384, 0},
    {"RS512", KEY_RSA, EVP_sha512, 0},  {"PS256", KEY_RSA, EVP_sha256, 1},
    {"PS384", KEY_RSA, EVP_sha384, 1},  {"PS512", KEY_RSA, EVP_sha512, 1},
    {"ES256", KEY_P256, EVP_sha256, 0}, {"ES384", KEY_P384, EVP_sha384, 0},
    {"EdDSA", KEY_ED25519, NULL, 0},
};
#define JWT_NALGS (sizeof jwt_algs / sizeof jwt_algs[0])

typedef struct jwk {
    EVP_PKEY *pkey;
    char *kid;  /* owned; NULL when the JWK has none */
    int kind;   /* KEY_* */
    int alg;    /* index into jwt_algs of the JWK's "alg", -1 when it names none */
    int bits;   /* RSA modulus bits; 0 otherwise */
} jwk;

struct jwk_set {
    atomic_uint refs;
    size_t n;     /* usable keys in keys[] */
    jwk keys[];   /* room for every entry of the document; the first n are used */
};

/* Bytes of an RSA modulus we decode at most: JWT_RSA_MAX_BITS plus one leading zero byte
 * some producers emit (RFC 7518 §6.3.1.1 forbids it; it is harmless). */
#define RSA_N_MAX (JWT_RSA_MAX_BITS / 8 + 1)
#define RSA_E_MAX 8   /* exponents above 64 bits are refused */
#define EC_COORD_MAX 48
#define DER_SIG_MAX 128 /* ECDSA-Sig-Value for P-384: at most 2 + 2 * (2 + 49) = 104 bytes */

static int jwt_fail(char *err, size_t errlen, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int jwt_fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Copies at most 32 bytes of untrusted s into out[48] for a message: printable ASCII kept
 * except '"' and '\\' (messages may end up in a quoted header parameter), anything else as
 * '?', "..." when cut. */
static const char *jwt_quote(const char *s, size_t n, char out[48])
{
    size_t o = 0;
    for (size_t i = 0; i < n && o < 32; i++)
        out[o++] = s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' && s[i] != '\\' ? s[i] : '?';
    if (n > 32) { memcpy(out + o, "...", 3); o += 3; }
    out[o] = '\0';
    return out;
}

static int jwt_alg_find(const char *name, size_t n)
{
    for (size_t i = 0; i < JWT_NALGS; i++)
        if (strlen(jwt_algs[i].name) == n && memcmp(jwt_algs[i].name, name, n) == 0) return (int)i;
    return -1;
}

/* ---- JWKS ---------------------------------------------------------------------------- */

static void jwks_free(jwk_set *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) {
        EVP_PKEY_free(s->keys[i].pkey);
        free(s->keys[i].kid);
    }
    free(s);
}

void jwks_ref(jwk_set *s) { atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed); }

void jwks_unref(jwk_set *s)
{
    if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) jwks_free(s);
}

size_t jwks_count(const jwk_set *s) { return s ? s->n : 0; }

int jwks_has_kid(const jwk_set *s, const char *kid)
{
    for (size_t i = 0; s && kid && i < s->n; i++)
        if (s->keys[i].kid && strcmp(s->keys[i].kid, kid) == 0) return 1;
    return 0;
}

/* Decodes the base64url string member name of o into out (room for cap bytes).
 * Returns 0, 1 when it decodes to more than cap bytes, -1 with err set otherwise. */
static int jwk_b64(const json_t *o, const char *name, unsigned char *out, size_t cap, size_t *outlen, size_t idx,
                   char *err, size_t errlen)
{
    const json_t *v = json_object_get(o, name); /* borrowed from o */
    if (!json_is_string(v)) return jwt_fail(err, errlen, -1, "keys[%zu]: \"%s\" missing or not a string", idx, name);
    size_t n = json_string_length(v);
    if (b64url_dec_len(n) > cap) return 1;
    if (b64url_decode(json_string_value(v), n, out, outlen) || *outlen == 0)
        return jwt_fail(err, errlen, -1, "keys[%zu]: \"%s\" is empty or not base64url", idx, name);
    return 0;
}

/* A public key of type ("RSA", "EC", "ED25519") from provider parameters; NULL on failure. */
static EVP_PKEY *jwk_fromdata(const char *type, OSSL_PARAM *params)
{
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (!ctx || EVP_PKEY_fromdata_init(ctx) <= 0 || EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    return pkey;
}

/* Returns 0 (k->pkey set), 1 (skip), -1 (err set). */
static int jwk_rsa(const json_t *o, jwk *k, size_t idx, char *err, size_t errlen)
{
    unsigned char nb[RSA_N_MAX], eb[RSA_E_MAX];
    size_t nl, el;
    int r = jwk_b64(o, "n", nb, sizeof nb, &nl, idx, err, errlen);
    if (r) return r; /* 1: modulus above JWT_RSA_MAX_BITS, skipped */
    r = jwk_b64(o, "e", eb, sizeof eb, &el, idx, err, errlen);
    if (r) return r < 0 ? r : jwt_fail(err, errlen, -1, "keys[%zu]: RSA exponent longer than 64 bits", idx);

    int rc = -1;
    BIGNUM *n = BN_bin2bn(nb, (int)nl, NULL), *e = BN_bin2bn(eb, (int)el, NULL);
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    if (!n || !e) { jwt_fail(err, errlen, -1, "out of memory"); goto done; }
    k->bits = BN_num_bits(n);
    if (k->bits > JWT_RSA_MAX_BITS) { rc = 1; goto done; }
    if (!BN_is_odd(n) || k->bits < 512) {
        jwt_fail(err, errlen, -1, "keys[%zu]: invalid RSA modulus", idx);
        goto done;
    }
    if (!BN_is_odd(e) || BN_num_bits(e) < 2) {
        jwt_fail(err, errlen, -1, "keys[%zu]: invalid RSA exponent", idx);
        goto done;
    }
    bld = OSSL_PARAM_BLD_new();
    if (!bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) || !(params = OSSL_PARAM_BLD_to_param(bld))) {
        jwt_fail(err, errlen, -1, "out of memory");
        goto done;
    }
    if (!(k->pkey = jwk_fromdata("RSA", params))) {
        jwt_fail(err, errlen, -1, "keys[%zu]: OpenSSL refused the RSA key", idx);
        goto done;
    }
    rc = 0;
done:
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return rc;
}

static int jwk_ec(const json_t *o, jwk *k, size_t idx, char *err, size_t errlen)
{
    size_t clen = k->kind == KEY_P256 ? 32 : 48, xl, yl;
    unsigned char pt[1 + 2 * EC_COORD_MAX];
    int r = jwk_b64(o, "x", pt + 1, clen, &xl, idx, err, errlen);
    if (r == 0) r = jwk_b64(o, "y", pt + 1 + clen, clen, &yl, idx, err, errlen);
    if (r < 0) return r;
    if (r > 0 || xl != clen || yl != clen)
        return jwt_fail(err, errlen, -1, "keys[%zu]: EC x and y must be %zu bytes each", idx, clen);
    pt[0] = 0x04; /* uncompressed point */
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                         k->kind == KEY_P256 ? "prime256v1" : "secp384r1", 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt, 1 + 2 * clen),
        OSSL_PARAM_construct_end(),
    };
    k->pkey = jwk_fromdata("EC", params);
    EVP_PKEY_CTX *ctx = k->pkey ? EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL) : NULL;
    int ok = ctx && EVP_PKEY_public_check(ctx) == 1; /* on the curve, not the point at infinity */
    EVP_PKEY_CTX_free(ctx);
    if (!ok) {
        EVP_PKEY_free(k->pkey);
        k->pkey = NULL;
        return jwt_fail(err, errlen, -1, "keys[%zu]: invalid EC public key", idx);
    }
    return 0;
}

static int jwk_ed25519(const json_t *o, jwk *k, size_t idx, char *err, size_t errlen)
{
    unsigned char x[32];
    size_t xl;
    int r = jwk_b64(o, "x", x, sizeof x, &xl, idx, err, errlen);
    if (r < 0) return r;
    if (r > 0 || xl != sizeof x) return jwt_fail(err, errlen, -1, "keys[%zu]: Ed25519 x must be 32 bytes", idx);
    if (!(k->pkey = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, x, sizeof x)))
        return jwt_fail(err, errlen, -1, "keys[%zu]: invalid Ed25519 public key", idx);
    return 0;
}

/* The optional member name of o as a string: 0 (*out = value or NULL when absent), -1 when
 * present but not a string. */
static int jwk_str(const json_t *o, const char *name, const char **out)
{
    const json_t *v = json_object_get(o, name); /* borrowed from o */
    *out = json_string_value(v);
    return v && !*out ? -1 : 0;
}

/* Parses entry idx of "keys" into *k. Returns 0 (usable), 1 (skipped), -1 (err set). */
static int jwk_parse(const json_t *o, jwk *k, size_t idx, char *err, size_t errlen)
{
    const char *kty, *crv, *use, *alg, *kid;
    if (!json_is_object(o)) return jwt_fail(err, errlen, -1, "keys[%zu] is not an object", idx);
    if (jwk_str(o, "kty", &kty) || !kty) return jwt_fail(err, errlen, -1, "keys[%zu]: kty missing or not a string", idx);
    if (jwk_str(o, "crv", &crv) || jwk_str(o, "use", &use) || jwk_str(o, "alg", &alg) || jwk_str(o, "kid", &kid))
        return jwt_fail(err, errlen, -1, "keys[%zu]: crv, use, alg and kid must be strings", idx);

    if (use && strcmp(use, "sig") != 0) return 1;
    const json_t *ops = json_object_get(o, "key_ops"); /* borrowed from o */
    if (ops) {
        if (!json_is_array(ops)) return jwt_fail(err, errlen, -1, "keys[%zu]: key_ops is not an array", idx);
        int verify = 0;
        for (size_t i = 0; i < json_array_size(ops); i++) {
            const char *op = json_string_value(json_array_get(ops, i));
            if (op && strcmp(op, "verify") == 0) verify = 1;
        }
        if (!verify) return 1;
    }
    if (kid && strlen(kid) >= JWT_KID_MAX) return 1;

    if (strcmp(kty, "RSA") == 0) k->kind = KEY_RSA;
    else if (strcmp(kty, "EC") == 0 && crv && strcmp(crv, "P-256") == 0) k->kind = KEY_P256;
    else if (strcmp(kty, "EC") == 0 && crv && strcmp(crv, "P-384") == 0) k->kind = KEY_P384;
    else if (strcmp(kty, "OKP") == 0 && crv && strcmp(crv, "Ed25519") == 0) k->kind = KEY_ED25519;
    else if (strcmp(kty, "EC") == 0 && !crv) return jwt_fail(err, errlen, -1, "keys[%zu]: EC key without crv", idx);
    else return 1;

    k->alg = -1;
    if (alg) {
        k->alg = jwt_alg_find(alg, strlen(alg));
        if (k->alg < 0 || jwt_algs[k->alg].kind != k->kind) return 1;
    }

    int r = k->kind == KEY_RSA ? jwk_rsa(o, k, idx, err, errlen)
          : k->kind == KEY_ED25519 ? jwk_ed25519(o, k, idx, err, errlen)
          : jwk_ec(o, k, idx, err, errlen);
    if (r) return r;
    if (kid && !(k->kid = strdup(kid))) {
        EVP_PKEY_free(k->pkey);
        k->pkey = NULL;
        return jwt_fail(err, errlen, -1, "out of memory");
    }
    return 0;
}

jwk_set *jwks_parse(const char *json, size_t len, char *err, size_t errlen)
{
    if (len > JWKS_MAX_BYTES) {
        jwt_fail(err, errlen, 0, "JWKS document larger than %d bytes", JWKS_MAX_BYTES);
        return NULL;
    }
    jwk_set *s = NULL;
    json_error_t je;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!doc) {
        jwt_fail(err, errlen, 0, "JWKS is not JSON: %s (line %d)", je.text, je.line);
        goto fail;
    }
    const json_t *keys = json_object_get(doc, "keys"); /* borrowed from doc */
    if (!json_is_object(doc) || !json_is_array(keys)) {
        jwt_fail(err, errlen, 0, "JWKS is not an object with a \"keys\" array");
        goto fail;
    }
    size_t n = json_array_size(keys);
    if (n > JWKS_MAX_KEYS) {
        jwt_fail(err, errlen, 0, "JWKS has %zu keys, more than %d", n, JWKS_MAX_KEYS);
        goto fail;
    }
    if (!(s = calloc(1, sizeof *s + n * sizeof s->keys[0]))) {
        jwt_fail(err, errlen, 0, "out of memory");
        goto fail;
    }
    atomic_init(&s->refs, 1);
    ERR_set_mark();
    for (size_t i = 0; i < n; i++) {
        jwk k = {0};
        int r = jwk_parse(json_array_get(keys, i), &k, i, err, errlen);
        if (r < 0) {
            ERR_pop_to_mark();
            goto fail;
        }
        if (r == 0) s->keys[s->n++] = k;
    }
    ERR_pop_to_mark(); /* leave nothing of ours on the thread's OpenSSL error queue */
    json_decref(doc);
    return s;
fail:
    json_decref(doc);
    jwks_free(s);
    return NULL;
}

/* ---- JWS ----------------------------------------------------------------------------- */

/* Whether alg a fits key k; when not, the reason in why. */
static int jwt_alg_fits(const jwt_alg *a, const jwk *k, char *why, size_t whylen)
{
    if (a->kind != k->kind)
        return jwt_fail(why, whylen, 0, "alg %s needs a key of type %s, not %s", a->name,
                        jwt_key_names[a->kind], jwt_key_names[k->kind]);
    if (k->kind == KEY_RSA && k->bits < JWT_RSA_MIN_BITS)
        return jwt_fail(why, whylen, 0, "RSA key of %d bits, fewer than %d", k->bits, JWT_RSA_MIN_BITS);
    if (k->alg >= 0 && &jwt_algs[k->alg] != a)
        return jwt_fail(why, whylen, 0, "alg %s, but the key is for %s", a->name, jwt_algs[k->alg].name);
    return 1;
}

/* JOSE ECDSA signature R||S (2 * clen bytes) → DER ECDSA-Sig-Value in der[DER_SIG_MAX].
 * Returns the DER length, or 0 on failure. */
static size_t jwt_ecdsa_der(const unsigned char *sig, size_t clen, unsigned char der[DER_SIG_MAX])
{
    size_t dl = 0;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, (int)clen, NULL), *s = BN_bin2bn(sig + clen, (int)clen, NULL);
    if (es && r && s && ECDSA_SIG_set0(es, r, s)) {
        r = s = NULL; /* now owned by es */
        int need = i2d_ECDSA_SIG(es, NULL);
        unsigned char *p = der;
        if (need > 0 && need <= DER_SIG_MAX && i2d_ECDSA_SIG(es, &p) == need) dl = (size_t)need;
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return dl;
}

/* Verifies sig over msg with key k under alg a: JWT_OK, JWT_BAD_SIGNATURE or JWT_ERROR. */
static int jwt_sig_verify(const jwt_alg *a, const jwk *k, const char *msg, size_t msglen, const unsigned char *sig,
                          size_t siglen)
{
    unsigned char der[DER_SIG_MAX];
    if (a->kind == KEY_P256 || a->kind == KEY_P384) {
        size_t clen = a->kind == KEY_P256 ? 32 : 48;
        if (siglen != 2 * clen) return JWT_BAD_SIGNATURE;
        if (!(siglen = jwt_ecdsa_der(sig, clen, der))) return JWT_ERROR;
        sig = der;
    } else if (a->kind == KEY_ED25519) {
        if (siglen != 64) return JWT_BAD_SIGNATURE;
    } else if (siglen != (size_t)EVP_PKEY_get_size(k->pkey)) {
        return JWT_BAD_SIGNATURE;
    }

    int rc = JWT_ERROR;
    const EVP_MD *md = a->md ? a->md() : NULL;
    EVP_PKEY_CTX *pc = NULL; /* owned by mc */
    EVP_MD_CTX *mc = EVP_MD_CTX_new();
    if (!mc || EVP_DigestVerifyInit(mc, &pc, md, NULL, k->pkey) != 1) goto done;
    if (a->kind == KEY_RSA && a->pss) {
        if (EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) <= 0 ||
            EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST) <= 0 || /* exactly the hash length */
            EVP_PKEY_CTX_set_rsa_mgf1_md(pc, md) <= 0)
            goto done;
    } else if (a->kind == KEY_RSA && EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) <= 0) {
        goto done;
    }
    rc = EVP_DigestVerify(mc, sig, siglen, (const unsigned char *)msg, msglen) == 1 ? JWT_OK : JWT_BAD_SIGNATURE;
done:
    EVP_MD_CTX_free(mc);
    return rc;
}

/* Decodes the JSON object in the base64url-decoded bytes p[0..n); NULL if it is not one. */
static json_t *jwt_json_object(const unsigned char *p, size_t n)
{
    json_error_t je;
    json_t *v = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES, &je);
    if (v && !json_is_object(v)) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

int jwt_verify(const char *token, size_t len, const jwk_set *keys, jwt *out, char *err, size_t errlen)
{
    char q[48];
    memset(out, 0, sizeof *out);
    if (!token || len == 0) return jwt_fail(err, errlen, JWT_MALFORMED, "empty token");
    if (len > JWT_MAX_LEN) return jwt_fail(err, errlen, JWT_MALFORMED, "token longer than %d bytes", JWT_MAX_LEN);

    /* Shape: exactly two dots, header and payload non-empty. The signature may be empty here,
     * so that an "alg":"none" token is reported as such below. */
    const char *end = token + len;
    const char *d1 = memchr(token, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', (size_t)(end - d1 - 1)) : NULL;
    if (!d2 || memchr(d2 + 1, '.', (size_t)(end - d2 - 1)))
        return jwt_fail(err, errlen, JWT_MALFORMED, "token is not three dot-separated segments");
    size_t hl = (size_t)(d1 - token), pl = (size_t)(d2 - d1 - 1), sl = (size_t)(end - d2 - 1);
    if (hl == 0 || pl == 0) return jwt_fail(err, errlen, JWT_MALFORMED, "empty header or payload");

    /* All three segments decoded into one block; they hold fewer bytes than the token. */
    unsigned char *blk = malloc(b64url_dec_len(hl) + b64url_dec_len(pl) + b64url_dec_len(sl) + 1);
    if (!blk) return jwt_fail(err, errlen, JWT_ERROR, "out of memory");
    unsigned char *hb = blk, *pb = hb + b64url_dec_len(hl), *sb = pb + b64url_dec_len(pl);
    size_t hn, pn, sn;
    json_t *header = NULL, *payload = NULL;
    int rc;
    if (b64url_decode(token, hl, hb, &hn) || b64url_decode(d1 + 1, pl, pb, &pn) || b64url_decode(d2 + 1, sl, sb, &sn)) {
        rc = jwt_fail(err, errlen, JWT_MALFORMED, "a segment is not base64url");
        goto done;
    }
    if (!(header = jwt_json_object(hb, hn))) {
        rc = jwt_fail(err, errlen, JWT_MALFORMED, "header is not a JSON object");
        goto done;
    }

    const json_t *jalg = json_object_get(header, "alg"); /* borrowed from header, as are the next */
    if (!json_is_string(jalg)) {
        rc = jwt_fail(err, errlen, JWT_MALFORMED, "header has no alg");
        goto done;
    }
    int ai = jwt_alg_find(json_string_value(jalg), json_string_length(jalg));
    if (ai < 0) {
        rc = jwt_fail(err, errlen, JWT_BAD_ALG, "alg %s not allowed",
                      jwt_quote(json_string_value(jalg), json_string_length(jalg), q));
        goto done;
    }
    const jwt_alg *a = &jwt_algs[ai];
    if (json_object_get(header, "crit")) {
        rc = jwt_fail(err, errlen, JWT_MALFORMED, "crit header not supported");
        goto done;
    }
    const json_t *jkid = json_object_get(header, "kid");
    if (jkid && (!json_is_string(jkid) || json_string_length(jkid) >= JWT_KID_MAX)) {
        rc = jwt_fail(err, errlen, JWT_MALFORMED, "kid is not a string of fewer than %d bytes", JWT_KID_MAX);
        goto done;
    }
    const char *kid = json_string_value(jkid);
    if (sn == 0) {
        rc = jwt_fail(err, errlen, JWT_MALFORMED, "empty signature");
        goto done;
    }

    /* Candidate keys: with a kid, every key with it that fits alg; without, all that fit. */
    const jwk *cand[JWKS_MAX_KEYS];
    size_t nc = 0, named = 0;
    char why[128] = "";
    for (size_t i = 0; keys && i < keys->n; i++) {
        const jwk *k = &keys->keys[i];
        if (kid && (!k->kid || strcmp(k->kid, kid) != 0)) continue;
        named++;
        if (jwt_alg_fits(a, k, why, sizeof why)) cand[nc++] = k;
    }
    if (kid && named == 0) {
        rc = jwt_fail(err, errlen, JWT_UNKNOWN_KID, "unknown kid %s", jwt_quote(kid, strlen(kid), q));
        goto done;
    }
    if (kid && nc == 0) {
        rc = jwt_fail(err, errlen, JWT_BAD_ALG, "%s", why);
        goto done;
    }
    if (!kid && nc != 1) {
        rc = jwt_fail(err, errlen, JWT_UNKNOWN_KID, "token has no kid and %zu keys fit alg %s", nc, a->name);
        goto done;
    }

    ERR_set_mark();
    rc = JWT_BAD_SIGNATURE;
    for (size_t i = 0; i < nc && rc == JWT_BAD_SIGNATURE; i++)
        rc = jwt_sig_verify(a, cand[i], token, (size_t)(d2 - token), sb, sn);
    ERR_pop_to_mark(); /* a failed verification leaves errors on the thread's queue */
    if (rc != JWT_OK) {
        jwt_fail(err, errlen, rc, rc == JWT_ERROR ? "signature verification failed inside OpenSSL"
                                                  : "signature does not verify");
        goto done;
    }

    if (!(payload = jwt_json_object(pb, pn))) {
        rc = jwt_fail(err, errlen, JWT_MALFORMED, "payload is not a JSON object");
        goto done;
    }
    out->header = header;
    out->payload = payload;
    header = payload = NULL;
    if (kid) memcpy(out->kid, kid, strlen(kid) + 1);
    memcpy(out->alg, a->name, strlen(a->name) + 1);
    rc = JWT_OK;
done:
    json_decref(header);
    json_decref(payload);
    free(blk);
    return rc;
}

void jwt_free(jwt *t)
{
    if (!t) return;
    json_decref(t->header);
    json_decref(t->payload);
    memset(t, 0, sizeof *t);
}

/* ---- Claims -------------------------------------------------------------------------- */

/* Whether the JSON string v equals one of list[0..n). */
static int jwt_str_in(const json_t *v, const char *const *list, size_t n)
{
    const char *s = json_string_value(v);
    size_t sl = json_string_length(v);
    for (size_t i = 0; s && i < n; i++)
        if (strlen(list[i]) == sl && memcmp(list[i], s, sl) == 0) return 1;
    return 0;
}

/* Whether scope appears as a whole word in the space-separated list s[0..n). */
static int jwt_scope_in(const char *s, size_t n, const char *scope)
{
    size_t want = strlen(scope);
    for (size_t i = 0; i < n;) {
        while (i < n && s[i] == ' ') i++;
        size_t j = i;
        while (j < n && s[j] != ' ') j++;
        if (j > i && j - i == want && memcmp(s + i, scope, want) == 0) return 1;
        i = j;
    }
    return 0;
}

/* Whether the granted-scope claim v (a string or an array of strings) contains scope. */
static int jwt_scope_granted(const json_t *v, const char *scope)
{
    if (json_is_string(v)) return jwt_scope_in(json_string_value(v), json_string_length(v), scope);
    for (size_t i = 0; i < json_array_size(v); i++)
        if (jwt_str_in(json_array_get(v, i), &scope, 1)) return 1;
    return 0;
}

static int64_t jwt_sat_add(int64_t a, int64_t b) /* b >= 0 */
{
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

/* Whether now >= v + leeway (leeway >= 0) for the JSON number v: exact (saturating) for
 * integers, in doubles for fractional times. */
static int jwt_reached(int64_t now, const json_t *v, int64_t leeway)
{
    if (json_is_integer(v)) return now >= jwt_sat_add(json_integer_value(v), leeway);
    return (double)now >= json_real_value(v) + (double)leeway;
}

int jwt_check_claims(const jwt *t, const jwt_policy *p, int64_t now, char *err, size_t errlen)
{
    if (!t || !json_is_object(t->payload)) return jwt_fail(err, errlen, JWT_MALFORMED, "no claims");
    const json_t *c = t->payload;
    int64_t leeway = p->leeway_s > 0 ? p->leeway_s : 0;

    const json_t *exp = json_object_get(c, "exp"); /* borrowed from the payload, as are the next */
    if (!exp) return jwt_fail(err, errlen, JWT_MISSING_EXP, "token has no exp");
    if (!json_is_number(exp)) return jwt_fail(err, errlen, JWT_MISSING_EXP, "exp is not a number");
    if (jwt_reached(now, exp, leeway)) return jwt_fail(err, errlen, JWT_EXPIRED, "token expired");

    const json_t *nbf = json_object_get(c, "nbf");
    if (nbf && !json_is_number(nbf)) return jwt_fail(err, errlen, JWT_NOT_YET_VALID, "nbf is not a number");
    if (nbf && !jwt_reached(jwt_sat_add(now, leeway), nbf, 0))
        return jwt_fail(err, errlen, JWT_NOT_YET_VALID, "token not valid yet (nbf)");

    if (p->n_issuers) {
        const json_t *iss = json_object_get(c, "iss");
        if (!json_is_string(iss)) return jwt_fail(err, errlen, JWT_BAD_ISSUER, "iss missing or not a string");
        if (!jwt_str_in(iss, p->issuers, p->n_issuers)) return jwt_fail(err, errlen, JWT_BAD_ISSUER, "issuer not accepted");
    }

    if (p->n_audiences) {
        const json_t *aud = json_object_get(c, "aud");
        int ok = 0;
        if (json_is_string(aud)) {
            ok = jwt_str_in(aud, p->audiences, p->n_audiences);
        } else if (json_is_array(aud)) {
            for (size_t i = 0; i < json_array_size(aud); i++) {
                const json_t *v = json_array_get(aud, i);
                if (!json_is_string(v)) return jwt_fail(err, errlen, JWT_BAD_AUDIENCE, "aud holds a non-string");
                ok = ok || jwt_str_in(v, p->audiences, p->n_audiences);
            }
        } else {
            return jwt_fail(err, errlen, JWT_BAD_AUDIENCE, "aud missing or not a string or array");
        }
        if (!ok) return jwt_fail(err, errlen, JWT_BAD_AUDIENCE, "audience not accepted");
    }

    if (p->n_required_scopes) {
        const json_t *g = json_object_get(c, "scope");
        if (!g) g = json_object_get(c, "scp");
        if (g && !json_is_string(g) && !json_is_array(g))
            return jwt_fail(err, errlen, JWT_INSUFFICIENT_SCOPE, "scope claim is neither a string nor an array");
        for (size_t i = 0; i < p->n_required_scopes; i++) {
            if (!g || !jwt_scope_granted(g, p->required_scopes[i])) {
                char q[48];
                const char *s = p->required_scopes[i];
                return jwt_fail(err, errlen, JWT_INSUFFICIENT_SCOPE, "scope %s not granted", jwt_quote(s, strlen(s), q));
            }
        }
    }
    return JWT_CLAIMS_OK;
}
