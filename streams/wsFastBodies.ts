import type { AssignBody, CancelBody, ProgressBody, ReceivedBody, ResultBody } from './protocol.js';
import type { Subtask } from './task.js';

/**
 * Hand-written checks of the bodies every dispatched subtask brings (`assign`, `result`,
 * `progress`, `received`, `cancel`, and the `submit` of its task), for `decode` to try before the
 * schemas: a third to a tenth of the cost of zod's `safeParse` on these. Each is at least as strict as its schema in
 * `streams/wsCodec.ts` and gives what the schema would: a new object with only the schema's keys,
 * in the schema's order, optional ones only when present; arrays, `payload` and `value` as parsed
 * (the parse made them: nobody else holds them). A body
 * they do not take (wrong, or only unusual: an id longer than 256 UTF-16 units that zod, counting
 * code points, would still take) gives undefined, and the schema decides and words the refusal:
 * errors are zod's, as before.
 *
 * Inputs are what `JSON.parse` made: no `undefined` values, so a key is present when its value is
 * not undefined. A schema change must be made here too (`test/streams/wsCodec.spec.ts` compares
 * both on generated bodies).
 */

const MAX_ID = 256;
const MAX_MAC = 64;
const MAX_TIMEOUT_MS = 2 ** 31 - 1;
const MAX_RTO_MS = 3_600_000;
const MAX_COPY = 1_000_000;

/** An assignment's copy number (`AssignBody.copy`, echoed by `ProgressBody.copy`). */
function isCopy(value: unknown): boolean {
  return value === undefined || (isInt(value) && value >= 0 && value <= MAX_COPY);
}

type Fields = Record<string, unknown>;

