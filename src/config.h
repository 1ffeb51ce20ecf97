/* config — the gateway's whole configuration: one option table drives command-line flags,
 * environment variables, defaults, bounds and --help; the YAML file (Kuadrant's shape) adds
 * servers, virtual servers and a few blocks. A loaded config is immutable and shared read-only
 * by every loop; a reload builds a new one (src/reload.c). */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct gw_strlist {
    char  **v;
    size_t  n;
} gw_strlist;

/* How the gateway reaches an upstream (servers[].transport / command). Legacy SSE and stdio
 * servers are served through the bridge (bridge.h), which replaces their url at start. */
enum { GW_TRANSPORT_HTTP = 0, GW_TRANSPORT_SSE = 1, GW_TRANSPORT_STDIO = 2 };

typedef struct gw_server_cfg {
    char *name;        /* unique, may contain '/' */
    char *url;         /* upstream MCP endpoint (http:// or https://); NULL for stdio until the
                        * bridge sets it (bridge_start) */
    char *prefix;      /* "" when unset; federated name = prefix + upstream name */
    char *hostname;    /* Kuadrant routing host: informational */
    char *credential;  /* sent verbatim as Authorization upstream; NULL when unset */
    char *ca_cert;     /* PEM; NULL when unset */
    int   enabled;     /* state: "" / Enabled = 1, Disabled = 0 */
    int   line;        /* line of the entry in the file, for messages */
    /* transports other than Streamable HTTP (docs/configuration.md) */
    int        transport;   /* GW_TRANSPORT_*: `transport`, or stdio when `command` is set */
    char      *command;     /* stdio: the program (searched in PATH when it has no '/') */
    gw_strlist args;        /* stdio: its arguments */
    gw_strlist env;         /* stdio: "NAME=value" entries added to its environment */
    char      *cwd;         /* stdio: its working directory; NULL = the gateway's */
    int        per_session; /* stdio: one child per client session (perSession) */
    long       max_children;/* stdio with perSession: at most this many children (maxChildren) */
    long       max_concurrency; /* maxConcurrency: client calls in flight at once in this process;
                                 * 0 = --max-upstream-concurrency (atomic: a reload changes it in place) */
    size_t     inflight;    /* client calls in flight now (atomic; relay.c) */
    struct gw_upcred_cfg *cred; /* upstream credentials beyond `credential` (below); NULL = none */
    /* once in use, an entry is a server slot (src/reload.c): immutable but for prefix (read on
     * the control loop only, so a reload changes it in place), max_concurrency, inflight and: */
    int         removed;    /* a reload removed or replaced it: the slot is dead (atomic, set once) */
    const char *written_url;/* legacy SSE behind the bridge: the url as written (url is the bridge's) */
} gw_server_cfg;

/* A server slot still in use (not removed by a reload). */
static inline int gw_server_live(const gw_server_cfg *s) { return !__atomic_load_n(&s->removed, __ATOMIC_RELAXED); }

/* ==== upstream credentials (src/upcred.c, docs/external-servers.md) ==========================
 * What a server's entry says about the credentials the gateway presents to it, beyond the
 * Kuadrant `credential` (which, like credentialEnv and credentialFile, ends up resolved in
 * gw_server_cfg.credential). Secrets are held here resolved; nothing prints them. */
typedef struct gw_oauth_client_cfg {
    char *token_url;        /* tokenUrl: the IdP's token endpoint (required) */
    char *client_id;        /* clientId (required) */
    char *client_secret;    /* clientSecret / clientSecretEnv / clientSecretFile, resolved; NULL = none */
    char *secret_file;      /* clientSecretFile: read again when the token endpoint answers 401 */
    int   auth_post;        /* clientAuth: client_secret_post (1) or client_secret_basic (0, default) */
    char *audience;         /* audience parameter; tokenExchange: default the server's name */
    char *scope;            /* optional */
    char *resource;         /* optional RFC 8707 resource parameter */
    int   line;
} gw_oauth_client_cfg;

