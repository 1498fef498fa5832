import { PhiAccrualDetector, PhiSettings, type PhiAccrualDetectorOptions } from '../operators/phiAccrualDetector.js';
import type { Task } from '../streams/task.js';
import type { CoordinationEvent } from './events.js';
import type { SettledSubtasks } from './ledger.js';
import { attentionOf } from './swarmAttention.js';
import { TaskColumns } from './swarmColumns.js';
import { packIds, type AgentSample, type SubtaskColumns } from './swarmWire.js';
import { compareTasks, type AgentRow, type AgentState, type AttentionItem, type EdgeRow, type SubtaskRow, type SubtaskState, type SwitchRow, type TaskRow, type TaskState, type TimelineEntry, type TopologyView } from './swarmRows.js';

export interface SwarmViewOptions {
  /** The detector's settings, for the phi shown (the coordinator's own are used by `serve`). */
  readonly phi?: PhiAccrualDetectorOptions;
  /** Finished tasks remembered (with their subtasks and timelines); older ones are forgotten. Default 20. */
  readonly keepTasks?: number;
  /** Timeline entries kept per subtask (the first ones and the last ones). Default 32. */
  readonly timelineLimit?: number;
}

/** An agent as the view holds it (mutable; rows are made from it). */
/** What a task's result says of its subtasks (see `SwarmView.taskEnded`). */
export interface TaskOutcome extends SettledSubtasks {
  /** When it finished, in the view's clock. */
  readonly finishedAt?: number;
}

class AgentEntry {
  state: AgentState = 'alive';
  detail: string | undefined;
  since: number;
  lastBeatAt: number | null = null;
  usage = 0;
  running = 0;
  incarnation = -1;
  detector: PhiAccrualDetector;
  readonly history: (number | null)[] = [];
  readonly transitions: { state: AgentState; at: number; detail?: string }[] = [];

  constructor(
    readonly id: string,
    public capabilities: readonly string[],
    public slots: number,
    settings: PhiSettings,
    at: number,
  ) {
    this.since = at;
    this.detector = new PhiAccrualDetector(settings);
  }
}

class TaskEntry {
  state: TaskState = 'queued';
  completed = 0;
  failed = 0;
  /** Subtasks with an attempt out now: what the attention strip looks through (not all 50,000). */
  readonly active = new Set<SubtaskEntry>();
  queuePosition: number | null = null;
  startedAt: number | null = null;
  finishedAt: number | null = null;
  protocol: string | null = null;
  error: string | undefined;
  /** Durations of completed attempts: their mean tells an overdue one. */
  doneMs = 0;
  done = 0;
  /** Its subtasks in the task's order, and by id. */
  readonly entries: SubtaskEntry[] = [];
  readonly byId = new Map<string, SubtaskEntry>();
  /** Queued since the last changes: its subtasks go as columns, not as 50,000 changed rows. */
  fresh = true;
  /** Its rows as columns, kept until one of them changes (a finished task's, for every page that opens). */
  columns: SubtaskColumns | undefined;
  /** Its rows as typed columns, written at every change: what `columns` is encoded from. */
  readonly rows: TaskColumns;

  constructor(
    readonly id: string,
    readonly submittedAt: number,
    subtaskIds: readonly string[],
  ) {
    this.rows = new TaskColumns(id, packIds(subtaskIds), subtaskIds.length, submittedAt);
  }
}

class SubtaskEntry {
  state: SubtaskState = 'pending';
  agent: string | null = null;
  attempt: number | null = null;
  attempts = 0;
  progress = 0;
  hedged = false;
  /**
   * Attempts out now (a hedged subtask has two). Shared and empty while none is out: most of a
   * task's 50,000 subtasks are waiting or finished, and a map each is 100 bytes for every page of
   * the heap the collector goes through.
   */
  out: Map<number, Attempt> = NO_ATTEMPT;
  reason: string | undefined;
  readonly timeline: TimelineEntry[] = [];
  changed = 0;
  /** The group of the attention strip it waits in. */
  waitingIn: WaitingGroup | undefined;

  readonly taskId: string;

  constructor(
    readonly id: string,
    readonly task: TaskEntry,
    /** Its row in the task (its place in `task.entries` and `task.rows`). */
    readonly index: number,
    public since: number,
  ) {
    this.taskId = task.id;
  }
}

interface Attempt {
  readonly agent: string;
  readonly at: number;
}

/** The attempts of a subtask with none out (never written: `assigned` gives it a map of its own). */
const NO_ATTEMPT: Map<number, Attempt> = new Map();

/** Subtasks of a task waiting for a capable agent, for one reason. */
interface WaitingGroup {
  readonly taskId: string;
  readonly reason: string;
  readonly at: number;
  failsAt: number;
  readonly subtasks: Set<SubtaskEntry>;
}

