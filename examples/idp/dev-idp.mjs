#!/usr/bin/env node
// Development identity provider for mcp-gateway: an OpenID Provider (panva's oidc-provider) set up like the
// Keycloak realm of the Kuadrant MCP Gateway's authentication guide, so `make run` and the tests need no Keycloak.
//
//   issuer    http://127.0.0.1:8002/realms/mcp   (<issuer>/.well-known/openid-configuration works, Keycloak style;
//             so do the RFC 8414 forms /.well-known/oauth-authorization-server/realms/mcp and
//             <issuer>/.well-known/oauth-authorization-server)
//   users     mcp / mcp   groups mcp-users, accounting, engineering; client roles in resource_access
//             dev / dev   groups mcp-users, engineering; realm role developer; other client roles
//   tokens    JWT access tokens (typ at+jwt) with aud = the RFC 8707 resource, 30 minutes
//   clients   anonymous dynamic client registration at <issuer>/clients-registrations/openid-connect; authorization code + PKCE S256;
//             client_credentials for gw-test / gw-test-secret (user mcp's claims), gw-dev / gw-dev-secret (user dev's)
//             (and gw-test-post, gw-test-2, gw-short; see README.md)
//   exchange  RFC 8693 token exchange (grant_type urn:ietf:params:oauth:grant-type:token-exchange) for the gateway's
//             own client mcp-gateway / mcp-gateway-secret, as the seed realm enables it: a new token for the
//             subject token's sub, with aud = the requested audience (or resource)
//   login     a real HTML login form (wrong password -> error message); consent is granted automatically
//
// Environment (see examples/idp/README.md):
//   IDP_PORT (8002)  IDP_HOST (127.0.0.1)  ISSUER (http://127.0.0.1:$IDP_PORT/realms/mcp)
//   RESOURCE          comma-separated resource indicators accepted; unset = any http(s) URL
//   DEFAULT_RESOURCE  audience when a client sends no `resource` (first of RESOURCE, else http://localhost:8080/mcp)
//   TOKEN_TTL (1800)  ALG (RS256; also RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA) for access tokens
//   AUTO_APPROVE=1    no login page: every authorization request is logged in as `mcp` (headless tests)
//   EXCHANGE_TTL (300) lifetime of exchanged tokens (never past the subject token's exp)
//   EXCHANGE_DELAY_MS (0) answer token exchanges this much later (tests of concurrent exchanges)
//   IDP_TEST_HOOKS=1  POST /admin/rotate-keys, POST /admin/alg?alg=ES256, GET /admin/keys, GET /admin/stats,
//                     POST /admin/exchange-delay?ms=N (tests only)
//   IDP_DEBUG=1       log every request on stderr
import http from "node:http";
import crypto from "node:crypto";
import path from "node:path";
import { createRequire } from "node:module";
import { Readable } from "node:stream";
import { fileURLToPath, pathToFileURL } from "node:url";

// ------------------------------------------------------------------ oidc-provider (from tests/node_modules)

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
async function loadOidcProvider() {
  try {
    return await import("oidc-provider");
  } catch {
    const dir = process.env.IDP_NODE_MODULES || path.join(ROOT, "tests/node_modules");
    try {
      const entry = createRequire(path.join(dir, "..", "package.json")).resolve("oidc-provider");
      return await import(pathToFileURL(entry).href);
    } catch (e) {
      console.error(`dev-idp: cannot load oidc-provider from ${dir} (${e.message}); run scripts/deps.sh test`);
      process.exit(1);
    }
  }
}
const { default: Provider, errors } = await loadOidcProvider();
// jose comes with oidc-provider
const jose = await (async () => {
  try { return await import("jose"); } catch {
    const dir = process.env.IDP_NODE_MODULES || path.join(ROOT, "tests/node_modules");
    return import(pathToFileURL(createRequire(path.join(dir, "..", "package.json")).resolve("jose")).href);
  }
})();

// ------------------------------------------------------------------ settings

