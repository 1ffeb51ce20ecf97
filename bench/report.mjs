// bench/report.mjs RAW.jsonl OUT.json — turns bench/run.sh's raw measurements into
// bench/results/latest.json (the keys, and more) and the table printed on stdout.
import fs from "node:fs";

const [rawFile, outFile] = process.argv.slice(2);
const lines = fs.readFileSync(rawFile, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
const all = (key) => lines.filter((l) => l.key === key).map((l) => l.data);
const one = (key) => all(key)[0];
const median = (xs) => {
  const v = xs.filter((x) => typeof x === "number" && !Number.isNaN(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};
const r1 = (x) => (x == null ? null : Math.round(x * 10) / 10);
const r2 = (x) => (x == null ? null : Math.round(x * 100) / 100);
const r3 = (x) => (x == null ? null : Math.round(x * 1000) / 1000);

const machine = { ...one("machine"), ...(one("machine_end") || {}) };
const names = ["direct", "nginx", "gateway", "gateway_w2", "gateway_auth", "gateway_stdio", "peer_mcp-proxy", "peer_supergateway"];
const tp = {}, cpu = {}, backendCpu = {}, loadgenCpu = {}, errors = {}, closedLat = {}, foreign = {};
// share of the proxy's CPU and of the client CPU used by other processes (a shared machine)
const otherLoad = (r) => {
  const b = r.cpu_busy || [], secs = r.seconds || 1;
  const own0 = (r.cpu?.proxy?.cpu_s || 0) / secs;
  const own1 = ((r.cpu?.backend?.cpu_s || 0) + (r.cpu?.loadgen?.cpu_s || 0)) / secs;
  return { proxy_cpu: b[machine.proxy_cpu] != null ? Math.max(0, b[machine.proxy_cpu] - own0) : null,
           client_cpu: b[machine.client_cpu] != null ? Math.max(0, b[machine.client_cpu] - own1) : null };
};
for (const n of names) {
  const runs = all(`tp.${n}`);
  if (!runs.length) continue;
  tp[n] = median(runs.map((r) => r.rps));
  cpu[n] = median(runs.map((r) => r.cpu?.proxy?.us_per_call));
  backendCpu[n] = median(runs.map((r) => r.cpu?.backend?.us_per_call));
  loadgenCpu[n] = median(runs.map((r) => r.cpu?.loadgen?.us_per_call));
  errors[n] = runs.reduce((a, r) => a + r.errors, 0);
  closedLat[n] = { p50: median(runs.map((r) => r.p50_us)), p99: median(runs.map((r) => r.p99_us)) };
  foreign[n] = { proxy_cpu: r3(median(runs.map((r) => otherLoad(r).proxy_cpu))), client_cpu: r3(median(runs.map((r) => otherLoad(r).client_cpu))) };
}
const lat = {};
for (const n of names) {
  const ls = all(`lat.${n}`);
  if (ls.length) lat[n] = {
    p50: median(ls.map((l) => l.p50_us)), p99: median(ls.map((l) => l.p99_us)), p999: median(ls.map((l) => l.p999_us)),
    rate: ls[0].target_rate, achieved: median(ls.map((l) => l.rps)), errors: ls.reduce((a, l) => a + l.errors, 0), reps: ls.length,
    proxy_cpu_us_per_call: median(ls.map((l) => l.cpu?.proxy?.us_per_call)),
    overloaded: ls.filter((l) => l.rps < 0.98 * l.target_rate).length,
    other_load_proxy_cpu: r3(median(ls.map((l) => otherLoad(l).proxy_cpu))),
    runs: ls.map((l) => ({ p50: l.p50_us, p99: l.p99_us, achieved: l.rps })),
  };
}
const mem = {};
for (const n of [...names, "gateway_mem"]) { const m = one(`mem.${n}`); if (m) mem[n] = m; }
const peers = names.filter((n) => n.startsWith("peer_") && tp[n] != null);
const bestPeer = peers.sort((a, b) => tp[b] - tp[a])[0];
const peerName = bestPeer ? bestPeer.slice(5) : null;
const sessions = one("sessions"), sse = one("sse"), startup = one("startup"), jwt = one("jwt");
const startupExample = one("startup_example"), startupNginx = one("startup_nginx");
const fanCold = one("fanout_cold"), fanCached1 = one("fanout_cached_1"), fanCached = one("fanout_cached");
const rate = one("rate");
const ratio = (a, b) => (a != null && b ? r3(a / b) : null);

const fastNames = fanCold?.expect ? Object.keys(fanCold.expect).filter((k) => k !== "f9_echo") : [];
const out = {
  tools_call_rps: {
    direct: r1(tp.direct), nginx: r1(tp.nginx), gateway: r1(tp.gateway), gateway_auth: r1(tp.gateway_auth),
    peer: r1(tp[bestPeer]), peer_name: peerName,
    gateway_w2: r1(tp.gateway_w2),
    gateway_stdio: r1(tp.gateway_stdio),
    peers: Object.fromEntries(peers.map((p) => [p.slice(5), r1(tp[p])])),
    peer_backend: "stdio (bench/stdio-echo): the npm peers only front stdio servers",
  },
  cpu_us_per_call: {
    nginx: r2(cpu.nginx), gateway: r2(cpu.gateway), gateway_auth: r2(cpu.gateway_auth),
    gateway_w2: r2(cpu.gateway_w2), gateway_stdio: r2(cpu.gateway_stdio), peer: r2(cpu[bestPeer]),
    peers: Object.fromEntries(peers.map((p) => [p.slice(5), r2(cpu[p])])),
    backend: Object.fromEntries(Object.entries(backendCpu).map(([k, v]) => [k, r2(v)])),
    loadgen: Object.fromEntries(Object.entries(loadgenCpu).map(([k, v]) => [k, r2(v)])),
  },
  latency_us: {
    gateway_p50: r1(lat.gateway?.p50), gateway_p99: r1(lat.gateway?.p99),
    nginx_p50: r1(lat.nginx?.p50), nginx_p99: r1(lat.nginx?.p99),
    direct_p50: r1(lat.direct?.p50), direct_p99: r1(lat.direct?.p99),
    gateway_auth_p50: r1(lat.gateway_auth?.p50), gateway_auth_p99: r1(lat.gateway_auth?.p99),
    gateway_added_p50: r1(lat.gateway && lat.direct ? lat.gateway.p50 - lat.direct.p50 : null),
    gateway_added_p99: r1(lat.gateway && lat.direct ? lat.gateway.p99 - lat.direct.p99 : null),
    nginx_added_p50: r1(lat.nginx && lat.direct ? lat.nginx.p50 - lat.direct.p50 : null),
    nginx_added_p99: r1(lat.nginx && lat.direct ? lat.nginx.p99 - lat.direct.p99 : null),
    rate_per_s: rate?.rate,
    detail: lat,
    closed_loop: closedLat,
  },
  sessions: sessions && {
    count: sessions.count, errors: sessions.errors, rss_bytes_per_session: r1(sessions.rss_bytes_per_session),
    per_s: sessions.per_s, cpu_us_per_session: sessions.cpu_us_per_session, conns: sessions.conns,
    rss_before_kb: sessions.rss_before_kb, rss_after_kb: sessions.rss_after_kb,
  },
  sse: sse && {
    streams: sse.opened, rss_bytes_per_stream: r1(sse.rss_bytes_per_stream), failed: sse.failed,
    notified: sse.notified, fanout_first_ms: sse.fanout_first_ms, fanout_last_ms: sse.fanout_last_ms,
    trigger_ok: sse.trigger_ok, rss_base_kb: sse.rss_base_kb, rss_after_kb: sse.rss_after_kb,
  },
  jwt_us: jwt && {
    rs256_cold: jwt.rs256_cold, rs256_cached: jwt.rs256_cached,
    es256_cold: jwt.es256_cold, es256_cached: jwt.es256_cached,
    eddsa_cold: jwt.eddsa_cold, eddsa_cached: jwt.eddsa_cached,
    rs256_cold_with_claims: jwt.rs256_cold_with_claims, jwks_parse: jwt.jwks_parse_us,
    gateway_auth_overhead_per_call: r2(cpu.gateway_auth != null && cpu.gateway != null ? cpu.gateway_auth - cpu.gateway : null),
    how: "cold = jwt_verify() of src/jwt.h (libgw.a); cached = auth_check's hit path replicated (SHA-256 of the token, slot, memcmp, exp); gateway_auth_overhead_per_call = gateway_auth - gateway CPU µs per call",
  },
  startup_ms: startup?.connect_ms_median,
  startup: startup && { first_connection_ms: startup.connect_ms_median, first_healthz_ms: startup.healthz_ms_median, runs: startup.runs,
    baseline_example_server_ms: startupExample?.connect_ms_median, baseline_nginx_ms: startupNginx?.connect_ms_median,
    all_ms: startup.connect_ms },
  fanout: fanCold && {
    upstreams: 10,
    cold_all_ms: fanCold.all_expected_ms,
    cold_fast9_ms: fastNames.length ? Math.max(...fastNames.map((k) => fanCold.expect[k])) : null,
    cold_slow_ms: fanCold.expect?.f9_echo,
    cached_p50_us_1conn: fanCached1?.p50_us, cached_p99_us_1conn: fanCached1?.p99_us,
    cached_rps: fanCached?.rps, cached_cpu_us: fanCached?.cpu?.proxy?.us_per_call,
  },
  peak_rss_kb: Object.fromEntries(Object.entries(mem).map(([k, v]) => [k, v.hwm_kb])),
  errors,
  other_load: foreign,
  wrk_rps: Object.fromEntries(["direct", "nginx", "gateway"].filter((n) => one(`wrk.${n}`)).map((n) => [n, one(`wrk.${n}`).rps])),
  ratios: {
    gateway_over_nginx_rps: ratio(tp.gateway, tp.nginx),
    gateway_over_direct_rps: ratio(tp.gateway, tp.direct),
    gateway_over_peer_rps: ratio(tp.gateway, tp[bestPeer]),
    auth_over_noauth_rps: ratio(tp.gateway_auth, tp.gateway),
    gateway_auth_over_nginx_rps: ratio(tp.gateway_auth, tp.nginx),
    gateway_w2_over_w1_rps: ratio(tp.gateway_w2, tp.gateway),
    gateway_over_nginx_cpu: ratio(cpu.gateway, cpu.nginx),
    auth_over_noauth_cpu: ratio(cpu.gateway_auth, cpu.gateway),
    peer_over_gateway_cpu: ratio(cpu[bestPeer], cpu.gateway),
    gateway_stdio_over_peer_rps: ratio(tp.gateway_stdio, tp[bestPeer]),
    peer_over_gateway_stdio_cpu: ratio(cpu[bestPeer], cpu.gateway_stdio),
  },
  machine,
};

// the targets, judged on today's figures
const T = [];
const tgt = (name, value, limit, holds, unit = "") => T.push({ target: name, value, limit, unit, holds: value == null ? null : holds });
const rt = out.ratios;
tgt("gateway throughput ≥ 0.8 × nginx", rt.gateway_over_nginx_rps, 0.8, rt.gateway_over_nginx_rps >= 0.8, "×");
tgt("gateway CPU per call ≤ 1.25 × nginx", rt.gateway_over_nginx_cpu, 1.25, rt.gateway_over_nginx_cpu <= 1.25, "×");
tgt("gateway with auth throughput ≥ 0.75 × nginx", rt.gateway_auth_over_nginx_rps, 0.75, rt.gateway_auth_over_nginx_rps >= 0.75, "×");
if (tp.gateway_stdio != null) {   // like for like: both in front of the stdio backend
  tgt(`gateway throughput ≥ 20 × best peer (${peerName}), both on the stdio backend`, rt.gateway_stdio_over_peer_rps, 20, rt.gateway_stdio_over_peer_rps >= 20, "×");
  tgt(`best peer CPU per call ≥ 20 × gateway's, both on the stdio backend`, rt.peer_over_gateway_stdio_cpu, 20, rt.peer_over_gateway_stdio_cpu >= 20, "×");
} else {                         // this build has no stdio upstreams: the gateway on the HTTP backend
  tgt(`gateway throughput ≥ 20 × best peer (${peerName}; gateway on the HTTP backend)`, rt.gateway_over_peer_rps, 20, rt.gateway_over_peer_rps >= 20, "×");
  tgt(`best peer CPU per call ≥ 20 × gateway's (gateway on the HTTP backend)`, rt.peer_over_gateway_cpu, 20, rt.peer_over_gateway_cpu >= 20, "×");
}
tgt("added latency p50 ≤ 50 µs (at half the gateway's peak)", out.latency_us.gateway_added_p50, 50, out.latency_us.gateway_added_p50 <= 50, "µs");
tgt("added latency p99 ≤ 200 µs", out.latency_us.gateway_added_p99, 200, out.latency_us.gateway_added_p99 <= 200, "µs");
tgt("20,000 sessions with 0 errors", sessions?.errors, 0, sessions?.errors === 0 && sessions?.count >= 20000, "errors");
tgt("≤ 4 KB RSS per idle session", out.sessions?.rss_bytes_per_session, 4096, out.sessions?.rss_bytes_per_session <= 4096, "B");
tgt("5,000 SSE streams, all notified", sse?.notified, 5000, sse?.opened >= 5000 && sse?.notified >= sse?.opened, "streams");
tgt("≤ 8 KB RSS per SSE stream", out.sse?.rss_bytes_per_stream, 8192, out.sse?.rss_bytes_per_stream <= 8192, "B");
tgt("cached token check ≤ 2 µs", jwt?.rs256_cached, 2, jwt?.rs256_cached <= 2, "µs");
tgt("tools/list over 10 upstreams, cached, ≤ 50 µs (gateway CPU per list)", out.fanout?.cached_cpu_us, 50, out.fanout?.cached_cpu_us <= 50, "µs");
tgt("start-up ≤ 20 ms (exec → first accepted connection)", out.startup_ms, 20, out.startup_ms <= 20, "ms");
out.targets = T;
fs.writeFileSync(outFile, JSON.stringify(out, null, 2) + "\n");

// ---- the table -------------------------------------------------------------------------------------
const f = (x, d = 0) => (x == null ? "-" : Number(x).toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d }));
const pad = (s, n, left = false) => (left ? String(s).padEnd(n) : String(s).padStart(n));
const label = {
  direct: "direct (no proxy)", nginx: "nginx proxy_pass", gateway: "gateway --workers 1", gateway_w2: "gateway --workers 2",
  gateway_auth: "gateway + JWT auth", gateway_stdio: "gateway, stdio backend*", "peer_mcp-proxy": "peer mcp-proxy*",
  peer_supergateway: "peer supergateway*",
};
const W = [24, 9, 7, 7, 9, 9, 9, 9, 9, 9, 8, 6, 6];
const row = (cells) => cells.map((c, i) => pad(c, W[i], i === 0)).join(" ");
const p = [];
p.push(`mcp-gateway benchmark (${machine.mode}, commit ${machine.commit}, ${machine.date}) — ${machine.nproc} × ${machine.cpu_model}, proxy on cpu ${machine.proxy_cpu}, ` +
       `loadgen + backend on cpu ${machine.client_cpu}, nice ${machine.nice}; ${machine.conns} connections, ${machine.duration_s} s × ${machine.reps} (median); ` +
       `load average ${machine.loadavg_start} → ${machine.loadavg_end}`);
p.push("");
p.push(row(["tools/call echo", "calls/s", "/nginx", "/direct", "proxy µs", "backend", "loadgen", "p50 µs", "p99 µs", "proxy µs", "peak RSS", "errors", "other"]));
p.push(row(["", "(peak)", "", "", "CPU/call", "µs/call", "µs/call", "@rate", "@rate", "@rate", "MiB", "", "load"]));
for (const n of names) {
  if (tp[n] == null) continue;
  p.push(row([label[n], f(tp[n]), f(ratio(tp[n], tp.nginx), 2), f(ratio(tp[n], tp.direct), 2), f(cpu[n], 1), f(backendCpu[n], 1),
              f(loadgenCpu[n], 1), f(lat[n]?.p50) + (lat[n]?.overloaded ? "!" : ""), f(lat[n]?.p99), f(lat[n]?.proxy_cpu_us_per_call, 1),
              mem[n] ? f(mem[n].hwm_kb / 1024, 1) : "-",
              f(errors[n]), foreign[n]?.proxy_cpu == null ? "-" : f(foreign[n].proxy_cpu * 100) + "%"]));
}
p.push(`"other load": share of the proxy's cpu ${machine.proxy_cpu} used by processes outside the benchmark during the run (median); ` +
       `"!": the fixed rate was not sustained in some repetition (the latency then includes queueing).`);
p.push(`* in front of the stdio backend (bench/stdio-echo, the only kind the npm peers front); "backend µs" counts the HTTP backend only. ` +
       `Latency at ${f(rate?.rate)} calls/s (half the gateway's peak; peers at half their own), 64 connections, open loop.`);
p.push("");
p.push("ratios: " + [
  `gateway/nginx ${f(rt.gateway_over_nginx_rps, 3)} (CPU ${f(rt.gateway_over_nginx_cpu, 2)}×)`,
  `gateway/direct ${f(rt.gateway_over_direct_rps, 3)}`,
  `gateway/peer ${f(rt.gateway_over_peer_rps, 1)} (peer CPU ${f(rt.peer_over_gateway_cpu, 1)}×)`,
  `auth/no-auth ${f(rt.auth_over_noauth_rps, 3)} (CPU ${f(rt.auth_over_noauth_cpu, 2)}×)`,
  `w2/w1 ${f(rt.gateway_w2_over_w1_rps, 3)}`,
].join(", "));
p.push(`added latency over direct at ${f(rate?.rate)}/s: gateway p50 ${f(out.latency_us.gateway_added_p50)} µs, p99 ${f(out.latency_us.gateway_added_p99)} µs; ` +
       `nginx p50 ${f(out.latency_us.nginx_added_p50)} µs, p99 ${f(out.latency_us.nginx_added_p99)} µs`);
if (sessions) p.push(`sessions: ${f(sessions.count)} created over ${sessions.conns} connections in ${f(sessions.seconds, 2)} s (${f(sessions.per_s)}/s), ` +
                     `${sessions.errors} errors, ${f(sessions.rss_bytes_per_session)} B RSS each, ${f(sessions.cpu_us_per_session, 1)} µs CPU each`);
if (sse) p.push(`SSE: ${f(sse.opened)} GET streams open (${sse.failed} failed), ${f(sse.rss_bytes_per_stream)} B RSS each; one tools/list_changed reached ` +
                `${f(sse.notified)} of them, the last after ${f(sse.fanout_last_ms, 1)} ms`);
if (out.fanout) p.push(`fan-out, tools/list over 10 upstreams (one slow): cold ${f(out.fanout.cold_fast9_ms, 1)} ms for the 9 fast, ` +
                       `${f(out.fanout.cold_all_ms, 1)} ms with the slow one; cached ${f(out.fanout.cached_cpu_us, 1)} µs gateway CPU per list, ` +
                       `p50 ${f(out.fanout.cached_p50_us_1conn, 1)} µs on one connection, ${f(out.fanout.cached_rps)} lists/s`);
if (startup) p.push(`start-up: first accepted connection ${f(startup.connect_ms_median, 2)} ms, first /healthz answer ${f(startup.healthz_ms_median, 2)} ms (median of ${startup.runs}); ` +
                    `same measure for build/mcp-example-server ${f(startupExample?.connect_ms_median, 2)} ms, nginx ${f(startupNginx?.connect_ms_median, 2)} ms`);
if (jwt) p.push(`JWT verify (src/jwt.h): RS256 ${f(jwt.rs256_cold, 1)} µs cold / ${f(jwt.rs256_cached, 2)} µs cached, ES256 ${f(jwt.es256_cold, 1)} / ${f(jwt.es256_cached, 2)}, ` +
                `EdDSA ${f(jwt.eddsa_cold, 1)} / ${f(jwt.eddsa_cached, 2)}; in the gateway auth adds ${f(out.jwt_us.gateway_auth_overhead_per_call, 1)} µs CPU per call`);
if (Object.keys(out.wrk_rps).length) p.push("wrk cross-check (one session, 5 s): " + Object.entries(out.wrk_rps).map(([k, v]) => `${k} ${f(v)}/s`).join(", "));
p.push("");
p.push("targets:");
for (const t of T) p.push(`  ${t.holds == null ? "?   " : t.holds ? "OK  " : "MISS"} ${pad(t.target, 66, true)} ${f(t.value, t.unit === "×" ? 3 : 1)} ${t.unit} (limit ${f(t.limit, t.unit === "×" ? 2 : 0)})`);
console.log(p.join("\n"));
