import * as L from "./lib.mjs";
import { CreateMessageRequestSchema, ElicitRequestSchema, ListRootsRequestSchema, LoggingMessageNotificationSchema, ResourceUpdatedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
const T0 = Date.now(); const ts = () => ((Date.now() - T0) / 1000).toFixed(2);
const [s1, ev] = await Promise.all([L.startExample({ name: "server1" }), L.startEverything()]);
const direct = process.argv[2] === "direct";
const gw = direct ? { url: ev.url } : await L.startGateway({ servers: [
  { name: "example/server1", url: s1.url, prefix: "s1_" },
  { name: "everything", url: ev.url, prefix: "ev_" } ] });
const P = direct ? "" : "ev_";
const client = new Client({ name: "probe", version: "1" }, { capabilities: { sampling: {}, elicitation: { form: {} }, roots: { listChanged: true } } });
client.setRequestHandler(CreateMessageRequestSchema, async (r) => { console.log(ts(), "SAMPLING", JSON.stringify(r.params)); return { model: "fake", role: "assistant", content: { type: "text", text: "FAKE" } }; });
client.setRequestHandler(ElicitRequestSchema, async (r) => { console.log(ts(), "ELICIT", r.params.message); return { action: "accept", content: { name: "Ada", check: true } }; });
client.setRequestHandler(ListRootsRequestSchema, async () => { console.log(ts(), "ROOTS"); return { roots: [{ uri: "file:///tmp/a", name: "A" }] }; });
client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => console.log(ts(), "LOG", JSON.stringify(n.params)));
client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => console.log(ts(), "UPD", JSON.stringify(n.params)));
const t = new StreamableHTTPClientTransport(new URL(gw.url));
await client.connect(t);
console.log(ts(), "connected");
try { console.log(ts(), JSON.stringify(await client.callTool({ name: P+"echo", arguments: { message: "x" } }))); } catch (e) { console.log("ERR", e.message); }
await L.sleep(1500);
try { console.log(ts(), JSON.stringify(await client.callTool({ name: P+"trigger-sampling-request", arguments: { prompt: "hi" } }))); } catch (e) { console.log("ERR", e.message); }
try { console.log(ts(), JSON.stringify(await client.callTool({ name: P+"trigger-elicitation-request", arguments: {} }))); } catch (e) { console.log("ERR", e.message); }
try { console.log(ts(), JSON.stringify(await client.callTool({ name: P+"get-roots-list", arguments: {} }))); } catch (e) { console.log("ERR", e.message); }
await client.sendRootsListChanged(); await L.sleep(500);
await client.setLoggingLevel("debug");
console.log(ts(), JSON.stringify(await client.getPrompt({ name: P+"args-prompt", arguments: { city: "Paris", state: "TX" } })));
console.log(ts(), JSON.stringify(await client.complete({ ref: { type: "ref/prompt", name: P+"completable-prompt" }, argument: { name: "department", value: "S" } })));
console.log(ts(), JSON.stringify(await client.complete({ ref: { type: "ref/prompt", name: P+"completable-prompt" }, argument: { name: "name", value: "" }, context: { arguments: { department: "Sales" } } })));
console.log(ts(), JSON.stringify(await client.complete({ ref: { type: "ref/resource", uri: "demo://resource/dynamic/text/{resourceId}" }, argument: { name: "resourceId", value: "7" } })));
const rr = await client.readResource({ uri: "demo://resource/dynamic/text/3" }); console.log(ts(), JSON.stringify(rr));
const lr = await client.listResources(); console.log(JSON.stringify(lr.resources.map(r=>r.uri)));
const r0 = await client.readResource({ uri: lr.resources[0].uri }); console.log(ts(), JSON.stringify(r0).slice(0, 300));
console.log(ts(), JSON.stringify(await client.subscribeResource({ uri: lr.resources[0].uri })));
console.log(ts(), JSON.stringify(await client.callTool({ name: P+"toggle-subscriber-updates", arguments: {} })));
await L.sleep(6000);
console.log(ts(), JSON.stringify(await client.unsubscribeResource({ uri: lr.resources[0].uri })));
console.log(ts(), JSON.stringify(await client.callTool({ name: P+"toggle-simulated-logging", arguments: {} })));
await L.sleep(1000);
const seen = [];
const r = await client.callTool({ name: P+"trigger-long-running-operation", arguments: { duration: 0.6, steps: 3 } }, undefined, { onprogress: (p) => seen.push(p) });
console.log(ts(), JSON.stringify(r), JSON.stringify(seen));
const ac = new AbortController();
const pr = client.callTool({ name: P+"trigger-long-running-operation", arguments: { duration: 5, steps: 5 } }, undefined, { signal: ac.signal, onprogress: (p) => console.log(ts(), "PROG", JSON.stringify(p)) });
setTimeout(() => ac.abort("enough"), 1500);
try { await pr; } catch (e) { console.log(ts(), "ABORT", e.name, e.message); }
console.log(ts(), JSON.stringify(await client.ping()));
await L.sleep(4000);
await client.close();
await L.cleanup();
process.exit(0);
