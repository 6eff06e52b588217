import { describe, expect, it } from 'vitest';
import { MAX_WINDOW } from '../../protocol/codec.js';
import { ErrorCodes } from '../../protocol/error-codes.js';
import { ReceiveWindow, SendWindow, WindowBudget, MIN_GROWTH_HORIZON_MS, QUEUE_DELAY_TARGET_MS } from '../../protocol/flow-window.js';
import { ProtocolError } from '../../protocol/tunnel-error.js';

const KiB = 1024;
const W = 64 * KiB;

function expectFlowControl(fn: () => void, message: RegExp): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(ProtocolError);
  expect((thrown as ProtocolError).info).toBe(ErrorCodes.FLOW_CONTROL);
  expect((thrown as ProtocolError).message).toMatch(message);
}

describe('SendWindow', () => {
  it('starts with the initial credit', () => {
    expect(new SendWindow(W).available).toBe(W);
  });

  it('consume takes credit, down to zero', () => {
    const w = new SendWindow(W);
    w.consume(1000);
    expect(w.available).toBe(W - 1000);
    w.consume(W - 1000);
    expect(w.available).toBe(0);
  });

  it('refuses to consume more than the credit as our own bug (RangeError, not a protocol error)', () => {
    const w = new SendWindow(100);
    expect(() => w.consume(101)).toThrow(RangeError);
    expect(w.available).toBe(100);
  });

  it('grant adds the WINDOW_UPDATE increment', () => {
    const w = new SendWindow(W);
    w.consume(W);
    w.grant(4096);
    expect(w.available).toBe(4096);
  });

  it('accepts a grant up to exactly MAX_WINDOW', () => {
    const w = new SendWindow(W);
    w.grant(MAX_WINDOW - W);
    expect(w.available).toBe(MAX_WINDOW);
  });

  it('rejects a grant that overflows MAX_WINDOW with FLOW_CONTROL and keeps the credit', () => {
    const w = new SendWindow(W);
    expectFlowControl(() => w.grant(MAX_WINDOW - W + 1), /overflows the window/);
    expect(w.available).toBe(W);
  });
});

describe('WindowBudget', () => {
  it('reserves up to its limit and no further', () => {
    const b = new WindowBudget(100);
    expect(b.tryReserve(60)).toBe(true);
    expect(b.tryReserve(41)).toBe(false);
    expect(b.reserved).toBe(60);
    expect(b.tryReserve(40)).toBe(true);
    expect(b.reserved).toBe(100);
  });

  it('release returns bytes and never goes below zero', () => {
    const b = new WindowBudget(100);
    b.tryReserve(50);
    b.release(20);
    expect(b.reserved).toBe(30);
    b.release(1000);
    expect(b.reserved).toBe(0);
  });
});

