import { Subject, type SchedulerLike, type Subscription } from 'rxjs';
import type { ExecutionRecord, PerformanceSnapshot, ProtocolSwitch } from '../operators/index.js';
import type { AgentHost } from '../streams/agentHost.js';
import type { Envelope, Network } from '../streams/network.js';
import type { AssignBody, DelegateBody, HeartbeatBody, ProgressBody, ResultBody, VoteBody } from '../streams/protocol.js';
import type { Subtask } from '../streams/task.js';
import type { CoordinationEvent } from './events.js';
import type { DetectedFault, FaultEvent } from './faultDetector.js';
import type { LedgerEvent, SubtaskEntry, TaskEntry } from './ledger.js';
import { SelfHealingManager } from './selfHealing.js';
import { COORDINATOR, replyRoute, type Layout, type TopologyName } from './topology.js';
import { topologyFor } from './topologies/index.js';
import { AgentLifecycle } from './agentLifecycle.js';
import type { ProtocolProbe } from './protocolProbe.js';
import { EngineDetection } from './engineDetection.js';
import { healingActions, type HealingHost } from './engineHealing.js';
import { Delegations } from './engineDelegation.js';
import { initialProtocol, wireAdaptive } from './engineAdaptive.js';
import { Attempts } from './engineAttempts.js';
import { Tasks } from './engineTasks.js';
import { announceWaiting, waitKey } from './engineWaiting.js';
import { Hedging } from './engineHedging.js';
import { Results } from './engineResults.js';
import type { EngineParts } from './enginePart.js';
import type { EngineHooks, Settings } from './engineSettings.js';
import { COORDINATOR_ONLY, Candidates, Membership, sameTargets, type AgentRecord } from './membership.js';
import { ackedOf, emitTask, enqueue, stateKey, stopTimers, subtaskState, timeoutOf, type Attempt, type SubtaskState, type TaskRun } from './taskRun.js';

export type { TaskRun } from './taskRun.js';

export type { DetectorOptions } from './engineDetection.js';
export type { AgentSlot, EngineHooks, Settings } from './engineSettings.js';

/**
 * The engine: the tasks running now over one team of agents, the state machine every topology
 * shares. Per task it keeps a queue; dispatch takes from the tasks' queues in turn, so no task
 * starves another. Where each subtask stands is the ledger's: the engine records an event, then
 * does its effects (assignments, results, attempts and their timers, protocol switches).
 *
 * The agents are kept beside it, one concern a file: who they are and who is free
 * (`Membership`), what their signals say (`EngineDetection`), how their status changes
 * (`AgentLifecycle`), and what healing may do to them (`healingActions`). The work is split the
 * same way: a task's start and end (`Tasks`), an attempt's life once assigned (`Attempts`),
 * results as they come back (`Results`), backups for silent attempts (`Hedging`), and the adaptive
 * protocol's measurements (`wireAdaptive`). Each reaches the engine only through the small typed
 * interface it declares. The engine keeps the state they share and the paths every message and
 * subtask takes (receive, dispatch, assign), which read that state directly.
 */