const key = (taskId: string, subtaskId: string): string => `${taskId}\u0000${subtaskId}`;
const round = (phi: number): number => (Number.isFinite(phi) ? Math.round(phi * 100) / 100 : 1e6);

/**
 * Everything a service shows of itself, kept from what it sees: coordination events, heartbeats
 * and progress taken off the coordinator's inbox, assignment routes, tasks queued and ended.
 * Bounded: finished tasks beyond `keepTasks` are forgotten with their subtasks, timelines keep at
 * most `timelineLimit` entries, agents that left are forgotten once their tasks have ended.
 * Changes are collected until `changes()` takes them: one batch for every watcher.
 *
 * @example
 * const view = new SwarmView(() => Date.now());
 * view.taskQueued(task); view.taskStarted(task.id);
 * coordinator.run$(task).subscribe(e => view.event(e, task.id));
 * view.taskRows(); // [{ id: task.id, state: 'running', progress: …, … }]
 */
export class SwarmView {
  private readonly agents = new Map<string, AgentEntry>();
  private readonly tasks = new Map<string, TaskEntry>();
  /**
   * A subtask with attempts out, by its id (a progress report names the subtask and the attempt,
   * not the task): the last assigned under the id; another task's subtask of the same id is
   * looked for only when this one does not hold the attempt. No key is built per report.
   */
  private readonly outById = new Map<string, SubtaskEntry>();
  /** Edges by where they start, then where they end (no key is built per assignment). */
  private readonly edges = new Map<string, Map<string, { readonly from: string; readonly to: string; count: number; at: number }>>();
  private readonly switches: SwitchRow[] = [];
  private readonly healing = new Map<string, AttentionItem>();
  /** Subtasks waiting for an agent that can run them, by task and reason (what the strip names). */
  private readonly waiting = new Map<string, WaitingGroup>();
  private readonly quorum: AttentionItem[] = [];
  private protocol: string | null = null;
  private readonly settings: PhiSettings;
  private readonly keepTasks: number;
  private readonly timelineLimit: number;
  private generation = 0;
  private readonly dirtyAgents = new Set<AgentEntry>();
  private readonly dirtyTasks = new Set<TaskEntry>();
  private readonly dirtySubtasks = new Set<SubtaskEntry>();
  private readonly freshTasks = new Set<TaskEntry>();
  private removedTasks: string[] = [];
  /** A sample was taken since the last changes: every agent's numbers go with them. */
  private sampled = false;
  private samples = 0;
  /** Samples since gone agents were last looked for (once a minute). */
  private sinceForgot = 0;
  private topologyChanged = false;

  constructor(
    private readonly now: () => number,
    { phi = {}, keepTasks = 20, timelineLimit = 32 }: SwarmViewOptions = {},
  ) {
    if (!(Number.isInteger(keepTasks) && keepTasks >= 1)) throw new RangeError(`keepTasks must be an integer >= 1, got ${keepTasks}`);
    if (!(Number.isInteger(timelineLimit) && timelineLimit >= 4)) throw new RangeError(`timelineLimit must be an integer >= 4, got ${timelineLimit}`);
    this.settings = new PhiSettings(phi);
    this.keepTasks = keepTasks;
    this.timelineLimit = timelineLimit;
  }

  // ---- what happens -------------------------------------------------------------------------

  connected(agentId: string, capabilities: readonly string[], slots: number): void {
    const at = this.now();
    const old = this.agents.get(agentId);
    const entry = new AgentEntry(agentId, capabilities, slots, this.settings, at);
    if (old !== undefined) entry.history.push(...old.history);
    if (old !== undefined) entry.transitions.push(...old.transitions);
    this.transition(entry, 'alive', at, 'connected');
    this.agents.set(agentId, entry);
    this.dirtyAgents.add(entry);
  }

  disconnected(agentId: string): void {
    const entry = this.agents.get(agentId);
    if (entry === undefined || entry.state === 'down') return;
    this.setAgent(entry, 'gone', 'its connection closed');
  }

  heartbeat(agentId: string, load: number, incarnation: number): void {
    const entry = this.agents.get(agentId);
    if (entry === undefined) return;
    const at = this.now();
    // A new process under the id: its rhythm says nothing of the old one's.
    if (incarnation !== entry.incarnation && entry.incarnation !== -1) entry.detector = new PhiAccrualDetector(this.settings);
    entry.incarnation = incarnation;
    entry.detector.heartbeat(at);
    entry.lastBeatAt = at;
    entry.usage = load;
    // Heard from again: a closed connection was replaced, a suspicion was false. A verdict of
    // `down` stands until the coordinator takes the agent back (or it reconnects).
    // Beats, usage and phi are sent with the once-a-second sample, not at every beat.
    if (entry.state === 'gone' || entry.state === 'suspected') this.setAgent(entry, 'alive', undefined);
  }

