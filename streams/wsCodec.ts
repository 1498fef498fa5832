import { z } from 'zod';
import type { HeartbeatBody, MessageKind } from './protocol.js';
import { fastBody } from './wsFastBodies.js';

/**
 * The WebSocket wire format, version 1: one JSON object per text frame,
 * `{ v: 1, type: 'hello' | 'join' | 'envelope' | 'leave' | 'error', … }`; and one binary frame, the
 * heartbeat envelope in a fixed layout (`wsBeatFrame.ts`), which an agent sends once the server's
 * join says it takes it.
 *
 * ```
 * agent                                  coordinator server
 *   hello { agentId, capabilities, token, instance?, maxFrameBytes? } ──▶   (token checked in constant time)
 *   ◀── join { agentId, capabilities, session, key?, heartbeatMs?, maxValueBytes?, beatFrames? }   (accepted: envelopes may flow)
 *   envelope { from, to, kind, body } ◀──▶ envelope { … }
 *   binary heartbeat frame ──▶                   (only when the join said beatFrames: 1)
 *   leave { reason? } ──▶                        (then close 1000)
 *   ◀── error { code, error }                    (then close `code`, except 4003)
 * ```
 *
 * - `hello` (agent → server): the first frame of a connection. `agentId` is the node id the
 *   connection joins under; `token` is the shared secret.
 * - `join` (server → agent): the hello was accepted, the agent is joined under `agentId`. `key` is
 *   this connection's session key (base64, 32 bytes): the coordinator signs the assignments and
 *   cancellations it sends the agent with it, and the agent signs its results (`mac`, HMAC-SHA256,
 *   see `streams/signing.ts`), so a relay can delay or drop them but never forge or alter them.
 *   `heartbeatMs` is the coordinator's heartbeat interval (the agent beats at it);
 *   `maxValueBytes` the largest payload or result value the coordinator takes; `beatFrames` the
 *   version of the binary heartbeat frame it takes (absent: none, heartbeats go as JSON envelopes).
 * - `envelope` (both ways): one routed {@link Envelope} without `sentAt` — clocks of two processes
 *   do not compare, so the receiving network stamps `sentAt` with its own clock at arrival.
 *   `kind` is one of the engine's kinds (`streams/protocol.ts`) or a topology repair kind, and the
 *   body is validated against that kind's schema.
 * - `leave` (agent → server): a clean goodbye before closing.
 * - `error` (server → agent): why a frame was refused; `code` is the close code that follows.
 *
 * Limits, in order: bytes (1009, before anything is parsed; 64 KiB before the hello), nesting
 * depth (1007, counted before `JSON.parse`: payloads and results included), shape (the schemas
 * below), authority (the token, who may send which kind, signatures).
 *
 * Close codes (`WS_CLOSE`), used by {@link decode} and the transports in `wsNetwork.ts`:
 *
 * | code | name               | when                                                                 | agent reconnects |
 * |------|--------------------|----------------------------------------------------------------------|------------------|
 * | 1000 | normal             | clean close (after `leave`, or the agent's network left)              | no (it left)     |
 * | 1001 | going away         | the server shuts down                                                | yes              |
 * | 1003 | unsupported data   | binary frame before the hello or of an unknown type; unknown `type`; unknown envelope `kind` | yes |
 * | 1007 | invalid payload    | malformed JSON; nested deeper than `maxDepth`; not an object; a field missing or of the wrong type; a malformed binary heartbeat frame | yes |
 * | 1008 | policy violation   | a second `hello`; `hello`/`join`/`error` sent the wrong way; id held by a local node | no |
 * | 1009 | message too big    | frame above `maxPayload` (closed by `ws` itself) or text above `maxBytes` | yes          |
 * | 4001 | unauthenticated    | bad token; an envelope before `hello`                                | no               |
 * | 4002 | unsupported version| `v` is not 1                                                         | no               |
 * | 4003 | forged sender      | an envelope whose `from` is not the connection's agent id: the envelope is dropped, an `error` frame says so, the connection stays open | — |
 * | 1011 | internal error     | handling the connection's frame raised an error (a bug): that connection ends, the server goes on | yes |
 * | 1013 | try again later    | the server holds its maximum of connections                          | yes              |
 * | 4004 | replaced           | closed by an operator (`disconnect`) to make room for another connection | yes          |
 * | 4008 | handshake timeout  | no WebSocket upgrade or no `hello` in time                           | yes              |
 * | 4009 | id in use          | a `hello` under an id a live connection holds: ids belong to live connections (the holder is probed and cut if it does not answer) | yes, with backoff |
 * | 4029 | rate limited       | the connection's token bucket ran dry                                | yes              |
 */
