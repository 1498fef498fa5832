import type { Subscription } from 'rxjs';
import type { Envelope } from '../streams/network.js';
import type { CancelledBody, CancelTaskBody, EventBody, HeartbeatBody, OutcomeBody, ProgressBody, Routed, StateBody, SubmitBody, WatchBody } from '../streams/protocol.js';
import type { Task } from '../streams/task.js';
import { WsServerNetwork, type WsServerNetworkOptions } from '../streams/wsNetwork.js';
import { createCoordinator, type Coordinator, type CoordinatorOptions } from './coordinator.js';
import type { CoordinationEvent, CoordinationResult } from './events.js';
import { httpRoutes, loadDashboard } from './serviceHttp.js';
import { ServiceMetrics, type ServiceMetricsOptions } from './serviceMetrics.js';
import { ServiceTracing } from './serviceTracing.js';
import { SwarmView } from './swarmView.js';
import { packSubtasks, type AgentSample, type SubtaskColumns } from './swarmWire.js';
import { tappedNetwork } from './tappedNetwork.js';
import { COORDINATOR } from './topology.js';

/** The node of a service that takes tasks: `rxswarm run` sends `submit` here. */
export const TASKS = 'tasks';

export interface ServiceOptions extends Omit<WsServerNetworkOptions, 'scheduler' | 'onHttpRequest'> {
  /** Coordinator options; agents come over the network (in-process ones may be added). */
  readonly coordinator?: Omit<CoordinatorOptions, 'network' | 'agents'> & Partial<Pick<CoordinatorOptions, 'agents'>>;
  /** Every coordination event of every task (connections: `service.server.events$`). */
  readonly onEvent?: (event: CoordinationEvent, taskId: string) => void;
  /** `/metrics` without the token. Default false. */
  readonly metricsPublic?: boolean;
  /** Label bounds and process metrics of `/metrics`. */
  readonly metrics?: ServiceMetricsOptions;
  /**
   * How often watchers (the dashboard, `status`) get what changed, in ms. Lower: fresher pages,
   * more frames; every change in between goes in one batch. Default 50.
   */
  readonly feedMs?: number;
  /** The version told to tracing. */
  readonly version?: string;
}

/** A client watching the service's state. */
interface Watcher {
  live: boolean;
  subtasks: boolean;
  focus: { readonly taskId: string; readonly subtaskId: string } | undefined;
  /** Generation of the focused subtask when its timeline was last sent. */
  focusSent: number;
  /**
   * What it missed while it read slowly, latest row of each id: sent in one batch once it has
   * caught up. Bounded by what the view holds (one row per agent, task, subtask).
   */
  missed: Missed | undefined;
  /** Tasks whose rows it has still to get as columns, one a tick (the first went with its first state). */
  backlog: string[];
  /** The agents' phi over the last minute and the graph's edges are still to come (the tick after its first state). */
  later: boolean;
}

interface Missed {
  readonly agents: Map<string, unknown>;
  readonly samples: Map<string, AgentSample>;
  readonly tasks: Map<string, unknown>;
  /** Whole tasks by id; rows below come after (a task queued anew replaces both). */
  readonly columns: Map<string, SubtaskColumns>;
  readonly subtasks: Map<string, unknown>;
  readonly removed: Set<string>;
  topology: boolean;
}

type Changes = NonNullable<ReturnType<SwarmView['changes']>>;

/**
 * Adds a batch to what a slow watcher missed. Removals first: within a batch they are of tasks
 * forgotten before those it carries rows of (a task queued again under its id).
 */
