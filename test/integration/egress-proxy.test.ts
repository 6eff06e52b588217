import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { fetch } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { makeTestPki, trustingDispatcher } from '../helpers/certs.js';
import { Cleanup } from '../helpers/cleanup.js';
import { startConnectProxy } from '../helpers/connect-proxy.js';
import { send } from '../helpers/http-client.js';
import { startAgentProcess, startServerProcess } from '../helpers/processes.js';
import { startAgent } from '../helpers/start-agent.js';
import { startServer, type StartedServer } from '../helpers/start-server.js';
import { waitUntil } from '../helpers/wait.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

async function listen(server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanup.add(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as AddressInfo).port;
}

async function server(): Promise<StartedServer> {
  const s = await startServer();
  cleanup.add(() => s.close(0));
  return s;
}

describe('egress proxy for the tunnel', () => {
  it('dials the server through an HTTP CONNECT proxy named by HTTP_PROXY, with its credentials', async () => {
    const toolPort = await listen(createServer((req, res) => res.end(`tool saw ${req.url}`)));
    const proxy = await startConnectProxy(cleanup);
    const s = await server();
    const client = s.server.store.create('via-proxy');
    const a = await startAgent({
      ...client,
      proxyUrl: s.publicUrl,
      toolUrl: `http://127.0.0.1:${toolPort}`,
      env: { HTTP_PROXY: `http://user:p%40ss@127.0.0.1:${proxy.port}` },
    });
    cleanup.add(() => a.stop());
    expect(proxy.connects).toEqual([`127.0.0.1:${s.port}`]);
    expect(proxy.auth[0]).toBe(`Basic ${Buffer.from('user:p@ss').toString('base64')}`);
    const res = await send(`${s.ingressUrl}/t/${client.clientId}/x?y=1`);
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('tool saw /x?y=1');
  });

  it('goes direct when NO_PROXY names the server', async () => {
    const proxy = await startConnectProxy(cleanup);
    const s = await server();
    const client = s.server.store.create('no-proxy');
    const a = await startAgent({
      ...client,
      proxyUrl: s.publicUrl,
      toolUrl: 'http://127.0.0.1:9',
      env: { HTTP_PROXY: `http://127.0.0.1:${proxy.port}`, NO_PROXY: '127.0.0.1' },
    });
    cleanup.add(() => a.stop());
    expect(proxy.connects).toEqual([]);
  });

  it('reports a proxy that refuses CONNECT as the last error and keeps retrying', async () => {
    const refusing = createServer();
    refusing.on('connect', (_req, socket: Socket) => socket.end('HTTP/1.1 403 Forbidden\r\n\r\n'));
    const port = await listen(refusing);
    const s = await server();
    const client = s.server.store.create('refused');
    const a = await startAgent({
      ...client,
      proxyUrl: s.publicUrl,
      toolUrl: 'http://127.0.0.1:9',
      env: { HTTP_PROXY: `http://127.0.0.1:${port}` },
      waitReady: false,
    });
    cleanup.add(() => a.stop());
    const connector = a.agent.connectors[0]!;
    await waitUntil(() => connector.reconnects >= 2, 'two reconnect attempts');
    expect(connector.lastError).toContain('answered CONNECT with HTTP 403');
    expect(a.agent.ready).toBe(false);
  });

  it('carries wss through the proxy to a TLS server whose certificate is from a private CA the agent trusts', async () => {
    const pki = makeTestPki(cleanup);
    const toolPort = await listen(createServer((req, res) => res.end(`tool saw ${req.url}`)));
    const proxy = await startConnectProxy(cleanup);
    const s = await startServerProcess(cleanup, { env: { POSTERN_TLS_CERT: pki.server.cert, POSTERN_TLS_KEY: pki.server.key } });
    const dispatcher = trustingDispatcher(cleanup, pki.ca.cert);
    const admin = `https://localhost:${s.ingressPort}`;
    const created = await fetch(`${admin}/v1/clients`, {
      method: 'POST',
      headers: { authorization: `Bearer ${s.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'wss-via-proxy' }),
      dispatcher,
    });
    const creds = (await created.json()) as { clientId: string; clientToken: string };
    // A process of its own: NODE_EXTRA_CA_CERTS is read once, at start.
    const agent = await startAgentProcess(cleanup, s, creds, `http://127.0.0.1:${toolPort}`, {
      proxyUrl: `https://localhost:${s.port}`,
      env: { HTTPS_PROXY: `http://127.0.0.1:${proxy.port}`, NODE_EXTRA_CA_CERTS: pki.ca.cert, POSTERN_CONNECTIONS: '1' },
    });
    // The proxy was asked for the server by name, and what it relayed began with a TLS handshake
    // record (0x16), not an HTTP upgrade: it never sees the token.
    expect(proxy.connects).toEqual([`localhost:${s.port}`]);
    expect(proxy.firstBytes).toEqual([0x16]);
    const res = await fetch(`${admin}/t/${creds.clientId}/via/proxy?x=1`, { dispatcher });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('tool saw /via/proxy?x=1');
    expect(agent.lastLines()).not.toContain(creds.clientToken);
  });

  it('checks the certificate against an IP-address PROXY_URL through the proxy (not against "localhost")', async () => {
    const pki = makeTestPki(cleanup);
    const ipOnly = pki.ca.issue('ip-only', { ips: ['127.0.0.1'] });
    const toolPort = await listen(createServer((req, res) => res.end(`tool saw ${req.url}`)));
    const proxy = await startConnectProxy(cleanup);
    const s = await startServerProcess(cleanup, { env: { POSTERN_TLS_CERT: ipOnly.cert, POSTERN_TLS_KEY: ipOnly.key } });
    const dispatcher = trustingDispatcher(cleanup, pki.ca.cert);
    const admin = `https://127.0.0.1:${s.ingressPort}`;
    const created = await fetch(`${admin}/v1/clients`, {
      method: 'POST',
      headers: { authorization: `Bearer ${s.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'ip-cert-via-proxy' }),
      dispatcher,
    });
    const creds = (await created.json()) as { clientId: string; clientToken: string };
    await startAgentProcess(cleanup, s, creds, `http://127.0.0.1:${toolPort}`, {
      proxyUrl: `https://127.0.0.1:${s.port}`,
      env: { HTTPS_PROXY: `http://127.0.0.1:${proxy.port}`, NODE_EXTRA_CA_CERTS: pki.ca.cert, POSTERN_CONNECTIONS: '1' },
    });
    expect(proxy.connects).toEqual([`127.0.0.1:${s.port}`]);
    const res = await fetch(`${admin}/t/${creds.clientId}/by-ip`, { dispatcher });
    expect(await res.text()).toBe('tool saw /by-ip');
  });
});
