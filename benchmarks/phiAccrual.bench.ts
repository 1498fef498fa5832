import { Subject, groupBy, map, mergeMap, switchMap, timer, type Observable, type Subscription } from 'rxjs';
import { phiAccrual } from '../operators/phiAccrual.js';
import type { Heartbeat } from '../operators/liveness.js';
import { VirtualScheduler } from '../streams/virtualScheduler.js';
import { rate, ratioRow, retainedBytes, type BenchRow } from './harness.js';

const AGENTS = 10_000;
const SUITE = 'phiAccrual, 10,000 agents';

/** A detector under test: subscribes to beats and returns its subscription. */
type Detector = (beats: Observable<Heartbeat>, scheduler: VirtualScheduler) => Subscription;

const ours: Detector = (beats, scheduler) => beats.pipe(phiAccrual({ scheduler })).subscribe();

/** The obvious RxJS version: a group per agent and a fresh timer per heartbeat. */
const naive: Detector = (beats, scheduler) =>
  beats
    .pipe(
      groupBy(beat => beat.agentId),
      mergeMap(group => group.pipe(switchMap(beat => timer(4000, scheduler).pipe(map(() => ({ type: 'suspected', agentId: beat.agentId })))))),
    )
    .subscribe();

/** The least any detector must do: find the agent, fold the interval into running sums. No window, no timers. */
const lean: Detector = (beats, scheduler) => {
  const agents = new Map<string, { last: number; n: number; sum: number; squares: number }>();
  return beats.subscribe(beat => {
    const now = scheduler.now();
    const entry = agents.get(beat.agentId);
    if (entry === undefined) {
      agents.set(beat.agentId, { last: now, n: 0, sum: 0, squares: 0 });
      return;
    }
    const interval = now - entry.last;
    entry.last = now;
    entry.n++;
    entry.sum += interval;
    entry.squares += interval * interval;
  });
};

/** A steady 1 Hz team: `rounds` rounds of one beat per agent, spread over each second. */
class Team {
  readonly beats = new Subject<Heartbeat>();
  readonly scheduler = new VirtualScheduler();
  private readonly heartbeats: Heartbeat[] = Array.from({ length: AGENTS }, (_, i) => ({ agentId: `agent-${i}` }));
  private round = 0;

  run(rounds: number): number {
    const { beats, scheduler, heartbeats } = this;
    for (let r = 0; r < rounds; r++, this.round++) {
      const base = this.round * 1000;
      for (let i = 0; i < AGENTS; i++) {
        scheduler.advanceTo(base + Math.floor((i * 1000) / AGENTS));
        beats.next(heartbeats[i] as Heartbeat);
      }
    }
    return rounds * AGENTS;
  }
}

function throughput(detector: Detector, rounds: number): number {
  const team = new Team();
  const subscription = detector(team.beats, team.scheduler);
  team.run(3); // joins and JIT warm-up
  const result = rate(() => team.run(rounds), { samples: 5, warmups: 1 });
  subscription.unsubscribe();
  return result;
}

/** Retained bytes per agent once every agent has a window of 17 intervals. */
function bytesPerAgent(detector: Detector): number {
  return (
    retainedBytes(() => {
      const team = new Team();
      const subscription = detector(team.beats, team.scheduler);
      team.run(16);
      return { team, subscription };
    }) / AGENTS
  );
}

/** What the driver alone holds (beat objects, ids): not the detector's. */
function driverBytesPerAgent(): number {
  return retainedBytes(() => new Team()) / AGENTS;
}

/** What the 17-interval windows alone occupy: the same arrays, filled the same way. */
function windowBytesPerAgent(): number {
  return (
    retainedBytes(() =>
      Array.from({ length: AGENTS }, () => {
        const window: number[] = [];
        window.push(750, 1250);
        for (let k = 0; k < 15; k++) window.push(1000);
        return window;
      }),
    ) / AGENTS
  );
}

export default function bench(): BenchRow[] {
  const oursRate = throughput(ours, 20);
  const naiveRate = throughput(naive, 2);
  const leanRate = throughput(lean, 20);
  const oursBytes = bytesPerAgent(ours);
  const naiveBytes = bytesPerAgent(naive);
  const windowBytes = windowBytesPerAgent();
  const driverBytes = driverBytesPerAgent();
  return [
    { suite: SUITE, case: 'lean Map update (baseline b)', value: leanRate, unit: 'beats/s' },
    { suite: SUITE, case: 'naive groupBy + switchMap(timer) (baseline a)', value: naiveRate, unit: 'beats/s' },
    ratioRow(SUITE, 'phiAccrual vs naive', oursRate, 'beats/s', 'naive', naiveRate, '>= 30x'),
    ratioRow(SUITE, 'phiAccrual vs lean', oursRate, 'beats/s', 'lean', leanRate, '>= 0.5x'),
    { suite: SUITE, case: 'memory: naive, per agent', value: naiveBytes - driverBytes, unit: 'bytes' },
    { suite: SUITE, case: 'memory: phiAccrual, per agent', value: oursBytes - driverBytes, unit: 'bytes', note: `of which the 17-interval window ${windowBytes.toFixed(0)} B` },
    {
      suite: SUITE,
      case: 'memory: phiAccrual beyond the window, per agent',
      value: oursBytes - driverBytes - windowBytes,
      unit: 'bytes',
      target: '<= 200',
    },
  ];
}
