import { AsyncSubject, Subject, asyncScheduler, from, isObservable, of, take, type Observable, type SchedulerLike, type Subscription } from 'rxjs';
import { requireInteger, requireNumber, requireScheduler } from '../operators/internal/validate.js';
import { FAULT_KINDS, faultKey, type DetectedFault, type FaultKind } from './faultDetector.js';

/** What an engine action reports: success, and why (the detail goes into the history). */
export interface ActionResult {
  readonly ok: boolean;
  readonly detail?: string;
}

export type ActionOutcome = boolean | ActionResult;

/**
 * An action answers at once (`ActionOutcome`) or later: an Observable (its first value counts;
 * completing without one, or erroring, is a failure) or a Promise. Answer synchronously or on the
 * engine's scheduler to keep a run reproducible in virtual time.
 */
export type ActionReply = ActionOutcome | Observable<ActionOutcome> | PromiseLike<ActionOutcome>;

/**
 * The seam between healing and the engine: one method per healing strategy, each told the fault it
 * is healing. Return whether it worked; a throw, a rejection or an Observable error counts as a
 * failed attempt with the error's message as detail.
 */
export interface EngineActions {
  /** agent_timeout 1: restart the silent agent in place (same id, fresh process or connection). */
  restartAgent(fault: DetectedFault): ActionReply;
  /** agent_timeout 2, resource_exhaustion 2: move the agent's in-flight subtasks to other agents. */
  reassignSubtasks(fault: DetectedFault): ActionReply;
  /** agent_timeout 3, resource_exhaustion 3: take the agent out and bring in a backup agent. */
  replaceAgent(fault: DetectedFault): ActionReply;
  /** communication_failure 1: close and reopen the link's channels. */
  resetChannels(fault: DetectedFault): ActionReply;
  /** communication_failure 2: route the link's traffic through another path. */
  switchRoute(fault: DetectedFault): ActionReply;
  /** communication_failure 3: spread the link's traffic over every alternative route. */
  useAlternativeRoutes(fault: DetectedFault): ActionReply;
  /** performance_degradation 1: rebalance resources and work across the team. */
  rebalanceResources(fault: DetectedFault): ActionReply;
  /** performance_degradation 2, resource_exhaustion 1: give the agent less work. */
  reduceLoad(fault: DetectedFault): ActionReply;
  /** performance_degradation 3: switch to a protocol that costs fewer messages. */
  switchToCheaperProtocol(fault: DetectedFault): ActionReply;
  /** protocol_deadlock 1: break the cycle: abort one waiter's subtask and requeue it. */
  breakWaitChain(fault: DetectedFault): ActionReply;
  /** protocol_deadlock 2: restart the coordination of the current protocol. */
  restartCoordination(fault: DetectedFault): ActionReply;
  /** protocol_deadlock 3: switch to another protocol. */
  switchProtocol(fault: DetectedFault): ActionReply;
}

export type HealingStrategy = keyof EngineActions;

export const HEALING_STRATEGIES: readonly HealingStrategy[] = Object.freeze([
  'restartAgent',
  'reassignSubtasks',
  'replaceAgent',
  'resetChannels',
  'switchRoute',
  'useAlternativeRoutes',
  'rebalanceResources',
  'reduceLoad',
  'switchToCheaperProtocol',
  'breakWaitChain',
  'restartCoordination',
  'switchProtocol',
] as const);

/** The seed's healing chains, tried in this order. */
export const HEALING_CHAINS: Readonly<Record<FaultKind, readonly HealingStrategy[]>> = Object.freeze({
  agent_timeout: Object.freeze(['restartAgent', 'reassignSubtasks', 'replaceAgent'] as const),
  communication_failure: Object.freeze(['resetChannels', 'switchRoute', 'useAlternativeRoutes'] as const),
  performance_degradation: Object.freeze(['rebalanceResources', 'reduceLoad', 'switchToCheaperProtocol'] as const),
  resource_exhaustion: Object.freeze(['reduceLoad', 'reassignSubtasks', 'replaceAgent'] as const),
  protocol_deadlock: Object.freeze(['breakWaitChain', 'restartCoordination', 'switchProtocol'] as const),
});

