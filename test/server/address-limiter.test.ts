import { describe, expect, it } from 'vitest';
import { addressKey, AddressLimiter } from '../../server/address-limiter.js';

const opts = { limit: 3, windowMs: 1_000, blockMs: 5_000 };

describe('AddressLimiter', () => {
  it('blocks an address at the limit, for blockMs, and reports the block once', () => {
    const l = new AddressLimiter(opts);
    expect(l.recordFailure('a', 0)).toEqual({ failures: 1, first: true, blocked: false });
    expect(l.recordFailure('a', 10)).toEqual({ failures: 2, first: false, blocked: false });
    expect(l.retryAfterMs('a', 10)).toBe(0);
    expect(l.recordFailure('a', 20)).toEqual({ failures: 3, first: false, blocked: true });
    expect(l.retryAfterMs('a', 20)).toBe(5_000);
    expect(l.retryAfterMs('a', 4_020)).toBe(1_000);
    expect(l.retryAfterMs('a', 5_020)).toBe(0);
  });

  it('counts each address on its own', () => {
    const l = new AddressLimiter(opts);
    for (let i = 0; i < 3; i++) l.recordFailure('a', i);
    expect(l.retryAfterMs('a', 5)).toBeGreaterThan(0);
    expect(l.retryAfterMs('b', 5)).toBe(0);
    expect(l.recordFailure('b', 5).first).toBe(true);
  });

  it('starts a fresh window once the old one has passed, so slow failures never block', () => {
    const l = new AddressLimiter(opts);
    for (let t = 0; t < 20_000; t += 600) {
      // Two failures per window at most: never three within 1 s.
      const v = l.recordFailure('a', t);
      expect(v.blocked).toBe(false);
      expect(l.retryAfterMs('a', t)).toBe(0);
    }
  });

  it('gives a fresh budget after a block ends, and blocks again at the limit', () => {
    const l = new AddressLimiter({ limit: 2, windowMs: 60_000, blockMs: 100 });
    l.recordFailure('a', 0);
    expect(l.recordFailure('a', 1).blocked).toBe(true);
    expect(l.retryAfterMs('a', 101)).toBe(0);
    expect(l.recordFailure('a', 102)).toEqual({ failures: 1, first: true, blocked: false });
    expect(l.recordFailure('a', 103).blocked).toBe(true);
    expect(l.retryAfterMs('a', 103)).toBe(100);
  });

  it('with limit 0 counts (for logging) but never blocks', () => {
    const l = new AddressLimiter({ limit: 0, windowMs: 1_000, blockMs: 0 });
    for (let i = 1; i <= 100; i++) {
      const v = l.recordFailure('a', i);
      expect(v).toEqual({ failures: i, first: i === 1, blocked: false });
    }
    expect(l.retryAfterMs('a', 100)).toBe(0);
  });

  it('keeps at most maxAddresses entries under a flood from many addresses', () => {
    const l = new AddressLimiter({ ...opts, maxAddresses: 100 });
    for (let i = 0; i < 10_000; i++) l.recordFailure(`10.0.${i >> 8}.${i & 255}`, i % 500);
    expect(l.size).toBe(100);
  });

  it('drops expired entries before evicting live ones', () => {
    const l = new AddressLimiter({ ...opts, maxAddresses: 3 });
    l.recordFailure('old1', 0);
    l.recordFailure('old2', 0);
    for (let i = 0; i < 3; i++) l.recordFailure('blocked', 500 + i);
    // old1 and old2 expired at 1000; the blocked one lives until 5502.
    l.recordFailure('new1', 2_000);
    l.recordFailure('new2', 2_000);
    expect(l.size).toBe(3);
    expect(l.retryAfterMs('blocked', 2_000)).toBe(3_502);
  });
});

describe('addressKey', () => {
  it.each([
    ['127.0.0.1', '127.0.0.1'],
    ['::ffff:10.1.2.3', '10.1.2.3'],
    ['::FFFF:10.1.2.3', '10.1.2.3'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:db8:1:2::ffff', '2001:db8:1:2::/64'],
    ['2001:0db8:0001:0002:aaaa::1', '2001:db8:1:2::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    ['::ffff:1.2.3.4:', '::ffff:1.2.3.4:'],
    ['', 'unknown'],
    [undefined, 'unknown'],
  ])('%s -> %s', (input, expected) => {
    expect(addressKey(input)).toBe(expected);
  });

  it('puts every address of one /64 under one key', () => {
    expect(addressKey('2001:db8:a:b:1::1')).toBe(addressKey('2001:db8:a:b:ffff:ffff:ffff:ffff'));
    expect(addressKey('2001:db8:a:b::1')).not.toBe(addressKey('2001:db8:a:c::1'));
  });
});
