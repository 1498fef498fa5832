import fc from 'fast-check';
import type { CoordinationEvent } from '../../src/events.js';
import { simulate } from '../../src/simulate.js';
import type { DropFault } from '../../streams/faults.js';
import type { Subtask } from '../../streams/task.js';

// Message loss alone, up to 30 % on every link (issue 12): retransmissions make up for it, so
// nothing is lost or accepted twice, a retransmission is never a new attempt (no subtask runs more
// attempts than maxAttempts), and no agent is declared down or hung for it. Star and hierarchical:
// the topologies whose routes are a few hops whatever the team's size (a ring's route is as long
// as the ring, and end-to-end retransmission over n lossy hops needs 0.7^-(n+1) tries at 30 %).
// A failure prints fast-check's seed and path: replay with RXSWARM_PROPERTY_SEED and _PATH.
const RUNS = Number(process.env['RXSWARM_PROPERTY_RUNS'] ?? 400);
const SEED = process.env['RXSWARM_PROPERTY_SEED'];
const PATH = process.env['RXSWARM_PROPERTY_PATH'];
const MAX_ATTEMPTS = 3; // the coordinator's default maxSubtaskAttempts

/** Uniform loss on every link, at a rate up to 30 %, for the whole run or a window of it. */
const drop: fc.Arbitrary<DropFault> = fc
  .record({
    rate: fc.integer({ min: 0, max: 30 }).map(percent => percent / 100),
    window: fc.option(fc.tuple(fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 500, max: 20_000 })), { nil: undefined }),
  })
  .map(({ rate, window }) => (window === undefined ? { kind: 'drop', rate } : { kind: 'drop', rate, fromMs: window[0], toMs: window[0] + window[1] }));

const scenario = fc.record({
  seed: fc.integer({ min: 0, max: 2 ** 30 }),
  topology: fc.constantFrom('star' as const, 'hierarchical' as const),
  agents: fc.integer({ min: 2, max: 30 }),
  subtasks: fc.integer({ min: 1, max: 200 }),
  /** Subtasks whose handler fails every time: they end failed after exactly maxAttempts runs. */
  failing: fc.integer({ min: 0, max: 3 }),
  drop,
});

function count(events: readonly CoordinationEvent[], type: CoordinationEvent['type']): Map<string, number> {
  const counts = new Map<string, number>();
  for (const e of events) if (e.type === type && 'subtaskId' in e) counts.set(e.subtaskId, (counts.get(e.subtaskId) ?? 0) + 1);
  return counts;
}

describe('message loss alone', () => {
  it('a result lost through relays together with its first word that it was on its way (found by the property below, seed -452348555): its retransmissions say it again, and no agent is taken for hung', () => {
    const list: Subtask[] = Array.from({ length: 189 }, (_, i) => (i < 2 ? { id: `s-${i}`, payload: { fail: true } } : { id: `s-${i}` }));
    const report = simulate({ seed: 222234843, topology: 'hierarchical', agents: 16, subtasks: list, faults: [{ kind: 'drop', rate: 0.26 }], untilMs: 30 * 60_000 });
    expect(report.lost).toBe(0);
    expect(report.events.filter(e => e.type === 'fault.detected' && e.kind === 'agent_timeout')).toEqual([]);
  });

  it(`loses nothing, accepts nothing twice, never retries beyond maxAttempts and takes no agent down, over ${RUNS} generated runs`, () => {
    fc.assert(
      fc.property(scenario, ({ seed, topology, agents, subtasks, failing, drop }) => {
        const list: Subtask[] = Array.from({ length: subtasks }, (_, i) => (i < failing ? { id: `s-${i}`, payload: { fail: true } } : { id: `s-${i}` }));
        const report = simulate({ seed, topology, agents, subtasks: list, faults: [drop], untilMs: 30 * 60_000 });
        const context = `seed ${seed}, ${topology}, ${agents} agents, ${subtasks} subtasks (${failing} failing), ${JSON.stringify(drop)}`;

        // Nothing lost, nothing accepted twice; what fails is what was made to fail, and nothing else.
        expect(report.lost, context).toBe(0);
        expect(report.duplicatesAccepted, context).toBe(0);
        const failedIds = Object.keys(report.result.failed).sort();
        expect(failedIds, context).toEqual(list.filter(s => s.payload !== undefined).map(s => s.id).sort());
        expect(report.completed, context).toBe(subtasks - Math.min(failing, subtasks));
        for (const id of failedIds) expect(report.result.failed[id], context).toMatch(new RegExp(`handler failed ${MAX_ATTEMPTS} time`));

        // A retransmission is not an attempt, and an assignment that never arrived (its retransmissions
        // used up, given back as not acknowledged) is not a run: no subtask runs more than maxAttempts times.
        const undelivered = new Map<string, number>();
        for (const e of report.events) {
          if (e.type === 'subtask.requeued' && /not acknowledged within/.test(e.reason)) undelivered.set(e.subtaskId, (undelivered.get(e.subtaskId) ?? 0) + 1);
        }
        for (const [id, n] of count(report.events, 'subtask.assigned')) {
          const runs = n - (undelivered.get(id) ?? 0);
          expect(runs, `${id} assigned ${n} times, ${undelivered.get(id) ?? 0} of them never delivered; ${context}`).toBeLessThanOrEqual(MAX_ATTEMPTS);
        }

        // Loss is no agent's fault: no down verdict, no agent_timeout (hung, or silent), nothing healed for it.
        const verdicts = report.events.filter(e => e.type === 'agent.down' || e.type === 'agent.quarantined' || (e.type === 'fault.detected' && e.kind === 'agent_timeout'));
        expect(verdicts, context).toEqual([]);
        expect(report.healing.filter(h => h.faultKind === 'agent_timeout' || h.faultKind === 'communication_failure'), context).toEqual([]);
      }),
      { numRuns: RUNS, verbose: 1, ...(SEED === undefined ? {} : { seed: Number(SEED) }), ...(PATH === undefined ? {} : { path: PATH }) },
    );
  });
});
