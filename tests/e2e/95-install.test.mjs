// Installation and deployment files: `make install` into a DESTDIR (the binary, the man page, the
// example config, the systemd unit), the man page against --help, the unit through
// systemd-analyze, the Kubernetes manifests through a YAML parser and a real gateway started with
// their arguments, and the Containerfile against Debian's package names and the binary's libraries.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import YAML from "yaml";
import * as L from "./lib.mjs";

const ROOT = L.ROOT;
const BIN = L.GATEWAY_BIN;
const KUBE_DIR = path.join(ROOT, "deploy/kubernetes");
const CONTAINERFILE = path.join(ROOT, "deploy/Containerfile");
const UNIT_SRC = path.join(ROOT, "deploy/systemd/mcp-gateway.service");

/** Run a command to completion (no shell); returns { status, stdout, stderr }, the run logged. */
function run(cmd, args, { env = {}, cwd = ROOT, timeout = 120000 } = {}) {
  const r = spawnSync(cmd, args, { cwd, env: { ...process.env, ...env }, encoding: "utf8", timeout });
  fs.appendFileSync(path.join(L.LOG_DIR, "95-install-runs.log"),
    `\n=== $ ${[cmd, ...args].join(" ")}\n--- status ${r.status} signal ${r.signal} ${r.error ?? ""}\n` +
    `--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}\n`);
  return r;
}
const ok = (r, what) => assert.equal(r.status, 0, `${what}: exit ${r.status} ${r.error ?? ""}\n${r.stdout}\n${r.stderr}`);

/** The --help text and what it lists: flags, variables, defaults. */
function helpInfo() {
  const r = run(BIN, ["--help"]);
  ok(r, "--help");
  const text = r.stdout;
  const flags = [...text.matchAll(/^ {2}(?:-h, )?--([a-z0-9-]+)/gm)].map((m) => m[1]);
  const envOnly = [...text.matchAll(/^ {2}env ([A-Z0-9_]+)/gm)].map((m) => m[1]);
  const envs = [...text.matchAll(/^ {8}env ([A-Z0-9_]+),/gm)].map((m) => m[1]);
  const def = (flag) => new RegExp(`^  --${flag} .*\\n.*\\n.*default: "([^"]*)"`, "m").exec(text)?.[1];
  return { text, flags, envOnly, envs, def };
}

/** A systemd unit file: { Section: [[key, value], …] }, comments and blank lines dropped. */
function parseUnit(text) {
  const out = {};
  let sec = null;
  for (const raw of text.replace(/\\\n/g, " ").split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#") || line.startsWith(";")) continue;
    const m = /^\[([A-Za-z]+)\]$/.exec(line);
    if (m) { sec = m[1]; out[sec] ??= []; continue; }
    const eq = line.indexOf("=");
    assert.ok(sec && eq > 0, `unit: line outside a section or without '=': ${line}`);
    out[sec].push([line.slice(0, eq).trim(), line.slice(eq + 1).trim()]);
  }
  return out;
}
const unitGet = (u, sec, key) => (u[sec] ?? []).filter(([k]) => k === key).map(([, v]) => v);

/** Split a systemd command line (no quoting is used in ours) into argv, without the prefix chars. */
const unitArgv = (line) => line.replace(/^[-@:+!]+/, "").split(/\s+/).filter(Boolean);

/** Flags of an argv: "--flag=value" and "--flag value" alike → Map(flag → value). */
function argFlags(args) {
  const m = new Map();
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith("-")) continue;
    const name = a.replace(/^--?/, "");
    const eq = name.indexOf("=");
    if (eq >= 0) m.set(name.slice(0, eq), name.slice(eq + 1));
    else if (i + 1 < args.length && !args[i + 1].startsWith("-")) m.set(name, args[++i]);
    else m.set(name, "true");
  }
  return m;
}

// ------------------------------------------------------------------ make install / uninstall

