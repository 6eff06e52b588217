import type { Agent as HttpAgent } from 'node:http';
import type { Logger } from 'pino';
import WebSocket from 'ws';
import { decodeFrame, encodeFrame } from '../protocol/codec.js';
import { CloseCodes, ErrorCodes } from '../protocol/error-codes.js';
import { FrameType, type HandshakeInfo, type RequestFrame } from '../protocol/frame-types.js';
import { Defaults, negotiate, PROTOCOL_VERSION } from '../protocol/handshake.js';
import { TunnelError } from '../protocol/tunnel-error.js';
import { TunnelSession } from '../protocol/tunnel-session.js';
import type { TunnelStream } from '../protocol/tunnel-stream.js';
import { WsTransport } from '../protocol/ws-transport.js';
import { CLIENT_ID_HEADER } from '../protocol/headers.js';
import { Backoff } from './backoff.js';
import { describeDialError, describeUpgradeRefusal } from './dial-failure.js';
import { settleWithin } from '../protocol/settle-within.js';

/**
 * Connector lifecycle:
 *
 *   idle ─start─▶ connecting ─open─▶ handshaking ─WELCOME─▶ connected
 *                    ▲   │                │                     │
 *                    │   └────────────────┴─── failure ─────────┤
 *                    └─────── timer ───── backoff ◀─────────────┘
 *   any ─drain─▶ draining ─streams done (or deadline)─▶ stopped
 *   any ─stop─▶ stopped
 */
export type ConnectorState = 'idle' | 'connecting' | 'handshaking' | 'connected' | 'backoff' | 'draining' | 'stopped';

const allowed: Record<ConnectorState, ConnectorState[]> = {
  idle: ['connecting', 'draining', 'stopped'],
  connecting: ['handshaking', 'backoff', 'draining', 'stopped'],
  handshaking: ['connected', 'backoff', 'draining', 'stopped'],
  connected: ['backoff', 'connecting', 'draining', 'stopped'],
  backoff: ['connecting', 'draining', 'stopped'],
  draining: ['stopped'],
  stopped: [],
};

export interface TunnelConnectorOptions {
  url: string;
  clientId: string;
  clientToken: string;
  software: string;
  heartbeatMs: number;
  maxStreams: number;
  reconnectBaseMs: number;
  reconnectMaxMs: number;
  logger: Logger;
  /** Dials through this agent (the egress proxy), when set. */
  agent?: HttpAgent;
  onStream: (stream: TunnelStream, head: RequestFrame) => void;
  /** Each measured round trip on the tunnel, in ms (metrics). */
  onRtt?: (rttMs: number) => void;
  /** Called on every state change (status, readiness). */
  onState?: (state: ConnectorState) => void;
  /** Injectable for tests. */
  random?: () => number;
}

/**
 * RFC 6455 masking protects plaintext intermediaries (caches) from crafted
 * client frames. Inside TLS (wss) no intermediary can read the frames, and
 * on loopback there is none; there a zero mask makes ws skip masking on
 * this side and unmasking on the server (measured: XOR in JavaScript was
 * ~6% of the agent's CPU on bulk transfers). Plain ws:// over a network, or
 * through an egress proxy, keeps real masks.
 */
export function maskingUseless(url: string, viaProxy: boolean): boolean {
  const u = new URL(url);
  if (u.protocol === 'wss:') return true;
  const host = u.hostname.replace(/^\[|\]$/g, '');
  return !viaProxy && (host === 'localhost' || host === '::1' || host.startsWith('127.'));
}

function zeroMask(mask: Buffer): void {
  mask.fill(0);
}

/** A connection lived this long counts as stable: the backoff starts over. */
const STABLE_MS = 10_000;
/** The server must answer HELLO within this. */
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** How long a drained tunnel's close handshake may take (it flushes what is still buffered). */
const CLOSE_GRACE_MS = 2_000;

/**
 * Keeps one tunnel to the server open, forever: dial, HELLO/WELCOME, serve
 * streams, and on any loss back off (full jitter) and dial again. On GOAWAY
 * the replacement is dialled at once and the old tunnel is kept until its
 * streams finish (make-before-break).
 */
