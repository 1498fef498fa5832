import { randomUUID } from 'node:crypto';
import { Observable, isObservable, share } from 'rxjs';
import { AgentHost } from '../streams/agentHost.js';
import type { Network } from '../streams/network.js';
import type { CancelledBody, EventBody, OutcomeBody, StateBody, TaskStateBody } from '../streams/protocol.js';
import { createRandom } from '../streams/random.js';
import type { AgentContext, InProcessAgent, Subtask, Task } from '../streams/task.js';
import type { ConnectionCause } from '../streams/connectionCause.js';
import { WS_CLOSE, checkBody } from '../streams/wsCodec.js';
import { WsClientNetwork, WsConnectionError, type ConnectionRole, type WsClientEvent, type ReconnectOptions } from '../streams/wsNetwork.js';
import { NatsClientNetwork } from '../streams/natsClientNetwork.js';
import type { CoordinationEvent, CoordinationResult } from './events.js';
import { TASKS } from './service.js';
import { usageSampler, type UsageSamplerOptions } from './usageSampler.js';
import { COORDINATOR } from './topology.js';

/** What an agent process runs for a subtask: the `handle` of an in-process agent. */
export type Handler = (subtask: Subtask, context: AgentContext) => Observable<unknown> | Promise<unknown>;

/** How long an agent process waits before acknowledging an assignment on its own (well under the coordinator's 3 s). */
const ACK_DELAY_MS = 250;

/** Longest `sleepMs`/`spinMs` the built-in worker accepts: one day. */
const MAX_WORK_MS = 86_400_000;

function workMs(payload: Record<string, unknown>, field: 'sleepMs' | 'spinMs'): number | undefined {
  const value = payload[field];
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !(value >= 0 && value <= MAX_WORK_MS)) throw new RangeError(`payload.${field} must be a number of ms in [0, ${MAX_WORK_MS}], got ${JSON.stringify(value)}`);
  return value;
}

/**
 * The built-in worker of `rxswarm agent`: does what the subtask's payload describes.
 * `{ "sleepMs": 50 }` waits (reporting progress about once a second), `{ "spinMs": 5 }` keeps the
 * CPU busy (the process cannot beat meanwhile: keep spins short of the detection bound), and
 * `{ "fail": true }` fails. Fields combine (spin, then sleep); anything else is echoed back.
 * A sleep ends with an error as soon as `context.signal` is aborted.
 */
export const builtinWorker: Handler = (subtask, context) =>
  new Observable<unknown>(subscriber => {
    const { signal } = context;
    signal.throwIfAborted();
    const payload = subtask.payload;
    const fields = payload !== null && typeof payload === 'object' && !Array.isArray(payload) ? (payload as Record<string, unknown>) : {};
    if (fields.fail === true) throw new Error(`subtask ${subtask.id} asked to fail`);
    const sleep = workMs(fields, 'sleepMs');
    const spin = workMs(fields, 'spinMs');
    if (spin !== undefined) {
      const until = performance.now() + spin;
      while (performance.now() < until) {
        // busy on purpose: CPU-bound work
      }
    }
    const value = { agentId: context.agentId, subtaskId: subtask.id, ...(sleep === undefined ? {} : { sleptMs: sleep }), ...(spin === undefined ? {} : { spunMs: spin }), ...(sleep === undefined && spin === undefined ? { echo: payload ?? null } : {}) };
    if (sleep === undefined || sleep === 0) {
      subscriber.next(value);
      subscriber.complete();
      return undefined;
    }
    const started = context.scheduler.now();
    const progress = setInterval(() => context.heartbeat(Math.min(1, (context.scheduler.now() - started) / sleep)), 1000);
    const done = setTimeout(() => {
      subscriber.next(value);
      subscriber.complete();
    }, sleep);
    const abort = (): void => subscriber.error(signal.reason);
    signal.addEventListener('abort', abort, { once: true });
    return () => {
      clearInterval(progress);
      clearTimeout(done);
      signal.removeEventListener('abort', abort);
    };
  });

