import type { SchedulerLike } from 'rxjs';
import type { SilentAttempt } from '../operators/index.js';
import type { EngineHooks } from './engineSettings.js';
import type { CoordinationEvent } from './events.js';
import type { DetectedFault } from './faultDetector.js';
import type { AgentRecord, Candidates, Membership } from './membership.js';
import { attemptsOf, emitTask, type Attempt, type SubtaskState, type TaskRun } from './taskRun.js';
import type { Layout } from './topology.js';

/**
 * What hedging needs of the engine: the team and the layout to pick a backup's agent, the
 * attempts its verdicts concern, and the engine's moves on them (assign, revoke, fail, heal).
 */
export interface HedgingEngine {
  readonly agents: Membership;
  readonly scheduler: SchedulerLike;
  readonly hooks: EngineHooks;
  /** Unsuccessful attempts after which a subtask fails, unless it or its task says otherwise. */
  readonly maxSubtaskAttempts: number;
  layout(): Layout;
  /** The engine has stopped: no more backups. */
  finished(): boolean;
  /** The attempt out now under a deadline key, if it still is. */
  attemptOf(key: string): Attempt | undefined;
  /** Starts a backup attempt of the subtask on the agent, beside the silent one (`of`). */
  assign(state: SubtaskState, record: AgentRecord, of: Attempt): void;
  emit(event: CoordinationEvent): void;
  /** Runs `work` as an input of its own (the engine's `serial`). */
  serial(work: () => void): void;
  dispatch(): void;
  /** Takes an attempt back from its agent; `failure`: it counts against the subtask's attempts. */
  revoke(attempt: Attempt, reason: string, failure: boolean): void;
  fail(state: SubtaskState, reason: string): void;
  heal(fault: DetectedFault): void;
  /** After a subtask of `run` changed: the task ends, or work moves on. */
  afterChange(run: TaskRun): void;
}

/**
 * Hedging (MapReduce's backup tasks): an attempt that is alive but silent past its progress
 * deadline is suspected of hanging, not revoked. Out alone, it gets a backup attempt on another
 * capable agent; the first valid result of either wins (the engine's results), and an attempt
 * still silent a deadline later has its agent taken for hung. Here: the silences, the subtasks
 * that want a backup, and starting the backups.
 */
export class Hedging {
  /** Subtasks whose attempt out alone is silent: they want a backup attempt (see `start`). */
  private readonly wanted = new Set<SubtaskState>();

  constructor(private readonly engine: HedgingEngine) {}

  /** Subtasks that want a backup attempt now. */
  get size(): number {
    return this.wanted.size;
  }

  private now(): number {
    return this.engine.scheduler.now();
  }

  /**
   * An attempt has been silent past its progress deadline: it is suspected of hanging, not
   * revoked. Out alone, it gets a backup attempt on another capable agent (see `start`); the
   * first valid result of either wins. Its agent is taken for hung when the backup wins, or when
   * the attempt is still silent a deadline later (no backup could run, or none finished).
   */
  onSilent(silence: SilentAttempt): void {
    const attempt = this.engine.attemptOf(silence.key);
    if (attempt === undefined) return;
    attempt.silent = true;
    attempt.stillSilent?.unsubscribe();
    attempt.stillSilent = this.engine.scheduler.schedule(() => this.engine.serial(() => this.onStillSilent(attempt, silence.silentMs + silence.deadlineMs, silence.deadlineMs)), silence.deadlineMs);
    const state = attempt.state;
    emitTask(this.engine.hooks, state.task, {
      type: 'subtask.silent',
      at: this.now(),
      subtaskId: state.subtask.id,
      agentId: attempt.agentId,
      attempt: attempt.token,
      silentMs: silence.silentMs,
      deadlineMs: silence.deadlineMs,
      learned: silence.learned,
    });
    if (state.attempts.length === 1) this.want(state, silence.learned ? 'learned' : 'floor');
  }

  /** The deadline learned since shows the attempt's silence is normal for its task: no backup for it. */
  onCleared(key: string): void {
    const attempt = this.engine.attemptOf(key);
    if (attempt === undefined) return;
    this.heard(attempt);
  }

