// The whole protocol through the gateway (issue 6): server-everything (prefix ev_) and our C example
// server (prefix s1_) behind one gateway, the official SDK client answering the upstreams' requests
// (sampling, elicitation, roots); logging, progress, prompts, completion, resources and subscriptions,
// cancellation. Then, over raw HTTP: resumption of a call whose SSE response was lost (Last-Event-ID),
// and a GET stream that relays tools/list_changed.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  CreateMessageRequestSchema, ElicitRequestSchema, ListRootsRequestSchema,
  LoggingMessageNotificationSchema, ResourceUpdatedNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";
import * as L from "./lib.mjs";

after(L.cleanup);

// what our client answers
const ROOTS = [{ uri: "file:///work/project", name: "Project" }, { uri: "file:///tmp/scratch", name: "Scratch" }];
const COMPLETION = { model: "fake-model-1", role: "assistant", content: { type: "text", text: "A fake completion from the e2e client." }, stopReason: "endTurn" };
const ELICITED = { name: "Ada Lovelace", check: true, email: "ada@example.com", integer: 7 };

// server-everything registers these only for a client that declared the capability (see below)
const CONDITIONAL = { sampling: "ev_trigger-sampling-request", elicitation: "ev_trigger-elicitation-request", roots: "ev_get-roots-list" };

async function listAll(client, method, key) {
  const out = [];
  let cursor;
  do {
    const r = await client[method](cursor ? { cursor } : undefined);
    out.push(...r[key]);
    cursor = r.nextCursor;
  } while (cursor);
  return out;
}

