import type { NatsConnection } from '@nats-io/transport-node';
import type { Subscription } from 'rxjs';
import type { Envelope } from '../streams/network.js';
import { connectNats, type NatsEndpoint } from '../streams/natsConnect.js';
import { NatsNetwork, type NatsNetworkOptions } from '../streams/natsNetwork.js';
import type { CancelTaskBody, EventBody, OutcomeBody, SubmitBody } from '../streams/protocol.js';
import type { Task } from '../streams/task.js';
import { createCoordinator, type Coordinator, type CoordinatorOptions } from './coordinator.js';
import type { CoordinationEvent, CoordinationResult } from './events.js';
import { TASKS, oversized } from './service.js';
import { COORDINATOR } from './topology.js';

export interface NatsNodeOptions extends NatsEndpoint, Omit<NatsNetworkOptions, 'connection' | 'authority' | 'scheduler'> {
  /** Coordinator options; agents come over NATS. */
  readonly coordinator?: Omit<CoordinatorOptions, 'network' | 'agents'>;
  /** Every coordination event of every task. */
  readonly onEvent?: (event: CoordinationEvent, taskId: string) => void;
}

interface Submission {
  readonly client: string;
  readonly task: Task;
  readonly watch: boolean;
}

/**
 * One coordinator node over NATS (`rxswarm serve --nats URL`): the coordinator on a
 * {@link NatsNetwork}, and its task desk (`tasks`): tasks submitted by `rxswarm run --nats` run one
 * after another, their submitters get the events and the outcome — the task path of `Service`,
 * without its HTTP side (dashboard, /metrics) or its watchers (`status`), which are bound to the
 * WebSocket server today. A single node: the leader lease (`natsLease.ts`) and the JetStream
 * journal join it once the ledger lands.
 *
 * @example
 * const node = await NatsNode.start({ url: 'nats://127.0.0.1:4222', token });
 * // agents: rxswarm agent --nats nats://127.0.0.1:4222; later:
 * await node.close();
 */
export class NatsNode {
  private readonly queue: Submission[] = [];
  private running: { readonly taskId: string; readonly subscription: Subscription } | undefined;
  private readonly cancelling = new Set<string>();
  private readonly inbox: Subscription;
  private closed = false;

  private constructor(
    readonly network: NatsNetwork,
    readonly coordinator: Coordinator,
    private readonly connection: NatsConnection,
    private readonly onEvent: NatsNodeOptions['onEvent'],
  ) {
    this.inbox = network.join(TASKS).subscribe(envelope => this.receive(envelope));
  }

  /** Connects (checking the server's version and JetStream), subscribes, and returns once agents can say hello. */
  static async start({ url, natsToken, user, pass, coordinator: options = {}, onEvent, ...network }: NatsNodeOptions): Promise<NatsNode> {
    const connection = await connectNats({ url, name: 'rxswarm serve', ...(natsToken === undefined ? {} : { natsToken }), ...(user === undefined ? {} : { user }), ...(pass === undefined ? {} : { pass }) });
    try {
      const intervalMs = options.heartbeat?.intervalMs ?? 1000;
      const net = await NatsNetwork.start({
        heartbeatMs: intervalMs,
        ackTimeoutMs: options.ackTimeoutMs ?? 3000,
        ...network,
        connection,
        authority: COORDINATOR,
        reservedIds: [COORDINATOR, TASKS, ...(network.reservedIds ?? [])],
      });
      const coordinator = createCoordinator({ agents: [], ...options, network: net });
      return new NatsNode(net, coordinator, connection, onEvent);
    } catch (err) {
      await connection.close();
      throw err;
    }
  }

  /** Stops the running task, tells every session the coordinator goes away, and closes the connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.running?.subscription.unsubscribe();
    this.inbox.unsubscribe();
    await this.network.close();
    await this.connection.close();
  }

  private receive(envelope: Envelope): void {
    if (envelope.kind === 'cancel-task') return this.cancel(envelope.from, (envelope.body as CancelTaskBody).taskId);
    if (envelope.kind !== 'submit') return;
    const { task, watch = true } = envelope.body as SubmitBody;
    const tooBig = oversized(task, this.network.maxValueBytes);
    if (tooBig !== undefined) return this.send(envelope.from, 'outcome', { taskId: task.id, error: tooBig });
    if (this.running?.taskId === task.id || this.queue.some(q => q.task.id === task.id)) {
      return this.send(envelope.from, 'outcome', { taskId: task.id, error: `a task with id ${JSON.stringify(task.id)} is already ${this.running?.taskId === task.id ? 'running' : 'queued'}: give this one another id` });
    }
    this.queue.push({ client: envelope.from, task, watch });
    this.next();
  }

  private cancel(client: string, taskId: string): void {
    const answer = (ok: boolean, error?: string): void => this.send(client, 'cancelled', { taskId, ok, ...(error === undefined ? {} : { error }) });
    const queued = this.queue.findIndex(q => q.task.id === taskId);
    if (queued !== -1) {
      const [submission] = this.queue.splice(queued, 1);
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

  private next(): void {
    if (this.running !== undefined || this.closed) return;
    const submission = this.queue.shift();
    if (submission === undefined) return;
    const { client, task, watch } = submission;
    let run;
    try {
      run = this.coordinator.run$(task);
    } catch (err) {
      this.send(client, 'outcome', { taskId: task.id, error: err instanceof Error ? err.message : String(err) });
      return this.next();
    }
    let result: CoordinationResult | undefined;
    let ended = false;
    const subscription = run.subscribe({
      next: event => {
        this.onEvent?.(event, task.id);
        if (event.type === 'task.completed') result = event.result;
        else if (watch) this.send(client, 'event', { taskId: task.id, event: event as unknown as EventBody['event'] });
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
    if (!ended) this.running = { taskId: task.id, subscription };
  }

  private done(client: string, outcome: OutcomeBody): void {
    this.running = undefined;
    this.cancelling.delete(outcome.taskId);
    this.send(client, 'outcome', outcome);
    queueMicrotask(() => this.next());
  }

  private send(to: string, kind: 'event' | 'outcome' | 'cancelled', body: unknown): void {
    try {
      this.network.send({ from: TASKS, to, kind, body });
    } catch (err) {
      if (kind === 'outcome') this.network.send({ from: TASKS, to, kind, body: { taskId: (body as OutcomeBody).taskId, error: `the result cannot be sent: ${(err as Error).message}` } });
    }
  }
}
