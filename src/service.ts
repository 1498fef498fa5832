import type { Observable, Subscription } from 'rxjs';
import type { Envelope, Network } from '../streams/network.js';
import { FileJournal, type Journal } from '../streams/journal.js';
import type { MessageBodies, AttachBody, CancelledBody, CancelTaskBody, EventBody, HeartbeatBody, OutcomeBody, ProgressBody, Routed, StateBody, SubmitBody, TaskStateBody, WatchBody } from '../streams/protocol.js';
import { payloadProblem, type Task } from '../streams/task.js';
import { WsServerNetwork, type WsServerNetworkOptions } from '../streams/wsNetwork.js';
import { createCoordinator, type Coordinator, type CoordinatorOptions, type TaskInfo } from './coordinator.js';
import { isTaskEvent, type CoordinationEvent, type CoordinationResult } from './events.js';
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
  /**
   * Where the ledger is journaled: a directory (created if needed; one service per directory), or
   * `:memory:` for none. A service started on a directory resumes every unfinished task in it.
   * Default `:memory:` (`rxswarm serve` defaults to `./.rxswarm`).
   */
  readonly dataDir?: string;
}

/**
 * What a service needs of its server network: the seam, plus who is connected, backlogs and the
 * size limit. `WsServerNetwork` and `NatsNetwork` both are one.
 */
export type ServiceNetwork = Network<Envelope> & Pick<WsServerNetwork, 'events$' | 'remoteAgents' | 'maxValueBytes' | 'url' | 'buffered' | 'close'>;

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
    const problem = payloadProblem(subtask, maxValueBytes);
    if (problem !== undefined) return `subtask ${JSON.stringify(subtask.id)}: ${problem}`;
  }
  return undefined;
}

/** Followers of one task: each client, and whether it wants the events. */
type TaskFollowers = Map<string, { readonly watch: boolean }>;

