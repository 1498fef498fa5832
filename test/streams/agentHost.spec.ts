import fc from 'fast-check';
import { Observable, concatMap, defer, finalize, of, tap, throwError, timer } from 'rxjs';
import { AgentHost, type AgentHostOptions } from '../../streams/agentHost.js';
import type { Envelope } from '../../streams/messages.js';
import { InMemoryNetwork, type Network } from '../../streams/network.js';
import { routeLeft, type AssignBody, type HeartbeatBody, type MessageBodies, type MessageKind, type ProgressBody, type ResultBody, type Routed, type VoteBody } from '../../streams/protocol.js';
import { createRandom } from '../../streams/random.js';
import type { AgentContext, InProcessAgent, Subtask } from '../../streams/task.js';
import { VirtualScheduler } from '../../streams/virtualScheduler.js';

const C = 'coordinator';
const LATENCY = 5;
const INTERVAL = 100;
const JITTER = 10;

/** What a test subtask asks its handler to do (its payload). */
interface Work {
  /** Virtual ms before the values come; 0 or absent: synchronously. */
  readonly ms?: number;
  readonly values?: readonly unknown[];
  /** Error the Observable ends with (after `ms`). */
  readonly fail?: string;
  /** Error `handle` throws synchronously. */
  readonly throws?: unknown;
}

interface Call {
  readonly subtaskId: string;
  readonly attempt: number;
  readonly at: number;
  readonly context: AgentContext;
}

/** An agent that does what each subtask's payload says, in virtual time, and logs every call. */
function workAgent(id: string, scheduler: VirtualScheduler, concurrency?: number) {
  const calls: Call[] = [];
  let active = 0;
  let maxActive = 0;
  const agent: InProcessAgent = {
    id,
    capabilities: ['work'],
    ...(concurrency === undefined ? {} : { concurrency }),
    handle(subtask: Subtask, context: AgentContext): Observable<unknown> {
      calls.push({ subtaskId: subtask.id, attempt: context.attempt, at: scheduler.now(), context });
      const { ms = 0, values = [], fail, throws } = (subtask.payload ?? {}) as Work;
      if (throws !== undefined) throw throws;
      const body = fail !== undefined ? throwError(() => new Error(fail)) : of(...values);
      const work = ms > 0 ? timer(ms, scheduler).pipe(concatMap(() => body)) : body;
      return defer(() => {
        active++;
        maxActive = Math.max(maxActive, active);
        return work;
      }).pipe(finalize(() => active--));
    },
  };
  return {
    agent,
    calls,
    get active() {
      return active;
    },
    get maxActive() {
      return maxActive;
    },
  };
}

interface SetupOptions {
  readonly id?: string;
  readonly concurrency?: number;
  readonly seed?: number;
  readonly jitter?: number;
  readonly heartbeatTargets?: () => readonly string[];
  readonly peerSilenceMs?: number;
  /** Another agent than the work agent, made on the harness's scheduler. */
  readonly agent?: (scheduler: VirtualScheduler) => InProcessAgent;
}

interface Route {
  /** First node the assign goes to; default the host. */
  readonly to?: string;
  readonly via?: readonly string[];
  readonly replyPath?: readonly string[];
}

/** A virtual-time network with a host `a` (by default) and a test node joined as the coordinator, logging arrivals. */
function setup(options: SetupOptions = {}) {
  const { id = 'a', concurrency, seed = 1, jitter = JITTER } = options;
  const scheduler = new VirtualScheduler();
  const network = new InMemoryNetwork({ scheduler, latency: { meanMs: LATENCY } });
  const arrivals: Array<{ at: number; envelope: Envelope }> = [];
  network.join(C).subscribe(envelope => arrivals.push({ at: scheduler.now(), envelope }));
  const worker = workAgent(id, scheduler, concurrency);
  const hostOptions = (overrides: Partial<AgentHostOptions> = {}): AgentHostOptions => ({
    network,
    coordinatorId: C,
    heartbeatIntervalMs: INTERVAL,
    heartbeatJitterMs: jitter,
    random: createRandom(seed),
    ...(options.heartbeatTargets === undefined ? {} : { heartbeatTargets: options.heartbeatTargets }),
    ...(options.peerSilenceMs === undefined ? {} : { peerSilenceMs: options.peerSilenceMs }),
    ...overrides,
  });
  const host = new AgentHost(options.agent?.(scheduler) ?? worker.agent, hostOptions());
  const send = <K extends MessageKind>(kind: K, body: MessageBodies[K], to = id, sender = C): void =>
    network.send({ from: sender, to, kind, body });
  const assign = (subtaskId: string, attempt: number, work: Work = {}, { to = id, via = [], replyPath = [C] }: Route = {}): void =>
    send('assign', { subtask: { id: subtaskId, payload: work }, attempt, replyPath, via }, to);
  const cancel = (subtaskId: string, attempt: number, to = id): void => send('cancel', { subtaskId, attempt, via: [] }, to);
  const arrived = <K extends MessageKind>(kind: K): Array<MessageBodies[K]> =>
    arrivals.filter(a => a.envelope.kind === kind).map(a => a.envelope.body as MessageBodies[K]);
  const arrivedAt = (kind: MessageKind): number[] => arrivals.filter(a => a.envelope.kind === kind).map(a => a.at);
  // As the wire would carry them: the route still to go (`via` from `hop` on), whatever the hops shared.
  const results = (): ResultBody[] => arrived('result').map(onWire);
  return { scheduler, network, arrivals, worker, host, hostOptions, send, assign, cancel, arrived, arrivedAt, results };
}

/** A routed body as a transport writes it: the route still to go as `via`, no `hop`. */
function onWire<B extends Routed>(body: B): B {
  const { hop: _hop, ...rest } = body;
  return { ...rest, via: routeLeft(body) } as B;
}

