import { request as httpRequest } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { Cleanup } from '../helpers/cleanup.js';
import { send, sendJson } from '../helpers/http-client.js';
import { startAgent } from '../helpers/start-agent.js';
import { startServer, tempDataDir } from '../helpers/start-server.js';
import { startTunnel } from '../helpers/tunnel-fixture.js';
import { startUpstream, type EchoBody } from '../helpers/upstream.js';
import { deferred, waitUntil, within } from '../helpers/wait.js';
import type { ErrorBody } from '../../server/http-errors.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

describe('requests Postern cannot deliver', () => {
  it('answers 404 unknown_client as JSON with the request id for a client that does not exist', async () => {
    const server = await startServer();
    cleanup.add(() => server.close());
    const res = await sendJson<ErrorBody>(`${server.ingressUrl}/t/no-such-client/api/x`);
    expect(res.status).toBe(404);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.json.error).toBe('unknown_client');
    expect(typeof res.json.message).toBe('string');
    expect(res.json.requestId).toMatch(/\S/);
    expect(res.headers['x-postern-request-id']).toBe(res.json.requestId);
  });

  it('waits POSTERN_AGENT_WAIT_MS for an agent, then answers 503 agent_offline', async () => {
    const server = await startServer({ env: { POSTERN_AGENT_WAIT_MS: '300' } });
    cleanup.add(() => server.close());
    const { clientId } = server.server.store.create('never-connects');
    const started = performance.now();
    const res = await sendJson<ErrorBody>(`${server.ingressUrl}/t/${clientId}/api/x`);
    const elapsed = performance.now() - started;
    expect(res.status).toBe(503);
    expect(res.json.error).toBe('agent_offline');
    expect(res.json.requestId).toMatch(/\S/);
    expect(res.headers['x-postern-request-id']).toBe(res.json.requestId);
    expect(res.headers['retry-after']).toBeDefined();
    // Timers may fire a hair early relative to performance.now(); allow 5 ms.
    expect(elapsed).toBeGreaterThanOrEqual(295);
    expect(elapsed).toBeLessThan(5_000);
  });

  it('puts x-postern-request-id on every ingress answer: tool responses and Postern errors alike', async () => {
    const t = await startTunnel(cleanup, { server: { env: { POSTERN_AGENT_WAIT_MS: '100' } } });
    const ok = await send(t.url('/fine'));
    const unknown = await send(`${t.server.ingressUrl}/t/nobody/x`);
    const traversal = await send(t.url('/%2e%2e/etc/passwd'));
    const other = t.server.server.store.create('offline');
    const offline = await send(`${t.server.ingressUrl}/t/${other.clientId}/x`);
    const ids = [ok, unknown, traversal, offline].map((r) => r.headers['x-postern-request-id']);
    expect([ok.status, unknown.status, traversal.status, offline.status]).toEqual([200, 404, 403, 503]);
    for (const id of ids) expect(id).toMatch(/^\S{8,}$/);
    expect(new Set(ids).size).toBe(4);
  });

  it("routes each client's requests only to that client's agent", async () => {
    const a = await startTunnel(cleanup);
    const toolB = await startUpstream();
    cleanup.add(() => toolB.close());
    const b = a.server.server.store.create('b');
    const agentB = await startAgent({ clientId: b.clientId, clientToken: b.clientToken, proxyUrl: a.server.publicUrl, toolUrl: toolB.url });
    cleanup.add(() => agentB.stop());
    const jobs = Array.from({ length: 10 }, (_, i) =>
      i % 2 === 0 ? send(a.url(`/for-a/${i}`)) : send(`${a.server.ingressUrl}/t/${b.clientId}/for-b/${i}`),
    );
    for (const r of await Promise.all(jobs)) expect(r.status).toBe(200);
    expect(a.upstream.requests.map((r) => r.url).sort()).toEqual(['/for-a/0', '/for-a/2', '/for-a/4', '/for-a/6', '/for-a/8']);
    expect(toolB.requests.map((r) => r.url).sort()).toEqual(['/for-b/1', '/for-b/3', '/for-b/5', '/for-b/7', '/for-b/9']);
  });

  it('leaves nothing behind when the caller gives up while waiting for an agent', async () => {
    const t = await startTunnel(cleanup, { server: { env: { POSTERN_AGENT_WAIT_MS: '5000' } } });
    await t.agent.stop();
    await waitUntil(() => t.server.server.registry.connections(t.clientId).length === 0, 'the server to drop the tunnel');
    const req = httpRequest(t.url('/abandoned'), { agent: false });
    req.on('error', () => {});
    req.end();
    await waitUntil(() => t.server.server.stats.for(t.clientId).inFlight === 1, 'the request to wait at the server');
    req.destroy();
    await waitUntil(() => t.server.server.stats.for(t.clientId).inFlight === 0, 'the abandoned request to be dropped');
    // An agent that shows up later is not sent the abandoned request.
    await t.startAgent();
    expect((await send(t.url('/next'))).status).toBe(200);
    expect(t.upstream.requests.map((r) => r.url)).toEqual(['/next']);
  });
});

