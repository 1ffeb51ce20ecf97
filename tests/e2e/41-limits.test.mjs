// Limits a client can run into, each with its status, Retry-After and a JSON-RPC error body:
// sessions per authenticated subject (429), calls in flight to one server (429, per server
// maxConcurrency and the --max-upstream-concurrency default), JSON-RPC id and method length (400
// -32600). After each, the gateway goes on serving the same client.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as L from "./lib.mjs";

after(L.cleanup);

const call = (name, args, id = 5) => ({ jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args } });

describe("limits", () => {
  let idp, up, gw, resource;
  const tokenFor = (clientId, secret) => L.idpToken(idp, { resource, clientId, secret });

  before(async () => {
    const port = await L.freePort();
    resource = `http://127.0.0.1:${port}/mcp`;
    [idp, up] = await Promise.all([L.startIdp(), L.startExample({ name: "server1" })]);
    gw = await L.startGateway({
      port,
      servers: [{ name: "example/narrow", url: up.url, prefix: "n_", maxConcurrency: 2 },
                { name: "example/wide", url: up.url, prefix: "w_" }],
      args: ["--max-sessions-per-subject", "3", "--max-upstream-concurrency", "4",
             "--max-jsonrpc-id-length", "64", "--max-method-length", "40"],
      env: { OAUTH_RESOURCE: resource, OAUTH_AUTHORIZATION_SERVERS: idp.issuer },
    });
  });

  test("a subject's sessions are capped: 429 with Retry-After and a JSON-RPC error; DELETE frees one", async () => {
    const token = await tokenFor();
    const auth = L.bearer(token);
    const sessions = [];
    for (let i = 0; i < 3; i++) sessions.push((await L.rawSession(gw.url, { headers: auth })).sessionId);
    const r = await L.rpc(gw.url, { jsonrpc: "2.0", id: 1, method: "initialize",
      params: { protocolVersion: L.PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: "one-too-many", version: "1" } } },
      { headers: auth });
    assert.equal(r.status, 429, `4th session of one subject: HTTP ${r.status} ${JSON.stringify(r.messages)}`);
    assert.match(r.headers.get("retry-after") || "", /^\d+$/, "Retry-After");
    assert.equal(r.message?.id, 1);
    assert.equal(r.message?.error?.code, -32603);
    assert.match(r.message?.error?.message, /too many sessions for this user/);
    // the existing sessions still work
    const ping = await L.rpc(gw.url, { jsonrpc: "2.0", id: 2, method: "ping" }, { sessionId: sessions[0], headers: auth });
    assert.equal(ping.status, 200);
    assert.deepEqual(ping.message?.result, {});
    // DELETE one: a new one fits
    const del = await fetch(gw.url, { method: "DELETE", headers: L.mcpHeaders(sessions[2], auth) });
    assert.equal(del.status, 200);
    await del.body?.cancel();
    const again = await L.rawSession(gw.url, { headers: auth });
    assert.ok(again.sessionId, "a session after DELETE");
  });

  test("another subject is not affected by the first one's cap", async () => {
    // the IdP's second confidential client is a different subject
    const other = await tokenFor("gw-test-2", "gw-test-2-secret").catch(() => null);
    if (!other) return assert.fail("the dev IdP has no second client (gw-test-2): the test cannot show isolation");
    const s = await L.rawSession(gw.url, { headers: L.bearer(other) });
    assert.ok(s.sessionId);
  });

  test("calls in flight to one server are capped (maxConcurrency 2): the third gets 429, the others finish", async () => {
    const auth = L.bearer(await tokenFor("gw-dev", "gw-dev-secret"));
    const { sessionId } = await L.rawSession(gw.url, { headers: auth });
    const slow = [1, 2].map((i) => L.rpc(gw.url, call("n_sleep", { ms: 1500 }, 100 + i), { sessionId, headers: auth }));
    await L.sleep(400);   // both are in flight now
    const over = await L.rpc(gw.url, call("n_echo", { text: "x" }, 7), { sessionId, headers: auth });
    assert.equal(over.status, 429, `third call: HTTP ${over.status} ${JSON.stringify(over.messages)}`);
    assert.equal(over.headers.get("retry-after"), "1");
    assert.equal(over.message?.id, 7);
    assert.match(over.message?.error?.message, /example\/narrow is busy: 2 calls in flight/);
    // another server is not affected
    const wide = await L.rpc(gw.url, call("w_echo", { text: "wide" }, 8), { sessionId, headers: auth });
    assert.equal(L.textOf(wide.message?.result), "wide");
    for (const p of slow) {
      const r = await p;
      assert.equal(r.status, 200);
      assert.equal(L.textOf(r.message?.result), "slept");
    }
    // the slots are free again
    const after = await L.rpc(gw.url, call("n_echo", { text: "free" }, 9), { sessionId, headers: auth });
    assert.equal(L.textOf(after.message?.result), "free");
  });

  test("JSON-RPC ids and method names longer than their limits are invalid requests (-32600)", async () => {
    const auth = L.bearer(await tokenFor("gw-dev", "gw-dev-secret"));
    const { sessionId } = await L.rawSession(gw.url, { headers: auth });
    const longId = await L.rpc(gw.url, { jsonrpc: "2.0", id: "i".repeat(65), method: "ping" }, { sessionId, headers: auth, id: null });
    assert.equal(longId.status, 400);
    assert.equal(longId.messages[0]?.error?.code, -32600);
    const okId = await L.rpc(gw.url, { jsonrpc: "2.0", id: "i".repeat(64), method: "ping" }, { sessionId, headers: auth });
    assert.equal(okId.status, 200);
    const longMethod = await L.rpc(gw.url, { jsonrpc: "2.0", id: 3, method: "m".repeat(41) }, { sessionId, headers: auth });
    assert.equal(longMethod.status, 400);
    assert.equal(longMethod.messages[0]?.error?.code, -32600);
    assert.equal(longMethod.messages[0]?.id, 3, "the id is echoed");
  });
});
