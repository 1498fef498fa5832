import { WebSocket } from 'ws';
import { AckTracker } from '../../src/ackTracker.js';
import { lineLimit } from '../../operators/internal/lineLimit.js';
import { submitTask } from '../../src/remote.js';
import type { AssignBody, ResultBody } from '../../streams/protocol.js';
import { VirtualScheduler } from '../../streams/virtualScheduler.js';
import type { WireMessage } from '../../streams/wsCodec.js';
import { WsServerNetwork } from '../../streams/wsNetwork.js';
import { cliProcesses } from './cliProcesses.js';
import { agents, bounded, type AnyEvent, cleanUp, cleanups, envelope, expectHonest, quarantined, rogue, start, until, work, TOKEN, WAIT_MS } from '../streams/attackKit.js';

// More attacks on the coordinator, on what the earlier attack specs leave out: token-holding
// agents and strangers over real sockets (a Service, or a real `serve` process), and the timing
// they could sway in virtual time. Every wait is bounded; every server, process and socket is
// closed after each test.
afterEach(cleanUp);

const assignOf = (m: WireMessage): AssignBody | undefined => (m.type === 'envelope' && m.kind === 'assign' ? (m.body as AssignBody) : undefined);

describe('a result bounced through the agent it names', () => {
  // An honest agent relays anything whose `via` goes on. A result naming that agent itself, sent to
  // it with `via: [coordinator]`, would leave it as the agent's own: straight from its connection
  // (taken unchecked) and signed by its transport with its session key.
  it('is not passed on by that agent: each subtask completes with its honest value', async () => {
    const s = await start();
    const honest = ['h-0', 'h-1', 'h-2'];
    await agents(s.service.url, honest, ['work']); // first: one of them is the hub
    const framer = await rogue(s.service.url, 'framer');
    const subtasks = work(6, 'b', { sleepMs: 300 });
    const task = submitTask({ url: s.service.url, token: TOKEN, task: { id: 'bounced', subtasks } });
    await s.event(e => e.type === 'subtask.assigned', 'the first assignment');
    let sent = 0;
    // Attempt tokens are small integers: every guess, for every agent, sent through that agent.
    for (let attempt = 1; attempt <= 16; attempt++) {
      for (const { id } of subtasks) {
        for (const agentId of honest) {
          const claim = { via: ['coordinator'], taskId: 'bounced', subtaskId: id, attempt, agentId, ok: true, value: { subtaskId: id, agentId, forged: true } } as ResultBody;
          framer.send(envelope('framer', agentId, 'result', claim));
          sent++;
        }
      }
    }
    const result = await bounded(task, s.events);
    expect(sent).toBe(288);
    for (const v of Object.values(result.results)) expect(v).not.toHaveProperty('forged');
    expectHonest(result, s.events, subtasks.map(t => t.id), honest);
    expect(quarantined(s.events).filter(id => honest.includes(id))).toEqual([]);
  });
});

describe('an agent that names the first copy in its late acknowledgements', () => {
  // The engine passes an acknowledgement's `copy` (the agent's word) to its AckTracker as is. An
  // agent that answers every assignment only just before it would be given up, naming the first
  // copy, gives round trips as long as the budget; the team's estimate sets every agent's budget.
  it('cannot lengthen every other agent\'s wait for a lost assignment without bound (virtual time)', () => {
    const scheduler = new VirtualScheduler();
    const ackTimeoutMs = 3000;
    const gaveUp = new Map<string, number>();
    const acks: AckTracker = new AckTracker({
      scheduler,
      ackTimeoutMs,
      overdue: key => {
        if (key.startsWith('liar') && (acks.retransmissionsOf(key) ?? 0) >= 2) return acks.answered(key, 0);
        if (!acks.retransmit(key)) gaveUp.set(key, scheduler.now());
      },
    });
    acks.sent('h#0', 'h');
    scheduler.advanceBy(2);
    acks.answered('h#0');
    for (let round = 0; round < 12; round++) {
      for (let i = 0; i < 40; i++) acks.sent(`liar-${round}#${i}`, 'liar');
      while (acks.waiting > 0) scheduler.advanceBy(10);
    }
    const from = scheduler.now();
    acks.sent('new#0', 'new'); // an agent measured never
    acks.sent('h#1', 'h'); // an agent measured fast
    while (acks.waiting > 0) scheduler.advanceBy(10);
    // Uncapped: 1,383 s and 9 s, and ×3 with every further round.
    expect((gaveUp.get('new#0') as number) - from).toBeLessThanOrEqual(3 * ackTimeoutMs);
    expect((gaveUp.get('h#1') as number) - from).toBeLessThanOrEqual(3 * ackTimeoutMs + 200);
  });
});

