// Complete OAuth flows without a human, against the gateway and the development IdP:
//   1. mcp-remote (a real third-party MCP client) with a headless "browser" (fake-browser.sh) against the IdP in
//      AUTO_APPROVE mode: 401 -> PRM -> AS metadata -> dynamic registration -> authorization code + PKCE with
//      `resource` -> token -> tools/list and tools/call through the gateway.
//   2. The official SDK client's OAuth support, with a provider whose redirectToAuthorization "is the browser":
//      it follows the redirects with fetch and fills in the IdP's real login form (a wrong password first).
//   3. The SDK's client_credentials provider (machine to machine), discovering everything from the 401.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { ClientCredentialsProvider } from "@modelcontextprotocol/sdk/client/auth-extensions.js";
import * as L from "./lib.mjs";

after(L.cleanup);

const MCP_USER_SUB = "7c5b3c7e-3f7a-4c1e-9a53-6d1f5c0e2a01";   // user mcp in examples/idp/dev-idp.mjs
const SCOPES = "basic,groups,roles,profile";

/** An IdP plus a gateway (resource http://127.0.0.1:<port>/mcp) in front of one example server. */
async function stack({ autoApprove, tag }) {
  const port = await L.freePort();
  const resource = `http://127.0.0.1:${port}/mcp`;
  const [idp, s1] = await Promise.all([
    L.startIdp({ autoApprove, logName: `idp-${tag}`, env: { IDP_DEBUG: "1" } }),
    L.startExample({ name: "server1", logName: `example-${tag}` }),
  ]);
  const gw = await L.startGateway({ port, logName: `gateway-${tag}`,
    servers: [{ name: "example/server1", url: s1.url, prefix: "s1_" }],
    env: { OAUTH_RESOURCE_NAME: "MCP Server", OAUTH_RESOURCE: resource, OAUTH_AUTHORIZATION_SERVERS: idp.issuer,
           OAUTH_SCOPES_SUPPORTED: SCOPES } });
  await L.waitHttp(`${gw.base}/readyz`, { ok: (s) => s === 200, what: "gateway ready" });
  return { idp, s1, gw, resource };
}

// ------------------------------------------------------------------ 1. mcp-remote + fake browser

