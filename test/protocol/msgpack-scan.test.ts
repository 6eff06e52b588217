import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { checkPlainMsgpack, MAX_NESTING } from '../../protocol/msgpack-scan.js';
import { ProtocolError } from '../../protocol/tunnel-error.js';

const packr = new Packr({ useRecords: false, variableMapSize: true });
const hex = (h: string): Uint8Array => Buffer.from(h.replace(/\s+/g, ''), 'hex');

function refusal(bytes: Uint8Array, maxNesting?: number): string {
  try {
    checkPlainMsgpack(bytes, maxNesting);
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError);
    return (err as ProtocolError).message.replace(/^frame is not plain msgpack: /, '');
  }
  return 'accepted';
}

describe('checkPlainMsgpack', () => {
  it.each([
    ['positive and negative fixints', [0, 127, -1, -32]],
    ['every int width', [0xff, 0xffff, 0xffffffff, 2 ** 40, -0x80, -0x8000, -0x80000000, -(2 ** 40)]],
    ['floats', [1.5, 2 ** 60 + 0.5]],
    ['nil and booleans', [null, true, false]],
    ['strings of every length class', ['', 'x'.repeat(31), 'x'.repeat(32), 'x'.repeat(256), 'x'.repeat(70_000)]],
    ['binaries of every length class', [Buffer.alloc(0), Buffer.alloc(255), Buffer.alloc(256), Buffer.alloc(70_000)]],
    ['arrays and maps of every size class', [new Array(15).fill(0), new Array(16).fill(0), new Array(70_000).fill(0), Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i]))]],
    ['nesting up to the limit', [[[[[[[1]]]]]]]],
  ])('accepts %s', (_label, value) => {
    expect(refusal(packr.pack(value))).toBe('accepted');
  });

  it.each([
    ['a truncated value', '92 20', /^a container claims 2 values with 1 bytes left$/],
    ['a missing value inside a container', '93 20 01', /^a container claims 3 values with 2 bytes left$/],
    ['a string shorter than its length', 'a5 61 62', /^a length runs past the end of the message$/],
    ['a uint32 cut short', 'ce 00 01', /^a length runs past the end of the message$/],
    ['a length field cut short', 'c6 00 01', /^it ends in the middle of a length$/],
    ['bin32 of 4 GiB', 'c6 ff ff ff ff 00', /^a length runs past the end of the message$/],
    ['array32 of 4 billion values', 'dd ff ff ff ff 00', /^a container claims 4294967295 values with 1 bytes left$/],
    ['map32 of 4 billion pairs', 'df ff ff ff ff 00', /^a container claims 8589934590 values with 1 bytes left$/],
    ['the reserved byte', '92 20 c1', /^it holds the reserved byte 0xc1$/],
    ['a timestamp extension', '92 20 d6 ff 00 00 00 01', /^it holds a msgpack extension \(type byte 0xd6\)$/],
    ['an ext8', '92 20 c7 01 05 00', /^it holds a msgpack extension \(type byte 0xc7\)$/],
    ["msgpackr's record definition", '92 01 d4 72 40', /^it holds a msgpack extension \(type byte 0xd4\)$/],
    ['bytes after the value', '92 20 05 00', /^1 bytes follow the frame$/],
    ['two values', '91 01 91 01', /^2 bytes follow the frame$/],
  ])('refuses %s', (_label, bytes, message) => {
    expect(refusal(hex(bytes))).toMatch(message);
  });

  it(`refuses nesting deeper than ${MAX_NESTING} levels by default, and the limit given`, () => {
    const nested = (depth: number): Uint8Array => Buffer.concat([Buffer.alloc(depth - 1, 0x91), Buffer.from([0x91, 0x01])]);
    expect(refusal(nested(MAX_NESTING))).toBe('accepted');
    expect(refusal(nested(MAX_NESTING + 1))).toBe(`it nests deeper than ${MAX_NESTING} levels`);
    expect(refusal(nested(3), 2)).toBe('it nests deeper than 2 levels');
    // Empty containers open no level.
    expect(refusal(Buffer.concat([Buffer.alloc(MAX_NESTING, 0x91), Buffer.from([0x90])]))).toBe('accepted');
  });

  it('refuses a whole megabyte of nesting without recursing', () => {
    expect(refusal(Buffer.alloc(1024 * 1024, 0x91))).toBe(`it nests deeper than ${MAX_NESTING} levels`);
  });

  it('refuses the empty message', () => {
    expect(refusal(new Uint8Array(0))).toBe('it ends in the middle of a value');
  });

  it('reads a Uint8Array view at an offset', () => {
    const backing = Buffer.from('ff ff 92 20 05 ff'.replace(/ /g, ''), 'hex');
    expect(refusal(new Uint8Array(backing.buffer, backing.byteOffset + 2, 3))).toBe('accepted');
  });
});
