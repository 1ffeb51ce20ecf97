/* buf — a growable byte buffer with a hard cap fixed at init (after curl's dynbuf).
 * The buffer owns its bytes; buf_take() hands them to the caller. Always NUL-terminated
 * when non-empty, so text can be used as a C string. */
#ifndef GW_BUF_H
#define GW_BUF_H
#include <stddef.h>
#include <stdarg.h>

typedef struct buf {
    char  *data;
    size_t len;
    size_t cap;    /* allocated */
    size_t limit;  /* hard cap on len; appending past it fails with BUF_TOOBIG */
} buf;

enum { BUF_OK = 0, BUF_TOOBIG = -1, BUF_NOMEM = -2 };

void   buf_init(buf *b, size_t limit);
void   buf_free(buf *b);
void   buf_reset(buf *b);                 /* len = 0, keeps memory */
int    buf_append(buf *b, const void *p, size_t n);
int    buf_appends(buf *b, const char *s);
int    buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int    buf_vprintf(buf *b, const char *fmt, va_list ap);
void   buf_consume(buf *b, size_t n);     /* drop n bytes from the front */
char  *buf_take(buf *b, size_t *len);     /* caller owns the result; b is reset */
/* Appends s JSON-escaped (without quotes). */
int    buf_json_str(buf *b, const char *s, size_t n);
#endif
