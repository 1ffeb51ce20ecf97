// Observability: request ids (X-Request-Id, log lines), W3C Trace Context to the upstream,
// OpenTelemetry spans over OTLP/HTTP JSON to a collector in this process (the SERVER span of a
// request, the CLIENT spans of its upstream requests under it), and the request / tool-call / span
// metrics. A second gateway without a collector shows what tracing off does: the client's context
// goes upstream untouched.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import * as L from "./lib.mjs";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT = "00f067aa0ba902b7";
const tp = (trace = TRACE, span = PARENT, flags = "01") => `00-${trace}-${span}-${flags}`;
const HEX32 = /^[0-9a-f]{32}$/;

/** An OTLP/HTTP JSON collector: every span received, flattened, with its resource and the request's headers. */
async function startCollector() {
  const spans = [], posts = [];
  const srv = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      posts.push({ url: req.url, headers: req.headers });
      let body;
      try { body = JSON.parse(Buffer.concat(chunks).toString("utf8")); } catch { res.writeHead(400).end(); return; }
      for (const rs of body.resourceSpans ?? []) {
        const resource = Object.fromEntries((rs.resource?.attributes ?? []).map((a) => [a.key, a.value.stringValue]));
        for (const ss of rs.scopeSpans ?? [])
          for (const s of ss.spans ?? []) {
            const attrs = Object.fromEntries((s.attributes ?? []).map((a) =>
              [a.key, a.value.stringValue ?? (a.value.intValue !== undefined ? Number(a.value.intValue) : a.value)]));
            spans.push({ ...s, attrs, resource, scope: ss.scope });
          }
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise((resolve) => srv.listen(0, "127.0.0.1", resolve));
  return { port: srv.address().port, spans, posts, close: () => new Promise((r) => { srv.closeAllConnections?.(); srv.close(() => r()); }) };
}

/** The JSON lines of a gateway's log so far (every line must be JSON). */
function jsonLines(gw) {
  return gw.log().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
}

describe("observability", () => {
  let up, gw, plain, collector, metricsPort;
  before(async () => {
    up = await L.startExample({ name: "server1" });
    collector = await startCollector();
    metricsPort = await L.freePort();
    gw = await L.startGateway({
      servers: [{ name: "example/server1", url: up.url, prefix: "s1_" }],
      args: ["--log-format", "json", "--log-level", "debug", "--metrics-addr", `127.0.0.1:${metricsPort}`],
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${collector.port}/`, OTEL_SERVICE_NAME: "gw-e2e",
             OTEL_EXPORTER_OTLP_HEADERS: "x-collector-key=s3cr%20et, other = v" },
    });
    plain = await L.startGateway({ servers: [{ name: "example/server1", url: up.url, prefix: "s1_" }],
                                   args: ["--log-level", "-4"], logName: "gateway-plain" });
    for (const g of [gw, plain]) {
      const { client } = await L.connect(g.url);
      await L.waitTools(client, (n) => n.includes("s1_headers"));
      await client.close();
    }
  });
  after(async () => { await collector?.close(); await L.cleanup(); });

  /** A session on g, then tools/call name with the given headers: { res (rpc result), headers (what the upstream got, for s1_headers) }. */
  async function call(g, name, { headers = {}, args = {}, session } = {}) {
    const sessionId = session ?? (await L.rawSession(g.url)).sessionId;
    const res = await L.rpc(g.url, { jsonrpc: "2.0", id: 7, method: "tools/call", params: { name, arguments: args } },
                            { sessionId, headers });
    assert.equal(res.status, 200, JSON.stringify(res.messages));
    let got;
    if (name === "s1_headers") got = JSON.parse(L.textOf(res.message.result));
    return { res, upstream: got, sessionId };
  }

  const spansOf = (traceId) => collector.spans.filter((s) => s.traceId === traceId);
  const waitSpans = (traceId, pred, what) => L.waitFor(() => { const s = spansOf(traceId); return pred(s) ? s : null; },
    { timeout: 15000, what: `${what} (spans of ${traceId}: ${JSON.stringify(spansOf(traceId).map((s) => [s.name, s.kind]))})` });

  test("a client's traceparent: the SERVER span is its child, the upstream's requests CLIENT spans under it", async () => {
    const { res, upstream, sessionId } = await call(gw, "s1_headers", { headers: { traceparent: tp(), tracestate: "vendor=abc,x=1" } });
    assert.equal(res.headers.get("x-request-id"), TRACE, "the request id is the trace id");
    // the upstream got the same trace, a new parent (the gateway's CLIENT span), tracestate as it came
    const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(upstream.traceparent ?? "");
    assert.ok(m, `upstream traceparent: ${upstream.traceparent}`);
    assert.equal(m[1], TRACE);
    assert.notEqual(m[2], PARENT);
    assert.equal(upstream.tracestate, "vendor=abc,x=1");

    const spans = await waitSpans(TRACE, (s) => s.some((x) => x.kind === 2 && x.name.includes("tools/call")) &&
                                                s.some((x) => x.kind === 3 && x.attrs["mcp.method.name"] === "tools/call"), "the call's spans");
    const server = spans.find((s) => s.kind === 2 && s.name.includes("tools/call"));
    assert.equal(server.name, "POST /mcp tools/call");
    assert.equal(server.parentSpanId, PARENT, "the client's span is the SERVER span's parent");
    assert.equal(server.attrs["http.request.method"], "POST");
    assert.equal(server.attrs["http.response.status_code"], 200);
    assert.equal(server.attrs["mcp.method.name"], "tools/call");
    assert.equal(server.attrs["gen_ai.tool.name"], "s1_headers");
    assert.equal(server.attrs["mcp.server"], "example/server1");
    assert.match(server.attrs["mcp.session.id"], /^sha256:[0-9a-f]{12}$/);
    assert.ok(!JSON.stringify(collector.spans).includes(sessionId), "the session id itself is never exported");
    assert.equal(server.resource["service.name"], "gw-e2e");
    assert.ok(BigInt(server.endTimeUnixNano) >= BigInt(server.startTimeUnixNano));

    const clients = spans.filter((s) => s.kind === 3);
    for (const c of clients) {
      assert.equal(c.parentSpanId, server.spanId, `${c.name}: a child of the SERVER span`);
      assert.equal(c.attrs["mcp.server"], "example/server1");
      assert.equal(c.attrs["server.address"], "127.0.0.1");
      assert.equal(c.attrs["server.port"], up.port);
    }
    const callSpan = clients.find((c) => c.attrs["mcp.method.name"] === "tools/call");
    assert.equal(callSpan.spanId, m[2], "the upstream's parent is the CLIENT span of the call");
    assert.equal(callSpan.name, "tools/call headers");
    assert.equal(callSpan.attrs["gen_ai.tool.name"], "headers");
    assert.equal(callSpan.attrs["http.response.status_code"], 200);
    // the session's first call initialized the upstream session first: spans of their own
    assert.deepEqual(clients.map((c) => c.attrs["mcp.method.name"]).sort(), ["initialize", "notifications/initialized", "tools/call"]);
    // the exporter's own request carried OTEL_EXPORTER_OTLP_HEADERS, to <endpoint>/v1/traces
    assert.ok(collector.posts.every((p) => p.url === "/v1/traces"));
    assert.equal(collector.posts[0].headers["x-collector-key"], "s3cr et");
    assert.equal(collector.posts[0].headers.other, "v");
    assert.match(collector.posts[0].headers["content-type"], /^application\/json/);
  });

  test("no traceparent, or an invalid one: a new trace, whose id is the request id", async () => {
    for (const headers of [{}, { traceparent: tp(TRACE.toUpperCase()) }, { traceparent: `${tp()}-extra` },
                           { traceparent: tp("0".repeat(32)) }]) {
      const { res, upstream } = await call(gw, "s1_headers", { headers });
      const rid = res.headers.get("x-request-id");
      assert.match(rid, HEX32, JSON.stringify(headers));
      assert.notEqual(rid, TRACE);
      assert.ok(upstream.traceparent.startsWith(`00-${rid}-`), `upstream traceparent ${upstream.traceparent} for ${rid}`);
      assert.equal(upstream.tracestate, undefined);
      const spans = await waitSpans(rid, (s) => s.some((x) => x.kind === 2 && x.name === "POST /mcp tools/call"), "a new trace");
      const server = spans.find((x) => x.kind === 2 && x.name === "POST /mcp tools/call");
      assert.equal(server.parentSpanId ?? "", "", "a root span");
      assert.ok(spans.filter((x) => x.kind === 3).every((c) => c.parentSpanId === server.spanId));
    }
  });

  test("a traceparent that is not sampled is honoured: nothing recorded, passed on as it came", async () => {
    const trace = "0af7651916cd43dd8448eb211c80319c";
    const { upstream, res } = await call(gw, "s1_headers", { headers: { traceparent: tp(trace, "b7ad6b7169203331", "00") } });
    assert.equal(upstream.traceparent, tp(trace, "b7ad6b7169203331", "00"));
    assert.equal(res.headers.get("x-request-id"), trace);
    await L.sleep(1500);   // an export period
    assert.equal(spansOf(trace).length, 0);
  });

  test("X-Request-Id: a sane one is kept, in the answer and the log lines", async () => {
    const { res } = await call(gw, "s1_echo", { headers: { "x-request-id": "e2e-req-1.A_b" }, args: { text: "hi" } });
    assert.equal(res.headers.get("x-request-id"), "e2e-req-1.A_b");
    for (const bad of ["has space", "x".repeat(65), "a/b"]) {
      const r = await L.rpc(gw.url, { jsonrpc: "2.0", id: 1, method: "ping" }, { headers: { "x-request-id": bad },
                                                                                sessionId: (await L.rawSession(gw.url)).sessionId });
      assert.match(r.headers.get("x-request-id"), HEX32, `replaced: ${bad}`);
    }
    // a line written while the request was handled (the debug access line), and one from inside the
    // handler: the answer to a server request nobody asked is logged at debug level
    const sid = (await L.rawSession(gw.url)).sessionId;
    const r2 = await L.rpc(gw.url, { jsonrpc: "2.0", id: "nobody-asked", result: {} }, { sessionId: sid, headers: { "x-request-id": "e2e-resp-2" } });
    assert.equal(r2.status, 202);
    assert.equal(r2.headers.get("x-request-id"), "e2e-resp-2");
    const lines = await L.waitFor(() => {
      const all = jsonLines(gw);
      return all.some((l) => l.request_id === "e2e-resp-2" && /no pending server request/.test(l.msg)) &&
             all.some((l) => l.request_id === "e2e-req-1.A_b" && /tools\/call -> 200/.test(l.msg)) ? all : null;
    }, { what: "log lines with the request ids" });
    const access = lines.find((l) => l.request_id === "e2e-req-1.A_b" && /tools\/call/.test(l.msg));
    assert.equal(access.level, "debug");
    assert.match(access.trace_id, HEX32, "traced: the trace id too");
    // the request id reaches the log lines written in the upstream's callbacks: nothing else carries one
    assert.ok(lines.filter((l) => l.request_id).every((l) => /^[A-Za-z0-9._-]{1,64}$/.test(l.request_id)));
    // CORS lets a browser read it
    const o = await fetch(gw.url, { method: "POST", headers: L.mcpHeaders(sid, { origin: "http://localhost:3000" }),
                                     body: JSON.stringify({ jsonrpc: "2.0", id: 3, method: "ping" }) });
    await o.text();
    assert.match(o.headers.get("access-control-expose-headers"), /X-Request-Id/);
  });

  test("metrics: requests by method and status, tool calls by outcome with durations, spans exported", async () => {
    const scrape = async () => {
      const r = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
      assert.equal(r.status, 200);
      return L.parseProm(await r.text());
    };
    const b = await scrape();
    assert.equal(b.types.mcp_gateway_requests_total, "counter");
    assert.equal(b.types.mcp_gateway_tool_call_duration_seconds, "histogram");
    assert.equal(b.types.mcp_gateway_trace_spans_total, "counter");
    const { sessionId } = await L.rawSession(gw.url);
    for (let i = 0; i < 3; i++) await call(gw, "s1_echo", { session: sessionId, args: { text: `m${i}` } });
    await call(gw, "s1_fail", { session: sessionId });
    const unknown = await L.rpc(gw.url, { jsonrpc: "2.0", id: 9, method: "tools/call", params: { name: "s1_nope" } }, { sessionId });
    assert.equal(unknown.status, 200);
    const a = await L.waitFor(async () => {   // a request is counted when it has ended: just after its answer
      const m = await scrape();
      return m.value("mcp_gateway_requests_total", { method: "tools/call", status: "200" }) -
             (b.value("mcp_gateway_requests_total", { method: "tools/call", status: "200" }) ?? 0) >= 5 ? m : null;
    }, { what: "tools/call counted" });
    const req = (m, labels) => m.value("mcp_gateway_requests_total", labels) ?? 0;
    assert.equal(req(a, { method: "tools/call", status: "200" }) - req(b, { method: "tools/call", status: "200" }), 5);
    assert.ok(req(a, { method: "initialize", status: "200" }) - req(b, { method: "initialize", status: "200" }) >= 1);
    assert.ok(req(a, { method: "notifications/initialized", status: "202" }) >= 1);

    const h = (m, tool, outcome) => m.histogram("mcp_gateway_tool_call_duration_seconds",
                                                { server: "example/server1", tool, outcome });
    const ok = h(a, "s1_echo", "ok");
    assert.equal(ok.count - (h(b, "s1_echo", "ok")?.count ?? 0), 3);
    assert.equal(ok.buckets.at(-1).le, Infinity);
    assert.equal(ok.buckets.at(-1).value, ok.count, "+Inf = count");
    for (let i = 1; i < ok.buckets.length; i++) {
      assert.ok(ok.buckets[i].le > ok.buckets[i - 1].le);
      assert.ok(ok.buckets[i].value >= ok.buckets[i - 1].value, "cumulative");
    }
    assert.ok(ok.sum > 0 && ok.sum < 30);
    assert.equal(h(a, "s1_fail", "tool_error").count - (h(b, "s1_fail", "tool_error")?.count ?? 0), 1);
    assert.ok(!a.samples.some((s) => s.labels.tool === "s1_nope"), "only tools of the catalog are labels");
    // the existing per-server counter agrees
    assert.ok(a.value("mcp_gateway_tool_calls_total", { server: "example/server1" }) >= 4);
    // spans: every one the collector got is counted as exported (once the last answer is in), none
    // dropped or failed
    const s = await L.waitFor(async () => {
      const m = await scrape();
      return m.value("mcp_gateway_trace_spans_total", { result: "exported" }) === collector.spans.length ? m : null;
    }, { what: `exported = ${collector.spans.length} spans received`, timeout: 15000 });
    assert.ok(collector.spans.length >= 4);
    assert.equal(s.value("mcp_gateway_trace_spans_total", { result: "dropped" }), 0);
    assert.equal(s.value("mcp_gateway_trace_spans_total", { result: "failed" }), 0);
  });

  test("tracing off: the client's trace context goes upstream untouched; ids in text log lines", async () => {
    const { upstream, res } = await call(plain, "s1_headers", { headers: { traceparent: tp(), tracestate: "k=v" } });
    assert.equal(upstream.traceparent, tp());
    assert.equal(upstream.tracestate, "k=v");
    assert.equal(res.headers.get("x-request-id"), TRACE);
    const r2 = await call(plain, "s1_headers", { headers: { "x-request-id": "plain-1" } });
    assert.equal(r2.upstream.traceparent, undefined, "no trace context is made up");
    assert.equal(r2.res.headers.get("x-request-id"), "plain-1");
    await L.waitFor(() => / request_id=plain-1( |$)/m.test(plain.log()), { what: "a text line with request_id=plain-1" });
    assert.ok(!/"request_id"/.test(plain.log()));
    // every request on the listener gets one, /healthz too
    const hz = await fetch(`${plain.base}/healthz`);
    await hz.text();
    assert.match(hz.headers.get("x-request-id"), HEX32);
  });

  test("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is the whole URL; a collector that is down costs the calls nothing", async () => {
    const custom = await L.startGateway({ servers: [{ name: "example/server1", url: up.url, prefix: "s1_" }], logName: "gateway-custom",
      env: { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://127.0.0.1:${collector.port}/custom/traces`,
             OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:1" } });
    const { res } = await call(custom, "s1_echo", { args: { text: "x" } });
    const rid = res.headers.get("x-request-id");
    await waitSpans(rid, (sp) => sp.some((x) => x.kind === 2), "spans at the custom URL");
    assert.ok(collector.posts.some((p) => p.url === "/custom/traces"));
    assert.equal(spansOf(rid)[0].resource["service.name"], "mcp-gateway", "the default service name");

    const closed = await L.freePort();
    const mport = await L.freePort();
    const down = await L.startGateway({ servers: [{ name: "example/server1", url: up.url, prefix: "s1_" }], logName: "gateway-down",
      args: ["--metrics-addr", `127.0.0.1:${mport}`], env: { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${closed}` } });
    const { sessionId } = await L.rawSession(down.url);
    for (let i = 0; i < 5; i++) {
      const r = await call(down, "s1_echo", { session: sessionId, args: { text: `d${i}` } });
      assert.equal(r.res.message.result.content[0].text, `d${i}`);
    }
    const m = await L.waitFor(async () => {
      const p = L.parseProm(await (await fetch(`http://127.0.0.1:${mport}/metrics`)).text());
      return p.value("mcp_gateway_trace_spans_total", { result: "failed" }) > 0 ? p : null;
    }, { what: "failed spans counted", timeout: 15000 });
    assert.equal(m.value("mcp_gateway_trace_spans_total", { result: "exported" }), 0);
    await L.waitFor(() => /export to http:\/\/127\.0\.0\.1:\d+\/v1\/traces failed/.test(down.log()), { what: "the warning" });
    assert.equal(down.log().match(/export to .* failed/g).length, 1, "warned once, not per batch");
    await down.stop();
    await custom.stop();
  });

  test("the gateway stops cleanly with the exporter running", async () => {
    const { res } = await call(gw, "s1_echo", { args: { text: "last" } });
    const rid = res.headers.get("x-request-id");
    const info = await gw.stop(15000);
    assert.equal(info.code, 0, `exit ${JSON.stringify(info)}`);
    // what the drain left was sent before the exit
    assert.ok(spansOf(rid).some((s) => s.kind === 2), "the last request's span reached the collector");
  });
});
