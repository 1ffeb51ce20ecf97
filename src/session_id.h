/* session_id — self-contained, signed MCP session ids (the Mcp-Session-Id header value).
 * Any replica holding the same GATEWAY_SIGNING_KEY verifies an id without shared state.
 *
 * Format (always SESSION_ID_LEN = 119 visible ASCII characters):
 *
 *     "v1." B64URL(payload) "." B64URL(tag)
 *
 *   B64URL  base64url without padding (b64.h), decoded strictly;
 *   payload 54 bytes, integers big-endian:
 *             0  u64 created       unix seconds
 *             8  u64 expires       unix seconds; the id is expired when now >= expires
 *            16  u8[16] nonce      RAND_bytes
 *            32  u8  proto         index into session_proto_name()
 *            33  u32 client_caps   SESSION_CAP_* bits
 *            37  u8[16] subject    SHA-256(issuer "\n" subject)[0..16]; all zero = anonymous
 *            53  u8  reserved      0
 *           54 bytes → 72 characters, no partial group;
 *   tag     HMAC-SHA256(mac_key, the first 75 characters "v1." B64URL(payload)), all 32
 *           bytes → 43 characters;
 *   mac_key HKDF-SHA256(IKM = the configured key string's bytes, salt = none,
 *           info = "mcp-gateway session-id v1", L = 32). The label keeps these MACs apart
 *           from anything else that may be derived from the same secret.
 *
 * The payload is signed, not encrypted: anyone holding an id can read its claims (the subject
 * is a hash for that reason). */
#ifndef GW_SESSION_ID_H
#define GW_SESSION_ID_H
#include <stddef.h>
#include <stdint.h>

enum {
    SESSION_CAP_SAMPLING = 1,
    SESSION_CAP_ELICITATION = 2,
    SESSION_CAP_ELICITATION_URL = 4,
    SESSION_CAP_ROOTS = 8,
    SESSION_CAP_ROOTS_LIST_CHANGED = 16
};

typedef struct session_claims {
    uint64_t created;     /* unix seconds */
    uint64_t expires;     /* unix seconds */
    uint8_t  nonce[16];   /* random (RAND_bytes) */
    uint8_t  proto;       /* negotiated protocol: 0 = 2025-03-26, 1 = 2025-06-18, 2 = 2025-11-25 */
    uint32_t client_caps; /* SESSION_CAP_* */
    uint8_t  subject[16]; /* truncated SHA-256 of issuer "\n" subject; all zero = anonymous */
} session_claims;

/* The current key signs; the current and up to SESSION_KEYRING_MAX_PREVIOUS previous keys
 * verify. Immutable once built, so loops may share one read-only. */
typedef struct session_keyring session_keyring;

#define SESSION_KEY_MIN_LEN 32
#define SESSION_KEYRING_MAX_PREVIOUS 8

/* current NULL or "" → a random 32-byte key (session_keyring_is_random(); the caller logs the
 * warning: ids then die with the process and other replicas reject them). previous_csv: NULL
 * or comma-separated keys, blanks around each trimmed, empty entries skipped. Any key shorter
 * than SESSION_KEY_MIN_LEN bytes is an error. Returns NULL with a message in err (which never
 * contains key material) on failure. Free with session_keyring_free(). */
session_keyring *session_keyring_new(const char *current, const char *previous_csv, char *err, size_t errlen);
void session_keyring_free(session_keyring *kr);
int  session_keyring_is_random(const session_keyring *kr);

#define SESSION_ID_LEN 119
#define SESSION_ID_MAX 128 /* room for an id and its NUL */

/* Writes the NUL-terminated id to out; returns SESSION_ID_LEN, or 0 (out = "") if the MAC fails. */
size_t session_id_encode(const session_keyring *kr, const session_claims *c, char out[SESSION_ID_MAX]);

enum { SESSION_ID_OK = 0, SESSION_ID_MALFORMED = -1, SESSION_ID_BADSIG = -2, SESSION_ID_EXPIRED = -3 };
/* Verifies id[0..len) (no NUL needed) against every key of kr. Shape and alphabet are checked
 * before any MAC is computed; tags are compared in constant time. out (may be NULL) is filled
 * on SESSION_ID_OK and SESSION_ID_EXPIRED (the claims are authentic then), zeroed otherwise. */
int session_id_decode(const session_keyring *kr, const char *id, size_t len, uint64_t now, session_claims *out);

/* Zeroes c and sets created = now, expires = now + lifetime_s (saturating), a fresh nonce.
 * Aborts if the CSPRNG fails: duplicate nonces could hand one client another's session. */
void session_claims_init(session_claims *c, uint64_t now, uint64_t lifetime_s);

#define SESSION_PROTO_COUNT 3
const char *session_proto_name(uint8_t proto);  /* "2025-03-26" ... or NULL */
int  session_proto_index(const char *version);  /* -1 when unsupported or NULL */
/* HKDF-SHA256 without salt: outlen bytes from ikm for the purpose named by info (the session-id
 * key here, the token-cache key in redis.c). 0, or -1 when OpenSSL fails. */
int gw_hkdf_sha256(const void *ikm, size_t n, const char *info, uint8_t *out, size_t outlen);
#endif
