import { Observable, asyncScheduler, type SchedulerAction, type SchedulerLike, type Subscriber, type Subscription } from 'rxjs';
import { requireInRange, requireNumber, requireScheduler } from '../operators/internal/validate.js';
import { assertOutgoing, requireId, type Envelope, type Outgoing } from './messages.js';
import { createRandom, type Random } from './random.js';
import { VirtualScheduler } from './virtualScheduler.js';

export type { Envelope, EnvelopeOf, Outgoing } from './messages.js';

/**
 * Why a message was not delivered (the first that applies, checked in this order):
 * - `unknown` — the destination has never joined this network (a routing bug, usually);
 * - `down` — the destination left (before the send, or while the message was in flight), or the
 *   link is down (`setLink(…, { down: true })`, at send or at arrival);
 * - `partition` — sender and destination were in different partition groups at send or at arrival;
 * - `loss` — random loss at send (`lossRate`).
 */
export type DropReason = 'unknown' | 'down' | 'partition' | 'loss';

/** Counts for one message kind. */
export interface KindStats {
  readonly sent: number;
  readonly delivered: number;
  readonly dropped: number;
}

/**
 * A snapshot of a network's counters since it was created. `sent` counts every accepted `send`
 * (an envelope that fails validation is not sent); `sent = delivered + dropped + inFlight`.
 */
export interface NetworkStats {
  readonly sent: number;
  readonly delivered: number;
  readonly dropped: number;
  readonly inFlight: number;
  readonly droppedBy: Readonly<Record<DropReason, number>>;
  /** Per `kind`, in the order kinds were first sent. */
  readonly byKind: Readonly<Record<string, KindStats>>;
}

/**
 * The seam every transport implements: the in-memory network here, a WebSocket transport for nodes
 * in other processes. A node is an id with an inbox; whether it lives in this process is the
 * transport's business.
 */
export interface Network<E extends Envelope = Envelope> {
  /** The clock that stamps `sentAt` and times deliveries. */
  readonly scheduler: SchedulerLike;
  /**
   * The inbox of `nodeId`. Subscribing joins the network, unsubscribing leaves it. One subscription
   * per node id at a time (a second errors); share the inbox to fan it out. The inbox never
   * completes: a node leaves by unsubscribing.
   */
  join(nodeId: string): Observable<E>;
  /**
   * Sends a message; the network stamps `sentAt`. Never throws for where the message goes (an
   * unknown, departed or unreachable destination counts as a drop); throws only for a malformed
   * envelope (`TypeError`/`RangeError` naming the field). Never delivers synchronously.
   */
  send(message: Outgoing<E>): void;
  /** A snapshot of the counters (a fresh object per read). */
  readonly stats: NetworkStats;
  /**
   * Agents that live outside this process, as the transport admits them (a transport for remote
   * agents has it; the in-memory network does not): on subscription those connected now, then
   * every new connection — a reconnect included. Departures are not announced here: an agent
   * leaves with a `leaving` heartbeat, and silence is for the failure detector to judge.
   */
  readonly members$?: Observable<RemoteMember>;
  /**
   * Ids of agents outside this process whose connection closed without a clean leave (a killed
   * process, a reset link): a strong hint, not a verdict — the agent may reconnect at once. A
   * transport that cannot tell (or has no connections) leaves it out.
   */
  readonly departures$?: Observable<string>;
}

/** An agent in another process, as its transport admitted it. */
export interface RemoteMember {
  readonly agentId: string;
  readonly capabilities: readonly string[];
  /** Subtasks it runs at once, as it claims (the coordinator grants them as it proves itself). */
  readonly slots: number;
  /**
   * Names the agent's process, the same across its reconnects: another instance under a known id
   * is a restarted process that lost its in-flight work, known at once (before its first beat).
   */
  readonly instance?: string;
}

/** Per-message delay: uniform in `[meanMs − jitterMs, meanMs + jitterMs]`, below 0 counts as 0. */
export interface LatencyOptions {
  /** Default 1. */
  readonly meanMs?: number;
  /** Default 0. Above 0, messages on one link may overtake each other. */
  readonly jitterMs?: number;
}

