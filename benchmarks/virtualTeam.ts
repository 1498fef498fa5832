/**
 * Child process of virtualScheduler.bench.ts: runs one team of heartbeating agents through
 * phiAccrual in virtual time and reports how long it took. Each run gets a fresh process, so the
 * JIT's feedback from one scheduler or driver does not slow another down.
 */
import { Observable, Subject, VirtualTimeScheduler, type SchedulerAction, type SchedulerLike, type Subscriber, type Subscription } from 'rxjs';
import { phiAccrual } from '../operators/phiAccrual.js';
import type { Heartbeat, Liveness } from '../operators/liveness.js';
import { VirtualScheduler } from '../streams/virtualScheduler.js';

/**
 * How the agents' beats reach phiAccrual:
 * - `source`: each agent is one scheduled action whose state is its heartbeat — RxJS's
 *   `schedule(work, delay, state)`, one work function for all — emitting to the subscriber of a
 *   plain `Observable`, the way `interval` or `fromEvent` emit;
 * - `subject`: each agent is a closure of its own and emits through a `Subject`.
 */
export type Driver = 'source' | 'subject';

export type TeamCommand =
  | { readonly type: 'run'; readonly scheduler: 'rxswarm' | 'rxjs' | 'plain'; readonly driver: Driver; readonly agents: number; readonly spanMs: number }
  | { readonly type: 'exit' };

export interface TeamRun {
  readonly wallMs: number;
  readonly beats: number;
  readonly suspicions: number;
}

export type TeamReport = { readonly type: 'ready' } | ({ readonly type: 'ran' } & TeamRun) | { readonly type: 'error'; readonly message: string };

/**
 * The event loop anyone would write first: one binary heap of (time, sequence) entries, no RxJS.
 * A cancelled action stays in the heap, flagged, and is skipped when it comes up; rescheduling
 * pushes a new entry. What a virtual-time scheduler costs at the least, as a `SchedulerLike`.
 */
class PlainHeapScheduler implements SchedulerLike {
  private time = 0;
  private seq = 0;
  private readonly heap: PlainAction[] = [];

  now(): number {
    return this.time;
  }

  schedule<T>(work: (this: SchedulerAction<T>, state?: T) => void, delay = 0, state?: T): Subscription {
    // A Subscription in all that callers use of one (unsubscribe); not one of RxJS's classes.
    return this.push(new PlainAction(this, work as (this: SchedulerAction<unknown>, state?: unknown) => void), delay, state) as unknown as Subscription;
  }

  push(action: PlainAction, delay: number, state: unknown): PlainAction {
    action.at = this.time + delay;
    action.order = this.seq++;
    action.state = state;
    action.closed = false;
    const heap = this.heap;
    let i = heap.push(action) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(action, heap[parent] as PlainAction)) break;
      heap[i] = heap[parent] as PlainAction;
      i = parent;
    }
    heap[i] = action;
    return action;
  }

  /** Runs every action due up to `until`, in time and then scheduling order. */
  advanceTo(until: number): void {
    const heap = this.heap;
    while (heap.length > 0 && (heap[0] as PlainAction).at <= until) {
      const top = heap[0] as PlainAction;
      const last = heap.pop() as PlainAction;
      if (heap.length > 0) {
        let i = 0;
        for (;;) {
          const l = 2 * i + 1;
          if (l >= heap.length) break;
          const r = l + 1;
          const c = r < heap.length && before(heap[r] as PlainAction, heap[l] as PlainAction) ? r : l;
          if (!before(heap[c] as PlainAction, last)) break;
          heap[i] = heap[c] as PlainAction;
          i = c;
        }
        heap[i] = last;
      }
      if (top.closed) continue;
      this.time = top.at;
      top.closed = true; // run once unless it reschedules itself
      top.work.call(top as unknown as SchedulerAction<unknown>, top.state);
    }
    this.time = until;
  }
}

function before(a: PlainAction, b: PlainAction): boolean {
  return a.at < b.at || (a.at === b.at && a.order < b.order);
}

class PlainAction {
  at = 0;
  order = 0;
  state: unknown = undefined;
  closed = false;

  constructor(
    private readonly scheduler: PlainHeapScheduler,
    readonly work: (this: SchedulerAction<unknown>, state?: unknown) => void,
  ) {}

