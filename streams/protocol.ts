import type { Subtask, Task } from './task.js';

/**
 * Bodies of the messages the engine and its agents exchange, by envelope `kind`. Every message may
 * travel through relays: `via` lists the hops still to go after the receiver, from index `hop`
 * on, and a node that finds hops left forwards the message instead of handling it (each hop is
 * counted).
 *
 * A relay passes the body itself on, its `hop` advanced in place, rather than a copy of the rest
 * of the route or of the body: a route of n relays costs O(n) once, not O(n) per hop (a ring's
 * routes are as long as the ring), and a hop allocates nothing. So a sender that keeps a body to
 * send it again (an agent's unconfirmed result) sends copies of it. `hop` never
 * travels on the wire: a transport that serialises a body writes the route still to go
 * (`via.slice(hop)`, no `hop`), so the wire format is the one it always was, and signatures leave
 * the route out either way.
 */
export interface Routed {
  readonly via: readonly string[];
  /** Entries of `via` already travelled (default 0). */
  readonly hop?: number;
}

/** Hops still to go after the receiver of `body` (0: it is the final recipient). */
export function hopsLeft(body: Partial<Routed>): number {
  const via = body.via;
  return via === undefined ? 0 : via.length - (body.hop ?? 0);
}

/** The route still to go, as the wire carries it: `via` from `hop` on (the same array when nothing was travelled). */
export function routeLeft(body: Partial<Routed>): readonly string[] {
  const via = body.via ?? [];
  const hop = body.hop ?? 0;
  return hop === 0 ? via : via.slice(hop);
}

export interface AssignBody extends Routed {
  /** The task the subtask belongs to: subtask ids are unique within their task only. */
  readonly taskId?: string;
  readonly subtask: Subtask;
  readonly attempt: number;
  /** Path of the result back to the coordinator, first hop first. */
  readonly replyPath: readonly string[];
  /** Signature of the coordinator for the agent it is meant for (WebSocket; `streams/signing.ts`). */
  readonly mac?: string;
  /**
   * The coordinator's retransmission timeout for this agent, whole ms (learned from its round
   * trips): how long the agent waits for its result to be `received` before sending it again.
   * Absent: the agent does not retransmit its result (a coordinator that does not confirm
   * results). Not signed: a relay that alters it can only make the agent retransmit sooner or
   * later, within the bounds the agent keeps, which is no more than a relay that drops can do.
   */
  readonly rto?: number;
  /**
   * Which send of this assignment it is: absent or 0 the first, n the n-th retransmission. The
   * acknowledgement echoes it (`ProgressBody.copy`), so that the coordinator measures the round trip
   * of the very copy answered, retransmitted or not (as TCP's timestamps do, RFC 7323): without it
   * (Karn's rule) a round trip that jumped past the timeout would never be measured, every
   * assignment being sent again before its answer came. Not signed, like `rto`: a relay that
   * alters it can only skew a timing sample, no more than one that delays.
   */
  readonly copy?: number;
}

export interface ResultBody extends Routed {
  /** The assignment's `taskId`, echoed. */
  readonly taskId?: string;
  readonly subtaskId: string;
  readonly attempt: number;
  readonly agentId: string;
  readonly ok: boolean;
  readonly value?: unknown;
  readonly error?: string;
  /** Signature of the agent that ran the attempt (WebSocket; `streams/signing.ts`). */
  readonly mac?: string;
  /** See {@link ProgressBody.heldMs}: read only from a result that came straight from its agent. */
  readonly heldMs?: number;
  /**
   * Set by a transport that authenticates results, never taken from the wire: why this result is
   * not the named agent's own (no or a wrong signature). The coordinator rejects it and blames the
   * hop that delivered it.
   */
  readonly forged?: string;
}

