import { Observable, type SchedulerAction, type SchedulerLike, type Subscription } from 'rxjs';
import type { Journal, Recovered } from '../streams/journal.js';
import type { Envelope, Network, NetworkStats, Outgoing } from '../streams/network.js';

/**
 * What one simulated process touches — its clock, its network connections, its journal — cut off
 * at once when it dies (`kill`), as an operating system does to a killed process: its timers never
 * fire again, its sends go nowhere, its inboxes are closed (messages still in flight to it are
 * dropped as to a node that left), and it appends nothing more to the journal it shares with the
 * process that replaces it. Nothing it held is told goodbye: that is what makes it a crash rather
 * than `coordinator.close()`, whose graceful messages (cancellations for remote agents) a dead
 * process never sends.
 *
 * ```
 * scheduler ─▶ fence.scheduler ─▶ coordinator, its engine, its in-process agents
 * network   ─▶ fence.network   ─┘      (kill: timers inert, sends dropped, inboxes closed)
 * journal   ─▶ fence.journal   ─┘      (kill: appends and snapshots dropped; the journal stays)
 * ```
 *
 * @example
 * const fence = new ProcessFence(scheduler, network, journal);
 * const coordinator = createCoordinator({ ..., scheduler: fence.scheduler, network: fence.network, journal: fence.journal });
 * fence.kill(); // the process is gone; a new fence and coordinator on the same journal resume
 */
export class ProcessFence {
  private alive = true;
  /** The process's open inboxes on the real network, closed at its death. */
  private readonly inboxes = new Set<Subscription>();
  readonly scheduler: SchedulerLike;
  readonly network: Network;
  readonly journal: Journal;

  constructor(scheduler: SchedulerLike, network: Network, journal: Journal) {
    const fence = this;
    const schedule = <T>(work: (this: SchedulerAction<T>, state?: T) => void, delay?: number, state?: T): Subscription =>
      scheduler.schedule<T>(
        function (this: SchedulerAction<T>, s?: T) {
          // Re-scheduling goes through `this` (the action), which keeps this wrapper: a dead
          // process's periodic work stops at its next turn.
          if (fence.alive) work.call(this, s);
        },
        delay,
        state,
      );
    this.scheduler = { now: () => scheduler.now(), schedule } as SchedulerLike;
    this.network = {
      scheduler: this.scheduler,
      join: (nodeId: string) =>
        new Observable<Envelope>(subscriber => {
          if (!fence.alive) return undefined; // a dead process opens nothing
          const inbox = network.join(nodeId).subscribe(subscriber);
          fence.inboxes.add(inbox);
          return () => {
            fence.inboxes.delete(inbox);
            inbox.unsubscribe();
          };
        }),
      send: (message: Outgoing<Envelope>) => {
        if (fence.alive) network.send(message);
      },
      get stats(): NetworkStats {
        return network.stats;
      },
    };
    this.journal = {
      recover: (): Recovered => journal.recover(),
      append: (record: unknown) => {
        if (fence.alive) journal.append(record);
      },
      durable: () => journal.durable(),
      snapshot: (state: unknown) => {
        if (fence.alive) journal.snapshot(state);
      },
      get failure() {
        return journal.failure;
      },
      onFailure: listener => journal.onFailure(listener),
      get sinceSnapshot() {
        return journal.sinceSnapshot;
      },
      get pending() {
        return journal.pending;
      },
      // The journal outlives the process: the next one recovers from it.
      close: () => Promise.resolve(),
    };
  }

  /** Whether the process still lives. */
  get living(): boolean {
    return this.alive;
  }

  /** The process dies now: nothing it scheduled runs, nothing it sends leaves, its inboxes close. */
  kill(): void {
    if (!this.alive) return;
    this.alive = false;
    for (const inbox of [...this.inboxes]) inbox.unsubscribe();
    this.inboxes.clear();
  }
}
