/* config — one option table drives command-line flags, environment variables, defaults, bounds
 * and --help (redis's createIntConfig rows, nginx's offsetof setters). Defaults are written as a
 * user would type them and go through the same setter, so the table is the only truth.
 * The YAML file (Kuadrant's shape, read with libyaml's document API) adds servers, virtual
 * servers and the gateway CA bundle. Config is built at startup and on reload only: running out
 * of memory here is fatal, as with redis's zmalloc. */
#include "config.h"
#include "authz.h"
#include "buf.h"
#include "log.h"
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#define CONFIG_FILE_MAX (16u << 20)

#define KiB (1024LL)
#define MiB (1024LL * KiB)
#define GiB (1024LL * MiB)

enum opt_type {
    OPT_STR,   /* char *, strdup'd; NULL = unset */
    OPT_ENUM,  /* char *, one of choices */
    OPT_INT,   /* int within min..max */
    OPT_LONG,  /* long within min..max */
    OPT_BOOL,  /* int 0/1; a bare --flag means true */
    OPT_DUR,   /* long ms; written in seconds or with a ms/s/m/h suffix; bounds in seconds */
    OPT_SIZE,  /* long bytes; written with an optional k/m/g suffix (1024-based) */
};

typedef struct opt {
    const char   *flag;     /* without dashes; NULL = environment only */
    const char   *env;      /* NULL = flag only */
    enum opt_type type;
    size_t        off;      /* into gw_config */
    long long     min, max; /* numbers: bounds as the user writes them */
    const char   *choices;  /* OPT_ENUM: "a|b" */
    const char   *def;      /* default as a user would write it; NULL = unset */
    const char   *help;
} opt;

#define O(f) offsetof(gw_config, f)
#define STR(fl, ev, fd, df, hp)            {fl, ev, OPT_STR, O(fd), 0, 0, NULL, df, hp}
#define ENUM(fl, ev, fd, ch, df, hp)       {fl, ev, OPT_ENUM, O(fd), 0, 0, ch, df, hp}
#define BOOL(fl, ev, fd, hp)               {fl, ev, OPT_BOOL, O(fd), 0, 1, NULL, "false", hp}
#define NUM(t, fl, ev, fd, lo, hi, df, hp) {fl, ev, t, O(fd), lo, hi, NULL, df, hp}

/* Flags are Kuadrant's names; the environment variable is MCP_GATEWAY_ + the flag in upper
 * snake case, except where Kuadrant already defines one. */
static const opt opts[] = {
    STR("mcp-gateway-config", "MCP_GATEWAY_MCP_GATEWAY_CONFIG", config_file, NULL,
        "YAML file: servers, virtualServers, gatewayCACertPEM (Kuadrant's shape); none = no servers"),
    STR("mcp-broker-public-address", "MCP_GATEWAY_MCP_BROKER_PUBLIC_ADDRESS", listen_addr, "127.0.0.1:8080",
        "host:port the MCP endpoint listens on"),
    STR("mcp-gateway-public-host", "MCP_GATEWAY_MCP_GATEWAY_PUBLIC_HOST", public_host, NULL,
        "public host name of the gateway"),
    STR("metrics-addr", "MCP_GATEWAY_METRICS_ADDR", metrics_addr, "",
        "host:port for Prometheus /metrics; empty = off"),
    {"log-level", "MCP_GATEWAY_LOG_LEVEL", OPT_INT, O(log_level), -4, 8, "debug=-4|info=0|warn=4|error=8", "0",
     "-4 debug, 0 info, 4 warn, 8 error (Kuadrant's numbers), or the names"},
    ENUM("log-format", "MCP_GATEWAY_LOG_FORMAT", log_format, "txt|json", "txt", "log line format"),
    NUM(OPT_LONG, "session-length", "MCP_GATEWAY_SESSION_LENGTH", session_length_min, 1, 525600, "1440",
        "gateway session lifetime, minutes"),
    NUM(OPT_LONG, "mcp-check-interval", "MCP_GATEWAY_MCP_CHECK_INTERVAL", check_interval_s, 1, 86400, "60",
        "upstream health check / re-list interval, seconds"),
    BOOL("enforce-capability-filtering", "MCP_GATEWAY_ENFORCE_CAPABILITY_FILTERING",
         enforce_capability_filtering, "lists are empty unless a valid x-mcp-authorized header is sent"),
    NUM(OPT_SIZE, "max-request-body-size", "MCP_GATEWAY_MAX_REQUEST_BODY_SIZE", max_request_body, 1, GiB,
        "5242880", "larger request bodies get 413"),
    NUM(OPT_SIZE, "max-header-size", "MCP_GATEWAY_MAX_HEADER_SIZE", max_header_size, KiB, MiB, "16384",
        "limit on a request's whole header section"),
    NUM(OPT_LONG, "max-headers", "MCP_GATEWAY_MAX_HEADERS", max_headers, 1, 1000, "100",
        "limit on the number of request headers"),
    NUM(OPT_SIZE, "max-url-length", "MCP_GATEWAY_MAX_URL_LENGTH", max_url_length, 64, MiB, "8192",
        "limit on the request target"),
    NUM(OPT_LONG, "max-json-depth", "MCP_GATEWAY_MAX_JSON_DEPTH", max_json_depth, 1, 1024, "64",
        "nesting limit for JSON bodies"),
    NUM(OPT_LONG, "max-sessions", "MCP_GATEWAY_MAX_SESSIONS", max_sessions, 1, 10000000, "100000",
        "limit on live gateway sessions"),
    NUM(OPT_LONG, "session-idle-timeout", "MCP_GATEWAY_SESSION_IDLE_TIMEOUT", session_idle_s, 1, 2592000,
        "3600", "idle sessions are dropped after this many seconds"),
    NUM(OPT_DUR, "upstream-timeout", "MCP_GATEWAY_UPSTREAM_TIMEOUT", upstream_timeout_ms, 1, 3600, "30",
        "limit on one upstream request"),
    NUM(OPT_SIZE, "max-upstream-response-size", "MCP_GATEWAY_MAX_UPSTREAM_RESPONSE_SIZE",
        max_upstream_response, KiB, GiB, "16m", "limit on one upstream response body"),
    NUM(OPT_DUR, "header-timeout", "MCP_GATEWAY_HEADER_TIMEOUT", header_timeout_ms, 1, 3600, "10",
        "time allowed for a client to send a request's headers"),
    NUM(OPT_DUR, "keepalive-timeout", "MCP_GATEWAY_KEEPALIVE_TIMEOUT", idle_timeout_ms, 0, 3600, "75",
        "idle client connections are closed after this; 0 = no keep-alive"),
    NUM(OPT_DUR, "body-timeout", "MCP_GATEWAY_BODY_TIMEOUT", body_timeout_ms, 1, 3600, "30",
        "time allowed for a client to send a request's body"),
    NUM(OPT_LONG, "max-sse-streams", "MCP_GATEWAY_MAX_SSE_STREAMS", max_sse_streams, 0, 1000000, "10000",
        "limit on open SSE streams, all clients together"),
    NUM(OPT_LONG, "max-sessions-per-subject", "MCP_GATEWAY_MAX_SESSIONS_PER_SUBJECT", max_sessions_per_subject, 0,
        10000000, "1000", "limit on live sessions one authenticated subject opens here (429); 0 = none"),
    NUM(OPT_LONG, "max-jsonrpc-id-length", "MCP_GATEWAY_MAX_JSONRPC_ID_LENGTH", max_id_len, 16, 65536, "256",
        "longer string ids are an invalid request (-32600)"),
    NUM(OPT_LONG, "max-method-length", "MCP_GATEWAY_MAX_METHOD_LENGTH", max_method_len, 16, 65536, "128",
        "longer method names are an invalid request (-32600)"),
    NUM(OPT_LONG, "max-upstream-concurrency", "MCP_GATEWAY_MAX_UPSTREAM_CONCURRENCY", max_upstream_concurrency, 0,
        1000000, "1024", "client calls in flight to one server (429 beyond); per server: maxConcurrency; 0 = none"),
    NUM(OPT_LONG, "max-session-events", "MCP_GATEWAY_MAX_SESSION_EVENTS", max_session_events, 0, 1000000, "256",
        "SSE events kept per session for resumption (Last-Event-ID); the oldest go first"),
    NUM(OPT_SIZE, "max-session-event-bytes", "MCP_GATEWAY_MAX_SESSION_EVENT_BYTES", max_session_event_bytes, 0,
        GiB, "1m", "bytes of SSE events kept per session for resumption"),
    NUM(OPT_SIZE, "max-client-write-queue", "MCP_GATEWAY_MAX_CLIENT_WRITE_QUEUE", max_client_queue, 4 * KiB,
        GiB, "4m", "bytes queued to a slow client before its upstream read pauses"),
    NUM(OPT_INT, "workers", "MCP_GATEWAY_WORKERS", workers, 0, 256, "0", "event loops; 0 = one per core"),
    STR("allowed-origins", "MCP_GATEWAY_ALLOWED_ORIGINS", allowed_origins, NULL,
        "comma-separated Origin values allowed on /mcp; unset = built-in defaults"),
    BOOL("check-config", "MCP_GATEWAY_CHECK_CONFIG", check_config, "load and validate the config, then exit"),
    BOOL("allow-anonymous", "MCP_GATEWAY_ALLOW_ANONYMOUS", allow_anonymous,
         "serve /mcp without authentication"),
    STR(NULL, "GATEWAY_SIGNING_KEY", signing_key, NULL, "session-id signing key, at least 32 bytes"),
    STR(NULL, "CACHE_CONNECTION_STRING", cache_url, NULL,
        "redis://user:pass@host:port/db; unset = sessions in memory"),
    STR(NULL, "TRUSTED_HEADER_PUBLIC_KEY", trusted_header_key, NULL,
        "PEM P-256 public key verifying the x-mcp-authorized header (docs/authorization.md)"),
    STR(NULL, "OTEL_EXPORTER_OTLP_ENDPOINT", otel_endpoint, NULL,
        "OpenTelemetry collector base URL: traces are POSTed (OTLP/HTTP JSON) to <url>/v1/traces; unset = no traces"),
    STR(NULL, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", otel_traces_endpoint, NULL,
        "full URL for traces (OTLP/HTTP JSON), over OTEL_EXPORTER_OTLP_ENDPOINT"),
    STR(NULL, "OTEL_EXPORTER_OTLP_HEADERS", otel_headers, NULL,
        "extra headers for the collector: key=value,key2=value2 (values URL-encoded)"),
    STR(NULL, "OTEL_SERVICE_NAME", otel_service_name, "mcp-gateway", "service.name of the exported spans"),
};
#define NOPTS (sizeof opts / sizeof opts[0])

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

