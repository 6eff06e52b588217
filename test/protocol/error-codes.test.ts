import { describe, expect, it } from 'vitest';
import { CloseCodes, ErrorCodes, errorCodeFromWire, type ErrorCodeName } from '../../protocol/error-codes.js';
import { ProtocolError, TunnelError, tunnelError } from '../../protocol/tunnel-error.js';

/**
 * The one table, restated. A change here is a change to the wire (wire), to
 * what callers of the ingress see (status, error) or to retry behaviour
 * (retryable): it must be deliberate.
 */
const EXPECTED: Record<ErrorCodeName, { wire: number; status: number; error: string; retryable: boolean }> = {
  NO_ERROR: { wire: 0, status: 200, error: 'no_error', retryable: false },
  PROTOCOL: { wire: 1, status: 502, error: 'protocol_error', retryable: false },
  FLOW_CONTROL: { wire: 2, status: 502, error: 'protocol_error', retryable: false },
  FRAME_TOO_LARGE: { wire: 3, status: 502, error: 'protocol_error', retryable: false },
  STREAM_CLOSED: { wire: 4, status: 502, error: 'protocol_error', retryable: false },
  CANCEL: { wire: 5, status: 499, error: 'cancelled', retryable: false },
  UNAUTHORIZED: { wire: 10, status: 401, error: 'unauthorized', retryable: false },
  UNKNOWN_CLIENT: { wire: 11, status: 404, error: 'unknown_client', retryable: false },
  AGENT_OFFLINE: { wire: 12, status: 503, error: 'agent_offline', retryable: true },
  FORBIDDEN_BY_AGENT: { wire: 13, status: 403, error: 'forbidden_by_agent', retryable: false },
  UPSTREAM_UNREACHABLE: { wire: 14, status: 502, error: 'upstream_unreachable', retryable: true },
  TUNNEL_LOST: { wire: 15, status: 502, error: 'tunnel_lost', retryable: true },
  UPSTREAM_TIMEOUT: { wire: 16, status: 504, error: 'upstream_timeout', retryable: true },
  BODY_TOO_LARGE: { wire: 17, status: 413, error: 'body_too_large', retryable: false },
  HEADERS_TOO_LARGE: { wire: 18, status: 431, error: 'headers_too_large', retryable: false },
  TOO_MANY_STREAMS: { wire: 19, status: 429, error: 'too_many_streams', retryable: true },
  GOING_AWAY: { wire: 20, status: 503, error: 'agent_offline', retryable: true },
  INTERNAL: { wire: 21, status: 500, error: 'internal_error', retryable: false },
  BAD_REQUEST: { wire: 22, status: 400, error: 'bad_request', retryable: false },
  HEARTBEAT_TIMEOUT: { wire: 23, status: 502, error: 'tunnel_lost', retryable: true },
  HANDSHAKE: { wire: 24, status: 502, error: 'protocol_error', retryable: false },
  SERVER_DRAINING: { wire: 25, status: 503, error: 'server_draining', retryable: true },
  FLOOD: { wire: 26, status: 502, error: 'protocol_error', retryable: false },
  TOO_MANY_AUTH_FAILURES: { wire: 30, status: 429, error: 'too_many_auth_failures', retryable: true },
  UNKNOWN_API_KEY: { wire: 31, status: 404, error: 'unknown_api_key', retryable: false },
};

const names = Object.keys(ErrorCodes) as ErrorCodeName[];

