/* http — HTTP/1.1 server connections on a libuv loop, parsed by llhttp.
 *
 * One request per connection is in flight at a time: the parser pauses after each message
 * and resumes when its response is complete, so pipelined requests are answered in order
 * and bytes that arrive meanwhile wait (capped) in the connection. Everything a client can
 * grow has a limit from http_limits; a violation is answered with its status (400, 413, 414,
 * 431, 408) and the connection closed.
 *
 * Ownership: the http layer owns every http_req. The handler answers with http_respond() or
 * with http_stream_begin()/write()/end(); after the final call the request is gone. When the
 * client disconnects first, req->on_abort (if set) is called and the request is freed right
 * after it returns: the handler drops its pointer there. */
#ifndef GW_HTTP_H
#define GW_HTTP_H
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "buf.h"
#include "trace.h"

typedef struct http_limits {
    size_t   max_header_size;   /* request line + header section, bytes → 431 */
    size_t   max_headers;       /* count → 431 */
    size_t   max_url;           /* → 414 */
    size_t   max_body;          /* → 413 */
    size_t   max_write_queue;   /* bytes queued to a client before a stream is cut */
    uint64_t header_timeout_ms; /* from a request's first byte to its end of headers → 408 */
    uint64_t body_timeout_ms;   /* from end of headers to end of body → 408 */
    uint64_t idle_timeout_ms;   /* keep-alive: between requests */
} http_limits;

typedef struct http_header {
    const char *name;  size_t name_len;   /* as received; compare case-insensitively */
    const char *value; size_t value_len;  /* trimmed, NUL-terminated */
} http_header;

typedef struct http_server http_server;
typedef struct http_conn http_conn;
typedef struct http_req http_req;

struct http_req {
    http_conn   *conn;
    int          method;       /* llhttp_method_t: HTTP_GET, HTTP_POST, ... */
    const char  *path;         /* NUL-terminated, without the query */
    size_t       path_len;
    const char  *query;        /* after '?', or "" */
    http_header *headers;
    size_t       n_headers;
    buf          body;
    int          keep_alive;
    int          http_minor;
    uint64_t     start_ns;     /* when its headers were complete (uv_hrtime) */
    /* for the handler */
    void        *ud;
    void       (*on_abort)(http_req *req);   /* client gone before the response ended */
    void       (*on_drain)(http_req *req);   /* write queue fell below half its cap */
    trace_req    tr;           /* request id, trace context, metrics (trace.h): set by the router;
                                * answered as X-Request-Id; trace_req_end() when freed */
    /* internal */
    buf          raw;          /* url + header bytes, owned */
    int          streaming;    /* headers sent, chunked body open */
    int          done;
};

typedef void (*http_handler_fn)(http_req *req, void *ctx);

http_server *http_server_new(uv_loop_t *loop, const http_limits *lim, http_handler_fn fn, void *ctx);
/* Starts accepting on an already bound and listening socket fd (SO_REUSEPORT per loop). */
int  http_server_listen_fd(http_server *s, int fd);
/* Stops accepting; closes idle connections; calls cb when the last connection has closed. */
void http_server_close(http_server *s, void (*cb)(http_server *s, void *arg), void *arg);
void http_server_free(http_server *s);
/* Closes every connection now (the end of a drain); in-flight requests are aborted. */
void http_server_close_all(http_server *s);
size_t http_server_connections(const http_server *s);
/* Responses sent, by status class 1…5 (0: other); any thread may read them. */
uint64_t http_server_responses(const http_server *s, int cls);

const char *http_req_header(const http_req *req, const char *name);     /* first match or NULL */
const char *http_method_str(int method);
const char *http_status_text(int status);

/* A complete response. extra: "Name: value\r\n" lines or NULL. body may be NULL when len 0. */
void http_respond(http_req *req, int status, const char *extra, const char *ctype, const void *body, size_t len);
/* Takes ownership of body (malloc'd), avoiding a copy. */
void http_respond_take(http_req *req, int status, const char *extra, const char *ctype, char *body, size_t len);
/* Streams: headers now, then chunks (Transfer-Encoding: chunked on HTTP/1.1). */
void http_stream_begin(http_req *req, int status, const char *extra, const char *ctype);
int  http_stream_write(http_req *req, const void *data, size_t len);   /* -1 when the queue is over its cap */
void http_stream_end(http_req *req);
size_t http_req_queued(const http_req *req);                           /* bytes not yet written */
/* Forces the connection to close after this response. */
void http_req_close_after(http_req *req);
#endif
