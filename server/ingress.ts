import type { IncomingMessage, ServerResponse } from 'node:http';
import { nanoid } from 'nanoid';
import type { Logger } from 'pino';
import { ErrorCodes, type ErrorCodeInfo } from '../protocol/error-codes.js';
import type { ResponseFrame } from '../protocol/frame-types.js';
import { REQUEST_ID_HEADER, stripHopByHop } from '../protocol/headers.js';
import { TunnelError } from '../protocol/tunnel-error.js';
import type { TunnelStream } from '../protocol/tunnel-stream.js';
import type { AgentConnection } from './agent-connection.js';
import { refused, type ClientCounters, type ClientStats } from './client-stats.js';
import type { ClientStore } from './client-store.js';
import { sendError } from './http-errors.js';
import { API_KEY_HEADER, type IngressApiKeys } from './ingress-api-keys.js';
import type { ServerConfig } from './server-config.js';
import type { ServerMetrics } from './server-metrics.js';
import type { TunnelRegistry } from './tunnel-registry.js';

export interface IngressOptions {
  config: ServerConfig;
  store: ClientStore;
  registry: TunnelRegistry;
  stats: ClientStats;
  logger: Logger;
  apiKeys: IngressApiKeys;
  metrics?: ServerMetrics;
  /** Called with the caller's address for each refused API key, to bound logging; true = log this one at warn. */
  firstRefusal?: (remote: string | undefined) => boolean;
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS']);
/** Longest a complete response waits for the caller to finish an upload the tool did not read. */
const LINGER_MS = 5_000;
/**
 * A caller cannot choose the request id the agent logs, and its API key is
 * for Postern only: neither reaches the agent or the tool.
 */
const DROP_INBOUND: ReadonlySet<string> = new Set([REQUEST_ID_HEADER, API_KEY_HEADER]);

/** Splits `/t/<clientId>/<rest>?<query>` without decoding anything. */
export function parseIngressUrl(url: string): { clientId: string; path: string } | undefined {
  if (!url.startsWith('/t/')) return undefined;
  let end = 3;
  while (end < url.length && url[end] !== '/' && url[end] !== '?') end++;
  const clientId = url.slice(3, end);
  if (!clientId) return undefined;
  const rest = url.slice(end);
  return { clientId, path: rest.startsWith('/') ? rest : `/${rest}` };
}

/**
 * The ingress: each `/t/<clientId>/…` request becomes one stream on one of
 * the client's tunnels. The request body is piped into the stream; response
 * DATA is written straight into the response, credited as the caller's
 * socket takes it. Both move under the tunnel's flow control and nothing is
 * buffered whole.
 *
 * A request that no agent has seen yet waits for one (agentWaitMs). If the
 * tunnel drops before any response byte, an idempotent request without a
 * body is sent again on another connection; anything else fails with
 * tunnel_lost. A response already started is cut off (socket destroyed), so
 * the caller never sees a complete-looking body.
 */
export class Ingress {
  /**
   * Set when the server drains (SIGTERM): requests already here finish, new
   * ones are refused with server_draining, and every response from now on
   * closes its connection, so callers' next requests open new connections
   * that the load balancer sends to a live replica.
   */
  draining = false;

  constructor(private readonly opts: IngressOptions) {}

