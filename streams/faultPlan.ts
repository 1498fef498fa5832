import { createRequire } from 'node:module';
import type { Arbitrary } from 'fast-check';
import { requireInteger, requireNumber } from '../operators/internal/validate.js';
import { show, type CoordinatorCrashFault, type Fault, type DropFault, type PartitionFault } from './faults.js';

/** Options of `faultPlan`. */
export interface FaultPlanOptions {
  /** The agents the plan may harm. Every other node (agents left out, the coordinator) stays healthy. */
  readonly agents: readonly string[];
  /** Faults start in `[0, spanMs]`; every drop window and partition also ends by `spanMs`. */
  readonly spanMs: number;
  /**
   * At most this many faults per plan. Default `min(5, 2 × agents.length)`. More: harsher plans
   * and slower properties; plans shrink towards none anyway.
   */
  readonly maxFaults?: number;
  /**
   * At most this many coordinator crashes (`coordinatorCrash`), besides the `maxFaults` others:
   * each crash and its restart in `[0, spanMs]`, one after the other (none while the coordinator
   * is down). Default 0: the coordinator stays up. Shrinks towards none. In a simulation the agents
   * live in the coordinator's process, so a coordinator crash takes every agent down with it (those
   * left out of `agents` too) until the restart: that is why it is asked for, never implied.
   */
  readonly coordinatorCrashes?: number;
}

type FastCheck = typeof import('fast-check');

let loaded: FastCheck | undefined;

/**
 * fast-check, loaded on the first call: it is an optional peer dependency, so importing rxswarm
 * (or rxswarm/testing) must not need it; only `faultPlan` does. `require` resolves it from this
 * package's place in `node_modules` (where a peer is installed) and gives fast-check's CommonJS
 * build; its arbitraries are recognised by shape, so they mix with the user's ES-module copy.
 */
function fastCheck(): FastCheck {
  if (loaded !== undefined) return loaded;
  try {
    loaded = createRequire(import.meta.url)('fast-check') as FastCheck;
  } catch (err) {
    // Only fast-check itself missing; anything else (a broken install) is shown as it is.
    if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND' || !(err as Error).message.includes("'fast-check'")) throw err;
    throw new Error('faultPlan needs fast-check (an optional peer dependency of rxswarm): npm install -D fast-check', { cause: err });
  }
  return loaded;
}

/** When a fault starts to act: the order of a plan. */
function startMs(f: Fault): number {
  return f.kind === 'drop' ? (f.fromMs ?? 0) : f.atMs;
}

/**
 * A fast-check arbitrary of fault plans that harm only `agents`, for properties such as "every
 * subtask completes while one healthy capable agent remains".
 *
 * What a plan can hold (sorted by start time, stable): crash, hang, restart of a given agent at
 * `[0, spanMs]`; slow by a whole factor 2–10; exhaust: usage 0.5–1.5 in hundredths (from 0.9 on, a
 * resource_exhaustion to detect and heal); deadlock: a circle of 1 or more of the given agents, in any
 * order, each one's work waiting for a child with the next one's capabilities; drop of 1–90 % on the links of a non-empty subset of
 * the given agents (`agents` always set, never network-wide) inside a window that ends by `spanMs`;
 * partition that cuts off one or two groups made only of given agents, healing by `spanMs`
 * (`healAtMs <= spanMs`, always set). The partition's first group lists the given agents that stay, so
 * agents left out and the coordinator stay together, connected. Times are whole milliseconds.
 *
 * With `coordinatorCrashes: n`, also up to n coordinator crashes, each down for `[atMs, restartAtMs]`
 * inside `[0, spanMs]`, the windows disjoint and in order; crash and restart are distinct whole
 * milliseconds, so an empty span has none.
 *
 * Shrinks towards fewer faults, simpler kinds (crash first), earlier times, shorter windows, fewer
 * agents cut off, lower loss and factors. With no agents, or `maxFaults: 0`, every plan is empty.
 *
 * - `agents`: distinct non-empty ids; the plan names no other.
 * - `spanMs`: finite, >= 0; non-integer spans are floored.
 * - `maxFaults`: integer >= 0, default `min(5, 2 × agents.length)`.
 * - `coordinatorCrashes`: integer >= 0, default 0.
 *
 * Needs fast-check (an optional peer dependency): without it, a call throws an `Error` saying how
 * to install it; importing this module never needs it.
 *
 * @example
 * fc.assert(fc.property(faultPlan({ agents: ['agent-1', 'agent-2'], spanMs: 60_000 }), faults => {
 *   const report = simulate({ seed: 1, topology: 'mesh', agents: 3, subtasks: 20, faults });
 *   return report.lost === 0 && report.duplicatesAccepted === 0;
 * }));
 */
