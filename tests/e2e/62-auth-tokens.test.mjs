// JWT validation matrix. The test is its own issuer: a tiny HTTP server serving discovery documents and JWKS
// for keys generated here with jose; tokens are signed here. Every bad token gets 401 with error="invalid_token"
// and never reaches the upstream (a counting proxy sits between the gateway and the example server); every
// supported algorithm (RS/PS 256/384/512, ES256/384, EdDSA) is accepted.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { SignJWT, generateKeyPair, exportJWK, exportSPKI } from "jose";
import * as L from "./lib.mjs";

after(L.cleanup);

const now = () => Math.floor(Date.now() / 1000);
const b64u = (v) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");

// ------------------------------------------------------------------ the test's issuer

const ACCEPTED_ALGS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];

async function makeKey(alg, kid, { publishAlg = true } = {}) {
  const opts = { extractable: true, ...(alg === "EdDSA" ? { crv: "Ed25519" } : {}), ...(alg.startsWith("RS") || alg.startsWith("PS") ? { modulusLength: 2048 } : {}) };
  const { publicKey, privateKey } = await generateKeyPair(alg, opts);
  const jwk = { ...(await exportJWK(publicKey)), kid, use: "sig", ...(publishAlg ? { alg } : {}) };
  return { alg, kid, publicKey, privateKey, jwk };
}

/** An HTTP server with one or more issuers: { path: { keys, discovery: "openid" | "oauth" | "none" } }. */
async function startIssuerServer(issuers) {
  const hits = { jwks: {}, discovery: {} };
  const srv = http.createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    const json = (status, v) => { res.writeHead(status, { "content-type": "application/json" }); res.end(JSON.stringify(v)); };
    for (const [name, iss] of Object.entries(issuers)) {
      const base = `/${name}`;
      if (url.pathname === `${base}/jwks`) {
        hits.jwks[name] = (hits.jwks[name] || 0) + 1;
        return json(200, { keys: iss.keys.map((k) => k.jwk) });
      }
      const wk = { openid: `${base}/.well-known/openid-configuration`, oauth: `${base}/.well-known/oauth-authorization-server` };
      const insertedOauth = `/.well-known/oauth-authorization-server${base}`;   // RFC 8414 path insertion
      if ((iss.discovery === "openid" && url.pathname === wk.openid) ||
          (iss.discovery === "oauth" && (url.pathname === wk.oauth || url.pathname === insertedOauth))) {
        hits.discovery[name] = (hits.discovery[name] || 0) + 1;
        return json(200, { issuer: srv.issuerUrl(name), jwks_uri: `${srv.base}${base}/jwks`,
                           authorization_endpoint: `${srv.base}${base}/auth`, token_endpoint: `${srv.base}${base}/token`,
                           response_types_supported: ["code"], subject_types_supported: ["public"],
                           id_token_signing_alg_values_supported: ["RS256"] });
      }
    }
    json(404, { error: "not found" });
  });
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  srv.base = `http://127.0.0.1:${srv.address().port}`;
  srv.issuerUrl = (name) => `${srv.base}/${name}`;
  srv.hits = hits;
  return srv;
}

// ------------------------------------------------------------------ tokens

async function sign(key, claims, { header = {}, alg = key.alg } = {}) {
  return new SignJWT(claims).setProtectedHeader({ alg, kid: key.kid, typ: "JWT", ...header }).sign(key.privateKey);
}
/** replace one character in the middle of a base64url segment */
function flip(seg) {
  const i = Math.floor(seg.length / 2);
  return seg.slice(0, i) + (seg[i] === "A" ? "B" : "A") + seg.slice(i + 1);
}