  handle(req: IncomingMessage, res: ServerResponse): void {
    const requestId = nanoid(16);
    if (this.draining) {
      res.shouldKeepAlive = false;
      this.opts.stats.ended(undefined, refused(ErrorCodes.SERVER_DRAINING));
      sendError(res, ErrorCodes.SERVER_DRAINING, requestId);
      return;
    }
    const parsed = parseIngressUrl(req.url ?? '');
    if (!parsed) {
      this.opts.stats.ended(undefined, refused(ErrorCodes.UNKNOWN_CLIENT));
      sendError(res, ErrorCodes.UNKNOWN_CLIENT, requestId, 'expected /t/<clientId>/<path>');
      return;
    }
    const { clientId, path } = parsed;
    const { config, registry, store, stats } = this.opts;
    if (!registry.has(clientId) && !store.get(clientId)) {
      stats.ended(undefined, refused(ErrorCodes.UNKNOWN_CLIENT));
      sendError(res, ErrorCodes.UNKNOWN_CLIENT, requestId, `no client ${JSON.stringify(clientId.slice(0, 64))}`);
      return;
    }
    const counters = stats.for(clientId);
    const contentLength = req.headers['content-length'];
    const hasBody = req.headers['transfer-encoding'] !== undefined || (contentLength !== undefined && contentLength !== '0');
    const keyOutcome = this.opts.apiKeys.check(clientId, req.headers[API_KEY_HEADER]);
    if (keyOutcome !== 'open' && keyOutcome !== 'ok') {
      this.refuseApiKey(req, res, requestId, clientId, counters, hasBody, keyOutcome);
      return;
    }
    if (counters.inFlight >= config.maxStreamsPerClient) {
      stats.ended(counters, refused(ErrorCodes.TOO_MANY_STREAMS));
      sendError(
        res,
        ErrorCodes.TOO_MANY_STREAMS,
        requestId,
        `client has ${counters.inFlight} requests in flight (limit ${config.maxStreamsPerClient}, POSTERN_MAX_STREAMS_PER_CLIENT)`,
      );
      return;
    }
    if (config.maxBodyBytes > 0 && contentLength !== undefined && Number(contentLength) > config.maxBodyBytes) {
      stats.ended(counters, refused(ErrorCodes.BODY_TOO_LARGE));
      sendError(res, ErrorCodes.BODY_TOO_LARGE, requestId, `body of ${contentLength} bytes is over the limit of ${config.maxBodyBytes}`);
      return;
    }
    new IngressExchange(this, this.opts, req, res, requestId, clientId, counters, path, hasBody).start();
  }

  /**
   * 401 for a request without its client's API key. No block per address
   * here (see README, "Ingress API keys"): keys are 256-bit random, and
   * one misconfigured service must not lock out every caller behind the
   * same address. Logged at warn once per address per window, then debug.
   */
  private refuseApiKey(
    req: IncomingMessage,
    res: ServerResponse,
    requestId: string,
    clientId: string,
    counters: ClientCounters,
    hasBody: boolean,
    outcome: 'missing' | 'wrong' | 'none',
  ): void {
    this.opts.stats.ended(counters, refused(ErrorCodes.UNAUTHORIZED));
    const remote = req.socket.remoteAddress;
    const fields = { clientId, requestId, remote, reason: outcome };
    if (this.opts.firstRefusal?.(remote) ?? true) this.opts.logger.warn(fields, 'ingress refused: API key');
    else this.opts.logger.debug(fields, 'ingress refused: API key');
    // Its body is not wanted: close instead of reading it (a trickled body would hold the connection).
    if (hasBody) res.shouldKeepAlive = false;
    const message =
      outcome === 'none'
        ? `this server requires an API key for every client (POSTERN_REQUIRE_API_KEYS) and this client has none`
        : outcome === 'missing'
          ? `this client requires an API key in the ${API_KEY_HEADER} header`
          : `the API key in ${API_KEY_HEADER} is not one of this client's`;
    sendError(res, ErrorCodes.UNAUTHORIZED, requestId, message);
  }
}

/** One ingress request from arrival to its last byte. */
class IngressExchange {
  /** The caller went away. */
  private cancelled = false;
  /** Only made when the request has to wait for an agent (the slow path). */
  private waitAbort: AbortController | undefined;
  private stream: TunnelStream | undefined;
  private conn: AgentConnection | undefined;
  private attempts = 0;
  private finished = false;
  private responseTimer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  /** Body bytes moved (both ways) when the idle timer last looked. */
  private idleMark = -1;
  private bodyStarted = false;
  private readonly startedAt = performance.now();
  /** Why the request failed, once it has (the first reason wins). */
  private error: ErrorCodeInfo | undefined;

  constructor(
    private readonly ingress: Ingress,
    private readonly opts: IngressOptions,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly requestId: string,
    private readonly clientId: string,
    private readonly counters: ClientCounters,
    private readonly path: string,
    private readonly hasBody: boolean,
  ) {}

  start(): void {
    this.counters.inFlight++;
    this.res.on('close', () => {
      if (!this.res.writableFinished) {
        this.cancel();
        this.stream?.reset(ErrorCodes.CANCEL, 'the caller went away');
      }
      this.done();
    });
    this.dispatch();
  }

  private cancel(): void {
    this.cancelled = true;
    this.waitAbort?.abort();
  }

