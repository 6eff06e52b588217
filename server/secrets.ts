import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Client and admin tokens: 32 random bytes (256 bits), base64url. At that
 * entropy a fast hash is safe to store (no dictionary to try), so the store
 * keeps SHA-256 and never the token.
 */
export function generateToken(): string {
  return randomBytes(32).toString('base64url');
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Compares a presented token with a stored hash in constant time. */
export function tokenMatches(presented: string, storedHash: string): boolean {
  const a = Buffer.from(hashToken(presented), 'hex');
  const b = Buffer.from(storedHash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * True if `presented` hashes to any of `storedHashes` (SHA-256, hex). Every
 * hash is compared, in constant time, whichever matches: the time depends
 * on the number of keys, never on how close a guess came.
 */
export function tokenMatchesAny(presented: string, storedHashes: readonly Buffer[]): boolean {
  const digest = createHash('sha256').update(presented, 'utf8').digest();
  let match = false;
  for (const stored of storedHashes) {
    if (stored.length === digest.length && timingSafeEqual(digest, stored)) match = true;
  }
  return match;
}
