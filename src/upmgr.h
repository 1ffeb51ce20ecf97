/* upmgr — keeps every configured upstream initialized, listed and checked (see upmgr.c). */
#ifndef GW_UPMGR_H
#define GW_UPMGR_H
#include "gateway.h"

struct upmgr *upmgr_start(gateway *gw, uv_loop_t *loop);
void          upmgr_stop(struct upmgr *m);
#endif
