import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync, writeFileSync, type WriteStream } from 'node:fs';
import { Agent as HttpAgent, request, type IncomingMessage } from 'node:http';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Child, cpuSecondsOf, createClient, DIST, killAll, rssOf, serverStatus, type ClientCreds, type ServerProc } from './processes.js';
import { PatternCursor } from './soak-tool.js';
import { prng } from './prng.js';
import { TcpRelay } from './tcp-relay.js';

/**
 * `npm run soak`: a bounded soak of the whole stack under random faults.
 *
 *   node dist/bench/soak.js [--duration <s>] [--seed <n>] [--quick] [--keep-logs]
 *
 * --duration  seconds of load (default 180; --quick: 30)
 * --seed      replays a run's choices: request mix and sizes, the fault sequence
 * --quick     a short run for development; results go to $TMPDIR/postern-soak-quick.json, not bench/
 * --keep-logs keep every process's log (kept anyway when the soak fails)
 *
 * Real processes on 127.0.0.1: one server, the soak tool (bench/soak-tool.ts),
 * client A served by two agents (a1, a2; two tunnels each) that dial through
 * their own TcpRelay, and client B served by one agent (b1) that dials the
 * server directly and is never faulted (isolation). This process runs a
 * closed-loop load of random requests, each with a deadline, checks every
 * body byte against the deterministic pattern, and injects faults from a
 * seeded PRNG: kill -9, SIGSTOP/SIGCONT and SIGTERM of an agent, a stalled,
 * black-holed or dropped tunnel path, and one server SIGTERM + restart on the
 * same ports and data dir.
 *
 * Fails (exit 1) on: a corrupted body, a hung request, an error answer that
 * is not a Postern JSON 429/502/503/504, an RSS over its bound, a process
 * that died unasked, an agent that did not come back after a fault, a
 * client-B failure while only client A was faulted, a failure that no fault
 * explains, or a failed request that was in flight when an agent or the
 * server was sent SIGTERM (drain).
 */

const { values: flags } = parseArgs({
  options: {
    duration: { type: 'string' },
    seed: { type: 'string' },
    quick: { type: 'boolean' },
    'keep-logs': { type: 'boolean' },
  },
  strict: true,
});
const QUICK = flags.quick === true;
const DURATION_S = Number(flags.duration ?? (QUICK ? 30 : 180));
const SEED = flags.seed !== undefined ? Number(flags.seed) >>> 0 : randomBytes(4).readUInt32BE(0);
if (!(DURATION_S >= 10) || !Number.isFinite(DURATION_S)) throw new Error('--duration must be a number of seconds ≥ 10');
if (flags.seed !== undefined && !/^\d+$/.test(flags.seed)) throw new Error('--seed must be a whole number');

const KiB = 1024;
const MiB = 1024 * KiB;

/** Heartbeat of server and agents: short, so a frozen path is found in under 2 s. */
const HEARTBEAT_MS = 1000;
const CONNECTIONS = 2;
const DRAIN_TIMEOUT_MS = 10_000;
/** No fault in the first seconds (a clean baseline), none near the end (everything settles). */
const FAULT_FREE_START_S = QUICK ? 5 : 15;
const FAULT_FREE_END_S = QUICK ? 5 : 15;
/** Pause between one fault's recovery and the next fault. */
const GAP_MS: [number, number] = QUICK ? [1000, 3000] : [2000, 6000];
/** When the one server restart happens, as a share of the run: late enough, and early enough, that both servers live long enough to be judged for RSS. */
const SERVER_RESTART_AT = 0.6;
/** Any request still open after this is "hung": with 1 s heartbeats and 5 s agent wait, nothing legitimate takes it. */
const DEADLINE_MS = 30_000;
/** Closed-loop callers per client. */
const CALLERS = { A: 8, B: 2 } as const;
/** An agent that is not back (all its tunnels listed by the server) this long after a fault has not recovered. */
const RECOVERY_LIMIT_MS = 30_000;
/**
 * RSS bound per process: the median of its last 5 samples may exceed the
 * median over a window after its own warm-up by at most RSS_BOUND. Memory in
 * use under this load is bounded by flow-control windows and the callers'
 * concurrency, so a healthy process levels off after warm-up (full runs: a
 * few MiB of drift). A full run makes ~25,000 requests, ~5,000 of them
 * bodies over 64 KiB: a leaked DATA chunk per body, or ≥ 3 KiB per request
 * (a stream with its state), crosses 64 MiB. Slower leaks show in the
 * reported trend (MiB/min) and series, which are not asserted.
 */
const RSS_BOUND = 64 * MiB;
/** Under this load a server's heap reaches its plateau within ~30 s (bench/soak-results.json: rss series). */
const RSS_WARM_S = QUICK ? 5 : 30;
const RSS_WINDOW_S = QUICK ? 3 : 5;
/** Processes that lived less than this after their warm window are reported, not judged. */
const RSS_MIN_JUDGED_S = QUICK ? 5 : 15;
/** Whole run, hard limit: everything is killed after this. */
const WATCHDOG_MS = (DURATION_S + 180) * 1000;

const REPO = resolve(DIST, '..');
const RESULTS_FILE = join(REPO, 'bench', 'soak-results.json');
const POSTERN_BIN = join(DIST, 'cli', 'postern.js');
const RUN_DIR = mkdtempSync(join(os.tmpdir(), `postern-soak-${SEED}-`));
const T0 = performance.now();
const LOAD_AT_START = os.loadavg().map((x) => Math.round(x * 10) / 10);

// ---- lifetime: everything bounded, every child killed ---------------------------

const relays: TcpRelay[] = [];
let stopping = false;
const procs: Proc[] = [];

/** Stopped (SIGSTOP) children would ignore the parent watcher's SIGTERM: wake them before the kill. */
function killEverything(): void {
  for (const p of procs) {
    if (p.endedAt === undefined) {
      try {
        process.kill(p.child.pid, 'SIGCONT');
      } catch {
        // gone
      }
    }
  }
  killAll();
}

const watchdog = setTimeout(() => {
  process.stderr.write(`\nsoak: over the time limit of ${WATCHDOG_MS / 1000} s; stopping everything\n`);
  killEverything();
  process.exit(3);
}, WATCHDOG_MS);
watchdog.unref();
process.on('exit', killEverything);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    process.stderr.write(`\nsoak: ${sig}, stopping (logs in ${RUN_DIR})\n`);
    killEverything();
    process.exit(130);
  });
}
process.on('uncaughtException', (err) => {
  process.stderr.write(`soak: ${err.stack ?? err.message}\n(logs in ${RUN_DIR})\n`);
  killEverything();
  process.exit(1);
});

/** Seconds since the run started. */
function now(): number {
  return (performance.now() - T0) / 1000;
}