  /** As RxJS actions do: the same action again, `delay` from now. */
  schedule(state?: unknown, delay = 0): PlainAction {
    return this.scheduler.push(this, delay, state);
  }

  unsubscribe(): void {
    this.closed = true;
  }
}

/** The generator's next state after `seed` (the C library's constants, in 32-bit arithmetic). */
function nextSeed(seed: number): number {
  return (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff;
}
/** The interval a state stands for: 950..1050 ms, 1 Hz ± 5 %. */
const intervalOf = (seed: number): number => 950 + (seed % 101);

/**
 * `agents` agents beat at 1 Hz with a ±5 % wobble into one phiAccrual; `run` moves the
 * scheduler's clock. The wobble comes from one generator drawn in the order the agents beat, as
 * in a discrete-event simulation: the same run every time, since both schedulers run actions
 * due at the same time in the order they were scheduled. (A generator per agent costs a memory
 * line per beat, 1.2x the time, in a benchmark that is about memory lines.)
 */
function team(scheduler: SchedulerLike, driver: Driver, agents: number, run: () => void): TeamRun {
  let suspicions = 0;
  let beats = 0;
  let seed = 1;
  const interval = (): number => intervalOf((seed = nextSeed(seed)));
  const verdict = (e: Liveness): void => {
    if (e.type === 'suspected') suspicions++;
  };

  let subscription: Subscription;
  if (driver === 'source') {
    let emit: Subscriber<Heartbeat> | undefined;
    subscription = new Observable<Heartbeat>(subscriber => {
      emit = subscriber;
    })
      .pipe(phiAccrual({ scheduler }))
      .subscribe(verdict);
    const sink = emit as Subscriber<Heartbeat>;
    const beat = function (this: SchedulerAction<Heartbeat>, heartbeat?: Heartbeat): void {
      beats++;
      sink.next(heartbeat as Heartbeat);
      this.schedule(heartbeat, interval());
    };
    for (let i = 0; i < agents; i++) scheduler.schedule(beat, i % 1000, { agentId: `agent-${i}` });
  } else {
    const subject = new Subject<Heartbeat>();
    subscription = subject.pipe(phiAccrual({ scheduler })).subscribe(verdict);
    for (let i = 0; i < agents; i++) {
      const heartbeat: Heartbeat = { agentId: `agent-${i}` };
      scheduler.schedule(function (this: SchedulerAction<undefined>) {
        beats++;
        subject.next(heartbeat);
        this.schedule(undefined, interval());
      }, i % 1000);
    }
  }
  const start = performance.now();
  run();
  const wallMs = performance.now() - start;
  subscription.unsubscribe();
  return { wallMs, beats, suspicions };
}

/** A run that did not beat about once a second per agent, or suspected a beating agent, measured something else. */
function checked(r: TeamRun, agents: number, spanMs: number): TeamRun {
  const expected = (agents * spanMs) / 1000;
  if (Math.abs(r.beats - expected) > expected * 0.05) throw new Error(`expected about ${expected} beats, counted ${r.beats}`);
  if (r.suspicions !== 0) throw new Error(`${r.suspicions} agents suspected though every one kept beating`);
  return r;
}

const report = (message: TeamReport): void => {
  process.send?.(message);
};

process.on('message', (command: TeamCommand) => {
  if (command.type === 'exit') process.exit(0);
  try {
    const { driver, agents, spanMs } = command;
    if (command.scheduler === 'rxjs') {
      const rx = new VirtualTimeScheduler(undefined, spanMs);
      report({ type: 'ran', ...checked(team(rx, driver, agents, () => rx.flush()), agents, spanMs) });
    } else if (command.scheduler === 'plain') {
      const plain = new PlainHeapScheduler();
      report({ type: 'ran', ...checked(team(plain, driver, agents, () => plain.advanceTo(spanMs)), agents, spanMs) });
    } else {
      const ours = new VirtualScheduler();
      report({ type: 'ran', ...checked(team(ours, driver, agents, () => ours.advanceTo(spanMs)), agents, spanMs) });
    }
  } catch (err) {
    report({ type: 'error', message: err instanceof Error ? err.message : String(err) });
  }
});
process.on('disconnect', () => process.exit(0));
report({ type: 'ready' });
