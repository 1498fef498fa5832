import fc from 'fast-check';
import { FAULT_KINDS, validateFaults, type Fault } from '../../streams/faults.js';
import { faultPlan, type FaultPlanOptions } from '../../streams/faultPlan.js';
import { FAULT_SPEC_HELP, describeFault, formatFaultSpec, parseFaultSpec } from '../../streams/faultSpec.js';

const AGENTS = ['agent-0', 'agent-1', 'agent-2', 'agent-3'];

/** Every agent id a fault names. */
function named(f: Fault): readonly string[] {
  switch (f.kind) {
    case 'drop':
      return f.agents ?? [];
    case 'partition':
      return f.groups.flat();
    case 'coordinatorCrash':
      return [];
    case 'deadlock':
      return f.agents;
    default:
      return [f.agent];
  }
}

const startOf = (f: Fault): number => (f.kind === 'drop' ? (f.fromMs ?? 0) : f.atMs);

/** What `parseFaultSpec(formatFaultSpec(…))` gives back: a partition's first group is implicit, a drop's window starts at 0. */
function normalized(f: Fault): Fault {
  if (f.kind === 'partition') return { ...f, groups: [[], ...f.groups.slice(1)] };
  if (f.kind === 'drop' && f.toMs !== undefined && f.fromMs === undefined) return { ...f, fromMs: 0 };
  return f;
}

