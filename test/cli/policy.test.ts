import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliPath } from '../helpers/build-cli.js';

let cli = '';
const dir = mkdtempSync(join(tmpdir(), 'postern-policy-cli-'));

beforeAll(() => {
  cli = cliPath();
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `postern policy …` to completion with a clean environment plus `env`. */
function policy(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, 'policy', ...args], { env: { PATH: process.env.PATH ?? '', ...env } });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`postern policy ${args.join(' ')} did not exit`));
    }, 20_000);
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('postern policy test', () => {
  it('shows the exact path the tool gets and the rule that allows it (exit 0)', async () => {
    const r = await policy([
      'test',
      'GET',
      '/api/v4/projects/group%2Fproject/merge_requests?state=opened',
      '--allow',
      'preset:gitlab',
      '--tool-url',
      'http://gitlab.internal:8929/gitlab/',
    ]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(
      [
        'request      GET /api/v4/projects/group%2Fproject/merge_requests?state=opened',
        'confinement  ok: the tool gets GET http://gitlab.internal:8929/gitlab/api/v4/projects/group%2Fproject/merge_requests?state=opened',
        'rules        preset:gitlab: 35 rules; 34 do not match the path (--all lists them)',
        '  allow  merge requests: matches GET, HEAD /api/v4/projects/*/merge_requests',
        'decision     ALLOWED by rule "merge requests"',
        '',
      ].join('\n'),
    );
  });

  it('explains a denial with the closest rule and exits 1', async () => {
    const r = await policy(['test', 'DELETE', '/api/v4/projects/1', '--allow', 'preset:gitlab']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('  no     project: method DELETE is not one of GET, HEAD\n');
    expect(r.stdout).toContain(
      'decision     DENIED (403 forbidden_by_agent): no rule allows DELETE /api/v4/projects/1; closest rule "project": method DELETE is not one of GET, HEAD\n',
    );
    expect(r.stdout).toContain('(TOOL_URL not set: path from the root)');
  });

  it('lists why each rule did not match with --all', async () => {
    const r = await policy(['test', 'GET', '/api/v4/users', '--allow', 'preset:gitlab', '--all']);
    expect(r.code).toBe(1);
    const ruleLines = r.stdout.split('\n').filter((l) => l.startsWith('  no '));
    expect(ruleLines).toHaveLength(35);
    expect(ruleLines[0]).toBe('  no     instance version: path does not match /api/v4/version');
    expect(r.stdout).toContain('decision     DENIED (403 forbidden_by_agent): no rule allows GET /api/v4/users\n');
  });

  it('reports confinement first: a traversal never reaches the rules', async () => {
    const r = await policy(['test', 'GET', '/api/v4/%252e%252e/admin', '--allow', 'preset:gitlab', '--tool-url', 'http://gitlab.internal/gitlab']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe(
      [
        'request      GET /api/v4/%252e%252e/admin',
        'confinement  refused: path contains a dot segment once percent-decoded',
        'rules        not evaluated (the agent refuses the path first)',
        'decision     DENIED (403 forbidden_by_agent): path contains a dot segment once percent-decoded',
        '',
      ].join('\n'),
    );
  });

  it('honours POSTERN_ALLOW, TOOL_TYPE and TOOL_URL from the environment; flags win', async () => {
    const env = { POSTERN_ALLOW: 'preset', TOOL_TYPE: 'github', TOOL_URL: 'https://ghe.internal/api/v3' };
    const fromEnv = await policy(['test', 'GET', '/repos/acme/api/pulls?state=open'], env);
    expect(fromEnv.code).toBe(0);
    expect(fromEnv.stdout).toContain('confinement  ok: the tool gets GET https://ghe.internal/api/v3/repos/acme/api/pulls?state=open\n');
    expect(fromEnv.stdout).toContain('rules        preset:github: ');
    expect(fromEnv.stdout).toContain('decision     ALLOWED by rule "pull requests"\n');

    const flagged = await policy(['test', 'GET', '/repos/acme/api/pulls', '--allow', 'preset:jenkins', '--tool-url', 'http://jenkins.internal'], env);
    expect(flagged.code).toBe(1);
    expect(flagged.stdout).toContain('rules        preset:jenkins: ');
    expect(flagged.stdout).toContain('the tool gets GET http://jenkins.internal/repos/acme/api/pulls\n');
  });

  it('checks header and query constraints from a rules file, without echoing values', async () => {
    const file = join(dir, 'allow.json');
    writeFileSync(
      file,
      JSON.stringify({
        rules: [{ name: 'json search', methods: ['GET'], path: '/search', query: { scope: ['projects'] }, headers: { accept: 'application/json' } }],
      }),
    );
    const ok = await policy(['test', 'GET', '/search?scope=projects', '--allow', file, '--header', 'Accept: application/json']);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain(`rules        ${file}: 1 rule\n`);
    expect(ok.stdout).toContain('decision     ALLOWED by rule "json search"\n');

    const bad = await policy(['test', 'GET', '/search?scope=secret-value', '--allow', file, '--header', 'Accept: text/html']);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain('  no     json search: query parameter "scope" must be one of "projects"\n');
    // The request line and the tool's path repeat what was typed; the verdicts never carry values.
    const verdicts = bad.stdout.split('\n').filter((l) => l.startsWith('  ') || l.startsWith('decision'));
    expect(verdicts.join('\n')).not.toContain('secret-value');

    const sudo = await policy(['test', 'GET', '/api/v4/projects/1', '--allow', 'preset:gitlab', '--header', 'Sudo: root']);
    expect(sudo.code).toBe(1);
    expect(sudo.stdout).toContain('closest rule "project": header "sudo" must be absent');
  });

  it('prints JSON with --json', async () => {
    const r = await policy(['test', 'POST', '/api/v4/projects/42/hooks', '--allow', 'preset:gitlab', '--tool-url', 'http://gitlab.internal', '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as { allowed: boolean; confinement: unknown; decision: unknown; rules: { matched: boolean }[] };
    expect(j.allowed).toBe(true);
    expect(j.confinement).toEqual({ ok: true, path: '/api/v4/projects/42/hooks' });
    expect(j.decision).toEqual({ allowed: true, rule: 'project webhooks', reason: 'allowed by rule "project webhooks"' });
    expect(j.rules.filter((o) => o.matched)).toHaveLength(1);
  });

  it('allows what passes confinement when no rules are set', async () => {
    const r = await policy(['test', 'GET', '/anything', '--tool-url', 'http://tool.internal/base']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('rules        none (POSTERN_ALLOW not set): every path that passes confinement is allowed\n');
  });

  it('exits 2 on usage and configuration errors, with one line', async () => {
    const runs: [string[], Record<string, string>, RegExp][] = [
      [['test', 'GET'], {}, /^postern: usage: postern policy test <METHOD> <PATH>/],
      [['check', 'GET', '/x'], {}, /^postern: usage: /],
      [['test', 'G E T', '/x'], {}, /is not an HTTP method/],
      [['test', 'GET', '/x', '--header', 'no colon'], {}, /--header "no colon": expected 'Name: value'/],
      [['test', 'GET', '/x', '--allow', 'preset:nexus'], {}, /configuration error: POSTERN_ALLOW: unknown preset "nexus"/],
      [['test', 'GET', '/x'], { POSTERN_ALLOW: 'preset', TOOL_TYPE: 'bearer' }, /TOOL_TYPE=bearer has no preset/],
      [['test', 'GET', '/x', '--allow', join(dir, 'missing.json')], {}, /POSTERN_ALLOW: cannot read .*ENOENT/],
      [['test', 'GET', '/x', '--tool-url', 'ftp://x'], {}, /configuration error: --tool-url: scheme ftp: is not supported/],
      [['test', 'GET', '/x', '--frobnicate'], {}, /Unknown option '--frobnicate'/],
    ];
    const results = await Promise.all(runs.map(([args, env]) => policy(args, env)));
    results.forEach((r, i) => {
      expect(r.code, runs[i]![0].join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(runs[i]![2]);
    });
  });

  it('is listed in postern --help', async () => {
    const help = await new Promise<string>((resolve) => {
      const child = spawn(process.execPath, [cli, '--help'], { env: { PATH: process.env.PATH ?? '' } });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d));
      child.on('close', () => resolve(out));
    });
    expect(help).toContain('postern policy test <METHOD> <PATH>');
  });
});
