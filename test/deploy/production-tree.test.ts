import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fetch } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { makeTestPki, trustingDispatcher } from '../helpers/certs.js';
import { Cleanup } from '../helpers/cleanup.js';
import { REPO_ROOT } from '../helpers/dockerfile.js';
import {
  buildDist,
  buildImageTree,
  containerEnv,
  nodeModulesAbove,
  runHealthCheck,
  startImage,
  type ImageTree,
  type TreeProcess,
} from '../helpers/production-tree.js';

/**
 * The images' /app, rebuilt without a Docker engine (see
 * test/helpers/production-tree.ts): `npm ci --omit=dev` in a directory
 * outside the repository plus the compiled dist/, then `postern server` and
 * `postern agent` started from it as the images start them. A runtime
 * dependency declared only as a devDependency, or not at all, fails here.
 */

const execFileAsync = promisify(execFile);
const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};
/** The environment names of the seed's agent (README, `postern client create`). */
const SEED_AGENT_ENV = ['CLIENT_ID', 'CLIENT_TOKEN', 'PROXY_URL', 'TOOL_URL', 'TOOL_TYPE', 'TOOL_SECRET'];

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

let work: string;
let server: ImageTree;
let agent: ImageTree;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'postern-image-'));
  const dist = buildDist(join(work, 'build'));
  // Awaited through the trees; a failed build must not also be an unhandled rejection meanwhile.
  dist.catch(() => {});
  // allSettled: nothing may still be writing into `work` when afterAll removes it.
  const trees = await Promise.allSettled([dist, buildImageTree('Dockerfile.server', work, dist), buildImageTree('Dockerfile.agent', work, dist)]);
  const failed = trees.find((t) => t.status === 'rejected');
  if (failed) throw failed.reason;
  [server, agent] = trees.slice(1).map((t) => (t as PromiseFulfilledResult<ImageTree>).value) as [ImageTree, ImageTree];
}, 120_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Port 0 and loopback where the image says 0.0.0.0 and fixed ports; the data dir in the test's temp dir. */
function serverEnv(dataDir: string, extra: Record<string, string> = {}): Record<string, string> {
  return { POSTERN_HOST: '127.0.0.1', POSTERN_PORT: '0', POSTERN_INGRESS_PORT: '0', POSTERN_DATA_DIR: dataDir, ...extra };
}

function started(tree: ImageTree, name: string, env: Record<string, string>): TreeProcess {
  const p = startImage(tree, name, env);
  onTestFailed(() => {
    process.stderr.write(`\n${p.describe()}\n`);
  });
  cleanup.add(async () => {
    if (!p.exitInfo) p.proc.kill('SIGKILL');
    await p.exited;
  });
  return p;
}

function freshDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  cleanup.add(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The server's ports, from its 'listening' line. */
function listening(p: TreeProcess): Promise<{ port: number; ingressPort: number }> {
  return p.waitForJson((o) => (o.msg === 'listening' ? { port: o.port as number, ingressPort: o.ingressPort as number } : undefined), "the 'listening' line");
}

async function expectHealth(tree: ImageTree, env: Record<string, string>, healthy: boolean, what: string): Promise<void> {
  const r = await runHealthCheck(tree, env);
  expect(r.code === 0, `${tree.file} HEALTHCHECK ${what}: exit ${r.code}\n${r.output}`).toBe(healthy);
}

/** Polls the HEALTHCHECK until it gives `healthy`, or fails after timeoutMs. */
async function untilHealth(tree: ImageTree, env: Record<string, string>, healthy: boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await runHealthCheck(tree, env);
    if ((r.code === 0) === healthy) return;
    if (Date.now() > deadline) throw new Error(`${tree.file} HEALTHCHECK still exits ${r.code} after ${timeoutMs} ms: ${what}\n${r.output}`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

/** An HTTPS tool of a private CA: answers with the path it saw and whether the agent added GitLab's token header. */
async function httpsTool(cert: { cert: string; key: string }, secret: string): Promise<string> {
  const tool = createHttpsServer({ cert: readFileSync(cert.cert), key: readFileSync(cert.key) }, (req, res) => {
    const body = JSON.stringify({ url: req.url, tokenAdded: req.headers['private-token'] === secret });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(body);
  });
  await new Promise<void>((r) => tool.listen(0, '127.0.0.1', r));
  cleanup.add(() => new Promise<void>((r) => tool.close(() => r())));
  cleanup.add(() => tool.closeAllConnections());
  return `https://localhost:${(tool.address() as AddressInfo).port}`;
}

async function getMetrics(url: string): Promise<{ status: number; type: string | null; text: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}

describe('the production tree the Dockerfiles build', () => {
  it('lives outside any node_modules, and holds every runtime dependency and no dev dependency', async () => {
    // Otherwise a module missing from the tree could still resolve from above it.
    expect(nodeModulesAbove(server.dir)).toEqual([]);
    expect(server.dir.startsWith(REPO_ROOT)).toBe(false);
    for (const tree of [server, agent]) {
      const modules = join(tree.dir, 'node_modules');
      expect(Object.keys(pkg.devDependencies).filter((d) => existsSync(join(modules, d)))).toEqual([]);
      expect(Object.keys(pkg.dependencies).filter((d) => !existsSync(join(modules, d, 'package.json')))).toEqual([]);
      expect(existsSync(join(tree.dir, 'dist', 'cli', 'postern.js'))).toBe(true);
      // Also those loaded only on some paths (pino-pretty on a terminal): each must load from the tree.
      const load = `for (const d of ${JSON.stringify(Object.keys(pkg.dependencies))}) await import(d).catch((e) => { console.error(d + ': ' + e.message); process.exitCode = 1; });`;
      const loaded = await execFileAsync('node', ['--input-type=module', '-e', load], { cwd: tree.dir, env: containerEnv(tree, {}) }).then(
        () => 'all loaded',
        (e: { stderr: string }) => e.stderr,
      );
      expect(loaded, `${tree.file}: dependencies that do not load from the tree`).toBe('all loaded');
    }
    expect(existsSync(join(agent.dir, 'presets', 'gitlab.json'))).toBe(true);
    });

  it('runs server and agent as the images do: a request reaches an https tool through the tunnel, /metrics answers on both, and each HEALTHCHECK passes while healthy and fails once the process is gone', async () => {
    const pki = makeTestPki(cleanup);
    const secret = 'glpat-production-tree-test';
    const toolUrl = await httpsTool(pki.server, secret);
    const dataDir = freshDir('postern-image-data-');

    const srv = started(server, 'server', serverEnv(dataDir));
    const ports = await listening(srv);
    // First start with no token: one is generated into the data dir, as in a fresh volume.
    const adminToken = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
    const ingress = `http://127.0.0.1:${ports.ingressPort}`;
    const serverHealthEnv = serverEnv(dataDir, { POSTERN_PORT: String(ports.port) });
    await expectHealth(server, serverHealthEnv, true, 'with the server up');

    // What the README has the operator run inside the server container.
    const created = await execFileAsync('node', ['dist/cli/postern.js', 'client', 'create', '--name', 'acme', '--proxy-url', `http://127.0.0.1:${ports.port}`], {
      cwd: server.dir,
      env: containerEnv(server, { POSTERN_SERVER: ingress, POSTERN_ADMIN_TOKEN: adminToken }),
      timeout: 20_000,
    });
    // The printed `docker run` line, taken as the agent's environment.
    const printed = Object.fromEntries([...created.stdout.matchAll(/-e (\w+)=(\S+)/g)].map(([, k, v]) => [k!, v!]));
    expect(Object.keys(printed).sort()).toEqual([...SEED_AGENT_ENV].sort());

    const agentEnv = {
      CLIENT_ID: printed.CLIENT_ID!,
      CLIENT_TOKEN: printed.CLIENT_TOKEN!,
      PROXY_URL: printed.PROXY_URL!,
      TOOL_URL: toolUrl,
      TOOL_TYPE: 'gitlab',
      TOOL_SECRET: secret,
      NODE_EXTRA_CA_CERTS: pki.ca.cert,
      // The preset of TOOL_TYPE, read from the image's presets/.
      POSTERN_ALLOW: 'preset',
      POSTERN_STATUS_HOST: '127.0.0.1',
      POSTERN_STATUS_PORT: '0',
    };
    const agt = started(agent, 'agent', agentEnv);
    const statusPort = await agt.waitForJson((o) => (o.msg === 'agent status listening' ? (o.statusPort as number) : undefined), 'the status listener');
    await agt.waitForJson((o) => (o.msg === 'tunnel connected' ? true : undefined), 'a tunnel');
    const agentHealthEnv = { ...agentEnv, POSTERN_STATUS_PORT: String(statusPort) };
    await expectHealth(agent, agentHealthEnv, true, 'with a tunnel up');

    const res = await fetch(`${ingress}/t/${agentEnv.CLIENT_ID}/api/v4/projects/42?statistics=true`, { signal: AbortSignal.timeout(10_000) });
    expect(res.status, agt.describe()).toBe(200);
    expect(await res.json()).toEqual({ url: '/api/v4/projects/42?statistics=true', tokenAdded: true });
    const denied = await fetch(`${ingress}/t/${agentEnv.CLIENT_ID}/api/v4/users`, { signal: AbortSignal.timeout(10_000) });
    expect(denied.status).toBe(403);
    expect(((await denied.json()) as { error: string }).error).toBe('forbidden_by_agent');

    for (const [who, url] of [
      ['server', `${ingress}/metrics`],
      ['agent', `http://127.0.0.1:${statusPort}/metrics`],
    ] as const) {
      const m = await getMetrics(url);
      expect(m.status, `${who} GET /metrics`).toBe(200);
      expect(m.type, `${who} /metrics content-type`).toMatch(/^text\/plain/);
      expect(m.text, `${who} /metrics`).toMatch(/^postern_\w+/m);
    }

    // docker stop: SIGTERM through tini; both drain and exit 0.
    expect(await srv.stop('SIGTERM'), srv.describe()).toEqual({ code: 0, signal: null });
    await expectHealth(server, serverHealthEnv, false, 'once the server is gone');
    // The agent lives on, reconnecting, but is not ready: unhealthy.
    await untilHealth(agent, agentHealthEnv, false, 'with no tunnel');
    expect(agt.exitInfo).toBeUndefined();
    expect(await agt.stop('SIGTERM'), agt.describe()).toEqual({ code: 0, signal: null });
    await expectHealth(agent, agentHealthEnv, false, 'once the agent is gone');
  });

  it("the server's HEALTHCHECK also passes when the operator turns TLS on (POSTERN_TLS_CERT/KEY)", async () => {
    const pki = makeTestPki(cleanup);
    const tls = { POSTERN_TLS_CERT: pki.server.cert, POSTERN_TLS_KEY: pki.server.key };
    const dataDir = freshDir('postern-image-data-');
    const srv = started(server, 'tls-server', serverEnv(dataDir, tls));
    const ports = await listening(srv);
    // It really speaks TLS only (a plain-HTTP check would fail here).
    const dispatcher = trustingDispatcher(cleanup, pki.ca.cert);
    expect((await fetch(`https://localhost:${ports.port}/healthz`, { dispatcher })).status).toBe(200);
    await expectHealth(server, serverEnv(dataDir, { ...tls, POSTERN_PORT: String(ports.port) }), true, 'with TLS on');
  });
});
