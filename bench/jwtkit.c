/* jwtkit — keys, tokens and the JWT micro-benchmark of bench/run.sh.
 *
 *   jwtkit keygen DIR                   RSA-2048, P-256 and Ed25519 keys: DIR/{rs256,es256,eddsa}.pem
 *                                       (private) and DIR/jwks.json (the public keys, kids
 *                                       bench-rs256, bench-es256, bench-eddsa)
 *   jwtkit mint DIR ALG ISS AUD TTL     prints a token signed with DIR's key for ALG (RS256, ES256,
 *                                       EdDSA): iss, aud, sub "bench-user", iat, exp = now + TTL
 *   jwtkit bench DIR ISS AUD [SECONDS]  times the gateway's own code (build/libgw.a, src/jwt.h):
 *                                       jwks_parse; per algorithm jwt_verify (cold: decode, JSON,
 *                                       signature) and jwt_verify + jwt_check_claims; and the
 *                                       verified-token cache hit of src/auth.c's auth_check
 *                                       (Bearer prefix, SHA-256 of the token, slot, memcmp, exp
 *                                       check), replicated here because the cache is private
 *                                       to auth.c. Prints one JSON object. */
#include "b64.h"
#include "jwt.h"

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static void die(const char *m)
{
    fprintf(stderr, "jwtkit: %s\n", m);
    exit(2);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *const algs[] = {"RS256", "ES256", "EdDSA"};
static const char *const files[] = {"rs256.pem", "es256.pem", "eddsa.pem"};
static const char *const kids[] = {"bench-rs256", "bench-es256", "bench-eddsa"};

static int alg_index(const char *a)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(a, algs[i])) return i;
    die("ALG must be RS256, ES256 or EdDSA");
    return -1;
}

static char *b64(const unsigned char *d, size_t n)
{
    char *o = malloc(b64url_enc_len(n) + 1);
    if (!o) die("out of memory");
    b64url_encode(d, n, o);
    return o;
}

static char *bn_b64(const EVP_PKEY *k, const char *param, int pad)
{
    BIGNUM *bn = NULL;
    if (!EVP_PKEY_get_bn_param(k, param, &bn)) die("cannot read a key parameter");
    int n = pad ? pad : BN_num_bytes(bn);
    unsigned char *b = malloc((size_t)n);
    BN_bn2binpad(bn, b, n);
    char *s = b64(b, (size_t)n);
    free(b);
    BN_free(bn);
    return s;
}

static EVP_PKEY *load_key(const char *dir, int i)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, files[i]);
    FILE *f = fopen(path, "r");
    if (!f) die("cannot open a key file (run jwtkit keygen DIR first)");
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!k) die("cannot read a key file");
    return k;
}

static void keygen(const char *dir)
{
    EVP_PKEY *k[3];
    k[0] = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    k[1] = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    k[2] = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!k[0] || !k[1] || !k[2]) die("key generation failed");
    for (int i = 0; i < 3; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        FILE *f = fopen(path, "w");
        if (!f || !PEM_write_PrivateKey(f, k[i], NULL, NULL, 0, NULL, NULL)) die("cannot write a key file");
        fclose(f);
    }
    char *n = bn_b64(k[0], OSSL_PKEY_PARAM_RSA_N, 0), *e = bn_b64(k[0], OSSL_PKEY_PARAM_RSA_E, 0);
    char *x = bn_b64(k[1], OSSL_PKEY_PARAM_EC_PUB_X, 32), *y = bn_b64(k[1], OSSL_PKEY_PARAM_EC_PUB_Y, 32);
    unsigned char raw[32];
    size_t rl = sizeof raw;
    if (!EVP_PKEY_get_raw_public_key(k[2], raw, &rl)) die("cannot read the Ed25519 key");
    char *ox = b64(raw, rl);
    char path[4096];
    snprintf(path, sizeof path, "%s/jwks.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) die("cannot write jwks.json");
    fprintf(f,
            "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"%s\",\"use\":\"sig\",\"alg\":\"RS256\",\"n\":\"%s\",\"e\":\"%s\"},"
            "{\"kty\":\"EC\",\"kid\":\"%s\",\"use\":\"sig\",\"alg\":\"ES256\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"},"
            "{\"kty\":\"OKP\",\"kid\":\"%s\",\"use\":\"sig\",\"alg\":\"EdDSA\",\"crv\":\"Ed25519\",\"x\":\"%s\"}]}\n",
            kids[0], n, e, kids[1], x, y, kids[2], ox);
    fclose(f);
    free(n); free(e); free(x); free(y); free(ox);
    for (int i = 0; i < 3; i++) EVP_PKEY_free(k[i]);
}

