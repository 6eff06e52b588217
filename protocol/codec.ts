import { Packr } from 'msgpackr';
import { ErrorCodes } from './error-codes.js';
import { FrameType, type Frame, type HandshakeInfo, type HeaderList } from './frame-types.js';
import { checkPlainMsgpack } from './msgpack-scan.js';
import { ProtocolError } from './tunnel-error.js';

/**
 * Frame codec: each frame is one msgpack array `[type, ...fields]`.
 *
 * Arrays rather than maps keep a DATA frame's overhead to a few bytes and
 * make decoding a positional check. `decodeFrame` validates every field: a
 * frame that is not exactly what the protocol allows throws ProtocolError with
 * a message naming the frame and the field, and the caller closes only that
 * connection.
 */

// useRecords:false keeps the encoding plain msgpack (no msgpackr extensions),
// so another implementation can speak the protocol with any msgpack library.
const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true, int64AsType: 'number' });

/** Largest stream id (31 bits, as HTTP/2), so ids fit every msgpack int form. */
export const MAX_STREAM_ID = 0x7fffffff;
/** Largest window increment and window size (31 bits, as HTTP/2). */
export const MAX_WINDOW = 0x7fffffff;

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Header values: visible ASCII, space, tab and obs-text; never CR, LF or NUL.
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
// Request target: no controls, no space (they would split the request line).
const REQUEST_PATH = /^\/[\x21-\x7e\x80-\xff]*$/;

/** Encodes one frame to the bytes of one WebSocket binary message. */
export function encodeFrame(frame: Frame): Uint8Array {
  switch (frame.type) {
    case FrameType.HELLO:
      return packr.pack([frame.type, handshakeFields(frame)]);
    case FrameType.WELCOME:
      return packr.pack([frame.type, { ...handshakeFields(frame), connectionId: frame.connectionId }]);
    case FrameType.REQUEST:
      return packr.pack([frame.type, frame.streamId, frame.method, frame.path, frame.headers, frame.endStream]);
    case FrameType.RESPONSE:
      return packr.pack([frame.type, frame.streamId, frame.status, frame.headers, frame.endStream]);
    case FrameType.DATA:
      return packr.pack([frame.type, frame.streamId, frame.data]);
    case FrameType.END:
      return packr.pack([frame.type, frame.streamId]);
    case FrameType.RESET:
      return packr.pack([frame.type, frame.streamId, frame.code, frame.message]);
    case FrameType.WINDOW_UPDATE:
      return packr.pack([frame.type, frame.streamId, frame.increment]);
    case FrameType.PING:
    case FrameType.PONG:
      return packr.pack([frame.type, frame.id]);
    case FrameType.GOAWAY:
      return packr.pack([frame.type, frame.lastStreamId, frame.code, frame.message]);
    default:
      throw new TypeError(`cannot encode frame of unknown type ${(frame as { type: unknown }).type}`);
  }
}

/**
 * Encodes a DATA frame whose payload is the concatenation of `parts`
 * (`total` bytes), without going through msgpackr: the bytes are the same
 * msgpack array `[0x12, streamId, bin]` any decoder reads, but the payload
 * is copied once, straight into the message buffer. Bulk transfers spend
 * their time here, and several queued chunks of one stream leave as one
 * frame at no extra cost.
 */
export function encodeDataFrame(streamId: number, parts: readonly Uint8Array[], total: number): Uint8Array {
  const binHeader = total < 0x100 ? 2 : total < 0x10000 ? 3 : 5;
  const headerLength = 2 + 5 + binHeader;
  const out = Buffer.allocUnsafe(headerLength + total);
  out[0] = 0x93; // fixarray of 3
  out[1] = FrameType.DATA; // positive fixint
  out[2] = 0xce; // uint32 stream id
  out.writeUInt32BE(streamId, 3);
  if (binHeader === 2) {
    out[7] = 0xc4;
    out[8] = total;
  } else if (binHeader === 3) {
    out[7] = 0xc5;
    out.writeUInt16BE(total, 8);
  } else {
    out[7] = 0xc6;
    out.writeUInt32BE(total, 8);
  }
  let offset = headerLength;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  if (offset !== headerLength + total) throw new RangeError(`DATA parts hold ${offset - headerLength} bytes, not ${total}`);
  return out;
}

