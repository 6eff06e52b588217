import { createServer } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import type { Cleanup } from './cleanup.js';

/** What a test CONNECT proxy saw. */
export interface ConnectProxy {
  port: number;
  /** The `host:port` of every CONNECT, in order (refused ones too). */
  connects: string[];
  /** The Proxy-Authorization header of every CONNECT. */
  auth: (string | undefined)[];
  /** CONNECTs let through (credentials accepted). */
  authorized: number;
  /** First byte the client sent through each tunnel (0x16: a TLS handshake). */
  firstBytes: number[];
}

/**
 * A minimal HTTP CONNECT proxy on 127.0.0.1, as corporate egress proxies
 * are: with `credentials`, a CONNECT without the matching Basic
 * Proxy-Authorization gets 407.
 */
export async function startConnectProxy(cleanup: Cleanup, credentials?: { user: string; password: string }): Promise<ConnectProxy> {
  const expected = credentials ? `Basic ${Buffer.from(`${credentials.user}:${credentials.password}`).toString('base64')}` : undefined;
  const state: ConnectProxy = { port: 0, connects: [], auth: [], authorized: 0, firstBytes: [] };
  const sockets = new Set<Socket>();
  const proxy = createServer((_req, res) => res.writeHead(405).end());
  proxy.on('connect', (req, client: Socket, head: Buffer) => {
    sockets.add(client);
    client.on('error', () => {});
    state.connects.push(req.url ?? '');
    state.auth.push(req.headers['proxy-authorization']);
    if (expected !== undefined && req.headers['proxy-authorization'] !== expected) {
      client.end('HTTP/1.1 407 Proxy Authentication Required\r\nproxy-authenticate: Basic\r\n\r\n');
      return;
    }
    state.authorized++;
    const [host, port] = (req.url ?? '').split(':');
    const upstream = connect(Number(port), host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) upstream.write(head);
      client.once('data', (d: Buffer) => state.firstBytes.push(head.length ? head[0]! : d[0]!));
      upstream.pipe(client);
      client.pipe(upstream);
    });
    sockets.add(upstream);
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  cleanup.add(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => proxy.close(() => r()));
  });
  state.port = (proxy.address() as AddressInfo).port;
  return state;
}