describe("mcp-remote: DCR + authorization code + PKCE through a headless browser (AUTO_APPROVE)", () => {
  let st, child, dir, stderrLog, browserLog;
  before(async () => { st = await stack({ autoApprove: true, tag: "auto" }); });
  after(() => { if (child && child.exitCode === null) child.kill("SIGKILL"); });

  test("tools/list and tools/call succeed after the OAuth dance", { timeout: 25000 }, async () => {
    dir = L.tmpDir();
    const callbackPort = await L.freePort();
    stderrLog = path.join(L.LOG_DIR, "63-auth-flow-mcp-remote.log");
    browserLog = path.join(L.LOG_DIR, "63-auth-flow-fake-browser.log");
    fs.writeFileSync(browserLog, "");
    const errFd = fs.openSync(stderrLog, "w");
    child = spawn(process.execPath, [L.MCP_REMOTE_JS, st.gw.url, String(callbackPort), "--allow-http",
                                     "--transport", "http-only", "--host", "127.0.0.1"], {
      cwd: dir, stdio: ["pipe", "pipe", errFd],
      env: { ...process.env, BROWSER: L.FAKE_BROWSER, FAKE_BROWSER_LOG: browserLog, MCP_REMOTE_CONFIG_DIR: dir, HOME: dir },
    });
    fs.closeSync(errFd);
    const msgs = [];
    let buf = "";
    child.stdout.on("data", (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i).trim(); buf = buf.slice(i + 1);
        if (line) try { msgs.push(JSON.parse(line)); } catch { /* not JSON */ }
      }
    });
    const send = (m) => child.stdin.write(`${JSON.stringify(m)}\n`);
    const reply = (id, what) => L.waitFor(() => msgs.find((m) => m.id === id), { timeout: 20000, interval: 100,
      what: `${what} through mcp-remote (its log: ${stderrLog}; browser: ${browserLog})` })
      .catch((e) => { e.message += `\n  mcp-remote stderr tail:\n    ${fs.readFileSync(stderrLog, "utf8").trim().split("\n").slice(-12).join("\n    ")}`; throw e; });

    send({ jsonrpc: "2.0", id: 1, method: "initialize",
           params: { protocolVersion: L.PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: "e2e-mcp-remote", version: "1" } } });
    const init = await reply(1, "initialize");
    assert.ok(init.result, `initialize: ${JSON.stringify(init)}`);
    send({ jsonrpc: "2.0", method: "notifications/initialized" });
    send({ jsonrpc: "2.0", id: 2, method: "tools/list" });
    const list = await reply(2, "tools/list");
    const names = (list.result?.tools ?? []).map((t) => t.name);
    assert.ok(names.includes("s1_echo"), `tools: ${names.join(", ")} ${JSON.stringify(list.error ?? "")}`);
    send({ jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: "s1_echo", arguments: { text: "via mcp-remote" } } });
    const call = await reply(3, "tools/call");
    assert.equal(L.textOf(call.result), "via mcp-remote", JSON.stringify(call));
    const h = await (async () => { send({ jsonrpc: "2.0", id: 4, method: "tools/call", params: { name: "s1_headers", arguments: {} } });
                                   return JSON.parse(L.textOf((await reply(4, "tools/call headers")).result)); })();
    assert.equal(h.authorization, undefined, "the user's token did not reach the upstream");
  });

  test("the token mcp-remote got came from the authorization code flow with the resource as audience", () => {
    const files = fs.readdirSync(dir, { recursive: true }).filter((f) => String(f).endsWith("tokens.json"));
    assert.ok(files.length, `mcp-remote stored tokens under ${dir}`);
    const tokens = JSON.parse(fs.readFileSync(path.join(dir, String(files[0])), "utf8"));
    const { payload } = L.jwtParts(tokens.access_token);
    assert.equal(payload.aud, st.resource, "aud = the gateway's resource (RFC 8707)");
    assert.equal(payload.iss, st.idp.issuer);
    assert.equal(payload.sub, MCP_USER_SUB, "the user mcp (auto-approved login)");
    assert.deepEqual(payload.groups, ["mcp-users", "accounting", "engineering"]);
    const log = st.idp.log();
    assert.match(log, /POST \/realms\/mcp\/clients-registrations\/openid-connect/, "dynamic client registration");
    assert.match(log, /GET \/realms\/mcp\/protocol\/openid-connect\/auth\?[^\n]*code_challenge_method=S256/, "PKCE S256");
    assert.match(log, /GET \/realms\/mcp\/protocol\/openid-connect\/auth\?[^\n]*resource=/, "resource indicator in the authorization request");
    assert.match(log, /POST \/realms\/mcp\/protocol\/openid-connect\/token/, "code exchanged for a token");
  });
});

// ------------------------------------------------------------------ 2. SDK client, real login form

/** A minimal cookie-keeping "browser" on fetch that never follows redirects itself. */
function browser() {
  const jar = new Map();
  return async (url, init = {}) => {
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join("; ");
    const r = await fetch(url, { ...init, redirect: "manual", signal: AbortSignal.timeout(10000),
                                 headers: { ...(init.headers || {}), ...(cookie ? { cookie } : {}) } });
    for (const c of r.headers.getSetCookie()) {
      const kv = c.split(";")[0];
      const i = kv.indexOf("=");
      if (/max-age=0|expires=thu, 01 jan 1970/i.test(c)) jar.delete(kv.slice(0, i)); else jar.set(kv.slice(0, i), kv.slice(i + 1));
    }
    return r;
  };
}

