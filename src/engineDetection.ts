import { Subject, Subscription, type SchedulerLike } from 'rxjs';
import {
  consensusWindow,
  learnedDeadline,
  type AttemptSignal,
  type Decision,
  type DeliveryInput,
  type Heartbeat,
  type LatencyInput,
  type PhiAccrualDetectorOptions,
  type SilentAttempt,
  type UsageInput,
  type Vote,
  type WaitForEdge,
} from '../operators/index.js';
import type { Network } from '../streams/network.js';
import { AckTracker } from './ackTracker.js';
import { detectFaults, type FaultEvent } from './faultDetector.js';
import { COORDINATOR } from './topology.js';

/** How agents' liveness is judged: phi accrual over their beats, or a fixed deadline after the last one. */
export type DetectorOptions = ({ readonly kind: 'phi' } & PhiAccrualDetectorOptions) | { readonly kind: 'deadline'; readonly timeoutMs: number };

/** What the detection wiring needs: the detector, the attempt deadlines and the consensus window. */
export interface DetectionOptions {
  readonly detector: DetectorOptions;
  /**
   * The least progress deadline of an attempt, and its deadline until its task has finished
   * enough work to learn one (`learnedDeadline`'s floor).
   */
  readonly progressTimeoutMs: number;
  /**
   * An assignment not acknowledged within this, its retransmissions included: lost on the way for
   * good, or its agent takes nothing in. Each single wait is learned from the agent's round trips
   * (see `AckTracker`).
   */
  readonly ackTimeoutMs: number;
  readonly consensusWindowMs: number;
  /** A circular wait among agents this long is a protocol_deadlock (`waitForCycles`). */
  readonly deadlockMs: number;
  readonly scheduler: SchedulerLike;
}

/** Where detection reports: each verdict once, as the operators reach it. */
export interface DetectionVerdicts {
  /** A fault of an agent or a link (or its resolution), from the fault detector. */
  fault(fault: FaultEvent): void;
  /** The attempt `taskId NUL subtaskId#attempt` has made no progress within its progress deadline. */
  silent(silence: SilentAttempt): void;
  /** A longer deadline learned since puts the silent attempt back within it. */
  cleared(attemptKey: string): void;
  /**
   * The attempt `taskId NUL subtaskId#attempt` was not acknowledged within its agent's
   * retransmission timeout: send it again if `retransmit` allows, else give it up.
   */
  ackTimeout(attemptKey: string): void;
  /** The peers decided on a suspicion put to them with `askPeers`. */
  verdict(decision: Decision): void;
}

/**
 * The engine's failure detection: the signals it feeds (beats, usage, latencies, deliveries, the
 * acknowledgement and progress of each attempt, peers' votes) and the operators that turn them
 * into verdicts — the fault detector, a retransmission timeout per attempt for its
 * acknowledgement (learned from the agent's round trips, `AckTracker`) and a deadline for its
 * progress, and a consensus window for suspicions that peers confirm. It decides nothing about
 * agents or work: the verdicts go to whoever `wire`d it.
 */
export class EngineDetection {
  private readonly heartbeats = new Subject<Heartbeat>();
  private readonly latencies = new Subject<LatencyInput>();
  private readonly deliveries = new Subject<DeliveryInput>();
  /** Usage the agents' heartbeats carry: one series per agent, whatever resource is the highest. */
  private readonly usage = new Subject<UsageInput>();
  private readonly progress = new Subject<AttemptSignal>();
  /** Wait-for edges between agents whose slots all wait for children. */
  private readonly waits = new Subject<WaitForEdge>();
  private readonly votes = new Subject<Vote>();
  private readonly voters = new Subject<readonly string[]>();
  private proposals = 0;
  /** What each agent was last told its retransmission timeout is (see `rtoFor`). */
  private readonly told = new Map<string, number>();
  /** Suspects asked whether they are gone (see `probe`), by proposal id. */
  private readonly probes = new Map<string, Probe>();
  private decide: (decision: Decision) => void = () => undefined;
  /** Assignments waiting for their acknowledgement, and the round trips their waits are learned from. */
  private readonly acks: AckTracker;
  private overdue: (attemptKey: string) => void = () => undefined;

