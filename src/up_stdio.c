/* up_stdio — an MCP server as a supervised child process (see up_stdio.h).
 *
 * The child is started with fork + execve rather than uv_spawn because it must set
 * PR_SET_PDEATHSIG between the two (uv_spawn has no hook there); it is reaped from a SIGCHLD
 * watcher with waitpid on its own pid, so nothing else's children are touched. Between fork and
 * exec only async-signal-safe calls run: everything (argv, environment, the program's path) is
 * prepared before the fork. The child leads its own process group so that stopping it also stops
 * what it started (npx → node).
 *
 * States of the child: none (a restart may be pending on the timer) → running → [terminating:
 * SIGTERM sent, SIGKILL when the timer fires] → exited: stdout is drained (briefly) → none. */
#include "up_stdio.h"
#include "buf.h"
#include "log.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define STDERR_LINE_MAX 2048             /* longer stderr lines are cut */
#define STDIN_QUEUE_MAX (64u << 20)      /* bytes written to the child and not yet taken */
#define STOP_GRACE_MS   2000             /* SIGTERM → SIGKILL */
#define DRAIN_MS        500              /* after the exit, for the last lines of stdout */
#define READ_CHUNK      65536

extern char **environ;

enum { ST_NONE, ST_RUNNING, ST_TERMINATING, ST_DRAINING };
enum { P_IN = 1, P_OUT = 2, P_ERR = 4 };

typedef struct up_stdio {
    up_link      link;           /* first: the bridge holds an up_link * */
    uv_loop_t   *loop;
    const gw_server_cfg *cfg;
    size_t       max_line;
    uv_signal_t  sigchld;
    uv_timer_t   timer;          /* restart back-off, SIGKILL grace, stdout drain */
    uv_pipe_t    in, out, err;
    int          open;           /* P_*: pipe handles open */
    int          closing;        /* handles being closed (pipes, then timer and signal) */
    int          state;
    pid_t        pid;            /* the child, until reaped; 0 = none */
    int          up;             /* on_up sent, on_down not yet */
    int          stopping;
    uint64_t     started_ms;
    uint64_t     backoff_ms;
    size_t       queued;         /* written to stdin, not yet taken by the child */
    buf          line;           /* stdout: the line being read */
    int          skipping;       /* stdout: dropping the rest of an oversized line */
    char         eline[STDERR_LINE_MAX + 1];
    size_t       elen;
    int          eskipping;
    void       (*done)(void *);
    void        *done_arg;
    char         rbuf[READ_CHUNK];   /* one read at a time on this loop: shared by stdout and stderr */
} up_stdio;

typedef struct wreq {
    uv_write_t  w;
    up_stdio   *l;
    size_t      len;
    char        data[];
} wreq;

static void child_gone(up_stdio *l);
static void maybe_done(up_stdio *l);
static int  spawn_child(up_stdio *l);

static const char *name(up_stdio *l) { return l->cfg->name; }

/* ---- handles -------------------------------------------------------------------------------- */

static void on_closed(uv_handle_t *h)
{
    up_stdio *l = h->data;
    l->closing--;
    maybe_done(l);
}

static void close_pipe(up_stdio *l, uv_pipe_t *p, int bit)
{
    if (!(l->open & bit)) return;
    l->open &= ~bit;
    l->closing++;
    uv_close((uv_handle_t *)p, on_closed);
}

static void close_pipes(up_stdio *l)
{
    close_pipe(l, &l->in, P_IN);
    close_pipe(l, &l->out, P_OUT);
    close_pipe(l, &l->err, P_ERR);
    l->queued = 0;
}

/* Once stopping and the child is gone: close the rest, then report and free. */
static void maybe_done(up_stdio *l)
{
    if (!l->stopping || l->pid || l->state != ST_NONE) return;
    close_pipes(l);
    if (!uv_is_closing((uv_handle_t *)&l->timer)) {
        uv_timer_stop(&l->timer);
        l->closing += 2;
        uv_close((uv_handle_t *)&l->timer, on_closed);
        uv_signal_stop(&l->sigchld);
        uv_close((uv_handle_t *)&l->sigchld, on_closed);
        return;
    }
    if (l->closing) return;
    void (*done)(void *) = l->done;
    void *arg = l->done_arg;
    buf_free(&l->line);
    free(l);
    if (done) done(arg);
}

