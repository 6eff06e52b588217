import { ProtocolError } from './tunnel-error.js';

/**
 * Deepest nesting a frame may use. Frames need two levels (the frame array,
 * then a header list or the handshake map); eight leaves room for handshake
 * fields added later while keeping the decoder's recursion far from the
 * stack limit.
 */
export const MAX_NESTING = 8;

/**
 * Walks one msgpack value without building it, and throws ProtocolError
 * unless `bytes` is exactly one value of plain msgpack: no extension types
 * (msgpackr would otherwise build records, Dates, RegExps, Errors, typed
 * arrays from them), no reserved byte, nesting at most `maxNesting`, no
 * length that runs past the end, and no trailing bytes.
 *
 * It runs before msgpackr so that a hostile message costs one linear pass:
 * on trailing bytes msgpackr JSON-stringifies everything it decoded for its
 * error message (measured: 190 ms for one 1 MiB message), and deep nesting
 * recurses into a stack overflow. Iterative, no allocation but one small
 * stack; a bin or str payload is skipped by its length, so a DATA frame
 * costs the same few steps whatever its size.
 */
export function checkPlainMsgpack(bytes: Uint8Array, maxNesting: number = MAX_NESTING): void {
  const end = bytes.byteLength;
  // Values still to read in each open container, innermost last.
  const open: number[] = [];
  let pos = 0;
  let toRead = 1;
  for (;;) {
    if (toRead === 0) {
      if (open.length === 0) break;
      toRead = open.pop()!;
      continue;
    }
    toRead--;
    if (pos >= end) fail('it ends in the middle of a value');
    const b = bytes[pos]!;
    let children = 0;
    let skip = 0;
    pos++;
    if (b <= 0x7f || b >= 0xe0) {
      // positive or negative fixint
    } else if (b <= 0x8f) {
      children = 2 * (b & 0x0f);
    } else if (b <= 0x9f) {
      children = b & 0x0f;
    } else if (b <= 0xbf) {
      skip = b & 0x1f;
    } else {
      switch (b) {
        case 0xc0: // nil
        case 0xc2: // false
        case 0xc3: // true
          break;
        case 0xc4: // bin 8
        case 0xd9: // str 8
          skip = readLength(bytes, pos, 1);
          pos += 1;
          break;
        case 0xc5: // bin 16
        case 0xda: // str 16
          skip = readLength(bytes, pos, 2);
          pos += 2;
          break;
        case 0xc6: // bin 32
        case 0xdb: // str 32
          skip = readLength(bytes, pos, 4);
          pos += 4;
          break;
        case 0xcc: // uint 8
        case 0xd0: // int 8
          skip = 1;
          break;
        case 0xcd:
        case 0xd1:
          skip = 2;
          break;
        case 0xca: // float 32
        case 0xce:
        case 0xd2:
          skip = 4;
          break;
        case 0xcb: // float 64
        case 0xcf:
        case 0xd3:
          skip = 8;
          break;
        case 0xdc: // array 16
          children = readLength(bytes, pos, 2);
          pos += 2;
          break;
        case 0xdd: // array 32
          children = readLength(bytes, pos, 4);
          pos += 4;
          break;
        case 0xde: // map 16
          children = 2 * readLength(bytes, pos, 2);
          pos += 2;
          break;
        case 0xdf: // map 32
          children = 2 * readLength(bytes, pos, 4);
          pos += 4;
          break;
        case 0xc1:
          fail('it holds the reserved byte 0xc1');
        default:
          // 0xc7–0xc9 ext 8/16/32, 0xd4–0xd8 fixext
          fail(`it holds a msgpack extension (type byte 0x${b.toString(16)})`);
      }
    }
    if (skip > end - pos) fail('a length runs past the end of the message');
    pos += skip;
    if (children > 0) {
      // Every value takes at least one byte: a count beyond what is left is a lie, refused before any work.
      if (children > end - pos) fail(`a container claims ${children} values with ${end - pos} bytes left`);
      if (open.length + 1 > maxNesting) fail(`it nests deeper than ${maxNesting} levels`);
      open.push(toRead);
      toRead = children;
    }
  }
  if (pos !== end) fail(`${end - pos} bytes follow the frame`);
}

function readLength(bytes: Uint8Array, pos: number, size: 1 | 2 | 4): number {
  if (pos + size > bytes.byteLength) fail('it ends in the middle of a length');
  if (size === 1) return bytes[pos]!;
  if (size === 2) return (bytes[pos]! << 8) | bytes[pos + 1]!;
  return bytes[pos]! * 0x1000000 + ((bytes[pos + 1]! << 16) | (bytes[pos + 2]! << 8) | bytes[pos + 3]!);
}

function fail(why: string): never {
  throw new ProtocolError(`frame is not plain msgpack: ${why}`);
}
