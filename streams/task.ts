import type { Observable, SchedulerLike } from 'rxjs';
import type { Level } from '../operators/index.js';

export type { Level };

/** One unit of work. `capabilities` lists what an agent must offer to run it. */
export interface Subtask {
  readonly id: string;
  readonly payload?: unknown;
  readonly capabilities?: readonly string[];
  /** Higher runs first; ties keep task order. Default 0. */
  readonly priority?: number;
  /**
   * Start-to-close limit of one attempt, in ms: an attempt that has not ended by then fails (and is
   * retried up to the coordinator's `maxSubtaskAttempts`), whatever progress it reports. Default:
   * the task's `timeoutMs`, else the coordinator's `attemptTimeoutMs`.
   */
  readonly timeoutMs?: number;
  /** Unsuccessful attempts (failed or timed out) after which it fails. Default: the task's, else the coordinator's `maxSubtaskAttempts`. */
  readonly maxAttempts?: number;
}

/** A task split into subtasks: what a coordinator finishes. */
export interface Task {
  readonly id: string;
  readonly subtasks: readonly Subtask[];
  readonly complexity?: Level;
  readonly coordinationIntensity?: Level;
  /** Start-to-close limit of each attempt of its subtasks that set none (see `Subtask.timeoutMs`). */
  readonly timeoutMs?: number;
  /** Unsuccessful attempts of each of its subtasks that set none (see `Subtask.maxAttempts`). */
  readonly maxAttempts?: number;
}

/** What a handler may do while it works. */
export interface AgentContext {
  readonly agentId: string;
  /** The attempt this run belongs to; a result of a superseded attempt is rejected. */
  readonly attempt: number;
  readonly scheduler: SchedulerLike;
  /** Reports progress (0..1) on long work, so a hung agent can be told from a slow one. */
  heartbeat(progress?: number): void;
  /**
   * Reports how much of a budget this run uses, as a fraction (1 = all of it): tokens, a rate
   * limit, a quota only the handler knows of. It travels with the agent's next heartbeats until
   * the run ends; at 0.9 or more the coordinator takes the agent as exhausted (resource_exhaustion:
   * less load, its work moved, a standby in its place). `what` names the budget (`'tokens'`).
   */
  usage(fraction: number, what?: string): void;
  /**
   * Aborted when this run's work is no longer wanted before it has finished: the attempt was
   * cancelled or revoked (the subtask went elsewhere, a backup won), the agent leaves, crashes or
   * hangs, or the handler's Observable is unsubscribed. Its `reason` is an `AbortError` saying
   * which. A Promise handler cannot be stopped from outside: pass the signal on (`fetch`, child
   * processes, SDK calls) or check it, so that a departing agent process can end promptly.
   */
  readonly signal: AbortSignal;
}

/** An agent living in this process. */
export interface InProcessAgent {
  readonly id: string;
  readonly capabilities: readonly string[];
  /** Subtasks run at once; more wait in the agent's queue. Default 1. */
  readonly concurrency?: number;
  handle(subtask: Subtask, context: AgentContext): Observable<unknown> | Promise<unknown>;
}

/** Whether `agentCapabilities` covers what `subtask` needs. */
export function canRun(agentCapabilities: readonly string[], subtask: Subtask): boolean {
  const needed = subtask.capabilities;
  if (needed === undefined || needed.length === 0) return true;
  for (const c of needed) if (!agentCapabilities.includes(c)) return false;
  return true;
}
