import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    globals: true,
    include: ['test/**/*.spec.ts'],
    exclude: ['test/e2e/**', 'node_modules/**'],
    // Two cores: one fork per core keeps the property suites from starving each other.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
  },
});
