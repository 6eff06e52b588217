import type { Logger } from 'pino';
import type { IncomingHttpHeaders } from 'node:http';
import { Pool, type Dispatcher } from 'undici';
import { ErrorCodes, type ErrorCodeInfo } from '../protocol/error-codes.js';
import type { HeaderList, RequestFrame } from '../protocol/frame-types.js';
import { headerValue, REQUEST_ID_HEADER, stripHopByHop } from '../protocol/headers.js';
import type { TunnelStream } from '../protocol/tunnel-stream.js';
import type { AllowPolicy } from './allow-policy.js';
import { allowedOutcome, type AuditEvent, type AuditSink } from './audit-log.js';
import type { Credential } from './credentials.js';
import { resolveToolPath, toolTargetFromUrl, type ToolTarget } from './tool-target.js';

export interface ToolRunnerOptions {
  toolUrl: URL;
  credential: Credential | undefined;
  policy: AllowPolicy | undefined;
  upstreamTimeoutMs: number;
  logger: Logger;
  /** Gets one event per request run or refused, when it ends (the audit log). */
  audit?: AuditSink;
}

/** Counters the agent's status shows. */
export interface RunnerStats {
  inFlight: number;
  requests: number;
  denials: number;
  upstreamErrors: number;
  lastError: string | null;
}

// undici refuses `expect` (it has no 100-continue support); the request body
// streams anyway, so dropping it changes nothing for the tool.
const ALWAYS_DROP = ['expect'];

/**
 * Runs tunnelled requests against the tool with undici: checks the target
 * (confinement to TOOL_URL, allow rules), swaps in the tool's credential,
 * streams both bodies with backpressure, and never follows redirects (a
 * redirect is the tool's answer, passed back as is).
 */
export class ToolRunner {
  readonly stats: RunnerStats = { inFlight: 0, requests: 0, denials: 0, upstreamErrors: 0, lastError: null };
  private readonly pool: Pool;
  private readonly target: ToolTarget;
  private readonly drop: ReadonlySet<string>;

  constructor(private readonly opts: ToolRunnerOptions) {
    this.target = toolTargetFromUrl(opts.toolUrl);
    this.drop = new Set([...ALWAYS_DROP, ...(opts.credential?.strip ?? [])]);
    this.pool = new Pool(this.target.origin, {
      // Each tunnel stream needs its own connection while its body streams.
      connections: 256,
      pipelining: 1,
      headersTimeout: opts.upstreamTimeoutMs,
      // A slow body is the caller's business (flow control), not a failure.
      bodyTimeout: 0,
      keepAliveTimeout: 30_000,
    });
  }

  /** `connectionId`: the tunnel the request came on, for the log lines of a failure. */
  run(stream: TunnelStream, head: RequestFrame, connectionId?: string): void {
    const startedAt = performance.now();
    // Built only when something is logged: the success path logs nothing.
    const log = (): Logger =>
      this.opts.logger.child({ connectionId, requestId: headerValue(head.headers, REQUEST_ID_HEADER), streamId: stream.id });
    const resolved = resolveToolPath(this.target, head.path);
    if (!resolved.ok) {
      this.deny(stream, head, resolved.reason, log());
      return;
    }
    let rule: string | null = null;
    if (this.opts.policy) {
      const decision = this.opts.policy.decide(head.method, head.path, head.headers);
      if (!decision.allowed) {
        this.deny(stream, head, decision.reason, log());
        return;
      }
      rule = decision.rule;
    }
    const headers = stripHopByHop(head.headers, this.drop);
    if (this.opts.credential) headers.push(this.opts.credential.name, this.opts.credential.value);

    this.stats.inFlight++;
    this.stats.requests++;
    const exchange = new ToolExchange(stream, head, this, log);
    // Every end (complete, tool failure, cut off, cancelled, tunnel lost) closes the stream.
    stream.onClose = () => {
      this.stats.inFlight--;
      this.opts.audit?.record(exchange.auditEvent(rule, performance.now() - startedAt));
    };
    this.pool.dispatch(
      { method: head.method, path: resolved.path, headers, body: head.endStream ? null : stream.body },
      exchange,
    );
  }

  /** @internal a tool request failed before or during its response. */
  failed(stream: TunnelStream, head: RequestFrame, err: Error & { code?: string }, log: () => Logger): void {
    if (stream.state === 'closed') return;
    const started = stream.headSent;
    const info = started ? ErrorCodes.UPSTREAM_UNREACHABLE : classify(err);
    this.recordError(info);
    log().warn(
      { method: head.method, code: info.code, error: info.error, cause: err.code ?? err.name, responseStarted: started },
      'tool request failed',
    );
    // After the head, a reset makes the caller see a cut-off response.
    stream.reset(info, started ? 'the tool response was cut off' : describe(err, info));
  }

