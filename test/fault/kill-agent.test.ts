import { afterEach, describe, expect, it } from 'vitest';
import { Cleanup } from '../helpers/cleanup.js';
import { send } from '../helpers/http-client.js';
import { patternSha256 } from '../helpers/pattern-data.js';
import {
  createClient,
  logTime,
  serverStatus,
  startAgentProcess,
  startServerProcess,
  waitForLog,
} from '../helpers/processes.js';
import { startUpstream } from '../helpers/upstream.js';
import { waitUntil, within } from '../helpers/wait.js';
import { agentEnv, faultTool, HEARTBEAT_MS, report, serverEnv, steadyLoad } from './fault-tool.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

/** Far more than can cross before the kill lands: the downloads are always cut mid-body. */
const HUGE = 1024 * 1024 * 1024;
const MiB = 1024 * 1024;

describe('kill -9 of the agent mid-download', () => {
  it("cuts the caller's responses off, the server drops the tunnels, a new agent brings the client back, and another client is served throughout", async () => {
    const tool = await startUpstream(faultTool);
    cleanup.add(() => tool.close());
    const server = await startServerProcess(cleanup, { env: serverEnv });
    const a = await createClient(server, 'a');
    const b = await createClient(server, 'b');
    const agentA = await startAgentProcess(cleanup, server, a, tool.url, { name: 'agent-a', env: agentEnv, tunnels: 2 });
    await startAgentProcess(cleanup, server, b, tool.url, { name: 'agent-b', env: agentEnv, tunnels: 2 });
    const urlA = (path: string): string => `${server.ingressUrl}/t/${a.clientId}${path}`;

    const loadB = steadyLoad(`${server.ingressUrl}/t/${b.clientId}/small`);
    const got = { length: 0, chunked: 0 };
    const withLength = send(urlA(`/big?n=${HUGE}&seed=7`), { keepBody: false, onData: (n) => (got.length = n) });
    const chunked = send(urlA(`/chunked?n=${HUGE}&seed=8`), { keepBody: false, onData: (n) => (got.chunked = n) });
    // Awaited below; a rejection before then must not count as unhandled.
    for (const p of [withLength, chunked]) p.catch(() => {});
    await waitUntil(() => got.length >= MiB && got.chunked >= MiB, 'both downloads to be under way', 15_000);

    const killedAt = Date.now();
    agentA.proc.kill('SIGKILL');

    // Cut off, never complete-looking: no full content-length, no chunked terminator.
    const [cutLength, cutChunked] = await within(Promise.all([withLength, chunked]), 15_000, 'the cut-off downloads to end');
    for (const [res, seed] of [
      [cutLength, 7],
      [cutChunked, 8],
    ] as const) {
      expect(res.status).toBe(200);
      expect(res.complete).toBe(false);
      expect(res.bytes).toBeLessThan(HUGE);
      // What did arrive is an uncorrupted prefix of the body.
      expect(res.sha256).toBe(patternSha256(res.bytes, seed));
    }
    expect(cutLength.headers['content-length']).toBe(String(HUGE));
    expect(cutChunked.headers['transfer-encoding']).toBe('chunked');

    // The server saw both tunnels go (TCP closed by the kernel: no heartbeat needed).
    const isGone = (o: Record<string, unknown>): boolean => o.msg === 'agent disconnected' && o.clientId === a.clientId;
    const lastGone = await waitForLog(server.child, isGone, { since: killedAt, count: 2, timeoutMs: 2 * HEARTBEAT_MS + 5_000 });
    report(`kill -9 agent: server dropped both tunnels ${logTime(lastGone) - killedAt} ms after the kill`);
    const statusA = (await serverStatus(server)).clients.find((c) => c.clientId === a.clientId);
    expect(statusA?.connected).toBe(false);

    // While no agent is there, a request waits POSTERN_AGENT_WAIT_MS and gets a clear 503.
    const offline = await send(urlA('/small'));
    expect(offline.status).toBe(503);
    expect(JSON.parse(offline.body.toString()).error).toBe('agent_offline');

    const replacement = await startAgentProcess(cleanup, server, a, tool.url, { name: 'agent-a2', env: agentEnv, tunnels: 2 });
    expect(replacement.pid).not.toBe(agentA.pid);
    const small = await send(urlA('/small'));
    expect(small.status).toBe(200);
    expect(small.body.toString()).toBe('ok');
    const whole = await send(urlA(`/big?n=${8 * MiB}&seed=9`), { keepBody: false });
    expect(whole.complete).toBe(true);
    expect(whole.sha256).toBe(patternSha256(8 * MiB, 9));

    const { results, errors } = await loadB.stop();
    expect(errors).toEqual([]);
    expect(results.length).toBeGreaterThan(10);
    expect(results.filter((r) => r.status !== 200 || r.body.toString() !== 'ok')).toEqual([]);
    report(`kill -9 agent: the other client's ${results.length} requests during the test all succeeded`);
  });
});