__attribute__((noreturn)) static void oom(void)
{
    static const char m[] = "mcp-gateway: out of memory while loading the config\n";
    fputs(m, stderr);
    abort();
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p) oom();
    return p;
}

static void *xreallocarray(void *p, size_t n, size_t size)
{
    p = reallocarray(p, n, size);
    if (!p) oom();
    return p;
}

/* ---- option values ---- */

static int parse_bool(const char *s)
{
    static const char *const yes[] = {"true", "1", "yes", "on"}, *const no[] = {"false", "0", "no", "off"};
    if (!s) return 1; /* bare --flag */
    for (size_t i = 0; i < 4; i++) {
        if (!strcasecmp(s, yes[i])) return 1;
        if (!strcasecmp(s, no[i])) return 0;
    }
    return -1;
}

static int in_choices(const char *choices, const char *s)
{
    size_t n = strlen(s);
    for (const char *p = choices; *p;) {
        size_t l = strcspn(p, "|");
        if (l == n && !strncmp(p, s, n)) return 1;
        p += l + (p[l] == '|');
    }
    return 0;
}

/* A number with the type's unit suffix, scaled to the stored unit (DUR: ms).
 * Returns 0, -1 when it is not a number, -2 when it overflows. */
static int parse_num(enum opt_type t, const char *s, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10), mul = 1;
    if (end == s) return -1;
    int overflow = errno == ERANGE;
    if (t == OPT_SIZE) {
        switch (*end) {
        case 'k': case 'K': mul = KiB; end++; break;
        case 'm': case 'M': mul = MiB; end++; break;
        case 'g': case 'G': mul = GiB; end++; break;
        }
    } else if (t == OPT_DUR) {
        mul = 1000;
        if (!strcmp(end, "ms")) mul = 1, end += 2;
        else if (*end == 's') end++;
        else if (*end == 'm') mul = 60 * 1000, end++;
        else if (*end == 'h') mul = 3600 * 1000, end++;
    }
    if (*end) return -1;
    if (overflow || v > LLONG_MAX / mul || v < LLONG_MIN / mul) return -2;
    *out = v * mul;
    return 0;
}

/* A number's name from choices "name=number|…" (case-insensitive) → its number in out. */
static int named_number(const char *choices, const char *v, char *out, size_t cap)
{
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        size_t l = strcspn(p, "|"), k = strcspn(p, "=");
        if (k < l && k == n && !strncasecmp(p, v, n) && l - k - 1 < cap) {
            memcpy(out, p + k + 1, l - k - 1);
            out[l - k - 1] = '\0';
            return 1;
        }
        p += l + (p[l] == '|');
    }
    return 0;
}

/* Sets one option from text v (NULL = bare boolean flag); src names the source in messages,
 * e.g. "--workers" or "MCP_GATEWAY_WORKERS". */
static int opt_set(gw_config *cfg, const opt *o, const char *v, const char *src, char *err, size_t errlen)
{
    char *field = (char *)cfg + o->off;
    long long n;
    int rc;

    switch (o->type) {
    case OPT_ENUM:
        if (!in_choices(o->choices, v)) return fail(err, errlen, "%s: '%s' is not one of %s", src, v, o->choices);
        /* fall through */
    case OPT_STR:
        free(*(char **)field);
        *(char **)field = xstrdup(v);
        return 0;
    case OPT_BOOL:
        if ((rc = parse_bool(v)) < 0) return fail(err, errlen, "%s: '%s' is not true or false", src, v);
        *(int *)field = rc;
        return 0;
    default:
        break;
    }
    long long scale = o->type == OPT_DUR ? 1000 : 1;
    char named[32];
    if (o->choices && named_number(o->choices, v, named, sizeof named)) v = named;   /* "debug" → "-4" */
    if ((rc = parse_num(o->type, v, &n)) == -1)
        return fail(err, errlen, "%s: '%s' is not a %s", src, v,
                    o->type == OPT_DUR ? "duration (seconds, or with ms/s/m/h)"
                    : o->type == OPT_SIZE ? "size (bytes, or with k/m/g)" : "number");
    if (rc == -2 || n < o->min * scale || n > o->max * scale)
        return fail(err, errlen, "%s: %s is out of range %lld..%lld%s", src, v, o->min, o->max,
                    o->type == OPT_DUR ? " seconds" : "");
    if (o->type == OPT_INT) *(int *)field = (int)n;
    else *(long *)field = (long)n;
    return 0;
}

void config_defaults(gw_config *cfg)
{
    char err[256];
    memset(cfg, 0, sizeof *cfg);
    cfg->auth.enabled = -1;
    cfg->auth.leeway_s = 30;
    for (size_t i = 0; i < NOPTS; i++)
        if (opts[i].def && opt_set(cfg, &opts[i], opts[i].def, "default", err, sizeof err) < 0) {
            fprintf(stderr, "mcp-gateway: bad option table: %s\n", err); /* a bug, caught by the unit test */
            abort();
        }
}

static const opt *opt_find(const char *name, size_t len)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (opts[i].flag && strlen(opts[i].flag) == len && !memcmp(opts[i].flag, name, len)) return &opts[i];
    return NULL;
}

/* Flags in order, like Go's flag package: -flag and --flag alike, "--flag value" or
 * "--flag=value", booleans bare or "=true|false". Marks what was set in set[]. */
static int parse_args(gw_config *cfg, int argc, char **argv, unsigned char *set, char *err, size_t errlen)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || !a[1]) return fail(err, errlen, "unexpected argument '%s' (see --help)", a);
        const char *name = a + 1 + (a[1] == '-'), *eq = strchr(name, '='), *v = eq ? eq + 1 : NULL;
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        if (!eq && (!strcmp(name, "h") || !strcmp(name, "help"))) {
            config_usage(stdout);
            return 1;
        }
        if (!eq && !strcmp(name, "version")) {
            puts("mcp-gateway " GW_VERSION);
            return 1;
        }
        const opt *o = opt_find(name, len);
        if (!o) return fail(err, errlen, "unknown flag '%.*s' (see --help)", (int)(name + len - a), a);
        char src[80];
        snprintf(src, sizeof src, "--%s", o->flag);
        if (!v && o->type != OPT_BOOL) {
            if (i + 1 >= argc) return fail(err, errlen, "%s: missing value", src);
            v = argv[++i];
        }
        if (opt_set(cfg, o, v, src, err, errlen) < 0) return -1;
        set[o - opts] = 1;
    }
    return 0;
}

int config_load(int argc, char **argv, gw_config **out, char *err, size_t errlen)
{
    unsigned char set[NOPTS] = {0};
    gw_config *cfg = calloc(1, sizeof *cfg);
    int rc;

    *out = NULL;
    if (!cfg) oom();
    config_defaults(cfg);
    if ((rc = parse_args(cfg, argc, argv, set, err, errlen)) != 0) goto done;
    for (size_t i = 0; i < NOPTS; i++) { /* environment, where no flag said otherwise; empty = unset */
        const char *v = opts[i].env && !set[i] ? getenv(opts[i].env) : NULL;
        if (v && *v && (rc = opt_set(cfg, &opts[i], v, opts[i].env, err, errlen)) < 0) goto done;
    }
    if (cfg->config_file && *cfg->config_file && (rc = config_load_file(cfg, cfg->config_file, err, errlen)) < 0)
        goto done;
    if ((rc = config_auth_resolve(cfg, err, errlen)) < 0) goto done;
    if ((rc = config_authz_resolve(cfg, err, errlen)) < 0) goto done;
    *out = cfg;
    return 0;
done:
    config_free(cfg);
    return rc;
}

static const char *fmt_size(long long v, char *b, size_t n)
{
    if (v >= GiB && v % GiB == 0) snprintf(b, n, "%lldg", v / GiB);
    else if (v >= MiB && v % MiB == 0) snprintf(b, n, "%lldm", v / MiB);
    else if (v >= KiB && v % KiB == 0) snprintf(b, n, "%lldk", v / KiB);
    else snprintf(b, n, "%lld", v);
    return b;
}

void config_usage(FILE *out)
{
    fputs("Usage: mcp-gateway [options]\n\n"
          "A flag beats its environment variable, which beats the default. Flags take -flag or --flag,\n"
          "\"--flag value\" or \"--flag=value\"; booleans are bare or =true|false. Sizes take k/m/g\n"
          "(1024-based); durations are seconds or take ms/s/m/h.\n\n"
          "  -h, --help    this text\n"
          "  --version     print the version\n",
          out);
    for (size_t i = 0; i < NOPTS; i++) {
        const opt *o = &opts[i];
        char lo[32], hi[32];
        fprintf(out, "  %s%s ", o->flag ? "--" : "env ", o->flag ? o->flag : o->env);
        switch (o->type) {
        case OPT_STR:  fputs("<string>", out); break;
        case OPT_ENUM: fprintf(out, "<%s>", o->choices); break;
        case OPT_BOOL: fputs("[=true|false]", out); break;
        case OPT_INT:
        case OPT_LONG:
            fprintf(out, "<%lld..%lld", o->min, o->max);
            for (const char *p = o->choices; p && *p;) {   /* named numbers: "|debug|info…" */
                size_t l = strcspn(p, "|");
                fprintf(out, "|%.*s", (int)strcspn(p, "="), p);
                p += l + (p[l] == '|');
            }
            fputs(">", out);
            break;
        case OPT_DUR:  fprintf(out, "<seconds %lld..%lld>", o->min, o->max); break;
        case OPT_SIZE:
            fprintf(out, "<bytes %s..%s>", fmt_size(o->min, lo, sizeof lo), fmt_size(o->max, hi, sizeof hi));
            break;
        }
        fprintf(out, "\n        %s\n        ", o->help);
        if (o->flag && o->env) fprintf(out, "env %s, ", o->env);
        if (!o->def) fputs("default: unset\n", out);
        else fprintf(out, "default: \"%s\"\n", o->def);
    }
}

