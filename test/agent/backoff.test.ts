import { describe, expect, it } from 'vitest';
import { Backoff } from '../../agent/backoff.js';

describe('Backoff', () => {
  it('doubles the ceiling per attempt up to the cap (random = just under 1)', () => {
    const b = new Backoff(100, 1000, () => 0.999999);
    expect([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()]).toEqual([99, 199, 399, 799, 999, 999]);
  });

  it('uses full jitter: random 0 gives 0, random 0.5 gives half the ceiling', () => {
    expect(new Backoff(100, 1000, () => 0).next()).toBe(0);
    const half = new Backoff(100, 1000, () => 0.5);
    half.next();
    expect(half.next()).toBe(100);
  });

  it('starts over after reset', () => {
    const b = new Backoff(100, 1000, () => 0.999999);
    b.next();
    b.next();
    b.next();
    expect(b.attempts).toBe(3);
    b.reset();
    expect(b.attempts).toBe(0);
    expect(b.next()).toBe(99);
  });

  it('never overflows after very many attempts', () => {
    const b = new Backoff(500, 30_000, () => 0.999999);
    for (let i = 0; i < 10_000; i++) b.next();
    expect(b.next()).toBe(29_999);
  });
});
