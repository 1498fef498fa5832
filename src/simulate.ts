import { Observable, type SchedulerLike, type Subscriber, type Subscription } from 'rxjs';
import { phiThresholdOffset, type ProtocolSwitch } from '../operators/index.js';
import type { AgentHost } from '../streams/agentHost.js';
import type { CoordinatorCrashFault, Fault } from '../streams/faults.js';
import { MemoryJournal, type Journal } from '../streams/journal.js';
import { validateFaults } from '../streams/faults.js';
import { InMemoryNetwork } from '../streams/network.js';
import { createRandom, type Random } from '../streams/random.js';
import type { InProcessAgent, Subtask } from '../streams/task.js';
import { VirtualScheduler } from '../streams/virtualScheduler.js';
import { createCoordinator, type AgentSlot, type Coordinator, type DetectorOptions } from './coordinator.js';
import type { CoordinationEvent, CoordinationResult } from './events.js';
import { FAULT_TABLE } from './faultDetector.js';
import { CircularWaits, waitable } from './circularWaits.js';
import { ProcessFence } from './processFence.js';
import type { HealingAttempt } from './selfHealing.js';
import { COORDINATOR, type TopologyName } from './topology.js';

export interface AgentSpec {
  readonly id: string;
  readonly capabilities?: readonly string[];
  readonly concurrency?: number;
  /** Held back as a replacement for healing. */
  readonly standby?: boolean;
}

export interface Scenario {
  readonly seed: number;
  readonly topology: TopologyName | 'adaptive';
  /** A count (named `agent-0 …`) or the agents themselves. */
  readonly agents: number | readonly AgentSpec[];
  /** A count (named `s-0 …`) or the subtasks themselves. A payload `{ fail: true }` makes its handler fail. */
  readonly subtasks: number | readonly Subtask[];
  /** Work time per subtask: uniform in `mean ± jitter` ms. Default 200 ± 50. */
  readonly workMs?: { readonly mean: number; readonly jitter: number };
  /**
   * Whether agents report progress during long work (every third of the progress timeout). Off:
   * work is silent until its result, as an LLM call or a command is (the progress deadline is then
   * learned from how long finished work took). Default true.
   */
  readonly progressReports?: boolean;
  /** Default 1000 ± 100 ms. */
  readonly heartbeat?: { readonly intervalMs: number; readonly jitterMs: number };
  readonly detector?: DetectorOptions;
  readonly faults?: readonly Fault[];
  /** Virtual time at which the run is cut off; what is unfinished is reported failed. Default 1 h. */
  readonly untilMs?: number;
  /** One-way network latency: uniform in `meanMs ± jitterMs`. Default 2 ± 1 ms. */
  readonly latency?: { readonly meanMs: number; readonly jitterMs: number };
  readonly complexity?: 'low' | 'medium' | 'high';
  readonly coordinationIntensity?: 'low' | 'medium' | 'high';
  /** Passed to the coordinator (progress timeout, adaptive cadence…). */
  readonly progressTimeoutMs?: number;
  /** How long a circular wait lasts before it is a protocol_deadlock (the coordinator's `deadlockMs`). Default 120 s. */
  readonly deadlockMs?: number;
  readonly adaptive?: { readonly evaluateEveryMs?: number; readonly windowMs?: number; readonly minDwellMs?: number; readonly switchThreshold?: number; readonly explore?: number };
}

/** How far a running simulation has got, for a progress display. */
export interface SimulationProgress {
  /** Virtual time reached, ms. */
  readonly atMs: number;
  /** Where the run is cut off at the latest (`untilMs`). */
  readonly untilMs: number;
  readonly subtasks: number;
  /** Subtasks that have ended so far: completed or failed. */
  readonly ended: number;
}

