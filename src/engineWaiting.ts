import type { Subtask } from '../streams/task.js';
import type { CoordinationEvent } from './events.js';
import type { Candidates, Membership } from './membership.js';
import { emitTask, type SubtaskState, type TaskRun } from './taskRun.js';

/** Why a subtask waits when no agent at all is live. */
const NO_LIVE_AGENT = '';

/** Why a subtask no live agent can run waits: no agent live at all, or its capability set (as JSON). */
export function waitKey(subtask: Subtask, candidates: Candidates): string {
  return candidates.live === 0 ? NO_LIVE_AGENT : JSON.stringify(subtask.capabilities ?? []);
}

/**
 * Says why subtasks wait for an agent (`why`, their {@link waitKey}), and when they fail unless
 * one comes (`failsAt`): one `subtask.waiting` per task, to `inspect` and the task's followers.
 */
export function announceWaiting(inspect: { emit(event: CoordinationEvent): void }, agents: Membership, why: string, states: SubtaskState[], at: number, failsAt: number): void {
  const live = agents.list.filter(r => r.status === 'live');
  let capabilities: string[] = [];
  let reason: string;
  if (why === NO_LIVE_AGENT) {
    const down = agents.list.length;
    reason = down === 0 ? 'no agents connected yet' : `no live agent (${down === 1 ? 'the only agent is' : `all ${down} agents are`} down or standing by)`;
  } else {
    const needed = JSON.parse(why) as string[];
    capabilities = needed.filter(c => !live.some(r => r.capabilities.includes(c)));
    reason = capabilities.length > 0 ? `no live agent has ${capabilities.join(', ')}` : `no live agent has all of ${needed.join(', ')}`;
  }
  const byTask = new Map<TaskRun, string[]>();
  for (const state of states) {
    const ids = byTask.get(state.task);
    if (ids === undefined) byTask.set(state.task, [state.subtask.id]);
    else ids.push(state.subtask.id);
  }
  for (const [run, subtaskIds] of byTask) emitTask(inspect, run, { type: 'subtask.waiting', at, subtaskIds, capabilities, reason, failsAt });
}
