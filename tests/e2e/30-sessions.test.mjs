// Sessions: DELETE ends a session (later requests 404); a session id made by one gateway process is
// accepted by another process with the same GATEWAY_SIGNING_KEY, and refused (404) with another key.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as L from "./lib.mjs";

const OTHER_KEY = "another-signing-key-that-is-long-enough-0123456789";

after(L.cleanup);

describe("sessions", () => {
  let up, gwA, gwB, gwC, client, transport, sid;

  before(async () => {
    up = await L.startExample({ name: "server1" });
    const servers = [{ name: "example/server1", url: up.url, prefix: "s1_" }];
    const config = L.writeConfig(servers);
    [gwA, gwB, gwC] = await Promise.all([
      L.startGateway({ config, logName: "gateway-a", args: ["--workers", "2"] }),
      L.startGateway({ config, logName: "gateway-b" }),                                  // same key
      L.startGateway({ config, logName: "gateway-c", env: { GATEWAY_SIGNING_KEY: OTHER_KEY } }),
    ]);
    ({ client, transport } = await L.connect(gwA.url));
    sid = transport.sessionId;
    await L.waitTools(client, (n) => n.includes("s1_greet"));
  });
  after(() => client?.close().catch(() => {}));

  const toolsList = (gw, sessionId, id = 10) =>
    L.rpc(gw.url, { jsonrpc: "2.0", id, method: "tools/list" }, { sessionId });

  test("session id is visible ASCII and reasonably long", () => {
    assert.match(sid ?? "", /^[\x21-\x7e]{16,}$/);
  });

  test("the session works on many new connections (and workers) of its gateway", async () => {
    for (let i = 0; i < 6; i++) {
      const r = await L.rawHttp(gwA.port, { headers: L.mcpHeaders(sid), body: JSON.stringify({ jsonrpc: "2.0", id: 100 + i, method: "ping" }) });
      assert.equal(r.status, 200, `ping #${i}: ${r.error?.message ?? r.body}`);
    }
  });

  test("another gateway process with the same GATEWAY_SIGNING_KEY accepts the session id", async () => {
    const r = await L.waitFor(async () => {
      const x = await toolsList(gwB, sid);
      return x.status === 200 && x.message?.result?.tools?.some((t) => t.name === "s1_greet") ? x : null;
    }, { what: "tools/list with s1_greet on gateway B" }).catch(async (e) => {
      const x = await toolsList(gwB, sid);
      throw new Error(`${e.message}; last answer: HTTP ${x.status} ${JSON.stringify(x.messages)}`);
    });
    assert.equal(r.message.id, 10);
    const call = await L.rpc(gwB.url, { jsonrpc: "2.0", id: 11, method: "tools/call", params: { name: "s1_greet", arguments: { name: "B" } } },
                             { sessionId: sid });
    assert.equal(call.status, 200);
    assert.equal(call.message?.result?.content?.[0]?.text, "Hello, B! (from server1)", JSON.stringify(call.messages));
  });

  test("a gateway with a different key answers 404", async () => {
    const r = await toolsList(gwC, sid);
    assert.equal(r.status, 404, JSON.stringify(r.messages));
  });

  test("a forged (altered) session id -> 404", async () => {
    // change one alphanumeric character in the middle (the last one of a base64 text may be padding bits)
    let i = Math.floor(sid.length / 2);
    while (i < sid.length && !/[A-Za-z0-9]/.test(sid[i])) i++;
    const forged = sid.slice(0, i) + (sid[i] === "x" ? "y" : "x") + sid.slice(i + 1);
    assert.notEqual(forged, sid);
    assert.equal((await toolsList(gwA, forged)).status, 404);
    assert.equal((await toolsList(gwA, "not-a-session-id-at-all-0123456789")).status, 404);
  });

  test("DELETE (terminateSession) -> later requests with that id get 404", async () => {
    assert.equal((await toolsList(gwA, sid)).status, 200, "session alive before DELETE");
    await transport.terminateSession();
    assert.equal(transport.sessionId, undefined, "SDK transport dropped the id after a successful DELETE");
    const r = await toolsList(gwA, sid);
    assert.equal(r.status, 404, `tools/list after DELETE: ${JSON.stringify(r.messages)}`);
    const g = await fetch(gwA.url, { headers: { accept: "text/event-stream", "mcp-session-id": sid, "mcp-protocol-version": L.PROTOCOL_VERSION } });
    await g.body?.cancel();
    assert.equal(g.status, 404, "GET after DELETE");
  });

  test("DELETE of an unknown session -> 404", async () => {
    const r = await fetch(gwA.url, { method: "DELETE", headers: { "mcp-session-id": "forged-0123456789abcdef0123456789", "mcp-protocol-version": L.PROTOCOL_VERSION } });
    await r.body?.cancel();
    assert.equal(r.status, 404);
  });

  test("a new session after DELETE works", async () => {
    const c2 = await L.connect(gwA.url);
    try {
      assert.notEqual(c2.transport.sessionId, sid);
      assert.equal(L.textOf(await c2.client.callTool({ name: "s1_greet", arguments: { name: "New" } })), "Hello, New! (from server1)");
    } finally { await c2.client.close(); }
  });
});