export class TunnelConnector {
  state: ConnectorState = 'idle';
  session: TunnelSession | undefined;
  connectionId: string | undefined;
  connectedSince: Date | undefined;
  reconnects = 0;
  lastError: string | null = null;
  private ws: WebSocket | undefined;
  private readonly backoff: Backoff;
  private timer: NodeJS.Timeout | undefined;
  /** Floor of the next reconnect delay, from the server's retry-after. */
  private minDelayMs = 0;
  /** Old tunnels finishing their streams after a GOAWAY, with their sockets. */
  private readonly draining = new Map<TunnelSession, WebSocket>();

  constructor(private readonly opts: TunnelConnectorOptions) {
    this.backoff = new Backoff(opts.reconnectBaseMs, opts.reconnectMaxMs, opts.random);
  }

  start(): void {
    this.connect();
  }

  /** Stops reconnecting and closes the tunnel (streams in flight are reset). */
  stop(): void {
    if (this.state === 'stopped') return;
    this.move('stopped');
    clearTimeout(this.timer);
    this.session?.close(new TunnelError(ErrorCodes.GOING_AWAY, 'agent stopping'), CloseCodes.GOING_AWAY);
    for (const s of this.draining.keys()) s.close(new TunnelError(ErrorCodes.GOING_AWAY, 'agent stopping'), CloseCodes.GOING_AWAY);
    this.ws?.terminate();
  }

  /**
   * Leaves without failing a request: GOAWAY on every tunnel (the server
   * stops sending new streams here and acknowledges), the streams in flight
   * finish, each tunnel is closed with a close handshake (so the last bytes
   * reach the server), then stop(). After `timeoutMs` whatever is left is
   * cut off. Never reconnects.
   */
  async drain(timeoutMs: number): Promise<void> {
    if (this.state === 'stopped' || this.state === 'draining') return;
    const live = new Map(this.draining);
    if (this.session && this.ws && this.state === 'connected') live.set(this.session, this.ws);
    else this.ws?.terminate(); // a dial or handshake in progress carries no stream
    this.move('draining');
    clearTimeout(this.timer);
    this.opts.logger.info({ tunnels: live.size, timeoutMs }, 'draining: no new requests, finishing those in flight');
    for (const session of live.keys()) session.goaway(ErrorCodes.GOING_AWAY, 'agent is shutting down');
    const drained = await settleWithin(Promise.all([...live.keys()].map((s) => s.whenDrained())), timeoutMs);
    if (!drained) {
      const left = [...live.keys()].reduce((n, s) => n + s.activeStreams, 0);
      this.opts.logger.warn({ streams: left, timeoutMs }, 'drain deadline passed: cutting off the streams left');
    }
    await Promise.all([...live].map(([session, ws]) => closeGracefully(session, ws)));
    this.stop();
  }

  private move(next: ConnectorState): void {
    if (!allowed[this.state].includes(next)) {
      throw new TypeError(`illegal connector transition ${this.state} -> ${next}`);
    }
    this.state = next;
    this.opts.onState?.(next);
  }

