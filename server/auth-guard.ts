import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { ErrorCodes } from '../protocol/error-codes.js';
import { addressKey, AddressLimiter } from './address-limiter.js';
import { errorBody } from './http-errors.js';
import type { ServerConfig } from './server-config.js';

/**
 * Brute-force protection of one authenticated surface (the agents' tunnel
 * endpoint, the admin API): failed authentications are counted per source
 * address (AddressLimiter), and an address that reaches
 * POSTERN_AUTH_FAILURE_LIMIT within POSTERN_AUTH_FAILURE_WINDOW_MS is
 * answered `429 too_many_auth_failures` for POSTERN_AUTH_BLOCK_MS, before
 * its credentials are even looked at.
 *
 * Logging is bounded too: the first failure of an address in a window is
 * logged (warn), the rest at debug, and the block once, with the count.
 * Nothing presented (token, header value) is ever logged.
 */
export class AuthGuard {
  private readonly limiter: AddressLimiter;

  constructor(
    private readonly surface: 'tunnel' | 'admin',
    private readonly config: Pick<ServerConfig, 'authFailureLimit' | 'authFailureWindowMs' | 'authBlockMs'>,
    /** Told of each failure (the metrics' counter). */
    private readonly onFailure?: () => void,
  ) {
    this.limiter = new AddressLimiter({
      limit: config.authFailureLimit,
      windowMs: config.authFailureWindowMs,
      blockMs: config.authBlockMs,
    });
  }

  /**
   * Answers 429 (and returns true) if the request's address is blocked.
   * Costs one map lookup otherwise, so a successful authentication is not slowed.
   */
  async refuseIfBlocked(req: FastifyRequest, reply: FastifyReply): Promise<boolean> {
    const waitMs = this.limiter.retryAfterMs(addressKey(req.ip));
    if (waitMs === 0) return false;
    req.log.debug({ remote: req.ip, surface: this.surface }, 'refused: address blocked after failed authentications');
    const retryAfter = Math.ceil(waitMs / 1000);
    const info = ErrorCodes.TOO_MANY_AUTH_FAILURES;
    await reply
      .code(info.status)
      .header('retry-after', String(retryAfter))
      // A refused caller's connection is not kept: no body of its is read.
      .header('connection', 'close')
      .send(errorBody(info, req.id, `too many failed authentications from this address; try again in ${retryAfter} s`));
    return true;
  }

  /**
   * Counts a failed authentication and logs it as described above. `what`
   * is the log message of a first failure; `fields` must hold no secret.
   */
  failed(req: FastifyRequest, what: string, fields: Record<string, unknown> = {}): void {
    this.onFailure?.();
    const verdict = this.limiter.recordFailure(addressKey(req.ip));
    const log: Logger = req.log as unknown as Logger;
    const context = { remote: req.ip, surface: this.surface, failures: verdict.failures, ...fields };
    if (verdict.first) log.warn(context, what);
    else log.debug(context, what);
    if (verdict.blocked) {
      log.warn(
        { ...context, windowMs: this.config.authFailureWindowMs, blockMs: this.config.authBlockMs },
        'too many failed authentications: address blocked',
      );
    }
  }
}
