// A small MCP server built on @modelcontextprotocol/server 2.4 over stdio, for the gateway's era
// interop test (peers_era_test.mjs) and the cold-start benchmark.
//   node era_server.mjs --era=modern   serves only 2026-07-28 (server/discover, per-request _meta);
//                                      an initialize is refused (serveStdio legacy: 'reject')
//   node era_server.mjs --era=legacy   serves only the 2025 eras (initialize; StdioServerTransport)
//   node era_server.mjs --era=both     serves whichever era the client opens with (serveStdio)
//   node era_server.mjs --http         serves only 2026-07-28 over Streamable HTTP
//                                      (createMcpHandler, legacy: 'reject') on 127.0.0.1, port 0;
//                                      prints "listening on http://127.0.0.1:PORT/mcp"
// Tools: echo, add (with structured output), fail, grow (adds a tool: list_changed), confirm (asks
// the user with an elicitation: input_required in 2026-07-28, a server → client request through
// the SDK's shim in the 2025 eras); one resource; one prompt.
import { McpServer, acceptedContent, createMcpHandler, inputRequired } from '@modelcontextprotocol/server';
import { StdioServerTransport, serveStdio } from '@modelcontextprotocol/server/stdio';
import * as z from 'zod/v4';

const era = (process.argv.find((a) => a.startsWith('--era=')) || '--era=both').slice(6);

function build() {
  let grown = false;
  const server = new McpServer({ name: 'era-fixture', version: '2.4.0' }, { capabilities: { tools: {}, resources: {}, prompts: {} } });
  server.registerTool('echo', {
    description: 'Echoes its text',
    inputSchema: z.object({ text: z.string() }),
    annotations: { readOnlyHint: true },
  }, async ({ text }) => ({ content: [{ type: 'text', text }] }));
  server.registerTool('add', {
    title: 'Add',
    description: 'Adds two numbers',
    inputSchema: z.object({ a: z.number(), b: z.number() }),
    outputSchema: z.object({ sum: z.number() }),
    annotations: { readOnlyHint: true },
  }, async ({ a, b }) => ({
    content: [{ type: 'text', text: String(a + b) }],
    structuredContent: { sum: a + b },
  }));
  server.registerTool('fail', {
    description: 'Always reports a tool error',
    inputSchema: z.object({}),
    annotations: { readOnlyHint: true },
  }, async () => ({ content: [{ type: 'text', text: 'it failed' }], isError: true }));
  server.registerTool('grow', {
    description: 'Adds a tool (the server then announces a tools list change)',
    inputSchema: z.object({}),
    annotations: { readOnlyHint: true },
  }, async () => {
    if (!grown) {
      grown = true;
      server.registerTool('grown', { description: 'A tool added at run time', inputSchema: z.object({}), annotations: { readOnlyHint: true } },
        async () => ({ content: [{ type: 'text', text: 'grown' }] }));
    }
    return { content: [{ type: 'text', text: 'grew' }] };
  });
  server.registerTool('confirm', {
    description: 'Asks the user to confirm something',
    inputSchema: z.object({ what: z.string() }),
    annotations: { readOnlyHint: true },
  }, async ({ what }, ctx) => {
    const schema = z.object({ confirm: z.boolean() });
    const answer = acceptedContent(ctx.mcpReq.inputResponses, 'confirm', schema);
    if (answer === undefined) {
      return inputRequired({ inputRequests: { confirm: inputRequired.elicit({ message: `Confirm ${what}?`, requestedSchema: schema }) } });
    }
    return { content: [{ type: 'text', text: `confirmed ${what}: ${answer.confirm}` }] };
  });
  server.registerResource('readme', 'fixture://readme', { mimeType: 'text/plain', description: 'A fixed text' },
    async (uri) => ({ contents: [{ uri: uri.href, mimeType: 'text/plain', text: 'era fixture readme' }] }));
  server.registerPrompt('greet', {
    description: 'Greets someone',
    argsSchema: z.object({ name: z.string() }),
  }, async ({ name }) => ({ messages: [{ role: 'user', content: { type: 'text', text: `Hello, ${name}` } }] }));
  return server;
}

if (process.argv.includes('--http')) {
  // A node:http face for the web-standard handler (what @modelcontextprotocol/node's
  // toNodeHandler does), loopback only.
  const { createServer } = await import('node:http');
  const handler = createMcpHandler(() => build(), { legacy: 'reject' });
  const http = createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) headers.set(k, Array.isArray(v) ? v.join(', ') : v);
    const abort = new AbortController();
    res.on('close', () => abort.abort());
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
    try {
      const response = await handler.fetch(new Request(`http://${req.headers.host}${req.url}`, {
        method: req.method, headers, body: hasBody ? Buffer.concat(chunks) : undefined, signal: abort.signal,
      }));
      res.writeHead(response.status, Object.fromEntries(response.headers));
      if (response.body) for await (const chunk of response.body) res.write(chunk);
      res.end();
    } catch (e) {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    }
  });
  http.listen(0, '127.0.0.1', () => console.log(`listening on http://127.0.0.1:${http.address().port}/mcp`));
} else if (era === 'legacy') {
  await build().connect(new StdioServerTransport());
} else {
  serveStdio(() => build(), { legacy: era === 'modern' ? 'reject' : 'serve' });
}
