import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Cleanup } from '../helpers/cleanup.js';
import { rawHeaderValues, send, sendJson } from '../helpers/http-client.js';
import { TEST_ADMIN_TOKEN } from '../helpers/start-server.js';
import { startTunnel, type TunnelFixture } from '../helpers/tunnel-fixture.js';
import type { EchoBody } from '../helpers/upstream.js';
import { within } from '../helpers/wait.js';
import { runCli } from './run-cli.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const KEY_HEADER = 'x-postern-api-key';

interface CreatedKey {
  clientId: string;
  keyId: string;
  name: string;
  apiKey: string;
  createdAt: string;
}

async function createKey(t: TunnelFixture, name?: string): Promise<CreatedKey> {
  const r = await sendJson<CreatedKey>(`${t.server.ingressUrl}/v1/clients/${t.clientId}/api-keys`, {
    method: 'POST',
    token: TEST_ADMIN_TOKEN,
    json: name === undefined ? {} : { name },
  });
  expect(r.status).toBe(201);
  return r.json;
}

async function listKeys(t: TunnelFixture): Promise<{ keyId: string; name: string }[]> {
  const r = await sendJson<{ apiKeys: { keyId: string; name: string }[] }>(`${t.server.ingressUrl}/v1/clients/${t.clientId}/api-keys`, {
    token: TEST_ADMIN_TOKEN,
  });
  expect(r.status).toBe(200);
  return r.json.apiKeys;
}

