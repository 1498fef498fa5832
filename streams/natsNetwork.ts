import { randomBytes, randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Msg, NatsConnection, Subscription as NatsSubscription } from '@nats-io/transport-node';
import { Observable, Subject, asyncScheduler, concat, defer, filter, from, map, type SchedulerLike, type Subscriber, type Subscription } from 'rxjs';
import { requireInteger, requireNumber, requireScheduler } from '../operators/internal/validate.js';
import { assertOutgoing, requireId, type Envelope, type Outgoing } from './messages.js';
import type { Network, RemoteMember } from './network.js';
import { acceptHandshake, decodeHandshake, helloProven, tokenKey } from './natsSession.js';
import { hopsLeft, type AssignBody, type CancelBody, type ResultBody, type Routed } from './protocol.js';
import { keyFrom, newSessionKey, signOrder, signResult, verifyOrder, verifyResult } from './signing.js';
import { DEFAULT_MAX_BYTES, WS_CLOSE, decode, encode, isWireKind, utf8Above, type WireKind, type WireMessage, type WsCloseCode } from './wsCodec.js';
import { CLIENT_KINDS, Counters, ORDER_KINDS, SERVICE_KINDS, defaultServerLog, loopingRoute, onWire, sizedChild, sizedValue, type ConnectionRole, type KindCounter, type RemoteAgent, type WsNetworkStats, type WsServerEvent } from './wsNetwork.js';

// Wall-clock time and timers are allowed here: a real transport, at the edge of the system (the
// architecture test exempts streams/nats*.ts, as streams/ws*.ts). Message stamps still come from
// the scheduler.

/** Subjects of one rxswarm coordinator on a NATS server, under `prefix` (default `rxswarm`). */
export function natsSubjects(prefix: string): { readonly hello: string; readonly ingress: string; in(sid: string): string; to(sid: string): string; loop(instance: string): string } {
  return {
    hello: `${prefix}.hello`,
    ingress: `${prefix}.in.*`,
    in: sid => `${prefix}.in.${sid}`,
    to: sid => `${prefix}.to.${sid}`,
    loop: instance => `${prefix}.loop.${instance}`,
  };
}

/** The frame an agent sends on its session's subject once it listens on its own: the session may carry work from now on. */
export const READY_FRAME = '{"v":1,"type":"ready"}';

export interface NatsNetworkOptions {
  /** A connection from `connectNats` (its server checked). */
  readonly connection: NatsConnection;
  /** The shared secret every hello must prove (never sent: see `natsSession.ts`). Required. */
  readonly token: string;
  /** First token of every subject: several swarms can share one NATS server under different prefixes. Default `rxswarm`. */
  readonly prefix?: string;
  /** Stamps `sentAt` and delivers local-to-local messages. Default `asyncScheduler`. */
  readonly scheduler?: SchedulerLike;
  /** Largest frame from a client (whole tasks) in bytes, at most the server's `max_payload`. Default 1 MiB. */
  readonly maxPayload?: number;
  /** Largest frame from an agent (its results). Default `maxPayload`. */
  readonly agentMaxPayload?: number;
  /** Largest hello (nobody unproven makes the coordinator parse more). Default 4 KiB. */
  readonly preHelloMaxBytes?: number;
  /** Per-session token bucket (frames/s and burst); running dry ends the session (4029). Default 50,000/s, burst 2×. */
  readonly rateLimit?: { readonly perSecond?: number; readonly burst?: number };
  /**
   * A session heard from in no way (beat, frame) for this long is over: its id is free, and an
   * agent session counts as a departure. Lower: a killed agent is known sooner; higher: a long
   * CPU-bound handler (no beats) keeps its session. Default 5 × `heartbeatMs`, at least 5000.
   */
  readonly idleMs?: number;
  /** A hello accepted but not followed by `ready` within this long is forgotten. Default 5000. */
  readonly readyTimeoutMs?: number;
  /** Ids no session may take (nodes of this process that join only now and then). */
  readonly reservedIds?: readonly string[];
  /** The node whose `assign`/`cancel` are signed and to which only signed results count as theirs. Default `coordinator`. */
  readonly authority?: string;
  /** Signs and checks (default true). Off only to measure what it costs. */
  readonly sign?: boolean;
  /** Told to agents at hello: the coordinator's heartbeat interval. */
  readonly heartbeatMs?: number;
  /** Told to agents at hello: the coordinator's acknowledgement timeout. */
  readonly ackTimeoutMs?: number;
  /** Told to agents at hello: the largest payload or result value (JSON bytes). Default 1 MiB. */
  readonly maxValueBytes?: number;
  /**
   * Local-to-local messages travel through the NATS server too (encoded, decoded, validated as a
   * remote agent's would be), not in memory: to run in-process agents over the wire (tests). Default false.
   */
  readonly loopback?: boolean;
  /** Receives every event; default: refusals to stderr (ten a second at most, the rest counted). */
  readonly log?: (event: WsServerEvent) => void;
}

