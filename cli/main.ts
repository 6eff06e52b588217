import { parseArgs } from 'node:util';
import { ConfigError } from '../protocol/tunnel-error.js';
import { VERSION } from '../protocol/version.js';
import { serverEnvNames } from '../server/server-config.js';
import { CliError, ExitCodes, savedAdminToken } from './admin-client.js';
// Subcommands are imported when chosen: a server process never loads the
// agent's code (undici, ws client) and vice versa (measured: −11 MiB RSS).

function usage(agentEnvHelp: [string, string][]): string {
  return `postern ${VERSION}: a reverse tunnel from your SaaS to tools behind a firewall

usage:
  postern server [--host H] [--port P] [--ingress-port P] [--data-dir D] [--admin-token T] [--agent-wait-ms N]
                 [--heartbeat-ms N] [--drain-timeout-ms N]
  postern agent                      (configured by environment: see below)
  postern client create --name N [--json] [--proxy-url URL]
  postern client list [--json]
  postern client revoke <clientId>
  postern client rotate <clientId>
  postern client api-key create <clientId> [--name N] [--json]
  postern client api-key list <clientId> [--json]
  postern client api-key revoke <clientId> <keyId>
  postern status [--json] [--watch [--interval S]] [<clientId>…]
                                     (exit 3 if a named client has no live agent)
  postern status --agent http://127.0.0.1:<POSTERN_STATUS_PORT> [--json] [--watch]
  postern demo                       (what \`npm start\` runs)
  postern demo-tool [--host H] [--port P]
                                     (the demo tool alone, for deploy/docker-compose.yml)
  postern policy test <METHOD> <PATH> [--allow FILE|preset:NAME] [--tool-url URL] [--header 'Name: value']…
                                     (would the agent allow it? exit 0 allowed, 1 denied)

client and status commands take --server <private URL> (POSTERN_SERVER, default http://127.0.0.1:8081)
and --admin-token <T> (POSTERN_ADMIN_TOKEN; for a server on loopback, POSTERN_DATA_DIR/admin-token).

logging (server and agent): POSTERN_LOG_LEVEL (default info), POSTERN_LOG_FORMAT (auto, json, pretty)

server environment: ${Object.values(serverEnvNames).join(', ')}

agent environment:
${agentEnvHelp.map(([k, v]) => `  ${k.padEnd(28)} ${v}`).join('\n')}

exit codes: 0 ok, 1 failure, 2 usage or configuration error, 3 no live agent,
            4 server unreachable, 5 unauthorized`;
}

const serverFlags = {
  host: { type: 'string' },
  port: { type: 'string' },
  'ingress-port': { type: 'string' },
  'data-dir': { type: 'string' },
  'admin-token': { type: 'string' },
  'agent-wait-ms': { type: 'string' },
  'heartbeat-ms': { type: 'string' },
  'drain-timeout-ms': { type: 'string' },
} as const;

const clientFlags = {
  server: { type: 'string' },
  'admin-token': { type: 'string' },
  name: { type: 'string' },
  json: { type: 'boolean' },
  agent: { type: 'string' },
  'proxy-url': { type: 'string' },
  watch: { type: 'boolean', short: 'w' },
  interval: { type: 'string' },
} as const;

/** `--interval` in seconds (default 2), for `status --watch`. */
function watchInterval(raw: string | undefined): number {
  if (raw === undefined) return 2_000;
  const seconds = Number(raw);
  if (!Number.isFinite(seconds) || seconds < 0.2 || seconds > 3600) {
    throw new CliError(`--interval must be a number of seconds between 0.2 and 3600, got ${JSON.stringify(raw)}`, ExitCodes.USAGE);
  }
  return Math.round(seconds * 1000);
}

