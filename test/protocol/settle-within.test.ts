import { describe, expect, it, vi } from 'vitest';
import { settleWithin } from '../../protocol/settle-within.js';

describe('settleWithin', () => {
  it('is true when the promise settles first, either way, and clears its timer', async () => {
    vi.useFakeTimers();
    try {
      await expect(settleWithin(Promise.resolve(1), 1_000)).resolves.toBe(true);
      await expect(settleWithin(Promise.reject(new Error('x')), 1_000)).resolves.toBe(true);
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it('is false when the time runs out first', async () => {
    vi.useFakeTimers();
    try {
      const never = new Promise(() => undefined);
      const result = settleWithin(never, 500);
      await vi.advanceTimersByTimeAsync(499);
      let settled = false;
      void result.then(() => (settled = true));
      await Promise.resolve();
      expect(settled).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      await expect(result).resolves.toBe(false);
    } finally {
      vi.useRealTimers();
    }
  });
});
