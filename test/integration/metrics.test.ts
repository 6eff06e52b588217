import { afterEach, describe, expect, it } from 'vitest';
import { Cleanup } from '../helpers/cleanup.js';
import { send, sendJson } from '../helpers/http-client.js';
import { parseExposition, valueOf, type Exposition } from '../helpers/prometheus-text.js';
import { CloseCodes } from '../../protocol/error-codes.js';
import { rawAgent } from '../helpers/raw-tunnel.js';
import { startAgent } from '../helpers/start-agent.js';
import { TEST_ADMIN_TOKEN } from '../helpers/start-server.js';
import { startTunnel } from '../helpers/tunnel-fixture.js';
import { waitUntil } from '../helpers/wait.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

async function scrape(url: string): Promise<Exposition> {
  const res = await send(url);
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
  return parseExposition(res.body.toString());
}

/** Every family is prefixed postern_, typed and documented. */
function expectWellFormed(exp: Exposition): void {
  for (const s of exp.samples) expect(s.name.startsWith('postern_'), s.name).toBe(true);
  for (const [family] of exp.types) expect(exp.help.get(family), `HELP of ${family}`).toBeTruthy();
}

describe('Prometheus metrics', () => {
  it('server and agent count requests by outcome, bytes, streams, denials, RTT and event-loop lag', async () => {
    const t = await startTunnel(cleanup, { agentEnv: { POSTERN_STATUS_PORT: '0', POSTERN_HEARTBEAT_MS: '200' } });
    const upload = Buffer.alloc(10_000, 7);
    for (let i = 0; i < 3; i++) expect((await send(t.url(`/ok/${i}`))).status).toBe(200);
    expect((await send(t.url('/upload'), { method: 'POST', body: upload })).status).toBe(200);
    // Confinement refuses it at the agent: 403 forbidden_by_agent.
    expect((await send(t.url('/a/%2e%2e/%2e%2e/etc'))).status).toBe(403);
    expect((await send(`${t.server.ingressUrl}/t/no-such-client/x`)).status).toBe(404);
    // A heartbeat round trip or two (200 ms interval).
    await waitUntil(() => t.server.server.metrics !== undefined && t.agent.agent.connectors[0]!.session!.rttMs() > 0, 'an RTT sample');
    await new Promise((r) => setTimeout(r, 300));

    const server = await scrape(`${t.server.ingressUrl}/metrics`);
    expectWellFormed(server);
    expect(valueOf(server, 'postern_info', { role: 'server' })).toBe(1);
    expect(valueOf(server, 'postern_agent_connections')).toBe(1);
    expect(valueOf(server, 'postern_client_agent_connections', { client_id: t.clientId })).toBe(1);
    expect(valueOf(server, 'postern_agent_connections_opened_total')).toBe(1);
    expect(valueOf(server, 'postern_request_duration_seconds_count', { outcome: 'ok' })).toBe(4);
    expect(valueOf(server, 'postern_request_duration_seconds_count', { outcome: 'forbidden_by_agent' })).toBe(1);
    expect(valueOf(server, 'postern_errors_total', { error: 'forbidden_by_agent' })).toBe(1);
    expect(valueOf(server, 'postern_errors_total', { error: 'unknown_client' })).toBe(1);
    expect(valueOf(server, 'postern_streams_opened_total')).toBe(5);
    expect(valueOf(server, 'postern_streams_active')).toBe(0);
    expect(valueOf(server, 'postern_requests_in_flight')).toBe(0);
    expect(valueOf(server, 'postern_request_bytes_total')).toBe(upload.length);
    // The echo tool answers each request with a JSON description of it.
    expect(valueOf(server, 'postern_response_bytes_total')).toBeGreaterThan(4 * 50);
    expect(valueOf(server, 'postern_heartbeat_rtt_seconds_count')).toBeGreaterThan(0);
    expect(valueOf(server, 'postern_nodejs_eventloop_lag_seconds')).toBeGreaterThanOrEqual(0);
    expect(server.types.get('postern_request_duration_seconds')).toBe('histogram');
    // Never a client's name or token in a label.
    const text = (await send(`${t.server.ingressUrl}/metrics`)).body.toString();
    expect(text).not.toContain(t.clientToken);
    expect(text).not.toContain('integration');

    const agent = await scrape(`http://127.0.0.1:${t.agent.agent.statusPort}/metrics`);
    expectWellFormed(agent);
    expect(valueOf(agent, 'postern_info', { role: 'agent' })).toBe(1);
    expect(valueOf(agent, 'postern_tunnels_connected')).toBe(1);
    expect(valueOf(agent, 'postern_tunnels_configured')).toBe(1);
    expect(valueOf(agent, 'postern_tunnel_reconnects_total')).toBe(0);
    expect(valueOf(agent, 'postern_streams_opened_total')).toBe(5);
    expect(valueOf(agent, 'postern_request_duration_seconds_count', { outcome: 'ok' })).toBe(4);
    expect(valueOf(agent, 'postern_policy_denials_total')).toBe(1);
    expect(valueOf(agent, 'postern_errors_total', { error: 'forbidden_by_agent' })).toBe(1);
    expect(valueOf(agent, 'postern_request_bytes_total')).toBe(upload.length);
    expect(valueOf(agent, 'postern_response_bytes_total')).toBe(valueOf(server, 'postern_response_bytes_total'));
    expect(valueOf(agent, 'postern_heartbeat_rtt_seconds_count')).toBeGreaterThan(0);
    expect(valueOf(agent, 'postern_nodejs_eventloop_lag_seconds')).toBeGreaterThanOrEqual(0);
  });

  it('counts lost tunnels, reconnects and failed authentications on both surfaces', async () => {
    const t = await startTunnel(cleanup, { agentEnv: { POSTERN_STATUS_PORT: '0' } });
    // A wrong agent token and a wrong admin token.
    const bad = await startAgent({ clientId: t.clientId, clientToken: 'wrong', proxyUrl: t.server.publicUrl, toolUrl: t.upstream.url, waitReady: false });
    cleanup.add(() => bad.stop());
    await waitUntil(() => bad.agent.connectors[0]!.lastError !== null, 'a refused dial');
    await bad.stop();
    expect((await send(`${t.server.ingressUrl}/v1/status`, { headers: { authorization: 'Bearer nope' } })).status).toBe(401);

    // The server closes the agent's tunnel: the agent reconnects.
    const [conn] = t.server.server.registry.connections(t.clientId);
    conn!.close(CloseCodes.SHUTDOWN, 'test: closed by the server');
    await waitUntil(() => t.agent.agent.connectors[0]!.reconnects === 1 && t.agent.agent.ready, 'the agent to reconnect');
    // A peer that vanishes without a close: the server counts a lost tunnel.
    const raw = await rawAgent(cleanup, t.server.publicUrl, t);
    await waitUntil(() => t.server.server.registry.connections(t.clientId).length === 2, 'the raw agent to join');
    raw.ws.terminate();
    await waitUntil(() => t.server.server.registry.connections(t.clientId).length === 1, 'the server to notice');

    const server = await scrape(`${t.server.ingressUrl}/metrics`);
    expect(valueOf(server, 'postern_auth_failures_total', { surface: 'tunnel' })).toBeGreaterThanOrEqual(1);
    expect(valueOf(server, 'postern_auth_failures_total', { surface: 'admin' })).toBe(1);
    expect(valueOf(server, 'postern_agent_connections_opened_total')).toBe(3);
    expect(valueOf(server, 'postern_agent_disconnections_total', { code: 'tunnel_lost' })).toBe(1);
    expect(valueOf(server, 'postern_agent_connections')).toBe(1);
    const agent = await scrape(`http://127.0.0.1:${t.agent.agent.statusPort}/metrics`);
    expect(valueOf(agent, 'postern_tunnel_reconnects_total')).toBe(1);
    expect(valueOf(agent, 'postern_tunnels_connected')).toBe(1);
  });
});

