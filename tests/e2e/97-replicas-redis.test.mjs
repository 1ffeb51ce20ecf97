// Three replicas sharing a Redis (CACHE_CONNECTION_STRING, src/redis.h) behind HAProxy (round-robin, no
// stickiness; the configuration of docs/operations.md): the SDK client's session moves between replicas
// losslessly — one upstream session per upstream for the whole client session (counted at the upstreams),
// an elicitation relayed by one replica and answered through another, a stream resumed on another replica,
// a replica SIGKILLed with no re-initialize anywhere; Redis stopped (calls go on from local state, /readyz
// and the log say so) and started again (reconnected); DELETE on one replica is 404 on the others, and on a
// replica that never saw the session.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import * as L from "./lib.mjs";

const HAPROXY = process.env.HAPROXY || "/usr/sbin/haproxy";
const REDIS = process.env.REDIS_SERVER || "/usr/bin/redis-server";
const REDIS_PASS = "e2e redis pass/word";   // percent-encoded in the URL
const ELICITED = { name: "Ada Lovelace", check: true, email: "ada@example.com", integer: 7 };

/**
 * A proxy in front of an upstream that records every request: its upstream session (the id the upstream
 * itself gave) and, for tools/call, the tool and its arguments. mainSessions() are the upstream sessions
 * that carried the main client's calls (arguments marked "main:", or the elicitation tool, which only it
 * calls): exactly one means no replica ever initialized another. With `declare`, an initialize without
 * capabilities gets them (server-everything lists its elicitation tool only to a client that declared
 * elicitation, and the gateway's catalog comes from its control session).
 */
async function startUpstreamProxy(target, { declare } = {}) {
  const t = new URL(target);
  const requests = [];
  const srv = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      let body = Buffer.concat(chunks);
      let j;
      try { j = JSON.parse(body.toString("utf8")); } catch { /* GET, DELETE */ }
      const rec = { method: req.method, session: req.headers["mcp-session-id"], rpc: j?.method ?? (j && "id" in j ? "(response)" : null),
                    tool: j?.method === "tools/call" ? j.params?.name : undefined, args: j?.params?.arguments };
      if (j?.method === "initialize" && declare && !Object.keys(j.params?.capabilities ?? {}).length) {
        j.params.capabilities = declare;
        body = Buffer.from(JSON.stringify(j));
      }
      requests.push(rec);
      const headers = { ...req.headers, "content-length": String(body.length) };
      if (!body.length) delete headers["content-length"];
      L.forward(t, req, res, body, headers);
    });
  });
  await new Promise((resolve, reject) => { srv.once("error", reject); srv.listen(0, "127.0.0.1", resolve); });
  const port = srv.address().port;
  return {
    url: `http://127.0.0.1:${port}${t.pathname}`, requests,
    mainSessions: () => new Set(requests.filter((r) => r.tool && (r.tool === "trigger-elicitation-request" ||
      Object.values(r.args ?? {}).some((v) => String(v).startsWith("main:")))).map((r) => r.session)),
    close: () => new Promise((resolve) => { srv.closeAllConnections?.(); srv.close(() => resolve()); }),
  };
}

const metricSum = (text, metric) => text.split("\n").filter((l) => l.startsWith(`${metric} `) || l.startsWith(`${metric}{`))
  .reduce((s, l) => s + Number(l.slice(l.lastIndexOf(" ") + 1)), 0);

