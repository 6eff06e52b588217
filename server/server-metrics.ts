import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { ErrorCodeInfo } from '../protocol/error-codes.js';
import { DURATION_BUCKETS, exposition, instanceRegistry, outcomeLabel, RTT_BUCKETS } from '../telemetry/metrics-kit.js';
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
  private readonly streamsOpened: Counter;
  private readonly requestBytes: Counter;
  private readonly responseBytes: Counter;
  private readonly duration: Histogram<'outcome'>;
  private readonly errors: Counter<'error'>;
  private readonly rtt: Histogram;
  /** The success path's series, bound once: no label lookup per request. */
  private readonly okDuration: { observe(v: number): void };

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
        const perClient = new Map<string, number>();
        for (const conn of tunnels.all()) perClient.set(conn.clientId, (perClient.get(conn.clientId) ?? 0) + 1);
        for (const [clientId, n] of perClient) this.set({ client_id: clientId }, n);
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
    this.streamsOpened = new Counter({
      name: 'postern_streams_opened_total',
      help: 'Streams opened on tunnels (an idempotent request replayed after a lost tunnel opens another).',
      registers,
    });
    this.requestBytes = new Counter({
      name: 'postern_request_bytes_total',
      help: 'Request body bytes sent through tunnels towards the tools.',
      registers,
    });
    this.responseBytes = new Counter({
      name: 'postern_response_bytes_total',
      help: 'Response body bytes received through tunnels and sent to callers.',
      registers,
    });
    this.duration = new Histogram({
      name: 'postern_request_duration_seconds',
      help: 'Ingress requests from arrival to last byte, by outcome: ok (the tool answered, any status) or the Postern error code.',
      labelNames: ['outcome'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.errors = new Counter({
      name: 'postern_errors_total',
      help: 'Ingress requests that ended in a Postern error, by error code (docs/errors.md).',
      labelNames: ['error'],
      registers,
    });
    this.rtt = new Histogram({
      name: 'postern_heartbeat_rtt_seconds',
      help: 'Round trips of the server\'s PINGs on agent tunnels (heartbeats and the probes that ride with data, so queueing shows).',
      buckets: RTT_BUCKETS,
      registers,
    });
    this.okDuration = this.duration.labels('ok');
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
    this.streamsOpened.inc();
  }

  rttSample(ms: number): void {
    this.rtt.observe(ms / 1000);
  }

  requestEnded(end: RequestEnd): void {
    if (end.bytesIn > 0) this.requestBytes.inc(end.bytesIn);
    if (end.bytesOut > 0) this.responseBytes.inc(end.bytesOut);
    if (end.error === undefined) {
      this.okDuration.observe(end.seconds);
      return;
    }
    const outcome = outcomeLabel(end.error);
    this.duration.observe({ outcome }, end.seconds);
    this.errors.inc({ error: outcome });
  }

  text(): Promise<string> {
    return exposition(this.registry);
  }
}
