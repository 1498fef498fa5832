import { Observable, from, isObservable, lastValueFrom, type Observer, type SchedulerLike, type Subscription } from 'rxjs';
import { retransmitDelay } from '../operators/internal/rttEstimator.js';
import { requireFunction, requireNumber } from '../operators/internal/validate.js';
import { requireId } from './messages.js';
import type { Network, Envelope } from './network.js';
import type { AgentUsage, AssignBody, CancelBody, ProgressBody, DelegateBody, DelegatedBody, HeartbeatBody, MessageBodies, MessageKind, PeersBody, ReceivedBody, ResultBody, Routed, VoteRequestBody } from './protocol.js';
import type { Random } from './random.js';
import type { AgentContext, InProcessAgent, Subtask } from './task.js';

export interface AgentHostOptions {
  readonly network: Network;
  readonly coordinatorId: string;
  readonly heartbeatIntervalMs: number;
  /** Each beat comes `intervalMs ± jitterMs` after the previous one (uniform). */
  readonly heartbeatJitterMs: number;
  readonly random: Random;
  /**
   * Where liveness beats go (the coordinator; in a mesh, every peer too). Read at every beat.
   * Default: what the coordinator last said in a `peers` message, or the coordinator alone.
   */
  readonly heartbeatTargets?: () => readonly string[];
  /** A peer silent this long is reported as gone when a vote asks. Default 3 × interval + jitter. */
  readonly peerSilenceMs?: number;
  /**
   * An assignment is acknowledged this long after it arrives, unless its result (or progress) goes
   * first and says it instead: work shorter than this costs no acknowledgement of its own. Keep it
   * well under the coordinator's acknowledgement timeout. Default 0: at once. The `done` word of a
   * result sent through relays waits as long for the result's confirmation (`received`), and is
   * not sent once it came.
   */
  readonly ackDelayMs?: number;
  /**
   * Incarnation of the first start (each start adds one). Default 1. A process that may replace an
   * earlier one under the same id (an agent process restarted) starts above it, e.g. from the clock.
   */
  readonly firstIncarnation?: number;
}

function requireSlots(name: string, value: unknown): number {
  if (typeof value !== 'number' || Number.isNaN(value)) throw new RangeError(`${name} must be a number, got ${String(value)}`);
  return Math.max(1, Math.floor(value));
}

/** What the host is doing: a hung host beats but does no work; a crashed one does nothing. */
export type HostState = 'running' | 'hung' | 'crashed' | 'left';

interface Running {
  /** Its task and subtask (see `workKey`). */
  readonly key: string;
  readonly taskId: string | undefined;
  readonly subtask: Subtask;
  readonly attempt: number;
  readonly replyPath: readonly string[];
  subscription: Subscription | undefined;
  /** Its acknowledgement, due `ackDelayMs` after it arrived unless something else says it first. */
  ack: Subscription | undefined;
  /** What its handler last reported through `context.usage`. */
  usage: AgentUsage | undefined;
  /** Its assignment carried the coordinator's retransmission timeout: the coordinator confirms results (see `AssignBody.rto`). */
  readonly confirms: boolean;
  /** Children it asked for (`context.delegate`), by the id it gave them; made at its first ask. */
  delegations: Map<string, Delegation> | undefined;
  /** When its assignment arrived (scheduler time), and whether something acknowledged it since: else its result or `done` says how long it was held (`heldMs`). */
  readonly receivedAt: number;
  acked: boolean;
}

/** A child subtask a run asked for: asked again until its outcome comes (`delegated`). */
interface Delegation {
  readonly body: DelegateBody;
  asks: number;
  timer: Subscription | undefined;
  /** Its outcome, once it came. */
  outcome: DelegatedBody | undefined;
  /** Told the outcome when it comes, at once (in the scheduler's time, not a microtask later). */
  readonly listeners: Set<(outcome: DelegatedBody) => void>;
}

/** A result sent and not yet `received` by the coordinator: sent again until it is, a bounded number of times. */
interface Unconfirmed {
  readonly attempt: number;
  readonly to: string;
  readonly body: ResultBody;
  retransmissions: number;
  timer: Subscription | undefined;
  /** Its `done` word to the coordinator (a result through relays), due `ackDelayMs` after it unless it is confirmed first. */
  word: Subscription | undefined;
}

/** Releases the timers an unconfirmed result holds. */
function release(sent: Unconfirmed): void {
  sent.timer?.unsubscribe();
  sent.word?.unsubscribe();
}

/** Bounds kept on the `rto` an assignment carries (it is not signed: a relay could set anything). */
const MIN_RESULT_RTO_MS = 1;
const MAX_RESULT_RTO_MS = 60_000;
/**
 * Retransmissions of a result after which the agent gives up on it, so that a coordinator that
 * went away is not sent to for ever. A result is the whole of the work: it is given long, about
 * 200 waits of up to 8 rto (half a minute at a 20 ms rto, about the coordinator's progress
 * deadline), which no loss short of a partition exhausts.
 */
