import { formatNumber, ratioRow, type BenchRow } from './harness.js';
import { BenchChild } from './child.js';
import type { TeamCommand, TeamReport, TeamRun } from './virtualTeam.js';

const AGENTS = 10_000;
const HOUR_MS = 3_600_000;
const SUITE = 'VirtualScheduler, 10,000 agents 1 Hz';

/** One run in a fresh process (benchmarks/virtualTeam.ts). */
async function run(command: Omit<Extract<TeamCommand, { type: 'run' }>, 'type' | 'agents'>): Promise<TeamRun> {
  const child = await BenchChild.start<TeamCommand, TeamReport>('virtualTeam.ts', `virtual team (${command.scheduler}, ${command.driver})`);
  try {
    child.send({ type: 'run', agents: AGENTS, ...command });
    return await child.next('ran');
  } finally {
    await child.exit();
  }
}

const speed = (virtualMs: number, { wallMs }: TeamRun): number => virtualMs / wallMs;
const summary = (r: TeamRun): string =>
  `${formatNumber(r.beats)} beats in ${(r.wallMs / 1000).toFixed(1)} s (${((r.wallMs * 1e6) / r.beats).toFixed(0)} ns/beat), ${r.suspicions} suspicions`;

export default async function bench(): Promise<BenchRow[]> {
  // RxJS's VirtualTimeScheduler sorts its whole queue on every schedule: run 2 virtual seconds and extrapolate.
  const shortMs = 2000;
  const rx = await run({ scheduler: 'rxjs', driver: 'source', spanMs: shortMs });
  const rxSpeed = speed(shortMs, rx);
  const hour = await run({ scheduler: 'rxswarm', driver: 'source', spanMs: HOUR_MS });
  const hourSpeed = speed(HOUR_MS, hour);
  // The same agents as closures through a Subject: what that common way of driving them costs.
  const viaSubject = await run({ scheduler: 'rxswarm', driver: 'subject', spanMs: HOUR_MS });
  // The event loop anyone would write first (a plain binary heap, no RxJS), a tenth of the hour.
  const plainMs = HOUR_MS / 10;
  const plain = await run({ scheduler: 'plain', driver: 'source', spanMs: plainMs });

  return [
    {
      suite: SUITE,
      case: 'RxJS VirtualTimeScheduler (baseline, 2 s run)',
      value: rxSpeed,
      unit: 'x real time',
      note: `agents as actions → Observable; ${formatNumber(rx.beats)} beats in ${rx.wallMs.toFixed(0)} ms; one hour ≈ ${(HOUR_MS / rxSpeed / 1000 / 60).toFixed(0)} min`,
    },
    ratioRow(SUITE, 'one virtual hour, agents as actions → Observable', hourSpeed, 'x real time', 'RxJS VirtualTimeScheduler', rxSpeed, '>= 300x rt', summary(hour)),
    ratioRow(SUITE, 'one virtual hour, agent closures → Subject', speed(HOUR_MS, viaSubject), 'x real time', 'actions → Observable', hourSpeed, undefined, summary(viaSubject)),
    ratioRow(
      SUITE,
      'the same agents and phiAccrual on a plain binary-heap event loop (no RxJS), 6 virtual minutes',
      speed(plainMs, plain),
      'x real time',
      'VirtualScheduler, one hour',
      hourSpeed,
      undefined,
      `${summary(plain)}: what the scheduler costs beside the simplest loop (below 1: the VirtualScheduler is faster)`,
    ),
  ];
}
