/* up_stdio — an MCP server run as a child process: newline-delimited JSON-RPC on its stdin and
 * stdout (the MCP stdio transport), its stderr logged line by line under the server's name.
 * Supervised: restarted with back-off when it exits, killed with the gateway (SIGTERM on stop,
 * then SIGKILL; PR_SET_PDEATHSIG when the gateway dies), always reaped. See up_link.h. */
#ifndef GW_UP_STDIO_H
#define GW_UP_STDIO_H
#include <uv.h>
#include "config.h"
#include "up_link.h"

/* Starts the child of cfg (command, args, env, cwd) on loop, at once. cfg must outlive the
 * link. max_line caps one line of its output (longer lines are logged and dropped). */
up_link *up_stdio_new(uv_loop_t *loop, const gw_server_cfg *cfg, size_t max_line, const up_link_cb *cb, void *ud);
#endif