export interface InMemoryNetworkOptions {
  /** Default `asyncScheduler`; a `VirtualScheduler` for simulation and tests. */
  readonly scheduler?: SchedulerLike;
  /** Draws for loss and jitter (nothing is drawn when both are 0). Default `createRandom(0)`. */
  readonly random?: Random;
  /** Default `{ meanMs: 1, jitterMs: 0 }`. */
  readonly latency?: LatencyOptions;
  /** Probability that a message is lost, in `[0, 1]`. Default 0. */
  readonly lossRate?: number;
}

/** Overrides for one link; a field left out falls back to the network's setting. */
export interface LinkSettings {
  readonly latencyMs?: number;
  readonly jitterMs?: number;
  readonly lossRate?: number;
  /** Nothing passes while true: dropped as `down` at send, and at arrival for what was in flight. */
  readonly down?: boolean;
  /** Only `from → to`; by default the settings apply to both directions. */
  readonly oneWay?: boolean;
}

interface LinkOverride {
  readonly latencyMs: number | undefined;
  readonly jitterMs: number | undefined;
  readonly lossRate: number | undefined;
  readonly down: boolean;
}

class KindCounter {
  sent = 0;
  delivered = 0;
  dropped = 0;
}

/**
 * A joined node: its inbox. What is in flight to it is counted dropped when it leaves, found then
 * in the queue (a leave is rare; a message is not: nothing is counted per member per message).
 */
class Member<E> {
  /** It left: what was in flight to it was counted dropped then, and is skipped when it comes due. */
  left = false;

  constructor(
    readonly id: string,
    readonly inbox: Subscriber<E>,
  ) {}
}

/**
 * The messages in flight, a binary min-heap on (arrival time, seq). A message is not an object of
 * its own: its envelope, destination and kind counter sit at the same index of parallel arrays
 * beside the keys (two typed arrays), so a sift compares numbers in contiguous memory, and
 * telling whether the earliest message's destination left reads the member (one per node, in
 * cache) rather than a message object allocated a thousand messages ago. This is the hottest loop
 * of a simulation (every message, every relay hop, enters and leaves it), and with thousands of
 * agents a per-message object is a cache miss and garbage. The order is written out rather than
 * passed as a function, for the same reason. A message whose member left is not taken out (that
 * would need its index kept current on every move, or a list of each member's messages): its
 * member says it left, and it is discarded when it reaches the top; `live` counts the others.
 */
class FlightQueue<E> {
  private envelopes: E[] = [];
  private members: Array<Member<E>> = [];
  private counters: KindCounter[] = [];
  private times = new Float64Array(1024);
  private seqs = new Float64Array(1024);
  private count = 0;
  /** Messages queued whose member has not left. */
  live = 0;
  /** The member and counter of the message `take` returned last. */
  takenMember: Member<E> | undefined = undefined;
  takenCounter: KindCounter | undefined = undefined;

  /** Arrival time of the earliest message whose member has not left (those above it whose member left are discarded); +∞ when none. */
  peekTime(): number {
    for (;;) {
      if (this.count === 0) return Infinity;
      if (!(this.members[0] as Member<E>).left) return this.times[0] as number;
      this.removeTop();
    }
  }

