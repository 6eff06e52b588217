import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { request as httpRequest } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { Cleanup } from '../helpers/cleanup.js';
import { send, sendJson } from '../helpers/http-client.js';
import { startAgent } from '../helpers/start-agent.js';
import { startServer } from '../helpers/start-server.js';
import { startTunnel } from '../helpers/tunnel-fixture.js';
import { deferred, waitUntil, within } from '../helpers/wait.js';
import type { ErrorBody } from '../../server/http-errors.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  return port;
}

describe('tool failures as the caller sees them', () => {
  it('answers 502 upstream_unreachable when the agent cannot connect to the tool', async () => {
    const server = await startServer();
    cleanup.add(() => server.close());
    const { clientId, clientToken } = server.server.store.create('c');
    const agent = await startAgent({
      clientId,
      clientToken,
      proxyUrl: server.publicUrl,
      toolUrl: `http://127.0.0.1:${await closedPort()}`,
    });
    cleanup.add(() => agent.stop());
    const res = await sendJson<ErrorBody>(`${server.ingressUrl}/t/${clientId}/api`);
    expect(res.status).toBe(502);
    expect(res.json.error).toBe('upstream_unreachable');
    expect(res.json.message).toMatch(/ECONNREFUSED/);
    expect(res.headers['x-postern-request-id']).toBe(res.json.requestId);
    expect(agent.agent.status().upstreamErrors).toBe(1);
  });

  it('answers 504 upstream_timeout when the tool sends no head within POSTERN_UPSTREAM_TIMEOUT_MS', async () => {
    const t = await startTunnel(cleanup, {
      agentEnv: { POSTERN_UPSTREAM_TIMEOUT_MS: '300' },
      handler: async ({ res }) => {
        await new Promise((r) => res.on('close', r));
      },
    });
    const started = performance.now();
    const res = await sendJson<ErrorBody>(t.url('/hangs'));
    expect(res.status).toBe(504);
    expect(res.json.error).toBe('upstream_timeout');
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
  });

  it("answers 504 upstream_timeout when no response head arrives within the server's POSTERN_RESPONSE_TIMEOUT_MS", async () => {
    const toolSawClose = deferred();
    const t = await startTunnel(cleanup, {
      server: { env: { POSTERN_RESPONSE_TIMEOUT_MS: '300' } },
      handler: async ({ res }) => {
        await new Promise((r) => res.on('close', r));
        toolSawClose.resolve();
      },
    });
    const res = await sendJson<ErrorBody>(t.url('/hangs'));
    expect(res.status).toBe(504);
    expect(res.json.error).toBe('upstream_timeout');
    // The server's reset reaches the agent, which abandons the tool request.
    await within(toolSawClose.promise, 5_000, 'tool request to be cancelled');
  });

  it('cuts off a response whose body stalls for POSTERN_STREAM_IDLE_TIMEOUT_MS, and cancels the tool request', async () => {
    const toolSawClose = deferred();
    const t = await startTunnel(cleanup, {
      server: { env: { POSTERN_STREAM_IDLE_TIMEOUT_MS: '200' } },
      handler: async ({ res }) => {
        res.writeHead(200, { 'content-length': '1000' });
        res.write(Buffer.alloc(100, 1));
        // Then nothing, without closing: a stall, not a failure.
        await new Promise((r) => res.on('close', r));
        toolSawClose.resolve();
      },
    });
    const started = performance.now();
    const res = await send(t.url('/stalls'), { keepBody: false });
    expect(res.status).toBe(200);
    expect(res.complete).toBe(false);
    expect(res.bytes).toBe(100);
    // Found between one and two periods after the last byte.
    expect(performance.now() - started).toBeGreaterThanOrEqual(190);
    await within(toolSawClose.promise, 5_000, 'the tool request to be cancelled');
    await waitUntil(() => t.server.server.stats.for(t.clientId).inFlight === 0, 'the stream to be freed');
  });

  it('answers 504 upstream_timeout when an upload stalls for POSTERN_STREAM_IDLE_TIMEOUT_MS before any answer', async () => {
    const t = await startTunnel(cleanup, {
      server: { env: { POSTERN_STREAM_IDLE_TIMEOUT_MS: '200' } },
      handler: async ({ req, res }) => {
        req.resume();
        await new Promise((r) => req.on('end', r));
        res.end('never reached');
      },
    });
    const url = new URL(t.url('/upload'));
    const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(
        { host: url.hostname, port: url.port, path: url.pathname, method: 'PUT', headers: { 'content-length': '1000' }, agent: false },
        (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      cleanup.add(() => req.destroy());
      req.write(Buffer.alloc(100, 1)); // and never the other 900 bytes
    });
    const res = await within(answer, 5_000, 'the 504');
    expect(res.status).toBe(504);
    expect(JSON.parse(res.body)).toMatchObject({ error: 'upstream_timeout' });
    expect(JSON.parse(res.body).message).toMatch(/POSTERN_STREAM_IDLE_TIMEOUT_MS/);
  });

  it('does not count waiting for the response head as idleness (that is POSTERN_RESPONSE_TIMEOUT_MS)', async () => {
    const t = await startTunnel(cleanup, {
      server: { env: { POSTERN_STREAM_IDLE_TIMEOUT_MS: '100' } },
      handler: async ({ res }) => {
        await new Promise((r) => setTimeout(r, 500));
        res.end('slow but fine');
      },
    });
    const res = await send(t.url('/slow-head'));
    expect([res.status, res.body.toString()]).toEqual([200, 'slow but fine']);
  });

  it('cuts the response off at the caller when the tool breaks its body mid-way', async () => {
    const total = 1024 * 1024;
    const t = await startTunnel(cleanup, {
      handler: async ({ res }) => {
        res.writeHead(200, { 'content-length': String(total) });
        res.write(Buffer.alloc(64 * 1024, 2));
        await new Promise((r) => setTimeout(r, 50));
        res.socket?.destroy();
      },
    });
    const res = await send(t.url('/broken'), { keepBody: false });
    expect(res.status).toBe(200);
    expect(res.complete).toBe(false);
    expect(res.bytes).toBeLessThan(total);
    expect(res.error).toBeDefined();
  });

  it('cancels the tool request when the caller goes away mid-response, and frees the stream', async () => {
    const toolSawClose = deferred();
    const t = await startTunnel(cleanup, {
      handler: async ({ req, res }) => {
        if (req.url !== '/forever') {
          res.end('ok');
          return;
        }
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('first;');
        // Keeps the response open until someone gives up.
        res.on('close', () => toolSawClose.resolve());
      },
    });
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest(t.url('/forever'), { agent: false }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', (err) => {
        if (!req.destroyed) reject(err);
      });
      req.end();
    });
    await within(toolSawClose.promise, 5_000, 'the tool to see the request cancelled');
    const conn = t.server.server.registry.connections(t.clientId)[0]!;
    await waitUntil(() => conn.session.activeStreams === 0, 'the server stream to close');
    await waitUntil(() => t.agent.agent.status().inFlight === 0, 'the agent to finish the request');
    // The tunnel itself is unharmed.
    expect((await send(t.url('/after'))).body.toString()).toBe('ok');
  });

  it('cancels the tool request when the caller aborts its upload mid-body, and frees the stream', async () => {
    const toolGotBytes = deferred();
    const toolSawClose = deferred();
    const t = await startTunnel(cleanup, {
      handler: ({ body, res }) => {
        body.on('data', () => toolGotBytes.resolve());
        body.on('error', () => {});
        res.on('close', () => toolSawClose.resolve());
      },
    });
    const req = httpRequest(t.url('/upload'), { method: 'PUT', agent: false, headers: { 'content-length': '1000000' } });
    req.on('error', () => {});
    req.write(Buffer.alloc(1000, 7));
    await within(toolGotBytes.promise, 5_000, 'first upload bytes at the tool');
    req.destroy();
    await within(toolSawClose.promise, 5_000, 'the tool to see the request cancelled');
    const conn = t.server.server.registry.connections(t.clientId)[0]!;
    await waitUntil(() => conn.session.activeStreams === 0, 'the server stream to close');
    await waitUntil(() => t.agent.agent.status().inFlight === 0, 'the agent to finish the request');
    await waitUntil(() => t.server.server.stats.for(t.clientId).inFlight === 0, 'the ingress to count it finished');
  });
});
