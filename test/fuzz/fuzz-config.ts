/**
 * How long the fuzz tests run. CI runs each property a fixed number of
 * times from a fixed seed (the whole suite stays under ~10 s and a failure
 * replays exactly). A longer campaign locally:
 *
 *   POSTERN_FUZZ_RUNS=200000 POSTERN_FUZZ_SEED=random npm test -- test/fuzz
 *
 * POSTERN_FUZZ_RUNS multiplies every property's CI run count by
 * runs / 1000 (so 1000 is "as in CI", 200000 is 200×); POSTERN_FUZZ_SEED
 * is a number, or `random` for a new one each run (fast-check prints the
 * seed and path of any failure; put them back in to replay it).
 */

const RUNS = process.env.POSTERN_FUZZ_RUNS;
const SEED = process.env.POSTERN_FUZZ_SEED;

/** True when a longer local campaign was asked for. */
export const longCampaign = RUNS !== undefined && Number(RUNS) > 1000;

/** Runs of a property: `ciRuns` in CI, scaled by POSTERN_FUZZ_RUNS / 1000 otherwise. */
export function fuzzRuns(ciRuns: number): number {
  if (RUNS === undefined) return ciRuns;
  const scale = Number(RUNS) / 1000;
  if (!(scale > 0)) throw new Error(`POSTERN_FUZZ_RUNS must be a positive number, got ${RUNS}`);
  return Math.max(1, Math.round(ciRuns * scale));
}

/** Seed of every property: fixed in CI. */
export const fuzzSeed: number =
  SEED === undefined ? 0x5057_7e42 : SEED === 'random' ? (Date.now() ^ (Math.random() * 0x7fffffff)) | 0 : Number(SEED);

/** Per-test timeout: the vitest default ceiling in CI, a day for a campaign. */
export const fuzzTimeoutMs = longCampaign ? 24 * 3600_000 : 60_000;

/** fast-check parameters of a property that runs `ciRuns` times in CI. */
export function fuzzParams(ciRuns: number): { seed: number; numRuns: number } {
  return { seed: fuzzSeed, numRuns: fuzzRuns(ciRuns) };
}

if (longCampaign) process.stdout.write(`[fuzz] campaign: POSTERN_FUZZ_RUNS=${RUNS} POSTERN_FUZZ_SEED=${fuzzSeed}\n`);