/** A session: an agent or client that proved the token at hello. */
class Session {
  ready = false;
  left = false;
  ended = false;
  maxFrameBytes: number;
  tokens: number;
  heardAt: number;

  constructor(
    readonly sid: string,
    readonly agentId: string,
    readonly role: ConnectionRole,
    readonly capabilities: readonly string[],
    readonly slots: number,
    readonly instance: string,
    readonly key: Buffer,
    readonly subject: string,
    maxFrameBytes: number,
    burst: number,
    now: number,
  ) {
    this.maxFrameBytes = maxFrameBytes;
    this.tokens = burst;
    this.heardAt = now;
  }
}

interface Pending<E> {
  readonly member: Subscriber<E>;
  readonly envelope: E;
  readonly counter: KindCounter;
}

function member(s: Session): RemoteMember {
  return { agentId: s.agentId, capabilities: s.capabilities, slots: s.slots, instance: s.instance };
}

const decoder = new TextDecoder();

/**
 * The coordinator's side of the NATS transport: a {@link Network} whose remote members are agents
 * (and clients) that said hello on `PREFIX.hello`. In-process nodes (the coordinator, the task
 * desk) join with `join()`. Each session has two subjects named by a secret id derived in the
 * handshake (`natsSession.ts`): the agent publishes on `PREFIX.in.<sid>`, the coordinator on
 * `PREFIX.to.<sid>`. Heartbeats travel there like every frame: plain subjects, nothing persisted.
 *
 * ```
 * agent ──hello──▶ PREFIX.hello ──▶ join (reply)          agent ──ready, envelopes──▶ PREFIX.in.<sid> ──▶ coordinator inbox
 * coordinator.send(to agent) ──▶ PREFIX.to.<sid> ──▶ agent          (unknown sid ◀── error 1001: say hello again)
 * ```
 *
 * Every frame is defended as over WebSocket, in order: size (bytes counted before anything is
 * decoded), depth, shape (`wsCodec.decode`), authority (the session's own id as `from`; clients
 * send only submit/watch/cancel-task; agents no service kinds; results must carry their agent's
 * signature, orders are signed for their recipient). A bad frame gets an `error` frame on the
 * session's subject and ends the session (as a close code ends a socket), except a forged sender
 * (4003: the frame is dropped, the session stays). Nothing a frame holds can throw out of a NATS
 * callback: a handler that throws ends that session with 1011.
 *
 * An id belongs to its live session: a second hello under it is refused with 4009 (retryable)
 * unless it comes from the same process (`instance`: a reconnect) or the holder has been silent
 * for `idleMs`. A session silent for `idleMs` ends, and an agent's counts as a departure
 * (`departures$`): NATS does not tell a subscriber that a publisher's connection closed.
 *
 * @example
 * const nc = await connectNats({ url: 'nats://127.0.0.1:4222' });
 * const network = await NatsNetwork.start({ connection: nc, token, heartbeatMs: 1000 });
 * const coordinator = createCoordinator({ agents: [], network });
 */
