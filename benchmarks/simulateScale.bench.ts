/**
 * `simulate()` at scale: wall time per subtask and peak memory, each case in a fresh process
 * (benchmarks/simulateScaleChild.ts: a warm-up run, then the measured one).
 *
 * - star and hierarchical at 100, 1,000 and 10,000 agents, 10 subtasks per agent but at least
 *   100,000, so every size runs the same work (100,000 subtasks): time per subtask against the
 *   100-agent run of the same topology (the baseline in the same run). Target: flat within 1.3×
 *   (the cost of a subtask must not depend on how many agents there are). Equal work matters: a
 *   run of 10,000 subtasks still pays for the JIT warming up (100 agents: 57 µs of CPU per
 *   subtask at 10,000 subtasks, 28 µs at 100,000), which would flatter the larger sizes. The ratio
 *   is of CPU time (the process's, all threads): on a shared machine wall time moves with the
 *   neighbours' load; the wall figures are in the notes.
 * - ring, 1,000 agents × 10,000 subtasks: wall time, target ≤ 10 s. A ring is O(n) per subtask by
 *   nature (work travels the ring to the member that runs it); the ratio is against star at the
 *   same size.
 * - mesh, 1,000 agents × 10,000 subtasks: the process's peak RSS, target ≤ 1 GB. A mesh is O(n²)
 *   by nature (every peer beats every peer: a million messages per virtual second at 1,000); the
 *   ratio is against star's peak at the same size.
 *
 * Each row's note has wall and CPU time: a target in seconds is judged on CPU time when the
 * machine is busier than one process per core (wall time then measures the neighbours).
 *
 * Defaults of `simulate`: work 200 ± 50 ms, heartbeats 1 s ± 100 ms, latency 2 ± 1 ms, seed 7, no
 * faults. `SCALE_CASES=star/100,ring/1000` (topology/agents, comma-separated) runs fewer;
 * `SCALE_SUBTASKS_PER_AGENT` changes the 10 subtasks per agent of the flatness rows.
 * One process at a time: the machine is shared (2 cores), so read the ratios, not the absolutes.
 */
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { formatNumber, ratioRow, type BenchRow } from './harness.js';

const here = dirname(fileURLToPath(import.meta.url));
const SUITE = 'simulate at scale';
const PER_AGENT = Number(process.env['SCALE_SUBTASKS_PER_AGENT'] ?? 10);
const ONLY = process.env['SCALE_CASES']?.split(',');
/** Every flatness row runs at least this many subtasks: the same work at every size, and the JIT's warm-up spread thin. */
const MIN_SUBTASKS = 100_000;

interface Measured {
  readonly topology: string;
  readonly agents: number;
  readonly subtasks: number;
  readonly wallMs: number;
  readonly cpuMs: number;
  readonly completed: number;
  readonly lost: number;
  readonly messages: number;
  readonly virtualMs: number;
  readonly maxRssBytes: number;
}

async function measure(topology: string, agents: number, subtasks: number): Promise<Measured | undefined> {
  if (ONLY !== undefined && !ONLY.includes(`${topology}/${agents}`)) return undefined;
  process.stderr.write(`  ${topology}, ${formatNumber(agents)} agents, ${formatNumber(subtasks)} subtasks…`);
  const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', '--max-old-space-size=4096', '--import', 'tsx', join(here, 'simulateScaleChild.ts'), topology, String(agents), String(subtasks)], {
    cwd: join(here, '..'),
    maxBuffer: 1024 * 1024,
  });
  const m = JSON.parse(stdout.trim().split('\n').pop() as string) as Measured;
  process.stderr.write(` ${formatNumber(m.wallMs)} ms wall, ${formatNumber(m.cpuMs)} ms CPU, ${formatNumber(m.maxRssBytes / 2 ** 20)} MiB\n`);
  if (m.completed !== subtasks || m.lost !== 0) throw new Error(`${topology}/${agents}: ${m.completed} of ${subtasks} completed, ${m.lost} lost`);
  return m;
}

const perSubtaskUs = (m: Measured): number => (m.cpuMs * 1000) / m.subtasks;
const note = (m: Measured): string =>
  `${formatNumber(m.subtasks)} subtasks in ${formatNumber(m.wallMs)} ms wall, ${formatNumber(m.cpuMs)} ms CPU (${formatNumber((m.wallMs * 1000) / m.subtasks)} µs wall per subtask; ${formatNumber(m.virtualMs / 1000, 1)} s virtual), ${formatNumber(m.messages / m.subtasks, 1)} messages per subtask, peak RSS ${formatNumber(m.maxRssBytes / 2 ** 20)} MiB`;

export default async function bench(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const star1000 = { value: undefined as Measured | undefined };
  for (const topology of ['star', 'hierarchical']) {
    let base: Measured | undefined;
    for (const agents of [100, 1000, 10_000]) {
      const m = await measure(topology, agents, Math.max(MIN_SUBTASKS, agents * PER_AGENT));
      if (m === undefined) continue;
      // The ring's and mesh's yardstick is star at their size (1,000 agents × 10,000 subtasks).
      if (topology === 'star' && agents === 1000 && m.subtasks === 10_000) star1000.value = m;
      if (base === undefined) {
        base = m;
        rows.push({ suite: SUITE, case: `${topology}, ${formatNumber(agents)} agents: CPU per subtask`, value: perSubtaskUs(m), unit: 'µs', note: note(m) });
      } else {
        rows.push(ratioRow(SUITE, `${topology}, ${formatNumber(agents)} agents: CPU per subtask (lower is better)`, perSubtaskUs(m), 'µs', `${topology} at ${formatNumber(base.agents)}`, perSubtaskUs(base), '<= 1.3x', note(m)));
      }
    }
  }
  star1000.value ??= await measure('star', 1000, 10_000);
  const ring = await measure('ring', 1000, 10_000);
  if (ring !== undefined) {
    const against = star1000.value;
    rows.push({
      suite: SUITE,
      case: 'ring, 1,000 agents × 10,000 subtasks: CPU (lower is better)',
      value: ring.cpuMs / 1000,
      unit: 's',
      ...(against === undefined ? {} : { ratio: { against: 'star, same size', value: ring.cpuMs / against.cpuMs } }),
      target: '<= 10 s',
      note: note(ring),
    });
  }
  const mesh = await measure('mesh', 1000, 10_000);
  if (mesh !== undefined) {
    const against = star1000.value;
    rows.push({
      suite: SUITE,
      case: 'mesh, 1,000 agents × 10,000 subtasks: peak RSS (lower is better)',
      value: mesh.maxRssBytes / 2 ** 20,
      unit: 'MiB',
      ...(against === undefined ? {} : { ratio: { against: 'star, same size', value: mesh.maxRssBytes / against.maxRssBytes } }),
      target: '<= 1 GB',
      note: note(mesh),
    });
  }
  return rows;
}