  constructor(
    private readonly options: DetectionOptions,
    private readonly network: Pick<Network, 'send'>,
  ) {
    this.acks = new AckTracker({ scheduler: options.scheduler, ackTimeoutMs: options.ackTimeoutMs, overdue: attemptKey => this.overdue(attemptKey) });
  }

  /** Subscribes the detectors; their verdicts go to `verdicts`. The subscriptions are the caller's to end. */
  wire(verdicts: DetectionVerdicts): Subscription[] {
    const { detector, progressTimeoutMs, consensusWindowMs, scheduler } = this.options;
    const faults = detectFaults(
      { heartbeats: this.heartbeats, latencies: this.latencies, deliveries: this.deliveries, usage: this.usage, waits: this.waits },
      // A slow agent is one slower than its peers: a slowdown everyone shares (saturation) is no one's fault.
      { detector, degradation: { relativeTo: 'peers' }, deadlock: { minDurationMs: this.options.deadlockMs }, scheduler },
    );
    const subscriptions = [
      faults.subscribe(fault => verdicts.fault(fault)),
      // Progress: a deadline per attempt, keyed `subtask#attempt`, learned per task from how long
      // its finished attempts kept silent: a silent attempt is suspected of hanging.
      this.progress.pipe(learnedDeadline({ floorMs: progressTimeoutMs, scheduler })).subscribe(verdict => {
        if (verdict.type === 'silent') verdicts.silent(verdict);
        else verdicts.cleared(verdict.key);
      }),
      this.votes.pipe(consensusWindow({ windowMs: consensusWindowMs, voters: this.voters, scheduler })).subscribe(d => verdicts.verdict(d)),
      // Acknowledgement: one retransmission timer per assignment until its first answer.
      new Subscription(() => {
        this.overdue = () => undefined;
        this.decide = () => undefined;
        this.acks.clear();
        for (const probe of this.probes.values()) probe.timer?.unsubscribe();
        this.probes.clear();
      }),
    ];
    this.overdue = attemptKey => verdicts.ackTimeout(attemptKey);
    this.decide = decision => verdicts.verdict(decision);
    return subscriptions;
  }

  /** A liveness beat of the agent (or the primer given when it joins). */
  beat(agentId: string): void {
    this.heartbeats.next({ agentId });
  }

  /** The agent's detector forgets it: it left, or a new incarnation starts it over. */
  forget(agentId: string): void {
    this.heartbeats.next({ agentId, status: 'leaving' });
  }

  /** The highest resource usage its heartbeat reported, a fraction. */
  usageOf(agentId: string, fraction: number): void {
    this.usage.next({ agentId, usage: fraction });
  }

  /** The agent left: its usage series ends. */
  usageEnded(agentId: string): void {
    this.usage.next({ agentId, left: true });
  }

  /** How long an attempt of the agent took, assignment to result. */
  latency(agentId: string, latencyMs: number): void {
    this.latencies.next({ agentId, latencyMs });
  }

  /** An agent starts or stops waiting for another (see `Delegations`). */
  wait(edge: WaitForEdge): void {
    this.waits.next(edge);
  }

  /** A delivery over `link` (`from->to`) arrived or was lost. */
  delivery(link: string, ok: boolean): void {
    this.deliveries.next({ link, ok });
  }

  /** An attempt was sent to `agentId` over `hops` messages: its wait for the acknowledgement (straight back) starts. */
  awaitAck(attemptKey: string, agentId: string, hops = 1): void {
    this.acks.sent(attemptKey, agentId, hops + 1);
  }

  /**
   * The attempt's acknowledgement is overdue: true when it may be sent again (the caller sends
   * the same assignment, same attempt, now), false when it is given up.
   */
  retransmit(attemptKey: string): boolean {
    return this.acks.retransmit(attemptKey);
  }

