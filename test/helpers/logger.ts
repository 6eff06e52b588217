import { pino, type Logger } from 'pino';

/**
 * Logger for in-process servers and agents under test: silent unless
 * POSTERN_TEST_LOG_LEVEL is set (e.g. `debug`) when a failure needs a look.
 * The environment is read, never written.
 */
export function testLogger(name = 'postern-test'): Logger {
  return pino({ name, level: process.env.POSTERN_TEST_LOG_LEVEL ?? 'silent' });
}