/* ---- the child: signals, exit, restart -------------------------------------------------------- */

static void signal_child(up_stdio *l, int sig)
{
    if (l->pid > 0 && kill(-l->pid, sig) != 0) kill(l->pid, sig);   /* its group, or itself */
}

static void on_timer(uv_timer_t *t);

static void terminate(up_stdio *l)
{
    if (!l->pid || l->state == ST_TERMINATING || l->state == ST_DRAINING) return;
    l->state = ST_TERMINATING;
    signal_child(l, SIGTERM);
    uv_timer_start(&l->timer, on_timer, STOP_GRACE_MS, 0);
}

static void on_timer(uv_timer_t *t)
{
    up_stdio *l = t->data;
    switch (l->state) {
    case ST_NONE:
        if (!l->stopping && spawn_child(l) != 0) child_gone(l);   /* schedules the next try */
        break;
    case ST_TERMINATING:
        log_warn(name(l), "the child did not stop after SIGTERM: SIGKILL");
        signal_child(l, SIGKILL);
        break;
    case ST_DRAINING:
        child_gone(l);
        break;
    }
}

static void on_sigchld(uv_signal_t *s, int signum)
{
    up_stdio *l = s->data;
    int st;
    if (!l->pid || waitpid(l->pid, &st, WNOHANG) != l->pid) return;
    int level = l->stopping || l->state == ST_TERMINATING ? LOG_INFO : LOG_WARN;   /* asked to stop, or not */
    if (WIFEXITED(st)) log_msg(level, name(l), "the child (pid %d) exited with code %d", (int)l->pid, WEXITSTATUS(st));
    else if (WIFSIGNALED(st)) log_msg(level, name(l), "the child (pid %d) was killed by signal %d", (int)l->pid, WTERMSIG(st));
    l->pid = 0;
    if (!(l->open & P_OUT)) { child_gone(l); return; }
    l->state = ST_DRAINING;      /* its last lines may still be in the pipe */
    uv_timer_start(&l->timer, on_timer, DRAIN_MS, 0);
}

/* The child has exited and its output is read (or given up): tell the bridge, plan a restart. */
static void child_gone(up_stdio *l)
{
    if (l->pid) return;   /* still running: its exit calls us again */
    uv_timer_stop(&l->timer);
    l->state = ST_NONE;
    close_pipes(l);
    buf_reset(&l->line);
    l->skipping = 0;
    l->elen = 0;
    l->eskipping = 0;
    if (l->up) {
        l->up = 0;
        if (!l->stopping) l->link.cb.on_down(l->link.ud, "the stdio server exited");
    }
    if (l->stopping) { maybe_done(l); return; }
    uint64_t now = uv_now(l->loop);
    if (l->started_ms && now - l->started_ms >= UP_LINK_BACKOFF_MAX_MS) l->backoff_ms = UP_LINK_BACKOFF_MIN_MS;
    uint64_t delay = l->backoff_ms;
    l->backoff_ms = delay * 2 > UP_LINK_BACKOFF_MAX_MS ? UP_LINK_BACKOFF_MAX_MS : delay * 2;
    l->started_ms = 0;
    log_info(name(l), "restarting the stdio server in %llu ms", (unsigned long long)delay);
    uv_timer_start(&l->timer, on_timer, delay, 0);
}

/* ---- reading stdout and stderr ---------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    up_stdio *l = h->data;
    b->base = l->rbuf;
    b->len = sizeof l->rbuf;
}

static void out_line(up_stdio *l, const char *p, size_t n)
{
    if (n && p[n - 1] == '\r') n--;
    size_t i = 0;
    while (i < n && (p[i] == ' ' || p[i] == '\t')) i++;
    if (i == n) return;
    json_error_t je;
    json_t *m = json_loadb(p, n, 0, &je);
    if (!json_is_object(m)) {
        log_warn(name(l), "not a JSON-RPC message on stdout (dropped): %.*s%s", (int)(n > 200 ? 200 : n), p,
                 n > 200 ? "…" : "");
        json_decref(m);
        return;
    }
    l->link.cb.on_message(l->link.ud, m);
    json_decref(m);
}

static void on_out(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    up_stdio *l = s->data;
    if (nread < 0) {             /* EOF or error: the child closed its stdout */
        close_pipe(l, &l->out, P_OUT);
        if (l->state == ST_DRAINING) child_gone(l);
        else if (l->pid) terminate(l);
        return;
    }
    const char *p = b->base, *end = b->base + nread;
    while (p < end && !l->stopping && (l->open & P_OUT)) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        if (l->skipping) {
            if (nl) l->skipping = 0;
        } else if (nl && !l->line.len) {
            out_line(l, p, (size_t)(nl - p));      /* a whole line in this chunk: no copy */
        } else if (buf_append(&l->line, p, (size_t)(stop - p)) != BUF_OK) {
            log_warn(name(l), "a line of output over %zu bytes: dropped", l->max_line);
            buf_reset(&l->line);
            l->skipping = !nl;
        } else if (nl) {
            out_line(l, l->line.data, l->line.len);
            buf_reset(&l->line);
        }
        p = nl ? nl + 1 : end;
    }
}