describe("make install", () => {
  let dest;
  let help;
  const stage = (p) => path.join(dest, p);
  const make = (...targets) => run("make", ["--no-print-directory", "-o", BIN, ...targets,
                                            `GATEWAY=${BIN}`, `DESTDIR=${dest}`, "PREFIX=/usr"],
                                      { timeout: 180000, env: { MAKEFLAGS: "" } });   // not make test's jobserver

  before(() => {
    assert.ok(fs.existsSync(BIN), `${BIN} is not built`);
    help = helpInfo();
    dest = L.tmpDir();
    ok(make("install"), "make install");
  });
  after(() => L.cleanup());

  test("the files are there with their modes", () => {
    const want = {
      "usr/bin/mcp-gateway": 0o755,
      "usr/share/man/man8/mcp-gateway.8": 0o644,
      "usr/share/doc/mcp-gateway/examples/gateway.yaml": 0o644,
      "usr/share/doc/mcp-gateway/examples/mcp-gateway.env": 0o644,
      "usr/lib/systemd/system/mcp-gateway.service": 0o644,
      "etc/mcp-gateway/gateway.yaml": 0o644,
      "etc/mcp-gateway/mcp-gateway.env": 0o600,      // it holds the signing key and OAuth settings
    };
    for (const [f, mode] of Object.entries(want)) {
      const st = fs.statSync(stage(f), { throwIfNoEntry: false });
      assert.ok(st?.isFile(), `${f} installed`);
      assert.equal((st.mode & 0o777).toString(8), mode.toString(8), `${f} mode`);
    }
    assert.deepEqual(fs.readFileSync(stage("usr/bin/mcp-gateway")), fs.readFileSync(BIN), "the binary is the build's");
  });

  test("the installed binary runs --help, --version and --check-config with the installed example config", () => {
    const bin = stage("usr/bin/mcp-gateway");
    const h = run(bin, ["--help"]);
    ok(h, "--help");
    assert.equal(h.stdout, help.text, "the installed --help is the build's");
    const v = run(bin, ["--version"]);
    ok(v, "--version");
    assert.match(v.stdout, /^mcp-gateway \d+\.\d+\.\d+/);
    for (const cfg of ["etc/mcp-gateway/gateway.yaml", "usr/share/doc/mcp-gateway/examples/gateway.yaml"]) {
      const c = run(bin, ["--mcp-gateway-config", stage(cfg), "--check-config"], { env: { GATEWAY_SIGNING_KEY: L.SIGNING_KEY } });
      ok(c, `--check-config ${cfg}`);
      assert.match(c.stdout, /^configuration OK: \d+ server\(s\)/, cfg);
    }
  });

  test("the man page lists every flag and variable of --help, its generated part is up to date, groff is quiet", (t) => {
    const page = fs.readFileSync(stage("usr/share/man/man8/mcp-gateway.8"), "utf8");
    assert.equal(page, fs.readFileSync(path.join(ROOT, "docs/mcp-gateway.8"), "utf8"));
    const plain = page.replace(/\\f[BIRP]/g, "").replace(/\\-/g, "-").replace(/\\\(dq/g, '"');
    assert.ok(help.flags.length > 20, `flags parsed from --help: ${help.flags.length}`);
    const missing = [...help.flags.map((f) => `--${f}`), ...help.envOnly, ...help.envs].filter((x) => !plain.includes(x));
    assert.deepEqual(missing, [], "in --help but not in docs/mcp-gateway.8 (run `make man`)");
    // the generated parts, exactly
    for (const [part, mode] of [["OPTIONS", "options"], ["ENVIRONMENT", "env"]]) {
      const m = new RegExp(`^\\.\\\\" BEGIN GENERATED ${part}.*\\n([\\s\\S]*?)^\\.\\\\" END GENERATED ${part}`, "m").exec(page);
      assert.ok(m, `the ${part} markers`);
      const gen = run(path.join(ROOT, "scripts/man-options.sh"), [BIN, mode]);
      ok(gen, "scripts/man-options.sh");
      assert.equal(m[1], gen.stdout, `docs/mcp-gateway.8 ${part} no longer matches --help: run \`make man\``);
    }
    const ver = run(BIN, ["--version"]).stdout.trim().split(" ")[1];
    assert.match(page, new RegExp(`^\\.TH MCP\\\\-GATEWAY 8 "[^"]*" "mcp-gateway ${ver.replace(/\./g, "\\.")}"`, "m"),
                 ".TH carries the binary's version (make man)");
    const groff = run("groff", ["-man", "-Tutf8", "-ww", "-z", stage("usr/share/man/man8/mcp-gateway.8")]);
    if (groff.error?.code === "ENOENT") t.diagnostic("groff not installed: the page was not typeset");
    else {
      ok(groff, "groff");
      assert.equal(groff.stderr, "", "groff warnings");
    }
  });

  test("the systemd unit: paths of this installation, drain, reload, hardening; systemd-analyze verify", (t) => {
    const unitFile = stage("usr/lib/systemd/system/mcp-gateway.service");
    const text = fs.readFileSync(unitFile, "utf8");
    const u = parseUnit(text);
    for (const s of ["Unit", "Service", "Install"]) assert.ok(u[s], `[${s}] section`);
    const start = unitGet(u, "Service", "ExecStart");
    assert.equal(start.length, 1, "one ExecStart");
    const argv = unitArgv(start[0]);
    assert.equal(argv[0], "/usr/bin/mcp-gateway", "ExecStart is the installed binary (PREFIX=/usr)");
    assert.equal(argFlags(argv).get("mcp-gateway-config"), "/etc/mcp-gateway/gateway.yaml");
    assert.deepEqual(unitGet(u, "Service", "EnvironmentFile"), ["-/etc/mcp-gateway/mcp-gateway.env"]);
    assert.ok(unitGet(u, "Service", "ExecReload").some((l) => /kill -HUP \$MAINPID$/.test(l)), "ExecReload sends SIGHUP");
    assert.deepEqual(unitGet(u, "Service", "KillSignal"), ["SIGTERM"]);
    assert.deepEqual(unitGet(u, "Service", "KillMode"), ["mixed"], "SIGTERM to the gateway only: it stops its children");
    const upstreamTimeout = Number(help.def("upstream-timeout"));
    assert.ok(upstreamTimeout > 0, "--upstream-timeout default from --help");
    const stopSec = Number(unitGet(u, "Service", "TimeoutStopSec")[0]);
    assert.ok(stopSec > upstreamTimeout + 2, `TimeoutStopSec ${stopSec} > drain (${upstreamTimeout} + 2 s)`);
    const yes = (k) => assert.deepEqual(unitGet(u, "Service", k), ["yes"], k);
    ["NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices", "RestrictSUIDSGID", "LockPersonality"].forEach(yes);
    assert.deepEqual(unitGet(u, "Service", "ProtectSystem"), ["strict"]);
    assert.ok(unitGet(u, "Service", "DynamicUser")[0] === "yes" || unitGet(u, "Service", "User").length, "not root");
    assert.deepEqual(unitGet(u, "Service", "CapabilityBoundingSet"), [""], "no capabilities");

    // the unit's own command lines, with this DESTDIR's paths: ExecStartPre and ExecReload's check pass,
    // ExecStart serves (on a free port: the environment file's variables are all commented out)
    const rewrite = (s) => s.replaceAll("/usr/bin/mcp-gateway", stage("usr/bin/mcp-gateway"))
                             .replaceAll("/etc/mcp-gateway/", `${stage("etc/mcp-gateway")}/`);
    const envFile = fs.readFileSync(stage("etc/mcp-gateway/mcp-gateway.env"), "utf8");
    assert.deepEqual(envFile.split("\n").filter((l) => l.trim() && !l.trim().startsWith("#")), [],
                     "the installed environment file sets nothing until edited");
    for (const line of [...unitGet(u, "Service", "ExecStartPre"), ...unitGet(u, "Service", "ExecReload").filter((l) => !/kill/.test(l))]) {
      const [cmd, ...args] = unitArgv(rewrite(line));
      ok(run(cmd, args), line);
    }

    const verifyDir = L.tmpDir();
    const copy = path.join(verifyDir, "mcp-gateway.service");
    fs.writeFileSync(copy, rewrite(text));
    const env = { MANPATH: stage("usr/share/man"), SYSTEMD_LOG_COLOR: "0" };
    const v = run("systemd-analyze", ["verify", copy], { env });
    if (v.error?.code === "ENOENT") {
      t.diagnostic("systemd-analyze not installed: the unit was checked by the structural parse above only");
      return;
    }
    ok(v, "systemd-analyze verify");
    assert.equal(v.stderr.trim(), "", "systemd-analyze verify says nothing");
    const sec = run("systemd-analyze", ["security", "--offline=true", "--threshold=20", "--no-pager", copy], { env });
    ok(sec, "systemd-analyze security (exposure at most 2.0)");
    t.diagnostic(sec.stdout.trim().split("\n").pop());
  });

  test("the unit's ExecStart serves /healthz", async () => {
    const u = parseUnit(fs.readFileSync(stage("usr/lib/systemd/system/mcp-gateway.service"), "utf8"));
    const ex = await L.startExample({ name: "server1" });
    const cfg = L.writeConfig([{ name: "example/server1", url: ex.url, prefix: "s1_" }]);
    const [cmd, ...args] = unitArgv(unitGet(u, "Service", "ExecStart")[0]);
    assert.equal(cmd, "/usr/bin/mcp-gateway");
    const port = await L.freePort();
    const a = args.map((x) => (x === "/etc/mcp-gateway/gateway.yaml" ? cfg : x));
    const p = L.spawnProc("installed-gateway", stage("usr/bin/mcp-gateway"), a, {
      env: { MCP_GATEWAY_MCP_BROKER_PUBLIC_ADDRESS: `127.0.0.1:${port}`, GATEWAY_SIGNING_KEY: L.SIGNING_KEY,
             OAUTH_AUTHORIZATION_SERVERS: "", OAUTH_RESOURCE: "" } });
    await L.waitHttp(`http://127.0.0.1:${port}/healthz`, { proc: p, ok: (s) => s === 200, timeout: 20000 });
    await L.waitHttp(`http://127.0.0.1:${port}/readyz`, { proc: p, ok: (s) => s === 200, timeout: 20000 });
    assert.equal((await p.stop(10000)).code, 0, "SIGTERM: drained, exit 0");
  });

  test("a second install keeps the edited configuration; uninstall leaves it and removes the rest", () => {
    const cfg = stage("etc/mcp-gateway/gateway.yaml");
    fs.appendFileSync(cfg, "# edited by the administrator\n");
    const again = make("install");
    ok(again, "make install (again)");
    assert.match(again.stdout, /kept .*gateway\.yaml/);
    assert.match(fs.readFileSync(cfg, "utf8"), /# edited by the administrator\n$/);
    ok(make("uninstall"), "make uninstall");
    for (const f of ["usr/bin/mcp-gateway", "usr/share/man/man8/mcp-gateway.8", "usr/lib/systemd/system/mcp-gateway.service",
                     "usr/share/doc/mcp-gateway"])
      assert.ok(!fs.existsSync(stage(f)), `${f} removed`);
    assert.ok(fs.existsSync(cfg) && fs.existsSync(stage("etc/mcp-gateway/mcp-gateway.env")), "configuration kept");
  });
});

// ------------------------------------------------------------------ deploy/kubernetes

/** Every document of every YAML file in deploy/kubernetes: [{ file, doc }]. */
function kubeDocs() {
  const out = [];
  for (const f of fs.readdirSync(KUBE_DIR).filter((x) => /\.ya?ml$/.test(x)).sort()) {
    const docs = YAML.parseAllDocuments(fs.readFileSync(path.join(KUBE_DIR, f), "utf8"), { prettyErrors: true });
    for (const d of docs) {
      assert.deepEqual(d.errors.map(String), [], `${f}: YAML errors`);
      assert.deepEqual(d.warnings.map(String), [], `${f}: YAML warnings`);
      const doc = d.toJS();
      if (doc !== null) out.push({ file: f, doc });
    }
  }
  return out;
}

const subsetOf = (a, b) => Object.entries(a ?? {}).every(([k, v]) => b?.[k] === v);

describe("deploy/kubernetes", () => {
  let all, byKind, dep, ctr, svc, cm, secret, redisDep, redisSvc;
  const one = (kind, name) => {
    const xs = all.filter((x) => x.doc.kind === kind && (!name || x.doc.metadata?.name === name));
    assert.equal(xs.length, 1, `one ${kind}${name ? ` ${name}` : ""} (found ${xs.length})`);
    return xs[0].doc;
  };
  /** The container's environment with secretKeyRef / configMapKeyRef resolved from the manifests. */
  const resolvedEnv = () => {
    const env = {};
    for (const e of ctr.env ?? []) {
      if ("value" in e) { env[e.name] = String(e.value); continue; }
      const ref = e.valueFrom?.secretKeyRef ?? e.valueFrom?.configMapKeyRef;
      assert.ok(ref, `env ${e.name}: value or a key reference`);
      const src = e.valueFrom.secretKeyRef ? one("Secret", ref.name) : one("ConfigMap", ref.name);
      const v = src.stringData?.[ref.key] ?? (src.data?.[ref.key] !== undefined
        ? (e.valueFrom.secretKeyRef && !src.stringData ? Buffer.from(src.data[ref.key], "base64").toString() : src.data[ref.key]) : undefined);
      assert.ok(v !== undefined || ref.optional, `env ${e.name}: ${ref.name} has no key ${ref.key}`);
      if (v !== undefined) env[e.name] = v;
    }
    return env;
  };
  const portOf = (p) => {   // a probe's or Service's port: a name or a number → the container port
    if (typeof p === "number") return p;
    const cp = ctr.ports.find((x) => x.name === p);
    assert.ok(cp, `container port named ${p}`);
    return cp.containerPort;
  };
  const hostPort = (v) => { const m = /^(.*):(\d+)$/.exec(v ?? ""); assert.ok(m, `host:port ${v}`); return { host: m[1], port: Number(m[2]) }; };

  before(() => {
    all = kubeDocs();
    byKind = (k) => all.filter((x) => x.doc.kind === k);
    dep = one("Deployment", "mcp-gateway");
    ctr = dep.spec.template.spec.containers.find((c) => c.name === "mcp-gateway");
    assert.ok(ctr, "the mcp-gateway container");
    svc = one("Service", "mcp-gateway");
    secret = one("Secret", "mcp-gateway-secrets");
    cm = one("ConfigMap", "mcp-gateway-config");
    redisDep = one("Deployment", "mcp-gateway-redis");
    redisSvc = one("Service", "mcp-gateway-redis");
  });
  after(() => L.cleanup());

  test("every file parses; every object has apiVersion, kind, name; kustomization lists them all", () => {
    for (const { file, doc } of all) {
      assert.ok(doc.apiVersion && doc.kind, `${file}: apiVersion and kind`);
      if (doc.kind !== "Kustomization") assert.ok(doc.metadata?.name, `${file}: metadata.name`);
    }
    const k = one("Kustomization");
    const files = fs.readdirSync(KUBE_DIR).filter((x) => /\.ya?ml$/.test(x) && x !== "kustomization.yaml").sort();
    assert.deepEqual([...k.resources].sort(), files, "kustomization resources = the files");
    assert.ok(k.images?.some((i) => i.name === ctr.image), "kustomization sets the gateway's image");
  });

  test("Deployment: 3 replicas, selector matches its pods, Service and PodDisruptionBudget select them (and not Redis)", () => {
    assert.equal(dep.spec.replicas, 3);
    const podLabels = dep.spec.template.metadata.labels;
    assert.ok(subsetOf(dep.spec.selector.matchLabels, podLabels), "Deployment selector matches its template");
    assert.ok(Object.keys(svc.spec.selector).length, "Service has a selector");
    assert.ok(subsetOf(svc.spec.selector, podLabels), "Service selects the gateway pods");
    assert.ok(!subsetOf(svc.spec.selector, redisDep.spec.template.metadata.labels), "Service does not select Redis");
    assert.ok(!svc.spec.sessionAffinity || svc.spec.sessionAffinity === "None", "no stickiness needed");
    for (const sp of svc.spec.ports) portOf(sp.targetPort);
    for (const { doc: pdb } of byKind("PodDisruptionBudget")) {
      assert.ok(subsetOf(pdb.spec.selector.matchLabels, podLabels), "PDB selects the gateway pods");
      assert.ok(!subsetOf(pdb.spec.selector.matchLabels, redisDep.spec.template.metadata.labels), "PDB does not select Redis");
    }
  });

  test("Secret, ConfigMap and Redis wiring: key names, mount path, CACHE_CONNECTION_STRING → the Redis Service", () => {
    const refs = (ctr.env ?? []).filter((e) => e.valueFrom?.secretKeyRef);
    const signing = refs.find((e) => e.name === "GATEWAY_SIGNING_KEY");
    assert.ok(signing, "GATEWAY_SIGNING_KEY from a Secret");
    assert.equal(signing.valueFrom.secretKeyRef.name, secret.metadata.name);
    for (const e of refs) {
      const r = e.valueFrom.secretKeyRef;
      assert.equal(r.name, secret.metadata.name, `${e.name}: the Secret`);
      assert.ok(r.key in (secret.stringData ?? secret.data ?? {}), `${e.name}: the Secret has key ${r.key}`);
    }
    assert.ok((resolvedEnv().GATEWAY_SIGNING_KEY ?? "").length >= 32, "the signing key is at least 32 bytes");
    // config file: flag → a volume mount of the ConfigMap with that key
    const cfgPath = argFlags(ctr.args).get("mcp-gateway-config");
    const mount = ctr.volumeMounts.find((m) => cfgPath.startsWith(`${m.mountPath}/`));
    assert.ok(mount, `a volume mounted above ${cfgPath}`);
    const vol = dep.spec.template.spec.volumes.find((v) => v.name === mount.name);
    assert.equal(vol?.configMap?.name, cm.metadata.name, "the mount is the ConfigMap");
    assert.ok(path.basename(cfgPath) in cm.data, `the ConfigMap has key ${path.basename(cfgPath)}`);
    // Redis
    const url = new URL(resolvedEnv().CACHE_CONNECTION_STRING);
    assert.equal(url.protocol, "redis:");
    assert.equal(url.hostname, redisSvc.metadata.name, "CACHE_CONNECTION_STRING names the Redis Service");
    const rp = redisSvc.spec.ports.find((p) => p.port === Number(url.port || 6379));
    assert.ok(rp, `the Redis Service has port ${url.port}`);
    assert.ok(subsetOf(redisSvc.spec.selector, redisDep.spec.template.metadata.labels), "the Redis Service selects Redis");
    const rc = redisDep.spec.template.spec.containers[0];
    assert.ok(rc.ports.some((p) => p.name === rp.targetPort || p.containerPort === rp.targetPort), "Redis targetPort exists");
  });

  test("probes, ports, drain time and user match the gateway's flags, the Containerfile and --help", () => {
    const flags = argFlags(ctr.args);
    assert.equal(hostPort(flags.get("mcp-broker-public-address")).port, portOf("http"), "MCP address = port http");
    assert.equal(hostPort(flags.get("metrics-addr")).port, portOf("metrics"), "metrics address = port metrics");
    const ann = dep.spec.template.metadata.annotations ?? {};
    if (ann["prometheus.io/port"]) assert.equal(Number(ann["prometheus.io/port"]), portOf("metrics"));
    assert.equal(ctr.readinessProbe.httpGet.path, "/readyz");
    assert.equal(ctr.livenessProbe.httpGet.path, "/healthz");
    for (const p of ["readinessProbe", "livenessProbe", "startupProbe"]) if (ctr[p]) assert.equal(portOf(ctr[p].httpGet.port), portOf("http"), p);
    const help = helpInfo();
    const upstreamTimeout = Number(flags.get("upstream-timeout") ?? resolvedEnv().MCP_GATEWAY_UPSTREAM_TIMEOUT ?? help.def("upstream-timeout"));
    const preStop = Number(ctr.lifecycle?.preStop?.exec?.command?.find((x) => /^\d+$/.test(x)) ?? 0);
    const grace = dep.spec.template.spec.terminationGracePeriodSeconds;
    assert.ok(grace > preStop + upstreamTimeout + 2, `terminationGracePeriodSeconds ${grace} > ${preStop} + ${upstreamTimeout} + 2`);
    // every flag and variable the manifest sets is one the gateway knows
    for (const f of flags.keys()) assert.ok(help.flags.includes(f), `--${f} is in --help`);
    const known = new Set([...help.envs, ...help.envOnly, "GATEWAY_SIGNING_KEY_PREVIOUS"]);
    for (const e of ctr.env) assert.ok(known.has(e.name) || /^OAUTH_/.test(e.name), `${e.name} is a gateway variable`);
    // listening on the pod's address needs authentication (or --allow-anonymous)
    const conf = YAML.parse(cm.data[path.basename(flags.get("mcp-gateway-config"))]);
    assert.ok(flags.has("allow-anonymous") || conf.oauthProtectedResource?.authorizationServers?.length || conf.auth?.issuers?.length ||
              resolvedEnv().OAUTH_AUTHORIZATION_SERVERS, "authentication configured for a non-loopback address");
    // the image's user
    const user = /^USER\s+(\d+)/m.exec(fs.readFileSync(CONTAINERFILE, "utf8"))?.[1];
    assert.equal(dep.spec.template.spec.securityContext.runAsUser, Number(user), "runAsUser = the Containerfile's USER");
    assert.equal(dep.spec.template.spec.securityContext.runAsNonRoot, true);
    assert.equal(ctr.securityContext.readOnlyRootFilesystem, true);
    const exposed = (/^EXPOSE\s+(.*)$/m.exec(fs.readFileSync(CONTAINERFILE, "utf8"))?.[1] ?? "").split(/\s+/).map(Number);
    for (const p of ctr.ports) assert.ok(exposed.includes(p.containerPort), `the Containerfile exposes ${p.containerPort}`);
  });

  test("the ConfigMap's file passes --check-config with the Deployment's arguments and environment", () => {
    const dir = L.tmpDir();
    const flags = argFlags(ctr.args);
    const key = path.basename(flags.get("mcp-gateway-config"));
    const file = L.writeFile(key, cm.data[key], dir);
    const args = ctr.args.map((a) => a.replace(flags.get("mcp-gateway-config"), file));
    const r = run(BIN, [...args, "--check-config"], { env: { OAUTH_AUTHORIZATION_SERVERS: "", OAUTH_RESOURCE: "", ...resolvedEnv() } });
    ok(r, "--check-config");
    assert.match(r.stdout, /^configuration OK: \d+ server\(s\)/);
  });

  test("a gateway started with the manifest's arguments serves the probes' paths on the probes' ports", async (t) => {
    // The manifest's file, with each upstream's URL pointing at a local example server; its addresses'
    // ports mapped to free loopback ports (8080/9090 may be taken on this machine).
    const flags = argFlags(ctr.args);
    const key = path.basename(flags.get("mcp-gateway-config"));
    const conf = YAML.parse(cm.data[key]);
    const ups = await Promise.all(conf.servers.map((s, i) => L.startExample({ name: `k8s-up${i}` })));
    conf.servers.forEach((s, i) => { s.url = ups[i].url; });
    const file = L.writeFile(key, YAML.stringify(conf), L.tmpDir());
    const portMap = new Map();
    for (const p of ctr.ports) portMap.set(p.containerPort, await L.freePort());
    const args = ctr.args.map((a) => {
      let x = a.replace(flags.get("mcp-gateway-config"), file);
      for (const f of ["mcp-broker-public-address", "metrics-addr"]) {
        const v = flags.get(f);
        if (a.includes(v)) x = x.replace(v, `127.0.0.1:${portMap.get(hostPort(v).port)}`);
      }
      return x;
    });
    t.diagnostic(`ports: ${[...portMap].map(([a, b]) => `${a}→${b}`).join(", ")}; args: ${args.join(" ")}`);
    const clean = { OAUTH_RESOURCE: "", OAUTH_AUTHORIZATION_SERVERS: "", OAUTH_RESOURCE_NAME: "", OAUTH_SCOPES_SUPPORTED: "",
                    OAUTH_BEARER_METHODS_SUPPORTED: "" };
    const p = L.spawnProc("k8s-gateway", BIN, args, { env: { ...clean, ...resolvedEnv() } });
    const at = (port, pth) => `http://127.0.0.1:${portMap.get(portOf(port))}${pth}`;
    await L.waitHttp(at(ctr.livenessProbe.httpGet.port, ctr.livenessProbe.httpGet.path), { proc: p, ok: (s) => s === 200, timeout: 20000 });
    for (const probe of ["startupProbe", "livenessProbe", "readinessProbe"]) {
      if (!ctr[probe]) continue;
      const { port, path: pth } = ctr[probe].httpGet;
      // ready once an upstream is: poll
      await L.waitHttp(at(port, pth), { proc: p, ok: (s) => s === 200, timeout: 20000, what: `${probe} ${pth}` });
    }
    const ann = dep.spec.template.metadata.annotations ?? {};
    const m = await fetch(at("metrics", ann["prometheus.io/path"] ?? "/metrics"));
    assert.equal(m.status, 200);
    assert.match(await m.text(), /^mcp_gateway_upstream_up\{server="[^"]+"\} 1$/m);
    // the manifest's authentication is on: /mcp wants a token, the probes do not
    const r = await fetch(at("http", "/mcp"), { method: "POST", headers: L.mcpHeaders(),
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }) });
    assert.equal(r.status, 401);
    assert.equal((await p.stop(10000)).code, 0);
  });
});

// ------------------------------------------------------------------ deploy/Containerfile

/** The Containerfile's stages: [{ from, as, lines: [instruction lines, continuations joined] }]. */
function containerStages() {
  const text = fs.readFileSync(CONTAINERFILE, "utf8").replace(/\\\n/g, " ");
  const stages = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const m = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?$/i.exec(line);
    if (m) { stages.push({ from: m[1], as: m[2], lines: [] }); continue; }
    assert.ok(stages.length, `instruction before FROM: ${line}`);
    stages.at(-1).lines.push(line);
  }
  return stages;
}
/** Packages of every `apt-get install` in a stage. */
const aptPackages = (stage) => stage.lines.flatMap((l) => [...l.matchAll(/apt-get install((?:\s+(?!&&)\S+)+)/g)]
  .flatMap((m) => m[1].trim().split(/\s+/).filter((w) => !w.startsWith("-"))));
