import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import WebSocket from 'ws';
import { REDACT_PATHS } from '../../cli/logger.js';
import { afterEach, describe, expect, it } from 'vitest';
import { cliPath } from '../helpers/build-cli.js';
import { Cleanup } from '../helpers/cleanup.js';
import { startConnectProxy } from '../helpers/connect-proxy.js';
import { rawHeaderValues, send } from '../helpers/http-client.js';
import {
  logLines,
  startAgentProcess,
  startServerProcess,
  waitForLog,
  type Child,
  type ClientCreds,
} from '../helpers/processes.js';
import { startUpstream } from '../helpers/upstream.js';

/**
 * A full run with real processes and every secret Postern handles set and
 * exercised, then a search of everything the run left behind for each
 * secret, in clear and encoded. Any hit fails with where it was found.
 */

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

/** Output lines test/helpers/processes.ts keeps per child; more would mean lines the search never saw. */
const KEPT_LINES = 5_000;

function unique(prefix: string): string {
  return `${prefix}-${randomBytes(12).toString('base64url')}`;
}

/** One place the run left text or bytes in. */
interface Place {
  where: string;
  bytes: Buffer;
  /** Secrets this place shows by design (e.g. `client create` prints the token it made). */
  allowed?: string[];
}

/** Every form a secret could take in output: clear, URL-encoded, hex, and base64 / base64url at any alignment inside a longer encoded value. */
function needles(secret: string): { form: string; text: string }[] {
  const out = [
    { form: 'clear', text: secret },
    { form: 'url-encoded', text: encodeURIComponent(secret) },
    { form: 'hex', text: Buffer.from(secret).toString('hex') },
  ];
  const raw = Buffer.from(secret);
  for (const k of [0, 1, 2]) {
    // k filler bytes shift the secret within base64's 3-byte groups; keep
    // only the characters that depend on the secret's bytes alone.
    const shifted = Buffer.concat([Buffer.alloc(k), raw]);
    const first = k === 0 ? 0 : 4;
    const whole = Math.floor(shifted.length / 3) * 4;
    for (const alphabet of ['base64', 'base64url'] as const) {
      const text = shifted.toString(alphabet).slice(first, whole);
      if (text.length >= 12) out.push({ form: `${alphabet} (offset ${k})`, text });
    }
  }
  return out;
}

function findLeaks(places: Place[], secrets: Record<string, string>): string[] {
  const leaks: string[] = [];
  for (const [name, secret] of Object.entries(secrets)) {
    for (const { form, text } of needles(secret)) {
      for (const place of places) {
        if (place.allowed?.includes(secret)) continue;
        const at = place.bytes.indexOf(text);
        if (at === -1) continue;
        const line = place.bytes.subarray(0, at).toString('latin1').split('\n').length;
        leaks.push(`${name} (${form}) in ${place.where}, line ${line}`);
      }
    }
  }
  return leaks;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((f) => join(dir, f))
    .filter((f) => statSync(f).isFile());
}

interface CliRun {
  args: string[];
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the compiled `postern` CLI as a process with only PATH and `env`. */
function runCli(args: string[], env: Record<string, string>): Promise<CliRun> {
  const child = spawn(process.execPath, [cliPath(), ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  cleanup.add(() => child.exitCode === null && child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ args, code, stdout, stderr })));
}

