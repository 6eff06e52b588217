import { afterEach, describe, expect, it } from 'vitest';
import { encodeFrame } from '../../protocol/codec.js';
import { CloseCodes, ErrorCodes } from '../../protocol/error-codes.js';
import { DEFAULT_FLOOD_LIMITS, type FloodLimits } from '../../protocol/frame-budget.js';
import { FrameType, type Frame } from '../../protocol/frame-types.js';
import { createLoneSession, settle, takeCallbackErrors } from './session-pair.js';

afterEach(() => {
  expect(takeCallbackErrors()).toStrictEqual([]);
});

const MiB = 1024 * 1024;
const f = (frame: Frame): Uint8Array => encodeFrame(frame);
const ping = (id: number): Uint8Array => f({ type: FrameType.PING, id });
const request = (streamId: number, endStream = true): Uint8Array =>
  f({ type: FrameType.REQUEST, streamId, method: 'GET', path: '/', headers: [], endStream });
const reset = (streamId: number): Uint8Array => f({ type: FrameType.RESET, streamId, code: ErrorCodes.CANCEL.wire, message: '' });

type Lone = ReturnType<typeof createLoneSession>;

function expectFlood(lone: Lone, message: RegExp): void {
  expect(lone.session.closed).toBe(true);
  expect(lone.closed).toHaveLength(1);
  expect(lone.closed[0]?.info).toBe(ErrorCodes.FLOOD);
  expect(lone.closed[0]?.message).toMatch(message);
  expect(lone.transport.closedWith?.code).toBe(CloseCodes.FLOOD);
  expect(Buffer.byteLength(lone.transport.closedWith!.reason)).toBeLessThanOrEqual(123);
}

describe('TunnelSession idle-frame budget (defaults)', () => {
  it('closes with FLOOD (4011) on the 10 001st PING sent at once, after answering 10 000', () => {
    const lone = createLoneSession('server');
    for (let i = 0; i < 10_001; i++) lone.session.receive(ping(i));
    expectFlood(lone, /^flood: the peer sent more frames that do no work than allowed \(10000 at once, 1000\/s\): 10001 PING$/);
    expect(lone.transport.framesOfType(FrameType.PONG)).toHaveLength(10_000);
  });

  it('keeps a session that pings as a busy legitimate peer does (a probe every 10 ms plus heartbeats) open for 10 minutes', () => {
    const lone = createLoneSession('agent');
    for (let t = 0; t < 600_000; t += 10) {
      lone.session.receive(ping(t));
      lone.clock.advance(10);
    }
    expect(lone.session.closed).toBe(false);
  });

  it('keeps a session open through 3 000 late frames of 1 024 streams reset at once (a caller process killed)', () => {
    const lone = createLoneSession('server', { limits: { peerMaxStreams: 1024 } });
    const streams = Array.from({ length: 1024 }, () => lone.session.openStream('POST', '/', [], false));
    for (const s of streams) s.reset(ErrorCodes.CANCEL);
    // The agent had answered all of them: head, a last DATA and END were in flight for most.
    for (const s of streams) {
      lone.session.receive(f({ type: FrameType.RESPONSE, streamId: s.id, status: 200, headers: [], endStream: false }));
      lone.session.receive(f({ type: FrameType.DATA, streamId: s.id, data: new Uint8Array(10) }));
      lone.session.receive(f({ type: FrameType.END, streamId: s.id }));
    }
    expect(lone.session.closed).toBe(false);
  });

  it('refills at 1 000 per second: a flood at that rate never closes the session', () => {
    const lone = createLoneSession('server');
    for (let i = 0; i < 50_000; i++) {
      lone.session.receive(f({ type: FrameType.PONG, id: 999_999 }));
      lone.clock.advance(1);
    }
    expect(lone.session.closed).toBe(false);
  });
});

const TIGHT: Partial<FloodLimits> = { idleFrameBurst: 5, idleFramesPerSecond: 1 };

