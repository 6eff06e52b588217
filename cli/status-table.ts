import type { ServerStatus } from '../server/admin-api.js';
import type { AgentStatus } from '../agent/postern-agent.js';

/** Renders rows as a fixed-width text table. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = -1;
  do {
    v /= 1024;
    u++;
  } while (v >= 1024 && u < units.length - 1);
  return `${v.toFixed(1)} ${units[u]}`;
}

function since(iso: string, now: number): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`;
  return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}

/**
 * `postern status`: one row per connection, with its own open streams (a
 * client without any gets one row saying so); the counters are the client's.
 */
export function formatServerStatus(status: ServerStatus, now = Date.now()): string {
  const rows: string[][] = [];
  for (const c of status.clients) {
    const counters = [String(c.streamsInFlight), String(c.requests), String(c.errors), formatBytes(c.bytesIn), formatBytes(c.bytesOut)];
    if (c.connections.length === 0) {
      rows.push([c.clientId, c.name, 'offline', '-', '-', '-', '-', '-', '-', ...counters]);
      continue;
    }
    for (const conn of c.connections) {
      rows.push([
        c.clientId,
        c.name,
        conn.draining ? 'draining' : 'connected',
        conn.connectionId,
        String(conn.streams),
        conn.remoteAddress,
        conn.agentVersion,
        since(conn.connectedSince, now),
        `${conn.rttMs.toFixed(1)}ms`,
        ...counters,
      ]);
    }
  }
  const head = `postern ${status.version}, up ${since(status.startedAt, now)}, ${status.clients.length} client(s)`;
  if (rows.length === 0) return `${head}\n(no matching clients; create one with \`postern client create --name <name>\`)`;
  return `${head}\n${table(
    ['CLIENT', 'NAME', 'STATE', 'CONNECTION', 'STREAMS', 'REMOTE', 'AGENT', 'SINCE', 'RTT', 'INFLIGHT', 'REQUESTS', 'ERRORS', 'IN', 'OUT'],
    rows,
  )}`;
}

/** `postern status --agent URL`. */
export function formatAgentStatus(s: AgentStatus & { toolReachable?: { reachable: boolean; status?: number; error?: string } }): string {
  const tool = s.toolReachable
    ? s.toolReachable.reachable
      ? `reachable (HTTP ${s.toolReachable.status})`
      : `UNREACHABLE (${s.toolReachable.error})`
    : 'unknown';
  const head = [
    `agent ${s.version} for client ${s.clientId}: ${s.ready ? 'ready' : 'NOT READY'}`,
    `tool ${s.tool}: ${tool}`,
    `in flight ${s.inFlight}, requests ${s.requests}, policy denials ${s.policyDenials}, upstream errors ${s.upstreamErrors}`,
  ].join('\n');
  const rows = s.connections.map((c, i) => [
    String(i),
    c.state,
    c.connectionId ?? '-',
    c.rttMs === null ? '-' : `${c.rttMs.toFixed(1)}ms`,
    String(c.streams),
    String(c.reconnects),
    c.lastError ?? '-',
  ]);
  return `${head}\n${table(['TUNNEL', 'STATE', 'CONNECTION', 'RTT', 'STREAMS', 'RECONNECTS', 'LAST ERROR'], rows)}`;
}