/** One strategy tried on one fault. */
export interface HealingAttempt {
  readonly faultKind: FaultKind;
  readonly agentId?: string;
  readonly link?: string;
  readonly members?: readonly string[];
  readonly strategy: HealingStrategy;
  readonly ok: boolean;
  readonly detail: string;
  /** Scheduler time at which the strategy was called. */
  readonly at: number;
  /** Until its outcome came (0 for an action that answers at once). */
  readonly durationMs: number;
  /** 1-based position in this fault's chain. */
  readonly attempt: number;
}

/**
 * How healing a fault ended. `healed`: a strategy worked. `exhausted`: every strategy allowed
 * failed (the engine falls back to another protocol). `skipped`: the same fault's healing was
 * already in progress. `cancelled`: the manager was disposed first.
 */
export type HealingStatus = 'healed' | 'exhausted' | 'skipped' | 'cancelled';

export interface HealingResult {
  readonly fault: DetectedFault;
  readonly status: HealingStatus;
  /** The strategy that healed it (`healed` only). */
  readonly strategy?: HealingStrategy;
  readonly attempts: readonly HealingAttempt[];
}

export interface HealingAttempted {
  readonly type: 'healing.attempted';
  readonly at: number;
  readonly fault: DetectedFault;
  readonly strategy: HealingStrategy;
  readonly attempt: number;
}

/** An attempt's outcome: the history record plus the fault it was for. */
export interface HealingAttemptSettled extends HealingAttempt {
  readonly type: 'healing.succeeded' | 'healing.failed';
  readonly fault: DetectedFault;
}

export interface HealingExhausted {
  readonly type: 'healing.exhausted';
  readonly at: number;
  readonly fault: DetectedFault;
  readonly attempts: readonly HealingAttempt[];
}

export interface HealingSkipped {
  readonly type: 'healing.skipped';
  readonly at: number;
  readonly fault: DetectedFault;
  readonly reason: 'in_progress';
}

export interface HealingFallback {
  readonly type: 'healing.fallback';
  readonly at: number;
  readonly from: string;
  readonly to: string;
  /** Fallbacks taken so far in this run, this one included. */
  readonly fallbacks: number;
}

export interface HealingFallbackRefused {
  readonly type: 'healing.fallback_refused';
  readonly at: number;
  readonly from: string;
  /** `limit`: `maxFallbacks` already taken; `no_candidate`: no other protocol to go to. */
  readonly reason: 'limit' | 'no_candidate';
  readonly fallbacks: number;
}

export type HealingEvent =
  | HealingAttempted
  | HealingAttemptSettled
  | HealingExhausted
  | HealingSkipped
  | HealingFallback
  | HealingFallbackRefused;

export interface FallbackPolicyOptions<P extends string = string> {
  /** Protocols to fall back to, most preferred first (duplicates ignored). */
  readonly preference: readonly P[];
  /**
   * Fallbacks allowed per run (integer ≥ 0, default 2). More: more chances to find a protocol
   * that works; fewer: a hopeless run ends sooner instead of churning through topologies.
   */
  readonly maxFallbacks?: number;
}

/**
 * Bounded protocol fallback: picks the next protocol from a preference list, never the current one
 * nor the one it picked last (no ping-pong), protocols not yet tried in this run first, and at most
 * `maxFallbacks` times until `reset()`. Returns `undefined` when the bound is reached or there is
 * nothing else to go to: the caller then reports what cannot be done as failed, never recurses.
 *
 * ```
 * preference [hierarchical, star, ring], maxFallbacks 2
 * next('mesh') → 'hierarchical'   next('hierarchical') → 'star'   next('star') → undefined (limit)
 * ```
 *
 * @example
 * const policy = new FallbackPolicy({ preference: ['hierarchical', 'star'] });
 * const to = policy.next(current); // undefined: give up
 */