function miss(missed: Missed, changes: Changes): void {
  for (const taskId of changes.removed) {
    missed.removed.add(taskId);
    missed.tasks.delete(taskId);
    missed.columns.delete(taskId);
    for (const [key, row] of missed.subtasks) if ((row as { taskId: string }).taskId === taskId) missed.subtasks.delete(key);
  }
  for (const row of changes.agents) {
    missed.agents.set(row.id, row);
    missed.samples.delete(row.id);
  }
  for (const sample of changes.samples) if (!missed.agents.has(sample[0])) missed.samples.set(sample[0], sample);
  for (const row of changes.tasks) missed.tasks.set(row.id, row);
  for (const columns of changes.columns) {
    missed.columns.set(columns.taskId, columns);
    for (const [key, row] of missed.subtasks) if ((row as { taskId: string }).taskId === columns.taskId) missed.subtasks.delete(key);
  }
  for (const row of changes.subtasks) missed.subtasks.set(`${row.taskId}\u0000${row.id}`, row);
  missed.topology ||= changes.topology;
}

/** Largest frame a service takes by default: a whole task comes in one. */
export const SERVICE_MAX_PAYLOAD = 64 * 1024 * 1024;

/** Bytes waiting for a submitter above which its events are skipped (its outcome never is). */
const EVENT_BACKLOG_BYTES = 1024 * 1024;

/**
 * Why a task cannot be taken because of its size: the first subtask whose payload is above the
 * limit every agent takes (it could never be delivered, and would hold its task forever).
 */
export function oversized(task: Task, maxValueBytes: number): string | undefined {
  for (const subtask of task.subtasks) {
    if (subtask.payload === undefined) continue;
    const bytes = Buffer.byteLength(JSON.stringify(subtask.payload), 'utf8');
    if (bytes > maxValueBytes) return `subtask ${JSON.stringify(subtask.id)}: payload of ${bytes} bytes is above the limit of ${maxValueBytes} (maxValueBytes)`;
  }
  return undefined;
}

/** A task handed in: who sent it, and what. */
interface Submission {
  readonly client: string;
  readonly task: Task;
  readonly watch: boolean;
}

/**
 * A coordinator service over WebSocket (`rxswarm serve`): agents connect and join the coordinator;
 * clients (`rxswarm run`) submit tasks to the `tasks` node. Tasks run one after another, in the
 * order they arrive; while one runs its submitter gets its events (best effort: skipped while 1 MiB
 * waits unread for it), and at its end the outcome (the `CoordinationResult`, or why the task
 * could not run). A submitter that is away when its
 * outcome is ready misses it; the task still runs to its end.
 *
 * It also shows itself: a {@link SwarmView} kept from the coordinator's events, the beats and
 * progress it receives and the routes its assignments take. Clients `watch` it (`status`, `tasks`,
 * the dashboard: everything once, then batches of changes every `feedMs`) and `cancel-task`; the
 * same port answers HTTP: the dashboard at `/`, Prometheus metrics at `/metrics`. Tasks and
 * attempts are traced through `@opentelemetry/api`.
 *
 * ```
 * run client ──submit──▶ tasks ──▶ queue ──▶ coordinator.run$(task) ──event…/outcome──▶ run client
 * agents ◀──assign/result/heartbeat──▶ coordinator (admitted from the server's members$)
 * dashboard ──watch/cancel-task──▶ tasks ──state…/cancelled──▶ dashboard     GET / · /metrics
 * ```
 *
 * @example
 * const service = await Service.start({ token: 's3cret', port: 7070 });
 * // … agents and clients connect to service.url; later:
 * await service.close();
 */
export class Service {
  private readonly queue: Submission[] = [];
  private running: { readonly taskId: string; readonly subscription: Subscription } | undefined;
  private closed = false;
  private readonly inbox: Subscription;
  private readonly connections: Subscription;
  private readonly watchers = new Map<string, Watcher>();
  private readonly cancelling = new Set<string>();
  private seq = 0;
  private lastAttention = '';
  private ticks = 0;
  private ticker: Subscription | undefined;

