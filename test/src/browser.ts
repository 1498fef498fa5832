import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { root } from './cliProcesses.js';

// Debian's Chromium, driven by playwright-core: the browser tests need it (.ci/run installs it).
// A browser that cannot start fails the test that wanted it: nothing here skips.

export const CHROMIUM = '/usr/bin/chromium';

/** Where browser specs save their screenshots (gitignored). */
export function outputDir(name: string): string {
  const dir = join(root, 'test-output', name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** A fresh Chromium (its own user-data-dir, removed by `close`). */
export async function launchChromium(): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium; .ci/run does it)`);
  const userDataDir = mkdtempSync(join(tmpdir(), 'rxswarm-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
    viewport: { width: 1400, height: 1000 },
    timeout: 30_000,
  });
  return {
    context,
    async close() {
      await context.close().catch(() => undefined);
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/** Builds the dashboard from dashboard/ into a directory of the test's own (serve takes it from RXSWARM_DASHBOARD_DIR). */
export function buildDashboard(): string {
  const dir = mkdtempSync(join(tmpdir(), 'rxswarm-dashboard-'));
  execFileSync(process.execPath, [join(root, 'scripts', 'buildDashboard.mjs'), dir], { cwd: root, stdio: 'pipe', timeout: 60_000 });
  return dir;
}
