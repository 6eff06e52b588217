import { createHash } from 'node:crypto';
import { request as httpRequest, type Agent, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';

export interface SendOptions {
  method?: string;
  /** An object, or a flat [name, value, …] list to send repeats in order. */
  headers?: OutgoingHttpHeaders | string[];
  body?: Buffer | string | Readable;
  /** Keep the body in `body` (default) or only count and hash it. */
  keepBody?: boolean;
  /** Called after each body chunk with the bytes received so far. */
  onData?: (bytesSoFar: number) => void;
  /** Fails the call when no response head came by then. Default 15000 ms. */
  timeoutMs?: number;
  /** A keep-alive agent, for tests about connection reuse. Default: a fresh connection. */
  agent?: Agent;
}

/** A response as the caller saw it, including how it ended. */
export interface SendResult {
  status: number;
  headers: IncomingHttpHeaders;
  /** Names and values as they came on the wire, repeats kept. */
  rawHeaders: string[];
  /** The body (empty when keepBody is false). */
  body: Buffer;
  bytes: number;
  sha256: string;
  /**
   * True only when the body ended cleanly: every content-length byte, or the
   * terminating chunk. False for a response cut off mid-body.
   */
  complete: boolean;
  /** The error the response stream ended with, if it was cut off. */
  error: Error | undefined;
  /** ms from sending to the response head. */
  headMs: number;
}

/**
 * One HTTP/1.1 exchange over a fresh connection (no keep-alive agent, so no
 * socket outlives the call). The raw path is sent exactly as given. Resolves
 * once the response ended, cleanly or not; rejects only when no response
 * head arrived.
 */
export function send(url: string, opts: SendOptions = {}): Promise<SendResult> {
  const u = new URL(url);
  // URL would normalise the path (dot segments, case of %xx); send the raw one.
  const rawPath = url.slice(url.indexOf('/', u.protocol.length + 2));
  const keepBody = opts.keepBody ?? true;
  const started = performance.now();
  return new Promise((resolve, reject) => {
    let headers = opts.headers;
    // With a raw list Node adds no default headers; HTTP/1.1 needs Host.
    if (Array.isArray(headers) && !headers.some((h, i) => i % 2 === 0 && h.toLowerCase() === 'host')) {
      headers = ['Host', u.host, ...headers];
    }
    const req = httpRequest({
      host: u.hostname,
      port: u.port,
      method: opts.method ?? 'GET',
      path: rawPath,
      headers,
      agent: opts.agent ?? false,
    });
    const timer = setTimeout(() => {
      req.destroy(new Error(`no response head within ${opts.timeoutMs ?? 15_000} ms`));
    }, opts.timeoutMs ?? 15_000);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.on('response', (res: IncomingMessage) => {
      clearTimeout(timer);
      const headMs = performance.now() - started;
      const hash = createHash('sha256');
      const chunks: Buffer[] = [];
      let bytes = 0;
      let error: Error | undefined;
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        hash.update(c);
        if (keepBody) chunks.push(c);
        opts.onData?.(bytes);
      });
      res.on('error', (err) => (error = err));
      res.on('close', () => {
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          rawHeaders: res.rawHeaders,
          body: Buffer.concat(chunks),
          bytes,
          sha256: hash.digest('hex'),
          complete: res.complete && error === undefined,
          error,
          headMs,
        });
      });
    });
    const body = opts.body;
    if (body === undefined || typeof body === 'string' || Buffer.isBuffer(body)) {
      req.end(body);
    } else {
      body.on('error', (err) => req.destroy(err));
      body.pipe(req);
    }
  });
}

/** `send` and parse the body as JSON. */
export async function sendJson<T = Record<string, unknown>>(
  url: string,
  opts: SendOptions & { json?: unknown; token?: string } = {},
): Promise<SendResult & { json: T }> {
  // Extra headers go after the caller's, whether those are an object or a raw list.
  const extra: [string, string][] = [];
  if (opts.token !== undefined) extra.push(['authorization', `Bearer ${opts.token}`]);
  let body = opts.body;
  if (opts.json !== undefined) {
    extra.push(['content-type', 'application/json']);
    body = JSON.stringify(opts.json);
  }
  const headers: OutgoingHttpHeaders | string[] = Array.isArray(opts.headers)
    ? [...opts.headers, ...extra.flat()]
    : { ...opts.headers, ...Object.fromEntries(extra) };
  const res = await send(url, { ...opts, headers, body });
  let json: T;
  try {
    json = JSON.parse(res.body.toString('utf8')) as T;
  } catch {
    throw new Error(`expected JSON from ${opts.method ?? 'GET'} ${url}, got ${res.status}: ${res.body.toString('utf8').slice(0, 200)}`);
  }
  return { ...res, json };
}

/** All values of a header in a raw header list (case-insensitive), in order. */
export function rawHeaderValues(rawHeaders: readonly string[], name: string): string[] {
  const lower = name.toLowerCase();
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === lower) out.push(rawHeaders[i + 1]!);
  return out;
}
