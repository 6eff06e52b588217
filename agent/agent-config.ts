import { isIP } from 'node:net';
import { ConfigError } from '../protocol/tunnel-error.js';
import { Defaults } from '../protocol/handshake.js';
import { loadAllowPolicy, type AllowPolicy } from './allow-policy.js';
import { auditConfigFromEnv, type AuditConfig } from './audit-log.js';
import { credentialFor, type Credential } from './credentials.js';
import { proxyFor } from './egress-proxy.js';
import { parseInteger } from '../protocol/config-values.js';

/** What `postern agent` runs with, parsed and checked. */
export interface AgentConfig {
  clientId: string;
  /** Never logged. */
  clientToken: string;
  /** `ws(s)://host:port/v1/tunnel`, derived from PROXY_URL. */
  tunnelUrl: string;
  /** HTTP CONNECT proxy for the tunnel (HTTPS_PROXY / NO_PROXY); may hold credentials: never log. */
  egressProxy: URL | undefined;
  toolUrl: URL;
  /** Undefined when TOOL_SECRET is unset. */
  credential: Credential | undefined;
  policy: AllowPolicy | undefined;
  /** Local status listener on 127.0.0.1; undefined = off. */
  statusPort: number | undefined;
  /** POSTERN_STATUS_HOST: the status listener's address. Default 127.0.0.1 (0.0.0.0 in a pod, for probes and scrapes). */
  statusHost: string;
  /**
   * Tunnels to keep open. Default 2: a tunnel lost to a NAT timeout or a
   * server drain leaves the other serving while it is redialled.
   */
  connections: number;
  heartbeatMs: number;
  reconnectBaseMs: number;
  reconnectMaxMs: number;
  /** Time the tool has to send its response head. Default 60000. */
  upstreamTimeoutMs: number;
  /** Streams accepted at once per tunnel. */
  maxStreams: number;
  /** On SIGTERM, how long requests in flight get to finish. Default 30000. */
  drainTimeoutMs: number;
  /** POSTERN_AUDIT_LOG / POSTERN_AUDIT_QUERY: where the audit log goes (default stdout), and whether it shows query strings. */
  audit: AuditConfig;
}

/** Environment variables the agent reads, with what each means (for --help and docs). */
export const agentEnvHelp: [string, string][] = [
  ['CLIENT_ID', 'client id from `postern client create` (required)'],
  ['CLIENT_TOKEN', 'client token from `postern client create` (required)'],
  ['PROXY_URL', "the server's public base URL, http(s)://host:port (required)"],
  ['TOOL_URL', 'base URL of the tool; requests never leave it (required)'],
  ['TOOL_SECRET', "the tool's credential, added to every request"],
  ['TOOL_TYPE', 'how TOOL_SECRET is sent: github, gitlab, bitbucket, azuredevops, jenkins, bearer, header:<Name> (default bearer)'],
  ['HTTPS_PROXY / NO_PROXY', 'HTTP CONNECT proxy for the tunnel connection, and hosts that bypass it'],
  ['NODE_EXTRA_CA_CERTS', 'extra CA certificates (PEM file) trusted for the server (wss) and the tool (https)'],
  ['POSTERN_ALLOW', 'allow rules: a JSON file path, preset:<gitlab|github|bitbucket|azuredevops|jenkins>, or preset (that of TOOL_TYPE); when set, everything else is denied'],
  ['POSTERN_STATUS_PORT', 'status listener port (GET /status, /metrics, /healthz, /readyz); off when unset'],
  ['POSTERN_STATUS_HOST', 'status listener address (default 127.0.0.1; 0.0.0.0 in a container or pod so probes and Prometheus reach it)'],
  ['POSTERN_CONNECTIONS', 'tunnels to keep open (default 2)'],
  ['POSTERN_HEARTBEAT_MS', 'heartbeat interval in ms (default 10000)'],
  ['POSTERN_RECONNECT_BASE_MS', 'first reconnect delay ceiling in ms (default 500)'],
  ['POSTERN_RECONNECT_MAX_MS', 'largest reconnect delay in ms (default 30000)'],
  ['POSTERN_UPSTREAM_TIMEOUT_MS', 'time the tool has to answer with a response head, in ms (default 60000)'],
  ['POSTERN_DRAIN_TIMEOUT_MS', 'on SIGTERM, how long requests in flight get to finish, in ms (default 30000)'],
  ['POSTERN_AUDIT_LOG', 'audit log (one JSON line per request): stdout (default), off, or a file path (appended, created 0600)'],
  ['POSTERN_AUDIT_QUERY', '1 to include query strings in the audit log (default 0: they can carry tokens)'],
];

function statusHostFrom(env: NodeJS.ProcessEnv): string {
  const raw = env.POSTERN_STATUS_HOST?.trim();
  if (!raw) return '127.0.0.1';
  if (isIP(raw) === 0 && raw !== 'localhost') {
    throw new ConfigError('POSTERN_STATUS_HOST', `expected an IP address to listen on (e.g. 127.0.0.1 or 0.0.0.0), got ${JSON.stringify(raw)}`);
  }
  return raw;
}

