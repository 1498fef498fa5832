import { DeliverPolicy, jetstream, jetstreamManager, StorageType, type JetStreamClient, type JetStreamManager, type StreamInfo } from '@nats-io/jetstream';
import { randomUUID } from 'node:crypto';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import type { Journal, Recovered } from './journal.js';

// A real transport at the edge of the system: wall time is allowed here (streams/nats*.ts and
// this file talk to a server), as in streams/ws*.ts.

export interface JetStreamJournalOptions {
  readonly connection: NatsConnection;
  /** The stream. Default `RXSWARM_JOURNAL`. */
  readonly stream?: string;
  /** Subject prefix of its messages (`PREFIX.records`, `PREFIX.snapshot`, `PREFIX.fence`). Default `rxswarm.journal`. */
  readonly subject?: string;
  /**
   * Records per message (group commit). Records appended in one turn of the event loop go out
   * together, up to this many (and the server's max_payload). 1: one message per record. Higher:
   * fewer messages and acks, a lost message (never: it is fenced) would take more with it.
   * Default 256 (see benchmarks/journal — per-message publishing is several times slower).
   */
  readonly recordsPerMessage?: number;
  /** Bound on every request (an ack, a stream lookup, a read). Default 5000 ms. */
  readonly timeoutMs?: number;
  /**
   * How long a write in doubt (no answer, the server restarting) is retried before the journal
   * fails. Higher: rides out a longer NATS outage; lower: a coordinator that cannot write halts sooner. Default 30,000.
   */
  readonly retryMs?: number;
  /** Who opens it (written in its fence message). */
  readonly owner?: string;
  /** Largest message it publishes (snapshots larger than this go in parts). Default and most: the server's max_payload less 1 KiB for headers. */
  readonly maxMessageBytes?: number;
  /**
   * What a standby followed of this stream: open reads only what came after it (the tail) instead
   * of the whole stream, then fences as ever. It stops following; what it fails with (damage it
   * saw, a follow it cannot vouch for) open throws — read the stream whole then, without it.
   */
  readonly follower?: JournalFollower;
}

/** What `open` needs of a follower of the stream (a `JetStreamFollower`): where it follows, and the tail read up to the stream's end. */
export interface JournalFollower {
  readonly stream: string;
  readonly subject: string;
  catchUp(): Promise<{ readonly recovered: Recovered; readonly lastSeq: number }>;
}

/** The stream does not hold a journal rxswarm can trust: recovery stops rather than lose or invent what it holds. */
export class JetStreamJournalDamaged extends Error {
  override readonly name = 'JetStreamJournalDamaged';
  constructor(
    readonly stream: string,
    readonly seq: number,
    why: string,
  ) {
    super(`the JetStream journal is damaged: stream ${stream}${seq > 0 ? ` at sequence ${seq}` : ''}: ${why}. Nothing was changed; delete the stream (nats stream rm ${stream}) to start without what it holds`);
  }
}

const VERSION = '1';
const HEADER = 'Rxswarm-Journal';
const PART = 'Rxswarm-Snapshot-Part';
/** The header naming a message's journal format, and the one naming a snapshot message's part (`1/3`): for the follower (jetstreamFollower.ts). */
export { HEADER as JOURNAL_HEADER, PART as SNAPSHOT_PART };
/** Who wrote a message (its `owner`): to tell, reading the stream, which node wrote what. */
export const WRITER = 'Rxswarm-Writer';

interface Outgoing {
  readonly kind: 'records' | 'snapshot';
  readonly data: Uint8Array;
  readonly part: string | undefined;
  readonly purgeBelow: number | undefined;
  /** The stream's last sequence it expects (its own is one more). */
  readonly expected: number;
}

type Item = { readonly kind: 'records'; readonly data: Uint8Array; readonly count: number } | { readonly kind: 'snapshot'; readonly parts: readonly Uint8Array[] };

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

