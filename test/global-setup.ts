import { buildCli } from './helpers/build-cli.js';

/**
 * Compiles the CLI once per test run, before any test file starts: several
 * files run the real `postern` as child processes, and tsc writing the same
 * output from two workers at once would hand one of them half-written files.
 */
export default function setup(): void {
  buildCli();
}
