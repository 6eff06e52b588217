import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AllowPolicy } from '../../agent/allow-policy.js';

const policy = AllowPolicy.fromJson({
  rules: [
    { name: 'read projects', methods: ['GET', 'HEAD'], path: '/api/v4/projects/**' },
    { name: 'project hooks', methods: ['POST'], path: '/api/v4/projects/*/hooks' },
    { name: 'version', path: '/api/v4/version' },
  ],
});

describe('AllowPolicy', () => {
  const cases: [string, string, string | null][] = [
    ['GET', '/api/v4/projects/42/repository/branches', 'read projects'],
    ['get', '/api/v4/projects/group%2Fproj?per_page=100', 'read projects'],
    ['HEAD', '/api/v4/projects/1', 'read projects'],
    ['DELETE', '/api/v4/projects/1', null],
    ['POST', '/api/v4/projects/42/hooks', 'project hooks'],
    ['POST', '/api/v4/projects/42/sub/hooks', null],
    ['PUT', '/api/v4/version', 'version'],
    ['GET', '/api/v4/versions', null],
    ['GET', '/api/v4/projectsX', null],
    ['GET', '/admin', null],
  ];
  it.each(cases)('%s %s → %s', (method, path, rule) => {
    const d = policy.decide(method, path);
    expect(d.allowed).toBe(rule !== null);
    expect(d.rule).toBe(rule);
    if (!d.allowed) expect(d.reason).toContain(method);
  });

  it('reads a rules file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'postern-allow-'));
    const file = join(dir, 'allow.json');
    writeFileSync(file, JSON.stringify({ rules: [{ path: '/x/*' }] }));
    expect(AllowPolicy.fromFile(file).decide('GET', '/x/y').allowed).toBe(true);
  });

  it('explains a missing file, bad JSON and bad rules, naming POSTERN_ALLOW', () => {
    const dir = mkdtempSync(join(tmpdir(), 'postern-allow-'));
    expect(() => AllowPolicy.fromFile(join(dir, 'nope.json'))).toThrow(/POSTERN_ALLOW: cannot read .*ENOENT/);
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{ rules: ');
    expect(() => AllowPolicy.fromFile(bad)).toThrow(/POSTERN_ALLOW: .* is not valid JSON/);
    expect(() => AllowPolicy.fromJson({})).toThrow(/"rules" array/);
    expect(() => AllowPolicy.fromJson({ rules: [{ path: 'no-slash' }] })).toThrow(/rule 0 .* starting with \//);
    expect(() => AllowPolicy.fromJson({ rules: [{ path: '/a', methods: 'GET' }] })).toThrow(/"methods" must be an array/);
  });
});
