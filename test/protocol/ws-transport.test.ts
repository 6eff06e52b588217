import { describe, expect, it } from 'vitest';
import { WsTransport, type WebSocketLike } from '../../protocol/ws-transport.js';

/** A WebSocketLike that records what the transport did to it. */
class FakeWs implements WebSocketLike {
  bufferedAmount = 0;
  readyState = 1;
  readonly calls: string[] = [];
  send(): void {
    this.calls.push('send');
  }
  close(code?: number): void {
    this.calls.push(`close ${code}`);
  }
  terminate(): void {
    this.calls.push('terminate');
    this.readyState = 3;
  }
  pause(): void {
    this.calls.push('pause');
  }
  resume(): void {
    this.calls.push('resume');
  }
}

const nextTurn = (): Promise<void> => new Promise((r) => setImmediate(r));
const KiB = 1024;

describe('WsTransport read budget', () => {
  it('pauses reading once 256 KiB came in within one loop turn, and resumes on the next turn', async () => {
    const ws = new FakeWs();
    const t = new WsTransport(ws);
    for (let i = 0; i < 3; i++) t.received(64 * KiB);
    expect(ws.calls).toEqual([]);
    t.received(64 * KiB);
    expect(ws.calls).toEqual(['pause']);
    await nextTurn();
    expect(ws.calls).toEqual(['pause', 'resume']);
  });

  it('counts each loop turn afresh: a steady trickle never pauses', async () => {
    const ws = new FakeWs();
    const t = new WsTransport(ws);
    for (let turn = 0; turn < 10; turn++) {
      t.received(200 * KiB);
      await nextTurn();
    }
    expect(ws.calls).toEqual([]);
  });

  it('does not resume a socket that closed meanwhile', async () => {
    const ws = new FakeWs();
    const t = new WsTransport(ws);
    t.received(300 * KiB);
    ws.readyState = 3;
    await nextTurn();
    expect(ws.calls).toEqual(['pause']);
  });
});

describe('WsTransport close and abort', () => {
  it('abort() drops the socket at once, without a close frame', () => {
    const ws = new FakeWs();
    new WsTransport(ws).abort();
    expect(ws.calls).toEqual(['terminate']);
  });

  it('close() starts the close handshake', () => {
    const ws = new FakeWs();
    new WsTransport(ws).close(1000, 'bye');
    expect(ws.calls).toEqual(['close 1000']);
  });
});