describe('agent reconnects', () => {
  it('holds a request that arrives while the agent is reconnecting and serves it once the agent is back', async () => {
    const t = await startTunnel(cleanup, { server: { env: { POSTERN_AGENT_WAIT_MS: '5000' } } });
    await t.agent.stop();
    await waitUntil(() => t.server.server.registry.connections(t.clientId).length === 0, 'the server to drop the tunnel');

    const started = performance.now();
    const pending = sendJson<EchoBody>(t.url('/while-reconnecting?x=1'));
    // The request is waiting at the server; no agent anywhere for 300 ms.
    await new Promise((r) => setTimeout(r, 300));
    expect(t.upstream.requests).toHaveLength(0);
    await t.startAgent();
    const res = await pending;
    expect(res.status).toBe(200);
    expect(res.json.url).toBe('/while-reconnecting?x=1');
    expect(performance.now() - started).toBeGreaterThanOrEqual(300);
    expect(t.upstream.requests).toHaveLength(1);
  });

  it('comes back after a server restart on the same port and data dir, and then serves requests', async () => {
    const upstream = await startUpstream();
    cleanup.add(() => upstream.close());
    const data = await tempDataDir();
    cleanup.add(() => data.remove());
    const first = await startServer({ dataDir: data.dir });
    cleanup.add(() => first.close());
    const { clientId, clientToken } = first.server.store.create('survives-restart');
    const agent = await startAgent({ clientId, clientToken, proxyUrl: first.publicUrl, toolUrl: upstream.url });
    cleanup.add(() => agent.stop());
    const before = await send(`${first.ingressUrl}/t/${clientId}/before`);
    expect(before.status).toBe(200);

    await first.close(100);
    await waitUntil(() => !agent.agent.ready, 'the agent to notice the server is gone');

    const second = await startServer({ dataDir: data.dir, port: first.port, ingressPort: first.ingressPort });
    cleanup.add(() => second.close());
    // The client and its token came back from the store in the data dir.
    expect(second.server.store.get(clientId)?.name).toBe('survives-restart');
    await agent.agent.waitUntilReady(10_000);
    await waitUntil(() => second.server.registry.connections(clientId).length > 0, 'the new server to register the agent');

    const after = await sendJson<EchoBody>(`${second.ingressUrl}/t/${clientId}/after?restart=1`);
    expect(after.status).toBe(200);
    expect(after.json.url).toBe('/after?restart=1');
    expect(agent.agent.connectors[0]!.reconnects).toBeGreaterThanOrEqual(1);
  });
});

describe('agent lost mid-response', () => {
  it('cuts a content-length response short when the agent dies mid-body, never completing it', async () => {
    const total = 1024 * 1024;
    const wrote = deferred();
    const t = await startTunnel(cleanup, {
      handler: async ({ res }) => {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total) });
        res.write(Buffer.alloc(100 * 1024, 1));
        wrote.resolve();
        // The rest never comes: the agent is stopped while the tool is mid-body.
        await new Promise((r) => res.on('close', r));
      },
    });
    const callerGotBytes = deferred();
    const pending = send(t.url('/big'), { keepBody: false, onData: () => callerGotBytes.resolve() });
    await within(wrote.promise, 5_000, 'tool to write the first part');
    // The response has started at the caller before the agent goes.
    await within(callerGotBytes.promise, 5_000, 'first body bytes at the caller');
    await t.agent.stop();
    const res = await within(pending, 10_000, 'caller to see the end of the response');
    expect(res.status).toBe(200);
    expect(res.headers['content-length']).toBe(String(total));
    expect(res.complete).toBe(false);
    expect(res.bytes).toBeLessThan(total);
    expect(res.error).toBeDefined();
  });

  it('ends a chunked response with an error, not a clean end, when the agent dies mid-body', async () => {
    const wrote = deferred();
    const t = await startTunnel(cleanup, {
      handler: async ({ res }) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('partial body, more to come…');
        wrote.resolve();
        await new Promise((r) => res.on('close', r));
      },
    });
    const callerGotBytes = deferred();
    const pending = send(t.url('/chunked'), { onData: () => callerGotBytes.resolve() });
    await within(wrote.promise, 5_000, 'tool to write the first part');
    await within(callerGotBytes.promise, 5_000, 'first body bytes at the caller');
    await t.agent.stop();
    const res = await within(pending, 10_000, 'caller to see the end of the response');
    expect(res.status).toBe(200);
    expect(res.headers['transfer-encoding']).toBe('chunked');
    // Without the terminating zero-length chunk the caller must see an error.
    expect(res.complete).toBe(false);
    expect(res.error).toBeDefined();
  });

  it('answers 502 tunnel_lost when the agent dies before any response byte of a non-idempotent request', async () => {
    const arrived = deferred();
    const t = await startTunnel(cleanup, {
      handler: async ({ res }) => {
        arrived.resolve();
        await new Promise((r) => res.on('close', r));
      },
    });
    const pending = sendJson<ErrorBody>(t.url('/slow'), { method: 'POST', body: 'payload' });
    await within(arrived.promise, 5_000, 'request to reach the tool');
    await t.agent.stop();
    const res = await within(pending, 10_000, 'caller to get an answer');
    expect(res.status).toBe(502);
    expect(res.json.error).toBe('tunnel_lost');
    expect(res.headers['x-postern-request-id']).toBe(res.json.requestId);
    // Not replayed: a POST that reached the tool once is never sent again.
    expect(t.upstream.requests).toHaveLength(1);
  });
});
