import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { encodeFrame, MAX_STREAM_ID, MAX_WINDOW } from '../../protocol/codec.js';
import { ErrorCodes } from '../../protocol/error-codes.js';
import { FrameType, type Frame, type HandshakeInfo } from '../../protocol/frame-types.js';
import { PROTOCOL_VERSION } from '../../protocol/handshake.js';

/**
 * fast-check generators for the fuzz tests: valid frames (with stream ids
 * from a small pool, so random sequences hit the same streams), byte-level
 * mutations of them, frames with a wrong value in one field, and
 * hand-built hostile msgpack (deep nesting, huge declared lengths, maps
 * with many keys, invalid UTF-8).
 */

const MiB = 1024 * 1024;

/** A plain msgpack encoder for values the codec would never produce. */
export const plain = new Packr({ useRecords: false, variableMapSize: true, mapsAsObjects: true });

/** Mostly 1–16 (streams collide and get reused), sometimes anywhere in the 31-bit range. */
export const streamIdArb = fc.oneof(
  { weight: 12, arbitrary: fc.integer({ min: 1, max: 16 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: MAX_STREAM_ID }) },
);

const tokenArb = fc.stringMatching(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,12}$/);
const headerValueArb = fc.stringMatching(/^[\t\x20-\x7e]{0,24}$/);
const pathArb = fc.stringMatching(/^\/[\x21-\x7e]{0,24}$/);
const headersArb = fc.array(fc.tuple(tokenArb, headerValueArb), { maxLength: 5 }).map((pairs) => pairs.flat());
const messageArb = fc.string({ maxLength: 40 });
const wireCodes = Object.values(ErrorCodes).map((c) => c.wire);
const codeArb = fc.oneof(fc.constantFrom(...wireCodes), fc.integer({ min: 0, max: 0xffff }));
const smallOrAny = (max: number, min = 0): fc.Arbitrary<number> =>
  fc.oneof({ weight: 4, arbitrary: fc.integer({ min, max: Math.min(max, min + 8) }) }, { weight: 1, arbitrary: fc.integer({ min, max }) });

export const handshakeArb: fc.Arbitrary<HandshakeInfo> = fc.record({
  v: fc.oneof({ weight: 4, arbitrary: fc.constant(PROTOCOL_VERSION) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 0xffff }) }),
  software: fc.string({ maxLength: 64 }),
  maxStreams: smallOrAny(1_000_000, 1),
  initialWindow: fc.integer({ min: 1024, max: MAX_WINDOW }),
  maxFrameSize: fc.integer({ min: 16 * 1024, max: 64 * MiB }),
  heartbeatMs: fc.integer({ min: 100, max: 3_600_000 }),
});

/** Any frame the codec accepts; ids from the small pool. */
export const frameArb: fc.Arbitrary<Frame> = fc.oneof(
  handshakeArb.map((h): Frame => ({ type: FrameType.HELLO, ...h })),
  fc.tuple(handshakeArb, fc.string({ minLength: 1, maxLength: 64 })).map(([h, connectionId]): Frame => ({ type: FrameType.WELCOME, ...h, connectionId })),
  fc
    .record({ streamId: streamIdArb, method: tokenArb, path: pathArb, headers: headersArb, endStream: fc.boolean() })
    .map((f): Frame => ({ type: FrameType.REQUEST, ...f })),
  fc
    .record({ streamId: streamIdArb, status: fc.integer({ min: 100, max: 599 }), headers: headersArb, endStream: fc.boolean() })
    .map((f): Frame => ({ type: FrameType.RESPONSE, ...f })),
  fc
    .record({ streamId: streamIdArb, data: fc.oneof(fc.constant(new Uint8Array(0)), fc.uint8Array({ maxLength: 64 })) })
    .map((f): Frame => ({ type: FrameType.DATA, ...f })),
  streamIdArb.map((streamId): Frame => ({ type: FrameType.END, streamId })),
  fc.record({ streamId: streamIdArb, code: codeArb, message: messageArb }).map((f): Frame => ({ type: FrameType.RESET, ...f })),
  fc
    .record({ streamId: streamIdArb, increment: fc.oneof(fc.integer({ min: 1, max: 70_000 }), fc.integer({ min: 1, max: MAX_WINDOW })) })
    .map((f): Frame => ({ type: FrameType.WINDOW_UPDATE, ...f })),
  smallOrAny(Number.MAX_SAFE_INTEGER).map((id): Frame => ({ type: FrameType.PING, id })),
  smallOrAny(Number.MAX_SAFE_INTEGER).map((id): Frame => ({ type: FrameType.PONG, id })),
  fc
    .record({ lastStreamId: smallOrAny(MAX_STREAM_ID), code: codeArb, message: messageArb })
    .map((f): Frame => ({ type: FrameType.GOAWAY, ...f })),
);

export const frameBytesArb: fc.Arbitrary<Uint8Array> = frameArb.map((f) => encodeFrame(f));

