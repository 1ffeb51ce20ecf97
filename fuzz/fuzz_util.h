/* fuzz_util — shared by the libFuzzer targets of fuzz/: a failed check aborts with a message
 * (libFuzzer reports it as a crash and saves the input), and a tiny reader that takes
 * fuzzer-chosen control bytes from the front of an input. */
#ifndef GW_FUZZ_UTIL_H
#define GW_FUZZ_UTIL_H
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

__attribute__((noreturn, format(printf, 1, 2))) static inline void fz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("FUZZ CHECK FAILED: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

/* A property of the code under test: aborts (a finding) when it does not hold. */
#define FZ_CHECK(cond, ...)                                                                   \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);          \
            fz_fail(__VA_ARGS__);                                                             \
        }                                                                                     \
    } while (0)

typedef struct fz_in {
    const uint8_t *p;
    size_t n;
} fz_in;

/* One control byte from the front (0 when the input is exhausted). */
static inline uint8_t fz_u8(fz_in *in)
{
    if (!in->n) return 0;
    in->n--;
    return *in->p++;
}

static inline uint16_t fz_u16(fz_in *in)
{
    uint16_t hi = fz_u8(in);
    return (uint16_t)(hi << 8 | fz_u8(in));
}

/* The next n bytes (fewer when the input ends); *len receives how many. */
static inline const uint8_t *fz_bytes(fz_in *in, size_t n, size_t *len)
{
    if (n > in->n) n = in->n;
    const uint8_t *p = in->p;
    in->p += n;
    in->n -= n;
    *len = n;
    return p;
}
#endif
