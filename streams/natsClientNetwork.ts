import { randomUUID } from 'node:crypto';
import type { NatsConnection, Subscription as NatsSubscription } from '@nats-io/transport-node';
import { Observable, Subject, asyncScheduler, type SchedulerLike, type Subscriber } from 'rxjs';
import { requireInRange, requireInteger, requireNumber, requireScheduler } from '../operators/internal/validate.js';
import type { ConnectionCause } from './connectionCause.js';
import { assertOutgoing, requireId, type Envelope, type Outgoing } from './messages.js';
import type { Network } from './network.js';
import { NatsSetupError, connectNats, type NatsEndpoint } from './natsConnect.js';
import { READY_FRAME, encodeEnvelope, natsSubjects } from './natsNetwork.js';
import { decodeHandshake, openHandshake, tokenKey, type SessionSecrets } from './natsSession.js';
import { hopsLeft, type AssignBody, type CancelBody, type ResultBody, type Routed } from './protocol.js';
import { signResult, verifyOrder } from './signing.js';
import { CLIENT_MAX_DEPTH, DEFAULT_MAX_BYTES, WS_CLOSE, decode, encode, utf8Above } from './wsCodec.js';
import { Counters, ORDER_KINDS, WsConnectionError, type ConnectionRole, type ReconnectOptions, type WsClientEvent, type WsClientState, type WsNetworkStats } from './wsNetwork.js';

// A real transport at the edge of the system: wall time and timers are allowed here.

export interface NatsClientNetworkOptions extends Partial<NatsEndpoint> {
  /** `nats://host:port` (with the credentials, or apart): used unless `connection` is given. */
  readonly url?: string;
  /** An open connection to use (not closed by `close()`); else one is made from `url`. */
  readonly connection?: NatsConnection;
  /** The node id this process joins under. */
  readonly agentId: string;
  /** The rxswarm token the coordinator expects (proved at hello, never sent). */
  readonly token: string;
  readonly capabilities?: readonly string[];
  readonly role?: ConnectionRole;
  readonly slots?: number;
  /** The coordinator's subject prefix. Default `rxswarm`. */
  readonly prefix?: string;
  readonly scheduler?: SchedulerLike;
  /** Largest frame taken from the coordinator (told at hello). Default 16 MiB (the NATS server's max_payload bounds it too). */
  readonly maxPayload?: number;
  /** A hello not answered this long is retried. Default 5000 ms. */
  readonly helloTimeoutMs?: number;
  readonly reconnect?: ReconnectOptions;
  readonly random?: () => number;
  readonly log?: (event: WsClientEvent) => void;
}

/** Codes of a refused hello after which retrying cannot help: a wrong token, a bad hello, an id of the coordinator's own. */
const FINAL_CODES = new Set<number>([WS_CLOSE.unauthenticated, WS_CLOSE.unsupportedVersion, WS_CLOSE.policyViolation, WS_CLOSE.invalidPayload, WS_CLOSE.tooBig]);

const decoder = new TextDecoder();

function cause(kind: ConnectionCause['kind'], message: string): ConnectionCause {
  return { kind, code: undefined, message };
}

/**
 * An agent's (or a client's) side of the NATS transport: a {@link Network} with one node, this
 * process's agent. `join(agentId)` connects to NATS (unless given a connection), says hello on
 * `PREFIX.hello` (see `natsSession.ts`), listens on its session's subject and yields the
 * envelopes addressed to it; `send` publishes as the agent. Events and states are those of
 * {@link WsClientNetwork}, so the same agent code runs on either transport.
 *
 * The NATS client reconnects to the server by itself; what this class retries, with backoff and
 * jitter, is the session: a hello nobody answers (no coordinator yet: `no responders`), refused
 * as retryable (4009: the id is still held), or a session the coordinator no longer knows (it
 * restarted, or found this one silent: it says 1001 and the agent says hello again — a different
 * `session` in its `joined` event tells the agent to start over). A hello refused for good
 * (wrong token, an id of the coordinator's process) errors the inbox with a {@link WsConnectionError}.
 *
 * ```
 * state:  connecting ─hello/join/ready─▶ open ─error 1001─▶ waiting (backoff) ─▶ connecting ─▶ open …
 * ```
 *
 * @example
 * const network = new NatsClientNetwork({ url: 'nats://10.0.0.2:4222', agentId: 'worker-1', token, capabilities: ['code'] });
 * new AgentHost(agent, { network, coordinatorId: 'coordinator', heartbeatIntervalMs: 1000, heartbeatJitterMs: 100, random }).start();
 */