// ---- byte-level mutations -------------------------------------------------

/** Type bytes that change how the rest is read: containers, long lengths, extensions, reserved. */
const INTERESTING_BYTES = [0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc4, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcf, 0xd3, 0xd4, 0xd8, 0xd9, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff];

export type Mutation =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'set'; at: number; value: number }
  | { op: 'truncate'; at: number }
  | { op: 'append'; bytes: Uint8Array }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'delete'; at: number; count: number }
  | { op: 'huge-length'; at: number; width: 1 | 2 | 4 }
  | { op: 'repeat'; at: number; count: number; times: number };

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), value: fc.oneof(fc.constantFrom(...INTERESTING_BYTES), fc.integer({ min: 0, max: 255 })) }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('append' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ op: fc.constant('huge-length' as const), at: fc.nat(), width: fc.constantFrom(1 as const, 2 as const, 4 as const) }),
  fc.record({ op: fc.constant('repeat' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 8 }), times: fc.integer({ min: 2, max: 2000 }) }),
);

/** Applies one mutation; positions wrap around the input's length. */
export function mutate(input: Uint8Array, m: Mutation): Uint8Array {
  const b = Buffer.from(input);
  const at = b.length === 0 ? 0 : m.op === 'append' ? 0 : (m as { at: number }).at % b.length;
  switch (m.op) {
    case 'flip':
      if (b.length > 0) b[at] = b[at]! ^ (1 << m.bit);
      return b;
    case 'set':
      if (b.length > 0) b[at] = m.value;
      return b;
    case 'truncate':
      return b.subarray(0, at);
    case 'append':
      return Buffer.concat([b, m.bytes]);
    case 'insert':
      return Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
    case 'delete':
      return Buffer.concat([b.subarray(0, at), b.subarray(at + m.count)]);
    case 'huge-length': {
      const out = Buffer.from(b);
      for (let i = 0; i < m.width && at + i < out.length; i++) out[at + i] = 0xff;
      return out;
    }
    case 'repeat': {
      const slice = b.subarray(at, at + m.count);
      return Buffer.concat([b.subarray(0, at), ...Array.from({ length: m.times }, () => slice), b.subarray(at)]);
    }
  }
}

// ---- wrong values in fields -----------------------------------------------

/** Values of every msgpack type, including ones no field accepts. */
export const hostileValueArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer(),
  fc.integer({ min: -1, max: 1 }),
  fc.constantFrom(-1, 0, 2 ** 31, 2 ** 32, 2 ** 53, -(2 ** 53), 0x7fffffff, 0x80000000, 1.5, -0, Number.NaN, Infinity, -Infinity),
  fc.double(),
  fc.string({ maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.constantFrom('', '/', 'GET', '\r\n', '\0', 'a b', 'x'.repeat(2000)),
  fc.boolean(),
  fc.constant(null),
  fc.uint8Array({ maxLength: 8 }),
  fc.array(fc.oneof(fc.integer(), fc.string({ maxLength: 4 })), { maxLength: 5 }),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(fc.integer(), fc.string({ maxLength: 4 })), { maxKeys: 5 }),
);

export interface FieldSwap {
  frame: Frame;
  /** Which element of `[type, ...fields]` gets the hostile value (wraps). */
  field: number;
  value: unknown;
  /** For a map or array field: which key/element inside it gets the value instead (wraps); -1: the field itself. */
  inner: number;
  /** Also drop or add elements to the array (arity). */
  arity: -1 | 0 | 1;
}

export const fieldSwapArb: fc.Arbitrary<FieldSwap> = fc.record({
  frame: frameArb,
  field: fc.nat(),
  value: hostileValueArb,
  inner: fc.integer({ min: -1, max: 16 }),
  arity: fc.constantFrom(-1 as const, 0 as const, 0 as const, 1 as const),
});

/** Re-encodes a frame with one field (or one key/element inside a field) replaced. */
export function swapField(s: FieldSwap): Uint8Array {
  const arr = plain.unpack(Buffer.from(encodeFrame(s.frame))) as unknown[];
  const i = s.field % arr.length;
  const target = arr[i];
  if (s.inner >= 0 && Array.isArray(target) && target.length > 0) {
    target[s.inner % target.length] = s.value;
  } else if (s.inner >= 0 && target !== null && typeof target === 'object' && !(target instanceof Uint8Array)) {
    const keys = Object.keys(target);
    (target as Record<string, unknown>)[keys[s.inner % keys.length]!] = s.value;
  } else {
    arr[i] = s.value;
  }
  if (s.arity === -1) arr.pop();
  if (s.arity === 1) arr.push(s.value);
  return plain.pack(arr);
}

// ---- hand-built hostile msgpack --------------------------------------------

