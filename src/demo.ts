import { Observable, timer, map, type SchedulerAction, type SchedulerLike, type Subscription } from 'rxjs';
import { defaultScore, matrixPrior, type PerformanceSnapshot, type ProtocolSwitch } from '../operators/index.js';
import { PacedScheduler } from '../streams/pacedScheduler.js';
import { createRandom, type Random } from '../streams/random.js';
import type { AgentContext, InProcessAgent, Subtask } from '../streams/task.js';
import { CircularWaits, waitable } from './circularWaits.js';
import { createCoordinator, type AgentSlot } from './coordinator.js';
import type { CoordinationEvent, CoordinationResult } from './events.js';
import { TOPOLOGY_NAMES } from './topology.js';

export interface DemoOptions {
  readonly agents: number;
  readonly subtasks: number;
  readonly seed: number;
  /**
   * Clock and timers of the whole run: a `PacedScheduler` (started by the caller) to watch it, a
   * `VirtualScheduler` moved by the caller to run it as fast as it goes. The run is the same on
   * either, event for event, for a seed. Default: a `PacedScheduler` at speed 1, started and
   * stopped by the demo. (`asyncScheduler` works too, but its timers fire when the machine gets to
   * them: that run is not reproducible.)
   */
  readonly scheduler?: SchedulerLike;
  /** Called with every event as it happens (the live view). */
  readonly onEvent?: (event: CoordinationEvent) => void;
  /**
   * Whether the links between agents get congested once a tenth of the work is done (see
   * `CONGESTION_MS`): the condition under which the protocol in force at the start costs more
   * than another. Default true; false shows what the adaptive protocol does without it.
   */
  readonly congestion?: boolean;
}

/** A fault the demo injects: what it does to the agent, and when (scheduler time) it did. */
export interface DemoFault {
  readonly kind: 'crash' | 'hang' | 'slow' | 'partition' | 'exhaust' | 'deadlock' | 'relay';
  readonly agent: string;
  readonly atMs: number;
}

/** What became of the long call (see `longCallOf`): who started it, who finished it, how long after, how often it was hedged. */
export interface LongCall {
  readonly subtaskId: string;
  readonly startedOn?: string;
  readonly doneBy?: string;
  readonly tookMs?: number;
  readonly hedged: number;
}

export interface DemoOutcome {
  readonly result: CoordinationResult;
  /** What was injected, in order. */
  readonly faults: readonly DemoFault[];
  readonly longCall: LongCall;
  /** When the links between agents became congested (scheduler time), and how slow they became. */
  readonly congestion?: { readonly atMs: number; readonly latencyMs: number };
}

/** Work per subtask, as a model's or a tool's call: uniform in [600, 1400) ms. */
const WORK_MIN_MS = 600;
const WORK_SPREAD_MS = 800;
const WORK_MEAN_MS = WORK_MIN_MS + WORK_SPREAD_MS / 2;
/** A handler reports progress (and its token usage) this often while it works. */
const PROGRESS_MS = 250;
/**
 * Subtasks an agent runs at once: 2, or 4 for every other agent (a bigger machine, a higher
 * quota). Agent-0, the coordinator-capable one, has 2.
 */
export function slotsOf(index: number): number {
  return index % 2 === 1 ? 4 : 2;
}
/**
 * The long call: one subtask whose work is four times the others' and that reports nothing while
 * it runs (a remote call that gives no sign of life). Silent past the progress deadline, it is
 * hedged: a backup attempt starts on another agent, and the first result wins.
 */
const LONG_CALL_MS = 4 * WORK_MEAN_MS;
/**
 * The least progress deadline: an attempt silent this long gets a backup attempt, and its agent is
 * taken for hung if it loses or stays silent twice as long. Under the long call, so that it is
 * hedged; over half of it, so that an attempt of it left alone (its backup's agent restarted by
 * healing) still ends before it is taken for hung, its result's way back included.
 */
const PROGRESS_TIMEOUT_MS = 0.6 * LONG_CALL_MS;
/**
 * Tokens: each agent's calls use one token per ms of work, against a rate limit over a sliding
 * window. With every slot busy an agent uses half its limit; the exhaustion fault cuts the limit
 * so that every slot busy uses 150 % of it, three slots in four 112 % (usage ≥ 0.9:
 * resource_exhaustion: seen also while work reaches it slowly, over congested relays), and half of
 * them 75 % (relieved once healing has halved its load).
 */
