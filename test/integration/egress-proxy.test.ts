import { mkdtempSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadAgentConfig } from '../../agent/agent-config.js';
import { PosternAgent } from '../../agent/postern-agent.js';
import { buildServer, type PosternServer } from '../../server/postern-server.js';
import { loadServerConfig } from '../../server/server-config.js';

const silent = pino({ level: 'silent' });
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function listen(server: Server): Promise<number> {
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r((server.address() as AddressInfo).port)));
}

/** A minimal HTTP CONNECT proxy that records the authorities it was asked for. */
async function startConnectProxy(): Promise<{ port: number; connects: string[]; auth: (string | undefined)[] }> {
  const connects: string[] = [];
  const auth: (string | undefined)[] = [];
  const proxy = createServer((_req, res) => res.writeHead(405).end());
  const sockets = new Set<Socket>();
  proxy.on('connect', (req, client: Socket, head: Buffer) => {
    connects.push(req.url ?? '');
    auth.push(req.headers['proxy-authorization']);
    const [host, port] = (req.url ?? '').split(':');
    const upstream = connect(Number(port), host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    sockets.add(upstream).add(client);
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  const port = await listen(proxy);
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        proxy.close(() => r());
      }),
  );
  return { port, connects, auth };
}

async function startTunnelServer(): Promise<PosternServer> {
  const server = buildServer(
    loadServerConfig({
      POSTERN_HOST: '127.0.0.1',
      POSTERN_PORT: '0',
      POSTERN_INGRESS_PORT: '0',
      POSTERN_DATA_DIR: mkdtempSync(join(tmpdir(), 'postern-proxy-')),
      POSTERN_ADMIN_TOKEN: 'admin',
    }),
    { logger: silent },
  );
  await server.listen();
  cleanups.push(() => server.close(0));
  return server;
}

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    httpRequest(url, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    })
      .on('error', reject)
      .end();
  });
}

describe('egress proxy for the tunnel', () => {
  it('dials the server through an HTTP CONNECT proxy named by HTTP_PROXY, with its credentials', async () => {
    const tool = createServer((req, res) => res.end(`tool saw ${req.url}`));
    const toolPort = await listen(tool);
    cleanups.push(() => new Promise<void>((r) => tool.close(() => r())));
    const proxy = await startConnectProxy();
    const server = await startTunnelServer();
    const client = server.store.create('via-proxy');
    const agent = new PosternAgent(
      loadAgentConfig({
        CLIENT_ID: client.clientId,
        CLIENT_TOKEN: client.clientToken,
        PROXY_URL: `http://127.0.0.1:${server.port}`,
        TOOL_URL: `http://127.0.0.1:${toolPort}`,
        HTTP_PROXY: `http://user:p%40ss@127.0.0.1:${proxy.port}`,
      }),
      silent,
    );
    cleanups.push(() => agent.stop());
    await agent.start();
    await agent.waitUntilReady();
    expect(proxy.connects).toEqual([`127.0.0.1:${server.port}`]);
    expect(proxy.auth[0]).toBe(`Basic ${Buffer.from('user:p@ss').toString('base64')}`);
    const res = await get(`http://127.0.0.1:${server.ingressPort}/t/${client.clientId}/x?y=1`);
    expect(res).toEqual({ status: 200, body: 'tool saw /x?y=1' });
  });

  it('goes direct when NO_PROXY names the server', async () => {
    const proxy = await startConnectProxy();
    const server = await startTunnelServer();
    const client = server.store.create('no-proxy');
    const agent = new PosternAgent(
      loadAgentConfig({
        CLIENT_ID: client.clientId,
        CLIENT_TOKEN: client.clientToken,
        PROXY_URL: `http://127.0.0.1:${server.port}`,
        TOOL_URL: 'http://127.0.0.1:9',
        HTTP_PROXY: `http://127.0.0.1:${proxy.port}`,
        NO_PROXY: '127.0.0.1',
      }),
      silent,
    );
    cleanups.push(() => agent.stop());
    await agent.start();
    await agent.waitUntilReady();
    expect(proxy.connects).toEqual([]);
  });

  it('reports a proxy that refuses CONNECT as the last error and keeps retrying', async () => {
    const refusing = createServer();
    refusing.on('connect', (_req, socket: Socket) => socket.end('HTTP/1.1 403 Forbidden\r\n\r\n'));
    const port = await listen(refusing);
    cleanups.push(() => new Promise<void>((r) => refusing.close(() => r())));
    const server = await startTunnelServer();
    const client = server.store.create('refused');
    const agent = new PosternAgent(
      loadAgentConfig({
        CLIENT_ID: client.clientId,
        CLIENT_TOKEN: client.clientToken,
        PROXY_URL: `http://127.0.0.1:${server.port}`,
        TOOL_URL: 'http://127.0.0.1:9',
        HTTP_PROXY: `http://127.0.0.1:${port}`,
        POSTERN_RECONNECT_BASE_MS: '20',
        POSTERN_RECONNECT_MAX_MS: '50',
      }),
      silent,
    );
    cleanups.push(() => agent.stop());
    await agent.start();
    const deadline = Date.now() + 5000;
    while (agent.connectors[0]!.reconnects < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(agent.connectors[0]!.reconnects).toBeGreaterThanOrEqual(2);
    expect(agent.connectors[0]!.lastError).toContain('answered CONNECT with HTTP 403');
    expect(agent.ready).toBe(false);
  });
});
