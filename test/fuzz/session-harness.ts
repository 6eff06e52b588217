import fc from 'fast-check';
import { encodeFrame } from '../../protocol/codec.js';
import { ErrorCodes } from '../../protocol/error-codes.js';
import type { FloodLimits } from '../../protocol/frame-budget.js';
import { FrameType, type Frame } from '../../protocol/frame-types.js';
import { TunnelError } from '../../protocol/tunnel-error.js';
import type { TunnelSession } from '../../protocol/tunnel-session.js';
import { createLoneSession, settle, takeCallbackErrors } from '../protocol/session-pair.js';
import { frameArb } from './arbitraries.js';

/**
 * Drives one TunnelSession (either role) with a random mix of received
 * frames, garbage, local stream operations, time and socket backpressure,
 * and checks after every step that it keeps its contract: receive() never
 * throws, a close happens once, for a reason that is the peer's fault (or a
 * heartbeat timeout), leaves no timer and no stream behind, and the state it
 * keeps stays bounded.
 */

export type Role = 'server' | 'agent';

export type Action =
  | { a: 'frame'; frame: Frame }
  /** A frame for a stream that exists (or recently did), so sequences get past the first frame. */
  | { a: 'stream-frame'; pick: number; kind: 'DATA' | 'END' | 'RESET' | 'WINDOW_UPDATE' | 'RESPONSE'; n: number }
  /** A REQUEST with the next id the peer may use. */
  | { a: 'next-request'; endStream: boolean }
  | { a: 'bytes'; bytes: Uint8Array }
  | { a: 'open'; endStream: boolean }
  | { a: 'stream-op'; pick: number; op: StreamOp; n: number }
  | { a: 'clock'; ms: number }
  | { a: 'buffer'; amount: number }
  | { a: 'goaway' }
  | { a: 'settle' };

type StreamOp = 'respond' | 'respond-end' | 'write' | 'end' | 'reset' | 'read' | 'finish-early' | 'consume' | 'resume';

/** Mostly frames a session can take after the handshake: a handshake frame (which closes it) now and then. */
const sessionFrameArb = fc.oneof(
  { weight: 40, arbitrary: frameArb.filter((f) => f.type !== FrameType.HELLO && f.type !== FrameType.WELCOME) },
  { weight: 1, arbitrary: frameArb },
);

/** Garbage bytes: closes the session; one per sequence at most goes at its end. */
export const garbageArb: fc.Arbitrary<Action> = fc.record({ a: fc.constant('bytes' as const), bytes: fc.uint8Array({ maxLength: 24 }) });

/** Everything but garbage. */
export const actionArb: fc.Arbitrary<Action> = fc.oneof(
  { weight: 2, arbitrary: sessionFrameArb.map((frame): Action => ({ a: 'frame', frame })) },
  {
    weight: 8,
    arbitrary: fc.record({
      a: fc.constant('stream-frame' as const),
      pick: fc.nat(),
      // Weighted towards frames that keep a stream going; the others end it (or the session).
      kind: fc.constantFrom('DATA' as const, 'DATA' as const, 'WINDOW_UPDATE' as const, 'WINDOW_UPDATE' as const, 'END' as const, 'RESET' as const, 'RESPONSE' as const),
      n: fc.oneof(fc.integer({ min: 0, max: 16 }), fc.integer({ min: 0, max: 70_000 })),
    }),
  },
  { weight: 4, arbitrary: fc.record({ a: fc.constant('next-request' as const), endStream: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ a: fc.constant('open' as const), endStream: fc.boolean() }) },
  {
    weight: 6,
    arbitrary: fc.record({
      a: fc.constant('stream-op' as const),
      pick: fc.nat(),
      op: fc.constantFrom<StreamOp>('respond', 'respond-end', 'write', 'end', 'reset', 'read', 'finish-early', 'consume', 'resume'),
      n: fc.integer({ min: 1, max: 70_000 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      a: fc.constant('clock' as const),
      // Mostly within the 1 s heartbeat; now and then past the 1.5 s that counts as dead.
      ms: fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 0, max: 400 }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 3_000 }) }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ a: fc.constant('buffer' as const), amount: fc.constantFrom(0, 0, 100, 300 * 1024, 8 * 1024 * 1024) }) },
  { weight: 1, arbitrary: fc.constant<Action>({ a: 'goaway' }) },
  { weight: 2, arbitrary: fc.constant<Action>({ a: 'settle' }) },
);

