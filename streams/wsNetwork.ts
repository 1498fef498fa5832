import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Observable, Subject, asyncScheduler, concat, defer, filter, from, map, type SchedulerLike, type Subscriber, type Subscription } from 'rxjs';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { requireInteger, requireNumber, requireInRange, requireScheduler } from '../operators/internal/validate.js';
import { assertOutgoing, requireId, type Envelope, type Outgoing } from './messages.js';
import type { DropReason, KindStats, Network, NetworkStats, RemoteMember } from './network.js';
import { DEFAULT_MAX_BYTES, WS_CLOSE, decode, encode, isWireKind, type HelloMessage, type WireKind, type WireMessage, type WsCloseCode } from './wsCodec.js';
import { SUBMISSION_KINDS } from './protocol.js';
import { connectionCause, timeoutCause, type ConnectionCause } from './connectionCause.js';

// Wall-clock time and timers are allowed here: this is a real transport, at the edge of the system
// (the architecture test exempts streams/ws*.ts). Message stamps still come from the scheduler.

/** Counters of a WebSocket network: the in-memory ones plus the transport's own. */
export interface WsNetworkStats extends NetworkStats {
  /** Envelopes that arrived from sockets and passed validation (on the server they are routed, so also in `sent`). */
  readonly received: number;
  /** Frames or connections refused (bad token, bad frame, forged sender, rate limit…). */
  readonly rejected: number;
}

class KindCounter {
  sent = 0;
  delivered = 0;
  dropped = 0;
}

/** Counts as InMemoryNetwork does: `sent = delivered + dropped + inFlight`. */
class Counters {
  private readonly kinds = new Map<string, KindCounter>();
  sent = 0;
  delivered = 0;
  dropped = 0;
  rejected = 0;
  received = 0;
  readonly droppedBy: Record<DropReason, number> = { unknown: 0, down: 0, partition: 0, loss: 0 };

  count(kind: string): KindCounter {
    let counter = this.kinds.get(kind);
    if (counter === undefined) this.kinds.set(kind, (counter = new KindCounter()));
    counter.sent++;
    this.sent++;
    return counter;
  }

  deliver(counter: KindCounter): void {
    counter.delivered++;
    this.delivered++;
  }

  drop(counter: KindCounter, reason: DropReason): void {
    counter.dropped++;
    this.dropped++;
    this.droppedBy[reason]++;
  }

  snapshot(inFlight: number): WsNetworkStats {
    const byKind: Array<[string, KindStats]> = [];
    for (const [kind, { sent, delivered, dropped }] of this.kinds) byKind.push([kind, { sent, delivered, dropped }]);
    return {
      sent: this.sent,
      delivered: this.delivered,
      dropped: this.dropped,
      inFlight,
      droppedBy: { ...this.droppedBy },
      byKind: Object.fromEntries(byKind),
      received: this.received,
      rejected: this.rejected,
    };
  }
}