describe('ReceiveWindow', () => {
  const fresh = (opts: { max?: number; budget?: WindowBudget; now?: number } = {}) =>
    new ReceiveWindow(W, opts.max ?? 16 * W, opts.budget, opts.now ?? 0);

  /** Receives and consumes `n` bytes. */
  const pass = (w: ReceiveWindow, n: number) => {
    w.receive(n);
    w.consume(n);
  };

  it('accepts DATA up to exactly the window', () => {
    const w = fresh();
    w.receive(W - 1);
    w.receive(1);
    expect(w.buffered).toBe(W);
  });

  it('rejects DATA over the remaining window with FLOW_CONTROL', () => {
    const w = fresh();
    w.receive(W - 10);
    expectFlowControl(() => w.receive(11), /peer sent 11 bytes with only 10 bytes of window left/);
    expect(w.buffered).toBe(W - 10);
  });

  it('rejects a first DATA larger than the window', () => {
    expectFlowControl(() => fresh().receive(W + 1), /with only 65536 bytes/);
  });

  it('does not free window by consuming: only an update does', () => {
    const w = fresh();
    pass(w, W);
    expect(w.buffered).toBe(0);
    expectFlowControl(() => w.receive(1), /only 0 bytes/);
  });

  it('consume never takes more than was received', () => {
    const w = fresh();
    w.receive(100);
    w.consume(500);
    expect(w.buffered).toBe(0);
    expect(w.takeUpdate(0, 0)).toBe(0); // 100 < W/2
  });

  it('sends no update while less than half the window is consumed', () => {
    const w = fresh();
    pass(w, W / 2 - 1);
    expect(w.takeUpdate(1000, 0)).toBe(0);
  });

  it('sends no update when nothing is consumed, however much is buffered', () => {
    const w = fresh();
    w.receive(W);
    expect(w.takeUpdate(1000, 0)).toBe(0);
  });

  it('updates by exactly the consumed bytes once half the window is consumed', () => {
    const w = fresh();
    pass(w, W / 2);
    expect(w.takeUpdate(1000, 0)).toBe(W / 2);
    // Nothing new consumed: no second update.
    expect(w.takeUpdate(1001, 0)).toBe(0);
  });

  it('counts consumed bytes only once: buffered bytes are not acknowledged', () => {
    const w = fresh();
    w.receive(W);
    w.consume(W / 2 + 5);
    expect(w.takeUpdate(1000, 0)).toBe(W / 2 + 5);
    expect(w.buffered).toBe(W / 2 - 5);
  });

  it('lets the peer send exactly the increment more after an update', () => {
    const w = fresh();
    pass(w, W);
    expect(w.takeUpdate(1000, 0)).toBe(W);
    w.receive(W);
    expectFlowControl(() => w.receive(1), /only 0 bytes/);
  });

  it('with the RTT unknown (0), grows only when updates come faster than MIN_GROWTH_HORIZON_MS', () => {
    const w = fresh({ now: 0 });
    pass(w, W);
    expect(w.takeUpdate(MIN_GROWTH_HORIZON_MS, 0)).toBe(W);
    expect(w.size).toBe(W);
    pass(w, W);
    expect(w.takeUpdate(MIN_GROWTH_HORIZON_MS + 1, 0)).toBe(2 * W);
    expect(w.size).toBe(2 * W);
  });

  it('uses the larger of 2×RTT and MIN_GROWTH_HORIZON_MS (a quiet-link RTT of 0.1 ms still grows at 5 ms)', () => {
    const w = fresh({ now: 0 });
    pass(w, W);
    expect(w.takeUpdate(5, 0.1)).toBe(2 * W);
  });

  it('doubles when updates come faster than 2×RTT, and grants the growth at once', () => {
    const budget = new WindowBudget(64 * W);
    const w = fresh({ budget, now: 0 });
    pass(w, W);
    // 19 ms since the window opened, RTT 10 ms: the window is the bottleneck.
    expect(w.takeUpdate(19, 10)).toBe(2 * W);
    expect(w.size).toBe(2 * W);
    expect(budget.reserved).toBe(W);
    // The peer may now have the whole doubled window in flight.
    w.receive(2 * W);
    expectFlowControl(() => w.receive(1), /only 0 bytes/);
  });

  it('needs half of the grown window consumed before the next update', () => {
    const w = fresh({ now: 0 });
    pass(w, W);
    w.takeUpdate(1, 10); // grows to 2W
    pass(w, W - 1); // < half of 2W
    expect(w.takeUpdate(2, 10)).toBe(0);
    pass(w, 1);
    expect(w.takeUpdate(3, 10)).toBe(W + 2 * W); // consumed W, plus doubling to 4W
    expect(w.size).toBe(4 * W);
  });

  it('does not grow when updates come 2×RTT or more apart', () => {
    const w = fresh({ now: 0 });
    pass(w, W);
    expect(w.takeUpdate(20, 10)).toBe(W);
    pass(w, W);
    expect(w.takeUpdate(100, 10)).toBe(W);
    expect(w.size).toBe(W);
  });

  it('measures "faster than 2×RTT" from the previous update, not from creation', () => {
    const w = fresh({ now: 0 });
    pass(w, W);
    expect(w.takeUpdate(500, 10)).toBe(W); // slow: no growth, but resets the timer
    pass(w, W);
    expect(w.takeUpdate(505, 10)).toBe(2 * W); // 5 ms after the last update
    expect(w.size).toBe(2 * W);
  });

  it('never grows above maxWindow', () => {
    const w = fresh({ max: 3 * W, now: 0 });
    let t = 0;
    const sizes: number[] = [];
    for (let i = 0; i < 6; i++) {
      pass(w, w.size);
      const increment = w.takeUpdate(++t, 10);
      expect(increment).toBeGreaterThan(0);
      sizes.push(w.size);
    }
    expect(sizes).toStrictEqual([2 * W, 3 * W, 3 * W, 3 * W, 3 * W, 3 * W]);
  });

  it('halves instead of growing while the queueing delay is over QUEUE_DELAY_TARGET_MS, withholding part of the credit', () => {
    const budget = new WindowBudget(64 * W);
    const w = fresh({ budget, now: 0 });
    pass(w, W);
    expect(w.takeUpdate(1, 0)).toBe(2 * W); // grows to 2W
    pass(w, 2 * W);
    expect(w.takeUpdate(2, 0)).toBe(4 * W); // grows to 4W
    expect(budget.reserved).toBe(3 * W);
    pass(w, 2 * W);
    // Consumed 2W, but the queue is long: grant only 2W - 2W = 0 and shrink to 2W.
    expect(w.takeUpdate(3, 0, QUEUE_DELAY_TARGET_MS + 1)).toBe(0);
    expect(w.size).toBe(2 * W);
    expect(budget.reserved).toBe(W);
    // The peer still holds 2W of credit from before: exactly the new window.
    w.receive(2 * W);
    expectFlowControl(() => w.receive(1), /only 0 bytes/);
  });

  it('never shrinks below its initial window, and grows again once the queue is gone', () => {
    const w = fresh({ now: 0 });
    pass(w, W);
    expect(w.takeUpdate(1, 0, 50)).toBe(W); // at the initial size: nothing to withhold
    expect(w.size).toBe(W);
    pass(w, W);
    expect(w.takeUpdate(2, 0, QUEUE_DELAY_TARGET_MS)).toBe(2 * W); // at the target, not over it: grows
    pass(w, 2 * W);
    expect(w.takeUpdate(3, 0, 100)).toBe(W); // 2W consumed, W withheld
    expect(w.size).toBe(W);
  });

  it('on a long path, counts a queue as congestion only once it is longer than the base RTT', () => {
    const w = fresh({ now: 0 });
    pass(w, W);
    expect(w.takeUpdate(40, 50, 30)).toBe(2 * W); // 30 ms of queue on a 50 ms path: still grows
    pass(w, 2 * W);
    expect(w.takeUpdate(60, 50, 60)).toBe(W); // 60 ms: halves, withholding W of the 2W consumed
    expect(w.size).toBe(W);
  });

  it('grows on the base RTT it is given: 2 × base above MIN_GROWTH_HORIZON_MS widens the horizon', () => {
    const w = fresh({ now: 0 });
    pass(w, W);
    expect(w.takeUpdate(40, 25)).toBe(2 * W); // 40 ms < 2 × 25 ms
    pass(w, 2 * W);
    expect(w.takeUpdate(100, 25)).toBe(2 * W); // 60 ms apart: not window-limited
    expect(w.size).toBe(2 * W);
  });

  it('grows only as far as the connection budget allows', () => {
    const budget = new WindowBudget(W + W / 2);
    const w = fresh({ budget, now: 0 });
    pass(w, W);
    expect(w.takeUpdate(1, 10)).toBe(2 * W); // reserves W
    pass(w, 2 * W);
    expect(w.takeUpdate(2, 10)).toBe(2 * W); // would need 2W more; only W/2 left
    expect(w.size).toBe(2 * W);
    expect(budget.reserved).toBe(W);
  });

  it('shares one budget between streams', () => {
    const budget = new WindowBudget(W);
    const a = fresh({ budget, now: 0 });
    const b = fresh({ budget, now: 0 });
    pass(a, W);
    a.takeUpdate(1, 10);
    pass(b, W);
    b.takeUpdate(1, 10);
    expect(a.size).toBe(2 * W);
    expect(b.size).toBe(W);
    expect(budget.reserved).toBe(W);
  });

  it('release returns the grown window to the budget and is idempotent', () => {
    const budget = new WindowBudget(64 * W);
    const w = fresh({ budget, now: 0 });
    pass(w, W);
    w.takeUpdate(1, 10);
    pass(w, 2 * W);
    w.takeUpdate(2, 10);
    expect(budget.reserved).toBe(3 * W);
    w.release();
    expect(budget.reserved).toBe(0);
    expect(w.size).toBe(W);
    w.release();
    expect(budget.reserved).toBe(0);
  });

  it('release of a window that never grew leaves other streams’ reservations alone', () => {
    const budget = new WindowBudget(64 * W);
    budget.tryReserve(5 * W);
    fresh({ budget }).release();
    expect(budget.reserved).toBe(5 * W);
  });

  it('grows without a budget when none is given', () => {
    const w = fresh({ now: 0 });
    pass(w, W);
    expect(w.takeUpdate(1, 10)).toBe(2 * W);
  });
});
