import { isIP } from 'node:net';
import { ConfigError } from '../protocol/tunnel-error.js';
import { Defaults } from '../protocol/handshake.js';
import { parseBoolean, parseInteger } from '../protocol/config-values.js';

/** Everything `postern server` can be told. Units are in the names. */
export interface ServerConfig {
  /** Bind address of both listeners. Default 0.0.0.0. */
  host: string;
  /** Public listener (agents). Default 8080; 0 picks a free port. */
  port: number;
  /** Private listener (ingress, admin API). Default 8081; 0 picks a free port. */
  ingressPort: number;
  /** Embedded store directory. Default ./data. */
  dataDir: string;
  /** Admin API bearer token; generated and saved in dataDir when unset. */
  adminToken: string | undefined;
  /** How long an ingress request waits for an agent before 503. Default 5000. */
  agentWaitMs: number;
  /** Heartbeat interval offered to agents. Default 10000. */
  heartbeatMs: number;
  /** Time an agent has to send HELLO after the upgrade. Default 10000. */
  handshakeTimeoutMs: number;
  /** Concurrent ingress requests per client before 429. Default 1024. */
  maxStreamsPerClient: number;
  /** Largest request head the ingress accepts (431 above). Default 16384. */
  maxHeaderBytes: number;
  /** Largest request body (413 above); 0 = no limit. Default 0. */
  maxBodyBytes: number;
  /** Time to wait for the agent's response head (504 after). Default 120000. */
  responseTimeoutMs: number;
  /**
   * A stream on which no body byte moved either way for this long is reset:
   * 504 before the response head, cut off after it. 0 = never. Default 300000.
   */
  streamIdleTimeoutMs: number;
  /** How long draining on shutdown lets in-flight streams finish. Default 30000. */
  drainTimeoutMs: number;
  /** Largest tunnel frame accepted. Default 1 MiB. */
  maxFrameSize: number;
  /** PEM certificate (chain) file: both listeners serve HTTPS (and wss) when set with tlsKey. */
  tlsCert: string | undefined;
  /** PEM private key file of tlsCert. */
  tlsKey: string | undefined;
  /**
   * Reverse proxies whose `X-Forwarded-For` is believed, as a comma-separated
   * list of addresses or CIDR ranges (or `loopback`, `linklocal`,
   * `uniquelocal`). Unset: the TCP peer is the source address. Default unset.
   */
  trustProxy: string | undefined;
  /**
   * Time a connection has to deliver a request head (request line and
   * headers), counted from its first byte (or from the TCP accept for a new
   * connection); also the TLS handshake's time limit. Default 20000.
   */
  headersTimeoutMs: number;
  /** Failed authentications per source address within authFailureWindowMs before it is refused (429); 0 = never. Default 30. */
  authFailureLimit: number;
  /** Counting window of authFailureLimit. Default 60000. */
  authFailureWindowMs: number;
  /** How long an address over authFailureLimit is refused. Default 60000. */
  authBlockMs: number;
  /** Every ingress request must carry an API key of its client, also for clients without keys (then: none passes). Default false. */
  requireApiKeys: boolean;
}

export const serverDefaults: ServerConfig = Object.freeze({
  host: '0.0.0.0',
  port: 8080,
  ingressPort: 8081,
  dataDir: './data',
  adminToken: undefined,
  agentWaitMs: 5000,
  heartbeatMs: Defaults.heartbeatMs,
  handshakeTimeoutMs: 10_000,
  maxStreamsPerClient: 1024,
  maxHeaderBytes: 16 * 1024,
  maxBodyBytes: 0,
  responseTimeoutMs: 120_000,
  streamIdleTimeoutMs: 300_000,
  drainTimeoutMs: 30_000,
  maxFrameSize: Defaults.maxFrameSize,
  tlsCert: undefined,
  tlsKey: undefined,
  trustProxy: undefined,
  headersTimeoutMs: 20_000,
  authFailureLimit: 30,
  authFailureWindowMs: 60_000,
  authBlockMs: 60_000,
  requireApiKeys: false,
});

