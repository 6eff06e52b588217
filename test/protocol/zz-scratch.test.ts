import { test, expect } from 'vitest';
import { createSessionPair, settle, patternBytes, readAll } from './session-pair.js';

test('scratch on-data from start', async () => {
  let n = 0;
  const p = createSessionPair({ agent: { options: { onStream: (st) => { st.body.on('data', (c) => { n += c.length; }); } } } });
  const s = p.server.openStream('POST', '/up', [], false);
  s.sink.end(patternBytes(1000 * 1024));
  await settle(50);
  console.log('on-data', n, 'queued', s.queuedBytes);
});
test('scratch pipe slow', async () => {
  const { Writable } = await import('node:stream');
  let n = 0;
  const p = createSessionPair({ agent: { options: { onStream: (st) => { st.body.pipe(new Writable({ highWaterMark: 1024, write(c, _e, cb) { n += c.length; setTimeout(cb, 1); } })); } } } });
  const s = p.server.openStream('POST', '/up', [], false);
  s.sink.end(patternBytes(1000 * 1024));
  await new Promise((r) => setTimeout(r, 500));
  console.log('pipe-slow', n, 'queued', s.queuedBytes);
});
