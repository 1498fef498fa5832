import { connect, type Socket } from 'node:net';
import { runInNewContext } from 'node:vm';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import fc from 'fast-check';
import { WebSocket } from 'ws';
import type { CoordinationEvent, CoordinationResult } from '../../src/events.js';
import { submitTask } from '../../src/remote.js';
import type { ServiceOptions } from '../../src/service.js';
import { WS_CLOSE, decode, nestingDepth } from '../../streams/wsCodec.js';
import type { Raw } from './rawSocket.js';
import { TOKEN, WAIT_MS, agents, bounded, cleanUp, cleanups, envelope, quarantined, raw, rogue, start, until } from './attackKit.js';

// Attacks on the coordinator's WebSocket edge, in this process over real loopback sockets: a
// Service, honest agents (startAgent) and hand-driven hostile sockets. Every wait is on an event,
// bounded; the server's own timeouts are set small through its options rather than waited out.
const RUNS = Number(process.env.RXSWARM_PROPERTY_RUNS ?? 300);

afterEach(cleanUp);

const work = (n: number, prefix = 's', payload: unknown = { sleepMs: 5 }) => Array.from({ length: n }, (_, i) => ({ id: `${prefix}-${i}`, payload }));

/** Every subtask completed exactly once, by an honest agent, with the built-in worker's honest value. */
function expectHonest(result: CoordinationResult, ids: readonly string[], honest: readonly string[]): void {
  expect(result.failed).toEqual({});
  expect(result.success).toBe(true);
  expect(Object.keys(result.results).sort()).toEqual([...ids].sort());
  for (const id of ids) expect(result.results[id]).toMatchObject({ subtaskId: id, agentId: expect.toSatisfy((a: string) => honest.includes(a)) });
}

function completedOnce(events: readonly CoordinationEvent[], ids: readonly string[]): void {
  const completed = events.filter(e => e.type === 'subtask.completed').map(e => (e as { subtaskId: string }).subtaskId);
  expect(completed.sort()).toEqual([...ids].sort());
}

// ---- raw TCP helpers -------------------------------------------------------------------------

function tcp(port: number): Promise<{ socket: Socket; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    const closed = new Promise<void>(r => socket.once('close', () => r()));
    cleanups.push(() => socket.destroy());
    socket.once('connect', () => resolve({ socket, closed }));
    socket.once('error', reject);
  });
}