function handshakeFields(h: HandshakeInfo): HandshakeInfo {
  return {
    v: h.v,
    software: h.software,
    maxStreams: h.maxStreams,
    initialWindow: h.initialWindow,
    maxFrameSize: h.maxFrameSize,
    heartbeatMs: h.heartbeatMs,
  };
}

/**
 * Decodes and validates one message. `maxFrameSize` is checked before any
 * parsing so an oversized message costs nothing to refuse, and the bytes
 * must be one value of plain msgpack (checkPlainMsgpack) before msgpackr
 * builds anything from them.
 */
export function decodeFrame(bytes: Uint8Array, maxFrameSize: number): Frame {
  if (bytes.byteLength > maxFrameSize) {
    throw new ProtocolError(
      `frame of ${bytes.byteLength} bytes exceeds the maximum of ${maxFrameSize}`,
      ErrorCodes.FRAME_TOO_LARGE,
    );
  }
  if (bytes.byteLength === 0) throw new ProtocolError('empty frame');
  checkPlainMsgpack(bytes);
  let value: unknown;
  try {
    value = packr.unpack(bytes as Buffer);
  } catch (err) {
    throw new ProtocolError('frame is not valid msgpack', ErrorCodes.PROTOCOL, { cause: err });
  }
  if (!Array.isArray(value) || value.length === 0) throw new ProtocolError('frame is not a msgpack array');
  const type = value[0];
  if (typeof type !== 'number') throw new ProtocolError('frame type is not a number');
  const f = new FieldReader(value, type);
  switch (type) {
    case FrameType.HELLO:
      f.arity(2);
      return { type, ...readHandshake(f.map(1, 'handshake')) };
    case FrameType.WELCOME: {
      f.arity(2);
      const m = f.map(1, 'handshake');
      const connectionId = m.connectionId;
      if (typeof connectionId !== 'string' || connectionId.length === 0 || connectionId.length > 64) {
        throw new ProtocolError('WELCOME: connectionId must be a string of 1–64 characters');
      }
      return { type, ...readHandshake(m), connectionId };
    }
    case FrameType.REQUEST: {
      f.arity(6);
      const method = f.string(2, 'method', 32);
      if (!TOKEN.test(method)) throw new ProtocolError(`REQUEST: method ${JSON.stringify(method)} is not an HTTP token`);
      const path = f.string(3, 'path', 65536);
      if (!REQUEST_PATH.test(path)) {
        throw new ProtocolError('REQUEST: path must start with "/" and contain no spaces or control characters');
      }
      return { type, streamId: f.streamId(1), method, path, headers: f.headers(4), endStream: f.bool(5, 'endStream') };
    }
    case FrameType.RESPONSE: {
      f.arity(5);
      const status = f.integer(2, 'status', 100, 599);
      return { type, streamId: f.streamId(1), status, headers: f.headers(3), endStream: f.bool(4, 'endStream') };
    }
    case FrameType.DATA: {
      f.arity(3);
      const data = value[2];
      if (!(data instanceof Uint8Array)) throw new ProtocolError('DATA: data must be binary');
      return { type, streamId: f.streamId(1), data };
    }
    case FrameType.END:
      f.arity(2);
      return { type, streamId: f.streamId(1) };
    case FrameType.RESET:
      f.arity(4);
      return {
        type,
        streamId: f.streamId(1),
        code: f.integer(2, 'code', 0, 0xffff),
        message: f.string(3, 'message', 1024),
      };
    case FrameType.WINDOW_UPDATE:
      f.arity(3);
      return { type, streamId: f.streamId(1), increment: f.integer(2, 'increment', 1, MAX_WINDOW) };
    case FrameType.PING:
    case FrameType.PONG:
      f.arity(2);
      return { type, id: f.integer(1, 'id', 0, Number.MAX_SAFE_INTEGER) };
    case FrameType.GOAWAY:
      f.arity(4);
      return {
        type,
        lastStreamId: f.integer(1, 'lastStreamId', 0, MAX_STREAM_ID),
        code: f.integer(2, 'code', 0, 0xffff),
        message: f.string(3, 'message', 1024),
      };
    default:
      throw new ProtocolError(`unknown frame type ${type}`);
  }
}

