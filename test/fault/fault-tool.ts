import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { TcpRelay } from '../../bench/tcp-relay.js';
import type { Cleanup } from '../helpers/cleanup.js';
import { send, type SendResult } from '../helpers/http-client.js';
import { patternChunks } from '../helpers/pattern-data.js';
import { createClient, startAgentProcess, startServerProcess, type Child, type ClientCreds, type ServerProc } from '../helpers/processes.js';
import { echoHandler, startUpstream, type ToolHandler, type Upstream } from '../helpers/upstream.js';

/**
 * Heartbeat interval of the fault tests (both sides). Short so a dead peer
 * is found in ~1.5 s instead of 15 s; the default is 10 s and every
 * detection time scales with it.
 */
export const HEARTBEAT_MS = 1_000;

/** Server settings of the fault tests. */
export const serverEnv = { POSTERN_HEARTBEAT_MS: String(HEARTBEAT_MS), POSTERN_AGENT_WAIT_MS: '1000' };

/** Agent settings of the fault tests: two tunnels (the default to be), reconnects within 0.5 s. */
export const agentEnv = {
  POSTERN_HEARTBEAT_MS: String(HEARTBEAT_MS),
  POSTERN_RECONNECT_BASE_MS: '50',
  POSTERN_RECONNECT_MAX_MS: '500',
  POSTERN_CONNECTIONS: '2',
};

/**
 * The tool behind the agents of the fault tests (run by startUpstream):
 *   GET  /big?n=N&seed=S       N pattern bytes with content-length
 *   GET  /chunked?n=N&seed=S   the same, chunked (no content-length)
 *   GET  /paced?n=N&seed=S&ms=T   64 KiB every T ms (a download that lasts)
 *   ANY  /slow?ms=T            answers "slow done" after T ms (a request waiting for its head)
 *   GET  /small                "ok"
 * Anything else is echoed (echoHandler).
 */
export const faultTool: ToolHandler = async (x) => {
  const { req, res, body } = x;
  const url = new URL(req.url ?? '/', 'http://tool');
  const n = Number(url.searchParams.get('n') ?? '0');
  const seed = Number(url.searchParams.get('seed') ?? '1');
  const ms = Number(url.searchParams.get('ms') ?? '0');
  switch (url.pathname) {
    case '/big':
    case '/chunked': {
      body.resume();
      const length = url.pathname === '/big' ? { 'content-length': n } : {};
      res.writeHead(200, { 'content-type': 'application/octet-stream', ...length });
      await pipeline(Readable.from(patternChunks(n, seed)), res).catch(() => {});
      return;
    }
    case '/paced': {
      body.resume();
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n });
      await pipeline(Readable.from(paced(n, seed, ms)), res).catch(() => {});
      return;
    }
    case '/slow': {
      body.resume();
      const timer = setTimeout(() => res.end('slow done'), ms);
      res.on('close', () => clearTimeout(timer));
      return;
    }
    case '/small':
      body.resume();
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 });
      res.end('ok');
      return;
    default:
      return echoHandler(x);
  }
};

async function* paced(total: number, seed: number, everyMs: number): AsyncGenerator<Buffer> {
  for (const chunk of patternChunks(total, seed)) {
    yield chunk;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A steady stream of small requests, one after another, until stopped. */
export interface SteadyLoad {
  /** Stops and resolves with every result (or the error of a request that got no answer). */
  stop(): Promise<{ results: SendResult[]; errors: Error[] }>;
}

/** GETs `url` back to back, `gapMs` apart, from now until stop(). */
export function steadyLoad(url: string, gapMs = 20): SteadyLoad {
  const results: SendResult[] = [];
  const errors: Error[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        results.push(await send(url, { timeoutMs: 10_000 }));
      } catch (err) {
        errors.push(err as Error);
      }
      await new Promise((r) => setTimeout(r, gapMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { results, errors };
    },
  };
}

/** Percentile (0–100) of a list of numbers, nearest rank. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** Prints a measured figure so it shows in the test run's output. */
export function report(line: string): void {
  process.stdout.write(`[fault] ${line}\n`);
}

/** The tool, a server process, one client and its agent process: what most fault tests start from. */
export interface FaultStack {
  tool: Upstream;
  server: ServerProc;
  creds: ClientCreds;
  agent: Child;
  /** Between the agent and the server's public port when `viaRelay` was set. */
  relay: TcpRelay | undefined;
  /** Ingress URL of a path on the tool, for this client. */
  url(path: string): string;
}

export async function startFaultStack(
  cleanup: Cleanup,
  opts: { viaRelay?: boolean; serverEnv?: NodeJS.ProcessEnv; agentEnv?: NodeJS.ProcessEnv; tunnels?: number } = {},
): Promise<FaultStack> {
  const tool = await startUpstream(faultTool);
  cleanup.add(() => tool.close());
  const server = await startServerProcess(cleanup, { env: { ...serverEnv, ...opts.serverEnv } });
  let relay: TcpRelay | undefined;
  if (opts.viaRelay) {
    const r = await TcpRelay.start(server.port);
    cleanup.add(() => r.close());
    relay = r;
  }
  const creds = await createClient(server, 'a');
  const agent = await startAgentProcess(cleanup, server, creds, tool.url, {
    env: { ...agentEnv, ...opts.agentEnv },
    tunnels: opts.tunnels ?? 2,
    ...(relay ? { proxyUrl: `http://127.0.0.1:${relay.port}` } : {}),
  });
  return { tool, server, creds, agent, relay, url: (path) => `${server.ingressUrl}/t/${creds.clientId}${path}` };
}
