import { buildServer } from '../server/postern-server.js';
import { loadServerConfig, type ServerConfig } from '../server/server-config.js';
import { createLogger } from './logger.js';

/** `postern server`: flags override env; SIGTERM/SIGINT drain and exit. */
export async function runServer(flags: Partial<Record<keyof ServerConfig, string>>): Promise<void> {
  const config = loadServerConfig(process.env, flags);
  const logger = createLogger('postern-server');
  const server = buildServer(config, { logger });
  if (server.generatedAdminToken) {
    // Printed once, on the terminal, never through the logger.
    process.stderr.write(
      `\nGenerated an admin token (saved in ${config.dataDir}/admin-token, shown only now):\n  ${server.generatedAdminToken}\n\n`,
    );
  }
  // First signal: drain (see PosternServer.close). A second one while
  // draining: exit now, cutting off whatever is still in flight. Installed
  // before listening: a SIGTERM right after the "listening" line (an
  // orchestrator's quick stop) must drain, not kill.
  let draining = false;
  const onSignal = (signal: string): void => {
    if (draining) {
      logger.warn({ signal }, 'second signal: exiting without waiting for requests in flight');
      process.exit(1);
    }
    draining = true;
    logger.info({ signal, drainTimeoutMs: config.drainTimeoutMs }, 'draining');
    void server.close().then(() => {
      logger.info('stopped');
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  await server.listen();
}
