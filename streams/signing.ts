import { createHmac, createSecretKey, randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';
import type { AssignBody, CancelBody, ResultBody } from './protocol.js';

/**
 * Signatures that survive relays. Work crosses agents on its way (a hub, a group leader, a ring's
 * members): a relay must be able to delay or drop a message — the engine notices and routes
 * around — but never forge or alter one. Each agent connection gets a session key at hello, over
 * its own connection, known only to that agent and the coordinator's server. The server signs the
 * coordinator's assignments and cancellations with the key of the agent they are meant for; the
 * agent signs its results with its own key. What is signed is the meaning of the message, not its
 * route: `via` (and `hop`, its cursor in this process) changes along the way and is left out, the
 * final recipient is put in.
 *
 * MAC: HMAC-SHA256 over the JSON of the signed fields, base64url (43 characters). Values (payloads,
 * results) are signed as their JSON text, which a JSON round trip through a relay does not change.
 */

/** A fresh 32-byte session key, base64. */
export function newSessionKey(): string {
  return randomBytes(32).toString('base64');
}

/** A key as given in a join (base64) in the form `sign` takes; undefined for a malformed one. */
export function keyFrom(base64: string): Buffer | undefined {
  const key = Buffer.from(base64, 'base64');
  return key.length === 32 ? key : undefined;
}

/**
 * Each key imported once: an HMAC over a `KeyObject` skips importing the raw key at every message
 * (measured ~40 % of a signature's cost). Weak: a key dropped with its connection takes its entry along.
 */
const imported = new WeakMap<Buffer, KeyObject>();

function mac(key: Buffer, fields: readonly unknown[]): string {
  let object = imported.get(key);
  if (object === undefined) imported.set(key, (object = createSecretKey(key)));
  return createHmac('sha256', object).update(JSON.stringify(fields)).digest('base64url');
}

function same(expected: string, given: unknown): boolean {
  if (typeof given !== 'string' || given.length !== expected.length) return false;
  return timingSafeEqual(Buffer.from(expected), Buffer.from(given));
}

/** The fields an assignment's signature covers: everything but its route so far. */
function assignFields(recipient: string, { taskId, subtask, attempt, replyPath }: AssignBody): unknown[] {
  const { id, payload = null, capabilities = null, priority = null, timeoutMs = null, maxAttempts = null } = subtask;
  return ['assign', recipient, taskId ?? null, id, attempt, payload, capabilities, priority, timeoutMs, maxAttempts, replyPath];
}

function cancelFields(recipient: string, { taskId, subtaskId, attempt }: CancelBody): unknown[] {
  return ['cancel', recipient, taskId ?? null, subtaskId, attempt];
}

function resultFields({ taskId, subtaskId, attempt, agentId, ok, value = null, error }: ResultBody): unknown[] {
  return ['result', taskId ?? null, subtaskId, attempt, agentId, ok, ok ? value : null, error ?? null];
}

/** The signature of an `assign` or `cancel` meant for `recipient` (its final hop). */
export function signOrder(key: Buffer, kind: 'assign' | 'cancel', recipient: string, body: AssignBody | CancelBody): string {
  return mac(key, kind === 'assign' ? assignFields(recipient, body as AssignBody) : cancelFields(recipient, body as CancelBody));
}

/** Whether an `assign` or `cancel` that reached `recipient` carries the coordinator's signature for it. */
export function verifyOrder(key: Buffer, kind: 'assign' | 'cancel', recipient: string, body: AssignBody | CancelBody): boolean {
  return same(signOrder(key, kind, recipient, body), body.mac);
}

/** The signature of a result by the agent that ran it. */
export function signResult(key: Buffer, body: ResultBody): string {
  return mac(key, resultFields(body));
}

/** Whether a result carries the signature of the agent it names. */
export function verifyResult(key: Buffer, body: ResultBody): boolean {
  return same(signResult(key, body), body.mac);
}