  /**
   * A progress report of an attempt from `from`. Progress 0 is an acknowledgement: the first one
   * is the timeline's `acknowledged`, repeats are not recorded; progress of the same attempt in a
   * row is one entry.
   */
  progress(subtaskId: string, attempt: number, progress: number, from: string): void {
    const entry = this.withAttempt(subtaskId, attempt);
    const out = entry?.out.get(attempt);
    // Only the agent's own reports count (as for the coordinator): a relay's are noise.
    if (entry === undefined || out === undefined || from !== out.agent) return;
    const at = this.now();
    const last = entry.timeline[entry.timeline.length - 1];
    if (progress === 0) {
      if (entry.timeline.some(e => e.step === 'acknowledged' && e.attempt === attempt)) return;
      this.record(entry, { at, step: 'acknowledged', attempt, agent: out.agent });
    } else if (last !== undefined && last.step === 'progress' && last.attempt === attempt) entry.timeline[entry.timeline.length - 1] = { at, step: 'progress', attempt, detail: `${Math.round(progress * 100)}%` };
    else this.record(entry, { at, step: 'progress', attempt, detail: `${Math.round(progress * 100)}%` });
    // The row changes only if its progress does (an acknowledgement is on the timeline alone).
    const shown = Math.max(0, Math.min(1, progress));
    if (attempt === entry.attempt && shown !== entry.progress) {
      entry.progress = shown;
      this.touch(entry);
    } else entry.changed = ++this.generation;
  }

  /** An assignment left the coordinator along `path` (first hop first): the topology as used. */
  routed(path: readonly string[]): void {
    const at = this.now();
    let from = 'coordinator';
    for (const to of path) {
      let out = this.edges.get(from);
      if (out === undefined) this.edges.set(from, (out = new Map()));
      const edge = out.get(to);
      if (edge === undefined) {
        out.set(to, { from, to, count: 1, at });
        this.topologyChanged = true; // a new edge at once; counts with the once-a-second sample
      } else {
        edge.count++;
        edge.at = at;
      }
      from = to;
    }
  }

  taskQueued(task: Task): void {
    const at = this.now();
    const entry = new TaskEntry(task.id, at, task.subtasks.map(s => s.id));
    this.forgetTask(task.id);
    this.tasks.set(task.id, entry);
    for (const subtask of task.subtasks) {
      const s = new SubtaskEntry(subtask.id, entry, entry.entries.length, at);
      entry.byId.set(subtask.id, s);
      entry.entries.push(s);
    }
    this.freshTasks.add(entry);
    this.dirtyTasks.add(entry);
  }

  /** The queue now, next first: sets every queued task's position. */
  queue(taskIds: readonly string[]): void {
    taskIds.forEach((id, i) => {
      const entry = this.tasks.get(id);
      if (entry !== undefined && entry.queuePosition !== i + 1) {
        entry.queuePosition = i + 1;
        this.dirtyTasks.add(entry);
      }
    });
  }

  taskStarted(taskId: string): void {
    const entry = this.tasks.get(taskId);
    if (entry === undefined) return;
    entry.state = 'running';
    entry.queuePosition = null;
    entry.startedAt = this.now();
    // Under the protocol in force (until its own events say otherwise).
    entry.protocol ??= this.protocol;
    this.dirtyTasks.add(entry);
  }

  /** The protocol in force changed: every running task runs under it now. */
  private protocolNow(protocol: string): void {
    this.protocol = protocol;
    for (const t of this.tasks.values()) {
      if (t.state !== 'running' || t.protocol === protocol) continue;
      t.protocol = protocol;
      this.dirtyTasks.add(t);
    }
  }

  /**
   * Subtasks that settled where the view did not see them (before a coordinator restarted): shown
   * done or failed (with the reason) at `at`; the others stay as they are.
   */
  settle(taskId: string, settled: SettledSubtasks, at = this.now()): void {
    const entry = this.tasks.get(taskId);
    if (entry === undefined) return;
    for (const s of entry.entries) {
      if (s.state === 'done' || s.state === 'failed') continue;
      if (s.id in settled.results) this.endSubtask(entry, s, 'done', at, undefined);
      else if (s.id in settled.failed) this.endSubtask(entry, s, 'failed', at, settled.failed[s.id]);
    }
  }

