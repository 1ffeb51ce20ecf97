// Upstream credentials (docs/external-servers.md): static credentials from the YAML, the environment and a
// file (read again on a 401), extra headers, RFC 8693 token exchange against the dev IdP (cached per caller, one
// exchange for 20 concurrent first calls), the gateway's own client credentials (refreshed before expiry),
// HTTPS upstreams with a CA made here (caCert, gatewayCACertPEM, tlsServerName, mTLS), 401 handling, and no
// secret in --check-config, /status or the gateway's log.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import path from "node:path";
import * as jose from "jose";
import * as L from "./lib.mjs";

after(L.cleanup);

const GRANT_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
/** What a guard answers with its 401: it must never reach a client. */
const UPSTREAM_401_BODY = '{"error":"invalid_token","detail":"upstream-private-401-body"}';

/** Every secret value used below: none may appear in --check-config output, /status or the gateway's log. */
const SECRETS = {
  yaml: "yaml-secret-A1-5f2c", env: "env-secret-B2-77aa", file: "file-secret-C3-9d01", file2: "file-secret-C3-rotated-4e4e",
  wrong: "wrong-secret-W4-1b1b", hdrEnv: "hdr-env-key-H5-0c0c", hdrFile: "hdr-file-key-H6-a9a9", discovery: "discovery-secret-D5-3131",
  teSecret: "mcp-gateway-secret", ccSecret: "gw-short-secret",
};

let idp;
before(async () => { idp = await L.startIdp(); });

/** A gateway config: servers with any keys (values written as JSON, which YAML reads as flow scalars). */
function yamlConfig(servers, extra = "") {
  let y = "servers:\n";
  for (const s of servers) {
    y += `  - name: ${JSON.stringify(s.name)}\n`;
    for (const [k, v] of Object.entries(s)) if (k !== "name" && v !== undefined) y += `    ${k}: ${JSON.stringify(v)}\n`;
  }
  return L.writeFile("gateway.yaml", y + extra);
}

/**
 * A guard in front of an upstream (our example server): a request whose Authorization `accept(auth, rec)` refuses
 * gets 401 with UPSTREAM_401_BODY; every request is recorded ({ method, rpc, headers, cert }). `tls`: https options.
 */
async function startGuard(target, { accept = () => true, tls } = {}) {
  const t = new URL(target);
  const g = { requests: [], rejected: [], accept };
  const handler = (req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", async () => {
      const body = Buffer.concat(chunks);
      let rpc = [];
      try { const j = JSON.parse(body.toString("utf8")); rpc = (Array.isArray(j) ? j : [j]).map((m) => m?.method ?? "(response)"); } catch { /* GET, DELETE */ }
      const cert = req.socket.getPeerCertificate?.();
      const rec = { method: req.method, rpc, headers: { ...req.headers }, cert: cert?.subject?.CN };
      g.requests.push(rec);
      let ok = false;
      try { ok = await g.accept(req.headers.authorization, rec); } catch { ok = false; }
      if (!ok) {
        g.rejected.push(rec);
        res.writeHead(401, { "content-type": "application/json", "www-authenticate": 'Bearer error="invalid_token"' });
        res.end(UPSTREAM_401_BODY);
        return;
      }
      L.forward(t, req, res, body);
    });
  };
  const srv = tls ? https.createServer(tls, handler) : http.createServer(handler);
  await new Promise((resolve, reject) => { srv.once("error", reject); srv.listen(0, "127.0.0.1", resolve); });
  g.port = srv.address().port;
  g.url = `${tls ? "https" : "http"}://127.0.0.1:${g.port}/mcp`;
  g.close = () => new Promise((resolve) => { srv.closeAllConnections?.(); srv.close(() => resolve()); });
  return g;
}

const idpStats = async () => (await fetch(`${idp.base}/admin/stats`, { signal: AbortSignal.timeout(5000) })).json();
const grantCount = (st, grant, client) => st.grants[grant]?.byClient?.[client]?.ok ?? 0;
const exchanges = async () => grantCount(await idpStats(), GRANT_EXCHANGE, "mcp-gateway");