function camel(s: string): string {
  return s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'server': {
      const { values } = parseArgs({ args: rest, options: serverFlags, strict: true });
      const flags = Object.fromEntries(Object.entries(values).map(([k, v]) => [camel(k), v]));
      const { runServer } = await import('./run-server.js');
      await runServer(flags);
      return -1; // keeps running
    }
    case 'agent': {
      const { runAgent } = await import('./run-agent.js');
      await runAgent();
      return -1;
    }
    case 'demo': {
      const { runDemo } = await import('./demo.js');
      await runDemo();
      return -1;
    }
    case 'demo-tool': {
      const { values } = parseArgs({ args: rest, options: { host: { type: 'string' }, port: { type: 'string' } }, strict: true });
      const port = Number(values.port ?? '8000');
      if (!Number.isInteger(port) || port < 0 || port > 65535) {
        throw new CliError(`--port must be a port number (0-65535), got ${JSON.stringify(values.port)}`, ExitCodes.USAGE);
      }
      const { startDemoTool } = await import('./demo-tool.js');
      const tool = await startDemoTool(port, values.host ?? '0.0.0.0');
      process.stderr.write(`demo tool listening on ${tool.url}\n`);
      const stop = (): void => void tool.server.close(() => process.exit(0));
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
      return -1;
    }
    case 'policy': {
      const { policyCommand } = await import('./policy-command.js');
      return policyCommand(rest, process.env);
    }
    case 'client':
    case 'status': {
      const { values, positionals } = parseArgs({ args: rest, options: clientFlags, strict: true, allowPositionals: true });
      const server = values.server ?? process.env.POSTERN_SERVER ?? 'http://127.0.0.1:8081';
      const needsAdmin = command === 'client' || !values.agent;
      const adminToken =
        values['admin-token'] ?? process.env.POSTERN_ADMIN_TOKEN ?? (needsAdmin ? savedAdminToken(server, process.env) : undefined);
      if (needsAdmin && !adminToken) {
        throw new CliError(
          'an admin token is needed: pass --admin-token or set POSTERN_ADMIN_TOKEN (next to a server on this machine, its POSTERN_DATA_DIR/admin-token is read)',
          ExitCodes.USAGE,
        );
      }
      const target = adminToken ? { server, adminToken } : undefined;
      if (command === 'status') {
        const { statusCommand } = await import('./status-command.js');
        return statusCommand(target, positionals, {
          json: values.json,
          agent: values.agent,
          watch: values.watch,
          intervalMs: watchInterval(values.interval),
        });
      }
      const [sub, ...args] = positionals;
      const { clientCommand } = await import('./client-commands.js');
      await clientCommand(sub, args, target!, { name: values.name, json: values.json, proxyUrl: values['proxy-url'] });
      return ExitCodes.OK;
    }
    case '--version':
    case 'version':
      process.stdout.write(`${VERSION}\n`);
      return ExitCodes.OK;
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      // The agent's settings table lives with the agent's code; load it only here.
      const { agentEnvHelp } = await import('../agent/agent-config.js');
      process.stdout.write(`${usage(agentEnvHelp)}\n`);
      return command === undefined ? ExitCodes.USAGE : ExitCodes.OK;
    default:
      throw new CliError(`unknown command ${JSON.stringify(command)}; see postern --help`, ExitCodes.USAGE);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`postern: configuration error: ${err.message}\n`);
      process.exit(ExitCodes.USAGE);
    }
    if (err instanceof CliError) {
      process.stderr.write(`postern: ${err.message}\n`);
      process.exit(err.exitCode);
    }
    const code = (err as { code?: string }).code;
    if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`postern: ${(err as Error).message}\n`);
      process.exit(ExitCodes.USAGE);
    }
    if (code === 'EADDRINUSE' || code === 'EACCES') {
      process.stderr.write(`postern: cannot listen: ${(err as Error).message}\n`);
      process.exit(ExitCodes.FAILURE);
    }
    process.stderr.write(`postern: unexpected error: ${(err as Error)?.message ?? String(err)}\n`);
    process.exit(ExitCodes.FAILURE);
  },
);