const TYPE_NAMES = new Map<number, string>(Object.entries(FrameType).map(([name, id]) => [id, name]));

/** Positional field checks with messages that name the frame and field. */
class FieldReader {
  private readonly name: string;

  constructor(
    private readonly value: unknown[],
    type: number,
  ) {
    this.name = TYPE_NAMES.get(type) ?? `type ${type}`;
  }

  private fail(message: string): never {
    throw new ProtocolError(`${this.name}: ${message}`);
  }

  arity(n: number): void {
    if (this.value.length !== n) this.fail(`expected ${n} fields, got ${this.value.length}`);
  }

  streamId(i: number): number {
    return this.integer(i, 'streamId', 1, MAX_STREAM_ID);
  }

  integer(i: number, field: string, min: number, max: number): number {
    const v = this.value[i];
    if (typeof v !== 'number' || !Number.isInteger(v)) this.fail(`${field} must be an integer`);
    if (v < min || v > max) this.fail(`${field} ${v} is outside ${min}–${max}`);
    return v;
  }

  string(i: number, field: string, maxLength: number): string {
    const v = this.value[i];
    if (typeof v !== 'string') this.fail(`${field} must be a string`);
    if (v.length > maxLength) this.fail(`${field} is longer than ${maxLength} characters`);
    return v;
  }

  bool(i: number, field: string): boolean {
    const v = this.value[i];
    if (typeof v !== 'boolean') this.fail(`${field} must be a boolean`);
    return v;
  }

  map(i: number, field: string): Record<string, unknown> {
    const v = this.value[i];
    if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) {
      this.fail(`${field} must be a map`);
    }
    return v as Record<string, unknown>;
  }

  headers(i: number): HeaderList {
    const v = this.value[i];
    if (!Array.isArray(v)) this.fail('headers must be an array');
    if (v.length % 2 !== 0) this.fail('headers must hold name/value pairs');
    for (let k = 0; k < v.length; k += 2) {
      const name = v[k];
      const val = v[k + 1];
      if (typeof name !== 'string' || !TOKEN.test(name)) this.fail(`header name at ${k / 2} is not an HTTP token`);
      if (typeof val !== 'string' || !FIELD_VALUE.test(val)) {
        this.fail(`header ${JSON.stringify(name)} has a value with forbidden characters`);
      }
    }
    return v as HeaderList;
  }
}

function readHandshake(m: Record<string, unknown>): HandshakeInfo {
  const int = (key: string, min: number, max: number): number => {
    const v = m[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw new ProtocolError(`handshake: ${key} must be an integer in ${min}–${max}`);
    }
    return v;
  };
  const software = m.software;
  if (typeof software !== 'string' || software.length > 64) {
    throw new ProtocolError('handshake: software must be a string of at most 64 characters');
  }
  return {
    v: int('v', 1, 0xffff),
    software,
    maxStreams: int('maxStreams', 1, 1_000_000),
    initialWindow: int('initialWindow', 1024, MAX_WINDOW),
    maxFrameSize: int('maxFrameSize', 16 * 1024, 64 * 1024 * 1024),
    heartbeatMs: int('heartbeatMs', 100, 3_600_000),
  };
}
