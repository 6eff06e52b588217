import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../protocol/tunnel-error.js';

/**
 * POSTERN_ALLOW: rules a request must match, everything else is denied.
 * A JSON file, or a built-in preset (`preset:gitlab`, or `preset` for the
 * preset of TOOL_TYPE; the files are in presets/, ready to copy and edit).
 *
 * ```json
 * { "defaults": { "query": { "sudo": null }, "headers": { "sudo": null } },
 *   "rules": [
 *   { "name": "read projects", "methods": ["GET", "HEAD"], "path": "/api/v4/projects/**" },
 *   { "methods": ["POST"], "path": "/api/v4/projects/*\/hooks" },
 *   { "name": "search", "methods": ["GET"], "path": "/api/v4/search",
 *     "query": { "scope": ["projects", "merge_requests"] }, "headers": { "accept": "application/json" } }
 * ] }
 * ```
 * - `path`: `*` matches within one segment, `**` matches anything including
 *   `/`. Matched against the path as it arrived (still percent-encoded: a
 *   `%2F` does not separate segments), relative to TOOL_URL, without the
 *   query, after confinement (tool-target.ts) has refused traversal.
 * - `methods`: optional (all when absent), case-insensitive.
 * - `query` / `headers`: optional constraints, all of which must hold. Per
 *   name: `"*"` present with any value; `"v"` or `["v", "w"]` present and
 *   every occurrence one of these values (exact, case-sensitive); `null`
 *   absent; `null` inside a list: absent or one of the values. Names not
 *   listed are not constrained. Header names are case-insensitive.
 * - `defaults`: constraints added to every rule (a rule's own entry for the
 *   same name wins).
 *
 * Constraints are read the strict way when servers disagree: a name is
 * also caught in other letter case, with a `[…]` suffix (`sudo[]`: Rack and
 * PHP arrays) and, for headers, with `_` for `-` (Rack/CGI maps both to
 * the same variable); the query is read both with `&` and with `&`/`;` as
 * separators (Rack 2, under GitLab, splits on `;` too). "Absent" and "every
 * occurrence" use all of these; "present" needs the exact name.
 */
export interface AllowRule {
  name: string;
  methods: string[] | undefined;
  path: string;
  regex: RegExp;
  query: Constraints;
  headers: Constraints;
}

/** How a query parameter or header must look; `absentOk` only with values. */
export type Constraint = { kind: 'present' } | { kind: 'absent' } | { kind: 'oneOf'; values: string[]; absentOk: boolean };
/** Keyed by name (lower-case for headers). */
export type Constraints = ReadonlyMap<string, Constraint>;

export type PolicyDecision =
  | { allowed: true; rule: string; reason: string }
  | { allowed: false; rule: null; reason: string; closest?: string };

/** Why one rule matched a request or not; `failed` names the first check that failed. */
export interface RuleOutcome {
  rule: string;
  matched: boolean;
  failed?: 'path' | 'method' | 'query' | 'headers';
  detail: string;
}

/** Names accepted after `preset:`, one file each in presets/. */
export const PRESET_NAMES = ['gitlab', 'github', 'bitbucket', 'azuredevops', 'jenkins'] as const;

const RULE_KEYS = new Set(['name', 'description', 'methods', 'path', 'query', 'headers']);
const DOC_KEYS = new Set(['description', 'defaults', 'rules']);
const STAGES = ['path', 'method', 'query', 'headers'] as const;

export class AllowPolicy {
  constructor(
    readonly rules: AllowRule[],
    /** Where the rules came from: a file path or `preset:<name>`. */
    readonly source = 'rules',
  ) {}

  static fromFile(file: string, source = file): AllowPolicy {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError('POSTERN_ALLOW', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      throw new ConfigError('POSTERN_ALLOW', `${source} is not valid JSON: ${(err as Error).message}`);
    }
    return AllowPolicy.fromJson(doc, source);
  }