/** Upgrades a raw TCP socket by hand (a client that will then write frames byte by byte). */
async function upgraded(port: number): Promise<{ socket: Socket; closed: Promise<void>; received: () => Buffer }> {
  const { socket, closed } = await tcp(port);
  let data = Buffer.alloc(0);
  socket.on('data', chunk => (data = Buffer.concat([data, chunk])));
  socket.write(
    'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  );
  await until('the 101', check => (socket.on('data', check), () => socket.off('data', check)), () => (data.includes('\r\n\r\n') ? true : undefined));
  expect(data.toString('latin1')).toMatch(/^HTTP\/1\.1 101/);
  const head = data.indexOf('\r\n\r\n') + 4;
  return { socket, closed, received: () => data.subarray(head) };
}

/** The header of a masked text frame of `length` payload bytes (64-bit length form). */
function frameHeader(length: number): Buffer {
  const header = Buffer.alloc(14);
  header[0] = 0x81; // FIN, text
  header[1] = 0x80 | 127; // masked, 64-bit length
  header.writeBigUInt64BE(BigInt(length), 2);
  header.writeUInt32BE(0, 10); // mask key 0: the payload is sent as is
  return header;
}

/** The close code in the first server frame of `bytes`, if it is a close frame. */
function closeCodeOf(bytes: Buffer): number | undefined {
  let at = 0;
  while (at + 2 <= bytes.length) {
    const opcode = (bytes[at] as number) & 0x0f;
    let length = (bytes[at + 1] as number) & 0x7f;
    let start = at + 2;
    if (length === 126) {
      length = bytes.readUInt16BE(at + 2);
      start += 2;
    } else if (length === 127) {
      length = Number(bytes.readBigUInt64BE(at + 2));
      start += 8;
    }
    if (opcode === 0x8) return start + 2 <= bytes.length ? bytes.readUInt16BE(start) : undefined;
    at = start + length;
  }
  return undefined;
}

// ---- 5. connections without the token ---------------------------------------------------------

describe('without the token: every stage of a connection is time-boxed and capped', () => {
  it('a TCP connection that never sends the upgrade is closed after handshakeTimeoutMs', async () => {
    const { service } = await start({ handshakeTimeoutMs: 150 });
    const { socket, closed } = await tcp(service.port);
    await until('the server to close it', check => (void closed.then(check), () => undefined), () => (socket.destroyed ? true : undefined), WAIT_MS);
    expect(socket.destroyed).toBe(true);
  });

  it('beyond maxPendingConnections unauthenticated connections are refused at once; an honest agent joins once they time out and the task runs', async () => {
    const { service, event } = await start({ maxPendingConnections: 24, handshakeTimeoutMs: 600, helloTimeoutMs: 600 });
    const port = service.port;
    // Half of them never upgrade, half upgrade and never say hello: both count as pending.
    const squatters = await Promise.all(Array.from({ length: 12 }, () => tcp(port)));
    const mute = await Promise.all(Array.from({ length: 12 }, () => raw(service.url)));
    // One more is refused at once, while every squatter still holds its connection.
    const extra = await tcp(port);
    await extra.closed;
    expect(squatters.every(s => !s.socket.destroyed)).toBe(true);
    expect(mute.every(m => m.socket.readyState === WebSocket.OPEN)).toBe(true);
    await event(e => e.type === 'rejected' && /maxPendingConnections 24/.test(e.error));
    // An honest agent keeps trying and joins once the squatters have timed out.
    const [honest] = await agents(service.url, ['h-0']);
    await Promise.all(squatters.map(s => s.closed));
    for (const m of mute) expect((await m.closed).code).toBe(WS_CLOSE.handshakeTimeout);
    expect(honest?.network.state).toBe('open');
    const result = await submitTask({ url: service.url, token: TOKEN, task: { id: 'after-flood', subtasks: work(4) } });
    expectHonest(result, work(4).map(s => s.id), ['h-0']);
  });

  it('a frame above preHelloMaxBytes is cut at its header (1009) before its payload is sent', async () => {
    const { service } = await start();
    const { socket, closed, received } = await upgraded(service.port);
    // The header of a 60 MiB frame and 1 KiB of it: the rest is never sent, so only a refusal
    // from the header alone can close the connection.
    socket.write(frameHeader(60 * 1024 * 1024));
    socket.write(Buffer.alloc(1024, 0x61));
    await closed;
    expect(closeCodeOf(received())).toBe(WS_CLOSE.tooBig);
    expect(service.server.remoteAgents.size).toBe(0);
  });

  it('a frame of exactly 64 KiB is read before hello, one byte more is not', async () => {
    const { service } = await start();
    const within = await raw(service.url);
    within.send(' '.repeat(64 * 1024)); // read and refused as JSON (1007), not for its size
    expect((await within.closed).code).toBe(WS_CLOSE.invalidPayload);
    const over = await raw(service.url);
    over.send(' '.repeat(64 * 1024 + 1));
    expect((await over.closed).code).toBe(WS_CLOSE.tooBig);
  });
});

// ---- 6. peers that stop reading -----------------------------------------------------------------

describe('a peer that stops reading is cut', () => {
  /** A joined agent that stops reading its socket, and another that fills it through the relay. */
  async function stalled(options: Partial<ServiceOptions>) {
    const started = await start(options);
    const reader = await rogue(started.service.url, 'sleeper');
    const writer = await rogue(started.service.url, 'flooder');
    reader.socket.pause();
    const chunk = 'x'.repeat(512 * 1024);
    let sent = 0;
    // Big relayed frames to the sleeper until the server gives up on it (bounded: 256 MiB).
    const flood = setInterval(() => {
      if (sent >= 512 || writer.socket.readyState !== WebSocket.OPEN) return clearInterval(flood);
      for (let i = 0; i < 8; i++, sent++) writer.send(envelope('flooder', 'sleeper', 'assign', { via: [], subtask: { id: `f-${sent}`, payload: chunk }, attempt: sent, replyPath: ['coordinator'] }));
    }, 5);
    cleanups.push(() => clearInterval(flood));
    return { ...started, reader, writer, stop: () => clearInterval(flood), sent: () => sent };
  }

  it('at once when more than maxBufferedBytes wait after a send', async () => {
    const { service, event, stop } = await stalled({ maxBufferedBytes: 4 * 1024 * 1024 });
    const cut = await event(e => e.type === 'rejected' && e.agentId === 'sleeper' && e.code === 1006);
    stop();
    expect(cut).toMatchObject({ error: expect.stringMatching(/maxBufferedBytes 4194304/) });
    await event(e => e.type === 'disconnected' && e.agentId === 'sleeper');
    expect(service.server.buffered('sleeper')).toBe(0);
    expect(service.server.remoteAgents.has('sleeper')).toBe(false);
  });

  it('after drainTimeoutMs when its unread bytes stop going down, however few', async () => {
    const { service, event, stop, sent } = await stalled({ maxBufferedBytes: 1024 * 1024 * 1024, drainTimeoutMs: 300 });
    // Stop flooding once a few MiB wait: below maxBufferedBytes, only the drain timeout can cut it.
    await until('a backlog', check => {
      const t = setInterval(check, 10);
      return () => clearInterval(t);
    }, () => (service.server.buffered('sleeper') > 2 * 1024 * 1024 ? true : undefined));
    stop();
    const cut = await event(e => e.type === 'rejected' && e.agentId === 'sleeper' && e.code === 1006);
    expect(cut).toMatchObject({ error: expect.stringMatching(/drainTimeoutMs 300/) });
    await event(e => e.type === 'disconnected' && e.agentId === 'sleeper');
    expect(service.server.buffered('sleeper')).toBe(0);
    expect(sent()).toBeLessThan(512);
  });
});

// ---- 1. deep JSON -----------------------------------------------------------------------------

describe('deep JSON', () => {
  const deep = (n: number): string => '['.repeat(n) + ']'.repeat(n);

  it('a 10 KB frame nested 5,000 deep, from an agent to a peer and from a client, is refused with 1007; the server finishes the task', async () => {
    const { service, events } = await start();
    await agents(service.url, ['h-0', 'h-1']);
    const task = submitTask({ url: service.url, token: TOKEN, task: { id: 'deep', subtasks: work(20, 's', { sleepMs: 20 }) } });
    const attackers = await Promise.all([rogue(service.url, 'deep-assign'), rogue(service.url, 'deep-result')]);
    const [a, b] = attackers as [Raw, Raw];
    a.send(`{"v":1,"type":"envelope","from":"deep-assign","to":"h-0","kind":"assign","body":{"via":[],"attempt":1,"replyPath":["coordinator"],"subtask":{"id":"x","payload":${deep(5000)}}}}`);
    b.send(`{"v":1,"type":"envelope","from":"deep-result","to":"h-1","kind":"result","body":{"via":["coordinator"],"subtaskId":"s-0","attempt":1,"agentId":"h-1","ok":true,"value":${deep(5000)}}}`);
    const client = await raw(service.url);
    client.send({ v: 1, type: 'hello', agentId: 'deep-client', capabilities: [], token: TOKEN, role: 'client' });
    await client.frame(m => m.type === 'join');
    client.send(`{"v":1,"type":"envelope","from":"deep-client","to":"tasks","kind":"submit","body":{"task":{"id":"d","subtasks":[{"id":"p","payload":${deep(5000)}}]}}}`);
    for (const r of [a, b, client]) expect(await r.closed).toEqual({ code: WS_CLOSE.invalidPayload, reason: 'nested deeper than 64 levels' });
    expectHonest(await task, work(20).map(s => s.id), ['h-0', 'h-1']);
    completedOnce(events, work(20).map(s => s.id));
    const next = await submitTask({ url: service.url, token: TOKEN, task: { id: 'after-deep', subtasks: work(3, 'n') } });
    expectHonest(next, work(3, 'n').map(s => s.id), ['h-0', 'h-1']);
  });
});

// ---- 2, 3. malicious agents holding the token ---------------------------------------------------

/** Capabilities that make an agent the star's hub (the leadership score's). */
const LEADER = ['task_delegation', 'resource_allocation', 'conflict_resolution'];

describe('a token-holding agent cannot stall a task', () => {
  it('claiming 1024 slots, acknowledging with fake progress and never returning a result: one slot at a time, cut at the task timeoutMs, quarantined; the task completes on honest agents', async () => {
    const { service, events } = await start({ coordinator: { topology: 'star', heartbeat: { intervalMs: 100 } } });
    const staller = await rogue(service.url, 'staller', { capabilities: ['work', ...LEADER], slots: 1024 });
    const held = new Set<string>();
    let mostHeld = 0;
    // Attempts it was given (a copy sent again, its acknowledgement late on a loaded machine, is the same attempt).
    const assigned = new Set<number>();
    staller.onFrame(m => {
      if (m.type !== 'envelope') return;
      const body = m.body as { via?: string[]; subtask?: { id: string }; subtaskId?: string; attempt: number };
      if (body.via === undefined) return;
      if (body.via.length > 0) return staller.send(envelope('staller', body.via[0] as string, m.kind, { ...body, via: body.via.slice(1) })); // relays honestly
      if (m.kind === 'assign' && body.subtask !== undefined) {
        assigned.add(body.attempt);
        held.add(body.subtask.id);
        mostHeld = Math.max(mostHeld, held.size);
        for (const p of [0, 0.5, 0.9]) staller.send(envelope('staller', 'coordinator', 'progress', { subtaskId: body.subtask.id, attempt: body.attempt, progress: p }));
      }
      if (m.kind === 'cancel' && body.subtaskId !== undefined) held.delete(body.subtaskId);
    });
    await agents(service.url, ['h-0', 'h-1'], ['work']);
    // Long enough (about 1.2 s on the two honest agents) for two of the staller's attempts to time out.
    const subtasks = work(40, 's', { sleepMs: 60 }).map(s => ({ ...s, capabilities: ['work'] }));
    const result = await bounded(submitTask({ url: service.url, token: TOKEN, task: { id: 'stall', subtasks, timeoutMs: 400 } }), events);
    expectHonest(result, subtasks.map(s => s.id), ['h-0', 'h-1']);
    completedOnce(events, subtasks.map(s => s.id));
    expect(mostHeld).toBe(1); // granted one slot, never earned another
    expect(assigned.size).toBeLessThanOrEqual(2);
    expect(events).toContainEqual(expect.objectContaining({ type: 'agent.quarantined', agentId: 'staller', reason: expect.stringMatching(/ran past their limit/) }));
    expect(quarantined(events)).toEqual(['staller']);
  });

  it('never acknowledging: quarantined after 3 unacknowledged assignments; the task completes on honest agents', async () => {
    const { service, events } = await start({ coordinator: { topology: 'star', heartbeat: { intervalMs: 100 }, ackTimeoutMs: 150 } });
    // Honest agents first: the star's hub is the first agent admitted, and this one is a spoke.
    await agents(service.url, ['h-0', 'h-1'], ['work']);
    const mute = await rogue(service.url, 'mute', { capabilities: ['work'], slots: 1024 });
    // Attempts it was given: each is sent again on its retransmission timeout before it is given up.
    const assigned = new Set<number>();
    mute.onFrame(m => {
      if (m.type === 'envelope' && m.kind === 'assign') assigned.add((m.body as { attempt: number }).attempt);
    });
    // About 0.9 s on the two honest agents: three acknowledgement timeouts fit in it.
    const subtasks = work(30, 's', { sleepMs: 60 }).map(s => ({ ...s, capabilities: ['work'] }));
    const result = await bounded(submitTask({ url: service.url, token: TOKEN, task: { id: 'mute', subtasks } }), events);
    expectHonest(result, subtasks.map(s => s.id), ['h-0', 'h-1']);
    completedOnce(events, subtasks.map(s => s.id));
    expect(events).toContainEqual(expect.objectContaining({ type: 'agent.quarantined', agentId: 'mute', reason: expect.stringMatching(/3 assignments in a row not acknowledged/) }));
    // One assignment through the hub (charged to the relay, then probed straight), three straight ones.
    expect(assigned.size).toBeLessThanOrEqual(4);
    expect(quarantined(events)).toEqual(['mute']);
  });
});

describe('a token-holding agent cannot forge, nor frame honest agents', () => {
  // BUG: the other side of the charge above. With one honest agent (the hub, admitted first) and a
  // mute spoke, every assignment to the spoke goes unacknowledged through the honest hub, which is
  // charged for it and quarantined after three; the mute spoke then becomes the hub, is quarantined
  // in turn, and the task's subtasks fail as orphans.
  it('a mute spoke does not get its honest hub quarantined', async () => {
    const { service, events } = await start({ coordinator: { topology: 'star', heartbeat: { intervalMs: 100 }, ackTimeoutMs: 150, orphanTimeoutMs: 1500 } });
    await agents(service.url, ['h-0'], ['work']);
    await rogue(service.url, 'mute', { capabilities: ['work'] });
    const subtasks = work(16, 's', { sleepMs: 60 }).map(s => ({ ...s, capabilities: ['work'] }));
    const result = await bounded(submitTask({ url: service.url, token: TOKEN, task: { id: 'mute-spoke', subtasks } }), events);
    expect(quarantined(events)).toEqual(['mute']);
    expectHonest(result, subtasks.map(s => s.id), ['h-0']);
  });

  // Results relayed: a hierarchy's root (a star's results come straight back, past its hub). With the
  // rogue and two honest agents, the tree is the root over one group.
  it('forged results from the hierarchy root it relays for are rejected, the root is quarantined, the task completes with honest values', async () => {
    const { service, events } = await start({ coordinator: { topology: 'hierarchical', heartbeat: { intervalMs: 100 }, ackTimeoutMs: 500 } });
    const hub = await rogue(service.url, 'hub', { capabilities: LEADER });
    let forged = 0;
    hub.onFrame(m => {
      if (m.type !== 'envelope' || m.kind !== 'assign') return;
      const body = m.body as { via: string[]; subtask: { id: string }; attempt: number };
      if (body.via.length === 0) return;
      // Relays the assignment (so the spoke acknowledges) and reports a forged result for it at once.
      hub.send(envelope('hub', body.via[0] as string, 'assign', { ...body, via: body.via.slice(1) }));
      forged++;
      hub.send(envelope('hub', 'coordinator', 'result', { via: [], subtaskId: body.subtask.id, attempt: body.attempt, agentId: body.via[0], ok: true, value: { subtaskId: body.subtask.id, agentId: body.via[0], forged: true } }));
    });
    await agents(service.url, ['h-0', 'h-1'], ['work']);
    const subtasks = work(30, 's', { sleepMs: 10 }).map(s => ({ ...s, capabilities: ['work'] }));
    const result = await bounded(submitTask({ url: service.url, token: TOKEN, task: { id: 'forged', subtasks } }), events);
    expect(forged).toBeGreaterThan(0);
    expectHonest(result, subtasks.map(s => s.id), ['h-0', 'h-1']);
    for (const v of Object.values(result.results)) expect(v).not.toHaveProperty('forged');
    completedOnce(events, subtasks.map(s => s.id));
    expect(quarantined(events)).toEqual(['hub']);
  });

  // Framing: an honest agent relays anything with a non-empty `via`, so the node that delivers a
  // forged result may only have carried it. A forged result is rejected and no one is blamed for it.
  it('a forged result bounced through honest agents (via: [coordinator]) does not get them quarantined', async () => {
    const { service, events } = await start({ coordinator: { topology: 'star', heartbeat: { intervalMs: 100 }, orphanTimeoutMs: 1500 } });
    const framer = await rogue(service.url, 'framer');
    const honest = ['h-0', 'h-1', 'h-2'];
    await agents(service.url, honest, ['work']);
    const subtasks = work(20, 's', { sleepMs: 100 }).map(s => ({ ...s, capabilities: ['work'] }));
    const task = submitTask({ url: service.url, token: TOKEN, task: { id: 'framed', subtasks } });
    await until('the first assignment', check => {
      const t = setInterval(check, 5);
      return () => clearInterval(t);
    }, () => events.find(e => e.type === 'subtask.assigned'));
    for (const h of honest) framer.send(envelope('framer', h, 'result', { via: ['coordinator'], subtaskId: 's-0', attempt: 1, agentId: 'nobody', ok: true, value: 'x' }));
    const result = await bounded(task, events);
    expect(quarantined(events).filter(id => honest.includes(id))).toEqual([]);
    expectHonest(result, subtasks.map(s => s.id), honest);
  });

  // Framing by a relay: a hierarchy's root that relays assignments but drops the results, with the
  // task's timeoutMs shorter than the transit check (ackTimeoutMs): the members said their results
  // were on their way (progress `done`), so the attempt's timeout charges the relays, not the members.
  it('a hierarchy root that drops the results it relays is routed around; the honest members are not quarantined', async () => {
    const { service, events } = await start({ coordinator: { topology: 'hierarchical', heartbeat: { intervalMs: 100 }, orphanTimeoutMs: 1500 } });
    const hub = await rogue(service.url, 'dropper', { capabilities: LEADER });
    hub.onFrame(m => {
      if (m.type !== 'envelope' || m.kind === 'result') return; // results die here
      const body = m.body as { via?: string[] };
      if (body.via !== undefined && body.via.length > 0) hub.send(envelope('dropper', body.via[0] as string, m.kind, { ...body, via: body.via.slice(1) }));
    });
    const honest = ['h-0', 'h-1'];
    await agents(service.url, honest, ['work']);
    const subtasks = work(12, 's', { sleepMs: 10 }).map(s => ({ ...s, capabilities: ['work'] }));
    const result = await bounded(submitTask({ url: service.url, token: TOKEN, task: { id: 'dropped', subtasks, timeoutMs: 300 } }), events);
    expect(quarantined(events).filter(id => honest.includes(id))).toEqual([]);
    expectHonest(result, subtasks.map(s => s.id), honest);
  });

  it('a hierarchy root that drops the results it relays, with timeoutMs above ackTimeoutMs: the relay is charged, the task completes', async () => {
    const { service, events } = await start({ coordinator: { topology: 'hierarchical', heartbeat: { intervalMs: 100 }, ackTimeoutMs: 150, orphanTimeoutMs: 1500 } });
    const hub = await rogue(service.url, 'dropper', { capabilities: LEADER });
    hub.onFrame(m => {
      if (m.type !== 'envelope' || m.kind === 'result') return;
      const body = m.body as { via?: string[] };
      if (body.via !== undefined && body.via.length > 0) hub.send(envelope('dropper', body.via[0] as string, m.kind, { ...body, via: body.via.slice(1) }));
    });
    const honest = ['h-0', 'h-1'];
    await agents(service.url, honest, ['work']);
    const subtasks = work(12, 's', { sleepMs: 10 }).map(s => ({ ...s, capabilities: ['work'] }));
    const result = await bounded(submitTask({ url: service.url, token: TOKEN, task: { id: 'dropped-late', subtasks, timeoutMs: 2000 } }), events);
    expect(quarantined(events)).toEqual(['dropper']);
    expectHonest(result, subtasks.map(s => s.id), honest);
  });

  it('a star hub that drops the assignments it relays is routed around; the honest spokes are not quarantined', async () => {
    const { service, events } = await start({ coordinator: { topology: 'star', heartbeat: { intervalMs: 100 }, ackTimeoutMs: 150, orphanTimeoutMs: 1500 } });
    await rogue(service.url, 'sink', { capabilities: LEADER }); // relays nothing, runs nothing
    const honest = ['h-0', 'h-1', 'h-2'];
    await agents(service.url, honest, ['work']);
    const subtasks = work(12, 's', { sleepMs: 10 }).map(s => ({ ...s, capabilities: ['work'] }));
    const result = await bounded(submitTask({ url: service.url, token: TOKEN, task: { id: 'sunk', subtasks } }), events);
    expect(quarantined(events).filter(id => honest.includes(id))).toEqual([]);
    expectHonest(result, subtasks.map(s => s.id), honest);
  });
});

// ---- 9. memory per finished task -------------------------------------------------------------

describe('memory', () => {
  it('a service running 400 small tasks in sequence keeps no heap per finished task beyond the results it retains', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    // Data only: compiled code grows while the JIT warms up (a heap snapshot diff of tasks 300 to
    // 900 shows only code, deopt data and the weak lists that index it), and is not retained per task.
    const heap = (): number => {
      for (let i = 0; i < 3; i++) gc();
      return getHeapSpaceStatistics().reduce((sum, s) => (s.space_name.startsWith('code') ? sum : sum + s.space_used_size), 0);
    };
    // Finished tasks are kept for attach and tasks, at most maxRetainedTasks of them: 50 here, all
    // retained by task 100, so what grows after it is what is not let go.
    const { service } = await start({ coordinator: { maxRetainedTasks: 50 } }, false);
    await agents(service.url, ['m-0', 'm-1']);
    const task = (i: number) => ({ id: `mem-${i}`, subtasks: [{ id: 'a', payload: { sleepMs: 0 } }, { id: 'b', payload: { n: i } }, { id: `c-${i}`, payload: { sleepMs: 0 } }] });
    let at100 = 0;
    for (let i = 1; i <= 400; i++) {
      const result = await submitTask({ url: service.url, token: TOKEN, task: task(i) });
      expect(result.success).toBe(true);
      if (i === 100) at100 = heap();
    }
    const at400 = heap();
    const perTask = (at400 - at100) / 300;
    console.log(`heap (data, code excluded) after task 100: ${(at100 / 1e6).toFixed(2)} MB, after task 400: ${(at400 / 1e6).toFixed(2)} MB: ${perTask.toFixed(0)} bytes per task`);
    // Measured here 1.5–1.7 KB per task, and none of it is data kept for a task: a heap snapshot
    // diff of tasks 50 to 300 in a plain node process shows only the JIT's weak lists (47 KB) and
    // one array (12 KB). Inside vitest the figure cannot go below ~1.5 KB; the 4–7 KB per task of
    // the leak this guards against is well above the bound (the JIT's share shrinks as it warms:
    // measured from task 100 on, with room for a loaded machine).
    expect(perTask).toBeLessThan(3072);
  }, 60_000);
});

