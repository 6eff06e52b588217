import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { ServerStatus } from '../../server/server-status.js';
import { SOFTWARE } from '../../protocol/version.js';
import { cliPath } from '../helpers/build-cli.js';
import { Cleanup } from '../helpers/cleanup.js';
import { send } from '../helpers/http-client.js';
import { startAgent } from '../helpers/start-agent.js';
import { startTunnel } from '../helpers/tunnel-fixture.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `postern status …`. With `stopAfterLines`, sends SIGINT once stdout
 * has that many lines (for --watch) and resolves when the CLI exits.
 */
function status(args: string[], env: Record<string, string>, stopAfterLines?: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath(), 'status', ...args], { env: { PATH: process.env.PATH ?? '', ...env } });
    cleanup.add(() => child.kill('SIGKILL'));
    let stdout = '';
    let stderr = '';
    let signalled = false;
    const timer = setTimeout(() => reject(new Error(`status did not finish: ${stdout}${stderr}`)), 20_000);
    child.stdout.on('data', (d: Buffer) => {
      stdout += d;
      if (stopAfterLines !== undefined && !signalled && stdout.split('\n').length > stopAfterLines) {
        signalled = true;
        child.kill('SIGINT');
      }
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The rows of the table whose header starts with these column names, as cells split on runs of 2+ spaces. */
function rows(text: string, ...columns: string[]): string[][] {
  const blocks = text.split('\n\n');
  const block = blocks.find((b) => columns.every((c, i) => b.split('\n')[0]!.split(/ {2,}/)[i] === c));
  if (!block) throw new Error(`no table starting with ${columns.join(', ')} in:\n${text}`);
  return block
    .split('\n')
    .slice(1)
    .filter((l) => l !== '')
    .map((l) => l.split(/ {2,}/));
}

/** A client with `agents` agents (one tunnel each), 3 served requests and 1 refused by the agent. */
async function tunnelWithTraffic(agents = 2) {
  const t = await startTunnel(cleanup, { agentEnv: { POSTERN_STATUS_PORT: '0' } });
  for (let i = 1; i < agents; i++) await t.startAgent();
  for (let i = 0; i < 3; i++) expect((await send(t.url(`/x/${i}`))).status).toBe(200);
  expect((await send(t.url('/a/%2e%2e/%2e%2e/etc'))).status).toBe(403);
  const env = { POSTERN_SERVER: t.server.ingressUrl, POSTERN_ADMIN_TOKEN: t.server.adminToken };
  return { t, env };
}

describe('postern status (server view)', () => {
  it('shows each client with its health and last minute, and each tunnel with agent, address, RTT and bytes', async () => {
    const { t, env } = await tunnelWithTraffic();
    const r = await status([t.clientId], env);
    expect(r.code).toBe(0);
    // One request refused by the agent's policy: an error, but the caller's, so the client stays healthy.
    expect(r.stdout.split('\n')[0]).toMatch(/1 client\(s\), 1 connected, 0 degraded, 0 offline; 2 tunnel\(s\)$/);
    const [client] = rows(r.stdout, 'CLIENT', 'NAME');
    //              CLIENT      NAME           HEALTH      TUNNELS INFLIGHT REQ/1M ERR/1M REQUESTS ERRORS
    expect(client!.slice(0, 9)).toEqual([t.clientId, 'integration', 'connected', '2', '0', '4', '1', '4', '1']);
    expect(client!.at(-1)).toBe('forbidden_by_agent');
    const tunnels = rows(r.stdout, 'CLIENT', 'CONNECTION');
    expect(tunnels).toHaveLength(2);
    for (const row of tunnels) {
      expect(row[0]).toBe(t.clientId);
      expect(row[2]).toBe('connected');
      expect(row[3]).toBe(SOFTWARE);
      expect(row[4]).toBe('127.0.0.1');
      expect(row[6]).toMatch(/^\d+(\.\d)?ms$/);
    }
    const ids = t.server.server.registry.connections(t.clientId).map((c) => c.id).sort();
    expect(tunnels.map((row) => row[1]).sort()).toEqual(ids);

    const json = await status(['--json'], env);
    const s = JSON.parse(json.stdout) as ServerStatus;
    expect(s.clients[0]).toMatchObject({ health: 'connected', requestsLastMinute: 4, errorsLastMinute: 1, failuresLastMinute: 0, connected: true });
  });

  it('shows a client DEGRADED while its tool fails, and still exits 0: it has a live agent', async () => {
    const { t, env } = await tunnelWithTraffic(1);
    const broken = t.server.server.store.create('broken tool');
    const agent = await startAgent({ clientId: broken.clientId, clientToken: broken.clientToken, proxyUrl: t.server.publicUrl, toolUrl: `http://127.0.0.1:${await closedPort()}` });
    cleanup.add(() => agent.stop());
    const res = await send(`${t.server.ingressUrl}/t/${broken.clientId}/x`);
    expect(res.status).toBe(502);
    const r = await status([broken.clientId], env);
    expect(r.code).toBe(0);
    expect(rows(r.stdout, 'CLIENT', 'NAME')[0]!.slice(1, 3)).toEqual(['broken tool', 'DEGRADED']);
    expect(r.stdout).toMatch(/upstream_unreachable$/m);
  });

  it('exits 3 when a named client has no live agent, also when only one of several is offline', async () => {
    const { t, env } = await tunnelWithTraffic();
    const idle = t.server.server.store.create('no agent yet');
    expect((await status([t.clientId], env)).code).toBe(0);
    const both = await status([t.clientId, idle.clientId], env);
    expect(both.code).toBe(3);
    expect(rows(both.stdout, 'CLIENT', 'NAME').find((row) => row[0] === idle.clientId)?.[2]).toBe('OFFLINE');
    const unknown = await status(['nope'], env);
    expect(unknown.code).toBe(3);
    expect(unknown.stdout).toContain('no client nope on this server');
  });

  it('never lets a client name write control characters to the terminal', async () => {
    const { t, env } = await tunnelWithTraffic();
    t.server.server.store.create('evil\u001b[2J\u0007name');
    const r = await status([], env);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f]/);
    expect(r.stdout).toContain('evil?[2J?name');
  });

  it('--watch --json prints one document per look until interrupted, then exits 0', async () => {
    const { env } = await tunnelWithTraffic();
    const r = await status(['--watch', '--json', '--interval', '0.2'], env, 3);
    expect(r.code).toBe(0);
    const docs = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as ServerStatus);
    expect(docs.length).toBeGreaterThanOrEqual(3);
    for (const d of docs) expect(d.clients[0]!.connections).toHaveLength(2);
  });

  it('--watch on a terminal clears the screen and redraws at the top each time', async () => {
    const { env } = await tunnelWithTraffic(1);
    const cmd = `${JSON.stringify(process.execPath)} ${JSON.stringify(cliPath())} status --watch --interval 0.2`;
    const out = await new Promise<string>((resolve, reject) => {
      // script(1) gives the CLI a pseudo-terminal and copies it to stdout.
      const child = spawn('script', ['-qfec', cmd, '/dev/null'], { env: { PATH: process.env.PATH ?? '', TERM: 'dumb', ...env } });
      cleanup.add(() => child.kill('SIGKILL'));
      let text = '';
      const timer = setTimeout(() => reject(new Error(`no redraws: ${text}`)), 20_000);
      child.stdout.on('data', (d: Buffer) => {
        text += d;
        if (text.split('\x1b[H\x1b[2J').length > 3) {
          clearTimeout(timer);
          child.kill('SIGKILL');
          resolve(text);
        }
      });
    });
    const frames = out.split('\x1b[H\x1b[2J').slice(1);
    expect(frames.length).toBeGreaterThanOrEqual(3);
    for (const f of frames.slice(0, 2)) expect(f).toMatch(/^every 0\.2s, .*\(Ctrl-C to stop\)\r?\n\r?\npostern 0\.1\.0, up /);
  });

  it('--watch keeps looking while the server is unreachable and says so', async () => {
    const closed = await closedPort();
    const r = await status(['--watch', '--interval', '0.2'], { POSTERN_SERVER: `http://127.0.0.1:${closed}`, POSTERN_ADMIN_TOKEN: 'x' }, 6);
    expect(r.code).toBe(0);
    expect(r.stdout.split('cannot reach the server').length - 1).toBeGreaterThanOrEqual(2);
  });

  it('refuses a nonsense --interval with exit 2', async () => {
    const r = await status(['--watch', '--interval', '0'], { POSTERN_ADMIN_TOKEN: 'x' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--interval must be a number of seconds');
  });
});

describe('postern status --agent', () => {
  it("shows the agent's tunnels, counters and tool reachability; exit 0 while a tunnel is up", async () => {
    const { t } = await tunnelWithTraffic(1);
    const r = await status(['--agent', `http://127.0.0.1:${t.agent.agent.statusPort}`], {});
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`for client ${t.clientId}: ready, 1/1 tunnel(s) up`);
    expect(r.stdout).toMatch(/tool http:\/\/127\.0\.0\.1:\d+\/: reachable \(HTTP \d{3}\)/);
    // Requests it ran; the refused one is a policy denial.
    expect(r.stdout).toContain('in flight 0, requests 3, policy denials 1, upstream errors 0');
    const [tunnel] = rows(r.stdout, 'TUNNEL', 'STATE');
    expect(tunnel!.slice(0, 3)).toEqual(['0', 'connected', t.agent.agent.connectors[0]!.connectionId]);
  });

  it('exits 3 when the agent has no tunnel up, 4 when nothing listens, 1 when the URL is not an agent', async () => {
    const { t } = await tunnelWithTraffic(1);
    await t.server.close(50);
    const down = await status(['--agent', `http://127.0.0.1:${t.agent.agent.statusPort}`], {});
    expect(down.code).toBe(3);
    expect(down.stdout).toContain('NOT READY, 0/1 tunnel(s) up');
    const closed = await closedPort();
    const none = await status(['--agent', `http://127.0.0.1:${closed}`], {});
    expect(none.code).toBe(4);
    expect(none.stderr).toContain('is POSTERN_STATUS_PORT set on it?');
    const other = await startPlainHttp();
    const wrong = await status(['--agent', `http://127.0.0.1:${other}`], {});
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('did not answer like a Postern agent (HTTP 404)');
  });
});

/** A port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const s: Server = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function startPlainHttp(): Promise<number> {
  const { createServer: http } = await import('node:http');
  const s = http((_req, res) => {
    res.statusCode = 404;
    res.end('not here');
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  cleanup.add(() => new Promise((r) => s.close(r)));
  return (s.address() as AddressInfo).port;
}