  private connect(): void {
    if (this.state === 'stopped') return;
    this.move('connecting');
    const { opts } = this;
    const log = opts.logger;
    const ws = new WebSocket(opts.url, {
      headers: { authorization: `Bearer ${opts.clientToken}`, [CLIENT_ID_HEADER]: opts.clientId },
      perMessageDeflate: false,
      maxPayload: Defaults.maxFrameSize,
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
      ...(opts.agent ? { agent: opts.agent } : {}),
      ...(maskingUseless(opts.url, opts.agent !== undefined) ? { generateMask: zeroMask } : {}),
    });
    this.ws = ws;
    let session: TunnelSession | undefined;
    let connectedAt = 0;
    let failure: string | undefined;
    const local: HandshakeInfo = {
      v: PROTOCOL_VERSION,
      software: opts.software,
      maxStreams: opts.maxStreams,
      initialWindow: Defaults.initialWindow,
      maxFrameSize: Defaults.maxFrameSize,
      heartbeatMs: opts.heartbeatMs,
    };
    const transport = new WsTransport(ws);
    const handshakeTimer = setTimeout(() => {
      failure = 'server sent no WELCOME in time';
      ws.terminate();
    }, HANDSHAKE_TIMEOUT_MS);

    ws.on('unexpected-response', (_req, res) => {
      const retryAfter = res.headers['retry-after'];
      const refusal = describeUpgradeRefusal(res.statusCode ?? 0, typeof retryAfter === 'string' ? retryAfter : undefined);
      failure = refusal.message;
      this.minDelayMs = refusal.minDelayMs;
      res.resume();
      ws.terminate();
    });
    ws.on('open', () => {
      if (this.state !== 'connecting' || this.ws !== ws) return;
      this.move('handshaking');
      transport.send(encodeFrame({ type: FrameType.HELLO, ...local }));
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (session) {
        if (isBinary) {
          transport.received(data.byteLength);
          session.receive(data);
        }
        else session.close(new TunnelError(ErrorCodes.PROTOCOL, 'text message on the tunnel'), CloseCodes.TUNNEL_PROTOCOL_ERROR);
        return;
      }
      clearTimeout(handshakeTimer);
      try {
        const welcome = decodeFrame(data, local.maxFrameSize);
        if (welcome.type !== FrameType.WELCOME) throw new TunnelError(ErrorCodes.HANDSHAKE, 'first frame must be WELCOME');
        const limits = negotiate(local, welcome);
        session = new TunnelSession(transport, {
          role: 'agent',
          limits,
          localInitialWindow: local.initialWindow,
          localMaxStreams: local.maxStreams,
          localMaxFrameSize: local.maxFrameSize,
          onStream: opts.onStream,
          onRtt: opts.onRtt,
          onGoaway: () => this.handleGoaway(session!),
          onClose: (err) => {
            // A socket error seen first (e.g. 'Max payload size exceeded') says more than the close it causes.
            if (err) failure ??= err.message;
          },
        });
        this.session = session;
        this.connectionId = welcome.connectionId;
        this.connectedSince = new Date();
        connectedAt = Date.now();
        this.lastError = null;
        session.start();
        this.move('connected');
        log.info({ connectionId: welcome.connectionId, server: welcome.software }, 'tunnel connected');
      } catch (err) {
        failure = `handshake failed: ${(err as Error).message}`;
        ws.close(CloseCodes.HANDSHAKE_FAILED, 'handshake failed');
      }
    });
    ws.on('error', (err: Error) => {
      failure ??= describeDialError(err);
    });
    ws.on('close', (code: number, reason: Buffer) => {
      clearTimeout(handshakeTimer);
      session?.transportClosed(`code ${code}`);
      if (session && this.draining.delete(session)) return; // an old tunnel finished draining
      if (this.ws !== ws || this.state === 'stopped' || this.state === 'draining') return;
      const lost = this.connectionId;
      this.session = undefined;
      this.connectionId = undefined;
      this.connectedSince = undefined;
      const why = failure ?? `closed by server (code ${code}${reason.length ? `: ${reason.toString()}` : ''})`;
      this.lastError = why;
      if (connectedAt && Date.now() - connectedAt >= STABLE_MS) this.backoff.reset();
      this.scheduleReconnect(why, lost);
    });
  }

  /** `lost`: the connection id of the tunnel that went down (none when a dial failed). */
  private scheduleReconnect(why: string, lost?: string): void {
    // A server's retry-after (a 429 after failed logins) is a floor: dialling
    // sooner only extends the block.
    const delay = Math.max(this.backoff.next(), this.minDelayMs);
    this.minDelayMs = 0;
    this.reconnects++;
    this.move('backoff');
    this.opts.logger.warn({ connectionId: lost, reason: why, retryInMs: delay, attempt: this.backoff.attempts }, 'tunnel down, reconnecting');
    this.timer = setTimeout(() => this.connect(), delay);
  }

  /**
   * The server is draining this tunnel: dial the replacement now and let the
   * old one finish its streams, then close it.
   */
  private handleGoaway(old: TunnelSession): void {
    // While we drain ourselves, the server's GOAWAY is its acknowledgement.
    if (this.session !== old || this.state !== 'connected' || !this.ws) return;
    this.opts.logger.info({ connectionId: this.connectionId }, 'server sent GOAWAY: opening a replacement tunnel');
    const oldWs = this.ws;
    this.draining.set(old, oldWs);
    this.session = undefined;
    this.ws = undefined;
    this.reconnects++;
    this.connect();
    void old.whenDrained().then(() => old.close(undefined, CloseCodes.NORMAL));
  }
}

/** Closes a drained tunnel with a close handshake and resolves when the socket is closed (or after CLOSE_GRACE_MS). */
function closeGracefully(session: TunnelSession, ws: WebSocket): Promise<void> {
  return new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) return resolve();
    const timer = setTimeout(() => {
      ws.terminate();
      resolve();
    }, CLOSE_GRACE_MS);
    ws.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    session.close(undefined, CloseCodes.NORMAL);
  });
}