/**
 * A {@link Journal} on a JetStream stream (file storage): the journal of a coordinator cluster,
 * which any node can read and the leader alone can append to.
 *
 * Every message is published with the stream's expected last sequence (the one this journal
 * wrote last), so a writer that is not the last one — a deposed or paused leader — has its write
 * refused and the journal fails: the coordinator on it halts. Opening it writes a fence message at
 * once, so that from then on any older writer is refused, and what it read is all there is.
 *
 * Records appended in one turn of the event loop go in one message (`recordsPerMessage`);
 * messages are pipelined (several in flight, each expecting the sequence of the one before) and
 * `durable()` resolves once every ack is in. A snapshot is published in the same stream after
 * the records it covers (in parts of at most the server's max_payload), then the stream is purged
 * up to it. Recovery reads the last snapshot and every record after it; a gap, a message that
 * does not parse, a snapshot without its parts, or a stream whose limits could drop records is
 * refused with {@link JetStreamJournalDamaged}.
 *
 * ```
 * stream:  records records snapshot(1/2) snapshot(2/2) fence records records …
 *          └──── purged once the snapshot is acked ──┘
 * ```
 *
 * @example
 * const journal = await JetStreamJournal.open({ connection: nc, owner: 'node-1' });
 * const coordinator = createCoordinator({ journal, … });
 */
export class JetStreamJournal implements Journal {
  private lastSeq: number;
  private buffered: unknown[] = [];
  private queue: Item[] = [];
  private inFlight = 0;
  /** Messages sent and not acked, in order. */
  private unacked: Outgoing[] = [];
  /** Something sent is in doubt (no answer, the server restarting): what is unacked is sent again, in order. */
  private resyncing: { until: number; error: Error } | undefined;
  private resyncBusy = false;
  private readonly nonce = randomUUID();
  private flushQueued = false;
  private waiting: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  private failed: Error | undefined;
  private readonly listeners: Array<(error: Error) => void> = [];
  private appended: number;
  private closed = false;
  private recovered: Recovered | undefined;
  private readonly maxBytes: number;