  static fromJson(doc: unknown, source = 'rules'): AllowPolicy {
    const obj = doc as { rules?: unknown; defaults?: unknown } | null;
    if (!isObject(obj) || !Array.isArray(obj.rules)) {
      throw new ConfigError('POSTERN_ALLOW', `${source} must be an object with a "rules" array`);
    }
    unknownKeys(obj, DOC_KEYS, source);
    const defaults = obj.defaults === undefined ? {} : obj.defaults;
    if (!isObject(defaults)) throw new ConfigError('POSTERN_ALLOW', `${source}: "defaults" must be an object`);
    unknownKeys(defaults, new Set(['query', 'headers']), `${source} "defaults"`);
    const base = {
      query: parseConstraints(defaults.query, `${source} "defaults"`, 'query', false),
      headers: parseConstraints(defaults.headers, `${source} "defaults"`, 'headers', true),
    };
    return new AllowPolicy(
      obj.rules.map((r: unknown, i: number) => parseRule(r, `rule ${i} in ${source}`, `rule ${i}`, base)),
      source,
    );
  }

  /** The decision for one request; `headers` is the caller's flat [name, value, …] list. */
  decide(method: string, rawPath: string, headers: readonly string[] = []): PolicyDecision {
    const req = new RequestView(method, rawPath, headers);
    const misses: RuleOutcome[] = [];
    for (const rule of this.rules) {
      // A rule whose path does not match never becomes the "closest rule" of
      // a denial (see denial()): skip building its outcome.
      if (!rule.regex.test(req.path)) continue;
      const outcome = evaluate(rule, req);
      if (outcome.matched) return { allowed: true, rule: rule.name, reason: `allowed by rule "${rule.name}"` };
      misses.push(outcome);
    }
    return denial(req, misses);
  }

  /** The decision and every rule's outcome (for `postern policy test`). */
  explain(method: string, rawPath: string, headers: readonly string[] = []): { decision: PolicyDecision; outcomes: RuleOutcome[] } {
    const req = new RequestView(method, rawPath, headers);
    const outcomes = this.rules.map((rule) => evaluate(rule, req));
    const first = outcomes.find((o) => o.matched);
    const decision: PolicyDecision = first
      ? { allowed: true, rule: first.rule, reason: `allowed by rule "${first.rule}"` }
      : denial(req, outcomes);
    return { decision, outcomes };
  }
}

/**
 * POSTERN_ALLOW's value: `preset:<name>`, `preset` (the preset of
 * TOOL_TYPE) or a file path.
 */
export function loadAllowPolicy(spec: string, toolType: string | undefined): AllowPolicy {
  if (spec === 'preset' || spec.startsWith('preset:')) {
    const name = spec === 'preset' ? presetForToolType(toolType) : spec.slice('preset:'.length).trim().toLowerCase();
    if (!(PRESET_NAMES as readonly string[]).includes(name)) {
      throw new ConfigError('POSTERN_ALLOW', `unknown preset ${JSON.stringify(name)}; use one of ${PRESET_NAMES.join(', ')}`);
    }
    return AllowPolicy.fromFile(join(presetsDir(), `${name}.json`), `preset:${name}`);
  }
  return AllowPolicy.fromFile(spec);
}

function presetForToolType(toolType: string | undefined): string {
  const type = toolType?.trim().toLowerCase();
  if (!type) throw new ConfigError('POSTERN_ALLOW', '"preset" takes the preset of TOOL_TYPE, which is not set; use preset:<name>');
  if (!(PRESET_NAMES as readonly string[]).includes(type)) {
    throw new ConfigError('POSTERN_ALLOW', `TOOL_TYPE=${type} has no preset; use preset:<name> (${PRESET_NAMES.join(', ')}) or a rules file`);
  }
  return type;
}

/**
 * presets/ sits at the package root: next to agent/ when run from the
 * sources, one level further up from dist/agent/ or .test-build/agent/
 * (and so in the npm package and the Docker image, which ship it there).
 */
export function presetsDir(): string {
  const candidates = [join(import.meta.dirname, '..', 'presets'), join(import.meta.dirname, '..', '..', 'presets')];
  const found = candidates.find((dir) => existsSync(join(dir, 'gitlab.json')));
  if (!found) throw new ConfigError('POSTERN_ALLOW', `the built-in presets are missing (looked in ${candidates.join(', ')})`);
  return found;
}

