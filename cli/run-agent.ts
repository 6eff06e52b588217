import { loadAgentConfig } from '../agent/agent-config.js';
import { PosternAgent } from '../agent/postern-agent.js';
import { createLogger } from './logger.js';

/** `postern agent`: configured by environment only (the seed's names). */
export async function runAgent(): Promise<void> {
  const config = loadAgentConfig(process.env);
  // Every line names the client: one log pipeline often collects many agents.
  const logger = createLogger('postern-agent').child({ clientId: config.clientId });
  const agent = new PosternAgent(config, logger);
  logger.info(
    { server: config.tunnelUrl, tool: `${config.toolUrl.origin}${config.toolUrl.pathname}`, connections: config.connections, egressProxy: config.egressProxy?.host },
    'agent starting',
  );
  // First signal: drain (requests in flight finish, the server sends no new
  // ones). A second signal while draining: stop at once. Installed before
  // starting, so a signal during start-up drains too.
  let draining = false;
  const onSignal = (signal: string): void => {
    if (draining) {
      logger.warn({ signal }, 'second signal: stopping without waiting for requests in flight');
      void agent.stop().then(() => process.exit(0));
      return;
    }
    draining = true;
    logger.info({ signal, drainTimeoutMs: config.drainTimeoutMs }, 'agent draining');
    void agent.drain().then(() => {
      logger.info('agent stopped');
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  await agent.start();
}
