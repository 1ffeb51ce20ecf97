// The RFC 8693 token-exchange cache shared between replicas through Redis (src/redis.h, mcpgw:t:{H}): a caller's
// calls landing on three replicas make one exchange at the IdP; what Redis holds is sealed (AES-256-GCM under a key
// derived from GATEWAY_SIGNING_KEY): neither the token nor any JWT in clear, nor the subject in the key name; with
// Redis stopped, calls still work (one exchange per replica).
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import * as L from "./lib.mjs";

const REDIS = process.env.REDIS_SERVER || "/usr/bin/redis-server";
const REDIS_CLI = process.env.REDIS_CLI || "/usr/bin/redis-cli";
const REDIS_PASS = "e2e redis token pass";
const GRANT_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
const AUD = "exchange/shared";
const RESOURCE = "http://mcp.example.test/mcp";   // every replica's OAUTH_RESOURCE (they sit behind one address)

after(L.cleanup);

describe("token exchange cache shared through Redis", () => {
  let idp, redis, redisPort, ex, config;
  const replicas = [];
  const cli = (...args) => execFileSync(REDIS_CLI, ["-p", String(redisPort), "-n", "4", "--no-auth-warning", "-a", REDIS_PASS, ...args],
                                        { encoding: "utf8" }).trim();
  const exchanges = async () => {
    const st = await (await fetch(`${idp.base}/admin/stats`, { signal: AbortSignal.timeout(5000) })).json();
    return st.grants[GRANT_EXCHANGE]?.byClient?.["mcp-gateway"]?.ok ?? 0;
  };
  const readyz = async (g) => (await fetch(`${g.base}/readyz`, { signal: AbortSignal.timeout(3000) })).json();
  const callTool = (g, sessionId, token, name, args = {}) =>
    L.rpc(g.url, { jsonrpc: "2.0", id: 7, method: "tools/call", params: { name, arguments: args } },
          { sessionId, headers: L.bearer(token) });
  /** The Authorization the upstream received for a call (the example server's `headers` tool). */
  async function upstreamAuth(g, sessionId, token) {
    const r = await callTool(g, sessionId, token, "x_headers");
    assert.equal(r.status, 200, `${g.name}: ${r.text ?? JSON.stringify(r.messages)}`);
    const text = L.textOf(r.message?.result);
    assert.ok(text, `${g.name} answered: ${JSON.stringify(r.messages)}`);
    return JSON.parse(text).authorization;
  }

  before(async () => {
    assert.ok(fs.existsSync(REDIS), `${REDIS} (scripts/deps.sh test installs redis-server)`);
    redisPort = await L.freePort();
    redis = L.spawnProc("redis", REDIS, ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                         "--requirepass", REDIS_PASS]);
    await L.waitPort(redisPort, { proc: redis, what: `redis-server on ${redisPort}` });
    idp = await L.startIdp();
    ex = await L.startExample({ name: "server1" });
    config = L.writeFile("gateway.yaml", `servers:
  - name: ${JSON.stringify(AUD)}
    url: ${JSON.stringify(ex.url)}
    prefix: "x_"
    tokenExchange: {tokenUrl: ${JSON.stringify(idp.tokenUrl)}, clientId: "mcp-gateway", clientSecretEnv: "E2E_TE_SECRET"}
`);
    const redisUrl = `redis://default:${encodeURIComponent(REDIS_PASS)}@127.0.0.1:${redisPort}/4`;
    replicas.push(...await Promise.all([0, 1, 2].map((i) => L.startGateway({ config, logName: `replica${i}`,
      args: ["--log-level", "-4", ...(i === 0 ? ["--workers", "2"] : ["--workers", "1"])],
      env: { CACHE_CONNECTION_STRING: redisUrl, OAUTH_RESOURCE: RESOURCE, OAUTH_AUTHORIZATION_SERVERS: idp.issuer,
             E2E_TE_SECRET: "mcp-gateway-secret" } }))));
    const tok = await L.idpToken(idp, { resource: RESOURCE });
    await Promise.all(replicas.map((g) => L.waitFor(async () => {
      const r = await readyz(g);
      const ping = await L.rpc(g.url, { jsonrpc: "2.0", id: 1, method: "ping" }, { headers: L.bearer(tok) });
      return r.ready && r.healthyServers === 1 && r.redis === "connected" && ping.status !== 401;
    }, { proc: g, timeout: 20000, what: `${g.name}: ready, upstream discovered, Redis connected, IdP keys` })));
  });

  test("a caller's calls on three replicas make one exchange; Redis holds it sealed", async () => {
    const before0 = await exchanges();
    const tok = await L.idpToken(idp, { resource: RESOURCE });
    const { sessionId } = await L.rawSession(replicas[0].url, { headers: L.bearer(tok) });
    const auth0 = await upstreamAuth(replicas[0], sessionId, tok);
    assert.match(auth0, /^Bearer ey/);
    assert.equal(L.jwtParts(auth0.slice(7)).payload.aud, AUD);
    assert.equal(await exchanges(), before0 + 1, "one exchange");
    // the same session on the other replicas (Redis carries it), and the same caller on a session of its own
    for (const g of replicas.slice(1)) assert.equal(await upstreamAuth(g, sessionId, tok), auth0, `${g.name}: the shared token`);
    const other = await L.rawSession(replicas[2].url, { headers: L.bearer(tok) });
    assert.equal(await upstreamAuth(replicas[2], other.sessionId, tok), auth0);
    for (let i = 0; i < 3; i++) for (const g of replicas)
      assert.equal(L.textOf((await callTool(g, sessionId, tok, "x_echo", { text: `n${i}` })).message?.result), `n${i}`);
    assert.equal(await exchanges(), before0 + 1, "still one exchange, whichever replica served the calls");
    assert.ok(replicas.slice(1).some((g) => /token taken from the shared cache/.test(g.log())), "taken from Redis");

    const keys = cli("--scan", "--pattern", "mcpgw:t:*").split("\n").filter(Boolean);
    assert.equal(keys.length, 1, `one shared token: ${keys}`);
    assert.match(keys[0], /^mcpgw:t:\{[0-9a-f]{32}\}$/, "a hashed name");
    const stored = cli("GET", keys[0]);
    assert.match(stored, /^v1\.[A-Za-z0-9_-]+$/, "sealed");
    const exchanged = auth0.slice(7);
    for (const secret of [exchanged, tok, ...exchanged.split("."), ...tok.split("."), "Bearer", "gw-test"])
      assert.ok(!stored.includes(secret) && !keys[0].includes(secret), `Redis holds ${secret.slice(0, 12)}… in clear`);
    assert.doesNotMatch(stored, /eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*/, "no JWT-looking string");
    const pttl = Number(cli("PTTL", keys[0]));
    const exp = L.jwtParts(exchanged).payload.exp * 1000;
    assert.ok(pttl > 0 && Date.now() + pttl < exp, `expires before the token does (PTTL ${pttl})`);
    for (const g of replicas) assert.ok(!g.log().includes(exchanged.split(".")[2]), `${g.name} logged the token`);
  });

  test("with Redis stopped, calls still work: one exchange per replica", async () => {
    await redis.stop();
    await L.waitFor(async () => (await Promise.all(replicas.map(readyz))).every((r) => r.redis === "unreachable" && r.ready),
                    { timeout: 10000, what: "/readyz: redis unreachable on every replica" });
    const before0 = await exchanges();
    const tok = await L.idpToken(idp, { clientId: "gw-test-2", secret: "gw-test-2-secret", resource: RESOURCE });
    for (const g of replicas) {
      const { sessionId } = await L.rawSession(g.url, { headers: L.bearer(tok) });
      const auth = await upstreamAuth(g, sessionId, tok);
      assert.equal(L.jwtParts(auth.slice(7)).payload.sub, "gw-test-2");
      assert.equal(L.textOf((await callTool(g, sessionId, tok, "x_echo", { text: "down" })).message?.result), "down");
    }
    assert.equal(await exchanges(), before0 + replicas.length, "each replica exchanged on its own");
  });
});
