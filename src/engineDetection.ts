import { Subject, type SchedulerLike, type Subscription } from 'rxjs';
import {
  consensusWindow,
  heartbeatDeadline,
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
} from '../operators/index.js';
import type { Network } from '../streams/network.js';
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
  /** An assignment not acknowledged within this: lost on the way, or its agent takes nothing in. */
  readonly ackTimeoutMs: number;
  readonly consensusWindowMs: number;
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
  /** The attempt `taskId NUL subtaskId#attempt` was not acknowledged within the ack timeout. */
  ackTimeout(attemptKey: string): void;
  /** The peers decided on a suspicion put to them with `askPeers`. */
  verdict(decision: Decision): void;
}

/**
 * The engine's failure detection: the signals it feeds (beats, usage, latencies, deliveries, the
 * acknowledgement and progress of each attempt, peers' votes) and the operators that turn them
 * into verdicts — the fault detector, a deadline per attempt for its acknowledgement and for its
 * progress, and a consensus window for suspicions that peers confirm. It decides nothing about
 * agents or work: the verdicts go to whoever `wire`d it.
 */
export class EngineDetection {
  private readonly heartbeats = new Subject<Heartbeat>();
  private readonly latencies = new Subject<LatencyInput>();
  private readonly deliveries = new Subject<DeliveryInput>();
  /** Usage the agents' heartbeats carry: one series per agent, whatever resource is the highest. */
  private readonly usage = new Subject<UsageInput>();
  private readonly acks = new Subject<Heartbeat>();
  private readonly progress = new Subject<AttemptSignal>();
  private readonly votes = new Subject<Vote>();
  private readonly voters = new Subject<readonly string[]>();
  private proposals = 0;

  constructor(
    private readonly options: DetectionOptions,
    private readonly network: Pick<Network, 'send'>,
  ) {}

  /** Subscribes the detectors; their verdicts go to `verdicts`. The subscriptions are the caller's to end. */
  wire(verdicts: DetectionVerdicts): Subscription[] {
    const { detector, progressTimeoutMs, ackTimeoutMs, consensusWindowMs, scheduler } = this.options;
    const faults = detectFaults(
      { heartbeats: this.heartbeats, latencies: this.latencies, deliveries: this.deliveries, usage: this.usage },
      // A slow agent is one slower than its peers: a slowdown everyone shares (saturation) is no one's fault.
      { detector, degradation: { relativeTo: 'peers' }, scheduler },
    );
    return [
      faults.subscribe(fault => verdicts.fault(fault)),
      // Progress: a deadline per attempt, keyed `subtask#attempt`, learned per task from how long
      // its finished attempts kept silent: a silent attempt is suspected of hanging.
      this.progress.pipe(learnedDeadline({ floorMs: progressTimeoutMs, scheduler })).subscribe(verdict => {
        if (verdict.type === 'silent') verdicts.silent(verdict);
        else verdicts.cleared(verdict.key);
      }),
      // Acknowledgement: one deadline per assignment until the agent's first progress.
      this.acks.pipe(heartbeatDeadline({ timeoutMs: ackTimeoutMs, scheduler })).subscribe(verdict => {
        if (verdict.type === 'suspected') verdicts.ackTimeout(verdict.agentId);
      }),
      this.votes.pipe(consensusWindow({ windowMs: consensusWindowMs, voters: this.voters, scheduler })).subscribe(d => verdicts.verdict(d)),
    ];
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

  /** A delivery over `link` (`from->to`) arrived or was lost. */
  delivery(link: string, ok: boolean): void {
    this.deliveries.next({ link, ok });
  }

  /** An attempt was sent: its acknowledgement deadline starts. */
  awaitAck(attemptKey: string): void {
    this.acks.next({ agentId: attemptKey });
  }

  /** The attempt's acknowledgement came (or it no longer matters). */
  acked(attemptKey: string): void {
    this.acks.next({ agentId: attemptKey, status: 'leaving' });
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

  /** A peer's vote on a proposal put by `askPeers`. */
  vote(proposalId: string, voterId: string, accept: boolean): void {
    this.votes.next({ proposalId, voterId, accept });
  }

  /** Mesh: the live peers vote on the suspicion within a consensus window (none: the coordinator's word stands). */
  askPeers(suspect: string, peers: readonly string[]): void {
    const proposalId = `down:${suspect}:${++this.proposals}`;
    this.voters.next(peers);
    for (const peer of peers) this.network.send({ from: COORDINATOR, to: peer, kind: 'vote-request', body: { proposalId, suspect } });
    if (peers.length === 0) this.votes.next({ proposalId, voterId: COORDINATOR, accept: true });
  }
}

/** The agent a decision of `askPeers` is about. */
export function suspectOf(decision: Decision): string {
  return decision.proposalId.split(':')[1] as string;
}
