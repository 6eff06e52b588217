import { describe, expect, it } from 'vitest';
import { loadServerConfig, serverDefaults } from '../../server/server-config.js';

describe('loadServerConfig', () => {
  it('uses the documented defaults', () => {
    const c = loadServerConfig({});
    expect(c).toEqual(serverDefaults);
    expect(c.port).toBe(8080);
    expect(c.ingressPort).toBe(8081);
    expect(c.agentWaitMs).toBe(5000);
    expect(c.dataDir).toBe('./data');
    expect(c.streamIdleTimeoutMs).toBe(300_000);
    expect(c.drainTimeoutMs).toBe(30_000);
  });

  it('takes 0 for the stream idle timeout (off) and refuses a unit suffix', () => {
    expect(loadServerConfig({ POSTERN_STREAM_IDLE_TIMEOUT_MS: '0' }).streamIdleTimeoutMs).toBe(0);
    expect(() => loadServerConfig({ POSTERN_STREAM_IDLE_TIMEOUT_MS: '5m' })).toThrow(/^POSTERN_STREAM_IDLE_TIMEOUT_MS: expected a whole number/);
  });

  it('reads the environment, and flags win over it', () => {
    const c = loadServerConfig({ POSTERN_PORT: '9000', POSTERN_AGENT_WAIT_MS: '250', POSTERN_HOST: '127.0.0.1' }, { port: '0' });
    expect(c.port).toBe(0);
    expect(c.agentWaitMs).toBe(250);
    expect(c.host).toBe('127.0.0.1');
  });

  it('names the env variable or the flag that is wrong', () => {
    expect(() => loadServerConfig({ POSTERN_PORT: 'eighty' })).toThrow(/^POSTERN_PORT: expected a whole number between 0 and 65535, got "eighty"$/);
    expect(() => loadServerConfig({ POSTERN_INGRESS_PORT: '70000' })).toThrow(/^POSTERN_INGRESS_PORT: 70000 is outside/);
    expect(() => loadServerConfig({}, { agentWaitMs: '-1' })).toThrow(/^--agent-wait-ms: expected a whole number/);
  });

  it('reads the security settings: TLS files, trusted proxies, time limits, brute-force limits, required API keys', () => {
    const c = loadServerConfig({
      POSTERN_TLS_CERT: '/etc/postern/cert.pem',
      POSTERN_TLS_KEY: '/etc/postern/key.pem',
      POSTERN_TRUST_PROXY: '10.0.0.0/8, 192.168.1.7,loopback,2001:db8::/32',
      POSTERN_HEADERS_TIMEOUT_MS: '5000',
      POSTERN_AUTH_FAILURE_LIMIT: '0',
      POSTERN_AUTH_FAILURE_WINDOW_MS: '1000',
      POSTERN_AUTH_BLOCK_MS: '2000',
      POSTERN_REQUIRE_API_KEYS: 'true',
    });
    expect(c).toMatchObject({
      tlsCert: '/etc/postern/cert.pem',
      tlsKey: '/etc/postern/key.pem',
      headersTimeoutMs: 5000,
      authFailureLimit: 0,
      authFailureWindowMs: 1000,
      authBlockMs: 2000,
      requireApiKeys: true,
    });
    expect(serverDefaults).toMatchObject({
      headersTimeoutMs: 20_000,
      authFailureLimit: 30,
      authFailureWindowMs: 60_000,
      authBlockMs: 60_000,
      requireApiKeys: false,
      tlsCert: undefined,
      trustProxy: undefined,
    });
    expect(loadServerConfig({ POSTERN_REQUIRE_API_KEYS: '0' }).requireApiKeys).toBe(false);
  });

  it.each([
    [{ POSTERN_REQUIRE_API_KEYS: 'maybe' }, /^POSTERN_REQUIRE_API_KEYS: expected true or false, got "maybe"$/],
    [{ POSTERN_TRUST_PROXY: 'true' }, /^POSTERN_TRUST_PROXY: "true" is not an address/],
    [{ POSTERN_TRUST_PROXY: '10.0.0.0/33' }, /^POSTERN_TRUST_PROXY: "10.0.0.0\/33" is not an address/],
    [{ POSTERN_TRUST_PROXY: '10.0.0.1,*' }, /^POSTERN_TRUST_PROXY: "\*" is not an address/],
    [{ POSTERN_HEADERS_TIMEOUT_MS: '0' }, /^POSTERN_HEADERS_TIMEOUT_MS: 0 is outside the allowed range/],
    [{ POSTERN_AUTH_FAILURE_LIMIT: '-1' }, /^POSTERN_AUTH_FAILURE_LIMIT: expected a whole number/],
  ])('refuses %o', (env, message) => {
    expect(() => loadServerConfig(env)).toThrow(message);
  });
});
