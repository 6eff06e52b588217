import { request as httpRequest, type IncomingMessage } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { Cleanup } from '../helpers/cleanup.js';
import { send, sendJson } from '../helpers/http-client.js';
import { patternSha256, patternStream, sha256 } from '../helpers/pattern-data.js';
import { startTunnel } from '../helpers/tunnel-fixture.js';
import type { EchoBody } from '../helpers/upstream.js';
import { deferred, within } from '../helpers/wait.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const MiB = 1024 * 1024;

describe('large bodies', () => {
  it('uploads 64 MiB through the tunnel with the same sha256 at the tool', async () => {
    const t = await startTunnel(cleanup);
    const size = 64 * MiB;
    const res = await sendJson<EchoBody>(t.url('/upload'), {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
      body: patternStream(size, 7),
      timeoutMs: 50_000,
    });
    expect(res.status).toBe(200);
    expect(res.json.bytes).toBe(size);
    expect(res.json.sha256).toBe(patternSha256(size, 7));
  });

  it('downloads 64 MiB through the tunnel with the same sha256 at the caller', async () => {
    const size = 64 * MiB;
    const t = await startTunnel(cleanup, {
      handler: async ({ res }) => {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(size) });
        await pipeline(patternStream(size, 11), res);
      },
    });
    const res = await send(t.url('/download'), { keepBody: false, timeoutMs: 50_000 });
    expect(res.status).toBe(200);
    expect(res.headers['content-length']).toBe(String(size));
    expect(res.complete).toBe(true);
    expect(res.bytes).toBe(size);
    expect(res.sha256).toBe(patternSha256(size, 11));
  });
});

describe('streaming, not buffering', () => {
  it('delivers the first response chunk to the caller before the tool writes the last one', async () => {
    const callerGotFirst = deferred();
    const t = await startTunnel(cleanup, {
      handler: async ({ res }) => {
        // Chunked (no content-length): the tool decides when the body ends.
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('first-chunk;');
        // A tunnel that buffered the body until its end would deadlock here.
        await within(callerGotFirst.promise, 5_000, 'caller to receive the first chunk');
        res.end('last-chunk');
      },
    });
    const received: string[] = [];
    const done = new Promise<string>((resolve, reject) => {
      const req = httpRequest(t.url('/stream'), { agent: false }, (res: IncomingMessage) => {
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          received.push(chunk);
          if (received.join('').includes('first-chunk;')) callerGotFirst.resolve();
        });
        res.on('end', () => resolve(received.join('')));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    expect(await within(done, 10_000, 'response to finish')).toBe('first-chunk;last-chunk');
    // The first chunk arrived on its own, before the tool had written the last one.
    expect(received[0]).toBe('first-chunk;');
  });

  it('delivers the first upload chunk to the tool before the caller sends the rest', async () => {
    const toolGotFirst = deferred();
    const t = await startTunnel(cleanup, {
      handler: async ({ body, res }) => {
        let text = '';
        body.setEncoding('utf8');
        for await (const chunk of body) {
          text += chunk as string;
          if (text.includes('first-part;')) toolGotFirst.resolve();
        }
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`tool read: ${text}`);
      },
    });
    const response = new Promise<string>((resolve, reject) => {
      const req = httpRequest(t.url('/upload'), { method: 'POST', agent: false }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve(text));
        res.on('error', reject);
      });
      req.on('error', reject);
      // Chunked upload: nothing tells the tunnel how long the body is.
      req.write('first-part;');
      // Only after the tool has seen the first part does the caller finish.
      within(toolGotFirst.promise, 5_000, 'tool to receive the first upload chunk').then(
        () => req.end('second-part'),
        (err: Error) => req.destroy(err),
      );
    });
    expect(await within(response, 10_000, 'upload response')).toBe('tool read: first-part;second-part');
  });
});

describe('upload edge cases', () => {
  it('handles Expect: 100-continue: the caller gets its 100, sends the body, the tool gets it', async () => {
    const t = await startTunnel(cleanup);
    const result = await new Promise<{ status: number; json: EchoBody }>((resolve, reject) => {
      const req = httpRequest(
        t.url('/expect'),
        { method: 'POST', agent: false, headers: { expect: '100-continue', 'content-length': '5' } },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as EchoBody }));
          res.on('error', reject);
        },
      );
      req.on('continue', () => req.end('hello'));
      req.on('error', reject);
    });
    expect(result.status).toBe(200);
    expect(result.json.bytes).toBe(5);
    expect(result.json.sha256).toBe(sha256('hello'));
  });

  it('delivers a tool response that comes before the tool read the upload (early 413)', async () => {
    const t = await startTunnel(cleanup, {
      handler: ({ res }) => {
        res.writeHead(413, { 'content-type': 'text/plain' });
        res.end('too big for the tool');
      },
    });
    const size = 32 * MiB;
    const res = await send(t.url('/upload'), {
      method: 'PUT',
      headers: { 'content-length': String(size) },
      body: patternStream(size, 4),
      timeoutMs: 20_000,
    });
    expect(res.status).toBe(413);
    expect(res.body.toString()).toBe('too big for the tool');
    expect(res.complete).toBe(true);
  });
});

describe('concurrency', () => {
  it('serves 32 concurrent mixed requests (GETs, POST bodies of different sizes) all correctly', async () => {
    const t = await startTunnel(cleanup);
    const sizes = [0, 1, 100, 4096, 65_535, 65_536, 65_537, 300_000, 1 * MiB, 3 * MiB];
    const jobs = Array.from({ length: 32 }, async (_, i) => {
      if (i % 3 === 0) {
        const path = `/get/${i}?q=${i}`;
        const res = await sendJson<EchoBody>(t.url(path));
        expect(res.status).toBe(200);
        expect(res.json.method).toBe('GET');
        expect(res.json.url).toBe(path);
        expect(res.json.bytes).toBe(0);
        return;
      }
      const size = sizes[i % sizes.length]!;
      const chunked = i % 2 === 0;
      const res = await sendJson<EchoBody>(t.url(`/post/${i}`), {
        method: 'POST',
        headers: chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': String(size) },
        body: patternStream(size, 100 + i, 16 * 1024 + 4 * i),
        timeoutMs: 30_000,
      });
      expect(res.status).toBe(200);
      expect(res.json.url).toBe(`/post/${i}`);
      expect(res.json.bytes).toBe(size);
      expect(res.json.sha256).toBe(size === 0 ? sha256('') : patternSha256(size, 100 + i));
    });
    await Promise.all(jobs);
    expect(t.upstream.requests).toHaveLength(32);
  });
});