/** Dials /v1/tunnel with the given credentials and reports the upgrade's HTTP status. */
function upgradeStatus(url: string, clientId: string, token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}`, 'x-postern-client-id': clientId }, handshakeTimeout: 5_000 });
    ws.on('unexpected-response', (_req, res) => {
      res.resume();
      ws.terminate();
      resolve(res.statusCode ?? 0);
    });
    ws.on('open', () => {
      ws.terminate();
      resolve(101);
    });
    ws.on('error', reject);
  });
}

async function getText(url: string, token?: string): Promise<string> {
  const res = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {}, signal: AbortSignal.timeout(10_000) });
  expect(res.status).toBe(200);
  return res.text();
}

describe('secrets never leak', () => {
  it('a full run with every secret set and exercised leaves none of them in any output, status or store file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'postern-secrets-'));
    cleanup.add(() => rmSync(dir, { recursive: true, force: true }));
    const secrets: Record<string, string> = {
      POSTERN_ADMIN_TOKEN: unique('adm'),
      'wrong admin token': unique('wrongadm'),
      'wrong client token': unique('wrongtok'),
      'TOOL_SECRET (jenkins api token)': unique('jnk'),
      'TOOL_SECRET (azuredevops PAT)': unique('ado'),
      'egress proxy password': unique('pxy'),
      "caller's own Authorization token": unique('callerauth'),
      "caller's token in a query string": unique('callerquery'),
      'wrong ingress API key': unique('wrongkey'),
    };
    const jenkinsSecret = `robot:${secrets['TOOL_SECRET (jenkins api token)']!}`;
    const adoSecret = secrets['TOOL_SECRET (azuredevops PAT)']!;
    const proxyPassword = secrets['egress proxy password']!;
    const adminToken = secrets.POSTERN_ADMIN_TOKEN!;

    // --- the tool, the egress proxy, the server ---------------------------
    const tool = await startUpstream(({ req, res, body }) => {
      body.resume();
      const path = (req.url ?? '').split('?')[0]!;
      if (path.endsWith('/fail')) return void req.socket.destroy(); // before any head
      if (path.endsWith('/cut')) {
        res.writeHead(200, { 'content-length': 1000 });
        res.write('partial');
        return void setTimeout(() => res.destroy(), 50);
      }
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
    cleanup.add(() => tool.close());
    const proxy = await startConnectProxy(cleanup, { user: 'proxyuser', password: proxyPassword });
    const server = await startServerProcess(cleanup, { adminToken, env: { POSTERN_LOG_LEVEL: 'debug', POSTERN_AGENT_WAIT_MS: '300' } });
    const cliEnv = { POSTERN_SERVER: server.ingressUrl, POSTERN_ADMIN_TOKEN: adminToken };

    // --- clients and an ingress API key, through the CLI -------------------
    const cliRuns: { run: CliRun; allowed: string[] }[] = [];
    const [createA, createB] = await Promise.all([
      runCli(['client', 'create', '--name', 'jenkins-site', '--json'], cliEnv),
      runCli(['client', 'create', '--name', 'ado-site', '--json'], cliEnv),
    ]);
    expect(createA.code, createA.stderr).toBe(0);
    expect(createB.code, createB.stderr).toBe(0);
    const a = JSON.parse(createA.stdout) as ClientCreds;
    const b = JSON.parse(createB.stdout) as ClientCreds;
    secrets['client token A'] = a.clientToken;
    secrets['client token B'] = b.clientToken;
    cliRuns.push({ run: createA, allowed: [a.clientToken] }, { run: createB, allowed: [b.clientToken] });

    const keyRun = await runCli(['client', 'api-key', 'create', a.clientId, '--name', 'saas', '--json'], cliEnv);
    expect(keyRun.code, keyRun.stderr).toBe(0);
    const apiKey = (JSON.parse(keyRun.stdout) as { apiKey: string }).apiKey;
    secrets['ingress API key'] = apiKey;
    cliRuns.push({ run: keyRun, allowed: [apiKey] });

    // --- two agents: jenkins via the egress proxy with allow rules and an audit file; azuredevops auditing to stdout
    const auditFile = join(dir, 'audit.jsonl');
    const rules = join(dir, 'allow.json');
    writeFileSync(rules, JSON.stringify({ rules: [{ name: 'read', methods: ['GET', 'HEAD'], path: '/**' }] }));
    const common = {
      POSTERN_LOG_LEVEL: 'debug',
      POSTERN_STATUS_PORT: '0',
      POSTERN_RECONNECT_BASE_MS: '50',
      POSTERN_RECONNECT_MAX_MS: '300',
    };
    const [agentA, agentB] = await Promise.all([
      startAgentProcess(cleanup, server, a, `${tool.url}/jenkins`, {
        name: 'agent-jenkins',
        tunnels: 2,
        env: {
          ...common,
          TOOL_TYPE: 'jenkins',
          TOOL_SECRET: jenkinsSecret,
          HTTP_PROXY: `http://proxyuser:${proxyPassword}@127.0.0.1:${proxy.port}`,
          POSTERN_ALLOW: rules,
          POSTERN_AUDIT_LOG: auditFile,
        },
      }),
      startAgentProcess(cleanup, server, b, `${tool.url}/ado`, {
        name: 'agent-ado',
        tunnels: 2,
        env: { ...common, TOOL_TYPE: 'azuredevops', TOOL_SECRET: adoSecret },
      }),
    ]);
    expect(proxy.authorized).toBe(2);
    const statusPortOf = async (agent: Child): Promise<number> =>
      (await waitForLog(agent, (o) => o.msg === 'agent status listening')).statusPort as number;
    const [portA, portB] = await Promise.all([statusPortOf(agentA), statusPortOf(agentB)]);

    // --- requests: allowed, refused by key, denied, failed, cut off ---------
    const ingress = (client: string, path: string): string => `${server.ingressUrl}/t/${client}${path}`;
    const callerHeaders = ['Authorization', `Bearer ${secrets["caller's own Authorization token"]!}`, 'x-postern-api-key', apiKey];
    const query = `?private_token=${secrets["caller's token in a query string"]!}`;
    const okA = await send(ingress(a.clientId, `/ok${query}`), { headers: callerHeaders });
    expect(okA.status).toBe(200);
    const okB = await send(ingress(b.clientId, `/ok${query}`), { headers: ['Authorization', `Bearer ${secrets["caller's own Authorization token"]!}`] });
    expect(okB.status).toBe(200);
    const [toolSawA, toolSawB] = [tool.requests[0]!, tool.requests[1]!];
    expect(rawHeaderValues(toolSawA.rawHeaders, 'authorization')).toEqual([`Basic ${Buffer.from(jenkinsSecret).toString('base64')}`]);
    expect(rawHeaderValues(toolSawB.rawHeaders, 'authorization')).toEqual([`Basic ${Buffer.from(`:${adoSecret}`).toString('base64')}`]);

    expect((await send(ingress(a.clientId, '/ok'))).status).toBe(401); // no API key
    expect((await send(ingress(a.clientId, '/ok'), { headers: ['x-postern-api-key', secrets['wrong ingress API key']!] })).status).toBe(401);
    expect((await send(ingress(a.clientId, '/ok'), { method: 'DELETE', headers: callerHeaders })).status).toBe(403); // allow rules
    expect((await send(ingress(b.clientId, '/%2e%2e/admin'))).status).toBe(403); // confinement
    expect((await send(ingress(a.clientId, `/fail${query}`), { headers: callerHeaders })).status).toBe(502);
    expect((await send(ingress(b.clientId, '/fail'), { method: 'POST', body: 'x'.repeat(10_000) })).status).toBe(502);
    expect((await send(ingress(b.clientId, '/cut'))).complete).toBe(false);
    expect(await upgradeStatus(`ws://127.0.0.1:${server.port}/v1/tunnel`, a.clientId, secrets['wrong client token']!)).toBe(401);

    // --- status: admin API, agents, CLI --------------------------------------
    const [serverStatus, agentStatusA, agentStatusB] = await Promise.all([
      getText(`${server.ingressUrl}/v1/status`, adminToken),
      getText(`http://127.0.0.1:${portA}/status`),
      getText(`http://127.0.0.1:${portB}/status`),
    ]);
    const statusRuns = await Promise.all([
      runCli(['status'], cliEnv),
      runCli(['status', '--json'], cliEnv),
      runCli(['client', 'list'], cliEnv),
      runCli(['status', '--agent', `http://127.0.0.1:${portA}`], {}),
      runCli(['status', '--agent', `http://127.0.0.1:${portB}`, '--json'], {}),
      runCli(['status'], { ...cliEnv, POSTERN_ADMIN_TOKEN: secrets['wrong admin token']! }),
    ]);
    expect(statusRuns.map((r) => r.code)).toEqual([0, 0, 0, 0, 0, 5]);
    for (const run of statusRuns) cliRuns.push({ run, allowed: [] });

    // --- rotate A, revoke B: live tunnels closed, old tokens refused (401) ---
    const since = Date.now();
    const rotate = await runCli(['client', 'rotate', a.clientId, '--json'], cliEnv);
    expect(rotate.code, rotate.stderr).toBe(0);
    const rotated = (JSON.parse(rotate.stdout) as { clientToken: string }).clientToken;
    secrets['rotated client token A'] = rotated;
    cliRuns.push({ run: rotate, allowed: [rotated] });
    const revoke = await runCli(['client', 'revoke', b.clientId], cliEnv);
    expect(revoke.code, revoke.stderr).toBe(0);
    cliRuns.push({ run: revoke, allowed: [] });
    const refused = (o: Record<string, unknown>): boolean => o.msg === 'tunnel down, reconnecting' && /401/.test(String(o.reason));
    await Promise.all([waitForLog(agentA, refused, { since, count: 2 }), waitForLog(agentB, refused, { since, count: 2 })]);

    // The store as the running server has it (recent writes still in the WAL).
    const liveStore = filesUnder(server.dataDir).map((f) => ({ where: `store file ${f} (server running)`, bytes: readFileSync(f) }));

    // --- stop everything cleanly (the audit log is flushed on the way out) ---
    await Promise.all([agentA.stop(), agentB.stop()]);
    await server.child.stop();
    expect([agentA.exitInfo?.code, agentB.exitInfo?.code, server.child.exitInfo?.code]).toEqual([0, 0, 0]);

    // The run really exercised what it claims: debug lines, audit lines, refusals.
    for (const child of [server.child, agentA, agentB]) {
      expect(child.lastLines().split('\n').length, `${child.name} kept all its output`).toBeLessThan(KEPT_LINES);
    }
    // (The agent has no debug lines of its own; the server logs repeated refusals at debug.)
    expect(logLines(server.child, (o) => o.level === 20).length, 'server lines at debug').toBeGreaterThan(0);
    const audit = readFileSync(auditFile);
    expect(audit.toString().trim().split('\n').length).toBeGreaterThanOrEqual(3);
    expect(agentB.lastLines()).toContain('"decision":"denied"'); // its audit lines on stdout

    // --- search everything ----------------------------------------------------
    const places: Place[] = [
      ...[server.child, agentA, agentB].map((c) => ({ where: `${c.name} stdout+stderr`, bytes: Buffer.from(c.lastLines()) })),
      ...cliRuns.map(({ run, allowed }) => ({
        where: `\`postern ${run.args.join(' ')}\` output`,
        bytes: Buffer.from(`${run.stdout}\n${run.stderr}`),
        allowed,
      })),
      { where: 'audit log file', bytes: audit },
      { where: 'GET /v1/status', bytes: Buffer.from(serverStatus) },
      { where: 'agent-jenkins GET /status', bytes: Buffer.from(agentStatusA) },
      { where: 'agent-ado GET /status', bytes: Buffer.from(agentStatusB) },
      ...liveStore,
      ...filesUnder(server.dataDir).map((f) => ({ where: `store file ${f} (server stopped)`, bytes: readFileSync(f) })),
    ];
    expect(places.filter((p) => p.where.startsWith('store file')).length).toBeGreaterThan(0);
    // The search itself works: a place holding a secret is found, in clear and as Basic credentials.
    expect(findLeaks([{ where: 'probe', bytes: Buffer.from(`x Basic ${Buffer.from(jenkinsSecret).toString('base64')} y`) }], secrets)).not.toEqual([]);
    expect(findLeaks([{ where: 'probe', bytes: Buffer.from(`"p":"${adoSecret}"`) }], secrets)).not.toEqual([]);

    expect(findLeaks(places, secrets)).toEqual([]);
  });

  it("the logger's redact paths blank secrets that reach a log call anyway (the second line of defence)", () => {
    const secret = unique('redactme');
    const lines: string[] = [];
    const logger = pino({ redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, { write: (l: string) => lines.push(l) });
    const headers = {
      authorization: `Bearer ${secret}`,
      cookie: `s=${secret}`,
      'private-token': secret,
      'x-api-key': secret,
      'x-postern-api-key': secret,
      'proxy-authorization': `Basic ${secret}`,
    };
    logger.warn({ headers, req: { headers } }, 'a request');
    logger.warn({ clientToken: secret, token: secret, adminToken: secret, apiKey: secret, secret, password: secret, credential: { value: secret } }, 'fields');
    logger.warn({ client: { clientToken: secret, apiKey: secret }, proxy: { password: secret }, caller: { authorization: secret, cookie: secret } }, 'nested');
    expect(lines).toHaveLength(3);
    expect(findLeaks([{ where: 'pino output', bytes: Buffer.from(lines.join('')) }], { secret })).toEqual([]);
    expect(lines.join('').match(/\[redacted\]/g)?.length).toBe(12 + 7 + 5);
  });

  it('configuration errors name the setting and never echo a credential', async () => {
    const secret = unique('cfgsecret');
    const base = { CLIENT_ID: 'c1', CLIENT_TOKEN: 'tok', PROXY_URL: 'http://127.0.0.1:9', TOOL_URL: 'http://127.0.0.1:9' };
    const cases: [string, Record<string, string>][] = [
      ['TOOL_URL', { TOOL_URL: `http://robot:${secret}@bad host/` }],
      ['TOOL_URL', { TOOL_URL: `http://robot:${secret}@gitlab.internal/` }],
      ['PROXY_URL', { PROXY_URL: `https://robot:${secret}@bad host` }],
      ['HTTP_PROXY', { HTTP_PROXY: `http://robot:${secret}@bad host:3128` }],
      ['HTTP_PROXY', { HTTP_PROXY: `socks5://robot:${secret}@proxy:1080` }],
      ['TOOL_SECRET', { TOOL_SECRET: `${secret}\n` }],
      ['TOOL_SECRET', { TOOL_TYPE: 'jenkins', TOOL_SECRET: secret }],
      ['TOOL_TYPE', { TOOL_TYPE: 'svn', TOOL_SECRET: secret }],
      ['CLIENT_TOKEN', { CLIENT_TOKEN: `${secret} x` }],
    ];
    const runs = await Promise.all(cases.map(([, env]) => runCli(['agent'], { ...base, ...env })));
    runs.forEach((run, i) => {
      const [setting] = cases[i]!;
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr).toContain(`postern: configuration error: ${setting}`);
      expect(findLeaks([{ where: `agent with a bad ${setting}`, bytes: Buffer.from(run.stdout + run.stderr) }], { secret })).toEqual([]);
    });
  });
});
