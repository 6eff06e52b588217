import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  argDefaults,
  containerCommand,
  execForm,
  healthCheck,
  instructions,
  keyValues,
  only,
  readDockerfile,
  REPO_ROOT,
  runtimeStage,
  type Stage,
} from '../helpers/dockerfile.js';

/**
 * What the images promise (issue 5) that no engine checks on these machines.
 * What they do when run is test/deploy/production-tree.test.ts.
 */

const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string; license: string };
const IMAGES = [
  { file: 'Dockerfile.server', title: 'postern-server' },
  { file: 'Dockerfile.agent', title: 'postern-agent' },
] as const;

function runSteps(stage: Stage): string[] {
  return instructions(stage, 'RUN').flatMap((i) => i.args.split('&&').map((s) => s.trim()));
}

describe.each(IMAGES)('$file', ({ file, title }) => {
  const stages = readDockerfile(file);
  const runtime = runtimeStage(stages);

  it('is multi-stage on node:24-slim, the runtime stage taking only dist/ from the build stage', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const s of stages) expect(s.image).toBe('node:24-slim');
    const copies = instructions(runtime, 'COPY').map((i) => i.args);
    expect(copies.filter((c) => c.startsWith('--from='))).toEqual(['--from=build /app/dist ./dist']);
    expect(stages[0]!.name).toBe('build');
    expect(runSteps(stages[0]!)).toContain('npm run build');
  });

  it('installs production dependencies only, with the lockfile', () => {
    const npm = runSteps(runtime).filter((s) => s.startsWith('npm '));
    const installs = npm.filter((s) => /^npm (ci|install|i)\b/.test(s));
    expect(installs).toHaveLength(1);
    expect(installs[0]).toMatch(/^npm ci --omit=dev\b/);
  });

  it('runs as a non-root user under tini, stops with SIGTERM', () => {
    const users = instructions(runtime, 'USER').map((i) => i.args);
    expect(users.at(-1)).toBeDefined();
    expect(users.at(-1)).not.toMatch(/^(root|0)(:|$)/);
    expect(runSteps(runtime).some((s) => /^apt-get install .*\btini\b/.test(s))).toBe(true);
    expect(containerCommand(runtime).slice(0, 4)).toEqual(['tini', '--', 'node', 'dist/cli/postern.js']);
    expect(only(runtime, 'STOPSIGNAL').args).toBe('SIGTERM');
  });

  it('has a HEALTHCHECK in exec form with bounded timing, and the OCI labels', () => {
    const hc = healthCheck(runtime);
    expect(hc.command[0]).toBe('node');
    expect(Object.keys(hc.options).sort()).toEqual(['interval', 'retries', 'start-period', 'timeout']);
    expect(hc.timeoutMs).toBeLessThanOrEqual(10_000);

    const labels = keyValues(runtime, 'LABEL');
    const oci = (k: string): string | undefined => labels[`org.opencontainers.image.${k}`];
    expect(oci('title')).toBe(title);
    expect(oci('description')).toMatch(/\S/);
    expect(oci('licenses')).toBe(pkg.license);
    for (const [label, arg] of [['version', 'VERSION'], ['revision', 'REVISION'], ['source', 'SOURCE']] as const) {
      expect(oci(label)).toBe(`\${${arg}}`);
      expect(argDefaults(runtime)).toHaveProperty(arg);
    }
    // A forgotten bump shows here, not in a registry.
    expect(argDefaults(runtime).VERSION).toBe(pkg.version);
  });
});

describe('image specifics', () => {
  it('both images share one build stage (the production-tree test builds dist/ once for both)', () => {
    const [server, agent] = IMAGES.map((i) => readDockerfile(i.file).slice(0, -1));
    expect(agent).toEqual(server);
  });

  it('server: checks the public /healthz, exposes both ports, keeps /data a volume', () => {
    const runtime = runtimeStage(readDockerfile('Dockerfile.server'));
    const env = keyValues(runtime, 'ENV');
    expect(healthCheck(runtime).command.join(' ')).toMatch(/POSTERN_PORT.*'\/healthz'/);
    expect(only(runtime, 'EXPOSE').args.split(/\s+/).sort()).toEqual([env.POSTERN_PORT, env.POSTERN_INGRESS_PORT].sort());
    expect(execFormOrWord(only(runtime, 'VOLUME').args)).toEqual([env.POSTERN_DATA_DIR]);
    expect(execForm(only(runtime, 'CMD').args)).toEqual(['server']);
  });

  it('agent: ships the presets, checks /readyz on its status port, which listens on all interfaces and is exposed', () => {
    const runtime = runtimeStage(readDockerfile('Dockerfile.agent'));
    const env = keyValues(runtime, 'ENV');
    expect(instructions(runtime, 'COPY').map((i) => i.args)).toContain('presets ./presets');
    expect(healthCheck(runtime).command.join(' ')).toMatch(/POSTERN_STATUS_PORT.*'\/readyz'/);
    expect(env.POSTERN_STATUS_HOST).toBe('0.0.0.0');
    expect(only(runtime, 'EXPOSE').args).toBe(env.POSTERN_STATUS_PORT);
    expect(execForm(only(runtime, 'CMD').args)).toEqual(['agent']);
  });
});

describe('.dockerignore', () => {
  const patterns = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const ignored = (path: string): boolean => patterns.some((p) => ignores(p, path));

  it('keeps installed, built and local state out of the build context', () => {
    // Re-inclusions (!pattern) would need Docker's full matcher.
    expect(patterns.filter((p) => p.startsWith('!'))).toEqual([]);
    for (const path of ['node_modules/fastify/package.json', 'dist/cli/postern.js', '.test-build/cli/postern.js', 'data/postern.db', 'data/admin-token', '.git/HEAD', 'test-results.json', '.env', 'deploy/.env']) {
      expect(ignored(path), path).toBe(true);
    }
  });

  it('leaves in what the builds need', () => {
    const include = (JSON.parse(readFileSync(join(REPO_ROOT, 'tsconfig.build.json'), 'utf8')) as { include: string[] }).include;
    const needed = ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'presets/gitlab.json', ...include.map((d) => `${d}/x.ts`)];
    expect(needed.filter(ignored)).toEqual([]);
  });
});

/** VOLUME takes a JSON array or plain words. */
function execFormOrWord(args: string): string[] {
  return args.startsWith('[') ? execForm(args) : args.split(/\s+/);
}

/**
 * Whether a .dockerignore pattern excludes `path` (relative to the
 * context): Go's filepath.Match plus `**`, matched against the path and each
 * of its parent directories (an excluded directory takes its contents along).
 */
function ignores(pattern: string, path: string): boolean {
  const clean = pattern.replace(/^\/+|\/+$/g, '');
  const glob = (part: string): string => part.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]');
  // `**/` also matches no directory at all.
  const re = new RegExp(`^${clean.split('**/').map((p) => p.split('**').map(glob).join('.*')).join('(?:.*/)?')}$`);
  const segments = path.split('/');
  return segments.some((_, i) => re.test(segments.slice(0, i + 1).join('/')));
}
