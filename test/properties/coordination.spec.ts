import fc from 'fast-check';
import { simulate } from '../../src/simulate.js';
import { faultPlan } from '../../streams/faultPlan.js';
import { MemoryJournal } from '../../streams/journal.js';
import { checkInvariants, checkJournal } from './invariants.js';

// Fault tolerance, property by property, over generated fault plans. CI runs 100 plans per
// topology (500 in all); `npm run test:properties -- 10000` runs many more. A failure prints the
// seed and path: replay with fc.assert(…, { seed, path }).
const RUNS = Number(process.env['RXSWARM_PROPERTY_RUNS'] ?? 100);
const AGENTS = ['agent-0', 'agent-1', 'agent-2', 'agent-3', 'agent-4'];
const FAULTY = AGENTS.slice(0, 4); // agent-4 stays healthy
const SPAN_MS = 15_000; // about the length of a fault-free run below, so faults land while it works
const TOPOLOGIES = ['star', 'hierarchical', 'ring', 'mesh', 'adaptive'] as const;

describe.each(TOPOLOGIES)('fault tolerance under %s', topology => {
  it(`keeps every guarantee over ${RUNS} generated fault plans`, () => {
    fc.assert(
      fc.property(faultPlan({ agents: FAULTY, spanMs: SPAN_MS }), fc.integer({ min: 0, max: 2 ** 30 }), (faults, seed) => {
        // The ledger it records: replayed, it agrees with the report and retries nothing beyond maxAttempts.
        const journal = new MemoryJournal();
        const report = simulate({
          seed,
          topology,
          agents: AGENTS.length,
          subtasks: 40,
          workMs: { mean: 1500, jitter: 500 },
          faults,
          untilMs: 20 * 60_000,
          progressTimeoutMs: 10_000,
          adaptive: { evaluateEveryMs: 5000, minDwellMs: 10_000 },
        }, { journal });
        checkInvariants(report, faults, FAULTY);
        checkJournal(journal, report);
      }),
      { numRuns: RUNS, verbose: 1 },
    );
  });
});

describe('determinism', () => {
  it('gives byte-identical reports and event logs for the same scenario and seed', () => {
    fc.assert(
      fc.property(faultPlan({ agents: FAULTY, spanMs: SPAN_MS }), fc.constantFrom(...TOPOLOGIES), fc.integer(), (faults, topology, seed) => {
        const scenario = { seed, topology, agents: AGENTS.length, subtasks: 20, faults, untilMs: 10 * 60_000 } as const;
        expect(JSON.stringify(simulate(scenario))).toBe(JSON.stringify(simulate(scenario)));
      }),
      { numRuns: 20 },
    );
  });
});
