import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Observable, Subject, asyncScheduler, concat, defer, filter, from, map, type SchedulerLike, type Subscriber, type Subscription } from 'rxjs';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { lineLimit } from '../operators/internal/lineLimit.js';
import { requireInteger, requireNumber, requireInRange, requireScheduler } from '../operators/internal/validate.js';
import { assertOutgoing, requireId, type Envelope, type Outgoing } from './messages.js';
import type { DropReason, KindStats, Network, NetworkStats, RemoteMember } from './network.js';
import { CLIENT_MAX_DEPTH, DEFAULT_MAX_BYTES, WS_CLOSE, decode, encode, isWireKind, utf8Above, type DecodeOptions, type HelloMessage, type WireKind, type WireMessage, type WsCloseCode } from './wsCodec.js';
import { SUBMISSION_KINDS, hopsLeft, routeLeft, type AssignBody, type CancelBody, type DelegateBody, type HeartbeatBody, type ResultBody, type Routed } from './protocol.js';
import { payloadProblem } from './task.js';
import { keyFrom, newSessionKey, signOrder, signResult, verifyOrder, verifyResult } from './signing.js';
import { connectionCause, timeoutCause, type ConnectionCause } from './connectionCause.js';
import { turnCork } from './wsCork.js';
import { BEAT_FRAME, BeatFrameReader, encodeBeatFrame } from './wsBeatFrame.js';

// Wall-clock time and timers are allowed here: this is a real transport, at the edge of the system
// (the architecture test exempts streams/ws*.ts). Message stamps still come from the scheduler.

/** Counters of a WebSocket network: the in-memory ones plus the transport's own. */
export interface WsNetworkStats extends NetworkStats {
  /** Envelopes that arrived from sockets and passed validation (on the server they are routed, so also in `sent`). */
  readonly received: number;
  /** Frames or connections refused (bad token, bad frame, forged sender, rate limit…). */
  readonly rejected: number;
}

/** Counts of one kind (shared with the NATS transport). */
export class KindCounter {
  sent = 0;
  delivered = 0;
  dropped = 0;
}

/** Counts as InMemoryNetwork does: `sent = delivered + dropped + inFlight` (shared with the NATS transport). */
export class Counters {
  private readonly kinds = new Map<string, KindCounter>();
  sent = 0;
  delivered = 0;
  dropped = 0;
  rejected = 0;
  received = 0;
  readonly droppedBy: Record<DropReason, number> = { unknown: 0, down: 0, partition: 0, loss: 0 };

  /** The kind counted last and its counter: heartbeats come in long runs, so most counts skip the map. */
  private lastKind = '';
  private lastCounter = new KindCounter();

