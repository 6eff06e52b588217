import { ConfigError } from '../protocol/tunnel-error.js';

/**
 * How TOOL_SECRET is sent to the tool, per TOOL_TYPE:
 *
 * | TOOL_TYPE     | header                                         |
 * |---------------|------------------------------------------------|
 * | github        | Authorization: Bearer <secret>                 |
 * | gitlab        | PRIVATE-TOKEN: <secret>                        |
 * | bitbucket     | Authorization: Bearer <secret>                 |
 * | azuredevops   | Authorization: Basic base64(":" + <secret>)    |
 * | jenkins       | Authorization: Basic base64(<secret>)  (user:token) |
 * | bearer        | Authorization: Bearer <secret>                 |
 * | header:<Name> | <Name>: <secret>                               |
 */
export interface Credential {
  /** Header to set. */
  name: string;
  /** Value to set (holds the secret: never log). */
  value: string;
  /** Lower-case header names removed from the caller's request first. */
  strip: ReadonlySet<string>;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const AUTH_HEADERS = ['authorization', 'private-token', 'job-token', 'x-api-key'];

export function credentialFor(toolType: string, secret: string): Credential {
  const strip = (extra?: string): ReadonlySet<string> => new Set([...AUTH_HEADERS, ...(extra ? [extra] : [])]);
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
    case 'jenkins':
      if (!secret.includes(':')) {
        throw new ConfigError('TOOL_SECRET', 'for TOOL_TYPE=jenkins it must be "<user>:<api token>"');
      }
      return { name: 'authorization', value: `Basic ${Buffer.from(secret).toString('base64')}`, strip: strip() };
  }
  if (type.toLowerCase().startsWith('header:')) {
    const name = type.slice('header:'.length).trim();
    if (!TOKEN.test(name)) throw new ConfigError('TOOL_TYPE', `"${name}" is not a valid header name`);
    return { name, value: secret, strip: strip(name.toLowerCase()) };
  }
  throw new ConfigError(
    'TOOL_TYPE',
    `unknown type ${JSON.stringify(type)}; use github, gitlab, bitbucket, azuredevops, jenkins, bearer or header:<Name>`,
  );
}