function log(msg: string): void {
  process.stderr.write(`[soak ${now().toFixed(1).padStart(6)} s] ${msg}\n`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ---- seeded randomness ------------------------------------------------------------


// Separate streams, so the fault sequence of a seed does not depend on how
// many requests happened to run between faults.
const faultRng = prng(SEED);
const loadRng = prng(SEED ^ 0x9e3779b9);

function randInt(rng: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rng() * (hi - lo + 1));
}

/** Sizes spread evenly over orders of magnitude (many small, some large). */
function logUniform(rng: () => number, lo: number, hi: number): number {
  return Math.round(Math.exp(Math.log(lo) + rng() * (Math.log(hi) - Math.log(lo))));
}

function pickWeighted<T extends string>(rng: () => number, weights: Partial<Record<T, number>>): T {
  const entries = Object.entries(weights) as [T, number][];
  let r = rng() * entries.reduce((a, [, w]) => a + w, 0);
  for (const [k, w] of entries) {
    r -= w;
    if (r < 0) return k;
  }
  return entries[entries.length - 1]![0];
}

// ---- tracked processes: logs, crashes, RSS ------------------------------------------

type Role = 'server' | 'agent' | 'tool';

interface Proc {
  role: Role;
  name: string;
  child: Child;
  startedAt: number;
  endedAt?: number;
  /** Set before the soak signals it, so its exit is not a crash. */
  expectExit: boolean;
  exit?: { code: number | null; signal: NodeJS.Signals | null };
  samples: { t: number; rss: number }[];
  /** CPU seconds used, as of the last sample. */
  cpuS: number;
  /** Agents: every tunnel it logged as connected. */
  connectionIds: Set<string>;
}

const crashes: { name: string; atS: number; code: number | null; signal: string | null; lastLines: string }[] = [];
/** warn/error log lines by role and message: what went wrong, as the processes saw it. */
const logCounts: Record<string, number> = {};

function captureLines(child: Child, onLine: (line: string) => void): void {
  for (const s of [child.proc.stdout!, child.proc.stderr!]) {
    let buf = '';
    s.on('data', (chunk: string) => {
      buf += chunk;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        onLine(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
  }
}

function onLogLine(p: Proc, line: string, file: WriteStream): void {
  file.write(`${line}\n`);
  if (!line.startsWith('{')) return;
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return;
  }
  if (o.msg === 'tunnel connected' && typeof o.connectionId === 'string') p.connectionIds.add(o.connectionId);
  if (typeof o.level === 'number' && o.level >= 40) {
    const key = `${p.role} ${o.level >= 50 ? 'ERROR' : 'warn'}: ${String(o.msg)}`;
    logCounts[key] = (logCounts[key] ?? 0) + 1;
  }
}

function spawnTracked(role: Role, name: string, args: string[], env: NodeJS.ProcessEnv): Proc {
  const child = new Child({ name, args, env });
  const p: Proc = { role, name, child, startedAt: now(), expectExit: false, samples: [], cpuS: 0, connectionIds: new Set() };
  const file = createWriteStream(join(RUN_DIR, `${name.replace('#', '-')}.log`));
  captureLines(child, (line) => onLogLine(p, line, file));
  void child.exited.then((e) => {
    p.endedAt = now();
    p.exit = e;
    file.end();
    if (!p.expectExit && !stopping) {
      crashes.push({ name, atS: round1(p.endedAt), code: e.code, signal: e.signal, lastLines: child.lastLines() });
      log(`CRASH: ${name} exited unasked (code ${e.code}, signal ${e.signal})\n${child.lastLines()}`);
    }
  });
  procs.push(p);
  return p;
}

function sampleRss(): void {
  const t = now();
  for (const p of procs) {
    if (p.endedAt !== undefined) continue;
    const rss = rssOf(p.child.pid);
    if (Number.isFinite(rss)) p.samples.push({ t: t - p.startedAt, rss });
    const cpu = cpuSecondsOf(p.child.pid);
    if (Number.isFinite(cpu)) p.cpuS = cpu;
  }
}

/** Signals a child the soak means to end; resolves with its exit, SIGKILLing it after `graceMs`. */
async function endProc(p: Proc, signal: NodeJS.Signals, graceMs: number): Promise<{ code: number | null; signal: string | null; killed: boolean }> {
  p.expectExit = true;
  if (p.endedAt !== undefined) return { ...p.exit!, killed: false };
  p.child.proc.kill(signal);
  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    p.child.proc.kill('SIGKILL');
  }, graceMs);
  const e = await p.child.exited;
  clearTimeout(timer);
  return { code: e.code, signal: e.signal, killed };
}

// ---- the stack --------------------------------------------------------------------

interface ServerConf {
  port: number;
  ingressPort: number;
  dataDir: string;
  adminToken: string;
}

let serverGen = 0;
let server!: ServerProc;
let serverProc!: Proc;

/**
 * A server on given ports and data dir (processes.ts's startServer always
 * takes port 0 and a fresh data dir; a restart must keep both, so agents and
 * callers find it where it was, with the same clients).
 */
async function launchServer(conf: ServerConf): Promise<void> {
  serverGen++;
  const p = spawnTracked('server', `server#${serverGen}`, [POSTERN_BIN, 'server'], {
    POSTERN_HOST: '127.0.0.1',
    POSTERN_PORT: String(conf.port),
    POSTERN_INGRESS_PORT: String(conf.ingressPort),
    POSTERN_DATA_DIR: conf.dataDir,
    POSTERN_ADMIN_TOKEN: conf.adminToken,
    POSTERN_HEARTBEAT_MS: String(HEARTBEAT_MS),
    POSTERN_DRAIN_TIMEOUT_MS: String(DRAIN_TIMEOUT_MS),
    POSTERN_LOG_LEVEL: 'info',
  });
  const ports = await p.child.waitForJson(
    (o) => (o.msg === 'listening' ? { port: o.port as number, ingressPort: o.ingressPort as number } : undefined),
    15_000,
  );
  serverProc = p;
  server = {
    child: p.child,
    ...ports,
    adminToken: conf.adminToken,
    dataDir: conf.dataDir,
    ingressUrl: `http://127.0.0.1:${ports.ingressPort}`,
    cleanup: () => {},
  };
}

type SlotId = 'a1' | 'a2' | 'b1';

interface AgentSlot {
  id: SlotId;
  client: 'A' | 'B';
  creds: ClientCreds;
  relay: TcpRelay | undefined;
  gen: number;
  proc: Proc | undefined;
}

let toolUrl = '';
const clients: Record<'A' | 'B', ClientCreds> = {} as Record<'A' | 'B', ClientCreds>;
const slots: AgentSlot[] = [];

async function launchAgent(slot: AgentSlot): Promise<void> {
  slot.gen++;
  const p = spawnTracked('agent', `${slot.id}#${slot.gen}`, [POSTERN_BIN, 'agent'], {
    CLIENT_ID: slot.creds.clientId,
    CLIENT_TOKEN: slot.creds.clientToken,
    PROXY_URL: `http://127.0.0.1:${slot.relay?.port ?? server.port}`,
    TOOL_URL: toolUrl,
    POSTERN_CONNECTIONS: String(CONNECTIONS),
    POSTERN_HEARTBEAT_MS: String(HEARTBEAT_MS),
    POSTERN_RECONNECT_BASE_MS: '100',
    POSTERN_RECONNECT_MAX_MS: '1000',
    POSTERN_LOG_LEVEL: 'info',
  });
  slot.proc = p;
  let seen = 0;
  await p.child.waitForJson((o) => (o.msg === 'tunnel connected' && ++seen >= CONNECTIONS ? true : undefined), 20_000);
}

/** Non-draining tunnels the server lists, by client id. */
async function listedConnections(): Promise<Map<string, string[]>> {
  const status = await serverStatus(server);
  return new Map(status.clients.map((c) => [c.clientId, c.connections.filter((x) => !(x as { draining?: boolean }).draining).map((x) => x.connectionId)]));
}

/**
 * Recovered: every agent has all its tunnels listed by the server, and the
 * server lists no others (a dead tunnel it still shows is a half-open one it
 * failed to detect).
 */
async function isRecovered(): Promise<boolean> {
  let listed: Map<string, string[]>;
  try {
    listed = await listedConnections();
  } catch {
    return false; // server restarting
  }
  for (const client of ['A', 'B'] as const) {
    const ids = listed.get(clients[client].clientId) ?? [];
    const mine = slots.filter((s) => s.client === client);
    if (ids.length !== mine.length * CONNECTIONS) return false;
    for (const s of mine) {
      if (!s.proc || s.proc.endedAt !== undefined) return false;
      if (ids.filter((id) => s.proc!.connectionIds.has(id)).length !== CONNECTIONS) return false;
    }
  }
  return true;
}

/** ms until recovered (polled every 100 ms), or undefined after RECOVERY_LIMIT_MS. */
async function waitRecovered(): Promise<number | undefined> {
  const t = performance.now();
  while (performance.now() - t < RECOVERY_LIMIT_MS) {
    if (await isRecovered()) return performance.now() - t;
    await sleep(100);
  }
  return undefined;
}

/** ms until the server lists none of `ids` any more, or undefined if that takes longer than limitMs. */
async function waitDropped(ids: string[], limitMs: number): Promise<number | undefined> {
  const t = performance.now();
  while (performance.now() - t < limitMs) {
    try {
      const listed = new Set([...(await listedConnections()).values()].flat());
      if (!ids.some((id) => listed.has(id))) return performance.now() - t;
    } catch {
      // keep polling
    }
    await sleep(50);
  }
  return undefined;
}

async function connectionsOf(slot: AgentSlot): Promise<string[]> {
  const listed = (await listedConnections()).get(slot.creds.clientId) ?? [];
  return listed.filter((id) => slot.proc!.connectionIds.has(id));
}

// ---- load: random requests, every byte checked ---------------------------------------

type ReqKind = 'small' | 'download' | 'chunked' | 'slow' | 'upload' | 'echo' | 'toolAbort' | 'callerAbort';
type Outcome =
  | 'ok'
  | 'failed' // a Postern JSON error answer (429/502/503/504)
  | 'connError' // no response head: refused, reset, hang-up
  | 'cutOff' // head received, body ended early (never looked complete)
  | 'corrupted' // looked complete (or was partly received) with wrong bytes
  | 'hung' // deadline passed
  | 'unexpected' // an error answer that is not a Postern JSON 429/502/503/504
  | 'expectedCut' // toolAbort: the tool died half-way and the caller saw it
  | 'callerAborted'; // callerAbort: we hung up half-way, as planned

const OUTCOMES: Outcome[] = ['ok', 'failed', 'connError', 'cutOff', 'corrupted', 'hung', 'unexpected', 'expectedCut', 'callerAborted'];
const CLEAR_ERROR_STATUSES = new Set([429, 502, 503, 504]);

interface Plan {
  kind: ReqKind;
  client: 'A' | 'B';
  n: number;
  seed: number;
  delay: number;
  chunked: boolean;
  /** toolAbort: the tool resets after this many bytes. */
  abortAt: number;
  /** callerAbort: we hang up after this many bytes. */
  hangUpAt: number;
}

interface Result {
  plan: Plan;
  outcome: Outcome;
  code: string;
  startS: number;
  ms: number;
  bytes: number;
  requestId: string | undefined;
  detail: string;
}

const REQUEST_MIX: Record<ReqKind, number> = {
  small: 55,
  download: 12,
  chunked: 6,
  slow: 5,
  upload: 10,
  echo: 5,
  toolAbort: 3,
  callerAbort: 4,
};

function makePlan(client: 'A' | 'B'): Plan {
  const kind = pickWeighted(loadRng, REQUEST_MIX);
  const p: Plan = { kind, client, n: 0, seed: randInt(loadRng, 1, 0xffffffff), delay: 0, chunked: false, abortAt: 0, hangUpAt: 0 };
  switch (kind) {
    case 'small':
      p.n = randInt(loadRng, 0, 4 * KiB);
      break;
    case 'download':
      p.n = logUniform(loadRng, 16 * KiB, 4 * MiB);
      break;
    case 'chunked':
      p.n = logUniform(loadRng, KiB, 2 * MiB);
      p.chunked = true;
      break;
    case 'slow':
      p.n = randInt(loadRng, 0, 4 * KiB);
      p.delay = randInt(loadRng, 100, 2000);
      break;
    case 'upload':
      p.n = logUniform(loadRng, KiB, 2 * MiB);
      break;
    case 'echo':
      p.n = logUniform(loadRng, KiB, 512 * KiB);
      break;
    case 'toolAbort':
      p.n = logUniform(loadRng, 64 * KiB, 2 * MiB);
      p.abortAt = randInt(loadRng, 1, p.n - 1);
      p.chunked = loadRng() < 0.5;
      break;
    case 'callerAbort':
      p.n = logUniform(loadRng, 64 * KiB, 4 * MiB);
      p.hangUpAt = randInt(loadRng, 1, p.n - 1);
      break;
  }
  return p;
}

function requestTarget(p: Plan): { path: string; method: string } {
  if (p.kind === 'upload') return { path: '/upload', method: 'POST' };
  if (p.kind === 'echo') return { path: '/echo', method: 'POST' };
  const q = new URLSearchParams({ n: String(p.n), seed: String(p.seed) });
  if (p.chunked) q.set('chunked', '1');
  if (p.delay) q.set('delay', String(p.delay));
  if (p.abortAt) q.set('abortAt', String(p.abortAt));
  return { path: `/pattern?${q}`, method: 'GET' };
}

const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 64 });
let ingressPort = 0;