const MAX_RESULT_RETRANSMISSIONS = 200;
/**
 * Longest wait between two sends of a result, unless the rto itself is longer: the first
 * assignments carry the coordinator's guess from before it measured anything (a third of its
 * acknowledgement timeout, 1 s by default), and a result lost then must still arrive well within
 * the progress deadline (30 sends in 30 s, not 11).
 */
const MAX_RESULT_WAIT_MS = 1000;

/** What the process measures of itself, read at every beat; or a standing value (a simulation's). */
export type UsageSource = AgentUsage | (() => AgentUsage | undefined);

/**
 * Runs one in-process agent on a network: liveness heartbeats, relaying, a bounded number of
 * subtasks at once with a queue behind them, results back along their reply path. Faults are
 * methods (`crash`, `hang`, `restart`), so simulations and tests inject them where they happen.
 *
 * Attempts: per subtask the host keeps the highest attempt it was given (or told to cancel) since it
 * last started; an assign below it is ignored, a newer one replaces the older run or queue entry,
 * so it never runs a superseded attempt nor one (subtask, attempt) twice. A restart forgets (the
 * coordinator hands out new attempts for a restarted agent's work).
 *
 * Loss: an assign of the attempt it already holds is the coordinator's retransmission (its
 * acknowledgement was lost, or the first copy arrived late): a running or queued attempt is
 * acknowledged again at once, a finished one whose result is not yet confirmed has its result sent
 * again; anything else is ignored. A result goes again every `rto` (the coordinator's estimate its
 * latest assignment carried; backed off as `retransmitDelay` does) until the coordinator says it was
 * `received`, at most {@link MAX_RESULT_RETRANSMISSIONS} times: a lost result costs about one round
 * trip, not a progress timeout. Each unconfirmed result holds one timer, released when it is
 * confirmed, cancelled, superseded, given up, or the host stops.
 */
export class AgentHost {
  private agent: InProcessAgent;
  private stateValue: HostState = 'crashed';
  private inbox: Subscription | undefined;
  private beat: Subscription | undefined;
  private concurrency: number;
  private readonly running = new Map<string, Running>();
  /** The queue, FIFO: a Map keeps insertion order and finds a subtask's entry in O(1). */
  private readonly waiting = new Map<string, Running>();
  /**
   * Highest attempt seen per subtask in this incarnation, assigned or cancelled: an assign at or
   * below it is a duplicate, a stale one, or overtaken by its cancel, and is not run.
   */
  private readonly attempts = new Map<string, number>();
  /** Results sent and not yet confirmed, by work key (at most one per subtask: its latest attempt's). */
  private readonly unconfirmed = new Map<string, Unconfirmed>();
  /** The coordinator's retransmission timeout for this agent, as its latest assignment said (clamped). */
  private resultRtoMs: number | undefined;
  private readonly lastHeard = new Map<string, number>();
  private incarnation = 0;
  private pumping = false;
  /** Heartbeat targets the coordinator sent (`peers`), for a host without `heartbeatTargets`. */
  private told: readonly string[] | undefined;
  private intervalMs: number;
  private jitterMs: number;
  private ackDelayMs: number;
  private usageSource: UsageSource | undefined;
  /** Usage has gone out in this incarnation: from then on every beat carries it (0 when nothing is used). */
  private usageSent = false;

  constructor(
    agent: InProcessAgent,
    private readonly options: AgentHostOptions,
  ) {
    const { coordinatorId, heartbeatIntervalMs, heartbeatJitterMs, random, heartbeatTargets, peerSilenceMs } = options;
    requireId('coordinatorId', coordinatorId);
    requireNumber('heartbeatIntervalMs', heartbeatIntervalMs, 0, true);
    requireNumber('heartbeatJitterMs', heartbeatJitterMs, 0);
    if (random === null || typeof random !== 'object' || typeof random.next !== 'function') {
      throw new RangeError(`random must be a Random (createRandom(seed)), got ${String(random)}`);
    }
    requireFunction('heartbeatTargets', heartbeatTargets);
    if (peerSilenceMs !== undefined) requireNumber('peerSilenceMs', peerSilenceMs, 0);
    if (options.firstIncarnation !== undefined && !Number.isSafeInteger(options.firstIncarnation)) {
      throw new RangeError(`firstIncarnation must be a safe integer, got ${String(options.firstIncarnation)}`);
    }
    this.incarnation = (options.firstIncarnation ?? 1) - 1;
    this.intervalMs = heartbeatIntervalMs;
    this.jitterMs = heartbeatJitterMs;
    this.ackDelayMs = options.ackDelayMs === undefined ? 0 : requireNumber('ackDelayMs', options.ackDelayMs, 0);
    this.agent = agent;
    this.concurrency = requireSlots('concurrency', agent.concurrency ?? 1);
  }

  get id(): string {
    return this.agent.id;
  }

  get capabilities(): readonly string[] {
    return this.agent.capabilities;
  }