/** A client's network: over NATS for a `nats://` (or `tls://`) URL, else over WebSocket. */
export type ClientNetwork = WsClientNetwork | NatsClientNetwork;

/** Whether `url` names a NATS server (`nats://`, `tls://`) rather than a coordinator (`ws://`, `wss://`). */
export function isNatsUrl(url: string): boolean {
  return /^(nats|tls):\/\//.test(url);
}

interface ClientNetworkOptions {
  readonly url: string;
  readonly agentId: string;
  readonly token: string;
  readonly capabilities?: readonly string[];
  readonly role?: ConnectionRole;
  readonly slots?: number;
  readonly maxPayload?: number;
  readonly reconnect?: ReconnectOptions;
  readonly log?: (event: WsClientEvent) => void;
  /** WebSocket: what a turn sends goes out in one write (see `WsClientNetworkOptions.coalesceWrites`). */
  readonly coalesceWrites?: boolean;
  /** An attempt not joined within this long is abandoned (cause: timed out). Default: the transport's (10 s over WebSocket, 5 s a hello over NATS). */
  readonly connectTimeoutMs?: number;
}

/** NATS credentials from RXSWARM_NATS_USER and RXSWARM_NATS_PASSWORD, or RXSWARM_NATS_TOKEN (kept out of `ps`; the URL's win). */
export function natsCredentialsFromEnv(env: NodeJS.ProcessEnv = process.env): { user?: string; pass?: string; natsToken?: string } {
  return {
    ...(env['RXSWARM_NATS_USER'] === undefined ? {} : { user: env['RXSWARM_NATS_USER'], pass: env['RXSWARM_NATS_PASSWORD'] ?? '' }),
    ...(env['RXSWARM_NATS_TOKEN'] === undefined ? {} : { natsToken: env['RXSWARM_NATS_TOKEN'] }),
  };
}

/** The network of a client or agent process, by the URL's scheme. */
function clientNetwork(options: ClientNetworkOptions): ClientNetwork {
  if (!isNatsUrl(options.url)) return new WsClientNetwork(options);
  const { coalesceWrites: _ws, connectTimeoutMs, ...nats } = options;
  return new NatsClientNetwork({ ...natsCredentialsFromEnv(), ...nats, ...(connectTimeoutMs === undefined ? {} : { helloTimeoutMs: Math.min(5000, connectTimeoutMs) }) });
}

/**
 * The connection was never made: no attempt reached the service (refused, host not found, TLS,
 * timed out, or the hello refused), so nothing was sent to it.
 * `cause`: why, from the transport ({@link ConnectionCause}), when it knew; `code`: the close code.
 */
export class NotConnectedError extends Error {
  override name = 'NotConnectedError';
  constructor(
    message: string,
    readonly code: number,
    override readonly cause?: ConnectionCause,
  ) {
    super(message);
  }
}

type Disconnected = Extract<WsClientEvent, { type: 'disconnected' }>;

/** What a client says when its attempt ends in `event` before any join (`withinMs`: after trying that long). */
function notConnected({ code, reason, cause }: Pick<Disconnected, 'code' | 'reason' | 'cause'>, withinMs?: number): NotConnectedError {
  const closed = `close ${code}${reason ? `: ${reason}` : ''}`;
  const message =
    cause !== undefined
      ? `cannot connect${withinMs === undefined ? '' : ` within ${withinMs} ms`}: ${cause.message}`
      : code === WS_CLOSE.unauthenticated
        ? `the coordinator refused the token (${closed}): check --token or RXSWARM_TOKEN against the token \`rxswarm serve\` was given`
        : code === 1006
          ? `cannot connect: the connection closed before the coordinator answered (${closed}): is \`rxswarm serve\` running at that address?`
          : `the coordinator refused the connection (${closed})`;
  return new NotConnectedError(message, code, cause);
}

