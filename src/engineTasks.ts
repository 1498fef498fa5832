import type { PerformanceSnapshot, ProtocolSwitch } from '../operators/index.js';
import type { Attempts } from './engineAttempts.js';
import type { EngineParts } from './enginePart.js';
import type { CoordinationEvent, CoordinationResult } from './events.js';
import { resultOf, type SubtaskEntry, type TaskEntry } from './ledger.js';
import type { HealingAttempt } from './selfHealing.js';
import { emitTask, runMetrics, stopTimers, subtaskState, type SubtaskState, type TaskRun } from './taskRun.js';
import { COORDINATOR, type TopologyName } from './topology.js';

/**
 * What a task's start and end need of the engine: the running tasks and subtasks it adds to and
 * takes from, the parts that keep state per subtask (attempts, hedging, detection, the subtasks
 * said to wait), what a result reports (protocol, performance, healing, switches), and the engine's
 * own moves.
 */
export interface TasksEngine extends Pick<EngineParts, 'settings' | 'scheduler' | 'network' | 'hooks' | 'agents' | 'detection' | 'hedging'> {
  readonly attempts: Attempts;
  /** Running tasks by id, in the order they started. */
  readonly runs: Map<string, TaskRun>;
  /** Subtasks of the running tasks by `taskId NUL subtaskId`. */
  readonly subtasks: Map<string, SubtaskState>;
  /** Why each subtask that no live agent can run was last said to wait. */
  readonly waitingFor: Map<string, string>;
  /** The engine's protocol switches so far. */
  readonly switches: readonly ProtocolSwitch[];
  /** What the engine measured of each protocol. */
  readonly performance: ReadonlyMap<string, PerformanceSnapshot>;
  /** The engine has started (a task added later starts at once). */
  started(): boolean;
  protocol(): TopologyName;
  /** The healing history so far (none before the engine has started). */
  healing(): readonly HealingAttempt[] | undefined;
  /** Runs `work` as an input of its own (the engine's `serial`). */
  serial(work: () => void): void;
  dispatch(): void;
  /** The last running task ended: the engine stops, unless it has already. */
  lastEnded(): void;
}

/**
 * A task's start and end in the engine: its subtasks taken from the ledger (those a crashed
 * coordinator had handed out requeued), its deadline, a cancellation, and its end — what has not
 * ended failed with the reason, `task.finished` recorded with what the run measured, its state
 * released and its result handed to the coordinator.
 */
export class Tasks {
  constructor(private readonly engine: TasksEngine) {}

  private now(): number {
    return this.engine.scheduler.now();
  }

  /**
   * Takes a task the ledger has started (`task.started` recorded): its queued subtasks wait for
   * agents in priority order; those the ledger has as assigned (a coordinator that crashed had
   * handed them out) go back to the queue first, to be issued with new attempt tokens; those that
   * ended stay ended. `emit` gets the task's events.
   */
  add(entry: TaskEntry, emit: (event: CoordinationEvent) => void): TaskRun {
    const task = entry.task;
    const stats = this.engine.network.stats;
    const run: TaskRun = {
      task,
      entry,
      queue: [],
      head: 0,
      done: 0,
      states: [],
      startedAt: this.now(),
      startByKind: Object.fromEntries(Object.entries(stats.byKind).map(([k, v]) => [k, v.sent])),
      healingFrom: this.engine.healing()?.length ?? 0,
      switchesFrom: this.engine.switches.length,
      stale: 0,
      alongside: 0,
      assignments: 0,
      deadline: undefined,
      finished: false,
      emit,
    };
    for (const other of this.engine.runs.values()) {
      other.alongside++;
      run.alongside++;
    }
    this.engine.runs.set(task.id, run);
    [...task.subtasks, ...entry.children].forEach((subtask, index) => {
      const ledgerEntry = entry.subtasks[subtask.id] as SubtaskEntry;
      if (ledgerEntry.status === 'assigned') {
        // Handed out by a coordinator that crashed: those attempts went with it.
        const hedge = ledgerEntry.hedge;
        if (hedge !== undefined) this.engine.hooks.record({ type: 'subtask.requeued', taskId: task.id, subtaskId: subtask.id, attempt: hedge.attempt, failure: false });
        this.engine.hooks.record({ type: 'subtask.requeued', taskId: task.id, subtaskId: subtask.id, attempt: ledgerEntry.attempt, failure: false });
      }
      const state = subtaskState(run, subtask, index, ledgerEntry);
      run.states.push(state);
      this.engine.subtasks.set(state.key, state);
      if (ledgerEntry.status === 'queued') run.queue.push(state);
      else run.done++;
    });
    // Higher priority first; equal priorities keep task order.
    run.queue.sort((a, b) => (b.subtask.priority ?? 0) - (a.subtask.priority ?? 0) || a.index - b.index);
    emitTask(this.engine.hooks, run, { type: 'task.started', at: this.now(), taskId: task.id, resumed: run.done });
    // The coordinator's deadline, or the task's own from when it first started, whichever comes first.
    const dueAt = Math.min(this.engine.settings.deadlineMs, task.deadlineMs === undefined ? Infinity : (entry.startedAt ?? this.now()) + task.deadlineMs);
    if (Number.isFinite(dueAt)) {
      run.deadline = this.engine.scheduler.schedule(() => this.engine.serial(() => this.finish(run, 'task deadline reached')), Math.max(0, dueAt - this.now()));
    }
    if (this.engine.started()) {
      this.engine.serial(() => {
        if (run.done === run.states.length) this.finish(run);
        else this.engine.dispatch();
      });
    }
    return run;
  }