  get state(): HostState {
    return this.stateValue;
  }

  /** Busy share of the agent's slots. */
  get load(): number {
    return (this.running.size + this.waiting.size) / this.concurrency;
  }

  /** Slots the host runs at once (lowered by healing to reduce load). */
  get slots(): number {
    return this.concurrency;
  }

  /** The interval it beats at now. */
  get heartbeatIntervalMs(): number {
    return this.intervalMs;
  }

  /**
   * Beats at `intervalMs` from now on (the beat due is rescheduled), its jitter the same share of the interval as
   * before: an agent in another process takes the coordinator's interval, told at hello, so that
   * its rhythm is the one the detector expects.
   */
  setHeartbeatInterval(intervalMs: number): void {
    requireNumber('intervalMs', intervalMs, 0, true);
    this.jitterMs = (this.jitterMs / this.intervalMs) * intervalMs;
    this.intervalMs = intervalMs;
    if (this.beat === undefined) return;
    // The beat due at the old rhythm is rescheduled at the new one.
    this.beat.unsubscribe();
    this.scheduleBeat();
  }

  /** Acknowledges assignments this long after they arrive from now on (see `ackDelayMs`). */
  setAckDelay(ms: number): void {
    this.ackDelayMs = requireNumber('ackDelayMs', ms, 0);
  }

  /**
   * What the process uses of its resources, sent with every beat beside what running handlers
   * report (`context.usage`; the highest goes): a function read at each beat (a sampler of memory,
   * CPU, event-loop delay), a fixed value, or undefined for none. Kept across restarts.
   */
  setUsage(source: UsageSource | undefined): void {
    if (source !== undefined && typeof source !== 'function') requireUsage(source.fraction, source.what);
    this.usageSource = source;
  }

  /** The highest of the process's usage and its running handlers' reports; undefined when none has any. */
  get usage(): AgentUsage | undefined {
    const source = this.usageSource;
    let top = typeof source === 'function' ? source() : source;
    for (const run of this.running.values()) if (run.usage !== undefined && (top === undefined || run.usage.fraction > top.fraction)) top = run.usage;
    return top;
  }

  /** Rounded down, at least 1. Lowering it stops nothing: running work finishes, queued work waits. */
  setSlots(slots: number): void {
    this.concurrency = requireSlots('slots', slots);
    this.pump();
  }

  /** Joins the network and starts beating (nothing if it is on the network already: running or hung). */
  start(): void {
    if (this.stateValue === 'running' || this.stateValue === 'hung') return;
    const { network } = this.options;
    this.stateValue = 'running';
    this.incarnation++;
    // An inbox that errors (a transport refused for good) stops the host as a crash would.
    this.inbox = network.join(this.id).subscribe({ next: envelope => this.receive(envelope), error: () => this.crash() });
    this.sendBeat();
    this.scheduleBeat();
  }

  /** Stops everything at once: beats, relaying, running work. What was running is lost. */
  crash(): void {
    if (this.stateValue === 'crashed' || this.stateValue === 'left') return;
    this.stateValue = 'crashed';
    this.halt();
  }

  /** Keeps beating but stops working and relaying: only a progress timeout can tell. */
  hang(): void {
    if (this.stateValue !== 'running') return;
    this.stateValue = 'hung';
    for (const run of this.running.values()) {
      run.subscription?.unsubscribe();
      stopAsking(run);
    }
  }

  /** Crash and come back fresh, from `agent` (a new instance from its factory) if given. */
  restart(agent: InProcessAgent = this.agent): void {
    this.crash();
    this.agent = agent;
    this.concurrency = requireSlots('concurrency', agent.concurrency ?? 1);
    this.start();
  }

  /** Leaves cleanly: says so to the coordinator, drops queued work (the coordinator reassigns it). */
  leave(): void {
    if (this.stateValue === 'crashed' || this.stateValue === 'left') return;
    this.send('heartbeat', this.options.coordinatorId, { load: this.load, status: 'leaving', incarnation: this.incarnation });
    this.stateValue = 'left';
    this.halt();
  }

  private halt(): void {
    this.inbox?.unsubscribe();
    this.beat?.unsubscribe();
    this.inbox = this.beat = undefined;
    for (const run of this.running.values()) {
      run.subscription?.unsubscribe();
      run.ack?.unsubscribe();
      stopAsking(run);
    }
    for (const run of this.waiting.values()) run.ack?.unsubscribe();
    for (const sent of this.unconfirmed.values()) release(sent);
    this.running.clear();
    this.waiting.clear();
    this.unconfirmed.clear();
    this.resultRtoMs = undefined;
    this.attempts.clear();
    this.lastHeard.clear();
    this.usageSent = false;
  }

  private scheduleBeat(): void {
    const { random, network } = this.options;
    const delay = Math.max(1, Math.round(this.intervalMs + (random.next() * 2 - 1) * this.jitterMs));
    this.beat = network.scheduler.schedule(() => {
      if (this.stateValue === 'crashed' || this.stateValue === 'left') return;
      this.sendBeat();
      this.scheduleBeat();
    }, delay);
  }