  push(envelope: E, member: Member<E>, counter: KindCounter, time: number, seq: number): void {
    if (this.count === this.times.length) this.grow();
    const { times, seqs } = this;
    let i = this.count++;
    this.live++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const t = times[p] as number;
      if (time > t || (time === t && seq > (seqs[p] as number))) break;
      this.move(i, p);
      i = p;
    }
    this.put(i, envelope, member, counter, time, seq);
  }

  /**
   * Takes the earliest message out of the queue; call after `peekTime` answered a finite time (its
   * member has not left). Its member and counter are left in `takenMember` and `takenCounter`.
   */
  take(): E {
    const envelope = this.envelopes[0] as E;
    this.takenMember = this.members[0] as Member<E>;
    this.takenCounter = this.counters[0] as KindCounter;
    this.removeTop();
    this.live--;
    return envelope;
  }

  /** The counters of the messages queued to `member`, one per message (O(queue): for a member that leaves). */
  countersTo(member: Member<E>): KindCounter[] {
    const found: KindCounter[] = [];
    const { members, counters } = this;
    for (let i = 0; i < this.count; i++) if (members[i] === member) found.push(counters[i] as KindCounter);
    return found;
  }

  /** `n` messages' member left: they stay queued until they reach the top. */
  forget(n: number): void {
    this.live -= n;
    if (this.live === 0) this.clear();
  }

  private clear(): void {
    this.envelopes = [];
    this.members = [];
    this.counters = [];
    this.count = 0;
  }

  private removeTop(): void {
    const { envelopes, members, counters, times, seqs } = this;
    const n = --this.count;
    const envelope = envelopes.pop() as E;
    const member = members.pop() as Member<E>;
    const counter = counters.pop() as KindCounter;
    const time = times[n] as number;
    const seq = seqs[n] as number;
    if (n === 0) return;
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      let ct = times[c] as number;
      if (c + 1 < n) {
        const rt = times[c + 1] as number;
        if (rt < ct || (rt === ct && (seqs[c + 1] as number) < (seqs[c] as number))) {
          c++;
          ct = rt;
        }
      }
      if (time < ct || (time === ct && seq < (seqs[c] as number))) break;
      this.move(i, c);
      i = c;
    }
    this.put(i, envelope, member, counter, time, seq);
  }

  /** The message at `from` moves to `to` (a step of a sift). */
  private move(to: number, from: number): void {
    this.envelopes[to] = this.envelopes[from] as E;
    this.members[to] = this.members[from] as Member<E>;
    this.counters[to] = this.counters[from] as KindCounter;
    this.times[to] = this.times[from] as number;
    this.seqs[to] = this.seqs[from] as number;
  }

  /** A message is written at `i` (the end of a sift). */
  private put(i: number, envelope: E, member: Member<E>, counter: KindCounter, time: number, seq: number): void {
    this.envelopes[i] = envelope;
    this.members[i] = member;
    this.counters[i] = counter;
    this.times[i] = time;
    this.seqs[i] = seq;
  }

  private grow(): void {
    const times = new Float64Array(this.times.length * 2);
    times.set(this.times);
    this.times = times;
    const seqs = new Float64Array(this.seqs.length * 2);
    seqs.set(this.seqs);
    this.seqs = seqs;
  }
}

type AnyNetwork = InMemoryNetwork<Envelope>;

/**
 * The embedded network: nodes in one process, messages delivered through the scheduler after a
 * latency, with loss, per-link overrides and partitions for simulation.
 *
 * ```
 * send a→b (latency 3):  -x--y----
 * b's inbox:             ----x--y-
 * ```
 *
 * Ordering: deliveries run in (arrival time, send order), so with a constant latency each link is
 * FIFO; with jitter, or a link's latency changed mid-stream, messages may overtake each other.
 * Checks, in order: at send — destination joined (`unknown`/`down`), link down, partition, loss; at
 * arrival — link down, partition (a partition raised while a message is in flight drops it). A node
 * that leaves drops everything in flight to it at once (`down`), so a rejoining node never gets
 * messages meant for its previous incarnation. Senders need not have joined.
 *
 * Partitions: `partition(groups)` lets nodes talk only inside their group; nodes listed in no group
 * (including nodes that join later) form one more group together — `partition([['a', 'b']])` cuts
 * a and b off from everyone else. `heal()` removes it; links set down stay down.
 *
 * Costs: O(log n) per message in flight (one heap), O(1) otherwise; ONE scheduler action per network,
 * re-armed to the earliest arrival, however many messages are in flight; no closure, and no
 * object beside the envelope, per message.
 * When nothing is in flight the network holds no scheduled action.
 *
 * Options: `latency` (higher: slower, and timing faults show sooner relative to work),
 * `lossRate` (global; per link with `setLink`), `random` (seeded: a run replays from its seed),
 * `scheduler`.
 *
 * @example
 * const scheduler = new VirtualScheduler();
 * const network = new InMemoryNetwork({ scheduler, random: createRandom(7), latency: { meanMs: 5, jitterMs: 2 } });
 * network.join('b').subscribe(e => console.log(e.kind, e.sentAt, scheduler.now()));
 * network.send({ from: 'a', to: 'b', kind: 'work.assign', body: { subtaskId: 's-0' } });
 * scheduler.flush(); // work.assign 0 ~5
 */
