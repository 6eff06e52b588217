import { readFileSync } from 'node:fs';
import { ConfigError } from '../protocol/tunnel-error.js';

/**
 * POSTERN_ALLOW: a JSON file of rules; a request passes if any rule matches,
 * everything else is denied.
 *
 * ```json
 * { "rules": [
 *   { "name": "read projects", "methods": ["GET", "HEAD"], "path": "/api/v4/projects/**" },
 *   { "methods": ["POST"], "path": "/api/v4/projects/*\/hooks" }
 * ] }
 * ```
 * In `path`, `*` matches within one segment and `**` matches any number of
 * segments; the query string is not part of the match. Paths are matched as
 * they arrive (still percent-encoded), after confinement to TOOL_URL.
 */
export interface AllowRule {
  name: string;
  methods: string[] | undefined;
  path: string;
  regex: RegExp;
}

export type PolicyDecision = { allowed: true; rule: string } | { allowed: false; rule: null; reason: string };

export class AllowPolicy {
  constructor(readonly rules: AllowRule[]) {}

  static fromFile(file: string): AllowPolicy {
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
      throw new ConfigError('POSTERN_ALLOW', `${file} is not valid JSON: ${(err as Error).message}`);
    }
    return AllowPolicy.fromJson(doc, file);
  }

  static fromJson(doc: unknown, source = 'rules'): AllowPolicy {
    const rules = (doc as { rules?: unknown })?.rules;
    if (!Array.isArray(rules)) throw new ConfigError('POSTERN_ALLOW', `${source} must be an object with a "rules" array`);
    return new AllowPolicy(
      rules.map((r: unknown, i: number) => {
        const rule = r as { name?: unknown; methods?: unknown; path?: unknown };
        if (typeof rule?.path !== 'string' || !rule.path.startsWith('/')) {
          throw new ConfigError('POSTERN_ALLOW', `rule ${i} in ${source} needs a "path" starting with /`);
        }
        if (rule.methods !== undefined && (!Array.isArray(rule.methods) || !rule.methods.every((m) => typeof m === 'string'))) {
          throw new ConfigError('POSTERN_ALLOW', `rule ${i} in ${source}: "methods" must be an array of strings`);
        }
        return {
          name: typeof rule.name === 'string' ? rule.name : `rule ${i}`,
          methods: (rule.methods as string[] | undefined)?.map((m) => m.toUpperCase()),
          path: rule.path,
          regex: globToRegex(rule.path),
        };
      }),
    );
  }

  decide(method: string, rawPath: string): PolicyDecision {
    const q = rawPath.indexOf('?');
    const path = q === -1 ? rawPath : rawPath.slice(0, q);
    for (const rule of this.rules) {
      if (rule.methods && !rule.methods.includes(method.toUpperCase())) continue;
      if (rule.regex.test(path)) return { allowed: true, rule: rule.name };
    }
    return { allowed: false, rule: null, reason: `no rule allows ${method} ${path}` };
  }
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
