// A small MCP server built on @modelcontextprotocol/server 2.4 over stdio, for the gateway's era
// interop test (peers_era_test.mjs) and the cold-start benchmark.
//   node era_server.mjs --era=modern   serves only 2026-07-28 (server/discover, per-request _meta);
//                                      an initialize is refused (serveStdio legacy: 'reject')
//   node era_server.mjs --era=legacy   serves only the 2025 eras (initialize; StdioServerTransport)
//   node era_server.mjs --era=both     serves whichever era the client opens with (serveStdio)
// Tools: echo, add (with structured output), fail, grow (adds a tool: list_changed); one
// resource; one prompt.
import { McpServer } from '@modelcontextprotocol/server';
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
  server.registerResource('readme', 'fixture://readme', { mimeType: 'text/plain', description: 'A fixed text' },
    async (uri) => ({ contents: [{ uri: uri.href, mimeType: 'text/plain', text: 'era fixture readme' }] }));
  server.registerPrompt('greet', {
    description: 'Greets someone',
    argsSchema: z.object({ name: z.string() }),
  }, async ({ name }) => ({ messages: [{ role: 'user', content: { type: 'text', text: `Hello, ${name}` } }] }));
  return server;
}

if (era === 'legacy') {
  await build().connect(new StdioServerTransport());
} else {
  serveStdio(() => build(), { legacy: era === 'modern' ? 'reject' : 'serve' });
}
