import { Subject, map, timer } from 'rxjs';
import { createCoordinator, type AgentSlot } from '../../src/coordinator.js';
import type { CoordinationEvent, CoordinationResult } from '../../src/events.js';
import { ProtocolProbe, type LiveTeam } from '../../src/protocolProbe.js';
import type { AgentProfile, TopologyName } from '../../src/topology.js';
import type { InProcessAgent } from '../../streams/task.js';
import { VirtualScheduler } from '../../streams/virtualScheduler.js';

/** A team of `n` live agents (agent-0 can coordinate, so it is the root and the hub); `change()` marks one down. */
function team(n: number): LiveTeam & { change(): void; readonly built: number } {
  let profiles: AgentProfile[] = Array.from({ length: n }, (_, i) => ({ id: `agent-${i}`, capabilities: i === 0 ? ['task_delegation'] : [], successRate: 1 }));
  let changes = 0;
  let built = 0;
  return {
    get liveChanges() {
      return changes;
    },
    get built() {
      return built;
    },
    liveProfiles() {
      built++;
      return profiles;
    },
    change() {
      profiles = profiles.slice(0, -1);
      changes++;
    },
  };
}

const CANDIDATES: readonly TopologyName[] = ['mesh', 'ring', 'star'];

/** The protocol of each of `n` assignments (undefined: the layout in force). */
function run(probe: ProtocolProbe, n: number, current: TopologyName = 'hierarchical', live = team(12)): Array<string | undefined> {
  return Array.from({ length: n }, (_, i) => probe.next(current, `agent-${1 + (i % 11)}`, live)?.protocol);
}

