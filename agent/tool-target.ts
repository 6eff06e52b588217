/**
 * Confinement to TOOL_URL: the one place that decides where a tunnelled
 * request may go on the tool. The origin is fixed by TOOL_URL (the request
 * only ever carries a path), so what remains is to keep the path under
 * TOOL_URL's path prefix.
 */
export interface ToolTarget {
  /** `http://host:port`, from TOOL_URL. */
  origin: string;
  /** TOOL_URL's path without its trailing slash ('' for the root). */
  prefix: string;
}

export type ResolveResult = { ok: true; path: string } | { ok: false; reason: string };

export function toolTargetFromUrl(url: URL): ToolTarget {
  return { origin: url.origin, prefix: url.pathname.replace(/\/+$/, '') };
}

/**
 * Maps the tunnelled path (`/rest?query`, raw) to the path sent to the tool
 * (`<prefix>/rest?query`, raw: nothing is decoded or re-encoded).
 *
 * Refused: anything not starting with `/`; backslashes; control characters;
 * dot segments, plain or percent-encoded at any depth (`..`, `%2e%2E`,
 * `%252e`); encoded slashes or backslashes that decode into a dot segment.
 * Decoding is only used to look for traversal, never to build the target.
 */
export function resolveToolPath(target: ToolTarget, raw: string): ResolveResult {
  if (!raw.startsWith('/')) return { ok: false, reason: 'path must start with /' };
  if (raw.length > 16 * 1024) return { ok: false, reason: 'path is longer than 16384 characters' };
  const q = raw.indexOf('?');
  const pathPart = q === -1 ? raw : raw.slice(0, q);
  const query = q === -1 ? '' : raw.slice(q);
  if (/[\x00-\x20\x7f\\]/.test(raw)) return { ok: false, reason: 'path contains control characters, spaces or backslashes' };
  if (pathPart.includes('#')) return { ok: false, reason: 'path contains a fragment' };
  // Decode repeatedly (double-encoding) and look at every segment.
  let decoded = pathPart;
  for (let i = 0; i < 4; i++) {
    let next: string;
    try {
      next = decodeURIComponent(decoded);
    } catch {
      return { ok: false, reason: 'path has malformed percent-encoding' };
    }
    if (/[\x00-\x1f\x7f\\]/.test(next)) return { ok: false, reason: 'path decodes to control characters or backslashes' };
    for (const seg of next.split('/')) {
      // Servlet containers (Jenkins, Nexus) drop ";params" before resolving,
      // so "..;" and "..;x=y" are dot segments to them.
      const name = seg.split(';')[0];
      if (name === '.' || name === '..') return { ok: false, reason: 'path contains a dot segment' };
    }
    if (next === decoded) break;
    decoded = next;
  }
  return { ok: true, path: `${target.prefix}${pathPart}${query}` };
}
