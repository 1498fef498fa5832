import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { PhiAccrualDetector } from '../../operators/phiAccrualDetector.js';
import { buildDashboard, launchChromium, outputDir } from './browser.js';
import { cliProcesses, type Proc } from './cliProcesses.js';

// The dashboard in Debian's Chromium against a real `rxswarm serve` with agent processes: the
// token asked once, agents appearing, a SIGKILLed agent suspected then down within the detector's
// bound, progress moving, cancel from the page, a wrong token refused. Screenshots go to
// test-output/dashboard/.

const TOKEN = randomBytes(12).toString('hex');
const HEARTBEAT_MS = 200;
const { start, killAll } = cliProcesses(TOKEN, 60_000);
const shots = outputDir('dashboard');

/** How long after its last beat serve's detector suspects a silent agent (its settings for HEARTBEAT_MS). */
function detectionBoundMs(): number {
  const detector = new PhiAccrualDetector({ firstHeartbeatEstimateMs: HEARTBEAT_MS, acceptableHeartbeatPauseMs: 2 * HEARTBEAT_MS, minStdDeviationMs: HEARTBEAT_MS / 10 });
  for (let i = 0; i <= 30; i++) detector.heartbeat(i * HEARTBEAT_MS);
  return (detector.suspicionAt() as number) - 30 * HEARTBEAT_MS;
}

/** Polls `check` every 25 ms until it is true; rejects after `ms`. */
async function until(what: string, ms: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise(resolve => setTimeout(resolve, 25));
  }
}

const taskFile = (id: string, subtasks: number, sleepMs: number): string => {
  const file = join(tmpdir(), `rxswarm-dashboard-${id}-${process.pid}.json`);
  writeFileSync(file, JSON.stringify({ id, subtasks: Array.from({ length: subtasks }, (_, i) => ({ id: `${id}-${i}`, payload: { sleepMs } })) }));
  return file;
};

const progressOf = async (page: Page, taskId: string): Promise<number> => Number(await page.locator(`[data-task="${taskId}"]`).getAttribute('data-progress', { timeout: 2000 }).catch(() => '0'));
const stateOf = async (page: Page, selector: string): Promise<string | null> => page.locator(selector).getAttribute('data-state', { timeout: 2000 }).catch(() => null);

