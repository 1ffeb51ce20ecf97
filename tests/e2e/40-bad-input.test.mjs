// Bad input on the wire: each gets its status (and JSON-RPC error code where there is a body), and the
// gateway serves the next request on a new connection afterwards. Every request here is sent on a
// fresh TCP connection (lib.rawHttp).
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as L from "./lib.mjs";

const MAX_BODY = 65536;

/** The JSON-RPC error code in a JSON body (an error object or a one-element array of them). */
const errorCode = (r) => {
  const j = Array.isArray(r.json) ? r.json[0] : r.json;
  return j?.error?.code;
};
/** JSON-RPC messages in a rawHttp answer (JSON or SSE body). */
const messagesOf = (r) => {
  if (r.json !== undefined) return Array.isArray(r.json) ? r.json : [r.json];
  return (r.body || "").split(/\r?\n\r?\n/).map((ev) => ev.split(/\r?\n/).filter((l) => l.startsWith("data:"))
    .map((l) => l.slice(5).trim()).join("\n")).filter(Boolean).flatMap((d) => { try { return [JSON.parse(d)]; } catch { return []; } });
};

after(L.cleanup);

describe("bad input", () => {
  let up, gw, sid;
  const send = (opts) => L.rawHttp(gw.port, opts);
  const post = (body, headers = {}, sessionId = sid) =>
    send({ headers: L.mcpHeaders(sessionId, headers), body: typeof body === "string" ? body : JSON.stringify(body) });

  /** The gateway still answers a valid request on a new connection. */
  const assertServes = async () => {
    const r = await post({ jsonrpc: "2.0", id: 99, method: "ping" });
    assert.equal(r.status, 200, `gateway stopped serving: ${r.error?.message ?? r.status + " " + r.body}`);
    const m = messagesOf(r).find((x) => x.id === 99);
    assert.deepEqual(m?.result, {}, `ping answer: ${r.body}`);
  };
  const expectStatus = (r, status, what) =>
    assert.equal(r.status, status, `${what}: ${r.error ? "connection error " + r.error.message : "HTTP " + r.status + " " + (r.body ?? "").slice(0, 300)}`);

  before(async () => {
    up = await L.startExample({ name: "server1" });
    gw = await L.startGateway({ servers: [{ name: "example/server1", url: up.url, prefix: "s1_" }],
                                args: ["--max-request-body-size", String(MAX_BODY)] });
    ({ sessionId: sid } = await L.rawSession(gw.url));
  });

  test("ping is answered", assertServes);

  test("notification POST -> 202", async () => {
    const r = await post({ jsonrpc: "2.0", method: "notifications/roots/list_changed" });
    expectStatus(r, 202, "notification");
    await assertServes();
  });

  test("GET /mcp with a session -> text/event-stream", async () => {
    const ac = new AbortController();
    const r = await fetch(gw.url, { signal: ac.signal, headers: { accept: "text/event-stream", "mcp-session-id": sid, "mcp-protocol-version": L.PROTOCOL_VERSION } });
    try {
      assert.equal(r.status, 200);
      assert.match(r.headers.get("content-type") || "", /^text\/event-stream/);
    } finally { ac.abort(); }
    await assertServes();
  });

  test("malformed JSON -> 400 with -32700", async () => {
    const r = await post('{"jsonrpc":"2.0","id":1,"method":"ping"');
    expectStatus(r, 400, "malformed JSON");
    assert.equal(errorCode(r), -32700, r.body);
    await assertServes();
  });

  test("a batch (JSON array) on a 2025-11-25 session -> 400 with -32600", async () => {
    const r = await post([{ jsonrpc: "2.0", id: 1, method: "ping" }, { jsonrpc: "2.0", id: 2, method: "ping" }]);
    expectStatus(r, 400, "batch");
    assert.equal(errorCode(r), -32600, r.body);
    await assertServes();
  });

  test("an oversized body -> 413", async () => {
    const big = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping", params: { pad: "x".repeat(MAX_BODY * 2) } });
    const r = await post(big);
    expectStatus(r, 413, "oversized body");
    await assertServes();
  });

  test("an oversized body with chunked transfer encoding -> 413", async () => {
    const big = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping", params: { pad: "x".repeat(MAX_BODY * 2) } });
    const chunked = Buffer.concat([Buffer.from(big.length.toString(16) + "\r\n"), Buffer.from(big), Buffer.from("\r\n0\r\n\r\n")]);
    const r = await send({ headers: { ...L.mcpHeaders(sid), "transfer-encoding": "chunked" }, body: chunked });
    expectStatus(r, 413, "oversized chunked body");
    await assertServes();
  });

  test("an oversized header (64 KiB value) -> 431", async () => {
    const r = await post({ jsonrpc: "2.0", id: 1, method: "ping" }, { "x-big": "a".repeat(64 * 1024) });
    expectStatus(r, 431, "oversized header");
    await assertServes();
  });

  test("Content-Type text/plain -> 415", async () => {
    const r = await post({ jsonrpc: "2.0", id: 1, method: "ping" }, { "content-type": "text/plain" });
    expectStatus(r, 415, "text/plain");
    await assertServes();
  });

  test("Accept lacking application/json and text/event-stream -> 406", async () => {
    const r = await post({ jsonrpc: "2.0", id: 1, method: "ping" }, { accept: "text/html" });
    expectStatus(r, 406, "Accept text/html");
    await assertServes();
  });

  test("a foreign Origin -> 403", async () => {
    const r = await post({ jsonrpc: "2.0", id: 1, method: "ping" }, { origin: "http://evil.example" });
    expectStatus(r, 403, "Origin http://evil.example");
    await assertServes();
  });

  test("an unsupported MCP-Protocol-Version -> 400", async () => {
    const r = await post({ jsonrpc: "2.0", id: 1, method: "ping" }, { "mcp-protocol-version": "1999-01-01" });
    expectStatus(r, 400, "MCP-Protocol-Version 1999-01-01");
    await assertServes();
  });

  test("a forged session id -> 404", async () => {
    const r = await post({ jsonrpc: "2.0", id: 1, method: "tools/list" }, {}, "forged-session-0123456789abcdef0123456789");
    expectStatus(r, 404, "forged session id");
    await assertServes();
  });

  test("no session id on tools/list -> 400", async () => {
    const r = await post({ jsonrpc: "2.0", id: 1, method: "tools/list" }, {}, null);
    expectStatus(r, 400, "missing session id");
    await assertServes();
  });

  test("garbage instead of HTTP -> an error status or a closed connection, then service goes on", async () => {
    const net = await import("node:net");
    await new Promise((resolve) => {
      const s = net.connect({ port: gw.port, host: "127.0.0.1" }, () => s.write("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n"));
      s.on("data", () => {});
      s.on("error", resolve);
      s.on("close", resolve);
      setTimeout(() => { s.destroy(); resolve(); }, 3000);
    });
    await assertServes();
  });

  test("the gateway process is still running", () => {
    assert.ok(gw.running(), `gateway exited: ${JSON.stringify(gw.exitInfo)}; log ${gw.logFile}`);
  });
});