const PORT = Number(process.env.IDP_PORT || 8002);
const HOST = process.env.IDP_HOST || "127.0.0.1";
const ISSUER = (process.env.ISSUER || `http://127.0.0.1:${PORT}/realms/mcp`).replace(/\/+$/, "");
const MOUNT = new URL(ISSUER).pathname.replace(/\/+$/, "");       // "/realms/mcp" ("" when the issuer has no path)
const RESOURCES = (process.env.RESOURCE || "").split(",").map((s) => s.trim()).filter(Boolean);
const DEFAULT_RESOURCE = process.env.DEFAULT_RESOURCE || RESOURCES[0] || "http://localhost:8080/mcp";
const TOKEN_TTL = Number(process.env.TOKEN_TTL || 1800);
const EXCHANGE_TTL = Number(process.env.EXCHANGE_TTL || 300);
let exchangeDelayMs = Number(process.env.EXCHANGE_DELAY_MS || 0);
const GRANT_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
const TYPE_ACCESS = "urn:ietf:params:oauth:token-type:access_token";
const AUTO_APPROVE = /^(1|true|yes)$/i.test(process.env.AUTO_APPROVE || "");
const TEST_HOOKS = /^(1|true|yes)$/i.test(process.env.IDP_TEST_HOOKS || "");
const DEBUG = /^(1|true|yes)$/i.test(process.env.IDP_DEBUG || "");
const RESOURCE_SCOPES = ["basic", "groups", "roles", "profile"];
// Keycloak's endpoint paths under the issuer
const ROUTES = {
  authorization: "/protocol/openid-connect/auth", token: "/protocol/openid-connect/token",
  jwks: "/protocol/openid-connect/certs", userinfo: "/protocol/openid-connect/userinfo",
  end_session: "/protocol/openid-connect/logout", introspection: "/protocol/openid-connect/token/introspect",
  revocation: "/protocol/openid-connect/revoke", registration: "/clients-registrations/openid-connect",
  pushed_authorization_request: "/protocol/openid-connect/ext/par/request",
};
const debug = (...a) => DEBUG && console.error("dev-idp:", ...a);

const RSA_ALGS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"];
const ALGS = [...RSA_ALGS, "ES256", "ES384", "EdDSA"];
let accessTokenAlg = process.env.ALG || "RS256";
if (!ALGS.includes(accessTokenAlg)) {
  console.error(`dev-idp: ALG must be one of ${ALGS.join(", ")}`);
  process.exit(2);
}

// ------------------------------------------------------------------ accounts (the seed's Keycloak realm)

const USERS = {
  mcp: {
    password: "mcp",
    sub: "7c5b3c7e-3f7a-4c1e-9a53-6d1f5c0e2a01",          // Keycloak-style user id
    claims: {
      preferred_username: "mcp", name: "MCP User", given_name: "MCP", family_name: "User",
      email: "mcp@example.com", email_verified: true,
      groups: ["mcp-users", "accounting", "engineering"],
      realm_access: { roles: ["default-roles-mcp", "offline_access", "uma_authorization"] },
      resource_access: {
        "example/server1": { roles: ["tool:greet", "tool:echo"] },
        "example/server2": { roles: ["tool:add"] },
      },
    },
  },
  // a second user for the authorization examples: other groups, a realm role, other client roles
  dev: {
    password: "dev",
    sub: "3f0e9b2a-8d4c-4b7e-a1f6-0c2d9e8b7a02",
    claims: {
      preferred_username: "dev", name: "Dev Eloper", given_name: "Dev", family_name: "Eloper",
      email: "dev@example.com", email_verified: true,
      groups: ["mcp-users", "engineering"],
      realm_access: { roles: ["default-roles-mcp", "offline_access", "uma_authorization", "developer"] },
      resource_access: {
        "example/server1": { roles: ["tool:echo", "tool:headers"] },
        "example/server2": { roles: ["tool:greet", "tool:slow"] },
      },
    },
  },
};
const BY_SUB = Object.fromEntries(Object.entries(USERS).map(([name, u]) => [u.sub, { name, ...u }]));