describe('the dashboard in Chromium', () => {
  let dashboard: string;
  let browser: Awaited<ReturnType<typeof launchChromium>> | undefined;
  const files: string[] = [];

  beforeAll(() => {
    dashboard = buildDashboard();
    process.env['RXSWARM_DASHBOARD_DIR'] = dashboard;
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    killAll();
    rmSync(dashboard, { recursive: true, force: true });
    for (const file of files) rmSync(file, { force: true });
  });

  it('shows agents, progress, an agent killed suspected then down, cancels from the page, refuses a wrong token', async () => {
    const serve = start('serve', '--port', '0', '--heartbeat-ms', String(HEARTBEAT_MS), '--topology', 'star', '--max-tasks', '1'); // one at a time: the second task queues
    const url = /listening on (ws:\/\/\S+)/.exec(await serve.line(/listening on ws:\/\//))![1]!;
    const http = url.replace(/^ws/, 'http');
    const agents: Proc[] = ['web-0', 'web-1', 'web-2'].map(id => start('agent', '--connect', url, '--id', id, '--slots', '2', '--heartbeat-ms', String(HEARTBEAT_MS)));
    await Promise.all(['web-0', 'web-1', 'web-2'].map(id => serve.line(new RegExp(`agent ${id} connected`))));

    browser = await launchChromium();
    const page = await browser.context.newPage();
    const errors: string[] = [];
    page.on('pageerror', err => errors.push(err.message));

    // A wrong token: refused, and the token is asked again.
    await page.goto(`${http}/#token=not-the-token`);
    await page.getByTestId('refused').waitFor({ timeout: 10_000 });
    expect(await page.getByTestId('refused').textContent()).toMatch(/invalid token/);
    expect(page.url()).not.toContain('not-the-token'); // taken off the address bar
    await page.screenshot({ path: join(shots, '1-refused.png') });

    // The right token, typed once; a reload does not ask again (kept for the tab).
    await page.locator('input[name=token]').fill(TOKEN);
    await page.locator('button[type=submit]').click();
    await page.getByTestId('connection').filter({ hasText: 'live' }).waitFor({ timeout: 10_000 });
    await page.reload();
    await page.getByTestId('connection').filter({ hasText: 'live' }).waitFor({ timeout: 10_000 });
    await until('three agents alive on the page', 10_000, async () => (await page.locator('[data-agent][data-state=alive]').count()) === 3);
    await page.screenshot({ path: join(shots, '2-agents.png') });

    // A long task and one queued behind it.
    const long = taskFile('long', 600, 300);
    const short = taskFile('short', 12, 20);
    files.push(long, short);
    const runLong = start('run', long, '--connect', url, '--json');
    await serve.line(/client run-\d+-\w+ connected/);
    await until('the long task running on the page', 30_000, async () => (await stateOf(page, '[data-task="long"]')) === 'running');
    const runShort = start('run', short, '--connect', url, '--json');
    await until('the short task queued #1', 30_000, async () => (await page.locator('[data-task="short"]').textContent({ timeout: 2000 }).catch(() => ''))?.includes('#1') === true);

    // Progress moves.
    await until('progress above 0', 10_000, async () => (await progressOf(page, 'long')) > 0);
    const before = await progressOf(page, 'long');
    await until('progress moving', 10_000, async () => (await progressOf(page, 'long')) > before);
    await page.locator('[data-subtask]').first().click();
    await page.getByTestId('timeline').filter({ hasText: 'assigned' }).waitFor({ timeout: 5000 });
    await page.screenshot({ path: join(shots, '3-running.png') });

    // An agent killed: suspected, then down, within the detector's bound + 1 s.
    const bound = detectionBoundMs();
    const killedAt = Date.now();
    agents[2]!.child.kill('SIGKILL');
    await until('web-2 down on the page', bound + 1000 + 2000, async () => (await stateOf(page, '[data-agent="web-2"]')) === 'down');
    const downSeenAfter = Date.now() - killedAt;
    const transitions = (await page.locator('[data-agent="web-2"] [data-transitions]').getAttribute('data-transitions'))!.split(' ');
    expect(transitions.lastIndexOf('suspected')).toBeGreaterThan(-1);
    expect(transitions.lastIndexOf('suspected')).toBeLessThan(transitions.lastIndexOf('down'));
    expect(downSeenAfter).toBeLessThanOrEqual(bound + 1000);
    await page.screenshot({ path: join(shots, '4-agent-down.png') });

    // `status --json` says the same.
    const status = start('status', '--connect', url, '--json');
    expect(await status.exited).toBe(0);
    const json = JSON.parse(status.lines.join('\n')) as { agents: Array<{ id: string; state: string; phi: number | null; slots: number; running: number; usage: number }>; protocol: string; tasks: Array<{ id: string; state: string; queuePosition: number | null }> };
    expect(json.protocol).toBe('star');
    expect(json.agents.find(a => a.id === 'web-2')?.state).toBe('down');
    expect(Object.keys(json.agents.find(a => a.id === 'web-0')!).sort()).toEqual(['id', 'phi', 'running', 'slots', 'state', 'usage']);
    expect(json.tasks.find(t => t.id === 'short')).toMatchObject({ state: 'queued', queuePosition: 1 });

    // Cancel from the page (two clicks: the first asks again): the long task ends cancelled,
    // its unfinished subtasks failed with the reason `cancelled`; the queued one starts.
    await page.getByTestId('cancel-long').click();
    await page.getByTestId('cancel-long').filter({ hasText: 'really cancel?' }).click();
    await until('the long task cancelled on the page', 10_000, async () => (await stateOf(page, '[data-task="long"]')) === 'cancelled');
    expect(await runLong.exited).toBe(1);
    const result = JSON.parse(runLong.lines.join('\n')) as { success: boolean; failed: Record<string, string> };
    expect(result.success).toBe(false);
    expect(Object.values(result.failed).length).toBeGreaterThan(0);
    expect(new Set(Object.values(result.failed))).toEqual(new Set(['cancelled']));
    await until('the short task done', 15_000, async () => (await stateOf(page, '[data-task="short"]')) === 'done');
    expect(await runShort.exited).toBe(0);
    await page.screenshot({ path: join(shots, '5-cancelled.png'), fullPage: true });
    expect(errors).toEqual([]);
  }, 120_000);
});
