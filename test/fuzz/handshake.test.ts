import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame, MAX_WINDOW } from '../../protocol/codec.js';
import { ErrorCodes } from '../../protocol/error-codes.js';
import { FrameType, type HandshakeInfo } from '../../protocol/frame-types.js';
import { negotiate, type NegotiatedLimits } from '../../protocol/handshake.js';
import { TunnelSession } from '../../protocol/tunnel-session.js';
import { ProtocolError, TunnelError } from '../../protocol/tunnel-error.js';
import { FakeClock, MemoryTransport, settle } from '../protocol/session-pair.js';
import { handshakeArb, hostileValueArb, plain } from './arbitraries.js';
import { fuzzParams, fuzzTimeoutMs } from './fuzz-config.js';

/**
 * negotiate() on arbitrary HELLO / WELCOME values, as they come off the
 * wire: whatever a peer announces either fails the handshake with a
 * ProtocolError, or gives limits inside the protocol's ranges that both
 * sides agree on and that a session runs with.
 */

const KEYS = ['v', 'software', 'maxStreams', 'initialWindow', 'maxFrameSize', 'heartbeatMs', 'connectionId'] as const;

/** A handshake map with any subset of the real keys, each valid or hostile, plus stray keys. */
const wireMapArb = fc
  .record({
    base: handshakeArb,
    hostile: fc.dictionary(fc.constantFrom(...KEYS), hostileValueArb, { maxKeys: 3 }),
    missing: fc.subarray([...KEYS], { maxLength: 2 }),
    extra: fc.dictionary(fc.string({ maxLength: 10 }), hostileValueArb, { maxKeys: 3 }),
  })
  .map(({ base, hostile, missing, extra }) => {
    const m: Record<string, unknown> = { ...extra, ...base, connectionId: 'c0nn', ...hostile };
    for (const k of missing) delete m[k];
    return m;
  });

function checkLimits(local: HandshakeInfo, peer: HandshakeInfo, limits: NegotiatedLimits): void {
  expect(limits.peerMaxStreams).toBe(peer.maxStreams);
  expect(limits.peerMaxStreams).toBeGreaterThanOrEqual(1);
  expect(limits.peerInitialWindow).toBeGreaterThanOrEqual(1024);
  expect(limits.peerInitialWindow).toBeLessThanOrEqual(MAX_WINDOW);
  expect(limits.sendMaxFrameSize).toBe(Math.min(local.maxFrameSize, peer.maxFrameSize));
  expect(limits.sendMaxFrameSize).toBeGreaterThanOrEqual(16 * 1024);
  expect(limits.heartbeatMs).toBe(Math.min(local.heartbeatMs, peer.heartbeatMs));
  expect(limits.heartbeatMs).toBeGreaterThanOrEqual(100);
}

/** A session on the negotiated limits opens a stream, sends a body within the frame size, pings, and closes clean. */
async function sessionRuns(role: 'server' | 'agent', local: HandshakeInfo, limits: NegotiatedLimits): Promise<void> {
  const clock = new FakeClock();
  const transport = new MemoryTransport();
  const session = new TunnelSession(transport, {
    role,
    limits,
    localInitialWindow: local.initialWindow,
    localMaxStreams: local.maxStreams,
    localMaxFrameSize: local.maxFrameSize,
    clock,
  });
  session.start();
  const stream = session.openStream('POST', '/', [], false);
  stream.writeData(new Uint8Array(100_000));
  stream.endData();
  for (const frame of transport.framesOfType(FrameType.DATA)) {
    expect(encodeFrame(frame).byteLength).toBeLessThanOrEqual(limits.sendMaxFrameSize);
  }
  expect(transport.framesOfType(FrameType.PING)).toHaveLength(1);
  session.close();
  await settle(1);
  expect(clock.activeTimers).toBe(0);
}

describe('handshake fuzz', () => {
  it('HELLO and WELCOME with any values, keys missing or extra: a refusal or limits in range that a session runs with', async () => {
    const outcomes = { refused: 0, mismatch: 0, ran: 0 };
    await fc.assert(
      fc.asyncProperty(handshakeArb, wireMapArb, fc.boolean(), async (local, map, isWelcome) => {
        const bytes = plain.pack([isWelcome ? FrameType.WELCOME : FrameType.HELLO, map]);
        let peer: HandshakeInfo;
        try {
          const frame = decodeFrame(bytes, 64 * 1024 * 1024);
          expect(frame.type).toBe(isWelcome ? FrameType.WELCOME : FrameType.HELLO);
          peer = frame as HandshakeInfo;
        } catch (err) {
          expect(err).toBeInstanceOf(ProtocolError);
          outcomes.refused++;
          return;
        }
        let limits: NegotiatedLimits;
        try {
          limits = negotiate(local, peer);
        } catch (err) {
          expect(err).toBeInstanceOf(TunnelError);
          expect((err as TunnelError).info).toBe(ErrorCodes.HANDSHAKE);
          expect(peer.v).not.toBe(local.v);
          expect((err as Error).message).toContain(`v${peer.v}`);
          outcomes.mismatch++;
          return;
        }
        expect(peer.v).toBe(local.v);
        checkLimits(local, peer, limits);
        await sessionRuns(isWelcome ? 'agent' : 'server', local, limits);
        outcomes.ran++;
      }),
      fuzzParams(800),
    );
    // Every path was taken, not only the refusals.
    expect(Math.min(outcomes.refused, outcomes.mismatch, outcomes.ran), JSON.stringify(outcomes)).toBeGreaterThan(20);
  }, fuzzTimeoutMs);

  it('both sides derive the same frame size and heartbeat from each other’s announcements', () => {
    fc.assert(
      fc.property(handshakeArb, handshakeArb, (a, b) => {
        const peer = { ...b, v: a.v };
        const ab = negotiate(a, peer);
        const ba = negotiate(peer, a);
        expect(ab.sendMaxFrameSize).toBe(ba.sendMaxFrameSize);
        expect(ab.heartbeatMs).toBe(ba.heartbeatMs);
        expect(ab.peerMaxStreams).toBe(peer.maxStreams);
        expect(ba.peerMaxStreams).toBe(a.maxStreams);
      }),
      fuzzParams(2000),
    );
  }, fuzzTimeoutMs);
});