static void err_flush(up_stdio *l)
{
    l->eline[l->elen] = '\0';
    if (l->elen && l->eline[l->elen - 1] == '\r') l->eline[--l->elen] = '\0';
    log_info(name(l), "stderr: %s%s", l->eline, l->eskipping ? " …" : "");
    l->elen = 0;
}

static void on_err(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    up_stdio *l = s->data;
    if (nread < 0) {
        if (l->elen) err_flush(l);
        close_pipe(l, &l->err, P_ERR);
        return;
    }
    for (ssize_t i = 0; i < nread; i++) {
        char c = b->base[i];
        if (c == '\n') {
            if (l->elen || !l->eskipping) err_flush(l);
            l->eskipping = 0;
        } else if (l->elen < STDERR_LINE_MAX) {
            l->eline[l->elen++] = c;
        } else if (!l->eskipping) {
            l->eskipping = 1;
            err_flush(l);    /* the first STDERR_LINE_MAX bytes; the rest of the line is dropped */
        }
    }
}

/* ---- writing stdin ------------------------------------------------------------------------------ */

static void on_written(uv_write_t *w, int status)
{
    wreq *r = (wreq *)w;
    up_stdio *l = r->l;
    if (l->queued >= r->len) l->queued -= r->len;
    free(r);
    if (status < 0 && status != UV_ECANCELED && !l->stopping) {
        log_warn(name(l), "writing to the child failed: %s", uv_strerror(status));
        terminate(l);
    }
}

static int link_send(up_link *lk, const char *json, size_t len)
{
    up_stdio *l = (up_stdio *)lk;
    if (!l->up || l->state != ST_RUNNING || !(l->open & P_IN)) return -1;
    if (l->queued + len + 1 > STDIN_QUEUE_MAX) {
        log_warn(name(l), "the child does not read its stdin: message dropped");
        return -1;
    }
    wreq *r = malloc(sizeof *r + len + 1);
    if (!r) return -1;
    r->l = l;
    r->len = len + 1;
    memcpy(r->data, json, len);
    r->data[len] = '\n';
    uv_buf_t b = uv_buf_init(r->data, (unsigned)(len + 1));
    if (uv_write(&r->w, (uv_stream_t *)&l->in, &b, 1, on_written) != 0) {
        free(r);
        return -1;
    }
    l->queued += len + 1;
    return 0;
}

/* ---- starting the child --------------------------------------------------------------------------- */

static int has_name(const char *kv, const char *name_, size_t n) { return !strncmp(kv, name_, n) && kv[n] == '='; }

/* The child's environment: a few variables of the gateway's own (never its secrets such as
 * GATEWAY_SIGNING_KEY), then the server's env entries; a value written exactly "${NAME}" is the
 * gateway's NAME. Returns a NULL-terminated array of malloc'd strings. */
