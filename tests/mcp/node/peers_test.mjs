// Interop with real MCP peers: the official SDK Client talks to server-everything and
// server-filesystem directly and through the gateway — `custos mcp stdio` (mode stdio), or
// `custos mcp serve` with the SDK's StreamableHTTPClientTransport (mode http); every tool,
// resource and prompt must give the same answer both ways.
// Usage: node peers_test.mjs CUSTOS_BIN NODE_MODULES_DIR [stdio|http]
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CreateMessageRequestSchema, ElicitRequestSchema, ListRootsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { serveGateway, stopGateways } from './serve_gateway.mjs';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';

const [custos, modules, mode = 'stdio'] = process.argv.slice(2);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'custos-peers-'));
const root = fs.realpathSync(fs.mkdtempSync(path.join(tmp, 'root-')));
fs.writeFileSync(path.join(root, 'a.txt'), 'hello\n');
fs.mkdirSync(path.join(root, 'sub'));

const servers = [
  { name: 'ev', args: [path.join(modules, '@modelcontextprotocol/server-everything/dist/index.js'), 'stdio'] },
  { name: 'fs', args: [path.join(modules, '@modelcontextprotocol/server-filesystem/dist/index.js'), root] },
];
// Tools whose answers differ by design: the server's environment (the gateway clears it), and
// timers and toggles that outlive the call. Tools that ask the client for sampling, elicitation
// or roots are compared too: the client answers them (below), directly or through the gateway,
// which offers the servers those capabilities and mediates each request.
const nondeterministic = new Set(['get-env', 'printEnv', 'trigger-long-running-operation',
  'longRunningOperation', 'toggle-simulated-logging', 'toggle-subscriber-updates',
  'simulate-research-query']);

function argsFor(tool, server) {
  const out = {};
  const props = (tool.inputSchema && tool.inputSchema.properties) || {};
  for (const req of tool.inputSchema?.required || []) {
    const p = props[req] || {};
    const t = Array.isArray(p.type) ? p.type[0] : p.type;
    if (server === 'fs' && /path|source/i.test(req)) out[req] = path.join(root, 'a.txt');
    else if (server === 'fs' && /destination/i.test(req)) out[req] = path.join(root, 'b.txt');
    else if (p.enum) out[req] = p.enum[0];
    else if (t === 'number' || t === 'integer') out[req] = 2;
    else if (t === 'boolean') out[req] = false;
    else if (t === 'array') out[req] = server === 'fs' ? [path.join(root, 'a.txt')] : [];
    else if (t === 'object') out[req] = {};
    else out[req] = 'hello';
  }
  if (server === 'fs' && tool.name === 'list_directory') out.path = root;
  return out;
}

// A client that answers the servers' requests the same way every time.
function newClient() {
  const client = new Client({ name: 'peers-test', version: '1.0.0' },
    { capabilities: { sampling: {}, elicitation: {}, roots: { listChanged: true } } });
  client.setRequestHandler(CreateMessageRequestSchema, async () =>
    ({ model: 'test-model', role: 'assistant', content: { type: 'text', text: 'sampled answer' } }));
  client.setRequestHandler(ElicitRequestSchema, async () => ({ action: 'decline' }));
  client.setRequestHandler(ListRootsRequestSchema, async () => ({ roots: [{ uri: `file://${root}`, name: 'root' }] }));
  return client;
}

async function connect(command, args) {
  const client = newClient();
  await client.connect(new StdioClientTransport({ command, args, stderr: 'ignore' }));
  return client;
}

// Through the gateway: stdio, or `custos mcp serve` on a free loopback port over Streamable HTTP.
async function connectVia(gw) {
  if (mode !== 'http') return connect(custos, ['mcp', 'stdio', '--config', gw]);
  const url = await serveGateway(custos, gw);
  const client = newClient();
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  return client;
}

// server-everything stamps dynamic resources with their creation time ("created at 4:17:49 AM");
// the direct and the gateway's server start at different instants, so clock times are masked.
function maskTimes(v) {
  return JSON.parse(JSON.stringify(v).replace(/\b\d{1,2}:\d{2}:\d{2}( [AP]M)?/g, '<time>'));
}

async function settle(p) {
  try { return { ok: maskTimes(await p) }; } catch (e) { return { error: String(e.code ?? e.message) }; }
}

