import fc from 'fast-check';
import type { HeartbeatBody } from '../../streams/protocol.js';
import { BEAT_FRAME, encodeBeatFrame } from '../../streams/wsBeatFrame.js';
import { WS_CLOSE, type WireMessage } from '../../streams/wsCodec.js';
import { submitTask } from '../../src/remote.js';
import type { Raw } from './rawSocket.js';
import { agents, bounded, cleanUp, envelope, expectHonest, hello, quarantined, raw, rogue, start, until, work, TOKEN, type Started } from './attackKit.js';

// Attacks on the binary heartbeat frame over real sockets: a stranger, a client and a
// token-holding rogue agent send binary frames the server must refuse with a clear close code, or
// take with exactly the meaning of the JSON heartbeat, never more authority. Afterwards the service
// is up, the honest agents are connected and a task completes with every subtask exactly once.
afterEach(cleanUp);

const beat = (to: string, body: HeartbeatBody = { load: 0, incarnation: 1 }): Buffer => encodeBeatFrame(to, body) as Buffer;
const sendBinary = (r: Raw, frame: Buffer): void => r.socket.send(frame, { binary: true });
const closedWith = async (r: Raw): Promise<{ code: number; reason: string }> => {
  const closed = await bounded(r.closed, []);
  return closed;
};
const errorFrame = (r: Raw): WireMessage | undefined => r.frames.find(m => m.type === 'error');

/** The service still runs a task to the end on the honest agents, each subtask once. */
async function stillServes(s: Started, honest: readonly string[], id: string, n = 8): Promise<void> {
  const subtasks = work(n, id, { sleepMs: 5 });
  const result = await bounded(submitTask({ url: s.service.url, token: TOKEN, task: { id, subtasks } }), s.events);
  expectHonest(result, s.events, subtasks.map(t => t.id), honest);
  for (const h of honest) expect(s.service.server.remoteAgents.has(h)).toBe(true);
  expect(s.server.filter(e => e.type === 'disconnected' && honest.includes(e.agentId))).toEqual([]);
}

describe('binary heartbeat frames from those who may not send them', () => {
  it('a stranger (no hello) is closed with 1003 and told to say hello in JSON; a client with 1008; the service goes on', async () => {
    const s = await start();
    await agents(s.service.url, ['h-0', 'h-1'], ['work']);
    const stranger = await raw(s.service.url);
    sendBinary(stranger, beat('coordinator'));
    expect(await closedWith(stranger)).toMatchObject({ code: WS_CLOSE.unsupportedData });
    expect(errorFrame(stranger)).toMatchObject({ code: WS_CLOSE.unsupportedData, error: expect.stringMatching(/hello in JSON/) });

    // Before hello, every length and a valid frame's bytes alike: never read as a heartbeat.
    for (const n of [0, 1, 27, 28, 40]) {
      const r = await raw(s.service.url);
      sendBinary(r, Buffer.alloc(n, BEAT_FRAME));
      expect((await closedWith(r)).code).toBe(WS_CLOSE.unsupportedData);
    }

    const client = await raw(s.service.url);
    expect(await hello(client, 'cli-1', { role: 'client' })).toMatchObject({ type: 'join' });
    sendBinary(client, beat('coordinator', { load: 0, status: 'leaving', incarnation: 1 }));
    expect(await closedWith(client)).toMatchObject({ code: WS_CLOSE.policyViolation });
    expect(errorFrame(client)).toMatchObject({ error: expect.stringMatching(/client may not send heartbeat/) });
    await stillServes(s, ['h-0', 'h-1'], 'after-stranger');
  });
});