typedef struct gw_upcred_cfg {
    const char *cred_key;   /* which key gave gw_server_cfg.credential ("credential", "credentialEnv",
                             * "credentialFile") or NULL; static string */
    int         cred_line;
    char       *cred_file;  /* credentialFile: read again on a 401 */
    gw_strlist  headers;    /* headers: "Name: value" lines, values resolved */
    gw_oauth_client_cfg *exchange;   /* tokenExchange: per-caller tokens (RFC 8693) */
    gw_oauth_client_cfg *client;     /* clientCredentials: the gateway's own token */
    int         forward;    /* forwardAuthorization: true — the caller's own token (unsafe) */
    char       *client_cert;   /* clientCert / clientCertFile: PEM (mTLS) */
    char       *client_key;    /* clientKey / clientKeyFile: PEM */
    char       *tls_server_name;   /* tlsServerName: verified name and SNI */
} gw_upcred_cfg;
/* Reads a secret from a file (credentialFile, clientSecretFile, ...): the whole file, trailing
 * whitespace trimmed, at most 64 KiB. Returns 0 with a malloc'd *out, or -1 with the reason
 * (never the content) in why. */
int  config_secret_file(const char *path, char **out, char *why, size_t whylen);
/* ==== end of upstream credentials ============================================================ */

typedef struct gw_vserver_cfg {
    char  *name;
    char **tools;    size_t n_tools;   int tools_set;   /* omitted = all */
    char **prompts;  size_t n_prompts; int prompts_set; /* omitted = all */
    int    line;
} gw_vserver_cfg;

#define GW_VERSION "0.1.0"

typedef struct gw_issuer_cfg {
    char *issuer_url;  /* exact "iss" value expected in tokens */
    char *jwks_uri;    /* NULL = discovered from the issuer's metadata */
} gw_issuer_cfg;

/* Authentication: the YAML blocks oauthProtectedResource (Kuadrant's CRD keys) and auth, with
 * the OAUTH_* environment variables winning over the file. See docs/authentication.md. */
typedef struct gw_auth_cfg {
    /* protected resource metadata (RFC 9728) */
    char         *resource_name;          /* NULL = "MCP Server" */
    char         *resource;               /* NULL = "/mcp" in the document; auth needs it absolute */
    gw_strlist    authorization_servers;
    gw_strlist    bearer_methods;         /* empty = ["header"] */
    gw_strlist    scopes_supported;       /* empty = ["basic"] */
    /* token validation */
    int           enabled;                /* -1 unset: on when issuers or authorization servers exist */
    gw_issuer_cfg *issuers;  size_t n_issuers;  /* empty = the authorization servers, discovered */
    gw_strlist    audiences;              /* empty = the resource URI */
    long          leeway_s;               /* exp/nbf leeway, default 30 */
    gw_strlist    required_scopes;
    int           protect_status;         /* /status needs a token too (default off) */
} gw_auth_cfg;

/* ---- authorization: the YAML block `authorization:` (docs/authorization.md) ------------------
 * Plain data as written, with lines for messages; src/authz.c compiles it at start. */
enum { GW_AUTHZ_ROLES = 1, GW_AUTHZ_RULES = 2 };              /* mode bits */
enum { GW_AUTHZ_TOOL, GW_AUTHZ_PROMPT, GW_AUTHZ_RESOURCE, GW_AUTHZ_KINDS };

typedef struct gw_authz_claim_cfg {
    gw_strlist path;       /* claim path segments ("a.b.c" or [a, b, c]) */
    int        contains;   /* 0: equals, 1: contains */
    char      *value;
    int        line;
} gw_authz_claim_cfg;

