import { Observable, ReplaySubject, asyncScheduler, filter, firstValueFrom, take, timeout, throwError, toArray } from 'rxjs';
import { builtinWorker, startAgent, type AgentProcess, type Handler } from '../../src/remote.js';
import type { HeartbeatBody } from '../../streams/protocol.js';
import { WsServerNetwork, type WsClientEvent, type WsServerEvent } from '../../streams/wsNetwork.js';

// Real sockets on 127.0.0.1, port 0. Waits are on events, bounded by a timeout.
const TOKEN = 'remote-spec';
const WAIT_MS = 5000;
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function serve(port = 0, heartbeatMs?: number): Promise<{ server: WsServerNetwork; events: ReplaySubject<WsServerEvent> }> {
  const events = new ReplaySubject<WsServerEvent>();
  const server = await WsServerNetwork.listen({ token: TOKEN, port, log: e => events.next(e), ...(heartbeatMs === undefined ? {} : { heartbeatMs }) });
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
  it('beats at the interval the coordinator tells at hello, whatever it was started with', async () => {
    const { server } = await serve(0, 250);
    const { running, events } = agent(server.url, 'h-1', { heartbeatIntervalMs: 5000 });
    expect(running.host.heartbeatIntervalMs).toBe(5000);
    const joined = await firstValueFrom(events.pipe(filter(e => e.type === 'joined'), timeout(WAIT_MS)));
    expect(joined).toMatchObject({ heartbeatMs: 250 });
    expect(running.host.heartbeatIntervalMs).toBe(250);
    // …and the coordinator hears it at that rhythm: several beats well within one old interval.
    const beats: number[] = [];
    const inbox = server.join('coordinator').subscribe(e => e.kind === 'heartbeat' && beats.push(performance.now()));
    cleanups.push(() => inbox.unsubscribe());
    await firstValueFrom(new Observable<number>(subscriber => {
      const t = setInterval(() => beats.length >= 3 && subscriber.next(beats.length), 20);
      return () => clearInterval(t);
    }).pipe(timeout(WAIT_MS)));
    expect((beats[2] as number) - (beats[0] as number)).toBeLessThan(2500);
  });

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

describe('startAgent: usage in its heartbeats', () => {
  async function beats(options: Partial<Parameters<typeof startAgent>[0]>): Promise<HeartbeatBody[]> {
    const { server } = await serve(0, 100);
    const inbox = new ReplaySubject<HeartbeatBody>();
    const subscription = server.join('coordinator').subscribe(e => e.kind === 'heartbeat' && inbox.next(e.body as HeartbeatBody));
    cleanups.push(() => subscription.unsubscribe());
    agent(server.url, 'u-1', options);
    return firstValueFrom(inbox.pipe(take(3), toArray(), timeout(WAIT_MS)));
  }

  it('measures the process (memory, CPU, event loop) and sends the highest with every beat', async () => {
    for (const body of await beats({})) {
      expect(body.usage?.fraction).toBeGreaterThanOrEqual(0);
      expect(['memory', 'cpu', 'event loop']).toContain(body.usage?.what);
    }
  });

  it('counts in the --exec children, and sends no usage when told not to measure', async () => {
    const children = () => ({ rssBytes: 1, cpuCores: 0, memoryFraction: 0.96 });
    expect((await beats({ usage: { children } })).map(b => b.usage)).toContainEqual({ fraction: 0.96, what: 'memory' });
    for (const body of await beats({ usage: false })) expect(body.usage).toBeUndefined();
  });
});

describe('startAgent: leaving with handlers at work', () => {
  /** An agent whose handler is `handler`, given one subtask by the server; resolves once the handler has it. */
  async function busy(handler: Handler): Promise<AgentProcess> {
    const { server } = await serve();
    const started = new ReplaySubject<AbortSignal>();
    const { running, events } = agent(server.url, 'busy-1', {
      handler: (subtask, context) => {
        started.next(context.signal);
        return handler(subtask, context);
      },
    });
    await firstValueFrom(events.pipe(filter(e => e.type === 'joined'), timeout(WAIT_MS)));
    server.send({ from: 'coordinator', to: 'busy-1', kind: 'assign', body: { subtask: { id: 's' }, attempt: 1, replyPath: ['coordinator'], via: [] } });
    await firstValueFrom(started.pipe(timeout(WAIT_MS)));
    return running;
  }

  it('aborts the running handler; settled() resolves 0 once it has ended on its signal', async () => {
    const running = await busy((_, context) => new Promise((_, reject) => context.signal.addEventListener('abort', () => reject(context.signal.reason))));
    await running.leave();
    expect(await running.settled(WAIT_MS)).toBe(0);
  });

  it('settled() gives up on a handler that ignores its signal after graceMs, with the count still running', async () => {
    const running = await busy(() => new Promise(() => undefined));
    await running.leave();
    const before = performance.now();
    expect(await running.settled(50)).toBe(1);
    expect(performance.now() - before).toBeLessThan(WAIT_MS);
  });

  it('settled() checks graceMs', async () => {
    const { server } = await serve();
    const { running } = agent(server.url, 'g-1');
    await expect(running.settled(-1)).rejects.toThrow(/graceMs must be a number of ms/);
  });
});

describe('builtinWorker and its abort signal', () => {
  const context = (signal: AbortSignal) => ({ agentId: 'w', attempt: 1, scheduler: asyncScheduler, heartbeat: () => undefined, usage: () => undefined, delegate: () => Promise.reject(new Error('no coordinator here')), delegate$: () => throwError(() => new Error('no coordinator here')), signal });

  it('ends a sleep with the reason of its signal as soon as it is aborted', async () => {
    const abort = new AbortController();
    const result = firstValueFrom(builtinWorker({ id: 's', payload: { sleepMs: 60_000 } }, context(abort.signal)) as Observable<unknown>);
    abort.abort(new DOMException('handed back', 'AbortError'));
    await expect(result).rejects.toMatchObject({ name: 'AbortError', message: 'handed back' });
  });

  it('does not start on a signal already aborted', async () => {
    const abort = new AbortController();
    abort.abort(new DOMException('too late', 'AbortError'));
    await expect(firstValueFrom(builtinWorker({ id: 's', payload: 'x' }, context(abort.signal)) as Observable<unknown>)).rejects.toMatchObject({ message: 'too late' });
  });
});
