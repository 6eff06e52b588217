/**
 * Confinement to TOOL_URL: the one place that decides where a tunnelled
 * request may go on the tool. The origin is fixed by TOOL_URL (the agent's
 * HTTP client is bound to it and the request only ever carries a path), so
 * what remains is to keep the path under TOOL_URL's path prefix, as every
 * server along the way might read it.
 */
export interface ToolTarget {
  /** `http://host:port`, from TOOL_URL. */
  origin: string;
  /** TOOL_URL's path without its trailing slash ('' for the root). */
  prefix: string;
}

export type ResolveResult = { ok: true; path: string } | { ok: false; reason: string };

/** Longer request targets are refused (Node's own header limit is 16 KiB too). */
export const MAX_PATH_LENGTH = 16 * 1024;
/** Percent-decoding rounds looked through before a path counts as hostile. */
const MAX_DECODE_ROUNDS = 8;

export function toolTargetFromUrl(url: URL): ToolTarget {
  return { origin: url.origin, prefix: url.pathname.replace(/\/+$/, '') };
}

/**
 * Maps the tunnelled path (`/rest?query`, raw) to the path sent to the tool
 * (`<prefix>/rest?query`, raw: nothing is decoded or re-encoded, so an
 * allowed path reaches the tool byte for byte).
 *
 * It resolves once (prefix + path) and compares once (the WHATWG URL parser,
 * which is what most tools and proxies use, must see the same origin and a
 * path under the prefix with no segment removed). Before that, the path is
 * refused for anything some server on the way could resolve differently
 * from the way it is compared here:
 * - not starting with `/` (absolute-form `http://evil/x`, authority-form, `*`);
 * - a space, control character, backslash, `#` or a character outside
 *   printable ASCII, raw (these must be percent-encoded);
 * - malformed percent-encoding, or escapes that are not valid UTF-8 (overlong
 *   `%c0%ae` is a dot to a lax decoder);
 * - at the raw level and after each round of percent-decoding (up to 8;
 *   more is refused): a dot segment (`.`, `..`, any run of dots and spaces,
 *   `..;x` which servlet containers such as Jenkins resolve as `..`, and
 *   full-width dots after NFKC normalisation), a backslash, a control
 *   character, or an empty segment (`//`) other than a trailing slash.
 *
 * Empty segments are refused because a leading `//evil/x` is a network-path
 * reference (another host) to URL parsers on the tool side, and inner ones
 * are merged by many servers (nginx, Spring, Jetty), so the tool would route
 * a different path than the allow rules matched. A trailing slash is a
 * normal request (`/job/x/`) and stays allowed.
 *
 * `@` and `:` are ordinary path characters (npm scopes in package registries,
 * `refs@{…}`): the path always starts with a single `/`, so no parser can
 * read what follows as user info or a host.
 *
 * Encoded slashes (`%2F`) stay data: GitLab names a project
 * `group%2Fproject` in one segment. The query string is data too: it is
 * passed as is and only the raw-character checks apply to it.
 */
export function resolveToolPath(target: ToolTarget, raw: string): ResolveResult {
  const syntax = rawSyntaxError(raw);
  if (syntax) return { ok: false, reason: syntax };
  const q = raw.indexOf('?');
  const pathPart = q === -1 ? raw : raw.slice(0, q);
  const query = q === -1 ? '' : raw.slice(q);
  const traversal = traversalError(pathPart);
  if (traversal) return { ok: false, reason: traversal };

  const path = `${target.prefix}${pathPart}${query}`;
  // The one comparison: a different origin, a path outside the prefix or a
  // segment resolved away means something above let a trick through.
  const url = new URL(path, target.origin);
  const inside = url.pathname === target.prefix || url.pathname.startsWith(`${target.prefix}/`);
  const sameShape = url.pathname.split('/').length === `${target.prefix}${pathPart}`.split('/').length;
  if (url.origin !== target.origin || url.username || url.password || !inside || !sameShape) {
    return { ok: false, reason: 'path resolves outside TOOL_URL' };
  }
  return { ok: true, path };
}

/** Checks on the raw target: shape, length, characters and %-escapes. */
function rawSyntaxError(raw: string): string | undefined {
  if (!raw.startsWith('/')) return 'path must start with /';
  if (raw.length > MAX_PATH_LENGTH) return `path is longer than ${MAX_PATH_LENGTH} characters`;
  const q = raw.indexOf('?');
  const queryAt = q === -1 ? raw.length : q;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return 'path contains a control character or space';
    if (c > 0x7e) return 'path contains a character that must be percent-encoded (not printable ASCII)';
    if (c === 0x5c) return 'path contains a backslash';
    if (c === 0x23) return 'path contains a fragment (#)';
    // A stray % in the query is the tool's business (`?q=100%`), as is all of the query.
    if (c === 0x25 && i < queryAt && !/^[0-9A-Fa-f]{2}$/.test(raw.slice(i + 1, i + 3))) return 'path has malformed percent-encoding';
  }
  return undefined;
}

/** Looks at the path as each round of percent-decoding would leave it. */
function traversalError(pathPart: string): string | undefined {
  let level = pathPart;
  for (let round = 0; round <= MAX_DECODE_ROUNDS; round++) {
    const err = segmentError(round === 0 ? level : level.normalize('NFKC'), round);
    if (err) return err;
    // Nothing left to decode (the common case at round 0): this level was the last.
    if (!level.includes('%')) return undefined;
    const next = decodeEscapes(level);
    if (next === undefined) return 'path has percent-encoding that is not valid UTF-8';
    if (next === level) return undefined;
    level = next;
  }
  return `path is percent-encoded more than ${MAX_DECODE_ROUNDS} times`;
}

function segmentError(path: string, round: number): string | undefined {
  const how = round === 0 ? '' : ' once percent-decoded';
  // The raw level was checked character by character already.
  if (round > 0 && /[\x00-\x1f\x7f]/.test(path)) return `path contains a control character${how}`;
  if (round > 0 && path.includes('\\')) return `path contains a backslash${how}`;
  const segments = path.split('/');
  for (let i = 1; i < segments.length; i++) {
    const seg = segments[i]!;
    if (seg === '' && i < segments.length - 1) return `path contains an empty segment (//)${how}`;
    if (isDotSegment(seg)) return `path contains a dot segment${how}`;
  }
  return undefined;
}

/**
 * `.` and `..`, and what some server turns into them: `..;jsessionid=x`
 * (servlet path parameters), `..?` after decoding, trailing dots and
 * spaces (Windows/IIS trims them: `... ` is `..`).
 */
function isDotSegment(seg: string): boolean {
  if (!seg.includes('.')) return false; // most segments: no split, no regex
  const name = seg.split(/[;?#]/, 1)[0]!;
  return /^[. ]+$/.test(name) && name.includes('.');
}

/**
 * One round of decoding. A `%` that does not start an escape is data at
 * this level (`100%25` decodes to `100%`, which is a name, not an error);
 * a run of escapes that is not valid UTF-8 gives undefined.
 */
function decodeEscapes(s: string): string | undefined {
  let bad = false;
  const out = s.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
    try {
      return decodeURIComponent(run);
    } catch {
      bad = true;
      return run;
    }
  });
  return bad ? undefined : out;
}