export const WS_CLOSE = {
  normal: 1000,
  goingAway: 1001,
  unsupportedData: 1003,
  invalidPayload: 1007,
  policyViolation: 1008,
  tooBig: 1009,
  internalError: 1011,
  tryAgainLater: 1013,
  unauthenticated: 4001,
  unsupportedVersion: 4002,
  forgedSender: 4003,
  replaced: 4004,
  handshakeTimeout: 4008,
  idInUse: 4009,
  rateLimited: 4029,
} as const;

export type WsCloseCode = (typeof WS_CLOSE)[keyof typeof WS_CLOSE];

export const WIRE_VERSION = 1;

/** Topology repair kinds (see `RepairMessage` in src/topology.ts); their body is `{ failed }`. */
export const REPAIR_KINDS = ['election', 'promotion', 'splice', 'redistribute'] as const;
export type RepairKind = (typeof REPAIR_KINDS)[number];

export type WireKind = MessageKind | RepairKind;

export interface HelloMessage {
  readonly v: 1;
  readonly type: 'hello';
  readonly agentId: string;
  readonly capabilities: readonly string[];
  readonly token: string;
  /** `agent` (default) runs subtasks; `client` only submits tasks and is never given work. */
  readonly role?: 'agent' | 'client';
  /** Subtasks the agent runs at once (default 1); the coordinator grants them as the agent proves it finishes work. */
  readonly slots?: number;
  /**
   * Names this process, the same across its reconnects: a hello with another instance under a
   * known id is a restarted process, whose in-flight work is gone (re-issued at once).
   */
  readonly instance?: string;
  /** The largest frame this agent takes: nothing bigger is sent to it. */
  readonly maxFrameBytes?: number;
}

export interface JoinMessage {
  readonly v: 1;
  readonly type: 'join';
  readonly agentId: string;
  readonly capabilities: readonly string[];
  /** Names the server instance: a client that rejoins a different one knows its old work is void. */
  readonly session?: string;
  /** This connection's session key (base64): signs assignments and cancellations to it and results from it. */
  readonly key?: string;
  /** The coordinator's heartbeat interval: the agent beats at it. */
  readonly heartbeatMs?: number;
  /** How long the coordinator waits for an assignment's acknowledgement: an agent that delays its acknowledgements stays well under it. */
  readonly ackTimeoutMs?: number;
  /** Largest payload or result value (JSON bytes) the coordinator takes. */
  readonly maxValueBytes?: number;
  /** The binary heartbeat frame (`wsBeatFrame.ts`) version the server takes; absent: send heartbeats as JSON. */
  readonly beatFrames?: number;
}

export interface EnvelopeMessage {
  readonly v: 1;
  readonly type: 'envelope';
  readonly from: string;
  readonly to: string;
  readonly kind: WireKind;
  readonly body: unknown;
}

export interface LeaveMessage {
  readonly v: 1;
  readonly type: 'leave';
  readonly reason?: string;
}

export interface ErrorMessage {
  readonly v: 1;
  readonly type: 'error';
  readonly code: number;
  readonly error: string;
}

export type WireMessage = HelloMessage | JoinMessage | EnvelopeMessage | LeaveMessage | ErrorMessage;
export type WireType = WireMessage['type'];

export type DecodeResult =
  | { readonly ok: true; readonly message: WireMessage }
  | { readonly ok: false; readonly error: string; readonly closeCode: WsCloseCode };

