import type { AssignBody } from '../streams/protocol.js';
import { UNACKED_LIMIT, type AgentLifecycle } from './agentLifecycle.js';
import { triesOver } from './engineDetection.js';
import { EnginePart, type EngineParts } from './enginePart.js';
import type { CoordinationEvent } from './events.js';
import type { AgentRecord } from './membership.js';
import type { ActionResult } from './selfHealing.js';
import { ackedOf, attemptsOf, emitTask, enqueue, stopTimers, timeoutOf, type Attempt, type SubtaskState, type TaskRun } from './taskRun.js';
import { COORDINATOR, type Layout } from './topology.js';

/**
 * What attempts need of the engine besides its parts: the agents' lifecycle, the running subtasks,
 * and the engine's own moves (layout, dispatch, its events).
 */
export interface AttemptsEngine extends EngineParts {
  readonly lifecycle: AgentLifecycle;
  /** Subtasks of the running tasks by `taskId NUL subtaskId`. */
  readonly subtasks: ReadonlyMap<string, SubtaskState>;
  layout(): Layout;
  /** Runs `work` as an input of its own (the engine's `serial`). */
  serial(work: () => void): void;
  dispatch(): void;
  /** After a subtask of `run` changed: the task ends, or work moves on. */
  afterChange(run: TaskRun): void;
  /** An event of the engine's, to every running task's followers. */
  emit(event: CoordinationEvent): void;
}

/**
 * The life of an attempt once assigned: acknowledged (or its assignment sent again, then given
 * up), its result in transit through relays, timed out, revoked, ended without a result, or its
 * subtask failed. Each end frees the agent's slot, stops the attempt's timers and watches, and
 * records the change before it is told.
 */
export class Attempts extends EnginePart {
  private readonly lifecycle: AgentLifecycle;
  private readonly subtasks: ReadonlyMap<string, SubtaskState>;

  constructor(private readonly engine: AttemptsEngine) {
    super(engine);
    this.lifecycle = engine.lifecycle;
    this.subtasks = engine.subtasks;
  }

  /**
   * An assignment's acknowledgement is overdue (its agent's retransmission timeout ran out): the
   * same assignment, same attempt, is sent again — a retransmission is not a retry, so loss burns
   * none of the subtask's attempts and charges no one. Only once the retransmissions are used up
   * (see `AckTracker`) is it taken as undeliverable: the link and relays are charged and the subtask
   * is requeued with a new attempt.
   */
  onAckTimeout(k: string): void {
    const attempt = this.attemptOf(k);
    if (attempt === undefined || ackedOf(attempt)) return;
    const record = this.agents.get(attempt.agentId) as AgentRecord;
    const retransmissions = this.detection.retransmissionsOf(k) ?? 0;
    if (this.detection.retransmit(k)) return this.resend(attempt, record);
    // The first hop failed to deliver, a relay dropped it, or the agent took nothing in: the link is
    // charged, and so is whoever it went through (the agent itself when it went straight to it).
    this.detection.delivery(firstLink(attempt), false);
    this.lostBy(attempt);
    const via = attempt.route.length > 0 ? ` via ${attempt.route.join(' → ')}` : '';
    this.endAttempt(attempt, `assignment to ${record.id}${via} not acknowledged within ${this.settings.ackTimeoutMs} ms (sent ${retransmissions + 1} times)`, false);
    if (attempt.route.length > 0 && record.host === undefined) {
      // Through relays to an agent in another process: whose fault is unknown; the relays are
      // charged, and the next assignment goes straight to the agent to tell.
      this.lifecycle.chargeRelays(attempt.route, record.id);
      record.probeDirect = true;
    } else if (++record.unacked >= UNACKED_LIMIT) {
      this.lifecycle.stalled(record, `${record.unacked} assignments in a row not acknowledged`);
    }
    this.engine.dispatch();
  }

  /**
   * The same assignment again, by the route the first copy took (its reply path with it): the
   * agent acknowledges it again if it holds it, or sends its result again if it has finished.
   */
  private resend(attempt: Attempt, record: AgentRecord): void {
    const route = attempt.route;
    const body: AssignBody = {
      taskId: attempt.state.task.task.id,
      subtask: attempt.state.subtask,
      attempt: attempt.token,
      replyPath: [...attempt.reply, COORDINATOR],
      via: route.length === 0 ? [] : [...route.slice(1), record.id],
      rto: this.detection.rtoFor(record.id, attempt.hops),
      copy: this.detection.retransmissionsOf(attempt.key) ?? 0,
    };
    this.network.send({ from: COORDINATOR, to: route[0] ?? record.id, kind: 'assign', body });
  }

