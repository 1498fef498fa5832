import { NEVER, of } from 'rxjs';
import { InMemoryNetwork, type Network } from '../../streams/network.js';
import { VirtualScheduler } from '../../streams/virtualScheduler.js';
import { tappedNetwork } from '../../src/tappedNetwork.js';

describe('tappedNetwork', () => {
  it('passes on what a transport for remote agents adds to the seam (members$, departures$), and nothing it lacks', () => {
    const inner = new InMemoryNetwork({ scheduler: new VirtualScheduler() });
    const members$ = of({ agentId: 'a', capabilities: [], slots: 1 });
    const departures$ = NEVER;
    const remote: Network = { scheduler: inner.scheduler, join: id => inner.join(id), send: m => inner.send(m), stats: inner.stats, members$, departures$ };
    const tapped = tappedNetwork(remote, {});
    expect(tapped.members$).toBe(members$);
    expect(tapped.departures$).toBe(departures$);
    const plain = tappedNetwork(inner, {});
    expect('members$' in plain).toBe(false);
    expect('departures$' in plain).toBe(false);
  });

  it('holds a node\'s inbox: the tap sees what reaches it while nobody has joined it, each joiner gets what comes from then on, and release lets go', () => {
    const scheduler = new VirtualScheduler();
    const inner = new InMemoryNetwork({ scheduler, latency: { meanMs: 1 } });
    const seen: string[] = [];
    const tapped = tappedNetwork(inner, { received: e => seen.push(e.kind), hold: 'c' });
    const beat = (kind: string): void => inner.send({ from: 'a', to: 'c', kind, body: {} });
    beat('idle-1');
    scheduler.advanceBy(5);
    const first: string[] = [];
    const engine = tapped.join('c').subscribe(e => first.push(e.kind));
    beat('task-1');
    scheduler.advanceBy(5);
    engine.unsubscribe();
    beat('idle-2');
    scheduler.advanceBy(5);
    const second: string[] = [];
    tapped.join('c').subscribe(e => second.push(e.kind));
    beat('task-2');
    scheduler.advanceBy(5);
    expect(seen).toEqual(['idle-1', 'task-1', 'idle-2', 'task-2']);
    expect(first).toEqual(['task-1']);
    expect(second).toEqual(['task-2']);
    tapped.release();
    beat('after');
    scheduler.advanceBy(5);
    expect(seen).toHaveLength(4);
    expect(inner.stats.byKind['after']?.dropped).toBe(1); // nobody holds it now
  });
});
