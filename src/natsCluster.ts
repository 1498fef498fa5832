import { hostname } from 'node:os';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { asyncScheduler, filter, type Observable, type SchedulerAction, type SchedulerLike, type Subscription } from 'rxjs';
import { JetStreamFollower, JetStreamFollowerLost } from '../streams/jetstreamFollower.js';
import { JetStreamJournal } from '../streams/jetstreamJournal.js';
import type { Journal } from '../streams/journal.js';
import { connectNats, type NatsEndpoint } from '../streams/natsConnect.js';
import { NatsLease, type LeaseHolder } from '../streams/natsLease.js';
import { NatsNetwork, type NatsNetworkOptions } from '../streams/natsNetwork.js';
import type { CoordinatorOptions } from './coordinator.js';
import type { CoordinationEvent } from './events.js';
import { Service, TASKS, type ServiceNetwork } from './service.js';
import { COORDINATOR } from './topology.js';

/** What a cluster node is doing now. */
export type ClusterRole =
  | { readonly type: 'standby'; readonly reason: string; readonly leader: LeaseHolder | undefined }
  /** The lease is this node's (the moment a failover is decided); it reads the journal (what its follower has not) before it leads. */
  | { readonly type: 'elected'; readonly term: number }
  | {
      readonly type: 'leader';
      readonly term: number;
      readonly recordsSinceSnapshot: number;
      readonly journalSequence: number;
      /** How long opening the journal took once elected (reading what was not followed, the fence), in wall-clock ms. */
      readonly journalMs?: number;
      /** Messages of the journal its follower read at the election (the tail); absent when it read the stream whole. */
      readonly journalRead?: number;
    };

export interface NatsClusterNodeOptions extends NatsEndpoint, Omit<NatsNetworkOptions, 'connection' | 'authority' | 'scheduler'> {
  /** This node's id (in the lease and `status`). Default `HOST-PID`. */
  readonly id?: string;
  /** Coordinator options (agents come over NATS; the journal is the cluster's). */
  readonly coordinator?: Omit<CoordinatorOptions, 'network' | 'agents' | 'journal'>;
  /** Every coordination event of every task, while this node leads. */
  readonly onEvent?: (event: CoordinationEvent, taskId: string) => void;
  /**
   * The leader lease's TTL. Lower: a dead leader is replaced sooner (failover ≈ TTL + TTL / 8 +
   * the journal's reading); higher: a leader survives longer pauses without a takeover. Default 4000.
   */
  readonly leaseTtlMs?: number;
  /** The lease's KV bucket. Default `rxswarm-leader`. */
  readonly leaseBucket?: string;
  /** The KV bucket where every node says it is alive (for `status`), with the lease's TTL. Default `rxswarm-nodes`. */
  readonly nodesBucket?: string;
  /** The journal's stream. Default `RXSWARM_JOURNAL`. */
  readonly stream?: string;
  /** Told of every change of role (and why). */
  readonly onRole?: (role: ClusterRole) => void;
  /** Told of what goes wrong while it runs (a journal that cannot be opened, …); the node goes on campaigning. */
  readonly onError?: (error: Error) => void;
}

