import { Counter, Histogram, type Registry } from 'prom-client';
import type { ErrorCodeInfo } from '../protocol/error-codes.js';
import { DURATION_BUCKETS, outcomeLabel, RTT_BUCKETS } from './metrics-kit.js';

/** How each side describes the families both have (same names, labels and buckets). */
export interface RequestMetricsHelp {
  streamsOpened: string;
  duration: string;
  errors: string;
  requestBytes: string;
  responseBytes: string;
  rtt: string;
}

/**
 * The request families the server and the agent share, so a dashboard can
 * put the two sides of one tunnel next to each other: streams opened,
 * duration by outcome, errors by code, body bytes both ways, and the round
 * trips of heartbeats. The success path's series is bound once: no label
 * lookup per request.
 */
export class RequestMetrics {
  private readonly streamsOpened: Counter;
  private readonly duration: Histogram<'outcome'>;
  private readonly errors: Counter<'error'>;
  private readonly requestBytes: Counter;
  private readonly responseBytes: Counter;
  private readonly rtt: Histogram;
  private readonly okDuration: { observe(v: number): void };

  constructor(registry: Registry, help: RequestMetricsHelp) {
    const registers = [registry];
    this.streamsOpened = new Counter({ name: 'postern_streams_opened_total', help: help.streamsOpened, registers });
    this.duration = new Histogram({
      name: 'postern_request_duration_seconds',
      help: help.duration,
      labelNames: ['outcome'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.errors = new Counter({ name: 'postern_errors_total', help: help.errors, labelNames: ['error'], registers });
    this.requestBytes = new Counter({ name: 'postern_request_bytes_total', help: help.requestBytes, registers });
    this.responseBytes = new Counter({ name: 'postern_response_bytes_total', help: help.responseBytes, registers });
    this.rtt = new Histogram({ name: 'postern_heartbeat_rtt_seconds', help: help.rtt, buckets: RTT_BUCKETS, registers });
    this.okDuration = this.duration.labels('ok');
  }

  streamOpened(): void {
    this.streamsOpened.inc();
  }

  rttSample(ms: number): void {
    this.rtt.observe(ms / 1000);
  }

  /** One request ended: `error` undefined when it succeeded (the tool answered, any status). */
  ended(error: ErrorCodeInfo | string | undefined, seconds: number, requestBytes: number, responseBytes: number): void {
    if (requestBytes > 0) this.requestBytes.inc(requestBytes);
    if (responseBytes > 0) this.responseBytes.inc(responseBytes);
    if (error === undefined) {
      this.okDuration.observe(seconds);
      return;
    }
    const outcome = outcomeLabel(error);
    this.duration.observe({ outcome }, seconds);
    this.errors.inc({ error: outcome });
  }
}
