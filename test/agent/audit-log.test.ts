import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import {
  allowedOutcome,
  auditConfigFromEnv,
  auditLine,
  AuditLog,
  type AuditEvent,
  type AuditRecord,
  type ExchangeEnd,
} from '../../agent/audit-log.js';
import { ErrorCodes } from '../../protocol/error-codes.js';
import { ConfigError } from '../../protocol/tunnel-error.js';
import { Cleanup } from '../helpers/cleanup.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'postern-audit-'));
  cleanup.add(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A pino logger whose lines land in `lines`, parsed. */
function captureLogger(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { logger, lines };
}

const allowed: AuditRecord = {
  time: new Date('2025-03-04T05:06:07.089Z'),
  requestId: 'req-1',
  clientId: 'client-1',
  method: 'GET',
  path: '/api/v4/projects?private_token=glpat-x&page=2',
  decision: 'allowed',
  rule: 'read projects',
  status: 200,
  requestBytes: 0,
  responseBytes: 5120,
  durationMs: 12.345,
};

describe('auditLine', () => {
  it('writes an allowed request as one JSON line with the fields in a fixed order, without the query', () => {
    expect(auditLine(allowed, { includeQuery: false })).toBe(
      '{"time":"2025-03-04T05:06:07.089Z","requestId":"req-1","clientId":"client-1","method":"GET",' +
        '"path":"/api/v4/projects","decision":"allowed","rule":"read projects","status":200,' +
        '"requestBytes":0,"responseBytes":5120,"durationMs":12.3}\n',
    );
  });

  it('keeps the query string only when asked to', () => {
    const line = JSON.parse(auditLine(allowed, { includeQuery: true })) as { path: string };
    expect(line.path).toBe('/api/v4/projects?private_token=glpat-x&page=2');
  });

  it('writes rule null for an allowed request without POSTERN_ALLOW', () => {
    const line = JSON.parse(auditLine({ ...allowed, rule: null }, { includeQuery: false })) as Record<string, unknown>;
    expect(line.rule).toBeNull();
    expect('reason' in line).toBe(false);
  });

  it('writes a denial with its reason and error, and no rule', () => {
    const denied: AuditRecord = {
      ...allowed,
      method: 'DELETE',
      path: '/api/v4/projects/1',
      decision: 'denied',
      rule: undefined,
      reason: 'no rule allows DELETE /api/v4/projects/1',
      status: 403,
      responseBytes: 0,
      durationMs: 0,
      error: 'forbidden_by_agent',
    };
    expect(JSON.parse(auditLine(denied, { includeQuery: false }))).toStrictEqual({
      time: '2025-03-04T05:06:07.089Z',
      requestId: 'req-1',
      clientId: 'client-1',
      method: 'DELETE',
      path: '/api/v4/projects/1',
      decision: 'denied',
      reason: 'no rule allows DELETE /api/v4/projects/1',
      status: 403,
      requestBytes: 0,
      responseBytes: 0,
      durationMs: 0,
      error: 'forbidden_by_agent',
    });
  });

  it('keeps a hostile path on one line and caps its length', () => {
    const evil = `/x\n{"decision":"allowed"}\r\u2028${'a'.repeat(10_000)}`;
    const text = auditLine({ ...allowed, path: evil }, { includeQuery: false });
    expect(text.split('\n')).toHaveLength(2); // the line and the empty rest after its newline
    const line = JSON.parse(text) as { path: string };
    expect(line.path.startsWith('/x\n{"decision":"allowed"}\r\u2028aaa')).toBe(true);
    expect(line.path.length).toBeLessThan(2100);
    expect(line.path).toMatch(/…\[\d+ more\]$/);
  });

  it('writes requestId null when the request carried none', () => {
    expect((JSON.parse(auditLine({ ...allowed, requestId: null }, { includeQuery: false })) as { requestId: unknown }).requestId).toBeNull();
  });
});

describe('allowedOutcome', () => {
  const base: ExchangeEnd = { toolStatus: 200, headSent: true, responseEnded: true, requestEnded: true, reset: undefined };
  const cases: [string, Partial<ExchangeEnd>, { status: number; error?: string }][] = [
    ['a complete exchange', {}, { status: 200 }],
    ['a 404 from the tool', { toolStatus: 404 }, { status: 404 }],
    [
      'the tool unreachable (no head)',
      { toolStatus: undefined, headSent: false, responseEnded: false, reset: ErrorCodes.UPSTREAM_UNREACHABLE },
      { status: 502, error: 'upstream_unreachable' },
    ],
    [
      'the tool too slow (no head)',
      { toolStatus: undefined, headSent: false, responseEnded: false, reset: ErrorCodes.UPSTREAM_TIMEOUT },
      { status: 504, error: 'upstream_timeout' },
    ],
    ['the tool cutting its body off', { responseEnded: false, reset: ErrorCodes.UPSTREAM_UNREACHABLE }, { status: 200, error: 'upstream_unreachable' }],
    ['the caller leaving before the head', { toolStatus: undefined, headSent: false, responseEnded: false, reset: ErrorCodes.CANCEL }, { status: 499, error: 'cancelled' }],
    ['the caller leaving mid-body', { responseEnded: false, reset: ErrorCodes.CANCEL }, { status: 200, error: 'cancelled' }],
    ['the caller leaving after the tool finished a GET', { reset: ErrorCodes.CANCEL }, { status: 200, error: 'cancelled' }],
    ['the agent stopping an upload the tool did not read', { requestEnded: false, reset: ErrorCodes.CANCEL }, { status: 200 }],
    ['the tunnel lost mid-body', { responseEnded: false, reset: ErrorCodes.TUNNEL_LOST }, { status: 200, error: 'tunnel_lost' }],
    ['the tunnel lost before the head', { toolStatus: undefined, headSent: false, responseEnded: false, reset: ErrorCodes.TUNNEL_LOST }, { status: 502, error: 'tunnel_lost' }],
  ];
  it.each(cases)('records %s', (_what, end, expected) => {
    expect(allowedOutcome({ ...base, ...end })).toStrictEqual(expected);
  });
});

describe('auditConfigFromEnv', () => {
  it('defaults to stdout without the query string', () => {
    expect(auditConfigFromEnv({})).toStrictEqual({ target: { kind: 'stdout' }, includeQuery: false });
    expect(auditConfigFromEnv({ POSTERN_AUDIT_LOG: '', POSTERN_AUDIT_QUERY: '' })).toStrictEqual({ target: { kind: 'stdout' }, includeQuery: false });
  });

  const good: [Record<string, string>, ReturnType<typeof auditConfigFromEnv>][] = [
    [{ POSTERN_AUDIT_LOG: 'stdout' }, { target: { kind: 'stdout' }, includeQuery: false }],
    [{ POSTERN_AUDIT_LOG: ' STDOUT ' }, { target: { kind: 'stdout' }, includeQuery: false }],
    [{ POSTERN_AUDIT_LOG: 'off' }, { target: { kind: 'off' }, includeQuery: false }],
    [{ POSTERN_AUDIT_LOG: '/var/log/postern/audit.jsonl' }, { target: { kind: 'file', path: '/var/log/postern/audit.jsonl' }, includeQuery: false }],
    [{ POSTERN_AUDIT_LOG: './audit.jsonl' }, { target: { kind: 'file', path: resolve('audit.jsonl') }, includeQuery: false }],
    [{ POSTERN_AUDIT_QUERY: '1' }, { target: { kind: 'stdout' }, includeQuery: true }],
    [{ POSTERN_AUDIT_QUERY: 'true' }, { target: { kind: 'stdout' }, includeQuery: true }],
    [{ POSTERN_AUDIT_QUERY: '0' }, { target: { kind: 'stdout' }, includeQuery: false }],
  ];
  it.each(good)('reads %j', (env, expected) => {
    expect(auditConfigFromEnv(env)).toStrictEqual(expected);
  });

  const bad: [Record<string, string>, string, RegExp][] = [
    [{ POSTERN_AUDIT_LOG: 'stderr' }, 'POSTERN_AUDIT_LOG', /expected stdout, off or a file path .*got "stderr"/],
    [{ POSTERN_AUDIT_LOG: 'audit.log' }, 'POSTERN_AUDIT_LOG', /absolute or \.\/relative/],
    [{ POSTERN_AUDIT_QUERY: 'yes' }, 'POSTERN_AUDIT_QUERY', /expected 1 or 0, got "yes"/],
  ];
  it.each(bad)('refuses %j naming the setting', (env, setting, message) => {
    let err: unknown;
    try {
      auditConfigFromEnv(env);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).setting).toBe(setting);
    expect((err as ConfigError).message).toMatch(message);
  });
});

