import type { SubtaskRow } from './swarmRows.js';

// How the bulky parts of a `state` message travel: 50,000 subtask rows as objects are ~7 MB of
// JSON; as tuples grouped by task, under half that, and parsed in half the time. Shared with the
// dashboard (no Node modules here).

/** `[id, state, agent, attempt, attempts, progress, hedged (0/1), since, reason?]`. */
export type SubtaskTuple = readonly [string, SubtaskRow['state'], string | null, number | null, number, number, 0 | 1, number, string?];

/** Subtask rows grouped by task: `[[taskId, [tuple, …]], …]`. */
export type PackedSubtasks = ReadonlyArray<readonly [string, readonly SubtaskTuple[]]>;

/** An agent's once-a-second numbers: `[id, phi, lastBeatAt, running, usage]`. */
export type AgentSample = readonly [string, number | null, number | null, number, number];

export function packSubtasks(rows: readonly SubtaskRow[]): PackedSubtasks {
  const byTask = new Map<string, SubtaskTuple[]>();
  for (const r of rows) {
    let tuples = byTask.get(r.taskId);
    if (tuples === undefined) byTask.set(r.taskId, (tuples = []));
    const progress = Math.round(r.progress * 1000) / 1000;
    tuples.push(r.reason === undefined ? [r.id, r.state, r.agent, r.attempt, r.attempts, progress, r.hedged ? 1 : 0, r.since] : [r.id, r.state, r.agent, r.attempt, r.attempts, progress, r.hedged ? 1 : 0, r.since, r.reason]);
  }
  return [...byTask];
}

export function unpackSubtask(taskId: string, [id, state, agent, attempt, attempts, progress, hedged, since, reason]: SubtaskTuple): SubtaskRow {
  return reason === undefined ? { id, taskId, state, agent, attempt, attempts, progress, hedged: hedged === 1, since } : { id, taskId, state, agent, attempt, attempts, progress, hedged: hedged === 1, since, reason };
}

/** What the dashboard measures of itself, as `window.__rxswarm` (read by the browser tests and the benchmark). */
export interface PageMeasures {
  /** ms from navigation to the first render with the service's state (agents, tasks, attention). */
  firstRenderMs: number | null;
  /** ms from navigation to the first render holding every subtask row too. */
  allRowsMs: number | null;
  /** ms from the earliest change in a batch (service clock) to its render (page clock), per batch: the last 200. */
  lags: number[];
  batches: number;
  renders: number;
  /** ms from navigation: the hello answered, the first state received and applied. */
  marks: Record<string, number>;
}
