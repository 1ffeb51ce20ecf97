// Slowloris: 500 connections that send a partial request header and then one byte every 2 s, reopened as
// soon as the gateway closes them, for ATTACK_MS; meanwhile tools/call (SDK client, kept-alive connection)
// and ping on a fresh TCP connection each time must keep being answered within GOOD_MS. Every slow
// connection must be closed by the gateway (408 or a plain close) after --header-timeout, however
// many bytes it trickles, and nothing may stay behind once the attack stops. The same with complete
// headers and a body trickled a byte at a time (--body-timeout).
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import * as L from "./lib.mjs";

const N = 500;                      // slow connections held at once
const TIMEOUT_S = 3;                // --header-timeout and --body-timeout
const BYTE_EVERY_MS = 2000;         // one more header byte this often
const ATTACK_MS = 10000;            // how long the slow connections are kept up (reopened when closed)
const GOOD_MS = 1500;               // bound for every normal request during the attack
const SLACK_MS = 4000;              // scheduling margin on a busy 2-core machine for the close after the timeout

/** The soft "Max open files" limit of a process (from /proc), or null when unreadable. */
function fdLimit(pid = "self") {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(fs.readFileSync(`/proc/${pid}/limits`, "utf8"));
    return m ? (m[1] === "unlimited" ? Infinity : Number(m[1])) : null;
  } catch { return null; }
}
const fdCount = (pid) => { try { return fs.readdirSync(`/proc/${pid}/fd`).length; } catch { return -1; } };

after(() => L.cleanup());

