import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  bestOf,
  download,
  manyStreams,
  RssSampler,
  smallGet,
  smallGetWhile,
  startDownloadInWorker,
  steadyRss,
  upload,
  type BestOf,
  type ManyStreamsResult,
  type SmallGetResult,
  type TransferResult,
} from './load.js';
import { formatSummary, summarizeProfile } from './profile-summary.js';
import {
  Child,
  createClient,
  DIST,
  killAll,
  machineCpu,
  serverStatus,
  sleep,
  startAgent,
  startRelay,
  startServer,
  startTool,
  stopAll,
  type ClientCreds,
  type ServerProc,
} from './processes.js';

/**
 * `npm run bench`: the same loads against the tool directly and through
 * Postern (caller → server ingress → tunnel → agent → tool), one run, one
 * machine, 127.0.0.1 only. Server, agent, tool (and the WAN relay and the
 * many-agents process) each run in their own process; the load generator
 * (autocannon, plus node:http for bulk transfers) runs here. One scenario
 * measures small GETs while a 1 GiB download runs on the same tunnel, next
 * to the same against the tool directly.
 *
 *   node dist/bench/run.js [--quick] [--profile <dir> [--profile-scenario small|download|upload]]
 *
 * --quick     short runs (development of the bench itself)
 * --profile   one scenario only (default: small GETs at c=64), direct and then
 *             through postern, with the server and agent under --cpu-prof;
 *             prints their top self-time functions
 */

const { values: flags } = parseArgs({
  options: { quick: { type: 'boolean' }, profile: { type: 'string' }, 'profile-scenario': { type: 'string', default: 'small' } },
  strict: true,
});
const QUICK = flags.quick === true;

const KiB = 1024;
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

const P = QUICK
  ? { smallS: 1, warmS: 0.5, concurrencies: [1, 16, 64], dl: 20 * MiB, ul: 5 * MiB, big: 128 * MiB, streams: 256, streamBytes: 64 * KiB, agents: 100, wanDl: 20 * MiB }
  : { smallS: 5, warmS: 1, concurrencies: [1, 16, 64], dl: 100 * MiB, ul: 20 * MiB, big: GiB, streams: 256, streamBytes: 256 * KiB, agents: 1000, wanDl: 100 * MiB };
/** Small-request latency while one big download runs (see scenarioLatencyUnderDownload). */
const L = QUICK
  ? { bytes: 256 * MiB, concurrencies: [1, 8], idleS: 1, maxS: 20, timeoutMs: 30_000 }
  : { bytes: GiB, concurrencies: [1, 8], idleS: 3, maxS: 60, timeoutMs: 90_000 };
const WAN_ONE_WAY_MS = 25;
/** Whole run, hard limit: everything is killed after this. */
const WATCHDOG_MS = QUICK ? 180_000 : 420_000;

const REPO = resolve(DIST, '..');
const RESULTS_FILE = join(REPO, 'bench', QUICK ? 'results-quick.json' : 'results.json');
const autocannonVersion = (createRequire(import.meta.url)('autocannon/package.json') as { version: string }).version;
const LOADGEN = `autocannon ${autocannonVersion}`;

// ---- lifetime: everything bounded, every child killed ------------------------

const watchdog = setTimeout(() => {
  process.stderr.write(`\nbench: over the time limit of ${WATCHDOG_MS / 1000} s; stopping everything\n`);
  killAll();
  process.exit(3);
}, WATCHDOG_MS);
watchdog.unref();
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    process.stderr.write(`\nbench: ${sig}, stopping\n`);
    killAll();
    process.exit(130);
  });
}
process.on('uncaughtException', (err) => {
  process.stderr.write(`bench: ${err.stack ?? err.message}\n`);
  killAll();
  process.exit(1);
});

