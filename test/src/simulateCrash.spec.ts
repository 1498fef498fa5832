import type { CoordinationEvent } from '../../src/events.js';
import { applyLedgerEvent, emptyLedger, resultOf, type LedgerEvent } from '../../src/ledger.js';
import { simulate, type Scenario, type SimulationReport } from '../../src/simulate.js';
import { parseFaultSpec } from '../../streams/faultSpec.js';
import { MemoryJournal } from '../../streams/journal.js';

// A coordinator crash in virtual time: the process dies with everything but its journal (its
// in-process agents with it), and a new one resumes from the journal at restartAtMs.

const BASE = {
  seed: 3,
  topology: 'star',
  agents: 5,
  subtasks: 40,
  workMs: { mean: 1500, jitter: 500 },
  untilMs: 20 * 60_000,
  progressTimeoutMs: 10_000,
} as const satisfies Scenario;

type Assigned = Extract<CoordinationEvent, { type: 'subtask.assigned' }>;
type Completed = Extract<CoordinationEvent, { type: 'subtask.completed' }>;

const assigned = (r: SimulationReport): Assigned[] => r.events.filter((e): e is Assigned => e.type === 'subtask.assigned');
const completed = (r: SimulationReport): Completed[] => r.events.filter((e): e is Completed => e.type === 'subtask.completed');

