// Upstream faults: an upstream that resets, hangs, sends garbage, HTML, the wrong id, an endless SSE stream,
// too much, an HTTP error, or is not there at all; a stdio child that writes garbage, nothing, or exits.
// Each fault must end that one call with a clean JSON-RPC error (the call's id, within --upstream-timeout
// plus a margin, never an HTTP 5xx without a body), and the gateway goes on serving every other call:
// the good upstream (our C example server), the bad backend's `ok` tool, the stdio child's `ok` tool.
// Upstreams: tests/servers/bad-backend.mjs (HTTP, prefix bad_), the same on a port that is closed once
// discovered (gone_), a port nothing ever listened on (closed_), tests/servers/bad-stdio.mjs (stdio, st_).
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import * as L from "./lib.mjs";

const NODE = process.execPath;
const BAD_JS = path.join(L.ROOT, "tests/servers/bad-backend.mjs");
const BAD_STDIO_JS = path.join(L.ROOT, "tests/servers/bad-stdio.mjs");
const TIMEOUT_S = 2;                       // --upstream-timeout
const MAX_UP = 256 * 1024;                 // --max-upstream-response-size
const HUGE = 1 << 20;                      // what the `huge` tools send
const FAST_MS = 1500;                      // a fault the gateway sees at once: answered well before the timeout
const LATE_MS = TIMEOUT_S * 1000 + 3000;   // a fault only the timeout ends: the deadline plus a margin
const GOOD_MS = 1500;                      // a good call, even while faults are pending

/** JSON-RPC codes a gateway-made error may carry: internal error, or the implementation-defined server range. */
const gatewayCode = (c) => c === -32603 || (Number.isInteger(c) && c <= -32000 && c >= -32099);

async function startBad(name) {
  const port = await L.freePort();
  const p = L.spawnProc(name, NODE, [BAD_JS, "--port", String(port), "--name", name, "--huge-bytes", String(HUGE)]);
  await L.waitPort(port, { proc: p, what: `${name} on port ${port}` });
  p.port = port;
  p.url = `http://127.0.0.1:${port}/mcp`;
  p.stats = async () => (await fetch(`http://127.0.0.1:${port}/stats`, { signal: AbortSignal.timeout(5000) })).json();
  return p;
}

async function waitReady(gw, names, timeout = 20000) {
  await L.waitFor(async () => {
    const j = await (await fetch(`${gw.base}/status`)).json();
    return names.every((n) => j.servers.find((s) => s.name === n)?.ready);
  }, { timeout, what: `${names.join(", ")} ready behind the gateway`, proc: gw });
}

after(() => L.cleanup());