function log(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

// ---- the stack ----------------------------------------------------------------

interface Stack {
  tool: { child: Child; url: string };
  server: ServerProc;
  client: ClientCreds;
  agent: Child;
  ingress: string;
}

async function startStack(nodeArgs: { server?: string[]; agent?: string[] } = {}): Promise<Stack> {
  const tool = await startTool();
  const server = await startServer(nodeArgs.server);
  const client = await createClient(server, 'bench');
  const agent = await startAgent(server, client, tool.url, { nodeArgs: nodeArgs.agent ?? [] });
  return { tool, server, client, agent, ingress: `${server.ingressUrl}/t/${client.clientId}` };
}

async function stopStack(s: Stack): Promise<void> {
  await s.agent.stop();
  await s.server.child.stop(10_000);
  await s.tool.child.stop();
  s.server.cleanup();
}

// ---- scenarios ----------------------------------------------------------------

interface MemoryIdle {
  serverIdleRss: number;
  agentIdleRss: number;
  toolIdleRss: number;
  agents: number;
  serverRssBefore: number;
  serverRssAfter: number;
  perAgentBytes: number;
  connectMs: number;
  connectedSeen: number;
}

async function scenarioMemoryIdle(): Promise<MemoryIdle> {
  log('memory: fresh server + one agent, idle RSS');
  const s = await startStack();
  try {
    await sleep(1500);
    const [serverIdleRss, agentIdleRss, toolIdleRss] = await Promise.all([
      steadyRss(s.server.child.pid),
      steadyRss(s.agent.pid),
      steadyRss(s.tool.child.pid),
    ]);

    log(`memory: creating ${P.agents} clients`);
    const clients: ClientCreds[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < P.agents) {
          const i = next++;
          clients.push(await createClient(s.server, `idle-${i}`));
        }
      }),
    );
    // The status answer with every client listed is built once before the
    // "before" reading too, so both readings include what it costs.
    await serverStatus(s.server);
    await sleep(1000);
    const serverRssBefore = await steadyRss(s.server.child.pid);

    log(`memory: connecting ${P.agents} idle agents (one process, ${P.agents} PosternAgent instances)`);
    const specFile = join(s.server.dataDir, 'many-agents.json');
    writeFileSync(specFile, JSON.stringify({ proxyUrl: `http://127.0.0.1:${s.server.port}`, toolUrl: s.tool.url, clients }));
    const many = new Child({ name: 'many-agents', args: [join(DIST, 'bench', 'many-agents.js'), specFile] });
    try {
      const up = await many.waitForJson<{ n: number; ms: number }>((o) => {
        if (o.msg === 'failed') throw new Error(`many-agents failed: ${String(o.error)}`);
        return o.msg === 'connected' ? { n: o.n as number, ms: o.ms as number } : undefined;
      }, 120_000);
      const status = await serverStatus(s.server);
      const ids = new Set(clients.map((c) => c.clientId));
      const connectedSeen = status.clients.filter((c) => ids.has(c.clientId) && c.connected).length;
      if (connectedSeen !== P.agents) throw new Error(`server shows ${connectedSeen} of ${P.agents} idle agents connected`);
      await sleep(2000);
      const serverRssAfter = await steadyRss(s.server.child.pid);
      return {
        serverIdleRss,
        agentIdleRss,
        toolIdleRss,
        agents: P.agents,
        serverRssBefore,
        serverRssAfter,
        perAgentBytes: (serverRssAfter - serverRssBefore) / P.agents,
        connectMs: up.ms,
        connectedSeen,
      };
    } finally {
      await many.stop();
    }
  } finally {
    await stopStack(s);
  }
}

interface BigTransfer {
  bytes: number;
  transfer: TransferResult;
  baseline: { server: number; agent: number };
  max: { server: number; agent: number };
  growth: { server: number; agent: number };
  samples: number;
}

async function scenarioBigTransfer(s: Stack): Promise<BigTransfer> {
  log(`rss: ${P.big / MiB} MiB download through the tunnel, VmRSS sampled every 100 ms`);
  const [bServer, bAgent] = await Promise.all([steadyRss(s.server.child.pid, 3, 300), steadyRss(s.agent.pid, 3, 300)]);
  const sampler = new RssSampler({ server: s.server.child.pid, agent: s.agent.pid }, 100);
  const transfer = await download(`${s.ingress}/bytes?n=${P.big}`, P.big, 120_000);
  await sleep(200);
  const max = sampler.stop();
  return {
    bytes: P.big,
    transfer,
    baseline: { server: bServer, agent: bAgent },
    max: { server: max.server!.max, agent: max.agent!.max },
    growth: { server: max.server!.max - bServer, agent: max.agent!.max - bAgent },
    samples: max.server!.count,
  };
}

interface SmallPair {
  direct: SmallGetResult;
  tunnel: SmallGetResult;
}

function pidsOf(s: Stack): Record<string, number> {
  return { loadgen: process.pid, server: s.server.child.pid, agent: s.agent.pid, tool: s.tool.child.pid };
}

async function scenarioSmall(s: Stack): Promise<Record<string, SmallPair>> {
  const out: Record<string, SmallPair> = {};
  for (const c of P.concurrencies) {
    log(`small GET c=${c}: direct`);
    const direct = await smallGet(`${s.tool.url}/small`, c, P.smallS, P.warmS, pidsOf(s));
    log(`small GET c=${c}: through postern`);
    const tunnel = await smallGet(`${s.ingress}/small`, c, P.smallS, P.warmS, pidsOf(s));
    out[`c${c}`] = { direct, tunnel };
  }
  return out;
}

