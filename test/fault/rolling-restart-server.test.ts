import { afterEach, describe, expect, it } from 'vitest';
import { TcpRelay } from '../../bench/tcp-relay.js';
import { Cleanup } from '../helpers/cleanup.js';
import { send } from '../helpers/http-client.js';
import { createClient, logLines, startAgentProcess, startServerProcess, waitForLog } from '../helpers/processes.js';
import { tempDataDir } from '../helpers/start-server.js';
import { startUpstream } from '../helpers/upstream.js';
import { within } from '../helpers/wait.js';
import { agentEnv, faultTool, report } from './fault-tool.js';
import { rollingLoad, summarize } from './rolling-load.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * A rolling restart of the server, as a Kubernetes Deployment does it: a new
 * replica starts, the load balancer (here two TcpRelays, one per listener)
 * sends new connections to it, then the old one gets SIGTERM. The old one
 * must finish what it has, the agent must move its tunnels (make before
 * break), and the callers must not see a single failure.
 */
describe('rolling restart of the server under load', () => {
  it('fails no request: in-flight ones finish on the old server, new ones wait on the new one for the agent', async () => {
    const tool = await startUpstream(faultTool);
    cleanup.add(() => tool.close());
    const data = await tempDataDir();
    cleanup.add(() => data.remove());
    const env = { POSTERN_HEARTBEAT_MS: '1000', POSTERN_AGENT_WAIT_MS: '10000', POSTERN_DRAIN_TIMEOUT_MS: '15000' };
    const adminToken = 'rolling-restart-admin-token';
    const old = await startServerProcess(cleanup, { name: 'server-old', dataDir: data.dir, adminToken, env });
    const creds = await createClient(old, 'rolling');
    const agentRelay = await TcpRelay.start(old.port);
    cleanup.add(() => agentRelay.close());
    const callerRelay = await TcpRelay.start(old.ingressPort);
    cleanup.add(() => callerRelay.close());
    const agent = await startAgentProcess(cleanup, old, creds, tool.url, {
      proxyUrl: `http://127.0.0.1:${agentRelay.port}`,
      env: agentEnv,
      tunnels: 2,
    });
    const base = `http://127.0.0.1:${callerRelay.port}/t/${creds.clientId}`;

    const load = rollingLoad(base);
    await sleep(1_000);
    // A request that is certainly in flight on the old server at SIGTERM.
    const longOne = send(`${base}/slow?ms=2000`, { timeoutMs: 30_000 });
    await sleep(300);

    // The new replica, on the same store, and the balancer's switch. The
    // pause before SIGTERM is the endpoint removal a preStop hook waits for:
    // a connection the balancer opened to the old replica has sent its request.
    const fresh = await startServerProcess(cleanup, { name: 'server-new', dataDir: data.dir, adminToken, env });
    callerRelay.setTarget(fresh.ingressPort);
    agentRelay.setTarget(fresh.port);
    await sleep(200);
    const signalledAt = Date.now();
    old.child.proc.kill('SIGTERM');

    const exit = await within(old.child.exited, 30_000, 'the old server to drain and exit');
    const drainMs = Date.now() - signalledAt;
    expect(exit).toEqual({ code: 0, signal: null });
    const long = await longOne;
    expect([long.status, long.body.toString(), long.complete]).toEqual([200, 'slow done', true]);

    // The agent moved both tunnels to the new server without a gap.
    await waitForLog(agent, (o) => o.msg === 'tunnel connected', { since: signalledAt, count: 2, timeoutMs: 10_000 });
    await sleep(1_500);
    const outcomes = await load.stop();
    report(`server rolling restart: ${summarize(outcomes)}; old server drained and exited in ${drainMs} ms`);
    const failures = outcomes.filter((o) => !o.ok);
    expect(failures).toEqual([]);
    expect(outcomes.filter((o) => o.startedAt > signalledAt).length).toBeGreaterThan(10);
    // The agent never had to back off: its replacement tunnels came on GOAWAY.
    expect(logLines(agent, (o) => o.msg === 'tunnel down, reconnecting', signalledAt)).toEqual([]);
    expect(logLines(old.child, (o) => o.msg === 'drain deadline passed: cutting off the streams left')).toEqual([]);
  });
});
