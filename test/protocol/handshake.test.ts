import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../protocol/error-codes.js';
import type { HandshakeInfo } from '../../protocol/frame-types.js';
import { Defaults, negotiate, PROTOCOL_VERSION } from '../../protocol/handshake.js';
import { ProtocolError } from '../../protocol/tunnel-error.js';

const local: HandshakeInfo = {
  v: PROTOCOL_VERSION,
  software: 'postern-server/0.1.0',
  maxStreams: 1024,
  initialWindow: 256 * 1024,
  maxFrameSize: 1024 * 1024,
  heartbeatMs: 10_000,
};

const peer: HandshakeInfo = {
  v: PROTOCOL_VERSION,
  software: 'postern-agent/0.1.0',
  maxStreams: 64,
  initialWindow: 128 * 1024,
  maxFrameSize: 512 * 1024,
  heartbeatMs: 15_000,
};

describe('negotiate', () => {
  it('takes the peer’s stream limit and window for what we send', () => {
    const limits = negotiate(local, peer);
    expect(limits.peerMaxStreams).toBe(64);
    expect(limits.peerInitialWindow).toBe(128 * 1024);
  });

  it('sends frames no larger than the smaller of the two maxFrameSizes', () => {
    expect(negotiate(local, peer).sendMaxFrameSize).toBe(512 * 1024);
    expect(negotiate(local, { ...peer, maxFrameSize: 4 * 1024 * 1024 }).sendMaxFrameSize).toBe(1024 * 1024);
  });

  it('uses the shorter heartbeat of the two', () => {
    expect(negotiate(local, peer).heartbeatMs).toBe(10_000);
    expect(negotiate(local, { ...peer, heartbeatMs: 2_000 }).heartbeatMs).toBe(2_000);
  });

  it('returns exactly the four negotiated limits', () => {
    expect(negotiate(local, peer)).toStrictEqual({
      peerMaxStreams: 64,
      peerInitialWindow: 128 * 1024,
      sendMaxFrameSize: 512 * 1024,
      heartbeatMs: 10_000,
    });
  });

  it('refuses a different protocol version with HANDSHAKE and says what to do', () => {
    let thrown: unknown;
    try {
      negotiate(local, { ...peer, v: PROTOCOL_VERSION + 1 });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(ProtocolError);
    const err = thrown as ProtocolError;
    expect(err.info).toBe(ErrorCodes.HANDSHAKE);
    expect(err.message).toContain(`peer speaks v${PROTOCOL_VERSION + 1} (postern-agent/0.1.0)`);
    expect(err.message).toContain(`this side speaks v${PROTOCOL_VERSION}`);
    expect(err.message).toContain('run the same Postern release on the server and the agent');
  });

  it('refuses an older peer version too', () => {
    expect(() => negotiate({ ...local, v: 2 }, { ...peer, v: 1 })).toThrow(/peer speaks v1 .* this side speaks v2/);
  });
});

describe('protocol constants', () => {
  it('speaks protocol version 1', () => {
    expect(PROTOCOL_VERSION).toBe(1);
  });

  it('pins the default limits', () => {
    expect({ ...Defaults }).toStrictEqual({
      maxStreams: 1024,
      initialWindow: 256 * 1024,
      maxWindow: 16 * 1024 * 1024,
      maxFrameSize: 1024 * 1024,
      maxDataFrame: 64 * 1024,
      heartbeatMs: 10_000,
    });
  });

  it('keeps a full DATA frame under the default maxFrameSize', () => {
    expect(Defaults.maxDataFrame + 64).toBeLessThanOrEqual(Defaults.maxFrameSize);
  });
});
