// Configuration reloads (docs/configuration.md "Reloading", docs/architecture.md "Configuration
// reloads"): the config file edited under a running gateway (inotify), a Kubernetes ConfigMap's
// `..data` symlink swapped, SIGHUP; servers added, re-prefixed, replaced and removed while a client
// keeps its session and GET stream, and slow calls in flight finish.
import { describe, test, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import * as L from "./lib.mjs";

const q = (v) => JSON.stringify(String(v));

/** YAML for servers (scalars, and `args` as a list) and optional extra top-level text. */
function yaml(servers, extra = "") {
  let y = "servers:\n";
  for (const { name, ...rest } of servers) {
    y += `  - name: ${q(name)}\n`;
    for (const [k, v] of Object.entries(rest)) {
      if (v === undefined) continue;
      y += Array.isArray(v) ? `    ${k}: [${v.map(q).join(", ")}]\n` : `    ${k}: ${typeof v === "boolean" ? v : q(v)}\n`;
    }
  }
  return y + extra;
}

/** Children of process pid (from /proc). */
function childrenOf(pid) {
  const out = [];
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) out.push(Number(d));
    } catch { /* gone meanwhile */ }
  }
  return out;
}

async function metricsText(url) {
  const r = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return r.text();
}

/** The value of one sample, e.g. metric(text, 'mcp_gateway_config_reloads_total{result="applied"}'). */
function metric(text, sample) {
  const line = text.split("\n").find((l) => l.startsWith(`${sample} `));
  return line === undefined ? undefined : Number(line.slice(sample.length + 1));
}

const toolCall = (url, sessionId, id, name, args = {}) =>
  L.rpc(url, { jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args } }, { sessionId });