/** Checks streamed bytes against the pattern; remembers the first bad offset. */
class BodyCheck {
  bytes = 0;
  badAt = -1;
  private readonly cursor: PatternCursor;

  constructor(
    seed: number,
    private readonly max: number,
  ) {
    this.cursor = new PatternCursor(seed);
  }

  add(c: Buffer): void {
    if (this.badAt < 0) {
      if (this.bytes + c.length > this.max) this.badAt = this.max;
      else {
        const want = this.cursor.next(c.length);
        if (!c.equals(want)) {
          let i = 0;
          while (c[i] === want[i]) i++;
          this.badAt = this.bytes + i;
        }
      }
    }
    this.bytes += c.length;
  }
}

/** One request, settled exactly once with its outcome. Never rejects. */
function runRequest(plan: Plan): Promise<Result> {
  return new Promise((settle) => {
    const startS = now();
    const t0 = performance.now();
    const { path, method } = requestTarget(plan);
    const check = new BodyCheck(plan.seed, plan.n);
    let requestId: string | undefined;
    let gotHead = false;
    let bodySent = method === 'GET';
    let sentSha = '';
    let settled = false;
    const finish = (outcome: Outcome, code = '', detail = ''): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      // A socket with a half-sent body or an unread answer cannot go back to the pool.
      if (outcome !== 'ok' || !bodySent) req.destroy();
      settle({ plan, outcome, code, startS, ms: performance.now() - t0, bytes: check.bytes, requestId, detail });
    };
    const headers: Record<string, string | number> = {};
    if (method === 'POST') {
      headers['content-type'] = 'application/octet-stream';
      headers['content-length'] = plan.n;
    }
    const req = request(
      { host: '127.0.0.1', port: ingressPort, path: `/t/${clients[plan.client].clientId}${path}`, method, headers, agent: httpAgent },
      (res) => {
        gotHead = true;
        const rid = res.headers['x-postern-request-id'];
        requestId = typeof rid === 'string' ? rid : undefined;
        res.on('error', () => {});
        if (res.statusCode !== 200) readErrorAnswer(res, plan, finish);
        else if (plan.kind === 'upload') readUploadAnswer(res, plan, () => sentSha, finish);
        else readPatternBody(res, plan, check, () => req.destroy(), finish);
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) => {
      // After the head, the response's own 'close' tells what happened.
      if (gotHead) return;
      // A tool that dies right after its head can reach the caller as a bare
      // reset: the ingress cut the connection before the head left it.
      if (plan.kind === 'toolAbort' && err.code === 'ECONNRESET') finish('expectedCut', 'reset before head');
      else finish('connError', err.code ?? err.message);
    });
    const timer = setTimeout(() => {
      finish('hung', gotHead ? 'body' : 'head', `${check.bytes} of ${plan.n} bytes after ${DEADLINE_MS} ms`);
    }, DEADLINE_MS);
    if (method === 'GET') {
      req.end();
      return;
    }
    const cursor = new PatternCursor(plan.seed);
    const hash = createHash('sha256');
    let sent = 0;
    const pump = (): void => {
      while (sent < plan.n) {
        if (settled || gotHead) return; // answered early (an error): stop sending
        const c = cursor.next(Math.min(64 * KiB, plan.n - sent));
        hash.update(c);
        sent += c.length;
        if (!req.write(c)) {
          req.once('drain', pump);
          return;
        }
      }
      sentSha = hash.digest('hex');
      bodySent = true;
      req.end();
    };
    pump();
  });
}

