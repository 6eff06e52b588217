import { decodeFrame, encodeDataFrame, encodeFrame } from './codec.js';
import { CloseCodes, ErrorCodes, errorCodeFromWire, type ErrorCodeInfo } from './error-codes.js';
import {
  FrameType,
  type Frame,
  type GoawayFrame,
  type HeaderList,
  type RequestFrame,
  type ResponseFrame,
} from './frame-types.js';
import { ReceiveWindow, WindowBudget } from './flow-window.js';
import { AnswerBacklog, DEFAULT_FLOOD_LIMITS, FrameBudget, type FloodLimits, type IdleFrameKind } from './frame-budget.js';
import { Defaults, type NegotiatedLimits } from './handshake.js';
import { RttEstimator } from './rtt-estimator.js';
import { canReceiveData } from './stream-state.js';
import { ProtocolError, TunnelError } from './tunnel-error.js';
import { TunnelStream, type StreamHost } from './tunnel-stream.js';

/**
 * What a session needs from the connection under it. A WebSocket adapter
 * implements it (see ws-transport.ts); tests use an in-memory pair.
 */
export interface FrameTransport {
  /**
   * Sends one binary message. `urgent` frames (credit, pongs, resets) may
   * not be held back to batch writes: a peer may be stalled waiting on them.
   */
  send(bytes: Uint8Array, urgent?: boolean): void;
  /** Bytes handed to send() that the OS has not taken yet. */
  readonly bufferedAmount: number;
  /** Runs `cb` once, when the transport can take more (socket drained). */
  onceDrained(cb: () => void): void;
  close(code: number, reason: string): void;
  /**
   * Drops the connection at once, without a close handshake: used when the
   * peer is unreachable (heartbeat timeout), where waiting for its close
   * frame would only delay the reconnect.
   */
  abort(code: number, reason: string): void;
}

