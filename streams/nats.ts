// rxswarm/nats: the NATS transport and the leader lease. An entry point of its own, so that
// `rxswarm` and `rxswarm/streams` load no NATS client; the @nats-io declarations it brings in use
// `Symbol.asyncDispose`, `TextEncoder` and `WebSocket`, so a TypeScript consumer needs
// `lib: ["esnext", "dom"]` (or @types/node).
export { NatsNetwork, natsSubjects, type NatsNetworkOptions } from './natsNetwork.js';
export { NatsClientNetwork, type NatsClientNetworkOptions } from './natsClientNetwork.js';
export { MIN_NATS_SERVER, NatsSetupError, connectNats, parseNatsUrl, versionAtLeast, type ConnectNatsOptions, type NatsEndpoint } from './natsConnect.js';
export { NatsLease, type LeaseHolder, type LeaseState, type NatsLeaseOptions } from './natsLease.js';
