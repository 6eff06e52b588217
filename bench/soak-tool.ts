import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { xorshiftFill } from './pattern.js';

/**
 * The soak's stand-in tool, in its own process (127.0.0.1, port 0). Every
 * body is deterministic pattern bytes, so the soak can check each byte it
 * gets back:
 *   GET  /pattern?n=N&seed=S     N pattern bytes (content-length)
 *        &chunked=1              … without content-length (chunked encoding)
 *        &delay=MS               … response head only after MS ms
 *        &abortAt=K              … the tool resets its socket after K bytes
 *   POST /upload                 reads the body, answers {"bytes":N,"sha256":"…"}
 *   POST /echo                   reads the body, then sends it back (content-length)
 * Prints {"msg":"listening","port":N} on stdout once bound.
 *
 * Also exports the pattern generator, so the soak and the tool make the same bytes.
 */

const CHUNK = 64 * 1024;

/**
 * Deterministic pseudo-random bytes (xorshift32 from `seed`; the same
 * sequence as test/helpers/pattern-data.ts), read in pieces of any length.
 */
export class PatternCursor {
  private x: number;
  private buf: Buffer = Buffer.alloc(0);
  private at = 0;

  constructor(seed: number) {
    this.x = seed >>> 0 || 1;
  }

  /** The next `n` bytes of the pattern. */
  next(n: number): Buffer {
    if (this.buf.length - this.at >= n) {
      const out = this.buf.subarray(this.at, this.at + n);
      this.at += n;
      return out;
    }
    const parts: Buffer[] = [this.buf.subarray(this.at)];
    let have = parts[0]!.length;
    while (have < n) {
      this.buf = this.block();
      this.at = 0;
      const take = Math.min(n - have, this.buf.length);
      parts.push(this.buf.subarray(0, take));
      this.at = take;
      have += take;
    }
    return Buffer.concat(parts, n);
  }

  private block(): Buffer {
    const words = new Uint32Array(CHUNK / 4);
    this.x = xorshiftFill(words, this.x);
    return Buffer.from(words.buffer);
  }
}

function query(req: IncomingMessage): URLSearchParams {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
}

function num(q: URLSearchParams, name: string, def: number): number {
  const v = Number(q.get(name) ?? def);
  return Number.isSafeInteger(v) && v >= 0 ? v : Number.NaN;
}

function sendPattern(req: IncomingMessage, res: ServerResponse): void {
  const q = query(req);
  const n = num(q, 'n', 0);
  const seed = num(q, 'seed', 1);
  const delay = num(q, 'delay', 0);
  const abortAt = num(q, 'abortAt', Number.MAX_SAFE_INTEGER);
  if ([n, seed, delay, abortAt].some(Number.isNaN)) {
    res.writeHead(400, { 'content-length': 0 }).end();
    return;
  }
  const headers: Record<string, string | number> = { 'content-type': 'application/octet-stream' };
  if (q.get('chunked') !== '1') headers['content-length'] = n;
  let timer: NodeJS.Timeout | undefined;
  res.on('close', () => clearTimeout(timer));
  const start = (): void => {
    res.writeHead(200, headers);
    const cursor = new PatternCursor(seed);
    let sent = 0;
    const pump = (): void => {
      while (sent < n && !res.destroyed) {
        if (sent >= abortAt) {
          // A tool that dies half-way: the caller must see a cut-off body.
          res.socket?.resetAndDestroy();
          return;
        }
        const c = cursor.next(Math.min(CHUNK, n - sent, abortAt - sent));
        sent += c.length;
        if (!res.write(c)) {
          res.once('drain', pump);
          return;
        }
      }
      if (!res.destroyed) res.end();
    };
    pump();
  };
  if (delay > 0) timer = setTimeout(start, delay);
  else start();
}

function readBody(req: IncomingMessage, onEnd: (parts: Buffer[], bytes: number) => void): void {
  const parts: Buffer[] = [];
  let bytes = 0;
  req.on('data', (c: Buffer) => {
    parts.push(c);
    bytes += c.length;
  });
  req.on('end', () => onEnd(parts, bytes));
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  // Callers that go away mid-request are part of the soak, not a crash.
  req.on('error', () => {});
  res.on('error', () => {});
  const path = (req.url ?? '/').split('?', 1)[0];
  if (req.method === 'GET' && path === '/pattern') {
    sendPattern(req, res);
    return;
  }
  if (req.method === 'POST' && path === '/upload') {
    const hash = createHash('sha256');
    let bytes = 0;
    req.on('data', (c: Buffer) => {
      hash.update(c);
      bytes += c.length;
    });
    req.on('end', () => {
      const body = JSON.stringify({ bytes, sha256: hash.digest('hex') });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
    });
    return;
  }
  if (req.method === 'POST' && path === '/echo') {
    readBody(req, (parts, bytes) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes });
      for (const p of parts) res.write(p);
      res.end();
    });
    return;
  }
  res.writeHead(404, { 'content-length': 0 }).end();
}

function main(): void {
  const server = createServer(handle);
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(`${JSON.stringify({ msg: 'listening', port: (server.address() as AddressInfo).port })}\n`);
  });
  process.on('SIGTERM', () => process.exit(0));
  process.on('SIGINT', () => process.exit(0));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
