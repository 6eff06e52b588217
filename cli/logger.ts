import { pino, type Logger } from 'pino';

/**
 * Paths pino blanks in every log line. Secrets are also kept out of log
 * calls in the first place; this is the second line of defence.
 */
export const REDACT_PATHS = [
  'clientToken',
  'token',
  'adminToken',
  'apiKey',
  'secret',
  'password',
  'credential',
  'authorization',
  'cookie',
  'headers.authorization',
  'headers.cookie',
  'headers["private-token"]',
  'headers["x-api-key"]',
  'headers["x-postern-api-key"]',
  'headers["proxy-authorization"]',
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["private-token"]',
  'req.headers["x-api-key"]',
  'req.headers["x-postern-api-key"]',
  'req.headers["proxy-authorization"]',
  '*.clientToken',
  '*.token',
  '*.adminToken',
  '*.apiKey',
  '*.secret',
  '*.password',
  '*.credential',
  '*.authorization',
  '*.cookie',
];

/** JSON lines on stderr (stdout stays free for command output). */
export function createLogger(name: string, level = process.env.POSTERN_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name, level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, pino.destination(2));
}