describe("server-everything and the example server: the protocol both ways", () => {
  let s1, ev, p1, pev, gw, client, toolNames;
  const sampling = [], elicitations = [], rootsRequests = [], logs = [], updates = [];

  /** Wait for a logging notification matching pred (those already received count). */
  const waitLog = (pred, what, timeout = 10000) =>
    L.waitFor(() => logs.find(pred), { timeout, what: `${what}; got ${JSON.stringify(logs)}` });
  const skipUnlessListed = (t, name) => {
    if (toolNames.includes(name)) return false;
    // The gateway lists each upstream's tools from its own control session, initialized with no client
    // capabilities (src/upmgr.c, "capabilities": {}), so server-everything never registers its
    // capability-dependent tools there and tools/call rejects them (-32602 Unknown tool).
    t.skip(`${name} is not in the gateway's tools/list (the gateway's control session declares no client capabilities)`);
    return true;
  };

  before(async () => {
    [s1, ev] = await Promise.all([L.startExample({ name: "server1" }), L.startEverything()]);
    // counting proxies in front of both upstreams: which upstream got which notifications/cancelled
    [p1, pev] = await Promise.all([L.startCountingProxy(s1.url), L.startCountingProxy(ev.url)]);
    gw = await L.startGateway({ servers: [
      { name: "example/server1", url: p1.url, prefix: "s1_" },
      { name: "everything", url: pev.url, prefix: "ev_" },
    ] });
    ({ client } = await L.connect(gw.url, { capabilities: { sampling: {}, elicitation: { form: {} }, roots: { listChanged: true } } }));
    // handlers are set before any ev_ request: the upstream session of server-everything is created
    // lazily, on this client session's first ev_ request, and asks for roots 350 ms after it
    client.setRequestHandler(CreateMessageRequestSchema, async (r) => { sampling.push(r.params); return COMPLETION; });
    client.setRequestHandler(ElicitRequestSchema, async (r) => { elicitations.push(r.params); return { action: "accept", content: ELICITED }; });
    client.setRequestHandler(ListRootsRequestSchema, async (r) => { rootsRequests.push(r.params ?? {}); return { roots: ROOTS }; });
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => { logs.push(n.params); });
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => { updates.push(n.params); });
    toolNames = await L.waitTools(client, (n) => n.includes("s1_slow") && n.includes("ev_trigger-long-running-operation"),
                                  { what: "tools of both upstreams" });
    // the first request to each upstream creates this session's upstream session (with our capabilities)
    assert.equal(L.textOf(await client.callTool({ name: "ev_echo", arguments: { message: "first" } })), "Echo: first");
    assert.equal(L.textOf(await client.callTool({ name: "s1_echo", arguments: { text: "first" } })), "first");
  });
  after(async () => {
    await client?.close().catch(() => {});
    await Promise.all([p1?.close(), pev?.close()]);
  });

  test("capabilities: the gateway announces what it federates", () => {
    const caps = client.getServerCapabilities();
    assert.ok(caps?.tools, "tools");
    assert.ok(caps?.prompts, "prompts");
    assert.equal(caps?.resources?.subscribe, true, "resources.subscribe");
    assert.ok(caps?.logging, "logging");
    assert.ok(caps?.completions, "completions");
  });

  test("roots: server-everything's own roots/list reaches our handler (GET stream) and its answer goes back", async () => {
    await L.waitFor(() => rootsRequests.length >= 1, { timeout: 10000, what: "roots/list from server-everything at the client" });
    const msg = await waitLog((l) => /^Roots updated: /.test(String(l.data)), "server-everything's log of the roots it received");
    assert.deepEqual(msg, { level: "info", logger: "everything-server", data: `Roots updated: ${ROOTS.length} root(s) received from client` });
  });

  test("roots: notifications/roots/list_changed reaches the upstream, which asks again", async () => {
    await L.waitFor(() => rootsRequests.length >= 1, { what: "the initial roots/list" });
    const before = rootsRequests.length;
    const logsBefore = logs.filter((l) => /^Roots updated: /.test(String(l.data))).length;
    await client.sendRootsListChanged();
    await L.waitFor(() => rootsRequests.length > before, { what: "a new roots/list after roots/list_changed" });
    await L.waitFor(() => logs.filter((l) => /^Roots updated: /.test(String(l.data))).length > logsBefore,
                    { what: "server-everything's log of the new roots" });
    assert.deepEqual(await client.ping(), {}, "the gateway is healthy afterwards");
  });

  test("roots: get-roots-list reports our roots", async (t) => {
    if (skipUnlessListed(t, CONDITIONAL.roots)) return;
    const r = await client.callTool({ name: CONDITIONAL.roots, arguments: {} });
    assert.ok(L.textOf(r).startsWith(`Current MCP Roots (2 total):\n\n1. Project\n   URI: file:///work/project\n\n2. Scratch\n   URI: file:///tmp/scratch\n\n`),
              L.textOf(r));
  });

  test("sampling: trigger-sampling-request returns our fake completion", async (t) => {
    if (skipUnlessListed(t, CONDITIONAL.sampling)) return;
    const n = sampling.length;
    const r = await client.callTool({ name: CONDITIONAL.sampling, arguments: { prompt: "Say hi", maxTokens: 42 } });
    assert.equal(sampling.length, n + 1, "one sampling/createMessage at the client");
    assert.deepEqual(sampling[n].messages, [{ role: "user", content: { type: "text", text: "Resource trigger-sampling-request context: Say hi" } }]);
    assert.equal(sampling[n].maxTokens, 42);
    assert.equal(sampling[n].systemPrompt, "You are a helpful test server.");
    const text = L.textOf(r);
    const prefix = "LLM sampling result: \n";
    assert.ok(text.startsWith(prefix), text);
    assert.deepEqual(JSON.parse(text.slice(prefix.length)), COMPLETION);
  });

  test("elicitation: trigger-elicitation-request returns the values we accepted", async (t) => {
    if (skipUnlessListed(t, CONDITIONAL.elicitation)) return;
    const n = elicitations.length;
    const r = await client.callTool({ name: CONDITIONAL.elicitation, arguments: {} });
    assert.equal(elicitations.length, n + 1, "one elicitation/create at the client");
    assert.equal(elicitations[n].message, "Please provide inputs for the following fields:");
    assert.deepEqual(elicitations[n].requestedSchema.required, ["name"]);
    const texts = r.content.map((c) => c.text);
    assert.equal(texts[0], "✅ User provided the requested information!");
    assert.equal(texts[1], "User inputs:\n- Name: Ada Lovelace\n- Agreed to terms: true\n- Email: ada@example.com\n- Favorite Integer: 7");
    assert.deepEqual(JSON.parse(texts[2].replace(/^\nRaw result: /, "")), { action: "accept", content: ELICITED });
  });

  test("logging: logging/setLevel reaches every upstream; a call's log messages reach the client", async () => {
    // The gateway answers logging/setLevel at once and sends it to the upstreams on its own (src/mcp.c
    // do_set_level → relay_set_level_all), so a call made right after the answer can still reach an
    // upstream before the new level does: wait until both upstreams have been sent it.
    const setLevel = async (level) => {
      const since = Date.now();
      assert.deepEqual(await client.setLoggingLevel(level), {});
      const sent = (p) => p.requests.some((r) => r.at >= since && r.rpc.includes("logging/setLevel") && JSON.parse(r.body).params?.level === level);
      await L.waitFor(() => sent(p1) && sent(pev), { what: `logging/setLevel ${level} at both upstreams` });
      await L.sleep(100);
    };
    await setLevel("debug");
    const slowLog = (l) => l.logger === "server1" && /^slow: starting /.test(String(l.data));
    let n = logs.filter(slowLog).length;
    assert.equal(L.textOf(await client.callTool({ name: "s1_slow", arguments: { steps: 1, delay_ms: 10 } })), "done after 1 steps");
    await L.waitFor(() => logs.filter(slowLog).length > n, { what: "the example server's log message of s1_slow" });
    assert.deepEqual(logs.filter(slowLog).at(-1), { level: "info", logger: "server1", data: "slow: starting 1 steps, 10 ms apart" });

    // above info: the example server must drop it (the level went to the upstream session)
    try {
      await setLevel("warning");
      n = logs.filter(slowLog).length;
      assert.equal(L.textOf(await client.callTool({ name: "s1_slow", arguments: { steps: 1, delay_ms: 10 } })), "done after 1 steps");
      await L.sleep(200);
      assert.equal(logs.filter(slowLog).length, n, `no info message at level warning: ${JSON.stringify(logs.slice(-3))}`);
    } finally {
      await setLevel("debug");
    }

    // server-everything logs outside calls (its GET stream): once at once, then every 5 s
    const evLog = (l) => /level[- ]message - SessionId /.test(String(l.data));
    const on = await client.callTool({ name: "ev_toggle-simulated-logging", arguments: {} });
    assert.match(L.textOf(on), /^Started simulated, random-leveled logging for session /);
    const m = await waitLog(evLog, "a simulated log message from server-everything");
    assert.ok(["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"].includes(m.level), JSON.stringify(m));
    const off = await client.callTool({ name: "ev_toggle-simulated-logging", arguments: {} });
    assert.match(L.textOf(off), /^Stopped simulated logging for session /);
  });

  test("progress: trigger-long-running-operation, notifications in order, then the result", async () => {
    const seen = [];
    const r = await client.callTool({ name: "ev_trigger-long-running-operation", arguments: { duration: 0.6, steps: 3 } },
                                    undefined, { onprogress: (p) => seen.push(p) });
    assert.equal(L.textOf(r), "Long running operation completed. Duration: 0.6 seconds, Steps: 3.");
    assert.deepEqual(seen.map((p) => [p.progress, p.total]), [[1, 3], [2, 3], [3, 3]]);
  });

  test("progress: the client's progress tokens come back unchanged (raw, string and integer tokens)", async () => {
    const { sessionId } = await L.rawSession(gw.url);
    const cases = [
      { id: 11, name: "ev_trigger-long-running-operation", arguments: { duration: 0.3, steps: 3 }, token: "tok-\u00e9v/11 ✓",
        result: "Long running operation completed. Duration: 0.3 seconds, Steps: 3." },
      { id: "call-12", name: "s1_slow", arguments: { steps: 3, delay_ms: 30 }, token: 987654321012, result: "done after 3 steps" },
    ];
    await Promise.all(cases.map(async (c) => {
      const r = await L.rpc(gw.url, { jsonrpc: "2.0", id: c.id, method: "tools/call",
                                      params: { name: c.name, arguments: c.arguments, _meta: { progressToken: c.token } } }, { sessionId });
      assert.equal(r.status, 200);
      const progress = r.messages.filter((m) => m.method === "notifications/progress");
      assert.deepEqual(progress.map((m) => m.params.progressToken), [c.token, c.token, c.token], `${c.name}: tokens`);
      assert.deepEqual(progress.map((m) => [m.params.progress, m.params.total]), [[1, 3], [2, 3], [3, 3]], `${c.name}: order`);
      const last = r.messages.at(-1);
      assert.equal(last.id, c.id, `${c.name}: the result comes last, with the client's id`);
      assert.equal(L.textOf(last.result), c.result);
    }));
  });

  test("prompts: prompts/list has the ev_ prompts, prompts/get returns the exact messages", async () => {
    const prompts = await listAll(client, "listPrompts", "prompts");
    assert.deepEqual(prompts.map((p) => p.name).sort(), ["ev_args-prompt", "ev_completable-prompt", "ev_resource-prompt", "ev_simple-prompt"]);
    const args = prompts.find((p) => p.name === "ev_args-prompt");
    assert.deepEqual(args.arguments.map((a) => [a.name, a.required]), [["city", true], ["state", false]]);
    assert.deepEqual(await client.getPrompt({ name: "ev_args-prompt", arguments: { city: "Paris", state: "TX" } }),
                     { messages: [{ role: "user", content: { type: "text", text: "What's weather in Paris, TX?" } }] });
    assert.deepEqual(await client.getPrompt({ name: "ev_simple-prompt" }),
                     { messages: [{ role: "user", content: { type: "text", text: "This is a simple prompt without arguments." } }] });
    assert.deepEqual(await client.getPrompt({ name: "ev_completable-prompt", arguments: { department: "Sales", name: "Eve" } }),
                     { messages: [{ role: "user", content: { type: "text", text: "Please promote Eve to the head of the Sales team." } }] });
    await assert.rejects(client.getPrompt({ name: "args-prompt", arguments: { city: "Paris" } }), (e) => e.code === -32602, "unprefixed name");
  });

  test("completion/complete: prompt arguments (with context) and a resource template", async () => {
    const dep = await client.complete({ ref: { type: "ref/prompt", name: "ev_completable-prompt" }, argument: { name: "department", value: "S" } });
    assert.deepEqual(dep.completion.values, ["Sales", "Support"]);
    const who = await client.complete({ ref: { type: "ref/prompt", name: "ev_completable-prompt" }, argument: { name: "name", value: "" },
                                        context: { arguments: { department: "Engineering" } } });
    assert.deepEqual(who.completion.values, ["Alice", "Bob", "Charlie"]);
    const templates = await listAll(client, "listResourceTemplates", "resourceTemplates");
    const text = templates.find((t) => t.name === "Dynamic Text Resource");
    assert.ok(text, `the text template in ${JSON.stringify(templates)}`);
    const id = await client.complete({ ref: { type: "ref/resource", uri: text.uriTemplate }, argument: { name: "resourceId", value: "7" } });
    assert.deepEqual(id.completion.values, ["7"]);
  });

  test("resources: list, templates, read", async () => {
    const resources = await listAll(client, "listResources", "resources");
    assert.ok(resources.length > 0, "resources/list is not empty");
    // unique URIs are left as they are (docs/architecture.md)
    const arch = resources.find((r) => r.name === "architecture.md");
    assert.equal(arch?.uri, "demo://resource/static/document/architecture.md", JSON.stringify(resources));
    const templates = await listAll(client, "listResourceTemplates", "resourceTemplates");
    assert.deepEqual(templates.map((t) => t.uriTemplate).sort(), ["demo://resource/dynamic/blob/{resourceId}", "demo://resource/dynamic/text/{resourceId}"]);

    for (const r of resources) {
      const c = await client.readResource({ uri: r.uri });
      assert.equal(c.contents.length, 1, r.uri);
      assert.equal(c.contents[0].uri, r.uri);
      assert.equal(c.contents[0].mimeType, r.mimeType);
      assert.ok(c.contents[0].text.length > 0, `${r.uri} has text`);
    }
    const a = await client.readResource({ uri: arch.uri });
    assert.match(a.contents[0].text, /^# Everything Server – Architecture\n/);
    const t3 = await client.readResource({ uri: "demo://resource/dynamic/text/3" });
    assert.equal(t3.contents[0].uri, "demo://resource/dynamic/text/3");
    assert.match(t3.contents[0].text, /^Resource 3: This is a plaintext resource created at /);
    await assert.rejects(client.readResource({ uri: "demo://no/such/resource" }), "an unknown URI is an error");
  });

  test("resources: subscribe → notifications/resources/updated on the GET stream; unsubscribe", async () => {
    const uri = "demo://resource/static/document/features.md";
    assert.deepEqual(await client.subscribeResource({ uri }), {});
    await waitLog((l) => String(l.data).startsWith(`Received Subscribe Resource request for URI: ${uri} `), "server-everything's log of our subscription");
    const n = updates.length;
    // server-everything sends updates for subscribed resources once when toggled on, then every 5 s
    assert.match(L.textOf(await client.callTool({ name: "ev_toggle-subscriber-updates", arguments: {} })),
                 /^Started simulated resource updated notifications for session /);
    await L.waitFor(() => updates.slice(n).some((u) => u.uri === uri), { timeout: 12000, what: `notifications/resources/updated for ${uri}` });
    assert.deepEqual(updates.slice(n).find((u) => u.uri === uri), { uri });
    assert.deepEqual(await client.unsubscribeResource({ uri }), {});
    await waitLog((l) => String(l.data).startsWith(`Received Unsubscribe Resource request: ${uri} `), "server-everything's log of our unsubscription");
    assert.match(L.textOf(await client.callTool({ name: "ev_toggle-subscriber-updates", arguments: {} })),
                 /^Stopped simulated resource updates for session /);
  });

  test("notifications/cancelled: an aborted call is rejected, forwarded to its upstream only, the gateway stays healthy", async () => {
    const cancelsBefore = { s1: p1.count("notifications/cancelled"), ev: pev.count("notifications/cancelled") };
    // the example server: abort a sleep
    const ac = new AbortController();
    const call = client.callTool({ name: "s1_sleep", arguments: { ms: 5000 } }, undefined, { signal: ac.signal });
    await L.waitFor(() => p1.requests.some((r) => r.rpc.includes("tools/call") && r.body.includes('"sleep"')), { what: "the sleep call upstream" });
    ac.abort("changed my mind");
    await assert.rejects(call, "the aborted call is rejected at the client");
    await L.waitFor(() => p1.count("notifications/cancelled") > cancelsBefore.s1, { what: "notifications/cancelled at the example server" });
    const up = JSON.parse(p1.requests.find((r) => r.rpc.includes("tools/call") && r.body.includes('"sleep"')).body);
    const cancel = JSON.parse(p1.requests.filter((r) => r.rpc.includes("notifications/cancelled")).at(-1).body);
    assert.deepEqual(cancel.params.requestId, up.id, "the upstream's own request id");
    assert.equal(pev.count("notifications/cancelled"), cancelsBefore.ev, "nothing sent to the other upstream");

    // server-everything: abort a long-running operation after its first progress
    const ac2 = new AbortController();
    let progressed = 0;
    const call2 = client.callTool({ name: "ev_trigger-long-running-operation", arguments: { duration: 4, steps: 8 } }, undefined,
                                  { signal: ac2.signal, onprogress: () => { progressed++; } });
    await L.waitFor(() => progressed >= 1, { what: "the first progress notification" });
    ac2.abort("enough");
    await assert.rejects(call2);
    await L.waitFor(() => pev.count("notifications/cancelled") > cancelsBefore.ev, { what: "notifications/cancelled at server-everything" });
    const cancelEv = JSON.parse(pev.requests.filter((r) => r.rpc.includes("notifications/cancelled")).at(-1).body);
    const upEv = pev.requests.filter((r) => r.rpc.includes("tools/call")).map((r) => JSON.parse(r.body))
      .find((m) => m.params?.name === "trigger-long-running-operation" && m.params?.arguments?.steps === 8);
    assert.deepEqual(cancelEv.params.requestId, upEv.id, "the upstream's own request id");

    assert.deepEqual(await client.ping(), {});
    assert.equal(L.textOf(await client.callTool({ name: "s1_echo", arguments: { text: "still here" } })), "still here");
    assert.equal(L.textOf(await client.callTool({ name: "ev_echo", arguments: { message: "still here" } })), "Echo: still here");
    const r = await fetch(`${gw.base}/healthz`);
    assert.equal(r.status, 200);
  });
});

