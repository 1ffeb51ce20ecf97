// Upstream transports other than Streamable HTTP, through the bridge (src/bridge.c):
// - server-everything as a stdio child and in legacy HTTP+SSE mode, federated beside our C example
//   server over HTTP, each with its own prefix: lists, exact results, progress, sampling,
//   elicitation and roots answered by the SDK client, resource updates, restart after a kill, no
//   child left after stop;
// - a scripted stdio server that records what it receives: ids and tokens remapped, one
//   initialize, cancellation, subscriptions counted over sessions, list_changed, requests made
//   outside any call, noise and oversized lines on stdout, the child's environment;
// - a scripted legacy SSE server: endpoint resolution, another origin refused, reconnection;
// - perSession (a child per session, maxChildren), supervision (PR_SET_PDEATHSIG, back-off, a deaf
//   child), config errors; and the conformance suites against the fixture backend over stdio
//   beside a prefixed second upstream.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { CreateMessageRequestSchema, ElicitRequestSchema, ListRootsRequestSchema,
         ResourceUpdatedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import * as L from "./lib.mjs";

const NODE = process.execPath;
const q = (v) => JSON.stringify(String(v));

/** YAML for servers that may carry args (list) and env (mapping). */
function yamlServers(servers) {
  let y = "servers:\n";
  for (const s of servers) {
    y += `  - name: ${q(s.name)}\n`;
    for (const [k, v] of Object.entries(s)) {
      if (k === "name" || v === undefined) continue;
      if (Array.isArray(v)) y += `    ${k}: [${v.map(q).join(", ")}]\n`;
      else if (typeof v === "object") y += `    ${k}: {${Object.entries(v).map(([a, b]) => `${a}: ${q(b)}`).join(", ")}}\n`;
      else y += `    ${k}: ${typeof v === "boolean" ? v : q(v)}\n`;
    }
  }
  return y;
}

/** Direct children of a process (every thread's children file). */
function childrenOf(pid) {
  const out = new Set();
  let tasks = [];
  try { tasks = fs.readdirSync(`/proc/${pid}/task`); } catch { return []; }
  for (const t of tasks) {
    try {
      for (const c of fs.readFileSync(`/proc/${pid}/task/${t}/children`, "utf8").trim().split(/\s+/)) if (c) out.add(Number(c));
    } catch { /* thread gone */ }
  }
  return [...out];
}
const cmdline = (pid) => { try { return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" "); } catch { return ""; } };
const alive = (pid) => { try { process.kill(pid, 0); return !/^Z/.test(procState(pid)); } catch { return false; } };
const procState = (pid) => { try { return /State:\s+(\S)/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))[1]; } catch { return ""; } };
const stdioChild = (gw, marker) => childrenOf(gw.pid).find((p) => cmdline(p).includes(marker));