  /**
   * The task ended: `done` (every subtask completed), `failed`, `cancelled`; unfinished subtasks
   * fail with `error`. `outcome` (its result) settles what the view did not see end: the subtasks
   * a coordinator that restarted had settled before (kept in its journal), as they ended, and when.
   */
  taskEnded(taskId: string, state: 'done' | 'failed' | 'cancelled', error?: string, outcome?: TaskOutcome): void {
    const entry = this.tasks.get(taskId);
    if (entry === undefined) return;
    const at = outcome?.finishedAt ?? this.now();
    entry.state = state;
    entry.queuePosition = null;
    entry.finishedAt = at;
    if (error !== undefined) entry.error = error;
    if (outcome !== undefined) this.settle(taskId, outcome, at);
    for (const s of entry.entries) {
      if (s.state === 'done' || s.state === 'failed') continue;
      this.endSubtask(entry, s, 'failed', at, error ?? 'the task ended');
    }
    entry.active.clear();
    this.dirtyTasks.add(entry);
    for (const [id, group] of this.waiting) if (group.taskId === taskId) this.waiting.delete(id);
    this.trim();
  }

  event(e: CoordinationEvent, taskId: string): void {
    const task = this.tasks.get(taskId);
    switch (e.type) {
      case 'agent.joined':
      case 'agent.recovered':
      case 'agent.restarted': {
        // An in-process agent of the coordinator: known from its first join.
        if (e.type === 'agent.joined' && !this.agents.has(e.agentId)) this.connected(e.agentId, [], 1);
        const a = this.agents.get(e.agentId);
        if (a !== undefined && a.state !== 'gone') this.setAgent(a, 'alive', undefined);
        return;
      }
      case 'agent.suspected':
        return this.agentState(e.agentId, 'suspected', e.detail);
      case 'agent.down':
        return this.agentState(e.agentId, 'down', e.reason);
      case 'agent.quarantined':
        return this.agentState(e.agentId, 'quarantined', e.reason);
      case 'agent.refused':
        return;
      case 'subtask.delegated': {
        // A child of the task: a row more, pending.
        if (task === undefined || task.byId.has(e.subtaskId)) return;
        const s = new SubtaskEntry(e.subtaskId, task, task.rows.append(e.subtaskId, e.at), e.at);
        task.byId.set(s.id, s);
        task.entries.push(s);
        this.record(s, { at: e.at, step: 'delegated', agent: e.agentId, attempt: e.attempt, detail: `asked by ${e.parentId}` });
        this.dirtyTasks.add(task);
        return this.touch(s);
      }
      case 'subtask.assigned': {
        const s = task?.byId.get(e.subtaskId);
        if (s === undefined || task === undefined) return;
        const hedge = s.state === 'running' && s.out.size > 0;
        task.active.add(s);
        s.state = 'running';
        if (s.out === NO_ATTEMPT) s.out = new Map();
        s.out.set(e.attempt, { agent: e.agentId, at: e.at });
        s.hedged = s.out.size > 1;
        s.agent = e.agentId;
        s.attempt = e.attempt;
        s.attempts++;
        s.progress = 0;
        s.since = e.at;
        this.outById.set(s.id, s);
        this.record(s, { at: e.at, step: hedge ? 'hedged' : 'assigned', agent: e.agentId, attempt: e.attempt, ...(e.hops > 1 ? { detail: `${e.hops} hops` } : {}) });
        this.running(e.agentId, 1);
        this.unwait(s);
        this.dirtyTasks.add(task);
        return this.touch(s);
      }
      case 'subtask.completed': {
        const s = task?.byId.get(e.subtaskId);
        if (s === undefined || task === undefined) return;
        const started = s.out.get(e.attempt)?.at;
        if (started !== undefined) {
          task.doneMs += e.at - started;
          task.done++;
        }
        this.record(s, { at: e.at, step: 'completed', agent: e.agentId, attempt: e.attempt });
        return this.endSubtask(task, s, 'done', e.at, undefined);
      }
      case 'subtask.failed': {
        const s = task?.byId.get(e.subtaskId);
        if (s === undefined || task === undefined) return;
        this.record(s, { at: e.at, step: 'failed', detail: e.reason });
        return this.endSubtask(task, s, 'failed', e.at, e.reason);
      }
      case 'subtask.requeued':
      case 'subtask.rejected': {
        const s = task?.byId.get(e.subtaskId);
        if (s === undefined || task === undefined) return;
        const previous = e.attempt; // requeued: the attempt that ended
        const out = s.out.get(previous) ?? (e.type === 'subtask.requeued' && s.attempt !== null ? s.out.get(s.attempt) : undefined);
        if (e.type === 'subtask.requeued') {
          for (const [attempt, o] of s.out) if (o === out || attempt === previous) this.release(s, attempt);
          if (s.out.size === 0 && s.state === 'running') {
            s.state = 'pending';
            task.active.delete(s);
            this.dirtyTasks.add(task);
          }
          s.hedged = s.out.size > 1;
        }
        this.record(s, { at: e.at, step: e.type === 'subtask.requeued' ? 'requeued' : 'rejected', attempt: e.attempt, detail: e.reason, ...(e.type === 'subtask.rejected' ? { agent: e.agentId } : {}) });
        s.reason = e.reason;
        return this.touch(s);
      }
      case 'subtask.waiting': {
        const id = key(taskId, e.reason);
        let group = this.waiting.get(id);
        if (group === undefined) this.waiting.set(id, (group = { taskId, reason: e.reason, at: e.at, failsAt: e.failsAt, subtasks: new Set() }));
        group.failsAt = e.failsAt;
        for (const subtaskId of e.subtaskIds) {
          const s = task?.byId.get(subtaskId);
          if (s === undefined || (s.state !== 'pending' && s.state !== 'waiting') || group.subtasks.has(s)) continue;
          this.unwait(s);
          s.state = 'waiting';
          s.reason = e.reason;
          s.waitingIn = group;
          group.subtasks.add(s);
          this.record(s, { at: e.at, step: 'waiting', detail: e.reason });
          this.touch(s);
        }
        return;
      }
      case 'fault.detected':
        return;
      case 'healing.attempted': {
        const f = e.fault;
        this.healing.set(`${f.kind}:${f.agentId ?? f.link ?? ''}`, { kind: 'healing', text: `healing ${f.kind}${f.agentId === undefined ? '' : ` of ${f.agentId}`}: ${e.strategy} (attempt ${e.attempt})`, at: e.at, ...(f.agentId === undefined ? {} : { agentId: f.agentId }), taskId });
        return;
      }
      case 'healing.succeeded':
      case 'healing.exhausted':
      case 'healing.skipped':
        if (e.type === 'healing.skipped') return;
        this.healing.delete(`${e.fault.kind}:${e.fault.agentId ?? e.fault.link ?? ''}`);
        return;
      case 'healing.failed':
      case 'healing.fallback':
      case 'healing.fallback_refused':
        return;
      case 'protocol.selected':
        this.protocolNow(e.protocol);
        if (task !== undefined) task.protocol = e.protocol;
        this.topologyChanged = true;
        return;
      case 'protocol.switched':
        this.protocolNow(e.switch.to);
        if (task !== undefined) task.protocol = e.switch.to;
        this.switches.push({ at: e.at, from: e.switch.from, to: e.switch.to, reason: e.switch.reason, scores: e.switch.scores });
        if (this.switches.length > 20) this.switches.shift();
        // Routes change with the protocol: what is seen from now on is the new topology.
        this.edges.clear();
        this.topologyChanged = true;
        return;
      case 'protocol.repaired':
        this.topologyChanged = true;
        return;
      case 'consensus.decided':
        if (e.outcome !== 'accepted' && e.outcome !== 'rejected') {
          this.quorum.push({ kind: 'quorum', text: `consensus on ${e.proposalId}: ${e.outcome} (${e.yes} yes, ${e.no} no)`, at: e.at, taskId });
          if (this.quorum.length > 5) this.quorum.shift();
        }
        return;
      case 'task.completed':
        if (task !== undefined) task.protocol = e.result.protocol;
        return;
    }
  }

