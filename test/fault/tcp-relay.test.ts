import { createHash } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { TcpRelay } from '../../bench/tcp-relay.js';
import { Cleanup } from '../helpers/cleanup.js';
import { patternChunks, patternSha256 } from '../helpers/pattern-data.js';
import { waitUntil } from '../helpers/wait.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

/** What one socket has seen. */
interface Seen {
  socket: Socket;
  data: () => Buffer;
  ended: boolean;
  closed: boolean;
  error: Error | undefined;
}

function watch(socket: Socket): Seen {
  const chunks: Buffer[] = [];
  const seen: Seen = { socket, data: () => Buffer.concat(chunks), ended: false, closed: false, error: undefined };
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('end', () => (seen.ended = true));
  socket.on('close', () => (seen.closed = true));
  socket.on('error', (err) => (seen.error = err));
  return seen;
}

/** A TCP server on 127.0.0.1 that keeps every accepted socket (watched). */
async function startTarget(opts: { pauseOnConnect?: boolean } = {}): Promise<{ port: number; accepted: Seen[]; server: Server }> {
  const accepted: Seen[] = [];
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: opts.pauseOnConnect ?? false }, (s) => {
    // A paused socket must not be put into flowing mode by a 'data' listener yet.
    accepted.push(opts.pauseOnConnect ? { socket: s, data: () => Buffer.alloc(0), ended: false, closed: false, error: undefined } : watch(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanup.add(async () => {
    for (const s of accepted) s.socket.destroy();
    await new Promise((r) => server.close(r));
  });
  return { port: (server.address() as AddressInfo).port, accepted, server };
}

async function startRelay(port: number): Promise<TcpRelay> {
  const relay = await TcpRelay.start(port);
  cleanup.add(() => relay.close());
  return relay;
}

/** Connects through the relay; resolves with both ends once the target accepted. */
async function dial(relay: TcpRelay, target: { accepted: Seen[] }): Promise<{ client: Seen; far: Seen }> {
  const before = target.accepted.length;
  const socket = connect({ port: relay.port, host: '127.0.0.1', allowHalfOpen: true });
  const client = watch(socket);
  cleanup.add(() => socket.destroy());
  await waitUntil(() => target.accepted.length > before, 'the target to accept');
  return { client, far: target.accepted[before]! };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** Long enough for loopback bytes to arrive if they were going to. */
const SETTLE_MS = 300;

describe('TcpRelay', () => {
  it('relays bytes both ways and counts its connections', async () => {
    const target = await startTarget();
    const relay = await startRelay(target.port);
    const { client, far } = await dial(relay, target);
    expect(relay.connections).toBe(1);
    client.socket.write('ping');
    far.socket.write('pong');
    await waitUntil(() => far.data().toString() === 'ping' && client.data().toString() === 'pong', 'bytes both ways');
    client.socket.end();
    await waitUntil(() => far.ended, 'the FIN to be passed on');
    far.socket.end();
    await waitUntil(() => relay.connections === 0, 'the connection to be gone');
  });

  it('stall holds bytes both ways without losing any; resume delivers them in order; a new connection is not stalled', async () => {
    const target = await startTarget();
    const relay = await startRelay(target.port);
    const { client, far } = await dial(relay, target);
    client.socket.write('a');
    await waitUntil(() => far.data().toString() === 'a', 'the first byte');

    relay.stall();
    const up = Buffer.alloc(200_000, 'b');
    const down = Buffer.alloc(200_000, 'x');
    client.socket.write(up);
    far.socket.write(down);
    await sleep(SETTLE_MS);
    expect(far.data().toString()).toBe('a');
    expect(client.data().length).toBe(0);

    const fresh = await dial(relay, target);
    fresh.client.socket.write('new');
    await waitUntil(() => fresh.far.data().toString() === 'new', 'a connection made during the stall to flow');

    relay.resume();
    await waitUntil(() => far.data().length === 1 + up.length && client.data().length === down.length, 'the held bytes');
    expect(far.data().equals(Buffer.concat([Buffer.from('a'), up]))).toBe(true);
    expect(client.data().equals(down)).toBe(true);
  });

  it('blackhole discards every byte both ways, passes on no FIN or reset, and keeps both sockets open', async () => {
    const target = await startTarget();
    const relay = await startRelay(target.port);
    const { client, far } = await dial(relay, target);
    relay.blackhole();
    client.socket.write('lost up');
    far.socket.write('lost down');
    client.socket.end();
    await sleep(SETTLE_MS);
    expect(far.data().length).toBe(0);
    expect(client.data().length).toBe(0);
    expect(far.ended).toBe(false);
    expect(far.closed).toBe(false);
    // Not undone by resume(): the mapping is gone for good.
    relay.resume();
    far.socket.write('still lost');
    await sleep(SETTLE_MS);
    expect(client.data().length).toBe(0);

    const fresh = await dial(relay, target);
    fresh.client.socket.write('new');
    fresh.far.socket.write('back');
    await waitUntil(() => fresh.far.data().toString() === 'new' && fresh.client.data().toString() === 'back', 'a new connection to flow');
    expect(relay.connections).toBe(2);
    // Each side's socket goes when that side closes it.
    far.socket.destroy();
    await waitUntil(() => relay.connections === 1, 'the black-holed connection to be gone once both sides closed');
  });

  it('dropAll resets both sides of every connection', async () => {
    const target = await startTarget();
    const relay = await startRelay(target.port);
    const one = await dial(relay, target);
    const two = await dial(relay, target);
    relay.dropAll();
    await waitUntil(() => [one, two].every((c) => c.client.closed && c.far.closed), 'every socket to close');
    expect([one.client.error, one.far.error].some((e) => (e as NodeJS.ErrnoException | undefined)?.code === 'ECONNRESET')).toBe(true);
    expect(relay.connections).toBe(0);
  });

  it('setTarget sends new connections to the new port and leaves existing ones where they are', async () => {
    const oldTarget = await startTarget();
    const newTarget = await startTarget();
    const relay = await startRelay(oldTarget.port);
    const old = await dial(relay, oldTarget);
    relay.setTarget(newTarget.port);
    const moved = await dial(relay, newTarget);
    old.client.socket.write('old');
    moved.client.socket.write('new');
    await waitUntil(() => old.far.data().toString() === 'old' && moved.far.data().toString() === 'new', 'each to reach its target');
  });

  it('respects backpressure: a reader that does not read stops the writer instead of filling the relay', async () => {
    const target = await startTarget({ pauseOnConnect: true });
    const relay = await startRelay(target.port);
    const socket = connect({ port: relay.port, host: '127.0.0.1' });
    cleanup.add(() => socket.destroy());
    const size = 64 * 1024 * 1024;
    for (const chunk of patternChunks(size, 3, 1024 * 1024)) socket.write(chunk);
    await waitUntil(() => target.accepted.length === 1, 'the target to accept');
    await sleep(SETTLE_MS);
    // Only kernel buffers and a read's worth in the relay are between them;
    // the rest still waits in the writer.
    expect(socket.writableLength).toBeGreaterThan(size / 2);

    const far = target.accepted[0]!.socket;
    const hash = createHash('sha256');
    let got = 0;
    far.on('data', (c: Buffer) => {
      got += c.length;
      hash.update(c);
    });
    far.resume();
    await waitUntil(() => got === size, 'every byte once the reader reads', 20_000);
    expect(hash.digest('hex')).toBe(patternSha256(size, 3));
  });
});
