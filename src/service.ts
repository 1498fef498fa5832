import type { Subscription } from 'rxjs';
import type { Envelope } from '../streams/network.js';
import type { EventBody, OutcomeBody, SubmitBody } from '../streams/protocol.js';
import type { Task } from '../streams/task.js';
import { WsServerNetwork, type WsServerNetworkOptions } from '../streams/wsNetwork.js';
import { createCoordinator, type Coordinator, type CoordinatorOptions } from './coordinator.js';
import type { CoordinationEvent, CoordinationResult } from './events.js';
import { COORDINATOR } from './topology.js';

/** The node of a service that takes tasks: `rxswarm run` sends `submit` here. */
export const TASKS = 'tasks';

export interface ServiceOptions extends Omit<WsServerNetworkOptions, 'scheduler'> {
  /** Coordinator options; agents come over the network (in-process ones may be added). */
  readonly coordinator?: Omit<CoordinatorOptions, 'network' | 'agents'> & Partial<Pick<CoordinatorOptions, 'agents'>>;
  /** Every coordination event of every task (connections: `service.server.events$`). */
  readonly onEvent?: (event: CoordinationEvent, taskId: string) => void;
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
 * ```
 * run client ──submit──▶ tasks ──▶ queue ──▶ coordinator.run$(task) ──event…/outcome──▶ run client
 * agents ◀──assign/result/heartbeat──▶ coordinator (admitted from the server's members$)
 * ```
 *
 * @example
 * const service = await Service.start({ token: 's3cret', port: 7070 });
 * // … agents and clients connect to service.url; later:
 * await service.close();
 */
export class Service {
  private readonly queue: Submission[] = [];
  private running: Subscription | undefined;
  private closed = false;
  private readonly inbox: Subscription;

  private constructor(
    readonly server: WsServerNetwork,
    readonly coordinator: Coordinator,
    private readonly onEvent: ServiceOptions['onEvent'],
  ) {
    this.inbox = server.join(TASKS).subscribe(envelope => this.receive(envelope));
  }

  /** Listens and returns once the port is open (rejects if it cannot, e.g. the port is taken). */
  static async start({ coordinator: options = {}, onEvent, ...network }: ServiceOptions): Promise<Service> {
    // The coordinator's and the task desk's ids are the service's, also between tasks.
    const server = await WsServerNetwork.listen({
      maxPayload: SERVICE_MAX_PAYLOAD,
      // Agents beat at the coordinator's interval: they are told it at hello.
      heartbeatMs: options.heartbeat?.intervalMs ?? 1000,
      ackTimeoutMs: options.ackTimeoutMs ?? 3000,
      ...network,
      authority: COORDINATOR,
      reservedIds: [COORDINATOR, TASKS, ...(network.reservedIds ?? [])],
    });
    try {
      const coordinator = createCoordinator({ agents: [], ...options, network: server });
      return new Service(server, coordinator, onEvent);
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
    this.running?.unsubscribe();
    this.inbox.unsubscribe();
    await this.server.close();
  }

  private receive(envelope: Envelope): void {
    if (envelope.kind !== 'submit') return;
    const { task, watch = true } = envelope.body as SubmitBody;
    const tooBig = oversized(task, this.server.maxValueBytes);
    if (tooBig !== undefined) return this.send(envelope.from, 'outcome', { taskId: task.id, error: tooBig });
    this.queue.push({ client: envelope.from, task, watch });
    this.next();
  }

  private next(): void {
    if (this.running !== undefined || this.closed) return;
    const submission = this.queue.shift();
    if (submission === undefined) return;
    const { client, task, watch } = submission;
    let run;
    try {
      run = this.coordinator.run$(task);
    } catch (err) {
      // A task the coordinator refuses (duplicate subtask ids…): the client hears why.
      this.send(client, 'outcome', { taskId: task.id, error: err instanceof Error ? err.message : String(err) });
      return this.next();
    }
    let result: CoordinationResult | undefined;
    let ended = false;
    const subscription = run.subscribe({
      next: event => {
        this.onEvent?.(event, task.id);
        if (event.type === 'task.completed') result = event.result;
        // Events are for watching: a submitter that reads slowly misses some rather than piling them up.
        else if (watch && this.server.buffered(client) < EVENT_BACKLOG_BYTES) this.send(client, 'event', { taskId: task.id, event: event as unknown as EventBody['event'] });
      },
      error: (err: unknown) => {
        ended = true;
        this.done(client, { taskId: task.id, error: `the run failed: ${err instanceof Error ? err.message : String(err)}` });
      },
      complete: () => {
        ended = true;
        this.done(client, result === undefined ? { taskId: task.id, error: 'the run ended without a result' } : { taskId: task.id, result });
      },
    });
    if (!ended) this.running = subscription; // an empty task ends inside subscribe
  }

  private done(client: string, outcome: OutcomeBody): void {
    this.running = undefined;
    this.send(client, 'outcome', outcome);
    // Not from inside the run that just ended: the next starts on a fresh stack.
    queueMicrotask(() => this.next());
  }

  private send<K extends 'event' | 'outcome'>(to: string, kind: K, body: K extends 'event' ? EventBody : OutcomeBody): void {
    try {
      this.server.send({ from: TASKS, to, kind, body });
    } catch (err) {
      // A result that cannot travel as JSON (a handler returned a BigInt…): say so instead.
      if (kind === 'outcome') this.server.send({ from: TASKS, to, kind, body: { taskId: (body as OutcomeBody).taskId, error: `the result cannot be sent: ${(err as Error).message}` } });
    }
  }
}
