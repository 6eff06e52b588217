import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Action } from './session-harness.js';

/**
 * The fuzz corpus (test/fuzz/corpus/*.hex): seed inputs the mutation fuzzer
 * starts from, and every input that ever found a bug (`regression-*.hex`).
 *
 * Format, one file per case:
 *
 *   # comment lines start with '#'; directives are comments too:
 *   # role: server | agent | both    feed the messages to a session (default: decode only)
 *   # flood: tight                   that session runs with TIGHT_FLOOD limits (session-harness.ts)
 *   # expect: decode-error <regex>   every message is refused with a matching message
 *   # expect: decode-ok              every message decodes
 *   # expect: close <CODE> <ws code> the session closes with ErrorCodes.<CODE> and that close code
 *   # expect: open                   the session is still open after the last message
 *   9220 05                          one message per line, in hex (spaces ignored)
 *   *10001 9220 05                   `*N` sends the line N times
 *   93 12 01 c6 00100000 {00*1048576}  `{XX*N}` is byte XX repeated N times
 *   @{"a":"buffer","amount":307200}  a session-harness Action (local stream operations, time,
 *                                    backpressure), in order with the messages
 */

export const CORPUS_DIR = join(import.meta.dirname, 'corpus');

export type Expectation =
  | { kind: 'decode-error'; pattern: RegExp }
  | { kind: 'decode-ok' }
  | { kind: 'close'; code: string; closeCode: number }
  | { kind: 'open' };

export interface CorpusEntry {
  name: string;
  roles: ('server' | 'agent')[];
  tightFlood: boolean;
  expect: Expectation | undefined;
  /** The received messages, for the decoder. */
  messages: Uint8Array[];
  /** Messages and actions in file order, for a session. */
  steps: ({ bytes: Uint8Array } | { action: Action })[];
}

export function parseCorpusFile(name: string, text: string): CorpusEntry {
  const entry: CorpusEntry = { name, roles: [], tightFlood: false, expect: undefined, messages: [], steps: [] };
  for (const [i, rawLine] of text.split('\n').entries()) {
    const line = rawLine.trim();
    if (line === '') continue;
    if (line.startsWith('#')) {
      const directive = /^#\s*(role|expect|flood):\s*(.+)$/.exec(line);
      if (directive?.[1] === 'flood') entry.tightFlood = directive[2]!.trim() === 'tight';
      if (directive?.[1] === 'role') entry.roles = directive[2] === 'both' ? ['server', 'agent'] : [directive[2] as 'server' | 'agent'];
      if (directive?.[1] === 'expect') entry.expect = parseExpectation(name, directive[2]!);
      continue;
    }
    if (line.startsWith('@')) {
      entry.steps.push({ action: JSON.parse(line.slice(1)) as Action });
      continue;
    }
    const repeat = /^\*(\d+)\s+(.*)$/.exec(line);
    const bytes = parseHex(`${name}:${i + 1}`, repeat ? repeat[2]! : line);
    const times = repeat ? Number(repeat[1]) : 1;
    for (let k = 0; k < times; k++) {
      entry.messages.push(bytes);
      entry.steps.push({ bytes });
    }
  }
  return entry;
}

function parseExpectation(name: string, text: string): Expectation {
  const [kind, ...rest] = text.trim().split(/\s+/);
  switch (kind) {
    case 'decode-error':
      return { kind, pattern: new RegExp(rest.join(' ')) };
    case 'decode-ok':
    case 'open':
      return { kind };
    case 'close':
      return { kind, code: rest[0]!, closeCode: Number(rest[1]) };
    default:
      throw new Error(`${name}: unknown expectation ${JSON.stringify(text)}`);
  }
}

function parseHex(where: string, text: string): Uint8Array {
  const parts: Buffer[] = [];
  for (const token of text.split(/(\{[0-9a-fA-F]{2}\*\d+\})/)) {
    const run = /^\{([0-9a-fA-F]{2})\*(\d+)\}$/.exec(token);
    if (run) {
      parts.push(Buffer.alloc(Number(run[2]), Number.parseInt(run[1]!, 16)));
      continue;
    }
    const hex = token.replace(/\s+/g, '');
    if (!/^([0-9a-fA-F]{2})*$/.test(hex)) throw new Error(`${where}: not hex: ${JSON.stringify(token)}`);
    parts.push(Buffer.from(hex, 'hex'));
  }
  return Buffer.concat(parts);
}

/** Every corpus file, parsed, in name order. */
export function loadCorpus(): CorpusEntry[] {
  return readdirSync(CORPUS_DIR)
    .filter((f) => f.endsWith('.hex'))
    .sort()
    .map((f) => parseCorpusFile(f, readFileSync(join(CORPUS_DIR, f), 'utf8')));
}