export interface AgentProcessOptions {
  /** `ws://host:port` of the coordinator service, or `nats://host:port` of the NATS server it listens on. */
  readonly url: string;
  readonly token: string;
  readonly id: string;
  readonly capabilities?: readonly string[];
  /** Subtasks run at once. Default 1. */
  readonly slots?: number;
  /** Default: {@link builtinWorker}. */
  readonly handler?: Handler;
  /** Heartbeat interval until the coordinator tells its own at hello (the agent then beats at that). Default 1000. */
  readonly heartbeatIntervalMs?: number;
  readonly reconnect?: ReconnectOptions;
  readonly onEvent?: (event: WsClientEvent) => void;
  /**
   * How the process measures its usage for its heartbeats (memory, CPU, event-loop delay; see
   * {@link usageSampler}), `children` being `--exec` children to count in. `false`: not measured
   * (only what handlers report through `context.usage` is sent). Default: measured.
   */
  readonly usage?: UsageSamplerOptions | false;
  /** What the agent sends within one turn of the event loop leaves in one write (default true; off only to measure it). */
  readonly coalesceWrites?: boolean;
}

export interface AgentProcess {
  readonly host: AgentHost;
  readonly network: ClientNetwork;
  /** Rejects when the connection is refused for good (bad token, id taken…). */
  readonly done: Promise<void>;
  /**
   * Leaves cleanly: running and queued work is handed back (the coordinator reassigns it at once),
   * and the running handlers' `context.signal`s are aborted.
   */
  leave(): Promise<void>;
  /**
   * After {@link leave}: resolves once every Promise a handler returned has settled, or after
   * `graceMs`, with how many were still pending then (0: all ended). A handler that ignores its
   * signal cannot hold the agent: the caller exits anyway.
   */
  settled(graceMs: number): Promise<number>;
}

/**
 * An agent in this process serving a remote coordinator: an {@link AgentHost} on a
 * {@link WsClientNetwork}. Connection loss is retried with backoff; when it rejoins a different
 * server instance (the service restarted) the host starts over, as a new incarnation — the new
 * coordinator knows nothing of the old one's assignments — on the connection it has: the new
 * coordinator sees one join, not a join, a departure and a join.
 */
