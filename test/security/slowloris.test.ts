import { connect, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { Cleanup } from '../helpers/cleanup.js';
import { send } from '../helpers/http-client.js';
import { createClient, logLines, startServerProcess } from '../helpers/processes.js';
import { startAgent } from '../helpers/start-agent.js';
import { echoHandler, startUpstream } from '../helpers/upstream.js';
import { within } from '../helpers/wait.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

/** Short for the test; the default is 20 s. Every legitimate exchange below runs longer than three of these. */
const HEADERS_TIMEOUT_MS = 800;
/** How long the legitimate slow exchanges take: well past the head limit. */
const SLOW_MS = 3 * HEADERS_TIMEOUT_MS;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Attacker {
  what: string;
  /** ms from the start until the server closed the connection. */
  closedAfter: Promise<number>;
}

/**
 * Opens a connection that sends `head` then `drip` one byte every 100 ms,
 * forever (or nothing at all when both are empty): the server must close it.
 */
function attacker(what: string, port: number, started: number, head: string, drip = ''): Attacker {
  const socket: Socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  let i = 0;
  const timer = setInterval(() => {
    if (drip && socket.writable) socket.write(drip[i++ % drip.length]!);
  }, 100);
  socket.on('connect', () => head && socket.write(head));
  cleanup.add(() => {
    clearInterval(timer);
    socket.destroy();
  });
  const closedAfter = new Promise<number>((resolve) =>
    socket.on('close', () => {
      clearInterval(timer);
      resolve(Date.now() - started);
    }),
  );
  return { what, closedAfter };
}

describe('slowloris on both listeners (POSTERN_HEADERS_TIMEOUT_MS)', () => {
  it('cuts off connections that trickle or never send a request, with a log line, while tunnels, slow tools and slow uploads keep going', async () => {
    const server = await startServerProcess(cleanup, { env: { POSTERN_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS) } });
    const creds = await createClient(server, 'slow');
    const upstream = await startUpstream(async (x) => {
      if (x.record.url === '/slow-head') {
        await sleep(SLOW_MS);
        x.res.end('late but fine');
      } else if (x.record.url === '/slow-body') {
        x.res.writeHead(200, { 'content-type': 'application/octet-stream' });
        for (let n = 0; n < 8; n++) {
          x.res.write(Buffer.alloc(1024, n));
          await sleep(SLOW_MS / 8);
        }
        x.res.end();
      } else {
        await echoHandler(x);
      }
    });
    cleanup.add(() => upstream.close());
    const agent = await startAgent({ ...creds, proxyUrl: `http://127.0.0.1:${server.port}`, toolUrl: upstream.url });
    cleanup.add(() => agent.stop());
    const url = (path: string) => `${server.ingressUrl}/t/${creds.clientId}${path}`;

    const started = Date.now();
    const upgradeHead = `GET /v1/tunnel HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n`;
    const attackers = [
      attacker('public: connects, sends nothing', server.port, started, ''),
      attacker('public: trickles a WebSocket upgrade head', server.port, started, '', upgradeHead),
      attacker('public: whole head, then trickles a body', server.port, started, 'POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n', 'x'),
      attacker('private: connects, sends nothing', server.ingressPort, started, ''),
      attacker('private: trickles an ingress request head', server.ingressPort, started, '', `GET /t/${creds.clientId}/x HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(200)}`),
      attacker('private: one request, then trickles the next head', server.ingressPort, started, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\n', 'X-A: b\r\n'),
    ];

    // Legitimate traffic meanwhile, each exchange lasting several head limits.
    const chunks = 8;
    const slowUpload = Readable.from(
      (async function* () {
        for (let n = 0; n < chunks; n++) {
          yield Buffer.alloc(16 * 1024, n);
          await sleep(SLOW_MS / chunks);
        }
      })(),
    );
    const [quick, slowHead, slowBody, upload] = await Promise.all([
      send(url('/quick')),
      send(url('/slow-head')),
      send(url('/slow-body')),
      send(url('/upload'), { method: 'POST', headers: { 'transfer-encoding': 'chunked' }, body: slowUpload }),
    ]);
    expect(quick.status).toBe(200);
    expect(slowHead.status).toBe(200);
    expect(slowHead.body.toString()).toBe('late but fine');
    expect(slowBody.complete).toBe(true);
    expect(slowBody.bytes).toBe(8 * 1024);
    expect(upload.status).toBe(200);
    expect((JSON.parse(upload.body.toString()) as { bytes: number }).bytes).toBe(chunks * 16 * 1024);

    const closed = await within(Promise.all(attackers.map((a) => a.closedAfter)), 10_000, 'every slow connection to be closed');
    for (const [i, ms] of closed.entries()) {
      // Cut after the limit, within 1.25× of it plus scheduling slack on a loaded box.
      expect(ms, attackers[i]!.what).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 50);
      expect(ms, attackers[i]!.what).toBeLessThan(3 * HEADERS_TIMEOUT_MS);
    }

    const why = logLines(server.child, (o) => String(o.msg).startsWith('connection closed: request not received in time'), started);
    expect(new Set(why.map((o) => o.listener))).toEqual(new Set(['public', 'private']));
    for (const line of why) expect(line).toMatchObject({ remote: '127.0.0.1', timeoutMs: HEADERS_TIMEOUT_MS, level: 40 });
    // Several connections from one address: one warning per listener, not one per connection.
    expect(why.length).toBe(2);

    // The tunnel lived through all of it.
    expect(agent.agent.ready).toBe(true);
    expect(logLines(server.child, (o) => o.msg === 'agent disconnected')).toHaveLength(0);
    expect((await send(url('/after'))).status).toBe(200);
  });
});