export class NatsClientNetwork<E extends Envelope = Envelope> implements Network<E> {
  readonly scheduler: SchedulerLike;
  readonly agentId: string;
  readonly instance = randomUUID().slice(0, 32);
  private readonly endpoint: NatsEndpoint | undefined;
  private readonly given: NatsConnection | undefined;
  private readonly tkey: Buffer;
  private readonly capabilities: readonly string[];
  private readonly role: ConnectionRole;
  private readonly slots: number;
  private readonly subjects: ReturnType<typeof natsSubjects>;
  private readonly maxPayload: number;
  private readonly helloTimeoutMs: number;
  private readonly initialDelayMs: number;
  private readonly factor: number;
  private readonly maxDelayMs: number;
  private readonly jitter: number;
  private readonly maxAttempts: number;
  private readonly random: () => number;
  private readonly log: (event: WsClientEvent) => void;
  private readonly events = new Subject<WsClientEvent>();
  private readonly counters = new Counters();
  private connection: NatsConnection | undefined;
  private secrets: SessionSecrets | undefined;
  private sub: NatsSubscription | undefined;
  private inbox: Subscriber<E> | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stateValue: WsClientState = 'idle';
  private maxValueBytes = Infinity;
  private attempts = 0;
  private connects = 0;
  /** Bumped whenever a session ends: answers of an older attempt are ignored. */
  private epoch = 0;
  /** Keeps a session that has nothing to say alive (a client waiting for its outcome): a `ready` frame when nothing was sent for a while. */
  private keepalive: ReturnType<typeof setInterval> | undefined;
  private sentAt = 0;

