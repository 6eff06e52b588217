import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Just enough of the Dockerfile syntax to read this repository's two
 * Dockerfiles: no engine runs on the CI machines, so the tests read what
 * the images would do (test/deploy/*.test.ts) and do it themselves.
 */

export const REPO_ROOT = join(import.meta.dirname, '..', '..');

export interface Instruction {
  /** Upper case: FROM, RUN, COPY, ENV, … */
  keyword: string;
  /** The rest of the (joined) line. */
  args: string;
}

export interface Stage {
  /** The image after FROM. */
  image: string;
  /** `AS <name>`, if any. */
  name: string | undefined;
  instructions: Instruction[];
}

/**
 * The stages of a Dockerfile. Continuation lines (trailing `\`) are joined
 * and comment lines dropped, also inside a continued instruction, as
 * Docker does.
 */
export function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#') || line === '') continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    if (full === '') continue;
    const m = /^(\S+)\s*(.*)$/s.exec(full)!;
    const keyword = m[1]!.toUpperCase();
    const args = m[2]!.trim();
    if (keyword === 'FROM') {
      const from = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      if (!from) throw new Error(`cannot read FROM ${args}`);
      stages.push({ image: from[1]!, name: from[2], instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (!stage) throw new Error(`${keyword} before the first FROM`);
    stage.instructions.push({ keyword, args });
  }
  return stages;
}

/** Dockerfile.server / Dockerfile.agent of this repository, parsed. */
export function readDockerfile(file: string): Stage[] {
  return parseDockerfile(readFileSync(join(REPO_ROOT, file), 'utf8'));
}

/** The stage the image is made of: the last one. */
export function runtimeStage(stages: Stage[]): Stage {
  const last = stages.at(-1);
  if (!last) throw new Error('no FROM in the Dockerfile');
  return last;
}

export function instructions(stage: Stage, keyword: string): Instruction[] {
  return stage.instructions.filter((i) => i.keyword === keyword);
}

/** The single instruction `keyword` of a stage (ENTRYPOINT, HEALTHCHECK, USER …); throws if absent or repeated. */
export function only(stage: Stage, keyword: string): Instruction {
  const found = instructions(stage, keyword);
  if (found.length !== 1) throw new Error(`expected one ${keyword} in the stage, found ${found.length}`);
  return found[0]!;
}

/** An exec-form argument (`["a", "b"]`) as the array; throws on the shell form, which would run through /bin/sh. */
export function execForm(args: string): string[] {
  if (!args.startsWith('[')) throw new Error(`not the exec form (JSON array): ${args}`);
  const parsed = JSON.parse(args) as unknown;
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string')) throw new Error(`not an array of strings: ${args}`);
  return parsed;
}

/** `KEY=value` pairs of ENV or LABEL instructions, in order (double-quoted values unquoted; `${ARG}` left as is). */
export function keyValues(stage: Stage, keyword: 'ENV' | 'LABEL'): Record<string, string> {
  return Object.fromEntries(instructions(stage, keyword).flatMap((i) => keyValuePairs(i.args)));
}

/** The pairs of one ENV or LABEL instruction's arguments; only the `KEY=value` form. */
export function keyValuePairs(args: string): [string, string][] {
  const pairs = [...args.matchAll(/([\w.-]+)=("(?:[^"\\]|\\.)*"|\S+)/g)];
  if (pairs.length === 0) throw new Error(`${args}: only the KEY=value form is read`);
  return pairs.map(([, key, value]) => [key!, value!.startsWith('"') ? (JSON.parse(value!) as string) : value!]);
}

/** The defaults of the stage's `ARG NAME=default` lines. */
export function argDefaults(stage: Stage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const { args } of instructions(stage, 'ARG')) {
    const m = /^(\w+)(?:=(.*))?$/.exec(args);
    if (m) out[m[1]!] = m[2] ?? '';
  }
  return out;
}

export interface HealthCheck {
  /** --interval, --timeout, … as written (`30s`). */
  options: Record<string, string>;
  /** The CMD, exec form. */
  command: string[];
  /** --timeout in ms (Docker's default 30 s). */
  timeoutMs: number;
}

export function healthCheck(stage: Stage): HealthCheck {
  const { args } = only(stage, 'HEALTHCHECK');
  const m = /^((?:--[\w-]+=\S+\s+)*)CMD\s+(.*)$/.exec(args);
  if (!m) throw new Error(`HEALTHCHECK ${args}: expected [options] CMD [...]`);
  const options = Object.fromEntries([...m[1]!.matchAll(/--([\w-]+)=(\S+)/g)].map(([, k, v]) => [k!, v!]));
  return { options, command: execForm(m[2]!), timeoutMs: durationMs(options.timeout ?? '30s') };
}

/** Docker durations as HEALTHCHECK takes them: `5s`, `1m30s`, `500ms`. */
export function durationMs(d: string): number {
  const units: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
  let total = 0;
  const parts = [...d.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== d) throw new Error(`not a duration: ${d}`);
  for (const [, n, unit] of parts) total += Number(n) * units[unit!]!;
  return total;
}

/** The command the container runs: ENTRYPOINT followed by CMD, both exec form. */
export function containerCommand(stage: Stage): string[] {
  return [...execForm(only(stage, 'ENTRYPOINT').args), ...execForm(only(stage, 'CMD').args)];
}
