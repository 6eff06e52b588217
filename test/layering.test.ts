import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The dependency rule, enforced: protocol ← telemetry ← server, agent ← cli. protocol/
 * is pure and imports neither side; server/ and agent/ never import each
 * other or the CLI.
 */
const root = join(import.meta.dirname, '..');
const forbidden: Record<string, string[]> = {
  protocol: ['server', 'agent', 'cli', 'bench', 'telemetry'],
  // Metrics plumbing both sides share (prom-client): above protocol, below server and agent.
  telemetry: ['server', 'agent', 'cli', 'bench'],
  server: ['agent', 'cli', 'bench'],
  agent: ['server', 'cli', 'bench'],
};

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:from|import)\s*\(?\s*'([^']+)'/g)].map((m) => m[1]!);
}

describe('layering', () => {
  for (const [dir, banned] of Object.entries(forbidden)) {
    it(`${dir}/ imports nothing from ${banned.join(', ')}`, () => {
      const files = readdirSync(join(root, dir)).filter((f) => f.endsWith('.ts'));
      expect(files.length).toBeGreaterThan(0);
      const offences: string[] = [];
      for (const f of files) {
        for (const spec of importsOf(join(root, dir, f))) {
          if (banned.some((b) => spec.startsWith(`../${b}/`))) offences.push(`${dir}/${f} imports ${spec}`);
        }
      }
      expect(offences).toEqual([]);
    });
  }

  it('protocol/ does no I/O of its own (no fs, net, http, child_process)', () => {
    const offences: string[] = [];
    for (const f of readdirSync(join(root, 'protocol')).filter((x) => x.endsWith('.ts'))) {
      for (const spec of importsOf(join(root, 'protocol', f))) {
        if (/^(node:)?(fs|net|http|https|tls|child_process|dgram)$/.test(spec)) offences.push(`${f} imports ${spec}`);
      }
    }
    expect(offences).toEqual([]);
  });
});