  constructor({
    url,
    connection,
    natsToken,
    user,
    pass,
    agentId,
    token,
    capabilities = [],
    role = 'agent',
    slots = 1,
    prefix = 'rxswarm',
    scheduler = asyncScheduler,
    maxPayload = 16 * DEFAULT_MAX_BYTES,
    helloTimeoutMs = 5000,
    reconnect = {},
    random = Math.random,
    log = () => undefined,
  }: NatsClientNetworkOptions) {
    if (connection === undefined && (typeof url !== 'string' || !/^(nats|tls):\/\//.test(url))) throw new RangeError(`url must be nats://host:port (or give a connection), got ${String(url)}`);
    this.given = connection;
    this.endpoint = connection === undefined ? { url: url as string, ...(natsToken === undefined ? {} : { natsToken }), ...(user === undefined ? {} : { user }), ...(pass === undefined ? {} : { pass }) } : undefined;
    this.agentId = requireId('agentId', agentId);
    if (typeof token !== 'string' || token.length === 0) throw new RangeError('token must be a non-empty string');
    this.tkey = tokenKey(token);
    if (!Array.isArray(capabilities)) throw new RangeError(`capabilities must be an array of strings, got ${String(capabilities)}`);
    capabilities.forEach((c, i) => requireId(`capabilities[${i}]`, c));
    this.capabilities = [...capabilities];
    if (role !== 'agent' && role !== 'client') throw new RangeError(`role must be 'agent' or 'client', got ${String(role)}`);
    this.role = role;
    this.slots = requireInteger('slots', slots, 1);
    requireInRange('slots', slots, 1, 1024);
    if (typeof prefix !== 'string' || !/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(prefix)) throw new RangeError(`prefix must be NATS subject tokens, got ${JSON.stringify(prefix)}`);
    this.subjects = natsSubjects(prefix);
    this.scheduler = requireScheduler(scheduler);
    this.maxPayload = requireInteger('maxPayload', maxPayload, 64);
    this.helloTimeoutMs = requireNumber('helloTimeoutMs', helloTimeoutMs, 0, true);
    const { initialDelayMs = 100, factor = 2, maxDelayMs = 5000, jitter = 0.5, maxAttempts = Infinity } = reconnect;
    this.initialDelayMs = requireNumber('reconnect.initialDelayMs', initialDelayMs, 0);
    this.factor = requireNumber('reconnect.factor', factor, 1);
    this.maxDelayMs = requireNumber('reconnect.maxDelayMs', maxDelayMs, this.initialDelayMs);
    this.jitter = requireInRange('reconnect.jitter', jitter, 0, 1);
    this.maxAttempts = maxAttempts === Infinity ? Infinity : requireInteger('reconnect.maxAttempts', maxAttempts, 1);
    if (typeof random !== 'function') throw new RangeError(`random must be a function, got ${String(random)}`);
    if (typeof log !== 'function') throw new RangeError(`log must be a function, got ${String(log)}`);
    this.random = random;
    this.log = log;
  }

  get state(): WsClientState {
    return this.stateValue;
  }

  get events$(): Observable<WsClientEvent> {
    return this.events.asObservable();
  }

  get stats(): WsNetworkStats {
    return this.counters.snapshot(0);
  }

  join(nodeId: string): Observable<E> {
    requireId('nodeId', nodeId);
    return new Observable<E>(subscriber => {
      if (nodeId !== this.agentId) {
        subscriber.error(new Error(`this client joins only as ${JSON.stringify(this.agentId)}, not ${JSON.stringify(nodeId)}`));
        return undefined;
      }
      if (this.inbox !== undefined) {
        subscriber.error(new Error(`node ${JSON.stringify(nodeId)} has already joined this network (share its inbox to fan it out)`));
        return undefined;
      }
      this.inbox = subscriber;
      this.attempts = 0;
      void this.attempt();
      return () => {
        if (this.inbox === subscriber) this.stop();
      };
    });
  }

  /** Sends as this agent. Throws for a malformed envelope, a `from` other than the agent, a kind the wire does not carry. */
  send(message: Outgoing<E>): void {
    assertOutgoing(message);
    const { from, to, kind, body } = message;
    if (from !== this.agentId) throw new RangeError(`envelope.from must be this client's agent id ${JSON.stringify(this.agentId)}, got ${JSON.stringify(from)}`);
    const frame = this.frameOf(from, to, kind, body);
    const counter = this.counters.count(kind);
    const { connection, secrets } = this;
    if (this.stateValue !== 'open' || connection === undefined || secrets === undefined) return this.counters.drop(counter, 'down');
    try {
      connection.publish(this.subjects.in(secrets.sid), frame);
      this.sentAt = performance.now();
      this.counters.deliver(counter);
    } catch {
      this.counters.drop(counter, 'down');
    }
  }

  /** Leaves (a `leave` frame, flushed) and completes `events$`; a connection it made is closed. */
  async close(): Promise<void> {
    this.inbox?.unsubscribe();
    this.stop();
    this.events.complete();
    const connection = this.connection;
    this.connection = undefined;
    if (connection !== undefined && this.given === undefined && !connection.isClosed()) {
      await connection.flush().catch(() => undefined);
      await connection.close().catch(() => undefined);
    }
  }

  private frameOf(from: string, to: string, kind: string, body: unknown): string {
    if (kind !== 'result' || body === null || typeof body !== 'object' || (body as ResultBody).agentId !== this.agentId) return encodeEnvelope(from, to, kind, body);
    let result = body as ResultBody;
    let frame = this.signedFrame(from, to, result);
    if (utf8Above(frame, this.maxValueBytes + 64 * 1024)) {
      const { value: _value, ...rest } = result;
      result = { ...rest, ok: false, error: `result of ${Buffer.byteLength(frame, 'utf8')} bytes is above the coordinator's limit of ${this.maxValueBytes}` };
      frame = this.signedFrame(from, to, result);
    }
    return frame;
  }

  private signedFrame(from: string, to: string, result: ResultBody): string {
    const key = this.secrets?.key;
    return encodeEnvelope(from, to, 'result', key === undefined ? result : { ...result, mac: signResult(key, result) });
  }

  private emit(event: WsClientEvent): void {
    try {
      this.log(event);
    } catch {
      // A throwing logger must not break the session.
    }
    this.events.next(event);
  }

  private stop(): void {
    this.inbox = undefined;
    this.epoch++;
    clearTimeout(this.timer);
    this.timer = undefined;
    const { connection, secrets } = this;
    if (this.stateValue === 'open' && connection !== undefined && secrets !== undefined && !connection.isClosed()) {
      try {
        connection.publish(this.subjects.in(secrets.sid), encode({ v: 1, type: 'leave' }));
      } catch {
        // closing already
      }
    }
    this.endSession();
    this.stateValue = 'idle';
  }

  private endSession(): void {
    clearInterval(this.keepalive);
    this.keepalive = undefined;
    this.sub?.unsubscribe();
    this.sub = undefined;
    this.secrets = undefined;
  }

  /** One hello: connect if needed, ask, and on a join listen and say ready. */
  private async attempt(): Promise<void> {
    this.timer = undefined;
    const epoch = ++this.epoch;
    this.stateValue = 'connecting';
    let connection = this.connection ?? this.given;
    if (connection === undefined) {
      try {
        connection = await connectNats({ ...(this.endpoint as NatsEndpoint), name: `rxswarm ${this.role} ${this.agentId}`, requireJetStream: false, timeoutMs: this.helloTimeoutMs });
      } catch (err) {
        if (epoch !== this.epoch) return;
        const final = err instanceof NatsSetupError && err.final;
        return this.failed(final ? WS_CLOSE.unauthenticated : 1006, (err as Error).message, cause(final ? 'failed' : 'refused', (err as Error).message), final);
      }
      if (epoch !== this.epoch) {
        await connection.close().catch(() => undefined);
        return;
      }
      this.connection = connection;
      // The client reconnects to NATS by itself, for ever; it closes only for good (credentials
      // revoked, or closed here): an agent still joined then stops with the reason.
      const made = connection;
      void made.closed().then(err => {
        if (this.connection !== made) return;
        this.connection = undefined;
        this.epoch++;
        this.endSession();
        this.failed(1006, `the NATS connection closed${err instanceof Error ? `: ${err.message}` : ''}`, cause('reset', 'the NATS connection closed for good'), true);
      });
    }
    const { hello, finish } = openHandshake(this.tkey, { agentId: this.agentId, capabilities: [...this.capabilities], role: this.role, slots: this.slots, instance: this.instance, maxFrameBytes: this.maxPayload });
    let reply: string;
    try {
      const msg = await connection.request(this.subjects.hello, JSON.stringify(hello), { timeout: this.helloTimeoutMs });
      reply = decoder.decode(msg.data);
    } catch (err) {
      if (epoch !== this.epoch) return;
      const text = (err as Error).message;
      const none = /no responders|503/i.test(`${text} ${(err as { code?: unknown }).code ?? ''} ${(err as Error).name}`);
      return this.failed(1006, text, none ? cause('refused', `no coordinator answers on ${this.subjects.hello}: is \`rxswarm serve --nats\` running against this NATS server (same prefix)?`) : cause('timed out', `no answer to the hello on ${this.subjects.hello} within ${this.helloTimeoutMs} ms`), false);
    }
    if (epoch !== this.epoch) return;
    const joined = decodeHandshake('join', reply, 64 * 1024);
    if (!joined.ok) {
      const refused = decodeHandshake('error', reply, 64 * 1024);
      if (refused.ok) return this.failed(refused.message.code, refused.message.error, undefined, FINAL_CODES.has(refused.message.code));
      this.emit({ type: 'error', code: WS_CLOSE.invalidPayload, error: `ignored an answer to the hello: ${joined.error}` });
      return this.failed(WS_CLOSE.invalidPayload, joined.error, cause('not a coordinator', `the answer on ${this.subjects.hello} is not a join: ${joined.error}`), false);
    }
    const join = joined.message;
    const secrets = finish(join);
    if (secrets === undefined) {
      // Someone without the token answered (or altered the answer): not our coordinator.
      this.emit({ type: 'error', code: WS_CLOSE.forgedSender, error: 'ignored a join that does not prove the token' });
      return this.failed(WS_CLOSE.forgedSender, 'a join that does not prove the token', cause('not a coordinator', 'the answer to the hello does not prove the token'), false);
    }
    this.secrets = secrets;
    this.maxValueBytes = join.maxValueBytes ?? Infinity;
    this.sub = connection.subscribe(this.subjects.to(secrets.sid), {
      callback: (err, msg) => {
        if (err === null && epoch === this.epoch) this.onFrame(msg.data);
      },
    });
    try {
      await connection.flush(); // the coordinator may write as soon as it hears ready: listen first
      connection.publish(this.subjects.in(secrets.sid), READY_FRAME);
    } catch (err) {
      if (epoch !== this.epoch) return;
      this.endSession();
      return this.failed(1006, (err as Error).message, cause('reset', (err as Error).message), false);
    }
    if (epoch !== this.epoch) return;
    const every = (join.idleMs ?? 5000) / 4;
    this.sentAt = performance.now();
    this.keepalive = setInterval(() => {
      if (epoch !== this.epoch || performance.now() - this.sentAt < every) return;
      this.sentAt = performance.now();
      try {
        connection.publish(this.subjects.in(secrets.sid), READY_FRAME);
      } catch {
        // closed: the session ends with it
      }
    }, every);
    this.keepalive.unref();
    this.stateValue = 'open';
    this.attempts = 0;
    this.connects++;
    this.emit({
      type: 'joined',
      agentId: this.agentId,
      connects: this.connects,
      session: join.session,
      ...(join.heartbeatMs === undefined ? {} : { heartbeatMs: join.heartbeatMs }),
      ...(join.ackTimeoutMs === undefined ? {} : { ackTimeoutMs: join.ackTimeoutMs }),
    });
  }

  private onFrame(data: Uint8Array): void {
    if (data.length > this.maxPayload) {
      this.counters.rejected++;
      this.emit({ type: 'error', code: WS_CLOSE.tooBig, error: `ignored a frame of ${data.length} bytes from the coordinator (maxPayload ${this.maxPayload})` });
      return;
    }
    const decoded = decode(decoder.decode(data), { maxBytes: this.maxPayload, maxDepth: CLIENT_MAX_DEPTH });
    if (!decoded.ok) {
      this.counters.rejected++;
      this.emit({ type: 'error', code: decoded.closeCode, error: `ignored a frame from the coordinator: ${decoded.error}` });
      return;
    }
    const message = decoded.message;
    if (message.type === 'error') {
      this.emit({ type: 'error', code: message.code, error: message.error });
      // Anything but a dropped forgery ends the session on the coordinator's side: say hello again.
      if (message.code !== WS_CLOSE.forgedSender && message.code !== WS_CLOSE.tooBig) {
        this.epoch++;
        this.endSession();
        this.failed(message.code, message.error, undefined, message.code === WS_CLOSE.policyViolation);
      }
      return;
    }
    if (message.type !== 'envelope') return;
    const inbox = this.inbox;
    const key = this.secrets?.key;
    if (inbox === undefined || message.to !== this.agentId) {
      this.counters.rejected++;
      return;
    }
    if (key !== undefined && ORDER_KINDS.has(message.kind) && hopsLeft(message.body as Routed) === 0 && !verifyOrder(key, message.kind as 'assign' | 'cancel', this.agentId, message.body as AssignBody | CancelBody)) {
      this.counters.rejected++;
      this.emit({ type: 'error', code: WS_CLOSE.forgedSender, error: `ignored an unsigned or altered ${message.kind} relayed by ${JSON.stringify(message.from)}` });
      return;
    }
    this.counters.received++;
    inbox.next({ from: message.from, to: message.to, kind: message.kind, body: message.body, sentAt: this.scheduler.now() } as E);
  }

  /** The attempt (or the session) failed: retry with backoff, or give up for good. */
  private failed(code: number, reason: string, why: ConnectionCause | undefined, final: boolean): void {
    const inbox = this.inbox;
    if (inbox === undefined) return;
    this.attempts++;
    const exhausted = this.attempts > this.maxAttempts;
    this.emit({ type: 'disconnected', code, reason, willReconnect: !final && !exhausted, cause: why });
    if (final || exhausted) {
      this.stateValue = 'failed';
      this.inbox = undefined;
      inbox.error(new WsConnectionError(code, exhausted && !final ? `gave up after ${this.maxAttempts} attempt${this.maxAttempts === 1 ? '' : 's'} (last: ${reason})` : reason, why));
      return;
    }
    this.stateValue = 'waiting';
    const base = Math.min(this.maxDelayMs, this.initialDelayMs * this.factor ** Math.max(0, this.attempts - 1));
    const delayMs = base * (1 - this.jitter * this.random());
    this.emit({ type: 'reconnecting', attempt: this.attempts, delayMs });
    this.timer = setTimeout(() => {
      if (this.inbox === inbox) void this.attempt();
    }, delayMs);
  }
}