/** TCP ports a process listens on (from /proc/net/tcp and its socket fds). */
function listeningPorts(pid) {
  const inodes = new Set();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try { const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`)); if (m) inodes.add(m[1]); } catch { /* closed */ }
  }
  const ports = new Set();
  for (const line of fs.readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length > 9 && f[3] === "0A" && inodes.has(f[9])) ports.add(parseInt(f[1].split(":")[1], 16));
  }
  return [...ports];
}

async function waitReady(gw, names, timeout = 20000) {
  await L.waitFor(async () => {
    const r = await fetch(`${gw.base}/status`);
    const j = await r.json();
    return names.every((n) => j.servers.find((s) => s.name === n)?.ready);
  }, { timeout, what: `${names.join(", ")} ready behind the gateway`, proc: gw });
}

after(() => L.cleanup());

describe("stdio and legacy SSE upstreams beside Streamable HTTP", () => {
  let gw, example, legacy, c1;
  const sampled = [], elicited = [];

  before(async () => {
    example = await L.startExample({ name: "ex" });
    const legacyPort = await L.freePort();
    legacy = L.spawnProc("everything-sse", NODE, [L.EVERYTHING_JS, "sse"], { env: { PORT: String(legacyPort) } });
    await L.waitPort(legacyPort, { proc: legacy, what: "server-everything (sse)" });
    const config = L.writeFile("gateway.yaml", yamlServers([
      { name: "example", url: example.url, prefix: "ex_" },
      { name: "everything-stdio", prefix: "st_", command: NODE, args: [L.EVERYTHING_JS, "stdio"] },
      { name: "everything-sse", prefix: "ls_", url: `http://127.0.0.1:${legacyPort}/sse`, transport: "sse" },
    ]));
    gw = await L.startGateway({ config, checkInterval: 1 });
    await waitReady(gw, ["example", "everything-stdio", "everything-sse"]);
    ({ client: c1 } = await L.connect(gw.url, { capabilities: { sampling: {}, elicitation: {}, roots: { listChanged: true } } }));
    c1.setRequestHandler(CreateMessageRequestSchema, async (req) => {
      sampled.push(req.params);
      return { model: "e2e-model", role: "assistant", content: { type: "text", text: `sampled: ${req.params.messages[0].content.text}` } };
    });
    c1.setRequestHandler(ElicitRequestSchema, async (req) => {
      elicited.push(req.params);
      return { action: "accept", content: { name: "Ada", check: true, email: "ada@example.com", integer: 7 } };
    });
    c1.setRequestHandler(ListRootsRequestSchema, async () => ({ roots: [{ uri: "file:///e2e/root", name: "e2e root" }] }));
  });

  test("tools/list holds every upstream's tools under its prefix", async () => {
    const names = await L.toolNames(c1);
    for (const n of ["ex_echo", "ex_slow", "st_echo", "st_get-sum", "st_trigger-long-running-operation", "ls_echo", "ls_get-sum"])
      assert.ok(names.includes(n), `${n} in ${names.join(", ")}`);
    // tools that server-everything offers only to clients declaring sampling / elicitation / roots: the
    // bridge initializes the shared child with those capabilities
    for (const n of ["st_trigger-sampling-request", "st_trigger-elicitation-request", "st_get-roots-list",
                     "ls_trigger-sampling-request"])
      assert.ok(names.includes(n), `${n} in ${names.join(", ")}`);
    assert.equal(names.filter((n) => n.startsWith("st_")).length, names.filter((n) => n.startsWith("ls_")).length,
      "the stdio and the legacy SSE instance of server-everything list the same tools");
  });

  test("calls on each upstream give their exact results", async () => {
    assert.equal(L.textOf(await c1.callTool({ name: "ex_echo", arguments: { text: "über http" } })), "über http");
    assert.equal(L.textOf(await c1.callTool({ name: "st_echo", arguments: { message: "über stdio" } })), "Echo: über stdio");
    assert.equal(L.textOf(await c1.callTool({ name: "ls_echo", arguments: { message: "über sse" } })), "Echo: über sse");
    const sum = await c1.callTool({ name: "st_get-sum", arguments: { a: 19, b: 23 } });
    assert.match(L.textOf(sum), /\b42\b/);
    const bad = await c1.callTool({ name: "st_get-sum", arguments: { a: "x" } }).catch((e) => e);
    assert.ok(bad instanceof Error || bad.isError, "invalid arguments are the server's error, relayed");
  });

  test("prompts and resources of the stdio server are federated and readable", async () => {
    const prompts = (await c1.listPrompts()).prompts.map((p) => p.name);
    assert.ok(prompts.includes("st_simple-prompt"), `st_simple-prompt in ${prompts.join(", ")}`);
    const p = await c1.getPrompt({ name: "st_simple-prompt" });
    assert.ok(p.messages.length >= 1 && p.messages[0].content.type === "text");
    const res = (await c1.listResources()).resources;
    const r0 = res.find((r) => /^demo:\/\//.test(r.uri) || /^test:\/\//.test(r.uri)) ?? res[0];
    assert.ok(r0, "some resource listed");
    const read = await c1.readResource({ uri: r0.uri });
    assert.ok(read.contents.length >= 1, `contents of ${r0.uri}`);
  });

  for (const [label, tool] of [["stdio", "st_trigger-long-running-operation"], ["legacy SSE", "ls_trigger-long-running-operation"]])
    test(`progress of a long-running call reaches the client (${label})`, async () => {
      const seen = [];
      const r = await c1.callTool({ name: tool, arguments: { duration: 0.6, steps: 3 } }, undefined,
                                  { onprogress: (p) => seen.push([p.progress, p.total]) });
      assert.equal(L.textOf(r), "Long running operation completed. Duration: 0.6 seconds, Steps: 3.");
      assert.deepEqual(seen, [[1, 3], [2, 3], [3, 3]]);
    });

  test("two sessions using the same progress token each get only their own progress", async () => {
    // fresh clients number their requests alike: both calls carry progressToken 1 (the request id)
    const a = (await L.connect(gw.url)).client, b = (await L.connect(gw.url)).client;
    const pa = [], pb = [];
    const [ra, rb] = await Promise.all([
      a.callTool({ name: "st_trigger-long-running-operation", arguments: { duration: 0.4, steps: 2 } }, undefined,
                 { onprogress: (p) => pa.push([p.progress, p.total]) }),
      b.callTool({ name: "st_trigger-long-running-operation", arguments: { duration: 0.6, steps: 3 } }, undefined,
                 { onprogress: (p) => pb.push([p.progress, p.total]) }),
    ]);
    assert.match(L.textOf(ra), /Steps: 2\./);
    assert.match(L.textOf(rb), /Steps: 3\./);
    assert.deepEqual(pa, [[1, 2], [2, 2]]);
    assert.deepEqual(pb, [[1, 3], [2, 3], [3, 3]]);
    await a.close();
    await b.close();
  });

  for (const [label, prefix] of [["stdio", "st_"], ["legacy SSE", "ls_"]])
    test(`sampling from the server reaches the SDK client and its answer gets back (${label})`, async () => {
      const before_ = sampled.length;
      const r = await c1.callTool({ name: `${prefix}trigger-sampling-request`, arguments: { prompt: `hello ${label}`, maxTokens: 7 } });
      assert.equal(sampled.length, before_ + 1, "the client's sampling handler ran once");
      const req = sampled.at(-1);
      assert.equal(req.messages[0].content.text, `Resource trigger-sampling-request context: hello ${label}`);
      assert.equal(req.maxTokens, 7);
      const text = L.textOf(r);
      assert.ok(text.startsWith("LLM sampling result: "), text);
      const result = JSON.parse(text.slice(text.indexOf("{")));
      assert.deepEqual(result, { model: "e2e-model", role: "assistant",
                                 content: { type: "text", text: `sampled: Resource trigger-sampling-request context: hello ${label}` } });
    });

  test("elicitation from the stdio server reaches the SDK client and its answer gets back", async () => {
    const r = await c1.callTool({ name: "st_trigger-elicitation-request", arguments: {} });
    assert.equal(elicited.length, 1);
    assert.equal(elicited[0].message, "Please provide inputs for the following fields:");
    assert.deepEqual(elicited[0].requestedSchema.required, ["name"]);
    assert.equal(r.content[0].text, "✅ User provided the requested information!");
    assert.equal(r.content[1].text, "User inputs:\n- Name: Ada\n- Agreed to terms: true\n- Email: ada@example.com\n- Favorite Integer: 7");
  });

  test("roots/list from the stdio server is answered by the client of the call", async () => {
    const r = await c1.callTool({ name: "st_get-roots-list", arguments: {} });
    assert.match(L.textOf(r), /^Current MCP Roots \(1 total\):\n\n1\. e2e root\n {3}URI: file:\/\/\/e2e\/root/);
  });

  test("resources/updated from the stdio child reaches the subscribed client's GET stream", async () => {
    const { client } = await L.connect(gw.url);
    const got = [];
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => { got.push(n.params.uri); });
    // both instances of server-everything offer the same URIs: the first in the file (stdio) keeps
    // them as they are, the legacy one's are namespaced
    const uri = (await client.listResources()).resources.map((r) => r.uri).find((u) => /^demo:\/\/resource\//.test(u));
    assert.ok(uri, "a demo resource of the stdio server");
    await client.subscribeResource({ uri });
    await client.callTool({ name: "st_toggle-subscriber-updates", arguments: {} });   // on: one update at once
    await L.waitFor(() => got.includes(uri), { timeout: 8000, what: `notifications/resources/updated for ${uri}` });
    await client.callTool({ name: "st_toggle-subscriber-updates", arguments: {} });   // off
    await client.unsubscribeResource({ uri });
    await client.close();
  });

  test("a client that did not declare sampling gets an error, not someone else's dialog", async () => {
    const { client } = await L.connect(gw.url);   // no capabilities
    const before_ = sampled.length;
    const r = await client.callTool({ name: "st_trigger-sampling-request", arguments: { prompt: "nobody" } }).catch((e) => e);
    assert.equal(sampled.length, before_, "c1's handler was not asked");
    assert.ok(r instanceof Error || r.isError, `an error: ${JSON.stringify(r?.content ?? r?.message)}`);
    await client.close();
  });

  test("the bridge endpoint answers nothing without its secret path", async () => {
    const ports = listeningPorts(gw.pid).filter((p) => p !== gw.port);
    assert.equal(ports.length, 1, `one private port besides ${gw.port}: ${ports}`);
    for (const p of ["/mcp", "/", `/${"0".repeat(64)}/1`, "/status"]) {
      const r = await L.rawHttp(ports[0], { path: p, headers: { "content-type": "application/json", accept: L.JSON_SSE },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "x", version: "1" } } }) });
      assert.equal(r.status, 404, `${p}: ${r.status} ${r.body}`);
    }
    const status = await (await fetch(`${gw.base}/status`)).text();
    assert.ok(!status.includes(`127.0.0.1:${ports[0]}`), "the bridge URL is not shown in /status");
  });

  test("stderr of the child is logged under the server's name", () => {
    assert.match(gw.log(), /\[everything-stdio\] stderr: Starting default \(STDIO\) server\.\.\./);
  });

  test("the killed stdio child is restarted and its tools work again", async () => {
    const old = stdioChild(gw, "server-everything");
    assert.ok(old, `a server-everything child of the gateway: ${childrenOf(gw.pid).map(cmdline)}`);
    process.kill(old, "SIGKILL");
    const fresh = await L.waitFor(() => { const p = stdioChild(gw, "server-everything"); return p && p !== old ? p : null; },
                                  { timeout: 10000, what: "a new stdio child" });
    assert.ok(!alive(old), "the old child is reaped (no zombie)");
    const r = await L.waitFor(async () => {
      try { return L.textOf(await c1.callTool({ name: "st_echo", arguments: { message: "again" } })); } catch { return null; }
    }, { timeout: 15000, what: "st_echo to work after the restart" });
    assert.equal(r, "Echo: again");
    assert.ok(alive(fresh));
    const names = await L.toolNames(c1);
    assert.ok(names.includes("st_echo") && names.includes("st_trigger-sampling-request"));
    assert.match(gw.log(), /\[everything-stdio\] the child \(pid \d+\) was killed by signal 9/);
  });

  test("stopping the gateway: a stdio call in flight finishes (drain), then no child is left", async () => {
    const kids = childrenOf(gw.pid);
    assert.ok(kids.length >= 1, "the gateway has its stdio child");
    const call = c1.callTool({ name: "st_trigger-long-running-operation", arguments: { duration: 1.5, steps: 3 } });
    await L.sleep(400);
    const stopped = gw.stop(10000);
    assert.equal(L.textOf(await call), "Long running operation completed. Duration: 1.5 seconds, Steps: 3.");
    const info = await stopped;
    assert.equal(info.code, 0, `the gateway exits cleanly (${JSON.stringify(info)})`);
    await L.waitFor(() => kids.every((p) => !alive(p)), { timeout: 5000, what: `children ${kids} to be gone` });
  });
});