  private deny(stream: TunnelStream, head: RequestFrame, reason: string, log: Logger): void {
    this.stats.denials++;
    const { code, error } = ErrorCodes.FORBIDDEN_BY_AGENT;
    log.warn({ method: head.method, code, error, reason }, 'request denied by agent policy');
    stream.reset(ErrorCodes.FORBIDDEN_BY_AGENT, reason);
    // Refused before anything reached the tool: no bytes, no time spent.
    const { status } = ErrorCodes.FORBIDDEN_BY_AGENT;
    this.opts.audit?.record({
      requestId: requestIdOf(head),
      method: head.method,
      path: head.path,
      decision: 'denied',
      reason,
      status,
      requestBytes: 0,
      responseBytes: 0,
      durationMs: 0,
      error,
    });
  }

  private recordError(info: ErrorCodeInfo): void {
    this.stats.upstreamErrors++;
    this.stats.lastError = info.error;
  }

  /** Checks the tool answers at all (any HTTP status counts). */
  async probe(timeoutMs = 2000): Promise<{ reachable: boolean; status?: number; error?: string }> {
    try {
      const res = await this.pool.request({
        method: 'HEAD',
        path: this.target.prefix || '/',
        signal: AbortSignal.timeout(timeoutMs),
      });
      res.body.resume();
      return { reachable: true, status: res.statusCode };
    } catch (err) {
      return { reachable: false, error: (err as { code?: string }).code ?? (err as Error).name };
    }
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}

/**
 * One tool request, as an undici dispatch handler: the response head goes
 * out as RESPONSE, each chunk straight into the tunnel stream's queue, and
 * undici is paused while the stream has no credit or socket room. No
 * promise, no body Readable, no pipe per request (undici's request() API
 * costs all three).
 */
class ToolExchange implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
  private noBody = false;
  /** The tool's final status, once its head came. */
  private status: number | undefined;
  /** The tool's response is complete. */
  private ended = false;

  constructor(
    private readonly stream: TunnelStream,
    private readonly head: RequestFrame,
    private readonly runner: ToolRunner,
    private readonly log: () => Logger,
  ) {
    stream.onReset = () => this.controller?.abort(new Error('tunnel stream reset'));
    stream.onDrain = () => this.controller?.resume();
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.stream.state === 'closed') controller.abort(new Error('tunnel stream reset'));
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
  ): void {
    if (statusCode < 200) return; // 1xx: informational, not forwarded
    this.status = statusCode;
    this.noBody = this.head.method === 'HEAD' || statusCode === 204 || statusCode === 304;
    this.ended = this.noBody;
    this.stream.respond(statusCode, stripHopByHop(flattenHeaders(headers)), this.noBody);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.noBody) return;
    if (!this.stream.writeData(chunk)) controller.pause();
  }

  onResponseEnd(): void {
    if (this.noBody) return;
    this.ended = true;
    this.stream.endData();
    // The tool answered; anything more the caller uploads is discarded.
    if (!this.head.endStream) this.stream.finishEarly();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.runner.failed(this.stream, this.head, err, this.log);
  }

  /** @internal the audit log's event, once the stream closed. */
  auditEvent(rule: string | null, durationMs: number): AuditEvent {
    const { status, error } = allowedOutcome({
      toolStatus: this.status,
      headSent: this.stream.headSent,
      responseEnded: this.ended,
      requestEnded: this.head.endStream,
      reset: this.stream.resetError?.info,
    });
    return {
      requestId: requestIdOf(this.head),
      method: this.head.method,
      path: this.head.path,
      decision: 'allowed',
      rule,
      status,
      requestBytes: this.stream.bytesIn,
      responseBytes: this.stream.bytesOut,
      durationMs,
      ...(error !== undefined ? { error } : {}),
    };
  }
}

function requestIdOf(head: RequestFrame): string | null {
  return headerValue(head.headers, REQUEST_ID_HEADER) ?? null;
}

function flattenHeaders(headers: IncomingHttpHeaders): HeaderList {
  const out: HeaderList = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) out.push(name, v);
    else out.push(name, value);
  }
  return out;
}

function classify(err: { code?: string; name?: string }): ErrorCodeInfo {
  if (err.code === 'UND_ERR_HEADERS_TIMEOUT') return ErrorCodes.UPSTREAM_TIMEOUT;
  return ErrorCodes.UPSTREAM_UNREACHABLE;
}

/** A message for the caller: the failure kind, never headers or secrets. */
function describe(err: { code?: string; name?: string }, info: ErrorCodeInfo): string {
  if (info === ErrorCodes.UPSTREAM_TIMEOUT) return 'the tool sent no response head in time';
  return `the agent could not reach the tool (${err.code ?? err.name ?? 'error'})`;
}