/* ---- the YAML file ---- */

typedef struct yctx {
    yaml_document_t *doc;
    const char      *name;  /* file name for messages */
    char            *err;
    size_t           errlen;
    gw_server_cfg   *servers;  size_t n_servers;
    gw_vserver_cfg  *vservers; size_t n_vservers;
    char            *ca_pem;
    gw_auth_cfg      auth;
    gw_authz_cfg     authz;    /* the authorization section below */
} yctx;

#define LINE(n) ((n)->start_mark.line + 1)

static int yerr(yctx *c, yaml_node_t *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int yerr(yctx *c, yaml_node_t *n, const char *fmt, ...)
{
    int l = snprintf(c->err, c->errlen, "%s:%zu: ", c->name, LINE(n));
    if (l >= 0 && (size_t)l < c->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err + l, c->errlen - (size_t)l, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static void unknown_key(yctx *c, yaml_node_t *k)
{
    log_warn("config", "%s:%zu: unknown key '%s' ignored", c->name, LINE(k), (char *)k->data.scalar.value);
}

static const char *sval(yaml_node_t *n) { return (const char *)n->data.scalar.value; }

/* Empty scalars and plain ~ / null mean "unset". */
static int is_null(yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE) return 0;
    const char *s = sval(n);
    return !*s || (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                   (!strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL")));
}

/* Reads a string value into *dst (replacing any earlier one); unset leaves NULL. */
static int get_str(yctx *c, const char *key, yaml_node_t *v, char **dst)
{
    if (v->type != YAML_SCALAR_NODE) return yerr(c, v, "'%s' must be a string", key);
    if (strlen(sval(v)) != v->data.scalar.length) return yerr(c, v, "'%s' contains a NUL byte", key);
    free(*dst);
    *dst = is_null(v) ? NULL : xstrdup(sval(v));
    return 0;
}

/* Calls fn for each pair of mapping n; keys must be strings. */
typedef int (*pair_fn)(yctx *c, void *obj, yaml_node_t *k, const char *key, yaml_node_t *v);
static int each_pair(yctx *c, yaml_node_t *n, void *obj, pair_fn fn)
{
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(c->doc, p->key), *v = yaml_document_get_node(c->doc, p->value);
        if (k->type != YAML_SCALAR_NODE) return yerr(c, k, "mapping keys must be strings");
        if (fn(c, obj, k, sval(k), v) < 0) return -1;
    }
    return 0;
}

static int prefix_ok(const char *s)
{
    if (!*s) return 1;
    if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9'))) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_')) return 0;
    return 1;
}

static int url_ok(const char *s)
{
    return (!strncasecmp(s, "http://", 7) && s[7]) || (!strncasecmp(s, "https://", 8) && s[8]);
}

/* ---- servers[]: transport, command, args, env, cwd, perSession, maxChildren (stdio, legacy SSE) ---- */

/* Which keys were given, for the checks once the whole entry is read (kept in the high bits of
 * transport while parsing). */
enum { TK_TRANSPORT = 1 << 8, TK_STDIO_ONLY = 1 << 9, TK_MASK = 0xff };

static int env_name_ok(const char *s)
{
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_')) return 0;
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

static void strlist_add(gw_strlist *l, char *s)
{
    l->v = xreallocarray(l->v, l->n + 1, sizeof *l->v);
    l->v[l->n++] = s;
}

static int transport_pair(yctx *c, gw_server_cfg *s, const char *key, yaml_node_t *v)
{
    if (!strcasecmp(key, "transport")) {
        char *t = NULL;
        if (get_str(c, "transport", v, &t) < 0) return -1;
        int kind = !t || !strcasecmp(t, "streamable-http") ? GW_TRANSPORT_HTTP
                   : !strcasecmp(t, "sse")                 ? GW_TRANSPORT_SSE
                   : !strcasecmp(t, "stdio")               ? GW_TRANSPORT_STDIO : -1;
        free(t);
        if (kind < 0) return yerr(c, v, "transport must be streamable-http, sse or stdio");
        s->transport = (s->transport & ~TK_MASK) | kind | TK_TRANSPORT;
        return 0;
    }
    s->transport |= TK_STDIO_ONLY;
    if (!strcasecmp(key, "command")) {
        if (get_str(c, "command", v, &s->command) < 0) return -1;
        if (!s->command) return yerr(c, v, "'command' must not be empty");
        return 0;
    }
    if (!strcasecmp(key, "cwd")) return get_str(c, "cwd", v, &s->cwd);
    if (!strcasecmp(key, "perSession")) {
        int b = v->type == YAML_SCALAR_NODE ? parse_bool(sval(v)) : -1;
        if (b < 0) return yerr(c, v, "'perSession' must be true or false");
        s->per_session = b;
        return 0;
    }
    if (!strcasecmp(key, "maxChildren")) {
        char *e;
        long l = v->type == YAML_SCALAR_NODE ? strtol(sval(v), &e, 10) : -1;
        if (v->type != YAML_SCALAR_NODE || *e || !*sval(v) || l < 1 || l > 10000)
            return yerr(c, v, "'maxChildren' must be an integer 1..10000");
        s->max_children = l;
        return 0;
    }
    if (!strcasecmp(key, "args")) {
        config_strlist_free(&s->args);
        if (is_null(v)) return 0;
        if (v->type != YAML_SEQUENCE_NODE) return yerr(c, v, "'args' must be a list of strings");
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
            yaml_node_t *e = yaml_document_get_node(c->doc, *it);
            if (e->type != YAML_SCALAR_NODE) return yerr(c, e, "'args' must be a list of strings");
            if (strlen(sval(e)) != e->data.scalar.length) return yerr(c, e, "'args' entry contains a NUL byte");
            strlist_add(&s->args, xstrdup(sval(e)));   /* "" is a valid argument */
        }
        return 0;
    }
    /* env: a mapping NAME: value */
    config_strlist_free(&s->env);
    if (is_null(v)) return 0;
    if (v->type != YAML_MAPPING_NODE) return yerr(c, v, "'env' must be a mapping of NAME: value");
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(c->doc, p->key), *e = yaml_document_get_node(c->doc, p->value);
        if (k->type != YAML_SCALAR_NODE || !env_name_ok(sval(k)))
            return yerr(c, k, "env names must match ^[A-Za-z_][A-Za-z0-9_]*$");
        if (e->type != YAML_SCALAR_NODE) return yerr(c, e, "env value of '%s' must be a string", sval(k));
        if (strlen(sval(e)) != e->data.scalar.length) return yerr(c, e, "env value of '%s' contains a NUL byte", sval(k));
        const char *val = is_null(e) ? "" : sval(e);
        size_t n = strlen(sval(k)) + strlen(val) + 2;
        char *kv = malloc(n);
        if (!kv) oom();
        snprintf(kv, n, "%s=%s", sval(k), val);
        strlist_add(&s->env, kv);
    }
    return 0;
}

/* The transport keys of one server entry agree with each other. */
static int check_transport(yctx *c, yaml_node_t *n, gw_server_cfg *s)
{
    int given = s->transport & TK_TRANSPORT, stdio_keys = s->transport & TK_STDIO_ONLY;
    s->transport &= TK_MASK;
    if (s->command && s->url)
        return yerr(c, n, "server '%s' has both 'command' and 'url': a stdio server has a command, any other a url",
                    s->name);
    if (s->command) {
        if (given && s->transport != GW_TRANSPORT_STDIO)
            return yerr(c, n, "server '%s' has a 'command': its transport can only be stdio", s->name);
        s->transport = GW_TRANSPORT_STDIO;
    } else if (s->transport == GW_TRANSPORT_STDIO) {
        return yerr(c, n, "server '%s' has transport stdio but no 'command'", s->name);
    } else if (stdio_keys) {
        return yerr(c, n, "server '%s': 'args', 'env', 'cwd', 'perSession' and 'maxChildren' need a 'command' (stdio)",
                    s->name);
    }
    if (s->max_children && !s->per_session)
        return yerr(c, n, "server '%s': 'maxChildren' needs perSession: true", s->name);
    if (!s->max_children) s->max_children = 32;
    return 0;
}

/* ==== upstream credentials ====================================================================
 * servers[]: credential, credentialEnv, credentialFile, headers, tokenExchange, clientCredentials,
 * forwardAuthorization, clientCert(File), clientKey(File), tlsServerName (docs/external-servers.md).
 * Everything is checked as it is read, so that this section needs no hook but cred_pair (and
 * cred_free in free_servers). Messages name keys, variables and files, never a value. */
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#define SECRET_FILE_MAX (64u << 10)

int config_secret_file(const char *path, char **out, char *why, size_t whylen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) { snprintf(why, whylen, "%s", strerror(errno)); return -1; }
    char *b = malloc(SECRET_FILE_MAX + 1);
    if (!b) oom();
    size_t n = fread(b, 1, SECRET_FILE_MAX + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad) { free(b); snprintf(why, whylen, "cannot be read"); return -1; }
    if (n > SECRET_FILE_MAX) { free(b); snprintf(why, whylen, "is larger than %u KiB", SECRET_FILE_MAX >> 10); return -1; }
    while (n && isspace((unsigned char)b[n - 1])) n--;
    b[n] = '\0';
    if (!n) { free(b); snprintf(why, whylen, "is empty"); return -1; }
    if (strlen(b) != n) { free(b); snprintf(why, whylen, "contains a NUL byte"); return -1; }
    *out = b;
    return 0;
}

static gw_upcred_cfg *cred_of(gw_server_cfg *s)
{
    if (!s->cred && !(s->cred = calloc(1, sizeof *s->cred))) oom();
    return s->cred;
}

static void oauth_client_free(gw_oauth_client_cfg *o)
{
    if (!o) return;
    free(o->token_url); free(o->client_id); free(o->client_secret); free(o->secret_file);
    free(o->audience); free(o->scope); free(o->resource);
    free(o);
}

static void cred_free(gw_upcred_cfg *u)
{
    if (!u) return;
    free(u->cred_file);
    config_strlist_free(&u->headers);
    oauth_client_free(u->exchange);
    oauth_client_free(u->client);
    free(u->client_cert); free(u->client_key); free(u->tls_server_name);
    free(u);
}

