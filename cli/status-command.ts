import type { AgentStatus } from '../agent/postern-agent.js';
import type { ServerStatus } from '../server/admin-api.js';
import { adminRequest, CliError, ExitCodes, type AdminTarget } from './admin-client.js';
import { formatAgentStatus, formatServerStatus, type ToolReachability } from './status-table.js';

export interface StatusOptions {
  json?: boolean;
  /** An agent's status URL (`http://127.0.0.1:<POSTERN_STATUS_PORT>`) instead of the server. */
  agent?: string;
  /** Redraw every `intervalMs` until interrupted. */
  watch?: boolean;
  intervalMs?: number;
}

/** One look: what to print and the exit code it means. */
interface Reading {
  text: string;
  code: number;
}

/**
 * `postern status`: prints the server's view (or one agent's with --agent)
 * and returns the exit code monitoring reads: 0 healthy; 3 a named client
 * has no live agent (or the agent has no tunnel up); 4 server or agent
 * unreachable; 5 admin token refused. With --watch it redraws until
 * interrupted (Ctrl-C exits 0), and a failed look is shown, not fatal.
 */
export async function statusCommand(target: AdminTarget | undefined, clientIds: string[], opts: StatusOptions): Promise<number> {
  if (!opts.agent && !target) throw new CliError('status needs --server/POSTERN_SERVER and --admin-token/POSTERN_ADMIN_TOKEN', ExitCodes.USAGE);
  const look = (): Promise<Reading> => (opts.agent ? agentReading(opts.agent, opts) : serverReading(target!, clientIds, opts));
  if (!opts.watch) {
    const r = await look();
    process.stdout.write(`${r.text}\n`);
    return r.code;
  }
  return watch(look, opts.intervalMs ?? 2_000, opts.json === true);
}

async function serverReading(target: AdminTarget, clientIds: string[], opts: StatusOptions): Promise<Reading> {
  const status = await adminRequest<ServerStatus>(target, 'GET', 'v1/status');
  const shown = clientIds.length > 0 ? { ...status, clients: status.clients.filter((c) => clientIds.includes(c.clientId)) } : status;
  const text = opts.json ? JSON.stringify(shown, null, 2) : formatServerStatus(shown);
  const unknown = clientIds.filter((id) => !shown.clients.some((c) => c.clientId === id));
  if (unknown.length > 0) {
    return { text: `${text}\npostern: no client ${unknown.join(', ')} on this server`, code: ExitCodes.NO_LIVE_AGENT };
  }
  // Only named clients decide the code (`shown` holds just those then): a server always has some customer offline.
  const offline = clientIds.length > 0 && shown.clients.some((c) => !c.connected);
  return { text, code: offline ? ExitCodes.NO_LIVE_AGENT : ExitCodes.OK };
}

async function agentReading(base: string, opts: StatusOptions): Promise<Reading> {
  let res: Response;
  try {
    res = await fetch(new URL('/status', base), { signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
    throw new CliError(`cannot reach the agent at ${base} (${cause}); is POSTERN_STATUS_PORT set on it?`, ExitCodes.SERVER_UNREACHABLE);
  }
  const body = await res.text();
  let s: (AgentStatus & { toolReachable?: ToolReachability }) | undefined;
  try {
    s = res.ok ? (JSON.parse(body) as AgentStatus) : undefined;
  } catch {
    s = undefined;
  }
  if (!s || typeof s.ready !== 'boolean' || !Array.isArray(s.connections)) {
    throw new CliError(
      `${base} did not answer like a Postern agent (HTTP ${res.status}); point --agent at the agent's POSTERN_STATUS_PORT`,
      ExitCodes.FAILURE,
    );
  }
  return {
    text: opts.json ? JSON.stringify(s, null, 2) : formatAgentStatus(s),
    code: s.ready ? ExitCodes.OK : ExitCodes.NO_LIVE_AGENT,
  };
}

/**
 * Redraws until SIGINT/SIGTERM. On a terminal the screen is cleared and
 * the table drawn at the top; piped, each look is appended (JSON: one
 * document per line, for `jq`).
 */
async function watch(look: () => Promise<Reading>, intervalMs: number, json: boolean): Promise<number> {
  const tty = process.stdout.isTTY === true && !json;
  let stopped = false;
  let wake: (() => void) | undefined;
  const stop = (): void => {
    stopped = true;
    wake?.();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  while (!stopped) {
    let text: string;
    try {
      const r = await look();
      text = json ? JSON.stringify(JSON.parse(r.text)) : r.text;
    } catch (err) {
      if (!(err instanceof CliError) || err.exitCode === ExitCodes.USAGE) throw err;
      text = `postern: ${err.message}`;
    }
    const stamp = `every ${intervalMs / 1000}s, ${new Date().toLocaleTimeString()} (Ctrl-C to stop)`;
    if (tty) process.stdout.write(`\x1b[H\x1b[2J${stamp}\n\n${text}\n`);
    else process.stdout.write(json ? `${text}\n` : `${stamp}\n${text}\n\n`);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, intervalMs);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
  return ExitCodes.OK;
}