// Pre-registered confidential clients for client_credentials. Their tokens' sub is the client id; `claims`
// are added to their access tokens like a Keycloak service account's; `ttl` (seconds) overrides TOKEN_TTL;
// `grants` adds grant types (mcp-gateway: token exchange, like the seed realm's client of that name).
const SERVICE_CLIENTS = {
  "mcp-gateway": { secret: "mcp-gateway-secret", auth: "client_secret_basic", grants: [GRANT_EXCHANGE],
    claims: { groups: [], resource_access: {} } },
  "gw-short": { secret: "gw-short-secret", auth: "client_secret_basic", ttl: 3, claims: { groups: [], resource_access: {} } },
  "gw-test": { secret: "gw-test-secret", auth: "client_secret_basic",
    claims: { groups: USERS.mcp.claims.groups, resource_access: USERS.mcp.claims.resource_access } },
  "gw-test-post": { secret: "gw-test-secret", auth: "client_secret_post",
    claims: { groups: USERS.mcp.claims.groups, resource_access: USERS.mcp.claims.resource_access } },
  "gw-test-2": { secret: "gw-test-2-secret", auth: "client_secret_basic", claims: { groups: [], resource_access: {} } },
  "gw-dev": { secret: "gw-dev-secret", auth: "client_secret_basic",
    claims: { groups: USERS.dev.claims.groups, realm_access: USERS.dev.claims.realm_access,
              resource_access: USERS.dev.claims.resource_access } },
};

async function findAccount(_ctx, sub) {
  const u = BY_SUB[sub];
  if (!u) return undefined;
  return {
    accountId: sub,
    async claims() { return { sub, ...u.claims }; },
  };
}

// ------------------------------------------------------------------ keys

const rand = () => crypto.randomBytes(4).toString("hex");
function newKey(alg) {
  let k;
  if (RSA_ALGS.includes(alg)) k = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
  else if (alg === "ES256") k = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
  else if (alg === "ES384") k = crypto.generateKeyPairSync("ec", { namedCurve: "P-384" }).privateKey;
  else if (alg === "EdDSA") k = crypto.generateKeyPairSync("ed25519").privateKey;
  else throw new Error(`unsupported alg ${alg}`);
  // a fresh kid on every generation: a resource server's JWKS cache must never see two keys under one kid
  return { ...k.export({ format: "jwk" }), kid: `${alg.toLowerCase()}-${Date.now().toString(36)}-${rand()}`, alg, use: "sig" };
}
// RS256 always (ID tokens), ES256 and EdDSA always (so ALG can switch without new keys), plus the ALG's own key
function keySet(algs) {
  return [...new Set(["RS256", "ES256", "EdDSA", ...algs])].map(newKey);
}
let keys = keySet([accessTokenAlg]);

// ------------------------------------------------------------------ the provider

const cookieKeys = [crypto.randomBytes(32).toString("base64url")];

function resourceAllowed(indicator) {
  if (RESOURCES.length) return RESOURCES.includes(indicator);
  try { return ["http:", "https:"].includes(new URL(indicator).protocol) && !new URL(indicator).hash; } catch { return false; }
}