  // ---- what is shown ------------------------------------------------------------------------

  /**
   * Suspects every alive agent whose phi has reached the detector's threshold (call often: O(1)
   * per agent between beats). The coordinator judges agents only while a task runs; this says the
   * same between tasks, and a moment sooner or later than the coordinator's own verdict within one.
   */
  watch(): void {
    const at = this.now();
    for (const a of this.agents.values()) {
      if (a.state !== 'alive' || a.detector.isAvailable(at)) continue;
      const silent = a.lastBeatAt === null ? 0 : at - a.lastBeatAt;
      this.setAgent(a, 'suspected', `phi ${this.phiOf(a, at)?.toFixed(2) ?? '?'} ≥ ${this.settings.threshold}: no beat for ${silent} ms`);
    }
  }

  /**
   * Once a second: phi of every agent into its history; every agent's row (phi, last beat, usage,
   * running) into the next changes, and every fifth time the edges' counts (they only thicken the
   * graph's lines; a new edge goes at once): with 1,000 agents the graph is 1,000 edges to send
   * and draw, which a page need not do every second.
   */
  sample(): void {
    const at = this.now();
    if (this.edges.size > 0 && this.samples++ % 5 === 0) this.topologyChanged = true;
    for (const a of this.agents.values()) {
      a.history.push(this.phiOf(a, at));
      if (a.history.length > 60) a.history.shift();
    }
    if (++this.sinceForgot >= 60) {
      this.sinceForgot = 0;
      this.forgetGone();
    }
    this.sampled = true;
  }

