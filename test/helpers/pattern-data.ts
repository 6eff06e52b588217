import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { xorshiftFill } from '../../bench/pattern.js';

/** 64 KiB: the size of one tunnel DATA frame, and a typical socket read. */
const CHUNK = 64 * 1024;

/**
 * Deterministic pseudo-random bytes (xorshift32 from `seed`), made one
 * chunk at a time so a 64 MiB body never sits in memory whole. Same
 * `(total, seed)` → same bytes whatever the chunk size (a multiple of 4),
 * so the receiving side's sha256 can be checked against patternSha256.
 */
export function* patternChunks(total: number, seed = 1, chunkSize = CHUNK): Generator<Buffer> {
  if (chunkSize <= 0 || chunkSize % 4 !== 0) throw new RangeError(`chunkSize ${chunkSize} must be a positive multiple of 4`);
  let x = seed >>> 0 || 1;
  let left = total;
  while (left > 0) {
    const n = Math.min(chunkSize, left);
    const words = new Uint32Array(Math.ceil(n / 4));
    x = xorshiftFill(words, x);
    left -= n;
    yield Buffer.from(words.buffer, 0, n);
  }
}

/** A Readable of patternChunks (pulled on demand, so backpressure holds). */
export function patternStream(total: number, seed = 1, chunkSize = CHUNK): Readable {
  return Readable.from(patternChunks(total, seed, chunkSize), { objectMode: false });
}

/** sha256 (hex) of patternChunks(total, seed). */
export function patternSha256(total: number, seed = 1): string {
  const hash = createHash('sha256');
  for (const chunk of patternChunks(total, seed)) hash.update(chunk);
  return hash.digest('hex');
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}
