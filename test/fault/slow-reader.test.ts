import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { rssOf } from '../../bench/processes.js';
import { Cleanup } from '../helpers/cleanup.js';
import { send } from '../helpers/http-client.js';
import { patternSha256 } from '../helpers/pattern-data.js';
import { logLines } from '../helpers/processes.js';
import { deferred, waitUntil, within } from '../helpers/wait.js';
import { agentEnv, percentile, report, startFaultStack } from './fault-tool.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const MiB = 1024 * 1024;
const SIZE = 256 * MiB;
const PAUSE_MS = 4_000;

/** A GET whose body the test reads, or stops reading, when it likes. */
function pausableGet(url: string): {
  bytes: () => number;
  pause(): void;
  resume(): void;
  done: Promise<{ status: number; complete: boolean; bytes: number; sha256: string }>;
} {
  const hash = createHash('sha256');
  let bytes = 0;
  let paused = false;
  const result = deferred<{ status: number; complete: boolean; bytes: number; sha256: string }>();
  let res: import('node:http').IncomingMessage | undefined;
  const req = request(url, { agent: false }, (r) => {
    res = r;
    if (paused) r.pause();
    r.on('data', (c: Buffer) => {
      bytes += c.length;
      hash.update(c);
    });
    let failed = false;
    r.on('error', () => (failed = true));
    r.on('close', () => result.resolve({ status: r.statusCode ?? 0, complete: r.complete && !failed, bytes, sha256: hash.digest('hex') }));
  });
  req.on('error', (err) => result.reject(err));
  req.end();
  return {
    bytes: () => bytes,
    pause() {
      paused = true;
      res?.pause();
    },
    resume() {
      paused = false;
      res?.resume();
    },
    done: result.promise,
  };
}

describe('a caller that stops reading a large download', () => {
  it('holds only its own stream: other requests on the same tunnel keep completing, and the reader later gets every byte', async () => {
    // One tunnel, so every request below shares it with the stalled stream.
    const { server, agent, url } = await startFaultStack(cleanup, { agentEnv: { POSTERN_CONNECTIONS: '1' }, tunnels: 1 });
    const startedAt = Date.now();
    const rssBefore = { server: rssOf(server.child.pid), agent: rssOf(agent.pid) };

    const reader = pausableGet(url(`/big?n=${SIZE}&seed=31`));
    reader.done.catch(() => {});
    await waitUntil(() => reader.bytes() >= 4 * MiB, 'the download to be under way', 15_000);
    reader.pause();
    const pausedAt = performance.now();
    const heldAt = reader.bytes();

    // While the reader sleeps: small requests back to back, and a few 1 MiB downloads.
    const latencies: number[] = [];
    const failures: string[] = [];
    const rssPeak = { server: 0, agent: 0 };
    let mediumOk = 0;
    while (performance.now() - pausedAt < PAUSE_MS) {
      const t = performance.now();
      const r = await send(url('/small'), { timeoutMs: 10_000 });
      latencies.push(performance.now() - t);
      if (r.status !== 200 || r.body.toString() !== 'ok') failures.push(`${r.status} ${r.body.toString().slice(0, 100)}`);
      if (latencies.length % 10 === 0) {
        const m = await send(url(`/big?n=${MiB}&seed=${latencies.length}`), { keepBody: false, timeoutMs: 10_000 });
        if (m.complete && m.sha256 === patternSha256(MiB, latencies.length)) mediumOk++;
        else failures.push(`1 MiB download: complete=${m.complete} bytes=${m.bytes}`);
      }
      rssPeak.server = Math.max(rssPeak.server, rssOf(server.child.pid));
      rssPeak.agent = Math.max(rssPeak.agent, rssOf(agent.pid));
    }
    expect(reader.bytes()).toBe(heldAt);
    reader.resume();

    expect(failures).toEqual([]);
    expect(latencies.length).toBeGreaterThan(20);
    expect(mediumOk).toBeGreaterThan(0);
    const [p50, p99, max] = [percentile(latencies, 50), percentile(latencies, 99), Math.max(...latencies)];
    report(
      `slow reader: ${latencies.length} small requests (and ${mediumOk} 1 MiB downloads) on the same tunnel while the reader ` +
        `was stopped for ${PAUSE_MS} ms: p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${max.toFixed(1)} ms`,
    );
    // Generous: a shared 2-core box; a starved tunnel would mean seconds or timeouts.
    expect(p99).toBeLessThan(1_000);

    // Flow control kept the unread body out of the processes' memory: the
    // growth (windows, socket buffers, and the heap of the requests above)
    // stays well under half of the ~250 MiB the reader had not taken.
    const growth = { server: rssPeak.server - rssBefore.server, agent: rssPeak.agent - rssBefore.agent };
    report(
      `slow reader: RSS growth while stopped: server ${(growth.server / MiB).toFixed(1)} MiB, agent ${(growth.agent / MiB).toFixed(1)} MiB ` +
        `(unread: ${((SIZE - heldAt) / MiB).toFixed(0)} MiB)`,
    );
    expect(growth.server).toBeLessThan(128 * MiB);
    expect(growth.agent).toBeLessThan(128 * MiB);

    const done = await within(reader.done, 30_000, 'the resumed download to finish');
    expect(done.status).toBe(200);
    expect(done.complete).toBe(true);
    expect(done.bytes).toBe(SIZE);
    expect(done.sha256).toBe(patternSha256(SIZE, 31));
    expect(logLines(server.child, (o) => o.msg === 'agent disconnected', startedAt)).toEqual([]);
    expect(logLines(agent, (o) => o.msg === 'tunnel down, reconnecting', startedAt)).toEqual([]);
  });
});
