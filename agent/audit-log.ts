import { fstatSync, openSync } from 'node:fs';
import { resolve } from 'node:path';
import { pino, type Logger } from 'pino';
import { ErrorCodes, type ErrorCodeInfo } from '../protocol/error-codes.js';
import { ConfigError } from '../protocol/tunnel-error.js';

/**
 * The agent's audit log: one JSON line per request the agent ran or refused,
 * written when the request ends (completed, failed, cut off or cancelled):
 *
 *   {"time":"2025-01-01T12:00:00.000Z","requestId":"…","clientId":"…","method":"GET",
 *    "path":"/api/v4/projects","decision":"allowed","rule":"read projects","status":200,
 *    "requestBytes":0,"responseBytes":5120,"durationMs":12.3}
 *
 * `rule` is the POSTERN_ALLOW rule that let it pass (null without rules);
 * a refused request has `reason` instead. `status` is the tool's status, or
 * Postern's error status when the agent refused the request or the tool
 * failed before answering; `error` (the ingress's error slug) is present
 * only when the request failed. The query string is left out unless
 * POSTERN_AUDIT_QUERY=1 (it can carry tokens and personal data); header
 * values are never written.
 *
 * Writes never block the event loop: lines go to a pino (sonic-boom)
 * destination in async mode that buffers up to `maxBufferBytes` while the
 * disk or pipe is slow. Beyond that, new lines are dropped and counted
 * (`dropped`, shown in the agent's status) with a warning at most every
 * 10 s: a full disk or a stalled reader must slow neither the requests nor
 * the agent's memory.
 */

/** Where audit lines go. */
export type AuditTarget = { kind: 'stdout' } | { kind: 'off' } | { kind: 'file'; path: string };

export interface AuditConfig {
  target: AuditTarget;
  /** Include the query string in `path`. Default false. */
  includeQuery: boolean;
}

/** One finished request, as the tool runner reports it. */
export interface AuditEvent {
  requestId: string | null;
  method: string;
  /** The request target as the caller sent it (path and query). */
  path: string;
  decision: 'allowed' | 'denied';
  /** Allowed: the POSTERN_ALLOW rule that matched, null without rules. */
  rule?: string | null;
  /** Denied: why. */
  reason?: string;
  status: number;
  /** Request body bytes received from the caller for the tool. */
  requestBytes: number;
  /** Response body bytes sent back to the caller. */
  responseBytes: number;
  durationMs: number;
  /** The error slug (`upstream_unreachable`, `cancelled`, …) when it failed. */
  error?: string;
}

/** What the tool runner reports finished requests to. */
export interface AuditSink {
  record(event: AuditEvent): void;
}

/** An audit line's content: the event plus when and for which client. */
export interface AuditRecord extends AuditEvent {
  time: Date;
  clientId: string;
}

/** Batch size of audit writes, and the longest a line waits when traffic is light. */
const FLUSH_BYTES = 8 * 1024;
const FLUSH_EVERY_MS = 200;

/** Longest path and reason kept in a line; a hostile caller's 8 KiB path does not become an 8 KiB line. */
const MAX_PATH_CHARS = 2048;
const MAX_REASON_CHARS = 512;