export class NatsNetwork<E extends Envelope = Envelope> implements Network<E> {
  readonly scheduler: SchedulerLike;
  readonly connection: NatsConnection;
  readonly prefix: string;
  /** Names this coordinator instance: told in every join (an agent that rejoins another starts over). */
  readonly session = randomUUID();
  /** Names the loopback subject: secret, unlike `session` (told to every agent), so no session can write on it. */
  private readonly loopId = randomBytes(16).toString('hex');
  readonly maxValueBytes: number;
  private readonly subjects: ReturnType<typeof natsSubjects>;
  private readonly tkey: Buffer;
  private readonly maxPayload: number;
  private readonly agentMaxPayload: number;
  private readonly preHelloMaxBytes: number;
  private readonly perSecond: number;
  private readonly burst: number;
  private readonly idleMs: number;
  private readonly readyTimeoutMs: number;
  private readonly reserved: ReadonlySet<string>;
  private readonly authority: string;
  private readonly signing: boolean;
  private readonly heartbeatMs: number | undefined;
  private readonly ackTimeoutMs: number | undefined;
  private readonly loopback: boolean;
  private readonly log: (event: WsServerEvent) => void;
  private readonly events = new Subject<WsServerEvent>();
  private readonly counters = new Counters();
  private readonly members = new Map<string, Subscriber<E>>();
  private readonly sessions = new Map<string, Session>();
  private readonly byAgent = new Map<string, Session>();
  private readonly known = new Set<string>();
  private readonly keys = new Map<string, Buffer>();
  private readonly subscriptions: NatsSubscription[] = [];
  private pending: Array<Pending<E>> = [];
  private flushing: Subscription | undefined;
  /** Counters of the loopback frames in flight, in send order (one publisher, one subscriber: NATS keeps the order). */
  private loopFlights: KindCounter[] = [];
  private sweeper: ReturnType<typeof setInterval> | undefined;
  /** Answers to frames of unknown sessions: a token bucket, so a spray of them is not echoed. */
  private unknownTokens = 50;
  private unknownAt = performance.now();
  private closed = false;
  /** Bytes of the frame being routed: what `route` is given came in a frame this long. */
  private frameBytes = 0;

  constructor({
    connection,
    token,
    prefix = 'rxswarm',
    scheduler = asyncScheduler,
    maxPayload = DEFAULT_MAX_BYTES,
    agentMaxPayload,
    preHelloMaxBytes = 4096,
    rateLimit = {},
    idleMs,
    readyTimeoutMs = 5000,
    reservedIds = [],
    authority = 'coordinator',
    sign = true,
    heartbeatMs,
    ackTimeoutMs,
    maxValueBytes = DEFAULT_MAX_BYTES,
    loopback = false,
    log = defaultServerLog('nats', 'code'),
  }: NatsNetworkOptions) {
    if (connection === null || typeof connection !== 'object' || typeof connection.publish !== 'function') throw new RangeError('connection must be a NatsConnection (connectNats)');
    if (typeof token !== 'string' || token.length === 0) throw new RangeError('token must be a non-empty string');
    if (typeof prefix !== 'string' || !/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(prefix)) throw new RangeError(`prefix must be NATS subject tokens (letters, digits, _ and -, dot-separated), got ${JSON.stringify(prefix)}`);
    this.connection = connection;
    this.prefix = prefix;
    this.subjects = natsSubjects(prefix);
    this.tkey = tokenKey(token);
    this.scheduler = requireScheduler(scheduler);
    const serverMax = connection.info?.max_payload ?? Infinity;
    this.maxPayload = Math.min(serverMax, requireInteger('maxPayload', maxPayload, 64));
    this.agentMaxPayload = Math.min(this.maxPayload, requireInteger('agentMaxPayload', agentMaxPayload ?? this.maxPayload, 64));
    this.preHelloMaxBytes = requireInteger('preHelloMaxBytes', preHelloMaxBytes, 256);
    const { perSecond = 50_000, burst = 2 * perSecond } = rateLimit;
    this.perSecond = requireNumber('rateLimit.perSecond', perSecond, 0, true);
    this.burst = requireNumber('rateLimit.burst', burst, 1);
    this.heartbeatMs = heartbeatMs === undefined ? undefined : requireNumber('heartbeatMs', heartbeatMs, 0, true);
    this.ackTimeoutMs = ackTimeoutMs === undefined ? undefined : requireNumber('ackTimeoutMs', ackTimeoutMs, 0, true);
    this.idleMs = requireNumber('idleMs', idleMs ?? Math.max(5000, 5 * (heartbeatMs ?? 0)), 0, true);
    this.readyTimeoutMs = requireNumber('readyTimeoutMs', readyTimeoutMs, 0, true);
    if (!Array.isArray(reservedIds)) throw new RangeError(`reservedIds must be an array of ids, got ${String(reservedIds)}`);
    this.reserved = new Set(reservedIds.map((id, i) => requireId(`reservedIds[${i}]`, id)));
    this.authority = requireId('authority', authority);
    if (typeof sign !== 'boolean') throw new RangeError(`sign must be a boolean, got ${String(sign)}`);
    this.signing = sign;
    this.maxValueBytes = requireInteger('maxValueBytes', maxValueBytes, 1);
    if (typeof loopback !== 'boolean') throw new RangeError(`loopback must be a boolean, got ${String(loopback)}`);
    this.loopback = loopback;
    if (typeof log !== 'function') throw new RangeError(`log must be a function, got ${String(log)}`);
    this.log = log;

    this.subscriptions.push(connection.subscribe(this.subjects.hello, { callback: (err, msg) => {
          if (err === null) this.guard(() => this.onHello(msg));
        } }));
    const inPrefix = this.subjects.in('');
    this.subscriptions.push(
      connection.subscribe(this.subjects.ingress, {
        callback: (err, msg) => {
          if (err !== null) return;
          const sid = msg.subject.slice(inPrefix.length);
          const session = this.sessions.get(sid);
          if (session === undefined) return this.guard(() => this.unknownSession(sid));
          try {
            this.onFrame(session, msg);
          } catch (error) {
            this.refuse(session, WS_CLOSE.internalError, `internal error while handling a frame: ${error instanceof Error ? error.message : String(error)}`);
          }
        },
      }),
    );
    if (loopback) this.subscriptions.push(connection.subscribe(this.subjects.loop(this.loopId), { callback: (err, msg) => {
          if (err === null) this.guard(() => this.onLoop(msg));
        } }));
    this.sweeper = setInterval(() => this.sweep(), Math.max(50, Math.min(1000, this.idleMs / 4))).unref();
  }

