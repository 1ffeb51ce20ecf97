// Authorization (docs/authorization.md): the seed's Keycloak roles convention, declarative rules, virtual servers
// (header and path form) that restrict calls too, the trusted x-mcp-authorized header, the audit log, and
// --check-config on a rule naming an unknown server. Tokens come from the dev IdP (examples/idp/dev-idp.mjs):
//   gw-test    the user mcp's claims: groups mcp-users, accounting, engineering;
//              roles example/server1: tool:greet, tool:echo; example/server2: tool:add
//   gw-dev     the user dev's claims: groups mcp-users, engineering; realm role developer;
//              roles example/server1: tool:echo, tool:headers; example/server2: tool:greet, tool:slow
//   gw-test-2  no groups, no roles (sub gw-test-2)
// Counting proxies sit in front of every upstream: a refused call must reach none of them.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { SignJWT, generateKeyPair, exportSPKI } from "jose";
import * as L from "./lib.mjs";

after(L.cleanup);

const FORBIDDEN = '{"error":"Forbidden","message":"MCP Access denied: Insufficient permissions."}';
const EXAMPLE_TOOLS = ["add", "echo", "fail", "greet", "headers", "sleep", "slow", "toggle"];
const CLIENTS = {
  mcp: { clientId: "gw-test", secret: "gw-test-secret" },
  dev: { clientId: "gw-dev", secret: "gw-dev-secret" },
  none: { clientId: "gw-test-2", secret: "gw-test-2-secret" },
};
const s1 = (...n) => n.map((x) => `s1_${x}`);
const s2 = (...n) => n.map((x) => `s2_${x}`);
const sorted = (a) => [...a].sort();

let idp, ex1, ex2, ev, p1, p2, pe;
const SERVERS = () => [
  { name: "example/server1", url: p1.url, prefix: "s1_" },
  { name: "example/server2", url: p2.url, prefix: "s2_" },
];

before(async () => {
  [idp, ex1, ex2, ev] = await Promise.all([L.startIdp(), L.startExample({ name: "server1" }),
    L.startExample({ name: "server2" }), L.startEverything()]);
  [p1, p2, pe] = await Promise.all([L.startCountingProxy(ex1.url), L.startCountingProxy(ex2.url), L.startCountingProxy(ev.url)]);
});
after(() => Promise.all([p1, p2, pe].map((p) => p?.close())));

/** Every configured upstream ready (its lists published). */
async function waitReady(gw, n) {
  await L.waitFor(async () => {
    const r = await fetch(`${gw.base}/status`, { headers: gw.statusHeaders ?? {} });
    const j = await r.json();
    return j.servers?.length === n && j.servers.every((s) => s.ready);
  }, { what: `${n} upstream(s) ready`, proc: gw, timeout: 15000 });
}

/** A gateway with OAuth on (the dev IdP) and `extra` YAML; resolves when its upstreams are ready. */
async function authGateway(extra, { servers = SERVERS(), args = [], env = {} } = {}) {
  const port = await L.freePort();
  const resource = `http://127.0.0.1:${port}/mcp`;
  const gw = await L.startGateway({ port, args, config: L.writeConfig(servers, { extra }), env: {
    OAUTH_RESOURCE: resource, OAUTH_AUTHORIZATION_SERVERS: idp.issuer, OAUTH_SCOPES_SUPPORTED: "basic,groups,roles,profile", ...env } });
  gw.resource = resource;
  gw.prm = L.prmUrlFor(resource);
  await waitReady(gw, servers.length);
  return gw;
}

const token = (gw, who, { scope = "basic groups roles", resource = gw.resource } = {}) =>
  L.idpToken(idp, { ...CLIENTS[who], resource, scope });

