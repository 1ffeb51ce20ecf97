/* jwt — verification of JWT access tokens (RFC 7519, JWS compact serialization RFC 7515)
 * against the public keys of a JWKS document (RFC 7517), with OpenSSL 3 EVP and jansson.
 *
 * Accepted algorithms (RFC 7518, RFC 8037), and the key each one needs:
 *   RS256 RS384 RS512   RSA, RSASSA-PKCS1-v1_5, modulus >= JWT_RSA_MIN_BITS
 *   PS256 PS384 PS512   RSA, RSASSA-PSS, MGF1 with the same hash, salt length = hash length
 *   ES256 / ES384       EC P-256 / P-384; the signature is JOSE's raw R||S, not DER
 *   EdDSA               OKP Ed25519
 * Never "none", never HS* (a symmetric alg with a public key is the classic confusion attack),
 * nor anything else.
 *
 * Header parameters that could make the token choose its own key ("jwk", "jku", "x5u", "x5c")
 * are ignored: keys come from the jwk_set only. A "crit" header is refused (no extension is
 * understood). "typ" is not checked; the caller may read it in jwt.header.
 *
 * Errors: every function that can fail writes a short human reason to err (errlen bytes,
 * always NUL-terminated; err may be NULL). Reasons quote attacker-chosen text (alg, kid) only
 * shortened to 32 bytes, with non-printable bytes, '"' and '\\' replaced by '?', so they are
 * safe to log and to put in a quoted header parameter (WWW-Authenticate error_description). */
#ifndef GW_JWT_H
#define GW_JWT_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define JWKS_MAX_BYTES   (1024 * 1024) /* a larger JWKS document is refused */
#define JWKS_MAX_KEYS    64            /* entries in "keys"; more is refused */
#define JWT_MAX_LEN      16384         /* a longer token is JWT_MALFORMED, before any decoding */
#define JWT_KID_MAX      128           /* a kid fits in JWT_KID_MAX - 1 bytes */
#define JWT_RSA_MIN_BITS 2048          /* smaller RSA keys are kept but never verify (JWT_BAD_ALG) */
#define JWT_RSA_MAX_BITS 8192          /* larger RSA keys are skipped (bounds verification cost) */

/* A parsed JWKS: immutable once parsed, so any number of threads may verify with it at once.
 * Reference-counted (atomically): whoever keeps a pointer holds a reference. */
typedef struct jwk_set jwk_set;

/* Parses a JWKS document {"keys":[...]} of len bytes (no NUL needed). Returns a set holding
 * one reference, or NULL with the reason in err.
 *   Taken:   kty RSA (n, e); kty EC with crv P-256 or P-384 (x, y, each the full coordinate
 *            length; the point must lie on the curve); kty OKP with crv Ed25519 (x).
 *   Skipped (the document still parses): other kty or crv (oct, P-521, X25519, Ed448, ...),
 *            "use" other than "sig", "key_ops" without "verify", an "alg" that is not one of
 *            the accepted algorithms or does not fit the key, RSA moduli above
 *            JWT_RSA_MAX_BITS, a kid of JWT_KID_MAX bytes or more.
 *   Refused: not JSON, duplicate object keys, not an object with a "keys" array, more than
 *            JWKS_MAX_KEYS entries, more than JWKS_MAX_BYTES; an entry that is not an object,
 *            lacks a string kty, has kid/use/alg of the wrong JSON type, or a taken key whose
 *            parameters are missing or invalid (not strict base64url, wrong length, even RSA
 *            modulus, exponent not odd or longer than 64 bits, point not on the curve).
 * Private members ("d", "p", ...) are ignored. A document whose keys are all skipped gives an
 * empty set (jwks_count() == 0), against which every token fails with JWT_UNKNOWN_KID. */