export class FallbackPolicy<P extends string = string> {
  readonly preference: readonly P[];
  readonly maxFallbacks: number;
  private taken = 0;
  private lastPick: P | undefined;
  private readonly tried = new Set<string>();

  constructor(options: FallbackPolicyOptions<P>) {
    const { preference, maxFallbacks = 2 } = options ?? ({} as FallbackPolicyOptions<P>);
    if (!Array.isArray(preference) || preference.some(p => typeof p !== 'string')) {
      throw new RangeError(`preference must be an array of protocol names, got ${String(preference)}`);
    }
    this.preference = Object.freeze([...new Set(preference)]);
    this.maxFallbacks = requireInteger('maxFallbacks', maxFallbacks, 0);
  }

  /** Fallbacks taken since construction or the last `reset()`. */
  get used(): number {
    return this.taken;
  }

  get remaining(): number {
    return this.maxFallbacks - this.taken;
  }

  /** The protocol to fall back to from `current`, or `undefined` (limit reached or no candidate). */
  next(current: string): P | undefined {
    return this.decide(current).to;
  }

  /** `next`, with the reason when there is no protocol to go to. */
  decide(current: string): { readonly to: P; readonly reason?: undefined } | { readonly to?: undefined; readonly reason: 'limit' | 'no_candidate' } {
    if (this.taken >= this.maxFallbacks) return { reason: 'limit' };
    this.tried.add(current);
    const candidates = this.preference.filter(p => p !== current && p !== this.lastPick);
    const to = candidates.find(p => !this.tried.has(p)) ?? candidates[0];
    if (to === undefined) return { reason: 'no_candidate' };
    this.taken++;
    this.lastPick = to;
    this.tried.add(to);
    return { to };
  }

  /** A new run: the count and the memory of tried protocols start over. */
  reset(): void {
    this.taken = 0;
    this.lastPick = undefined;
    this.tried.clear();
  }
}

/** The default fallback order: the repairable, cheap topologies before the chatty one. */
export const DEFAULT_FALLBACK_PREFERENCE: readonly string[] = Object.freeze(['hierarchical', 'star', 'ring', 'mesh']);

export interface SelfHealingOptions {
  /** Strategies tried per fault at most (integer ≥ 1, default 3: the seed's). */
  readonly maxAttempts?: number;
  /**
   * Chains to use instead of {@link HEALING_CHAINS}, per kind (cut to `maxAttempts`). An empty
   * chain sends that fault straight to `healing.exhausted`.
   */
  readonly chains?: Partial<Readonly<Record<FaultKind, readonly HealingStrategy[]>>>;
  /**
   * How long an action that answers later (Observable, Promise) may take before the attempt counts
   * as failed and the chain moves on (> 0 ms or `Infinity`, default 30 000). Shorter: a hung
   * restart blocks its fault's healing less long; too short: slow but working actions are
   * abandoned. Timed on `scheduler`.
   */
  readonly actionTimeoutMs?: number;
  /** Protocol fallback after an exhausted chain (default: {@link DEFAULT_FALLBACK_PREFERENCE}, 2 fallbacks). */
  readonly fallback?: FallbackPolicy | FallbackPolicyOptions;
  /** Clock for `at` and the action timeout (default `asyncScheduler`). */
  readonly scheduler?: SchedulerLike;
}

/** A fault being healed. */
interface Run {
  readonly fault: DetectedFault;
  readonly key: string;
  readonly chain: readonly HealingStrategy[];
  readonly attempts: HealingAttempt[];
  readonly result: AsyncSubject<HealingResult>;
  /** Ends the attempt waiting for a late answer (dispose). */
  cancel: (() => void) | undefined;
}

const isOutcome = (value: unknown): value is ActionOutcome =>
  typeof value === 'boolean' ||
  (value !== null && typeof value === 'object' && 'ok' in value && typeof (value as { ok: unknown }).ok === 'boolean');

