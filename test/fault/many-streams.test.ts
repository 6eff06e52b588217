import { Agent, request as httpRequest, type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { Cleanup } from '../helpers/cleanup.js';
import { send, sendJson } from '../helpers/http-client.js';
import { patternChunks, patternSha256, sha256 } from '../helpers/pattern-data.js';
import { startTunnel } from '../helpers/tunnel-fixture.js';
import { echoHandler, type EchoBody, type ToolHandler } from '../helpers/upstream.js';
import { deferred, waitUntil } from '../helpers/wait.js';
import { prng } from '../../bench/prng.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const KiB = 1024;
const MiB = 1024 * KiB;
const TOTAL = 1000;
/** Every request must have ended (cleanly or cut off) by then. */
const DEADLINE_MS = 25_000;
/** The tool holds every answer until all requests are on the tunnel, or this long. */
const GATE_FALLBACK_MS = 10_000;
const UPLOAD_CHUNK = 16 * KiB;

/**
 * What happens to one request:
 * - download / upload: completes; every byte checked.
 * - caller-aborts-*: the caller destroys its request after `cutAt` bytes.
 * - tool-cuts-download: the tool destroys its socket after `cutAt` body bytes.
 * - tool-drops-upload: the tool reads `cutAt` bytes, then destroys its socket.
 * - tool-answers-early: the tool reads `cutAt` bytes, answers, then discards the rest.
 */
type Kind =
  | 'download'
  | 'upload'
  | 'caller-aborts-download'
  | 'caller-aborts-upload'
  | 'tool-cuts-download'
  | 'tool-drops-upload'
  | 'tool-answers-early';

const KIND_WEIGHTS: [Kind, number][] = [
  ['download', 0.34],
  ['upload', 0.28],
  ['caller-aborts-download', 0.08],
  ['caller-aborts-upload', 0.08],
  ['tool-cuts-download', 0.08],
  ['tool-drops-upload', 0.06],
  ['tool-answers-early', 0.08],
];

interface Plan {
  i: number;
  kind: Kind;
  method: string;
  /** Body size: the response's for downloads, the request's for uploads. */
  size: number;
  /** Pattern seed of that body (pattern-data.ts). */
  seed: number;
  /** No content-length: chunked response (downloads) or chunked upload. */
  chunked: boolean;
  /** Where an abort or early answer happens, in body bytes; 0 < cutAt < size for those kinds. */
  cutAt: number;
  /** tool-answers-early: size and seed of the answer. */
  answerSize: number;
  answerSeed: number;
}

const isUpload = (k: Kind): boolean => k === 'upload' || k === 'caller-aborts-upload' || k === 'tool-drops-upload' || k === 'tool-answers-early';


/** Mostly small bodies, some up to 1 MiB. */
function drawSize(rand: () => number): number {
  const r = rand();
  const between = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo));
  if (r < 0.7) return between(0, 16 * KiB);
  if (r < 0.94) return between(16 * KiB, 256 * KiB);
  return between(256 * KiB, MiB + 1);
}

function drawPlans(seed: number): Plan[] {
  const rand = prng(seed);
  const plans: Plan[] = [];
  for (let i = 0; i < TOTAL; i++) {
    let r = rand();
    let kind: Kind = 'download';
    for (const [k, w] of KIND_WEIGHTS) {
      if (r < w) {
        kind = k;
        break;
      }
      r -= w;
    }
    const cuts = kind !== 'download' && kind !== 'upload';
    // A cut needs a body to cut in the middle of; the caller can only stop
    // reading a download midway if it arrives in more than one read.
    const size =
      kind === 'caller-aborts-download'
        ? 64 * KiB + Math.floor(rand() * 448 * KiB)
        : cuts
          ? Math.max(4 * KiB, drawSize(rand))
          : drawSize(rand);
    plans.push({
      i,
      kind,
      method: isUpload(kind) ? (rand() < 0.5 ? 'POST' : 'PUT') : 'GET',
      size,
      seed: 1 + Math.floor(rand() * 0xfffffffe),
      chunked: rand() < 0.3,
      cutAt: cuts ? 1 + Math.floor(rand() * (size - 1)) : 0,
      answerSize: Math.floor(rand() * 64 * KiB),
      answerSeed: 1 + Math.floor(rand() * 0xfffffffe),
    });
  }
  return plans;
}

// ---- the tool's side --------------------------------------------------------

/** Resolves on 'drain' or 'close', whichever comes first, leaving no listener behind. */
function drainOrClose(w: NodeJS.EventEmitter): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      w.off('drain', done);
      w.off('close', done);
      resolve();
    };
    w.on('drain', done);
    w.on('close', done);
  });
}