export function startAgent({ url, token, id, capabilities = [], slots = 1, handler = builtinWorker, heartbeatIntervalMs = 1000, reconnect, onEvent, usage = {}, coalesceWrites = true }: AgentProcessOptions): AgentProcess {
  const network = clientNetwork({ url, agentId: id, token, capabilities, slots, coalesceWrites, ...(reconnect === undefined ? {} : { reconnect }), log: event => onEvent?.(event) });
  // The Promises handlers returned and that have not settled: what a departing agent waits for.
  const pending = new Set<Promise<void>>();
  const handle: Handler = (subtask, context) => {
    const output = handler(subtask, context);
    if (!isObservable(output) && typeof (output as Partial<PromiseLike<unknown>> | null)?.then === 'function') {
      const tracked = Promise.resolve(output).then(
        () => undefined,
        () => undefined,
      );
      pending.add(tracked);
      void tracked.then(() => pending.delete(tracked));
    }
    return output;
  };
  const agent: InProcessAgent = { id, capabilities, concurrency: slots, handle };
  // One inbox for the life of the process: a host that starts over resubscribes to it, and the
  // connection stays (unsubscribing the client's own inbox would leave and reconnect).
  const inbox = network.join(id).pipe(share({ resetOnRefCountZero: false }));
  const lasting: Network = {
    scheduler: network.scheduler,
    join: () => inbox,
    send: message => network.send(message),
    get stats() {
      return network.stats;
    },
  };
  const host = new AgentHost(agent, {
    network: lasting,
    coordinatorId: COORDINATOR,
    heartbeatIntervalMs,
    heartbeatJitterMs: heartbeatIntervalMs / 10,
    random: createRandom(process.pid),
    firstIncarnation: Date.now(), // above any earlier process under this id
    // Work shorter than this is acknowledged by its result: one frame less per subtask.
    ackDelayMs: ACK_DELAY_MS,
  });
  const sampler = usage === false ? undefined : usageSampler(usage);
  if (sampler !== undefined) host.setUsage(() => sampler.read());
  let settle!: { resolve: () => void; reject: (err: unknown) => void };
  const done = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
  let session: string | undefined;
  const events = network.events$.subscribe(event => {
    if (event.type === 'joined') {
      // The coordinator's detector expects its own rhythm: beat at it.
      if (event.heartbeatMs !== undefined && event.heartbeatMs !== host.heartbeatIntervalMs) host.setHeartbeatInterval(event.heartbeatMs);
      // Acknowledgements held back at most a quarter of the coordinator's patience.
      if (event.ackTimeoutMs !== undefined) host.setAckDelay(Math.min(ACK_DELAY_MS, event.ackTimeoutMs / 4));
      // Another server instance (the service restarted): its coordinator knows nothing of the
      // old one's attempts, so the host starts over rather than mistake new assignments for old.
      if (session !== undefined && event.session !== session) host.restart();
      session = event.session;
    } else if (event.type === 'disconnected' && !event.willReconnect) {
      // The host's inbox subscription drives the connection; a final refusal ends the agent.
      settle.reject(new WsConnectionError(event.code, event.reason, event.cause));
    }
  });
  host.start();
  return {
    host,
    network,
    done,
    leave: async () => {
      host.leave();
      sampler?.stop();
      // Let the goodbye heartbeat reach the socket before the leave frame and the close.
      await new Promise(resolve => setImmediate(resolve));
      events.unsubscribe();
      await network.close();
      settle.resolve();
    },
    settled: async graceMs => {
      if (!(graceMs >= 0 && graceMs <= 2 ** 31 - 1)) throw new RangeError(`graceMs must be a number of ms in [0, ${2 ** 31 - 1}], got ${String(graceMs)}`);
      if (pending.size === 0) return 0;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([Promise.all(pending), new Promise(resolve => (timer = setTimeout(resolve, graceMs)))]);
      clearTimeout(timer);
      return pending.size;
    },
  };
}

export interface SubmitOptions {
  readonly url: string;
  readonly token: string;
  readonly task: Task;
  /** Every event of the run, as the service streams them; without it none are sent. */
  readonly onEvent?: (event: CoordinationEvent) => void;
  /** Where the task stands: taken (with its queue position), started, and every few seconds while it runs. */
  readonly onState?: (state: TaskStateBody) => void;
  /**
   * Once the service was reached, gives up when it has said nothing for this long (a stopped or
   * unreachable coordinator), connected or not: it reconnects and re-attaches to the task
   * meanwhile, also across a coordinator restart. Before it was first reached: over WebSocket the
   * first attempt decides (bounded by this and 10 s), over NATS attempts go on within this limit
   * (no coordinator answering may be a failover); either way the failure names its cause. Default 30,000.
   */
  readonly silenceMs?: number;
  /** Largest frame taken from the service: the whole result comes in one. Default 256 MiB. */
  readonly maxPayload?: number;
}

const SUBMIT_MAX_PAYLOAD = 256 * 1024 * 1024;

/** The task is not valid, or the service refused it (its reason is the message). */
export class TaskRefusedError extends Error {
  override name = 'TaskRefusedError';
}

/** The service was silent for longer than the limit: the task may still run (`rxswarm attach` follows it). */
export class CoordinatorSilentError extends Error {
  override name = 'CoordinatorSilentError';
}

/** A task followed to its result: `result` settles with it; `detach` stops following (the task runs on). */
export interface FollowedTask {
  readonly result: Promise<CoordinationResult>;
  /** Stops following; the result then rejects with `detached`. */
  detach(): void;
}

/**
 * Submits a task to a coordinator service (`rxswarm run`) and resolves with its result. Rejects
 * with a {@link TaskRefusedError} when the service refuses the task, a {@link NotConnectedError} at
 * once when the first connection cannot be made (refused, host not found, TLS, timed out, bad token:
 * the task was not submitted), a {@link CoordinatorSilentError} when the service, once reached, says
 * nothing for `silenceMs`, or an Error when a later connection is refused for good. A connection
 * lost after it was made is not the end: it reconnects and re-attaches to the task by its id.
 */
