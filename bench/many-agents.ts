import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { loadAgentConfig } from '../agent/agent-config.js';
import { PosternAgent } from '../agent/postern-agent.js';

/**
 * Many idle agents in one process (spawning a process per agent would
 * measure the OS, not the server). argv[2] is a JSON file:
 *   { proxyUrl, toolUrl, clients: [{ clientId, clientToken }, …] }
 * Each client gets one real PosternAgent (same code as `postern agent`),
 * started in batches so the server's accept backlog is not the test.
 * Prints {"msg":"connected","n":N} once all are up, then idles until SIGTERM.
 */
interface Spec {
  proxyUrl: string;
  toolUrl: string;
  clients: { clientId: string; clientToken: string }[];
}

const spec = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as Spec;
const logger = pino({ level: 'silent' });
const agents: PosternAgent[] = [];
const BATCH = 50;

async function main(): Promise<void> {
  const t0 = performance.now();
  for (let i = 0; i < spec.clients.length; i += BATCH) {
    const batch = spec.clients.slice(i, i + BATCH).map((c) => {
      const config = loadAgentConfig({
        CLIENT_ID: c.clientId,
        CLIENT_TOKEN: c.clientToken,
        PROXY_URL: spec.proxyUrl,
        TOOL_URL: spec.toolUrl,
        // One tunnel each: the figure is memory per idle agent *connection*
        // (an agent with the default two tunnels costs twice that).
        POSTERN_CONNECTIONS: '1',
      });
      const agent = new PosternAgent(config, logger);
      agents.push(agent);
      return agent;
    });
    await Promise.all(batch.map((a) => a.start()));
    await Promise.all(batch.map((a) => a.waitUntilReady(30_000)));
  }
  process.stdout.write(
    `${JSON.stringify({ msg: 'connected', n: agents.length, ms: Math.round(performance.now() - t0) })}\n`,
  );
}

let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  void Promise.allSettled(agents.map((a) => a.stop())).then(() => process.exit(0));
  setTimeout(() => process.exit(0), 3_000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

main().catch((err: unknown) => {
  process.stdout.write(`${JSON.stringify({ msg: 'failed', error: (err as Error).message })}\n`);
  process.exit(1);
});