interface BulkPair {
  direct: BestOf;
  tunnel: BestOf;
}

async function scenarioBulk(s: Stack): Promise<{ download: BulkPair & { bytes: number }; upload: BulkPair & { bytes: number } }> {
  log(`download ${P.dl / MiB} MiB, best of 3: direct, then through postern`);
  const dDirect = await bestOf(3, 30_000, () => download(`${s.tool.url}/bytes?n=${P.dl}`, P.dl, 30_000));
  const dTunnel = await bestOf(3, 30_000, () => download(`${s.ingress}/bytes?n=${P.dl}`, P.dl, 30_000));
  log(`upload ${P.ul / MiB} MiB, best of 3: direct, then through postern`);
  const uDirect = await bestOf(3, 30_000, () => upload(`${s.tool.url}/sink`, P.ul, 30_000));
  const uTunnel = await bestOf(3, 30_000, () => upload(`${s.ingress}/sink`, P.ul, 30_000));
  return {
    download: { bytes: P.dl, direct: dDirect, tunnel: dTunnel },
    upload: { bytes: P.ul, direct: uDirect, tunnel: uTunnel },
  };
}

async function scenarioManyStreams(s: Stack): Promise<{ direct: ManyStreamsResult; tunnel: ManyStreamsResult }> {
  log(`${P.streams} concurrent GETs of ${P.streamBytes / KiB} KiB: direct, then through postern (the agent's default two tunnels)`);
  const direct = await manyStreams(`${s.tool.url}/bytes?n=${P.streamBytes}`, P.streams, P.streamBytes, 60_000);
  const tunnel = await manyStreams(`${s.ingress}/bytes?n=${P.streamBytes}`, P.streams, P.streamBytes, 60_000);
  return { direct, tunnel };
}

interface LatencyPoint {
  /** Small GETs with nothing else running. */
  idle: SmallGetResult;
  /** The same small GETs, counting only responses that arrived while the download ran. */
  busy: SmallGetResult;
  /** The download at the same time, read as fast as a worker thread of the bench can. */
  download: TransferResult;
}

interface LatencyUnderDownload {
  bytes: number;
  /** Tunnels the agent under test has: 1, so the download and the small GETs share it. */
  tunnels: number;
  byConcurrency: Record<string, { direct: LatencyPoint; tunnel: LatencyPoint }>;
}

/** Polls until `check` holds or `ms` passed. */
async function waitFor(check: () => boolean, ms: number): Promise<void> {
  const deadline = performance.now() + ms;
  while (!check() && performance.now() < deadline) await sleep(10);
}

/**
 * Small GETs at `c` with nothing else running, then again while one
 * L.bytes download runs from the same base URL (measured from once the
 * download is flowing until it ends).
 */
async function latencyPoint(base: string, c: number): Promise<LatencyPoint> {
  const idle = await smallGet(`${base}/small`, c, L.idleS, P.warmS);
  const dl = startDownloadInWorker(`${base}/bytes?n=${L.bytes}`, L.bytes, L.timeoutMs);
  let ended = false;
  void dl.result.then(() => (ended = true));
  // Past the window's growth from 256 KiB: the steady state is what is measured.
  await waitFor(() => ended || dl.received() >= 16 * MiB, 10_000);
  const busy = await smallGetWhile(`${base}/small`, c, L.maxS, dl.result);
  dl.abort(); // only if the window was capped at L.maxS
  return { idle, busy, download: await dl.result };
}

/**
 * What a big transfer does to other requests on the same tunnel: small GETs
 * (c=1, c=8) through postern with and without one L.bytes download running
 * on the same client and tunnel (an agent with POSTERN_CONNECTIONS=1), and
 * the same against the tool directly with and without a direct download.
 */
