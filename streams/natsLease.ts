import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { BehaviorSubject, Subject, asyncScheduler, distinctUntilChanged, type Observable, type SchedulerLike, type Subscription } from 'rxjs';
import { requireNumber, requireScheduler } from '../operators/internal/validate.js';
import { requireId } from './messages.js';

/** Who holds a lease, as written in its entry. */
export interface LeaseHolder {
  readonly id: string;
  readonly host: string;
  readonly pid: number;
  /** This lease instance (a restarted process under the same id is another holder). */
  readonly nonce: string;
}

/**
 * What this node knows of the lease. `leader`: it holds it at `revision` (the KV revision of its
 * last successful write — a fencing token that only grows) and may act as leader until
 * `validUntil` (scheduler time) unless renewed. `follower`: it does not; `holder` is the current
 * holder when it knows one.
 */
export type LeaseState =
  | { readonly type: 'leader'; readonly revision: number; readonly validUntil: number }
  | { readonly type: 'follower'; readonly holder: LeaseHolder | undefined; readonly reason: string };

export interface NatsLeaseOptions {
  readonly connection: NatsConnection;
  /** This node's id (written in the entry, shown by `status`). */
  readonly id: string;
  /** KV bucket. Default `rxswarm-leader`. */
  readonly bucket?: string;
  /** Key in the bucket. Default `leader`. */
  readonly key?: string;
  /**
   * The bucket's TTL (its max age): an entry not renewed for this long is removed by the server and
   * the lease can be taken. Lower: a dead leader is replaced sooner; higher: a leader survives
   * longer pauses (GC, a slow disk, a NATS blip) without losing the lease. Default 4000: three
   * renewals may be missed, and a failover takes at most TTL + one renewal interval (~5 s).
   */
  readonly ttlMs?: number;
  /** Renew (or, as a follower, try to take the lease) this often. Default ttlMs / 4. */
  readonly renewEveryMs?: number;
  /**
   * How much earlier than the server's expiry the holder stops counting itself leader: covers clock
   * rate differences and the server's expiry sweep. Validity is counted from the moment a write
   * was *sent*, so the server's expiry (counted from when it stored it) is always later. Default ttlMs / 4.
   */
  readonly safetyMs?: number;
  /** Time and timers of renewals and validity. Default `asyncScheduler`. */
  readonly scheduler?: SchedulerLike;
  /** Bound on one KV operation. Default renewEveryMs. */
  readonly requestTimeoutMs?: number;
}

function isConflict(err: unknown): boolean {
  const code = (err as { code?: unknown; api_error?: { err_code?: unknown } }).api_error?.err_code ?? (err as { code?: unknown }).code;
  return code === 10071 || code === 10164 || /wrong last sequence|key exists/i.test(String((err as Error)?.message));
}

/**
 * A leader lease in a JetStream KV bucket with a TTL. A node takes it with `create` (only when no
 * live entry exists) and keeps it by `update` with compare-and-set on the revision it last wrote,
 * every `renewEveryMs`. A failed compare-and-set means someone else holds it: leadership is lost at
 * once. A renewal that does not come back leaves leadership to run out at `validUntil`, counted
 * from when the last successful write was sent, less `safetyMs` — so a holder that is paused
 * (SIGSTOP, a long GC) knows it lost the lease before the server lets anyone else take it: on
 * waking, its validity has passed and it steps down before anything else it had scheduled runs.
 * Check {@link isLeader} before every leader-only effect; it reads the clock, not a cached flag.
 *
 * ```
 * leader A:  create ─renew─renew─renew─ ✕ (paused) · · · · · · · · wake: follower
 * server:    ───────────────────────────────────── entry expires (TTL after the last write)
 * node B:    follower ─try─try─try─────────────────────────── create ✓ leader
 *                          A's validUntil ──▲          ▲── B can take it only now
 * ```
 *
 * @example
 * const lease = await NatsLease.open({ connection: nc, id: 'node-1' });
 * lease.state$.subscribe(s => console.log(s.type));
 * lease.start();
 * if (lease.isLeader()) dispatch();
 */