// A scripted stdio MCP server that records every message it receives (tool `seen` returns them):
// the wire between the bridge and the child, checked exactly.
const PROBE = String.raw`
import readline from "node:readline";
const seen = [];
const send = (m) => process.stdout.write(JSON.stringify(m) + "\n");
const waiting = new Map();
let asked = 0;
if (process.env.NOISE) {
  process.stdout.write("this is not json\n");
  process.stdout.write("x".repeat(Number(process.env.NOISE)) + "\n");
  process.stdout.write("[1,2,3]\n");
}
let tools = ["seen", "wait", "big", "ask-later", "env", "grow", "touch", "hang"].map((name) => ({ name, inputSchema: { type: "object" } }));
readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const m = JSON.parse(line);
  if (m.method !== "ping") seen.push(m);
  if (m.method === "initialize")
    return send({ jsonrpc: "2.0", id: m.id, result: { protocolVersion: m.params.protocolVersion,
                                                       capabilities: { tools: { listChanged: true }, resources: { subscribe: true } },
                                                       serverInfo: { name: "probe", version: "1" } } });
  if (m.method === "ping") return send({ jsonrpc: "2.0", id: m.id, result: {} });
  if (m.method === "tools/list") return send({ jsonrpc: "2.0", id: m.id, result: { tools } });
  if (m.method === "resources/list") return send({ jsonrpc: "2.0", id: m.id, result: { resources: [{ uri: "probe://r", name: "r" }] } });
  if (m.method === "resources/templates/list") return send({ jsonrpc: "2.0", id: m.id, result: { resourceTemplates: [] } });
  if (m.method === "resources/subscribe" || m.method === "resources/unsubscribe") return send({ jsonrpc: "2.0", id: m.id, result: {} });
  if (m.method === "notifications/cancelled") {
    const id = waiting.get(m.params.requestId);
    if (id !== undefined) waiting.delete(m.params.requestId);
    return;
  }
  if (m.method === "tools/call") {
    const name = m.params.name;
    const text = (t) => send({ jsonrpc: "2.0", id: m.id, result: { content: [{ type: "text", text: t }] } });
    if (name === "seen") return text(JSON.stringify(seen));
    if (name === "wait") return void waiting.set(m.id, true);   // answered never: only cancelled
    if (name === "big") return text("b".repeat(m.params.arguments?.n ?? 1000));
    if (name === "env") return text(JSON.stringify({ env: process.env, cwd: process.cwd() }));
    if (name === "hang") for (;;) { /* a blocked event loop: alive, deaf */ }
    if (name === "touch") {
      send({ jsonrpc: "2.0", method: "notifications/resources/updated", params: { uri: "probe://r" } });
      return text("touched");
    }
    if (name === "grow") {           // a new tool, announced the way a stdio server can: list_changed
      tools = [...tools, { name: "extra-" + tools.length, inputSchema: { type: "object" } }];
      text("grown");
      return send({ jsonrpc: "2.0", method: "notifications/tools/list_changed" });
    }
    if (name === "ask-later") {      // a request to the client made after the call is over
      text("asked");
      setTimeout(() => send({ jsonrpc: "2.0", id: "later-" + ++asked, method: "roots/list" }), 100);
      return;
    }
  }
  if (m.id !== undefined && m.method) send({ jsonrpc: "2.0", id: m.id, error: { code: -32601, message: "nope" } });
});
`;

