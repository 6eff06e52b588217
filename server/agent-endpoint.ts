import type {} from '@fastify/websocket';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { nanoid } from 'nanoid';
import type { WebSocket } from 'ws';
import { decodeFrame, encodeFrame } from '../protocol/codec.js';
import { CloseCodes, ErrorCodes } from '../protocol/error-codes.js';
import { FrameType, type HandshakeInfo } from '../protocol/frame-types.js';
import { Defaults, negotiate, PROTOCOL_VERSION } from '../protocol/handshake.js';
import { CLIENT_ID_HEADER } from '../protocol/headers.js';
import { TunnelError } from '../protocol/tunnel-error.js';
import { TunnelSession } from '../protocol/tunnel-session.js';
import { WsTransport } from '../protocol/ws-transport.js';
import type { AgentConnection } from './agent-connection.js';
import type { AuthGuard } from './auth-guard.js';
import type { ClientStore } from './client-store.js';
import { errorBody } from './http-errors.js';
import type { ServerConfig } from './server-config.js';
import type { ServerMetrics } from './server-metrics.js';
import type { TunnelRegistry } from './tunnel-registry.js';
import { SOFTWARE } from '../protocol/version.js';

export interface AgentEndpointOptions {
  config: ServerConfig;
  store: ClientStore;
  registry: TunnelRegistry;
  /** True while the server drains: new tunnels are refused (503) so agents dial another replica. */
  draining: () => boolean;
  /** Rate-limits failed authentications per source address. */
  guard: AuthGuard;
  metrics?: ServerMetrics;
}


/**
 * `GET /v1/tunnel`: the agent's WebSocket. Credentials are checked in
 * preValidation, before the upgrade, so a refused agent gets a plain 401 and
 * no tunnel ever exists for it. Then: HELLO within handshakeTimeoutMs,
 * WELCOME back, and the connection joins the registry.
 */
async function agentEndpoint(app: FastifyInstance, opts: AgentEndpointOptions): Promise<void> {
  const { config, store, registry, metrics } = opts;

  const authenticate = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (opts.draining()) {
      await reply
        .code(503)
        .header('retry-after', '1')
        .send(errorBody(ErrorCodes.SERVER_DRAINING, req.id));
      return;
    }
    if (await opts.guard.refuseIfBlocked(req, reply)) return;
    const clientId = req.headers[CLIENT_ID_HEADER];
    const auth = req.headers.authorization;
    const token = typeof auth === 'string' && auth.startsWith('Bearer ') ? auth.slice(7) : '';
    if (typeof clientId !== 'string' || !token || !store.verify(clientId, token)) {
      // The id is the caller's own text: logged short, never the token.
      opts.guard.failed(req, 'agent refused: bad credentials', {
        clientId: typeof clientId === 'string' ? clientId.slice(0, 64) : undefined,
      });
      await reply
        .code(401)
        .header('connection', 'close')
        .send(errorBody(ErrorCodes.UNAUTHORIZED, req.id, 'unknown client id or wrong token'));
    }
  };

  app.get('/v1/tunnel', { websocket: true, preValidation: authenticate }, (socket: WebSocket, req) => {
    const clientId = req.headers[CLIENT_ID_HEADER] as string;
    const connectionId = nanoid(12);
    const log = req.log.child({ clientId, connectionId });
    const local: HandshakeInfo = {
      v: PROTOCOL_VERSION,
      software: SOFTWARE,
      maxStreams: Defaults.maxStreams,
      initialWindow: Defaults.initialWindow,
      maxFrameSize: config.maxFrameSize,
      heartbeatMs: config.heartbeatMs,
    };
    let session: TunnelSession | undefined;
    let conn: AgentConnection | undefined;
    const transport = new WsTransport(socket);

    const handshakeTimer = setTimeout(() => {
      metrics?.handshakeFailed();
      log.warn({ timeoutMs: config.handshakeTimeoutMs }, 'agent sent no HELLO in time');
      socket.close(CloseCodes.HANDSHAKE_FAILED, 'handshake timeout');
      // A peer that sends nothing will not answer the close either: free
      // the socket soon instead of after ws's 30 s close timeout.
      setTimeout(() => socket.terminate(), 1_000).unref();
    }, config.handshakeTimeoutMs);

    socket.on('message', (data: Buffer, isBinary: boolean) => {
      if (session) {
        if (!isBinary) {
          session.close(new TunnelError(ErrorCodes.PROTOCOL, 'text message on the tunnel'), CloseCodes.TUNNEL_PROTOCOL_ERROR);
          return;
        }
        transport.received(data.byteLength);
        session.receive(data);
        return;
      }
      clearTimeout(handshakeTimer);
      try {
        const hello = decodeFrame(data, config.maxFrameSize);
        if (hello.type !== FrameType.HELLO) throw new TunnelError(ErrorCodes.HANDSHAKE, 'first frame must be HELLO');
        const limits = negotiate(local, hello);
        transport.send(encodeFrame({ type: FrameType.WELCOME, ...local, connectionId }));
        session = new TunnelSession(transport, {
          role: 'server',
          limits,
          localInitialWindow: local.initialWindow,
          localMaxStreams: local.maxStreams,
          localMaxFrameSize: config.maxFrameSize,
          onRtt: metrics ? (ms) => metrics.rttSample(ms) : undefined,
          onClose: (err) => {
            if (conn) registry.remove(conn);
            metrics?.connectionClosed(err?.info);
            // Abuse and protocol breaches stand out at warn; ordinary goodbyes stay at info.
            const abuse = err?.info === ErrorCodes.FLOOD || err?.info === ErrorCodes.PROTOCOL;
            log[abuse ? 'warn' : 'info']({ reason: err?.message, code: err?.code, error: err?.info.error }, 'agent disconnected');
          },
          onGoaway: (frame) => {
            // An acknowledgement of our own GOAWAY is routine; an agent's own is worth a line.
            if (frame.message !== 'acknowledged') log.info({ message: frame.message }, 'agent is draining this tunnel');
          },
        });
        conn = {
          id: connectionId,
          clientId,
          session,
          remoteAddress: req.ip,
          agentVersion: hello.software,
          connectedAt: new Date().toISOString(),
          lastPick: 0,
          close: (code, reason) => session?.close(new TunnelError(ErrorCodes.UNAUTHORIZED, reason), code),
        };
        session.start();
        registry.add(conn);
        metrics?.connectionOpened();
        log.info({ remote: req.ip, agentVersion: hello.software }, 'agent connected');
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        metrics?.handshakeFailed();
        log.warn({ err: message }, 'agent handshake failed');
        socket.close(CloseCodes.HANDSHAKE_FAILED, message.slice(0, 120));
      }
    });
    socket.on('close', (code: number) => {
      clearTimeout(handshakeTimer);
      session?.transportClosed(`websocket closed with code ${code}`);
    });
    // ws names the limit it enforced (e.g. 'Max payload size exceeded'); the log adds its value.
    socket.on('error', (err: Error) => {
      log.warn({ err: err.message, maxFrameSize: config.maxFrameSize }, 'tunnel socket error');
      // The tunnel is unusable now (ws closes it): fail its streams and take
      // it out of the registry at once, not when the peer finally goes quiet.
      session?.transportClosed(`socket error: ${err.message}`);
      socket.terminate();
    });
  });
}

export default fp(agentEndpoint, { name: 'postern-agent-endpoint' });