describe('malformed binary frames from a token-holding agent', () => {
  const valid = (): Buffer => Buffer.from(beat('coordinator', { load: 0.5, status: 'ok', incarnation: 2, usage: { fraction: 0.5, what: 'cpu' } }));
  const edit = (change: (b: Buffer) => void): Buffer => {
    const b = valid();
    change(b);
    return b;
  };
  const invalidTo = Buffer.concat([Buffer.from([BEAT_FRAME, 0, 255, 0]), Buffer.alloc(24), Buffer.alloc(255, 0xff)]);
  const cases: Array<[string, Buffer, number]> = [
    ...[0, 1, 2, 4, 12, 27].map(n => [`${n} bytes of header only`, Buffer.alloc(n, 0).fill(BEAT_FRAME, 0, Math.min(1, n)), WS_CLOSE.invalidPayload] as [string, Buffer, number]),
    ['a byte too many', Buffer.concat([valid(), Buffer.from([0])]), WS_CLOSE.invalidPayload],
    ['a byte too few', valid().subarray(0, valid().length - 1), WS_CLOSE.invalidPayload],
    ['unknown type 0', edit(b => (b[0] = 0)), WS_CLOSE.unsupportedData],
    ['unknown type 255', edit(b => (b[0] = 255)), WS_CLOSE.unsupportedData],
    ['JSON text sent as binary', Buffer.from(JSON.stringify(envelope('rogue', 'coordinator', 'heartbeat', { load: 0, incarnation: 1 }))), WS_CLOSE.unsupportedData],
    ['flags 0xff', edit(b => (b[1] = 0xff)), WS_CLOSE.invalidPayload],
    ['status 3', edit(b => (b[1] = ((b[1] as number) & ~0b11) | 0b11)), WS_CLOSE.invalidPayload],
    ['load NaN', edit(b => b.writeDoubleLE(Number.NaN, 4)), WS_CLOSE.invalidPayload],
    ['load -Infinity', edit(b => b.writeDoubleLE(Number.NEGATIVE_INFINITY, 4)), WS_CLOSE.invalidPayload],
    ['incarnation NaN', edit(b => b.writeDoubleLE(Number.NaN, 12)), WS_CLOSE.invalidPayload],
    ['incarnation Infinity', edit(b => b.writeDoubleLE(Number.POSITIVE_INFINITY, 12)), WS_CLOSE.invalidPayload],
    ['incarnation 2^53', edit(b => b.writeDoubleLE(2 ** 53, 12)), WS_CLOSE.invalidPayload],
    ['incarnation 1e308', edit(b => b.writeDoubleLE(1e308, 12)), WS_CLOSE.invalidPayload],
    ['fraction Infinity', edit(b => b.writeDoubleLE(Number.POSITIVE_INFINITY, 20)), WS_CLOSE.invalidPayload],
    ['fraction -0.1', edit(b => b.writeDoubleLE(-0.1, 20)), WS_CLOSE.invalidPayload],
    ['255 bytes of invalid UTF-8 as `to`', invalidTo, WS_CLOSE.invalidPayload],
    ['a lone surrogate (CESU) in `to`', Buffer.concat([Buffer.from([BEAT_FRAME, 0, 3, 0]), Buffer.alloc(24), Buffer.from([0xed, 0xa0, 0x80])]), WS_CLOSE.invalidPayload],
    ['an overlong NUL in `to`', Buffer.concat([Buffer.from([BEAT_FRAME, 0, 2, 0]), Buffer.alloc(24), Buffer.from([0xc0, 0x80])]), WS_CLOSE.invalidPayload],
  ];

  it('each closes only its own connection with its code and an error frame naming the fault; nothing is routed; the honest agents finish a task', async () => {
    const s = await start();
    await agents(s.service.url, ['h-0', 'h-1'], ['work']);
    for (const [name, frame, code] of cases) {
      const r = await rogue(s.service.url, `rogue-${cases.findIndex(c => c[0] === name)}`);
      sendBinary(r, frame);
      const closed = await closedWith(r);
      expect({ name, code: closed.code }).toEqual({ name, code });
      expect({ name, error: (errorFrame(r) as { error?: string } | undefined)?.error }).toEqual({ name, error: expect.stringMatching(/binary/) });
    }
    expect(s.events.filter(e => e.type === 'agent.down' && (e as { agentId: string }).agentId.startsWith('h-'))).toEqual([]);
    await stillServes(s, ['h-0', 'h-1'], 'after-malformed');
  });

  it('-0, a huge finite load and the largest safe incarnation are taken as JSON would take them: the connection stays', async () => {
    const s = await start();
    await agents(s.service.url, ['h-0'], ['work']);
    const r = await rogue(s.service.url, 'edgy');
    const frame = beat('coordinator', { load: 0, incarnation: 1 });
    frame.writeDoubleLE(-0, 4);
    frame.writeDoubleLE(-0, 12);
    sendBinary(r, frame);
    sendBinary(r, beat('coordinator', { load: -Number.MAX_VALUE, incarnation: 1 }));
    sendBinary(r, beat('coordinator', { load: Number.MAX_VALUE, incarnation: Number.MAX_SAFE_INTEGER, usage: { fraction: Number.MAX_VALUE, what: '' } }));
    sendBinary(r, beat('coordinator', { load: 0, incarnation: -Number.MAX_SAFE_INTEGER }));
    // A JSON frame after them answers in order: had any binary frame closed the socket, this would not come back.
    r.send(envelope('edgy', 'edgy', 'heartbeat', { load: 0, incarnation: 1 }));
    await r.frame(m => m.type === 'envelope' && m.kind === 'heartbeat');
    expect(errorFrame(r)).toBeUndefined();
    await stillServes(s, ['h-0'], 'after-edgy');
  });
});