class HeadlessUserProvider {
  constructor(redirectUrl, { username, passwords }) {
    this._redirectUrl = redirectUrl;
    this.username = username;
    this.passwords = passwords;          // tried in order
    this.pages = [];                     // what the "user" saw
    this.authorizationUrl = undefined;
    this.code = undefined;
  }
  get redirectUrl() { return this._redirectUrl; }
  get clientMetadata() {
    return { client_name: "e2e SDK headless user", redirect_uris: [this._redirectUrl], grant_types: ["authorization_code", "refresh_token"],
             response_types: ["code"], token_endpoint_auth_method: "none" };
  }
  clientInformation() { return this._client; }
  saveClientInformation(c) { this._client = c; }
  tokens() { return this._tokens; }
  saveTokens(t) { this._tokens = t; }
  saveCodeVerifier(v) { this._verifier = v; }
  codeVerifier() { return this._verifier; }
  async redirectToAuthorization(url) {
    this.authorizationUrl = new URL(url);
    const go = browser();
    let r = await go(url);
    let at = new URL(url);
    const passwords = [...this.passwords];
    for (let step = 0; step < 20; step++) {
      if (r.status >= 300 && r.status < 400) {
        at = new URL(r.headers.get("location"), at);
        await r.body?.cancel();
        if (at.href.startsWith(this._redirectUrl)) {
          if (at.searchParams.get("error")) throw new Error(`authorization error: ${at.search}`);
          this.code = at.searchParams.get("code");
          this.iss = at.searchParams.get("iss");
          return;
        }
        r = await go(at);
        continue;
      }
      const html = await r.text();
      this.pages.push({ status: r.status, url: at.href, html });
      const action = /<form[^>]*method="post"[^>]*action="([^"]*\/login)"/i.exec(html)?.[1];
      if (r.status !== 200 || !action) throw new Error(`unexpected page at ${at.href}: HTTP ${r.status} ${html.slice(0, 300)}`);
      if (!passwords.length) throw new Error("login form shown again with no passwords left");
      const body = new URLSearchParams({ username: this.username, password: passwords.shift() });
      at = new URL(action.replace(/&amp;/g, "&"), at);
      r = await go(at, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body });
    }
    throw new Error("too many redirects");
  }
}

