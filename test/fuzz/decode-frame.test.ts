import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame } from '../../protocol/codec.js';
import { ErrorCodes } from '../../protocol/error-codes.js';
import { FrameType } from '../../protocol/frame-types.js';
import { ProtocolError } from '../../protocol/tunnel-error.js';
import {
  deepNesting,
  fieldSwapArb,
  frameArb,
  frameBytesArb,
  helloWithManyKeys,
  hugeLengthArb,
  invalidUtf8RequestArb,
  mutate,
  mutationArb,
  plain,
  requestWithManyHeaders,
  swapField,
} from './arbitraries.js';
import { loadCorpus } from './corpus.js';
import { decodeOutcome, LARGEST_FRAME } from './decode-check.js';
import { fuzzParams, fuzzTimeoutMs } from './fuzz-config.js';

/**
 * decodeFrame on hostile bytes: it returns a frame that round-trips, or
 * throws ProtocolError; never anything else, never a poisoned decoder,
 * never more than linear time.
 */

const seeds = loadCorpus()
  .filter((entry) => entry.messages.length === 1)
  .map((entry) => entry.messages[0]!);
const seedArb = seeds.length > 0 ? fc.constantFrom(...seeds) : frameBytesArb;
const FRAME_TYPES = Object.values(FrameType);

describe('decodeFrame fuzz', () => {
  it('arbitrary bytes: a frame or a ProtocolError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 96 }), (bytes) => {
        decodeOutcome(bytes);
      }),
      fuzzParams(4000),
    );
  }, fuzzTimeoutMs);

  it('bytes behind a plausible frame head (array header, known type): a frame or a ProtocolError', () => {
    const headed = fc
      .tuple(fc.integer({ min: 0x90, max: 0x9f }), fc.constantFrom(...FRAME_TYPES), fc.uint8Array({ maxLength: 64 }))
      .map(([head, type, rest]) => Buffer.concat([Buffer.from([head, type]), rest]));
    fc.assert(
      fc.property(headed, (bytes) => {
        decodeOutcome(bytes);
      }),
      fuzzParams(4000),
    );
  }, fuzzTimeoutMs);

  it('every valid frame round-trips', () => {
    fc.assert(
      fc.property(frameArb, (frame) => {
        expect(decodeOutcome(encodeFrame(frame))).not.toBeInstanceOf(ProtocolError);
      }),
      fuzzParams(1500),
    );
  }, fuzzTimeoutMs);

  it('mutated valid frames and corpus seeds (bit flips, truncation, extension, huge lengths, repeats)', () => {
    const base = fc.oneof(frameBytesArb, seedArb);
    fc.assert(
      fc.property(base, fc.array(mutationArb, { minLength: 1, maxLength: 4 }), (bytes, mutations) => {
        decodeOutcome(mutations.reduce(mutate, bytes));
      }),
      fuzzParams(5000),
    );
  }, fuzzTimeoutMs);

  it('a wrong value in any field, or a field too many or too few', () => {
    fc.assert(
      fc.property(fieldSwapArb, (swap) => {
        decodeOutcome(swapField(swap));
      }),
      fuzzParams(4000),
    );
  }, fuzzTimeoutMs);

  it('strings that are not UTF-8 in method, path and headers: refused, or decoded to values the field rules allow', () => {
    fc.assert(
      fc.property(invalidUtf8RequestArb, (bytes) => {
        decodeOutcome(bytes);
      }),
      fuzzParams(1500),
    );
  }, fuzzTimeoutMs);

  it('declared lengths far beyond the message: refused before any work', () => {
    fc.assert(
      fc.property(hugeLengthArb, (bytes) => {
        const outcome = decodeOutcome(bytes);
        expect(outcome).toBeInstanceOf(ProtocolError);
      }),
      fuzzParams(1500),
    );
  }, fuzzTimeoutMs);

  it('refuses nesting deeper than 8 levels, up to a whole frame of it', () => {
    for (const kind of ['array', 'map'] as const) {
      // 8 wrappers around the PING's own array make 9 levels.
      for (const depth of [8, 9, 100, 10_000, 300_000]) {
        const outcome = decodeOutcome(deepNesting(depth, kind));
        expect((outcome as ProtocolError).message).toBe('frame is not plain msgpack: it nests deeper than 8 levels');
      }
    }
  });

  it('accepts a HELLO with many unknown keys (ignored by design) and one with one key repeated', () => {
    for (const duplicate of [false, true]) {
      const outcome = decodeOutcome(helloWithManyKeys(50_000, duplicate));
      expect(outcome).toMatchObject({ type: FrameType.HELLO, v: 1, maxStreams: 4 });
    }
  });

  it('refuses a record-encoded HELLO (a msgpackr extension, not plain msgpack)', () => {
    // d4 72 40: msgpackr's record definition, which its decoder used to accept.
    const bytes = Buffer.from('9201d47240', 'hex');
    expect(decodeOutcome(bytes)).toBeInstanceOf(ProtocolError);
  });

  it('refuses a frame with trailing bytes in one linear pass, whatever it holds', () => {
    const data = encodeFrame({ type: FrameType.DATA, streamId: 1, data: new Uint8Array(1024 * 1024) });
    const outcome = decodeOutcome(Buffer.concat([data, Buffer.from([0xc0])]));
    expect((outcome as ProtocolError).message).toBe('frame is not plain msgpack: 1 bytes follow the frame');
    expect((outcome as ProtocolError).info).toBe(ErrorCodes.PROTOCOL);
  });
});

