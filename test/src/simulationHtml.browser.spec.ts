import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describeFault, parseFaultSpec } from '../../streams/faultSpec.js';
import { launchChromium, outputDir } from './browser.js';
import { cliProcesses } from './cliProcesses.js';

// `rxswarm simulate --html`: the page written, opened in Chromium, shows every injected fault
// with what was detected, and loads nothing from anywhere.

const SPEC = 'crash:agent-1@2s,hang:agent-2@3s,partition:agent-3+agent-4@4s-9s,slow:agent-5@1sx4';

describe('simulate --html', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rxswarm-report-'));
  const { start, killAll } = cliProcesses('unused', 60_000);
  let browser: Awaited<ReturnType<typeof launchChromium>> | undefined;

  afterAll(async () => {
    await browser?.close();
    killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes a self-contained page that shows the injected faults and their detection', async () => {
    const file = join(dir, 'report.html');
    const run = start('simulate', '--agents', '12', '--subtasks', '300', '--faults', SPEC, '--html', file);
    expect(await run.exited).toBe(0);
    expect(run.lines.join('\n')).toContain(`wrote ${file}`);
    expect(existsSync(file)).toBe(true);
    expect(readFileSync(file, 'utf8')).not.toMatch(/<script|src=|href="http/);

    browser = await launchChromium();
    const page = await browser.context.newPage();
    const requested: string[] = [];
    page.on('request', request => requested.push(request.url()));
    await page.goto(pathToFileURL(file).href);
    const faults = parseFaultSpec(SPEC, Array.from({ length: 12 }, (_, i) => `agent-${i}`));
    const rows = page.locator('#faults tr[data-fault]');
    expect(await rows.count()).toBe(faults.length);
    for (const [i, fault] of faults.entries()) expect(await rows.nth(i).textContent()).toContain(describeFault(fault));
    expect(await rows.nth(0).textContent()).toMatch(/detected at \d+\.\d+ s/); // the crash
    expect(await page.locator('svg g.fault').count()).toBe(faults.length);
    expect(await page.locator('svg .detected').count()).toBeGreaterThan(0);
    expect(requested).toEqual([pathToFileURL(file).href]);
    await page.screenshot({ path: join(outputDir('simulation-report'), 'report.png'), fullPage: true });
  }, 90_000);
});
