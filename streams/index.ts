export { VirtualScheduler, type VirtualSchedulerOptions } from './virtualScheduler.js';
export { createRandom, type Random } from './random.js';
export { assertOutgoing, type Envelope, type EnvelopeOf, type Outgoing } from './messages.js';
export {
  InMemoryNetwork,
  type DropReason,
  type InMemoryNetworkOptions,
  type KindStats,
  type LatencyOptions,
  type LinkSettings,
  type Network,
  type NetworkStats,
} from './network.js';
export { AgentHost, type AgentHostOptions, type HostState } from './agentHost.js';
export type { AgentContext, InProcessAgent, Subtask, Task } from './task.js';
export { canRun } from './task.js';
export type * from './protocol.js';