/* A signed compact JWS; the caller frees it. */
static char *mint(EVP_PKEY *k, int ai, const char *iss, const char *aud, long ttl, const char *sub)
{
    long now = (long)time(NULL);
    char hdr[128], pl[2048];
    snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", algs[ai], kids[ai]);
    json_t *p = json_pack("{s:s,s:s,s:s,s:I,s:I,s:s,s:s}", "iss", iss, "aud", aud, "sub", sub, "iat", (json_int_t)now,
                          "exp", (json_int_t)(now + ttl), "scope", "openid mcp", "client_id", "bench");
    char *ps = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    snprintf(pl, sizeof pl, "%s", ps);
    free(ps);
    char *h64 = b64((const unsigned char *)hdr, strlen(hdr)), *p64 = b64((const unsigned char *)pl, strlen(pl));
    size_t il = strlen(h64) + 1 + strlen(p64);
    char *input = malloc(il + 1);
    snprintf(input, il + 1, "%s.%s", h64, p64);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    const EVP_MD *md = ai == 2 ? NULL : EVP_sha256();
    if (EVP_DigestSignInit(ctx, NULL, md, NULL, k) != 1) die("DigestSignInit failed");
    size_t sl = 0;
    if (EVP_DigestSign(ctx, NULL, &sl, (const unsigned char *)input, il) != 1) die("DigestSign failed");
    unsigned char *sig = malloc(sl);
    if (EVP_DigestSign(ctx, sig, &sl, (const unsigned char *)input, il) != 1) die("DigestSign failed");
    EVP_MD_CTX_free(ctx);
    unsigned char rs[64];
    const unsigned char *sp = sig;
    size_t rsl = sl;
    if (ai == 1) {   /* DER ECDSA-Sig-Value → JOSE R||S */
        const unsigned char *q = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &q, (long)sl);
        if (!es) die("bad ECDSA signature");
        BN_bn2binpad(ECDSA_SIG_get0_r(es), rs, 32);
        BN_bn2binpad(ECDSA_SIG_get0_s(es), rs + 32, 32);
        ECDSA_SIG_free(es);
        sp = rs;
        rsl = 64;
    }
    char *s64 = b64(sp, rsl);
    size_t tl = il + 1 + strlen(s64);
    char *tok = malloc(tl + 1);
    snprintf(tok, tl + 1, "%s.%s", input, s64);
    free(sig); free(s64); free(input); free(h64); free(p64);
    return tok;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "r");
    if (!f) die("cannot open jwks.json");
    char *b = malloc(1 << 20);
    *len = fread(b, 1, (1 << 20) - 1, f);
    fclose(f);
    b[*len] = '\0';
    return b;
}

/* The hit path of auth_check (src/auth.c), on a cache of 1024 slots. */
typedef struct { uint8_t key[32]; int64_t exp; } slot_t;
static slot_t *cache_slots[1024];

static int cached_check(const char *header, long leeway)
{
    if (strncasecmp(header, "Bearer ", 7) != 0) return -1;
    const char *tok = header + 7;
    while (*tok == ' ') tok++;
    size_t len = strlen(tok);
    if (!len || len > JWT_MAX_LEN) return -1;
    uint8_t key[32];
    SHA256((const unsigned char *)tok, len, key);
    size_t slot;
    memcpy(&slot, key, sizeof slot);
    slot %= 1024;
    int64_t now = (int64_t)time(NULL);
    slot_t *hit = cache_slots[slot];
    if (hit && !memcmp(hit->key, key, sizeof key) && now < hit->exp + leeway) return 0;
    return 1;
}

