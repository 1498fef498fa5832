import { Observable, Subject, asyncScheduler, lastValueFrom, type SchedulerLike } from 'rxjs';
import { AgentHost } from '../streams/agentHost.js';
import type { Journal } from '../streams/journal.js';
import type { Network } from '../streams/network.js';
import { InMemoryNetwork } from '../streams/network.js';
import { createRandom } from '../streams/random.js';
import { MAX_TIMER_MS, subtaskProblem, type InProcessAgent, type Task } from '../streams/task.js';
import { Engine, type AgentSlot, type DetectorOptions, type EngineHooks, type Settings } from './engine.js';
import type { CoordinationEvent, CoordinationResult } from './events.js';
import { FAULT_TABLE } from './faultDetector.js';
import { applyLedgerEvent, emptyLedger, ended, restoreLedger, resultOf, settledOf, subtaskCount, type Ledger, type LedgerEvent, type SettledSubtasks, type TaskEntry, type TaskState } from './ledger.js';
import { COORDINATOR, TOPOLOGY_NAMES, type TopologyName } from './topology.js';

export type { AgentSlot, DetectorOptions } from './engine.js';

export interface CoordinatorOptions {
  readonly agents: ReadonlyArray<InProcessAgent | AgentSlot>;
  /**
   * A topology value (`star`, `ring`, … from rxswarm) or its name; `adaptive` starts from the
   * decision matrix and switches when measurements say so. Default `adaptive`.
   */
  readonly topology?: TopologyName | 'adaptive' | { readonly name: TopologyName | 'adaptive' };
  readonly scheduler?: SchedulerLike;
  /** The network agents and coordinator talk over. Default: an in-memory network on `scheduler`. */
  readonly network?: Network;
  /** Seeds every random choice (heartbeat jitter, network loss), so a run replays. Default 0. */
  readonly seed?: number;
  readonly heartbeat?: { readonly intervalMs?: number; readonly jitterMs?: number };
  /** Liveness detector. Default phi accrual with a pause allowance of two intervals. */
  readonly detector?: DetectorOptions;
  /** An assignment without progress or result this long marks its agent as hung. Default 30 s. */
  readonly progressTimeoutMs?: number;
  /**
   * An unacknowledged assignment is sent again, same attempt, every retransmission timeout learned
   * from the agent's round trips (RFC 6298; a third of this before anything is measured); one
   * still unacknowledged this long after its first send (two resends at least) is taken as lost
   * for good (a dead relay, an agent that takes nothing in): it runs again with a new attempt and
   * is counted against the link, not blamed on the agent. It also caps each single wait, and is
   * the least time a result announced as on its way through relays is waited for. Default 3 s.
   */
  readonly ackTimeoutMs?: number;
  /** Runs of a subtask whose handler failed (or that timed out) before the subtask is reported failed. Default 3. */
  readonly maxSubtaskAttempts?: number;
  /**
   * Start-to-close limit of an attempt of a subtask whose task and subtask set no `timeoutMs`:
   * past it the attempt fails whatever progress it reports (fake progress cannot hold a subtask).
   * Default 30 minutes.
   */
  readonly attemptTimeoutMs?: number;
  /**
   * Most subtasks an agent in another process runs at once, whatever it claims. It is granted one
   * slot at first and one more per result it delivers, up to its claim and this cap; a timed-out
   * attempt halves its grant. Default 64.
   */
  readonly maxSlotsPerAgent?: number;
  /** A queued subtask that no live agent can run for this long is reported failed. Default 60 s. */
  readonly orphanTimeoutMs?: number;
  /** Healing strategies tried per fault. Default 3. */
  readonly maxAttempts?: number;
  /**
   * An agent in another process whose connection closed without a clean leave is suspected at once,
   * and declared down (its work reassigned) unless it reconnects within this long. Default 500 ms:
   * long enough for a blip of the link, short against a killed process's lost work.
   */
  readonly reconnectGraceMs?: number;
  /** Mesh failure verdicts: window of the peers' vote. Default 2 s. */
  readonly consensusWindowMs?: number;
  /**
   * A circular wait among agents whose every slot waits for a child (`context.delegate`) is a
   * protocol_deadlock once it has lasted this long: one waiter is aborted and runs again. Default
   * 120 s (the seed's table).
   */
  readonly deadlockMs?: number;
  /**
   * Adaptive switching (see `adaptiveSwitch`). `explore`: share of assignments, in [0, 1), routed
   * under a candidate protocol that has never been in force, so that candidates are scored from
   * measurements here rather than from the decision matrix's prior (see `ProtocolProbe`). Higher:
   * a change of conditions is answered sooner, more work on routes that may be worse. Default 0.
   */
  readonly adaptive?: { readonly evaluateEveryMs?: number; readonly windowMs?: number; readonly minDwellMs?: number; readonly switchThreshold?: number; readonly explore?: number };
  /** Ends the task at this scheduler time: what is not done is reported failed. */
  readonly deadlineMs?: number;
  /**
   * Where the ledger is recorded (`FileJournal`, `MemoryJournal`): a coordinator created on a
   * journal resumes every unfinished task it holds. Default none: the ledger lives in memory only.
   */
  readonly journal?: Journal;
  /** Tasks that run at once, sharing the agents in turn; the others wait in order. Default 4. */
  readonly maxTasks?: number;
  /** How long a finished task's result stays retrievable (`attach$`, `result`, `tasks`). Default 24 h. */
  readonly retentionMs?: number;
  /** Most finished tasks kept, the oldest forgotten first. Default 1,000. */
  readonly maxRetainedTasks?: number;
  /** Journal records after which the ledger is written as a snapshot and the records before it dropped. Default 100,000. */
  readonly snapshotEvery?: number;
}

