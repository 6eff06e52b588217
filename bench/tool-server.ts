import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * The bench's stand-in tool, in its own process (127.0.0.1, port 0):
 *   GET  /small      → 100-byte body
 *   GET  /bytes?n=N  → N bytes of a fixed buffer, streamed with backpressure
 *   POST /sink       → reads the body, answers the byte count
 * Prints {"msg":"listening","port":N} on stdout once bound.
 */
const SMALL = Buffer.alloc(100, 'x');
const CHUNK = Buffer.alloc(64 * 1024, 'y');

const server = createServer((req, res) => {
  const url = req.url ?? '/';
  if (req.method === 'GET' && url === '/small') {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': SMALL.length });
    res.end(SMALL);
    return;
  }
  if (req.method === 'GET' && url.startsWith('/bytes')) {
    const n = Number(new URLSearchParams(url.slice(url.indexOf('?') + 1)).get('n') ?? '0');
    if (!Number.isSafeInteger(n) || n < 0) {
      res.writeHead(400).end('bad n');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n });
    let left = n;
    const pump = (): void => {
      while (left > 0) {
        const c = left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left);
        left -= c.length;
        if (!res.write(c)) {
          res.once('drain', pump);
          return;
        }
      }
      res.end();
    };
    res.on('close', () => {
      left = 0;
    });
    pump();
    return;
  }
  if (req.method === 'POST' && url === '/sink') {
    let bytes = 0;
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => {
      const body = String(bytes);
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
    return;
  }
  res.writeHead(404, { 'content-length': 0 }).end();
});

server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ msg: 'listening', port: (server.address() as AddressInfo).port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
