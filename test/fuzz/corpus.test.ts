import { describe, expect, it } from 'vitest';
import { CloseCodes, ErrorCodes } from '../../protocol/error-codes.js';
import { TunnelError } from '../../protocol/tunnel-error.js';
import { loadCorpus, type CorpusEntry } from './corpus.js';
import { decodeOutcome } from './decode-check.js';
import { SessionHarness, TIGHT_FLOOD } from './session-harness.js';

/**
 * Replays every file of test/fuzz/corpus/: each message must decode to a
 * frame that round-trips or be refused with a ProtocolError; files with a
 * role are also fed to a session of that role under the session contract;
 * `expect:` lines pin the outcome of regression inputs.
 */

const corpus = loadCorpus();

describe('fuzz corpus', () => {
  it('has seeds for every frame type and the regression inputs', () => {
    expect(corpus.filter((e) => e.name.startsWith('seed-')).length).toBeGreaterThanOrEqual(11);
    expect(corpus.filter((e) => e.name.startsWith('regression-')).length).toBeGreaterThanOrEqual(2);
  });

  it.each(corpus.map((e) => [e.name, e] as const))('%s', async (_name, entry) => {
    const outcomes = entry.messages.map((m) => decodeOutcome(m));
    checkDecodeExpectation(entry, outcomes);
    for (const role of entry.roles) {
      const h = new SessionHarness(role, entry.tightFlood ? TIGHT_FLOOD : undefined);
      for (const step of entry.steps) {
        if ('bytes' in step) h.receive(step.bytes);
        else await h.apply(step.action);
        h.check();
      }
      checkSessionExpectation(entry, h, role);
      await h.finish();
    }
  });
});

function checkDecodeExpectation(entry: CorpusEntry, outcomes: unknown[]): void {
  const ex = entry.expect;
  if (ex?.kind === 'decode-error') {
    for (const o of outcomes) {
      expect(o).toBeInstanceOf(TunnelError);
      expect((o as TunnelError).message).toMatch(ex.pattern);
    }
  }
  if (ex?.kind === 'decode-ok') for (const o of outcomes) expect(o).not.toBeInstanceOf(TunnelError);
}

function checkSessionExpectation(entry: CorpusEntry, h: SessionHarness, role: string): void {
  const ex = entry.expect;
  if (ex?.kind === 'open') expect(h.session.closed, `${role} session closed`).toBe(false);
  if (ex?.kind === 'close') {
    expect(h.session.closed, `${role} session still open`).toBe(true);
    expect(h.lone.closed[0]?.info).toBe(ErrorCodes[ex.code as keyof typeof ErrorCodes]);
    expect(h.lone.transport.closedWith?.code).toBe(ex.closeCode);
  }
  // A close code is one of the table's.
  if (h.lone.transport.closedWith) expect(Object.values(CloseCodes)).toContain(h.lone.transport.closedWith.code);
}