export interface Coordinator {
  /**
   * Submits the task and streams its events (its subtasks', and the engine's while it runs),
   * ending with `task.completed` carrying the result. Unsubscribing before the end cancels the task.
   * Errors with a RangeError when a task of that id is queued or running.
   */
  run$(task: Task): Observable<CoordinationEvent>;
  /** The result of the run. */
  run(task: Task): Promise<CoordinationResult>;
  /**
   * Takes a task to run when its turn comes (at most `maxTasks` run at once), without following
   * it (see `attach$`). Throws a RangeError for a malformed task or one whose id is queued or
   * running, and an Error when the journal cannot write. A finished task's id may be used again.
   */
  submit(task: Task): void;
  /**
   * Submits the task on subscription and streams its events from the first (as `run$`), but
   * unsubscribing only stops following: the task runs on. Errors as `submit` throws.
   */
  submit$(task: Task): Observable<CoordinationEvent>;
  /**
   * Follows a task by id from now on: its events, ending with `task.completed` (at once for a
   * finished task still kept). Errors with a RangeError for a task it does not know.
   */
  attach$(taskId: string): Observable<CoordinationEvent>;
  /** Every task it keeps: queued (with its position), running, and finished within retention. */
  tasks(): TaskInfo[];
  /** What `tasks()` says of one task, without listing the others; undefined for one it does not keep. */
  taskInfo(taskId: string): TaskInfo | undefined;
  /** The result of a finished task still kept, else undefined. */
  result(taskId: string): CoordinationResult | undefined;
  /** What has settled so far of a task it keeps, running or not: completed subtasks' values, failed ones' reasons. */
  settled(taskId: string): SettledSubtasks | undefined;
  /** The task of that id it keeps (queued, running or finished), else undefined. */
  task(taskId: string): Task | undefined;
  /** Resolves once everything recorded so far is in the journal (at once without one). */
  durable(): Promise<void>;
  /** Why it takes no work (its journal cannot write), or undefined. */
  readonly halted: string | undefined;
  /** Stops the engine and lets go of the journal; running tasks stay running in it, for the next coordinator to resume. */
  close(): Promise<void>;
  /** Everything every run of this coordinator emits. */
  readonly events$: Observable<CoordinationEvent>;
  /** The hosts of the in-process agents (simulation injects faults through them). */
  readonly hosts: ReadonlyMap<string, AgentHost>;
  readonly network: Network;
  /**
   * Switches every run in progress to the topology `to` now, the way an adaptive switch does:
   * in-flight work keeps its attempts and reply paths, queued and new work take the new routes, so
   * nothing is lost or run twice; the run records the switch (`protocol.switched`, `switches`) with
   * `reason`. Returns how many runs switched: 0 when none is running or they already use `to`.
   * RangeError for a name that is not a topology (`adaptive` included: it is not a layout).
   *
   * @example coordinator.switchProtocol('star', 'operator: hub has spare capacity') // 1
   */
  switchProtocol(to: TopologyName, reason?: string): number;
  /**
   * Ends task `taskId` now, as its deadline would: its remote work is cancelled, every unfinished
   * subtask fails with `reason` (default `cancelled`), and it ends with its result
   * (`task.completed`, `success` false unless everything had already ended); a queued task ends
   * without running. False when the task is not queued or running.
   *
   * @example coordinator.cancel('review-42') // true: the run's result lists its unfinished subtasks as failed: cancelled
   */
  cancel(taskId: string, reason?: string): boolean;
}

