import { describe, expect, it } from 'vitest';
import { AnswerBacklog, DEFAULT_FLOOD_LIMITS, FrameBudget } from '../../protocol/frame-budget.js';

describe('FrameBudget', () => {
  it('allows a burst, then refuses until time refills it', () => {
    const b = new FrameBudget(3, 1000, 0);
    expect([b.spend(0, 'PING'), b.spend(0, 'PING'), b.spend(0, 'PING'), b.spend(0, 'PING')]).toStrictEqual([true, true, true, false]);
    // 1 000 per second: one more token per ms.
    expect(b.spend(0.5, 'PING')).toBe(false);
    expect(b.spend(1.5, 'PING')).toBe(true);
    expect(b.spend(1.5, 'PING')).toBe(false);
  });

  it('refills to the burst and no further', () => {
    const b = new FrameBudget(5, 1000, 0);
    for (let i = 0; i < 5; i++) b.spend(0, 'x');
    expect(b.remaining).toBe(0);
    b.spend(1_000_000, 'x');
    expect(b.remaining).toBe(4);
  });

  it('sustains exactly its rate forever', () => {
    const b = new FrameBudget(10, 100, 0);
    // One frame per 10 ms for 100 s is 100/s: never refused.
    for (let t = 0; t < 100_000; t += 10) expect(b.spend(t, 'PING')).toBe(true);
    // Twice the rate drains the burst, then half the frames are refused.
    let refused = 0;
    for (let t = 100_000; t < 110_000; t += 5) if (!b.spend(t, 'PING')) refused++;
    expect(refused).toBeGreaterThan(900);
    expect(refused).toBeLessThan(1100);
  });

  it('ignores a clock that goes backwards', () => {
    const b = new FrameBudget(1, 1000, 100);
    expect(b.spend(100, 'x')).toBe(true);
    expect(b.spend(50, 'x')).toBe(false);
  });

  it('says what spent it, most first, in the message that closes a flood', () => {
    const b = new FrameBudget(4, 10, 0);
    b.spend(0, 'empty DATA');
    for (let i = 0; i < 4; i++) b.spend(0, 'PING');
    expect(b.describe()).toBe('4 PING, 1 empty DATA');
    expect(b.exhaustedMessage()).toBe('flood: the peer sent more frames that do no work than allowed (4 at once, 10/s): 4 PING, 1 empty DATA');
  });

  it('has defaults far above what a legitimate peer sends', () => {
    // A PING every 10 ms (queue probes) plus heartbeats is ~120/s.
    expect(DEFAULT_FLOOD_LIMITS.idleFramesPerSecond).toBeGreaterThanOrEqual(8 * 120);
    // Three late frames for each of 1 024 streams reset at once.
    expect(DEFAULT_FLOOD_LIMITS.idleFrameBurst).toBeGreaterThanOrEqual(3 * 1024);
  });
});

describe('AnswerBacklog', () => {
  it('counts answers while the socket is backed up and refuses past the limit', () => {
    const a = new AnswerBacklog(2);
    expect([a.queued(true), a.queued(true), a.queued(true)]).toStrictEqual([true, true, false]);
    expect(a.size).toBe(3);
  });

  it('starts over when the socket drains or is seen below its high-water mark', () => {
    const a = new AnswerBacklog(1);
    a.queued(true);
    a.drained();
    expect(a.queued(true)).toBe(true);
    expect(a.queued(false)).toBe(true);
    expect(a.size).toBe(0);
    expect(a.queued(true)).toBe(true);
  });
});
