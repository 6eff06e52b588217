import type { ClientRequestArgs } from 'node:http';
import { isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { Duplex } from 'node:stream';
import { ConfigError } from '../protocol/tunnel-error.js';

// getBuiltinModule, not an ESM import: importing node:http as ESM evaluates
// its lazy `WebSocket` getter, which loads Node's bundled undici (~13 MiB).
const { Agent, request } = process.getBuiltinModule('node:http');

/**
 * The corporate egress proxy for the tunnel, from HTTPS_PROXY / HTTP_PROXY
 * (or their lower-case forms) unless NO_PROXY covers the server. NO_PROXY
 * entries are host names or domain suffixes (`.corp`, `corp`), optionally
 * with `:port`, or `*` for everything.
 */
export function proxyFor(target: URL, env: NodeJS.ProcessEnv): URL | undefined {
  const secure = target.protocol === 'wss:' || target.protocol === 'https:';
  const raw = secure
    ? (env.HTTPS_PROXY ?? env.https_proxy ?? env.HTTP_PROXY ?? env.http_proxy)
    : (env.HTTP_PROXY ?? env.http_proxy);
  if (!raw) return undefined;
  if (noProxyMatches(target, env.NO_PROXY ?? env.no_proxy ?? '')) return undefined;
  const name = secure ? 'HTTPS_PROXY' : 'HTTP_PROXY';
  let url: URL;
  try {
    url = new URL(raw.includes('://') ? raw : `http://${raw}`);
  } catch {
    throw new ConfigError(name, 'is not a URL; expected http://proxy.example:3128');
  }
  if (url.protocol !== 'http:') {
    // Silently dialling direct would surprise whoever set the proxy.
    throw new ConfigError(name, `scheme ${url.protocol} is not supported; use an HTTP CONNECT proxy (http://host:port)`);
  }
  return url;
}

export function noProxyMatches(target: URL, noProxy: string): boolean {
  const host = target.hostname.toLowerCase().replace(/^\[|\]$/g, '');
  const port = target.port || (target.protocol === 'wss:' || target.protocol === 'https:' ? '443' : '80');
  for (const entry of noProxy.split(/[\s,]+/)) {
    if (!entry) continue;
    if (entry === '*') return true;
    const [name = '', entryPort] = entry.toLowerCase().split(/:(?=\d+$)/);
    if (entryPort && entryPort !== port) continue;
    const suffix = name.replace(/^\*?\.?/, '');
    if (host === suffix || host.endsWith(`.${suffix}`)) return true;
  }
  return false;
}

/**
 * An http.Agent that reaches its target through an HTTP CONNECT proxy and,
 * for wss, runs TLS to the server inside the tunnel (the proxy sees only the
 * host name and port, never the traffic or the token).
 */
export class ConnectProxyAgent extends Agent {
  constructor(
    private readonly proxy: URL,
    private readonly secure: boolean,
  ) {
    super({ keepAlive: false });
    // http.request refuses an agent whose protocol differs from the URL's.
    (this as unknown as { protocol: string }).protocol = secure ? 'https:' : 'http:';
  }

  override createConnection(
    options: ClientRequestArgs & { servername?: string },
    cb?: (err: Error | null, stream: Duplex) => void,
  ): Duplex | null | undefined {
    const fail = (err: Error): void => cb?.(err, undefined as unknown as Duplex);
    const host = options.hostname ?? options.host ?? 'localhost';
    const port = Number(options.port ?? (this.secure ? 443 : 80));
    const authority = `${host.includes(':') ? `[${host}]` : host}:${port}`;
    const headers: Record<string, string> = { host: authority };
    if (this.proxy.username) {
      const cred = `${decodeURIComponent(this.proxy.username)}:${decodeURIComponent(this.proxy.password)}`;
      headers['proxy-authorization'] = `Basic ${Buffer.from(cred).toString('base64')}`;
    }
    const req = request({
      host: this.proxy.hostname,
      port: Number(this.proxy.port || 80),
      method: 'CONNECT',
      path: authority,
      headers,
      agent: false,
    });
    req.once('connect', (res, socket: Socket) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        fail(new Error(`egress proxy ${this.proxy.host} answered CONNECT with HTTP ${res.statusCode}`));
        return;
      }
      if (!this.secure) {
        cb?.(null, socket);
        return;
      }
      // `host` is what the certificate must name (an IP address too); SNI
      // carries host names only. Without `host`, Node checks the certificate
      // against "localhost".
      const tls = tlsConnect({
        socket,
        host,
        ...(isIP(host) ? {} : { servername: options.servername ?? host }),
        ALPNProtocols: ['http/1.1'],
      });
      cb?.(null, tls);
    });
    req.once('error', (err) => fail(new Error(`egress proxy ${this.proxy.host} unreachable: ${err.message}`)));
    req.end();
    // The socket arrives through the callback (http.Agent supports that).
    return undefined;
  }
}