export interface DecodeOptions {
  /** Longest accepted frame, in UTF-8 bytes. Default {@link DEFAULT_MAX_BYTES} (1 MiB). */
  readonly maxBytes?: number;
  /**
   * Deepest accepted nesting of arrays and objects, the frame's own levels included. Default
   * {@link DEFAULT_MAX_DEPTH}: deep enough for any sane payload, shallow enough that every
   * recursive walk of a decoded value (JSON.stringify when relaying, zod) stays far from the stack's end.
   */
  readonly maxDepth?: number;
}

export const DEFAULT_MAX_BYTES = 1024 * 1024;
/** Nesting of a frame, payloads and results included. A decoded value re-wrapped for a client (an outcome) adds a few levels: clients take {@link CLIENT_MAX_DEPTH}. */
export const DEFAULT_MAX_DEPTH = 64;
/** What a client takes: the server's depth plus the levels an outcome wraps around a result value. */
export const CLIENT_MAX_DEPTH = 2 * DEFAULT_MAX_DEPTH;

// ---- schemas (zod: measured ~3–5× faster than valibot on heartbeat-sized frames) -------------

const MAX_ID = 256;
/** Longest name of a heartbeat's usage (`what`). */
const MAX_WHAT = 64;
const id = z.string().min(1).max(MAX_ID);
const ids = z.array(id);
const int = z.number().int();
const finite = z.number().finite();
const routed = { via: ids };

const level = z.enum(['low', 'medium', 'high']);
const mac = z.string().max(64).optional();
/** Whole ms an agent held an assignment before acknowledging it with its result or `done` (`ProgressBody.heldMs`). */
const heldMs = z.number().int().min(0).max(3_600_000).optional();
const timeoutMs = z.number().positive().max(2 ** 31 - 1);
const subtask = z.object({
  id,
  payload: z.unknown().optional(),
  capabilities: ids.optional(),
  priority: finite.optional(),
  timeoutMs: timeoutMs.optional(),
  maxAttempts: int.min(1).optional(),
});

const bodies: Record<WireKind, z.ZodType> = {
  heartbeat: z.object({
    load: finite,
    status: z.enum(['ok', 'leaving']).optional(),
    incarnation: int,
    usage: z.object({ fraction: finite.min(0), what: z.string().max(MAX_WHAT).optional() }).optional(),
  }),
  assign: z.object({ ...routed, taskId: id.optional(), subtask, attempt: int, replyPath: ids, mac, rto: int.min(1).max(3_600_000).optional(), copy: int.min(0).max(1_000_000).optional() }),
  result: z.object({
    ...routed,
    taskId: id.optional(),
    subtaskId: id,
    attempt: int,
    agentId: id,
    ok: z.boolean(),
    value: z.unknown().optional(),
    error: z.string().optional(),
    mac,
    heldMs,
  }),
  progress: z.object({ taskId: id.optional(), subtaskId: id, attempt: int, progress: finite, copy: int.min(0).max(1_000_000).optional(), done: z.literal(true).optional(), heldMs }),
  received: z.object({ taskId: id.optional(), subtaskId: id, attempt: int }),
  cancel: z.object({ ...routed, taskId: id.optional(), subtaskId: id, attempt: int, mac }),
  delegate: z.object({ taskId: id.optional(), subtaskId: id, attempt: int, subtask }),
  delegated: z.object({ taskId: id.optional(), subtaskId: id, attempt: int, childId: id, ok: z.boolean(), value: z.unknown().optional(), error: z.string().optional() }),
  'vote-request': z.object({ proposalId: id, suspect: id }),
  vote: z.object({ proposalId: id, accept: z.boolean() }),
  token: z.object(routed),
  peers: z.object({ targets: ids }),
  submit: z.object({
    // A task is written by hand: an unknown key is a typo, refused rather than dropped.
    task: z.strictObject({
      id,
      subtasks: z.array(z.strictObject(subtask.shape)),
      complexity: level.optional(),
      coordinationIntensity: level.optional(),
      timeoutMs: timeoutMs.optional(),
      maxAttempts: int.min(1).optional(),
      deadlineMs: timeoutMs.optional(),
    }),
    watch: z.boolean().optional(),
  }),
  attach: z.strictObject({ taskId: id, watch: z.boolean().optional() }),
  'task-state': z.object({
    taskId: id,
    state: z.enum(['queued', 'running', 'done', 'failed', 'cancelled']),
    queuePosition: int.min(1).optional(),
    subtasks: int.min(0),
    completed: int.min(0),
    failed: int.min(0),
  }),
  event: z.object({ taskId: id, event: z.looseObject({ type: z.string(), at: finite }) }),
  outcome: z.object({ taskId: id, result: z.unknown().optional(), error: z.string().optional() }),
  watch: z.strictObject({ live: z.boolean(), subtasks: z.boolean().optional(), focus: z.strictObject({ taskId: id, subtaskId: id }).optional() }),
  state: z.looseObject({ seq: int.min(0), full: z.boolean(), at: finite }),
  'cancel-task': z.strictObject({ taskId: id }),
  cancelled: z.object({ taskId: id, ok: z.boolean(), error: z.string().optional() }),
  election: z.object({ failed: id }),
  promotion: z.object({ failed: id }),
  splice: z.object({ failed: id }),
  redistribute: z.object({ failed: id }),
};

