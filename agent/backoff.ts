/**
 * Exponential backoff with full jitter (AWS architecture blog, "Exponential
 * Backoff and Jitter"): the n-th delay is uniform in [0, min(cap, base·2^n)].
 * Full jitter spreads a fleet of agents that lost the server at the same
 * moment, so they do not all come back in the same millisecond.
 */
export class Backoff {
  private attempt = 0;

  /**
   * @param baseMs first ceiling (default 500 ms: a server restart is usually
   *   back within a second)
   * @param capMs largest ceiling (default 30 s: an agent notices a recovered
   *   server within half a minute)
   * @param random injectable for tests; returns [0, 1)
   */
  constructor(
    private readonly baseMs = 500,
    private readonly capMs = 30_000,
    private readonly random: () => number = Math.random,
  ) {}

  /** The delay before the next attempt, in ms. */
  next(): number {
    const ceiling = Math.min(this.capMs, this.baseMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    return Math.floor(this.random() * ceiling);
  }

  /** Attempts since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  reset(): void {
    this.attempt = 0;
  }
}
