// Graceful shutdown: SIGTERM during a slow call — the call completes, new connections are
// refused, GET streams are told to reconnect, the gateway exits 0.
import { describe, test, after } from "node:test";
import assert from "node:assert/strict";
import * as L from "./lib.mjs";

describe("drain on SIGTERM", () => {
  after(() => L.cleanup());

  test("a slow call finishes, new connections are refused, exit 0", async () => {
    const up = await L.startExample({ name: "server1" });
    const gw = await L.startGateway({ servers: [{ name: "example/server1", url: up.url, prefix: "s1_" }] });
    const { sessionId } = await L.rawSession(gw.url);
    await L.waitFor(async () => (await (await fetch(`${gw.base}/status/example/server1`)).json()).ready,
                    { what: "upstream ready" });
    // a GET stream, to see its last event
    const get = await fetch(gw.url, { headers: { Accept: "text/event-stream", "Mcp-Session-Id": sessionId,
                                                  "MCP-Protocol-Version": L.PROTOCOL_VERSION } });
    assert.equal(get.status, 200);
    const getText = get.text();
    // a slow call in flight
    const call = L.rpc(gw.url, { jsonrpc: "2.0", id: 7, method: "tools/call",
                                 params: { name: "s1_sleep", arguments: { ms: 1500 } } }, { sessionId });
    await L.sleep(300);
    gw.child.kill("SIGTERM");
    await L.sleep(300);
    // new connections are refused while the call drains
    await assert.rejects(fetch(`${gw.base}/healthz`), "a new connection during the drain is refused");
    const r = await call;
    assert.equal(r.status, 200);
    assert.equal(L.textOf(r.message?.result), "slept", JSON.stringify(r.message));
    assert.match(await getText, /retry: 1000/, "the GET stream ended with a retry hint");
    const exit = await gw.exited;
    assert.equal(exit.code, 0, `exit ${JSON.stringify(exit)}`);
  });
});