/** Resolves once `chunk` was handed to the socket, or the writable closed. */
function writeFlushed(w: NodeJS.WritableStream & NodeJS.EventEmitter, chunk: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      w.off('close', done);
      resolve();
    };
    w.on('close', done);
    w.write(chunk, done);
  });
}

/**
 * Writes the first `limit` bytes of pattern(size, seed) with backpressure;
 * the last part is awaited until it reached the socket, so a cut made after
 * this comes after those bytes. False once the response is gone.
 */
async function writePattern(res: ServerResponse, size: number, seed: number, limit = size): Promise<boolean> {
  let sent = 0;
  for (const chunk of patternChunks(size, seed)) {
    if (sent >= limit || res.destroyed) break;
    const part = sent + chunk.length > limit ? chunk.subarray(0, limit - sent) : chunk;
    sent += part.length;
    if (sent >= limit) await writeFlushed(res, part);
    else if (!res.write(part)) await drainOrClose(res);
  }
  return !res.destroyed;
}

/** Reads the upload until `n` bytes (or its end, or its failure), then pauses it. */
function readUntil(body: Readable, n: number): Promise<void> {
  return new Promise((resolve) => {
    let seen = 0;
    const done = (): void => {
      body.pause();
      body.off('data', onData);
      resolve();
    };
    const onData = (c: Buffer): void => {
      seen += c.length;
      if (seen >= n) done();
    };
    body.on('data', onData);
    body.once('end', done).once('error', done).once('close', done);
  });
}

function toolHandler(plans: Plan[], gate: Promise<void>, running: { n: number }): ToolHandler {
  return async (x) => {
    const m = /^\/(?:dl|ul)\/(\d+)$/.exec(x.req.url ?? '');
    if (!m) return echoHandler(x);
    const plan = plans[Number(m[1])]!;
    const { req, res, body, record } = x;
    running.n++;
    try {
      await gate;
      switch (plan.kind) {
        case 'download':
        case 'caller-aborts-download': {
          res.writeHead(200, plan.chunked ? {} : { 'content-length': String(plan.size) });
          if (await writePattern(res, plan.size, plan.seed)) res.end();
          break;
        }
        case 'tool-cuts-download': {
          res.writeHead(200, plan.chunked ? {} : { 'content-length': String(plan.size) });
          res.flushHeaders();
          await writePattern(res, plan.size, plan.seed, plan.cutAt);
          req.socket.destroy();
          break;
        }
        case 'upload':
        case 'caller-aborts-upload': {
          body.resume();
          const got = await record.body;
          const text = JSON.stringify(got);
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) });
          res.end(text);
          break;
        }
        case 'tool-drops-upload': {
          await readUntil(body, plan.cutAt);
          req.socket.destroy();
          break;
        }
        case 'tool-answers-early': {
          await readUntil(body, plan.cutAt);
          res.writeHead(200, { 'content-length': String(plan.answerSize) });
          if (await writePattern(res, plan.answerSize, plan.answerSeed)) res.end();
          // Then discard the rest, as Node does with a body nobody read: a
          // keep-alive connection left with unread bytes would swallow the
          // next request sent on it (the tool's bug, not the tunnel's).
          body.resume();
          break;
        }
      }
      if (!res.destroyed && !res.writableFinished) await new Promise((r) => res.once('finish', r).once('close', r));
    } finally {
      running.n--;
    }
  };
}

// ---- the caller's side ----------------------------------------------------------

interface Outcome {
  /** 0: no response head came. */
  status: number;
  contentLength: string | undefined;
  body: Buffer;
  bytes: number;
  sha256: string;
  /** The body ended cleanly (every content-length byte, or the last chunk). */
  complete: boolean;
  error: string | undefined;
  hung: boolean;
}

/** Sends the planned body; for caller-aborts-upload, destroys the request once cutAt bytes left. */
async function pumpUpload(req: ClientRequest, plan: Plan): Promise<void> {
  const aborts = plan.kind === 'caller-aborts-upload';
  const limit = aborts ? plan.cutAt : plan.size;
  let sent = 0;
  for (const chunk of patternChunks(plan.size, plan.seed, UPLOAD_CHUNK)) {
    if (sent >= limit || req.destroyed) break;
    const part = sent + chunk.length > limit ? chunk.subarray(0, limit - sent) : chunk;
    sent += part.length;
    if (aborts && sent >= limit) await writeFlushed(req, part);
    else if (!req.write(part)) await drainOrClose(req);
  }
  if (req.destroyed) return;
  if (aborts) req.destroy();
  else req.end();
}

