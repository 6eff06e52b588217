import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { onTestFailed } from 'vitest';
import {
  killAll,
  startAgent,
  startServer,
  type Child,
  type ClientCreds,
  type ServerProc,
  type StartServerOptions,
} from '../../bench/processes.js';
import { cliPath } from './build-cli.js';
import type { Cleanup } from './cleanup.js';

export { createClient, serverStatus, type Child, type ClientCreds, type ServerProc } from '../../bench/processes.js';

/**
 * `postern server` and `postern agent` as real child processes, from the CLI
 * that test/global-setup.ts compiled, on top of bench/processes.ts. Every
 * child is SIGKILLed by the test's Cleanup (so also when the test fails),
 * its output is kept, and a failing test prints it.
 */

/** Ties each child's life to the test worker (see bench/parent-watch.ts); Node 24 strips its types. */
const PARENT_WATCH = pathToFileURL(join(import.meta.dirname, '..', '..', 'bench', 'parent-watch.ts')).href;
/** Enough for every line of a test's run at info level (per-request logging is off). */
const KEEP_LINES = 5_000;
/** Lines of each child a failing test prints. */
const PRINT_LINES = 200;

/**
 * SIGKILLs the child when the test ends (a no-op if it is gone), and prints
 * its output if the test failed.
 */
export function track(cleanup: Cleanup, child: Child): Child {
  cleanup.add(async () => {
    if (child.exitInfo) return;
    child.proc.kill('SIGKILL');
    await child.exited;
  });
  onTestFailed(() => {
    const lines = child.lastLines().split('\n').slice(-PRINT_LINES).join('\n');
    process.stderr.write(`\n--- last output of ${child.name} (pid ${child.pid}) ---\n${lines}\n`);
  });
  return child;
}

/**
 * Starts `postern server` on 127.0.0.1 and waits for its 'listening' line.
 * `opts.env` adds settings (POSTERN_HEARTBEAT_MS, …); pass `dataDir`,
 * `port`, `ingressPort` and `adminToken` of an old server to restart it.
 */
export async function startServerProcess(cleanup: Cleanup, opts: StartServerOptions = {}): Promise<ServerProc> {
  // Also kills a child whose start failed before it could be tracked.
  cleanup.add(killAll);
  const server = await startServer([], { bin: cliPath(), parentWatch: PARENT_WATCH, keepLines: KEEP_LINES, ...opts });
  track(cleanup, server.child);
  cleanup.add(() => server.cleanup());
  return server;
}

export interface StartAgentProcessOptions {
  name?: string;
  /** Default the server's public port; a relay's port to put a fault between them. */
  proxyUrl?: string;
  /** POSTERN_CONNECTIONS, POSTERN_HEARTBEAT_MS, … */
  env?: NodeJS.ProcessEnv;
  /** Resolve once this many tunnels are connected (from the agent's log). Default 1; 0 = do not wait. */
  tunnels?: number;
}

/** Starts `postern agent` for a client and waits until `tunnels` tunnels are up. */
export async function startAgentProcess(
  cleanup: Cleanup,
  server: ServerProc,
  creds: ClientCreds,
  toolUrl: string,
  opts: StartAgentProcessOptions = {},
): Promise<Child> {
  cleanup.add(killAll);
  const agent = await startAgent(server, creds, toolUrl, {
    bin: cliPath(),
    parentWatch: PARENT_WATCH,
    keepLines: KEEP_LINES,
    waitConnected: false,
    ...(opts.name !== undefined ? { name: opts.name } : {}),
    ...(opts.proxyUrl !== undefined ? { proxyUrl: opts.proxyUrl } : {}),
    // The product's default (bench/processes.ts sends the bench's audit lines to /dev/null).
    env: { POSTERN_AUDIT_LOG: 'stdout', ...opts.env },
  });
  track(cleanup, agent);
  const tunnels = opts.tunnels ?? 1;
  if (tunnels > 0) await waitForLog(agent, (o) => o.msg === 'tunnel connected', { count: tunnels, timeoutMs: 15_000 });
  return agent;
}

export type LogLine = Record<string, unknown>;

/** Epoch ms a pino line was logged at. */
export function logTime(line: LogLine): number {
  return line.time as number;
}

/**
 * Resolves with the `count`-th JSON log line of `child` that matches and was
 * logged at or after `since` (epoch ms; default 0), counting lines already
 * written; rejects after timeoutMs with the child's output.
 */
export function waitForLog(
  child: Child,
  match: (line: LogLine) => boolean,
  opts: { since?: number; count?: number; timeoutMs?: number } = {},
): Promise<LogLine> {
  const since = opts.since ?? 0;
  const hit = (o: LogLine): boolean => logTime(o) >= since && match(o);
  const seen = child.jsonLines().filter(hit);
  const count = opts.count ?? 1;
  if (seen.length >= count) return Promise.resolve(seen[count - 1]!);
  let missing = count - seen.length;
  return child.waitForJson((o) => (hit(o) && --missing === 0 ? o : undefined), opts.timeoutMs ?? 10_000);
}

/** The JSON log lines of `child` logged at or after `since` that match. */
export function logLines(child: Child, match: (line: LogLine) => boolean, since = 0): LogLine[] {
  return child.jsonLines().filter((o) => logTime(o) >= since && match(o));
}