export class Engine {
  private readonly scheduler: SchedulerLike;
  /** Subtasks of the running tasks by `taskId NUL subtaskId`. */
  private readonly subtasks = new Map<string, SubtaskState>();
  /** Running tasks, in the order they started: dispatch serves them in turn from `turn`. */
  private readonly runs = new Map<string, TaskRun>();
  private turn = 0;
  /** Nested dispatch calls (an assignment's events can lead back into dispatch). */
  private dispatchDepth = 0;
  /** The team: agent records, and who is live, capable and free. */
  private readonly agents: Membership;
  private readonly switches: ProtocolSwitch[] = [];
  private readonly subscriptions: Subscription[] = [];
  private healer!: SelfHealingManager;
  private readonly executions = new Subject<ExecutionRecord>();
  /** Every protocol put in force, for `adaptiveSwitch` to follow the switches it did not make. */
  private readonly inForce = new Subject<string>();
  /** Adaptive with exploration: routes a share of assignments under candidate protocols, to measure them. */
  private probe: ProtocolProbe | undefined;
  /** The signals detection watches, and the operators that turn them into verdicts. */
  private readonly detection: EngineDetection;
  /** Agents joining, beating, leaving, suspected, down, recovered, quarantined. */
  private readonly lifecycle: AgentLifecycle;
  /** Children that running attempts asked for, and the waits they make. */
  private readonly delegation: Delegations;
  private readonly performance = new Map<string, PerformanceSnapshot>();
  private protocol: TopologyName;
  private layout!: Layout;
  private orphanTimer: Subscription | undefined;
  /** When the armed orphan timer fails what still waits. */
  private orphansFailAt = 0;
  /** Backup attempts for silent ones: the subtasks that want one, and starting them. */
  private readonly hedging: Hedging;
  /** Attempts once assigned: acknowledged, resent, in transit, timed out, revoked, ended. */
  private readonly attempts: Attempts;
  /** Results as they come back: checked, confirmed, accepted or failed. */
  private readonly results: Results;
  /** Tasks' starts and ends. */
  private readonly tasks: Tasks;
  /** Why each subtask that no live agent can run was last said to wait (see {@link waitKey}). */
  private readonly waitingFor = new Map<string, string>();
  /** `liveChanges` when the whole queue was last looked at for subtasks no live agent can run. */
  private scannedLive = -1;
  private finished = false;
  private busy = false;
  private readonly later: Array<() => void> = [];

  constructor(
    private readonly settings: Settings,
    private readonly network: Network,
    private readonly hosts: Map<string, AgentHost>,
    private readonly targets: Map<string, () => readonly string[]>,
    private readonly hooks: EngineHooks,
  ) {
    this.scheduler = settings.scheduler;
    this.agents = new Membership(settings.maxSlotsPerAgent);
    this.detection = new EngineDetection(settings, network);
    this.lifecycle = new AgentLifecycle({
      agents: this.agents,
      detection: this.detection,
      network,
      scheduler: settings.scheduler,
      hosts,
      targets,
      reconnectGraceMs: settings.reconnectGraceMs,
      protocol: () => this.protocol,
      layout: () => this.layout,
      setLayout: layout => this.setLayout(layout),
      emit: event => this.emit(event),
      serial: work => this.serial(work),
      dispatch: () => this.dispatch(),
      heal: fault => this.heal(fault),
      reassign: (record, reason) => this.attempts.reassign(record, reason),
      revoke: (attempt, reason) => this.attempts.revoke(attempt, reason),
      revokeRoutedThrough: (agentId, reason) => this.attempts.revokeRoutedThrough(agentId, reason),
    });
    this.delegation = new Delegations({
      agents: this.agents,
      scheduler: settings.scheduler,
      subtask: (taskId, subtaskId) => this.subtasks.get(stateKey(taskId, subtaskId)),
      waiting: attempt => {
        if (!ackedOf(attempt)) this.attempts.acknowledge(attempt);
        this.detection.progressed(attempt.key);
        this.hedging.heard(attempt);
      },
      addChild: (parent, child) => this.addChild(parent, child),
      answer: (agentId, body) => this.network.send({ from: COORDINATOR, to: agentId, kind: 'delegated', body }),
      edge: edge => this.detection.wait(edge),
      serial: work => this.serial(work),
    });
    this.hedging = new Hedging({
      agents: this.agents,
      scheduler: settings.scheduler,
      hooks,
      maxSubtaskAttempts: settings.maxSubtaskAttempts,
      layout: () => this.layout,
      finished: () => this.finished,
      attemptOf: key => this.attempts.attemptOf(key),
      assign: (state, record, of) => this.assign(state, record, of),
      emit: event => this.emit(event),
      serial: work => this.serial(work),
      dispatch: () => this.dispatch(),
      revoke: (attempt, reason, failure) => this.attempts.revoke(attempt, reason, failure),
      fail: (state, reason) => this.attempts.fail(state, reason),
      heal: fault => this.heal(fault),
      afterChange: run => this.afterChange(run),
    });
    const parts: EngineParts = { settings, scheduler: settings.scheduler, network, hooks, agents: this.agents, detection: this.detection, delegation: this.delegation, hedging: this.hedging, executions: this.executions };
    this.attempts = new Attempts({
      ...parts,
      lifecycle: this.lifecycle,
      subtasks: this.subtasks,
      layout: () => this.layout,
      serial: work => this.serial(work),
      dispatch: () => this.dispatch(),
      afterChange: run => this.afterChange(run),
      emit: event => this.emit(event),
    });
    this.results = new Results({ ...parts, attempts: this.attempts, emit: event => this.emit(event), heal: fault => this.heal(fault) });
    this.tasks = new Tasks({
      ...parts,
      attempts: this.attempts,
      runs: this.runs,
      subtasks: this.subtasks,
      waitingFor: this.waitingFor,
      switches: this.switches,
      performance: this.performance,
      started: () => this.started,
      protocol: () => this.protocol,
      healing: () => this.healer?.history,
      serial: work => this.serial(work),
      dispatch: () => this.dispatch(),
      lastEnded: () => {
        if (this.finished) return;
        this.finished = true;
        this.stop();
      },
    });
    this.protocol = 'star';
  }