/** msgpack str header + raw bytes (which need not be UTF-8). */
export function rawStr(bytes: Uint8Array): Buffer {
  const n = bytes.length;
  const head =
    n < 32 ? Buffer.from([0xa0 | n]) : n < 0x100 ? Buffer.from([0xd9, n]) : n < 0x10000 ? Buffer.from([0xda, n >> 8, n & 0xff]) : Buffer.from([0xdb, n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([head, bytes]);
}

function arrayHeader(n: number): Buffer {
  if (n < 16) return Buffer.from([0x90 | n]);
  if (n < 0x10000) return Buffer.from([0xdc, n >> 8, n & 0xff]);
  return Buffer.from([0xdd, n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
}

function mapHeader(n: number): Buffer {
  if (n < 16) return Buffer.from([0x80 | n]);
  if (n < 0x10000) return Buffer.from([0xde, n >> 8, n & 0xff]);
  return Buffer.from([0xdf, n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
}

/** `depth` nested one-element arrays (or maps) around a PING: a parser that recurses overflows its stack. */
export function deepNesting(depth: number, kind: 'array' | 'map'): Buffer {
  const open = kind === 'array' ? Buffer.from([0x91]) : Buffer.from([0x81, 0xa1, 0x6b]);
  return Buffer.concat([Buffer.alloc(depth * open.length).fill(open), Buffer.from([0x92, 0x20, 0x01])]);
}

/** HELLO whose map has `keys` entries besides the real fields (unknown keys are ignored by design). */
export function helloWithManyKeys(keys: number, duplicate: boolean): Buffer {
  const parts: Buffer[] = [Buffer.from([0x92, FrameType.HELLO]), mapHeader(keys + 6)];
  for (const [k, v] of Object.entries({ v: 1, software: 'x', maxStreams: 4, initialWindow: 65536, maxFrameSize: 65536, heartbeatMs: 1000 })) {
    parts.push(plain.pack(k), plain.pack(v));
  }
  for (let i = 0; i < keys; i++) parts.push(plain.pack(duplicate ? 'k' : `k${i}`), Buffer.from([0xc0]));
  return Buffer.concat(parts);
}

/** REQUEST with `headers` pairs of one-character names and values. */
export function requestWithManyHeaders(pairs: number): Buffer {
  return Buffer.concat([
    Buffer.from([0x96, FrameType.REQUEST, 0x01]),
    plain.pack('GET'),
    plain.pack('/'),
    arrayHeader(2 * pairs),
    Buffer.alloc(4 * pairs).fill(Buffer.from([0xa1, 0x61, 0xa1, 0x62])),
    Buffer.from([0xc3]),
  ]);
}

/** REQUEST whose method, path and one header are raw bytes (often not UTF-8). */
export const invalidUtf8RequestArb: fc.Arbitrary<Uint8Array> = fc
  .record({
    method: fc.uint8Array({ minLength: 1, maxLength: 8 }),
    path: fc.uint8Array({ maxLength: 16 }),
    name: fc.uint8Array({ minLength: 1, maxLength: 8 }),
    value: fc.uint8Array({ maxLength: 16 }),
    which: fc.integer({ min: 0, max: 3 }),
  })
  .map(({ method, path, name, value, which }) => {
    const fields: Uint8Array[] = [Buffer.from('GET'), Buffer.concat([Buffer.from('/'), path]), Buffer.from('accept'), Buffer.from('*/*')];
    fields[which] = [method, Buffer.concat([Buffer.from('/'), path]), name, value][which]!;
    return Buffer.concat([
      Buffer.from([0x96, FrameType.REQUEST, 0x01]),
      rawStr(fields[0]!),
      rawStr(fields[1]!),
      arrayHeader(2),
      rawStr(fields[2]!),
      rawStr(fields[3]!),
      Buffer.from([0xc2]),
    ]);
  });

/** A container or string/bin header that declares far more than follows. */
export const hugeLengthArb: fc.Arbitrary<Uint8Array> = fc
  .record({
    head: fc.constantFrom(0xc6, 0xdb, 0xdd, 0xdf, 0xc5, 0xda, 0xdc, 0xde, 0xc4, 0xd9),
    excess: fc.oneof(fc.constant(Infinity), fc.integer({ min: 1, max: 0xffffffff })),
    tail: fc.uint8Array({ maxLength: 32 }),
    inFrame: fc.boolean(),
  })
  .map(({ head, excess, tail, inFrame }) => {
    const width = [0xc4, 0xd9].includes(head) ? 1 : [0xc5, 0xda, 0xdc, 0xde].includes(head) ? 2 : 4;
    // Declares more bytes (or values) than the tail holds: at least one more, at most the field's maximum.
    const length = Math.min(tail.length + excess, 2 ** (8 * width) - 1);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(length);
    const value = Buffer.concat([Buffer.from([head]), len.subarray(4 - width), tail]);
    // Inside a DATA frame, or as the whole message.
    return inFrame ? Buffer.concat([Buffer.from([0x93, FrameType.DATA, 0x01]), value]) : value;
  });
