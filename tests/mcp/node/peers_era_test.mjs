// Era interop with real MCP peers (docs/mcp.md "Protocol eras"): the gateway translates between a
// client's protocol era and each server's.
//   A. @modelcontextprotocol/client 2.4 pinned to 2026-07-28 (server/discover, per-request _meta)
//      → `custos mcp stdio` → 2025-11-25 servers: server-everything and era_server.mjs --era=legacy
//      (@modelcontextprotocol/server 2.4 on the 2025 handshake). Compared with the same 2.4
//      client in its 2025 mode straight to the servers.
//   B. @modelcontextprotocol/sdk 1.32 (a 2025-11-25 client) → `custos mcp stdio` →
//      era_server.mjs --era=modern (@modelcontextprotocol/server 2.4 serving 2026-07-28 only: it
//      refuses initialize). Compared with the 2.4 client pinned to 2026-07-28 straight to it.
//      The server's tools list change reaches the client through the gateway's
//      subscriptions/listen stream to it (decision 042).
//   C. Multi round-trip (decision 034): the era_server `confirm` tool asks for an elicitation.
//      2.4 client pinned to 2026-07-28 (it auto-fulfils input_required with its elicitation
//      handler) → gateway → era_server --era=legacy (the SDK's shim sends elicitation/create);
//      and the 1.32 client (answers elicitation/create) → gateway → era_server --era=modern
//      (input_required). Each compared with the same client era straight to the same server.
//   D. The 2026-07-28 era toward an HTTP back server: the 1.32 client → gateway → era_server
//      --http (createMcpHandler, modern only: it checks the envelope and SEP-2243 headers), compared
//      with the 2.4 client pinned to 2026-07-28 straight to era_server --era=modern.
//   E. The 2026-07-28 era on the HTTP front (decision 038): A and C1 again, with the 2.4 client's
//      StreamableHTTPClientTransport pinned to 2026-07-28 → `custos mcp serve` (no session: one
//      POST per request, the listen stream a long POST).
// Usage: node peers_era_test.mjs CUSTOS_BIN NODE_MODULES_DIR
import { Client as Client2 } from '@modelcontextprotocol/client';
import { StdioClientTransport as Stdio2 } from '@modelcontextprotocol/client/stdio';
import { StreamableHTTPClientTransport as Http2 } from '@modelcontextprotocol/client';
import { Client as Client1 } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport as Stdio1 } from '@modelcontextprotocol/sdk/client/stdio.js';
import { ElicitRequestSchema, ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { spawn } from 'node:child_process';
import { serveGateway } from './serve_gateway.mjs';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';

const [custos, modules] = process.argv.slice(2);
const here = path.dirname(fileURLToPath(import.meta.url));
const eraServer = path.join(here, 'era_server.mjs');
const everything = path.join(modules, '@modelcontextprotocol/server-everything/dist/index.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'custos-era-'));

// server-everything tools whose answers differ by design (see peers_test.mjs), plus those that
// need a server-to-client request, which the stateless era does not have.
const nondeterministic = new Set(['get-env', 'trigger-long-running-operation',
  'trigger-sampling-request', 'trigger-elicitation-request', 'get-roots-list',
  'toggle-simulated-logging', 'toggle-subscriber-updates', 'simulate-research-query',
  'trigger-sampling-request-async', 'trigger-elicitation-request-async']);

function argsFor(tool) {
  const out = {};
  const props = (tool.inputSchema && tool.inputSchema.properties) || {};
  for (const req of tool.inputSchema?.required || []) {
    const p = props[req] || {};
    const t = Array.isArray(p.type) ? p.type[0] : p.type;
    if (p.enum) out[req] = p.enum[0];
    else if (t === 'number' || t === 'integer') out[req] = 2;
    else if (t === 'boolean') out[req] = false;
    else if (t === 'array') out[req] = [];
    else if (t === 'object') out[req] = {};
    else out[req] = 'hello';
  }
  return out;
}

function maskTimes(v) {
  return JSON.parse(JSON.stringify(v).replace(/\b\d{1,2}:\d{2}:\d{2}( [AP]M)?/g, '<time>'));
}

// A 2026-07-28 result names its server in _meta (the era's serverInfo key): the gateway names
// itself there, a 2025 result has no such key. The comparison leaves it out.
function dropServerInfo(r) {
  if (r && r._meta && 'io.modelcontextprotocol/serverInfo' in r._meta) {
    const { 'io.modelcontextprotocol/serverInfo': _, ...meta } = r._meta;
    const { _meta, ...rest } = r;
    return Object.keys(meta).length ? { ...rest, _meta: meta } : rest;
  }
  return r;
}

async function settle(p) {
  try { return { ok: maskTimes(dropServerInfo(await p)) }; } catch (e) { return { error: String(e.code ?? e.message) }; }
}

function gatewayConfig(name, servers) {
  const policy = path.join(tmp, `${name}-policy.toml`);
  fs.writeFileSync(policy, `[policy]\nname = "era"\n[agents.mcp-client]\nsyscalls = ["tool.invoke"]\n` +
    `[tools]\nallow = ${JSON.stringify(servers.map((s) => `${s.name}.*`))}\n`);
  const gw = path.join(tmp, `${name}-gateway.toml`);
  let text = `[gateway]\npolicy = "${policy}"\ndata_dir = "${path.join(tmp, name + '-data')}"\n`;
  for (const s of servers) {
    text += `[[servers]]\nname = "${s.name}"\n` +
      (s.url ? `url = "${s.url}"\n` : `command = "${process.execPath}"\nargs = ${JSON.stringify(s.args)}\n`) +
      `read_only = ${JSON.stringify(s.tools)}\ntimeout_ms = 20000\n` +
      (s.clientCapabilities ? `client_capabilities = ${JSON.stringify(s.clientCapabilities)}\n` : '');
  }
  fs.writeFileSync(gw, text);
  return gw;
}

const modern = { versionNegotiation: { mode: { pin: '2026-07-28' } } };
async function connect2(command, args, options = {}) {
  const client = new Client2({ name: 'era-test', version: '1.0.0' }, options);
  await client.connect(new Stdio2({ command, args, stderr: 'ignore' }));
  return client;
}
async function connect1(command, args, options = {}) {
  const client = new Client1({ name: 'era-test', version: '1.0.0' }, options);
  if (options.capabilities?.elicitation) client.setRequestHandler(ElicitRequestSchema, async () => confirmAnswer);
  await client.connect(new Stdio1({ command, args, stderr: 'ignore' }));
  return client;
}
async function connect2Http(url, options = {}, eliciting = false) {
  const client = new Client2({ name: 'era-test', version: '1.0.0' }, eliciting ? { ...options, ...elicits } : options);
  if (eliciting) client.setRequestHandler('elicitation/create', async () => confirmAnswer);
  await client.connect(new Http2(new URL(url)));
  return client;
}
// Client options asking for tools list changes, and seen(): resolves once the tool era_server's
// `grow` adds (lg.grown) is listed after a change, fails after 10 s.
function watchGrowth(label) {
  let changed;
  const grown = new Promise((resolve) => { changed = resolve; });
  const options = { listChanged: { tools: { onChanged: (err, tools) => { if (!err && tools?.some((t) => t.name === 'lg.grown')) changed(tools); } } } };
  const seen = () => Promise.race([grown, new Promise((_, rej) => setTimeout(() => rej(new Error(`${label}: no tools list change reached the 2026-07-28 client`)), 10000))]);
  return { options, seen };
}
// What the user answers every elicitation with.
const confirmAnswer = { action: 'accept', content: { confirm: true } };
const elicits = { capabilities: { elicitation: {} } };
async function connect2Eliciting(command, args, options = {}) {
  const client = new Client2({ name: 'era-test', version: '1.0.0' }, { ...options, ...elicits });
  client.setRequestHandler('elicitation/create', async () => confirmAnswer);
  await client.connect(new Stdio2({ command, args, stderr: 'ignore' }));
  return client;
}

// Compares everything a server offers, `direct` vs `via` the gateway (namespace `ns`).
async function compare(label, ns, direct, via, skip = new Set()) {
  let checked = 0;
  const tools = (await direct.listTools()).tools;
  const viaTools = (await via.listTools()).tools.filter((t) => t.name.startsWith(`${ns}.`));
  assert.deepEqual(viaTools.map((t) => t.name).sort(), tools.map((t) => `${ns}.${t.name}`).sort(), `${label}: tool names`);
  for (const t of tools) {
    const v = viaTools.find((x) => x.name === `${ns}.${t.name}`);
    // `execution` (tasks) does not exist in 2026-07-28: a stateless client never sees it.
    const { execution, ...rest } = t;
    const { execution: vexec, ...vrest } = v;
    assert.deepEqual({ ...vrest, name: t.name }, rest, `${label}: descriptor of ${t.name}`);
  }
  for (const t of tools) {
    if (skip.has(t.name)) continue;
    const a = argsFor(t);
    const d = await settle(direct.callTool({ name: t.name, arguments: a }));
    const g = await settle(via.callTool({ name: `${ns}.${t.name}`, arguments: a }));
    assert.deepEqual(g, d, `${label}: tools/call ${t.name}`);
    checked++;
  }
  const caps = direct.getServerCapabilities() || {};
  if (caps.resources) {
    const res = (await direct.listResources()).resources;
    const viaRes = (await via.listResources()).resources.filter((r) => r.uri.startsWith(`${ns}+`));
    assert.deepEqual(viaRes.map((r) => r.uri), res.map((r) => `${ns}+${r.uri}`), `${label}: resources`);
    for (const r of res.slice(0, 10)) {
      const d = maskTimes(dropServerInfo(await direct.readResource({ uri: r.uri })));
      const g = maskTimes(dropServerInfo(await via.readResource({ uri: `${ns}+${r.uri}` })));
      assert.deepEqual(g.contents.map((c) => ({ ...c, uri: c.uri.replace(`${ns}+`, '') })), d.contents, `${label}: resources/read ${r.uri}`);
      checked++;
    }
  }
  if (caps.prompts) {
    const prompts = (await direct.listPrompts()).prompts;
    const viaPrompts = (await via.listPrompts()).prompts.filter((p) => p.name.startsWith(`${ns}.`));
    assert.deepEqual(viaPrompts.map((p) => p.name), prompts.map((p) => `${ns}.${p.name}`), `${label}: prompts`);
    for (const p of prompts) {
      const a = {};
      for (const arg of p.arguments || []) if (arg.required) a[arg.name] = 'hello';
      const d = await settle(direct.getPrompt({ name: p.name, arguments: a }));
      const g = await settle(via.getPrompt({ name: `${ns}.${p.name}`, arguments: a }));
      assert.deepEqual(g, d, `${label}: prompts/get ${p.name}`);
      checked++;
    }
  }
  return checked;
}

let checked = 0;

// ---- A: a 2026-07-28 client through the gateway to 2025-11-25 servers ----
{
  const evArgs = [everything, 'stdio'];
  const lgArgs = [eraServer, '--era=legacy'];
  const evDirect = await connect2(process.execPath, evArgs);
  const lgDirect = await connect2(process.execPath, lgArgs);
  const evTools = (await evDirect.listTools()).tools.map((t) => t.name);
  const lgTools = (await lgDirect.listTools()).tools.map((t) => t.name);
  const gw = gatewayConfig('a', [{ name: 'ev', args: evArgs, tools: evTools }, { name: 'lg', args: lgArgs, tools: lgTools }]);
  // The client asks for tools list changes: the 2.4 client opens subscriptions/listen at connect
  // (stateless era), and the gateway relays the servers' list_changed on that stream.
  const growth = watchGrowth('A');
  const via = await connect2(custos, ['mcp', 'stdio', '--config', gw], { ...modern, ...growth.options });
  assert.equal(via.getNegotiatedProtocolVersion(), '2026-07-28', 'the client speaks 2026-07-28 with the gateway');
  assert.equal(evDirect.getNegotiatedProtocolVersion(), '2025-11-25');
  checked += await compare('A/everything', 'ev', evDirect, via, nondeterministic);
  checked += await compare('A/era-legacy', 'lg', lgDirect, via, new Set(['confirm']));
  // compare() called lg.grow through the gateway: the server announced the new tool.
  await growth.seen();
  checked++;
  await Promise.all([evDirect.close(), lgDirect.close(), via.close()]);
}

// ---- B: a 2025-11-25 client through the gateway to a 2026-07-28-only server ----
{
  const mdArgs = [eraServer, '--era=modern'];
  const direct = await connect2(process.execPath, mdArgs, modern);
  assert.equal(direct.getNegotiatedProtocolVersion(), '2026-07-28');
  const mdTools = (await direct.listTools()).tools.map((t) => t.name);
  const gw = gatewayConfig('b', [{ name: 'md', args: mdArgs, tools: mdTools }]);
  const via = await connect1(custos, ['mcp', 'stdio', '--config', gw]);
  assert.equal(via.getServerVersion().name, 'custos-mcp-gateway');
  const changed = new Promise((resolve) => via.setNotificationHandler(ToolListChangedNotificationSchema, resolve));
  checked += await compare('B/era-modern', 'md', direct, via, new Set(['confirm']));
  // compare() called md.grow: the change came on the gateway's listen stream to the server.
  await Promise.race([changed, new Promise((_, rej) => setTimeout(() => rej(new Error('no tools list change reached the 2025 client from the 2026-07-28 server')), 10000))]);
  checked++;
  // A 2025 client refused by the server itself: the gateway is what makes it usable.
  await assert.rejects(connect1(process.execPath, mdArgs), 'a 2025 client cannot talk to the modern-only server directly');
  await Promise.all([direct.close(), via.close()]);
}

// ---- C: multi round-trip requests across the eras ----
{
  const confirm = { name: 'confirm', arguments: { what: 'deploy' } };
  const expected = [{ type: 'text', text: 'confirmed deploy: true' }];
  // C1: a 2026-07-28 client; the 2025 server's elicitation/create reaches it as input_required.
  const lgArgs = [eraServer, '--era=legacy'];
  const lgDirect = await connect2Eliciting(process.execPath, lgArgs);
  const lgTools = (await lgDirect.listTools()).tools.map((t) => t.name);
  const gw1 = gatewayConfig('c1', [{ name: 'lg', args: lgArgs, tools: lgTools, clientCapabilities: ['elicitation'] }]);
  const via1 = await connect2Eliciting(custos, ['mcp', 'stdio', '--config', gw1], modern);
  assert.equal(via1.getNegotiatedProtocolVersion(), '2026-07-28');
  const d1 = dropServerInfo(await lgDirect.callTool(confirm));
  const g1 = dropServerInfo(await via1.callTool({ ...confirm, name: 'lg.confirm' }));
  assert.deepEqual(d1.content, expected, 'C1: direct');
  assert.deepEqual(g1.content, d1.content, 'C1: a 2025 server\'s elicitation through input_required');
  checked++;
  // C2: a 2025-11-25 client; the 2026-07-28 server's input_required reaches it as elicitation/create.
  const mdArgs = [eraServer, '--era=modern'];
  const mdDirect = await connect2Eliciting(process.execPath, mdArgs, modern);
  const mdTools = (await mdDirect.listTools()).tools.map((t) => t.name);
  const gw2 = gatewayConfig('c2', [{ name: 'md', args: mdArgs, tools: mdTools, clientCapabilities: ['elicitation'] }]);
  const via2 = await connect1(custos, ['mcp', 'stdio', '--config', gw2], elicits);
  const d2 = dropServerInfo(await mdDirect.callTool(confirm));
  const g2 = await via2.callTool({ ...confirm, name: 'md.confirm' });
  assert.deepEqual(d2.content, expected, 'C2: direct');
  assert.deepEqual(g2.content, d2.content, 'C2: a 2026-07-28 server\'s input_required through elicitation/create');
  checked++;
  await Promise.all([lgDirect.close(), via1.close(), mdDirect.close(), via2.close()]);
}

// ---- D: a 2026-07-28 server over Streamable HTTP ----
{
  const http = spawn(process.execPath, [eraServer, '--http'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const url = await new Promise((resolve, reject) => {
    http.stdout.on('data', (d) => { const m = /http:\/\/\S+/.exec(String(d)); if (m) resolve(m[0]); });
    http.on('exit', () => reject(new Error('era_server --http exited')));
  });
  try {
    const mdArgs = [eraServer, '--era=modern'];
    const direct = await connect2Eliciting(process.execPath, mdArgs, modern);
    const mdTools = (await direct.listTools()).tools.map((t) => t.name);
    const gw = gatewayConfig('d', [{ name: 'hm', url, tools: mdTools, clientCapabilities: ['elicitation'] }]);
    const via = await connect1(custos, ['mcp', 'stdio', '--config', gw], elicits);
    checked += await compare('D/http-modern', 'hm', direct, via);
    await Promise.all([direct.close(), via.close()]);
  } finally {
    http.kill();
  }
}

// ---- E: a 2026-07-28 client over Streamable HTTP (stateless: no Mcp-Session-Id) ----
{
  const evArgs = [everything, 'stdio'];
  const lgArgs = [eraServer, '--era=legacy'];
  const evDirect = await connect2(process.execPath, evArgs);
  const lgDirect = await connect2Eliciting(process.execPath, lgArgs);
  const evTools = (await evDirect.listTools()).tools.map((t) => t.name);
  const lgTools = (await lgDirect.listTools()).tools.map((t) => t.name);
  const gw = gatewayConfig('e', [{ name: 'ev', args: evArgs, tools: evTools },
    { name: 'lg', args: lgArgs, tools: lgTools, clientCapabilities: ['elicitation'] }]);
  const url = await serveGateway(custos, gw);
  const growth = watchGrowth('E');
  const via = await connect2Http(url, { ...modern, ...growth.options }, true);
  assert.equal(via.getNegotiatedProtocolVersion(), '2026-07-28', 'E: the HTTP client speaks 2026-07-28 with the gateway');
  assert.equal(via.transport?.sessionId, undefined, 'E: no session');
  checked += await compare('E/everything', 'ev', evDirect, via, nondeterministic);
  checked += await compare('E/era-legacy', 'lg', lgDirect, via, new Set(['confirm']));
  await growth.seen();
  checked++;
  const confirm = { name: 'confirm', arguments: { what: 'deploy' } };
  const d = dropServerInfo(await lgDirect.callTool(confirm));
  const g = dropServerInfo(await via.callTool({ ...confirm, name: 'lg.confirm' }));
  assert.deepEqual(g.content, d.content, 'E: a 2025 server\'s elicitation through input_required over HTTP');
  checked++;
  await Promise.all([evDirect.close(), lgDirect.close(), via.close()]);
}

fs.rmSync(tmp, { recursive: true, force: true });
console.log(`peers_era: ${checked} tools/resources/prompts gave the same answer directly and across eras through the gateway`);
// Everything is closed; do not wait for the SDKs' leftover close timers.
process.exit(0);