/** A lone session with tight limits and, per role, a live stream 1 the peer can send on. */
function tight(role: 'server' | 'agent'): Lone & { sid: number } {
  const lone = createLoneSession(role, { options: { flood: TIGHT } });
  if (role === 'server') {
    const s = lone.session.openStream('POST', '/', [], false);
    lone.session.receive(f({ type: FrameType.RESPONSE, streamId: s.id, status: 200, headers: [], endStream: false }));
    return { ...lone, sid: s.id };
  }
  lone.session.receive(request(1, false));
  return { ...lone, sid: 1 };
}

describe('TunnelSession idle-frame budget: what counts', () => {
  it.each<[string, 'server' | 'agent', (l: Lone & { sid: number }, i: number) => void, RegExp]>([
    ['PING', 'server', (l, i) => l.session.receive(ping(i)), /: 6 PING$/],
    ['a PONG that answers no PING', 'agent', (l) => l.session.receive(f({ type: FrameType.PONG, id: 12345 })), /: 6 PONG that answers no PING$/],
    ['empty DATA on an open stream', 'agent', (l) => l.session.receive(f({ type: FrameType.DATA, streamId: l.sid, data: new Uint8Array(0) })), /: 6 empty DATA$/],
    [
      'WINDOW_UPDATE for a closed stream',
      'server',
      (l, i) => {
        if (i === 0) l.session.receive(f({ type: FrameType.END, streamId: l.sid }));
        if (i === 0) l.session.streams.get(l.sid)?.endData();
        l.session.receive(f({ type: FrameType.WINDOW_UPDATE, streamId: l.sid, increment: 1 }));
      },
      /: 6 WINDOW_UPDATE for a closed stream$/,
    ],
    [
      'RESET for a closed stream',
      'agent',
      (l) => l.session.receive(reset(l.sid)),
      // The first closes the open stream (the sender's own request, before any answer: counted too).
      /: 5 RESET for a closed stream, 1 REQUEST reset by its sender before the answer$/,
    ],
    [
      'DATA, END and RESPONSE for a stream this side reset',
      'server',
      (l, i) => {
        if (i === 0) l.session.streams.get(l.sid)!.reset(ErrorCodes.CANCEL);
        const late: Frame[] = [
          { type: FrameType.DATA, streamId: l.sid, data: new Uint8Array(100) },
          { type: FrameType.END, streamId: l.sid },
          { type: FrameType.RESPONSE, streamId: l.sid, status: 200, headers: [], endStream: false },
        ];
        l.session.receive(f(late[i % 3]!));
      },
      /: 6 frame for a stream this side reset$/,
    ],
    ['REQUESTs the server refuses', 'server', (l, i) => l.session.receive(request(2 * i + 2)), /: 6 REQUEST refused at once$/],
    [
      'REQUESTs reset by their sender before the answer (Rapid Reset)',
      'agent',
      (l, i) => {
        l.session.receive(request(2 * i + 3));
        l.session.receive(reset(2 * i + 3));
      },
      /: 6 REQUEST reset by its sender before the answer$/,
    ],
    [
      'repeated GOAWAY',
      'agent',
      (l) => l.session.receive(f({ type: FrameType.GOAWAY, lastStreamId: 0, code: ErrorCodes.GOING_AWAY.wire, message: 'x' })),
      /: 6 repeated GOAWAY$/,
    ],
  ])('%s: the 6th over a budget of 5 closes the session, naming what the peer did', (_label, role, send, message) => {
    const l = tight(role);
    for (let i = 0; i < 7 && !l.session.closed; i++) send(l, i);
    expectFlood(l, message);
  });

  it('does not count frames that do work: DATA with bytes, credit for an open stream, the PONG it waits for, the first GOAWAY, an answered request reset late', () => {
    const l = tight('agent');
    for (let i = 0; i < 20; i++) l.session.receive(f({ type: FrameType.DATA, streamId: 1, data: new Uint8Array(10) }));
    for (let i = 0; i < 20; i++) l.session.receive(f({ type: FrameType.WINDOW_UPDATE, streamId: 1, increment: 1 }));
    l.session.start();
    l.session.receive(f({ type: FrameType.PONG, id: l.transport.framesOfType(FrameType.PING).at(-1)!.id }));
    for (let i = 0; i < 20; i++) {
      const id = 2 * i + 3;
      l.session.receive(request(id));
      l.incoming.at(-1)!.respond(200, [], false);
      l.session.receive(reset(id));
    }
    l.session.receive(f({ type: FrameType.GOAWAY, lastStreamId: 0, code: ErrorCodes.GOING_AWAY.wire, message: 'x' }));
    expect(l.session.closed).toBe(false);
    l.session.close();
  });
});