export class InMemoryNetwork<E extends Envelope = Envelope> implements Network<E> {
  readonly scheduler: SchedulerLike;
  /** The scheduler when it runs in virtual time: arrivals with nothing before them are delivered in one action. */
  private readonly virtual: VirtualScheduler | undefined;
  private readonly random: Random;
  private readonly meanMs: number;
  private readonly jitterMs: number;
  private lossRate: number;

  private readonly members = new Map<string, Member<E>>();
  /** Every id that ever joined: tells `unknown` from `down`. */
  private readonly known = new Set<string>();
  private readonly links = new Map<string, Map<string, LinkOverride>>();
  /** Node id → partition group; unlisted ids are group −1. Null when not partitioned. */
  private groups: Map<string, number> | null = null;

  private readonly queue = new FlightQueue<E>();
  private nextSeq = 0;
  private timer: Subscription | null = null;
  /** Arrival time the timer is armed for (Infinity: not armed). */
  private armedAt = Infinity;
  private delivering = false;

  private readonly kinds = new Map<string, KindCounter>();
  private sentCount = 0;
  private deliveredCount = 0;
  private droppedCount = 0;
  private readonly drops: Record<DropReason, number> = { unknown: 0, down: 0, partition: 0, loss: 0 };

  constructor({ scheduler = asyncScheduler, random = createRandom(0), latency = {}, lossRate = 0 }: InMemoryNetworkOptions = {}) {
    const { meanMs = 1, jitterMs = 0 } = latency;
    this.scheduler = requireScheduler(scheduler);
    this.virtual = scheduler instanceof VirtualScheduler ? scheduler : undefined;
    if (random === null || typeof random !== 'object' || typeof random.next !== 'function') {
      throw new RangeError(`random must be a Random (createRandom(seed)), got ${String(random)}`);
    }
    this.random = random;
    this.meanMs = requireNumber('latency.meanMs', meanMs, 0);
    this.jitterMs = requireNumber('latency.jitterMs', jitterMs, 0);
    this.lossRate = requireInRange('lossRate', lossRate, 0, 1);
  }

  join(nodeId: string): Observable<E> {
    requireId('nodeId', nodeId);
    return new Observable<E>(subscriber => {
      if (this.members.has(nodeId)) {
        const id = JSON.stringify(nodeId);
        subscriber.error(new Error(`node ${id} has already joined this network (share its inbox to fan it out)`));
        return undefined;
      }
      const member = new Member(nodeId, subscriber);
      this.members.set(nodeId, member);
      this.known.add(nodeId);
      return () => this.leave(member);
    });
  }

  send(message: Outgoing<E>): void {
    assertOutgoing(message);
    const { from, to, kind, body } = message;
    let counter = this.kinds.get(kind);
    if (counter === undefined) {
      counter = new KindCounter();
      this.kinds.set(kind, counter);
    }
    counter.sent++;
    this.sentCount++;

    const member = this.members.get(to);
    if (member === undefined) return this.drop(counter, this.known.has(to) ? 'down' : 'unknown');
    const link = this.links.size === 0 ? undefined : this.links.get(from)?.get(to);
    if (link?.down === true) return this.drop(counter, 'down');
    if (this.groups !== null && !this.sameGroup(from, to)) return this.drop(counter, 'partition');
    const lossRate = link?.lossRate ?? this.lossRate;
    if (lossRate > 0 && this.random.next() < lossRate) return this.drop(counter, 'loss');

    const meanMs = link?.latencyMs ?? this.meanMs;
    const jitterMs = link?.jitterMs ?? this.jitterMs;
    const delay = jitterMs > 0 ? Math.max(0, meanMs + jitterMs * (2 * this.random.next() - 1)) : meanMs;
    const sentAt = this.scheduler.now();
    // Exactly these five fields travel, in one shape (monomorphic for the receivers).
    const envelope = { from, to, kind, body, sentAt } as E;
    const deliverAt = sentAt + delay;
    this.queue.push(envelope, member, counter, deliverAt, this.nextSeq++);
    // While delivering, the running action re-arms itself when done.
    if (!this.delivering && deliverAt < this.armedAt) this.arm(deliverAt);
  }