  get protocolName(): string | null {
    return this.protocol;
  }

  /**
   * Phi over the last minute of the agents that have one (not those never monitored), to a tenth
   * (what a sparkline shows): `[id, [phi | null, …]]`, oldest first.
   */
  phiHistories(): [string, (number | null)[]][] {
    const out: [string, (number | null)[]][] = [];
    for (const a of this.agents.values()) {
      if (!a.history.some(v => v !== null)) continue;
      out.push([a.id, a.history.map(v => (v === null ? null : Math.round(v * 10) / 10))]);
    }
    return out;
  }

  agentRows(history: boolean): AgentRow[] {
    const at = this.now();
    return [...this.agents.values()].map(a => this.agentRow(a, at, history));
  }

  taskRows(): TaskRow[] {
    return [...this.tasks.values()].map(t => this.taskRow(t));
  }

  subtaskRows(): SubtaskRow[] {
    return [...this.tasks.values()].flatMap(t => t.entries.map(s => this.subtaskRow(s)));
  }

  /** The subtask rows of every task, or of those named (those known), as columns. */
  subtaskColumns(taskIds?: readonly string[]): SubtaskColumns[] {
    const tasks = taskIds === undefined ? [...this.tasks.values()] : taskIds.flatMap(id => this.tasks.get(id) ?? []);
    return tasks.map(t => this.columnsOf(t));
  }

  /** Ids of the tasks held, in the order a person reads them ({@link compareTasks}): running, queued, finished. */
  taskIdsInOrder(): string[] {
    return this.taskRows().sort(compareTasks).map(t => t.id);
  }

  /** Subtasks of the tasks held, by state (without making their rows: a scrape of /metrics). */
  subtaskCounts(): Record<SubtaskState, number> {
    const counts: Record<SubtaskState, number> = { pending: 0, waiting: 0, running: 0, done: 0, failed: 0 };
    for (const t of this.tasks.values()) for (const s of t.entries) counts[s.state]++;
    return counts;
  }

  /** The protocol, the switches and (unless `edges` is false) the edges seen since the last switch. */
  topology(edges = true): TopologyView {
    const rows: EdgeRow[] = [];
    if (edges) for (const out of this.edges.values()) for (const e of out.values()) rows.push({ ...e });
    return { protocol: this.protocol, edges: rows, switches: this.switches.slice() };
  }

  attention(): AttentionItem[] {
    const at = this.now();
    const agents = [...this.agents.values()].map(a => this.agentRow(a, at, false));
    const overdue: AttentionItem[] = [];
    const hedged: AttentionItem[] = [];
    for (const t of this.tasks.values()) {
      if (t.state !== 'running' || t.active.size === 0) continue;
      const mean = t.done > 0 ? t.doneMs / t.done : Infinity;
      const limit = Math.max(5000, 3 * mean);
      for (const s of t.active) {
        const id = s.id;
        if (s.hedged && hedged.length < 50) hedged.push({ kind: 'hedged', text: `${id} of ${t.id}: a backup attempt runs on ${s.agent ?? '?'}`, at: s.since, taskId: t.id, subtaskIds: [id] });
        else if (at - s.since > limit && overdue.length < 50) overdue.push({ kind: 'overdue', text: `${id} of ${t.id} has run ${Math.round((at - s.since) / 1000)} s on ${s.agent ?? '?'} (mean ${Number.isFinite(mean) ? `${Math.round(mean)} ms` : 'unknown'})`, at: s.since, taskId: t.id, subtaskIds: [id] });
      }
    }
    const waiting: AttentionItem[] = [];
    for (const g of this.waiting.values()) {
      if (g.subtasks.size === 0) continue;
      const ids: string[] = [];
      for (const s of g.subtasks) if (ids.push(s.id) >= 20) break;
      const n = g.subtasks.size;
      const named = ids.slice(0, 5).join(', ') + (n > 5 ? ` and ${n - 5} more` : '');
      waiting.push({ kind: 'waiting', text: `${named} of ${g.taskId} ${n === 1 ? 'waits' : 'wait'}: ${g.reason}; ${n === 1 ? 'it fails' : 'they fail'} at ${new Date(g.failsAt).toISOString()} unless a capable agent joins`, at: g.at, taskId: g.taskId, subtaskIds: ids });
    }
    return attentionOf({ agents, healing: [...this.healing.values()], quorum: this.quorum, waiting, hedged, overdue, now: at });
  }

  /** The timeline of one subtask (undefined when it is not known). */
  timeline(taskId: string, subtaskId: string): readonly TimelineEntry[] | undefined {
    return this.tasks.get(taskId)?.byId.get(subtaskId)?.timeline.slice();
  }

