import { defineConfig } from 'vitest/config';

// Native addons and fork() do not mix with worker threads: every test file runs in its own
// forked process (the `forks` pool), so a crash or a leaked child stays inside that file.
export default defineConfig({
  test: {
    pool: 'forks',
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Timing-sensitive fork tests share 2 cores badly; one file at a time keeps them honest.
    fileParallelism: false,
    // Leak tests (fds, RSS) call gc() before they measure.
    execArgv: ['--expose-gc'],
  },
});
