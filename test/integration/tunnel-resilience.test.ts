import { Agent } from 'node:http';
import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeFrame, decodeFrame } from '../../protocol/codec.js';
import { CloseCodes } from '../../protocol/error-codes.js';
import { FrameType } from '../../protocol/frame-types.js';
import { Defaults, PROTOCOL_VERSION } from '../../protocol/handshake.js';
import { Cleanup } from '../helpers/cleanup.js';
import { send, sendJson } from '../helpers/http-client.js';
import { startTunnel } from '../helpers/tunnel-fixture.js';
import type { EchoBody } from '../helpers/upstream.js';
import { deferred, waitUntil, within } from '../helpers/wait.js';
import type { ErrorBody } from '../../server/http-errors.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

/** Connects to /v1/tunnel as a hand-made agent and completes the handshake. */
async function rawAgent(publicUrl: string, clientId: string, clientToken: string, heartbeatMs: number = Defaults.heartbeatMs): Promise<WebSocket> {
  const ws = new WebSocket(`${publicUrl.replace(/^http/, 'ws')}/v1/tunnel`, {
    headers: { authorization: `Bearer ${clientToken}`, 'x-postern-client-id': clientId },
  });
  await new Promise<void>((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const welcome = new Promise<Buffer>((resolve) => ws.once('message', (data: Buffer) => resolve(data)));
  ws.send(
    encodeFrame({
      type: FrameType.HELLO,
      v: PROTOCOL_VERSION,
      software: 'raw-test-agent',
      maxStreams: 16,
      initialWindow: Defaults.initialWindow,
      maxFrameSize: Defaults.maxFrameSize,
      heartbeatMs,
    }),
  );
  const frame = decodeFrame(await within(welcome, 5_000, 'WELCOME'), Defaults.maxFrameSize);
  expect(frame.type).toBe(FrameType.WELCOME);
  return ws;
}

describe('replay and draining', () => {
  it('replays an idempotent GET that no response byte came back for on the next agent', async () => {
    const firstArrived = deferred();
    const t = await startTunnel(cleanup, {
      server: { env: { POSTERN_AGENT_WAIT_MS: '5000' } },
      handler: async (x) => {
        if (x.req.url === '/slow' && x.record === t.upstream.requests[0]) {
          // First delivery: never answered (its agent dies).
          firstArrived.resolve();
          await new Promise((r) => x.res.on('close', r));
          return;
        }
        x.res.end(`served ${x.req.url}`);
      },
    });
    const pending = send(t.url('/slow'));
    await within(firstArrived.promise, 5_000, 'first delivery at the tool');
    await t.agent.stop();
    await t.startAgent();
    const res = await within(pending, 10_000, 'replayed response');
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('served /slow');
    expect(t.upstream.requests.map((r) => r.url)).toEqual(['/slow', '/slow']);
  });

  it('lets in-flight requests finish when the server drains on close', async () => {
    const arrived = deferred();
    const t = await startTunnel(cleanup, {
      handler: async ({ res }) => {
        arrived.resolve();
        await new Promise((r) => setTimeout(r, 300));
        res.end('finished during drain');
      },
    });
    const pending = send(t.url('/in-flight'), { method: 'POST', body: 'not idempotent' });
    await within(arrived.promise, 5_000, 'request at the tool');
    const closing = t.server.close(5_000);
    const res = await within(pending, 10_000, 'in-flight response');
    await closing;
    expect(res.status).toBe(200);
    expect(res.complete).toBe(true);
    expect(res.body.toString()).toBe('finished during drain');
  });

  it('drains a server: in-flight requests finish (their responses close the connection), new connections and tunnels are refused', async () => {
    const arrived = deferred();
    const t = await startTunnel(cleanup, {
      handler: async ({ req, res }) => {
        if (req.url === '/warm') return void res.end('warm');
        arrived.resolve();
        await new Promise((r) => setTimeout(r, 400));
        res.end('finished during drain');
      },
    });
    const keepAlive = new Agent({ keepAlive: true, maxSockets: 2 });
    cleanup.add(() => keepAlive.destroy());
    expect((await send(t.url('/warm'), { agent: keepAlive })).headers.connection).toBe('keep-alive');
    const pending = send(t.url('/in-flight'), { method: 'POST', body: 'not idempotent', agent: keepAlive });
    await within(arrived.promise, 5_000, 'request at the tool');
    const closing = t.server.close(5_000);
    await new Promise((r) => setTimeout(r, 50));

    // No new caller connections: the load balancer sends them to a live replica.
    await expect(send(t.url('/new'))).rejects.toThrow(/ECONNREFUSED/);
    // No new tunnels either: the agent's replacement must go elsewhere.
    const upgrade = new WebSocket(`${t.server.publicUrl.replace('http', 'ws')}/v1/tunnel`, {
      headers: { authorization: `Bearer ${t.clientToken}`, 'x-postern-client-id': t.clientId },
    });
    upgrade.on('error', () => {}); // terminated before it opened: expected
    cleanup.add(() => upgrade.terminate());
    const refused = await within(
      new Promise<number>((resolve) => upgrade.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))),
      5_000,
      'the upgrade answer',
    );
    expect(refused).toBe(503);

    const res = await within(pending, 10_000, 'in-flight response');
    expect([res.status, res.body.toString(), res.complete]).toEqual([200, 'finished during drain', true]);
    // The caller's next request opens a new connection (to another replica).
    expect(res.headers.connection).toBe('close');
    await within(closing, 10_000, 'the drain to end');
  });

  it('answers a request that reaches a draining ingress with 503 server_draining and closes the connection', async () => {
    const t = await startTunnel(cleanup);
    t.server.server.ingress.draining = true;
    const res = await sendJson(t.url('/late'));
    expect(res.status).toBe(503);
    expect(res.json.error).toBe('server_draining');
    expect(res.headers['retry-after']).toBe('1');
    expect(res.headers.connection).toBe('close');
    // Nothing went to the tool: any method is safe to send again.
    expect(t.upstream.requests).toHaveLength(0);
  });

  it('an agent drain (SIGTERM) finishes the requests in flight, then the server routes new ones to the other agent', async () => {
    const arrived = deferred();
    const t = await startTunnel(cleanup, {
      handler: async ({ req, res }) => {
        if (req.url === '/slow') {
          arrived.resolve();
          await new Promise((r) => setTimeout(r, 400));
        }
        res.end(`done ${req.url}`);
      },
    });
    // /slow goes to the first agent (the only one yet), then a second one joins.
    const slow = send(t.url('/slow'), { method: 'POST', body: 'x' });
    await within(arrived.promise, 5_000, 'the slow request at the tool');
    const first = t.server.server.registry.connections(t.clientId)[0]!;
    const other = await t.startAgent();
    await waitUntil(() => t.server.server.registry.connections(t.clientId).length === 2, 'two agents');

    const drained = t.agent.agent.drain(5_000);
    await waitUntil(() => first.session.goingAway, 'the server to see the GOAWAY');
    const during = await Promise.all(Array.from({ length: 5 }, (_, i) => send(t.url(`/during${i}`), { method: 'POST', body: 'y' })));
    expect(during.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    const res = await within(slow, 5_000, 'the slow response');
    expect([res.status, res.body.toString(), res.complete]).toEqual([200, 'done /slow', true]);
    await within(drained, 5_000, 'the agent drain');
    expect(t.agent.agent.connectors[0]!.state).toBe('stopped');
    expect(other.agent.ready).toBe(true);
  });
});

describe('several connections of one client', () => {
  it('spreads concurrent requests over the connections, and losing one fails only the streams on it', async () => {
    const release = deferred();
    const t = await startTunnel(cleanup, {
      agentEnv: { POSTERN_CONNECTIONS: '2' },
      handler: async ({ body, res }) => {
        body.resume();
        await release.promise;
        res.end('ok');
      },
    });
    await waitUntil(() => t.server.server.registry.connections(t.clientId).length === 2, 'two tunnels');
    const conns = t.server.server.registry.connections(t.clientId);
    // POSTs: never replayed, so the ones on the lost tunnel must fail.
    const pending = Array.from({ length: 8 }, (_, i) => send(t.url(`/p${i}`), { method: 'POST', body: `${i}` }));
    await waitUntil(() => t.upstream.requests.length === 8, 'all requests at the tool');
    expect(conns.map((c) => c.session.activeStreams)).toEqual([4, 4]);

    conns[0]!.session.close(undefined, CloseCodes.NORMAL);
    await new Promise((r) => setTimeout(r, 100));
    release.resolve();
    const results = await Promise.all(pending);
    const ok = results.filter((r) => r.status === 200);
    const lost = results.filter((r) => r.status === 502);
    expect(ok).toHaveLength(4);
    for (const r of ok) expect(r.body.toString()).toBe('ok');
    expect(lost).toHaveLength(4);
    for (const r of lost) expect((JSON.parse(r.body.toString()) as ErrorBody).error).toBe('tunnel_lost');
  });

  it('takes turns between idle connections, so requests sent one at a time use every tunnel', async () => {
    const t = await startTunnel(cleanup, { agentEnv: { POSTERN_CONNECTIONS: '3' } });
    await waitUntil(() => t.server.server.registry.connections(t.clientId).length === 3, 'three tunnels');
    for (let i = 0; i < 9; i++) expect((await send(t.url(`/seq/${i}`))).status).toBe(200);
    // Each tunnel carried three responses: strict turns when all are idle.
    const bytes = t.server.server.registry.connections(t.clientId).map((c) => c.session.bytesIn);
    expect(bytes.every((b) => b > 0)).toBe(true);
    expect(Math.max(...bytes) - Math.min(...bytes)).toBeLessThan(Math.max(...bytes) / 3);
  });
});

describe('isolation between tunnels', () => {
  it('closes a tunnel that sends a malformed frame with a protocol error and keeps serving the others', async () => {
    const t = await startTunnel(cleanup);
    const raw = await rawAgent(t.server.publicUrl, t.clientId, t.clientToken);
    cleanup.add(() => raw.terminate());
    await waitUntil(() => t.server.server.registry.connections(t.clientId).length === 2, 'the raw agent to register');
    const closed = new Promise<number>((resolve) => raw.once('close', (code: number) => resolve(code)));
    // 0xc1 is never valid msgpack.
    raw.send(Buffer.from([0xc1, 0x00, 0xff]));
    expect(await within(closed, 5_000, 'the server to close the bad tunnel')).toBe(CloseCodes.TUNNEL_PROTOCOL_ERROR);
    await waitUntil(() => t.server.server.registry.connections(t.clientId).length === 1, 'the bad tunnel to leave the registry');
    // The well-behaved agent was not touched.
    expect(t.agent.agent.connectors[0]!.state).toBe('connected');
    const res = await sendJson<EchoBody>(t.url('/still-fine'));
    expect(res.status).toBe(200);
    expect(res.json.url).toBe('/still-fine');
  });

  it('closes an upgraded tunnel that sends no HELLO within POSTERN_HANDSHAKE_TIMEOUT_MS, and only that one', async () => {
    const t = await startTunnel(cleanup, { server: { env: { POSTERN_HANDSHAKE_TIMEOUT_MS: '300' } } });
    const ws = new WebSocket(`${t.server.publicUrl.replace(/^http/, 'ws')}/v1/tunnel`, {
      headers: { authorization: `Bearer ${t.clientToken}`, 'x-postern-client-id': t.clientId },
    });
    cleanup.add(() => ws.terminate());
    await new Promise<void>((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const openedAt = performance.now();
    const closed = new Promise<{ code: number; reason: string }>((resolve) =>
      ws.once('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() })),
    );
    // Says nothing: a half-sent handshake, or a slowloris on the tunnel endpoint.
    const { code, reason } = await within(closed, 5_000, 'the handshake timeout');
    expect(code).toBe(CloseCodes.HANDSHAKE_FAILED);
    expect(reason).toBe('handshake timeout');
    expect(performance.now() - openedAt).toBeGreaterThanOrEqual(250);
    expect(t.server.server.registry.connections(t.clientId)).toHaveLength(1);
    expect((await send(t.url('/ok'))).status).toBe(200);
  });

  it('closes a tunnel that sends a message over POSTERN_MAX_FRAME_SIZE (1009), and only that one', async () => {
    const t = await startTunnel(cleanup, { server: { env: { POSTERN_MAX_FRAME_SIZE: String(64 * 1024) } } });
    const raw = await rawAgent(t.server.publicUrl, t.clientId, t.clientToken);
    raw.on('error', () => {}); // the server's close may race our own write
    cleanup.add(() => raw.terminate());
    await waitUntil(() => t.server.server.registry.connections(t.clientId).length === 2, 'the raw agent to register');
    const closed = new Promise<number>((resolve) => raw.once('close', (code: number) => resolve(code)));
    raw.send(Buffer.alloc(64 * 1024 + 1));
    expect(await within(closed, 5_000, 'the server to refuse the oversized message')).toBe(1009);
    await waitUntil(() => t.server.server.registry.connections(t.clientId).length === 1, 'the tunnel to leave the registry');
    expect((await send(t.url('/ok'))).status).toBe(200);
  });

  it('closes a tunnel whose first frame is not a valid HELLO with the handshake close code', async () => {
    const t = await startTunnel(cleanup);
    const ws = new WebSocket(`${t.server.publicUrl.replace(/^http/, 'ws')}/v1/tunnel`, {
      headers: { authorization: `Bearer ${t.clientToken}`, 'x-postern-client-id': t.clientId },
    });
    cleanup.add(() => ws.terminate());
    await new Promise<void>((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const closed = new Promise<number>((resolve) => ws.once('close', (code: number) => resolve(code)));
    ws.send(encodeFrame({ type: FrameType.PING, id: 1 }));
    expect(await within(closed, 5_000, 'handshake refusal')).toBe(CloseCodes.HANDSHAKE_FAILED);
    expect(t.server.server.registry.connections(t.clientId)).toHaveLength(1);
    expect((await send(t.url('/ok'))).status).toBe(200);
  });
});

describe('heartbeats', () => {
  it('closes a tunnel whose agent goes silent within two heartbeat intervals', async () => {
    const t = await startTunnel(cleanup, { server: { env: { POSTERN_HEARTBEAT_MS: '200' } } });
    // A hand-made agent that completes the handshake and then never answers a PING.
    const raw = await rawAgent(t.server.publicUrl, t.clientId, t.clientToken, 200);
    cleanup.add(() => raw.terminate());
    const started = performance.now();
    const closed = new Promise<number>((resolve) => raw.once('close', (code: number) => resolve(code)));
    // Dropped without a close handshake (1006 on this side): a peer that
    // stopped answering pings would not answer that either.
    expect(await within(closed, 5_000, 'the server to give up on the silent agent')).toBe(1006);
    // Two intervals, plus slack for timers on a loaded CI box.
    expect(performance.now() - started).toBeLessThan(2 * 200 + 400);
    await waitUntil(() => t.server.server.registry.connections(t.clientId).length === 1, 'the silent tunnel to leave the registry');
  });

  it('keeps an idle tunnel alive when both sides answer heartbeats', async () => {
    const t = await startTunnel(cleanup, { server: { env: { POSTERN_HEARTBEAT_MS: '100' } } });
    const connector = t.agent.agent.connectors[0]!;
    const connectionId = connector.connectionId;
    // Ten heartbeat intervals with no traffic.
    await new Promise((r) => setTimeout(r, 1_000));
    expect(connector.state).toBe('connected');
    expect(connector.connectionId).toBe(connectionId);
    expect(connector.reconnects).toBe(0);
    expect(connector.session!.rttMs()).toBeGreaterThan(0);
    expect((await send(t.url('/after-idle'))).status).toBe(200);
  });
});
