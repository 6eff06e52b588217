import { Agent, request, type IncomingMessage } from 'node:http';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
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
  maxMs: number;
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
  stopWhen?: Promise<unknown>,
): Promise<AutocannonResult> {
  return new Promise((resolve, reject) => {
    let finished = false;
    const inst = autocannon({ url, connections, duration: durationS, timeout: 10 }, (err, result) => {
      finished = true;
      if (err) reject(err);
      else resolve(result);
    });
    if (onLatency) {
      inst.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
        if (status >= 200 && status < 300) onLatency(ms);
      });
    }
    // autocannon notices stop() at its next 1 s sample tick: callers that
    // need an exact window filter the latencies themselves.
    void stopWhen?.then(() => {
      if (!finished) inst.stop();
    });
  });
}

/** Per-response latencies (ms), growing as needed; percentiles on demand. */
class Latencies {
  private lat = new Float64Array(1 << 16);
  n = 0;

  add(ms: number): void {
    if (this.n === this.lat.length) {
      const bigger = new Float64Array(this.lat.length * 2);
      bigger.set(this.lat);
      this.lat = bigger;
    }
    this.lat[this.n++] = ms;
  }

  summary(): { p50Ms: number; p99Ms: number; maxMs: number; meanMs: number } {
    const n = this.n;
    const sorted = this.lat.subarray(0, n).sort();
    const pct = (p: number): number => (n === 0 ? Number.NaN : sorted[Math.min(n - 1, Math.floor((p / 100) * n))]!);
    let sum = 0;
    for (let i = 0; i < n; i++) sum += sorted[i]!;
    return { p50Ms: pct(50), p99Ms: pct(99), maxMs: n ? sorted[n - 1]! : Number.NaN, meanMs: n ? sum / n : Number.NaN };
  }
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
  const lat = new Latencies();
  const cpuBefore = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSecondsOf(pid)]));
  const m0 = machineCpu();
  const t0 = performance.now();
  const result = await runAutocannon(url, connections, durationS, (ms) => lat.add(ms));
  const wallS = (performance.now() - t0) / 1000;
  const m1 = machineCpu();
  const stealPct = (100 * (m1.steal - m0.steal)) / Math.max(1, m1.total - m0.total);
  const cpu = Object.fromEntries(
    Object.entries(pids).map(([k, pid]) => {
      const used = cpuSecondsOf(pid) - cpuBefore[k]!;
      return [k, { cores: used / wallS, usPerRequest: (used * 1e6) / Math.max(1, result.requests.total) }];
    }),
  );
  return {
    connections,
    durationS: result.duration,
    requests: result.requests.total,
    rps: result.requests.total / result.duration,
    ...lat.summary(),
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

/**
 * Small GETs measured only while something else runs: latencies of the
 * responses that arrive from now until `until` settles (at most `maxS`
 * seconds). requests/rps count that window only; errors, timeouts and
 * non-2xx are autocannon's totals (its run can outlast the window by up to
 * its 1 s sampling tick).
 */
export async function smallGetWhile(url: string, connections: number, maxS: number, until: Promise<unknown>): Promise<SmallGetResult> {
  const lat = new Latencies();
  let measuring = true;
  let windowMs = Number.NaN;
  const m0 = machineCpu();
  const t0 = performance.now();
  let cap: NodeJS.Timeout | undefined;
  const stop = Promise.race([
    until.then(
      () => undefined,
      () => undefined,
    ),
    new Promise<void>((r) => (cap = setTimeout(r, maxS * 1000))),
  ]).then(() => {
    clearTimeout(cap);
    measuring = false;
    windowMs = performance.now() - t0;
  });
  // Longer than maxS: the window, not autocannon's duration, ends the measurement.
  const record = (ms: number): void => {
    if (measuring) lat.add(ms);
  };
  const result = await runAutocannon(url, connections, Math.ceil(maxS) + 2, record, stop);
  await stop;
  const m1 = machineCpu();
  return {
    connections,
    durationS: windowMs / 1000,
    requests: lat.n,
    rps: lat.n / (windowMs / 1000),
    ...lat.summary(),
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
    cpu: {},
    stealPct: (100 * (m1.steal - m0.steal)) / Math.max(1, m1.total - m0.total),
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
  return startDownload(url, expected, timeoutMs, agent).result;
}

/** A download under way: how far it got, and its outcome once it ends. */
export interface RunningDownload {
  result: Promise<TransferResult>;
  /** Body bytes received so far. */
  received(): number;
  /** Stops it now; the result says how far it got. */
  abort(): void;
}

/** Starts a GET of `url`, read as fast as this thread can (counted, not kept). */
export function startDownload(
  url: string,
  expected: number,
  timeoutMs: number,
  agent: Agent = keepAlive,
  onData?: (bytesSoFar: number) => void,
): RunningDownload {
  let bytes = 0;
  let abort = (): void => {};
  const result = new Promise<TransferResult>((resolve) => {
    const t0 = performance.now();
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
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        onData?.(bytes);
      });
      res.on('end', () => finish(bytes === expected, bytes === expected ? undefined : `got ${bytes} of ${expected} bytes`));
      res.on('error', (e) => finish(false, e.message));
      res.on('aborted', () => finish(false, 'response aborted'));
    });
    const timer = setTimeout(() => {
      finish(false, `timed out after ${timeoutMs} ms`);
      req.destroy();
    }, timeoutMs);
    abort = () => {
      finish(false, `stopped after ${bytes} of ${expected} bytes`);
      req.destroy();
    };
    req.on('error', (e) => finish(false, e.message));
    req.end();
  });
  return { result, received: () => bytes, abort: () => abort() };
}

