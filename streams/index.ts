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
export { AgentHost, type AgentHostOptions, type HostState, type UsageSource } from './agentHost.js';
export type { AgentContext, InProcessAgent, Subtask, Task } from './task.js';
export { canRun } from './task.js';
export type { ConnectionCause, ConnectionCauseKind } from './connectionCause.js';
export type * from './protocol.js';
export { hopsLeft, routeLeft } from './protocol.js';
export {
  WsClientNetwork,
  WsConnectionError,
  WsServerNetwork,
  tokensMatch,
  type RateLimitOptions,
  type ReconnectOptions,
  type RemoteAgent,
  type WsClientEvent,
  type WsClientNetworkOptions,
  type WsClientState,
  type WsNetworkStats,
  type WsServerEvent,
  type WsServerNetworkOptions,
  type HttpRequest,
  type HttpResponse,
} from './wsNetwork.js';
export {
  DEFAULT_MAX_BYTES,
  REPAIR_KINDS,
  WIRE_VERSION,
  WS_CLOSE,
  decode as decodeWireMessage,
  encode as encodeWireMessage,
  isWireKind,
  type DecodeOptions,
  type DecodeResult,
  type EnvelopeMessage,
  type ErrorMessage,
  type HelloMessage,
  type JoinMessage,
  type LeaveMessage,
  type RepairKind,
  type WireKind,
  type WireMessage,
  type WireType,
  type WsCloseCode,
} from './wsCodec.js';
export { FileJournal, JournalDamaged, MemoryJournal, crc32hex, journalBytes, type FileJournalOptions, type Journal, type JournalFs, type Recovered } from './journal.js';
