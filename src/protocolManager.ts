import { Subject, type Observable } from 'rxjs';
import type { InProcessAgent, Level, Task } from '../streams/task.js';
import { createCoordinator, type AgentSlot, type CoordinatorOptions } from './coordinator.js';
import type { CoordinationEvent, CoordinationResult } from './events.js';
import { chooseInitial } from './topologies/index.js';
import type { TopologyName } from './topology.js';

/** What `initializeCoordination` plans from. */
export interface CoordinationPlan {
  readonly agentCount: number;
  readonly complexity?: Level;
  readonly coordinationIntensity?: Level;
  /** Forces a protocol; default `adaptive` (decision matrix, then measured switching). */
  readonly topology?: TopologyName | 'adaptive';
}

export interface ProtocolManagerOptions extends Omit<CoordinatorOptions, 'agents' | 'topology'> {
  /** Reruns of the failed part of a task under another protocol. Default 2; never unbounded. */
  readonly maxFallbacks?: number;
}

interface Protocol {
  readonly id: string;
  readonly topology: TopologyName | 'adaptive';
  readonly initial: TopologyName;
}

const FALLBACK_ORDER: readonly TopologyName[] = ['hierarchical', 'star', 'ring', 'mesh'];

/**
 * The seed's protocol handler: plans a protocol for a team, runs tasks under it with failure
 * detection and self-healing, and when subtasks still fail, reruns just those under another
 * protocol, at most `maxFallbacks` times.
 *
 * @example
 * const manager = new ProtocolManager({ seed: 7 });
 * const id = manager.initializeCoordination({ agentCount: agents.length, complexity: 'high' });
 * const result = await manager.coordinateTaskExecution(id, task, agents);
 */
export class ProtocolManager {
  private readonly protocols = new Map<string, Protocol>();
  private readonly events = new Subject<CoordinationEvent>();
  private readonly maxFallbacks: number;
  private readonly coordinatorOptions: Omit<CoordinatorOptions, 'agents' | 'topology'>;

  constructor(options: ProtocolManagerOptions = {}) {
    const { maxFallbacks = 2, ...rest } = options;
    if (!Number.isInteger(maxFallbacks) || maxFallbacks < 0) throw new RangeError(`maxFallbacks must be an integer >= 0, got ${maxFallbacks}`);
    this.maxFallbacks = maxFallbacks;
    this.coordinatorOptions = rest;
  }

  /** Everything every coordination of this manager emits. */
  get events$(): Observable<CoordinationEvent> {
    return this.events.asObservable();
  }

  /** Chooses a protocol for the plan and returns its id. */
  initializeCoordination(plan: CoordinationPlan): string {
    if (plan === null || typeof plan !== 'object' || !Number.isInteger(plan.agentCount) || plan.agentCount < 0) {
      throw new RangeError(`plan.agentCount must be an integer >= 0, got ${String(plan?.agentCount)}`);
    }
    const initial = chooseInitial({
      agentCount: plan.agentCount,
      ...(plan.complexity ? { complexity: plan.complexity } : {}),
      ...(plan.coordinationIntensity ? { coordinationIntensity: plan.coordinationIntensity } : {}),
    }) as TopologyName;
    const topology = plan.topology ?? 'adaptive';
    const id = `protocol-${this.protocols.size + 1}-${topology === 'adaptive' ? `adaptive-${initial}` : topology}`;
    this.protocols.set(id, { id, topology, initial });
    return id;
  }

  /** Runs `task` under the protocol; reruns what failed under fallbacks, and merges the results. */
  async coordinateTaskExecution(protocolId: string, task: Task, agents: ReadonlyArray<InProcessAgent | AgentSlot>): Promise<CoordinationResult> {
    const protocol = this.protocols.get(protocolId);
    if (protocol === undefined) throw new RangeError(`unknown protocol id "${protocolId}" (call initializeCoordination first)`);
    let result = await this.runOnce(protocol.topology, task, agents, protocolId);
    const tried = new Set<string>([protocol.topology === 'adaptive' ? protocol.initial : protocol.topology, result.protocol]);
    for (let fallback = 0; fallback < this.maxFallbacks && !result.success; fallback++) {
      const next = FALLBACK_ORDER.find(t => !tried.has(t));
      if (next === undefined) break;
      tried.add(next);
      const remaining: Task = { ...task, subtasks: task.subtasks.filter(s => s.id in result.failed) };
      const rerun = await this.runOnce(next, remaining, agents, protocolId);
      result = merge(result, rerun);
    }
    return result;
  }

  private async runOnce(topology: TopologyName | 'adaptive', task: Task, agents: ReadonlyArray<InProcessAgent | AgentSlot>, protocolId: string): Promise<CoordinationResult> {
    const coordinator = createCoordinator({ ...this.coordinatorOptions, agents, topology });
    const subscription = coordinator.events$.subscribe(e => this.events.next(e));
    try {
      return { ...(await coordinator.run(task)), protocolId };
    } finally {
      subscription.unsubscribe();
    }
  }
}

/** A fallback's outcome laid over the first run's: its results fill the earlier failures. */
function merge(first: CoordinationResult, rerun: CoordinationResult): CoordinationResult {
  // Keyed by subtask ids, anyone's strings: no prototype (as the coordinator's).
  const failed: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [id, reason] of Object.entries(first.failed)) {
    if (!(id in rerun.results)) failed[id] = rerun.failed[id] ?? reason;
  }
  return {
    ...rerun,
    taskId: first.taskId,
    success: Object.keys(failed).length === 0,
    results: Object.assign(Object.create(null) as Record<string, unknown>, first.results, rerun.results),
    failed,
    metrics: {
      ...rerun.metrics,
      subtasks: first.metrics.subtasks,
      completed: first.metrics.completed + rerun.metrics.completed,
      failed: Object.keys(failed).length,
      staleResultsRejected: first.metrics.staleResultsRejected + rerun.metrics.staleResultsRejected,
      assignments: first.metrics.assignments + rerun.metrics.assignments,
      messages: first.metrics.messages + rerun.metrics.messages,
      messagesByKind: sumCounts(first.metrics.messagesByKind, rerun.metrics.messagesByKind),
      messagesPerSubtask: first.metrics.subtasks === 0 ? 0 : (first.metrics.messages + rerun.metrics.messages) / first.metrics.subtasks,
      startedAt: first.metrics.startedAt,
      durationMs: rerun.metrics.finishedAt - first.metrics.startedAt,
    },
    healing: [...first.healing, ...rerun.healing],
    switches: [...first.switches, ...rerun.switches],
  };
}

function sumCounts(a: Readonly<Record<string, number>>, b: Readonly<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = (out[k] ?? 0) + v;
  return out;
}