/** What `tasks()` says of a task. */
export interface TaskInfo {
  readonly id: string;
  readonly state: TaskState;
  readonly subtasks: number;
  readonly completed: number;
  readonly failed: number;
  /** 1 for the next to start, while it is queued. */
  readonly queuePosition?: number;
  readonly submittedAt: number;
  readonly startedAt?: number;
  readonly finishedAt?: number;
}

/** Who follows a task's events. */
interface Follower {
  next(event: CoordinationEvent): void;
  complete(): void;
}

/** Attempt tokens reserved at a time; a new block is recorded when half of the last one is used. */
const ATTEMPT_BLOCK = 1 << 20;

/**
 * Creates a coordinator over in-process agents. Each run hosts the agents on the network, lays out
 * the topology, dispatches subtasks along its routes with attempt tokens, detects failures from
 * heartbeats and progress, heals, and switches protocol when `adaptive` measurements say so.
 *
 * Tasks are kept in a ledger: several run at once (`maxTasks`), sharing the agents in turn, and
 * the rest wait in the order they came. With a `journal`, the ledger survives the coordinator: a
 * coordinator created on the same journal resumes every unfinished task (accepted results kept,
 * the rest issued again with attempt tokens above every earlier one).
 *
 * ```
 * submit ─▶ ledger (task.submitted) ─▶ queue ─▶ engine (at most maxTasks) ─▶ task.completed
 *              └── every event: applyLedgerEvent, then journal.append ──▶ effects (send, timers)
 * ```
 *
 * @example
 * const coordinator = createCoordinator({ agents, topology: 'star' });
 * const result = await coordinator.run({ id: 't', subtasks: [{ id: 's-0', payload: 1 }] });
 */