  /** It has stopped (its last task ended, or `stop`): a new one runs what comes next. */
  get stopped(): boolean {
    return this.finished;
  }

  /** Tasks running now. */
  get running(): number {
    return this.runs.size;
  }

  /** An event of the engine's: to the inspection stream and to every running task's followers. */
  private emit(event: CoordinationEvent): void {
    this.hooks.emit(event);
    for (const run of this.runs.values()) run.emit(event);
  }

  private record(event: LedgerEvent): void {
    this.hooks.record(event);
  }

  /**
   * Takes a task the ledger has started (`task.started` recorded): see `Tasks.add`. `emit` gets the
   * task's events.
   */
  addTask(entry: TaskEntry, emit: (event: CoordinationEvent) => void): TaskRun {
    return this.tasks.add(entry, emit);
  }

  /** Ends the task now: its remote work cancelled, its unfinished subtasks failed with `reason`. False if it is not running here. */
  cancel(taskId: string, reason: string): boolean {
    return this.tasks.cancel(taskId, reason);
  }

  private started = false;

  private now(): number {
    return this.scheduler.now();
  }

  /**
   * Runs every input (a message, a verdict, a timer) to completion before the next. The deadline
   * operators report overdue deadlines synchronously when fed, so without this a verdict could
   * re-enter the run while a subtask is half-updated (and leak its slot).
   */
  private serial(work: () => void): void {
    if (this.busy) {
      this.later.push(work);
      return;
    }
    this.busy = true;
    try {
      work();
      do {
        for (let next = this.later.shift(); next !== undefined && !this.finished; next = this.later.shift()) next();
        // The waits as this input left them (what they lead to, a deadlock's verdict, comes as input).
        if (!this.finished) this.delegation.settle();
      } while (this.later.length > 0 && !this.finished);
    } finally {
      this.later.length = 0;
      this.busy = false;
    }
  }

