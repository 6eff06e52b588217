import { describe, expect, it } from 'vitest';
import { loadAgentConfig } from '../../agent/agent-config.js';
import { ConfigError } from '../../protocol/tunnel-error.js';

const base = {
  CLIENT_ID: 'abc_DEF-123',
  CLIENT_TOKEN: 'tok-very-secret-value',
  PROXY_URL: 'https://postern.example.com',
  TOOL_URL: 'https://gitlab.internal/',
};

function errorOf(env: Record<string, string>): ConfigError {
  try {
    loadAgentConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('loadAgentConfig', () => {
  it('derives the tunnel URL from PROXY_URL for each scheme', () => {
    expect(loadAgentConfig(base).tunnelUrl).toBe('wss://postern.example.com/v1/tunnel');
    expect(loadAgentConfig({ ...base, PROXY_URL: 'http://127.0.0.1:8080' }).tunnelUrl).toBe('ws://127.0.0.1:8080/v1/tunnel');
    expect(loadAgentConfig({ ...base, PROXY_URL: 'https://h.example/postern/' }).tunnelUrl).toBe('wss://h.example/postern/v1/tunnel');
  });

  it('applies defaults', () => {
    const c = loadAgentConfig(base);
    expect(c.connections).toBe(2);
    expect(c.heartbeatMs).toBe(10_000);
    expect(c.drainTimeoutMs).toBe(30_000);
    expect(c.statusPort).toBeUndefined();
    expect(c.credential).toBeUndefined();
    expect(c.policy).toBeUndefined();
  });

  it('builds the credential from TOOL_TYPE and TOOL_SECRET (bearer when no type)', () => {
    expect(loadAgentConfig({ ...base, TOOL_SECRET: 's', TOOL_TYPE: 'gitlab' }).credential?.name).toBe('private-token');
    expect(loadAgentConfig({ ...base, TOOL_SECRET: 's' }).credential?.value).toBe('Bearer s');
  });

  const bad: [string, Record<string, string>, RegExp][] = [
    ['CLIENT_ID', { ...base, CLIENT_ID: '' }, /CLIENT_ID: is required/],
    ['CLIENT_ID', { ...base, CLIENT_ID: '"abc"' }, /CLIENT_ID: may hold only/],
    ['CLIENT_TOKEN', { ...base, CLIENT_TOKEN: '' }, /CLIENT_TOKEN: is required/],
    ['CLIENT_TOKEN', { ...base, CLIENT_TOKEN: 'a b' }, /CLIENT_TOKEN: contains white space/],
    ['PROXY_URL', { ...base, PROXY_URL: 'not a url' }, /PROXY_URL: "not a url" is not a URL/],
    ['PROXY_URL', { ...base, PROXY_URL: 'ftp://x' }, /PROXY_URL: scheme ftp: is not supported/],
    ['TOOL_URL', { ...base, TOOL_URL: '' }, /TOOL_URL: is required/],
    ['TOOL_URL', { ...base, TOOL_URL: 'file:///etc' }, /TOOL_URL: scheme file: is not supported/],
    ['TOOL_URL', { ...base, TOOL_URL: 'https://u:p@gitlab' }, /TOOL_URL: must not contain credentials/],
    ['TOOL_URL', { ...base, TOOL_URL: 'https://gitlab/?a=1' }, /TOOL_URL: must not contain a query/],
    ['TOOL_TYPE', { ...base, TOOL_TYPE: 'svn' }, /TOOL_TYPE: unknown type/],
    ['POSTERN_STATUS_PORT', { ...base, POSTERN_STATUS_PORT: 'http' }, /POSTERN_STATUS_PORT: expected a whole number/],
    ['POSTERN_STATUS_PORT', { ...base, POSTERN_STATUS_PORT: '70000' }, /POSTERN_STATUS_PORT: 70000 is outside/],
    ['POSTERN_CONNECTIONS', { ...base, POSTERN_CONNECTIONS: '0' }, /POSTERN_CONNECTIONS: 0 is outside/],
    ['POSTERN_DRAIN_TIMEOUT_MS', { ...base, POSTERN_DRAIN_TIMEOUT_MS: '5s' }, /POSTERN_DRAIN_TIMEOUT_MS: expected a whole number/],
    ['POSTERN_ALLOW', { ...base, POSTERN_ALLOW: '/nonexistent/allow.json' }, /POSTERN_ALLOW: cannot read/],
  ];
  it.each(bad)('names %s when it is wrong', (setting, env, message) => {
    const err = errorOf(env);
    expect(err.setting).toBe(setting);
    expect(err.message).toMatch(message);
  });

  it('never puts the token or secret in an error message', () => {
    const err = errorOf({ ...base, TOOL_SECRET: 'tool-secret-value', TOOL_TYPE: 'nope' });
    expect(err.message).not.toContain('tool-secret-value');
    expect(err.message).not.toContain(base.CLIENT_TOKEN);
  });
});