  /**
   * The agent said its result is on its way through relays (`done`): if it does not arrive, a
   * relay keeps it back; the relays are charged and the subtask runs again. Meanwhile the
   * assignment is resent every rto of the whole loop (the agent answers each copy with its result,
   * by the same relays): once {@link triesOver} the loop's legs of them went unanswered, a loss
   * that loss alone explains no more often than once in 50,000 (at 30 % loss per message), and
   * `ackTimeoutMs` at least has passed, the result is taken as kept back. The `done` measured the
   * agent's round trip (its `heldMs`), so that takes about `ackTimeoutMs`. Whatever the resends, it
   * is taken as kept back once the agent's own retransmissions had their time
   * (`resultPatienceMs`: it sends the result again every rto its assignment carried).
   */
  onResultInTransit(attempt: Attempt): void {
    if (attempt.transit !== undefined) return;
    const agentId = attempt.agentId;
    const since = this.now();
    const patienceMs = this.detection.resultPatienceMs(agentId);
    // The assignment goes out again and the result comes back by its reply path: that round trip's legs.
    const legs = attempt.hops + attempt.reply.length + 1;
    const everyMs = this.detection.rtoOf(agentId, legs);
    const tries = triesOver(legs);
    let resent = 0;
    const check = (): void => {
      attempt.transit = undefined;
      if (!attempt.state.attempts.includes(attempt)) return;
      const record = this.agents.get(agentId);
      const waited = this.now() - since;
      if (record === undefined || waited >= patienceMs || (resent >= tries && waited >= this.settings.ackTimeoutMs)) return this.lostInTransit(attempt);
      if (resent < tries) {
        this.resend(attempt, record);
        resent++;
      }
      const next = resent < tries ? everyMs : this.settings.ackTimeoutMs - waited; // the patience is never shorter
      attempt.transit = this.scheduler.schedule(() => this.engine.serial(check), Math.max(1, Math.ceil(Math.min(next, patienceMs - waited))));
    };
    attempt.transit = this.scheduler.schedule(() => this.engine.serial(check), everyMs);
  }

  /** The protocol's routes lost the attempt: an execution that failed, so that it counts against the protocol. */
  private lostBy(attempt: Attempt): void {
    this.executions.next({ protocol: attempt.protocol, ok: false, latencyMs: this.now() - attempt.assignedAt, messages: attempt.hops });
  }

  /**
   * A result announced done has not come through its relays: they are charged, the agent's next
   * assignment goes straight to it (and its result straight back: the agent's word that it sent one
   * is then put to the test, and an honest agent behind a relay that drops is still heard), and the
   * subtask runs again.
   */
  private lostInTransit(attempt: Attempt): void {
    const route = attempt.reply;
    this.lostBy(attempt);
    this.revoke(attempt, `result of ${attempt.agentId} lost in transit via ${route.join(' → ')}`);
    this.lifecycle.chargeRelays(route, attempt.agentId);
    const record = this.agents.get(attempt.agentId);
    if (record !== undefined && record.host === undefined) record.probeDirect = true;
    this.engine.dispatch();
  }

  /** The attempt out now under a deadline key (`taskId NUL subtaskId#token`), if it still is. */
  attemptOf(key: string): Attempt | undefined {
    const [stateKeyOf, token] = splitKey(key);
    return this.subtasks.get(stateKeyOf)?.attempts.find(a => a.token === token);
  }

  /** Requeues every subtask the agent holds, with new attempts (healing's `reassignSubtasks`, and what a restart or a departure does). */
  reassign(record: AgentRecord, reason: string): ActionResult {
    const moved = [...record.inFlight];
    for (const attempt of moved) this.endAttempt(attempt, `${record.id}: ${reason}`, false);
    return { ok: true, detail: `${moved.length} subtask(s) requeued with new attempts` };
  }

  /**
   * The attempt is over without a result; `failure`: it counts against the subtask's attempts.
   * The subtask waits again, unless its other attempt (it was hedged) goes on.
   */
  endAttempt(attempt: Attempt, reason: string, failure: boolean): void {
    const state = attempt.state;
    const at = state.attempts.indexOf(attempt);
    if (at === -1) return;
    this.untake(attempt);
    this.release(attempt);
    state.attempts.splice(at, 1);
    this.hooks.record({ type: 'subtask.requeued', taskId: state.task.task.id, subtaskId: state.subtask.id, attempt: attempt.token, failure });
    const other = state.attempts[0];
    if (other === undefined) {
      this.hedging.unwant(state);
      enqueue(state);
    } else if (other.silent) {
      this.hedging.want(state, 'floor');
    }
    emitTask(this.hooks, state.task, { type: 'subtask.requeued', at: this.now(), subtaskId: state.subtask.id, attempt: attempt.token, reason });
  }

  /**
   * The agent has the assignment: the link delivered; from now on its progress is watched.
   * `heldMs`: said by the agent's own message that acknowledges it in place of an acknowledgement
   * (its result straight back, or its `done`), how long it held the assignment first: a round
   * trip less the hold, for that agent's estimate.
   */
  acknowledge(attempt: Attempt, heldMs?: number): void {
    if (heldMs !== undefined) this.detection.answered(attempt.key, undefined, heldMs);
    const state = attempt.state;
    attempt.ackedAt = this.now();
    this.hooks.record({ type: 'subtask.acknowledged', taskId: state.task.task.id, subtaskId: state.subtask.id, attempt: attempt.token });
    this.detection.acked(attempt.key);
    // The agent took it in. Its relays are cleared only once a result comes back through them: a
    // relay that passes assignments on but keeps results back must not be cleared by the former.
    const record = this.agents.get(attempt.agentId);
    if (record !== undefined) {
      record.unacked = 0;
      if (attempt.route.length === 0) record.probeDirect = false;
    }
    this.detection.delivery(firstLink(attempt), true);
  }