  private constructor(
    readonly server: WsServerNetwork,
    readonly coordinator: Coordinator,
    private readonly onEvent: ServiceOptions['onEvent'],
    /** What the service shows of itself: agents, tasks, subtasks, attention, topology. */
    readonly view: SwarmView,
    readonly metrics: ServiceMetrics,
    private readonly tracing: ServiceTracing,
    private readonly feedMs: number,
  ) {
    this.inbox = server.join(TASKS).subscribe(envelope => this.receive(envelope));
    this.connections = server.events$.subscribe(event => {
      if (event.type === 'connected' && event.role === 'agent') view.connected(event.agentId, event.capabilities, event.slots);
      if (event.type === 'disconnected') {
        view.disconnected(event.agentId);
        this.watchers.delete(event.agentId);
      }
    });
    for (const agent of server.remoteAgents.values()) if (agent.role === 'agent') view.connected(agent.agentId, agent.capabilities, agent.slots);
    this.tick();
  }

  /** Listens and returns once the port is open (rejects if it cannot, e.g. the port is taken). */
  static async start({ coordinator: options = {}, onEvent, metricsPublic = false, metrics: metricsOptions, feedMs = 50, version, ...network }: ServiceOptions): Promise<Service> {
    if (!(typeof feedMs === 'number' && feedMs >= 1)) throw new RangeError(`feedMs must be >= 1, got ${String(feedMs)}`);
    const detector = options.detector;
    const intervalMs = options.heartbeat?.intervalMs ?? 1000;
    let view: SwarmView | undefined;
    const now = (): number => server.scheduler.now();
    // The phi shown is the coordinator's: its detector's settings (or its defaults).
    view = new SwarmView(now, {
      phi: detector?.kind === 'phi' ? (({ kind: _kind, ...rest }) => rest)(detector) : { firstHeartbeatEstimateMs: intervalMs, acceptableHeartbeatPauseMs: 2 * intervalMs, minStdDeviationMs: Math.max(1, options.heartbeat?.jitterMs ?? intervalMs / 10) },
    });
    const metrics = new ServiceMetrics(view, () => Date.now(), metricsOptions);
    const token = network.token;
    // The coordinator's and the task desk's ids are the service's, also between tasks.
    const server: WsServerNetwork = await WsServerNetwork.listen({
      maxPayload: SERVICE_MAX_PAYLOAD,
      // Agents beat at the coordinator's interval: they are told it at hello.
      heartbeatMs: intervalMs,
      ackTimeoutMs: options.ackTimeoutMs ?? 3000,
      ...network,
      authority: COORDINATOR,
      reservedIds: [COORDINATOR, TASKS, ...(network.reservedIds ?? [])],
      onHttpRequest: httpRoutes({ token, metricsPublic, dashboard: loadDashboard(), metrics: async () => ({ type: metrics.contentType, text: await metrics.text() }) }),
    });
    try {
      const shown = view;
      // What the coordinator receives and sends, seen on the way: beats and progress, and the
      // routes of its assignments (the topology as it is used).
      const tapped = tappedNetwork<Envelope>(server, {
        received: e => {
          if (e.kind === 'heartbeat') shown.heartbeat(e.from, (e.body as HeartbeatBody).load, (e.body as HeartbeatBody).incarnation);
          else if (e.kind === 'progress') shown.progress((e.body as ProgressBody).subtaskId, (e.body as ProgressBody).attempt, (e.body as ProgressBody).progress, e.from);
        },
        sent: m => {
          if (m.kind === 'assign' && m.from === COORDINATOR) shown.routed([m.to, ...(m.body as Routed).via]);
        },
      });
      const coordinator = createCoordinator({ agents: [], ...options, network: tapped });
      return new Service(server, coordinator, onEvent, shown, metrics, new ServiceTracing(version), feedMs);
    } catch (err) {
      await server.close();
      throw err;
    }
  }

  get url(): string {
    return this.server.url;
  }