/** Lets promise callbacks (microtasks) run; no wall-clock time passes. */
async function microtasks(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

describe('AgentHost', () => {
  describe('delayed acknowledgement (ackDelayMs)', () => {
    it('work shorter than the delay is acknowledged by its result alone; longer work by progress 0 at the delay', () => {
      const { scheduler, worker, hostOptions, assign, arrived, arrivedAt } = setup();
      const host = new AgentHost(worker.agent, hostOptions({ ackDelayMs: 50 }));
      host.start();
      assign('short', 1, { ms: 10, values: ['s'] });
      scheduler.advanceBy(200);
      expect(arrived('progress')).toEqual([]); // the result said it
      // …and how long the assignment was held before it (the 10 ms of work): the coordinator takes the round trip less that.
      expect(arrived('result')).toMatchObject([{ subtaskId: 'short', ok: true, heldMs: 10 }]);
      assign('long', 2, { ms: 300, values: ['l'] });
      scheduler.advanceBy(400);
      expect(arrived('progress')).toEqual([{ subtaskId: 'long', attempt: 2, progress: 0, copy: 0 }]);
      expect(arrivedAt('progress')).toEqual([200 + LATENCY + 50 + LATENCY]);
      expect(arrived('result')[1]).not.toHaveProperty('heldMs'); // acknowledged on its own: nothing to say
    });

    it('a cancelled or dropped assignment is not acknowledged later, and a crash sends nothing', () => {
      const { scheduler, worker, hostOptions, assign, cancel, arrived } = setup();
      const host = new AgentHost(worker.agent, hostOptions({ ackDelayMs: 50 }));
      host.start();
      assign('x', 1, { ms: 300 });
      scheduler.advanceBy(LATENCY + 10);
      cancel('x', 1);
      assign('y', 2, { ms: 300 });
      scheduler.advanceBy(LATENCY + 10);
      host.crash();
      scheduler.advanceBy(500);
      expect(arrived('progress')).toEqual([]);
    });

    it('a result through relays tells the coordinator it is on its way only if not confirmed within the delay', () => {
      const { scheduler, worker, hostOptions, send, arrived, arrivedAt } = setup();
      const host = new AgentHost(worker.agent, hostOptions({ ackDelayMs: 50 }));
      host.start();
      const relayed = (subtaskId: string, rto?: number): void =>
        send('assign', { subtask: { id: subtaskId, payload: { ms: 10, values: ['v'] } }, attempt: 1, replyPath: ['r', C], via: [], ...(rto === undefined ? {} : { rto }) });
      relayed('quick', 1000);
      scheduler.advanceBy(LATENCY + 10 + 20); // finished at LATENCY + 10 (its result went to r)
      send('received', { subtaskId: 'quick', attempt: 1 }); // confirmed within the delay: no word of its own
      relayed('slow', 1000);
      scheduler.advanceBy(500);
      // Nothing acknowledged 'slow' before: its word says how long it held the assignment (10 ms of work, the 50 ms delay).
      expect(arrived('progress')).toEqual([{ subtaskId: 'slow', attempt: 1, progress: 1, done: true, heldMs: 60 }]);
      const slowDone = 2 * (LATENCY + 10) + 20 + 50; // 'slow' finished at LATENCY + 10 after it was sent, plus the delay
      expect(arrivedAt('progress')).toEqual([slowDone + LATENCY]);
      // A coordinator that does not confirm results (no rto): the word goes at once, as it would never be confirmed.
      relayed('unconfirmed');
      scheduler.advanceBy(LATENCY + 10 + LATENCY);
      expect(arrived('progress').at(-1)).toEqual({ subtaskId: 'unconfirmed', attempt: 1, progress: 1, done: true, heldMs: 10 });
      host.crash(); // nothing left pending
      expect(worker.calls.map(c => c.subtaskId)).toEqual(['quick', 'slow', 'unconfirmed']);
    });

    it('a result through relays not confirmed says again that it is on its way with every retransmission: the first word may have been lost with it', () => {
      const { scheduler, worker, hostOptions, send, network } = setup();
      const host = new AgentHost(worker.agent, hostOptions({ ackDelayMs: 0 }));
      host.start();
      const sent = vi.spyOn(network, 'send');
      const count = (kind: string, done?: boolean): number => sent.mock.calls.filter(([m]) => m.from === 'a' && m.kind === kind && (done === undefined || (m.body as { done?: boolean }).done === done)).length;
      send('assign', { subtask: { id: 'lost', payload: { ms: 10, values: ['v'] } }, attempt: 1, replyPath: ['r', C], via: [], rto: 100 });
      scheduler.advanceBy(LATENCY + 10);
      expect([count('result'), count('progress', true)]).toEqual([1, 1]);
      scheduler.advanceBy(1000);
      const results = count('result');
      expect(results).toBeGreaterThan(2);
      expect(count('progress', true)).toBe(results); // a word with every send of the result
      send('received', { subtaskId: 'lost', attempt: 1 });
      scheduler.advanceBy(LATENCY);
      const final = count('result');
      scheduler.advanceBy(5000);
      expect([count('result'), count('progress', true)]).toEqual([final, final]); // confirmed: nothing more
      host.crash();
    });

    it('rejects a negative delay', () => {
      const { worker, hostOptions } = setup();
      expect(() => new AgentHost(worker.agent, hostOptions({ ackDelayMs: -1 }))).toThrow(/ackDelayMs/);
    });
  });

  describe('usage in heartbeats', () => {
    const usages = (arrived: ReturnType<typeof setup>['arrived']): Array<HeartbeatBody['usage']> => arrived('heartbeat').map(b => b.usage);

    it('carries the highest of what handlers report and what the process measures, once there is any, then on every beat', () => {
      const { scheduler, host, assign, worker, arrived } = setup({ jitter: 0, concurrency: 2 });
      host.start();
      scheduler.advanceBy(INTERVAL - 1); // beats at 0 and 100 so far: nothing to report
      assign('s-1', 1, { ms: 250 });
      assign('s-2', 2, { ms: 450 });
      scheduler.advanceBy(LATENCY + 1);
      worker.calls[0]!.context.usage(0.7, 'tokens');
      worker.calls[1]!.context.usage(0.4);
      scheduler.advanceBy(100); // beat at 200
      host.setUsage({ fraction: 0.5, what: 'memory' });
      scheduler.advanceBy(100); // beat at 300
      scheduler.advanceBy(100); // beat at 400: s-1 ended (at ~355), s-2 still reports 0.4
      host.setUsage(() => ({ fraction: 0.95, what: 'cpu' }));
      scheduler.advanceBy(100); // beat at 500
      host.setUsage(undefined);
      scheduler.advanceBy(200); // beats at 600 (s-2 ended at ~555) and 700
      worker.calls[1]!.context.usage(0.99); // after its run: ignored
      scheduler.advanceBy(100);
      expect(usages(arrived)).toEqual([
        undefined,
        undefined,
        { fraction: 0.7, what: 'tokens' },
        { fraction: 0.7, what: 'tokens' },
        { fraction: 0.5, what: 'memory' },
        { fraction: 0.95, what: 'cpu' },
        { fraction: 0 },
        { fraction: 0 },
        { fraction: 0 },
      ]);
    });

    it('starts over without usage in a new incarnation, and refuses a usage that is not a fraction', () => {
      const { scheduler, host, arrived } = setup({ jitter: 0 });
      host.setUsage({ fraction: 0.2 });
      host.start();
      scheduler.advanceBy(LATENCY);
      host.setUsage(undefined);
      host.restart();
      scheduler.advanceBy(LATENCY);
      expect(usages(arrived)).toEqual([{ fraction: 0.2 }, undefined]);
      expect(() => host.setUsage({ fraction: -1 })).toThrow(/usage fraction must be a finite number >= 0, got -1/);
      expect(() => host.setUsage({ fraction: Number.NaN })).toThrow(RangeError);
      expect(() => host.setUsage({ fraction: 0.5, what: 'x'.repeat(65) })).toThrow(/at most 64/);
    });
  });

  describe('lifecycle and heartbeats', () => {
    it('is not on the network until start(); start() joins and beats at once', () => {
      const { scheduler, network, host, arrivals } = setup();
      expect(host.state).toBe('crashed');
      expect(network.isJoined('a')).toBe(false);
      scheduler.advanceBy(500);
      expect(arrivals).toEqual([]);

      host.start();
      expect(host.state).toBe('running');
      expect(network.isJoined('a')).toBe(true);
      scheduler.advanceBy(LATENCY);
      expect(arrivals).toEqual([{ at: 505, envelope: { from: 'a', to: C, kind: 'heartbeat', body: { load: 0, incarnation: 1 }, sentAt: 500 } }]);
    });

    it('start() on a started host changes nothing (one join, one beat timer)', () => {
      const { scheduler, host, arrivedAt } = setup({ jitter: 0 });
      host.start();
      host.start();
      scheduler.advanceBy(1000);
      expect(arrivedAt('heartbeat')).toEqual([5, 105, 205, 305, 405, 505, 605, 705, 805, 905]);
    });

    it('beats every interval ± jitter, spread over the range, reproducibly from the seed', () => {
      const beats = (seed: number): number[] => {
        const { scheduler, host, arrivals } = setup({ seed });
        host.start();
        scheduler.advanceBy(200 * INTERVAL);
        return arrivals.filter(a => a.envelope.kind === 'heartbeat').map(a => a.envelope.sentAt);
      };
      const times = beats(7);
      expect(times[0]).toBe(0);
      const gaps = times.slice(1).map((t, i) => t - (times[i] as number));
      expect(gaps.length).toBeGreaterThan(150);
      for (const gap of gaps) {
        expect(gap).toBeGreaterThanOrEqual(INTERVAL - JITTER);
        expect(gap).toBeLessThanOrEqual(INTERVAL + JITTER);
      }
      expect(Math.min(...gaps)).toBeLessThan(INTERVAL - JITTER / 2);
      expect(Math.max(...gaps)).toBeGreaterThan(INTERVAL + JITTER / 2);
      expect(beats(7)).toEqual(times);
      expect(beats(8)).not.toEqual(times);
    });

    it('beats exactly every interval with no jitter', () => {
      const { scheduler, host, arrivals } = setup({ jitter: 0 });
      host.start();
      scheduler.advanceBy(10 * INTERVAL);
      expect(arrivals.map(a => a.envelope.sentAt)).toEqual([0, 100, 200, 300, 400, 500, 600, 700, 800, 900]);
    });

    it('beats to the heartbeat targets, read at every beat, never to itself', () => {
      let targets: readonly string[] = [C, 'a', 'p'];
      const { scheduler, network, host, arrivals } = setup({ jitter: 0, heartbeatTargets: () => targets });
      const atPeer: number[] = [];
      network.join('p').subscribe(e => atPeer.push(e.sentAt));
      host.start();
      scheduler.advanceBy(250);
      targets = [C];
      scheduler.advanceBy(300);
      expect(atPeer).toEqual([0, 100, 200]);
      expect(arrivals.map(a => a.envelope.sentAt)).toEqual([0, 100, 200, 300, 400, 500]);
      // Nothing went a → a: every heartbeat sent is one of those delivered above.
      expect(network.stats.byKind['heartbeat']).toEqual({ sent: 9, delivered: 9, dropped: 0 });
    });

    it('reports its load (busy share of its slots) in each beat', () => {
      const { scheduler, host, assign, arrived } = setup({ jitter: 0, concurrency: 2 });
      host.start();
      for (const id of ['s0', 's1', 's2']) assign(id, 1, { ms: 1000 });
      scheduler.advanceBy(150);
      expect(host.load).toBe(1.5);
      expect(arrived('heartbeat').map(b => b.load)).toEqual([0, 1.5]);
    });
  });

  describe('work', () => {
    it('runs an assign with empty via and sends the last value back along the reply path', () => {
      const { scheduler, host, worker, assign, results } = setup();
      host.start();
      assign('s', 3, { ms: 50, values: ['x', 'y', 'z'] });
      scheduler.advanceBy(LATENCY);
      expect(worker.calls.map(({ subtaskId, attempt, at }) => ({ subtaskId, attempt, at }))).toEqual([{ subtaskId: 's', attempt: 3, at: 5 }]);
      const { context } = worker.calls[0] as Call;
      expect(context.agentId).toBe('a');
      expect(context.scheduler).toBe(scheduler);
      scheduler.advanceBy(50 + LATENCY - 1);
      expect(results()).toEqual([]);
      scheduler.advanceBy(1);
      expect(results()).toEqual([{ subtaskId: 's', attempt: 3, agentId: 'a', ok: true, value: 'z', via: [] }]);
    });

    it('sends value undefined for a handler that completes without a value, synchronously too', () => {
      const { scheduler, host, assign, results } = setup();
      host.start();
      assign('s', 1);
      scheduler.advanceBy(2 * LATENCY);
      expect(results()).toEqual([{ subtaskId: 's', attempt: 1, agentId: 'a', ok: true, value: undefined, via: [] }]);
    });

    it('runs a Promise handler: the result goes once the promise resolves (a microtask)', async () => {
      let resolve: (value: unknown) => void = () => undefined;
      const { scheduler, host, assign, results } = setup({
        agent: () => ({ id: 'a', capabilities: [], handle: () => new Promise(r => (resolve = r)) }),
      });
      host.start();
      assign('s', 2);
      scheduler.advanceBy(LATENCY);
      resolve(42);
      scheduler.advanceBy(100);
      expect(results()).toEqual([]); // the promise's callbacks have not run yet
      await microtasks();
      scheduler.advanceBy(LATENCY);
      expect(results()).toEqual([{ subtaskId: 's', attempt: 2, agentId: 'a', ok: true, value: 42, via: [] }]);
    });

    it('reports a rejected Promise as ok: false with its message', async () => {
      const { scheduler, host, assign, results } = setup({
        agent: () => ({ id: 'a', capabilities: [], handle: async (subtask: Subtask) => Promise.reject(new Error(`no ${subtask.id}`)) }),
      });
      host.start();
      assign('s', 1);
      scheduler.advanceBy(LATENCY);
      await microtasks();
      scheduler.advanceBy(LATENCY);
      expect(results()).toEqual([{ subtaskId: 's', attempt: 1, agentId: 'a', ok: false, error: 'no s', via: [] }]);
    });

    it('reports a handler error as ok: false with its message, and frees the slot', () => {
      const { scheduler, host, worker, assign, results } = setup();
      host.start();
      assign('s0', 1, { ms: 10, fail: 'disk full' });
      assign('s1', 1, { ms: 10, values: [1] });
      scheduler.advanceBy(100);
      expect(results()).toEqual([
        { subtaskId: 's0', attempt: 1, agentId: 'a', ok: false, error: 'disk full', via: [] },
        { subtaskId: 's1', attempt: 1, agentId: 'a', ok: true, value: 1, via: [] },
      ]);
      expect(worker.calls.map(c => c.at)).toEqual([5, 15]);
    });

    it('reports a synchronous throw as ok: false (a non-Error by its string), and frees the slot', () => {
      const { scheduler, host, assign, results } = setup();
      host.start();
      assign('s0', 1, { throws: new TypeError('bad input') });
      assign('s1', 1, { throws: 'plain' });
      assign('s2', 1, { values: ['ok'] });
      scheduler.advanceBy(2 * LATENCY);
      expect(results()).toEqual([
        { subtaskId: 's0', attempt: 1, agentId: 'a', ok: false, error: 'bad input', via: [] },
        { subtaskId: 's1', attempt: 1, agentId: 'a', ok: false, error: 'plain', via: [] },
        { subtaskId: 's2', attempt: 1, agentId: 'a', ok: true, value: 'ok', via: [] },
      ]);
    });

    it('reports a handler that returns neither an Observable nor a Promise as failed, and frees the slot', () => {
      const { scheduler, host, assign, results } = setup({
        agent: () => ({
          id: 'a',
          capabilities: [],
          handle: (subtask: Subtask) => (subtask.id === 'bad' ? (42 as unknown as Promise<unknown>) : of('fine')),
        }),
      });
      host.start();
      assign('bad', 1);
      assign('good', 1);
      scheduler.advanceBy(2 * LATENCY);
      expect(results()).toEqual([
        { subtaskId: 'bad', attempt: 1, agentId: 'a', ok: false, error: expect.stringMatching(/42/) as unknown, via: [] },
        { subtaskId: 'good', attempt: 1, agentId: 'a', ok: true, value: 'fine', via: [] },
      ]);
    });

    it('sends the result to the coordinator when the reply path is empty', () => {
      const { scheduler, host, assign, results } = setup();
      host.start();
      assign('s', 1, { values: [1] }, { replyPath: [] });
      scheduler.advanceBy(2 * LATENCY);
      expect(results()).toEqual([{ subtaskId: 's', attempt: 1, agentId: 'a', ok: true, value: 1, via: [] }]);
    });

    it('drains a long queue of synchronous handlers without deep recursion', () => {
      const { scheduler, host, assign, cancel, results } = setup();
      host.start();
      assign('blocker', 1, { ms: 1000 });
      const n = 20_000;
      for (let i = 0; i < n; i++) assign(`s${i}`, 1, { values: [i] });
      scheduler.advanceBy(LATENCY);
      expect(host.load).toBe(n + 1);
      cancel('blocker', 1); // frees the slot: the whole queue runs in one go
      scheduler.advanceBy(2 * LATENCY);
      expect(results()).toHaveLength(n);
      expect(results()[n - 1]).toMatchObject({ subtaskId: `s${n - 1}`, value: n - 1 });
    });
  });

  describe('relaying', () => {
    /** The harness plus a second host `r` (and `r2`) on the same network. */
    function withRelays(...ids: string[]) {
      const h = setup({ jitter: 0 });
      const relays = ids.map(id => {
        const worker = workAgent(id, h.scheduler);
        const host = new AgentHost(worker.agent, h.hostOptions());
        host.start();
        return { worker, host };
      });
      h.host.start();
      const sends = vi.spyOn(h.network, 'send');
      return { ...h, relays, sends };
    }

    it('forwards an assign with via = [x] to x with via = [] left (the same route, one hop on), and relays the result back: one counted message per hop', () => {
      const { scheduler, network, worker, relays, sends, assign, results, arrivals } = withRelays('r');
      assign('s', 1, { ms: 10, values: [7] }, { to: 'r', via: ['a'], replyPath: ['r', C] });
      scheduler.advanceBy(LATENCY);
      expect(worker.calls).toEqual([]);
      expect(sends).toHaveBeenLastCalledWith({
        from: 'r',
        to: 'a',
        kind: 'assign',
        body: { subtask: { id: 's', payload: { ms: 10, values: [7] } }, attempt: 1, replyPath: ['r', C], via: ['a'], hop: 1 },
      });
      // Shared, not copied: the relay passes on the very array it was given.
      const relayed = sends.mock.lastCall?.[0].body as AssignBody;
      expect(routeLeft(relayed)).toEqual([]);
      scheduler.advanceBy(LATENCY);
      expect(worker.calls.map(c => c.at)).toEqual([10]);
      scheduler.advanceBy(10);
      expect(sends).toHaveBeenNthCalledWith(sends.mock.calls.length - 1, { from: 'a', to: 'r', kind: 'result', body: { subtaskId: 's', attempt: 1, agentId: 'a', ok: true, value: 7, via: ['r', C], hop: 1 } });
      // …and, since it goes through a relay, word straight to the coordinator that it is on its way.
      expect(sends).toHaveBeenLastCalledWith({ from: 'a', to: C, kind: 'progress', body: { subtaskId: 's', attempt: 1, progress: 1, done: true } });
      scheduler.advanceBy(2 * LATENCY);
      expect(results()).toEqual([{ subtaskId: 's', attempt: 1, agentId: 'a', ok: true, value: 7, via: [] }]);
      expect(arrivals.find(a => a.envelope.kind === 'result')?.envelope.from).toBe('r');
      expect(relays[0]?.worker.calls).toEqual([]);
      expect(network.stats.byKind['assign']).toEqual({ sent: 2, delivered: 2, dropped: 0 });
      expect(network.stats.byKind['result']).toEqual({ sent: 2, delivered: 2, dropped: 0 });
    });

    it('relays through several hops', () => {
      const { scheduler, network, worker, relays, assign, results } = withRelays('r1', 'r2');
      assign('s', 4, { values: ['v'] }, { to: 'r1', via: ['r2', 'a'], replyPath: ['r2', 'r1', C] });
      scheduler.advanceBy(100);
      expect(worker.calls.map(c => c.at)).toEqual([15]);
      expect(results()).toEqual([{ subtaskId: 's', attempt: 4, agentId: 'a', ok: true, value: 'v', via: [] }]);
      expect(network.stats.byKind['assign']?.sent).toBe(3);
      expect(network.stats.byKind['result']?.sent).toBe(3);
      for (const relay of relays) expect(relay.worker.calls).toEqual([]);
    });

    it('relays a cancel to the host that runs the work', () => {
      const { scheduler, send, worker, assign, results } = withRelays('r');
      assign('s', 1, { ms: 100 }, { to: 'r', via: ['a'], replyPath: ['r', C] });
      scheduler.advanceBy(50);
      send('cancel', { subtaskId: 's', attempt: 1, via: ['a'] }, 'r');
      scheduler.advanceBy(500);
      expect(worker.calls).toHaveLength(1);
      expect(worker.active).toBe(0);
      expect(results()).toEqual([]);
    });

    it('a hung relay forwards nothing', () => {
      const { scheduler, network, relays, worker, assign } = withRelays('r');
      relays[0]?.host.hang();
      assign('s', 1, {}, { to: 'r', via: ['a'], replyPath: ['r', C] });
      scheduler.advanceBy(100);
      expect(worker.calls).toEqual([]);
      expect(network.stats.byKind['assign']?.sent).toBe(1);
    });
  });

  describe('concurrency', () => {
    it('runs at most `concurrency` subtasks at once and queues the rest FIFO', () => {
      const { scheduler, host, worker, assign, results } = setup({ concurrency: 2 });
      host.start();
      expect(host.slots).toBe(2);
      for (const id of ['s0', 's1', 's2', 's3', 's4']) assign(id, 1, { ms: 100, values: [id] });
      scheduler.advanceBy(1000);
      expect(worker.calls.map(c => [c.subtaskId, c.at])).toEqual([['s0', 5], ['s1', 5], ['s2', 105], ['s3', 105], ['s4', 205]]);
      expect(worker.maxActive).toBe(2);
      expect(results().map(r => r.value)).toEqual(['s0', 's1', 's2', 's3', 's4']);
    });

    it('defaults to one slot', () => {
      const { scheduler, host, worker, assign } = setup();
      host.start();
      expect(host.slots).toBe(1);
      for (const id of ['s0', 's1', 's2']) assign(id, 1, { ms: 100 });
      scheduler.advanceBy(1000);
      expect(worker.calls.map(c => c.at)).toEqual([5, 105, 205]);
    });

    it('setSlots raises the limit at once; lowering it lets running work finish first', () => {
      const { scheduler, host, worker, assign } = setup();
      host.start();
      for (const id of ['s0', 's1', 's2', 's3', 's4']) assign(id, 1, { ms: 100 });
      scheduler.advanceTo(50);
      host.setSlots(3);
      expect(host.slots).toBe(3);
      scheduler.advanceTo(60);
      host.setSlots(1);
      scheduler.advanceBy(1000);
      expect(worker.calls.map(c => [c.subtaskId, c.at])).toEqual([['s0', 5], ['s1', 50], ['s2', 50], ['s3', 150], ['s4', 250]]);
    });

    it('setSlots rounds down and keeps at least one slot; NaN is a RangeError naming slots', () => {
      const { host } = setup();
      host.setSlots(2.7);
      expect(host.slots).toBe(2);
      host.setSlots(0);
      expect(host.slots).toBe(1);
      host.setSlots(-3);
      expect(host.slots).toBe(1);
      expect(() => host.setSlots(Number.NaN)).toThrow(RangeError);
      expect(() => host.setSlots(Number.NaN)).toThrow(/slots/);
      expect(host.slots).toBe(1);
    });
  });

  describe('attempts and cancels', () => {
    it('ignores a duplicate assign of an attempt it runs, has queued, or has finished', () => {
      const { scheduler, host, worker, assign, results } = setup();
      host.start();
      assign('s0', 1, { ms: 100 });
      assign('s1', 1, { ms: 100 });
      scheduler.advanceBy(20);
      assign('s0', 1, { ms: 100 }); // running
      assign('s1', 1, { ms: 100 }); // queued
      scheduler.advanceBy(500);
      assign('s0', 1, { ms: 100 }); // finished
      scheduler.advanceBy(500);
      expect(worker.calls.map(c => [c.subtaskId, c.attempt])).toEqual([['s0', 1], ['s1', 1]]);
      expect(results().map(r => [r.subtaskId, r.attempt])).toEqual([['s0', 1], ['s1', 1]]);
    });

    it('ignores an assign older than the attempt it has', () => {
      const { scheduler, host, worker, assign, results } = setup();
      host.start();
      assign('s', 3, { ms: 100 });
      assign('s', 2, { ms: 100 });
      scheduler.advanceBy(500);
      assign('s', 1, { ms: 100 });
      scheduler.advanceBy(500);
      expect(worker.calls.map(c => c.attempt)).toEqual([3]);
      expect(results().map(r => r.attempt)).toEqual([3]);
    });

    it('a newer attempt replaces the running one: the old result is never sent', () => {
      const { scheduler, host, worker, assign, results } = setup();
      host.start();
      assign('s', 1, { ms: 100, values: ['old'] });
      scheduler.advanceBy(50);
      assign('s', 2, { ms: 100, values: ['new'] });
      scheduler.advanceBy(LATENCY);
      expect(worker.active).toBe(1); // the old run is unsubscribed
      scheduler.advanceBy(1000);
      expect(worker.calls.map(c => [c.attempt, c.at])).toEqual([[1, 5], [2, 55]]);
      expect(results()).toEqual([{ subtaskId: 's', attempt: 2, agentId: 'a', ok: true, value: 'new', via: [] }]);
    });

    it('a newer attempt replaces a queued one', () => {
      const { scheduler, host, worker, assign, results } = setup();
      host.start();
      assign('busy', 1, { ms: 100 });
      assign('s', 1, { ms: 10, values: ['old'] });
      scheduler.advanceBy(20);
      assign('s', 2, { ms: 10, values: ['new'] });
      scheduler.advanceBy(1000);
      expect(worker.calls.map(c => [c.subtaskId, c.attempt, c.at])).toEqual([['busy', 1, 5], ['s', 2, 105]]);
      expect(results().map(r => [r.subtaskId, r.attempt, r.value])).toEqual([['busy', 1, undefined], ['s', 2, 'new']]);
    });

    it('with free slots, a newer attempt still replaces the older run instead of running beside it', () => {
      const { scheduler, host, worker, assign, results } = setup({ concurrency: 3 });
      host.start();
      assign('s', 1, { ms: 100 });
      scheduler.advanceBy(50);
      assign('s', 2, { ms: 100 });
      scheduler.advanceBy(LATENCY);
      expect(worker.active).toBe(1);
      host.crash();
      scheduler.advanceBy(1000);
      expect(results()).toEqual([]);
      expect(scheduler.pending).toBe(0);
    });

    it('cancel removes running and queued work of that attempt or older, and frees the slot', () => {
      const { scheduler, host, worker, assign, cancel, results } = setup();
      host.start();
      assign('a1', 1, { ms: 100 });
      assign('b', 2, { ms: 100, values: ['b'] });
      assign('c', 1, { ms: 100 });
      scheduler.advanceBy(20);
      cancel('a1', 1); // running, same attempt
      cancel('c', 5); // queued, older attempt
      scheduler.advanceBy(1000);
      expect(worker.calls.map(c => [c.subtaskId, c.at])).toEqual([['a1', 5], ['b', 25]]);
      expect(results().map(r => r.subtaskId)).toEqual(['b']);
      expect(worker.active).toBe(0);
    });

    it('a cancel of an older attempt leaves newer work alone', () => {
      const { scheduler, host, assign, cancel, results } = setup();
      host.start();
      assign('s', 3, { ms: 100 });
      assign('q', 3, { ms: 100 });
      scheduler.advanceBy(20);
      cancel('s', 2);
      cancel('q', 2);
      scheduler.advanceBy(1000);
      expect(results().map(r => [r.subtaskId, r.attempt])).toEqual([['s', 3], ['q', 3]]);
    });

    it('an assign of an attempt already cancelled (overtaken by its cancel) is not run', () => {
      const { scheduler, host, worker, assign, cancel, results } = setup();
      host.start();
      cancel('s', 2);
      scheduler.advanceBy(1);
      assign('s', 2, { ms: 10 });
      scheduler.advanceBy(100);
      expect(worker.calls).toEqual([]);
      assign('s', 3, { ms: 10 });
      scheduler.advanceBy(100);
      expect(results().map(r => r.attempt)).toEqual([3]);
    });
  });

  describe('loss: retransmitted assignments and unconfirmed results', () => {
    /** An assign as the engine sends it: with its retransmission timeout for the agent. */
    const assignRto = (send: ReturnType<typeof setup>['send'], subtaskId: string, attempt: number, work: Work, rto: number): void =>
      send('assign', { subtask: { id: subtaskId, payload: work }, attempt, replyPath: [C], via: [], rto });

    it('acknowledges again, at once, an assign of the attempt it runs or has queued (its acknowledgement was lost)', () => {
      const { scheduler, host, send, arrived, arrivedAt, worker } = setup();
      host.setAckDelay(50);
      host.start();
      assignRto(send, 's0', 1, { ms: 200 }, 30);
      assignRto(send, 's1', 1, { ms: 200 }, 30);
      scheduler.advanceBy(60); // both acknowledged at the delay
      assignRto(send, 's0', 1, { ms: 200 }, 30); // running
      assignRto(send, 's1', 1, { ms: 200 }, 30); // queued
      scheduler.advanceBy(20);
      expect(arrived('progress').map(p => [p.subtaskId, p.attempt, p.progress])).toEqual([['s0', 1, 0], ['s1', 1, 0], ['s0', 1, 0], ['s1', 1, 0]]);
      expect(arrivedAt('progress').slice(2)).toEqual([70, 70]); // sent on arrival (65), not after the delay
      expect(worker.calls).toHaveLength(1);
    });

    it('names, in each acknowledgement, the copy of the assign it answers (0 when the assign named none: the first)', () => {
      const { scheduler, host, send, arrived } = setup();
      host.start();
      send('assign', { subtask: { id: 's', payload: { ms: 500 } }, attempt: 1, replyPath: [C], via: [], rto: 30, copy: 0 });
      scheduler.advanceBy(20);
      send('assign', { subtask: { id: 's', payload: { ms: 500 } }, attempt: 1, replyPath: [C], via: [], rto: 30, copy: 2 });
      assignRto(send, 't', 1, { ms: 500 }, 30);
      scheduler.advanceBy(20);
      expect(arrived('progress').map(p => [p.subtaskId, p.copy])).toEqual([['s', 0], ['s', 2], ['t', 0]]);
    });

    it('sends its result again every rto until the coordinator says it was received, then never again', () => {
      const { scheduler, host, send, results } = setup();
      host.start();
      assignRto(send, 's', 1, { ms: 10, values: ['v'] }, 30);
      scheduler.advanceBy(LATENCY + 10 + LATENCY); // the result arrives at 20
      expect(results()).toHaveLength(1);
      scheduler.advanceBy(30);
      expect(results()).toHaveLength(2);
      scheduler.advanceBy(30);
      expect(results()).toHaveLength(3);
      send('received', { subtaskId: 's', attempt: 1 });
      scheduler.advanceBy(1000);
      expect(results().map(r => [r.subtaskId, r.attempt, r.value])).toEqual([['s', 1, 'v'], ['s', 1, 'v'], ['s', 1, 'v']]);
    });

    it('answers an assign of a finished attempt with its result while unconfirmed, with nothing once confirmed', () => {
      const { scheduler, host, send, results, worker } = setup();
      host.start();
      assignRto(send, 's', 1, { ms: 10, values: ['v'] }, 1000);
      scheduler.advanceBy(100);
      assignRto(send, 's', 1, { ms: 10, values: ['v'] }, 1000);
      scheduler.advanceBy(20);
      expect(results()).toHaveLength(2);
      send('received', { subtaskId: 's', attempt: 1 });
      scheduler.advanceBy(20);
      assignRto(send, 's', 1, { ms: 10, values: ['v'] }, 1000);
      scheduler.advanceBy(5000);
      expect(results()).toHaveLength(2);
      expect(worker.calls).toHaveLength(1);
    });

    it('takes a confirmation only from the coordinator, and only for the attempt it sent', () => {
      const { scheduler, host, send, results } = setup();
      host.start();
      assignRto(send, 's', 2, { ms: 10, values: ['v'] }, 30);
      scheduler.advanceBy(20);
      send('received', { subtaskId: 's', attempt: 2 }, 'a', 'b'); // not the coordinator
      send('received', { subtaskId: 's', attempt: 1 }); // another attempt
      scheduler.advanceBy(30);
      expect(results()).toHaveLength(2);
    });

    it('backs off after the linear retransmissions up to 8 rto, and gives up after 200; a cancel, a newer attempt or a crash stops it at once', () => {
      const { scheduler, host, send, results, arrivedAt, cancel } = setup({ concurrency: 3 });
      host.start();
      assignRto(send, 's', 1, { ms: 10, values: ['v'] }, 10);
      scheduler.advanceBy(60_000);
      const at = arrivedAt('result');
      expect(at).toHaveLength(201);
      expect(at.slice(1, 13).map((t, i) => t - (at[i] as number))).toEqual([10, 10, 10, 10, 10, 10, 10, 20, 40, 80, 80, 80]);
      const resent = (id: string): number => results().filter(r => r.subtaskId === id).length - 1;
      for (const id of ['t', 'u', 'w']) assignRto(send, id, 1, { ms: 10, values: ['v'] }, 100);
      scheduler.advanceBy(25); // all three results arrived once; retransmissions due 100 ms after they went
      cancel('t', 1);
      assignRto(send, 'u', 2, { ms: 1_000_000 }, 100);
      scheduler.advanceBy(100);
      expect([resent('t'), resent('u'), resent('w')]).toEqual([0, 0, 1]);
      host.crash();
      scheduler.advanceBy(10_000);
      expect([resent('t'), resent('u'), resent('w')]).toEqual([0, 0, 1]);
    });

    it('does not retransmit a result when the assignment carried no rto (a coordinator that does not confirm)', () => {
      const { scheduler, host, assign, results } = setup();
      host.start();
      assign('s', 1, { ms: 10, values: ['v'] });
      scheduler.advanceBy(60_000);
      expect(results()).toHaveLength(1);
    });
  });

  describe('abort signal', () => {
    const signalOf = (calls: readonly Call[], subtaskId: string, attempt: number): AbortSignal =>
      (calls.find(c => c.subtaskId === subtaskId && c.attempt === attempt) as Call).context.signal;

    it('is aborted when the attempt is cancelled or superseded, with an AbortError saying which; never once the run has finished', () => {
      const { scheduler, host, worker, assign, cancel } = setup({ concurrency: 3 });
      host.start();
      assign('done', 1, { ms: 10, values: ['ok'] });
      assign('cancelled', 1, { ms: 100 });
      assign('superseded', 1, { ms: 100 });
      scheduler.advanceBy(20);
      cancel('cancelled', 1);
      assign('superseded', 2, { ms: 100 });
      scheduler.advanceBy(10);
      expect(signalOf(worker.calls, 'done', 1).aborted).toBe(false);
      const cancelled = signalOf(worker.calls, 'cancelled', 1);
      expect(cancelled.aborted).toBe(true);
      expect(cancelled.reason).toMatchObject({ name: 'AbortError', message: 'attempt 1 of cancelled was cancelled (revoked, superseded, or no longer needed)' });
      expect(signalOf(worker.calls, 'superseded', 1).aborted).toBe(true);
      expect(signalOf(worker.calls, 'superseded', 2).aborted).toBe(false);
      scheduler.advanceBy(1000);
      expect(signalOf(worker.calls, 'superseded', 2).aborted).toBe(false); // finished, not aborted
    });

    it.each([
      ['leave', (host: AgentHost) => host.leave(), /^the agent is leaving: attempt 1 of s is handed back$/],
      ['crash', (host: AgentHost) => host.crash(), /^the agent stopped/],
      ['hang', (host: AgentHost) => host.hang(), /^the agent hung/],
      ['restart', (host: AgentHost) => host.restart(), /^the agent stopped/],
    ])('is aborted when the host does %s', (_, act, reason) => {
      const { scheduler, host, worker, assign } = setup();
      host.start();
      assign('s', 1, { ms: 100 });
      scheduler.advanceBy(20);
      const signal = signalOf(worker.calls, 's', 1);
      expect(signal.aborted).toBe(false);
      act(host);
      expect(signal.aborted).toBe(true);
      expect((signal.reason as Error).message).toMatch(reason);
    });

    it('reaches a Promise handler, which can stop on it; nothing is sent for the aborted run', async () => {
      const seen: string[] = [];
      const { scheduler, host, assign, cancel, results } = setup({
        agent: () => ({
          id: 'a',
          capabilities: [],
          handle: (_subtask, context) =>
            new Promise((_, reject) => context.signal.addEventListener('abort', () => (seen.push('aborted'), reject(context.signal.reason)))),
        }),
      });
      host.start();
      assign('s', 1);
      scheduler.advanceBy(20);
      cancel('s', 1);
      scheduler.advanceBy(20);
      await microtasks();
      expect(seen).toEqual(['aborted']);
      expect(results()).toEqual([]);
    });
  });

  describe('progress', () => {
    it('ctx.heartbeat sends progress to the coordinator only while its run is current', () => {
      const { scheduler, host, worker, assign, cancel, arrived, arrivals } = setup({ concurrency: 2 });
      host.start();
      assign('s', 1, { ms: 100 }, { replyPath: ['elsewhere', C] });
      scheduler.advanceBy(LATENCY);
      const first = (worker.calls[0] as Call).context;
      first.heartbeat(0.25);
      first.heartbeat();
      scheduler.advanceBy(LATENCY);
      expect(arrived('progress')).toEqual<ProgressBody[]>([
        { subtaskId: 's', attempt: 1, progress: 0, copy: 0 }, // the acknowledgement
        { subtaskId: 's', attempt: 1, progress: 0.25 },
        { subtaskId: 's', attempt: 1, progress: 0 },
      ]);
      expect(arrivals.filter(a => a.envelope.kind === 'progress').every(a => a.envelope.from === 'a')).toBe(true);

      assign('s', 2, { ms: 100 });
      scheduler.advanceBy(LATENCY);
      const second = (worker.calls[1] as Call).context;
      first.heartbeat(0.5); // superseded
      second.heartbeat(0.5);
      scheduler.advanceBy(200);
      second.heartbeat(1); // finished

      assign('t', 1, { ms: 100 });
      scheduler.advanceBy(LATENCY);
      const third = (worker.calls[2] as Call).context;
      cancel('t', 1);
      scheduler.advanceBy(LATENCY);
      third.heartbeat(0.5); // cancelled

      assign('u', 1, { ms: 100 });
      scheduler.advanceBy(LATENCY);
      const fourth = (worker.calls[3] as Call).context;
      host.hang();
      fourth.heartbeat(0.5); // hung
      scheduler.advanceBy(100);
      // Each accepted assignment is acknowledged with progress 0; a superseded, cancelled or hung run's beats are not sent.
      expect(arrived('progress').map(p => [p.subtaskId, p.attempt, p.progress])).toEqual([
        ['s', 1, 0],
        ['s', 1, 0.25],
        ['s', 1, 0],
        ['s', 2, 0],
        ['s', 2, 0.5],
        ['t', 1, 0],
        ['u', 1, 0],
      ]);
    });
  });

  describe('faults', () => {
    it('crash() stops beats, inbox and work: no result ever arrives and no timers are left', () => {
      const { scheduler, network, host, worker, assign, arrivals, arrived } = setup({ jitter: 0 });
      host.start();
      assign('s0', 1, { ms: 100 });
      assign('s1', 1, { ms: 100 });
      scheduler.advanceTo(150);
      host.crash();
      expect(host.state).toBe('crashed');
      expect(network.isJoined('a')).toBe(false);
      assign('s2', 1, { ms: 100 });
      scheduler.advanceBy(2 * LATENCY);
      expect(scheduler.pending).toBe(0);
      expect(worker.active).toBe(0);
      scheduler.advanceBy(1000);
      expect(arrivals.filter(a => a.envelope.kind === 'heartbeat').map(a => a.envelope.sentAt)).toEqual([0, 100]);
      expect(arrived('result').map(r => r.subtaskId)).toEqual(['s0']); // finished before the crash
      expect(worker.calls.map(c => c.subtaskId)).toEqual(['s0', 's1']);
      expect(network.stats.byKind['assign']?.dropped).toBe(1);
      host.crash(); // again: nothing
      expect(host.state).toBe('crashed');
    });

    it('crash() drops what was in flight to the host', () => {
      const { scheduler, host, worker, assign } = setup();
      host.start();
      assign('s', 1);
      host.crash();
      host.start();
      scheduler.advanceBy(100);
      expect(worker.calls).toEqual([]);
    });

    it('hang() keeps beating but handles, relays and answers nothing; what ran never reports', () => {
      const { scheduler, network, host, worker, send, assign, arrived } = setup({ jitter: 0 });
      const atPeer: Envelope[] = [];
      network.join('p').subscribe(e => atPeer.push(e));
      host.start();
      assign('s0', 1, { ms: 100 });
      scheduler.advanceTo(50);
      host.hang();
      expect(host.state).toBe('hung');
      expect(worker.active).toBe(0);
      assign('s1', 1, { ms: 10 });
      assign('s2', 1, {}, { via: ['p'] });
      send('vote-request', { proposalId: 'v', suspect: 'p' });
      send('cancel', { subtaskId: 's0', attempt: 1, via: [] });
      host.start(); // already on the network: nothing changes
      expect(host.state).toBe('hung');
      scheduler.advanceTo(990);
      expect(arrived('heartbeat')).toHaveLength(10);
      expect(arrived('result')).toEqual([]);
      expect(arrived('vote')).toEqual([]);
      expect(atPeer).toEqual([]);
      expect(worker.calls.map(c => c.subtaskId)).toEqual(['s0']);
      expect(scheduler.pending).toBe(1); // the beat
      host.hang(); // again: nothing
      host.crash();
      scheduler.advanceBy(2 * LATENCY);
      expect(scheduler.pending).toBe(0);
    });

    it('restart(newAgent) comes back fresh: beats at once, with the new agent and its slots, the old work gone', () => {
      const { scheduler, host, worker, assign, arrived, arrivals } = setup({ jitter: 0 });
      host.start();
      assign('s0', 1, { ms: 100 });
      assign('s1', 1, { ms: 100 });
      scheduler.advanceTo(50);
      const fresh = workAgent('a', scheduler, 2);
      host.restart(fresh.agent);
      expect(host.state).toBe('running');
      expect(host.slots).toBe(2);
      expect(host.load).toBe(0);
      expect(worker.active).toBe(0);
      scheduler.advanceBy(LATENCY);
      expect(arrivals.filter(a => a.envelope.kind === 'heartbeat').map(a => a.envelope.sentAt)).toEqual([0, 50]);
      assign('s0', 2, { ms: 10, values: ['again'] });
      assign('s1', 2, { ms: 10 });
      scheduler.advanceBy(500);
      expect(worker.calls).toHaveLength(1);
      expect(fresh.calls.map(c => [c.subtaskId, c.attempt, c.at])).toEqual([['s0', 2, 60], ['s1', 2, 60]]);
      expect(arrived('result').map(r => [r.subtaskId, r.attempt])).toEqual([['s0', 2], ['s1', 2]]);
      expect(arrivals.filter(a => a.envelope.kind === 'heartbeat').map(a => a.envelope.sentAt)).toEqual([0, 50, 150, 250, 350, 450, 550]);
    });

    it('restart() without an agent brings a crashed, hung or departed host back with the same agent', () => {
      const { scheduler, host, worker, assign, results } = setup();
      for (const fault of [() => host.crash(), () => host.hang(), () => host.leave()]) {
        host.start();
        fault();
        host.restart();
        expect(host.state).toBe('running');
      }
      assign('s', 1, { values: [1] });
      scheduler.advanceBy(100);
      expect(worker.calls).toHaveLength(1);
      expect(results()).toHaveLength(1);
    });

    it('leave() sends a leaving heartbeat to the coordinator and stops; no timers are left', () => {
      const { scheduler, network, host, assign, arrivals, arrived } = setup({ jitter: 0 });
      host.start();
      assign('s', 1, { ms: 1000 });
      scheduler.advanceTo(150);
      host.leave();
      expect(host.state).toBe('left');
      expect(network.isJoined('a')).toBe(false);
      scheduler.advanceBy(2 * LATENCY);
      expect(scheduler.pending).toBe(0);
      expect(arrivals.at(-1)?.envelope).toEqual({ from: 'a', to: C, kind: 'heartbeat', body: { load: 1, status: 'leaving', incarnation: 1 }, sentAt: 150 });
      host.leave();
      host.crash();
      expect(host.state).toBe('left');
      scheduler.advanceBy(2000);
      expect(arrived('heartbeat')).toHaveLength(3);
      expect(arrived('result')).toEqual([]);
    });

    it('leave() on a crashed host sends nothing', () => {
      const { scheduler, host, arrivals } = setup();
      host.leave();
      scheduler.advanceBy(100);
      expect(arrivals).toEqual([]);
      expect(host.state).toBe('crashed');
    });
  });

  describe('votes', () => {
    const heartbeat: HeartbeatBody = { load: 0, incarnation: 1 };

    it('accepts a suspect iff it has not beaten to the host within peerSilenceMs, replying to the asker', () => {
      const { scheduler, network, host, send, arrived } = setup({ peerSilenceMs: 200 });
      const atAsker: VoteBody[] = [];
      network.join('x').subscribe(e => atAsker.push(e.body as VoteBody));
      host.start();
      send('heartbeat', heartbeat, 'a', 'p'); // heard at 5
      const ask = (proposalId: string, suspect: string, at: number, asker = C): void => {
        scheduler.advanceTo(at - LATENCY);
        send('vote-request', { proposalId, suspect }, 'a', asker);
      };
      ask('v1', 'p', 105); // 100 ms of silence
      ask('v2', 'p', 205); // exactly peerSilenceMs: still heard within it
      ask('v3', 'p', 206, 'x'); // longer
      ask('v4', 'q', 210); // never heard
      scheduler.advanceBy(2 * LATENCY);
      expect(arrived('vote')).toEqual([
        { proposalId: 'v1', accept: false },
        { proposalId: 'v2', accept: false },
        { proposalId: 'v4', accept: true },
      ]);
      expect(atAsker).toEqual([{ proposalId: 'v3', accept: true }]);
    });

    it('peerSilenceMs defaults to 3 × interval + jitter', () => {
      const { scheduler, host, send, arrived } = setup();
      host.start();
      send('heartbeat', heartbeat, 'a', 'p'); // heard at 5
      scheduler.advanceTo(5 + 3 * INTERVAL + JITTER - LATENCY);
      send('vote-request', { proposalId: 'within', suspect: 'p' });
      scheduler.advanceBy(1);
      send('vote-request', { proposalId: 'past', suspect: 'p' });
      scheduler.advanceBy(2 * LATENCY);
      expect(arrived('vote')).toEqual([
        { proposalId: 'within', accept: false },
        { proposalId: 'past', accept: true },
      ]);
    });

    it('never votes itself gone', () => {
      const { scheduler, host, send, arrived } = setup();
      host.start();
      send('vote-request', { proposalId: 'me', suspect: 'a' });
      scheduler.advanceBy(2 * LATENCY);
      expect(arrived('vote')).toEqual([{ proposalId: 'me', accept: false }]);
    });
  });

  describe('options', () => {
    it('rejects bad options with a RangeError naming the option', () => {
      const { worker, hostOptions } = setup();
      const make = (overrides: Partial<AgentHostOptions>) => () => new AgentHost(worker.agent, hostOptions(overrides));
      expect(make({ heartbeatIntervalMs: 0 })).toThrow(/heartbeatIntervalMs/);
      expect(make({ heartbeatIntervalMs: Number.NaN })).toThrow(/heartbeatIntervalMs/);
      expect(make({ heartbeatJitterMs: -1 })).toThrow(/heartbeatJitterMs/);
      expect(make({ peerSilenceMs: -1 })).toThrow(/peerSilenceMs/);
      expect(make({ heartbeatTargets: 'x' as unknown as () => string[] })).toThrow(/heartbeatTargets/);
      expect(make({ coordinatorId: '' })).toThrow(/coordinatorId/);
      expect(make({ heartbeatIntervalMs: 0 })).toThrow(RangeError);
      expect(() => new AgentHost({ ...worker.agent, concurrency: Number.NaN }, hostOptions())).toThrow(/concurrency/);
    });
  });
});

describe('AgentHost property', () => {
  type Op =
    | { readonly type: 'assign'; readonly dt: number; readonly subtask: number; readonly attempt: number; readonly ms: number; readonly fail: boolean }
    | { readonly type: 'cancel'; readonly dt: number; readonly subtask: number; readonly attempt: number }
    | { readonly type: 'crash' | 'restart' | 'hang'; readonly dt: number }
    | { readonly type: 'slots'; readonly dt: number; readonly slots: number };

  const dt = fc.integer({ min: 0, max: 40 });
  const subtask = fc.integer({ min: 0, max: 4 });
  const attempt = fc.integer({ min: 1, max: 5 });
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 10, arbitrary: fc.record({ type: fc.constant('assign' as const), dt, subtask, attempt, ms: fc.integer({ min: 0, max: 40 }), fail: fc.boolean() }) },
    { weight: 2, arbitrary: fc.record({ type: fc.constant('cancel' as const), dt, subtask, attempt }) },
    { weight: 1, arbitrary: fc.record({ type: fc.constantFrom('crash' as const, 'hang' as const), dt }) },
    { weight: 1, arbitrary: fc.record({ type: fc.constant('restart' as const), dt }) },
    { weight: 1, arbitrary: fc.record({ type: fc.constant('slots' as const), dt, slots: fc.integer({ min: 1, max: 3 }) }) },
  );

  interface Logged {
    readonly dir: 'in' | 'out';
    /** The host's incarnation: bumped by every restart. */
    readonly epoch: number;
    readonly state: string;
    readonly kind: string;
    readonly body: unknown;
  }

  it('every result carries the latest attempt given for its subtask, uncancelled, and no (subtask, attempt) result goes twice', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 80, size: 'medium' }), fc.integer({ min: 1, max: 3 }), (ops, concurrency) => {
        const scheduler = new VirtualScheduler();
        const network = new InMemoryNetwork({ scheduler, latency: { meanMs: 2 } });
        network.join(C).subscribe();
        const log: Logged[] = [];
        let epoch = 0;
        let host: AgentHost | undefined;
        // A spy between the host and the network: what it received (with its state then) and sent, in order.
        const spy: Network = {
          scheduler,
          join: id =>
            network.join(id).pipe(tap(e => log.push({ dir: 'in', epoch, state: host?.state ?? '', kind: e.kind, body: e.body }))),
          send: message => {
            log.push({ dir: 'out', epoch, state: host?.state ?? '', kind: message.kind, body: message.body });
            network.send(message);
          },
          get stats() {
            return network.stats;
          },
        };
        const worker = workAgent('a', scheduler, concurrency);
        host = new AgentHost(worker.agent, { network: spy, coordinatorId: C, heartbeatIntervalMs: 50, heartbeatJitterMs: 5, random: createRandom(1) });
        host.start();
        // The coordinator gives fresh attempts after a restart (src/coordinator.ts restartAgent): the
        // host's memory of attempts is per incarnation.
        const token = (a: number): number => epoch * 100 + a;
        for (const o of ops) {
          scheduler.advanceBy(o.dt);
          switch (o.type) {
            case 'assign': {
              const work: Work = o.fail ? { ms: o.ms, fail: 'x' } : { ms: o.ms, values: [o.attempt] };
              network.send({ from: C, to: 'a', kind: 'assign', body: { subtask: { id: `s${o.subtask}`, payload: work }, attempt: token(o.attempt), replyPath: [C], via: [] } });
              break;
            }
            case 'cancel':
              network.send({ from: C, to: 'a', kind: 'cancel', body: { subtaskId: `s${o.subtask}`, attempt: token(o.attempt), via: [] } });
              break;
            case 'crash':
              host.crash();
              break;
            case 'hang':
              host.hang();
              break;
            case 'restart':
              epoch++;
              host.restart();
              break;
            case 'slots':
              host.setSlots(o.slots);
          }
        }
        scheduler.advanceBy(1000); // everything still running finishes
        const finalState = host.state;

        const sent = new Set<string>();
        let latest = new Map<string, number>();
        let cancelled = new Map<string, number>();
        let seenEpoch = 0;
        for (const entry of log) {
          if (entry.epoch !== seenEpoch) {
            seenEpoch = entry.epoch;
            latest = new Map();
            cancelled = new Map();
          }
          if (entry.dir === 'in' && entry.state === 'running' && entry.kind === 'assign') {
            const body = entry.body as AssignBody;
            latest.set(body.subtask.id, Math.max(latest.get(body.subtask.id) ?? 0, body.attempt));
          }
          if (entry.dir === 'in' && entry.state === 'running' && entry.kind === 'cancel') {
            const body = entry.body as { subtaskId: string; attempt: number };
            cancelled.set(body.subtaskId, Math.max(cancelled.get(body.subtaskId) ?? 0, body.attempt));
          }
          if (entry.dir === 'out' && entry.kind === 'result') {
            const body = entry.body as ResultBody;
            expect(entry.state).toBe('running');
            expect(body.attempt).toBe(latest.get(body.subtaskId));
            expect(body.attempt).toBeGreaterThan(cancelled.get(body.subtaskId) ?? 0);
            expect(body.ok).toBe(body.value === body.attempt % 100 && body.error === undefined);
            const key = `${body.subtaskId}#${body.attempt}`;
            expect(sent.has(key)).toBe(false);
            sent.add(key);
          }
        }
        // Nothing is silently dropped: in the last incarnation, if still running, every latest
        // uncancelled attempt got its result.
        if (finalState === 'running') {
          for (const [id, a] of latest) if (a > (cancelled.get(id) ?? 0)) expect(sent.has(`${id}#${a}`)).toBe(true);
        }
        host.crash();
        scheduler.advanceBy(10);
        expect(scheduler.pending).toBe(0);
        expect(worker.active).toBe(0);
      }),
      { numRuns: 200 },
    );
  });
});
