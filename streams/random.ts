import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { xoroshiro128plusFromState } from 'pure-rand/generator/xoroshiro128plus';
import type { RandomGenerator } from 'pure-rand/types/RandomGenerator';

/**
 * A seeded source of randomness: the only one the simulation uses, so a run replays from its seed.
 * Draws advance a mutable generator (no allocation per draw); `fork` hands out independent streams.
 */
export interface Random {
  /** A float in `[0, 1)` (53 random bits). */
  next(): number;
  /** An integer in `[min, max]`, both ends included; `RangeError` unless both are safe integers and `min <= max`. */
  int(min: number, max: number): number;
  /** One element of `xs`, uniformly; `RangeError` for an empty array. */
  pick<T>(xs: readonly T[]): T;
  /**
   * An independent stream named `label`, e.g. one per agent. It depends only on the root seed and
   * the chain of labels, never on how much this stream has drawn: `fork('agent-3')` is the same
   * stream whenever and however often it is asked for, and adding draws elsewhere does not shift it.
   */
  fork(label: string): Random;
}

const TWO_32 = 4_294_967_296;

/**
 * A `Random` on pure-rand's xoroshiro128+ (fast-check's default generator).
 *
 * `seed` is any safe integer. The generator's 128-bit state is hashed (MurmurHash3) from the seed and,
 * for a fork, its chain of labels: pure-rand's own `xoroshiro128plus(seed)` starts every small seed
 * with a draw near 1, which would correlate the first event of every run.
 *
 * @example
 * const random = createRandom(42);
 * const agentRandom = random.fork('agent-0'); // same numbers on every run with seed 42
 * const delayMs = agentRandom.int(10, 20);
 */
export function createRandom(seed: number): Random {
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) {
    throw new RangeError(`seed must be a safe integer, got ${String(seed)}`);
  }
  return new SeededRandom(seed | 0, Math.floor(seed / TWO_32) | 0, '');
}

// One MurmurHash3 seed per 32-bit word of generator state (digits of pi).
const STATE_SEEDS = [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344] as const;

class SeededRandom implements Random {
  private readonly generator: RandomGenerator;

  constructor(
    private readonly seedLow: number,
    private readonly seedHigh: number,
    private readonly path: string,
  ) {
    const state = STATE_SEEDS.map(word => hashKey(word, seedLow, seedHigh, path));
    // xoroshiro's one forbidden state.
    if (!state.some(word => word !== 0)) state[0] = 1;
    this.generator = xoroshiro128plusFromState(state);
  }

  next(): number {
    return uniformFloat64(this.generator);
  }

  int(min: number, max: number): number {
    if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max) || min > max) {
      throw new RangeError(`int(min, max) needs safe integers with min <= max, got min ${String(min)}, max ${String(max)}`);
    }
    return uniformInt(this.generator, min, max);
  }

  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new RangeError('pick(xs) needs a non-empty array, got length 0');
    return xs[uniformInt(this.generator, 0, xs.length - 1)] as T;
  }

  fork(label: string): Random {
    if (typeof label !== 'string') throw new TypeError(`fork(label) needs a string label, got ${String(label)}`);
    // Length-prefixed, so no two label chains share a path ('a/b' as one label vs 'a' then 'b').
    return new SeededRandom(this.seedLow, this.seedHigh, `${this.path}${label.length}:${label}`);
  }
}

/** MurmurHash3 (x86, 32-bit) of the words `seedLow`, `seedHigh` and then the UTF-16 code units of `path`. */
function hashKey(hashSeed: number, seedLow: number, seedHigh: number, path: string): number {
  let h = mixWord(mixWord(hashSeed, seedLow), seedHigh);
  for (let i = 0; i < path.length; i++) h = mixWord(h, path.charCodeAt(i));
  h ^= path.length + 2;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0;
}

function mixWord(h: number, word: number): number {
  let k = Math.imul(word, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  h ^= Math.imul(k, 0x1b873593);
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}