  private sendBeat(): void {
    const targets = this.options.heartbeatTargets?.() ?? this.told ?? [this.options.coordinatorId];
    const usage = this.usage ?? (this.usageSent ? NO_USAGE : undefined);
    if (usage !== undefined) this.usageSent = true;
    const body: HeartbeatBody = usage === undefined ? { load: this.load, incarnation: this.incarnation } : { load: this.load, incarnation: this.incarnation, usage };
    for (const to of targets) if (to !== this.id) this.send('heartbeat', to, body);
  }

  private send<K extends MessageKind>(kind: K, to: string, body: MessageBodies[K]): void {
    this.options.network.send({ from: this.id, to, kind, body });
  }

  private receive(envelope: Envelope): void {
    if (envelope.kind === 'heartbeat') {
      this.lastHeard.set(envelope.from, this.options.network.scheduler.now());
      return;
    }
    if (this.stateValue !== 'running') return; // a hung process handles nothing
    const routed = envelope.body as Partial<Routed>;
    const via = routed.via;
    const hop = routed.hop ?? 0;
    if (via !== undefined && via.length > hop) {
      // A result in this agent's name that came from elsewhere is a peer's forgery: no route
      // passes an agent's results back through the agent itself, and passed on it would leave as
      // its own (from its connection, signed with its key).
      if (envelope.kind === 'result' && (routed as Partial<ResultBody>).agentId === this.id) return;
      // A relay hop: pass it on, one counted message further. The body itself goes on, its `hop`
      // advanced (O(1) per hop, nothing copied): a sender that keeps a body to send again sends copies.
      (routed as { hop?: number }).hop = hop + 1;
      this.options.network.send({ from: this.id, to: via[hop] as string, kind: envelope.kind, body: routed });
      return;
    }
    switch (envelope.kind) {
      case 'assign':
        return this.accept(envelope.body as AssignBody);
      case 'cancel':
        return this.cancel(envelope.body as CancelBody);
      case 'received':
        if (envelope.from === this.options.coordinatorId) this.confirmed(envelope.body as ReceivedBody);
        return;
      case 'delegated':
        if (envelope.from === this.options.coordinatorId) this.delegated(envelope.body as DelegatedBody);
        return;
      case 'peers':
        if (envelope.from === this.options.coordinatorId) this.told = (envelope.body as PeersBody).targets;
        return;
      case 'vote-request': {
        const { proposalId, suspect } = envelope.body as VoteRequestBody;
        const heard = this.lastHeard.get(suspect);
        const silence = this.options.peerSilenceMs ?? 3 * this.intervalMs + this.jitterMs;
        // It is alive itself, whatever it has heard.
        const gone = suspect !== this.id && (heard === undefined || this.options.network.scheduler.now() - heard > silence);
        this.send('vote', envelope.from, { proposalId, accept: gone });
        return;
      }
      default:
        return; // other kinds are for coordinators
    }
  }

  private accept(body: AssignBody): void {
    // The freshest estimate times every unconfirmed result: the first assignments carry the
    // coordinator's guess from before it measured anything, the later ones what it measured.
    if (body.rto !== undefined) this.resultRtoMs = Math.min(MAX_RESULT_RTO_MS, Math.max(MIN_RESULT_RTO_MS, body.rto));
    const key = workKey(body.taskId, body.subtask.id);
    const known = this.attempts.get(key);
    if (known !== undefined && body.attempt === known) return this.duplicate(key, body.attempt, body.copy);
    // A superseded attempt, or one already cancelled.
    if (known !== undefined && body.attempt < known) return;
    this.attempts.set(key, body.attempt);
    this.drop(key); // an older attempt, running or queued: its result would be stale
    // Every field from the start, in one order: one shape, no property storage grown as the run goes on.
    const run: Running = { key, taskId: body.taskId, subtask: body.subtask, attempt: body.attempt, replyPath: body.replyPath, subscription: undefined, ack: undefined, usage: undefined, confirms: body.rto !== undefined, delegations: undefined, receivedAt: this.options.network.scheduler.now(), acked: false };
    // A free slot and nothing queued before it: it starts at once, as `pump` would start it, without
    // a trip through the queue (a map entry added and deleted, its table reallocated, per run).
    const now = !this.pumping && this.waiting.size === 0 && this.running.size < this.concurrency;
    if (!now) this.waiting.set(key, run);
    // Acknowledge (progress 0): the coordinator then knows the assignment arrived, and watches this
    // agent's progress rather than the link. Delayed, a short subtask's result says it instead —
    // but never past a quarter of the coordinator's wait for it (the rto the assignment carries):
    // once it has measured this agent, a hold of ackDelayMs would have it sent again.
    const delay = body.rto === undefined ? this.ackDelayMs : Math.min(this.ackDelayMs, body.rto / 4);
    if (delay === 0) this.acknowledge(run, body.copy);
    else
      run.ack = this.options.network.scheduler.schedule(() => {
        run.ack = undefined;
        if (this.stateValue === 'running' && (this.running.get(key) === run || this.waiting.get(key) === run)) this.acknowledge(run, body.copy);
      }, delay);
    if (now) {
      this.pumping = true;
      try {
        this.running.set(key, run);
        this.execute(run);
      } finally {
        this.pumping = false;
      }
    }
    this.pump();
  }

