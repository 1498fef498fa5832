// rxswarm: everything. The narrower entry points are rxswarm/operators, rxswarm/streams and
// rxswarm/testing.
export * from '../operators/index.js';
export * from '../streams/index.js';

// The engine
export { createCoordinator, validateTask, type AgentSlot, type Coordinator, type CoordinatorOptions, type DetectorOptions, type TaskInfo } from './coordinator.js';
export {
  LedgerError,
  applyLedgerEvent,
  emptyLedger,
  ended,
  restoreLedger,
  resultOf,
  type Ledger,
  type LedgerEvent,
  type LedgerEventType,
  type SubtaskEntry,
  type SubtaskStatus,
  type TaskEntry,
  type TaskState,
  type TaskSummary,
} from './ledger.js';
export { ProtocolManager, type CoordinationPlan, type ProtocolManagerOptions } from './protocolManager.js';
export { isTaskEvent, type CoordinationEvent, type CoordinationEventType, type CoordinationMetrics, type CoordinationResult, type FailureReason } from './events.js';
export {
  adaptive,
  chooseInitial,
  hierarchical,
  mesh,
  ring,
  star,
  topologies,
  topologyFor,
  type AdaptiveTopology,
  type HierarchicalLayout,
  type MeshLayout,
  type RingLayout,
  type StarLayout,
} from './topologies/index.js';
export { COORDINATOR, TOPOLOGY_NAMES, type AgentProfile, type Layout, type Repair, type Topology, type TopologyName } from './topology.js';
export { FAULT_TABLE, detectFaults, faultKey, type DetectedFault, type FaultEvent, type ResolvedFault } from './faultDetector.js';
export {
  FallbackPolicy,
  HEALING_CHAINS,
  SelfHealingManager,
  type EngineActions,
  type HealingAttempt,
  type HealingEvent,
  type HealingResult,
  type HealingStrategy,
} from './selfHealing.js';

// The testing kit (also on its own as rxswarm/testing)
export * from './testing.js';
