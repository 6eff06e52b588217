import { loadAgentConfig } from '../agent/agent-config.js';
import { PosternAgent } from '../agent/postern-agent.js';
import { createLogger } from './logger.js';

/** `postern agent`: configured by environment only (the seed's names). */
export async function runAgent(): Promise<void> {
  const config = loadAgentConfig(process.env);
  const logger = createLogger('postern-agent');
  const agent = new PosternAgent(config, logger);
  logger.info(
    { clientId: config.clientId, server: config.tunnelUrl, tool: `${config.toolUrl.origin}${config.toolUrl.pathname}`, connections: config.connections, egressProxy: config.egressProxy?.host },
    'agent starting',
  );
  await agent.start();
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'agent stopping');
    void agent.stop().then(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
