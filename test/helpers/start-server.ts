import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildServer, type PosternServer } from '../../server/postern-server.js';
import { loadServerConfig } from '../../server/server-config.js';
import { testLogger } from './logger.js';

/**
 * A fresh temp data dir the caller owns (for restarts, where two servers
 * share one); `remove` deletes it.
 */
export async function tempDataDir(): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'postern-test-'));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** The admin token every test server runs with. */
export const TEST_ADMIN_TOKEN = 'test-admin-token';

export interface StartServerOptions {
  /**
   * A data dir the caller owns and removes (see tempDataDir); by default a
   * fresh temp dir that close() removes.
   */
  dataDir?: string;
  /** Public (agent) port; default 0. Set to an old server's port to restart it there. */
  port?: number;
  /** Private (ingress/admin) port; default 0. */
  ingressPort?: number;
  /** More POSTERN_* settings, e.g. `{ POSTERN_AGENT_WAIT_MS: '300' }`. */
  env?: Record<string, string>;
}

export interface StartedServer {
  server: PosternServer;
  port: number;
  ingressPort: number;
  dataDir: string;
  adminToken: string;
  /** `http://127.0.0.1:<port>`: what agents get as PROXY_URL. */
  publicUrl: string;
  /** `http://127.0.0.1:<ingressPort>`: ingress and admin API. */
  ingressUrl: string;
  /** Drains for at most `drainMs` (default 200), stops, removes a temp data dir it made. Idempotent. */
  close(drainMs?: number): Promise<void>;
}

/**
 * Builds and starts a server on 127.0.0.1 with ports picked by the OS,
 * a temp data dir, the test admin token and a 1 s agent wait.
 */
export async function startServer(opts: StartServerOptions = {}): Promise<StartedServer> {
  const ownDir = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'postern-test-')));
  const config = loadServerConfig({
    POSTERN_HOST: '127.0.0.1',
    POSTERN_PORT: String(opts.port ?? 0),
    POSTERN_INGRESS_PORT: String(opts.ingressPort ?? 0),
    POSTERN_DATA_DIR: dataDir,
    POSTERN_ADMIN_TOKEN: TEST_ADMIN_TOKEN,
    POSTERN_AGENT_WAIT_MS: '1000',
    ...opts.env,
  });
  const server = buildServer(config, { logger: testLogger('postern-server') });
  let ports: { port: number; ingressPort: number };
  try {
    ports = await server.listen();
  } catch (err) {
    await server.close(0).catch(() => {});
    if (ownDir) await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
  let closed: Promise<void> | undefined;
  return {
    server,
    ...ports,
    dataDir,
    adminToken: TEST_ADMIN_TOKEN,
    publicUrl: `http://127.0.0.1:${ports.port}`,
    ingressUrl: `http://127.0.0.1:${ports.ingressPort}`,
    close(drainMs = 200) {
      closed ??= (async () => {
        await server.close(drainMs);
        if (ownDir) await rm(dataDir, { recursive: true, force: true });
      })();
      return closed;
    },
  };
}
