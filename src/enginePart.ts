import type { SchedulerLike, Subject } from 'rxjs';
import type { ExecutionRecord } from '../operators/index.js';
import type { Network } from '../streams/network.js';
import type { Delegations } from './engineDelegation.js';
import type { EngineDetection } from './engineDetection.js';
import type { Hedging } from './engineHedging.js';
import type { EngineHooks, Settings } from './engineSettings.js';
import type { Membership } from './membership.js';

/** The engine's collaborators that its parts work with (attempts and results all of them, a task's start and end some): made once, never replaced. */
export interface EngineParts {
  readonly settings: Settings;
  readonly scheduler: SchedulerLike;
  readonly network: Network;
  /** The ledger (`record`) and the inspection stream (`emit`). */
  readonly hooks: EngineHooks;
  readonly agents: Membership;
  readonly detection: EngineDetection;
  readonly delegation: Delegations;
  readonly hedging: Hedging;
  /** Every attempt's outcome, for the protocol that routed it to be scored by. */
  readonly executions: Subject<ExecutionRecord>;
}

/**
 * A part of the engine on its per-message paths: the engine's collaborators held as its own
 * fields, so that an acknowledgement or a result reads them without going through the engine.
 */
export abstract class EnginePart {
  protected readonly settings: Settings;
  protected readonly scheduler: SchedulerLike;
  protected readonly network: Network;
  protected readonly hooks: EngineHooks;
  protected readonly agents: Membership;
  protected readonly detection: EngineDetection;
  protected readonly delegation: Delegations;
  protected readonly hedging: Hedging;
  protected readonly executions: Subject<ExecutionRecord>;

  constructor(parts: EngineParts) {
    this.settings = parts.settings;
    this.scheduler = parts.scheduler;
    this.network = parts.network;
    this.hooks = parts.hooks;
    this.agents = parts.agents;
    this.detection = parts.detection;
    this.delegation = parts.delegation;
    this.hedging = parts.hedging;
    this.executions = parts.executions;
  }

  protected now(): number {
    return this.scheduler.now();
  }
}