/* A header value: no line breaks or other control characters but tab. */
static int cred_value_ok(const char *v)
{
    for (; *v; v++)
        if ((unsigned char)*v < 0x20 ? *v != '\t' : *v == 0x7f) return 0;
    return 1;
}

static const char *srv_name(gw_server_cfg *s) { return s->name ? s->name : "(unnamed)"; }

/* A secret written inline (kind "value"), or read from the environment ("env") or a file ("file").
 * pem: the value is PEM text (line breaks allowed), not a header value. */
static int cred_secret_any(yctx *c, gw_server_cfg *s, yaml_node_t *v, const char *key, const char *kind, char **dst,
                           char **file, int pem)
{
    char *t = NULL;
    if (get_str(c, key, v, &t) < 0) return -1;
    if (!t) return yerr(c, v, "server '%s': '%s' is empty", srv_name(s), key);
    char *val = NULL, why[128];
    if (!strcmp(kind, "env")) {
        if (!env_name_ok(t)) { free(t); return yerr(c, v, "server '%s': '%s' must name an environment variable", srv_name(s), key); }
        const char *e = getenv(t);
        if (!e || !*e) {
            yerr(c, v, "server '%s': %s: environment variable %s is not set", srv_name(s), key, t);
            free(t);
            return -1;
        }
        val = xstrdup(e);
        while (*val && isspace((unsigned char)val[strlen(val) - 1])) val[strlen(val) - 1] = '\0';
        free(t);
    } else if (!strcmp(kind, "file")) {
        if (config_secret_file(t, &val, why, sizeof why) < 0) {
            yerr(c, v, "server '%s': %s: %s %s", srv_name(s), key, t, why);
            free(t);
            return -1;
        }
        if (file) { free(*file); *file = t; } else free(t);
    } else {
        val = t;
    }
    if (!pem && !cred_value_ok(val)) {
        free(val);
        return yerr(c, v, "server '%s': the value of '%s' contains a line break or a control character", srv_name(s), key);
    }
    free(*dst);
    *dst = val;
    return 0;
}

static int cred_secret(yctx *c, gw_server_cfg *s, yaml_node_t *v, const char *key, const char *kind, char **dst,
                       char **file)
{
    return cred_secret_any(c, s, v, key, kind, dst, file, 0);
}

/* credential, credentialEnv, credentialFile and clientCredentials: one credential of the gateway's. */
static int cred_gateway_source(yctx *c, gw_server_cfg *s, yaml_node_t *k, const char *key)
{
    gw_upcred_cfg *u = cred_of(s);
    const char *other = u->cred_key ? u->cred_key : u->client ? "clientCredentials" : NULL;
    if (other && strcasecmp(other, key) != 0)
        return yerr(c, k, "server '%s': '%s' and '%s' (line %d) both give the gateway's credential: keep one",
                    srv_name(s), key, other, u->cred_line);
    u->cred_line = (int)LINE(k);
    return 0;
}

static int cred_user_source(yctx *c, gw_server_cfg *s, yaml_node_t *k, const char *key)
{
    gw_upcred_cfg *u = cred_of(s);
    const char *other = u->exchange ? "tokenExchange" : u->forward ? "forwardAuthorization" : NULL;
    if (other && strcasecmp(other, key) != 0)
        return yerr(c, k, "server '%s': '%s' and '%s' both choose the caller's credential: keep one", srv_name(s), key,
                    other);
    return 0;
}

typedef struct oauth_ctx {
    gw_server_cfg       *s;
    gw_oauth_client_cfg *o;
    const char          *block;   /* "tokenExchange" or "clientCredentials" */
    int                  secret_line;
} oauth_ctx;

static int oauth_pair(yctx *c, void *obj, yaml_node_t *k, const char *key, yaml_node_t *v)
{
    oauth_ctx *x = obj;
    gw_oauth_client_cfg *o = x->o;
    if (!strcasecmp(key, "tokenUrl")) {
        if (get_str(c, key, v, &o->token_url) < 0) return -1;
        if (o->token_url && !url_ok(o->token_url))
            return yerr(c, v, "server '%s': %s.tokenUrl must start with http:// or https://", srv_name(x->s), x->block);
        return 0;
    }
    if (!strcasecmp(key, "clientId")) return get_str(c, key, v, &o->client_id);
    if (!strcasecmp(key, "clientSecret") || !strcasecmp(key, "clientSecretEnv") || !strcasecmp(key, "clientSecretFile")) {
        if (x->secret_line)
            return yerr(c, k, "server '%s': %s has two client secrets (line %d): keep one", srv_name(x->s), x->block,
                        x->secret_line);
        x->secret_line = (int)LINE(k);
        const char *kind = !strcasecmp(key, "clientSecret") ? "value" : !strcasecmp(key, "clientSecretEnv") ? "env" : "file";
        return cred_secret(c, x->s, v, key, kind, &o->client_secret, !strcmp(kind, "file") ? &o->secret_file : NULL);
    }
    if (!strcasecmp(key, "clientAuth")) {
        const char *a = v->type == YAML_SCALAR_NODE ? sval(v) : "";
        if (!strcasecmp(a, "client_secret_basic") || !strcasecmp(a, "basic")) o->auth_post = 0;
        else if (!strcasecmp(a, "client_secret_post") || !strcasecmp(a, "post")) o->auth_post = 1;
        else return yerr(c, v, "server '%s': %s.clientAuth must be client_secret_basic or client_secret_post",
                         srv_name(x->s), x->block);
        return 0;
    }
    if (!strcasecmp(key, "audience")) return get_str(c, key, v, &o->audience);
    if (!strcasecmp(key, "scope")) return get_str(c, key, v, &o->scope);
    if (!strcasecmp(key, "resource")) {
        if (get_str(c, key, v, &o->resource) < 0) return -1;
        if (o->resource && !url_ok(o->resource))
            return yerr(c, v, "server '%s': %s.resource must be an absolute http(s) URI", srv_name(x->s), x->block);
        return 0;
    }
    return yerr(c, k, "unknown key '%s' in %s (tokenUrl, clientId, clientSecret, clientSecretEnv, clientSecretFile, "
                      "clientAuth, audience, scope, resource)", key, x->block);
}

static int cred_oauth(yctx *c, gw_server_cfg *s, yaml_node_t *k, const char *key, yaml_node_t *v,
                      gw_oauth_client_cfg **dst, const char *block)
{
    if (is_null(v)) return 0;
    if (v->type != YAML_MAPPING_NODE)
        return yerr(c, v, "server '%s': '%s' must be a mapping (tokenUrl, clientId, clientSecret…)", srv_name(s), key);
    oauth_client_free(*dst);
    gw_oauth_client_cfg *o = *dst = calloc(1, sizeof *o);
    if (!o) oom();
    o->line = (int)LINE(k);
    oauth_ctx x = {.s = s, .o = o, .block = block};
    if (each_pair(c, v, &x, oauth_pair) < 0) return -1;
    if (!o->token_url) return yerr(c, v, "server '%s': %s needs tokenUrl (the IdP's token endpoint)", srv_name(s), x.block);
    if (!o->client_id) return yerr(c, v, "server '%s': %s needs clientId (the gateway's client at the IdP)", srv_name(s), x.block);
    return 0;
}

/* PEM checks, so that --check-config finds what start would not load. */
static int pem_has(const char *pem, int key)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    void *p = NULL;
    if (b) p = key ? (void *)PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : (void *)PEM_read_bio_X509(b, NULL, NULL, NULL);
    int ok = p != NULL;
    if (key) EVP_PKEY_free(p); else X509_free(p);
    BIO_free(b);
    ERR_clear_error();
    return ok;
}

static int pem_pair_ok(const char *cert, const char *key)
{
    BIO *bc = BIO_new_mem_buf(cert, -1), *bk = BIO_new_mem_buf(key, -1);
    X509 *x = bc ? PEM_read_bio_X509(bc, NULL, NULL, NULL) : NULL;
    EVP_PKEY *k = bk ? PEM_read_bio_PrivateKey(bk, NULL, NULL, NULL) : NULL;
    int ok = x && k && X509_check_private_key(x, k) == 1;
    X509_free(x); EVP_PKEY_free(k); BIO_free(bc); BIO_free(bk);
    ERR_clear_error();
    return ok;
}

static int cred_tls(yctx *c, gw_server_cfg *s, yaml_node_t *v, const char *key)
{
    gw_upcred_cfg *u = cred_of(s);
    int is_key = !strncasecmp(key, "clientKey", 9), file = strlen(key) > (size_t)(is_key ? 9 : 10);
    char **dst = is_key ? &u->client_key : &u->client_cert;
    if (cred_secret_any(c, s, v, key, file ? "file" : "value", dst, NULL, 1) < 0) return -1;
    if (!pem_has(*dst, is_key))
        return yerr(c, v, "server '%s': %s is not a PEM %s", srv_name(s), key, is_key ? "private key" : "certificate");
    if (!is_key && !u->client_key && pem_has(*dst, 1)) u->client_key = xstrdup(*dst);   /* both in one PEM */
    if (u->client_cert && u->client_key && !pem_pair_ok(u->client_cert, u->client_key))
        return yerr(c, v, "server '%s': the client key does not belong to the client certificate", srv_name(s));
    return 0;
}

/* Request headers the gateway writes itself, or that would change the connection. */
static int header_reserved(const char *n)
{
    static const char *const r[] = {"host", "content-type", "content-length", "transfer-encoding", "connection",
                                    "accept", "expect", "upgrade", "te", "trailer", "keep-alive", "authorization",
                                    "mcp-session-id", "mcp-protocol-version", "last-event-id", "proxy-authorization",
                                    "proxy-connection"};
    for (size_t i = 0; i < sizeof r / sizeof *r; i++)
        if (!strcasecmp(n, r[i])) return 1;
    return 0;
}

static int header_name_ok(const char *n)
{
    if (!*n) return 0;
    for (; *n; n++)
        if (!isalnum((unsigned char)*n) && !strchr("!#$%&'*+-.^_`|~", *n)) return 0;
    return 1;
}

