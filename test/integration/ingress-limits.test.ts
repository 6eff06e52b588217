import { afterEach, describe, expect, it } from 'vitest';
import { Cleanup } from '../helpers/cleanup.js';
import { send, sendJson } from '../helpers/http-client.js';
import { patternStream } from '../helpers/pattern-data.js';
import { startTunnel } from '../helpers/tunnel-fixture.js';
import { echoHandler } from '../helpers/upstream.js';
import { deferred, waitUntil } from '../helpers/wait.js';
import type { ErrorBody } from '../../server/http-errors.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

describe('ingress limits', () => {
  it('refuses a body declared over POSTERN_MAX_BODY_BYTES with 413 before it reaches the tool', async () => {
    const t = await startTunnel(cleanup, { server: { env: { POSTERN_MAX_BODY_BYTES: '1000' } } });
    const res = await sendJson<ErrorBody>(t.url('/upload'), {
      method: 'POST',
      headers: { 'content-length': '2000' },
      body: Buffer.alloc(2000),
    });
    expect(res.status).toBe(413);
    expect(res.json.error).toBe('body_too_large');
    expect(res.headers['x-postern-request-id']).toBe(res.json.requestId);
    expect(t.upstream.requests).toHaveLength(0);
    // At the limit is fine.
    expect((await send(t.url('/upload'), { method: 'POST', body: Buffer.alloc(1000) })).status).toBe(200);
  });

  it('refuses a chunked body that grows over POSTERN_MAX_BODY_BYTES with 413', async () => {
    const t = await startTunnel(cleanup, {
      server: { env: { POSTERN_MAX_BODY_BYTES: '100000' } },
      // The tool waits for the whole body, which never comes: the answer is Postern's.
      handler: async (x) => {
        await echoHandler(x);
      },
    });
    const res = await sendJson<ErrorBody>(t.url('/upload'), {
      method: 'POST',
      headers: { 'transfer-encoding': 'chunked' },
      body: patternStream(1024 * 1024, 3),
    });
    expect(res.status).toBe(413);
    expect(res.json.error).toBe('body_too_large');
  });

  it('answers 431 headers_too_large as JSON for a request head over POSTERN_MAX_HEADER_BYTES', async () => {
    const t = await startTunnel(cleanup, { server: { env: { POSTERN_MAX_HEADER_BYTES: '2048' } } });
    const res = await sendJson<ErrorBody>(t.url('/x'), { headers: { 'x-big': 'a'.repeat(4096) } });
    expect(res.status).toBe(431);
    expect(res.json.error).toBe('headers_too_large');
    // Refused before routing, yet it carries a request id like every ingress answer.
    expect(res.json.requestId).toMatch(/\S/);
    expect(res.headers['x-postern-request-id']).toBe(res.json.requestId);
    expect(t.upstream.requests).toHaveLength(0);
  });

  it("answers 429 too_many_streams when the client's concurrent-request limit is reached", async () => {
    const release = deferred();
    const t = await startTunnel(cleanup, {
      server: { env: { POSTERN_MAX_STREAMS_PER_CLIENT: '2' } },
      handler: async ({ res }) => {
        await release.promise;
        res.end('done');
      },
    });
    const held = [send(t.url('/a')), send(t.url('/b'))];
    await waitUntil(() => t.upstream.requests.length === 2, 'two requests at the tool');
    const third = await sendJson<ErrorBody>(t.url('/c'));
    expect(third.status).toBe(429);
    expect(third.json.error).toBe('too_many_streams');
    expect(third.headers['retry-after']).toBeDefined();
    release.resolve();
    for (const r of await Promise.all(held)) expect(r.body.toString()).toBe('done');
    // Capacity is back once they finished.
    expect((await send(t.url('/d'))).status).toBe(200);
  });
});
