import type { SchedulerLike, Subscription } from 'rxjs';
import type { WaitForEdge } from '../operators/index.js';
import type { DelegateBody, DelegatedBody } from '../streams/protocol.js';
import { subtaskProblem, type Subtask } from '../streams/task.js';
import type { AgentRecord, Membership } from './membership.js';
import type { Attempt, SubtaskState } from './taskRun.js';

/** What delegation needs of the engine. */
export interface DelegationHost {
  readonly agents: Membership;
  readonly scheduler: SchedulerLike;
  /** A subtask of a running task (ended ones too, until their task ends). */
  subtask(taskId: string, subtaskId: string): SubtaskState | undefined;
  /** The attempt asked for a child: it is alive and at work (its acknowledgement, its progress). */
  waiting(attempt: Attempt): void;
  /** Records the child (`subtask.delegated`) and queues it: its state. */
  addChild(parent: Attempt, child: Subtask): SubtaskState;
  /** Sends `body` straight to the agent. */
  answer(agentId: string, body: DelegatedBody): void;
  /** A change of the wait-for graph between agents, for `waitForCycles`. */
  edge(edge: WaitForEdge): void;
  /** Runs `work` as an input of its own (the engine's `serial`). */
  serial(work: () => void): void;
}

/** Children within children at most: a chain deeper than this is refused (a handler that delegates itself for ever). */
export const MAX_DELEGATION_DEPTH = 8;
/** Children one task may have at most: a handler (or an agent) that asks for more is refused. */
export const MAX_CHILDREN_PER_TASK = 10_000;
/** Longest child id (`PARENT/CHILD`): what the wire carries. */
const MAX_CHILD_ID = 256;
/** Capable agents a waiter on a queued child is drawn to wait for, at most: one is enough to close a cycle. */
const MAX_EDGES_PER_CHILD = 4;
/**
 * The wait-for graph is looked at again this often while anything waits, besides at every ask and
 * every end: agents fill and free their slots without asking anything. A circular wait counts only
 * once it persists far longer (`waitForCycles`, 120 s by default).
 */
const WAIT_REFRESH_MS = 1000;

/**
 * Children of running attempts (`context.delegate`) and the waits they make.
 *
 * An ask (`delegate`) names the parent's attempt, which must be the asking agent's and live; the
 * child `PARENT/CHILD` is made at the first ask (recorded, queued one priority above its parent,
 * so that the slots held by waiting parents come free first) and answered at every ask once it has
 * ended, and pushed to the attempts waiting for it when it ends. An ask that cannot be granted (not
 * the agent's attempt, a malformed child, too deep, too many) is answered with why.
 *
 * Waits: looked at after every input that asked or ended something, and once a second while
 * anything waits. An agent is **blocked** when each of its slots holds an attempt waiting for a child. A
 * blocked agent waits for (a wait-for edge) the agent of each attempt of such a child when that
 * agent is blocked too, and, for a child nobody runs yet, for the live agents able to run it when
 * all of them are blocked (a few of them: one closes a cycle). A cycle of blocked agents is a
 * circular wait nothing inside it can end: `waitForCycles` reports it once it persisted, and
 * healing aborts one waiter. Work that still moves (a child running, a capable agent with a slot
 * that will come free) draws no edge, so a busy team is not taken for a deadlocked one.
 */
export class Delegations {
  /** The children each waiting attempt asked for that have not ended. */
  private readonly waits = new Map<Attempt, Set<SubtaskState>>();
  /** The attempts waiting for each child. */
  private readonly waiters = new Map<SubtaskState, Set<Attempt>>();
  /** The wait-for edges last reported, `from NUL to`. */
  private edges = new Set<string>();
  /** An ask or an end changed the waits since they were last looked at. */
  private dirty = false;
  private refresh: Subscription | undefined;

  constructor(private readonly host: DelegationHost) {}

  /** An ask from `from`: true when it made a child (there is new work to dispatch). */
  ask(body: DelegateBody, from: string): boolean {
    const taskId = body.taskId ?? '';
    const name = typeof body.subtask?.id === 'string' ? body.subtask.id : '';
    const answer = (outcome: Pick<DelegatedBody, 'ok' | 'value' | 'error'>): void =>
      this.host.answer(from, { ...(body.taskId === undefined ? {} : { taskId: body.taskId }), subtaskId: body.subtaskId, attempt: body.attempt, childId: name, ...outcome });
    const refuse = (error: string): false => {
      answer({ ok: false, error });
      return false;
    };
    const parent = this.host.subtask(taskId, body.subtaskId);
    const attempt = parent?.attempts.find(a => a.token === body.attempt && a.agentId === from);
    if (parent === undefined || attempt === undefined) return refuse(`attempt ${body.attempt} of ${body.subtaskId} is not ${from}'s to delegate from (it ended, or went elsewhere)`);
    this.host.waiting(attempt);
    if (body.tooBig !== undefined) return refuse(`the child's ${body.tooBig}`);
    const problem = subtaskProblem(body.subtask);
    if (problem !== undefined) return refuse(`the child ${problem}`);
    const id = `${parent.subtask.id}/${name}`;
    let child = this.host.subtask(taskId, id);
    let made = false;
    if (child === undefined) {
      const entry = parent.task.entry;
      if (id.length > MAX_CHILD_ID) return refuse(`the child's id ${JSON.stringify(id.slice(0, 64))}… is over ${MAX_CHILD_ID} characters`);
      if (depthOf(parent) >= MAX_DELEGATION_DEPTH) return refuse(`children are nested ${MAX_DELEGATION_DEPTH} deep at most`);
      if (entry.children.length >= MAX_CHILDREN_PER_TASK) return refuse(`task ${parent.task.task.id} has ${MAX_CHILDREN_PER_TASK} children, the most it may have`);
      const priority = body.subtask.priority ?? (parent.subtask.priority ?? 0) + 1;
      child = this.host.addChild(attempt, { ...body.subtask, id, priority });
      made = true;
    } else if (child.entry.parent !== parent.subtask.id) {
      return refuse(`${JSON.stringify(id)} is a subtask of task ${parent.task.task.id} already, not a child of ${parent.subtask.id}`);
    }
    const status = child.entry.status;
    if (status === 'done' || status === 'failed') {
      answer(outcomeOf(child));
      return made;
    }
    let asked = this.waits.get(attempt);
    if (asked === undefined) this.waits.set(attempt, (asked = new Set()));
    asked.add(child);
    this.dirty = true;
    let waiting = this.waiters.get(child);
    if (waiting === undefined) this.waiters.set(child, (waiting = new Set()));
    waiting.add(attempt);
    this.armRefresh();
    return made;
  }