const TOKEN_WINDOW_MS = 4000;
const tokenLimit = (slots: number): number => 2 * slots * TOKEN_WINDOW_MS;
const exhaustedLimit = (slots: number): number => Math.round((slots * TOKEN_WINDOW_MS) / 1.5);
/**
 * A slowed agent's work takes this many times longer (it still reports progress: slow, not hung).
 * The detector compares it with its own baseline and with its peers, and wants it that slow for
 * five results running: three times slower leaves it time to give them before the work runs out.
 */
const SLOW_FACTOR = 3;
/**
 * When each fault lands: once this share of the subtasks has completed, so that they land while
 * work is under way, whatever the size. The slowdown comes once an agent has a baseline of its
 * response times to be measured against (see `BASELINE_RESULTS`).
 */
const FAULT_AT = { relay: 0.01, crash: 0.15, slow: 0.2, exhaust: 0.25, deadlock: 0.35, hang: 0.5, partition: 0.6 } as const;
/**
 * The relay fault: agent-0, the root that every route of the starting hierarchy goes through, stops
 * passing messages on to the other agents for this long (its own work and beats go on): what it
 * should forward is lost, the coordinator sees its link to it fail (communication_failure: five
 * assignments in a row never acknowledged) and routes around it. It lands almost at once, while
 * the hierarchy is in force and before the congestion, so that the failures are the relay's.
 */
const RELAY_MS = 3000;
/**
 * The circular wait: two agents with two slots each and a skill only each of them has (a reviewer
 * and a researcher), whose work, once the fault lands, each waits for a child that only the other
 * can run (`context.delegate`). Every slot of both waits: neither can move until the coordinator
 * sees the circle (it has lasted `DEADLOCK_MS`), aborts one waiter and runs it again.
 */
const DEADLOCK_SKILLS = ['review', 'research'] as const;
const DEADLOCK_MS = 2000;
/** The two agents of the circular wait: two slots each, spared by the other faults. */
export function deadlockPairOf(agents: number): readonly [string, string] {
  return agents >= 7 ? ['agent-2', 'agent-6'] : ['agent-2', 'agent-3'];
}
/**
 * A slowdown is measured against the agent's own first ten results, and then wants five slow
 * results in a row: it hits an agent with four slots (which gives more results than one with two)
 * once it has given the ten.
 */
const BASELINE_RESULTS = 10;
/** How long the partition lasts: long enough for the detector to see it (heartbeats every 250 ms). */
const PARTITION_MS = 3000;
/**
 * Congestion between the agents: once this share of the subtasks has completed, every message
 * from one agent to another takes `CONGESTION_MS` (the coordinator's own links to each agent stay
 * fast), until the end. A relay is an agent: routes through relays pay it on every hop, direct
 * routes not at all.
 */
const CONGESTION_AT = 0.1;
const CONGESTION_MS = 300;

/**
 * The adaptive protocol's settings: every 2 s, scores over the last 10 s (the conditions now, not
 * the run's so far), about one first assignment in seven routed under a protocol never in force
 * (`explore`: so that those are scored on what they measure here, not on a prior), and a switch
 * only to a protocol measured 75 % better. The margin is wide on purpose: a probed protocol is
 * measured on a handful of runs against hundreds, and the score counts the messages a route costs
 * but not a mesh's heartbeats from every agent to every other. Without the congestion, the probed
 * mesh stays under that margin at every evaluation (seeds 0–9: it routes fewer messages, that is
 * all); with it, every relay costs 300 ms each way (a hierarchy's routes have up to two), and the
 * mesh measured 106–148 % better at the switch for those seeds.
 */
export const DEMO_ADAPTIVE = Object.freeze({ evaluateEveryMs: 2000, windowMs: 10_000, minDwellMs: 4000, switchThreshold: 0.75, explore: 0.15 });

/** What the demo's task says of itself: the decision matrix's input with the agent count. */
export const DEMO_TASK_TRAITS = Object.freeze({ complexity: 'medium', coordinationIntensity: 'medium' } as const);

const show = (x: number): number => Number(x.toPrecision(3));

/**
 * Why the adaptive protocol stayed, when it did: the score it measured against what the others
 * measured on the assignments that probed them (over the last window of each), or the decision
 * matrix's prior for those never run. Undefined after a switch.
 *
 * @example whyNoSwitch(result, 12) // 'adaptive: no switch; hierarchical measured 0.27 over 160 runs; probes measured mesh 0.37 (9 runs), …'
 */
