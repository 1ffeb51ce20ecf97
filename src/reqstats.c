/* reqstats — request and tool-call metrics (reqstats.h). A worker writes only its own entry
 * (relaxed atomic adds: the control loop reads them while they move); a tool statistics entry
 * is published with a release store once filled and never freed before the process ends. */
#include "reqstats.h"
#include "metrics.h"
#include "gateway.h"
#include "jsonrpc.h"
#include "trace.h"
#include <llhttp.h>
#include <stdlib.h>
#include <string.h>

#define TOOL_SLOTS 2048                 /* open addressing; at most 3/4 used */
#define NB 14                           /* histogram buckets, +Inf last */

/* seconds, as printed in le; and in nanoseconds for the comparison */
static const char *const le_text[NB - 1] = {"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
                                            "1", "2.5", "5", "10", "30", "60"};
static const uint64_t le_ns[NB - 1] = {5000000ULL, 10000000ULL, 25000000ULL, 50000000ULL, 100000000ULL,
                                       250000000ULL, 500000000ULL, 1000000000ULL, 2500000000ULL,
                                       5000000000ULL, 10000000000ULL, 30000000000ULL, 60000000000ULL};

static const int statuses[] = {200, 202, 204, 400, 401, 403, 404, 405, 406, 408, 413, 415, 429, 500, 502, 503, 504};
#define N_STATUS (sizeof statuses / sizeof *statuses)
#define TS_OTHER N_STATUS           /* a status not in the list */
#define TS_NONE  (N_STATUS + 1)     /* no response: the client left first */
#define TS_COUNT (N_STATUS + 2)

typedef struct tool_stat {
    char    *name;
    size_t   server;                 /* slot */
    uint32_t hash;
    uint64_t n[TO_COUNT];
    uint64_t sum_ns[TO_COUNT];
    uint64_t b[TO_COUNT][NB];        /* not cumulative; summed up when rendered */
} tool_stat;

typedef struct rs_worker {
    uint64_t   req[RM_COUNT][TS_COUNT];
    tool_stat *tools[TOOL_SLOTS];    /* written by the worker (release), read by /metrics (acquire) */
    size_t     n_used;               /* the worker's: entries in tools */
    size_t     n_named;              /* of which are catalog names (not "_other") */
} rs_worker;

static rs_worker *W;
static int n_W;

static const char *const method_names[RM_COUNT] = {
    "unknown", "initialize", "ping", "tools/list", "tools/call", "prompts/list", "prompts/get",
    "resources/list", "resources/templates/list", "resources/read", "resources/subscribe",
    "resources/unsubscribe", "completion/complete", "logging/setLevel", "notifications/initialized",
    "notifications/cancelled", "notifications/progress", "notifications/roots/list_changed",
    "other", "notifications/other", "response", "GET", "DELETE", "OPTIONS", "other_http"};

static const char *const outcome_names[TO_COUNT] = {"none", "ok", "tool_error", "rpc_error", "upstream_error",
                                                     "cancelled"};

const char *reqstats_method_name(int m) { return m >= 0 && m < RM_COUNT ? method_names[m] : "unknown"; }
const char *reqstats_outcome_name(int o) { return o >= 0 && o < TO_COUNT ? outcome_names[o] : "none"; }

int reqstats_init(int n_workers, size_t server_slots)
{
    (void)server_slots;
    W = calloc((size_t)(n_workers > 0 ? n_workers : 1), sizeof *W);
    if (!W) return -1;
    n_W = n_workers;
    return 0;
}

void reqstats_free(void)
{
    for (int i = 0; i < n_W; i++)
        for (size_t k = 0; k < TOOL_SLOTS; k++)
            if (W[i].tools[k]) { free(W[i].tools[k]->name); free(W[i].tools[k]); }
    free(W);
    W = NULL;
    n_W = 0;
}

int reqstats_method(int kind, const char *m)
{
    if (kind == JR_RESPONSE || !m) return RM_RESPONSE;
    if (kind == JR_NOTIFICATION) {
        if (strncmp(m, "notifications/", 14)) return RM_OTHER_NOTIFICATION;
        m += 14;
        if (!strcmp(m, "initialized")) return RM_N_INITIALIZED;
        if (!strcmp(m, "cancelled")) return RM_N_CANCELLED;
        if (!strcmp(m, "progress")) return RM_N_PROGRESS;
        if (!strcmp(m, "roots/list_changed")) return RM_N_ROOTS_LIST_CHANGED;
        return RM_OTHER_NOTIFICATION;
    }
    for (int i = RM_INITIALIZE; i <= RM_LOGGING_SET_LEVEL; i++)
        if (!strcmp(m, method_names[i])) return i;
    return RM_OTHER_REQUEST;
}