describe("three replicas sharing Redis behind HAProxy", () => {
  const replicas = [];
  let redis, redisPort, redisUrl, s1, ev, p1, pev, config, lb, lbProc, client, transport;
  const elicitations = [];
  const metrics = async (r) => (await fetch(`http://127.0.0.1:${r.metricsPort}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  const toolCalls = async (r) => metricSum(await metrics(r), "mcp_gateway_tool_calls_total");
  const sseStreams = async (r) => metricSum(await metrics(r), "mcp_gateway_sse_streams");
  const readyz = async (r) => (await fetch(`${r.base}/readyz`, { signal: AbortSignal.timeout(3000) })).json();
  const live = () => replicas.filter((r) => r.running());
  const startRedis = () => {
    redis = L.spawnProc("redis", REDIS, ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                         "--requirepass", REDIS_PASS]);
    return L.waitPort(redisPort, { proc: redis, what: `redis-server on ${redisPort}` });
  };
  const startReplica = async (i, extra = []) => {
    const metricsPort = await L.freePort();
    const g = await L.startGateway({ config, logName: `replica${i}`, env: { CACHE_CONNECTION_STRING: redisUrl },
                                     args: ["--metrics-addr", `127.0.0.1:${metricsPort}`, "--log-level", "-4", ...extra] });
    g.metricsPort = metricsPort;
    return g;
  };
  const call = async (name, args) => {
    const r = await client.callTool({ name, arguments: args });
    assert.ok(!r.isError, JSON.stringify(r));
    return L.textOf(r);
  };
  const callBoth = async (tag) => {
    assert.equal(await call("s1_greet", { name: `main:${tag}` }), `Hello, main:${tag}! (from server1)`);
    assert.equal(await call("ev_echo", { message: `main:${tag}` }), `Echo: main:${tag}`);
  };
  /** The main client's calls all went to one upstream session per upstream (the upstream's own view). */
  const oneUpstreamSessionEach = (when) => {
    const a = p1.mainSessions(), b = pev.mainSessions();
    assert.equal(a.size, 1, `${when}: server1 served the client's calls in one session: ${[...a]}`);
    assert.equal(b.size, 1, `${when}: server-everything served the client's calls in one session: ${[...b]}`);
    return [...a, ...b];
  };
  let upstreamSessions;

  before(async () => {
    assert.ok(fs.existsSync(REDIS), `${REDIS} (scripts/deps.sh test installs redis-server)`);
    assert.ok(fs.existsSync(HAPROXY), `${HAPROXY} (scripts/deps.sh test installs haproxy)`);
    redisPort = await L.freePort();
    redisUrl = `redis://default:${encodeURIComponent(REDIS_PASS)}@127.0.0.1:${redisPort}/3`;
    await startRedis();
    [s1, ev] = await Promise.all([L.startExample({ name: "server1" }), L.startEverything()]);
    [p1, pev] = await Promise.all([startUpstreamProxy(s1.url), startUpstreamProxy(ev.url, { declare: { elicitation: {} } })]);
    config = L.writeConfig([{ name: "example/server1", url: p1.url, prefix: "s1_" },
                            { name: "everything", url: pev.url, prefix: "ev_" }]);
    // replica0 with two loops: a session moves between loops as between processes
    replicas.push(...await Promise.all([startReplica(0, ["--workers", "2"]), startReplica(1, ["--workers", "1"]),
                                        startReplica(2, ["--workers", "1"])]));
    await Promise.all(replicas.map((g) => L.waitFor(async () => {
      const r = await readyz(g);
      return r.ready && r.healthyServers === 2 && r.redis === "connected";
    }, { proc: g, timeout: 20000, what: `${g.name}: ready, both upstreams, Redis connected` })));
    const port = await L.freePort();
    const dir = L.tmpDir();
    fs.writeFileSync(path.join(dir, "haproxy.cfg"), L.haproxyConf({ checkInterval: "1s", port, upstreams: replicas.map((g) => `127.0.0.1:${g.port}`) }));
    lbProc = L.spawnProc("haproxy", HAPROXY, ["-db", "-f", path.join(dir, "haproxy.cfg")]);
    await L.waitPort(port, { proc: lbProc, what: `haproxy on ${port}` });
    lb = `http://127.0.0.1:${port}/mcp`;
  });
  after(async () => {
    try { await client?.close(); } catch { /* gone */ }
    if (lbProc) fs.writeFileSync(path.join(L.LOG_DIR, "97-replicas-redis-requests.log"), lbProc.log());
    await Promise.all([p1?.close(), pev?.close()]);
    await L.cleanup();
  });

  test("the SDK client initializes, lists and calls on every replica; one upstream session per upstream", async () => {
    ({ client, transport } = await L.connect(lb, { name: "redis-replicas-client", capabilities: { elicitation: {} } }));
    client.setRequestHandler(ElicitRequestSchema, async (r) => { elicitations.push(r.params); return { action: "accept", content: ELICITED }; });
    assert.match(transport.sessionId ?? "", /^v1\./);
    const names = await L.waitTools(client, (n) => n.includes("s1_greet") && n.includes("ev_trigger-elicitation-request"),
                                    { what: "both upstreams' tools" });
    assert.ok(names.includes("ev_echo"), names.join(", "));
    for (let i = 0; i < 20; i++) {
      await callBoth(`call ${i}`);
      if (i >= 2 && (await Promise.all(replicas.map(toolCalls))).every((n) => n >= 2)) break;
    }
    const calls = await Promise.all(replicas.map(toolCalls));
    assert.ok(calls.every((n) => n >= 2), `tools/call per replica: ${calls}`);
    // every replica used the upstream sessions the first ones made: Redis carried them
    upstreamSessions = oneUpstreamSessionEach("across the replicas");
    // logging/setLevel on whichever replica: every upstream session of the client's session gets it
    await client.setLoggingLevel("warning");
    for (const [p, sidUp] of [[p1, upstreamSessions[0]], [pev, upstreamSessions[1]]])
      assert.ok(p.requests.some((r) => r.rpc === "logging/setLevel" && r.session === sidUp),
                `logging/setLevel reached the upstream session ${sidUp}`);
  });

  test("an elicitation relayed by one replica is answered through another and completes", async (t) => {
    const routed = () => replicas.reduce((n, g) => n + (g.log().match(/sent to everything through Redis/g) ?? []).length, 0);
    const before = routed();
    for (let i = 0; i < 6 && routed() === before; i++) {
      const n = elicitations.length;
      const r = await client.callTool({ name: "ev_trigger-elicitation-request", arguments: {} });
      assert.equal(elicitations.length, n + 1, "one elicitation/create at the client");
      assert.equal(elicitations[n].message, "Please provide inputs for the following fields:");
      const texts = r.content.map((c) => c.text);
      assert.equal(texts[0], "✅ User provided the requested information!", JSON.stringify(r));
      assert.deepEqual(JSON.parse(texts[2].replace(/^\nRaw result: /, "")), { action: "accept", content: ELICITED });
    }
    t.diagnostic(`answers routed through Redis: ${routed() - before}`);
    assert.ok(routed() > before, "at least one answer reached another replica than the one that relayed the request");
    assert.deepEqual(oneUpstreamSessionEach("after the elicitations"), upstreamSessions);
  });

  test("a stream written by one replica resumes on another (Last-Event-ID)", async () => {
    const [a, b] = replicas;
    const { sessionId } = await L.rawSession(a.url);
    const ID = 7, TOKEN = "resume-across";
    const ac = new AbortController();
    const res = await fetch(a.url, { method: "POST", headers: L.mcpHeaders(sessionId), signal: ac.signal,
      body: JSON.stringify({ jsonrpc: "2.0", id: ID, method: "tools/call",
                             params: { name: "s1_slow", arguments: { steps: 4, delay_ms: 150 }, _meta: { progressToken: TOKEN } } }) });
    assert.match(res.headers.get("content-type") ?? "", /^text\/event-stream/);
    const post = L.sseReader(res);
    const first = await post.nextMessage((m) => m.method === "notifications/progress", { what: "the first progress" });
    ac.abort();   // the client loses the stream; the call goes on on replica a
    await L.sleep(1000);   // a finishes the call and stores every event (locally and in Redis)
    const { res: g, sse } = await L.openGetStream(b.url, sessionId, { lastEventId: first.id });
    assert.equal(g.status, 200);
    const result = await sse.nextMessage((m) => m.id === ID, { what: "the call's result replayed by the other replica" });
    sse.cancel();
    assert.equal(L.textOf(result.json.result), "done after 4 steps");
    const stream = first.id.slice(0, first.id.lastIndexOf("/"));
    const replayed = sse.events.filter((e) => e.id?.startsWith(`${stream}/`));
    assert.deepEqual(replayed.map((e) => e.json?.params?.progress ?? "result"), [2, 3, 4, "result"],
                     `the events after ${first.id}, in order: ${JSON.stringify(replayed.map((e) => e.id))}`);
    assert.ok(b.log().includes("event(s) from Redis"), "replica b read them from Redis");
  });

  test("SIGKILL one replica: the next calls succeed, same session, same upstream sessions", async (t) => {
    const sid = transport.sessionId;
    const streams = await Promise.all(replicas.map(sseStreams));
    const victim = replicas[Math.max(0, streams.findIndex((n) => n > 0))];
    t.diagnostic(`GET streams per replica: ${streams}; killing ${victim.name}`);
    await victim.kill("SIGKILL");
    await L.sleep(200);
    for (let i = 0; i < 6; i++) await callBoth(`after kill ${i}`);
    assert.ok((await L.toolNames(client)).includes("s1_greet"));
    assert.equal(transport.sessionId, sid, "the same session id");
    assert.deepEqual(oneUpstreamSessionEach("after the kill"), upstreamSessions, "the same upstream sessions as before");
  });

  test("Redis stopped: calls go on from local state, /readyz and the log say so; started again: reconnected", async () => {
    await redis.stop();
    await L.waitFor(async () => (await Promise.all(live().map(readyz))).every((r) => r.redis === "unreachable" && r.ready),
                    { timeout: 10000, what: "/readyz: 200 with redis unreachable on every live replica" });
    for (let i = 0; i < 4; i++) await callBoth(`redis down ${i}`);
    const fresh = await L.connect(lb, { name: "while-redis-is-down" });   // sessions still start
    assert.equal(L.textOf(await fresh.client.callTool({ name: "s1_greet", arguments: { name: "down" } })), "Hello, down! (from server1)");
    await fresh.client.close();
    for (const g of live()) assert.match(g.log(), /Redis at 127\.0\.0\.1:\d+\/3 unreachable/, `${g.name} logged the outage`);
    await startRedis();
    await L.waitFor(async () => (await Promise.all(live().map(readyz))).every((r) => r.redis === "connected"),
                    { timeout: 15000, what: "/readyz: redis connected again on every live replica" });
    for (const g of live()) assert.match(g.log(), /Redis at 127\.0\.0\.1:\d+\/3 is reachable again/, `${g.name} logged the return`);
    for (let i = 0; i < 4; i++) await callBoth(`redis back ${i}`);
    // Redis restarted empty (no persistence): the replicas that know the upstream sessions wrote them back
    assert.deepEqual(oneUpstreamSessionEach("after Redis came back"), upstreamSessions);
  });

  test("DELETE on one replica: 404 on the others, and on a replica that never saw the session", async () => {
    const [a, b] = live();
    const { sessionId } = await L.rawSession(a.url);
    const greet = (g, id) => L.rpc(g.url, { jsonrpc: "2.0", id, method: "tools/call", params: { name: "s1_greet", arguments: { name: "x" } } },
                                   { sessionId });
    assert.equal((await greet(a, 1)).status, 200);   // an upstream session made on a
    assert.equal((await greet(b, 2)).status, 200);   // b has the session too
    const upDeletes = () => p1.requests.filter((r) => r.method === "DELETE").length;
    const deletesBefore = upDeletes();
    const del = await fetch(b.url, { method: "DELETE", headers: L.mcpHeaders(sessionId) });
    assert.equal(del.status, 200);
    await L.waitFor(async () => (await greet(a, 3)).status === 404, { timeout: 5000, what: "404 on the replica that did not see the DELETE" });
    assert.equal((await greet(b, 4)).status, 404);
    await L.waitFor(() => upDeletes() > deletesBefore, { what: "the upstream session ended at server1" });
    const c = await startReplica(3, ["--workers", "1"]);
    replicas.push(c);
    await L.waitFor(async () => (await readyz(c)).redis === "connected", { proc: c, what: "the new replica connected to Redis" });
    assert.equal((await greet(c, 5)).status, 404, "a replica that never saw the session finds it revoked");
    assert.equal((await greet(c, 6)).status, 404);
  });
});
