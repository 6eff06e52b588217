import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AllowPolicy, loadAllowPolicy } from '../../agent/allow-policy.js';

const policy = AllowPolicy.fromJson({
  rules: [
    { name: 'read projects', methods: ['GET', 'HEAD'], path: '/api/v4/projects/**' },
    { name: 'project hooks', methods: ['POST'], path: '/api/v4/projects/*/hooks' },
    { name: 'version', path: '/api/v4/version' },
  ],
});

describe('AllowPolicy: methods and paths', () => {
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
    if (d.allowed) expect(d.reason).toBe(`allowed by rule "${rule}"`);
    else expect(d.reason).toContain(`no rule allows ${method.toUpperCase()}`);
  });

  it('names the closest rule and what failed, or none when no path matched', () => {
    const del = policy.decide('DELETE', '/api/v4/projects/1?private_token=secret-in-query');
    expect(del).toEqual({
      allowed: false,
      rule: null,
      closest: 'read projects',
      reason: 'no rule allows DELETE /api/v4/projects/1; closest rule "read projects": method DELETE is not one of GET, HEAD',
    });
    expect(policy.decide('GET', '/admin/users')).toEqual({ allowed: false, rule: null, reason: 'no rule allows GET /admin/users' });
  });

  it('explains every rule', () => {
    const { decision, outcomes } = policy.explain('POST', '/api/v4/projects/7/hooks');
    expect(decision).toMatchObject({ allowed: true, rule: 'project hooks' });
    expect(outcomes).toEqual([
      { rule: 'read projects', matched: false, failed: 'method', detail: 'method POST is not one of GET, HEAD' },
      { rule: 'project hooks', matched: true, detail: 'matches POST /api/v4/projects/*/hooks' },
      { rule: 'version', matched: false, failed: 'path', detail: 'path does not match /api/v4/version' },
    ]);
  });

  it('keeps a long path in the reason short enough for a RESET frame', () => {
    const d = policy.decide('GET', `/x/${'a'.repeat(5000)}`);
    expect(d.reason.length).toBeLessThan(400);
  });
});

describe('AllowPolicy: query and header constraints', () => {
  const constrained = AllowPolicy.fromJson({
    defaults: { query: { sudo: null }, headers: { sudo: null } },
    rules: [
      { name: 'search', methods: ['GET'], path: '/search', query: { scope: ['projects', 'merge_requests'], page: [null, '1', '2'] } },
      { name: 'export', methods: ['GET'], path: '/export', query: { format: '*' }, headers: { accept: 'application/json' } },
      { name: 'admin read', methods: ['GET'], path: '/admin', headers: { 'x-role': ['auditor'], sudo: '*' } },
    ],
  });
  const H = (...kv: string[]): string[] => kv;
  const cases: [string, string[], string | null, RegExp | null][] = [
    ['/search?scope=projects', [], 'search', null],
    ['/search?scope=merge_requests&page=2', [], 'search', null],
    ['/search?scope=projects&scope=merge_requests', [], 'search', null],
    ['/search?other=1&scope=projects', [], 'search', null],
    ['/search?sco%70e=projects', [], 'search', null],
    ['/search', [], null, /query parameter "scope" is missing/],
    ['/search?scope=users', [], null, /"scope" must be one of "projects", "merge_requests"/],
    ['/search?scope=projects&scope=users', [], null, /"scope" must be one of/],
    ['/search?scope=projects&Scope=users', [], null, /"scope" must be one of/],
    ['/search?scope=projects&scope[]=users', [], null, /"scope" must be one of/],
    ['/search?scope=projects;scope=users', [], null, /"scope" must be one of/],
    ['/search?scope=projects&page=3', [], null, /"page" must be absent or one of "1", "2"/],
    ['/search?scope=projects+x', [], null, /"scope" must be one of/],
    ['/search?scope=projects&sudo=root', [], null, /"sudo" must be absent/],
    ['/search?scope=projects&SUDO=root', [], null, /"sudo" must be absent/],
    ['/search?scope=projects&sudo[]=root', [], null, /"sudo" must be absent/],
    ['/search?scope=projects&%73udo=root', [], null, /"sudo" must be absent/],
    ['/export?format=csv;sudo=root', H('accept', 'application/json'), null, /"sudo" must be absent/],
    ['/search?scope=projects&x=%zz', [], null, /malformed percent-encoding/],
    ['/search?scope=projects', H('Sudo', 'root'), null, /header "sudo" must be absent/],
    ['/export?format=csv', H('Accept', 'application/json'), 'export', null],
    ['/export?format=', H('accept', 'application/json'), 'export', null],
    ['/export', H('accept', 'application/json'), null, /query parameter "format" is missing/],
    ['/export?FORMAT=csv', H('accept', 'application/json'), null, /query parameter "format" is missing/],
    ['/export?format=csv', [], null, /header "accept" is missing/],
    ['/export?format=csv', H('accept', 'text/html'), null, /header "accept" must be one of "application\/json"/],
    ['/export?format=csv', H('accept', 'application/json', 'accept', 'text/html'), null, /header "accept" must be one of/],
    ['/admin', H('X-Role', 'auditor', 'Sudo', 'root'), 'admin read', null],
    ['/admin', H('X-Role', 'auditor', 'X_Role', 'admin', 'Sudo', 'root'), null, /header "x-role" must be one of "auditor"/],
    ['/admin', H('X_Role', 'auditor', 'Sudo', 'root'), null, /header "x-role" is missing/],
  ];
  it.each(cases)('GET %s %j → %s', (path, headers, rule, why) => {
    const d = constrained.decide('GET', path, headers);
    expect(d.rule).toBe(rule);
    if (why) expect(d.reason).toMatch(why);
  });

  it('never puts a request value in the reason (values may be secrets)', () => {
    const d = constrained.decide('GET', '/search?scope=glpat-secret-value&sudo=glpat-other', ['sudo', 'glpat-header-secret']);
    expect(d.allowed).toBe(false);
    expect(d.reason).not.toMatch(/glpat/);
  });
});