export function faultPlan(options: FaultPlanOptions): Arbitrary<Fault[]> {
  const { agents, spanMs, maxFaults: maxGiven, coordinatorCrashes = 0 } = options;
  if (!Array.isArray(agents) || agents.some(id => typeof id !== 'string' || id === '') || new Set(agents).size !== agents.length) {
    throw new RangeError(`agents must be an array of distinct non-empty agent ids, got ${show(agents)}`);
  }
  const span = Math.floor(requireNumber('spanMs', spanMs, 0));
  const maxFaults = requireInteger('maxFaults', maxGiven ?? Math.min(5, 2 * agents.length), 0);
  const crashes = requireInteger('coordinatorCrashes', coordinatorCrashes, 0);
  const fc = fastCheck();
  const byStart = (faults: Fault[]): Fault[] => [...faults].sort((a, b) => startMs(a) - startMs(b));
  // Crash and restart instants drawn together, distinct and sorted, then paired: disjoint windows in order.
  const coordinator: Arbitrary<CoordinatorCrashFault[]> =
    crashes === 0 || span === 0
      ? fc.constant([])
      : fc.uniqueArray(fc.integer({ min: 0, max: span }), { maxLength: 2 * crashes }).map(points => {
          const sorted = [...points].sort((a, b) => a - b);
          const out: CoordinatorCrashFault[] = [];
          for (let i = 0; i + 1 < sorted.length; i += 2) out.push({ kind: 'coordinatorCrash', atMs: sorted[i] as number, restartAtMs: sorted[i + 1] as number });
          return out;
        });
  if (agents.length === 0 || maxFaults === 0) return crashes === 0 ? fc.constant([]) : coordinator.map(byStart);

  const agent = fc.constantFrom(...agents);
  const atMs = fc.integer({ min: 0, max: span });
  const window = fc
    .tuple(atMs, span > 0 ? fc.integer({ min: 1, max: span }) : fc.constant(0))
    .map(([from, length]): [number, number] => [from, Math.min(span, from + length)]);

  // Plain objects (fast-check's records default to a null prototype), as a user would write them.
  const plain = { noNullPrototype: true } as const;
  const crash = fc.record({ kind: fc.constant('crash' as const), agent, atMs }, plain);
  const hang = fc.record({ kind: fc.constant('hang' as const), agent, atMs }, plain);
  const slow = fc.record({ kind: fc.constant('slow' as const), agent, atMs, factor: fc.integer({ min: 2, max: 10 }) }, plain);
  const restart = fc.record({ kind: fc.constant('restart' as const), agent, atMs }, plain);
  const exhaust = fc.record({ kind: fc.constant('exhaust' as const), agent, atMs, usage: fc.integer({ min: 50, max: 150 }).map(percent => percent / 100) }, plain);
  const deadlock = fc.record({ kind: fc.constant('deadlock' as const), agents: fc.shuffledSubarray([...agents], { minLength: 1 }), atMs }, plain);
  const drop = fc
    .record({ percent: fc.integer({ min: 1, max: 90 }), window, on: fc.subarray([...agents], { minLength: 1 }) })
    .map(({ percent, window: [fromMs, toMs], on }): DropFault => ({ kind: 'drop', rate: percent / 100, fromMs, toMs, agents: on }));
  const partition = fc
    .record({ cut: fc.subarray([...agents], { minLength: 1 }), split: fc.nat({ max: agents.length - 1 }), window })
    .map(({ cut, split, window: [at, healAtMs] }): PartitionFault => {
      const stay = agents.filter(id => !cut.includes(id));
      // split 0 (where it shrinks to) or past the end: one group cut off; otherwise two islands.
      const islands = split === 0 || split >= cut.length ? [cut] : [cut.slice(0, split), cut.slice(split)];
      return { kind: 'partition', groups: [stay, ...islands], atMs: at, healAtMs };
    });

  const others = fc.array(fc.oneof<Arbitrary<Fault>[]>(crash, hang, slow, restart, drop, partition, exhaust, deadlock), { maxLength: maxFaults });
  // Sort a copy: fast-check keeps the generated array to shrink from.
  if (crashes === 0) return others.map(byStart);
  return fc.tuple(others, coordinator).map(([faults, down]) => byStart([...faults, ...down]));
}