export interface SimulateOptions {
  /**
   * Called as virtual time advances, every 10 virtual ms (and not at all without it: the run then
   * steps a virtual second at a time). It observes: the report is the same with or without it.
   */
  readonly onProgress?: (progress: SimulationProgress) => void;
  /**
   * The journal the coordinator records its ledger into, for a test to read afterwards (replay it
   * with `applyLedgerEvent`). Default: a fresh `MemoryJournal` when the scenario crashes the
   * coordinator (what its restart resumes from), none otherwise. It should start empty.
   */
  readonly journal?: Journal;
}

export interface Detection {
  readonly agentId: string;
  /**
   * What happened to it: a crash or hang (told by suspicion), usage at the exhaustion threshold
   * (told by resource_exhaustion), or a circular wait it is the first of (told by protocol_deadlock).
   */
  readonly kind: 'crash' | 'hang' | 'exhaust' | 'deadlock';
  readonly faultAtMs: number;
  /**
   * First suspicion (heartbeat or progress) at or after a crash or hang; first resource_exhaustion
   * detected at or after an exhaust; first protocol_deadlock among the circle's agents at or after a
   * deadlock (none where agents outside the circle could take the children: no deadlock formed); undefined if never, or not before the coordinator crashed (its
   * restart brings the agent back fresh: nothing is left to detect). A fault due while the
   * coordinator is down harms nothing and has no entry.
   */
  readonly suspectedAtMs: number | undefined;
}

export interface SimulationReport {
  readonly subtasks: number;
  readonly completed: number;
  readonly failed: number;
  /** Subtasks that neither completed nor were reported failed. */
  readonly lost: number;
  /** Subtasks whose result was accepted more than once. */
  readonly duplicatesAccepted: number;
  /** Assignments sent: first runs and reruns (by every coordinator, across coordinator crashes). */
  readonly executions: number;
  /** One per crashed or hung agent, one per agent exhausted at or above the threshold (0.9), one per circular wait. */
  readonly detections: readonly Detection[];
  /** Upper bound on detection time after a crash, from the detector and heartbeat settings. */
  readonly detectionBoundMs: number;
  /** Liveness suspicions of agents that had no fault at that time (hang verdicts are not counted). */
  readonly falseSuspicions: number;
  readonly switches: readonly ProtocolSwitch[];
  readonly healing: readonly HealingAttempt[];
  readonly messages: number;
  readonly messagesByKind: Readonly<Record<string, number>>;
  readonly finishedAtMs: number;
  readonly protocol: string;
  readonly result: CoordinationResult;
  readonly events: readonly CoordinationEvent[];
}

/**
 * Runs a whole coordination in virtual time, synchronously: simulated agents (work as timers),
 * the in-memory network with latency, the scenario's faults at their instants, and the engine as
 * it runs in production. The same scenario and seed give the same report and event log.
 *
 * A `coordinatorCrash` kills the coordinator's process behind a {@link ProcessFence} (its timers,
 * sends and journal appends cut at once, then what it held let go): the in-process agents, which
 * live in it, die with it. At `restartAtMs` (`untilMs` at the latest) a new coordinator on the same
 * `MemoryJournal`, network and clock resumes the task with fresh agents, and the run goes on being
 * observed through it (`attach$`). The report and its result's metrics count the whole run.
 *
 * @example
 * const report = simulate({ seed: 1, topology: 'star', agents: 8, subtasks: 100,
 *   faults: [{ kind: 'crash', agent: 'agent-3', atMs: 2000 }] });
 * report.lost; // 0
 */
