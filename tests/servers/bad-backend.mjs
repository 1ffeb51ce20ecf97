// A misbehaving MCP upstream (Streamable HTTP) for the gateway's fault tests (tests/e2e/45-upstream-faults).
// initialize, notifications, ping and tools/list are answered normally; tools/call misbehaves as the
// tool's name says (see FAULTS below).
//
// usage: node bad-backend.mjs [--port N] [--name NAME] [--huge-bytes N]
//        (or PORT / NAME / HUGE_BYTES in the environment); prints "listening on http://127.0.0.1:N/mcp".
// Endpoint /mcp (POST JSON-RPC, GET 405, DELETE 200); GET /stats answers
//   { calls: {tool: n}, open: {tool: n} } — tools/call requests seen, and those whose connection is
//   still open (a hung call the gateway gave up on should not stay open).
import http from "node:http";
import { randomUUID } from "node:crypto";

const arg = (flag, env, dflt) => {
  const i = process.argv.indexOf(flag);
  if (i > 0 && process.argv[i + 1] !== undefined) return process.argv[i + 1];
  return process.env[env] ?? dflt;
};
const PORT = Number(arg("--port", "PORT", "0"));
const NAME = arg("--name", "NAME", "bad-backend");
const HUGE_BYTES = Number(arg("--huge-bytes", "HUGE_BYTES", String(1 << 20)));
const PROTOCOLS = ["2025-11-25", "2025-06-18", "2025-03-26"];

/** tool name → description; each is answered by FAULTS[name] on tools/call. */
const TOOLS = {
  ok: "answers normally",
  slow_ok: "answers normally after 1 s",
  upstream_error: "a valid JSON-RPC error answer (code -32000), to be relayed as is",
  reset: "200 application/json with Content-Length, some bytes, then the socket is destroyed",
  close_early: "the socket is destroyed before any response byte",
  chunked_cut: "200 chunked, one chunk of a JSON body, then the socket is destroyed",
  hang: "never answers (headers never sent)",
  drip: "200 with Content-Length, one byte every 200 ms (longer than any sane upstream timeout)",
  garbage: "200 application/json whose body is not JSON",
  html: "200 text/html page",
  empty: "200 application/json with an empty body",
  wrong_id: "a valid JSON-RPC response with another id",
  sse_wrong_id: "SSE: a response with another id, then the stream ends",
  sse_never_ends: "SSE: a comment every second, never the result",
  sse_notify_then_hang: "SSE: a notifications/message, then a comment every second, never the result",
  huge: "a JSON answer of HUGE_BYTES (bigger than the gateway's --max-upstream-response-size)",
  huge_sse: "SSE: one event of HUGE_BYTES",
  status500: "HTTP 500 with a JSON-RPC error body",
  status502_html: "HTTP 502 with an HTML body (a proxy in front of a dead server)",
  status404_json: "HTTP 404 with a JSON body (for every tools/call, so the gateway's session retry fails too)",
  error_not_object: "a response with the right id whose error is a string",
  result_and_error: "a response with the right id carrying both result and error",
  wrong_version: "a response with the right id and \"jsonrpc\": \"1.0\"",
};

const calls = {}, open = {};
const sessions = new Set();

const rpcResult = (id, result) => JSON.stringify({ jsonrpc: "2.0", id, result });
const textResult = (t) => ({ content: [{ type: "text", text: t }] });
const otherId = (id) => (typeof id === "number" ? id + 1000000 : `not-${id}`);

function sendJson(res, status, body, headers = {}) {
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body), ...headers });
  res.end(body);
}
function sseHead(res) {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  res.flushHeaders();
}
/** An SSE stream that only ever sends comments (and `first`, when given, before them). */
function sseForever(res, first) {
  sseHead(res);
  if (first) res.write(`data: ${first}\n\n`);
  const t = setInterval(() => res.write(": ping\n\n"), 1000);
  res.on("close", () => clearInterval(t));
}