const KINDS = new Set<string>(Object.keys(bodies));

const envelope = z.object({ v: z.literal(1), type: z.literal('envelope'), from: id, to: id, kind: id, body: z.unknown() });

const schemas: Record<Exclude<WireType, 'envelope'>, z.ZodType> = {
  hello: z.object({
    v: z.literal(1),
    type: z.literal('hello'),
    agentId: id,
    capabilities: ids,
    token: z.string().max(4096),
    role: z.enum(['agent', 'client']).optional(),
    slots: int.min(1).max(1024).optional(),
    instance: z.string().min(1).max(64).optional(),
    maxFrameBytes: int.min(64).optional(),
  }),
  join: z.object({
    v: z.literal(1),
    type: z.literal('join'),
    agentId: id,
    capabilities: ids,
    session: z.string().max(64).optional(),
    key: z.string().max(64).optional(),
    heartbeatMs: z.number().positive().max(3_600_000).optional(),
    ackTimeoutMs: z.number().positive().max(3_600_000).optional(),
    maxValueBytes: int.min(1).optional(),
    beatFrames: int.min(1).max(255).optional(),
  }),
  leave: z.object({ v: z.literal(1), type: z.literal('leave'), reason: z.string().max(1024).optional() }),
  error: z.object({ v: z.literal(1), type: z.literal('error'), code: int, error: z.string() }),
};

const TYPES = new Set<string>(['hello', 'join', 'envelope', 'leave', 'error']);

// ---- fast path: a heartbeat as `encode` writes it ----------------------------------------------
// Heartbeats are nearly all the traffic. One anchored regex recognises the exact text `encode`
// produces for one (no whitespace, these keys in this order, ids without escapes or control
// characters, JSON numbers) and yields what the general path would: the same values (`Number` of
// a JSON number literal is the double `JSON.parse` gives), the same checks (ids of 1–256 UTF-16
// units: no `u` flag, so a surrogate counts as one; `load` finite, `incarnation` a safe integer,
// as zod's `int()`; a usage fraction finite and >= 0, its `what` at most 64 units), the same key
// order. Anything else — other spelling, out-of-range numbers, any
// error — falls through to JSON.parse and the schemas, so refusals and their messages are
// unchanged. Measured ~8× faster than JSON.parse + zod on a heartbeat frame.

const JSON_NUMBER = '(-?(?:0|[1-9][0-9]*)(?:\\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)';
const PLAIN_ID = `([^"\\\\\\u0000-\\u001f]{1,${MAX_ID}})`;
const PLAIN_WHAT = `([^"\\\\\\u0000-\\u001f]{0,${MAX_WHAT}})`;
const HEARTBEAT_TEXT = new RegExp(
  `^\\{"v":1,"type":"envelope","from":"${PLAIN_ID}","to":"${PLAIN_ID}","kind":"heartbeat","body":\\{"load":${JSON_NUMBER}(?:,"status":"(ok|leaving)")?,"incarnation":${JSON_NUMBER}(?:,"usage":\\{"fraction":${JSON_NUMBER}(?:,"what":"${PLAIN_WHAT}")?\\})?\\}\\}$`,
);

