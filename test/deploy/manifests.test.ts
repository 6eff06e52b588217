import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { PassThrough } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { agentEnvHelp, loadAgentConfig } from '../../agent/agent-config.js';
import { Child } from '../../bench/processes.js';
import { loadServerConfig, serverDefaults, serverEnvNames } from '../../server/server-config.js';
import { cliPath } from '../helpers/build-cli.js';
import { Cleanup } from '../helpers/cleanup.js';
import { durationMs, execForm, healthCheck, keyValues, only, readDockerfile, REPO_ROOT, runtimeStage } from '../helpers/dockerfile.js';
import { send } from '../helpers/http-client.js';
import { track, waitForLog } from '../helpers/processes.js';
import { waitUntil, within } from '../helpers/wait.js';

/**
 * deploy/ held to the code. The static checks compare the compose file and
 * the Kubernetes manifests with what the processes read and serve: env names
 * from server-config.ts and agent-config.ts, subcommands and flags from
 * `postern --help`, the images from the Dockerfiles, values through the real
 * config loaders. The two runs start the processes the files describe (the
 * compiled CLI with the files' environment and arguments; listening ports
 * remapped to free ones, service names to 127.0.0.1, volumes to temp dirs)
 * and go through them as the files' instructions say.
 */

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const DEPLOY = join(REPO_ROOT, 'deploy');
const COMPOSE_FILE = join(DEPLOY, 'docker-compose.yml');
const ENV_EXAMPLE = join(DEPLOY, '.env.example');
const K8S_DIRS = { server: join(DEPLOY, 'kubernetes', 'server'), agent: join(DEPLOY, 'kubernetes', 'agent') } as const;
const PKG = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string; bin: { postern: string } };
/** See test/helpers/processes.ts: ties each child's life to the test worker. */
const PARENT_WATCH = pathToFileURL(join(REPO_ROOT, 'bench', 'parent-watch.ts')).href;
const execFileP = promisify(execFile);

// ---- what the processes are ------------------------------------------------

type Role = 'server' | 'agent' | 'demo-tool';
const DOCKERFILE: Record<Role, string> = { server: 'Dockerfile.server', agent: 'Dockerfile.agent', 'demo-tool': 'Dockerfile.agent' };
/** The settings each process listens on (containerPort ↔ setting). */
const LISTEN_SETTINGS: Record<Role, string[]> = { server: ['POSTERN_PORT', 'POSTERN_INGRESS_PORT'], agent: ['POSTERN_STATUS_PORT'], 'demo-tool': [] };

const SERVER_ENV = new Set(Object.values(serverEnvNames));
const AGENT_ENV = new Set(agentEnvHelp.flatMap(([names]) => names.split(' / ')));
/** Node's own, read by Node or by the agent's egress code. */
const NODE_OWN = ['NODE_EXTRA_CA_CERTS', 'HTTPS_PROXY', 'NO_PROXY'];
/** Read by cli/ for every process but listed in neither table: the file that reads each. */
const CLI_ENV: Record<string, string> = { POSTERN_LOG_LEVEL: 'cli/logger.ts', POSTERN_SERVER: 'cli/main.ts' };
const SEED_NAMES = ['CLIENT_ID', 'CLIENT_TOKEN', 'PROXY_URL', 'TOOL_URL', 'TOOL_TYPE', 'TOOL_SECRET'];

function allowedEnv(role: Role): Set<string> {
  if (role === 'server') return new Set([...SERVER_ENV, 'POSTERN_LOG_LEVEL', 'NODE_EXTRA_CA_CERTS']);
  if (role === 'agent') return new Set([...AGENT_ENV, ...NODE_OWN, 'POSTERN_LOG_LEVEL']);
  return new Set();
}

function roleOf(args: string[] | undefined): Role {
  const sub = args?.[0];
  if (sub === 'server' || sub === 'agent' || sub === 'demo-tool') return sub;
  throw new Error(`runs ${JSON.stringify(args)}: expected server, agent or demo-tool`);
}

/** The image's ENV: what a container starts with before the file's own environment. */
function imageEnv(role: Role): Record<string, string> {
  return keyValues(runtimeStage(readDockerfile(DOCKERFILE[role])), 'ENV');
}

/** The image's ENTRYPOINT, exec form. */
function entrypoint(role: Role): string[] {
  return execForm(only(runtimeStage(readDockerfile(DOCKERFILE[role])), 'ENTRYPOINT').args);
}

function unexpectedNames(names: string[], role: Role): string[] {
  const allowed = allowedEnv(role);
  return names.filter((n) => !allowed.has(n));
}

// ---- postern --help ---------------------------------------------------------

let usage: string[] = [];
let cliDefaultServer = '';

beforeAll(async () => {
  const { stdout } = await execFileP(process.execPath, [cliPath(), '--help'], { timeout: 15_000 });
  usage = stdout
    .split('\n')
    .map((l) => /^\s+postern\s+(.*)$/.exec(l)?.[1])
    .filter((l): l is string => l !== undefined);
  cliDefaultServer = /POSTERN_SERVER, default (\S+?)\)/.exec(stdout)?.[1] ?? '';
});

/** Why `postern <args>` would be refused, per the usage text; undefined when valid. */
function commandProblem(args: string[]): string | undefined {
  const firstFlag = args.findIndex((a) => a.startsWith('-'));
  const positional = firstFlag === -1 ? args : args.slice(0, firstFlag);
  const line = usage.find((l) => l.split(/\s+/).slice(0, positional.length).join(' ') === positional.join(' '));
  if (!line) return `no usage line for "postern ${positional.join(' ')}"`;
  const flags = new Set(line.match(/--[a-z-]+/g) ?? []);
  const unknown = args.filter((a) => a.startsWith('--') && !flags.has(a));
  return unknown.length > 0 ? `"postern ${line}" has no ${unknown.join(', ')}` : undefined;
}

// ---- docker-compose.yml -----------------------------------------------------

