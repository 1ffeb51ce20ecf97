// Health: /healthz /readyz /status; an upstream killed -> its tools withdrawn, the other still works;
// restarted on the same port -> its tools back. The gateway runs with --mcp-check-interval 1.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as L from "./lib.mjs";

const getJson = async (url) => {
  const r = await fetch(url, { signal: AbortSignal.timeout(5000) });
  const text = await r.text();
  let json; try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, json, text };
};
const serverEntry = (st, name) => st?.servers?.find((s) => s.name === name || s.id === name);

after(L.cleanup);

describe("upstream health", () => {
  let s1, s2, gw, client;
  const port2 = { v: 0 };

  before(async () => {
    [s1, s2] = await Promise.all([L.startExample({ name: "server1" }), L.startExample({ name: "server2" })]);
    port2.v = s2.port;
    gw = await L.startGateway({ checkInterval: 1, args: ["--upstream-timeout", "2"], servers: [
      { name: "example/server1", url: s1.url, prefix: "s1_" },
      { name: "example/server2", url: s2.url, prefix: "s2_" },
    ] });
    ({ client } = await L.connect(gw.url));
    await L.waitTools(client, (n) => n.includes("s1_greet") && n.includes("s2_greet"), { what: "tools of both upstreams" });
  });
  after(() => client?.close().catch(() => {}));

  test("/healthz 200, /readyz 200 with ready upstreams", async () => {
    assert.equal((await getJson(`${gw.base}/healthz`)).status, 200);
    await L.waitFor(async () => (await getJson(`${gw.base}/readyz`)).status === 200, { what: "/readyz 200" });
  });

  test("/status lists both servers as ready", async () => {
    const st = await L.waitFor(async () => {
      const r = await getJson(`${gw.base}/status`);
      return r.status === 200 && r.json?.servers?.length === 2 && r.json.servers.every((s) => s.ready) ? r.json : null;
    }, { what: "/status with two ready servers" });
    assert.equal(st.totalServers, 2);
    assert.equal(st.healthyServers, 2);
    assert.equal(st.unHealthyServers, 0);
    assert.equal(serverEntry(st, "example/server1")?.totalTools >= 8, true, JSON.stringify(st));
  });

  test("/status/<name> answers for one server, 404 for an unknown one", async () => {
    const one = await getJson(`${gw.base}/status/example/server1`);
    assert.equal(one.status, 200, one.text);
    assert.match(one.text, /example\/server1/);
    assert.doesNotMatch(one.text, /example\/server2/);
    assert.equal((await getJson(`${gw.base}/status/no-such-server`)).status, 404);
  });

  test("upstream killed -> its tools withdrawn, the other still works", async () => {
    await s2.kill("SIGKILL");
    await L.waitTools(client, (n) => !n.some((x) => x.startsWith("s2_")) && n.includes("s1_greet"),
                      { timeout: 10000, what: "s2_ tools to be withdrawn" });
    assert.equal(L.textOf(await client.callTool({ name: "s1_greet", arguments: { name: "Ada" } })), "Hello, Ada! (from server1)");
    const st = (await getJson(`${gw.base}/status`)).json;
    assert.equal(serverEntry(st, "example/server2")?.ready, false, JSON.stringify(st));
    assert.equal(serverEntry(st, "example/server1")?.ready, true, JSON.stringify(st));
    assert.equal(st.unHealthyServers, 1);
    assert.equal((await getJson(`${gw.base}/readyz`)).status, 200, "still ready with one upstream up");
  });

  test("a call to a withdrawn tool fails with a JSON-RPC error or an error result", async () => {
    let r;
    try { r = await client.callTool({ name: "s2_greet", arguments: { name: "Ada" } }); }
    catch (e) { assert.ok(typeof e.code === "number", `McpError expected, got ${e}`); return; }
    assert.equal(r.isError, true, JSON.stringify(r));
  });

  test("upstream restarted on the same port -> tools back and callable", async () => {
    s2 = await L.startExample({ name: "server2", port: port2.v, logName: "example-server2-restarted" });
    await L.waitTools(client, (n) => n.includes("s2_greet"), { timeout: 10000, what: "s2_ tools to come back" });
    assert.equal(L.textOf(await client.callTool({ name: "s2_greet", arguments: { name: "Bo" } })), "Hello, Bo! (from server2)");
    const st = await L.waitFor(async () => {
      const r = (await getJson(`${gw.base}/status`)).json;
      return r?.healthyServers === 2 ? r : null;
    }, { what: "/status healthyServers 2" });
    assert.equal(st.unHealthyServers, 0);
  });

  test("all upstreams down -> /readyz 503; back -> 200", async () => {
    const p1 = s1.port;
    await Promise.all([s1.kill("SIGKILL"), s2.kill("SIGKILL")]);
    await L.waitFor(async () => (await getJson(`${gw.base}/readyz`)).status === 503, { timeout: 10000, what: "/readyz 503" });
    assert.equal((await getJson(`${gw.base}/healthz`)).status, 200, "/healthz stays 200");
    s1 = await L.startExample({ name: "server1", port: p1, logName: "example-server1-restarted" });
    await L.waitFor(async () => (await getJson(`${gw.base}/readyz`)).status === 200, { timeout: 10000, what: "/readyz 200 again" });
    await L.waitTools(client, (n) => n.includes("s1_greet"), { timeout: 10000, what: "s1_ tools back" });
  });

  test("a call slower than --upstream-timeout fails in time; the gateway keeps serving", async () => {
    const t0 = Date.now();
    let failed = false;
    try {
      const r = await client.callTool({ name: "s1_sleep", arguments: { ms: 6000 } });
      failed = r.isError === true;
    } catch (e) { failed = true; }
    const ms = Date.now() - t0;
    assert.ok(failed, "the call failed");
    assert.ok(ms < 5000, `answered after ${ms} ms (timeout 2 s)`);
    assert.equal(L.textOf(await client.callTool({ name: "s1_greet", arguments: { name: "C" } })), "Hello, C! (from server1)");
  });
});
