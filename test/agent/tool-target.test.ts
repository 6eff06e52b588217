import { describe, expect, it } from 'vitest';
import { resolveToolPath, toolTargetFromUrl } from '../../agent/tool-target.js';

const root = toolTargetFromUrl(new URL('http://tool.internal:8929'));
const prefixed = toolTargetFromUrl(new URL('http://tool.internal:8929/gitlab/'));

describe('resolveToolPath', () => {
  const allowed: [string, string, string][] = [
    ['/', '/', '/gitlab/'],
    ['/api/v4/projects', '/api/v4/projects', '/gitlab/api/v4/projects'],
    ['/api/v4/projects/group%2Fproject', '/api/v4/projects/group%2Fproject', '/gitlab/api/v4/projects/group%2Fproject'],
    ['/a?b=c&d=%20e', '/a?b=c&d=%20e', '/gitlab/a?b=c&d=%20e'],
    ['/a/..b/c', '/a/..b/c', '/gitlab/a/..b/c'],
    ['/a/b..', '/a/b..', '/gitlab/a/b..'],
    ['/.well-known/x', '/.well-known/x', '/gitlab/.well-known/x'],
    ['/a?path=../../etc', '/a?path=../../etc', '/gitlab/a?path=../../etc'],
    ['/user@host/x', '/user@host/x', '/gitlab/user@host/x'],
    ['/a%2Fb%2Fc', '/a%2Fb%2Fc', '/gitlab/a%2Fb%2Fc'],
    ['/a/b;jsessionid=1', '/a/b;jsessionid=1', '/gitlab/a/b;jsessionid=1'],
  ];
  it.each(allowed)('keeps %s under TOOL_URL byte for byte', (input, atRoot, atPrefix) => {
    expect(resolveToolPath(root, input)).toEqual({ ok: true, path: atRoot });
    expect(resolveToolPath(prefixed, input)).toEqual({ ok: true, path: atPrefix });
  });

  const refused: [string, RegExp][] = [
    ['/../etc/passwd', /dot segment/],
    ['/a/../../etc', /dot segment/],
    ['/a/..', /dot segment/],
    ['/./a', /dot segment/],
    ['/%2e%2e/etc', /dot segment/],
    ['/%2E%2E/etc', /dot segment/],
    ['/%2e%2E/etc', /dot segment/],
    ['/.%2e/etc', /dot segment/],
    ['/%2e./etc', /dot segment/],
    ['/%252e%252e/etc', /dot segment/],
    ['/%25252e%25252e/etc', /dot segment/],
    ['/a%2f..%2fb', /dot segment/],
    ['/a%2F%2E%2E%2Fb', /dot segment/],
    ['/a\\..\\b', /backslash/],
    ['/a%5c..%5cb', /backslash/],
    ['/a%5C..', /backslash/],
    ['/a\u0000b', /control/],
    ['/a%00b', /control/],
    ['/a%0d%0aX-Injected:1', /control/],
    ['/a\r\nb', /control/],
    ['/a b', /control/],
    ['/a\tb', /control/],
    ['a/b', /start with \//],
    ['', /start with \//],
    ['http://evil.example/x', /start with \//],
    ['//evil.example/../x', /dot segment/],
    ['/a%zz', /malformed/],
    ['/a%', /malformed/],
    ['/a#frag', /fragment/],
    ['/a/..;/x', /dot segment/],
    ['/..;x=y/etc', /dot segment/],
    ['/a/%2e%2e;/x', /dot segment/],
    ['/a/.;/x', /dot segment/],
    [`/${'a'.repeat(17 * 1024)}`, /longer than/],
  ];
  it.each(refused)('refuses %j', (input, reason) => {
    for (const target of [root, prefixed]) {
      const r = resolveToolPath(target, input);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.reason).toMatch(reason);
    }
  });

  it('never produces a path outside the prefix for accepted input', () => {
    for (const [input] of allowed) {
      const r = resolveToolPath(prefixed, input);
      expect(r.ok && r.path.startsWith('/gitlab/')).toBe(true);
    }
  });
});