describe("the wire between the bridge and a stdio child", () => {
  let gw, probe, cwd;
  const seen = async (client) => JSON.parse(L.textOf(await client.callTool({ name: "p_seen", arguments: {} })));

  before(async () => {
    probe = L.writeFile("probe.mjs", PROBE);
    cwd = L.tmpDir();
    const config = L.writeFile("gateway.yaml", yamlServers([
      { name: "probe", prefix: "p_", command: NODE, args: [probe], cwd,
        env: { NOISE: "100000", PROBE_A: "plain", PROBE_B: "${E2E_FROM_GATEWAY}", PROBE_C: "${E2E_NOT_SET_ANYWHERE}" } }]));
    gw = await L.startGateway({ config, logName: "gateway-probe", args: ["--max-upstream-response-size", "64k"],
                                env: { E2E_FROM_GATEWAY: "from the gateway", MCP_GATEWAY_SECRETISH: "no" } });
    await waitReady(gw, ["probe"]);
  });

  test("noise and a line over the size limit on stdout are logged and dropped; the server still works", async () => {
    const log = gw.log();
    assert.match(log, /\[probe\] not a JSON-RPC message on stdout \(dropped\): this is not json\n/);
    assert.match(log, /\[probe\] a line of output over 65536 bytes: dropped/);
    assert.match(log, /\[probe\] not a JSON-RPC message on stdout \(dropped\): \[1,2,3\]\n/);
    const { client } = await L.connect(gw.url);
    assert.equal(L.textOf(await client.callTool({ name: "p_big", arguments: { n: 30000 } })), "b".repeat(30000));
    await client.close();
  });

  test("the child's environment: a few of the gateway's variables, never its secrets, plus env; its cwd", async () => {
    const { client } = await L.connect(gw.url);
    const { env, cwd: where } = JSON.parse(L.textOf(await client.callTool({ name: "p_env", arguments: {} })));
    assert.equal(where, fs.realpathSync(cwd));
    assert.equal(env.PROBE_A, "plain");
    assert.equal(env.PROBE_B, "from the gateway", "${NAME} takes the gateway's variable");
    assert.ok(!("PROBE_C" in env), "${NAME} of an unset variable leaves it unset");
    assert.equal(env.PATH, process.env.PATH);
    for (const k of ["GATEWAY_SIGNING_KEY", "E2E_FROM_GATEWAY", "MCP_GATEWAY_SECRETISH"]) assert.ok(!(k in env), `${k} not passed on`);
    await client.close();
  });

  test("the child is initialized once, with the capabilities the gateway routes; ids and tokens are its own", async () => {
    const a = (await L.connect(gw.url)).client, b = (await L.connect(gw.url)).client;
    await a.callTool({ name: "p_big", arguments: { n: 1 } }, undefined, { onprogress: () => {} });
    await b.callTool({ name: "p_big", arguments: { n: 1 } }, undefined, { onprogress: () => {} });
    const msgs = await seen(a);
    const inits = msgs.filter((m) => m.method === "initialize");
    assert.equal(inits.length, 1, "one initialize for every session");
    assert.deepEqual(inits[0].params.capabilities, { sampling: {}, elicitation: { form: {}, url: {} }, roots: { listChanged: true } });
    assert.equal(inits[0].params.clientInfo.name, "mcp-gateway");
    assert.equal(msgs.filter((m) => m.method === "notifications/initialized").length, 1);
    const calls = msgs.filter((m) => m.method === "tools/call" && m.params.name === "big" && m.params.arguments.n === 1);
    assert.equal(calls.length, 2);
    assert.notEqual(calls[0].id, calls[1].id, "unique ids on the child");
    for (const c of calls) assert.equal(c.params._meta.progressToken, c.id, "the progress token is remapped to the child's id");
    const ids = msgs.filter((m) => m.id !== undefined).map((m) => m.id);
    assert.equal(new Set(ids).size, ids.length, `every id the child saw is unique: ${ids}`);
    await a.close();
    await b.close();
  });

  test("subscriptions are counted over sessions; updates reach only the subscribed sessions", async () => {
    const clients = [];
    for (let i = 0; i < 3; i++) {
      const { client } = await L.connect(gw.url);
      const got = [];
      client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => { got.push(n.params.uri); });
      clients.push({ client, got });
    }
    const [a, b, c] = clients;
    const count = async (method) => (await seen(a.client)).filter((m) => m.method === method).length;
    const subs0 = await count("resources/subscribe"), unsubs0 = await count("resources/unsubscribe");
    await a.client.subscribeResource({ uri: "probe://r" });
    await b.client.subscribeResource({ uri: "probe://r" });
    assert.equal(await count("resources/subscribe"), subs0 + 1, "the child sees the first subscriber only");
    await c.client.callTool({ name: "p_touch", arguments: {} });
    await L.waitFor(() => a.got.length === 1 && b.got.length === 1, { what: "the update at a and b" });
    await a.client.unsubscribeResource({ uri: "probe://r" });
    assert.equal(await count("resources/unsubscribe"), unsubs0, "b still subscribes: the child is not told");
    await c.client.callTool({ name: "p_touch", arguments: {} });
    await L.waitFor(() => b.got.length === 2, { what: "the second update at b" });
    await L.sleep(200);
    assert.deepEqual([a.got.length, b.got.length, c.got.length], [1, 2, 0], "only subscribers get updates");
    await b.client.unsubscribeResource({ uri: "probe://r" });
    assert.equal(await count("resources/unsubscribe"), unsubs0 + 1, "the last one leaves: the child is told");
    for (const x of clients) await x.client.close();
  });

  test("tools/list_changed from the child reaches the gateway, which lists again", async () => {
    const { client } = await L.connect(gw.url);
    const before_ = await L.toolNames(client);
    assert.equal(L.textOf(await client.callTool({ name: "p_grow", arguments: {} })), "grown");
    const after_ = await L.waitTools(client, (n) => n.length === before_.length + 1, { what: "the new tool" });
    assert.deepEqual(after_.filter((n) => !before_.includes(n)), [`p_extra-${before_.length}`]);
    await client.close();
  });

  test("a cancelled call reaches the child as notifications/cancelled with the child's id", async () => {
    const { client } = await L.connect(gw.url);
    const ac = new AbortController();
    const p = client.callTool({ name: "p_wait", arguments: {} }, undefined, { signal: ac.signal }).catch((e) => e);
    await L.sleep(300);
    ac.abort("test cancels");
    assert.ok((await p) instanceof Error);
    const msgs = await L.waitFor(async () => {
      const m = await seen(client);
      return m.some((x) => x.method === "notifications/cancelled") ? m : null;
    }, { what: "notifications/cancelled at the child" });
    const wait = msgs.filter((m) => m.method === "tools/call" && m.params.name === "wait").at(-1);
    const cancels = msgs.filter((m) => m.method === "notifications/cancelled").map((m) => m.params.requestId);
    assert.ok(cancels.includes(wait.id), `the wait call (id ${wait.id}) cancelled: ${cancels}`);
    await client.close();
  });

  const askLater = async (client) => {
    const answers = (m) => m.filter((x) => /^later-/.test(x.id) && !x.method);
    const before_ = answers(await seen(client)).length;
    assert.equal(L.textOf(await client.callTool({ name: "p_ask-later", arguments: {} })), "asked");
    const msgs = await L.waitFor(async () => {
      const m = await seen(client);
      return answers(m).length > before_ ? m : null;
    }, { what: "the answer to roots/list at the child" });
    assert.equal(answers(msgs).length, before_ + 1, "one answer");
    const a = answers(msgs).at(-1);
    assert.equal(a.id, `later-${before_ + 1}`, "with the child's own id");
    return a;
  };

  test("a request the child sends outside any call goes to the GET stream of the latest call's session", async () => {
    const { client } = await L.connect(gw.url, { capabilities: { roots: {} } });
    let asked = 0;
    client.setRequestHandler(ListRootsRequestSchema, async () => { asked++; return { roots: [{ uri: "file:///later", name: "later" }] }; });
    const answer = await askLater(client);
    assert.deepEqual(answer.result, { roots: [{ uri: "file:///later", name: "later" }] });
    assert.equal(asked, 1);
    await client.close();
  });

  test("... and is answered with an error when that session's client cannot take it", async () => {
    const { client } = await L.connect(gw.url);   // no roots capability
    const answer = await askLater(client);
    assert.equal(answer.error.code, -32601);
    assert.match(answer.error.message, /did not declare the capability roots\/list needs/);
    await client.close();
  });
});

