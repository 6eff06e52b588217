import type { ServerStatus } from '../server/admin-api.js';
import type { AgentStatus } from '../agent/postern-agent.js';
import { formatBytes } from '../server/human-units.js';
import { summarize } from '../server/server-status.js';

/** Renders rows as a fixed-width text table. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

function since(iso: string, now: number): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`;
  return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}

/**
 * A value from the server as a table cell: control characters (a client
 * name is whatever an API caller chose; an escape sequence would rewrite the
 * operator's terminal) become `?`, and long values are cut.
 */
export function cell(value: string, max = 40): string {
  // eslint-disable-next-line no-control-regex
  const clean = value.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
  return clean.length > max ? `${clean.slice(0, max - 1)}…` : clean;
}

function ms(n: number): string {
  return n < 10 ? `${n.toFixed(1)}ms` : `${Math.round(n)}ms`;
}

/**
 * `postern status`: a line about the server, a table of clients (health,
 * the last minute, totals) and a table of their tunnels. Both tables start
 * with the client id, so `grep <clientId>` finds a client's every line.
 */
export function formatServerStatus(status: ServerStatus, now = Date.now()): string {
  const clients = status.clients;
  const s = summarize(status);
  const head =
    `postern ${status.version}, up ${since(status.startedAt, now)}: ${clients.length} client(s), ` +
    `${s.connected} connected, ${s.degraded} degraded, ${s.offline} offline; ${s.connections} tunnel(s)`;
  if (clients.length === 0) return `${head}\n(no matching clients; create one with \`postern client create --name <name>\`)`;
  const clientRows = clients.map((c) => [
    c.clientId,
    cell(c.name, 24),
    c.health === 'connected' ? 'connected' : c.health.toUpperCase(),
    String(c.connections.filter((x) => !x.draining).length),
    String(c.streamsInFlight),
    String(c.requestsLastMinute),
    String(c.errorsLastMinute),
    String(c.requests),
    String(c.errors),
    formatBytes(c.bytesIn),
    formatBytes(c.bytesOut),
    c.lastError ?? '-',
  ]);
  const parts = [
    head,
    '',
    table(['CLIENT', 'NAME', 'HEALTH', 'TUNNELS', 'INFLIGHT', 'REQ/1M', 'ERR/1M', 'REQUESTS', 'ERRORS', 'IN', 'OUT', 'LAST ERROR'], clientRows),
  ];
  const connRows = clients.flatMap((c) =>
    c.connections.map((conn) => [
      c.clientId,
      conn.connectionId,
      conn.draining ? 'draining' : 'connected',
      cell(conn.agentVersion, 32),
      cell(conn.remoteAddress, 40),
      since(conn.connectedSince, now),
      ms(conn.rttMs),
      String(conn.streams),
      formatBytes(conn.bytesIn),
      formatBytes(conn.bytesOut),
    ]),
  );
  if (connRows.length > 0) {
    parts.push('', table(['CLIENT', 'CONNECTION', 'STATE', 'AGENT', 'REMOTE', 'SINCE', 'RTT', 'STREAMS', 'IN', 'OUT'], connRows));
  }
  return parts.join('\n');
}

/** Tool reachability as the agent's `/status` reports it (probed on each call). */
export interface ToolReachability {
  reachable: boolean;
  status?: number;
  error?: string;
}

/** `postern status --agent URL`: the agent's own view. */
export function formatAgentStatus(s: AgentStatus & { toolReachable?: ToolReachability }, now = Date.now()): string {
  const tool = s.toolReachable
    ? s.toolReachable.reachable
      ? `reachable (HTTP ${s.toolReachable.status})`
      : `UNREACHABLE (${cell(s.toolReachable.error ?? 'error')})`
    : 'unknown';
  const up = s.connections.filter((c) => c.state === 'connected').length;
  const head = [
    `agent ${s.version} for client ${s.clientId}: ${s.ready ? 'ready' : 'NOT READY'}, ${up}/${s.connections.length} tunnel(s) up`,
    `tool ${s.tool}: ${tool}`,
    `in flight ${s.inFlight}, requests ${s.requests}, policy denials ${s.policyDenials}, upstream errors ${s.upstreamErrors}` +
      (s.lastError ? ` (last: ${s.lastError})` : '') +
      (s.auditDropped > 0 ? `, audit lines dropped ${s.auditDropped}` : ''),
  ].join('\n');
  const rows = s.connections.map((c, i) => [
    String(i),
    c.state === 'connected' ? c.state : c.state.toUpperCase(),
    c.connectionId ?? '-',
    c.connectedSince ? since(c.connectedSince, now) : '-',
    c.rttMs === null ? '-' : ms(c.rttMs),
    String(c.streams),
    String(c.reconnects),
    c.lastError ? cell(c.lastError, 80) : '-',
  ]);
  return `${head}\n\n${table(['TUNNEL', 'STATE', 'CONNECTION', 'SINCE', 'RTT', 'STREAMS', 'RECONNECTS', 'LAST ERROR'], rows)}`;
}