  get stats(): NetworkStats {
    const byKind: Array<[string, KindStats]> = [];
    for (const [kind, { sent, delivered, dropped }] of this.kinds) byKind.push([kind, { sent, delivered, dropped }]);
    return {
      sent: this.sentCount,
      delivered: this.deliveredCount,
      dropped: this.droppedCount,
      inFlight: this.queue.live,
      droppedBy: { ...this.drops },
      // fromEntries defines own properties: a kind named '__proto__' is counted like any other.
      byKind: Object.fromEntries(byKind),
    };
  }

  /** Whether `nodeId` is joined now. */
  isJoined(nodeId: string): boolean {
    return this.members.has(nodeId);
  }

  /**
   * Overrides the link `from → to` (and `to → from` unless `oneWay`), replacing any earlier override
   * of it; `setLink(a, b, {})` restores the network's settings. Applies to messages sent from now on;
   * `down` also drops what is in flight on the link when it arrives.
   */
  setLink(from: string, to: string, settings: LinkSettings): void {
    requireId('from', from);
    requireId('to', to);
    if (settings === null || typeof settings !== 'object') {
      throw new TypeError(`settings must be an object, got ${String(settings)}`);
    }
    const { latencyMs, jitterMs, lossRate, down = false, oneWay = false } = settings;
    if (latencyMs !== undefined) requireNumber('latencyMs', latencyMs, 0);
    if (jitterMs !== undefined) requireNumber('jitterMs', jitterMs, 0);
    if (lossRate !== undefined) requireInRange('lossRate', lossRate, 0, 1);
    if (typeof down !== 'boolean') throw new RangeError(`down must be a boolean, got ${String(down)}`);
    if (typeof oneWay !== 'boolean') throw new RangeError(`oneWay must be a boolean, got ${String(oneWay)}`);
    const override: LinkOverride | null =
      latencyMs === undefined && jitterMs === undefined && lossRate === undefined && !down
        ? null
        : { latencyMs, jitterMs, lossRate, down };
    this.putLink(from, to, override);
    if (!oneWay) this.putLink(to, from, override);
  }

  /**
   * Splits the network: a message passes only between nodes of the same group. Nodes listed in no
   * group form one more group together. Replaces any earlier partition. A node may be listed in one
   * group only (`RangeError` otherwise).
   */
  partition(groups: readonly (readonly string[])[]): void {
    if (!Array.isArray(groups)) throw new TypeError(`groups must be an array of arrays of node ids, got ${String(groups)}`);
    const groupOf = new Map<string, number>();
    groups.forEach((group: unknown, g) => {
      if (!Array.isArray(group)) throw new TypeError(`groups[${g}] must be an array of node ids, got ${String(group)}`);
      group.forEach((id: unknown, i) => {
        requireId(`groups[${g}][${i}]`, id);
        const other = groupOf.get(id as string);
        if (other !== undefined && other !== g) {
          throw new RangeError(`groups: node ${JSON.stringify(id)} is listed in groups[${other}] and groups[${g}]`);
        }
        groupOf.set(id as string, g);
      });
    });
    this.groups = groupOf.size === 0 ? null : groupOf;
  }

  /** Removes the partition (links set down with `setLink` stay down). */
  heal(): void {
    this.groups = null;
  }

