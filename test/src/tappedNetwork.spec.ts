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
});
