import type { Envelope } from '../../streams/network.js';
import { InMemoryNetwork } from '../../streams/network.js';
import { MemoryJournal } from '../../streams/journal.js';
import { VirtualScheduler } from '../../streams/virtualScheduler.js';
import { ProcessFence } from '../../src/processFence.js';

function world() {
  const scheduler = new VirtualScheduler();
  const network = new InMemoryNetwork({ scheduler });
  const journal = new MemoryJournal();
  return { scheduler, network, journal, fence: new ProcessFence(scheduler, network, journal) };
}

describe('ProcessFence', () => {
  it('passes everything through while the process lives', () => {
    const { scheduler, network, journal, fence } = world();
    const got: Envelope[] = [];
    fence.network.join('coordinator').subscribe(e => got.push(e));
    const ticks: number[] = [];
    fence.scheduler.schedule(function () {
      ticks.push(fence.scheduler.now());
      if (ticks.length < 3) this.schedule(undefined, 10);
    }, 10);
    network.join('agent').subscribe();
    network.send({ from: 'agent', to: 'coordinator', kind: 'x', body: {} });
    fence.network.send({ from: 'coordinator', to: 'agent', kind: 'y', body: {} });
    fence.journal.append({ type: 'a' });
    scheduler.flush();
    expect(ticks).toEqual([10, 20, 30]);
    expect(got.map(e => e.kind)).toEqual(['x']);
    expect(fence.network.stats.sent).toBe(2);
    expect(fence.network.scheduler).toBe(fence.scheduler);
    expect(journal.recover().records).toEqual([{ type: 'a' }]);
    expect(fence.living).toBe(true);
  });

  it('kill: timers stop (periodic ones too), sends go nowhere, inboxes close, the journal takes nothing more but stays', async () => {
    const { scheduler, network, journal, fence } = world();
    const got: Envelope[] = [];
    fence.network.join('coordinator').subscribe(e => got.push(e));
    const ticks: number[] = [];
    fence.scheduler.schedule(function () {
      ticks.push(scheduler.now());
      this.schedule(undefined, 10);
    }, 10);
    network.join('agent').subscribe();
    fence.journal.append({ type: 'before' });
    scheduler.advanceTo(25);
    network.send({ from: 'agent', to: 'coordinator', kind: 'in-flight', body: {} });
    fence.kill();
    fence.network.send({ from: 'coordinator', to: 'agent', kind: 'after', body: {} });
    fence.journal.append({ type: 'after' });
    fence.journal.snapshot({ state: 'after' });
    await fence.journal.close();
    scheduler.advanceTo(100);
    expect(ticks).toEqual([10, 20]);
    expect(got).toEqual([]); // the message in flight to the dead process is dropped
    expect(network.stats.sent).toBe(1);
    expect(network.stats.droppedBy.down).toBe(1);
    expect(journal.recover()).toEqual({ snapshot: undefined, records: [{ type: 'before' }], tornBytes: 0 });
    expect(fence.living).toBe(false);
    // A dead process opens nothing; its id is free for the process that replaces it.
    const late: Envelope[] = [];
    fence.network.join('coordinator').subscribe(e => late.push(e));
    const next = new ProcessFence(scheduler, network, journal);
    const fresh: Envelope[] = [];
    next.network.join('coordinator').subscribe(e => fresh.push(e));
    network.send({ from: 'agent', to: 'coordinator', kind: 'hello', body: {} });
    scheduler.flush();
    expect(late).toEqual([]);
    expect(fresh.map(e => e.kind)).toEqual(['hello']);
    fence.kill(); // twice: nothing more
  });
});
