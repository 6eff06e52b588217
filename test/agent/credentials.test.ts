import { describe, expect, it } from 'vitest';
import { credentialFor } from '../../agent/credentials.js';
import { ConfigError } from '../../protocol/tunnel-error.js';

describe('credentialFor', () => {
  const cases: [string, string, string, string][] = [
    ['github', 's3cret', 'authorization', 'Bearer s3cret'],
    ['bitbucket', 's3cret', 'authorization', 'Bearer s3cret'],
    ['bearer', 's3cret', 'authorization', 'Bearer s3cret'],
    ['gitlab', 'glpat-x', 'private-token', 'glpat-x'],
    ['GitLab', 'glpat-x', 'private-token', 'glpat-x'],
    ['azuredevops', 'pat', 'authorization', `Basic ${Buffer.from(':pat').toString('base64')}`],
    ['jenkins', 'bob:tok', 'authorization', `Basic ${Buffer.from('bob:tok').toString('base64')}`],
    ['header:X-Api-Key', 'k', 'X-Api-Key', 'k'],
  ];
  it.each(cases)('TOOL_TYPE=%s sends the documented header', (type, secret, name, value) => {
    const c = credentialFor(type, secret);
    expect(c.name).toBe(name);
    expect(c.value).toBe(value);
  });

  it('strips every caller-supplied credential header, including a custom one', () => {
    const c = credentialFor('header:X-Api-Key', 'k');
    for (const h of ['authorization', 'private-token', 'x-api-key']) expect(c.strip.has(h)).toBe(true);
  });

  it('rejects an unknown TOOL_TYPE naming the setting and the choices', () => {
    expect(() => credentialFor('svn', 'x')).toThrow(ConfigError);
    expect(() => credentialFor('svn', 'x')).toThrow(/TOOL_TYPE: unknown type "svn"; use github, gitlab/);
  });

  it('rejects a jenkins secret without user:token, without echoing the secret', () => {
    let message = '';
    try {
      credentialFor('jenkins', 'only-a-token-value');
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/TOOL_SECRET: .*"<user>:<api token>"/);
    expect(message).not.toContain('only-a-token-value');
  });

  it('rejects an invalid header name', () => {
    expect(() => credentialFor('header:Bad Name', 'x')).toThrow(/not a valid header name/);
  });

  it('strips Cookie, DEPLOY-TOKEN and JOB-TOKEN too: the tool sees one credential, the agent’s', () => {
    for (const type of ['github', 'gitlab', 'bitbucket', 'azuredevops', 'bearer', 'header:X-Auth']) {
      const c = credentialFor(type, 'u:s');
      for (const h of ['authorization', 'private-token', 'job-token', 'deploy-token', 'x-api-key', 'cookie', c.name.toLowerCase()]) {
        expect(c.strip.has(h), `${type} strips ${h}`).toBe(true);
      }
    }
  });

  it.each(['host', 'Content-Length', 'transfer-encoding', 'Connection', 'upgrade', 'te', 'expect', 'proxy-authorization'])(
    'refuses header:%s, which describes the connection or framing',
    (name) => {
      expect(() => credentialFor(`header:${name}`, 'x')).toThrow(/TOOL_TYPE: .* cannot carry a credential/);
    },
  );

  it.each([
    ['a trailing newline', 'tok\n'],
    ['a carriage return', 'tok\r'],
    ['a NUL', 'to\u0000k'],
    ['a header injection', 'tok\r\nX-Evil: 1'],
  ])('refuses a TOOL_SECRET with %s, without echoing it', (_what, secret) => {
    let message = '';
    try {
      credentialFor('bearer', secret);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/^TOOL_SECRET: contains a line break or control character/);
    expect(message).not.toContain('tok');
  });

  it('refuses a TOOL_SECRET with surrounding white space, and a jenkins secret with an empty user or token', () => {
    expect(() => credentialFor('bearer', ' tok')).toThrow(/TOOL_SECRET: starts or ends with white space/);
    expect(() => credentialFor('jenkins', ':tok')).toThrow(/"<user>:<api token>"/);
    expect(() => credentialFor('jenkins', 'bob:')).toThrow(/"<user>:<api token>"/);
  });
});