typedef struct gw_authz_rule_cfg {
    char      *name;                       /* NULL: named "rule <n>" */
    int        line;
    int        allow;                      /* effect: allow (1) or deny (0) */
    gw_strlist servers;                    /* config names; empty = every server */
    int       *server_lines;               /* line of each entry */
    gw_strlist names[GW_AUTHZ_KINDS];      /* tools / prompts / resources: exact or glob ('*') */
    unsigned   kinds;                      /* bit per kind named by the rule; 0 = every kind */
    unsigned   methods;                    /* bit per authz method (authz.h); 0 = every method */
    /* when: every condition given must hold */
    gw_strlist groups, scopes, realm_roles, subjects, client_ids;
    gw_authz_claim_cfg *claims;  size_t n_claims;
} gw_authz_rule_cfg;

typedef struct gw_authz_cfg {
    int   on;                              /* the block is present */
    int   line;
    int   mode;                            /* GW_AUTHZ_ROLES | GW_AUTHZ_RULES */
    int   default_allow;                   /* default: deny (0) or allow (1) */
    int   hide_denied;                     /* denied calls answered like unknown names */
    int   audit;                           /* one log line per call decision (default on) */
    char *role_prefix[GW_AUTHZ_KINDS];     /* NULL = "tool:", "prompt:", "resource:" */
    gw_authz_rule_cfg *rules;  size_t n_rules;
    char *trusted_key;                     /* trustedHeaderPublicKey (PEM) */
} gw_authz_cfg;

typedef struct gw_config {
    /* --- options (the table in config.c) --- */
    char  *config_file;        /* --mcp-gateway-config */
    char  *listen_addr;        /* --mcp-broker-public-address host:port, default 127.0.0.1:8080 */
    char  *public_host;        /* --mcp-gateway-public-host */
    char  *metrics_addr;       /* --metrics-addr (accepted; "" = off) */
    int    log_level;          /* --log-level */
    char  *log_format;         /* --log-format txt|json */
    long   session_length_min; /* --session-length, minutes */
    long   check_interval_s;   /* --mcp-check-interval */
    int    enforce_capability_filtering;
    long   max_request_body;   /* --max-request-body-size bytes */
    long   max_header_size;    /* --max-header-size bytes (whole header section) */
    long   max_headers;        /* --max-headers count */
    long   max_url_length;     /* --max-url-length */
    long   max_json_depth;     /* --max-json-depth */
    long   max_sessions;       /* --max-sessions */
    long   session_idle_s;     /* --session-idle-timeout seconds */
    long   upstream_timeout_ms;/* --upstream-timeout (seconds on the command line) */
    long   max_upstream_response; /* --max-upstream-response-size bytes */
    long   header_timeout_ms;  /* --header-timeout seconds */
    long   idle_timeout_ms;    /* --keepalive-timeout seconds */
    long   body_timeout_ms;    /* --body-timeout seconds */
    long   max_sse_streams;    /* --max-sse-streams total */
    long   max_sessions_per_subject; /* --max-sessions-per-subject, 0 = none */
    long   max_id_len;         /* --max-jsonrpc-id-length */
    long   max_method_len;     /* --max-method-length */
    long   max_upstream_concurrency; /* --max-upstream-concurrency per server, 0 = none */
    long   max_session_events; /* --max-session-events (resumability store, per session) */
    long   max_session_event_bytes; /* --max-session-event-bytes */
    long   max_client_queue;   /* --max-client-write-queue bytes */
    int    workers;            /* --workers, 0 = number of cores */
    char  *allowed_origins;    /* --allowed-origins comma list; NULL = defaults */
    char  *signing_key;        /* GATEWAY_SIGNING_KEY (env only) */
    char  *cache_url;          /* CACHE_CONNECTION_STRING (env only); NULL = in memory */
    int    check_config;       /* --check-config */
    int    allow_anonymous;    /* --allow-anonymous */
    char  *trusted_header_key; /* TRUSTED_HEADER_PUBLIC_KEY (env only): PEM P-256, x-mcp-authorized */
    char  *otel_endpoint;        /* OTEL_EXPORTER_OTLP_ENDPOINT (env only): traces to <url>/v1/traces */
    char  *otel_traces_endpoint; /* OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (env only): the full traces URL */
    char  *otel_headers;         /* OTEL_EXPORTER_OTLP_HEADERS (env only): k=v,k2=v2 for the collector */
    char  *otel_service_name;    /* OTEL_SERVICE_NAME (env only), default mcp-gateway */

    /* --- from the YAML file --- */
    gw_server_cfg  *servers;   size_t n_servers;
    gw_vserver_cfg *vservers;  size_t n_vservers;
    char           *gateway_ca_pem;
    gw_auth_cfg     auth;
    gw_authz_cfg    authz;     /* authorization: (config.c's authorization section) */

    /* --- once the config is in use (src/reload.c; config.c neither sets nor frees these) ---
     * servers is then the process's slot table, shared by every config in use: an index is a
     * server for the process's life (a reload never reuses one); n_servers counts the slots
     * used when this config was published, live or removed; order lists this config's own
     * servers, in file order. */
    size_t               servers_cap;  /* capacity of the slot table; 0 = not in use */
    size_t              *order;        /* n_order slots, file order; NULL = 0..n_servers-1 */
    size_t               n_order;
    uint64_t             generation;   /* 1 at start, +1 per applied reload */
    struct authz_policy *policy;       /* the authorization block compiled against the slots */
    struct prm_set      *prm;          /* the virtual servers' protected resource metadata */
} gw_config;

