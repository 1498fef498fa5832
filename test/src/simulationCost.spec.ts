import { costWarning, estimateSimulation, WARN_WALL_MS } from '../../src/simulationCost.js';

const HOUR = 3_600_000;

describe('estimateSimulation', () => {
  // Measured runs of simulate() (seed 1, no faults): the estimate is within a factor of about two.
  it.each([
    // topology, agents, subtasks, measured virtual ms, messages, wall ms
    ['star', 200, 2000, 2216, 11_177, 603],
    ['hierarchical', 2000, 4000, 528, 29_812, 758],
    ['ring', 400, 2000, 4981, 564_004, 2192],
    ['ring', 1000, 1000, 4245, 1_011_982, 5390],
    ['mesh', 200, 1000, 1146, 83_000, 169],
    ['mesh', 1000, 200, 255, 1_000_600, 4285],
    ['mesh', 1500, 50, 248, 2_250_150, 27_270], // CPU time, beside a test run
    ['ring', 1500, 3000, 8369, 5_515_260, 17_965], // CPU time on a busy machine (routes shared between hops)
    ['star', 10_000, 10_000, 261, 69_997, 2571],
  ] as const)('%s with %d agents and %d subtasks: about %d virtual ms, %d messages', (topology, agents, subtasks, virtualMs, messages, wallMs) => {
    const cost = estimateSimulation({ topology, agents, subtasks, untilMs: HOUR });
    expect(cost.messages / messages).toBeGreaterThan(0.5);
    expect(cost.messages / messages).toBeLessThan(2);
    expect(cost.wallMs / wallMs).toBeGreaterThan(0.3); // small runs pay a start-up the model leaves out
    expect(cost.wallMs / wallMs).toBeLessThan(4);
    expect(cost.virtualMs / virtualMs).toBeGreaterThan(0.4);
    expect(cost.virtualMs / virtualMs).toBeLessThan(2);
  });

  it('grows with agents squared on a mesh and with agents per subtask on a ring', () => {
    const mesh = (agents: number) => estimateSimulation({ topology: 'mesh', agents, subtasks: 200, untilMs: HOUR }).messages;
    expect(mesh(5000) / mesh(1000)).toBeGreaterThan(20);
    const ring = (agents: number) => estimateSimulation({ topology: 'ring', agents, subtasks: 5000, untilMs: HOUR }).messages;
    expect(ring(2000) / ring(1000)).toBeGreaterThan(1.8);
  });

  it('runs at least until the last fault has settled, and never past untilMs', () => {
    const quiet = estimateSimulation({ topology: 'star', agents: 10, subtasks: 10, untilMs: HOUR });
    const late = estimateSimulation({ topology: 'star', agents: 10, subtasks: 10, untilMs: HOUR, faults: [{ kind: 'partition', groups: [[], ['agent-1']], atMs: 1000, healAtMs: 600_000 }] });
    expect(quiet.virtualMs).toBe(210);
    expect(late.virtualMs).toBe(605_000);
    expect(estimateSimulation({ topology: 'mesh', agents: 10, subtasks: 10, untilMs: 60_000, faults: [{ kind: 'crash', agent: 'agent-1', atMs: HOUR }] }).virtualMs).toBe(60_000);
  });

  it('takes adaptive as the decision matrix starts it', () => {
    expect(estimateSimulation({ topology: 'adaptive', agents: 50, subtasks: 10, untilMs: HOUR }).topology).toBe('hierarchical');
    expect(estimateSimulation({ topology: 'adaptive', agents: 6, subtasks: 10, untilMs: HOUR }).topology).toBe('ring');
  });
});

describe('costWarning', () => {
  it.each([
    ['mesh', 5000, 200, /^warning: mesh with 5000 agents and 200 subtasks over ~0\.2 s of virtual time is about 30 million messages \(every agent heartbeats every other agent: 5000 × 4999 beats a virtual second\): expect roughly 14 min of wall time and 4\.0 GB of memory\./],
    ['ring', 2000, 5000, /^warning: ring with 2000 agents .* about 10 million messages \(every subtask travels the ring: about 2001 hops each\): expect roughly \d+ (min|s) of wall time/],
    ['ring', 10_000, 10_000, /about 100 million messages .* and 6\.\d GB of memory\. .* Node's heap must be raised for it: NODE_OPTIONS=--max-old-space-size=\d+\.$/],
    ['adaptive', 10_000, 1_000_000, /^warning: adaptive \(starting as hierarchical\) with 10000 agents and 1000000 subtasks .*: expect roughly \d+ min of wall time/],
  ] as const)('warns about %s with %d agents and %d subtasks', (topology, agents, subtasks, message) => {
    expect(costWarning({ topology, agents, subtasks, untilMs: HOUR })).toMatch(message);
  });

  it.each([
    ['star', 10, 200],
    ['mesh', 200, 1000],
    ['ring', 50, 5000],
    ['star', 10_000, 10_000],
  ] as const)('keeps quiet about %s with %d agents and %d subtasks', (topology, agents, subtasks) => {
    expect(estimateSimulation({ topology, agents, subtasks, untilMs: HOUR }).wallMs).toBeLessThanOrEqual(WARN_WALL_MS);
    expect(costWarning({ topology, agents, subtasks, untilMs: HOUR })).toBeUndefined();
  });
});
