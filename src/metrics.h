/* metrics — Prometheus text exposition at /metrics on its own listener (--metrics-addr), served
 * by the control loop from counters the loops keep without locks (relaxed atomics). */
#ifndef GW_METRICS_H
#define GW_METRICS_H
#include "gateway.h"

/* Starts the listener when --metrics-addr is set; a bind failure is logged, not fatal. */
void metrics_start(gateway *gw, uv_loop_t *loop);
void metrics_stop(void);
/* The exposition text (for the handler and tests); caller frees. */
char *metrics_render(gateway *gw, size_t *len);
#endif