export class NatsLease {
  readonly holder: LeaseHolder;
  readonly ttlMs: number;
  readonly renewEveryMs: number;
  readonly safetyMs: number;
  private readonly scheduler: SchedulerLike;
  private readonly requestTimeoutMs: number;
  private readonly state = new BehaviorSubject<LeaseState>({ type: 'follower', holder: undefined, reason: 'not started' });
  private readonly renewals = new Subject<number>();
  private revision = 0;
  private validUntil = -Infinity;
  private timer: Subscription | undefined;
  private expiry: Subscription | undefined;
  private busy = false;
  private running = false;

  private constructor(
    private readonly kv: KV,
    private readonly key: string,
    options: { id: string; ttlMs: number; renewEveryMs: number; safetyMs: number; scheduler: SchedulerLike; requestTimeoutMs: number },
  ) {
    this.holder = { id: options.id, host: hostname(), pid: process.pid, nonce: randomUUID() };
    this.ttlMs = options.ttlMs;
    this.renewEveryMs = options.renewEveryMs;
    this.safetyMs = options.safetyMs;
    this.scheduler = options.scheduler;
    this.requestTimeoutMs = options.requestTimeoutMs;
  }

  /** Opens (or creates) the bucket with its TTL. */
  static async open({ connection, id, bucket = 'rxswarm-leader', key = 'leader', ttlMs = 4000, renewEveryMs, safetyMs, scheduler = asyncScheduler, requestTimeoutMs }: NatsLeaseOptions): Promise<NatsLease> {
    requireId('id', id);
    requireNumber('ttlMs', ttlMs, 100);
    const every = requireNumber('renewEveryMs', renewEveryMs ?? ttlMs / 4, 1);
    const safety = requireNumber('safetyMs', safetyMs ?? ttlMs / 4, 0);
    if (every + safety >= ttlMs) throw new RangeError(`renewEveryMs + safetyMs must be below ttlMs (a holder must renew before its validity ends), got ${every} + ${safety} >= ${ttlMs}`);
    if (!/^[A-Za-z0-9_-]+$/.test(bucket)) throw new RangeError(`bucket must be letters, digits, _ and -, got ${JSON.stringify(bucket)}`);
    const kv = await new Kvm(connection).create(bucket, { ttl: ttlMs, history: 1 });
    return new NatsLease(kv, key, { id, ttlMs, renewEveryMs: every, safetyMs: safety, scheduler: requireScheduler(scheduler), requestTimeoutMs: requestTimeoutMs ?? every });
  }

  /** This node's lease state: the current one on subscription, then every change (not every renewal). */
  get state$(): Observable<LeaseState> {
    return this.state.pipe(distinctUntilChanged((a, b) => a.type === b.type && (a.type === 'leader' || a.holder?.nonce === (b as { holder: LeaseHolder | undefined }).holder?.nonce)));
  }

  /** The revision of every successful write of this node (taking or renewing the lease). */
  get renewals$(): Observable<number> {
    return this.renewals.asObservable();
  }

  /** Scheduler time until which this node may act as leader (-Infinity when it may not). */
  get validity(): number {
    return this.validUntil;
  }

  /** Whether this node may act as leader now: it holds the lease and its validity has not run out. */
  isLeader(): boolean {
    return this.state.value.type === 'leader' && this.scheduler.now() < this.validUntil;
  }

  /** The revision of this node's last successful write while leader (a fencing token), or 0. */
  get term(): number {
    return this.state.value.type === 'leader' ? this.revision : 0;
  }

