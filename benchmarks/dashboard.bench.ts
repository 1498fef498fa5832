/**
 * The dashboard at scale: a service with 1,000 agents runs tasks of 50,000 subtasks, with and
 * without the dashboard open in Chromium (Debian's, headless), in one process and one run:
 *
 * - throughput: subtasks per second of the coordinator (its own `durationMs`), closed / open /
 *   closed again; the open run is compared with the mean of the two closed ones (target >= 0.9×);
 * - first render: from navigation to the page's first render holding 1,000 agents and 50,000
 *   subtask rows (target <= 1 s);
 * - update lag: per batch drawn, from the earliest change it carries (the service's clock) to its
 *   render in the page (the same machine's clock): median and 95th percentile (target <= 100 ms).
 *
 * The agents are in-process (the coordinator's own `agents`: each subtask takes 5 ms of timer
 * work), so what is measured is the coordinator and the dashboard's feed, not 1,000 sockets. The
 * browser shares the machine's cores with the coordinator: on the two cores of a CI machine that
 * counts against the open run.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { submitTask } from '../src/remote.js';
import { Service } from '../src/service.js';
import type { InProcessAgent } from '../streams/task.js';
import type { PageMeasures } from '../src/swarmWire.js';
import { median, type BenchRow } from './harness.js';

const AGENTS = Number(process.env['RXSWARM_BENCH_AGENTS'] ?? 1000);
const SUBTASKS = Number(process.env['RXSWARM_BENCH_SUBTASKS'] ?? 50_000);
const TOKEN = 'bench';
/** A directory: the page's CPU profile of the open run goes there (open it in Chromium's DevTools). */
const PROFILE = process.env['RXSWARM_BENCH_PROFILE'] || undefined;
const SUITE = `dashboard (${AGENTS} agents, ${SUBTASKS} subtasks)`;

const agents: InProcessAgent[] = Array.from({ length: AGENTS }, (_, i) => ({
  id: `agent-${i}`,
  capabilities: [],
  handle: () => new Promise(resolve => setTimeout(() => resolve(1), 5)),
}));

const task = (id: string) => ({ id, subtasks: Array.from({ length: SUBTASKS }, (_, i) => ({ id: `s-${i}` })) });

/** What the functions run in the page see (this file is compiled without the DOM's types). */
interface InPage {
  readonly document: { querySelector(selector: string): { getAttribute(name: string): string | null } | null };
  readonly __rxswarm: PageMeasures;
}

export default async function dashboardBench(): Promise<BenchRow[]> {
  const service = await Service.start({ token: TOKEN, port: 0, coordinator: { agents, topology: 'star' }, metrics: { processMetrics: false } });
  const http = service.url.replace(/^ws/, 'http');
  const userDataDir = mkdtempSync(join(tmpdir(), 'rxswarm-bench-chromium-'));
  const browser = await chromium.launchPersistentContext(userDataDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
    viewport: { width: 1400, height: 1000 },
  });
  try {
    const run = async (id: string): Promise<number> => {
      const result = await submitTask({ url: service.url, token: TOKEN, task: task(id) });
      if (result.metrics.completed !== SUBTASKS) throw new Error(`${id}: ${result.metrics.completed} of ${SUBTASKS} completed`);
      return (SUBTASKS * 1000) / result.metrics.durationMs;
    };
    const closed1 = await run('closed-1');

    // Open: the page comes while the task runs (its first state holds every agent and subtask row).
    const running = run('open');
    running.catch(() => undefined); // awaited below; a failure before then is reported by what failed first
    await new Promise(resolve => setTimeout(resolve, 500));
    const page = await browser.newPage();
    const trace: unknown[] = [];
    const cdp = PROFILE === undefined ? undefined : await browser.newCDPSession(page);
    if (cdp !== undefined) {
      await cdp.send('Profiler.enable');
      await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
      await cdp.send('Profiler.start');
      cdp.on('Tracing.dataCollected', ({ value }) => void trace.push(...value));
      await cdp.send('Tracing.start', { categories: 'devtools.timeline,disabled-by-default-devtools.timeline,v8.execute,blink,cc', transferMode: 'ReportEvents' });
    }
    await page.goto(`${http}/#token=${TOKEN}`);
    // Functions, not strings: the page's CSP allows no eval.
    await page.waitForFunction(n => (globalThis as unknown as InPage).document.querySelector('[data-testid=subtasks]')?.getAttribute('data-rows') === String(n), SUBTASKS, { timeout: 30_000 });
    const open = await running;
    const measures = await page.evaluate(() => (globalThis as unknown as InPage).__rxswarm);
    if (cdp !== undefined && PROFILE !== undefined) {
      const { profile } = await cdp.send('Profiler.stop');
      const ended = new Promise(resolve => cdp.once('Tracing.tracingComplete', resolve));
      await cdp.send('Tracing.end');
      await ended;
      writeFileSync(join(PROFILE, 'page-open.trace.json'), JSON.stringify({ traceEvents: trace }));
      mkdirSync(PROFILE, { recursive: true });
      writeFileSync(join(PROFILE, 'page-open.cpuprofile'), JSON.stringify(profile));
    }
    await page.close();

    // The same page on an idle coordinator that holds the finished 50,000 rows.
    const idle = await browser.newPage();
    await idle.goto(`${http}/#token=${TOKEN}`);
    await idle.waitForFunction(n => (globalThis as unknown as InPage).document.querySelector('[data-testid=subtasks]')?.getAttribute('data-rows') === String(n), SUBTASKS, { timeout: 30_000 });
    const quiet = await idle.evaluate(() => (globalThis as unknown as InPage).__rxswarm);
    await idle.close();

    const closed2 = await run('closed-2');
    const baseline = (closed1 + closed2) / 2;
    const load = `load average ${loadavg().map(l => l.toFixed(1)).join(' ')} at the end`;
    const lags = [...measures.lags].sort((a, b) => a - b);
    const p95 = lags[Math.min(lags.length - 1, Math.floor(lags.length * 0.95))] ?? NaN;
    return [
      { suite: SUITE, case: 'throughput, dashboard closed (mean of before and after)', value: baseline, unit: 'subtasks/s', note: `${Math.round(closed1)} before, ${Math.round(closed2)} after; ${load}` },
      { suite: SUITE, case: 'throughput, dashboard open', value: open, unit: 'subtasks/s', ratio: { against: 'closed', value: open / baseline }, target: '>= 0.9x' },
      { suite: SUITE, case: 'first render during the run', value: measures.firstRenderMs ?? NaN, unit: 'ms', target: '<= 1000', note: Object.entries(measures.marks).map(([k, v]) => `${k} ${v}`).join(', ') },
      { suite: SUITE, case: 'every subtask row in, during the run', value: measures.allRowsMs ?? NaN, unit: 'ms' },
      { suite: SUITE, case: 'first render, coordinator idle', value: quiet.firstRenderMs ?? NaN, unit: 'ms', target: '<= 1000', note: Object.entries(quiet.marks).map(([k, v]) => `${k} ${v}`).join(', ') },
      { suite: SUITE, case: 'every subtask row in, coordinator idle', value: quiet.allRowsMs ?? NaN, unit: 'ms' },
      { suite: SUITE, case: 'update lag, median', value: median(lags), unit: 'ms', note: `${lags.length} batches drawn of ${measures.batches} received` },
      { suite: SUITE, case: 'update lag, 95th percentile', value: p95, unit: 'ms', target: '<= 100' },
    ];
  } finally {
    await browser.close();
    rmSync(userDataDir, { recursive: true, force: true });
    await service.close();
  }
}
