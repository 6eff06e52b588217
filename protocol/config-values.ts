import { ConfigError } from './tunnel-error.js';

/**
 * Setting values as the server and the agent both read them, with one
 * wording for what was wrong: the setting's name, what was expected, what
 * came.
 */

/** A whole number within [min, max]; `setting` names it in the error (env name or flag). */
export function parseInteger(setting: string, raw: string, min: number, max: number): number {
  if (!/^\d+$/.test(raw.trim())) {
    throw new ConfigError(setting, `expected a whole number between ${min} and ${max}, got ${JSON.stringify(raw)}`);
  }
  const n = Number(raw.trim());
  if (n < min || n > max) throw new ConfigError(setting, `${n} is outside the allowed range ${min}–${max}`);
  return n;
}

/** true/1/yes or false/0/no, in any case. */
export function parseBoolean(setting: string, raw: string): boolean {
  const v = raw.trim().toLowerCase();
  if (v === 'true' || v === '1' || v === 'yes') return true;
  if (v === 'false' || v === '0' || v === 'no') return false;
  throw new ConfigError(setting, `expected true or false, got ${JSON.stringify(raw)}`);
}
