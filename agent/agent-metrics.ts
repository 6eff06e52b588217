import { Counter, Gauge, type Registry } from 'prom-client';
import { exposition, instanceRegistry } from '../telemetry/metrics-kit.js';
import { RequestMetrics } from '../telemetry/request-metrics.js';
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
  private readonly denials: Counter;
  private readonly requests: RequestMetrics;

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
    this.denials = new Counter({
      name: 'postern_policy_denials_total',
      help: "Requests refused by the agent's policy (confinement to TOOL_URL, POSTERN_ALLOW rules).",
      registers,
    });
    this.requests = new RequestMetrics(this.registry, {
      streamsOpened: "Streams the server opened on the agent's tunnels (one per request).",
      duration:
        'Requests from arrival at the agent to their end, by outcome: ok (the tool answered, any status) or the Postern error code.',
      errors: 'Requests that ended in a Postern error, by error code (forbidden_by_agent, upstream_unreachable, …).',
      requestBytes: 'Request body bytes sent to the tool.',
      responseBytes: 'Response body bytes sent back through the tunnel.',
      rtt: "Round trips of the agent's PINGs to the server (heartbeats and the probes that ride with data, so queueing shows).",
    });
  }

  streamOpened(): void {
    this.requests.streamOpened();
  }

  rttSample(ms: number): void {
    this.requests.rttSample(ms);
  }

  record(event: AuditEvent): void {
    if (event.decision === 'denied') this.denials.inc();
    // A denial carries its error (forbidden_by_agent) like any failure.
    this.requests.ended(event.error, event.durationMs / 1000, event.requestBytes, event.responseBytes);
  }

  text(): Promise<string> {
    return exposition(this.registry);
  }
}