  /** Ends the task now: its remote work cancelled, its unfinished subtasks failed with `reason`. False if it is not running here. */
  cancel(taskId: string, reason: string): boolean {
    const run = this.engine.runs.get(taskId);
    if (run === undefined || run.finished) return false;
    this.engine.serial(() => {
      if (!run.finished) this.engine.hooks.record({ type: 'task.cancelled', at: this.now(), taskId, reason });
      this.finish(run, reason);
    });
    return true;
  }

  /**
   * Ends a task: with a `reason` (cancelled, deadline) its remote work is cancelled and what has
   * not ended fails with it. `task.finished` is recorded with what the run measured, the task's
   * result goes to the coordinator, and the engine stops once no task runs.
   */
  finish(run: TaskRun, reason?: string): void {
    if (run.finished) return;
    if (reason !== undefined) {
      this.cancelRemoteWork(run);
      for (const state of run.states) this.engine.attempts.fail(state, reason);
    }
    run.finished = true;
    run.deadline?.unsubscribe();
    const now = this.now();
    const { task, entry } = run;
    this.engine.hooks.record({
      type: 'task.finished',
      at: now,
      taskId: task.id,
      summary: {
        protocol: this.engine.protocol(),
        protocolId: `${task.id}:${this.engine.settings.topology}:${this.engine.settings.seed}`,
        metrics: runMetrics(run, this.engine.network.stats.byKind, now, this.engine.performance),
        healing: (this.engine.healing() as readonly HealingAttempt[]).slice(run.healingFrom),
        switches: this.engine.switches.slice(run.switchesFrom),
      },
    });
    for (const state of run.states) {
      for (const attempt of state.attempts) stopTimers(attempt);
      this.engine.hedging.forget(state);
      this.engine.subtasks.delete(state.key);
      this.engine.waitingFor.delete(state.key);
    }
    this.engine.detection.taskClosed(task.id);
    this.engine.runs.delete(task.id);
    this.engine.hooks.ended(run, resultOf(entry) as CoordinationResult);
    if (this.engine.runs.size === 0) this.engine.lastEnded();
  }

  /** Agents in other processes outlive the task: they are told to drop what they still hold of it. */
  cancelRemoteWork(run: TaskRun): void {
    for (const state of run.states) {
      for (const attempt of state.attempts) {
        if (this.engine.agents.get(attempt.agentId)?.host !== undefined) continue;
        this.engine.network.send({ from: COORDINATOR, to: attempt.agentId, kind: 'cancel', body: { taskId: run.task.id, subtaskId: state.subtask.id, attempt: attempt.token, via: [] } });
      }
    }
  }
}
