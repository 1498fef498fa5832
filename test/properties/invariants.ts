import type { CoordinationEvent } from '../../src/events.js';
import { applyLedgerEvent, emptyLedger, resultOf, restoreLedger, type LedgerEvent } from '../../src/ledger.js';
import type { SimulationReport } from '../../src/simulate.js';
import type { Fault } from '../../streams/faults.js';
import type { Journal } from '../../streams/journal.js';

// The invariants the fault-tolerance properties check, shared by every property file.

/** Was the engine already treating `agentId` as gone at `t`? (Then a crash changes nothing it can see.) */
function goneAt(events: readonly CoordinationEvent[], agentId: string, t: number): boolean {
  let gone = false;
  for (const e of events) {
    if (e.at > t) break;
    if (!('agentId' in e) || e.agentId !== agentId) continue;
    if (e.type === 'agent.suspected' || e.type === 'agent.down') gone = true;
    if (e.type === 'agent.recovered' || e.type === 'agent.joined' || e.type === 'agent.restarted') gone = false;
  }
  return gone;
}

/**
 * The agent was hung or crashed (not restarted since) when `fault` hit it, or there was no agent
 * to hit: the coordinator's process, where the agents live, was down. A coordinator's restart
 * brings every agent back fresh.
 */
function alreadyFaulted(faults: readonly Fault[], fault: Fault & { agent: string; atMs: number }): boolean {
  if (downAt(faults, fault.atMs)) return true;
  let state = 'ok';
  for (const f of faults) {
    if (f === fault) break;
    if (f.kind === 'coordinatorCrash' && f.restartAtMs <= fault.atMs) state = 'ok';
    if (!('agent' in f) || f.agent !== fault.agent) continue;
    if (f.kind === 'crash' || f.kind === 'hang') state = f.kind;
    if (f.kind === 'restart') state = 'ok';
  }
  return state !== 'ok';
}

/** The coordinator (and every agent with it) is down at `t`. */
function downAt(faults: readonly Fault[], t: number): boolean {
  return faults.some(f => f.kind === 'coordinatorCrash' && f.atMs <= t && t <= f.restartAtMs);
}

/** A coordinator crash in `[from, to)`: whoever was watching an agent then is gone. */
function coordinatorCrashIn(faults: readonly Fault[], from: number, to: number): boolean {
  return faults.some(f => f.kind === 'coordinatorCrash' && f.atMs >= from && f.atMs < to);
}

/**
 * The guarantees every run keeps, with `faulty` the agents the plan may harm (one healthy capable
 * agent remains): nothing lost or accepted twice, everything completes, no false suspicion, crashes
 * detected within the bound, exhaustion within a beat; across coordinator crashes, see
 * {@link checkRecovery}.
 */
export function checkInvariants(report: SimulationReport, faults: readonly Fault[], faulty: readonly string[]): void {
  const FAULTY = faulty;
  expect(report.lost).toBe(0);
  expect(report.duplicatesAccepted).toBe(0);
  expect(report.completed + report.failed).toBe(report.subtasks);
  // One healthy, capable agent remains: everything completes.
  expect(report.result.failed).toEqual({});
  expect(report.falseSuspicions).toBe(0);
  // At most one switch back per switch: a switch back follows a switch made on measurements.
  report.switches.forEach((s, i) => {
    if (s.revert === true) expect(report.switches[i - 1]?.revert, `switch ${i} (${s.from} -> ${s.to}) goes back twice`).not.toBe(true);
  });
  for (const f of faults) {
    if (f.kind !== 'crash' || alreadyFaulted(faults, f) || goneAt(report.events, f.agent, f.atMs)) continue;
    const bound = f.atMs + report.detectionBoundMs;
    if (report.finishedAtMs < bound) continue; // the run ended first: nobody was watching
    // The coordinator died before the bound: the new one starts with the agent back, fresh.
    if (coordinatorCrashIn(faults, f.atMs, bound)) continue;
    // Restarted before it could be missed: nothing left to detect.
    if (faults.some(r => r.kind === 'restart' && r.agent === f.agent && r.atMs >= f.atMs && r.atMs < bound && faults.indexOf(r) > faults.indexOf(f))) continue;
    // Beats lost before the crash (dropped, or cut off by a partition) stretch the intervals phi
    // learned, and with them its bound: phi adapts to what it saw, which is its point.
    if (faults.some(d => d.kind === 'drop' && (d.agents ?? FAULTY).includes(f.agent) && (d.fromMs ?? 0) < f.atMs)) continue;
    if (faults.some(p => p.kind === 'partition' && p.groups.slice(1).some(g => g.includes(f.agent)) && p.atMs < f.atMs)) continue;
    const suspected = report.events.find(
      e => (e.type === 'agent.suspected' || e.type === 'agent.down' || (e.type === 'fault.detected' && e.kind === 'agent_timeout')) && e.agentId === f.agent && e.at >= f.atMs,
    );
    expect(suspected, `crash of ${f.agent} at ${f.atMs} never detected`).toBeDefined();
    expect(suspected!.at - f.atMs).toBeLessThanOrEqual(report.detectionBoundMs);
  }
  // Usage at the threshold rides the agent's next heartbeat: resource_exhaustion within one beat.
  for (const detection of report.detections) {
    if (detection.kind !== 'exhaust') continue;
    const f = faults.find(x => x.kind === 'exhaust' && x.agent === detection.agentId && x.atMs === detection.faultAtMs) as Fault & { agent: string; atMs: number };
    const until = f.atMs + BEAT_MS;
    if (report.finishedAtMs < until || alreadyFaulted(faults, f)) continue;
    // Its beats must reach the coordinator, and nothing else may change what they say meanwhile.
    const meddles = (x: Fault): boolean =>
      x !== f &&
      (x.kind === 'drop'
        ? (x.agents ?? FAULTY).includes(f.agent) && (x.fromMs ?? 0) < until && (x.toMs ?? Infinity) > f.atMs
        : x.kind === 'partition'
          ? x.groups.slice(1).some(g => g.includes(f.agent)) && x.atMs < until && (x.healAtMs ?? Infinity) > f.atMs
          : x.kind === 'coordinatorCrash'
            ? x.atMs < until && x.restartAtMs >= f.atMs
            : x.kind === 'deadlock'
              ? false // its waits do not touch the usage it reports
              : x.agent === f.agent && x.atMs >= f.atMs && x.atMs < until);
    if (faults.some(meddles)) continue;
    // An earlier exhaustion of it not yet relieved: one episode, already detected.
    if (faults.some(x => x.kind === 'exhaust' && x.agent === f.agent && x.atMs < f.atMs)) continue;
    expect(detection.suspectedAtMs, `exhaust of ${f.agent} at ${f.atMs} never detected`).toBeDefined();
    expect(detection.suspectedAtMs! - f.atMs).toBeLessThanOrEqual(BEAT_MS);
  }
}

