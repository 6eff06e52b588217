import { decodeFrame } from '../../protocol/codec.js';
import type { Frame } from '../../protocol/frame-types.js';
import type { NegotiatedLimits } from '../../protocol/handshake.js';
import {
  TunnelSession,
  type FrameTransport,
  type SessionClock,
  type TunnelSessionOptions,
} from '../../protocol/tunnel-session.js';
import type { TunnelStream } from '../../protocol/tunnel-stream.js';
import type { TunnelError } from '../../protocol/tunnel-error.js';

/**
 * Test helpers for TunnelSession: a manual clock, an in-memory transport and
 * a factory that connects a server session to an agent session.
 */

/**
 * Errors thrown out of a session into the transport's callbacks (receive()
 * during delivery, onceDrained callbacks). A real socket would turn these
 * into an uncaught exception that kills the process; here they are kept so a
 * test can fail on them by name. Call takeCallbackErrors() in afterEach.
 */
const callbackErrors: unknown[] = [];

/** Returns and forgets the errors sessions threw into transport callbacks. */
export function takeCallbackErrors(): unknown[] {
  return callbackErrors.splice(0);
}

function guarded(fn: () => void): () => void {
  return () => {
    try {
      fn();
    } catch (err) {
      callbackErrors.push(err);
    }
  };
}

/** A SessionClock whose time only moves when the test calls advance(). */
export class FakeClock implements SessionClock {
  time = 1_000;
  private nextHandle = 1;
  private readonly timers = new Map<number, { cb: () => void; ms: number; due: number }>();

  now(): number {
    return this.time;
  }

  setInterval(cb: () => void, ms: number): unknown {
    const handle = this.nextHandle++;
    this.timers.set(handle, { cb, ms, due: this.time + ms });
    return handle;
  }

  clearInterval(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  /** Intervals currently registered. */
  get activeTimers(): number {
    return this.timers.size;
  }

  /** Moves time forward by `ms`, running every interval callback that falls due, in order. */
  advance(ms: number): void {
    const target = this.time + ms;
    for (;;) {
      let next: { cb: () => void; ms: number; due: number } | undefined;
      for (const t of this.timers.values()) if (t.due <= target && (!next || t.due < next.due)) next = t;
      if (!next) break;
      this.time = next.due;
      next.due += next.ms;
      next.cb();
    }
    this.time = target;
  }
}

/**
 * In-memory FrameTransport. Bytes sent are decoded into `sent` (for frame
 * counting) and, when a peer is attached, delivered to its receive() in a
 * microtask, in order; close() tells the peer's transportClosed(). bufferedAmount is whatever the test sets (or grows
 * with each send when `accumulate` is on); drain() empties it and runs the
 * onceDrained callbacks via setImmediate.
 */
export class MemoryTransport implements FrameTransport {
  peer: TunnelSession | undefined;
  bufferedAmount = 0;
  /** When true, send() adds each message's size to bufferedAmount, as a socket the OS is slow to take from. */
  accumulate = false;
  /** Every frame handed to send(), decoded. */
  readonly sent: Frame[] = [];
  /** Set when close() is called. */
  closedWith: { code: number; reason: string } | undefined;
  private drainWaiters: (() => void)[] = [];

  send(bytes: Uint8Array): void {
    const copy = Uint8Array.from(bytes);
    this.sent.push(decodeFrame(copy, 0x7fffffff));
    if (this.accumulate) this.bufferedAmount += copy.byteLength;
    const peer = this.peer;
    if (peer) queueMicrotask(guarded(() => peer.receive(copy)));
  }

  onceDrained(cb: () => void): void {
    if (this.bufferedAmount === 0) setImmediate(guarded(cb));
    else this.drainWaiters.push(cb);
  }

  /** Empties the buffer and wakes whoever waits for drain. */
  drain(): void {
    this.bufferedAmount = 0;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const cb of waiters) setImmediate(guarded(cb));
  }

  /** Set when abort() (not close()) ended the transport. */
  aborted = false;