  private constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    readonly stream: string,
    private readonly subject: string,
    private readonly owner: string,
    private readonly recordsPerMessage: number,
    private readonly timeoutMs: number,
    private readonly retryMs: number,
    maxPayload: number,
    recovered: Recovered,
    lastSeq: number,
  ) {
    this.recovered = recovered;
    this.appended = recovered.records.length;
    this.lastSeq = lastSeq;
    this.maxBytes = maxPayload;
  }

  /**
   * Opens (creating it if needed) the journal's stream, reads what it holds and fences every
   * earlier writer out. Throws {@link JetStreamJournalDamaged}, or why the server cannot be used.
   */
  static async open({ connection, stream = 'RXSWARM_JOURNAL', subject = 'rxswarm.journal', recordsPerMessage = 256, timeoutMs = 5000, owner = 'rxswarm', maxMessageBytes, retryMs = 30_000, follower }: JetStreamJournalOptions): Promise<JetStreamJournal> {
    if (!/^[A-Za-z0-9_-]+$/.test(stream)) throw new RangeError(`stream must be letters, digits, _ and -, got ${JSON.stringify(stream)}`);
    if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(subject)) throw new RangeError(`subject must be dot-separated tokens without wildcards, got ${JSON.stringify(subject)}`);
    if (!(Number.isSafeInteger(recordsPerMessage) && recordsPerMessage >= 1)) throw new RangeError(`recordsPerMessage must be an integer >= 1, got ${String(recordsPerMessage)}`);
    if (!(typeof retryMs === 'number' && retryMs >= 0)) throw new RangeError(`retryMs must be >= 0, got ${String(retryMs)}`);
    if (!(typeof timeoutMs === 'number' && timeoutMs >= 1)) throw new RangeError(`timeoutMs must be >= 1, got ${String(timeoutMs)}`);
    if (follower !== undefined && (follower.stream !== stream || follower.subject !== subject)) throw new RangeError(`follower follows ${follower.stream} (${follower.subject}), not ${stream} (${subject})`);
    const jsm = await jetstreamManager(connection, { timeout: timeoutMs });
    const js = jetstream(connection, { timeout: timeoutMs });
    await ensureStream(jsm, stream, subject);
    if (maxMessageBytes !== undefined && !(Number.isSafeInteger(maxMessageBytes) && maxMessageBytes >= 1024)) throw new RangeError(`maxMessageBytes must be an integer >= 1024, got ${String(maxMessageBytes)}`);
    const serverMax = (connection.info?.max_payload ?? 1024 * 1024) - 1024;
    const maxPayload = Math.min(serverMax, maxMessageBytes ?? serverMax);
    // Read (or catch up), then fence: if someone wrote in between, the fence is refused and we read (the new tail) again.
    for (let attempt = 0; ; attempt++) {
      const { recovered, lastSeq } = follower === undefined ? await read(js, jsm, stream, subject, timeoutMs) : await follower.catchUp();
      const h = headers();
      h.set(HEADER, VERSION);
      h.set(WRITER, owner);
      try {
        const ack = await js.publish(`${subject}.fence`, enc.encode(JSON.stringify({ owner, at: new Date().toISOString() })), { expect: { lastSequence: lastSeq }, headers: h, timeout: timeoutMs });
        return new JetStreamJournal(js, jsm, stream, subject, owner, recordsPerMessage, timeoutMs, retryMs, maxPayload, recovered, ack.seq);
      } catch (err) {
        if (!isWrongLastSequence(err) || attempt >= 4) throw err;
      }
    }
  }

  get failure(): Error | undefined {
    return this.failed;
  }

  get sinceSnapshot(): number {
    return this.appended;
  }

  get pending(): boolean {
    return this.buffered.length > 0 || this.queue.length > 0 || this.unacked.length > 0;
  }

  /** The stream sequence of the last message this journal wrote and had acknowledged (or read at open). */
  get sequence(): number {
    return this.lastSeq;
  }

  recover(): Recovered {
    if (this.recovered === undefined) throw new Error('JetStreamJournal.recover() is answered once, from what open() read: open the journal again to read it again');
    const recovered = this.recovered;
    this.recovered = undefined;
    return recovered;
  }

  append(record: unknown): void {
    if (this.failed !== undefined) throw this.failed;
    if (this.closed) throw new Error('the journal is closed');
    this.buffered.push(record);
    this.appended++;
    this.queueFlush();
  }

  durable(): Promise<void> {
    if (this.failed !== undefined) return Promise.reject(this.failed);
    if (!this.pending) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  onFailure(listener: (error: Error) => void): void {
    this.listeners.push(listener);
  }

  snapshot(state: unknown): void {
    if (this.failed !== undefined) throw this.failed;
    // The snapshot covers every record appended before it: those buffered go out first.
    this.cut();
    const bytes = enc.encode(JSON.stringify(state));
    const parts: Uint8Array[] = [];
    for (let at = 0; at < bytes.length || parts.length === 0; at += this.maxBytes) parts.push(bytes.subarray(at, at + this.maxBytes));
    this.queue.push({ kind: 'snapshot', parts });
    this.appended = 0;
    this.queueFlush();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.durable();
    } catch {
      // it failed: what it could not write is said by its failure
    }
    this.closed = true;
  }

  private queueFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    setImmediate(() => {
      this.flushQueued = false;
      this.cut();
      this.pump();
    });
  }

  /** What is buffered becomes messages of at most recordsPerMessage records and maxBytes bytes. */
  private cut(): void {
    let batch: string[] = [];
    let bytes = 2;
    const emit = (): void => {
      if (batch.length === 0) return;
      this.queue.push({ kind: 'records', data: enc.encode(`[${batch.join(',')}]`), count: batch.length });
      batch = [];
      bytes = 2;
    };
    for (const record of this.buffered) {
      const text = JSON.stringify(record);
      if (batch.length >= this.recordsPerMessage || (batch.length > 0 && bytes + text.length + 1 > this.maxBytes)) emit();
      batch.push(text);
      bytes += text.length + 1;
    }
    emit();
    this.buffered = [];
  }

  /** Publishes every queued message, pipelined: each expects the sequence of the one before it. */
  private pump(): void {
    while (this.failed === undefined && !this.resyncing && this.queue.length > 0) {
      const item = this.queue.shift() as Item;
      if (item.kind === 'records') {
        if (item.data.length > this.maxBytes) return this.fail(new Error(`a journal record of ${item.data.length} bytes is larger than the server's max_payload allows`));
        this.send({ kind: 'records', data: item.data, part: undefined, purgeBelow: undefined, expected: this.lastSeqPlanned });
      } else {
        const first = this.lastSeqPlanned + 1;
        item.parts.forEach((part, i) => this.send({ kind: 'snapshot', data: part, part: `${i + 1}/${item.parts.length}`, purgeBelow: i === item.parts.length - 1 ? first : undefined, expected: this.lastSeqPlanned }));
      }
    }
    this.settle();
  }

  /** The sequence the last message sent will have once acked (every message not acked yet counted). */
  private get lastSeqPlanned(): number {
    return this.lastSeq + this.unacked.length;
  }

  private publishOnce(m: Outgoing): Promise<{ seq: number }> {
    const h = headers();
    h.set(HEADER, VERSION);
    h.set(WRITER, this.owner);
    if (m.part !== undefined) h.set(PART, m.part);
    // The message id makes a retry of a message that was stored after all a duplicate (acked
    // with its sequence), not a second copy; the expected sequence fences other writers.
    return this.js.publish(`${this.subject}.${m.kind}`, m.data, { msgID: `${this.nonce}-${m.expected}`, expect: { lastSequence: m.expected }, headers: h, timeout: this.timeoutMs });
  }

  private send(m: Outgoing): void {
    this.unacked.push(m);
    this.inFlight++;
    this.publishOnce(m).then(
      ack => {
        this.inFlight--;
        if (this.failed === undefined && !this.resyncing) this.acked(m, ack.seq);
        else this.resumeResync();
      },
      (err: unknown) => {
        this.inFlight--;
        if (this.failed !== undefined) return;
        // Refused for its expected sequence while nothing before it is in doubt: another writer. Anything else (a timeout, the server restarting) leaves the pipeline in doubt: resync.
        if (isWrongLastSequence(err) && !this.resyncing && this.unacked[0] === m) return this.fail(err as Error);
        this.resyncing ??= { until: performance.now() + this.retryMs, error: err as Error };
        this.resumeResync();
      },
    );
  }

  private acked(m: Outgoing, seq: number): void {
    const at = this.unacked.indexOf(m);
    if (at === -1) return; // acked already (a retry's duplicate)
    if (seq !== m.expected + 1) return this.fail(new Error(`the stream gave sequence ${seq} where ${m.expected + 1} was expected`));
    // Stored at the sequence it expected: everything before it is stored too (its ack may come later, or never).
    for (const before of this.unacked.splice(0, at + 1)) if (before !== m && before.purgeBelow !== undefined) this.jsm.streams.purge(this.stream, { seq: before.purgeBelow }).catch(() => undefined);
    this.lastSeq = seq;
    // Everything before the snapshot's first part is in it. A purge that fails leaves only extra bytes: the next snapshot purges them.
    if (m.purgeBelow !== undefined) this.jsm.streams.purge(this.stream, { seq: m.purgeBelow }).catch(() => undefined);
    this.settle();
  }

  /**
   * Once nothing is in flight, publishes what is not acked again, one at a time, in order (a
   * duplicate is acked with the sequence it got the first time); retried until `retryMs` after
   * the first doubt, then the journal fails. A refused expected sequence now means another writer.
   */
  private resumeResync(): void {
    if (this.resyncing === undefined || this.inFlight > 0 || this.resyncBusy || this.failed !== undefined) return;
    this.resyncBusy = true;
    void (async () => {
      try {
        while (this.failed === undefined && this.unacked.length > 0) {
          const m = this.unacked[0] as Outgoing;
          try {
            const ack = await this.publishOnce(m);
            this.acked(m, ack.seq);
          } catch (err) {
            if (isWrongLastSequence(err)) return this.fail(err as Error);
            if (performance.now() >= (this.resyncing as { until: number }).until) return this.fail(err as Error);
            await new Promise(resolve => setTimeout(resolve, 250));
          }
        }
      } finally {
        this.resyncBusy = false;
      }
      this.resyncing = undefined;
      this.pump();
    })();
  }

  /** Nothing is buffered or on the way: whoever waits for durability may go on. */
  private settle(): void {
    if (this.failed !== undefined || this.pending) return;
    const waiting = this.waiting;
    this.waiting = [];
    for (const w of waiting) w.resolve();
  }

  private fail(err: Error): void {
    if (this.failed !== undefined) return;
    this.failed = isWrongLastSequence(err)
      ? new Error(`the JetStream journal ${this.stream} refused a write: another coordinator has written to it since (this one is no longer the leader): it takes no more work`)
      : new Error(`the JetStream journal ${this.stream} cannot be written (${(err as Error).message}): the coordinator takes no more work; what it accepted before is kept`);
    this.buffered = [];
    this.queue = [];
    this.unacked = [];
    for (const w of this.waiting) w.reject(this.failed);
    this.waiting = [];
    for (const listener of this.listeners) listener(this.failed);
  }
}