// ---------------------------------------------------------------- raw HTTP: resumability and GET streams

const toolCall = (id, name, args, token) => ({ jsonrpc: "2.0", id, method: "tools/call",
  params: { name, arguments: args, ...(token !== undefined ? { _meta: { progressToken: token } } : {}) } });

async function postSse(gw, sessionId, body, signal) {
  const res = await fetch(gw.url, { method: "POST", headers: L.mcpHeaders(sessionId), body: JSON.stringify(body), signal });
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/event-stream/);
  return L.sseReader(res);
}

describe("resumability: a lost SSE response resumed with Last-Event-ID", () => {
  let s1, gw;

  before(async () => {
    s1 = await L.startExample({ name: "server1" });
    gw = await L.startGateway({ logName: "gateway-resume", servers: [{ name: "example/server1", url: s1.url, prefix: "s1_" }] });
    const { sessionId } = await L.rawSession(gw.url);
    await L.waitFor(async () => (await L.rpc(gw.url, { jsonrpc: "2.0", id: 1, method: "tools/list" }, { sessionId }))
      .message?.result?.tools?.some((t) => t.name === "s1_slow"), { what: "s1_slow listed" });
  });

  test("the call goes on; GET with Last-Event-ID delivers the rest and the result exactly once", async () => {
    const { sessionId } = await L.rawSession(gw.url);
    const ID = 4242, TOKEN = "resume-token-1";
    const ac = new AbortController();
    const post = await postSse(gw, sessionId, toolCall(ID, "s1_slow", { steps: 5, delay_ms: 300 }, TOKEN), ac.signal);

    // 2025-11-25: the stream starts with a priming event (an id, empty data) and retry
    const first = await post.next();
    assert.match(first.id ?? "", /^[^/\s]+\/0$/, `priming event id: ${JSON.stringify(first)}`);
    assert.equal(first.data, "", "priming event: empty data");
    assert.ok(first.retry > 0, "priming event: retry");
    const stream = first.id.slice(0, first.id.lastIndexOf("/"));

    const firstProgress = await post.nextMessage((m) => m.method === "notifications/progress", { what: "the first progress" });
    ac.abort();   // the connection drops mid-call
    const before = post.events;
    for (const e of before) assert.match(e.id ?? "", new RegExp(`^${stream.replace(/[.]/g, "\\.")}/\\d+$`), `every event has an id: ${JSON.stringify(e)}`);
    const lastId = firstProgress.id;
    const seenSeq = before.map((e) => Number(e.id.split("/").pop()));
    assert.deepEqual(seenSeq, seenSeq.map((_, i) => i), "ids count up from the priming event");

    const { res, sse } = await L.openGetStream(gw.url, sessionId, { lastEventId: lastId });
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/event-stream/);
    const result = await sse.nextMessage((m) => m.id === ID, { timeout: 10000, what: `the result of request ${ID}` });
    // nothing more for this call may follow (no duplicate result)
    await sse.next({ timeout: 600 }).catch(() => {});
    sse.cancel();

    const after = sse.events.filter((e) => e.id?.startsWith(`${stream}/`));
    const afterSeq = after.map((e) => Number(e.id.split("/").pop()));
    assert.deepEqual(afterSeq, afterSeq.map((_, i) => seenSeq.at(-1) + 1 + i),
                     `resumed events continue the call's ids with no gap or repeat: before ${JSON.stringify(before.map((e) => e.id))}, after ${JSON.stringify(after.map((e) => e.id))}`);
    const ids = [...before, ...after].map((e) => e.id);
    assert.equal(new Set(ids).size, ids.length, `no event twice: ${ids}`);

    const progress = [...before, ...after].filter((e) => e.json?.method === "notifications/progress").map((e) => e.json.params);
    assert.deepEqual(progress.map((p) => p.progress), [1, 2, 3, 4, 5], `every step exactly once: ${JSON.stringify(progress)}`);
    assert.ok(progress.every((p) => p.progressToken === TOKEN && p.total === 5), JSON.stringify(progress));
    assert.equal(sse.events.filter((e) => e.json?.id === ID).length, 1, "the result exactly once");
    assert.equal(result.json.jsonrpc, "2.0");
    assert.equal(L.textOf(result.json.result), "done after 5 steps");
    assert.equal(after.at(-1), result, "the result is the call's last event");
  });

  test("Last-Event-ID of an unknown stream replays nothing; the stream stays usable", async () => {
    const { sessionId } = await L.rawSession(gw.url);
    const { res, sse } = await L.openGetStream(gw.url, sessionId, { lastEventId: "no-such-stream/3" });
    assert.equal(res.status, 200);
    const prime = await sse.next();
    assert.match(prime.id ?? "", /\/0$/, `a fresh priming event: ${JSON.stringify(prime)}`);
    assert.equal(prime.data, "");
    await assert.rejects(sse.next({ timeout: 400 }), /no event/, "nothing replayed");
    // still usable: a list_changed reaches it
    try {
      assert.equal(L.textOf((await L.rpc(gw.url, toolCall(2, "s1_toggle", {}), { sessionId })).message.result), "tool list changed");
      await sse.nextMessage((m) => m.method === "notifications/tools/list_changed", { what: "tools/list_changed" });
    } finally {
      await L.rpc(gw.url, toolCall(3, "s1_toggle", {}), { sessionId });
      sse.cancel();
    }
    assert.deepEqual((await L.rpc(gw.url, { jsonrpc: "2.0", id: 4, method: "ping" }, { sessionId })).message.result, {});
  });
});

