import type { FrameTransport } from './tunnel-session.js';

/**
 * The slice of a `ws` WebSocket the transport uses. Typed structurally so
 * `protocol/` does not depend on the ws package.
 */
export interface WebSocketLike {
  readonly bufferedAmount: number;
  send(data: Uint8Array, options: { binary: boolean }, cb?: (err?: Error) => void): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
  pause(): void;
  resume(): void;
  readonly readyState: number;
  /** The underlying net.Socket (ws sets it once open). */
  readonly _socket?: {
    cork(): void;
    uncork(): void;
    once(event: 'drain', cb: () => void): unknown;
    readonly writableNeedDrain: boolean;
    readonly destroyed: boolean;
  };
}

const OPEN = 1;

/** Bytes read from one tunnel per event-loop turn before yielding (see WsTransport.received). */
const READ_BUDGET = 256 * 1024;

/**
 * FrameTransport over a ws WebSocket.
 *
 * Frames sent in the same event-loop turn are corked into one write (one
 * syscall for many frames instead of one each). Drain is the socket's own 'drain'
 * event, so the session's high-water mark tracks the kernel's backpressure.
 */
export class WsTransport implements FrameTransport {
  private corked = false;
  private corkGeneration = 0;
  private readThisTurn = 0;
  private turnScheduled = false;

  constructor(private readonly ws: WebSocketLike) {}

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  send(bytes: Uint8Array, urgent = false): void {
    if (this.ws.readyState !== OPEN) return;
    const socket = this.ws._socket;
    if (socket && !this.corked && !socket.destroyed) {
      this.corked = true;
      socket.cork();
      const generation = ++this.corkGeneration;
      // Uncork in the check phase, after every I/O callback of this loop
      // turn has run: frames for many streams (heads, data, ends) then leave
      // in one writev. Writes to a loopback or LAN socket are the dominant
      // cost per small request, so fewer, larger writes matter more than
      // the microseconds this waits. Every cork() gets exactly one uncork().
      setImmediate(() => {
        if (this.corked && this.corkGeneration === generation) {
          this.corked = false;
          socket.uncork();
        }
      });
    }
    this.ws.send(bytes, { binary: true });
    // Credit, pongs and resets must not wait for the end of the loop turn:
    // the peer's sender may be stalled on them.
    if (urgent && this.corked && socket) {
      this.corked = false;
      socket.uncork();
    }
  }

  /**
   * Counts a received message. Once READ_BUDGET bytes came in within one
   * loop turn, reading pauses until the next turn: libuv reads a busy socket
   * up to 32 times in a row, so a bulk download arriving at full speed would
   * otherwise hold the event loop for megabytes at a time while every other
   * socket (other tunnels, callers, the tool) waits.
   */
  received(bytes: number): void {
    this.readThisTurn += bytes;
    if (!this.turnScheduled) {
      this.turnScheduled = true;
      setImmediate(this.nextTurn);
    }
    if (this.readThisTurn >= READ_BUDGET && this.ws.readyState === OPEN) {
      this.ws.pause();
      this.paused = true;
    }
  }

  private paused = false;

  private readonly nextTurn = (): void => {
    this.turnScheduled = false;
    this.readThisTurn = 0;
    if (this.paused) {
      this.paused = false;
      if (this.ws.readyState === OPEN) this.ws.resume();
    }
  };

  onceDrained(cb: () => void): void {
    const socket = this.ws._socket;
    if (this.ws.readyState !== OPEN || !socket || socket.destroyed || !socket.writableNeedDrain) {
      setImmediate(cb);
      return;
    }
    socket.once('drain', cb);
  }

  close(code: number, reason: string): void {
    if (this.ws.readyState !== OPEN) {
      this.ws.terminate();
      return;
    }
    this.ws.close(code, reason);
    // A peer that never answers the close handshake must not hold the socket.
    const timer = setTimeout(() => this.ws.terminate(), 5_000);
    timer.unref();
  }

  abort(): void {
    // No close frame: the peer is gone or black-holed, and the socket's
    // 'close' event (which starts the agent's reconnect) must come now.
    this.ws.terminate();
  }
}