interface ComposeService {
  build?: { context: string; dockerfile: string };
  image?: string;
  pull_policy?: string;
  init?: boolean;
  command?: string[];
  environment?: Record<string, string | number | null> | string[];
  ports?: (string | { target: number; published?: string | number; host_ip?: string })[];
  volumes?: (string | { type?: string; source?: string; target: string })[];
  stop_grace_period?: string;
  healthcheck?: { test: string[] };
  depends_on?: string[] | Record<string, unknown>;
}
interface ComposeFile {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
}

const composeText = readFileSync(COMPOSE_FILE, 'utf8');
const compose = parse(composeText) as ComposeFile;

function composeService(role: Role): [string, ComposeService] {
  const found = Object.entries(compose.services).filter(([, s]) => roleOf(s.command) === role);
  if (found.length !== 1) throw new Error(`expected one compose service running ${role}, found ${found.length}`);
  return found[0]!;
}

/** KEY=value lines of an env file (comments and blank lines skipped). */
function readDotenv(file: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!.trim().replace(/^(['"])(.*)\1$/, '$2');
  }
  return out;
}

/** Compose's variable syntax: $$, ${V}, ${V:-d}, ${V-d}, ${V:?msg}, ${V?msg}. */
function interpolate(value: string, vars: Record<string, string>): string {
  return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}/g, (match, name: string, op: string | undefined, arg: string) => {
    if (match === '$$') return '$';
    const v = vars[name];
    const missing = v === undefined || (op?.startsWith(':') === true && v === '');
    if (op?.endsWith('-')) return missing ? arg : v!;
    if (op?.endsWith('?') && missing) throw new Error(`compose would stop: ${name}: ${arg}`);
    return v ?? '';
  });
}

/** A service's `environment`, interpolated. */
function composeEnv(svc: ComposeService, vars: Record<string, string>): Record<string, string> {
  const raw = svc.environment ?? {};
  const pairs: [string, string][] = Array.isArray(raw)
    ? raw.map((e) => [e.split('=')[0]!, e.slice(e.indexOf('=') + 1)])
    : Object.entries(raw).map(([k, v]) => [k, v === null ? '' : String(v)]);
  return Object.fromEntries(pairs.map(([k, v]) => [k, interpolate(v, vars)]));
}

function composeEnvNames(svc: ComposeService): string[] {
  const raw = svc.environment ?? {};
  return Array.isArray(raw) ? raw.map((e) => e.split('=')[0]!) : Object.keys(raw);
}

interface PublishedPort {
  hostIp: string | undefined;
  /** The host's port; undefined = Docker picks one. */
  published: number | undefined;
  target: number;
}

/** `ports:` in short ("[ip:]host:container[/proto]", "container") or long syntax. */
function publishedPorts(svc: ComposeService): PublishedPort[] {
  return (svc.ports ?? []).map((p) => {
    if (typeof p !== 'string') return { hostIp: p.host_ip, published: p.published === undefined ? undefined : Number(p.published), target: p.target };
    const parts = p.replace(/\/(tcp|udp)$/, '').split(':');
    const published = parts.length >= 2 ? Number(parts.at(-2)) : undefined;
    return { hostIp: parts.length === 3 ? parts[0] : undefined, published, target: Number(parts.at(-1)) };
  });
}

/** A command's value after a flag (`--port 8000`). */
function flagValue(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i === -1 ? undefined : args[i + 1];
}

/** The ports a compose service's process listens on, by setting or flag. */
function listenPorts(role: Role, env: Record<string, string>, args: string[]): number[] {
  if (role === 'demo-tool') return [Number(flagValue(args, '--port') ?? '8000')];
  return LISTEN_SETTINGS[role].map((s) => Number(env[s]));
}

function seconds(d: string | undefined, dflt: number): number {
  return d === undefined ? dflt : durationMs(d) / 1000;
}

// ---- Kubernetes -------------------------------------------------------------

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string }; configMapKeyRef?: { name: string; key: string } };
}
interface Probe {
  httpGet: { path: string; port: number | string };
}
interface SecurityContext {
  runAsNonRoot?: boolean;
  runAsUser?: number;
  readOnlyRootFilesystem?: boolean;
  allowPrivilegeEscalation?: boolean;
}
interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  ports?: { name?: string; containerPort: number }[];
  env?: EnvVar[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  lifecycle?: { preStop?: { exec?: { command: string[] }; sleep?: { seconds: number } } };
  securityContext?: SecurityContext;
  volumeMounts?: { name: string; mountPath: string }[];
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
}
interface PodSpec {
  containers: Container[];
  terminationGracePeriodSeconds?: number;
  securityContext?: SecurityContext;
  volumes?: { name: string; persistentVolumeClaim?: { claimName: string }; configMap?: { name: string }; emptyDir?: unknown }[];
}
interface K8sObject {
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  // Each kind's spec is read where the kind is known (Deployment below; the rest ad hoc).
  spec?: any;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  resources?: string[];
  namespace?: string;
  images?: { name: string; newName?: string; newTag?: string }[];
  /** Where it was read (added here). */
  file: string;
}
interface Deployment extends K8sObject {
  spec: {
    replicas: number;
    strategy?: { type: string; rollingUpdate?: { maxUnavailable?: number | string } };
    selector: { matchLabels: Record<string, string> };
    template: { metadata: { labels: Record<string, string>; annotations?: Record<string, string> }; spec: PodSpec };
  };
}

type K8sDir = keyof typeof K8S_DIRS;

function yamlFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'))
    .map((f) => join(dir, f));
}

function k8sObjects(dir: K8sDir): K8sObject[] {
  return yamlFiles(K8S_DIRS[dir]).flatMap((file) =>
    parseAllDocuments(readFileSync(file, 'utf8'))
      .map((d) => d.toJS() as Omit<K8sObject, 'file'> | null)
      .filter((o): o is Omit<K8sObject, 'file'> => o !== null)
      .map((o) => ({ ...o, file: relative(REPO_ROOT, file) })),
  );
}

function ofKind<T extends K8sObject = K8sObject>(dir: K8sDir, kind: string): T[] {
  return k8sObjects(dir).filter((o) => o.kind === kind) as T[];
}