/** What zod's `z.object` takes: an object that is not an array (null excluded). */
function isRecord(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** 1–256 UTF-16 units: within the schema's 1–256 code points. */
function isId(value: unknown): value is string {
  return typeof value === 'string' && value.length >= 1 && value.length <= MAX_ID;
}

function isIds(value: unknown): value is string[] {
  if (!Array.isArray(value)) return false;
  for (let i = 0; i < value.length; i++) if (!isId(value[i])) return false;
  return true;
}

/** zod's `int()`: a safe integer. */
function isInt(value: unknown): value is number {
  return Number.isSafeInteger(value);
}

/** zod's `number()`: finite (JSON gives no NaN; a huge literal gives Infinity). */
function isFinite(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

/** `heldMs`: absent, or whole ms within an hour. */
function isHeld(value: unknown): boolean {
  return value === undefined || (isInt(value) && value >= 0 && value <= MAX_RTO_MS);
}

function isMac(value: unknown): boolean {
  return value === undefined || (typeof value === 'string' && value.length <= MAX_MAC);
}

function optionalId(value: unknown): boolean {
  return value === undefined || isId(value);
}

const SUBTASK_KEYS = new Set(['id', 'payload', 'capabilities', 'priority', 'timeoutMs', 'maxAttempts']);
const TASK_KEYS = new Set(['id', 'subtasks', 'complexity', 'coordinationIntensity', 'timeoutMs', 'maxAttempts', 'deadlineMs']);

/** Whether every key of `o` is one of `keys` (a strict object's schema refuses any other). */
function onlyKeys(o: Fields, keys: ReadonlySet<string>): boolean {
  for (const key in o) if (!keys.has(key)) return false;
  return true;
}

function isLevel(value: unknown): boolean {
  return value === 'low' || value === 'medium' || value === 'high';
}

/** A subtask as the schema gives it; `strict` (a submitted task's): no other key. */
function subtaskOf(s: unknown, strict = false): Subtask | undefined {
  if (!isRecord(s) || (strict && !onlyKeys(s, SUBTASK_KEYS))) return undefined;
  const { id, payload, capabilities, priority, timeoutMs, maxAttempts } = s;
  if (!isId(id)) return undefined;
  if (capabilities !== undefined && !isIds(capabilities)) return undefined;
  if (priority !== undefined && !isFinite(priority)) return undefined;
  if (timeoutMs !== undefined && !(isFinite(timeoutMs) && timeoutMs > 0 && timeoutMs <= MAX_TIMEOUT_MS)) return undefined;
  if (maxAttempts !== undefined && !(isInt(maxAttempts) && maxAttempts >= 1)) return undefined;
  const out: { -readonly [K in keyof Subtask]: Subtask[K] } = { id };
  if (payload !== undefined) out.payload = payload;
  if (capabilities !== undefined) out.capabilities = capabilities;
  if (priority !== undefined) out.priority = priority;
  if (timeoutMs !== undefined) out.timeoutMs = timeoutMs;
  if (maxAttempts !== undefined) out.maxAttempts = maxAttempts;
  return out;
}

function assign(b: Fields): AssignBody | undefined {
  const { via, taskId, attempt, replyPath, mac, rto, copy } = b;
  if (!isIds(via) || !optionalId(taskId) || !isInt(attempt) || !isIds(replyPath) || !isMac(mac) || !isCopy(copy)) return undefined;
  if (rto !== undefined && !(isInt(rto) && rto >= 1 && rto <= MAX_RTO_MS)) return undefined;
  const subtask = subtaskOf(b['subtask']);
  if (subtask === undefined) return undefined;
  const out: Fields = { via };
  if (taskId !== undefined) out.taskId = taskId;
  out.subtask = subtask;
  out.attempt = attempt;
  out.replyPath = replyPath;
  if (mac !== undefined) out.mac = mac;
  if (rto !== undefined) out.rto = rto;
  if (copy !== undefined) out.copy = copy;
  return out as unknown as AssignBody;
}

function result(b: Fields): ResultBody | undefined {
  const { via, taskId, subtaskId, attempt, agentId, ok, value, error, mac, heldMs } = b;
  if (!isIds(via) || !optionalId(taskId) || !isId(subtaskId) || !isInt(attempt) || !isId(agentId) || typeof ok !== 'boolean') return undefined;
  if ((error !== undefined && typeof error !== 'string') || !isMac(mac) || !isHeld(heldMs)) return undefined;
  const out: Fields = { via };
  if (taskId !== undefined) out.taskId = taskId;
  out.subtaskId = subtaskId;
  out.attempt = attempt;
  out.agentId = agentId;
  out.ok = ok;
  if (value !== undefined) out.value = value;
  if (error !== undefined) out.error = error;
  if (mac !== undefined) out.mac = mac;
  if (heldMs !== undefined) out.heldMs = heldMs;
  return out as unknown as ResultBody;
}

function progress(b: Fields): ProgressBody | undefined {
  const { taskId, subtaskId, attempt, progress: fraction, copy, done, heldMs } = b;
  if (!optionalId(taskId) || !isId(subtaskId) || !isInt(attempt) || !isFinite(fraction) || !isCopy(copy) || (done !== undefined && done !== true) || !isHeld(heldMs)) return undefined;
  const out: Fields = {};
  if (taskId !== undefined) out.taskId = taskId;
  out.subtaskId = subtaskId;
  out.attempt = attempt;
  out.progress = fraction;
  if (copy !== undefined) out.copy = copy;
  if (done !== undefined) out.done = true;
  if (heldMs !== undefined) out.heldMs = heldMs;
  return out as unknown as ProgressBody;
}

function received(b: Fields): ReceivedBody | undefined {
  const { taskId, subtaskId, attempt } = b;
  if (!optionalId(taskId) || !isId(subtaskId) || !isInt(attempt)) return undefined;
  return taskId === undefined ? { subtaskId, attempt } : { taskId: taskId as string, subtaskId, attempt };
}

function cancel(b: Fields): CancelBody | undefined {
  const { via, taskId, subtaskId, attempt, mac } = b;
  if (!isIds(via) || !optionalId(taskId) || !isId(subtaskId) || !isInt(attempt) || !isMac(mac)) return undefined;
  const out: Fields = { via };
  if (taskId !== undefined) out.taskId = taskId;
  out.subtaskId = subtaskId;
  out.attempt = attempt;
  if (mac !== undefined) out.mac = mac;
  return out as unknown as CancelBody;
}

/** A task as submitted (strict objects: a typo is refused, by the schema's words). */
function submit(b: Fields): unknown {
  const { task, watch } = b;
  if (!isRecord(task) || !onlyKeys(task, TASK_KEYS) || (watch !== undefined && typeof watch !== 'boolean')) return undefined;
  const { id, subtasks, complexity, coordinationIntensity, timeoutMs, maxAttempts, deadlineMs } = task;
  if (!isId(id) || !Array.isArray(subtasks)) return undefined;
  if ((complexity !== undefined && !isLevel(complexity)) || (coordinationIntensity !== undefined && !isLevel(coordinationIntensity))) return undefined;
  if (timeoutMs !== undefined && !(isFinite(timeoutMs) && timeoutMs > 0 && timeoutMs <= MAX_TIMEOUT_MS)) return undefined;
  if (maxAttempts !== undefined && !(isInt(maxAttempts) && maxAttempts >= 1)) return undefined;
  if (deadlineMs !== undefined && !(isFinite(deadlineMs) && deadlineMs > 0 && deadlineMs <= MAX_TIMEOUT_MS)) return undefined;
  const checked: Subtask[] = new Array<Subtask>(subtasks.length);
  for (let i = 0; i < subtasks.length; i++) {
    const subtask = subtaskOf(subtasks[i], true);
    if (subtask === undefined) return undefined;
    checked[i] = subtask;
  }
  const out: Fields = { id, subtasks: checked };
  if (complexity !== undefined) out['complexity'] = complexity;
  if (coordinationIntensity !== undefined) out['coordinationIntensity'] = coordinationIntensity;
  if (timeoutMs !== undefined) out['timeoutMs'] = timeoutMs;
  if (maxAttempts !== undefined) out['maxAttempts'] = maxAttempts;
  if (deadlineMs !== undefined) out['deadlineMs'] = deadlineMs;
  return watch === undefined ? { task: out } : { task: out, watch };
}

const FAST = new Map<string, (body: Fields) => unknown>([
  ['submit', submit],
  ['assign', assign],
  ['result', result],
  ['progress', progress],
  ['received', received],
  ['cancel', cancel],
]);

/**
 * The body of a `kind` envelope as its schema would give it, when the hand-written check takes it;
 * undefined: ask the schema (another kind, or a body this check does not take).
 */
export function fastBody(kind: string, body: unknown): unknown {
  const check = FAST.get(kind);
  return check === undefined || !isRecord(body) ? undefined : check(body);
}