export function isWrongLastSequence(err: unknown): boolean {
  const code = (err as { api_error?: { err_code?: unknown }; code?: unknown })?.api_error?.err_code ?? (err as { code?: unknown })?.code;
  return code === 10071 || /wrong last sequence/i.test(String((err as Error)?.message));
}

/** Creates the stream, or checks that an existing one is fit to hold a journal. */
export async function ensureStream(jsm: JetStreamManager, stream: string, subject: string): Promise<void> {
  let info: StreamInfo;
  try {
    info = await jsm.streams.info(stream);
  } catch (err) {
    if (!/stream not found/i.test(String((err as Error).message)) && (err as { api_error?: { err_code?: number } }).api_error?.err_code !== 10059) throw err;
    info = await jsm.streams.add({ name: stream, subjects: [`${subject}.>`], storage: StorageType.File, max_msgs: -1, max_bytes: -1, max_age: 0, max_msgs_per_subject: -1, num_replicas: 1 });
  }
  const c = info.config;
  const odd: string[] = [];
  if (c.storage !== StorageType.File) odd.push(`its storage is ${c.storage}, not file (a server restart would lose it)`);
  if (!(c.subjects ?? []).includes(`${subject}.>`)) odd.push(`its subjects are ${JSON.stringify(c.subjects)}, not ["${subject}.>"]`);
  if (c.max_msgs > 0 || c.max_bytes > 0 || c.max_age > 0 || (c.max_msgs_per_subject ?? -1) > 0) odd.push('it has limits (max_msgs, max_bytes, max_age or max_msgs_per_subject) that would drop records');
  if (odd.length > 0) throw new JetStreamJournalDamaged(stream, 0, odd.join('; '));
}

