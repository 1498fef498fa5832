// rxswarm: everything. The narrower entry points are rxswarm/operators, rxswarm/streams and
// rxswarm/testing.
export * from '../operators/index.js';
export * from '../streams/index.js';

// The engine
export { createCoordinator, type AgentSlot, type Coordinator, type CoordinatorOptions, type DetectorOptions } from './coordinator.js';
export { ProtocolManager, type CoordinationPlan, type ProtocolManagerOptions } from './protocolManager.js';
export type { CoordinationEvent, CoordinationEventType, CoordinationMetrics, CoordinationResult, FailureReason } from './events.js';
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
