import { pack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame, MAX_STREAM_ID, MAX_WINDOW } from '../../protocol/codec.js';
import { ErrorCodes, type ErrorCodeInfo } from '../../protocol/error-codes.js';
import { FrameType, type Frame, type HandshakeInfo } from '../../protocol/frame-types.js';
import { ProtocolError } from '../../protocol/tunnel-error.js';

const MAX = 1024 * 1024;

const handshake: HandshakeInfo = {
  v: 1,
  software: 'postern/0.1.0',
  maxStreams: 1024,
  initialWindow: 256 * 1024,
  maxFrameSize: 1024 * 1024,
  heartbeatMs: 10_000,
};

/** Decodes and expects a ProtocolError whose message matches `message`. */
function expectRejected(bytes: Uint8Array, message: RegExp, info: ErrorCodeInfo = ErrorCodes.PROTOCOL, max = MAX): void {
  let thrown: unknown;
  try {
    decodeFrame(bytes, max);
  } catch (err) {
    thrown = err;
  }
  expect(thrown, 'decodeFrame should have thrown').toBeInstanceOf(ProtocolError);
  const err = thrown as ProtocolError;
  expect(err.message).toMatch(message);
  expect(err.info).toBe(info);
}

/** Encodes with msgpackr directly, to build frames the encoder would never make. */
function raw(...fields: unknown[]): Uint8Array {
  return pack(fields);
}

function roundTrip(frame: Frame): Frame {
  return decodeFrame(encodeFrame(frame), MAX);
}

describe('encodeFrame / decodeFrame round trip', () => {
  it('round-trips HELLO', () => {
    const frame: Frame = { type: FrameType.HELLO, ...handshake };
    expect(roundTrip(frame)).toStrictEqual(frame);
  });

  it('round-trips WELCOME with its connectionId', () => {
    const frame: Frame = { type: FrameType.WELCOME, ...handshake, connectionId: 'c_9f8e7d' };
    expect(roundTrip(frame)).toStrictEqual(frame);
  });

  it('round-trips REQUEST with raw path, query and repeated headers in order', () => {
    const frame: Frame = {
      type: FrameType.REQUEST,
      streamId: 1,
      method: 'POST',
      path: '/a%2Fb/c?x=1&y=%20z',
      headers: ['content-type', 'application/json', 'x-tag', 'one', 'X-Tag', 'two', 'accept', '*/*'],
      endStream: false,
    };
    expect(roundTrip(frame)).toStrictEqual(frame);
  });

  it('round-trips REQUEST with endStream true and no headers', () => {
    const frame: Frame = { type: FrameType.REQUEST, streamId: 3, method: 'GET', path: '/', headers: [], endStream: true };
    expect(roundTrip(frame)).toStrictEqual(frame);
  });

  it('round-trips RESPONSE with three set-cookie headers kept apart and in order', () => {
    const frame: Frame = {
      type: FrameType.RESPONSE,
      streamId: 7,
      status: 200,
      headers: ['set-cookie', 'a=1; Path=/', 'content-length', '0', 'set-cookie', 'b=2; HttpOnly', 'set-cookie', 'c=3'],
      endStream: true,
    };
    const decoded = roundTrip(frame);
    expect(decoded).toStrictEqual(frame);
    if (decoded.type !== FrameType.RESPONSE) throw new Error('wrong type');
    expect(decoded.headers.filter((_, i) => i % 2 === 0 && decoded.headers[i] === 'set-cookie')).toHaveLength(3);
  });

  it.each([100, 101, 204, 304, 599])('round-trips RESPONSE status %i', (status) => {
    const frame: Frame = { type: FrameType.RESPONSE, streamId: 2, status, headers: [], endStream: false };
    expect(roundTrip(frame)).toStrictEqual(frame);
  });

  it('round-trips DATA with every byte value intact', () => {
    const data = new Uint8Array(512);
    for (let i = 0; i < data.length; i++) data[i] = i & 0xff;
    const decoded = roundTrip({ type: FrameType.DATA, streamId: 5, data });
    expect(decoded.type).toBe(FrameType.DATA);
    if (decoded.type !== FrameType.DATA) return;
    expect(decoded.streamId).toBe(5);
    expect(decoded.data).toBeInstanceOf(Uint8Array);
    expect(Buffer.from(decoded.data).equals(Buffer.from(data))).toBe(true);
  });

  it('round-trips DATA with an empty payload', () => {
    const decoded = roundTrip({ type: FrameType.DATA, streamId: 5, data: new Uint8Array(0) });
    if (decoded.type !== FrameType.DATA) throw new Error('wrong type');
    expect(decoded.data.byteLength).toBe(0);
  });

  it('round-trips a 64 KiB DATA payload', () => {
    const data = new Uint8Array(64 * 1024).map((_, i) => (i * 7) & 0xff);
    const decoded = roundTrip({ type: FrameType.DATA, streamId: MAX_STREAM_ID, data });
    if (decoded.type !== FrameType.DATA) throw new Error('wrong type');
    expect(decoded.streamId).toBe(MAX_STREAM_ID);
    expect(Buffer.from(decoded.data).equals(Buffer.from(data))).toBe(true);
  });

  it('round-trips END', () => {
    expect(roundTrip({ type: FrameType.END, streamId: 9 })).toStrictEqual({ type: FrameType.END, streamId: 9 });
  });

  it('round-trips RESET with code and message', () => {
    const frame: Frame = { type: FrameType.RESET, streamId: 4, code: ErrorCodes.CANCEL.wire, message: 'caller went away' };
    expect(roundTrip(frame)).toStrictEqual(frame);
  });

  it('round-trips WINDOW_UPDATE at the smallest and largest increments', () => {
    for (const increment of [1, MAX_WINDOW]) {
      const frame: Frame = { type: FrameType.WINDOW_UPDATE, streamId: 1, increment };
      expect(roundTrip(frame)).toStrictEqual(frame);
    }
  });

  it('round-trips PING and PONG ids up to MAX_SAFE_INTEGER', () => {
    for (const id of [0, 1, 0xffffffff, Number.MAX_SAFE_INTEGER]) {
      expect(roundTrip({ type: FrameType.PING, id })).toStrictEqual({ type: FrameType.PING, id });
      expect(roundTrip({ type: FrameType.PONG, id })).toStrictEqual({ type: FrameType.PONG, id });
    }
  });

  it('round-trips GOAWAY, including lastStreamId 0', () => {
    for (const lastStreamId of [0, 41]) {
      const frame: Frame = { type: FrameType.GOAWAY, lastStreamId, code: ErrorCodes.GOING_AWAY.wire, message: 'draining' };
      expect(roundTrip(frame)).toStrictEqual(frame);
    }
  });

  it('refuses to encode a frame of unknown type', () => {
    expect(() => encodeFrame({ type: 0x7f } as unknown as Frame)).toThrow(TypeError);
  });

  it('keeps handshake-only fields out of HELLO', () => {
    const frame = { type: FrameType.HELLO, ...handshake, secret: 'x' } as Frame;
    expect(roundTrip(frame)).not.toHaveProperty('secret');
  });
});