// ---- 10. decode under hostile JSON ---------------------------------------------------------------

describe('decode under hostile JSON (fast-check)', () => {
  const CODES = new Set<number>(Object.values(WS_CLOSE));
  const ESCAPES = ['\\"', '\\\\', '\\u0000', '\\ud800', '\\/', '\\n', '[', ']', '{', '}', '"', '\\u005b', '\\u0022'];
  /** A JSON string literal full of brackets and escapes (valid or not). */
  const hostileString = fc.array(fc.constantFrom(...ESCAPES, 'a', '__proto__'), { maxLength: 40 }).map(parts => `"${parts.join('')}"`);
  const edgeNumber = fc.constantFrom('0', '-0', '1e308', '-1e308', '1e309', '5e-324', '1e-400', '9007199254740993', '-9007199254740993', '1.7976931348623157e308', '0.1', '123456789012345678901234567890');
  const key = fc.constantFrom('"__proto__"', '"constructor"', '"prototype"', '"toString"', '"hasOwnProperty"', '"a"', '"via"', '"[{"');
  /** Any JSON text (valid when the leaves are), at most `depth` levels deep. */
  const value = (depth: number): fc.Arbitrary<string> =>
    depth <= 0
      ? fc.oneof(hostileString, edgeNumber, fc.constantFrom('true', 'null', '"x"'))
      : fc.oneof(
          { weight: 2, arbitrary: value(0) },
          { weight: 1, arbitrary: fc.array(value(depth - 1), { maxLength: 4 }).map(items => `[${items.join(',')}]`) },
          { weight: 1, arbitrary: fc.array(fc.tuple(key, value(depth - 1)), { maxLength: 4 }).map(entries => `{${entries.map(([k, v]) => `${k}:${v}`).join(',')}}`) },
        );
  /** Nested `n` levels of arrays or objects around `inner`. */
  const nest = (n: number, kind: 'array' | 'object' | 'mixed', inner: string): string => {
    let out = inner;
    for (let i = 0; i < n; i++) out = kind === 'array' || (kind === 'mixed' && i % 2 === 0) ? `[${out}]` : `{"__proto__":${out}}`;
    return out;
  };
  const deepValue = fc.record({ n: fc.oneof(fc.integer({ min: 0, max: 70 }), fc.integer({ min: 60, max: 20_000 })), kind: fc.constantFrom('array' as const, 'object' as const, 'mixed' as const), inner: value(2) }).map(({ n, kind, inner }) => nest(n, kind, inner));
  const wide = fc.integer({ min: 0, max: 20_000 }).map(n => `[${Array.from({ length: n }, () => '0').join(',')}]`);
  const huge = fc.integer({ min: 0, max: 1_200_000 }).map(n => `"${'['.repeat(n)}"`);
  const filler = fc.oneof({ weight: 4, arbitrary: deepValue }, { weight: 2, arbitrary: value(3) }, { weight: 1, arbitrary: wide }, { weight: 1, arbitrary: huge });
  /** Frames whose shape is valid whatever `v` is (a JSON value): depth decides. */
  const templates: Array<(v: string) => string> = [
    v => `{"v":1,"type":"envelope","from":"a","to":"b","kind":"assign","body":{"via":[],"attempt":1,"replyPath":["coordinator"],"subtask":{"id":"s","payload":${v}}}}`,
    v => `{"v":1,"type":"envelope","from":"a","to":"coordinator","kind":"result","body":{"via":[],"subtaskId":"s","attempt":1,"agentId":"a","ok":true,"value":${v}}}`,
    v => `{"v":1,"type":"envelope","from":"c","to":"tasks","kind":"submit","body":{"task":{"id":"t","subtasks":[{"id":"s","payload":${v}}]}}}`,
    v => `{"v":1,"type":"envelope","from":"a","to":"b","kind":"vote","body":{"proposalId":"p","accept":true,"extra":${v}}}`,
  ];
  /** Frames of any shape: the decoder must still answer with a close code. */
  const anyShape: Array<(v: string) => string> = [
    v => v,
    v => `{"v":1,"type":"hello","agentId":${v},"capabilities":[],"token":"t"}`,
    v => `{"v":1,"type":"envelope","from":"a","to":"b","kind":${v},"body":${v}}`,
    v => `{"v":${v},"type":"leave"}`,
    v => `{"__proto__":{"v":1},"type":"leave","v":1,"x":${v}}`,
    v => v.slice(0, Math.floor(v.length / 2)), // truncated
  ];

  it('never throws, never overflows the stack, answers { ok } or a WS_CLOSE code; a well-shaped frame passes exactly when it nests at most 64 deep', () => {
    fc.assert(
      fc.property(filler, fc.nat(templates.length - 1), fc.nat(anyShape.length - 1), fc.boolean(), (v, t, a, shaped) => {
        const text = shaped ? (templates[t] as (v: string) => string)(v) : (anyShape[a] as (v: string) => string)(v);
        const decoded = decode(text);
        expect(typeof decoded.ok).toBe('boolean');
        if (!decoded.ok) {
          expect(CODES.has(decoded.closeCode)).toBe(true);
          expect(typeof decoded.error).toBe('string');
        }
        if (!shaped) return true;
        let parses = true;
        try {
          JSON.parse(v);
        } catch {
          parses = false;
        }
        const bytes = Buffer.byteLength(text, 'utf8');
        if (bytes > 1024 * 1024) expect(decoded).toMatchObject({ ok: false, closeCode: WS_CLOSE.tooBig });
        else if (nestingDepth(text) > 64) expect(decoded).toMatchObject({ ok: false, closeCode: WS_CLOSE.invalidPayload, error: 'nested deeper than 64 levels' });
        else if (parses) expect(decoded).toMatchObject({ ok: true });
        else expect(decoded).toMatchObject({ ok: false, closeCode: WS_CLOSE.invalidPayload });
        return true;
      }),
      { numRuns: RUNS },
    );
  });
});
