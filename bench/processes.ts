import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** dist/ of this build (this file is dist/bench/processes.js). */
export const DIST = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const POSTERN_BIN = join(DIST, 'cli', 'postern.js');
const PARENT_WATCH = pathToFileURL(join(DIST, 'bench', 'parent-watch.js')).href;

const live = new Set<Child>();
const tempDirs = new Set<string>();

/** VmRSS of a process in bytes (from /proc/<pid>/status), or NaN if gone. */
export function rssOf(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/**
 * CPU seconds (user + system) a process has used, from /proc/<pid>/stat;
 * clock ticks are taken as 100 Hz (USER_HZ on Linux). The bench's own
 * process reads process.cpuUsage() instead.
 */
export function cpuSecondsOf(pid: number): number {
  if (pid === process.pid) {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

/** The machine's CPU time so far (jiffies): all, idle (+iowait) and steal, from /proc/stat. */
export function machineCpu(): { total: number; idle: number; steal: number } {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal guest guest_nice
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    return { total, idle: v[3]! + v[4]!, steal: v[7]! };
  } catch {
    return { total: Number.NaN, idle: Number.NaN, steal: Number.NaN };
  }
}

export interface SpawnOptions {
  name: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  /** Extra node flags (e.g. --cpu-prof). */
  nodeArgs?: string[];
  /**
   * URL of the module preloaded to tie the child's life to this process;
   * default dist/bench/parent-watch.js. Tests, which run from source, pass
   * bench/parent-watch.ts (Node 24 strips its types).
   */
  parentWatch?: string;
  /** Output lines kept for errors and `jsonLines()`. Default 30. */
  keepLines?: number;
}

/**
 * One child process of the bench: node with the parent watcher preloaded, an
 * IPC channel (so it dies with the bench), stdout and stderr always drained
 * (a full pipe would stall the child) and the last lines kept for errors.
 */
export class Child {
  readonly proc: ChildProcess;
  readonly name: string;
  private readonly tail: string[] = [];
  private readonly keepLines: number;
  private readonly lineWaiters = new Set<(line: string) => void>();
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  constructor(opts: SpawnOptions) {
    this.name = opts.name;
    this.keepLines = opts.keepLines ?? 30;
    const watch = opts.parentWatch ?? PARENT_WATCH;
    this.proc = spawn(process.execPath, [...(opts.nodeArgs ?? []), '--import', watch, ...opts.args], {
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    live.add(this);
    this.exited = new Promise((res) => {
      this.proc.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        live.delete(this);
        res({ code, signal });
      });
    });
    this.proc.on('error', () => {});
    for (const s of [this.proc.stdout!, this.proc.stderr!]) {
      let buf = '';
      s.setEncoding('utf8');
      s.on('data', (chunk: string) => {
        buf += chunk;
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          this.tail.push(line);
          if (this.tail.length > this.keepLines) this.tail.shift();
          for (const w of this.lineWaiters) w(line);
        }
      });
    }
  }

  get pid(): number {
    return this.proc.pid!;
  }

  rss(): number {
    return rssOf(this.pid);
  }

  lastLines(): string {
    return this.tail.map((l) => `  [${this.name}] ${l}`).join('\n');
  }

  /** The kept output lines that are JSON objects (pino log lines), parsed, oldest first. */
  jsonLines(): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const line of this.tail) {
      if (!line.startsWith('{')) continue;
      try {
        out.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // a line cut by the child's death
      }
    }
    return out;
  }

  /** Waits for a JSON output line for which `match` returns a value. */
  waitForJson<T>(match: (obj: Record<string, unknown>) => T | undefined, timeoutMs: number): Promise<T> {
    return new Promise((resolvePromise, reject) => {
      const done = (err: Error | undefined, v?: T): void => {
        clearTimeout(timer);
        this.lineWaiters.delete(onLine);
        if (err) reject(err);
        else resolvePromise(v as T);
      };
      const onLine = (line: string): void => {
        if (!line.startsWith('{')) return;
        let obj: Record<string, unknown>;
        try {
          obj = JSON.parse(line) as Record<string, unknown>;
        } catch {
          return;
        }
        const v = match(obj);
        if (v !== undefined) done(undefined, v);
      };
      const timer = setTimeout(
        () => done(new Error(`${this.name}: no expected output within ${timeoutMs} ms\n${this.lastLines()}`)),
        timeoutMs,
      );
      this.lineWaiters.add(onLine);
      void this.exited.then((e) => {
        if (this.lineWaiters.has(onLine)) {
          done(new Error(`${this.name} exited (code ${e.code}, signal ${e.signal}) before it was ready\n${this.lastLines()}`));
        }
      });
    });
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.exitInfo) return;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/** SIGKILLs every child still running and removes temp dirs (exit, error and signal paths). */
export function killAll(): void {
  for (const c of live) {
    try {
      c.proc.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}

/** Stops every child still running, politely. */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((c) => c.stop()));
}