function exchange(url: string, plan: Plan, agent: Agent): Promise<Outcome> {
  return new Promise((resolve) => {
    const headers: Record<string, string> = {};
    if (isUpload(plan.kind) && !plan.chunked) headers['content-length'] = String(plan.size);
    const req = httpRequest(url, { method: plan.method, agent, headers });
    const hash = createHash('sha256');
    const chunks: Buffer[] = [];
    let res: IncomingMessage | undefined;
    let bytes = 0;
    let error: string | undefined;
    let settled = false;
    const settle = (hung = false): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({
        status: res?.statusCode ?? 0,
        contentLength: res?.headers['content-length'],
        body: Buffer.concat(chunks),
        bytes,
        sha256: hash.digest('hex'),
        complete: res !== undefined && res.complete && error === undefined,
        error,
        hung,
      });
    };
    const timer = setTimeout(() => {
      settle(true);
      req.destroy();
    }, DEADLINE_MS);
    req.on('error', (err) => {
      error ??= err.message;
      if (!res) settle();
    });
    req.on('close', () => {
      if (!res) settle();
    });
    req.on('response', (r: IncomingMessage) => {
      res = r;
      const abortAt = plan.kind === 'caller-aborts-download' ? plan.cutAt : Infinity;
      r.on('data', (c: Buffer) => {
        bytes += c.length;
        hash.update(c);
        // Only small answers are kept (JSON, error bodies): the rest is hashed.
        if (bytes <= 64 * KiB) chunks.push(c);
        if (bytes >= abortAt) req.destroy();
      });
      r.on('error', (err) => (error ??= err.message));
      r.on('close', () => settle());
    });
    if (isUpload(plan.kind)) void pumpUpload(req, plan);
    else req.end();
  });
}

/** What is wrong with an outcome, given its plan (undefined: nothing). */
function check(plan: Plan, o: Outcome): string | undefined {
  const what = checkBody(plan, o);
  // An error answer from Postern says why (JSON with error and message).
  return what && o.status > 200 ? `${what}: ${o.body.toString('utf8').slice(0, 300)}` : what;
}

function checkBody(plan: Plan, o: Outcome): string | undefined {
  if (o.hung) return `no end within ${DEADLINE_MS} ms`;
  const clean = o.status === 200 && o.complete;
  // A cut-off body must still be the tool's bytes: a prefix of the pattern.
  const prefixOk = (): boolean => o.sha256 === patternSha256(o.bytes, plan.seed);
  switch (plan.kind) {
    case 'download': {
      if (!clean) return `not delivered: status ${o.status}, complete ${o.complete}, ${o.bytes} bytes, ${o.error ?? 'no error'}`;
      if (o.bytes !== plan.size || o.sha256 !== patternSha256(plan.size, plan.seed)) return `wrong body: ${o.bytes} bytes, sha ${o.sha256}`;
      if (!plan.chunked && o.contentLength !== String(plan.size)) return `content-length ${o.contentLength}`;
      return undefined;
    }
    case 'caller-aborts-download': {
      // Small bodies may arrive whole before the caller gets to abort.
      if (o.status === 200 && !prefixOk()) return `received bytes are not the tool's: ${o.bytes} bytes`;
      if (clean && o.bytes !== plan.size) return `complete-looking body of ${o.bytes} of ${plan.size} bytes`;
      return undefined;
    }
    case 'tool-cuts-download': {
      if (clean) return `the tool cut the body at ${plan.cutAt} of ${plan.size} bytes, the caller saw a complete body of ${o.bytes}`;
      if (o.status === 200 && !prefixOk()) return `received bytes are not the tool's: ${o.bytes} bytes`;
      if (o.status === 200 && o.bytes > plan.cutAt) return `received ${o.bytes} bytes, the tool wrote ${plan.cutAt}`;
      return undefined;
    }
    case 'upload': {
      if (!clean) return `not delivered: status ${o.status}, complete ${o.complete}, ${o.error ?? 'no error'}`;
      let got: { bytes: number; sha256: string };
      try {
        got = JSON.parse(o.body.toString('utf8')) as typeof got;
      } catch {
        return `not the tool's JSON: ${o.body.toString('utf8').slice(0, 100)}`;
      }
      const want = { bytes: plan.size, sha256: patternSha256(plan.size, plan.seed) };
      if (got.bytes !== want.bytes || got.sha256 !== want.sha256) return `the tool got ${got.bytes} bytes, sha ${got.sha256}`;
      return undefined;
    }
    case 'caller-aborts-upload':
    case 'tool-drops-upload': {
      // The tool never answered 200 for these: a clean 200 would be invented.
      if (clean) return `complete 200 for an upload that was cut off at ${plan.cutAt} of ${plan.size} bytes`;
      return undefined;
    }
    case 'tool-answers-early': {
      if (!clean) return `early answer not delivered: status ${o.status}, complete ${o.complete}, ${o.bytes} bytes, ${o.error ?? 'no error'}`;
      if (o.bytes !== plan.answerSize || o.sha256 !== patternSha256(plan.answerSize, plan.answerSeed)) {
        return `wrong early answer: ${o.bytes} of ${plan.answerSize} bytes`;
      }
      return undefined;
    }
  }
}