describe('parseFaultSpec', () => {
  const good: [spec: string, faults: Fault[]][] = [
    ['crash:agent-1@5000', [{ kind: 'crash', agent: 'agent-1', atMs: 5000 }]],
    ['hang:agent-2@8000', [{ kind: 'hang', agent: 'agent-2', atMs: 8000 }]],
    ['slow:agent-3@1000x4', [{ kind: 'slow', agent: 'agent-3', atMs: 1000, factor: 4 }]],
    ['slow:agent-3@1sx1.5', [{ kind: 'slow', agent: 'agent-3', atMs: 1000, factor: 1.5 }]],
    ['slow:agent-3@0x0.5', [{ kind: 'slow', agent: 'agent-3', atMs: 0, factor: 0.5 }]],
    ['restart:agent-1@9000', [{ kind: 'restart', agent: 'agent-1', atMs: 9000 }]],
    ['drop:0.1@0-60000', [{ kind: 'drop', rate: 0.1, fromMs: 0, toMs: 60_000 }]],
    ['drop:10%', [{ kind: 'drop', rate: 0.1 }]],
    ['drop:0', [{ kind: 'drop', rate: 0 }]],
    ['drop:.25@2m', [{ kind: 'drop', rate: 0.25, fromMs: 120_000 }]],
    ['drop:5%:agent-1+agent-2@10s', [{ kind: 'drop', rate: 0.05, fromMs: 10_000, agents: ['agent-1', 'agent-2'] }]],
    ['partition:agent-1+agent-2@3000-9000', [{ kind: 'partition', groups: [[], ['agent-1', 'agent-2']], atMs: 3000, healAtMs: 9000 }]],
    ['exhaust:agent-1@5s=0.95', [{ kind: 'exhaust', agent: 'agent-1', atMs: 5000, usage: 0.95 }]],
    ['exhaust:agent-2@1m=120%', [{ kind: 'exhaust', agent: 'agent-2', atMs: 60_000, usage: 1.2 }]],
    ['partition:agent-1/agent-2+agent-3@3s', [{ kind: 'partition', groups: [[], ['agent-1'], ['agent-2', 'agent-3']], atMs: 3000 }]],
    ['coordinatorCrash@5s-8s', [{ kind: 'coordinatorCrash', atMs: 5000, restartAtMs: 8000 }]],
    ['coordinatorCrash@2000-2000', [{ kind: 'coordinatorCrash', atMs: 2000, restartAtMs: 2000 }]],
    [
      'coordinatorCrash@1s-2s,crash:agent-1@1500,coordinatorCrash@3s-1m',
      [
        { kind: 'coordinatorCrash', atMs: 1000, restartAtMs: 2000 },
        { kind: 'crash', agent: 'agent-1', atMs: 1500 },
        { kind: 'coordinatorCrash', atMs: 3000, restartAtMs: 60_000 },
      ],
    ],
    // Time units.
    ['crash:agent-1@250ms', [{ kind: 'crash', agent: 'agent-1', atMs: 250 }]],
    ['crash:agent-1@1.5s', [{ kind: 'crash', agent: 'agent-1', atMs: 1500 }]],
    ['crash:agent-1@2m', [{ kind: 'crash', agent: 'agent-1', atMs: 120_000 }]],
    ['crash:agent-1@1.1h', [{ kind: 'crash', agent: 'agent-1', atMs: 3_960_000 }]],
    ['crash:agent-1@0.5', [{ kind: 'crash', agent: 'agent-1', atMs: 0.5 }]],
    // Blank specs, whitespace around faults.
    ['', []],
    ['   ', []],
    [
      ' crash:agent-1@5s ,  hang:agent-2@1s ',
      [
        { kind: 'crash', agent: 'agent-1', atMs: 5000 },
        { kind: 'hang', agent: 'agent-2', atMs: 1000 },
      ],
    ],
    [
      'crash:agent-1@5000,hang:agent-2@8000,slow:agent-3@1000x4,restart:agent-1@9000,drop:0.1@0-60000,partition:agent-1+agent-2@3000-9000',
      [
        { kind: 'crash', agent: 'agent-1', atMs: 5000 },
        { kind: 'hang', agent: 'agent-2', atMs: 8000 },
        { kind: 'slow', agent: 'agent-3', atMs: 1000, factor: 4 },
        { kind: 'restart', agent: 'agent-1', atMs: 9000 },
        { kind: 'drop', rate: 0.1, fromMs: 0, toMs: 60_000 },
        { kind: 'partition', groups: [[], ['agent-1', 'agent-2']], atMs: 3000, healAtMs: 9000 },
      ],
    ],
  ];

  it.each(good)('reads %j', (spec, faults) => {
    expect(parseFaultSpec(spec, AGENTS)).toStrictEqual(faults);
  });

  const bad: [spec: string, message: RegExp][] = [
    ['explode:agent-1@5', /^bad fault "explode:agent-1@5": unknown kind "explode" \(expected crash, hang, slow, restart, drop, partition, exhaust, deadlock, coordinatorCrash\)/],
    ['coordinatorCrash@5s', /bad fault "coordinatorCrash@5s": missing "-RESTART"/],
    ['coordinatorCrash:5s-8s', /expected coordinatorCrash@AT-RESTART \(e\.g\. coordinatorCrash@5s-8s\)/],
    ['coordinatorCrash@8s-5s', /restartAtMs must be >= atMs \(8000\), got 5000/],
    ['coordinatorCrash@1s-5s,coordinatorCrash@5s-9s', /the coordinator is down from 1000 to 5000 \(faults\[0\]\): it cannot crash again at 5000/],
    ['exhaust:agent-1@5s', /bad fault "exhaust:agent-1@5s": missing "=USAGE"/],
    ['exhaust:@5s=0.9', /missing agent \(e\.g\. exhaust:agent-1@5s=0\.95\)/],
    ['exhaust:agent-1@5s=lots', /bad usage "lots" \(e\.g\. 0\.95 or 95%\)/],
    ['exhaust:agent-9@5s=0.9', /agent names unknown agent "agent-9"/],
    ['crash agent-1@5', /bad fault "crash agent-1@5": expected KIND:/],
    ['crash:agent-9@5s', /bad fault "crash:agent-9@5s": agent names unknown agent "agent-9" \(known agents: agent-0, agent-1/],
    ['crash:agent-1', /bad fault "crash:agent-1": missing "@TIME"/],
    ['crash:@5s', /bad fault "crash:@5s": missing agent/],
    ['hang:agent-1@-5', /bad fault "hang:agent-1@-5": bad time "-5" \(e\.g\. 5000, 5000ms, 5s, 2m, 1h\)/],
    ['restart:agent-1@5x', /bad fault "restart:agent-1@5x": bad time "5x"/],
    ['crash:agent-1@5sec', /bad time "5sec"/],
    ['slow:agent-1@5s', /bad fault "slow:agent-1@5s": missing "xFACTOR"/],
    ['slow:agent-1@5sx0', /bad fault "slow:agent-1@5sx0": factor must be a finite number > 0, got 0/],
    ['slow:agent-1@5sxfast', /bad factor "fast"/],
    ['drop:1@0-5s', /bad fault "drop:1@0-5s": rate must be a number in \[0, 1\), got 1/],
    ['drop:100%', /rate must be a number in \[0, 1\), got 1/],
    ['drop:abc', /bad rate "abc"/],
    ['drop:0.1@9s-3s', /toMs must be >= fromMs \(9000\), got 3000/],
    ['drop:0.1:agent-9', /agents\[0\] names unknown agent "agent-9"/],
    ['drop:0.1:agent-1+agent-1', /agent "agent-1" is named twice/],
    ['drop:0.1:', /empty agent id/],
    ['drop:0.1@1s-2s-3s', /bad time window "1s-2s-3s"/],
    ['partition:agent-1@9s-3s', /healAtMs must be a finite number >= atMs \(9000\), got 3000/],
    ['partition:agent-1/agent-1@1s', /agent "agent-1" is named twice \(groups\[1\] and groups\[2\]\)/],
    ['partition:agent-1++agent-2@1s', /empty agent id in "agent-1\+\+agent-2"/],
    ['partition:agent-1/@1s', /empty agent id/],
    ['partition:@1s', /missing agents to cut off/],
    ['partition:agent-9@1s', /groups\[1\]\[0\] names unknown agent "agent-9"/],
    ['partition:agent-1', /missing "@TIME"/],
    ['crash:agent-1@5s,hang:agent-7@1s', /^bad fault "hang:agent-7@1s"/],
    ['crash:agent-1@5s,,hang:agent-2@1s', /fault 2 is empty \(stray comma\?\)/],
    ['crash:agent-1@5s,', /fault 2 is empty/],
  ];

  it.each(bad)('rejects %j with a RangeError naming it', (spec, message) => {
    expect(() => parseFaultSpec(spec, AGENTS)).toThrow(RangeError);
    expect(() => parseFaultSpec(spec, AGENTS)).toThrow(message);
  });

  it('rejects a spec that is not a string', () => {
    expect(() => parseFaultSpec(42 as unknown as string, AGENTS)).toThrow(/fault spec must be a string, got 42/);
  });

  it('lists at most eight known agents in an unknown-agent error', () => {
    const many = Array.from({ length: 12 }, (_, i) => `a${i}`);
    expect(() => parseFaultSpec('crash:zz@1s', many)).toThrow(/known agents: a0, a1, a2, a3, a4, a5, a6, a7 and 4 more\)/);
    expect(() => parseFaultSpec('crash:zz@1s', [])).toThrow(/no agents are known/);
  });
});

