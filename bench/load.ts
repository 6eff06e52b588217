import { Agent, request, type IncomingMessage } from 'node:http';
import autocannon, { type AutocannonResult } from 'autocannon';
import { cpuSecondsOf, machineCpu, rssOf } from './processes.js';

// ---- small requests: autocannon ---------------------------------------------

export interface SmallGetResult {
  connections: number;
  durationS: number;
  requests: number;
  rps: number;
  /** Latency percentiles in ms, from every response's own hrtime (µs precision). */
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  /**
   * CPU used during the measured run, per process: cores busy on average and
   * CPU microseconds per completed request.
   */
  cpu: Record<string, { cores: number; usPerRequest: number }>;
  /** Share of the machine's CPU time stolen by the hypervisor during the run (noise). */
  stealPct: number;
  /** autocannon's own summary (its latency histogram has 1 ms resolution). */
  autocannon: { requestsAverage: number; latencyP50: number; latencyP99: number };
}

function runAutocannon(
  url: string,
  connections: number,
  durationS: number,
  onLatency?: (ms: number) => void,
): Promise<AutocannonResult> {
  return new Promise((resolve, reject) => {
    const inst = autocannon({ url, connections, duration: durationS, timeout: 10 }, (err, result) => {
      if (err) reject(err);
      else resolve(result);
    });
    if (onLatency) {
      inst.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
        if (status >= 200 && status < 300) onLatency(ms);
      });
    }
  });
}

/** A warm-up run (discarded), then a measured run with per-response latency. */
export async function smallGet(
  url: string,
  connections: number,
  durationS: number,
  warmupS: number,
  pids: Record<string, number> = {},
): Promise<SmallGetResult> {
  if (warmupS > 0) await runAutocannon(url, connections, warmupS);
  let lat = new Float64Array(1 << 16);
  let n = 0;
  const cpuBefore = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSecondsOf(pid)]));
  const m0 = machineCpu();
  const t0 = performance.now();
  const result = await runAutocannon(url, connections, durationS, (ms) => {
    if (n === lat.length) {
      const bigger = new Float64Array(lat.length * 2);
      bigger.set(lat);
      lat = bigger;
    }
    lat[n++] = ms;
  });
  const wallS = (performance.now() - t0) / 1000;
  const m1 = machineCpu();
  const stealPct = (100 * (m1.steal - m0.steal)) / Math.max(1, m1.total - m0.total);
  const cpu = Object.fromEntries(
    Object.entries(pids).map(([k, pid]) => {
      const used = cpuSecondsOf(pid) - cpuBefore[k]!;
      return [k, { cores: used / wallS, usPerRequest: (used * 1e6) / Math.max(1, result.requests.total) }];
    }),
  );
  const sorted = lat.subarray(0, n).sort();
  const pct = (p: number): number => (n === 0 ? Number.NaN : sorted[Math.min(n - 1, Math.floor((p / 100) * n))]!);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += sorted[i]!;
  return {
    connections,
    durationS: result.duration,
    requests: result.requests.total,
    rps: result.requests.total / result.duration,
    p50Ms: pct(50),
    p99Ms: pct(99),
    meanMs: n ? sum / n : Number.NaN,
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
    cpu,
    stealPct,
    autocannon: {
      requestsAverage: result.requests.average,
      latencyP50: result.latency.p50,
      latencyP99: result.latency.p99,
    },
  };
}

// ---- bulk transfers: node:http ----------------------------------------------

export interface TransferResult {
  ok: boolean;
  bytes: number;
  ms: number;
  /** 10^6 bytes per second. */
  mbPerS: number;
  error?: string;
}

const keepAlive = new Agent({ keepAlive: true, maxSockets: 512 });

function mbps(bytes: number, ms: number): number {
  return bytes / 1e6 / (ms / 1000);
}

/** GET `url`, reading and counting the body; wall time from request to last byte. */
export function download(url: string, expected: number, timeoutMs: number, agent: Agent = keepAlive): Promise<TransferResult> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let bytes = 0;
    let settled = false;
    const finish = (ok: boolean, error?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const ms = performance.now() - t0;
      resolve({ ok, bytes, ms, mbPerS: mbps(bytes, ms), ...(error ? { error } : {}) });
    };
    const req = request(url, { agent }, (res: IncomingMessage) => {
      if (res.statusCode !== 200) {
        res.resume();
        finish(false, `HTTP ${res.statusCode}`);
        return;
      }
      res.on('data', (c: Buffer) => (bytes += c.length));
      res.on('end', () => finish(bytes === expected, bytes === expected ? undefined : `got ${bytes} of ${expected} bytes`));
      res.on('error', (e) => finish(false, e.message));
      res.on('aborted', () => finish(false, 'response aborted'));
    });
    const timer = setTimeout(() => {
      finish(false, `timed out after ${timeoutMs} ms`);
      req.destroy();
    }, timeoutMs);
    req.on('error', (e) => finish(false, e.message));
    req.end();
  });
}

