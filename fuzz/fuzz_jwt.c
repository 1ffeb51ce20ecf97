/* fuzz_jwt — jwks_parse, jwt_verify and jwt_check_claims.
 *
 * Input: [u16 big-endian length of A][A][B].
 *   A is parsed as a JWKS document (when not empty);
 *   B is verified as a token against a fixed valid JWKS (jwt_fixture.h: RSA, EC P-256/P-384,
 *     Ed25519) and against A's set; the fixture's valid tokens are verified against A's set too,
 *     so keys the fuzzer builds are really used;
 *   a token that verifies goes through jwt_check_claims, and so does B itself when it is a JSON
 *     object (signatures cannot be forged, so this is how the claim checks see arbitrary claims),
 *     under several policies and clocks.
 * Checks: return codes within their documented sets; on failure *out zeroed and a reason given;
 * reasons safe to log and to quote in a header (printable ASCII without '"' or '\\'); on success
 * alg is one of the accepted names and kid fits; jwks_count within JWKS_MAX_KEYS. */
#include "jwt.h"
#include "jwt_fixture.h"
#include "fuzz_util.h"
#include <string.h>

#define NTOKENS (sizeof fixture_tokens / sizeof fixture_tokens[0])

static jwk_set *fixed;
static const char *const issuers[] = {"https://issuer.example", "https://other.example"};
static const char *const audiences[] = {"mcp"};
static const char *const scopes1[] = {"read"};
static const char *const scopes2[] = {"read", "write", ""};
static const jwt_policy policies[] = {
    {0},
    {issuers, 2, audiences, 1, scopes1, 1, 30},
    {NULL, 0, audiences, 1, scopes2, 3, -5},
    {issuers, 1, NULL, 0, NULL, 0, 1L << 40},
};
static const int64_t clocks[] = {1800000000, 0, INT64_MAX, INT64_MIN, 1700000000};

static void check_reason(const char *err, const char *what)
{
    FZ_CHECK(err[0], "%s: no reason", what);
    for (const char *s = err; *s; s++)
        FZ_CHECK(*s >= 0x20 && *s < 0x7f && *s != '"' && *s != '\\', "%s: unsafe reason: %s", what, err);
}

static void check_claims(const jwt *t)
{
    for (size_t i = 0; i < sizeof policies / sizeof policies[0]; i++)
        for (size_t j = 0; j < sizeof clocks / sizeof clocks[0]; j++) {
            char err[128] = "";
            int rc = jwt_check_claims(t, &policies[i], clocks[j], err, sizeof err);
            FZ_CHECK(rc == JWT_CLAIMS_OK || (rc <= JWT_EXPIRED && rc >= JWT_MISSING_EXP) || rc == JWT_MALFORMED,
                     "jwt_check_claims returned %d", rc);
            if (rc) check_reason(err, "jwt_check_claims");
        }
}

static int verify(const char *tok, size_t len, const jwk_set *keys)
{
    jwt t;
    char err[128] = "";
    memset(&t, 0xa5, sizeof t); /* jwt_verify must set every field */
    int rc = jwt_verify(tok, len, keys, &t, err, sizeof err);
    FZ_CHECK(rc <= JWT_OK && rc >= JWT_ERROR, "jwt_verify returned %d", rc);
    if (rc == JWT_OK) {
        FZ_CHECK(json_is_object(t.header) && json_is_object(t.payload), "header / payload");
        FZ_CHECK(strlen(t.kid) < JWT_KID_MAX && strlen(t.alg) < sizeof t.alg, "kid / alg");
        static const char *const algs[] = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"};
        int known = 0;
        for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++) known |= strcmp(t.alg, algs[i]) == 0;
        FZ_CHECK(known, "accepted alg %s", t.alg);
        check_claims(&t);
    } else {
        FZ_CHECK(!t.header && !t.payload && !t.kid[0] && !t.alg[0], "*out not zeroed on failure");
        check_reason(err, "jwt_verify");
    }
    jwt_free(&t);
    FZ_CHECK(!t.header && !t.payload, "jwt_free");
    return rc;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char err[256] = "";
    fixed = jwks_parse(fixture_jwks, strlen(fixture_jwks), err, sizeof err);
    FZ_CHECK(fixed && jwks_count(fixed) == 5, "fixture JWKS: %s", err);
    for (size_t i = 0; i < NTOKENS; i++)
        FZ_CHECK(verify(fixture_tokens[i], strlen(fixture_tokens[i]), fixed) == JWT_OK, "fixture token %zu", i);
    return 0;
}

static const char *token_kid(size_t i) /* the kids gen-seeds.mjs gives the fixture tokens */
{
    static const char *const kids[] = {"rsa1", "rsa1", "rsa1", "rsa1", "rsa2", "rsa1", "ec256", "ec384", "ed1", NULL};
    return i < sizeof kids / sizeof kids[0] ? kids[i] : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    size_t alen;
    const char *a = (const char *)fz_bytes(&in, fz_u16(&in), &alen);
    const char *b = (const char *)in.p;
    size_t blen = in.n;

    jwk_set *set = NULL;
    if (alen) {
        char err[256] = "";
        set = jwks_parse(a, alen, err, sizeof err);
        if (set) {
            FZ_CHECK(jwks_count(set) <= JWKS_MAX_KEYS, "%zu keys", jwks_count(set));
            jwks_ref(set);
            jwks_unref(set);
        } else {
            FZ_CHECK(err[0], "jwks_parse: no reason");
        }
    }

    verify(b, blen, fixed);
    if (set) {
        verify(b, blen, set);
        for (size_t i = 0; i < NTOKENS && jwks_count(set); i++)
            if (!token_kid(i) || jwks_has_kid(set, token_kid(i)))
                verify(fixture_tokens[i], strlen(fixture_tokens[i]), set);
    }
    jwks_unref(set);

    /* the claim checks on B as a claims object */
    json_error_t je;
    json_t *claims = json_loadb(b, blen, 0, &je);
    if (json_is_object(claims)) {
        jwt t = {.payload = claims};
        check_claims(&t);
    }
    json_decref(claims);
    jwt none = {0};
    char err[64];
    FZ_CHECK(jwt_check_claims(&none, &policies[1], 0, err, sizeof err) == JWT_MALFORMED, "no payload");
    return 0;
}
