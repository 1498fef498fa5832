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
  /**
   * The whole task's limit, ms from when it starts (across a coordinator restart too): what has
   * not finished by then fails with 'task deadline reached'. The coordinator's `deadlineMs`, when
   * earlier, still holds.
   */
  readonly deadlineMs?: number;
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
  /**
   * Runs a child subtask of the same task and resolves with its accepted result; rejects with the
   * reason when it fails (after its attempts) or cannot be made. The child is queued and dispatched
   * like any subtask, to an agent with its `capabilities`; its id, unique among this subtask's
   * children, becomes `PARENT/CHILD` in the task (and in its results). It is made once: asked
   * again (this run or a later attempt of the same subtask after a crash or a reassignment) it
   * answers with the same child, so a child's work runs once however often its parent does. While
   * this run waits it keeps its slot, and the wait counts as progress; waits that close a circle
   * (each agent's work waiting for work that only the next agent can take) are a protocol_deadlock,
   * which the coordinator breaks by aborting one waiter and running it again.
   */
  delegate(subtask: Subtask): Promise<unknown>;
  /**
   * `delegate` as an Observable: the child's result, emitted the moment it arrives (in the
   * scheduler's time, not a microtask later, so that it runs in virtual time), then complete; or its
   * failure as an error. Subscribing asks for the child (once per run, however often).
   */
  delegate$(subtask: Subtask): Observable<unknown>;
}

/** An agent living in this process. */
export interface InProcessAgent {
  readonly id: string;
  readonly capabilities: readonly string[];
  /** Subtasks run at once; more wait in the agent's queue. Default 1. */
  readonly concurrency?: number;
  handle(subtask: Subtask, context: AgentContext): Observable<unknown> | Promise<unknown>;
}

/** Longest timer a subtask or task may ask for (what `setTimeout` takes). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * What is wrong with `s` as a subtask (its id, limit or bound), in words, or undefined when
 * nothing is. Ids are non-empty strings without `#` (attempt keys use it) or NUL (task keys do).
 */
export function subtaskProblem(s: Subtask): string | undefined {
  if (s === null || typeof s !== 'object' || typeof s.id !== 'string' || s.id === '') return 'must have a non-empty string id';
  if (s.id.includes('#') || s.id.includes('\u0000')) return `"#" is reserved in subtask ids (NUL too), got ${JSON.stringify(s.id)}`;
  if (s.timeoutMs !== undefined && !(typeof s.timeoutMs === 'number' && s.timeoutMs > 0 && s.timeoutMs <= MAX_TIMER_MS)) {
    return `timeoutMs must be a number of ms in (0, ${MAX_TIMER_MS}], got ${String(s.timeoutMs)}`;
  }
  if (s.maxAttempts !== undefined && !(Number.isSafeInteger(s.maxAttempts) && s.maxAttempts >= 1)) return `maxAttempts must be an integer >= 1, got ${String(s.maxAttempts)}`;
  if (s.capabilities !== undefined && !(Array.isArray(s.capabilities) && s.capabilities.every(c => typeof c === 'string'))) return 'capabilities must be a list of strings';
  if (s.priority !== undefined && !Number.isFinite(s.priority)) return `priority must be a finite number, got ${String(s.priority)}`;
  return undefined;
}

/** What is wrong with `subtask`'s payload against a bound on its JSON (UTF-8 bytes), or undefined when it fits. */
export function payloadProblem(subtask: Subtask, maxValueBytes: number): string | undefined {
  if (subtask.payload === undefined) return undefined;
  const bytes = Buffer.byteLength(JSON.stringify(subtask.payload), 'utf8');
  return bytes > maxValueBytes ? `payload of ${bytes} bytes is above the limit of ${maxValueBytes} (maxValueBytes)` : undefined;
}

/** Whether `agentCapabilities` covers what `subtask` needs. */
export function canRun(agentCapabilities: readonly string[], subtask: Subtask): boolean {
  const needed = subtask.capabilities;
  if (needed === undefined || needed.length === 0) return true;
  for (const c of needed) if (!agentCapabilities.includes(c)) return false;
  return true;
}