describe('server /readyz', () => {
  it('says why it is not ready when the store cannot be read', async () => {
    const t = await startTunnel(cleanup);
    expect((await sendJson(`${t.server.ingressUrl}/readyz`)).json).toEqual({ ready: true });
    t.server.server.store.close();
    const res = await sendJson<{ ready: boolean; reason: string }>(`${t.server.ingressUrl}/readyz`);
    expect(res.status).toBe(503);
    expect(res.json).toEqual({ ready: false, reason: 'store unavailable: the store is closed' });
    // Liveness is not readiness: the process still answers.
    expect((await send(`${t.server.ingressUrl}/healthz`)).status).toBe(200);
    void TEST_ADMIN_TOKEN;
  });
});

describe('docs/metrics.md', () => {
  it('documents every postern_ metric either process exposes', async () => {
    const { readFileSync } = await import('node:fs');
    const doc = readFileSync(new URL('../../docs/metrics.md', import.meta.url), 'utf8');
    const t = await startTunnel(cleanup, { agentEnv: { POSTERN_STATUS_PORT: '0' } });
    const families = new Set<string>();
    for (const url of [`${t.server.ingressUrl}/metrics`, `http://127.0.0.1:${t.agent.agent.statusPort}/metrics`]) {
      for (const name of (await scrape(url)).types.keys()) families.add(name);
    }
    // prom-client's process metrics are described as a group.
    const own = [...families].filter((f) => !/^postern_(process|nodejs)_/.test(f));
    expect(own.length).toBeGreaterThanOrEqual(20);
    expect(own.filter((f) => !doc.includes(`\`${f}\``))).toEqual([]);
    expect(families.has('postern_nodejs_eventloop_lag_seconds')).toBe(true);
  });
});
