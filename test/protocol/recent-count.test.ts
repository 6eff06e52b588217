import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RecentCount } from '../../protocol/recent-count.js';

describe('RecentCount', () => {
  it('sums what was added inside the window', () => {
    const c = new RecentCount(60_000, 12);
    c.add(1, 1_000);
    c.add(2, 30_000);
    c.add(3, 59_000);
    expect(c.total(59_999)).toBe(6);
  });

  it('forgets a bucket once it has left the window', () => {
    const c = new RecentCount(60_000, 12); // 5 s buckets
    c.add(5, 0); // bucket [0, 5000)
    c.add(1, 10_000);
    expect(c.total(59_999)).toBe(6);
    expect(c.total(60_000)).toBe(1); // the first bucket is out
    expect(c.total(74_999)).toBe(0);
  });

  it('reuses a slot for a later bucket without carrying the old count', () => {
    const c = new RecentCount(1_000, 4);
    c.add(7, 0);
    c.add(1, 1_000); // same slot, one window later
    expect(c.total(1_000)).toBe(1);
  });

  it('does not count events stamped after `now`', () => {
    const c = new RecentCount(1_000, 4);
    c.add(1, 5_000);
    expect(c.total(4_000)).toBe(0);
    expect(c.total(5_000)).toBe(1);
  });

  it('refuses a nonsense shape', () => {
    expect(() => new RecentCount(1_000, 0)).toThrow(/buckets/);
    expect(() => new RecentCount(0, 4)).toThrow(/windowMs/);
  });

  it('matches a brute-force count to within one bucket (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 300_000 }), fc.integer({ min: 1, max: 5 })), { maxLength: 200 }),
        fc.integer({ min: 0, max: 100_000 }),
        (events, after) => {
          // Time only moves forward: totals are read at or after the last event.
          const now = Math.max(0, ...events.map(([t]) => t)) + after;
          const c = new RecentCount(60_000, 12);
          const sorted = [...events].sort((a, b) => a[0] - b[0]);
          for (const [t, n] of sorted) c.add(n, t);
          const bucket = 5_000;
          const start = (Math.floor(now / bucket) - 11) * bucket;
          const expected = sorted.filter(([t]) => t >= start && t <= now).reduce((s, [, n]) => s + n, 0);
          expect(c.total(now)).toBe(expected);
          // The contract in words: everything from the last windowMs - bucketMs is in, nothing older than windowMs.
          const surelyIn = sorted.filter(([t]) => t > now - 55_000 && t <= now).reduce((s, [, n]) => s + n, 0);
          const atMost = sorted.filter(([t]) => t > now - 60_000 && t <= now).reduce((s, [, n]) => s + n, 0);
          expect(c.total(now)).toBeGreaterThanOrEqual(surelyIn);
          expect(c.total(now)).toBeLessThanOrEqual(atMost);
        },
      ),
      { numRuns: 300 },
    );
  });
});