  /** Sends the request on a live connection, or waits for one (agentWaitMs). */
  private dispatch(): void {
    const { registry, config } = this.opts;
    this.attempts++;
    const conn = registry.pick(this.clientId, this.conn);
    if (conn) {
      this.send(conn);
      return;
    }
    this.waitAbort = new AbortController();
    void registry.waitFor(this.clientId, config.agentWaitMs, this.waitAbort.signal).then((c) => this.send(c));
  }

  private send(conn: AgentConnection | undefined): void {
    const { config } = this.opts;
    if (this.cancelled) return;
    if (!conn) {
      this.fail(ErrorCodes.AGENT_OFFLINE, `no agent of this client connected within ${config.agentWaitMs} ms`);
      return;
    }
    this.conn = conn;
    // The request id travels with the request so the agent's logs (and the
    // tool's, if it logs headers) can be matched with the caller's.
    const headers = stripHopByHop(this.req.rawHeaders, DROP_INBOUND);
    headers.push(REQUEST_ID_HEADER, this.requestId);
    let stream: TunnelStream;
    try {
      stream = conn.session.openStream(this.req.method ?? 'GET', this.path, headers, !this.hasBody);
    } catch (err) {
      const info = err instanceof TunnelError ? err.info : ErrorCodes.INTERNAL;
      if (info.retryable && this.attempts < 3) return this.dispatch();
      this.fail(info, err instanceof Error ? err.message : undefined);
      return;
    }
    this.stream = stream;
    this.opts.metrics?.streamOpened();
    stream.onResponse = (head) => this.onResponse(head);
    stream.onReset = (err) => this.onReset(err);
    this.responseTimer = setTimeout(() => {
      stream.reset(ErrorCodes.UPSTREAM_TIMEOUT, `no response head within ${config.responseTimeoutMs} ms`);
    }, config.responseTimeoutMs);
    if (config.streamIdleTimeoutMs > 0) this.armIdleTimer(stream);
    if (this.hasBody) this.pipeRequestBody(stream);
  }

  /**
   * Resets a stream on which no body byte moved either way for
   * streamIdleTimeoutMs (an upload or a download that stalled without the
   * connection dropping). Checked once per period against a byte count, not
   * re-armed per chunk: a timer per chunk would cost the hot path for a
   * limit measured in minutes. So a stall is found between one and two
   * periods after it began. Waiting for the response head once the request
   * is fully sent is not idleness: POSTERN_RESPONSE_TIMEOUT_MS covers it.
   */
  private armIdleTimer(stream: TunnelStream): void {
    const ms = this.opts.config.streamIdleTimeoutMs;
    this.idleTimer = setTimeout(() => {
      const moved = stream.bytesIn + stream.bytesOut;
      const awaitingHead = !stream.response && (!this.hasBody || this.req.complete);
      if (moved === this.idleMark && !awaitingHead) {
        stream.reset(ErrorCodes.UPSTREAM_TIMEOUT, `no data moved on the stream for ${ms} ms (POSTERN_STREAM_IDLE_TIMEOUT_MS)`);
        return;
      }
      this.idleMark = moved;
      this.armIdleTimer(stream);
    }, ms);
    this.idleTimer.unref();
  }

  private pipeRequestBody(stream: TunnelStream): void {
    this.bodyStarted = true;
    const limit = this.opts.config.maxBodyBytes;
    let seen = 0;
    if (limit > 0) {
      this.req.on('data', (chunk: Buffer) => {
        seen += chunk.length;
        if (seen > limit) stream.reset(ErrorCodes.BODY_TOO_LARGE, `body is over the limit of ${limit} bytes`);
      });
    }
    // Not pipeline(): it would destroy the request (and so the socket) when
    // the agent refuses the stream, and then the refusal could not be sent.
    this.req.pipe(stream.sink);
    stream.sink.on('error', () => {
      this.req.unpipe(stream.sink);
      this.req.resume();
    });
    this.req.on('aborted', () => {
      // The caller left: a cancel, not an error of the tunnel or the tool.
      this.cancel();
      stream.reset(ErrorCodes.CANCEL, 'the request body was cut off');
    });
  }