export function simulate(scenario: Scenario, options: SimulateOptions = {}): SimulationReport {
  const { onProgress, journal: given } = options;
  const {
    seed,
    topology,
    workMs = { mean: 200, jitter: 50 },
    heartbeat = { intervalMs: 1000, jitterMs: 100 },
    faults = [],
    untilMs = 3_600_000,
    latency = { meanMs: 2, jitterMs: 1 },
  } = scenario;
  const specs = agentSpecs(scenario.agents);
  const subtasks = subtaskList(scenario.subtasks);
  const ids = specs.map(s => s.id);
  validateFaults(faults, ids);
  if (!(workMs.mean > 0) || !(workMs.jitter >= 0) || workMs.jitter > workMs.mean) throw new RangeError(`workMs must have mean > 0 and 0 <= jitter <= mean, got ${JSON.stringify(workMs)}`);
  if (!(untilMs > 0) || !Number.isFinite(untilMs)) throw new RangeError(`untilMs must be a finite number > 0, got ${untilMs}`);

  const scheduler = new VirtualScheduler();
  const random = createRandom(seed);
  const network = new InMemoryNetwork({ scheduler, random: random.fork('network'), latency: latency });
  const speed = new Map<string, number>(ids.map(id => [id, 1]));
  // Only a scenario with a circular wait pays for watching its runs.
  const waits = faults.some(f => f.kind === 'deadlock') ? new CircularWaits(specs) : undefined;
  const taskId = `simulation-${seed}`;
  const crashes = faults.filter((f): f is CoordinatorCrashFault => f.kind === 'coordinatorCrash');
  // A journal only when the coordinator may crash (or one is given): without one the run is what it always was.
  const journal = given ?? (crashes.length > 0 ? new MemoryJournal() : undefined);

  /** The coordinator's process now (undefined while it is down): the coordinator, its agents, its fence. */
  let running: CoordinatorProcess | undefined;
  let incarnation = 0;
  const events: CoordinationEvent[] = [];
  let result: CoordinationResult | undefined;
  let ended = 0;

  /** Starts a coordinator process, with its in-process agents fresh (they live in it). */
  const boot = (): CoordinatorProcess => {
    const n = incarnation++;
    // The first process draws as simulations always have; each restart draws anew.
    const fork = (name: string): Random => random.fork(n === 0 ? name : `${name}@${n}`);
    const slots: AgentSlot[] = specs.map(spec => {
      const factory = (): InProcessAgent => simulatedAgent(spec, scheduler, workMs, speed, waits, fork(`work:${spec.id}`), scenario.progressReports === false ? Infinity : (scenario.progressTimeoutMs ?? 30_000) / 3);
      return { agent: factory(), factory, ...(spec.standby ? { standby: true } : {}) };
    });
    const fence = journal === undefined ? undefined : new ProcessFence(scheduler, network, journal);
    const coordinator = createCoordinator({
      agents: slots,
      topology,
      scheduler: fence?.scheduler ?? scheduler,
      network: fence?.network ?? network,
      seed,
      heartbeat,
      ...(scenario.detector ? { detector: scenario.detector } : {}),
      ...(scenario.progressTimeoutMs ? { progressTimeoutMs: scenario.progressTimeoutMs } : {}),
      ...(scenario.deadlockMs ? { deadlockMs: scenario.deadlockMs } : {}),
      ...(scenario.adaptive ? { adaptive: scenario.adaptive } : {}),
      ...(fence ? { journal: fence.journal } : {}),
      deadlineMs: untilMs,
    });
    const self: CoordinatorProcess = { coordinator, slots, fence, subscription: undefined };
    const observe = (event: CoordinationEvent): void => {
      if (running !== self) return; // a dead process tells nothing
      events.push(event);
      if (event.type === 'subtask.completed' || event.type === 'subtask.failed') ended++;
      else if (event.type === 'task.completed') result = event.result;
    };
    running = self;
    self.subscription =
      n === 0
        ? coordinator
            .run$({ id: taskId, subtasks, ...(scenario.complexity ? { complexity: scenario.complexity } : {}), ...(scenario.coordinationIntensity ? { coordinationIntensity: scenario.coordinationIntensity } : {}) })
            .subscribe(observe)
        : // The journal holds the task: the new coordinator resumes it on its own; follow it by id.
          coordinator.attach$(taskId).subscribe(observe);
    return self;
  };

  /**
   * The process dies: the fence cuts its clock, network and journal first, so nothing it does from
   * here reaches anyone; then what it held is let go (its engine stopped, its in-process agents
   * crashed with it), as the operating system would.
   */
  const crash = (): void => {
    const dead = running;
    if (dead === undefined || result !== undefined) return;
    running = undefined;
    dead.fence?.kill();
    void dead.coordinator.close();
  };
  const restart = (): void => {
    if (running !== undefined || result !== undefined) return;
    boot();
  };

  // The faults first: at the same instant they act before what the run schedules.
  for (const fault of faults) {
    if (fault.kind === 'coordinatorCrash') {
      at(scheduler, fault.atMs, crash);
      // Back by the end of the run at the latest, so that the run ends with a result.
      at(scheduler, Math.min(fault.restartAtMs, untilMs), restart);
    } else {
      scheduleFault(fault, scheduler, network, () => running, speed, waits, ids);
    }
  }
  boot();

  // Step through virtual time, a slice at a time so the loop sees the end (the coordinator's deadline guarantees one).
  // Finer steps when someone watches: a mesh of thousands spends seconds of wall time in one virtual second.
  const stepMs = onProgress === undefined ? 1000 : 10;
  while (result === undefined && scheduler.pending > 0) {
    scheduler.advanceTo(Math.min(untilMs, scheduler.now() + stepMs));
    onProgress?.({ atMs: scheduler.now(), untilMs, subtasks: subtasks.length, ended });
  }
  running?.subscription?.unsubscribe();
  if (result === undefined) throw new Error('simulate: the run ended without a result (nothing left to run)');
  // Across a crash the last run's metrics cover only what it resumed: the whole run's, from the
  // events every process told and the network that carried both.
  const whole = crashes.length === 0 ? result : wholeRun(result, events, network);
  return report(whole, events, subtasks.length, faults, ids, detectionBound(coordinatorDetector(scenario.detector, heartbeat), heartbeat, latency));
}