/** A minimal legacy HTTP+SSE MCP server in this process: GET <base>/sse, POSTs to what endpoint(sid) says. */
async function legacyServer({ endpoint }) {
  const st = { gets: 0, posts: [], streams: new Map(), inits: 0 };
  let next = 0;
  const srv = http.createServer((req, res) => {
    const u = new URL(req.url, "http://x");
    if (req.method === "GET" && u.pathname === "/a/sse") {
      const sid = String(++next);
      st.gets++;
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      res.write(`event: endpoint\ndata: ${endpoint(sid)}\n\n`);
      st.streams.set(sid, res);
      req.on("close", () => st.streams.delete(sid));
      return;
    }
    let body = "";
    req.on("data", (c) => { body += c; });
    req.on("end", () => {
      const out = st.streams.get(u.searchParams.get("sid"));
      st.posts.push({ path: u.pathname, sid: u.searchParams.get("sid"), auth: req.headers.authorization, body });
      if (req.method !== "POST" || u.pathname !== "/a/msg" || !out) { res.writeHead(404); res.end(); return; }
      res.writeHead(202);
      res.end("Accepted");
      const m = JSON.parse(body);
      const reply = (result) => out.write(`event: message\ndata: ${JSON.stringify({ jsonrpc: "2.0", id: m.id, result })}\n\n`);
      if (m.method === "initialize") {
        st.inits++;
        reply({ protocolVersion: "2024-11-05", capabilities: { tools: {} }, serverInfo: { name: "legacy", version: "1" } });
      } else if (m.method === "tools/list") reply({ tools: [{ name: "hello", inputSchema: { type: "object" } }] });
      else if (m.method === "tools/call") reply({ content: [{ type: "text", text: `hello from legacy session ${u.searchParams.get("sid")}` }] });
      else if (m.method === "ping") reply({});
    });
  });
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  st.port = srv.address().port;
  st.url = `http://127.0.0.1:${st.port}/a/sse`;
  st.dropStreams = () => { for (const r of st.streams.values()) r.end(); st.streams.clear(); };
  st.close = () => new Promise((r) => { srv.closeAllConnections(); srv.close(r); });
  return st;
}