type Finish = (outcome: Outcome, code?: string, detail?: string) => void;

function readErrorAnswer(res: IncomingMessage, plan: Plan, finish: Finish): void {
  let text = '';
  res.setEncoding('utf8');
  res.on('data', (c: string) => {
    if (text.length < 4096) text += c;
  });
  res.on('end', () => {
    let slug: unknown;
    try {
      slug = (JSON.parse(text) as { error?: unknown }).error;
    } catch {
      slug = undefined;
    }
    const code = `${res.statusCode} ${typeof slug === 'string' ? slug : 'non-json'}`;
    if (typeof slug !== 'string' || !CLEAR_ERROR_STATUSES.has(res.statusCode ?? 0)) {
      finish('unexpected', code, text.slice(0, 200));
    } else if (plan.kind === 'toolAbort' && res.statusCode === 502) {
      finish('expectedCut', code);
    } else finish('failed', code);
  });
  res.on('close', () => {
    if (!res.complete) finish('cutOff', `${res.statusCode} answer cut`);
  });
}

/** `sentSha` is read when the answer is complete: the tool answers only after the whole body. */
function readUploadAnswer(res: IncomingMessage, plan: Plan, sentSha: () => string, finish: Finish): void {
  let text = '';
  res.setEncoding('utf8');
  res.on('data', (c: string) => (text += c));
  res.on('end', () => {
    const want = sentSha();
    let got: { bytes?: unknown; sha256?: unknown } = {};
    try {
      got = JSON.parse(text) as typeof got;
    } catch {
      // stays empty: a 200 whose body is not the tool's answer
    }
    if (got.bytes === plan.n && got.sha256 === want && want !== '') finish('ok');
    else finish('corrupted', 'upload', `tool saw ${String(got.bytes)} bytes sha ${String(got.sha256).slice(0, 12)}, sent ${plan.n} sha ${want.slice(0, 12)}`);
  });
  res.on('close', () => {
    if (!res.complete) finish('cutOff', 'upload answer cut');
  });
}

function readPatternBody(res: IncomingMessage, plan: Plan, check: BodyCheck, hangUp: () => void, finish: Finish): void {
  res.on('data', (c: Buffer) => {
    check.add(c);
    if (plan.kind === 'callerAbort' && check.bytes >= plan.hangUpAt) {
      if (check.badAt >= 0) finish('corrupted', 'prefix', `wrong byte at ${check.badAt}`);
      else finish('callerAborted');
      hangUp();
    }
  });
  res.on('end', () => {
    if (check.badAt >= 0) finish('corrupted', 'bytes', `wrong byte at ${check.badAt} of ${plan.n}`);
    else if (check.bytes !== plan.n) finish('corrupted', 'short', `complete-looking body of ${check.bytes} of ${plan.n} bytes`);
    else if (plan.kind === 'toolAbort') finish('corrupted', 'whole', `tool reset at ${plan.abortAt} yet ${check.bytes} bytes arrived`);
    else finish('ok');
  });
  res.on('close', () => {
    if (res.complete) return;
    if (check.badAt >= 0) finish('corrupted', 'prefix', `wrong byte at ${check.badAt} before the cut`);
    else if (plan.kind === 'toolAbort') finish('expectedCut', 'cut after head');
    else finish('cutOff', plan.kind, `${check.bytes} of ${plan.n} bytes`);
  });
}

// ---- load bookkeeping -----------------------------------------------------------------

const counts: Record<Outcome, number> = Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>;
const byClient: Record<'A' | 'B', Record<Outcome, number>> = {
  A: Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>,
  B: Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>,
};
const byKind: Record<string, Record<string, number>> = {};
const codes: Record<string, number> = {};
/** How the planned tool resets reached the caller. */
const expectedCutHow: Record<string, number> = {};
const smallLatency: Record<'A' | 'B', { startS: number; ms: number }[]> = { A: [], B: [] };
let bytesChecked = 0;
/** Every result that is not a plain ok, kept for the report (bounded). */
const notable: Result[] = [];
const inFlight = new Set<{ plan: Plan; startS: number; result?: Result }>();

/** Requests in flight when a SIGTERM was sent (plus, for an agent, those started during its drain). */
interface DrainWatch {
  label: string;
  atS: number;
  client: 'A' | 'B' | 'both';
  takesNew: boolean;
  members: { plan: Plan; startS: number; result?: Result }[];
}
const drainWatches: DrainWatch[] = [];
const openWatches = new Set<DrainWatch>();

function isFailure(o: Outcome): boolean {
  return o === 'failed' || o === 'connError' || o === 'cutOff' || o === 'corrupted' || o === 'hung' || o === 'unexpected';
}

function record(r: Result): void {
  counts[r.outcome]++;
  byClient[r.plan.client][r.outcome]++;
  const k = (byKind[r.plan.kind] ??= {});
  k[r.outcome] = (k[r.outcome] ?? 0) + 1;
  if (r.outcome === 'expectedCut') expectedCutHow[r.code] = (expectedCutHow[r.code] ?? 0) + 1;
  else if (r.code && r.outcome !== 'ok') codes[`${r.outcome}: ${r.code}`] = (codes[`${r.outcome}: ${r.code}`] ?? 0) + 1;
  if (r.outcome === 'ok') bytesChecked += r.plan.n;
  if (r.outcome === 'ok' && r.plan.kind === 'small') smallLatency[r.plan.client].push({ startS: r.startS, ms: r.ms });
  if (isFailure(r.outcome) && notable.length < 5000) notable.push(r);
  if (r.outcome === 'corrupted' || r.outcome === 'hung' || r.outcome === 'unexpected') {
    log(`${r.outcome.toUpperCase()}: ${describe(r)}`);
  }
}

function describe(r: Result): string {
  const p = r.plan;
  return (
    `${p.kind} client ${p.client} n=${p.n} seed=${p.seed}${p.delay ? ` delay=${p.delay}` : ''}${p.abortAt ? ` abortAt=${p.abortAt}` : ''}` +
    `${p.hangUpAt ? ` hangUpAt=${p.hangUpAt}` : ''}${p.chunked ? ' chunked' : ''}: ${r.outcome} ${r.code} ${r.detail} ` +
    `(started ${r.startS.toFixed(1)} s, ${Math.round(r.ms)} ms, request id ${r.requestId ?? '-'})`
  );
}

let loadRunning = true;