function parseRule(r: unknown, where: string, fallbackName: string, base: { query: Constraints; headers: Constraints }): AllowRule {
  if (!isObject(r)) throw new ConfigError('POSTERN_ALLOW', `${where} must be an object`);
  unknownKeys(r, RULE_KEYS, where);
  if (typeof r.path !== 'string' || !r.path.startsWith('/')) {
    throw new ConfigError('POSTERN_ALLOW', `${where} needs a "path" starting with /`);
  }
  const methods = r.methods;
  if (methods !== undefined && (!Array.isArray(methods) || !methods.every((m) => typeof m === 'string' && /^[A-Za-z]+$/.test(m)))) {
    throw new ConfigError('POSTERN_ALLOW', `${where}: "methods" must be an array of method names`);
  }
  if (Array.isArray(methods) && methods.length === 0) throw new ConfigError('POSTERN_ALLOW', `${where}: "methods" is empty (omit it for all methods)`);
  return {
    name: typeof r.name === 'string' && r.name ? r.name : fallbackName,
    methods: (methods as string[] | undefined)?.map((m) => m.toUpperCase()),
    path: r.path,
    regex: globToRegex(r.path),
    query: new Map([...base.query, ...parseConstraints(r.query, where, 'query', false)]),
    headers: new Map([...base.headers, ...parseConstraints(r.headers, where, 'headers', true)]),
  };
}

function parseConstraints(raw: unknown, where: string, key: 'query' | 'headers', lower: boolean): Map<string, Constraint> {
  const out = new Map<string, Constraint>();
  if (raw === undefined) return out;
  if (!isObject(raw)) throw new ConfigError('POSTERN_ALLOW', `${where}: "${key}" must be an object of name: constraint`);
  for (const [name, value] of Object.entries(raw)) {
    if (!name) throw new ConfigError('POSTERN_ALLOW', `${where}: "${key}" has an empty name`);
    const c = parseConstraint(value);
    if (!c) {
      throw new ConfigError(
        'POSTERN_ALLOW',
        `${where}: "${key}.${name}" must be "*", a string, null or a non-empty array of strings (and null)`,
      );
    }
    out.set(lower ? name.toLowerCase() : name, c);
  }
  return out;
}

function parseConstraint(value: unknown): Constraint | undefined {
  if (value === null) return { kind: 'absent' };
  if (typeof value === 'string') return value === '*' ? { kind: 'present' } : { kind: 'oneOf', values: [value], absentOk: false };
  if (!Array.isArray(value) || value.length === 0 || !value.every((v) => v === null || typeof v === 'string')) return undefined;
  const values = value.filter((v): v is string => v !== null);
  const absentOk = values.length < value.length;
  if (values.includes('*')) return absentOk ? undefined : { kind: 'present' };
  return values.length ? { kind: 'oneOf', values, absentOk } : { kind: 'absent' };
}

