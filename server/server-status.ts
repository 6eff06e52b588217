import { VERSION } from '../protocol/version.js';
import type { ClientStats } from './client-stats.js';
import type { ClientStore } from './client-store.js';
import type { TunnelRegistry } from './tunnel-registry.js';

/** One agent connection in `GET /v1/status`. */
export interface ConnectionStatus {
  connectionId: string;
  remoteAddress: string;
  agentVersion: string;
  connectedSince: string;
  rttMs: number;
  streams: number;
  draining: boolean;
  bytesIn: number;
  bytesOut: number;
}

/**
 * A client's health at a glance, the same in `postern status`, `/ui` and
 * the JSON:
 * - `offline`: no live tunnel (none, or all draining): its requests wait
 *   POSTERN_AGENT_WAIT_MS and then fail with 503 agent_offline;
 * - `degraded`: served, but a tunnel is draining (an agent is restarting)
 *   or requests failed in the last minute on Postern's or the tool's side
 *   (5xx or 429: `failuresLastMinute`; a policy denial or a wrong API key
 *   is the caller's problem and does not count);
 * - `connected`: served, no such failure in the last minute.
 */
export type ClientHealth = 'connected' | 'degraded' | 'offline';

export function clientHealth(c: Pick<ClientStatus, 'connections' | 'failuresLastMinute'>): ClientHealth {
  const live = c.connections.filter((x) => !x.draining).length;
  if (live === 0) return 'offline';
  if (live < c.connections.length || c.failuresLastMinute > 0) return 'degraded';
  return 'connected';
}

/** One client in `GET /v1/status`. */
export interface ClientStatus {
  clientId: string;
  name: string;
  /** At least one live (not draining) tunnel. */
  connected: boolean;
  health: ClientHealth;
  connections: ConnectionStatus[];
  streamsInFlight: number;
  requests: number;
  errors: number;
  /** Requests (and failed ones) that ended in the last minute. */
  requestsLastMinute: number;
  errorsLastMinute: number;
  /** Errors in the last minute that are not the caller's doing (5xx, 429). */
  failuresLastMinute: number;
  bytesIn: number;
  bytesOut: number;
  lastError: string | null;
}

export interface ServerStatus {
  version: string;
  startedAt: string;
  uptimeSeconds: number;
  clients: ClientStatus[];
}

/** Clients per health, tunnels and streams in flight: the summary line of `postern status` and `/ui`. */
export function summarize(status: ServerStatus): Record<ClientHealth, number> & { connections: number; streams: number } {
  const counts = { connected: 0, degraded: 0, offline: 0, connections: 0, streams: 0 };
  for (const c of status.clients) {
    counts[c.health]++;
    counts.connections += c.connections.length;
    counts.streams += c.streamsInFlight;
  }
  return counts;
}

export interface StatusSources {
  store: ClientStore;
  registry: TunnelRegistry;
  stats: ClientStats;
  startedAt: Date;
}

/**
 * The server's view of every client and connection: what `GET /v1/status`
 * answers and the status page renders. Never a token or key.
 */
export function serverStatus({ store, registry, stats, startedAt }: StatusSources, now = Date.now()): ServerStatus {
  const clients: ClientStatus[] = store.list().map((c) => {
    const counters = stats.for(c.clientId);
    const connections = registry.connections(c.clientId).map(
      (conn): ConnectionStatus => ({
        connectionId: conn.id,
        remoteAddress: conn.remoteAddress,
        agentVersion: conn.agentVersion,
        connectedSince: conn.connectedAt,
        rttMs: Math.round(conn.session.rttMs() * 1000) / 1000,
        streams: conn.session.activeStreams,
        draining: conn.session.goingAway,
        // Same direction as the client counters: in = towards the tool
        // (request bodies), out = towards the caller (response bodies).
        bytesIn: conn.session.bytesOut,
        bytesOut: conn.session.bytesIn,
      }),
    );
    const failuresLastMinute = counters.recentFailures.total(now);
    return {
      clientId: c.clientId,
      name: c.name,
      connected: connections.some((x) => !x.draining),
      health: clientHealth({ connections, failuresLastMinute }),
      connections,
      streamsInFlight: counters.inFlight,
      requests: counters.requests,
      errors: counters.errors,
      requestsLastMinute: counters.recentRequests.total(now),
      errorsLastMinute: counters.recentErrors.total(now),
      failuresLastMinute,
      bytesIn: counters.bytesIn,
      bytesOut: counters.bytesOut,
      lastError: counters.lastError,
    };
  });
  return {
    version: VERSION,
    startedAt: startedAt.toISOString(),
    uptimeSeconds: Math.round((now - startedAt.getTime()) / 1000),
    clients,
  };
}
