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

/**
 * FrameTransport over a ws WebSocket.
 *
 * Frames sent in the same tick are corked into one write (one syscall for a
 * head + data + end instead of three). Drain is the socket's own 'drain'
 * event, so the session's high-water mark tracks the kernel's backpressure.
 */
export class WsTransport implements FrameTransport {
  private corked = false;

  constructor(private readonly ws: WebSocketLike) {}

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  send(bytes: Uint8Array): void {
    if (this.ws.readyState !== OPEN) return;
    const socket = this.ws._socket;
    if (socket && !this.corked && !socket.destroyed) {
      this.corked = true;
      socket.cork();
      process.nextTick(() => {
        this.corked = false;
        socket.uncork();
      });
    }
    this.ws.send(bytes, { binary: true });
  }

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
}
