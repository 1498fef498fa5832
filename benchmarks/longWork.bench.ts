/**
 * Minute-long silent work (an LLM call, a command): 50 agents, work 60 ± 30 s with no progress
 * reports, a 30 s progress floor, in virtual time (`simulate`, `progressReports: false`). The
 * progress deadline is learned per task from how long finished work kept silent, so:
 *
 * - hedges after the first ten completions, without faults: target 0 (before the deadline is
 *   learned, the floor may take a long call for a hang and start a backup in an idle slot);
 * - false suspicions (an agent suspected with nothing wrong): target 0;
 * - a real hang (agent-7 hangs mid-run): hedged within 2× the learned p99, measured from the hung
 *   attempt's last sign of life, as a ratio against the p99 the deadline was learned from;
 * - completion time with the hang against the same run without it (same seed): the hedge should
 *   cost about one backup's work, not a restart loop.
 *
 * `LONG_WORK_SEEDS=1,2,3` changes the seeds (medians over them; default 1…5).
 */
import { DEFAULT_DEADLINE_FACTOR } from '../operators/index.js';
import { simulate, type SimulationReport } from '../src/simulate.js';
import type { Fault } from '../streams/faults.js';
import { formatNumber, median, ratioRow, type BenchRow } from './harness.js';

const SUITE = 'minute-long silent work';
const SEEDS = (process.env['LONG_WORK_SEEDS'] ?? '1,2,3,4,5').split(',').map(Number);
const AGENTS = 50;
const SUBTASKS = 500;
const FLOOR_MS = 30_000;
const HUNG = 'agent-7';

function run(seed: number, faults: readonly Fault[]): SimulationReport {
  return simulate({
    seed,
    topology: 'star',
    agents: AGENTS,
    subtasks: SUBTASKS,
    workMs: { mean: 60_000, jitter: 30_000 },
    progressReports: false,
    progressTimeoutMs: FLOOR_MS,
    faults,
    untilMs: 6 * 3_600_000,
  });
}

export default function longWork(): BenchRow[] {
  const lateHedges: number[] = [];
  const falseSuspicions: number[] = [];
  const hedgeDelayOverP99: number[] = [];
  const slowdown: number[] = [];
  let failed = 0;
  for (const seed of SEEDS) {
    const clean = run(seed, []);
    const completions = clean.events.filter(e => e.type === 'subtask.completed');
    const tenth = completions[9]?.at ?? Infinity;
    lateHedges.push(clean.events.filter(e => e.type === 'subtask.hedged' && e.at > tenth).length);
    falseSuspicions.push(clean.falseSuspicions);
    // Hang agent-7 well after the deadline is learned (a few waves in).
    const hangAt = 200_000;
    const hung = run(seed, [{ kind: 'hang', agent: HUNG, atMs: hangAt }]);
    failed += clean.failed + hung.failed + clean.lost + hung.lost;
    falseSuspicions.push(hung.falseSuspicions);
    const silence = hung.events.find(e => e.type === 'subtask.silent' && e.agentId === HUNG && e.at >= hangAt);
    const hedge = silence === undefined ? undefined : hung.events.find(e => e.type === 'subtask.hedged' && e.of.agentId === HUNG && e.at >= silence.at);
    if (silence?.type === 'subtask.silent' && hedge !== undefined) {
      const p99 = silence.deadlineMs / DEFAULT_DEADLINE_FACTOR; // the learned deadline is factor × the p99 of finished silences
      hedgeDelayOverP99.push((hedge.at - (silence.at - silence.silentMs)) / p99);
    } else {
      hedgeDelayOverP99.push(Infinity);
    }
    slowdown.push(hung.finishedAtMs / clean.finishedAtMs);
  }
  const note = `${SEEDS.length} seeds; ${AGENTS} agents, ${SUBTASKS} subtasks of 60 ± 30 s, no progress reports, floor ${FLOOR_MS / 1000} s; failed or lost ${failed}`;
  return [
    { suite: SUITE, case: 'hedges after the 10th completion, no faults (max over seeds)', value: Math.max(...lateHedges), unit: 'hedges', target: '0', note },
    { suite: SUITE, case: 'false suspicions (max over seeds, with and without the hang)', value: Math.max(...falseSuspicions), unit: 'suspicions', target: '0' },
    ratioRow(SUITE, 'a hang hedged after its last sign of life (median)', median(hedgeDelayOverP99), '× p99', 'the learned p99', 1, '<= 2x', `per seed: ${hedgeDelayOverP99.map(r => formatNumber(r, 2)).join(', ')}`),
    ratioRow(SUITE, 'completion time with the hang (median)', median(slowdown), '×', 'the same run without it', 1, undefined, `per seed: ${slowdown.map(r => formatNumber(r, 3)).join(', ')}`),
  ];
}
