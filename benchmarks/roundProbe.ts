/**
 * What the dispatch benchmarks read of one round from the coordinator's events: when the first
 * assignment went out and the last result came, each subtask's assignment → result time,
 * assignments beyond one per subtask, refused results, hops, and any other event (faults by kind,
 * repairs, switches: none expected).
 */
import type { CoordinationEvent } from '../src/events.js';

export interface RoundTally {
  /** Feed it every event of the round. */
  readonly probe: (event: CoordinationEvent) => void;
  readonly completed: () => number;
  /** First assignment → last result, ms. */
  readonly windowMs: () => number;
  /** Per subtask: assignment → result, ms, sorted. */
  readonly latencies: () => Float64Array;
  /** Assignments beyond one per subtask. */
  readonly reassigned: () => number;
  /** Results the coordinator refused. */
  readonly rejected: () => number;
  /** Completions of a subtask never seen assigned in the round (a probe that missed events). */
  readonly orphans: () => number;
  /** Assignments by hop count (1: direct, 2: through a relay). */
  readonly hops: ReadonlyMap<number, number>;
  readonly incidents: ReadonlyMap<string, number>;
}

/** The tally of a round of `count` subtasks, timed on `performance.now()` as events arrive. */
export function roundTally(count: number): RoundTally {
  const assignedAt = new Map<string, number>();
  const latencies = new Float64Array(count);
  const hops = new Map<number, number>();
  const incidents = new Map<string, number>();
  let completed = 0;
  let assignments = 0;
  let rejected = 0;
  let orphans = 0;
  let first = NaN;
  let last = NaN;
  const probe = (event: CoordinationEvent): void => {
    const now = performance.now();
    switch (event.type) {
      case 'subtask.assigned':
        if (assignments++ === 0) first = now;
        assignedAt.set(event.subtaskId, now);
        hops.set(event.hops, (hops.get(event.hops) ?? 0) + 1);
        return;
      case 'subtask.completed': {
        const at = assignedAt.get(event.subtaskId);
        if (at === undefined || completed >= count) orphans++;
        else latencies[completed++] = now - at;
        last = now;
        return;
      }
      case 'subtask.rejected':
        rejected++;
        return;
      case 'agent.joined':
      case 'protocol.selected':
      case 'task.started':
      case 'task.completed':
        return;
      default: {
        const name =
          event.type === 'fault.detected'
            ? `${event.type} (${event.kind})`
            : event.type === 'protocol.repaired'
              ? `${event.type} (${event.repair})`
              : event.type === 'protocol.switched'
                ? `${event.type} (${event.switch.from}→${event.switch.to}: ${event.switch.reason})`
                : event.type;
        incidents.set(name, (incidents.get(name) ?? 0) + 1);
      }
    }
  };
  return {
    probe,
    completed: () => completed,
    windowMs: () => last - first,
    latencies: () => latencies.sort(),
    reassigned: () => assignments - count,
    rejected: () => rejected,
    orphans: () => orphans,
    hops,
    incidents,
  };
}