export interface ProgressBody {
  readonly taskId?: string;
  readonly subtaskId: string;
  readonly attempt: number;
  readonly progress: number;
  /** An acknowledgement (progress 0) names the copy of the assignment it answers (`AssignBody.copy`; 0 for an assign that named none). */
  readonly copy?: number;
  /**
   * The attempt has ended and its result is on its way through relays: sent straight to the
   * coordinator, so a relay that drops the result is found out (`true` or absent).
   */
  readonly done?: true;
  /**
   * On the message that acknowledges the assignment in place of an acknowledgement of its own (a
   * short attempt's result, or its `done`): whole ms the agent held the assignment before it, so
   * that the coordinator can take the round trip less the work (QUIC's ack delay). Absent when
   * an acknowledgement went out; read only from the agent itself, for its own estimate.
   */
  readonly heldMs?: number;
}

/**
 * The coordinator has a result (accepted, or rejected as stale): its agent stops retransmitting
 * it. Sent straight to the agent, never through relays, so it needs no signature: only the
 * coordinator's own connection carries it, and a lost one costs one more retransmission of the
 * result, which is answered again.
 */
export interface ReceivedBody {
  readonly taskId?: string;
  readonly subtaskId: string;
  readonly attempt: number;
}

/**
 * A running attempt asks for a child subtask of its task (`context.delegate`): sent straight to the
 * coordinator by the agent that holds `attempt` of `subtaskId`, and sent again (same body) every
 * retransmission timeout, backed off to the agent's heartbeat interval, until the child's outcome
 * comes back (`delegated`). The coordinator makes the child once (its id is
 * `subtaskId/subtask.id`), so a repeat, a lost answer or a re-run of the parent elsewhere asks for
 * the same child; each ask of a live attempt is also progress of that attempt (it is waiting, not
 * hung).
 */
export interface DelegateBody {
  readonly taskId?: string;
  /** The parent: the subtask whose attempt is waiting. */
  readonly subtaskId: string;
  readonly attempt: number;
  /** The child as the handler named it (its id is unique among the parent's children). */
  readonly subtask: Subtask;
  /**
   * Set by a transport that bounds payloads, never taken from the wire: why the child cannot be
   * taken (its payload is above what the coordinator takes). The coordinator refuses it.
   */
  readonly tooBig?: string;
}

/**
 * A child's outcome, or why it cannot be made, for the attempt that asked (`delegate`): sent
 * straight to the agent when the child ends and in answer to every ask after that. `ok` with its
 * accepted `value`, or not with `error` (the child failed, or the ask was refused: not the
 * attempt's to make, a limit reached).
 */
export interface DelegatedBody {
  readonly taskId?: string;
  readonly subtaskId: string;
  readonly attempt: number;
  /** The child's id as the handler named it (`DelegateBody.subtask.id`). */
  readonly childId: string;
  readonly ok: boolean;
  readonly value?: unknown;
  readonly error?: string;
}

export interface CancelBody extends Routed {
  readonly taskId?: string;
  readonly subtaskId: string;
  readonly attempt: number;
  /** Signature of the coordinator for the agent it is meant for (WebSocket). */
  readonly mac?: string;
}

export interface HeartbeatBody {
  /** Busy share of the agent's slots, 0..1 (a resource sample). */
  readonly load: number;
  readonly status?: 'ok' | 'leaving';
  /**
   * Counts the host's starts: a new incarnation is a fresh process, whose rhythm says nothing of
   * the old one's (the detector starts over; as in SWIM's incarnation numbers).
   */
  readonly incarnation: number;
  /**
   * The agent's most used resource (see {@link AgentUsage}); absent until the agent has any to
   * report, then on every beat. The coordinator feeds it to `resourcePressure`.
   */
  readonly usage?: AgentUsage;
}

/**
 * How full an agent is: the highest of what it measures (process memory against its budget, CPU,
 * event-loop delay) and what its handlers report (`context.usage`), as a fraction of capacity
 * (1 = full; more is allowed), with what it is.
 */
export interface AgentUsage {
  readonly fraction: number;
  /** `'memory'`, `'cpu'`, `'event loop'`, or what a handler named (`'tokens'`). */
  readonly what?: string;
}

/** A request for a peer's opinion: has `suspect` gone silent from where you stand? */
export interface VoteRequestBody {
  readonly proposalId: string;
  readonly suspect: string;
}

export interface VoteBody {
  readonly proposalId: string;
  readonly accept: boolean;
}

