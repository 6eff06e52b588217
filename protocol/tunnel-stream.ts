import { Readable, Writable } from 'node:stream';
import { ErrorCodes, type ErrorCodeInfo } from './error-codes.js';
import type { HeaderList, RequestFrame, ResponseFrame } from './frame-types.js';
import { ReceiveWindow, SendWindow } from './flow-window.js';
import { canReceiveData, canSendData, transition, type StreamEvent, type StreamState } from './stream-state.js';
import { TunnelError } from './tunnel-error.js';

/** What a stream needs from its session; keeps the two files decoupled. */
export interface StreamHost {
  /**
   * Queues body bytes; `done` runs once they are handed to the transport.
   * `flush` false leaves sending to a later call (to batch chunks).
   */
  enqueueData(stream: TunnelStream, chunk: Uint8Array, done: (err?: Error | null) => void, flush?: boolean): void;
  enqueueEnd(stream: TunnelStream): void;
  sendResponseHead(stream: TunnelStream, status: number, headers: HeaderList, endStream: boolean): void;
  sendReset(stream: TunnelStream, info: ErrorCodeInfo, message: string): void;
  sendWindowUpdate(stream: TunnelStream, increment: number): void;
  streamClosed(stream: TunnelStream): void;
  now(): number;
  /** The connection's round trip without queues, ms (0 until measured). */
  baseRttMs(): number;
  /** How long a frame now waits behind data already in flight, ms. */
  queueDelayMs(): number;
}

/** An outgoing chunk waiting for credit or socket room. */
export interface QueuedChunk {
  data: Uint8Array;
  done: (err?: Error | null) => void;
}

const noop = (): void => {};

/** writeData() asks its caller to pause above this many queued bytes (one DATA frame). */
const DIRECT_HIGH_WATER = 64 * 1024;

/**
 * The body Readable. Window is returned after every read(), once the chunk
 * has left the buffer: Node calls _read() *before* it removes the chunk
 * asked for, and not again until the next push, so counting only in
 * _read() would stall a stream whose sender is out of credit.
 */
class BodyReadable extends Readable {
  constructor(private readonly onConsumed: () => void) {
    // 64 KiB: one DATA frame's worth; keep windows ≥ 2× this.
    super({ highWaterMark: 64 * 1024 });
  }

  override _read(): void {
    this.onConsumed();
  }

  override read(size?: number): unknown {
    const chunk: unknown = super.read(size);
    this.onConsumed();
    return chunk;
  }
}

/**
 * One request/response exchange on a tunnel.
 *
 * `body` is what the peer sends us (request body on the agent, response body
 * on the server) as a Readable; reading from it is what returns window to
 * the peer, so a consumer that stops reading stops the peer within one
 * window. `sink` is what we send, as a Writable whose callbacks complete only
 * when the bytes reach the transport, so a producer piped into it is paused
 * by both the peer's credit and the socket.
 */
export class TunnelStream {
  readonly id: number;
  state: StreamState = 'open';
  readonly sendWindow: SendWindow;
  readonly recvWindow: ReceiveWindow;
  // Made on first use: a GET never needs the server's sink, a bodiless
  // request never needs the agent's body (two stream objects per request).
  private bodyStream: BodyReadable | undefined;
  private sinkStream: Writable | undefined;
  private abandonInbound = false;
  private drainWanted = false;
  private directData: ((chunk: Uint8Array) => boolean) | undefined;
  private directEnd: (() => void) | undefined;
  /** Bytes the direct consumer took but could not pass on yet (no credit for them). */
  private heldBytes = 0;
  /** The peer's END arrived: its body is complete, whatever happens next. */
  remoteEnded = false;
  /** Outgoing queue, drained by the session's scheduler. */
  readonly queue: QueuedChunk[] = [];
  queuedBytes = 0;
  endQueued = false;
  /** True while the stream is in the session's ready ring. */
  scheduled = false;
  /** Bytes of body received / sent, for stats. */
  bytesIn = 0;
  bytesOut = 0;
  /** The request head (agent side) or undefined (server side). */
  request: RequestFrame | undefined;
  /** Set when the response head arrives (server side). */
  response: ResponseFrame | undefined;
  /** True once respond() sent the head. */
  headSent = false;
  /** Set once the stream was reset, by either side. */
  resetError: TunnelError | undefined;