/** A caller: a token and a session on url (default the gateway's /mcp). */
async function caller(gw, who, { url = gw.url, headers = {}, ...topts } = {}) {
  const tok = who ? await token(gw, who, topts) : null;
  const h = { ...(tok ? L.bearer(tok) : {}), ...headers };
  const { sessionId } = await L.rawSession(url, { headers: h });
  let id = 10;
  const rpc = (method, params, extraHeaders = {}) =>
    L.rpc(url, { jsonrpc: "2.0", id: ++id, method, ...(params ? { params } : {}) }, { sessionId, headers: { ...h, ...extraHeaders } });
  return {
    token: tok, sessionId, rpc,
    async list(method = "tools/list", key = "tools", extraHeaders) {
      const r = await rpc(method, undefined, extraHeaders);
      assert.equal(r.status, 200, `${method}: HTTP ${r.status} ${r.text ?? JSON.stringify(r.messages)}`);
      assert.ok(r.message?.result?.[key], `${method}: ${JSON.stringify(r.message)}`);
      const field = { resources: "uri", resourceTemplates: "uriTemplate" }[key] ?? "name";
      return sorted(r.message.result[key].map((e) => e[field]));
    },
    call: (name, args = {}, extraHeaders) => rpc("tools/call", { name, arguments: args }, extraHeaders),
  };
}

/** The seed's 403; with `scope` the insufficient_scope challenge, else no WWW-Authenticate at all. */
function assertForbidden(r, { scope, prm, where = "call" } = {}) {
  assert.equal(r.status, 403, `${where}: HTTP ${r.status} ${r.text ?? JSON.stringify(r.messages)}`);
  assert.equal(r.text, FORBIDDEN, `${where}: body`);
  const h = r.headers.get("www-authenticate");
  if (scope) assert.equal(h, `Bearer error="insufficient_scope", scope="${scope}", resource_metadata="${prm}"`, `${where}: WWW-Authenticate`);
  else assert.equal(h, null, `${where}: no WWW-Authenticate (no scope would allow it)`);
}

/** Runs fn and asserts the upstream behind proxy received no JSON-RPC `method` meanwhile. */
async function nothingUpstream(proxy, method, fn) {
  const n = proxy.count(method);
  const r = await fn();
  await L.sleep(50);
  assert.equal(proxy.count(method), n, `${method} reached the upstream`);
  return r;
}

const ok = (r, where = "call") => {
  assert.equal(r.status, 200, `${where}: HTTP ${r.status} ${r.text ?? ""}`);
  assert.ok(r.message?.result, `${where}: ${JSON.stringify(r.message)}`);
  return r.message.result;
};

// ------------------------------------------------------------------ the roles convention

