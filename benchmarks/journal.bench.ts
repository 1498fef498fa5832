/**
 * The journal's cost and recovery (issue: a coordinator that survives its own death).
 *
 * - Dispatch with the journal on (a file journal, one fdatasync per batch) against off
 *   (`:memory:`), in the same process, alternating rounds: a service with 20 agents connected over
 *   loopback WebSocket in this process, tasks of 2,000 subtasks of 1 ms. Target ≥ 0.8×.
 * - Recovery: a journal of 1,000,000 ledger events (snapshots every 100,000, as the coordinator
 *   takes them) is opened by a new coordinator, which resumes its running task: the time from
 *   opening to the first assignment. Target ≤ 2 s. Beside it, reading the same files' bytes.
 *
 * `JOURNAL_EVENTS` sets the recovery journal's size; `JOURNAL_ROUNDS` the dispatch rounds.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { filter, firstValueFrom } from 'rxjs';
import { applyLedgerEvent, emptyLedger, type LedgerEvent } from '../src/ledger.js';
import { startAgent } from '../src/remote.js';
import { Service } from '../src/service.js';
import { FileJournal, journalBytes } from '../streams/journal.js';
import type { Subtask } from '../streams/task.js';
import { median, type BenchRow } from './harness.js';

const here = dirname(fileURLToPath(import.meta.url));
const ROUNDS = Number(process.env['JOURNAL_ROUNDS'] ?? 3);
const EVENTS = Number(process.env['JOURNAL_EVENTS'] ?? 1_000_000);
const AGENTS = 20;
const SUBTASKS = 2000;
const TOKEN = 'bench';

async function dispatchRate(dataDir: string, round: number): Promise<number> {
  process.stderr.write(`  dispatch round ${round}, ${dataDir === ':memory:' ? 'journal off' : 'journal on'}\n`);
  const service = await Service.start({ token: TOKEN, port: 0, dataDir, coordinator: { topology: 'star', heartbeat: { intervalMs: 1000 } }, metrics: { processMetrics: false } });
  const agents = Array.from({ length: AGENTS }, (_, i) => startAgent({ url: service.url, token: TOKEN, id: `j-${i}`, heartbeatIntervalMs: 1000 }));
  try {
    await Promise.all(agents.map(a => firstValueFrom(a.network.events$.pipe(filter(e => e.type === 'joined')))));
    const subtasks: Subtask[] = Array.from({ length: SUBTASKS }, (_, i) => ({ id: `s-${i}`, payload: { sleepMs: 1 } }));
    const started = performance.now();
    service.coordinator.submit({ id: `r-${round}`, subtasks });
    const done = firstValueFrom(service.coordinator.attach$(`r-${round}`).pipe(filter(e => e.type === 'task.completed')));
    const end = await Promise.race([done, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`journal bench: round ${round} did not finish within 5 minutes`)), 300_000).unref())]);
    if (end.type === 'task.completed' && !end.result.success) throw new Error('journal bench: a dispatch round failed');
    await service.coordinator.durable();
    return (SUBTASKS * 1000) / (performance.now() - started);
  } finally {
    for (const a of agents) await a.leave();
    await service.close();
  }
}

/** Writes a journal of `events` ledger events the way a coordinator does (snapshots every 100,000), ending with one task running. */
async function buildJournal(dir: string, events: number): Promise<{ running: string }> {
  const journal = FileJournal.open(dir);
  const ledger = emptyLedger();
  let count = 0;
  let attempt = 1;
  const record = (event: LedgerEvent): void => {
    applyLedgerEvent(ledger, event);
    journal.append(event);
    count++;
    if (journal.sinceSnapshot >= 100_000) journal.snapshot(ledger);
  };
  record({ type: 'attempts.reserved', upTo: 1 << 30 });
  let t = 0;
  let running = '';
  while (count < events) {
    const id = `t-${t++}`;
    const subtasks = Array.from({ length: 1000 }, (_, i) => ({ id: `s-${i}`, payload: { n: i } }));
    record({ type: 'task.submitted', at: t, task: { id, subtasks } });
    record({ type: 'task.started', at: t, taskId: id });
    running = id;
    for (const s of subtasks) {
      if (count >= events - 2) break;
      const a = attempt++;
      record({ type: 'subtask.assigned', taskId: id, subtaskId: s.id, agentId: 'a', attempt: a });
      record({ type: 'subtask.acknowledged', taskId: id, subtaskId: s.id, attempt: a });
      record({ type: 'subtask.accepted', taskId: id, subtaskId: s.id, attempt: a, value: { n: s.payload.n, by: 'a' } });
    }
    if (count < events - 2) {
      // Finished: its results stay in the ledger (retention), as a real coordinator keeps them.
      record({ type: 'task.finished', at: t, taskId: id, summary: { protocol: 'star', protocolId: id, metrics: { subtasks: 1000, completed: 1000, failed: 0, staleResultsRejected: 0, assignments: 1000, messages: 0, messagesByKind: {}, messagesPerSubtask: 0, startedAt: t, finishedAt: t, durationMs: 0, performance: {} }, healing: [], switches: [] } });
    }
  }
  await journal.close(); // lets go of the directory for the coordinator that resumes it
  return { running };
}

