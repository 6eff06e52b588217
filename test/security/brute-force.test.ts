import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { Cleanup } from '../helpers/cleanup.js';
import { send } from '../helpers/http-client.js';
import { createClient, logLines, startServerProcess, type ServerProc } from '../helpers/processes.js';
import { startAgent } from '../helpers/start-agent.js';
import { startUpstream } from '../helpers/upstream.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const LIMIT = 5;
const BLOCK_MS = 1_500;
/** A second loopback address: "another caller" (Linux routes all of 127/8 to lo). */
const OTHER_ADDRESS = '127.0.0.2';

async function server(): Promise<ServerProc> {
  return startServerProcess(cleanup, {
    env: {
      POSTERN_AUTH_FAILURE_LIMIT: String(LIMIT),
      POSTERN_AUTH_FAILURE_WINDOW_MS: '30000',
      POSTERN_AUTH_BLOCK_MS: String(BLOCK_MS),
    },
  });
}

interface Answer {
  status: number;
  retryAfter: string | undefined;
  body: string;
}

/** Dials /v1/tunnel from `localAddress` and reports how the upgrade was answered. */
function dialTunnel(port: number, clientId: string, token: string, localAddress = '127.0.0.1'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/tunnel`, {
      headers: { authorization: `Bearer ${token}`, 'x-postern-client-id': clientId },
      handshakeTimeout: 5_000,
      localAddress,
    });
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => {
        ws.terminate();
        resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], body });
      });
    });
    ws.on('open', () => {
      ws.terminate();
      resolve({ status: 101, retryAfter: undefined, body: '' });
    });
    ws.on('error', reject);
  });
}

/** GET /v1/status on the private listener from `localAddress`, with more headers if given. */
function adminStatus(port: number, token: string, localAddress = '127.0.0.1', headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/v1/status', headers: { authorization: `Bearer ${token}`, ...headers }, localAddress, agent: false },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const guess = (): string => randomBytes(32).toString('base64url');

/** Every line the server wrote, as one string: what an attacker's guesses must never appear in. */
const allOutput = (s: ServerProc): string => s.child.lastLines();

describe('brute-force protection per source address', () => {
  it('on the tunnel endpoint: after the limit, 429 with retry-after for the cool-down; other addresses and live tunnels are unaffected', async () => {
    const s = await server();
    const creds = await createClient(s, 'target');
    const upstream = await startUpstream();
    cleanup.add(() => upstream.close());
    const live = await startAgent({ ...creds, proxyUrl: `http://127.0.0.1:${s.port}`, toolUrl: upstream.url });
    cleanup.add(() => live.stop());

    const guesses = Array.from({ length: LIMIT }, guess);
    for (const g of guesses) expect((await dialTunnel(s.port, creds.clientId, g)).status).toBe(401);
    const blocked = await dialTunnel(s.port, creds.clientId, guess());
    expect(blocked.status).toBe(429);
    expect(blocked.retryAfter).toBe(String(Math.ceil(BLOCK_MS / 1000)));
    expect(JSON.parse(blocked.body)).toMatchObject({ error: 'too_many_auth_failures' });
    // Refused before the credentials are looked at: even the right token, from the blocked address.
    expect((await dialTunnel(s.port, creds.clientId, creds.clientToken)).status).toBe(429);
    // Another address is not affected, and the tunnel that was already up keeps serving.
    expect((await dialTunnel(s.port, creds.clientId, creds.clientToken, OTHER_ADDRESS)).status).toBe(101);
    expect((await send(`${s.ingressUrl}/t/${creds.clientId}/during-block`)).status).toBe(200);
    expect(live.agent.ready).toBe(true);

    // Logged: the first failure and the block, once each, with the address and count.
    const first = logLines(s.child, (o) => o.msg === 'agent refused: bad credentials');
    expect(first).toHaveLength(1);
    expect(first[0]).toMatchObject({ remote: '127.0.0.1', failures: 1, clientId: creds.clientId, level: 40 });
    const block = logLines(s.child, (o) => o.msg === 'too many failed authentications: address blocked');
    expect(block).toHaveLength(1);
    expect(block[0]).toMatchObject({ remote: '127.0.0.1', surface: 'tunnel', failures: LIMIT, blockMs: BLOCK_MS });
    for (const g of [...guesses, creds.clientToken]) expect(allOutput(s)).not.toContain(g);

    // After the cool-down the address may try again, and the right token works.
    await new Promise((r) => setTimeout(r, BLOCK_MS + 100));
    expect((await dialTunnel(s.port, creds.clientId, creds.clientToken)).status).toBe(101);
  });

  it('on the admin API: the same per address, counted apart from the tunnel endpoint', async () => {
    const s = await server();
    const creds = await createClient(s, 'target');
    const guesses = Array.from({ length: LIMIT }, guess);
    for (const g of guesses) expect((await adminStatus(s.ingressPort, g)).status).toBe(401);
    const blocked = await adminStatus(s.ingressPort, s.adminToken);
    expect(blocked.status).toBe(429);
    expect(Number(blocked.retryAfter)).toBeGreaterThan(0);
    expect(JSON.parse(blocked.body)).toMatchObject({ error: 'too_many_auth_failures' });
    expect((await adminStatus(s.ingressPort, s.adminToken, OTHER_ADDRESS)).status).toBe(200);
    // Without POSTERN_TRUST_PROXY a caller cannot pick its address with X-Forwarded-For.
    expect((await adminStatus(s.ingressPort, s.adminToken, '127.0.0.1', { 'x-forwarded-for': '203.0.113.9' })).status).toBe(429);
    // The tunnel endpoint keeps its own count: the blocked address can still bring up a tunnel.
    expect((await dialTunnel(s.port, creds.clientId, creds.clientToken)).status).toBe(101);
    // /healthz needs no authentication and is not blocked.
    expect((await send(`${s.ingressUrl}/healthz`)).status).toBe(200);

    expect(logLines(s.child, (o) => o.msg === 'admin API refused: bad admin token')).toHaveLength(1);
    const block = logLines(s.child, (o) => o.msg === 'too many failed authentications: address blocked');
    expect(block).toHaveLength(1);
    expect(block[0]).toMatchObject({ remote: '127.0.0.1', surface: 'admin', failures: LIMIT });
    for (const g of [...guesses, s.adminToken]) expect(allOutput(s)).not.toContain(g);
  });

  it('behind a trusted reverse proxy (POSTERN_TRUST_PROXY) counts the address the proxy forwards, not the proxy', async () => {
    const s = await startServerProcess(cleanup, {
      env: { POSTERN_AUTH_FAILURE_LIMIT: String(LIMIT), POSTERN_AUTH_BLOCK_MS: '30000', POSTERN_TRUST_PROXY: '127.0.0.1' },
    });
    const attacker = { 'x-forwarded-for': '203.0.113.9' };
    for (let i = 0; i < LIMIT; i++) expect((await adminStatus(s.ingressPort, guess(), '127.0.0.1', attacker)).status).toBe(401);
    expect((await adminStatus(s.ingressPort, s.adminToken, '127.0.0.1', attacker)).status).toBe(429);
    // Another caller behind the same proxy, and the proxy's own address, are not blocked.
    expect((await adminStatus(s.ingressPort, s.adminToken, '127.0.0.1', { 'x-forwarded-for': '203.0.113.10' })).status).toBe(200);
    expect((await adminStatus(s.ingressPort, s.adminToken)).status).toBe(200);
    // An untrusted hop cannot forge the header: from 127.0.0.2 it is ignored.
    expect((await adminStatus(s.ingressPort, s.adminToken, OTHER_ADDRESS, attacker)).status).toBe(200);
    const block = logLines(s.child, (o) => o.msg === 'too many failed authentications: address blocked');
    expect(block[0]).toMatchObject({ remote: '203.0.113.9', failures: LIMIT });
  });
});
