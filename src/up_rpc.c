#include "up_rpc.h"
#include "buf.h"
#include "sse.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RPC_MAX_BODY (16u << 20)

struct up_rpc {
    up_call   *call;
    up_rpc_fn  fn;
    void      *ud;
    uint64_t   id;
    long       status;
    int        sse;
    int        answered;
    char       session_id[160];
    buf        body;
    sse_parser parser;
};

static void rpc_finish(up_rpc *r, json_t *resp, const char *err)
{
    if (r->answered) return;
    r->answered = 1;
    r->fn(r->ud, resp, err, r->status, r->session_id[0] ? r->session_id : NULL);
}

static int is_our_response(json_t *m, uint64_t id)
{
    json_t *jid = json_object_get(m, "id");
    return json_is_integer(jid) && (uint64_t)json_integer_value(jid) == id &&
           (json_object_get(m, "result") || json_object_get(m, "error"));
}

static void on_event(void *ud, const char *event, const char *data, size_t len, const char *id)
{
    up_rpc *r = ud;
    if (r->answered || strcmp(event, "message") != 0 || len == 0) return;
    json_t *m = json_loadb(data, len, 0, NULL);
    if (m && is_our_response(m, r->id)) rpc_finish(r, m, NULL);
    json_decref(m);
}

static void on_head(up_call *c, void *ud, long status, const char *ctype, const char *sid)
{
    up_rpc *r = ud;
    r->status = status;
    if (sid) snprintf(r->session_id, sizeof r->session_id, "%s", sid);
    r->sse = ctype && strncmp(ctype, "text/event-stream", 17) == 0;
}

static void rpc_free(up_rpc *r)
{
    buf_free(&r->body);
    sse_parser_free(&r->parser);
    free(r);
}

static void on_data(up_call *c, void *ud, const char *d, size_t n)
{
    up_rpc *r = ud;
    if (r->sse) {
        if (sse_parser_feed(&r->parser, d, n)) rpc_finish(r, NULL, "upstream event too large");
    } else if (buf_append(&r->body, d, n)) {
        rpc_finish(r, NULL, "upstream response too large");
    }
    if (r->answered) {         /* done (the stream may stay open: we have what we came for) */
        up_call_cancel(c);     /* no more callbacks for this call */
        rpc_free(r);
    }
}

static void on_done(up_call *c, void *ud, const char *err)
{
    up_rpc *r = ud;
    if (err) rpc_finish(r, NULL, err);
    else if (r->status < 200 || r->status >= 300) {
        char msg[64];
        snprintf(msg, sizeof msg, "upstream answered HTTP %ld", r->status);
        rpc_finish(r, NULL, msg);
    } else if (r->id == 0) {
        rpc_finish(r, NULL, NULL);
    } else if (!r->sse) {
        json_t *m = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, NULL);
        if (m && is_our_response(m, r->id)) rpc_finish(r, m, NULL);
        else rpc_finish(r, NULL, "upstream sent no valid JSON-RPC response");
        json_decref(m);
    } else {
        rpc_finish(r, NULL, "upstream stream ended without a response");
    }
    rpc_free(r);
}

static const up_callbacks rpc_cb = {on_head, on_data, on_done};

up_rpc *up_rpc_send(upclient *u, const up_req *base, const char *method, json_t *params, uint64_t id,
                    up_rpc_fn fn, void *ud)
{
    up_rpc *r = calloc(1, sizeof *r);
    if (!r) { json_decref(params); return NULL; }
    r->fn = fn;
    r->ud = ud;
    r->id = id;
    buf_init(&r->body, base->max_body ? base->max_body : RPC_MAX_BODY);
    sse_parser_init(&r->parser, base->max_body ? base->max_body : RPC_MAX_BODY, on_event, r);
    json_t *m = json_pack("{s:s,s:s}", "jsonrpc", "2.0", "method", method);
    if (id) json_object_set_new(m, "id", json_integer((json_int_t)id));
    if (params) json_object_set_new(m, "params", params);
    char *body = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    up_req req = *base;
    req.method = "POST";
    req.body = body;
    req.body_len = body ? strlen(body) : 0;
    r->call = upclient_send(u, &req, &rpc_cb, r);
    free(body);
    if (!r->call) { rpc_free(r); return NULL; }
    return r;
}

void up_rpc_cancel(up_rpc *r)
{
    if (r->answered) return;   /* already freed or about to be: on_done frees */
    r->answered = 1;
    up_call_cancel(r->call);
    rpc_free(r);
}