  private onResponse(head: ResponseFrame): void {
    clearTimeout(this.responseTimer);
    const stream = this.stream!;
    const headers = stripHopByHop(head.headers);
    headers.push(REQUEST_ID_HEADER, this.requestId);
    if (this.ingress.draining) this.res.shouldKeepAlive = false;
    try {
      this.res.writeHead(head.status, headers);
    } catch (err) {
      // The agent sent a head Node will not write (e.g. a bad header value).
      stream.reset(ErrorCodes.PROTOCOL, 'response head rejected by the ingress');
      this.fail(ErrorCodes.INTERNAL, 'the agent sent a response head that cannot be forwarded');
      this.opts.logger.warn({ err, clientId: this.clientId, connectionId: this.conn?.id, requestId: this.requestId }, 'bad response head');
      return;
    }
    if (head.endStream) {
      this.res.end();
      return;
    }
    // Straight into the response, no Readable or pipe per request: a chunk
    // the response cannot take now is credited to the agent only when it
    // drains, so the tunnel's flow control reaches the caller's socket. A
    // body that does not arrive whole is cut off (onReset destroys it).
    const res = this.res;
    res.on('drain', () => stream.resumeConsumption());
    stream.consumeWith(
      (chunk) => res.write(chunk),
      () => this.endResponse(),
    );
  }

  /**
   * Ends the response once its body is complete. If the caller is still
   * uploading (the tool answered early), the response is ended only when the
   * upload has been read to its end, or after LINGER_MS: ending it earlier
   * makes Node close the socket under the caller's upload, and an HTTP
   * client that is still writing then sees a reset instead of the answer it
   * was sent (nginx's "lingering close" solves the same problem).
   */
  private endResponse(): void {
    if (!this.hasBody || this.req.complete || this.req.destroyed) {
      this.res.end();
      return;
    }
    const end = (): void => {
      clearTimeout(timer);
      this.res.end();
    };
    const timer = setTimeout(end, LINGER_MS);
    this.req.once('end', end);
    this.req.once('close', end);
  }

  private onReset(err: TunnelError): void {
    clearTimeout(this.responseTimer);
    clearTimeout(this.idleTimer);
    if (this.cancelled || this.finished) return;
    const stream = this.stream;
    const noResponseYet = !stream?.response && !this.res.headersSent;
    const replayable =
      noResponseYet &&
      !this.bodyStarted &&
      IDEMPOTENT.has(this.req.method ?? '') &&
      (err.info === ErrorCodes.TUNNEL_LOST || err.info === ErrorCodes.HEARTBEAT_TIMEOUT || err.info === ErrorCodes.GOING_AWAY);
    if (replayable && this.attempts < 3) {
      this.opts.logger.info(
        { clientId: this.clientId, connectionId: this.conn?.id, requestId: this.requestId, code: err.code, error: err.info.error },
        'replaying idempotent request',
      );
      this.stream = undefined;
      this.dispatch();
      return;
    }
    if (noResponseYet) {
      this.fail(err.info, err.message);
      return;
    }
    // The response body arrived whole (e.g. an early answer, then the upload
    // was refused): let it finish reaching the caller.
    if (stream?.remoteEnded) return;
    this.error ??= err.info;
    this.opts.logger.warn(
      { clientId: this.clientId, connectionId: this.conn?.id, requestId: this.requestId, code: err.code, error: err.info.error },
      'response cut off: tunnel stream reset mid-body',
    );
    this.res.destroy();
  }

  private fail(info: ErrorCodeInfo, message?: string): void {
    this.error ??= info;
    if (this.ingress.draining) this.res.shouldKeepAlive = false;
    // The fields an operator greps for; the connection is absent when no agent was reached.
    this.opts.logger.warn(
      { clientId: this.clientId, connectionId: this.conn?.id, requestId: this.requestId, code: info.code, error: info.error, status: info.status },
      'ingress request failed',
    );
    sendError(this.res, info, this.requestId, message);
  }

  private done(): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.responseTimer);
    clearTimeout(this.idleTimer);
    this.counters.inFlight--;
    const stream = this.stream;
    this.opts.stats.ended(this.counters, {
      // A caller that went away is not a failure of Postern's: counted as CANCEL only when nothing else failed first.
      error: this.error ?? (this.cancelled ? ErrorCodes.CANCEL : undefined),
      seconds: (performance.now() - this.startedAt) / 1000,
      bytesIn: stream ? stream.bytesOut : 0,
      bytesOut: stream ? stream.bytesIn : 0,
    });
  }
}
