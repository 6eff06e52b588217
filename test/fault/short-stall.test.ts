import { afterEach, describe, expect, it } from 'vitest';
import { Cleanup } from '../helpers/cleanup.js';
import { send } from '../helpers/http-client.js';
import { patternSha256 } from '../helpers/pattern-data.js';
import { logLines } from '../helpers/processes.js';
import { waitUntil, within } from '../helpers/wait.js';
import { HEARTBEAT_MS, report, startFaultStack } from './fault-tool.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const MiB = 1024 * 1024;
/**
 * Under the 1.5 intervals of silence that declare a peer dead, even for the
 * idle second tunnel, whose last frame may be half an interval old when the
 * stall begins (pings go every half interval): 0.3 interval of slack.
 */
const STALL_MS = 0.7 * HEARTBEAT_MS;

describe('a short stall of the tunnel path', () => {
  it('does not kill the tunnel, and the download in flight across it completes intact', async () => {
    const stack = await startFaultStack(cleanup, { viaRelay: true });
    const { server, agent, url } = stack;
    const relay = stack.relay!;
    const startedAt = Date.now();

    // 4 MiB at 64 KiB per 20 ms: about 1.3 s on the wire, so the stall lands mid-body.
    const size = 4 * MiB;
    let got = 0;
    const download = send(url(`/paced?n=${size}&seed=21&ms=20`), { keepBody: false, onData: (n) => (got = n) });
    // Awaited below; a rejection before then must not count as unhandled.
    download.catch(() => {});
    await waitUntil(() => got >= 512 * 1024, 'the download to be under way', 10_000);
    relay.stall();
    const gotAtStall = got;
    await new Promise((r) => setTimeout(r, STALL_MS));
    const gotAtResume = got;
    relay.resume();

    const res = await within(download, 15_000, 'the download to finish');
    expect(res.status).toBe(200);
    expect(res.complete).toBe(true);
    expect(res.bytes).toBe(size);
    expect(res.sha256).toBe(patternSha256(size, 21));
    // The stall really held the body back: unstalled, ~1.3 MB would have come meanwhile.
    expect(gotAtResume - gotAtStall).toBeLessThan(256 * 1024);
    report(
      `short stall: ${STALL_MS} ms stall at ${gotAtStall} bytes (${gotAtResume - gotAtStall} bytes arrived during it); ` +
        `the ${size}-byte download completed intact`,
    );

    // Give a late timeout every chance to fire, then check nothing dropped.
    await new Promise((r) => setTimeout(r, 2 * HEARTBEAT_MS));
    const since = startedAt;
    expect(logLines(server.child, (o) => o.msg === 'agent disconnected', since)).toEqual([]);
    expect(logLines(agent, (o) => o.msg === 'tunnel down, reconnecting', since)).toEqual([]);
    expect(relay.connections).toBe(2);
    expect((await send(url('/small'))).status).toBe(200);
  });
});
