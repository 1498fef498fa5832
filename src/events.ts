import type { PerformanceSnapshot, ProtocolSwitch } from '../operators/index.js';
import type { HealingAttempt, HealingEvent } from './selfHealing.js';

/** Why a subtask ended without a result. */
export type FailureReason = string;

export interface CoordinationMetrics {
  readonly subtasks: number;
  readonly completed: number;
  readonly failed: number;
  /** Results refused because their attempt had been superseded. */
  readonly staleResultsRejected: number;
  /** Assignments sent (first runs and reassignments). */
  readonly assignments: number;
  /**
   * Messages the network carried during the run, by kind and in all: the whole network's, so
   * those of other tasks that ran alongside (`tasksAlongside`) are counted too.
   */
  readonly messages: number;
  readonly messagesByKind: Readonly<Record<string, number>>;
  readonly messagesPerSubtask: number;
  /** Other tasks that ran at some time during this one (0: its counts are its own). */
  readonly tasksAlongside?: number;
  readonly startedAt: number;
  readonly finishedAt: number;
  readonly durationMs: number;
  /** Latency and success of completed executions, by protocol. */
  readonly performance: Readonly<Record<string, PerformanceSnapshot>>;
}

/** The same shape on every path: in-process, simulation, `rxswarm run --json`. */
export interface CoordinationResult {
  readonly taskId: string;
  readonly success: boolean;
  readonly results: Readonly<Record<string, unknown>>;
  readonly failed: Readonly<Record<string, FailureReason>>;
  /** Protocol in force at the end. */
  readonly protocol: string;
  /** The id `ProtocolManager.initializeCoordination` gave this coordination. */
  readonly protocolId: string;
  readonly metrics: CoordinationMetrics;
  /** Every healing attempt, in order. */
  readonly healing: readonly HealingAttempt[];
  readonly switches: readonly ProtocolSwitch[];
}

/** The inspection stream: every event of a run, namespaced by its `type` prefix. */
export type CoordinationEvent =
  | { readonly type: 'agent.joined'; readonly at: number; readonly agentId: string }
  | { readonly type: 'agent.suspected'; readonly at: number; readonly agentId: string; readonly detail: string }
  | { readonly type: 'agent.down'; readonly at: number; readonly agentId: string; readonly reason: string }
  | { readonly type: 'agent.recovered'; readonly at: number; readonly agentId: string }
  | { readonly type: 'agent.restarted'; readonly at: number; readonly agentId: string }
  /** A remote agent that could not be admitted (its id is taken by an in-process agent). */
  | { readonly type: 'agent.refused'; readonly at: number; readonly agentId: string; readonly reason: string }
  /** It forged a result, or its attempts stalled or were never acknowledged: no work and no relaying for the rest of the run. */
  | { readonly type: 'agent.quarantined'; readonly at: number; readonly agentId: string; readonly reason: string }
  | { readonly type: 'subtask.assigned'; readonly at: number; readonly subtaskId: string; readonly agentId: string; readonly attempt: number; readonly hops: number }
  | { readonly type: 'subtask.completed'; readonly at: number; readonly subtaskId: string; readonly agentId: string; readonly attempt: number }
  /**
   * Attempt `attempt` has been silent (no progress) past its progress deadline — the floor, or
   * (`learned`) one learned from the task's finished work: its agent is suspected of hanging, and
   * the attempt gets a backup (`subtask.hedged`) when another capable agent is free.
   */
  | { readonly type: 'subtask.silent'; readonly at: number; readonly subtaskId: string; readonly agentId: string; readonly attempt: number; readonly silentMs: number; readonly deadlineMs: number; readonly learned: boolean }
  /** A backup attempt (`agentId`, `attempt`, also announced as `subtask.assigned`) runs beside the silent one `of`; the first valid result wins, the other is cancelled. */
  | { readonly type: 'subtask.hedged'; readonly at: number; readonly subtaskId: string; readonly agentId: string; readonly attempt: number; readonly of: { readonly agentId: string; readonly attempt: number } }
  /**
   * Attempt `attempt` of `parentId`, on `agentId`, asked for the child `subtaskId` (`context.delegate`):
   * it joins the task, queued; the parent waits for its outcome.
   */
  | { readonly type: 'subtask.delegated'; readonly at: number; readonly subtaskId: string; readonly parentId: string; readonly agentId: string; readonly attempt: number }
  /** Attempt `attempt` ended without a result (lost, revoked, failed, its agent left): the subtask waits again, unless its other (hedged) attempt goes on. */
  | { readonly type: 'subtask.requeued'; readonly at: number; readonly subtaskId: string; readonly attempt: number; readonly reason: string }
  | { readonly type: 'subtask.rejected'; readonly at: number; readonly subtaskId: string; readonly agentId: string; readonly attempt: number; readonly reason: string }
  | { readonly type: 'subtask.failed'; readonly at: number; readonly subtaskId: string; readonly reason: FailureReason }
  /**
   * Subtasks that no live agent can run, said once when they start to wait for that reason (not at
   * every dispatch pass). `capabilities`: what they need that no live agent has (empty when no agent
   * is live, or when each is held by some agent but none holds them all); `reason` says which, in
   * words; `failsAt`: when they fail unless a capable agent joins (`orphanTimeoutMs`).
   */
  | { readonly type: 'subtask.waiting'; readonly at: number; readonly subtaskIds: readonly string[]; readonly capabilities: readonly string[]; readonly reason: string; readonly failsAt: number }
  | { readonly type: 'fault.detected'; readonly at: number; readonly kind: string; readonly severity: string; readonly agentId?: string; readonly detail: string }
  | HealingEvent
  | { readonly type: 'protocol.selected'; readonly at: number; readonly protocol: string; readonly reason: string }
  | { readonly type: 'protocol.repaired'; readonly at: number; readonly protocol: string; readonly failed: string; readonly repair: string }
  | { readonly type: 'protocol.switched'; readonly at: number; readonly switch: ProtocolSwitch; readonly inFlight: number }
  | { readonly type: 'consensus.decided'; readonly at: number; readonly proposalId: string; readonly outcome: string; readonly yes: number; readonly no: number }
  /** The task left the queue and runs (after a restart: it resumes, `resumed` subtasks already ended). */
  | { readonly type: 'task.started'; readonly at: number; readonly taskId: string; readonly resumed: number }
  | { readonly type: 'task.completed'; readonly at: number; readonly result: CoordinationResult }
  /** The journal cannot write: the coordinator takes and hands out no more work; what it recorded before is kept. */
  | { readonly type: 'coordinator.halted'; readonly at: number; readonly reason: string };

export type CoordinationEventType = CoordinationEvent['type'];

/** Whether the event belongs to one task (its subtasks, its start and end) rather than to the engine (agents, faults, protocol). */
export function isTaskEvent(event: CoordinationEvent): boolean {
  return event.type.startsWith('subtask.') || event.type.startsWith('task.');
}