static void bench(const char *dir, const char *iss, const char *aud, double secs)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/jwks.json", dir);
    size_t jl;
    char *doc = read_file(path, &jl);
    char err[256];
    /* JWKS parse */
    int np = 0;
    double t0 = now_s();
    while (now_s() - t0 < secs / 8 || np < 10) {
        jwk_set *s = jwks_parse(doc, jl, err, sizeof err);
        if (!s) die(err);
        jwks_unref(s);
        np++;
    }
    double parse_us = (now_s() - t0) * 1e6 / np;
    jwk_set *keys = jwks_parse(doc, jl, err, sizeof err);
    if (!keys || jwks_count(keys) != 3) die("jwks.json: expected 3 usable keys");
    const char *issl[] = {iss}, *audl[] = {aud};
    jwt_policy pol = {.issuers = issl, .n_issuers = 1, .audiences = audl, .n_audiences = 1, .leeway_s = 30};
    printf("{\"jwks_parse_us\":%.2f", parse_us);
    for (int ai = 0; ai < 3; ai++) {
        EVP_PKEY *k = load_key(dir, ai);
        char *tok = mint(k, ai, iss, aud, 3600, "bench-user");
        size_t tl = strlen(tok);
        jwt t;
        if (jwt_verify(tok, tl, keys, &t, err, sizeof err) != JWT_OK) die(err);
        if (jwt_check_claims(&t, &pol, (int64_t)time(NULL), err, sizeof err) != JWT_CLAIMS_OK) die(err);
        jwt_free(&t);
        /* cold: jwt_verify alone, then with the claim checks */
        int n = 0;
        t0 = now_s();
        while (now_s() - t0 < secs / 8 || n < 20) {
            if (jwt_verify(tok, tl, keys, &t, err, sizeof err) != JWT_OK) die(err);
            jwt_free(&t);
            n++;
        }
        double verify_us = (now_s() - t0) * 1e6 / n;
        n = 0;
        t0 = now_s();
        while (now_s() - t0 < secs / 8 || n < 20) {
            if (jwt_verify(tok, tl, keys, &t, err, sizeof err) != JWT_OK) die(err);
            if (jwt_check_claims(&t, &pol, (int64_t)time(NULL), err, sizeof err) != JWT_CLAIMS_OK) die(err);
            jwt_free(&t);
            n++;
        }
        double claims_us = (now_s() - t0) * 1e6 / n;
        /* cached: the hit path */
        char *hdr = malloc(tl + 8);
        snprintf(hdr, tl + 8, "Bearer %s", tok);
        uint8_t key[32];
        SHA256((const unsigned char *)tok, tl, key);
        size_t slot;
        memcpy(&slot, key, sizeof slot);
        slot_t *e = calloc(1, sizeof *e);
        memcpy(e->key, key, 32);
        e->exp = (int64_t)time(NULL) + 3600;
        free(cache_slots[slot % 1024]);
        cache_slots[slot % 1024] = e;
        long hits = 0;
        n = 0;
        t0 = now_s();
        double el;
        do {
            for (int i = 0; i < 1000; i++) hits += cached_check(hdr, 30) == 0;
            n += 1000;
            el = now_s() - t0;
        } while (el < secs / 8);
        if (hits != n) die("cache replica missed");
        double cached_us = el * 1e6 / n;
        const char *name = ai == 0 ? "rs256" : ai == 1 ? "es256" : "eddsa";
        printf(",\"%s_cold\":%.2f,\"%s_cold_with_claims\":%.2f,\"%s_cached\":%.3f,\"%s_token_bytes\":%zu", name, verify_us,
               name, claims_us, name, cached_us, name, tl);
        free(hdr);
        free(tok);
        EVP_PKEY_free(k);
    }
    printf("}\n");
    jwks_unref(keys);
    free(doc);
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "keygen")) { keygen(argv[2]); return 0; }
    if (argc >= 7 && !strcmp(argv[1], "mint")) {
        int ai = alg_index(argv[3]);
        EVP_PKEY *k = load_key(argv[2], ai);
        char *t = mint(k, ai, argv[4], argv[5], atol(argv[6]), argc > 7 ? argv[7] : "bench-user");
        printf("%s\n", t);
        free(t);
        EVP_PKEY_free(k);
        return 0;
    }
    if (argc >= 5 && !strcmp(argv[1], "bench")) { bench(argv[2], argv[3], argv[4], argc > 5 ? atof(argv[5]) : 2.0); return 0; }
    fprintf(stderr, "usage: jwtkit keygen DIR | mint DIR ALG ISS AUD TTL [SUB] | bench DIR ISS AUD [SECONDS]\n");
    return 2;
}
