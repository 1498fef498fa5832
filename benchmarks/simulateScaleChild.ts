/**
 * One case of simulateScale.bench.ts in a fresh process (so that its memory is its own): a small
 * warm-up run of the same topology (JIT), a full collection, then the measured `simulate()`.
 * Prints one JSON line: wall and CPU ms of the measured run, its counts, and the process's peak RSS.
 *
 * `node --expose-gc --import tsx benchmarks/simulateScaleChild.ts TOPOLOGY AGENTS SUBTASKS`
 */
import { simulate } from '../src/simulate.js';
import type { TopologyName } from '../src/topology.js';

const [topology, agents, subtasks] = [process.argv[2] as TopologyName, Number(process.argv[3]), Number(process.argv[4])];
const WARMUP = { agents: 50, subtasks: 500 };

simulate({ seed: 1, topology, agents: WARMUP.agents, subtasks: WARMUP.subtasks });
(globalThis as { gc?: () => void }).gc?.();
const start = performance.now();
const cpu = process.cpuUsage();
const report = simulate({ seed: 7, topology, agents, subtasks });
const wallMs = performance.now() - start;
const used = process.cpuUsage(cpu);
const line = {
  topology,
  agents,
  subtasks,
  wallMs,
  // The process's CPU (all its threads, GC helpers included): what the load of a shared machine moves least.
  cpuMs: (used.user + used.system) / 1000,
  completed: report.completed,
  lost: report.lost,
  messages: report.messages,
  virtualMs: report.finishedAtMs,
  // Kilobytes on Linux: the largest the process ever was, the warm-up included (small).
  maxRssBytes: process.resourceUsage().maxRSS * 1024,
};
process.stdout.write(`${JSON.stringify(line)}\n`);