  /** Generation of the last change to a subtask (0 if never or unknown): tells a watcher its timeline moved. */
  changedAt(taskId: string, subtaskId: string): number {
    return this.tasks.get(taskId)?.byId.get(subtaskId)?.changed ?? 0;
  }

  get currentGeneration(): number {
    return this.generation;
  }

  /**
   * Rows changed since the last call (taken: the next call starts afresh), or undefined when
   * nothing changed: agents whose state changed in full, the others' numbers as `samples` after a
   * `sample()`; tasks queued since the last call whole, as `columns`, their subtasks not among
   * the changed `subtasks` rows.
   */
  changes(): { agents: AgentRow[]; samples: AgentSample[]; tasks: TaskRow[]; columns: SubtaskColumns[]; subtasks: SubtaskRow[]; removed: string[]; topology: boolean } | undefined {
    if (this.dirtyAgents.size + this.dirtyTasks.size + this.dirtySubtasks.size + this.freshTasks.size + this.removedTasks.length === 0 && !this.topologyChanged && !this.sampled) return undefined;
    const at = this.now();
    const samples: AgentSample[] = [];
    if (this.sampled) for (const a of this.agents.values()) if (!this.dirtyAgents.has(a)) samples.push([a.id, this.phiOf(a, at), a.lastBeatAt, a.running, a.usage]);
    this.sampled = false;
    const out = {
      agents: [...this.dirtyAgents].filter(a => this.agents.get(a.id) === a).map(a => this.agentRow(a, at, false)),
      samples,
      tasks: [...this.dirtyTasks].filter(t => this.tasks.get(t.id) === t).map(t => this.taskRow(t)),
      columns: [...this.freshTasks].map(t => this.columnsOf(t)),
      subtasks: [...this.dirtySubtasks].filter(s => this.tasks.has(s.taskId)).map(s => this.subtaskRow(s)),
      removed: this.removedTasks,
      topology: this.topologyChanged,
    };
    this.dirtyAgents.clear();
    this.dirtyTasks.clear();
    this.dirtySubtasks.clear();
    this.settleFresh();
    this.removedTasks = [];
    this.topologyChanged = false;
    return out;
  }

  /** Forgets what changed without making rows of it (no one watches). */
  dropChanges(): void {
    this.dirtyAgents.clear();
    this.dirtyTasks.clear();
    this.dirtySubtasks.clear();
    this.settleFresh();
    this.removedTasks = [];
    this.topologyChanged = false;
    this.sampled = false;
  }

  private settleFresh(): void {
    for (const t of this.freshTasks) t.fresh = false;
    this.freshTasks.clear();
  }

  // ---- inside -------------------------------------------------------------------------------

  private phiOf(a: AgentEntry, at: number): number | null {
    if (a.state === 'gone' || a.state === 'down' || !a.detector.isMonitoring) return null;
    return round(a.detector.phi(at));
  }

  private agentRow(a: AgentEntry, at: number, history: boolean): AgentRow {
    return {
      id: a.id,
      state: a.state,
      phi: this.phiOf(a, at),
      lastBeatAt: a.lastBeatAt,
      slots: a.slots,
      running: a.running,
      usage: a.usage,
      capabilities: a.capabilities,
      ...(a.detail === undefined ? {} : { detail: a.detail }),
      since: a.since,
      transitions: a.transitions.slice(),
      ...(history ? { phiHistory: a.history.slice() } : {}),
    };
  }

  private taskRow(t: TaskEntry): TaskRow {
    const total = t.entries.length;
    return {
      id: t.id,
      state: t.state,
      subtasks: total,
      completed: t.completed,
      failed: t.failed,
      running: t.active.size,
      progress: total === 0 ? (t.finishedAt === null ? 0 : 1) : (t.completed + t.failed) / total,
      queuePosition: t.queuePosition,
      submittedAt: t.submittedAt,
      startedAt: t.startedAt,
      finishedAt: t.finishedAt,
      protocol: t.protocol,
      ...(t.error === undefined ? {} : { error: t.error }),
    };
  }

  private subtaskRow(s: SubtaskEntry): SubtaskRow {
    return {
      id: s.id,
      taskId: s.taskId,
      state: s.state,
      agent: s.agent,
      attempt: s.attempt,
      attempts: s.attempts,
      progress: s.state === 'done' ? 1 : s.progress,
      hedged: s.hedged,
      since: s.since,
      ...(s.reason === undefined ? {} : { reason: s.reason }),
    };
  }

  private agentState(agentId: string, state: AgentState, detail: string): void {
    const a = this.agents.get(agentId);
    if (a !== undefined) this.setAgent(a, state, detail);
  }