export function whyNoSwitch(result: CoordinationResult, agents: number): string | undefined {
  const here = result.metrics.performance[result.protocol];
  if (result.switches.length > 0 || here === undefined) return undefined;
  const others = TOPOLOGY_NAMES.filter(t => t !== result.protocol);
  const measured = others.filter(t => result.metrics.performance[t] !== undefined);
  const unmeasured = others.filter(t => result.metrics.performance[t] === undefined);
  const prior = matrixPrior({ agentCount: agents, ...DEMO_TASK_TRAITS });
  const probes = measured.map(t => {
    const p = result.metrics.performance[t] as PerformanceSnapshot;
    return `${t} ${show(defaultScore(p))} (${p.count} run${p.count === 1 ? '' : 's'})`;
  });
  return (
    `adaptive: no switch; ${result.protocol} measured ${show(defaultScore(here))} over ${here.count} runs` +
    (probes.length > 0 ? `; probes measured ${probes.join(', ')}` : '') +
    (unmeasured.length > 0 ? `; ${unmeasured.join(', ')} never ran, so ${unmeasured.length === 1 ? 'it counts' : 'they count'} at the decision matrix's prior (${unmeasured.map(t => `${t} ${prior(t)}`).join(', ')})` : '') +
    `; a switch needs a candidate ${Math.round(100 * DEMO_ADAPTIVE.switchThreshold)} % better`
  );
}

/**
 * What became of the switches the adaptive protocol decided on measurements (healing's fallbacks
 * are not its decisions): how many, how many it took back, and for the last one kept, what the
 * protocol it chose measured after it against the score of the one it left. Undefined when it
 * decided none.
 *
 * @example switchVerdict(result) // 'adaptive: 1 switch on measurements, none switched back; hierarchical → mesh kept: …'
 */
export function switchVerdict(result: CoordinationResult): string | undefined {
  const decided = result.switches.filter(s => Object.keys(s.scores).length > 0);
  if (decided.length === 0) return undefined;
  const back = decided.filter(s => s.revert === true).length;
  // A protocol not yet measured is scored from the decision matrix's prior: said so, not called a measurement.
  const onPrior = decided.filter(s => s.reason.includes('(prior)')).length;
  const basis = onPrior === 0 ? 'on measurements' : onPrior === decided.length ? 'on the prior' : `on measurements (${onPrior} on the prior)`;
  const head = `adaptive: ${decided.length} switch${decided.length === 1 ? '' : 'es'} ${basis}, ${back === 0 ? 'none' : back} switched back`;
  const last = decided[decided.length - 1] as ProtocolSwitch;
  const after = result.metrics.performance[last.to];
  if (last.revert === true || result.protocol !== last.to || after === undefined) return head;
  const since = after.at - DEMO_ADAPTIVE.windowMs >= last.at ? `its last ${after.count} runs (${DEMO_ADAPTIVE.windowMs / 1000} s)` : `${after.count} runs up to the end`;
  return (
    `${head}; ${last.from} → ${last.to} kept: ${last.to} measured ${show(defaultScore(after))} over ${since}, ` +
    `against ${show(last.scores[last.from] as number)} for ${last.from} when it was left`
  );
}

/**
 * How long the demo's work takes without faults, ms: the subtasks in waves as wide as all the
 * agents' slots (see `slotsOf`), each wave the mean work time. The command line announces it and
 * paces big runs by it.
 *
 * @example expectedDemoMs(12, 300) // 9000: 9 waves of 36 subtasks, 1 s each
 */
export function expectedDemoMs(agents: number, subtasks: number): number {
  let slots = 0;
  for (let i = 0; i < agents; i++) slots += slotsOf(i);
  return Math.ceil(subtasks / slots) * WORK_MEAN_MS;
}

/** The subtask that is the long call: a third of the way into the task. */
export function longCallOf(subtasks: number): string {
  return `s-${Math.floor(subtasks / 3)}`;
}

/**
 * Tokens an agent used over the last `TOKEN_WINDOW_MS`, against its limit: the usage its handlers
 * report. Running sums over a queue of spends, O(1) amortised per spend.
 */
class TokenBudget {
  constructor(public limit: number) {}