describe("JWT validation (gateway with OAUTH_AUTHORIZATION_SERVERS, discovery at the test's issuers)", () => {
  let s1, proxy, gw, issSrv, ISS, ISS2, RESOURCE, prm;
  const keys = {};
  let iss2Key, stranger, rsaNoAlg;

  const claims = (extra = {}) => ({ iss: ISS, aud: RESOURCE, sub: "user-1", iat: now() - 5, exp: now() + 600, scope: "basic", ...extra });
  const initBody = { jsonrpc: "2.0", id: 1, method: "initialize",
    params: { protocolVersion: L.PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: "e2e-tokens", version: "1" } } };
  const post = (body, { token, sessionId, authorization } = {}) =>
    L.rpc(gw.url, body, { sessionId, headers: authorization !== undefined ? { authorization } : token ? L.bearer(token) : {} });
  const echo = (sessionId, opts) =>
    post({ jsonrpc: "2.0", id: 9, method: "tools/call", params: { name: "s1_echo", arguments: { text: "reached" } } }, { sessionId, ...opts });
  let goodSession;

  before(async () => {
    const gwPort = await L.freePort();
    RESOURCE = `http://127.0.0.1:${gwPort}/mcp`;
    prm = L.prmUrlFor(RESOURCE);
    for (const alg of ACCEPTED_ALGS) keys[alg] = await makeKey(alg, `k-${alg.toLowerCase()}`);
    rsaNoAlg = await makeKey("RS256", "k-rsa-no-alg", { publishAlg: false });
    iss2Key = await makeKey("ES256", "k-iss2");
    stranger = await makeKey("RS256", "k-stranger");            // never published
    issSrv = await startIssuerServer({
      iss: { keys: [...Object.values(keys), rsaNoAlg], discovery: "openid" },
      iss2: { keys: [iss2Key], discovery: "oauth" },              // only RFC 8414 metadata: the fallback
    });
    ISS = issSrv.issuerUrl("iss");
    ISS2 = issSrv.issuerUrl("iss2");
    s1 = await L.startExample({ name: "server1" });
    proxy = await L.startCountingProxy(s1.url);
    gw = await L.startGateway({ port: gwPort, servers: [{ name: "example/server1", url: proxy.url, prefix: "s1_" }],
      env: { OAUTH_RESOURCE: RESOURCE, OAUTH_AUTHORIZATION_SERVERS: `${ISS},${ISS2}` } });
    await L.waitHttp(`${gw.base}/readyz`, { ok: (s) => s === 200, what: "gateway ready (upstream listed)" });
    const good = await sign(keys.RS256, claims());
    goodSession = (await L.rawSession(gw.url, { headers: L.bearer(good) })).sessionId;
  });
  after(() => new Promise((r) => { issSrv?.closeAllConnections?.(); issSrv ? issSrv.close(() => r()) : r(); }).then(() => proxy?.close()));

  test("the issuer's discovery document and JWKS were used", () => {
    assert.ok(issSrv.hits.discovery.iss >= 1, `discovery hits: ${JSON.stringify(issSrv.hits)}`);
    assert.ok(issSrv.hits.jwks.iss >= 1, `jwks hits: ${JSON.stringify(issSrv.hits)}`);
  });

  for (const alg of ACCEPTED_ALGS) {
    test(`${alg} token accepted: initialize and tools/call reach the upstream`, async () => {
      const token = await sign(keys[alg], claims({ sub: `user-${alg}` }));
      const { sessionId } = await L.rawSession(gw.url, { headers: L.bearer(token) });
      const n = proxy.count("tools/call");
      const r = await echo(sessionId, { token });
      assert.equal(r.status, 200, `tools/call: ${r.headers.get("www-authenticate")}`);
      assert.equal(L.textOf(r.message?.result), "reached");
      assert.equal(proxy.count("tools/call"), n + 1, "one tools/call upstream");
    });
  }

  test("a JWK published without \"alg\" verifies an RS256 token", async () => {
    const token = await sign(rsaNoAlg, claims());
    const r = await echo(goodSession, { token });
    assert.equal(r.status, 200, `${r.headers.get("www-authenticate")}`);
  });

  test("a second issuer found through /.well-known/oauth-authorization-server (fallback) is accepted", async () => {
    const token = await sign(iss2Key, claims({ iss: ISS2 }));
    // a session belongs to issuer + subject: this identity needs its own
    const { sessionId } = await L.rawSession(gw.url, { headers: L.bearer(token) });
    const r = await echo(sessionId, { token });
    assert.equal(r.status, 200, `${r.headers.get("www-authenticate")}; issuer hits ${JSON.stringify(issSrv.hits)}`);
  });

  test("a session belongs to issuer + subject: the same sub from the other issuer gets 404", async () => {
    const r = await echo(goodSession, { token: await sign(iss2Key, claims({ iss: ISS2 })) });   // sub user-1 of ISS2
    assert.equal(r.status, 404, `${r.text ?? ""}`);
  });

  test("a single-string aud and an aud array holding the resource are both accepted", async () => {
    for (const aud of [RESOURCE, ["urn:other", RESOURCE]]) {
      const r = await echo(goodSession, { token: await sign(keys.ES256, claims({ aud })) });
      assert.equal(r.status, 200, `aud ${JSON.stringify(aud)}: ${r.headers.get("www-authenticate")}`);
    }
  });

  // ---------------------------------------------------------------- rejected tokens
  const BAD = {
    "expired": () => sign(keys.RS256, claims({ iat: now() - 7200, exp: now() - 3600 })),
    "nbf in the future": () => sign(keys.RS256, claims({ nbf: now() + 3600 })),
    "wrong issuer": () => sign(keys.RS256, claims({ iss: `${issSrv.base}/not-an-issuer` })),
    "issuer with a trailing slash": () => sign(keys.RS256, claims({ iss: `${ISS}/` })),
    "wrong audience": () => sign(keys.RS256, claims({ aud: `${new URL(RESOURCE).origin}/other` })),
    "no audience": () => sign(keys.RS256, claims({ aud: undefined })),
    "bad signature": async () => { const [h, p, s] = (await sign(keys.RS256, claims())).split("."); return `${h}.${p}.${flip(s)}`; },
    "tampered payload": async () => {
      const [h, , s] = (await sign(keys.ES256, claims())).split(".");
      return `${h}.${b64u(claims({ sub: "admin", scope: "basic admin" }))}.${s}`;
    },
    "alg none": async () => `${b64u({ alg: "none", typ: "JWT", kid: keys.RS256.kid })}.${b64u(claims())}.`,
    "alg none with a signature": async () => {
      const s = (await sign(keys.RS256, claims())).split(".")[2];
      return `${b64u({ alg: "none", typ: "JWT" })}.${b64u(claims())}.${s}`;
    },
    "HS256 keyed with the RSA public key": async () => {
      const pem = await exportSPKI(keys.RS256.publicKey);
      return new SignJWT(claims()).setProtectedHeader({ alg: "HS256", kid: keys.RS256.kid, typ: "JWT" }).sign(new TextEncoder().encode(pem));
    },
    "HS256 keyed with the JWK's n": async () => new SignJWT(claims())
      .setProtectedHeader({ alg: "HS256", kid: keys.RS256.kid, typ: "JWT" }).sign(new TextEncoder().encode(keys.RS256.jwk.n)),
    "unknown kid": () => sign(stranger, claims()),
    "a foreign key under a known kid": () => sign(stranger, claims(), { header: { kid: keys.RS256.kid } }),
    "no kid, foreign key": () => sign(stranger, claims(), { header: { kid: undefined } }),
    "header alg not the key's (RS256 header, EC kid)": async () => {
      const [, p, s] = (await sign(keys.RS256, claims())).split(".");
      return `${b64u({ alg: "RS256", typ: "JWT", kid: keys.ES256.kid })}.${p}.${s}`;
    },
    "PS256 header on an RS256 key's signature": async () => {
      const [, p, s] = (await sign(keys.RS256, claims())).split(".");
      return `${b64u({ alg: "PS256", typ: "JWT", kid: keys.RS256.kid })}.${p}.${s}`;
    },
    "the other issuer's key": () => sign(iss2Key, claims()),                 // iss = ISS, key of ISS2
    "expired by a string exp": () => sign(keys.RS256, claims({ exp: String(now() - 3600) })),
    "no exp": () => sign(keys.RS256, claims({ exp: undefined })),
    "exp not a number": () => sign(keys.RS256, claims({ exp: "tomorrow" })),
    "malformed: bad base64": async () => "eyJhbGciOiJSUzI1NiJ9!!.e30.c2ln",
    "malformed: bad JSON header": async () => `${b64u("{not json")}.${b64u(claims())}.c2ln`,
    "malformed: payload not JSON": async () => `${b64u({ alg: "RS256", kid: keys.RS256.kid })}.${b64u("[1,2")}.c2ln`,
    "malformed: two segments": async () => `${b64u({ alg: "RS256", kid: keys.RS256.kid })}.${b64u(claims())}`,
    "malformed: four segments": async () => `${await sign(keys.RS256, claims())}.e30`,
    "malformed: empty signature on RS256": async () => `${b64u({ alg: "RS256", kid: keys.RS256.kid })}.${b64u(claims())}.`,
    "malformed: a JWE (5 segments)": async () => "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d",
  };

  for (const [what, make] of Object.entries(BAD)) {
    test(`rejected: ${what} -> 401 invalid_token, upstream not reached`, async () => {
      const token = await make();
      const where = `${what} (${token.length > 80 ? `${token.slice(0, 77)}...` : token})`;
      L.assertUnauthorized(await post(initBody, { token }), { prm, presented: true, where: `initialize with ${where}` });
      const n = proxy.count("tools/call");
      L.assertUnauthorized(await echo(goodSession, { token }), { prm, presented: true, where: `tools/call with ${where}` });
      assert.equal(proxy.count("tools/call"), n, "the upstream saw no tools/call");
    });
  }

  test("empty or odd Authorization values: 401", async () => {
    for (const authorization of ["Bearer", "Bearer ", "Bearer  ", "bearer", "Token abc", "Basic Z3c6Z3c="]) {
      const r = await post(initBody, { authorization });
      assert.equal(r.status, 401, `Authorization: ${JSON.stringify(authorization)}`);
      assert.equal(r.text, L.UNAUTHORIZED_BODY, `Authorization: ${JSON.stringify(authorization)}`);
      assert.match(r.headers.get("www-authenticate") ?? "", new RegExp(`^Bearer resource_metadata="${prm.replace(/[.?/]/g, "\\$&")}"`));
    }
  });

  test("the good session still works after all that (valid token)", async () => {
    const n = proxy.count("tools/call");
    const r = await echo(goodSession, { token: await sign(keys.RS256, claims()) });
    assert.equal(r.status, 200);
    assert.equal(proxy.count("tools/call"), n + 1);
  });

  test("unknown kids do not make the gateway hammer the JWKS (refresh is rate limited)", async () => {
    const before = issSrv.hits.jwks.iss || 0;
    for (let i = 0; i < 20; i++) {
      const k = await makeKey("ES256", `k-unknown-${i}`);
      const r = await post(initBody, { token: await sign(k, claims()) });
      assert.equal(r.status, 401);
    }
    const fetched = (issSrv.hits.jwks.iss || 0) - before;
    assert.ok(fetched <= 3, `20 tokens with unknown kids caused ${fetched} JWKS fetches`);
  });
});