function text(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

/** A close reason is at most 123 bytes of UTF-8. */
function closeReason(reason: string): string {
  let out = reason;
  while (Buffer.byteLength(out, 'utf8') > 123) out = out.slice(0, -1);
  return out;
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/** Constant-time token comparison: both sides hashed to 32 bytes, so lengths never leak. */
export function tokensMatch(expected: string, given: string): boolean {
  return timingSafeEqual(digest(expected), digest(given));
}

function encodeEnvelope(from: string, to: string, kind: string, body: unknown): string {
  if (!isWireKind(kind)) throw new RangeError(`envelope.kind ${JSON.stringify(kind)} cannot travel over WebSocket (not a protocol or repair kind)`);
  try {
    return encode({ v: 1, type: 'envelope', from, to, kind, body });
  } catch (err) {
    throw new TypeError(`envelope.body cannot be sent as JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
}

// ---- server ---------------------------------------------------------------------------------

export interface RateLimitOptions {
  /**
   * Sustained frames per second per connection. Default 50,000: a hub or group leader relays two
   * frames per subtask it passes on, so a busy one needs far more than an agent's own traffic.
   */
  readonly perSecond?: number;
  /** Bucket size: frames a connection may send at once. Default 2 × perSecond. */
  readonly burst?: number;
}

export interface WsServerNetworkOptions {
  /** The shared secret every agent's hello must carry (compared in constant time). Required. */
  readonly token: string;
  /** Default `127.0.0.1`. */
  readonly host?: string;
  /** Default 7070; 0 picks a free port (see `port` once listening). */
  readonly port?: number;
  /** Stamps `sentAt` and delivers local-to-local messages. Default `asyncScheduler`. */
  readonly scheduler?: SchedulerLike;
  /** Largest accepted frame in bytes; a bigger one closes its connection with 1009. Default 1 MiB. */
  readonly maxPayload?: number;
  /** Per-connection token bucket; running dry closes the connection with 4029. */
  readonly rateLimit?: RateLimitOptions;
  /** A connection that has not said hello this long is closed with 4001. Default 5000. */
  readonly helloTimeoutMs?: number;
  /**
   * Bytes written to a connection and not yet taken by its peer above which it is cut (the peer
   * does not read: a frozen process, a stalled link); what was meant for it counts as dropped.
   * Default 16 MiB.
   */
  readonly maxBufferedBytes?: number;
  /** Ids no connection may take (nodes of the server's process that join only now and then). */
  readonly reservedIds?: readonly string[];
  /** Receives every server event; default: refusals are written to stderr. */
  readonly log?: (event: WsServerEvent) => void;
}

export type WsServerEvent =
  | {
      readonly type: 'connected';
      readonly agentId: string;
      readonly role: ConnectionRole;
      readonly capabilities: readonly string[];
      readonly slots: number;
      readonly remote: string;
      readonly replaced: boolean;
    }
  | { readonly type: 'disconnected'; readonly agentId: string; readonly code: number; readonly reason: string }
  /** A refused frame or connection; `code` is the close code sent (4003: the frame only; 1006: cut without one). */
  | { readonly type: 'rejected'; readonly agentId: string | undefined; readonly remote: string; readonly code: number; readonly error: string };

/** `agent`: a member that runs subtasks; `client`: submits tasks (`rxswarm run`), never given work. */
export type ConnectionRole = 'agent' | 'client';

export interface RemoteAgent {
  readonly agentId: string;
  readonly role: ConnectionRole;
  readonly capabilities: readonly string[];
  readonly slots: number;
  readonly remote: string;
}

/** What a client connection may send: a task to the service, nothing that steers agents. */
const CLIENT_KINDS: ReadonlySet<string> = new Set(['submit']);
/** What only the coordinator's process sends: an agent sending these is refused. */
const SERVICE_KINDS: ReadonlySet<string> = new Set([...SUBMISSION_KINDS, 'peers']);

class Connection {
  agentId: string | undefined;
  role: ConnectionRole = 'agent';
  capabilities: readonly string[] = [];
  slots = 1;
  closing = false;
  helloTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    readonly socket: WebSocket,
    readonly remote: string,
    public tokens: number,
    public refilledAt: number,
  ) {}
}

/** Errors `ws` raises on bad frames, and the close code it sends for them. */
const WS_ERRORS: Record<string, number> = {
  WS_ERR_UNSUPPORTED_MESSAGE_LENGTH: WS_CLOSE.tooBig,
  WS_ERR_INVALID_UTF8: WS_CLOSE.invalidPayload,
  WS_ERR_INVALID_CLOSE_CODE: 1002,
  WS_ERR_INVALID_OPCODE: 1002,
  WS_ERR_UNEXPECTED_RSV_1: 1002,
  WS_ERR_UNEXPECTED_RSV_2_3: 1002,
  WS_ERR_EXPECTED_MASK: 1002,
  WS_ERR_UNEXPECTED_MASK: 1002,
  WS_ERR_EXPECTED_FIN: 1002,
  WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH: 1002,
};

interface Pending<E> {
  readonly member: Subscriber<E>;
  readonly envelope: E;
  readonly counter: KindCounter;
}

function defaultServerLog(event: WsServerEvent): void {
  if (event.type === 'rejected') {
    console.warn(`[rxswarm ws] refused ${event.agentId ?? event.remote}: ${event.error} (close ${event.code})`);
  }
}

/**
 * The coordinator's side of the WebSocket transport: a `ws` server that is a {@link Network}.
 * In-process nodes (the coordinator) join with `join()`; agents in other processes connect, say
 * hello with the token, and are joined under their agent id. Every frame is decoded and validated
 * (`wsCodec.ts`); a bad one gets an `error` frame and a close code, never an exception.
 *
 * ```
 * agent a (socket) ──envelope from a──▶ server ──▶ coordinator inbox (local) or b's socket
 * coordinator.send(to a) ──────────────▶ server ──▶ a's socket
 * ```
 *
 * Routing: to a local node, delivered through the scheduler (never synchronously inside `send`);
 * to a remote agent, written to its socket (`delivered` means written); to an id never seen,
 * dropped as `unknown`; to one that left or disconnected, as `down`. A socket may only send as its
 * own agent id: an envelope with another `from` is dropped, answered with an `error` frame (4003)
 * and logged, and the connection stays open. A second connection under the same id replaces the
 * first (closed with 4004): that is how an agent reconnects. `sentAt` of an envelope from a
 * socket is this server's scheduler time at arrival (clocks of two processes do not compare).
 *
 * Options: `token` (required), `host`/`port` (0 for a free port), `maxPayload` (bigger frames
 * close with 1009: raise it for big subtask payloads, lower it to bound memory per frame),
 * `rateLimit` (frames/s per connection; too low starves busy agents, too high lets one flood),
 * `helloTimeoutMs`, `maxBufferedBytes` (a peer that stops reading is cut once this much waits for
 * it: lower bounds memory per stalled peer, higher tolerates slow readers), `scheduler`, `log`.
 *
 * @example
 * const server = await WsServerNetwork.listen({ token: process.env.RXSWARM_TOKEN!, port: 7070 });
 * const coordinator = createCoordinator({ agents, network: server });
 * // later: await server.close();
 */
export class WsServerNetwork<E extends Envelope = Envelope> implements Network<E> {
  readonly scheduler: SchedulerLike;
  private readonly wss: WebSocketServer;
  private readonly token: string;
  private readonly maxPayload: number;
  private readonly perSecond: number;
  private readonly burst: number;
  private readonly helloTimeoutMs: number;
  private readonly maxBufferedBytes: number;
  private readonly reserved: ReadonlySet<string>;
  /** This server instance, told to every client in its join: rejoining another means starting over. */
  readonly session = randomUUID();
  private readonly log: (event: WsServerEvent) => void;
  private readonly events = new Subject<WsServerEvent>();
  private readonly counters = new Counters();
  private readonly members = new Map<string, Subscriber<E>>();
  private readonly connections = new Map<string, Connection>();
  private readonly sockets = new Set<Connection>();
  /** Every id that ever joined, locally or remotely: tells `unknown` from `down`. */
  private readonly known = new Set<string>();
  private pending: Array<Pending<E>> = [];
  private flushing: Subscription | undefined;
  private closed = false;
  /** Resolves once the server listens (rejects if it cannot, e.g. the port is taken). */
  readonly ready: Promise<void>;

  /** Starts listening at once; await `ready` (or use {@link WsServerNetwork.listen}). */
  constructor({
    token,
    host = '127.0.0.1',
    port = 7070,
    scheduler = asyncScheduler,
    maxPayload = DEFAULT_MAX_BYTES,
    rateLimit = {},
    helloTimeoutMs = 5000,
    maxBufferedBytes = 16 * 1024 * 1024,
    reservedIds = [],
    log = defaultServerLog,
  }: WsServerNetworkOptions) {
    if (typeof token !== 'string' || token.length === 0) throw new RangeError('token must be a non-empty string');
    if (typeof host !== 'string' || host.length === 0) throw new RangeError(`host must be a non-empty string, got ${String(host)}`);
    requireInRange('port', port, 0, 65535);
    requireInteger('port', port, 0);
    this.scheduler = requireScheduler(scheduler);
    this.maxPayload = requireInteger('maxPayload', maxPayload, 64);
    const { perSecond = 50_000, burst = 2 * perSecond } = rateLimit;
    this.perSecond = requireNumber('rateLimit.perSecond', perSecond, 0, true);
    this.burst = requireNumber('rateLimit.burst', burst, 1);
    this.helloTimeoutMs = requireNumber('helloTimeoutMs', helloTimeoutMs, 0, true);
    this.maxBufferedBytes = requireNumber('maxBufferedBytes', maxBufferedBytes, 0, true);
    if (!Array.isArray(reservedIds)) throw new RangeError(`reservedIds must be an array of ids, got ${String(reservedIds)}`);
    this.reserved = new Set(reservedIds.map((id, i) => requireId(`reservedIds[${i}]`, id)));
    if (typeof log !== 'function') throw new RangeError(`log must be a function, got ${String(log)}`);
    this.log = log;
    this.token = token;

    this.wss = new WebSocketServer({ host, port, maxPayload: this.maxPayload, clientTracking: false, perMessageDeflate: false });
    this.ready = new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.wss.once('error', onError);
      this.wss.once('listening', () => {
        this.wss.off('error', onError);
        resolve();
      });
    });
    // After listening, server errors are reported, never thrown.
    this.wss.on('error', () => undefined);
    this.wss.on('connection', (socket, request) => this.accept(socket, `${request.socket.remoteAddress ?? '?'}:${request.socket.remotePort ?? '?'}`));
  }

  /** Creates a server and waits until it listens. */
  static async listen<E extends Envelope = Envelope>(options: WsServerNetworkOptions): Promise<WsServerNetwork<E>> {
    const server = new WsServerNetwork<E>(options);
    await server.ready;
    return server;
  }

  /** The port it listens on (the chosen one when created with port 0). */
  get port(): number {
    return (this.wss.address() as AddressInfo).port;
  }

  /** `ws://host:port` of this server. */
  get url(): string {
    const { address, port, family } = this.wss.address() as AddressInfo;
    return `ws://${family === 'IPv6' ? `[${address}]` : address}:${port}`;
  }

  /** Connections, joins, disconnections and refusals, as they happen. */
  get events$(): Observable<WsServerEvent> {
    return this.events.asObservable();
  }

  /** The agents connected now, by id. */
  get remoteAgents(): ReadonlyMap<string, RemoteAgent> {
    const out = new Map<string, RemoteAgent>();
    for (const [agentId, c] of this.connections) out.set(agentId, { agentId, role: c.role, capabilities: c.capabilities, slots: c.slots, remote: c.remote });
    return out;
  }

  /** Connected agents (not clients) now, then each one that connects: what a coordinator admits. */
  get members$(): Observable<RemoteMember> {
    return defer(() => {
      const now: RemoteMember[] = [];
      for (const [agentId, c] of this.connections) if (c.role === 'agent') now.push({ agentId, capabilities: c.capabilities, slots: c.slots });
      const joining = this.events.pipe(
        filter((e): e is Extract<WsServerEvent, { type: 'connected' }> => e.type === 'connected' && e.role === 'agent'),
        map(({ agentId, capabilities, slots }): RemoteMember => ({ agentId, capabilities, slots })),
      );
      return concat(from(now), joining);
    });
  }

  get stats(): WsNetworkStats {
    return this.counters.snapshot(this.pending.length);
  }

  join(nodeId: string): Observable<E> {
    requireId('nodeId', nodeId);
    return new Observable<E>(subscriber => {
      if (this.members.has(nodeId) || this.connections.has(nodeId)) {
        subscriber.error(new Error(`node ${JSON.stringify(nodeId)} has already joined this network (share its inbox to fan it out)`));
        return undefined;
      }
      this.members.set(nodeId, subscriber);
      this.known.add(nodeId);
      return () => {
        if (this.members.get(nodeId) === subscriber) this.members.delete(nodeId);
        // What was queued for it goes nowhere: a rejoining node never gets its predecessor's mail.
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

  /**
   * Sends from an in-process node. Throws only for a malformed envelope: missing fields, or — to a
   * remote agent — a kind the wire does not carry or a body that is not JSON.
   */
  send(message: Outgoing<E>): void {
    assertOutgoing(message);
    const { from, to, kind, body } = message;
    const connection = this.connections.get(to);
    const frame = connection === undefined ? undefined : encodeEnvelope(from, to, kind, body);
    const counter = this.counters.count(kind);
    const member = this.members.get(to);
    if (member !== undefined) {
      this.pending.push({ member, envelope: { from, to, kind, body, sentAt: this.scheduler.now() } as E, counter });
      if (this.flushing === undefined) this.flushing = this.scheduler.schedule(() => this.flush());
      return;
    }
    if (connection !== undefined && frame !== undefined) return this.write(connection, frame, counter);
    this.counters.drop(counter, this.known.has(to) ? 'down' : 'unknown');
  }

  /**
   * Drops an agent's connection (operations, tests): `abrupt` cuts the TCP connection without a
   * close frame (as a crash or a lost link would); otherwise it closes with `code`. The agent may
   * reconnect. False if the agent is not connected.
   */
  disconnect(agentId: string, { code = WS_CLOSE.goingAway, reason = 'disconnected by the server', abrupt = false }: { code?: number; reason?: string; abrupt?: boolean } = {}): boolean {
    const connection = this.connections.get(agentId);
    if (connection === undefined) return false;
    if (abrupt) connection.socket.terminate();
    else this.closeSocket(connection, code, reason);
    return true;
  }

  /** Closes every connection (1001) and stops listening. Local inboxes stay as they are. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.flushing?.unsubscribe();
    this.flushing = undefined;
    const closing = [...this.sockets].map(
      connection =>
        new Promise<void>(resolve => {
          if (connection.socket.readyState === WebSocket.CLOSED) return resolve();
          const timer = setTimeout(() => connection.socket.terminate(), 1000);
          connection.socket.once('close', () => {
            clearTimeout(timer);
            resolve();
          });
          this.closeSocket(connection, WS_CLOSE.goingAway, 'server shutting down');
        }),
    );
    await Promise.all(closing);
    await new Promise<void>(resolve => this.wss.close(() => resolve()));
    this.events.complete();
  }

  private emit(event: WsServerEvent): void {
    try {
      this.log(event);
    } catch {
      // A throwing logger must not take the server down.
    }
    this.events.next(event);
  }

  private flush(): void {
    this.flushing = undefined;
    const batch = this.pending;
    this.pending = [];
    for (const { member, envelope, counter } of batch) {
      if (member.closed) {
        this.counters.drop(counter, 'down');
        continue;
      }
      this.counters.deliver(counter);
      member.next(envelope);
    }
  }

  private write(connection: Connection, frame: string, counter: KindCounter): void {
    if (connection.closing || connection.socket.readyState !== WebSocket.OPEN) return this.counters.drop(counter, 'down');
    if (connection.socket.bufferedAmount > this.maxBufferedBytes) {
      // It does not read: cut it, since no close frame could pass the backlog (the peer sees 1006,
      // abnormal closure). It may reconnect.
      this.counters.drop(counter, 'down');
      connection.closing = true;
      this.rejected(connection, 1006, `not reading: ${connection.socket.bufferedAmount} bytes waiting (maxBufferedBytes ${this.maxBufferedBytes}); cut without a close frame`);
      connection.socket.terminate();
      return;
    }
    connection.socket.send(frame);
    this.counters.deliver(counter);
  }

  /** Bytes written to `agentId`'s connection that its peer has not taken yet (0 if not connected). */
  buffered(agentId: string): number {
    return this.connections.get(agentId)?.socket.bufferedAmount ?? 0;
  }

  private accept(socket: WebSocket, remote: string): void {
    if (this.closed) {
      socket.close(WS_CLOSE.goingAway, 'server shutting down');
      return;
    }
    const connection = new Connection(socket, remote, this.burst, performance.now());
    this.sockets.add(connection);
    connection.helloTimer = setTimeout(() => this.refuse(connection, WS_CLOSE.unauthenticated, `no hello within ${this.helloTimeoutMs} ms`), this.helloTimeoutMs);
    socket.on('message', (data, isBinary) => this.onFrame(connection, data, isBinary));
    // Protocol errors found by ws itself (oversized frame, invalid UTF-8): it closes the socket.
    socket.on('error', err => this.onSocketError(connection, err));
    socket.on('close', (code, reason) => this.onClose(connection, code, reason.toString('utf8')));
  }

  private onClose(connection: Connection, code: number, reason: string): void {
    clearTimeout(connection.helloTimer);
    connection.closing = true;
    this.sockets.delete(connection);
    const { agentId } = connection;
    if (agentId !== undefined && this.connections.get(agentId) === connection) {
      this.connections.delete(agentId);
      this.emit({ type: 'disconnected', agentId, code, reason });
    }
  }

  private onSocketError(connection: Connection, err: Error & { code?: string }): void {
    const code = WS_ERRORS[err.code ?? ''];
    if (code === undefined || connection.closing) return; // resets and the like: 'close' follows
    connection.closing = true;
    this.counters.rejected++;
    const error = code === WS_CLOSE.tooBig ? `frame above maxPayload (${this.maxPayload} bytes)` : err.message;
    this.emit({ type: 'rejected', agentId: connection.agentId, remote: connection.remote, code, error });
  }

  private takeToken(connection: Connection): boolean {
    const now = performance.now();
    connection.tokens = Math.min(this.burst, connection.tokens + ((now - connection.refilledAt) * this.perSecond) / 1000);
    connection.refilledAt = now;
    if (connection.tokens < 1) return false;
    connection.tokens -= 1;
    return true;
  }

  private onFrame(connection: Connection, data: RawData, isBinary: boolean): void {
    if (connection.closing) return;
    if (!this.takeToken(connection)) {
      return this.refuse(connection, WS_CLOSE.rateLimited, `rate limit exceeded (${this.perSecond} frames/s, burst ${this.burst})`);
    }
    if (isBinary) return this.refuse(connection, WS_CLOSE.unsupportedData, 'binary frames are not accepted: send JSON text');
    const decoded = decode(text(data), { maxBytes: this.maxPayload });
    if (!decoded.ok) return this.refuse(connection, decoded.closeCode, decoded.error);
    const message = decoded.message;
    switch (message.type) {
      case 'hello':
        if (connection.agentId !== undefined) return this.refuse(connection, WS_CLOSE.policyViolation, `already joined as ${JSON.stringify(connection.agentId)}`);
        return this.hello(connection, message);
      case 'envelope': {
        const { agentId } = connection;
        if (agentId === undefined) return this.refuse(connection, WS_CLOSE.unauthenticated, 'send hello with the token before any envelope');
        if (message.from !== agentId) {
          // Dropped and logged; the connection stays: one bad relay must not cut an agent off.
          this.counters.rejected++;
          const error = `forged sender: envelope from ${JSON.stringify(message.from)} on the connection of ${JSON.stringify(agentId)} dropped`;
          this.reply(connection, { v: 1, type: 'error', code: WS_CLOSE.forgedSender, error });
          this.emit({ type: 'rejected', agentId, remote: connection.remote, code: WS_CLOSE.forgedSender, error });
          return;
        }
        if (connection.role === 'client' ? !CLIENT_KINDS.has(message.kind) : SERVICE_KINDS.has(message.kind)) {
          return this.refuse(connection, WS_CLOSE.policyViolation, `a${connection.role === 'agent' ? 'n agent' : ' client'} may not send ${message.kind} envelopes`);
        }
        this.counters.received++;
        return this.route(message.from, message.to, message.kind, message.body);
      }
      case 'leave':
        return this.closeSocket(connection, WS_CLOSE.normal, 'left');
      default:
        return this.refuse(connection, WS_CLOSE.policyViolation, `${message.type} messages are sent by the server only`);
    }
  }

  private hello(connection: Connection, { agentId, capabilities, token, role = 'agent', slots = 1 }: HelloMessage): void {
    if (!tokensMatch(this.token, token)) return this.refuse(connection, WS_CLOSE.unauthenticated, 'invalid token');
    if (this.members.has(agentId) || this.reserved.has(agentId)) {
      return this.refuse(connection, WS_CLOSE.policyViolation, `id ${JSON.stringify(agentId)} belongs to a node of the server's process`);
    }
    const held = this.connections.get(agentId);
    if (held !== undefined && held.role !== role) {
      return this.refuse(connection, WS_CLOSE.policyViolation, `id ${JSON.stringify(agentId)} is held by a connected ${held.role}`);
    }
    clearTimeout(connection.helloTimer);
    connection.helloTimer = undefined;
    const previous = this.connections.get(agentId);
    if (previous !== undefined) {
      this.connections.delete(agentId); // before its close event: that one must not report the new one gone
      this.closeSocket(previous, WS_CLOSE.replaced, 'replaced by a newer connection with the same agent id');
      this.emit({ type: 'disconnected', agentId, code: WS_CLOSE.replaced, reason: 'replaced' });
    }
    connection.agentId = agentId;
    connection.role = role;
    connection.capabilities = capabilities;
    connection.slots = slots;
    this.connections.set(agentId, connection);
    this.known.add(agentId);
    this.reply(connection, { v: 1, type: 'join', agentId, capabilities, session: this.session });
    this.emit({ type: 'connected', agentId, role, capabilities, slots, remote: connection.remote, replaced: previous !== undefined });
  }

  /** Routes an envelope that came from a socket (already checked). */
  private route(from: string, to: string, kind: WireKind, body: unknown): void {
    const counter = this.counters.count(kind);
    const member = this.members.get(to);
    if (member !== undefined) {
      this.counters.deliver(counter);
      member.next({ from, to, kind, body, sentAt: this.scheduler.now() } as E);
      return;
    }
    const connection = this.connections.get(to);
    // Relayed re-encoded: what the schema stripped does not travel on.
    if (connection !== undefined) return this.write(connection, encode({ v: 1, type: 'envelope', from, to, kind, body }), counter);
    this.counters.drop(counter, this.known.has(to) ? 'down' : 'unknown');
  }

  private reply(connection: Connection, message: WireMessage): void {
    if (connection.socket.readyState === WebSocket.OPEN) connection.socket.send(encode(message));
  }

  private refuse(connection: Connection, code: WsCloseCode, error: string): void {
    if (connection.closing) return;
    this.reply(connection, { v: 1, type: 'error', code, error });
    this.rejected(connection, code, error);
    this.closeSocket(connection, code, error);
  }

  /** Counts and reports a connection refused or cut by the server. */
  private rejected(connection: Connection, code: number, error: string): void {
    this.counters.rejected++;
    this.emit({ type: 'rejected', agentId: connection.agentId, remote: connection.remote, code, error });
  }

  private closeSocket(connection: Connection, code: number, reason: string): void {
    if (connection.closing && connection.socket.readyState !== WebSocket.OPEN) return;
    connection.closing = true;
    clearTimeout(connection.helloTimer);
    connection.socket.close(code, closeReason(reason));
  }
}

// ---- client ---------------------------------------------------------------------------------

export interface ReconnectOptions {
  /** First delay after a lost connection. Default 100 ms. */
  readonly initialDelayMs?: number;
  /** Delays grow by this factor per failed attempt. Default 2. */
  readonly factor?: number;
  /** Upper bound of a delay. Default 5000 ms. */
  readonly maxDelayMs?: number;
  /** Share of a delay drawn at random, in [0, 1]: delay × (1 − jitter × random). Default 0.5. */
  readonly jitter?: number;
  /** Consecutive failed attempts before giving up (the inbox errors). Default Infinity. */
  readonly maxAttempts?: number;
}

export interface WsClientNetworkOptions {
  /** `ws://host:port` of the coordinator's server. */
  readonly url: string;
  /** The node id this process joins under (the only id `join` accepts and `send` sends as). */
  readonly agentId: string;
  readonly token: string;
  readonly capabilities?: readonly string[];
  /** `agent` (default): a member given subtasks; `client`: submits tasks only. */
  readonly role?: ConnectionRole;
  /** Subtasks the agent runs at once, told to the coordinator in the hello. Default 1. */
  readonly slots?: number;
  /** Stamps `sentAt` of arriving envelopes. Default `asyncScheduler`. */
  readonly scheduler?: SchedulerLike;
  /** Largest frame accepted from the server. Default 1 MiB. */
  readonly maxPayload?: number;
  /**
   * An attempt not joined this long after it began (no TCP answer, no WebSocket upgrade, no reply to
   * the hello) is abandoned and retried. Default 10,000 ms: shorter gives up sooner on a slow link.
   */
  readonly connectTimeoutMs?: number;
  readonly reconnect?: ReconnectOptions;
  /** Draws the backoff jitter, in [0, 1). Default `Math.random`. */
  readonly random?: () => number;
  /** Receives every client event (default: nothing). */
  readonly log?: (event: WsClientEvent) => void;
}

export type WsClientEvent =
  /** Joined; `session` names the server instance (a different one than before: it restarted). */
  | { readonly type: 'joined'; readonly agentId: string; readonly connects: number; readonly session: string | undefined }
  /**
   * The connection closed or could not be made. `cause`: why an attempt failed before the server
   * answered (refused, host not found, TLS mismatch, timed out…), where close 1006 alone says nothing.
   */
  | { readonly type: 'disconnected'; readonly code: number; readonly reason: string; readonly willReconnect: boolean; readonly cause: ConnectionCause | undefined }
  | { readonly type: 'reconnecting'; readonly attempt: number; readonly delayMs: number }
  /** An error frame from the server, or a frame from it that failed to decode (ignored). */
  | { readonly type: 'error'; readonly code: number; readonly error: string };

export type WsClientState = 'idle' | 'connecting' | 'open' | 'waiting' | 'failed';

/** Why a client stopped for good: its inbox errors with this. `cause`: why the last attempt failed, when it never reached the server. */
export class WsConnectionError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    override readonly cause?: ConnectionCause,
  ) {
    super(cause !== undefined ? `cannot connect: ${cause.message} (${reason})` : code === 1006 ? `cannot connect: ${reason}` : `connection refused for good (close ${code}): ${reason}`);
    this.name = 'WsConnectionError';
  }
}

/** Close codes after which reconnecting cannot help: the inbox errors instead. */
const FINAL_CODES = new Set<number>([WS_CLOSE.policyViolation, WS_CLOSE.unauthenticated, WS_CLOSE.unsupportedVersion, WS_CLOSE.replaced]);
/** Close codes that, before the join, mean the hello itself was refused. */
const REFUSED_HELLO_CODES = new Set<number>([WS_CLOSE.unsupportedData, WS_CLOSE.invalidPayload, WS_CLOSE.tooBig]);

/**
 * An agent process's side of the WebSocket transport: a {@link Network} with one node, this
 * process's agent. `join(agentId)` connects, says hello with the token and capabilities, and
 * yields the envelopes addressed to the agent; `send` writes envelopes (`from` must be the agent).
 * A lost connection is retried with exponential backoff and jitter, and the agent rejoins under
 * the same id; while it is not joined, sends are dropped and counted as `down` (the coordinator's
 * acknowledgement and progress timeouts recover the work). Closes with 4001, 4002, 4004 or 1008
 * are final: the inbox errors with a {@link WsConnectionError}.
 *
 * ```
 * state:  connecting ─hello/join─▶ open ─lost─▶ waiting (backoff) ─▶ connecting ─▶ open …
 * ```
 *
 * An attempt that fails before the server answers says why in its `disconnected` event's `cause`
 * (refused, host not found, TLS mismatch…, from the error `ws` raised), and an attempt not joined
 * within `connectTimeoutMs` is abandoned (cause: timed out) and retried.
 *
 * Options: `reconnect` (`initialDelayMs` 100, `factor` 2, `maxDelayMs` 5000, `jitter` 0.5,
 * `maxAttempts` ∞ — shorter delays rejoin sooner but hammer a server that is down),
 * `connectTimeoutMs` (10,000), `maxPayload`, `scheduler`, `random`, `log`.
 *
 * @example
 * const network = new WsClientNetwork({ url: 'ws://10.0.0.5:7070', agentId: 'worker-1', token, capabilities: ['code'] });
 * new AgentHost(agent, { network, coordinatorId: 'coordinator', heartbeatIntervalMs: 1000, heartbeatJitterMs: 100, random }).start();
 */
export class WsClientNetwork<E extends Envelope = Envelope> implements Network<E> {
  readonly scheduler: SchedulerLike;
  readonly agentId: string;
  private readonly url: string;
  private readonly token: string;
  private readonly capabilities: readonly string[];
  private readonly role: ConnectionRole;
  private readonly slots: number;
  private readonly maxPayload: number;
  private readonly connectTimeoutMs: number;
  private readonly initialDelayMs: number;
  private readonly factor: number;
  private readonly maxDelayMs: number;
  private readonly jitter: number;
  private readonly maxAttempts: number;
  private readonly random: () => number;
  private readonly log: (event: WsClientEvent) => void;
  private readonly events = new Subject<WsClientEvent>();
  private readonly counters = new Counters();
  private inbox: Subscriber<E> | undefined;
  private socket: WebSocket | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** Abandons an attempt that has not joined within `connectTimeoutMs`. */
  private connectTimer: ReturnType<typeof setTimeout> | undefined;
  private stateValue: WsClientState = 'idle';
  /** Consecutive attempts that did not reach `open`. */
  private attempts = 0;
  private connects = 0;

  constructor({
    url,
    agentId,
    token,
    capabilities = [],
    role = 'agent',
    slots = 1,
    scheduler = asyncScheduler,
    maxPayload = DEFAULT_MAX_BYTES,
    connectTimeoutMs = 10_000,
    reconnect = {},
    random = Math.random,
    log = () => undefined,
  }: WsClientNetworkOptions) {
    if (typeof url !== 'string' || !/^wss?:\/\//.test(url)) throw new RangeError(`url must be ws://host:port or wss://…, got ${String(url)}`);
    this.agentId = requireId('agentId', agentId);
    if (typeof token !== 'string') throw new RangeError('token must be a string');
    if (!Array.isArray(capabilities)) throw new RangeError(`capabilities must be an array of strings, got ${String(capabilities)}`);
    capabilities.forEach((c, i) => requireId(`capabilities[${i}]`, c));
    if (role !== 'agent' && role !== 'client') throw new RangeError(`role must be 'agent' or 'client', got ${String(role)}`);
    this.role = role;
    this.slots = requireInteger('slots', slots, 1);
    requireInRange('slots', slots, 1, 1024);
    const { initialDelayMs = 100, factor = 2, maxDelayMs = 5000, jitter = 0.5, maxAttempts = Infinity } = reconnect;
    this.scheduler = requireScheduler(scheduler);
    this.maxPayload = requireInteger('maxPayload', maxPayload, 64);
    this.connectTimeoutMs = requireNumber('connectTimeoutMs', connectTimeoutMs, 0, true);
    this.initialDelayMs = requireNumber('reconnect.initialDelayMs', initialDelayMs, 0);
    this.factor = requireNumber('reconnect.factor', factor, 1);
    this.maxDelayMs = requireNumber('reconnect.maxDelayMs', maxDelayMs, this.initialDelayMs);
    this.jitter = requireInRange('reconnect.jitter', jitter, 0, 1);
    this.maxAttempts = maxAttempts === Infinity ? Infinity : requireInteger('reconnect.maxAttempts', maxAttempts, 1);
    if (typeof random !== 'function') throw new RangeError(`random must be a function, got ${String(random)}`);
    if (typeof log !== 'function') throw new RangeError(`log must be a function, got ${String(log)}`);
    this.url = url;
    this.token = token;
    this.capabilities = [...capabilities];
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

  /** Backoff before attempt `attempt` (1-based): exponential, capped, minus a random share. */
  delayFor(attempt: number): number {
    const base = Math.min(this.maxDelayMs, this.initialDelayMs * this.factor ** Math.max(0, attempt - 1));
    return base * (1 - this.jitter * this.random());
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
      this.connect();
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
    const frame = encodeEnvelope(from, to, kind, body);
    const counter = this.counters.count(kind);
    const socket = this.socket;
    if (this.stateValue !== 'open' || socket === undefined || socket.readyState !== WebSocket.OPEN) return this.counters.drop(counter, 'down');
    socket.send(frame);
    this.counters.deliver(counter);
  }

  /** Leaves (as unsubscribing the inbox does) and completes `events$`. */
  close(): void {
    this.inbox?.unsubscribe();
    this.stop();
    this.events.complete();
  }

  private emit(event: WsClientEvent): void {
    try {
      this.log(event);
    } catch {
      // A throwing logger must not break the connection.
    }
    this.events.next(event);
  }

  private stop(): void {
    this.inbox = undefined;
    clearTimeout(this.timer);
    clearTimeout(this.connectTimer);
    this.timer = this.connectTimer = undefined;
    const socket = this.socket;
    this.socket = undefined;
    this.stateValue = 'idle';
    if (socket !== undefined) {
      socket.removeAllListeners('message');
      socket.removeAllListeners('close');
      socket.on('error', () => undefined);
      if (socket.readyState === WebSocket.OPEN) {
        socket.send(encode({ v: 1, type: 'leave' }));
        socket.close(WS_CLOSE.normal, 'left');
      } else if (socket.readyState === WebSocket.CONNECTING) {
        socket.terminate();
      }
    }
  }

  private connect(): void {
    this.timer = undefined;
    this.stateValue = 'connecting';
    const socket = new WebSocket(this.url, { maxPayload: this.maxPayload, perMessageDeflate: false });
    this.socket = socket;
    // The first error says why the attempt failed; 'close' 1006 follows it and says nothing.
    let cause: ConnectionCause | undefined;
    this.connectTimer = setTimeout(() => {
      this.connectTimer = undefined;
      cause = timeoutCause(this.url, this.connectTimeoutMs, socket.readyState === WebSocket.OPEN);
      socket.terminate(); // 'close' 1006 follows, and the attempt is retried
    }, this.connectTimeoutMs);
    socket.on('open', () => socket.send(encode({ v: 1, type: 'hello', agentId: this.agentId, capabilities: this.capabilities, token: this.token, role: this.role, slots: this.slots })));
    socket.on('message', (data, isBinary) => {
      if (this.socket === socket) this.onFrame(data, isBinary);
    });
    socket.on('error', err => {
      // Only before the join: errors of an established connection are not about reaching it.
      if (this.stateValue === 'connecting') cause ??= connectionCause(err, this.url);
    });
    socket.on('close', (code, reason) => {
      if (this.socket === socket) this.onClose(code, reason.toString('utf8'), cause);
    });
  }

  private onFrame(data: RawData, isBinary: boolean): void {
    const decoded = isBinary ? ({ ok: false, error: 'binary frame from the server', closeCode: WS_CLOSE.unsupportedData } as const) : decode(text(data), { maxBytes: this.maxPayload });
    if (!decoded.ok) {
      this.counters.rejected++;
      this.emit({ type: 'error', code: decoded.closeCode, error: `ignored a frame from the server: ${decoded.error}` });
      return;
    }
    const message = decoded.message;
    switch (message.type) {
      case 'join':
        clearTimeout(this.connectTimer);
        this.connectTimer = undefined;
        this.stateValue = 'open';
        this.attempts = 0;
        this.connects++;
        this.emit({ type: 'joined', agentId: this.agentId, connects: this.connects, session: message.session });
        return;
      case 'envelope': {
        const inbox = this.inbox;
        if (inbox === undefined || message.to !== this.agentId) {
          this.counters.rejected++;
          return;
        }
        this.counters.received++;
        inbox.next({ from: message.from, to: message.to, kind: message.kind, body: message.body, sentAt: this.scheduler.now() } as E);
        return;
      }
      case 'error':
        this.emit({ type: 'error', code: message.code, error: message.error });
        return;
      default:
        return; // hello and leave are the agent's to send
    }
  }

  private onClose(code: number, reason: string, cause: ConnectionCause | undefined): void {
    this.socket = undefined;
    clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    const inbox = this.inbox;
    if (inbox === undefined) return;
    this.attempts++;
    // A hello refused for what it says (an id or capability too long…) would be refused again.
    const final = FINAL_CODES.has(code) || (this.stateValue === 'connecting' && REFUSED_HELLO_CODES.has(code));
    const exhausted = this.attempts > this.maxAttempts;
    this.emit({ type: 'disconnected', code, reason, willReconnect: !final && !exhausted, cause });
    if (final || exhausted) {
      this.stateValue = 'failed';
      this.inbox = undefined;
      const gaveUp = `gave up after ${this.maxAttempts} attempt${this.maxAttempts === 1 ? '' : 's'}${cause === undefined ? ` (last close: ${reason || code})` : ''}`;
      inbox.error(new WsConnectionError(code, exhausted && !final ? gaveUp : reason, cause));
      return;
    }
    this.stateValue = 'waiting';
    const delayMs = this.delayFor(this.attempts);
    this.emit({ type: 'reconnecting', attempt: this.attempts, delayMs });
    this.timer = setTimeout(() => {
      if (this.inbox === inbox) this.connect();
    }, delayMs);
  }
}