describe("legacy SSE: the endpoint event, reconnection", () => {
  let gw, good, evil;
  before(async () => {
    good = await legacyServer({ endpoint: (sid) => `msg?sid=${sid}` });            // relative to /a/sse
    evil = await legacyServer({ endpoint: () => "http://127.0.0.2:9/steal" });     // another origin
    const config = L.writeFile("gateway.yaml", yamlServers([
      { name: "legacy", prefix: "lg_", url: good.url, transport: "sse", credential: "Bearer legacy-token" },
      { name: "evil", prefix: "ev_", url: evil.url, transport: "sse" }]));
    gw = await L.startGateway({ config, logName: "gateway-legacy", checkInterval: 1 });
    await waitReady(gw, ["legacy"]);
  });
  after(() => Promise.all([good.close(), evil.close()]));

  test("a relative endpoint is resolved against the SSE URL; the credential goes with every POST", async () => {
    const { client } = await L.connect(gw.url);
    assert.equal(L.textOf(await client.callTool({ name: "lg_hello", arguments: {} })), "hello from legacy session 1");
    assert.ok(good.posts.length >= 3);
    for (const p of good.posts) {
      assert.equal(p.path, "/a/msg");
      assert.equal(p.sid, "1");
      assert.equal(p.auth, "Bearer legacy-token");
    }
    assert.deepEqual(good.posts.slice(0, 2).map((p) => JSON.parse(p.body).method), ["initialize", "notifications/initialized"],
      "POSTs go one at a time, in order");
    await client.close();
  });

  test("an endpoint on another origin is refused: nothing is POSTed there", async () => {
    await L.waitFor(() => evil.gets >= 2, { timeout: 8000, what: "a reconnection to the refused server" });
    assert.match(gw.log(), /\[evil\] unusable endpoint event \(another origin or not a URL\): http:\/\/127\.0\.0\.2:9\/steal/);
    assert.equal(evil.posts.length, 0);
    const st = await (await fetch(`${gw.base}/status`)).json();
    assert.equal(st.servers.find((x) => x.name === "evil").ready, false);
  });

  test("a dropped SSE stream is reconnected and re-initialized; calls work again", async () => {
    const { client } = await L.connect(gw.url);
    assert.equal(L.textOf(await client.callTool({ name: "lg_hello", arguments: {} })), "hello from legacy session 1");
    good.dropStreams();
    await L.waitFor(() => good.gets >= 2 && good.inits >= 2, { timeout: 8000, what: "a new SSE connection, initialized" });
    const text = await L.waitFor(async () => {
      try { return L.textOf(await client.callTool({ name: "lg_hello", arguments: {} })); } catch { return null; }
    }, { timeout: 10000, what: "lg_hello after the reconnection" });
    assert.equal(text, "hello from legacy session 2");
    assert.match(gw.log(), /\[legacy\] legacy SSE connection lost: the SSE stream ended/);
    await client.close();
  });
});

describe("perSession: a child per client session", () => {
  let gw;
  const probes = () => childrenOf(gw.pid).filter((p) => cmdline(p).includes("probe.mjs"));
  before(async () => {
    const probe = L.writeFile("probe.mjs", PROBE);
    const config = L.writeFile("gateway.yaml", yamlServers([
      { name: "probe", prefix: "p_", command: NODE, args: [probe], perSession: true, maxChildren: "3" }]));
    gw = await L.startGateway({ config, logName: "gateway-per-session" });
    await waitReady(gw, ["probe"]);   // upmgr's own session: the first child
  });

  test("each session has its own child, initialized for it alone; at maxChildren a new session waits its turn", async () => {
    assert.equal(probes().length, 1, "upmgr's session has a child");
    const a = await L.connect(gw.url), b = await L.connect(gw.url);
    const seenBy = async (c) => JSON.parse(L.textOf(await c.client.callTool({ name: "p_seen", arguments: {} })));
    for (const c of [a, b]) {
      const msgs = await seenBy(c);
      assert.deepEqual(msgs.map((m) => m.method), ["initialize", "notifications/initialized", "tools/call"],
        "a child of its own: no other session's messages");
    }
    assert.equal(probes().length, 3);
    const c = await L.connect(gw.url);
    const refused = await c.client.callTool({ name: "p_seen", arguments: {} }).catch((e) => e);
    assert.ok(refused instanceof Error || refused.isError, "a 4th child is over maxChildren: 3");
    assert.match(refused.message ?? L.textOf(refused), /maxChildren|503|initiali[sz]/);
    const aKid = probes();
    await a.transport.terminateSession();          // DELETE: its child stops
    await L.waitFor(() => probes().length === 2, { timeout: 8000, what: "the ended session's child to stop" });
    assert.ok(aKid.filter((p) => !probes().includes(p)).every((p) => !alive(p)), "reaped");
    const msgs = await L.waitFor(async () => { try { return await seenBy(c); } catch { return null; } },
                                 { timeout: 10000, what: "the waiting session to get its child" });
    assert.equal(msgs.filter((m) => m.method === "initialize").length, 1);
    assert.equal(probes().length, 3);
    for (const x of [b, c]) { await x.transport.terminateSession(); await x.client.close(); }
    await L.waitFor(() => probes().length === 1, { timeout: 8000, what: "only upmgr's child left" });
  });

  test("a session's child that dies ends that session only; the next call gets a new child", async () => {
    const a = await L.connect(gw.url);
    const before_ = new Set(probes());
    await a.client.callTool({ name: "p_seen", arguments: {} });
    const mine = probes().filter((p) => !before_.has(p));
    assert.equal(mine.length, 1, "the session's own child");
    const kid = mine[0];
    process.kill(kid, "SIGKILL");
    await L.waitFor(() => !probes().includes(kid), { timeout: 8000, what: "the killed child to be reaped" });
    const msgs = await L.waitFor(async () => {
      try { return JSON.parse(L.textOf(await a.client.callTool({ name: "p_seen", arguments: {} }))); } catch { return null; }
    }, { timeout: 10000, what: "a new child for the session" });
    assert.equal(msgs[0].method, "initialize", "a fresh child");
    assert.equal(msgs.filter((m) => m.method === "tools/call").length, 1);
    await a.client.close();
  });

  test("stopping the gateway stops every child", async () => {
    const kids = probes();
    assert.ok(kids.length >= 2);
    await gw.stop(5000);
    await L.waitFor(() => kids.every((p) => !alive(p)), { timeout: 5000, what: `children ${kids} to be gone` });
  });
});