const authEnv = (resource) => ({ OAUTH_RESOURCE: resource, OAUTH_AUTHORIZATION_SERVERS: idp.issuer });
/** Until the gateway has the IdP's keys (it fetches them after it starts): a token's ping succeeds. */
async function waitKeys(gw, resource) {
  const tok = await L.idpToken(idp, { resource });
  await L.waitFor(async () => (await L.rpc(gw.url, { jsonrpc: "2.0", id: 1, method: "ping" }, { headers: L.bearer(tok) })).status !== 401,
    { what: "the gateway to accept the IdP's tokens" });
}
const callTool = (gw, sessionId, token, name, args = {}, id = 5) =>
  L.rpc(gw.url, { jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args } },
        { sessionId, headers: token ? L.bearer(token) : {} });
/** The headers an upstream received for a call, from the example server's `headers` tool. */
async function upstreamHeaders(gw, sessionId, token, tool) {
  const r = await callTool(gw, sessionId, token, tool);
  assert.equal(r.status, 200, `${tool}: ${r.text ?? JSON.stringify(r.messages)}`);
  const text = L.textOf(r.message?.result);
  assert.ok(text, `${tool} answered: ${JSON.stringify(r.messages)}`);
  return JSON.parse(text);
}
async function statusOf(gw, name) {
  const r = await fetch(`${gw.base}/status/${name}`);
  return r.json();
}

function assertNoSecrets(text, where) {
  for (const [k, v] of Object.entries(SECRETS)) assert.ok(!text.includes(v), `${where} contains the secret ${k}`);
}

// ------------------------------------------------------------------------------------------------------------

describe("static credentials and extra headers", () => {
  let ex, gA, gB, gC, gw, dir, credFile, resource, cfgPath, env;
  let fileCred = `Bearer ${SECRETS.file}`;

  before(async () => {
    dir = L.tmpDir();
    ex = await L.startExample({ name: "server1" });
    gA = await startGuard(ex.url, { accept: (a) => a === `Bearer ${SECRETS.yaml}` });
    gB = await startGuard(ex.url, { accept: (a) => a === `Bearer ${SECRETS.env}` });
    gC = await startGuard(ex.url, { accept: (a) => a === fileCred });
    credFile = L.writeFile("upstream.cred", `${fileCred}\n`, dir);
    const hdrFile = L.writeFile("header.key", `${SECRETS.hdrFile}\n`, dir);
    const port = await L.freePort();
    resource = `http://127.0.0.1:${port}/mcp`;
    cfgPath = yamlConfig([
      { name: "static/yaml", url: gA.url, prefix: "a_", credential: `Bearer ${SECRETS.yaml}`,
        headers: { "X-Tenant": "acme", "X-Api-Key": { env: "E2E_HDR_KEY" }, "X-File-Key": { file: hdrFile } } },
      { name: "static/env", url: gB.url, prefix: "b_", credentialEnv: "E2E_UPSTREAM_CRED" },
      { name: "static/file", url: gC.url, prefix: "c_", credentialFile: credFile },
      { name: "static/wrong", url: gA.url, prefix: "w_", credential: `Bearer ${SECRETS.wrong}` },
    ]);
    env = { E2E_UPSTREAM_CRED: `Bearer ${SECRETS.env}`, E2E_HDR_KEY: SECRETS.hdrEnv };
    gw = await L.startGateway({ port, config: cfgPath, env: { ...authEnv(resource), ...env } });
    await waitKeys(gw, resource);
  });
  after(() => Promise.all([gA, gB, gC].map((g) => g?.close())));

  const token = () => L.idpToken(idp, { resource });

  test("each upstream is reached with its own credential; the wrong one is reported in /status", async () => {
    const tok = await token();
    const { sessionId } = await L.rawSession(gw.url, { headers: L.bearer(tok) });
    await L.waitFor(async () => {
      const r = await L.rpc(gw.url, { jsonrpc: "2.0", id: 2, method: "tools/list" }, { sessionId, headers: L.bearer(tok) });
      const names = (r.message?.result?.tools ?? []).map((t) => t.name);
      return ["a_headers", "b_headers", "c_headers"].every((n) => names.includes(n)) && !names.some((n) => n.startsWith("w_"));
    }, { what: "tools of the three servers with good credentials" });
    const st = await L.waitFor(async () => {
      const s = await statusOf(gw, "static/wrong");
      return /authentication to the upstream failed \(HTTP 401\)/.test(s.message) && s;
    }, { what: "/status of static/wrong to say authentication failed" });
    assert.equal(st.ready, false);
    assert.ok(!st.message.includes("upstream-private-401-body"), st.message);

    const a = await upstreamHeaders(gw, sessionId, tok, "a_headers");
    assert.equal(a.authorization, `Bearer ${SECRETS.yaml}`);
    assert.equal(a["x-tenant"], "acme");
    assert.equal(a["x-api-key"], SECRETS.hdrEnv);
    assert.equal(a["x-file-key"], SECRETS.hdrFile);
    assert.equal((await upstreamHeaders(gw, sessionId, tok, "b_headers")).authorization, `Bearer ${SECRETS.env}`);
    assert.equal((await upstreamHeaders(gw, sessionId, tok, "c_headers")).authorization, fileCred);
  });

  test("the client's own token never reaches an upstream", async () => {
    const tok = await token();
    const { client } = await L.connect(gw.url, { headers: L.bearer(tok) });
    try {
      await L.waitTools(client, (n) => n.includes("a_echo"));
      for (const t of ["a_echo", "b_echo", "c_echo"])
        assert.equal(L.textOf(await client.callTool({ name: t, arguments: { text: "x" } })), "x");
    } finally { await client.close(); }
    const all = [gA, gB, gC].flatMap((g) => g.requests);
    assert.ok(all.length > 10);
    const sig = tok.split(".")[2];
    for (const r of all) assert.ok(!JSON.stringify(r.headers).includes(sig), `a request to an upstream carried the client's token: ${JSON.stringify(r.headers)}`);
  });

  test("credentialFile is read again after a 401 and the call retried once", async () => {
    const tok = await token();
    const { sessionId } = await L.rawSession(gw.url, { headers: L.bearer(tok) });
    assert.equal(L.textOf((await callTool(gw, sessionId, tok, "c_echo", { text: "before" })).message?.result), "before");
    const rejectedBefore = gC.rejected.length;
    fileCred = `Bearer ${SECRETS.file2}`;          // the upstream now wants the rotated secret
    fs.writeFileSync(credFile, `${fileCred}\n`);
    const r = await callTool(gw, sessionId, tok, "c_echo", { text: "after rotation" });
    assert.equal(L.textOf(r.message?.result), "after rotation", JSON.stringify(r.messages));
    assert.equal(gC.rejected.length, rejectedBefore + 1, "one 401, then the retry with the file's new content");
    assert.equal((await upstreamHeaders(gw, sessionId, tok, "c_headers")).authorization, fileCred);
  });

  test("no secret in --check-config, /status or the log", async () => {
    const r = L.runSync(L.GATEWAY_BIN, ["--mcp-gateway-config", cfgPath, "--check-config"], { env });
    assert.equal(r.status, 0, r.stderr);
    assertNoSecrets(r.stdout + r.stderr, "--check-config output");
    for (const p of ["/status", "/status/static/wrong", "/status/static/yaml"]) {
      const s = await fetch(`${gw.base}${p}`);
      assertNoSecrets(await s.text(), p);
    }
    assertNoSecrets(gw.log(), "the gateway's log");
  });
});