describe('what a binary heartbeat may say, and to whom', () => {
  it('a flood of binary frames is cut by the same rate limit as JSON (4029); the honest agent is untouched', async () => {
    const s = await start({ rateLimit: { perSecond: 200, burst: 50 } });
    await agents(s.service.url, ['h-0'], ['work']);
    const r = await rogue(s.service.url, 'flooder');
    const frame = beat('coordinator');
    for (let i = 0; i < 500; i++) sendBinary(r, frame);
    expect((await closedWith(r)).code).toBe(WS_CLOSE.rateLimited);
    await stillServes(s, ['h-0'], 'after-flood');
  });

  it('binary and JSON heartbeats alternating on one connection are both taken (the agent is not suspected), in order', async () => {
    const s = await start();
    await agents(s.service.url, ['h-0'], ['work']);
    const r = await raw(s.service.url);
    await hello(r, 'mixed', { capabilities: ['work'] });
    const peer = await raw(s.service.url);
    await hello(peer, 'listener');
    for (let i = 0; i < 20; i++) {
      if (i % 2 === 0) sendBinary(r, beat('listener', { load: i, incarnation: 1 }));
      else r.send(envelope('mixed', 'listener', 'heartbeat', { load: i, incarnation: 1 }));
    }
    const loads = await until(
      'twenty relayed heartbeats',
      check => (peer.onFrame(check), () => undefined),
      () => {
        const got = peer.frames.filter(m => m.type === 'envelope' && m.kind === 'heartbeat' && m.from === 'mixed');
        return got.length === 20 ? got.map(m => ((m as { body: HeartbeatBody }).body).load) : undefined;
      },
    );
    expect(loads).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(errorFrame(r)).toBeUndefined();
  });

  it('`to` a peer is relayed as JSON from the connection\'s own id; to tasks, to an unknown id or to itself is harmless; the connection stays', async () => {
    const s = await start();
    await agents(s.service.url, ['h-0', 'h-1'], ['work']);
    const r = await rogue(s.service.url, 'beater');
    const peer = await raw(s.service.url);
    await hello(peer, 'peer');
    for (const to of ['tasks', 'coordinator', 'nobody-here', 'x'.repeat(255), 'beater', 'peer']) sendBinary(r, beat(to, { load: 0.25, incarnation: 1 }));
    const relayed = await peer.frame(m => m.type === 'envelope' && m.kind === 'heartbeat');
    expect(relayed).toEqual({ v: 1, type: 'envelope', from: 'beater', to: 'peer', kind: 'heartbeat', body: { load: 0.25, incarnation: 1 } });
    expect(errorFrame(r)).toBeUndefined();
    expect(r.socket.readyState).toBe(r.socket.OPEN);
    await stillServes(s, ['h-0', 'h-1'], 'after-beats');
  });

  it('a binary beat to a client is dropped (clients hear from the service only), the sender told in the log; the client still gets its result', async () => {
    const s = await start();
    await agents(s.service.url, ['h-0'], ['work']);
    const r = await rogue(s.service.url, 'pest');
    const client = await raw(s.service.url);
    await hello(client, 'cli-x', { role: 'client' });
    const heard: WireMessage[] = [];
    client.onFrame(m => heard.push(m));
    sendBinary(r, beat('cli-x', { load: 1, status: 'leaving', incarnation: 1 }));
    await s.event(e => e.type === 'rejected' && /heartbeat for the client "cli-x" from "pest": dropped/.test((e as { error: string }).error), 'the beat to the client dropped');
    expect(r.socket.readyState).toBe(r.socket.OPEN);
    // The client is not hurt by it: it submits and gets its outcome on the same connection.
    const subtasks = work(3, 'c', { sleepMs: 5 });
    client.send(envelope('cli-x', 'tasks', 'submit', { task: { id: 'via-raw-client', subtasks } }));
    const outcome = await client.frame(m => m.type === 'envelope' && m.kind === 'outcome');
    expect((outcome as { body: { result?: { success: boolean } } }).body.result?.success).toBe(true);
    expect(heard.filter(m => m.type === 'envelope' && m.kind === 'heartbeat')).toEqual([]);
  });
});