/** A coordinator process of a simulation: the coordinator, the agents living in it, and its fence (with a journal). */
interface CoordinatorProcess {
  readonly coordinator: Coordinator;
  readonly slots: readonly AgentSlot[];
  readonly fence: ProcessFence | undefined;
  subscription: Subscription | undefined;
}

/** Runs `work` at virtual time `ms` (at once if that is past). */
function at(scheduler: VirtualScheduler, ms: number, work: () => void): void {
  scheduler.schedule(work, Math.max(0, ms - scheduler.now()));
}

/**
 * The last coordinator's result with metrics of the whole run, both sides of every coordinator
 * crash: from the start (virtual 0), every assignment and stale result any process told, every
 * message the network carried. Outcomes (results, failed, completed) are the ledger's already.
 */
function wholeRun(result: CoordinationResult, events: readonly CoordinationEvent[], network: InMemoryNetwork): CoordinationResult {
  const stats = network.stats;
  const messagesByKind: Record<string, number> = {};
  for (const [kind, k] of Object.entries(stats.byKind)) messagesByKind[kind] = k.sent;
  let assignments = 0;
  let stale = 0;
  for (const e of events) {
    if (e.type === 'subtask.assigned') assignments++;
    else if (e.type === 'subtask.rejected') stale++;
  }
  const { metrics } = result;
  return {
    ...result,
    metrics: {
      ...metrics,
      staleResultsRejected: stale,
      assignments,
      messages: stats.sent,
      messagesByKind,
      messagesPerSubtask: metrics.subtasks === 0 ? 0 : stats.sent / metrics.subtasks,
      startedAt: 0,
      durationMs: metrics.finishedAt,
    },
  };
}

function agentSpecs(agents: number | readonly AgentSpec[]): AgentSpec[] {
  if (typeof agents === 'number') {
    if (!Number.isInteger(agents) || agents < 1) throw new RangeError(`agents must be an integer >= 1 or a list, got ${agents}`);
    return Array.from({ length: agents }, (_, i) => ({ id: `agent-${i}` }));
  }
  if (!Array.isArray(agents) || agents.length === 0) throw new RangeError('agents must be a non-empty list');
  return [...agents];
}