  /** Whole ms since `run`'s assignment arrived. */
  private heldMs(run: Running): number {
    return Math.max(0, Math.round(this.options.network.scheduler.now() - run.receivedAt));
  }

  /** Acknowledges `run`'s assignment (progress 0, naming the copy it answers). */
  private acknowledge(run: Running, copy: number | undefined): void {
    run.acked = true;
    this.send('progress', this.options.coordinatorId, ackBody(run, copy));
  }

  /**
   * The coordinator sent again an attempt this host holds: it has not heard the acknowledgement
   * (running or queued: acknowledged again, now) or the result (finished, unconfirmed: sent
   * again, now). Finished and confirmed, or cancelled: nothing to say. The acknowledgement names
   * the copy it answers (`copy`), so that the coordinator measures its round trip.
   */
  private duplicate(key: string, attempt: number, copy: number | undefined): void {
    const run = this.running.get(key) ?? this.waiting.get(key);
    if (run !== undefined && run.attempt === attempt) {
      run.ack?.unsubscribe();
      run.ack = undefined;
      this.acknowledge(run, copy);
      return;
    }
    const sent = this.unconfirmed.get(key);
    if (sent !== undefined && sent.attempt === attempt) this.send('result', sent.to, { ...sent.body });
  }

  /** The coordinator has the result: it is not sent again. */
  private confirmed({ taskId, subtaskId, attempt }: ReceivedBody): void {
    const key = workKey(taskId, subtaskId);
    const sent = this.unconfirmed.get(key);
    if (sent === undefined || sent.attempt !== attempt) return;
    release(sent);
    this.unconfirmed.delete(key);
  }

  /**
   * Keeps a result it sent until the coordinator confirms it, sending it again every timeout.
   * `onTheWay` (a result sent through relays) tells the coordinator straight away that it is on
   * its way, so that a relay that drops it is found out: at once, or — with `ackDelayMs` and a
   * coordinator that confirms — only if the confirmation has not come within `ackDelayMs`, as an
   * acknowledgement is delayed: a quick round trip costs no frame of its own; and again with
   * every retransmission.
   */
  private awaitConfirmation(key: string, attempt: number, to: string, body: ResultBody, confirms: boolean, onTheWay: (() => void) | undefined): void {
    const before = this.unconfirmed.get(key);
    if (before !== undefined) release(before);
    if (!confirms) {
      this.unconfirmed.delete(key);
      onTheWay?.();
      return;
    }
    const sent: Unconfirmed = { attempt, to, body, retransmissions: 0, timer: undefined, word: undefined };
    this.unconfirmed.set(key, sent);
    if (onTheWay !== undefined && this.ackDelayMs === 0) onTheWay();
    else if (onTheWay !== undefined) {
      sent.word = this.options.network.scheduler.schedule(() => {
        sent.word = undefined;
        if (this.unconfirmed.get(key) === sent && this.stateValue === 'running') onTheWay();
      }, this.ackDelayMs);
    }
    const arm = (): void => {
      const rto = this.resultRtoMs ?? MAX_RESULT_RTO_MS;
      sent.timer = this.options.network.scheduler.schedule(() => {
        sent.timer = undefined;
        if (this.unconfirmed.get(key) !== sent || this.stateValue !== 'running') return;
        if (sent.retransmissions >= MAX_RESULT_RETRANSMISSIONS) {
          release(sent);
          this.unconfirmed.delete(key);
          return;
        }
        sent.retransmissions++;
        this.send('result', sent.to, { ...sent.body });
        // Said again straight to the coordinator too: the first word may have been lost as the
        // result was, and with it the coordinator's asking for the result by its own resends.
        onTheWay?.();
        arm();
      }, retransmitDelay(rto, sent.retransmissions, Math.max(rto, MAX_RESULT_WAIT_MS)));
    };
    arm();
  }

  private cancel({ taskId, subtaskId, attempt }: CancelBody): void {
    const key = workKey(taskId, subtaskId);
    const known = this.attempts.get(key);
    if (known === undefined || known < attempt) this.attempts.set(key, attempt); // an assign it overtook stays cancelled
    if (known !== undefined && known <= attempt) this.drop(key);
    this.pump();
  }