  /** Server side: called when the RESPONSE head arrives. */
  onResponse: (head: ResponseFrame) => void = noop;
  /** Called once if the stream is reset by either side or the tunnel drops. */
  onReset: (err: TunnelError) => void = noop;
  /** Called once when the stream reaches `closed`. */
  onClose: () => void = noop;
  /** Called when queued data fell below the high-water mark after writeData() returned false. */
  onDrain: () => void = noop;

  constructor(
    private readonly host: StreamHost,
    id: number,
    sendWindow: number,
    recvWindow: ReceiveWindow,
  ) {
    this.id = id;
    this.sendWindow = new SendWindow(sendWindow);
    this.recvWindow = recvWindow;
  }

  /** What the peer sends us, as a Readable (created on first use). */
  get body(): Readable {
    if (!this.bodyStream) {
      const body = new BodyReadable(() => this.handleBodyRead());
      // Failures are reported through onReset; a stream nobody reads yet
      // must not crash the process with an unhandled 'error'.
      body.on('error', noop);
      if (this.remoteEnded) body.push(null);
      else if (this.resetError) body.destroy(this.resetError);
      this.bodyStream = body;
    }
    return this.bodyStream;
  }

  /** What we send, as a Writable (created on first use). */
  get sink(): Writable {
    if (!this.sinkStream) {
      const sink = new Writable({
        highWaterMark: 64 * 1024,
        write: (chunk: Buffer, _enc, cb) => this.write(chunk, cb),
        // Chunks that piled up while the last write waited are queued
        // together, so the session joins them into one DATA frame
        // (an HTTP request body arrives in chunks of a few KiB).
        writev: (chunks, cb) => {
          // The last non-empty chunk flushes and carries the callback.
          const data = chunks.map((c) => c.chunk as Buffer).filter((c) => c.byteLength > 0);
          if (data.length === 0) return cb();
          const last = data.length - 1;
          data.forEach((c, i) => this.write(c, i === last ? cb : noop, i === last));
        },
        final: (cb) => {
          this.endData();
          cb();
        },
      });
      sink.on('error', noop);
      if (this.resetError) sink.destroy(this.resetError);
      this.sinkStream = sink;
    }
    return this.sinkStream;
  }

  /** Sends the response head (agent side). Only the first call counts. */
  respond(status: number, headers: HeaderList, endStream: boolean): void {
    if (!canSendData(this.state) || this.headSent) return;
    this.headSent = true;
    // An END already queued (endData() came first) ends the stream when it
    // leaves; ending it here too would make that END an illegal transition.
    const end = endStream && !this.endQueued;
    this.host.sendResponseHead(this, status, headers, end);
    if (end) this.move('send-end');
  }

  /**
   * Our side is done: once our END has gone out, if the peer is still
   * sending, stop it with RESET(CANCEL) (HTTP/2's early-response rule). The
   * agent calls this when the tool answered without reading the whole
   * request body, so the caller's upload is discarded instead of stalling.
   */
  finishEarly(): void {
    this.abandonInbound = true;
    if (this.state === 'half-closed-local') this.reset(ErrorCodes.CANCEL, 'the tool answered without reading the whole request body');
  }

  /** Aborts the stream with a code; the peer sees RESET. Idempotent. */
  reset(info: ErrorCodeInfo, message: string = info.message): void {
    if (this.state === 'closed') return;
    this.host.sendReset(this, info, message);
    this.fail(new TunnelError(info, message), 'send-reset');
  }

  /**
   * Queues body bytes without a Writable (the agent's hot path). Returns
   * false once a DATA frame's worth is waiting for credit or socket room:
   * the caller should pause its source until `onDrain` runs.
   */
  writeData(chunk: Uint8Array): boolean {
    this.write(chunk, noop);
    if (this.queuedBytes < DIRECT_HIGH_WATER) return true;
    this.drainWanted = true;
    return false;
  }

