import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseBoolean, parseInteger } from '../../protocol/config-values.js';
import { ConfigError } from '../../protocol/tunnel-error.js';

describe('parseInteger', () => {
  it('takes a whole number in range, surrounding blanks allowed', () => {
    expect(parseInteger('X', '0', 0, 10)).toBe(0);
    expect(parseInteger('X', ' 10 ', 0, 10)).toBe(10);
  });

  it('names the setting, the range and the value it refused', () => {
    for (const bad of ['', 'ten', '1.5', '-1', '1e3', '0x10', '5s', '١٢']) {
      expect(() => parseInteger('POSTERN_X', bad, 0, 100)).toThrow(ConfigError);
      expect(() => parseInteger('POSTERN_X', bad, 0, 100)).toThrow(`POSTERN_X: expected a whole number between 0 and 100, got ${JSON.stringify(bad)}`);
    }
    expect(() => parseInteger('--port', '70000', 0, 65535)).toThrow('--port: 70000 is outside the allowed range 0–65535');
    expect(() => parseInteger('--n', '3', 5, 9)).toThrow('--n: 3 is outside the allowed range 5–9');
  });

  it('returns exactly the number for every in-range input and throws a ConfigError for everything else (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1_000_000 }), (n) => {
        expect(parseInteger('X', String(n), 0, 1_000_000)).toBe(n);
      }),
    );
    fc.assert(
      fc.property(fc.string(), (raw) => {
        try {
          const n = parseInteger('X', raw, 0, 1000);
          expect(Number.isInteger(n) && n >= 0 && n <= 1000).toBe(true);
          expect(String(n)).toBe(raw.trim().replace(/^0+(?=\d)/, ''));
        } catch (err) {
          expect(err).toBeInstanceOf(ConfigError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('parseBoolean', () => {
  it('takes true/1/yes and false/0/no in any case', () => {
    for (const t of ['true', 'TRUE', '1', 'yes', ' Yes ']) expect(parseBoolean('X', t)).toBe(true);
    for (const f of ['false', 'False', '0', 'no', ' NO']) expect(parseBoolean('X', f)).toBe(false);
  });

  it('refuses anything else, naming the setting', () => {
    for (const bad of ['', 'on', 'off', 'y', '2', 'truee']) {
      expect(() => parseBoolean('POSTERN_REQUIRE_API_KEYS', bad)).toThrow(
        `POSTERN_REQUIRE_API_KEYS: expected true or false, got ${JSON.stringify(bad)}`,
      );
    }
  });
});