export function createCoordinator(options: CoordinatorOptions): Coordinator {
  const settings = settle(options);
  const { scheduler, journal } = settings;
  const events$ = new Subject<CoordinationEvent>();
  const random = createRandom(settings.seed);
  const network = options.network ?? new InMemoryNetwork({ scheduler, random: random.fork('network') });
  const hosts = new Map<string, AgentHost>();
  for (const slot of settings.slots) {
    hosts.set(
      slot.agent.id,
      new AgentHost(slot.agent, {
        network,
        coordinatorId: COORDINATOR,
        heartbeatIntervalMs: settings.heartbeatIntervalMs,
        heartbeatJitterMs: settings.heartbeatJitterMs,
        // A peer votes "gone" after two missed beats, sooner than the coordinator's phi suspects.
        peerSilenceMs: 2 * settings.heartbeatIntervalMs + settings.heartbeatJitterMs,
        random: random.fork(`agent:${slot.agent.id}`),
        heartbeatTargets: () => runTargets.get(slot.agent.id)?.() ?? [COORDINATOR],
      }),
    );
  }
  // The running engine tells hosts where to beat (a mesh beats every peer).
  const runTargets = new Map<string, () => readonly string[]>();

  // The ledger, as the journal left it: the snapshot, then every event after it.
  const ledger = journal === undefined ? emptyLedger() : recoverLedger(journal);
  /** Tokens below `ledger.reservedAttempts` are free from here on: the crashed coordinator's are below `nextToken`. */
  let nextToken = Math.max(1, ledger.reservedAttempts);
  let halted: string | undefined;
  let engine: Engine | undefined;
  let starting = false;
  /** Who follows each task (`run$`, `attach$`): its events until it ends. */
  const followers = new Map<string, Set<Follower>>();
  const followersOf = (taskId: string): Set<Follower> => {
    let set = followers.get(taskId);
    if (set === undefined) followers.set(taskId, (set = new Set()));
    return set;
  };

  const record = (event: LedgerEvent): void => {
    applyLedgerEvent(ledger, event);
    if (journal === undefined || halted !== undefined) return;
    try {
      journal.append(event);
      if (journal.sinceSnapshot >= settings.snapshotEvery) journal.snapshot(ledger);
    } catch (err) {
      halt(err instanceof Error ? err.message : String(err));
    }
  };

  /** The journal cannot write: no new work is taken or handed out; what was durable stays so. */
  const halt = (reason: string): void => {
    if (halted !== undefined) return;
    halted = reason;
    events$.next({ type: 'coordinator.halted', at: scheduler.now(), reason });
  };
  journal?.onFailure(err => halt(err.message));

  const follow = (taskId: string, event: CoordinationEvent): void => {
    const subscribers = followers.get(taskId);
    if (subscribers === undefined) return;
    for (const s of [...subscribers]) {
      s.next(event);
      if (event.type === 'task.completed') s.complete();
    }
    if (event.type === 'task.completed') followers.delete(taskId);
  };

  const hooks: EngineHooks = {
    record,
    nextAttempt: () => {
      const attempt = nextToken++;
      // Recorded well before it is needed: a block's record is durable long before half of the
      // previous block is used, so no token is sent above what the journal has reserved.
      if (attempt + ATTEMPT_BLOCK / 2 >= ledger.reservedAttempts) record({ type: 'attempts.reserved', upTo: Math.max(ledger.reservedAttempts, attempt) + ATTEMPT_BLOCK });
      return attempt;
    },
    halted: () => halted,
    emit: event => events$.next(event),
    ended: (run, result) => {
      prune();
      const event: CoordinationEvent = { type: 'task.completed', at: scheduler.now(), result };
      events$.next(event);
      follow(run.task.id, event);
      startQueued();
    },
  };

  /** Starts queued tasks while fewer than `maxTasks` run (once the first tokens' reservation is durable). */
  const startQueued = (): void => {
    if (starting || !ready) return;
    starting = true;
    try {
      while (ledger.queue.length > 0 && halted === undefined && (engine?.stopped !== false || engine.running < settings.maxTasks)) {
        start(ledger.queue[0] as string);
      }
    } finally {
      starting = false;
    }
  };

  /** Runs a task on the engine (a new one if none runs): queued ones are recorded as started. */
  const start = (taskId: string): void => {
    const entry = ledger.tasks[taskId] as TaskEntry;
    if (entry.state === 'queued') record({ type: 'task.started', at: scheduler.now(), taskId });
    const fresh = engine === undefined || engine.stopped;
    if (fresh) engine = new Engine(settings, network, hosts, runTargets, hooks);
    (engine as Engine).addTask(entry, event => follow(taskId, event));
    if (fresh) (engine as Engine).start();
  };

  /** Finished tasks past their retention (or beyond the most kept) are forgotten. */
  const prune = (): void => {
    const now = scheduler.now();
    const finished = Object.values(ledger.tasks).filter(ended);
    let excess = finished.length - settings.maxRetainedTasks;
    for (const entry of finished) {
      if (excess > 0 || (entry.finishedAt ?? now) + settings.retentionMs <= now) {
        record({ type: 'task.forgotten', taskId: entry.task.id });
        excess--;
      }
    }
  };

  const submit = (task: Task): void => {
    validateTask(task);
    if (halted !== undefined) throw new Error(halted);
    const known = ledger.tasks[task.id];
    if (known !== undefined) {
      if (!ended(known)) throw new RangeError(`a task with id ${JSON.stringify(task.id)} is already ${known.state}: give this one another id`);
      // A finished task's id may be used again: the new task replaces what was kept of the old one.
      record({ type: 'task.forgotten', taskId: task.id });
    }
    record({ type: 'task.submitted', at: scheduler.now(), task });
    startQueued();
  };

  const attach$ = (taskId: string): Observable<CoordinationEvent> =>
    new Observable<CoordinationEvent>(subscriber => {
      const entry = ledger.tasks[taskId];
      if (entry === undefined) {
        subscriber.error(new RangeError(`no task ${JSON.stringify(taskId)}: it was never submitted, or its result is no longer kept`));
        return undefined;
      }
      if (ended(entry)) {
        subscriber.next({ type: 'task.completed', at: entry.finishedAt ?? scheduler.now(), result: resultOf(entry) as CoordinationResult });
        subscriber.complete();
        return undefined;
      }
      followersOf(taskId).add(subscriber);
      return () => followers.get(taskId)?.delete(subscriber);
    });

  /** Submits `task` on subscription and streams its events from the very first; `cancelOnLeave`: unsubscribing before its end cancels it. */
  const follow$ = (task: Task, cancelOnLeave: boolean): Observable<CoordinationEvent> => {
    validateTask(task); // bad input fails here, before anything starts
    return new Observable<CoordinationEvent>(subscriber => {
      let done = false;
      const follower: Follower = {
        next: event => subscriber.next(event),
        complete: () => {
          done = true;
          subscriber.complete();
        },
      };
      // Followed before it is submitted: what happens inside submit (it starts, its first
      // assignments, or it ends at once with nothing to do) reaches the follower too.
      const taken = ledger.tasks[task.id];
      if (taken === undefined || ended(taken)) followersOf(task.id).add(follower);
      try {
        submit(task);
      } catch (err) {
        followers.get(task.id)?.delete(follower);
        subscriber.error(err);
        return undefined;
      }
      return () => {
        followers.get(task.id)?.delete(follower);
        // A run nobody follows any more is not wanted: it ends (its remote work is cancelled).
        if (!done && cancelOnLeave) cancel(task.id, 'abandoned: nobody follows the run any more');
      };
    });
  };
  const run$ = (task: Task): Observable<CoordinationEvent> => follow$(task, true);

  const switchProtocol = (to: TopologyName, reason = 'requested'): number => {
    if (typeof to !== 'string' || !TOPOLOGY_NAMES.includes(to)) {
      throw new RangeError(`to must be one of ${TOPOLOGY_NAMES.join(', ')}, got ${JSON.stringify(to)}`);
    }
    if (typeof reason !== 'string') throw new RangeError(`reason must be a string, got ${String(reason)}`);
    return engine !== undefined && !engine.stopped && engine.requestSwitch(to, reason) ? engine.running : 0;
  };

  const cancel = (taskId: string, reason = 'cancelled'): boolean => {
    const entry = ledger.tasks[taskId];
    if (entry === undefined || ended(entry)) return false;
    if (entry.state === 'queued') {
      record({ type: 'task.cancelled', at: scheduler.now(), taskId, reason });
      const event: CoordinationEvent = { type: 'task.completed', at: scheduler.now(), result: resultOf(entry) as CoordinationResult };
      events$.next(event);
      follow(taskId, event);
      return true;
    }
    return engine?.cancel(taskId, reason) ?? false;
  };

  const infoOf = (entry: TaskEntry): TaskInfo => {
    const position = entry.state === 'queued' ? ledger.queue.indexOf(entry.task.id) + 1 : 0;
    return {
      id: entry.task.id,
      state: entry.state,
      subtasks: subtaskCount(entry),
      completed: entry.completed,
      failed: entry.failed,
      ...(position > 0 ? { queuePosition: position } : {}),
      submittedAt: entry.submittedAt,
      ...(entry.startedAt === undefined ? {} : { startedAt: entry.startedAt }),
      ...(entry.finishedAt === undefined ? {} : { finishedAt: entry.finishedAt }),
    };
  };
  const tasks = (): TaskInfo[] => {
    prune();
    return Object.values(ledger.tasks).map(infoOf);
  };

  // Resume what the journal holds: running tasks first (their engine starts), then the queue.
  // Not before the reservation of the tokens it will hand out is durable (a token sent above the
  // durable reservation could be handed out again after a crash), and not before the caller can
  // follow: on the scheduler's next turn.
  const resume = (): void => {
    ready = true;
    for (const entry of Object.values(ledger.tasks)) if (entry.state === 'running' && halted === undefined) start(entry.task.id);
    startQueued();
  };
  let ready = journal === undefined;
  if (journal !== undefined) {
    record({ type: 'attempts.reserved', upTo: nextToken + ATTEMPT_BLOCK });
    if (!journal.pending) ready = true;
  }
  const unfinished = Object.values(ledger.tasks).some(entry => !ended(entry));
  if (journal !== undefined && !ready) journal.durable().then(() => scheduler.schedule(resume), (err: unknown) => halt(err instanceof Error ? err.message : String(err)));
  else if (unfinished) scheduler.schedule(resume);

  return {
    run$,
    submit$: task => follow$(task, false),
    run: task => lastValueFrom(run$(task)).then(last => (last as Extract<CoordinationEvent, { type: 'task.completed' }>).result),
    submit,
    attach$,
    tasks,
    taskInfo: taskId => {
      const entry = ledger.tasks[taskId];
      return entry === undefined ? undefined : infoOf(entry);
    },
    result: taskId => {
      const entry = ledger.tasks[taskId];
      return entry === undefined ? undefined : resultOf(entry);
    },
    settled: taskId => {
      const entry = ledger.tasks[taskId];
      return entry === undefined ? undefined : settledOf(entry);
    },
    task: taskId => ledger.tasks[taskId]?.task,
    durable: () => journal?.durable() ?? Promise.resolve(),
    get halted() {
      return halted;
    },
    events$: events$.asObservable(),
    hosts,
    network,
    switchProtocol,
    cancel,
    close: async () => {
      // Running tasks stay running in the ledger: a coordinator on the same journal resumes them.
      engine?.stop();
      await journal?.close();
    },
  };
}