  private used = 0;
  private readonly spends: number[] = []; // pairs: time, tokens
  private head = 0;

  spend(now: number, tokens: number): number {
    this.spends.push(now, tokens);
    this.used += tokens;
    while (this.head < this.spends.length && (this.spends[this.head] as number) <= now - TOKEN_WINDOW_MS) {
      this.used -= this.spends[this.head + 1] as number;
      this.head += 2;
    }
    if (this.head > 1024 && this.head * 2 > this.spends.length) {
      this.spends.splice(0, this.head);
      this.head = 0;
    }
    return this.used / this.limit;
  }
}

/**
 * Work of `ms` that reports progress and the tokens it spends every `PROGRESS_MS`: what a
 * well-behaved handler does on long work, so that a slow agent is told from a hung one, and an
 * agent near its rate limit is seen before its calls fail.
 */
function work(ms: number, context: AgentContext, budget: TokenBudget, value: unknown): Observable<unknown> {
  const { scheduler } = context;
  return new Observable<unknown>(subscriber => {
    const startedAt = scheduler.now();
    let spentUntil = startedAt;
    // Said at once: between a run's start and its first report the agent would seem to use nothing.
    context.usage(Math.round(100 * budget.spend(startedAt, 0)) / 100, 'tokens');
    return scheduler.schedule(function (this: SchedulerAction<undefined>) {
      const now = scheduler.now();
      const done = now - startedAt;
      context.usage(Math.round(100 * budget.spend(now, now - spentUntil)) / 100, 'tokens');
      spentUntil = now;
      if (done >= ms) {
        subscriber.next(value);
        subscriber.complete();
        return;
      }
      context.heartbeat(done / ms);
      // Whole ms: a fraction left over (the clock's floats) would not move it, and it would report for ever at one instant.
      this.schedule(undefined, Math.max(1, Math.ceil(Math.min(PROGRESS_MS, ms - done))));
    }, Math.min(PROGRESS_MS, ms));
  });
}

/**
 * The main job on the embedded default: in-process agents doing timed work on the in-memory
 * network, the adaptive protocol, and seven faults, each seen through the signal it gives in
 * reality — the hierarchy's root that stops forwarding (assignments through it never acknowledged:
 * communication_failure on its link, see `RELAY_MS`), a crash (heartbeats stop), a hang (heartbeats go on, progress stops), a slowdown
 * (its results come three times later than its own baseline and its peers'), a partition that heals
 * (heartbeats stop, then come back), a rate limit cut (the tokens its handlers report climb
 * past 90 % of it) and a circular wait (two agents whose every slot waits for a child only the
 * other can run: the wait-for edges of delegation, see `deadlockPairOf`). Each lands once a share of the subtasks has completed, so that it lands while
 * work is under way whatever the size. A slowdown and a rate limit are seen only over a history
 * of results and usage: with fewer than about 25 subtasks per agent there may be too little of it
 * (the defaults give every seed tried all five). One subtask is a long call that reports nothing
 * while it runs (see `longCallOf`). Once a tenth of the work is done, the links between agents get
 * congested (see `CONGESTION_MS`; `congestion: false` leaves them be): relayed routes cost more,
 * and the adaptive protocol, which probes the protocols it does not run (`DEMO_ADAPTIVE.explore`),
 * measures it and switches (see `switchVerdict`).
 *
 * Every random choice comes from `seed` and every moment from `scheduler`: on a virtual scheduler
 * (paced to the wall clock or not) the same seed gives the same run, event for event. There is no
 * time limit: the run ends when every subtask has ended. Returns the result, the faults injected and when the congestion began.
 */
