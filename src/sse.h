/* sse — Server-Sent Events: an incremental parser for upstream streams (any chunking, CRLF,
 * CR or LF line ends, comments, multi-line data) and the writer side's framing. */
#ifndef GW_SSE_H
#define GW_SSE_H
#include <stddef.h>
#include "buf.h"

typedef void (*sse_event_fn)(void *ud, const char *event, const char *data, size_t len, const char *id);

typedef struct sse_parser {
    buf          line;       /* the line being read */
    buf          data;       /* data lines of the event being read, joined by \n */
    char         event[64];
    char         id[256];
    int          has_data;
    int          last_cr;    /* previous chunk ended on CR: skip a leading LF */
    sse_event_fn fn;
    void        *ud;
} sse_parser;

void sse_parser_init(sse_parser *p, size_t max_event, sse_event_fn fn, void *ud);
/* Returns 0, or -1 when an event is larger than max_event (the stream must be dropped). */
int  sse_parser_feed(sse_parser *p, const char *s, size_t n);
void sse_parser_free(sse_parser *p);

/* Appends one event: "id: <id>\n" (when id), "event: <event>\n" (when event), "data: <json>\n\n".
 * data must not contain newlines (compact JSON has none). */
int  sse_format(buf *out, const char *id, const char *event, const char *data, size_t len);
#endif