describe('a child delegated with a payload above maxValueBytes', () => {
  // A submitted task's payloads are held to maxValueBytes (the largest payload the coordinator
  // takes); a child asked for by an agent (`delegate`) may come in a frame of agentMaxPayload
  // (16 MiB by default), and up to 10,000 of them per task: 160 GB held and journaled. One just
  // under 16 MiB also makes an assignment no agent takes (a frame above its limit): never
  // acknowledged, it gets one honest agent after another taken for stalled.
  it('is refused to the agent that asked, with a clear error; the task completes', async () => {
    const s = await start({ maxValueBytes: 64 * 1024 });
    await agents(s.service.url, ['h-0', 'h-1'], ['work']);
    const lead = await rogue(s.service.url, 'lead', { capabilities: ['lead'] });
    let asked = 0;
    lead.onFrame(m => {
      const body = assignOf(m);
      if (body === undefined || body.via.length > 0) return;
      const parent = { taskId: body.taskId, subtaskId: body.subtask.id, attempt: body.attempt };
      lead.send(envelope('lead', 'coordinator', 'progress', { ...parent, progress: 0 }));
      lead.send(envelope('lead', 'coordinator', 'delegate', { ...parent, subtask: { id: 'big', payload: { blob: 'x'.repeat(100_000) }, capabilities: ['work'] } }));
      asked++;
    });
    const task = submitTask({ url: s.service.url, token: TOKEN, task: { id: 'heavy-child', subtasks: [{ id: 'p', payload: {}, capabilities: ['lead'] }, ...work(2)] } });
    const answer = await lead.frame(m => m.type === 'envelope' && m.kind === 'delegated');
    expect(asked).toBe(1);
    expect(answer).toMatchObject({ body: { subtaskId: 'p', childId: 'big', ok: false, error: expect.stringMatching(/maxValueBytes/) } });
    const assign = assignOf(await lead.frame(m => assignOf(m) !== undefined)) as AssignBody;
    lead.send(envelope('lead', 'coordinator', 'result', { via: [], taskId: assign.taskId, subtaskId: 'p', attempt: assign.attempt, agentId: 'lead', ok: true, value: 'led' }));
    const result = await bounded(task, s.events);
    expect(result.success).toBe(true);
    expect(Object.keys(result.results).sort()).toEqual(['p', 's-0', 's-1']);
    expect(s.events.filter(e => e.type === 'subtask.delegated')).toEqual([]);
    expect(quarantined(s.events)).toEqual([]);
  });
});

describe('a route that goes round in circles', () => {
  // Honest agents pass on anything whose `via` goes on, re-encoded at every hop: a result (or an
  // assignment, a cancel) sent to h-0 by way of h-1, h-0, h-1… crossed the server once per entry
  // of its route, each time with the rest of it (one 60 KB frame: some 700 frames of up to 30 KB a
  // second, for 12,000 frames; one of 16 MiB: hours of the server's time).
  it('is dropped at the server where it would come back to a node it has passed', async () => {
    const s = await start();
    await agents(s.service.url, ['h-0', 'h-1'], ['work']);
    const looper = await rogue(s.service.url, 'looper');
    const delivered = (): number => (s.service.server.stats.byKind['result']?.delivered ?? 0) + (s.service.server.stats.byKind['cancel']?.delivered ?? 0);
    const before = delivered();
    const circle = Array.from({ length: 6000 }, (_, i) => `h-${(i + 1) % 2}`);
    looper.send(envelope('looper', 'h-0', 'result', { via: [...circle, 'coordinator'], subtaskId: 's-0', attempt: 1, agentId: 'nobody', ok: true }));
    looper.send(envelope('looper', 'h-0', 'cancel', { via: circle, subtaskId: 's-0', attempt: 1 }));
    const dropped = (kind: string) => (e: AnyEvent): boolean => e.type === 'rejected' && e.agentId === 'looper' && e.error.startsWith(`${kind} `) && /comes back/.test(e.error);
    await s.event(dropped('result'), 'the circling result to be dropped');
    await s.event(dropped('cancel'), 'the circling cancel to be dropped');
    expect(delivered() - before).toBe(0);
    expect(looper.socket.readyState).toBe(looper.socket.OPEN); // dropped, as a relay's bad frame is: the connection stays
    const result = await bounded(submitTask({ url: s.service.url, token: TOKEN, task: { id: 'after-circles', subtasks: work(4) } }), s.events);
    expect(result.success).toBe(true);
  });
});

describe('a result whose value is above maxValueBytes', () => {
  // The server tells every agent at hello the largest result value the coordinator takes, and an
  // honest agent's transport turns a bigger one (its frame above the limit and 64 KiB) into a
  // failure; one that ignores it had values of up to agentMaxPayload (16 MiB) taken, held,
  // journaled and sent on in the task's outcome.
  it('fails its attempt with a clear reason; the value is not taken', async () => {
    const s = await start({ maxValueBytes: 64 * 1024 });
    const big = await rogue(s.service.url, 'big', { capabilities: ['big'] });
    big.onFrame(m => {
      const body = assignOf(m);
      if (body === undefined || body.via.length > 0) return;
      big.send(envelope('big', 'coordinator', 'result', { via: [], taskId: body.taskId, subtaskId: body.subtask.id, attempt: body.attempt, agentId: 'big', ok: true, value: 'x'.repeat(200_000) }));
    });
    const result = await bounded(submitTask({ url: s.service.url, token: TOKEN, task: { id: 'big-value', subtasks: [{ id: 'v', payload: {}, capabilities: ['big'], maxAttempts: 1 }] } }), s.events);
    expect(result.results).toEqual({});
    expect(result.failed['v']).toMatch(/200002 bytes is above the limit of 65536 \(maxValueBytes\)/);
  });
});