static int cred_headers(yctx *c, gw_server_cfg *s, yaml_node_t *v)
{
    gw_upcred_cfg *u = cred_of(s);
    config_strlist_free(&u->headers);
    if (is_null(v)) return 0;
    if (v->type != YAML_MAPPING_NODE) return yerr(c, v, "server '%s': 'headers' must be a mapping Name: value", srv_name(s));
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(c->doc, p->key), *e = yaml_document_get_node(c->doc, p->value);
        if (k->type != YAML_SCALAR_NODE || !header_name_ok(sval(k)))
            return yerr(c, k, "server '%s': a header name must be an HTTP token", srv_name(s));
        const char *name = sval(k);
        if (header_reserved(name))
            return yerr(c, k, "server '%s': header '%s' is the gateway's own%s", srv_name(s), name,
                        !strcasecmp(name, "authorization") ? " (use credential, credentialEnv or credentialFile)" : "");
        char *val = NULL;
        if (e->type == YAML_MAPPING_NODE) {   /* {value: …} | {env: VAR} | {file: /path} */
            if (e->data.mapping.pairs.top - e->data.mapping.pairs.start != 1)
                return yerr(c, e, "server '%s': header '%s' must be a string or one of {value: …}, {env: VAR}, {file: PATH}",
                            srv_name(s), name);
            yaml_node_t *kk = yaml_document_get_node(c->doc, e->data.mapping.pairs.start->key),
                        *vv = yaml_document_get_node(c->doc, e->data.mapping.pairs.start->value);
            const char *kind = kk->type == YAML_SCALAR_NODE ? sval(kk) : "";
            kind = !strcasecmp(kind, "value") ? "value" : !strcasecmp(kind, "env") ? "env" : !strcasecmp(kind, "file") ? "file" : NULL;
            if (!kind) return yerr(c, kk, "server '%s': header '%s': the source must be value, env or file", srv_name(s), name);
            if (cred_secret(c, s, vv, name, kind, &val, NULL) < 0) return -1;
        } else {
            if (e->type != YAML_SCALAR_NODE) return yerr(c, e, "server '%s': header '%s' must be a string", srv_name(s), name);
            if (cred_secret(c, s, e, name, "value", &val, NULL) < 0) return -1;
        }
        for (size_t i = 0; i < u->headers.n; i++) {
            size_t nl = strcspn(u->headers.v[i], ":");
            if (nl == strlen(name) && !strncasecmp(u->headers.v[i], name, nl)) {
                free(val);
                return yerr(c, k, "server '%s': header '%s' is given twice", srv_name(s), name);
            }
        }
        size_t n = strlen(name) + strlen(val) + 3;
        char *line = malloc(n);
        if (!line) oom();
        snprintf(line, n, "%s: %s", name, val);
        free(val);
        strlist_add(&u->headers, line);
    }
    return 0;
}

/* The hook: 1 when key is not one of this section's (the caller goes on), else 0 or -1. */
static int cred_pair(yctx *c, gw_server_cfg *s, yaml_node_t *k, const char *key, yaml_node_t *v)
{
    if (!strcasecmp(key, "credential") || !strcasecmp(key, "credentialEnv") || !strcasecmp(key, "credentialFile")) {
        if (cred_gateway_source(c, s, k, key) < 0) return -1;
        gw_upcred_cfg *u = cred_of(s);
        const char *kind = !strcasecmp(key, "credential") ? "value" : !strcasecmp(key, "credentialEnv") ? "env" : "file";
        if (!strcmp(kind, "value") && is_null(v)) {   /* Kuadrant writes credential: "" for none */
            free(s->credential);
            s->credential = NULL;
            u->cred_key = NULL;
            return 0;
        }
        if (cred_secret(c, s, v, key, kind, &s->credential, !strcmp(kind, "file") ? &u->cred_file : NULL) < 0) return -1;
        u->cred_key = !strcmp(kind, "value") ? "credential" : !strcmp(kind, "env") ? "credentialEnv" : "credentialFile";
        return 0;
    }
    if (!strcasecmp(key, "clientCredentials")) {
        if (cred_gateway_source(c, s, k, key) < 0) return -1;
        return cred_oauth(c, s, k, key, v, &cred_of(s)->client, "clientCredentials");
    }
    if (!strcasecmp(key, "tokenExchange")) {
        if (cred_user_source(c, s, k, key) < 0) return -1;
        return cred_oauth(c, s, k, key, v, &cred_of(s)->exchange, "tokenExchange");
    }
    if (!strcasecmp(key, "forwardAuthorization")) {
        int b = v->type == YAML_SCALAR_NODE ? parse_bool(sval(v)) : -1;
        if (b < 0) return yerr(c, v, "'forwardAuthorization' must be true or false");
        if (b && cred_user_source(c, s, k, key) < 0) return -1;
        cred_of(s)->forward = b;
        if (b)
            log_warn("config", "%s:%zu: server '%s': forwardAuthorization sends the caller's own token upstream "
                               "(token passthrough, which the MCP specification forbids); prefer tokenExchange",
                     c->name, LINE(k), srv_name(s));
        return 0;
    }
    if (!strcasecmp(key, "headers")) return cred_headers(c, s, v);
    if (!strcasecmp(key, "clientCert") || !strcasecmp(key, "clientCertFile") || !strcasecmp(key, "clientKey") ||
        !strcasecmp(key, "clientKeyFile"))
        return cred_tls(c, s, v, key);
    if (!strcasecmp(key, "tlsServerName")) {
        gw_upcred_cfg *u = cred_of(s);
        if (get_str(c, key, v, &u->tls_server_name) < 0) return -1;
        for (const char *q = u->tls_server_name ? u->tls_server_name : ""; *q; q++)
            if (!isalnum((unsigned char)*q) && *q != '-' && *q != '.')
                return yerr(c, v, "server '%s': tlsServerName must be a DNS name", srv_name(s));
        return 0;
    }
    return 1;
}
/* ==== end of upstream credentials ============================================================= */

/* Accepted and unused: Kuadrant's discovery metadata and per-user listing. */
static const char *const server_ignored[] = {"userSpecificList", "category", "hint", "tags"};

static int server_pair(yctx *c, void *obj, yaml_node_t *k, const char *key, yaml_node_t *v)
{
    gw_server_cfg *s = obj;
    int cred = cred_pair(c, s, k, key, v); if (cred != 1) return cred;   /* upstream credentials (own section) */
    if (!strcasecmp(key, "name")) {
        if (get_str(c, "name", v, &s->name) < 0) return -1;
        for (size_t i = 0; s->name && i + 1 < c->n_servers; i++)
            if (!strcmp(c->servers[i].name, s->name))
                return yerr(c, v, "duplicate server name '%s' (first at line %d)", s->name, c->servers[i].line);
    } else if (!strcasecmp(key, "url")) {
        if (get_str(c, "url", v, &s->url) < 0) return -1;
        if (s->url && !url_ok(s->url)) return yerr(c, v, "url '%s' must start with http:// or https://", s->url);
    } else if (!strcasecmp(key, "prefix")) {
        if (get_str(c, "prefix", v, &s->prefix) < 0) return -1;
        if (s->prefix && !prefix_ok(s->prefix))
            return yerr(c, v, "prefix '%s' must match ^[a-z0-9][a-z0-9_]*$", s->prefix);
    } else if (!strcasecmp(key, "state")) {
        char *st = NULL;
        if (get_str(c, "state", v, &st) < 0) return -1;
        int ok = !st || !strcasecmp(st, "Enabled") || !strcasecmp(st, "Disabled");
        s->enabled = !st || !strcasecmp(st, "Enabled");
        if (!ok) yerr(c, v, "state '%s' must be Enabled or Disabled", st);
        free(st);
        if (!ok) return -1;
    } else if (!strcasecmp(key, "hostname")) {
        return get_str(c, "hostname", v, &s->hostname);
    } else if (!strcasecmp(key, "credential")) {
        return get_str(c, "credential", v, &s->credential);
    } else if (!strcasecmp(key, "caCert")) {
        return get_str(c, "caCert", v, &s->ca_cert);
    } else if (!strcasecmp(key, "maxConcurrency")) {
        char *e;
        long l = v->type == YAML_SCALAR_NODE ? strtol(sval(v), &e, 10) : -1;
        if (v->type != YAML_SCALAR_NODE || *e || !*sval(v) || l < 1 || l > 1000000)
            return yerr(c, v, "'maxConcurrency' must be an integer 1..1000000");
        s->max_concurrency = l;
    } else if (!strcasecmp(key, "transport") || !strcasecmp(key, "command") || !strcasecmp(key, "args") ||
               !strcasecmp(key, "env") || !strcasecmp(key, "cwd") || !strcasecmp(key, "perSession") ||
               !strcasecmp(key, "maxChildren")) {
        return transport_pair(c, s, key, v);
    } else {
        for (size_t i = 0; i < sizeof server_ignored / sizeof *server_ignored; i++)
            if (!strcasecmp(key, server_ignored[i])) return 0;
        unknown_key(c, k);
    }
    return 0;
}

static int parse_server(yctx *c, yaml_node_t *n)
{
    if (n->type != YAML_MAPPING_NODE) return yerr(c, n, "a server must be a mapping");
    c->servers = xreallocarray(c->servers, c->n_servers + 1, sizeof *c->servers);
    gw_server_cfg *s = &c->servers[c->n_servers++]; /* owned by c from here on */
    *s = (gw_server_cfg){.enabled = 1, .line = (int)LINE(n)};
    if (each_pair(c, n, s, server_pair) < 0) return -1;
    if (!s->name) return yerr(c, n, "server has no 'name'");
    if (check_transport(c, n, s) < 0) return -1;
    if (!s->url && !s->command) return yerr(c, n, "server '%s' has no 'url'", s->name);
    if (!s->prefix) s->prefix = xstrdup("");
    return 0;
}

/* tools / prompts: a list of names; unset = all. */
static int get_list(yctx *c, const char *key, yaml_node_t *v, char ***list, size_t *n, int *isset)
{
    if (is_null(v)) return 0;
    if (v->type != YAML_SEQUENCE_NODE) return yerr(c, v, "'%s' must be a list", key);
    for (size_t i = 0; i < *n; i++) free((*list)[i]);
    free(*list);
    *list = NULL, *n = 0, *isset = 1;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        yaml_node_t *e = yaml_document_get_node(c->doc, *it);
        char *s = NULL;
        if (get_str(c, key, e, &s) < 0) return -1;
        if (!s) return yerr(c, e, "empty entry in '%s'", key);
        *list = xreallocarray(*list, *n + 1, sizeof **list);
        (*list)[(*n)++] = s;
    }
    return 0;
}

