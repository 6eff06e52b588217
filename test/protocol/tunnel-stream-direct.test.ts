import { describe, expect, it } from 'vitest';
import { createSessionPair, patternBytes, settle, TEST_WINDOW } from './session-pair.js';

/** The callback APIs the hot paths use instead of Readable/Writable. */
describe('TunnelStream direct data path', () => {
  it('writeData asks to pause above one frame queued and calls onDrain once it went out', async () => {
    const p = createSessionPair();
    const stream = p.server.openStream('GET', '/big', [], true);
    let consume = false;
    stream.onResponse = () => stream.consumeWith(() => consume, () => {});
    await settle();
    const agentStream = p.incoming[0]!;
    agentStream.respond(200, [], false);
    let drains = 0;
    agentStream.onDrain = () => drains++;
    // More than the peer's window: the rest waits for credit.
    expect(agentStream.writeData(patternBytes(TEST_WINDOW * 2, 1))).toBe(false);
    expect(agentStream.queuedBytes).toBeGreaterThan(0);
    expect(drains).toBe(0);
    await settle();
    // The server's destination takes nothing yet: no credit, no drain.
    expect(drains).toBe(0);
    consume = true;
    stream.resumeConsumption();
    await settle(20);
    expect(drains).toBe(1);
    expect(agentStream.queuedBytes).toBe(0);
  });

  it('consumeWith credits bytes the destination took, and holds back the rest until resumeConsumption', async () => {
    const p = createSessionPair();
    const stream = p.server.openStream('GET', '/big', [], true);
    const got: number[] = [];
    let accept = true;
    let ended = false;
    stream.onResponse = () =>
      stream.consumeWith(
        (chunk) => {
          got.push(chunk.byteLength);
          return accept;
        },
        () => (ended = true),
      );
    await settle();
    const agentStream = p.incoming[0]!;
    agentStream.respond(200, [], false);
    const total = TEST_WINDOW * 4;
    agentStream.writeData(patternBytes(total, 2));
    agentStream.endData();
    await settle(20);
    // The destination took everything so far: credit flowed, all bytes arrived.
    expect(got.reduce((a, b) => a + b, 0)).toBe(total);
    expect(ended).toBe(true);

    // Now a destination that is full: the sender stops within one window.
    const s2 = p.server.openStream('GET', '/big2', [], true);
    const got2: number[] = [];
    accept = false;
    s2.onResponse = () => s2.consumeWith((c) => (got2.push(c.byteLength), accept), () => {});
    await settle();
    const a2 = p.incoming[1]!;
    a2.respond(200, [], false);
    a2.writeData(patternBytes(total, 3));
    a2.endData();
    await settle(20);
    const firstBatch = got2.reduce((a, b) => a + b, 0);
    expect(firstBatch).toBe(TEST_WINDOW);
    expect(s2.recvWindow.buffered).toBe(TEST_WINDOW);
    accept = true;
    s2.resumeConsumption();
    await settle(20);
    expect(got2.reduce((a, b) => a + b, 0)).toBe(total);
  });

  it('finishEarly resets the peer’s upload only after our END went out', async () => {
    const p = createSessionPair();
    const stream = p.server.openStream('POST', '/upload', [], false);
    let resetCode = '';
    stream.onReset = (err) => (resetCode = err.code);
    stream.onResponse = () => stream.consumeWith(() => true, () => {});
    stream.sink.write(patternBytes(1000, 4));
    await settle();
    const agentStream = p.incoming[0]!;
    agentStream.respond(413, [], false);
    agentStream.writeData(patternBytes(10, 5));
    agentStream.endData();
    agentStream.finishEarly();
    await settle(10);
    expect(stream.remoteEnded).toBe(true);
    expect(resetCode).toBe('POSTERN_ERR_CANCEL');
    expect(agentStream.state).toBe('closed');
  });

  it('respond(…, endStream) after endData() while the END waits behind a full socket leaves the END to end the stream', async () => {
    const p = createSessionPair();
    const stream = p.server.openStream('POST', '/x', [], false);
    await settle();
    const agentStream = p.incoming[0]!;
    p.agentTransport.bufferedAmount = 8 * 1024 * 1024;
    agentStream.endData();
    agentStream.respond(204, [], true);
    // Before the fix the drain below threw "illegal stream transition" from the flush.
    p.agentTransport.drain();
    await settle(20);
    expect(stream.response?.status).toBe(204);
    expect(stream.remoteEnded).toBe(true);
    expect(p.agent.closed || p.server.closed).toBe(false);
  });
});