const event: AuditEvent = {
  requestId: 'r',
  method: 'GET',
  path: '/a?token=t',
  decision: 'allowed',
  rule: null,
  status: 200,
  requestBytes: 1,
  responseBytes: 2,
  durationMs: 3,
};

describe('AuditLog', () => {
  it('creates the file with mode 0600, appends to what is there and stamps client and time', async () => {
    const file = join(tempDir(), 'audit.jsonl');
    const { logger } = captureLogger();
    const log = AuditLog.open({ target: { kind: 'file', path: file }, includeQuery: false }, { clientId: 'c1', logger, now: () => Date.parse('2025-01-01T00:00:00Z') });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    log.record(event);
    await log.close();
    const again = AuditLog.open({ target: { kind: 'file', path: file }, includeQuery: true }, { clientId: 'c1', logger });
    again.record(event);
    await again.close();
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ time: '2025-01-01T00:00:00.000Z', clientId: 'c1', path: '/a', status: 200, requestBytes: 1, responseBytes: 2, durationMs: 3 });
    expect(lines[1]!.path).toBe('/a?token=t');
  });

  it('warns when an existing file is readable by others, and keeps its mode', async () => {
    const file = join(tempDir(), 'audit.jsonl');
    writeFileSync(file, '', { mode: 0o644 });
    const { logger, lines } = captureLogger();
    const log = AuditLog.open({ target: { kind: 'file', path: file }, includeQuery: false }, { clientId: 'c', logger });
    await log.close();
    expect(lines).toContainEqual(expect.objectContaining({ msg: 'audit log file is readable by other users', mode: '644' }));
  });

  it('refuses a path it cannot open with a ConfigError naming the setting, the path and the reason', () => {
    const dir = tempDir();
    const { logger } = captureLogger();
    const open = (path: string) => () => AuditLog.open({ target: { kind: 'file', path }, includeQuery: false }, { clientId: 'c', logger });
    expect(open(join(dir, 'missing', 'audit.jsonl'))).toThrow(
      new ConfigError('POSTERN_AUDIT_LOG', `cannot open ${join(dir, 'missing', 'audit.jsonl')} for appending: ENOENT`),
    );
    expect(open(dir)).toThrow(`POSTERN_AUDIT_LOG: cannot open ${dir} for appending: EISDIR`);
  });

  it('writes nothing when off', async () => {
    const { logger, lines } = captureLogger();
    const log = AuditLog.open({ target: { kind: 'off' }, includeQuery: false }, { clientId: 'c', logger });
    log.record(event);
    await log.close();
    expect(log.dropped).toBe(0);
    expect(lines).toEqual([]);
  });

  it('drops lines beyond its buffer while a write is in flight, counts them and warns at most every 10 s', async () => {
    const file = join(tempDir(), 'audit.jsonl');
    const { logger, lines } = captureLogger();
    const lineBytes = auditLine({ ...event, time: new Date(0), clientId: 'c' }, { includeQuery: false }).length;
    const log = AuditLog.open(
      { target: { kind: 'file', path: file }, includeQuery: false },
      { clientId: 'c', logger, maxBufferBytes: Math.floor(lineBytes * 1.5), now: () => 0 },
    );
    // All in one tick: the first line is being written, every later one finds the buffer full.
    for (let i = 0; i < 100; i++) log.record(event);
    expect(log.dropped).toBe(99);
    await log.close();
    expect(readFileSync(file, 'utf8').trimEnd().split('\n')).toHaveLength(1);
    const warnings = lines.filter((l) => /dropped/.test(String(l.msg)));
    // One when dropping started (the clock stood still after it), one at close with the rest.
    expect(warnings).toEqual([
      expect.objectContaining({ msg: 'audit log cannot keep up: lines dropped', dropped: 1, droppedSinceLastWarning: 1 }),
      expect.objectContaining({ msg: 'audit log lines dropped', dropped: 99, droppedSinceLastWarning: 98 }),
    ]);
  });

  it('never blocks the event loop on a reader that stopped reading (a FIFO), and loses only what it counted', async () => {
    const dir = tempDir();
    const fifo = join(dir, 'audit.fifo');
    execFileSync('mkfifo', [fifo]);
    // A reader that exists but does not read yet: the pipe fills at 64 KiB.
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    let readerOpen = true;
    cleanup.add(() => readerOpen && closeSync(reader));
    const { logger } = captureLogger();
    const log = AuditLog.open({ target: { kind: 'file', path: fifo }, includeQuery: false }, { clientId: 'c', logger, maxBufferBytes: 256 * 1024 });

    const total = 20_000; // ~4 MB of lines: far more than the pipe and the buffer hold
    const t0 = performance.now();
    for (let i = 0; i < total; i++) {
      log.record(event);
      // Yield now and then so writes start and the pipe really fills.
      if (i % 2000 === 0) await new Promise((r) => setImmediate(r));
    }
    const recordMs = performance.now() - t0;
    const lagStart = performance.now();
    await new Promise((r) => setTimeout(r, 5));
    const lagMs = performance.now() - lagStart - 5;
    expect(log.dropped).toBeGreaterThan(0);
    // Generous bounds: a blocked write would hang here for good.
    expect(recordMs).toBeLessThan(5_000);
    expect(lagMs).toBeLessThan(1_000);

    // The reader catches up: everything not dropped arrives, whole lines only.
    let received = '';
    const buf = Buffer.alloc(64 * 1024);
    const drain = setInterval(() => {
      for (;;) {
        let n: number;
        try {
          n = readSync(reader, buf);
        } catch {
          return; // EAGAIN: empty for now
        }
        if (n === 0) return;
        received += buf.toString('utf8', 0, n);
      }
    }, 2);
    cleanup.add(() => clearInterval(drain));
    await log.close(10_000);
    await new Promise((r) => setTimeout(r, 20));
    clearInterval(drain);
    closeSync(reader);
    readerOpen = false;
    const got = received.split('\n').filter((l) => l !== '');
    for (const l of got) expect(() => JSON.parse(l) as unknown).not.toThrow();
    expect(got.length + log.dropped).toBe(total);
  });
});