function subtaskList(subtasks: number | readonly Subtask[]): Subtask[] {
  if (typeof subtasks === 'number') {
    if (!Number.isInteger(subtasks) || subtasks < 0) throw new RangeError(`subtasks must be an integer >= 0 or a list, got ${subtasks}`);
    return Array.from({ length: subtasks }, (_, i) => ({ id: `s-${i}` }));
  }
  return [...subtasks];
}

/**
 * Work as a timer: `mean ± jitter`, stretched by the agent's slow factor, with a progress beat every
 * `progressEveryMs` (∞: none). With a deadlock fault in the scenario (`waits`), a run it catches
 * asks for a child first (`waitable`) and does its work once the child has ended.
 */
function simulatedAgent(spec: AgentSpec, scheduler: SchedulerLike, workMs: { mean: number; jitter: number }, speed: Map<string, number>, waits: CircularWaits | undefined, random: Random, progressEveryMs: number): InProcessAgent {
  return {
    id: spec.id,
    capabilities: spec.capabilities ?? [],
    ...(spec.concurrency === undefined ? {} : { concurrency: spec.concurrency }),
    handle: (subtask, context) => {
      const work = new Observable<unknown>(subscriber => {
        if ((subtask.payload as { fail?: boolean } | undefined)?.fail === true) {
          subscriber.error(new Error(`subtask ${subtask.id} asked to fail`));
          return undefined;
        }
        const duration = Math.max(1, Math.round((workMs.mean + (random.next() * 2 - 1) * workMs.jitter) * (speed.get(spec.id) ?? 1)));
        const every = Math.max(1, Math.floor(progressEveryMs));
        const beat = duration > every ? scheduler.schedule(function () { context.heartbeat(); this.schedule(undefined, every); }, every) : undefined;
        // Its end is one timer with its state, no closure: thousands of agents at work hold one each.
        const done = scheduler.schedule(endWork, duration, new WorkInProgress(subscriber, { by: spec.id, subtask: subtask.id, attempt: context.attempt }, beat));
        if (beat === undefined) return done;
        return () => {
          beat.unsubscribe();
          done.unsubscribe();
        };
      });
      return waits === undefined ? work : waitable(waits, spec.id, context, work);
    },
  };
}

/** A simulated run at work: what it tells its subscriber when its timer comes due. */
class WorkInProgress {
  constructor(
    readonly subscriber: Subscriber<unknown>,
    readonly result: { readonly by: string; readonly subtask: string; readonly attempt: number },
    readonly beat: Subscription | undefined,
  ) {}
}

/** The end of a simulated run's work: its progress beats stop, its result is told. */
function endWork(work?: WorkInProgress): void {
  const { subscriber, result, beat } = work as WorkInProgress;
  beat?.unsubscribe();
  subscriber.next(result);
  subscriber.complete();
}

/**
 * Schedules an agent or network fault. Agents live in the coordinator's process: a fault of an
 * agent acts on the agent of the process alive at that instant, and on nothing while the
 * coordinator is down (there is no agent process to harm); `slow` is the machine's, so it holds
 * across processes.
 */
