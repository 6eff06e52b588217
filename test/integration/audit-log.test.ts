import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cliPath } from '../helpers/build-cli.js';
import { Cleanup } from '../helpers/cleanup.js';
import { send, sendJson } from '../helpers/http-client.js';
import { startTunnel, type TunnelFixture } from '../helpers/tunnel-fixture.js';
import type { ToolHandler } from '../helpers/upstream.js';
import { waitUntil } from '../helpers/wait.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

interface AuditLine {
  time: string;
  requestId: string | null;
  clientId: string;
  method: string;
  path: string;
  decision: 'allowed' | 'denied';
  rule?: string | null;
  reason?: string;
  status: number;
  requestBytes: number;
  responseBytes: number;
  durationMs: number;
  error?: string;
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'postern-audit-it-'));
  cleanup.add(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function readAudit(file: string): AuditLine[] {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as AuditLine);
}

/** Waits for the audit line of the request whose tool-side or caller-side id is `requestId`. */
async function auditLineOf(file: string, requestId: string): Promise<AuditLine> {
  await waitUntil(() => readAudit(file).some((l) => l.requestId === requestId), `the audit line of ${requestId}`);
  const lines = readAudit(file).filter((l) => l.requestId === requestId);
  expect(lines).toHaveLength(1);
  return lines[0]!;
}

/** The request id the tool saw on its n-th request. */
async function toolSideRequestId(t: TunnelFixture, n: number): Promise<string> {
  const r = await t.upstream.waitForRequests(n);
  const i = r.rawHeaders.findIndex((h, j) => j % 2 === 0 && h.toLowerCase() === 'x-postern-request-id');
  return r.rawHeaders[i + 1]!;
}

const BODY = Buffer.alloc(1000, 'x');
const CUT_AFTER = 10_000;

/** Request body bytes the tool has read on /upload-wait. */
let uploadWaitBytes = 0;

/** The tool's routes for the scenarios below. */
const tool: ToolHandler = async ({ req, res, body, record }) => {
  const path = (req.url ?? '').split('?')[0];
  if (path === '/ok') {
    body.resume();
    res.writeHead(200, { 'content-length': BODY.length });
    res.end(BODY);
  } else if (path === '/upload') {
    body.resume();
    await record.body;
    res.writeHead(201, { 'content-length': 4 });
    res.end('done');
  } else if (path === '/cutoff') {
    // Promises 100 000 bytes, sends 10 000, then drops the connection.
    res.writeHead(200, { 'content-length': 100_000 });
    res.write(Buffer.alloc(CUT_AFTER, 'c'));
    setTimeout(() => res.destroy(), 100);
  } else if (path === '/slow-body') {
    // One chunk, then nothing until the caller goes away.
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    res.write(Buffer.alloc(1000, 's'));
    await new Promise((r) => res.on('close', r));
  } else if (path === '/no-answer' || path === '/upload-wait') {
    body.on('data', (c: Buffer) => (uploadWaitBytes += c.length));
    body.on('error', () => {});
    await new Promise((r) => res.on('close', r));
  } else {
    res.writeHead(404).end();
  }
};

/**
 * Sends a request and destroys it once `abortWhen` resolves: a caller that
 * goes away. `partialBody` is written first and the body never finished.
 */
function abandonedRequest(url: string, opts: { method?: string; partialBody?: Buffer; abortWhen: Promise<unknown> }): Promise<{ gotHead: boolean; bytes: number }> {
  return new Promise((resolve) => {
    const result = { gotHead: false, bytes: 0 };
    const req = httpRequest(url, {
      method: opts.method ?? 'GET',
      agent: false,
      headers: opts.partialBody ? { 'content-length': String(opts.partialBody.length * 10) } : {},
    });
    req.on('response', (res) => {
      result.gotHead = true;
      res.on('data', (c: Buffer) => (result.bytes += c.length));
      res.on('error', () => {});
    });
    req.on('error', () => {});
    req.on('close', () => resolve(result));
    if (opts.partialBody) req.write(opts.partialBody);
    else req.end();
    void opts.abortWhen.then(() => req.destroy());
  });
}