async function caller(client: 'A' | 'B'): Promise<void> {
  while (loadRunning) {
    const plan = makePlan(client);
    const entry: { plan: Plan; startS: number; result?: Result } = { plan, startS: now() };
    inFlight.add(entry);
    for (const w of openWatches) if (w.takesNew && (w.client === 'both' || w.client === client)) w.members.push(entry);
    const r = await runRequest(plan);
    entry.result = r;
    inFlight.delete(entry);
    record(r);
    // A failing stack answers at once; don't spin on it.
    if (isFailure(r.outcome)) await sleep(50 + loadRng() * 100);
  }
}

function openDrainWatch(label: string, client: DrainWatch['client'], takesNew: boolean, minAgeS: number): DrainWatch {
  const atS = now();
  const w: DrainWatch = {
    label,
    atS,
    client,
    takesNew,
    members: [...inFlight].filter((e) => (client === 'both' || e.plan.client === client) && atS - e.startS >= minAgeS),
  };
  drainWatches.push(w);
  if (takesNew) openWatches.add(w);
  return w;
}

// ---- faults ----------------------------------------------------------------------------

type FaultKind = 'kill9' | 'sigterm' | 'sigstop' | 'relay-stall' | 'relay-blackhole' | 'relay-drop' | 'server-restart';

/**
 * a1 takes every fault; a2 only those that leave the process running, so
 * one client-A agent lives the whole run under load and reconnects and is
 * judged for leaks; b1 takes none (client B shows isolation).
 */
const FAULTS_OF: Record<'a1' | 'a2', FaultKind[]> = {
  a1: ['kill9', 'sigterm', 'sigstop', 'relay-stall', 'relay-blackhole', 'relay-drop'],
  a2: ['sigstop', 'relay-stall', 'relay-blackhole', 'relay-drop'],
};
const FAULT_WEIGHTS: Partial<Record<FaultKind, number>> = {
  kill9: 3,
  sigterm: 3,
  sigstop: 3,
  'relay-stall': 2,
  'relay-blackhole': 2,
  'relay-drop': 2,
};

interface FaultRecord {
  n: number;
  kind: FaultKind;
  target: string;
  atS: number;
  holdMs?: number;
  /** Time until the server no longer listed the target's tunnels (frozen or black-holed path). */
  detectMs?: number;
  recoverMs?: number;
  recovered: boolean;
  /** Exit of a SIGTERMed process: code, and whether it had to be SIGKILLed after the drain time. */
  exit?: { code: number | null; signal: string | null; killed: boolean; ms: number };
  note?: string;
  /** When the stack was whole again (or the recovery wait gave up). */
  endS?: number;
  /** Failed requests that overlapped this fault (from its start to 1 s after recovery). */
  failures?: number;
}

const faults: FaultRecord[] = [];

/** The agent-fault sequence: every kind once (shuffled) first, so even a short run covers them, then weighted picks. */
function faultSequence(): () => { kind: FaultKind; target: 'a1' | 'a2' } {
  const first = FAULTS_OF.a1.map((kind) => ({ kind, target: 'a1' as 'a1' | 'a2' }));
  for (const f of first) if (FAULTS_OF.a2.includes(f.kind) && faultRng() < 0.5) f.target = 'a2';
  for (let i = first.length - 1; i > 0; i--) {
    const j = Math.floor(faultRng() * (i + 1));
    [first[i], first[j]] = [first[j]!, first[i]!];
  }
  return () => {
    const next = first.shift();
    if (next) return next;
    const kind = pickWeighted(faultRng, FAULT_WEIGHTS);
    const target = FAULTS_OF.a2.includes(kind) && faultRng() < 0.5 ? 'a2' : 'a1';
    return { kind, target };
  };
}

function slot(id: SlotId): AgentSlot {
  return slots.find((s) => s.id === id)!;
}

/** Freezes a path (SIGSTOP or a relay stall) for holdMs, measuring how soon the server drops it. */
async function frozen(f: FaultRecord, s: AgentSlot, freeze: () => void, thaw: () => void): Promise<void> {
  const ids = await connectionsOf(s);
  const t = performance.now();
  freeze();
  f.detectMs = await waitDropped(ids, f.holdMs!);
  const left = f.holdMs! - (performance.now() - t);
  if (left > 0) await sleep(left);
  thaw();
}

async function runFault(f: FaultRecord): Promise<void> {
  const s = f.target === 'server' ? undefined : slot(f.target as SlotId);
  const relay = s?.relay;
  switch (f.kind) {
    case 'kill9': {
      await endProc(s!.proc!, 'SIGKILL', 1000);
      await sleep(randInt(faultRng, 0, 1000));
      await launchAgent(s!);
      break;
    }
    case 'sigterm': {
      const w = openDrainWatch(`agent ${s!.proc!.name} SIGTERM`, s!.client, true, 0);
      const t = performance.now();
      const e = await endProc(s!.proc!, 'SIGTERM', DRAIN_TIMEOUT_MS + 5000);
      openWatches.delete(w);
      f.exit = { ...e, ms: Math.round(performance.now() - t) };
      await launchAgent(s!);
      break;
    }
    case 'sigstop': {
      const pid = s!.proc!.child.pid;
      await frozen(f, s!, () => process.kill(pid, 'SIGSTOP'), () => process.kill(pid, 'SIGCONT'));
      break;
    }
    case 'relay-stall':
      await frozen(f, s!, () => relay!.stall(), () => relay!.resume());
      break;
    case 'relay-blackhole': {
      // Cannot be undone (a lost NAT mapping): both ends must notice, drop and redial.
      const ids = await connectionsOf(s!);
      relay!.blackhole();
      f.detectMs = await waitDropped(ids, RECOVERY_LIMIT_MS);
      break;
    }
    case 'relay-drop':
      relay!.dropAll();
      break;
    case 'server-restart': {
      // Only requests that surely reached the server before the signal (50 ms old) must survive it.
      openDrainWatch(`server ${serverProc.name} SIGTERM`, 'both', false, 0.05);
      const t = performance.now();
      const old = serverProc;
      const e = await endProc(old, 'SIGTERM', DRAIN_TIMEOUT_MS + 5000);
      f.exit = { ...e, ms: Math.round(performance.now() - t) };
      await launchServer({ port: server.port, ingressPort: server.ingressPort, dataDir: server.dataDir, adminToken: server.adminToken });
      break;
    }
  }
}

async function injectFault(kind: FaultKind, target: string): Promise<void> {
  const f: FaultRecord = { n: faults.length + 1, kind, target, atS: round1(now()), recovered: false };
  if (kind === 'sigstop' || kind === 'relay-stall') f.holdMs = randInt(faultRng, 2500, 5000);
  faults.push(f);
  try {
    await runFault(f);
  } catch (err) {
    f.note = `fault failed: ${(err as Error).message.split('\n')[0]}`;
  }
  const rec = await waitRecovered();
  f.endS = round1(now());
  f.recovered = rec !== undefined;
  if (rec !== undefined) f.recoverMs = Math.round(rec);
  if (f.detectMs !== undefined) f.detectMs = Math.round(f.detectMs);
  log(
    `fault ${f.n}: ${kind} ${target}` +
      (f.holdMs ? ` for ${(f.holdMs / 1000).toFixed(1)} s` : '') +
      (f.detectMs !== undefined ? `, dropped by the server in ${f.detectMs} ms` : f.holdMs ? ', NOT dropped by the server while held' : '') +
      (f.exit ? `, exited ${f.exit.killed ? 'only after SIGKILL' : `with code ${f.exit.code}`} in ${f.exit.ms} ms` : '') +
      (f.recovered ? `, all tunnels back ${f.recoverMs} ms later` : ', NOT RECOVERED') +
      (f.note ? ` (${f.note})` : ''),
  );
}

