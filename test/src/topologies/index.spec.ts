import fc from 'fast-check';
import {
  chooseInitial, compareLeadership, coordinationScore, hierarchical, mesh, ring, star, topologies, topologyFor,
} from '../../../src/topologies/index.js';
import { TOPOLOGY_NAMES, type AgentProfile, type TopologyName } from '../../../src/topology.js';
import { decideProtocol } from '../../../operators/adaptiveSwitch.js';

describe('topologies', () => {
  it('names every topology with a layout', () => {
    expect(Object.keys(topologies)).toEqual([...TOPOLOGY_NAMES]);
    expect(topologies).toEqual({ hierarchical, mesh, ring, star });
    for (const name of TOPOLOGY_NAMES) {
      expect(topologyFor(name)).toBe(topologies[name]);
      expect(topologyFor(name).name).toBe(name);
      expect(topologyFor(name).layout([{ id: 'a', capabilities: [], successRate: 1 }]).topology).toBe(name);
    }
  });

  it('rejects adaptive and unknown names with a RangeError', () => {
    expect(() => topologyFor('adaptive' as TopologyName)).toThrow(RangeError);
    expect(() => topologyFor('adaptive' as TopologyName)).toThrow(/adaptive is not a layout/);
    expect(() => topologyFor('torus' as TopologyName)).toThrow(/topology must be one of hierarchical, mesh, ring, star, got "torus"/);
  });

  describe('chooseInitial: the decision matrix', () => {
    const cases: [agentCount: number, complexity: 'low' | 'medium' | 'high' | undefined, intensity: 'low' | 'medium' | 'high' | undefined, chosen: TopologyName][] = [
      [0, undefined, undefined, 'hierarchical'],
      [3, 'high', 'high', 'hierarchical'],
      [11, 'high', 'high', 'hierarchical'],
      [1000, 'low', 'low', 'hierarchical'],
      [6, 'high', 'high', 'mesh'],
      [6, 'medium', 'low', 'star'],
      [10, 'high', 'low', 'star'],
      [4, undefined, undefined, 'ring'],
      [6, 'high', 'medium', 'ring'],
    ];
    it.each(cases)('%i agents, %s complexity, %s coordination → %s', (agentCount, complexity, coordinationIntensity, chosen) => {
      expect(chooseInitial({
        agentCount,
        ...(complexity === undefined ? {} : { complexity }),
        ...(coordinationIntensity === undefined ? {} : { coordinationIntensity }),
      })).toBe(chosen);
    });

    it('agrees with decideProtocol and names a topology (fast-check)', () => {
      const level = fc.constantFrom('low' as const, 'medium' as const, 'high' as const);
      fc.assert(
        fc.property(fc.nat({ max: 2000 }), level, level, (agentCount, complexity, coordinationIntensity) => {
          const context = { agentCount, complexity, coordinationIntensity };
          expect(chooseInitial(context)).toBe(decideProtocol(context));
          expect(TOPOLOGY_NAMES).toContain(chooseInitial(context));
        }),
        { numRuns: 200 },
      );
    });

    it('rejects a bad context naming the field', () => {
      expect(() => chooseInitial({ agentCount: -1 })).toThrow(/agentCount/);
      expect(() => chooseInitial({ agentCount: 4, complexity: 'huge' as 'high' })).toThrow(/complexity/);
    });
  });

  describe('coordinationScore', () => {
    const agent = (capabilities: string[], successRate: number): AgentProfile => ({ id: 'x', capabilities, successRate });
    const cases: [capabilities: string[], successRate: number, score: number][] = [
      [[], 0, 0],
      [[], 1, 0.3],
      [['task_delegation'], 0, 0.3],
      [['resource_allocation'], 0, 0.2],
      [['conflict_resolution'], 0, 0.2],
      [['task_delegation', 'resource_allocation', 'conflict_resolution'], 1, 1],
      [['task_delegation', 'task_delegation', 'compute'], 0.5, 0.45],
    ];
    it.each(cases)('%j at success rate %d scores %d', (capabilities, successRate, score) => {
      expect(coordinationScore(agent(capabilities, successRate))).toBeCloseTo(score, 12);
    });

    it('orders leaders as a total order (fast-check)', () => {
      const profile = fc.record({
        id: fc.string({ maxLength: 3 }),
        capabilities: fc.subarray(['task_delegation', 'resource_allocation', 'conflict_resolution', 'compute']),
        successRate: fc.constantFrom(0, 0.5, 1),
      });
      fc.assert(
        fc.property(profile, profile, profile, (a, b, c) => {
          expect(Math.sign(compareLeadership(a, b))).toBe(-Math.sign(compareLeadership(b, a)) || 0);
          if (compareLeadership(a, b) <= 0 && compareLeadership(b, c) <= 0) expect(compareLeadership(a, c)).toBeLessThanOrEqual(0);
          if (a.id !== b.id) expect(compareLeadership(a, b)).not.toBe(0);
        }),
        { numRuns: 200 },
      );
    });
  });
});
