// Bad input on the wire: each gets its status (and JSON-RPC error code where there is a body), and the
// gateway serves the next request on a new connection afterwards. Every request here is sent on a
// fresh TCP connection (lib.rawHttp; lib.rawExchange for bytes rawHttp cannot build, and for timing).
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as L from "./lib.mjs";

const MAX_BODY = 65536;
const MAX_URL = 1024;        // --max-url-length
const MAX_HEADERS = 50;      // --max-headers
const MAX_DEPTH = 32;        // --max-json-depth
const HEADER_TIMEOUT_S = 3;  // --header-timeout of the first gateway (a request line alone waits for it)
const TIMEOUT_S = 2;         // --header-timeout, --body-timeout, --keepalive-timeout of the "slow clients" gateway

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
                                args: ["--max-request-body-size", String(MAX_BODY), "--max-url-length", String(MAX_URL),
                                       "--max-headers", String(MAX_HEADERS), "--max-json-depth", String(MAX_DEPTH),
                                       "--header-timeout", String(HEADER_TIMEOUT_S)] });
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

  // ---- framing: request bytes in -> status out, and the connection closed (lib.rawExchange)

  const BODY = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" });
  /** The head of a POST /mcp in the session, without the final CRLF; `extra` header lines are appended. */
  const head = (extra = "") =>
    `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${gw.port}\r\nContent-Type: application/json\r\n` +
    `Accept: ${L.JSON_SSE}\r\nMCP-Protocol-Version: ${L.PROTOCOL_VERSION}\r\nMcp-Session-Id: ${sid}\r\n${extra}`;
  const show = (r) => (r.status ? `HTTP ${r.status} ${(r.body ?? "").slice(0, 200)}` : "no response") +
    (r.closed ? `, closed after ${r.closedAfterMs} ms` : ", still open") + (r.error ? ` (${r.error.code ?? r.error.message})` : "");

  // [name, bytes sent, expected statuses ("close": the connection closed without a response)]
  const FRAMING = [
    ["Content-Length and Transfer-Encoding together -> 400",
     () => head(`Content-Length: ${BODY.length}\r\nTransfer-Encoding: chunked\r\n\r\n${BODY.length.toString(16)}\r\n${BODY}\r\n0\r\n\r\n`), [400]],
    ["Transfer-Encoding: chunked and Content-Length (other order) -> 400",
     () => head(`Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n${BODY.length.toString(16)}\r\n${BODY}\r\n0\r\n\r\n`), [400]],
    ["two different Content-Length -> 400",
     () => head(`Content-Length: ${BODY.length}\r\nContent-Length: ${BODY.length + 2}\r\n\r\n${BODY}  `), [400]],
    ["Content-Length: 41, 42 (a list) -> 400",
     () => head(`Content-Length: ${BODY.length}, ${BODY.length + 1}\r\n\r\n${BODY} `), [400]],
    ["a bare CR inside a header value -> 400",
     () => head(`X-A: a\rb\r\nContent-Length: ${BODY.length}\r\n\r\n${BODY}`), [400]],
    ["a bare CR ending a header line -> 400",
     () => head(`X-A: a\rContent-Length: ${BODY.length}\r\n\r\n${BODY}`), [400]],
    ["obs-fold (a header line continued by a line starting with a space) -> 400",
     () => head(`X-A: a\r\n b\r\nContent-Length: ${BODY.length}\r\n\r\n${BODY}`), [400]],
    ["obs-fold with a tab -> 400",
     () => head(`X-A: a\r\n\tb\r\nContent-Length: ${BODY.length}\r\n\r\n${BODY}`), [400]],
    ["whitespace between a header name and the colon -> 400",
     () => head(`Content-Length : ${BODY.length}\r\n\r\n${BODY}`), [400]],
    ["a NUL byte in a header value -> 400",
     () => head(`X-A: a\0b\r\nContent-Length: ${BODY.length}\r\n\r\n${BODY}`), [400]],
    ["two Host headers -> 400 (RFC 9112 3.2)",
     () => head(`Host: evil.example\r\nContent-Length: ${BODY.length}\r\n\r\n${BODY}`), [400]],
    ["an HTTP/0.9 request line with an empty header section (GET /mcp CRLF CRLF) -> 400 or closed",
     () => "GET /mcp\r\n\r\n", [400, "close"]],
    ["an HTTP/0.9 request line alone (GET /mcp CRLF) -> 400 or closed (at the latest by the header timeout)",
     () => "GET /mcp\r\n", [400, 408, "close"]],
    ["the HTTP/2 preface in clear text -> 400 or 505 or closed",
     () => "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", [400, 505, "close"]],
    ["a transfer coding the gateway does not implement (gzip, chunked) -> 501 or 400",
     () => head(`Transfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n0\r\n\r\n`), [400, 501]],
  ];
  for (const [name, bytes, statuses] of FRAMING) {
    test(`${name}, and the connection is closed`, async () => {
      const r = await L.rawExchange(gw.port, bytes(), { timeout: HEADER_TIMEOUT_S * 1000 + 4000 });
      assert.ok(statuses.includes(r.status) || (statuses.includes("close") && r.status === undefined && r.closed),
                `${name}: expected ${statuses.join(" or ")}, got ${show(r)}`);
      assert.ok(r.closed, `${name}: the connection must be closed after a framing error: ${show(r)}`);
      assert.ok(r.responses.length <= 1, `${name}: one answer at most, got ${r.responses.map((x) => x.status).join(", ")}`);
      await assertServes();
    });
  }

  test("a request target longer than --max-url-length -> 414", async () => {
    const r = await send({ path: `/mcp?pad=${"a".repeat(MAX_URL + 10)}`, headers: L.mcpHeaders(sid), body: BODY });
    expectStatus(r, 414, "long URL");
    await assertServes();
  });

  test("a request target just under --max-url-length is served", async () => {
    const r = await send({ path: `/mcp?pad=${"a".repeat(MAX_URL - 20)}`, headers: L.mcpHeaders(sid), body: BODY });
    expectStatus(r, 200, "URL under the limit");
    await assertServes();
  });

  test("more headers than --max-headers -> 431", async () => {
    const many = Object.fromEntries(Array.from({ length: MAX_HEADERS + 5 }, (_, i) => [`x-h${i}`, "v"]));
    const r = await post({ jsonrpc: "2.0", id: 1, method: "ping" }, many);
    expectStatus(r, 431, "too many headers");
    await assertServes();
  });

  // ---- JSON-RPC limits: body in -> status and JSON-RPC error code out

  const nested = (depth) => {   // params nested so that the whole body is `depth` levels deep
    let v = "{}";
    for (let i = 2; i < depth; i++) v = `{"a":${v}}`;
    return `{"jsonrpc":"2.0","id":7,"method":"ping","params":${v}}`;
  };

  test("JSON nested exactly --max-json-depth deep is accepted", async () => {
    const r = await post(nested(MAX_DEPTH));
    expectStatus(r, 200, `depth ${MAX_DEPTH}`);
    assert.deepEqual(messagesOf(r).find((m) => m.id === 7)?.result, {}, r.body);
    await assertServes();
  });

  for (const depth of [MAX_DEPTH + 1, 10000]) {
    test(`JSON nested ${depth} deep (over --max-json-depth ${MAX_DEPTH}) -> 400 with -32700 or -32600`, async () => {
      const r = await post(nested(depth));
      expectStatus(r, 400, `depth ${depth}`);
      assert.ok([-32700, -32600].includes(errorCode(r)), `depth ${depth}: JSON-RPC code ${errorCode(r)}: ${r.body?.slice(0, 300)}`);
      await assertServes();
    });
  }

  test("arrays nested 30000 deep -> 400, no crash", async () => {
    const r = await post(`{"jsonrpc":"2.0","id":8,"method":"ping","params":{"x":${"[".repeat(30000)}${"]".repeat(30000)}}}`);
    expectStatus(r, 400, "deep arrays");
    assert.ok([-32700, -32600].includes(errorCode(r)), r.body?.slice(0, 300));
    await assertServes();
  });

  test("a JSON-RPC id string of 10 KB -> 400 with -32600", async () => {
    const r = await post({ jsonrpc: "2.0", id: "i".repeat(10240), method: "ping" });
    expectStatus(r, 400, "10 KB id");
    assert.equal(errorCode(r), -32600, r.body?.slice(0, 300));
    const j = Array.isArray(r.json) ? r.json[0] : r.json;
    assert.ok(j.id === null || j.id === undefined, `the oversized id is not echoed: ${String(j.id).slice(0, 40)}…`);
    assert.ok(r.body.length < 2048, `the answer does not carry the 10 KB id (${r.body.length} bytes)`);
    await assertServes();
  });

  test("a JSON-RPC id string of 256 bytes (the default limit) is accepted", async () => {
    const id = "i".repeat(256);
    const r = await post({ jsonrpc: "2.0", id, method: "ping" });
    expectStatus(r, 200, "256-byte id");
    assert.deepEqual(messagesOf(r).find((m) => m.id === id)?.result, {}, r.body?.slice(0, 300));
  });

  test("a method name of 10 KB -> 400 with -32600", async () => {
    const r = await post({ jsonrpc: "2.0", id: 9, method: "m".repeat(10240) });
    expectStatus(r, 400, "10 KB method");
    assert.equal(errorCode(r), -32600, r.body?.slice(0, 300));
    assert.ok(r.body.length < 2048, `the answer does not carry the 10 KB method name (${r.body.length} bytes)`);
    await assertServes();
  });

  test("a notification with a 10 KB method name -> 400 with -32600", async () => {
    const r = await post({ jsonrpc: "2.0", method: `notifications/${"m".repeat(10240)}` });
    expectStatus(r, 400, "10 KB notification method");
    assert.equal(errorCode(r), -32600, r.body?.slice(0, 300));
    await assertServes();
  });

  test("the gateway process is still running", () => {
    assert.ok(gw.running(), `gateway exited: ${JSON.stringify(gw.exitInfo)}; log ${gw.logFile}`);
  });
});