async function faultLoop(loadStartS: number): Promise<void> {
  const next = faultSequence();
  const restartAtS = loadStartS + DURATION_S * SERVER_RESTART_AT;
  const endS = loadStartS + DURATION_S - FAULT_FREE_END_S;
  let restarted = false;
  await sleep(Math.max(0, (loadStartS + FAULT_FREE_START_S - now()) * 1000));
  while (now() < endS) {
    if (!restarted && now() >= restartAtS) {
      restarted = true;
      await injectFault('server-restart', 'server');
    } else {
      const { kind, target } = next();
      await injectFault(kind, target);
    }
    const gap = randInt(faultRng, GAP_MS[0], GAP_MS[1]);
    await sleep(restarted ? gap : Math.max(0, Math.min(gap, (restartAtS - now()) * 1000)));
  }
  // A long last fault can run past the restart time and the end of the fault window: the restart still happens.
  if (!restarted) await injectFault('server-restart', 'server');
}

// ---- report ----------------------------------------------------------------------------

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function median(xs: number[]): number {
  return percentile([...xs].sort((a, b) => a - b), 50);
}

interface RssJudgement {
  name: string;
  role: Role;
  lifeS: number;
  samples: number;
  minMiB: number;
  maxMiB: number;
  warmMiB: number | null;
  endMiB: number | null;
  growthMiB: number | null;
  judged: boolean;
  pass: boolean;
  cpuS: number;
  /** Least-squares trend after the warm window (a leak shows as a steady positive slope). */
  slopeMiBPerMin: number | null;
  /** [seconds of its life, MiB] every 10 s. */
  series: [number, number][];
}

function judgeRss(p: Proc): RssJudgement {
  const rss = p.samples.map((s) => s.rss);
  const lifeS = (p.endedAt ?? now()) - p.startedAt;
  const warm = p.samples.filter((s) => s.t >= RSS_WARM_S && s.t < RSS_WARM_S + RSS_WINDOW_S).map((s) => s.rss);
  const last = p.samples.slice(-5).map((s) => s.rss);
  const lastT = p.samples[p.samples.length - 1]?.t ?? 0;
  // The tool is the soak's own stand-in (it buffers echo bodies): reported, not judged.
  const judged = p.role !== 'tool' && warm.length > 0 && lastT >= RSS_WARM_S + RSS_WINDOW_S + RSS_MIN_JUDGED_S;
  const warmRss = warm.length ? median(warm) : Number.NaN;
  const endRss = last.length ? median(last) : Number.NaN;
  const mib = (b: number): number => Math.round((b / MiB) * 10) / 10;
  return {
    name: p.name,
    role: p.role,
    lifeS: round1(lifeS),
    samples: rss.length,
    minMiB: mib(Math.min(...rss)),
    maxMiB: mib(Math.max(...rss)),
    warmMiB: judged ? mib(warmRss) : null,
    endMiB: judged ? mib(endRss) : null,
    growthMiB: judged ? mib(endRss - warmRss) : null,
    judged,
    pass: !judged || endRss - warmRss <= RSS_BOUND,
    cpuS: round1(p.cpuS),
    slopeMiBPerMin: judged ? round1(slope(p.samples.filter((s) => s.t >= RSS_WARM_S)) * 60 / MiB) : null,
    series: p.samples.filter((s, i) => i === 0 || Math.floor(s.t / 10) !== Math.floor(p.samples[i - 1]!.t / 10)).map((s) => [Math.round(s.t), mib(s.rss)]),
  };
}

/** Bytes per second, least squares. */
function slope(samples: { t: number; rss: number }[]): number {
  const n = samples.length;
  if (n < 2) return 0;
  const mt = samples.reduce((a, s) => a + s.t, 0) / n;
  const mr = samples.reduce((a, s) => a + s.rss, 0) / n;
  const cov = samples.reduce((a, s) => a + (s.t - mt) * (s.rss - mr), 0);
  const vt = samples.reduce((a, s) => a + (s.t - mt) ** 2, 0);
  return vt > 0 ? cov / vt : 0;
}

function statsOf(xs: number[]): { n: number; p50: number | null; max: number | null } {
  const s = [...xs].sort((a, b) => a - b);
  return { n: s.length, p50: s.length ? Math.round(percentile(s, 50)) : null, max: s.length ? Math.round(s[s.length - 1]!) : null };
}

function drainSummary(w: DrainWatch): { label: string; atS: number; requests: number; failed: number; failures: string[] } {
  const failed = w.members.filter((m) => m.result && isFailure(m.result.outcome));
  return {
    label: w.label,
    atS: round1(w.atS),
    requests: w.members.length,
    failed: failed.length,
    failures: failed.slice(0, 5).map((m) => describe(m.result!)),
  };
}

/** Client-B failures that cannot be blamed on the server restart (±2 s around it): faults of client A leaked across. */
function isolationFailures(): Result[] {
  const restarts = faults.filter((f) => f.kind === 'server-restart');
  return notable.filter((r) => {
    if (r.plan.client !== 'B') return false;
    const endS = r.startS + r.ms / 1000;
    return !restarts.some((f) => endS >= f.atS - 2 && r.startS <= f.atS + (f.exit?.ms ?? 0) / 1000 + (f.recoverMs ?? RECOVERY_LIMIT_MS) / 1000 + 2);
  });
}

/** The fault whose window (start to 1 s after recovery) overlaps [startS, endS], if any. */
function faultAt(startS: number, endS: number): FaultRecord | undefined {
  for (let i = faults.length - 1; i >= 0; i--) {
    const f = faults[i]!;
    if (startS <= (f.endS ?? Number.POSITIVE_INFINITY) + 1 && endS >= f.atS) return f;
  }
  return undefined;
}

/** Failed requests per fault kind, and those that overlapped no fault at all. */
function attributeFailures(): { byKind: Record<string, { faults: number; failures: number; perFault: number }>; outside: Result[] } {
  const outside: Result[] = [];
  for (const f of faults) f.failures = 0;
  for (const r of notable) {
    const f = faultAt(r.startS, r.startS + r.ms / 1000);
    if (f) f.failures!++;
    else outside.push(r);
  }
  const byKind: Record<string, { faults: number; failures: number; perFault: number }> = {};
  for (const f of faults) {
    const k = (byKind[f.kind] ??= { faults: 0, failures: 0, perFault: 0 });
    k.faults++;
    k.failures += f.failures!;
    k.perFault = round1(k.failures / k.faults);
  }
  return { byKind, outside };
}