/**
 * One node of a coordinator cluster on NATS JetStream (`rxswarm serve --nats URL`, several
 * processes): it campaigns for the leader lease ({@link NatsLease}); the leader opens the journal
 * ({@link JetStreamJournal}: opening it fences every earlier writer out), resumes every task it
 * holds and runs the {@link Service} on a {@link NatsNetwork}; the others wait as standbys, each
 * following the journal's stream ({@link JetStreamFollower}), so that the one elected reads only
 * what its follower has not (the tail) before it fences and leads. A follower that fails (damage
 * it saw, a follow it cannot vouch for) is said (`onError`); elected, that node reads the stream whole.
 *
 * Losing the lease (a renewal refused, its validity run out — after a pause, before any other of
 * its timers) closes the service at once; until it is closed, every send, timer and journal
 * append, and every message or session that comes in, asks the lease first (`isLeader()` reads the
 * clock; the first to find it gone closes the service), so a deposed leader dispatches, accepts
 * and admits nothing, and the journal's expected sequence refuses what it might still try. Then it
 * campaigns again as a standby. A journal that fails (fenced by a newer leader) gives up the lease
 * likewise.
 *
 * ```
 * node A:  leader ─────────── ✕ killed
 * node B:  standby, following the journal ▶ leader (lease lapsed: reads the tail, fences, resumes)
 * node C:  standby · · · · · · · · · · · · · · · · · · · · standby
 * ```
 *
 * @example
 * const node = await NatsClusterNode.start({ url: 'nats://10.0.0.2:4222', token, onRole: r => console.log(r.type) });
 */
export class NatsClusterNode {
  private term = 0;
  private service: Service | undefined;
  private leading: Promise<void> | undefined;
  private readonly subscription: Subscription;
  private closed = false;
  private role: ClusterRole = { type: 'standby', reason: 'starting', leader: undefined };
  /** While it stands by: its follower of the journal (undefined if it could not start). */
  private follower: Promise<JetStreamFollower | undefined> | undefined;

  private readonly presence: ReturnType<typeof setInterval>;

  private constructor(
    readonly id: string,
    readonly lease: NatsLease,
    private readonly connection: NatsConnection,
    private readonly nodes: KV,
    private readonly options: NatsClusterNodeOptions,
  ) {
    this.subscription = lease.state$.subscribe(state => {
      if (state.type === 'leader') this.lead();
      else this.stepDown(state.reason, state.holder);
    });
    this.follow();
    lease.start();
    // Alive for `status`: put at the lease's renewal pace, gone a TTL after the process is.
    const say = (): void => void nodes.put(id, JSON.stringify({ id, host: lease.holder.host, pid: lease.holder.pid })).catch(() => undefined);
    say();
    this.presence = setInterval(say, lease.renewEveryMs);
    this.presence.unref();
  }

  /** Connects (checking the server's version and JetStream), opens the lease and starts campaigning. */
  static async start(options: NatsClusterNodeOptions): Promise<NatsClusterNode> {
    const { url, natsToken, user, pass, id = `${hostname()}-${process.pid}`, leaseTtlMs = 4000, leaseBucket, nodesBucket = 'rxswarm-nodes' } = options;
    const connection = await connectNats({ url, name: `rxswarm serve ${id}`, ...(natsToken === undefined ? {} : { natsToken }), ...(user === undefined ? {} : { user }), ...(pass === undefined ? {} : { pass }) });
    try {
      // Renewed (and, by standbys, tried) every TTL / 8: a lapsed lease is taken within TTL / 8 of its expiry, for a few small KV writes a second.
      const lease = await NatsLease.open({ connection, id, ttlMs: leaseTtlMs, renewEveryMs: leaseTtlMs / 8, ...(leaseBucket === undefined ? {} : { bucket: leaseBucket }) });
      const nodes = await new Kvm(connection).create(nodesBucket, { ttl: leaseTtlMs, history: 1 });
      return new NatsClusterNode(id, lease, connection, nodes, options);
    } catch (err) {
      await connection.close();
      throw err;
    }
  }

  /** The role now. */
  get current(): ClusterRole {
    return this.role;
  }

  /** The service while this node leads. */
  get leaderService(): Service | undefined {
    return this.service;
  }

