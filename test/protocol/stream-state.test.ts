import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../protocol/error-codes.js';
import {
  canReceiveData,
  canSendData,
  transition,
  type StreamEvent,
  type StreamState,
} from '../../protocol/stream-state.js';
import { ProtocolError } from '../../protocol/tunnel-error.js';

const STATES: StreamState[] = ['open', 'half-closed-local', 'half-closed-remote', 'closed'];
const EVENTS: StreamEvent[] = ['send-end', 'recv-end', 'send-reset', 'recv-reset'];

/** Every (state, event) pair: the next state, or 'illegal'. */
const TABLE: Record<StreamState, Record<StreamEvent, StreamState | 'illegal'>> = {
  open: {
    'send-end': 'half-closed-local',
    'recv-end': 'half-closed-remote',
    'send-reset': 'closed',
    'recv-reset': 'closed',
  },
  'half-closed-local': {
    'send-end': 'illegal',
    'recv-end': 'closed',
    'send-reset': 'closed',
    'recv-reset': 'closed',
  },
  'half-closed-remote': {
    'send-end': 'closed',
    'recv-end': 'illegal',
    'send-reset': 'closed',
    'recv-reset': 'closed',
  },
  closed: {
    'send-end': 'illegal',
    'recv-end': 'illegal',
    'send-reset': 'illegal',
    'recv-reset': 'illegal',
  },
};

const pairs = STATES.flatMap((state) => EVENTS.map((event) => [state, event, TABLE[state][event]] as const));

describe('transition', () => {
  it('has a table entry for all 16 (state, event) pairs', () => {
    expect(pairs).toHaveLength(16);
  });

  it.each(pairs.filter(([, , next]) => next !== 'illegal'))('%s + %s → %s', (state, event, next) => {
    expect(transition(state, event)).toBe(next);
  });

  it.each(pairs.filter(([, event, next]) => next === 'illegal' && event.startsWith('recv')))(
    'refuses %s + %s as the peer’s fault (ProtocolError, STREAM_CLOSED)',
    (state, event) => {
      let thrown: unknown;
      try {
        transition(state, event);
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(ProtocolError);
      expect((thrown as ProtocolError).info).toBe(ErrorCodes.STREAM_CLOSED);
      expect((thrown as ProtocolError).message).toContain(`${event} in state ${state}`);
    },
  );

  it.each(pairs.filter(([, event, next]) => next === 'illegal' && event.startsWith('send')))(
    'refuses %s + %s as our own bug (TypeError)',
    (state, event) => {
      let thrown: unknown;
      try {
        transition(state, event);
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(TypeError);
      expect(thrown).not.toBeInstanceOf(ProtocolError);
      expect((thrown as TypeError).message).toContain(`${event} in state ${state}`);
    },
  );

  it('reaches closed from open by END both ways, in either order', () => {
    expect(transition(transition('open', 'send-end'), 'recv-end')).toBe('closed');
    expect(transition(transition('open', 'recv-end'), 'send-end')).toBe('closed');
  });
});

describe('canReceiveData / canSendData', () => {
  it.each([
    ['open', true, true],
    ['half-closed-local', true, false],
    ['half-closed-remote', false, true],
    ['closed', false, false],
  ] as const)('in %s: receive %s, send %s', (state, receive, send) => {
    expect(canReceiveData(state)).toBe(receive);
    expect(canSendData(state)).toBe(send);
  });
});
