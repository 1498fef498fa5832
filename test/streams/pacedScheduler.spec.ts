import fc from 'fast-check';
import { timer, type SchedulerLike } from 'rxjs';
import { PacedScheduler } from '../../streams/pacedScheduler.js';
import { VirtualScheduler } from '../../streams/virtualScheduler.js';

/** A paced scheduler on a wall clock the test moves by hand. */
function paced(options: { speed?: number; tickMs?: number; maxStepMs?: number } = {}) {
  const wall = new VirtualScheduler();
  return { wall, scheduler: new PacedScheduler({ ...options, wall }) };
}

describe('PacedScheduler', () => {
  it('runs nothing until started, then keeps up with the wall clock', () => {
    const { wall, scheduler } = paced({ tickMs: 10 });
    const log: number[] = [];
    timer(25, scheduler).subscribe(() => log.push(scheduler.now()));
    wall.advanceBy(100);
    expect(scheduler.now()).toBe(0);
    scheduler.start();
    wall.advanceBy(20);
    expect(scheduler.now()).toBe(20);
    expect(log).toEqual([]);
    wall.advanceBy(10);
    expect(log).toEqual([25]); // at its virtual time, though run at the tick of 30
    expect(scheduler.now()).toBe(30);
  });

  it('runs `speed` virtual ms per wall ms', () => {
    const { wall, scheduler } = paced({ speed: 10, tickMs: 5 });
    scheduler.start();
    wall.advanceBy(100);
    expect(scheduler.now()).toBe(1000);
  });

  it('runs at most maxStepMs per catch-up, falls behind, and catches up when it can', () => {
    const { wall, scheduler } = paced({ speed: 100, tickMs: 10, maxStepMs: 600 });
    scheduler.start();
    wall.advanceBy(10);
    expect(scheduler.now()).toBe(600);
    expect(scheduler.lagMs).toBe(400);
    wall.advanceBy(10); // target 2000: another 600
    expect(scheduler.now()).toBe(1200);
    scheduler.stop();
    expect(scheduler.lagMs).toBe(0);
  });

  it('stops: the clock stays, queued actions wait, no wall timer is left', () => {
    const { wall, scheduler } = paced({ tickMs: 10 });
    const log: number[] = [];
    timer(50, scheduler).subscribe(() => log.push(scheduler.now()));
    scheduler.start();
    expect(scheduler.paced).toBe(true);
    wall.advanceBy(30);
    scheduler.stop();
    expect(scheduler.paced).toBe(false);
    expect(wall.pending).toBe(0);
    wall.advanceBy(100);
    expect(scheduler.now()).toBe(30);
    expect(scheduler.pending).toBe(1);
    scheduler.advanceTo(50); // by hand, as a VirtualScheduler
    expect(log).toEqual([50]);
  });

  it('can be stopped by one of its own actions', () => {
    const { wall, scheduler } = paced({ tickMs: 10 });
    timer(15, scheduler).subscribe(() => scheduler.stop());
    scheduler.start();
    wall.advanceBy(100);
    expect(scheduler.now()).toBe(20); // the catch-up that ran it ends at its own target
    expect(wall.pending).toBe(0);
  });

  it('paces from where it stood when started again, and a second start changes nothing', () => {
    const { wall, scheduler } = paced({ tickMs: 10 });
    scheduler.advanceTo(500);
    wall.advanceBy(1000);
    scheduler.start();
    scheduler.start();
    wall.advanceBy(20);
    expect(scheduler.now()).toBe(520);
    expect(wall.pending).toBe(1);
  });

  it('does not go back when the wall clock does', () => {
    let wallNow = 1000;
    const wallScheduler = new VirtualScheduler();
    const wall: SchedulerLike = { now: () => wallNow, schedule: wallScheduler.schedule.bind(wallScheduler) } as SchedulerLike;
    const scheduler = new PacedScheduler({ wall, tickMs: 10 });
    scheduler.start();
    wallNow = 1050;
    wallScheduler.advanceBy(10);
    expect(scheduler.now()).toBe(50);
    wallNow = 900;
    wallScheduler.advanceBy(10);
    expect(scheduler.now()).toBe(50);
  });

  it('stops pacing when an action throws, and the error leaves the catch-up', () => {
    const { wall, scheduler } = paced({ tickMs: 10 });
    scheduler.schedule(() => {
      throw new Error('boom');
    }, 5);
    scheduler.start();
    expect(() => wall.advanceBy(10)).toThrow('boom');
    expect(scheduler.paced).toBe(false);
  });

  it('runs the same actions in the same order whatever the size of its steps', () => {
    // Each action schedules more at times drawn from its label: a workload of timers within timers.
    const run = (steps: readonly number[], delays: readonly number[]): string[] => {
      const { wall, scheduler } = paced({ tickMs: 1, speed: 1 });
      const log: string[] = [];
      const spawn = (label: string, depth: number): void => {
        log.push(`${scheduler.now()}:${label}`);
        if (depth === 0) return;
        for (let i = 0; i < 2; i++) {
          const delay = delays[(label.length + i) % delays.length] as number;
          scheduler.schedule(() => spawn(`${label}${i}`, depth - 1), delay);
        }
      };
      scheduler.schedule(() => spawn('a', 4), 0);
      scheduler.start();
      for (const step of steps) wall.advanceBy(step);
      wall.advanceBy(10_000);
      return log;
    };
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 200 }), { minLength: 1, maxLength: 30 }), fc.array(fc.integer({ min: 0, max: 50 }), { minLength: 1, maxLength: 8 }), (steps, delays) => {
        expect(run(steps, delays)).toEqual(run([1], delays));
      }),
      { numRuns: 50 },
    );
  });

  it.each([
    ['speed', { speed: 0 }],
    ['speed', { speed: Number.NaN }],
    ['tickMs', { tickMs: 0 }],
    ['maxStepMs', { maxStepMs: -1 }],
    ['wall', { wall: {} as SchedulerLike }],
  ])('rejects a bad %s', (name, options) => {
    expect(() => new PacedScheduler(options)).toThrow(RangeError);
    expect(() => new PacedScheduler(options)).toThrow(new RegExp(name));
  });
});