// ------------------------------------------------------------------------------------------------------------

describe("per-caller tokens by RFC 8693 token exchange", () => {
  let ex, gX, gR, gF, gw, resource, jwks, seen;
  const AUD = "exchange/tools";

  before(async () => {
    jwks = jose.createRemoteJWKSet(new URL(idp.jwksUrl));
    seen = [];
    /** discovery with the gateway's static credential; calls with a token of the IdP for this server's audience */
    const acceptFor = (aud, rejectJwts = false) => async (a) => {
      if (a === `Bearer ${SECRETS.discovery}`) return true;
      if (rejectJwts || !a?.startsWith("Bearer ")) return false;
      const { payload } = await jose.jwtVerify(a.slice(7), jwks, { issuer: idp.issuer, audience: aud });
      seen.push(payload);
      return true;
    };
    ex = await L.startExample({ name: "server1" });
    gX = await startGuard(ex.url, { accept: acceptFor(AUD) });
    gR = await startGuard(ex.url, { accept: acceptFor("refuses-aud", true) });
    gF = await startGuard(ex.url);
    const port = await L.freePort();
    resource = `http://127.0.0.1:${port}/mcp`;
    const te = { tokenUrl: idp.tokenUrl, clientId: "mcp-gateway", clientSecretEnv: "E2E_TE_SECRET" };
    gw = await L.startGateway({ port, config: yamlConfig([
      { name: AUD, url: gX.url, prefix: "x_", credential: `Bearer ${SECRETS.discovery}`, tokenExchange: te },
      { name: "exchange/refuses", url: gR.url, prefix: "r_", credential: `Bearer ${SECRETS.discovery}`,
        tokenExchange: { ...te, audience: "refuses-aud", scope: "basic" } },
      { name: "forward/server", url: gF.url, prefix: "f_", forwardAuthorization: true },
    ]), env: { ...authEnv(resource), E2E_TE_SECRET: SECRETS.teSecret } });
    await waitKeys(gw, resource);
    await L.waitFor(async () => (await statusOf(gw, "exchange/refuses")).ready && (await statusOf(gw, AUD)).ready,
      { what: "both servers discovered with the static credential" });
  });
  after(() => Promise.all([gX, gR, gF].map((g) => g?.close())));

  const tokenOf = (clientId, secret) => L.idpToken(idp, { clientId, secret, resource });

  test("the upstream gets a token for its audience with the caller as subject; the next calls reuse it", async () => {
    const before0 = await exchanges();
    const tok = await tokenOf("gw-test", "gw-test-secret");
    const { sessionId } = await L.rawSession(gw.url, { headers: L.bearer(tok) });
    const h = await upstreamHeaders(gw, sessionId, tok, "x_headers");
    assert.match(h.authorization, /^Bearer ey/);
    const exchanged = h.authorization.slice(7);
    assert.notEqual(exchanged, tok, "not the caller's token");
    const { payload } = L.jwtParts(exchanged);
    assert.equal(payload.aud, AUD);
    assert.equal(payload.sub, "gw-test");
    assert.equal(payload.act?.sub, "mcp-gateway");
    assert.ok(payload.exp <= L.jwtParts(tok).payload.exp, "never outlives the caller's token");
    assert.equal(await exchanges(), before0 + 1, "one exchange");

    for (let i = 0; i < 3; i++) assert.equal(L.textOf((await callTool(gw, sessionId, tok, "x_echo", { text: `n${i}` })).message?.result), `n${i}`);
    const fresh = await tokenOf("gw-test", "gw-test-secret");   // a new token of the same subject
    assert.equal((await upstreamHeaders(gw, sessionId, fresh, "x_headers")).authorization, h.authorization);
    assert.equal(await exchanges(), before0 + 1, "no new exchange within the token's life");

    const tok2 = await tokenOf("gw-test-2", "gw-test-2-secret");
    const s2 = await L.rawSession(gw.url, { headers: L.bearer(tok2) });
    const h2 = await upstreamHeaders(gw, s2.sessionId, tok2, "x_headers");
    assert.equal(L.jwtParts(h2.authorization.slice(7)).payload.sub, "gw-test-2");
    assert.equal(await exchanges(), before0 + 2, "another caller: its own exchange");
    const sigs = [tok, fresh, tok2].map((t) => t.split(".")[2]);
    for (const r of gX.requests) for (const s of sigs) assert.ok(!JSON.stringify(r.headers).includes(s), "a caller's token reached the upstream");
  });

  test("20 concurrent first calls of a caller make one exchange", async () => {
    const tok = await tokenOf("gw-dev", "gw-dev-secret");
    const { sessionId } = await L.rawSession(gw.url, { headers: L.bearer(tok) });
    await fetch(`${idp.base}/admin/exchange-delay?ms=400`, { method: "POST" });
    try {
      const before0 = await exchanges();
      const calls = Array.from({ length: 20 }, (_, i) => L.rawHttp(gw.port, {
        headers: { ...L.mcpHeaders(sessionId), authorization: `Bearer ${tok}` },
        body: JSON.stringify({ jsonrpc: "2.0", id: 100 + i, method: "tools/call", params: { name: "x_echo", arguments: { text: `c${i}` } } }),
        timeout: 20000,
      }));
      const rs = await Promise.all(calls);
      rs.forEach((r, i) => {
        assert.equal(r.status, 200, `call ${i}: ${r.error?.message ?? r.body}`);
        assert.equal(L.textOf(r.json?.result), `c${i}`, `call ${i}: ${r.body}`);
      });
      assert.equal(await exchanges(), before0 + 1, "one exchange for all 20");
      assert.ok(seen.some((p) => p.sub === "gw-dev"));
    } finally {
      await fetch(`${idp.base}/admin/exchange-delay?ms=0`, { method: "POST" });
    }
  });

  test("an upstream that refuses the exchanged token: one retry with a fresh one, then a clear error", async () => {
    const tok = await tokenOf("gw-test", "gw-test-secret");
    const { sessionId } = await L.rawSession(gw.url, { headers: L.bearer(tok) });
    const before0 = await exchanges(), rejected0 = gR.rejected.length;
    const r = await callTool(gw, sessionId, tok, "r_echo", { text: "no" });
    assert.equal(r.status, 200);
    const e = r.message?.error;
    assert.ok(e, `a JSON-RPC error: ${JSON.stringify(r.messages)}`);
    assert.match(e.message, /authentication to upstream server exchange\/refuses failed \(HTTP 401\)/);
    assert.ok(!JSON.stringify(r.messages).includes("upstream-private-401-body"), "not the upstream's body");
    assert.equal(gR.rejected.length - rejected0, 2, "the first try and one retry");
    const [t1, t2] = gR.rejected.slice(-2).map((x) => x.headers.authorization);
    assert.notEqual(t1, t2, "the retry had a fresh token");
    assert.equal(L.jwtParts(t2.slice(7)).payload.aud, "refuses-aud");
    assert.equal(await exchanges(), before0 + 2, "the dropped token was exchanged anew, once");
  });

  test("forwardAuthorization (on request only): the caller's own token, and none for discovery", async () => {
    const tok = await tokenOf("gw-test", "gw-test-secret");
    const { sessionId } = await L.rawSession(gw.url, { headers: L.bearer(tok) });
    assert.equal((await upstreamHeaders(gw, sessionId, tok, "f_headers")).authorization, `Bearer ${tok}`);
    const discovery = gF.requests.filter((r) => r.rpc.includes("tools/list"));
    assert.ok(discovery.length > 0 && discovery.every((r) => r.headers.authorization === undefined));
    assert.match(gw.log(), /forwardAuthorization sends the caller's own token upstream/);
  });

  test("no secret in /status or the log", async () => {
    for (const p of ["/status", `/status/${AUD}`]) assertNoSecrets(await (await fetch(`${gw.base}${p}`)).text(), p);
    assertNoSecrets(gw.log(), "the gateway's log");
  });
});

// ------------------------------------------------------------------------------------------------------------

describe("the gateway's own client credentials", () => {
  let ex, g, gw, jwks, expiredSeen = 0;
  const RES = "https://cc.example/mcp";

  before(async () => {
    jwks = jose.createRemoteJWKSet(new URL(idp.jwksUrl));
    ex = await L.startExample({ name: "server1" });
    g = await startGuard(ex.url, { accept: async (a) => {
      if (!a?.startsWith("Bearer ")) return false;
      try {
        const { payload } = await jose.jwtVerify(a.slice(7), jwks, { issuer: idp.issuer, audience: RES });
        return payload.azp === "gw-short";
      } catch (e) {
        if (e.code === "ERR_JWT_EXPIRED") expiredSeen++;
        return false;
      }
    } });
    const secretFile = L.writeFile("cc.secret", `${SECRETS.ccSecret}\n`);
    gw = await L.startGateway({ checkInterval: 1, config: yamlConfig([
      { name: "cc/server", url: g.url, prefix: "k_",
        clientCredentials: { tokenUrl: idp.tokenUrl, clientId: "gw-short", clientSecretFile: secretFile, resource: RES } },
    ]) });
  });
  after(() => g?.close());

  test("a token is fetched for discovery and calls, and refreshed before it expires (3 s tokens)", async () => {
    await L.waitFor(async () => (await statusOf(gw, "cc/server")).ready, { what: "cc/server ready" });
    const n0 = grantCount(await idpStats(), "client_credentials", "gw-short");
    assert.ok(n0 >= 1);
    await L.sleep(5000);   // pings every second, across at least one expiry
    const n1 = grantCount(await idpStats(), "client_credentials", "gw-short");
    assert.ok(n1 >= n0 + 1, `refreshed: ${n0} → ${n1} tokens`);
    assert.equal(expiredSeen, 0, "the upstream never saw an expired token");
    assert.equal(g.rejected.length, 0, `rejected: ${JSON.stringify(g.rejected.map((r) => r.rpc))}`);
    assert.equal((await statusOf(gw, "cc/server")).ready, true);
    const { sessionId } = await L.rawSession(gw.url);
    const h = await upstreamHeaders(gw, sessionId, null, "k_headers");
    const { payload } = L.jwtParts(h.authorization.slice(7));
    assert.equal(payload.aud, RES);
    assert.equal(payload.azp, "gw-short");
    assertNoSecrets(gw.log(), "the gateway's log");
  });
});

// ------------------------------------------------------------------------------------------------------------

/** Two CAs, server certificates and a client certificate, made with the openssl command. */
function makePki(dir) {
  const ossl = (...a) => execFileSync("openssl", a, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  const ca = (name, cn) => ossl("req", "-x509", ...ec, "-keyout", `${name}.key`, "-out", `${name}.crt`, "-days", "2",
    "-subj", `/CN=${cn}`, "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign");
  const leaf = (name, caName, cn, ext) => {
    ossl("req", ...ec, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${cn}`);
    fs.writeFileSync(path.join(dir, `${name}.ext`), ext);
    ossl("x509", "-req", "-in", `${name}.csr`, "-CA", `${caName}.crt`, "-CAkey", `${caName}.key`, "-CAcreateserial",
         "-out", `${name}.crt`, "-days", "2", "-extfile", `${name}.ext`);
  };
  ca("ca1", "E2E Test CA 1");
  ca("ca2", "E2E Test CA 2");
  ca("cca", "E2E Client CA");
  leaf("srv1", "ca1", "127.0.0.1", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
  leaf("srv2", "ca2", "mcp.internal", "subjectAltName=DNS:mcp.internal\nextendedKeyUsage=serverAuth\n");
  leaf("client", "cca", "mcp-gateway-client", "extendedKeyUsage=clientAuth\n");
  const read = (f) => fs.readFileSync(path.join(dir, f), "utf8");
  return { read, file: (f) => path.join(dir, f) };
}

describe("HTTPS upstreams", () => {
  let ex, pki, t1, t2, tm, gw, cfgPath;

  before(async () => {
    pki = makePki(L.tmpDir());
    ex = await L.startExample({ name: "server1" });
    t1 = await startGuard(ex.url, { tls: { key: pki.read("srv1.key"), cert: pki.read("srv1.crt") } });
    t2 = await startGuard(ex.url, { tls: { key: pki.read("srv2.key"), cert: pki.read("srv2.crt") } });
    tm = await startGuard(ex.url, { tls: { key: pki.read("srv1.key"), cert: pki.read("srv1.crt"), ca: pki.read("cca.crt"),
                                           requestCert: true, rejectUnauthorized: true } });
    cfgPath = yamlConfig([
      { name: "tls/trusted", url: t1.url, prefix: "t_", caCert: pki.read("ca1.crt") },
      { name: "tls/untrusted", url: t1.url, prefix: "u_" },
      { name: "tls/name", url: t2.url, prefix: "n_", tlsServerName: "mcp.internal" },   // CA 2 is the gateway's
      { name: "tls/name-mismatch", url: t2.url, prefix: "nm_" },
      { name: "tls/mtls", url: tm.url, prefix: "m_", caCert: pki.read("ca1.crt"),
        clientCertFile: pki.file("client.crt"), clientKeyFile: pki.file("client.key") },
      { name: "tls/mtls-missing", url: tm.url, prefix: "mm_", caCert: pki.read("ca1.crt") },
    ], `gatewayCACertPEM: ${JSON.stringify(pki.read("ca2.crt"))}\n`);
    gw = await L.startGateway({ config: cfgPath });
  });
  after(() => Promise.all([t1, t2, tm].map((g) => g?.close())));

  test("verified against caCert, gatewayCACertPEM with tlsServerName, and with a client certificate", async () => {
    await L.waitFor(async () => {
      const all = await Promise.all(["tls/trusted", "tls/name", "tls/mtls"].map((n) => statusOf(gw, n)));
      return all.every((s) => s.ready);
    }, { what: "the three servers that should verify", timeout: 15000 });
    const { sessionId } = await L.rawSession(gw.url);
    for (const t of ["t_echo", "n_echo", "m_echo"])
      assert.equal(L.textOf((await callTool(gw, sessionId, null, t, { text: t })).message?.result), t);
    assert.ok(tm.requests.length > 0 && tm.requests.every((r) => r.cert === "mcp-gateway-client"), "mTLS: the client certificate");
  });

  test("certificate failures are in /status with what to configure", async () => {
    const msg = async (n) => (await statusOf(gw, n)).message;
    const untrusted = await L.waitFor(async () => { const m = await msg("tls/untrusted"); return /TLS/.test(m) && m; },
                                      { what: "tls/untrusted's /status message", timeout: 15000 });
    assert.match(untrusted, /certificate is not trusted/);
    assert.match(untrusted, /caCert/);
    const mismatch = await msg("tls/name-mismatch");
    assert.match(mismatch, /not trusted .*tlsServerName/);
    const mm = await msg("tls/mtls-missing");
    assert.match(mm, /TLS handshake with the upstream failed|TLS: the upstream closed the connection before answering/);
    assert.match(mm, /client certificate/);
    for (const n of ["tls/untrusted", "tls/name-mismatch", "tls/mtls-missing"]) assert.equal((await statusOf(gw, n)).ready, false, n);
  });

  test("the client key appears nowhere", async () => {
    const key = pki.read("client.key").split("\n")[1];
    const r = L.runSync(L.GATEWAY_BIN, ["--mcp-gateway-config", cfgPath, "--check-config"]);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(!(r.stdout + r.stderr).includes(key));
    assert.ok(!(await (await fetch(`${gw.base}/status`)).text()).includes(key));
    assert.ok(!gw.log().includes(key));
  });
});

// ------------------------------------------------------------------------------------------------------------

describe("--check-config: credential errors", () => {
  const check = (servers, env = {}) => {
    const f = yamlConfig(servers);
    return L.runSync(L.GATEWAY_BIN, ["--mcp-gateway-config", f, "--check-config"], { env });
  };
  const base = { name: "s", url: "http://127.0.0.1:1/mcp" };

  test("errors name the key, the variable or the file, never a value", () => {
    const cases = [
      [{ ...base, credential: `Bearer ${SECRETS.yaml}`, credentialEnv: "E2E_X" }, /'credentialEnv' and 'credential' .* keep one/],
      [{ ...base, credentialEnv: "E2E_UNSET_VAR_1" }, /environment variable E2E_UNSET_VAR_1 is not set/],
      [{ ...base, credentialFile: "/nonexistent/cred" }, /credentialFile: \/nonexistent\/cred No such file/],
      [{ ...base, credential: `Bearer ${SECRETS.yaml}\nX-Injected: 1` }, /contains a line break/],
      [{ ...base, tokenExchange: { clientId: "mcp-gateway" } }, /tokenExchange needs tokenUrl/],
      [{ ...base, tokenExchange: { tokenUrl: "http://idp/token", clientId: "c" }, forwardAuthorization: true }, /keep one/],
      [{ ...base, clientCredentials: { tokenUrl: "http://idp/token", clientId: "c", clientSecret: SECRETS.ccSecret },
         credential: `Bearer ${SECRETS.yaml}` }, /both give the gateway's credential/],
      [{ ...base, headers: { Authorization: `Bearer ${SECRETS.yaml}` } }, /header 'Authorization' is the gateway's own/],
      [{ ...base, headers: { "X-Key": { env: "E2E_UNSET_VAR_2" } } }, /E2E_UNSET_VAR_2 is not set/],
      [{ ...base, clientCert: "not a pem" }, /clientCert is not a PEM certificate/],
    ];
    for (const [srv, re] of cases) {
      const r = check([srv], { E2E_X: `Bearer ${SECRETS.env}` });
      assert.notEqual(r.status, 0, `${JSON.stringify(srv)} should be refused`);
      assert.match(r.stderr, re, JSON.stringify(srv));
      assert.match(r.stderr, /gateway\.yaml:\d+:/, "file:line");
      assertNoSecrets(r.stdout + r.stderr, `--check-config of ${JSON.stringify(srv)}`);
    }
  });

  test("a good file passes and prints no secret", () => {
    const r = check([{ ...base, credentialEnv: "E2E_X", headers: { "X-Api-Key": { env: "E2E_H" } },
                       tokenExchange: { tokenUrl: "http://idp/token", clientId: "mcp-gateway", clientSecret: SECRETS.teSecret } }],
                    { E2E_X: `Bearer ${SECRETS.env}`, E2E_H: SECRETS.hdrEnv });
    assert.equal(r.status, 0, r.stderr);
    assertNoSecrets(r.stdout + r.stderr, "--check-config");
  });
});
