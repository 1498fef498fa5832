import { PassThrough } from 'node:stream';
import { LiveView, describeEvent, eventText, reportLines, scoresText } from '../../src/liveView.js';
import type { CoordinationEvent, CoordinationResult } from '../../src/events.js';

function capture(): { stream: NodeJS.WriteStream; text: () => string } {
  const stream = new PassThrough() as unknown as NodeJS.WriteStream;
  let out = '';
  (stream as unknown as PassThrough).on('data', chunk => (out += String(chunk)));
  return { stream, text: () => out };
}

const events: CoordinationEvent[] = [
  { type: 'protocol.selected', at: 1000, protocol: 'star', reason: 'configured' },
  { type: 'agent.joined', at: 1000, agentId: 'a' },
  { type: 'subtask.assigned', at: 1001, subtaskId: 's-0', agentId: 'a', attempt: 1, hops: 1 },
  { type: 'agent.suspected', at: 2500, agentId: 'a', detail: 'phi 8.4 ≥ 8' },
  { type: 'subtask.requeued', at: 2500, subtaskId: 's-0', attempt: 1, reason: 'a: down' },
  { type: 'subtask.completed', at: 3000, subtaskId: 's-0', agentId: 'b', attempt: 2 },
];

describe('LiveView', () => {
  it('off a terminal, writes the notable events as plain lines and nothing else', () => {
    const { stream, text } = capture();
    const view = new LiveView({ total: 1, stream, live: false });
    for (const e of events) view.event(e);
    view.close();
    expect(text().split('\n').filter(Boolean)).toEqual(['   0.00s  protocol  star (configured)', '   1.50s  suspect   a: phi 8.4 ≥ 8']);
    expect(text()).not.toMatch(/\x1b\[/); // no escape codes in a pipe
  });

  it('shows a rejected result once, not every copy of it its agent sent again', () => {
    const { stream, text } = capture();
    const view = new LiveView({ total: 1, stream, live: false });
    const rejected = (at: number, attempt: number, reason: string): CoordinationEvent => ({ type: 'subtask.rejected', at, subtaskId: 's-0', agentId: 'a', attempt, reason });
    for (const e of [rejected(0, 1, 'superseded attempt'), rejected(80, 1, 'superseded attempt'), rejected(160, 1, 'already completed'), rejected(240, 2, 'superseded attempt'), rejected(320, 1, 'already completed')]) view.event(e);
    view.close();
    expect(text().split('\n').filter(Boolean)).toEqual([
      '   0.00s  rejected  result of s-0 (attempt 1) from a: superseded attempt',
      '   0.16s  rejected  result of s-0 (attempt 1) from a: already completed',
      '   0.24s  rejected  result of s-0 (attempt 2) from a: superseded attempt',
    ]);
  });

  it('remembers the last thousand rejections only: a rogue agent making new ones without end does not grow it', () => {
    const { stream, text } = capture();
    const view = new LiveView({ total: 1, stream, live: false });
    const rejected = (attempt: number): CoordinationEvent => ({ type: 'subtask.rejected', at: attempt, subtaskId: 's-0', agentId: 'rogue', attempt, reason: 'superseded attempt' });
    for (let attempt = 0; attempt < 5000; attempt++) view.event(rejected(attempt));
    expect((view as unknown as { rejected: Set<string> }).rejected.size).toBe(1000);
    // The latest are still known (not shown again); the first, forgotten, would be.
    view.event(rejected(4999));
    view.event(rejected(0));
    view.close();
    const lines = text().split('\n').filter(Boolean);
    expect(lines).toHaveLength(5001);
    expect(lines.at(-1)).toMatch(/attempt 0\)/);
  });

  it('colours what it writes by its own stream (a terminal), not by stdout', () => {
    vi.stubEnv('NO_COLOR', undefined);
    try {
      const { stream, text } = capture();
      (stream as { isTTY?: boolean }).isTTY = true;
      const view = new LiveView({ total: 1, stream, live: false });
      for (const e of events) view.event(e);
      view.close();
      expect(text()).toMatch(/\x1b\[/);
      expect(text().replace(/\x1b\[\d+m/g, '')).toContain('suspect   a: phi 8.4 ≥ 8');
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('describes only what a person watching wants to see', () => {
    expect(describeEvent({ type: 'subtask.completed', at: 5, subtaskId: 's', agentId: 'a', attempt: 1 }, 0)).toBeUndefined();
    expect(describeEvent({ type: 'agent.down', at: 2000, agentId: 'a', reason: 'left' }, 0)).toMatch(/2\.00s\s+down\s+a: left/);
    expect(eventText({ type: 'agent.down', at: 2000, agentId: 'a', reason: 'left' })?.replace(/\x1b\[\d+m/g, '')).toMatch(/^down\s+a: left$/);
  });

  it.each([
    [{ subtaskIds: ['a', 'b', 'c'], capabilities: ['gpu'], reason: 'no live agent has gpu', failsAt: 61_000 }, 'waiting   3 subtasks need capability gpu, which no live agent has; they fail in 60 s unless one joins'],
    [{ subtaskIds: ['a'], capabilities: ['gpu', 'tpu'], reason: 'no live agent has gpu, tpu', failsAt: 1500 }, 'waiting   1 subtask needs capabilities gpu, tpu, which no live agent has; it fails in 0.5 s unless one joins'],
    [{ subtaskIds: Array.from({ length: 50 }, (_, i) => `s-${i}`), capabilities: [], reason: 'no agents connected yet', failsAt: 61_000 }, 'waiting   no agents connected yet: 50 subtasks wait (they fail in 60 s unless one joins)'],
    [{ subtaskIds: ['a', 'b'], capabilities: [], reason: 'no live agent has all of gpu, code', failsAt: 31_000 }, 'waiting   no live agent has all of gpu, code: 2 subtasks wait (they fail in 30 s unless one joins)'],
  ])('says why subtasks wait and when they fail: %j', (fields, text) => {
    expect(eventText({ type: 'subtask.waiting', at: 1000, ...fields })?.replace(/\x1b\[\d+m/g, '')).toBe(text);
  });

  it('reports a result: counts, failures with their reasons', () => {
    const result = {
      taskId: 't',
      success: false,
      results: { a: 1 },
      failed: { b: 'handler failed 3 time(s): boom' },
      protocol: 'star',
      protocolId: 't:star:0',
      metrics: { subtasks: 2, completed: 1, failed: 1, staleResultsRejected: 0, assignments: 4, messages: 10, messagesByKind: { assign: 4 }, messagesPerSubtask: 5, startedAt: 0, finishedAt: 1500, durationMs: 1500, performance: {} },
      healing: [],
      switches: [],
    } satisfies CoordinationResult;
    const lines = reportLines(result);
    expect(lines[0]).toMatch(/failed: 1 of 2 subtasks completed, 1 failed, in 1\.50 s/);
    expect(lines).toContain('  failed b: handler failed 3 time(s): boom');
  });

  it('lists ten failed subtasks and says how many more there are', () => {
    const failed = Object.fromEntries(Array.from({ length: 13 }, (_, i) => [`s-${i}`, 'no capable agent']));
    const metrics = { subtasks: 13, completed: 0, failed: 13, staleResultsRejected: 0, assignments: 0, messages: 0, messagesByKind: {}, messagesPerSubtask: 0, startedAt: 0, finishedAt: 1, durationMs: 1, performance: {} };
    const lines = reportLines({ taskId: 't', success: false, results: {}, failed, protocol: 'star', protocolId: 'p', metrics, healing: [], switches: [] });
    expect(lines.filter(l => l.startsWith('  failed '))).toHaveLength(10);
    expect(lines.at(-1)).toBe('  … and 3 more');
    expect(reportLines({ taskId: 't', success: false, results: {}, failed: { a: 'x' }, protocol: 'star', protocolId: 'p', metrics, healing: [], switches: [] }).join('\n')).not.toMatch(/more/);
  });

  it('shows a hedge when the engine reports one, and counts it with the faults by kind', () => {
    const { stream, text } = capture();
    const view = new LiveView({ total: 1, stream, live: false });
    const hedged: CoordinationEvent = { type: 'subtask.hedged', at: 4000, subtaskId: 's-0', agentId: 'b', attempt: 2, of: { agentId: 'a', attempt: 1 } };
    for (const e of [...events.slice(0, 3), hedged, { type: 'fault.detected', at: 4100, kind: 'resource_exhaustion', severity: 'high', agentId: 'a', detail: 'a uses 95 %' } as const]) view.event(e);
    view.close();
    expect(text()).toContain('   3.00s  hedge     s-0: backup attempt 2 on b beside attempt 1 on a, which shows no progress');
    expect(view.tally).toEqual({ faults: { resource_exhaustion: 1 }, healed: 0, hedged: 1, switches: 0 });
  });

  it('shows a switch with its scores, best first, in the view and in the report', () => {
    const change = { from: 'hierarchical', to: 'mesh', at: 9000, reason: 'mesh scored 0.35 (40 runs) vs hierarchical 0.2 (200 runs): +75%', scores: { hierarchical: 0.2012, mesh: 0.3501, ring: 0.25 } };
    expect(eventText({ type: 'protocol.switched', at: 9000, switch: change, inFlight: 3 })?.replace(/\x1b\[\d+m/g, '')).toBe(
      'switch    hierarchical → mesh: mesh scored 0.35 (40 runs) vs hierarchical 0.2 (200 runs): +75%; 3 in flight handed over [scores: mesh 0.35, ring 0.25, hierarchical 0.201]',
    );
    expect(scoresText({})).toBe('');
    const metrics = { subtasks: 1, completed: 1, failed: 0, staleResultsRejected: 0, assignments: 1, messages: 2, messagesByKind: {}, messagesPerSubtask: 2, startedAt: 1000, finishedAt: 12_000, durationMs: 11_000, performance: {} };
    const lines = reportLines({ taskId: 't', success: true, results: { a: 1 }, failed: {}, protocol: 'mesh', protocolId: 'p', metrics, healing: [], switches: [change] });
    expect(lines).toContain('  at 8.00 s hierarchical → mesh: mesh scored 0.35 (40 runs) vs hierarchical 0.2 (200 runs): +75%; scores: mesh 0.35, ring 0.25, hierarchical 0.201');
  });

  it('reports the score each protocol measured under (the adaptive protocol’s default score)', () => {
    const snapshot = { at: 12_000, count: 300, successRate: 1, meanLatencyMs: 1000, p50LatencyMs: 900, p95LatencyMs: 1000, throughputPerSec: 20, messagesPerExecution: 5 };
    const metrics = { subtasks: 1, completed: 1, failed: 0, staleResultsRejected: 0, assignments: 1, messages: 2, messagesByKind: {}, messagesPerSubtask: 2, startedAt: 0, finishedAt: 1, durationMs: 1, performance: { hierarchical: snapshot } };
    const lines = reportLines({ taskId: 't', success: true, results: {}, failed: {}, protocol: 'hierarchical', protocolId: 'p', metrics, healing: [], switches: [] });
    // 1 / (1 + 1 s) / (1 + 5 / 10)
    expect(lines).toContain('  measured under hierarchical: score 0.333 (300 runs, 100 % ok, p95 1.00 s, 5.0 messages each)');
  });

  it('says when the counts are shared with other tasks that ran alongside, and leaves no trailing colon without kinds', () => {
    const metrics = { subtasks: 2, completed: 2, failed: 0, staleResultsRejected: 0, assignments: 2, messages: 10, messagesByKind: { assign: 6, result: 4 }, messagesPerSubtask: 5, startedAt: 0, finishedAt: 1, durationMs: 1, performance: {} };
    const line = (m: object) => reportLines({ taskId: 't', success: true, results: {}, failed: {}, protocol: 'star', protocolId: 'p', metrics: m as typeof metrics, healing: [], switches: [] }).find(l => l.startsWith('messages'));
    expect(line(metrics)).toBe('messages: 10 (5.0 per subtask): assign 6, result 4');
    expect(line({ ...metrics, tasksAlongside: 2 })).toBe("messages: 10 (5.0 per subtask), with the 2 other task(s) that ran alongside (the network's count; the scores above are theirs too): assign 6, result 4");
    expect(line({ ...metrics, messages: 0, messagesByKind: {}, messagesPerSubtask: 0 })).toBe('messages: 0 (0.0 per subtask)');
  });
});
