import { parseFaultSpec } from '../../streams/faultSpec.js';
import { simulate } from '../../src/simulate.js';
import { PassThrough } from 'node:stream';
import { progressLine, simulationLines } from '../../src/simulationText.js';
import type { SimulationProgress } from '../../src/simulate.js';

describe('simulationLines', () => {
  const ids = Array.from({ length: 8 }, (_, i) => `agent-${i}`);
  const faults = parseFaultSpec('crash:agent-1@2s,partition:agent-2+agent-3@1s-6s,slow:agent-4@1sx4,restart:agent-1@8s', ids);
  const report = simulate({ seed: 3, topology: 'ring', agents: ids.length, subtasks: 50, faults });
  const lines = simulationLines(report, faults, ids).map(l => l.replace(/\x1b\[\d+m/g, ''));

  it('lists every injected fault in words, with when its agents were detected', () => {
    const crash = report.detections.find(d => d.agentId === 'agent-1')!;
    const start = lines.indexOf('faults injected: 4');
    expect(start).toBeGreaterThan(-1);
    expect(lines.slice(start + 1, start + 5)).toEqual([
      `  agent-1 crashes at 2s: detected at ${(crash.suspectedAtMs! / 1000).toFixed(2)} s (+${crash.suspectedAtMs! - 2000} ms)`,
      expect.stringMatching(/^ {2}partition at 1s: \{agent-2, agent-3\} \| \{everyone else\}, heals at 6s: agent-2 at \d+\.\d\d s \(\+\d+ ms\), agent-3 at \d+\.\d\d s \(\+\d+ ms\)$/),
      '  agent-4 slows down 4× at 1s: not detected',
      '  agent-1 restarts at 8s (loses its work in flight)',
    ]);
  });

  it('lists every detection the engine made, one line each, timed from the start', () => {
    const detected = report.events.filter(e => e.type === 'fault.detected');
    expect(detected.map(e => e.type === 'fault.detected' && e.agentId).sort()).toEqual(['agent-1', 'agent-2', 'agent-3']);
    // A suspect is probed before it is declared down: its suspicion is a line of its own, before its fault's.
    const suspicions = report.events.filter(e => e.type === 'agent.suspected' && !detected.some(d => d.type === 'fault.detected' && d.agentId === e.agentId && d.at === e.at));
    const total = detected.length + suspicions.length;
    const start = lines.indexOf(`detections: ${total}`);
    expect(start).toBeGreaterThan(-1);
    const listed = lines.slice(start + 1, start + 1 + total);
    for (const e of detected) expect(listed).toContainEqual(expect.stringMatching(new RegExp(`^ +${(e.at / 1000).toFixed(2)}s  fault +agent_timeout \\(medium\\) ${e.type === 'fault.detected' && e.agentId}: `)));
    for (const e of suspicions) expect(listed).toContainEqual(expect.stringMatching(new RegExp(`^ +${(e.at / 1000).toFixed(2)}s  suspect +${e.type === 'agent.suspected' && e.agentId}: `)));
    expect(lines[start + 1 + total]).toMatch(/^false suspicions 0; detection bound \d+ ms$/);
  });

  it('tells an exhaust by its resource_exhaustion: detected at the next beat, healed; one below the threshold has nothing to detect', () => {
    const spec = parseFaultSpec('exhaust:agent-1@1s=0.95,exhaust:agent-2@1s=50%', ids);
    const run = simulate({ seed: 5, topology: 'star', agents: ids.length, subtasks: 100, faults: spec });
    expect(run.detections).toEqual([{ agentId: 'agent-1', kind: 'exhaust', faultAtMs: 1000, suspectedAtMs: expect.any(Number) }]);
    const at = run.detections[0]!.suspectedAtMs!;
    expect(at - 1000).toBeLessThanOrEqual(1100 + 3);
    expect(run.healing[0]).toMatchObject({ faultKind: 'resource_exhaustion', agentId: 'agent-1', strategy: 'reduceLoad' });
    expect(run.lost + run.duplicatesAccepted + run.failed + run.falseSuspicions).toBe(0);
    const text = simulationLines(run, spec, ids).map(l => l.replace(/\x1b\[\d+m/g, ''));
    expect(text).toContain(`  agent-1 reports 95% usage from 1s: detected at ${(at / 1000).toFixed(2)} s (+${Math.round(at - 1000)} ms)`);
    expect(text).toContain('  agent-2 reports 50% usage from 1s: below the threshold of 90 %: nothing to detect');
    expect(text).toContainEqual(expect.stringMatching(/fault +resource_exhaustion \(high\) agent-1: agent-1 uses 95 % of its capacity/));
  });

  it('tells a circular wait by its protocol_deadlock: agents with capabilities only they have, found after deadlockMs and broken; a circle others can serve forms none', () => {
    const agents = [{ id: 'a', capabilities: ['A'] }, { id: 'b', capabilities: ['B'] }, { id: 'c', capabilities: ['C'] }];
    const subtasks = Array.from({ length: 12 }, (_, i) => ({ id: `s-${i}`, capabilities: [['A', 'B', 'C'][i % 3] as string] }));
    const spec = parseFaultSpec('deadlock:a+b+c@1s', ['a', 'b', 'c']);
    const run = simulate({ seed: 3, topology: 'star', agents, subtasks, workMs: { mean: 2000, jitter: 500 }, faults: spec, deadlockMs: 20_000 });
    expect(run.detections).toEqual([{ agentId: 'a', kind: 'deadlock', faultAtMs: 1000, suspectedAtMs: expect.any(Number) }]);
    const at = run.detections[0]!.suspectedAtMs!;
    expect(at - 1000).toBeGreaterThanOrEqual(20_000);
    expect(at - 1000).toBeLessThan(22_000);
    expect(run.healing[0]).toMatchObject({ faultKind: 'protocol_deadlock', strategy: 'breakWaitChain', ok: true });
    // Each waiting run asked for one child: the task ran 15 subtasks, each accepted once.
    expect([run.subtasks, run.completed, run.lost, run.duplicatesAccepted, run.failed, run.falseSuspicions]).toEqual([15, 15, 0, 0, 0, 0]);
    const text = simulationLines(run, spec, ['a', 'b', 'c']).map(l => l.replace(/\x1b\[\d+m/g, ''));
    expect(text).toContain(`  a → b → c → a: each one's work waits for the next one's from 1s (a circular wait): protocol_deadlock detected at ${(at / 1000).toFixed(2)} s (+${Math.round(at - 1000)} ms)`);
    expect(text).toContainEqual(expect.stringMatching(/fault +protocol_deadlock \(critical\): circular wait a → b → c → a since/));

    const served = simulate({ seed: 3, topology: 'star', agents: ids.length, subtasks: 60, faults: parseFaultSpec('deadlock:agent-1+agent-2@1s', ids), deadlockMs: 20_000 });
    expect(served.detections).toEqual([{ agentId: 'agent-1', kind: 'deadlock', faultAtMs: 1000, suspectedAtMs: undefined }]);
    expect([served.lost, served.failed, served.healing.length]).toEqual([0, 0, 0]);
  });

  it('tells what a coordinator crash did to the faults of its agents', () => {
    const spec = parseFaultSpec('crash:agent-1@3s,coordinatorCrash@4s-6s,hang:agent-2@5s,crash:agent-3@8s', ids);
    const run = simulate({ seed: 3, topology: 'star', agents: ids.length, subtasks: 200, workMs: { mean: 1000, jitter: 100 }, faults: spec });
    const text = simulationLines(run, spec, ids).map(l => l.replace(/\x1b\[\d+m/g, ''));
    expect(text).toContain('  agent-1 crashes at 3s: not detected before the coordinator crashed at 4.00 s (its restart brought the agent back)');
    expect(text).toContain('  the coordinator crashes at 4s (its in-process agents with it) and resumes from its journal at 6s');
    expect(text).toContain('  agent-2 hangs at 5s (keeps heartbeating, makes no progress): nothing to act on: the coordinator and its agents were down until 6.00 s');
    expect(text).toContainEqual(expect.stringMatching(/^ {2}agent-3 crashes at 8s: detected at \d+\.\d\d s \(\+\d+ ms\)$/));
    expect(run.lost).toBe(0);
  });

  it('says so when nothing was injected or detected, then gives the run report', () => {
    const quiet = simulationLines(simulate({ seed: 1, topology: 'star', agents: 3, subtasks: 5 }), [], ['agent-0', 'agent-1', 'agent-2']);
    expect(quiet).toContain('faults injected: none');
    expect(quiet).toContain('detections: none');
    expect(quiet.join('\n')).toMatch(/5 of 5 subtasks completed/);
  });
});

describe('simulate progress', () => {
  it('reports virtual time and ended subtasks as it goes, and the same report as without watching', () => {
    const scenario = { seed: 4, topology: 'star', agents: 5, subtasks: 40, faults: [{ kind: 'crash', agent: 'agent-2', atMs: 500 }] } as const;
    const seen: SimulationProgress[] = [];
    const watched = simulate(scenario, { onProgress: p => seen.push(p) });
    const unwatched = simulate(scenario);
    expect(watched.events).toEqual(unwatched.events);
    expect(seen.length).toBeGreaterThan(100); // every 10 virtual ms
    expect(seen.map(p => p.atMs)).toEqual([...seen.map(p => p.atMs)].sort((a, b) => a - b));
    expect(seen.at(-1)).toMatchObject({ subtasks: 40, ended: 40, untilMs: 3_600_000 });
    expect(seen.some(p => p.ended > 0 && p.ended < 40)).toBe(true);
  });
});

describe('progressLine', () => {
  const progress = (atMs: number, ended: number): SimulationProgress => ({ atMs, untilMs: 3_600_000, subtasks: 100, ended });
  function terminal(isTTY: boolean) {
    const stream = new PassThrough() as unknown as NodeJS.WriteStream;
    (stream as { isTTY?: boolean }).isTTY = isTTY;
    let out = '';
    (stream as unknown as PassThrough).on('data', chunk => (out += String(chunk)));
    return { stream, text: () => out };
  }

  it('on a terminal, redraws one line at most every 200 ms of wall time and erases it at the end', () => {
    const { stream, text } = terminal(true);
    let now = 0;
    const line = progressLine(stream, () => now);
    for (const [wall, at, ended] of [[100, 1000, 5], [250, 2000, 10], [300, 3000, 20], [460, 4500, 40]] as const) {
      now = wall;
      line.onProgress?.(progress(at, ended));
    }
    line.done();
    expect(text()).toBe('\r\x1b[Ksimulating: 2.0 virtual s, 10 of 100 subtasks ended\r\x1b[Ksimulating: 4.5 virtual s, 40 of 100 subtasks ended\r\x1b[K');
  });

  it('writes nothing when not on a terminal', () => {
    const { stream, text } = terminal(false);
    const line = progressLine(stream, () => 1e9);
    expect(line.onProgress).toBeUndefined();
    line.done();
    expect(text()).toBe('');
  });
});
