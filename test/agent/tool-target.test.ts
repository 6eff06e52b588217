import { posix } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_PATH_LENGTH, resolveToolPath, toolTargetFromUrl, type ToolTarget } from '../../agent/tool-target.js';

const root = toolTargetFromUrl(new URL('http://tool.internal:8929'));
const prefixed = toolTargetFromUrl(new URL('http://tool.internal:8929/gitlab/'));

/** Allowed: [input, exact path the tool gets at the root, … under /gitlab]. */
const allowed: [string, string, string][] = [
  ['/', '/', '/gitlab/'],
  ['/api/v4/projects', '/api/v4/projects', '/gitlab/api/v4/projects'],
  ['/api/v4/projects/group%2Fproject', '/api/v4/projects/group%2Fproject', '/gitlab/api/v4/projects/group%2Fproject'],
  [
    '/api/v4/projects/group%2fsub%2Fproject/merge_requests?state=opened',
    '/api/v4/projects/group%2fsub%2Fproject/merge_requests?state=opened',
    '/gitlab/api/v4/projects/group%2fsub%2Fproject/merge_requests?state=opened',
  ],
  ['/a?b=c&d=%20e', '/a?b=c&d=%20e', '/gitlab/a?b=c&d=%20e'],
  ['/a?', '/a?', '/gitlab/a?'],
  ['/a/..b/c', '/a/..b/c', '/gitlab/a/..b/c'],
  ['/a/b..', '/a/b..', '/gitlab/a/b..'],
  ['/.well-known/x', '/.well-known/x', '/gitlab/.well-known/x'],
  ['/a?path=../../etc', '/a?path=../../etc', '/gitlab/a?path=../../etc'],
  ['/a?x=%2e%2e%2f%00', '/a?x=%2e%2e%2f%00', '/gitlab/a?x=%2e%2e%2f%00'],
  ['/user@host/x', '/user@host/x', '/gitlab/user@host/x'],
  ['/@evil.example/x', '/@evil.example/x', '/gitlab/@evil.example/x'],
  ['/api/v4/projects/1/packages/npm/@scope%2fname', '/api/v4/projects/1/packages/npm/@scope%2fname', '/gitlab/api/v4/projects/1/packages/npm/@scope%2fname'],
  ['/http:/evil.example/x', '/http:/evil.example/x', '/gitlab/http:/evil.example/x'],
  ['/a%2Fb%2Fc', '/a%2Fb%2Fc', '/gitlab/a%2Fb%2Fc'],
  ['/a/b;jsessionid=1', '/a/b;jsessionid=1', '/gitlab/a/b;jsessionid=1'],
  ['/job/x/', '/job/x/', '/gitlab/job/x/'],
  ['/branches/100%25', '/branches/100%25', '/gitlab/branches/100%25'],
  ['/a/%E2%82%AC/~user', '/a/%E2%82%AC/~user', '/gitlab/a/%E2%82%AC/~user'],
  [`/${'a'.repeat(MAX_PATH_LENGTH - 1)}`, `/${'a'.repeat(MAX_PATH_LENGTH - 1)}`, `/gitlab/${'a'.repeat(MAX_PATH_LENGTH - 1)}`],
];

