// The seed's Step 5 in a real browser: headless Chromium (Debian's, driven by playwright-core) opens MCP Inspector's
// web UI (2.12.0, Node 22 from tests/node22) on the gateway of the `make run` setup — the dev IdP with its login page,
// two example servers, the gateway with OAUTH_* — and a person's steps are played: Connect -> 401 -> protected
// resource metadata -> dynamic registration -> the IdP's login page -> a wrong password (the error is shown) ->
// mcp / mcp -> back in Inspector, connected -> the Tools tab lists the tools user mcp may use -> s1_echo's result.
//
// Inspector 2.x sends MCP and its OAuth requests from its Node backend (/api/mcp/*, /api/fetch), so the browser itself
// only meets the IdP's pages and Inspector's callback. What only a browser enforces on the gateway — CORS on /mcp and
// the metadata path, exposed headers — is therefore checked by the second part: a script on Inspector's origin calls
// the gateway directly from the page, as a browser-based MCP client does.
//
// On failure: build/test-logs/90-browser-failure-<step>.png and 90-browser-console.log (the browser's console,
// page errors, failed requests and HTTP errors). Every step's screenshot is kept in build/test-logs/90-browser-*.png;
// with UPDATE_DOC_SCREENSHOTS=1 the walkthrough's screenshots are written to docs/img/ too (and the usual ports of
// `make run` — 8080, 8002, 6274 — are used when free, so the pictures match docs/authentication.md).
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import * as L from "./lib.mjs";

const DOCS = /^(1|true|yes)$/i.test(process.env.UPDATE_DOC_SCREENSHOTS || "");
const DOC_IMG = path.join(L.ROOT, "docs/img");
const SCOPES = "basic,groups,roles,profile";
const STEP_TIMEOUT = 20000;

let idp, gw, inspector, resource, ctx, page;
const consoleLines = [];
const consoleLog = path.join(L.LOG_DIR, "90-browser-console.log");
const note = (line) => consoleLines.push(`${new Date().toISOString()} ${line}`);
const flushConsole = () => fs.writeFileSync(consoleLog, `${consoleLines.join("\n")}\n`);

/** Screenshot into build/test-logs/ (and docs/img/ when asked): the page, or the box `around` a locator, or `clip`. */
async function shot(name, { doc = false, around, clip } = {}) {
  const file = path.join(L.LOG_DIR, `90-browser-${name}.png`);
  if (around) {
    const b = await around.boundingBox();
    const vp = page.viewportSize();
    const x = Math.max(0, b.x - 24), y = Math.max(0, b.y - 24);
    clip = { x, y, width: Math.min(vp.width - x, b.width + 48), height: Math.min(vp.height - y, b.height + 48) };
  }
  await page.screenshot({ path: file, ...(clip ? { clip } : {}) });
  if (doc && DOCS) {
    fs.mkdirSync(DOC_IMG, { recursive: true });
    fs.copyFileSync(file, path.join(DOC_IMG, `browser-${name.replace(/^\d+-/, "")}.png`));
  }
}

/**
 * Test steps that build on each other (after a failure the next ones fail at once, naming it). On failure a
 * screenshot and the console so far are saved and named in the error.
 */
function steps() {
  let broken = null;
  return (name, fn) => test(name, { timeout: 45000 }, async () => {
    if (broken) throw new Error(`not run: the step "${broken}" failed`);
    try {
      await fn();
    } catch (e) {
      broken = name;
      const file = path.join(L.LOG_DIR, `90-browser-failure-${name.replace(/[^A-Za-z0-9]+/g, "-").slice(0, 60)}.png`);
      let where = "";
      try {
        where = page ? ` (of ${page.url()})` : "";
        if (page) await page.screenshot({ path: file });
      } catch { /* the browser is gone */ }
      flushConsole();
      const errors = consoleLines.filter((l) => / (console error|pageerror|requestfailed|http [45]\d\d) /.test(l))
        .map((l) => l.replace(/^\S+ /, "").slice(0, 300)).slice(-3);
      const extra = [`screenshot ${file}${where}; browser console ${consoleLog}`, ...errors.map((l) => `  ${l}`)].join("\n");
      const [first, ...rest] = String(e.message).split("\n");
      e.message = [first, extra, ...rest].join("\n");
      throw e;
    }
  });
}