function buildProvider() {
  const provider = new Provider(ISSUER, {
    jwks: { keys },
    findAccount,
    clients: Object.entries(SERVICE_CLIENTS).map(([id, c]) => ({
      client_id: id, client_secret: c.secret, grant_types: ["client_credentials", ...(c.grants || [])], redirect_uris: [],
      response_types: [], token_endpoint_auth_method: c.auth,
    })),
    scopes: ["openid", "offline_access", ...RESOURCE_SCOPES, "email"],
    claims: {
      openid: ["sub"],
      profile: ["preferred_username", "name", "given_name", "family_name"],
      email: ["email", "email_verified"],
      groups: ["groups"],
      roles: ["realm_access", "resource_access"],
    },
    // Keycloak puts these into every access token of the realm's default client scopes
    extraTokenClaims: async (_ctx, token) => {
      if (token.accountId && BY_SUB[token.accountId]) {
        const c = BY_SUB[token.accountId].claims;
        return { azp: token.clientId, preferred_username: c.preferred_username, groups: c.groups,
                 realm_access: c.realm_access, resource_access: c.resource_access };
      }
      const svc = SERVICE_CLIENTS[token.clientId];
      if (svc) return { azp: token.clientId, preferred_username: `service-account-${token.clientId}`, ...svc.claims };
      return { azp: token.clientId };
    },
    pkce: { required: () => true },
    ttl: {   // a resource server's accessTokenTTL (getResourceServerInfo: per client) wins
      AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? TOKEN_TTL,
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? TOKEN_TTL, IdToken: TOKEN_TTL, Session: TOKEN_TTL,
      Grant: TOKEN_TTL, RefreshToken: TOKEN_TTL, AuthorizationCode: 60, Interaction: 600,
    },
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed("refresh_token"),
    cookies: { keys: cookieKeys },
    clientBasedCORS: () => true,                       // browser clients (MCP Inspector) from any origin
    interactions: { url: async (_ctx, interaction) => `${MOUNT}/interaction/${interaction.uid}` },
    routes: ROUTES,
    responseTypes: ["code", "none"],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      registration: { enabled: true, initialAccessToken: false },
      introspection: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx, _client, oneOf) => oneOf ?? DEFAULT_RESOURCE,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, indicator, client) => {
          debug("token for resource", indicator, "alg", accessTokenAlg);
          if (!resourceAllowed(indicator)) throw new errors.InvalidTarget();
          return { scope: RESOURCE_SCOPES.join(" "), audience: indicator, accessTokenFormat: "jwt",
                   accessTokenTTL: SERVICE_CLIENTS[client?.clientId]?.ttl ?? TOKEN_TTL, jwt: { sign: { alg: accessTokenAlg } } };
        },
      },
    },
    renderError: async (ctx, out) => {
      ctx.type = "html";
      ctx.body = page("Error", `<h1>Something went wrong</h1>${Object.entries(out)
        .map(([k, v]) => `<p><strong>${esc(k)}</strong>: ${esc(v)}</p>`).join("")}`);
    },
  });
  provider.on("server_error", (_ctx, err) => console.error("dev-idp: server_error", err));
  provider.on("grant.success", (ctx) => count(ctx.oidc.params?.grant_type, ctx.oidc.client?.clientId, "ok"));
  provider.on("grant.error", (ctx) => count(ctx.oidc.params?.grant_type, ctx.oidc.client?.clientId, "error"));
  provider.registerGrantType(GRANT_EXCHANGE, tokenExchange,
    ["subject_token", "subject_token_type", "requested_token_type", "audience", "scope", "resource",
     "actor_token", "actor_token_type"]);
  return provider;
}

// ------------------------------------------------------------------ RFC 8693 token exchange

// Requests by grant type and client, for the tests (GET /admin/stats).
const stats = { grants: {} };
function count(grant, client, outcome) {
  const g = (stats.grants[grant || "?"] ??= { ok: 0, error: 0, byClient: {} });
  g[outcome]++;
  const c = (g.byClient[client || "?"] ??= { ok: 0, error: 0 });
  c[outcome]++;
}

const publicJwk = ({ d, p, q, dp, dq, qi, ...pub }) => pub;
const signingKey = () => keys.find((k) => k.alg === accessTokenAlg);

