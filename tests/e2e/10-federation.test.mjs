// Federation: two upstreams (our C example server and the reference server-everything) behind one
// gateway; prefixed lists, calls with exact results, progress, unknown tools, list_changed, conflicts.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { McpError, ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import * as L from "./lib.mjs";

const S1_TOOLS = ["s1_echo", "s1_greet", "s1_add", "s1_headers", "s1_slow", "s1_fail", "s1_toggle", "s1_sleep"];
// server-everything's tools that do not depend on the client's capabilities
const EV_TOOLS = ["ev_echo", "ev_get-sum", "ev_trigger-long-running-operation", "ev_get-structured-content",
                  "ev_get-tiny-image", "ev_get-annotated-message"];

after(L.cleanup);

describe("federation of two upstreams", () => {
  let s1, ev, gw, client, transport;
  let listChanged = 0;

  before(async () => {
    [s1, ev] = await Promise.all([L.startExample({ name: "server1" }), L.startEverything()]);
    gw = await L.startGateway({ servers: [
      { name: "example/server1", url: s1.url, prefix: "s1_" },
      { name: "everything", url: ev.url, prefix: "ev_" },
    ] });
    ({ client, transport } = await L.connect(gw.url));
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => { listChanged++; });
    await L.waitTools(client, (n) => n.includes("s1_greet") && n.includes("ev_get-sum"),
                      { what: "tools of both upstreams" });
  });
  after(() => client?.close().catch(() => {}));

  test("initialize: session id, server info, tools capability", () => {
    assert.match(transport.sessionId ?? "", /^[\x21-\x7e]{16,}$/, "visible-ASCII session id of reasonable length");
    assert.ok(client.getServerVersion()?.name);
    assert.ok(client.getServerCapabilities()?.tools);
    assert.equal(transport.protocolVersion, L.PROTOCOL_VERSION);
  });

  test("tools/list has the prefixed tools of both upstreams and nothing unprefixed", async () => {
    const tools = await L.listAllTools(client);
    const names = tools.map((t) => t.name);
    for (const t of [...S1_TOOLS, ...EV_TOOLS]) assert.ok(names.includes(t), `${t} missing from ${names}`);
    assert.ok(names.every((n) => n.startsWith("s1_") || n.startsWith("ev_")), `unprefixed names in ${names}`);
    assert.equal(new Set(names).size, names.length, "no duplicates");
    // schemas and descriptions come through untouched
    const sum = tools.find((t) => t.name === "ev_get-sum");
    assert.deepEqual(Object.keys(sum.inputSchema.properties).sort(), ["a", "b"]);
    assert.equal(sum.description, "Returns the sum of two numbers");
    const greet = tools.find((t) => t.name === "s1_greet");
    assert.ok(greet.inputSchema?.properties?.name, "s1_greet has its name argument");
  });

  test("calls on the example server return exact results", async () => {
    assert.equal(L.textOf(await client.callTool({ name: "s1_echo", arguments: { text: "hello gateway" } })), "hello gateway");
    assert.equal(L.textOf(await client.callTool({ name: "s1_greet", arguments: { name: "Ada" } })), "Hello, Ada! (from server1)");
    const add = await client.callTool({ name: "s1_add", arguments: { a: 2, b: 3 } });
    assert.equal(L.textOf(add), "5");
    assert.deepEqual(add.structuredContent, { sum: 5 });
    const fail = await client.callTool({ name: "s1_fail", arguments: {} });
    assert.equal(fail.isError, true, "tool error result passed through as isError");
  });

  test("arguments and results pass through unchanged (unicode, escapes, 256 KiB)", async () => {
    for (const text of ["h\u00e9llo w\u00f6rld \u2713 \ud83d\ude80", 'quotes " \\ backslash \n newline \t tab </script>', "x".repeat(256 * 1024)]) {
      const r = await client.callTool({ name: "s1_echo", arguments: { text } });
      assert.equal(L.textOf(r), text, `echo of ${text.length} chars`);
    }
  });

  test("calls on server-everything return exact results", async () => {
    assert.equal(L.textOf(await client.callTool({ name: "ev_echo", arguments: { message: "hi there" } })), "Echo: hi there");
    assert.equal(L.textOf(await client.callTool({ name: "ev_get-sum", arguments: { a: 2, b: 3 } })), "The sum of 2 and 3 is 5.");
  });

  test("the upstream sees its own session, not the client's", async () => {
    const r = await client.callTool({ name: "s1_headers", arguments: {} });
    const hdrs = Object.fromEntries(Object.entries(JSON.parse(L.textOf(r))).map(([k, v]) => [k.toLowerCase(), v]));
    assert.notEqual(hdrs["mcp-session-id"], transport.sessionId, "client session id must not be forwarded upstream");
  });

  test("progress notifications of a slow call reach the client in order (example server)", async () => {
    const seen = [];
    const r = await client.callTool({ name: "s1_slow", arguments: { steps: 4, delay_ms: 80 } }, undefined,
                                    { onprogress: (p) => seen.push(p) });
    assert.equal(L.textOf(r), "done after 4 steps");
    assert.equal(seen.length, 4, `4 progress notifications, got ${JSON.stringify(seen)}`);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i].progress > seen[i - 1].progress, `increasing: ${JSON.stringify(seen)}`);
  });

  test("progress notifications of a slow call reach the client in order (server-everything)", async () => {
    const seen = [];
    const r = await client.callTool({ name: "ev_trigger-long-running-operation", arguments: { duration: 0.6, steps: 3 } },
                                    undefined, { onprogress: (p) => seen.push(p) });
    assert.equal(L.textOf(r), "Long running operation completed. Duration: 0.6 seconds, Steps: 3.");
    assert.deepEqual(seen.map((p) => [p.progress, p.total]), [[1, 3], [2, 3], [3, 3]]);
  });

  test("concurrent calls to both upstreams are answered correctly", async () => {
    const calls = [];
    for (let i = 0; i < 5; i++) {
      calls.push(client.callTool({ name: "s1_add", arguments: { a: i, b: 100 } }).then((r) => assert.deepEqual(r.structuredContent, { sum: i + 100 })));
      calls.push(client.callTool({ name: "ev_get-sum", arguments: { a: i, b: 1 } }).then((r) => assert.equal(L.textOf(r), `The sum of ${i} and 1 is ${i + 1}.`)));
    }
    calls.push(client.callTool({ name: "s1_slow", arguments: { steps: 2, delay_ms: 50 } }).then((r) => assert.equal(L.textOf(r), "done after 2 steps")));
    await Promise.all(calls);
  });

  test("unknown tool -> JSON-RPC error -32602", async () => {
    for (const name of ["no_such_tool", "s1_no_such_tool", "echo"]) {
      await assert.rejects(client.callTool({ name, arguments: {} }),
        (e) => { assert.ok(e instanceof McpError, `${name}: McpError, got ${e}`); assert.equal(e.code, -32602, `${name}: ${e.message}`); return true; });
    }
  });

  test("ping is answered", async () => {
    assert.deepEqual(await client.ping(), {});
  });

  test("an upstream's tools/list_changed is relayed and the list updated", async () => {
    const before = listChanged;
    await client.callTool({ name: "s1_toggle", arguments: {} });   // adds "surprise"
    await L.waitTools(client, (n) => n.includes("s1_surprise"), { what: "s1_surprise to appear" });
    await L.waitFor(() => listChanged > before, { what: "notifications/tools/list_changed at the client" });
    await client.callTool({ name: "s1_toggle", arguments: {} });   // removes it again
    await L.waitTools(client, (n) => !n.includes("s1_surprise"), { what: "s1_surprise to disappear" });
  });
});