async function scenarioLatencyUnderDownload(s: Stack): Promise<LatencyUnderDownload> {
  const size = L.bytes >= GiB ? `${L.bytes / GiB} GiB` : `${L.bytes / MiB} MiB`;
  log(`small GETs while one ${size} download runs: a second agent with one tunnel`);
  const client = await createClient(s.server, 'bench-one-tunnel');
  const agent = await startAgent(s.server, client, s.tool.url, { name: 'agent-one-tunnel', env: { POSTERN_CONNECTIONS: '1' } });
  try {
    const status = await serverStatus(s.server);
    const tunnels = status.clients.find((c) => c.clientId === client.clientId)?.connections.length ?? 0;
    if (tunnels !== 1) throw new Error(`the one-tunnel agent has ${tunnels} tunnels`);
    const ingress = `${s.server.ingressUrl}/t/${client.clientId}`;
    const byConcurrency: LatencyUnderDownload['byConcurrency'] = {};
    for (const c of L.concurrencies) {
      log(`small GET c=${c}, idle then during a ${size} download: direct`);
      const direct = await latencyPoint(s.tool.url, c);
      log(`small GET c=${c}, idle then during a ${size} download: through postern (same tunnel)`);
      const tunnel = await latencyPoint(ingress, c);
      byConcurrency[`c${c}`] = { direct, tunnel };
    }
    return { bytes: L.bytes, tunnels, byConcurrency };
  } finally {
    await agent.stop();
  }
}

interface Wan {
  oneWayDelayMs: number;
  tunnelRttMs: number | null;
  /** direct = caller → relay (+delay each way) → tool; tunnel = the agent's tunnel crosses the relay. */
  smallC1: { direct: SmallGetResult; tunnel: SmallGetResult };
  download: { bytes: number; direct: BestOf; tunnel: BestOf };
}

/**
 * The WAN point. Through postern: the agent dials the server through a relay
 * that adds WAN_ONE_WAY_MS each way, so every tunnel frame and window update
 * pays the round trip (the ingress stays on loopback). Direct: the caller
 * reaches the tool through a second, identical relay, so "direct" is the
 * same link without postern (and shows what the relay itself can carry).
 */
async function scenarioWan(s: Stack): Promise<Wan> {
  log(`WAN: relays adding ${WAN_ONE_WAY_MS} ms each way; a second agent dials through one of them`);
  const relay = await startRelay(s.server.port, WAN_ONE_WAY_MS, 'relay-tunnel');
  const toolRelay = await startRelay(Number(new URL(s.tool.url).port), WAN_ONE_WAY_MS, 'relay-direct');
  const client = await createClient(s.server, 'bench-wan');
  const agent = await startAgent(s.server, client, s.tool.url, {
    proxyUrl: `http://127.0.0.1:${relay.port}`,
    name: 'agent-wan',
  });
  try {
    await sleep(500); // first heartbeat round trip measured
    const status = await serverStatus(s.server);
    const tunnelRttMs = status.clients.find((c) => c.clientId === client.clientId)?.connections[0]?.rttMs ?? null;
    const ingress = `${s.server.ingressUrl}/t/${client.clientId}`;
    const direct = `http://127.0.0.1:${toolRelay.port}`;
    log('WAN: small GET c=1: direct over the relay, then through the WAN tunnel');
    const sDirect = await smallGet(`${direct}/small`, 1, Math.min(P.smallS, 3), P.warmS);
    const sTunnel = await smallGet(`${ingress}/small`, 1, Math.min(P.smallS, 3), P.warmS);
    log(`WAN: download ${P.wanDl / MiB} MiB, best of 3 (each capped at 40 s): direct over the relay, then through the WAN tunnel`);
    const dDirect = await bestOf(3, 30_000, () => download(`${direct}/bytes?n=${P.wanDl}`, P.wanDl, 40_000));
    const dTunnel = await bestOf(3, 30_000, () => download(`${ingress}/bytes?n=${P.wanDl}`, P.wanDl, 40_000));
    return {
      oneWayDelayMs: WAN_ONE_WAY_MS,
      tunnelRttMs,
      smallC1: { direct: sDirect, tunnel: sTunnel },
      download: { bytes: P.wanDl, direct: dDirect, tunnel: dTunnel },
    };
  } finally {
    await agent.stop();
    await relay.child.stop();
    await toolRelay.child.stop();
  }
}

// ---- report -------------------------------------------------------------------

interface Row {
  scenario: string;
  direct: string;
  postern: string;
  compare: string;
  target: string;
  pass: boolean | null;
}

const f1 = (n: number): string => (Number.isFinite(n) ? n.toFixed(1) : 'n/a');
const f2 = (n: number): string => (Number.isFinite(n) ? n.toFixed(2) : 'n/a');
const f3 = (n: number): string => (Number.isFinite(n) ? n.toFixed(3) : 'n/a');
const int = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');
const mib = (b: number): string => `${f1(b / MiB)} MiB`;
const ratio = (a: number, b: number): string => `${f2(a / b)}×`;
const okSuffix = (r: SmallGetResult): string => (r.errors + r.non2xx + r.timeouts > 0 ? ` (${r.errors + r.non2xx + r.timeouts} failed)` : '');
const mbs = (t: TransferResult): string => (t.ok ? `${f1(t.mbPerS)} MB/s` : `FAILED: ${t.error ?? '?'}`);