/** Refused with the same reason at the root and under a prefix. */
const refused: [string, RegExp][] = [
  // dot segments, plain and encoded at any depth and case
  ['/../etc/passwd', /dot segment/],
  ['/a/../../etc', /dot segment/],
  ['/a/..', /dot segment/],
  ['/./a', /dot segment/],
  ['/a/.', /dot segment/],
  ['/%2e%2e/etc', /dot segment/],
  ['/%2E%2E/etc', /dot segment/],
  ['/%2e%2E/etc', /dot segment/],
  ['/.%2e/etc', /dot segment/],
  ['/%2e./etc', /dot segment/],
  ['/%252e%252e/etc', /dot segment/],
  ['/%25252E%25252e/etc', /dot segment/],
  ['/a%2f..%2fb', /dot segment/],
  ['/a%2F%2E%2E%2Fb', /dot segment/],
  // servlet path parameters, trailing dots and spaces, Unicode look-alikes
  ['/a/..;/x', /dot segment/],
  ['/..;x=y/etc', /dot segment/],
  ['/a/%2e%2e;/x', /dot segment/],
  ['/a/%2e%2e%3b/x', /dot segment/],
  ['/a/.;/x', /dot segment/],
  ['/a/..%3f/b', /dot segment/],
  ['/a/.../b', /dot segment/],
  ['/a/..%20/b', /dot segment/],
  ['/a/%EF%BC%8E%EF%BC%8E/b', /dot segment/],
  ['/a/%E2%80%A5/b', /dot segment/],
  ['/a/%c0%ae%c0%ae/b', /not valid UTF-8/],
  ['/a/%25c0%25ae/b', /not valid UTF-8/],
  // backslashes
  ['/a\\..\\b', /backslash/],
  ['/a%5c..%5cb', /backslash/],
  ['/a%5C..', /backslash/],
  ['/a%255c..%255cb', /backslash/],
  ['/a/%EF%BC%BC..', /backslash/],
  // NUL and control characters, raw and encoded
  ['/a\u0000b', /control character/],
  ['/a%00b', /control character/],
  ['/a%2500b', /control character/],
  ['/a%0d%0aX-Injected:1', /control character/],
  ['/a\r\nb', /control character/],
  ['/a b', /control character or space/],
  ['/a\tb', /control character/],
  ['/a\u007f', /control character/],
  ['/a%7f', /control character/],
  // raw characters that must be percent-encoded
  ['/a/é', /must be percent-encoded/],
  ['/a/\u2025/b', /must be percent-encoded/],
  ['/a/\uD800', /must be percent-encoded/],
  // absolute-form, authority-form and other shapes
  ['a/b', /start with \//],
  ['', /start with \//],
  ['http://evil.example/x', /start with \//],
  ['HTTP://evil.example/x', /start with \//],
  ['evil.example:443', /start with \//],
  ['*', /start with \//],
  ['?x=1', /start with \//],
  // empty segments: network-path references and merged slashes
  ['//evil.example/x', /empty segment/],
  ['//user@evil.example/x', /empty segment/],
  ['//evil.example/../x', /empty segment|dot segment/],
  ['///x', /empty segment/],
  ['/a//b', /empty segment/],
  ['/a//', /empty segment/],
  ['/http://evil.example/x', /empty segment/],
  ['/%2F%2Fevil.example/x', /empty segment/],
  ['/a/%2F%2Fb', /empty segment/],
  ['/a/%252F/b', /empty segment/],
  // malformed encodings
  ['/a%zz', /malformed/],
  ['/a%', /malformed/],
  ['/a%2', /malformed/],
  ['/a%u002e%u002e/x', /malformed/],
  ['/a/%E9', /not valid UTF-8/],
  // fragments
  ['/a#frag', /fragment/],
  ['/a?b#c', /fragment/],
  // too deep, too long
  [`/${encodeTimes('.', 10)}${encodeTimes('.', 10)}/x`, /more than 8 times/],
  [`/${'a'.repeat(MAX_PATH_LENGTH)}`, /longer than/],
];

function encodeTimes(s: string, n: number): string {
  let out = s.replace(/\./g, '%2e');
  for (let i = 1; i < n; i++) out = out.replace(/%/g, '%25');
  return out;
}

describe('resolveToolPath: crafted inputs', () => {
  it('has at least 40 crafted inputs', () => {
    expect(allowed.length + refused.length).toBeGreaterThanOrEqual(40);
  });

  it.each(allowed)('passes %j to the tool byte for byte', (input, atRoot, atPrefix) => {
    expect(resolveToolPath(root, input)).toEqual({ ok: true, path: atRoot });
    expect(resolveToolPath(prefixed, input)).toEqual({ ok: true, path: atPrefix });
  });

  it.each(refused)('refuses %j', (input, reason) => {
    for (const target of [root, prefixed]) {
      const r = resolveToolPath(target, input);
      expect(r.ok, `${input} under ${target.prefix || '/'}`).toBe(false);
      if (!r.ok) expect(r.reason).toMatch(reason);
    }
  });

  it('keeps a deeper TOOL_URL prefix and one with encoded characters', () => {
    const deep = toolTargetFromUrl(new URL('https://tool.internal/a/my%20gitlab//'));
    expect(deep.prefix).toBe('/a/my%20gitlab');
    expect(resolveToolPath(deep, '/api/v4/version')).toEqual({ ok: true, path: '/a/my%20gitlab/api/v4/version' });
    expect(resolveToolPath(deep, '/%2e%2e/x').ok).toBe(false);
  });
});

// ---- property-based ---------------------------------------------------------

/** Pieces an attacker combines: dots and slashes in every encoding, separators, look-alikes. */
const hostilePiece = fc.constantFrom(
  '/', '.', '..', '%2e', '%2E', '%252e', '%25252e', '%2f', '%2F', '%252f', '%5c', '%5C', '\\', ';', ';x=1',
  '@', ':', '?', '#', '%00', '%0a', '%', '%25', '%c0%ae', '%ef%bc%8e', '%e2%80%a5', '．', ' ', 'a', 'api', 'evil.example', 'http:',
);
const hostilePath = fc
  .tuple(fc.boolean(), fc.array(hostilePiece, { maxLength: 14 }))
  .map(([slash, pieces]) => `${slash ? '/' : ''}${pieces.join('')}`);

/** Every way a server might decode: repeatedly, leniently, backslash as slash. */
function decodeFully(path: string): string {
  let s = path;
  for (let i = 0; i < 12; i++) {
    const next = s.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
      try {
        return decodeURIComponent(run);
      } catch {
        return run;
      }
    });
    if (next === s) break;
    s = next;
  }
  return s.normalize('NFKC').replace(/\\/g, '/');
}

function staysInside(target: ToolTarget, sent: string): boolean {
  const url = new URL(sent, target.origin);
  if (url.origin !== target.origin || url.username || url.password) return false;
  const under = (p: string): boolean => p === target.prefix || p.startsWith(`${target.prefix}/`) || (target.prefix === '' && p.startsWith('/'));
  const pathOnly = sent.split('?')[0]!;
  return under(url.pathname) && under(posix.normalize(decodeFully(pathOnly)));
}

describe('resolveToolPath: properties', () => {
  for (const [label, target] of [
    ['the root', root],
    ['a prefix', prefixed],
  ] as const) {
    it(`no generated path leaves TOOL_URL (${label}), however a server decodes it`, () => {
      fc.assert(
        fc.property(hostilePath, (input) => {
          const r = resolveToolPath(target, input);
          if (!r.ok) return true;
          return r.path === `${target.prefix}${input}` && staysInside(target, r.path);
        }),
        { numRuns: 3000 },
      );
    });
  }

  const safeSegment = fc.oneof(
    fc.stringMatching(/^[A-Za-z0-9_~-]{1,12}$/),
    fc.constantFrom('group%2Fproject', '%20x', '@scope', 'a:b', 'v1;p=1', '.well-known', 'a..b', 'b..', '100%25', '%E2%82%AC'),
  );
  const safeQuery = fc.option(fc.stringMatching(/^[A-Za-z0-9=&%._~+/:@!$'()*,;?-]{0,30}$/), { nil: undefined });
  const benignPath = fc
    .tuple(fc.array(safeSegment, { minLength: 0, maxLength: 8 }), fc.boolean(), safeQuery)
    .map(([segs, trailing, query]) => `/${segs.join('/')}${trailing && segs.length ? '/' : ''}${query === undefined ? '' : `?${query}`}`)
    .filter((p) => !/%(?![0-9A-Fa-f]{2})/.test(p.split('?')[0]!));

  it('passes benign paths byte for byte under the prefix', () => {
    fc.assert(
      fc.property(benignPath, (input) => {
        expect(resolveToolPath(prefixed, input)).toEqual({ ok: true, path: `/gitlab${input}` });
        expect(resolveToolPath(root, input)).toEqual({ ok: true, path: input });
      }),
      { numRuns: 1000 },
    );
  });

  it('never throws, whatever the string', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme-composite', maxLength: 40 }), fc.string({ maxLength: 40 }), (a, b) => {
        for (const input of [a, `/${a}`, `/${b}`]) {
          const r = resolveToolPath(prefixed, input);
          expect(typeof r.ok).toBe('boolean');
        }
      }),
      { numRuns: 1000 },
    );
  });
});