  private setAgent(a: AgentEntry, state: AgentState, detail: string | undefined): void {
    if (a.state !== state) {
      a.since = this.now();
      this.transition(a, state, a.since, detail);
    }
    a.state = state;
    a.detail = detail;
    this.dirtyAgents.add(a);
  }

  private transition(a: AgentEntry, state: AgentState, at: number, detail: string | undefined): void {
    a.transitions.push(detail === undefined ? { state, at } : { state, at, detail });
    if (a.transitions.length > 8) a.transitions.shift();
  }

  /** Attempts an agent holds: sent with the once-a-second sample (a busy agent changes it all the time). */
  private running(agentId: string, delta: number): void {
    const a = this.agents.get(agentId);
    if (a === undefined) return;
    a.running = Math.max(0, a.running + delta);
  }

  private release(s: SubtaskEntry, attempt: number): void {
    const out = s.out.get(attempt);
    if (out === undefined) return;
    s.out.delete(attempt);
    if (s.out.size > 0) return this.running(out.agent, -1);
    s.out = NO_ATTEMPT;
    if (this.outById.get(s.id) === s) this.outById.delete(s.id);
    this.running(out.agent, -1);
  }

  /** The subtask of that id holding that attempt now (of any running task). */
  private withAttempt(subtaskId: string, attempt: number): SubtaskEntry | undefined {
    const last = this.outById.get(subtaskId);
    if (last === undefined || last.out.has(attempt)) return last;
    for (const t of this.tasks.values()) {
      const s = t.byId.get(subtaskId);
      if (s !== undefined && s.out.has(attempt)) return s;
    }
    return undefined;
  }

  /** The subtask no longer waits (assigned, ended): out of its group in the strip. */
  private unwait(s: SubtaskEntry): void {
    if (s.waitingIn === undefined) return;
    s.waitingIn.subtasks.delete(s);
    if (s.waitingIn.subtasks.size === 0) this.waiting.delete(key(s.taskId, s.waitingIn.reason));
    s.waitingIn = undefined;
  }

  private endSubtask(task: TaskEntry, s: SubtaskEntry, state: 'done' | 'failed', at: number, reason: string | undefined): void {
    if (s.state === 'done' || s.state === 'failed') return;
    this.unwait(s);
    task.active.delete(s);
    for (const attempt of [...s.out.keys()]) this.release(s, attempt);
    s.state = state;
    s.hedged = false;
    s.since = at;
    if (reason !== undefined) s.reason = reason;
    if (state === 'done') task.completed++;
    else task.failed++;
    this.dirtyTasks.add(task);
    this.touch(s);
  }

  private record(s: SubtaskEntry, entry: TimelineEntry): void {
    s.timeline.push(entry);
    // Keep the first entries (how it started) and the latest: drop from the middle.
    if (s.timeline.length > this.timelineLimit) s.timeline.splice(this.timelineLimit >> 2, 1);
  }

  private touch(s: SubtaskEntry): void {
    s.changed = ++this.generation;
    s.task.rows.write(s.index, s);
    s.task.columns = undefined;
    // A task not yet handed out goes whole, as columns, with the next changes.
    if (!s.task.fresh) this.dirtySubtasks.add(s);
  }

  /** A task's subtask rows as columns (see {@link SubtaskColumns}), encoded again only when one changed. */
  private columnsOf(t: TaskEntry): SubtaskColumns {
    t.columns ??= t.rows.encode();
    return t.columns;
  }

  /** Forgets finished tasks beyond `keepTasks`, oldest first, and agents gone with nothing left to show. */
  private trim(): void {
    const finished = [...this.tasks.values()].filter(t => t.finishedAt !== null);
    for (const t of finished.slice(0, Math.max(0, finished.length - this.keepTasks))) this.forgetTask(t.id);
    this.forgetGone();
  }

  /** Forgets agents gone or down for a minute with nothing running (also while no task ends: ids that come and go must not pile up). */
  private forgetGone(): void {
    const at = this.now();
    for (const a of [...this.agents.values()]) {
      if ((a.state === 'gone' || a.state === 'down') && a.running === 0 && at - a.since > 60_000) this.agents.delete(a.id);
    }
  }

  private forgetTask(taskId: string): void {
    const t = this.tasks.get(taskId);
    if (t === undefined) return;
    for (const s of t.entries) {
      for (const attempt of [...s.out.keys()]) this.release(s, attempt);
      this.dirtySubtasks.delete(s);
    }
    for (const [id, group] of this.waiting) if (group.taskId === taskId) this.waiting.delete(id);
    this.tasks.delete(taskId);
    this.dirtyTasks.delete(t);
    this.freshTasks.delete(t);
    this.removedTasks.push(taskId);
  }
}
