// A misbehaving MCP server over stdio (newline-delimited JSON-RPC) for tests/e2e/45-upstream-faults.
// initialize, notifications, ping and tools/list are answered normally; tools/call misbehaves as the
// tool's name says. usage: node bad-stdio.mjs [--huge-bytes N]  (or HUGE_BYTES in the environment)
import readline from "node:readline";

const i = process.argv.indexOf("--huge-bytes");
const HUGE_BYTES = Number(i > 0 ? process.argv[i + 1] : process.env.HUGE_BYTES ?? 1 << 20);
const PROTOCOLS = ["2025-11-25", "2025-06-18", "2025-03-26"];

const TOOLS = {
  ok: "answers normally",
  garbage: "writes lines that are not JSON-RPC, never the answer",
  garbage_then_ok: "writes lines that are not JSON-RPC, then the answer",
  hang: "writes nothing",
  wrong_id: "answers with another id",
  huge_line: "the answer on one line of HUGE_BYTES (over the gateway's --max-upstream-response-size)",
  exit: "exits (code 3) while the call is in flight",
};

const send = (m) => process.stdout.write(JSON.stringify(m) + "\n");
const text = (t) => ({ content: [{ type: "text", text: t }] });
const garbage = () => {
  process.stdout.write("this is not json\n");
  process.stdout.write("{\"jsonrpc\":\"2.0\",\"id\":\n");            // a cut message
  process.stdout.write("\u001b[31mERROR\u001b[0m something went wrong\n");
  process.stdout.write("[1,2,3]\n");
  process.stdout.write("{\"no\":\"jsonrpc\"}\n");
  process.stdout.write("\n");
};

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  let m;
  try { m = JSON.parse(line); } catch { return; }
  const { id, method, params } = m;
  if (id === undefined || !method) return;           // notifications and responses
  if (method === "initialize") {
    const v = PROTOCOLS.includes(params?.protocolVersion) ? params.protocolVersion : PROTOCOLS[0];
    send({ jsonrpc: "2.0", id, result: { protocolVersion: v, capabilities: { tools: {} }, serverInfo: { name: "bad-stdio", version: "0.0.1" } } });
  } else if (method === "ping") {
    send({ jsonrpc: "2.0", id, result: {} });
  } else if (method === "tools/list") {
    send({ jsonrpc: "2.0", id, result: { tools: Object.entries(TOOLS).map(([name, description]) =>
      ({ name, description, inputSchema: { type: "object", properties: {} } })) } });
  } else if (method === "tools/call") {
    const name = params?.name;
    switch (name) {
      case "ok": send({ jsonrpc: "2.0", id, result: text("ok from bad-stdio") }); break;
      case "garbage": garbage(); break;
      case "garbage_then_ok": garbage(); send({ jsonrpc: "2.0", id, result: text("ok after garbage") }); break;
      case "hang": break;
      case "wrong_id": send({ jsonrpc: "2.0", id: typeof id === "number" ? id + 1000000 : `not-${id}`, result: text("for somebody else") }); break;
      case "huge_line": send({ jsonrpc: "2.0", id, result: text("h".repeat(HUGE_BYTES)) }); break;
      case "exit": process.stderr.write("bad-stdio: exiting on purpose\n"); setTimeout(() => process.exit(3), 100); break;
      default: send({ jsonrpc: "2.0", id, error: { code: -32602, message: `unknown tool ${name}` } });
    }
  } else {
    send({ jsonrpc: "2.0", id, error: { code: -32601, message: `method not found: ${method}` } });
  }
});
rl.on("close", () => process.exit(0));