function scheduleFault(
  fault: Exclude<Fault, CoordinatorCrashFault>,
  scheduler: VirtualScheduler,
  network: InMemoryNetwork,
  current: () => CoordinatorProcess | undefined,
  speed: Map<string, number>,
  waits: CircularWaits | undefined,
  ids: readonly string[],
): void {
  const at = (ms: number, work: () => void): void => void scheduler.schedule(work, Math.max(0, ms - scheduler.now()));
  const host = (agent: string): AgentHost | undefined => current()?.coordinator.hosts.get(agent);
  switch (fault.kind) {
    case 'crash':
      return at(fault.atMs, () => host(fault.agent)?.crash());
    case 'hang':
      return at(fault.atMs, () => host(fault.agent)?.hang());
    case 'slow':
      return at(fault.atMs, () => speed.set(fault.agent, fault.factor));
    case 'deadlock':
      // Only while a coordinator runs: with it down there is no agent process to catch.
      return at(fault.atMs, () => {
        if (current() !== undefined) waits?.close(fault.agents);
      });
    case 'exhaust':
      // What the agent's heartbeats carry from now on, as a process measuring itself would report it.
      return at(fault.atMs, () => host(fault.agent)?.setUsage({ fraction: fault.usage }));
    case 'restart':
      return at(fault.atMs, () => {
        speed.set(fault.agent, 1);
        const slot = current()?.slots.find(s => s.agent.id === fault.agent);
        const agentHost = host(fault.agent);
        agentHost?.setUsage(undefined); // a fresh process has used nothing yet
        if (slot?.factory && agentHost && agentHost.state !== 'left') agentHost.restart(slot.factory());
      });
    case 'drop': {
      const from = fault.fromMs ?? 0;
      const affected = fault.agents;
      const apply = (rate: number | undefined): void => {
        if (affected === undefined) network.setLossRate(rate ?? 0);
        else for (const a of affected) for (const other of [COORDINATOR, ...ids]) if (other !== a) network.setLink(a, other, rate === undefined ? {} : { lossRate: rate });
      };
      at(from, () => apply(fault.rate));
      if (fault.toMs !== undefined) at(fault.toMs, () => apply(undefined));
      return;
    }
    case 'partition': {
      // The first group holds every node named in none (the coordinator among them).
      const named = new Set(fault.groups.flat());
      const first = [...(fault.groups[0] ?? []), COORDINATOR, ...ids.filter(id => !named.has(id))];
      at(fault.atMs, () => network.partition([first, ...fault.groups.slice(1)]));
      if (fault.healAtMs !== undefined) at(fault.healAtMs, () => network.heal());
      return;
    }
  }
}

function coordinatorDetector(detector: DetectorOptions | undefined, heartbeat: { intervalMs: number; jitterMs: number }): DetectorOptions {
  return (
    detector ?? {
      kind: 'phi',
      firstHeartbeatEstimateMs: heartbeat.intervalMs,
      acceptableHeartbeatPauseMs: 2 * heartbeat.intervalMs,
      minStdDeviationMs: Math.max(1, heartbeat.jitterMs),
    }
  );
}

/**
 * Latest instant after a crash at which the detector must have suspected the agent: its last beat
 * came at most at the crash, and from there phi reaches the threshold within mean + pause + y·std,
 * with the mean and deviation of intervals bounded by the heartbeat settings and the bootstrap.
 */
export function detectionBound(detector: DetectorOptions, heartbeat: { intervalMs: number; jitterMs: number }, latency: { meanMs: number; jitterMs: number }): number {
  const network = latency.meanMs + latency.jitterMs;
  if (detector.kind === 'deadline') return Math.ceil(detector.timeoutMs + network) + 1;
  const estimate = detector.firstHeartbeatEstimateMs ?? 1000;
  const mean = Math.max(heartbeat.intervalMs + heartbeat.jitterMs, estimate + Math.floor(estimate / 4));
  const std = Math.max(heartbeat.jitterMs, detector.minStdDeviationMs ?? 100, Math.floor(estimate / 4), Math.abs(heartbeat.intervalMs - estimate));
  const y = phiThresholdOffset(detector.threshold ?? 8);
  return Math.ceil(mean + (detector.acceptableHeartbeatPauseMs ?? 3000) + y * std + network) + 1;
}