  /** Starts the engine with the tasks added so far (the first one's traits choose an adaptive start). */
  start(): void {
    const { settings } = this;
    const first = (this.runs.values().next().value as TaskRun | undefined)?.task;
    this.started = true;

    for (const slot of settings.slots) {
      this.agents.add(slot.agent.id, slot.agent.capabilities, this.hosts.get(slot.agent.id), 1, slot.standby ? 'standby' : 'live');
    }
    const live = this.agents.liveProfiles();
    this.protocol = initialProtocol(settings.topology, live.length, first);
    this.setLayout(topologyFor(this.protocol).layout(live));
    this.emit({ type: 'protocol.selected', at: this.now(), protocol: this.protocol, reason: settings.topology === 'adaptive' ? 'decision matrix' : 'configured' });

    this.wireDetection();
    const adaptive = wireAdaptive({
      settings,
      executions: this.executions,
      inForce: this.inForce,
      performance: this.performance,
      protocol: this.protocol,
      agentCount: this.agents.live,
      first,
      switchTo: (to, change) => this.serial(() => this.switchTo(to, change)),
    });
    this.subscriptions.push(...adaptive.subscriptions);
    this.probe = adaptive.probe;
    this.subscriptions.push(
      this.network.join(COORDINATOR).subscribe({
        next: envelope => this.serial(() => this.receive(envelope)),
        // The network would not let the coordinator in (its id is taken): nothing can be done.
        error: (err: unknown) => this.serial(() => {
          const reason = `the coordinator could not join the network: ${err instanceof Error ? err.message : String(err)}`;
          for (const run of [...this.runs.values()]) this.tasks.finish(run, reason);
        }),
      }),
    );
    for (const record of this.agents.values()) {
      if (record.status === 'standby') continue;
      this.lifecycle.join(record);
    }
    // Agents in other processes: those connected now, and whoever connects while the run lasts.
    const members = this.network.members$;
    if (members !== undefined) this.subscriptions.push(members.subscribe(member => this.serial(() => this.lifecycle.admit(member))));
    const departures = this.network.departures$;
    if (departures !== undefined) this.subscriptions.push(departures.subscribe(agentId => this.serial(() => this.lifecycle.onConnectionClosed(agentId))));
    this.serial(() => {
      for (const run of [...this.runs.values()]) if (run.done === run.states.length) this.tasks.finish(run);
      this.dispatch();
    });
  }

  /** Stops everything it started (timers, subscriptions, hosts); the ledger keeps where its tasks stand. */
  stop(): void {
    this.finished = true;
    for (const s of this.subscriptions) s.unsubscribe();
    this.subscriptions.length = 0;
    for (const record of this.agents.list) record.closed?.unsubscribe();
    for (const state of this.subtasks.values()) {
      for (const attempt of state.attempts) stopTimers(attempt);
    }
    this.orphanTimer?.unsubscribe();
    this.delegation.stop();
    for (const run of this.runs.values()) {
      run.deadline?.unsubscribe();
      this.tasks.cancelRemoteWork(run);
    }
    for (const record of this.agents.list) {
      this.targets.delete(record.id);
      if (record.host !== undefined) {
        record.host.crash(); // a run owns its hosts: nothing keeps beating after it
      } else if (!sameTargets(record.told, COORDINATOR_ONLY)) {
        // An agent in another process outlives the run: from now on it beats the coordinator alone.
        record.told = COORDINATOR_ONLY;
        this.network.send({ from: COORDINATOR, to: record.id, kind: 'peers', body: { targets: COORDINATOR_ONLY } });
      }
    }
  }

  /**
   * Lays out anew. Agents in other processes cannot read the layout: those whose heartbeat targets
   * changed (a mesh beats every peer) are told with a `peers` message.
   */
  private setLayout(layout: Layout): void {
    this.layout = layout;
    for (const record of this.agents.list) {
      if (record.host !== undefined || record.status !== 'live') continue;
      const targets = layout.heartbeatTargets(record.id);
      // Compared, not joined into a string per agent: on a mesh that was O(agents²) per change.
      if (sameTargets(targets, record.told)) continue;
      record.told = targets;
      this.network.send({ from: COORDINATOR, to: record.id, kind: 'peers', body: { targets } });
    }
  }

  // ---- verdicts: detection's, routed to the agents' lifecycle or to the attempts they concern --

  private wireDetection(): void {
    const { settings, scheduler } = this;
    this.subscriptions.push(
      ...this.detection.wire({
        fault: fault => this.serial(() => this.onFault(fault)),
        silent: silence => this.serial(() => this.hedging.onSilent(silence)),
        cleared: attemptKey => this.serial(() => this.hedging.onCleared(attemptKey)),
        ackTimeout: attemptKey => this.serial(() => this.attempts.onAckTimeout(attemptKey)),
        verdict: decision => this.serial(() => this.lifecycle.onVerdict(decision)),
      }),
    );
    this.healer = new SelfHealingManager(healingActions(this.healingHost()), { maxAttempts: settings.maxAttempts, scheduler });
    this.subscriptions.push(this.healer.events$.subscribe(event => this.emit(event)));
  }

