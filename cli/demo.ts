import { loadAgentConfig } from '../agent/agent-config.js';
import { PosternAgent } from '../agent/postern-agent.js';
import { buildServer, type PosternServer } from '../server/postern-server.js';
import { loadServerConfig } from '../server/server-config.js';
import { startDemoTool } from './demo-tool.js';
import { createLogger } from './logger.js';

/**
 * `npm start` (`postern demo`): a server and an agent in one process, on the
 * embedded store, against TOOL_URL or a built-in demo tool, then prints a
 * curl line that goes through the tunnel.
 */
export async function runDemo(): Promise<void> {
  const logger = createLogger('postern-demo', process.env.POSTERN_LOG_LEVEL ?? 'warn');
  const config = loadServerConfig({ POSTERN_HOST: '127.0.0.1', ...process.env });
  let server: PosternServer;
  try {
    server = buildServer(config, { logger });
    await server.listen();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    // 8080/8081 taken: any free ports will do for a demo.
    process.stderr.write(`ports ${config.port}/${config.ingressPort} are taken; using free ports instead\n`);
    server = buildServer({ ...config, port: 0, ingressPort: 0 }, { logger });
    await server.listen();
  }
  const tool = process.env.TOOL_URL ? undefined : await startDemoTool();
  const toolUrl = process.env.TOOL_URL ?? tool!.url;
  const client = server.store.create(`demo-${new Date().toISOString()}`);
  const agentConfig = loadAgentConfig({
    ...process.env,
    CLIENT_ID: client.clientId,
    CLIENT_TOKEN: client.clientToken,
    PROXY_URL: `http://127.0.0.1:${server.port}`,
    TOOL_URL: toolUrl,
  });
  const agent = new PosternAgent(agentConfig, logger);
  await agent.start();
  await agent.waitUntilReady();
  const ingress = `http://127.0.0.1:${server.ingressPort}`;
  const path = tool ? '/hello' : '/';
  process.stdout.write(
    [
      '',
      `Postern is running: server (agents on :${server.port}, ingress on :${server.ingressPort}), one agent, tool ${toolUrl}`,
      `Data dir: ${config.dataDir}  (admin token in ${config.dataDir}/admin-token)`,
      '',
      'Try it: this request goes caller -> server -> tunnel -> agent -> tool:',
      '',
      `  curl -i ${ingress}/t/${client.clientId}${path}`,
      '',
      `Status:  POSTERN_SERVER=${ingress} POSTERN_ADMIN_TOKEN=$(cat ${config.dataDir}/admin-token) npx postern status`,
      'Stop with Ctrl-C.',
      '',
    ].join('\n'),
  );
  const stop = (): void => {
    void agent
      .stop()
      .then(() => server.close(1000))
      .then(() => {
        tool?.server.close();
        process.exit(0);
      });
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
