// The gateway as an OAuth 2.1 resource server in front of the development IdP (examples/idp/dev-idp.mjs):
// 401 answers, client_credentials tokens with RFC 8707 resource, the client's token kept from upstreams,
// sessions bound to their subject, IdP key rotation and an IdP outage.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as L from "./lib.mjs";

after(L.cleanup);

const UPSTREAM_CREDENTIAL = "Bearer upstream-secret-0123";

describe("gateway with OAUTH_* against the dev IdP", () => {
  let idp, s1, s2, gw, resource, prm;
  const clients = [];

  /** an SDK client with this bearer token; closed in after() */
  async function sdk(token, name = "e2e-auth") {
    const c = await L.connect(gw.url, { name, headers: L.bearer(token) });
    clients.push(c.client);
    return c;
  }
  const tokenFor = (opts = {}) => L.idpToken(idp, { resource, ...opts });
  /** raw POST of one JSON-RPC request with optional token and session; resolves readMcp's answer */
  const post = (body, { token, sessionId, headers = {} } = {}) =>
    L.rpc(gw.url, body, { sessionId, headers: { ...(token ? L.bearer(token) : {}), ...headers } });
  const callEcho = (sessionId, token, text = "hi") =>
    post({ jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: "s1_echo", arguments: { text } } }, { token, sessionId });

  /** POST ping without a session on a new TCP connection (spreads requests over the gateway's workers) */
  const pingFresh = (token) => L.rawHttp(gw.port, { headers: { "content-type": "application/json", accept: L.JSON_SSE,
    authorization: `Bearer ${token}` }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }) });
  const assert401 = (r, { presented, where }) => L.assertUnauthorized(r, { prm, presented, where });

  before(async () => {
    const port = await L.freePort();
    resource = `http://127.0.0.1:${port}/mcp`;
    prm = L.prmUrlFor(resource);
    [idp, s1, s2] = await Promise.all([L.startIdp(), L.startExample({ name: "server1" }), L.startExample({ name: "server2" })]);
    gw = await L.startGateway({ port, servers: [
      { name: "example/server1", url: s1.url, prefix: "s1_" },
      { name: "example/server2", url: s2.url, prefix: "s2_", credential: UPSTREAM_CREDENTIAL },
    ], env: {
      OAUTH_RESOURCE_NAME: "MCP Server", OAUTH_RESOURCE: resource, OAUTH_AUTHORIZATION_SERVERS: idp.issuer,
      OAUTH_BEARER_METHODS_SUPPORTED: "header", OAUTH_SCOPES_SUPPORTED: "basic,groups,roles,profile",
    } });
  });
  after(() => Promise.all(clients.map((c) => c.close().catch(() => {}))));

  test("metadata and health need no token", async () => {
    const r = await fetch(`${gw.base}/.well-known/oauth-protected-resource/mcp`);
    assert.equal(r.status, 200);
    assert.equal(await r.text(), JSON.stringify({ resource_name: "MCP Server", resource, authorization_servers: [idp.issuer],
      bearer_methods_supported: ["header"], scopes_supported: ["basic", "groups", "roles", "profile"] }));
    const h = await fetch(`${gw.base}/healthz`);
    assert.equal(h.status, 200);
    await h.body?.cancel();
    await L.waitHttp(`${gw.base}/readyz`, { ok: (s) => s === 200, what: "/readyz 200 without a token" });
    const st = await fetch(`${gw.base}/status`);
    assert.equal(st.status, 200, "/status (protectStatus is off by default)");
    await st.body?.cancel();
    // a browser's CORS preflight carries no token
    const pre = await fetch(gw.url, { method: "OPTIONS", headers: { origin: "http://localhost:6274",
      "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" } });
    assert.notEqual(pre.status, 401, "OPTIONS /mcp (CORS preflight) needs no token");
    assert.ok(pre.status < 300, `OPTIONS /mcp: ${pre.status}`);
    await pre.body?.cancel();
  });

  test("no token: 401, exact WWW-Authenticate and body, for POST, GET and DELETE", async () => {
    const init = { jsonrpc: "2.0", id: 1, method: "initialize",
      params: { protocolVersion: L.PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: "x", version: "1" } } };
    assert401(await post(init), { presented: false, where: "POST initialize" });
    assert401(await post({ jsonrpc: "2.0", id: 1, method: "tools/list" }), { presented: false, where: "POST tools/list" });
    for (const method of ["GET", "DELETE"]) {
      const res = await fetch(gw.url, { method, headers: L.mcpHeaders("0123456789abcdef0123456789abcdef"),
                                        signal: AbortSignal.timeout(10000) });
      assert401(await L.readMcp(res), { presented: false, where: method });
    }
    // a scheme other than Bearer is no token either
    assert.equal((await post(init, { headers: { authorization: "Basic Z3ctdGVzdDpndy10ZXN0LXNlY3JldA==" } })).status, 401);
  });

  test("a presented bad token: 401 with error=\"invalid_token\"", async () => {
    assert401(await post({ jsonrpc: "2.0", id: 1, method: "ping" }, { token: "not-a-jwt" }), { presented: true, where: "garbage token" });
  });

  test("a token for another audience is rejected (RFC 8707 resource)", async () => {
    const other = await tokenFor({ resource: "http://127.0.0.1:1/mcp" });
    assert.equal(L.jwtParts(other).payload.aud, "http://127.0.0.1:1/mcp");
    assert401(await post({ jsonrpc: "2.0", id: 1, method: "ping" }, { token: other }), { presented: true, where: "aud of another resource" });
    // without `resource` the IdP's default audience is http://localhost:8080/mcp, not this gateway
    const dflt = await L.idpToken(idp);
    assert.notEqual(L.jwtParts(dflt).payload.aud, resource);
    assert401(await post({ jsonrpc: "2.0", id: 1, method: "ping" }, { token: dflt }), { presented: true, where: "default audience" });
  });

  test("client_credentials token with resource: initialize, tools/list, tools/call through the SDK client", async () => {
    const token = await tokenFor({ scope: "basic groups" });
    const { payload } = L.jwtParts(token);
    assert.equal(payload.aud, resource);
    assert.equal(payload.iss, idp.issuer);
    const { client, transport } = await sdk(token);
    assert.ok(transport.sessionId, "session id");
    const names = await L.waitTools(client, (n) => n.includes("s1_echo") && n.includes("s2_add"), { what: "tools of both upstreams" });
    assert.ok(names.includes("s1_headers"));
    assert.equal(L.textOf(await client.callTool({ name: "s1_echo", arguments: { text: "through OAuth" } })), "through OAuth");
    const add = await client.callTool({ name: "s2_add", arguments: { a: 2, b: 3 } });
    assert.equal(add.structuredContent?.sum, 5);
  });

  test("the client's Authorization header never reaches an upstream", async () => {
    const token = await tokenFor();
    const { client } = await sdk(token);
    const h1 = L.textOf(await client.callTool({ name: "s1_headers", arguments: {} }));
    const got1 = JSON.parse(h1);
    assert.equal(got1.authorization, undefined, `server1 received: ${h1}`);
    assert.ok(!h1.includes(token), "the token appears nowhere in what server1 received");
    assert.ok(!h1.includes(token.split(".")[2]), "not even its signature");
    const h2 = L.textOf(await client.callTool({ name: "s2_headers", arguments: {} }));
    assert.equal(JSON.parse(h2).authorization, UPSTREAM_CREDENTIAL, `server2 gets its configured credential: ${h2}`);
    assert.ok(!h2.includes(token), "the token appears nowhere in what server2 received");
  });

  test("a session is bound to its subject: another subject's token gets 404", async () => {
    const tokA = await tokenFor();
    const tokB = await tokenFor({ clientId: "gw-test-2", secret: "gw-test-2-secret" });
    assert.notEqual(L.jwtParts(tokA).payload.sub, L.jwtParts(tokB).payload.sub);
    const { sessionId } = await L.rawSession(gw.url, { headers: L.bearer(tokA) });
    const stolen = await callEcho(sessionId, tokB);
    assert.equal(stolen.status, 404, `session of ${L.jwtParts(tokA).payload.sub} used by ${L.jwtParts(tokB).payload.sub}: ${stolen.text ?? JSON.stringify(stolen.messages)}`);
    const list = await post({ jsonrpc: "2.0", id: 3, method: "tools/list" }, { token: tokB, sessionId });
    assert.equal(list.status, 404, "tools/list too");
    // the owner's session is unharmed
    const ok = await callEcho(sessionId, tokA, "still mine");
    assert.equal(ok.status, 200);
    assert.equal(L.textOf(ok.message?.result), "still mine");
    // a fresh token of the same subject continues the session
    const ok2 = await callEcho(sessionId, await tokenFor(), "same subject");
    assert.equal(ok2.status, 200);
    assert.equal(L.textOf(ok2.message?.result), "same subject");
  });

  test("IdP tokens signed with ES256 and EdDSA are accepted too", async () => {
    try {
      for (const alg of ["ES256", "EdDSA"]) {
        await idp.setAlg(alg);
        const token = await tokenFor();
        assert.equal(L.jwtParts(token).header.alg, alg);
        const { sessionId } = await L.rawSession(gw.url, { headers: L.bearer(token) });
        const r = await callEcho(sessionId, token, alg);
        assert.equal(r.status, 200, `${alg}: ${r.headers.get("www-authenticate")}`);
        assert.equal(L.textOf(r.message?.result), alg);
      }
    } finally {
      await idp.setAlg("RS256");
    }
  });

  let rotatedToken, preRotationToken, unusedPreRotationToken;
  test("key rotation at the IdP: a token signed with the new key works without a gateway restart", async () => {
    const before = preRotationToken = await tokenFor();
    unusedPreRotationToken = await tokenFor();
    // warm up: verified on fresh connections, so every worker has seen (and may cache) it
    for (let i = 0; i < 8; i++) assert.equal((await pingFresh(before)).status, 400, "accepted (400: ping without a session)");
    const { sessionId } = await L.rawSession(gw.url, { headers: L.bearer(before) });
    const oldKid = L.jwtParts(before).header.kid;
    const rot = await idp.rotateKeys();
    assert.ok(!rot.keys.some((k) => k.kid === oldKid), "the old key left the JWKS");
    rotatedToken = await tokenFor();
    const newKid = L.jwtParts(rotatedToken).header.kid;
    assert.notEqual(newKid, oldKid);
    const t0 = Date.now();
    let last;
    await L.waitFor(async () => { last = await callEcho(sessionId, rotatedToken, "new key"); return last.status === 200; },
      { timeout: 15000, interval: 500, what: `a token with the new kid ${newKid} to be accepted` })
      .catch((e) => { e.message += `; last answer HTTP ${last?.status} ${last?.headers.get("www-authenticate")}`; throw e; });
    assert.equal(L.textOf(last.message?.result), "new key");
    const ms = Date.now() - t0;
    assert.ok(ms < 15000, `accepted after ${ms} ms`);   // unknown-kid refetch: at most once per 10 s per issuer
    // and a brand-new session works with it too
    const { client } = await sdk(rotatedToken, "after-rotation");
    assert.equal(L.textOf(await client.callTool({ name: "s1_echo", arguments: { text: "rotated" } })), "rotated");
  });

  test("after the rotation, an unseen token signed with the removed key is rejected", async () => {
    assert.ok(unusedPreRotationToken && rotatedToken, "needs the rotation test");
    // the gateway has fetched the new JWKS (it accepted the new kid); the old kid is not in it any more
    const r = await post({ jsonrpc: "2.0", id: 1, method: "ping" }, { token: unusedPreRotationToken });
    assert401(r, { presented: true, where: `unseen token signed with the removed key ${L.jwtParts(unusedPreRotationToken).header.kid}` });
  });

  test("after the rotation, a token verified before it is rejected too (its key left the JWKS)", async () => {
    // preRotationToken was verified (and possibly cached by every worker, see warmUp) before the rotation
    const statuses = [];
    for (let i = 0; i < 8; i++) statuses.push((await pingFresh(preRotationToken)).status);
    assert.deepEqual(statuses, Array(8).fill(401),
      `8 requests on fresh connections with a token verified before the rotation, signed with the removed key ${L.jwtParts(preRotationToken).header.kid}`);
  });

  test("IdP down: a token signed with the cached key still works", async () => {
    const token = rotatedToken ?? await tokenFor();
    await idp.stop();
    await L.waitPortClosed(idp.port);
    const { sessionId } = await L.rawSession(gw.url, { headers: L.bearer(token) });
    const r = await callEcho(sessionId, token, "idp is down");
    assert.equal(r.status, 200);
    assert.equal(L.textOf(r.message?.result), "idp is down");
    // a garbage token is still refused, and the gateway is still alive
    assert.equal((await post({ jsonrpc: "2.0", id: 1, method: "ping" }, { token: "x.y.z" })).status, 401);
    assert.ok(gw.running(), "gateway still running");
  });
});