describe("stdio supervision and configuration", () => {
  test("a gateway killed with SIGKILL takes its stdio child along (PR_SET_PDEATHSIG)", async () => {
    const config = L.writeFile("gateway.yaml", yamlServers([
      { name: "ev", prefix: "ev_", command: NODE, args: [L.EVERYTHING_JS, "stdio"] }]));
    const g = await L.startGateway({ config, logName: "gateway-kill" });
    const kid = await L.waitFor(() => stdioChild(g, "server-everything"), { what: "the stdio child" });
    await g.kill("SIGKILL");
    await L.waitFor(() => !alive(kid), { timeout: 5000, what: `child ${kid} to die with the gateway` });
  });

  test("a command that cannot start is retried with back-off, and the rest of the gateway serves", async () => {
    const config = L.writeFile("gateway.yaml", yamlServers([
      { name: "missing", command: "/nonexistent/mcp-server" },
      { name: "exits", command: "/bin/sh", args: ["-c", "echo 'not json at all'; echo oops >&2; exit 3"] }]));
    const g = await L.startGateway({ config, logName: "gateway-bad", checkInterval: 1 });
    await L.waitFor(() => /\[exits\] restarting the stdio server in 2000 ms/.test(g.log()), { timeout: 8000, what: "a doubled back-off" });
    const log = g.log();
    assert.match(log, /\[exits\] not a JSON-RPC message on stdout \(dropped\): not json at all/);
    assert.match(log, /\[exits\] stderr: oops/);
    assert.match(log, /\[exits\] the child \(pid \d+\) exited with code 3/);
    assert.match(log, /\[missing\] cannot start the stdio server: \/nonexistent\/mcp-server: No such file or directory/);
    assert.match(log, /\[missing\] restarting the stdio server in 2000 ms/);
    assert.match(log, /\[exits\] not a JSON-RPC message on stdout \(dropped\): not json at all\n(?!\n)/);
    const st = await (await fetch(`${g.base}/status`)).json();
    assert.equal(st.servers.find((s) => s.name === "exits").ready, false);
    await g.stop();
  });

  test("a child that stops answering ping is restarted", async () => {
    const probe = L.writeFile("probe.mjs", PROBE);
    const config = L.writeFile("gateway.yaml", yamlServers([{ name: "deaf", prefix: "d_", command: NODE, args: [probe] }]));
    const g = await L.startGateway({ config, logName: "gateway-deaf", checkInterval: 1, args: ["--upstream-timeout", "1"] });
    await waitReady(g, ["deaf"]);
    const old = stdioChild(g, "probe.mjs");
    const { client } = await L.connect(g.url);
    await client.callTool({ name: "d_hang", arguments: {} }).catch(() => null);   // times out after 1 s
    const fresh = await L.waitFor(() => { const p = stdioChild(g, "probe.mjs"); return p && p !== old ? p : null; },
                                  { timeout: 20000, what: "a new child after unanswered pings" });
    assert.match(g.log(), /\[deaf\] bridge: 3 pings in a row unanswered/);
    assert.match(g.log(), /\[deaf\] restarting the stdio server: it does not answer ping/);
    const msgs = await L.waitFor(async () => {
      try { return JSON.parse(L.textOf(await client.callTool({ name: "d_seen", arguments: {} }))); } catch { return null; }
    }, { timeout: 15000, what: "d_seen on the new child" });
    assert.equal(msgs[0].method, "initialize");
    assert.ok(alive(fresh) && !alive(old));
    await client.close();
    await g.stop();
  });

  const check = (yaml) => {
    const f = L.writeFile("bad.yaml", yaml);
    return { f, r: L.runSync(L.GATEWAY_BIN, ["--mcp-gateway-config", f, "--check-config"]) };
  };

  test("--check-config shows stdio and legacy SSE servers", () => {
    const { r } = check(yamlServers([
      { name: "s", command: "node", args: ["srv.js", "--flag"], env: { A: "1" }, cwd: "/tmp", prefix: "s_" },
      { name: "l", url: "http://127.0.0.1:1/sse", transport: "sse" },
      { name: "h", url: "http://127.0.0.1:1/mcp", transport: "streamable-http" }]));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^ {2}s stdio: node srv\.js --flag prefix="s_"$/m);
    assert.match(r.stdout, /^ {2}l http:\/\/127\.0\.0\.1:1\/sse \(legacy SSE\) prefix=""$/m);
    assert.match(r.stdout, /^ {2}h http:\/\/127\.0\.0\.1:1\/mcp prefix=""$/m);
  });

  for (const [what, yaml, re] of [
    ["command and url", "servers:\n  - name: x\n    url: http://a/mcp\n    command: node\n",
     /bad\.yaml:2: server 'x' has both 'command' and 'url'/],
    ["perSession on a url server", "servers:\n  - name: x\n    url: http://a/mcp\n    perSession: true\n",
     /bad\.yaml:2: server 'x': 'args', 'env', 'cwd', 'perSession' and 'maxChildren' need a 'command'/],
    ["maxChildren without perSession", "servers:\n  - name: x\n    command: node\n    maxChildren: 3\n",
     /bad\.yaml:2: server 'x': 'maxChildren' needs perSession: true/],
    ["a bad maxChildren", "servers:\n  - name: x\n    command: node\n    perSession: true\n    maxChildren: 0\n",
     /bad\.yaml:5: 'maxChildren' must be an integer 1\.\.10000/],
    ["an unknown transport", "servers:\n  - name: x\n    url: http://a/mcp\n    transport: websocket\n",
     /bad\.yaml:4: transport must be streamable-http, sse or stdio/],
    ["stdio keys without a command", "servers:\n  - name: x\n    url: http://a/mcp\n    args: [a]\n",
     /bad\.yaml:2: server 'x': 'args', 'env', 'cwd', 'perSession' and 'maxChildren' need a 'command'/],
    ["transport sse on a command", "servers:\n  - name: x\n    command: node\n    transport: sse\n",
     /bad\.yaml:2: server 'x' has a 'command': its transport can only be stdio/],
    ["transport stdio without a command", "servers:\n  - name: x\n    transport: stdio\n",
     /bad\.yaml:2: server 'x' has transport stdio but no 'command'/],
    ["a bad env name", "servers:\n  - name: x\n    command: node\n    env: {\"A-B\": 1}\n",
     /bad\.yaml:4: env names must match/],
    ["args that are not a list", "servers:\n  - name: x\n    command: node\n    args: a b\n",
     /bad\.yaml:4: 'args' must be a list of strings/],
  ])
    test(`config error: ${what}`, () => {
      const { r } = check(yaml);
      assert.equal(r.status, 1, r.stdout);
      assert.match(r.stderr, re);
    });
});