before(async () => {
  for (const f of fs.readdirSync(L.LOG_DIR)) if (/^90-browser-.*\.png$/.test(f)) fs.rmSync(path.join(L.LOG_DIR, f));
  for (const [what, file] of [["Chromium", L.CHROMIUM], ["Node 22 (tests/node22)", L.NODE22], ["MCP Inspector (tests/node22)", L.INSPECTOR_JS]])
    assert.ok(fs.existsSync(file), `${what} not found at ${file}: run scripts/deps.sh test`);
  const [gwPort, idpPort, inspectorPort] = DOCS ? [await L.preferPort(8080), await L.preferPort(8002), await L.preferPort(6274)]
    : await L.freePorts(3);
  // as `make run`: the resource is http://localhost:<port>/mcp, the issuer http://127.0.0.1:<port>/realms/mcp
  resource = `http://localhost:${gwPort}/mcp`;
  const [i, s1, s2] = await Promise.all([
    L.startIdp({ port: idpPort, env: { IDP_DEBUG: "1", DEFAULT_RESOURCE: resource } }),
    L.startExample({ name: "server1" }),
    L.startExample({ name: "server2" }),
  ]);
  idp = i;
  gw = await L.startGateway({ port: gwPort, servers: [
    { name: "example/server1", url: s1.url, prefix: "s1_" },
    { name: "example/server2", url: s2.url, prefix: "s2_" },
  ], env: { OAUTH_RESOURCE_NAME: "MCP Server", OAUTH_RESOURCE: resource, OAUTH_AUTHORIZATION_SERVERS: idp.issuer,
            OAUTH_BEARER_METHODS_SUPPORTED: "header", OAUTH_SCOPES_SUPPORTED: SCOPES },
  args: process.env.BROWSER_GATEWAY_ARGS ? process.env.BROWSER_GATEWAY_ARGS.split(" ") : [] });
  await L.waitHttp(`${gw.base}/readyz`, { ok: (s) => s === 200, what: "gateway ready (both upstreams)" });
  inspector = await L.startInspector({ port: inspectorPort, serverUrl: resource });

  // Nothing leaves the machine: Inspector's page asks for web fonts, which a closed network would only delay. Names
  // other than localhost do not resolve (not ctx.route(): with interception on, Playwright answers CORS preflights itself).
  ctx = await L.launchChromium({ viewport: { width: 1280, height: 720 },
                                 extraArgs: ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"] });
  page = ctx.pages()[0] ?? await ctx.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT);
  const local = (u) => { try { return ["localhost", "127.0.0.1", "[::1]"].includes(new URL(u).hostname); } catch { return true; } };
  page.on("console", (m) => {
    if (!(m.text().includes("ERR_NAME_NOT_RESOLVED") && !local(m.location()?.url))) note(`console ${m.type()} ${m.text()} ${m.location()?.url ?? ""}`);
  });
  page.on("pageerror", (e) => note(`pageerror ${e.message}`));
  page.on("requestfailed", (r) => {
    // ERR_ABORTED: Inspector's event streams and saves cut by a navigation
    if (local(r.url()) && r.failure()?.errorText !== "net::ERR_ABORTED") note(`requestfailed ${r.method()} ${r.url()} ${r.failure()?.errorText}`);
  });
  page.on("response", (r) => { if (r.status() >= 400) note(`http ${r.status()} ${r.request().method()} ${r.url()}`); });
  page.on("framenavigated", (f) => { if (f === page.mainFrame()) note(`navigated ${f.url()}`); });
});

after(async () => {
  flushConsole();
  await ctx?.close().catch(() => {});
  await L.cleanup();
});

describe("MCP Inspector in Chromium logs in through the gateway (the seed's Step 5)", () => {
  const step = steps();
  const serverSwitch = () => page.getByRole("switch", { name: /^Connect or disconnect/ });

  step("Inspector's web UI lists the gateway, disconnected", async () => {
    await page.goto(inspector.url);
    await page.getByText(resource, { exact: true }).waitFor();
    await page.getByText("Disconnected", { exact: true }).waitFor();
    assert.equal(await serverSwitch().isChecked(), false);
    await shot("1-inspector", { doc: true, clip: { x: 0, y: 0, width: 1280, height: 540 } });
  });

  step("Connect: 401, metadata, registration, then the dev IdP's login page with labelled fields", async () => {
    // a Mantine switch: its track (the label) takes the click, as a person's would
    await serverSwitch().click({ force: true });
    await page.waitForURL((u) => u.href.startsWith(`${idp.issuer}/interaction/`), { timeout: STEP_TIMEOUT });
    const user = page.getByLabel("Username");
    const pass = page.getByLabel("Password");
    await user.waitFor();
    assert.equal(await user.getAttribute("type"), "text");
    assert.equal(await pass.getAttribute("type"), "password");
    assert.equal(await pass.getAttribute("autocomplete"), "current-password");
    await page.getByRole("heading", { name: /Sign in/ }).waitFor();
    assert.match(await page.locator("main").innerText(), /Application MCP Inspector asks/, "the client's registered name");
    assert.match(await page.locator("main").innerText(), new RegExp(`access to\\s+${resource.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}`),
      "the page names the resource the client asks for");
    assert.equal(await page.getByRole("alert").count(), 0, "no error before a login attempt");
    await shot("2-login", { doc: true, around: page.locator("main") });
    // what Inspector did on the way, as the IdP saw it
    const log = idp.log();
    assert.match(log, /POST \/realms\/mcp\/clients-registrations\/openid-connect/, "dynamic client registration");
    const auth = /GET (\/realms\/mcp\/protocol\/openid-connect\/auth\?\S+)/.exec(log);
    assert.ok(auth, "authorization request");
    const q = new URL(auth[1], idp.base).searchParams;
    assert.equal(q.get("code_challenge_method"), "S256", "PKCE");
    assert.equal(q.get("resource"), resource, "RFC 8707 resource = the gateway's, from its metadata");
    assert.equal(q.get("redirect_uri"), `${inspector.origin}/oauth/callback`);
  });

  step("a wrong password: the IdP's page shows the error and keeps the user name", async () => {
    await page.getByLabel("Username").fill("mcp");
    await page.getByLabel("Password").fill("not-the-password");
    await page.getByRole("button", { name: "Sign in" }).click();
    const alert = page.getByRole("alert");
    await alert.waitFor();
    assert.equal((await alert.innerText()).trim(), "Invalid username or password.");
    assert.ok(page.url().startsWith(`${idp.issuer}/interaction/`), `still on the IdP: ${page.url()}`);
    assert.equal(await page.getByLabel("Username").inputValue(), "mcp");
    assert.equal(await page.getByLabel("Password").inputValue(), "");
    await shot("3-wrong-password", { doc: true, around: page.locator("main") });
  });

  step("mcp / mcp: back in Inspector, connected", async () => {
    await page.getByLabel("Password").fill("mcp");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForURL((u) => u.origin === inspector.origin, { timeout: STEP_TIMEOUT });
    await page.getByText("Connected", { exact: true }).waitFor();
    assert.equal(await serverSwitch().isChecked(), true);
    await page.getByText("Authorization complete").waitFor();
    await shot("4-connected", { doc: true, clip: { x: 0, y: 0, width: 850, height: 570 } });
    // the toast would cover the next pictures
    await page.getByRole("alert").filter({ hasText: "Authorization complete" }).getByRole("button").click();
    assert.match(idp.log(), /POST \/realms\/mcp\/protocol\/openid-connect\/token/, "the code was exchanged for a token");
  });

  step("the Tools tab lists exactly the tools user mcp may use", async () => {
    // what the gateway lists for a token with user mcp's groups and roles (the IdP's gw-test client carries them)
    const token = await L.idpToken(idp, { resource, scope: "basic groups roles" });
    const { client } = await L.connect(gw.url, { name: "e2e-expected-tools", headers: L.bearer(token) });
    const expected = await L.toolNames(client);
    await client.close();
    assert.ok(expected.includes("s1_echo"), `user mcp may use s1_echo: ${expected.join(", ")}`);

    await page.getByRole("banner").getByText("Tools", { exact: true }).click();
    await page.getByRole("heading", { name: `Tools (${expected.length})` }).waitFor();
    const buttons = page.getByRole("main").getByRole("button", { name: /\b(s1|s2)_\w+$/ });
    const shown = (await buttons.allInnerTexts()).map((t) => t.trim().split(/\s+/).pop());
    assert.deepEqual(shown.sort(), expected, "Inspector's tool list = the gateway's for user mcp");
    await shot("5-tools");
  });

  step("s1_echo called from Inspector: the result is shown", async () => {
    const text = "Hello from Chromium through the gateway";
    await page.getByRole("button", { name: /\bs1_echo$/ }).click();
    await page.getByRole("textbox", { name: "text", exact: true }).fill(text);
    await page.getByRole("button", { name: "Execute Tool" }).click();
    await page.getByRole("main").getByText("Results", { exact: true }).waitFor();
    await page.getByRole("main").getByText(text, { exact: true }).waitFor();
    await shot("6-call", { doc: true, clip: { x: 0, y: 0, width: 850, height: 720 } });
  });
});

// ------------------------------------------------------------------ what only a browser enforces: CORS

/** Run in the page (Inspector's origin): the gateway called directly with fetch, as a browser-based MCP client does. */
async function directClient({ gwUrl, prmUrl, token }) {
  const out = { steps: [] };
  const read = async (r) => {
    const ct = r.headers.get("content-type") || "";
    const text = await r.text();
    if (!ct.includes("text/event-stream")) return text ? JSON.parse(text) : undefined;
    const msgs = text.split(/\r?\n\r?\n/).map((b) => b.split(/\r?\n/).filter((l) => l.startsWith("data:"))
      .map((l) => l.slice(5).replace(/^ /, "")).join("\n")).filter(Boolean).map((d) => JSON.parse(d));
    return msgs.find((m) => "id" in m) ?? msgs[0];
  };
  const post = (body, headers = {}) => fetch(gwUrl, { method: "POST", body: JSON.stringify(body),
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers } });
  const step = async (name, fn) => {
    try { out.steps.push({ name, ...(await fn()) }); } catch (e) { out.steps.push({ name, error: `${e.name}: ${e.message}` }); throw e; }
  };
  try {
    await step("GET protected resource metadata", async () => {
      const r = await fetch(prmUrl);
      return { status: r.status, resource: (await r.json()).resource };
    });
    await step("POST /mcp without a token", async () => {
      const r = await post({ jsonrpc: "2.0", id: 1, method: "tools/list" });
      return { status: r.status, wwwAuthenticate: r.headers.get("www-authenticate"), body: await r.text() };
    });
    const auth = { authorization: `Bearer ${token}` };
    let session;
    await step("POST initialize with the token (preflight: Authorization)", async () => {
      const r = await post({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-11-25",
        capabilities: {}, clientInfo: { name: "browser-direct", version: "1" } } }, auth);
      session = r.headers.get("mcp-session-id");
      const m = await read(r);
      return { status: r.status, session, protocolVersion: m?.result?.protocolVersion };
    });
    const inSession = { ...auth, "mcp-session-id": session ?? "", "mcp-protocol-version": "2025-11-25" };
    await step("notifications/initialized in the session (preflight: Mcp-Session-Id, MCP-Protocol-Version)", async () => {
      const r = await post({ jsonrpc: "2.0", method: "notifications/initialized" }, inSession);
      await r.text();
      return { status: r.status };
    });
    await step("tools/list", async () => {
      const r = await post({ jsonrpc: "2.0", id: 2, method: "tools/list" }, inSession);
      const m = await read(r);
      return { status: r.status, tools: (m?.result?.tools ?? []).map((t) => t.name) };
    });
    await step("tools/call s1_echo", async () => {
      const r = await post({ jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: "s1_echo", arguments: { text: "direct" } } }, inSession);
      const m = await read(r);
      return { status: r.status, text: m?.result?.content?.[0]?.text };
    });
    await step("DELETE the session", async () => {
      const r = await fetch(gwUrl, { method: "DELETE", headers: inSession });
      return { status: r.status };
    });
  } catch { /* the failed step is in out.steps */ }
  return out;
}