describe("configuration reload", () => {
  const closers = [];   // in-process servers and streams: closed even when a test fails
  after(async () => {
    for (const c of closers.reverse()) await c().catch(() => {});
    await L.cleanup();
  });

  test("add a server, change a prefix, remove a server, write a broken file: the client's GET stream sees list_changed " +
       "and stays open, slow calls finish, only what changed is reconnected", async () => {
    const [s1, s2, s3] = await Promise.all([L.startExample({ name: "one" }), L.startExample({ name: "two" }),
                                            L.startExample({ name: "three" })]);
    const proxy1 = await L.startCountingProxy(s1.url);   // counts what reaches server one
    closers.push(() => proxy1.close());
    const dir = L.tmpDir();
    const config = path.join(dir, "gateway.yaml");
    const write = (servers) => fs.writeFileSync(config, yaml(servers));
    const one = { name: "one", url: proxy1.url, prefix: "a_" };
    const two = { name: "two", url: s2.url, prefix: "b_" };
    const three = { name: "three", url: s3.url, prefix: "c_" };
    write([one, two]);
    const mport = await L.freePort();
    const gw = await L.startGateway({ config, args: ["--metrics-addr", `127.0.0.1:${mport}`] });
    const murl = `http://127.0.0.1:${mport}/metrics`;
    await L.waitHttp(murl);

    const { client } = await L.connect(gw.url);
    closers.push(() => client.close());
    await L.waitTools(client, (t) => t.includes("a_echo") && t.includes("b_echo"), { timeout: 20000 });
    // a session with its GET stream, opened once the start's own list_changed are over
    const { sessionId } = await L.rawSession(gw.url);
    const { res, sse } = await L.openGetStream(gw.url, sessionId);
    closers.push(async () => sse.cancel());
    assert.equal(res.status, 200);
    const listChanged = (what) => sse.nextMessage((m) => m.method === "notifications/tools/list_changed",
                                                  { timeout: 20000, what: `tools/list_changed after ${what}` });

    // slow calls in flight through every reload: on a server that stays, and on one that goes
    const slowOne = toolCall(gw.url, sessionId, 101, "a_sleep", { ms: 10000 });
    const slowTwo = toolCall(gw.url, sessionId, 102, "b_sleep", { ms: 10000 });
    let slowDone = 0;
    for (const c of [slowOne, slowTwo]) c.finally(() => slowDone++).catch(() => {});
    await L.waitFor(() => proxy1.count("tools/call") === 1, { what: "the slow call on server one" });
    const initsOfOne = proxy1.count("initialize");   // the gateway's own session and the client's, on server one

    // 1. a server added: its tools appear once it is listed
    write([one, two, three]);
    await listChanged("adding three");
    await L.waitTools(client, (t) => t.includes("c_echo"), { timeout: 20000, what: "c_* tools" });

    // 2. a prefix changed: the same upstream session, new names
    write([{ ...one, prefix: "aa_" }, two, three]);
    await listChanged("the prefix change");
    const afterPrefix = await L.waitTools(client, (t) => t.includes("aa_echo") && !t.includes("a_echo"),
                                          { timeout: 20000, what: "aa_* tools" });
    assert.ok(afterPrefix.includes("b_echo") && afterPrefix.includes("c_echo"), afterPrefix.join(", "));

    // 3. a server removed: its tools vanish, a call to one is an unknown tool
    write([{ ...one, prefix: "aa_" }, three]);
    await listChanged("removing two");
    assert.equal(slowDone, 0, "the slow calls were in flight through the three reloads");
    await L.waitTools(client, (t) => !t.some((n) => n.startsWith("b_")), { timeout: 20000, what: "b_* gone" });
    const gone = await toolCall(gw.url, sessionId, 103, "b_echo", { text: "x" });
    assert.equal(gone.message?.error?.code, -32602, JSON.stringify(gone.message));

    // the slow calls started before all of that finish normally
    for (const [name, call] of [["a_sleep", slowOne], ["b_sleep", slowTwo]]) {
      const r = await call;
      assert.equal(r.status, 200, name);
      assert.equal(L.textOf(r.message?.result), "slept", `${name}: ${JSON.stringify(r.message)}`);
    }

    // 4. a broken file: refused with file:line, the running config stays
    fs.writeFileSync(config, yaml([{ ...one, prefix: "aa_" }, three]) + "virtualServers:\n  - name: [oops\n");
    await L.waitFor(() => /\[reload\].*gateway\.yaml:\d+: .*the running configuration \(generation 4\) stays/.test(gw.log()),
                    { timeout: 20000, what: "the reload error with file:line", proc: gw });
    const m = await metricsText(murl);
    assert.equal(metric(m, 'mcp_gateway_config_reloads_total{result="applied"}'), 3, m);
    assert.equal(metric(m, 'mcp_gateway_config_reloads_total{result="failed"}'), 1, m);
    assert.equal(metric(m, "mcp_gateway_config_last_reload_successful"), 0, m);
    assert.equal(metric(m, "mcp_gateway_config_generation"), 4, m);
    assert.equal(metric(m, 'mcp_gateway_tool_calls_total{server="one"}'), 1, m);
    assert.equal(metric(m, 'mcp_gateway_tool_calls_total{server="two"}'), undefined, "a removed server's counter goes");
    const still = await toolCall(gw.url, sessionId, 104, "aa_echo", { text: "still here" });
    assert.match(L.textOf(still.message?.result) ?? "", /still here/, JSON.stringify(still.message));

    // the same GET stream, never disconnected, sees the next change too
    write([{ ...one, prefix: "aa_" }, two, three]);
    await listChanged("adding two back");
    await L.waitTools(client, (t) => t.includes("b_echo"), { timeout: 20000, what: "b_* back" });
    assert.equal(proxy1.count("initialize"), initsOfOne, "server one was never reconnected");
    assert.equal(proxy1.requests.filter((r) => r.method === "DELETE").length, 0, "nor its session ended");

    // the log says what changed
    const log = gw.log();
    assert.match(log, /file change: .*gateway\.yaml applied \(generation 2\): added three/);
    assert.match(log, /applied \(generation 3\): prefix of one: "a_" -> "aa_"/);
    assert.match(log, /applied \(generation 4\): removed two/);
    const m2 = await metricsText(murl);
    assert.equal(metric(m2, "mcp_gateway_config_last_reload_successful"), 1, m2);
    assert.equal(metric(m2, 'mcp_gateway_server_slots{state="used"}'), 4, "one, two, three, and two again");
  });

  test("SIGHUP reloads what no watcher sees: a credential file; the server is replaced and uses the new one", async () => {
    const up = await L.startExample({ name: "cred" });
    const proxy = await L.startCountingProxy(up.url);
    closers.push(() => proxy.close());
    const secrets = L.tmpDir();
    const tokenFile = path.join(secrets, "token");
    fs.writeFileSync(tokenFile, "Bearer first-token\n");
    const config = L.writeFile("gateway.yaml", yaml([{ name: "cred", url: proxy.url, prefix: "k_", credentialFile: tokenFile }]));
    const gw = await L.startGateway({ config });
    const { client } = await L.connect(gw.url);
    closers.push(() => client.close());
    await L.waitTools(client, (t) => t.includes("k_echo"), { timeout: 20000 });
    assert.ok(proxy.requests.some((r) => r.headers.authorization === "Bearer first-token"));

    fs.writeFileSync(tokenFile, "Bearer second-token\n");
    gw.child.kill("SIGHUP");
    await L.waitFor(() => /SIGHUP: .*gateway\.yaml applied \(generation 2\): replaced cred \(credential\)/.test(gw.log()),
                    { timeout: 20000, what: "the SIGHUP reload", proc: gw });
    await L.waitFor(() => proxy.requests.some((r) => r.headers.authorization === "Bearer second-token" &&
                                                     r.rpc.includes("initialize")),
                    { timeout: 20000, what: "a new upstream session with the new credential" });
    const r = await client.callTool({ name: "k_echo", arguments: { text: "hi" } });
    assert.match(L.textOf(r) ?? "", /hi/);
    const last = proxy.requests.filter((x) => x.rpc.includes("tools/call")).at(-1);
    assert.equal(last.headers.authorization, "Bearer second-token");

    // only what needs a restart changed: applied (nothing to do), and the warning says what was not
    fs.writeFileSync(config, fs.readFileSync(config, "utf8") + "oauthProtectedResource:\n  resourceName: Renamed\n");
    gw.child.kill("SIGHUP");
    await L.waitFor(() => /applied \(generation 3\): no change/.test(gw.log()) &&
                          /gateway\.yaml: auth \/ oauthProtectedResource changed: needs a restart/.test(gw.log()),
                    { what: "a reload that needs a restart", proc: gw });
    const prm = await (await fetch(`${gw.base}/.well-known/oauth-protected-resource`)).json();
    assert.equal(prm.resource_name, "MCP Server", "the running value stays");
  });

  test("each server a reload adds or changes takes a slot for the process's life: at the cap a reload is refused and " +
       "the running config stays", async () => {
    const config = L.writeFile("gateway.yaml", "servers: []\n");
    const server = (i, prefix = "s_") => yaml([{ name: "s", url: `http://127.0.0.1:1/mcp/${i}`, prefix }]);
    fs.writeFileSync(config, server(0));
    const gw = await L.startGateway({ config });
    // RELOAD_SLOTS(1 server) = 4 * 1 + 64 = 68: 67 more
    for (let i = 1; i <= 67; i++) {
      fs.writeFileSync(config, server(i));
      gw.child.kill("SIGHUP");
      await L.waitFor(() => gw.log().includes(`(generation ${i + 1}): replaced s (url)`),
                      { timeout: 10000, interval: 20, what: `reload ${i}`, proc: gw });
    }
    fs.writeFileSync(config, server(68));
    gw.child.kill("SIGHUP");
    await L.waitFor(() => /1 new server slot\(s\) needed, 0 left of 68 .*restart the gateway to apply it; the running configuration \(generation 68\) stays/.test(gw.log()),
                    { timeout: 10000, what: "the refusal", proc: gw });
    // a change that needs no new slot still applies
    fs.writeFileSync(config, server(67, "t_"));
    gw.child.kill("SIGHUP");
    await L.waitFor(() => /\(generation 69\): prefix of s: "s_" -> "t_"/.test(gw.log()), { timeout: 10000, what: "a prefix change", proc: gw });
  });

  test("a Kubernetes ConfigMap update (the ..data symlink swapped): stdio children of added servers start and of " +
       "removed ones stop; virtual servers and authorization are recompiled", async () => {
    const up = await L.startExample({ name: "http1" });
    const dir = L.tmpDir();
    const http1 = { name: "http1", url: up.url, prefix: "h_" };
    const stdio = { name: "ev", prefix: "ev_", command: process.execPath, args: [L.EVERYTHING_JS, "stdio"] };
    let n = 0, current;
    // kubelet's layout: gateway.yaml -> ..data/gateway.yaml, ..data -> ..<timestamp>; an update writes a
    // new ..<timestamp> directory, points ..data_tmp at it and renames ..data_tmp over ..data
    const publish = (text) => {
      const version = `..2026_01_01_00_00_0${++n}.${1000 + n}`;
      fs.mkdirSync(path.join(dir, version));
      fs.writeFileSync(path.join(dir, version, "gateway.yaml"), text);
      fs.symlinkSync(version, path.join(dir, "..data_tmp"));
      fs.renameSync(path.join(dir, "..data_tmp"), path.join(dir, "..data"));
      if (current) fs.rmSync(path.join(dir, current), { recursive: true });
      current = version;
    };
    publish(yaml([http1]));
    fs.symlinkSync("..data/gateway.yaml", path.join(dir, "gateway.yaml"));
    const gw = await L.startGateway({ config: path.join(dir, "gateway.yaml") });
    const { client } = await L.connect(gw.url);
    closers.push(() => client.close());
    await L.waitTools(client, (t) => t.includes("h_echo"), { timeout: 20000 });
    assert.deepEqual(childrenOf(gw.pid), [], "no stdio server yet");
    const vs = await fetch(`${gw.base}/v/only-echo/mcp`, { method: "POST", headers: L.mcpHeaders(), body: "{}" });
    assert.equal(vs.status, 404, "no virtual server yet");

    // a stdio server, a virtual server and a rule, all in one update
    publish(yaml([http1, stdio], `virtualServers:
  - name: only-echo
    tools: [h_echo, ev_echo]
authorization:
  mode: rules
  default: allow
  rules:
    - {name: no-greet, effect: deny, servers: [http1], tools: [greet]}
`));
    await L.waitFor(() => /file change: .*applied \(generation 2\): added ev; virtual servers \(1\); authorization/.test(gw.log()),
                    { timeout: 20000, what: "the reload of the ConfigMap update", proc: gw });
    await L.waitTools(client, (t) => t.includes("ev_echo") && !t.includes("h_greet"), { timeout: 40000, what: "ev_* tools" });
    assert.equal(childrenOf(gw.pid).length, 1, "the stdio server's child runs");
    const denied = await client.callTool({ name: "h_greet", arguments: { name: "x" } }).catch((e) => e);
    assert.match(String(denied?.message ?? denied), /403|Forbidden|denied/i, "the new rule refuses h_greet");
    const v = await L.connect(`${gw.base}/v/only-echo/mcp`);
    closers.push(() => v.client.close());
    assert.deepEqual(await L.toolNames(v.client), ["ev_echo", "h_echo"]);

    // the stdio server removed during a call: its tools go at once, the call finishes, then the child stops
    const long = client.callTool({ name: "ev_trigger-long-running-operation", arguments: { duration: 3, steps: 3 } });
    await L.sleep(500);
    publish(yaml([http1]));
    await L.waitFor(() => /applied \(generation 3\): removed ev; virtual servers \(0\); authorization \(removed\)/.test(gw.log()),
                    { timeout: 20000, what: "the second reload", proc: gw });
    await L.waitTools(client, (t) => !t.some((x) => x.startsWith("ev_")) && t.includes("h_greet"), { timeout: 20000 });
    assert.match(L.textOf(await long) ?? "", /Long running operation completed/);
    await L.waitFor(() => childrenOf(gw.pid).length === 0, { timeout: 20000, what: "the stdio child to stop" });
    assert.match(gw.log(), /\[ev\].*bridge: stopping the removed server \(0 call\(s\) still in flight\)/);
  });
});