/** The decoded heartbeat envelope when `text` is one in `encode`'s spelling; undefined: take the general path. */
function decodeHeartbeat(text: string): DecodeResult | undefined {
  const m = HEARTBEAT_TEXT.exec(text);
  if (m === null) return undefined;
  const load = Number(m[3]);
  const incarnation = Number(m[5]);
  if (!Number.isFinite(load) || !Number.isSafeInteger(incarnation)) return undefined;
  const status = m[4] as 'ok' | 'leaving' | undefined;
  const body: HeartbeatBody = status === undefined ? { load, incarnation } : { load, status, incarnation };
  if (m[6] !== undefined) {
    const fraction = Number(m[6]);
    if (!(Number.isFinite(fraction) && fraction >= 0)) return undefined;
    const what = m[7];
    return { ok: true, message: { v: 1, type: 'envelope', from: m[1] as string, to: m[2] as string, kind: 'heartbeat', body: { ...body, usage: what === undefined ? { fraction } : { fraction, what } } } };
  }
  return { ok: true, message: { v: 1, type: 'envelope', from: m[1] as string, to: m[2] as string, kind: 'heartbeat', body } };
}

/** An id as the envelope's schema takes it (1–256 UTF-16 units: within its 1–256 code points). */
function isPlainId(value: unknown): value is string {
  return typeof value === 'string' && value.length >= 1 && value.length <= MAX_ID;
}

function fail(closeCode: WsCloseCode, error: string): DecodeResult {
  return { ok: false, error, closeCode };
}

function describe(issues: z.ZodError['issues'], prefix: string): string {
  const first = issues[0];
  if (first === undefined) return 'schema mismatch';
  const path = [prefix, ...first.path.map(String)].filter(p => p.length > 0).join('.');
  return `${path.length > 0 ? path : 'message'}: ${first.message}`;
}

function show(value: unknown): string {
  const text = typeof value === 'string' ? JSON.stringify(value) : String(value);
  return text.length > 64 ? `${text.slice(0, 61)}...` : text;
}

/**
 * Whether `text` takes more than `maxBytes` in UTF-8. A UTF-16 unit is at most 3 UTF-8 bytes:
 * bytes are counted only when the length alone cannot tell.
 */
export function utf8Above(text: string, maxBytes: number): boolean {
  return text.length > maxBytes || (text.length * 3 > maxBytes && Buffer.byteLength(text, 'utf8') > maxBytes);
}

/**
 * How deep arrays and objects nest in JSON `text`, counted without parsing, stopping as soon as it
 * passes `limit` (brackets inside strings do not count). Linear in the text, no allocation: it runs
 * before `JSON.parse`, so a 10 KB frame nested 5,000 deep is refused before anything recurses on it.
 */
export function nestingDepth(text: string, limit = Infinity): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > deepest && (deepest = depth) > limit) return deepest;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
  return deepest;
}

/**
 * Parses and validates one text frame. Never throws: a bad frame gives `{ ok: false, error,
 * closeCode }` with the close code of the table in this module's header. Checks, in order: size
 * (1009), nesting depth (1007), JSON (1007), an object (1007), version (4002), type (1003), the
 * type's fields (1007), and for an envelope its kind (1003) and body (1007).
 *
 * @example
 * const r = decode('{"v":1,"type":"leave"}'); // { ok: true, message: { v: 1, type: 'leave' } }
 * decode('{"v":2,"type":"leave"}');            // { ok: false, closeCode: 4002, error: 'unsupported version 2 …' }
 */