describe("mode: roles (the seed's Keycloak convention)", () => {
  let gw;
  before(async () => {
    gw = await authGateway("authorization:\n  mode: roles\n", { args: ["--log-format", "json"] });
  });

  test("lists contain exactly the tools of the caller's roles", async () => {
    const [mcp, dev, none] = await Promise.all([caller(gw, "mcp"), caller(gw, "dev"), caller(gw, "none")]);
    assert.deepEqual(await mcp.list(), sorted([...s1("echo", "greet"), ...s2("add")]));
    assert.deepEqual(await dev.list(), sorted([...s1("echo", "headers"), ...s2("greet", "slow")]));
    assert.deepEqual(await none.list(), []);
    // twice (the second from the per-token cache) is the same
    assert.deepEqual(await dev.list(), sorted([...s1("echo", "headers"), ...s2("greet", "slow")]));
  });

  test("allowed calls go through", async () => {
    const mcp = await caller(gw, "mcp");
    assert.equal(L.textOf(ok(await mcp.call("s1_greet", { name: "acc" }))), "Hello, acc! (from server1)");
    assert.equal(ok(await mcp.call("s2_add", { a: 2, b: 5 })).structuredContent?.sum, 7);
    const dev = await caller(gw, "dev");
    const h = JSON.parse(L.textOf(ok(await dev.call("s1_headers"))));
    assert.equal(h.authorization, undefined, "the client's token stays at the gateway");
  });

  test("forbidden calls: 403 with the seed's body, no insufficient_scope, nothing upstream", async () => {
    const mcp = await caller(gw, "mcp");
    assertForbidden(await nothingUpstream(p1, "tools/call", () => mcp.call("s1_headers")), { where: "mcp s1_headers" });
    const dev = await caller(gw, "dev");
    assertForbidden(await nothingUpstream(p2, "tools/call", () => dev.call("s2_add", { a: 1, b: 1 })), { where: "dev s2_add" });
    const none = await caller(gw, "none");
    assertForbidden(await nothingUpstream(p1, "tools/call", () => none.call("s1_echo", { text: "x" })), { where: "none s1_echo" });
    // an unknown tool is still an unknown tool
    const u = await mcp.call("s1_nope");
    assert.equal(u.status, 200);
    assert.equal(u.message?.error?.code, -32602);
  });

  test("one JSON audit line per call decision", async () => {
    const dev = await caller(gw, "dev");
    ok(await dev.call("s1_echo", { text: "audited" }));
    assertForbidden(await dev.call("s1_greet", { name: "x" }));
    let lines = [];
    await L.waitFor(() => {
      lines = gw.log().split("\n").filter((l) => l.startsWith("{") && l.includes('"ctx":"audit"')).map((l) => JSON.parse(l));
      return lines.some((l) => l.name === "s1_greet" && l.client === "gw-dev");
    }, { what: "audit lines", timeout: 5000 });
    const allow = lines.findLast((l) => l.name === "s1_echo" && l.client === "gw-dev");
    const deny = lines.findLast((l) => l.name === "s1_greet" && l.client === "gw-dev");
    for (const l of [allow, deny]) {
      assert.ok(l, `audit lines: ${JSON.stringify(lines.slice(-4))}`);
      assert.match(l.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.equal(l.level, "info");
      assert.equal(l.subject, "gw-dev");
      assert.equal(l.method, "tools/call");
      assert.equal(l.server, "example/server1");
      assert.match(l.session, /^[0-9a-f]{12}$/);
      assert.ok(!gw.log().includes(dev.sessionId), "the session id itself is not logged");
    }
    assert.equal(allow.upstreamName, "echo");
    assert.deepEqual([allow.decision, allow.rule], ["allow", "roles"]);
    assert.deepEqual([deny.decision, deny.rule], ["deny", "default"]);
  });
});

describe("hideDenied: true", () => {
  let gw;
  before(async () => { gw = await authGateway("authorization:\n  mode: roles\n  hideDenied: true\n"); });

  test("a denied call is answered exactly like an unknown tool", async () => {
    const mcp = await caller(gw, "mcp");
    const denied = await nothingUpstream(p1, "tools/call", () => mcp.call("s1_headers"));
    const unknown = await mcp.call("s1_does_not_exist");
    assert.equal(denied.status, 200);
    assert.deepEqual(denied.message.error, { code: -32602, message: "Unknown tool: s1_headers" });
    assert.deepEqual(unknown.message.error, { code: -32602, message: "Unknown tool: s1_does_not_exist" });
    assert.ok(!(await mcp.list()).includes("s1_headers"));
  });
});

// ------------------------------------------------------------------ rules

const RULES = `
authorization:
  mode: rules
  default: deny
  rules:
    - name: accounting-no-headers          # an explicit deny before a broad allow
      effect: deny
      tools: [headers]
      when: {groups: [accounting]}
    - name: engineering-server1            # broad: every tool of server1 for engineering
      effect: allow
      servers: [example/server1]
      when: {groups: [engineering]}
    - name: add-needs-profile              # scope-based
      effect: allow
      servers: [example/server2]
      tools: [add]
      when: {scopes: [profile]}
    - name: developers-s-tools             # glob + realm role
      effect: allow
      servers: [example/server2]
      tools: ["s*"]
      when: {realmRoles: [developer]}
    - name: service-account-echo           # subject
      effect: allow
      servers: [example/server2]
      tools: [echo]
      when: {subject: gw-test-2}
    - name: greeters                       # any claim: a Keycloak client role of another server
      effect: allow
      servers: [example/server2]
      tools: [greet]
      when:
        claims:
          - path: [resource_access, example/server1, roles]
            contains: "tool:greet"
    - name: engineering-simple-prompt
      effect: allow
      servers: [everything]
      prompts: [simple-prompt, completable-prompt]
      methods: [prompts/get]
      when: {groups: [engineering]}
    - name: dynamic-text
      effect: allow
      servers: [everything]
      resources: ["demo://resource/dynamic/text/*"]
`;

describe("mode: rules", () => {
  let gw;
  before(async () => {
    gw = await authGateway(RULES, { servers: [...SERVERS(), { name: "everything", url: pe.url, prefix: "ev_" }] });
  });

  test("lists: group allow, explicit deny over the broad allow, glob, realm role, subject, claim, default deny", async () => {
    const [mcp, dev, none] = await Promise.all([caller(gw, "mcp"), caller(gw, "dev"), caller(gw, "none")]);
    const s1all = EXAMPLE_TOOLS.map((t) => `s1_${t}`);
    assert.deepEqual(await mcp.list(), sorted([...s1all.filter((t) => t !== "s1_headers"), ...s2("greet")]));
    assert.deepEqual(await dev.list(), sorted([...s1all, ...s2("sleep", "slow")]));
    assert.deepEqual(await none.list(), s2("echo"));
  });

  test("calls follow the same decisions; refused ones reach no upstream", async () => {
    const [mcp, dev, none] = await Promise.all([caller(gw, "mcp"), caller(gw, "dev"), caller(gw, "none")]);
    assertForbidden(await nothingUpstream(p1, "tools/call", () => mcp.call("s1_headers")), { where: "explicit deny" });
    assert.equal(JSON.parse(L.textOf(ok(await dev.call("s1_headers")))).authorization, undefined);
    assert.equal(L.textOf(ok(await mcp.call("s1_echo", { text: "broad" }))), "broad");
    assert.equal(L.textOf(ok(await dev.call("s2_sleep", { ms: 1 }))), "slept");
    assert.equal(L.textOf(ok(await none.call("s2_echo", { text: "sub" }))), "sub");
    assert.equal(L.textOf(ok(await mcp.call("s2_greet", { name: "c" }))), "Hello, c! (from server2)");
    assertForbidden(await nothingUpstream(p2, "tools/call", () => dev.call("s2_greet", { name: "x" })), { where: "default deny" });
    assertForbidden(await nothingUpstream(p1, "tools/call", () => none.call("s1_echo", { text: "x" })), { where: "default deny" });
  });

  test("scope-based allow: without the scope 403 with insufficient_scope naming it, with it the call works", async () => {
    const mcp = await caller(gw, "mcp", { scope: "basic groups" });
    assert.ok(!(await mcp.list()).includes("s2_add"));
    const r = await nothingUpstream(p2, "tools/call", () => mcp.call("s2_add", { a: 1, b: 2 }));
    assertForbidden(r, { scope: "profile", prm: gw.prm, where: "add without profile" });
    const wide = await caller(gw, "mcp", { scope: "basic groups profile" });
    assert.ok((await wide.list()).includes("s2_add"));
    assert.equal(ok(await wide.call("s2_add", { a: 1, b: 2 })).structuredContent?.sum, 3);
  });

  test("prompts and resources: filtered lists, refused prompts/get, resources/read and completion/complete", async () => {
    const [dev, none] = await Promise.all([caller(gw, "dev"), caller(gw, "none")]);
    assert.deepEqual(await dev.list("prompts/list", "prompts"), ["ev_completable-prompt", "ev_simple-prompt"]);
    assert.deepEqual(await none.list("prompts/list", "prompts"), []);
    assert.deepEqual(await dev.list("resources/list", "resources"), []);
    assert.deepEqual(await dev.list("resources/templates/list", "resourceTemplates"), ["demo://resource/dynamic/text/{resourceId}"]);
    ok(await dev.rpc("prompts/get", { name: "ev_simple-prompt" }), "prompts/get allowed");
    assertForbidden(await nothingUpstream(pe, "prompts/get", () => dev.rpc("prompts/get", { name: "ev_args-prompt", arguments: { city: "x" } })),
      { where: "prompts/get not allowed" });
    assertForbidden(await nothingUpstream(pe, "prompts/get", () => none.rpc("prompts/get", { name: "ev_simple-prompt" })),
      { where: "prompts/get without the group" });
    // the rule names only prompts/get: completion on the same prompt is not allowed
    assertForbidden(await nothingUpstream(pe, "completion/complete", () => dev.rpc("completion/complete",
      { ref: { type: "ref/prompt", name: "ev_completable-prompt" }, argument: { name: "department", value: "E" } })), { where: "completion" });
    const text = ok(await none.rpc("resources/read", { uri: "demo://resource/dynamic/text/1" }), "resources/read allowed");
    assert.ok(text.contents?.length, JSON.stringify(text));
    assertForbidden(await nothingUpstream(pe, "resources/read", () => none.rpc("resources/read", { uri: "demo://resource/dynamic/blob/1" })),
      { where: "resources/read not allowed" });
  });
});

// ------------------------------------------------------------------ virtual servers

const VSERVERS = `
virtualServers:
  - name: team/dev-tools
    tools: [s1_echo, s1_headers, s1_greet, s2_greet]
  - name: readonly
    tools: [s1_echo]
`;

describe("virtual servers restrict lists and calls (header and path form)", () => {
  let gw, anon;
  before(async () => {
    [gw, anon] = await Promise.all([
      authGateway(`${VSERVERS}authorization:\n  mode: roles\n`),
      L.startGateway({ config: L.writeConfig(SERVERS(), { extra: VSERVERS }) }),
    ]);
    await waitReady(anon, 2);
  });

  test("without authentication: header and path select the same subset; calls outside it are unknown", async () => {
    const viaHeader = await caller(anon, null, { headers: { "x-mcp-virtualserver": "team/dev-tools" } });
    const viaPath = await caller(anon, null, { url: `${anon.base}/v/team/dev-tools/mcp` });
    const want = sorted([...s1("echo", "greet", "headers"), ...s2("greet")]);
    assert.deepEqual(await viaHeader.list(), want);
    assert.deepEqual(await viaPath.list(), want);
    for (const c of [viaHeader, viaPath]) {
      assert.equal(L.textOf(ok(await c.call("s1_echo", { text: "in" }))), "in");
      const r = await nothingUpstream(p2, "tools/call", () => c.call("s2_add", { a: 1, b: 1 }));
      assert.deepEqual(r.message?.error, { code: -32602, message: "Unknown tool: s2_add" });
    }
    const ro = await caller(anon, null, { url: `${anon.base}/v/readonly/mcp` });
    assert.deepEqual(await ro.list(), ["s1_echo"]);
    // the whole catalog on /mcp
    assert.equal((await (await caller(anon, null)).list()).length, 2 * EXAMPLE_TOOLS.length);
  });

  test("unknown virtual server: 400 on the header form, 404 on the path form", async () => {
    const h = await L.rpc(anon.url, { jsonrpc: "2.0", id: 1, method: "initialize",
      params: { protocolVersion: L.PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: "x", version: "1" } } },
      { headers: { "x-mcp-virtualserver": "nope" } });
    assert.equal(h.status, 400);
    assert.equal(h.messages[0]?.error?.code, -32600);
    assert.match(h.messages[0]?.error?.message, /unknown virtual server 'nope'/);
    const c = await caller(anon, null);
    const h2 = await c.rpc("tools/list", undefined, { "x-mcp-virtualserver": "nope" });
    assert.equal(h2.status, 400, "inside a session too (not 404, which would end it)");
    const p = await L.rpc(`${anon.base}/v/nope/mcp`, { jsonrpc: "2.0", id: 1, method: "ping" });
    assert.equal(p.status, 404);
    const p2b = await L.rpc(`${anon.base}/v//mcp`, { jsonrpc: "2.0", id: 1, method: "ping" });
    assert.equal(p2b.status, 404);
    // header and path naming different virtual servers
    const mixed = await L.rpc(`${anon.base}/v/readonly/mcp`, { jsonrpc: "2.0", id: 1, method: "ping" },
      { headers: { "x-mcp-virtualserver": "team/dev-tools" } });
    assert.equal(mixed.status, 400);
  });

  test("virtual servers and roles intersect", async () => {
    const dev = await caller(gw, "dev", { headers: { "x-mcp-virtualserver": "team/dev-tools" } });
    assert.deepEqual(await dev.list(), sorted([...s1("echo", "headers"), ...s2("greet")]));
    const mcp = await caller(gw, "mcp", { url: `${gw.base}/v/team/dev-tools/mcp` });
    assert.deepEqual(await mcp.list(), s1("echo", "greet"));
    // dev holds tool:slow, but the virtual server has no s2_slow: unknown there
    const r = await nothingUpstream(p2, "tools/call", () => dev.call("s2_slow", { steps: 1 }));
    assert.equal(r.message?.error?.code, -32602);
    // in the virtual server but not in the roles: 403
    assertForbidden(await nothingUpstream(p1, "tools/call", () => mcp.call("s1_headers")));
  });

  test("the path form has its own protected resource metadata, 401 challenge and audience", async () => {
    const vsUrl = `${gw.base}/v/team/dev-tools/mcp`;
    const vsResource = `${gw.resource.replace(/\/mcp$/, "")}/v/team/dev-tools/mcp`;
    const vsPrm = `${gw.base}/.well-known/oauth-protected-resource/v/team/dev-tools/mcp`;
    const doc = await (await fetch(vsPrm)).json();
    assert.equal(doc.resource, vsResource);
    assert.deepEqual(doc.authorization_servers, [idp.issuer]);
    assert.equal((await (await fetch(`${gw.base}/.well-known/oauth-protected-resource/mcp`)).json()).resource, gw.resource);
    // no token on the path form: the challenge names the path form's metadata
    const r401 = await L.rpc(vsUrl, { jsonrpc: "2.0", id: 1, method: "ping" });
    L.assertUnauthorized(r401, { prm: vsPrm, where: "path form without a token" });
    // a token issued for the virtual server's resource: good there, not on /mcp nor on another virtual server
    const vsTok = await token(gw, "dev", { resource: vsResource });
    assert.equal(L.jwtParts(vsTok).payload.aud, vsResource);
    const dev = await caller(gw, null, { url: vsUrl, headers: L.bearer(vsTok) });
    assert.deepEqual(await dev.list(), sorted([...s1("echo", "headers"), ...s2("greet")]));
    const init = { jsonrpc: "2.0", id: 1, method: "initialize",
      params: { protocolVersion: L.PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: "x", version: "1" } } };
    for (const u of [gw.url, `${gw.base}/v/readonly/mcp`])
      assert.equal((await L.rpc(u, init, { headers: L.bearer(vsTok) })).status, 401, `a token for ${vsResource} on ${u}`);
    // the gateway's own token is good on the path form too
    const mainTok = await caller(gw, "dev", { url: vsUrl });
    assert.deepEqual(await mainTok.list(), await dev.list());
    // unknown name on the path form, with a token for the gateway: 404
    assert.equal((await L.rpc(`${gw.base}/v/nope/mcp`, init, { headers: L.bearer(mainTok.token) })).status, 404);
  });
});

