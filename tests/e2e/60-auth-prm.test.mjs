// OAuth protected resource metadata (RFC 9728) at /.well-known/oauth-protected-resource and every path
// under it: byte-exact documents (defaults and the seed guide's OAUTH_* values), CORS, OPTIONS.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as L from "./lib.mjs";

after(L.cleanup);

const PATHS = ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"];
const CORS = {
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "GET, POST, PUT, DELETE, OPTIONS, HEAD",
  "access-control-allow-headers": "Content-Type, Authorization, Accept, Origin, X-Requested-With, MCP-Protocol-Version",
  "access-control-max-age": "3600",
};
// every OAUTH_* variable blank, so a developer's environment cannot leak into the "defaults" gateway
const NO_OAUTH = { OAUTH_RESOURCE_NAME: "", OAUTH_RESOURCE: "", OAUTH_AUTHORIZATION_SERVERS: "",
                   OAUTH_BEARER_METHODS_SUPPORTED: "", OAUTH_SCOPES_SUPPORTED: "" };

async function get(url, init = {}) {
  const r = await fetch(url, { signal: AbortSignal.timeout(10000), ...init });
  return { status: r.status, headers: r.headers, body: await r.text() };
}

function assertCors(headers, where) {
  for (const [k, v] of Object.entries(CORS)) assert.equal(headers.get(k), v, `${where}: ${k}`);
}

async function assertPrm(gw, expected) {
  for (const p of PATHS) {
    const r = await get(`${gw.base}${p}`);
    assert.equal(r.status, 200, `GET ${p}: ${r.body}`);
    assert.equal(r.body, expected, `GET ${p}: byte-exact document`);
    assert.match(r.headers.get("content-type") || "", /^application\/json\b/, `GET ${p}: content-type`);
    assertCors(r.headers, `GET ${p}`);
  }
}

