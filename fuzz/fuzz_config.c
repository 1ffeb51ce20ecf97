/* fuzz_config — the YAML configuration loader (config_load_yaml) on arbitrary files.
 *
 * Each input is loaded into a fresh config (config_defaults on a calloc'd gw_config), then
 * loaded a second time over the result (a reload replaces servers, virtual servers and the
 * auth blocks: the old ones must be freed, not leaked or reused), then a failing file is loaded
 * over it, then the config is resolved and freed. Checks: 0 or -1 with "name:line: what" (or "name: what") in
 * err; a failed load leaves the config as it was; a loaded config is consistent (every server
 * has a name, a prefix and, unless it is a stdio server, an http(s) url; every virtual server a
 * name; the same file loads to the same counts twice). The auth settings are resolved, and the
 * authorization block checked where config.c has config_authz_resolve. Warnings for unknown keys
 * are silenced. */
#include "config.h"
#include "log.h"
#include "fuzz_util.h"
#include <string.h>
#include <strings.h>

/* The authorization block's checks (servers named by rules exist, ...), where this tree has
 * them: weak, so that the target also builds against a config.c without them. */
int config_authz_resolve(gw_config *cfg, char *err, size_t errlen);
#pragma weak config_authz_resolve

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    log_setup(1000, 0); /* nothing is logged */
    return 0;
}

static void check_loaded(const gw_config *c)
{
    for (size_t i = 0; i < c->n_servers; i++) {
        const gw_server_cfg *s = &c->servers[i];
        FZ_CHECK(s->name && s->prefix, "server %zu: name / prefix", i);
        FZ_CHECK(s->transport >= GW_TRANSPORT_HTTP && s->transport <= GW_TRANSPORT_STDIO, "transport %d", s->transport);
        if (s->transport == GW_TRANSPORT_STDIO) FZ_CHECK(s->command && *s->command, "stdio server without command");
        else FZ_CHECK(s->url && (!strncasecmp(s->url, "http://", 7) || !strncasecmp(s->url, "https://", 8)),
                      "server '%s' url", s->name);
        for (size_t j = 0; j < s->args.n; j++) FZ_CHECK(s->args.v[j], "args");
        for (size_t j = 0; j < s->env.n; j++) FZ_CHECK(s->env.v[j] && strchr(s->env.v[j], '='), "env");
    }
    for (size_t i = 0; i < c->n_vservers; i++) {
        const gw_vserver_cfg *v = &c->vservers[i];
        FZ_CHECK(v->name, "virtual server %zu without name", i);
        for (size_t j = 0; j < v->n_tools; j++) FZ_CHECK(v->tools[j], "tools");
        for (size_t j = 0; j < v->n_prompts; j++) FZ_CHECK(v->prompts[j], "prompts");
    }
    for (size_t i = 0; i < c->auth.n_issuers; i++) FZ_CHECK(c->auth.issuers[i].issuer_url, "issuer url");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gw_config *cfg = calloc(1, sizeof *cfg);
    FZ_CHECK(cfg, "calloc");
    config_defaults(cfg);
    char err[512] = "";
    int rc = config_load_yaml(cfg, "fuzz.yaml", (const char *)data, size, err, sizeof err);
    FZ_CHECK(rc == 0 || rc == -1, "rc %d", rc);
    if (rc) {
        FZ_CHECK(strncmp(err, "fuzz.yaml", 9) == 0 && (err[9] == ':'), "error without the file name: %s", err);
        FZ_CHECK(cfg->n_servers == 0 && cfg->n_vservers == 0 && !cfg->servers && !cfg->gateway_ca_pem,
                 "a failed load changed the config");
    } else {
        check_loaded(cfg);
        size_t ns = cfg->n_servers, nv = cfg->n_vservers, ni = cfg->auth.n_issuers;
        err[0] = '\0';
        FZ_CHECK(config_load_yaml(cfg, "fuzz.yaml", (const char *)data, size, err, sizeof err) == 0,
                 "second load failed: %s", err);
        FZ_CHECK(cfg->n_servers == ns && cfg->n_vservers == nv && cfg->auth.n_issuers == ni, "reload differs");
        check_loaded(cfg);
        /* a failing load over a loaded config leaves it intact */
        static const char bad[] = "servers: [ {name: x} ]\n";
        FZ_CHECK(config_load_yaml(cfg, "bad.yaml", bad, sizeof bad - 1, err, sizeof err) == -1, "bad file loaded");
        FZ_CHECK(cfg->n_servers == ns && cfg->n_vservers == nv, "failed reload changed the config");
        check_loaded(cfg);
        char aerr[512] = "";
        int ar = config_auth_resolve(cfg, aerr, sizeof aerr);
        FZ_CHECK(ar == 0 || (ar == -1 && aerr[0]), "config_auth_resolve %d", ar);
        config_auth_on(cfg);
        if (config_authz_resolve) {
            aerr[0] = '\0';
            ar = config_authz_resolve(cfg, aerr, sizeof aerr);
            FZ_CHECK(ar == 0 || (ar == -1 && aerr[0]), "config_authz_resolve %d", ar);
        }
    }
    config_free(cfg);
    return 0;
}