void reqstats_request(int wi, int method, int status)
{
    if (!W || wi < 0 || wi >= n_W || method < 0 || method >= RM_COUNT) return;
    size_t s = TS_OTHER;
    if (status == 0) s = TS_NONE;
    else
        for (size_t i = 0; i < N_STATUS; i++)
            if (statuses[i] == status) { s = i; break; }
    __atomic_add_fetch(&W[wi].req[method][s], 1, __ATOMIC_RELAXED);
}

static uint32_t tool_hash(size_t server, const char *s)
{
    uint32_t h = 2166136261u ^ (uint32_t)server;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

int reqstats_tool(int wi, size_t server, const char *tool)
{
    if (!W || wi < 0 || wi >= n_W || !tool) return 0;
    rs_worker *rw = &W[wi];
    for (int pass = 0; pass < 2; pass++) {
        uint32_t h = tool_hash(server, tool);
        size_t i = h & (TOOL_SLOTS - 1);
        for (size_t probe = 0; probe < TOOL_SLOTS; probe++, i = (i + 1) & (TOOL_SLOTS - 1)) {
            tool_stat *e = rw->tools[i];
            if (!e) break;
            if (e->hash == h && e->server == server && !strcmp(e->name, tool)) return (int)i + 1;
        }
        if (rw->tools[i]) return 0;                        /* the table is full */
        int named = strcmp(tool, "_other") != 0;
        if (named && rw->n_named >= REQSTATS_TOOLS) { tool = "_other"; continue; }   /* the cap */
        if (rw->n_used >= TOOL_SLOTS * 3 / 4) return 0;
        tool_stat *e = calloc(1, sizeof *e);
        if (!e || !(e->name = strdup(tool))) { free(e); return 0; }
        e->server = server;
        e->hash = h;
        __atomic_store_n(&rw->tools[i], e, __ATOMIC_RELEASE);
        rw->n_used++;
        rw->n_named += named;
        return (int)i + 1;
    }
    return 0;
}

void reqstats_tool_done(int wi, int entry, int outcome, uint64_t ns)
{
    if (!W || wi < 0 || wi >= n_W || entry <= 0 || entry > TOOL_SLOTS) return;
    tool_stat *e = W[wi].tools[entry - 1];
    if (!e) return;
    if (outcome <= TO_NONE || outcome >= TO_COUNT) outcome = TO_CANCELLED;
    size_t k = 0;
    while (k < NB - 1 && ns > le_ns[k]) k++;
    __atomic_add_fetch(&e->b[outcome][k], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&e->sum_ns[outcome], ns, __ATOMIC_RELAXED);
    __atomic_add_fetch(&e->n[outcome], 1, __ATOMIC_RELAXED);
}

/* ---- /metrics ---------------------------------------------------------------------------- */

/* The tool entries of every worker merged by (server name, tool name): what a reload replaced
 * (another slot, the same name) counts under the same labels. */
typedef struct merged {
    const char *server, *tool;
    uint64_t    n[TO_COUNT], sum_ns[TO_COUNT], b[TO_COUNT][NB];
} merged;

static int merged_cmp(const void *a, const void *b)
{
    const merged *x = a, *y = b;
    int c = strcmp(x->server, y->server);
    return c ? c : strcmp(x->tool, y->tool);
}

static void render_tools(gateway *gw, buf *b)
{
    const gw_config *cfg = gw->cfg;
    size_t cap = 0;   /* entries now; one published meanwhile waits for the next scrape */
    for (int i = 0; i < n_W; i++)
        for (size_t k = 0; k < TOOL_SLOTS; k++) cap += __atomic_load_n(&W[i].tools[k], __ATOMIC_ACQUIRE) != NULL;
    if (!cap) return;
    size_t hcap = 16;
    while (hcap < cap * 2) hcap <<= 1;
    merged *m = calloc(hcap, sizeof *m);
    size_t n = 0;
    if (!m) return;
    size_t seen = 0;
    for (int i = 0; i < n_W; i++)
        for (size_t k = 0; k < TOOL_SLOTS && seen < cap; k++) {
            tool_stat *e = __atomic_load_n(&W[i].tools[k], __ATOMIC_ACQUIRE);
            if (!e) continue;
            seen++;
            if (e->server >= cfg->n_servers) continue;
            const char *srv = cfg->servers[e->server].name;
            uint32_t h = tool_hash(0, srv) * 31u ^ tool_hash(0, e->name);
            size_t j = h & (hcap - 1);
            while (m[j].server && (strcmp(m[j].server, srv) || strcmp(m[j].tool, e->name))) j = (j + 1) & (hcap - 1);
            if (!m[j].server) { m[j].server = srv; m[j].tool = e->name; n++; }
            for (int o = 0; o < TO_COUNT; o++) {
                m[j].n[o] += __atomic_load_n(&e->n[o], __ATOMIC_RELAXED);
                m[j].sum_ns[o] += __atomic_load_n(&e->sum_ns[o], __ATOMIC_RELAXED);
                for (int q = 0; q < NB; q++) m[j].b[o][q] += __atomic_load_n(&e->b[o][q], __ATOMIC_RELAXED);
            }
        }
    size_t w = 0;   /* compact and sort: a stable exposition */
    for (size_t j = 0; j < hcap; j++)
        if (m[j].server) m[w++] = m[j];
    qsort(m, n, sizeof *m, merged_cmp);
    static const char name[] = "mcp_gateway_tool_call_duration_seconds";
    for (size_t j = 0; j < n; j++)
        for (int o = TO_OK; o < TO_COUNT; o++) {
            if (!m[j].n[o]) continue;
            char lbl[1024];
            buf l = {lbl, 0, sizeof lbl, sizeof lbl - 1};
            lbl[0] = '\0';
            buf_appends(&l, "server=\"");
            metrics_label(&l, m[j].server);
            buf_appends(&l, "\",tool=\"");
            metrics_label(&l, m[j].tool);
            buf_printf(&l, "\",outcome=\"%s\"", outcome_names[o]);
            if (l.len >= sizeof lbl - 1) continue;   /* a name too long to be a label here */
            uint64_t cum = 0;
            for (int q = 0; q < NB; q++) {
                cum += m[j].b[o][q];
                buf_printf(b, "%s_bucket{%s,le=\"%s\"} %llu\n", name, lbl, q < NB - 1 ? le_text[q] : "+Inf",
                           (unsigned long long)cum);
            }
            buf_printf(b, "%s_sum{%s} %.6f\n", name, lbl, (double)m[j].sum_ns[o] / 1e9);
            buf_printf(b, "%s_count{%s} %llu\n", name, lbl, (unsigned long long)m[j].n[o]);
        }
    free(m);
}

void reqstats_render(gateway *gw, buf *b)
{
    metrics_head(b, "mcp_gateway_requests_total", "counter",
         "Requests to the MCP endpoints, by JSON-RPC method (GET/DELETE/OPTIONS for those) and HTTP status.");
    for (int m = 0; m < RM_COUNT; m++)
        for (size_t s = 0; s < TS_COUNT; s++) {
            uint64_t n = 0;
            for (int i = 0; i < n_W; i++) n += __atomic_load_n(&W[i].req[m][s], __ATOMIC_RELAXED);
            if (!n) continue;
            char st[16];
            if (s < N_STATUS) snprintf(st, sizeof st, "%d", statuses[s]);
            else snprintf(st, sizeof st, "%s", s == TS_OTHER ? "other" : "none");
            buf_printf(b, "mcp_gateway_requests_total{method=\"%s\",status=\"%s\"} %llu\n", method_names[m], st,
                       (unsigned long long)n);
        }
    metrics_head(b, "mcp_gateway_tool_call_duration_seconds", "histogram",
         "tools/call relayed to an upstream, from the relay's start to its end, by server, tool and outcome.");
    if (W) render_tools(gw, b);
    uint64_t ex, dr, fa;
    trace_span_counts(&ex, &dr, &fa);
    metrics_head(b, "mcp_gateway_trace_spans_total", "counter",
         "Spans exported to the OTLP collector, dropped (a worker's queue was full) or failed (export not accepted).");
    buf_printf(b, "mcp_gateway_trace_spans_total{result=\"exported\"} %llu\n", (unsigned long long)ex);
    buf_printf(b, "mcp_gateway_trace_spans_total{result=\"dropped\"} %llu\n", (unsigned long long)dr);
    buf_printf(b, "mcp_gateway_trace_spans_total{result=\"failed\"} %llu\n", (unsigned long long)fa);
}