function buildRows(r: Results['scenarios']): Row[] {
  const rows: Row[] = [];
  for (const [key, { direct, tunnel }] of Object.entries(r.smallGet)) {
    const c = key.slice(1);
    const isC64 = c === '64';
    const isC1 = c === '1';
    const rpsRatio = tunnel.rps / direct.rps;
    rows.push({
      scenario: `small GET c=${c}: throughput`,
      direct: `${int(direct.rps)} req/s${okSuffix(direct)}`,
      postern: `${int(tunnel.rps)} req/s${okSuffix(tunnel)}`,
      compare: ratio(tunnel.rps, direct.rps),
      target: isC64 ? '≥ 0.33× direct' : '',
      pass: isC64 ? rpsRatio >= 0.33 && tunnel.errors + tunnel.non2xx === 0 : null,
    });
    const d50 = tunnel.p50Ms - direct.p50Ms;
    rows.push({
      scenario: `small GET c=${c}: p50 / p99 latency`,
      direct: `${f3(direct.p50Ms)} / ${f3(direct.p99Ms)} ms`,
      postern: `${f3(tunnel.p50Ms)} / ${f3(tunnel.p99Ms)} ms`,
      compare: `p50 +${f3(d50)} ms`,
      target: isC1 ? 'p50 ≤ direct + 0.25 ms' : '',
      pass: isC1 ? d50 <= 0.25 : null,
    });
  }
  const dl = r.bulk.download;
  const dlRatio = dl.tunnel.best.mbPerS / dl.direct.best.mbPerS;
  rows.push({
    scenario: `download ${dl.bytes / MiB} MiB (best of 3)`,
    direct: mbs(dl.direct.best),
    postern: mbs(dl.tunnel.best),
    compare: ratio(dl.tunnel.best.mbPerS, dl.direct.best.mbPerS),
    target: '≥ 0.6× direct',
    pass: dl.tunnel.best.ok && dlRatio >= 0.6,
  });
  const ul = r.bulk.upload;
  const ulRatio = ul.tunnel.best.mbPerS / ul.direct.best.mbPerS;
  rows.push({
    scenario: `upload ${ul.bytes / MiB} MiB (best of 3)`,
    direct: mbs(ul.direct.best),
    postern: mbs(ul.tunnel.best),
    compare: ratio(ul.tunnel.best.mbPerS, ul.direct.best.mbPerS),
    target: '≥ 0.6× direct',
    pass: ul.tunnel.best.ok && ulRatio >= 0.6,
  });
  const ms = r.manyStreams;
  const msCell = (x: ManyStreamsResult): string => `${int(x.ms)} ms, ${x.succeeded}/${x.streams} ok`;
  rows.push({
    scenario: `${ms.tunnel.streams} streams at once × ${ms.tunnel.bytesEach / KiB} KiB`,
    direct: msCell(ms.direct),
    postern: msCell(ms.tunnel),
    compare: ratio(ms.tunnel.ms, ms.direct.ms) + ' time',
    target: 'all succeed',
    pass: ms.tunnel.failed === 0,
  });
  const m = r.memoryIdle;
  rows.push({
    scenario: 'server RSS idle (one agent)',
    direct: '',
    postern: mib(m.serverIdleRss),
    compare: `agent ${mib(m.agentIdleRss)}`,
    target: '≤ 60 MiB',
    pass: m.serverIdleRss <= 60 * MiB,
  });
  rows.push({
    scenario: `server RSS per idle agent connection (${m.agents})`,
    direct: '',
    postern: `${f1(m.perAgentBytes / KiB)} KiB`,
    compare: `${mib(m.serverRssBefore)} → ${mib(m.serverRssAfter)}`,
    target: '≤ 32 KiB',
    pass: m.perAgentBytes <= 32 * KiB,
  });
  const b = r.bigTransfer;
  rows.push({
    scenario: `RSS growth, ${b.bytes / GiB >= 1 ? `${b.bytes / GiB} GiB` : `${b.bytes / MiB} MiB`} download: server`,
    direct: '',
    postern: mib(b.growth.server),
    compare: `${mib(b.baseline.server)} → ${mib(b.max.server)}`,
    target: '≤ 16 MiB',
    pass: b.growth.server <= 16 * MiB,
  });
  rows.push({
    scenario: `RSS growth, ${b.bytes / GiB >= 1 ? `${b.bytes / GiB} GiB` : `${b.bytes / MiB} MiB`} download: agent`,
    direct: '',
    postern: mib(b.growth.agent),
    compare: `${mib(b.baseline.agent)} → ${mib(b.max.agent)} (${mbs(b.transfer)})`,
    target: '≤ 16 MiB',
    pass: b.growth.agent <= 16 * MiB,
  });
  const lu = r.latencyUnderDownload;
  const luSize = lu.bytes >= GiB ? `${lu.bytes / GiB} GiB` : `${lu.bytes / MiB} MiB`;
  const lat = (x: SmallGetResult): string => `${f3(x.p50Ms)} / ${f3(x.p99Ms)} / ${f1(x.maxMs)} ms${okSuffix(x)}`;
  for (const [key, { direct, tunnel }] of Object.entries(lu.byConcurrency)) {
    const c = key.slice(1);
    rows.push({
      scenario: `small GET c=${c}, no download: p50 / p99 / max`,
      direct: lat(direct.idle),
      postern: lat(tunnel.idle),
      compare: `p99 +${f3(tunnel.idle.p99Ms - direct.idle.p99Ms)} ms`,
      target: '',
      pass: null,
    });
    rows.push({
      scenario: `small GET c=${c}, during a ${luSize} download: p50 / p99 / max`,
      direct: lat(direct.busy),
      postern: lat(tunnel.busy),
      compare: `p99 ${f1(tunnel.busy.p99Ms / tunnel.idle.p99Ms)}× idle (direct ${f1(direct.busy.p99Ms / direct.idle.p99Ms)}×)`,
      target: '',
      pass: null,
    });
    rows.push({
      scenario: `${luSize} download during small GETs c=${c}`,
      direct: mbs(direct.download),
      postern: mbs(tunnel.download),
      compare: ratio(tunnel.download.mbPerS, direct.download.mbPerS),
      target: '',
      pass: null,
    });
  }
  const w = r.wan;
  rows.push({
    scenario: `WAN (+${w.oneWayDelayMs} ms each way): small GET c=1 p50`,
    direct: `${f3(w.smallC1.direct.p50Ms)} ms`,
    postern: `${f3(w.smallC1.tunnel.p50Ms)} ms`,
    compare: `p50 +${f3(w.smallC1.tunnel.p50Ms - w.smallC1.direct.p50Ms)} ms; tunnel RTT ${w.tunnelRttMs === null ? 'n/a' : `${f1(w.tunnelRttMs)} ms`}`,
    target: '',
    pass: null,
  });
  const fixedWindow = (256 * KiB) / 1e6 / ((2 * w.oneWayDelayMs) / 1000);
  rows.push({
    scenario: `WAN: download ${w.download.bytes / MiB} MiB, one stream`,
    direct: mbs(w.download.direct.best),
    postern: mbs(w.download.tunnel.best),
    compare: `${ratio(w.download.tunnel.best.mbPerS, w.download.direct.best.mbPerS)}; ${f1(w.download.tunnel.best.mbPerS / fixedWindow)}× 256KiB/RTT`,
    target: '≥ 100 MB/s (SPEC)',
    pass: w.download.tunnel.best.ok && w.download.tunnel.best.mbPerS >= 100,
  });
  return rows;
}