  /** The attempt's acknowledgement (or its result) came, answering send `copy` if it says, after the agent held it `heldMs`: a round-trip sample, and the wait ends. */
  answered(attemptKey: string, copy?: number, heldMs?: number): void {
    this.acks.answered(attemptKey, copy, heldMs);
  }

  /** The attempt's acknowledgement no longer matters (revoked, requeued, ended): nothing is measured. */
  acked(attemptKey: string): void {
    this.acks.forget(attemptKey);
  }

  /** Retransmissions of the attempt's assignment so far (undefined once answered or given up). */
  retransmissionsOf(attemptKey: string): number | undefined {
    return this.acks.retransmissionsOf(attemptKey);
  }

  /**
   * How long a result the agent announced (`done`) is waited for before a relay is taken to keep
   * it back: {@link PROBE_SENDS} of the agent's retransmission timeouts (it sends the result again
   * every timeout until it is received), and `ackTimeoutMs` at least.
   */
  resultPatienceMs(agentId: string): number {
    return Math.max(this.options.ackTimeoutMs, PROBE_SENDS * (this.told.get(agentId) ?? this.acks.rtoOf(agentId)));
  }

  /**
   * The retransmission timeout to tell the agent in an assignment, whole ms: it times the agent's
   * retransmissions of its results by it. Remembered per agent, so that the wait for a result
   * (`resultPatienceMs`) fits what the agent was told. `hops`: the messages the assignment crosses
   * (a round trip through relays is longer before anything of this agent was measured).
   */
  rtoFor(agentId: string, hops = 1): number {
    const rto = Math.ceil(this.acks.rtoOf(agentId, hops + 1));
    this.told.set(agentId, rto);
    return rto;
  }

  /** The agent's retransmission timeout now, ms: what a message to it and its answer should take, over `legs` messages in all (default: straight there and back). */
  rtoOf(agentId: string, legs?: number): number {
    return this.acks.rtoOf(agentId, legs);
  }

  /** An attempt of the task was sent: its progress deadline starts. */
  attemptStarted(attemptKey: string, taskId: string): void {
    this.progress.next({ type: 'start', key: attemptKey, group: taskId });
  }

  /** The attempt made progress: its progress deadline starts over. */
  progressed(attemptKey: string): void {
    this.progress.next({ type: 'progress', key: attemptKey });
  }

  /** The attempt is over (`ok`: it finished, and teaches its task's deadline): its progress is no longer watched. */
  attemptEnded(attemptKey: string, ok: boolean): void {
    this.progress.next({ type: 'end', key: attemptKey, ok });
  }

  /** The task ended: what was learned of it is dropped. */
  taskClosed(taskId: string): void {
    this.progress.next({ type: 'close', group: taskId });
  }

  /** A peer's vote on a proposal put by `askPeers`, or a suspect's answer to its `probe`. */
  vote(proposalId: string, voterId: string, accept: boolean): void {
    const probe = this.probes.get(proposalId);
    if (probe !== undefined) {
      if (voterId === probe.suspect) this.endProbe(proposalId, probe, true);
      return;
    }
    this.votes.next({ proposalId, voterId, accept });
  }

  /**
   * Star, ring, hierarchical: a suspicion is put to the suspect itself before it is declared down
   * (SWIM's suspicion, which the suspect refutes). Its beats may only have been lost: at 30 %
   * loss seven beats in a row are lost about once in 4,500, and phi cannot tell that silence from
   * a crash. It is asked whether it is gone (a `vote-request` about itself, which a live agent
   * answers "no") every retransmission timeout, {@link PROBE_SENDS} times, within
   * `consensusWindowMs` at most: about a third of a second for an agent in this process. The
   * outcome comes as a decision to the verdicts' `verdict`: `rejected` (it answered: alive) or
   * `timeout` (silent throughout: down). A crash is still suspected the moment phi says so; only
   * the verdict, and what it moves, waits for the window.
   */
  probe(suspect: string): void {
    for (const open of this.probes.values()) if (open.suspect === suspect) return; // asked already
    const proposalId = `probe:${suspect}:${++this.proposals}`;
    const everyMs = this.acks.rtoOf(suspect);
    const windowMs = Math.min(this.options.consensusWindowMs, PROBE_SENDS * everyMs);
    const probe: Probe = { suspect, openedAt: this.options.scheduler.now(), everyMs, windowMs, timer: undefined };
    this.probes.set(proposalId, probe);
    this.sendProbe(proposalId, probe);
  }