export function decode(text: string, { maxBytes = DEFAULT_MAX_BYTES, maxDepth = DEFAULT_MAX_DEPTH }: DecodeOptions = {}): DecodeResult {
  try {
    if (typeof text !== 'string') return fail(WS_CLOSE.unsupportedData, 'frame must be text');
    if (utf8Above(text, maxBytes)) {
      return fail(WS_CLOSE.tooBig, `frame of ${Buffer.byteLength(text, 'utf8')} bytes exceeds the limit of ${maxBytes}`);
    }
    const heartbeat = decodeHeartbeat(text);
    if (heartbeat !== undefined) return heartbeat;
    // Two characters a level: a shorter text cannot nest deeper than the limit.
    if (text.length > 2 * maxDepth && nestingDepth(text, maxDepth) > maxDepth) {
      return fail(WS_CLOSE.invalidPayload, `nested deeper than ${maxDepth} levels`);
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      return fail(WS_CLOSE.invalidPayload, `malformed JSON: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      return fail(WS_CLOSE.invalidPayload, `message must be a JSON object, got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}`);
    }
    const { v, type } = value as { v?: unknown; type?: unknown };
    if (v !== WIRE_VERSION) return fail(WS_CLOSE.unsupportedVersion, `unsupported version ${show(v)} (this side speaks v${WIRE_VERSION})`);
    if (typeof type !== 'string' || !TYPES.has(type)) {
      return fail(WS_CLOSE.unsupportedData, `unknown message type ${show(type)} (expected hello, join, envelope, leave or error)`);
    }
    if (type !== 'envelope') {
      const parsed = schemas[type as Exclude<WireType, 'envelope'>].safeParse(value);
      if (!parsed.success) return fail(WS_CLOSE.invalidPayload, `invalid ${type}: ${describe(parsed.error.issues, '')}`);
      return { ok: true, message: parsed.data as WireMessage };
    }
    const { from, to, kind, body: given } = value as { from?: unknown; to?: unknown; kind?: unknown; body?: unknown };
    if (isPlainId(from) && isPlainId(to) && typeof kind === 'string') {
      const fast = fastBody(kind, given);
      // Exactly these fields, in one shape (monomorphic for the receivers), as below.
      if (fast !== undefined) return { ok: true, message: { v: 1, type: 'envelope', from, to, kind: kind as WireKind, body: fast } };
    }
    const head = envelope.safeParse(value);
    if (!head.success) return fail(WS_CLOSE.invalidPayload, `invalid envelope: ${describe(head.error.issues, '')}`);
    const { data } = head;
    if (!KINDS.has(data.kind)) return fail(WS_CLOSE.unsupportedData, `unknown envelope kind ${show(data.kind)}`);
    const body = bodies[data.kind as WireKind].safeParse(given);
    if (!body.success) return fail(WS_CLOSE.invalidPayload, `invalid ${data.kind} envelope: ${describe(body.error.issues, 'body')}`);
    // Exactly these fields, in one shape (monomorphic for the receivers).
    return { ok: true, message: { v: 1, type: 'envelope', from: data.from, to: data.to, kind: data.kind as WireKind, body: body.data } };
  } catch (err) {
    // Nothing above should throw (a getter-free JSON value, zod's safeParse); belt and braces.
    return fail(WS_CLOSE.invalidPayload, `undecodable frame: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** Serialises a message (JSON). `decode(encode(m))` gives back `m` for every valid message. */
export function encode(message: WireMessage): string {
  return JSON.stringify(message);
}

/**
 * Why `body` would be refused as the body of a `kind` envelope (the decoder's words), or undefined
 * when it would pass: lets a sender check a big message before it travels.
 *
 * @example checkBody('submit', { task: { id: 't', subtasks: [{ id: 'a', priority: 'high' }] } }) // 'body.task.subtasks.0.priority: …'
 */
export function checkBody(kind: WireKind, body: unknown): string | undefined {
  const parsed = bodies[kind].safeParse(body);
  return parsed.success ? undefined : describe(parsed.error.issues, 'body');
}

/**
 * The body of a `kind` envelope as the schema gives it (`decode`'s general path: unknown keys
 * dropped), or undefined when the schema refuses it: what the hand-written fast paths
 * (`streams/wsFastBodies.ts`) are tested against.
 */
export function schemaBody(kind: WireKind, body: unknown): unknown {
  const parsed = bodies[kind].safeParse(body);
  return parsed.success ? parsed.data : undefined;
}

/** Whether `kind` travels over the wire (an engine kind or a repair kind). */
export function isWireKind(kind: string): kind is WireKind {
  return KINDS.has(kind);
}
