/* metrics — Prometheus text exposition at /metrics on its own listener (--metrics-addr), served
 * by the control loop from counters the loops keep without locks (relaxed atomics). */
#ifndef GW_METRICS_H
#define GW_METRICS_H
#include "buf.h"
#include "gateway.h"

/* Starts the listener when --metrics-addr is set; a bind failure is logged, not fatal. */
void metrics_start(gateway *gw, uv_loop_t *loop);
void metrics_stop(void);
/* For the modules that render their own families (src/reqstats.c): a label value with backslash,
 * quote and newline escaped; a family's HELP and TYPE lines. */
void metrics_label(buf *b, const char *v);
void metrics_head(buf *b, const char *name, const char *type, const char *help);
/* The exposition text (for the handler and tests); caller frees. */
char *metrics_render(gateway *gw, size_t *len);
#endif
