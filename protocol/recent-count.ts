/**
 * A count over a sliding window (e.g. "requests in the last minute"), in
 * fixed buckets so adding is O(1) with no allocation: the hot path pays a
 * clock read and an increment. The total is exact to one bucket: an event
 * leaves the window between `windowMs - bucketMs` and `windowMs` after it
 * happened.
 */
export class RecentCount {
  private readonly counts: Float64Array;
  /** The bucket number (time / bucketMs) each slot currently holds. */
  private readonly epochs: Float64Array;
  private readonly bucketMs: number;

  constructor(
    readonly windowMs = 60_000,
    buckets = 12,
  ) {
    if (!Number.isInteger(buckets) || buckets < 1) throw new RangeError(`buckets must be a positive integer, got ${buckets}`);
    if (!(windowMs > 0)) throw new RangeError(`windowMs must be positive, got ${windowMs}`);
    this.bucketMs = windowMs / buckets;
    this.counts = new Float64Array(buckets);
    this.epochs = new Float64Array(buckets).fill(-1);
  }

  add(n = 1, now = Date.now()): void {
    const epoch = Math.floor(now / this.bucketMs);
    const slot = epoch % this.counts.length;
    if (this.epochs[slot] !== epoch) {
      this.epochs[slot] = epoch;
      this.counts[slot] = 0;
    }
    this.counts[slot]! += n;
  }

  /** The sum over the buckets that are still inside the window at `now`. */
  total(now = Date.now()): number {
    const current = Math.floor(now / this.bucketMs);
    const oldest = current - this.counts.length + 1;
    let sum = 0;
    for (let i = 0; i < this.counts.length; i++) {
      const e = this.epochs[i]!;
      if (e >= oldest && e <= current) sum += this.counts[i]!;
    }
    return sum;
  }
}
