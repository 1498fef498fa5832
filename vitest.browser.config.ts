import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

// The specs that drive Chromium (test/**/*.browser.spec.ts), one file at a time, after the rest
// (`npm test` runs both configs). Settings as the base's, these three replaced (not merged).
export default defineConfig({
  test: {
    ...base.test,
    include: ['test/**/*.browser.spec.ts'],
    exclude: ['node_modules/**'],
    maxWorkers: 1,
  },
});
