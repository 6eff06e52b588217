import { parseArgs } from 'node:util';
import { loadAllowPolicy, type AllowPolicy, type PolicyDecision, type RuleOutcome } from '../agent/allow-policy.js';
import { parseToolUrl } from '../agent/agent-config.js';
import { resolveToolPath, toolTargetFromUrl, type ResolveResult } from '../agent/tool-target.js';
import { CliError, ExitCodes } from './admin-client.js';

export const policyUsage =
  "postern policy test <METHOD> <PATH> [--allow FILE|preset:NAME|preset] [--tool-url URL] [--tool-type T] [--header 'Name: value']… [--all] [--json]";

const flags = {
  allow: { type: 'string' },
  'tool-url': { type: 'string' },
  'tool-type': { type: 'string' },
  header: { type: 'string', multiple: true },
  json: { type: 'boolean' },
  all: { type: 'boolean' },
} as const;

interface Explanation {
  allowed: boolean;
  request: string;
  confinement: ResolveResult;
  /** TOOL_URL's origin, when known. */
  tool: string | null;
  policy: string | null;
  decision: PolicyDecision | null;
  rules: RuleOutcome[];
}

/**
 * `postern policy test <METHOD> <PATH>`: what the agent would do with one
 * request, without a server or an agent: the confinement result (the exact
 * path the tool would get) and each allow rule's outcome. Runs the agent's
 * own code (tool-target.ts, allow-policy.ts). PATH is what the caller sends
 * after /t/<clientId>. Flags win over POSTERN_ALLOW, TOOL_URL and TOOL_TYPE.
 * Exit code: 0 allowed, 1 denied, 2 usage or configuration error.
 */
export function policyCommand(args: string[], env: NodeJS.ProcessEnv): number {
  const { values, positionals } = parseArgs({ args, options: flags, strict: true, allowPositionals: true });
  const [sub, method, path, ...extra] = positionals;
  if (sub !== 'test' || !method || path === undefined || extra.length) throw new CliError(`usage: ${policyUsage}`, ExitCodes.USAGE);
  if (!/^[A-Za-z]+$/.test(method)) throw new CliError(`${JSON.stringify(method)} is not an HTTP method`, ExitCodes.USAGE);
  const headers = (values.header ?? []).flatMap(parseHeader);
  const toolUrl = toolUrlOf(values['tool-url'] ?? env.TOOL_URL, values['tool-url'] ? '--tool-url' : 'TOOL_URL');
  const allow = (values.allow ?? env.POSTERN_ALLOW)?.trim();
  const policy = allow ? loadAllowPolicy(allow, values['tool-type'] ?? env.TOOL_TYPE) : undefined;

  const result = explain(method.toUpperCase(), path, headers, toolUrl, policy);
  process.stdout.write(values.json ? `${JSON.stringify(result, null, 2)}\n` : format(result, values.all ?? false));
  return result.allowed ? ExitCodes.OK : ExitCodes.FAILURE;
}

function explain(method: string, path: string, headers: string[], toolUrl: URL | undefined, policy: AllowPolicy | undefined): Explanation {
  const target = toolTargetFromUrl(toolUrl ?? new URL('http://tool.invalid'));
  const confinement = resolveToolPath(target, path);
  const base = { request: `${method} ${path}`, confinement, tool: toolUrl ? target.origin : null, policy: policy?.source ?? null };
  if (!confinement.ok) return { ...base, allowed: false, decision: null, rules: [] };
  if (!policy) return { ...base, allowed: true, decision: null, rules: [] };
  const { decision, outcomes } = policy.explain(method, path, headers);
  return { ...base, allowed: decision.allowed, decision, rules: outcomes };
}

/** Rules whose path did not match are counted, and listed with --all. */
function format(e: Explanation, all: boolean): string {
  const lines = [`request      ${e.request}`];
  if (!e.confinement.ok) {
    lines.push(`confinement  refused: ${e.confinement.reason}`, 'rules        not evaluated (the agent refuses the path first)');
  } else {
    const method = e.request.slice(0, e.request.indexOf(' '));
    const note = e.tool ? '' : '  (TOOL_URL not set: path from the root)';
    lines.push(`confinement  ok: the tool gets ${method} ${e.tool ?? ''}${e.confinement.path}${note}`);
    if (!e.policy) lines.push('rules        none (POSTERN_ALLOW not set): every path that passes confinement is allowed');
    else {
      const shown = all ? e.rules : e.rules.filter((o) => o.failed !== 'path');
      const hidden = e.rules.length - shown.length;
      const more = hidden ? `; ${hidden} ${hidden === 1 ? 'does' : 'do'} not match the path (--all lists them)` : '';
      lines.push(`rules        ${e.policy}: ${e.rules.length} rule${e.rules.length === 1 ? '' : 's'}${more}`, ...shown.map(formatOutcome));
    }
  }
  lines.push(`decision     ${decisionLine(e)}`);
  return `${lines.join('\n')}\n`;
}

function decisionLine(e: Explanation): string {
  if (e.decision?.allowed) return `ALLOWED by rule "${e.decision.rule}"`;
  if (e.allowed) return 'ALLOWED (no allow rules)';
  return `DENIED (403 forbidden_by_agent): ${e.confinement.ok ? e.decision!.reason : e.confinement.reason}`;
}

function formatOutcome(o: RuleOutcome): string {
  return `  ${o.matched ? 'allow' : 'no   '}  ${o.rule}: ${o.detail}`;
}

function parseHeader(raw: string): [string, string] {
  const colon = raw.indexOf(':');
  const name = colon === -1 ? '' : raw.slice(0, colon).trim();
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) throw new CliError(`--header ${JSON.stringify(raw)}: expected 'Name: value'`, ExitCodes.USAGE);
  return [name.toLowerCase(), raw.slice(colon + 1).trim()];
}

function toolUrlOf(raw: string | undefined, setting: string): URL | undefined {
  return raw?.trim() ? parseToolUrl(raw.trim(), setting) : undefined;
}
