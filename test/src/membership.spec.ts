import { Candidates, Membership, sameCapabilities, type AgentRecord } from '../../src/membership.js';
import type { Attempt } from '../../src/taskRun.js';

/** A stand-in for a subtask in flight: membership only counts them. */
const work = (): Attempt => ({}) as Attempt;

function team(specs: ReadonlyArray<readonly [id: string, capabilities: readonly string[], slots?: number]>, maxSlotsPerAgent = 4): Membership {
  const members = new Membership(maxSlotsPerAgent);
  for (const [id, capabilities, slots = 1] of specs) members.add(id, capabilities, undefined, slots, 'live');
  return members;
}

const ids = (records: readonly AgentRecord[]): string[] => records.map(r => r.id);

describe('Membership', () => {
  it('keeps records in the order they were added, indexed by position', () => {
    const members = team([['a', []], ['b', ['code']], ['c', ['code', 'review']]]);
    expect(members.size).toBe(3);
    expect(ids(members.list)).toEqual(['a', 'b', 'c']);
    expect(members.list.map(r => r.index)).toEqual([0, 1, 2]);
    expect(members.get('b')?.capabilities).toEqual(['code']);
    expect(members.has('z')).toBe(false);
    expect(ids([...members.values()])).toEqual(['a', 'b', 'c']);
  });

  it.each([
    // capabilities needed, capable live agents, free ones
    [undefined, 3, ['a', 'b', 'c']],
    [[], 3, ['a', 'b', 'c']],
    [['code'], 2, ['b', 'c']],
    [['code', 'review'], 1, ['c']],
    [['design'], 0, []],
  ] as const)('candidates for %j: %i capable, free %j', (needed, capable, free) => {
    const members = team([['a', []], ['b', ['code']], ['c', ['code', 'review']]]);
    const candidates = members.candidates({ id: 's', payload: null, ...(needed === undefined ? {} : { capabilities: needed }) }, new Map());
    expect(candidates.live).toBe(3);
    expect(candidates.capable).toBe(capable);
    expect(ids(candidates.free)).toEqual(free);
    expect(candidates.ids).toEqual(free);
  });

  it('reuses a capability set\'s candidates within a pass', () => {
    const members = team([['a', ['code']], ['b', ['code']]]);
    const groups = new Map<string, Candidates>();
    const subtask = { id: 's', payload: null, capabilities: ['code'] };
    expect(members.candidates(subtask, groups)).toBe(members.candidates(subtask, groups));
    expect(groups.size).toBe(1);
  });

  it('frees and fills an agent\'s bit as its work and status change (through touch)', () => {
    const members = team([['a', [], 2], ['b', []]]);
    const a = members.get('a') as AgentRecord;
    a.granted = 2; // a remote agent earns its slots; this one has earned both
    members.touch(a);
    const free = (): string[] => ids(members.candidates({ id: 's', payload: null }, new Map()).free);
    a.inFlight.add(work());
    members.touch(a);
    expect(free()).toEqual(['a', 'b']); // one of two slots taken
    a.inFlight.add(work());
    members.touch(a);
    expect(free()).toEqual(['b']);
    a.inFlight.clear();
    a.status = 'suspected';
    members.touch(a);
    expect(free()).toEqual(['b']);
    expect(members.candidates({ id: 's', payload: null }, new Map()).live).toBe(1);
    a.status = 'live';
    members.touch(a);
    expect(free()).toEqual(['a', 'b']);
  });

  it('counts changes: every touch, and each time an agent becomes live or stops being', () => {
    const members = team([['a', []]]);
    const a = members.get('a') as AgentRecord;
    const { version, liveChanges } = members;
    members.touch(a);
    expect([members.version - version, members.liveChanges - liveChanges]).toEqual([1, 0]);
    a.status = 'down';
    members.touch(a);
    expect([members.version - version, members.liveChanges - liveChanges]).toEqual([2, 1]);
    members.touch(undefined);
    expect([members.version - version, members.liveChanges - liveChanges]).toEqual([3, 1]);
  });

  it('recounts capable agents once the live agents change', () => {
    const members = team([['a', ['code']], ['b', ['code']]]);
    const subtask = { id: 's', payload: null, capabilities: ['code'] };
    expect(members.candidates(subtask, new Map()).capable).toBe(2);
    const b = members.get('b') as AgentRecord;
    b.status = 'quarantined';
    members.touch(b);
    expect(members.candidates(subtask, new Map()).capable).toBe(1);
    expect(ids(members.capableLive(subtask))).toEqual(['a']);
    expect(members.liveIds()).toEqual(['a']);
  });

  it('grows its free-agent set past its first 128 agents', () => {
    const specs = Array.from({ length: 200 }, (_, i) => [`agent-${i}`, []] as const);
    const members = team(specs);
    expect(members.candidates({ id: 's', payload: null }, new Map()).free).toHaveLength(200);
  });

  it.each([
    // remote slots, granted, max per agent → slots
    [4, 1, 8, 1],
    [4, 3, 8, 3],
    [4, 8, 8, 4],
    [8, 8, 2, 2],
  ])('a remote agent with %i slots, %i granted, at most %i per agent, runs %i', (slots, granted, max, expected) => {
    const members = new Membership(max);
    const record = members.add('r', [], undefined, slots, 'live');
    record.granted = granted;
    expect(members.slotsOf(record)).toBe(expected);
  });

  it('adds a standby agent as not live', () => {
    const members = new Membership(4);
    members.add('s', [], undefined, 1, 'standby');
    expect(members.liveIds()).toEqual([]);
    expect(members.candidates({ id: 'x', payload: null }, new Map()).live).toBe(0);
  });

  it('profiles an agent by its success rate (1 before it has run anything)', () => {
    const members = team([['a', ['code']], ['b', []]]);
    const a = members.get('a') as AgentRecord;
    expect(members.profile(a)).toEqual({ id: 'a', capabilities: ['code'], successRate: 1 });
    a.completed = 3;
    a.failures = 1;
    expect(members.profile(a).successRate).toBe(0.75);
    expect(members.liveProfiles().map(p => p.id)).toEqual(['a', 'b']);
  });

  it('a stand-in has every capability of the agent it replaces', () => {
    const members = team([['a', ['code', 'review']], ['b', ['code']], ['c', []]]);
    const [a, b, c] = members.list as [AgentRecord, AgentRecord, AgentRecord];
    expect([sameCapabilities(a, b), sameCapabilities(b, a), sameCapabilities(b, c), sameCapabilities(c, b)]).toEqual([true, false, true, false]);
  });
});
