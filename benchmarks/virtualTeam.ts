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
  | { readonly type: 'run'; readonly scheduler: 'rxswarm' | 'rxjs'; readonly driver: Driver; readonly agents: number; readonly spanMs: number }
  | { readonly type: 'exit' };

export interface TeamRun {
  readonly wallMs: number;
  readonly beats: number;
  readonly suspicions: number;
}

export type TeamReport = { readonly type: 'ready' } | ({ readonly type: 'ran' } & TeamRun) | { readonly type: 'error'; readonly message: string };

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
