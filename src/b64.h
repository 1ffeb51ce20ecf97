/* b64 — base64url (RFC 4648 §5) without padding, as used in session ids and JWTs.
 * Decoding is strict: only [A-Za-z0-9_-], no '=', no whitespace, no length ≡ 1 (mod 4), and
 * the unused low bits of the last character must be zero, so every byte string has exactly one
 * accepted encoding. */
#ifndef GW_B64_H
#define GW_B64_H
#include <stddef.h>

/* Characters needed to encode n bytes (without the NUL); cannot overflow for any n < SIZE_MAX/2. */
static inline size_t b64url_enc_len(size_t n) { return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0); }
/* Upper bound on the bytes decoded from n characters. */
static inline size_t b64url_dec_len(size_t n) { return n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0); }

/* Writes b64url_enc_len(n) characters and a NUL to out; returns the number of characters. */
size_t b64url_encode(const void *in, size_t n, char *out);
/* Decodes n characters into out (room for b64url_dec_len(n) bytes); *outlen (may be NULL)
 * receives the byte count. Returns 0, or -1 on any deviation from the canonical form
 * (out may then hold garbage). */
int b64url_decode(const char *in, size_t n, unsigned char *out, size_t *outlen);
#endif
