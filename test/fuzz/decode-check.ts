import { decodeFrame, encodeFrame } from '../../protocol/codec.js';
import { FrameType, type Frame } from '../../protocol/frame-types.js';
import { TunnelError } from '../../protocol/tunnel-error.js';

/** The largest frame size a server can be configured with (POSTERN_MAX_FRAME_SIZE). */
export const LARGEST_FRAME = 64 * 1024 * 1024;

const KNOWN_GOOD = encodeFrame({ type: FrameType.REQUEST, streamId: 3, method: 'GET', path: '/ok', headers: ['a', 'b'], endStream: true });

/**
 * Decodes `bytes` and checks the codec's contract: it returns a frame that
 * re-encodes to the same frame (so every field is inside the protocol's
 * domain), or throws a TunnelError (ProtocolError); anything else thrown is
 * a bug and is rethrown with its type named. Afterwards a known-good frame
 * must still decode: the decoder keeps module state between calls, which a
 * hostile input must not leave poisoned.
 */
export function decodeOutcome(bytes: Uint8Array, maxFrameSize: number = LARGEST_FRAME): Frame | TunnelError {
  let outcome: Frame | TunnelError;
  try {
    outcome = decodeFrame(bytes, maxFrameSize);
  } catch (err) {
    if (!(err instanceof TunnelError)) {
      const name = (err as Error)?.constructor?.name ?? typeof err;
      throw new Error(`decodeFrame threw ${name}, not a TunnelError: ${String((err as Error)?.message ?? err)}`, { cause: err });
    }
    outcome = err;
  }
  if (!(outcome instanceof TunnelError)) checkRoundTrip(outcome);
  const good = decodeFrame(KNOWN_GOOD, 1024);
  if (good.type !== FrameType.REQUEST || good.path !== '/ok') throw new Error('a known-good frame no longer decodes after this input');
  return outcome;
}

function checkRoundTrip(frame: Frame): void {
  if (!Object.values(FrameType).includes(frame.type)) throw new Error(`decoded an unknown frame type ${frame.type}`);
  const again = decodeFrame(encodeFrame(frame), LARGEST_FRAME);
  const a = JSON.stringify(normalize(frame));
  const b = JSON.stringify(normalize(again));
  if (a !== b) throw new Error(`decoded frame does not survive a round trip:\n${a}\n${b}`);
}

function normalize(frame: Frame): unknown {
  return frame.type === FrameType.DATA ? { ...frame, data: Buffer.from(frame.data).toString('hex') } : frame;
}