  /** Sets the global loss rate for messages sent from now on (links with their own rate keep it). */
  setLossRate(rate: number): void {
    this.lossRate = requireInRange('lossRate', rate, 0, 1);
  }

  private putLink(from: string, to: string, override: LinkOverride | null): void {
    let row = this.links.get(from);
    if (override !== null) {
      if (row === undefined) this.links.set(from, (row = new Map()));
      row.set(to, override);
    } else if (row !== undefined) {
      row.delete(to);
      if (row.size === 0) this.links.delete(from);
    }
  }

  private sameGroup(from: string, to: string): boolean {
    const groups = this.groups;
    return groups === null || (groups.get(from) ?? -1) === (groups.get(to) ?? -1);
  }

  private drop(counter: KindCounter, reason: DropReason): void {
    counter.dropped++;
    this.droppedCount++;
    this.drops[reason]++;
  }

  private leave(member: Member<E>): void {
    if (this.members.get(member.id) === member) this.members.delete(member.id);
    // Before it is marked left: what is queued to it is then still its own to count.
    const inFlight = member.left ? [] : this.queue.countersTo(member);
    member.left = true;
    for (const counter of inFlight) counter.dropped++;
    this.droppedCount += inFlight.length;
    this.drops.down += inFlight.length;
    this.queue.forget(inFlight.length);
    if (this.queue.live === 0 && this.timer !== null) {
      this.timer.unsubscribe();
      this.timer = null;
      this.armedAt = Infinity;
    }
  }

  private arm(at: number): void {
    this.timer?.unsubscribe();
    this.armedAt = at;
    const delay = Math.max(0, at - this.scheduler.now());
    this.timer = this.scheduler.schedule(InMemoryNetwork.deliverDue, delay, this as unknown as AnyNetwork);
  }

  /** The network's one scheduled action: delivers what is due, then re-arms for the next arrival. */
  private static deliverDue(this: SchedulerAction<AnyNetwork>, network?: AnyNetwork): void {
    const net = network as AnyNetwork;
    // Due includes the time this action was armed for: a clock that lands a rounding error short
    // (floating-point delays) must not spin re-arming for the same message.
    const limit = Math.max(net.scheduler.now(), net.armedAt);
    net.timer = null;
    net.armedAt = Infinity;
    net.delivering = true;
    let finished = false;
    try {
      net.deliverUntil(limit);
      // In virtual time, the next arrivals that nothing else comes before are delivered from here:
      // the same order as re-arming for each, without a trip through the timer queue per message.
      const virtual = net.virtual;
      if (virtual !== undefined) {
        for (let next = net.queue.peekTime(); next !== Infinity && virtual.advanceInline(next); next = net.queue.peekTime()) {
          net.deliverUntil(Math.max(next, virtual.now()));
        }
      }
      finished = true;
    } finally {
      net.delivering = false;
      const first = net.queue.peekTime();
      if (first !== Infinity) {
        const delay = Math.max(0, first - net.scheduler.now());
        net.armedAt = first;
        // After a throw the scheduler cancels this action: carry on with a fresh one.
        net.timer = finished ? this.schedule(net, delay) : net.scheduler.schedule(InMemoryNetwork.deliverDue, delay, net);
      }
    }
  }

  private deliverUntil(limit: number): void {
    const queue = this.queue;
    for (let at = queue.peekTime(); at <= limit; at = queue.peekTime()) {
      // Off the queue before it is delivered: the receiver may leave (or send) from inside next().
      const envelope = queue.take();
      const member = queue.takenMember as Member<E>;
      const counter = queue.takenCounter as KindCounter;
      const link = this.links.size === 0 ? undefined : this.links.get(envelope.from)?.get(envelope.to);
      if (link?.down === true) this.drop(counter, 'down');
      else if (this.groups !== null && !this.sameGroup(envelope.from, envelope.to)) this.drop(counter, 'partition');
      else {
        counter.delivered++;
        this.deliveredCount++;
        member.inbox.next(envelope);
      }
    }
  }
}
