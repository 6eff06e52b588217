import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { AuthGuard } from './auth-guard.js';
import { serverStatus, type StatusSources } from './server-status.js';
import { hashToken, tokenMatches } from './secrets.js';
import { renderStatusFragment, renderStatusPage } from './status-page-html.js';

export interface StatusPageOptions extends StatusSources {
  adminToken: string;
  /**
   * Rate-limits failed authentications per source address. Pass the admin
   * API's guard: both surfaces accept the same token, so a guesser must not
   * get a second allowance by switching between them.
   */
  guard: AuthGuard;
  /** How often the page refreshes itself, ms. Default 2000. */
  refreshMs?: number;
}

/** Default refresh: fresh enough to watch a reconnect, one small request per tab every 2 s. */
export const STATUS_PAGE_REFRESH_MS = 2_000;
/** Without JavaScript the whole page reloads: less often. */
const NOSCRIPT_REFRESH_SECONDS = 5;

/** What the 401 asks browsers for: any user name, the admin token as password. */
export const STATUS_PAGE_CHALLENGE = 'Basic realm="postern", charset="UTF-8"';

/**
 * `Content-Security-Policy` of the page: only its own inline style and
 * script (by nonce), fetches to its own origin, nothing else: no images,
 * fonts, frames, forms or base URL, and no framing by other pages.
 * Without a nonce (fragment, errors): nothing at all may load.
 */
export function statusPageCsp(nonce?: string): string {
  const inline = nonce === undefined ? [] : [`script-src 'nonce-${nonce}'`, `style-src 'nonce-${nonce}'`, `connect-src 'self'`];
  return ["default-src 'none'", ...inline, "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'"].join('; ');
}

/**
 * The admin token a request presents: the password of `Basic` (any user
 * name; browsers can send nothing else on navigation) or a `Bearer` token.
 * undefined when there is no Authorization header at all (a browser's
 * first try, before the 401 challenge); '' when one is there but unusable.
 */
export function presentedToken(header: string | undefined): string | undefined {
  if (header === undefined || header === '') return undefined;
  const basic = /^basic[ \t]+(\S+)[ \t]*$/i.exec(header);
  if (basic) {
    const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon === -1 ? '' : decoded.slice(colon + 1);
  }
  const bearer = /^bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return bearer ? bearer[1]! : '';
}

/**
 * The status page on the private listener: `GET /ui` (the whole page) and
 * `GET /ui/fragment` (its live part, fetched by the page's script every
 * `refreshMs`). Both need the admin token, as a Basic password or a Bearer
 * token, compared in constant time. A wrong one counts in `guard`; a
 * request with no credentials at all is only challenged (every browser
 * sends one before it asks its user), not counted.
 *
 * Every answer carries a strict CSP, `nosniff`, `no-referrer` and
 * `no-store`: the page lists client names and agent addresses.
 */
async function statusPage(app: FastifyInstance, opts: StatusPageOptions): Promise<void> {
  const adminHash = hashToken(opts.adminToken);
  const refreshMs = opts.refreshMs ?? STATUS_PAGE_REFRESH_MS;
  const status = (): ReturnType<typeof serverStatus> => serverStatus(opts);

  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    if (await opts.guard.refuseIfBlocked(req, reply)) return;
    const token = presentedToken(req.headers.authorization);
    if (token !== undefined && tokenMatches(token, adminHash)) return;
    if (token !== undefined) {
      // The path only (a query could carry anything the caller typed).
      opts.guard.failed(req, 'status page refused: bad admin token', { method: req.method, path: req.url.split('?')[0]!.slice(0, 200) });
      // As the admin API: a refused caller's connection is not kept.
      reply.header('connection', 'close');
    }
    await reply
      .code(401)
      .header('www-authenticate', STATUS_PAGE_CHALLENGE)
      .type('text/plain; charset=utf-8')
      .send('401 Unauthorized: log in with any user name and the admin token (POSTERN_ADMIN_TOKEN) as password.\n');
  });

  app.addHook('onSend', async (_req, reply, payload) => {
    if (!reply.hasHeader('content-security-policy')) reply.header('content-security-policy', statusPageCsp());
    reply
      .header('x-content-type-options', 'nosniff')
      .header('x-frame-options', 'DENY')
      .header('referrer-policy', 'no-referrer')
      .header('cache-control', 'no-store');
    return payload;
  });

  const page = async (_req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const nonce = randomBytes(16).toString('base64');
    const body = renderStatusPage(status(), { nonce, refreshMs, noscriptRefreshSeconds: NOSCRIPT_REFRESH_SECONDS });
    return reply.header('content-security-policy', statusPageCsp(nonce)).type('text/html; charset=utf-8').send(body);
  };
  app.get('/ui', page);
  app.get('/ui/', page);

  app.get('/ui/fragment', async (_req, reply) =>
    reply.type('text/html; charset=utf-8').send(renderStatusFragment(status()).value),
  );
}

export default fp(statusPage, { name: 'postern-status-page', encapsulate: true });
