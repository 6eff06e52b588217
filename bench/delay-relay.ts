import { connect, createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A TCP relay on 127.0.0.1 that adds RELAY_DELAY_MS (default 25) to every
 * chunk in each direction, preserving order: a WAN link with that one-way
 * latency and (nearly) unlimited bandwidth. Forwards to
 * 127.0.0.1:RELAY_TARGET_PORT. Prints {"msg":"listening","port":N}.
 *
 * Bytes in flight on the "wire" are bounded: a direction that holds more than
 * MAX_QUEUED bytes pauses its source until the queue shrinks, and the
 * destination socket's own backpressure is respected.
 */
const target = Number(process.env.RELAY_TARGET_PORT);
const delayMs = Number(process.env.RELAY_DELAY_MS ?? '25');
const MAX_QUEUED = 64 * 1024 * 1024;

if (!Number.isInteger(target) || target <= 0) {
  process.stderr.write('RELAY_TARGET_PORT is required\n');
  process.exit(2);
}

/** One direction of a relayed connection. */
function delayPipe(src: Socket, dst: Socket): void {
  const queue: { due: number; data: Buffer }[] = [];
  let queued = 0;
  let head = 0;
  let timer: NodeJS.Timeout | undefined;
  let ended = false;
  let blocked = false;

  const release = (): void => {
    timer = undefined;
    const now = performance.now();
    while (head < queue.length && queue[head]!.due <= now + 0.5) {
      const { data } = queue[head]!;
      queue[head] = undefined as never;
      head++;
      queued -= data.length;
      if (!dst.write(data)) blocked = true;
    }
    if (head > 1024 && head * 2 > queue.length) {
      queue.splice(0, head);
      head = 0;
    }
    if (blocked) {
      // The far side is slow: hold everything until it drains.
      dst.once('drain', () => {
        blocked = false;
        release();
      });
      return;
    }
    if (queued < MAX_QUEUED && src.isPaused()) src.resume();
    if (head < queue.length) arm();
    else if (ended) dst.end();
  };
  const arm = (): void => {
    if (timer || blocked) return;
    const wait = Math.max(0, queue[head]!.due - performance.now());
    timer = setTimeout(release, wait);
  };

  src.on('data', (data: Buffer) => {
    queue.push({ due: performance.now() + delayMs, data });
    queued += data.length;
    if (queued >= MAX_QUEUED) src.pause();
    arm();
  });
  src.on('end', () => {
    ended = true;
    if (head >= queue.length && !blocked) dst.end();
  });
}

const server = createServer((client) => {
  const upstream = connect(target, '127.0.0.1');
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  const kill = (): void => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', kill);
  upstream.on('error', kill);
  client.on('close', kill);
  upstream.on('close', kill);
  delayPipe(client, upstream);
  delayPipe(upstream, client);
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ msg: 'listening', port: (server.address() as AddressInfo).port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
