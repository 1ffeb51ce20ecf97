// Configuration checks: --check-config on the shipped example and on broken files (file:line in stderr),
// and startup refusals.
import { describe, test, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import * as L from "./lib.mjs";

after(L.cleanup);

const check = (file, env = {}) => L.runSync(L.GATEWAY_BIN, ["--mcp-gateway-config", file, "--check-config"], { env });
const show = (r) => `exit ${r.status} signal ${r.signal}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;

describe("--check-config", () => {
  test("examples/gateway.yaml is valid (exit 0)", () => {
    const r = check(path.join(L.ROOT, "examples/gateway.yaml"));
    assert.equal(r.status, 0, show(r));
  });

  test("a small valid config is valid (exit 0)", () => {
    const f = L.writeConfig([{ name: "a/one", url: "http://127.0.0.1:1/mcp", prefix: "a_" },
                             { name: "b/two", url: "http://127.0.0.1:2/mcp" }]);
    const r = check(f);
    assert.equal(r.status, 0, show(r));
  });

  test("broken YAML -> non-zero exit, stderr names file:line", () => {
    const f = L.writeFile("broken.yaml", "servers:\n  - name: a\n  url: http://127.0.0.1:1/mcp\n");
    const r = check(f);
    assert.notEqual(r.status, 0, show(r));
    assert.equal(r.signal, null, show(r));
    assert.match(r.stderr, /broken\.yaml:3\b/, show(r));
  });

  test("a tab in the indentation -> non-zero exit, file:line", () => {
    const f = L.writeFile("tabbed.yaml", "servers:\n  - name: a\n\turl: http://127.0.0.1:1/mcp\n");
    const r = check(f);
    assert.notEqual(r.status, 0, show(r));
    assert.match(r.stderr, /tabbed\.yaml:3\b/, show(r));
  });

  test("a server without url -> non-zero exit, file:line of the entry", () => {
    const f = L.writeFile("no-url.yaml", "servers:\n  - name: a\n    prefix: a_\n");
    const r = check(f);
    assert.notEqual(r.status, 0, show(r));
    assert.match(r.stderr, /no-url\.yaml:[23]\b/, show(r));
  });

  test("an invalid prefix -> non-zero exit", () => {
    const f = L.writeConfig([{ name: "a", url: "http://127.0.0.1:1/mcp", prefix: "Bad-Prefix" }], { file: "bad-prefix.yaml" });
    const r = check(f);
    assert.notEqual(r.status, 0, show(r));
    assert.match(r.stderr, /bad-prefix\.yaml/, show(r));
  });

  test("duplicate server names -> non-zero exit", () => {
    const f = L.writeConfig([{ name: "dup", url: "http://127.0.0.1:1/mcp", prefix: "a_" },
                             { name: "dup", url: "http://127.0.0.1:2/mcp", prefix: "b_" }], { file: "dup.yaml" });
    const r = check(f);
    assert.notEqual(r.status, 0, show(r));
    assert.match(r.stderr, /dup\.yaml:\d+/, show(r));
  });

  test("a missing file -> non-zero exit naming the file", () => {
    const r = check("/nonexistent/dir/missing-gateway.yaml");
    assert.notEqual(r.status, 0, show(r));
    assert.match(r.stderr, /missing-gateway\.yaml/, show(r));
  });

  test("an unknown flag -> non-zero exit", () => {
    const r = L.runSync(L.GATEWAY_BIN, ["--no-such-flag"]);
    assert.notEqual(r.status, 0, show(r));
    assert.equal(r.signal, null, show(r));
  });
});

describe("startup refusals", () => {
  test("GATEWAY_SIGNING_KEY shorter than 32 bytes -> the gateway does not start", async () => {
    const port = await L.freePort();
    const f = L.writeConfig([{ name: "a", url: "http://127.0.0.1:1/mcp", prefix: "a_" }]);
    const p = L.spawnProc("gateway-short-key", L.GATEWAY_BIN,
      ["--mcp-gateway-config", f, "--mcp-broker-public-address", `127.0.0.1:${port}`], { env: { GATEWAY_SIGNING_KEY: "too-short" } });
    const res = await Promise.race([p.exited, L.sleep(5000, null, { ref: false })]);
    if (!res) { await p.stop(); assert.fail(`still running after 5 s with a 9-byte key; log ${p.logFile}`); }
    assert.ok(!res.error, `cannot run ${L.GATEWAY_BIN}: ${res.error?.message}`);
    assert.notEqual(res.code, 0, JSON.stringify(res));
    assert.equal(res.signal, null, `exited by itself: ${JSON.stringify(res)}`);
    assert.match(p.log(), /GATEWAY_SIGNING_KEY|signing key/i, "the message says what is wrong");
  });
});