describe("a GET stream relays tools/list_changed", () => {
  let s1, gw;

  before(async () => {
    s1 = await L.startExample({ name: "server1" });
    gw = await L.startGateway({ logName: "gateway-get", servers: [{ name: "example/server1", url: s1.url, prefix: "s1_" }] });
  });

  test("s1_toggle → notifications/tools/list_changed on the open GET stream, and the list follows", async () => {
    const { sessionId } = await L.rawSession(gw.url);
    const list = async () => (await L.rpc(gw.url, { jsonrpc: "2.0", id: 9, method: "tools/list" }, { sessionId })).message?.result?.tools?.map((t) => t.name) ?? [];
    await L.waitFor(async () => (await list()).includes("s1_toggle"), { what: "s1_toggle listed" });
    const { res, sse } = await L.openGetStream(gw.url, sessionId);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/event-stream/);
    try {
      assert.equal(L.textOf((await L.rpc(gw.url, toolCall(10, "s1_toggle", {}), { sessionId })).message.result), "tool list changed");
      const ev = await sse.nextMessage((m) => m.method === "notifications/tools/list_changed", { what: "tools/list_changed (on)" });
      assert.deepEqual(ev.json, { jsonrpc: "2.0", method: "notifications/tools/list_changed" });
      assert.ok((await list()).includes("s1_surprise"), "s1_surprise listed once announced");
      assert.equal(L.textOf((await L.rpc(gw.url, toolCall(11, "s1_toggle", {}), { sessionId })).message.result), "tool list changed");
      await sse.nextMessage((m) => m.method === "notifications/tools/list_changed", { what: "tools/list_changed (off)" });
      assert.ok(!(await list()).includes("s1_surprise"), "s1_surprise gone once announced");
    } finally {
      sse.cancel();
    }
  });
});
