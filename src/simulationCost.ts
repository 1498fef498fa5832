import { decideProtocol } from '../operators/index.js';
import type { Fault } from '../streams/faults.js';
import type { TopologyName } from './topology.js';

/** What a simulation is about to cost, before it runs: a rough estimate, right within a factor of about two. */
export interface SimulationCost {
  /** The topology that carries the run (`adaptive` starts from the decision matrix). */
  readonly topology: TopologyName;
  /** Virtual time the run is expected to last, ms. */
  readonly virtualMs: number;
  /** Messages on the simulated network: heartbeats, assignments, progress and results. */
  readonly messages: number;
  /** Wall time on one core, ms. */
  readonly wallMs: number;
  /** Memory the run holds at its peak, bytes. */
  readonly memoryBytes: number;
  /** What dominates the cost, in words. */
  readonly why: string;
}

export interface SimulationSize {
  readonly topology: TopologyName | 'adaptive';
  readonly agents: number;
  readonly subtasks: number;
  readonly untilMs: number;
  readonly faults?: readonly Fault[];
  /** Mean work per subtask, ms. Default 200 (as `simulate`). */
  readonly workMeanMs?: number;
}

// Measured (node 20, one core): a message costs 2–5 µs from send to delivery, and on a mesh, where
// delivering a beat touches per-peer state, about 5 ns more per agent; a ring's relay hop no longer
// does (its route is shared, not copied per hop: 1.5–3.3 µs a message at 1,000–1,500 agents); a simulated agent about 0.25 ms to set up and run, and 25 KB; a mesh about 150 bytes per
// pair of agents (each tracks every other); a subtask about 0.1 ms besides its messages. One-way
// latency 2 ms.
const US_PER_MESSAGE = 2;
const US_PER_MESSAGE_PER_PEER = 0.005;
const MS_PER_AGENT = 0.25;
const BYTES_BASE = 100e6;
const BYTES_PER_AGENT = 25e3;
const BYTES_PER_MESH_PAIR = 150;
/**
 * A ring's work in flight carries its route there and back (an assignment names every relay on
 * its way, its reply path every relay back): about 64 bytes per agent per subtask in flight
 * (measured 67 at 4,000 agents × 4,000 subtasks, 1.2 GB at its peak). With a subtask in flight on
 * every agent that is agents² × 64 bytes: 6.4 GB at 10,000.
 */
const BYTES_PER_RING_ROUTE_ENTRY = 64;
/** About the heap Node gives a process by default on a large machine: more needs `--max-old-space-size`. */
const DEFAULT_HEAP_BYTES = 4e9;
const MS_PER_SUBTASK = 0.1;
const LATENCY_MS = 2;
/** Margin for detection and healing after the last fault (about one detection bound). */
const SETTLE_MS = 5000;

/** When a fault has done what it does: its instant, or the end of its window. */
function faultEnd(f: Fault): number {
  return f.kind === 'drop' ? (f.toMs ?? f.fromMs ?? 0) : f.kind === 'partition' ? (f.healAtMs ?? f.atMs) : f.kind === 'coordinatorCrash' ? f.restartAtMs : f.atMs;
}

/**
 * Estimates a simulation from its size: heartbeats grow with agents × virtual seconds (agents² on a
 * mesh, where every peer beats to every peer), each subtask costs a handful of messages (about one
 * per agent on a ring, where work travels successor to successor), and the virtual time is the work
 * spread over the agents, or the faults' span and time to settle if longer, capped at `untilMs`.
 *
 * @example estimateSimulation({ topology: 'mesh', agents: 5000, subtasks: 200, untilMs: 3_600_000 }).messages // ≈ 1.5e8
 */