static int vserver_pair(yctx *c, void *obj, yaml_node_t *k, const char *key, yaml_node_t *v)
{
    gw_vserver_cfg *vs = obj;
    if (!strcasecmp(key, "name")) {
        if (get_str(c, "name", v, &vs->name) < 0) return -1;
        for (size_t i = 0; vs->name && i + 1 < c->n_vservers; i++)
            if (!strcmp(c->vservers[i].name, vs->name))
                return yerr(c, v, "duplicate virtual server name '%s' (first at line %d)", vs->name,
                            c->vservers[i].line);
        return 0;
    }
    if (!strcasecmp(key, "tools")) return get_list(c, "tools", v, &vs->tools, &vs->n_tools, &vs->tools_set);
    if (!strcasecmp(key, "prompts"))
        return get_list(c, "prompts", v, &vs->prompts, &vs->n_prompts, &vs->prompts_set);
    unknown_key(c, k);
    return 0;
}

static int parse_vserver(yctx *c, yaml_node_t *n)
{
    if (n->type != YAML_MAPPING_NODE) return yerr(c, n, "a virtual server must be a mapping");
    c->vservers = xreallocarray(c->vservers, c->n_vservers + 1, sizeof *c->vservers);
    gw_vserver_cfg *vs = &c->vservers[c->n_vservers++];
    *vs = (gw_vserver_cfg){.line = (int)LINE(n)};
    if (each_pair(c, n, vs, vserver_pair) < 0) return -1;
    if (!vs->name) return yerr(c, n, "virtual server has no 'name'");
    return 0;
}

static int each_item(yctx *c, const char *key, yaml_node_t *v, int (*fn)(yctx *, yaml_node_t *))
{
    if (is_null(v)) return 0;
    if (v->type != YAML_SEQUENCE_NODE) return yerr(c, v, "'%s' must be a list", key);
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++)
        if (fn(c, yaml_document_get_node(c->doc, *it)) < 0) return -1;
    return 0;
}

/* A list of strings (replacing what was there). */
static int get_strlist(yctx *c, const char *key, yaml_node_t *v, gw_strlist *l)
{
    int isset = 0;
    config_strlist_free(l);
    return get_list(c, key, v, &l->v, &l->n, &isset);
}

static int get_bool(yctx *c, const char *key, yaml_node_t *v, int *dst)
{
    int b = v->type == YAML_SCALAR_NODE ? parse_bool(sval(v)) : -1;
    if (b < 0) return yerr(c, v, "'%s' must be true or false", key);
    *dst = b;
    return 0;
}

static int prm_pair(yctx *c, void *obj, yaml_node_t *k, const char *key, yaml_node_t *v)
{
    gw_auth_cfg *a = obj;
    if (!strcasecmp(key, "resourceName")) return get_str(c, key, v, &a->resource_name);
    if (!strcasecmp(key, "resource")) return get_str(c, key, v, &a->resource);
    if (!strcasecmp(key, "authorizationServers")) return get_strlist(c, key, v, &a->authorization_servers);
    if (!strcasecmp(key, "bearerMethodsSupported")) return get_strlist(c, key, v, &a->bearer_methods);
    if (!strcasecmp(key, "scopesSupported")) return get_strlist(c, key, v, &a->scopes_supported);
    unknown_key(c, k);
    return 0;
}

static int issuer_pair(yctx *c, void *obj, yaml_node_t *k, const char *key, yaml_node_t *v)
{
    gw_issuer_cfg *is = obj;
    if (!strcasecmp(key, "issuerUrl")) return get_str(c, key, v, &is->issuer_url);
    if (!strcasecmp(key, "jwksUri")) {
        if (get_str(c, key, v, &is->jwks_uri) < 0) return -1;
        if (is->jwks_uri && !url_ok(is->jwks_uri)) return yerr(c, v, "jwksUri must start with http:// or https://");
        return 0;
    }
    unknown_key(c, k);
    return 0;
}

static int parse_issuer(yctx *c, yaml_node_t *n)
{
    if (n->type != YAML_MAPPING_NODE) return yerr(c, n, "an issuer must be a mapping {issuerUrl, jwksUri}");
    c->auth.issuers = xreallocarray(c->auth.issuers, c->auth.n_issuers + 1, sizeof *c->auth.issuers);
    gw_issuer_cfg *is = &c->auth.issuers[c->auth.n_issuers++];
    *is = (gw_issuer_cfg){0};
    if (each_pair(c, n, is, issuer_pair) < 0) return -1;
    if (!is->issuer_url) return yerr(c, n, "issuer has no 'issuerUrl'");
    if (!url_ok(is->issuer_url)) return yerr(c, n, "issuerUrl '%s' must start with http:// or https://", is->issuer_url);
    return 0;
}

static int auth_pair(yctx *c, void *obj, yaml_node_t *k, const char *key, yaml_node_t *v)
{
    gw_auth_cfg *a = obj;
    if (!strcasecmp(key, "enabled")) return get_bool(c, key, v, &a->enabled);
    if (!strcasecmp(key, "issuers")) return each_item(c, key, v, parse_issuer);
    if (!strcasecmp(key, "audiences")) return get_strlist(c, key, v, &a->audiences);
    if (!strcasecmp(key, "requiredScopes")) return get_strlist(c, key, v, &a->required_scopes);
    if (!strcasecmp(key, "protectStatus")) return get_bool(c, key, v, &a->protect_status);
    if (!strcasecmp(key, "leewaySeconds")) {
        char *e;
        long l = v->type == YAML_SCALAR_NODE ? strtol(sval(v), &e, 10) : -1;
        if (v->type != YAML_SCALAR_NODE || *e || l < 0 || l > 3600)
            return yerr(c, v, "'leewaySeconds' must be an integer 0..3600");
        a->leeway_s = l;
        return 0;
    }
    unknown_key(c, k);
    return 0;
}

/* ==== authorization: the `authorization:` block (docs/authorization.md) ========================
 * Read into gw_authz_cfg as written (with lines); checked once the whole file is read (rules may
 * name servers listed further down); compiled by src/authz.c. Everything of this block lives
 * between these two banners, apart from the calls in root_pair, config_load_yaml, config_free
 * and config_load. */

static void authz_strlist_add(gw_strlist *l, char *s)
{
    l->v = xreallocarray(l->v, l->n + 1, sizeof *l->v);
    l->v[l->n++] = s;
}

/* A string or a list of strings (entries recorded with their lines when lines is given). */
static int authz_names(yctx *c, const char *key, yaml_node_t *v, gw_strlist *l, int **lines)
{
    config_strlist_free(l);
    if (lines) { free(*lines); *lines = NULL; }
    if (is_null(v)) return 0;
    yaml_node_item_t one = 0, *start = &one, *top = &one + 1;
    if (v->type == YAML_SEQUENCE_NODE) start = v->data.sequence.items.start, top = v->data.sequence.items.top;
    else if (v->type != YAML_SCALAR_NODE) return yerr(c, v, "'%s' must be a string or a list of strings", key);
    for (yaml_node_item_t *it = start; it < top; it++) {
        yaml_node_t *e = it == &one ? v : yaml_document_get_node(c->doc, *it);
        char *s = NULL;
        if (e->type != YAML_SCALAR_NODE) return yerr(c, e, "'%s' must be a string or a list of strings", key);
        if (get_str(c, key, e, &s) < 0) return -1;
        if (!s) return yerr(c, e, "empty entry in '%s'", key);
        authz_strlist_add(l, s);
        if (lines) {
            *lines = xreallocarray(*lines, l->n, sizeof **lines);
            (*lines)[l->n - 1] = (int)LINE(e);
        }
    }
    return 0;
}

static int authz_claim_pair(yctx *c, void *obj, yaml_node_t *k, const char *key, yaml_node_t *v)
{
    gw_authz_claim_cfg *cl = obj;
    if (!strcasecmp(key, "path")) {
        if (v->type == YAML_SEQUENCE_NODE) return authz_names(c, "path", v, &cl->path, NULL);
        char *p = NULL;
        if (get_str(c, "path", v, &p) < 0) return -1;
        config_strlist_free(&cl->path);
        for (char *save = NULL, *t = p ? strtok_r(p, ".", &save) : NULL; t; t = strtok_r(NULL, ".", &save))
            authz_strlist_add(&cl->path, xstrdup(t));
        free(p);
        return 0;
    }
    if (!strcasecmp(key, "equals") || !strcasecmp(key, "contains")) {
        if (cl->value) return yerr(c, k, "a claim condition has one of 'equals' or 'contains'");
        if (v->type != YAML_SCALAR_NODE) return yerr(c, v, "'%s' must be a scalar", key);
        cl->contains = tolower((unsigned char)key[0]) == 'c';
        cl->value = xstrdup(sval(v));
        return 0;
    }
    return yerr(c, k, "unknown key '%s' in a claim condition (path, equals, contains)", key);
}

static int authz_claims(yctx *c, gw_authz_rule_cfg *r, yaml_node_t *v)
{
    if (is_null(v)) return 0;
    if (v->type != YAML_SEQUENCE_NODE) return yerr(c, v, "'claims' must be a list of {path, equals|contains}");
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        yaml_node_t *e = yaml_document_get_node(c->doc, *it);
        if (e->type != YAML_MAPPING_NODE) return yerr(c, e, "a claim condition must be a mapping {path, equals|contains}");
        r->claims = xreallocarray(r->claims, r->n_claims + 1, sizeof *r->claims);
        gw_authz_claim_cfg *cl = &r->claims[r->n_claims++];
        *cl = (gw_authz_claim_cfg){.line = (int)LINE(e)};
        if (each_pair(c, e, cl, authz_claim_pair) < 0) return -1;
        if (!cl->path.n) return yerr(c, e, "claim condition has no 'path'");
        if (!cl->value) return yerr(c, e, "claim condition needs 'equals' or 'contains'");
    }
    return 0;
}