/** Timers and clock, injectable so heartbeat tests need no real time. */
export interface SessionClock {
  now(): number;
  setInterval(cb: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

export const systemClock: SessionClock = {
  now: () => performance.now(),
  setInterval: (cb, ms) => {
    const t = setInterval(cb, ms);
    t.unref();
    return t;
  },
  clearInterval: (h) => clearInterval(h as NodeJS.Timeout),
};

export interface TunnelSessionOptions {
  /** The server opens odd stream ids, the agent even ones. */
  role: 'server' | 'agent';
  limits: NegotiatedLimits;
  /** What we told the peer: our per-stream window and our stream limit. */
  localInitialWindow: number;
  localMaxStreams: number;
  /** Largest frame we accept. */
  localMaxFrameSize: number;
  /** Largest window a stream may grow to. Default Defaults.maxWindow. */
  maxWindow?: number;
  /** Bytes all streams' windows may grow into together. Default 64 MiB. */
  windowBudget?: number;
  /** Largest DATA payload per frame. Default 64 KiB. */
  maxDataFrame?: number;
  /**
   * Data is scheduled only while the transport buffers less than this. Keeps
   * control frames (pings, window updates, resets) at most this far behind
   * data. Default 256 KiB.
   */
  sendHighWaterMark?: number;
  /** Limits on frames that do no work and on unread answers. Default DEFAULT_FLOOD_LIMITS. */
  flood?: Partial<FloodLimits>;
  clock?: SessionClock;
  /** A new stream opened by the peer (agent side: an incoming request). */
  onStream?: (stream: TunnelStream, head: RequestFrame) => void;
  /** The peer sent GOAWAY. */
  onGoaway?: (frame: GoawayFrame) => void;
  /** The session ended; `err` says why unless it was a clean close. */
  onClose?: (err: TunnelError | undefined) => void;
  /** Each measured round trip of our PINGs (heartbeats and probes), in ms: for metrics. */
  onRtt?: ((rttMs: number) => void) | undefined;
}

/** Frames a peer may be blocked on: never held back for write batching. */
const URGENT: Partial<Record<number, boolean>> = {
  [FrameType.WINDOW_UPDATE]: true,
  [FrameType.PING]: true,
  [FrameType.PONG]: true,
  [FrameType.RESET]: true,
  [FrameType.GOAWAY]: true,
};

/** How many ids of streams we reset to remember, to ignore their late frames. */
const RECENT_RESETS = 1024;

/**
 * While we are receiving data, a PING rides along with a WINDOW_UPDATE at
 * most this often: its PONG comes back behind the data in flight, so the
 * round trip measures the queue that flow control keeps short.
 */
const PROBE_INTERVAL_MS = 10;

/**
 * One multiplexed tunnel over one transport: stream table, flow control,
 * fair scheduling of DATA, heartbeats, goaway.
 *
 * Sending: control frames (heads, RESET, WINDOW_UPDATE, PING/PONG, GOAWAY)
 * go straight to the transport. DATA waits in its stream's queue and is sent
 * by `flush`, round-robin over the streams that have both data and credit,
 * one frame per stream per turn, only while the transport's buffer is under
 * the high-water mark. So a 1 GiB download never delays a ping or another
 * stream's small response by more than a high-water mark's worth of bytes.
 */
export class TunnelSession implements StreamHost {
  readonly role: 'server' | 'agent';
  private readonly transport: FrameTransport;
  private readonly limits: NegotiatedLimits;
  private readonly opts: TunnelSessionOptions;
  private readonly clock: SessionClock;
  private readonly budget: WindowBudget;
  private readonly maxWindow: number;
  private readonly maxDataFrame: number;
  private readonly highWaterMark: number;
  readonly streams = new Map<number, TunnelStream>();
  private readonly ready: TunnelStream[] = [];
  private readonly recentResets = new Set<number>();
  private nextLocalId: number;
  private lastPeerId = 0;
  /** Streams we opened that are not closed yet (checked per openStream, so counted, not scanned). */
  private localOpen = 0;
  private waitingForDrain = false;
  private flushing = false;
  private heartbeat: unknown;
  private pingId = 0;
  private pingSentAt = 0;
  private pingOutstanding = false;
  private lastReceivedAt: number;
  private readonly rtt = new RttEstimator();
  private readonly idleFrames: FrameBudget;
  private readonly answers: AnswerBacklog;
  private answersDrainArmed = false;
  private closedWith: { err: TunnelError | undefined } | undefined;
  /**
   * True once either side sent GOAWAY: no new local streams. A received
   * GOAWAY is always answered with ours, so this is "we sent one".
   */
  get goingAway(): boolean {
    return this.sentGoaway;
  }
  /** We sent GOAWAY (draining, or acknowledging the peer's). */
  private sentGoaway = false;
  /** The peer sent GOAWAY: it opens no more streams. */
  private receivedGoaway = false;
  private drainWaiters: (() => void)[] = [];
  /** Totals for status. */
  bytesIn = 0;
  bytesOut = 0;
  streamsOpened = 0;

  constructor(transport: FrameTransport, opts: TunnelSessionOptions) {
    this.transport = transport;
    this.opts = opts;
    this.role = opts.role;
    this.limits = opts.limits;
    this.clock = opts.clock ?? systemClock;
    this.maxWindow = Math.max(opts.maxWindow ?? Defaults.maxWindow, opts.localInitialWindow);
    this.budget = new WindowBudget(opts.windowBudget ?? 64 * 1024 * 1024);
    this.maxDataFrame = Math.min(opts.maxDataFrame ?? Defaults.maxDataFrame, this.limits.sendMaxFrameSize - 64);
    this.highWaterMark = opts.sendHighWaterMark ?? 256 * 1024;
    this.nextLocalId = opts.role === 'server' ? 1 : 2;
    this.lastReceivedAt = this.clock.now();
    const flood = { ...DEFAULT_FLOOD_LIMITS, ...opts.flood };
    this.idleFrames = new FrameBudget(flood.idleFrameBurst, flood.idleFramesPerSecond, this.lastReceivedAt);
    this.answers = new AnswerBacklog(flood.maxQueuedAnswers);
  }

  get closed(): boolean {
    return this.closedWith !== undefined;
  }

  /** Streams currently open. */
  get activeStreams(): number {
    return this.streams.size;
  }

  /**
   * Starts heartbeats: a PING every half interval; the connection is
   * declared dead when nothing at all arrived for 1.5 intervals, checked
   * every quarter interval, so a frozen peer is found in under two
   * intervals. Pinging twice per interval lets an idle tunnel ride out a
   * stall of up to one interval (a PING a whole interval apart would leave
   * only half an interval of slack before the 1.5 limit).
   */
  start(): void {
    const every = this.limits.heartbeatMs;
    this.sendPing();
    let ticks = 0;
    this.heartbeat = this.clock.setInterval(() => {
      const silent = this.clock.now() - this.lastReceivedAt;
      if (silent >= every * 1.5) {
        const err = new TunnelError(ErrorCodes.HEARTBEAT_TIMEOUT, `no frame from the peer for ${Math.round(silent)} ms`);
        this.finish(err);
        this.transport.abort(CloseCodes.HEARTBEAT_TIMEOUT, err.message);
        return;
      }
      if (++ticks % 2 === 0) this.sendPing();
    }, every / 4);
  }

  /** Opens a stream to the peer with a request head (server side). */
  openStream(method: string, path: string, headers: HeaderList, endStream: boolean): TunnelStream {
    if (this.closedWith) throw new TunnelError(ErrorCodes.TUNNEL_LOST, 'tunnel is closed');
    if (this.goingAway) throw new TunnelError(ErrorCodes.GOING_AWAY);
    if (this.localOpen >= this.limits.peerMaxStreams) {
      throw new TunnelError(ErrorCodes.TOO_MANY_STREAMS, `the agent accepts ${this.limits.peerMaxStreams} streams at once`);
    }
    const id = this.nextLocalId;
    this.nextLocalId += 2;
    const stream = this.createStream(id);
    this.localOpen++;
    this.streamsOpened++;
    this.sendFrame({ type: FrameType.REQUEST, streamId: id, method, path, headers, endStream });
    if (endStream) stream.move('send-end');
    return stream;
  }

  /**
   * Sends GOAWAY: neither side opens new streams here any more, and the
   * agent dials a replacement. Streams the peer opened before it saw this
   * are still served: the peer answers with its own GOAWAY, and frames are
   * ordered, so once that arrives no further stream can (see whenDrained).
   */
  goaway(info: ErrorCodeInfo = ErrorCodes.GOING_AWAY, message = 'server is draining'): void {
    if (this.closedWith || this.sentGoaway) return;
    this.sentGoaway = true;
    this.sendFrame({ type: FrameType.GOAWAY, lastStreamId: this.lastPeerId, code: info.wire, message });
    this.checkDrained();
  }

  /**
   * True when GOAWAY went both ways and no stream is open: nothing more can
   * happen on this session, so closing it loses nothing.
   */
  get drained(): boolean {
    return this.sentGoaway && this.receivedGoaway && this.streams.size === 0;
  }

  /** Resolves once the session is drained (see `drained`) or closed. */
  whenDrained(): Promise<void> {
    if (this.closedWith || this.drained) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private checkDrained(): void {
    if (this.drainWaiters.length === 0 || !(this.closedWith || this.drained)) return;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const wake of waiters) wake();
  }

  /**
   * Feeds one received message. Protocol errors and floods close this
   * session only. Nothing is thrown to the caller: an unexpected error (a
   * bug here or in a stream handler) closes this session with INTERNAL
   * instead of taking the process, and every other tunnel, down with it.
   */
  receive(bytes: Uint8Array): void {
    if (this.closedWith) return;
    this.lastReceivedAt = this.clock.now();
    try {
      this.handleFrame(decodeFrame(bytes, this.opts.localMaxFrameSize));
    } catch (err) {
      if (err instanceof TunnelError) {
        this.close(err, err.info === ErrorCodes.FLOOD ? CloseCodes.FLOOD : CloseCodes.TUNNEL_PROTOCOL_ERROR);
        return;
      }
      const message = err instanceof Error ? err.message : String(err);
      this.close(new TunnelError(ErrorCodes.INTERNAL, `internal error on a received frame: ${message}`, { cause: err }), CloseCodes.INTERNAL_ERROR);
    }
  }

  /** The transport closed under us. */
  transportClosed(reason?: string): void {
    this.finish(
      this.closedWith?.err ?? new TunnelError(ErrorCodes.TUNNEL_LOST, reason ? `tunnel closed: ${reason}` : undefined),
    );
  }

  /**
   * Closes the session: every open stream is reset with TUNNEL_LOST (or the
   * given error) and the transport is closed with `code`.
   */
  close(err?: TunnelError, code: number = CloseCodes.NORMAL): void {
    if (this.closedWith) return;
    this.finish(err);
    // Close reasons are limited to 123 bytes by RFC 6455.
    this.transport.close(code, (err?.message ?? 'closed').slice(0, 120));
  }

  private finish(err: TunnelError | undefined): void {
    if (this.closedWith) return;
    this.closedWith = { err };
    if (this.heartbeat !== undefined) this.clock.clearInterval(this.heartbeat);
    const lost =
      err && (err.info === ErrorCodes.TUNNEL_LOST || err.info === ErrorCodes.HEARTBEAT_TIMEOUT)
        ? err
        : new TunnelError(ErrorCodes.TUNNEL_LOST, err ? `tunnel closed: ${err.message}` : 'tunnel closed');
    for (const stream of [...this.streams.values()]) stream.receiveReset(lost);
    this.ready.length = 0;
    this.opts.onClose?.(err);
    this.checkDrained();
  }

  // ---- receiving ---------------------------------------------------------

  private handleFrame(frame: Frame): void {
    switch (frame.type) {
      case FrameType.REQUEST:
        return this.handleRequest(frame);
      case FrameType.RESPONSE:
        return this.handleResponse(frame);
      case FrameType.DATA: {
        const stream = this.streamFor(frame.streamId, true);
        if (!stream) return this.idle('frame for a stream this side reset');
        if (!canReceiveData(stream.state)) {
          throw new ProtocolError(`DATA on stream ${stream.id} after its END`, ErrorCodes.STREAM_CLOSED);
        }
        if (frame.data.byteLength === 0) return this.idle('empty DATA');
        stream.recvWindow.receive(frame.data.byteLength);
        this.bytesIn += frame.data.byteLength;
        stream.receiveData(frame.data);
        return;
      }
      case FrameType.END: {
        const stream = this.streamFor(frame.streamId, true);
        if (!stream) return this.idle('frame for a stream this side reset');
        stream.receiveEnd();
        return;
      }
      case FrameType.RESET: {
        const stream = this.streamFor(frame.streamId, false);
        if (!stream) return this.idle('RESET for a closed stream');
        // Rapid Reset: opening streams and cancelling them at once costs
        // the peer nothing and this side a request each.
        if (stream.request && !stream.headSent) this.idle('REQUEST reset by its sender before the answer');
        const info = errorCodeFromWire(frame.code);
        stream.receiveReset(new TunnelError(info, frame.message || info.message));
        return;
      }
      case FrameType.WINDOW_UPDATE: {
        const stream = this.streamFor(frame.streamId, false);
        if (!stream) return this.idle('WINDOW_UPDATE for a closed stream');
        stream.sendWindow.grant(frame.increment);
        this.schedule(stream);
        this.flush();
        return;
      }
      case FrameType.PING:
        this.idle('PING');
        this.sendAnswer({ type: FrameType.PONG, id: frame.id });
        return;
      case FrameType.PONG:
        if (this.pingOutstanding && frame.id === this.pingId) {
          const now = this.clock.now();
          this.rtt.sample(now, now - this.pingSentAt);
          this.pingOutstanding = false;
          this.opts.onRtt?.(now - this.pingSentAt);
        } else {
          this.idle('PONG that answers no PING');
        }
        return;
      case FrameType.GOAWAY:
        if (this.receivedGoaway) return this.idle('repeated GOAWAY');
        this.receivedGoaway = true;
        // Answering with our own GOAWAY tells the peer that every stream we
        // opened was sent before this point: it can close once they finish.
        this.goaway(ErrorCodes.GOING_AWAY, 'acknowledged');
        this.opts.onGoaway?.(frame);
        this.checkDrained();
        return;
      case FrameType.HELLO:
      case FrameType.WELCOME:
        throw new ProtocolError('handshake frame after the handshake');
    }
  }

  private handleRequest(frame: RequestFrame): void {
    const peerParity = this.role === 'server' ? 0 : 1;
    if (frame.streamId % 2 !== peerParity) {
      throw new ProtocolError(`REQUEST on stream ${frame.streamId}, which the peer may not open`);
    }
    if (frame.streamId <= this.lastPeerId) {
      throw new ProtocolError(`REQUEST reuses stream id ${frame.streamId} (last was ${this.lastPeerId})`);
    }
    this.lastPeerId = frame.streamId;
    // After *our* GOAWAY a REQUEST is still served: the peer sent it before
    // it saw ours. After the peer's own GOAWAY it promised to open none.
    const onStream = this.opts.onStream;
    if (!onStream || this.streams.size >= this.opts.localMaxStreams || this.receivedGoaway) {
      this.idle('REQUEST refused at once');
      const [info, message] = !onStream
        ? [ErrorCodes.INTERNAL, 'this side accepts no streams']
        : this.receivedGoaway
          ? [ErrorCodes.GOING_AWAY, ErrorCodes.GOING_AWAY.message]
          : [ErrorCodes.TOO_MANY_STREAMS, ErrorCodes.TOO_MANY_STREAMS.message];
      this.sendAnswer({ type: FrameType.RESET, streamId: frame.streamId, code: info.wire, message });
      this.rememberReset(frame.streamId);
      return;
    }
    const stream = this.createStream(frame.streamId);
    stream.request = frame;
    this.streamsOpened++;
    if (frame.endStream) stream.receiveEnd();
    onStream(stream, frame);
  }

  /** Spends the idle-frame budget on a frame that did no work; a flood closes the session. */
  private idle(kind: IdleFrameKind): void {
    if (!this.idleFrames.spend(this.clock.now(), kind)) {
      throw new ProtocolError(this.idleFrames.exhaustedMessage(), ErrorCodes.FLOOD);
    }
  }

  private handleResponse(frame: ResponseFrame): void {
    const stream = this.streamFor(frame.streamId, true);
    if (!stream) return this.idle('frame for a stream this side reset');
    if (stream.response || stream.request) {
      throw new ProtocolError(`second head on stream ${frame.streamId}`);
    }
    stream.response = frame;
    stream.onResponse(frame);
    if (frame.endStream) stream.receiveEnd();
  }

  /**
   * Finds the stream a frame is for. Frames for streams we reset are
   * dropped (they were in flight when we reset); `strict` frames (heads,
   * DATA, END) for any other unknown or finished stream are a protocol error.
   * RESET and WINDOW_UPDATE for finished streams are dropped: they race
   * with our own END legitimately.
   */
  private streamFor(id: number, strict: boolean): TunnelStream | undefined {
    const stream = this.streams.get(id);
    if (stream) return stream;
    const everOpened = this.isLocal(id) ? id < this.nextLocalId : id <= this.lastPeerId;
    if (!everOpened) throw new ProtocolError(`frame for stream ${id}, which was never opened`);
    if (!strict || this.recentResets.has(id)) return undefined;
    throw new ProtocolError(`frame for stream ${id}, which is closed`, ErrorCodes.STREAM_CLOSED);
  }

  // ---- streams -----------------------------------------------------------

  private createStream(id: number): TunnelStream {
    const recv = new ReceiveWindow(this.opts.localInitialWindow, this.maxWindow, this.budget, this.clock.now());
    const stream = new TunnelStream(this, id, this.limits.peerInitialWindow, recv);
    this.streams.set(id, stream);
    return stream;
  }

  private rememberReset(id: number): void {
    this.recentResets.add(id);
    if (this.recentResets.size > RECENT_RESETS) {
      const oldest = this.recentResets.values().next().value as number;
      this.recentResets.delete(oldest);
    }
  }

  // ---- StreamHost --------------------------------------------------------

  now(): number {
    return this.clock.now();
  }

  /** Latest heartbeat round trip in ms (0 until the first pong). */
  rttMs(): number {
    return this.rtt.latestMs;
  }

  baseRttMs(): number {
    return this.rtt.baseMs;
  }

  queueDelayMs(): number {
    return this.rtt.queueDelayMs(this.clock.now());
  }

  enqueueData(stream: TunnelStream, chunk: Uint8Array, done: (err?: Error | null) => void, flush = true): void {
    stream.queue.push({ data: chunk, done });
    stream.queuedBytes += chunk.byteLength;
    this.schedule(stream);
    if (flush) this.flush();
  }

  enqueueEnd(stream: TunnelStream): void {
    this.schedule(stream);
    this.flush();
  }

  sendResponseHead(stream: TunnelStream, status: number, headers: HeaderList, endStream: boolean): void {
    this.sendFrame({ type: FrameType.RESPONSE, streamId: stream.id, status, headers, endStream });
  }

  sendReset(stream: TunnelStream, info: ErrorCodeInfo, message: string): void {
    this.rememberReset(stream.id);
    if (this.closedWith) return;
    this.sendFrame({ type: FrameType.RESET, streamId: stream.id, code: info.wire, message: message.slice(0, 1024) });
  }

  sendWindowUpdate(stream: TunnelStream, increment: number): void {
    this.sendFrame({ type: FrameType.WINDOW_UPDATE, streamId: stream.id, increment });
    if (!this.pingOutstanding && this.clock.now() - this.pingSentAt >= PROBE_INTERVAL_MS) this.sendPing();
  }

  streamClosed(stream: TunnelStream): void {
    if (this.streams.delete(stream.id) && this.isLocal(stream.id)) this.localOpen--;
    // Out of the send ring now, not at the next flush: that waits for the
    // socket to drain, and a peer that stops reading and resets every
    // stream would grow the ring without bound. During a flush the loop
    // drops it itself (it has nothing sendable).
    if (stream.scheduled && !this.flushing) this.unschedule(stream);
    if (this.goingAway) this.checkDrained();
  }

  private unschedule(stream: TunnelStream): void {
    stream.scheduled = false;
    const i = this.ready.indexOf(stream);
    if (i >= 0) this.ready.splice(i, 1);
  }

  private isLocal(id: number): boolean {
    return id % 2 === (this.role === 'server' ? 1 : 0);
  }

  // ---- sending -----------------------------------------------------------

  private sendFrame(frame: Frame): void {
    if (this.closedWith) return;
    this.transport.send(encodeFrame(frame), URGENT[frame.type] === true);
  }

  /**
   * Sends a frame the peer asked for (PONG, a RESET refusing its REQUEST).
   * A peer that keeps asking while it reads nothing would make these pile
   * up in memory without end (HTTP/2's ping and reset floods): past
   * maxQueuedAnswers sent while the socket stayed above the high-water
   * mark, the session closes.
   */
  private sendAnswer(frame: Frame): void {
    const backedUp = this.transport.bufferedAmount >= this.highWaterMark;
    if (backedUp && !this.answersDrainArmed) {
      this.answersDrainArmed = true;
      this.transport.onceDrained(() => {
        this.answersDrainArmed = false;
        this.answers.drained();
      });
    }
    if (!this.answers.queued(backedUp)) {
      throw new ProtocolError(
        `flood: the peer does not read: ${this.answers.size} answers (PONG, RESET) queued ` +
          `while ${this.transport.bufferedAmount} bytes wait unsent (limit ${this.answers.limit})`,
        ErrorCodes.FLOOD,
      );
    }
    this.sendFrame(frame);
  }

  private sendPing(): void {
    // One ping in flight at a time keeps RTT a clean sample.
    if (this.pingOutstanding) return;
    this.pingId = (this.pingId + 1) % Number.MAX_SAFE_INTEGER;
    this.pingSentAt = this.clock.now();
    this.pingOutstanding = true;
    this.sendFrame({ type: FrameType.PING, id: this.pingId });
  }

  private schedule(stream: TunnelStream): void {
    if (stream.scheduled) return;
    if (!this.hasSendable(stream)) return;
    stream.scheduled = true;
    this.ready.push(stream);
  }

  private hasSendable(stream: TunnelStream): boolean {
    if (stream.state === 'closed') return false;
    if (stream.queuedBytes > 0) return stream.sendWindow.available > 0;
    return stream.endQueued;
  }

  /** Sends DATA round-robin while the transport has room. */
  private flush(): void {
    if (this.flushing || this.waitingForDrain || this.closedWith) return;
    this.flushing = true;
    try {
      this.flushReady();
    } finally {
      this.flushing = false;
    }
  }

  private flushReady(): void {
    let i = 0;
    while (i < this.ready.length) {
      if (this.transport.bufferedAmount >= this.highWaterMark) {
        // Streams closed by a callback during this loop stay out of the ring while it waits.
        let kept = 0;
        for (const s of this.ready) {
          if (s.state === 'closed') s.scheduled = false;
          else this.ready[kept++] = s;
        }
        this.ready.length = kept;
        this.waitingForDrain = true;
        this.transport.onceDrained(() => {
          this.waitingForDrain = false;
          this.flush();
        });
        break;
      }
      const stream = this.ready[i]!;
      this.sendOne(stream);
      if (this.hasSendable(stream)) {
        i++;
      } else {
        stream.scheduled = false;
        this.ready.splice(i, 1);
      }
      if (i >= this.ready.length) i = 0;
      if (this.closedWith) return;
    }
  }

  /** Sends one DATA frame (or the END) of a stream's queue. */
  private sendOne(stream: TunnelStream): void {
    if (stream.state === 'closed') return;
    const head = stream.queue[0];
    if (!head) {
      if (stream.endQueued) {
        stream.endQueued = false;
        this.sendFrame({ type: FrameType.END, streamId: stream.id });
        stream.endSent();
      }
      return;
    }
    // One frame carries as many queued chunks as credit and the frame size
    // allow: the encoder copies the payload once anyway, so joining chunks
    // costs nothing and saves a frame (and a write) per chunk.
    const budget = Math.min(this.maxDataFrame, stream.sendWindow.available);
    const parts: Uint8Array[] = [];
    const done: ((err?: Error | null) => void)[] = [];
    let n = 0;
    while (n < budget) {
      const chunk = stream.queue[0];
      if (!chunk) break;
      const take = Math.min(chunk.data.byteLength, budget - n);
      if (take === chunk.data.byteLength) {
        parts.push(chunk.data);
        stream.queue.shift();
        done.push(chunk.done);
      } else {
        parts.push(chunk.data.subarray(0, take));
        chunk.data = chunk.data.subarray(take);
      }
      n += take;
    }
    stream.sendWindow.consume(n);
    stream.queuedBytes -= n;
    stream.bytesOut += n;
    this.bytesOut += n;
    this.transport.send(encodeDataFrame(stream.id, parts, n));
    // The producer may write its next chunk from inside done() or drained();
    // `flushing` makes that a plain enqueue that this loop picks up.
    for (const cb of done) cb();
    stream.drained();
  }
}
