import { Observable, ReplaySubject, asyncScheduler, filter, firstValueFrom, take, timeout, toArray } from 'rxjs';
import { readFileSync } from 'node:fs';
import { WebSocket } from 'ws';
import { createCoordinator } from '../../src/coordinator.js';
import { AgentHost } from '../../streams/agentHost.js';
import type { CoordinationEvent } from '../../src/events.js';
import type { Envelope, Network } from '../../streams/network.js';
import type { Subtask } from '../../streams/task.js';
import { createRandom } from '../../streams/random.js';
import { WS_CLOSE, encode, type WireMessage } from '../../streams/wsCodec.js';
import { encodeBeatFrame } from '../../streams/wsBeatFrame.js';
import { WsClientNetwork, WsConnectionError, WsServerNetwork, type WsClientEvent, type WsServerEvent } from '../../streams/wsNetwork.js';

// Real sockets on 127.0.0.1, port 0. Nothing sleeps: every wait is on an event, bounded by a timeout.
const TOKEN = 'correct horse battery staple';
const WAIT_MS = 5000;

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Started {
  readonly server: WsServerNetwork;
  readonly events: ReplaySubject<WsServerEvent>;
}

async function serve(options: Partial<ConstructorParameters<typeof WsServerNetwork>[0]> = {}): Promise<Started> {
  const events = new ReplaySubject<WsServerEvent>();
  const server = await WsServerNetwork.listen({ token: TOKEN, port: 0, log: e => events.next(e), ...options });
  cleanups.push(() => server.close());
  return { server, events };
}

function within<T>(source: Observable<T>, ms = WAIT_MS): Promise<T> {
  return firstValueFrom(source.pipe(timeout(ms)));
}

function first<T, S extends T>(source: Observable<T>, predicate: (value: T) => value is S, ms?: number): Promise<S>;
function first<T>(source: Observable<T>, predicate: (value: T) => boolean, ms?: number): Promise<T>;
function first<T>(source: Observable<T>, predicate: (value: T) => boolean, ms = WAIT_MS): Promise<T> {
  return within(source.pipe(filter(predicate)), ms);
}

/** A hand-driven socket: sends whatever a test wants, records what comes back and how it closes. */
interface Raw {
  readonly socket: WebSocket;
  readonly messages: ReplaySubject<WireMessage>;
  readonly closed: Promise<{ code: number; reason: string }>;
  send(value: unknown): void;
}

async function raw(url: string): Promise<Raw> {
  const socket = new WebSocket(url);
  const messages = new ReplaySubject<WireMessage>();
  socket.on('message', data => messages.next(JSON.parse(String(data)) as WireMessage));
  socket.on('error', () => undefined);
  const closed = new Promise<{ code: number; reason: string }>(resolve => socket.on('close', (code, reason) => resolve({ code, reason: String(reason) })));
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  cleanups.push(() => socket.terminate());
  return { socket, messages, closed, send: value => socket.send(typeof value === 'string' ? value : JSON.stringify(value)) };
}

const hello = (agentId: string, token = TOKEN, capabilities: string[] = ['work']): WireMessage => ({ v: 1, type: 'hello', agentId, capabilities, token });
const beat = (from: string, to = 'coordinator', incarnation = 1): WireMessage => ({ v: 1, type: 'envelope', from, to, kind: 'heartbeat', body: { load: 0, incarnation } });

async function joined(url: string, agentId: string): Promise<Raw> {
  const r = await raw(url);
  r.send(hello(agentId));
  await first(r.messages, m => m.type === 'join');
  return r;
}

function client(server: WsServerNetwork, agentId: string, options: Partial<ConstructorParameters<typeof WsClientNetwork>[0]> = {}): { network: WsClientNetwork; events: ReplaySubject<WsClientEvent> } {
  const events = new ReplaySubject<WsClientEvent>();
  const network = new WsClientNetwork({ url: server.url, agentId, token: TOKEN, capabilities: ['work'], log: e => events.next(e), reconnect: { initialDelayMs: 10, maxDelayMs: 50 }, ...options });
  cleanups.push(() => network.close());
  return { network, events };
}

/** Joins a node and records its inbox. */
function inbox<E>(network: Network, id: string): ReplaySubject<Envelope> {
  const received = new ReplaySubject<Envelope>();
  const subscription = network.join(id).subscribe({ next: e => received.next(e), error: err => received.error(err) });
  cleanups.push(() => subscription.unsubscribe());
  return received;
}

describe('WsServerNetwork: authentication', () => {
  it('joins an agent whose hello carries the token', async () => {
    const { server, events } = await serve();
    const r = await raw(server.url);
    r.send(hello('a-1', TOKEN, ['code', 'review']));
    expect(await within(r.messages)).toEqual({ v: 1, type: 'join', agentId: 'a-1', capabilities: ['code', 'review'], session: server.session, key: expect.stringMatching(/^[A-Za-z0-9+/]{43}=$/), maxValueBytes: 1024 * 1024, beatFrames: 1 });
    expect(await first(events, e => e.type === 'connected')).toMatchObject({ type: 'connected', agentId: 'a-1', capabilities: ['code', 'review'], replaced: false });
    expect([...server.remoteAgents.keys()]).toEqual(['a-1']);
  });

  it.each([
    ['a wrong token', 'wrong'],
    ['an empty token', ''],
    ['a token one character longer', `${TOKEN}!`],
  ])('refuses %s: error frame, close 4001, no join', async (_, token) => {
    const { server, events } = await serve();
    const r = await raw(server.url);
    r.send(hello('a-1', token));
    expect(await within(r.messages)).toEqual({ v: 1, type: 'error', code: 4001, error: 'invalid token' });
    expect(await r.closed).toEqual({ code: 4001, reason: 'invalid token' });
    expect(server.remoteAgents.size).toBe(0);
    expect(await first(events, e => e.type === 'rejected')).toMatchObject({ code: 4001, agentId: undefined });
    events.complete();
    expect(await firstValueFrom(events.pipe(filter(e => e.type === 'connected'), toArray()))).toEqual([]);
  });

  it('refuses an envelope before hello with 4001, and routes nothing', async () => {
    const { server } = await serve();
    const coordinator = inbox(server, 'coordinator');
    const r = await raw(server.url);
    r.send(beat('a-1'));
    expect((await r.closed).code).toBe(4001);
    expect(server.stats.sent).toBe(0);
    coordinator.complete();
    expect(await firstValueFrom(coordinator.pipe(toArray()))).toEqual([]);
  });

  it('closes a connection that says nothing with 4008 after helloTimeoutMs', async () => {
    const { server } = await serve({ helloTimeoutMs: 30 });
    const r = await raw(server.url);
    expect(await r.closed).toEqual({ code: WS_CLOSE.handshakeTimeout, reason: 'no hello within 30 ms' });
  });

  it('refuses a hello under the id of a node of its own process (1008)', async () => {
    const { server } = await serve();
    inbox(server, 'coordinator');
    const r = await raw(server.url);
    r.send(hello('coordinator'));
    expect((await r.closed).code).toBe(1008);
  });

  it('a WsClientNetwork with a bad token errors its inbox with WsConnectionError(4001), without retrying', async () => {
    const { server } = await serve();
    const { network, events } = client(server, 'a-1', { token: 'nope' });
    const error = await new Promise<unknown>(resolve => network.join('a-1').subscribe({ error: resolve }));
    expect(error).toBeInstanceOf(WsConnectionError);
    expect(error).toMatchObject({ code: 4001, reason: 'invalid token' });
    expect(network.state).toBe('failed');
    expect(await first(events, e => e.type === 'disconnected')).toMatchObject({ code: 4001, willReconnect: false });
  });
});