export function submitTask(options: SubmitOptions): Promise<CoordinationResult> {
  return followTask({ ...options, submit: true }).result;
}

/**
 * Follows a task by id (`rxswarm attach`), or submits it first (`submit: true`), to its result,
 * across lost connections and coordinator restarts (see {@link submitTask}).
 */
export function followTask({
  url,
  token,
  task,
  submit,
  onEvent,
  onState,
  silenceMs = 30_000,
  maxPayload = SUBMIT_MAX_PAYLOAD,
}: Omit<SubmitOptions, 'task'> & { readonly task: Task | { readonly id: string }; readonly submit: boolean }): FollowedTask {
  if (submit) {
    const invalid = checkBody('submit', { task });
    if (invalid !== undefined) return { result: Promise.reject(new TaskRefusedError(`not a valid task: ${invalid}`)), detach: () => undefined };
  }
  if (!(silenceMs > 0 && silenceMs <= 2 ** 31 - 1)) throw new RangeError(`silenceMs must be a number of ms in (0, ${2 ** 31 - 1}], got ${String(silenceMs)}`);
  const id = `run-${process.pid}-${randomUUID().slice(0, 8)}`;
  // The first attempt is bounded by the silence limit too (the transport's own bound when shorter).
  const network = clientNetwork({ url, agentId: id, token, role: 'client', maxPayload, connectTimeoutMs: Math.min(10_000, silenceMs) });
  let detach = (): void => undefined;
  const result = new Promise<CoordinationResult>((resolve, reject) => {
    /** The service has the task (it said where it stands): from now on, only attach. */
    let taken = !submit;
    /** Whether a connection was ever made: until then a failure is final and nothing was sent. */
    let connected = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    // Over NATS, a hello nobody answers may be a failover between leaders: the first connection is
    // retried within the silence limit, then fails with the last attempt's cause. Over WebSocket
    // the first failed attempt (bounded by the connect timeout) is the answer.
    const patient = isNatsUrl(url);
    let failure: Disconnected | undefined;
    if (patient) {
      timer = setTimeout(() => {
        finish();
        reject(failure === undefined ? new NotConnectedError(`cannot connect: no coordinator answered within ${silenceMs} ms`, 1006) : notConnected(failure, silenceMs));
      }, silenceMs);
    }
    // Started by the first join: before it, the bound above or the connect timeout.
    const heard = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        finish();
        reject(new CoordinatorSilentError(`the coordinator has said nothing for ${silenceMs} ms; task ${task.id} may still run (rxswarm attach ${task.id} follows it)`));
      }, silenceMs);
    };
    const joined = network.events$.subscribe(event => {
      if (event.type === 'disconnected' && !connected) {
        failure = event;
        if (patient && event.willReconnect) return;
        // Never reached: say why now rather than retry until the silence limit.
        finish();
        reject(notConnected(event));
        return;
      }
      if (event.type === 'disconnected' && !event.willReconnect) {
        finish();
        reject(new Error(`connection closed (close ${event.code}${event.reason ? `: ${event.reason}` : ''})`));
        return;
      }
      if (event.type === 'error' && event.code === WS_CLOSE.tooBig) {
        // The service has something for us (the outcome) that this connection does not take.
        finish();
        reject(new Error(`the service could not send the outcome: ${event.error}; its result is unknown (raise maxPayload)`));
        return;
      }
      if (event.type !== 'joined') return;
      connected = true;
      heard();
      // Every (re)connection: submit until the service has it, then follow it by id.
      if (taken) network.send({ from: id, to: TASKS, kind: 'attach', body: { taskId: task.id, watch: onEvent !== undefined } });
      else network.send({ from: id, to: TASKS, kind: 'submit', body: { task: task as Task, watch: onEvent !== undefined } });
    });
    const inbox = network.join(id).subscribe({
      next: envelope => {
        if ((envelope.body as { taskId?: unknown }).taskId !== task.id) return;
        heard();
        if (envelope.kind === 'task-state') {
          taken = true;
          onState?.(envelope.body as TaskStateBody);
          return;
        }
        if (envelope.kind === 'event') onEvent?.((envelope.body as EventBody).event as unknown as CoordinationEvent);
        if (envelope.kind !== 'outcome') return;
        const outcome = envelope.body as OutcomeBody;
        finish();
        if (outcome.result === undefined) reject(new TaskRefusedError(outcome.error ?? 'the service gave no result'));
        else resolve(outcome.result as CoordinationResult);
      },
      error: (err: unknown) => {
        finish();
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    });
    detach = () => {
      finish();
      reject(new Error('detached'));
    };
    function finish(): void {
      clearTimeout(timer);
      joined.unsubscribe();
      inbox.unsubscribe();
      void network.close();
    }
  });
  return { result, detach: () => detach() };
}

