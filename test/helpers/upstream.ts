import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Transform, type Readable } from 'node:stream';
import { waitUntil } from './wait.js';

/** What the tool saw of one request. */
export interface RecordedRequest {
  method: string;
  /** The request target exactly as it arrived (raw path and query). */
  url: string;
  /** Header names and values in arrival order, repeats kept. */
  rawHeaders: string[];
  /** Settles once the whole request body went through `ToolExchange.body`. */
  body: Promise<{ bytes: number; sha256: string }>;
}

/** One request as the handler gets it. */
export interface ToolExchange {
  req: IncomingMessage;
  res: ServerResponse;
  record: RecordedRequest;
  /**
   * The request body. Read from this rather than `req`: it is `req` through
   * a hashing pass-through (backpressure kept) that fills `record.body`.
   */
  body: Readable;
}

export type ToolHandler = (x: ToolExchange) => void | Promise<void>;

/**
 * A stand-in tool: a real node:http server on 127.0.0.1, port 0. Each test
 * sets `handler`; the default echoes what arrived as JSON (see echoHandler).
 * Every request is recorded in `requests`.
 */
export interface Upstream {
  /** `http://127.0.0.1:<port>` */
  url: string;
  port: number;
  server: Server;
  requests: RecordedRequest[];
  handler: ToolHandler;
  /** Resolves with the n-th request (1-based) once it arrives; rejects after timeoutMs. */
  waitForRequests(n: number, timeoutMs?: number): Promise<RecordedRequest>;
  close(): Promise<void>;
}

/** The JSON the default handler answers with. */
export interface EchoBody {
  method: string;
  url: string;
  rawHeaders: string[];
  bytes: number;
  sha256: string;
}

/** Reads the whole body, then answers 200 with EchoBody. */
export const echoHandler: ToolHandler = async ({ body, record, res }) => {
  body.resume();
  const { bytes, sha256 } = await record.body;
  const echo: EchoBody = { method: record.method, url: record.url, rawHeaders: record.rawHeaders, bytes, sha256 };
  const text = JSON.stringify(echo);
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
};

export async function startUpstream(handler: ToolHandler = echoHandler): Promise<Upstream> {
  const requests: RecordedRequest[] = [];
  const upstream: Upstream = {
    url: '',
    port: 0,
    server: undefined as unknown as Server,
    requests,
    handler,
    async waitForRequests(n, timeoutMs = 5_000) {
      await waitUntil(() => requests.length >= n, `the tool to see ${n} requests`, timeoutMs);
      return requests[n - 1]!;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };

  const server = createServer((req, res) => {
    const hash = createHash('sha256');
    let bytes = 0;
    let settle!: (v: { bytes: number; sha256: string }) => void;
    let fail!: (err: Error) => void;
    const bodyDone = new Promise<{ bytes: number; sha256: string }>((resolve, reject) => {
      settle = resolve;
      fail = reject;
    });
    // The promise is for tests that ask; an unread one must not be an unhandled rejection.
    bodyDone.catch(() => {});
    const body = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        bytes += chunk.length;
        hash.update(chunk);
        cb(null, chunk);
      },
      flush(cb) {
        settle({ bytes, sha256: hash.digest('hex') });
        cb();
      },
    });
    body.on('error', fail);
    req.on('error', (err) => body.destroy(err));
    req.on('close', () => {
      if (!req.complete) body.destroy(new Error('request body cut off'));
    });
    req.pipe(body);
    const record: RecordedRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      rawHeaders: [...req.rawHeaders],
      body: bodyDone,
    };
    requests.push(record);
    Promise.resolve()
      .then(() => upstream.handler({ req, res, record, body }))
      .catch((err: unknown) => {
        if (!res.headersSent) {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`tool handler failed: ${String(err)}`);
        } else {
          res.destroy();
        }
      });
  });
  // A client the test cuts off must not crash the process.
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  upstream.server = server;
  upstream.port = (server.address() as AddressInfo).port;
  upstream.url = `http://127.0.0.1:${upstream.port}`;
  return upstream;
}
