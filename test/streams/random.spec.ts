import fc from 'fast-check';
import { createRandom, type Random } from '../../streams/random.js';

const draws = (random: Random, n = 20): number[] => Array.from({ length: n }, () => random.next());

describe('createRandom', () => {
  describe('determinism', () => {
    it('the same seed gives the same sequence of every kind of draw', () => {
      const run = (random: Random) => [
        random.next(),
        random.int(1, 6),
        random.pick(['a', 'b', 'c']),
        random.next(),
        random.int(-1_000, 1_000),
      ];
      expect(run(createRandom(42))).toEqual(run(createRandom(42)));
    });

    it('replays a recorded sequence (a change of generator or seeding breaks every saved run)', () => {
      const random = createRandom(2024);
      expect([random.next(), random.next(), random.int(1, 100)]).toEqual([0.059765416920986025, 0.1342768421862558, 49]);
      const agent = createRandom(2024).fork('agent-0');
      expect([agent.next(), agent.int(1, 100)]).toEqual([0.6020133736402672, 27]);
    });

    it('different seeds give different sequences, including the first draw', () => {
      const firsts = new Set(Array.from({ length: 100 }, (_, seed) => createRandom(seed).next()));
      expect(firsts.size).toBe(100);
      expect(draws(createRandom(1))).not.toEqual(draws(createRandom(2)));
    });

    it('the first draws of consecutive seeds are spread over [0, 1), not clustered', () => {
      const firsts = Array.from({ length: 1_000 }, (_, seed) => createRandom(seed).next());
      const mean = firsts.reduce((a, b) => a + b, 0) / firsts.length;
      expect(mean).toBeGreaterThan(0.45);
      expect(mean).toBeLessThan(0.55);
      expect(firsts.filter(x => x < 0.1).length).toBeGreaterThan(70);
    });

    it('tells apart seeds that agree in their low 32 bits, and negative seeds from their uint32 twins', () => {
      expect(draws(createRandom(1))).not.toEqual(draws(createRandom(2 ** 32 + 1)));
      expect(draws(createRandom(-1))).not.toEqual(draws(createRandom(2 ** 32 - 1)));
    });

    it.each([0.5, NaN, Infinity, -Infinity, 2 ** 53, '1' as unknown as number])('rejects seed %s with a RangeError naming it', seed => {
      expect(() => createRandom(seed)).toThrow(RangeError);
      expect(() => createRandom(seed)).toThrow(/seed/);
    });
  });

  describe('next', () => {
    it('draws in [0, 1) with a uniform spread', () => {
      const random = createRandom(7);
      const buckets = new Array<number>(10).fill(0);
      const n = 100_000;
      let outside = 0;
      for (let i = 0; i < n; i++) {
        const x = random.next();
        if (!(x >= 0 && x < 1)) outside++;
        else buckets[Math.floor(x * 10)]!++;
      }
      expect(outside).toBe(0);
      for (const count of buckets) expect(Math.abs(count / n - 0.1)).toBeLessThan(0.005);
    });
  });

  describe('int', () => {
    it('includes both ends and nothing outside', () => {
      const random = createRandom(3);
      const seen = new Set<number>();
      for (let i = 0; i < 2_000; i++) seen.add(random.int(-2, 2));
      expect([...seen].sort((a, b) => a - b)).toEqual([-2, -1, 0, 1, 2]);
    });

    it('a one-value range always gives that value', () => {
      const random = createRandom(3);
      expect(Array.from({ length: 5 }, () => random.int(9, 9))).toEqual([9, 9, 9, 9, 9]);
    });

    it('spreads a die roll evenly', () => {
      const random = createRandom(11);
      const counts = new Array<number>(6).fill(0);
      const n = 60_000;
      for (let i = 0; i < n; i++) counts[random.int(1, 6) - 1]!++;
      for (const count of counts) expect(Math.abs(count / n - 1 / 6)).toBeLessThan(0.01);
    });

    it('handles ranges wider than 2^32', () => {
      const random = createRandom(5);
      for (let i = 0; i < 100; i++) {
        const x = random.int(-(2 ** 40), 2 ** 40);
        expect(Number.isSafeInteger(x) && x >= -(2 ** 40) && x <= 2 ** 40).toBe(true);
      }
    });

    it.each([
      [2, 1],
      [0.5, 1],
      [0, 1.5],
      [NaN, 1],
      [0, Infinity],
    ])('rejects int(%s, %s) with a RangeError', (min, max) => {
      expect(() => createRandom(0).int(min, max)).toThrow(RangeError);
      expect(() => createRandom(0).int(min, max)).toThrow(/min/);
    });
  });

  describe('pick', () => {
    it('picks every element, uniformly', () => {
      const random = createRandom(13);
      const xs = ['a', 'b', 'c', 'd'] as const;
      const counts = new Map<string, number>();
      const n = 40_000;
      for (let i = 0; i < n; i++) {
        const x = random.pick(xs);
        counts.set(x, (counts.get(x) ?? 0) + 1);
      }
      expect([...counts.keys()].sort()).toEqual(['a', 'b', 'c', 'd']);
      for (const count of counts.values()) expect(Math.abs(count / n - 0.25)).toBeLessThan(0.01);
    });

    it('rejects an empty array with a RangeError', () => {
      expect(() => createRandom(0).pick([])).toThrow(RangeError);
      expect(() => createRandom(0).pick([])).toThrow(/xs/);
    });
  });

  describe('fork', () => {
    it('is deterministic: the same label under the same seed gives the same stream', () => {
      expect(draws(createRandom(9).fork('agent-1'))).toEqual(draws(createRandom(9).fork('agent-1')));
    });

    it('does not depend on how much the parent has drawn, nor on other forks', () => {
      const fresh = createRandom(9);
      const used = createRandom(9);
      draws(used, 1_000);
      used.fork('agent-0');
      expect(draws(used.fork('agent-1'))).toEqual(draws(fresh.fork('agent-1')));
    });

    it('drawing from a fork leaves the parent untouched', () => {
      const parent = createRandom(9);
      const twin = createRandom(9);
      draws(parent.fork('agent-1'), 100);
      expect(draws(parent)).toEqual(draws(twin));
    });

    it('asking twice for the same label gives two equal, separately advancing streams', () => {
      const random = createRandom(9);
      const a = random.fork('x');
      const b = random.fork('x');
      expect(a.next()).toBe(b.next());
      a.next();
      expect(b.next()).not.toBe(a.next());
    });

    it('gives different streams for different labels, seeds and from the parent', () => {
      const random = createRandom(9);
      const streams = [
        draws(random.fork('agent-1')),
        draws(random.fork('agent-2')),
        draws(createRandom(10).fork('agent-1')),
        draws(createRandom(9)),
      ];
      for (let i = 0; i < streams.length; i++) {
        for (let j = i + 1; j < streams.length; j++) expect(streams[i]).not.toEqual(streams[j]);
      }
    });

    it('keeps label chains apart: fork("a").fork("b") is neither fork("ab") nor fork("b").fork("a")', () => {
      const random = createRandom(1);
      const nested = draws(random.fork('a').fork('b'));
      expect(nested).not.toEqual(draws(random.fork('ab')));
      expect(nested).not.toEqual(draws(random.fork('b').fork('a')));
      expect(draws(random.fork('1:a'))).not.toEqual(draws(random.fork('a').fork('')));
      expect(nested).toEqual(draws(createRandom(1).fork('a').fork('b')));
    });

    it('forks of 1,000 agents are pairwise uncorrelated (first draws all distinct, means near 0.5)', () => {
      const random = createRandom(123);
      const firsts = new Set<number>();
      let sum = 0;
      for (let i = 0; i < 1_000; i++) {
        const fork = random.fork(`agent-${i}`);
        const x = fork.next();
        firsts.add(x);
        sum += x;
      }
      expect(firsts.size).toBe(1_000);
      expect(Math.abs(sum / 1_000 - 0.5)).toBeLessThan(0.05);
    });

    it('rejects a label that is not a string with a TypeError', () => {
      expect(() => createRandom(0).fork(7 as unknown as string)).toThrow(TypeError);
      expect(() => createRandom(0).fork(7 as unknown as string)).toThrow(/label/);
    });
  });

  describe('properties', () => {
    it('for any seed and labels: replays exactly, and int/pick stay in range', () => {
      fc.assert(
        fc.property(
          fc.integer(),
          fc.array(fc.string(), { maxLength: 3 }),
          fc.integer({ min: -1_000, max: 1_000 }),
          fc.integer({ min: 0, max: 1_000 }),
          (seed, labels, min, width) => {
            const walk = (): Random => labels.reduce<Random>((r, label) => r.fork(label), createRandom(seed));
            const a = walk();
            const b = walk();
            for (let i = 0; i < 20; i++) {
              const x = a.int(min, min + width);
              expect(b.int(min, min + width)).toBe(x);
              expect(x >= min && x <= min + width).toBe(true);
              const y = a.next();
              expect(b.next()).toBe(y);
              expect(y >= 0 && y < 1).toBe(true);
            }
          },
        ),
        { numRuns: 150 },
      );
    });
  });
});
