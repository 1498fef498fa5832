import { MemoryJournal } from '../../streams/journal.js';
import type { NatsNetwork } from '../../streams/natsNetwork.js';
import { Subject, asyncScheduler, interval, take, toArray, firstValueFrom } from 'rxjs';
import { leaseGatedJournal, leaseGatedNetwork, leaseGatedScheduler } from '../../src/natsCluster.js';

// What a node that lost the lease may still try before its service is closed: the gates refuse it.

describe('leaseGatedJournal', () => {
  it('appends while the lease is held; once it is not, an append fails the journal (once, with why) and writes nothing', () => {
    const inner = new MemoryJournal();
    let leader = true;
    const journal = leaseGatedJournal(inner, () => leader, 'node-1');
    const failures: Error[] = [];
    journal.onFailure(err => failures.push(err));
    journal.append({ type: 'a' });
    expect(journal.failure).toBeUndefined();
    leader = false;
    expect(() => journal.append({ type: 'b' })).toThrow(/node node-1 lost the leader lease/);
    expect(() => journal.snapshot({})).toThrow(/lost the leader lease/);
    leader = true; // a late renewal does not undo it: the coordinator on it has halted
    expect(() => journal.append({ type: 'c' })).toThrow(/lost the leader lease/);
    expect(failures).toHaveLength(1);
    expect(journal.failure?.message).toMatch(/appends nothing more/);
    expect(inner.recover().records).toEqual([{ type: 'a' }]);
    return expect(journal.durable()).rejects.toThrow(/lost the leader lease/);
  });

  it("passes the inner journal's own failure on", () => {
    const listeners: Array<(err: Error) => void> = [];
    const inner = Object.assign(new MemoryJournal(), { onFailure: (l: (err: Error) => void) => void listeners.push(l) });
    const journal = leaseGatedJournal(inner, () => true, 'node-1');
    const failures: Error[] = [];
    journal.onFailure(err => failures.push(err));
    for (const l of listeners) l(new Error('fenced'));
    expect(failures.map(e => e.message)).toEqual(['fenced']);
  });
});

describe('leaseGatedNetwork', () => {
  it('sends while the lease is held and drops every send once it is not; everything else passes through', () => {
    const sent: unknown[] = [];
    const network = { send: (m: unknown) => void sent.push(m), url: 'nats://x', close: function (this: { url: string }) { return this.url; } } as unknown as NatsNetwork;
    let leader = true;
    const gated = leaseGatedNetwork(network, () => leader);
    gated.send({ from: 'coordinator', to: 'a', kind: 'assign', body: {} } as never);
    leader = false;
    gated.send({ from: 'coordinator', to: 'a', kind: 'assign', body: { late: true } } as never);
    expect(sent).toHaveLength(1);
    expect(gated.url).toBe('nats://x');
    expect((gated.close as unknown as () => string)()).toBe('nats://x'); // bound to the network
  });
});

describe('leaseGatedScheduler', () => {
  it('runs work (periodic too) while the lease is held; work that comes due once it is not does not run, and says so', async () => {
    let leader = true;
    let refusals = 0;
    const scheduler = leaseGatedScheduler(asyncScheduler, () => leader, () => refusals++);
    const ticks: number[] = [];
    const sub = interval(5, scheduler).subscribe(i => {
      ticks.push(i);
      if (i === 2) leader = false;
    });
    for (let i = 0; i < 200 && refusals === 0; i++) await new Promise(resolve => setTimeout(resolve, 10));
    await new Promise(resolve => setTimeout(resolve, 30)); // nothing more comes
    sub.unsubscribe();
    expect(ticks).toEqual([0, 1, 2]);
    expect(refusals).toBeGreaterThanOrEqual(1);
    expect(scheduler.now()).toBeCloseTo(asyncScheduler.now(), -2);
  });
});

describe('leaseGatedNetwork (incoming)', () => {
  it('drops what comes in once the lease is not held, and says so', async () => {
    const inbox = new Subject<unknown>();
    let leader = true;
    let refusals = 0;
    const gated = leaseGatedNetwork({ join: () => inbox } as unknown as NatsNetwork, () => leader, () => refusals++);
    const got = firstValueFrom(gated.join('coordinator').pipe(take(2), toArray()));
    inbox.next(1);
    leader = false;
    inbox.next(2);
    leader = true;
    inbox.next(3);
    expect(await got).toEqual([1, 3]);
    expect(refusals).toBe(1);
  });
});