  /** One probe; the next one rto later (no back-off: a probe is rare, and it is the tail that matters), or the end of the window. */
  private sendProbe(proposalId: string, probe: Probe): void {
    const { scheduler } = this.options;
    const elapsed = scheduler.now() - probe.openedAt;
    if (elapsed >= probe.windowMs) return this.endProbe(proposalId, probe, false);
    this.network.send({ from: COORDINATOR, to: probe.suspect, kind: 'vote-request', body: { proposalId, suspect: probe.suspect } });
    probe.timer = scheduler.schedule(() => {
      probe.timer = undefined;
      if (this.probes.get(proposalId) === probe) this.sendProbe(proposalId, probe);
    }, Math.max(1, Math.ceil(Math.min(probe.everyMs, probe.windowMs - elapsed)))); // whole ms: a fraction may not advance a clock
  }

  private endProbe(proposalId: string, probe: Probe, answered: boolean): void {
    probe.timer?.unsubscribe();
    this.probes.delete(proposalId);
    const decidedAt = this.options.scheduler.now();
    this.decide({
      proposalId,
      outcome: answered ? 'rejected' : 'timeout',
      yes: [],
      no: answered ? [probe.suspect] : [],
      missing: answered ? [] : [probe.suspect],
      openedAt: probe.openedAt,
      decidedAt,
    });
  }

  /** Mesh: the live peers vote on the suspicion within a consensus window (none: the coordinator's word stands). */
  askPeers(suspect: string, peers: readonly string[]): void {
    const proposalId = `down:${suspect}:${++this.proposals}`;
    this.voters.next(peers);
    for (const peer of peers) this.network.send({ from: COORDINATOR, to: peer, kind: 'vote-request', body: { proposalId, suspect } });
    if (peers.length === 0) this.votes.next({ proposalId, voterId: COORDINATOR, accept: true });
  }
}

/** The agent a decision of `askPeers` or `probe` is about. */
export function suspectOf(decision: Decision): string {
  return decision.proposalId.split(':')[1] as string;
}

/** Whether the decision is the outcome of a `probe` of the suspect itself rather than its peers' vote. */
export function isProbe(decision: Decision): boolean {
  return decision.proposalId.startsWith('probe:');
}

/**
 * Probes of a suspect before it is declared down: at 30 % loss a probe and its answer both get
 * through with probability 0.49, and 16 tries all fail about once in 50,000.
 */
export const PROBE_SENDS = 16;

/** The loss per message that {@link PROBE_SENDS} and {@link triesOver} are sized for. */
const SIZED_FOR_LOSS = 0.3;

/**
 * Tries of a round trip of `legs` messages that all fail, at 30 % loss per message, no more often
 * than {@link PROBE_SENDS} tries of a direct one (two messages): 16 for 2 legs, 26 for 3, 40 for 4
 * (an assignment resent through one relay and the result back through it).
 */
export function triesOver(legs: number): number {
  const kept = 1 - SIZED_FOR_LOSS;
  return Math.ceil((PROBE_SENDS * Math.log(1 - kept ** 2)) / Math.log(1 - kept ** legs));
}

/** A suspect being asked whether it is gone. */
interface Probe {
  readonly suspect: string;
  readonly openedAt: number;
  /** Between two probes: the suspect's retransmission timeout when the probe started. */
  readonly everyMs: number;
  readonly windowMs: number;
  timer: Subscription | undefined;
}