/** When each agent was under some fault: [from, to) spans, `to` widened by `graceMs`. */
function faultSpans(faults: readonly Fault[], ids: readonly string[], graceMs: number): Map<string, Array<[number, number]>> {
  const spans = new Map<string, Array<[number, number]>>(ids.map(id => [id, []]));
  const add = (id: string, from: number, to: number): void => void spans.get(id)?.push([from, to + graceMs]);
  // A crash or hang lasts until the next restart of that agent (same instant: later in the list),
  // or until the coordinator's process, the agent's too, comes back from a crash.
  const restartAfter = (id: string, index: number): number => {
    const at = (faults[index] as { atMs: number }).atMs;
    const next = faults.find((f, i) => f.kind === 'restart' && f.agent === id && (f.atMs > at || (f.atMs === at && i > index)));
    return Math.min(next === undefined ? Infinity : (next as { atMs: number }).atMs, coordinatorBackAfter(faults, at));
  };
  faults.forEach((f, index) => {
    switch (f.kind) {
      case 'crash':
      case 'hang':
        add(f.agent, f.atMs, restartAfter(f.agent, index));
        break;
      case 'slow':
        add(f.agent, f.atMs, Infinity);
        break;
      case 'restart':
        add(f.agent, f.atMs, f.atMs);
        break;
      case 'exhaust':
      case 'deadlock':
        break; // its heartbeats go on as before: a suspicion of it would be false
      case 'drop':
        for (const id of f.agents ?? ids) add(id, f.fromMs ?? 0, f.toMs ?? Infinity);
        break;
      case 'partition':
        for (const group of f.groups.slice(1)) for (const id of group) add(id, f.atMs, f.healAtMs ?? Infinity);
        break;
      case 'coordinatorCrash':
        // Every agent dies with the process and comes back fresh with the next one.
        for (const id of ids) add(id, f.atMs, f.restartAtMs);
        break;
    }
  });
  return spans;
}

/** When the coordinator next comes back from a crash that starts at or after `t` (Infinity: never). */
function coordinatorBackAfter(faults: readonly Fault[], t: number): number {
  let back = Infinity;
  for (const f of faults) if (f.kind === 'coordinatorCrash' && f.atMs >= t && f.restartAtMs < back) back = f.restartAtMs;
  return back;
}

/** When the coordinator next crashes at or after `t` (Infinity: never). */
function coordinatorCrashAfter(faults: readonly Fault[], t: number): number {
  let next = Infinity;
  for (const f of faults) if (f.kind === 'coordinatorCrash' && f.atMs >= t && f.atMs < next) next = f.atMs;
  return next;
}

/** The coordinator's process (and so every agent's) is down at `t`. */
function coordinatorDownAt(faults: readonly Fault[], t: number): boolean {
  return faults.some(f => f.kind === 'coordinatorCrash' && f.atMs <= t && t < f.restartAtMs);
}

