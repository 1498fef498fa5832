// rxswarm/testing: what users import to test their own coordination pipelines.
// `faultPlan` needs fast-check (an optional peer dependency), so it is exported from here only.
export { VirtualScheduler, type VirtualSchedulerOptions } from '../streams/virtualScheduler.js';
export { PacedScheduler, type PacedSchedulerOptions } from '../streams/pacedScheduler.js';
export { faultPlan, type FaultPlanOptions } from '../streams/faultPlan.js';
export {
  FAULT_KINDS,
  validateFaults,
  type CrashFault,
  type DropFault,
  type Fault,
  type FaultKind,
  type HangFault,
  type PartitionFault,
  type RestartFault,
  type SlowFault,
} from '../streams/faults.js';
export { describeFault, formatFaultSpec, parseFaultSpec } from '../streams/faultSpec.js';
export { simulate, detectionBound, type AgentSpec, type Detection, type Scenario, type SimulateOptions, type SimulationProgress, type SimulationReport } from './simulate.js';
