import { ErrorCodes } from './error-codes.js';
import { ProtocolError } from './tunnel-error.js';

/**
 * Stream lifecycle, as HTTP/2's without the idle/reserved states (a stream is
 * born open by its REQUEST frame).
 *
 *                  open
 *        send END /    \ recv END
 *                v      v
 *   half-closed-local  half-closed-remote
 *        recv END \    / send END
 *                  v  v
 *                 closed   <- RESET sent or received, from any state
 */
export type StreamState = 'open' | 'half-closed-local' | 'half-closed-remote' | 'closed';

export type StreamEvent = 'send-end' | 'recv-end' | 'send-reset' | 'recv-reset';

/**
 * The one transition function. Illegal moves throw: a `recv-*` from a state
 * that forbids it is the peer's fault (ProtocolError, closes the connection);
 * a `send-*` is ours (TypeError, a bug).
 */
export function transition(state: StreamState, event: StreamEvent): StreamState {
  switch (event) {
    case 'send-reset':
    case 'recv-reset':
      if (state === 'closed') break;
      return 'closed';
    case 'send-end':
      if (state === 'open') return 'half-closed-local';
      if (state === 'half-closed-remote') return 'closed';
      break;
    case 'recv-end':
      if (state === 'open') return 'half-closed-remote';
      if (state === 'half-closed-local') return 'closed';
      break;
  }
  if (event.startsWith('recv')) {
    throw new ProtocolError(`stream received ${event} in state ${state}`, ErrorCodes.STREAM_CLOSED);
  }
  throw new TypeError(`illegal stream transition: ${event} in state ${state}`);
}

/** Whether the peer may still send DATA/END in this state. */
export function canReceiveData(state: StreamState): boolean {
  return state === 'open' || state === 'half-closed-local';
}

/** Whether we may still send DATA/END in this state. */
export function canSendData(state: StreamState): boolean {
  return state === 'open' || state === 'half-closed-remote';
}
