import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..', '..');

/** Path of the compiled CLI that test/global-setup.ts builds before the run. */
export function cliPath(): string {
  const cli = join(root, '.test-build', 'cli', 'postern.js');
  if (!existsSync(cli)) throw new Error(`${cli} is missing: test/global-setup.ts builds it (run the tests with npm test)`);
  return cli;
}

/**
 * Compiles the sources once into .test-build/ (inside the repo so the
 * output resolves node_modules like dist/ does) and returns the CLI's path.
 * CLI tests run the real compiled `postern` as a child process. Only the
 * product's own directories (tsconfig.cli.json): the bench is not needed,
 * and the whole tree's types are checked by test/typecheck.test.ts.
 */
export function buildCli(): string {
  const out = join(root, '.test-build');
  const cli = join(out, 'cli', 'postern.js');
  execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.cli.json'), '--outDir', out], {
    stdio: 'inherit',
  });
  if (!existsSync(cli)) throw new Error(`build did not produce ${cli}`);
  return cli;
}
