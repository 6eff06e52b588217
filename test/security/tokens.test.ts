import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { generateToken, hashToken, tokenMatches, tokenMatchesAny } from '../../server/secrets.js';
import { Cleanup } from '../helpers/cleanup.js';
import { send, sendJson } from '../helpers/http-client.js';
import { startAgent } from '../helpers/start-agent.js';
import { startServer, tempDataDir, TEST_ADMIN_TOKEN } from '../helpers/start-server.js';
import { startTunnel } from '../helpers/tunnel-fixture.js';
import { startUpstream } from '../helpers/upstream.js';
import { waitUntil } from '../helpers/wait.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

/** Every byte of every file in `dir` (the database, its WAL and shared-memory files, …). */
function allBytes(dir: string): Buffer {
  return Buffer.concat(readdirSync(dir).map((f) => readFileSync(join(dir, f))));
}

describe('client tokens and API keys at rest', () => {
  it('the data dir never holds a token or key in clear, only their SHA-256 hashes', async () => {
    const data = await tempDataDir();
    cleanup.add(() => data.remove());
    const server = await startServer({ dataDir: data.dir });
    cleanup.add(() => server.close(0));
    const admin = { token: TEST_ADMIN_TOKEN };
    const base = `${server.ingressUrl}/v1/clients`;
    const created = await sendJson<{ clientId: string; clientToken: string }>(base, { ...admin, method: 'POST', json: { name: 'a' } });
    const rotated = await sendJson<{ clientToken: string }>(`${base}/${created.json.clientId}/rotate`, { ...admin, method: 'POST' });
    const key = await sendJson<{ apiKey: string }>(`${base}/${created.json.clientId}/api-keys`, { ...admin, method: 'POST', json: {} });
    const secrets = [created.json.clientToken, rotated.json.clientToken, key.json.apiKey];
    for (const s of secrets) expect(s).toMatch(/^[A-Za-z0-9_-]{43}$/);
    await server.close(0);

    const bytes = allBytes(data.dir);
    for (const s of secrets) expect(bytes.includes(s)).toBe(false);
    // The admin token came from the environment: not written anywhere.
    expect(bytes.includes(TEST_ADMIN_TOKEN)).toBe(false);
    // What is there: the hashes of the current token and of the key.
    expect(bytes.includes(hashToken(rotated.json.clientToken))).toBe(true);
    expect(bytes.includes(hashToken(key.json.apiKey))).toBe(true);
  });
});

describe('token comparison', () => {
  it('compares fixed-length SHA-256 digests, so any presented length is handled and none matches but the token', () => {
    const token = generateToken();
    const stored = hashToken(token);
    expect(stored).toBe(createHash('sha256').update(token).digest('hex'));
    expect(tokenMatches(token, stored)).toBe(true);
    const near = [
      '',
      token.slice(0, -1),
      `${token}\0`,
      token.toUpperCase(),
      ` ${token}`,
      'é'.repeat(43),
      'x'.repeat(100_000),
      stored,
    ];
    for (const presented of near) expect(tokenMatches(presented, stored)).toBe(false);
  });

  it('checks every stored key hash, whichever matches', () => {
    const keys = Array.from({ length: 5 }, generateToken);
    const hashes = keys.map((k) => Buffer.from(hashToken(k), 'hex'));
    for (const k of keys) expect(tokenMatchesAny(k, hashes)).toBe(true);
    expect(tokenMatchesAny(generateToken(), hashes)).toBe(false);
    expect(tokenMatchesAny(keys[0]!, [])).toBe(false);
    // A malformed stored hash (wrong length) never matches and never throws.
    expect(tokenMatchesAny(keys[0]!, [Buffer.alloc(3)])).toBe(false);
  });
});

describe('revoke and rotate on live tunnels', () => {
  it('revoking closes every live tunnel of the client (two agents, two tunnels each) and no other client’s', async () => {
    const t = await startTunnel(cleanup, { agentEnv: { POSTERN_CONNECTIONS: '2' } });
    const second = await t.startAgent();
    const other = t.server.server.store.create('bystander');
    const otherTool = await startUpstream();
    cleanup.add(() => otherTool.close());
    const bystander = await startAgent({ ...other, proxyUrl: t.server.publicUrl, toolUrl: otherTool.url });
    cleanup.add(() => bystander.stop());
    await waitUntil(() => t.server.server.registry.connections(t.clientId).length === 4, 'four tunnels of the client');

    const del = await sendJson(`${t.server.ingressUrl}/v1/clients/${t.clientId}`, { method: 'DELETE', token: TEST_ADMIN_TOKEN });
    expect(del.json).toMatchObject({ revoked: true, closedConnections: 4 });
    for (const a of [t.agent, second]) {
      await waitUntil(() => a.agent.connectors.every((c) => /401/.test(c.lastError ?? '')), 'every tunnel refused on redial');
    }
    expect(t.server.server.registry.connections(t.clientId)).toHaveLength(0);
    expect((await send(t.url('/gone'))).status).toBe(404);
    // The bystander's tunnel was not touched.
    expect(bystander.agent.ready).toBe(true);
    expect((await send(`${t.server.ingressUrl}/t/${other.clientId}/still`)).status).toBe(200);
  });

  it('rotating closes every live tunnel of the client; agents with the old token stay out', async () => {
    const t = await startTunnel(cleanup, { agentEnv: { POSTERN_CONNECTIONS: '2' }, server: { env: { POSTERN_AGENT_WAIT_MS: '100' } } });
    await waitUntil(() => t.server.server.registry.connections(t.clientId).length === 2, 'two tunnels');
    const rotated = await sendJson<{ clientToken: string; closedConnections: number }>(`${t.server.ingressUrl}/v1/clients/${t.clientId}/rotate`, {
      method: 'POST',
      token: TEST_ADMIN_TOKEN,
    });
    expect(rotated.json.closedConnections).toBe(2);
    await waitUntil(() => t.agent.agent.connectors.every((c) => /401/.test(c.lastError ?? '')), 'the old token to be refused on every tunnel');
    expect(t.server.server.registry.connections(t.clientId)).toHaveLength(0);
    expect((await send(t.url('/between'))).status).toBe(503);
    const fresh = await t.startAgent({ clientToken: rotated.json.clientToken });
    expect(fresh.agent.ready).toBe(true);
    expect((await send(t.url('/after'))).status).toBe(200);
  });
});