  /** Stops watching an attempt's acknowledgement and progress; `ok`: it finished (its silences teach the deadline). */
  release(attempt: Attempt, ok = false): void {
    stopTimers(attempt);
    if (!ackedOf(attempt)) this.detection.acked(attempt.key);
    this.detection.attemptEnded(attempt.key, ok);
    this.delegation.attemptEnded(attempt);
  }

  /** Takes an attempt back from a live agent: it is told to drop it, and the attempt ends. */
  revoke(attempt: Attempt, reason: string, failure = false): void {
    if (!attempt.state.attempts.includes(attempt)) return;
    this.sendCancel(attempt);
    this.endAttempt(attempt, reason, failure);
  }

  /** Tells the attempt's agent, along the layout's route to it, to drop the attempt. */
  sendCancel(attempt: Attempt): void {
    const path = [...this.engine.layout().route(attempt.agentId), attempt.agentId];
    this.network.send({ from: COORDINATOR, to: path[0] as string, kind: 'cancel', body: { taskId: attempt.state.task.task.id, subtaskId: attempt.state.subtask.id, attempt: attempt.token, via: path.slice(1) } });
  }

  /**
   * Takes back every attempt that still needs the agent as a relay (it failed or restarted): its
   * result would come back through it, or its assignment went through it and was not acknowledged
   * (it may have been lost there). An acknowledged attempt whose result goes back another way (a
   * star's spoke answers the coordinator straight) runs on: it needs the relay no more.
   */
  revokeRoutedThrough(agentId: string, reason: string): void {
    for (const state of this.subtasks.values()) {
      for (const attempt of [...state.attempts]) {
        if (attempt.reply.includes(agentId) || (!ackedOf(attempt) && attempt.route.includes(agentId))) this.revoke(attempt, reason);
      }
    }
  }

  fail(state: SubtaskState, reason: string): void {
    if (state.entry.status === 'done' || state.entry.status === 'failed') return;
    for (const attempt of state.attempts.splice(0)) {
      this.untake(attempt);
      this.release(attempt);
    }
    this.hedging.unwant(state);
    this.hooks.record({ type: 'subtask.failed', taskId: state.task.task.id, subtaskId: state.subtask.id, reason });
    state.task.done++;
    this.delegation.ended(state);
    emitTask(this.hooks, state.task, { type: 'subtask.failed', at: this.now(), subtaskId: state.subtask.id, reason });
  }

  /** Takes the attempt off its agent (its slot comes free). */
  untake(attempt: Attempt): void {
    const record = this.agents.get(attempt.agentId);
    record?.inFlight.delete(attempt);
    this.agents.touch(record);
  }

  /**
   * An attempt ran past its start-to-close limit: it fails (whatever progress it reported) and the
   * agent is told to drop it; the subtask runs again elsewhere, up to `maxSubtaskAttempts` runs. An
   * agent in another process whose attempts time out twice in a row gets no more work.
   */
  onAttemptTimeout(attempt: Attempt): void {
    attempt.timer = undefined;
    const state = attempt.state;
    if (!state.attempts.includes(attempt)) return;
    const record = this.agents.get(attempt.agentId) as AgentRecord;
    if (attempt.transit !== undefined) {
      // The agent finished in time and said so; its result is held up in a relay: theirs to answer for.
      attempt.transit.unsubscribe();
      attempt.transit = undefined;
      return this.lostInTransit(attempt);
    }
    const limit = timeoutOf(state, this.settings.attemptTimeoutMs);
    const reason = `attempt ${attempt.token} on ${record.id} ran past its ${limit} ms limit`;
    this.engine.emit({ type: 'fault.detected', at: this.now(), kind: 'agent_timeout', severity: 'medium', agentId: record.id, detail: reason });
    this.revoke(attempt, reason, true);
    if (state.attempts.length === 0 && state.entry.failures >= attemptsOf(state, this.settings.maxSubtaskAttempts)) this.fail(state, `timed out ${state.entry.failures} time(s): ${reason}`);
    record.granted = Math.max(1, record.granted >> 1);
    this.agents.touch(record);
    if (++record.timeouts >= TIMEOUTS_LIMIT && record.host === undefined && record.status === 'live') this.lifecycle.quarantine(record, `${record.timeouts} attempts in a row ran past their limit`);
    this.engine.afterChange(state.task);
  }}

/** Timed-out attempts in a row after which an agent in another process is quarantined. */
const TIMEOUTS_LIMIT = 2;

/** The link an attempt's assignment took first: to its first relay, or straight to its agent. */
function firstLink(attempt: Attempt): string {
  return `${COORDINATOR}->${attempt.route[0] ?? attempt.agentId}`;
}

function splitKey(k: string): [string, number] {
  const at = k.lastIndexOf('#');
  return [k.slice(0, at), Number(k.slice(at + 1))];
}
