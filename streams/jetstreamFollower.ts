import { DeliverPolicy, jetstream, jetstreamManager, type ConsumerMessages, type JetStreamClient, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { checkVersion, concat, ensureStream, JetStreamJournalDamaged, JOURNAL_HEADER, parse, partOf, SNAPSHOT_PART } from './jetstreamJournal.js';
import type { Recovered } from './journal.js';

// A real transport at the edge of the system: wall time is allowed here, as in jetstreamJournal.ts.

export interface JetStreamFollowerOptions {
  readonly connection: NatsConnection;
  /** The journal's stream. Default `RXSWARM_JOURNAL`. */
  readonly stream?: string;
  /** Its subject prefix. Default `rxswarm.journal`. */
  readonly subject?: string;
  /** Bound on every request (a stream lookup, the tail's read). Default 5000 ms. */
  readonly timeoutMs?: number;
}

/** What a follower holds once it has read up to the stream's last sequence: what `JetStreamJournal.open` would have read. */
export interface Followed {
  readonly recovered: Recovered;
  /** The stream's last sequence, read. */
  readonly lastSeq: number;
  /** Messages read to catch up (the tail), not counting those followed before. */
  readonly tail: number;
}

/**
 * The follower cannot vouch that what it holds is what the stream holds (messages deleted inside
 * it, a follow that broke off): read the stream whole instead. Damage it saw is a
 * {@link JetStreamJournalDamaged}.
 */
export class JetStreamFollowerLost extends Error {
  override readonly name = 'JetStreamFollowerLost';
  constructor(
    readonly stream: string,
    why: string,
  ) {
    super(`the follower of the JetStream journal ${stream} cannot vouch for what it holds: ${why}`);
  }
}

/**
 * Follows a journal's stream while its node stands by, so that an election reads only what came
 * after: an ordered consumer from the start of the stream, keeping what a recovery keeps — the
 * last snapshot (decoded) and every record after it — and the last sequence applied. A snapshot
 * replaces the records before it, so it holds no more than the coordinator would recover.
 *
 * `catchUp()` stops following and reads the tail, from its last sequence to the stream's, with the
 * same checks as `JetStreamJournal.open` (format, subjects, snapshot parts, a gap only where a
 * snapshot begins); `JetStreamJournal.open({ follower })` fences from there. What the follower
 * saw wrong (a damaged message, a gap) makes it fail for good: `failure` says why, `catchUp`
 * throws it, and whoever is elected reads the stream whole (which then refuses real damage).
 *
 * ```
 * stream:    records  records  snapshot  records  records │ records   (leader killed)
 * follower:  ·apply·  ·apply·  ·replace· ·apply·  ·apply· │ catchUp(): the tail only
 * ```
 *
 * @example
 * const follower = await JetStreamFollower.start({ connection: nc });
 * // … elected:
 * const journal = await JetStreamJournal.open({ connection: nc, owner: 'node-2', follower });
 * await follower.close();
 */
export class JetStreamFollower {
  private snapshot: unknown;
  /** The first sequence of the snapshot held (its first part), or 1 without one: the stream must still hold it. */
  private base = 1;
  private records: unknown[] = [];
  private parts: Uint8Array[] = [];
  private seq = 0;
  private failed: Error | undefined;
  private messages: ConsumerMessages | undefined;
  private loop: Promise<void> | undefined;
  private stopped = false;
  private closed = false;
  private applied = 0;
  private readonly listeners: Array<(error: Error) => void> = [];

  private constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    readonly stream: string,
    readonly subject: string,
    private readonly timeoutMs: number,
  ) {}

  /** Opens (creating it if needed) the stream and starts following it from its first message. */
  static async start({ connection, stream = 'RXSWARM_JOURNAL', subject = 'rxswarm.journal', timeoutMs = 5000 }: JetStreamFollowerOptions): Promise<JetStreamFollower> {
    if (!/^[A-Za-z0-9_-]+$/.test(stream)) throw new RangeError(`stream must be letters, digits, _ and -, got ${JSON.stringify(stream)}`);
    if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(subject)) throw new RangeError(`subject must be dot-separated tokens without wildcards, got ${JSON.stringify(subject)}`);
    if (!(typeof timeoutMs === 'number' && timeoutMs >= 1)) throw new RangeError(`timeoutMs must be >= 1, got ${String(timeoutMs)}`);
    const jsm = await jetstreamManager(connection, { timeout: timeoutMs });
    await ensureStream(jsm, stream, subject);
    const follower = new JetStreamFollower(jetstream(connection, { timeout: timeoutMs }), jsm, stream, subject, timeoutMs);
    await follower.follow();
    return follower;
  }

  /** The last stream sequence applied. */
  get sequence(): number {
    return this.seq;
  }

  /** Messages taken from the stream so far (followed and caught up). */
  get read(): number {
    return this.applied;
  }

  /** Why it stopped following for good, or undefined. */
  get failure(): Error | undefined {
    return this.failed;
  }

  /** Told once, when it fails. */
  onFailure(listener: (error: Error) => void): void {
    this.listeners.push(listener);
  }

  /**
   * Stops following and reads the stream up to its last sequence now. Called again (a write came
   * in between, the fence was refused), it reads the new tail. Throws its failure, a
   * {@link JetStreamJournalDamaged} or {@link JetStreamFollowerLost}.
   */
  async catchUp(): Promise<Followed> {
    this.pause();
    if (this.failed !== undefined) throw this.failed;
    if (this.closed) throw new Error('the follower is closed');
    try {
      const { state } = await this.jsm.streams.info(this.stream);
      const lastSeq = state.last_seq;
      if (state.messages === 0 && lastSeq !== 0) throw new JetStreamJournalDamaged(this.stream, lastSeq, `it is empty after sequence ${lastSeq}: its records were purged without a snapshot`);
      if (lastSeq < this.seq) throw new JetStreamFollowerLost(this.stream, `the stream ends at sequence ${lastSeq}, before sequence ${this.seq} that was followed (it was recreated)`);
      // A journal's stream is only ever purged up to a snapshot: anything deleted inside it, the follower may have read before it went.
      if (state.num_deleted > 0) throw new JetStreamFollowerLost(this.stream, `${state.num_deleted} messages were deleted inside the stream`);
      const before = this.applied;
      if (this.seq < lastSeq) await this.readTail(lastSeq);
      if (state.first_seq > this.base) {
        throw new JetStreamJournalDamaged(this.stream, state.first_seq, this.snapshot === undefined && this.parts.length === 0 ? `it starts at sequence ${state.first_seq} without a snapshot: records 1 to ${state.first_seq - 1} are gone` : `the snapshot's first parts (from sequence ${this.base}) were purged`);
      }
      if (this.parts.length > 0) throw new JetStreamJournalDamaged(this.stream, this.seq, `the last snapshot message is part ${this.parts.length} of more: a snapshot cut short`);
      return { recovered: { snapshot: this.snapshot, records: this.records.slice(), tornBytes: 0 }, lastSeq, tail: this.applied - before };
    } catch (err) {
      this.fail(err as Error);
      throw err;
    }
  }

  /** Stops following and lets go of what it holds. */
  async close(): Promise<void> {
    this.closed = true;
    this.pause();
    await this.loop;
    this.snapshot = undefined;
    this.records = [];
    this.parts = [];
  }

  private async follow(): Promise<void> {
    const consumer = await this.js.consumers.get(this.stream, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: this.seq + 1 });
    const messages = await consumer.consume({ max_messages: 1024 });
    this.messages = messages;
    this.loop = (async () => {
      try {
        for await (const m of messages) {
          if (this.stopped) break;
          this.apply(m);
        }
        if (!this.stopped) throw new JetStreamFollowerLost(this.stream, 'its consumer ended');
      } catch (err) {
        if (!this.stopped) this.fail(err as Error);
      }
    })();
  }

  /** Stops following. Nothing is applied once stopped (the loop checks before each message), so an election need not wait for its consumer to go. */
  private pause(): void {
    this.stopped = true;
    const messages = this.messages;
    this.messages = undefined;
    void messages?.close().catch(() => undefined);
  }

  /** Reads from the last sequence applied to `lastSeq`, with an ordered consumer of its own, bounded in time. */
  private async readTail(lastSeq: number): Promise<void> {
    const consumer = await this.js.consumers.get(this.stream, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: this.seq + 1 });
    const messages = await consumer.consume({ max_messages: Math.min(1024, lastSeq - this.seq), expires: this.timeoutMs });
    const bound = Math.max(this.timeoutMs, 30_000);
    const timer = setTimeout(() => void messages.close(), bound);
    try {
      for await (const m of messages) {
        this.apply(m);
        if (m.seq >= lastSeq) break;
      }
    } finally {
      clearTimeout(timer);
      await messages.close();
    }
    if (this.seq < lastSeq) throw new JetStreamFollowerLost(this.stream, `the stream could not be read past sequence ${this.seq} within ${bound} ms`);
  }

  /** One message, in stream order: a gap is allowed only before the first part of a snapshot (what precedes it was purged). */
  private apply(m: JsMsg): void {
    const expected = this.seq + 1;
    const isSnapshot = m.subject === `${this.subject}.snapshot`;
    if (m.seq < expected) return; // delivered again (an ordered consumer's reset): applied already
    if (m.seq > expected && !(isSnapshot && partOf(this.stream, m.seq, m.headers?.get(SNAPSHOT_PART))[0] === 1)) {
      throw new JetStreamJournalDamaged(this.stream, expected, `messages ${expected} to ${m.seq - 1} are missing (deleted)`);
    }
    checkVersion(this.stream, m.seq, m.headers?.get(JOURNAL_HEADER));
    if (m.subject === `${this.subject}.records`) {
      if (this.parts.length > 0) throw new JetStreamJournalDamaged(this.stream, m.seq, `a records message inside a snapshot (after part ${this.parts.length})`);
      const batch = parse(this.stream, m.seq, m.data, 'a records message');
      if (!Array.isArray(batch)) throw new JetStreamJournalDamaged(this.stream, m.seq, 'a records message that is not a list of records');
      for (const r of batch) this.records.push(r);
    } else if (isSnapshot) {
      const [part, parts] = partOf(this.stream, m.seq, m.headers?.get(SNAPSHOT_PART));
      // A gap before a first part: what it covers is gone, and so is any snapshot begun before it.
      if (part === 1) this.parts = [];
      if (part !== this.parts.length + 1) throw new JetStreamJournalDamaged(this.stream, m.seq, `snapshot part ${this.parts.length + 1} of ${parts} is labelled ${part}`);
      this.parts.push(m.data);
      if (part === parts) {
        this.snapshot = parse(this.stream, m.seq - parts + 1, concat(this.parts), 'the snapshot');
        this.base = m.seq - parts + 1;
        this.records = [];
        this.parts = [];
      }
    } else if (m.subject !== `${this.subject}.fence`) {
      throw new JetStreamJournalDamaged(this.stream, m.seq, `a message on ${m.subject}, which the journal does not write`);
    } else if (this.parts.length > 0) {
      throw new JetStreamJournalDamaged(this.stream, m.seq, `a fence inside a snapshot (after part ${this.parts.length})`);
    }
    this.seq = m.seq;
    this.applied++;
  }

  private fail(err: Error): void {
    if (this.failed !== undefined) return;
    this.failed = err;
    // It follows no more (not awaited: this may run inside its own loop).
    this.stopped = true;
    void this.messages?.close().catch(() => undefined);
    this.snapshot = undefined;
    this.records = [];
    this.parts = [];
    for (const listener of this.listeners) listener(err);
  }
}