describe('rxswarm serve\'s log under a flood of refusals', () => {
  // Every refused connection was a line of serve's log: a stranger without the token, opening
  // connections that say hello with a wrong one, wrote a line a connection, as fast as it could
  // connect (capacity refusals alone were summed up once a second); a rogue agent's rejected
  // results were a line each too.
  const { start: cli, killAll } = cliProcesses(TOKEN, WAIT_MS);
  afterEach(killAll);

  it('a stranger\'s 2,000 refused hellos are a few lines a second, and how many were not shown', async () => {
    const server = cli('serve', '--port', '0', '--heartbeat-ms', '200');
    const url = (/ws:\/\/[\d.]+:\d+/.exec(await server.line(/listening on ws:\/\//)) as RegExpExecArray)[0];
    const startedAt = performance.now();
    const hello = (i: number): Promise<void> =>
      new Promise<void>(resolve => {
        const socket = new WebSocket(url, { perMessageDeflate: false });
        const timer = setTimeout(() => socket.terminate(), WAIT_MS);
        socket.on('error', () => undefined);
        socket.on('open', () => socket.send(JSON.stringify({ v: 1, type: 'hello', agentId: `x-${i}`, capabilities: [], token: 'wrong' })));
        socket.on('close', () => (clearTimeout(timer), resolve()));
      });
    for (let i = 0; i < 2000; i += 50) await Promise.all(Array.from({ length: 50 }, (_, j) => hello(i + j)));
    const seconds = (performance.now() - startedAt) / 1000;
    // The count of the last second's comes at its end.
    await server.line(/not shown/);
    const summed = server.lines.filter(l => /refused \d+ more/.test(l)).map(l => Number(/refused (\d+) more/.exec(l)?.[1]));
    const shown = server.lines.filter(l => /refused x-|refused 127/.test(l)).length;
    expect(shown).toBeLessThanOrEqual(10 * (Math.ceil(seconds) + 1));
    await until('every refusal shown or counted', check => {
      const t = setInterval(check, 20);
      return () => clearInterval(t);
    }, () => (server.lines.filter(l => /refused x-|refused 127/.test(l)).length + server.lines.filter(l => /refused \d+ more/.test(l)).reduce((n, l) => n + Number(/refused (\d+) more/.exec(l)?.[1]), 0) === 2000 ? true : undefined));
    expect(summed.length).toBeGreaterThan(0);
  });
});

describe('lineLimit (virtual time)', () => {
  it('writes perSecond lines a second, counts the rest and sums them up at the end of their second', () => {
    const scheduler = new VirtualScheduler();
    const written: string[] = [];
    const limit = lineLimit({ perSecond: 2, summary: n => written.push(`+${n}`), now: () => scheduler.now(), later: (work, ms) => void scheduler.schedule(work, ms) });
    for (let i = 0; i < 5; i++) limit(() => written.push(`a${i}`));
    scheduler.advanceBy(400);
    limit(() => written.push('b'));
    expect(written).toEqual(['a0', 'a1']);
    scheduler.advanceBy(600);
    expect(written).toEqual(['a0', 'a1', '+4']);
    limit(() => written.push('c'));
    scheduler.advanceBy(5000);
    expect(written).toEqual(['a0', 'a1', '+4', 'c']);
  });
});

describe('the ws server\'s default log under a flood of refusals', () => {
  it('writes ten refusals a second at most to stderr, however many strangers are refused', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    cleanups.push(() => warn.mockRestore());
    const server = await WsServerNetwork.listen({ token: TOKEN, port: 0 });
    cleanups.push(() => server.close());
    let refused = 0;
    server.events$.subscribe(e => void (e.type === 'rejected' && refused++));
    const startedAt = performance.now();
    const hello = (i: number): Promise<void> =>
      new Promise<void>(resolve => {
        const socket = new WebSocket(server.url, { perMessageDeflate: false });
        const timer = setTimeout(() => socket.terminate(), WAIT_MS);
        socket.on('error', () => undefined);
        socket.on('open', () => socket.send(JSON.stringify({ v: 1, type: 'hello', agentId: `x-${i}`, capabilities: [], token: 'wrong' })));
        socket.on('close', () => (clearTimeout(timer), resolve()));
      });
    for (let i = 0; i < 300; i += 50) await Promise.all(Array.from({ length: 50 }, (_, j) => hello(i + j)));
    const seconds = (performance.now() - startedAt) / 1000;
    expect(refused).toBe(300);
    // Ten a second, and one count of the rest a second.
    expect(warn.mock.calls.length).toBeLessThanOrEqual(11 * (Math.ceil(seconds) + 1));
  });
});