/** A heartbeat interval with its jitter, and the network's latency: the longest a usage waits for the coordinator. */
const BEAT_MS = 1000 + 100 + 3;

type Assigned = Extract<CoordinationEvent, { type: 'subtask.assigned' }>;
type Completed = Extract<CoordinationEvent, { type: 'subtask.completed' }>;

/**
 * What a coordinator crash must not break, read from the event log (which holds what each
 * process told before it died): every result accepted before a crash is in the final result as it
 * was accepted and is never assigned again; every attempt token issued after a restart is above
 * every token issued before the crash.
 */
export function checkRecovery(report: SimulationReport, faults: readonly Fault[]): void {
  const assigned = report.events.filter((e): e is Assigned => e.type === 'subtask.assigned');
  const completed = report.events.filter((e): e is Completed => e.type === 'subtask.completed');
  for (const c of faults) {
    if (c.kind !== 'coordinatorCrash' || c.atMs > report.finishedAtMs) continue;
    // Nothing happens while it is down: what is before the restart is the old processes' doing.
    expect(report.events.filter(e => e.at > c.atMs && e.at < c.restartAtMs), `events while down (${c.atMs}-${c.restartAtMs})`).toEqual([]);
    const accepted = completed.filter(e => e.at <= c.atMs);
    for (const e of accepted) {
      expect(report.result.results[e.subtaskId], `${e.subtaskId} accepted at ${e.at}, before the crash at ${c.atMs}`).toMatchObject({ subtask: e.subtaskId, attempt: e.attempt, by: e.agentId });
    }
    const done = new Set(accepted.map(e => e.subtaskId));
    const rerun = assigned.filter(e => e.at >= c.restartAtMs && done.has(e.subtaskId));
    expect(rerun, `accepted before the crash at ${c.atMs}, assigned again after it`).toEqual([]);
    const before = assigned.filter(e => e.at < c.restartAtMs).map(e => e.attempt);
    const after = assigned.filter(e => e.at >= c.restartAtMs).map(e => e.attempt);
    if (before.length > 0 && after.length > 0) expect(Math.min(...after), `tokens after the restart at ${c.restartAtMs}`).toBeGreaterThan(Math.max(...before));
  }
}


/**
 * What the journal a run recorded says, replayed through the reducer as a restart does: it
 * replays without a LedgerError; its tokens rise in the order they were recorded, across every
 * coordinator that wrote to it (so each is above every token issued before it); no result is
 * accepted twice; and the finished task's result, rebuilt from the ledger, is the one reported.
 */
export function checkJournal(journal: Journal, report: SimulationReport, maxAttempts = 3): void {
  const { snapshot, records } = journal.recover();
  const ledger = snapshot === undefined ? emptyLedger() : restoreLedger(snapshot);
  let lastToken = 0;
  const accepted = new Set<string>();
  for (const record of records as LedgerEvent[]) {
    applyLedgerEvent(ledger, record);
    // No subtask is retried beyond its attempts: its failed runs stop at maxAttempts.
    if (record.type === 'subtask.requeued' && record.failure) {
      const failures = ledger.tasks[record.taskId]?.subtasks[record.subtaskId]?.failures ?? 0;
      expect(failures, `${record.subtaskId} failed ${failures} times`).toBeLessThanOrEqual(maxAttempts);
    }
    if (record.type === 'subtask.assigned') {
      expect(record.attempt, `token of ${record.subtaskId}`).toBeGreaterThan(lastToken);
      lastToken = record.attempt;
    }
    if (record.type === 'subtask.accepted') {
      const key = `${record.taskId}\u0000${record.subtaskId}`;
      expect(accepted.has(key), `${record.subtaskId} accepted twice in the journal`).toBe(false);
      accepted.add(key);
    }
  }
  const entry = ledger.tasks[report.result.taskId];
  expect(entry?.state).not.toBe('running');
  const rebuilt = entry === undefined ? undefined : resultOf(entry);
  expect(rebuilt?.results).toEqual(report.result.results);
  expect(rebuilt?.failed).toEqual(report.result.failed);
}
