import { asyncScheduler, timer, map, type SchedulerLike } from 'rxjs';
import { createRandom } from '../streams/random.js';
import type { InProcessAgent, Subtask } from '../streams/task.js';
import { createCoordinator, type AgentSlot } from './coordinator.js';
import type { CoordinationEvent, CoordinationResult } from './events.js';

export interface DemoOptions {
  readonly agents: number;
  readonly subtasks: number;
  readonly seed: number;
  readonly scheduler?: SchedulerLike;
  /** Called with every event as it happens (the live view). */
  readonly onEvent?: (event: CoordinationEvent) => void;
}

export interface DemoFault {
  readonly kind: 'crash' | 'hang' | 'slow' | 'partition';
  readonly agent: string;
  readonly atMs: number;
}

/** Work per subtask: uniform in [60, 140) ms. */
const WORK_MIN_MS = 60;
const WORK_SPREAD_MS = 80;
/** Subtasks an agent runs at once. */
const SLOTS = 2;
/** When each fault lands, as a fraction of the run's expected length: all of them while work is under way. */
const FAULT_AT = { slow: 0.1, crash: 0.25, hang: 0.4, partition: 0.55 } as const;
/** How long the partition lasts: long enough for the detector to see it (heartbeats every 200 ms). */
const PARTITION_MS = 2500;

/**
 * How long the demo's work takes without faults, ms: the subtasks in waves of `agents × 2` slots,
 * each wave the mean work time. Faults are placed by it, and the command line announces it.
 *
 * @example expectedDemoMs(12, 300) // 1300: 13 waves of 100 ms
 */
export function expectedDemoMs(agents: number, subtasks: number): number {
  return Math.ceil(subtasks / (agents * SLOTS)) * (WORK_MIN_MS + WORK_SPREAD_MS / 2);
}

/**
 * The main job on the embedded default: in-process agents doing real (timed) work on the
 * in-memory network, the adaptive protocol, and four injected faults — a slowdown, a crash, a
 * hang and a partition that heals — placed at fractions of the run's expected length (see
 * {@link expectedDemoMs}) so that they land while work is under way, whatever the size, and all
 * handled while the task runs. There is no time limit: the run ends when every subtask has ended.
 * Returns the result.
 */
export async function runDemo(options: DemoOptions): Promise<{ result: CoordinationResult; faults: readonly DemoFault[] }> {
  const { agents: count, subtasks: total, seed, scheduler = asyncScheduler, onEvent } = options;
  if (!Number.isInteger(count) || count < 4) throw new RangeError(`agents must be an integer >= 4, got ${count}`);
  if (!Number.isInteger(total) || total < 1) throw new RangeError(`subtasks must be an integer >= 1, got ${total}`);
  const random = createRandom(seed);
  const speed = new Map<string, number>();
  const worker = (id: string): InProcessAgent => {
    const rng = random.fork(`work:${id}`);
    return {
      id,
      capabilities: id === 'agent-0' ? ['task_delegation', 'resource_allocation'] : [],
      concurrency: SLOTS,
      handle: (subtask: Subtask) =>
        timer(Math.round((WORK_MIN_MS + rng.next() * WORK_SPREAD_MS) * (speed.get(id) ?? 1)), scheduler).pipe(map(() => ({ subtask: subtask.id, by: id }))),
    };
  };
  const slots: AgentSlot[] = Array.from({ length: count }, (_, i) => {
    const id = `agent-${i}`;
    return { agent: worker(id), factory: () => worker(id) };
  });
  const coordinator = createCoordinator({
    agents: slots,
    topology: 'adaptive',
    scheduler,
    seed,
    heartbeat: { intervalMs: 200, jitterMs: 20 },
    progressTimeoutMs: 1500,
    ackTimeoutMs: 600,
    adaptive: { evaluateEveryMs: 1000, windowMs: 5000, minDwellMs: 2000, switchThreshold: 0.2 },
  });
  const pick = (i: number): string => `agent-${1 + (i % (count - 1))}`;
  const at = (fraction: number): number => Math.round(fraction * expectedDemoMs(count, total));
  const planned: DemoFault[] = [
    { kind: 'crash', agent: pick(1), atMs: at(FAULT_AT.crash) },
    { kind: 'hang', agent: pick(2), atMs: at(FAULT_AT.hang) },
    { kind: 'slow', agent: pick(3), atMs: at(FAULT_AT.slow) },
    { kind: 'partition', agent: pick(4), atMs: at(FAULT_AT.partition) },
  ];
  // Who holds which subtask: a fault hits an agent with work in hand, or nothing would show it
  // (a hang is seen only through work that makes no progress).
  const holders = new Map<string, string>();
  const holding = new Map<string, number>();
  const release = (subtaskId: string): void => {
    const agent = holders.get(subtaskId);
    if (agent === undefined) return;
    holders.delete(subtaskId);
    holding.set(agent, (holding.get(agent) ?? 1) - 1);
  };
  const track = (event: CoordinationEvent): void => {
    if (event.type === 'subtask.assigned') {
      release(event.subtaskId);
      holders.set(event.subtaskId, event.agentId);
      holding.set(event.agentId, (holding.get(event.agentId) ?? 0) + 1);
    } else if (event.type === 'subtask.completed' || event.type === 'subtask.requeued' || event.type === 'subtask.failed') release(event.subtaskId);
  };
  const faults: DemoFault[] = [...planned];
  /** The planned agent if it has work, else the first working agent no other fault has hit yet (agent-0, the coordinator-capable one, is spared). */
  const target = (index: number): string => {
    const fault = planned[index] as DemoFault;
    const hit = new Set(faults.filter((_, i) => i !== index).map(f => f.agent));
    if ((holding.get(fault.agent) ?? 0) > 0) return fault.agent;
    for (let i = 1; i < count; i++) if (!hit.has(`agent-${i}`) && (holding.get(`agent-${i}`) ?? 0) > 0) return `agent-${i}`;
    return fault.agent;
  };
  const network = coordinator.network as { partition?(groups: string[][]): void; heal?(): void };
  const inject = (index: number): void => {
    const fault = { ...(planned[index] as DemoFault), agent: target(index) };
    faults[index] = fault;
    const host = coordinator.hosts.get(fault.agent);
    if (fault.kind === 'crash') host?.crash();
    else if (fault.kind === 'hang') host?.hang();
    else if (fault.kind === 'slow') speed.set(fault.agent, 4);
    else {
      network.partition?.([[fault.agent]]);
      scheduler.schedule(() => network.heal?.(), PARTITION_MS);
    }
  };
  const tasks = Array.from({ length: total }, (_, i): Subtask => ({ id: `s-${i}`, payload: { n: i } }));
  return new Promise((resolve, reject) => {
    const timers = planned.map((f, i) => scheduler.schedule(() => inject(i), f.atMs));
    coordinator.run$({ id: `demo-${seed}`, subtasks: tasks, complexity: 'medium', coordinationIntensity: 'medium' }).subscribe({
      next: event => {
        track(event);
        onEvent?.(event);
        if (event.type === 'task.completed') {
          for (const t of timers) t.unsubscribe();
          resolve({ result: event.result, faults });
        }
      },
      error: reject,
    });
  });
}
