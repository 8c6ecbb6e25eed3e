// `custos mcp serve` for the interop tests: started on a free loopback port, killed when the test
// process exits.
import { spawn } from 'node:child_process';

const children = [];
// Stops every gateway started here (a running child keeps node from exiting).
export function stopGateways() { for (const c of children.splice(0)) c.kill('SIGTERM'); }
process.on('exit', stopGateways);

// Starts `custos mcp serve --config gw`; resolves to its endpoint URL once it listens.
export function serveGateway(custos, gw) {
  const child = spawn(custos, ['mcp', 'serve', '--config', gw, '--listen', '127.0.0.1:0'],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/\S+)/);
      if (m) resolve(m[1]);
    });
    child.on('exit', (code) => reject(new Error(`custos mcp serve exited ${code}`)));
  });
}