  /** Starts campaigning (and, once leader, renewing). */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule(0);
  }

  /** Stops renewing and, when it holds the lease, deletes its entry so that another node takes over at once. */
  async release(): Promise<void> {
    this.running = false;
    this.timer?.unsubscribe();
    const held = this.isLeader();
    this.lose('released');
    if (held) await this.kv.delete(this.key, { previousSeq: this.revision }).catch(() => undefined);
  }

  /** Stops renewing without a word (as a crashed process would): the lease runs out on the server. For tests and drills. */
  abandon(): void {
    this.running = false;
    this.timer?.unsubscribe();
    this.lose('abandoned');
  }

  private schedule(delay: number): void {
    this.timer?.unsubscribe();
    if (this.running) this.timer = this.scheduler.schedule(() => void this.tick(), delay);
  }

  private async tick(): Promise<void> {
    if (!this.running || this.busy) return;
    this.busy = true;
    try {
      // A holder that woke up past its validity steps down before it writes anything.
      if (this.state.value.type === 'leader' && this.scheduler.now() >= this.validUntil) this.lose(`validity ran out (no renewal within ${this.ttlMs - this.safetyMs} ms)`);
      if (this.state.value.type === 'leader') await this.renew();
      else await this.campaign();
    } finally {
      this.busy = false;
      this.schedule(this.renewEveryMs);
    }
  }

  private async renew(): Promise<void> {
    const sentAt = this.scheduler.now();
    try {
      const revision = await this.withTimeout(this.kv.update(this.key, JSON.stringify(this.holder), this.revision));
      if (!this.running || this.state.value.type !== 'leader') return;
      this.lead(revision, sentAt);
    } catch (err) {
      if (isConflict(err)) this.lose('the lease was taken (compare-and-set failed)');
      // Otherwise (timeout, NATS down): still leader until validUntil, retried at the next tick.
    }
  }

  private async campaign(): Promise<void> {
    const sentAt = this.scheduler.now();
    try {
      const revision = await this.withTimeout(this.kv.create(this.key, JSON.stringify(this.holder)));
      if (this.running) this.lead(revision, sentAt);
      return;
    } catch (err) {
      if (!isConflict(err)) return;
    }
    // Held: by whom? Our own entry of an earlier term (we stepped down, nobody took it) is ours to
    // take back by compare-and-set; anyone else's is waited out.
    try {
      const entry = await this.withTimeout(this.kv.get(this.key));
      if (entry === null || entry.operation !== 'PUT') return;
      const holder = JSON.parse(entry.string()) as LeaseHolder;
      if (holder.nonce === this.holder.nonce) {
        const again = this.scheduler.now();
        const revision = await this.withTimeout(this.kv.update(this.key, JSON.stringify(this.holder), entry.revision));
        if (this.running) this.lead(revision, again);
        return;
      }
      const current = this.state.value;
      if (current.type === 'follower' && current.holder?.nonce !== holder.nonce) this.state.next({ type: 'follower', holder, reason: `held by ${holder.id}` });
    } catch {
      // taken meanwhile, or not answered: the next tick tries again
    }
  }

  private lead(revision: number, sentAt: number): void {
    this.revision = revision;
    const validUntil = sentAt + this.ttlMs - this.safetyMs;
    // An answer that comes back after the validity it would grant (the process was paused while it
    // was on the way) grants nothing: the server may already have let the entry expire.
    if (this.scheduler.now() >= validUntil) return this.lose('the renewal came back too late');
    this.validUntil = validUntil;
    // Steps down at validUntil unless a renewal moves it; the check in tick() covers a late timer.
    this.expiry?.unsubscribe();
    this.expiry = this.scheduler.schedule(() => {
      if (this.state.value.type === 'leader' && this.scheduler.now() >= this.validUntil) this.lose('validity ran out');
    }, Math.max(0, this.validUntil - this.scheduler.now()));
    this.state.next({ type: 'leader', revision, validUntil: this.validUntil });
    this.renewals.next(revision);
  }

  private lose(reason: string): void {
    this.expiry?.unsubscribe();
    this.expiry = undefined;
    this.validUntil = -Infinity;
    if (this.state.value.type === 'leader') this.state.next({ type: 'follower', holder: undefined, reason });
  }

  private withTimeout<T>(work: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = this.scheduler.schedule(() => reject(new Error(`no answer within ${this.requestTimeoutMs} ms`)), this.requestTimeoutMs);
      work.then(
        value => {
          timer.unsubscribe();
          resolve(value);
        },
        (err: unknown) => {
          timer.unsubscribe();
          reject(err);
        },
      );
    });
  }
}
