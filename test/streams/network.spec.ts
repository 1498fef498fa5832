import fc from 'fast-check';
import { marbles } from 'rxjs-marbles/jest';
import { Subscriber, asyncScheduler, map, take, tap, type Observable, type SchedulerLike, type Subscription } from 'rxjs';
import type { Envelope, EnvelopeOf, Outgoing } from '../../streams/messages.js';
import { InMemoryNetwork, type InMemoryNetworkOptions, type Network, type NetworkStats } from '../../streams/network.js';
import { createRandom } from '../../streams/random.js';
import { VirtualScheduler } from '../../streams/virtualScheduler.js';

type Context = Parameters<Parameters<typeof marbles>[0]>[0];

const msg = (from: string, to: string, body: unknown = null, kind = 'test.msg'): Outgoing => ({ from, to, kind, body });

/** Sends each value of a cold marble on the network, at its frame. */
function sendAt(m: Context, network: Network, marble: string, values: Record<string, Outgoing>): void {
  m.cold(marble, values).subscribe(message => network.send(message));
}

/** The bodies arriving at `nodeId`. */
const bodies = (network: Network, nodeId: string): Observable<unknown> => network.join(nodeId).pipe(map(e => e.body));

/** A virtual-time network with a log of [arrival time, envelope] per node. */
function harness(options: InMemoryNetworkOptions = {}) {
  const scheduler = new VirtualScheduler();
  const network = new InMemoryNetwork({ scheduler, ...options });
  const log: Array<[number, Envelope]> = [];
  const subscriptions = new Map<string, Subscription>();
  const join = (...ids: string[]): void => {
    for (const id of ids) subscriptions.set(id, network.join(id).subscribe(e => log.push([scheduler.now(), e])));
  };
  const leave = (id: string): void => subscriptions.get(id)?.unsubscribe();
  const received = (id: string): unknown[] => log.filter(([, e]) => e.to === id).map(([, e]) => e.body);
  return { scheduler, network, log, join, leave, received };
}

const noDrops = { unknown: 0, down: 0, partition: 0, loss: 0 };