/** Small flood limits, so short sequences reach them too. */
export const TIGHT_FLOOD: FloodLimits = { idleFrameBurst: 6, idleFramesPerSecond: 10, maxQueuedAnswers: 3 };

/** Private state of a session the checks look at. */
interface Internals {
  recentResets: Set<number>;
  ready: unknown[];
  lastPeerId: number;
  nextLocalId: number;
}

function internals(session: TunnelSession): Internals {
  return session as unknown as Internals;
}

/** Close reasons that are the peer's doing or the clock's; anything else (INTERNAL) is a bug here. */
const ALLOWED_CLOSE = new Set<string>([
  ErrorCodes.PROTOCOL.code,
  ErrorCodes.FLOW_CONTROL.code,
  ErrorCodes.FRAME_TOO_LARGE.code,
  ErrorCodes.STREAM_CLOSED.code,
  ErrorCodes.FLOOD.code,
  ErrorCodes.HEARTBEAT_TIMEOUT.code,
]);

export class SessionHarness {
  readonly lone: ReturnType<typeof createLoneSession>;
  private readonly recentIds: number[] = [];

  constructor(
    readonly role: Role,
    flood?: Partial<FloodLimits>,
  ) {
    this.lone = createLoneSession(role, flood ? { options: { flood } } : {});
    this.lone.session.start();
  }

  get session(): TunnelSession {
    return this.lone.session;
  }

  /** Feeds one message; receive() must not throw. */
  receive(bytes: Uint8Array): void {
    this.session.receive(bytes);
  }

  async apply(action: Action): Promise<void> {
    const { session, transport, clock } = this.lone;
    switch (action.a) {
      case 'frame':
        return this.receive(encodeFrame(action.frame));
      case 'bytes':
        return this.receive(action.bytes);
      case 'next-request': {
        // The server's peer opens even ids, the agent's peer odd ones.
        const parity = this.role === 'server' ? 0 : 1;
        let id = internals(session).lastPeerId + 1;
        if (id % 2 !== parity) id++;
        return this.receive(encodeFrame({ type: FrameType.REQUEST, streamId: id, method: 'POST', path: '/f', headers: [], endStream: action.endStream }));
      }
      case 'stream-frame': {
        const ids = [...session.streams.keys(), ...this.recentIds];
        if (ids.length === 0) return;
        const streamId = ids[action.pick % ids.length]!;
        return this.receive(encodeFrame(streamFrame(action.kind, streamId, action.n)));
      }
      case 'open':
        try {
          const stream = session.openStream('POST', '/f', [], action.endStream);
          this.remember(stream.id);
        } catch (err) {
          if (!(err instanceof TunnelError)) throw err;
        }
        return;
      case 'stream-op': {
        const streams = [...session.streams.values()];
        if (streams.length === 0) return;
        const s = streams[action.pick % streams.length]!;
        this.remember(s.id);
        // A head answers a request the peer opened, before this side ended its body (as the
        // agent's ToolRunner does); other calls are local misuse, not something a peer can cause.
        const mayRespond = s.request !== undefined && !s.endQueued;
        switch (action.op) {
          case 'respond':
            return mayRespond ? s.respond(200, ['content-type', 'text/plain'], false) : undefined;
          case 'respond-end':
            return mayRespond ? s.respond(204, [], true) : undefined;
          case 'write':
            s.writeData(new Uint8Array(action.n));
            return;
          case 'end':
            return s.endData();
          case 'reset':
            return s.reset(ErrorCodes.CANCEL, 'fuzz');
          case 'read':
            s.body.read();
            return;
          case 'finish-early':
            return s.finishEarly();
          case 'consume':
            return s.consumeWith(() => action.n % 2 === 0, () => {});
          case 'resume':
            return s.resumeConsumption();
        }
        return;
      }
      case 'clock':
        return clock.advance(action.ms);
      case 'buffer':
        if (action.amount === 0) transport.drain();
        else transport.bufferedAmount = action.amount;
        return;
      case 'goaway':
        return session.goaway();
      case 'settle':
        return settle(1);
    }
  }

