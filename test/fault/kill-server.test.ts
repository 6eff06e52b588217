import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Cleanup } from '../helpers/cleanup.js';
import { send } from '../helpers/http-client.js';
import { patternSha256 } from '../helpers/pattern-data.js';
import {
  createClient,
  logLines,
  logTime,
  startAgentProcess,
  startServerProcess,
  waitForLog,
} from '../helpers/processes.js';
import { startUpstream } from '../helpers/upstream.js';
import { waitUntil, within } from '../helpers/wait.js';
import { agentEnv, faultTool, report, serverEnv } from './fault-tool.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const HUGE = 1024 * 1024 * 1024;
const MiB = 1024 * 1024;
const RECONNECT_BASE_MS = Number(agentEnv.POSTERN_RECONNECT_BASE_MS);
const RECONNECT_MAX_MS = Number(agentEnv.POSTERN_RECONNECT_MAX_MS);

describe('kill -9 of the server mid-stream', () => {
  it('cuts callers off; the agent keeps reconnecting with backoff and comes back when a new server starts on the same ports and data dir', async () => {
    const tool = await startUpstream(faultTool);
    cleanup.add(() => tool.close());
    const dataDir = await mkdtemp(join(tmpdir(), 'postern-fault-'));
    cleanup.add(() => rm(dataDir, { recursive: true, force: true }));
    const adminToken = 'fault-admin-token';
    const first = await startServerProcess(cleanup, { dataDir, adminToken, env: serverEnv, name: 'server-1' });
    const creds = await createClient(first, 'a');
    const agent = await startAgentProcess(cleanup, first, creds, tool.url, { env: agentEnv, tunnels: 2 });
    const url = (path: string): string => `${first.ingressUrl}/t/${creds.clientId}${path}`;

    let got = 0;
    const download = send(url(`/big?n=${HUGE}&seed=3`), { keepBody: false, onData: (n) => (got = n) });
    // Awaited below; a rejection before then must not count as unhandled.
    download.catch(() => {});
    // A request whose response head has not come yet when the server dies.
    const waiting = send(url('/slow?ms=30000'), { method: 'POST', body: 'x' });
    waiting.catch(() => {});
    await waitUntil(() => got >= MiB, 'the download to be under way', 15_000);
    await waitUntil(() => tool.requests.some((r) => r.url.startsWith('/slow')), 'the tool to see the slow request');

    const killedAt = Date.now();
    first.child.proc.kill('SIGKILL');

    const cut = await within(download, 10_000, 'the cut-off download to end');
    expect(cut.status).toBe(200);
    expect(cut.complete).toBe(false);
    expect(cut.sha256).toBe(patternSha256(cut.bytes, 3));
    await expect(within(waiting, 10_000, 'the waiting request to fail')).rejects.toThrow(/socket hang up|ECONNRESET/);

    // The agent notices at once (TCP closed) and keeps dialling a dead port,
    // with backoff: exponential, capped at POSTERN_RECONNECT_MAX_MS.
    const isRetry = (o: Record<string, unknown>): boolean => o.msg === 'tunnel down, reconnecting';
    const firstRetry = await waitForLog(agent, isRetry, { since: killedAt, timeoutMs: 5_000 });
    report(`kill -9 server: the agent noticed ${logTime(firstRetry) - killedAt} ms after the kill`);
    await waitForLog(agent, (o) => isRetry(o) && (o.attempt as number) >= 4, { since: killedAt, timeoutMs: 15_000 });
    // An outage of a few seconds, several backoff ceilings long.
    await new Promise((r) => setTimeout(r, Math.max(0, killedAt + 3_000 - Date.now())));
    const retries = logLines(agent, isRetry, killedAt);
    // Exponential ceilings (base·2^(n-1) for the n-th attempt), capped: full jitter below them.
    for (const r of retries) {
      expect(r.retryInMs as number).toBeLessThanOrEqual(Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** ((r.attempt as number) - 1)));
    }
    // One line per tunnel for the loss itself (in whatever order the two
    // tunnels noticed it), then only refused dials.
    const [losses, dials] = [retries.filter((r) => /tunnel closed/.test(r.reason as string)), retries.filter((r) => !/tunnel closed/.test(r.reason as string))];
    expect(losses).toHaveLength(2);
    expect(dials.map((r) => r.reason).filter((reason) => !/ECONNREFUSED/.test(reason as string))).toEqual([]);
    // Each tunnel counts its own attempts up, one per failed dial.
    for (const tunnel of [0, 1]) {
      const attempts = retries.filter((r) => r.tunnel === tunnel).map((r) => r.attempt as number);
      expect(attempts.length).toBeGreaterThanOrEqual(2);
      expect(attempts).toEqual([...attempts].sort((x, y) => x - y));
    }
    expect(agent.exitInfo).toBeUndefined();

    const restartedAt = Date.now();
    const second = await startServerProcess(cleanup, {
      dataDir,
      adminToken,
      port: first.port,
      ingressPort: first.ingressPort,
      env: serverEnv,
      name: 'server-2',
    });
    const back = await waitForLog(agent, (o) => o.msg === 'tunnel connected', { since: restartedAt, count: 2, timeoutMs: 10_000 });
    report(
      `kill -9 server: ${retries.length} reconnect attempts logged while it was down; both tunnels back ` +
        `${logTime(back) - restartedAt} ms after the new server was started`,
    );

    // Same credentials (same data dir), same URL.
    const small = await send(url('/small'));
    expect(small.status).toBe(200);
    expect(small.body.toString()).toBe('ok');
    const whole = await send(url(`/big?n=${8 * MiB}&seed=4`), { keepBody: false });
    expect(whole.complete).toBe(true);
    expect(whole.sha256).toBe(patternSha256(8 * MiB, 4));
    expect(second.child.exitInfo).toBeUndefined();
  });
});
