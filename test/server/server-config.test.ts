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
});
