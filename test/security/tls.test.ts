import { readFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { connect as tcpConnect, type AddressInfo } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { fetch } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { makeTestPki, trustingDispatcher, type CertFiles, type TestPki } from '../helpers/certs.js';
import { Cleanup } from '../helpers/cleanup.js';
import { logLines, startAgentProcess, startServerProcess, waitForLog, type ServerProc } from '../helpers/processes.js';
import { within } from '../helpers/wait.js';
import { runCli } from './run-cli.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

/** Short, so the slow-handshake case finishes fast; real agents handshake in milliseconds. */
const HEADERS_TIMEOUT_MS = 1_000;

async function tlsServer(pki: TestPki): Promise<ServerProc & { publicUrl: string; privateUrl: string }> {
  const server = await startServerProcess(cleanup, {
    env: {
      POSTERN_TLS_CERT: pki.server.cert,
      POSTERN_TLS_KEY: pki.server.key,
      POSTERN_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
      POSTERN_AGENT_WAIT_MS: '300',
    },
  });
  return { ...server, publicUrl: `https://localhost:${server.port}`, privateUrl: `https://localhost:${server.ingressPort}` };
}

/** An HTTPS tool on 127.0.0.1 answering `tool saw <path>`. */
async function httpsTool(cert: CertFiles): Promise<string> {
  const tool = createHttpsServer({ cert: readFileSync(cert.cert), key: readFileSync(cert.key) }, (req, res) => {
    res.end(`tool saw ${req.url}`);
  });
  await new Promise<void>((r) => tool.listen(0, '127.0.0.1', r));
  cleanup.add(() => new Promise<void>((r) => tool.close(() => r())));
  cleanup.add(() => tool.closeAllConnections());
  return `https://localhost:${(tool.address() as AddressInfo).port}`;
}

/** `postern client create --json` over HTTPS, trusting the CA through NODE_EXTRA_CA_CERTS like an operator would. */
async function createClientViaCli(server: { privateUrl: string; adminToken: string }, caFile: string) {
  const r = await runCli(['client', 'create', '--name', 'tls', '--json'], {
    POSTERN_SERVER: server.privateUrl,
    POSTERN_ADMIN_TOKEN: server.adminToken,
    NODE_EXTRA_CA_CERTS: caFile,
  });
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as { clientId: string; clientToken: string };
}

describe('TLS termination (POSTERN_TLS_CERT / POSTERN_TLS_KEY) and the agent trusting a private CA', () => {
  it('serves both listeners over HTTPS; an agent with NODE_EXTRA_CA_CERTS tunnels over wss and reaches an https tool of the same CA', async () => {
    const pki = makeTestPki(cleanup);
    const server = await tlsServer(pki);
    const listening = server.child.jsonLines().find((o) => o.msg === 'listening');
    expect(listening?.tls).toBe(true);
    const creds = await createClientViaCli(server, pki.ca.cert);
    const toolUrl = await httpsTool(pki.server);
    const agent = await startAgentProcess(cleanup, server, creds, toolUrl, {
      proxyUrl: server.publicUrl,
      env: { NODE_EXTRA_CA_CERTS: pki.ca.cert },
    });
    expect(logLines(agent, (o) => o.msg === 'tunnel connected')).not.toHaveLength(0);

    const dispatcher = trustingDispatcher(cleanup, pki.ca.cert);
    const res = await fetch(`${server.privateUrl}/t/${creds.clientId}/over/tls?x=1`, { dispatcher });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('tool saw /over/tls?x=1');
    const health = await fetch(`${server.publicUrl}/healthz`, { dispatcher });
    expect(await health.json()).toEqual({ ok: true });

    // Plain HTTP to a TLS listener is a failed handshake, logged, not served.
    const plain = await fetch(`http://127.0.0.1:${server.ingressPort}/healthz`).then(
      (r) => r.status,
      (err: Error) => err.name,
    );
    expect(plain).not.toBe(200);
    const failed = await waitForLog(server.child, (o) => o.msg === 'TLS handshake failed' && o.listener === 'private');
    expect(failed.reason).toMatch(/http request/i);
  });

  it('an agent without the CA, or trusting another CA, refuses the server: a TLS error in its log, retries, never a tunnel', async () => {
    const pki = makeTestPki(cleanup);
    const server = await tlsServer(pki);
    const creds = await createClientViaCli(server, pki.ca.cert);
    const started = Date.now();
    const agents = await Promise.all([
      startAgentProcess(cleanup, server, creds, 'http://127.0.0.1:9', {
        name: 'agent-no-ca',
        proxyUrl: server.publicUrl,
        tunnels: 0,
        env: { POSTERN_RECONNECT_BASE_MS: '100', POSTERN_RECONNECT_MAX_MS: '200' },
      }),
      startAgentProcess(cleanup, server, creds, 'http://127.0.0.1:9', {
        name: 'agent-other-ca',
        proxyUrl: server.publicUrl,
        tunnels: 0,
        env: { NODE_EXTRA_CA_CERTS: pki.otherCa.cert, POSTERN_RECONNECT_BASE_MS: '100', POSTERN_RECONNECT_MAX_MS: '200' },
      }),
    ]);
    for (const agent of agents) {
      // Several attempts, each refused for the certificate: it keeps retrying, and says why.
      const down = await waitForLog(agent, (o) => o.msg === 'tunnel down, reconnecting', { count: 3, timeoutMs: 15_000 });
      expect(down.reason).toMatch(/certificate|self[- ]signed|issuer/i);
      // The line says what to do, not only what Node saw.
      expect(down.reason).toMatch(/set NODE_EXTRA_CA_CERTS/);
      expect(logLines(agent, (o) => o.msg === 'tunnel connected')).toHaveLength(0);
    }
    // No fallback to plain HTTP: that would show on the server as a failed
    // handshake (see the first test); the agents only broke off TLS handshakes.
    expect(logLines(server.child, (o) => o.msg === 'TLS handshake failed', started)).toEqual([]);
    expect(logLines(server.child, (o) => o.msg === 'agent connected')).toHaveLength(0);

    const dispatcher = trustingDispatcher(cleanup, pki.ca.cert);
    const res = await fetch(`${server.privateUrl}/t/${creds.clientId}/x`, { dispatcher });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: string }).error).toBe('agent_offline');
  });

  it('an agent refuses a tool whose certificate is from a CA it does not trust: 502 upstream_unreachable naming the TLS error', async () => {
    const pki = makeTestPki(cleanup);
    const server = await tlsServer(pki);
    const creds = await createClientViaCli(server, pki.ca.cert);
    const toolUrl = await httpsTool(pki.otherServer);
    await startAgentProcess(cleanup, server, creds, toolUrl, { proxyUrl: server.publicUrl, env: { NODE_EXTRA_CA_CERTS: pki.ca.cert } });
    const dispatcher = trustingDispatcher(cleanup, pki.ca.cert);
    const res = await fetch(`${server.privateUrl}/t/${creds.clientId}/secret`, { dispatcher });
    expect(res.status).toBe(502);
    const body = (await res.json()) as { error: string; message: string };
    expect(body.error).toBe('upstream_unreachable');
    expect(body.message).toMatch(/VERIFY|CERT|SELF_SIGNED|ISSUER/);
  });

  it('cuts off a connection that opens TLS and never handshakes, with a log line, while a tunnel keeps serving', async () => {
    const pki = makeTestPki(cleanup);
    const server = await tlsServer(pki);
    const creds = await createClientViaCli(server, pki.ca.cert);
    const toolUrl = await httpsTool(pki.server);
    await startAgentProcess(cleanup, server, creds, toolUrl, { proxyUrl: server.publicUrl, env: { NODE_EXTRA_CA_CERTS: pki.ca.cert } });

    const opened = Date.now();
    const silent = [server.port, server.ingressPort].map((port) => {
      const s = tcpConnect(port, '127.0.0.1');
      s.on('error', () => {});
      cleanup.add(() => s.destroy());
      return new Promise<number>((r) => s.on('close', () => r(Date.now() - opened)));
    });
    // A TLS client that completes the handshake but never sends a request head: the HTTP limit applies.
    const mute = tlsConnect({ port: server.ingressPort, host: '127.0.0.1', ca: readFileSync(pki.ca.cert), servername: 'localhost' });
    mute.on('error', () => {});
    cleanup.add(() => mute.destroy());
    const muteClosed = new Promise<number>((r) => mute.on('close', () => r(Date.now() - opened)));

    const dispatcher = trustingDispatcher(cleanup, pki.ca.cert);
    const res = await fetch(`${server.privateUrl}/t/${creds.clientId}/during`, { dispatcher });
    expect(await res.text()).toBe('tool saw /during');

    const closedAfter = await within(Promise.all([...silent, muteClosed]), 10_000, 'the idle TLS connections to be closed');
    for (const ms of closedAfter) {
      expect(ms).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 50);
      expect(ms).toBeLessThan(HEADERS_TIMEOUT_MS * 3 + 1_000);
    }
    const handshakeLines = logLines(server.child, (o) => /TLS handshake not completed in time/.test(String(o.msg)), opened);
    expect(new Set(handshakeLines.map((o) => o.listener))).toEqual(new Set(['public', 'private']));
    expect(handshakeLines[0]).toMatchObject({ remote: '127.0.0.1', timeoutMs: HEADERS_TIMEOUT_MS });
    await waitForLog(server.child, (o) => /request not received in time/.test(String(o.msg)), { since: opened });

    // The tunnel was not touched.
    const after = await fetch(`${server.privateUrl}/t/${creds.clientId}/after`, { dispatcher });
    expect(await after.text()).toBe('tool saw /after');
    expect(logLines(server.child, (o) => o.msg === 'agent disconnected')).toHaveLength(0);
  });

  it('stops at start with exit code 2 and a line naming the setting for a key that does not match the certificate', async () => {
    const pki = makeTestPki(cleanup);
    const r = await runCli(['server'], {
      POSTERN_HOST: '127.0.0.1',
      POSTERN_PORT: '0',
      POSTERN_INGRESS_PORT: '0',
      POSTERN_DATA_DIR: pki.dir,
      POSTERN_ADMIN_TOKEN: 'unused',
      POSTERN_TLS_CERT: pki.server.cert,
      POSTERN_TLS_KEY: pki.otherServer.key,
    });
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(
      `postern: configuration error: POSTERN_TLS_KEY: the key in ${pki.otherServer.key} does not belong to the certificate in ${pki.server.cert}`,
    );
    expect(r.stderr).not.toContain('PRIVATE KEY');
  });
});