describe('FAULT_SPEC_HELP', () => {
  const examples = [...FAULT_SPEC_HELP.matchAll(/\b(?:crash|hang|slow|restart|drop|partition|exhaust|deadlock):\S+|\bcoordinatorCrash@\S+/g)].map(m => m[0]).filter(token => !/[A-Z]{2}/.test(token)); // not the placeholders (AGENT, TIME)

  it('gives an example of every kind, and every example parses', () => {
    const ids = Array.from({ length: 10 }, (_, i) => `agent-${i}`);
    const kinds = examples.map(example => {
      const [fault] = parseFaultSpec(example, ids);
      return fault!.kind;
    });
    expect(new Set(kinds)).toEqual(new Set(FAULT_KINDS));
  });
});

describe('formatFaultSpec', () => {
  const table: [faults: Fault[], spec: string][] = [
    [[], ''],
    [[{ kind: 'crash', agent: 'agent-1', atMs: 5000 }], 'crash:agent-1@5s'],
    [[{ kind: 'hang', agent: 'agent-2', atMs: 250 }], 'hang:agent-2@250ms'],
    [[{ kind: 'slow', agent: 'agent-3', atMs: 1000, factor: 4 }], 'slow:agent-3@1sx4'],
    [[{ kind: 'restart', agent: 'agent-1', atMs: 0 }], 'restart:agent-1@0s'],
    [[{ kind: 'exhaust', agent: 'agent-1', atMs: 5000, usage: 0.95 }], 'exhaust:agent-1@5s=0.95'],
    [[{ kind: 'drop', rate: 0.1 }], 'drop:0.1'],
    [[{ kind: 'drop', rate: 0.1, fromMs: 1500 }], 'drop:0.1@1.5s'],
    [[{ kind: 'drop', rate: 0.1, toMs: 60_000 }], 'drop:0.1@0s-1m'],
    [[{ kind: 'drop', rate: 0.3, fromMs: 0, toMs: 7_200_000, agents: ['agent-1', 'agent-2'] }], 'drop:0.3:agent-1+agent-2@0s-2h'],
    [[{ kind: 'partition', groups: [['agent-0'], ['agent-1', 'agent-2'], ['agent-3']], atMs: 3000, healAtMs: 9000 }], 'partition:agent-1+agent-2/agent-3@3s-9s'],
    [
      [
        { kind: 'crash', agent: 'agent-1', atMs: 61_500 },
        { kind: 'partition', groups: [[], ['agent-2']], atMs: 0.5 },
      ],
      'crash:agent-1@61.5s,partition:agent-2@0.5ms',
    ],
    [[{ kind: 'coordinatorCrash', atMs: 5000, restartAtMs: 90_000 }], 'coordinatorCrash@5s-90s'],
  ];

  it.each(table)('writes %j as %j, which reads back', (faults, spec) => {
    expect(formatFaultSpec(faults)).toBe(spec);
    expect(parseFaultSpec(spec, AGENTS)).toStrictEqual(faults.map(normalized));
  });

  it('refuses agent ids the syntax cannot hold', () => {
    expect(() => formatFaultSpec([{ kind: 'crash', agent: 'a@b', atMs: 0 }])).toThrow(/agent id "a@b" cannot be written/);
    expect(() => formatFaultSpec([{ kind: 'drop', rate: 0.1, agents: ['a b'] }])).toThrow(RangeError);
  });
});

