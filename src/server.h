/* server — listening sockets, worker loops and the router (see server.c). */
#ifndef GW_SERVER_H
#define GW_SERVER_H
#include <sys/socket.h>
#include "gateway.h"

int  server_parse_addr(const char *addr, struct sockaddr_storage *ss, char *err, size_t errlen);
int  server_is_loopback(const struct sockaddr_storage *ss);
int  server_listen(const struct sockaddr_storage *ss, char *err, size_t errlen);  /* SO_REUSEPORT fd or -1 */
/* 0 when nothing listens on the address: SO_REUSEPORT alone would share it silently. */
int  server_check_free(const struct sockaddr_storage *ss, char *err, size_t errlen);
int  server_start_worker(worker *w, const http_limits *lim);   /* w->gw, idx, listen_fd set */
void server_stop_worker(worker *w);                            /* from any thread */
void server_join_worker(worker *w);
/* Routes req again from the start (auth, then the handler): after it waited for shared state. */
void server_redispatch(worker *w, http_req *req);
#endif