/** The ledger a journal holds: its snapshot, then every record after it, through the same reducer. */
function recoverLedger(journal: Journal): Ledger {
  const { snapshot, records } = journal.recover();
  const ledger = snapshot === undefined ? emptyLedger() : restoreLedger(snapshot);
  records.forEach((event, i) => {
    try {
      applyLedgerEvent(ledger, event as LedgerEvent);
    } catch (err) {
      throw new Error(`the journal's record ${i + 1} after its snapshot does not apply: ${(err as Error).message}`);
    }
  });
  return ledger;
}

function requireWhole(name: string, value: number): number {
  if (!(Number.isSafeInteger(value) && value >= 1)) throw new RangeError(`${name} must be an integer >= 1, got ${String(value)}`);
  return value;
}

function positive(name: string, value: number): number {
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) throw new RangeError(`${name} must be a finite number > 0, got ${String(value)}`);
  return value;
}

function share(name: string, value: number): number {
  if (typeof value !== 'number' || !(value >= 0 && value < 1)) throw new RangeError(`${name} must be a number in [0, 1), got ${String(value)}`);
  return value;
}

function settle(options: CoordinatorOptions): Settings {
  if (options === null || typeof options !== 'object') throw new RangeError('createCoordinator needs an options object');
  const {
    agents,
    topology: topologyOption = 'adaptive',
    scheduler = asyncScheduler,
    seed = 0,
    heartbeat = {},
    progressTimeoutMs = 30_000,
    ackTimeoutMs = 3000,
    maxSubtaskAttempts = 3,
    attemptTimeoutMs = 30 * 60_000,
    maxSlotsPerAgent = 64,
    orphanTimeoutMs = 60_000,
    maxAttempts = 3,
    reconnectGraceMs = 500,
    consensusWindowMs = 2000,
    deadlockMs = FAULT_TABLE.protocol_deadlock.threshold,
    adaptive = {},
    deadlineMs = Infinity,
    journal,
    maxTasks = 4,
    retentionMs = 24 * 3600_000,
    maxRetainedTasks = 1000,
    snapshotEvery = 100_000,
  } = options;
  if (!Array.isArray(agents)) throw new RangeError(`agents must be an array, got ${String(agents)}`);
  const topology = typeof topologyOption === 'object' && topologyOption !== null ? topologyOption.name : topologyOption;
  const slots = agents.map((a, i): AgentSlot => {
    const slot = 'agent' in a ? a : { agent: a };
    const agent = slot.agent;
    if (agent === null || typeof agent !== 'object' || typeof agent.id !== 'string' || agent.id === '' || typeof agent.handle !== 'function' || !Array.isArray(agent.capabilities)) {
      throw new RangeError(`agents[${i}] must be { id, capabilities, handle }, got ${JSON.stringify(a)}`);
    }
    if (agent.id === COORDINATOR) throw new RangeError(`agents[${i}]: the id "${COORDINATOR}" is the coordinator's`);
    return slot;
  });
  const ids = new Set<string>();
  for (const s of slots) {
    if (ids.has(s.agent.id)) throw new RangeError(`agents: duplicate agent id "${s.agent.id}"`);
    ids.add(s.agent.id);
  }
  if (topology !== 'adaptive' && !TOPOLOGY_NAMES.includes(topology)) {
    throw new RangeError(`topology must be one of ${[...TOPOLOGY_NAMES, 'adaptive'].join(', ')}, got ${String(topology)}`);
  }
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${String(seed)}`);
  const heartbeatIntervalMs = positive('heartbeat.intervalMs', heartbeat.intervalMs ?? 1000);
  const heartbeatJitterMs = heartbeat.jitterMs ?? heartbeatIntervalMs / 10;
  if (!(heartbeatJitterMs >= 0 && heartbeatJitterMs < heartbeatIntervalMs)) {
    throw new RangeError(`heartbeat.jitterMs must be in [0, intervalMs), got ${String(heartbeatJitterMs)}`);
  }
  const detector: DetectorOptions = options.detector ?? {
    kind: 'phi',
    firstHeartbeatEstimateMs: heartbeatIntervalMs,
    acceptableHeartbeatPauseMs: 2 * heartbeatIntervalMs,
    minStdDeviationMs: Math.max(1, heartbeatJitterMs),
  };
  if (detector.kind !== 'phi' && detector.kind !== 'deadline') throw new RangeError(`detector.kind must be 'phi' or 'deadline', got ${String((detector as { kind: unknown }).kind)}`);
  if (!(maxSubtaskAttempts >= 1 && Number.isInteger(maxSubtaskAttempts))) throw new RangeError(`maxSubtaskAttempts must be an integer >= 1, got ${maxSubtaskAttempts}`);
  if (!(maxAttempts >= 1 && Number.isInteger(maxAttempts))) throw new RangeError(`maxAttempts must be an integer >= 1, got ${maxAttempts}`);
  if (!(deadlineMs > 0)) throw new RangeError(`deadlineMs must be > 0, got ${deadlineMs}`);
  const evaluateEveryMs = positive('adaptive.evaluateEveryMs', adaptive.evaluateEveryMs ?? 30_000);
  return {
    slots,
    topology,
    scheduler,
    seed,
    heartbeatIntervalMs,
    heartbeatJitterMs,
    detector,
    progressTimeoutMs: positive('progressTimeoutMs', progressTimeoutMs),
    ackTimeoutMs: positive('ackTimeoutMs', ackTimeoutMs),
    maxSubtaskAttempts,
    attemptTimeoutMs: positive('attemptTimeoutMs', attemptTimeoutMs),
    maxSlotsPerAgent: requireWhole('maxSlotsPerAgent', maxSlotsPerAgent),
    orphanTimeoutMs: positive('orphanTimeoutMs', orphanTimeoutMs),
    maxAttempts,
    reconnectGraceMs: positive('reconnectGraceMs', reconnectGraceMs),
    consensusWindowMs: positive('consensusWindowMs', consensusWindowMs),
    deadlockMs: positive('deadlockMs', deadlockMs),
    adaptive: {
      evaluateEveryMs,
      windowMs: positive('adaptive.windowMs', adaptive.windowMs ?? 10 * evaluateEveryMs),
      minDwellMs: adaptive.minDwellMs ?? 2 * evaluateEveryMs,
      switchThreshold: adaptive.switchThreshold ?? 0.3,
      explore: share('adaptive.explore', adaptive.explore ?? 0),
    },
    deadlineMs,
    journal,
    maxTasks: requireWhole('maxTasks', maxTasks),
    retentionMs: positive('retentionMs', retentionMs),
    maxRetainedTasks: requireWhole('maxRetainedTasks', maxRetainedTasks),
    snapshotEvery: requireWhole('snapshotEvery', snapshotEvery),
  };
}

/** Throws a RangeError naming what is wrong with a task (shape, empty or duplicate subtask ids). */
export function validateTask(task: Task): void {
  if (task === null || typeof task !== 'object' || typeof task.id !== 'string' || !Array.isArray(task.subtasks)) {
    throw new RangeError('a task must be { id: string, subtasks: Subtask[] }');
  }
  if (task.id.includes('\u0000')) throw new RangeError('a task id may not contain NUL');
  if (task.maxAttempts !== undefined && !(Number.isSafeInteger(task.maxAttempts) && task.maxAttempts >= 1)) throw new RangeError(`maxAttempts must be an integer >= 1, got ${String(task.maxAttempts)}`);
  for (const key of ['timeoutMs', 'deadlineMs'] as const) {
    const ms = task[key];
    if (ms !== undefined && !(typeof ms === 'number' && ms > 0 && ms <= MAX_TIMER_MS)) throw new RangeError(`${key} must be a number of ms in (0, ${MAX_TIMER_MS}], got ${String(ms)}`);
  }
  const ids = new Set<string>();
  task.subtasks.forEach((s, i) => {
    const problem = subtaskProblem(s);
    if (problem !== undefined) throw new RangeError(`subtasks[${i}]: ${problem}`);
    if (ids.has(s.id)) throw new RangeError(`subtasks: duplicate subtask id "${s.id}"`);
    ids.add(s.id);
  });
}