  /** The attempt is not silent (it made progress, or its silence is normal after all). */
  heard(attempt: Attempt): void {
    if (!attempt.silent) return;
    attempt.silent = false;
    attempt.stillSilent?.unsubscribe();
    attempt.stillSilent = undefined;
    if (attempt.state.attempts.length === 1) this.unwant(attempt.state);
  }

  /**
   * Silent for twice its deadline with no backup beside it (none could start, or it ended): its
   * agent is taken for hung (agent_timeout, healed) and the attempt ends as a failure, so a
   * subtask that hangs every agent it runs on fails after its attempts rather than looping. With a
   * backup running, the race decides: asked again a deadline later; unless the backup is silent
   * too (both agents hung), when this one is taken for hung all the same and the other goes on,
   * with a backup of its own wanted.
   */
  private onStillSilent(attempt: Attempt, silentMs: number, deadlineMs: number): void {
    attempt.stillSilent = undefined;
    const state = attempt.state;
    if (!attempt.silent || !state.attempts.includes(attempt)) return;
    if (state.attempts.length > 1 && !state.attempts.every(a => a.silent)) {
      attempt.stillSilent = this.engine.scheduler.schedule(() => this.engine.serial(() => this.onStillSilent(attempt, silentMs + deadlineMs, deadlineMs)), deadlineMs);
      return;
    }
    const record = this.engine.agents.get(attempt.agentId) as AgentRecord;
    const detail = `no progress on ${state.subtask.id} of task ${state.task.task.id} for ${Math.round(silentMs)} ms (its deadline ${deadlineMs} ms)`;
    const fault: DetectedFault = { type: 'detected', kind: 'agent_timeout', severity: 'medium', at: this.now(), agentId: record.id, detail };
    this.engine.emit({ type: 'fault.detected', at: fault.at, kind: fault.kind, severity: fault.severity, agentId: record.id, detail });
    this.engine.revoke(attempt, detail, true);
    if (state.attempts.length === 0 && state.entry.failures >= attemptsOf(state, this.engine.maxSubtaskAttempts)) this.engine.fail(state, `made no progress ${state.entry.failures} time(s): ${detail}`);
    if (record.status === 'live') this.engine.heal(fault);
    this.engine.afterChange(state.task);
  }

  /** The subtask's attempt out alone is silent: a backup is wanted (`kind`: whose deadline it ran past). */
  want(state: SubtaskState, kind: 'learned' | 'floor'): void {
    if (state.hedges >= attemptsOf(state, this.engine.maxSubtaskAttempts) - 1) return; // no backup beyond the subtask's attempts
    state.hedge = kind;
    this.wanted.add(state);
    this.engine.dispatch();
  }

  /** No backup is wanted any more (the attempt was heard, ended, or its backup started). */
  unwant(state: SubtaskState): void {
    if (state.hedge === undefined) return;
    state.hedge = undefined;
    this.wanted.delete(state);
  }

  /**
   * Backups for silent attempts, each on a free capable agent other than the silent one's: first
   * those whose silence ran past a deadline learned from the task's finished work (anomalous: they
   * may take a slot before queued work), then (`all`) the rest, which only take the slots queued
   * work left idle.
   */
  start(all: boolean): void {
    const groups = new Map<string, Candidates>();
    for (const state of this.wanted) {
      if (!all && state.hedge !== 'learned') continue;
      const silent = state.attempts[0];
      if (state.attempts.length !== 1 || silent === undefined || !silent.silent) {
        this.unwant(state);
        continue;
      }
      const ids = this.engine.agents.candidates(state.subtask, groups).ids.filter(id => id !== silent.agentId);
      const chosen = ids.length === 0 ? undefined : this.engine.layout().pick(state.subtask, ids);
      if (chosen === undefined) continue;
      this.unwant(state);
      state.hedges++;
      this.engine.assign(state, this.engine.agents.get(chosen) as AgentRecord, silent);
      groups.clear();
      if (this.engine.finished()) return;
    }
  }

  /** Its task ended: the subtask wants no backup any more. */
  forget(state: SubtaskState): void {
    this.wanted.delete(state);
  }
}
