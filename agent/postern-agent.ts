import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { AgentConfig } from './agent-config.js';
import { METRICS_CONTENT_TYPE } from '../telemetry/metrics-kit.js';
import { AgentMetrics } from './agent-metrics.js';
import { AuditLog } from './audit-log.js';
import { ConnectProxyAgent } from './egress-proxy.js';
import { ToolRunner } from './tool-runner.js';
import { TunnelConnector } from './tunnel-connector.js';
import { SOFTWARE, VERSION } from '../protocol/version.js';

// See egress-proxy.ts: keeps Node's bundled undici out of the agent.
const { createServer } = process.getBuiltinModule('node:http');

/** The agent's own view, served at `GET /status` on POSTERN_STATUS_PORT. */
export interface AgentStatus {
  version: string;
  clientId: string;
  /** TOOL_URL's origin and path (never credentials). */
  tool: string;
  ready: boolean;
  connections: {
    state: string;
    connectionId: string | null;
    connectedSince: string | null;
    rttMs: number | null;
    streams: number;
    reconnects: number;
    lastError: string | null;
  }[];
  inFlight: number;
  requests: number;
  policyDenials: number;
  upstreamErrors: number;
  lastError: string | null;
  /** Audit lines dropped because their destination could not keep up. */
  auditDropped: number;
}

/**
 * The agent: POSTERN_CONNECTIONS tunnels to the server, one tool runner, an
 * optional local status listener.
 */
export class PosternAgent {
  readonly connectors: TunnelConnector[];
  readonly runner: ToolRunner;
  readonly audit: AuditLog;
  readonly metrics: AgentMetrics;
  private statusServer: Server | undefined;

  constructor(
    readonly config: AgentConfig,
    private readonly logger: Logger,
    opts: { random?: () => number } = {},
  ) {
    // Opened first: a path that cannot be opened is a ConfigError at start.
    this.audit = AuditLog.open(config.audit, { clientId: config.clientId, logger });
    this.runner = new ToolRunner({
      toolUrl: config.toolUrl,
      credential: config.credential,
      policy: config.policy,
      upstreamTimeoutMs: config.upstreamTimeoutMs,
      logger,
      // Every ended request goes to the metrics and to the audit log alike.
      audit: {
        record: (event) => {
          this.metrics.record(event);
          this.audit.record(event);
        },
      },
    });
    const egress = config.egressProxy
      ? new ConnectProxyAgent(config.egressProxy, config.tunnelUrl.startsWith('wss:'))
      : undefined;
    this.connectors = Array.from(
      { length: config.connections },
      (_, i) =>
        new TunnelConnector({
          url: config.tunnelUrl,
          clientId: config.clientId,
          clientToken: config.clientToken,
          software: SOFTWARE,
          heartbeatMs: config.heartbeatMs,
          maxStreams: config.maxStreams,
          reconnectBaseMs: config.reconnectBaseMs,
          reconnectMaxMs: config.reconnectMaxMs,
          logger: logger.child({ tunnel: i }),
          ...(egress ? { agent: egress } : {}),
          onStream: (stream, head) => {
            this.metrics.streamOpened();
            this.runner.run(stream, head, this.connectors[i]?.connectionId);
          },
          onRtt: (ms) => this.metrics.rttSample(ms),
          ...(opts.random ? { random: opts.random } : {}),
        }),
    );
    this.metrics = new AgentMetrics({
      connectors: this.connectors,
      inFlight: () => this.runner.stats.inFlight,
      auditDropped: () => this.audit.dropped,
    });
  }

  /** Dials the tunnels and starts the status listener; resolves once it listens. */
  async start(): Promise<void> {
    for (const c of this.connectors) c.start();
    if (this.config.statusPort !== undefined) await this.startStatusServer(this.config.statusPort);
  }

  /** True when at least one tunnel is connected. */
  get ready(): boolean {
    return this.connectors.some((c) => c.state === 'connected');
  }

  /** Resolves when a tunnel is up (or rejects after timeoutMs). */
  async waitUntilReady(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ready) {
      if (Date.now() > deadline) throw new Error(`no tunnel up after ${timeoutMs} ms: ${this.connectors[0]?.lastError ?? 'unknown'}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  get statusPort(): number | undefined {
    return this.statusServer ? (this.statusServer.address() as AddressInfo).port : undefined;
  }

  status(): AgentStatus {
    const s = this.runner.stats;
    return {
      version: VERSION,
      clientId: this.config.clientId,
      tool: `${this.config.toolUrl.origin}${this.config.toolUrl.pathname}`,
      ready: this.ready,
      connections: this.connectors.map((c) => ({
        state: c.state,
        connectionId: c.connectionId ?? null,
        connectedSince: c.connectedSince?.toISOString() ?? null,
        rttMs: c.session ? Math.round(c.session.rttMs() * 1000) / 1000 : null,
        streams: c.session?.activeStreams ?? 0,
        reconnects: c.reconnects,
        lastError: c.lastError,
      })),
      inFlight: s.inFlight,
      requests: s.requests,
      policyDenials: s.denials,
      upstreamErrors: s.upstreamErrors,
      lastError: s.lastError,
      auditDropped: this.audit.dropped,
    };
  }

  private startStatusServer(port: number): Promise<void> {
    const server = createServer((req, res) => {
      const reply = (code: number, text: string, type: string): void => {
        res.writeHead(code, { 'content-type': type, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
        res.end(text);
      };
      const send = (code: number, body: unknown): void => reply(code, JSON.stringify(body), 'application/json');
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, { error: 'method_not_allowed' });
      if (path === '/healthz') return send(200, { ok: true });
      if (path === '/readyz') return send(this.ready ? 200 : 503, { ready: this.ready });
      if (path === '/metrics') {
        void this.metrics.text().then((text) => reply(200, text, METRICS_CONTENT_TYPE));
        return;
      }
      if (path === '/status') {
        void this.runner.probe().then((tool) => send(200, { ...this.status(), toolReachable: tool }));
        return;
      }
      send(404, { error: 'not_found' });
    });
    this.statusServer = server;
    // Loopback by default: the status port is for the host's own monitoring
    // (POSTERN_STATUS_HOST opens it to a pod's probes and Prometheus).
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, this.config.statusHost, () => {
        this.logger.info({ statusPort: this.statusPort, statusHost: this.config.statusHost }, 'agent status listening');
        resolve();
      });
    });
  }

  /**
   * Graceful shutdown (SIGTERM): every tunnel drains (see
   * TunnelConnector.drain) within `timeoutMs`, then the agent stops.
   */
  async drain(timeoutMs = this.config.drainTimeoutMs): Promise<void> {
    await Promise.all(this.connectors.map((c) => c.drain(timeoutMs)));
    await this.stop();
  }

  async stop(): Promise<void> {
    for (const c of this.connectors) c.stop();
    await new Promise<void>((r) => (this.statusServer ? this.statusServer.close(() => r()) : r()));
    await this.runner.close();
    // Last: the streams the stops above reset still get their lines.
    await this.audit.close();
  }
}
