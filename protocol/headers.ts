import type { HeaderList } from './frame-types.js';

/**
 * Postern's request id: set by the ingress on every answer and on the
 * request it sends through the tunnel, read by the agent for its logs.
 */
export const REQUEST_ID_HEADER = 'x-postern-request-id';

/** Header the agent names its client with on the tunnel upgrade; the token travels as Bearer. */
export const CLIENT_ID_HEADER = 'x-postern-client-id';

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1) are about one connection, not the
 * message: they are removed before a message crosses the tunnel, both ways.
 * `host` is set by whoever makes the next connection.
 */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'http2-settings',
]);

/**
 * Copies a flat header list without hop-by-hop headers, without the headers
 * named in `Connection`, and without any name in `drop` (lower case).
 */
export function stripHopByHop(raw: readonly string[], drop?: ReadonlySet<string>): HeaderList {
  let named: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === 'connection') {
      named ??= new Set();
      for (const token of raw[i + 1]!.split(',')) {
        const t = token.trim().toLowerCase();
        if (t) named.add(t);
      }
    }
  }
  const out: HeaderList = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || named?.has(lower) || drop?.has(lower)) continue;
    out.push(name, raw[i + 1]!);
  }
  return out;
}

/** First value of a header in a flat list (case-insensitive), or undefined. */
export function headerValue(list: readonly string[], name: string): string | undefined {
  const lower = name.toLowerCase();
  for (let i = 0; i < list.length; i += 2) if (list[i]!.toLowerCase() === lower) return list[i + 1];
  return undefined;
}
