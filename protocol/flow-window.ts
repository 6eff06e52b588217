import { MAX_WINDOW } from './codec.js';
import { ErrorCodes } from './error-codes.js';
import { ProtocolError } from './tunnel-error.js';

/**
 * Credit the peer granted us for one stream: we never have more DATA bytes
 * in flight than this.
 */
export class SendWindow {
  private credit: number;

  constructor(initial: number) {
    this.credit = initial;
  }

  /** Bytes we may send now. */
  get available(): number {
    return this.credit;
  }

  /** Records bytes sent. Sending more than the credit is a bug on our side. */
  consume(n: number): void {
    if (n > this.credit) throw new RangeError(`send of ${n} bytes exceeds credit ${this.credit}`);
    this.credit -= n;
  }

  /** Applies a WINDOW_UPDATE from the peer. Overflow is the peer's fault. */
  grant(increment: number): void {
    if (this.credit + increment > MAX_WINDOW) {
      throw new ProtocolError(
        `WINDOW_UPDATE of ${increment} overflows the window (credit ${this.credit}, maximum ${MAX_WINDOW})`,
        ErrorCodes.FLOW_CONTROL,
      );
    }
    this.credit += increment;
  }
}

/**
 * Memory a connection lets its streams' windows grow into, beyond their
 * initial windows. Bounds what a connection can be made to buffer: at most
 * streams × initialWindow + limit.
 */
export class WindowBudget {
  private used = 0;

  constructor(readonly limit: number) {}

  get reserved(): number {
    return this.used;
  }

  tryReserve(n: number): boolean {
    if (this.used + n > this.limit) return false;
    this.used += n;
    return true;
  }

  release(n: number): void {
    this.used = Math.max(0, this.used - n);
  }
}

/**
 * The heartbeat RTT is measured on a quiet connection (≈0.1 ms on a LAN),
 * but under load the credit loop (two event loops, socket buffers) takes
 * milliseconds. Treating any update cycle shorter than this as
 * window-limited lets windows grow on fast links too. Measured on loopback:
 * 100 MiB download 89 → ~160 MB/s with a 10–20 ms horizon.
 */
export const MIN_GROWTH_HORIZON_MS = 10;

/**
 * Queueing delay (see RttEstimator) above which windows shrink instead of
 * growing. Everything a window lets the sender put in flight beyond what
 * the path carries sits in socket buffers, in order, ahead of every other
 * stream's frames: a big window on a fast stream is latency for all the
 * others. Keeping the queue under a few ms (as LEDBAT and BBR do for TCP)
 * keeps a small response a few frames behind a bulk download, while the
 * window stays at least the path's bandwidth × base RTT, so throughput
 * holds.
 */
export const QUEUE_DELAY_TARGET_MS = 4;

/**
 * What we granted the peer for one stream, what arrived and what our
 * consumer has taken. The peer may have at most `window` bytes unconsumed on
 * our side; more is a FLOW_CONTROL protocol error.
 *
 * Auto-tuning (as yamux and gRPC's BDP estimator): a WINDOW_UPDATE is sent
 * when the consumer has taken half the window. If the previous update was
 * less than two base RTTs (at least MIN_GROWTH_HORIZON_MS) ago, the window
 * is the bottleneck (the sender spends its credit faster than a round trip
 * refills it), so the window doubles, up to `maxWindow` and as long as the
 * connection's budget allows. A stream whose reader is slow never grows, so
 * it never pins more than its window. When the connection's queueing delay
 * is over QUEUE_DELAY_TARGET_MS (or over the base RTT, on a long path) the
 * window halves instead (never below its initial size): the update withholds
 * part of the consumed bytes.
 */
export class ReceiveWindow {
  private window: number;
  /** Bytes the peer may still send before our next update. */
  private remaining: number;
  /** Received, not yet consumed. */
  private pending = 0;
  /** Consumed, not yet acknowledged by a WINDOW_UPDATE. */
  private unacked = 0;
  private lastUpdateAt: number;

  constructor(
    private readonly initial: number,
    private readonly maxWindow: number,
    private readonly budget: WindowBudget | undefined,
    now: number,
  ) {
    this.window = initial;
    this.remaining = initial;
    this.lastUpdateAt = now;
  }

  get size(): number {
    return this.window;
  }

  /** Bytes received that the consumer has not taken yet. */
  get buffered(): number {
    return this.pending;
  }

  /** Records DATA from the peer; throws when the peer overran its credit. */
  receive(n: number): void {
    if (n > this.remaining) {
      throw new ProtocolError(
        `peer sent ${n} bytes with only ${this.remaining} bytes of window left`,
        ErrorCodes.FLOW_CONTROL,
      );
    }
    this.remaining -= n;
    this.pending += n;
  }

  /** Records bytes our consumer took. */
  consume(n: number): void {
    const taken = Math.min(n, this.pending);
    this.pending -= taken;
    this.unacked += taken;
  }

  /**
   * Returns the WINDOW_UPDATE increment to send now, or 0 when none is due.
   * `baseRttMs` is the connection's round trip without queues (0 if
   * unknown): the window grows when the last update is younger than
   * max(2·baseRttMs, MIN_GROWTH_HORIZON_MS). `queueDelayMs` over
   * QUEUE_DELAY_TARGET_MS shrinks it instead.
   */
  takeUpdate(now: number, baseRttMs: number, queueDelayMs = 0): number {
    if (!this.updateDue) return 0;
    // On a long path the queue may be as long as the path itself (one more
    // bandwidth-delay product in flight, as BBR allows) before it counts:
    // a 4 ms target on a 50 ms WAN path starved it (measured 118 → 40 MB/s).
    const congested = queueDelayMs > Math.max(QUEUE_DELAY_TARGET_MS, baseRttMs);
    if (congested && this.window > this.initial) {
      const cut = Math.min(this.window - this.initial, Math.floor(this.window / 2), this.unacked);
      this.window -= cut;
      this.budget?.release(cut);
      const increment = this.unacked - cut;
      this.unacked = 0;
      this.remaining += increment;
      this.lastUpdateAt = now;
      return increment;
    }
    let extra = 0;
    if (!congested && now - this.lastUpdateAt < Math.max(2 * baseRttMs, MIN_GROWTH_HORIZON_MS) && this.window < this.maxWindow) {
      const want = Math.min(this.window, this.maxWindow - this.window);
      if (this.budget === undefined || this.budget.tryReserve(want)) {
        extra = want;
        this.window += want;
      }
    }
    const increment = this.unacked + extra;
    this.unacked = 0;
    this.remaining += increment;
    this.lastUpdateAt = now;
    return increment;
  }

  /** True when takeUpdate would send something: half the window consumed and unacknowledged. */
  get updateDue(): boolean {
    return this.unacked > 0 && this.unacked >= this.window / 2;
  }

  /** Gives grown window back to the connection budget; call when the stream closes. */
  release(): void {
    // The window never drops below its initial size, so what it grew is the difference.
    const grown = this.window - this.initial;
    if (grown > 0) this.budget?.release(grown);
    this.window = this.initial;
  }
}
