import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { Cleanup } from '../helpers/cleanup.js';
import { rawHeaderValues, send, sendJson } from '../helpers/http-client.js';
import { startAgent } from '../helpers/start-agent.js';
import { startServer, TEST_ADMIN_TOKEN } from '../helpers/start-server.js';
import { startTunnel } from '../helpers/tunnel-fixture.js';
import { startUpstream } from '../helpers/upstream.js';
import { waitUntil, within } from '../helpers/wait.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

/** Dials /v1/tunnel by hand and reports the HTTP status the upgrade got. */
function upgradeStatus(publicUrl: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${publicUrl.replace(/^http/, 'ws')}/v1/tunnel`, { headers, handshakeTimeout: 5_000 });
    ws.on('unexpected-response', (_req, res) => {
      res.resume();
      ws.terminate();
      resolve(res.statusCode ?? 0);
    });
    ws.on('open', () => {
      ws.terminate();
      resolve(101);
    });
    ws.on('error', (err) => reject(err));
  });
}

describe('agent credentials at the tunnel endpoint', () => {
  it('refuses the tunnel upgrade with HTTP 401 for a wrong token, an unknown client or no credentials', async () => {
    const server = await startServer();
    cleanup.add(() => server.close());
    const { clientId, clientToken } = server.server.store.create('c');
    expect(await upgradeStatus(server.publicUrl, { authorization: 'Bearer wrong-token', 'x-postern-client-id': clientId })).toBe(401);
    expect(await upgradeStatus(server.publicUrl, { authorization: `Bearer ${clientToken}`, 'x-postern-client-id': 'nobody' })).toBe(401);
    expect(await upgradeStatus(server.publicUrl, {})).toBe(401);
    // The right pair is let through (the socket is dropped at once by the helper).
    expect(await upgradeStatus(server.publicUrl, { authorization: `Bearer ${clientToken}`, 'x-postern-client-id': clientId })).toBe(101);
    expect(server.server.registry.all()).toHaveLength(0);
  });

  it('never makes an agent with a wrong token ready, and reports the 401 as its last error', async () => {
    const upstream = await startUpstream();
    cleanup.add(() => upstream.close());
    const server = await startServer();
    cleanup.add(() => server.close());
    const { clientId } = server.server.store.create('c');
    const agent = await startAgent({
      clientId,
      clientToken: 'definitely-not-the-token',
      proxyUrl: server.publicUrl,
      toolUrl: upstream.url,
      waitReady: false,
    });
    cleanup.add(() => agent.stop());
    const connector = agent.agent.connectors[0]!;
    // Keeps trying (backoff), but every attempt is refused.
    await waitUntil(() => connector.reconnects >= 3, 'three refused attempts');
    expect(agent.agent.ready).toBe(false);
    expect(connector.lastError).toMatch(/401/);
    expect(agent.agent.status().connections[0]!.lastError).toMatch(/401/);
    expect(server.server.registry.all()).toHaveLength(0);
  });
});

describe('revocation and rotation on live tunnels', () => {
  it('closes the live tunnel when the client is revoked; its requests then get 404', async () => {
    const t = await startTunnel(cleanup);
    expect((await send(t.url('/before'))).status).toBe(200);
    const connector = t.agent.agent.connectors[0]!;
    expect(connector.state).toBe('connected');

    const del = await sendJson(`${t.server.ingressUrl}/v1/clients/${t.clientId}`, { method: 'DELETE', token: TEST_ADMIN_TOKEN });
    expect(del.status).toBe(200);
    expect(del.json).toMatchObject({ clientId: t.clientId, revoked: true, closedConnections: 1 });

    await waitUntil(() => connector.state !== 'connected', 'the agent to lose its tunnel');
    expect(t.server.server.registry.connections(t.clientId)).toHaveLength(0);
    // The agent keeps dialling but the revoked client is refused every time.
    await waitUntil(() => /401/.test(connector.lastError ?? ''), 'a refused reconnect');
    expect(t.agent.agent.ready).toBe(false);

    const after = await sendJson<{ error: string }>(t.url('/after'));
    expect(after.status).toBe(404);
    expect(after.json.error).toBe('unknown_client');
    expect(t.upstream.requests.map((r) => r.url)).toEqual(['/before']);
  });

  it('rotating the token closes the live tunnel, shuts out the old token and lets the new one in', async () => {
    const t = await startTunnel(cleanup, { server: { env: { POSTERN_AGENT_WAIT_MS: '200' } } });
    const oldConnector = t.agent.agent.connectors[0]!;
    const rotate = await sendJson<{ clientId: string; clientToken: string; closedConnections: number }>(
      `${t.server.ingressUrl}/v1/clients/${t.clientId}/rotate`,
      { method: 'POST', token: TEST_ADMIN_TOKEN },
    );
    expect(rotate.status).toBe(200);
    expect(rotate.json.clientId).toBe(t.clientId);
    expect(rotate.json.closedConnections).toBe(1);
    const newToken = rotate.json.clientToken;
    expect(newToken).toMatch(/^[A-Za-z0-9_-]{32,}$/);
    expect(newToken).not.toBe(t.clientToken);

    await waitUntil(() => oldConnector.state !== 'connected', 'the old agent to lose its tunnel');
    await waitUntil(() => /401/.test(oldConnector.lastError ?? ''), 'the old token to be refused');
    expect(t.server.server.registry.connections(t.clientId)).toHaveLength(0);
    // The client still exists: no agent within the wait is 503, not 404.
    expect((await send(t.url('/between'))).status).toBe(503);
    await t.agent.stop();

    const fresh = await t.startAgent({ clientToken: newToken });
    expect(fresh.agent.ready).toBe(true);
    const res = await within(send(t.url('/with-new-token')), 5_000, 'request with the new token');
    expect(res.status).toBe(200);
    expect(oldConnector.state).toBe('stopped');
  });
});

describe('the tool credential per TOOL_TYPE (TOOL_SECRET)', () => {
  const secret = 'tool-secret-Zq8';
  const basic = (s: string): string => `Basic ${Buffer.from(s).toString('base64')}`;
  /** [TOOL_TYPE, TOOL_SECRET, the one header the tool must receive (name as sent, value)] */
  const types: [string, string, [string, string]][] = [
    ['github', secret, ['authorization', `Bearer ${secret}`]],
    ['gitlab', secret, ['private-token', secret]],
    ['bitbucket', secret, ['authorization', `Bearer ${secret}`]],
    ['azuredevops', secret, ['authorization', basic(`:${secret}`)]],
    ['jenkins', `robot:${secret}`, ['authorization', basic(`robot:${secret}`)]],
    ['bearer', secret, ['authorization', `Bearer ${secret}`]],
    ['header:X-API-Key', secret, ['X-API-Key', secret]],
    ['header:X-Custom-Auth', secret, ['X-Custom-Auth', secret]],
  ];

  /**
   * Every way a caller might slip its own credential past the agent: repeats,
   * letter-case variants of each credential header, a session cookie, and the
   * custom header of the header:<Name> types. Each value is unique so a leak
   * names itself.
   */
  const callerHeaders = [
    'Authorization', 'Bearer caller-1',
    'Authorization', 'Bearer caller-2',
    'authorization', 'Basic caller-3',
    'AUTHORIZATION', 'token caller-4',
    'Private-Token', 'caller-5',
    'PRIVATE-TOKEN', 'caller-6',
    'private-token', 'caller-7',
    'Job-Token', 'caller-8',
    'DEPLOY-TOKEN', 'caller-9',
    'x-api-key', 'caller-10',
    'X-API-KEY', 'caller-11',
    'Cookie', '_gitlab_session=caller-14',
    'cookie', 'JSESSIONID=caller-15',
    'Proxy-Authorization', 'Basic caller-16',
    'X-Kept', 'kept-1',
  ];

  it.each(types)('TOOL_TYPE=%s: the tool gets exactly the agent’s header and no caller credential', async (type, toolSecret, [name, value]) => {
    const t = await startTunnel(cleanup, { agentEnv: { TOOL_TYPE: type, TOOL_SECRET: toolSecret } });
    // For header:<Name>, the caller also tries <Name> itself, in two letter cases.
    const own = type.startsWith('header:') ? [name.toLowerCase(), 'caller-12', name.toUpperCase(), 'caller-13'] : [];
    const res = await send(t.url('/api/resource?x=1'), { method: 'POST', headers: [...callerHeaders, ...own], body: 'payload' });
    expect(res.status).toBe(200);
    const seen = (await t.upstream.waitForRequests(1)).rawHeaders;

    // The credential, once, with the exact name and value.
    const pairs = seen.flatMap((h, i) => (i % 2 === 0 ? [[h, seen[i + 1]!] as const] : []));
    expect(pairs.filter(([n]) => n.toLowerCase() === name.toLowerCase())).toEqual([[name, value]]);
    // No other credential header at all, and no caller value anywhere.
    const credentialNames = ['authorization', 'private-token', 'job-token', 'deploy-token', 'x-api-key', 'cookie', 'proxy-authorization'];
    const others = pairs.filter(([n]) => credentialNames.includes(n.toLowerCase()) && n.toLowerCase() !== name.toLowerCase());
    expect(others).toEqual([]);
    expect(seen.filter((h) => h.includes('caller-'))).toEqual([]);
    // Everything else passes as sent.
    expect(rawHeaderValues(seen, 'x-kept')).toEqual(['kept-1']);
    expect(t.upstream.requests[0]!.url).toBe('/api/resource?x=1');
    expect((await t.upstream.requests[0]!.body).bytes).toBe('payload'.length);
  });

  it('without TOOL_SECRET passes the caller’s credential headers as sent (the caller brings its own token)', async () => {
    const t = await startTunnel(cleanup);
    const res = await send(t.url('/own-token'), { headers: ['Authorization', 'Bearer caller-1', 'authorization', 'Bearer caller-2', 'PRIVATE-TOKEN', 'caller-3'] });
    expect(res.status).toBe(200);
    const seen = (await t.upstream.waitForRequests(1)).rawHeaders;
    expect(rawHeaderValues(seen, 'authorization')).toEqual(['Bearer caller-1', 'Bearer caller-2']);
    expect(rawHeaderValues(seen, 'private-token')).toEqual(['caller-3']);
  });
});