describe('ErrorCodes', () => {
  it('has exactly the codes this test knows', () => {
    expect(names.sort()).toStrictEqual((Object.keys(EXPECTED) as ErrorCodeName[]).sort());
  });

  it('pins the wire value of every code', () => {
    const wires = Object.fromEntries(names.map((name) => [name, ErrorCodes[name].wire]));
    expect(wires).toStrictEqual(Object.fromEntries(names.map((name) => [name, EXPECTED[name].wire])));
  });

  it('gives every code a distinct wire value', () => {
    const wires = names.map((name) => ErrorCodes[name].wire);
    expect(new Set(wires).size).toBe(wires.length);
  });

  it('keeps wire values in the 16 bits RESET and GOAWAY frames carry', () => {
    for (const name of names) {
      expect(Number.isInteger(ErrorCodes[name].wire)).toBe(true);
      expect(ErrorCodes[name].wire).toBeGreaterThanOrEqual(0);
      expect(ErrorCodes[name].wire).toBeLessThanOrEqual(0xffff);
    }
  });

  describe.each(names)('%s', (name) => {
    const info = ErrorCodes[name];
    const expected = EXPECTED[name];

    it(`maps to HTTP ${expected.status} with error slug "${expected.error}"`, () => {
      expect(info.status).toBe(expected.status);
      expect(info.error).toBe(expected.error);
    });

    it(`is ${expected.retryable ? '' : 'not '}retryable`, () => {
      expect(info.retryable).toBe(expected.retryable);
    });

    it('has the code POSTERN_ERR_<name>, a lower-case slug and a message', () => {
      expect(info.code).toBe(`POSTERN_ERR_${name}`);
      expect(info.error).toMatch(/^[a-z_]+$/);
      expect(info.message.length).toBeGreaterThan(0);
    });

    it('is found again by its wire value', () => {
      expect(errorCodeFromWire(info.wire)).toBe(info);
    });

    it('is frozen', () => {
      expect(Object.isFrozen(info)).toBe(true);
    });

    it('gives a TunnelError its code, retryable flag and default message', () => {
      const err = tunnelError(name);
      expect(err).toBeInstanceOf(TunnelError);
      expect(err.info).toBe(info);
      expect(err.code).toBe(info.code);
      expect(err.retryable).toBe(info.retryable);
      expect(err.message).toBe(info.message);
    });
  });

  it('answers only 4xx and 5xx statuses for every failure', () => {
    for (const name of names) {
      if (name === 'NO_ERROR') continue;
      expect(ErrorCodes[name].status).toBeGreaterThanOrEqual(400);
      expect(ErrorCodes[name].status).toBeLessThanOrEqual(599);
    }
  });
});

describe('errorCodeFromWire', () => {
  it.each([6, 9, 27, 999, 0xffff, -1, 1.5])('maps unknown wire value %s to INTERNAL', (wire) => {
    expect(errorCodeFromWire(wire)).toBe(ErrorCodes.INTERNAL);
  });
});

describe('CloseCodes', () => {
  it('pins the WebSocket close codes', () => {
    expect({ ...CloseCodes }).toStrictEqual({
      NORMAL: 1000,
      GOING_AWAY: 1001,
      PROTOCOL_ERROR: 1002,
      TUNNEL_PROTOCOL_ERROR: 4002,
      REVOKED: 4003,
      HEARTBEAT_TIMEOUT: 4008,
      HANDSHAKE_FAILED: 4009,
      SHUTDOWN: 4010,
      FLOOD: 4011,
      INTERNAL_ERROR: 1011,
    });
  });

  it('keeps Postern codes in the 4000–4999 application range', () => {
    for (const [name, code] of Object.entries(CloseCodes)) {
      if (['NORMAL', 'GOING_AWAY', 'PROTOCOL_ERROR', 'INTERNAL_ERROR'].includes(name)) continue;
      expect(code).toBeGreaterThanOrEqual(4000);
      expect(code).toBeLessThanOrEqual(4999);
    }
  });
});

describe('ProtocolError', () => {
  it('is a TunnelError with PROTOCOL by default and keeps its cause', () => {
    const cause = new Error('root');
    const err = new ProtocolError('bad frame', undefined, { cause });
    expect(err).toBeInstanceOf(TunnelError);
    expect(err.name).toBe('ProtocolError');
    expect(err.info).toBe(ErrorCodes.PROTOCOL);
    expect(err.message).toBe('bad frame');
    expect(err.cause).toBe(cause);
  });
});