/**
 * Task submission to a coordinator service (`rxswarm run` → `rxswarm serve`): a client sends its
 * task to the service's `tasks` node, which answers with `event`s while the task runs and one
 * `outcome` at the end.
 */
export interface SubmitBody {
  readonly task: Task;
  /** Whether the submitter wants the run's events (default true); the outcome comes either way. */
  readonly watch?: boolean;
}

/**
 * A client follows a task it (or anyone) submitted, by id: after a lost connection, a coordinator
 * restart, or from another terminal (`rxswarm attach`). Answered like a submit: `task-state`, the
 * events when `watch` (default true), and the `outcome` (at once for a finished task still kept).
 */
export interface AttachBody {
  readonly taskId: string;
  readonly watch?: boolean;
}

/**
 * Where a followed task stands, sent when it is taken (the journal has it), when its queue
 * position changes, when it starts, and every few seconds while it runs: a follower that hears
 * nothing for long knows the coordinator is silent.
 */
export interface TaskStateBody {
  readonly taskId: string;
  readonly state: 'queued' | 'running' | 'done' | 'failed' | 'cancelled';
  readonly queuePosition?: number;
  readonly subtasks: number;
  readonly completed: number;
  readonly failed: number;
}

/** One coordination event of a submitted task (a `CoordinationEvent`), for the submitter's live view. */
export interface EventBody {
  readonly taskId: string;
  readonly event: { readonly type: string; readonly at: number } & Record<string, unknown>;
}

/** The end of a submitted task: its `CoordinationResult`, or why it could not run. */
export interface OutcomeBody {
  readonly taskId: string;
  readonly result?: unknown;
  readonly error?: string;
}

/**
 * A client's request to see the service (`rxswarm status`, `tasks`, the dashboard), sent to the
 * `tasks` node: answered with one `state` (everything now), then — when `live` — a `state` with
 * what changed at most every `everyMs`, until the client leaves or sends `live: false`.
 */
export interface WatchBody {
  readonly live: boolean;
  /** Whether to include every subtask's row (default true; `status` needs only the counts). */
  readonly subtasks?: boolean;
  /** The subtask whose timeline to include (assigned, acknowledged, progress, hedged, result). */
  readonly focus?: { readonly taskId: string; readonly subtaskId: string };
}

/**
 * The service's state for a watching client: `full` replaces everything the client holds; else
 * rows replace the rows of the same id and `removed` lists tasks forgotten (their subtasks too).
 * Rows are described in `src/swarmView.ts`.
 */
export interface StateBody {
  readonly seq: number;
  readonly full: boolean;
  readonly at: number;
  readonly [part: string]: unknown;
}

/** A client asks the service to cancel a task (queued: dropped; running: its run ends). */
export interface CancelTaskBody {
  readonly taskId: string;
}

/** The answer to `cancel-task`: whether it was cancelled, else why not. */
export interface CancelledBody {
  readonly taskId: string;
  readonly ok: boolean;
  readonly error?: string;
}

/** Kinds a service (`rxswarm serve`) exchanges with its clients (submitters, watchers, the dashboard). */
export const SUBMISSION_KINDS: ReadonlySet<string> = new Set<MessageKind>(['submit', 'attach', 'task-state', 'event', 'outcome', 'watch', 'state', 'cancel-task', 'cancelled']);

/** Where an agent in another process sends its liveness heartbeats (a mesh: every peer too). */
export interface PeersBody {
  readonly targets: readonly string[];
}

export interface MessageBodies {
  assign: AssignBody;
  result: ResultBody;
  progress: ProgressBody;
  received: ReceivedBody;
  cancel: CancelBody;
  delegate: DelegateBody;
  delegated: DelegatedBody;
  heartbeat: HeartbeatBody;
  'vote-request': VoteRequestBody;
  vote: VoteBody;
  token: Routed;
  peers: PeersBody;
  submit: SubmitBody;
  attach: AttachBody;
  'task-state': TaskStateBody;
  event: EventBody;
  outcome: OutcomeBody;
  watch: WatchBody;
  state: StateBody;
  'cancel-task': CancelTaskBody;
  cancelled: CancelledBody;
}

export type MessageKind = keyof MessageBodies;