  /** Stops: the service (tasks stay in the journal), the lease (released, so a standby takes over at once) and the connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.subscription.unsubscribe();
    clearInterval(this.presence);
    this.term++;
    const service = this.service;
    this.service = undefined;
    await service?.close();
    await (await this.takeFollower())?.close();
    await this.leading?.catch(() => undefined);
    await this.lease.release();
    await this.nodes.delete(this.id).catch(() => undefined);
    await this.connection.close();
  }

  private setRole(role: ClusterRole): void {
    this.role = role;
    this.options.onRole?.(role);
  }

  private lead(): void {
    if (this.closed || this.service !== undefined || this.leading !== undefined) return;
    const term = ++this.term;
    this.setRole({ type: 'elected', term: this.lease.term });
    this.leading = this.open(term)
      .catch((err: unknown) => {
        this.options.onError?.(err instanceof Error ? err : new Error(String(err)));
        // Could not lead (the journal is damaged, the server did not answer): let another node try.
        if (term === this.term) void this.restartCampaign();
      })
      .finally(() => {
        this.leading = undefined;
      });
  }

  /**
   * Follows the journal while it stands by. A follower that lost its way (its consumer ended, a
   * message deleted inside the stream) is started afresh a lease TTL later; one that saw damage
   * stays failed (elected, this node reads the stream whole, and refuses it there if it still is).
   */
  private follow(): void {
    if (this.closed || this.follower !== undefined) return;
    const { connection, options } = this;
    const started: Promise<JetStreamFollower | undefined> = JetStreamFollower.start({ connection, ...(options.stream === undefined ? {} : { stream: options.stream }) }).then(
      follower => {
        follower.onFailure(err => {
          if (this.closed || this.follower !== started) return;
          options.onError?.(new Error(`the journal's follower stopped: ${err.message}. Elected, this node reads the journal whole`));
          if (!(err instanceof JetStreamFollowerLost)) return;
          setTimeout(() => {
            if (this.follower !== started) return;
            this.follower = undefined;
            void follower.close();
            this.follow();
          }, this.lease.renewEveryMs * 8).unref();
        });
        if (!this.closed) return follower;
        void follower.close();
        return undefined;
      },
      (err: unknown) => {
        options.onError?.(new Error(`cannot follow the journal (${(err as Error).message}): elected, this node reads it whole`));
        return undefined;
      },
    );
    this.follower = started;
  }

  /** The follower, handed over (to the election, or to be closed). */
  private takeFollower(): Promise<JetStreamFollower | undefined> {
    const follower = this.follower ?? Promise.resolve(undefined);
    this.follower = undefined;
    return follower;
  }

  /** Opens the journal from what the follower read (the tail only); without one, or if it cannot be used, from the whole stream. */
  private async openJournal(follower: JetStreamFollower | undefined): Promise<{ journal: JetStreamJournal; read: number | undefined }> {
    const { connection, options } = this;
    const common = { connection, owner: this.id, ...(options.stream === undefined ? {} : { stream: options.stream }) };
    if (follower !== undefined) {
      const before = follower.read;
      try {
        const journal = await JetStreamJournal.open({ ...common, follower });
        return { journal, read: follower.read - before };
      } catch (err) {
        // Whatever it could not vouch for, the whole stream is read with every check (real damage stops the start there).
        options.onError?.(new Error(`the journal's follower cannot be used (${(err as Error).message}): reading the journal whole`));
      } finally {
        void follower.close();
      }
    }
    return { journal: await JetStreamJournal.open(common), read: undefined };
  }