  /** The subtask ended (accepted or failed): the attempts waiting for it get its outcome. */
  ended(state: SubtaskState): void {
    const waiting = this.waiters.get(state);
    if (waiting === undefined) return;
    this.waiters.delete(state);
    this.dirty = true;
    const parentId = state.entry.parent as string;
    const name = state.subtask.id.slice(parentId.length + 1);
    for (const attempt of waiting) {
      const taskId = attempt.state.task.task.id;
      this.host.answer(attempt.agentId, { taskId, subtaskId: parentId, attempt: attempt.token, childId: name, ...outcomeOf(state) });
      const asked = this.waits.get(attempt);
      asked?.delete(state);
      if (asked?.size === 0) this.waits.delete(attempt);
    }
  }

  /** The attempt ended: it waits for nothing any more (its children go on: a later attempt finds them). */
  attemptEnded(attempt: Attempt): void {
    const asked = this.waits.get(attempt);
    if (asked === undefined) return;
    this.waits.delete(attempt);
    this.dirty = true;
    for (const child of asked) {
      const waiting = this.waiters.get(child);
      waiting?.delete(attempt);
      if (waiting?.size === 0) this.waiters.delete(child);
    }
  }

  /**
   * Reports the wait-for graph as it stands, as `wait` and `release` edges against what was
   * reported before: an edge that stays is not reported again (its cycle keeps its age). Only when
   * an ask or an end changed the waits, unless `always` (the periodic look, for what changes
   * without them: slots that fill and free, agents that come and go).
   */
  settle(always = false): void {
    if (!always && !this.dirty) return;
    this.dirty = false;
    if (this.waits.size === 0 && this.edges.size === 0) return;
    const next = this.currentEdges();
    for (const edge of this.edges) if (!next.has(edge)) this.host.edge(edgeOf('release', edge));
    for (const edge of next) if (!this.edges.has(edge)) this.host.edge(edgeOf('wait', edge));
    this.edges = next;
  }

  /** Releases the refresh timer. */
  stop(): void {
    this.refresh?.unsubscribe();
    this.refresh = undefined;
  }

  private armRefresh(): void {
    if (this.refresh !== undefined) return;
    this.refresh = this.host.scheduler.schedule(() => {
      this.refresh = undefined;
      this.host.serial(() => {
        this.settle(true);
        if (this.waits.size > 0) this.armRefresh();
      });
    }, WAIT_REFRESH_MS);
  }

  private currentEdges(): Set<string> {
    const { agents } = this.host;
    const edges = new Set<string>();
    const blocked = new Map<AgentRecord, boolean>();
    const isBlocked = (record: AgentRecord | undefined): record is AgentRecord => {
      if (record === undefined) return false;
      let is = blocked.get(record);
      if (is === undefined) {
        is = record.status === 'live' && record.inFlight.size > 0 && record.inFlight.size >= agents.slotsOf(record);
        if (is) for (const attempt of record.inFlight) if (!this.waits.has(attempt)) is = false;
        blocked.set(record, is);
      }
      return is;
    };
    for (const [attempt, children] of this.waits) {
      const from = agents.get(attempt.agentId);
      if (!isBlocked(from)) continue;
      for (const child of children) {
        if (child.attempts.length > 0) {
          for (const other of child.attempts) {
            const to = agents.get(other.agentId);
            if (isBlocked(to)) edges.add(`${from.id}\u0000${to.id}`);
          }
          continue;
        }
        const capable = agents.capableLive(child.subtask);
        if (capable.length === 0 || !capable.every(isBlocked)) continue;
        for (const to of capable.slice(0, MAX_EDGES_PER_CHILD)) edges.add(`${from.id}\u0000${to.id}`);
      }
    }
    return edges;
  }
}

/** How deep the subtask sits among children: 0 for one of the task's own. */
function depthOf(state: SubtaskState): number {
  const subtasks = state.task.entry.subtasks;
  let depth = 0;
  for (let parent = state.entry.parent; parent !== undefined; parent = subtasks[parent]?.parent) depth++;
  return depth;
}

function outcomeOf(child: SubtaskState): Pick<DelegatedBody, 'ok' | 'value' | 'error'> {
  return child.entry.status === 'done' ? { ok: true, value: child.entry.value } : { ok: false, error: child.entry.reason ?? 'failed' };
}

function edgeOf(type: WaitForEdge['type'], edge: string): WaitForEdge {
  const at = edge.indexOf('\u0000');
  return { type, from: edge.slice(0, at), to: edge.slice(at + 1) };
}