describe('AllowPolicy: loading', () => {
  const tmp = (): string => mkdtempSync(join(tmpdir(), 'postern-allow-'));

  it('reads a rules file', () => {
    const file = join(tmp(), 'allow.json');
    writeFileSync(file, JSON.stringify({ rules: [{ path: '/x/*' }] }));
    expect(AllowPolicy.fromFile(file).decide('GET', '/x/y').allowed).toBe(true);
    expect(loadAllowPolicy(file, undefined).source).toBe(file);
  });

  it('explains a missing file, bad JSON and bad rules, naming POSTERN_ALLOW', () => {
    const dir = tmp();
    expect(() => AllowPolicy.fromFile(join(dir, 'nope.json'))).toThrow(/POSTERN_ALLOW: cannot read .*ENOENT/);
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{ rules: ');
    expect(() => AllowPolicy.fromFile(bad)).toThrow(/POSTERN_ALLOW: .* is not valid JSON/);
    const refusals: [unknown, RegExp][] = [
      [{}, /"rules" array/],
      [[], /"rules" array/],
      [{ rules: [{ path: 'no-slash' }] }, /rule 0 .* starting with \//],
      [{ rules: [{ path: '/a', methods: 'GET' }] }, /"methods" must be an array/],
      [{ rules: [{ path: '/a', methods: [] }] }, /"methods" is empty/],
      [{ rules: [{ path: '/a', methods: ['GET /x'] }] }, /"methods" must be an array of method names/],
      // A misspelt key must not silently widen a rule.
      [{ rules: [{ path: '/a', method: ['GET'] }] }, /rule 0 .*unknown key "method"/],
      [{ rules: [], extra: 1 }, /unknown key "extra"/],
      [{ rules: [{ path: '/a', query: { x: 1 } }] }, /"query.x" must be "\*", a string, null or a non-empty array/],
      [{ rules: [{ path: '/a', query: { x: [] } }] }, /"query.x"/],
      [{ rules: [{ path: '/a', headers: { x: ['*', null] } }] }, /"headers.x"/],
      [{ rules: [{ path: '/a', headers: ['accept'] }] }, /"headers" must be an object/],
      [{ rules: [], defaults: { query: { sudo: null }, body: {} } }, /"defaults": unknown key "body"/],
      [{ rules: [], defaults: 3 }, /"defaults" must be an object/],
      [{ rules: ['GET /a'] }, /rule 0 .* must be an object/],
    ];
    for (const [doc, msg] of refusals) expect(() => AllowPolicy.fromJson(doc), JSON.stringify(doc)).toThrow(msg);
  });

  it('lets a rule override a default constraint', () => {
    const p = AllowPolicy.fromJson({
      defaults: { query: { sudo: null } },
      rules: [
        { name: 'impersonating read', methods: ['GET'], path: '/a', query: { sudo: ['auditor'] } },
        { name: 'plain', methods: ['GET'], path: '/b' },
      ],
    });
    expect(p.decide('GET', '/a?sudo=auditor').rule).toBe('impersonating read');
    expect(p.decide('GET', '/b?sudo=auditor').allowed).toBe(false);
    expect(p.decide('GET', '/b').rule).toBe('plain');
  });

  it('loads presets by name or by TOOL_TYPE, and explains what it cannot load', () => {
    expect(loadAllowPolicy('preset:gitlab', undefined).source).toBe('preset:gitlab');
    expect(loadAllowPolicy('preset:GitHub', undefined).source).toBe('preset:github');
    expect(loadAllowPolicy('preset', 'jenkins').source).toBe('preset:jenkins');
    expect(loadAllowPolicy('preset', ' AzureDevOps ').source).toBe('preset:azuredevops');
    expect(() => loadAllowPolicy('preset:nexus', undefined)).toThrow(/POSTERN_ALLOW: unknown preset "nexus"; use one of gitlab, github, bitbucket, azuredevops, jenkins/);
    expect(() => loadAllowPolicy('preset:../package', undefined)).toThrow(/unknown preset/);
    expect(() => loadAllowPolicy('preset', undefined)).toThrow(/POSTERN_ALLOW: "preset" takes the preset of TOOL_TYPE, which is not set/);
    expect(() => loadAllowPolicy('preset', 'bearer')).toThrow(/TOOL_TYPE=bearer has no preset/);
    expect(() => loadAllowPolicy('preset', 'header:X-Key')).toThrow(/has no preset/);
  });
});
