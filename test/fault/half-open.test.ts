import { afterEach, describe, expect, it } from 'vitest';
import { Cleanup } from '../helpers/cleanup.js';
import { send } from '../helpers/http-client.js';
import { patternSha256 } from '../helpers/pattern-data.js';
import { logTime, waitForLog } from '../helpers/processes.js';
import { waitUntil } from '../helpers/wait.js';
import { HEARTBEAT_MS, report, startFaultStack } from './fault-tool.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const MiB = 1024 * 1024;

describe('a black-holed tunnel path (NAT state dropped, no FIN, no RST)', () => {
  it('is detected by both sides within two heartbeat intervals, and the agent reconnects on a fresh connection', async () => {
    const stack = await startFaultStack(cleanup, { viaRelay: true });
    const { server, creds, agent, url } = stack;
    const relay = stack.relay!;
    expect(relay.connections).toBe(2);
    expect((await send(url('/small'))).status).toBe(200);

    const holedAt = Date.now();
    relay.blackhole();

    const isGone = (o: Record<string, unknown>): boolean => o.msg === 'agent disconnected' && o.clientId === creds.clientId;
    const isDown = (o: Record<string, unknown>): boolean => o.msg === 'tunnel down, reconnecting';
    const [serverFirst, serverLast, agentFirst, agentLast] = await Promise.all([
      waitForLog(server.child, isGone, { since: holedAt, timeoutMs: 10_000 }),
      waitForLog(server.child, isGone, { since: holedAt, count: 2, timeoutMs: 10_000 }),
      waitForLog(agent, isDown, { since: holedAt, timeoutMs: 10_000 }),
      waitForLog(agent, isDown, { since: holedAt, count: 2, timeoutMs: 10_000 }),
    ]);
    const serverMs = [serverFirst, serverLast].map((o) => logTime(o) - holedAt);
    const agentMs = [agentFirst, agentLast].map((o) => logTime(o) - holedAt);
    const at10s = (ms: number[]): string => ms.map((v) => Math.round((v * 10_000) / HEARTBEAT_MS)).join(' and ');
    report(
      `black hole: server detected it after ${serverMs.join(' and ')} ms, agent after ${agentMs.join(' and ')} ms ` +
        `(heartbeat ${HEARTBEAT_MS} ms; at the 10 s default: server ${at10s(serverMs)} ms, agent ${at10s(agentMs)} ms)`,
    );
    for (const ms of [...serverMs, ...agentMs]) expect(ms).toBeLessThan(2 * HEARTBEAT_MS);
    // Found by heartbeats: the relay let no FIN or RST through.
    for (const o of [serverFirst, serverLast, agentFirst, agentLast]) expect(o.reason).toMatch(/no frame from the peer/);

    // The agent dials again through the same relay: new connections there work (a fresh NAT mapping).
    const back = await waitForLog(agent, (o) => o.msg === 'tunnel connected', { since: holedAt, count: 2, timeoutMs: 10_000 });
    report(`black hole: both tunnels were back ${logTime(back) - logTime(agentLast)} ms after the agent gave up on the old ones`);
    // Each side dropped its end of the dead path, so only the two new connections are left.
    await waitUntil(() => relay.connections === 2, 'the black-holed connections to be closed by both sides');

    const small = await send(url('/small'));
    expect(small.status).toBe(200);
    expect(small.body.toString()).toBe('ok');
    const whole = await send(url(`/big?n=${8 * MiB}&seed=11`), { keepBody: false });
    expect(whole.complete).toBe(true);
    expect(whole.sha256).toBe(patternSha256(8 * MiB, 11));
  });
});