  count(kind: string): KindCounter {
    let counter = kind === this.lastKind ? this.lastCounter : this.kinds.get(kind);
    if (counter === undefined) this.kinds.set(kind, (counter = new KindCounter()));
    this.lastKind = kind;
    this.lastCounter = counter;
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

/** A frame's bytes as one Buffer (`ws` hands over a Buffer, fragments, or an ArrayBuffer). */
function bytes(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
}

/** A frame's length in bytes, without copying it. */
function byteCount(data: RawData): number {
  if (Array.isArray(data)) {
    let n = 0;
    for (const part of data) n += part.length;
    return n;
  }
  return data.byteLength;
}

function text(data: RawData): string {
  return bytes(data).toString(); // UTF-8; without arguments Buffer takes its shortest path
}

const RESOLVED = Promise.resolve();

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

/**
 * A body as the wire carries it: a route shared between hops in this process (`hop`, see
 * {@link Routed}) goes out as the route still to go, without `hop` — the format every peer reads.
 */
export function onWire(body: unknown): unknown {
  if (body === null || typeof body !== 'object' || !('hop' in body)) return body;
  const { hop: _hop, ...rest } = body as Routed;
  return { ...rest, via: routeLeft(body as Routed) };
}

function encodeEnvelope(from: string, to: string, kind: string, body: unknown): string {
  if (!isWireKind(kind)) throw new RangeError(`envelope.kind ${JSON.stringify(kind)} cannot travel over WebSocket (not a protocol or repair kind)`);
  try {
    return encode({ v: 1, type: 'envelope', from, to, kind, body: onWire(body) });
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
  /** Receives every server event; default: refusals are written to stderr (ten a second at most, the rest counted). */
  readonly log?: (event: WsServerEvent) => void;
  /** Largest frame before a connection's hello is accepted (nobody unauthenticated makes the server hold more). Default 64 KiB. */
  readonly preHelloMaxBytes?: number;
  /** Largest frame from an agent after its hello (its results; clients may send up to `maxPayload`: whole tasks). Default 16 MiB. */
  readonly agentMaxPayload?: number;
  /** A TCP connection that has not upgraded to WebSocket (or finished TLS) this long is dropped. Default 5000. */
  readonly handshakeTimeoutMs?: number;
  /**
   * Open connections at most, of every kind (upgraded or not); more are refused at once, leaving
   * descriptors for the rest of the process. Default: the process's open-file limit less 64
   * (1,000 when it cannot be read).
   */
  readonly maxConnections?: number;
  /** Connections at most that have not said a valid hello yet (what anyone without the token can hold). Default 256. */
  readonly maxPendingConnections?: number;
  /** A peer whose unread bytes have not gone down for this long is cut (checked every second and on every send). Default 10,000. */
  readonly drainTimeoutMs?: number;
  /**
   * A hello under an id a live connection holds is refused (4009, retryable) and the holder is
   * pinged: heard from in no way (pong, frame) for this long, it is cut and the id is free. Longer
   * than an agent's longest busy stretch (a CPU-bound handler answers no ping): default 5 ×
   * `heartbeatMs`, at least 5000 — a process past that is being declared failed anyway.
   */
  readonly idProbeMs?: number;
  /**
   * The node whose `assign` and `cancel` are signed for their recipients, and to which only results
   * signed by the agents they name are delivered as theirs. Default `coordinator`.
   */
  readonly authority?: string;
  /** Signs and checks as above (default true). Off only to measure what it costs. */
  readonly sign?: boolean;
  /**
   * What is sent on a connection within one turn of the event loop leaves in one write (the socket
   * is corked until the turn ends: `streams/wsCork.ts`). Default true; off only to measure it.
   */
  readonly coalesceWrites?: boolean;
  /** Told to agents at hello: the coordinator's heartbeat interval (they beat at it). */
  readonly heartbeatMs?: number;
  /** Told to agents at hello: the coordinator's acknowledgement timeout (they acknowledge well within it). */
  readonly ackTimeoutMs?: number;
  /** Told to agents at hello: the largest payload or result value (JSON bytes) the coordinator takes. Default 1 MiB. */
  readonly maxValueBytes?: number;
  /** Serve `wss://`: PEM certificate and key (contents, not paths). */
  readonly tls?: { readonly cert: string | Uint8Array; readonly key: string | Uint8Array };
  /**
   * Serves plain HTTP requests on the same port (the dashboard, `/metrics`): return true once the
   * request is answered; false or nothing gets the default 426 (use a WebSocket). Requests are
   * bounded like every connection: headers and the whole request within `handshakeTimeoutMs`, the
   * socket dropped at that bound unless it upgraded, and counted against `maxConnections`. A
   * handler should answer GETs without reading a body (none is buffered for it).
   */
  readonly onHttpRequest?: (request: HttpRequest, response: HttpResponse) => boolean | void;
}

/**
 * What `onHttpRequest` is given of Node's `IncomingMessage` (it is one): typed here, so that the
 * package's declarations need no `@types/node`.
 */
export interface HttpRequest {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

/** What `onHttpRequest` is given of Node's `ServerResponse` (it is one). */
export interface HttpResponse {
  readonly headersSent: boolean;
  writeHead(status: number, headers?: Record<string, string>): unknown;
  end(body?: string | Uint8Array): unknown;
}

/** Largest payload or result value by default (JSON bytes). */
export const DEFAULT_MAX_VALUE_BYTES = 1024 * 1024;

/** The process's open-file limit less headroom, or 1,000 when it cannot be read (not Linux). */
function defaultMaxConnections(): number {
  try {
    const limits = readFileSync('/proc/self/limits', 'utf8');
    const soft = Number(/^Max open files\s+(\d+)/m.exec(limits)?.[1]);
    if (Number.isSafeInteger(soft) && soft > 128) return Math.min(100_000, soft - 64);
  } catch {
    // not Linux: a fixed default
  }
  return 1000;
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
      /** Names the agent's process, the same across its reconnects (from its hello). */
      readonly instance?: string;
    }
  /** `clean`: it said `leave` first; otherwise the connection was lost (a killed process, a reset link, cut by the server). */
  | { readonly type: 'disconnected'; readonly agentId: string; readonly role: ConnectionRole; readonly code: number; readonly reason: string; readonly clean: boolean }
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

/**
 * What a client connection may send: a task to the service, a request to watch its state, a
 * request to cancel a task; nothing that steers agents.
 */
export const CLIENT_KINDS: ReadonlySet<string> = new Set(['submit', 'attach', 'watch', 'cancel-task']);
/** Kinds the authority sends that only their recipient may act on: signed for it. */
export const ORDER_KINDS: ReadonlySet<string> = new Set(['assign', 'cancel']);
/** What only the coordinator's process sends: an agent sending these is refused. */
export const SERVICE_KINDS: ReadonlySet<string> = new Set([...SUBMISSION_KINDS, 'peers', 'received', 'delegated']);

/**
 * Room for the rest of a result's frame beside its value: an agent's transport fails a result
 * whose frame is above `maxValueBytes` and this (`WsClientNetwork.frameOf`), the server one whose
 * value is.
 */
export const VALUE_SLACK_BYTES = 64 * 1024;

/**
 * The body of a `kind` envelope for a node of the server's process, before its signature is
 * checked: a child asked for over the wire (`delegate`) is marked `tooBig` when its payload is
 * above `maxValueBytes`, held to what a submitted task's payloads are (it would be held and
 * journaled as they are, and one near the agents' frame limit could be assigned to none of
 * them). Any other body as it is.
 */
export function sizedChild(kind: string, body: unknown, maxValueBytes: number): unknown {
  if (kind !== 'delegate') return body;
  const tooBig = payloadProblem((body as DelegateBody).subtask, maxValueBytes);
  return tooBig === undefined ? body : { ...(body as DelegateBody), tooBig };
}

/**
 * The body of a `kind` envelope that came in a frame of `frameBytes`, once its signature is
 * checked (it covers the value): a result whose value is above `maxValueBytes` (what every agent
 * is told at hello) by more than an honest agent's transport lets through (it turns a frame above
 * `maxValueBytes` and {@link VALUE_SLACK_BYTES} into a failure itself) is a failure of its
 * attempt: its value is not taken. Only a frame that big can carry such a value: no other is
 * measured. Any other body as it is.
 */
export function sizedValue(kind: string, body: unknown, frameBytes: number, maxValueBytes: number): unknown {
  if (kind !== 'result' || frameBytes <= maxValueBytes + VALUE_SLACK_BYTES) return body;
  const result = body as ResultBody;
  if (result.forged !== undefined || !result.ok || result.value === undefined) return body;
  const json = JSON.stringify(result.value);
  if (json === undefined || !utf8Above(json, maxValueBytes + VALUE_SLACK_BYTES)) return body;
  const { value: _value, ...rest } = result;
  return { ...rest, ok: false, error: `result value of ${Buffer.byteLength(json, 'utf8')} bytes is above the limit of ${maxValueBytes} (maxValueBytes)` };
}

/**
 * Why an envelope from `from` for `to` is dropped for its route, or undefined: no route the
 * coordinator makes passes a node twice, and one that comes back to where it goes next would go
 * round in circles, re-encoded by honest relays at every hop.
 */
export function loopingRoute(from: string, to: string, kind: string, body: unknown): string | undefined {
  if ((body as Partial<Routed>).via?.includes(to) !== true) return undefined;
  return `${kind} from ${JSON.stringify(from)} for ${JSON.stringify(to)}: its route comes back to ${JSON.stringify(to)}: dropped`;
}

/** Agent ids a server remembers having seen (for how it counts what it drops); the oldest is forgotten first. */
const KNOWN_IDS = 65_536;

/** Longest a `received` waits for company (see `WsServerNetwork.hold`). */
const HOLD_MAX_MS = 10;

/** An assignment that ends at this connection's agent tells it an rto: its `received` frames may wait a quarter of it. */
function told(connection: Connection, body: AssignBody): void {
  if (body.rto !== undefined && hopsLeft(body) === 0) connection.rtoMs = body.rto;
}

class Connection {
  agentId: string | undefined;
  role: ConnectionRole = 'agent';
  capabilities: readonly string[] = [];
  slots = 1;
  instance: string | undefined;
  /** The largest frame the peer takes (its hello says; default what the server itself sends at most). */
  maxFrameBytes = Infinity;
  closing = false;
  helloTimer: ReturnType<typeof setTimeout> | undefined;
  /** Unread bytes at the last check, and since when they have not gone down (0: draining). */
  lastBuffered = 0;
  stuckSince = 0;
  probing = false;
  /** It said `leave`: its close is a clean departure. */
  left = false;
  /** The retransmission timeout the peer's latest assignment told it (0: none yet): how long a `received` may wait. */
  rtoMs = 0;
  /** `received` frames waiting for the next frame to this peer, or their deadline (see `WsServerNetwork.hold`). */
  held: Array<{ readonly frame: string; readonly counter: KindCounter }> | undefined;
  heldTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    readonly socket: WebSocket,
    readonly remote: string,
    public tokens: number,
    /** When the peer last sent a frame (performance.now()): its token bucket refills from then. */
    public heardAt: number,
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

function member(agentId: string, capabilities: readonly string[], slots: number, instance: string | undefined): RemoteMember {
  return instance === undefined ? { agentId, capabilities, slots } : { agentId, capabilities, slots, instance };
}

/** Refusals the default log writes a second at most. */
const LOGGED_REFUSALS_PER_SECOND = 10;

/**
 * The default log of one server (`[rxswarm ws]`, or NATS's node): refusals to stderr, at most
 * {@link LOGGED_REFUSALS_PER_SECOND} a second (a stranger is refused as fast as it connects), and
 * how many more at the end of the second.
 */
export function defaultServerLog(label = 'ws', codeWord = 'close'): (event: WsServerEvent) => void {
  const refusals = lineLimit({
    perSecond: LOGGED_REFUSALS_PER_SECOND,
    summary: n => console.warn(`[rxswarm ${label}] refused ${n} more (not shown: more than ${LOGGED_REFUSALS_PER_SECOND} a second)`),
    now: () => performance.now(),
    later: (work, ms) => void setTimeout(work, ms).unref(),
  });
  return event => {
    if (event.type === 'rejected') refusals(() => console.warn(`[rxswarm ${label}] refused ${event.agentId ?? event.remote}: ${event.error} (${codeWord} ${event.code})`));
  };
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
  private readonly http: HttpServer;
  private readonly wss: WebSocketServer;
  private readonly token: string;
  private readonly maxPayload: number;
  private readonly perSecond: number;
  private readonly burst: number;
  private readonly helloTimeoutMs: number;
  private readonly maxBufferedBytes: number;
  private readonly reserved: ReadonlySet<string>;
  private readonly preHelloMaxBytes: number;
  private readonly agentMaxPayload: number;
  /** What `decode` is told for a frame, by who sent it: made once, not per frame. */
  private readonly decodeLimits: { readonly unjoined: DecodeOptions; readonly client: DecodeOptions; readonly agent: DecodeOptions };
  private readonly handshakeTimeoutMs: number;
  private readonly maxConnections: number;
  private readonly maxPendingConnections: number;
  private readonly drainTimeoutMs: number;
  private readonly idProbeMs: number;
  private readonly authority: string;
  private readonly signing: boolean;
  private readonly coalesce: boolean;
  private readonly heartbeatMs: number | undefined;
  private readonly ackTimeoutMs: number | undefined;
  /** The largest payload or result value (JSON bytes) the coordinator takes, told to agents at hello. */
  readonly maxValueBytes: number;
  private readonly secure: boolean;
  /** Session keys by node id: remote agents' (issued at each hello) and local nodes' (their results are signed here). */
  private readonly keys = new Map<string, Buffer>();
  /** TCP connections not yet upgraded, with their handshake timers. */
  private readonly raw = new Map<Socket, ReturnType<typeof setTimeout>>();
  /** Upgraded connections that have not said a valid hello yet. */
  private unjoined = 0;
  private sweeper: ReturnType<typeof setInterval> | undefined;
  /** Connections refused for capacity since the last report (reported at most once a second). */
  private overCapacity = 0;
  private overCapacityReportedAt = -Infinity;
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
  /**
   * Reads every connection's binary heartbeat frames: one for all, since they beat to the same
   * recipient (the coordinator) with the same few usage names, which it keeps decoded.
   */
  private readonly beats = new BeatFrameReader();
  /**
   * The clocks of this turn: the frames `ws` hands over in one turn (one socket read, often several
   * frames) arrived together, so they share one read of each clock — `performance.now()` for rate
   * limits, the scheduler's time for `sentAt` — taken at the turn's first frame and forgotten when
   * the turn's microtasks run.
   */
  private turnOpen = false;
  private turnWall = 0;
  private turnAt = 0;
  /** Bytes of the text frame being handled: what `route` is given came in a frame this long. */
  private frameBytes = 0;
  private readonly closeTurn = (): void => {
    this.turnOpen = false;
  };
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
    log = defaultServerLog(),
    preHelloMaxBytes = 64 * 1024,
    agentMaxPayload = 16 * 1024 * 1024,
    handshakeTimeoutMs = 5000,
    maxConnections = defaultMaxConnections(),
    maxPendingConnections = 256,
    drainTimeoutMs = 10_000,
    idProbeMs,
    authority = 'coordinator',
    sign = true,
    coalesceWrites = true,
    heartbeatMs,
    ackTimeoutMs,
    maxValueBytes = DEFAULT_MAX_VALUE_BYTES,
    tls,
    onHttpRequest,
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
    this.preHelloMaxBytes = requireInteger('preHelloMaxBytes', preHelloMaxBytes, 64);
    this.agentMaxPayload = Math.min(this.maxPayload, requireInteger('agentMaxPayload', agentMaxPayload, 64));
    this.decodeLimits = { unjoined: { maxBytes: this.preHelloMaxBytes }, client: { maxBytes: this.maxPayload }, agent: { maxBytes: this.agentMaxPayload } };
    this.handshakeTimeoutMs = requireNumber('handshakeTimeoutMs', handshakeTimeoutMs, 0, true);
    this.maxConnections = requireInteger('maxConnections', maxConnections, 1);
    this.maxPendingConnections = requireInteger('maxPendingConnections', maxPendingConnections, 1);
    this.drainTimeoutMs = requireNumber('drainTimeoutMs', drainTimeoutMs, 0, true);
    this.idProbeMs = requireNumber('idProbeMs', idProbeMs ?? Math.max(5000, 5 * (heartbeatMs ?? 0)), 0, true);
    this.authority = requireId('authority', authority);
    if (typeof sign !== 'boolean') throw new RangeError(`sign must be a boolean, got ${String(sign)}`);
    this.signing = sign;
    if (typeof coalesceWrites !== 'boolean') throw new RangeError(`coalesceWrites must be a boolean, got ${String(coalesceWrites)}`);
    this.coalesce = coalesceWrites;
    this.heartbeatMs = heartbeatMs === undefined ? undefined : requireNumber('heartbeatMs', heartbeatMs, 0, true);
    this.ackTimeoutMs = ackTimeoutMs === undefined ? undefined : requireNumber('ackTimeoutMs', ackTimeoutMs, 0, true);
    this.maxValueBytes = requireInteger('maxValueBytes', maxValueBytes, 1);
    if (tls !== undefined && (tls === null || typeof tls !== 'object' || tls.cert === undefined || tls.key === undefined)) {
      throw new RangeError('tls must be { cert, key } (PEM contents)');
    }
    this.secure = tls !== undefined;

    // Our own HTTP server, so that every stage of a connection is bounded: TCP (and TLS) until the
    // upgrade here, the upgraded socket until its hello in `accept`.
    const pem = (value: string | Uint8Array): string | Buffer => (typeof value === 'string' ? value : Buffer.from(value));
    this.http = tls === undefined ? createHttpServer() : createHttpsServer({ cert: pem(tls.cert), key: pem(tls.key), handshakeTimeout: this.handshakeTimeoutMs });
    this.http.headersTimeout = this.handshakeTimeoutMs;
    this.http.requestTimeout = this.handshakeTimeoutMs;
    this.wss = new WebSocketServer({ noServer: true, maxPayload: this.maxPayload, clientTracking: false, perMessageDeflate: false });
    this.ready = new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.http.once('error', onError);
      this.http.listen(port, host, () => {
        this.http.off('error', onError);
        resolve();
      });
    });
    // After listening, server errors are reported, never thrown.
    this.http.on('error', () => undefined);
    this.wss.on('error', () => undefined);
    this.http.on(tls === undefined ? 'connection' : 'secureConnection', (socket: Socket) => this.onTcp(socket));
    // As Node's own default: a 400 then close (a TLS client reading it knows it spoke TLS to plain HTTP).
    this.http.on('clientError', (_err: Error, socket: Socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      else socket.destroy();
    });
    if (onHttpRequest !== undefined && typeof onHttpRequest !== 'function') throw new RangeError(`onHttpRequest must be a function, got ${String(onHttpRequest)}`);
    this.http.on('request', (request: IncomingMessage, response: ServerResponse) => {
      if (onHttpRequest !== undefined) {
        try {
          if (onHttpRequest(request, response) === true) return;
        } catch {
          if (!response.headersSent) response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
          response.end('internal error\n');
          return;
        }
      }
      response.writeHead(426, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
      response.end('rxswarm coordinator: connect with a WebSocket client (rxswarm agent --connect ws://HOST:PORT)\n');
    });
    this.http.on('upgrade', (request: IncomingMessage, socket: Socket, head: Buffer) => this.onUpgrade(request, socket, head));
  }

  /** Creates a server and waits until it listens. */
  static async listen<E extends Envelope = Envelope>(options: WsServerNetworkOptions): Promise<WsServerNetwork<E>> {
    const server = new WsServerNetwork<E>(options);
    await server.ready;
    return server;
  }

  /** The port it listens on (the chosen one when created with port 0). */
  get port(): number {
    return (this.http.address() as AddressInfo).port;
  }

  /** `ws://host:port` of this server (`wss://` with TLS). */
  get url(): string {
    const { address, port, family } = this.http.address() as AddressInfo;
    return `${this.secure ? 'wss' : 'ws'}://${family === 'IPv6' ? `[${address}]` : address}:${port}`;
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
      for (const [agentId, c] of this.connections) if (c.role === 'agent') now.push(member(agentId, c.capabilities, c.slots, c.instance));
      const joining = this.events.pipe(
        filter((e): e is Extract<WsServerEvent, { type: 'connected' }> => e.type === 'connected' && e.role === 'agent'),
        map(({ agentId, capabilities, slots, instance }) => member(agentId, capabilities, slots, instance)),
      );
      return concat(from(now), joining);
    });
  }

  /** Agents whose connection closed without a `leave`: what a coordinator suspects at once. */
  get departures$(): Observable<string> {
    return this.events.pipe(
      filter((e): e is Extract<WsServerEvent, { type: 'disconnected' }> => e.type === 'disconnected' && e.role === 'agent' && !e.clean),
      map(e => e.agentId),
    );
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
      // A local node's key never leaves the process: its results are signed here, and orders for
      // it that come through remote relays are checked here.
      if (!this.keys.has(nodeId)) this.keys.set(nodeId, keyFrom(newSessionKey()) as Buffer);
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
    const { from, to, kind } = message;
    const body = this.signed(from, to, kind, message.body);
    const connection = this.connections.get(to);
    const frame = connection === undefined ? undefined : encodeEnvelope(from, to, kind, body);
    const counter = this.counters.count(kind);
    const member = this.members.get(to);
    if (member !== undefined) {
      const checked = this.checked(from, to, kind, body);
      if (checked === undefined) return this.counters.drop(counter, 'unknown');
      this.pending.push({ member, envelope: { from, to, kind, body: checked, sentAt: this.scheduler.now() } as E, counter });
      if (this.flushing === undefined) this.flushing = this.scheduler.schedule(() => this.flush());
      return;
    }
    if (connection !== undefined && frame !== undefined) {
      if (kind === 'received') return this.hold(connection, frame, counter);
      if (kind === 'assign') told(connection, body as AssignBody);
      return this.write(connection, frame, counter);
    }
    this.counters.drop(counter, this.known.has(to) ? 'down' : 'unknown');
  }

  /**
   * A `received` need not leave at once: the agent only stops retransmitting its result on it, and
   * waits a whole rto for it. Held a quarter of the rto its latest assignment told it (at most
   * {@link HOLD_MAX_MS}), it goes out with the next frame to that agent (its next assignment,
   * relayed, is usually on its way): one write instead of two. Order is kept: held frames go before
   * any later frame to the same peer. Without an rto told yet, or with write coalescing off, it
   * is written at once.
   */
  private hold(connection: Connection, frame: string, counter: KindCounter): void {
    const delay = Math.min(HOLD_MAX_MS, Math.floor(connection.rtoMs / 4));
    if (!this.coalesce || delay < 1) return this.write(connection, frame, counter);
    if (connection.held === undefined) {
      connection.held = [];
      connection.heldTimer = setTimeout(() => this.release(connection), delay);
    }
    connection.held.push({ frame, counter });
  }

  /** Writes what `connection` holds (its next frame is being written, or the hold is up). */
  private release(connection: Connection): void {
    const held = connection.held;
    if (held === undefined) return;
    connection.held = undefined;
    clearTimeout(connection.heldTimer);
    connection.heldTimer = undefined;
    for (const { frame, counter } of held) this.write(connection, frame, counter);
  }

  /**
   * What a local node sends, signed where it must be: the authority's orders for the key of their
   * final recipient, a local agent's own results with its key.
   */
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

  /**
   * What a local node may be handed, or undefined to drop it: an order that reached its recipient
   * must carry the authority's signature for it; a result delivered to the authority is marked
   * `forged` unless the agent it names signed it — or sent it itself: `from` is the connection
   * (or local node) it came from, so a result straight from its agent crossed no relay that could
   * have altered it, and its signature would say nothing the connection did not (a star's spokes
   * answer so: one HMAC a subtask saved).
   */
  private checked(from: string, to: string, kind: string, body: unknown): unknown {
    if (!this.signing || body === null || typeof body !== 'object') return body;
    if (ORDER_KINDS.has(kind) && to !== this.authority && hopsLeft(body as Partial<Routed>) === 0) {
      const key = this.keys.get(to);
      return key !== undefined && verifyOrder(key, kind as 'assign' | 'cancel', to, body as AssignBody | CancelBody) ? body : undefined;
    }
    if (kind === 'result' && to === this.authority) {
      const result = body as ResultBody;
      if (result.agentId === from) return body;
      const key = this.keys.get(result.agentId);
      if (key === undefined) return { ...result, forged: `no session key for ${JSON.stringify(result.agentId)}` };
      return verifyResult(key, result) ? body : { ...result, forged: `not signed by ${JSON.stringify(result.agentId)}` };
    }
    return body;
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
    clearInterval(this.sweeper);
    for (const [socket, timer] of this.raw) {
      clearTimeout(timer);
      socket.destroy();
    }
    this.raw.clear();
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
    await new Promise<void>(resolve => this.http.close(() => resolve()));
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
    if (connection.held !== undefined) this.release(connection);
    if (connection.closing || connection.socket.readyState !== WebSocket.OPEN) return this.counters.drop(counter, 'down');
    if (connection.socket.bufferedAmount > this.maxBufferedBytes) {
      this.counters.drop(counter, 'down');
      return this.cut(connection, `not reading: ${connection.socket.bufferedAmount} bytes waiting (maxBufferedBytes ${this.maxBufferedBytes})`);
    }
    if (utf8Above(frame, connection.maxFrameBytes)) {
      this.counters.drop(counter, 'down');
      const error = `a frame of ${Buffer.byteLength(frame, 'utf8')} bytes is above the ${connection.maxFrameBytes} its peer takes: not sent`;
      this.reply(connection, { v: 1, type: 'error', code: WS_CLOSE.tooBig, error });
      this.rejected(connection, WS_CLOSE.tooBig, error);
      return;
    }
    if (this.coalesce) turnCork.hold(connection.socket);
    connection.socket.send(frame);
    this.counters.deliver(counter);
    // Checked after the write too: one big frame to a peer that does not read must not stay held.
    if (connection.socket.bufferedAmount > this.maxBufferedBytes) this.cut(connection, `not reading: ${connection.socket.bufferedAmount} bytes waiting (maxBufferedBytes ${this.maxBufferedBytes})`);
  }

  /**
   * Cuts a connection whose peer does not read, without a close frame (none could pass the
   * backlog; the peer sees 1006): its buffers are freed at once. It may reconnect.
   */
  private cut(connection: Connection, error: string): void {
    if (connection.closing && connection.socket.readyState === WebSocket.CLOSED) return;
    connection.closing = true;
    this.rejected(connection, 1006, `${error}; cut without a close frame`);
    connection.socket.terminate();
  }

  /** Every second while connections are open: cuts peers whose unread bytes have stopped going down. */
  private sweep(): void {
    const now = performance.now();
    for (const connection of this.sockets) {
      const buffered = connection.socket.bufferedAmount;
      if (buffered === 0 || buffered < connection.lastBuffered) connection.stuckSince = 0;
      else if (connection.stuckSince === 0) connection.stuckSince = now;
      else if (now - connection.stuckSince >= this.drainTimeoutMs) this.cut(connection, `not reading: ${buffered} bytes waiting for ${Math.round(now - connection.stuckSince)} ms (drainTimeoutMs ${this.drainTimeoutMs})`);
      connection.lastBuffered = buffered;
    }
    if (this.sockets.size === 0) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  /** A new TCP (or TLS) connection: refused at once over the caps, dropped if it does not upgrade in time. */
  private onTcp(socket: Socket): void {
    socket.on('error', () => undefined); // resets and the like: 'close' follows
    const open = this.raw.size + this.sockets.size;
    const pending = this.raw.size + this.unjoined;
    if (this.closed || open >= this.maxConnections || pending >= this.maxPendingConnections) {
      socket.destroy();
      this.refusedForCapacity(socket, open >= this.maxConnections ? `${open} connections open (maxConnections ${this.maxConnections})` : `${pending} connections not yet joined (maxPendingConnections ${this.maxPendingConnections})`);
      return;
    }
    const timer = setTimeout(() => {
      this.raw.delete(socket);
      socket.destroy();
    }, this.handshakeTimeoutMs);
    this.raw.set(socket, timer);
    socket.once('close', () => {
      const pendingTimer = this.raw.get(socket);
      if (pendingTimer === undefined) return;
      clearTimeout(pendingTimer);
      this.raw.delete(socket);
    });
  }

  private onUpgrade(request: IncomingMessage, socket: Socket, head: Buffer): void {
    const timer = this.raw.get(socket);
    if (timer === undefined) {
      socket.destroy(); // timed out, refused, or not one of ours
      return;
    }
    clearTimeout(timer);
    this.raw.delete(socket);
    const remote = `${request.socket.remoteAddress ?? '?'}:${request.socket.remotePort ?? '?'}`;
    try {
      this.wss.handleUpgrade(request, socket, head, ws => this.accept(ws, remote));
    } catch {
      socket.destroy();
    }
  }

  /** Reports capacity refusals at most once a second (a flood must not flood the log too). */
  private refusedForCapacity(socket: Socket, why: string): void {
    this.counters.rejected++;
    this.overCapacity++;
    const now = performance.now();
    if (now - this.overCapacityReportedAt < 1000) return;
    this.overCapacityReportedAt = now;
    const count = this.overCapacity;
    this.overCapacity = 0;
    this.emit({ type: 'rejected', agentId: undefined, remote: `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`, code: WS_CLOSE.tryAgainLater, error: `${count} connection(s) refused: ${why}` });
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
    this.unjoined++;
    this.limitFrames(connection, this.preHelloMaxBytes);
    this.sweeper ??= setInterval(() => this.sweep(), 1000).unref();
    connection.helloTimer = setTimeout(() => this.refuse(connection, WS_CLOSE.handshakeTimeout, `no hello within ${this.helloTimeoutMs} ms`), this.helloTimeoutMs);
    socket.on('message', (data, isBinary) => this.onFrame(connection, data, isBinary));
    // Protocol errors found by ws itself (oversized frame, invalid UTF-8): it closes the socket.
    socket.on('error', err => this.onSocketError(connection, err));
    socket.on('close', (code, reason) => this.onClose(connection, code, reason.toString('utf8')));
  }

  private onClose(connection: Connection, code: number, reason: string): void {
    clearTimeout(connection.helloTimer);
    clearTimeout(connection.heldTimer);
    // Dropped as the unsent writes of a closed socket are.
    for (const { counter } of connection.held ?? []) this.counters.drop(counter, 'down');
    connection.held = undefined;
    connection.closing = true;
    if (this.sockets.delete(connection) && connection.agentId === undefined) this.unjoined--;
    const { agentId } = connection;
    if (agentId !== undefined && this.connections.get(agentId) === connection) {
      this.connections.delete(agentId);
      // Its session key goes with it (a new one comes with its next hello): ids that come and go
      // must not pile up keys. A result of it still on its way through a relay is marked forged
      // and sent again by the agent, signed anew, once it is back.
      if (connection.role === 'agent') this.keys.delete(agentId);
      this.emit({ type: 'disconnected', agentId, role: connection.role, code, reason, clean: connection.left });
    }
  }

  /** An agent id is known from now on (what is sent to it while it is away is dropped as `down`, not `unknown`); the latest {@link KNOWN_IDS} only. */
  private remember(agentId: string): void {
    if (this.known.has(agentId)) return;
    this.known.add(agentId);
    if (this.known.size > KNOWN_IDS) this.known.delete(this.known.values().next().value as string);
  }

  private onSocketError(connection: Connection, err: Error & { code?: string }): void {
    const code = WS_ERRORS[err.code ?? ''];
    if (code === undefined || connection.closing) return; // resets and the like: 'close' follows
    connection.closing = true;
    this.counters.rejected++;
    const error = code === WS_CLOSE.tooBig ? `frame above maxPayload (${this.maxPayload} bytes)` : err.message;
    this.emit({ type: 'rejected', agentId: connection.agentId, remote: connection.remote, code, error });
  }

  private openTurn(): void {
    this.turnWall = performance.now();
    this.turnAt = this.scheduler.now();
    this.turnOpen = true;
    // A promise reaction, not queueMicrotask: that one makes an AsyncResource and a bound function per call.
    void RESOLVED.then(this.closeTurn);
  }

  private takeToken(connection: Connection): boolean {
    const now = this.turnWall;
    connection.tokens = Math.min(this.burst, connection.tokens + ((now - connection.heardAt) * this.perSecond) / 1000);
    connection.heardAt = now;
    if (connection.tokens < 1) return false;
    connection.tokens -= 1;
    return true;
  }

  /**
   * Sets the largest frame `ws` reads on this connection: small until the hello is accepted, so no
   * one without the token makes the server read and hold a big frame. `ws` checks the length from
   * the frame header, before reading the payload; it has no public setter, hence its receiver's
   * field (ws 8; a test fails if that changes). The decoder checks the size again either way.
   */
  private limitFrames(connection: Connection, maxBytes: number): void {
    const receiver = (connection.socket as unknown as { _receiver?: { _maxPayload?: number } })._receiver;
    if (receiver !== undefined && typeof receiver._maxPayload === 'number') receiver._maxPayload = maxBytes;
  }

  private onFrame(connection: Connection, data: RawData, isBinary: boolean): void {
    if (connection.closing) return;
    try {
      this.handleFrame(connection, data, isBinary);
    } catch (err) {
      // A bug, or a message that broke a receiver: that connection ends, the server goes on.
      const error = `internal error while handling a frame: ${err instanceof Error ? err.message : String(err)}`;
      this.refuse(connection, WS_CLOSE.internalError, error);
    }
  }

  private handleFrame(connection: Connection, data: RawData, isBinary: boolean): void {
    if (!this.turnOpen) this.openTurn();
    if (!this.takeToken(connection)) {
      return this.refuse(connection, WS_CLOSE.rateLimited, `rate limit exceeded (${this.perSecond} frames/s, burst ${this.burst})`);
    }
    if (isBinary) return this.beatFrame(connection, data);
    this.frameBytes = byteCount(data);
    const joined = connection.agentId !== undefined;
    const decoded = decode(text(data), !joined ? this.decodeLimits.unjoined : connection.role === 'client' ? this.decodeLimits.client : this.decodeLimits.agent);
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
        connection.left = true;
        return this.closeSocket(connection, WS_CLOSE.normal, 'left');
      default:
        return this.refuse(connection, WS_CLOSE.policyViolation, `${message.type} messages are sent by the server only`);
    }
  }

  /**
   * A binary frame: a heartbeat in the fixed layout of `wsBeatFrame.ts`, sent as the connection's
   * agent (a binary frame has no `from`: it cannot be forged). Checked as a JSON heartbeat is: only
   * after the hello, only from an agent; a bad frame closes the connection (1003, 1007).
   */
  private beatFrame(connection: Connection, data: RawData): void {
    const { agentId } = connection;
    if (agentId === undefined) return this.refuse(connection, WS_CLOSE.unsupportedData, 'binary frames are taken only as the heartbeats of a joined agent: say hello in JSON text');
    if (connection.role === 'client') return this.refuse(connection, WS_CLOSE.policyViolation, 'a client may not send heartbeat envelopes');
    const reader = this.beats;
    const body = reader.read(bytes(data));
    if (body === undefined) return this.refuse(connection, reader.closeCode, reader.error);
    this.counters.received++;
    this.route(agentId, reader.to, 'heartbeat', body);
  }

  private hello(connection: Connection, { agentId, capabilities, token, role = 'agent', slots = 1, instance, maxFrameBytes }: HelloMessage): void {
    if (!tokensMatch(this.token, token)) return this.refuse(connection, WS_CLOSE.unauthenticated, 'invalid token');
    if (this.members.has(agentId) || this.reserved.has(agentId)) {
      return this.refuse(connection, WS_CLOSE.policyViolation, `id ${JSON.stringify(agentId)} belongs to a node of the server's process`);
    }
    const held = this.connections.get(agentId);
    if (held !== undefined) {
      // An id belongs to its live connection: a newcomer cannot evict it. The holder is asked
      // whether it is still there; one that does not answer is cut, and the newcomer's retry gets the id.
      this.probe(held);
      return this.refuse(connection, WS_CLOSE.idInUse, `id ${JSON.stringify(agentId)} is held by a live ${held.role} connection from ${held.remote}; retry once it is gone`);
    }
    clearTimeout(connection.helloTimer);
    connection.helloTimer = undefined;
    this.unjoined--;
    connection.agentId = agentId;
    connection.role = role;
    connection.capabilities = capabilities;
    connection.slots = slots;
    connection.instance = instance;
    if (maxFrameBytes !== undefined) connection.maxFrameBytes = maxFrameBytes;
    this.limitFrames(connection, role === 'client' ? this.maxPayload : this.agentMaxPayload);
    this.connections.set(agentId, connection);
    let key: string | undefined;
    if (role === 'agent') {
      this.remember(agentId); // clients come and go by the thousand: they are not remembered
      if (this.signing) {
        // A new key at every hello: whoever held the id before cannot sign for this connection.
        key = newSessionKey();
        this.keys.set(agentId, keyFrom(key) as Buffer);
      }
    }
    this.reply(connection, {
      v: 1,
      type: 'join',
      agentId,
      capabilities,
      session: this.session,
      ...(key === undefined ? {} : { key }),
      ...(this.heartbeatMs === undefined ? {} : { heartbeatMs: this.heartbeatMs }),
      ...(this.ackTimeoutMs === undefined ? {} : { ackTimeoutMs: this.ackTimeoutMs }),
      maxValueBytes: this.maxValueBytes,
      beatFrames: BEAT_FRAME,
    });
    this.emit({ type: 'connected', agentId, role, capabilities, slots, remote: connection.remote, replaced: false, ...(instance === undefined ? {} : { instance }) });
  }

  /** Pings a connection whose id another hello asks for; heard from in no way within `idProbeMs`, it is cut. */
  private probe(connection: Connection): void {
    if (connection.probing || connection.closing) return;
    connection.probing = true;
    const askedAt = performance.now();
    const timer = setTimeout(() => {
      connection.socket.off('pong', answered);
      connection.probing = false;
      if (!connection.closing && connection.heardAt < askedAt) this.cut(connection, `heard nothing from it (not even a pong) for ${this.idProbeMs} ms while another connection asked for its id`);
    }, this.idProbeMs);
    const answered = (): void => {
      clearTimeout(timer);
      connection.probing = false;
    };
    connection.socket.once('pong', answered);
    connection.socket.once('close', () => clearTimeout(timer));
    try {
      connection.socket.ping();
    } catch {
      // closing already: the timer cuts it or the close clears it
    }
  }

  /** Routes an envelope that came from a socket (already checked), stamped with the scheduler time of the turn it arrived in. */
  private route(from: string, to: string, kind: WireKind, body: unknown): void {
    const counter = this.counters.count(kind);
    const loop = loopingRoute(from, to, kind, body);
    if (loop !== undefined) return this.dropRelayed(from, counter, WS_CLOSE.policyViolation, loop);
    const member = this.members.get(to);
    if (member !== undefined) {
      const checked = this.checked(from, to, kind, sizedChild(kind, body, this.maxValueBytes));
      if (checked === undefined) return this.dropRelayed(from, counter, WS_CLOSE.forgedSender, `unsigned or altered ${kind} for ${JSON.stringify(to)} relayed by ${JSON.stringify(from)}: dropped`);
      const taken = sizedValue(kind, checked, this.frameBytes, this.maxValueBytes);
      this.counters.deliver(counter);
      member.next({ from, to, kind, body: taken, sentAt: this.turnAt } as E);
      return;
    }
    const connection = this.connections.get(to);
    // Relayed re-encoded: what the schema stripped does not travel on.
    if (connection === undefined) return this.counters.drop(counter, this.known.has(to) ? 'down' : 'unknown');
    if (connection.role === 'client') {
      // A client hears from the service only: nothing a peer sends is for it (a flood of beats would be).
      return this.dropRelayed(from, counter, WS_CLOSE.policyViolation, `${kind} for the client ${JSON.stringify(to)} from ${JSON.stringify(from)}: dropped (clients hear from the service only)`);
    }
    if (kind === 'assign') told(connection, body as AssignBody);
    return this.write(connection, encode({ v: 1, type: 'envelope', from, to, kind, body }), counter);
  }

  /** An envelope from `from` is not passed on: counted and logged, its sender's connection kept (one bad relay must not cut an agent off). */
  private dropRelayed(from: string, counter: KindCounter, code: WsCloseCode, error: string): void {
    this.counters.drop(counter, 'unknown');
    this.counters.rejected++;
    this.emit({ type: 'rejected', agentId: from, remote: this.connections.get(from)?.remote ?? '?', code, error });
  }

  private reply(connection: Connection, message: WireMessage): void {
    if (connection.socket.readyState !== WebSocket.OPEN) return;
    if (this.coalesce) turnCork.hold(connection.socket);
    connection.socket.send(encode(message));
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
    turnCork.release(connection.socket); // what it was told before (an error frame) goes first, now
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
  /** Largest frame accepted from the server (told to it at hello: it sends nothing bigger). Default 16 MiB. */
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
  /** What is sent within one turn of the event loop leaves in one write (see the server's option). Default true. */
  readonly coalesceWrites?: boolean;
}

export type WsClientEvent =
  /**
   * Joined; `session` names the server instance (a different one than before: it restarted);
   * `heartbeatMs` is the coordinator's heartbeat interval, when it says.
   */
  | { readonly type: 'joined'; readonly agentId: string; readonly connects: number; readonly session: string | undefined; readonly heartbeatMs?: number; readonly ackTimeoutMs?: number }
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

/**
 * Close codes after which reconnecting cannot help: the inbox errors instead. An id in use (4009)
 * or an operator's disconnect (4004) is not among them: no close code makes an honest agent give up
 * while the coordinator is reachable and its token valid.
 */
const FINAL_CODES = new Set<number>([WS_CLOSE.policyViolation, WS_CLOSE.unauthenticated, WS_CLOSE.unsupportedVersion]);
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
  private readonly coalesce: boolean;
  private readonly events = new Subject<WsClientEvent>();
  private readonly counters = new Counters();
  /** This process, the same across reconnects (told at hello: the server tells a restart from a reconnect). */
  readonly instance = randomUUID();
  /** The session key of the current connection (from its join): checks orders, signs results. */
  private key: Buffer | undefined;
  /** Largest result value the coordinator takes (from the join). */
  private maxValueBytes = Infinity;
  /** The server's join said it takes binary heartbeat frames: heartbeats go as those (wsBeatFrame.ts). */
  private beatFrames = false;
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
    maxPayload = 16 * DEFAULT_MAX_BYTES,
    connectTimeoutMs = 10_000,
    reconnect = {},
    random = Math.random,
    log = () => undefined,
    coalesceWrites = true,
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
    if (typeof coalesceWrites !== 'boolean') throw new RangeError(`coalesceWrites must be a boolean, got ${String(coalesceWrites)}`);
    this.coalesce = coalesceWrites;
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
    const frame = this.frameOf(from, to, kind, body);
    const counter = this.counters.count(kind);
    const socket = this.socket;
    if (this.stateValue !== 'open' || socket === undefined || socket.readyState !== WebSocket.OPEN) return this.counters.drop(counter, 'down');
    if (this.coalesce) turnCork.hold(socket);
    socket.send(frame);
    this.counters.deliver(counter);
  }

