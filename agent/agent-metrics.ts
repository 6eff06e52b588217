import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { ErrorCodes } from '../protocol/error-codes.js';
import { DURATION_BUCKETS, exposition, instanceRegistry, outcomeLabel, RTT_BUCKETS } from '../telemetry/metrics-kit.js';
import type { AuditEvent, AuditSink } from './audit-log.js';
import type { TunnelConnector } from './tunnel-connector.js';

export interface AgentMetricsSources {
  connectors: readonly TunnelConnector[];
  inFlight: () => number;
  auditDropped: () => number;
}

/**
 * The agent's Prometheus metrics (`GET /metrics` on POSTERN_STATUS_PORT;
 * the list is in docs/metrics.md). Requests are counted from the same
 * end-of-request events the audit log gets (it is an AuditSink), so the
 * two never disagree; tunnel levels are read at scrape time.
 */
export class AgentMetrics implements AuditSink {
  readonly registry: Registry = instanceRegistry('agent');
  private readonly streamsOpened: Counter;
  private readonly duration: Histogram<'outcome'>;
  private readonly errors: Counter<'error'>;
  private readonly denials: Counter;
  private readonly requestBytes: Counter;
  private readonly responseBytes: Counter;
  private readonly rtt: Histogram;
  private readonly okDuration: { observe(v: number): void };

  constructor(sources: AgentMetricsSources) {
    const registers = [this.registry];
    const { connectors } = sources;
    new Gauge({
      name: 'postern_tunnels_connected',
      help: 'Tunnels to the server that are up now (of postern_tunnels_configured).',
      registers,
      collect() {
        this.set(connectors.filter((c) => c.state === 'connected').length);
      },
    });
    new Gauge({
      name: 'postern_tunnels_configured',
      help: 'Tunnels the agent keeps (POSTERN_CONNECTIONS).',
      registers,
      collect() {
        this.set(connectors.length);
      },
    });
    new Counter({
      name: 'postern_tunnel_reconnects_total',
      help: 'Reconnects: dials scheduled after a tunnel was lost or a dial failed, and replacements opened when the server sent GOAWAY.',
      registers,
      collect() {
        // Derived from the connectors' own counts, which only grow.
        this.reset();
        this.inc(connectors.reduce((n, c) => n + c.reconnects, 0));
      },
    });
    new Gauge({
      name: 'postern_streams_active',
      help: 'Streams open on the agent\'s tunnels now.',
      registers,
      collect() {
        this.set(connectors.reduce((n, c) => n + (c.session?.activeStreams ?? 0), 0));
      },
    });
    new Gauge({
      name: 'postern_requests_in_flight',
      help: 'Requests running against the tool now.',
      registers,
      collect() {
        this.set(sources.inFlight());
      },
    });
    new Counter({
      name: 'postern_audit_dropped_total',
      help: 'Audit lines dropped because their destination could not keep up.',
      registers,
      collect() {
        this.reset();
        this.inc(sources.auditDropped());
      },
    });
    this.streamsOpened = new Counter({
      name: 'postern_streams_opened_total',
      help: 'Streams the server opened on the agent\'s tunnels (one per request).',
      registers,
    });
    this.duration = new Histogram({
      name: 'postern_request_duration_seconds',
      help: 'Requests from arrival at the agent to their end, by outcome: ok (the tool answered, any status) or the Postern error code.',
      labelNames: ['outcome'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.errors = new Counter({
      name: 'postern_errors_total',
      help: 'Requests that ended in a Postern error, by error code (forbidden_by_agent, upstream_unreachable, …).',
      labelNames: ['error'],
      registers,
    });
    this.denials = new Counter({
      name: 'postern_policy_denials_total',
      help: 'Requests refused by the agent\'s policy (confinement to TOOL_URL, POSTERN_ALLOW rules).',
      registers,
    });
    this.requestBytes = new Counter({
      name: 'postern_request_bytes_total',
      help: 'Request body bytes sent to the tool.',
      registers,
    });
    this.responseBytes = new Counter({
      name: 'postern_response_bytes_total',
      help: 'Response body bytes sent back through the tunnel.',
      registers,
    });
    this.rtt = new Histogram({
      name: 'postern_heartbeat_rtt_seconds',
      help: 'Round trips of the agent\'s PINGs to the server (heartbeats and the probes that ride with data, so queueing shows).',
      buckets: RTT_BUCKETS,
      registers,
    });
    this.okDuration = this.duration.labels('ok');
  }

  streamOpened(): void {
    this.streamsOpened.inc();
  }

  rttSample(ms: number): void {
    this.rtt.observe(ms / 1000);
  }

  record(event: AuditEvent): void {
    if (event.requestBytes > 0) this.requestBytes.inc(event.requestBytes);
    if (event.responseBytes > 0) this.responseBytes.inc(event.responseBytes);
    const seconds = event.durationMs / 1000;
    if (event.decision === 'denied') {
      this.denials.inc();
    } else if (event.error === undefined) {
      this.okDuration.observe(seconds);
      return;
    }
    const outcome = outcomeLabel(event.error ?? ErrorCodes.FORBIDDEN_BY_AGENT);
    this.duration.observe({ outcome }, seconds);
    this.errors.inc({ error: outcome });
  }

  text(): Promise<string> {
    return exposition(this.registry);
  }
}
