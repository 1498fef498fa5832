import type { ReceivedBody, ResultBody } from '../streams/protocol.js';
import type { Attempts } from './engineAttempts.js';
import { EnginePart, type EngineParts } from './enginePart.js';
import type { CoordinationEvent } from './events.js';
import type { DetectedFault } from './faultDetector.js';
import { ackedOf, attemptsOf, emitTask, type Attempt, type SubtaskState, type TaskRun } from './taskRun.js';
import { COORDINATOR } from './topology.js';

/**
 * What results need of the engine besides its parts: the attempts, and the engine's own moves
 * (its events, healing).
 */
export interface ResultsEngine extends EngineParts {
  readonly attempts: Attempts;
  emit(event: CoordinationEvent): void;
  heal(fault: DetectedFault): void;
}

/**
 * Results as they come back: whether each is the current attempt's own (not forged, not stale,
 * from the end of its reply path), its confirmation to the agent, and what an accepted or failed
 * one does to its subtask, its agent and, for a hedged subtask, the attempt that lost the race.
 * What follows for the task (it ends, or work moves on) is the engine's.
 */
export class Results extends EnginePart {
  private readonly attempts: Attempts;

  constructor(private readonly engine: ResultsEngine) {
    super(engine);
    this.attempts = engine.attempts;
  }

  /**
   * Tells the agent that ran it that its result came (accepted or stale), so it stops sending it.
   * A forgery gets no answer, nor a current attempt's result delivered by anyone but its reply
   * path's last hop: confirming it would stop the real result's retransmissions.
   */
  confirm(body: ResultBody, from: string, state: SubtaskState | undefined): void {
    if (body.forged !== undefined) return;
    const attempt = state?.attempts.find(a => a.token === body.attempt && a.agentId === body.agentId);
    if (attempt !== undefined && from !== lastReplyHop(attempt)) return;
    const received: ReceivedBody = body.taskId === undefined ? { subtaskId: body.subtaskId, attempt: body.attempt } : { taskId: body.taskId, subtaskId: body.subtaskId, attempt: body.attempt };
    this.network.send({ from: COORDINATOR, to: body.agentId, kind: 'received', body: received });
  }

  /** A result of the attempt whose result was accepted, from its agent: a retransmission, not a stale result. */
  isAcceptedAgain(body: ResultBody, state: SubtaskState | undefined): boolean {
    if (body.forged !== undefined) return false;
    const entry = state?.entry;
    return entry !== undefined && entry.status === 'done' && entry.attempt === body.attempt && entry.agentId === body.agentId;
  }