static char **build_env(const gw_server_cfg *cfg)
{
    static const char *const keep[] = {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "LC_ALL",
                                       "LC_CTYPE", "TZ", "TMPDIR", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
                                       "http_proxy", "https_proxy", "no_proxy"};
    size_t nkeep = sizeof keep / sizeof *keep, n = 0;
    char **env = calloc(nkeep + cfg->env.n + 1, sizeof *env);
    if (!env) return NULL;
    for (size_t i = 0; i < nkeep; i++) {
        const char *v = getenv(keep[i]);
        int overridden = 0;
        for (size_t j = 0; j < cfg->env.n; j++) overridden |= has_name(cfg->env.v[j], keep[i], strlen(keep[i]));
        if (!v || overridden) continue;
        size_t len = strlen(keep[i]) + strlen(v) + 2;
        if ((env[n] = malloc(len))) snprintf(env[n++], len, "%s=%s", keep[i], v);
    }
    for (size_t j = 0; j < cfg->env.n; j++) {
        const char *kv = cfg->env.v[j], *eq = strchr(kv, '=');
        size_t vl = strlen(eq + 1);
        if (vl > 3 && eq[1] == '$' && eq[2] == '{' && eq[vl] == '}') {
            char ref[256];
            snprintf(ref, sizeof ref, "%.*s", (int)(vl - 3), eq + 3);
            const char *v = getenv(ref);
            if (!v) continue;   /* unset in the gateway: unset in the child */
            size_t len = (size_t)(eq - kv) + strlen(v) + 2;
            if ((env[n] = malloc(len))) snprintf(env[n++], len, "%.*s=%s", (int)(eq - kv), kv, v);
        } else if ((env[n] = strdup(kv))) {
            n++;
        }
    }
    env[n] = NULL;
    return env;
}

static void free_strv(char **v)
{
    for (size_t i = 0; v && v[i]; i++) free(v[i]);
    free(v);
}

/* The program to execute: command itself when it has a '/' (a relative one from cwd, where the
 * child runs), else the first executable of that name in the child's PATH. */
static char *resolve(const char *command, const char *cwd, char **env)
{
    if (strchr(command, '/')) {
        char *p = NULL;
        if (command[0] != '/' && cwd) { if (asprintf(&p, "%s/%s", cwd, command) < 0) return NULL; }
        else if (!(p = strdup(command))) return NULL;
        char *abs = access(p, X_OK) == 0 ? realpath(p, NULL) : NULL;   /* exec'd after the chdir */
        free(p);
        return abs;
    }
    const char *path = "/usr/local/bin:/usr/bin:/bin";
    for (size_t i = 0; env[i]; i++)
        if (has_name(env[i], "PATH", 4)) path = env[i] + 5;
    for (const char *p = path; *p;) {
        size_t l = strcspn(p, ":");
        char cand[4096];
        struct stat st;
        snprintf(cand, sizeof cand, "%.*s/%s", (int)(l ? l : 1), l ? p : ".", command);
        if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) && access(cand, X_OK) == 0) return realpath(cand, NULL);
        p += l + (p[l] == ':');
    }
    return NULL;
}

/* In the child, between fork and exec: async-signal-safe calls only. */
static void write_str(const char *s) { ssize_t r = write(2, s, strlen(s)); (void)r; }

__attribute__((noreturn)) static void child_exec(pid_t parent, int fds[3], const char *path, char **argv, char **envp,
                                                 const char *cwd, int max_fd)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);          /* the gateway died before prctl */
    setpgid(0, 0);
    int tmp[3];
    for (int i = 0; i < 3; i++)                    /* out of 0..2 first, in case a pipe end is there */
        if ((tmp[i] = fcntl(fds[i], F_DUPFD, 10)) < 0) _exit(127);
    for (int i = 0; i < 3; i++)
        if (dup2(tmp[i], i) < 0) _exit(127);
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 3u, ~0u, 0u) != 0)
#endif
        for (int fd = 3; fd < max_fd; fd++) close(fd);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) sigaction(sig, &sa, NULL);   /* SIGPIPE was ignored */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (cwd && chdir(cwd) != 0) {
        write_str("mcp-gateway: cannot change to the directory given as cwd\n");
        _exit(127);
    }
    execve(path, argv, envp);
    write_str("mcp-gateway: cannot execute the command\n");
    _exit(127);
}

static int open_pipe(up_stdio *l, uv_pipe_t *p, int fd, int bit)
{
    if (uv_pipe_init(l->loop, p, 0) != 0) { close(fd); return -1; }
    p->data = l;
    l->open |= bit;
    return uv_pipe_open(p, fd);
}