describe('a binary "leaving" heartbeat', () => {
  it('takes down only the connection\'s own agent: the sender is its id; a JSON leaving beat forged for an honest agent is refused (4003)', async () => {
    const s = await start();
    await agents(s.service.url, ['h-0', 'h-1'], ['work']);
    const r = await rogue(s.service.url, 'leaver');
    const subtasks = work(16, 'lv', { sleepMs: 30 });
    const task = submitTask({ url: s.service.url, token: TOKEN, task: { id: 'leaving', subtasks } });
    await s.event(e => e.type === 'subtask.assigned', 'the first assignment');
    // No `from` in a binary frame: whatever `to` says, it is the leaver's own beat.
    sendBinary(r, beat('coordinator', { load: 0, status: 'leaving', incarnation: 1 }));
    await s.event(e => e.type === 'agent.down' && (e as { agentId: string }).agentId === 'leaver', 'the leaver down');
    r.send(envelope('h-0', 'coordinator', 'heartbeat', { load: 0, status: 'leaving', incarnation: 1 }));
    expect(await r.frame(m => m.type === 'error')).toMatchObject({ code: WS_CLOSE.forgedSender });
    // A leaving beat `to` an honest agent is relayed to it: it takes nobody down at the coordinator.
    sendBinary(r, beat('h-1', { load: 0, status: 'leaving', incarnation: 1 }));
    const result = await bounded(task, s.events);
    expectHonest(result, s.events, subtasks.map(t => t.id), ['h-0', 'h-1']);
    expect(s.events.filter(e => e.type === 'agent.down').map(e => (e as { agentId: string }).agentId)).toEqual(['leaver']);
    await stillServes(s, ['h-0', 'h-1'], 'after-leaving');
  });

  it('sent while holding work (acknowledged, never finished): the work goes to honest agents at once, each subtask completes once', async () => {
    const s = await start({ coordinator: { topology: 'star', heartbeat: { intervalMs: 100 }, orphanTimeoutMs: 3000 } });
    const r = await rogue(s.service.url, 'holder', { capabilities: ['work', 'task_delegation', 'resource_allocation', 'conflict_resolution'], slots: 4 });
    let held = 0;
    let left = false;
    r.onFrame(m => {
      if (m.type !== 'envelope' || m.kind !== 'assign') return;
      const body = m.body as { via: string[]; subtask: { id: string }; attempt: number; taskId?: string };
      if (body.via.length > 0) {
        // The hub's part done honestly: relayed on, so that only its own work is held.
        r.send(envelope('holder', body.via[0] as string, 'assign', { ...body, via: body.via.slice(1) }));
        return;
      }
      r.send(envelope('holder', 'coordinator', 'progress', { taskId: body.taskId, subtaskId: body.subtask.id, attempt: body.attempt, progress: 0 }));
      if (++held === 1 && !left) {
        left = true;
        // It leaves as an agent does (no beat after it): one that beats on is taken back (a design choice).
        setTimeout(() => (r.stopBeats(), sendBinary(r, beat('coordinator', { load: 1, status: 'leaving', incarnation: 1 }))), 20);
      }
    });
    await agents(s.service.url, ['h-0', 'h-1'], ['work']);
    const subtasks = work(12, 'held', { sleepMs: 20 });
    const result = await bounded(submitTask({ url: s.service.url, token: TOKEN, task: { id: 'held', subtasks } }), s.events);
    expect(held).toBeGreaterThan(0);
    expect(s.events.find(e => e.type === 'agent.down' && (e as { agentId: string }).agentId === 'holder')).toMatchObject({ reason: 'left' });
    // Its work was handed on when it left, not after a timeout: nothing waited for the ack deadline.
    expect(s.events.filter(e => e.type === 'subtask.requeued' && /not acknowledged|timed out/.test(String((e as { reason?: string }).reason)))).toEqual([]);
    expectHonest(result, s.events, subtasks.map(t => t.id), ['h-0', 'h-1']);
    expect(quarantined(s.events).filter(id => id.startsWith('h-'))).toEqual([]);
  });
});

