import { Subject, merge, map } from 'rxjs';
import { heartbeatDeadline } from '../operators/heartbeatDeadline.js';
import type { Heartbeat, Liveness } from '../operators/liveness.js';
import { phiAccrual } from '../operators/phiAccrual.js';
import { VirtualScheduler } from '../streams/virtualScheduler.js';

/** What happens to one simulated agent, in virtual ms. */
export interface AgentScript {
  readonly id: string;
  readonly intervalMs: number;
  /** Jitter as a fraction of the interval (deterministic, from the agent's index). */
  readonly jitter: number;
  readonly crashAtMs?: number;
  readonly leaveAtMs?: number;
  /** From `slowAtMs` on, beats come `slowFactor` times further apart. */
  readonly slowAtMs?: number;
  readonly slowFactor?: number;
}

export interface DetectorDemoReport {
  readonly events: ReadonlyArray<Liveness & { readonly detector: 'phi' | 'deadline' }>;
  readonly heartbeats: number;
  readonly virtualMs: number;
}

/**
 * Runs `phiAccrual` and a 5-second `heartbeatDeadline` side by side over simulated heartbeats in
 * virtual time, and returns every verdict. Deterministic: no randomness, no wall clock.
 */
export function runDetectorDemo(scripts: readonly AgentScript[], untilMs: number): DetectorDemoReport {
  const scheduler = new VirtualScheduler();
  const beats = new Subject<Heartbeat>();
  const events: Array<Liveness & { detector: 'phi' | 'deadline' }> = [];
  let heartbeats = 0;
  const subscription = merge(
    beats.pipe(phiAccrual({ scheduler }), map(e => ({ ...e, detector: 'phi' as const }))),
    beats.pipe(heartbeatDeadline({ timeoutMs: 5000, scheduler }), map(e => ({ ...e, detector: 'deadline' as const }))),
  ).subscribe(e => events.push(e));

  scripts.forEach((script, index) => {
    let k = 0;
    scheduler.schedule(function beat() {
      const now = scheduler.now();
      if (script.crashAtMs !== undefined && now >= script.crashAtMs) return;
      if (script.leaveAtMs !== undefined && now >= script.leaveAtMs) {
        beats.next({ agentId: script.id, status: 'leaving' });
        return;
      }
      heartbeats++;
      beats.next({ agentId: script.id });
      const slow = script.slowAtMs !== undefined && now >= script.slowAtMs ? (script.slowFactor ?? 1) : 1;
      // A fixed, index-dependent wobble in [−jitter, +jitter]: reproducible without a random source.
      const wobble = Math.sin(++k * 12.9898 + index * 78.233) * script.jitter;
      this.schedule(undefined, Math.round(script.intervalMs * slow * (1 + wobble)));
    }, index * 37);
  });

  scheduler.advanceTo(untilMs);
  subscription.unsubscribe();
  return { events, heartbeats, virtualMs: untilMs };
}