let checked = 0;
for (const s of servers) {
  const direct = await connect(process.execPath, s.args);
  const tools = (await direct.listTools()).tools;
  const policy = path.join(tmp, `${s.name}-policy.toml`);
  fs.writeFileSync(policy, `[policy]\nname = "peers"\n[agents.mcp-client]\nsyscalls = ["tool.invoke"]\n[tools]\nallow = ["${s.name}.*"]\n`);
  const gw = path.join(tmp, `${s.name}-gateway.toml`);
  // The owner classifies every tool (the servers annotate only some).
  fs.writeFileSync(gw, `[gateway]\npolicy = "${policy}"\ndata_dir = "${path.join(tmp, s.name + '-data')}"\n` +
    `[[servers]]\nname = "${s.name}"\ncommand = "${process.execPath}"\nargs = ${JSON.stringify(s.args)}\n` +
    `read_only = ${JSON.stringify(tools.map((t) => t.name))}\ntimeout_ms = 20000\n` +
    `client_capabilities = ["sampling", "elicitation", "roots"]\n`);
  const via = await connectVia(gw);

  // Tools: same descriptors under the namespace.
  const viaTools = (await via.listTools()).tools;
  assert.deepEqual(viaTools.map((t) => t.name).sort(), tools.map((t) => `${s.name}.${t.name}`).sort());
  for (const t of tools) {
    const v = viaTools.find((x) => x.name === `${s.name}.${t.name}`);
    assert.deepEqual({ ...v, name: t.name }, t, `descriptor of ${t.name}`);
  }
  // Every tool: the same result both ways (fs mutations run against separate copies of state would
  // differ, so fs tools that write run last and are compared by success only).
  for (const t of tools) {
    if (nondeterministic.has(t.name)) continue;
    const a = argsFor(t, s.name);
    const writes = s.name === 'fs' && /write|edit|move|create/.test(t.name);
    const d = await settle(direct.callTool({ name: t.name, arguments: a }));
    if (writes) fs.writeFileSync(path.join(root, 'a.txt'), 'hello\n');
    if (writes) fs.rmSync(path.join(root, 'b.txt'), { force: true });
    const g = await settle(via.callTool({ name: `${s.name}.${t.name}`, arguments: a }));
    if (writes) fs.writeFileSync(path.join(root, 'a.txt'), 'hello\n');
    if (writes) fs.rmSync(path.join(root, 'b.txt'), { force: true });
    assert.deepEqual(g, d, `tools/call ${t.name}`);
    // The server's request reached the client (through the gateway: a mediated syscall).
    const answered = { 'trigger-sampling-request': 'sampled answer', 'get-roots-list': root,
      'trigger-elicitation-request': 'decline' }[t.name];
    if (answered) assert.ok(JSON.stringify(g).includes(answered), `${t.name} got the client's answer: ${JSON.stringify(g)}`);
    checked++;
  }
  // Resources and prompts, when the server has them.
  const caps = direct.getServerCapabilities() || {};
  if (caps.resources) {
    const res = (await direct.listResources()).resources;
    const viaRes = (await via.listResources()).resources;
    assert.deepEqual(viaRes.map((r) => r.uri), res.map((r) => `${s.name}+${r.uri}`));
    for (const r of res.slice(0, 10)) {
      const d = maskTimes(await direct.readResource({ uri: r.uri }));
      const g = maskTimes(await via.readResource({ uri: `${s.name}+${r.uri}` }));
      assert.deepEqual(g.contents.map((c) => ({ ...c, uri: c.uri.replace(`${s.name}+`, '') })), d.contents, `resources/read ${r.uri}`);
      checked++;
    }
    const tpl = (await direct.listResourceTemplates()).resourceTemplates;
    const viaTpl = (await via.listResourceTemplates()).resourceTemplates;
    assert.deepEqual(viaTpl.map((r) => r.uriTemplate), tpl.map((r) => `${s.name}+${r.uriTemplate}`));
  }
  if (caps.prompts) {
    const prompts = (await direct.listPrompts()).prompts;
    const viaPrompts = (await via.listPrompts()).prompts;
    assert.deepEqual(viaPrompts.map((p) => p.name), prompts.map((p) => `${s.name}.${p.name}`));
    for (const p of prompts) {
      const a = {};
      for (const arg of p.arguments || []) if (arg.required) a[arg.name] = 'hello';
      const d = await settle(direct.getPrompt({ name: p.name, arguments: a }));
      const g = await settle(via.getPrompt({ name: `${s.name}.${p.name}`, arguments: a }));
      assert.deepEqual(g, d, `prompts/get ${p.name}`);
      checked++;
    }
  }
  await direct.close();
  await via.close();
}
stopGateways();
fs.rmSync(tmp, { recursive: true, force: true });
console.log(`peers (${mode}): ${checked} tools/resources/prompts gave the same answer directly and through the gateway`);
