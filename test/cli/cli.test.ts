import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VERSION } from '../../protocol/version.js';
import { cliPath } from '../helpers/build-cli.js';

let cli = '';
const children: ChildProcess[] = [];

beforeAll(() => {
  cli = cliPath();
});

afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to completion with a clean environment plus `env`. */
function run(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], { env: { PATH: process.env.PATH ?? '', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Starts `postern server` and resolves with its ports from the "listening" log line. */
function startServer(env: Record<string, string>): Promise<{ child: ChildProcess; port: number; ingressPort: number; logs: () => string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, 'server'], { env: { PATH: process.env.PATH ?? '', ...env } });
    children.push(child);
    let logs = '';
    const timer = setTimeout(() => reject(new Error(`server did not start: ${logs}`)), 20_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}: ${logs}`));
    });
    child.stderr.on('data', (d: Buffer) => {
      logs += d;
      for (const line of logs.split('\n')) {
        if (!line.startsWith('{')) continue;
        const j = JSON.parse(line) as { msg?: string; port?: number; ingressPort?: number };
        if (j.msg === 'listening') {
          clearTimeout(timer);
          resolve({ child, port: j.port!, ingressPort: j.ingressPort!, logs: () => logs });
        }
      }
    });
  });
}

describe('postern CLI', () => {
  it('prints usage with --help and exits 0; exits 2 for an unknown command', async () => {
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('postern client create --name N');
    const bad = await run(['frobnicate']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('unknown command "frobnicate"');
  });

  it('refuses a Node.js older than 22.13 with a sentence', async () => {
    // The entry point checks process.versions before loading anything else;
    // simulate an old runtime by overriding what it reads.
    const r = await new Promise<Run>((resolve) => {
      const child = spawn(process.execPath, ['--input-type=module', '-e', `Object.defineProperty(process.versions, 'node', { value: '20.1.0' }); await import(${JSON.stringify(cli)});`]);
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d));
      child.stderr.on('data', (d: Buffer) => (stderr += d));
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Node.js 20.1.0 is too old; Postern needs Node.js 22.13 or newer');
  });

  it('keeps protocol/version.ts equal to package.json', async () => {
    const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
    expect(VERSION).toBe(pkg.version);
    expect((await run(['--version'])).stdout.trim()).toBe(pkg.version);
  });

  it('explains a bad agent setting in one line, without a stack trace', async () => {
    const r = await run(['agent'], { CLIENT_ID: 'abc', CLIENT_TOKEN: 'secret-token-value', PROXY_URL: 'ftp://x', TOOL_URL: 'http://t' });
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('postern: configuration error: PROXY_URL: scheme ftp: is not supported; use http(s) or ws(s)');
    expect(r.stderr).not.toContain('secret-token-value');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('explains a bad server setting and exits 2', async () => {
    const r = await run(['server', '--port', 'eighty']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('postern: configuration error: --port: expected a whole number between 0 and 65535, got "eighty"');
  });

  it('runs a server, creates a client as JSON, lists it and reports its missing agent with exit code 3', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'postern-cli-'));
    const srv = await startServer({ POSTERN_HOST: '127.0.0.1', POSTERN_PORT: '0', POSTERN_INGRESS_PORT: '0', POSTERN_DATA_DIR: dataDir });
    // The generated admin token is printed once and saved in the data dir.
    const adminToken = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
    expect(srv.logs()).toContain(adminToken);
    expect(srv.logs().split('\n').filter((l) => l.startsWith('{')).join('\n')).not.toContain(adminToken);
    const env = { POSTERN_SERVER: `http://127.0.0.1:${srv.ingressPort}`, POSTERN_ADMIN_TOKEN: adminToken };

    const created = await run(['client', 'create', '--name', 'acme', '--json'], env);
    expect(created.code).toBe(0);
    const c = JSON.parse(created.stdout) as { clientId: string; clientToken: string; name: string };
    expect(Object.keys(c).slice(0, 2)).toEqual(['clientId', 'clientToken']);
    expect(c.name).toBe('acme');

    const human = await run(['client', 'create', '--name', 'beta'], env);
    expect(human.stdout).toMatch(/docker run .*\n.*-e CLIENT_ID=/s);

    const list = await run(['client', 'list'], env);
    expect(list.stdout).toContain(c.clientId);
    expect(list.stdout).not.toContain(c.clientToken);

    // Beside the server (docker exec), the CLI reads the token the server saved…
    const beside = await run(['client', 'list'], { POSTERN_SERVER: env.POSTERN_SERVER, POSTERN_DATA_DIR: dataDir });
    expect(beside.code).toBe(0);
    expect(beside.stdout).toContain(c.clientId);
    // …but never sends it to a server that is not on loopback.
    const remote = await run(['client', 'list'], { POSTERN_SERVER: 'http://192.0.2.1:8081', POSTERN_DATA_DIR: dataDir });
    expect(remote.code).toBe(2);
    expect(remote.stderr).toContain('an admin token is needed');

    const status = await run(['status', c.clientId], env);
    expect(status.code).toBe(3);
    expect(status.stdout).toContain('offline');

    const json = await run(['status', '--json'], env);
    expect(json.code).toBe(0);
    expect((JSON.parse(json.stdout) as { clients: unknown[] }).clients).toHaveLength(2);

    const unauthorized = await run(['status'], { ...env, POSTERN_ADMIN_TOKEN: 'wrong' });
    expect(unauthorized.code).toBe(5);

    const revoked = await run(['client', 'revoke', c.clientId], env);
    expect(revoked.code).toBe(0);
    expect((await run(['status', c.clientId], env)).code).toBe(3);

    srv.child.kill('SIGTERM');
    await new Promise((r) => srv.child.once('exit', r));
    const unreachable = await run(['status'], env);
    expect(unreachable.code).toBe(4);
    expect(unreachable.stderr).toContain('cannot reach the server');
  });

  it('demo (npm start) prints a curl line that works through the tunnel', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'postern-demo-'));
    const child = spawn(process.execPath, [cli, 'demo'], {
      env: { PATH: process.env.PATH ?? '', POSTERN_PORT: '0', POSTERN_INGRESS_PORT: '0', POSTERN_DATA_DIR: dataDir },
    });
    children.push(child);
    let out = '';
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no curl line: ${out}`)), 20_000);
      child.stdout.on('data', (d: Buffer) => {
        out += d;
        const m = /curl -i (\S+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      });
    });
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-postern-request-id')).toMatch(/^[\w-]{16}$/);
    expect(await res.json()).toMatchObject({ via: 'postern' });
    child.kill('SIGTERM');
    const code = await new Promise((r) => child.once('exit', r));
    expect(code).toBe(0);
  });

  it('runs `postern server` and `postern agent` as processes: a request crosses, status shows the agent, SIGTERM stops both cleanly', async () => {
    const tool = createServer((req, res) => res.end(`tool saw ${req.method} ${req.url}`));
    await new Promise<void>((r) => tool.listen(0, '127.0.0.1', r));
    try {
      const dataDir = mkdtempSync(join(tmpdir(), 'postern-cli-agent-'));
      const srv = await startServer({ POSTERN_HOST: '127.0.0.1', POSTERN_PORT: '0', POSTERN_INGRESS_PORT: '0', POSTERN_DATA_DIR: dataDir, POSTERN_ADMIN_TOKEN: 'cli-admin' });
      const env = { POSTERN_SERVER: `http://127.0.0.1:${srv.ingressPort}`, POSTERN_ADMIN_TOKEN: 'cli-admin' };
      const c = JSON.parse((await run(['client', 'create', '--name', 'proc', '--json'], env)).stdout) as { clientId: string; clientToken: string };
      const agent = spawn(process.execPath, [cli, 'agent'], {
        env: {
          PATH: process.env.PATH ?? '',
          CLIENT_ID: c.clientId,
          CLIENT_TOKEN: c.clientToken,
          PROXY_URL: `http://127.0.0.1:${srv.port}`,
          TOOL_URL: `http://127.0.0.1:${(tool.address() as AddressInfo).port}`,
        },
      });
      children.push(agent);
      let agentLogs = '';
      agent.stderr.on('data', (d: Buffer) => (agentLogs += d));
      const deadline = Date.now() + 15_000;
      // Two tunnels: POSTERN_CONNECTIONS' default.
      const tunnelsUp = (): number => agentLogs.split('tunnel connected').length - 1;
      while (tunnelsUp() < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(tunnelsUp()).toBe(2);
      expect(agentLogs).not.toContain(c.clientToken);

      const res = await fetch(`http://127.0.0.1:${srv.ingressPort}/t/${c.clientId}/a%2Fb?x=1`);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe('tool saw GET /a%2Fb?x=1');
      const status = await run(['status', c.clientId], env);
      expect(status.code).toBe(0);
      // The client's row says 2 tunnels; the tunnels' table has a row for each.
      expect(status.stdout).toMatch(new RegExp(`^${c.clientId} +proc +connected +2 `, 'm'));
      expect(status.stdout.split("\n").filter((l) => new RegExp(`^${c.clientId} +\\S{12} +connected `).test(l))).toHaveLength(2);

      agent.kill('SIGTERM');
      expect(await new Promise((r) => agent.once('exit', r))).toBe(0);
      srv.child.kill('SIGTERM');
      expect(await new Promise((r) => srv.child.once('exit', r))).toBe(0);
    } finally {
      tool.close();
    }
  });
});