describe('describeFault', () => {
  const table: [fault: Fault, line: string][] = [
    [{ kind: 'crash', agent: 'agent-1', atMs: 5000 }, 'agent-1 crashes at 5s'],
    [{ kind: 'hang', agent: 'agent-2', atMs: 8000 }, 'agent-2 hangs at 8s (keeps heartbeating, makes no progress)'],
    [{ kind: 'slow', agent: 'agent-3', atMs: 1000, factor: 4 }, 'agent-3 slows down 4× at 1s'],
    [{ kind: 'restart', agent: 'agent-1', atMs: 90_000 }, 'agent-1 restarts at 90s (loses its work in flight)'],
    [{ kind: 'exhaust', agent: 'agent-2', atMs: 5000, usage: 0.95 }, 'agent-2 reports 95% usage from 5s'],
    [{ kind: 'drop', rate: 0.1, fromMs: 0, toMs: 60_000 }, '10% of messages on every link lost from 0s to 1m'],
    [{ kind: 'drop', rate: 0.07, fromMs: 1500, agents: ['agent-1', 'agent-2'] }, '7% of messages to or from agent-1, agent-2 lost from 1.5s on'],
    [{ kind: 'drop', rate: 0.3 }, '30% of messages on every link lost throughout'],
    [{ kind: 'drop', rate: 0.001, toMs: 250 }, '0.1% of messages on every link lost from 0s to 250ms'],
    [{ kind: 'partition', groups: [[], ['agent-1', 'agent-2']], atMs: 3000, healAtMs: 9000 }, 'partition at 3s: {agent-1, agent-2} | {everyone else}, heals at 9s'],
    [
      { kind: 'partition', groups: [['agent-0'], ['agent-1'], ['agent-2']], atMs: 3_600_000 },
      'partition at 1h: {agent-1} | {agent-2} | {agent-0 and everyone else}, never heals',
    ],
    [{ kind: 'coordinatorCrash', atMs: 5000, restartAtMs: 8000 }, 'the coordinator crashes at 5s (its in-process agents with it) and resumes from its journal at 8s'],
  ];

  it.each(table)('describes %j', (fault, line) => {
    expect(describeFault(fault)).toBe(line);
  });
});