  /** Stops and forgets the subtask's run or queued entry (a subtask has at most one of them), and its unconfirmed result. */
  private drop(key: string): void {
    const sent = this.unconfirmed.get(key);
    if (sent !== undefined) {
      release(sent);
      this.unconfirmed.delete(key);
    }
    const run = this.running.get(key);
    if (run !== undefined) {
      this.running.delete(key);
      run.subscription?.unsubscribe();
      run.ack?.unsubscribe();
      stopAsking(run);
    }
    this.waiting.get(key)?.ack?.unsubscribe();
    this.waiting.delete(key);
  }

  /**
   * A child subtask for the run (`context.delegate$`): asked of the coordinator now and again every
   * retransmission timeout, backed off to the heartbeat interval, until its outcome comes; emitted
   * then, at once. The same child asked twice in one run is one child.
   */
  private delegate$(run: Running, child: Subtask): Observable<unknown> {
    return new Observable<unknown>(subscriber => {
      if (child === null || typeof child !== 'object') throw new TypeError(`delegate takes a subtask ({ id, payload?, capabilities? }), got ${String(child)}`);
      requireId('subtask.id', child.id);
      const delegations = (run.delegations ??= new Map());
      let delegation = delegations.get(child.id);
      if (delegation === undefined) {
        if (this.stateValue !== 'running' || this.running.get(run.key) !== run) {
          throw new DOMException(`the run of ${run.subtask.id} (attempt ${run.attempt}) has ended: nothing to delegate for`, 'AbortError');
        }
        delegation = { body: { ...taskOf(run), subtaskId: run.subtask.id, attempt: run.attempt, subtask: child }, asks: 0, timer: undefined, outcome: undefined, listeners: new Set() };
        delegations.set(child.id, delegation);
        this.ask(run, delegation);
      }
      const tell = (outcome: DelegatedBody): void => {
        if (!outcome.ok) return subscriber.error(new Error(outcome.error ?? `child ${child.id} failed`));
        subscriber.next(outcome.value);
        subscriber.complete();
      };
      if (delegation.outcome !== undefined) return tell(delegation.outcome);
      const listeners = delegation.listeners;
      listeners.add(tell);
      return () => listeners.delete(tell);
    });
  }

  private ask(run: Running, delegation: Delegation): void {
    delegation.timer = undefined;
    if (delegation.outcome !== undefined || this.stateValue !== 'running' || this.running.get(run.key) !== run) return;
    this.send('delegate', this.options.coordinatorId, delegation.body);
    run.ack?.unsubscribe(); // the ask acknowledges the assignment
    run.ack = undefined;
    // Doubling from the rto up to the heartbeat interval: a lost ask costs a round trip, a long wait one ask a beat.
    const rto = this.resultRtoMs ?? MAX_RESULT_WAIT_MS;
    const wait = Math.max(rto, Math.min(this.intervalMs, rto * 2 ** Math.min(delegation.asks++, 30)));
    delegation.timer = this.options.network.scheduler.schedule(() => this.ask(run, delegation), wait);
  }

  /** A child's outcome for a run that asked for it; for anyone else (a run since ended, a stale attempt) nothing. */
  private delegated(body: DelegatedBody): void {
    const run = this.running.get(workKey(body.taskId, body.subtaskId));
    const delegation = run?.attempt === body.attempt ? run.delegations?.get(body.childId) : undefined;
    if (delegation === undefined || delegation.outcome !== undefined) return;
    delegation.outcome = body;
    delegation.timer?.unsubscribe();
    delegation.timer = undefined;
    for (const tell of [...delegation.listeners]) tell(body);
    delegation.listeners.clear();
  }