function cap(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max)}…[${s.length - max} more]`;
}

/**
 * The JSON line for a record (with its trailing newline). JSON escaping
 * keeps a caller's control characters from starting a line of their own.
 */
export function auditLine(record: AuditRecord, opts: { includeQuery: boolean }): string {
  const q = record.path.indexOf('?');
  const path = opts.includeQuery || q === -1 ? record.path : record.path.slice(0, q);
  const line: Record<string, unknown> = {
    time: record.time.toISOString(),
    requestId: record.requestId,
    clientId: record.clientId,
    method: cap(record.method, 32),
    path: cap(path, MAX_PATH_CHARS),
    decision: record.decision,
  };
  if (record.decision === 'allowed') line.rule = record.rule ?? null;
  else line.reason = cap(record.reason ?? '', MAX_REASON_CHARS);
  line.status = record.status;
  line.requestBytes = record.requestBytes;
  line.responseBytes = record.responseBytes;
  line.durationMs = Math.round(record.durationMs * 10) / 10;
  if (record.error !== undefined) line.error = record.error;
  return `${JSON.stringify(line)}\n`;
}

/** How an allowed request ended, as the tool runner saw it when its stream closed. */
export interface ExchangeEnd {
  /** The tool's final status, once its response head came. */
  toolStatus: number | undefined;
  /** The response head went to the caller. */
  headSent: boolean;
  /** The tool's response ended (all its body handed to the stream). */
  responseEnded: boolean;
  /** The caller's request had no body (END with the head). */
  requestEnded: boolean;
  /** The code the stream was reset with, if it was. */
  reset: ErrorCodeInfo | undefined;
}

/** Status and error of an allowed request from how its stream ended. */
export function allowedOutcome(end: ExchangeEnd): { status: number; error?: string } {
  const ok = { status: end.toolStatus ?? 0 };
  if (!end.reset) return ok;
  // The tool answered in full before reading the whole upload; the agent then
  // stops the upload with CANCEL (TunnelStream.finishEarly): not a failure.
  if (end.reset === ErrorCodes.CANCEL && end.responseEnded && !end.requestEnded) return ok;
  return {
    status: end.headSent && end.toolStatus !== undefined ? end.toolStatus : end.reset.status,
    error: end.reset.error,
  };
}

/**
 * POSTERN_AUDIT_LOG (`stdout`, the default; `off`; or a file path, absolute
 * or starting with `./`) and POSTERN_AUDIT_QUERY (`1`/`true` to include
 * query strings). Throws ConfigError naming the setting.
 */
export function auditConfigFromEnv(env: NodeJS.ProcessEnv): AuditConfig {
  const raw = env.POSTERN_AUDIT_LOG?.trim() ?? '';
  let target: AuditTarget;
  if (raw === '' || raw.toLowerCase() === 'stdout') target = { kind: 'stdout' };
  else if (raw.toLowerCase() === 'off') target = { kind: 'off' };
  else if (raw.includes('/')) target = { kind: 'file', path: resolve(raw) };
  // A bare word is almost always a typo ("stderr", "of"), not a file in the working directory.
  else throw new ConfigError('POSTERN_AUDIT_LOG', `expected stdout, off or a file path (absolute or ./relative), got ${JSON.stringify(raw)}`);

  const q = env.POSTERN_AUDIT_QUERY?.trim().toLowerCase() ?? '';
  let includeQuery: boolean;
  if (q === '' || q === '0' || q === 'false') includeQuery = false;
  else if (q === '1' || q === 'true') includeQuery = true;
  else throw new ConfigError('POSTERN_AUDIT_QUERY', `expected 1 or 0, got ${JSON.stringify(env.POSTERN_AUDIT_QUERY)}`);
  return { target, includeQuery };
}

export interface AuditLogOptions {
  clientId: string;
  /** For the writer's own warnings (drops, write errors). */
  logger: Logger;
  /** Bytes of lines waiting for the disk or pipe before new lines are dropped. Default 4 MiB (~15 000 lines). */
  maxBufferBytes?: number;
  /** Clock (epoch ms), for tests. */
  now?: () => number;
}

/** Drop and write-error warnings are logged at most this often. */
const WARN_EVERY_MS = 10_000;

type Destination = ReturnType<typeof pino.destination>;

/** The audit log writer (see the module comment). */
export class AuditLog implements AuditSink {
  /** Lines dropped because the destination could not keep up (or failed). */
  dropped = 0;
  private droppedSinceWarning = 0;
  private lastWarning = Number.NEGATIVE_INFINITY;
  private closed = false;
  private readonly now: () => number;
  private flushTimer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly dest: Destination | undefined,
    private readonly includeQuery: boolean,
    private readonly opts: AuditLogOptions,
  ) {
    this.now = opts.now ?? Date.now;
    dest?.on('drop', () => this.onDrop());
    if (dest) {
      // Lines are written in batches of FLUSH_BYTES (one write per batch, not
      // per request: measured ~7% of the agent's CPU at 8k req/s), and a
      // quiet period never holds one back longer than FLUSH_EVERY_MS.
      this.flushTimer = setInterval(() => {
        if (!this.closed) dest.flush();
      }, FLUSH_EVERY_MS);
      this.flushTimer.unref();
    }
    dest?.on('error', (err: NodeJS.ErrnoException) => this.warn({ code: err.code ?? err.name }, 'audit log write failed; retrying'));
  }

  /**
   * Opens the destination synchronously, so a path that cannot be opened
   * stops the agent at start with a ConfigError instead of failing later.
   * A new file is created with mode 0600.
   */
  static open(config: AuditConfig, opts: AuditLogOptions): AuditLog {
    const { target } = config;
    if (target.kind === 'off') return new AuditLog(undefined, false, opts);
    let fd = 1;
    if (target.kind === 'file') {
      fd = openAppend(target.path);
      const st = fstatSync(fd);
      const mode = st.mode & 0o777;
      // Only a regular file keeps what it is given; a pipe or /dev/null
      // (the bench's sink) is not worth a warning.
      if (st.isFile() && mode & 0o077) {
        opts.logger.warn({ path: target.path, mode: mode.toString(8) }, 'audit log file is readable by other users');
      }
    }
    const dest = pino.destination({ fd, sync: false, minLength: FLUSH_BYTES, maxLength: opts.maxBufferBytes ?? 4 * 1024 * 1024 });
    return new AuditLog(dest, config.includeQuery, opts);
  }

  /** Writes the line for a finished request. Never throws, never blocks. */
  record(event: AuditEvent): void {
    if (!this.dest) return;
    if (this.closed) {
      this.onDrop();
      return;
    }
    const line = auditLine({ ...event, time: new Date(this.now()), clientId: this.opts.clientId }, { includeQuery: this.includeQuery });
    try {
      this.dest.write(line);
    } catch {
      this.onDrop();
    }
  }

  /** Flushes what is buffered (for at most `timeoutMs`) and closes the file. */
  async close(timeoutMs = 2_000): Promise<void> {
    if (!this.dest || this.closed) return;
    this.closed = true;
    clearInterval(this.flushTimer);
    const dest = this.dest;
    await new Promise<void>((done) => {
      const timer = setTimeout(() => {
        dest.destroy();
        done();
      }, timeoutMs);
      const finish = (): void => {
        clearTimeout(timer);
        done();
      };
      dest.once('close', finish);
      dest.once('error', finish);
      dest.end();
    });
    if (this.droppedSinceWarning > 0) this.warn({}, 'audit log lines dropped', true);
  }

  private onDrop(): void {
    this.dropped++;
    this.droppedSinceWarning++;
    this.warn({}, 'audit log cannot keep up: lines dropped');
  }

  private warn(ctx: Record<string, unknown>, msg: string, force = false): void {
    const t = this.now();
    if (!force && t - this.lastWarning < WARN_EVERY_MS) return;
    this.lastWarning = t;
    this.opts.logger.warn({ ...ctx, dropped: this.dropped, droppedSinceLastWarning: this.droppedSinceWarning }, msg);
    this.droppedSinceWarning = 0;
  }
}

function openAppend(path: string): number {
  try {
    // A directory fails here too (EISDIR).
    return openSync(path, 'a', 0o600);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new ConfigError('POSTERN_AUDIT_LOG', `cannot open ${path} for appending: ${e.code ?? e.message}`);
  }
}
