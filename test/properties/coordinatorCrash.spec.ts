import fc from 'fast-check';
import { simulate } from '../../src/simulate.js';
import { faultPlan } from '../../streams/faultPlan.js';
import { formatFaultSpec } from '../../streams/faultSpec.js';
import { MemoryJournal } from '../../streams/journal.js';
import { checkInvariants, checkJournal, checkRecovery } from './invariants.js';

// Fault plans with coordinator crashes: the coordinator dies (its in-process agents with it) and a
// new one resumes from the journal, among the agents' and the network's faults. Sized for a
// two-core machine (a second or so per topology in `npm test`); `npm run test:properties` runs an
// eighth of its RXSWARM_PROPERTY_RUNS here (250 per topology for its 2,000), and
// `RXSWARM_CRASH_PROPERTY_RUNS=N` sets the count alone. A failure prints the seed and path (replay
// with fc.assert(…, { seed, path })) and the plan as a --faults spec (`rxswarm simulate --faults SPEC`).
const SCALED = process.env['RXSWARM_PROPERTY_RUNS'] === undefined ? 12 : Math.ceil(Number(process.env['RXSWARM_PROPERTY_RUNS']) / 8);
const RUNS = Number(process.env['RXSWARM_CRASH_PROPERTY_RUNS'] ?? SCALED);
const AGENTS = ['agent-0', 'agent-1', 'agent-2', 'agent-3', 'agent-4'];
const FAULTY = AGENTS.slice(0, 4); // agent-4 stays healthy (but for the coordinator's crashes, which take every agent down)
const SPAN_MS = 15_000;
const TOPOLOGIES = ['star', 'hierarchical', 'ring', 'mesh', 'adaptive'] as const;

describe.each(TOPOLOGIES)('coordinator crashes under %s', topology => {
  it(`keep every guarantee over ${RUNS} generated fault plans`, () => {
    fc.assert(
      fc.property(
        faultPlan({ agents: FAULTY, spanMs: SPAN_MS, maxFaults: 4, coordinatorCrashes: 2 }).filter(plan => plan.some(f => f.kind === 'coordinatorCrash')),
        fc.integer({ min: 0, max: 2 ** 30 }),
        (faults, seed) => {
          const journal = new MemoryJournal();
          const report = simulate({
            seed,
            topology,
            agents: AGENTS.length,
            subtasks: 30,
            workMs: { mean: 1500, jitter: 500 },
            faults,
            untilMs: 20 * 60_000,
            progressTimeoutMs: 10_000,
            adaptive: { evaluateEveryMs: 5000, minDwellMs: 10_000 },
          }, { journal });
          try {
            checkInvariants(report, faults, FAULTY);
            checkRecovery(report, faults);
            checkJournal(journal, report);
          } catch (err) {
            console.error(`seed ${seed}, --faults ${formatFaultSpec(faults)}`);
            throw err;
          }
        },
      ),
      { numRuns: RUNS, verbose: 1 },
    );
  });
});

describe('determinism across coordinator crashes', () => {
  it('gives byte-identical reports for the same scenario and seed', () => {
    fc.assert(
      fc.property(faultPlan({ agents: FAULTY, spanMs: SPAN_MS, coordinatorCrashes: 2 }), fc.constantFrom(...TOPOLOGIES), fc.integer(), (faults, topology, seed) => {
        const scenario = { seed, topology, agents: AGENTS.length, subtasks: 15, faults, untilMs: 10 * 60_000 } as const;
        expect(JSON.stringify(simulate(scenario))).toBe(JSON.stringify(simulate(scenario)));
      }),
      { numRuns: 5, verbose: 1 },
    );
  });
});
