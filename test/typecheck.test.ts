import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');

/**
 * `npm test` is the one command CI runs, so the type check runs inside it:
 * a type error anywhere (product, bench or tests) fails one named test
 * instead of hiding behind transpile-only test runs.
 */
describe('typecheck', () => {
  it('the whole tree type-checks (tsc -p tsconfig.json --noEmit)', () => {
    const r = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.json'), '--noEmit'], {
      encoding: 'utf8',
    });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  }, 120_000);
});