describe("slowloris", () => {
  let up, gw, client, sid, skip = "";

  before(async () => {
    const need = N + 200;
    const mine = fdLimit();
    if (mine !== null && mine < need) {
      skip = `this test process may open ${mine} files (ulimit -n), it needs ${need}: raise ulimit -n`;
      return;
    }
    up = await L.startExample({ name: "server1" });
    gw = await L.startGateway({ servers: [{ name: "server1", url: up.url, prefix: "s1_" }],
                                args: ["--header-timeout", String(TIMEOUT_S), "--body-timeout", String(TIMEOUT_S)] });
    const theirs = fdLimit(gw.pid);
    if (theirs !== null && theirs < need) {
      skip = `the gateway may open ${theirs} files (inherited ulimit -n), it needs ${need}: raise ulimit -n`;
      return;
    }
    ({ client } = await L.connect(gw.url));
    ({ sessionId: sid } = await L.rawSession(gw.url));
  });

  /** Runs the attack: N connections that send `partial`, then one byte every BYTE_EVERY_MS; `flag` names the timeout. */
  async function attack(t, partial, flag) {
    const live = new Set();
    const closed = [];           // { lifetime, status }
    let attacking = true, opened = 0, maxLive = 0, refused = 0;

    const open = () => {
      const s = net.connect({ port: gw.port, host: "127.0.0.1" });
      let t0, timer, data = "";
      live.add(s);
      opened++;
      s.on("connect", () => {
        t0 = Date.now();
        maxLive = Math.max(maxLive, live.size);
        s.write(partial);
        timer = setInterval(() => { if (!s.destroyed) s.write("a"); }, BYTE_EVERY_MS);
      });
      s.on("data", (d) => { data += d.toString("latin1"); });
      s.on("error", () => {});
      s.on("close", () => {
        clearInterval(timer);
        live.delete(s);
        if (t0 === undefined) refused++;
        else closed.push({ lifetime: Date.now() - t0, status: Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1]) || null });
        if (attacking) open();
      });
    };

    const baseFds = fdCount(gw.pid);
    // open them in batches (a burst of 500 SYNs would only test the listen backlog)
    for (let i = 0; i < N; i += 50) {
      for (let j = i; j < Math.min(N, i + 50); j++) open();
      await L.sleep(30);
    }
    await L.waitFor(() => maxLive >= N, { timeout: 10000, what: `${N} slow connections open (max so far ${maxLive})` });

    const timings = [], slowOnes = [];
    let maxFds = 0, calls = 0;
    const t0 = Date.now();
    try {
      while (Date.now() - t0 < ATTACK_MS) {
        maxFds = Math.max(maxFds, fdCount(gw.pid));
        // a tools/call on the client's kept-alive connection
        let s = Date.now();
        const text = `during the attack ${calls}`;
        assert.equal(L.textOf(await client.callTool({ name: "s1_echo", arguments: { text } })), text);
        const a = Date.now() - s;
        // a ping on a new TCP connection (the listener still accepts)
        s = Date.now();
        const r = await L.rawHttp(gw.port, { headers: L.mcpHeaders(sid), timeout: 5000,
                                             body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }) });
        const b = Date.now() - s;
        assert.equal(r.status, 200, `ping on a new connection: ${r.error?.message ?? r.status + " " + r.body}`);
        timings.push(a, b);
        if (a > GOOD_MS) slowOnes.push(`tools/call ${a} ms`);
        if (b > GOOD_MS) slowOnes.push(`ping on a new connection ${b} ms`);
        calls++;
        await L.sleep(100);
      }
    } finally {
      attacking = false;
    }
    t.diagnostic(`${opened} slow connections opened, at most ${maxLive} at once, ${refused} refused; gateway fds: ${baseFds} before, ` +
                 `up to ${maxFds} during; ${calls} rounds of requests, slowest ${Math.max(...timings)} ms`);
    assert.deepEqual(slowOnes, [], `requests slower than ${GOOD_MS} ms during the attack`);
    assert.ok(calls >= 10, `only ${calls} rounds of requests in ${ATTACK_MS} ms`);
    assert.ok(maxFds >= baseFds + N * 0.9, `the gateway held the slow connections (${maxFds} fds, ${baseFds} before)`);
    assert.equal(refused, 0, "no slow connection was refused");

    // the attack stops: every connection still open is closed by the gateway within the header timeout
    try {
      await L.waitFor(() => live.size === 0, { timeout: TIMEOUT_S * 1000 + SLACK_MS + 2000,
                                               what: `the gateway to close the last slow connections (${live.size} open)` });
    } finally {
      for (const s of live) s.destroy();
    }
    const lifetimes = closed.map((c) => c.lifetime).sort((x, y) => x - y);
    const statuses = {};
    for (const c of closed) statuses[c.status ?? "close"] = (statuses[c.status ?? "close"] ?? 0) + 1;
    t.diagnostic(`${closed.length} closed by the gateway; lifetimes ${lifetimes[0]}..${lifetimes.at(-1)} ms ` +
                 `(median ${lifetimes[lifetimes.length >> 1]}); answers ${JSON.stringify(statuses)}`);
    assert.ok(closed.length >= 2 * N, `every slow connection closed by the gateway and reopened at least once (${closed.length} closes)`);
    const early = closed.filter((c) => c.lifetime < TIMEOUT_S * 1000 - 300);
    const late = closed.filter((c) => c.lifetime > TIMEOUT_S * 1000 + SLACK_MS);
    assert.equal(early.length, 0, `closed before ${flag}: ${early.slice(0, 5).map((c) => c.lifetime).join(", ")} ms`);
    assert.equal(late.length, 0, `closed later than ${flag} + ${SLACK_MS} ms: ${late.slice(0, 5).map((c) => c.lifetime).join(", ")} ms`);
    const wrong = closed.filter((c) => c.status !== null && c.status !== 408);
    assert.equal(wrong.length, 0, `a slow connection gets 408 or a plain close, not ${wrong.slice(0, 5).map((c) => c.status).join(", ")}`);

    // nothing stays behind
    await L.waitFor(() => fdCount(gw.pid) <= baseFds + 20, { timeout: 5000, what: `the gateway's fds back near ${baseFds} (now ${fdCount(gw.pid)})` });
    const text = "after the attack";
    assert.equal(L.textOf(await client.callTool({ name: "s1_echo", arguments: { text } })), text);
    assert.ok(gw.running(), `gateway exited: ${JSON.stringify(gw.exitInfo)}`);
  }

  test(`${N} connections trickling their headers: normal requests are served meanwhile, each slow one is closed after --header-timeout`, async (t) => {
    if (skip) { t.skip(skip); return; }
    await attack(t, `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${gw.port}\r\nContent-Type: application/json\r\nX-Slow: `, "--header-timeout");
  });

  test(`${N} connections trickling their bodies: normal requests are served meanwhile, each slow one is closed after --body-timeout`, async (t) => {
    if (skip) { t.skip(skip); return; }
    await attack(t, `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${gw.port}\r\nContent-Type: application/json\r\n` +
                    `Accept: ${L.JSON_SSE}\r\nMcp-Session-Id: ${sid}\r\nContent-Length: 100000\r\n\r\n{"jsonrpc":"2.0","x":"`, "--body-timeout");
  });

  after(async () => { await client?.close(); });
});
