import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A tiny stand-in tool for `npm start` when TOOL_URL is unset: answers
 * `GET /hello` with JSON, echoes anything else (method, path, headers it got,
 * body length). On 127.0.0.1 for `npm start`; `postern demo-tool` (the
 * docker-compose example's tool) chooses where.
 */
export async function startDemoTool(port = 0, host = '127.0.0.1'): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    let bytes = 0;
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => {
      const body =
        req.url === '/hello'
          ? { hello: 'from the demo tool behind the firewall', via: 'postern' }
          : {
              method: req.method,
              path: req.url,
              bodyBytes: bytes,
              // Shows the credential arrived without printing it.
              credentialPresent: req.headers.authorization !== undefined || req.headers['private-token'] !== undefined,
            };
      const text = `${JSON.stringify(body)}\n`;
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return { url: `http://${host}:${(server.address() as AddressInfo).port}`, server };
}
