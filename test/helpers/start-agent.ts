import { loadAgentConfig } from '../../agent/agent-config.js';
import { PosternAgent } from '../../agent/postern-agent.js';
import { testLogger } from './logger.js';

export interface StartAgentOptions {
  clientId: string;
  clientToken: string;
  /** The server's public URL (PROXY_URL). */
  proxyUrl: string;
  /** TOOL_URL. */
  toolUrl: string;
  /** More agent settings (TOOL_SECRET, TOOL_TYPE, POSTERN_ALLOW, …). */
  env?: Record<string, string>;
  /** Wait until a tunnel is up before returning. Default true. */
  waitReady?: boolean;
}

export interface StartedAgent {
  agent: PosternAgent;
  /** Stops the agent (tunnels, reconnect timers, tool pool). Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts an in-process agent with one tunnel and fast reconnects (50 ms
 * base, 500 ms cap) so reconnect tests finish in well under a second.
 */
export async function startAgent(opts: StartAgentOptions): Promise<StartedAgent> {
  const config = loadAgentConfig({
    CLIENT_ID: opts.clientId,
    CLIENT_TOKEN: opts.clientToken,
    PROXY_URL: opts.proxyUrl,
    TOOL_URL: opts.toolUrl,
    POSTERN_RECONNECT_BASE_MS: '50',
    POSTERN_RECONNECT_MAX_MS: '500',
    // Most tests reason about one tunnel; those about several (and the
    // default of 2) set POSTERN_CONNECTIONS themselves.
    POSTERN_CONNECTIONS: '1',
    // The default (stdout) would write into the test runner's output; tests
    // about the audit log set a file.
    POSTERN_AUDIT_LOG: 'off',
    ...opts.env,
  });
  const agent = new PosternAgent(config, testLogger('postern-agent'));
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => (stopped ??= agent.stop());
  await agent.start();
  if (opts.waitReady ?? true) {
    try {
      await agent.waitUntilReady(10_000);
    } catch (err) {
      await stop();
      throw err;
    }
  }
  return { agent, stop };
}