interface DownloadJob {
  role: 'download';
  url: string;
  expected: number;
  timeoutMs: number;
  /** One BigInt64: bytes received so far, written by the worker. */
  progress: SharedArrayBuffer;
}

/**
 * startDownload in a worker thread of this process: reading a fast download
 * takes its thread's event loop for a millisecond or more at a time, which
 * would show up as latency of whatever else this thread measures (autocannon).
 * The reader is another caller, as it would be in production.
 */
export function startDownloadInWorker(url: string, expected: number, timeoutMs: number): RunningDownload {
  const progress = new SharedArrayBuffer(8);
  const counter = new BigInt64Array(progress);
  const job: DownloadJob = { role: 'download', url, expected, timeoutMs, progress };
  const worker = new Worker(new URL(import.meta.url), { workerData: job });
  const received = (): number => Number(Atomics.load(counter, 0));
  const result = new Promise<TransferResult>((resolve) => {
    const failed = (error: string): void => resolve({ ok: false, bytes: received(), ms: Number.NaN, mbPerS: Number.NaN, error });
    worker.once('message', (r: TransferResult) => resolve(r));
    worker.once('error', (err) => failed(`download worker failed: ${err.message}`));
    worker.once('exit', () => failed('download worker exited without a result'));
  });
  return { result, received, abort: () => worker.postMessage('abort') };
}

/** The worker side of startDownloadInWorker. */
function runDownloadJob(job: DownloadJob): void {
  const counter = new BigInt64Array(job.progress);
  const dl = startDownload(job.url, job.expected, job.timeoutMs, new Agent({ keepAlive: false }), (n) =>
    Atomics.store(counter, 0, BigInt(n)),
  );
  parentPort!.on('message', (m) => {
    if (m === 'abort') dl.abort();
  });
  void dl.result.then((r) => {
    parentPort!.postMessage(r);
    // Nothing else holds the thread: it ends.
    parentPort!.close();
  });
}

if (!isMainThread && (workerData as Partial<DownloadJob> | null)?.role === 'download') runDownloadJob(workerData as DownloadJob);

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
