import { afterEach, describe, expect, it } from 'vitest';
import { Cleanup } from '../helpers/cleanup.js';
import { send } from '../helpers/http-client.js';
import { createClient, logLines, startAgentProcess, startServerProcess, waitForLog } from '../helpers/processes.js';
import { startUpstream } from '../helpers/upstream.js';
import { within } from '../helpers/wait.js';
import { agentEnv, faultTool, report } from './fault-tool.js';
import { rollingLoad, summarize } from './rolling-load.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const serverEnv = { POSTERN_HEARTBEAT_MS: '1000', POSTERN_AGENT_WAIT_MS: '10000' };

describe('rolling restart of the agent under load', () => {
  it('fails no request when a second agent is up first and the old one gets SIGTERM (then the same again the other way)', async () => {
    const tool = await startUpstream(faultTool);
    cleanup.add(() => tool.close());
    const server = await startServerProcess(cleanup, { env: serverEnv });
    const creds = await createClient(server, 'rolling-agent');
    const start = (name: string) => startAgentProcess(cleanup, server, creds, tool.url, { name, env: agentEnv, tunnels: 2 });
    const first = await start('agent-1');
    const base = `${server.ingressUrl}/t/${creds.clientId}`;
    const load = rollingLoad(base);
    await sleep(800);

    let previous = first;
    for (const name of ['agent-2', 'agent-3']) {
      const next = await start(name);
      // Long requests, some certainly on the agent about to leave.
      const longOnes = Array.from({ length: 4 }, () => send(`${base}/slow?ms=1500`, { timeoutMs: 30_000 }));
      await sleep(200);
      const signalledAt = Date.now();
      previous.proc.kill('SIGTERM');
      const exit = await within(previous.exited, 20_000, `${previous.name} to drain and exit`);
      expect(exit).toEqual({ code: 0, signal: null });
      for (const res of await Promise.all(longOnes)) {
        expect([res.status, res.body.toString(), res.complete]).toEqual([200, 'slow done', true]);
      }
      const drained = logLines(previous, (o) => o.msg === 'agent stopped');
      expect(drained).toHaveLength(1);
      expect(logLines(previous, (o) => o.msg === 'drain deadline passed: cutting off the streams left')).toEqual([]);
      report(`${previous.name} drained and exited ${Date.now() - signalledAt} ms after SIGTERM`);
      previous = next;
      await sleep(500);
    }
    const outcomes = await load.stop();
    report(`agent rolling restart: ${summarize(outcomes)}`);
    expect(outcomes.filter((o) => !o.ok)).toEqual([]);
    expect(outcomes.length).toBeGreaterThan(50);
  });

  it('fails no request when the only agent restarts: in-flight ones finish, new ones wait for the new agent', async () => {
    const tool = await startUpstream(faultTool);
    cleanup.add(() => tool.close());
    const server = await startServerProcess(cleanup, { env: serverEnv });
    const creds = await createClient(server, 'restart-agent');
    const only = await startAgentProcess(cleanup, server, creds, tool.url, { name: 'agent-old', env: agentEnv, tunnels: 2 });
    const base = `${server.ingressUrl}/t/${creds.clientId}`;
    const load = rollingLoad(base);
    await sleep(800);
    const longOne = send(`${base}/slow?ms=1500`, { timeoutMs: 30_000 });
    await sleep(200);

    const signalledAt = Date.now();
    only.proc.kill('SIGTERM');
    await within(only.exited, 20_000, 'the agent to drain and exit');
    const long = await longOne;
    expect([long.status, long.body.toString(), long.complete]).toEqual([200, 'slow done', true]);
    // Like `docker restart`: a gap with no agent at all, covered by POSTERN_AGENT_WAIT_MS.
    await sleep(500);
    const replacement = await startAgentProcess(cleanup, server, creds, tool.url, { name: 'agent-new', env: agentEnv, tunnels: 2 });
    await waitForLog(replacement, (o) => o.msg === 'tunnel connected', { count: 2 });
    await sleep(800);
    const outcomes = await load.stop();
    report(`single agent restart: ${summarize(outcomes)}`);
    expect(outcomes.filter((o) => !o.ok)).toEqual([]);
    // Requests did arrive during the gap and were held, not refused.
    expect(outcomes.filter((o) => o.startedAt > signalledAt && o.ms >= 400).length).toBeGreaterThan(0);
  });
});
