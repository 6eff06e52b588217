import { connect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import WebSocket, { WebSocketServer } from 'ws';
import { CLIENT_ID_HEADER } from '../../protocol/headers.js';
import { decodeFrame, encodeFrame } from '../../protocol/codec.js';
import { FrameType, type Frame, type HandshakeInfo } from '../../protocol/frame-types.js';
import { Defaults, PROTOCOL_VERSION } from '../../protocol/handshake.js';
import type { Cleanup } from './cleanup.js';
import { within } from './wait.js';

/**
 * Hand-made tunnel peers for abuse tests: a raw agent (a `ws` client that
 * speaks the protocol only as far as the test says), a raw TCP client that
 * does the WebSocket upgrade by hand (for half-sent frames), and a fake
 * server a real agent dials. Everything is registered with the Cleanup.
 */

export interface Creds {
  clientId: string;
  clientToken: string;
}

export function helloInfo(heartbeatMs: number = Defaults.heartbeatMs): HandshakeInfo {
  return {
    v: PROTOCOL_VERSION,
    software: 'raw-test-peer',
    maxStreams: 16,
    initialWindow: Defaults.initialWindow,
    maxFrameSize: Defaults.maxFrameSize,
    heartbeatMs,
  };
}

export interface RawAgent {
  ws: WebSocket;
  /** Set once WELCOME arrived. */
  connectionId: string | undefined;
  /** Frames received after WELCOME (the server's REQUESTs, PINGs, …). */
  frames: Frame[];
  /** Resolves with the close code and reason the server closed with (1006 when dropped without a close frame). */
  closed: Promise<{ code: number; reason: string }>;
  /** Sends one binary message per entry; `ws` batches them into as few writes as it can. */
  sendAll(messages: Iterable<Uint8Array>): void;
}

/** Opens /v1/tunnel as client `creds`; with `handshake` (default) sends HELLO and waits for WELCOME. */
export async function rawAgent(cleanup: Cleanup, publicUrl: string, creds: Creds, opts: { handshake?: boolean } = {}): Promise<RawAgent> {
  const ws = new WebSocket(`${publicUrl.replace(/^http/, 'ws')}/v1/tunnel`, {
    headers: { authorization: `Bearer ${creds.clientToken}`, [CLIENT_ID_HEADER]: creds.clientId },
    maxPayload: 64 * 1024 * 1024,
  });
  cleanup.add(() => ws.terminate());
  ws.on('error', () => {}); // the server cutting an abuser off is the expected outcome
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() })),
  );
  await within(new Promise<void>((resolve, reject) => ws.once('open', resolve).once('error', reject)), 10_000, 'the raw agent to connect');
  const raw: RawAgent = {
    ws,
    connectionId: undefined,
    frames: [],
    closed,
    sendAll(messages) {
      for (const m of messages) ws.send(m, { binary: true });
    },
  };
  if (opts.handshake === false) return raw;
  const welcome = new Promise<Frame>((resolve) => ws.once('message', (data: Buffer) => resolve(decodeFrame(data, Defaults.maxFrameSize))));
  ws.send(encodeFrame({ type: FrameType.HELLO, ...helloInfo() }));
  const frame = await within(welcome, 10_000, 'WELCOME');
  if (frame.type !== FrameType.WELCOME) throw new Error(`expected WELCOME, got frame type ${frame.type}`);
  raw.connectionId = frame.connectionId;
  ws.on('message', (data: Buffer) => {
    try {
      raw.frames.push(decodeFrame(data, 64 * 1024 * 1024));
    } catch {
      // the test only looks at frames it understands
    }
  });
  return raw;
}

/** A client WebSocket frame (masked, as RFC 6455 requires of clients; a zero mask). */
export function clientFrame(opcode: number, payload: Uint8Array, fin = true): Buffer {
  const n = payload.length;
  const len = n < 126 ? Buffer.from([0x80 | n]) : n < 0x10000 ? Buffer.from([0x80 | 126, n >> 8, n & 0xff]) : (() => {
    const b = Buffer.alloc(9);
    b[0] = 0x80 | 127;
    b.writeBigUInt64BE(BigInt(n), 1);
    return b;
  })();
  return Buffer.concat([Buffer.from([(fin ? 0x80 : 0) | opcode]), len, Buffer.alloc(4), payload]);
}

