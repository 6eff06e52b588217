import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, realpathSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import {
  containerCommand,
  healthCheck,
  keyValuePairs,
  readDockerfile,
  REPO_ROOT,
  runtimeStage,
  type HealthCheck,
} from './dockerfile.js';

/**
 * An image's /app rebuilt without Docker: the runtime stage of a Dockerfile
 * replayed in a directory outside the repository (so nothing resolves from
 * the repo's node_modules), and its processes started the way the image
 * starts them. The build stage (`npm run build`) is the repo's own tsc,
 * which is what that stage runs on the same sources.
 */

const execFileAsync = promisify(execFile);

/** The directory of the project's Node 24 binary (node_modules/node/bin holds only `node`). */
export const NODE_BIN_DIR = dirname(realpathSync(join(REPO_ROOT, 'node_modules', '.bin', 'node')));

/**
 * What a container's environment has besides the image's ENV: PATH (here
 * with the project's Node 24 first, as /usr/local/bin/node is in
 * node:24-slim) and HOME. Nothing of the test worker's environment
 * (NODE_OPTIONS, npm_config_*, VITEST_*) leaks in.
 */
export function baseEnv(): Record<string, string> {
  return { PATH: `${NODE_BIN_DIR}:/usr/local/bin:/usr/bin:/bin`, HOME: process.env.HOME ?? '/tmp' };
}

export interface ImageTree {
  /** The Dockerfile it was built from. */
  file: string;
  /** The image's WORKDIR (/app). */
  dir: string;
  /**
   * HOME of its processes: empty, like the node user's. The host's would do
   * for npm's cache, but Node's CommonJS loader also looks in ~/.node_modules.
   */
  home: string;
  /** The runtime stage's ENV. */
  env: Record<string, string>;
  /**
   * ENTRYPOINT + CMD from `node` on: the init before it (`tini --`, checked
   * by dockerfiles.test.ts) only forwards signals, and is not on the host.
   */
  command: string[];
  health: HealthCheck;
}

/** Steps of a RUN that change the system outside /app: the image needs them, the tree does not. */
const SYSTEM_STEPS = [
  /^apt-get update$/,
  /^apt-get install /,
  /^rm -rf \/var\/lib\/apt\/lists\/\*$/,
  /^mkdir -p \/data$/,
  /^chown node:node \/data$/,
  /^chmod 700 \/data$/,
  // Would empty the host's npm cache.
  /^npm cache clean --force$/,
];

/**
 * Compiles the sources the way the images' build stage does (`npm run
 * build`, i.e. package.json's build script: tsc) into `<outDir>/dist`.
 */
export async function buildDist(outDir: string): Promise<string> {
  const build = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.build;
  const args = build?.split(/\s+/) ?? [];
  if (args[0] !== 'tsc') throw new Error(`the build script is no longer plain tsc (${build}): teach buildDist what it does`);
  const dist = join(outDir, 'dist');
  const tsc = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  await run(join(NODE_BIN_DIR, 'node'), [tsc, ...args.slice(1), '--outDir', dist], { cwd: REPO_ROOT, env: baseEnv() }, 'npm run build (tsc)');
  return dist;
}

/**
 * Replays the runtime stage of `file` in `<parent>/<name>`: COPY from the
 * context and from the build stage's /app/dist, `npm ci` exactly as
 * written (plus --prefer-offline, so the local npm cache serves it), ENV
 * collected. Any instruction it does not know fails, so a change to the
 * Dockerfile cannot silently leave the test behind.
 */