/** A follower that has heard nothing for this long is told where its task stands anyway (it knows the coordinator lives). */
const KEEPALIVE_MS = 2000;

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
  /** Who follows each task (its submitter, `attach`), by task id. */
  private readonly followers = new Map<string, TaskFollowers>();
  /** The service's own following of each unfinished task: its view, metrics, traces and outcome. */
  private readonly monitors = new Map<string, Subscription>();
  private readonly engineEvents: Subscription;
  private closed = false;
  private readonly inbox: Subscription;
  private readonly connections: Subscription;
  private readonly watchers = new Map<string, Watcher>();
  /**
   * When each client last got everything (a `state` with `full`), and the one it gets at the end
   * of that `feedMs` when it asked again sooner: a client asking for everything as fast as it may
   * send frames gets it once a tick, not once a frame (it is the dearest frame the service makes).
   */
  private readonly fullAt = new Map<string, number>();
  private readonly fullLater = new Map<string, { watcher: Watcher; timer: Subscription }>();
  private seq = 0;
  private lastKeepalive = 0;
  private lastAttention = '';
  private ticks = 0;
  private ticker: Subscription | undefined;

  private constructor(
    readonly server: ServiceNetwork,
    readonly coordinator: Coordinator,
    private readonly onEvent: ServiceOptions['onEvent'],
    /** What the service shows of itself: agents, tasks, subtasks, attention, topology. */
    readonly view: SwarmView,
    readonly metrics: ServiceMetrics,
    private readonly tracing: ServiceTracing,
    private readonly feedMs: number,
    /** Lets go of the coordinator's inbox the tapped network holds. */
    private readonly releaseInbox: () => void,
  ) {
    this.inbox = server.join(TASKS).subscribe(envelope => this.receive(envelope));
    this.connections = server.events$.subscribe(event => {
      if (event.type === 'connected' && event.role === 'agent') view.connected(event.agentId, event.capabilities, event.slots);
      if (event.type === 'disconnected') {
        view.disconnected(event.agentId);
        this.watchers.delete(event.agentId);
        this.fullAt.delete(event.agentId);
        this.fullLater.get(event.agentId)?.timer.unsubscribe();
        this.fullLater.delete(event.agentId);
        for (const followers of this.followers.values()) followers.delete(event.agentId);
      }
    });
    // The engine's own events (agents, faults, protocol) once; each task's through its monitor.
    this.engineEvents = coordinator.events$.subscribe(event => {
      if (isTaskEvent(event)) return;
      view.event(event, '');
      metrics.event(event);
      onEvent?.(event, '');
    });
    // What the journal held: every task it keeps is shown, and the unfinished ones followed.
    for (const info of coordinator.tasks()) this.monitor(info.id);
    this.queueChanged();
    for (const agent of server.remoteAgents.values()) if (agent.role === 'agent') view.connected(agent.agentId, agent.capabilities, agent.slots);
    this.tick();
  }

  /** Listens and returns once the port is open (rejects if it cannot, e.g. the port is taken). */
  static async start({ coordinator: options = {}, onEvent, metricsPublic = false, metrics: metricsOptions, feedMs = 50, version, dataDir = ':memory:', ...network }: ServiceOptions): Promise<Service> {
    if (!(typeof feedMs === 'number' && feedMs >= 1)) throw new RangeError(`feedMs must be >= 1, got ${String(feedMs)}`);
    const intervalMs = options.heartbeat?.intervalMs ?? 1000;
    let service: Service | undefined;
    // The coordinator's and the task desk's ids are the service's, also between tasks.
    const server: WsServerNetwork = await WsServerNetwork.listen({
      maxPayload: SERVICE_MAX_PAYLOAD,
      // Agents beat at the coordinator's interval: they are told it at hello.
      heartbeatMs: intervalMs,
      ackTimeoutMs: options.ackTimeoutMs ?? 3000,
      ...network,
      authority: COORDINATOR,
      reservedIds: [COORDINATOR, TASKS, ...(network.reservedIds ?? [])],
      onHttpRequest: httpRoutes({
        token: network.token,
        metricsPublic,
        dashboard: loadDashboard(),
        metrics: async () => (service === undefined ? { type: 'text/plain', text: '' } : { type: service.metrics.contentType, text: await service.metrics.text() }),
      }),
    });
    try {
      service = Service.on(server, { coordinator: options, ...(onEvent === undefined ? {} : { onEvent }), ...(metricsOptions === undefined ? {} : { metrics: metricsOptions }), feedMs, ...(version === undefined ? {} : { version }), dataDir });
      return service;
    } catch (err) {
      await server.close();
      throw err;
    }
  }

  /**
   * A service over a server network already listening (NATS: `NatsNetwork`; `start` makes a
   * WebSocket one): the coordinator, the task desk and the view, without HTTP. Throws when the
   * data directory cannot be used (in use, a damaged journal); the network is the caller's then.
   */
  static on(server: ServiceNetwork, { coordinator: options = {}, onEvent, metrics: metricsOptions, feedMs = 50, version, dataDir = ':memory:' }: Pick<ServiceOptions, 'coordinator' | 'onEvent' | 'metrics' | 'feedMs' | 'version' | 'dataDir'>): Service {
    const detector = options.detector;
    const intervalMs = options.heartbeat?.intervalMs ?? 1000;
    // The phi shown is the coordinator's: its detector's settings (or its defaults).
    const view = new SwarmView(() => server.scheduler.now(), {
      phi: detector?.kind === 'phi' ? (({ kind: _kind, ...rest }) => rest)(detector) : { firstHeartbeatEstimateMs: intervalMs, acceptableHeartbeatPauseMs: 2 * intervalMs, minStdDeviationMs: Math.max(1, options.heartbeat?.jitterMs ?? intervalMs / 10) },
    });
    const metrics = new ServiceMetrics(view, () => Date.now(), metricsOptions);
    // Refused before anything is taken: a directory in use, a damaged journal (file and offset).
    const journal = dataDir === ':memory:' ? undefined : FileJournal.open(dataDir);
    // What the coordinator receives and sends, seen on the way: beats and progress, and the
    // routes of its assignments (the topology as it is used).
    const tapped = tappedNetwork<Envelope>(server, {
      received: e => {
        if (e.kind === 'heartbeat') view.heartbeat(e.from, (e.body as HeartbeatBody).load, (e.body as HeartbeatBody).incarnation);
        else if (e.kind === 'progress') view.progress((e.body as ProgressBody).subtaskId, (e.body as ProgressBody).attempt, (e.body as ProgressBody).progress, e.from);
      },
      sent: m => {
        if (m.kind === 'assign' && m.from === COORDINATOR) view.routed([m.to, ...(m.body as Routed).via]);
      },
      // Beats are seen between tasks too: the view judges agents then (an engine joins only while tasks run).
      hold: COORDINATOR,
    });
    try {
      const coordinator = createCoordinator({ agents: [], ...options, network: tapped, ...(journal === undefined ? {} : { journal }) });
      return new Service(server, coordinator, onEvent, view, metrics, new ServiceTracing(version), feedMs, tapped.release);
    } catch (err) {
      tapped.release();
      void journal?.close();
      throw err;
    }
  }

  get url(): string {
    return this.server.url;
  }

  /** The port of its URL. */
  get port(): number {
    return Number(new URL(this.server.url).port);
  }

  /**
   * Stops: running tasks stay running in the journal (a service started on the same data
   * directory resumes them), every connection and the port are closed.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.ticker?.unsubscribe();
    for (const { timer } of this.fullLater.values()) timer.unsubscribe();
    this.fullLater.clear();
    for (const monitor of this.monitors.values()) monitor.unsubscribe();
    this.monitors.clear();
    this.engineEvents.unsubscribe();
    this.inbox.unsubscribe();
    this.connections.unsubscribe();
    await this.coordinator.close();
    this.releaseInbox();
    await this.server.close();
  }

  private receive(envelope: Envelope): void {
    if (envelope.kind === 'watch') return this.watch(envelope.from, envelope.body as WatchBody);
    if (envelope.kind === 'cancel-task') return this.cancel(envelope.from, (envelope.body as CancelTaskBody).taskId);
    if (envelope.kind === 'attach') return this.attach(envelope.from, envelope.body as AttachBody);
    if (envelope.kind !== 'submit') return;
    const { task, watch = true } = envelope.body as SubmitBody;
    const tooBig = oversized(task, this.server.maxValueBytes);
    if (tooBig !== undefined) return this.send(envelope.from, 'outcome', { taskId: task.id, error: tooBig });
    // Followed from its first event (it may start, even end, inside the submission); a refusal
    // (malformed, its id queued or running, the journal cannot write) is the client's outcome.
    const client = envelope.from;
    const wasFollowing = this.followers.get(task.id)?.has(client) === true;
    this.follow(task.id, client, watch);
    let refused: string | undefined;
    try {
      refused = this.monitor(task.id, this.coordinator.submit$(task), task);
    } catch (err) {
      refused = err instanceof Error ? err.message : String(err); // malformed: refused before anything
    }
    if (refused !== undefined) {
      if (!wasFollowing) this.followers.get(task.id)?.delete(client);
      return this.send(client, 'outcome', { taskId: task.id, error: refused });
    }
    this.queueChanged();
    // Told once the journal has it: from then on it survives this process.
    void this.coordinator.durable().then(
      () => this.tellState(task.id, client),
      () => undefined, // the journal failed: the outcome says so
    );
  }

  /** A client follows a task by id (after a lost connection, a restart, or `rxswarm attach`). */
  private attach(client: string, { taskId, watch = true }: AttachBody): void {
    const info = this.coordinator.taskInfo(taskId);
    if (info === undefined) return this.send(client, 'outcome', { taskId, error: `no task ${JSON.stringify(taskId)} here: it was never submitted, or its result is no longer kept` });
    this.tellState(taskId, client);
    const result = this.coordinator.result(taskId);
    if (result !== undefined) return this.send(client, 'outcome', { taskId, result });
    this.follow(taskId, client, watch);
  }

  private follow(taskId: string, client: string, watch: boolean): void {
    let followers = this.followers.get(taskId);
    if (followers === undefined) this.followers.set(taskId, (followers = new Map()));
    followers.set(client, { watch });
  }

  /** Tells one client (or every follower) where a task stands. */
  private tellState(taskId: string, client?: string, known?: TaskInfo): void {
    const followers = this.followers.get(taskId);
    if (client === undefined && (followers === undefined || followers.size === 0)) return; // nobody to tell
    const info = known ?? this.coordinator.taskInfo(taskId);
    if (info === undefined) return;
    const body: TaskStateBody = {
      taskId,
      state: info.state,
      ...(info.queuePosition === undefined ? {} : { queuePosition: info.queuePosition }),
      subtasks: info.subtasks,
      completed: info.completed,
      failed: info.failed,
    };
    if (client !== undefined) return this.send(client, 'task-state', body);
    for (const follower of followers?.keys() ?? []) this.send(follower, 'task-state', body);
  }

  /** The queue changed (a task came, started or left it): positions shown, and told to whoever follows a queued task. */
  private queueChanged(): void {
    const queued = this.coordinator
      .tasks()
      .filter(t => t.queuePosition !== undefined)
      .sort((a, b) => (a.queuePosition as number) - (b.queuePosition as number));
    this.view.queue(queued.map(t => t.id));
    for (const t of queued) this.tellState(t.id, undefined, t);
  }

  /**
   * Follows a task for the service itself: its events feed the view, metrics, traces and the
   * log; its followers get them (when they watch) and, once the journal has it, its outcome.
   * `submitted`: a task being submitted, `source` its `submit$` (followed from its first event);
   * else one the coordinator holds, shown as it stands now. Returns why a submission was refused.
   */
  private monitor(taskId: string, source: Observable<CoordinationEvent> = this.coordinator.attach$(taskId), submitted?: Task): string | undefined {
    if (this.monitors.has(taskId) && submitted === undefined) return undefined;
    const info = submitted === undefined ? this.coordinator.taskInfo(taskId) : undefined;
    const task = submitted ?? this.coordinator.task(taskId);
    if (task === undefined) return undefined;
    if (submitted === undefined && info === undefined) return undefined;
    let refused: string | undefined;
    if (submitted !== undefined) {
      // Shown as queued until it says it started (inside the submission, or later).
      if (!this.monitors.has(taskId)) this.view.taskQueued(task);
    } else {
      this.view.taskQueued(task);
      if (info?.state === 'running') {
        this.view.taskStarted(taskId);
        this.tracing.taskStarted(taskId, this.server.scheduler.now(), task.subtasks.length);
        // Resumed after a restart: what settled before it is shown settled, not pending until the end.
        const settled = this.coordinator.settled(taskId);
        if (settled !== undefined) this.view.settle(taskId, settled);
      }
    }
    let result: CoordinationResult | undefined;
    const subscription = source.subscribe({
      next: event => {
        if (event.type === 'task.started') {
          this.view.taskStarted(taskId);
          this.tracing.taskStarted(taskId, this.server.scheduler.now(), task.subtasks.length);
          this.queueChanged();
          this.tellState(taskId);
        }
        if (isTaskEvent(event)) {
          this.view.event(event, taskId);
          this.metrics.event(event);
          this.tracing.event(event, taskId);
          this.onEvent?.(event, taskId);
        }
        if (event.type === 'task.completed') {
          result = event.result;
          return;
        }
        // Events are for watching: a follower that reads slowly misses some rather than piling them up.
        for (const [client, { watch }] of this.followers.get(taskId) ?? []) {
          if (watch && this.server.buffered(client) < EVENT_BACKLOG_BYTES) this.send(client, 'event', { taskId, event: event as unknown as EventBody['event'] });
        }
      },
      error: (err: unknown) => {
        refused = err instanceof Error ? err.message : String(err);
      },
      complete: () => {
        this.monitors.delete(taskId);
        if (result !== undefined) this.ended(taskId, result);
      },
    });
    if (refused === undefined && !subscription.closed) this.monitors.set(taskId, subscription);
    return refused;
  }

  /** A task ended: shown, traced, and — once the journal has it — its outcome to every follower. */
  private ended(taskId: string, result: CoordinationResult): void {
    const cancelled = this.coordinator.taskInfo(taskId)?.state === 'cancelled';
    const state = result.success ? 'done' : cancelled ? 'cancelled' : 'failed';
    const error = cancelled ? (Object.values(result.failed)[0] ?? 'cancelled') : undefined;
    // What ended before a restart is in the result, not in the events this service saw.
    this.view.taskEnded(taskId, state, error, { results: result.results, failed: result.failed, finishedAt: result.metrics.finishedAt });
    this.tracing.taskEnded(taskId, this.server.scheduler.now(), { success: result.success, completed: result.metrics.completed, failed: result.metrics.failed, ...(error === undefined ? {} : { error }) });
    this.queueChanged();
    const tell = (outcome: OutcomeBody): void => {
      const followers = this.followers.get(taskId);
      this.followers.delete(taskId);
      for (const client of followers?.keys() ?? []) this.send(client, 'outcome', outcome);
    };
    this.coordinator.durable().then(
      () => tell({ taskId, result }),
      (err: unknown) => tell({ taskId, result, error: `the result is not in the journal: ${err instanceof Error ? err.message : String(err)}` }),
    );
  }

  /**
   * Cancels a task: a queued one leaves the queue; a running one ends now (`coordinator.cancel`):
   * its remote work is cancelled and its unfinished subtasks fail with the reason `cancelled`, in
   * the result its followers get.
   */
  private cancel(client: string, taskId: string): void {
    const ok = this.coordinator.cancel(taskId, 'cancelled');
    this.send(client, 'cancelled', { taskId, ok, ...(ok ? {} : { error: `no queued or running task ${JSON.stringify(taskId)}` }) });
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
    // Fed changes only once it has had everything.
    this.watchers.delete(client);
    const pending = this.fullLater.get(client);
    if (pending !== undefined) {
      pending.watcher = watcher; // the latest ask is answered
      return;
    }
    const scheduler = this.server.scheduler;
    const dueAt = (this.fullAt.get(client) ?? -Infinity) + this.feedMs;
    if (scheduler.now() >= dueAt) return this.startFeed(client, watcher);
    const answer = (): void => {
      const latest = this.fullLater.get(client);
      this.fullLater.delete(client);
      if (latest !== undefined) this.startFeed(client, latest.watcher);
    };
    this.fullLater.set(client, { watcher, timer: scheduler.schedule(answer, dueAt - scheduler.now()) });
  }

  /** Everything now to the client; a live watcher is fed the changes from then on. */
  private startFeed(client: string, watcher: Watcher): void {
    this.fullAt.set(client, this.server.scheduler.now());
    if (watcher.live) this.watchers.set(client, watcher);
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
    const now = this.server.scheduler.now();
    if (now - this.lastKeepalive >= KEEPALIVE_MS) {
      // Followers of a task hear where it stands now and then: silence means the coordinator is gone.
      this.lastKeepalive = now;
      for (const taskId of this.followers.keys()) this.tellState(taskId);
    }
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

  private send<K extends 'event' | 'outcome' | 'state' | 'cancelled' | 'task-state'>(to: string, kind: K, body: MessageBodies[K]): void {
    try {
      this.server.send({ from: TASKS, to, kind, body });
    } catch (err) {
      // A result that cannot travel as JSON (a handler returned a BigInt…): say so instead.
      if (kind === 'outcome') this.server.send({ from: TASKS, to, kind, body: { taskId: (body as OutcomeBody).taskId, error: `the result cannot be sent: ${(err as Error).message}` } });
    }
  }
}