// The client (authenticated by the token endpoint) exchanges an access token of this IdP for one whose aud is the
// requested audience (or resource) and whose sub is the subject token's: Keycloak's standard token exchange.
async function tokenExchange(ctx) {
  const { params, client } = ctx.oidc;
  if (exchangeDelayMs) await new Promise((r) => setTimeout(r, exchangeDelayMs));
  if (!client.grantTypeAllowed(GRANT_EXCHANGE)) throw new errors.UnauthorizedClient("token exchange is not enabled for this client");
  if (!params.subject_token) throw new errors.InvalidRequest("subject_token is required");
  if (params.subject_token_type !== TYPE_ACCESS) throw new errors.InvalidRequest(`subject_token_type must be ${TYPE_ACCESS}`);
  if (params.requested_token_type && params.requested_token_type !== TYPE_ACCESS)
    throw new errors.InvalidRequest(`requested_token_type must be ${TYPE_ACCESS}`);
  const audience = params.audience || params.resource;
  if (!audience) throw new errors.InvalidTarget("audience (or resource) is required");
  let subject;
  try {
    ({ payload: subject } = await jose.jwtVerify(params.subject_token, jose.createLocalJWKSet({ keys: keys.map(publicJwk) }),
      { issuer: ISSUER }));
  } catch (e) {
    throw new errors.InvalidGrant(`subject_token is not a valid access token of this issuer (${e.code || e.message})`);
  }
  const now = Math.floor(Date.now() / 1000);
  const exp = Math.min(now + EXCHANGE_TTL, subject.exp);
  const k = signingKey();
  const claims = { sub: subject.sub, azp: client.clientId, client_id: client.clientId, act: { sub: client.clientId },
                   scope: params.scope || subject.scope, jti: crypto.randomUUID() };
  for (const c of ["preferred_username", "groups", "realm_access", "resource_access"]) if (subject[c] !== undefined) claims[c] = subject[c];
  const token = await new jose.SignJWT(claims)
    .setProtectedHeader({ alg: k.alg, kid: k.kid, typ: "at+jwt" })
    .setIssuer(ISSUER).setAudience(audience).setIssuedAt(now).setExpirationTime(exp)
    .sign(await jose.importJWK(k, k.alg));
  debug("token exchange for", subject.sub, "audience", audience, "by", client.clientId);
  ctx.body = { access_token: token, issued_token_type: TYPE_ACCESS, token_type: "Bearer", expires_in: exp - now,
               ...(claims.scope ? { scope: claims.scope } : {}) };
}

let provider = buildProvider();
let callback = provider.callback();
function rebuild() {
  provider = buildProvider();
  callback = provider.callback();
}

// ------------------------------------------------------------------ login page and consent

const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const page = (title, body) => `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>body{font-family:system-ui,sans-serif;background:#f3f4f6;margin:0}main{max-width:22rem;margin:4rem auto;overflow-wrap:anywhere;
background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px rgba(0,0,0,.15)}h1{font-size:1.3rem;margin-top:0}
label{display:block;margin:.8rem 0 .2rem;font-weight:600}input{width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem}
button{margin-top:1.2rem;width:100%;padding:.6rem;font-size:1rem;background:#2563eb;color:#fff;border:0;border-radius:4px;cursor:pointer}
.error{color:#b91c1c;background:#fee2e2;padding:.5rem;border-radius:4px}.muted{color:#6b7280;font-size:.9rem}
.link{background:none;color:#2563eb;width:auto;padding:0;margin-top:.8rem;font-size:.9rem}</style></head>
<body><main>${body}</main></body></html>`;

// The name a client registered with (MCP clients register dynamically), else its id.
async function clientLabel(clientId) {
  try { return (await provider.Client.find(String(clientId)))?.clientName || String(clientId); } catch { return String(clientId); }
}

function loginPage(uid, details, { error, username = "", clientName } = {}) {
  const scopes = String(details.params.scope || "").split(" ").filter(Boolean);
  return page("Sign in to mcp", `<h1>Sign in to realm <em>mcp</em></h1>
<p class="muted">Application <strong>${esc(clientName || details.params.client_id)}</strong> asks for access${
    details.params.resource ? ` to <strong>${esc(details.params.resource)}</strong>` : ""}${
    scopes.length ? ` (scopes: ${esc(scopes.join(", "))})` : ""}.</p>
${error ? `<p class="error" id="login-error" role="alert">${esc(error)}</p>` : ""}
<form method="post" action="${esc(`${MOUNT}/interaction/${uid}/login`)}" autocomplete="on">
  <label for="username">Username</label>
  <input id="username" name="username" type="text" autocomplete="username" required autofocus value="${esc(username)}">
  <label for="password">Password</label>
  <input id="password" name="password" type="password" autocomplete="current-password" required>
  <button type="submit" id="kc-login">Sign in</button>
</form>
<form method="post" action="${esc(`${MOUNT}/interaction/${uid}/abort`)}"><button class="link" type="submit">Cancel</button></form>
<p class="muted">Development identity provider: user <code>mcp</code>, password <code>mcp</code>
(or <code>dev</code> / <code>dev</code>).</p>`);
}

