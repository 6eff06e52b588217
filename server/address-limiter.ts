import { isIPv4, isIPv6 } from 'node:net';

/**
 * Cap on source addresses tracked at once. An entry is a few dozen bytes, so
 * 10,000 of them stay under a megabyte whatever an attacker sends; past the
 * cap the oldest entry is dropped (see `recordFailure`).
 */
export const DEFAULT_MAX_ADDRESSES = 10_000;

export interface AddressLimiterOptions {
  /** Failures within `windowMs` that block an address; 0 = never block (failures are still counted). */
  limit: number;
  /** Length of the counting window, from an address's first failure (ms). */
  windowMs: number;
  /** How long a blocked address is refused (ms). */
  blockMs: number;
  /** Addresses tracked at once. Default DEFAULT_MAX_ADDRESSES. */
  maxAddresses?: number;
}

/** What one failure means for its address. */
export interface FailureVerdict {
  /** Failures from the address in the current window, this one included. */
  failures: number;
  /** The first failure of the window (worth a log line; the rest are not). */
  first: boolean;
  /** This failure reached the limit: the address is refused from now on, for blockMs. */
  blocked: boolean;
}

interface Entry {
  windowStart: number;
  failures: number;
  /** 0 when not blocked. */
  blockedUntil: number;
}

/**
 * Counts failed authentications per source address in a fixed window and
 * blocks an address that reaches the limit, for a cool-down. Pure: time is
 * passed in, nothing is scheduled, memory is bounded by `maxAddresses`.
 *
 * Only failures are recorded, so a successful authentication costs one map
 * lookup (`retryAfterMs`) and is never delayed. A success does not clear the
 * count: an attacker holding one valid credential could otherwise reset it
 * between guesses at another.
 */
export class AddressLimiter {
  /** In order of the last change (window start or block), oldest first. */
  private readonly entries = new Map<string, Entry>();
  private readonly maxAddresses: number;

  constructor(private readonly opts: AddressLimiterOptions) {
    this.maxAddresses = opts.maxAddresses ?? DEFAULT_MAX_ADDRESSES;
  }

  /** Addresses currently tracked. */
  get size(): number {
    return this.entries.size;
  }

  /** Milliseconds until `address` may try again; 0 when it is not blocked. */
  retryAfterMs(address: string, now = Date.now()): number {
    const entry = this.entries.get(address);
    if (!entry || entry.blockedUntil <= now) return 0;
    return entry.blockedUntil - now;
  }

  /** Counts one failed authentication from `address`. */
  recordFailure(address: string, now = Date.now()): FailureVerdict {
    let entry = this.entries.get(address);
    // A finished block starts a fresh window: the next `limit` failures block again.
    if (entry && (this.expired(entry, now) || (entry.blockedUntil > 0 && entry.blockedUntil <= now))) {
      this.entries.delete(address);
      entry = undefined;
    }
    if (!entry) {
      entry = { windowStart: now, failures: 0, blockedUntil: 0 };
      this.makeRoom(now);
      this.entries.set(address, entry);
    }
    entry.failures++;
    const reached = this.opts.limit > 0 && entry.failures === this.opts.limit;
    if (reached) {
      entry.blockedUntil = now + this.opts.blockMs;
      // Moved to the end: the entry now lives as long as the block.
      this.entries.delete(address);
      this.entries.set(address, entry);
    }
    return { failures: entry.failures, first: entry.failures === 1, blocked: reached };
  }

  private expired(entry: Entry, now: number): boolean {
    return now >= Math.max(entry.windowStart + this.opts.windowMs, entry.blockedUntil);
  }

  /**
   * Drops expired entries from the front (the oldest), then, if the map is
   * still full, the oldest entry whatever its state: memory stays bounded
   * even under a flood from more addresses than the cap. Amortised O(1).
   */
  private makeRoom(now: number): void {
    for (const [address, entry] of this.entries) {
      if (!this.expired(entry, now)) break;
      this.entries.delete(address);
    }
    while (this.entries.size >= this.maxAddresses) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }
}

/**
 * The key an address is counted under: IPv4 as is (also when IPv4-mapped,
 * `::ffff:1.2.3.4`), IPv6 by its /64 prefix, since one host or customer
 * usually holds a whole /64 and could otherwise rotate through 2⁶⁴ addresses.
 * Anything else (a Unix socket, an empty address) is counted as itself.
 */
export function addressKey(address: string | undefined): string {
  if (!address) return 'unknown';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (isIPv4(address)) return address;
  const bare = address.replace(/%.*$/, '');
  if (!isIPv6(bare)) return address;
  return `${expandIPv6(bare).slice(0, 4).join(':')}::/64`;
}

/** The eight 16-bit groups of an IPv6 address, lower-case hex without leading zeros. */
function expandIPv6(address: string): string[] {
  let text = address.toLowerCase();
  // A trailing dotted quad (::1.2.3.4) is two groups.
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (quad) {
    const [a, b, c, d] = quad.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, quad.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const zeros = tail === undefined ? [] : new Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...zeros, ...right].map((g) => Number.parseInt(g, 16).toString(16));
}
