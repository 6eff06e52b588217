import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeFrame } from '../../protocol/codec.js';
import { ErrorCodes } from '../../protocol/error-codes.js';
import { FrameType, type Frame } from '../../protocol/frame-types.js';
import { fuzzParams, fuzzTimeoutMs } from './fuzz-config.js';
import { actionArb, garbageArb, runSequence, SessionHarness, TIGHT_FLOOD, type Role } from './session-harness.js';

/**
 * TunnelSession.receive fed random sequences (valid frames in invalid
 * orders, for random and for live stream ids, garbage, local stream
 * operations, time, backpressure) on both roles: it keeps working or
 * closes itself for the peer's fault; it never throws into the caller,
 * never leaves a timer running after close, never keeps unbounded state.
 */

const roleArb = fc.constantFrom<Role>('server', 'agent');
const floodArb = fc.constantFrom(undefined, TIGHT_FLOOD);

describe('TunnelSession.receive fuzz', () => {
  it('random sequences on both roles keep the session contract', async () => {
    await fc.assert(
      fc.asyncProperty(
        roleArb,
        floodArb,
        fc.array(actionArb, { minLength: 5, maxLength: 80, size: 'max' }),
        fc.option(garbageArb),
        async (role, flood, actions, garbage) => {
          await runSequence(role, garbage ? [...actions, garbage] : actions, flood);
        },
      ),
      fuzzParams(600),
    );
  }, fuzzTimeoutMs);

  it('long sequences go deep and stay bounded', async () => {
    await fc.assert(
      fc.asyncProperty(roleArb, fc.array(actionArb, { minLength: 100, maxLength: 400 }), async (role, actions) => {
        await runSequence(role, actions);
      }),
      fuzzParams(40),
    );
  }, fuzzTimeoutMs);
});

/** Frames that do no work, each valid on its own; `id` makes every REQUEST id fresh. */
type Useless = 'ping' | 'pong' | 'rapid-reset' | 'window-update-closed' | 'reset-closed' | 'empty-data' | 'goaway';

/** `closedId`: a stream this side reset, whose late frames are valid (and dropped). */
function uselessFrames(kind: Useless, role: Role, n: number, closedId: number): Frame[] {
  // Fresh ids the peer may open: even towards a server, odd towards an agent (1 is taken).
  const peerId = role === 'server' ? 2 * n + 2 : 2 * n + 3;
  switch (kind) {
    case 'ping':
      return [{ type: FrameType.PING, id: n }];
    case 'pong':
      return [{ type: FrameType.PONG, id: 1_000_000 + n }];
    case 'rapid-reset':
      return [
        { type: FrameType.REQUEST, streamId: peerId, method: 'GET', path: '/', headers: [], endStream: true },
        { type: FrameType.RESET, streamId: peerId, code: ErrorCodes.CANCEL.wire, message: '' },
      ];
    case 'window-update-closed':
      return [{ type: FrameType.WINDOW_UPDATE, streamId: closedId, increment: 1 }];
    case 'reset-closed':
      return [{ type: FrameType.RESET, streamId: closedId, code: ErrorCodes.CANCEL.wire, message: '' }];
    case 'empty-data':
      return [{ type: FrameType.DATA, streamId: closedId, data: new Uint8Array(0) }];
    case 'goaway':
      return [{ type: FrameType.GOAWAY, lastStreamId: 0, code: ErrorCodes.GOING_AWAY.wire, message: 'again' }];
  }
}

describe('TunnelSession under floods of frames that do no work', () => {
  it('keeps its state bounded when the flood stays under the budget (one frame per ms), and cuts it when it does not', async () => {
    const kinds: Useless[] = ['ping', 'pong', 'rapid-reset', 'window-update-closed', 'reset-closed', 'empty-data', 'goaway'];
    await fc.assert(
      fc.asyncProperty(roleArb, fc.array(fc.constantFrom(...kinds), { minLength: 1, maxLength: 6 }), fc.boolean(), async (role, mix, fast) => {
        const h = new SessionHarness(role);
        const { session, clock, transport } = h.lone;
        // Stream 1 existed and this side reset it: late frames for it are valid, and dropped.
        if (role === 'server') {
          session.openStream('GET', '/', [], true).reset(ErrorCodes.CANCEL);
        } else {
          h.receive(encodeFrame({ type: FrameType.REQUEST, streamId: 1, method: 'GET', path: '/', headers: [], endStream: true }));
          h.lone.incoming[0]!.reset(ErrorCodes.CANCEL);
        }
        // Fast: enough for 10 000 idle frames even when only one frame in two is idle.
        const total = fast ? 25_000 : 12_000;
        let sent = 0;
        // Remembered resets are bounded (1 024): keep aiming at a recent one.
        const resets = (session as unknown as { recentResets: Set<number> }).recentResets;
        let closedId = 1;
        for (let n = 0; sent < total && !session.closed; n++) {
          if (n % 64 === 0) closedId = [...resets].at(-1)!;
          for (const frame of uselessFrames(mix[n % mix.length]!, role, n, closedId)) {
            h.receive(encodeFrame(frame));
            sent++;
            // 1 000 per second is the sustained budget: one per 1.2 ms stays under it.
            clock.advance(fast ? 0.01 : 1.2);
          }
          transport.sent.length = 0;
          if (n % 500 === 0) h.check();
        }
        h.check();
        if (fast) {
          expect(session.closed).toBe(true);
          expect(h.lone.closed[0]?.info).toBe(ErrorCodes.FLOOD);
          expect(h.lone.transport.closedWith?.code).toBe(4011);
        } else {
          // Frames that do no work but come at a sustainable rate are not an attack.
          expect(session.closed).toBe(false);
          expect(session.activeStreams).toBe(0);
        }
        await h.finish();
      }),
      fuzzParams(14),
    );
  }, fuzzTimeoutMs);
});