  private onFault(fault: FaultEvent): void {
    if (fault.kind === 'agent_timeout') return this.lifecycle.onAgentTimeout(fault);
    if (fault.type === 'resolved') return;
    this.emit({ type: 'fault.detected', at: fault.at, kind: fault.kind, severity: fault.severity, ...(fault.agentId === undefined ? {} : { agentId: fault.agentId }), detail: fault.detail });
    this.heal(fault);
  }

  // ---- healing --------------------------------------------------------------------------------

  /**
   * Runs the fault's healing chain. Whatever it achieved, no subtask stays assigned to an agent that
   * is not live; when the chain of a high or critical fault is exhausted the run falls back to
   * another protocol (bounded). A medium fault (a timeout, a slow agent) concerns one agent:
   * changing the whole team's protocol for it is out of proportion — under saturation every agent
   * looks slow, and falling back then ended runs on a ring of long routes.
   */
  private heal(fault: DetectedFault): void {
    this.healer.heal(fault).subscribe(result => {
      const record = fault.agentId === undefined ? undefined : this.agents.get(fault.agentId);
      if (record !== undefined && record.status !== 'live' && record.inFlight.size > 0) this.attempts.reassign(record, fault.detail);
      if (result.status === 'exhausted' && (fault.severity === 'high' || fault.severity === 'critical')) {
        const next = this.healer.fallback(this.protocol);
        if (next !== undefined) this.switchTo(next as TopologyName, { from: this.protocol, to: next, at: this.now(), reason: `healing of ${fault.kind} exhausted`, scores: {} });
      }
      this.dispatch();
    });
  }

  /** What the healing strategies may do to this run (see engineHealing.ts). */
  private healingHost(): HealingHost {
    return {
      agents: this.agents,
      hosts: this.hosts,
      factoryOf: agentId => {
        const slot = this.settings.slots.find(s => s.agent.id === agentId);
        const factory = slot?.factory;
        return slot === undefined || factory === undefined ? undefined : () => factory.call(slot);
      },
      protocol: () => this.protocol,
      layout: () => this.layout,
      setLayout: layout => this.setLayout(layout),
      performance: protocol => this.performance.get(protocol),
      fallback: () => this.healer.fallback(this.protocol),
      reassign: (record, reason) => this.attempts.reassign(record, reason),
      revoke: (attempt, reason) => this.attempts.revoke(attempt, reason),
      takeOut: record => this.lifecycle.takeOut(record),
      join: record => this.lifecycle.join(record),
      switchTo: (to, change) => this.switchTo(to, change),
      emit: event => this.emit(event),
      now: () => this.now(),
    };
  }

  // ---- protocol switching ---------------------------------------------------------------------

  /** A switch asked for from outside (`Coordinator.switchProtocol`); false when finished or already on `to`. */
  requestSwitch(to: TopologyName, reason: string): boolean {
    if (this.finished || to === this.protocol) return false;
    this.switchTo(to, { from: this.protocol, to, at: this.now(), reason, scores: {} });
    return true;
  }

  /** Hands over to another topology: in-flight work keeps its attempts and reply paths; new work takes the new routes. */
  private switchTo(to: TopologyName, change: ProtocolSwitch): void {
    if (to === this.protocol) return;
    this.protocol = to;
    this.inForce.next(to);
    this.setLayout(topologyFor(to).layout(this.agents.liveProfiles()));
    this.switches.push(change);
    let inFlight = 0;
    for (const a of this.agents.values()) inFlight += a.inFlight.size;
    this.emit({ type: 'protocol.switched', at: this.now(), switch: change, inFlight });
    this.dispatch();
  }

  // ---- work -----------------------------------------------------------------------------------

