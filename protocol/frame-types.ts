/**
 * Frame type ids. The wire format is data: these numbers never change once
 * released (a test pins them). Each WebSocket binary message carries one
 * msgpack array whose first element is one of these ids.
 *
 *   0x01–0x0f  handshake
 *   0x10–0x1f  stream frames (carry a stream id)
 *   0x20–0x2f  connection control frames
 */
export const FrameType = Object.freeze({
  HELLO: 0x01,
  WELCOME: 0x02,
  REQUEST: 0x10,
  RESPONSE: 0x11,
  DATA: 0x12,
  END: 0x13,
  RESET: 0x14,
  WINDOW_UPDATE: 0x15,
  PING: 0x20,
  PONG: 0x21,
  GOAWAY: 0x22,
});

export type FrameTypeId = (typeof FrameType)[keyof typeof FrameType];

/** Flat header list: name, value, name, value… (keeps order and repeats). */
export type HeaderList = string[];

/** Limits and identity each side announces in the handshake. */
export interface HandshakeInfo {
  /** Wire protocol version; see PROTOCOL_VERSION. */
  v: number;
  /** Software version of the sender (agent or server). */
  software: string;
  /** Most streams the sender accepts open at once. */
  maxStreams: number;
  /** Bytes of DATA the sender accepts per stream before its first WINDOW_UPDATE. */
  initialWindow: number;
  /** Largest encoded frame, in bytes, the sender accepts. */
  maxFrameSize: number;
  /** How often the sender pings, in ms. */
  heartbeatMs: number;
}

export interface HelloFrame extends HandshakeInfo {
  type: typeof FrameType.HELLO;
}

export interface WelcomeFrame extends HandshakeInfo {
  type: typeof FrameType.WELCOME;
  /** Server-assigned id of this connection, for logs and status. */
  connectionId: string;
}

export interface RequestFrame {
  type: typeof FrameType.REQUEST;
  streamId: number;
  method: string;
  /** Raw path and query relative to the tool, byte for byte (`/a%2Fb?x=1`). */
  path: string;
  headers: HeaderList;
  /** True when no body follows (no DATA, no END). */
  endStream: boolean;
}

export interface ResponseFrame {
  type: typeof FrameType.RESPONSE;
  streamId: number;
  status: number;
  headers: HeaderList;
  endStream: boolean;
}

export interface DataFrame {
  type: typeof FrameType.DATA;
  streamId: number;
  data: Uint8Array;
}

export interface EndFrame {
  type: typeof FrameType.END;
  streamId: number;
}

export interface ResetFrame {
  type: typeof FrameType.RESET;
  streamId: number;
  /** Wire value from ErrorCodes. */
  code: number;
  message: string;
}

export interface WindowUpdateFrame {
  type: typeof FrameType.WINDOW_UPDATE;
  streamId: number;
  increment: number;
}

export interface PingFrame {
  type: typeof FrameType.PING;
  id: number;
}

export interface PongFrame {
  type: typeof FrameType.PONG;
  id: number;
}

export interface GoawayFrame {
  type: typeof FrameType.GOAWAY;
  /** Highest stream id the sender will still process. */
  lastStreamId: number;
  code: number;
  message: string;
}

export type Frame =
  | HelloFrame
  | WelcomeFrame
  | RequestFrame
  | ResponseFrame
  | DataFrame
  | EndFrame
  | ResetFrame
  | WindowUpdateFrame
  | PingFrame
  | PongFrame
  | GoawayFrame;

export type StreamFrame = RequestFrame | ResponseFrame | DataFrame | EndFrame | ResetFrame | WindowUpdateFrame;
