import { map, timer } from 'rxjs';
import { createCoordinator, type AgentSlot } from '../../src/coordinator.js';
import type { CoordinationEvent, CoordinationResult } from '../../src/events.js';
import type { InProcessAgent } from '../../streams/task.js';
import { VirtualScheduler } from '../../streams/virtualScheduler.js';

// Usage in heartbeats → resourcePressure → resource_exhaustion → its healing chain (reduce load,
// reassign, replace), in virtual time: handlers report a budget through context.usage.

/**
 * Work of `workMs` (the first run: `firstMs`); when `reports` gives a number for a run (its index
 * on this agent), the handler says at once that the run uses that much of its budget.
 */
function agent(id: string, scheduler: VirtualScheduler, workMs: number, concurrency: number, reports?: (run: number) => number | undefined, firstMs = workMs): InProcessAgent {
  let runs = 0;
  return {
    id,
    capabilities: [],
    concurrency,
    handle: (_subtask, context) => {
      const run = runs++;
      const fraction = reports?.(run);
      if (fraction !== undefined) context.usage(fraction, 'tokens');
      return timer(run === 0 ? firstMs : workMs, scheduler).pipe(map(() => ({ by: id })));
    },
  };
}

function runToEnd(scheduler: VirtualScheduler, agents: AgentSlot[], n: number): { result: CoordinationResult; events: CoordinationEvent[] } {
  const coordinator = createCoordinator({ agents, topology: 'star', scheduler, seed: 7 });
  const events: CoordinationEvent[] = [];
  let result: CoordinationResult | undefined;
  const task = { id: 't', subtasks: Array.from({ length: n }, (_, i) => ({ id: `s-${i}` })) };
  coordinator.run$(task).subscribe(e => {
    events.push(e);
    if (e.type === 'task.completed') result = e.result;
  });
  for (let t = 0; result === undefined && t < 600_000; t += 100) scheduler.advanceTo(t);
  if (result === undefined) throw new Error('run did not finish within 10 virtual minutes');
  return { result, events };
}

type Detected = Extract<CoordinationEvent, { type: 'fault.detected' }>;
const exhaustion = (events: CoordinationEvent[]): Detected[] => events.filter((e): e is Detected => e.type === 'fault.detected' && e.kind === 'resource_exhaustion');
const strategies = (events: CoordinationEvent[], type: string) =>
  events.filter(e => e.type === type).map(e => `${(e as unknown as { strategy: string }).strategy}`);

describe('usage in heartbeats → resource_exhaustion → healing', () => {
  it('an agent reporting 95 % of its budget is detected at its next beat and its load reduced first', () => {
    const scheduler = new VirtualScheduler();
    const hot = agent('hot', scheduler, 3000, 4, run => (run === 0 ? 0.95 : undefined));
    const cool = ['a', 'b'].map(id => agent(id, scheduler, 100, 2));
    const { result, events } = runToEnd(scheduler, [hot, ...cool].map(a => ({ agent: a })), 12);
    expect(result.success).toBe(true);
    expect(Object.keys(result.results)).toHaveLength(12);
    const [detected, ...again] = exhaustion(events);
    expect(again).toEqual([]); // one episode
    expect(detected).toMatchObject({ agentId: 'hot', severity: 'high' });
    expect(detected!.detail).toMatch(/hot uses 95 % of its capacity \(threshold 90 %\)/);
    const assignedAt = events.find(e => e.type === 'subtask.assigned' && (e as { agentId?: string }).agentId === 'hot')!.at;
    // The usage rides the agent's next heartbeat: within one interval and its jitter (1000 ± 100 ms), plus a hop.
    expect(detected!.at - assignedAt).toBeLessThanOrEqual(1100 + 10);
    expect(strategies(events, 'healing.succeeded')).toEqual(['reduceLoad']);
    expect(result.healing).toEqual([expect.objectContaining({ faultKind: 'resource_exhaustion', agentId: 'hot', strategy: 'reduceLoad', ok: true, detail: 'slots 4 -> 2' })]);
  });

  it('at one slot already, the chain moves on: its work is reassigned to another agent', () => {
    const scheduler = new VirtualScheduler();
    // The first run on `hot` reports exhaustion and would take 20 s; later ones are quick.
    const hot = agent('hot', scheduler, 100, 1, run => (run === 0 ? 0.99 : undefined), 20_000);
    const { result, events } = runToEnd(scheduler, [{ agent: hot }, { agent: agent('a', scheduler, 100, 1) }], 4);
    expect(result.success).toBe(true);
    expect(strategies(events, 'healing.failed')).toEqual(['reduceLoad']);
    expect(strategies(events, 'healing.succeeded')).toEqual(['reassignSubtasks']);
    // The long first run was given up for a new attempt (which ran quickly, wherever it went).
    const first = events.find(e => e.type === 'subtask.assigned' && (e as { agentId?: string }).agentId === 'hot') as { subtaskId: string; attempt: number };
    const completed = events.find(e => e.type === 'subtask.completed' && e.subtaskId === first.subtaskId) as { attempt: number };
    expect(completed.attempt).toBeGreaterThan(first.attempt);
    expect(result.metrics.durationMs).toBeLessThan(20_000); // not held for the long run
  });

  it('usage below the threshold is no fault, and an agent that never reports sends none', () => {
    const scheduler = new VirtualScheduler();
    const { result, events } = runToEnd(scheduler, [{ agent: agent('x', scheduler, 1500, 1, () => 0.5) }, { agent: agent('y', scheduler, 100, 1) }], 6);
    expect(result.success).toBe(true);
    expect(exhaustion(events)).toEqual([]);
    expect(result.healing).toEqual([]);
  });
});
