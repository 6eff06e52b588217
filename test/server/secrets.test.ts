import { describe, expect, it } from 'vitest';
import { generateToken, hashToken, tokenMatches } from '../../server/secrets.js';

describe('secrets', () => {
  it('generates 256-bit url-safe tokens that differ', () => {
    const a = generateToken();
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(generateToken()).not.toBe(a);
  });

  it('matches a token against its hash only', () => {
    const t = generateToken();
    const h = hashToken(t);
    expect(h).not.toContain(t);
    expect(tokenMatches(t, h)).toBe(true);
    expect(tokenMatches(`${t}x`, h)).toBe(false);
    expect(tokenMatches('', h)).toBe(false);
    expect(tokenMatches(t, 'not-hex')).toBe(false);
  });
});