  private remember(id: number): void {
    if (this.recentIds.includes(id)) return;
    this.recentIds.push(id);
    if (this.recentIds.length > 32) this.recentIds.shift();
  }

  /** The contract, checked after every step. Throws with what broke. */
  check(): void {
    const { session, closed, clock } = this.lone;
    const inner = internals(session);
    const fail = (what: string): never => {
      throw new Error(`${this.role} session: ${what}`);
    };
    if (session.closed) {
      if (closed.length !== 1) fail(`onClose ran ${closed.length} times`);
      const err = closed[0];
      if (err !== undefined && !ALLOWED_CLOSE.has(err.code)) fail(`closed for a reason that is not the peer's fault: ${err.code}: ${err.message}`);
      if (clock.activeTimers !== 0) fail(`${clock.activeTimers} timers still running after close`);
      if (session.activeStreams !== 0) fail(`${session.activeStreams} streams left after close`);
    } else if (closed.length !== 0) {
      fail('onClose ran but the session says it is open');
    }
    // Streams it opened (≤ peerMaxStreams 16) plus streams the peer opened (≤ localMaxStreams 16).
    if (session.activeStreams > 32) fail(`${session.activeStreams} streams open`);
    if (inner.recentResets.size > 1024) fail(`${inner.recentResets.size} remembered resets`);
    if (inner.ready.length > session.activeStreams) fail(`${inner.ready.length} streams scheduled, ${session.activeStreams} open`);
    const thrown = takeCallbackErrors();
    if (thrown.length > 0) fail(`threw into transport callbacks: ${thrown.map(String).join('; ')}`);
  }

  /**
   * After a sequence: a session still open answers a PING (it keeps
   * working), and closing it leaves no timer and no stream.
   */
  async finish(): Promise<void> {
    const { session, transport, clock, closed } = this.lone;
    if (!session.closed) {
      const before = transport.framesOfType(FrameType.PONG).length;
      this.receive(encodeFrame({ type: FrameType.PING, id: 424242 }));
      const pongs = transport.framesOfType(FrameType.PONG);
      if (!session.closed && (pongs.length !== before + 1 || pongs.at(-1)!.id !== 424242)) {
        throw new Error(`${this.role} session is open but did not answer a PING`);
      }
    }
    session.close();
    await settle(2);
    this.check();
    if (clock.activeTimers !== 0 || session.activeStreams !== 0 || closed.length !== 1) {
      throw new Error(`${this.role} session left state after close()`);
    }
  }
}

function streamFrame(kind: 'DATA' | 'END' | 'RESET' | 'WINDOW_UPDATE' | 'RESPONSE', streamId: number, n: number): Frame {
  switch (kind) {
    case 'DATA':
      return { type: FrameType.DATA, streamId, data: new Uint8Array(n) };
    case 'END':
      return { type: FrameType.END, streamId };
    case 'RESET':
      return { type: FrameType.RESET, streamId, code: ErrorCodes.CANCEL.wire, message: '' };
    case 'WINDOW_UPDATE':
      return { type: FrameType.WINDOW_UPDATE, streamId, increment: Math.max(1, n) };
    case 'RESPONSE':
      return { type: FrameType.RESPONSE, streamId, status: 200, headers: [], endStream: n % 2 === 0 };
  }
}

/** Runs a whole sequence with the checks; returns the harness for more assertions. */
export async function runSequence(role: Role, actions: readonly Action[], flood?: Partial<FloodLimits>): Promise<SessionHarness> {
  const h = new SessionHarness(role, flood);
  for (const action of actions) {
    await h.apply(action);
    h.check();
  }
  await h.finish();
  return h;
}