  /** Stops the running task (its result is not sent), closes every connection and the port. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.ticker?.unsubscribe();
    this.running?.subscription.unsubscribe();
    this.inbox.unsubscribe();
    this.connections.unsubscribe();
    await this.server.close();
  }

  private receive(envelope: Envelope): void {
    if (envelope.kind === 'watch') return this.watch(envelope.from, envelope.body as WatchBody);
    if (envelope.kind === 'cancel-task') return this.cancel(envelope.from, (envelope.body as CancelTaskBody).taskId);
    if (envelope.kind !== 'submit') return;
    const { task, watch = true } = envelope.body as SubmitBody;
    const tooBig = oversized(task, this.server.maxValueBytes);
    if (tooBig !== undefined) return this.send(envelope.from, 'outcome', { taskId: task.id, error: tooBig });
    // A task is known by its id while it is queued or runs (to watch it, to cancel it): one at a time.
    if (this.running?.taskId === task.id || this.queue.some(q => q.task.id === task.id)) {
      return this.send(envelope.from, 'outcome', { taskId: task.id, error: `a task with id ${JSON.stringify(task.id)} is already ${this.running?.taskId === task.id ? 'running' : 'queued'}: give this one another id` });
    }
    this.queue.push({ client: envelope.from, task, watch });
    this.view.taskQueued(task);
    this.view.queue(this.queue.map(q => q.task.id));
    this.next();
  }

  /**
   * Cancels a task: a queued one leaves the queue (its submitter hears `cancelled before it
   * started`); a running one ends now (`coordinator.cancel`): its remote work is cancelled and its
   * unfinished subtasks fail with the reason `cancelled`, in the result its submitter gets.
   */
  private cancel(client: string, taskId: string): void {
    const answer = (ok: boolean, error?: string): void => this.send(client, 'cancelled', { taskId, ok, ...(error === undefined ? {} : { error }) });
    const queued = this.queue.findIndex(q => q.task.id === taskId);
    if (queued !== -1) {
      const [submission] = this.queue.splice(queued, 1);
      this.view.taskEnded(taskId, 'cancelled', 'cancelled before it started');
      this.view.queue(this.queue.map(q => q.task.id));
      this.send((submission as Submission).client, 'outcome', { taskId, error: 'cancelled before it started' });
      return answer(true);
    }
    if (this.running?.taskId === taskId) {
      this.cancelling.add(taskId);
      if (this.coordinator.cancel(taskId, 'cancelled')) return answer(true);
      this.cancelling.delete(taskId);
    }
    return answer(false, `no queued or running task ${JSON.stringify(taskId)}`);
  }

  /**
   * A client watches: everything once (see `sendFull`), then, if `live`, what changes. A live
   * watcher that asks again with the same `subtasks` changes only its focus (a click on another
   * subtask): it gets that timeline with the next batch, not everything again.
   */
  private watch(client: string, { live, subtasks = true, focus }: WatchBody): void {
    const watching = this.watchers.get(client);
    if (live && watching?.subtasks === subtasks) {
      // Another subtask's timeline asked for (a click on the page): that, not everything again.
      watching.focus = focus;
      watching.focusSent = -1;
      return;
    }
    const watcher: Watcher = { live, subtasks, focus, focusSent: 0, missed: undefined, backlog: [], later: live };
    if (live) this.watchers.set(client, watcher);
    else this.watchers.delete(client);
    this.sendFull(client, watcher);
  }

  /**
   * Everything now, in one frame a page draws at once: agents, tasks, what needs attention, and
   * the rows of the first task in the page's order as columns (200 KB for 50,000 finished ones).
   * The other tasks' rows follow as changes, one task a tick, so that a page with twenty tasks of
   * 50,000 held blocks neither itself nor the coordinator; the agents' phi over the last minute
   * comes with the first tick.
   */
  private sendFull(client: string, watcher: Watcher): void {
    const [first, ...rest] = watcher.subtasks ? this.view.taskIdsInOrder() : [];
    watcher.backlog = rest;
    this.send(client, 'state', { ...this.full(watcher), ...(first === undefined ? {} : { columns: this.view.subtaskColumns([first]) }) });
  }

