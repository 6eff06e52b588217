/**
 * Limits on what a peer may make a session do without doing any work: the
 * answer to the HTTP/2 flood attacks (ping flood CVE-2019-9512, reset flood
 * CVE-2019-9514, empty frames CVE-2019-9518, Rapid Reset CVE-2023-44487),
 * in the way nginx, h2o and Go's http2 answer them: a budget of frames that
 * change nothing, and a cap on answers queued for a peer that does not read.
 * Pure: the caller passes the clock.
 */

/** Limits a session enforces on its peer. */
export interface FloodLimits {
  /** Frames that do no work the peer may send at once (token bucket size). */
  idleFrameBurst: number;
  /** Rate the idle-frame budget refills at, per second. */
  idleFramesPerSecond: number;
  /**
   * Answers (PONG, RESET refusing a REQUEST) we may queue while the socket
   * stays above its high-water mark, i.e. while the peer is not reading
   * them. Counted from the last time the socket drained.
   */
  maxQueuedAnswers: number;
}

/**
 * Why these numbers (a legitimate peer, this release):
 * - it sends at most ~120 frames per second that do no work: a PING every
 *   half heartbeat (≥ 50 ms apart) plus at most one queue probe per 10 ms
 *   while it receives data (one in flight at a time);
 * - every stream reset in either direction lets at most a few frames that
 *   were already in flight arrive late (RESPONSE, END, a WINDOW_UPDATE, a
 *   last DATA): ~3 per stream, so 1 024 streams reset at once (a caller
 *   process killed mid-flight) make ~3 000;
 * - a caller that aborts before the answer costs one RESET per request.
 * So 10 000 at once covers the worst burst three times over, and 1 000 per
 * second covers the heartbeat and probes plus over 300 aborted streams per
 * second forever, while a flood of tiny frames is cut after 10 000 (Go's
 * http2 caps queued control frames at the same 10 000).
 */
export const DEFAULT_FLOOD_LIMITS: Readonly<FloodLimits> = Object.freeze({
  idleFrameBurst: 10_000,
  idleFramesPerSecond: 1_000,
  maxQueuedAnswers: 10_000,
});

/** What an idle frame was, for the log line that explains a close. */
export type IdleFrameKind =
  | 'PING'
  | 'PONG that answers no PING'
  | 'empty DATA'
  | 'WINDOW_UPDATE for a closed stream'
  | 'RESET for a closed stream'
  | 'frame for a stream this side reset'
  | 'REQUEST refused at once'
  | 'REQUEST reset by its sender before the answer'
  | 'repeated GOAWAY';

/**
 * Token bucket of frames that do no work, with a tally of what spent it so
 * the close reason can say what the peer did.
 */
export class FrameBudget {
  private tokens: number;
  private updatedAt: number;
  private readonly tally = new Map<string, number>();

  constructor(
    private readonly burst: number,
    private readonly perSecond: number,
    now: number,
  ) {
    this.tokens = burst;
    this.updatedAt = now;
  }

  /** Spends one token on a frame of `kind`; false once the budget is gone. */
  spend(now: number, kind: string): boolean {
    this.tally.set(kind, (this.tally.get(kind) ?? 0) + 1);
    const elapsed = now - this.updatedAt;
    if (elapsed > 0) {
      this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.perSecond) / 1000);
      this.updatedAt = now;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Tokens left (for tests and status). */
  get remaining(): number {
    return Math.floor(this.tokens);
  }

  /** "12000 PING, 3 empty DATA": what was spent, most first. */
  describe(): string {
    return [...this.tally]
      .sort((a, b) => b[1] - a[1])
      .map(([kind, n]) => `${n} ${kind}`)
      .join(', ');
  }

  /** The message of the error that closes a flooding peer. */
  exhaustedMessage(): string {
    return (
      `flood: the peer sent more frames that do no work than allowed ` +
      `(${this.burst} at once, ${this.perSecond}/s): ${this.describe()}`
    );
  }
}

/**
 * Counts answers queued while the socket is backed up. `queued` is called
 * per answer with whether the socket is above its high-water mark; it
 * returns false when the count passes the limit. `drained` starts over.
 */
export class AnswerBacklog {
  private count = 0;

  constructor(readonly limit: number) {}

  queued(backedUp: boolean): boolean {
    if (!backedUp) {
      this.count = 0;
      return true;
    }
    this.count++;
    return this.count <= this.limit;
  }

  drained(): void {
    this.count = 0;
  }

  get size(): number {
    return this.count;
  }
}