const UPLOAD_CHUNK = Buffer.alloc(64 * 1024, 'u');

/** POST `size` bytes to `url` (streamed with backpressure); the tool answers the count. */
export function upload(url: string, size: number, timeoutMs: number): Promise<TransferResult> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let settled = false;
    const finish = (ok: boolean, error?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const ms = performance.now() - t0;
      resolve({ ok, bytes: size, ms, mbPerS: mbps(size, ms), ...(error ? { error } : {}) });
    };
    const req = request(
      url,
      { method: 'POST', agent: keepAlive, headers: { 'content-type': 'application/octet-stream', 'content-length': size } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          if (res.statusCode !== 200) finish(false, `HTTP ${res.statusCode}: ${text.slice(0, 200)}`);
          else finish(Number(text) === size, Number(text) === size ? undefined : `tool counted ${text} of ${size} bytes`);
        });
        res.on('error', (e) => finish(false, e.message));
      },
    );
    const timer = setTimeout(() => {
      finish(false, `timed out after ${timeoutMs} ms`);
      req.destroy();
    }, timeoutMs);
    req.on('error', (e) => finish(false, e.message));
    let left = size;
    const pump = (): void => {
      while (left > 0) {
        const c = left >= UPLOAD_CHUNK.length ? UPLOAD_CHUNK : UPLOAD_CHUNK.subarray(0, left);
        left -= c.length;
        if (!req.write(c)) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}

export interface BestOf {
  best: TransferResult;
  runs: TransferResult[];
}

/**
 * Runs `fn` up to `n` times and keeps the fastest successful run. Stops early
 * once `budgetMs` is spent (a slow path must not blow the bench's time limit).
 */
export async function bestOf(n: number, budgetMs: number, fn: () => Promise<TransferResult>): Promise<BestOf> {
  const runs: TransferResult[] = [];
  const deadline = performance.now() + budgetMs;
  for (let i = 0; i < n; i++) {
    runs.push(await fn());
    if (performance.now() > deadline) break;
  }
  const ok = runs.filter((r) => r.ok);
  const best = ok.length ? ok.reduce((a, b) => (b.mbPerS > a.mbPerS ? b : a)) : runs[runs.length - 1]!;
  return { best, runs };
}

export interface ManyStreamsResult {
  streams: number;
  bytesEach: number;
  succeeded: number;
  failed: number;
  ms: number;
  mbPerS: number;
  errors: string[];
}

/** `count` GETs at once, each on its own connection; total wall time. */
export async function manyStreams(url: string, count: number, bytesEach: number, timeoutMs: number): Promise<ManyStreamsResult> {
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
  const t0 = performance.now();
  const results = await Promise.all(Array.from({ length: count }, () => download(url, bytesEach, timeoutMs, agent)));
  const ms = performance.now() - t0;
  agent.destroy();
  const failed = results.filter((r) => !r.ok);
  return {
    streams: count,
    bytesEach,
    succeeded: count - failed.length,
    failed: failed.length,
    ms,
    mbPerS: mbps(count * bytesEach, ms),
    errors: [...new Set(failed.map((f) => f.error ?? 'failed'))].slice(0, 5),
  };
}

// ---- memory ---------------------------------------------------------------

/** Samples VmRSS of some processes every `everyMs` until stopped. */
export class RssSampler {
  private readonly timer: NodeJS.Timeout;
  readonly samples: Record<string, number[]> = {};

  constructor(
    private readonly pids: Record<string, number>,
    everyMs = 100,
  ) {
    for (const k of Object.keys(pids)) this.samples[k] = [];
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  private sample(): void {
    for (const [k, pid] of Object.entries(this.pids)) {
      const v = rssOf(pid);
      if (Number.isFinite(v)) this.samples[k]!.push(v);
    }
  }

  stop(): Record<string, { max: number; count: number }> {
    clearInterval(this.timer);
    this.sample();
    return Object.fromEntries(
      Object.entries(this.samples).map(([k, s]) => [k, { max: Math.max(...s), count: s.length }]),
    );
  }
}

/** Median of a few VmRSS readings spread over `overMs`. */
export async function steadyRss(pid: number, samples = 5, overMs = 1000): Promise<number> {
  const vals: number[] = [];
  for (let i = 0; i < samples; i++) {
    vals.push(rssOf(pid));
    if (i < samples - 1) await new Promise((r) => setTimeout(r, overMs / (samples - 1)));
  }
  vals.sort((a, b) => a - b);
  return vals[Math.floor(vals.length / 2)]!;
}