describe('InMemoryNetwork', () => {
  describe('delivery timing', () => {
    it('delivers after the latency, through the scheduler', marbles(m => {
      const network = new InMemoryNetwork({ scheduler: m.scheduler, latency: { meanMs: m.time('---|') } });
      sendAt(m, network, '   -a--b-----', { a: msg('x', 'n', 'a'), b: msg('x', 'n', 'b') });
      m.expect(bodies(network, 'n')).toBeObservable('----a--b--');
    }));

    it('waits 1 ms by default', marbles(m => {
      const network = new InMemoryNetwork({ scheduler: m.scheduler });
      sendAt(m, network, '   -a-b-', { a: msg('x', 'n', 'a'), b: msg('x', 'n', 'b') });
      m.expect(bodies(network, 'n')).toBeObservable('--a-b');
    }));

    it('keeps each link FIFO with a constant latency, same-time sends in send order', marbles(m => {
      const network = new InMemoryNetwork({ scheduler: m.scheduler, latency: { meanMs: 2 } });
      const sends = m.cold('-(abc)-d-', { a: msg('x', 'n', 'a'), b: msg('y', 'n', 'b'), c: msg('x', 'n', 'c'), d: msg('x', 'n', 'd') });
      sends.subscribe(message => network.send(message));
      m.expect(bodies(network, 'n')).toBeObservable('---(abc)-d-');
    }));

    it('delivers a zero-latency message asynchronously, at the same virtual time', () => {
      const { scheduler, network, join, log } = harness({ latency: { meanMs: 0 } });
      join('n');
      scheduler.advanceTo(5);
      network.send(msg('x', 'n', 'now'));
      expect(log).toEqual([]);
      scheduler.flush();
      expect(log).toEqual([[5, { from: 'x', to: 'n', kind: 'test.msg', body: 'now', sentAt: 5 }]]);
    });

    it('stamps sentAt with the scheduler time and delivers exactly from, to, kind, body, sentAt', () => {
      const { scheduler, network, join, log } = harness({ latency: { meanMs: 10 } });
      join('n');
      scheduler.advanceTo(7);
      const body = { subtaskId: 's-0' };
      network.send({ from: 'x', to: 'n', kind: 'work.assign', body, sentAt: 999, extra: true } as Outgoing);
      scheduler.flush();
      expect(log).toEqual([[17, { from: 'x', to: 'n', kind: 'work.assign', body, sentAt: 7 }]]);
      expect(Object.keys(log[0]![1])).toEqual(['from', 'to', 'kind', 'body', 'sentAt']);
      expect(log[0]![1].body).toBe(body);
    });

    it('a receiver that answers gets its answer back after two latencies (re-entrant send)', marbles(m => {
      const network = new InMemoryNetwork({ scheduler: m.scheduler, latency: { meanMs: 2 } });
      network.join('echo').subscribe(e => network.send(msg('echo', e.from, `${String(e.body)}!`)));
      sendAt(m, network, '   -a---', { a: msg('n', 'echo', 'a') });
      m.expect(bodies(network, 'n')).toBeObservable('-----A', { A: 'a!' });
    }));

    it('a link latency overrides the network latency; a later, faster message overtakes', marbles(m => {
      const network = new InMemoryNetwork({ scheduler: m.scheduler, latency: { meanMs: 5 } });
      network.setLink('fast', 'n', { latencyMs: 1 });
      sendAt(m, network, '   -ab------', { a: msg('slow', 'n', 'a'), b: msg('fast', 'n', 'b') });
      m.expect(bodies(network, 'n')).toBeObservable('---b--a--');
    }));

    it('setLink applies both ways unless oneWay; setLink(a, b, {}) restores the defaults', () => {
      const { scheduler, network, join, log } = harness({ latency: { meanMs: 1 } });
      join('a', 'b', 'c');
      network.setLink('a', 'b', { latencyMs: 10 });
      network.setLink('a', 'c', { latencyMs: 20, oneWay: true });
      network.send(msg('a', 'b', 'ab'));
      network.send(msg('b', 'a', 'ba'));
      network.send(msg('a', 'c', 'ac'));
      network.send(msg('c', 'a', 'ca'));
      scheduler.flush();
      expect(log.map(([t, e]) => [t, e.body])).toEqual([
        [1, 'ca'],
        [10, 'ab'],
        [10, 'ba'],
        [20, 'ac'],
      ]);
      network.setLink('a', 'b', {});
      const t = scheduler.now();
      network.send(msg('a', 'b', 'again'));
      scheduler.flush();
      expect(log.at(-1)).toEqual([t + 1, expect.objectContaining({ body: 'again' })]);
    });

    it('with jitter, delays spread over [mean − jitter, mean + jitter], reproducibly from the seed', () => {
      const run = (seed: number): number[] => {
        const { scheduler, network, join, log } = harness({ random: createRandom(seed), latency: { meanMs: 10, jitterMs: 4 } });
        join('n');
        for (let i = 0; i < 1_000; i++) network.send(msg('x', 'n', i));
        scheduler.flush();
        return log.map(([t]) => t);
      };
      const times = run(5);
      expect(times).toHaveLength(1_000);
      expect(Math.min(...times)).toBeGreaterThanOrEqual(6);
      expect(Math.max(...times)).toBeLessThanOrEqual(14);
      expect(Math.min(...times)).toBeLessThan(6.1);
      expect(Math.max(...times)).toBeGreaterThan(13.9);
      expect(run(5)).toEqual(times);
      expect(run(6)).not.toEqual(times);
    });

    it('with jitter, messages on one link may be reordered', () => {
      const { scheduler, network, join, received } = harness({ random: createRandom(1), latency: { meanMs: 10, jitterMs: 5 } });
      join('n');
      for (let i = 0; i < 20; i++) network.send(msg('x', 'n', i));
      scheduler.flush();
      const order = received('n') as number[];
      expect([...order].sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
      expect(order).not.toEqual([...order].sort((a, b) => a - b));
    });

    it('never delays below 0 when the jitter exceeds the mean', () => {
      const { scheduler, network, join, log } = harness({ latency: { meanMs: 1, jitterMs: 10 } });
      join('n');
      scheduler.advanceTo(100);
      for (let i = 0; i < 200; i++) network.send(msg('x', 'n', i));
      scheduler.flush();
      expect(log).toHaveLength(200);
      expect(log.every(([t, e]) => t >= e.sentAt && t <= 111)).toBe(true);
      expect(log.some(([t]) => t === 100)).toBe(true);
    });

    it('delivers fractional latencies without spinning on rounding errors', () => {
      const { scheduler, network, join, log } = harness({ latency: { meanMs: 0.1 } });
      join('n');
      for (let i = 0; i < 30; i++) {
        network.send(msg('x', 'n', i));
        scheduler.advanceBy(0.2);
      }
      scheduler.flush();
      expect(log).toHaveLength(30);
      expect(scheduler.pending).toBe(0);
    });
  });

  describe('loss', () => {
    it('loses about lossRate of the messages (10,000 at 0.3 → 0.3 ± 0.02), all counted', () => {
      const { scheduler, network, join, log } = harness({ random: createRandom(42), lossRate: 0.3 });
      join('n');
      for (let i = 0; i < 10_000; i++) network.send(msg('x', 'n', i));
      scheduler.flush();
      const { sent, delivered, dropped, droppedBy } = network.stats;
      expect(sent).toBe(10_000);
      expect(Math.abs(dropped / sent - 0.3)).toBeLessThan(0.02);
      expect(droppedBy).toEqual({ ...noDrops, loss: dropped });
      expect(delivered).toBe(log.length);
      expect(delivered + dropped).toBe(sent);
    });

    it('loses the same messages for the same seed', () => {
      const survivors = (seed: number): unknown[] => {
        const { scheduler, network, join, received } = harness({ random: createRandom(seed), lossRate: 0.5 });
        join('n');
        for (let i = 0; i < 200; i++) network.send(msg('x', 'n', i));
        scheduler.flush();
        return received('n');
      };
      expect(survivors(3)).toEqual(survivors(3));
      expect(survivors(3)).not.toEqual(survivors(4));
    });

    it('lossRate 1 loses everything; 0 loses nothing and draws nothing', () => {
      const all = harness({ lossRate: 1 });
      all.join('n');
      for (let i = 0; i < 100; i++) all.network.send(msg('x', 'n', i));
      all.scheduler.flush();
      expect(all.log).toEqual([]);
      expect(all.network.stats.droppedBy.loss).toBe(100);

      const random = createRandom(8);
      const none = harness({ random });
      none.join('n');
      for (let i = 0; i < 100; i++) none.network.send(msg('x', 'n', i));
      none.scheduler.flush();
      expect(none.log).toHaveLength(100);
      expect(random.next()).toBe(createRandom(8).next());
    });

    it('setLossRate applies from the next send; a link rate overrides the global one', () => {
      const { scheduler, network, join, received } = harness();
      join('n');
      network.send(msg('x', 'n', 'kept'));
      network.setLossRate(1);
      network.send(msg('x', 'n', 'lost'));
      network.setLink('good', 'n', { lossRate: 0 });
      network.send(msg('good', 'n', 'link kept'));
      network.setLossRate(0);
      network.setLink('bad', 'n', { lossRate: 1 });
      network.send(msg('bad', 'n', 'link lost'));
      network.send(msg('x', 'n', 'kept again'));
      scheduler.flush();
      expect(received('n')).toEqual(['kept', 'link kept', 'kept again']);
      expect(network.stats.droppedBy.loss).toBe(2);
    });
  });

  describe('destinations', () => {
    it('drops a message to a node that never joined as unknown, without throwing or scheduling', () => {
      const { scheduler, network } = harness();
      expect(() => network.send(msg('x', 'nobody'))).not.toThrow();
      expect(scheduler.pending).toBe(0);
      expect(network.stats).toMatchObject({ sent: 1, dropped: 1, inFlight: 0, droppedBy: { ...noDrops, unknown: 1 } });
    });

    it('drops a message to a node that has left as down', () => {
      const { network, join, leave } = harness();
      join('n');
      leave('n');
      network.send(msg('x', 'n'));
      expect(network.stats.droppedBy).toEqual({ ...noDrops, down: 1 });
    });

    it('drops what is in flight to a node that leaves, at once, and releases the timer', () => {
      const { scheduler, network, join, leave, log } = harness({ latency: { meanMs: 10 } });
      join('n', 'o');
      for (let i = 0; i < 5; i++) network.send(msg('x', 'n', i));
      network.send(msg('x', 'o', 'other'));
      scheduler.advanceBy(3);
      leave('n');
      expect(network.stats).toMatchObject({ sent: 6, dropped: 5, inFlight: 1, droppedBy: { ...noDrops, down: 5 } });
      expect(scheduler.pending).toBe(1);
      scheduler.flush();
      expect(log.map(([t, e]) => [t, e.body])).toEqual([[10, 'other']]);
      leave('o');
      expect(scheduler.pending).toBe(0);
    });

    it('a node that rejoins does not receive what was sent to its previous incarnation', marbles(m => {
      const network = new InMemoryNetwork({ scheduler: m.scheduler, latency: { meanMs: 3 } });
      sendAt(m, network, '   -a-----b-----', { a: msg('x', 'n', 'a'), b: msg('x', 'n', 'b') });
      m.expect(bodies(network, 'n'), '^-!').toBeObservable('--');
      // Back at 3, before a (sent at 1) would have arrived at 4.
      m.expect(bodies(network, 'n'), '---^--------').toBeObservable('----------b-');
      m.flush();
      expect(network.stats.droppedBy.down).toBe(1);
    }));

    it('a receiver that leaves from inside next drops the rest of its in-flight messages', () => {
      const { scheduler, network } = harness({ latency: { meanMs: 1 } });
      const got: unknown[] = [];
      const inbox = network.join('n').subscribe(e => {
        got.push(e.body);
        inbox.unsubscribe();
      });
      network.send(msg('x', 'n', 1));
      network.send(msg('x', 'n', 2));
      network.send(msg('x', 'n', 3));
      scheduler.flush();
      expect(got).toEqual([1]);
      expect(network.stats).toMatchObject({ delivered: 1, dropped: 2, droppedBy: { ...noDrops, down: 2 } });
      expect(scheduler.pending).toBe(0);
    });

    it('accepts sends from nodes that never joined', () => {
      const { scheduler, network, join, received } = harness();
      join('n');
      network.send(msg('outsider', 'n', 'hi'));
      scheduler.flush();
      expect(received('n')).toEqual(['hi']);
    });

    it('a second concurrent join of one node id errors; after leaving, the id may join again', () => {
      const { network } = harness();
      const first = network.join('n').subscribe();
      let error: unknown;
      network.join('n').subscribe({ error: err => (error = err) });
      expect(error).toBeInstanceOf(Error);
      expect(String(error)).toMatch(/"n".*already joined/);
      expect(network.isJoined('n')).toBe(true);
      first.unsubscribe();
      expect(network.isJoined('n')).toBe(false);
      const again = network.join('n').subscribe({ error: err => (error = err) });
      expect(network.isJoined('n')).toBe(true);
      again.unsubscribe();
    });

    it('joins on subscribe, not on join()', () => {
      const { network } = harness();
      const inbox = network.join('n');
      expect(network.isJoined('n')).toBe(false);
      network.send(msg('x', 'n'));
      expect(network.stats.droppedBy.unknown).toBe(1);
      const subscription = inbox.subscribe();
      expect(network.isJoined('n')).toBe(true);
      subscription.unsubscribe();
    });

    it('an inbox pipeline that errors leaves the network; the others carry on', () => {
      const { scheduler, network, join, received } = harness();
      join('o');
      let error: unknown;
      network
        .join('n')
        .pipe(
          map(() => {
            throw new Error('receiver bug');
          }),
        )
        .subscribe({ error: err => (error = err) });
      network.send(msg('x', 'n', 1));
      network.send(msg('x', 'o', 2));
      scheduler.flush();
      expect(String(error)).toMatch(/receiver bug/);
      expect(network.isJoined('n')).toBe(false);
      expect(received('o')).toEqual([2]);
    });

    it('carries on after a receiver throws synchronously into the delivery loop', () => {
      const { scheduler, network, join, received } = harness({ latency: { meanMs: 2 } });
      join('o');
      class Throwing extends Subscriber<Envelope> {
        override next(): void {
          throw new Error('sync throw');
        }
      }
      network.join('n').subscribe(new Throwing());
      network.send(msg('x', 'n', 1));
      network.send(msg('x', 'o', 2));
      network.send(msg('x', 'o', 3));
      expect(() => scheduler.flush()).toThrow(/sync throw/);
      scheduler.flush();
      expect(received('o')).toEqual([2, 3]);
      expect(scheduler.now()).toBe(2);
      expect(scheduler.pending).toBe(0);
    });
  });

  describe('partitions', () => {
    it('passes messages only inside a group; unlisted nodes form a group of their own', () => {
      const { scheduler, network, join, received } = harness();
      join('a', 'b', 'c', 'd', 'e');
      network.partition([['a', 'b'], ['c']]);
      const pairs: Array<[string, string]> = [
        ['a', 'b'],
        ['b', 'a'],
        ['a', 'c'],
        ['c', 'a'],
        ['d', 'e'],
        ['e', 'a'],
        ['c', 'd'],
        ['late', 'e'], // never joined, unlisted: with d and e
      ];
      for (const [from, to] of pairs) network.send(msg(from, to, `${from}${to}`));
      scheduler.flush();
      expect(['a', 'b', 'c', 'd', 'e'].flatMap(received)).toEqual(['ba', 'ab', 'de', 'latee']);
      expect(network.stats.droppedBy).toEqual({ ...noDrops, partition: 4 });
    });

    it('partition([[a, b]]) cuts a and b off from everyone else', () => {
      const { scheduler, network, join, received } = harness();
      join('a', 'b', 'c', 'd');
      network.partition([['a', 'b']]);
      network.send(msg('a', 'c', 'ac'));
      network.send(msg('c', 'd', 'cd'));
      network.send(msg('b', 'a', 'ba'));
      scheduler.flush();
      expect([...received('a'), ...received('c'), ...received('d')]).toEqual(['ba', 'cd']);
    });

    it('drops what is in flight when a partition is raised before it arrives; heal lets traffic through again', marbles(m => {
      const network = new InMemoryNetwork({ scheduler: m.scheduler, latency: { meanMs: 3 } });
      sendAt(m, network, '     -a-b-----c-', { a: msg('x', 'n', 'a'), b: msg('x', 'n', 'b'), c: msg('x', 'n', 'c') });
      m.cold('                 ---p---h----', { p: [['x'], ['n']] as string[][], h: null }).subscribe(groups => {
        if (groups === null) network.heal();
        else network.partition(groups);
      });
      m.expect(bodies(network, 'n')).toBeObservable('------------c');
      m.flush();
      // a is in flight at 3 (sent at 1, arrives at 4): dropped at arrival; b is sent into the partition.
      expect(network.stats.droppedBy).toEqual({ ...noDrops, partition: 2 });
    }));

    it('a message sent before a partition and arriving after it healed is delivered', marbles(m => {
      const network = new InMemoryNetwork({ scheduler: m.scheduler, latency: { meanMs: 5 } });
      sendAt(m, network, '     -a-------', { a: msg('x', 'n', 'a') });
      m.cold('                 --ph-----', { p: [['x']] as string[][], h: null }).subscribe(groups => {
        if (groups === null) network.heal();
        else network.partition(groups);
      });
      m.expect(bodies(network, 'n')).toBeObservable('------a--');
    }));

    it('a new partition replaces the previous one', () => {
      const { scheduler, network, join, received } = harness();
      join('a', 'b');
      network.partition([['a'], ['b']]);
      network.partition([['a', 'b']]);
      network.send(msg('a', 'b', 'ab'));
      network.partition([]);
      network.send(msg('b', 'a', 'ba'));
      scheduler.flush();
      expect([...received('a'), ...received('b')]).toEqual(['ba', 'ab']);
    });

    it('a link set down drops at send and at arrival; setLink(a, b, {}) brings it back; heal does not', () => {
      const { scheduler, network, join, received } = harness({ latency: { meanMs: 5 } });
      join('a', 'b', 'c');
      network.send(msg('a', 'b', 'in flight'));
      network.send(msg('a', 'c', 'other link'));
      scheduler.advanceBy(2);
      network.setLink('a', 'b', { down: true });
      network.send(msg('a', 'b', 'into the cut'));
      network.send(msg('b', 'a', 'back'));
      network.heal();
      network.send(msg('a', 'b', 'after heal'));
      scheduler.flush();
      network.setLink('a', 'b', {});
      network.send(msg('a', 'b', 'restored'));
      scheduler.flush();
      expect(received('b')).toEqual(['restored']);
      expect(received('c')).toEqual(['other link']);
      expect(network.stats.droppedBy).toEqual({ ...noDrops, down: 4 });
    });

    it('unknown beats down beats partition beats loss (the first reason that applies counts)', () => {
      const { network, join, leave } = harness({ lossRate: 1 });
      join('a', 'b', 'gone');
      leave('gone');
      network.partition([['a'], ['b', 'gone']]);
      network.setLink('a', 'b', { down: true, oneWay: true });
      network.send(msg('a', 'nobody'));
      network.send(msg('a', 'gone'));
      network.send(msg('a', 'b'));
      network.send(msg('b', 'a'));
      network.heal();
      network.send(msg('b', 'a'));
      expect(network.stats.droppedBy).toEqual({ unknown: 1, down: 2, partition: 1, loss: 1 });
    });
  });

  describe('stats', () => {
    it('counts per kind, in the order kinds were first sent', () => {
      const { scheduler, network, join } = harness({ latency: { meanMs: 10 } });
      join('n');
      network.send(msg('x', 'n', null, 'work.assign'));
      network.send(msg('x', 'n', null, 'liveness.heartbeat'));
      network.send(msg('x', 'n', null, 'work.assign'));
      network.send(msg('x', 'nobody', null, 'work.assign'));
      network.send(msg('x', 'n', null, '__proto__'));
      scheduler.advanceBy(5);
      const during: NetworkStats = network.stats;
      expect(during).toEqual({
        sent: 5,
        delivered: 0,
        dropped: 1,
        inFlight: 4,
        droppedBy: { ...noDrops, unknown: 1 },
        byKind: Object.fromEntries([
          ['work.assign', { sent: 3, delivered: 0, dropped: 1 }],
          ['liveness.heartbeat', { sent: 1, delivered: 0, dropped: 0 }],
          ['__proto__', { sent: 1, delivered: 0, dropped: 0 }],
        ]),
      });
      expect(Object.keys(during.byKind)).toEqual(['work.assign', 'liveness.heartbeat', '__proto__']);
      scheduler.flush();
      const after = network.stats;
      expect(after).toMatchObject({ sent: 5, delivered: 4, dropped: 1, inFlight: 0 });
      expect(after.byKind['work.assign']).toEqual({ sent: 3, delivered: 2, dropped: 1 });
      // A snapshot: reading later does not change an earlier one.
      expect(during.delivered).toBe(0);
      expect(network.stats).not.toBe(after);
    });

    it('a rejected envelope is not counted', () => {
      const { network } = harness();
      expect(() => network.send({ from: 'a', to: 'b' } as Outgoing)).toThrow();
      expect(network.stats.sent).toBe(0);
    });
  });

  describe('resources', () => {
    it('holds one scheduled action however many messages are in flight, none when all are delivered', () => {
      const { scheduler, network, join, log } = harness({ random: createRandom(1), latency: { meanMs: 50, jitterMs: 49 } });
      join('a', 'b');
      for (let i = 0; i < 1_000; i++) network.send(msg('a', i % 2 === 0 ? 'a' : 'b', i));
      expect(scheduler.pending).toBe(1);
      expect(network.stats.inFlight).toBe(1_000);
      scheduler.advanceBy(50);
      expect(scheduler.pending).toBe(1);
      scheduler.flush();
      expect(log).toHaveLength(1_000);
      expect(scheduler.pending).toBe(0);
    });

    it('re-arms earlier for a message that will arrive before the armed one', () => {
      const { scheduler, network, join, log } = harness({ latency: { meanMs: 100 } });
      join('n');
      network.setLink('quick', 'n', { latencyMs: 1 });
      network.send(msg('x', 'n', 'slow'));
      network.send(msg('quick', 'n', 'quick'));
      expect(scheduler.pending).toBe(1);
      scheduler.flush();
      expect(log.map(([t, e]) => [t, e.body])).toEqual([
        [1, 'quick'],
        [100, 'slow'],
      ]);
    });

    it('releases the timer when every node with messages in flight has left', () => {
      const { scheduler, network, join, leave } = harness({ latency: { meanMs: 100 } });
      join('a', 'b');
      network.send(msg('a', 'b'));
      network.send(msg('b', 'a'));
      leave('a');
      expect(scheduler.pending).toBe(1);
      leave('b');
      expect(scheduler.pending).toBe(0);
      expect(network.stats).toMatchObject({ inFlight: 0, dropped: 2 });
    });

    it('an inbox unsubscribed by take stops a node that feeds itself with zero latency', () => {
      const { scheduler, network } = harness({ latency: { meanMs: 0 } });
      const got: unknown[] = [];
      network
        .join('n')
        .pipe(
          tap(e => network.send(msg('n', 'n', (e.body as number) + 1))),
          take(3),
        )
        .subscribe(e => got.push(e.body));
      network.send(msg('x', 'n', 0));
      scheduler.flush();
      expect(got).toEqual([0, 1, 2]);
      expect(scheduler.pending).toBe(0);
      // The fourth message was in flight when take(3) left.
      expect(network.stats).toMatchObject({ sent: 4, delivered: 3, dropped: 1, inFlight: 0 });
    });
  });

  describe('schedulers', () => {
    it('defaults to asyncScheduler', () => {
      expect(new InMemoryNetwork().scheduler).toBe(asyncScheduler);
    });

    it('works with any SchedulerLike: re-arming under the RxJS TestScheduler', marbles(m => {
      const network = new InMemoryNetwork({ scheduler: m.scheduler as SchedulerLike, latency: { meanMs: 4 } });
      network.setLink('quick', 'n', { latencyMs: 1 });
      sendAt(m, network, '   -ab-c----', { a: msg('x', 'n', 'a'), b: msg('quick', 'n', 'b'), c: msg('quick', 'n', 'c') });
      m.expect(bodies(network, 'n')).toBeObservable('---b-(ac)---');
    }));
  });

  describe('validation', () => {
    it.each<[string, InMemoryNetworkOptions, RegExp]>([
      ['lossRate below 0', { lossRate: -0.1 }, /lossRate/],
      ['lossRate above 1', { lossRate: 1.5 }, /lossRate/],
      ['lossRate NaN', { lossRate: NaN }, /lossRate/],
      ['negative mean latency', { latency: { meanMs: -1 } }, /latency\.meanMs.*-1/],
      ['infinite mean latency', { latency: { meanMs: Infinity } }, /latency\.meanMs/],
      ['negative jitter', { latency: { meanMs: 1, jitterMs: -2 } }, /latency\.jitterMs.*-2/],
      ['a scheduler without now()', { scheduler: {} as SchedulerLike }, /scheduler/],
      ['a random without next()', { random: {} as never }, /random/],
    ])('rejects %s with a RangeError naming the option', (_, options, pattern) => {
      expect(() => new InMemoryNetwork(options)).toThrow(RangeError);
      expect(() => new InMemoryNetwork(options)).toThrow(pattern);
    });

    it.each<[string, unknown, ErrorConstructor, RegExp]>([
      ['null', null, TypeError, /envelope/],
      ['a string', 'hello', TypeError, /envelope/],
      ['no from', { to: 'b', kind: 'k', body: 1 }, TypeError, /envelope\.from/],
      ['no to', { from: 'a', kind: 'k', body: 1 }, TypeError, /envelope\.to/],
      ['no kind', { from: 'a', to: 'b', body: 1 }, TypeError, /envelope\.kind/],
      ['a numeric to', { from: 'a', to: 42, kind: 'k', body: 1 }, TypeError, /envelope\.to.*number/],
      ['an empty from', { from: '', to: 'b', kind: 'k', body: 1 }, RangeError, /envelope\.from/],
      ['an empty kind', { from: 'a', to: 'b', kind: '', body: 1 }, RangeError, /envelope\.kind/],
    ])('send rejects an envelope with %s, clearly, and keeps working', (_, envelope, type, pattern) => {
      const { scheduler, network, join, received } = harness();
      join('b');
      expect(() => network.send(envelope as Outgoing)).toThrow(type);
      expect(() => network.send(envelope as Outgoing)).toThrow(pattern);
      network.send(msg('a', 'b', 'fine'));
      scheduler.flush();
      expect(received('b')).toEqual(['fine']);
    });

    it('join rejects a bad node id when called', () => {
      const network = new InMemoryNetwork();
      expect(() => network.join('')).toThrow(RangeError);
      expect(() => network.join(undefined as unknown as string)).toThrow(/nodeId/);
    });

    it('setLink, partition and setLossRate reject bad arguments naming them, changing nothing', () => {
      const { scheduler, network, join, received } = harness();
      join('a', 'b');
      expect(() => network.setLink('a', 'b', { lossRate: 2 })).toThrow(/lossRate.*2/);
      expect(() => network.setLink('a', 'b', { latencyMs: -1 })).toThrow(/latencyMs/);
      expect(() => network.setLink('a', 'b', { jitterMs: NaN })).toThrow(/jitterMs/);
      expect(() => network.setLink('a', 'b', { down: 'yes' as unknown as boolean })).toThrow(/down/);
      expect(() => network.setLink('', 'b', {})).toThrow(/from/);
      expect(() => network.setLink('a', 'b', null as unknown as object)).toThrow(/settings/);
      expect(() => network.partition([['a'], ['a', 'b']])).toThrow(RangeError);
      expect(() => network.partition([['a'], ['a', 'b']])).toThrow(/groups.*"a"/);
      expect(() => network.partition([['a', 7 as unknown as string]])).toThrow(/groups\[0\]\[1\]/);
      expect(() => network.partition('a' as unknown as string[][])).toThrow(/groups/);
      expect(() => network.setLossRate(-1)).toThrow(RangeError);
      expect(() => network.setLossRate(-1)).toThrow(/lossRate/);
      network.send(msg('a', 'b', 'unchanged'));
      scheduler.flush();
      expect(received('b')).toEqual(['unchanged']);
    });

    it('a node listed twice in the same group is fine', () => {
      const { network } = harness();
      expect(() => network.partition([['a', 'a'], ['b']])).not.toThrow();
    });
  });

  describe('properties', () => {
    const nodes = ['n0', 'n1', 'n2', 'n3'] as const;
    const node = fc.constantFrom(...nodes);

    it('without loss or partition, every message arrives exactly once, after its link latency, FIFO per link', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: 10 }),
          fc.array(fc.record({ from: node, to: node, latencyMs: fc.integer({ min: 0, max: 20 }) }), { maxLength: 6 }),
          fc.array(fc.record({ gap: fc.integer({ min: 0, max: 5 }), from: node, to: node }), { maxLength: 80 }),
          (meanMs, overrides, sends) => {
            const { scheduler, network, join, log } = harness({ latency: { meanMs } });
            join(...nodes);
            const latency = new Map<string, number>();
            for (const { from, to, latencyMs } of overrides) {
              network.setLink(from, to, { latencyMs, oneWay: true });
              latency.set(`${from}>${to}`, latencyMs);
            }
            let t = 0;
            sends.forEach(({ gap, from, to }, i) => {
              t += gap;
              scheduler.schedule(() => network.send(msg(from, to, i)), t);
            });
            scheduler.flush();

            expect(log.map(([, e]) => e.body as number).sort((a, b) => a - b)).toEqual(sends.map((_, i) => i));
            for (const [at, e] of log) expect(at).toBe(e.sentAt + (latency.get(`${e.from}>${e.to}`) ?? meanMs));
            const perLink = new Map<string, number[]>();
            for (const [, e] of log) {
              const link = `${e.from}>${e.to}`;
              perLink.set(link, [...(perLink.get(link) ?? []), e.body as number]);
            }
            for (const order of perLink.values()) expect(order).toEqual([...order].sort((a, b) => a - b));
            expect(network.stats).toMatchObject({ sent: sends.length, delivered: sends.length, dropped: 0, inFlight: 0 });
            expect(scheduler.pending).toBe(0);
          },
        ),
        { numRuns: 150 },
      );
    });

    it('with partitions, no message crosses groups (at send or arrival), and every other one arrives', () => {
      // Each node's group, -1 for unlisted; null heals.
      const assignment = fc.option(fc.tuple(...nodes.map(() => fc.integer({ min: -1, max: 2 }))), { nil: null });
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 8 }),
          fc.array(fc.record({ at: fc.integer({ min: 0, max: 40 }), groups: assignment }), { maxLength: 6 }),
          fc.array(fc.record({ at: fc.integer({ min: 0, max: 40 }), from: node, to: node }), { maxLength: 60 }),
          (meanMs, changes, sends) => {
            const { scheduler, network, join, log } = harness({ latency: { meanMs } });
            join(...nodes);
            // Changes at half-ms: never tied with a send or an arrival (whole ms), so the model is exact.
            const timeline = changes.map(c => ({ at: c.at + 0.5, groups: c.groups })).sort((a, b) => a.at - b.at);
            for (const { at, groups } of timeline) {
              scheduler.schedule(() => {
                if (groups === null) network.heal();
                else network.partition([0, 1, 2].map(g => nodes.filter((_, i) => groups[i] === g)));
              }, at);
            }
            sends.forEach(({ at, from, to }, i) => scheduler.schedule(() => network.send(msg(from, to, i)), at));
            scheduler.flush();

            const groupAt = (t: number, id: string): number => {
              let groups: readonly number[] | null = null;
              for (const change of timeline) if (change.at < t) groups = change.groups;
              return groups === null ? -1 : (groups[nodes.indexOf(id as (typeof nodes)[number])] as number);
            };
            const together = (t: number, a: string, b: string): boolean => groupAt(t, a) === groupAt(t, b);
            for (const [at, e] of log) {
              expect(together(e.sentAt, e.from, e.to)).toBe(true);
              expect(together(at, e.from, e.to)).toBe(true);
            }
            const passes = ({ at, from, to }: (typeof sends)[number]): boolean => together(at, from, to) && together(at + meanMs, from, to);
            const expected = sends.flatMap((send, i) => (passes(send) ? [i] : []));
            expect(log.map(([, e]) => e.body as number).sort((a, b) => a - b)).toEqual(expected);
            const stats = network.stats;
            expect(stats).toMatchObject({ sent: sends.length, delivered: expected.length, inFlight: 0 });
            expect(stats.droppedBy).toEqual({ ...noDrops, partition: sends.length - expected.length });
            expect(scheduler.pending).toBe(0);
          },
        ),
        { numRuns: 150 },
      );
    });
  });

  describe('typing', () => {
    it('narrows envelopes of a kind → body map on kind', () => {
      interface Bodies {
        'work.assign': { subtaskId: string };
        'work.result': { subtaskId: string; value: number };
      }
      type Message = EnvelopeOf<Bodies>;
      const { scheduler } = harness();
      const network = new InMemoryNetwork<Message>({ scheduler });
      const values: number[] = [];
      network.join('c').subscribe(e => {
        if (e.kind === 'work.result') values.push(e.body.value);
      });
      network.send({ from: 'w', to: 'c', kind: 'work.result', body: { subtaskId: 's', value: 3 } });
      // @ts-expect-error the body does not match the kind
      network.send({ from: 'w', to: 'c', kind: 'work.assign', body: { subtaskId: 's', value: 3 } });
      // @ts-expect-error unknown kind
      network.send({ from: 'w', to: 'c', kind: 'work.other', body: null });
      scheduler.flush();
      expect(values).toEqual([3]);
      expectTypeOf<Outgoing<Message>>().toEqualTypeOf<
        | { readonly from: string; readonly to: string; readonly kind: 'work.assign'; readonly body: { subtaskId: string } }
        | { readonly from: string; readonly to: string; readonly kind: 'work.result'; readonly body: { subtaskId: string; value: number } }
      >();
    });
  });
});