// ------------------------------------------------------------------ trusted header (behind Authorino)

describe("trusted header x-mcp-authorized", () => {
  let gw, strict, key, foreign;
  const CAPS = { tools: { "example/server1": ["echo", "headers"], "example/server2": ["add"] } };
  const sign = (caps, k = key, claims = {}) => new SignJWT({ "allowed-capabilities": JSON.stringify(caps), ...claims })
    .setProtectedHeader({ alg: "ES256", kid: "wristband", typ: "JWT" }).setIssuedAt().setExpirationTime("5m").sign(k.privateKey);

  before(async () => {
    key = await generateKeyPair("ES256", { extractable: true });
    foreign = await generateKeyPair("ES256", { extractable: true });
    const env = { TRUSTED_HEADER_PUBLIC_KEY: await exportSPKI(key.publicKey) };
    [gw, strict] = await Promise.all([
      L.startGateway({ servers: SERVERS(), env }),
      L.startGateway({ servers: SERVERS(), env, args: ["--enforce-capability-filtering"] }),
    ]);
    await Promise.all([waitReady(gw, 2), waitReady(strict, 2)]);
  });

  test("a valid header filters lists and calls", async () => {
    const hdr = { "x-mcp-authorized": await sign(CAPS) };
    const c = await caller(gw, null, { headers: hdr });
    assert.deepEqual(await c.list(), sorted([...s1("echo", "headers"), ...s2("add")]));
    assert.equal(L.textOf(ok(await c.call("s1_echo", { text: "th" }))), "th");
    assertForbidden(await nothingUpstream(p1, "tools/call", () => c.call("s1_greet", { name: "x" })));
    // without the header (not enforced): everything
    assert.equal((await (await caller(gw, null)).list()).length, 2 * EXAMPLE_TOOLS.length);
  });

  test("the header never reaches an upstream", async () => {
    const h = await sign(CAPS);
    const c = await caller(gw, null, { headers: { "x-mcp-authorized": h } });
    const text = L.textOf(ok(await c.call("s1_headers")));
    assert.equal(JSON.parse(text)["x-mcp-authorized"], undefined, text);
    assert.ok(!text.includes(h.split(".")[2]), "not even its signature");
    assert.ok(p1.requests.every((r) => !r.headers["x-mcp-authorized"]), "no request through the proxy carried it");
  });

  test("a tampered header or one signed with another key: empty lists, refused calls", async () => {
    const good = await sign(CAPS);
    const [h, , s] = good.split(".");
    const wider = Buffer.from(JSON.stringify({ "allowed-capabilities": JSON.stringify({ tools: { "example/server1": EXAMPLE_TOOLS } }),
      exp: Math.floor(Date.now() / 1000) + 300 })).toString("base64url");
    for (const [what, bad] of [["tampered", `${h}.${wider}.${s}`], ["foreign key", await sign(CAPS, foreign)], ["garbage", "x.y.z"]]) {
      const c = await caller(gw, null, { headers: { "x-mcp-authorized": bad } });
      assert.deepEqual(await c.list(), [], what);
      assertForbidden(await nothingUpstream(p1, "tools/call", () => c.call("s1_echo", { text: "x" })), { where: what });
    }
    // an expired one too
    const old = await new SignJWT({ "allowed-capabilities": JSON.stringify(CAPS) }).setProtectedHeader({ alg: "ES256" })
      .setExpirationTime(Math.floor(Date.now() / 1000) - 120).sign(key.privateKey);
    assert.deepEqual(await (await caller(gw, null, { headers: { "x-mcp-authorized": old } })).list(), [], "expired");
  });

  test("the last value counts (a proxy appends the trusted one after any the client sent)", async () => {
    const forged = await sign({ tools: { "example/server1": EXAMPLE_TOOLS } }, foreign);
    const c = await caller(gw, null, { headers: { "x-mcp-authorized": `${forged}, ${await sign(CAPS)}` } });
    assert.deepEqual(await c.list(), sorted([...s1("echo", "headers"), ...s2("add")]));
  });

  test("--enforce-capability-filtering: no header, nothing; a valid header, its capabilities", async () => {
    assert.deepEqual(await (await caller(strict, null)).list(), []);
    const c = await caller(strict, null);
    assertForbidden(await nothingUpstream(p1, "tools/call", () => c.call("s1_echo", { text: "x" })));
    const v = await caller(strict, null, { headers: { "x-mcp-authorized": await sign(CAPS) } });
    assert.deepEqual(await v.list(), sorted([...s1("echo", "headers"), ...s2("add")]));
    // enforced: a kind the claim does not list is empty
    assert.deepEqual(await v.list("prompts/list", "prompts"), []);
  });
});

