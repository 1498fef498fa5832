import fc from 'fast-check';
import { simulate, type SimulationReport } from '../../src/simulate.js';
import { faultPlan } from '../../streams/faultPlan.js';
import type { Fault } from '../../streams/faults.js';
import type { CoordinationEvent } from '../../src/events.js';

// Fault tolerance, property by property, over generated fault plans. CI runs 100 plans per
// topology (500 in all); `npm run test:properties -- 10000` runs many more. A failure prints the
// seed and path: replay with fc.assert(…, { seed, path }).
const RUNS = Number(process.env['RXSWARM_PROPERTY_RUNS'] ?? 100);
const AGENTS = ['agent-0', 'agent-1', 'agent-2', 'agent-3', 'agent-4'];
const FAULTY = AGENTS.slice(0, 4); // agent-4 stays healthy
const SPAN_MS = 15_000; // about the length of a fault-free run below, so faults land while it works
const TOPOLOGIES = ['star', 'hierarchical', 'ring', 'mesh', 'adaptive'] as const;

/** Was the engine already treating `agentId` as gone at `t`? (Then a crash changes nothing it can see.) */
function goneAt(events: readonly CoordinationEvent[], agentId: string, t: number): boolean {
  let gone = false;
  for (const e of events) {
    if (e.at > t) break;
    if (!('agentId' in e) || e.agentId !== agentId) continue;
    if (e.type === 'agent.suspected' || e.type === 'agent.down') gone = true;
    if (e.type === 'agent.recovered' || e.type === 'agent.joined' || e.type === 'agent.restarted') gone = false;
  }
  return gone;
}

/** The agent was hung or crashed (not restarted since) when `fault` hit it. */
function alreadyFaulted(faults: readonly Fault[], fault: Fault & { agent: string; atMs: number }): boolean {
  let state = 'ok';
  for (const f of faults) {
    if (f === fault) break;
    if (!('agent' in f) || f.agent !== fault.agent) continue;
    if (f.kind === 'crash' || f.kind === 'hang') state = f.kind;
    if (f.kind === 'restart') state = 'ok';
  }
  return state !== 'ok';
}

function checkInvariants(report: SimulationReport, faults: readonly Fault[]): void {
  expect(report.lost).toBe(0);
  expect(report.duplicatesAccepted).toBe(0);
  expect(report.completed + report.failed).toBe(report.subtasks);
  // One healthy, capable agent remains: everything completes.
  expect(report.result.failed).toEqual({});
  expect(report.falseSuspicions).toBe(0);
  for (const f of faults) {
    if (f.kind !== 'crash' || alreadyFaulted(faults, f) || goneAt(report.events, f.agent, f.atMs)) continue;
    const bound = f.atMs + report.detectionBoundMs;
    if (report.finishedAtMs < bound) continue; // the run ended first: nobody was watching
    // Restarted before it could be missed: nothing left to detect.
    if (faults.some(r => r.kind === 'restart' && r.agent === f.agent && r.atMs >= f.atMs && r.atMs < bound && faults.indexOf(r) > faults.indexOf(f))) continue;
    // Beats lost before the crash (dropped, or cut off by a partition) stretch the intervals phi
    // learned, and with them its bound: phi adapts to what it saw, which is its point.
    if (faults.some(d => d.kind === 'drop' && (d.agents ?? FAULTY).includes(f.agent) && (d.fromMs ?? 0) < f.atMs)) continue;
    if (faults.some(p => p.kind === 'partition' && p.groups.slice(1).some(g => g.includes(f.agent)) && p.atMs < f.atMs)) continue;
    const suspected = report.events.find(
      e => (e.type === 'agent.suspected' || e.type === 'agent.down' || (e.type === 'fault.detected' && e.kind === 'agent_timeout')) && e.agentId === f.agent && e.at >= f.atMs,
    );
    expect(suspected, `crash of ${f.agent} at ${f.atMs} never detected`).toBeDefined();
    expect(suspected!.at - f.atMs).toBeLessThanOrEqual(report.detectionBoundMs);
  }
  // Usage at the threshold rides the agent's next heartbeat: resource_exhaustion within one beat.
  for (const detection of report.detections) {
    if (detection.kind !== 'exhaust') continue;
    const f = faults.find(x => x.kind === 'exhaust' && x.agent === detection.agentId && x.atMs === detection.faultAtMs) as Fault & { agent: string; atMs: number };
    const until = f.atMs + BEAT_MS;
    if (report.finishedAtMs < until || alreadyFaulted(faults, f)) continue;
    // Its beats must reach the coordinator, and nothing else may change what they say meanwhile.
    const meddles = (x: Fault): boolean =>
      x !== f &&
      (x.kind === 'drop'
        ? (x.agents ?? FAULTY).includes(f.agent) && (x.fromMs ?? 0) < until && (x.toMs ?? Infinity) > f.atMs
        : x.kind === 'partition'
          ? x.groups.slice(1).some(g => g.includes(f.agent)) && x.atMs < until && (x.healAtMs ?? Infinity) > f.atMs
          : x.kind === 'coordinatorCrash'
            ? x.atMs < until && x.restartAtMs >= f.atMs
            : x.agent === f.agent && x.atMs >= f.atMs && x.atMs < until);
    if (faults.some(meddles)) continue;
    // An earlier exhaustion of it not yet relieved: one episode, already detected.
    if (faults.some(x => x.kind === 'exhaust' && x.agent === f.agent && x.atMs < f.atMs)) continue;
    expect(detection.suspectedAtMs, `exhaust of ${f.agent} at ${f.atMs} never detected`).toBeDefined();
    expect(detection.suspectedAtMs! - f.atMs).toBeLessThanOrEqual(BEAT_MS);
  }
}

/** A heartbeat interval with its jitter, and the network's latency: the longest a usage waits for the coordinator. */
const BEAT_MS = 1000 + 100 + 3;

describe.each(TOPOLOGIES)('fault tolerance under %s', topology => {
  it(`keeps every guarantee over ${RUNS} generated fault plans`, () => {
    fc.assert(
      fc.property(faultPlan({ agents: FAULTY, spanMs: SPAN_MS }), fc.integer({ min: 0, max: 2 ** 30 }), (faults, seed) => {
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
        });
        checkInvariants(report, faults);
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
