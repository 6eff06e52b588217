import { adminRequest, CliError, ExitCodes, type AdminTarget } from './admin-client.js';
import { table } from './status-table.js';

interface Created {
  clientId: string;
  clientToken: string;
  name: string;
  createdAt: string;
}

/**
 * The ready-made `docker run` line for an agent of this client. No
 * `--init`: the image's PID 1 is tini already. The stop timeout outlasts
 * the agent's drain (POSTERN_DRAIN_TIMEOUT_MS, 30 s).
 */
export function dockerRunLine(clientId: string, clientToken: string, proxyUrl: string): string {
  return [
    'docker run -d --name postern-agent --restart unless-stopped --stop-timeout 40 \\',
    `  -e CLIENT_ID=${clientId} \\`,
    `  -e CLIENT_TOKEN=${clientToken} \\`,
    `  -e PROXY_URL=${proxyUrl} \\`,
    '  -e TOOL_URL=https://gitlab.internal.example \\',
    "  -e TOOL_TYPE=gitlab -e TOOL_SECRET='<your tool token>' \\",
    '  postern/agent',
  ].join('\n');
}

export async function clientCommand(
  sub: string | undefined,
  args: string[],
  target: AdminTarget,
  opts: { name?: string; json?: boolean; proxyUrl?: string },
): Promise<void> {
  switch (sub) {
    case 'create': {
      if (!opts.name) throw new CliError('client create needs --name <name>', ExitCodes.USAGE);
      const c = await adminRequest<Created>(target, 'POST', 'v1/clients', { name: opts.name });
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(c)}\n`);
        return;
      }
      const proxy = opts.proxyUrl ?? process.env.POSTERN_PUBLIC_URL ?? 'https://<your postern server>';
      process.stdout.write(
        `Created client ${c.name} (${c.clientId}). The token is shown only now.\n` +
          `Run the agent next to your tool with:\n\n${dockerRunLine(c.clientId, c.clientToken, proxy)}\n`,
      );
      return;
    }
    case 'list': {
      const res = await adminRequest<{ clients: (Created & { connections: number })[] }>(target, 'GET', 'v1/clients');
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(res.clients)}\n`);
        return;
      }
      process.stdout.write(
        `${table(['CLIENT', 'NAME', 'CREATED', 'CONNECTIONS'], res.clients.map((c) => [c.clientId, c.name, c.createdAt, String(c.connections)]))}\n`,
      );
      return;
    }
    case 'revoke': {
      const id = args[0];
      if (!id) throw new CliError('client revoke needs a client id', ExitCodes.USAGE);
      const res = await adminRequest<{ closedConnections: number }>(target, 'DELETE', `v1/clients/${encodeURIComponent(id)}`);
      process.stdout.write(opts.json ? `${JSON.stringify(res)}\n` : `Revoked ${id}; closed ${res.closedConnections} live connection(s).\n`);
      return;
    }
    case 'rotate': {
      const id = args[0];
      if (!id) throw new CliError('client rotate needs a client id', ExitCodes.USAGE);
      const res = await adminRequest<{ clientToken: string; closedConnections: number }>(
        target,
        'POST',
        `v1/clients/${encodeURIComponent(id)}/rotate`,
      );
      process.stdout.write(
        opts.json
          ? `${JSON.stringify(res)}\n`
          : `New token for ${id} (shown only now): ${res.clientToken}\nClosed ${res.closedConnections} live connection(s); restart the agent with CLIENT_TOKEN set to the new token.\n`,
      );
      return;
    }
    case 'api-key':
      return apiKeyCommand(args, target, opts);
    default:
      throw new CliError('usage: postern client create|list|revoke|rotate|api-key', ExitCodes.USAGE);
  }
}

interface ApiKeyListed {
  keyId: string;
  name: string;
  createdAt: string;
}

const API_KEY_USAGE = 'usage: postern client api-key create <clientId> [--name N] | list <clientId> | revoke <clientId> <keyId>';

/** `postern client api-key create|list|revoke`: ingress API keys of one client. */
async function apiKeyCommand(args: string[], target: AdminTarget, opts: { name?: string; json?: boolean }): Promise<void> {
  const [action, id, keyId] = args;
  if (!id) throw new CliError(API_KEY_USAGE, ExitCodes.USAGE);
  const base = `v1/clients/${encodeURIComponent(id)}/api-keys`;
  switch (action) {
    case 'create': {
      const k = await adminRequest<ApiKeyListed & { clientId: string; apiKey: string }>(
        target,
        'POST',
        base,
        opts.name ? { name: opts.name } : {},
      );
      process.stdout.write(
        opts.json
          ? `${JSON.stringify(k)}\n`
          : `Created API key ${k.keyId} (${k.name}) for client ${id}. The key is shown only now:\n\n  ${k.apiKey}\n\n` +
              `Callers send it with every request: x-postern-api-key: <key>\n` +
              `From now on, requests for this client without one of its keys get 401.\n`,
      );
      return;
    }
    case 'list': {
      const res = await adminRequest<{ apiKeys: ApiKeyListed[] }>(target, 'GET', base);
      process.stdout.write(
        opts.json
          ? `${JSON.stringify(res.apiKeys)}\n`
          : `${table(['KEY', 'NAME', 'CREATED'], res.apiKeys.map((k) => [k.keyId, k.name, k.createdAt]))}\n`,
      );
      return;
    }
    case 'revoke': {
      if (!keyId) throw new CliError(API_KEY_USAGE, ExitCodes.USAGE);
      const res = await adminRequest<{ revoked: boolean }>(target, 'DELETE', `${base}/${encodeURIComponent(keyId)}`);
      process.stdout.write(opts.json ? `${JSON.stringify(res)}\n` : `Revoked API key ${keyId} of client ${id}.\n`);
      return;
    }
    default:
      throw new CliError(API_KEY_USAGE, ExitCodes.USAGE);
  }
}