describe('WsServerNetwork: ids that come and go', () => {
  it('forgets a departed agent\'s session key (its next hello brings a new one): a hundred ids joining and leaving leave no keys behind', async () => {
    const { server, events } = await serve();
    const keys = (server as unknown as { keys: Map<string, Buffer> }).keys;
    const before = keys.size;
    for (let i = 0; i < 100; i++) {
      const r = await joined(server.url, `passer-${i}`);
      r.send({ v: 1, type: 'leave' });
      await r.closed;
      await first(events, e => e.type === 'disconnected' && e.agentId === `passer-${i}`);
    }
    expect(keys.size).toBe(before);
    // One that comes back gets a key again, and it is signed for.
    const back = await joined(server.url, 'passer-7');
    expect(keys.has('passer-7')).toBe(true);
    back.socket.close();
  });
});

describe('WsServerNetwork: bad input', () => {
  it('drops an envelope with a forged from, says so (4003), logs it, and keeps the connection', async () => {
    const { server, events } = await serve();
    const coordinator = inbox(server, 'coordinator');
    const r = await joined(server.url, 'a-1');
    r.send(beat('a-2'));
    expect(await first(r.messages, m => m.type === 'error')).toMatchObject({ code: 4003, error: expect.stringMatching(/forged sender: envelope from "a-2" on the connection of "a-1"/) });
    expect(await first(events, e => e.type === 'rejected')).toMatchObject({ agentId: 'a-1', code: 4003 });
    r.send(beat('a-1'));
    // The first envelope the coordinator gets is the honest one.
    expect(await within(coordinator)).toMatchObject({ from: 'a-1', to: 'coordinator', kind: 'heartbeat' });
    expect(server.stats).toMatchObject({ sent: 1, delivered: 1, rejected: 1 });
    expect(r.socket.readyState).toBe(WebSocket.OPEN);
  });

  it('closes with 1009 on a frame above maxPayload', async () => {
    const { server, events } = await serve({ maxPayload: 1024 });
    const r = await joined(server.url, 'a-1');
    r.send({ v: 1, type: 'leave', reason: 'x'.repeat(2000) });
    expect((await r.closed).code).toBe(1009);
    expect(await first(events, e => e.type === 'rejected')).toMatchObject({ code: 1009, agentId: 'a-1' });
  });

  it('closes with 4029 when a connection outruns its rate limit', async () => {
    const { server } = await serve({ rateLimit: { perSecond: 1, burst: 4 } });
    inbox(server, 'coordinator');
    const r = await joined(server.url, 'a-1');
    for (let i = 0; i < 10; i++) r.send(beat('a-1'));
    expect(await first(r.messages, m => m.type === 'error')).toMatchObject({ code: 4029, error: expect.stringMatching(/rate limit exceeded/) });
    expect((await r.closed).code).toBe(4029);
    expect(server.stats.sent).toBe(3); // hello took the first token
  });

  it.each([
    ['malformed JSON', '{"v":1,"type":', 1007, /malformed JSON/],
    ['a wrong version', JSON.stringify({ v: 9, type: 'leave' }), 4002, /unsupported version 9/],
    ['an unknown type', JSON.stringify({ v: 1, type: 'shout' }), 1003, /unknown message type "shout"/],
    ['a schema mismatch', JSON.stringify({ v: 1, type: 'envelope', from: 'a-1', to: 'coordinator', kind: 'heartbeat', body: { load: 'x', incarnation: 1 } }), 1007, /body\.load/],
    ['an unknown kind', JSON.stringify({ v: 1, type: 'envelope', from: 'a-1', to: 'coordinator', kind: 'steal', body: {} }), 1003, /unknown envelope kind/],
    ['a child that is not a subtask', JSON.stringify({ v: 1, type: 'envelope', from: 'a-1', to: 'coordinator', kind: 'delegate', body: { taskId: 't', subtaskId: 's', attempt: 1, subtask: { id: '', capabilities: 'all' } } }), 1007, /body\.subtask\.id/],
    ['a second hello', JSON.stringify(hello('a-1')), 1008, /already joined/],
    ['a server-only message', JSON.stringify({ v: 1, type: 'join', agentId: 'a-1', capabilities: [] }), 1008, /sent by the server only/],
  ])('answers %s with an error frame and its close code; the server keeps serving', async (_, frame, code, error) => {
    const { server, events } = await serve();
    const r = await joined(server.url, 'a-1');
    r.send(frame);
    expect(await first(r.messages, m => m.type === 'error')).toMatchObject({ code, error: expect.stringMatching(error) });
    expect((await r.closed).code).toBe(code);
    expect(await first(events, e => e.type === 'disconnected')).toMatchObject({ agentId: 'a-1', code });
    await joined(server.url, 'a-2'); // still up
  });

  it('refuses binary frames other than heartbeat frames with 1003', async () => {
    const { server } = await serve();
    const r = await joined(server.url, 'a-1');
    r.socket.send(Buffer.from(encode(beat('a-1'))), { binary: true });
    expect((await r.closed).code).toBe(1003);
  });
});