describe('TunnelSession answers to a peer that does not read', () => {
  it('closes with FLOOD once more than maxQueuedAnswers PONGs were queued while the socket stayed full', () => {
    const lone = createLoneSession('server', { options: { flood: { maxQueuedAnswers: 50 } } });
    lone.transport.bufferedAmount = 8 * MiB;
    for (let i = 0; i < 51; i++) {
      lone.session.receive(ping(i));
      // Slow enough for the idle-frame budget: only the backlog is at stake.
      lone.clock.advance(5);
    }
    expectFlood(lone, /^flood: the peer does not read: 51 answers \(PONG, RESET\) queued while 8388608 bytes wait unsent \(limit 50\)$/);
  });

  it('starts counting over each time the socket drains', async () => {
    const lone = createLoneSession('server', { options: { flood: { maxQueuedAnswers: 50 } } });
    for (let round = 0; round < 5; round++) {
      lone.transport.bufferedAmount = 8 * MiB;
      for (let i = 0; i < 40; i++) lone.session.receive(ping(i));
      lone.transport.drain();
      await settle(2);
      lone.clock.advance(1_000);
    }
    expect(lone.session.closed).toBe(false);
    lone.session.close();
  });

  it('also counts RESETs refusing REQUESTs', () => {
    const lone = createLoneSession('server', { options: { flood: { maxQueuedAnswers: 10 } } });
    lone.transport.bufferedAmount = 8 * MiB;
    for (let i = 1; i <= 11; i++) lone.session.receive(request(2 * i));
    expectFlood(lone, /^flood: the peer does not read: 11 answers/);
  });

  it('uses the defaults: 10 000 answers', () => {
    expect(DEFAULT_FLOOD_LIMITS.maxQueuedAnswers).toBe(10_000);
  });
});

describe('TunnelSession never throws into its caller', () => {
  it('closes with INTERNAL (1011) when a stream handler throws, and stays usable for nothing else', () => {
    const lone = createLoneSession('agent', {
      options: {
        onStream: () => {
          throw new TypeError('handler bug');
        },
      },
    });
    expect(() => lone.session.receive(request(1))).not.toThrow();
    expect(lone.session.closed).toBe(true);
    expect(lone.closed[0]?.info).toBe(ErrorCodes.INTERNAL);
    expect(lone.closed[0]?.message).toBe('internal error on a received frame: handler bug');
    expect(lone.transport.closedWith?.code).toBe(CloseCodes.INTERNAL_ERROR);
  });
});

describe('TunnelSession send ring', () => {
  it('drops a stream the peer reset from the ring at once, even while the socket is full', () => {
    const lone = createLoneSession('agent');
    lone.transport.bufferedAmount = 8 * MiB;
    const ring = (lone.session as unknown as { ready: unknown[] }).ready;
    for (let i = 0; i < 200; i++) {
      const id = 2 * i + 1;
      lone.session.receive(request(id));
      lone.incoming.at(-1)!.respond(200, [], false);
      lone.incoming.at(-1)!.writeData(new Uint8Array(100));
      expect(ring).toHaveLength(1);
      lone.session.receive(reset(id));
      expect(ring).toHaveLength(0);
    }
    expect(lone.session.closed).toBe(false);
  });
});