describe("upstream faults", () => {
  let gw, good, bad, gone, closedPort, client, sid;
  let nextId = 1000;

  /** tools/call over raw fetch in session `s`; resolves { r (lib.readMcp), id, ms }. */
  const call = async (name, { s = sid, args = {} } = {}) => {
    const id = `call-${++nextId}-${name}`;
    const t0 = Date.now();
    const r = await L.rpc(gw.url, { jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args } }, { sessionId: s });
    return { r, id, ms: Date.now() - t0 };
  };
  const show = ({ r, ms }) => `HTTP ${r.status} ${r.contentType} after ${ms} ms: ${(r.text ?? JSON.stringify(r.messages)).slice(0, 400)}`;

  /** The call ended with a JSON-RPC error for its own id, and nothing else answered it. */
  const assertCleanError = (res, { server, code, message, maxMs, minMs = 0 }) => {
    const { r, id, ms } = res;
    assert.equal(r.status, 200, `an HTTP 200 carrying the JSON-RPC error, not an HTTP error: ${show(res)}`);
    assert.match(r.contentType, /^(application\/json|text\/event-stream)/, show(res));
    const m = r.message;
    assert.ok(m, `a JSON-RPC message with id ${id}: ${show(res)}`);
    assert.equal(m.jsonrpc, "2.0", show(res));
    assert.equal(m.result, undefined, `no result: ${show(res)}`);
    assert.ok(m.error && typeof m.error === "object", `an error object: ${show(res)}`);
    if (code !== undefined) assert.equal(m.error.code, code, show(res));
    else assert.ok(gatewayCode(m.error.code), `code ${m.error.code} is -32603 or in -32000..-32099: ${show(res)}`);
    if (message !== undefined) assert.equal(m.error.message, message, show(res));
    else {
      assert.equal(typeof m.error.message, "string", show(res));
      assert.ok(m.error.message.includes(server), `the message names the upstream (${server}): ${show(res)}`);
    }
    const others = r.messages.filter((x) => x !== m && ("result" in x || "error" in x));
    assert.deepEqual(others, [], `no other response on this call (the upstream's stray answer must not leak): ${show(res)}`);
    assert.ok(ms <= maxMs, `answered within ${maxMs} ms (took ${ms} ms)`);
    assert.ok(ms >= minMs, `not before ${minMs} ms (took ${ms} ms): the gateway must wait for the upstream until its timeout`);
  };

  const assertResult = (res, text, maxMs) => {
    const { r, ms } = res;
    assert.equal(r.status, 200, show(res));
    assert.equal(r.message?.error, undefined, show(res));
    assert.equal(L.textOf(r.message?.result), text, show(res));
    assert.ok(ms <= maxMs, `answered within ${maxMs} ms (took ${ms} ms)`);
  };

  let echoes = 0;
  /** The good upstream (SDK client, its own session), the bad backend's ok tool and the stdio child's. */
  const assertHealthy = async ({ stdioWait = 0 } = {}) => {
    assert.ok(gw.running(), `gateway exited: ${JSON.stringify(gw.exitInfo)}; log ${gw.logFile}`);
    const text = `still here ${++echoes}`;
    let t0 = Date.now();
    assert.equal(L.textOf(await client.callTool({ name: "ex_echo", arguments: { text } })), text);
    assert.ok(Date.now() - t0 <= GOOD_MS, `ex_echo took ${Date.now() - t0} ms`);
    assertResult(await call("bad_ok"), "ok from bad-backend", GOOD_MS);
    if (stdioWait) {   // the child restarts with back-off after an exit
      let last;
      await L.waitFor(async () => { last = await call("st_ok"); return L.textOf(last.r.message?.result) === "ok from bad-stdio"; },
        { timeout: stdioWait, interval: 250, what: "st_ok after the child's restart" })
        .catch((e) => { e.message += `; last answer: ${last && show(last)}`; throw e; });
    }
    assertResult(await call("st_ok"), "ok from bad-stdio", GOOD_MS);
  };

  before(async () => {
    good = await L.startExample({ name: "good" });
    bad = await startBad("bad-backend");
    gone = await startBad("gone-backend");
    closedPort = await L.freePort();
    const config = L.writeConfig([
      { name: "good", url: good.url, prefix: "ex_" },
      { name: "bad-backend", url: bad.url, prefix: "bad_" },
      { name: "gone-backend", url: gone.url, prefix: "gone_" },
      { name: "closed-port", url: `http://127.0.0.1:${closedPort}/mcp`, prefix: "closed_" },
      { name: "bad-stdio", prefix: "st_", command: NODE, args: [BAD_STDIO_JS, "--huge-bytes", String(HUGE)] },
    ]);
    gw = await L.startGateway({ config, args: ["--upstream-timeout", String(TIMEOUT_S),
                                               "--max-upstream-response-size", String(MAX_UP)] });
    await waitReady(gw, ["good", "bad-backend", "gone-backend", "bad-stdio"]);
    ({ client } = await L.connect(gw.url));
    ({ sessionId: sid } = await L.rawSession(gw.url));
  });

  test("every upstream but the closed port is listed; the gateway serves", async () => {
    const names = await L.toolNames(client);
    for (const n of ["ex_echo", "bad_ok", "bad_hang", "gone_ok", "st_ok", "st_hang"]) assert.ok(names.includes(n), `${n} in ${names.join(", ")}`);
    assert.ok(!names.some((n) => n.startsWith("closed_")), `no closed_ tools: ${names.join(", ")}`);
    await assertHealthy();
  });

  // [tool, { kind: "fast" (the gateway can tell at once) | "timeout" (only --upstream-timeout ends it),
  //          sent: tools/call requests the bad backend should see (default 1), released: its connection must be
  //          closed after the error (the gateway cancelled the upstream request), sse: the answer is a stream }]
  const CASES = [
    ["bad_reset", { kind: "fast", why: "200 with Content-Length, 40 bytes, then the socket destroyed" }],
    ["bad_close_early", { kind: "fast", sent: null, why: "the socket destroyed before any response byte" }],   // sent: see below
    ["bad_chunked_cut", { kind: "fast", why: "a chunked body cut in the middle" }],
    ["bad_hang", { kind: "timeout", released: true, why: "no answer at all" }],
    ["bad_drip", { kind: "timeout", released: true, why: "a body dripped one byte every 200 ms" }],
    ["bad_garbage", { kind: "fast", why: "200 application/json that is not JSON" }],
    ["bad_html", { kind: "fast", why: "200 text/html" }],
    ["bad_empty", { kind: "fast", why: "200 with an empty body" }],
    ["bad_wrong_id", { kind: "fast", why: "a JSON-RPC response with another id" }],
    ["bad_sse_wrong_id", { kind: "fast", why: "SSE: a response with another id, then the end" }],
    ["bad_sse_never_ends", { kind: "timeout", released: true, why: "SSE: comments every second, never the result" }],
    ["bad_sse_notify_then_hang", { kind: "timeout", released: true, sse: true, why: "SSE: a notification, then nothing" }],
    ["bad_huge", { kind: "fast", released: true, why: `a ${HUGE}-byte JSON answer over --max-upstream-response-size ${MAX_UP}` }],
    ["bad_huge_sse", { kind: "fast", released: true, why: `a ${HUGE}-byte SSE event` }],
    ["bad_status500", { kind: "fast", why: "HTTP 500 with a JSON-RPC error body" }],
    ["bad_status502_html", { kind: "fast", why: "HTTP 502 with an HTML page" }],
    ["bad_status404_json", { kind: "fast", sent: 2, why: "HTTP 404 (the gateway renews the upstream session and sends the call once more)" }],
    ["st_garbage", { kind: "timeout", why: "stdio: lines that are not JSON-RPC, never the answer" }],
    ["st_hang", { kind: "timeout", why: "stdio: nothing" }],
    ["st_wrong_id", { kind: "timeout", why: "stdio: an answer with another id" }],
    ["st_huge_line", { kind: "timeout", why: `stdio: the answer on a ${HUGE}-byte line (dropped)` }],
    ["st_exit", { kind: "fast", why: "stdio: the child exits during the call" }],
  ];

  for (const [tool, c] of CASES) {
    test(`${tool} (${c.why}): a clean JSON-RPC error for that call only`, async () => {
      const server = tool.startsWith("st_") ? "bad-stdio" : "bad-backend";
      const upstreamName = tool.replace(/^(bad|st)_/, "");
      const before = server === "bad-backend" ? (await bad.stats()).calls[upstreamName] ?? 0 : 0;
      const res = await call(tool);
      assertCleanError(res, { server, maxMs: c.kind === "fast" ? FAST_MS : LATE_MS,
                              minMs: c.kind === "timeout" ? TIMEOUT_S * 1000 - 100 : 0 });
      if (c.sse) {
        assert.match(res.r.contentType, /^text\/event-stream/, "the answer became a stream at the notification");
        assert.ok(res.r.messages.some((m) => m.method === "notifications/message"), `the notification was relayed: ${show(res)}`);
      }
      if (server === "bad-backend") {
        let st;
        await L.waitFor(async () => { st = await bad.stats(); return !c.released || st.open[upstreamName] === 0; },
          { timeout: 3000, what: `the gateway to close its upstream request for ${upstreamName} (open: ${JSON.stringify(st?.open)})` });
        if (c.sent !== null) assert.equal(st.calls[upstreamName] - before, c.sent ?? 1, `tools/call requests that reached the upstream for ${tool}`);
      }
      await assertHealthy({ stdioWait: tool === "st_exit" ? 15000 : 0 });
    });
  }

  // An answer with the call's id but not valid JSON-RPC: the client must get a valid JSON-RPC response for its
  // id — the gateway's error, or the answer made valid — never the invalid envelope as it came.
  const MALFORMED = [
    ["bad_error_not_object", "\"error\": \"boom\" (a string)"],
    ["bad_result_and_error", "both \"result\" and \"error\""],
    ["bad_wrong_version", "\"jsonrpc\": \"1.0\""],
  ];
  for (const [tool, why] of MALFORMED) {
    test(`${tool} (${why}): the client gets a valid JSON-RPC response`, async () => {
      const res = await call(tool);
      const { r, id, ms } = res;
      assert.equal(r.status, 200, show(res));
      const m = r.message;
      assert.ok(m, `a message with id ${id}: ${show(res)}`);
      assert.equal(m.jsonrpc, "2.0", `"jsonrpc": "2.0": ${show(res)}`);
      assert.ok(("result" in m) !== ("error" in m), `exactly one of result and error: ${show(res)}`);
      if ("error" in m) {
        assert.ok(m.error && typeof m.error === "object" && Number.isInteger(m.error.code) && typeof m.error.message === "string",
                  `error is an object with an integer code and a string message: ${show(res)}`);
      }
      assert.ok(ms <= FAST_MS, `answered within ${FAST_MS} ms (took ${ms} ms)`);
      await assertHealthy();
    });
  }

  test("a tools/call is sent upstream once, even when the upstream drops a kept-alive connection without answering", async () => {
    const raw = (name, id) => L.rawHttp(gw.port, { headers: L.mcpHeaders(sid),
      body: JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: {} } }) });
    const before = (await bad.stats()).calls.close_early ?? 0;
    const N = 5;
    for (let i = 0; i < N; i++) {
      // warm every worker's upstream connection pool (calls on new client connections land on any worker)
      for (let k = 0; k < 4; k++) assert.equal((await raw("bad_ok", `warm-${i}-${k}`)).json?.result?.content?.[0]?.text, "ok from bad-backend");
      const r = await raw("bad_close_early", `once-${i}`);
      assert.equal(r.status, 200, `HTTP ${r.status} ${r.body}`);
      assert.ok(gatewayCode(r.json?.error?.code), r.body);
    }
    const sent = (await bad.stats()).calls.close_early - before;
    assert.equal(sent, N, `${N} tools/call from clients reached the upstream ${sent} times: a call that may have run must not ` +
                          "be sent again (libcurl re-sends a request on a reused connection that closes before answering)");
    await assertHealthy();
  });

  test("bad_upstream_error: a JSON-RPC error of the upstream's reaches the client as it is, with the client's id", async () => {
    const res = await call("bad_upstream_error");
    assertCleanError(res, { code: -32000, message: "upstream says no", maxMs: FAST_MS });
    assert.deepEqual(res.r.message.error.data, { why: "test" });
    await assertHealthy();
  });

  test("bad_slow_ok: an answer after 1 s, inside --upstream-timeout, is relayed", async () => {
    assertResult(await call("bad_slow_ok"), "slow ok from bad-backend", LATE_MS);
    await assertHealthy();
  });

  test("st_garbage_then_ok: garbage lines on the child's stdout are dropped, its answer after them is relayed", async () => {
    assertResult(await call("st_garbage_then_ok"), "ok after garbage", FAST_MS);
    await assertHealthy();
  });

  test("the upstream at a port nothing listens on: not ready in /status, its tools unknown (-32602), the rest serves", async () => {
    const j = await (await fetch(`${gw.base}/status`)).json();
    const s = j.servers.find((x) => x.name === "closed-port");
    assert.ok(s, JSON.stringify(j));
    assert.equal(s.ready, false, JSON.stringify(s));
    assert.match(s.message ?? "", /refused|connect/i, JSON.stringify(s));
    const res = await call("closed_ok");
    assertCleanError(res, { code: -32602, message: undefined, server: "closed_ok", maxMs: FAST_MS });
    await assertHealthy();
  });

  test("faults in flight at once do not slow or break the good calls beside them", async (t) => {
    const { sessionId: sid2 } = await L.rawSession(gw.url);
    const faults = ["bad_hang", "bad_hang", "bad_sse_never_ends", "bad_sse_notify_then_hang", "bad_drip", "st_hang", "st_hang",
                    "bad_reset", "bad_close_early", "bad_huge", "bad_huge_sse", "bad_garbage", "bad_wrong_id", "bad_status500", "st_garbage"];
    const t0 = Date.now();
    const pending = faults.map((t, i) => call(t, { s: i % 2 ? sid2 : sid }).then((res) => ({ t, res })));
    let goodCalls = 0;
    const slow = [];
    while (Date.now() - t0 < TIMEOUT_S * 1000 + 500) {
      const g0 = Date.now();
      const text = `concurrent ${goodCalls}`;
      const [e, b, s] = await Promise.all([
        client.callTool({ name: "ex_echo", arguments: { text } }),
        call("bad_ok", { s: sid2 }),
        call("st_ok"),
      ]);
      assert.equal(L.textOf(e), text);
      assertResult(b, "ok from bad-backend", GOOD_MS);
      assertResult(s, "ok from bad-stdio", GOOD_MS);
      if (Date.now() - g0 > GOOD_MS) slow.push(Date.now() - g0);
      goodCalls++;
      await L.sleep(50);
    }
    assert.deepEqual(slow, [], `good calls slower than ${GOOD_MS} ms while faults were pending`);
    assert.ok(goodCalls >= 5, `only ${goodCalls} rounds of good calls in ${TIMEOUT_S + 0.5} s`);
    for (const { t: name, res } of await Promise.all(pending)) {
      t.diagnostic(`${name}: ${res.ms} ms`);
      assertCleanError(res, { server: name.startsWith("st_") ? "bad-stdio" : "bad-backend", maxMs: LATE_MS + 2000 });
    }
    await assertHealthy();
  });

  test("an upstream that goes away after discovery: its calls fail at once with a JSON-RPC error", async () => {
    assertResult(await call("gone_ok"), "ok from gone-backend", GOOD_MS);   // its upstream session exists now
    await gone.stop();
    await L.waitPortClosed(gone.port);
    const res = await call("gone_ok");
    assertCleanError(res, { server: "gone-backend", maxMs: FAST_MS });
    // a session that never used it: the lazy upstream initialize fails the same way
    const { sessionId: fresh } = await L.rawSession(gw.url);
    assertCleanError(await call("gone_ok", { s: fresh }), { server: "gone-backend", maxMs: FAST_MS });
    await assertHealthy();
  });

  test("the gateway is still running, and the bad upstreams are still ready in /status", async () => {
    assert.ok(gw.running(), `gateway exited: ${JSON.stringify(gw.exitInfo)}`);
    const j = await (await fetch(`${gw.base}/status`)).json();
    for (const n of ["good", "bad-backend", "bad-stdio"])
      assert.equal(j.servers.find((s) => s.name === n)?.ready, true, `${n}: ${JSON.stringify(j.servers.find((s) => s.name === n))}`);
    await client.close();
  });
});
