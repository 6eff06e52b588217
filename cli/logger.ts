import { pino, type Logger } from 'pino';

/**
 * Paths pino blanks in every log line. Secrets are also kept out of log
 * calls in the first place; this is the second line of defence.
 */
export const REDACT_PATHS = [
  'clientToken',
  'token',
  'adminToken',
  'secret',
  'authorization',
  'headers.authorization',
  'headers["private-token"]',
  'req.headers.authorization',
  'req.headers["private-token"]',
  '*.clientToken',
  '*.token',
  '*.adminToken',
  '*.secret',
  '*.authorization',
];

/** JSON lines on stderr (stdout stays free for command output). */
export function createLogger(name: string, level = process.env.POSTERN_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name, level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, pino.destination(2));
}
