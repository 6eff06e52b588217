import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration tests open real sockets and child processes; keep the
    // per-test ceiling generous for the 64 MiB transfers on a 2-core CI box.
    testTimeout: 60_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Builds the CLI once for the tests that run it as a real process.
    globalSetup: ['test/global-setup.ts'],
  },
});