function one<T>(list: T[], what: string): T {
  if (list.length !== 1) throw new Error(`expected one ${what}, found ${list.length}`);
  return list[0]!;
}

function deployment(dir: K8sDir): { dep: Deployment; container: Container; role: Role } {
  const dep = one(ofKind<Deployment>(dir, 'Deployment'), `Deployment in deploy/kubernetes/${dir}`);
  const container = one(dep.spec.template.spec.containers, `container in ${dep.metadata.name}`);
  return { dep, container, role: roleOf(container.args) };
}

/** A Secret's keys and values (stringData as written, data base64-decoded). */
function secretValues(dir: K8sDir, name: string): Record<string, string> {
  const secret = one(
    ofKind(dir, 'Secret').filter((s) => s.metadata.name === name),
    `Secret ${name} in deploy/kubernetes/${dir}`,
  );
  const data = Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));
  return { ...data, ...secret.stringData };
}

/** The container's environment as the pod gets it: image ENV, then its env with secretKeyRefs resolved from the example Secrets. */
function podEnv(dir: K8sDir, container: Container, role: Role): Record<string, string> {
  const env = imageEnv(role);
  for (const e of container.env ?? []) {
    const ref = e.valueFrom?.secretKeyRef;
    if (e.value !== undefined) env[e.name] = e.value;
    else if (ref) {
      const value = secretValues(dir, ref.name)[ref.key];
      if (value === undefined) throw new Error(`${e.name}: Secret ${ref.name} has no key ${ref.key}`);
      env[e.name] = value;
    } else throw new Error(`${e.name}: only value and secretKeyRef are read here`);
  }
  return env;
}

function containerPortOf(container: Container, port: number | string): number {
  if (typeof port === 'number') return port;
  const found = container.ports?.find((p) => p.name === port);
  if (!found) throw new Error(`${container.name} has no port named ${port}`);
  return found.containerPort;
}

function preStopSeconds(container: Container): number {
  const pre = container.lifecycle?.preStop;
  if (pre?.sleep) return pre.sleep.seconds;
  const cmd = pre?.exec?.command;
  if (cmd && cmd[0] === 'sleep') return Number(cmd[1]);
  if (cmd) throw new Error(`preStop ${JSON.stringify(cmd)}: only a sleep is understood here`);
  return 0;
}

/** The drain timeout the process would use with this environment (the real loaders' defaults). */
function drainMs(role: Role, env: Record<string, string>): number {
  if (role === 'server') return loadServerConfig(env).drainTimeoutMs;
  return loadAgentConfig(env).drainTimeoutMs;
}

// ---- running what the files describe ---------------------------------------

interface Running {
  child: Child;
  /** containerPort (as the file says) → the port the process really bound. */
  ports: Map<number, number>;
  /** The environment it runs with, with the real ports (for health checks and the CLI). */
  env: Record<string, string>;
}

