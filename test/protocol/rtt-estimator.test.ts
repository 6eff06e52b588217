import { describe, expect, it } from 'vitest';
import { RttEstimator } from '../../protocol/rtt-estimator.js';

describe('RttEstimator', () => {
  it('knows nothing before the first sample', () => {
    const r = new RttEstimator();
    expect(r.baseMs).toBe(0);
    expect(r.latestMs).toBe(0);
    expect(r.queueDelayMs(0)).toBe(0);
  });

  it('takes the smallest sample as the base and the excess of the latest as queueing delay', () => {
    const r = new RttEstimator();
    r.sample(0, 0.3);
    r.sample(10, 0.2);
    r.sample(20, 12.2);
    expect(r.baseMs).toBe(0.2);
    expect(r.latestMs).toBe(12.2);
    expect(r.queueDelayMs(25)).toBeCloseTo(12, 10);
  });

  it('reports no queue once the latest sample is stale (an idle connection has none)', () => {
    const r = new RttEstimator();
    r.sample(0, 1);
    r.sample(10, 9);
    expect(r.queueDelayMs(10 + RttEstimator.FRESH_MS)).toBe(8);
    expect(r.queueDelayMs(11 + RttEstimator.FRESH_MS)).toBe(0);
  });

  it('forgets an old minimum after two epochs, so a route that got slower becomes the new base', () => {
    const r = new RttEstimator();
    const E = RttEstimator.EPOCH_MS;
    r.sample(0, 1); // epoch 1
    r.sample(E, 30); // epoch 2: the previous epoch's 1 ms still counts
    expect(r.baseMs).toBe(1);
    r.sample(2 * E, 30); // epoch 3: epoch 1 is forgotten
    expect(r.baseMs).toBe(30);
    expect(r.queueDelayMs(2 * E)).toBe(0);
  });

  it('ignores samples that are not a finite, non-negative number', () => {
    const r = new RttEstimator();
    r.sample(0, 5);
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) r.sample(1, bad);
    expect(r.latestMs).toBe(5);
    expect(r.baseMs).toBe(5);
  });

  it('never reports a negative delay', () => {
    const r = new RttEstimator();
    r.sample(0, 5);
    r.sample(1, 2);
    expect(r.queueDelayMs(1)).toBe(0);
    expect(r.baseMs).toBe(2);
  });
});
