import { ReplaySubject, filter, firstValueFrom, take, timeout, toArray } from 'rxjs';
import { startAgent, type AgentProcess } from '../../src/remote.js';
import { WsServerNetwork, type WsClientEvent, type WsServerEvent } from '../../streams/wsNetwork.js';

// Real sockets on 127.0.0.1, port 0. Waits are on events, bounded by a timeout.
const TOKEN = 'remote-spec';
const WAIT_MS = 5000;
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function serve(port = 0): Promise<{ server: WsServerNetwork; events: ReplaySubject<WsServerEvent> }> {
  const events = new ReplaySubject<WsServerEvent>();
  const server = await WsServerNetwork.listen({ token: TOKEN, port, log: e => events.next(e) });
  cleanups.push(() => server.close());
  return { server, events };
}

function agent(url: string, id: string, options: Partial<Parameters<typeof startAgent>[0]> = {}): { running: AgentProcess; events: ReplaySubject<WsClientEvent> } {
  const events = new ReplaySubject<WsClientEvent>();
  const running = startAgent({ url, token: TOKEN, id, heartbeatIntervalMs: 100, reconnect: { initialDelayMs: 10, maxDelayMs: 20 }, onEvent: e => events.next(e), ...options });
  running.done.catch(() => undefined);
  cleanups.push(() => running.leave());
  return { running, events };
}

describe('startAgent', () => {
  it('after a coordinator restart, starts over on the connection it has: the new server sees one join and no departure', async () => {
    const first = await serve();
    const port = first.server.port;
    const { running, events } = agent(first.server.url, 'r-1');
    await firstValueFrom(events.pipe(filter(e => e.type === 'joined'), timeout(WAIT_MS)));
    const incarnation = (running.host as unknown as { incarnation: number }).incarnation;
    await first.server.close();
    const second = await serve(port);
    const joined = await firstValueFrom(events.pipe(filter(e => e.type === 'joined'), take(2), toArray(), timeout(WAIT_MS)));
    expect(joined[1]).toMatchObject({ session: second.server.session });
    expect((running.host as unknown as { incarnation: number }).incarnation).toBe(incarnation + 1); // started over
    // A beat of the new incarnation reaches the new coordinator over the same connection.
    const inbox = new ReplaySubject<unknown>();
    const subscription = second.server.join('coordinator').subscribe(inbox);
    cleanups.push(() => subscription.unsubscribe());
    await firstValueFrom(inbox.pipe(timeout(WAIT_MS)));
    const seen: WsServerEvent[] = [];
    second.events.subscribe(e => seen.push(e)).unsubscribe();
    expect(seen.filter(e => e.type === 'connected')).toHaveLength(1);
    expect(seen.filter(e => e.type === 'disconnected')).toEqual([]);
    expect(running.host.state).toBe('running');
  });
});