function report(
  result: CoordinationResult,
  events: readonly CoordinationEvent[],
  total: number,
  faults: readonly Fault[],
  ids: readonly string[],
  detectionBoundMs: number,
): SimulationReport {
  const completions = new Map<string, number>();
  const failures = new Set<string>();
  let executions = 0;
  // Liveness suspicions (heartbeats) and hang verdicts (progress) both detect a fault; only the
  // former can be false about an agent that beats normally, so only they count as false.
  const suspicions: Array<{ agentId: string; at: number }> = [];
  const verdicts: Array<{ agentId: string; at: number }> = [];
  const exhaustions: Array<{ agentId: string; at: number }> = [];
  const deadlocks: Array<{ members: string[]; at: number }> = [];
  /** Children the subtasks delegated: subtasks of the run too. */
  const children = new Set<string>();
  for (const e of events) {
    if (e.type === 'subtask.completed') completions.set(e.subtaskId, (completions.get(e.subtaskId) ?? 0) + 1);
    else if (e.type === 'subtask.failed') failures.add(e.subtaskId);
    else if (e.type === 'subtask.assigned') executions++;
    else if (e.type === 'agent.suspected') {
      suspicions.push({ agentId: e.agentId, at: e.at });
      verdicts.push({ agentId: e.agentId, at: e.at });
    } else if (e.type === 'subtask.silent') {
      verdicts.push({ agentId: e.agentId, at: e.at });
    } else if (e.type === 'subtask.delegated') {
      children.add(e.subtaskId);
    } else if (e.type === 'fault.detected' && e.kind === 'protocol_deadlock') {
      // `circular wait a → b → a since …`: its members.
      deadlocks.push({ members: (/^circular wait (.*) since /.exec(e.detail)?.[1] ?? '').split(' → '), at: e.at });
    } else if (e.type === 'fault.detected' && e.agentId !== undefined) {
      if (e.kind === 'agent_timeout') verdicts.push({ agentId: e.agentId, at: e.at });
      else if (e.kind === 'resource_exhaustion') exhaustions.push({ agentId: e.agentId, at: e.at });
    }
  }
  let duplicatesAccepted = 0;
  for (const n of completions.values()) if (n > 1) duplicatesAccepted++;
  // Subtasks that ended, completed or failed (a subtask can be both: counted once).
  let ended = 0;
  for (const id of completions.keys()) if (id) ended++;
  for (const id of failures) if (id && !completions.has(id)) ended++;

  const detections: Detection[] = [];
  const seen = new Set<string>();
  for (const f of faults) {
    if (f.kind === 'exhaust') {
      // Usage at the threshold or above, once per agent: its first resource_exhaustion from then on.
      if (f.usage < FAULT_TABLE.resource_exhaustion.threshold || seen.has(`exhaust:${f.agent}`) || coordinatorDownAt(faults, f.atMs)) continue;
      seen.add(`exhaust:${f.agent}`);
      const until = coordinatorCrashAfter(faults, f.atMs);
      const first = exhaustions.find(s => s.agentId === f.agent && s.at >= f.atMs && s.at < until);
      detections.push({ agentId: f.agent, kind: 'exhaust', faultAtMs: f.atMs, suspectedAtMs: first?.at });
      continue;
    }
    if (f.kind === 'deadlock') {
      if (coordinatorDownAt(faults, f.atMs)) continue;
      const until = coordinatorCrashAfter(faults, f.atMs);
      const first = deadlocks.find(d => d.at >= f.atMs && d.at < until && f.agents.some(id => d.members.includes(id)));
      detections.push({ agentId: f.agents[0] as string, kind: 'deadlock', faultAtMs: f.atMs, suspectedAtMs: first?.at });
      continue;
    }
    if ((f.kind !== 'crash' && f.kind !== 'hang') || seen.has(f.agent)) continue;
    // While the coordinator is down there is no agent process to harm.
    if (coordinatorDownAt(faults, f.atMs)) continue;
    seen.add(f.agent);
    // A coordinator crash before the verdict brings the agent back fresh: nothing is left to detect.
    const until = coordinatorCrashAfter(faults, f.atMs);
    const first = verdicts.find(s => s.agentId === f.agent && s.at >= f.atMs && s.at < until);
    detections.push({ agentId: f.agent, kind: f.kind, faultAtMs: f.atMs, suspectedAtMs: first?.at });
  }
  const spans = faultSpans(faults, ids, detectionBoundMs);
  let falseSuspicions = 0;
  for (const s of suspicions) {
    const agentSpans = spans.get(s.agentId) ?? [];
    if (!agentSpans.some(([from, to]) => s.at >= from && s.at < to)) falseSuspicions++;
  }
  return {
    subtasks: total + children.size,
    completed: completions.size,
    failed: failures.size,
    lost: total + children.size - ended,
    duplicatesAccepted,
    executions,
    detections,
    detectionBoundMs,
    falseSuspicions,
    switches: result.switches,
    healing: result.healing,
    messages: result.metrics.messages,
    messagesByKind: result.metrics.messagesByKind,
    finishedAtMs: result.metrics.finishedAt,
    protocol: result.protocol,
    result,
    events,
  };
}
