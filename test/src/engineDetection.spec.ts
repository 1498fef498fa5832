import type { Decision } from '../../operators/index.js';
import { EngineDetection, suspectOf, type DetectionVerdicts } from '../../src/engineDetection.js';
import type { FaultEvent } from '../../src/faultDetector.js';
import type { Envelope } from '../../streams/network.js';
import { VirtualScheduler } from '../../streams/virtualScheduler.js';

function setup(options: { ackTimeoutMs?: number; progressTimeoutMs?: number; consensusWindowMs?: number } = {}) {
  const scheduler = new VirtualScheduler();
  const sent: Array<Pick<Envelope, 'from' | 'to' | 'kind' | 'body'>> = [];
  const detection = new EngineDetection(
    {
      detector: { kind: 'deadline', timeoutMs: 1_000 },
      progressTimeoutMs: options.progressTimeoutMs ?? 500,
      ackTimeoutMs: options.ackTimeoutMs ?? 100,
      consensusWindowMs: options.consensusWindowMs ?? 300,
      scheduler,
    },
    { send: message => sent.push(message) },
  );
  const seen = { faults: [] as FaultEvent[], progress: [] as Array<[string, number]>, acks: [] as Array<[string, number]>, cleared: [] as Array<[string, number]>, verdicts: [] as Decision[] };
  const verdicts: DetectionVerdicts = {
    fault: f => seen.faults.push(f),
    silent: s => seen.progress.push([s.key, scheduler.now()]),
    cleared: k => seen.cleared.push([k, scheduler.now()]),
    ackTimeout: k => seen.acks.push([k, scheduler.now()]),
    verdict: d => seen.verdicts.push(d),
  };
  const subscriptions = detection.wire(verdicts);
  return { scheduler, sent, detection, seen, subscriptions };
}

describe('EngineDetection', () => {
  it('times out an assignment not acknowledged within ackTimeoutMs, and not one that was', () => {
    const { scheduler, detection, seen } = setup({ ackTimeoutMs: 100 });
    detection.awaitAck('t\u0000s-0#1');
    detection.awaitAck('t\u0000s-1#2');
    scheduler.advanceBy(40);
    detection.acked('t\u0000s-1#2');
    scheduler.advanceBy(100);
    expect(seen.acks).toEqual([['t\u0000s-0#1', 100]]);
  });

  it('reports an attempt silent for progressTimeoutMs (the floor); progress starts the deadline over, the end stops it', () => {
    const { scheduler, detection, seen } = setup({ progressTimeoutMs: 500 });
    detection.attemptStarted('a#1', 't');
    detection.attemptStarted('b#1', 't');
    scheduler.advanceBy(400);
    detection.progressed('a#1');
    detection.attemptEnded('b#1', false);
    scheduler.advanceBy(400);
    expect(seen.progress).toEqual([]);
    scheduler.advanceBy(100);
    expect(seen.progress).toEqual([['a#1', 900]]);
  });

  it("learns a task's deadline from its finished attempts, and clears a silent attempt the longer deadline puts back within it", () => {
    const { scheduler, detection, seen } = setup({ progressTimeoutMs: 500 });
    const keys = ['a', 'b', 'c', 'd', 'e', 'f'].map(k => `t\u0000${k}#1`);
    for (const k of keys) detection.attemptStarted(k, 't');
    scheduler.advanceBy(800); // every one silent at 500
    expect(seen.progress.map(([k]) => k)).toEqual(keys);
    for (const k of keys.slice(0, 5)) detection.attemptEnded(k, true); // five samples of 800: deadline 1 200
    expect(seen.cleared).toEqual([[keys[5], 800]]);
    scheduler.advanceBy(400);
    expect(seen.progress.at(-1)).toEqual([keys[5], 1_200]);
  });

  it('reports an agent whose beats stop as an agent_timeout fault, and its return as resolved', () => {
    const { scheduler, detection, seen } = setup();
    detection.beat('agent-0');
    scheduler.advanceBy(1_500);
    expect(seen.faults.map(f => [f.type, f.kind, f.agentId])).toEqual([['detected', 'agent_timeout', 'agent-0']]);
    detection.beat('agent-0');
    expect(seen.faults.map(f => [f.type, f.kind])).toEqual([
      ['detected', 'agent_timeout'],
      ['resolved', 'agent_timeout'],
    ]);
  });

  it('puts a suspicion to the peers and decides by their majority', () => {
    const { detection, sent, seen } = setup();
    detection.askPeers('agent-2', ['agent-0', 'agent-1', 'agent-3']);
    expect(sent.map(m => [m.to, m.kind])).toEqual([
      ['agent-0', 'vote-request'],
      ['agent-1', 'vote-request'],
      ['agent-3', 'vote-request'],
    ]);
    const { proposalId } = sent[0]?.body as { proposalId: string };
    detection.vote(proposalId, 'agent-0', true);
    expect(seen.verdicts).toEqual([]);
    detection.vote(proposalId, 'agent-1', true);
    expect(seen.verdicts.map(d => [d.outcome, suspectOf(d)])).toEqual([['accepted', 'agent-2']]);
  });

  it('with no peers to ask, the coordinator\'s own suspicion stands', () => {
    const { detection, sent, seen } = setup();
    detection.askPeers('agent-0', []);
    expect(sent).toEqual([]);
    expect(seen.verdicts.map(d => [d.outcome, suspectOf(d)])).toEqual([['accepted', 'agent-0']]);
  });

  it('times a proposal out when too few peers answer within the window, which opens at its first vote', () => {
    const { scheduler, detection, sent, seen } = setup({ consensusWindowMs: 300 });
    detection.askPeers('agent-9', ['agent-0', 'agent-1', 'agent-2']);
    const { proposalId } = sent[0]?.body as { proposalId: string };
    scheduler.advanceBy(50);
    detection.vote(proposalId, 'agent-0', true);
    scheduler.advanceBy(299);
    expect(seen.verdicts).toEqual([]);
    scheduler.advanceBy(1);
    expect(seen.verdicts.map(d => [d.outcome, d.decidedAt])).toEqual([['timeout', 350]]);
  });

  it('gives each proposal its own id', () => {
    const { detection, sent } = setup();
    detection.askPeers('agent-1', ['agent-0']);
    detection.askPeers('agent-1', ['agent-0']);
    const idsSent = sent.map(m => (m.body as { proposalId: string }).proposalId);
    expect(new Set(idsSent).size).toBe(2);
  });

  it('stops every deadline once its subscriptions end', () => {
    const { scheduler, detection, seen, subscriptions } = setup();
    detection.awaitAck('x#1');
    detection.progressed('x#1');
    detection.beat('agent-0');
    for (const s of subscriptions) s.unsubscribe();
    scheduler.advanceBy(10_000);
    expect([seen.acks, seen.progress, seen.faults]).toEqual([[], [], []]);
  });
});
