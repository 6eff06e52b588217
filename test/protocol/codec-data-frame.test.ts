import { unpack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { decodeFrame, encodeDataFrame, encodeFrame, MAX_STREAM_ID } from '../../protocol/codec.js';
import { FrameType } from '../../protocol/frame-types.js';

function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

describe('encodeDataFrame (hand-written DATA encoder)', () => {
  const sizes = [1, 2, 255, 256, 65_535, 65_536, 65_537, 300_000];
  it.each(sizes)('encodes %i payload bytes as plain msgpack that decodeFrame and msgpackr read back', (n) => {
    const a = bytes(Math.floor(n / 3), 1);
    const b = bytes(n - a.byteLength - Math.floor(n / 3), 2);
    const c = bytes(Math.floor(n / 3), 3);
    const parts = [a, b, c].filter((p) => p.byteLength > 0);
    const encoded = encodeDataFrame(7, parts, n);
    const frame = decodeFrame(encoded, 1 << 20);
    expect(frame.type).toBe(FrameType.DATA);
    if (frame.type !== FrameType.DATA) return;
    expect(frame.streamId).toBe(7);
    expect(Buffer.from(frame.data).equals(Buffer.concat(parts))).toBe(true);
    const viaMsgpackr = unpack(encoded as Buffer) as [number, number, Uint8Array];
    expect(viaMsgpackr[0]).toBe(FrameType.DATA);
    expect(Buffer.from(viaMsgpackr[2]).equals(Buffer.concat(parts))).toBe(true);
  });

  it('uses the smallest bin header (bin8 / bin16 / bin32) for the payload length', () => {
    expect(encodeDataFrame(1, [bytes(255, 0)], 255)[7]).toBe(0xc4);
    expect(encodeDataFrame(1, [bytes(256, 0)], 256)[7]).toBe(0xc5);
    expect(encodeDataFrame(1, [bytes(65_536, 0)], 65_536)[7]).toBe(0xc6);
  });

  it('carries the largest stream id', () => {
    const frame = decodeFrame(encodeDataFrame(MAX_STREAM_ID, [bytes(3, 0)], 3), 1024);
    expect(frame.type === FrameType.DATA && frame.streamId).toBe(MAX_STREAM_ID);
  });

  it('decodes to the same frame as the generic encoder', () => {
    const data = bytes(1000, 9);
    expect(decodeFrame(encodeDataFrame(5, [data], 1000), 4096)).toEqual(
      decodeFrame(encodeFrame({ type: FrameType.DATA, streamId: 5, data }), 4096),
    );
  });

  it('refuses parts that do not add up to the declared total', () => {
    expect(() => encodeDataFrame(1, [bytes(10, 0)], 11)).toThrow(RangeError);
  });
});