function int(env: NodeJS.ProcessEnv, name: string, def: number, min: number, max: number): number {
  const raw = env[name];
  return raw === undefined || raw === '' ? def : parseInteger(name, raw, min, max);
}

/** A URL setting as error messages may show it: a `user:password@` part is blanked, even in a value that does not parse. */
function shown(raw: string): string {
  // Up to the last "@": a password may hold an unencoded "@" or "/".
  return JSON.stringify(raw.replace(/^([a-zA-Z][\w+.-]*:\/\/)?.*@/, '$1[redacted]@'));
}

/**
 * TOOL_URL as the agent accepts it (also for `postern policy test`, which
 * must not accept what the agent would refuse). Errors never show a
 * password (see shown()).
 */
export function parseToolUrl(raw: string, setting: string): URL {
  let toolUrl: URL;
  try {
    toolUrl = new URL(raw);
  } catch {
    throw new ConfigError(setting, `${shown(raw)} is not a URL; expected e.g. https://gitlab.internal`);
  }
  if (toolUrl.protocol !== 'http:' && toolUrl.protocol !== 'https:') {
    throw new ConfigError(setting, `scheme ${toolUrl.protocol} is not supported; use http or https`);
  }
  if (toolUrl.username || toolUrl.password) {
    throw new ConfigError(setting, 'must not contain credentials; put the credential in TOOL_SECRET');
  }
  if (toolUrl.search || toolUrl.hash) throw new ConfigError(setting, 'must not contain a query or fragment');
  return toolUrl;
}

function required(env: NodeJS.ProcessEnv, name: string, hint: string): string {
  const v = env[name]?.trim();
  if (!v) throw new ConfigError(name, `is required: ${hint}`);
  return v;
}

/** Parses and checks the agent's environment. Throws ConfigError naming the setting. */
export function loadAgentConfig(env: NodeJS.ProcessEnv): AgentConfig {
  const clientId = required(env, 'CLIENT_ID', 'set it to the clientId printed by `postern client create`');
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(clientId)) {
    throw new ConfigError('CLIENT_ID', 'may hold only letters, digits, "_" and "-" (check for stray quotes or spaces)');
  }
  const clientToken = required(env, 'CLIENT_TOKEN', 'set it to the clientToken printed by `postern client create`');
  if (/\s/.test(clientToken)) throw new ConfigError('CLIENT_TOKEN', 'contains white space (check for stray quotes or a line break)');

  const proxyRaw = required(env, 'PROXY_URL', "set it to the server's public URL, e.g. https://postern.example.com");
  let proxy: URL;
  try {
    proxy = new URL(proxyRaw);
  } catch {
    throw new ConfigError('PROXY_URL', `${shown(proxyRaw)} is not a URL; expected e.g. https://postern.example.com`);
  }
  const schemes: Record<string, string> = { 'http:': 'ws:', 'https:': 'wss:', 'ws:': 'ws:', 'wss:': 'wss:' };
  const wsScheme = schemes[proxy.protocol];
  if (!wsScheme) throw new ConfigError('PROXY_URL', `scheme ${proxy.protocol} is not supported; use http(s) or ws(s)`);
  const base = proxy.pathname.replace(/\/+$/, '');
  const tunnelUrl = `${wsScheme}//${proxy.host}${base}/v1/tunnel`;

  const toolUrl = parseToolUrl(required(env, 'TOOL_URL', 'set it to the base URL of your tool, e.g. https://gitlab.internal'), 'TOOL_URL');

  const secret = env.TOOL_SECRET;
  const toolType = env.TOOL_TYPE?.trim();
  let credential: Credential | undefined;
  if (secret) credential = credentialFor(toolType || 'bearer', secret);
  else if (toolType) credentialFor(toolType, 'x:x'); // validates TOOL_TYPE even without a secret

  const allow = env.POSTERN_ALLOW?.trim();
  const statusRaw = env.POSTERN_STATUS_PORT;
  return {
    clientId,
    clientToken,
    tunnelUrl,
    egressProxy: proxyFor(new URL(tunnelUrl), env),
    toolUrl,
    credential,
    policy: allow ? loadAllowPolicy(allow, toolType) : undefined,
    statusPort: statusRaw ? int(env, 'POSTERN_STATUS_PORT', 0, 0, 65535) : undefined,
    statusHost: statusHostFrom(env),
    connections: int(env, 'POSTERN_CONNECTIONS', 2, 1, 16),
    heartbeatMs: int(env, 'POSTERN_HEARTBEAT_MS', Defaults.heartbeatMs, 100, 600_000),
    reconnectBaseMs: int(env, 'POSTERN_RECONNECT_BASE_MS', 500, 1, 600_000),
    reconnectMaxMs: int(env, 'POSTERN_RECONNECT_MAX_MS', 30_000, 1, 3_600_000),
    upstreamTimeoutMs: int(env, 'POSTERN_UPSTREAM_TIMEOUT_MS', 60_000, 100, 3_600_000),
    maxStreams: Defaults.maxStreams,
    drainTimeoutMs: int(env, 'POSTERN_DRAIN_TIMEOUT_MS', 30_000, 0, 3_600_000),
    audit: auditConfigFromEnv(env),
  };
}