  /**
   * The frame for an envelope: a heartbeat in the binary layout when the server takes it and it
   * fits; this agent's own results are signed, and one too big to be taken fails instead.
   */
  private frameOf(from: string, to: string, kind: string, body: unknown): string | Buffer {
    if (kind === 'heartbeat' && this.beatFrames && body !== null && typeof body === 'object') {
      const frame = encodeBeatFrame(to, body as HeartbeatBody);
      if (frame !== undefined) return frame;
    }
    if (kind !== 'result' || body === null || typeof body !== 'object' || (body as ResultBody).agentId !== this.agentId) return encodeEnvelope(from, to, kind, body);
    let result = body as ResultBody;
    let frame = this.signedFrame(from, to, result);
    // The value with its envelope: what the coordinator takes, and room for the rest of the frame.
    if (utf8Above(frame, this.maxValueBytes + VALUE_SLACK_BYTES)) {
      const { value: _value, ...rest } = result;
      result = { ...rest, ok: false, error: `result of ${Buffer.byteLength(frame, 'utf8')} bytes is above the coordinator's limit of ${this.maxValueBytes}` };
      frame = this.signedFrame(from, to, result);
    }
    return frame;
  }

  private signedFrame(from: string, to: string, result: ResultBody): string {
    return encodeEnvelope(from, to, 'result', this.key === undefined ? result : { ...result, mac: signResult(this.key, result) });
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
        turnCork.release(socket); // the leave and what went before it, now: the process may be about to exit
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
    socket.on('open', () =>
      socket.send(encode({ v: 1, type: 'hello', agentId: this.agentId, capabilities: this.capabilities, token: this.token, role: this.role, slots: this.slots, instance: this.instance, maxFrameBytes: this.maxPayload })),
    );
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
    const decoded = isBinary ? ({ ok: false, error: 'binary frame from the server', closeCode: WS_CLOSE.unsupportedData } as const) : decode(text(data), { maxBytes: this.maxPayload, maxDepth: CLIENT_MAX_DEPTH });
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
        this.key = message.key === undefined ? undefined : keyFrom(message.key);
        this.maxValueBytes = message.maxValueBytes ?? Infinity;
        this.beatFrames = message.beatFrames === BEAT_FRAME;
        this.emit({
          type: 'joined',
          agentId: this.agentId,
          connects: this.connects,
          session: message.session,
          ...(message.heartbeatMs === undefined ? {} : { heartbeatMs: message.heartbeatMs }),
          ...(message.ackTimeoutMs === undefined ? {} : { ackTimeoutMs: message.ackTimeoutMs }),
        });
        return;
      case 'envelope': {
        const inbox = this.inbox;
        if (inbox === undefined || message.to !== this.agentId) {
          this.counters.rejected++;
          return;
        }
        if (this.key !== undefined && ORDER_KINDS.has(message.kind) && hopsLeft(message.body as Routed) === 0 && !verifyOrder(this.key, message.kind as 'assign' | 'cancel', this.agentId, message.body as AssignBody | CancelBody)) {
          // Meant for this agent but not signed by the coordinator for it: a peer's forgery, or altered on the way.
          this.counters.rejected++;
          this.emit({ type: 'error', code: WS_CLOSE.forgedSender, error: `ignored an unsigned or altered ${message.kind} relayed by ${JSON.stringify(message.from)}` });
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