const isPromiseLike = (value: unknown): value is PromiseLike<unknown> =>
  value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as { then?: unknown }).then === 'function';

const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

function show(value: unknown): string {
  try {
    return typeof value === 'object' && value !== null ? JSON.stringify(value) : String(value);
  } catch {
    return String(value);
  }
}

/**
 * Heals detected faults by running each one's chain of strategies on the engine's
 * {@link EngineActions}, in order, until one works, at most `maxAttempts` per fault; every attempt
 * goes into `history` and out on `events$`. A chain that fails throughout ends in
 * `healing.exhausted`, and `fallback(current)` then names the protocol to fall back to, within
 * the bound of its {@link FallbackPolicy}.
 *
 * ```
 * heal(agent_timeout a)   restartAgent ✗   reassignSubtasks ✗   replaceAgent ✓
 * events$:                attempted failed attempted failed attempted succeeded
 * ```
 *
 * - One chain per fault at a time: a fault whose `faultKey` (kind + agent, link or cycle) is being
 *   healed is not healed again (`healing.skipped`, result `skipped`), whether it is reported again
 *   re-entrantly by an action or while an action that answers later is pending. Once its chain
 *   has ended, a new report of it is a new episode and is healed again.
 * - An action that throws, rejects, errors, completes without an answer, answers something that is
 *   not an outcome, or times out (`actionTimeoutMs`) is a failed attempt with the reason as detail;
 *   the manager never throws because of an action.
 * - `events$` is hot; `history` holds every attempt of the manager's life, in the order they ended.
 *   Use one manager per run (or `resetFallbacks()` between runs).
 *
 * @example
 * const healer = new SelfHealingManager(engineActions, { scheduler });
 * healer.events$.subscribe(e => e.type === 'healing.exhausted' && switchTo(healer.fallback(current)));
 * detectFaults(inputs, { scheduler }).subscribe(f => f.type === 'detected' && healer.heal(f));
 */
export class SelfHealingManager {
  readonly maxAttempts: number;
  readonly actionTimeoutMs: number;
  readonly chains: Readonly<Record<FaultKind, readonly HealingStrategy[]>>;
  readonly fallbackPolicy: FallbackPolicy;
  private readonly scheduler: SchedulerLike;
  private readonly log: HealingAttempt[] = [];
  private readonly events = new Subject<HealingEvent>();
  private readonly running = new Map<string, Run>();
  private disposed = false;

  /** Every healing event, as it happens (hot; completes on `dispose()`). */
  readonly events$: Observable<HealingEvent> = this.events.asObservable();

  constructor(
    private readonly actions: EngineActions,
    options: SelfHealingOptions = {},
  ) {
    const { maxAttempts = 3, chains = {}, actionTimeoutMs = 30_000, fallback, scheduler = asyncScheduler } = options ?? {};
    this.maxAttempts = requireInteger('maxAttempts', maxAttempts, 1);
    if (actionTimeoutMs !== Infinity) requireNumber('actionTimeoutMs', actionTimeoutMs, 0, true);
    this.actionTimeoutMs = actionTimeoutMs;
    this.scheduler = requireScheduler(scheduler);
    if (chains === null || typeof chains !== 'object') throw new RangeError(`chains must be an object, got ${show(chains)}`);
    const settled = {} as Record<FaultKind, readonly HealingStrategy[]>;
    for (const kind of FAULT_KINDS) {
      const chain = chains[kind] ?? HEALING_CHAINS[kind];
      if (!Array.isArray(chain)) throw new RangeError(`chains.${kind} must be an array of strategies, got ${show(chain)}`);
      for (const strategy of chain) {
        if (!(HEALING_STRATEGIES as readonly unknown[]).includes(strategy)) {
          throw new RangeError(`chains.${kind} has an unknown strategy ${show(strategy)}`);
        }
        if (typeof (actions as unknown as Record<string, unknown> | null)?.[strategy] !== 'function') {
          throw new RangeError(`actions.${strategy} must be a function (used by ${kind}), got ${show((actions as unknown as Record<string, unknown> | null)?.[strategy])}`);
        }
      }
      settled[kind] = Object.freeze(chain.slice(0, this.maxAttempts));
    }
    for (const kind of Object.keys(chains)) {
      if (!(FAULT_KINDS as readonly string[]).includes(kind)) throw new RangeError(`chains has an unknown fault kind ${show(kind)}`);
    }
    this.chains = Object.freeze(settled);
    this.fallbackPolicy = fallback instanceof FallbackPolicy ? fallback : new FallbackPolicy(fallback ?? { preference: DEFAULT_FALLBACK_PREFERENCE });
  }