/* The config's i-th server in file order (i < gw_config_n_live): a slot index. */
static inline size_t gw_config_live(const gw_config *c, size_t i) { return c->order ? c->order[i] : i; }
static inline size_t gw_config_n_live(const gw_config *c) { return c->order ? c->n_order : c->n_servers; }

/* Parses argv and the environment (flags win over env, env over the file's options, then
 * defaults), then loads the YAML file named by --mcp-gateway-config if any.
 * Returns 0 and a new config in *out; 1 when the program should exit 0 at once (--help,
 * --version printed); -1 on error with a message "file:line: what" or "--flag: what" in err. */
int  config_load(int argc, char **argv, gw_config **out, char *err, size_t errlen);

/* Loads only the YAML file into cfg (servers, virtual servers, blocks). Used by config_load
 * and by reload. Unknown keys are warnings logged with file:line; errors go to err. */
int  config_load_file(gw_config *cfg, const char *path, char *err, size_t errlen);

/* Same, from a string (tests); name is used in messages. */
int  config_load_yaml(gw_config *cfg, const char *name, const char *yaml, size_t len, char *err, size_t errlen);

/* Applies OAUTH_* from the environment over the file's auth blocks and derives the rest
 * (issuers from authorization servers, the absolute resource from --mcp-gateway-public-host).
 * Returns -1 with a message when authentication is on but cannot work. */
int  config_auth_resolve(gw_config *cfg, char *err, size_t errlen);
int  config_auth_on(const gw_config *cfg);
/* Authorization: TRUSTED_HEADER_PUBLIC_KEY over authorization.trustedHeaderPublicKey, then the
 * whole block compiled once (authz_validate) so that --check-config reports what start would. */
int  config_authz_resolve(gw_config *cfg, char *err, size_t errlen);
void config_strlist_free(gw_strlist *l);

void config_defaults(gw_config *cfg);   /* every option at its default; no servers. cfg is
                                          * overwritten whole: give it a fresh (e.g. calloc'd) one */
void config_free(gw_config *cfg);       /* frees everything cfg owns and cfg itself; NULL is fine */
void config_usage(FILE *out);           /* --help text, generated from the table */
/* For reload (src/reload.c): frees n server entries and the array; replaces dst (freed first)
 * with a deep copy of src. */
void config_servers_free(gw_server_cfg *s, size_t n);
void config_auth_copy(gw_auth_cfg *dst, const gw_auth_cfg *src);
#endif