  private async open(term: number): Promise<void> {
    const { lease, connection, options } = this;
    const stillLeading = (): boolean => term === this.term && !this.closed && lease.isLeader();
    const electedAt = performance.now();
    const { journal, read } = await this.openJournal(await this.takeFollower());
    const journalMs = Math.round(performance.now() - electedAt);
    if (!stillLeading()) return void (await journal.close());
    const { coordinator = {}, onEvent, url: _url, natsToken: _t, user: _u, pass: _p, id: _id, leaseTtlMs: _ttl, leaseBucket: _b, nodesBucket: _n, stream: _s, onRole: _r, onError: _e, ...network } = options;
    // Woken after a pause past the lease, the first thing that runs — a timer of the engine, of
    // the service's feed or of the network's send queue, a message or a membership change come in
    // meanwhile, an answer of the journal — finds the lease gone and closes the service instead
    // of running. Every way in is gated: what is not would act (print, record, send) first.
    const leading = (): boolean => lease.isLeader();
    let service: Service | undefined;
    const lost = (): void => {
      if (service === undefined || this.service !== service) return;
      this.stepDown('lost the leader lease (its validity ran out)', undefined);
      // A renewal sent before the validity ran out may still land and keep the lease: given up and campaigned for again, so that leading starts afresh.
      if (lease.term > 0) void this.restartCampaign();
    };
    const net = await NatsNetwork.start({
      heartbeatMs: coordinator.heartbeat?.intervalMs ?? 1000,
      ackTimeoutMs: coordinator.ackTimeoutMs ?? 3000,
      ...network,
      connection,
      authority: COORDINATOR,
      reservedIds: [COORDINATOR, TASKS, ...(network.reservedIds ?? [])],
      // Its send queue's flush (sends made before a pause go out after it) and, through the
      // service's view of the network, the service's feed (keepalives, the dashboard's batches).
      scheduler: leaseGatedScheduler(asyncScheduler, leading, lost),
    });
    if (!stillLeading()) return void (await net.close());
    service = Service.on(leaseGatedNetwork(net, leading, lost), {
      coordinator: { ...coordinator, scheduler: leaseGatedScheduler(coordinator.scheduler ?? asyncScheduler, leading, lost), journal: leaseGatedJournal(journal, leading, this.id, lost) },
      ...(onEvent === undefined ? {} : { onEvent }),
    });
    this.service = service;
    const opened = service;
    journal.onFailure(err => {
      if (this.service !== opened) return;
      this.options.onError?.(err);
      this.stepDown(err.message, undefined);
      void this.restartCampaign();
    });
    this.setRole({ type: 'leader', term: lease.term, recordsSinceSnapshot: journal.sinceSnapshot, journalSequence: journal.sequence, journalMs, ...(read === undefined ? {} : { journalRead: read }) });
  }

  private stepDown(reason: string, leader: LeaseHolder | undefined): void {
    this.term++;
    const service = this.service;
    this.service = undefined;
    // Closed at once: its timers stop, its network unsubscribes (what it still tries is refused by the gates).
    if (service !== undefined) void service.close().catch(err => this.options.onError?.(err as Error));
    this.follow();
    if (this.role.type !== 'standby' || this.role.reason !== reason || this.role.leader?.nonce !== leader?.nonce) this.setRole({ type: 'standby', reason, leader });
  }

  /** Gives the lease up (if it is held) and campaigns again. */
  private async restartCampaign(): Promise<void> {
    await this.lease.release();
    if (this.closed) return;
    // A moment for another node to take it: the lease TTL / 4.
    setTimeout(() => {
      if (!this.closed) this.lease.start();
    }, this.lease.renewEveryMs).unref();
  }
}

/**
 * The network, but while `allowed()` is false a send goes nowhere, and a message that comes in
 * or a session that starts or ends is not told (a deposed leader dispatches and accepts nothing,
 * and admits or writes off no agent); `refused` is told.
 */