  /** Every attempt so far, in the order their outcomes came. */
  get history(): readonly HealingAttempt[] {
    return this.log;
  }

  /** Whether a fault with this subject is being healed now. */
  isHealing(fault: Pick<DetectedFault, 'kind' | 'agentId' | 'link' | 'members'>): boolean {
    return this.running.has(faultKey(fault));
  }

  /**
   * Runs `fault`'s chain. Starts at once, whether or not the result is subscribed to; the returned
   * Observable gives the one result when the chain ends (synchronously if every action answered
   * at once) and completes.
   */
  heal(fault: DetectedFault): Observable<HealingResult> {
    if (fault === null || typeof fault !== 'object' || !(FAULT_KINDS as readonly unknown[]).includes(fault.kind)) {
      throw new RangeError(`fault.kind must be one of ${FAULT_KINDS.join(', ')}, got ${show(fault?.kind)}`);
    }
    if (this.disposed) return of({ fault, status: 'cancelled', attempts: [] });
    const key = faultKey(fault);
    if (this.running.has(key)) {
      this.events.next({ type: 'healing.skipped', at: this.scheduler.now(), fault, reason: 'in_progress' });
      return of({ fault, status: 'skipped', attempts: [] });
    }
    const run: Run = { fault, key, chain: this.chains[fault.kind], attempts: [], result: new AsyncSubject(), cancel: undefined };
    this.running.set(key, run);
    if (run.chain.length === 0) this.end(run);
    else this.attempt(run, 0);
    return run.result.asObservable();
  }

  /**
   * The protocol to fall back to from `current` (after `healing.exhausted`), or `undefined` when the
   * run's fallbacks are used up or there is nowhere else to go; emits `healing.fallback` or
   * `healing.fallback_refused`.
   */
  fallback(current: string): string | undefined {
    const at = this.scheduler.now();
    const decision = this.fallbackPolicy.decide(current);
    const fallbacks = this.fallbackPolicy.used;
    if (decision.to === undefined) {
      this.events.next({ type: 'healing.fallback_refused', at, from: current, reason: decision.reason, fallbacks });
      return undefined;
    }
    this.events.next({ type: 'healing.fallback', at, from: current, to: decision.to, fallbacks });
    return decision.to;
  }

  /** A new run: the fallback count starts over. */
  resetFallbacks(): void {
    this.fallbackPolicy.reset();
  }

