/**
 * The one table of Postern error codes.
 *
 * Every failure that crosses a process boundary has a code here: the numeric
 * `wire` value travels in RESET and GOAWAY frames, `error` is the JSON slug
 * the ingress answers with, `status` is the HTTP status it maps to, and
 * `retryable` tells the reconnect loop and the ingress whether trying again
 * can help. The ingress, the agent and the docs all read this table; nothing
 * else maps codes to statuses.
 */
export interface ErrorCodeInfo {
  /** Stable string code, e.g. `POSTERN_ERR_TUNNEL_LOST`. */
  readonly code: string;
  /** Numeric value carried in RESET / GOAWAY frames. Pinned by a test. */
  readonly wire: number;
  /** JSON `error` slug answered by the ingress. */
  readonly error: string;
  /** HTTP status the ingress answers with. */
  readonly status: number;
  /** Whether retrying the operation (on another connection, later) can help. */
  readonly retryable: boolean;
  /** Human message used when nothing more precise is known. */
  readonly message: string;
}

function def(
  code: string,
  wire: number,
  error: string,
  status: number,
  retryable: boolean,
  message: string,
): ErrorCodeInfo {
  return Object.freeze({ code, wire, error, status, retryable, message });
}

export const ErrorCodes = Object.freeze({
  NO_ERROR: def('POSTERN_ERR_NO_ERROR', 0, 'no_error', 200, false, 'no error'),
  PROTOCOL: def('POSTERN_ERR_PROTOCOL', 1, 'protocol_error', 502, false, 'the peer broke the tunnel protocol'),
  FLOW_CONTROL: def('POSTERN_ERR_FLOW_CONTROL', 2, 'protocol_error', 502, false, 'the peer sent more than its window allowed'),
  FRAME_TOO_LARGE: def('POSTERN_ERR_FRAME_TOO_LARGE', 3, 'protocol_error', 502, false, 'a frame exceeded the negotiated maximum size'),
  STREAM_CLOSED: def('POSTERN_ERR_STREAM_CLOSED', 4, 'protocol_error', 502, false, 'a frame arrived for a closed stream'),
  CANCEL: def('POSTERN_ERR_CANCEL', 5, 'cancelled', 499, false, 'the caller went away'),
  UNAUTHORIZED: def('POSTERN_ERR_UNAUTHORIZED', 10, 'unauthorized', 401, false, 'missing or wrong credentials'),
  UNKNOWN_CLIENT: def('POSTERN_ERR_UNKNOWN_CLIENT', 11, 'unknown_client', 404, false, 'no such client'),
  AGENT_OFFLINE: def('POSTERN_ERR_AGENT_OFFLINE', 12, 'agent_offline', 503, true, 'no agent of this client is connected'),
  FORBIDDEN_BY_AGENT: def('POSTERN_ERR_FORBIDDEN_BY_AGENT', 13, 'forbidden_by_agent', 403, false, "the agent's policy refused this request"),
  UPSTREAM_UNREACHABLE: def('POSTERN_ERR_UPSTREAM_UNREACHABLE', 14, 'upstream_unreachable', 502, true, 'the agent could not reach the tool'),
  TUNNEL_LOST: def('POSTERN_ERR_TUNNEL_LOST', 15, 'tunnel_lost', 502, true, 'the tunnel dropped before the response was complete'),
  UPSTREAM_TIMEOUT: def('POSTERN_ERR_UPSTREAM_TIMEOUT', 16, 'upstream_timeout', 504, true, 'the tool sent no response head in time'),
  BODY_TOO_LARGE: def('POSTERN_ERR_BODY_TOO_LARGE', 17, 'body_too_large', 413, false, 'the request body is over the configured limit'),
  HEADERS_TOO_LARGE: def('POSTERN_ERR_HEADERS_TOO_LARGE', 18, 'headers_too_large', 431, false, 'the request headers are over the configured limit'),
  TOO_MANY_STREAMS: def('POSTERN_ERR_TOO_MANY_STREAMS', 19, 'too_many_streams', 429, true, "the client's concurrent-stream limit is reached"),
  GOING_AWAY: def('POSTERN_ERR_GOING_AWAY', 20, 'agent_offline', 503, true, 'the connection is draining'),
  INTERNAL: def('POSTERN_ERR_INTERNAL', 21, 'internal_error', 500, false, 'internal error'),
  BAD_REQUEST: def('POSTERN_ERR_BAD_REQUEST', 22, 'bad_request', 400, false, 'the request is malformed'),
  HEARTBEAT_TIMEOUT: def('POSTERN_ERR_HEARTBEAT_TIMEOUT', 23, 'tunnel_lost', 502, true, 'the peer stopped answering heartbeats'),
  HANDSHAKE: def('POSTERN_ERR_HANDSHAKE', 24, 'protocol_error', 502, false, 'the handshake failed'),
  SERVER_DRAINING: def('POSTERN_ERR_SERVER_DRAINING', 25, 'server_draining', 503, true, 'this server is shutting down; send the request again'),
  FLOOD: def('POSTERN_ERR_FLOOD', 26, 'protocol_error', 502, false, 'the peer sent too many frames that do no work, or did not read the answers'),
  // 30+: server-side refusals that never travel in a frame (wires kept apart from frame codes).
  TOO_MANY_AUTH_FAILURES: def('POSTERN_ERR_TOO_MANY_AUTH_FAILURES', 30, 'too_many_auth_failures', 429, true, 'too many failed authentications from this address; try again after retry-after seconds'),
  UNKNOWN_API_KEY: def('POSTERN_ERR_UNKNOWN_API_KEY', 31, 'unknown_api_key', 404, false, 'no such API key for this client'),
});

export type ErrorCodeName = keyof typeof ErrorCodes;

const byWire = new Map<number, ErrorCodeInfo>();
for (const info of Object.values(ErrorCodes)) byWire.set(info.wire, info);

/**
 * Looks up a code by its wire value. Unknown values (a newer peer) map to
 * INTERNAL so that a RESET is never dropped for carrying a code we do not know.
 */
export function errorCodeFromWire(wire: number): ErrorCodeInfo {
  return byWire.get(wire) ?? ErrorCodes.INTERNAL;
}

/** WebSocket close codes Postern uses (4000–4999 is the application range). */
export const CloseCodes = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  /** RFC 6455: endpoint received data it cannot accept. */
  PROTOCOL_ERROR: 1002,
  /** Postern: a frame broke the tunnel protocol. */
  TUNNEL_PROTOCOL_ERROR: 4002,
  /** Postern: client revoked or token rotated. */
  REVOKED: 4003,
  /** Postern: heartbeats stopped. */
  HEARTBEAT_TIMEOUT: 4008,
  /** Postern: handshake not completed in time or invalid. */
  HANDSHAKE_FAILED: 4009,
  /** Postern: server shutting down. */
  SHUTDOWN: 4010,
  /** Postern: the peer flooded the tunnel with frames that do no work (see frame-budget.ts). */
  FLOOD: 4011,
  /** RFC 6455: this side hit an unexpected condition (a bug), not the peer's fault. */
  INTERNAL_ERROR: 1011,
});