// ---- the processes of a bench stack ---------------------------------------

export async function startTool(): Promise<{ child: Child; port: number; url: string }> {
  const child = new Child({ name: 'tool', args: [join(DIST, 'bench', 'tool-server.js')] });
  const port = await child.waitForJson((o) => (o.msg === 'listening' ? (o.port as number) : undefined), 10_000);
  return { child, port, url: `http://127.0.0.1:${port}` };
}

export interface ServerProc {
  child: Child;
  port: number;
  ingressPort: number;
  adminToken: string;
  dataDir: string;
  ingressUrl: string;
  /** Removes the data dir (call after stop). */
  cleanup(): void;
}

/** Where the postern CLI is: default dist/'s. Tests pass the one they compiled. */
export interface CliLocation {
  /** Path of postern.js. */
  bin?: string;
  /** See SpawnOptions.parentWatch. */
  parentWatch?: string;
}

/** Options of startServer beyond the bench's defaults; all optional. */
export interface StartServerOptions extends CliLocation {
  name?: string;
  /** A data dir the caller owns (cleanup() leaves it); default a fresh temp dir. */
  dataDir?: string;
  /** Default 0 (any); an old server's ports to restart it there. */
  port?: number;
  ingressPort?: number;
  /** Default a random one. */
  adminToken?: string;
  /** More environment (POSTERN_HEARTBEAT_MS, …); wins over the defaults above. */
  env?: NodeJS.ProcessEnv;
  keepLines?: number;
}

export async function startServer(nodeArgs: string[] = [], opts: StartServerOptions = {}): Promise<ServerProc> {
  const ownDir = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'postern-bench-'));
  if (ownDir) tempDirs.add(dataDir);
  const adminToken = opts.adminToken ?? randomBytes(24).toString('base64url');
  const child = new Child({
    name: opts.name ?? 'server',
    args: [opts.bin ?? POSTERN_BIN, 'server'],
    nodeArgs,
    ...(opts.parentWatch !== undefined ? { parentWatch: opts.parentWatch } : {}),
    ...(opts.keepLines !== undefined ? { keepLines: opts.keepLines } : {}),
    env: {
      POSTERN_HOST: '127.0.0.1',
      POSTERN_PORT: String(opts.port ?? 0),
      POSTERN_INGRESS_PORT: String(opts.ingressPort ?? 0),
      POSTERN_DATA_DIR: dataDir,
      POSTERN_ADMIN_TOKEN: adminToken,
      // The default level (info): it carries the "listening" line.
      POSTERN_LOG_LEVEL: 'info',
      ...opts.env,
    },
  });
  const ports = await child.waitForJson(
    (o) => (o.msg === 'listening' ? { port: o.port as number, ingressPort: o.ingressPort as number } : undefined),
    15_000,
  );
  return {
    child,
    ...ports,
    adminToken,
    dataDir,
    ingressUrl: `http://127.0.0.1:${ports.ingressPort}`,
    cleanup: () => {
      if (!ownDir) return;
      rmSync(dataDir, { recursive: true, force: true });
      tempDirs.delete(dataDir);
    },
  };
}