static int spawn_child(up_stdio *l)
{
    if (l->open || l->closing) {   /* the last child's pipes are still closing: soon */
        uv_timer_start(&l->timer, on_timer, 50, 0);
        return 0;
    }
    const gw_server_cfg *cfg = l->cfg;
    char **env = build_env(cfg);
    char *path = env ? resolve(cfg->command, cfg->cwd, env) : NULL;
    char **argv = calloc(cfg->args.n + 2, sizeof *argv);
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
    int rc = -1;
    if (!env || !argv) goto done;
    if (!path) {
        if (strchr(cfg->command, '/'))
            log_error(cfg->name, "cannot start the stdio server: %s: %s", cfg->command, strerror(errno));
        else
            log_error(cfg->name, "cannot start the stdio server: '%s' not found in PATH", cfg->command);
        goto done;
    }
    argv[0] = cfg->command;
    for (size_t i = 0; i < cfg->args.n; i++) argv[i + 1] = cfg->args.v[i];
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) {
        log_error(cfg->name, "cannot start the stdio server: pipe: %s", strerror(errno));
        goto done;
    }
    struct rlimit rl;
    int max_fd = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536 ? (int)rl.rlim_cur : 65536;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        log_error(cfg->name, "cannot start the stdio server: fork: %s", strerror(errno));
        goto done;
    }
    if (pid == 0) {
        int fds[3] = {in[0], out[1], err[1]};
        child_exec(parent, fds, path, argv, env, cfg->cwd, max_fd);
    }
    l->pid = pid;
    setpgid(pid, pid);   /* also from here, so that a signal right away reaches the group */
    close(in[0]); close(out[1]); close(err[1]);
    in[0] = out[1] = err[1] = -1;
    int ok = open_pipe(l, &l->in, in[1], P_IN) == 0;
    ok = open_pipe(l, &l->out, out[0], P_OUT) == 0 && ok;
    ok = open_pipe(l, &l->err, err[0], P_ERR) == 0 && ok;
    in[1] = out[0] = err[0] = -1;
    l->state = ST_RUNNING;
    l->started_ms = uv_now(l->loop);
    if (!ok || uv_read_start((uv_stream_t *)&l->out, on_alloc, on_out) ||
        uv_read_start((uv_stream_t *)&l->err, on_alloc, on_err)) {
        log_error(cfg->name, "cannot read from the stdio server");
        terminate(l);
        rc = 0;           /* the exit handles the rest */
        goto done;
    }
    log_info(cfg->name, "started the stdio server %s (pid %d)", path, (int)pid);
    l->up = 1;
    rc = 0;
    l->link.cb.on_up(l->link.ud);
done:
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0) close(in[i]);
        if (out[i] >= 0) close(out[i]);
        if (err[i] >= 0) close(err[i]);
    }
    free(path);
    free(argv);
    free_strv(env);
    return rc;
}

/* ---- the link ----------------------------------------------------------------------------------- */

static void link_restart(up_link *lk, const char *why)
{
    up_stdio *l = (up_stdio *)lk;
    if (!l->pid) return;
    log_warn(name(l), "restarting the stdio server: %s", why);
    terminate(l);
}

static void link_stop(up_link *lk, void (*done)(void *), void *arg)
{
    up_stdio *l = (up_stdio *)lk;
    l->stopping = 1;
    l->done = done;
    l->done_arg = arg;
    if (l->pid) {                  /* its exit (child_gone) finishes the stop */
        terminate(l);
        return;
    }
    uv_timer_stop(&l->timer);
    l->state = ST_NONE;
    maybe_done(l);
}

static const up_link_ops stdio_ops = {link_send, link_restart, link_stop};

up_link *up_stdio_new(uv_loop_t *loop, const gw_server_cfg *cfg, size_t max_line, const up_link_cb *cb, void *ud)
{
    up_stdio *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->link.ops = &stdio_ops;
    l->link.cb = *cb;
    l->link.ud = ud;
    l->loop = loop;
    l->cfg = cfg;
    l->max_line = max_line;
    l->backoff_ms = UP_LINK_BACKOFF_MIN_MS;
    buf_init(&l->line, max_line);
    uv_timer_init(loop, &l->timer);
    l->timer.data = l;
    uv_signal_init(loop, &l->sigchld);
    l->sigchld.data = l;
    uv_signal_start(&l->sigchld, on_sigchld, SIGCHLD);   /* before the first fork */
    uv_timer_start(&l->timer, on_timer, 0, 0);            /* start from the loop, not from here */
    return &l->link;
}