describe("conformance suite against the fixture backend over stdio", () => {
  const N22 = path.join(L.ROOT, "tests/node22/node_modules/.bin/node");
  const CONFORMANCE = path.join(L.ROOT, "tests/node22/node_modules/@modelcontextprotocol/conformance/dist/index.js");
  const ALPHA = path.join(L.ROOT, "tests/node22/node_modules/conformance-alpha/dist/index.js");
  let out = "", aout = "", run, alpha;

  before(async () => {
    const example = await L.startExample({ name: "second", logName: "example-second" });
    const config = L.writeFile("gateway.yaml", yamlServers([
      { name: "conformance", command: NODE, args: ["servers/conf-backend.mjs"], cwd: path.join(L.ROOT, "tests"), env: { STDIO: "1" } },
      { name: "second", url: example.url, prefix: "second_" }]));
    const gw = await L.startGateway({ config, logName: "gateway-conformance" });
    await waitReady(gw, ["conformance", "second"]);
    // the suite's DNS-rebinding scenario needs `localhost` in the URL
    run = spawnSync(N22, [CONFORMANCE, "server", "--url", `http://localhost:${gw.port}/mcp`, "--suite", "all"],
      { cwd: L.ROOT, encoding: "utf8", timeout: 120000 });
    out = `${run.stdout}\n${run.stderr}`;
    fs.writeFileSync(path.join(L.LOG_DIR, "75-conformance-stdio.log"), out);
    alpha = spawnSync(N22, [ALPHA, "server", "--url", `http://localhost:${gw.port}/mcp`, "--requirements", "2025-11-25"],
      { cwd: L.ROOT, encoding: "utf8", timeout: 120000 });
    aout = `${alpha.stdout}\n${alpha.stderr}`;
    fs.writeFileSync(path.join(L.LOG_DIR, "75-conformance-stdio-alpha.log"), aout);
  });

  test("0.1.16 --suite all: every check passes", () => {
    const total = /Total: (\d+) passed, (\d+) failed/.exec(out);
    assert.ok(total, `no "Total:" line (exit ${run.status}); see build/test-logs/75-conformance-stdio.log`);
    const scenarios = [...out.matchAll(/^[✓✗] ([\w-]+): (\d+) passed, (\d+) failed/gm)];
    assert.ok(scenarios.length >= 30, `at least 30 scenarios, got ${scenarios.length}`);
    assert.equal(Number(total[2]), 0, `${total[0]}; failing: ${scenarios.filter((m) => m[3] !== "0").map((m) => m[1]).join(", ")}`);
    assert.equal(run.status, 0);
  });

  test("0.2.0-alpha --requirements 2025-11-25: every check passes", () => {
    const total = /Total: (\d+) passed, (\d+) failed/.exec(aout);
    assert.ok(total, `no "Total:" line (exit ${alpha.status}); see build/test-logs/75-conformance-stdio-alpha.log`);
    assert.ok(Number(total[1]) >= 70, `at least 70 checks passed: ${total[0]}`);
    assert.equal(Number(total[2]), 0, `${total[0]}; failing: ${[...aout.matchAll(/^✗ .*$/gm)].join("; ")}`);
  });
});