describe("slow and idle clients", () => {
  let up, gw, sid;
  const ms = TIMEOUT_S * 1000;
  const SLACK = 3000;   // scheduling on a busy machine
  const show = (r) => (r.status ? `HTTP ${r.status}` : "no response") +
    (r.closed ? `, closed after ${r.closedAfterMs} ms` : ", still open") + (r.error ? ` (${r.error.code ?? r.error.message})` : "");
  const head = () => `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${gw.port}\r\nContent-Type: application/json\r\n` +
    `Accept: ${L.JSON_SSE}\r\nMCP-Protocol-Version: ${L.PROTOCOL_VERSION}\r\nMcp-Session-Id: ${sid}\r\n`;

  const assertServes = async () => {
    const r = await L.rawHttp(gw.port, { headers: L.mcpHeaders(sid), body: JSON.stringify({ jsonrpc: "2.0", id: 99, method: "ping" }) });
    assert.equal(r.status, 200, `gateway stopped serving: ${r.error?.message ?? r.status + " " + r.body}`);
  };

  before(async () => {
    up = await L.startExample({ name: "server2" });
    gw = await L.startGateway({ servers: [{ name: "example/server2", url: up.url, prefix: "s2_" }], logName: "gateway-slow",
                                args: ["--header-timeout", String(TIMEOUT_S), "--body-timeout", String(TIMEOUT_S),
                                       "--keepalive-timeout", String(TIMEOUT_S)] });
    // raw requests only: fetch's pooled connections would race the short keep-alive timeout
    const init = await L.rawHttp(gw.port, { headers: L.mcpHeaders(null), body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize",
      params: { protocolVersion: L.PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: "e2e-slow", version: "1" } } }) });
    sid = init.headers?.["mcp-session-id"];
    assert.ok(sid, `initialize: ${init.status} ${init.body}`);
  });

  test("half of the headers, then nothing: 408 (or a close) after --header-timeout", async () => {
    const r = await L.rawExchange(gw.port, head(), { timeout: ms + 10000 });
    assert.ok(r.closed, `the connection must be closed after ${ms} ms: ${show(r)}`);
    assert.ok(r.status === 408 || r.status === undefined, `408 or a plain close: ${show(r)}`);
    assert.ok(r.closedAfterMs >= ms - 200 && r.closedAfterMs <= ms + SLACK, `closed after ${r.closedAfterMs} ms, --header-timeout ${ms} ms`);
    await assertServes();
  });

  test("headers trickled a byte at a time do not extend --header-timeout (slowloris)", async () => {
    const bytes = [...head()].flatMap((c) => [c, 250]);
    const r = await L.rawExchange(gw.port, bytes, { timeout: ms + 10000 });
    assert.ok(r.closed, `closed: ${show(r)}`);
    assert.ok(r.status === 408 || r.status === undefined, `408 or a plain close: ${show(r)}`);
    assert.ok(r.closedAfterMs <= ms + SLACK, `closed after ${r.closedAfterMs} ms, --header-timeout ${ms} ms`);
    await assertServes();
  });

  test("part of the body, then nothing: 408 after --body-timeout", async () => {
    const r = await L.rawExchange(gw.port, `${head()}Content-Length: 100\r\n\r\n{"jsonrpc":"2.0",`, { timeout: ms + 10000 });
    assert.equal(r.status, 408, `body timeout: ${show(r)}`);
    assert.ok(r.closed, `closed: ${show(r)}`);
    assert.ok(r.closedAfterMs >= ms - 200 && r.closedAfterMs <= ms + SLACK, `closed after ${r.closedAfterMs} ms, --body-timeout ${ms} ms`);
    await assertServes();
  });

  test("a chunked body that stops before its last chunk: 408 after --body-timeout", async () => {
    const r = await L.rawExchange(gw.port, `${head()}Transfer-Encoding: chunked\r\n\r\n5\r\n{"jso\r\n`, { timeout: ms + 10000 });
    assert.equal(r.status, 408, `chunked body timeout: ${show(r)}`);
    assert.ok(r.closed, `closed: ${show(r)}`);
    await assertServes();
  });

  test("an idle keep-alive connection is closed after --keepalive-timeout, not before", async () => {
    const body = JSON.stringify({ jsonrpc: "2.0", id: 5, method: "ping" });
    const r = await L.rawExchange(gw.port, `${head()}Content-Length: ${body.length}\r\n\r\n${body}`, { timeout: ms + 10000 });
    assert.equal(r.responses[0]?.status, 200, `the request is answered: ${show(r)}`);
    assert.notEqual(r.headers?.connection?.toLowerCase(), "close", "the answer keeps the connection");
    assert.ok(r.closed, `the idle connection must be closed: ${show(r)}`);
    const idle = r.closedAfterMs - r.lastWriteMs;
    assert.ok(idle >= ms - 200 && idle <= ms + SLACK, `closed ${idle} ms after the request, --keepalive-timeout ${ms} ms`);
    assert.equal(r.responses.length, 1, "nothing but the answer on the connection");
    await assertServes();
  });

  test("a connection that never sends a byte is closed too", async () => {
    const r = await L.rawExchange(gw.port, [], { timeout: ms + 10000 });
    assert.ok(r.closed, `closed: ${show(r)}`);
    assert.ok(r.closedAfterMs <= ms + SLACK, `closed after ${r.closedAfterMs} ms`);
    await assertServes();
  });

  test("the gateway process is still running", () => {
    assert.ok(gw.running(), `gateway exited: ${JSON.stringify(gw.exitInfo)}; log ${gw.logFile}`);
  });
});
