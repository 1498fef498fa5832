/**
 * The dashboard at scale: a service with 1,000 agents runs tasks of 50,000 subtasks, with and
 * without the dashboard open in Chromium (Debian's, headless), in one process and one run:
 *
 * - throughput: subtasks per second of the coordinator (its own `durationMs`) in seven runs:
 *   closed, the page loading during the run, closed, the page open through the run, closed, open
 *   through the run, closed; the median of the open runs is compared with that of the closed ones
 *   (target >= 0.9×; the run that loads the page is reported beside it). Interleaved because the
 *   machine is shared: load that comes and goes lands on both sides;
 * - first render: from navigation to the page's first render holding 1,000 agents and 50,000
 *   subtask rows (target <= 1 s), during a run and on the idle coordinator (the render of agents,
 *   tasks and attention alone, which comes first, is reported beside it);
 * - update lag: per batch drawn, from the earliest change it carries (the service's clock) to its
 *   render in the page (the same machine's clock): median and 95th percentile (target <= 100 ms),
 *   for the page open through a run and for the one loaded during a run.
 *
 * `RXSWARM_BENCH_PROFILE=DIR` also saves the loading page's CPU profile and performance trace
 * there (open them in Chromium's DevTools); with `node --cpu-prof` the service's side too.
 *
 * The agents are in-process (the coordinator's own `agents`: each subtask takes 5 ms of timer
 * work), so what is measured is the coordinator and the dashboard's feed, not 1,000 sockets. The
 * browser shares the machine's cores with the coordinator: on the two cores of a CI machine that
 * counts against the open run.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Page } from 'playwright-core';
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
    const rowsIn = (page: Page): Promise<unknown> =>
      // Functions, not strings: the page's CSP allows no eval.
      page.waitForFunction(n => (globalThis as unknown as InPage).document.querySelector('[data-testid=subtasks]')?.getAttribute('data-rows') === String(n), SUBTASKS, { timeout: 30_000 });
    const closed = [await run('closed-1')];

    // The page comes while a task runs (its first state holds every agent and subtask row).
    const running = run('loading');
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
    await rowsIn(page);
    const loading = await running;
    const measures = await page.evaluate(() => (globalThis as unknown as InPage).__rxswarm);
    if (cdp !== undefined && PROFILE !== undefined) {
      const { profile } = await cdp.send('Profiler.stop');
      mkdirSync(PROFILE, { recursive: true });
      const ended = new Promise(resolve => cdp.once('Tracing.tracingComplete', resolve));
      await cdp.send('Tracing.end');
      await ended;
      writeFileSync(join(PROFILE, 'page-loading.trace.json'), JSON.stringify({ traceEvents: trace }));
      writeFileSync(join(PROFILE, 'page-loading.cpuprofile'), JSON.stringify(profile));
    }
    await page.close();
    closed.push(await run('closed-2'));

    // A page opened on the idle coordinator (it holds the finished tasks' rows), then left open
    // through a whole run: the dashboard open, as a user keeps it.
    // Twice, each followed by a closed run: one pair says little on a machine shared with others.
    const opens: number[] = [];
    const lags: number[] = [];
    let quiet: PageMeasures | undefined;
    let drawn = 0;
    let received = 0;
    for (const k of [1, 2]) {
      const live = await browser.newPage();
      await live.goto(`${http}/#token=${TOKEN}`);
      await rowsIn(live);
      const before = await live.evaluate(() => (globalThis as unknown as InPage).__rxswarm);
      quiet ??= before;
      await live.evaluate(() => void ((globalThis as unknown as InPage).__rxswarm.lags.length = 0));
      opens.push(await run(`open-${k}`));
      const steady = await live.evaluate(() => (globalThis as unknown as InPage).__rxswarm);
      if (process.env['RXSWARM_BENCH_LAGS'] === '1') process.stderr.write(`lags (open through run ${k}), in order: ${steady.lags.map(Math.round).join(' ')}\n`);
      lags.push(...steady.lags);
      drawn += steady.lags.length;
      received += steady.batches - before.batches;
      await live.close();
      closed.push(await run(`closed-${k + 2}`));
    }
    const open = median(opens);
    const baseline = median(closed);
    const load = `load average ${loadavg().map(l => l.toFixed(1)).join(' ')} at the end`;
    const p95 = (values: readonly number[]): number => {
      const sorted = [...values].sort((a, b) => a - b);
      return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.95))] ?? NaN;
    };
    const marks = (m: PageMeasures): string => Object.entries(m.marks).map(([k, v]) => `${k} ${v}`).join(', ');
    return [
      { suite: SUITE, case: 'throughput, dashboard closed (median of 4 runs)', value: baseline, unit: 'subtasks/s', note: `${closed.map(Math.round).join(', ')} (in the order run); ${load}` },
      { suite: SUITE, case: 'throughput, dashboard open through the run (median of 2)', value: open, unit: 'subtasks/s', ratio: { against: 'closed', value: open / baseline }, target: '>= 0.9x', note: opens.map(Math.round).join(', ') },
      { suite: SUITE, case: 'throughput, the page loading during the run', value: loading, unit: 'subtasks/s', ratio: { against: 'closed', value: loading / baseline }, note: 'its first render of 1,000 agents and 50,000 rows inside an 8-15 s run' },
      { suite: SUITE, case: 'first render: agents, tasks, attention (run)', value: measures.firstRenderMs ?? NaN, unit: 'ms' },
      { suite: SUITE, case: 'first render with every subtask row, during the run', value: measures.allRowsMs ?? NaN, unit: 'ms', target: '<= 1000', note: marks(measures) },
      { suite: SUITE, case: 'first render: agents, tasks, attention (idle)', value: quiet?.firstRenderMs ?? NaN, unit: 'ms' },
      { suite: SUITE, case: 'first render with every subtask row, coordinator idle', value: quiet?.allRowsMs ?? NaN, unit: 'ms', target: '<= 1000', note: `${quiet === undefined ? '' : marks(quiet)}; it holds the 3 tasks run so far` },
      { suite: SUITE, case: 'update lag, median (open through the runs)', value: median(lags), unit: 'ms', note: `${drawn} batches drawn of ${received} received` },
      { suite: SUITE, case: 'update lag, 95th percentile (open through the runs)', value: p95(lags), unit: 'ms', target: '<= 100' },
      { suite: SUITE, case: 'update lag, median (page loading during the run)', value: median(measures.lags), unit: 'ms', note: `${measures.lags.length} batches drawn of ${measures.batches} received` },
      { suite: SUITE, case: 'update lag, 95th percentile (page loading during the run)', value: p95(measures.lags), unit: 'ms', target: '<= 100' },
    ];
  } finally {
    await browser.close();
    rmSync(userDataDir, { recursive: true, force: true });
    await service.close();
  }
}