static int authz_when_pair(yctx *c, void *obj, yaml_node_t *k, const char *key, yaml_node_t *v)
{
    gw_authz_rule_cfg *r = obj;
    if (!strcasecmp(key, "groups")) return authz_names(c, key, v, &r->groups, NULL);
    if (!strcasecmp(key, "scopes")) {   /* RFC 6749 scope-tokens: they go into a quoted header value */
        if (authz_names(c, key, v, &r->scopes, NULL) < 0) return -1;
        for (size_t i = 0; i < r->scopes.n; i++)
            for (const unsigned char *p = (const unsigned char *)r->scopes.v[i]; *p; p++)
                if (*p < 0x21 || *p > 0x7e || *p == '"' || *p == '\\')
                    return yerr(c, v, "scope '%s' has a character a scope cannot have (space, quote, backslash)",
                                r->scopes.v[i]);
        return 0;
    }
    if (!strcasecmp(key, "realmRoles")) return authz_names(c, key, v, &r->realm_roles, NULL);
    if (!strcasecmp(key, "subject") || !strcasecmp(key, "subjects")) return authz_names(c, key, v, &r->subjects, NULL);
    if (!strcasecmp(key, "clientId") || !strcasecmp(key, "clientIds")) return authz_names(c, key, v, &r->client_ids, NULL);
    if (!strcasecmp(key, "claims")) return authz_claims(c, r, v);
    return yerr(c, k, "unknown condition '%s' (groups, scopes, realmRoles, subject, clientId, claims)", key);
}

static int authz_rule_pair(yctx *c, void *obj, yaml_node_t *k, const char *key, yaml_node_t *v)
{
    gw_authz_rule_cfg *r = obj;
    static const char *const kinds[GW_AUTHZ_KINDS] = {"tools", "prompts", "resources"};
    if (!strcasecmp(key, "name")) return get_str(c, key, v, &r->name);
    if (!strcasecmp(key, "effect")) {
        const char *e = v->type == YAML_SCALAR_NODE ? sval(v) : "";
        if (strcasecmp(e, "allow") && strcasecmp(e, "deny")) return yerr(c, v, "'effect' must be allow or deny");
        r->allow = !strcasecmp(e, "allow") ? 1 : 0;
        return 0;
    }
    if (!strcasecmp(key, "servers")) return authz_names(c, key, v, &r->servers, &r->server_lines);
    for (int i = 0; i < GW_AUTHZ_KINDS; i++)
        if (!strcasecmp(key, kinds[i])) {
            r->kinds |= 1u << i;
            return authz_names(c, key, v, &r->names[i], NULL);
        }
    if (!strcasecmp(key, "methods")) {
        gw_strlist m = {0};
        int *lines = NULL, rc = authz_names(c, key, v, &m, &lines);
        r->methods = 0;
        for (size_t i = 0; rc == 0 && i < m.n; i++) {
            int id = authz_method_id(m.v[i]);
            if (id < 0) {
                snprintf(c->err, c->errlen, "%s:%d: unknown method '%s' in a rule (%s)", c->name, lines[i], m.v[i],
                         AUTHZ_METHOD_LIST);
                rc = -1;
            } else r->methods |= 1u << id;
        }
        config_strlist_free(&m);
        free(lines);
        return rc;
    }
    if (!strcasecmp(key, "when")) {
        if (is_null(v)) return 0;
        if (v->type != YAML_MAPPING_NODE) return yerr(c, v, "'when' must be a mapping of conditions");
        return each_pair(c, v, r, authz_when_pair);
    }
    return yerr(c, k, "unknown key '%s' in a rule (name, effect, servers, tools, prompts, resources, methods, when)", key);
}

static int authz_rule(yctx *c, yaml_node_t *n)
{
    gw_authz_cfg *a = &c->authz;
    if (n->type != YAML_MAPPING_NODE) return yerr(c, n, "a rule must be a mapping");
    a->rules = xreallocarray(a->rules, a->n_rules + 1, sizeof *a->rules);
    gw_authz_rule_cfg *r = &a->rules[a->n_rules++];
    *r = (gw_authz_rule_cfg){.line = (int)LINE(n), .allow = -1};
    if (each_pair(c, n, r, authz_rule_pair) < 0) return -1;
    if (r->allow < 0) return yerr(c, n, "rule has no 'effect' (allow or deny)");
    return 0;
}

static int authz_prefix_pair(yctx *c, void *obj, yaml_node_t *k, const char *key, yaml_node_t *v)
{
    static const char *const kinds[GW_AUTHZ_KINDS] = {"tool", "prompt", "resource"};
    for (int i = 0; i < GW_AUTHZ_KINDS; i++)
        if (!strcasecmp(key, kinds[i])) return get_str(c, key, v, &c->authz.role_prefix[i]);
    return yerr(c, k, "unknown key '%s' in rolePrefixes (tool, prompt, resource)", key);
}

static int authz_pair(yctx *c, void *obj, yaml_node_t *k, const char *key, yaml_node_t *v)
{
    gw_authz_cfg *a = &c->authz;
    if (!strcasecmp(key, "mode")) {
        gw_strlist m = {0};
        if (authz_names(c, key, v, &m, NULL) < 0) { config_strlist_free(&m); return -1; }
        a->mode = 0;
        for (size_t i = 0; i < m.n; i++)   /* "rules+roles" or [rules, roles] */
            for (char *save = NULL, *t = strtok_r(m.v[i], "+, ", &save); t; t = strtok_r(NULL, "+, ", &save)) {
                if (!strcasecmp(t, "roles")) a->mode |= GW_AUTHZ_ROLES;
                else if (!strcasecmp(t, "rules")) a->mode |= GW_AUTHZ_RULES;
                else a->mode = -1;
            }
        config_strlist_free(&m);
        if (a->mode <= 0) return yerr(c, v, "'mode' must be roles, rules or rules+roles");
        return 0;
    }
    if (!strcasecmp(key, "default")) {
        const char *d = v->type == YAML_SCALAR_NODE ? sval(v) : "";
        if (strcasecmp(d, "allow") && strcasecmp(d, "deny")) return yerr(c, v, "'default' must be allow or deny");
        a->default_allow = !strcasecmp(d, "allow");
        return 0;
    }
    if (!strcasecmp(key, "hideDenied")) return get_bool(c, key, v, &a->hide_denied);
    if (!strcasecmp(key, "audit")) return get_bool(c, key, v, &a->audit);
    if (!strcasecmp(key, "trustedHeaderPublicKey")) return get_str(c, key, v, &a->trusted_key);
    if (!strcasecmp(key, "rolePrefixes")) {
        if (v->type != YAML_MAPPING_NODE) return yerr(c, v, "'rolePrefixes' must be a mapping {tool, prompt, resource}");
        return each_pair(c, v, NULL, authz_prefix_pair);
    }
    if (!strcasecmp(key, "rules")) return each_item(c, key, v, authz_rule);
    return yerr(c, k, "unknown key '%s' in authorization (mode, default, hideDenied, audit, rolePrefixes, "
                      "trustedHeaderPublicKey, rules)", key);
}

static int authz_block(yctx *c, yaml_node_t *k, yaml_node_t *v)
{
    gw_authz_cfg *a = &c->authz;
    if (a->on) return yerr(c, k, "'authorization' is given twice (first at line %d)", a->line);
    if (is_null(v)) return yerr(c, v, "'authorization' is empty: give at least 'mode'");
    if (v->type != YAML_MAPPING_NODE) return yerr(c, v, "'authorization' must be a mapping");
    a->on = 1;
    a->line = (int)LINE(k);
    a->audit = 1;
    if (each_pair(c, v, NULL, authz_pair) < 0) return -1;
    if (!a->mode) return yerr(c, k, "authorization has no 'mode' (roles, rules or rules+roles)");
    if (a->n_rules && !(a->mode & GW_AUTHZ_RULES))
        return yerr(c, k, "authorization has rules but mode roles does not use them: set mode: rules+roles");
    if ((a->mode & GW_AUTHZ_RULES) && !a->n_rules)
        log_warn("config", "%s:%d: authorization mode uses rules but there are none: the default decides", c->name,
                 a->line);
    return 0;
}

/* After the whole file: every server a rule names exists. */
static int authz_check_servers(yctx *c)
{
    for (size_t i = 0; i < c->authz.n_rules; i++) {
        gw_authz_rule_cfg *r = &c->authz.rules[i];
        for (size_t j = 0; j < r->servers.n; j++) {
            size_t s = 0;
            while (s < c->n_servers && strcmp(c->servers[s].name, r->servers.v[j]) != 0) s++;
            if (s == c->n_servers)
                return fail(c->err, c->errlen, "%s:%d: rule '%s' names unknown server '%s'", c->name, r->server_lines[j],
                            r->name ? r->name : "(unnamed)", r->servers.v[j]);
        }
    }
    return 0;
}

static void free_authz(gw_authz_cfg *a)
{
    for (size_t i = 0; i < a->n_rules; i++) {
        gw_authz_rule_cfg *r = &a->rules[i];
        free(r->name);
        config_strlist_free(&r->servers);
        free(r->server_lines);
        for (int k = 0; k < GW_AUTHZ_KINDS; k++) config_strlist_free(&r->names[k]);
        config_strlist_free(&r->groups);
        config_strlist_free(&r->scopes);
        config_strlist_free(&r->realm_roles);
        config_strlist_free(&r->subjects);
        config_strlist_free(&r->client_ids);
        for (size_t j = 0; j < r->n_claims; j++) {
            config_strlist_free(&r->claims[j].path);
            free(r->claims[j].value);
        }
        free(r->claims);
    }
    free(a->rules);
    for (int k = 0; k < GW_AUTHZ_KINDS; k++) free(a->role_prefix[k]);
    free(a->trusted_key);
    *a = (gw_authz_cfg){0};
}

int config_authz_resolve(gw_config *cfg, char *err, size_t errlen)
{
    if (cfg->trusted_header_key && *cfg->trusted_header_key) {   /* the environment wins over the file */
        free(cfg->authz.trusted_key);
        cfg->authz.trusted_key = xstrdup(cfg->trusted_header_key);
    }
    return authz_validate(cfg, err, errlen);
}
/* ==== end of the authorization section ========================================================= */