/**
 * Shapes of hostile input that make a naive decoder work hard, each built
 * at a given size in bytes. Time must grow at most linearly with size.
 */
const SHAPES: Record<string, (bytes: number) => Uint8Array> = {
  'DATA with trailing bytes': (n) => Buffer.concat([encodeFrame({ type: FrameType.DATA, streamId: 1, data: new Uint8Array(n) }), Buffer.from([0xc0])]),
  'array of zeros with trailing bytes': (n) => Buffer.concat([plain.pack(new Array(n - 8).fill(0)), Buffer.from([0xc0])]),
  'array of zeros in a frame': (n) => Buffer.concat([Buffer.from([0x92, 0x20]), plain.pack(new Array(n - 8).fill(0))]),
  'deep nesting': (n) => deepNesting(n, 'array'),
  'HELLO with many keys': (n) => helloWithManyKeys(Math.floor(n / 8), false),
  'REQUEST with many headers': (n) => requestWithManyHeaders(Math.floor(n / 4)),
  'REQUEST with a long path and a bad last byte': (n) =>
    Buffer.concat([Buffer.from([0x96, 0x10, 0x01]), plain.pack('GET'), plain.pack(`/${'a'.repeat(n - 16)}\n`), Buffer.from([0x90, 0xc3])]),
  'random bytes': (n) => {
    const out = Buffer.alloc(n);
    let x = 0x9e3779b9;
    for (let i = 0; i < n; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      out[i] = x & 0xff;
    }
    return out;
  },
};

/** Best of three, in ms: the least disturbed by other load on the machine. */
function timeDecode(bytes: Uint8Array): number {
  let best = Infinity;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    decodeOutcome(bytes, LARGEST_FRAME);
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

describe('decodeFrame cost on large hostile input', () => {
  it.each(Object.keys(SHAPES))('%s: time grows linearly with size (512 KiB vs 2 MiB)', (name) => {
    const build = SHAPES[name]!;
    const small = build(512 * 1024);
    const large = build(2 * 1024 * 1024);
    const tSmall = timeDecode(small);
    const tLarge = timeDecode(large);
    // Linear is 4×; quadratic would be 16×. The constant absorbs timer noise on tiny figures.
    expect(tLarge, `${name}: ${tSmall.toFixed(1)} ms for 512 KiB, ${tLarge.toFixed(1)} ms for 2 MiB`).toBeLessThan(10 * tSmall + 20);
    expect(tLarge).toBeLessThan(1_000);
  });

  it('rejects an oversized message by its length alone', () => {
    const huge = new Uint8Array(LARGEST_FRAME + 1);
    const t0 = performance.now();
    expect(() => decodeFrame(huge, LARGEST_FRAME)).toThrow(/exceeds the maximum/);
    expect(performance.now() - t0).toBeLessThan(50);
  });
});