  private receive(envelope: Envelope): void {
    switch (envelope.kind) {
      case 'heartbeat': {
        const body = envelope.body as HeartbeatBody;
        if (body.status === 'leaving') return this.lifecycle.onLeaving(envelope.from);
        this.lifecycle.onBeat(envelope.from, body.incarnation);
        if (body.usage !== undefined && this.agents.has(envelope.from)) this.detection.usageOf(envelope.from, body.usage.fraction);
        return;
      }
      case 'result': {
        const body = envelope.body as ResultBody;
        // Looked up once for the three steps (a key built and hashed, a table of every subtask read).
        const state = this.subtasks.get(stateKey(body.taskId ?? '', body.subtaskId));
        this.results.confirm(body, envelope.from, state);
        if (this.results.isAcceptedAgain(body, state)) return; // its agent sent it again before it heard it was received
        const run = this.results.onResult(body, envelope.from, state);
        if (run !== undefined) this.afterChange(run);
        return;
      }
      case 'progress': {
        const body = envelope.body as ProgressBody;
        const attempt = this.subtasks.get(stateKey(body.taskId ?? '', body.subtaskId))?.attempts.find(a => a.token === body.attempt);
        // Progress comes straight from the agent that runs the attempt: anyone else's is noise.
        if (attempt === undefined || envelope.from !== attempt.agentId) return;
        // The acknowledgement proper measures a round trip, and so does a `done` that says how long
        // the assignment was held before it; a progress beat that comes first (the acknowledgement
        // was lost) measures the work as well.
        if (!ackedOf(attempt)) {
          if (body.progress === 0 && body.done !== true) this.detection.answered(attempt.key, body.copy);
          this.attempts.acknowledge(attempt, body.done === true ? body.heldMs : undefined);
        }
        this.detection.progressed(attempt.key);
        this.hedging.heard(attempt);
        if (body.done === true && attempt.reply.length > 0) this.attempts.onResultInTransit(attempt);
        return;
      }
      case 'delegate':
        if (this.delegation.ask(envelope.body as DelegateBody, envelope.from)) this.dispatch();
        return;
      case 'vote': {
        const body = envelope.body as VoteBody;
        this.detection.vote(body.proposalId, envelope.from, body.accept);
        return;
      }
      default:
        return; // control messages for agents (repairs) that reached the coordinator: nothing to do
    }
  }

  /** After a subtask of `run` changed: the task ends once every subtask has, else work moves on. */
  private afterChange(run: TaskRun): void {
    if (run.done === run.states.length) this.tasks.finish(run);
    else this.dispatch();
  }

  /** A child the attempt asked for (`context.delegate`): recorded, then queued like any subtask of its task. */
  private addChild(parent: Attempt, child: Subtask): SubtaskState {
    const run = parent.state.task;
    this.record({ type: 'subtask.delegated', taskId: run.task.id, parentId: parent.state.subtask.id, subtask: child });
    const entry = run.entry.subtasks[child.id] as SubtaskEntry;
    const state = subtaskState(run, child, run.states.length, entry);
    run.states.push(state);
    this.subtasks.set(state.key, state);
    enqueue(state);
    emitTask(this.hooks, run, { type: 'subtask.delegated', at: this.now(), subtaskId: child.id, parentId: parent.state.subtask.id, agentId: parent.agentId, attempt: parent.token });
    // A remote agent earns its slots by what it delivers: a slot that now waits for a child earns
    // one more, or all its slots could wait on children that only it may run.
    const record = this.agents.get(parent.agentId);
    if (record !== undefined && record.host === undefined) {
      record.granted = Math.min(record.slots, this.settings.maxSlotsPerAgent, record.granted + 1);
      this.agents.touch(record);
    }
    return state;
  }