  private pump(): void {
    // Re-entrant calls (a handler that completes synchronously finishes inside execute) leave the
    // work to the loop already running: the stack stays flat however long the queue.
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.stateValue === 'running' && this.running.size < this.concurrency && this.waiting.size > 0) {
        const run = this.waiting.values().next().value as Running;
        this.waiting.delete(run.key);
        this.running.set(run.key, run);
        this.execute(run);
      }
    } finally {
      this.pumping = false;
    }
  }

  private execute(run: Running): void {
    // One object is the handler's context, the observer of its output and the teardown of its
    // run (no closure per run: with thousands of agents busy, what a run holds lives as long as
    // its work does, and the garbage collector copies it until then).
    const execution = new Execution(this, run, this.options.network.scheduler);
    let source;
    try {
      const output = this.agent.handle(run.subtask, execution);
      // Inside the try: a handler that returns neither an Observable nor a Promise fails its subtask.
      source = isObservable(output) ? output : from(output);
    } catch (err) {
      this.finish(execution, false, undefined, err instanceof Error ? err.message : String(err));
      return;
    }
    const subscription = source.subscribe(execution.observer);
    run.subscription = subscription;
    // Torn down before it finished (cancelled, revoked, left, crashed, hung): tell the handler why.
    subscription.add(execution);
    if (execution.settled) subscription.unsubscribe();
  }

  /** @internal The run of `execution` ended: its result goes back along its reply path (once, and only while it is still this host's run). */
  finish(execution: Execution, ok: boolean, value: unknown, error?: string): void {
    const run = execution.run;
    const { attempt, key } = run;
    if (execution.settled || this.running.get(key) !== run) return;
    execution.settled = true;
    this.running.delete(key);
    run.ack?.unsubscribe(); // the result (or, through relays, its `done`) acknowledges it
    run.ack = undefined;
    stopAsking(run);
    // Tear the handler down before its slot is reused: its finalisers run before the next starts.
    run.subscription?.unsubscribe();
    const first = run.replyPath[0] ?? this.options.coordinatorId;
    const direct = first === this.options.coordinatorId;
    const body = resultBody(run, this.id, ok, value, error);
    // Nothing acknowledged the assignment: what goes straight to the coordinator first does, and
    // says how long it was held until then (its retransmissions do not: they would say it late).
    this.send('result', first, direct && !run.acked ? { ...body, heldMs: this.heldMs(run) } : { ...body });
    // Through relays: the coordinator hears straight from it that it is on its way, so a relay that drops it is found out.
    const onTheWay = direct ? undefined : (): void => this.send('progress', this.options.coordinatorId, doneBody(run, run.acked ? undefined : this.heldMs(run)));
    this.awaitConfirmation(key, attempt, first, body, run.confirms, onTheWay);
    this.pump();
  }

  /** @internal Progress of a run (`context.heartbeat`), while it is still this host's run. */
  progressOf(run: Running, progress: number): void {
    if (this.stateValue !== 'running' || this.running.get(run.key) !== run) return;
    run.ack?.unsubscribe(); // progress acknowledges it
    run.ack = undefined;
    run.acked = true;
    this.send('progress', this.options.coordinatorId, progressBody(run, progress));
  }

  /** @internal What a run reports it uses (`context.usage`), while it is still this host's run. */
  usageOf(run: Running, fraction: number, what: string | undefined): void {
    requireUsage(fraction, what);
    if (this.running.get(run.key) === run) run.usage = what === undefined ? { fraction } : { fraction, what };
  }

  /** @internal A child subtask for a run (`context.delegate$`). */
  delegateFor(run: Running, child: Subtask): Observable<unknown> {
    return this.delegate$(run, child);
  }
}

/**
 * A run on its host: the context its handler gets, the observer of the handler's output and the
 * finaliser of its subscription, in one object. Its functions (`heartbeat`, `usage`, `delegate`,
 * `delegate$`) are made at first use, bound, so a handler may take them apart from the context;
 * most handlers (every simulated one) never ask, as they never ask for the `signal`.
 */
class Execution implements AgentContext {
  readonly agentId: string;
  readonly attempt: number;
  /** The run has ended (its result sent, or it failed): later output and a teardown say nothing. */
  settled = false;
  /** The handler's last value: the result when it completes. */
  last: unknown = undefined;
  /** Made when the handler first asks for its signal; asked after the run was torn down, it comes aborted already. */
  private abort: AbortController | undefined = undefined;
  private abortedFor: string | undefined = undefined;
  private bound: { heartbeat?: (progress?: number) => void; usage?: (fraction: number, what?: string) => void; delegate$?: (child: Subtask) => Observable<unknown>; delegate?: (child: Subtask) => Promise<unknown> } | undefined = undefined;
  /** What the handler's output is subscribed with (the context itself offers no `next`/`error`/`complete` to the handler). */
  readonly observer: Observer<unknown>;

  constructor(
    private readonly host: AgentHost,
    readonly run: Running,
    readonly scheduler: SchedulerLike,
  ) {
    this.agentId = host.id;
    this.attempt = run.attempt;
    this.observer = new ExecutionObserver(this);
  }

  get signal(): AbortSignal {
    if (this.abort === undefined) {
      this.abort = new AbortController();
      if (this.abortedFor !== undefined) this.abort.abort(new DOMException(this.abortedFor, 'AbortError'));
    }
    return this.abort.signal;
  }

  get heartbeat(): (progress?: number) => void {
    const bound = (this.bound ??= {});
    return (bound.heartbeat ??= (progress = 0): void => this.host.progressOf(this.run, progress));
  }

  get usage(): (fraction: number, what?: string) => void {
    const bound = (this.bound ??= {});
    return (bound.usage ??= (fraction: number, what?: string): void => this.host.usageOf(this.run, fraction, what));
  }

  get delegate$(): (child: Subtask) => Observable<unknown> {
    const bound = (this.bound ??= {});
    return (bound.delegate$ ??= (child: Subtask): Observable<unknown> => this.host.delegateFor(this.run, child));
  }

  get delegate(): (child: Subtask) => Promise<unknown> {
    const bound = (this.bound ??= {});
    return (bound.delegate ??= (child: Subtask): Promise<unknown> => {
      const outcome = lastValueFrom(this.host.delegateFor(this.run, child));
      // A handler that does not wait for its child must not bring the process down when the child fails.
      outcome.catch(() => undefined);
      return outcome;
    });
  }

  finish(ok: boolean, value: unknown, error?: string): void {
    this.host.finish(this, ok, value, error);
  }