  /** Creates the network and waits until the server has its subscriptions (a hello sent after this is heard). */
  static async start<E extends Envelope = Envelope>(options: NatsNetworkOptions): Promise<NatsNetwork<E>> {
    const network = new NatsNetwork<E>(options);
    await network.connection.flush();
    return network;
  }

  /** `nats://host:port` of the server, and the prefix: where agents say hello. */
  get url(): string {
    const info = this.connection.info;
    return `nats://${info?.host ?? '?'}:${info?.port ?? '?'} (subjects ${this.prefix}.*)`;
  }

  get events$(): Observable<WsServerEvent> {
    return this.events.asObservable();
  }

  /** Agents and clients with a live session now, by id. */
  get remoteAgents(): ReadonlyMap<string, RemoteAgent> {
    const out = new Map<string, RemoteAgent>();
    for (const [agentId, s] of this.byAgent) if (s.ready) out.set(agentId, { agentId, role: s.role, capabilities: s.capabilities, slots: s.slots, remote: `nats ${s.sid.slice(0, 8)}` });
    return out;
  }

  get members$(): Observable<RemoteMember> {
    return defer(() => {
      const now: RemoteMember[] = [];
      for (const s of this.byAgent.values()) if (s.ready && s.role === 'agent') now.push(member(s));
      const joining = this.events.pipe(
        filter((e): e is Extract<WsServerEvent, { type: 'connected' }> => e.type === 'connected' && e.role === 'agent'),
        map(({ agentId, capabilities, slots, instance }): RemoteMember => (instance === undefined ? { agentId, capabilities, slots } : { agentId, capabilities, slots, instance })),
      );
      return concat(from(now), joining);
    });
  }

  /** Agents whose session ended without a `leave`: silent for `idleMs`, or ended for a bad frame. */
  get departures$(): Observable<string> {
    return this.events.pipe(
      filter((e): e is Extract<WsServerEvent, { type: 'disconnected' }> => e.type === 'disconnected' && e.role === 'agent' && !e.clean),
      map(e => e.agentId),
    );
  }

  get stats(): WsNetworkStats {
    return this.counters.snapshot(this.pending.length + this.loopFlights.length);
  }

  /** NATS buffers for slow readers on the server (and cuts them there): nothing waits here. */
  buffered(_agentId: string): number {
    return 0;
  }

  join(nodeId: string): Observable<E> {
    requireId('nodeId', nodeId);
    return new Observable<E>(subscriber => {
      if (this.members.has(nodeId) || this.byAgent.get(nodeId)?.ready === true) {
        subscriber.error(new Error(`node ${JSON.stringify(nodeId)} has already joined this network (share its inbox to fan it out)`));
        return undefined;
      }
      this.members.set(nodeId, subscriber);
      this.known.add(nodeId);
      if (!this.keys.has(nodeId)) this.keys.set(nodeId, keyFrom(newSessionKey()) as Buffer);
      return () => {
        if (this.members.get(nodeId) === subscriber) this.members.delete(nodeId);
        if (this.pending.some(p => p.member === subscriber)) {
          this.pending = this.pending.filter(p => {
            if (p.member !== subscriber) return true;
            this.counters.drop(p.counter, 'down');
            return false;
          });
        }
      };
    });
  }

