import { createRequire } from 'node:module';
import { pino, type DestinationStream, type Logger } from 'pino';
import { ConfigError } from '../protocol/tunnel-error.js';

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

export type LogFormat = 'json' | 'pretty';

/**
 * POSTERN_LOG_FORMAT: `json` (one JSON object per line, what log pipelines
 * read), `pretty` (coloured, one line per event, for people), or `auto`
 * (the default): pretty when stderr is a terminal, JSON otherwise, so a
 * container or a pipe always gets JSON.
 */
export function logFormat(env: NodeJS.ProcessEnv, stderrIsTTY: boolean): LogFormat {
  const raw = env.POSTERN_LOG_FORMAT?.trim().toLowerCase() ?? '';
  if (raw === '' || raw === 'auto') return stderrIsTTY ? 'pretty' : 'json';
  if (raw === 'json' || raw === 'pretty') return raw;
  throw new ConfigError('POSTERN_LOG_FORMAT', `expected auto, json or pretty, got ${JSON.stringify(env.POSTERN_LOG_FORMAT)}`);
}

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function logLevel(raw: string): string {
  const level = raw.trim().toLowerCase();
  if (!LEVELS.includes(level)) throw new ConfigError('POSTERN_LOG_LEVEL', `expected one of ${LEVELS.join(', ')}, got ${JSON.stringify(raw)}`);
  return level;
}

/**
 * pino-pretty, loaded only when wanted (a container never pays for it),
 * writing synchronously to stderr so a line is out before the process
 * exits. Redaction happens before it, in pino.
 */
function prettyStream(): DestinationStream {
  const pretty = createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty');
  return pretty({ destination: 2, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', singleLine: true });
}

/** Log lines on stderr (stdout stays free for command output and the audit log). */
export function createLogger(
  name: string,
  level = process.env.POSTERN_LOG_LEVEL ?? 'info',
  format: LogFormat = logFormat(process.env, process.stderr.isTTY === true),
): Logger {
  const options = { name, level: logLevel(level), redact: { paths: REDACT_PATHS, censor: '[redacted]' } };
  return pino(options, format === 'pretty' ? prettyStream() : pino.destination(2));
}