  /**
   * Consumes the peer's body with callbacks instead of a Readable (the
   * server's hot path). `onData` returns false when its destination is full;
   * the peer then gets no credit for those bytes until resumeConsumption().
   */
  consumeWith(onData: (chunk: Uint8Array) => boolean, onEnd: () => void): void {
    this.directData = onData;
    this.directEnd = onEnd;
    if (this.remoteEnded) onEnd();
  }

  /** The direct consumer's destination drained: credit what it held. */
  resumeConsumption(): void {
    const held = this.heldBytes;
    this.heldBytes = 0;
    if (held > 0) this.credit(held);
  }

  private credit(n: number): void {
    this.recvWindow.consume(n);
    // Most chunks owe no update yet: skip the clock and RTT reads for them.
    if (!canReceiveData(this.state) || !this.recvWindow.updateDue) return;
    const increment = this.recvWindow.takeUpdate(this.host.now(), this.host.baseRttMs(), this.host.queueDelayMs());
    if (increment > 0) this.host.sendWindowUpdate(this, increment);
  }

  /** @internal the session sent queued data; tells a paused direct writer. */
  drained(): void {
    if (this.drainWanted && this.queuedBytes < DIRECT_HIGH_WATER) {
      this.drainWanted = false;
      this.onDrain();
    }
  }

  private write(chunk: Uint8Array, cb: (err?: Error | null) => void, flush = true): void {
    if (!canSendData(this.state) || this.endQueued) {
      cb(this.resetError ?? new TunnelError(ErrorCodes.STREAM_CLOSED, 'stream is closed for sending'));
      return;
    }
    if (chunk.byteLength === 0) {
      cb();
      return;
    }
    this.host.enqueueData(this, chunk, cb, flush);
  }

  /** Ends what we send (after queued data). Idempotent. */
  endData(): void {
    if (!canSendData(this.state) || this.endQueued) return;
    this.endQueued = true;
    this.host.enqueueEnd(this);
  }

  /** Returns window to the peer for what our consumer has taken. */
  private handleBodyRead(): void {
    const consumed = this.recvWindow.buffered - (this.bodyStream?.readableLength ?? 0);
    if (consumed > 0) this.credit(consumed);
  }

  // ---- called by the session -------------------------------------------

  /** @internal DATA from the peer (window already checked by the session). */
  receiveData(data: Uint8Array): void {
    this.bytesIn += data.byteLength;
    if (this.directData) {
      if (this.directData(data)) this.credit(data.byteLength);
      else this.heldBytes += data.byteLength;
      return;
    }
    this.body.push(data);
  }

  /** @internal END from the peer. */
  receiveEnd(): void {
    this.remoteEnded = true;
    this.bodyStream?.push(null);
    this.directEnd?.();
    this.move('recv-end');
  }

  /** @internal RESET from the peer, or the tunnel is gone. */
  receiveReset(err: TunnelError): void {
    if (this.state === 'closed') return;
    this.fail(err, 'recv-reset');
  }

  /** @internal the END frame left the queue. */
  endSent(): void {
    this.move('send-end');
    if (this.abandonInbound) this.finishEarly();
  }

  /** @internal */
  move(event: StreamEvent): void {
    this.state = transition(this.state, event);
    if (this.state === 'closed') this.closed();
  }

  private fail(err: TunnelError, event: StreamEvent): void {
    const bodyComplete = !canReceiveData(this.state);
    this.resetError = err;
    this.state = transition(this.state, event);
    for (const q of this.queue.splice(0)) q.done(err);
    this.queuedBytes = 0;
    this.endQueued = false;
    // A body the peer already ended is complete: let the consumer finish it.
    if (!bodyComplete) this.bodyStream?.destroy(err);
    this.sinkStream?.destroy(err);
    this.onReset(err);
    this.closed();
  }

  private closed(): void {
    this.recvWindow.release();
    this.host.streamClosed(this);
    this.onClose();
  }
}