export interface AskOptions {
  readonly url: string;
  readonly token: string;
  /** Gives up after this long without a connection, and then without the answer. Default 10,000. */
  readonly timeoutMs?: number;
  /** Largest frame taken from the service (a state with many tasks). Default 256 MiB. */
  readonly maxPayload?: number;
}

/**
 * One question to a coordinator service and its answer: connects as a client, sends `kind` with
 * `body` to the service's task desk, resolves with the body of the first `answer` envelope, and
 * closes. Rejects with a {@link NotConnectedError} when the connection cannot be made, an Error when
 * it is lost, or no answer comes within `timeoutMs` of the join.
 */
function ask<T>({ url, token, timeoutMs = 10_000, maxPayload = SUBMIT_MAX_PAYLOAD }: AskOptions, kind: 'watch' | 'cancel-task', body: unknown, answer: 'state' | 'cancelled'): Promise<T> {
  const id = `ask-${process.pid}-${randomUUID().slice(0, 8)}`;
  // One attempt: connecting is bounded by the transport (within timeoutMs), the answer by the timer from the join.
  const network = clientNetwork({ url, agentId: id, token, role: 'client', maxPayload, reconnect: { maxAttempts: 2 }, connectTimeoutMs: timeoutMs });
  return new Promise<T>((resolve, reject) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let connected = false;
    const joined = network.events$.subscribe(event => {
      if (event.type === 'disconnected') {
        finish();
        reject(connected ? new Error(`connection lost (close ${event.code}${event.reason ? `: ${event.reason}` : ''})`) : notConnected(event));
      } else if (event.type === 'joined') {
        connected = true;
        timer ??= setTimeout(() => {
          finish();
          reject(new Error(`no answer within ${timeoutMs} ms`));
        }, timeoutMs);
        network.send({ from: id, to: TASKS, kind, body });
      }
    });
    const inbox = network.join(id).subscribe({
      next: envelope => {
        if (envelope.kind !== answer) return;
        finish();
        resolve(envelope.body as T);
      },
      error: (err: unknown) => {
        finish();
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    });
    function finish(): void {
      clearTimeout(timer);
      joined.unsubscribe();
      inbox.unsubscribe();
      void network.close();
    }
  });
}

/** The service's state now (`rxswarm status`, `rxswarm tasks`): agents, protocol, tasks, attention; subtask rows only if asked. */
export function readServiceState(options: AskOptions & { readonly subtasks?: boolean }): Promise<StateBody> {
  return ask<StateBody>(options, 'watch', { live: false, subtasks: options.subtasks ?? false }, 'state');
}

/** Asks the service to cancel a task (`rxswarm cancel`): whether it did, else why not. */
export function cancelServiceTask(options: AskOptions & { readonly taskId: string }): Promise<CancelledBody> {
  return ask<CancelledBody>(options, 'cancel-task', { taskId: options.taskId }, 'cancelled');
}
