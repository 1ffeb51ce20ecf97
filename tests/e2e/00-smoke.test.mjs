// The minimal fast path: gateway + one example server; initialize, tools/list, one call, clean stop.
// Also run under the ASan/UBSan build (make test-asan): sanitizer reports in the logs fail it.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as L from "./lib.mjs";

describe("smoke", () => {
  let up, gw, client, transport;

  before(async () => {
    up = await L.startExample({ name: "server1" });
    gw = await L.startGateway({ servers: [{ name: "example/server1", url: up.url, prefix: "s1_" }] });
  });
  after(async () => {
    await client?.close().catch(() => {});
    await L.cleanup();
  });

  test("initialize through the gateway", async () => {
    ({ client, transport } = await L.connect(gw.url));
    assert.ok(transport.sessionId, "the gateway returned an Mcp-Session-Id");
    assert.ok(client.getServerVersion()?.name, "serverInfo.name present");
    assert.ok(client.getServerCapabilities()?.tools, "tools capability advertised");
  });

  test("tools/list has the prefixed tools of the upstream", async () => {
    const names = await L.waitTools(client, (n) => n.includes("s1_greet"));
    for (const t of ["s1_echo", "s1_greet", "s1_add"]) assert.ok(names.includes(t), `${t} in ${names}`);
    assert.ok(names.every((n) => n.startsWith("s1_")), `all names prefixed: ${names}`);
  });

  test("tools/call reaches the upstream and returns its result", async () => {
    const r = await client.callTool({ name: "s1_greet", arguments: { name: "Smoke" } });
    assert.equal(L.textOf(r), "Hello, Smoke! (from server1)");
    assert.ok(!r.isError);
  });

  test("processes stop cleanly with no sanitizer report", async () => {
    await client.close();
    client = undefined;
    const g = await gw.stop(5000);
    const e = await up.stop(5000);
    const reports = [...L.sanitizerErrors(gw.log()), ...L.sanitizerErrors(up.log())];
    assert.deepEqual(reports, [], `sanitizer reports (see ${gw.logFile}, ${up.logFile})`);
    // a graceful SIGTERM exit (code 0) lets LeakSanitizer run; a death by SIGTERM is accepted too
    for (const [p, i] of [[gw, g], [up, e]])
      assert.ok(i.code === 0 || i.signal === "SIGTERM", `${p.name} stopped by SIGTERM: ${JSON.stringify(i)}; log ${p.logFile}`);
  });
});