/** scripts/deps.sh's BUILD_PKGS. */
function depsBuildPkgs() {
  const m = /^BUILD_PKGS=\(([^)]*)\)/m.exec(fs.readFileSync(path.join(ROOT, "scripts/deps.sh"), "utf8"));
  assert.ok(m, "BUILD_PKGS in scripts/deps.sh");
  return m[1].trim().split(/\s+/);
}

describe("deploy/Containerfile", () => {
  after(() => L.cleanup());

  test("two bookworm stages; the build stage installs scripts/deps.sh's packages; non-root runtime", () => {
    const st = containerStages();
    assert.equal(st.length, 2, "build + runtime");
    for (const s of st) assert.match(s.from, /(^|\/)debian:bookworm(-slim)?$/, "Debian bookworm");
    assert.ok(st[0].as, "the build stage is named");
    assert.ok(st[1].lines.some((l) => l.includes(`--from=${st[0].as}`)), "the runtime copies from the build stage");
    assert.deepEqual([...aptPackages(st[0])].sort(), [...depsBuildPkgs()].sort(), "build stage = BUILD_PKGS");
    const user = st[1].lines.find((l) => /^USER\s/.test(l));
    assert.match(user ?? "", /^USER\s+[1-9]\d*(:[1-9]\d*)?$/, "a numeric non-root USER");
    const entry = st[1].lines.find((l) => /^ENTRYPOINT\s/.test(l));
    const argv = JSON.parse(entry.replace(/^ENTRYPOINT\s+/, ""));
    assert.ok(argv.includes("/usr/bin/mcp-gateway"), "runs what `make install PREFIX=/usr` installs");
  });

  test("the runtime stage installs the packages of the binary's libraries, and they exist in Debian", (t) => {
    const st = containerStages();
    const pkgs = aptPackages(st[1]);
    // each package known to apt; without package lists (no apt-get update yet) at least the installed ones
    const aptKnows = (p) => { const a = run("apt-cache", ["show", "--no-all-versions", p]); return a.status === 0 && /^Package: /m.test(a.stdout); };
    const haveLists = aptKnows("libc6");
    for (const p of [...pkgs, ...aptPackages(st[0])]) {
      if (haveLists) { assert.ok(aptKnows(p), `${p}: not a Debian package (apt-cache show)`); continue; }
      if (run("dpkg-query", ["-W", p]).status !== 0) t.diagnostic(`${p}: no apt package lists here and not installed: not checked`);
    }
    // each NEEDED library of the gateway → its Debian package → in the runtime stage
    const re = run("readelf", ["-d", BIN]);
    ok(re, "readelf");
    const needed = [...re.stdout.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1])
      .filter((l) => !/^(libc|libm|libpthread|libdl|librt|ld-linux.*|libasan|libubsan|libstdc\+\+|libgcc_s)\.so/.test(l));
    assert.ok(needed.length >= 4, `NEEDED: ${needed}`);
    const cache = run("ldconfig", ["-p"]).stdout;
    for (const lib of needed) {
      const file = new RegExp(`^\\s*${lib.replace(/[.+]/g, "\\$&")} \\(libc6,x86-64[^)]*\\) => (\\S+)$`, "m").exec(cache)?.[1];
      assert.ok(file, `${lib} in ldconfig -p`);
      const owner = run("dpkg", ["-S", fs.realpathSync(file)]);
      ok(owner, `dpkg -S ${file}`);
      const pkg = owner.stdout.split(":")[0];
      assert.ok(pkgs.includes(pkg), `${lib} comes from ${pkg}, which the runtime stage does not install (${pkgs.join(" ")})`);
    }
  });

  test("the build stage builds and installs from exactly what it COPYs", { timeout: 300000 }, () => {
    // The stage's COPY lines into a temp root, then its RUN lines that call make, with /build and /out
    // under that root: a source file the build needs but the stage does not copy fails here.
    const st = containerStages();
    const root = L.tmpDir();
    const inRoot = (p) => path.join(root, p);
    let workdir = "/";
    for (const l of st[0].lines) {
      const w = /^WORKDIR\s+(\S+)/.exec(l);
      if (w) { workdir = path.resolve(workdir, w[1]); fs.mkdirSync(inRoot(workdir), { recursive: true }); continue; }
      const c = /^COPY\s+(?!--)(.+)$/.exec(l);
      if (!c) continue;
      const parts = c[1].trim().split(/\s+/);
      const to = parts.pop();
      const destAbs = inRoot(path.resolve(workdir, to));
      for (const from of parts) {
        const srcPath = path.join(ROOT, from);
        if (fs.statSync(srcPath).isDirectory()) fs.cpSync(srcPath, destAbs, { recursive: true });   // its contents
        else {
          const dest = to.endsWith("/") ? path.join(destAbs, path.basename(from)) : destAbs;
          fs.mkdirSync(path.dirname(dest), { recursive: true });
          fs.cpSync(srcPath, dest);
        }
      }
    }
    const runs = st[0].lines.filter((l) => /^RUN\s/.test(l) && /\bmake\b/.test(l));
    assert.ok(runs.length, "a RUN with make");
    for (const r of runs) {
      const cmd = r.replace(/^RUN\s+/, "").replace(/-j"\$\(nproc\)"/, "-j2")
                   .replace(/(^|[\s=])\/(build|out)\b/g, (m, pre, d) => `${pre}${inRoot(d)}`);
      // unoptimized: this checks the file list, not the code (make test has built it with -O2 already)
      ok(run("bash", ["-c", cmd], { cwd: inRoot(workdir), timeout: 280000, env: { OPT: "-O0", MAKEFLAGS: "" } }), `build stage: ${cmd}`);
    }
    for (const l of st[1].lines.filter((x) => /^COPY\s+--from=/.test(x))) {
      const from = l.split(/\s+/)[2];
      assert.ok(fs.existsSync(inRoot(from)), `the runtime stage copies ${from}, which the build stage made`);
    }
  });
});