export async function buildImageTree(file: string, parent: string, dist: Promise<string>): Promise<ImageTree> {
  const stage = runtimeStage(readDockerfile(file));
  const dir = join(parent, basename(file).replace(/^Dockerfile\./, ''));
  mkdirSync(dir);
  const home = `${dir}-home`;
  mkdirSync(home);
  const env: Record<string, string> = {};
  for (const { keyword, args } of stage.instructions) {
    if (keyword === 'ENV') for (const [k, v] of keyValuePairs(args)) env[k] = v;
    else if (keyword === 'WORKDIR' && args !== '/app') throw new Error(`${file}: WORKDIR ${args}, the tree stands for /app`);
    else if (keyword === 'COPY') await copyStep(file, args, dir, dist);
    else if (keyword === 'RUN') {
      for (const step of args.split('&&').map((s) => s.trim())) {
        if (step.startsWith('npm ci ')) await npmCi(file, step, dir, { ...baseEnv(), ...env });
        else if (!SYSTEM_STEPS.some((re) => re.test(step))) {
          throw new Error(`${file}: RUN step ${JSON.stringify(step)} is not known to the production-tree test; reproduce it in buildImageTree`);
        }
      }
    }
  }
  const full = containerCommand(stage);
  const nodeAt = full.indexOf('node');
  if (nodeAt < 0) throw new Error(`${file}: the ENTRYPOINT/CMD does not run node: ${JSON.stringify(full)}`);
  return { file, dir, home, env, command: full.slice(nodeAt), health: healthCheck(stage) };
}

/** Installs already made, by their inputs: the command, its environment, the lockfile. */
const installs = new Map<string, Promise<string>>();

/**
 * Runs an image's `npm ci` step in `dir` (adding --prefer-offline, so the
 * local npm cache serves it). The same step on the same inputs in a second
 * image (both images install the same way) hard-links the first tree's
 * node_modules instead of running again: npm ci from one lockfile gives the
 * same tree, and on two loaded cores that halves the install time.
 */
async function npmCi(file: string, step: string, dir: string, env: Record<string, string>): Promise<void> {
  const inputs = ['package.json', 'package-lock.json'].map((f) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), 'utf8') : ''));
  const key = JSON.stringify([step, env, inputs]);
  const first = installs.get(key);
  if (first) {
    await run('cp', ['-al', join(await first, 'node_modules'), join(dir, 'node_modules')], { cwd: dir, env }, `${file}: copy of node_modules`);
    return;
  }
  const done = run('npm', [...step.split(/\s+/).slice(1), '--prefer-offline'], { cwd: dir, env }, `${file}: ${step}`).then(() => dir);
  installs.set(key, done);
  await done;
}

async function copyStep(file: string, args: string, dir: string, dist: Promise<string>): Promise<void> {
  const parts = args.split(/\s+/);
  const from = parts[0]!.startsWith('--from=') ? parts.shift()!.slice('--from='.length) : undefined;
  if (parts.some((p) => p.startsWith('--'))) throw new Error(`${file}: COPY ${args}: flags other than --from are not reproduced`);
  const dest = parts.pop()!;
  if (from !== undefined) {
    // The build stage's WORKDIR is /app and `npm run build` writes dist/ there.
    if (from !== 'build' || parts.join(' ') !== '/app/dist' || dest !== './dist') throw new Error(`${file}: COPY ${args} is not reproduced`);
    cpSync(await dist, join(dir, 'dist'), { recursive: true });
    return;
  }
  for (const src of parts) {
    const target = dest.endsWith('/') ? join(dir, dest, basename(src)) : join(dir, dest);
    cpSync(join(REPO_ROOT, src), target, { recursive: true });
  }
}

