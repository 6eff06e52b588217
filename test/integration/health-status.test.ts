import { afterEach, describe, expect, it } from 'vitest';
import { Cleanup } from '../helpers/cleanup.js';
import { send, sendJson } from '../helpers/http-client.js';
import { startAgent } from '../helpers/start-agent.js';
import { startServer } from '../helpers/start-server.js';
import { startTunnel } from '../helpers/tunnel-fixture.js';
import { startUpstream } from '../helpers/upstream.js';
import { waitUntil } from '../helpers/wait.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

describe('server health endpoints', () => {
  it('answers /healthz on both listeners and /readyz on the private one without a token', async () => {
    const server = await startServer();
    cleanup.add(() => server.close());
    expect((await sendJson(`${server.publicUrl}/healthz`)).json).toEqual({ ok: true });
    expect((await sendJson(`${server.ingressUrl}/healthz`)).json).toEqual({ ok: true });
    const ready = await sendJson(`${server.ingressUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(ready.json).toEqual({ ready: true });
    // The admin API and the tunnel endpoint are on different listeners.
    expect((await send(`${server.publicUrl}/v1/status`)).status).toBe(404);
    expect((await send(`${server.ingressUrl}/v1/tunnel`)).status).not.toBe(101);
  });
});

describe("agent's local status listener (POSTERN_STATUS_PORT)", () => {
  it('serves /healthz, /readyz and /status with connection state, counters and tool reachability', async () => {
    const t = await startTunnel(cleanup, { agentEnv: { POSTERN_STATUS_PORT: '0' } });
    const port = t.agent.agent.statusPort;
    expect(port).toBeGreaterThan(0);
    const base = `http://127.0.0.1:${port}`;
    expect((await send(t.url('/counted'))).status).toBe(200);

    expect((await sendJson(`${base}/healthz`)).json).toEqual({ ok: true });
    expect((await sendJson(`${base}/readyz`)).json).toEqual({ ready: true });
    const status = await sendJson<Record<string, unknown>>(`${base}/status`);
    expect(status.status).toBe(200);
    expect(status.json).toMatchObject({
      clientId: t.clientId,
      tool: `${t.upstream.url}/`,
      ready: true,
      inFlight: 0,
      requests: 1,
      policyDenials: 0,
      toolReachable: { reachable: true },
    });
    const conns = status.json.connections as Record<string, unknown>[];
    expect(conns).toHaveLength(1);
    expect(conns[0]).toMatchObject({ state: 'connected', connectionId: expect.any(String), reconnects: 0, lastError: null });
    // Never the token.
    expect(status.body.toString()).not.toContain(t.clientToken);
  });

  it('reports not ready on /readyz while the agent has no tunnel', async () => {
    const upstream = await startUpstream();
    cleanup.add(() => upstream.close());
    const server = await startServer();
    cleanup.add(() => server.close());
    const { clientId } = server.server.store.create('c');
    const agent = await startAgent({
      clientId,
      clientToken: 'wrong-token',
      proxyUrl: server.publicUrl,
      toolUrl: upstream.url,
      env: { POSTERN_STATUS_PORT: '0' },
      waitReady: false,
    });
    cleanup.add(() => agent.stop());
    await waitUntil(() => agent.agent.connectors[0]!.lastError !== null, 'a refused attempt');
    const ready = await sendJson(`http://127.0.0.1:${agent.agent.statusPort}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.json).toEqual({ ready: false });
  });
});
