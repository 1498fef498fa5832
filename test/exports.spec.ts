import * as everything from '../src/index.js';
import * as operators from '../operators/index.js';
import * as streams from '../streams/index.js';
import * as testing from '../src/testing.js';

// Names DESIGN.md marks as contract: code outside the repository imports them by these names.
describe('public contract', () => {
  it.each([
    'phi', 'PhiAccrualDetector', 'phiAccrual', 'heartbeatDeadline', 'voteResult', 'consensusWindow', 'performanceWindow',
    'degradation', 'consecutiveFailures', 'resourcePressure', 'waitForCycles', 'adaptiveSwitch',
  ])('rxswarm/operators exports %s', name => {
    expect(typeof (operators as Record<string, unknown>)[name]).toBe('function');
    expect((everything as Record<string, unknown>)[name]).toBe((operators as Record<string, unknown>)[name]);
  });

  it.each(['VirtualScheduler', 'simulate', 'faultPlan'])('rxswarm/testing exports %s', name => {
    expect(typeof (testing as Record<string, unknown>)[name]).toBe('function');
  });

  it.each(['createCoordinator', 'ProtocolManager'])('rxswarm exports %s', name => {
    expect(typeof (everything as Record<string, unknown>)[name]).toBe('function');
  });

  it.each(['hierarchical', 'mesh', 'ring', 'star', 'adaptive'])('rxswarm exports the topology value %s', name => {
    expect((everything as unknown as Record<string, { name: string }>)[name]?.name).toBe(name);
  });

  it('rxswarm/streams exports the network and its hosts', () => {
    expect(typeof streams.InMemoryNetwork).toBe('function');
    expect(typeof streams.AgentHost).toBe('function');
    expect(typeof streams.VirtualScheduler).toBe('function');
  });

  it('rxswarm/streams exports the journals; rxswarm the ledger and a coordinator that follows tasks', () => {
    expect(typeof streams.FileJournal.open).toBe('function');
    expect(typeof streams.MemoryJournal).toBe('function');
    expect(typeof everything.applyLedgerEvent).toBe('function');
    expect(everything.FileJournal).toBe(streams.FileJournal);
    const coordinator = everything.createCoordinator({ agents: [], journal: new streams.MemoryJournal() });
    for (const name of ['run$', 'run', 'submit', 'submit$', 'attach$', 'tasks', 'result', 'cancel', 'durable', 'close'] as const) expect(typeof coordinator[name]).toBe('function');
  });

  it('ProtocolManager keeps the seed names', () => {
    const manager = new everything.ProtocolManager();
    expect(typeof manager.initializeCoordination).toBe('function');
    expect(typeof manager.coordinateTaskExecution).toBe('function');
  });
});