/** Environment variable of each setting (the flag is its kebab-case twin). */
export const serverEnvNames: Record<keyof ServerConfig, string> = {
  host: 'POSTERN_HOST',
  port: 'POSTERN_PORT',
  ingressPort: 'POSTERN_INGRESS_PORT',
  dataDir: 'POSTERN_DATA_DIR',
  adminToken: 'POSTERN_ADMIN_TOKEN',
  agentWaitMs: 'POSTERN_AGENT_WAIT_MS',
  heartbeatMs: 'POSTERN_HEARTBEAT_MS',
  handshakeTimeoutMs: 'POSTERN_HANDSHAKE_TIMEOUT_MS',
  maxStreamsPerClient: 'POSTERN_MAX_STREAMS_PER_CLIENT',
  maxHeaderBytes: 'POSTERN_MAX_HEADER_BYTES',
  maxBodyBytes: 'POSTERN_MAX_BODY_BYTES',
  responseTimeoutMs: 'POSTERN_RESPONSE_TIMEOUT_MS',
  streamIdleTimeoutMs: 'POSTERN_STREAM_IDLE_TIMEOUT_MS',
  drainTimeoutMs: 'POSTERN_DRAIN_TIMEOUT_MS',
  maxFrameSize: 'POSTERN_MAX_FRAME_SIZE',
  tlsCert: 'POSTERN_TLS_CERT',
  tlsKey: 'POSTERN_TLS_KEY',
  trustProxy: 'POSTERN_TRUST_PROXY',
  headersTimeoutMs: 'POSTERN_HEADERS_TIMEOUT_MS',
  authFailureLimit: 'POSTERN_AUTH_FAILURE_LIMIT',
  authFailureWindowMs: 'POSTERN_AUTH_FAILURE_WINDOW_MS',
  authBlockMs: 'POSTERN_AUTH_BLOCK_MS',
  requireApiKeys: 'POSTERN_REQUIRE_API_KEYS',
};

const ranges: Partial<Record<keyof ServerConfig, [number, number]>> = {
  port: [0, 65535],
  ingressPort: [0, 65535],
  agentWaitMs: [0, 600_000],
  heartbeatMs: [100, 600_000],
  handshakeTimeoutMs: [100, 600_000],
  maxStreamsPerClient: [1, 1_000_000],
  maxHeaderBytes: [1024, 1024 * 1024],
  maxBodyBytes: [0, Number.MAX_SAFE_INTEGER],
  responseTimeoutMs: [100, 3_600_000],
  streamIdleTimeoutMs: [0, 86_400_000],
  drainTimeoutMs: [0, 3_600_000],
  maxFrameSize: [64 * 1024, 64 * 1024 * 1024],
  headersTimeoutMs: [100, 600_000],
  authFailureLimit: [0, 1_000_000],
  authFailureWindowMs: [100, 86_400_000],
  authBlockMs: [100, 86_400_000],
};

const booleans: ReadonlySet<keyof ServerConfig> = new Set(['requireApiKeys']);

/**
 * Builds the server config from flags (camelCase keys, already parsed) over
 * environment variables over defaults. Throws ConfigError naming the setting.
 */
export function loadServerConfig(
  env: NodeJS.ProcessEnv,
  flags: Partial<Record<keyof ServerConfig, string | undefined>> = {},
): ServerConfig {
  const out: Record<string, unknown> = { ...serverDefaults };
  for (const key of Object.keys(serverEnvNames) as (keyof ServerConfig)[]) {
    const envName = serverEnvNames[key];
    const raw = flags[key] ?? env[envName];
    if (raw === undefined || raw === '') continue;
    const label = flags[key] !== undefined ? `--${kebab(key)}` : envName;
    const range = ranges[key];
    if (range) out[key] = parseInteger(label, raw, range[0], range[1]);
    else if (booleans.has(key)) out[key] = parseBoolean(label, raw);
    else out[key] = raw;
  }
  if (out.trustProxy !== undefined) checkTrustProxy(out.trustProxy as string);
  return out as unknown as ServerConfig;
}

const PROXY_KEYWORDS = new Set(['loopback', 'linklocal', 'uniquelocal']);

/**
 * Only explicit addresses: `true` (believe every X-Forwarded-For) would let
 * any caller pick the address it is rate-limited and logged under.
 */
function checkTrustProxy(raw: string): void {
  for (const entry of raw.split(',').map((e) => e.trim())) {
    const [addr = '', bits, extra] = entry.split('/');
    const family = isIP(addr);
    const bitsOk = bits === undefined || (/^\d+$/.test(bits) && Number(bits) <= (family === 6 ? 128 : 32));
    if (PROXY_KEYWORDS.has(entry) || (family !== 0 && bitsOk && extra === undefined)) continue;
    throw new ConfigError(
      'POSTERN_TRUST_PROXY',
      `${JSON.stringify(entry)} is not an address, a CIDR range or one of loopback, linklocal, uniquelocal`,
    );
  }
}

function kebab(s: string): string {
  return s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
