import { Subject, VirtualTimeScheduler, type SchedulerAction, type SchedulerLike } from 'rxjs';
import { phiAccrual } from '../operators/phiAccrual.js';
import type { Heartbeat, Liveness } from '../operators/liveness.js';
import { VirtualScheduler } from '../streams/virtualScheduler.js';
import { ratioRow, type BenchRow } from './harness.js';

const AGENTS = 10_000;
const HOUR_MS = 3_600_000;
const SUITE = 'VirtualScheduler, 10,000 agents 1 Hz';

/**
 * Every agent beats at 1 Hz with a fixed ±5 % wobble, as its own self-rescheduling action, into
 * one phiAccrual; the scheduler runs `spanMs` of virtual time. Returns wall ms, beats and verdicts.
 */
function team(scheduler: SchedulerLike, run: () => void): { wallMs: number; beats: number; suspicions: number } {
  const beats = new Subject<Heartbeat>();
  let suspicions = 0;
  let count = 0;
  const subscription = beats.pipe(phiAccrual({ scheduler })).subscribe((e: Liveness) => {
    if (e.type === 'suspected') suspicions++;
  });
  for (let i = 0; i < AGENTS; i++) {
    const heartbeat: Heartbeat = { agentId: `agent-${i}` };
    let k = i;
    scheduler.schedule(function (this: SchedulerAction<undefined>) {
      count++;
      beats.next(heartbeat);
      k = (k * 1103515245 + 12345) & 0x7fffffff;
      this.schedule(undefined, 950 + (k % 101)); // 950..1050 ms
    }, i % 1000);
  }
  const start = performance.now();
  run();
  const wallMs = performance.now() - start;
  subscription.unsubscribe();
  return { wallMs, beats: count, suspicions };
}

export default function bench(): BenchRow[] {
  const ours = new VirtualScheduler();
  const hour = team(ours, () => ours.advanceTo(HOUR_MS));
  const oursSpeed = HOUR_MS / hour.wallMs;

  // RxJS's VirtualTimeScheduler sorts its whole queue on every schedule: run 2 virtual seconds and extrapolate.
  const shortMs = 2000;
  const rx = new VirtualTimeScheduler(undefined, shortMs);
  const short = team(rx, () => rx.flush());
  const rxSpeed = shortMs / short.wallMs;

  return [
    {
      suite: SUITE,
      case: 'RxJS VirtualTimeScheduler (baseline, 2 s run)',
      value: rxSpeed,
      unit: 'x real time',
      note: `${short.beats.toLocaleString('en-US')} beats in ${short.wallMs.toFixed(0)} ms; one hour ≈ ${(HOUR_MS / rxSpeed / 1000 / 60).toFixed(0)} min`,
    },
    ratioRow(
      SUITE,
      'VirtualScheduler, one virtual hour',
      oursSpeed,
      'x real time',
      'RxJS VirtualTimeScheduler',
      rxSpeed,
      '>= 300x rt',
      `${hour.beats.toLocaleString('en-US')} beats in ${(hour.wallMs / 1000).toFixed(1)} s, ${hour.suspicions} suspicions`,
    ),
  ];
}