async function run(cmd: string, args: string[], opts: { cwd: string; env: Record<string, string> }, what: string): Promise<void> {
  try {
    await execFileAsync(cmd, args, { ...opts, timeout: 110_000, maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${what} failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}

/** Every child still running, SIGKILLed if the worker exits with them alive. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

type ExitInfo = { code: number | null; signal: NodeJS.Signals | null };

/**
 * A process started from an image tree: its output kept (both streams, for
 * failure messages and the pino JSON lines), its exit awaited.
 */
export class TreeProcess {
  readonly proc: ChildProcess;
  readonly lines: string[] = [];
  readonly exited: Promise<ExitInfo>;
  exitInfo: ExitInfo | undefined;
  private readonly waiters = new Set<() => void>();

  constructor(
    readonly name: string,
    command: string[],
    opts: { cwd: string; env: Record<string, string> },
  ) {
    this.proc = spawn(command[0]!, command.slice(1), { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(this.proc);
    this.proc.on('error', (err) => this.lines.push(`spawn failed: ${err.message}`));
    this.exited = new Promise((resolve) =>
      this.proc.once('close', (code, signal) => {
        live.delete(this.proc);
        this.exitInfo = { code, signal };
        for (const w of this.waiters) w();
        resolve(this.exitInfo);
      }),
    );
    for (const stream of [this.proc.stdout!, this.proc.stderr!]) {
      let buf = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        buf += chunk;
        const parts = buf.split('\n');
        buf = parts.pop()!;
        this.lines.push(...parts);
        for (const w of this.waiters) w();
      });
    }
  }

  /** The output, and if Node could not load a module, which one: the error a missing runtime dependency gives. */
  describe(): string {
    const out = this.lines.join('\n');
    const missing = /Cannot find (?:package|module) '([^']+)'/.exec(out);
    const head = missing ? `MISSING RUNTIME DEPENDENCY in the production tree: ${missing[1]}\n` : '';
    const exit = this.exitInfo ? ` (exited: code ${this.exitInfo.code}, signal ${this.exitInfo.signal})` : '';
    return `${head}--- output of ${this.name}${exit} ---\n${out.split('\n').slice(-80).join('\n')}`;
  }

  /** Resolves with the first JSON log line `match` maps to a value; rejects on timeout or exit, with the output. */
  waitForJson<T>(match: (line: Record<string, unknown>) => T | undefined, what: string, timeoutMs = 15_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        for (const line of this.lines) {
          if (!line.startsWith('{')) continue;
          let found: T | undefined;
          try {
            found = match(JSON.parse(line) as Record<string, unknown>);
          } catch {
            continue;
          }
          if (found !== undefined) return done(undefined, found);
        }
        if (this.exitInfo) done(new Error(`${this.name} exited before ${what}\n${this.describe()}`));
      };
      const done = (err: Error | undefined, v?: T): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        if (err) reject(err);
        else resolve(v as T);
      };
      const timer = setTimeout(() => done(new Error(`${this.name}: no ${what} within ${timeoutMs} ms\n${this.describe()}`)), timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  /** Sends `signal` (what `docker stop` sends through tini), SIGKILL after graceMs; resolves with how it exited. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 15_000): Promise<ExitInfo> {
    if (this.exitInfo) return this.exitInfo;
    this.proc.kill(signal);
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    const info = await this.exited;
    clearTimeout(timer);
    return info;
  }
}

/** The environment of a container of this image, with `env` given to `docker run -e`. */
export function containerEnv(tree: ImageTree, env: Record<string, string>): Record<string, string> {
  return { ...baseEnv(), HOME: tree.home, ...tree.env, ...env };
}

/** Starts the image's command (ENTRYPOINT + CMD) in its tree with the image's ENV plus `env` (what `docker run -e` adds). */
export function startImage(tree: ImageTree, name: string, env: Record<string, string>): TreeProcess {
  return new TreeProcess(name, tree.command, { cwd: tree.dir, env: containerEnv(tree, env) });
}

/**
 * Runs the image's HEALTHCHECK command as Docker does (exec form, in
 * WORKDIR, with the container's environment, killed after --timeout).
 * Resolves with its exit code (-1 when it was killed).
 */
export async function runHealthCheck(tree: ImageTree, env: Record<string, string>): Promise<{ code: number; output: string }> {
  const [cmd, ...args] = tree.health.command;
  try {
    const r = await execFileAsync(cmd!, args, { cwd: tree.dir, env: containerEnv(tree, env), timeout: tree.health.timeoutMs });
    return { code: 0, output: r.stdout + r.stderr };
  } catch (err) {
    const e = err as { code?: number | string; killed?: boolean; stdout?: string; stderr?: string; message: string };
    const code = typeof e.code === 'number' ? e.code : -1;
    return { code, output: `${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

/** Directories from `dir` up to / that hold a node_modules Node would search from `dir`. */
export function nodeModulesAbove(dir: string): string[] {
  const found: string[] = [];
  for (let d = dirname(dir); ; d = dirname(d)) {
    if (existsSync(join(d, 'node_modules'))) found.push(join(d, 'node_modules'));
    if (dirname(d) === d) return found;
  }
}