describe('simulate with a coordinator crash', () => {
  const crash = { kind: 'coordinatorCrash', atMs: 5000, restartAtMs: 7000 } as const;

  it.each(['star', 'hierarchical', 'ring', 'mesh', 'adaptive'] as const)('under %s, loses nothing, accepts nothing twice, keeps what was accepted and issues attempts above the old ones', topology => {
    const report = simulate({ ...BASE, topology, faults: [crash] });
    expect(report.lost).toBe(0);
    expect(report.duplicatesAccepted).toBe(0);
    expect(report.completed).toBe(40);
    expect(report.result.failed).toEqual({});
    expect(report.falseSuspicions).toBe(0);

    const before = completed(report).filter(e => e.at < crash.atMs);
    expect(before.length).toBeGreaterThan(0);
    for (const e of before) expect(report.result.results[e.subtaskId]).toMatchObject({ subtask: e.subtaskId, attempt: e.attempt, by: e.agentId });
    // Nothing accepted before the crash is run again after it.
    const done = new Set(before.map(e => e.subtaskId));
    expect(assigned(report).filter(e => e.at >= crash.atMs && done.has(e.subtaskId))).toEqual([]);

    const oldTokens = assigned(report).filter(e => e.at < crash.atMs).map(e => e.attempt);
    const newTokens = assigned(report).filter(e => e.at >= crash.atMs).map(e => e.attempt);
    expect(newTokens.length).toBeGreaterThan(0);
    expect(Math.min(...newTokens)).toBeGreaterThan(Math.max(...oldTokens));
  });

  it('runs as a simulation without the crash until the crash', () => {
    const report = simulate({ ...BASE, faults: [crash] });
    const plain = simulate(BASE);
    const upTo = (events: SimulationReport['events']): unknown[] => events.filter(e => e.at < crash.atMs);
    expect(upTo(report.events)).toEqual(upTo(plain.events));
  });

  it('re-runs only what was in flight at the crash', () => {
    const report = simulate({ ...BASE, faults: [crash] });
    const inFlight = new Set(assigned(report).filter(e => e.at < crash.atMs).map(e => e.subtaskId));
    for (const e of completed(report)) if (e.at < crash.atMs) inFlight.delete(e.subtaskId);
    // Each subtask once, and again only if it was out with an agent when the process died.
    expect(report.executions).toBe(40 + inFlight.size);
    expect(inFlight.size).toBeGreaterThan(0);
  });

  it('is silent while the coordinator is down, and its agents come back with the new one', () => {
    const report = simulate({ ...BASE, faults: [crash] });
    expect(report.events.filter(e => e.at >= crash.atMs && e.at < crash.restartAtMs)).toEqual([]);
    const after = report.events.filter(e => e.at >= crash.restartAtMs);
    expect(after.filter(e => e.type === 'agent.joined').map(e => (e as { agentId: string }).agentId).sort()).toEqual(['agent-0', 'agent-1', 'agent-2', 'agent-3', 'agent-4']);
    // It finishes later than it would have, by about the time it was down, not from scratch.
    const plain = simulate(BASE);
    expect(report.finishedAtMs).toBeGreaterThan(plain.finishedAtMs);
    expect(report.finishedAtMs).toBeLessThan(plain.finishedAtMs + (crash.restartAtMs - crash.atMs) + 5000);
  });

  it('measures the whole run, both processes: its result metrics too', () => {
    const report = simulate({ ...BASE, faults: [crash] });
    const { metrics } = report.result;
    expect(metrics.startedAt).toBe(0);
    expect(metrics.durationMs).toBe(report.finishedAtMs);
    expect(metrics.assignments).toBe(report.executions);
    expect(report.messages).toBe(metrics.messages);
    expect(Object.values(report.messagesByKind).reduce((a, b) => a + b, 0)).toBe(report.messages);
    expect(report.messagesByKind['assign']).toBeGreaterThanOrEqual(report.executions);
    // More than a run without the crash: the work in flight went out twice, and everyone beat on.
    expect(report.messages).toBeGreaterThan(simulate(BASE).messages);
  });

  it('is deterministic from its seed', () => {
    const scenario: Scenario = { ...BASE, topology: 'mesh', faults: [crash, { kind: 'crash', agent: 'agent-1', atMs: 2000 }, { kind: 'coordinatorCrash', atMs: 9000, restartAtMs: 9500 }] };
    expect(JSON.stringify(simulate(scenario))).toBe(JSON.stringify(simulate(scenario)));
  });

  it('survives several crashes, one at 0 ms and one restarting at once', () => {
    const report = simulate({
      ...BASE,
      faults: [
        { kind: 'coordinatorCrash', atMs: 0, restartAtMs: 1000 },
        { kind: 'coordinatorCrash', atMs: 4000, restartAtMs: 4000 },
        { kind: 'coordinatorCrash', atMs: 8000, restartAtMs: 12_000 },
      ],
    });
    expect(report.lost).toBe(0);
    expect(report.duplicatesAccepted).toBe(0);
    expect(report.completed).toBe(40);
    // Tokens grow across every restart.
    const tokens = assigned(report).map(e => e.attempt);
    const blocks = new Set(tokens.map(t => Math.floor(t / 2 ** 20)));
    expect(blocks.size).toBeGreaterThanOrEqual(3);
  });

  it('ends with a result at untilMs when the coordinator would come back later', () => {
    const report = simulate({ ...BASE, untilMs: 60_000, faults: [{ kind: 'coordinatorCrash', atMs: 5000, restartAtMs: 3_600_000 }] });
    expect(report.lost).toBe(0);
    expect(report.completed + report.failed).toBe(40);
    expect(report.failed).toBeGreaterThan(0);
    expect(report.finishedAtMs).toBe(60_000);
  });

  it('does nothing once the task has finished', () => {
    const plain = simulate(BASE);
    const late = simulate({ ...BASE, faults: [{ kind: 'coordinatorCrash', atMs: plain.finishedAtMs + 1000, restartAtMs: plain.finishedAtMs + 2000 }] });
    expect(late.executions).toBe(plain.executions);
    expect(late.result.results).toEqual(plain.result.results);
    expect(late.events).toEqual(plain.events);
  });

  it('brings crashed agents back with the new process, and does not count a verdict after the restart as detecting the old crash', () => {
    const report = simulate({ ...BASE, faults: [{ kind: 'crash', agent: 'agent-2', atMs: 4000 }, crash] });
    expect(report.lost).toBe(0);
    const detection = report.detections.find(d => d.agentId === 'agent-2');
    expect(detection?.suspectedAtMs).toBeUndefined(); // the coordinator died 1 s later, before it could tell
    // agent-2 works again after the restart.
    expect(completed(report).some(e => e.agentId === 'agent-2' && e.at > crash.restartAtMs)).toBe(true);
    expect(report.falseSuspicions).toBe(0);
  });

  it('ignores agent faults while the coordinator (and its agents) are down', () => {
    const report = simulate({ ...BASE, faults: [crash, { kind: 'crash', agent: 'agent-1', atMs: 6000 }, { kind: 'hang', agent: 'agent-2', atMs: 6500 }] });
    expect(report.detections).toEqual([]);
    expect(completed(report).some(e => e.agentId === 'agent-1' && e.at > crash.restartAtMs)).toBe(true);
    expect(completed(report).some(e => e.agentId === 'agent-2' && e.at > crash.restartAtMs)).toBe(true);
  });

  it('records into a journal it is given: its replay is the reported result, the in-flight work requeued at the restart', () => {
    const journal = new MemoryJournal();
    const report = simulate({ ...BASE, faults: [crash] }, { journal });
    const records = journal.recover().records as LedgerEvent[];
    const ledger = emptyLedger();
    for (const r of records) applyLedgerEvent(ledger, r);
    const entry = ledger.tasks[report.result.taskId]!;
    expect(entry.state).toBe('done');
    expect(resultOf(entry)?.results).toEqual(report.result.results);
    expect(records.filter(r => r.type === 'subtask.accepted')).toHaveLength(40);
    // What the new coordinator found assigned went back to the queue (not as a failure), then out again.
    const requeued = records.filter(r => r.type === 'subtask.requeued' && !r.failure);
    expect(requeued).toHaveLength(report.executions - 40);
    expect(records.filter(r => r.type === 'task.submitted')).toHaveLength(1);
    // Without a crash a given journal is written to, and the run is the same as without one.
    const plainJournal = new MemoryJournal();
    const plain = simulate(BASE, { journal: plainJournal });
    expect(plain.events).toEqual(simulate(BASE).events);
    expect(plainJournal.recover().records.length).toBeGreaterThan(40);
  });

  it('takes the CLI spec form', () => {
    const faults = parseFaultSpec('coordinatorCrash@5s-7s', ['agent-0']);
    expect(simulate({ ...BASE, faults }).lost).toBe(0);
  });

  it('refuses overlapping coordinator crashes', () => {
    expect(() =>
      simulate({
        ...BASE,
        faults: [
          { kind: 'coordinatorCrash', atMs: 1000, restartAtMs: 5000 },
          { kind: 'coordinatorCrash', atMs: 3000, restartAtMs: 4000 },
        ],
      }),
    ).toThrow(/crashes must not overlap/);
  });
});