describe("a script on Inspector's origin calls the gateway directly: CORS as Chromium enforces it", () => {
  steps()("the protected resource metadata, fetched as the MCP SDK's discovery does (with MCP-Protocol-Version)", async () => {
    await page.goto(`${inspector.origin}/healthz`);
    const origin = new URL(resource).origin;
    const urls = [L.prmUrlFor(resource), `${origin}/.well-known/oauth-protected-resource`];
    const got = await page.evaluate(async (list) => Promise.all(list.map(async (url) => {
      try {
        const r = await fetch(url, { headers: { "MCP-Protocol-Version": "2025-11-25" } });
        return { url, status: r.status, resource: (await r.json()).resource };
      } catch (e) { return { url, error: `${e.name}: ${e.message}` }; }
    })), urls);
    for (const g of got) {
      assert.equal(g.error, undefined, `GET ${g.url} with MCP-Protocol-Version from ${inspector.origin}: ${g.error} ` +
        "(the preflight's Access-Control-Allow-Headers must allow MCP-Protocol-Version: the SDK sends it, and only " +
        "retries without it after a CORS failure)");
      assert.equal(g.status, 200, g.url);
      assert.equal(g.resource, resource, g.url);
    }
  });

  steps()("metadata, 401 with a readable WWW-Authenticate, then initialize, tools/list, tools/call and DELETE with a token", async () => {
    // a page on Inspector's origin (http://localhost:<port>), cross-origin to the gateway (another port)
    await page.goto(`${inspector.origin}/healthz`);
    const token = await L.idpToken(idp, { resource, scope: "basic groups roles" });
    const done = (await page.evaluate(directClient, { gwUrl: resource, prmUrl: L.prmUrlFor(resource), token })).steps;
    const where = (name) => {
      const s = done.find((x) => x.name === name);
      assert.ok(s, `step "${name}" not reached: ${JSON.stringify(done)}`);
      assert.equal(s.error, undefined, `${name} from ${inspector.origin}: ${s.error} (Chromium refuses a cross-origin answer ` +
        "without the right Access-Control-* headers; its reason is in the browser console)");
      return s;
    };
    assert.deepEqual(where("GET protected resource metadata"), { name: "GET protected resource metadata", status: 200, resource });
    const u = where("POST /mcp without a token");
    assert.equal(u.status, 401);
    assert.equal(u.wwwAuthenticate, `Bearer resource_metadata="${L.prmUrlFor(resource)}"`,
      "WWW-Authenticate readable by the page (Access-Control-Expose-Headers)");
    assert.equal(u.body, L.UNAUTHORIZED_BODY);
    const init = where("POST initialize with the token (preflight: Authorization)");
    assert.equal(init.status, 200);
    assert.match(init.session ?? "", /\S{16,}/, "Mcp-Session-Id readable by the page (Access-Control-Expose-Headers)");
    assert.equal(init.protocolVersion, "2025-11-25");
    assert.equal(where("notifications/initialized in the session (preflight: Mcp-Session-Id, MCP-Protocol-Version)").status, 202);
    assert.ok(where("tools/list").tools.includes("s1_echo"));
    assert.equal(where("tools/call s1_echo").text, "direct");
    assert.ok([200, 204].includes(where("DELETE the session").status));
  });
});
