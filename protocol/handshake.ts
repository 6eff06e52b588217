import { ErrorCodes } from './error-codes.js';
import type { HandshakeInfo } from './frame-types.js';
import { ProtocolError } from './tunnel-error.js';

/** Wire protocol version. Bump only with a change both sides must know. */
export const PROTOCOL_VERSION = 1;

/**
 * Default limits. Why these numbers:
 * - initialWindow 256 KiB: enough for a small response in one round trip and
 *   bounded for idle streams; windows grow from measured RTT (see
 *   ReceiveWindow) up to maxWindow when a stream moves bulk data.
 * - maxWindow 16 MiB: at 50 ms RTT one stream can move 16 MiB / 0.05 s ≈
 *   320 MB/s, above the spec's 100 MB/s target, while one stream never pins
 *   more than 16 MiB of a process's memory.
 * - maxFrameSize 1 MiB: room for large header sets; DATA frames are cut at
 *   maxDataFrame (64 KiB) so a control frame never waits behind a large one.
 * - heartbeatMs 10 s: half-open connections are found within 20 s while the
 *   idle cost stays one tiny frame per 10 s per connection.
 */
export const Defaults = Object.freeze({
  maxStreams: 1024,
  initialWindow: 256 * 1024,
  maxWindow: 16 * 1024 * 1024,
  maxFrameSize: 1024 * 1024,
  maxDataFrame: 64 * 1024,
  heartbeatMs: 10_000,
});

/** Limits both sides run with after the handshake. */
export interface NegotiatedLimits {
  /** Streams the peer accepts at once (we must not open more). */
  peerMaxStreams: number;
  /** Window the peer grants each new stream for data we send. */
  peerInitialWindow: number;
  /** Largest frame we may send. */
  sendMaxFrameSize: number;
  /** Heartbeat interval both sides use: the shorter of the two. */
  heartbeatMs: number;
}

/**
 * Checks the peer's handshake against ours and derives the limits in force.
 * A different protocol version is refused with a message that says which side
 * to upgrade.
 */
export function negotiate(local: HandshakeInfo, peer: HandshakeInfo): NegotiatedLimits {
  if (peer.v !== local.v) {
    throw new ProtocolError(
      `protocol version mismatch: peer speaks v${peer.v} (${peer.software}), this side speaks v${local.v}; ` +
        'run the same Postern release on the server and the agent',
      ErrorCodes.HANDSHAKE,
    );
  }
  return {
    peerMaxStreams: peer.maxStreams,
    peerInitialWindow: peer.initialWindow,
    sendMaxFrameSize: Math.min(local.maxFrameSize, peer.maxFrameSize),
    heartbeatMs: Math.min(local.heartbeatMs, peer.heartbeatMs),
  };
}
