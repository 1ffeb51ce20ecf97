/* upmgr — keeps every configured upstream initialized, listed and checked (see upmgr.c). */
#ifndef GW_UPMGR_H
#define GW_UPMGR_H
#include "gateway.h"

struct upmgr *upmgr_start(gateway *gw, uv_loop_t *loop);
void          upmgr_stop(struct upmgr *m);
/* After a reload published gw->cfg: stops the servers whose slot it removed, takes the new slots
 * (not contacted yet), publishes a catalog of the config's servers (force_lists: every list
 * announced as changed). start: contacts the new servers too (once every loop uses the config). */
void          upmgr_reload(struct upmgr *m, int start, int force_lists);
#endif
