/**
 * The xorshift32 step behind every deterministic test body (the soak's,
 * the fault suite's, the integration tests'): both ends of a transfer make
 * the same bytes from a seed, so a body is checked without keeping a copy.
 * Fills `words` and returns the generator's state to continue from.
 */
export function xorshiftFill(words: Uint32Array, state: number): number {
  let x = state;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  return x;
}
