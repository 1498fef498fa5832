/**
 * One message on a network, as delivered. The network stamps `sentAt` (its scheduler's time when
 * `send` was called); everything else is the sender's.
 *
 * `kind` names the message, namespaced by who speaks it: `'work.assign'`, `'work.result'`,
 * `'liveness.heartbeat'`, `'consensus.vote'`, `'ring.token'`… The network only counts kinds (its
 * statistics are per kind, so topologies compare by messages of each kind); the body types belong
 * to whoever defines the kinds, through {@link EnvelopeOf}.
 *
 * In memory a body travels by reference: treat it as immutable. A remote transport sends it as JSON.
 */
export interface Envelope<M = unknown, K extends string = string> {
  readonly from: string;
  readonly to: string;
  readonly kind: K;
  readonly body: M;
  /** Scheduler time at which the message was sent. */
  readonly sentAt: number;
}

/** What a sender hands to `Network.send`: an envelope without `sentAt` (distributes over unions). */
export type Outgoing<E extends Envelope = Envelope> = E extends Envelope ? Omit<E, 'sentAt'> : never;

/**
 * The union of envelopes for a map from kind to body type, discriminated on `kind`.
 *
 * @example
 * interface WorkMessages {
 *   'work.assign': { subtaskId: string; attempt: number };
 *   'work.result': { subtaskId: string; attempt: number; value: unknown };
 * }
 * type WorkEnvelope = EnvelopeOf<WorkMessages>;
 * declare const e: WorkEnvelope;
 * if (e.kind === 'work.result') e.body.value; // narrowed
 */
export type EnvelopeOf<Bodies extends object> = {
  [K in keyof Bodies & string]: Envelope<Bodies[K], K>;
}[keyof Bodies & string];

/**
 * Checks what a sender hands to a network: an object whose `from`, `to` and `kind` are non-empty
 * strings (`TypeError` for a missing or non-string field, `RangeError` for an empty one, each naming
 * the field). The body is not inspected. Every transport calls it in `send`, so a bad envelope fails
 * where it was made, not at the receiver.
 */
export function assertOutgoing(message: unknown): asserts message is Outgoing {
  if (message === null || typeof message !== 'object') {
    throw new TypeError(`envelope must be an object with from, to and kind, got ${String(message)}`);
  }
  const { from, to, kind } = message as Partial<Record<'from' | 'to' | 'kind', unknown>>;
  requireId('envelope.from', from);
  requireId('envelope.to', to);
  requireId('envelope.kind', kind);
}

/** A node id or a kind: a non-empty string (`TypeError` / `RangeError` naming `name`). */
export function requireId(name: string, value: unknown): string {
  if (typeof value !== 'string') {
    throw new TypeError(`${name} must be a non-empty string, got ${value === null ? 'null' : typeof value}`);
  }
  if (value.length === 0) throw new RangeError(`${name} must be a non-empty string, got ""`);
  return value;
}
