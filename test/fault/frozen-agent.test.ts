import { afterEach, describe, expect, it } from 'vitest';
import { Cleanup } from '../helpers/cleanup.js';
import { send } from '../helpers/http-client.js';
import { patternSha256 } from '../helpers/pattern-data.js';
import { logLines, logTime, waitForLog } from '../helpers/processes.js';
import { waitUntil, within } from '../helpers/wait.js';
import { HEARTBEAT_MS, report, serverEnv, startFaultStack } from './fault-tool.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const HUGE = 1024 * 1024 * 1024;
const MiB = 1024 * 1024;
/** How long a request waits for an agent here: long enough to measure, short enough to keep the test quick. */
const AGENT_WAIT_MS = 1_500;

describe('SIGSTOP of the agent', () => {
  it('is detected by the server within two heartbeat intervals; requests fail cleanly; after SIGCONT the agent reconnects', async () => {
    const { tool, server, creds, agent, url } = await startFaultStack(cleanup, { serverEnv: { POSTERN_AGENT_WAIT_MS: String(AGENT_WAIT_MS) } });

    // In flight at the freeze: a download that has started, and a request whose head has not come.
    let got = 0;
    const download = send(url(`/big?n=${HUGE}&seed=5`), { keepBody: false, onData: (n) => (got = n) });
    const waiting = send(url('/slow?ms=30000'), { method: 'POST', body: 'x' });
    // Awaited below; a rejection before then must not count as unhandled.
    for (const p of [download, waiting]) p.catch(() => {});
    await waitUntil(() => got >= MiB, 'the download to be under way', 15_000);
    await waitUntil(() => tool.requests.some((r) => r.url.startsWith('/slow')), 'the tool to see the slow request');

    const stoppedAt = Date.now();
    agent.proc.kill('SIGSTOP');
    cleanup.add(() => agent.proc.kill('SIGCONT'));
    // Sent to a tunnel that looks alive but whose agent is frozen.
    const duringFreeze = send(url('/small'), { timeoutMs: 20_000 });
    duringFreeze.catch(() => {});

    const isGone = (o: Record<string, unknown>): boolean => o.msg === 'agent disconnected' && o.clientId === creds.clientId;
    const firstGone = await waitForLog(server.child, isGone, { since: stoppedAt, timeoutMs: 10_000 });
    const lastGone = await waitForLog(server.child, isGone, { since: stoppedAt, count: 2, timeoutMs: 10_000 });
    const detectMs = [logTime(firstGone) - stoppedAt, logTime(lastGone) - stoppedAt];
    report(
      `SIGSTOP agent: server detected the frozen tunnels after ${detectMs.join(' and ')} ms ` +
        `(heartbeat ${HEARTBEAT_MS} ms; at the 10 s default: ${detectMs.map((ms) => Math.round((ms * 10_000) / HEARTBEAT_MS)).join(' and ')} ms)`,
    );
    for (const ms of detectMs) expect(ms).toBeLessThan(2 * HEARTBEAT_MS);
    for (const line of [firstGone, lastGone]) expect(line.reason).toMatch(/no frame from the peer/);

    // In-flight requests get an answer, not a hang: the started body is cut off,
    // the one without a head gets 502 tunnel_lost (a POST is never replayed).
    const cut = await within(download, 5_000, 'the cut-off download to end');
    expect(cut.complete).toBe(false);
    expect(cut.sha256).toBe(patternSha256(cut.bytes, 5));
    const lost = await within(waiting, 5_000, 'the waiting POST to be answered');
    expect(lost.status).toBe(502);
    expect(JSON.parse(lost.body.toString()).error).toBe('tunnel_lost');

    // A request made now waits POSTERN_AGENT_WAIT_MS for an agent, then 503.
    const askedAt = performance.now();
    const offline = await send(url('/small'), { timeoutMs: 20_000 });
    const waitedMs = performance.now() - askedAt;
    expect(offline.status).toBe(503);
    expect(JSON.parse(offline.body.toString()).error).toBe('agent_offline');
    expect(waitedMs).toBeGreaterThanOrEqual(AGENT_WAIT_MS - 50);
    report(`SIGSTOP agent: a request made while the agent was frozen waited ${Math.round(waitedMs)} ms, then 503 agent_offline`);
    // The GET that went to the frozen tunnel was replayed (idempotent, no byte back), waited, and failed the same way.
    const early = await within(duringFreeze, 10_000, 'the request sent during the freeze to be answered');
    expect(early.status).toBe(503);
    expect(JSON.parse(early.body.toString()).error).toBe('agent_offline');
    expect(agent.exitInfo).toBeUndefined();

    const contAt = Date.now();
    agent.proc.kill('SIGCONT');
    const isDown = (o: Record<string, unknown>): boolean => o.msg === 'tunnel down, reconnecting';
    await waitForLog(agent, isDown, { since: contAt, count: 2, timeoutMs: 5_000 });
    const back = await waitForLog(agent, (o) => o.msg === 'tunnel connected', { since: contAt, count: 2, timeoutMs: 10_000 });
    report(
      `SIGSTOP agent: after SIGCONT the agent saw its tunnels dead (${logLines(agent, isDown, contAt)
        .map((o) => JSON.stringify(o.reason))
        .join(', ')}) and both were back in ${logTime(back) - contAt} ms`,
    );

    const small = await send(url('/small'));
    expect(small.status).toBe(200);
    expect(small.body.toString()).toBe('ok');
    const whole = await send(url(`/big?n=${8 * MiB}&seed=6`), { keepBody: false });
    expect(whole.complete).toBe(true);
    expect(whole.sha256).toBe(patternSha256(8 * MiB, 6));
  });
});