function buildReport(elapsedS: number) {
  const rssAll = procs.map(judgeRss);
  const roles = (['server', 'agent', 'tool'] as Role[]).map((role) => {
    const mine = rssAll.filter((r) => r.role === role && r.samples > 0);
    return {
      role,
      processes: mine.length,
      minMiB: mine.length ? Math.min(...mine.map((r) => r.minMiB)) : null,
      maxMiB: mine.length ? Math.max(...mine.map((r) => r.maxMiB)) : null,
      maxGrowthMiB: Math.max(...mine.filter((r) => r.judged).map((r) => r.growthMiB!), Number.NEGATIVE_INFINITY),
    };
  });
  const byKindFault: Record<string, number> = {};
  for (const f of faults) byKindFault[f.kind] = (byKindFault[f.kind] ?? 0) + 1;
  const detect = (kinds: FaultKind[]) => statsOf(faults.filter((f) => kinds.includes(f.kind) && f.detectMs !== undefined).map((f) => f.detectMs!));
  const total = OUTCOMES.reduce((a, o) => a + counts[o], 0);
  const drains = drainWatches.map(drainSummary);
  const isolation = isolationFailures();
  const latOf = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return { n: s.length, p50Ms: round1(percentile(s, 50)), p99Ms: round1(percentile(s, 99)), maxMs: round1(s[s.length - 1] ?? Number.NaN) };
  };
  const lat = (c: 'A' | 'B') => ({
    ...latOf(smallLatency[c].map((x) => x.ms)),
    withoutFaults: latOf(smallLatency[c].filter((x) => !faultAt(x.startS, x.startS + x.ms / 1000)).map((x) => x.ms)),
  });
  const attributed = attributeFailures();
  const assertions = [
    { name: 'corrupted bodies = 0', pass: counts.corrupted === 0, value: counts.corrupted },
    { name: 'hung requests = 0', pass: counts.hung === 0, value: counts.hung },
    { name: 'error answers are Postern JSON 429/502/503/504', pass: counts.unexpected === 0, value: counts.unexpected },
    {
      name: `RSS: end ≤ warm + ${RSS_BOUND / MiB} MiB for every process judged`,
      pass: rssAll.every((r) => r.pass),
      value: rssAll.filter((r) => !r.pass).map((r) => `${r.name} +${r.growthMiB} MiB`).join(', ') || 'all within',
    },
    { name: 'no process died unasked', pass: crashes.length === 0, value: crashes.map((c) => c.name).join(', ') || 'none' },
    {
      name: 'every fault recovered (all tunnels back, no stale ones)',
      pass: faults.every((f) => f.recovered),
      value: faults.filter((f) => !f.recovered).map((f) => `#${f.n} ${f.kind} ${f.target}`).join(', ') || 'all',
    },
    { name: 'client B unaffected by client-A faults', pass: isolation.length === 0, value: isolation.length },
    { name: 'no failure away from a fault', pass: attributed.outside.length === 0, value: attributed.outside.length },
    {
      name: 'no failure among requests in flight at a SIGTERM (drain)',
      pass: drains.every((d) => d.failed === 0),
      value: drains.reduce((a, d) => a + d.failed, 0),
    },
  ];
  return {
    date: new Date().toISOString(),
    seed: SEED,
    quick: QUICK,
    durationS: DURATION_S,
    elapsedS: round1(elapsedS),
    machine: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      node: process.version,
      // Other work on the machine shows in the latency figures.
      loadAvgAtStart: LOAD_AT_START,
      loadAvgAtEnd: os.loadavg().map((x) => round1(x)),
    },
    setup: {
      heartbeatMs: HEARTBEAT_MS,
      connectionsPerAgent: CONNECTIONS,
      agents: { A: ['a1 (all faults)', 'a2 (faults that keep the process)'], B: ['b1 (no faults)'] },
      callers: CALLERS,
      deadlineMs: DEADLINE_MS,
      drainTimeoutMs: DRAIN_TIMEOUT_MS,
      requestMix: REQUEST_MIX,
      rssBoundMiB: RSS_BOUND / MiB,
    },
    requests: {
      total,
      ...counts,
      perSecond: round1(total / elapsedS),
      checkedMiB: Math.round(bytesChecked / MiB),
      byClient,
      byKind,
      failuresByCode: Object.fromEntries(Object.entries(codes).sort((a, b) => b[1] - a[1])),
      toolResetsSeenAs: expectedCutHow,
    },
    smallGetLatency: { A: lat('A'), B: lat('B') },
    faults: {
      total: faults.length,
      byKind: byKindFault,
      detectMs: { sigstop: detect(['sigstop']), stall: detect(['relay-stall']), blackhole: detect(['relay-blackhole']) },
      recoverMs: statsOf(faults.filter((f) => f.recoverMs !== undefined).map((f) => f.recoverMs!)),
      log: faults,
    },
    drains,
    failuresByFault: attributed.byKind,
    failuresWithoutFault: { count: attributed.outside.length, first: attributed.outside.slice(0, 10).map(describe) },
    isolationFailures: isolation.slice(0, 10).map(describe),
    rss: { roles, processes: rssAll },
    cpuSeconds: {
      ...Object.fromEntries(roles.map((ro) => [ro.role, round1(rssAll.filter((x) => x.role === ro.role).reduce((a, x) => a + x.cpuS, 0))])),
      soak: round1(cpuSecondsOf(process.pid)),
    } as Record<Role | 'soak', number>,
    crashes,
    logWarnings: Object.fromEntries(Object.entries(logCounts).sort((a, b) => b[1] - a[1])),
    notable: notable
      .filter((r) => r.outcome === 'corrupted' || r.outcome === 'hung' || r.outcome === 'unexpected')
      .slice(0, 20)
      .map(describe),
    assertions,
    pass: assertions.every((a) => a.pass),
  };
}

type Report = ReturnType<typeof buildReport>;

function renderReport(r: Report): string {
  const q = r.requests;
  const lines: string[] = [];
  const pct = (n: number): string => `${((100 * n) / Math.max(1, q.total)).toFixed(2)}%`;
  lines.push(
    `Postern soak: ${r.elapsedS} s, seed ${r.seed} (again: npm run soak -- --seed ${r.seed} --duration ${r.durationS}${r.quick ? ' --quick' : ''}); ` +
      `${r.cpuSeconds.soak} CPU s in the soak process (load, checks, relays)`,
    `machine: ${r.machine.cpus} CPUs, node ${r.machine.node}, load average ${r.machine.loadAvgAtStart[0]} at start, ${r.machine.loadAvgAtEnd[0]} at the end`,
    `requests: ${q.total} (${q.perSecond}/s, ${q.checkedMiB} MiB checked byte for byte): ok ${q.ok} (${pct(q.ok)}), ` +
      `failed with a Postern error ${q.failed}, connection errors ${q.connError}, cut off ${q.cutOff}, ` +
      `corrupted ${q.corrupted}, hung ${q.hung}, unexpected answers ${q.unexpected}`,
    `  planned: tool resets mid-body ${q.expectedCut} (seen as: ${Object.entries(q.toolResetsSeenAs).map(([k, n]) => `${k} ${n}`).join(', ')}), caller hang-ups ${q.callerAborted}`,
  );
  for (const [code, n] of Object.entries(q.failuresByCode)) lines.push(`  ${String(n).padStart(6)}  ${code}`);
  for (const c of ['A', 'B'] as const) {
    const l = r.smallGetLatency[c];
    const b = q.byClient[c];
    lines.push(
      `client ${c}: ok ${b.ok}, failed ${b.failed + b.connError + b.cutOff}; small GET latency p50 ${l.p50Ms} ms, p99 ${l.p99Ms} ms, max ${l.maxMs} ms (${l.n} requests); ` +
        `away from faults p50 ${l.withoutFaults.p50Ms} ms, p99 ${l.withoutFaults.p99Ms} ms (${l.withoutFaults.n})`,
    );
  }
  const fk = Object.entries(r.faults.byKind).map(([k, n]) => `${k} ${n}`).join(', ');
  const d = r.faults.detectMs;
  lines.push(
    `faults: ${r.faults.total} (${fk})`,
    `  server dropped a frozen path in: SIGSTOP p50 ${d.sigstop.p50} / max ${d.sigstop.max} ms (${d.sigstop.n}), ` +
      `stall p50 ${d.stall.p50} / max ${d.stall.max} ms (${d.stall.n}), black hole p50 ${d.blackhole.p50} / max ${d.blackhole.max} ms (${d.blackhole.n}); heartbeat ${HEARTBEAT_MS} ms`,
    `  all tunnels back after a fault in: p50 ${r.faults.recoverMs.p50} ms, max ${r.faults.recoverMs.max} ms`,
    `  failed requests per fault: ${Object.entries(r.failuresByFault).map(([k, v]) => `${k} ${v.perFault}`).join(', ')}; failed with no fault near: ${r.failuresWithoutFault.count}`,
  );
  for (const f of r.failuresWithoutFault.first) lines.push(`    ${f}`);
  for (const dr of r.drains) {
    lines.push(`drain: ${dr.label} at ${dr.atS} s: ${dr.requests} requests in flight (or started during it), ${dr.failed} failed`);
    for (const f of dr.failures) lines.push(`    ${f}`);
  }
  lines.push('RSS (VmRSS, sampled every second):');
  for (const ro of r.rss.roles) {
    lines.push(`  ${ro.role.padEnd(6)} ${ro.processes} process(es): min ${ro.minMiB} MiB, max ${ro.maxMiB} MiB; ${r.cpuSeconds[ro.role]} CPU s`);
  }
  for (const p of r.rss.processes) {
    lines.push(
      `    ${p.name.padEnd(10)} lived ${String(p.lifeS).padStart(6)} s, ${p.minMiB}–${p.maxMiB} MiB` +
        (p.judged
          ? `, warm ${p.warmMiB} → end ${p.endMiB} MiB (${p.growthMiB! >= 0 ? '+' : ''}${p.growthMiB} MiB; trend ${p.slopeMiBPerMin} MiB/min)${p.pass ? '' : ' OVER BOUND'}`
          : p.role === 'tool'
            ? ' (the soak tool: not judged)'
            : ', too short to judge'),
    );
    if (p.role === 'server' && p.judged) lines.push(`      every 10 s: ${p.series.map(([, m]) => Math.round(m)).join(' ')} MiB`);
  }
  if (Object.keys(r.logWarnings).length) {
    lines.push('warnings and errors the processes logged:');
    for (const [k, n] of Object.entries(r.logWarnings).slice(0, 15)) lines.push(`  ${String(n).padStart(6)}  ${k}`);
  }
  for (const n of r.notable) lines.push(`  ! ${n}`);
  for (const i of r.isolationFailures) lines.push(`  ! client B: ${i}`);
  lines.push('assertions:');
  for (const a of r.assertions) lines.push(`  ${a.pass ? 'PASS' : 'FAIL'}  ${a.name} (${a.value})`);
  return lines.join('\n');
}