describe('WsServerNetwork: binary heartbeat frames', () => {
  const body = { load: 0.25, status: 'ok' as const, incarnation: 3, usage: { fraction: 0.5, what: 'memory' } };
  const frame = (to = 'coordinator', b: Parameters<typeof encodeBeatFrame>[1] = body): Buffer => encodeBeatFrame(to, b) as Buffer;

  it('delivers a binary heartbeat as the envelope its JSON twin gives, sent as the connection’s agent; JSON heartbeats still go', async () => {
    const { server } = await serve();
    const coordinator = inbox(server, 'coordinator');
    const r = await joined(server.url, 'a-1');
    r.socket.send(frame());
    r.send({ v: 1, type: 'envelope', from: 'a-1', to: 'coordinator', kind: 'heartbeat', body });
    r.socket.send(frame('coordinator', { load: 0, incarnation: 3 }));
    const got = await within(coordinator.pipe(take(3), toArray()));
    expect(got).toEqual([
      { from: 'a-1', to: 'coordinator', kind: 'heartbeat', body, sentAt: expect.any(Number) },
      { from: 'a-1', to: 'coordinator', kind: 'heartbeat', body, sentAt: expect.any(Number) },
      { from: 'a-1', to: 'coordinator', kind: 'heartbeat', body: { load: 0, incarnation: 3 }, sentAt: expect.any(Number) },
    ]);
    expect(server.stats).toMatchObject({ received: 3, rejected: 0, byKind: { heartbeat: { sent: 3, delivered: 3, dropped: 0 } } });
  });

  it('relays a binary heartbeat to a remote peer as a JSON envelope', async () => {
    const { server } = await serve();
    const a = await joined(server.url, 'a');
    const b = await joined(server.url, 'b');
    a.socket.send(frame('b'));
    expect(await first(b.messages, m => m.type === 'envelope')).toEqual({ v: 1, type: 'envelope', from: 'a', to: 'b', kind: 'heartbeat', body });
  });

  it.each([
    ['before the hello', undefined, WS_CLOSE.unsupportedData, /only as the heartbeats of a joined agent/],
    ['with a bad length', (f: Buffer) => f.subarray(0, f.length - 1), WS_CLOSE.invalidPayload, /lengths say/],
    ['with a NaN load', (f: Buffer) => (f.writeDoubleLE(Number.NaN, 4), f), WS_CLOSE.invalidPayload, /load NaN/],
    ['of an unknown type', (f: Buffer) => ((f[0] = 9), f), WS_CLOSE.unsupportedData, /unknown binary frame type 9/],
  ] as const)('closes a connection that sends a binary frame %s, with an error frame first; the server goes on', async (_, change, code, error) => {
    const { server, events } = await serve();
    const coordinator = inbox(server, 'coordinator');
    const r = change === undefined ? await raw(server.url) : await joined(server.url, 'a-1');
    r.socket.send(change === undefined ? frame() : change(Buffer.from(frame())));
    expect(await first(r.messages, m => m.type === 'error')).toMatchObject({ code, error: expect.stringMatching(error) });
    expect((await r.closed).code).toBe(code);
    expect(await first(events, e => e.type === 'rejected')).toMatchObject({ code });
    const other = await joined(server.url, 'a-2'); // still up
    other.socket.send(frame());
    expect(await within(coordinator)).toMatchObject({ from: 'a-2', kind: 'heartbeat' });
  });

  it('refuses a binary heartbeat from a client with 1008, as a JSON one', async () => {
    const { server } = await serve();
    const r = await raw(server.url);
    r.send({ ...hello('c-1'), role: 'client' });
    await first(r.messages, m => m.type === 'join');
    r.socket.send(frame());
    expect((await r.closed).code).toBe(WS_CLOSE.policyViolation);
  });

  it('an agent sends binary heartbeats only to a server whose join says it takes them', async () => {
    const { WebSocketServer } = await import('ws');
    for (const beatFrames of [1, undefined]) {
      const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
      cleanups.push(() => new Promise<void>(resolve => wss.close(() => resolve())));
      const frames = new ReplaySubject<{ binary: boolean; data: Buffer }>();
      wss.on('connection', socket => {
        socket.on('message', (data, binary) => {
          const message = binary ? undefined : (JSON.parse(String(data)) as WireMessage);
          if (message?.type === 'hello') socket.send(JSON.stringify({ v: 1, type: 'join', agentId: message.agentId, capabilities: [], ...(beatFrames === undefined ? {} : { beatFrames }) }));
          else frames.next({ binary, data: data as Buffer });
        });
      });
      await new Promise(resolve => wss.once('listening', resolve));
      const events = new ReplaySubject<WsClientEvent>();
      const network = new WsClientNetwork({ url: `ws://127.0.0.1:${(wss.address() as { port: number }).port}`, agentId: 'a', token: TOKEN, log: e => events.next(e) });
      cleanups.push(() => network.close());
      network.join('a').subscribe();
      await first(events, e => e.type === 'joined');
      network.send({ from: 'a', to: 'coordinator', kind: 'heartbeat', body });
      network.send({ from: 'a', to: 'coordinator', kind: 'heartbeat', body: { load: 0, incarnation: 1, usage: { fraction: 0, what: 'w'.repeat(65) } } }); // does not fit: JSON
      const [beat1, beat2] = await within(frames.pipe(take(2), toArray()));
      if (beatFrames === undefined) {
        expect(beat1).toMatchObject({ binary: false });
      } else {
        expect(beat1).toEqual({ binary: true, data: frame() });
      }
      expect(beat2).toMatchObject({ binary: false });
    }
  });
});