describe("JWT validation configured in YAML (auth: issuers with jwksUri, audiences, leeway, requiredScopes)", () => {
  let s1, proxy, gw, issSrv, key, ISS, RESOURCE, prm;
  const AUD = "urn:test:mcp-gateway";
  const claims = (extra = {}) => ({ iss: ISS, aud: AUD, sub: "yaml-user", iat: now() - 5, exp: now() + 600, scope: "basic mcp:tools", ...extra });
  const ping = (token) => L.rpc(gw.url, { jsonrpc: "2.0", id: 1, method: "initialize",
    params: { protocolVersion: L.PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: "yaml", version: "1" } } },
    { headers: token ? L.bearer(token) : {} });

  before(async () => {
    const gwPort = await L.freePort();
    RESOURCE = `http://127.0.0.1:${gwPort}/mcp`;
    prm = L.prmUrlFor(RESOURCE);
    key = await makeKey("ES256", "k-yaml");
    issSrv = await startIssuerServer({ keys: { keys: [key], discovery: "none" } });   // JWKS only, no discovery
    ISS = "https://issuer.invalid/realms/yaml";                                      // never contacted
    s1 = await L.startExample({ name: "server1" });
    proxy = await L.startCountingProxy(s1.url);
    const extra = `auth:
  enabled: true
  issuers:
    - issuerUrl: ${JSON.stringify(ISS)}
      jwksUri: ${JSON.stringify(`${issSrv.base}/keys/jwks`)}
  audiences: [${JSON.stringify(AUD)}]
  leewaySeconds: 120
  requiredScopes: ["mcp:tools"]
`;
    gw = await L.startGateway({ port: gwPort, logName: "gateway-yaml",
      config: L.writeConfig([{ name: "example/server1", url: proxy.url, prefix: "s1_" }], { extra }),
      env: { OAUTH_RESOURCE: RESOURCE } });
  });
  after(() => new Promise((r) => { issSrv?.closeAllConnections?.(); issSrv ? issSrv.close(() => r()) : r(); }).then(() => proxy?.close()));

  test("no token: 401 names the required scope", async () => {
    L.assertUnauthorized(await ping(), { prm, scope: "mcp:tools", where: "no token" });
  });

  test("a token with a configured audience, issuer and scope is accepted (JWKS from jwksUri)", async () => {
    const r = await ping(await sign(key, claims()));
    assert.equal(r.status, 200, `${r.headers.get("www-authenticate")}`);
    assert.ok(issSrv.hits.jwks.keys >= 1, "the configured jwksUri was fetched");
  });

  test("leeway: 30 s past exp is accepted with leewaySeconds 120; 10 minutes is not", async () => {
    assert.equal((await ping(await sign(key, claims({ exp: now() - 30 })))).status, 200, "30 s past exp");
    L.assertUnauthorized(await ping(await sign(key, claims({ exp: now() - 600 }))), { prm, scope: "mcp:tools", presented: true, where: "10 min past exp" });
    assert.equal((await ping(await sign(key, claims({ nbf: now() + 30 })))).status, 200, "nbf 30 s ahead");
  });

  test("the canonical resource is not an audience when `audiences` is set", async () => {
    L.assertUnauthorized(await ping(await sign(key, claims({ aud: "urn:someone-else" }))), { prm, scope: "mcp:tools", presented: true, where: "foreign aud" });
  });

  test("a token from an issuer not configured is rejected", async () => {
    L.assertUnauthorized(await ping(await sign(key, claims({ iss: "https://issuer.invalid/realms/other" }))),
      { prm, scope: "mcp:tools", presented: true, where: "other iss" });
  });

  test("a token without the required scope is refused (401 or 403 insufficient_scope) and reaches no upstream", async () => {
    const n = proxy.count("tools/call") + proxy.count("initialize");
    const r = await ping(await sign(key, claims({ scope: "basic" })));
    assert.ok([401, 403].includes(r.status), `status ${r.status}`);
    const h = L.parseWwwAuthenticate(r.headers.get("www-authenticate"));
    assert.equal(h?.scheme, "Bearer");
    assert.equal(h.params.scope, "mcp:tools", "names the required scope");
    if (r.status === 403) assert.equal(h.params.error, "insufficient_scope");
    else assert.equal(h.params.error, "invalid_token");
    assert.equal(proxy.count("tools/call") + proxy.count("initialize"), n);
  });
});
