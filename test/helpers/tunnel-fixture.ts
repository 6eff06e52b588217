import type { Cleanup } from './cleanup.js';
import { startAgent, type StartedAgent, type StartAgentOptions } from './start-agent.js';
import { startServer, type StartedServer, type StartServerOptions } from './start-server.js';
import { startUpstream, type ToolHandler, type Upstream } from './upstream.js';

export interface TunnelFixtureOptions {
  /** The tool's handler; default echoHandler. Can be changed later via `upstream.handler`. */
  handler?: ToolHandler;
  server?: StartServerOptions;
  /** Appended to the tool's URL to make TOOL_URL, e.g. `/gitlab`. */
  toolPath?: string;
  /** More agent settings. */
  agentEnv?: StartAgentOptions['env'];
}

export interface TunnelFixture {
  upstream: Upstream;
  server: StartedServer;
  clientId: string;
  clientToken: string;
  agent: StartedAgent;
  /** Ingress URL of a path on the tool: `/api/x?y` → `http://127.0.0.1:<ingress>/t/<clientId>/api/x?y`. */
  url(path: string): string;
  /** Starts another agent for the same client and tool (registered with the cleanup). */
  startAgent(overrides?: Partial<StartAgentOptions>): Promise<StartedAgent>;
}

/**
 * Tool + server + client + connected agent, all on 127.0.0.1 with OS-picked
 * ports. Every piece is registered with `cleanup` as it starts, so a failure
 * half-way still tears down what was built.
 */
export async function startTunnel(cleanup: Cleanup, opts: TunnelFixtureOptions = {}): Promise<TunnelFixture> {
  const upstream = await startUpstream(opts.handler);
  cleanup.add(() => upstream.close());
  const server = await startServer(opts.server);
  cleanup.add(() => server.close());
  const { clientId, clientToken } = server.server.store.create('integration');
  const toolUrl = `${upstream.url}${opts.toolPath ?? ''}`;
  const launch = async (overrides: Partial<StartAgentOptions> = {}): Promise<StartedAgent> => {
    const agent = await startAgent({
      clientId,
      clientToken,
      proxyUrl: server.publicUrl,
      toolUrl,
      ...(opts.agentEnv ? { env: opts.agentEnv } : {}),
      ...overrides,
    });
    cleanup.add(() => agent.stop());
    return agent;
  };
  const agent = await launch();
  return {
    upstream,
    server,
    clientId,
    clientToken,
    agent,
    url: (path) => `${server.ingressUrl}/t/${clientId}${path}`,
    startAgent: launch,
  };
}