export default async function bench(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const dirs: string[] = [];
  const temp = (): string => {
    const dir = mkdtempSync(join(tmpdir(), 'rxswarm-journal-bench-'));
    dirs.push(dir);
    return dir;
  };
  try {
    // Dispatch: alternating rounds, journal off then on (JOURNAL_ROUNDS=0: recovery alone).
    const off: number[] = [];
    const on: number[] = [];
    if (ROUNDS > 0) await dispatchRate(':memory:', -1); // warm-up
    for (let r = 0; r < ROUNDS; r++) {
      off.push(await dispatchRate(':memory:', r));
      on.push(await dispatchRate(temp(), r));
    }
    const offRate = median(off);
    const onRate = median(on);
    if (ROUNDS > 0) rows.push({ suite: 'journal: dispatch', case: `journal off (:memory:), ${AGENTS} agents, 1 ms work`, value: offRate, unit: 'subtasks/s' });
    if (ROUNDS > 0) rows.push({
      suite: 'journal: dispatch',
      case: 'file journal on (fdatasync per batch)',
      value: onRate,
      unit: 'subtasks/s',
      ratio: { against: 'journal off', value: onRate / offRate },
      target: '>= 0.8x',
      note: `medians of ${ROUNDS} alternating rounds: off ${off.map(Math.round).join(', ')}; on ${on.map(Math.round).join(', ')}`,
    });

    // Recovery of a large journal.
    const dir = temp();
    const built = performance.now();
    const { running } = await buildJournal(dir, EVENTS);
    const buildMs = performance.now() - built;
    const bytes = journalBytes(dir);
    const read = performance.now();
    for (const name of readdirSync(dir)) if (name.endsWith('.log') || name === 'snapshot.json') readFileSync(join(dir, name));
    const readMs = performance.now() - read;
    // In a fresh process, as a restarted coordinator is (this one's heap holds what built the journal).
    const child = execFileSync(process.execPath, ['--import', 'tsx', join(here, 'journalRecover.ts'), dir, running], { encoding: 'utf8', timeout: 120_000 });
    const recoverMs = (JSON.parse(child) as { ms: number }).ms;
    rows.push({ suite: 'journal: recovery', case: `reading the files' bytes (${(bytes / 1e6).toFixed(0)} MB)`, value: readMs, unit: 'ms' });
    rows.push({
      suite: 'journal: recovery',
      case: `${EVENTS.toLocaleString('en-US')} events (snapshots every 100,000) to the first assignment`,
      value: recoverMs,
      unit: 'ms',
      ratio: { against: 'reading the bytes', value: recoverMs / readMs },
      target: '<= 2000 ms',
      note: `journal written in ${(buildMs / 1000).toFixed(1)} s`,
    });
  } finally {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
  return rows;
}