  /**
   * Stops: attempts waiting for a late answer are recorded as failed ("cancelled"), their faults end
   * `cancelled`, `events$` completes, and later `heal` calls return `cancelled` at once.
   */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const run of [...this.running.values()]) run.cancel?.();
    this.events.complete();
  }

  /** Calls strategy `index` of the run's chain. */
  private attempt(run: Run, index: number): void {
    const { fault } = run;
    const strategy = run.chain[index] as HealingStrategy;
    const at = this.scheduler.now();
    this.events.next({ type: 'healing.attempted', at, fault, strategy, attempt: index + 1 });

    let reply: unknown;
    try {
      reply = this.actions[strategy](fault);
    } catch (err) {
      this.settle(run, index, at, { ok: false, detail: `${strategy} threw: ${messageOf(err)}` });
      return;
    }
    if (isOutcome(reply)) {
      this.settle(run, index, at, reply);
      return;
    }
    if (!isObservable(reply) && !isPromiseLike(reply)) {
      this.settle(run, index, at, { ok: false, detail: `${strategy} answered ${show(reply)}, not a boolean or { ok, detail }` });
      return;
    }

    let done = false;
    let timer: Subscription | undefined;
    let answer: Subscription | undefined;
    const finish = (outcome: ActionOutcome): void => {
      if (done) return;
      done = true;
      timer?.unsubscribe();
      answer?.unsubscribe();
      run.cancel = undefined;
      this.settle(run, index, at, outcome);
    };
    // take(1): an answer that comes synchronously, during subscribe, also ends the subscription.
    answer = from(reply as Observable<unknown>)
      .pipe(take(1))
      .subscribe({
        next: value =>
          finish(isOutcome(value) ? value : { ok: false, detail: `${strategy} answered ${show(value)}, not a boolean or { ok, detail }` }),
        error: (err: unknown) => finish({ ok: false, detail: `${strategy} failed: ${messageOf(err)}` }),
        complete: () => finish({ ok: false, detail: `${strategy} completed without an answer` }),
      });
    if (done) return;
    run.cancel = () => finish({ ok: false, detail: `${strategy} cancelled: the manager was disposed` });
    if (this.disposed) {
      run.cancel(); // disposed re-entrantly, by a listener or by the action itself
      return;
    }
    if (this.actionTimeoutMs !== Infinity) {
      const limit = this.actionTimeoutMs;
      timer = this.scheduler.schedule(() => finish({ ok: false, detail: `${strategy} gave no answer within ${limit} ms` }), limit);
    }
  }

  /** Records an attempt's outcome and moves the chain on. */
  private settle(run: Run, index: number, at: number, outcome: ActionOutcome): void {
    const { fault } = run;
    const strategy = run.chain[index] as HealingStrategy;
    const ok = typeof outcome === 'boolean' ? outcome : outcome.ok;
    const given = typeof outcome === 'boolean' ? undefined : outcome.detail;
    const detail = given ?? `${strategy} ${ok ? 'succeeded' : 'failed'}`;
    const record: HealingAttempt = {
      faultKind: fault.kind,
      ...(fault.agentId === undefined ? {} : { agentId: fault.agentId }),
      ...(fault.link === undefined ? {} : { link: fault.link }),
      ...(fault.members === undefined ? {} : { members: fault.members }),
      strategy,
      ok,
      detail: String(detail),
      at,
      durationMs: this.scheduler.now() - at,
      attempt: index + 1,
    };
    this.log.push(record);
    run.attempts.push(record);
    const last = ok || index + 1 >= run.chain.length || this.disposed;
    // The fault is no longer in progress before anyone hears of the end: a listener may report it anew.
    if (last) this.running.delete(run.key);
    this.events.next({ type: ok ? 'healing.succeeded' : 'healing.failed', ...record, fault });
    if (last) this.end(run, ok ? strategy : undefined);
    else if (this.disposed) this.end(run); // a listener disposed the manager: no further attempt
    else this.attempt(run, index + 1);
  }

  /** Ends a run: `healing.exhausted` when nothing worked, then the result. */
  private end(run: Run, healedBy?: HealingStrategy): void {
    const { fault } = run;
    this.running.delete(run.key);
    const attempts = Object.freeze([...run.attempts]);
    let result: HealingResult;
    if (healedBy !== undefined) {
      result = { fault, status: 'healed', strategy: healedBy, attempts };
    } else if (this.disposed) {
      result = { fault, status: 'cancelled', attempts };
    } else {
      this.events.next({ type: 'healing.exhausted', at: this.scheduler.now(), fault, attempts });
      result = { fault, status: 'exhausted', attempts };
    }
    run.result.next(result);
    run.result.complete();
  }
}