export function leaseGatedNetwork(network: NatsNetwork, allowed: () => boolean, refused: () => void = () => undefined): ServiceNetwork {
  const pass = (): boolean => {
    if (allowed()) return true;
    refused();
    return false;
  };
  return new Proxy(network, {
    get(target, property, receiver) {
      if (property === 'send') return (message: Parameters<NatsNetwork['send']>[0]) => (pass() ? target.send(message) : undefined);
      if (property === 'join') return (nodeId: string) => target.join(nodeId).pipe(filter(() => pass()));
      // Sessions (the service's view, serve's log) and, derived from them, the agents the engine admits and writes off.
      if (property === 'events$' || property === 'members$' || property === 'departures$') return (target[property] as Observable<unknown>).pipe(filter(() => pass()));
      const value = Reflect.get(target, property, receiver) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  }) as unknown as ServiceNetwork;
}

/** The scheduler, but work that comes due while `allowed()` is false does not run; `refused` is told instead. */
export function leaseGatedScheduler(scheduler: SchedulerLike, allowed: () => boolean, refused: () => void): SchedulerLike {
  return {
    now: () => scheduler.now(),
    schedule<T>(work: (this: SchedulerAction<T>, state?: T) => void, delay?: number, state?: T): Subscription {
      // Rescheduling through `this` (a periodic action) runs this wrapper again: gated every time.
      return scheduler.schedule<T>(
        function (this: SchedulerAction<T>, s?: T) {
          if (allowed()) work.call(this, s);
          else refused();
        },
        delay,
        state,
      );
    },
  };
}

/**
 * The journal, but an append while `allowed()` is false fails it (the coordinator on it halts)
 * instead of being written. `lost` is told first — of such an append, and of a failure of the
 * journal itself (a write of before the pause refused by the new leader's fence) while the lease
 * is not held — so that the node closes its service before the coordinator on it hears of it.
 */
export function leaseGatedJournal(journal: Journal, allowed: () => boolean, id: string, lost: () => void = () => undefined): Journal {
  let refused: Error | undefined;
  const listeners: Array<(error: Error) => void> = [];
  journal.onFailure(err => {
    if (refused !== undefined) return;
    if (!allowed()) lost();
    for (const l of listeners) l(err);
  });
  const refuse = (): Error => {
    if (refused === undefined && journal.failure === undefined) {
      refused = new Error(`node ${id} lost the leader lease: it appends nothing more and takes no more work`);
      lost();
      for (const l of listeners) l(refused);
    }
    return (journal.failure ?? refused) as Error;
  };
  return {
    recover: () => journal.recover(),
    append: record => {
      if (refused !== undefined || !allowed()) throw refuse();
      journal.append(record);
    },
    durable: () => (refused !== undefined ? Promise.reject(refused) : journal.durable()),
    snapshot: state => {
      if (refused !== undefined || !allowed()) throw refuse();
      journal.snapshot(state);
    },
    get failure() {
      return refused ?? journal.failure;
    },
    onFailure: listener => void listeners.push(listener),
    get sinceSnapshot() {
      return journal.sinceSnapshot;
    },
    get pending() {
      return journal.pending;
    },
    close: () => journal.close(),
  };
}

/** A node as `status` shows it. */
export interface ClusterMember {
  readonly id: string;
  readonly host: string;
  readonly pid: number;
}

/**
 * Who leads the cluster and who stands by (`rxswarm status --nats`): the lease's holder, and
 * every other node that said it is alive within the lease's TTL.
 */
export async function readClusterMembers(connection: NatsConnection, { leaseBucket = 'rxswarm-leader', nodesBucket = 'rxswarm-nodes' }: { leaseBucket?: string; nodesBucket?: string } = {}): Promise<{ leader: ClusterMember | null; standbys: ClusterMember[] }> {
  const kvm = new Kvm(connection);
  const member = (text: string): ClusterMember => {
    const { id, host, pid } = JSON.parse(text) as ClusterMember;
    return { id, host, pid };
  };
  let leader: ClusterMember | null = null;
  try {
    const entry = await (await kvm.open(leaseBucket)).get('leader');
    if (entry !== null && entry.operation === 'PUT') leader = member(entry.string());
  } catch {
    // no lease bucket: no node ever ran
  }
  const standbys: ClusterMember[] = [];
  try {
    const nodes = await kvm.open(nodesBucket);
    for await (const key of await nodes.keys()) {
      const entry = await nodes.get(key);
      if (entry === null || entry.operation !== 'PUT') continue;
      const m = member(entry.string());
      if (m.id !== leader?.id) standbys.push(m);
    }
  } catch {
    // no nodes bucket
  }
  standbys.sort((a, b) => a.id.localeCompare(b.id));
  return { leader, standbys };
}
