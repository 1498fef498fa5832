import { availableParallelism } from 'node:os';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import type { AgentUsage } from '../streams/protocol.js';
import type { ExecUsage } from './execHandler.js';

export interface UsageSamplerOptions {
  /** The `--exec` children, whose memory (against `--max-rss`) and CPU count as the agent's. */
  readonly children?: () => ExecUsage;
  /**
   * Event-loop delay that counts as full, in ms. Default 5000: past that the agent is as good as
   * silent to its detector anyway. Lower calls a CPU-bound handler's own work (a loop blocked for
   * seconds on purpose) exhaustion, and its healing would take that very work away, again and again.
   */
  readonly loopBudgetMs?: number;
  /** Cores the CPU share is taken of. Default `os.availableParallelism()`. */
  readonly cores?: number;
}

export interface UsageSampler {
  /** The highest of the measures since the last read: `{ fraction, what }`. */
  read(): AgentUsage;
  stop(): void;
}

/**
 * Measures an agent process for its heartbeats, at a bounded cost per read (a few counters, no
 * walk of anything; `--exec` children are sampled by their own timer): the highest of
 *
 * - `memory`: the JS heap used against its limit, and the busiest `--exec` child against `--max-rss`;
 * - `cpu`: CPU time of the process and its children per wall time (over at least 250 ms), as a share
 *   of the machine's cores: on one core, a single CPU-bound command reads as full;
 * - `event loop`: the longest event-loop delay since the last read, against `loopBudgetMs`.
 *
 * Uses wall time: it measures this process, at the edge of the engine.
 */
export function usageSampler({ children, loopBudgetMs = 5000, cores = availableParallelism() }: UsageSamplerOptions = {}): UsageSampler {
  if (!(loopBudgetMs > 0)) throw new RangeError(`loopBudgetMs must be > 0, got ${String(loopBudgetMs)}`);
  if (!(cores >= 1)) throw new RangeError(`cores must be >= 1, got ${String(cores)}`);
  const loop: IntervalHistogram = monitorEventLoopDelay({ resolution: 20 });
  loop.enable();
  let cpu = process.cpuUsage();
  let at = performance.now();
  let ownCores = 0;
  return {
    read: () => {
      const now = performance.now();
      // CPU over a short span is noise (a read right after start sees a busy millisecond as a busy
      // core): the share is renewed once at least MIN_CPU_SPAN_MS have passed, else the last one stands.
      if (now - at >= MIN_CPU_SPAN_MS) {
        const spent = process.cpuUsage(cpu);
        ownCores = (spent.user + spent.system) / 1000 / (now - at);
        cpu = process.cpuUsage();
        at = now;
      }
      const kids = children?.();
      const heap = getHeapStatistics();
      const memory = Math.max(heap.used_heap_size / heap.heap_size_limit, kids?.memoryFraction ?? 0);
      const cpuShare = (ownCores + (kids?.cpuCores ?? 0)) / cores;
      // The histogram's max is in ns; 0 before its first sample (NaN-free: it reports 0).
      const delay = loop.max / 1e6 / loopBudgetMs;
      loop.reset();
      let top: AgentUsage = { fraction: round(memory), what: 'memory' };
      if (cpuShare > top.fraction) top = { fraction: round(cpuShare), what: 'cpu' };
      if (delay > top.fraction) top = { fraction: round(delay), what: 'event loop' };
      return top;
    },
    stop: () => loop.disable(),
  };
}

const MIN_CPU_SPAN_MS = 250;

/** Three decimals: a heartbeat stays short, and the threshold is not that fine. */
function round(fraction: number): number {
  return Math.round(fraction * 1000) / 1000;
}