describe('validateFaults', () => {
  it('accepts the DESIGN.md shapes, with mutable arrays, and an empty list', () => {
    const groups: string[][] = [['agent-0'], ['agent-1', 'agent-2']];
    const faults: Fault[] = [
      { kind: 'crash', agent: 'agent-0', atMs: 0 },
      { kind: 'hang', agent: 'agent-1', atMs: 10.5 },
      { kind: 'slow', agent: 'agent-2', atMs: 100, factor: 0.5 },
      { kind: 'exhaust', agent: 'agent-2', atMs: 100, usage: 1.5 },
      { kind: 'restart', agent: 'agent-0', atMs: 200 },
      { kind: 'drop', rate: 0 },
      { kind: 'drop', rate: 0.999, fromMs: 5, toMs: 5, agents: ['agent-3'] },
      { kind: 'partition', groups, atMs: 1000 },
      { kind: 'partition', groups: [[], ['agent-3']], atMs: 1000, healAtMs: 1000 },
      { kind: 'coordinatorCrash', atMs: 300, restartAtMs: 300 },
      { kind: 'coordinatorCrash', atMs: 300.5, restartAtMs: 4000 },
    ];
    expect(() => validateFaults(faults, AGENTS)).not.toThrow();
    expect(() => validateFaults([], [])).not.toThrow();
  });

  it('treats a field set to undefined as absent', () => {
    expect(() => validateFaults([{ kind: 'drop', rate: 0.1, fromMs: undefined, toMs: undefined, agents: undefined }], AGENTS)).not.toThrow();
    expect(() => validateFaults([{ kind: 'partition', groups: [[], ['agent-1']], atMs: 0, healAtMs: undefined }], AGENTS)).not.toThrow();
  });

  it('narrows unknown input to faults', () => {
    const input: unknown = JSON.parse('[{"kind":"crash","agent":"agent-1","atMs":5}]');
    validateFaults(input, AGENTS);
    expectTypeOf(input).toEqualTypeOf<readonly Fault[]>();
  });

  const crash = { kind: 'crash', agent: 'agent-1', atMs: 0 };
  const bad: [name: string, faults: unknown, message: RegExp][] = [
    ['not an array', { kind: 'crash' }, /^faults must be an array, got \{"kind":"crash"\}$/],
    ['null fault', [null], /^faults\[0\]: a fault must be an object, got null$/],
    ['array as a fault', [[]], /faults\[0\]: a fault must be an object/],
    ['unknown kind', [{ kind: 'explode' }], /^faults\[0\]: unknown kind "explode" \(expected crash, hang, slow, restart, drop, partition, exhaust, deadlock, coordinatorCrash\)$/],
    ['missing kind', [{ agent: 'agent-1', atMs: 0 }], /unknown kind undefined/],
    ['second fault bad', [crash, { ...crash, agent: 'agent-9' }], /^faults\[1\]: agent names unknown agent "agent-9" \(known agents: agent-0, agent-1, agent-2, agent-3\)$/],
    ['agent not a string', [{ ...crash, agent: 1 }], /agent must be an agent id \(a string\), got 1/],
    ['negative time', [{ ...crash, atMs: -1 }], /atMs must be a finite number >= 0, got -1/],
    ['NaN time', [{ kind: 'hang', agent: 'agent-1', atMs: NaN }], /atMs must be a finite number >= 0, got NaN/],
    ['infinite time', [{ kind: 'restart', agent: 'agent-1', atMs: Infinity }], /atMs must be a finite number >= 0, got Infinity/],
    ['time as a string', [{ ...crash, atMs: '5' }], /atMs must be a finite number >= 0, got "5"/],
    ['missing time', [{ kind: 'crash', agent: 'agent-1' }], /atMs must be a finite number >= 0, got undefined/],
    ['misspelt field', [{ ...crash, at: 5 }], /unknown field "at" on a crash fault \(fields: kind, agent, atMs\)/],
    ['factor 0', [{ kind: 'slow', agent: 'agent-1', atMs: 0, factor: 0 }], /factor must be a finite number > 0, got 0/],
    ['negative factor', [{ kind: 'slow', agent: 'agent-1', atMs: 0, factor: -2 }], /factor must be a finite number > 0, got -2/],
    ['infinite factor', [{ kind: 'slow', agent: 'agent-1', atMs: 0, factor: Infinity }], /factor must be a finite number > 0, got Infinity/],
    ['NaN factor', [{ kind: 'slow', agent: 'agent-1', atMs: 0, factor: NaN }], /factor must be a finite number > 0, got NaN/],
    ['negative usage', [{ kind: 'exhaust', agent: 'agent-1', atMs: 0, usage: -0.1 }], /usage must be a finite number >= 0 \(a fraction of capacity\), got -0.1/],
    ['no usage', [{ kind: 'exhaust', agent: 'agent-1', atMs: 0 }], /usage must be a finite number >= 0/],
    ['rate 1', [{ kind: 'drop', rate: 1 }], /rate must be a number in \[0, 1\), got 1 \(total loss is a partition\)/],
    ['negative rate', [{ kind: 'drop', rate: -0.1 }], /rate must be a number in \[0, 1\), got -0.1/],
    ['NaN rate', [{ kind: 'drop', rate: NaN }], /rate must be a number in \[0, 1\), got NaN/],
    ['negative fromMs', [{ kind: 'drop', rate: 0.1, fromMs: -1 }], /fromMs must be a finite number >= 0, got -1/],
    ['negative toMs', [{ kind: 'drop', rate: 0.1, toMs: -1 }], /toMs must be a finite number >= 0, got -1/],
    ['toMs before fromMs', [{ kind: 'drop', rate: 0.1, fromMs: 10, toMs: 5 }], /toMs must be >= fromMs \(10\), got 5/],
    ['empty drop agents', [{ kind: 'drop', rate: 0.1, agents: [] }], /agents must name at least one agent \(omit it for loss on every link\)/],
    ['drop agents not an array', [{ kind: 'drop', rate: 0.1, agents: 'agent-1' }], /agents must be an array of agent ids, got "agent-1"/],
    ['unknown drop agent', [{ kind: 'drop', rate: 0.1, agents: ['agent-1', 'x'] }], /agents\[1\] names unknown agent "x"/],
    ['drop agent twice', [{ kind: 'drop', rate: 0.1, agents: ['agent-1', 'agent-1'] }], /agent "agent-1" is named twice \(agents and agents\)/],
    ['groups not an array', [{ kind: 'partition', groups: 'agent-1', atMs: 0 }], /groups must be an array of agent-id arrays, got "agent-1"/],
    ['one group', [{ kind: 'partition', groups: [['agent-1']], atMs: 0 }], /groups must hold at least two groups, got 1; the first group also holds every node named in no group/],
    ['a group not an array', [{ kind: 'partition', groups: [[], 'agent-1'], atMs: 0 }], /groups\[1\] must be an array of agent ids/],
    ['empty later group', [{ kind: 'partition', groups: [['agent-0'], []], atMs: 0 }], /groups\[1\] is empty; only the first group may be/],
    ['unknown agent in a group', [{ kind: 'partition', groups: [[], ['agent-1', 'coordinator']], atMs: 0 }], /groups\[1\]\[1\] names unknown agent "coordinator"/],
    ['agent in two groups', [{ kind: 'partition', groups: [['agent-1'], ['agent-2', 'agent-1']], atMs: 0 }], /agent "agent-1" is named twice \(groups\[0\] and groups\[1\]\)/],
    ['agent twice in a group', [{ kind: 'partition', groups: [[], ['agent-2', 'agent-2']], atMs: 0 }], /agent "agent-2" is named twice \(groups\[1\] and groups\[1\]\)/],
    ['negative partition time', [{ kind: 'partition', groups: [[], ['agent-1']], atMs: -5 }], /atMs must be a finite number >= 0, got -5/],
    ['heals before it starts', [{ kind: 'partition', groups: [[], ['agent-1']], atMs: 10, healAtMs: 5 }], /healAtMs must be a finite number >= atMs \(10\), got 5 \(omit it for a partition that never heals\)/],
    ['heals at infinity', [{ kind: 'partition', groups: [[], ['agent-1']], atMs: 10, healAtMs: Infinity }], /healAtMs must be a finite number >= atMs/],
    ['coordinator restarts before it crashes', [{ kind: 'coordinatorCrash', atMs: 10, restartAtMs: 5 }], /^faults\[0\]: restartAtMs must be >= atMs \(10\), got 5$/],
    ['coordinator never restarts', [{ kind: 'coordinatorCrash', atMs: 10 }], /restartAtMs must be a finite number >= 0, got undefined/],
    ['coordinator crash naming an agent', [{ kind: 'coordinatorCrash', agent: 'agent-1', atMs: 10, restartAtMs: 20 }], /unknown field "agent" on a coordinatorCrash fault \(fields: kind, atMs, restartAtMs\)/],
    [
      'coordinator crashes while down (in any order)',
      [
        { kind: 'coordinatorCrash', atMs: 50, restartAtMs: 60 },
        { kind: 'coordinatorCrash', atMs: 10, restartAtMs: 50 },
      ],
      /^faults\[0\]: the coordinator is down from 10 to 50 \(faults\[1\]\): it cannot crash again at 50; crashes must not overlap$/,
    ],
  ];

  it.each(bad)('rejects %s', (_, faults, message) => {
    expect(() => validateFaults(faults, AGENTS)).toThrow(RangeError);
    expect(() => validateFaults(faults, AGENTS)).toThrow(message);
  });
});