const FAULTS = {
  ok: (id, res) => sendJson(res, 200, rpcResult(id, textResult(`ok from ${NAME}`))),
  slow_ok: (id, res) => {
    const t = setTimeout(() => sendJson(res, 200, rpcResult(id, textResult(`slow ok from ${NAME}`))), 1000);
    res.on("close", () => clearTimeout(t));
  },
  upstream_error: (id, res) =>
    sendJson(res, 200, JSON.stringify({ jsonrpc: "2.0", id, error: { code: -32000, message: "upstream says no", data: { why: "test" } } })),
  reset: (id, res, req) => {
    const body = rpcResult(id, textResult("x".repeat(300)));
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
    res.write(body.slice(0, 40));
    setTimeout(() => req.socket.destroy(), 50);
  },
  close_early: (id, res, req) => req.socket.destroy(),
  chunked_cut: (id, res, req) => {
    const body = rpcResult(id, textResult("y".repeat(300)));
    res.writeHead(200, { "content-type": "application/json" });   // no length: chunked
    res.write(body.slice(0, 60));
    setTimeout(() => req.socket.destroy(), 50);
  },
  hang: () => {},
  drip: (id, res) => {
    const body = Buffer.from(rpcResult(id, textResult("drip".repeat(20))));
    res.writeHead(200, { "content-type": "application/json", "content-length": body.length });
    res.flushHeaders();
    let i = 0;
    const t = setInterval(() => { if (i < body.length) res.write(body.subarray(i, ++i)); else { clearInterval(t); res.end(); } }, 200);
    res.on("close", () => clearInterval(t));
  },
  garbage: (id, res) => {
    const body = "this is {not json at all]]] \u0000\u00ff";
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
    res.end(body);
  },
  html: (id, res) => {
    const body = "<!doctype html><html><head><title>Oops</title></head><body><h1>Welcome to nginx!</h1></body></html>\n";
    res.writeHead(200, { "content-type": "text/html; charset=utf-8", "content-length": Buffer.byteLength(body) });
    res.end(body);
  },
  empty: (id, res) => { res.writeHead(200, { "content-type": "application/json", "content-length": 0 }); res.end(); },
  wrong_id: (id, res) => sendJson(res, 200, rpcResult(otherId(id), textResult("for somebody else"))),
  sse_wrong_id: (id, res) => { sseHead(res); res.end(`data: ${rpcResult(otherId(id), textResult("for somebody else"))}\n\n`); },
  sse_never_ends: (id, res) => sseForever(res),
  sse_notify_then_hang: (id, res) => sseForever(res, JSON.stringify({ jsonrpc: "2.0", method: "notifications/message",
    params: { level: "info", logger: NAME, data: "working on it (forever)" } })),
  huge: (id, res) => sendJson(res, 200, rpcResult(id, textResult("h".repeat(HUGE_BYTES)))),
  huge_sse: (id, res) => { sseHead(res); res.end(`data: ${rpcResult(id, textResult("h".repeat(HUGE_BYTES)))}\n\n`); },
  status500: (id, res) => sendJson(res, 500, JSON.stringify({ jsonrpc: "2.0", id, error: { code: -32603, message: "internal boom" } })),
  status502_html: (id, res) => {
    const body = "<html><body><h1>502 Bad Gateway</h1></body></html>\n";
    res.writeHead(502, { "content-type": "text/html", "content-length": Buffer.byteLength(body) });
    res.end(body);
  },
  status404_json: (id, res) => sendJson(res, 404, JSON.stringify({ error: "not found", detail: "no such thing here" })),
  error_not_object: (id, res) => sendJson(res, 200, JSON.stringify({ jsonrpc: "2.0", id, error: "boom" })),
  result_and_error: (id, res) => sendJson(res, 200, JSON.stringify({ jsonrpc: "2.0", id, result: textResult("both"),
                                                                      error: { code: -32000, message: "both" } })),
  wrong_version: (id, res) => sendJson(res, 200, JSON.stringify({ jsonrpc: "1.0", id, result: textResult("old") })),
};

function onMessage(msg, req, res) {
  const { id, method, params } = msg;
  if (method === undefined) { res.writeHead(202).end(); return; }                       // a response
  if (id === undefined) { res.writeHead(202).end(); return; }                           // a notification
  switch (method) {
    case "initialize": {
      const v = PROTOCOLS.includes(params?.protocolVersion) ? params.protocolVersion : PROTOCOLS[0];
      const sid = randomUUID();
      sessions.add(sid);
      sendJson(res, 200, rpcResult(id, { protocolVersion: v, capabilities: { tools: {} },
                                         serverInfo: { name: NAME, version: "0.0.1" } }), { "mcp-session-id": sid });
      return;
    }
    case "ping": sendJson(res, 200, rpcResult(id, {})); return;
    case "tools/list":
      sendJson(res, 200, rpcResult(id, { tools: Object.entries(TOOLS).map(([name, description]) =>
        ({ name, description, inputSchema: { type: "object", properties: {} } })) }));
      return;
    case "tools/call": {
      const name = params?.name;
      const fault = FAULTS[name];
      if (!fault) {
        sendJson(res, 200, JSON.stringify({ jsonrpc: "2.0", id, error: { code: -32602, message: `unknown tool ${name}` } }));
        return;
      }
      calls[name] = (calls[name] ?? 0) + 1;
      open[name] = (open[name] ?? 0) + 1;
      res.on("close", () => { open[name]--; });
      fault(id, res, req);
      return;
    }
    default:
      sendJson(res, 200, JSON.stringify({ jsonrpc: "2.0", id, error: { code: -32601, message: `method not found: ${method}` } }));
  }
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  if (req.method === "GET" && url.pathname === "/stats") {
    sendJson(res, 200, JSON.stringify({ calls, open }));
    return;
  }
  if (url.pathname !== "/mcp") { res.writeHead(404).end(); return; }
  if (req.method === "GET") { res.writeHead(405, { allow: "POST, DELETE" }).end(); return; }
  if (req.method === "DELETE") { sessions.delete(req.headers["mcp-session-id"]); res.writeHead(200).end(); return; }
  if (req.method !== "POST") { res.writeHead(405).end(); return; }
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    let msg;
    try { msg = JSON.parse(Buffer.concat(chunks).toString("utf8")); } catch {
      sendJson(res, 400, JSON.stringify({ jsonrpc: "2.0", id: null, error: { code: -32700, message: "parse error" } }));
      return;
    }
    if (!msg || typeof msg !== "object" || Array.isArray(msg)) {
      sendJson(res, 400, JSON.stringify({ jsonrpc: "2.0", id: null, error: { code: -32600, message: "one message per POST" } }));
      return;
    }
    onMessage(msg, req, res);
  });
});
server.keepAliveTimeout = 60000;
server.listen(PORT, "127.0.0.1", () => {
  console.log(`${NAME} listening on http://127.0.0.1:${server.address().port}/mcp`);
});
process.on("SIGTERM", () => { server.closeAllConnections(); server.close(() => process.exit(0)); setTimeout(() => process.exit(0), 500).unref(); });