describe('a binary heartbeat whose incarnation flaps', () => {
  it('a rogue that claims a restart with every beat (2,000 of them during a task) only loses its own work; the honest agents finish the task, each subtask once', async () => {
    const s = await start();
    const r = await rogue(s.service.url, 'flapper', { capabilities: ['work'] });
    r.stopBeats();
    let taken = 0;
    r.onFrame(m => {
      if (m.type !== 'envelope' || m.kind !== 'assign') return;
      const body = m.body as { via: string[]; subtask: { id: string }; attempt: number; taskId?: string };
      if (body.via.length > 0) return void r.send(envelope('flapper', body.via[0] as string, 'assign', { ...body, via: body.via.slice(1) }));
      taken++;
      r.send(envelope('flapper', 'coordinator', 'progress', { taskId: body.taskId, subtaskId: body.subtask.id, attempt: body.attempt, progress: 0 }));
    });
    await agents(s.service.url, ['h-0', 'h-1'], ['work']);
    const subtasks = work(20, 'flap', { sleepMs: 20 });
    const task = submitTask({ url: s.service.url, token: TOKEN, task: { id: 'flap', subtasks } });
    await s.event(e => e.type === 'subtask.assigned', 'the first assignment');
    for (let i = 2; i < 2002; i++) sendBinary(r, beat('coordinator', { load: 0, incarnation: i }));
    const result = await bounded(task, s.events);
    expectHonest(result, s.events, subtasks.map(t => t.id), ['h-0', 'h-1']);
    expect(quarantined(s.events).filter(id => id.startsWith('h-'))).toEqual([]);
    expect(errorFrame(r)).toBeUndefined();
  });
});

describe('arbitrary binary frames from joined agents (fast-check, over real sockets)', () => {
  it('each is taken (the connection stays and its next JSON frame is answered) or refused with 1003/1007 and an error frame; the service finishes a task afterwards', async () => {
    const s = await start();
    await agents(s.service.url, ['h-0', 'h-1'], ['work']);
    const header = fc.tuple(fc.constantFrom(BEAT_FRAME, 0, 2, 0x7b, 255), fc.nat(31), fc.nat(255), fc.nat(255)).map(h => Buffer.from(h));
    const frame = fc.oneof(
      fc.uint8Array({ maxLength: 64 }).map(a => Buffer.from(a)),
      fc.tuple(header, fc.uint8Array({ maxLength: 300 })).map(([h, rest]) => Buffer.concat([h, Buffer.from(rest)])),
      // Valid frames with one byte flipped.
      fc.tuple(fc.nat(200), fc.nat(255)).map(([at, byte]) => {
        const b = Buffer.from(beat('coordinator', { load: 0.5, status: 'ok', incarnation: 3, usage: { fraction: 0.25, what: 'tokens' } }));
        b[at % b.length] = byte;
        return b;
      }),
    );
    let n = 0;
    await fc.assert(
      fc.asyncProperty(frame, async bytes => {
        const id = `fuzz-${n++}`;
        const r = await raw(s.service.url);
        await hello(r, id);
        sendBinary(r, bytes);
        r.send(envelope(id, id, 'heartbeat', { load: 0, incarnation: 1 })); // echoed back only if the connection survived
        const outcome = await Promise.race([r.closed.then(c => ({ closed: c.code })), r.frame(m => m.type === 'envelope' && m.kind === 'heartbeat').then(() => ({ open: true }))]);
        if ('closed' in outcome) {
          expect([WS_CLOSE.invalidPayload, WS_CLOSE.unsupportedData]).toContain(outcome.closed);
          expect(errorFrame(r)).toMatchObject({ code: outcome.closed });
        } else {
          expect(errorFrame(r)).toBeUndefined();
        }
        r.socket.terminate();
      }),
      { numRuns: Number(process.env.RXSWARM_PROPERTY_RUNS ?? 120) },
    );
    await stillServes(s, ['h-0', 'h-1'], 'after-fuzz');
  });

  it('a binary heartbeat split into WebSocket fragments is read as one frame', async () => {
    const s = await start();
    const r = await raw(s.service.url);
    await hello(r, 'fragmented');
    const peer = await raw(s.service.url);
    await hello(peer, 'peer');
    const whole = beat('peer', { load: 2, incarnation: 5, usage: { fraction: 0.5, what: 'memory' } });
    r.socket.send(whole.subarray(0, 10), { binary: true, fin: false });
    r.socket.send(whole.subarray(10, 30), { binary: true, fin: false });
    r.socket.send(whole.subarray(30), { binary: true, fin: true });
    const got = await peer.frame(m => m.type === 'envelope' && m.kind === 'heartbeat');
    expect((got as { body: unknown }).body).toEqual({ load: 2, incarnation: 5, usage: { fraction: 0.5, what: 'memory' } });
  });
});