describe("SDK client OAuth (authorization code + PKCE) with the IdP's real login page", () => {
  let st;
  before(async () => { st = await stack({ autoApprove: false, tag: "login" }); });

  test("401 -> discovery -> DCR -> login form (wrong, then right password) -> token -> tools/call", { timeout: 25000 }, async () => {
    const cbPort = await L.freePort();   // never listened on: the provider reads the code from the redirect
    const provider = new HeadlessUserProvider(`http://127.0.0.1:${cbPort}/oauth/callback`, { username: "mcp", passwords: ["wrong", "mcp"] });
    const client = new Client({ name: "e2e-sdk-oauth", version: "1" }, { capabilities: {} });
    const t1 = new StreamableHTTPClientTransport(new URL(st.gw.url), { authProvider: provider });
    await assert.rejects(client.connect(t1), (e) => e instanceof UnauthorizedError, "the first connect needs authorization");
    assert.ok(provider.code, `an authorization code (pages seen: ${provider.pages.map((p) => p.url).join(", ")})`);
    assert.equal(provider.iss, st.idp.issuer, "RFC 9207 iss in the redirect");

    // what the user saw: the login form, then the same form with an error after the wrong password
    assert.equal(provider.pages.length, 2, "two login pages");
    const [first, second] = provider.pages;
    assert.match(first.html, /<label for="username">/);
    assert.match(first.html, /<input id="password" name="password" type="password"/);
    assert.doesNotMatch(first.html, /role="alert"/);
    assert.match(second.html, /role="alert">Invalid username or password\.</);
    // the authorization request: PKCE S256, the resource indicator, scopes from the PRM
    const q = provider.authorizationUrl.searchParams;
    assert.equal(q.get("code_challenge_method"), "S256");
    assert.equal(q.get("resource"), st.resource);
    assert.ok(provider.clientInformation()?.client_id, "registered dynamically");

    await t1.finishAuth(provider.code);
    const { payload } = L.jwtParts(provider.tokens().access_token);
    assert.equal(payload.aud, st.resource);
    assert.equal(payload.sub, MCP_USER_SUB);
    assert.equal(payload.preferred_username, "mcp");
    assert.deepEqual(payload.resource_access?.["example/server1"]?.roles, ["tool:greet", "tool:echo"]);

    const t2 = new StreamableHTTPClientTransport(new URL(st.gw.url), { authProvider: provider });
    await client.connect(t2);
    try {
      assert.ok(t2.sessionId);
      const names = await L.toolNames(client);
      assert.ok(names.includes("s1_greet"), names.join(", "));
      assert.equal(L.textOf(await client.callTool({ name: "s1_echo", arguments: { text: "logged in" } })), "logged in");
    } finally {
      await client.close().catch(() => {});
    }
  });

  test("the login page rejects an unknown user and a cancel ends the flow with access_denied", async () => {
    // straight against the IdP: register, start an authorization, post an unknown user, then cancel
    const go = browser();
    const meta = await (await fetch(`${st.idp.issuer}/.well-known/openid-configuration`)).json();
    const redirect = "http://127.0.0.1:1/cb";
    const reg = await fetch(meta.registration_endpoint, { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ redirect_uris: [redirect], token_endpoint_auth_method: "none", grant_types: ["authorization_code"], response_types: ["code"] }) });
    assert.equal(reg.status, 201);
    const { client_id } = await reg.json();
    const u = new URL(meta.authorization_endpoint);
    for (const [k, v] of Object.entries({ client_id, response_type: "code", redirect_uri: redirect, scope: "openid basic",
      code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", code_challenge_method: "S256", resource: st.resource, state: "s" }))
      u.searchParams.set(k, v);
    let r = await go(u);
    assert.equal(r.status, 303);
    const loginUrl = new URL(r.headers.get("location"), u);
    const page = await (await go(loginUrl)).text();
    const action = new URL(/action="([^"]*\/login)"/.exec(page)[1], loginUrl);
    r = await go(action, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" },
                           body: new URLSearchParams({ username: "nobody", password: "mcp" }) });
    assert.equal(r.status, 200);
    assert.match(await r.text(), /Invalid username or password/);
    const abort = new URL(/action="([^"]*\/abort)"/.exec(page)[1], loginUrl);
    r = await go(abort, { method: "POST" });
    for (let i = 0; i < 5 && r.status >= 300 && r.status < 400 && !r.headers.get("location").startsWith(redirect); i++)
      r = await go(new URL(r.headers.get("location"), u));
    const back = new URL(r.headers.get("location"), u);
    assert.ok(back.href.startsWith(redirect), back.href);
    assert.equal(back.searchParams.get("error"), "access_denied");
  });
});

// ------------------------------------------------------------------ 3. SDK client_credentials provider

describe("SDK client_credentials provider: 401 -> PRM -> AS metadata -> token with resource", () => {
  let st;
  before(async () => { st = await stack({ autoApprove: true, tag: "cc" }); });

  test("connects, lists and calls with a machine token", async () => {
    const provider = new ClientCredentialsProvider({ clientId: "gw-test", clientSecret: "gw-test-secret", expectedIssuer: st.idp.issuer });
    const client = new Client({ name: "e2e-cc", version: "1" }, { capabilities: {} });
    const transport = new StreamableHTTPClientTransport(new URL(st.gw.url), { authProvider: provider });
    await client.connect(transport);
    try {
      const { payload } = L.jwtParts(provider.tokens().access_token);
      assert.equal(payload.aud, st.resource);
      assert.equal(payload.sub, "gw-test");
      assert.ok((await L.toolNames(client)).includes("s1_add"));
      const r = await client.callTool({ name: "s1_add", arguments: { a: 20, b: 22 } });
      assert.equal(r.structuredContent?.sum, 42);
    } finally {
      await client.close().catch(() => {});
    }
  });
});