  abort(code: number, reason: string): void {
    this.aborted = true;
    this.close(code, reason);
  }

  close(code: number, reason: string): void {
    if (this.closedWith) return;
    this.closedWith = { code, reason };
    const peer = this.peer;
    if (peer) queueMicrotask(guarded(() => peer.transportClosed(reason)));
  }

  /** Frames sent of one type. */
  framesOfType<T extends Frame['type']>(type: T): Extract<Frame, { type: T }>[] {
    return this.sent.filter((f): f is Extract<Frame, { type: T }> => f.type === type);
  }
}

export interface SessionSetup {
  limits?: Partial<NegotiatedLimits>;
  options?: Partial<Omit<TunnelSessionOptions, 'limits' | 'role'>>;
}

export const TEST_WINDOW = 64 * 1024;
export const TEST_FRAME_SIZE = 1024 * 1024;

/** Options for one session with small, test-friendly limits. */
export function sessionOptions(role: 'server' | 'agent', clock: FakeClock, setup: SessionSetup = {}): TunnelSessionOptions {
  return {
    role,
    clock,
    limits: {
      peerMaxStreams: 16,
      peerInitialWindow: TEST_WINDOW,
      sendMaxFrameSize: TEST_FRAME_SIZE,
      heartbeatMs: 1_000,
      ...setup.limits,
    },
    localInitialWindow: TEST_WINDOW,
    localMaxStreams: 16,
    localMaxFrameSize: TEST_FRAME_SIZE,
    ...setup.options,
  };
}

export interface SessionPair {
  clock: FakeClock;
  server: TunnelSession;
  agent: TunnelSession;
  /** What the server sends (and the agent receives). */
  serverTransport: MemoryTransport;
  /** What the agent sends (and the server receives). */
  agentTransport: MemoryTransport;
  /** Streams the agent accepted, with their request heads. */
  incoming: TunnelStream[];
  serverClosed: (TunnelError | undefined)[];
  agentClosed: (TunnelError | undefined)[];
}

/**
 * Connects a server session and an agent session back to back. By default
 * the agent collects incoming streams in `incoming`; pass options.onStream
 * in `agent` to handle them instead.
 */
export function createSessionPair(setup: { server?: SessionSetup; agent?: SessionSetup } = {}): SessionPair {
  const clock = new FakeClock();
  const serverTransport = new MemoryTransport();
  const agentTransport = new MemoryTransport();
  const incoming: TunnelStream[] = [];
  const serverClosed: (TunnelError | undefined)[] = [];
  const agentClosed: (TunnelError | undefined)[] = [];
  const server = new TunnelSession(serverTransport, {
    onClose: (err) => serverClosed.push(err),
    ...sessionOptions('server', clock, setup.server),
  });
  const agent = new TunnelSession(agentTransport, {
    onStream: (stream) => incoming.push(stream),
    onClose: (err) => agentClosed.push(err),
    ...sessionOptions('agent', clock, setup.agent),
  });
  serverTransport.peer = agent;
  agentTransport.peer = server;
  return { clock, server, agent, serverTransport, agentTransport, incoming, serverClosed, agentClosed };
}

/** One session whose sent frames go nowhere; feed it with receive(). */
export function createLoneSession(role: 'server' | 'agent', setup: SessionSetup = {}) {
  const clock = new FakeClock();
  const transport = new MemoryTransport();
  const closed: (TunnelError | undefined)[] = [];
  const incoming: TunnelStream[] = [];
  const session = new TunnelSession(transport, {
    onStream: role === 'agent' ? (stream) => incoming.push(stream) : undefined,
    onClose: (err) => closed.push(err),
    ...sessionOptions(role, clock, setup),
  });
  return { clock, transport, session, closed, incoming };
}

/** Lets queued microtasks and immediates (frame delivery, drain, stream callbacks) run. */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** Reads a Readable to the end and concatenates what it gave. */
export async function readAll(body: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** Deterministic test bytes: value i is (i * 31 + seed) & 0xff. */
export function patternBytes(length: number, seed = 7): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}