jwk_set *jwks_parse(const char *json, size_t len, char *err, size_t errlen);
void     jwks_ref(jwk_set *s);
void     jwks_unref(jwk_set *s); /* frees the set with its last reference; NULL is a no-op */
size_t   jwks_count(const jwk_set *s); /* usable keys */
int      jwks_has_kid(const jwk_set *s, const char *kid); /* 1 when some usable key has this kid */

enum {
    JWT_OK = 0,
    JWT_MALFORMED = -1,     /* shape, size, base64url, JSON, missing alg, crit, kid too long */
    JWT_BAD_ALG = -2,       /* alg not accepted, or it does not fit the key the kid names */
    JWT_UNKNOWN_KID = -3,   /* no key has the kid; without a kid, not exactly one key fits alg */
    JWT_BAD_SIGNATURE = -4, /* wrong length, or the signature does not verify */
    JWT_ERROR = -5          /* not the token's fault: out of memory, OpenSSL failure */
};

typedef struct jwt {
    json_t *header;        /* owned: the decoded JOSE header (an object) */
    json_t *payload;       /* owned: the decoded claims (an object) */
    char kid[JWT_KID_MAX]; /* the header's kid, "" when it has none */
    char alg[16];          /* the header's alg, one of the accepted names */
} jwt;

/* Verifies token[0..len) (no NUL needed) with the keys of keys (the caller holds a reference
 * for the duration of the call). Order: size and shape (exactly three segments, header and
 * payload non-empty, all three strict base64url) → header JSON object → alg on the allow-list
 * → crit, kid → key: with a kid, the keys with that kid; without one, the single key that
 * fits alg → alg fits the key (kty/crv, RSA size, the key's own "alg" when it has one) →
 * signature → payload JSON object. The payload is parsed only once the signature verified.
 * JSON is parsed with duplicate keys refused. If a kid is shared by several fitting keys,
 * each is tried.
 * Returns JWT_OK and fills *out (release with jwt_free()), or a negative JWT_* code with *out
 * zeroed (jwt_free() on it is harmless) and the reason in err. Does not check any claim: call
 * jwt_check_claims() next. */
int  jwt_verify(const char *token, size_t len, const jwk_set *keys, jwt *out, char *err, size_t errlen);
void jwt_free(jwt *t); /* releases header and payload and zeroes *t */

/* Claim checks for a token that jwt_verify() accepted. A list with no entries is not checked. */
typedef struct jwt_policy {
    const char *const *issuers;          /* iss must be a string equal to one of these */
    size_t n_issuers;
    const char *const *audiences;        /* aud (a string, or an array of strings) must contain one */
    size_t n_audiences;
    const char *const *required_scopes;  /* all must be granted (see jwt_check_claims) */
    size_t n_required_scopes;
    long leeway_s;                       /* clock skew allowed on exp and nbf; negative = 0 */
} jwt_policy;

enum {
    JWT_CLAIMS_OK = 0,
    JWT_EXPIRED = -10,            /* now >= exp + leeway */
    JWT_NOT_YET_VALID = -11,      /* now + leeway < nbf, or nbf not a number */
    JWT_BAD_ISSUER = -12,         /* iss missing, not a string, or not listed */
    JWT_BAD_AUDIENCE = -13,       /* aud missing, of the wrong type, or no listed value in it */
    JWT_INSUFFICIENT_SCOPE = -14, /* a required scope is not granted */
    JWT_MISSING_EXP = -15         /* exp missing or not a number: tokens must expire */
};

/* Checks, in this order and returning the first failure: exp (required; a number of seconds,
 * fractions allowed), nbf (when present), iss, aud, scopes. Granted scopes come from "scope"
 * (RFC 8693/9068) when present, else from "scp" (Okta, Entra ID); either may be a
 * space-separated string or an array of strings. Matching is exact and case-sensitive.
 * iat is not checked.
 * now is unix seconds. Returns JWT_CLAIMS_OK or a JWT_* claim code with the reason in err;
 * JWT_MALFORMED when t has no payload. */
int jwt_check_claims(const jwt *t, const jwt_policy *p, int64_t now, char *err, size_t errlen);
#endif