describe('ProtocolProbe', () => {
  it('routes one assignment in 1 / share under a candidate, the candidates in turn', () => {
    const probe = new ProtocolProbe({ share: 0.25, candidates: CANDIDATES, initial: 'hierarchical' });
    expect(run(probe, 12)).toEqual([undefined, undefined, undefined, 'mesh', undefined, undefined, undefined, 'ring', undefined, undefined, undefined, 'star']);
  });

  it('probes exactly every tenth at a share of 0.1 (a rounding error of the sum does not skip one)', () => {
    const probe = new ProtocolProbe({ share: 0.1, candidates: CANDIDATES, initial: 'hierarchical' });
    const probed = run(probe, 100).flatMap((p, i) => (p === undefined ? [] : [i + 1]));
    expect(probed).toEqual([10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
  });

  it('gives each probe the route of the candidate’s own layout, and its way back', () => {
    const probe = new ProtocolProbe({ share: 0.5, candidates: ['mesh', 'star', 'ring'], initial: 'hierarchical' });
    const live = team(6);
    expect(probe.next('hierarchical', 'agent-3', live)).toBeUndefined();
    expect(probe.next('hierarchical', 'agent-3', live)).toEqual({ protocol: 'mesh', route: [], reply: [] }); // direct
    probe.next('hierarchical', 'agent-3', live);
    expect(probe.next('hierarchical', 'agent-3', live)).toEqual({ protocol: 'star', route: ['agent-0'], reply: [] }); // via the hub, the result straight back
    probe.next('hierarchical', 'agent-3', live);
    expect(probe.next('hierarchical', 'agent-3', live)).toEqual({ protocol: 'ring', route: ['agent-0', 'agent-1', 'agent-2'], reply: ['agent-2', 'agent-1', 'agent-0'] }); // round the ring and back
  });

  it('never probes the protocol in force, nor one that has been in force', () => {
    const inForce = new Subject<string>();
    const probe = new ProtocolProbe({ share: 0.5, candidates: CANDIDATES, initial: 'hierarchical', inForce });
    expect(run(probe, 6)).toEqual([undefined, 'mesh', undefined, 'ring', undefined, 'star']);
    inForce.next('mesh'); // switched to mesh: hierarchical and mesh have both been in force
    expect(run(probe, 6, 'mesh')).toEqual([undefined, 'ring', undefined, 'star', undefined, 'ring']);
    inForce.next('star');
    expect(run(probe, 4, 'star')).toEqual([undefined, 'ring', undefined, 'ring']);
    inForce.next('ring'); // every candidate has had its turn: probing is over, and no share is saved up
    expect(run(probe, 6, 'ring')).toEqual([undefined, undefined, undefined, undefined, undefined, undefined]);
  });

  it('stops following the protocols in force when closed', () => {
    const inForce = new Subject<string>();
    const probe = new ProtocolProbe({ share: 0.5, candidates: CANDIDATES, initial: 'hierarchical', inForce });
    probe.close();
    expect(inForce.observed).toBe(false);
  });

  it('builds a candidate’s layout once, and again only when the live team changed', () => {
    const probe = new ProtocolProbe({ share: 0.5, candidates: ['mesh'], initial: 'hierarchical' });
    const live = team(5);
    run(probe, 10, 'hierarchical', live);
    expect(live.built).toBe(1);
    live.change();
    run(probe, 10, 'hierarchical', live);
    expect(live.built).toBe(2);
  });

  it('probes nothing at a share of 0', () => {
    const probe = new ProtocolProbe({ share: 0, candidates: CANDIDATES, initial: 'hierarchical' });
    expect(run(probe, 50).every(p => p === undefined)).toBe(true);
  });

  it.each([[-0.1], [1], [Number.NaN], ['0.1']])('rejects a share of %s', share => {
    expect(() => new ProtocolProbe({ share: share as number, candidates: CANDIDATES, initial: 'hierarchical' })).toThrow(RangeError);
    expect(() => new ProtocolProbe({ share: share as number, candidates: CANDIDATES, initial: 'hierarchical' })).toThrow(/share must be a number in \[0, 1\)/);
  });

  it('rejects a candidate that is not a topology', () => {
    expect(() => new ProtocolProbe({ share: 0.1, candidates: ['gossip' as TopologyName], initial: 'hierarchical' })).toThrow(/topology must be one of/);
  });
});

describe('adaptive.explore in the engine', () => {
  /** 40 subtasks of 200 ms on six agents under the adaptive protocol (the matrix starts a ring), to the end. */
  function runAdaptive(explore: number | undefined): { result: CoordinationResult; events: CoordinationEvent[] } {
    const scheduler = new VirtualScheduler();
    const worker = (id: string): InProcessAgent => ({ id, capabilities: [], handle: subtask => timer(200, scheduler).pipe(map(() => subtask.id)) });
    const agents: AgentSlot[] = Array.from({ length: 6 }, (_, i) => ({ agent: worker(`agent-${i}`), factory: () => worker(`agent-${i}`) }));
    const coordinator = createCoordinator({
      agents, topology: 'adaptive', scheduler, seed: 3,
      adaptive: { evaluateEveryMs: 60_000, ...(explore === undefined ? {} : { explore }) },
    });
    const events: CoordinationEvent[] = [];
    let result: CoordinationResult | undefined;
    coordinator.run$({ id: 't', subtasks: Array.from({ length: 40 }, (_, i) => ({ id: `s-${i}` })) }).subscribe(e => {
      events.push(e);
      if (e.type === 'task.completed') result = e.result;
    });
    for (let t = 0; result === undefined && t < 60_000; t += 50) scheduler.advanceTo(t);
    if (result === undefined) throw new Error('run did not finish');
    return { result, events };
  }

  it('measures the candidates on a share of the assignments, each subtask still run once', () => {
    const { result, events } = runAdaptive(0.25);
    expect(result.success).toBe(true);
    const completed = events.filter(e => e.type === 'subtask.completed').map(e => (e as { subtaskId: string }).subtaskId);
    expect(new Set(completed).size).toBe(40);
    expect(completed).toHaveLength(40);
    expect(result.protocol).toBe('ring');
    const runs = Object.fromEntries(Object.entries(result.metrics.performance).map(([p, s]) => [p, s.count]));
    // One in four of the 40 first assignments, the three candidates in turn: 4, 3 and 3.
    expect(runs).toEqual({ ring: 30, hierarchical: 4, mesh: 3, star: 3 });
  });

  it('measures only the protocol in force without it', () => {
    const { result } = runAdaptive(undefined);
    expect(Object.keys(result.metrics.performance)).toEqual(['ring']);
  });

  it.each([[1], [-0.5], [Number.NaN]])('rejects adaptive.explore %s when the coordinator is built', explore => {
    const agent: InProcessAgent = { id: 'a', capabilities: [], handle: () => timer(1) };
    expect(() => createCoordinator({ agents: [agent], adaptive: { explore } })).toThrow(/adaptive\.explore must be a number in \[0, 1\)/);
  });
});