/** Reads the last snapshot and every record after it; refuses gaps and messages it does not understand. */
async function read(js: JetStreamClient, jsm: JetStreamManager, stream: string, subject: string, timeoutMs: number): Promise<{ recovered: Recovered; lastSeq: number }> {
  const { state } = await jsm.streams.info(stream);
  const lastSeq = state.last_seq;
  if (state.messages === 0) {
    // Empty: never written, or purged up to a snapshot that must then be there — it is not.
    if (lastSeq !== 0) throw new JetStreamJournalDamaged(stream, lastSeq, `it is empty after sequence ${lastSeq}: its records were purged without a snapshot`);
    return { recovered: { snapshot: undefined, records: [], tornBytes: 0 }, lastSeq: 0 };
  }
  let snapshot: unknown;
  let from = state.first_seq;
  const last = await jsm.streams.getMessage(stream, { last_by_subj: `${subject}.snapshot` }).catch((err: unknown) => {
    if (/no message found|not found/i.test(String((err as Error).message))) return null;
    throw err;
  });
  if (last !== null) {
    const [part, parts] = partOf(stream, last.seq, last.header.get(PART));
    if (part !== parts) throw new JetStreamJournalDamaged(stream, last.seq, `the last snapshot message is part ${part} of ${parts}: a snapshot cut short`);
    const start = last.seq - parts + 1;
    if (start < state.first_seq) throw new JetStreamJournalDamaged(stream, start, `the snapshot's first parts (from sequence ${start}) were purged`);
    const chunks: Uint8Array[] = [];
    for (let seq = start; seq <= last.seq; seq++) {
      const m = seq === last.seq ? last : await jsm.streams.getMessage(stream, { seq });
      if (m === null || m.subject !== `${subject}.snapshot`) throw new JetStreamJournalDamaged(stream, seq, `snapshot part ${seq - start + 1} of ${parts} is missing`);
      const [p] = partOf(stream, seq, m.header.get(PART));
      if (p !== seq - start + 1) throw new JetStreamJournalDamaged(stream, seq, `snapshot part ${seq - start + 1} of ${parts} is labelled ${p}`);
      checkVersion(stream, seq, m.header.get(HEADER));
      chunks.push(m.data);
    }
    snapshot = parse(stream, start, concat(chunks), 'the snapshot');
    from = last.seq + 1;
  } else if (state.first_seq !== 1) {
    throw new JetStreamJournalDamaged(stream, state.first_seq, `it starts at sequence ${state.first_seq} without a snapshot: records 1 to ${state.first_seq - 1} are gone`);
  }
  const records: unknown[] = [];
  if (from <= lastSeq) {
    const consumer = await js.consumers.get(stream, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from });
    const messages = await consumer.consume({ max_messages: 1024, expires: timeoutMs });
    let expected = from;
    const timer = setTimeout(() => void messages.close(), Math.max(timeoutMs, 30_000));
    try {
      for await (const m of messages) {
        if (m.seq !== expected) throw new JetStreamJournalDamaged(stream, expected, `messages ${expected} to ${m.seq - 1} are missing (deleted)`);
        checkVersion(stream, m.seq, m.headers?.get(HEADER));
        if (m.subject === `${subject}.records`) {
          const batch = parse(stream, m.seq, m.data, 'a records message');
          if (!Array.isArray(batch)) throw new JetStreamJournalDamaged(stream, m.seq, 'a records message that is not a list of records');
          for (const r of batch) records.push(r);
        } else if (m.subject !== `${subject}.fence`) {
          throw new JetStreamJournalDamaged(stream, m.seq, `a message on ${m.subject}, which the journal does not write`);
        }
        expected++;
        if (m.seq >= lastSeq) break;
      }
    } finally {
      clearTimeout(timer);
      await messages.close();
    }
    if (expected <= lastSeq) throw new JetStreamJournalDamaged(stream, expected, `the stream could not be read past sequence ${expected - 1} within ${Math.max(timeoutMs, 30_000)} ms`);
    await consumer.delete().catch(() => undefined);
  }
  return { recovered: { snapshot, records, tornBytes: 0 }, lastSeq };
}

export function partOf(stream: string, seq: number, header: string | undefined): [number, number] {
  const m = /^(\d+)\/(\d+)$/.exec(header ?? '');
  const part = Number(m?.[1]);
  const parts = Number(m?.[2]);
  if (m === null || !(part >= 1 && part <= parts)) throw new JetStreamJournalDamaged(stream, seq, `a snapshot message without a valid ${PART} header (${JSON.stringify(header ?? '')})`);
  return [part, parts];
}

export function checkVersion(stream: string, seq: number, version: string | undefined): void {
  if (version !== VERSION) throw new JetStreamJournalDamaged(stream, seq, `a message of journal format ${JSON.stringify(version ?? 'none')}, not ${VERSION} (written by something else, or a newer rxswarm)`);
}

export function parse(stream: string, seq: number, data: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(dec.decode(data)) as unknown;
  } catch (err) {
    throw new JetStreamJournalDamaged(stream, seq, `${what} that does not parse (${(err as Error).message})`);
  }
}

export function concat(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0] as Uint8Array;
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