function unknownKeys(obj: Record<string, unknown>, known: ReadonlySet<string>, where: string): void {
  for (const k of Object.keys(obj)) {
    // A misspelt key ("method") must not silently widen a rule.
    if (!known.has(k)) throw new ConfigError('POSTERN_ALLOW', `${where}: unknown key "${k}" (known: ${[...known].join(', ')})`);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * One request as the rules see it. Query and headers are parsed only when
 * a rule that matched path and method has constraints on them.
 */
class RequestView {
  readonly method: string;
  readonly path: string;
  private readonly rawQuery: string;
  private queries: ParsedValues[] | undefined | null = null;
  private headerValues: ParsedValues | undefined;

  constructor(
    method: string,
    rawPath: string,
    private readonly rawHeaders: readonly string[],
  ) {
    this.method = method.toUpperCase();
    const q = rawPath.indexOf('?');
    this.path = q === -1 ? rawPath : rawPath.slice(0, q);
    this.rawQuery = q === -1 ? '' : rawPath.slice(q + 1);
  }

  /** The query read with `&` and with `&`/`;`; undefined when malformed. */
  query(): ParsedValues[] | undefined {
    if (this.queries === null) {
      const both = [parseQuery(this.rawQuery, /&/), parseQuery(this.rawQuery, /[&;]/)];
      this.queries = both.every((p) => p !== undefined) ? (both as ParsedValues[]) : undefined;
    }
    return this.queries;
  }

  headers(): ParsedValues {
    if (!this.headerValues) {
      const pairs: [string, string][] = [];
      for (let i = 0; i + 1 < this.rawHeaders.length; i += 2) pairs.push([this.rawHeaders[i]!.toLowerCase(), this.rawHeaders[i + 1]!]);
      this.headerValues = new ParsedValues(pairs, (n) => n.replace(/_/g, '-'));
    }
    return this.headerValues;
  }
}

/** Name/value pairs with the exact and the loose ("same to some server") view of names. */
class ParsedValues {
  constructor(
    private readonly pairs: [string, string][],
    private readonly widen: (lowerName: string) => string = (n) => n,
  ) {}

  hasExact(name: string): boolean {
    return this.pairs.some(([n]) => n === name);
  }

  /** Values of every name that some server may take for `name`. */
  loose(name: string): string[] {
    const want = this.key(name);
    return this.pairs.filter(([n]) => this.key(n) === want).map(([, v]) => v);
  }

  private key(name: string): string {
    return this.widen(name.toLowerCase().replace(/\[.*$/, ''));
  }
}

function parseQuery(raw: string, separator: RegExp): ParsedValues | undefined {
  const pairs: [string, string][] = [];
  for (const piece of raw.split(separator)) {
    if (!piece) continue;
    const eq = piece.indexOf('=');
    try {
      const name = decodeURIComponent((eq === -1 ? piece : piece.slice(0, eq)).replace(/\+/g, ' '));
      const value = eq === -1 ? '' : decodeURIComponent(piece.slice(eq + 1).replace(/\+/g, ' '));
      pairs.push([name, value]);
    } catch {
      return undefined;
    }
  }
  return new ParsedValues(pairs);
}

function evaluate(rule: AllowRule, req: RequestView): RuleOutcome {
  const fail = (failed: RuleOutcome['failed'], detail: string): RuleOutcome => ({ rule: rule.name, matched: false, failed, detail });
  if (!rule.regex.test(req.path)) return fail('path', `path does not match ${rule.path}`);
  if (rule.methods && !rule.methods.includes(req.method)) {
    return fail('method', `method ${req.method} is not one of ${rule.methods.join(', ')}`);
  }
  if (rule.query.size) {
    const views = req.query();
    if (!views) return fail('query', 'the query string has malformed percent-encoding');
    for (const view of views) {
      const why = checkConstraints(rule.query, view, 'query parameter');
      if (why) return fail('query', why);
    }
  }
  if (rule.headers.size) {
    const why = checkConstraints(rule.headers, req.headers(), 'header');
    if (why) return fail('headers', why);
  }
  return { rule: rule.name, matched: true, detail: `matches ${rule.methods?.join(', ') ?? 'any method'} ${rule.path}` };
}

/** The first unmet constraint, worded without the request's values (they may hold secrets). */
function checkConstraints(constraints: Constraints, values: ParsedValues, what: string): string | undefined {
  for (const [name, c] of constraints) {
    const seen = values.loose(name);
    if (c.kind === 'absent') {
      if (seen.length) return `${what} "${name}" must be absent`;
      continue;
    }
    if (!values.hasExact(name)) {
      if (c.kind === 'oneOf' && c.absentOk && !seen.length) continue;
      return `${what} "${name}" is missing`;
    }
    if (c.kind === 'oneOf' && !seen.every((v) => c.values.includes(v))) {
      return `${what} "${name}" must be ${c.absentOk ? 'absent or ' : ''}one of ${c.values.map((v) => JSON.stringify(v)).join(', ')}`;
    }
  }
  return undefined;
}

/** Names the rule that came closest (the furthest check reached), when any got past its path. */
function denial(req: RequestView, outcomes: RuleOutcome[]): PolicyDecision {
  const shown = req.path.length > 200 ? `${req.path.slice(0, 200)}…` : req.path;
  const reason = `no rule allows ${req.method} ${shown}`;
  let best: RuleOutcome | undefined;
  for (const o of outcomes) {
    if (o.failed === 'path') continue;
    if (!best || STAGES.indexOf(o.failed!) > STAGES.indexOf(best.failed!)) best = o;
  }
  if (!best) return { allowed: false, rule: null, reason };
  return { allowed: false, rule: null, reason: `${reason}; closest rule "${best.rule}": ${best.detail}`, closest: best.rule };
}

function globToRegex(glob: string): RegExp {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      out += '.*';
      i++;
    } else if (c === '*') {
      out += '[^/]*';
    } else {
      out += c.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
    }
  }
  return new RegExp(`^${out}$`);
}
