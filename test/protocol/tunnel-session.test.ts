import type { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeFrame } from '../../protocol/codec.js';
import { CloseCodes, ErrorCodes, type ErrorCodeInfo } from '../../protocol/error-codes.js';
import { FrameType, type GoawayFrame, type RequestFrame, type ResponseFrame } from '../../protocol/frame-types.js';
import { ProtocolError, TunnelError } from '../../protocol/tunnel-error.js';
import type { TunnelStream } from '../../protocol/tunnel-stream.js';
import {
  createLoneSession,
  createSessionPair,
  type MemoryTransport,
  patternBytes,
  readAll,
  settle,
  takeCallbackErrors,
  TEST_WINDOW,
} from './session-pair.js';

// A session must never throw into its transport's callbacks: on a real
// socket that is an uncaught exception and the process dies.
afterEach(() => {
  expect(takeCallbackErrors()).toStrictEqual([]);
});

const KiB = 1024;
const MiB = 1024 * KiB;

/** Raw frames to inject with session.receive(). */
const raw = {
  request: (streamId: number, endStream = false): Uint8Array =>
    encodeFrame({ type: FrameType.REQUEST, streamId, method: 'POST', path: '/x', headers: [], endStream }),
  response: (streamId: number, endStream = false, status = 200): Uint8Array =>
    encodeFrame({ type: FrameType.RESPONSE, streamId, status, headers: [], endStream }),
  data: (streamId: number, data: number | Uint8Array): Uint8Array =>
    encodeFrame({ type: FrameType.DATA, streamId, data: typeof data === 'number' ? new Uint8Array(data) : data }),
  end: (streamId: number): Uint8Array => encodeFrame({ type: FrameType.END, streamId }),
  reset: (streamId: number, code: number, message = ''): Uint8Array =>
    encodeFrame({ type: FrameType.RESET, streamId, code, message }),
  windowUpdate: (streamId: number, increment: number): Uint8Array =>
    encodeFrame({ type: FrameType.WINDOW_UPDATE, streamId, increment }),
  ping: (id: number): Uint8Array => encodeFrame({ type: FrameType.PING, id }),
  pong: (id: number): Uint8Array => encodeFrame({ type: FrameType.PONG, id }),
  goaway: (lastStreamId = 0, message = 'draining'): Uint8Array =>
    encodeFrame({ type: FrameType.GOAWAY, lastStreamId, code: ErrorCodes.GOING_AWAY.wire, message }),
};

/** Bytes of DATA a transport carried, optionally for one stream. */
function dataBytes(transport: MemoryTransport, streamId?: number): number {
  return transport
    .framesOfType(FrameType.DATA)
    .filter((f) => streamId === undefined || f.streamId === streamId)
    .reduce((sum, f) => sum + f.data.byteLength, 0);
}

/** Expects a lone session to have closed once, with `info`, and its transport with `code`. */
function expectClosed(
  lone: ReturnType<typeof createLoneSession>,
  info: ErrorCodeInfo,
  code: number = CloseCodes.TUNNEL_PROTOCOL_ERROR,
  message?: RegExp,
): void {
  expect(lone.session.closed).toBe(true);
  expect(lone.closed).toHaveLength(1);
  const err = lone.closed[0];
  expect(err).toBeInstanceOf(TunnelError);
  expect(err!.info).toBe(info);
  if (message) expect(err!.message).toMatch(message);
  expect(lone.transport.closedWith?.code).toBe(code);
}

/** Collects onReset errors of a stream. */
function watchResets(stream: TunnelStream): TunnelError[] {
  const errors: TunnelError[] = [];
  stream.onReset = (err) => errors.push(err);
  return errors;
}

/**
 * Reads a body with paused-mode read() for up to `rounds` event-loop turns;
 * never hangs, so a stalled stream fails an assertion instead of timing out.
 */
async function readFor(body: Readable, rounds = 50): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for (let i = 0; i < rounds && !body.readableEnded; i++) {
    let chunk: Buffer | null;
    while ((chunk = body.read() as Buffer | null) !== null) chunks.push(chunk);
    await settle(1);
  }
  return Buffer.concat(chunks);
}