export function estimateSimulation(size: SimulationSize): SimulationCost {
  const { agents, subtasks, untilMs, faults = [], workMeanMs = 200 } = size;
  const topology = size.topology === 'adaptive' ? decideProtocol({ agentCount: agents }) : size.topology;
  const rounds = Math.ceil(subtasks / agents);
  const perRoundMs = workMeanMs + (topology === 'ring' ? agents : 5) * LATENCY_MS;
  // Faults keep a run going at least until the last one has been detected or healed.
  const settled = faults.length === 0 ? 0 : faults.reduce((latest, f) => Math.max(latest, faultEnd(f)), 0) + SETTLE_MS;
  const virtualMs = Math.min(untilMs, Math.max(rounds * perRoundMs, settled));
  const beats = (virtualMs / 1000 + 1) * (topology === 'mesh' ? agents * (agents - 1) : 2 * agents);
  const perSubtask = topology === 'ring' ? agents + 1 : 7;
  const messages = Math.round(beats + subtasks * perSubtask);
  const perMessageUs = US_PER_MESSAGE + (topology === 'mesh' ? US_PER_MESSAGE_PER_PEER * agents : 0);
  const wallMs = (messages * perMessageUs) / 1000 + agents * MS_PER_AGENT + subtasks * MS_PER_SUBTASK;
  const memoryBytes =
    BYTES_BASE +
    agents * BYTES_PER_AGENT +
    (topology === 'mesh' ? BYTES_PER_MESH_PAIR * agents * (agents - 1) : 0) +
    (topology === 'ring' ? BYTES_PER_RING_ROUTE_ENTRY * Math.min(agents, subtasks) * agents : 0);
  const why =
    topology === 'mesh' && beats >= subtasks * perSubtask
      ? `every agent heartbeats every other agent: ${agents} × ${agents - 1} beats a virtual second`
      : topology === 'ring' && subtasks * perSubtask > beats
        ? `every subtask travels the ring: about ${agents + 1} hops each`
        : beats > subtasks * perSubtask
          ? `${agents} agents heartbeating every virtual second`
          : `${subtasks} subtasks`;
  return { topology, virtualMs, messages, wallMs, memoryBytes, why };
}

/** Above this estimate a simulation warns before it starts. */
export const WARN_WALL_MS = 20_000;

/** Two significant figures, never in exponent form (100, not 1.0e+2). */
const figures = (x: number): string => (x >= 100 ? String(Math.round(x)) : x.toPrecision(2));

const amount = (n: number): string =>
  n >= 1e9 ? `${figures(n / 1e9)} billion` : n >= 1e6 ? `${figures(n / 1e6)} million` : n >= 1e3 ? `${Math.round(n / 1e3)} thousand` : String(Math.round(n));

const duration = (ms: number): string =>
  ms >= 5_400_000 ? `${Math.round(ms / 3_600_000)} h` : ms >= 90_000 ? `${Math.round(ms / 60_000)} min` : ms >= 10_000 ? `${Math.round(ms / 1000)} s` : `${(ms / 1000).toFixed(1)} s`;

/** A warning for a costly simulation (estimated over {@link WARN_WALL_MS} of wall time), or undefined. */
export function costWarning(size: SimulationSize): string | undefined {
  const cost = estimateSimulation(size);
  if (cost.wallMs <= WARN_WALL_MS) return undefined;
  const on = size.topology === 'adaptive' ? `adaptive (starting as ${cost.topology})` : cost.topology;
  return (
    `warning: ${on} with ${size.agents} agents and ${size.subtasks} subtasks over ~${duration(cost.virtualMs)} of virtual time is about ` +
    `${amount(cost.messages)} messages (${cost.why}): expect roughly ${duration(cost.wallMs)} of wall time` +
    `${cost.memoryBytes >= 1e9 ? ` and ${(cost.memoryBytes / 1e9).toPrecision(2)} GB of memory` : ''}. ` +
    'Fewer agents, another topology or a shorter --hours runs faster.' +
    (cost.memoryBytes >= DEFAULT_HEAP_BYTES ? ` Node's heap must be raised for it: NODE_OPTIONS=--max-old-space-size=${Math.ceil((cost.memoryBytes * 1.25) / 2 ** 20)}.` : '')
  );
}