function cpuLine(label: string, r: SmallGetResult): string {
  const parts = Object.entries(r.cpu)
    .filter(([, v]) => v.cores >= 0.005)
    .map(([k, v]) => `${k} ${int(v.usPerRequest)} µs (${f2(v.cores)} cores)`);
  return `  ${label.padEnd(16)} ${parts.join(', ')}; steal ${f1(r.stealPct)}%`;
}

function renderCpu(small: Record<string, SmallPair>): string {
  const lines = ['CPU per small GET (µs of CPU per request; average cores busy), by process:'];
  for (const [key, { direct, tunnel }] of Object.entries(small)) {
    lines.push(cpuLine(`c=${key.slice(1)} direct`, direct), cpuLine(`c=${key.slice(1)} postern`, tunnel));
  }
  return lines.join('\n');
}

function renderLatencyUnderDownload(lu: LatencyUnderDownload): string {
  const size = lu.bytes >= GiB ? `${lu.bytes / GiB} GiB` : `${lu.bytes / MiB} MiB`;
  const cell = (x: SmallGetResult): string =>
    `p50 ${f3(x.p50Ms)} p99 ${f3(x.p99Ms)} max ${f1(x.maxMs)} ms (${int(x.requests)} req in ${f1(x.durationS)} s)${okSuffix(x)}`;
  const lines = [
    `Small GETs while one ${size} download runs (postern: same client, one tunnel; latencies of responses that arrived during the download):`,
  ];
  for (const [key, { direct, tunnel }] of Object.entries(lu.byConcurrency)) {
    for (const [label, p] of [
      ['direct', direct],
      ['postern', tunnel],
    ] as const) {
      lines.push(
        `  c=${key.slice(1)} ${label.padEnd(8)} idle: ${cell(p.idle)}`,
        `  c=${key.slice(1)} ${label.padEnd(8)} busy: ${cell(p.busy)}; download ${mbs(p.download)}`,
      );
    }
  }
  return lines.join('\n');
}