/** readAll, or 'stalled' when the body has not ended after `ms` of real time. */
async function readAllWithin(body: Readable, ms: number): Promise<Uint8Array | 'stalled'> {
  let timer: NodeJS.Timeout | undefined;
  const stalled = new Promise<'stalled'>((resolve) => {
    timer = setTimeout(() => resolve('stalled'), ms);
  });
  try {
    return await Promise.race([readAll(body), stalled]);
  } finally {
    clearTimeout(timer);
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

describe('TunnelSession request/response', () => {
  it('carries a request with body to the agent and the response with body back', async () => {
    const heads: RequestFrame[] = [];
    const agentStreams: TunnelStream[] = [];
    const p = createSessionPair({
      agent: {
        options: {
          onStream: (stream, head) => {
            heads.push(head);
            agentStreams.push(stream);
          },
        },
      },
    });
    const requestBody = patternBytes(10_000, 1);
    const responseBody = patternBytes(20_000, 2);

    const stream = p.server.openStream(
      'POST',
      '/echo/a%2Fb?x=1',
      ['content-type', 'application/octet-stream', 'x-tag', 'a', 'x-tag', 'b'],
      false,
    );
    expect(stream.id).toBe(1);
    const responses: ResponseFrame[] = [];
    stream.onResponse = (head) => responses.push(head);
    stream.sink.end(requestBody);
    await settle();

    expect(heads).toHaveLength(1);
    expect(heads[0]).toMatchObject({
      streamId: 1,
      method: 'POST',
      path: '/echo/a%2Fb?x=1',
      headers: ['content-type', 'application/octet-stream', 'x-tag', 'a', 'x-tag', 'b'],
      endStream: false,
    });
    const agentStream = agentStreams[0]!;
    expect(agentStream.request).toBe(heads[0]);
    expect(sameBytes(await readAll(agentStream.body), requestBody)).toBe(true);

    agentStream.respond(201, ['content-type', 'text/plain', 'set-cookie', 'a=1', 'set-cookie', 'b=2'], false);
    agentStream.sink.end(responseBody);
    const received = await readAll(stream.body);

    expect(responses).toHaveLength(1);
    expect(responses[0]).toMatchObject({
      status: 201,
      headers: ['content-type', 'text/plain', 'set-cookie', 'a=1', 'set-cookie', 'b=2'],
      endStream: false,
    });
    expect(stream.response).toBe(responses[0]);
    expect(sameBytes(received, responseBody)).toBe(true);

    await settle();
    expect(stream.state).toBe('closed');
    expect(agentStream.state).toBe('closed');
    expect(p.server.activeStreams).toBe(0);
    expect(p.agent.activeStreams).toBe(0);
    expect(p.server.bytesOut).toBe(10_000);
    expect(p.server.bytesIn).toBe(20_000);
    expect(p.agent.bytesOut).toBe(20_000);
    expect(p.agent.bytesIn).toBe(10_000);
    expect(p.server.streamsOpened).toBe(1);
    expect(p.agent.streamsOpened).toBe(1);
    expect(p.server.closed || p.agent.closed).toBe(false);
  });

  it('carries a bodiless GET and a bodiless 204 with no DATA or END frames', async () => {
    const p = createSessionPair();
    const stream = p.server.openStream('GET', '/', [], true);
    expect(stream.state).toBe('half-closed-local');
    await settle();
    const agentStream = p.incoming[0]!;
    expect(agentStream.state).toBe('half-closed-remote');
    expect((await readAll(agentStream.body)).byteLength).toBe(0);

    agentStream.respond(204, [], true);
    expect(agentStream.state).toBe('closed');
    expect((await readAll(stream.body)).byteLength).toBe(0);
    expect(stream.response?.status).toBe(204);
    expect(stream.state).toBe('closed');
    expect(p.serverTransport.framesOfType(FrameType.DATA)).toHaveLength(0);
    expect(p.serverTransport.framesOfType(FrameType.END)).toHaveLength(0);
    expect(p.agentTransport.framesOfType(FrameType.END)).toHaveLength(0);
  });

  it('runs streams concurrently and keeps their bodies apart', async () => {
    const p = createSessionPair();
    const a = p.server.openStream('POST', '/a', [], false);
    const b = p.server.openStream('POST', '/b', [], false);
    expect([a.id, b.id]).toStrictEqual([1, 3]);
    const bodyA = patternBytes(30_000, 3);
    const bodyB = patternBytes(25_000, 4);
    a.sink.end(bodyA);
    b.sink.end(bodyB);
    await settle();
    const [inA, inB] = p.incoming;
    expect(inA!.request?.path).toBe('/a');
    expect(inB!.request?.path).toBe('/b');
    expect(sameBytes(await readAll(inA!.body), bodyA)).toBe(true);
    expect(sameBytes(await readAll(inB!.body), bodyB)).toBe(true);
  });

  it('opens odd stream ids on the server', () => {
    const lone = createLoneSession('server');
    const ids = [0, 1, 2].map(() => lone.session.openStream('GET', '/', [], true).id);
    expect(ids).toStrictEqual([1, 3, 5]);
  });

  it('cuts DATA into frames of at most 64 KiB', () => {
    const lone = createLoneSession('server', { limits: { peerInitialWindow: MiB } });
    const stream = lone.session.openStream('POST', '/', [], false);
    stream.sink.write(patternBytes(200 * KiB));
    const sizes = lone.transport.framesOfType(FrameType.DATA).map((f) => f.data.byteLength);
    expect(sizes).toStrictEqual([64 * KiB, 64 * KiB, 64 * KiB, 8 * KiB]);
  });

  it('cuts DATA to fit a small negotiated sendMaxFrameSize', () => {
    const lone = createLoneSession('server', { limits: { peerInitialWindow: MiB, sendMaxFrameSize: 16 * KiB } });
    const stream = lone.session.openStream('POST', '/', [], false);
    stream.sink.write(patternBytes(100 * KiB));
    const frames = lone.transport.framesOfType(FrameType.DATA);
    for (const f of frames) {
      expect(encodeFrame(f).byteLength).toBeLessThanOrEqual(16 * KiB);
    }
    expect(dataBytes(lone.transport)).toBe(100 * KiB);
  });

  it('resets a stream with INTERNAL when this side accepts no streams', () => {
    const lone = createLoneSession('server');
    lone.session.receive(raw.request(2));
    const resets = lone.transport.framesOfType(FrameType.RESET);
    expect(resets).toStrictEqual([
      { type: FrameType.RESET, streamId: 2, code: ErrorCodes.INTERNAL.wire, message: 'this side accepts no streams' },
    ]);
    expect(lone.session.closed).toBe(false);
  });
});

describe('TunnelSession flow control', () => {
  it('stops the sender after exactly the initial window when the receiver never reads', async () => {
    const p = createSessionPair();
    const stream = p.server.openStream('POST', '/upload', [], false);
    const total = 300 * KiB;
    stream.sink.write(patternBytes(total));
    await settle(10);

    const agentStream = p.incoming[0]!;
    expect(dataBytes(p.serverTransport, stream.id)).toBe(TEST_WINDOW);
    expect(stream.sendWindow.available).toBe(0);
    expect(stream.queuedBytes).toBe(total - TEST_WINDOW);
    expect(agentStream.recvWindow.buffered).toBe(TEST_WINDOW);
    expect(agentStream.recvWindow.buffered).toBeLessThanOrEqual(agentStream.recvWindow.size);
    expect(p.agentTransport.framesOfType(FrameType.WINDOW_UPDATE)).toHaveLength(0);

    // Still stopped later: nothing leaks past the window.
    await settle(10);
    expect(dataBytes(p.serverTransport, stream.id)).toBe(TEST_WINDOW);
    expect(stream.queuedBytes).toBeGreaterThan(0);
    expect(p.server.closed || p.agent.closed).toBe(false);
  });

  // Regression: Node calls _read() *before* it removes the chunk asked for,
  // and not again until the next push; window must be returned after read()
  // or a sender out of credit stalls forever.
  it('delivers the rest of the body once a reader drains a full window (paused-mode read)', async () => {
    const p = createSessionPair();
    const stream = p.server.openStream('POST', '/upload', [], false);
    const body = patternBytes(300 * KiB, 5);
    stream.sink.end(body);
    await settle(10);
    const agentStream = p.incoming[0]!;
    expect(agentStream.recvWindow.buffered).toBe(TEST_WINDOW);

    const received = await readFor(agentStream.body);

    expect(received.byteLength).toBe(body.byteLength);
    expect(sameBytes(received, body)).toBe(true);
    expect(stream.queuedBytes).toBe(0);
  });

  // Same bug, on the response side with the default 256 KiB windows and a
  // `for await` reader started before any data arrives.
  it('delivers a response body four times the window to a for-await reader', async () => {
    const window = 256 * KiB;
    const p = createSessionPair({
      server: { limits: { peerInitialWindow: window }, options: { localInitialWindow: window } },
      agent: { limits: { peerInitialWindow: window }, options: { localInitialWindow: window } },
    });
    const stream = p.server.openStream('GET', '/download', [], true);
    const reading = readAllWithin(stream.body, 300);
    await settle();
    const body = patternBytes(4 * window, 6);
    p.incoming[0]!.respond(200, [], false);
    p.incoming[0]!.sink.end(body);

    const received = await reading;

    expect(received).not.toBe('stalled');
    expect(sameBytes(received as Uint8Array, body)).toBe(true);
  });

  it('delivers a body four times the window to a reader that is flowing before data arrives', async () => {
    const window = 256 * KiB;
    let received = 0;
    const p = createSessionPair({
      server: { limits: { peerInitialWindow: window } },
      agent: {
        options: {
          localInitialWindow: window,
          onStream: (s) => s.body.on('data', (chunk: Buffer) => (received += chunk.byteLength)),
        },
      },
    });
    const stream = p.server.openStream('POST', '/upload', [], false);
    stream.sink.end(patternBytes(4 * window));
    await settle(20);
    expect(received).toBe(4 * window);
    expect(p.agentTransport.framesOfType(FrameType.WINDOW_UPDATE).length).toBeGreaterThan(0);
  });

  it('sends exactly the credit a WINDOW_UPDATE grants, no more', () => {
    const lone = createLoneSession('server');
    const stream = lone.session.openStream('POST', '/', [], false);
    stream.sink.write(patternBytes(200 * KiB));
    expect(dataBytes(lone.transport)).toBe(TEST_WINDOW);

    lone.session.receive(raw.windowUpdate(stream.id, 10_000));
    expect(dataBytes(lone.transport)).toBe(TEST_WINDOW + 10_000);
    expect(stream.sendWindow.available).toBe(0);

    lone.session.receive(raw.windowUpdate(stream.id, 1));
    expect(dataBytes(lone.transport)).toBe(TEST_WINDOW + 10_001);
    expect(lone.session.closed).toBe(false);
  });

  it('completes the sink write callback only when its bytes reach the transport', async () => {
    const lone = createLoneSession('server');
    const stream = lone.session.openStream('POST', '/', [], false);
    let done = false;
    stream.sink.write(patternBytes(TEST_WINDOW + 1), () => (done = true));
    await settle(2);
    expect(done).toBe(false);
    lone.session.receive(raw.windowUpdate(stream.id, 1));
    await settle(2);
    expect(done).toBe(true);
  });

  it('closes the session with FLOW_CONTROL when the peer overruns the window', () => {
    const lone = createLoneSession('agent');
    lone.session.receive(raw.request(1));
    const errors = watchResets(lone.incoming[0]!);
    lone.session.receive(raw.data(1, TEST_WINDOW));
    expect(lone.session.closed).toBe(false);

    lone.session.receive(raw.data(1, 1));

    expectClosed(lone, ErrorCodes.FLOW_CONTROL, CloseCodes.TUNNEL_PROTOCOL_ERROR, /peer sent 1 bytes with only 0 bytes/);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.info).toBe(ErrorCodes.TUNNEL_LOST);
  });

  it('closes the session with FLOW_CONTROL when a first DATA is larger than the window', () => {
    const lone = createLoneSession('agent');
    lone.session.receive(raw.request(1));
    lone.session.receive(raw.data(1, TEST_WINDOW + 1));
    expectClosed(lone, ErrorCodes.FLOW_CONTROL);
  });

  it('closes the session with FLOW_CONTROL when a WINDOW_UPDATE overflows the send window', () => {
    const lone = createLoneSession('server');
    const stream = lone.session.openStream('POST', '/', [], false);
    lone.session.receive(raw.windowUpdate(stream.id, 0x7fffffff));
    expectClosed(lone, ErrorCodes.FLOW_CONTROL, CloseCodes.TUNNEL_PROTOCOL_ERROR, /overflows the window/);
  });
});

describe('TunnelSession scheduling', () => {
  it('sends a small stream’s data within a few frames while another stream has 4 MiB queued', async () => {
    const lone = createLoneSession('server', { limits: { peerInitialWindow: 8 * MiB } });
    const transport = lone.transport;
    transport.accumulate = true;
    const big = lone.session.openStream('POST', '/big', [], false);
    big.sink.write(patternBytes(4 * MiB));
    // The transport buffer is at the high-water mark: DATA waits for drain.
    const sentBeforeSmall = dataBytes(transport, big.id);
    expect(sentBeforeSmall).toBeLessThan(4 * MiB);
    expect(sentBeforeSmall).toBeLessThanOrEqual(256 * KiB + 64 * KiB);

    const small = lone.session.openStream('POST', '/small', [], false);
    small.sink.end(patternBytes(1000));
    const mark = transport.sent.length;
    expect(dataBytes(transport, small.id)).toBe(0);

    for (let round = 0; round < 200 && big.queuedBytes > 0; round++) {
      transport.drain();
      await settle(1);
    }

    const after = transport.sent.slice(mark).filter((f) => f.type === FrameType.DATA || f.type === FrameType.END);
    const firstSmall = after.findIndex((f) => f.streamId === small.id);
    expect(firstSmall).toBeGreaterThanOrEqual(0);
    expect(firstSmall).toBeLessThanOrEqual(2);
    const smallEnd = after.findIndex((f) => f.type === FrameType.END && f.streamId === small.id);
    expect(smallEnd).toBeGreaterThanOrEqual(0);
    expect(smallEnd).toBeLessThan(10);
    expect(dataBytes(transport, small.id)).toBe(1000);
    expect(dataBytes(transport, big.id)).toBe(4 * MiB);
    expect(big.queuedBytes).toBe(0);
  });

  it('sends no DATA while the transport buffer is at the high-water mark, and resumes on drain', async () => {
    const lone = createLoneSession('server');
    lone.transport.bufferedAmount = 256 * KiB;
    const stream = lone.session.openStream('POST', '/', [], false);
    stream.sink.write(patternBytes(1000));
    await settle(2);
    expect(dataBytes(lone.transport)).toBe(0);
    lone.transport.drain();
    await settle(2);
    expect(dataBytes(lone.transport)).toBe(1000);
  });

  // Regression: a stream reset while its END waits in the ready ring must not
  // send END afterwards (nor throw from the drain callback).
  it.each([
    ['the peer resets it', (lone: ReturnType<typeof createLoneSession>) => lone.session.receive(raw.reset(1, ErrorCodes.CANCEL.wire))],
    ['we reset it', (lone: ReturnType<typeof createLoneSession>) => lone.session.streams.get(1)!.reset(ErrorCodes.CANCEL)],
  ])('sends no END and throws nothing when %s while its END waits for drain', async (_label, resetIt) => {
    const lone = createLoneSession('server');
    lone.transport.bufferedAmount = MiB;
    const stream = lone.session.openStream('POST', '/', [], false);
    stream.sink.end();
    await settle(2);
    expect(lone.transport.framesOfType(FrameType.END)).toHaveLength(0);

    resetIt(lone);
    expect(stream.state).toBe('closed');
    lone.transport.drain();
    await settle(3);

    expect(takeCallbackErrors()).toStrictEqual([]);
    expect(lone.transport.framesOfType(FrameType.END)).toHaveLength(0);
    expect(lone.session.closed).toBe(false);
  });

  it('answers a PING at once even while DATA waits for the transport to drain', () => {
    const lone = createLoneSession('server');
    lone.transport.bufferedAmount = MiB;
    const stream = lone.session.openStream('POST', '/', [], false);
    stream.sink.write(patternBytes(10_000));
    lone.session.receive(raw.ping(77));
    expect(lone.transport.framesOfType(FrameType.PONG)).toStrictEqual([{ type: FrameType.PONG, id: 77 }]);
    expect(dataBytes(lone.transport)).toBe(0);
  });
});

describe('TunnelSession protocol errors', () => {
  it.each([
    ['DATA for a local id never opened', 'server', raw.data(5, 1)],
    ['END for a peer id never opened', 'server', raw.end(2)],
    ['WINDOW_UPDATE for a stream never opened', 'server', raw.windowUpdate(3, 100)],
    ['RESET for a stream never opened', 'agent', raw.reset(7, ErrorCodes.CANCEL.wire)],
    ['RESPONSE for a stream never opened', 'server', raw.response(1)],
  ] as const)('closes with a protocol error on %s', (_label, role, bytes) => {
    const lone = createLoneSession(role);
    lone.session.receive(bytes);
    expectClosed(lone, ErrorCodes.PROTOCOL, CloseCodes.TUNNEL_PROTOCOL_ERROR, /which was never opened/);
  });

  it('closes with STREAM_CLOSED on DATA after the peer’s END', () => {
    const lone = createLoneSession('agent');
    lone.session.receive(raw.request(1, true));
    lone.session.receive(raw.data(1, 10));
    expectClosed(lone, ErrorCodes.STREAM_CLOSED, CloseCodes.TUNNEL_PROTOCOL_ERROR, /DATA on stream 1 after its END/);
  });

  it('closes with STREAM_CLOSED on a second END', () => {
    const lone = createLoneSession('agent');
    lone.session.receive(raw.request(1));
    lone.session.receive(raw.end(1));
    expect(lone.session.closed).toBe(false);
    lone.session.receive(raw.end(1));
    expectClosed(lone, ErrorCodes.STREAM_CLOSED);
  });

  it('closes with STREAM_CLOSED on DATA for a stream that finished normally', () => {
    const lone = createLoneSession('agent');
    lone.session.receive(raw.request(1, true));
    lone.incoming[0]!.respond(200, [], true);
    expect(lone.session.activeStreams).toBe(0);
    lone.session.receive(raw.data(1, 1));
    expectClosed(lone, ErrorCodes.STREAM_CLOSED, CloseCodes.TUNNEL_PROTOCOL_ERROR, /stream 1, which is closed/);
  });

  it('ignores RESET and WINDOW_UPDATE for a stream that finished normally (they race with our END)', () => {
    const lone = createLoneSession('agent');
    lone.session.receive(raw.request(1, true));
    lone.incoming[0]!.respond(200, [], true);
    lone.session.receive(raw.windowUpdate(1, 100));
    lone.session.receive(raw.reset(1, ErrorCodes.CANCEL.wire));
    expect(lone.session.closed).toBe(false);
  });

  it('ignores every late frame for a stream we reset', () => {
    const lone = createLoneSession('server');
    const stream = lone.session.openStream('POST', '/', [], false);
    stream.reset(ErrorCodes.CANCEL, 'caller went away');
    expect(lone.transport.framesOfType(FrameType.RESET)).toStrictEqual([
      { type: FrameType.RESET, streamId: 1, code: ErrorCodes.CANCEL.wire, message: 'caller went away' },
    ]);
    for (const bytes of [
      raw.response(1),
      raw.data(1, 100),
      raw.end(1),
      raw.windowUpdate(1, 100),
      raw.reset(1, ErrorCodes.CANCEL.wire),
    ]) {
      lone.session.receive(bytes);
    }
    expect(lone.session.closed).toBe(false);
    expect(lone.closed).toHaveLength(0);
  });

  it('ignores late request-body frames for an incoming stream the agent reset', () => {
    const lone = createLoneSession('agent', {
      options: { onStream: (s) => s.reset(ErrorCodes.FORBIDDEN_BY_AGENT, 'not allowed') },
    });
    lone.session.receive(raw.request(1));
    expect(lone.transport.framesOfType(FrameType.RESET)[0]).toMatchObject({
      streamId: 1,
      code: ErrorCodes.FORBIDDEN_BY_AGENT.wire,
      message: 'not allowed',
    });
    lone.session.receive(raw.data(1, 100));
    lone.session.receive(raw.end(1));
    expect(lone.session.closed).toBe(false);
  });

  it('rejects a REQUEST with the agent’s parity on the agent', () => {
    const lone = createLoneSession('agent');
    lone.session.receive(raw.request(2));
    expectClosed(lone, ErrorCodes.PROTOCOL, CloseCodes.TUNNEL_PROTOCOL_ERROR, /REQUEST on stream 2, which the peer may not open/);
    expect(lone.incoming).toHaveLength(0);
  });

  it('rejects a REQUEST with the server’s parity on the server', () => {
    const lone = createLoneSession('server');
    lone.session.receive(raw.request(1));
    expectClosed(lone, ErrorCodes.PROTOCOL, CloseCodes.TUNNEL_PROTOCOL_ERROR, /which the peer may not open/);
  });

  it('rejects a REQUEST that reuses or goes below the last stream id', () => {
    const lone = createLoneSession('agent');
    lone.session.receive(raw.request(5));
    lone.session.receive(raw.request(3));
    expectClosed(lone, ErrorCodes.PROTOCOL, CloseCodes.TUNNEL_PROTOCOL_ERROR, /REQUEST reuses stream id 3 \(last was 5\)/);
  });

  it('rejects a second response head on a stream', () => {
    const lone = createLoneSession('server');
    lone.session.openStream('GET', '/', [], true);
    lone.session.receive(raw.response(1));
    expect(lone.session.closed).toBe(false);
    lone.session.receive(raw.response(1));
    expectClosed(lone, ErrorCodes.PROTOCOL, CloseCodes.TUNNEL_PROTOCOL_ERROR, /second head on stream 1/);
  });

  it('rejects a RESPONSE sent to the agent for its own incoming stream', () => {
    const lone = createLoneSession('agent');
    lone.session.receive(raw.request(1));
    lone.session.receive(raw.response(1));
    expectClosed(lone, ErrorCodes.PROTOCOL, CloseCodes.TUNNEL_PROTOCOL_ERROR, /second head/);
  });

  it.each([FrameType.HELLO, FrameType.WELCOME] as const)('rejects handshake frame %i after the handshake', (type) => {
    const lone = createLoneSession('agent');
    const info = { v: 1, software: 's', maxStreams: 1, initialWindow: 1024, maxFrameSize: 16 * KiB, heartbeatMs: 100 };
    lone.session.receive(
      type === FrameType.HELLO ? encodeFrame({ type, ...info }) : encodeFrame({ type, ...info, connectionId: 'c' }),
    );
    expectClosed(lone, ErrorCodes.PROTOCOL, CloseCodes.TUNNEL_PROTOCOL_ERROR, /handshake frame after the handshake/);
  });

  it.each([
    ['empty bytes', new Uint8Array(0)],
    ['0xc1', new Uint8Array([0xc1])],
    ['truncated msgpack', new Uint8Array([0x93, 0x12])],
    ['an empty array', new Uint8Array([0x90])],
    ['an unknown frame type', new Uint8Array([0x92, 0x7f, 0x01])],
    ['text', new TextEncoder().encode('GET / HTTP/1.1\r\n\r\n')],
  ])('closes with code 4002 on garbage (%s) and never throws out of receive()', (_label, bytes) => {
    const lone = createLoneSession('server');
    const stream = lone.session.openStream('GET', '/', [], true);
    const errors = watchResets(stream);
    expect(() => lone.session.receive(bytes)).not.toThrow();
    expectClosed(lone, ErrorCodes.PROTOCOL, CloseCodes.TUNNEL_PROTOCOL_ERROR);
    expect(lone.closed[0]).toBeInstanceOf(ProtocolError);
    expect(errors.map((e) => e.info)).toStrictEqual([ErrorCodes.TUNNEL_LOST]);
    expect(errors[0]!.message).toMatch(/^tunnel closed: /);
  });

  it('closes with FRAME_TOO_LARGE on a message over localMaxFrameSize', () => {
    const lone = createLoneSession('agent', { options: { localMaxFrameSize: 16 * KiB } });
    lone.session.receive(raw.request(1));
    lone.session.receive(raw.data(1, 16 * KiB));
    expectClosed(lone, ErrorCodes.FRAME_TOO_LARGE, CloseCodes.TUNNEL_PROTOCOL_ERROR, /exceeds the maximum of 16384/);
  });

  it('ignores everything received after it closed', () => {
    const lone = createLoneSession('server');
    lone.session.receive(new Uint8Array([0xc1]));
    expect(() => lone.session.receive(new Uint8Array([0xc1]))).not.toThrow();
    lone.session.receive(raw.ping(1));
    expect(lone.closed).toHaveLength(1);
    expect(lone.transport.framesOfType(FrameType.PONG)).toHaveLength(0);
  });

  it('keeps the close reason within the 123 bytes a WebSocket close frame allows', () => {
    const lone = createLoneSession('server');
    lone.session.close(new TunnelError(ErrorCodes.INTERNAL, 'x'.repeat(500)), CloseCodes.SHUTDOWN);
    expect(lone.transport.closedWith?.code).toBe(CloseCodes.SHUTDOWN);
    expect(Buffer.byteLength(lone.transport.closedWith!.reason)).toBeLessThanOrEqual(123);
  });
});

describe('TunnelSession stream limits', () => {
  it('throws TOO_MANY_STREAMS beyond peerMaxStreams and allows a new stream once one closes', () => {
    const lone = createLoneSession('server', { limits: { peerMaxStreams: 2 } });
    const first = lone.session.openStream('GET', '/', [], true);
    lone.session.openStream('GET', '/', [], true);
    let thrown: unknown;
    try {
      lone.session.openStream('GET', '/', [], true);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(TunnelError);
    expect((thrown as TunnelError).info).toBe(ErrorCodes.TOO_MANY_STREAMS);
    expect((thrown as TunnelError).retryable).toBe(true);
    expect(lone.transport.framesOfType(FrameType.REQUEST)).toHaveLength(2);

    first.reset(ErrorCodes.CANCEL);
    expect(lone.session.openStream('GET', '/', [], true).id).toBe(5);
  });

  it('answers a REQUEST beyond localMaxStreams with RESET TOO_MANY_STREAMS and ignores its body', () => {
    const lone = createLoneSession('agent', { options: { localMaxStreams: 1 } });
    lone.session.receive(raw.request(1));
    lone.session.receive(raw.request(3));
    expect(lone.incoming).toHaveLength(1);
    expect(lone.transport.framesOfType(FrameType.RESET)).toStrictEqual([
      {
        type: FrameType.RESET,
        streamId: 3,
        code: ErrorCodes.TOO_MANY_STREAMS.wire,
        message: ErrorCodes.TOO_MANY_STREAMS.message,
      },
    ]);
    lone.session.receive(raw.data(3, 10));
    lone.session.receive(raw.end(3));
    expect(lone.session.closed).toBe(false);
  });
});

describe('TunnelSession resets', () => {
  it('calls onReset with the mapped error and destroys the body when the peer resets', async () => {
    const p = createSessionPair({
      agent: { options: { onStream: (s) => s.reset(ErrorCodes.FORBIDDEN_BY_AGENT, 'path /admin is not allowed') } },
    });
    const stream = p.server.openStream('POST', '/admin', [], false);
    const errors = watchResets(stream);
    await settle();

    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(TunnelError);
    expect(errors[0]!.info).toBe(ErrorCodes.FORBIDDEN_BY_AGENT);
    expect(errors[0]!.message).toBe('path /admin is not allowed');
    expect(stream.resetError).toBe(errors[0]);
    expect(stream.state).toBe('closed');
    expect(stream.body.destroyed).toBe(true);
    expect(stream.body.errored).toBe(errors[0]);
    expect(stream.sink.destroyed).toBe(true);
    expect(p.server.activeStreams).toBe(0);
    expect(p.server.closed).toBe(false);
  });

  it('maps an unknown RESET code to INTERNAL and an empty message to the code’s message', () => {
    const lone = createLoneSession('server');
    const stream = lone.session.openStream('GET', '/', [], true);
    const errors = watchResets(stream);
    lone.session.receive(raw.reset(1, 999, ''));
    expect(errors[0]!.info).toBe(ErrorCodes.INTERNAL);
    expect(errors[0]!.message).toBe(ErrorCodes.INTERNAL.message);
    expect(lone.session.closed).toBe(false);
  });

  it('fails queued sink writes with the reset error', async () => {
    const lone = createLoneSession('server');
    const stream = lone.session.openStream('POST', '/', [], false);
    let writeErr: unknown;
    stream.sink.write(patternBytes(TEST_WINDOW + 100), (err) => (writeErr = err));
    lone.session.receive(raw.reset(1, ErrorCodes.UPSTREAM_UNREACHABLE.wire, 'connect ECONNREFUSED'));
    await settle(2);
    expect(writeErr).toBeInstanceOf(TunnelError);
    expect((writeErr as TunnelError).info).toBe(ErrorCodes.UPSTREAM_UNREACHABLE);
    expect(stream.queuedBytes).toBe(0);
  });

  it('leaves a body the peer already ended readable when a RESET follows', async () => {
    const lone = createLoneSession('server');
    const stream = lone.session.openStream('POST', '/', [], false);
    const errors = watchResets(stream);
    lone.session.receive(raw.response(1));
    lone.session.receive(raw.data(1, new Uint8Array([1, 2, 3])));
    lone.session.receive(raw.end(1));
    lone.session.receive(raw.reset(1, ErrorCodes.CANCEL.wire, 'done'));
    expect(errors).toHaveLength(1);
    expect(stream.body.destroyed).toBe(false);
    expect([...(await readAll(stream.body))]).toStrictEqual([1, 2, 3]);
  });

  it('calls onReset once, and a second local reset sends nothing', () => {
    const lone = createLoneSession('server');
    const stream = lone.session.openStream('GET', '/', [], true);
    const errors = watchResets(stream);
    stream.reset(ErrorCodes.CANCEL);
    stream.reset(ErrorCodes.CANCEL);
    lone.session.receive(raw.reset(1, ErrorCodes.CANCEL.wire));
    expect(errors).toHaveLength(1);
    expect(lone.transport.framesOfType(FrameType.RESET)).toHaveLength(1);
  });
});

describe('TunnelSession closing', () => {
  it('resets every open stream with TUNNEL_LOST when the transport closes', async () => {
    const p = createSessionPair();
    const a = p.server.openStream('POST', '/a', [], false);
    const b = p.server.openStream('GET', '/b', [], true);
    await settle();
    const errorsA = watchResets(a);
    const errorsB = watchResets(b);
    let writeErr: unknown;
    a.sink.write(patternBytes(TEST_WINDOW + 1), (err) => (writeErr = err));

    p.server.transportClosed('socket hang up');
    await settle(2);

    for (const errors of [errorsA, errorsB]) {
      expect(errors).toHaveLength(1);
      expect(errors[0]!.info).toBe(ErrorCodes.TUNNEL_LOST);
      expect(errors[0]!.retryable).toBe(true);
      expect(errors[0]!.message).toBe('tunnel closed: socket hang up');
    }
    expect(a.body.destroyed).toBe(true);
    expect(b.body.destroyed).toBe(true);
    expect((writeErr as TunnelError | undefined)?.info).toBe(ErrorCodes.TUNNEL_LOST);
    expect(p.server.activeStreams).toBe(0);
    expect(p.server.closed).toBe(true);
    expect(p.serverClosed).toHaveLength(1);
    expect(p.serverClosed[0]!.info).toBe(ErrorCodes.TUNNEL_LOST);
    expect(() => p.server.openStream('GET', '/', [], true)).toThrow(
      expect.objectContaining({ info: ErrorCodes.TUNNEL_LOST }),
    );
  });

  it('resets the peer’s streams with TUNNEL_LOST when one side closes', async () => {
    const p = createSessionPair();
    const stream = p.server.openStream('POST', '/a', [], false);
    await settle();
    const agentErrors = watchResets(p.incoming[0]!);
    const serverErrors = watchResets(stream);

    p.agent.close();
    await settle();

    expect(p.agentTransport.closedWith?.code).toBe(CloseCodes.NORMAL);
    expect(p.agentClosed).toStrictEqual([undefined]);
    expect(agentErrors[0]!.info).toBe(ErrorCodes.TUNNEL_LOST);
    expect(serverErrors[0]!.info).toBe(ErrorCodes.TUNNEL_LOST);
    expect(p.server.closed).toBe(true);
    expect(p.serverClosed[0]!.info).toBe(ErrorCodes.TUNNEL_LOST);
  });

  it('reports the first reason only, however many times it is closed', () => {
    const lone = createLoneSession('server');
    lone.session.receive(new Uint8Array([0xc1]));
    lone.session.close();
    lone.session.transportClosed('later');
    expect(lone.closed).toHaveLength(1);
    expect(lone.closed[0]).toBeInstanceOf(ProtocolError);
    expect(lone.transport.closedWith?.code).toBe(CloseCodes.TUNNEL_PROTOCOL_ERROR);
  });

  it('sends nothing after it closed', () => {
    const lone = createLoneSession('server');
    const stream = lone.session.openStream('POST', '/', [], false);
    lone.session.close();
    const before = lone.transport.sent.length;
    stream.reset(ErrorCodes.CANCEL);
    lone.session.goaway();
    expect(lone.transport.sent).toHaveLength(before);
  });
});

describe('TunnelSession heartbeats', () => {
  it('closes with HEARTBEAT_TIMEOUT within two intervals when the peer is silent', () => {
    const lone = createLoneSession('server', { limits: { heartbeatMs: 1_000 } });
    const stream = lone.session.openStream('GET', '/', [], true);
    const errors = watchResets(stream);
    const start = lone.clock.now();
    lone.session.start();
    expect(lone.transport.framesOfType(FrameType.PING)).toHaveLength(1);

    let closedAt: number | undefined;
    for (let t = 0; t < 3_000 && closedAt === undefined; t += 50) {
      lone.clock.advance(50);
      if (lone.session.closed) closedAt = lone.clock.now() - start;
    }

    expect(closedAt).toBeDefined();
    expect(closedAt!).toBeGreaterThanOrEqual(1_000);
    expect(closedAt!).toBeLessThanOrEqual(2_000);
    expectClosed(lone, ErrorCodes.HEARTBEAT_TIMEOUT, CloseCodes.HEARTBEAT_TIMEOUT, /no frame from the peer for \d+ ms/);
    // Dropped at once: a close handshake with a black-holed peer would only delay the reconnect.
    expect(lone.transport.aborted).toBe(true);
    expect(errors[0]!.info).toBe(ErrorCodes.HEARTBEAT_TIMEOUT);
    expect(lone.clock.activeTimers).toBe(0);
  });

  it('keeps a session open while the peer answers pings', async () => {
    const p = createSessionPair();
    p.server.start();
    for (let i = 0; i < 40; i++) {
      p.clock.advance(250);
      await settle(1);
    }
    expect(p.server.closed).toBe(false);
    // One ping per interval over ten intervals.
    expect(p.serverTransport.framesOfType(FrameType.PING).length).toBeGreaterThanOrEqual(9);
    expect(p.agentTransport.framesOfType(FrameType.PONG).length).toBe(p.serverTransport.framesOfType(FrameType.PING).length);
  });

  it('counts any frame from the peer as a sign of life', () => {
    const lone = createLoneSession('server');
    lone.session.start();
    for (let i = 0; i < 10; i++) {
      lone.clock.advance(1_000);
      lone.session.receive(raw.ping(i));
    }
    expect(lone.session.closed).toBe(false);
  });

  it('keeps one ping in flight at a time', () => {
    const lone = createLoneSession('server');
    lone.session.start();
    lone.clock.advance(1_400);
    expect(lone.transport.framesOfType(FrameType.PING)).toHaveLength(1);
  });

  it('sets rttMs() from the PONG that answers its PING', async () => {
    const p = createSessionPair();
    expect(p.server.rttMs()).toBe(0);
    p.server.start();
    p.clock.advance(30); // before the PONG is delivered
    await settle();
    expect(p.server.rttMs()).toBe(30);
  });

  it('ignores a PONG whose id does not match the ping in flight', () => {
    const lone = createLoneSession('server');
    lone.session.start();
    const ping = lone.transport.framesOfType(FrameType.PING)[0]!;
    lone.clock.advance(40);
    lone.session.receive(raw.pong(ping.id + 100));
    expect(lone.session.rttMs()).toBe(0);
    lone.clock.advance(10);
    lone.session.receive(raw.pong(ping.id));
    expect(lone.session.rttMs()).toBe(50);
  });

  it('answers a PING with a PONG of the same id', () => {
    const lone = createLoneSession('agent');
    lone.session.receive(raw.ping(424242));
    expect(lone.transport.framesOfType(FrameType.PONG)).toStrictEqual([{ type: FrameType.PONG, id: 424242 }]);
  });

  it('stops its interval when closed', () => {
    const lone = createLoneSession('server');
    lone.session.start();
    expect(lone.clock.activeTimers).toBe(1);
    lone.session.close();
    expect(lone.clock.activeTimers).toBe(0);
  });
});

describe('TunnelSession GOAWAY', () => {
  it('tells the peer through onGoaway and refuses new local streams with GOING_AWAY', async () => {
    const goaways: GoawayFrame[] = [];
    const p = createSessionPair({ agent: { options: { onGoaway: (f) => goaways.push(f) } } });
    p.server.goaway();
    await settle();

    expect(goaways).toStrictEqual([
      { type: FrameType.GOAWAY, lastStreamId: 0, code: ErrorCodes.GOING_AWAY.wire, message: 'server is draining' },
    ]);
    expect(p.agent.goingAway).toBe(true);
    let thrown: unknown;
    try {
      p.server.openStream('GET', '/', [], true);
    } catch (err) {
      thrown = err;
    }
    expect((thrown as TunnelError).info).toBe(ErrorCodes.GOING_AWAY);
    expect(p.server.closed || p.agent.closed).toBe(false);
  });

  it('refuses new streams after the peer sent GOAWAY', async () => {
    const goaways: GoawayFrame[] = [];
    const p = createSessionPair({ server: { options: { onGoaway: (f) => goaways.push(f) } } });
    p.agent.goaway(ErrorCodes.GOING_AWAY, 'agent shutting down');
    await settle();
    expect(goaways[0]?.message).toBe('agent shutting down');
    expect(() => p.server.openStream('GET', '/', [], true)).toThrow(
      expect.objectContaining({ info: ErrorCodes.GOING_AWAY }),
    );
  });

  it('reports the last peer stream id and lets streams already open finish', async () => {
    const goaways: GoawayFrame[] = [];
    const p = createSessionPair({ server: { options: { onGoaway: (f) => goaways.push(f) } } });
    p.server.openStream('GET', '/1', [], true);
    const second = p.server.openStream('GET', '/2', [], true);
    await settle();
    p.agent.goaway();
    await settle();
    expect(goaways[0]?.lastStreamId).toBe(3);

    p.incoming[1]!.respond(200, [], false);
    p.incoming[1]!.sink.end(patternBytes(100));
    expect((await readAll(second.body)).byteLength).toBe(100);
    expect(second.response?.status).toBe(200);
  });

  it('still serves a REQUEST that arrives after its own GOAWAY (the peer sent it before it saw ours)', () => {
    const lone = createLoneSession('agent');
    lone.session.goaway(ErrorCodes.GOING_AWAY, 'agent draining');
    lone.session.receive(raw.request(1, true));
    expect(lone.incoming).toHaveLength(1);
    expect(lone.transport.framesOfType(FrameType.RESET)).toHaveLength(0);
  });

  it("resets with GOING_AWAY a REQUEST that arrives after the peer's own GOAWAY", () => {
    const lone = createLoneSession('agent');
    lone.session.receive(raw.goaway());
    lone.session.receive(raw.request(1));
    expect(lone.incoming).toHaveLength(0);
    expect(lone.transport.framesOfType(FrameType.RESET)[0]).toMatchObject({ streamId: 1, code: ErrorCodes.GOING_AWAY.wire });
    expect(lone.session.closed).toBe(false);
  });

  it("answers the peer's GOAWAY with its own, once", () => {
    const lone = createLoneSession('server');
    lone.session.receive(raw.goaway(0, 'agent draining'));
    lone.session.receive(raw.goaway(0, 'again'));
    const sent = lone.transport.framesOfType(FrameType.GOAWAY);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.message).toBe('acknowledged');
    expect(lone.session.goingAway).toBe(true);
  });

  it('sends GOAWAY only once however often goaway() is called', () => {
    const lone = createLoneSession('server');
    lone.session.goaway();
    lone.session.goaway();
    expect(lone.transport.framesOfType(FrameType.GOAWAY)).toHaveLength(1);
  });

  it('is drained only when GOAWAY went both ways and its last stream closed', async () => {
    const p = createSessionPair();
    const stream = p.server.openStream('GET', '/slow', [], true);
    await settle();
    let drained = false;
    void p.agent.whenDrained().then(() => (drained = true));
    p.agent.goaway(ErrorCodes.GOING_AWAY, 'agent draining');
    await settle();
    // The server acknowledged, but a stream is still open on both sides.
    expect(p.server.goingAway).toBe(true);
    expect(p.agent.drained).toBe(false);
    expect(p.server.drained).toBe(false);
    expect(drained).toBe(false);

    p.incoming[0]!.respond(200, [], false);
    p.incoming[0]!.sink.end(patternBytes(10));
    expect((await readAll(stream.body)).byteLength).toBe(10);
    await settle();
    expect(p.agent.drained).toBe(true);
    expect(p.server.drained).toBe(true);
    expect(drained).toBe(true);
    expect(p.agent.closed).toBe(false);
  });

  it('is not drained by its own GOAWAY alone, however idle', async () => {
    const lone = createLoneSession('agent');
    let drained = false;
    void lone.session.whenDrained().then(() => (drained = true));
    lone.session.goaway();
    await settle();
    expect(lone.session.drained).toBe(false);
    expect(drained).toBe(false);
    lone.session.receive(raw.goaway());
    await settle();
    expect(drained).toBe(true);
  });

  it('releases whenDrained() waiters when the session closes instead', async () => {
    const lone = createLoneSession('server');
    lone.session.openStream('GET', '/', [], true);
    const waiting = lone.session.whenDrained();
    lone.session.goaway();
    lone.session.close();
    await expect(waiting).resolves.toBeUndefined();
    expect(lone.session.drained).toBe(false);
  });
});

describe('TunnelSession queue probing', () => {
  /** A server session with one open stream it is receiving a body on, and a first RTT sample of 1 ms. */
  function receiving() {
    const lone = createLoneSession('server');
    lone.session.start();
    const first = lone.transport.framesOfType(FrameType.PING)[0]!;
    lone.clock.advance(1);
    lone.session.receive(raw.pong(first.id));
    const stream = lone.session.openStream('GET', '/', [], true);
    lone.session.receive(raw.response(stream.id));
    stream.consumeWith(() => true, () => {});
    return { ...lone, stream };
  }

  it('sends a PING along with a WINDOW_UPDATE, at most one in flight and one per PROBE_INTERVAL_MS', () => {
    const { clock, session, transport, stream } = receiving();
    expect(session.baseRttMs()).toBe(1);
    clock.advance(19);
    session.receive(raw.data(stream.id, TEST_WINDOW / 2));
    expect(transport.framesOfType(FrameType.WINDOW_UPDATE)).toHaveLength(1);
    expect(transport.framesOfType(FrameType.PING)).toHaveLength(2);
    // The probe is still out: the next update goes alone.
    session.receive(raw.data(stream.id, TEST_WINDOW / 2));
    expect(transport.framesOfType(FrameType.WINDOW_UPDATE)).toHaveLength(2);
    expect(transport.framesOfType(FrameType.PING)).toHaveLength(2);
  });

  it('reads the queueing delay off the probe that came back behind the data', () => {
    const { clock, session, transport, stream } = receiving();
    clock.advance(19);
    session.receive(raw.data(stream.id, TEST_WINDOW / 2));
    const probe = transport.framesOfType(FrameType.PING)[1]!;
    clock.advance(15);
    session.receive(raw.pong(probe.id));
    expect(session.rttMs()).toBe(15);
    expect(session.baseRttMs()).toBe(1);
    expect(session.queueDelayMs()).toBe(14);
    // A second later with no newer sample, the queue is no longer known to be there.
    clock.advance(1_001);
    expect(session.queueDelayMs()).toBe(0);
  });
});