  /** Everything now but the subtask rows, for one watcher. */
  private full(watcher: Watcher): StateBody {
    const view = this.view;
    return {
      seq: this.seq,
      full: true,
      at: this.server.scheduler.now(),
      protocol: view.protocolName,
      // Phi over the last minute and the graph's edges (1,000 for 1,000 agents) follow a live
      // watcher's first state with the next tick: the first state is drawn sooner.
      agents: view.agentRows(false),
      tasks: view.taskRows(),
      attention: view.attention(),
      topology: view.topology(!watcher.live),
      ...this.timeline(watcher),
    };
  }

  private timeline(watcher: Watcher): { timeline?: unknown } {
    if (watcher.focus === undefined) return {};
    const { taskId, subtaskId } = watcher.focus;
    watcher.focusSent = this.view.changedAt(taskId, subtaskId);
    return { timeline: { taskId, subtaskId, entries: this.view.timeline(taskId, subtaskId) ?? [] } };
  }

  /**
   * Every `feedMs`: what changed since the last tick, in one batch to every live watcher; phi
   * sampled once a second, the attention strip recomputed twice a second (and sent when it changed).
   */
  private tick(): void {
    const everySecond = Math.max(1, Math.round(1000 / this.feedMs));
    const everyHalf = Math.max(1, Math.round(500 / this.feedMs));
    this.ticker = this.server.scheduler.schedule(function (this: { schedule(state?: undefined, delay?: number): void }) {
      service.onTick(everySecond, everyHalf);
      this.schedule(undefined, service.feedMs);
    }, this.feedMs);
    const service = this;
  }

  private onTick(everySecond: number, everyHalf: number): void {
    this.ticks++;
    this.view.watch();
    if (this.ticks % everySecond === 0) this.view.sample();
    if (this.watchers.size === 0) return this.view.dropChanges();
    const changes = this.view.changes();
    let attention: unknown;
    if (this.ticks % everyHalf === 0) {
      const items = this.view.attention();
      const text = JSON.stringify(items);
      if (text !== this.lastAttention) {
        this.lastAttention = text;
        attention = items;
      }
    }
    for (const [client, watcher] of this.watchers) {
      // A watcher that reads slowly is not fed more: what it misses is kept (the latest row of
      // each id) and sent in one batch once it has caught up, so it never needs everything anew.
      if (this.server.buffered(client) > EVENT_BACKLOG_BYTES) {
        watcher.missed ??= { agents: new Map(), samples: new Map(), tasks: new Map(), columns: new Map(), subtasks: new Map(), removed: new Set(), topology: false };
        if (changes !== undefined) miss(watcher.missed, changes);
        continue;
      }
      let batch: Changes | undefined = changes;
      if (watcher.missed !== undefined) {
        if (changes !== undefined) miss(watcher.missed, changes);
        const { agents, samples, tasks, columns, subtasks, removed, topology } = watcher.missed;
        batch = { agents: [...agents.values()], samples: [...samples.values()], tasks: [...tasks.values()], columns: [...columns.values()], subtasks: [...subtasks.values()], removed: [...removed], topology } as Changes;
        watcher.missed = undefined;
        attention ??= this.view.attention();
      }
      const focused = watcher.focus !== undefined && this.view.changedAt(watcher.focus.taskId, watcher.focus.subtaskId) > watcher.focusSent;
      const backlog = watcher.subtasks ? this.view.subtaskColumns(watcher.backlog.splice(0, 1)) : [];
      if (backlog.length > 0) batch = { ...(batch ?? { agents: [], samples: [], tasks: [], subtasks: [], removed: [], topology: false }), columns: [...(batch?.columns ?? []), ...backlog] };
      const later = watcher.later;
      watcher.later = false;
      if (batch === undefined && attention === undefined && !focused && !later) continue;
      this.send(client, 'state', {
        seq: ++this.seq,
        full: false,
        at: this.server.scheduler.now(),
        ...(batch === undefined
          ? {}
          : {
              protocol: this.view.protocolName,
              ...(batch.agents.length > 0 ? { agents: batch.agents } : {}),
              ...(batch.samples.length > 0 ? { samples: batch.samples } : {}),
              ...(batch.tasks.length > 0 ? { tasks: batch.tasks } : {}),
              ...(watcher.subtasks && batch.columns.length > 0 ? { columns: batch.columns } : {}),
              ...(watcher.subtasks && batch.subtasks.length > 0 ? { subtasks: packSubtasks(batch.subtasks) } : {}),
              ...(batch.removed.length > 0 ? { removed: batch.removed } : {}),
              ...(batch.topology ? { topology: this.view.topology() } : {}),
            }),
        ...(attention === undefined ? {} : { attention }),
        ...(focused ? this.timeline(watcher) : {}),
        ...(later ? { histories: this.view.phiHistories(), topology: this.view.topology() } : {}),
      });
    }
  }