describe('WsServerNetwork / WsClientNetwork: routing', () => {
  it('takes a result straight from the agent it names on that agent\'s own connection, signed or not; a relayed one must be signed', async () => {
    const { server } = await serve();
    const coordinator = inbox(server, 'coordinator');
    const [agent, relay] = await Promise.all([joined(server.url, 'a-0'), joined(server.url, 'relay')]);
    const result = { via: [], subtaskId: 's', attempt: 1, agentId: 'a-0', ok: true, value: 1 };
    // No relay touched it: the connection says who sent it, and a signature would add nothing.
    agent.send({ v: 1, type: 'envelope', from: 'a-0', to: 'coordinator', kind: 'result', body: { ...result, mac: 'x'.repeat(43) } });
    expect((await within(coordinator)).body).toEqual({ ...result, mac: 'x'.repeat(43) });
    // The same words from another connection: forged unless a-0 signed them.
    relay.send({ v: 1, type: 'envelope', from: 'relay', to: 'coordinator', kind: 'result', body: result });
    expect((await first(coordinator, e => e.from === 'relay')).body).toEqual({ ...result, forged: 'not signed by "a-0"' });
  });

  it('routes coordinator → agent, agent → coordinator and agent → agent, and counts drops', async () => {
    const { server } = await serve();
    const coordinator = inbox(server, 'coordinator');
    const a = client(server, 'a');
    const b = client(server, 'b');
    const aInbox = inbox(a.network, 'a');
    const bInbox = inbox(b.network, 'b');
    await Promise.all([first(a.events, e => e.type === 'joined'), first(b.events, e => e.type === 'joined')]);

    a.network.send({ from: 'a', to: 'coordinator', kind: 'progress', body: { subtaskId: 's', attempt: 1, progress: 0.5 } });
    const up = await within(coordinator);
    expect(up).toEqual({ from: 'a', to: 'coordinator', kind: 'progress', body: { subtaskId: 's', attempt: 1, progress: 0.5 }, sentAt: expect.any(Number) });

    server.send({ from: 'coordinator', to: 'a', kind: 'assign', body: { via: ['b'], subtask: { id: 's', payload: { n: 1 } }, attempt: 1, replyPath: ['a', 'coordinator'] } });
    const down = await within(aInbox);
    expect(down).toMatchObject({ from: 'coordinator', to: 'a', kind: 'assign', body: { via: ['b'], subtask: { id: 's', payload: { n: 1 } } } });

    a.network.send({ from: 'a', to: 'b', kind: 'token', body: { via: [] } }); // a relay hop between two remote agents
    expect(await within(bInbox)).toMatchObject({ from: 'a', to: 'b', kind: 'token', body: { via: [] } });

    server.send({ from: 'coordinator', to: 'nobody', kind: 'cancel', body: { via: [], subtaskId: 's', attempt: 1 } });
    expect(server.stats).toMatchObject({ sent: 4, delivered: 3, dropped: 1, droppedBy: { unknown: 1, down: 0 } });
    expect(server.stats.byKind).toEqual({
      progress: { sent: 1, delivered: 1, dropped: 0 },
      assign: { sent: 1, delivered: 1, dropped: 0 },
      token: { sent: 1, delivered: 1, dropped: 0 },
      cancel: { sent: 1, delivered: 0, dropped: 1 },
    });
    expect(a.network.stats).toMatchObject({ sent: 2, delivered: 2, dropped: 0, received: 1 });
    expect(server.stats.received).toBe(2);
  });

  it('delivers local-to-local sends through the scheduler, never inside send', async () => {
    const { server } = await serve();
    const x = inbox(server, 'x');
    let got = 0;
    x.subscribe(() => got++);
    server.send({ from: 'y', to: 'x', kind: 'vote', body: { proposalId: 'p', accept: true } });
    expect(got).toBe(0);
    expect(await within(x)).toMatchObject({ from: 'y', kind: 'vote' });
  });

  it('throws for a kind the wire does not carry, only when it would go on the wire', async () => {
    const { server } = await serve();
    await joined(server.url, 'a');
    expect(() => server.send({ from: 'coordinator', to: 'a', kind: 'work.steal', body: {} })).toThrow(/work\.steal.*cannot travel/);
    expect(() => server.send({ from: 'coordinator', to: 'a', kind: 'vote', body: { n: 1n } })).toThrow(TypeError);
    server.send({ from: 'coordinator', to: 'nobody', kind: 'work.steal', body: {} }); // not on the wire: a drop
    expect(server.stats.droppedBy.unknown).toBe(1);
  });

  it('what a turn sends on a connection leaves in one write at the turn\'s end, in order, both ways; coalesceWrites: false writes each at once', async () => {
    const vote = (from: string, to: string, i: number) => ({ from, to, kind: 'vote', body: { proposalId: `p-${i}`, accept: true } });
    for (const coalesceWrites of [true, false]) {
      const { server } = await serve({ coalesceWrites });
      const coordinator = inbox(server, 'coordinator');
      const a = client(server, 'a', { coalesceWrites });
      const aInbox = inbox(a.network, 'a');
      await first(a.events, e => e.type === 'joined');
      for (let i = 0; i < 3; i++) server.send(vote('coordinator', 'a', i));
      // Held in the socket until the turn ends (and counted as buffered), or already taken by the kernel.
      if (coalesceWrites) expect(server.buffered('a')).toBeGreaterThan(0);
      else expect(server.buffered('a')).toBe(0);
      expect(await within(aInbox.pipe(take(3), toArray()))).toMatchObject([0, 1, 2].map(i => ({ body: { proposalId: `p-${i}` } })));
      for (let i = 0; i < 3; i++) a.network.send(vote('a', 'coordinator', i));
      expect(await within(coordinator.pipe(take(3), toArray()))).toMatchObject([0, 1, 2].map(i => ({ body: { proposalId: `p-${i}` } })));
    }
    await expect(serve({ coalesceWrites: 'yes' as unknown as boolean })).rejects.toThrow(/coalesceWrites must be a boolean/);
  });

  it('a received waits for the next frame to its agent (a quarter of the rto it was told, at most 10 ms), in order, and alone after the wait', async () => {
    const { server } = await serve();
    inbox(server, 'coordinator');
    const a = await joined(server.url, 'a');
    const assign = (id: string, rto: number) => ({ from: 'coordinator', to: 'a', kind: 'assign', body: { subtask: { id }, attempt: 1, replyPath: ['coordinator'], via: [], rto } });
    const received = (id: string) => ({ from: 'coordinator', to: 'a', kind: 'received', body: { subtaskId: id, attempt: 1 } });
    // No rto told yet: at once (corked for the turn like any frame).
    server.send(received('early'));
    expect(server.buffered('a')).toBeGreaterThan(0);
    await first(a.messages, m => m.type === 'envelope' && m.kind === 'received');
    server.send(assign('s', 400));
    await first(a.messages, m => m.type === 'envelope' && m.kind === 'assign');
    // Told 400 ms: held (not even corked), then written with the next frame, before it.
    server.send(received('s'));
    expect(server.buffered('a')).toBe(0);
    server.send({ from: 'coordinator', to: 'a', kind: 'vote', body: { proposalId: 'p', accept: true } });
    await first(a.messages, m => m.type === 'envelope' && m.kind === 'vote');
    const order: string[] = [];
    a.messages.subscribe(m => m.type === 'envelope' && order.push(`${m.kind}:${(m.body as { subtaskId?: string; subtask?: { id: string } }).subtaskId ?? (m.body as { subtask?: { id: string } }).subtask?.id ?? ''}`));
    expect(order.slice(-3)).toEqual(['assign:s', 'received:s', 'vote:']);
    // Nothing after it: alone, once the wait is up.
    server.send(received('late'));
    expect(server.buffered('a')).toBe(0);
    await first(a.messages, m => m.type === 'envelope' && m.kind === 'received' && (m.body as { subtaskId: string }).subtaskId === 'late', 1000);
    // Told 2 ms: a quarter is under 1 ms, so it is not held.
    server.send(assign('t', 2));
    server.send(received('t'));
    expect(server.buffered('a')).toBeGreaterThan(0);
    await first(a.messages, m => m.type === 'envelope' && m.kind === 'received' && (m.body as { subtaskId: string }).subtaskId === 't');
    expect(server.stats.byKind['received']).toEqual({ sent: 4, delivered: 4, dropped: 0 });
  });

  it('a received held for an agent that goes away is counted dropped, not lost from the counts', async () => {
    const { server } = await serve();
    inbox(server, 'coordinator');
    const a = await joined(server.url, 'a');
    server.send({ from: 'coordinator', to: 'a', kind: 'assign', body: { subtask: { id: 's' }, attempt: 1, replyPath: ['coordinator'], via: [], rto: 400 } });
    await first(a.messages, m => m.type === 'envelope' && m.kind === 'assign');
    server.send({ from: 'coordinator', to: 'a', kind: 'received', body: { subtaskId: 's', attempt: 1 } });
    a.socket.terminate();
    await first(server.events$, e => e.type === 'disconnected');
    expect(server.stats.byKind['received']).toEqual({ sent: 1, delivered: 0, dropped: 1 });
  });

  it('a route shared between hops in this process (hop) goes on the wire as the route still to go, without hop', async () => {
    const { server } = await serve();
    const coordinator = inbox(server, 'coordinator');
    const a = client(server, 'a');
    const aInbox = inbox(a.network, 'a');
    await first(a.events, e => e.type === 'joined');
    server.send({ from: 'r', to: 'a', kind: 'token', body: { via: ['a', 'b', 'c'], hop: 1 } });
    expect((await within(aInbox)).body).toEqual({ via: ['b', 'c'] });
    a.network.send({ from: 'a', to: 'coordinator', kind: 'token', body: { via: ['a', 'coordinator'], hop: 2 } });
    expect((await within(coordinator)).body).toEqual({ via: [] });
  });

  it('a client sends only as its agent and joins only as its agent', async () => {
    const { server } = await serve();
    const { network } = client(server, 'a');
    expect(() => network.send({ from: 'b', to: 'coordinator', kind: 'vote', body: { proposalId: 'p', accept: true } })).toThrow(/from must be this client's agent id "a"/);
    await expect(firstValueFrom(network.join('b'))).rejects.toThrow(/joins only as "a"/);
  });
});

describe('WsClientNetwork: reconnect', () => {
  it('rejoins under its id after the server drops the socket; messages flow again; sends in between are dropped', async () => {
    const { server, events: serverEvents } = await serve();
    const coordinator = inbox(server, 'coordinator');
    const { network, events } = client(server, 'a-1', { random: () => 0.5 });
    const aInbox = inbox(network, 'a-1');
    await first(events, e => e.type === 'joined');

    expect(server.disconnect('a-1', { abrupt: true })).toBe(true);
    expect(await first(events, e => e.type === 'disconnected')).toMatchObject({ code: 1006, willReconnect: true });
    // Still disconnected: the send is dropped and counted, not thrown.
    network.send({ from: 'a-1', to: 'coordinator', kind: 'vote', body: { proposalId: 'lost', accept: true } });
    expect(network.stats.droppedBy.down).toBe(1);
    expect(await first(events, e => e.type === 'reconnecting')).toEqual({ type: 'reconnecting', attempt: 1, delayMs: 7.5 }) // 10 × (1 − 0.5 × 0.5);
    expect(await first(events, e => e.type === 'joined' && e.connects === 2)).toMatchObject({ agentId: 'a-1' });
    expect(await first(serverEvents.pipe(filter(e => e.type === 'connected'), take(2), toArray()), () => true)).toHaveLength(2);

    network.send({ from: 'a-1', to: 'coordinator', kind: 'vote', body: { proposalId: 'p', accept: true } });
    expect(await within(coordinator)).toMatchObject({ from: 'a-1', body: { proposalId: 'p' } });
    server.send({ from: 'coordinator', to: 'a-1', kind: 'cancel', body: { via: [], subtaskId: 's', attempt: 2 } });
    expect(await within(aInbox)).toMatchObject({ kind: 'cancel', body: { attempt: 2 } });
  });

  it('reconnects after a clean server-side close (1001) and when the server comes back on the same port', async () => {
    const first1 = await serve();
    const port = first1.server.port;
    const { network, events } = client(first1.server, 'a-1');
    inbox(network, 'a-1');
    await first(events, e => e.type === 'joined');
    await first1.server.close();
    expect(await first(events, e => e.type === 'disconnected')).toMatchObject({ code: 1001, willReconnect: true });
    const second = await serve({ port });
    expect(await first(events, e => e.type === 'joined' && e.connects === 2)).toBeDefined();
    expect([...second.server.remoteAgents.keys()]).toEqual(['a-1']);
  });

  it('an id belongs to its live connection: a second hello is refused (4009, retryable) and the holder stays', async () => {
    const { server } = await serve();
    const older = await joined(server.url, 'a-1');
    const newer = await raw(server.url);
    newer.send(hello('a-1'));
    expect(await first(newer.messages, m => m.type === 'error')).toMatchObject({ code: WS_CLOSE.idInUse, error: expect.stringMatching(/held by a live agent connection/) });
    expect((await newer.closed).code).toBe(WS_CLOSE.idInUse);
    const coordinator = inbox(server, 'coordinator');
    older.send(beat('a-1'));
    expect(await within(coordinator)).toMatchObject({ from: 'a-1' });
    expect(older.socket.readyState).toBe(WebSocket.OPEN);
  });

  it('a holder that does not answer the probe is cut, and the id is free for the next hello', async () => {
    const { server, events } = await serve({ idProbeMs: 50 });
    const older = await joined(server.url, 'a-1');
    older.socket.pause(); // a stopped process: no pong
    const newer = await raw(server.url);
    newer.send(hello('a-1'));
    expect((await newer.closed).code).toBe(WS_CLOSE.idInUse);
    expect(await first(events, e => e.type === 'rejected' && e.agentId === 'a-1' && e.code === 1006)).toMatchObject({ error: expect.stringMatching(/heard nothing from it \(not even a pong\) for 50 ms/) });
    await first(events, e => e.type === 'disconnected' && e.agentId === 'a-1');
    const retry = await joined(server.url, 'a-1');
    expect(retry.socket.readyState).toBe(WebSocket.OPEN);
  });

  it('a client whose id is in use keeps retrying and joins once the holder is gone (no close code ends an honest agent)', async () => {
    const { server } = await serve();
    const holder = await joined(server.url, 'a-1');
    const { network, events } = client(server, 'a-1');
    const errors: unknown[] = [];
    network.join('a-1').subscribe({ error: err => errors.push(err) });
    await first(events, e => e.type === 'disconnected' && e.code === WS_CLOSE.idInUse && e.willReconnect);
    holder.socket.close();
    await first(events, e => e.type === 'joined');
    expect(errors).toEqual([]);
  });

  it('gives up after maxAttempts failed reconnects (the inbox errors)', async () => {
    const { server } = await serve();
    const port = server.port;
    const { network, events } = client(server, 'a-1', { reconnect: { initialDelayMs: 1, maxDelayMs: 2, maxAttempts: 2 } });
    const error = new Promise<unknown>(resolve => network.join('a-1').subscribe({ error: resolve }));
    await first(events, e => e.type === 'joined');
    await server.close();
    expect(await error).toMatchObject({ name: 'WsConnectionError', message: expect.stringMatching(/gave up after 2 attempts/) });
    expect(port).toBeGreaterThan(0);
  });

  it.each([
    [1, 0, 100],
    [1, 1, 50],
    [2, 0, 200],
    [3, 0.5, 300],
    [10, 0, 1000],
  ])('backoff before attempt %i with random %d is %d ms (initial 100, factor 2, max 1000, jitter 0.5)', (attempt, draw, expected) => {
    const network = new WsClientNetwork({ url: 'ws://127.0.0.1:1', agentId: 'a', token: 't', random: () => draw, reconnect: { initialDelayMs: 100, factor: 2, maxDelayMs: 1000, jitter: 0.5 } });
    expect(network.delayFor(attempt)).toBe(expected);
  });

  it.each([
    [{ url: 'http://x' }, /url/],
    [{ agentId: '' }, /agentId/],
    [{ reconnect: { jitter: 2 } }, /reconnect\.jitter/],
    [{ reconnect: { factor: 0.5 } }, /reconnect\.factor/],
    [{ reconnect: { maxAttempts: 0 } }, /reconnect\.maxAttempts/],
  ])('rejects bad client options %j', (patch, error) => {
    expect(() => new WsClientNetwork({ url: 'ws://127.0.0.1:1', agentId: 'a', token: 't', ...patch } as never)).toThrow(error);
  });

  it.each([
    [{ token: '' }, /token/],
    [{ port: 70000 }, /port/],
    [{ rateLimit: { perSecond: 0 } }, /rateLimit\.perSecond/],
    [{ maxPayload: 1 }, /maxPayload/],
  ])('rejects bad server options %j', (patch, error) => {
    expect(() => new WsServerNetwork({ token: TOKEN, port: 0, ...patch } as never)).toThrow(error);
  });
});

describe('end to end over real sockets', () => {
  /**
   * A coordinator on a WsServerNetwork with no agents of its own, and remote AgentHosts, each on its
   * own WsClientNetwork: the coordinator admits them from the server's `members$`.
   */
  async function cluster(ids: readonly string[], handle: (agentId: string, subtask: Subtask) => Promise<unknown>) {
    const { server } = await serve();
    const connected = firstValueFrom(server.events$.pipe(filter(e => e.type === 'connected'), take(ids.length), toArray(), timeout(WAIT_MS)));
    const clients = new Map<string, ReturnType<typeof client>>();
    for (const [i, id] of ids.entries()) {
      const wire = client(server, id);
      clients.set(id, wire);
      const host = new AgentHost(
        { id, capabilities: ['work'], handle: subtask => handle(id, subtask) },
        { network: wire.network, coordinatorId: 'coordinator', heartbeatIntervalMs: 100, heartbeatJitterMs: 20, random: createRandom(i) },
      );
      host.start();
      cleanups.push(() => host.leave());
    }
    await connected;
    const coordinator = createCoordinator({
      agents: [],
      topology: 'star',
      network: server,
      scheduler: asyncScheduler,
      heartbeat: { intervalMs: 100, jitterMs: 20 },
      ackTimeoutMs: 2000,
      progressTimeoutMs: 10_000,
      deadlineMs: asyncScheduler.now() + 20_000, // scheduler time, absolute
    });
    return { server, clients, coordinator };
  }

  const subtasks = Array.from({ length: 12 }, (_, i) => ({ id: `s-${i}`, payload: i, capabilities: ['work'] }));
  const double = async (agentId: string, subtask: Subtask): Promise<unknown> => ({ by: agentId, doubled: (subtask.payload as number) * 2 });

  it('a coordinator on a WsServerNetwork runs a task to success with three AgentHosts on their own WsClientNetworks', async () => {
    const { server, coordinator } = await cluster(['a-0', 'a-1', 'a-2'], double);
    const result = await coordinator.run({ id: 'wire', subtasks });

    expect(result.failed).toEqual({});
    expect(result.success).toBe(true);
    expect(Object.keys(result.results).sort()).toEqual(subtasks.map(s => s.id).sort());
    for (const [i, s] of subtasks.entries()) expect(result.results[s.id]).toMatchObject({ doubled: 2 * i });
    const stats = server.stats;
    expect(stats.byKind.assign?.delivered).toBeGreaterThanOrEqual(subtasks.length);
    expect(stats.byKind.result?.delivered).toBeGreaterThanOrEqual(subtasks.length);
    expect(stats.byKind.progress?.delivered).toBeGreaterThanOrEqual(subtasks.length); // acknowledgements
    expect(stats.rejected).toBe(0);
  });

  it('bad frames from other connections during a run (garbage, wrong version, oversized, forged results) lose nothing', async () => {
    let release!: () => void;
    const gate = new Promise<void>(resolve => (release = resolve));
    const { server, coordinator } = await cluster(['a-0', 'a-1'], async (agentId, subtask) => {
      if (subtask.id === 's-0') await gate; // held while the attackers do their worst
      return double(agentId, subtask);
    });
    const events: CoordinationEvent[] = [];
    const done = new Promise<void>((resolve, reject) => coordinator.run$({ id: 'wire', subtasks }).subscribe({ next: e => events.push(e), error: reject, complete: resolve }));
    const attackers = await Promise.all([raw(server.url), raw(server.url), raw(server.url), joined(server.url, 'rogue')]);
    const [garbage, version, huge, rogue] = attackers as [Raw, Raw, Raw, Raw];
    garbage.send('{"v":1,"type":');
    version.send({ v: 9, type: 'hello', agentId: 'x', capabilities: [], token: TOKEN });
    huge.send('x'.repeat(2 * 1024 * 1024));
    for (const s of subtasks) {
      for (const attempt of [1, 2, 3]) rogue.send({ v: 1, type: 'envelope', from: 'rogue', to: 'coordinator', kind: 'result', body: { taskId: 'wire', subtaskId: s.id, attempt, agentId: 'a-0', ok: true, value: 'forged', via: [] } });
    }
    expect((await garbage.closed).code).toBe(WS_CLOSE.invalidPayload);
    expect((await version.closed).code).toBe(WS_CLOSE.unsupportedVersion);
    expect((await huge.closed).code).toBe(WS_CLOSE.tooBig);
    release();
    await done;

    const result = (events.at(-1) as Extract<CoordinationEvent, { type: 'task.completed' }>).result;
    expect(result.failed).toEqual({});
    expect(Object.keys(result.results).sort()).toEqual(subtasks.map(s => s.id).sort());
    expect(Object.values(result.results)).not.toContain('forged');
    expect(events.filter(e => e.type === 'subtask.completed')).toHaveLength(subtasks.length);
    expect(events.some(e => e.type === 'subtask.rejected' && /forged: not signed by "a-0" \(delivered by rogue\)/.test(e.reason))).toBe(true);
    // Who forged it is unknown to the coordinator (relays pass on what they are given): rejected, no one blamed.
    expect(events.some(e => e.type === 'agent.quarantined')).toBe(false);
  });

  it('an agent whose connection drops mid-subtask rejoins, and every subtask completes exactly once', async () => {
    let release!: () => void;
    const gate = new Promise<void>(resolve => (release = resolve));
    const started = new ReplaySubject<string>();
    const { server, clients, coordinator } = await cluster(['a-0', 'a-1', 'a-2'], async (agentId, subtask) => {
      if (subtask.id === 's-0') {
        started.next(agentId);
        await gate; // held until the test has cut and restored this agent's connection
      }
      return double(agentId, subtask);
    });
    const events = new ReplaySubject<CoordinationEvent>();
    const done = new Promise<void>((resolve, reject) => coordinator.run$({ id: 'wire', subtasks }).subscribe({ next: e => events.next(e), error: reject, complete: resolve }));

    const holder = await within(started);
    const wire = clients.get(holder);
    expect(wire).toBeDefined();
    expect(server.disconnect(holder, { abrupt: true })).toBe(true);
    await first(wire!.events, e => e.type === 'joined' && e.connects === 2);
    release();
    await done;
    events.complete();

    const log = await firstValueFrom(events.pipe(toArray()));
    const last = log.at(-1);
    expect(last?.type).toBe('task.completed');
    const result = (last as Extract<CoordinationEvent, { type: 'task.completed' }>).result;
    expect(result.failed).toEqual({});
    expect(Object.keys(result.results).sort()).toEqual(subtasks.map(s => s.id).sort());
    const completions = log.filter(e => e.type === 'subtask.completed').map(e => e.subtaskId).sort();
    expect(completions).toEqual(subtasks.map(s => s.id).sort()); // each exactly once
  });
});

describe('WsServerNetwork: TLS', () => {
  const fixtures = new URL('../fixtures/', import.meta.url);
  const cert = readFileSync(new URL('tls-cert.pem', fixtures));
  const key = readFileSync(new URL('tls-key.pem', fixtures));

  it('serves wss:// with the given certificate: an agent that trusts it joins, a plain ws:// client is refused', async () => {
    const { server } = await serve({ tls: { cert, key: key.toString('utf8') } });
    expect(server.url).toMatch(/^wss:\/\/127\.0\.0\.1:\d+$/);
    const socket = new WebSocket(server.url, { ca: cert });
    cleanups.push(() => socket.terminate());
    const messages = new ReplaySubject<WireMessage>();
    socket.on('message', data => messages.next(JSON.parse(String(data)) as WireMessage));
    await new Promise<void>((resolve, reject) => (socket.once('open', () => resolve()), socket.once('error', reject)));
    socket.send(JSON.stringify(hello('tls-1')));
    expect(await first(messages, m => m.type === 'join')).toMatchObject({ agentId: 'tls-1' });
    const plain = new WebSocket(server.url.replace('wss:', 'ws:'));
    cleanups.push(() => plain.terminate());
    const failed = await new Promise<unknown>(resolve => (plain.once('error', resolve), plain.once('open', () => resolve('opened'))));
    expect(failed).toBeInstanceOf(Error);
  });

  it('refuses a tls option without both PEMs', () => {
    expect(() => new WsServerNetwork({ token: TOKEN, port: 0, tls: { cert } as never })).toThrow(/tls must be \{ cert, key \}/);
  });
});

describe('WsServerNetwork: roles', () => {
  const clientHello = (agentId: string): WireMessage => ({ v: 1, type: 'hello', agentId, capabilities: [], token: TOKEN, role: 'client' });

  it('members$ gives the agents connected now, then each agent that connects, never a client', async () => {
    const { server } = await serve();
    await joined(server.url, 'early');
    const submitter = await raw(server.url);
    submitter.send(clientHello('run-1'));
    await first(submitter.messages, m => m.type === 'join');
    const seen = new ReplaySubject<string>();
    const subscription = server.members$.subscribe(m => seen.next(`${m.agentId}:${m.slots}`));
    cleanups.push(() => subscription.unsubscribe());
    const late = await raw(server.url);
    late.send({ ...hello('late'), slots: 3 });
    await first(late.messages, m => m.type === 'join');
    expect(await firstValueFrom(seen.pipe(take(2), toArray(), timeout(WAIT_MS)))).toEqual(['early:1', 'late:3']);
    expect(server.remoteAgents.get('run-1')?.role).toBe('client');
  });

  it('refuses a client hello under the id of a connected agent (and the reverse): no one is evicted across roles', async () => {
    const { server } = await serve();
    const agent = await joined(server.url, 'w-1');
    const impostor = await raw(server.url);
    impostor.send(clientHello('w-1'));
    expect(await first(impostor.messages, m => m.type === 'error')).toMatchObject({ code: WS_CLOSE.idInUse, error: expect.stringMatching(/held by a live agent connection/) });
    expect(agent.socket.readyState).toBe(WebSocket.OPEN);
    expect(server.remoteAgents.get('w-1')?.role).toBe('agent');
  });

  it('refuses hellos under reserved ids', async () => {
    const { server } = await serve({ reservedIds: ['tasks'] });
    const r = await raw(server.url);
    r.send(hello('tasks'));
    expect((await r.closed).code).toBe(WS_CLOSE.policyViolation);
  });

  it.each([
    ['a client sends work to an agent', 'client', { kind: 'assign', to: 'a-1', body: { via: [], subtask: { id: 's' }, attempt: 1, replyPath: ['coordinator'] } }, /a client may not send assign/],
    ['a client sends a heartbeat', 'client', { kind: 'heartbeat', to: 'coordinator', body: { load: 0, incarnation: 1 } }, /a client may not send heartbeat/],
    ['an agent submits a task', 'agent', { kind: 'submit', to: 'tasks', body: { task: { id: 't', subtasks: [] } } }, /an agent may not send submit/],
    ['an agent forges an outcome', 'agent', { kind: 'outcome', to: 'run-1', body: { taskId: 't', error: 'no' } }, /an agent may not send outcome/],
    ['an agent forges a child\'s outcome for another agent', 'agent', { kind: 'delegated', to: 'a-1', body: { taskId: 't', subtaskId: 's', attempt: 1, childId: 'c', ok: true, value: 'forged' } }, /an agent may not send delegated/],
  ])('closes with 1008 when %s, and keeps serving the others', async (_, role, envelope, error) => {
    const { server, events } = await serve();
    const bystander = await joined(server.url, 'a-1');
    const r = await raw(server.url);
    r.send(role === 'client' ? clientHello('x') : hello('x'));
    await first(r.messages, m => m.type === 'join');
    r.send({ v: 1, type: 'envelope', from: 'x', ...envelope });
    expect(await r.closed).toMatchObject({ code: WS_CLOSE.policyViolation });
    expect(await first(events, e => e.type === 'rejected')).toMatchObject({ agentId: 'x', error: expect.stringMatching(error) });
    expect(bystander.socket.readyState).toBe(WebSocket.OPEN);
  });
});

describe('WsServerNetwork: backpressure', () => {
  it('cuts a connection that stops reading once maxBufferedBytes wait for it, and counts what it missed as dropped', async () => {
    const { server, events } = await serve({ maxBufferedBytes: 256 * 1024 });
    inbox(server, 'coordinator');
    const stalled = await joined(server.url, 'frozen');
    const bystander = await joined(server.url, 'fine');
    stalled.socket.pause(); // a SIGSTOPped process: nothing is read from its socket any more
    const payload = 'p'.repeat(100 * 1024);
    const assign = (to: string, i: number) => ({ from: 'coordinator', to, kind: 'assign', body: { via: [], subtask: { id: `s-${i}`, payload }, attempt: 1, replyPath: ['coordinator'] } });
    for (let i = 0; i < 400 && server.remoteAgents.has('frozen'); i++) {
      server.send(assign('frozen', i));
      await new Promise(resolve => setImmediate(resolve)); // let the socket write what the kernel takes
    }
    expect(await first(events, e => e.type === 'rejected')).toMatchObject({ agentId: 'frozen', error: expect.stringMatching(/not reading: \d+ bytes waiting \(maxBufferedBytes 262144\)/) });
    const dropped = server.stats.droppedBy.down;
    server.send(assign('frozen', 1000));
    expect(server.stats.droppedBy.down).toBe(dropped + 1);
    server.send(assign('fine', 0));
    expect(await first(bystander.messages, m => m.type === 'envelope')).toMatchObject({ kind: 'assign', to: 'fine' });
  });
});
