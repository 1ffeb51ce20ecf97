// Graceful shutdown: SIGTERM during a slow call — the call completes, new connections are
// refused, /readyz answers 503 at once on a connection that was already open, GET streams are
// told to reconnect, the gateway exits 0 and leaves no child process behind.
import { describe, test, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import * as L from "./lib.mjs";

const BAD_STDIO_JS = path.join(L.ROOT, "tests/servers/bad-stdio.mjs");

/** The process ids of pid's children (every thread's), from /proc. */
function childrenOf(pid) {
  const out = [];
  for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
    try { out.push(...fs.readFileSync(`/proc/${pid}/task/${t}/children`, "utf8").split(/\s+/).filter(Boolean).map(Number)); } catch {}
  }
  return out;
}
const alive = (pid) => { try { process.kill(pid, 0); return true; } catch { return false; } };

/** One keep-alive connection: send a request, read one response's status line. */
function keepAlive(port) {
  const sock = net.connect(port, "127.0.0.1");
  let buf = "";
  const waiters = [];
  let closed = false;
  sock.on("data", (d) => { buf += d; const w = waiters.shift(); if (w) w(); });
  sock.on("close", () => { closed = true; const w = waiters.shift(); if (w) w(); });
  sock.on("error", () => {});
  return {
    ready: new Promise((r) => sock.once("connect", r)),
    async get(p) {
      buf = "";
      const got = new Promise((r) => waiters.push(r));
      sock.write(`GET ${p} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
      if (!closed) await Promise.race([got, L.sleep(5000)]);
      return Number(/^HTTP\/1\.1 (\d+)/.exec(buf)?.[1]) || (closed ? "closed" : "no answer");
    },
    close() { sock.destroy(); },
  };
}

describe("drain on SIGTERM", () => {
  after(() => L.cleanup());

  test("a slow call finishes, new connections are refused, exit 0", async () => {
    const up = await L.startExample({ name: "server1" });
    const gw = await L.startGateway({ servers: [{ name: "example/server1", url: up.url, prefix: "s1_" },
                                                { name: "stdio", prefix: "st_", command: process.execPath, args: [BAD_STDIO_JS] }] });
    const { sessionId } = await L.rawSession(gw.url);
    for (const name of ["example/server1", "stdio"])
      await L.waitFor(async () => (await (await fetch(`${gw.base}/status/${name}`)).json()).ready, { what: `${name} ready` });
    const children = childrenOf(gw.child.pid);
    assert.ok(children.length >= 1, "the stdio server runs as the gateway's child");
    const ka = keepAlive(gw.port);
    await ka.ready;
    assert.equal(await ka.get("/readyz"), 200, "/readyz before the drain");
    // a GET stream, to see its last event
    const get = await fetch(gw.url, { headers: { Accept: "text/event-stream", "Mcp-Session-Id": sessionId,
                                                  "MCP-Protocol-Version": L.PROTOCOL_VERSION } });
    assert.equal(get.status, 200);
    const getText = get.text();
    // a slow call in flight
    const call = L.rpc(gw.url, { jsonrpc: "2.0", id: 7, method: "tools/call",
                                 params: { name: "s1_sleep", arguments: { ms: 1500 } } }, { sessionId });
    await L.sleep(300);
    gw.child.kill("SIGTERM");
    await L.sleep(300);
    // a connection that was open already: /readyz says 503 at once (a load balancer stops sending)
    const rs = await ka.get("/readyz");
    ka.close();
    assert.ok(rs === 503 || rs === "closed", `/readyz while draining: ${rs} (503, or the idle connection closed)`);
    // new connections are refused while the call drains
    await assert.rejects(fetch(`${gw.base}/healthz`), "a new connection during the drain is refused");
    const r = await call;
    assert.equal(r.status, 200);
    assert.equal(L.textOf(r.message?.result), "slept", JSON.stringify(r.message));
    assert.match(await getText, /retry: 1000/, "the GET stream ended with a retry hint");
    const exit = await gw.exited;
    assert.equal(exit.code, 0, `exit ${JSON.stringify(exit)}`);
    await L.waitFor(() => children.every((pid) => !alive(pid)), { timeout: 5000, what: "no child process left" });
  });
});