  /** Sends from an in-process node. Throws only for a malformed envelope (or, to a remote node, a kind the wire does not carry or a body that is not JSON). */
  send(message: Outgoing<E>): void {
    assertOutgoing(message);
    const { from, to, kind } = message;
    const body = this.signed(from, to, kind, message.body);
    const session = this.byAgent.get(to);
    const remote = session !== undefined && session.ready ? session : undefined;
    const frame = remote !== undefined || (this.loopback && this.members.has(to)) ? encodeEnvelope(from, to, kind, body) : undefined;
    const counter = this.counters.count(kind);
    const local = this.members.get(to);
    if (local !== undefined) {
      if (frame !== undefined && this.loopback) {
        if (!this.publish(this.subjects.loop(this.loopId), frame)) return this.counters.drop(counter, 'down');
        this.loopFlights.push(counter);
        return;
      }
      const checked = this.checked(to, kind, body);
      if (checked === undefined) return this.counters.drop(counter, 'unknown');
      this.pending.push({ member: local, envelope: { from, to, kind, body: checked, sentAt: this.scheduler.now() } as E, counter });
      if (this.flushing === undefined) this.flushing = this.scheduler.schedule(() => this.flush());
      return;
    }
    if (remote !== undefined && frame !== undefined) return this.write(remote, frame, counter);
    this.counters.drop(counter, this.known.has(to) ? 'down' : 'unknown');
  }

  /** Ends an agent's session (operations, tests): it must say hello again. False if it has none. */
  disconnect(agentId: string, { code = WS_CLOSE.goingAway, reason = 'disconnected by the coordinator' }: { code?: number; reason?: string } = {}): boolean {
    const session = this.byAgent.get(agentId);
    if (session === undefined) return false;
    this.reply(session, { v: 1, type: 'error', code, error: reason });
    this.end(session, code, reason, false);
    return true;
  }

