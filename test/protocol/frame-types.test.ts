import { describe, expect, it } from 'vitest';
import { FrameType } from '../../protocol/frame-types.js';

describe('FrameType', () => {
  it('pins every frame type id to its wire value', () => {
    // The wire format is data: changing any of these numbers breaks every
    // deployed agent. Add new types; never renumber.
    expect({ ...FrameType }).toStrictEqual({
      HELLO: 0x01,
      WELCOME: 0x02,
      REQUEST: 0x10,
      RESPONSE: 0x11,
      DATA: 0x12,
      END: 0x13,
      RESET: 0x14,
      WINDOW_UPDATE: 0x15,
      PING: 0x20,
      PONG: 0x21,
      GOAWAY: 0x22,
    });
  });

  it('gives every frame type a distinct id', () => {
    const ids = Object.values(FrameType);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('keeps ids in their ranges: handshake 0x01–0x0f, stream 0x10–0x1f, control 0x20–0x2f', () => {
    for (const id of [FrameType.HELLO, FrameType.WELCOME]) expect(id >> 4).toBe(0);
    for (const id of [
      FrameType.REQUEST,
      FrameType.RESPONSE,
      FrameType.DATA,
      FrameType.END,
      FrameType.RESET,
      FrameType.WINDOW_UPDATE,
    ]) {
      expect(id >> 4).toBe(1);
    }
    for (const id of [FrameType.PING, FrameType.PONG, FrameType.GOAWAY]) expect(id >> 4).toBe(2);
  });

  it('is frozen', () => {
    expect(Object.isFrozen(FrameType)).toBe(true);
  });
});
