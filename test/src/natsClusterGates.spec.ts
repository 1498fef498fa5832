import { MemoryJournal } from '../../streams/journal.js';
import type { NatsNetwork } from '../../streams/natsNetwork.js';
import { Subject, asyncScheduler, interval, take, toArray, firstValueFrom, type Observable } from 'rxjs';
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

describe('leaseGatedNetwork (sessions)', () => {
  it('tells sessions starting and ending, and the agents they admit and write off, only while the lease is held', async () => {
    const events = new Subject<unknown>();
    const members = new Subject<unknown>();
    const departures = new Subject<unknown>();
    let leader = true;
    let refusals = 0;
    const gated = leaseGatedNetwork({ events$: events, members$: members, departures$: departures } as unknown as NatsNetwork, () => leader, () => refusals++);
    const got = Promise.all([gated.events$, gated.members$ as Observable<unknown>, gated.departures$ as Observable<unknown>].map(o => firstValueFrom(o.pipe(take(2), toArray()))));
    for (const s of [events, members, departures]) s.next('before');
    leader = false;
    for (const s of [events, members, departures]) s.next('paused');
    leader = true;
    for (const s of [events, members, departures]) s.next('after');
    expect(await got).toEqual([['before', 'after'], ['before', 'after'], ['before', 'after']]);
    expect(refusals).toBe(3);
  });
});

describe('leaseGatedJournal (lost first)', () => {
  it('tells `lost` before the coordinator hears of a refused append', () => {
    let leader = true;
    const order: string[] = [];
    const journal = leaseGatedJournal(new MemoryJournal(), () => leader, 'node-1', () => order.push('lost'));
    journal.onFailure(() => order.push('coordinator'));
    leader = false;
    expect(() => journal.append({ type: 'a' })).toThrow(/lost the leader lease/);
    expect(order).toEqual(['lost', 'coordinator']);
  });

  it("on the journal's own failure (a write of before a pause refused by the new leader's fence): `lost` first when the lease is gone, not when it is held", () => {
    const listeners: Array<(err: Error) => void> = [];
    const inner = Object.assign(new MemoryJournal(), { onFailure: (l: (err: Error) => void) => void listeners.push(l) });
    const order: string[] = [];
    let leader = false;
    const journal = leaseGatedJournal(inner, () => leader, 'node-1', () => order.push('lost'));
    journal.onFailure(err => order.push(`coordinator: ${err.message}`));
    for (const l of listeners) l(new Error('fenced'));
    expect(order).toEqual(['lost', 'coordinator: fenced']);
    order.length = 0;
    leader = true;
    for (const l of listeners) l(new Error('damaged'));
    expect(order).toEqual(['coordinator: damaged']); // held: a failure of its own, said as such by the node
  });
});