  /** Tells every session the coordinator goes away (1001: they say hello again, to whoever answers), and stops listening. The connection stays its owner's. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweeper);
    this.flushing?.unsubscribe();
    this.flushing = undefined;
    for (const session of [...this.sessions.values()]) {
      this.reply(session, { v: 1, type: 'error', code: WS_CLOSE.goingAway, error: 'coordinator shutting down' });
      this.end(session, WS_CLOSE.goingAway, 'coordinator shutting down', true);
    }
    for (const sub of this.subscriptions.splice(0)) sub.unsubscribe();
    if (!this.connection.isClosed()) await this.connection.flush().catch(() => undefined);
    this.events.complete();
  }

  // ---- hello ------------------------------------------------------------------------------

  private onHello(msg: Msg): void {
    if (this.closed || msg.reply === undefined || msg.reply === '') return; // a hello is a request: no reply subject, nobody to answer
    const answer = (message: WireMessage | Record<string, unknown>): void => void msg.respond(JSON.stringify(message));
    const refuse = (code: WsCloseCode, error: string, agentId?: string): void => {
      this.counters.rejected++;
      this.emit({ type: 'rejected', agentId, remote: 'nats hello', code, error });
      answer({ v: 1, type: 'error', code, error });
    };
    if (msg.data.length > this.preHelloMaxBytes) return refuse(WS_CLOSE.tooBig, `hello of ${msg.data.length} bytes exceeds the limit of ${this.preHelloMaxBytes}`);
    const decoded = decodeHandshake('hello', decoder.decode(msg.data), this.preHelloMaxBytes);
    if (!decoded.ok) return refuse(WS_CLOSE.invalidPayload, decoded.error);
    const hello = decoded.message;
    if (!helloProven(this.tkey, hello)) return refuse(WS_CLOSE.unauthenticated, 'invalid token (the hello does not prove it)', hello.agentId);
    const { agentId, role } = hello;
    if (this.members.has(agentId) || this.reserved.has(agentId)) return refuse(WS_CLOSE.policyViolation, `id ${JSON.stringify(agentId)} belongs to a node of the coordinator's process`, agentId);
    const now = performance.now();
    const held = this.byAgent.get(agentId);
    if (held !== undefined) {
      // An id belongs to its live session; the same process saying hello again (its session was
      // lost on the way) takes it back, and a holder silent for idleMs has gone.
      const same = held.instance === hello.instance;
      if (!same && held.ready && now - held.heardAt < this.idleMs) {
        return refuse(WS_CLOSE.idInUse, `id ${JSON.stringify(agentId)} is held by a live ${held.role} session; retry once it is gone`, agentId);
      }
      this.end(held, WS_CLOSE.replaced, same ? 'the same process said hello again' : 'replaced: silent', same);
    }
    const accepted = acceptHandshake(this.tkey, hello, this.session);
    if (accepted === undefined) return refuse(WS_CLOSE.invalidPayload, 'invalid hello: pub is not an X25519 public key', agentId);
    const { join, secrets } = accepted;
    const session = new Session(secrets.sid, agentId, role, hello.capabilities, hello.slots, hello.instance, secrets.key, this.subjects.to(secrets.sid), hello.maxFrameBytes, this.burst, now);
    this.sessions.set(session.sid, session);
    this.byAgent.set(agentId, session);
    answer({
      ...join,
      ...(this.heartbeatMs === undefined ? {} : { heartbeatMs: this.heartbeatMs }),
      ...(this.ackTimeoutMs === undefined ? {} : { ackTimeoutMs: this.ackTimeoutMs }),
      maxValueBytes: this.maxValueBytes,
      maxPayload: role === 'client' ? this.maxPayload : this.agentMaxPayload,
      idleMs: this.idleMs,
    });
  }

  // ---- frames -------------------------------------------------------------------------------

  private onFrame(session: Session, msg: Msg): void {
    if (session.ended) return;
    const now = performance.now();
    session.tokens = Math.min(this.burst, session.tokens + ((now - session.heardAt) * this.perSecond) / 1000);
    session.heardAt = now;
    if (session.tokens < 1) return this.refuse(session, WS_CLOSE.rateLimited, `rate limit exceeded (${this.perSecond} frames/s, burst ${this.burst})`);
    session.tokens -= 1;
    const limit = session.role === 'client' ? this.maxPayload : this.agentMaxPayload;
    // Bytes first, before a string is even made of them.
    if (msg.data.length > limit) return this.refuse(session, WS_CLOSE.tooBig, `frame of ${msg.data.length} bytes exceeds the limit of ${limit}`);
    const text = decoder.decode(msg.data);
    if (!session.ready) {
      if (text !== READY_FRAME) return this.refuse(session, WS_CLOSE.unauthenticated, 'the first frame of a session must be ready');
      session.ready = true;
      if (session.role === 'agent') {
        this.known.add(session.agentId);
        if (this.signing) this.keys.set(session.agentId, session.key);
      }
      this.emit({ type: 'connected', agentId: session.agentId, role: session.role, capabilities: session.capabilities, slots: session.slots, remote: `nats ${session.sid.slice(0, 8)}`, replaced: false, instance: session.instance });
      return;
    }
    if (text === READY_FRAME) return; // a keepalive: a client (or an agent) with nothing else to say
    const decoded = decode(text, { maxBytes: limit });
    if (!decoded.ok) return this.refuse(session, decoded.closeCode, decoded.error);
    const message = decoded.message;
    switch (message.type) {
      case 'envelope': {
        if (message.from !== session.agentId) {
          this.counters.rejected++;
          const error = `forged sender: envelope from ${JSON.stringify(message.from)} in the session of ${JSON.stringify(session.agentId)} dropped`;
          this.reply(session, { v: 1, type: 'error', code: WS_CLOSE.forgedSender, error });
          this.emit({ type: 'rejected', agentId: session.agentId, remote: `nats ${session.sid.slice(0, 8)}`, code: WS_CLOSE.forgedSender, error });
          return;
        }
        if (session.role === 'client' ? !CLIENT_KINDS.has(message.kind) : SERVICE_KINDS.has(message.kind)) {
          return this.refuse(session, WS_CLOSE.policyViolation, `a${session.role === 'agent' ? 'n agent' : ' client'} may not send ${message.kind} envelopes`);
        }
        this.counters.received++;
        this.frameBytes = msg.data.length;
        return this.route(message.from, message.to, message.kind, message.body);
      }
      case 'leave':
        session.left = true;
        return this.end(session, WS_CLOSE.normal, 'left', true);
      default:
        return this.refuse(session, WS_CLOSE.policyViolation, `${message.type} messages are not sent on a session`);
    }
  }

  private onLoop(msg: Msg): void {
    const counter = this.loopFlights.shift();
    if (counter === undefined) return void this.counters.rejected++; // not ours
    const decoded = decode(decoder.decode(msg.data), { maxBytes: this.maxPayload });
    if (!decoded.ok || decoded.message.type !== 'envelope') {
      this.counters.rejected++;
      return this.counters.drop(counter, 'unknown');
    }
    const { from, to, kind, body } = decoded.message;
    const local = this.members.get(to);
    if (local === undefined) return this.counters.drop(counter, this.known.has(to) ? 'down' : 'unknown');
    const checked = this.checked(to, kind, body);
    if (checked === undefined) return this.counters.drop(counter, 'unknown');
    this.counters.deliver(counter);
    local.next({ from, to, kind, body: checked, sentAt: this.scheduler.now() } as E);
  }

  private unknownSession(sid: string): void {
    this.counters.rejected++;
    const now = performance.now();
    this.unknownTokens = Math.min(50, this.unknownTokens + ((now - this.unknownAt) * 50) / 1000);
    this.unknownAt = now;
    if (this.unknownTokens < 1 || !/^[0-9a-f]{32}$/.test(sid)) return;
    this.unknownTokens -= 1;
    // Ours once, perhaps (a coordinator that restarted knows no session): the agent says hello again.
    this.publish(this.subjects.to(sid), encode({ v: 1, type: 'error', code: WS_CLOSE.goingAway, error: 'unknown session: say hello again' }));
  }

  /** Routes an envelope that came from a session (already checked). */
  private route(from: string, to: string, kind: WireKind, body: unknown): void {
    const counter = this.counters.count(kind);
    // As over WebSocket: a route that goes round in circles is dropped.
    const loop = loopingRoute(from, to, kind, body);
    if (loop !== undefined) {
      this.counters.drop(counter, 'unknown');
      this.counters.rejected++;
      this.emit({ type: 'rejected', agentId: from, remote: 'nats', code: WS_CLOSE.policyViolation, error: loop });
      return;
    }
    const local = this.members.get(to);
    if (local !== undefined) {
      // Held to maxValueBytes as over WebSocket: a child's payload, a result's value (measured
      // only when its frame could carry a bigger one, and after its signature is checked).
      const checked = this.checked(to, kind, sizedChild(kind, body, this.maxValueBytes));
      if (checked === undefined) {
        this.counters.drop(counter, 'unknown');
        this.counters.rejected++;
        this.emit({ type: 'rejected', agentId: from, remote: 'nats', code: WS_CLOSE.forgedSender, error: `unsigned or altered ${kind} for ${JSON.stringify(to)} relayed by ${JSON.stringify(from)}: dropped` });
        return;
      }
      const taken = sizedValue(kind, checked, this.frameBytes, this.maxValueBytes);
      this.counters.deliver(counter);
      local.next({ from, to, kind, body: taken, sentAt: this.scheduler.now() } as E);
      return;
    }
    const session = this.byAgent.get(to);
    if (session !== undefined && session.ready) return this.write(session, encode({ v: 1, type: 'envelope', from, to, kind, body }), counter);
    this.counters.drop(counter, this.known.has(to) ? 'down' : 'unknown');
  }

