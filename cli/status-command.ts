import type { AgentStatus } from '../agent/postern-agent.js';
import type { ServerStatus } from '../server/admin-api.js';
import { adminRequest, CliError, ExitCodes, type AdminTarget } from './admin-client.js';
import { formatAgentStatus, formatServerStatus } from './status-table.js';

/**
 * `postern status`: prints the server's view (or one agent's with --agent)
 * and returns the exit code: 0 healthy, 3 the named client has no live
 * agent (or the agent has no tunnel), 4 unreachable, 5 unauthorized.
 */
export async function statusCommand(
  target: AdminTarget | undefined,
  clientId: string | undefined,
  opts: { json?: boolean; agent?: string },
): Promise<number> {
  if (opts.agent) {
    let res: Response;
    try {
      res = await fetch(new URL('/status', opts.agent), { signal: AbortSignal.timeout(10_000) });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
      throw new CliError(`cannot reach the agent at ${opts.agent} (${cause})`, ExitCodes.SERVER_UNREACHABLE);
    }
    const s = (await res.json()) as AgentStatus;
    process.stdout.write(opts.json ? `${JSON.stringify(s, null, 2)}\n` : `${formatAgentStatus(s)}\n`);
    return s.ready ? ExitCodes.OK : ExitCodes.NO_LIVE_AGENT;
  }
  if (!target) throw new CliError('status needs --server/POSTERN_SERVER and --admin-token/POSTERN_ADMIN_TOKEN', ExitCodes.USAGE);
  const status = await adminRequest<ServerStatus>(target, 'GET', 'v1/status');
  const shown = clientId ? { ...status, clients: status.clients.filter((c) => c.clientId === clientId) } : status;
  process.stdout.write(opts.json ? `${JSON.stringify(shown, null, 2)}\n` : `${formatServerStatus(shown)}\n`);
  if (clientId) {
    const client = shown.clients[0];
    if (!client) {
      process.stderr.write(`postern: no client ${clientId}\n`);
      return ExitCodes.NO_LIVE_AGENT;
    }
    if (!client.connected) return ExitCodes.NO_LIVE_AGENT;
  }
  return ExitCodes.OK;
}
