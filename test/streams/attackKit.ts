import type { CoordinationEvent, CoordinationResult } from '../../src/events.js';
import { startAgent, type AgentProcess } from '../../src/remote.js';
import { Service, type ServiceOptions } from '../../src/service.js';
import type { WireMessage } from '../../streams/wsCodec.js';
import type { WsServerEvent } from '../../streams/wsNetwork.js';
import { openRaw, type Raw } from './rawSocket.js';

// What the attack specs share (after the helpers of wsHardening.spec.ts): a Service on a free port,
// honest agents, hand-driven hostile sockets. Every wait is on an event, bounded.
export const TOKEN = 'attack-secret';
export const WAIT_MS = 10_000;

/** Cleanups the caller runs in its afterEach, last first. */
export const cleanups: Array<() => unknown> = [];

export async function cleanUp(): Promise<void> {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
}

/** Resolves once `test()` gives a value (checked on every event fed through `check`), or rejects after `ms`. */
export function until<T>(what: string, subscribe: (check: () => void) => () => void, test: () => T | undefined, ms = WAIT_MS): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let stop = (): void => undefined;
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
    }, ms);
    const check = (): void => {
      const value = test();
      if (value === undefined) return;
      clearTimeout(timer);
      stop();
      resolve(value);
    };
    stop = subscribe(check);
    check();
  });
}

export type AnyEvent = CoordinationEvent | WsServerEvent;

export interface Started {
  readonly service: Service;
  readonly events: CoordinationEvent[];
  readonly server: WsServerEvent[];
  /** Resolves with the first coordination or server event (seen or to come) that matches, within `ms`. */
  event(predicate: (e: AnyEvent) => boolean, what?: string, ms?: number): Promise<AnyEvent>;
}

/** A service on a free port (a star beating every 100 ms unless `options` say otherwise); `keepEvents` false keeps no event (a memory test). */
export async function start(options: Partial<ServiceOptions> = {}, keepEvents = true): Promise<Started> {
  const events: CoordinationEvent[] = [];
  const server: WsServerEvent[] = [];
  const listeners = new Set<() => void>();
  const tell = (): void => {
    for (const l of [...listeners]) l();
  };
  const { coordinator, ...network } = options;
  const service = await Service.start({
    token: TOKEN,
    port: 0,
    log: () => undefined,
    ...network,
    coordinator: { topology: 'star', heartbeat: { intervalMs: 100 }, ...coordinator },
    onEvent: e => {
      if (keepEvents) events.push(e);
      tell();
    },
  });
  cleanups.push(() => service.close());
  service.server.events$.subscribe(e => {
    if (keepEvents) server.push(e);
    tell();
  });
  return {
    service,
    events,
    server,
    event: (predicate, what = 'an event', ms) =>
      until(
        what,
        check => (listeners.add(check), () => listeners.delete(check)),
        () => [...events, ...server].find(predicate),
        ms,
      ),
  };
}

export function agents(url: string, ids: readonly string[], capabilities: string[] = []): Promise<AgentProcess[]> {
  const started = ids.map(id => startAgent({ url, token: TOKEN, id, capabilities, heartbeatIntervalMs: 100, reconnect: { initialDelayMs: 20, maxDelayMs: 200 } }));
  for (const a of started) cleanups.push(() => a.leave());
  return Promise.all(
    started.map(
      a =>
        new Promise<AgentProcess>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`${a.host.id} did not join`)), WAIT_MS);
          const sub = a.network.events$.subscribe(e => {
            if (e.type !== 'joined') return;
            clearTimeout(timer);
            sub.unsubscribe();
            resolve(a);
          });
        }),
    ),
  );
}

export async function raw(url: string): Promise<Raw> {
  const r = await openRaw(url, WAIT_MS);
  cleanups.push(() => r.socket.terminate());
  return r;
}

export const envelope = (from: string, to: string, kind: string, body: unknown): WireMessage => ({ v: 1, type: 'envelope', from, to, kind, body }) as WireMessage;

/** Joins `id` on a raw socket (no heartbeats): the join frame is returned. */
export async function hello(r: Raw, id: string, { capabilities = [] as string[], slots = 1, role = 'agent' as 'agent' | 'client' } = {}): Promise<WireMessage> {
  r.send({ v: 1, type: 'hello', agentId: id, capabilities, token: TOKEN, slots, role });
  return r.frame(m => m.type === 'join' || m.type === 'error');
}

/** A token-holding agent under our control: joined, beating (JSON) every 100 ms, doing whatever the test says. */
export async function rogue(url: string, id: string, { capabilities = [] as string[], slots = 1 } = {}): Promise<Raw & { stopBeats(): void }> {
  const r = await raw(url);
  await hello(r, id, { capabilities, slots });
  const beat = setInterval(() => r.send(envelope(id, 'coordinator', 'heartbeat', { load: 0, incarnation: 1 })), 100);
  r.send(envelope(id, 'coordinator', 'heartbeat', { load: 0, incarnation: 1 }));
  cleanups.push(() => clearInterval(beat));
  r.closed.then(() => clearInterval(beat), () => undefined);
  return Object.assign(r, { stopBeats: () => clearInterval(beat) });
}

export const work = (n: number, prefix = 's', payload: unknown = { sleepMs: 5 }) => Array.from({ length: n }, (_, i) => ({ id: `${prefix}-${i}`, payload, capabilities: ['work'] }));

/** `promise`, or a rejection with the run so far after `ms`. */
export function bounded<T>(promise: Promise<T>, events: readonly CoordinationEvent[], ms = 20_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const brief = (e: CoordinationEvent): string => [e.type, ...['subtaskId', 'agentId', 'attempt', 'reason', 'detail'].map(k => (e as unknown as Record<string, unknown>)[k]).filter(v => v !== undefined)].join(' ');
  const stalled = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no outcome within ${ms} ms; the run so far:\n${events.map(brief).join('\n')}`)), ms);
  });
  return Promise.race([promise, stalled]).finally(() => clearTimeout(timer));
}

/** Every subtask completed exactly once, by one of `honest`, with the built-in worker's value. */
export function expectHonest(result: CoordinationResult, events: readonly CoordinationEvent[], ids: readonly string[], honest: readonly string[]): void {
  expect(result.failed).toEqual({});
  expect(result.success).toBe(true);
  expect(Object.keys(result.results).sort()).toEqual([...ids].sort());
  for (const id of ids) expect(result.results[id]).toMatchObject({ subtaskId: id, agentId: expect.toSatisfy((a: string) => honest.includes(a)) });
  const completed = events.filter(e => e.type === 'subtask.completed' && ids.includes((e as { subtaskId: string }).subtaskId)).map(e => (e as { subtaskId: string }).subtaskId);
  expect(completed.sort()).toEqual([...ids].sort());
}

export function quarantined(events: readonly CoordinationEvent[]): string[] {
  return events.filter(e => e.type === 'agent.quarantined').map(e => (e as { agentId: string }).agentId);
}