describe('decodeFrame on literal bytes', () => {
  it('decodes PING 5 from [0x92, 0x20, 0x05]', () => {
    expect(decodeFrame(new Uint8Array([0x92, 0x20, 0x05]), MAX)).toStrictEqual({ type: FrameType.PING, id: 5 });
  });

  it('decodes PONG with a uint32 id', () => {
    const bytes = new Uint8Array([0x92, 0x21, 0xce, 0x01, 0x02, 0x03, 0x04]);
    expect(decodeFrame(bytes, MAX)).toStrictEqual({ type: FrameType.PONG, id: 0x01020304 });
  });

  it('decodes DATA with a bin8 payload', () => {
    const frame = decodeFrame(new Uint8Array([0x93, 0x12, 0x01, 0xc4, 0x03, 0xde, 0xad, 0x00]), MAX);
    if (frame.type !== FrameType.DATA) throw new Error('wrong type');
    expect(frame.streamId).toBe(1);
    expect([...frame.data]).toStrictEqual([0xde, 0xad, 0x00]);
  });

  it('decodes END on the largest stream id (uint32 0x7fffffff)', () => {
    const bytes = new Uint8Array([0x92, 0x13, 0xce, 0x7f, 0xff, 0xff, 0xff]);
    expect(decodeFrame(bytes, MAX)).toStrictEqual({ type: FrameType.END, streamId: 0x7fffffff });
  });

  it('decodes WINDOW_UPDATE with a uint16 increment', () => {
    const bytes = new Uint8Array([0x93, 0x15, 0x03, 0xcd, 0x04, 0x00]);
    expect(decodeFrame(bytes, MAX)).toStrictEqual({ type: FrameType.WINDOW_UPDATE, streamId: 3, increment: 1024 });
  });

  it('decodes REQUEST GET / with no headers and endStream true', () => {
    // [0x10, 1, "GET", "/", [], true]
    const bytes = new Uint8Array([0x96, 0x10, 0x01, 0xa3, 0x47, 0x45, 0x54, 0xa1, 0x2f, 0x90, 0xc3]);
    expect(decodeFrame(bytes, MAX)).toStrictEqual({
      type: FrameType.REQUEST,
      streamId: 1,
      method: 'GET',
      path: '/',
      headers: [],
      endStream: true,
    });
  });

  it('encodes PING 5 to exactly [0x92, 0x20, 0x05]', () => {
    expect([...encodeFrame({ type: FrameType.PING, id: 5 })]).toStrictEqual([0x92, 0x20, 0x05]);
  });

  it('encodes DATA as plain msgpack bin, with no msgpackr extensions', () => {
    const bytes = encodeFrame({ type: FrameType.DATA, streamId: 1, data: new Uint8Array([1, 2, 3]) });
    expect([...bytes]).toStrictEqual([0x93, 0x12, 0x01, 0xc4, 0x03, 0x01, 0x02, 0x03]);
  });

  it('rejects END whose stream id is uint32 0x80000000', () => {
    expectRejected(new Uint8Array([0x92, 0x13, 0xce, 0x80, 0x00, 0x00, 0x00]), /^END: streamId 2147483648 is outside/);
  });

  it('rejects a stream id sent as int64 -1', () => {
    const bytes = new Uint8Array([0x92, 0x13, 0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    expectRejected(bytes, /^END: streamId -1 is outside/);
  });

  it('rejects a message with bytes after the frame', () => {
    expectRejected(new Uint8Array([0x92, 0x20, 0x05, 0x00]), /^frame is not plain msgpack: 1 bytes follow the frame$/);
  });

  it('rejects a truncated frame', () => {
    expectRejected(new Uint8Array([0x93, 0x20, 0x05]), /^frame is not plain msgpack: a container claims 3 values with 2 bytes left$/);
  });
});

describe('decodeFrame rejects', () => {
  it('a frame larger than maxFrameSize, with FRAME_TOO_LARGE', () => {
    const bytes = encodeFrame({ type: FrameType.DATA, streamId: 1, data: new Uint8Array(2000) });
    expectRejected(bytes, new RegExp(`frame of ${bytes.byteLength} bytes exceeds the maximum of 1024`), ErrorCodes.FRAME_TOO_LARGE, 1024);
  });

  it('checks size before parsing, so oversized garbage is FRAME_TOO_LARGE', () => {
    expectRejected(new Uint8Array(100).fill(0xc1), /exceeds the maximum of 99/, ErrorCodes.FRAME_TOO_LARGE, 99);
  });

  it('accepts a frame of exactly maxFrameSize', () => {
    const bytes = encodeFrame({ type: FrameType.DATA, streamId: 1, data: new Uint8Array(2000) });
    expect(decodeFrame(bytes, bytes.byteLength).type).toBe(FrameType.DATA);
  });

  it('empty bytes', () => {
    expectRejected(new Uint8Array(0), /empty frame/);
  });

  it('bytes that are not msgpack (0xc1, never used)', () => {
    expectRejected(new Uint8Array([0xc1]), /msgpack/);
  });

  it('a msgpack value that is not an array', () => {
    expectRejected(pack({ type: 0x20, id: 1 }), /not a msgpack array/);
    expectRejected(pack(0x20), /not a msgpack array/);
    expectRejected(pack('PING'), /not a msgpack array/);
    expectRejected(new Uint8Array([0xc0]), /not a msgpack array/);
  });

  it('an empty array', () => {
    expectRejected(new Uint8Array([0x90]), /not a msgpack array/);
  });

  it('a type that is not a number', () => {
    expectRejected(raw('PING', 1), /frame type is not a number/);
    expectRejected(raw(null, 1), /frame type is not a number/);
  });

  it.each([0x00, 0x03, 0x16, 0x23, 0x7f, 255])('unknown frame type %i', (type) => {
    expectRejected(raw(type, 1), new RegExp(`unknown frame type ${type}`));
  });

  describe('wrong arity', () => {
    const arity: [keyof typeof FrameType, number][] = [
      ['HELLO', 2],
      ['WELCOME', 2],
      ['REQUEST', 6],
      ['RESPONSE', 5],
      ['DATA', 3],
      ['END', 2],
      ['RESET', 4],
      ['WINDOW_UPDATE', 3],
      ['PING', 2],
      ['PONG', 2],
      ['GOAWAY', 4],
    ];

    it.each(arity)('%s with one field too few or too many', (name, n) => {
      const type = FrameType[name];
      const few = [type, ...Array.from({ length: n - 2 }, () => 1)];
      const many = [type, ...Array.from({ length: n }, () => 1)];
      expectRejected(pack(few), new RegExp(`^${name}: expected ${n} fields, got ${n - 1}$`));
      expectRejected(pack(many), new RegExp(`^${name}: expected ${n} fields, got ${n + 1}$`));
    });
  });

  describe('stream ids', () => {
    it.each([
      ['a string', '1', /^END: streamId must be an integer$/],
      ['0', 0, /^END: streamId 0 is outside 1–2147483647$/],
      ['negative', -3, /^END: streamId -3 is outside/],
      ['above 2^31-1', 2 ** 31, /^END: streamId 2147483648 is outside/],
      ['a float', 1.5, /^END: streamId must be an integer$/],
      ['nil', null, /^END: streamId must be an integer$/],
    ])('streamId %s', (_label, streamId, message) => {
      expectRejected(raw(FrameType.END, streamId), message);
    });

    it.each(['REQUEST', 'RESPONSE', 'DATA', 'RESET', 'WINDOW_UPDATE'] as const)('streamId 0 in %s', (name) => {
      const valid: Record<typeof name, unknown[]> = {
        REQUEST: [FrameType.REQUEST, 0, 'GET', '/', [], true],
        RESPONSE: [FrameType.RESPONSE, 0, 200, [], true],
        DATA: [FrameType.DATA, 0, new Uint8Array(1)],
        RESET: [FrameType.RESET, 0, 5, 'x'],
        WINDOW_UPDATE: [FrameType.WINDOW_UPDATE, 0, 10],
      };
      expectRejected(pack(valid[name]), new RegExp(`^${name}: streamId 0 is outside`));
    });
  });

  describe('REQUEST fields', () => {
    const request = (over: { method?: unknown; path?: unknown; headers?: unknown; endStream?: unknown }): Uint8Array => {
      const f = { method: 'GET', path: '/', headers: [], endStream: true, ...over };
      return raw(FrameType.REQUEST, 1, f.method, f.path, f.headers, f.endStream);
    };

    it.each(['GE T', 'GET\r\n', '', 'GÉT', 'a(b)', 'M'.repeat(33)])('method %j', (method) => {
      expectRejected(request({ method }), /^REQUEST: method/);
    });

    it('method that is not a string', () => {
      expectRejected(request({ method: 1 }), /^REQUEST: method must be a string$/);
    });

    it('accepts extension methods that are tokens', () => {
      expect(decodeFrame(request({ method: 'PROPFIND' }), MAX)).toMatchObject({ method: 'PROPFIND' });
    });

    it.each([
      ['not starting with "/"', 'a/b'],
      ['absolute-form', 'http://evil/'],
      ['empty', ''],
      ['with a space', '/a b'],
      ['with a tab', '/a\tb'],
      ['with CR LF', '/a\r\nHost: evil'],
      ['with NUL', '/a\0'],
      ['with DEL', '/a\x7f'],
    ])('path %s', (_label, path) => {
      expectRejected(request({ path }), /^REQUEST: path must start with "\/"/);
    });

    it('path that is not a string', () => {
      expectRejected(request({ path: ['/'] }), /^REQUEST: path must be a string$/);
    });

    it('path longer than 65536 characters', () => {
      expectRejected(request({ path: '/' + 'a'.repeat(65536) }), /^REQUEST: path is longer than 65536/);
    });

    it('accepts a path with percent-escapes, query and fragment-like characters', () => {
      const path = "/a%2Fb;p=1?q=a%20b&r=[x]~!$'()*+,@:";
      expect(decodeFrame(request({ path }), MAX)).toMatchObject({ path });
    });

    it('headers that are not an array', () => {
      expectRejected(request({ headers: { a: 'b' } }), /^REQUEST: headers must be an array$/);
    });

    it('headers of odd length', () => {
      expectRejected(request({ headers: ['a', 'b', 'c'] }), /^REQUEST: headers must hold name\/value pairs$/);
    });

    it.each(['x header', 'x:y', '', 'x\r\n', 'é'])('header name %j', (name) => {
      expectRejected(request({ headers: ['ok', '1', name, 'v'] }), /^REQUEST: header name at 1 is not an HTTP token$/);
    });

    it('header name that is not a string', () => {
      expectRejected(request({ headers: [1, 'v'] }), /^REQUEST: header name at 0 is not an HTTP token$/);
    });

    it.each([
      ['CR LF', 'a\r\nx-injected: 1'],
      ['a bare LF', 'a\nb'],
      ['a bare CR', 'a\rb'],
      ['NUL', 'a\0b'],
      ['DEL', 'a\x7fb'],
    ])('header value with %s', (_label, value) => {
      expectRejected(request({ headers: ['x-a', value] }), /^REQUEST: header "x-a" has a value with forbidden characters$/);
    });

    it('header value that is not a string', () => {
      expectRejected(request({ headers: ['x-a', 5] }), /^REQUEST: header "x-a" has a value/);
    });

    it('accepts header values with tabs, spaces, an empty value and obs-text', () => {
      const headers = ['x-a', 'a\tb c', 'x-empty', '', 'x-latin1', 'caf\u00e9'];
      expect(decodeFrame(request({ headers }), MAX)).toMatchObject({ headers });
    });

    it.each([1, 0, 'true', null])('endStream %j', (endStream) => {
      expectRejected(request({ endStream }), /^REQUEST: endStream must be a boolean$/);
    });
  });

  describe('RESPONSE fields', () => {
    it.each([99, 600, 0, -200])('status %i', (status) => {
      expectRejected(raw(FrameType.RESPONSE, 1, status, [], true), new RegExp(`^RESPONSE: status ${status} is outside 100–599$`));
    });

    it('status that is not an integer', () => {
      expectRejected(raw(FrameType.RESPONSE, 1, '200', [], true), /^RESPONSE: status must be an integer$/);
      expectRejected(raw(FrameType.RESPONSE, 1, 200.5, [], true), /^RESPONSE: status must be an integer$/);
    });

    it('headers of odd length', () => {
      expectRejected(raw(FrameType.RESPONSE, 1, 200, ['set-cookie'], true), /^RESPONSE: headers must hold name\/value pairs$/);
    });

    it('header value with CR LF', () => {
      expectRejected(raw(FrameType.RESPONSE, 1, 200, ['location', '/x\r\nset-cookie: a=1'], true), /^RESPONSE: header "location"/);
    });

    it('endStream that is not a boolean', () => {
      expectRejected(raw(FrameType.RESPONSE, 1, 200, [], 'no'), /^RESPONSE: endStream must be a boolean$/);
    });
  });

  describe('DATA fields', () => {
    it.each([
      ['a string', 'abc'],
      ['an array of numbers', [1, 2, 3]],
      ['nil', null],
      ['a number', 7],
      ['a map', { 0: 1 }],
    ])('data that is %s', (_label, data) => {
      expectRejected(raw(FrameType.DATA, 1, data), /^DATA: data must be binary$/);
    });

    it('data that is a msgpack timestamp extension (no extension is plain msgpack)', () => {
      expectRejected(raw(FrameType.DATA, 1, new Date(0)), /^frame is not plain msgpack: it holds a msgpack extension \(type byte 0xd6\)$/);
    });
  });

  describe('RESET and GOAWAY fields', () => {
    it.each([-1, 0x10000, 1.5, '5'])('RESET code %j', (code) => {
      expectRejected(raw(FrameType.RESET, 1, code, 'x'), /^RESET: code /);
    });

    it('RESET message that is not a string or is over 1024 characters', () => {
      expectRejected(raw(FrameType.RESET, 1, 5, null), /^RESET: message must be a string$/);
      expectRejected(raw(FrameType.RESET, 1, 5, 'x'.repeat(1025)), /^RESET: message is longer than 1024/);
    });

    it('GOAWAY with a bad lastStreamId, code or message', () => {
      expectRejected(raw(FrameType.GOAWAY, -1, 20, 'x'), /^GOAWAY: lastStreamId -1 is outside 0–2147483647$/);
      expectRejected(raw(FrameType.GOAWAY, 2 ** 31, 20, 'x'), /^GOAWAY: lastStreamId /);
      expectRejected(raw(FrameType.GOAWAY, 1, 0x10000, 'x'), /^GOAWAY: code /);
      expectRejected(raw(FrameType.GOAWAY, 1, 20, 7), /^GOAWAY: message must be a string$/);
    });
  });

  describe('WINDOW_UPDATE fields', () => {
    it.each([
      [0, /^WINDOW_UPDATE: increment 0 is outside 1–2147483647$/],
      [-1, /^WINDOW_UPDATE: increment -1 is outside/],
      [2 ** 31, /^WINDOW_UPDATE: increment 2147483648 is outside/],
      [1.5, /^WINDOW_UPDATE: increment must be an integer$/],
      ['1', /^WINDOW_UPDATE: increment must be an integer$/],
    ])('increment %j', (increment, message) => {
      expectRejected(raw(FrameType.WINDOW_UPDATE, 1, increment), message);
    });
  });

  describe('PING and PONG fields', () => {
    it.each([-1, 1.5, 'a', Number.MAX_SAFE_INTEGER + 2])('PING id %j', (id) => {
      expectRejected(raw(FrameType.PING, id), /^PING: id /);
    });

    it('PONG id that is not an integer', () => {
      expectRejected(raw(FrameType.PONG, null), /^PONG: id must be an integer$/);
    });
  });

  describe('handshake fields', () => {
    it('a handshake that is not a map', () => {
      expectRejected(raw(FrameType.HELLO, [1, 2]), /^HELLO: handshake must be a map$/);
      expectRejected(raw(FrameType.HELLO, null), /^HELLO: handshake must be a map$/);
      expectRejected(raw(FrameType.WELCOME, new Uint8Array(4)), /^WELCOME: handshake must be a map$/);
    });

    it.each(['v', 'maxStreams', 'initialWindow', 'maxFrameSize', 'heartbeatMs'] as const)('HELLO missing %s', (key) => {
      const m: Record<string, unknown> = { ...handshake };
      delete m[key];
      expectRejected(raw(FrameType.HELLO, m), new RegExp(`^handshake: ${key} must be an integer in`));
    });

    it('HELLO missing software, or software over 64 characters', () => {
      const { software: _software, ...rest } = handshake;
      expectRejected(raw(FrameType.HELLO, rest), /^handshake: software must be a string/);
      expectRejected(raw(FrameType.HELLO, { ...handshake, software: 's'.repeat(65) }), /^handshake: software must be a string/);
    });

    it.each([
      ['v', 0],
      ['v', 0x10000],
      ['maxStreams', 0],
      ['maxStreams', 1_000_001],
      ['initialWindow', 1023],
      ['initialWindow', MAX_WINDOW + 1],
      ['maxFrameSize', 16 * 1024 - 1],
      ['maxFrameSize', 64 * 1024 * 1024 + 1],
      ['heartbeatMs', 99],
      ['heartbeatMs', 3_600_001],
      ['heartbeatMs', 1000.5],
      ['maxStreams', '10'],
    ] as const)('HELLO with %s %j', (key, value) => {
      expectRejected(raw(FrameType.HELLO, { ...handshake, [key]: value }), new RegExp(`^handshake: ${key} must be an integer in`));
    });

    it.each([
      ['v', 1],
      ['v', 0xffff],
      ['maxStreams', 1],
      ['maxStreams', 1_000_000],
      ['initialWindow', 1024],
      ['initialWindow', MAX_WINDOW],
      ['maxFrameSize', 16 * 1024],
      ['maxFrameSize', 64 * 1024 * 1024],
      ['heartbeatMs', 100],
      ['heartbeatMs', 3_600_000],
    ] as const)('accepts HELLO with %s at its limit %j', (key, value) => {
      expect(decodeFrame(raw(FrameType.HELLO, { ...handshake, [key]: value }), MAX)).toMatchObject({ [key]: value });
    });

    it('WELCOME with an empty, missing, non-string or over-long connectionId', () => {
      expectRejected(raw(FrameType.WELCOME, { ...handshake, connectionId: '' }), /^WELCOME: connectionId must be a string/);
      expectRejected(raw(FrameType.WELCOME, handshake), /^WELCOME: connectionId must be a string/);
      expectRejected(raw(FrameType.WELCOME, { ...handshake, connectionId: 42 }), /^WELCOME: connectionId must be a string/);
      expectRejected(raw(FrameType.WELCOME, { ...handshake, connectionId: 'c'.repeat(65) }), /^WELCOME: connectionId must be a string/);
    });

    it('WELCOME with a bad handshake field', () => {
      expectRejected(raw(FrameType.WELCOME, { ...handshake, connectionId: 'c1', v: 0 }), /^handshake: v must be an integer/);
    });
  });
});