/** How an outcome ended, for the summary line. */
function shape(o: Outcome): string {
  if (o.hung) return 'hung';
  if (o.status === 0) return 'no-response';
  if (o.status !== 200) return `http-${o.status}`;
  return o.complete ? 'complete' : 'cut-off';
}

function seedFromEnv(): number {
  const raw = process.env.POSTERN_TEST_SEED;
  if (raw !== undefined && raw !== '') {
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`POSTERN_TEST_SEED must be a non-negative integer, not ${JSON.stringify(raw)}`);
    return n >>> 0;
  }
  return Math.floor(Math.random() * 0xffffffff) >>> 0;
}

describe('1,000 concurrent streams on one tunnel', () => {
  it('delivers every completed body intact, cuts off every cut one, leaves no stream behind, and keeps the tunnel', async () => {
    const seed = seedFromEnv();
    const plans = drawPlans(seed);
    const volume = plans.reduce((sum, p) => sum + p.size, 0);
    const byKind = Object.fromEntries(KIND_WEIGHTS.map(([k]) => [k, plans.filter((p) => p.kind === k).length]));
    // Printed first, so a failure (or a hang) can be replayed with the same plan.
    console.log(
      `[many-streams] seed ${seed} (replay: POSTERN_TEST_SEED=${seed}); ${TOTAL} streams, ` +
        `${(volume / MiB).toFixed(1)} MiB of bodies; ${JSON.stringify(byKind)}`,
    );

    const gate = deferred();
    const running = { n: 0 };
    const t = await startTunnel(cleanup, {
      handler: toolHandler(plans, gate.promise, running),
      agentEnv: { POSTERN_CONNECTIONS: '1' },
    });
    const callerAgent = new Agent({ keepAlive: false, maxSockets: TOTAL + 24 });
    cleanup.add(() => callerAgent.destroy());
    const [conn] = t.server.server.registry.connections(t.clientId);
    expect(conn).toBeDefined();
    const connector = t.agent.agent.connectors[0]!;
    const agentSession = connector.session!;
    const connectionId = connector.connectionId;
    expect(connectionId).toBe(conn!.id);
    const counters = t.server.server.stats.for(t.clientId);

    // The tool answers nothing until every request is on the tunnel (or has
    // already ended at the caller), so the tunnel really carries ~1,000
    // streams at once.
    let settledAtCaller = 0;
    const peak = { server: 0, agent: 0, inFlight: 0 };
    let gateOpenedBy = 'all requests on the tunnel';
    const started = performance.now();
    const sampler = setInterval(() => {
      peak.server = Math.max(peak.server, conn!.session.activeStreams);
      peak.agent = Math.max(peak.agent, agentSession.activeStreams);
      peak.inFlight = Math.max(peak.inFlight, counters.inFlight);
      if (counters.inFlight + settledAtCaller >= TOTAL) gate.resolve();
      else if (performance.now() - started > GATE_FALLBACK_MS) {
        gateOpenedBy = `the ${GATE_FALLBACK_MS} ms fallback (${counters.inFlight} in flight, ${settledAtCaller} ended)`;
        gate.resolve();
      }
    }, 5);
    cleanup.add(() => clearInterval(sampler));
    cleanup.add(() => gate.resolve());

    const outcomes: Promise<Outcome>[] = [];
    for (const plan of plans) {
      const path = `/${isUpload(plan.kind) ? 'ul' : 'dl'}/${plan.i}`;
      outcomes.push(
        exchange(t.url(path), plan, callerAgent).then((o) => {
          settledAtCaller++;
          return o;
        }),
      );
      // A few hundred connects at a time: past the listen backlog (511) the
      // kernel drops SYNs and the caller waits a second to retry.
      if (plan.i % 100 === 99) await new Promise((r) => setImmediate(r));
    }
    const results = await Promise.all(outcomes);
    const transferMs = performance.now() - started;
    clearInterval(sampler);

    const problems: string[] = [];
    const shapes: Record<string, Record<string, number>> = {};
    results.forEach((o, i) => {
      const plan = plans[i]!;
      const what = check(plan, o);
      if (what) problems.push(`#${i} ${plan.kind} ${plan.method} size=${plan.size} cutAt=${plan.cutAt} chunked=${plan.chunked}: ${what}`);
      const s = (shapes[plan.kind] ??= {});
      s[shape(o)] = (s[shape(o)] ?? 0) + 1;
    });
    console.log(
      `[many-streams] seed ${seed}: all ended in ${Math.round(transferMs)} ms; gate opened by ${gateOpenedBy}; ` +
        `peak streams: server ${peak.server}, agent ${peak.agent}, ingress in flight ${peak.inFlight}\n` +
        `[many-streams] outcomes: ${JSON.stringify(shapes)}`,
    );
    expect(problems, `seed ${seed}`).toEqual([]);
    // The point of the test: they were on one tunnel at the same time.
    // Only uploads the caller cut early can end before the gate opens.
    expect(peak.server, `seed ${seed}: peak concurrent streams`).toBeGreaterThanOrEqual(TOTAL - byKind['caller-aborts-upload']! - 20);

    // Nothing left behind: not at the ingress, not on either end of the
    // tunnel, not at the agent's tool runner, not at the tool.
    const leftovers = (): Record<string, number> => ({
      ingressInFlight: counters.inFlight,
      serverStreams: conn!.session.activeStreams,
      agentStreams: agentSession.activeStreams,
      agentInFlight: t.agent.agent.runner.stats.inFlight,
      toolHandlers: running.n,
    });
    await waitUntil(() => Object.values(leftovers()).every((v) => v === 0), 'every stream to be closed', 8_000).catch(() => {});
    expect(leftovers(), `seed ${seed}`).toEqual({ ingressInFlight: 0, serverStreams: 0, agentStreams: 0, agentInFlight: 0, toolHandlers: 0 });

    // A request the caller cut off is cut off for the tool too: no upload
    // the caller abandoned reached the tool as a complete body.
    const abandoned = t.upstream.requests.flatMap((record) => {
      const m = /^\/ul\/(\d+)$/.exec(record.url);
      const plan = m ? plans[Number(m[1])]! : undefined;
      return plan?.kind === 'caller-aborts-upload' ? [{ plan, record }] : [];
    });
    const pending = new Promise<'pending'>((r) => setTimeout(() => r('pending'), 2_000).unref());
    const seenByTool = await Promise.all(
      abandoned.map(async ({ plan, record }) => {
        const got = await Promise.race([record.body, pending]).catch(() => 'cut off' as const);
        return got === 'cut off' ? undefined : `#${plan.i} (${plan.cutAt} of ${plan.size} bytes sent): ${JSON.stringify(got)}`;
      }),
    );
    expect(seenByTool.filter(Boolean), `seed ${seed}: uploads the caller abandoned that the tool did not see cut off`).toEqual([]);

    // Same tunnel, never reconnected, and it still serves.
    const status = await sendJson<{ clients: { clientId: string; streamsInFlight: number; connections: { connectionId: string; streams: number }[] }[] }>(
      `${t.server.ingressUrl}/v1/status`,
      { token: t.server.adminToken },
    );
    const client = status.json.clients.find((c) => c.clientId === t.clientId)!;
    expect(client.streamsInFlight).toBe(0);
    expect(client.connections).toEqual([expect.objectContaining({ connectionId, streams: 0 })]);
    const agentStatus = t.agent.agent.status();
    expect(agentStatus.inFlight).toBe(0);
    expect(agentStatus.connections).toEqual([expect.objectContaining({ state: 'connected', connectionId, streams: 0, reconnects: 0 })]);
    expect(t.server.server.registry.connections(t.clientId)).toEqual([conn]);
    expect(connector.session).toBe(agentSession);

    const after = await sendJson<EchoBody>(t.url('/after?ok=1'), { method: 'POST', body: 'still here' });
    expect(after.status).toBe(200);
    expect(after.complete).toBe(true);
    expect(after.json.url).toBe('/after?ok=1');
    expect(after.json.sha256).toBe(sha256('still here'));
    const small = await send(t.url('/after-2'));
    expect(small.status).toBe(200);
  });
});