// ------------------------------------------------------------------ --check-config

describe("--check-config", () => {
  test("a rule naming an unknown server fails with file:line", () => {
    const f = L.writeConfig([{ name: "example/server1", url: "http://127.0.0.1:1/mcp", prefix: "s1_" }], {
      file: "authz-unknown.yaml",
      extra: "authorization:\n  mode: rules\n  rules:\n    - name: typo\n      effect: allow\n      servers:\n        - example/server1\n        - example/sever2\n",
    });
    const line = fs.readFileSync(f, "utf8").split("\n").findIndex((l) => l.includes("example/sever2")) + 1;
    const r = L.runSync(L.GATEWAY_BIN, ["--mcp-gateway-config", f, "--check-config"], { env: { GATEWAY_SIGNING_KEY: L.SIGNING_KEY } });
    assert.equal(r.status, 1, `stdout ${r.stdout} stderr ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`authz-unknown\\.yaml:${line}: rule 'typo' names unknown server 'example/sever2'`), r.stderr);
  });

  test("a valid authorization block passes", () => {
    const f = L.writeConfig(SERVERS(), { file: "authz-ok.yaml", extra: RULES.replace(/servers: \[everything\]/g, "servers: [example/server1]") });
    const r = L.runSync(L.GATEWAY_BIN, ["--mcp-gateway-config", f, "--check-config"], { env: { GATEWAY_SIGNING_KEY: L.SIGNING_KEY } });
    assert.equal(r.status, 0, r.stderr);
  });

  test("a bad TRUSTED_HEADER_PUBLIC_KEY fails", () => {
    const f = L.writeConfig(SERVERS(), { file: "authz-key.yaml" });
    const r = L.runSync(L.GATEWAY_BIN, ["--mcp-gateway-config", f, "--check-config"],
      { env: { GATEWAY_SIGNING_KEY: L.SIGNING_KEY, TRUSTED_HEADER_PUBLIC_KEY: "not a key" } });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /TRUSTED_HEADER_PUBLIC_KEY/);
  });
});
