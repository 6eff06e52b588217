import { createHash } from 'node:crypto';
import { send } from '../helpers/http-client.js';
import { patternChunks, patternSha256 } from '../helpers/pattern-data.js';
import type { EchoBody } from '../helpers/upstream.js';

/**
 * The load a rolling restart must not drop: `workers` callers, each sending
 * one request after another over a fresh connection (as a caller behind a
 * load balancer does after a `connection: close`), a mix of small GETs,
 * downloads, slow requests and non-idempotent POST uploads (never
 * replayed, so a POST that fails shows up as a failure). Every body is
 * checked.
 */
export interface RollingLoad {
  /** Stops the workers and resolves with every outcome. */
  stop(): Promise<Outcome[]>;
  /** Outcomes so far. */
  readonly outcomes: readonly Outcome[];
}

export interface Outcome {
  kind: 'small' | 'download' | 'slow' | 'upload';
  startedAt: number;
  ms: number;
  /** True when the status, the body and its completeness were all right. */
  ok: boolean;
  /** What was wrong, when not ok. */
  detail?: string;
}

const KiB = 1024;

export function rollingLoad(baseUrl: string, workers = 6): RollingLoad {
  const outcomes: Outcome[] = [];
  let running = true;
  let n = 0;
  const worker = async (w: number): Promise<void> => {
    while (running) {
      const i = n++;
      const kind = (['small', 'download', 'slow', 'upload'] as const)[(i + w) % 4]!;
      const startedAt = Date.now();
      let outcome: Omit<Outcome, 'kind' | 'startedAt' | 'ms'>;
      try {
        outcome = await one(baseUrl, kind, i);
      } catch (err) {
        outcome = { ok: false, detail: `no answer: ${(err as Error).message}` };
      }
      outcomes.push({ kind, startedAt, ms: Date.now() - startedAt, ...outcome });
    }
  };
  const loops = Array.from({ length: workers }, (_, w) => worker(w));
  return {
    outcomes,
    stop: async () => {
      running = false;
      await Promise.all(loops);
      return outcomes;
    },
  };
}

async function one(baseUrl: string, kind: Outcome['kind'], i: number): Promise<Omit<Outcome, 'kind' | 'startedAt' | 'ms'>> {
  const seed = i + 1;
  switch (kind) {
    case 'small': {
      const res = await send(`${baseUrl}/small`, { timeoutMs: 20_000 });
      return check(res.status === 200 && res.complete && res.body.toString() === 'ok', `${res.status} ${res.body.toString().slice(0, 200)}`);
    }
    case 'download': {
      const size = 256 * KiB + (i % 7) * 10_000;
      const res = await send(`${baseUrl}/big?n=${size}&seed=${seed}`, { keepBody: false, timeoutMs: 20_000 });
      return check(res.status === 200 && res.complete && res.sha256 === patternSha256(size, seed), `${res.status} ${res.bytes}/${size} bytes, complete ${res.complete}`);
    }
    case 'slow': {
      const res = await send(`${baseUrl}/slow?ms=300`, { timeoutMs: 20_000 });
      return check(res.status === 200 && res.complete && res.body.toString() === 'slow done', `${res.status} ${res.body.toString().slice(0, 200)}`);
    }
    case 'upload': {
      const size = 64 * KiB + (i % 5) * 1_000;
      const body = Buffer.concat([...patternChunks(size, seed)]);
      const res = await send(`${baseUrl}/echo`, { method: 'POST', body, timeoutMs: 20_000 });
      if (res.status !== 200) return { ok: false, detail: `${res.status} ${res.body.toString().slice(0, 200)}` };
      const echo = JSON.parse(res.body.toString()) as EchoBody;
      const sent = createHash('sha256').update(body).digest('hex');
      return check(echo.method === 'POST' && echo.bytes === size && echo.sha256 === sent, `echo ${echo.bytes}/${size} bytes`);
    }
  }
}

function check(ok: boolean, detail: string): { ok: boolean; detail?: string } {
  return ok ? { ok } : { ok, detail };
}

/** A one-line account of a load's outcomes for the test log. */
export function summarize(outcomes: readonly Outcome[]): string {
  const failed = outcomes.filter((o) => !o.ok);
  const ms = outcomes.map((o) => o.ms).sort((a, b) => a - b);
  const max = ms[ms.length - 1] ?? 0;
  return `${outcomes.length} requests, ${failed.length} failed, slowest ${max} ms`;
}