  /** The finaliser of the run's subscription: torn down before it finished, the handler is told why. */
  unsubscribe(): void {
    if (this.settled) return;
    this.abortedFor = abortReason(this.host.state, this.run.subtask.id, this.attempt);
    this.abort?.abort(new DOMException(this.abortedFor, 'AbortError'));
  }
}

/** The observer of a handler's output: its last value is the result, an error fails the run. */
class ExecutionObserver implements Observer<unknown> {
  constructor(private readonly execution: Execution) {}

  next(value: unknown): void {
    this.execution.last = value;
  }

  error(err: unknown): void {
    this.execution.finish(false, undefined, err instanceof Error ? err.message : String(err));
  }

  complete(): void {
    this.execution.finish(true, this.execution.last);
  }
}

// The bodies a run's messages carry, written out field by field: an object spread followed by more
// fields (`{ ...taskOf(run), subtaskId, … }`) costs V8 a copy that then grows, hundreds of bytes to
// a few kilobytes per message, where a literal costs tens. Fields in the same order either way.

/** Progress of `run` (`context.heartbeat`). */
function progressBody(run: Running, progress: number): ProgressBody {
  const { taskId, attempt } = run;
  const subtaskId = run.subtask.id;
  return taskId === undefined ? { subtaskId, attempt, progress } : { taskId, subtaskId, attempt, progress };
}

/** The acknowledgement of `run`'s assignment (progress 0), naming the copy it answers: the assignment's (absent: the first, 0). */
function ackBody(run: Running, copy: number | undefined): ProgressBody {
  const { taskId, attempt } = run;
  const subtaskId = run.subtask.id;
  return taskId === undefined ? { subtaskId, attempt, progress: 0, copy: copy ?? 0 } : { taskId, subtaskId, attempt, progress: 0, copy: copy ?? 0 };
}

/** `run` has ended and its result is on its way through relays; `heldMs` when nothing acknowledged its assignment before. */
function doneBody(run: Running, heldMs: number | undefined): ProgressBody {
  const { taskId, attempt } = run;
  const subtaskId = run.subtask.id;
  const body: { -readonly [K in keyof ProgressBody]: ProgressBody[K] } = taskId === undefined ? { subtaskId, attempt, progress: 1, done: true } : { taskId, subtaskId, attempt, progress: 1, done: true };
  if (heldMs !== undefined) body.heldMs = heldMs;
  return body;
}

/** The result of `run`, routed along its reply path itself, one hop travelled (to its first entry): not a copy of the rest of it. */
function resultBody(run: Running, agentId: string, ok: boolean, value: unknown, error: string | undefined): ResultBody {
  const { taskId, attempt } = run;
  const subtaskId = run.subtask.id;
  const via = run.replyPath;
  const body: { -readonly [K in keyof ResultBody]: ResultBody[K] } = taskId === undefined ? { subtaskId, attempt, agentId, ok, via } : { taskId, subtaskId, attempt, agentId, ok, via };
  if (via.length > 0) body.hop = 1;
  if (ok) body.value = value;
  else body.error = error ?? 'failed';
  return body;
}

/** Stops asking for the run's children (it ended, or was torn down): their timers are released. */
function stopAsking(run: Running): void {
  if (run.delegations === undefined) return;
  for (const delegation of run.delegations.values()) {
    delegation.timer?.unsubscribe();
    delegation.timer = undefined;
  }
}

/** What a host keeps its work by: the subtask within its task (subtask ids are unique per task only). */
function workKey(taskId: string | undefined, subtaskId: string): string {
  return taskId === undefined ? subtaskId : `${taskId}\u0000${subtaskId}`;
}

/** The task field its messages about `run` carry: the assignment's, echoed. */
function taskOf(run: Running): { taskId?: string } {
  return run.taskId === undefined ? {} : { taskId: run.taskId };
}

const NO_USAGE: AgentUsage = Object.freeze({ fraction: 0 });

function requireUsage(fraction: unknown, what: unknown): void {
  if (typeof fraction !== 'number' || !Number.isFinite(fraction) || fraction < 0) throw new RangeError(`usage fraction must be a finite number >= 0, got ${String(fraction)}`);
  if (what !== undefined && (typeof what !== 'string' || what.length > 64)) throw new RangeError(`usage what must be a string of at most 64 characters, got ${String(what)}`);
}

/** Why a run was torn down before it finished, from the host's state at that moment. */
function abortReason(state: HostState, subtaskId: string, attempt: number): string {
  switch (state) {
    case 'left':
      return `the agent is leaving: attempt ${attempt} of ${subtaskId} is handed back`;
    case 'crashed':
      return `the agent stopped: attempt ${attempt} of ${subtaskId} is abandoned`;
    case 'hung':
      return `the agent hung: attempt ${attempt} of ${subtaskId} is abandoned`;
    default:
      return `attempt ${attempt} of ${subtaskId} was cancelled (revoked, superseded, or no longer needed)`;
  }
}