describe('the agent audit log', () => {
  it('writes one line per request with decision, rule or reason, status, bytes both ways, duration and error', async () => {
    const dir = tempDir();
    const file = join(dir, 'audit.jsonl');
    const rules = join(dir, 'allow.json');
    writeFileSync(
      rules,
      JSON.stringify({
        rules: [
          { name: 'read anything', methods: ['GET'], path: '/**' },
          { name: 'uploads', methods: ['POST'], path: '/upload*' },
        ],
      }),
    );
    const testStart = Date.now();
    const t = await startTunnel(cleanup, { handler: tool, agentEnv: { POSTERN_AUDIT_LOG: file, POSTERN_ALLOW: rules } });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const clientId = t.clientId;
    let toolRequests = 0;

    // 1. Allowed, complete. The query string stays out of the line by default.
    const ok = await send(t.url('/ok?private_token=caller-secret&page=2'));
    toolRequests++;
    expect(ok.status).toBe(200);
    const okLine = await auditLineOf(file, ok.headers['x-postern-request-id'] as string);
    expect(okLine).toMatchObject({
      clientId,
      method: 'GET',
      path: '/ok',
      decision: 'allowed',
      rule: 'read anything',
      status: 200,
      requestBytes: 0,
      responseBytes: BODY.length,
    });
    expect(okLine.error).toBeUndefined();
    expect(Date.parse(okLine.time)).toBeGreaterThanOrEqual(testStart);
    expect(Date.parse(okLine.time)).toBeLessThanOrEqual(Date.now());
    expect(okLine.durationMs).toBeGreaterThan(0);
    expect(okLine.durationMs).toBeLessThan(5_000);

    // 2. Allowed upload: the request body's bytes are counted.
    const upload = Buffer.alloc(300_000, 'u');
    const up = await send(t.url('/upload'), { method: 'POST', body: upload });
    toolRequests++;
    expect(up.status).toBe(201);
    expect(await auditLineOf(file, up.headers['x-postern-request-id'] as string)).toMatchObject({
      method: 'POST',
      path: '/upload',
      decision: 'allowed',
      rule: 'uploads',
      status: 201,
      requestBytes: upload.length,
      responseBytes: 4,
    });

    // 3. Denied by the allow rules, and by the confinement to TOOL_URL.
    const denied = await sendJson<{ requestId: string }>(t.url('/projects/1'), { method: 'DELETE' });
    expect(denied.status).toBe(403);
    expect(await auditLineOf(file, denied.json.requestId)).toStrictEqual({
      time: expect.any(String) as string,
      requestId: denied.json.requestId,
      clientId,
      method: 'DELETE',
      path: '/projects/1',
      decision: 'denied',
      // The allow-rules module may add which rule came closest.
      reason: expect.stringMatching(/^no rule allows DELETE \/projects\/1/) as string,
      status: 403,
      requestBytes: 0,
      responseBytes: 0,
      durationMs: 0,
      error: 'forbidden_by_agent',
    });
    const escape = await sendJson<{ requestId: string }>(t.url('/%2e%2e/etc/passwd'));
    expect(escape.status).toBe(403);
    expect(await auditLineOf(file, escape.json.requestId)).toMatchObject({
      path: '/%2e%2e/etc/passwd',
      decision: 'denied',
      status: 403,
      error: 'forbidden_by_agent',
    });

    // 4. The tool cuts its response off after 10 000 of 100 000 bytes.
    const cut = await send(t.url('/cutoff'));
    toolRequests++;
    expect(cut.complete).toBe(false);
    const cutLine = await auditLineOf(file, cut.headers['x-postern-request-id'] as string);
    expect(cutLine).toMatchObject({ decision: 'allowed', status: 200, error: 'upstream_unreachable', responseBytes: CUT_AFTER });
    expect(cut.bytes).toBe(CUT_AFTER);
    expect(cutLine.durationMs).toBeGreaterThanOrEqual(90);

    // 5. The caller goes away mid-body (after the first chunk), 150 ms in.
    const midBody = abandonedRequest(t.url('/slow-body'), {
      abortWhen: t.upstream.waitForRequests(++toolRequests).then(() => new Promise((r) => setTimeout(r, 150))),
    });
    const midBodyId = await toolSideRequestId(t, toolRequests);
    expect((await midBody).gotHead).toBe(true);
    const midLine = await auditLineOf(file, midBodyId);
    expect(midLine).toMatchObject({ decision: 'allowed', status: 200, error: 'cancelled', responseBytes: 1000 });
    expect(midLine.durationMs).toBeGreaterThanOrEqual(140);

    // 6. The caller goes away before the tool answered.
    const noHeadRequest = ++toolRequests;
    const noHead = abandonedRequest(t.url('/no-answer'), {
      abortWhen: t.upstream.waitForRequests(noHeadRequest).then(() => new Promise((r) => setTimeout(r, 150))),
    });
    const noHeadId = await toolSideRequestId(t, noHeadRequest);
    expect((await noHead).gotHead).toBe(false);
    const noHeadLine = await auditLineOf(file, noHeadId);
    expect(noHeadLine).toMatchObject({ decision: 'allowed', status: 499, error: 'cancelled', responseBytes: 0 });
    expect(noHeadLine.durationMs).toBeGreaterThanOrEqual(140);

    // 7. The caller's upload is cut off half-way.
    const partial = Buffer.alloc(20_000, 'p');
    uploadWaitBytes = 0;
    const uploadRequest = ++toolRequests;
    const cutUpload = abandonedRequest(t.url('/upload-wait'), {
      method: 'POST',
      partialBody: partial,
      abortWhen: t.upstream
        .waitForRequests(uploadRequest)
        .then(() => waitUntil(() => uploadWaitBytes === partial.length, 'the partial upload at the tool')),
    });
    const uploadId = await toolSideRequestId(t, uploadRequest);
    await cutUpload;
    expect(await auditLineOf(file, uploadId)).toMatchObject({
      method: 'POST',
      decision: 'allowed',
      status: 499,
      error: 'cancelled',
      requestBytes: partial.length,
      responseBytes: 0,
    });

    // 8. The tool is gone: unreachable.
    await t.upstream.close();
    const down = await sendJson<{ requestId: string; error: string }>(t.url('/ok'));
    expect(down.status).toBe(502);
    expect(await auditLineOf(file, down.json.requestId)).toMatchObject({
      decision: 'allowed',
      rule: 'read anything',
      status: 502,
      error: 'upstream_unreachable',
      requestBytes: 0,
      responseBytes: 0,
    });

    // One line per request, nothing else; every line names this client.
    const all = readAudit(file);
    expect(all).toHaveLength(9);
    expect(new Set(all.map((l) => l.clientId))).toEqual(new Set([clientId]));
    expect(JSON.stringify(all)).not.toContain('caller-secret');
  });

  it('includes the query string with POSTERN_AUDIT_QUERY=1, and counts no drops', async () => {
    const file = join(tempDir(), 'audit.jsonl');
    const t = await startTunnel(cleanup, { handler: tool, agentEnv: { POSTERN_AUDIT_LOG: file, POSTERN_AUDIT_QUERY: '1' } });
    const res = await send(t.url('/ok?page=2&sort=name'));
    expect(res.status).toBe(200);
    expect(await auditLineOf(file, res.headers['x-postern-request-id'] as string)).toMatchObject({
      path: '/ok?page=2&sort=name',
      rule: null,
      status: 200,
    });
    expect(t.agent.agent.status().auditDropped).toBe(0);
  });

  it('writes the lines of requests cut off by the agent stopping before it exits', async () => {
    const file = join(tempDir(), 'audit.jsonl');
    const t = await startTunnel(cleanup, { handler: tool, agentEnv: { POSTERN_AUDIT_LOG: file } });
    const pending = abandonedRequest(t.url('/no-answer'), { abortWhen: new Promise(() => {}) });
    const id = await toolSideRequestId(t, 1);
    await t.agent.stop();
    await pending;
    // stop() resolves after the audit file is flushed and closed.
    const lines = readAudit(file).filter((l) => l.requestId === id);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ decision: 'allowed', status: 502, error: 'tunnel_lost' });
  });

  it('stops `postern agent` at start with a configuration error when the audit file cannot be opened', async () => {
    const dir = tempDir();
    const path = join(dir, 'no-such-dir', 'audit.jsonl');
    const child = spawn(process.execPath, [cliPath(), 'agent'], {
      env: {
        ...process.env,
        CLIENT_ID: 'c1',
        CLIENT_TOKEN: 'not-used',
        PROXY_URL: 'http://127.0.0.1:9',
        TOOL_URL: 'http://127.0.0.1:9',
        POSTERN_AUDIT_LOG: path,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    cleanup.add(() => child.kill('SIGKILL'));
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(code).toBe(2);
    expect(stderr).toContain(`postern: configuration error: POSTERN_AUDIT_LOG: cannot open ${path} for appending: ENOENT`);
  });
});
