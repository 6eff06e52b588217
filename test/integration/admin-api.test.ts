import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { hashToken } from '../../server/secrets.js';
import { Cleanup } from '../helpers/cleanup.js';
import { send, sendJson } from '../helpers/http-client.js';
import { startAgent } from '../helpers/start-agent.js';
import { startServer, TEST_ADMIN_TOKEN, type StartedServer } from '../helpers/start-server.js';
import { startUpstream } from '../helpers/upstream.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

interface CreatedClient {
  clientId: string;
  clientToken: string;
  name: string;
  createdAt: string;
}

async function started(): Promise<StartedServer> {
  const server = await startServer();
  cleanup.add(() => server.close());
  return server;
}

async function createClient(server: StartedServer, name: string): Promise<CreatedClient> {
  const res = await sendJson<CreatedClient>(`${server.ingressUrl}/v1/clients`, {
    method: 'POST',
    token: TEST_ADMIN_TOKEN,
    json: { name },
  });
  expect(res.status).toBe(201);
  return res.json;
}

describe('admin API', () => {
  it('creates a client: 201 with id, token (shown once), name and creation time', async () => {
    const server = await started();
    const before = Date.now();
    const client = await createClient(server, 'acme-gitlab');
    expect(Object.keys(client).sort()).toEqual(['clientId', 'clientToken', 'createdAt', 'name']);
    expect(client.clientId).toMatch(/^[A-Za-z0-9_-]{10,}$/);
    expect(client.clientToken).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    expect(client.name).toBe('acme-gitlab');
    expect(Date.parse(client.createdAt)).toBeGreaterThanOrEqual(before - 1000);
    // The token works for an agent.
    expect(server.server.store.verify(client.clientId, client.clientToken)).toBe(true);
  });

  it('rejects a create without a valid name with 400', async () => {
    const server = await started();
    const url = `${server.ingressUrl}/v1/clients`;
    expect((await send(url, { method: 'POST', headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: '{}' })).status).toBe(400);
    expect((await sendJson(url, { method: 'POST', token: TEST_ADMIN_TOKEN, json: { name: '' } })).status).toBe(400);
  });

  it('lists clients without any token or token hash', async () => {
    const server = await started();
    const a = await createClient(server, 'a');
    const b = await createClient(server, 'b');
    const res = await sendJson<{ clients: Record<string, unknown>[] }>(`${server.ingressUrl}/v1/clients`, { token: TEST_ADMIN_TOKEN });
    expect(res.status).toBe(200);
    expect(res.json.clients.map((c) => c.clientId).sort()).toEqual([a.clientId, b.clientId].sort());
    for (const c of res.json.clients) {
      expect(c).toMatchObject({ name: expect.any(String), createdAt: expect.any(String), connections: 0 });
      expect(c).not.toHaveProperty('clientToken');
      expect(c).not.toHaveProperty('tokenHash');
    }
    const text = res.body.toString();
    for (const secret of [a.clientToken, b.clientToken, hashToken(a.clientToken), hashToken(b.clientToken)]) {
      expect(text).not.toContain(secret);
    }
  });

  it('revokes a client (then 404 on a second revoke) and rotates a token (old refused, new accepted)', async () => {
    const server = await started();
    const a = await createClient(server, 'a');
    const b = await createClient(server, 'b');

    const rotated = await sendJson<{ clientId: string; clientToken: string; closedConnections: number }>(
      `${server.ingressUrl}/v1/clients/${b.clientId}/rotate`,
      { method: 'POST', token: TEST_ADMIN_TOKEN },
    );
    expect(rotated.status).toBe(200);
    expect(rotated.json).toEqual({ clientId: b.clientId, clientToken: expect.any(String), closedConnections: 0 });
    expect(server.server.store.verify(b.clientId, b.clientToken)).toBe(false);
    expect(server.server.store.verify(b.clientId, rotated.json.clientToken)).toBe(true);

    const revoke = await sendJson(`${server.ingressUrl}/v1/clients/${a.clientId}`, { method: 'DELETE', token: TEST_ADMIN_TOKEN });
    expect(revoke.status).toBe(200);
    expect(revoke.json).toEqual({ clientId: a.clientId, revoked: true, closedConnections: 0 });
    expect(server.server.store.verify(a.clientId, a.clientToken)).toBe(false);

    const again = await sendJson<{ error: string }>(`${server.ingressUrl}/v1/clients/${a.clientId}`, { method: 'DELETE', token: TEST_ADMIN_TOKEN });
    expect(again.status).toBe(404);
    expect(again.json.error).toBe('unknown_client');
    const rotateGone = await sendJson<{ error: string }>(`${server.ingressUrl}/v1/clients/${a.clientId}/rotate`, { method: 'POST', token: TEST_ADMIN_TOKEN });
    expect(rotateGone.status).toBe(404);
  });

  it('reports status: version, uptime and per-client connections and counters', async () => {
    const upstream = await startUpstream();
    cleanup.add(() => upstream.close());
    const server = await started();
    const online = await createClient(server, 'online');
    const offline = await createClient(server, 'offline');
    const agent = await startAgent({ clientId: online.clientId, clientToken: online.clientToken, proxyUrl: server.publicUrl, toolUrl: upstream.url });
    cleanup.add(() => agent.stop());
    expect((await send(`${server.ingressUrl}/t/${online.clientId}/x`, { method: 'POST', body: 'hello' })).status).toBe(200);

    const res = await sendJson<{
      version: string;
      startedAt: string;
      uptimeSeconds: number;
      clients: Record<string, unknown>[];
    }>(`${server.ingressUrl}/v1/status`, { token: TEST_ADMIN_TOKEN });
    expect(res.status).toBe(200);
    expect(res.json.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(Number.isNaN(Date.parse(res.json.startedAt))).toBe(false);
    expect(res.json.uptimeSeconds).toBeGreaterThanOrEqual(0);
    const byId = new Map(res.json.clients.map((c) => [c.clientId, c]));
    expect(byId.get(online.clientId)).toMatchObject({
      name: 'online',
      connected: true,
      streamsInFlight: 0,
      requests: 1,
      errors: 0,
      bytesIn: 5,
      lastError: null,
    });
    const conns = byId.get(online.clientId)!.connections as Record<string, unknown>[];
    expect(conns).toHaveLength(1);
    expect(conns[0]).toMatchObject({
      connectionId: agent.agent.connectors[0]!.connectionId,
      remoteAddress: '127.0.0.1',
      agentVersion: expect.stringMatching(/^postern\//),
      connectedSince: expect.any(String),
      rttMs: expect.any(Number),
      streams: 0,
    });
    expect((byId.get(online.clientId)!.bytesOut as number) > 0).toBe(true);
    expect(byId.get(offline.clientId)).toMatchObject({ connected: false, connections: [], requests: 0 });
    expect(res.body.toString()).not.toContain(online.clientToken);
  });

  it('answers 401 on every admin route without the admin token or with a wrong one', async () => {
    const server = await started();
    const client = await createClient(server, 'x');
    const routes: [string, string][] = [
      ['POST', '/v1/clients'],
      ['GET', '/v1/clients'],
      ['DELETE', `/v1/clients/${client.clientId}`],
      ['POST', `/v1/clients/${client.clientId}/rotate`],
      ['GET', '/v1/status'],
    ];
    for (const [method, path] of routes) {
      for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: TEST_ADMIN_TOKEN }]) {
        const res = await sendJson<{ error: string }>(`${server.ingressUrl}${path}`, {
          method,
          headers: { ...headers, 'content-type': 'application/json' },
          body: method === 'POST' ? '{"name":"y"}' : undefined,
        });
        expect(res.status, `${method} ${path} ${JSON.stringify(headers)}`).toBe(401);
        expect(res.json.error).toBe('unauthorized');
      }
    }
    // Nothing changed: the client is still there with its token.
    expect(server.server.store.verify(client.clientId, client.clientToken)).toBe(true);
    expect(server.server.store.list()).toHaveLength(1);
  });

  it('keeps only a hash of each client token in the store files, never the token', async () => {
    const server = await started();
    const a = await createClient(server, 'a');
    const b = await createClient(server, 'b');
    const rotated = await sendJson<{ clientToken: string }>(`${server.ingressUrl}/v1/clients/${b.clientId}/rotate`, {
      method: 'POST',
      token: TEST_ADMIN_TOKEN,
    });
    // SQLite in WAL mode: recent writes may sit in postern.db-wal, so read every store file.
    const files = (await readdir(server.dataDir)).filter((f) => f.startsWith('postern.db'));
    expect(files).toContain('postern.db');
    const bytes = Buffer.concat(await Promise.all(files.map((f) => readFile(join(server.dataDir, f)))));
    for (const token of [a.clientToken, b.clientToken, rotated.json.clientToken]) {
      expect(bytes.includes(Buffer.from(token))).toBe(false);
    }
    // Sanity: we are reading the right bytes — the hashes are there.
    expect(bytes.includes(Buffer.from(hashToken(a.clientToken)))).toBe(true);
    expect(bytes.includes(Buffer.from(hashToken(rotated.json.clientToken)))).toBe(true);
  });
});
