import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * Aggregates a V8 `.cpuprofile` (from `node --cpu-prof`) by self time:
 * per function (name + file:line) and per "area" (project file, npm package,
 * node internal module, GC, idle). Usable as a module (run.ts --profile) or
 * directly: `node dist/bench/profile-summary.js <file.cpuprofile>… [--top N]`.
 */

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileRow {
  name: string;
  where: string;
  area: string;
  selfMs: number;
  pct: number;
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  /** Not idle: total minus the "(idle)" node. */
  busyMs: number;
  functions: ProfileRow[];
  /** Postern's own functions by inclusive time (self + everything they call). */
  posternInclusive: ProfileRow[];
  areas: { area: string; selfMs: number; pct: number }[];
}

/** Where a frame's code lives, coarsely. */
function areaOf(cf: CallFrame): string {
  const name = cf.functionName;
  if (!cf.url) {
    if (name === '(idle)' || name === '(garbage collector)' || name === '(program)' || name === '(root)') return name;
    return '(native)';
  }
  const url = cf.url;
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 14).split('/');
    return `npm:${rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  if (url.startsWith('node:')) return `node:${url.slice(5).replace(/^internal\//, 'internal/')}`;
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return `postern:${url.slice(dist + 6)}`;
  return url;
}

function shortWhere(cf: CallFrame): string {
  if (!cf.url) return '';
  let u = cf.url;
  const nm = u.lastIndexOf('/node_modules/');
  if (nm >= 0) u = u.slice(nm + 14);
  else if (u.includes('/dist/')) u = u.slice(u.indexOf('/dist/') + 1);
  else if (u.startsWith('file://')) u = u.slice(7);
  return `${u}:${cf.lineNumber + 1}`;
}

export function summarizeProfile(file: string, top = 25): ProfileSummary {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const n of prof.nodes) byId.set(n.id, n);
  const selfUs = new Map<number, number>();
  // timeDeltas[i] is the time since the previous sample; attribute the time
  // up to the next sample to sample i.
  for (let i = 0; i < prof.samples.length; i++) {
    const dt = prof.timeDeltas[i + 1] ?? 0;
    const id = prof.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, dt));
  }
  const fn = new Map<string, { name: string; where: string; area: string; us: number }>();
  const areas = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const cf = byId.get(id)!.callFrame;
    const area = areaOf(cf);
    total += us;
    if (cf.functionName === '(idle)') idle += us;
    const key = `${cf.functionName}|${cf.url}|${cf.lineNumber}|${cf.columnNumber}`;
    const row = fn.get(key) ?? { name: cf.functionName || '(anonymous)', where: shortWhere(cf), area, us: 0 };
    row.us += us;
    fn.set(key, row);
    areas.set(area, (areas.get(area) ?? 0) + us);
  }
  const busy = total - idle;

  // Inclusive time of Postern's own functions: each sample counts once for
  // every distinct project function on its stack.
  const parent = new Map<number, number>();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const incl = new Map<string, { name: string; where: string; area: string; us: number }>();
  for (const [id, us] of selfUs) {
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const cf = byId.get(cur)!.callFrame;
      const area = areaOf(cf);
      if (!area.startsWith('postern:')) continue;
      const key = `${cf.functionName}|${cf.url}|${cf.lineNumber}|${cf.columnNumber}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const row = incl.get(key) ?? { name: cf.functionName || '(anonymous)', where: shortWhere(cf), area, us: 0 };
      row.us += us;
      incl.set(key, row);
    }
  }
  const pctOf = (us: number): number => (busy > 0 ? (100 * us) / busy : 0);
  return {
    file,
    totalMs: total / 1000,
    busyMs: busy / 1000,
    functions: [...fn.values()]
      .filter((r) => r.name !== '(idle)')
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((r) => ({ name: r.name, where: r.where, area: r.area, selfMs: r.us / 1000, pct: pctOf(r.us) })),
    posternInclusive: [...incl.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, 15)
      .map((r) => ({ name: r.name, where: r.where, area: r.area, selfMs: r.us / 1000, pct: pctOf(r.us) })),
    areas: [...areas.entries()]
      .filter(([a]) => a !== '(idle)')
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([area, us]) => ({ area, selfMs: us / 1000, pct: pctOf(us) })),
  };
}

export function formatSummary(label: string, s: ProfileSummary): string {
  const lines = [
    `${label}: ${s.file}`,
    `  profiled ${(s.totalMs / 1000).toFixed(1)} s, busy (not idle) ${(s.busyMs / 1000).toFixed(1)} s; percentages are of busy time`,
    '  self time by area:',
    ...s.areas.map((a) => `    ${a.pct.toFixed(1).padStart(5)}%  ${a.selfMs.toFixed(0).padStart(6)} ms  ${a.area}`),
    '  top functions by self time:',
    ...s.functions.map(
      (f) => `    ${f.pct.toFixed(1).padStart(5)}%  ${f.selfMs.toFixed(0).padStart(6)} ms  ${f.name.padEnd(36)} ${f.where}`,
    ),
    "  Postern's own functions by inclusive time (self + callees):",
    ...s.posternInclusive.map(
      (f) => `    ${f.pct.toFixed(1).padStart(5)}%  ${f.selfMs.toFixed(0).padStart(6)} ms  ${f.name.padEnd(36)} ${f.where}`,
    ),
  ];
  return lines.join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const ti = args.indexOf('--top');
  const top = ti >= 0 ? Number(args[ti + 1]) : 25;
  const files = args.filter((a, i) => a !== '--top' && (ti < 0 || i !== ti + 1));
  for (const f of files) process.stdout.write(`${formatSummary('profile', summarizeProfile(f, top))}\n\n`);
}
