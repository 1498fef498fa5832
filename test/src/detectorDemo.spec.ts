import { runDetectorDemo } from '../../src/detectorDemo.js';

describe('runDetectorDemo', () => {
  const scripts = [
    { id: 'crashes', intervalMs: 1000, jitter: 0.1, crashAtMs: 20_000 },
    { id: 'leaves', intervalMs: 1000, jitter: 0.1, leaveAtMs: 30_000 },
    { id: 'healthy', intervalMs: 1000, jitter: 0.1 },
  ];
  const report = runDetectorDemo(scripts, 60_000);
  const of = (detector: string, agentId: string, type: string) =>
    report.events.filter(e => e.detector === detector && e.agentId === agentId && e.type === type);

  it('detects the crash with both detectors, the deadline at last beat + 5 s', () => {
    const [phi] = of('phi', 'crashes', 'suspected');
    const [deadline] = of('deadline', 'crashes', 'suspected');
    expect(phi!.at).toBeGreaterThan(20_000);
    expect(phi!.phi).toBeGreaterThanOrEqual(8);
    expect(deadline!.phi).toBe(1);
    expect(of('phi', 'crashes', 'suspected')).toHaveLength(1);
  });

  it('reports the departure and never suspects the healthy or departed agent', () => {
    expect(of('phi', 'leaves', 'left')).toHaveLength(1);
    expect(of('deadline', 'leaves', 'left')).toHaveLength(1);
    for (const id of ['leaves', 'healthy']) {
      expect(of('phi', id, 'suspected')).toEqual([]);
      expect(of('deadline', id, 'suspected')).toEqual([]);
    }
  });

  it('is deterministic', () => {
    expect(runDetectorDemo(scripts, 60_000)).toEqual(report);
  });
});
