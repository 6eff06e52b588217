import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http';
import type { TlsMaterial } from './tls-material.js';

// getBuiltinModule, not an ESM import: importing node:http as ESM evaluates
// its lazy `WebSocket` getter, which loads Node's bundled undici (~13 MiB).
const http = process.getBuiltinModule('node:http');
const https = process.getBuiltinModule('node:https');

/** Node's default is 5 s; load balancers commonly idle out at 60 s: stay above. */
const KEEP_ALIVE_TIMEOUT_MS = 72_000;

export interface ListenerOptions {
  /** Serve HTTPS with this certificate; plain HTTP when undefined. */
  tls: TlsMaterial | undefined;
  /** Largest request head (431 above). Node's default (16 KiB) when undefined. */
  maxHeaderSize?: number;
  /**
   * Time to receive a request head, from the connection's accept (first
   * request) or the first byte of a request (later ones on a kept-alive
   * connection); also the TLS handshake's limit. Slowloris: a client that
   * trickles its head or sends nothing is cut off after this.
   */
  headersTimeoutMs: number;
  /**
   * Time to receive a whole request, body included; 0 = no limit. Only safe
   * where no legitimate request has a long body (see createListener).
   */
  requestTimeoutMs: number;
}

/**
 * An HTTP or HTTPS server with Postern's connection time limits. Node checks
 * `headersTimeout` and `requestTimeout` every `connectionsCheckingInterval`
 * (30 s by default, which would let a silent connection live 30 s past a
 * short limit): checked four times per limit here, at most every 5 s, so a
 * connection is cut within 1.25× the limit. What runs the check is cheap (a
 * walk of the connections still receiving a head or a body).
 *
 * A timed-out connection reaches the server's `clientError` listeners as
 * ERR_HTTP_REQUEST_TIMEOUT, or ERR_TLS_HANDSHAKE_TIMEOUT for a TLS
 * handshake that did not finish in time (an HTTPS server passes its TLS
 * errors to `clientError` too); the listener logs it and closes the socket.
 *
 * No per-connection idle timeout (`server.timeout`) is set: it would count
 * silence while a request is in flight, and the ingress legitimately waits
 * minutes for a slow tool; the ingress's own response and stream-idle
 * timeouts cover those. Between requests, `keepAliveTimeout` closes idle
 * connections; upgraded WebSocket connections are the tunnels' own (`ws`
 * clears the socket timeout, heartbeats find dead peers).
 */
export function createListener(
  opts: ListenerOptions,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Server {
  const checkEveryMs = Math.min(5_000, Math.max(25, Math.floor(opts.headersTimeoutMs / 4)));
  const common = {
    ...(opts.maxHeaderSize !== undefined ? { maxHeaderSize: opts.maxHeaderSize } : {}),
    headersTimeout: opts.headersTimeoutMs,
    // Node refuses a requestTimeout below headersTimeout (0 means none).
    requestTimeout: opts.requestTimeoutMs === 0 ? 0 : Math.max(opts.requestTimeoutMs, opts.headersTimeoutMs),
    connectionsCheckingInterval: checkEveryMs,
  };
  const server: Server = opts.tls
    ? https.createServer(
        { ...common, cert: opts.tls.cert, key: opts.tls.key, handshakeTimeout: opts.headersTimeoutMs },
        handler as RequestListener,
      )
    : http.createServer(common, handler as RequestListener);
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  return server;
}
