import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    globals: true,
    include: ['test/**/*.spec.ts'],
    // The browser specs run after the rest, alone (vitest.browser.config.ts): Chromium beside the
    // process specs would make their wall-clock bounds a measure of the machine's load.
    exclude: ['test/e2e/**', 'node_modules/**', 'test/**/*.browser.spec.ts'],
    // Two cores: one fork per core keeps the property suites from starving each other.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
  },
});