function renderTable(rows: Row[]): string {
  const head: Row = { scenario: 'scenario', direct: 'direct', postern: 'through postern', compare: 'postern vs direct', target: 'target', pass: null };
  const cells = (r: Row, isHead = false): string[] => [
    r.scenario,
    r.direct,
    r.postern,
    r.compare,
    r.target,
    isHead ? 'result' : r.pass === null ? '' : r.pass ? 'PASS' : 'FAIL',
  ];
  const all = [cells(head, true), ...rows.map((r) => cells(r))];
  const widths = all[0]!.map((_, i) => Math.max(...all.map((c) => c[i]!.length)));
  const line = (c: string[]): string => `| ${c.map((x, i) => x.padEnd(widths[i]!)).join(' | ')} |`;
  const sep = `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`;
  return [line(all[0]!), sep, ...all.slice(1).map(line)].join('\n');
}

interface Results {
  date: string;
  machine: {
    cpus: number;
    cpuModel: string;
    node: string;
    platform: string;
    totalMemMiB: number;
    loadAvgAtStart: number[];
    /** Share of the machine's CPU time the hypervisor stole during the whole run. */
    stealPct: number;
  };
  loadGenerator: string;
  quick: boolean;
  durationS: number;
  scenarios: {
    smallGet: Record<string, SmallPair>;
    bulk: Awaited<ReturnType<typeof scenarioBulk>>;
    manyStreams: Awaited<ReturnType<typeof scenarioManyStreams>>;
    memoryIdle: MemoryIdle;
    bigTransfer: BigTransfer;
    latencyUnderDownload: LatencyUnderDownload;
    wan: Wan;
  };
  targets?: { scenario: string; target: string; direct: string; value: string; compare: string; pass: boolean }[];
}

// ---- main ------------------------------------------------------------------------

async function runBench(): Promise<void> {
  const t0 = performance.now();
  const cpu0 = machineCpu();
  const machine: Results['machine'] = {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    totalMemMiB: Math.round(os.totalmem() / MiB),
    loadAvgAtStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
    stealPct: Number.NaN,
  };
  if (machine.loadAvgAtStart[0]! > 0.5 * machine.cpus) {
    process.stdout.write(
      `note: the 1-minute load average is ${machine.loadAvgAtStart[0]} on ${machine.cpus} CPUs before the run: other work on this machine will skew the figures\n\n`,
    );
  }
  process.stdout.write(
    `Postern benchmark${QUICK ? ' (--quick: short runs, smaller sizes)' : ''}: direct vs through postern, 127.0.0.1\n` +
      `load generator: ${LOADGEN} (small GETs; latency from each response's hrtime) and node:http (bulk transfers)\n` +
      `machine: ${machine.cpus} CPUs (${machine.cpuModel}), node ${machine.node}; server, agent, tool each in its own process\n\n`,
  );

  // Phase A: memory on a fresh server (idle, then many idle agents).
  const memoryIdle = await scenarioMemoryIdle();

  // Phase B: a fresh stack; the 1 GiB transfer first, so its baseline is a
  // process that has not yet grown from the other loads.
  log('starting a fresh stack for the load scenarios');
  const s = await startStack();
  let scenarios: Results['scenarios'];
  try {
    await sleep(1000);
    const bigTransfer = await scenarioBigTransfer(s);
    const smallGetRes = await scenarioSmall(s);
    const bulk = await scenarioBulk(s);
    const many = await scenarioManyStreams(s);
    const latencyUnderDownload = await scenarioLatencyUnderDownload(s);
    const wan = await scenarioWan(s);
    scenarios = { smallGet: smallGetRes, bulk, manyStreams: many, memoryIdle, bigTransfer, latencyUnderDownload, wan };
  } finally {
    await stopStack(s);
  }

  const cpu1 = machineCpu();
  machine.stealPct = Math.round((1000 * (cpu1.steal - cpu0.steal)) / Math.max(1, cpu1.total - cpu0.total)) / 10;
  const rows = buildRows(scenarios);
  const results: Results = {
    date: new Date().toISOString(),
    machine,
    loadGenerator: LOADGEN,
    quick: QUICK,
    durationS: Math.round((performance.now() - t0) / 100) / 10,
    scenarios,
    targets: rows
      .filter((r) => r.pass !== null)
      .map((r) => ({ scenario: r.scenario, target: r.target, direct: r.direct, value: r.postern, compare: r.compare, pass: r.pass! })),
  };
  writeFileSync(RESULTS_FILE, `${JSON.stringify(results, null, 2)}\n`);

  process.stdout.write(
    `${renderTable(rows)}\n\n${renderCpu(scenarios.smallGet)}\n\n${renderLatencyUnderDownload(scenarios.latencyUnderDownload)}\n\n`,
  );
  const failed = rows.filter((r) => r.pass === false);
  const passed = rows.filter((r) => r.pass === true);
  process.stdout.write(
    `targets: ${passed.length} passed, ${failed.length} failed` +
      (failed.length ? ` (${failed.map((r) => r.scenario).join('; ')})` : '') +
      `\nmachine noise during the run: ${machine.stealPct}% of CPU time stolen by the hypervisor; load average at start ${machine.loadAvgAtStart.join(' ')}` +
      `\nMB = 10^6 bytes; MiB/KiB = 2^20/2^10. Raw numbers: ${RESULTS_FILE}. Took ${results.durationS} s.\n`,
  );
}

