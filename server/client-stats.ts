import { ErrorCodes, type ErrorCodeInfo } from '../protocol/error-codes.js';
import { RecentCount } from '../protocol/recent-count.js';

/** Counters per client, for `GET /v1/status` and the status page. */
export interface ClientCounters {
  requests: number;
  errors: number;
  inFlight: number;
  bytesIn: number;
  bytesOut: number;
  lastError: string | null;
  /** Requests and failed requests that ended in the last minute. */
  readonly recentRequests: RecentCount;
  readonly recentErrors: RecentCount;
  /** The part of recentErrors that is not the caller's doing (see isFailure): what makes a client degraded. */
  readonly recentFailures: RecentCount;
}

/** How an ingress request ended, for metrics. */
export interface RequestEnd {
  /** undefined: the tool's answer (any status) reached the caller whole. */
  error: ErrorCodeInfo | undefined;
  seconds: number;
  /** Request body bytes sent towards the tool, response body bytes towards the caller. */
  bytesIn: number;
  bytesOut: number;
}

/** Told about every ingress request when it ends (the server's metrics). */
export interface RequestObserver {
  requestEnded(end: RequestEnd): void;
}

export class ClientStats {
  private readonly byClient = new Map<string, ClientCounters>();
  /** Told about every ended request (set once, by the server, to its metrics). */
  observer: RequestObserver | undefined;

  for(clientId: string): ClientCounters {
    let c = this.byClient.get(clientId);
    if (!c) {
      c = {
        requests: 0,
        errors: 0,
        inFlight: 0,
        bytesIn: 0,
        bytesOut: 0,
        lastError: null,
        recentRequests: new RecentCount(),
        recentErrors: new RecentCount(),
        recentFailures: new RecentCount(),
      };
      this.byClient.set(clientId, c);
    }
    return c;
  }

  forget(clientId: string): void {
    this.byClient.delete(clientId);
  }

  /**
   * Counts one ended request: for its client when there is one (a request
   * for an unknown client, or refused while draining, has none) and for
   * the metrics.
   */
  ended(counters: ClientCounters | undefined, end: RequestEnd): void {
    if (counters) {
      const now = Date.now();
      counters.requests++;
      counters.recentRequests.add(1, now);
      counters.bytesIn += end.bytesIn;
      counters.bytesOut += end.bytesOut;
      // A caller that went away is its own business: in the metrics, not in the client's errors.
      if (end.error && end.error !== ErrorCodes.CANCEL) {
        counters.errors++;
        counters.recentErrors.add(1, now);
        counters.lastError = end.error.error;
        if (isFailure(end.error)) counters.recentFailures.add(1, now);
      }
    }
    this.observer?.requestEnded(end);
  }

  /** Sums over every client, for the metrics' gauges. */
  inFlight(): number {
    let n = 0;
    for (const c of this.byClient.values()) n += c.inFlight;
    return n;
  }
}

/**
 * An error that says something is wrong on Postern's or the tool's side
 * (5xx: agent offline, tool unreachable or slow, tunnel lost; 429: the
 * client is at its stream limit), as opposed to a request the caller got
 * wrong or was refused (401, 403, 404, 413, 431, 400) or abandoned (499).
 */
export function isFailure(info: ErrorCodeInfo): boolean {
  return info.status >= 500 || info.status === 429;
}

/** A request refused before it reached a tunnel: no time, no bytes. */
export function refused(error: ErrorCodeInfo): RequestEnd {
  return { error, seconds: 0, bytesIn: 0, bytesOut: 0 };
}
