import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { ErrorCodeInfo } from '../protocol/error-codes.js';
import { VERSION } from '../protocol/version.js';

/**
 * What the server's and the agent's metrics share. Each server or agent
 * instance has its own Registry (tests run several in one process); Node's
 * process metrics (CPU, memory, event-loop lag, GC) are per process, so
 * they live in one registry made on first use and are appended to every
 * scrape.
 */
let processMetrics: Registry | undefined;

function processRegistry(): Registry {
  if (!processMetrics) {
    processMetrics = new Registry();
    // Includes postern_nodejs_eventloop_lag_seconds and its percentiles.
    collectDefaultMetrics({ register: processMetrics, prefix: 'postern_' });
  }
  return processMetrics;
}

/** Prometheus text exposition format 0.0.4. */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Request durations: 1 ms (a refusal) to 5 min (POSTERN_STREAM_IDLE_TIMEOUT_MS's default). */
export const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/** Round trips on a tunnel: loopback (0.1 ms) to a bad intercontinental path with a queue (5 s). */
export const RTT_BUCKETS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** The `outcome` label of a request: `ok`, or the Postern error it ended with (a bounded set: docs/errors.md). */
export function outcomeLabel(error: ErrorCodeInfo | string | undefined): string {
  if (error === undefined) return 'ok';
  return typeof error === 'string' ? error : error.error;
}

/** A new registry for one server or agent, with its `postern_info` line. */
export function instanceRegistry(role: 'server' | 'agent'): Registry {
  const registry = new Registry();
  new Gauge({
    name: 'postern_info',
    help: 'Always 1; the labels say which Postern this is.',
    labelNames: ['role', 'version'],
    registers: [registry],
  }).set({ role, version: VERSION }, 1);
  return registry;
}

/** The instance's metrics followed by the process's, as one exposition. */
export async function exposition(registry: Registry): Promise<string> {
  const [own, proc] = await Promise.all([registry.metrics(), processRegistry().metrics()]);
  return `${own}\n${proc}`;
}
