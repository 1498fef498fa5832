export type { Heartbeat, Liveness } from './liveness.js';
