import type { ErrorCodeInfo } from '../protocol/error-codes.js';

/** Counters per client, for `GET /v1/status`. */
export interface ClientCounters {
  requests: number;
  errors: number;
  inFlight: number;
  bytesIn: number;
  bytesOut: number;
  lastError: string | null;
}

export class ClientStats {
  private readonly byClient = new Map<string, ClientCounters>();

  for(clientId: string): ClientCounters {
    let c = this.byClient.get(clientId);
    if (!c) {
      c = { requests: 0, errors: 0, inFlight: 0, bytesIn: 0, bytesOut: 0, lastError: null };
      this.byClient.set(clientId, c);
    }
    return c;
  }

  forget(clientId: string): void {
    this.byClient.delete(clientId);
  }
}

/** Records a failed request: one more error, and it becomes the last one. */
export function countError(counters: ClientCounters, info: ErrorCodeInfo): void {
  counters.errors++;
  counters.lastError = info.error;
}