  /** What a local node sends, signed where it must be (as over WebSocket). */
  private signed(from: string, to: string, kind: string, body: unknown): unknown {
    if (!this.signing || body === null || typeof body !== 'object') return body;
    if (from === this.authority && ORDER_KINDS.has(kind)) {
      const via = (body as Partial<Routed>).via ?? [];
      const recipient = hopsLeft(body as Partial<Routed>) > 0 ? (via[via.length - 1] as string) : to;
      const key = this.keys.get(recipient);
      return key === undefined ? body : { ...(body as AssignBody | CancelBody), mac: signOrder(key, kind as 'assign' | 'cancel', recipient, body as AssignBody | CancelBody) };
    }
    if (kind === 'result' && (body as ResultBody).agentId === from) {
      const key = this.keys.get(from);
      return key === undefined ? body : { ...(body as ResultBody), mac: signResult(key, body as ResultBody) };
    }
    return body;
  }

  /** What a local node may be handed, or undefined to drop it (as over WebSocket). */
  private checked(to: string, kind: string, body: unknown): unknown {
    if (!this.signing || body === null || typeof body !== 'object') return body;
    if (ORDER_KINDS.has(kind) && to !== this.authority && hopsLeft(body as Partial<Routed>) === 0) {
      const key = this.keys.get(to);
      return key !== undefined && verifyOrder(key, kind as 'assign' | 'cancel', to, body as AssignBody | CancelBody) ? body : undefined;
    }
    if (kind === 'result' && to === this.authority) {
      const result = body as ResultBody;
      const key = this.keys.get(result.agentId);
      if (key === undefined) return { ...result, forged: `no session key for ${JSON.stringify(result.agentId)}` };
      return verifyResult(key, result) ? body : { ...result, forged: `not signed by ${JSON.stringify(result.agentId)}` };
    }
    return body;
  }