function spawnPostern(name: string, args: string[], env: Record<string, string>, nodeArgs: string[] = []): Child {
  return track(cleanup, new Child({ name, args: [cliPath(), ...args], env, nodeArgs, parentWatch: PARENT_WATCH, keepLines: 2_000 }));
}

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  cleanup.add(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * Node's permission model stands in for readOnlyRootFilesystem: the process
 * may write (from JavaScript) only into `writable`. Native code (SQLite's
 * own file I/O) is outside it, hence the /tmp emptyDir in the manifest.
 */
function writeOnly(writable: string[]): string[] {
  return ['--permission', '--allow-fs-read=*', ...writable.map((d) => `--allow-fs-write=${d}`), '--allow-addons'];
}

/** A container's volume mounts (mountPath → a fresh local dir standing in for the volume). */
function localMounts(container: Container): Map<string, string> {
  return new Map((container.volumeMounts ?? []).map((m) => [m.mountPath, tempDir('postern-k8s-volume-')]));
}

async function runServer(name: string, env: Record<string, string>, args: string[], dataDir: string, nodeArgs: string[] = []): Promise<Running> {
  const local = { ...env, POSTERN_HOST: '127.0.0.1', POSTERN_PORT: '0', POSTERN_INGRESS_PORT: '0', POSTERN_DATA_DIR: dataDir };
  const child = spawnPostern(name, args, local, nodeArgs);
  const line = await waitForLog(child, (o) => o.msg === 'listening', { timeoutMs: 15_000 });
  const [port, ingressPort] = [line.port as number, line.ingressPort as number];
  return {
    child,
    ports: new Map([
      [Number(env.POSTERN_PORT ?? serverDefaults.port), port],
      [Number(env.POSTERN_INGRESS_PORT ?? serverDefaults.ingressPort), ingressPort],
    ]),
    env: { ...local, POSTERN_PORT: String(port), POSTERN_INGRESS_PORT: String(ingressPort) },
  };
}

async function runAgent(name: string, env: Record<string, string>, args: string[], nodeArgs: string[] = []): Promise<Running> {
  const local = { ...env, POSTERN_STATUS_PORT: '0', POSTERN_STATUS_HOST: '127.0.0.1' };
  const child = spawnPostern(name, args, local, nodeArgs);
  const line = await waitForLog(child, (o) => o.msg === 'agent status listening', { timeoutMs: 15_000 });
  const statusPort = line.statusPort as number;
  const url = `http://127.0.0.1:${statusPort}/readyz`;
  await waitUntilAsync(async () => (await statusOf(url)) === 200, `${name} to be ready (a tunnel up)`, 15_000);
  return { child, ports: new Map([[Number(env.POSTERN_STATUS_PORT), statusPort]]), env: { ...local, POSTERN_STATUS_PORT: String(statusPort) } };
}

async function runDemoTool(name: string, args: string[]): Promise<Running> {
  const local = [...args];
  local[local.indexOf('--port') + 1] = '0';
  if (local.includes('--host')) local[local.indexOf('--host') + 1] = '127.0.0.1';
  else local.push('--host', '127.0.0.1');
  const child = spawnPostern(name, local, {});
  let port = 0;
  await waitUntil(() => {
    port = Number(/demo tool listening on http:\/\/[^:]+:(\d+)/.exec(child.lastLines())?.[1] ?? 0);
    return port > 0;
  }, `${name} to listen`, 15_000);
  return { child, ports: new Map([[Number(flagValue(args, '--port') ?? 8000), port]]), env: {} };
}

/** A one-shot `postern …` (what `docker compose exec` / `kubectl exec` run), with the container's environment. */
async function postern(args: string[], env: Record<string, string>): Promise<string> {
  const { stdout } = await execFileP(process.execPath, [cliPath(), ...args], { env: { ...process.env, ...env }, timeout: 15_000 });
  return stdout;
}

async function statusOf(url: string): Promise<number> {
  try {
    return (await send(url, { timeoutMs: 3_000 })).status;
  } catch {
    return 0; // refused or no answer
  }
}

async function waitUntilAsync(check: () => Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function getJson(url: string, opts: Parameters<typeof send>[1] = {}): Promise<{ status: number; json: Record<string, unknown>; text: string }> {
  const res = await send(url, opts);
  const text = res.body.toString('utf8');
  return { status: res.status, json: JSON.parse(text) as Record<string, unknown>, text };
}

/** Runs a HEALTHCHECK's `node -e …` as Docker would inside the container, with its env and the real ports. */
async function runHealthCheck(cmd: string[], running: Running): Promise<void> {
  if (cmd[0] !== 'node') throw new Error(`health check ${JSON.stringify(cmd)}: only node commands are run here`);
  let args = cmd.slice(1);
  for (const [from, to] of running.ports) args = args.map((a) => a.replaceAll(`127.0.0.1:${from}`, `127.0.0.1:${to}`));
  await execFileP(process.execPath, args, { env: { ...process.env, ...running.env }, timeout: 10_000 });
}

/** SIGTERM, as `docker stop` / the kubelet send it; resolves with the exit once it came, within `graceMs`. */
async function stopWithin(running: Running, graceMs: number): Promise<{ code: number | null; ms: number }> {
  const started = performance.now();
  running.child.proc.kill('SIGTERM');
  const exit = await within(running.child.exited, graceMs, `${running.child.name} to exit after SIGTERM`);
  return { code: exit.code, ms: performance.now() - started };
}

// ============================================================================

describe('every deploy file', () => {
  const files = [COMPOSE_FILE, ENV_EXAMPLE, ...Object.values(K8S_DIRS).flatMap(yamlFiles)];

  it('names only POSTERN_ variables the code reads, also in comments', () => {
    const known = new Set([...SERVER_ENV, ...AGENT_ENV, ...Object.keys(CLI_ENV)]);
    const unknown = files.flatMap((f) =>
      [...readFileSync(f, 'utf8').matchAll(/\bPOSTERN_[A-Z0-9_]+\b/g)].map((m) => m[0]).filter((n) => !known.has(n)).map((n) => `${relative(REPO_ROOT, f)}: ${n}`),
    );
    expect(unknown).toEqual([]);
    // The names in neither table are read where this test says.
    for (const [name, file] of Object.entries(CLI_ENV)) expect(readFileSync(join(REPO_ROOT, file), 'utf8')).toContain(`process.env.${name}`);
  });
});

describe('deploy/docker-compose.yml', () => {
  it("builds each image from this repository's Dockerfile for its process, tagged with this version, and never pulls one", () => {
    for (const [name, svc] of Object.entries(compose.services)) {
      const role = roleOf(svc.command);
      expect(svc.build, name).toBeDefined();
      expect(resolve(DEPLOY, svc.build!.context), name).toBe(REPO_ROOT);
      expect(svc.build!.dockerfile, name).toBe(DOCKERFILE[role]);
      expect(statSync(join(REPO_ROOT, svc.build!.dockerfile)).isFile()).toBe(true);
      expect(svc.pull_policy, `${name}: a registry's image of that name is not this code`).toBe('build');
      expect(svc.image, name).toBe(`postern/${role === 'server' ? 'server' : 'agent'}:${PKG.version}`);
    }
  });

  it("runs only postern subcommands and flags that exist, after the images' tini ENTRYPOINT", () => {
    for (const [name, svc] of Object.entries(compose.services)) {
      const role = roleOf(svc.command);
      expect(commandProblem(svc.command!), name).toBeUndefined();
      // `command:` only makes sense after `node <bin>`; signals need an init unless the image has one.
      const ep = entrypoint(role);
      expect(ep.slice(-2), name).toEqual(['node', PKG.bin.postern]);
      expect(ep[0] === 'tini' || svc.init === true, `${name}: no init process forwards docker stop's SIGTERM`).toBe(true);
    }
    // Step 3 runs the CLI by its path inside the image, in the server's container.
    const [serverName] = composeService('server');
    const step3 = `docker compose exec -T ${serverName} node ${PKG.bin.postern} client create --name demo --json`;
    expect(composeText).toContain(step3);
    expect(commandProblem(['client', 'create', '--name', 'demo', '--json'])).toBeUndefined();
    expect(only(runtimeStage(readDockerfile('Dockerfile.server')), 'WORKDIR').args).toBe('/app');
  });

  it("sets only environment variables the processes read, and the agent uses the seed's names", () => {
    for (const [name, svc] of Object.entries(compose.services)) {
      expect(unexpectedNames(composeEnvNames(svc), roleOf(svc.command)), name).toEqual([]);
    }
    const [, agent] = composeService('agent');
    expect(composeEnvNames(agent)).toEqual(expect.arrayContaining([...SEED_NAMES, 'POSTERN_STATUS_PORT', 'POSTERN_STATUS_HOST']));
    expect(composeEnv(agent, {}).POSTERN_STATUS_HOST).toBe('0.0.0.0');
  });

  it('publishes the private listener and the status port on 127.0.0.1 only, and wires every port and URL to a listener', () => {
    const vars = { ...readDotenv(ENV_EXAMPLE), POSTERN_ADMIN_TOKEN: 'x' };
    const byName = new Map<string, number[]>();
    for (const [name, svc] of Object.entries(compose.services)) {
      const role = roleOf(svc.command);
      const listening = listenPorts(role, { ...imageEnv(role), ...composeEnv(svc, vars) }, svc.command!);
      byName.set(name, listening);
      for (const p of publishedPorts(svc)) expect(listening, `${name} publishes ${p.target}, where nothing listens`).toContain(p.target);
    }
    const [, server] = composeService('server');
    const serverEnv = { ...imageEnv('server'), ...composeEnv(server, vars) };
    const ingress = publishedPorts(server).filter((p) => p.target === Number(serverEnv.POSTERN_INGRESS_PORT));
    expect(ingress.length).toBeGreaterThan(0);
    for (const p of ingress) expect(p.hostIp, 'the private listener').toBe('127.0.0.1');
    const [, agent] = composeService('agent');
    const agentEnv = composeEnv(agent, vars);
    for (const p of publishedPorts(agent)) expect(p.hostIp, "the agent's status port").toBe('127.0.0.1');
    // The CLI's default --server is the container's own private listener (so `exec … client create` needs no flag).
    expect(new URL(cliDefaultServer).port).toBe(serverEnv.POSTERN_INGRESS_PORT);
    // The agent's URLs name services and the ports they listen on.
    const [toolName] = composeService('demo-tool');
    const [serverName] = composeService('server');
    expect(new URL(agentEnv.PROXY_URL!).hostname).toBe(serverName);
    expect(Number(new URL(agentEnv.PROXY_URL!).port)).toBe(Number(serverEnv.POSTERN_PORT));
    expect(new URL(agentEnv.TOOL_URL!).hostname).toBe(toolName);
    expect(byName.get(toolName)).toContain(Number(new URL(agentEnv.TOOL_URL!).port));
    // Step 5's curl goes to the published private port.
    expect(composeText).toContain(`curl -s "http://127.0.0.1:${ingress[0]!.published}/t/`);
  });

  it('gives the server and the agent longer to stop than they drain', () => {
    const vars = { ...readDotenv(ENV_EXAMPLE), POSTERN_ADMIN_TOKEN: 'x', CLIENT_ID: 'c', CLIENT_TOKEN: 't' };
    for (const role of ['server', 'agent'] as const) {
      const [name, svc] = composeService(role);
      const env = { ...imageEnv(role), ...composeEnv(svc, vars) };
      // Docker's default is 10 s.
      expect(seconds(svc.stop_grace_period, 10) * 1000, name).toBeGreaterThan(drainMs(role, env));
    }
  });

  it("keeps the server's store on a named volume", () => {
    const [, server] = composeService('server');
    const dataDir = { ...imageEnv('server'), ...composeEnv(server, { POSTERN_ADMIN_TOKEN: 'x' }) }.POSTERN_DATA_DIR;
    const mounts = (server.volumes ?? []).map((v) => (typeof v === 'string' ? { source: v.split(':')[0], target: v.split(':')[1] } : v));
    const data = mounts.find((m) => m.target === dataDir);
    expect(data, `a volume at POSTERN_DATA_DIR (${dataDir})`).toBeDefined();
    expect(Object.keys(compose.volumes ?? {})).toContain(data!.source);
  });

  it('takes every ${…} value from .env, which .env.example explains, and stops with a hint while the admin token is missing', () => {
    const example = readFileSync(ENV_EXAMPLE, 'utf8');
    const used = new Set([...composeText.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]!));
    for (const name of used) expect(example, name).toMatch(new RegExp(`^#?\\s*${name}=`, 'm'));
    const [, server] = composeService('server');
    expect(() => composeEnv(server, readDotenv(ENV_EXAMPLE))).toThrow(/POSTERN_ADMIN_TOKEN.*\.env/);
  });

  it('runs as its header says: server and tool, client create in the server container, the agent, then curl through the private port', async () => {
    const [serverName, serverSvc] = composeService('server');
    const [toolName, toolSvc] = composeService('demo-tool');
    const [agentName, agentSvc] = composeService('agent');
    const started = performance.now();
    // Step 1: .env from .env.example plus an admin token.
    const vars: Record<string, string> = { ...readDotenv(ENV_EXAMPLE), POSTERN_ADMIN_TOKEN: randomBytes(32).toString('hex') };
    // Step 2: server and tool. The named volume is a fresh directory.
    const server = await runServer(serverName, { ...imageEnv('server'), ...composeEnv(serverSvc, vars) }, serverSvc.command!, tempDir('postern-compose-'));
    const tool = await runDemoTool(toolName, toolSvc.command!);
    const services = new Map([
      [serverName, server],
      [toolName, tool],
    ]);
    // Step 3: `exec` runs in the server's container, with its environment; the jq line appends the two values.
    const ingressPort = Number(composeEnv(serverSvc, vars).POSTERN_INGRESS_PORT);
    const realIngress = server.ports.get(ingressPort)!;
    const created = JSON.parse(
      await postern(['client', 'create', '--name', 'demo', '--json'], { ...server.env, POSTERN_SERVER: cliDefaultServer.replace(`:${ingressPort}`, `:${realIngress}`) }),
    ) as { clientId: string; clientToken: string };
    Object.assign(vars, { CLIENT_ID: created.clientId, CLIENT_TOKEN: created.clientToken });
    // Step 4: the agent, its URLs pointing at the services' real ports.
    const agentEnv = { ...imageEnv('agent'), ...composeEnv(agentSvc, vars) };
    for (const setting of ['PROXY_URL', 'TOOL_URL']) {
      const u = new URL(agentEnv[setting]!);
      const target = services.get(u.hostname)?.ports.get(Number(u.port));
      expect(target, `${setting} ${agentEnv[setting]}`).toBeDefined();
      agentEnv[setting] = agentEnv[setting]!.replace(`//${u.host}`, `//127.0.0.1:${target}`);
    }
    const agent = await runAgent(agentName, agentEnv, agentSvc.command!);
    services.set(agentName, agent);
    const ready = performance.now();

    // Step 5, and the answer the header shows.
    const hello = await getJson(`http://127.0.0.1:${realIngress}/t/${created.clientId}/hello`);
    expect(hello.status).toBe(200);
    expect(hello.json.hello).toBeDefined();
    expect(composeText).toContain(`-> ${hello.text.trim()}`);
    // Anything else is echoed; TOOL_SECRET from .env reached the tool, added by the agent.
    const echo = await getJson(`http://127.0.0.1:${realIngress}/t/${created.clientId}/anything?x=1`, { method: 'POST', body: 'abc' });
    expect(echo.json).toEqual({ method: 'POST', path: '/anything?x=1', bodyBytes: 3, credentialPresent: vars.TOOL_SECRET !== '' });

    // The "Then:" lines: status through the admin API, both /metrics.
    const status = await postern(['status'], { ...server.env, POSTERN_SERVER: `http://127.0.0.1:${realIngress}` });
    expect(status).toContain(created.clientId);
    for (const url of [`http://127.0.0.1:${realIngress}/metrics`, `http://127.0.0.1:${agent.env.POSTERN_STATUS_PORT}/metrics`]) {
      const res = await send(url);
      expect(res.status, url).toBe(200);
      expect(res.body.toString()).toMatch(/^postern_/m);
    }
    // Every service's health check (its own, or its image's) passes, as `docker compose ps` would show.
    for (const [name, svc] of Object.entries(compose.services)) {
      const test = svc.healthcheck?.test;
      const cmd = test ? (test[0] === 'CMD' ? test.slice(1) : test) : healthCheck(runtimeStage(readDockerfile(DOCKERFILE[roleOf(svc.command)]))).command;
      await runHealthCheck(cmd, services.get(name)!);
    }

    // `docker compose down`: dependents first, SIGTERM, each exits cleanly within its stop_grace_period.
    const stops: string[] = [];
    for (const [name, svc, running] of [
      [agentName, agentSvc, agent],
      [serverName, serverSvc, server],
      [toolName, toolSvc, tool],
    ] as const) {
      const stop = await stopWithin(running, seconds(svc.stop_grace_period, 10) * 1000);
      expect(stop.code, name).toBe(0);
      stops.push(`${name} ${Math.round(stop.ms)} ms`);
    }
    process.stderr.write(`compose run: ready ${Math.round(ready - started)} ms after start; stopped: ${stops.join(', ')}\n`);
  });
});

describe('deploy/kubernetes', () => {
  it('applies every manifest through a kustomization (examples aside), server and agent in their own namespaces, images of this version', () => {
    const namespaces: string[] = [];
    for (const dir of Object.keys(K8S_DIRS) as K8sDir[]) {
      const kust = one(ofKind(dir, 'Kustomization'), `kustomization in ${dir}`);
      namespaces.push(kust.namespace!);
      const files = yamlFiles(K8S_DIRS[dir]).map((f) => relative(K8S_DIRS[dir], f));
      const applied = files.filter((f) => f !== 'kustomization.yaml' && !f.endsWith('.example.yaml'));
      expect([...(kust.resources ?? [])].sort(), dir).toEqual(applied.sort());
      const { container, role } = deployment(dir);
      const image = `postern/${role}`;
      expect(container.image).toBe(`${image}:${PKG.version}`);
      expect(kust.images?.find((i) => i.name === image)?.newTag).toBe(PKG.version);
    }
    expect(namespaces[0]).toBeDefined();
    expect(namespaces[0]).not.toBe(namespaces[1]);
  });

  it("sets only env vars the processes read (the agent by the seed's names), from Secret keys that exist, with values the real config loaders accept", () => {
    for (const dir of Object.keys(K8S_DIRS) as K8sDir[]) {
      const { container, role } = deployment(dir);
      expect(container.command, `${dir}: command would replace the image's tini ENTRYPOINT`).toBeUndefined();
      expect(commandProblem(container.args!)).toBeUndefined();
      expect(unexpectedNames((container.env ?? []).map((e) => e.name), role), dir).toEqual([]);
      const env = podEnv(dir, container, role); // throws on a missing Secret key
      if (role === 'server') expect(() => loadServerConfig(env)).not.toThrow();
      else expect(() => loadAgentConfig(env)).not.toThrow();
    }
    const { container } = deployment('agent');
    const byName = new Map((container.env ?? []).map((e) => [e.name, e]));
    for (const name of SEED_NAMES) expect(byName.has(name), name).toBe(true);
    for (const secret of ['CLIENT_ID', 'CLIENT_TOKEN', 'TOOL_SECRET']) expect(byName.get(secret)?.valueFrom?.secretKeyRef, `${secret} from a Secret`).toBeDefined();
    expect(byName.get('POSTERN_STATUS_HOST')?.value, 'probes and scrapes come from outside the pod').toBe('0.0.0.0');
  });

  it('points container ports, probes, Services, the Ingress and the scrape annotations at the listeners the env configures', () => {
    for (const dir of Object.keys(K8S_DIRS) as K8sDir[]) {
      const { dep, container, role } = deployment(dir);
      const env = podEnv(dir, container, role);
      const listening = LISTEN_SETTINGS[role].map((s) => Number(env[s]));
      expect(container.ports?.map((p) => p.containerPort).sort()).toEqual([...listening].sort());
      for (const probe of [container.readinessProbe, container.livenessProbe]) {
        expect(probe, `${dir}: readiness and liveness probes`).toBeDefined();
        expect(listening).toContain(containerPortOf(container, probe!.httpGet.port));
      }
      expect(container.readinessProbe!.httpGet.path).toBe('/readyz');
      expect(container.livenessProbe!.httpGet.path).toBe('/healthz');
      const ann = dep.spec.template.metadata.annotations ?? {};
      expect(ann['prometheus.io/scrape']).toBe('true');
      expect(listening).toContain(Number(ann['prometheus.io/port']));
      expect(ann['prometheus.io/path']).toBe('/metrics');
      for (const [k, v] of Object.entries(dep.spec.selector.matchLabels)) expect(dep.spec.template.metadata.labels[k]).toBe(v);
    }
    // Server: readiness and scrapes on the private listener (where /readyz and /metrics are).
    const { dep, container } = deployment('server');
    const env = podEnv('server', container, 'server');
    expect(containerPortOf(container, container.readinessProbe!.httpGet.port)).toBe(Number(env.POSTERN_INGRESS_PORT));
    expect(Number(dep.spec.template.metadata.annotations!['prometheus.io/port'])).toBe(Number(env.POSTERN_INGRESS_PORT));
    // Services select the server's pods and reach the listener their name says.
    const services = ofKind('server', 'Service');
    const expected: Record<string, string> = { 'postern-public': 'POSTERN_PORT', 'postern-private': 'POSTERN_INGRESS_PORT' };
    expect(services.map((s) => s.metadata.name).sort()).toEqual(Object.keys(expected).sort());
    for (const svc of services) {
      for (const [k, v] of Object.entries(svc.spec.selector as Record<string, string>)) expect(dep.spec.template.metadata.labels[k]).toBe(v);
      const port = one(svc.spec.ports as { targetPort: number | string }[], `port of ${svc.metadata.name}`);
      expect(containerPortOf(container, port.targetPort), svc.metadata.name).toBe(Number(env[expected[svc.metadata.name]!]));
    }
    // The Ingress sends the path agents dial (from PROXY_URL, as the agent derives it) to the public Service.
    const ingress = one(ofKind('server', 'Ingress'), 'Ingress');
    const path = one(ingress.spec.rules[0].http.paths as { path: string; backend: { service: { name: string; port: { name: string } } } }[], 'Ingress path');
    const { container: agentContainer } = deployment('agent');
    const tunnelUrl = new URL(loadAgentConfig(podEnv('agent', agentContainer, 'agent')).tunnelUrl);
    expect(tunnelUrl.protocol, 'agents dial wss through the Ingress').toBe('wss:');
    expect(path.path).toBe(tunnelUrl.pathname);
    expect(path.backend.service.name).toBe('postern-public');
    expect(ingress.spec.tls[0].hosts).toContain(tunnelUrl.hostname);
  });

  it('runs as non-root with a read-only root filesystem, writing only where a volume is mounted', () => {
    for (const dir of Object.keys(K8S_DIRS) as K8sDir[]) {
      const { dep, container, role } = deployment(dir);
      const pod = dep.spec.template.spec;
      const sc = { ...pod.securityContext, ...container.securityContext };
      expect(sc.runAsNonRoot, dir).toBe(true);
      // The image's USER is a name: the kubelet can only check runAsNonRoot against a number.
      const user = only(runtimeStage(readDockerfile(DOCKERFILE[role])), 'USER').args;
      if (!/^\d+$/.test(user)) expect(sc.runAsUser, `${dir}: USER ${user} is not numeric`).toBeGreaterThan(0);
      expect(sc.readOnlyRootFilesystem, dir).toBe(true);
      expect(sc.allowPrivilegeEscalation, dir).toBe(false);
      expect(container.resources?.requests?.memory, dir).toBeDefined();
      expect(container.resources?.limits?.memory, dir).toBeDefined();
      const mounts = (container.volumeMounts ?? []).map((m) => m.mountPath);
      const env = podEnv(dir, container, role);
      if (role === 'server') {
        expect(mounts, 'POSTERN_DATA_DIR').toContain(env.POSTERN_DATA_DIR);
        const volume = pod.volumes?.find((v) => v.name === container.volumeMounts!.find((m) => m.mountPath === env.POSTERN_DATA_DIR)!.name);
        const claims = ofKind('server', 'PersistentVolumeClaim').map((c) => c.metadata.name);
        expect(claims).toContain(volume?.persistentVolumeClaim?.claimName);
      } else {
        const audit = env.POSTERN_AUDIT_LOG ?? 'stdout';
        if (audit !== 'stdout' && audit !== 'off') expect(mounts, 'POSTERN_AUDIT_LOG').toContain(dirname(audit));
      }
    }
  });

  it('gives each pod longer than preStop + drain to stop; one server replica (Recreate) on its ReadWriteOnce claim; several agents', () => {
    for (const dir of Object.keys(K8S_DIRS) as K8sDir[]) {
      const { dep, container, role } = deployment(dir);
      const graceMs = (dep.spec.template.spec.terminationGracePeriodSeconds ?? 30) * 1000;
      expect(graceMs, dir).toBeGreaterThan(preStopSeconds(container) * 1000 + drainMs(role, podEnv(dir, container, role)));
    }
    const { dep: server } = deployment('server');
    expect(server.spec.replicas).toBe(1);
    expect(server.spec.strategy?.type).toBe('Recreate');
    expect(one(ofKind('server', 'PersistentVolumeClaim'), 'claim').spec.accessModes).toEqual(['ReadWriteOnce']);
    const { dep: agent } = deployment('agent');
    expect(agent.spec.replicas).toBeGreaterThanOrEqual(2);
    expect(agent.spec.strategy?.rollingUpdate?.maxUnavailable).toBe(0);
  });

  it("lets the agent's pods reach only DNS, the server's and the tool's ports, and be reached only on the status port", () => {
    const { dep, container } = deployment('agent');
    const policy = one(ofKind('agent', 'NetworkPolicy'), 'NetworkPolicy');
    for (const [k, v] of Object.entries(policy.spec.podSelector.matchLabels as Record<string, string>)) expect(dep.spec.template.metadata.labels[k]).toBe(v);
    expect(policy.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    const portsOf = (rules: { ports?: { port: number }[] }[]): number[] => rules.flatMap((r) => (r.ports ?? []).map((p) => p.port));
    const env = podEnv('agent', container, 'agent');
    const defaultPort = (u: URL): number => Number(u.port || (u.protocol === 'https:' ? 443 : 80));
    expect(portsOf(policy.spec.egress)).toEqual(expect.arrayContaining([53, defaultPort(new URL(env.PROXY_URL!)), defaultPort(new URL(env.TOOL_URL!))]));
    expect(new Set(portsOf(policy.spec.ingress))).toEqual(new Set([Number(env.POSTERN_STATUS_PORT)]));
  });

  it('starts as the manifests say, with writes only where volumes are: probes, scrapes, allow rules and credentials work, and the server drains as the probes assume', async () => {
    const { dep: serverDep, container: sc } = deployment('server');
    const { dep: agentDep, container: ac } = deployment('agent');
    // Server: each volume mount is a temp dir, and only those are writable.
    const serverEnv = podEnv('server', sc, 'server');
    const mounts = localMounts(sc);
    const tmp = mounts.get('/tmp');
    if (tmp) serverEnv.TMPDIR = tmp;
    const server = await runServer('k8s-server', serverEnv, sc.args!, mounts.get(serverEnv.POSTERN_DATA_DIR!)!, writeOnly([...mounts.values()]));
    const ingress = server.ports.get(Number(serverEnv.POSTERN_INGRESS_PORT))!;
    // `kubectl exec deploy/postern-server -- node dist/cli/postern.js client create …`: the pod's env has the admin token.
    const created = JSON.parse(
      await postern(['client', 'create', '--name', 'acme', '--json'], { ...server.env, POSTERN_SERVER: `http://127.0.0.1:${ingress}` }),
    ) as { clientId: string; clientToken: string };
    // The tool behind TOOL_URL: the demo tool, under TOOL_URL's path prefix.
    const tool = await runDemoTool('k8s-tool', ['demo-tool', '--port', '0']);
    const agentEnv = podEnv('agent', ac, 'agent');
    const toolUrl = new URL(agentEnv.TOOL_URL!);
    Object.assign(agentEnv, {
      CLIENT_ID: created.clientId,
      CLIENT_TOKEN: created.clientToken,
      PROXY_URL: `http://127.0.0.1:${server.ports.get(Number(serverEnv.POSTERN_PORT))}`,
      TOOL_URL: `http://127.0.0.1:${[...tool.ports.values()][0]}${toolUrl.pathname.replace(/\/$/, '')}`,
    });
    // Agent: no volume, so nothing writable at all.
    const agent = await runAgent('k8s-agent', agentEnv, ac.args!, writeOnly([...localMounts(ac).values()]));

    // Every probe and scrape annotation, on the port it names, answers 200.
    for (const [dep, container, running] of [
      [serverDep, sc, server],
      [agentDep, ac, agent],
    ] as const) {
      for (const probe of [container.readinessProbe!, container.livenessProbe!]) {
        const port = running.ports.get(containerPortOf(container, probe.httpGet.port));
        expect(await statusOf(`http://127.0.0.1:${port}${probe.httpGet.path}`), `${dep.metadata.name} ${probe.httpGet.path}`).toBe(200);
      }
      const ann = dep.spec.template.metadata.annotations!;
      const scrape = await send(`http://127.0.0.1:${running.ports.get(Number(ann['prometheus.io/port']))}${ann['prometheus.io/path']}`);
      expect(scrape.status).toBe(200);
      expect(scrape.body.toString()).toMatch(/^postern_/m);
    }

    // TOOL_TYPE + TOOL_SECRET from the Secret reach the tool; POSTERN_ALLOW refuses what its rules do not allow.
    const base = `http://127.0.0.1:${ingress}/t/${created.clientId}`;
    const allowed = await getJson(`${base}/api/v4/version`);
    expect(allowed.status).toBe(200);
    expect(allowed.json).toMatchObject({ method: 'GET', path: '/api/v4/version', credentialPresent: true });
    const denied = await getJson(`${base}/api/v4/projects/42`, { method: 'DELETE' });
    expect(denied.status).toBe(403);
    expect(denied.json.error).toBe('forbidden_by_agent');

    // The drain: an upload in flight keeps the server draining; meanwhile readiness fails and liveness holds.
    const body = new PassThrough();
    const upload = send(`${base}/api/v4/projects/42/hooks`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    upload.catch(() => {});
    const parts = ['{"url":', '"https://hooks.example"}'];
    body.write(parts[0]);
    const agentStatus = `http://127.0.0.1:${agent.env.POSTERN_STATUS_PORT}/status`;
    await waitUntilAsync(async () => ((await getJson(agentStatus)).json.inFlight as number) >= 1, 'the upload to reach the agent', 10_000);
    const graceMs = serverDep.spec.template.spec.terminationGracePeriodSeconds! * 1000 - preStopSeconds(sc) * 1000;
    const drainStarted = performance.now();
    server.child.proc.kill('SIGTERM');
    const portOf = (probe: Probe): number => server.ports.get(containerPortOf(sc, probe.httpGet.port))!;
    await waitUntilAsync(
      async () => (await statusOf(`http://127.0.0.1:${portOf(sc.readinessProbe!)}${sc.readinessProbe!.httpGet.path}`)) !== 200,
      'readiness to fail once the server drains',
      5_000,
    );
    expect(await statusOf(`http://127.0.0.1:${portOf(sc.livenessProbe!)}${sc.livenessProbe!.httpGet.path}`), 'liveness while draining').toBe(200);
    expect(server.child.exitInfo, 'the server waits for the upload').toBeUndefined();
    body.end(parts[1]);
    const res = await upload;
    expect(res.status).toBe(200);
    expect(res.complete).toBe(true);
    expect(JSON.parse(res.body.toString())).toMatchObject({ method: 'POST', bodyBytes: parts.join('').length, credentialPresent: true });
    const exit = await within(server.child.exited, graceMs, 'the server to exit within the grace period');
    expect(exit.code).toBe(0);
    const agentStop = await stopWithin(agent, agentDep.spec.template.spec.terminationGracePeriodSeconds! * 1000);
    expect(agentStop.code).toBe(0);
    process.stderr.write(`k8s run: server drained and exited ${Math.round(performance.now() - drainStarted)} ms after SIGTERM; agent ${Math.round(agentStop.ms)} ms\n`);
  });
});
