import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Calls the server's admin API for the CLI. Errors carry an exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/** Exit codes `postern status` and the client commands use (monitoring reads them). */
export const ExitCodes = Object.freeze({
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  NO_LIVE_AGENT: 3,
  SERVER_UNREACHABLE: 4,
  UNAUTHORIZED: 5,
});

/**
 * The admin token a server on this machine saved in its data dir
 * (`$POSTERN_DATA_DIR/admin-token`, default ./data), for the CLI run beside
 * it (`docker exec postern-server node dist/cli/postern.js client list`).
 * Only for a server on loopback: the token of the local server must never
 * be sent to whatever host --server names.
 */
export function savedAdminToken(server: string, env: NodeJS.ProcessEnv): string | undefined {
  let host: string;
  try {
    host = new URL(server).hostname;
  } catch {
    return undefined;
  }
  if (host !== '127.0.0.1' && host !== 'localhost' && host !== '[::1]') return undefined;
  try {
    const token = readFileSync(join(env.POSTERN_DATA_DIR || './data', 'admin-token'), 'utf8').trim();
    return token || undefined;
  } catch {
    return undefined;
  }
}

export interface AdminTarget {
  server: string;
  adminToken: string;
}

export async function adminRequest<T>(target: AdminTarget, method: string, path: string, body?: unknown): Promise<T> {
  const url = new URL(path, target.server.endsWith('/') ? target.server : `${target.server}/`);
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers: {
        authorization: `Bearer ${target.adminToken}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
    throw new CliError(`cannot reach the server at ${target.server} (${cause}); check --server / POSTERN_SERVER`, ExitCodes.SERVER_UNREACHABLE);
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (res.status === 401) {
    throw new CliError('the server refused the admin token (401); check --admin-token / POSTERN_ADMIN_TOKEN', ExitCodes.UNAUTHORIZED);
  }
  if (!res.ok) {
    const msg = (json as { message?: string } | undefined)?.message ?? text.slice(0, 200);
    throw new CliError(`server answered ${res.status}: ${msg}`, ExitCodes.FAILURE);
  }
  return json as T;
}