describe('faultPlan', () => {
  const UNIVERSE = Array.from({ length: 8 }, (_, i) => `agent-${i}`);

  /** A plan's options: some agents of the universe (maybe none), a span, maybe a bound. */
  const options: fc.Arbitrary<FaultPlanOptions> = fc
    .record({
      agents: fc.subarray(UNIVERSE),
      spanMs: fc.oneof(fc.integer({ min: 0, max: 10 }), fc.integer({ min: 0, max: 4 * 3_600_000 }), fc.double({ min: 0, max: 1e6, noNaN: true })),
      maxFaults: fc.option(fc.integer({ min: 0, max: 12 }), { nil: undefined }),
      coordinatorCrashes: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }),
    })
    .map(({ maxFaults, coordinatorCrashes, ...rest }) => ({
      ...rest,
      ...(maxFaults === undefined ? {} : { maxFaults }),
      ...(coordinatorCrashes === undefined ? {} : { coordinatorCrashes }),
    }));

  const withPlan = options.chain(opts => faultPlan(opts).map(plan => ({ opts, plan })));

  it('keeps its contract: valid, only given agents, healed within the span, bounded, lossy below 100 %, sorted', () => {
    fc.assert(
      fc.property(withPlan, ({ opts, plan }) => {
        const given = new Set(opts.agents);
        const span = Math.floor(opts.spanMs);
        // Valid against every agent of the run, including those left out.
        validateFaults(plan, UNIVERSE);
        const down = plan.filter(f => f.kind === 'coordinatorCrash');
        expect(down.length).toBeLessThanOrEqual(opts.coordinatorCrashes ?? 0);
        expect(plan.length - down.length).toBeLessThanOrEqual(opts.maxFaults ?? Math.min(5, 2 * opts.agents.length));
        for (const f of down) {
          // Restarts by the span, after its crash, before the next one.
          expect(Number.isInteger(f.restartAtMs)).toBe(true);
          expect(f.restartAtMs).toBeGreaterThan(f.atMs);
          expect(f.restartAtMs).toBeLessThanOrEqual(span);
        }
        for (const f of plan) {
          for (const id of named(f)) expect(given.has(id)).toBe(true);
          expect(Number.isInteger(startOf(f))).toBe(true);
          expect(startOf(f)).toBeLessThanOrEqual(span);
          if (f.kind === 'drop') {
            // Never network-wide: links of agents left out stay lossless.
            expect(f.agents?.length).toBeGreaterThan(0);
            expect(f.rate).toBeGreaterThan(0);
            expect(f.rate).toBeLessThan(1);
            expect(f.toMs).toBeDefined();
            expect(f.toMs).toBeLessThanOrEqual(span);
          }
          if (f.kind === 'partition') {
            expect(f.healAtMs).toBeDefined();
            expect(f.healAtMs).toBeLessThanOrEqual(span);
            // The first group (where the coordinator and agents left out are) holds exactly the given
            // agents not cut off; every given agent is named once.
            expect(f.groups.length).toBeGreaterThanOrEqual(2);
            expect(f.groups.length).toBeLessThanOrEqual(3);
            expect([...f.groups.flat()].sort()).toStrictEqual([...opts.agents].sort());
          }
          if (f.kind === 'slow') expect(f.factor).toBeGreaterThan(1);
        }
        for (let i = 1; i < plan.length; i++) {
          expect(startOf(plan[i - 1] as Fault)).toBeLessThanOrEqual(startOf(plan[i] as Fault));
        }
      }),
      { numRuns: 200 },
    );
  });

  it('writes plans that read back from their spec and describe in one line each', () => {
    fc.assert(
      fc.property(withPlan, ({ opts, plan }) => {
        expect(parseFaultSpec(formatFaultSpec(plan), opts.agents)).toStrictEqual(plan.map(normalized));
        for (const f of plan) expect(describeFault(f)).toMatch(/^[^\n]+$/);
      }),
      { numRuns: 150 },
    );
  });

  it("is fast-check's Arbitrary, composable with the caller's fast-check", () => {
    const pairs = fc.sample(fc.tuple(faultPlan({ agents: AGENTS, spanMs: 1000 }).filter(p => p.length > 0), fc.nat(9)), { seed: 5, numRuns: 20 });
    expect(pairs).toHaveLength(20);
    for (const [plan, n] of pairs) {
      expect(plan.length).toBeGreaterThan(0);
      expect(n).toBeLessThanOrEqual(9);
    }
  });

  it('is deterministic for a seed', () => {
    const opts = { agents: AGENTS, spanMs: 60_000 };
    const first = fc.sample(faultPlan(opts), { seed: 42, numRuns: 50 });
    const again = fc.sample(faultPlan(opts), { seed: 42, numRuns: 50 });
    expect(again).toStrictEqual(first);
    expect(fc.sample(faultPlan(opts), { seed: 43, numRuns: 50 })).not.toStrictEqual(first);
  });

  it('reaches every kind, empty plans and full ones', () => {
    const plans = fc.sample(faultPlan({ agents: AGENTS, spanMs: 60_000 }), { seed: 7, numRuns: 500 });
    const kinds = new Set(plans.flat().map(f => f.kind));
    // Coordinator crashes only when asked for.
    expect([...kinds].sort()).toStrictEqual(FAULT_KINDS.filter(k => k !== 'coordinatorCrash').sort());
    const withCrashes = fc.sample(faultPlan({ agents: AGENTS, spanMs: 60_000, coordinatorCrashes: 2 }), { seed: 7, numRuns: 500 });
    expect([...new Set(withCrashes.flat().map(f => f.kind))].sort()).toStrictEqual([...FAULT_KINDS].sort());
    expect(plans.some(p => p.length === 0)).toBe(true);
    expect(plans.some(p => p.length === 5)).toBe(true);
    const partitions = plans.flat().filter(f => f.kind === 'partition');
    expect(partitions.some(p => p.groups.length === 3)).toBe(true);
    expect(partitions.some(p => p.groups[0]?.length === 0)).toBe(true); // every given agent cut off
  });

  it('shrinks to one simple fault: first agent, time 0, shortest window, one agent cut off', () => {
    const hang = fc.check(
      fc.property(faultPlan({ agents: AGENTS, spanMs: 60_000 }), plan => plan.every(f => f.kind !== 'hang')),
      { seed: 1 },
    );
    expect(hang.counterexample).toStrictEqual([[{ kind: 'hang', agent: 'agent-0', atMs: 0 }]]);

    const partition = fc.check(
      fc.property(faultPlan({ agents: AGENTS, spanMs: 60_000 }), plan => plan.every(f => f.kind !== 'partition')),
      { seed: 1 },
    );
    const [[found] = []] = partition.counterexample ?? [];
    expect(partition.counterexample?.[0]).toHaveLength(1);
    expect(found).toMatchObject({ kind: 'partition', atMs: 0, healAtMs: 1 });
    expect(found?.kind === 'partition' && found.groups.length === 2 && found.groups[1]?.length === 1).toBe(true);
  });

  it('shrinks a coordinator crash to the earliest and shortest', () => {
    const found = fc.check(
      fc.property(faultPlan({ agents: AGENTS, spanMs: 60_000, coordinatorCrashes: 2 }), plan => plan.every(f => f.kind !== 'coordinatorCrash')),
      { seed: 1 },
    );
    expect(found.counterexample).toStrictEqual([[{ kind: 'coordinatorCrash', atMs: 0, restartAtMs: 1 }]]);
  });

  it('draws coordinator crashes without agents or other faults, none in an empty span', () => {
    const alone = fc.sample(faultPlan({ agents: [], spanMs: 1000, coordinatorCrashes: 3 }), { seed: 2, numRuns: 100 });
    expect(alone.some(p => p.length === 3)).toBe(true);
    for (const plan of alone) {
      validateFaults(plan, []);
      expect(plan.every(f => f.kind === 'coordinatorCrash')).toBe(true);
    }
    expect(fc.sample(faultPlan({ agents: AGENTS, spanMs: 0, coordinatorCrashes: 3 }), { seed: 2, numRuns: 50 }).flat().filter(f => f.kind === 'coordinatorCrash')).toEqual([]);
    expect(() => faultPlan({ agents: AGENTS, spanMs: 1000, coordinatorCrashes: -1 })).toThrow(/coordinatorCrashes must be an integer >= 0, got -1/);
  });

  it('makes empty plans without agents or with maxFaults 0, and times 0 in an empty span', () => {
    expect(fc.sample(faultPlan({ agents: [], spanMs: 1000 }), { seed: 1, numRuns: 20 })).toStrictEqual(Array(20).fill([]));
    expect(fc.sample(faultPlan({ agents: AGENTS, spanMs: 1000, maxFaults: 0 }), { seed: 1, numRuns: 20 })).toStrictEqual(Array(20).fill([]));
    const flat = fc.sample(faultPlan({ agents: AGENTS, spanMs: 0 }), { seed: 1, numRuns: 50 }).flat();
    expect(flat.length).toBeGreaterThan(0);
    for (const f of flat) {
      expect(startOf(f)).toBe(0);
      if (f.kind === 'partition') expect(f.healAtMs).toBe(0);
      if (f.kind === 'drop') expect(f.toMs).toBe(0);
    }
  });

  it('defaults maxFaults to min(5, 2 × agents)', () => {
    const lengths = (agents: string[]): number =>
      Math.max(...fc.sample(faultPlan({ agents, spanMs: 1000 }), { seed: 3, numRuns: 300 }).map(p => p.length));
    expect(lengths(['agent-0'])).toBe(2);
    expect(lengths(['agent-0', 'agent-1'])).toBe(4);
    expect(lengths(AGENTS)).toBe(5);
  });

  it.each([
    [{ agents: 'agent-1', spanMs: 1000 }, /agents must be an array of distinct non-empty agent ids, got "agent-1"/],
    [{ agents: ['agent-1', 'agent-1'], spanMs: 1000 }, /agents must be an array of distinct/],
    [{ agents: [''], spanMs: 1000 }, /agents must be/],
    [{ agents: [7], spanMs: 1000 }, /agents must be/],
    [{ agents: AGENTS, spanMs: -1 }, /spanMs must be a finite number >= 0, got -1/],
    [{ agents: AGENTS, spanMs: NaN }, /spanMs/],
    [{ agents: AGENTS, spanMs: Infinity }, /spanMs/],
    [{ agents: AGENTS, spanMs: 1000, maxFaults: 1.5 }, /maxFaults must be an integer >= 0, got 1.5/],
    [{ agents: AGENTS, spanMs: 1000, maxFaults: -1 }, /maxFaults must be an integer >= 0, got -1/],
  ])('rejects bad options %j when built', (opts, message) => {
    expect(() => faultPlan(opts as unknown as FaultPlanOptions)).toThrow(RangeError);
    expect(() => faultPlan(opts as unknown as FaultPlanOptions)).toThrow(message);
  });
});