export interface RawSocket {
  socket: Socket;
  /** Resolves with the code of the first close frame the server sends. */
  closeFrame: Promise<number>;
  /** Resolves when the server ends or drops the TCP connection. */
  ended: Promise<void>;
}

/**
 * The WebSocket upgrade of /v1/tunnel done by hand over TCP, so a test can
 * send half a frame and then nothing (a `ws` client always finishes its
 * frames and answers close frames).
 */
export async function rawUpgrade(cleanup: Cleanup, publicUrl: string, creds: Creds): Promise<RawSocket> {
  const url = new URL(publicUrl);
  const socket = connect(Number(url.port), url.hostname);
  cleanup.add(() => socket.destroy());
  socket.on('error', () => {});
  const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await within(new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject)), 10_000, 'TCP connect');
  socket.write(
    `GET /v1/tunnel HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
      `Authorization: Bearer ${creds.clientToken}\r\nX-Postern-Client-Id: ${creds.clientId}\r\n\r\n`,
  );
  let buf = Buffer.alloc(0);
  let upgraded = false;
  let resolveHead!: (ok: boolean) => void;
  const head = new Promise<boolean>((resolve) => (resolveHead = resolve));
  let resolveClose!: (code: number) => void;
  const closeFrame = new Promise<number>((resolve) => (resolveClose = resolve));
  socket.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    if (!upgraded) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      upgraded = true;
      resolveHead(buf.subarray(0, end).toString().startsWith('HTTP/1.1 101'));
      buf = buf.subarray(end + 4);
    }
    // Server frames are unmasked; only the close frame matters here.
    while (buf.length >= 2) {
      const len = buf[1]! & 0x7f;
      const headLen = len === 126 ? 4 : len === 127 ? 10 : 2;
      const payloadLen = len === 126 ? buf.readUInt16BE(2) : len === 127 ? Number(buf.readBigUInt64BE(2)) : len;
      if (buf.length < headLen + payloadLen) return;
      if ((buf[0]! & 0x0f) === 0x8) resolveClose(payloadLen >= 2 ? buf.readUInt16BE(headLen) : 1005);
      buf = buf.subarray(headLen + payloadLen);
    }
  });
  if (!(await within(head, 10_000, 'the 101 answer'))) throw new Error('the server refused the upgrade');
  return { socket, closeFrame, ended };
}

export interface FakeServer {
  /** `http://127.0.0.1:<port>`: what the agent gets as PROXY_URL. */
  url: string;
  /** Close code and reason of each connection, in order, as the agent closed them. */
  closes: Promise<{ code: number; reason: string }>[];
}

/**
 * A WebSocket server on /v1/tunnel that a real agent dials. `onConnection`
 * gets the n-th connection (0-based) once its HELLO arrived, and plays the
 * malicious (or honest) server.
 */
export async function fakeServer(cleanup: Cleanup, onConnection: (ws: WebSocket, n: number, hello: Frame) => void): Promise<FakeServer> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/v1/tunnel', maxPayload: 64 * 1024 * 1024 });
  cleanup.add(
    () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => resolve());
      }),
  );
  await new Promise<void>((resolve) => wss.once('listening', resolve));
  const closes: FakeServer['closes'] = [];
  wss.on('connection', (ws) => {
    const n = closes.length;
    ws.on('error', () => {});
    closes.push(new Promise((resolve) => ws.once('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() }))));
    ws.once('message', (data: Buffer) => onConnection(ws, n, decodeFrame(data, Defaults.maxFrameSize)));
  });
  const { port } = wss.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, closes };
}

/** WELCOME as a server would send it. */
export function welcomeFrame(connectionId: string, heartbeatMs: number = Defaults.heartbeatMs): Uint8Array {
  return encodeFrame({ type: FrameType.WELCOME, ...helloInfo(heartbeatMs), software: 'fake-server', connectionId });
}
