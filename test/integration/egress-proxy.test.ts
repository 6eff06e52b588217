import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Cleanup } from '../helpers/cleanup.js';
import { send } from '../helpers/http-client.js';
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

/** A minimal HTTP CONNECT proxy that records what it was asked for. */
async function startConnectProxy(): Promise<{ port: number; connects: string[]; auth: (string | undefined)[] }> {
  const connects: string[] = [];
  const auth: (string | undefined)[] = [];
  const sockets = new Set<Socket>();
  const proxy = createServer((_req, res) => res.writeHead(405).end());
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
  cleanup.add(() => {
    for (const s of sockets) s.destroy();
  });
  return { port: await listen(proxy), connects, auth };
}

async function server(): Promise<StartedServer> {
  const s = await startServer();
  cleanup.add(() => s.close(0));
  return s;
}

describe('egress proxy for the tunnel', () => {
  it('dials the server through an HTTP CONNECT proxy named by HTTP_PROXY, with its credentials', async () => {
    const toolPort = await listen(createServer((req, res) => res.end(`tool saw ${req.url}`)));
    const proxy = await startConnectProxy();
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
    const proxy = await startConnectProxy();
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
});