/** --profile: one scenario with the server and agent under --cpu-prof. */
async function runProfile(dirArg: string, scenario: string): Promise<void> {
  if (!['small', 'download', 'upload'].includes(scenario)) {
    throw new Error(`--profile-scenario must be small, download or upload, not ${JSON.stringify(scenario)}`);
  }
  const dir = resolve(dirArg, `run-${Date.now()}-${scenario}`);
  mkdirSync(dir, { recursive: true });
  const prof = (name: string): string[] => ['--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${name}.cpuprofile`];
  log(`profile (${scenario}): server and agent under --cpu-prof, profiles in ${dir}`);
  const s = await startStack({ server: prof('server'), agent: prof('agent') });
  const measured: Record<string, unknown> = {};
  try {
    if (scenario === 'small') {
      const direct = await smallGet(`${s.tool.url}/small`, 64, P.smallS, P.warmS, pidsOf(s));
      const tunnel = await smallGet(`${s.ingress}/small`, 64, P.smallS, P.warmS, pidsOf(s));
      Object.assign(measured, { direct, tunnel });
      process.stdout.write(
        `small GET c=64 (${LOADGEN}): direct ${int(direct.rps)} req/s, through postern ${int(tunnel.rps)} req/s ` +
          `(${ratio(tunnel.rps, direct.rps)}; profiling slows the tunnel down)\n` +
          `${cpuLine('direct', direct)}\n${cpuLine('postern', tunnel)}\n\n`,
      );
    } else {
      const n = scenario === 'download' ? P.dl : P.ul;
      const run = (base: string): Promise<TransferResult> =>
        scenario === 'download' ? download(`${base}/bytes?n=${n}`, n, 60_000) : upload(`${base}/sink`, n, 60_000);
      const direct = await bestOf(3, 30_000, () => run(s.tool.url));
      const tunnel = await bestOf(3, 60_000, () => run(s.ingress));
      Object.assign(measured, { direct, tunnel });
      process.stdout.write(
        `${scenario} ${n / MiB} MiB ×3: direct best ${mbs(direct.best)}, through postern best ${mbs(tunnel.best)} ` +
          `(${ratio(tunnel.best.mbPerS, direct.best.mbPerS)}; profiling slows the tunnel down)\n\n`,
      );
    }
  } finally {
    await stopStack(s); // SIGTERM: both exit cleanly and write their profiles
  }
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  const summaries: Record<string, unknown> = {};
  for (const f of files.sort()) {
    const summary = summarizeProfile(join(dir, f), 25);
    summaries[f] = summary;
    process.stdout.write(`${formatSummary(f.replace('.cpuprofile', ''), summary)}\n\n`);
  }
  writeFileSync(join(dir, 'summary.json'), `${JSON.stringify({ scenario, ...measured, profiles: summaries }, null, 2)}\n`);
}

const main = flags.profile !== undefined ? runProfile(flags.profile, flags['profile-scenario']) : runBench();
main.then(
  async () => {
    await stopAll();
    process.exit(0);
  },
  async (err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error)?.stack ?? String(err)}\n`);
    killAll();
    process.exit(1);
  },
);