export interface ClientCreds {
  clientId: string;
  clientToken: string;
}

export async function createClient(server: ServerProc, name: string): Promise<ClientCreds> {
  const res = await fetch(`${server.ingressUrl}/v1/clients`, {
    method: 'POST',
    headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name }),
    signal: AbortSignal.timeout(10_000),
  });
  if (res.status !== 201) throw new Error(`POST /v1/clients answered ${res.status}: ${await res.text()}`);
  const body = (await res.json()) as ClientCreds;
  return { clientId: body.clientId, clientToken: body.clientToken };
}

export interface StatusClient {
  clientId: string;
  connected: boolean;
  connections: { connectionId: string; rttMs: number }[];
}

export async function serverStatus(server: ServerProc): Promise<{ clients: StatusClient[] }> {
  const res = await fetch(`${server.ingressUrl}/v1/status`, {
    headers: { authorization: `Bearer ${server.adminToken}` },
    signal: AbortSignal.timeout(20_000),
  });
  if (res.status !== 200) throw new Error(`GET /v1/status answered ${res.status}`);
  return (await res.json()) as { clients: StatusClient[] };
}

/** Polls /v1/status until `ok` holds, or throws after timeoutMs. */
export async function waitForStatus(
  server: ServerProc,
  ok: (s: { clients: StatusClient[] }) => boolean,
  timeoutMs: number,
  what: string,
  everyMs = 100,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (ok(await serverStatus(server))) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${server.child.lastLines()}`);
    await sleep(everyMs);
  }
}

export async function startAgent(
  server: ServerProc,
  creds: ClientCreds,
  toolUrl: string,
  opts: CliLocation & {
    proxyUrl?: string;
    nodeArgs?: string[];
    name?: string;
    /** More environment (POSTERN_CONNECTIONS, …); wins over the defaults. */
    env?: NodeJS.ProcessEnv;
    keepLines?: number;
    /** Resolve only once the server lists the client as connected. Default true. */
    waitConnected?: boolean;
  } = {},
): Promise<Child> {
  const child = new Child({
    name: opts.name ?? 'agent',
    args: [opts.bin ?? POSTERN_BIN, 'agent'],
    nodeArgs: opts.nodeArgs ?? [],
    ...(opts.parentWatch !== undefined ? { parentWatch: opts.parentWatch } : {}),
    ...(opts.keepLines !== undefined ? { keepLines: opts.keepLines } : {}),
    env: {
      CLIENT_ID: creds.clientId,
      CLIENT_TOKEN: creds.clientToken,
      PROXY_URL: opts.proxyUrl ?? `http://127.0.0.1:${server.port}`,
      TOOL_URL: toolUrl,
      POSTERN_LOG_LEVEL: 'info',
      // The audit log stays on (its cost is part of every request), but
      // goes nowhere: on stdout it would land in this process, which is
      // also the load generator, and cost the measurement CPU.
      POSTERN_AUDIT_LOG: '/dev/null',
      ...opts.env,
    },
  });
  if (opts.waitConnected === false) return child;
  const exitedEarly = child.exited.then((e) => {
    throw new Error(`${child.name} exited (code ${e.code}) before connecting\n${child.lastLines()}`);
  });
  await Promise.race([
    waitForStatus(
      server,
      (s) => s.clients.some((c) => c.clientId === creds.clientId && c.connected),
      15_000,
      `${child.name} to connect`,
    ),
    exitedEarly,
  ]);
  exitedEarly.catch(() => {});
  return child;
}

export async function startRelay(targetPort: number, delayMs: number, name = 'relay'): Promise<{ child: Child; port: number }> {
  const child = new Child({
    name,
    args: [join(DIST, 'bench', 'delay-relay.js')],
    env: { RELAY_TARGET_PORT: String(targetPort), RELAY_DELAY_MS: String(delayMs) },
  });
  const port = await child.waitForJson((o) => (o.msg === 'listening' ? (o.port as number) : undefined), 10_000);
  return { child, port };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