function readBody(req, limit = 64 * 1024) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let n = 0;
    req.on("data", (c) => { n += c.length; if (n > limit) { reject(new Error("body too large")); req.destroy(); } else chunks.push(c); });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function send(res, status, body, type = "text/html; charset=utf-8", extra = {}) {
  res.writeHead(status, { "content-type": type, "cache-control": "no-store", ...extra });
  res.end(body);
}

// Consent: grant whatever was asked (the realm's clients have consent turned off).
async function grantConsent(req, res, details) {
  const grant = details.grantId ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
  const missing = details.prompt.details;
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(" "));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {}))
    grant.addResourceScope(indicator, scopes.join(" "));
  const grantId = await grant.save();
  return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

async function interaction(req, res, rest) {
  const [uid, action] = rest.split("/");
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (e) {
    return send(res, 400, page("Session expired", `<h1>This login session has expired</h1><p>${esc(e.message)}</p>
<p>Go back to the application and start again.</p>`));
  }
  if (details.uid !== uid) return send(res, 400, page("Error", "<h1>Interaction mismatch</h1>"));
  const prompt = details.prompt.name;
  debug("interaction", uid, prompt, action || req.method);

  if (req.method === "GET" && !action) {
    if (prompt === "login") {
      if (AUTO_APPROVE)
        return provider.interactionFinished(req, res, { login: { accountId: USERS.mcp.sub } }, { mergeWithLastSubmission: false });
      return send(res, 200, loginPage(uid, details, { clientName: await clientLabel(details.params.client_id) }));
    }
    if (prompt === "consent") return grantConsent(req, res, details);
    return send(res, 501, page("Error", `<h1>Prompt ${esc(prompt)} is not supported</h1>`));
  }
  if (req.method === "POST" && action === "login" && prompt === "login") {
    const form = new URLSearchParams((await readBody(req)).toString("utf8"));
    const username = (form.get("username") || "").trim();
    const user = USERS[username];
    const sha = (v) => crypto.createHash("sha256").update(String(v)).digest();
    if (!user || !crypto.timingSafeEqual(sha(form.get("password") || ""), sha(user.password))) {
      debug("login failed for", JSON.stringify(username));
      return send(res, 200, loginPage(uid, details, { error: "Invalid username or password.", username,
                                                     clientName: await clientLabel(details.params.client_id) }));
    }
    return provider.interactionFinished(req, res, { login: { accountId: user.sub } }, { mergeWithLastSubmission: false });
  }
  if (req.method === "POST" && action === "abort") {
    return provider.interactionFinished(req, res,
      { error: "access_denied", error_description: "End-User aborted interaction" }, { mergeWithLastSubmission: false });
  }
  return send(res, 405, page("Error", "<h1>Method not allowed</h1>"));
}

// ------------------------------------------------------------------ registration tweaks

const CORS = { "access-control-allow-origin": "*", "access-control-allow-methods": "GET, POST, OPTIONS",
               "access-control-allow-headers": "Content-Type, Authorization, Accept, Origin, X-Requested-With",
               "access-control-max-age": "3600" };

// oidc-provider locks a dynamically registered client to the `scope` it registered with, while MCP clients
// register with the first 401's scope and may step up later: drop `scope` from registration bodies.
// Registration answers also get CORS headers (browser clients register from their own origin).
async function register(req, res) {
  let body = await readBody(req, 256 * 1024);
  try { const j = JSON.parse(body); delete j.scope; body = Buffer.from(JSON.stringify(j)); } catch { /* the AS rejects it */ }
  const r = Readable.from([body]);
  Object.assign(r, { method: req.method, url: req.url, originalUrl: req.originalUrl, httpVersion: req.httpVersion,
    socket: req.socket, connection: req.socket, headers: { ...req.headers, "content-length": String(body.length) } });
  for (const [k, v] of Object.entries(CORS)) res.setHeader(k, v);
  callback(r, res);
}

// ------------------------------------------------------------------ test hooks

