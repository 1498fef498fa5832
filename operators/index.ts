// Failure detection
export { phi, phiThresholdOffset } from './phi.js';
export { IntervalWindow, PhiAccrualDetector, PhiSettings, type PhiAccrualDetectorOptions } from './phiAccrualDetector.js';
export { phiAccrual, type PhiAccrualOptions } from './phiAccrual.js';
export { heartbeatDeadline, type HeartbeatDeadlineOptions } from './heartbeatDeadline.js';
export {
  DEFAULT_DEADLINE_FACTOR,
  deadlineOf,
  learnedDeadline,
  type AttemptSignal,
  type ClearedAttempt,
  type LearnedDeadlineOptions,
  type SettledDeadline,
  type SilenceVerdict,
  type SilentAttempt,
} from './learnedDeadline.js';
export type { Heartbeat, Liveness } from './liveness.js';

// Quorum and consensus windows
export { majorityOutcome, voteResult, type VoteOutcome } from './voteResult.js';
export { consensusWindow, type ConsensusWindowOptions, type Voters } from './consensusWindow.js';
export type { Decision, DecisionOutcome, Vote } from './consensus.js';

// Performance and protocol switching
export {
  RollingWindow,
  checkRecord,
  nearestRank,
  performanceWindow,
  summarize,
  type ExecutionRecord,
  type PerformanceSnapshot,
  type PerformanceWindowOptions,
} from './performanceWindow.js';
export {
  PRIOR_OTHER,
  PRIOR_PREFERRED,
  adaptiveSwitch,
  beatsBy,
  decideProtocol,
  defaultScore,
  matrixPrior,
  type AdaptiveSwitchOptions,
  type Level,
  type MatrixProtocol,
  type PriorScore,
  type ProtocolContext,
  type ProtocolScore,
  type ProtocolSwitch,
} from './adaptiveSwitch.js';

// The other fault signals
export { LatencyBaseline, settleLatencyBaseline, type LatencyBaselineOptions, type SettledLatencyBaselineOptions } from './latencyBaseline.js';
export {
  degradation,
  type DegradationEvent,
  type DegradationOptions,
  type LatencyAgentLeft,
  type LatencyInput,
  type LatencySample,
} from './degradation.js';
export {
  consecutiveFailures,
  type ConsecutiveFailuresOptions,
  type DeliveryInput,
  type DeliveryOutcome,
  type LinkClosed,
  type LinkFailureEvent,
} from './consecutiveFailures.js';
export {
  isExhausted,
  resourcePressure,
  type PressureEvent,
  type ResourcePressureOptions,
  type UsageAgentLeft,
  type UsageInput,
  type UsageSample,
} from './resourcePressure.js';
export {
  canonicalCycle,
  waitForCycles,
  type Deadlock,
  type DeadlockEvent,
  type DeadlockResolved,
  type WaitForCyclesOptions,
  type WaitForEdge,
} from './waitForCycles.js';
