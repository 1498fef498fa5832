import type { SchedulerLike } from 'rxjs';
import type { Journal } from '../streams/journal.js';
import type { InProcessAgent } from '../streams/task.js';
import type { DetectorOptions } from './engineDetection.js';
import type { CoordinationEvent, CoordinationResult } from './events.js';
import type { LedgerEvent } from './ledger.js';
import type { TaskRun } from './taskRun.js';
import type { TopologyName } from './topology.js';

/** An agent slot: the agent, how to re-create it (restart), and whether it waits as a standby. */
export interface AgentSlot {
  readonly agent: InProcessAgent;
  /** Re-creates the agent on restart; without one, restart is not possible and healing moves on. */
  readonly factory?: () => InProcessAgent;
  /** Held back until healing needs a replacement. */
  readonly standby?: boolean;
}

export interface Settings {
  readonly slots: readonly AgentSlot[];
  readonly topology: TopologyName | 'adaptive';
  readonly scheduler: SchedulerLike;
  readonly seed: number;
  readonly heartbeatIntervalMs: number;
  readonly heartbeatJitterMs: number;
  readonly detector: DetectorOptions;
  readonly progressTimeoutMs: number;
  readonly ackTimeoutMs: number;
  readonly maxSubtaskAttempts: number;
  readonly attemptTimeoutMs: number;
  readonly maxSlotsPerAgent: number;
  readonly orphanTimeoutMs: number;
  readonly maxAttempts: number;
  readonly reconnectGraceMs: number;
  readonly consensusWindowMs: number;
  readonly deadlockMs: number;
  /** `explore`: share of assignments probing a candidate protocol (see `ProtocolProbe`); 0 or absent: none. */
  readonly adaptive: { evaluateEveryMs: number; windowMs: number; minDwellMs: number; switchThreshold: number; explore?: number };
  readonly deadlineMs: number;
  readonly journal: Journal | undefined;
  readonly maxTasks: number;
  readonly retentionMs: number;
  readonly maxRetainedTasks: number;
  readonly snapshotEvery: number;
}

/** What the engine asks of the coordinator around it: the ledger, attempt tokens, its events. */
export interface EngineHooks {
  /** Applies a ledger event and journals it: done before the event's effects. */
  record(event: LedgerEvent): void;
  /** A fresh attempt token, above every one handed out before (a crash included). */
  nextAttempt(): number;
  /** Why no new work may be handed out (the journal cannot write), or undefined. */
  halted(): string | undefined;
  /** An event of the engine's own (agents, faults, healing, protocol) for the inspection stream. */
  emit(event: CoordinationEvent): void;
  /** A task ended (its `task.finished` recorded): its result. */
  ended(run: TaskRun, result: CoordinationResult): void;
}