static int root_pair(yctx *c, void *obj, yaml_node_t *k, const char *key, yaml_node_t *v)
{
    (void)obj;
    if (!strcasecmp(key, "servers")) return each_item(c, "servers", v, parse_server);
    if (!strcasecmp(key, "virtualServers")) return each_item(c, "virtualServers", v, parse_vserver);
    if (!strcasecmp(key, "gatewayCACertPEM")) return get_str(c, "gatewayCACertPEM", v, &c->ca_pem);
    if (!strcasecmp(key, "oauthProtectedResource") || !strcasecmp(key, "auth")) {
        if (is_null(v)) return 0;
        if (v->type != YAML_MAPPING_NODE) return yerr(c, v, "'%s' must be a mapping", key);
        return each_pair(c, v, &c->auth, tolower((unsigned char)key[0]) == 'a' ? auth_pair : prm_pair);
    }
    if (!strcasecmp(key, "authorization")) return authz_block(c, k, v);
    unknown_key(c, k);
    return 0;
}

void config_strlist_free(gw_strlist *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static void free_auth(gw_auth_cfg *a)
{
    free(a->resource_name);
    free(a->resource);
    config_strlist_free(&a->authorization_servers);
    config_strlist_free(&a->bearer_methods);
    config_strlist_free(&a->scopes_supported);
    for (size_t i = 0; i < a->n_issuers; i++) {
        free(a->issuers[i].issuer_url);
        free(a->issuers[i].jwks_uri);
    }
    free(a->issuers);
    config_strlist_free(&a->audiences);
    config_strlist_free(&a->required_scopes);
    *a = (gw_auth_cfg){.enabled = -1, .leeway_s = 30};
}

static void free_servers(gw_server_cfg *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(s[i].name); free(s[i].url); free(s[i].prefix);
        free(s[i].hostname); free(s[i].credential); free(s[i].ca_cert);
        free(s[i].command); free(s[i].cwd);
        config_strlist_free(&s[i].args);
        config_strlist_free(&s[i].env);
        cred_free(s[i].cred);   /* upstream credentials */
    }
    free(s);
}

static void free_vservers(gw_vserver_cfg *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < v[i].n_tools; j++) free(v[i].tools[j]);
        for (size_t j = 0; j < v[i].n_prompts; j++) free(v[i].prompts[j]);
        free(v[i].tools); free(v[i].prompts); free(v[i].name);
    }
    free(v);
}

static int syntax_error(yaml_parser_t *p, const char *name, char *err, size_t errlen)
{
    const char *what = p->problem ? p->problem : "syntax error";
    if (p->error == YAML_MEMORY_ERROR) return fail(err, errlen, "%s: out of memory", name);
    if (p->error == YAML_READER_ERROR) return fail(err, errlen, "%s: %s at byte %zu", name, what, p->problem_offset);
    if (p->context)
        return fail(err, errlen, "%s:%zu: %s (%s at line %zu)", name, p->problem_mark.line + 1, what, p->context,
                    p->context_mark.line + 1);
    return fail(err, errlen, "%s:%zu: %s", name, p->problem_mark.line + 1, what);
}

int config_load_yaml(gw_config *cfg, const char *name, const char *yaml, size_t len, char *err, size_t errlen)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    yctx c = {.doc = &doc, .name = name, .err = err, .errlen = errlen, .auth = {.enabled = -1, .leeway_s = 30}};
    int rc = -1;

    if (!yaml_parser_initialize(&parser)) oom();
    yaml_parser_set_input_string(&parser, (const unsigned char *)(yaml ? yaml : ""), len);
    if (!yaml_parser_load(&parser, &doc)) {
        rc = syntax_error(&parser, name, err, errlen);
        yaml_parser_delete(&parser);
        return rc;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc); /* NULL for an empty file */
    if (!root || is_null(root)) rc = 0;
    else if (root->type != YAML_MAPPING_NODE) rc = yerr(&c, root, "the top level must be a mapping");
    else rc = each_pair(&c, root, NULL, root_pair);
    if (rc == 0) rc = authz_check_servers(&c);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);

    if (rc < 0) { /* cfg stays as it was */
        free_servers(c.servers, c.n_servers);
        free_vservers(c.vservers, c.n_vservers);
        free(c.ca_pem);
        free_auth(&c.auth);
        free_authz(&c.authz);
        return -1;
    }
    free_auth(&cfg->auth);
    cfg->auth = c.auth;
    free_authz(&cfg->authz);
    cfg->authz = c.authz;
    free_servers(cfg->servers, cfg->n_servers);
    free_vservers(cfg->vservers, cfg->n_vservers);
    free(cfg->gateway_ca_pem);
    cfg->servers = c.servers, cfg->n_servers = c.n_servers;
    cfg->vservers = c.vservers, cfg->n_vservers = c.n_vservers;
    cfg->gateway_ca_pem = c.ca_pem;
    return 0;
}

int config_load_file(gw_config *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) return fail(err, errlen, "%s: %s", path, strerror(errno));
    buf b;
    char chunk[16384];
    size_t n;
    int rc = BUF_OK;
    buf_init(&b, CONFIG_FILE_MAX);
    while (rc == BUF_OK && (n = fread(chunk, 1, sizeof chunk, f)) > 0) rc = buf_append(&b, chunk, n);
    if (rc == BUF_TOOBIG) rc = fail(err, errlen, "%s: larger than %u MiB", path, CONFIG_FILE_MAX >> 20);
    else if (rc == BUF_NOMEM) oom();
    else if (ferror(f)) rc = fail(err, errlen, "%s: %s", path, strerror(errno));
    else rc = config_load_yaml(cfg, path, b.data, b.len, err, errlen);
    fclose(f);
    buf_free(&b);
    return rc;
}

void config_free(gw_config *cfg)
{
    if (!cfg) return;
    for (size_t i = 0; i < NOPTS; i++)
        if (opts[i].type == OPT_STR || opts[i].type == OPT_ENUM) free(*(char **)((char *)cfg + opts[i].off));
    free_servers(cfg->servers, cfg->n_servers);
    free_vservers(cfg->vservers, cfg->n_vservers);
    free(cfg->gateway_ca_pem);
    free_auth(&cfg->auth);
    free_authz(&cfg->authz);
    free(cfg);
}

/* ---- authentication: environment over file, derived values ---- */

/* Comma-separated environment list → l (replacing it), when the variable is set. */
static void env_list(const char *var, gw_strlist *l)
{
    const char *v = getenv(var);
    if (!v || !*v) return;
    config_strlist_free(l);
    char *copy = xstrdup(v), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ' || *t == '\t') t++;
        size_t n = strlen(t);
        while (n && (t[n - 1] == ' ' || t[n - 1] == '\t')) t[--n] = '\0';
        if (!n) continue;
        l->v = xreallocarray(l->v, l->n + 1, sizeof *l->v);
        l->v[l->n++] = xstrdup(t);
    }
    free(copy);
}

static void env_str(const char *var, char **dst)
{
    const char *v = getenv(var);
    if (!v || !*v) return;
    free(*dst);
    *dst = xstrdup(v);
}

int config_auth_on(const gw_config *cfg)
{
    return cfg->auth.enabled != 0 && cfg->auth.n_issuers > 0;
}

static int is_loopback_host(const char *h)
{
    return !strncmp(h, "localhost", 9) || !strncmp(h, "127.", 4) || !strncmp(h, "[::1]", 5);
}

int config_auth_resolve(gw_config *cfg, char *err, size_t errlen)
{
    gw_auth_cfg *a = &cfg->auth;
    env_str("OAUTH_RESOURCE_NAME", &a->resource_name);
    env_str("OAUTH_RESOURCE", &a->resource);
    env_list("OAUTH_AUTHORIZATION_SERVERS", &a->authorization_servers);
    env_list("OAUTH_BEARER_METHODS_SUPPORTED", &a->bearer_methods);
    env_list("OAUTH_SCOPES_SUPPORTED", &a->scopes_supported);
    if (!a->n_issuers)
        for (size_t i = 0; i < a->authorization_servers.n; i++) {
            a->issuers = xreallocarray(a->issuers, a->n_issuers + 1, sizeof *a->issuers);
            a->issuers[a->n_issuers++] = (gw_issuer_cfg){.issuer_url = xstrdup(a->authorization_servers.v[i])};
        }
    if (!a->resource && cfg->public_host && *cfg->public_host) {
        /* https unless the public host is a loopback name (a local setup) */
        size_t n = strlen(cfg->public_host) + 16;
        a->resource = malloc(n);
        if (!a->resource) oom();
        snprintf(a->resource, n, "%s://%s/mcp", is_loopback_host(cfg->public_host) ? "http" : "https",
                 cfg->public_host);
    }
    if (!config_auth_on(cfg)) return 0;
    if (!a->resource || !url_ok(a->resource))
        return fail(err, errlen, "authentication is on (authorization servers are configured) but the resource URI is "
                                 "not absolute: set OAUTH_RESOURCE (e.g. https://mcp.example.com/mcp), "
                                 "oauthProtectedResource.resource, or --mcp-gateway-public-host");
    return 0;
}

/* ---- for reload (src/reload.c) ---- */

void config_servers_free(gw_server_cfg *s, size_t n) { free_servers(s, n); }

static char *dup_or_null(const char *s) { return s ? xstrdup(s) : NULL; }

static void strlist_copy(gw_strlist *dst, const gw_strlist *src)
{
    dst->n = 0;
    dst->v = src->n ? xreallocarray(NULL, src->n, sizeof *dst->v) : NULL;
    for (size_t i = 0; i < src->n; i++) dst->v[dst->n++] = xstrdup(src->v[i]);
}

void config_auth_copy(gw_auth_cfg *dst, const gw_auth_cfg *src)
{
    free_auth(dst);
    *dst = *src;   /* the scalars; every pointer is replaced below */
    dst->resource_name = dup_or_null(src->resource_name);
    dst->resource = dup_or_null(src->resource);
    strlist_copy(&dst->authorization_servers, &src->authorization_servers);
    strlist_copy(&dst->bearer_methods, &src->bearer_methods);
    strlist_copy(&dst->scopes_supported, &src->scopes_supported);
    dst->issuers = src->n_issuers ? xreallocarray(NULL, src->n_issuers, sizeof *dst->issuers) : NULL;
    for (size_t i = 0; i < src->n_issuers; i++)
        dst->issuers[i] = (gw_issuer_cfg){dup_or_null(src->issuers[i].issuer_url), dup_or_null(src->issuers[i].jwks_uri)};
    strlist_copy(&dst->audiences, &src->audiences);
    strlist_copy(&dst->required_scopes, &src->required_scopes);
}
