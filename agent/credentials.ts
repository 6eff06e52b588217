import { ConfigError } from '../protocol/tunnel-error.js';

/**
 * How TOOL_SECRET is sent to the tool, per TOOL_TYPE (the exact header the
 * tool receives; names as sent on the wire):
 *
 * | TOOL_TYPE     | header                                              |
 * |---------------|-----------------------------------------------------|
 * | github        | authorization: Bearer <secret>                      |
 * | gitlab        | private-token: <secret>                             |
 * | bitbucket     | authorization: Bearer <secret>                      |
 * | azuredevops   | authorization: Basic base64(":" + <secret>)         |
 * | jenkins       | authorization: Basic base64(<secret>)  (user:token) |
 * | bearer        | authorization: Bearer <secret>                      |
 * | header:<Name> | <Name>: <secret>                                    |
 *
 * Every caller-supplied header in `CALLER_CREDENTIAL_HEADERS` (and `<Name>`)
 * is removed first, in any letter case and however often it was sent, so the
 * tool sees exactly one credential: the agent's.
 */
export interface Credential {
  /** Header to set. */
  name: string;
  /** Value to set (holds the secret: never log). */
  value: string;
  /** Lower-case header names removed from the caller's request first. */
  strip: ReadonlySet<string>;
}

/**
 * Headers a caller could authenticate with at the tools Postern targets:
 * `Authorization` (all), `PRIVATE-TOKEN`, `JOB-TOKEN`, `DEPLOY-TOKEN`
 * (GitLab), `X-API-Key` (common API gateways), `Cookie` (a session: GitLab,
 * Jenkins and Azure DevOps all accept one). `Proxy-Authorization` is
 * hop-by-hop and never crosses the tunnel anyway.
 */
export const CALLER_CREDENTIAL_HEADERS: readonly string[] = [
  'authorization',
  'private-token',
  'job-token',
  'deploy-token',
  'x-api-key',
  'cookie',
];

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Header names `header:<Name>` may not use: they describe the connection or
 * the message framing (RFC 9110 §7.6.1, §8.6; RFC 9112 §6), so the agent or
 * its HTTP client sets or drops them.
 */
const RESERVED = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'te',
  'trailer',
  'upgrade',
  'expect',
  'http2-settings',
]);

/**
 * A header value may not hold control characters (RFC 9110 §5.5): the HTTP
 * client would refuse every request, so refuse the setting at start instead.
 */
function checkSecret(secret: string): void {
  // The messages never echo the value: it is the secret.
  if (/[\x00-\x08\x0a-\x1f\x7f]/.test(secret)) {
    throw new ConfigError('TOOL_SECRET', 'contains a line break or control character (check for a trailing newline or \\r)');
  }
  if (secret !== secret.trim()) {
    throw new ConfigError('TOOL_SECRET', 'starts or ends with white space (check for stray quotes or spaces)');
  }
}

export function credentialFor(toolType: string, secret: string): Credential {
  checkSecret(secret);
  const strip = (extra?: string): ReadonlySet<string> =>
    new Set([...CALLER_CREDENTIAL_HEADERS, ...(extra ? [extra] : [])]);
  const type = toolType.trim();
  switch (type.toLowerCase()) {
    case 'github':
    case 'bitbucket':
    case 'bearer':
      return { name: 'authorization', value: `Bearer ${secret}`, strip: strip() };
    case 'gitlab':
      return { name: 'private-token', value: secret, strip: strip() };
    case 'azuredevops':
      return { name: 'authorization', value: `Basic ${Buffer.from(`:${secret}`).toString('base64')}`, strip: strip() };
    case 'jenkins': {
      const colon = secret.indexOf(':');
      if (colon <= 0 || colon === secret.length - 1) {
        throw new ConfigError('TOOL_SECRET', 'for TOOL_TYPE=jenkins it must be "<user>:<api token>"');
      }
      return { name: 'authorization', value: `Basic ${Buffer.from(secret).toString('base64')}`, strip: strip() };
    }
  }
  if (type.toLowerCase().startsWith('header:')) {
    const name = type.slice('header:'.length).trim();
    if (!TOKEN.test(name)) throw new ConfigError('TOOL_TYPE', `"${name}" is not a valid header name`);
    if (RESERVED.has(name.toLowerCase())) {
      throw new ConfigError('TOOL_TYPE', `"${name}" describes the connection or message framing; it cannot carry a credential`);
    }
    return { name, value: secret, strip: strip(name.toLowerCase()) };
  }
  throw new ConfigError(
    'TOOL_TYPE',
    `unknown type ${JSON.stringify(type)}; use github, gitlab, bitbucket, azuredevops, jenkins, bearer or header:<Name>`,
  );
}