describe("PRM with no OAUTH_* settings", () => {
  let gw;
  const DEFAULT = '{"resource_name":"MCP Server","resource":"/mcp","authorization_servers":[],' +
                  '"bearer_methods_supported":["header"],"scopes_supported":["basic"]}';
  before(async () => { gw = await L.startGateway({ servers: [], env: NO_OAUTH, logName: "gateway-defaults" }); });

  test("both paths serve the default document byte for byte, with CORS", async () => {
    await assertPrm(gw, DEFAULT);
  });

  test("deeper paths under the well-known prefix serve the same document", async () => {
    for (const p of ["/.well-known/oauth-protected-resource/a/b/c", "/.well-known/oauth-protected-resource/mcp?x=1"]) {
      const r = await get(`${gw.base}${p}`);
      assert.equal(r.status, 200, `GET ${p}`);
      assert.equal(r.body, DEFAULT, `GET ${p}`);
    }
  });

  test("OPTIONS: 200, empty body, CORS headers", async () => {
    for (const p of PATHS) {
      const r = await get(`${gw.base}${p}`, { method: "OPTIONS",
        headers: { origin: "http://localhost:6274", "access-control-request-method": "GET",
                   "access-control-request-headers": "authorization" } });
      assert.equal(r.status, 200, `OPTIONS ${p}`);
      assert.equal(r.body, "", `OPTIONS ${p}: empty body`);
      assertCors(r.headers, `OPTIONS ${p}`);
    }
  });

  test("methods other than OPTIONS get the document too (POST)", async () => {
    const r = await get(`${gw.base}${PATHS[1]}`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    assert.equal(r.status, 200);
    assert.equal(r.body, DEFAULT);
  });

  test("a browser Origin is allowed on the metadata (CORS), no 403", async () => {
    const r = await get(`${gw.base}${PATHS[0]}`, { headers: { origin: "http://localhost:6274" } });
    assert.equal(r.status, 200);
    assert.equal(r.body, DEFAULT);
    assert.equal(r.headers.get("access-control-allow-origin"), "*");
  });

  test("without OAUTH_AUTHORIZATION_SERVERS /mcp needs no token", async () => {
    const { sessionId } = await L.rawSession(gw.url);
    assert.ok(sessionId);
  });
});

describe("PRM with the seed guide's OAUTH_* values", () => {
  let gw;
  const SEED = {
    OAUTH_RESOURCE_NAME: "MCP Server",
    OAUTH_RESOURCE: "http://mcp.127-0-0-1.sslip.io:8001/mcp",
    OAUTH_AUTHORIZATION_SERVERS: "http://keycloak.127-0-0-1.sslip.io:8002/realms/mcp",
    OAUTH_BEARER_METHODS_SUPPORTED: "header",
    OAUTH_SCOPES_SUPPORTED: "basic,groups,roles,profile",
  };
  const EXPECTED = '{"resource_name":"MCP Server","resource":"http://mcp.127-0-0-1.sslip.io:8001/mcp",' +
    '"authorization_servers":["http://keycloak.127-0-0-1.sslip.io:8002/realms/mcp"],' +
    '"bearer_methods_supported":["header"],"scopes_supported":["basic","groups","roles","profile"]}';
  before(async () => { gw = await L.startGateway({ servers: [], env: SEED, logName: "gateway-seed" }); });

  test("both paths serve the seed's document byte for byte, with CORS", async () => {
    await assertPrm(gw, EXPECTED);
  });

  test("OPTIONS: 200, empty body", async () => {
    for (const p of PATHS) {
      const r = await get(`${gw.base}${p}`, { method: "OPTIONS" });
      assert.equal(r.status, 200, `OPTIONS ${p}`);
      assert.equal(r.body, "", `OPTIONS ${p}`);
      assertCors(r.headers, `OPTIONS ${p}`);
    }
  });

  test("the metadata needs no token while /mcp does", async () => {
    const r = await get(`${gw.base}${PATHS[1]}`, { headers: { authorization: "Bearer not-a-jwt" } });
    assert.equal(r.status, 200, "a bad token on the metadata is ignored");
    const m = await get(gw.url, { method: "POST", headers: L.mcpHeaders(), body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }) });
    assert.equal(m.status, 401, `POST /mcp without a token: ${m.body}`);
    assert.equal(m.headers.get("www-authenticate"),
      'Bearer resource_metadata="http://mcp.127-0-0-1.sslip.io:8001/.well-known/oauth-protected-resource/mcp"');
    assert.equal(m.body, L.UNAUTHORIZED_BODY);
  });
});

describe("PRM with several servers, methods and scopes", () => {
  let gw;
  before(async () => {
    gw = await L.startGateway({ servers: [], logName: "gateway-custom", env: {
      // unreachable issuers (port 9): the document must not depend on them
      OAUTH_RESOURCE_NAME: 'Team "A" gateway',
      OAUTH_RESOURCE: "https://mcp.example.com/mcp",
      OAUTH_AUTHORIZATION_SERVERS: "http://127.0.0.1:9/realms/a,http://localhost:9",
      OAUTH_BEARER_METHODS_SUPPORTED: "header,body",
      OAUTH_SCOPES_SUPPORTED: "mcp:tools,mcp:admin",
    } });
  });

  test("lists are split on commas, in order; strings are JSON-escaped", async () => {
    const r = await get(`${gw.base}${PATHS[0]}`);
    assert.equal(r.status, 200);
    const doc = JSON.parse(r.body);
    assert.deepEqual(Object.keys(doc), ["resource_name", "resource", "authorization_servers",
                                        "bearer_methods_supported", "scopes_supported"], "field order");
    assert.deepEqual(doc, {
      resource_name: 'Team "A" gateway', resource: "https://mcp.example.com/mcp",
      authorization_servers: ["http://127.0.0.1:9/realms/a", "http://localhost:9"],
      bearer_methods_supported: ["header", "body"], scopes_supported: ["mcp:tools", "mcp:admin"],
    });
    assert.equal(r.body, JSON.stringify(doc), "compact JSON");
  });
});
