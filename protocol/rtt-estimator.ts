/**
 * Round-trip samples of one connection (PING → PONG), reduced to the two
 * figures flow control needs:
 *
 * - `baseMs`: the path's own round trip, without queues. The smallest
 *   sample of the current and the previous epoch (EPOCH_MS each), so it
 *   follows a route that got slower within two epochs, and a queue that
 *   builds up never raises it.
 * - `queueDelayMs()`: how much longer than that the latest sample took,
 *   i.e. how long a frame now waits behind data already in the pipe (socket
 *   buffers on both sides, a peer that reads late). 0 when the latest sample
 *   is older than FRESH_MS: an idle connection has no queue.
 *
 * Pure: the caller passes the clock.
 */
export class RttEstimator {
  /** Latest sample, ms (0 before the first). */
  latestMs = 0;
  private latestAt = -Infinity;
  private currentMin = Infinity;
  private previousMin = Infinity;
  private epochStart: number | undefined;

  static readonly EPOCH_MS = 10_000;
  static readonly FRESH_MS = 1_000;

  sample(now: number, rttMs: number): void {
    if (!(rttMs >= 0) || !Number.isFinite(rttMs)) return;
    if (this.epochStart === undefined) this.epochStart = now;
    if (now - this.epochStart >= RttEstimator.EPOCH_MS) {
      this.previousMin = this.currentMin;
      this.currentMin = Infinity;
      this.epochStart = now;
    }
    this.currentMin = Math.min(this.currentMin, rttMs);
    this.latestMs = rttMs;
    this.latestAt = now;
  }

  /** The path's round trip without queueing (0 before the first sample). */
  get baseMs(): number {
    const base = Math.min(this.currentMin, this.previousMin);
    return Number.isFinite(base) ? base : 0;
  }

  /** Queueing delay seen by the latest sample, if it is fresh; else 0. */
  queueDelayMs(now: number): number {
    if (now - this.latestAt > RttEstimator.FRESH_MS) return 0;
    return Math.max(0, this.latestMs - this.baseMs);
  }
}