export async function runDemo(options: DemoOptions): Promise<DemoOutcome> {
  const { agents: count, subtasks: total, seed, onEvent, congestion: congests = true } = options;
  if (!Number.isInteger(count) || count < 4) throw new RangeError(`agents must be an integer >= 4, got ${count}`);
  if (!Number.isInteger(total) || total < 1) throw new RangeError(`subtasks must be an integer >= 1, got ${total}`);
  const own = options.scheduler === undefined ? new PacedScheduler() : undefined;
  const scheduler = options.scheduler ?? (own as PacedScheduler);
  const random = createRandom(seed);
  const slowed = new Set<string>();
  const budgets = new Map<string, TokenBudget>();
  const indexOf = (id: string): number => Number(id.slice('agent-'.length));
  const budgetOf = (id: string): TokenBudget => {
    let budget = budgets.get(id);
    if (budget === undefined) budgets.set(id, (budget = new TokenBudget(tokenLimit(slotsOf(indexOf(id))))));
    return budget;
  };
  const longCall = longCallOf(total);
  const pair = deadlockPairOf(count);
  const capabilitiesOf = (id: string): string[] => (id === 'agent-0' ? ['task_delegation', 'resource_allocation'] : pair.includes(id) ? [DEADLOCK_SKILLS[pair.indexOf(id)] as string] : []);
  const waits = new CircularWaits(Array.from({ length: count }, (_, i) => ({ id: `agent-${i}`, capabilities: capabilitiesOf(`agent-${i}`), concurrency: slotsOf(i) })));
  const worker = (id: string, rng: Random): InProcessAgent => ({
    id,
    capabilities: capabilitiesOf(id),
    concurrency: slotsOf(indexOf(id)),
    handle: (subtask: Subtask, context: AgentContext) => {
      const value = { subtask: subtask.id, by: id };
      // A call that waits on someone else: no progress to report, and not slowed by the agent.
      if (subtask.id === longCall) return timer(LONG_CALL_MS, context.scheduler).pipe(map(() => value));
      const ms = Math.round((WORK_MIN_MS + rng.next() * WORK_SPREAD_MS) * (slowed.has(id) ? SLOW_FACTOR : 1));
      return waitable(waits, id, context, work(ms, context, budgetOf(id), value));
    },
  });
  const slots: AgentSlot[] = Array.from({ length: count }, (_, i) => {
    const id = `agent-${i}`;
    // One stream of work times per agent, across its restarts: the run does not depend on how
    // often healing re-created it.
    const rng = random.fork(`work:${id}`);
    return { agent: worker(id, rng), factory: () => worker(id, rng) };
  });
  const coordinator = createCoordinator({
    agents: slots,
    topology: 'adaptive',
    scheduler,
    seed,
    heartbeat: { intervalMs: 250, jitterMs: 25 },
    progressTimeoutMs: PROGRESS_TIMEOUT_MS,
    ackTimeoutMs: 600,
    deadlockMs: DEADLOCK_MS,
    adaptive: DEMO_ADAPTIVE,
  });

  // Who holds which subtask and how many each agent has finished: a fault hits an agent with work
  // in hand (a hang is seen only through work that makes no progress), a slowdown one with a
  // baseline to be measured against.
  const holders = new Map<string, string>();
  const holding = new Map<string, number>();
  const finished = new Map<string, number>();
  let completed = 0;
  const release = (subtaskId: string): void => {
    const agent = holders.get(subtaskId);
    if (agent === undefined) return;
    holders.delete(subtaskId);
    holding.set(agent, (holding.get(agent) ?? 1) - 1);
  };
  const kinds = Object.keys(FAULT_AT) as Array<keyof typeof FAULT_AT>;
  const injected: DemoFault[] = [];
  const hit = new Set<string>(pair); // the circular wait's pair is kept for it
  const pending = new Map<keyof typeof FAULT_AT, Subscription>();
  const due = new Set(kinds);
  /**
   * The agent a fault hits: one with work in hand that no other fault has hit (agent-0, the
   * coordinator-capable one, is spared); for a slowdown, one with four slots and its baseline of
   * results, waited for until half the subtasks are done (a small run may give none that many).
   */
  const target = (kind: keyof typeof FAULT_AT): string | undefined => {
    const order = Array.from({ length: count - 1 }, (_, i) => `agent-${1 + ((i + kinds.indexOf(kind)) % (count - 1))}`);
    const free = (id: string): boolean => !hit.has(id) && (holding.get(id) ?? 0) > 0;
    if (kind !== 'slow') return order.find(free);
    const measured = order.find(id => free(id) && slotsOf(indexOf(id)) > 2 && (finished.get(id) ?? 0) >= BASELINE_RESULTS);
    return measured ?? (completed >= total / 2 ? order.find(free) : undefined);
  };
  const network = coordinator.network as {
    partition?(groups: string[][]): void;
    heal?(): void;
    setLink?(from: string, to: string, settings: { latencyMs?: number; down?: boolean; oneWay?: boolean }): void;
  };
  let congestion: { atMs: number; latencyMs: number } | undefined;
  /** Every link between two agents gets slow (both ways); `latencyMs` undefined: back to normal. */
  const congest = (latencyMs: number | undefined): void => {
    for (let i = 0; i < count; i++) for (let j = i + 1; j < count; j++) network.setLink?.(`agent-${i}`, `agent-${j}`, latencyMs === undefined ? {} : { latencyMs });
  };
  const inject = (kind: keyof typeof FAULT_AT): void => {
    pending.delete(kind);
    if (kind === 'deadlock') {
      injected.push({ kind, agent: pair.join('+'), atMs: scheduler.now() });
      waits.close(pair);
      return;
    }
    if (kind === 'relay') {
      injected.push({ kind, agent: 'agent-0', atMs: scheduler.now() });
      const cut = (settings: { down?: boolean }): void => {
        for (let i = 1; i < count; i++) network.setLink?.('agent-0', `agent-${i}`, { ...settings, oneWay: true });
      };
      cut({ down: true });
      pending.set('relay', scheduler.schedule(() => cut({}), RELAY_MS));
      return;
    }
    const agent = target(kind);
    if (agent === undefined) {
      due.add(kind); // nobody has work in hand right now: the next completion tries again
      return;
    }
    hit.add(agent);
    injected.push({ kind, agent, atMs: scheduler.now() });
    const host = coordinator.hosts.get(agent);
    if (kind === 'crash') host?.crash();
    else if (kind === 'hang') host?.hang();
    else if (kind === 'slow') slowed.add(agent);
    else if (kind === 'exhaust') budgetOf(agent).limit = exhaustedLimit(slotsOf(indexOf(agent)));
    else {
      network.partition?.([[agent]]);
      pending.set('partition', scheduler.schedule(() => network.heal?.(), PARTITION_MS));
    }
  };
  const long: { startedOn?: string; startedAt?: number; doneBy?: string; tookMs?: number; hedged: number } = { hedged: 0 };
  const track = (event: CoordinationEvent): void => {
    if ('subtaskId' in event && event.subtaskId === longCall) {
      if (event.type === 'subtask.assigned' && long.startedAt === undefined) {
        long.startedOn = event.agentId;
        long.startedAt = event.at;
      } else if (event.type === 'subtask.completed') {
        long.doneBy = event.agentId;
        long.tookMs = event.at - (long.startedAt ?? event.at);
      } else if (event.type === 'subtask.hedged') long.hedged++;
    }
    if (event.type === 'subtask.assigned') {
      release(event.subtaskId);
      holders.set(event.subtaskId, event.agentId);
      holding.set(event.agentId, (holding.get(event.agentId) ?? 0) + 1);
      return;
    }
    if (event.type !== 'subtask.completed' && event.type !== 'subtask.requeued' && event.type !== 'subtask.failed') return;
    release(event.subtaskId);
    if (event.type !== 'subtask.completed') return;
    completed++;
    finished.set(event.agentId, (finished.get(event.agentId) ?? 0) + 1);
    if (congests && congestion === undefined && completed >= CONGESTION_AT * total && network.setLink !== undefined) {
      congestion = { atMs: scheduler.now(), latencyMs: CONGESTION_MS };
      congest(CONGESTION_MS);
    }
    for (const kind of due) {
      if (completed < FAULT_AT[kind] * total) continue;
      due.delete(kind);
      // Injected from the scheduler, not from inside the engine's own event.
      pending.set(kind, scheduler.schedule(() => inject(kind), 0));
    }
  };
  const tasks = Array.from({ length: total }, (_, i): Subtask => ({ id: `s-${i}`, payload: { n: i } }));
  own?.start();
  return new Promise<DemoOutcome>((resolve, reject) => {
    coordinator.run$({ id: `demo-${seed}`, subtasks: tasks, ...DEMO_TASK_TRAITS }).subscribe({
      next: event => {
        track(event);
        onEvent?.(event);
        if (event.type === 'task.completed') {
          for (const s of pending.values()) s.unsubscribe();
          network.heal?.();
          if (congestion !== undefined) congest(undefined);
          resolve({ result: event.result, faults: injected, longCall: { subtaskId: longCall, ...(long as Omit<LongCall, 'subtaskId'>) }, ...(congestion === undefined ? {} : { congestion }) });
        }
      },
      error: reject,
    });
  }).finally(() => own?.stop());
}
