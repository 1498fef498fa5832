import type { Decision } from '../../operators/index.js';
import { EngineDetection, PROBE_SENDS, isProbe, suspectOf, triesOver, type DetectionVerdicts } from '../../src/engineDetection.js';
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
      deadlockMs: 120_000,
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
  it('times out an assignment not acknowledged within its retransmission timeout (a third of ackTimeoutMs before any round trip), and not one that was', () => {
    const { scheduler, detection, seen } = setup({ ackTimeoutMs: 300 });
    detection.awaitAck('t\u0000s-0#1', 'agent-0');
    detection.awaitAck('t\u0000s-1#2', 'agent-0');
    scheduler.advanceBy(40);
    detection.acked('t\u0000s-1#2');
    scheduler.advanceBy(100);
    expect(seen.acks).toEqual([['t\u0000s-0#1', 100]]);
  });

  it('learns the timeout from answered assignments: the agent\'s round trips, the team\'s for an agent never measured', () => {
    const { scheduler, detection, seen } = setup({ ackTimeoutMs: 3000 });
    detection.awaitAck('a#1', 'agent-1');
    scheduler.advanceBy(10);
    detection.answered('a#1'); // srtt 10, rttvar 5: rto 30
    expect([detection.rtoOf('agent-1'), detection.rtoOf('agent-2')]).toEqual([30, 30]);
    detection.awaitAck('b#2', 'agent-2');
    scheduler.advanceBy(30);
    expect(seen.acks).toEqual([['b#2', 40]]);
  });

  it('retransmits an overdue assignment with the same timeout, takes no sample from it (Karn), and gives it up after ackTimeoutMs', () => {
    const { scheduler, detection, seen } = setup({ ackTimeoutMs: 3000 });
    detection.awaitAck('a#1', 'agent-1');
    scheduler.advanceBy(1000);
    expect(seen.acks).toEqual([['a#1', 1000]]);
    expect(detection.retransmit('a#1')).toBe(true);
    expect(detection.retransmissionsOf('a#1')).toBe(1);
    scheduler.advanceBy(5);
    detection.answered('a#1'); // ambiguous: not measured
    expect(detection.rtoOf('agent-1')).toBe(1000);
    detection.awaitAck('b#2', 'agent-1');
    for (let i = 0; i < 2; i++) {
      scheduler.advanceBy(1000);
      expect(detection.retransmit('b#2')).toBe(true);
    }
    scheduler.advanceBy(1000);
    expect(seen.acks.map(([k, at]) => [k, at])).toEqual([
      ['a#1', 1000],
      ['b#2', 2005],
      ['b#2', 3005],
      ['b#2', 4005],
    ]);
    expect(detection.retransmit('b#2')).toBe(false); // 3000 ms since it was first sent
    scheduler.advanceBy(10_000);
    expect(seen.acks).toHaveLength(4);
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

  it('probes a suspect every retransmission timeout: its answer refutes the suspicion at once, silence confirms it at the end of the window', () => {
    const { scheduler, detection, sent, seen } = setup({ ackTimeoutMs: 3000, consensusWindowMs: 2000 });
    detection.awaitAck('a#1', 'agent-0');
    scheduler.advanceBy(10);
    detection.answered('a#1'); // rto 30 for every agent: a window of 16 × 30 ms
    detection.probe('agent-0');
    detection.probe('agent-1');
    detection.probe('agent-1'); // asked already: nothing more
    scheduler.advanceBy(65);
    const requests = sent.filter(m => m.kind === 'vote-request');
    expect(requests.map(m => [m.to, (m.body as { suspect: string }).suspect])).toEqual([
      ['agent-0', 'agent-0'],
      ['agent-1', 'agent-1'],
      ['agent-0', 'agent-0'],
      ['agent-1', 'agent-1'],
      ['agent-0', 'agent-0'],
      ['agent-1', 'agent-1'],
    ]);
    const { proposalId } = requests[0]?.body as { proposalId: string };
    detection.vote(proposalId, 'agent-9', false); // not the suspect: no answer
    expect(seen.verdicts).toEqual([]);
    detection.vote(proposalId, 'agent-0', false);
    expect(seen.verdicts.map(d => [suspectOf(d), isProbe(d), d.outcome, d.decidedAt])).toEqual([['agent-0', true, 'rejected', 75]]);
    scheduler.advanceBy(1000);
    expect(seen.verdicts.map(d => [suspectOf(d), d.outcome, d.decidedAt - d.openedAt])).toEqual([
      ['agent-0', 'rejected', 65],
      ['agent-1', 'timeout', 16 * 30],
    ]);
    expect(sent.filter(m => m.kind === 'vote-request' && m.to === 'agent-1')).toHaveLength(PROBE_SENDS);
  });

  it('tries a longer round trip more often, so that loss alone explains a silence as seldom as 16 direct tries', () => {
    // legs → tries: at 30 % loss per message all of them fail about once in 50,000.
    expect([2, 3, 4, 6].map(legs => [legs, triesOver(legs)])).toEqual([
      [2, 16],
      [3, 26],
      [4, 40],
      [6, 87],
    ]);
    for (const legs of [2, 3, 4, 6]) expect((1 - 0.7 ** legs) ** triesOver(legs)).toBeLessThanOrEqual(0.51 ** 16 * 1.0001);
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
    detection.awaitAck('x#1', 'agent-0');
    detection.progressed('x#1');
    detection.beat('agent-0');
    for (const s of subscriptions) s.unsubscribe();
    scheduler.advanceBy(10_000);
    expect([seen.acks, seen.progress, seen.faults]).toEqual([[], [], []]);
  });
});