  /**
   * A result, accepted only for the current attempt of the agent it names, and only from the node
   * its reply path ends with (the agent, or its first relay): an agent cannot report for another.
   * Returns the task whose subtask it changed (accepted, or an attempt failed), if any.
   */
  onResult(body: ResultBody, from: string, state: SubtaskState | undefined): TaskRun | undefined {
    if (body.forged !== undefined) {
      this.onForged(body, from, state);
      return undefined;
    }
    if (state === undefined) {
      this.hooks.emit({ type: 'subtask.rejected', at: this.now(), subtaskId: body.subtaskId, agentId: body.agentId, attempt: body.attempt, reason: `unknown subtask${body.taskId === undefined ? '' : ` of task ${body.taskId}`} (from ${from})` });
      return undefined;
    }
    const attempt = state.attempts.find(a => a.token === body.attempt && a.agentId === body.agentId);
    if (attempt === undefined || from !== lastReplyHop(attempt)) {
      state.task.stale++;
      const reason = attempt === undefined ? (state.entry.status === 'done' ? 'already completed' : 'superseded attempt') : `sent by ${from}, not by ${attempt.agentId} or its relay`;
      emitTask(this.hooks, state.task, { type: 'subtask.rejected', at: this.now(), subtaskId: body.subtaskId, agentId: body.agentId, attempt: body.attempt, reason });
      return undefined;
    }
    const record = this.agents.get(body.agentId);
    if (record !== undefined) {
      record.timeouts = 0;
      if (record.host === undefined) record.granted = Math.min(record.slots, this.settings.maxSlotsPerAgent, record.granted + 1);
    }
    this.attempts.untake(attempt);
    const startedAt = attempt.ackedAt;
    // Its hold is read only from a result straight from its agent (a relay could alter it).
    if (!ackedOf(attempt)) this.attempts.acknowledge(attempt, from === body.agentId ? body.heldMs : undefined);
    // Its relays brought the assignment there, or the result back.
    for (const relays of [attempt.route, attempt.reply]) {
      for (const id of relays) {
        const relay = this.agents.get(id);
        if (relay === undefined) continue;
        relay.dropped = 0;
        relay.droppedFor.clear();
      }
    }
    const latencyMs = this.now() - attempt.assignedAt;
    // The protocol is scored on the whole trip, retransmissions included (they are its routes'
    // cost); the agent on its work, acknowledgement to result, so that loss on the way does not
    // make it look slow. One whose acknowledgement was lost gives no sample of its work.
    this.executions.next({ protocol: attempt.protocol, ok: body.ok, latencyMs, messages: attempt.hops + attempt.reply.length + 1 });
    if (startedAt !== undefined) this.detection.latency(body.agentId, this.now() - startedAt);
    const run = state.task;
    if (body.ok) {
      this.attempts.release(attempt, true);
      this.hooks.record({ type: 'subtask.accepted', taskId: run.task.id, subtaskId: state.subtask.id, attempt: body.attempt, value: body.value });
      state.attempts.splice(state.attempts.indexOf(attempt), 1);
      this.hedging.unwant(state);
      if (record) record.completed++;
      run.done++;
      this.delegation.ended(state);
      emitTask(this.hooks, run, { type: 'subtask.completed', at: this.now(), subtaskId: state.subtask.id, agentId: body.agentId, attempt: body.attempt });
      // The other attempt of a hedged subtask lost the race: it is cancelled. If it was the silent
      // one, its agent kept quiet while another did the same work: it is taken for hung.
      for (const loser of state.attempts.splice(0)) this.cancelLoser(loser, attempt);
    } else {
      if (record) record.failures++;
      this.attempts.endAttempt(attempt, `handler failed: ${body.error ?? 'failed'}`, true);
      if (state.entry.failures >= attemptsOf(state, this.settings.maxSubtaskAttempts)) this.attempts.fail(state, `handler failed ${state.entry.failures} time(s): ${body.error ?? 'failed'}`);
    }
    return run;
  }

  /** Ends the attempt that lost its hedge race (the ledger ended it with the winner's result). */
  private cancelLoser(loser: Attempt, winner: Attempt): void {
    this.attempts.untake(loser);
    this.attempts.release(loser);
    this.attempts.sendCancel(loser);
    if (!loser.silent) return;
    const record = this.agents.get(loser.agentId);
    if (record === undefined || record.status !== 'live') return;
    const detail = `no progress on ${loser.state.subtask.id} of task ${loser.state.task.task.id} while ${winner.agentId} ran it to the end`;
    const fault: DetectedFault = { type: 'detected', kind: 'agent_timeout', severity: 'medium', at: this.now(), agentId: record.id, detail };
    this.engine.emit({ type: 'fault.detected', at: fault.at, kind: fault.kind, severity: fault.severity, agentId: record.id, detail });
    this.engine.heal(fault);
  }

  /**
   * A result its transport could not authenticate as the named agent's own: rejected, nothing
   * more. Who made it is unknown: honest relays pass on whatever is addressed through them, so the
   * node that delivered it may only have carried it (blaming it would let anyone get honest agents
   * quarantined by bouncing forgeries through them). A relay that keeps the real result back is
   * found out as results lost in transit.
   */
  private onForged(body: ResultBody, from: string, state: SubtaskState | undefined): void {
    if (state !== undefined) state.task.stale++;
    const rejected: CoordinationEvent = { type: 'subtask.rejected', at: this.now(), subtaskId: body.subtaskId, agentId: body.agentId, attempt: body.attempt, reason: `forged: ${body.forged ?? ''} (delivered by ${from})` };
    if (state === undefined) this.hooks.emit(rejected);
    else emitTask(this.hooks, state.task, rejected);
  }}

/** The node a result of the attempt must come from: the last relay of its way back, or its agent. */
function lastReplyHop(attempt: Attempt): string {
  const reply = attempt.reply;
  return reply.length === 0 ? attempt.agentId : (reply[reply.length - 1] as string);
}