  private next(): void {
    if (this.running !== undefined || this.closed) return;
    const submission = this.queue.shift();
    if (submission === undefined) return;
    this.view.queue(this.queue.map(q => q.task.id));
    const { client, task, watch } = submission;
    let run;
    try {
      run = this.coordinator.run$(task);
    } catch (err) {
      // A task the coordinator refuses (duplicate subtask ids…): the client hears why.
      const error = err instanceof Error ? err.message : String(err);
      this.view.taskEnded(task.id, 'failed', error);
      this.send(client, 'outcome', { taskId: task.id, error });
      return this.next();
    }
    const startedAt = this.server.scheduler.now();
    this.view.taskStarted(task.id);
    this.tracing.taskStarted(task.id, startedAt, task.subtasks.length);
    let result: CoordinationResult | undefined;
    let ended = false;
    const subscription = run.subscribe({
      next: event => {
        this.view.event(event, task.id);
        this.metrics.event(event);
        this.tracing.event(event, task.id);
        this.onEvent?.(event, task.id);
        if (event.type === 'task.completed') result = event.result;
        // Events are for watching: a submitter that reads slowly misses some rather than piling them up.
        else if (watch && this.server.buffered(client) < EVENT_BACKLOG_BYTES) this.send(client, 'event', { taskId: task.id, event: event as unknown as EventBody['event'] });
      },
      error: (err: unknown) => {
        ended = true;
        this.done(client, { taskId: task.id, error: `the run failed: ${err instanceof Error ? err.message : String(err)}` }, result);
      },
      complete: () => {
        ended = true;
        this.done(client, result === undefined ? { taskId: task.id, error: 'the run ended without a result' } : { taskId: task.id, result }, result);
      },
    });
    if (!ended) this.running = { taskId: task.id, subscription }; // an empty task ends inside subscribe
  }

  private done(client: string, outcome: OutcomeBody, result: CoordinationResult | undefined): void {
    this.running = undefined;
    const { taskId } = outcome;
    const cancelled = this.cancelling.delete(taskId);
    const state = result?.success === true ? 'done' : cancelled ? 'cancelled' : 'failed';
    const error = outcome.error ?? (cancelled ? 'cancelled' : undefined);
    this.view.taskEnded(taskId, state, error);
    this.tracing.taskEnded(taskId, this.server.scheduler.now(), {
      success: result?.success === true,
      completed: result?.metrics.completed ?? 0,
      failed: result?.metrics.failed ?? 0,
      ...(error === undefined ? {} : { error }),
    });
    this.send(client, 'outcome', outcome);
    // Not from inside the run that just ended: the next starts on a fresh stack.
    queueMicrotask(() => this.next());
  }

  private send<K extends 'event' | 'outcome' | 'state' | 'cancelled'>(to: string, kind: K, body: K extends 'event' ? EventBody : K extends 'state' ? StateBody : K extends 'cancelled' ? CancelledBody : OutcomeBody): void {
    try {
      this.server.send({ from: TASKS, to, kind, body });
    } catch (err) {
      // A result that cannot travel as JSON (a handler returned a BigInt…): say so instead.
      if (kind === 'outcome') this.server.send({ from: TASKS, to, kind, body: { taskId: (body as OutcomeBody).taskId, error: `the result cannot be sent: ${(err as Error).message}` } });
    }
  }
}