  /**
   * Gives queued subtasks to live agents with a free slot, along the layout's routes: each queued
   * subtask, in queue order, goes to the layout's pick among the live, capable agents with a free
   * slot, or waits; the pass stops once every live agent is busy, and the waiting subtasks go back
   * to the front in their order. The live agents and, per capability set, the capable and free ones
   * are found once per pass and kept up to date through its own assignments (anything else that
   * changes agents, e.g. a fault verdict reached from an assignment's events, makes it look again):
   * O(agents) per pass rather than per subtask. The queue is an array read from `head`, so taking
   * from and putting back at the front cost O(1), also when an assignment's events lead to a nested
   * dispatch.
   */
  private dispatch(): void {
    if (this.finished || this.runs.size === 0 || this.hooks.halted() !== undefined) return;
    let orphaned = false;
    /** Subtasks that start to wait for no capable agent in this pass, by why. */
    let newlyWaiting: Map<string, SubtaskState[]> | undefined;
    const orphan = (state: SubtaskState, candidates: Candidates): void => {
      orphaned = true;
      const why = waitKey(state.subtask, candidates);
      if (this.waitingFor.get(state.key) === why) return;
      this.waitingFor.set(state.key, why);
      newlyWaiting ??= new Map();
      const states = newlyWaiting.get(why);
      if (states === undefined) newlyWaiting.set(why, [state]);
      else states.push(state);
    };
    const runs = [...this.runs.values()];
    const waiting = runs.map((): SubtaskState[] => []);
    const groups = new Map<string, Candidates>();
    let seen = -1; // the version `groups` describes
    this.dispatchDepth++;
    if (this.dispatchDepth === 1 && this.hedging.size > 0) this.hedging.start(false);
    // One subtask from each task in turn (each task's queue in its own priority order), starting
    // one task further at every pass: a task with many subtasks does not hold back the others.
    let open = runs.length;
    const exhausted = runs.map(() => false);
    let at = this.turn++ % runs.length;
    while (open > 0) {
      at = (at + 1) % runs.length;
      if (exhausted[at] === true) continue;
      const run = runs[at] as TaskRun;
      const queue = run.queue;
      let state: SubtaskState | undefined;
      while (run.head < queue.length) {
        const next = queue[run.head++] as SubtaskState;
        if (next.entry.status === 'queued') {
          state = next;
          break;
        }
      }
      if (state === undefined) {
        exhausted[at] = true;
        open--;
        continue;
      }
      if (seen !== this.agents.version) {
        groups.clear();
        seen = this.agents.version;
      }
      const candidates = this.agents.candidates(state.subtask, groups);
      if (candidates.capable === 0) {
        orphan(state, candidates);
        (waiting[at] as SubtaskState[]).push(state);
        continue;
      }
      const chosen = this.layout.pick(state.subtask, candidates.ids);
      if (chosen === undefined) {
        (waiting[at] as SubtaskState[]).push(state);
        if (candidates.free.length === 0 && candidates.capable === candidates.live) break; // everyone is busy
        continue;
      }
      const record = this.agents.get(chosen) as AgentRecord;
      this.assign(state, record);
      if (this.agents.version === seen + 1) {
        // Only this assignment happened: the agent may have no free slot left.
        seen++;
        if (record.inFlight.size >= this.agents.slotsOf(record)) for (const group of groups.values()) group.remove(record);
      }
      if (this.finished) break;
    }
    // A pass that stopped because everyone is busy did not look at the rest of the queues. Whether
    // some of it no live agent can run changes only with the live agents: look once per change,
    // so that it is said (and its orphan timer armed) at once, not when the queue drains to it.
    const scan = this.agents.liveChanges !== this.scannedLive;
    if (scan) {
      this.scannedLive = this.agents.liveChanges;
      if (seen !== this.agents.version) groups.clear();
    }
    runs.forEach((run, r) => {
      const queue = run.queue;
      if (scan) {
        for (let i = run.head; i < queue.length; i++) {
          const state = queue[i] as SubtaskState;
          if (state.entry.status !== 'queued') continue;
          const candidates = this.agents.candidates(state.subtask, groups);
          if (candidates.capable === 0) orphan(state, candidates);
        }
      }
      // Back to the front: the positions just before `head` are spent, there is room for them.
      const back = waiting[r] as SubtaskState[];
      run.head -= back.length;
      for (let k = 0; k < back.length; k++) queue[run.head + k] = back[k] as SubtaskState;
      if (this.dispatchDepth === 1) {
        if (run.head === queue.length) {
          queue.length = 0;
          run.head = 0;
        } else if (run.head > 1024 && run.head > queue.length >> 1) {
          queue.splice(0, run.head);
          run.head = 0;
        }
      }
    });
    if (this.dispatchDepth === 1 && this.hedging.size > 0 && !this.finished) this.hedging.start(true);
    this.dispatchDepth--;
    if (orphaned && this.orphanTimer === undefined) {
      this.orphansFailAt = this.now() + this.settings.orphanTimeoutMs;
      this.orphanTimer = this.scheduler.schedule(() => {
        this.orphanTimer = undefined;
        this.serial(() => this.failOrphans());
      }, this.settings.orphanTimeoutMs);
    }
    if (newlyWaiting !== undefined) for (const [why, states] of newlyWaiting) announceWaiting(this.hooks, this.agents, why, states, this.now(), this.orphansFailAt);
  }