// ---- main ------------------------------------------------------------------------------

async function startStack(): Promise<void> {
  const dataDir = join(RUN_DIR, 'data');
  mkdirSync(dataDir);
  const tool = spawnTracked('tool', 'tool', [join(DIST, 'bench', 'soak-tool.js')], {});
  const toolPort = await tool.child.waitForJson((o) => (o.msg === 'listening' ? (o.port as number) : undefined), 10_000);
  toolUrl = `http://127.0.0.1:${toolPort}`;
  await launchServer({ port: 0, ingressPort: 0, dataDir, adminToken: randomBytes(24).toString('base64url') });
  ingressPort = server.ingressPort;
  clients.A = await createClient(server, 'soak-a');
  clients.B = await createClient(server, 'soak-b');
  for (const [id, client] of [
    ['a1', 'A'],
    ['a2', 'A'],
    ['b1', 'B'],
  ] as const) {
    const relay = client === 'A' ? await TcpRelay.start(server.port) : undefined;
    if (relay) relays.push(relay);
    slots.push({ id, client, creds: clients[client], relay, gen: 0, proc: undefined });
  }
  await Promise.all(slots.map((s) => launchAgent(s)));
  if ((await waitRecovered()) === undefined) throw new Error('the agents did not all connect');
}

async function stopStack(): Promise<void> {
  stopping = true;
  for (const s of slots) if (s.proc) await endProc(s.proc, 'SIGTERM', DRAIN_TIMEOUT_MS + 5000);
  await endProc(serverProc, 'SIGTERM', DRAIN_TIMEOUT_MS + 5000);
  for (const p of procs) if (p.endedAt === undefined) await endProc(p, 'SIGTERM', 5000);
  await Promise.all(relays.map((r) => r.close()));
}

async function main(): Promise<number> {
  log(
    `seed ${SEED}, ${DURATION_S} s${QUICK ? ' (--quick)' : ''}; logs in ${RUN_DIR}\n` +
      `  load: ${CALLERS.A} callers on client A (agents a1, a2 via relays), ${CALLERS.B} on client B (agent b1, never faulted); deadline ${DEADLINE_MS / 1000} s`,
  );
  await startStack();
  const rssTimer = setInterval(sampleRss, 1000);
  sampleRss();
  log('stack up; load starts');
  const loadStartS = now();
  const endS = loadStartS + DURATION_S;
  const callers = [
    ...Array.from({ length: CALLERS.A }, () => caller('A')),
    ...Array.from({ length: CALLERS.B }, () => caller('B')),
  ];
  const progress = setInterval(() => {
    const total = OUTCOMES.reduce((a, o) => a + counts[o], 0);
    log(
      `${total} requests: ok ${counts.ok}, failed ${counts.failed + counts.connError + counts.cutOff}, corrupted ${counts.corrupted}, hung ${counts.hung}; ` +
        `server RSS ${(serverProc.child.rss() / MiB).toFixed(1)} MiB; ${faults.length} faults`,
    );
  }, 10_000);
  await faultLoop(loadStartS);
  await sleep(Math.max(0, (endS - now()) * 1000));
  loadRunning = false;
  await Promise.all(callers);
  clearInterval(progress);
  const settled = await waitRecovered();
  if (settled === undefined) log('the stack was not back in its full shape at the end');
  sampleRss();
  clearInterval(rssTimer);
  const elapsedS = now();
  await stopStack();

  const report = buildReport(elapsedS);
  process.stdout.write(`\n${renderReport(report)}\n`);
  // A quick run's figures are for development: they do not replace the committed ones.
  const resultsFile = QUICK ? join(os.tmpdir(), 'postern-soak-quick.json') : RESULTS_FILE;
  writeFileSync(resultsFile, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`results: ${resultsFile}\n${report.pass ? 'soak PASSED' : 'soak FAILED'}\n`);
  const keep = !report.pass || flags['keep-logs'] === true;
  if (!keep) rmSync(RUN_DIR, { recursive: true, force: true });
  else process.stdout.write(`logs: ${RUN_DIR}\n`);
  process.stdout.write(
    `${JSON.stringify({
      soak: report.pass ? 'pass' : 'fail',
      seed: SEED,
      durationS: report.elapsedS,
      requests: report.requests.total,
      ok: report.requests.ok,
      failed: report.requests.failed,
      connErrors: report.requests.connError,
      cutOff: report.requests.cutOff,
      corrupted: report.requests.corrupted,
      hung: report.requests.hung,
      unexpected: report.requests.unexpected,
      faults: report.faults.byKind,
      smallP50Ms: report.smallGetLatency.A.p50Ms,
      smallP99Ms: report.smallGetLatency.A.p99Ms,
      rssMaxMiB: Object.fromEntries(report.rss.roles.map((x) => [x.role, x.maxMiB])),
      failedAssertions: report.assertions.filter((a) => !a.pass).map((a) => a.name),
    })}\n`,
  );
  return report.pass ? 0 : 1;
}

main().then(
  (code) => {
    killEverything();
    process.exit(code);
  },
  (err: unknown) => {
    process.stderr.write(`soak failed: ${(err as Error)?.stack ?? String(err)}\n(logs in ${RUN_DIR})\n`);
    killEverything();
    process.exit(1);
  },
);
