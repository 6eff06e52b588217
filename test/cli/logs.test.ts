import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../protocol/tunnel-error.js';
import { logFormat } from '../../cli/logger.js';
import { cliPath } from '../helpers/build-cli.js';
import { Cleanup } from '../helpers/cleanup.js';
import { send } from '../helpers/http-client.js';
import { createClient, logLines, startAgentProcess, startServerProcess, waitForLog } from '../helpers/processes.js';
import { startUpstream } from '../helpers/upstream.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

describe('POSTERN_LOG_FORMAT', () => {
  it('is pretty on a terminal and JSON otherwise unless set', () => {
    expect(logFormat({}, true)).toBe('pretty');
    expect(logFormat({}, false)).toBe('json');
    expect(logFormat({ POSTERN_LOG_FORMAT: 'auto' }, true)).toBe('pretty');
    expect(logFormat({ POSTERN_LOG_FORMAT: 'JSON' }, true)).toBe('json');
    expect(logFormat({ POSTERN_LOG_FORMAT: 'pretty' }, false)).toBe('pretty');
    expect(() => logFormat({ POSTERN_LOG_FORMAT: 'yaml' }, false)).toThrow(ConfigError);
    expect(() => logFormat({ POSTERN_LOG_FORMAT: 'yaml' }, false)).toThrow(/POSTERN_LOG_FORMAT.*expected auto, json or pretty, got "yaml"/);
  });
});

/** Runs `postern server` until its "listening" line, then SIGTERM; returns all it wrote to stderr. */
function serverOutput(env: Record<string, string>, command: string[] = []): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'postern-logs-'));
    const args = command.length ? command : [process.execPath, cliPath(), 'server'];
    const child = spawn(args[0]!, args.slice(1), {
      env: { PATH: process.env.PATH ?? '', POSTERN_HOST: '127.0.0.1', POSTERN_PORT: '0', POSTERN_INGRESS_PORT: '0', POSTERN_DATA_DIR: dataDir, POSTERN_ADMIN_TOKEN: 'log-test-admin', ...env },
    });
    cleanup.add(() => child.kill('SIGKILL'));
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no "listening" line: ${out}`)), 20_000);
    const onData = (d: Buffer): void => {
      out += d;
      if (/"msg":"listening"|\): listening/.test(out)) child.kill('SIGTERM');
    };
    child.stderr.on('data', onData);
    // `script` puts the child on a pseudo-terminal and copies it to stdout.
    child.stdout.on('data', onData);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr: out });
    });
  });
}

describe('log output', () => {
  it('writes JSON lines when stderr is a pipe', async () => {
    const { code, stderr } = await serverOutput({});
    expect(code).toBe(0);
    const lines = stderr.trim().split('\n');
    for (const l of lines) expect(() => JSON.parse(l), l).not.toThrow();
    expect(lines.map((l) => (JSON.parse(l) as { msg: string }).msg)).toContain('listening');
  });

  it('writes pretty lines on a real terminal (a pseudo-terminal from script(1))', async () => {
    const cmd = `${JSON.stringify(process.execPath)} ${JSON.stringify(cliPath())} server`;
    // (The SIGTERM goes to script, which ends without waiting: no exit code to check.)
    const { stderr } = await serverOutput({ TERM: 'dumb' }, ['script', '-qfec', cmd, '/dev/null']);
    const line = stderr
      .split(/\r?\n/)
      .map((l) => l.replace(/\u001b\[[0-9;]*m/g, ''))
      .find((l) => l.includes('): listening'));
    expect(line, stderr).toBeDefined();
    // "HH:MM:ss.mmm INFO (postern-server): listening {…}", not a JSON object.
    expect(line).toMatch(/^\[?\d\d:\d\d:\d\d\.\d{3}\]? INFO \(postern-server\): listening \{.*"ingressPort":\d+/);
    expect(stderr).not.toContain('log-test-admin');
  });

  it('refuses an unknown format or level with one line and exit 2', async () => {
    for (const env of [{ POSTERN_LOG_FORMAT: 'xml' }, { POSTERN_LOG_LEVEL: 'loud' }]) {
      const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, [cliPath(), 'server'], { env: { PATH: process.env.PATH ?? '', POSTERN_PORT: '0', POSTERN_INGRESS_PORT: '0', ...env } });
        let stderr = '';
        child.stderr.on('data', (d: Buffer) => (stderr += d));
        child.on('close', (code) => resolve({ code, stderr }));
      });
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/^postern: configuration error: POSTERN_LOG_(FORMAT|LEVEL): expected/);
    }
  });

  it('names client, connection, request and error code on connection events and failed requests', async () => {
    const tool = await startUpstream();
    cleanup.add(() => tool.close());
    const server = await startServerProcess(cleanup, { env: { POSTERN_AGENT_WAIT_MS: '200' } });
    const creds = await createClient(server, 'logs');
    const agent = await startAgentProcess(cleanup, server, creds, tool.url, { env: { POSTERN_CONNECTIONS: '1' } });
    const connected = await waitForLog(server.child, (o) => o.msg === 'agent connected');
    const up = await waitForLog(agent, (o) => o.msg === 'tunnel connected');
    expect(connected).toMatchObject({ clientId: creds.clientId, connectionId: expect.any(String) });
    expect(up).toMatchObject({ clientId: creds.clientId, connectionId: connected.connectionId });

    // Refused by the agent's confinement: both sides log it with the request id the caller got.
    const denied = await send(`${server.ingressUrl}/t/${creds.clientId}/a/%2e%2e/%2e%2e/x`);
    expect(denied.status).toBe(403);
    const requestId = denied.headers['x-postern-request-id'];
    const atServer = await waitForLog(server.child, (o) => o.msg === 'ingress request failed' && o.requestId === requestId);
    expect(atServer).toMatchObject({ clientId: creds.clientId, connectionId: connected.connectionId, code: 'POSTERN_ERR_FORBIDDEN_BY_AGENT', error: 'forbidden_by_agent', status: 403 });
    const atAgent = await waitForLog(agent, (o) => o.msg === 'request denied by agent policy' && o.requestId === requestId);
    expect(atAgent).toMatchObject({ clientId: creds.clientId, connectionId: connected.connectionId, code: 'POSTERN_ERR_FORBIDDEN_BY_AGENT', error: 'forbidden_by_agent' });

    // The agent goes away: the server logs the disconnection; a request then fails agent_offline.
    const since = Date.now();
    agent.proc.kill('SIGKILL');
    const gone = await waitForLog(server.child, (o) => o.msg === 'agent disconnected', { since });
    expect(gone).toMatchObject({ clientId: creds.clientId, connectionId: connected.connectionId, code: expect.stringMatching(/^POSTERN_ERR_/) });
    const offline = await send(`${server.ingressUrl}/t/${creds.clientId}/x`);
    expect(offline.status).toBe(503);
    const line = await waitForLog(server.child, (o) => o.msg === 'ingress request failed' && o.requestId === offline.headers['x-postern-request-id']);
    expect(line).toMatchObject({ clientId: creds.clientId, code: 'POSTERN_ERR_AGENT_OFFLINE', error: 'agent_offline', status: 503 });
    // Successful requests log nothing at info: one line per failure, not per request.
    expect(logLines(server.child, (o) => o.msg === 'ingress request failed')).toHaveLength(2);
  });
});
