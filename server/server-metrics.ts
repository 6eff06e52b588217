import { Counter, Gauge, type Registry } from 'prom-client';
import type { ErrorCodeInfo } from '../protocol/error-codes.js';
import { exposition, instanceRegistry } from '../telemetry/metrics-kit.js';
import { RequestMetrics } from '../telemetry/request-metrics.js';
import type { ClientStats, RequestEnd, RequestObserver } from './client-stats.js';
import type { TunnelRegistry } from './tunnel-registry.js';

export interface ServerMetricsSources {
  registry: TunnelRegistry;
  stats: ClientStats;
}

/**
 * The server's Prometheus metrics (`GET /metrics` on the private listener;
 * the list is in docs/metrics.md). Events are counted as they happen;
 * levels (connections, streams, requests in flight) are read from the live
 * state at scrape time, so they can never drift from what /v1/status shows.
 * Labels are bounded: error codes, close codes, surfaces, and client ids
 * only on the per-client gauges.
 */
export class ServerMetrics implements RequestObserver {
  readonly registry: Registry = instanceRegistry('server');
  private readonly connectionsOpened: Counter;
  private readonly disconnections: Counter<'code'>;
  private readonly handshakeFailures: Counter;
  private readonly authFailures: Counter<'surface'>;
  private readonly requests: RequestMetrics;

  constructor(sources: ServerMetricsSources) {
    const registers = [this.registry];
    const { registry: tunnels, stats } = sources;
    new Gauge({
      name: 'postern_agent_connections',
      help: 'Agent tunnels connected now (including draining ones).',
      registers,
      collect() {
        this.set(tunnels.all().length);
      },
    });
    new Gauge({
      name: 'postern_client_agent_connections',
      help: 'Agent tunnels connected now, per client with at least one (absent: none).',
      labelNames: ['client_id'],
      registers,
      collect() {
        this.reset();
        for (const [clientId, n] of tunnels.countsByClient()) this.set({ client_id: clientId }, n);
      },
    });
    new Gauge({
      name: 'postern_streams_active',
      help: 'Streams open on all tunnels now.',
      registers,
      collect() {
        let n = 0;
        for (const conn of tunnels.all()) n += conn.session.activeStreams;
        this.set(n);
      },
    });
    new Gauge({
      name: 'postern_requests_in_flight',
      help: 'Ingress requests being served now (waiting for an agent, or on a stream).',
      registers,
      collect() {
        this.set(stats.inFlight());
      },
    });
    this.connectionsOpened = new Counter({
      name: 'postern_agent_connections_opened_total',
      help: 'Agent tunnels that completed the handshake.',
      registers,
    });
    this.disconnections = new Counter({
      name: 'postern_agent_disconnections_total',
      help: 'Agent tunnels that ended, by Postern error code (POSTERN_ERR_* in lower case without the prefix; "closed" for a clean close).',
      labelNames: ['code'],
      registers,
    });
    this.handshakeFailures = new Counter({
      name: 'postern_agent_handshake_failures_total',
      help: 'Authenticated WebSockets that failed the HELLO/WELCOME handshake (timeout, bad frame, version).',
      registers,
    });
    this.authFailures = new Counter({
      name: 'postern_auth_failures_total',
      help: 'Failed authentications, by surface: tunnel (agent credentials) or admin (admin token, status page).',
      labelNames: ['surface'],
      registers,
    });
    this.requests = new RequestMetrics(this.registry, {
      streamsOpened: 'Streams opened on tunnels (an idempotent request replayed after a lost tunnel opens another).',
      duration:
        'Ingress requests from arrival to last byte, by outcome: ok (the tool answered, any status) or the Postern error code.',
      errors: 'Ingress requests that ended in a Postern error, by error code (docs/errors.md).',
      requestBytes: 'Request body bytes sent through tunnels towards the tools.',
      responseBytes: 'Response body bytes received through tunnels and sent to callers.',
      rtt: "Round trips of the server's PINGs on agent tunnels (heartbeats and the probes that ride with data, so queueing shows).",
    });
  }

  connectionOpened(): void {
    this.connectionsOpened.inc();
  }

  connectionClosed(error: ErrorCodeInfo | undefined): void {
    // The specific code (heartbeat_timeout, flood, …): the slug would lump several together.
    this.disconnections.inc({ code: error ? error.code.replace(/^POSTERN_ERR_/, '').toLowerCase() : 'closed' });
  }

  handshakeFailed(): void {
    this.handshakeFailures.inc();
  }

  authFailed(surface: 'tunnel' | 'admin'): void {
    this.authFailures.inc({ surface });
  }

  streamOpened(): void {
    this.requests.streamOpened();
  }

  rttSample(ms: number): void {
    this.requests.rttSample(ms);
  }

  requestEnded(end: RequestEnd): void {
    this.requests.ended(end.error, end.seconds, end.bytesIn, end.bytesOut);
  }

  text(): Promise<string> {
    return exposition(this.registry);
  }
}
