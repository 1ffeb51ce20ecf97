// Prometheus /metrics on --metrics-addr: the exposition parses as the text format, and the
// counters move as calls are made.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as L from "./lib.mjs";

const { parseProm } = L;   // the Prometheus text format parser (lib.mjs)

describe("metrics", () => {
  let gw, client, metricsPort;
  before(async () => {
    const up = await L.startExample({ name: "server1" });
    metricsPort = await L.freePort();
    gw = await L.startGateway({ servers: [{ name: "example/server1", url: up.url, prefix: "s1_" }],
                                args: ["--metrics-addr", `127.0.0.1:${metricsPort}`] });
    await L.waitHttp(`http://127.0.0.1:${metricsPort}/metrics`, { proc: gw, what: "/metrics" });
    ({ client } = await L.connect(gw.url));
    await L.waitTools(client, (n) => n.includes("s1_echo"));
  });
  after(async () => { await client?.close().catch(() => {}); await L.cleanup(); });

  const scrape = async () => {
    const r = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get("content-type"), /^text\/plain; version=0\.0\.4/);
    return parseProm(await r.text());
  };

  test("the exposition parses and names the upstream", async () => {
    const m = await scrape();
    assert.equal(m.types.mcp_gateway_tool_calls_total, "counter");
    assert.equal(m.types.mcp_gateway_sessions, "gauge");
    assert.equal(m.value("mcp_gateway_upstream_up", { server: "example/server1" }), 1);
    assert.equal(m.value("mcp_gateway_upstream_tools", { server: "example/server1" }), 8);
  });

  test("counters move as calls are made", async () => {
    const before = await scrape();
    for (let i = 0; i < 3; i++) await client.callTool({ name: "s1_echo", arguments: { text: `m${i}` } });
    const after = await scrape();
    const calls = (m) => m.value("mcp_gateway_tool_calls_total", { server: "example/server1" });
    assert.equal(calls(after) - calls(before), 3);
    const ok = (m) => m.value("mcp_gateway_http_responses_total", { code: "2xx" });
    assert.ok(ok(after) - ok(before) >= 3, `2xx responses grew by ${ok(after) - ok(before)}`);
    assert.ok(after.value("mcp_gateway_sessions") >= 1);
  });

  test("only /metrics, only GET", async () => {
    assert.equal((await fetch(`http://127.0.0.1:${metricsPort}/other`)).status, 404);
    assert.equal((await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { method: "POST" })).status, 405);
  });
});
