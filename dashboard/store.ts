import type { AgentRow, AttentionItem, TaskRow, TimelineEntry, TopologyView } from '../src/swarmRows.js';
import type { AgentSample, PackedSubtasks, SubtaskColumns } from '../src/swarmWire.js';
import { SubtaskTable } from './subtaskTable.js';

/** A `state` message's body, as the service sends it (see `streams/protocol.ts`). */
export interface StateMessage {
  readonly seq: number;
  readonly full: boolean;
  readonly at: number;
  readonly protocol?: string | null;
  readonly agents?: readonly AgentRow[];
  /** Agents' once-a-second numbers (their rows otherwise unchanged). */
  readonly samples?: readonly AgentSample[];
  readonly tasks?: readonly TaskRow[];
  /** Whole tasks' subtask rows (the first state, a task queued), before the changed `subtasks`. */
  readonly columns?: readonly SubtaskColumns[];
  readonly subtasks?: PackedSubtasks;
  readonly removed?: readonly string[];
  /** Agents' phi over the last minute, `[id, [phi | null, …]]` (right after the first state). */
  readonly histories?: readonly (readonly [string, readonly (number | null)[]])[];
  readonly attention?: readonly AttentionItem[];
  readonly topology?: TopologyView;
  readonly timeline?: { readonly taskId: string; readonly subtaskId: string; readonly entries: readonly TimelineEntry[] };
}

export interface AgentEntry {
  row: AgentRow;
  /** Phi once a second, oldest first (at most 60). */
  history: (number | null)[];
}

/**
 * What the page holds: rows by id, replaced as batches come (mutable on purpose: 50,000 subtask
 * rows are not copied per batch). `version` moves at every change: what renders keys on it.
 */
export class Store {
  readonly agents = new Map<string, AgentEntry>();
  readonly tasks = new Map<string, TaskRow>();
  /**
   * By task: columns as they came (see `SubtaskTable`), turned into rows only for the few on
   * screen — 50,000 objects are not made per state.
   */
  readonly subtasks = new Map<string, SubtaskTable>();
  attention: readonly AttentionItem[] = [];
  topology: TopologyView = { protocol: null, edges: [], switches: [] };
  protocol: string | null = null;
  timeline: StateMessage['timeline'];
  version = 0;
  /** Moves when the graph's inputs move (edges, protocol, an agent's state): it is redrawn only then. */
  topologyVersion = 0;
  /** Moves when agents' rows or numbers come (their ages are shown as of then). */
  agentsVersion = 0;
  /** Server time of the last agents' numbers: ages of beats and changes are shown as of then (once a second, not every frame). */
  agentsAt = 0;
  /** Moves when task rows come. */
  tasksVersion = 0;
  /** Moves when subtask rows come: the filtered list is rebuilt only then. */
  subtasksVersion = 0;
  /** Server time of the last batch (for the lag measured). */
  lastAt = 0;
  /**
   * The earliest event time carried by the batches applied since the last render (`drawn()`
   * takes it): when two batches are drawn in one frame, the older one's changes count.
   */
  private oldestChange = Infinity;

  apply(m: StateMessage): void {
    if (m.full) {
      this.agents.clear();
      this.tasks.clear();
      this.subtasks.clear();
    }
    if (m.protocol !== undefined) this.protocol = m.protocol;
    // Removals first: a batch's rows are of tasks queued after them (an id used again).
    for (const taskId of m.removed ?? []) {
      this.tasks.delete(taskId);
      this.subtasks.delete(taskId);
    }
    if (m.full || m.agents !== undefined || m.samples !== undefined) {
      this.agentsVersion++;
      this.agentsAt = m.at;
    }
    if (m.full || m.tasks !== undefined || m.removed !== undefined) this.tasksVersion++;
    for (const row of m.agents ?? []) {
      const entry = this.agents.get(row.id);
      if (entry === undefined || entry.row.state !== row.state) this.topologyVersion++;
      if (entry === undefined) this.agents.set(row.id, { row, history: row.phiHistory?.slice() ?? [] });
      else entry.row = row;
    }
    for (const [id, phi, lastBeatAt, running, usage] of m.samples ?? []) {
      const entry = this.agents.get(id);
      if (entry === undefined) continue;
      entry.row = { ...entry.row, phi, lastBeatAt, running, usage };
      entry.history.push(phi);
      if (entry.history.length > 60) entry.history.shift();
    }
    for (const [id, history] of m.histories ?? []) {
      const entry = this.agents.get(id);
      if (entry !== undefined) entry.history = history.slice(-60);
    }
    if (m.histories !== undefined) this.agentsVersion++;
    for (const row of m.tasks ?? []) this.tasks.set(row.id, row);
    let oldest = Infinity;
    for (const c of m.columns ?? []) this.subtasks.set(c.taskId, new SubtaskTable(c.taskId, c));
    for (const [taskId, tuples] of m.subtasks ?? []) {
      let table = this.subtasks.get(taskId);
      if (table === undefined) this.subtasks.set(taskId, (table = new SubtaskTable(taskId)));
      for (const tuple of tuples) {
        const since = table.set(tuple);
        if (since > this.lastAt && since < oldest) oldest = since;
      }
    }
    if (m.columns !== undefined || m.subtasks !== undefined || m.removed !== undefined || m.full) this.subtasksVersion++;
    if (m.attention !== undefined) this.attention = m.attention;
    if (m.topology !== undefined) {
      this.topology = m.topology;
      this.topologyVersion++;
    }
    if (m.timeline !== undefined) this.timeline = m.timeline;
    this.oldestChange = Math.min(this.oldestChange, Number.isFinite(oldest) ? oldest : m.at);
    this.lastAt = m.at;
    this.version++;
  }