describe("tool name conflicts", () => {
  let a, b, c, gw, client;

  before(async () => {
    [a, b, c] = await Promise.all([L.startExample({ name: "a" }), L.startExample({ name: "b" }), L.startExample({ name: "c" })]);
    gw = await L.startGateway({ logName: "gateway-conflicts", servers: [
      { name: "conflict/a", url: a.url, prefix: "x_" },
      { name: "conflict/b", url: b.url, prefix: "x_" },     // same prefix, same tools: loses to conflict/a
      { name: "conflict/c", url: c.url, prefix: "c_" },
    ] });
    ({ client } = await L.connect(gw.url));
    await L.waitTools(client, (n) => n.includes("x_greet") && n.includes("c_greet"), { what: "tools of a and c" });
  });
  after(() => client?.close().catch(() => {}));

  test("each federated name is listed once", async () => {
    const names = (await L.listAllTools(client)).map((t) => t.name);
    assert.equal(new Set(names).size, names.length, `duplicates in ${names}`);
    assert.equal(names.filter((n) => n === "x_greet").length, 1);
  });

  test("the earlier server in the config wins", async () => {
    // give the gateway a moment to have heard from every upstream, then check it stays that way
    await L.sleep(500);
    assert.equal(L.textOf(await client.callTool({ name: "x_greet", arguments: { name: "Bo" } })), "Hello, Bo! (from a)");
    assert.equal(L.textOf(await client.callTool({ name: "c_greet", arguments: { name: "Bo" } })), "Hello, Bo! (from c)");
  });

  test("/status reports the toolConflicts", async () => {
    const r = await fetch(`${gw.base}/status`);
    assert.equal(r.status, 200);
    const st = await r.json();
    assert.ok("toolConflicts" in st, `toolConflicts in ${JSON.stringify(st)}`);
    const conflicts = JSON.stringify(st.toolConflicts);
    assert.ok(st.toolConflicts && (Array.isArray(st.toolConflicts) ? st.toolConflicts.length : Object.keys(st.toolConflicts).length),
      `non-empty toolConflicts: ${conflicts}`);
    assert.match(conflicts, /x_greet/, "names the conflicting tool");
    assert.match(conflicts, /conflict\/b/, "names the losing server");
  });
});