  private failOrphans(): void {
    for (const run of [...this.runs.values()]) {
      for (let i = run.head; i < run.queue.length; i++) {
        const state = run.queue[i] as SubtaskState;
        if (state.entry.status === 'queued' && this.agents.capableLive(state.subtask).length === 0) {
          this.attempts.fail(state, `no capable live agent for ${this.settings.orphanTimeoutMs} ms`);
        }
      }
      if (run.done === run.states.length) this.tasks.finish(run);
    }
    this.dispatch();
  }

  /** Starts an attempt of the subtask on the agent: its first, or (`of`: the silent one) a backup beside it. */
  private assign(state: SubtaskState, record: AgentRecord, of?: Attempt): void {
    const run = state.task;
    const probe = of === undefined && !record.probeDirect ? this.probe?.next(this.protocol, record.id, this.agents) : undefined;
    const protocol = probe?.protocol ?? this.protocol;
    const route = record.probeDirect ? [] : (probe?.route ?? this.layout.route(record.id));
    const reply = record.probeDirect ? route : (probe?.reply ?? replyRoute(this.layout, record.id));
    // The path out (the route's relays after the first, then the agent) and back (the reply's
    // relays, then the coordinator), written straight into their arrays: no intermediate copies.
    const hops = route.length + 1;
    const via: string[] = [];
    const replyPath: string[] = [];
    for (let i = 1; i < route.length; i++) via.push(route[i] as string);
    if (route.length > 0) via.push(record.id);
    for (let i = 0; i < reply.length; i++) replyPath.push(reply[i] as string);
    replyPath.push(COORDINATOR);
    const first = route[0] ?? record.id;
    const token = this.hooks.nextAttempt();
    const taskId = run.task.id;
    const subtaskId = state.subtask.id;
    this.record(of === undefined ? { type: 'subtask.assigned', taskId, subtaskId, agentId: record.id, attempt: token } : { type: 'subtask.hedged', taskId, subtaskId, agentId: record.id, attempt: token });
    const now = this.now();
    const attempt: Attempt = { state, agentId: record.id, token, key: `${state.key}#${token}`, protocol, assignedAt: now, ackedAt: undefined, hops, route, reply, silent: false, stillSilent: undefined, timer: undefined, transit: undefined };
    state.attempts.push(attempt);
    this.waitingFor.delete(state.key);
    record.inFlight.add(attempt);
    this.agents.touch(record);
    run.assignments++;
    const body: AssignBody = { taskId, subtask: state.subtask, attempt: token, replyPath, via, rto: this.detection.rtoFor(record.id, hops) };
    this.network.send({ from: COORDINATOR, to: first, kind: 'assign', body });
    this.detection.awaitAck(attempt.key, record.id, hops);
    this.detection.attemptStarted(attempt.key, run.task.id);
    attempt.timer = this.scheduler.schedule(() => this.serial(() => this.attempts.onAttemptTimeout(attempt)), timeoutOf(state, this.settings.attemptTimeoutMs));
    emitTask(this.hooks, run, { type: 'subtask.assigned', at: now, subtaskId: state.subtask.id, agentId: record.id, attempt: token, hops });
    if (of !== undefined) emitTask(this.hooks, run, { type: 'subtask.hedged', at: now, subtaskId: state.subtask.id, agentId: record.id, attempt: token, of: { agentId: of.agentId, attempt: of.token } });
  }
}