  /** The earliest change among the batches applied since the last call (what a render draws now). */
  drawn(): number {
    const oldest = this.oldestChange;
    this.oldestChange = Infinity;
    return oldest;
  }
}

export type ConnectionState =
  | { readonly status: 'asking' }
  | { readonly status: 'connecting' }
  | { readonly status: 'live' }
  | { readonly status: 'refused'; readonly error: string }
  | { readonly status: 'lost'; readonly error: string; readonly retryInMs: number };

/** The last state frame read: its length and how long parsing it took (the page's measures). */
export const lastFrame = { parseMs: 0, chars: 0 };

export interface Link {
  send(kind: 'watch' | 'cancel-task', body: unknown): void;
  close(): void;
}

/** What a connection tells the page (see {@link connect}). */
export interface Handlers {
  state(m: StateMessage): void;
  status(s: ConnectionState): void;
  cancelled(body: { taskId: string; ok: boolean; error?: string }): void;
  joined(send: Link['send']): void;
  /** The first envelope, sent right behind the hello (at every connection, reconnections too). */
  first(): [kind: 'watch', body: unknown];
}

/** A connection opened before the page could take what it says (see {@link connectEarly}). */
export interface EarlyLink {
  readonly token: string;
  readonly link: Link;
  /** From now on `handlers` hear it, first what it said until now, in order. */
  attach(handlers: Handlers): void;
}

/**
 * Opens the connection at once, keeping what it says until `attach`: the page calls it as its
 * script starts, so that the handshake with a busy coordinator (each step waits for its event
 * loop) overlaps the page's first, empty render instead of following it. Until attached, the
 * first envelope is a watch of everything.
 */
export function connectEarly(token: string): EarlyLink {
  let target: Handlers | undefined;
  const queue: (() => void)[] = [];
  const later = <A>(call: (h: Handlers, arg: A) => void) => (arg: A): void => {
    if (target !== undefined) call(target, arg);
    else queue.push(() => call(target as Handlers, arg));
  };
  const link = connect(token, {
    state: later((h, m: StateMessage) => h.state(m)),
    status: later((h, s: ConnectionState) => h.status(s)),
    cancelled: later((h, body: { taskId: string; ok: boolean; error?: string }) => h.cancelled(body)),
    joined: later((h, send: Link['send']) => h.joined(send)),
    first: () => target?.first() ?? ['watch', { live: true, subtasks: true }],
  });
  return {
    token,
    link,
    attach(handlers) {
      target = handlers;
      for (const call of queue.splice(0)) call();
    },
  };
}

/**
 * One WebSocket to the service that served the page, speaking the wire format of
 * `streams/wsCodec.ts` as a client: hello with the token and, right behind it, `handlers.first()`
 * (the `watch`); `state` batches come back.
 * A lost connection is retried with backoff (1 s doubling to 10 s); a refused token is not.
 */
export function connect(token: string, handlers: Handlers): Link {
  const id = `dashboard-${Math.random().toString(36).slice(2, 10)}`;
  let socket: WebSocket | undefined;
  let closed = false;
  let delay = 1000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const envelope = (kind: 'watch' | 'cancel-task', body: unknown): string => JSON.stringify({ v: 1, type: 'envelope', from: id, to: 'tasks', kind, body });
  const send = (kind: 'watch' | 'cancel-task', body: unknown): void => {
    if (socket?.readyState === WebSocket.OPEN) socket.send(envelope(kind, body));
  };
  const open = (): void => {
    handlers.status({ status: 'connecting' });
    const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/`);
    socket = ws;
    let refused = false;
    ws.onopen = () => {
      ws.send(JSON.stringify({ v: 1, type: 'hello', agentId: id, capabilities: [], token, role: 'client', maxFrameBytes: 512 * 1024 * 1024 }));
      ws.send(envelope(...handlers.first()));
    };
    ws.onmessage = ({ data }) => {
      const started = performance.now();
      const text = String(data);
      const message = JSON.parse(text) as { type: string; kind?: string; body?: unknown; code?: number; error?: string };
      if (message.type === 'join') {
        delay = 1000;
        handlers.status({ status: 'live' });
        handlers.joined(send);
      } else if (message.type === 'error') {
        if (message.code === 4001) {
          refused = true;
          handlers.status({ status: 'refused', error: message.error ?? 'refused' });
        }
      } else if (message.type === 'envelope' && message.kind === 'state') {
        lastFrame.parseMs = performance.now() - started;
        lastFrame.chars = text.length;
        handlers.state(message.body as StateMessage);
      }
      else if (message.type === 'envelope' && message.kind === 'cancelled') handlers.cancelled(message.body as { taskId: string; ok: boolean; error?: string });
    };
    ws.onclose = event => {
      if (closed || refused || event.code === 4001) {
        if (event.code === 4001 && !refused) handlers.status({ status: 'refused', error: event.reason || 'invalid token' });
        return;
      }
      handlers.status({ status: 'lost', error: event.reason || `connection closed (${event.code})`, retryInMs: delay });
      timer = setTimeout(open, delay);
      delay = Math.min(10_000, delay * 2);
    };
  };
  open();
  return {
    send,
    close() {
      closed = true;
      clearTimeout(timer);
      socket?.close(1000, 'left');
    },
  };
}
