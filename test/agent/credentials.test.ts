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
});