  private write(session: Session, frame: string, counter: KindCounter): void {
    if (session.ended) return this.counters.drop(counter, 'down');
    if (utf8Above(frame, Math.min(session.maxFrameBytes, this.connection.info?.max_payload ?? Infinity))) {
      this.counters.drop(counter, 'down');
      const error = `a frame of ${Buffer.byteLength(frame, 'utf8')} bytes is above what its peer (or the NATS server) takes: not sent`;
      this.reply(session, { v: 1, type: 'error', code: WS_CLOSE.tooBig, error });
      this.counters.rejected++;
      this.emit({ type: 'rejected', agentId: session.agentId, remote: 'nats', code: WS_CLOSE.tooBig, error });
      return;
    }
    if (this.publish(session.subject, frame)) this.counters.deliver(counter);
    else this.counters.drop(counter, 'down');
  }

  private publish(subject: string, frame: string): boolean {
    try {
      this.connection.publish(subject, frame);
      return true;
    } catch {
      return false; // closed or draining: counted as down
    }
  }

  private flush(): void {
    this.flushing = undefined;
    const batch = this.pending;
    this.pending = [];
    for (const { member: m, envelope, counter } of batch) {
      if (m.closed) {
        this.counters.drop(counter, 'down');
        continue;
      }
      this.counters.deliver(counter);
      m.next(envelope);
    }
  }

  /** Ends sessions silent for idleMs, and accepted hellos never followed by ready. */
  private sweep(): void {
    const now = performance.now();
    for (const session of [...this.sessions.values()]) {
      if (!session.ready && now - session.heardAt > this.readyTimeoutMs) this.end(session, WS_CLOSE.handshakeTimeout, `no ready within ${this.readyTimeoutMs} ms`, true);
      else if (session.ready && now - session.heardAt > this.idleMs) {
        this.reply(session, { v: 1, type: 'error', code: WS_CLOSE.goingAway, error: `silent for ${Math.round(now - session.heardAt)} ms: say hello again` });
        this.end(session, 1006, `silent for ${Math.round(now - session.heardAt)} ms (idleMs ${this.idleMs})`, false);
      }
    }
  }

  private reply(session: Session, message: WireMessage): void {
    this.publish(session.subject, encode(message));
  }

  private refuse(session: Session, code: WsCloseCode, error: string): void {
    if (session.ended) return;
    this.reply(session, { v: 1, type: 'error', code, error });
    this.counters.rejected++;
    this.emit({ type: 'rejected', agentId: session.agentId, remote: `nats ${session.sid.slice(0, 8)}`, code, error });
    this.end(session, code, error, false);
  }

  private end(session: Session, code: number, reason: string, clean: boolean): void {
    if (session.ended) return;
    session.ended = true;
    this.sessions.delete(session.sid);
    if (this.byAgent.get(session.agentId) === session) this.byAgent.delete(session.agentId);
    if (session.ready) this.emit({ type: 'disconnected', agentId: session.agentId, role: session.role, code, reason, clean: clean || session.left });
  }

  private emit(event: WsServerEvent): void {
    try {
      this.log(event);
    } catch {
      // A throwing logger must not break the transport.
    }
    this.events.next(event);
  }

  /** Runs a handler from a NATS callback: nothing it throws may reach the client library. */
  private guard(work: () => void): void {
    try {
      work();
    } catch (err) {
      this.counters.rejected++;
      this.emit({ type: 'rejected', agentId: undefined, remote: 'nats', code: WS_CLOSE.internalError, error: `internal error: ${err instanceof Error ? err.message : String(err)}` });
    }
  }
}

/**
 * One envelope as a frame, its route as the wire carries it (the hops still to go, without the
 * in-process `hop`: see {@link Routed}); TypeError/RangeError for what cannot travel.
 */
export function encodeEnvelope(from: string, to: string, kind: string, body: unknown): string {
  if (!isWireKind(kind)) throw new RangeError(`envelope.kind ${JSON.stringify(kind)} cannot travel over NATS (not a protocol or repair kind)`);
  try {
    return encode({ v: 1, type: 'envelope', from, to, kind, body: onWire(body) });
  } catch (err) {
    throw new TypeError(`envelope.body cannot be sent as JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
}
