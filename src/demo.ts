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

/**
 * The main job on the embedded default: in-process agents doing real (timed) work on the
 * in-memory network, the adaptive protocol, and four injected faults — a crash, a hang, a
 * slowdown and a partition that heals — all handled while the task runs. Returns the result.
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
      concurrency: 2,
      handle: (subtask: Subtask) =>
        timer(Math.round((60 + rng.next() * 80) * (speed.get(id) ?? 1)), scheduler).pipe(map(() => ({ subtask: subtask.id, by: id }))),
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
    deadlineMs: scheduler.now() + 60_000,
  });
  const pick = (i: number): string => `agent-${1 + (i % (count - 1))}`;
  const faults: DemoFault[] = [
    { kind: 'crash', agent: pick(1), atMs: 800 },
    { kind: 'hang', agent: pick(2), atMs: 1200 },
    { kind: 'slow', agent: pick(3), atMs: 400 },
    { kind: 'partition', agent: pick(4), atMs: 1600 },
  ];
  const network = coordinator.network as { partition?(groups: string[][]): void; heal?(): void };
  const inject = (fault: DemoFault): void => {
    const host = coordinator.hosts.get(fault.agent);
    if (fault.kind === 'crash') host?.crash();
    else if (fault.kind === 'hang') host?.hang();
    else if (fault.kind === 'slow') speed.set(fault.agent, 4);
    else {
      network.partition?.([[fault.agent]]);
      scheduler.schedule(() => network.heal?.(), 2500);
    }
  };
  const tasks = Array.from({ length: total }, (_, i): Subtask => ({ id: `s-${i}`, payload: { n: i } }));
  return new Promise((resolve, reject) => {
    const timers = faults.map(f => scheduler.schedule(() => inject(f), f.atMs));
    coordinator.run$({ id: `demo-${seed}`, subtasks: tasks, complexity: 'medium', coordinationIntensity: 'medium' }).subscribe({
      next: event => {
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