async function hooks(req, res, url) {
  const json = (status, v) => send(res, status, JSON.stringify(v), "application/json");
  const kids = () => keys.map((k) => ({ kid: k.kid, alg: k.alg, kty: k.kty }));
  if (url.pathname === "/admin/keys" && req.method === "GET") return json(200, { alg: accessTokenAlg, keys: kids() });
  if (url.pathname === "/admin/stats" && req.method === "GET") return json(200, stats);
  if (url.pathname === "/admin/exchange-delay" && req.method === "POST") {
    exchangeDelayMs = Number(url.searchParams.get("ms") || 0);
    return json(200, { exchangeDelayMs });
  }
  if (url.pathname === "/admin/rotate-keys" && req.method === "POST") {
    keys = keySet([accessTokenAlg]);                     // all new kids; the old keys leave the JWKS
    rebuild();
    console.error(`dev-idp: keys rotated: ${keys.map((k) => k.kid).join(", ")}`);
    return json(200, { alg: accessTokenAlg, keys: kids() });
  }
  if (url.pathname === "/admin/alg" && req.method === "POST") {
    const alg = url.searchParams.get("alg") || (await readBody(req)).toString().trim();
    if (!ALGS.includes(alg)) return json(400, { error: `alg must be one of ${ALGS.join(", ")}` });
    accessTokenAlg = alg;
    if (!keys.some((k) => k.alg === alg)) { keys = [...keys, newKey(alg)]; rebuild(); }
    console.error(`dev-idp: access tokens now signed with ${alg}`);
    return json(200, { alg: accessTokenAlg, keys: kids() });
  }
  return json(404, { error: "no such hook" });
}

// ------------------------------------------------------------------ HTTP

const server = http.createServer(async (req, res) => {
  try {
    debug(req.method, req.url.length > 1000 ? `${req.url.slice(0, 1000)}...` : req.url);
    const url = new URL(req.url, "http://idp");
    let p = url.pathname;
    if (p === "/healthz") return send(res, 200, "ok\n", "text/plain");
    if (p === "/favicon.ico") return send(res, 204, "", "image/x-icon");   // no 404 in the browser's console
    if (TEST_HOOKS && p.startsWith("/admin/")) return await hooks(req, res, url);
    // RFC 8414 section 3 / OIDC path-insertion discovery: /.well-known/<name>/realms/mcp -> /realms/mcp/.well-known/<name>
    const wk = /^\/\.well-known\/(oauth-authorization-server|openid-configuration)(\/.*)$/.exec(p);
    if (MOUNT && wk && wk[2] === MOUNT) {
      p = `${MOUNT}/.well-known/${wk[1]}`;
      req.url = p + url.search;
    }
    if (MOUNT && p !== MOUNT && !p.startsWith(`${MOUNT}/`))
      return send(res, 404, JSON.stringify({ error: "not_found", issuer: ISSUER }), "application/json");
    const rest = p.slice(MOUNT.length) || "/";
    if (rest.startsWith("/interaction/")) return await interaction(req, res, rest.slice("/interaction/".length));
    // mounted like express does it: oidc-provider takes its mount path from originalUrl minus url
    req.originalUrl = req.url;
    req.url = req.url.slice(MOUNT.length) || "/";
    if (rest === ROUTES.registration && req.method === "OPTIONS") return send(res, 204, "", "text/plain", CORS);
    if (rest === ROUTES.registration && req.method === "POST") return await register(req, res);
    return callback(req, res);
  } catch (e) {
    console.error("dev-idp:", e);
    if (!res.headersSent) send(res, 500, page("Error", `<h1>Internal error</h1><p>${esc(e.message)}</p>`));
    else res.destroy();
  }
});
server.on("error", (e) => { console.error(`dev-idp: ${e.message}`); process.exit(1); });
server.listen(PORT, HOST, () => {
  console.error(`dev-idp: issuer ${ISSUER} listening on http://${HOST}:${PORT}` +
    `${AUTO_APPROVE ? " (AUTO_APPROVE: logins as mcp without a page)" : ""}${TEST_HOOKS ? " (test hooks on)" : ""}`);
  console.error(`dev-idp: discovery ${ISSUER}/.well-known/openid-configuration; users mcp / mcp, dev / dev; ` +
    `access tokens ${accessTokenAlg}, ${TOKEN_TTL} s, audience = resource (default ${DEFAULT_RESOURCE})`);
});
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => { server.close(); process.exit(0); });
