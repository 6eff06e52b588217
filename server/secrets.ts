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