describe('per-client ingress API keys', () => {
  it('once a client has a key, its requests need one: missing or wrong is 401, a valid one passes and is stripped', async () => {
    const t = await startTunnel(cleanup);
    // No key yet: open, as before.
    expect((await send(t.url('/open'))).status).toBe(200);

    const k1 = await createKey(t, 'ci');
    expect(k1).toMatchObject({ clientId: t.clientId, name: 'ci' });
    expect(k1.apiKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const before = t.upstream.requests.length;

    const missing = await sendJson<{ error: string; message: string; requestId: string }>(t.url('/no-key'));
    expect(missing.status).toBe(401);
    expect(missing.json.error).toBe('unauthorized');
    expect(missing.json.message).toContain(KEY_HEADER);
    expect(missing.headers['x-postern-request-id']).toBe(missing.json.requestId);

    const wrongKey = `${k1.apiKey.slice(0, -1)}${k1.apiKey.endsWith('A') ? 'B' : 'A'}`;
    for (const presented of [wrongKey, '', 'x'.repeat(4000), k1.keyId, `${k1.apiKey},${k1.apiKey}`]) {
      const wrong = await sendJson<{ error: string; message: string }>(t.url('/wrong-key'), { headers: { [KEY_HEADER]: presented } });
      expect(wrong.status).toBe(401);
      expect(wrong.json.error).toBe('unauthorized');
      expect(wrong.body.toString()).not.toContain(k1.apiKey);
      if (presented.length > 3) expect(wrong.body.toString()).not.toContain(presented);
    }
    // A key sent as Authorization is not an API key (that header belongs to the tool).
    expect((await send(t.url('/as-bearer'), { headers: { authorization: `Bearer ${k1.apiKey}` } })).status).toBe(401);
    // Nothing of the refused requests reached the tool.
    expect(t.upstream.requests.length).toBe(before);

    const ok = await sendJson<EchoBody>(t.url('/with-key?q=1'), {
      headers: { [KEY_HEADER]: k1.apiKey, authorization: 'Bearer caller-tool-credential' },
    });
    expect(ok.status).toBe(200);
    expect(ok.json.url).toBe('/with-key?q=1');
    expect(rawHeaderValues(ok.json.rawHeaders, KEY_HEADER)).toEqual([]);
    expect(rawHeaderValues(ok.json.rawHeaders, 'authorization')).toEqual(['Bearer caller-tool-credential']);
    expect(JSON.stringify(ok.json.rawHeaders)).not.toContain(k1.apiKey);
  });

  it('revoking one key shuts it out at once, other keys keep working; keys are listed without their value', async () => {
    const t = await startTunnel(cleanup);
    const k1 = await createKey(t, 'old');
    const k2 = await createKey(t);
    expect(k2.name).toBe('api key');
    const withKey = (key: string) => send(t.url('/x'), { headers: { [KEY_HEADER]: key } }).then((r) => r.status);
    expect(await withKey(k1.apiKey)).toBe(200);
    expect(await withKey(k2.apiKey)).toBe(200);
    const listed = await listKeys(t);
    expect(listed.map((k) => k.keyId)).toEqual([k1.keyId, k2.keyId]);
    expect(JSON.stringify(listed)).not.toContain(k1.apiKey);

    const del = await sendJson(`${t.server.ingressUrl}/v1/clients/${t.clientId}/api-keys/${k1.keyId}`, {
      method: 'DELETE',
      token: TEST_ADMIN_TOKEN,
    });
    expect(del.status).toBe(200);
    expect(del.json).toEqual({ clientId: t.clientId, keyId: k1.keyId, revoked: true });
    expect(await withKey(k1.apiKey)).toBe(401);
    expect(await withKey(k2.apiKey)).toBe(200);

    const again = await sendJson<{ error: string }>(`${t.server.ingressUrl}/v1/clients/${t.clientId}/api-keys/${k1.keyId}`, {
      method: 'DELETE',
      token: TEST_ADMIN_TOKEN,
    });
    expect(again.status).toBe(404);
    expect(again.json.error).toBe('unknown_api_key');

    // The last key gone: the client is open again (unless keys are required server-wide).
    await sendJson(`${t.server.ingressUrl}/v1/clients/${t.clientId}/api-keys/${k2.keyId}`, { method: 'DELETE', token: TEST_ADMIN_TOKEN });
    expect((await send(t.url('/open-again'))).status).toBe(200);
  });

  it('keys of one client do not open another; a client without keys stays open', async () => {
    const t = await startTunnel(cleanup, { server: { env: { POSTERN_AGENT_WAIT_MS: '100' } } });
    const other = t.server.server.store.create('other');
    const keyA = await createKey(t, 'a');
    const otherKey = t.server.server.store.createApiKey(other.clientId, 'o')!;
    t.server.server.apiKeys.invalidate(other.clientId);
    expect((await send(t.url('/x'), { headers: { [KEY_HEADER]: otherKey.apiKey } })).status).toBe(401);
    expect((await send(t.url('/x'), { headers: { [KEY_HEADER]: keyA.apiKey } })).status).toBe(200);
    const third = t.server.server.store.create('third');
    // No agent for the third client: it passes the key check and waits for one (503), not 401.
    expect((await send(`${t.server.ingressUrl}/t/${third.clientId}/x`)).status).toBe(503);
  });

  it('POSTERN_REQUIRE_API_KEYS=true refuses clients without keys and lets keyed requests through', async () => {
    const t = await startTunnel(cleanup, { server: { env: { POSTERN_REQUIRE_API_KEYS: 'true' } } });
    const refused = await sendJson<{ error: string; message: string }>(t.url('/x'));
    expect(refused.status).toBe(401);
    expect(refused.json.message).toContain('POSTERN_REQUIRE_API_KEYS');
    expect(t.upstream.requests).toHaveLength(0);
    const key = await createKey(t, 'svc');
    expect((await send(t.url('/x'), { headers: { [KEY_HEADER]: key.apiKey } })).status).toBe(200);
    expect((await send(t.url('/x'))).status).toBe(401);
  });

  it('closes the connection of a refused upload instead of reading a body that may never end', async () => {
    const t = await startTunnel(cleanup);
    await createKey(t, 'k');
    const socket: Socket = connect(t.server.ingressPort, '127.0.0.1');
    cleanup.add(() => socket.destroy());
    let answer = '';
    socket.on('data', (d: Buffer) => (answer += d.toString()));
    const closed = new Promise<void>((r) => socket.on('close', () => r()));
    socket.on('error', () => {});
    socket.write(`POST /t/${t.clientId}/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\nfirst bytes`);
    // The caller keeps trickling; the server answers 401 and closes anyway.
    const trickle = setInterval(() => socket.writable && socket.write('x'), 50);
    cleanup.add(() => clearInterval(trickle));
    await within(closed, 5_000, 'the refused upload connection to be closed');
    expect(answer).toMatch(/^HTTP\/1\.1 401 /);
    expect(answer.toLowerCase()).toContain('connection: close');
    expect(t.upstream.requests).toHaveLength(0);
  });

  it('the admin API validates key requests: unknown client 404, bad name 400, at most 20 keys per client', async () => {
    const t = await startTunnel(cleanup);
    const base = `${t.server.ingressUrl}/v1/clients`;
    const unknown = await sendJson<{ error: string }>(`${base}/nobody/api-keys`, { method: 'POST', token: TEST_ADMIN_TOKEN, json: {} });
    expect(unknown.status).toBe(404);
    expect(unknown.json.error).toBe('unknown_client');
    expect((await sendJson(`${base}/nobody/api-keys`, { token: TEST_ADMIN_TOKEN })).status).toBe(404);
    const tooLong = await sendJson(`${base}/${t.clientId}/api-keys`, { method: 'POST', token: TEST_ADMIN_TOKEN, json: { name: 'x'.repeat(201) } });
    expect(tooLong.status).toBe(400);
    // Without a body at all (no content-type): a key with the default name.
    const bare = await sendJson<CreatedKey>(`${base}/${t.clientId}/api-keys`, { method: 'POST', token: TEST_ADMIN_TOKEN });
    expect(bare.status).toBe(201);
    for (let i = 1; i < 20; i++) await createKey(t, `k${i}`);
    const over = await sendJson<{ error: string; message: string }>(`${base}/${t.clientId}/api-keys`, {
      method: 'POST',
      token: TEST_ADMIN_TOKEN,
      json: { name: 'one too many' },
    });
    expect(over.status).toBe(400);
    expect(over.json.message).toContain('20 API keys');
    // Without the admin token: 401, like every admin route.
    expect((await sendJson(`${base}/${t.clientId}/api-keys`)).status).toBe(401);
    // Revoking the client drops its keys with it.
    await sendJson(`${base}/${t.clientId}`, { method: 'DELETE', token: TEST_ADMIN_TOKEN });
    expect(t.server.server.store.listApiKeys(t.clientId)).toEqual([]);
  });

  it('postern client api-key create|list|revoke manage keys, showing a key only at creation', async () => {
    const t = await startTunnel(cleanup);
    const env = { POSTERN_SERVER: t.server.ingressUrl, POSTERN_ADMIN_TOKEN: TEST_ADMIN_TOKEN };
    const created = await runCli(['client', 'api-key', 'create', t.clientId, '--name', 'billing'], env);
    expect(created.code).toBe(0);
    const key = /^ {2}(\S{43})$/m.exec(created.stdout)?.[1];
    expect(key).toBeDefined();
    expect(created.stdout).toContain('shown only now');
    expect(created.stdout).toContain('x-postern-api-key: <key>');
    expect((await send(t.url('/cli'), { headers: { [KEY_HEADER]: key! } })).status).toBe(200);

    const list = await runCli(['client', 'api-key', 'list', t.clientId, '--json'], env);
    expect(list.code).toBe(0);
    const listed = JSON.parse(list.stdout) as { keyId: string; name: string }[];
    expect(listed.map((k) => k.name)).toEqual(['billing']);
    expect(list.stdout).not.toContain(key!);

    const revoke = await runCli(['client', 'api-key', 'revoke', t.clientId, listed[0]!.keyId], env);
    expect(revoke.code).toBe(0);
    expect(revoke.stdout).toContain(`Revoked API key ${listed[0]!.keyId}`);
    expect((await send(t.url('/cli'), { headers: { [KEY_HEADER]: key! } })).status).toBe(200); // open again: no keys left

    const usage = await runCli(['client', 'api-key', 'revoke', t.clientId], env);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('usage: postern client api-key');
  });
});