describe('InMemoryNetwork in virtual time: arrivals delivered from one action', () => {
  it('delivers at each arrival time, between the timers due before and after it, as one action per arrival would', () => {
    const scheduler = new VirtualScheduler();
    const network = new InMemoryNetwork({ scheduler, random: createRandom(5), latency: { meanMs: 10, jitterMs: 5 } });
    const log: string[] = [];
    network.join('b').subscribe(e => {
      log.push(`${scheduler.now()} ${(e.body as { n: number }).n}`);
      // An arrival that sends: its reply goes in the same queue, behind nothing it should not be.
      if ((e.body as { n: number }).n < 3) network.send({ from: 'b', to: 'b', kind: 'k', body: { n: (e.body as { n: number }).n + 10 } });
    });
    for (let n = 0; n < 4; n++) {
      network.send({ from: 'a', to: 'b', kind: 'k', body: { n } });
    }
    for (const at of [6, 9, 12, 14, 20, 25]) scheduler.schedule(() => log.push(`${scheduler.now()} timer`), at);
    scheduler.flush();
    // Every entry in time order (the clock never goes back), each timer at its own time.
    const times = log.map(line => Number(line.split(' ')[0]));
    expect(times).toEqual([...times].sort((x, y) => x - y));
    expect(log.filter(line => line.endsWith('timer'))).toEqual(['6 timer', '9 timer', '12 timer', '14 timer', '20 timer', '25 timer']);
    expect(log.filter(line => !line.endsWith('timer'))).toHaveLength(7);
    expect(network.stats).toMatchObject({ sent: 7, delivered: 7, inFlight: 0 });
  });
});
