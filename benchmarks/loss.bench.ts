/**
 * Message loss (issue 12): completion time of a `simulate()` run under uniform loss on every link,
 * against the loss-free run of the same scenario and seed in the same process (the baseline row).
 *
 * - star and hierarchical, 10 and 100 agents, 5,000 subtasks (work 200 ± 50 ms, heartbeats
 *   1 s ± 100 ms, latency 2 ± 1 ms per hop: `simulate`'s defaults), seed 7.
 * - 10 % loss: completion time ≤ 1.3 × the loss-free run's; 30 %: ≤ 2 ×. The ratio is of virtual
 *   time, so it does not depend on the machine.
 * - Each note has what loss cost besides time: healing attempts (none is the goal: loss is no
 *   fault of any agent), down verdicts and agent_timeout faults (none: loss alone never makes an
 *   agent down or hung), attempts started beyond one per subtask, and messages per subtask (the
 *   retransmissions).
 *
 * Before these changes (a fixed 3 s acknowledgement timeout, a new attempt per loss, and no way
 * to learn of a lost result but the 30 s progress deadline) star at 10 agents took 12× as long at
 * 10 % loss (104 s → 1,227 s virtual, 145 healing attempts) on this seed.
 *
 * `LOSS_CASES=star/10,hierarchical/100` (topology/agents) runs fewer; `LOSS_SUBTASKS` changes the
 * 5,000 subtasks; `LOSS_SEED` the seed.
 */
import { simulate, type SimulationReport } from '../src/simulate.js';
import { formatNumber, ratioRow, type BenchRow } from './harness.js';

const SUITE = 'message loss';
const SUBTASKS = Number(process.env['LOSS_SUBTASKS'] ?? 5000);
const SEED = Number(process.env['LOSS_SEED'] ?? 7);
const ONLY = process.env['LOSS_CASES']?.split(',');
const RATES = [
  { rate: 0.1, target: '<= 1.3x' },
  { rate: 0.3, target: '<= 2x' },
] as const;

interface Run {
  readonly report: SimulationReport;
  readonly wallMs: number;
}

function run(topology: 'star' | 'hierarchical', agents: number, rate: number): Run {
  process.stderr.write(`  ${topology}, ${agents} agents, ${Math.round(rate * 100)} % loss…`);
  const start = performance.now();
  const report = simulate({
    seed: SEED,
    topology,
    agents,
    subtasks: SUBTASKS,
    faults: rate > 0 ? [{ kind: 'drop', rate }] : [],
    untilMs: 24 * 3_600_000,
  });
  const wallMs = performance.now() - start;
  process.stderr.write(` ${formatNumber(report.finishedAtMs / 1000, 1)} s virtual in ${formatNumber(wallMs)} ms wall\n`);
  if (report.lost !== 0 || report.duplicatesAccepted !== 0 || report.completed !== SUBTASKS) {
    throw new Error(`${topology}/${agents} at ${rate}: ${report.completed} of ${SUBTASKS} completed, ${report.lost} lost, ${report.duplicatesAccepted} accepted twice`);
  }
  return { report, wallMs };
}

function note({ report, wallMs }: Run): string {
  let down = 0;
  let timeouts = 0;
  for (const e of report.events) {
    if (e.type === 'agent.down') down++;
    else if (e.type === 'fault.detected' && e.kind === 'agent_timeout') timeouts++;
  }
  return (
    `${formatNumber(report.finishedAtMs / 1000, 1)} s virtual; ${report.healing.length} healing attempts, ${down} down verdicts, ${timeouts} agent_timeout faults; ` +
    `${report.executions - report.subtasks} attempts beyond one per subtask; ${formatNumber(report.messages / report.subtasks, 1)} messages per subtask; ${formatNumber(wallMs)} ms wall`
  );
}

export default function bench(): BenchRow[] {
  const rows: BenchRow[] = [];
  for (const topology of ['star', 'hierarchical'] as const) {
    for (const agents of [10, 100]) {
      if (ONLY !== undefined && !ONLY.includes(`${topology}/${agents}`)) continue;
      const base = run(topology, agents, 0);
      const name = `${topology}, ${agents} agents`;
      rows.push({ suite: SUITE, case: `${name}, no loss: completion (baseline)`, value: base.report.finishedAtMs / 1000, unit: 's virtual', note: note(base) });
      for (const { rate, target } of RATES) {
        const lossy = run(topology, agents, rate);
        rows.push(
          ratioRow(SUITE, `${name}, ${Math.round(rate * 100)} % loss: completion (lower is better)`, lossy.report.finishedAtMs / 1000, 's virtual', 'no loss, same seed', base.report.finishedAtMs / 1000, target, note(lossy)),
        );
      }
    }
  }
  return rows;
}
