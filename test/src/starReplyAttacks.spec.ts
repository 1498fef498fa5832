import { submitTask } from '../../src/remote.js';
import type { AssignBody, ResultBody } from '../../streams/protocol.js';
import { keyFrom, signResult } from '../../streams/signing.js';
import type { WireMessage } from '../../streams/wsCodec.js';
import { agents, bounded, cleanUp, envelope, expectHonest, quarantined, rogue, start, work, TOKEN } from '../streams/attackKit.js';

// Star: a spoke's result goes straight to the coordinator, never through the hub, and the engine
// takes a result only from the last hop of its attempt's reply path (the spoke itself). Attacks by
// a rogue hub and rogue spokes, over real sockets; afterwards every subtask is completed exactly
// once, by an honest agent, with its honest value, and no honest agent is quarantined.
afterEach(cleanUp);

const LEADER = ['task_delegation', 'resource_allocation', 'conflict_resolution'];
const assignOf = (m: WireMessage): AssignBody | undefined => (m.type === 'envelope' && m.kind === 'assign' ? (m.body as AssignBody) : undefined);
const rejections = (events: readonly { type: string }[]): Array<{ subtaskId: string; agentId: string; reason: string }> =>
  events.filter(e => e.type === 'subtask.rejected') as unknown as Array<{ subtaskId: string; agentId: string; reason: string }>;

describe('a rogue star hub', () => {
  it('relays honestly but reports results for its spokes (unsigned, signed by itself, in its own name): all rejected, each honest result accepted once', async () => {
    const s = await start();
    const hub = await rogue(s.service.url, 'hub', { capabilities: LEADER });
    const join = await hub.frame(m => m.type === 'join');
    const hubKey = keyFrom((join as { key: string }).key) as Buffer;
    let forged = 0;
    hub.onFrame(m => {
      const body = assignOf(m);
      if (body === undefined || body.via.length === 0) return;
      const spoke = body.via[0] as string;
      expect(body.replyPath).toEqual(['coordinator']); // the spoke's result does not come back through the hub
      hub.send(envelope('hub', spoke, 'assign', { ...body, via: body.via.slice(1) }));
      const claim: ResultBody = { via: [], taskId: body.taskId, subtaskId: body.subtask.id, attempt: body.attempt, agentId: spoke, ok: true, value: { subtaskId: body.subtask.id, agentId: spoke, forged: true } } as ResultBody;
      hub.send(envelope('hub', 'coordinator', 'result', claim));
      hub.send(envelope('hub', 'coordinator', 'result', { ...claim, mac: signResult(hubKey, claim) }));
      const own = { ...claim, agentId: 'hub' } as ResultBody;
      hub.send(envelope('hub', 'coordinator', 'result', { ...own, mac: signResult(hubKey, own) }));
      // A forged `done` for the spoke's attempt: only the agent running it may say so.
      hub.send(envelope('hub', 'coordinator', 'progress', { taskId: body.taskId, subtaskId: body.subtask.id, attempt: body.attempt, progress: 1, done: true }));
      forged += 3;
    });
    const honest = ['h-0', 'h-1', 'h-2'];
    await agents(s.service.url, honest, ['work']);
    const subtasks = work(15, 'hub', { sleepMs: 20 });
    const result = await bounded(submitTask({ url: s.service.url, token: TOKEN, task: { id: 'rogue-hub', subtasks } }), s.events);
    expect(forged).toBeGreaterThan(0);
    expectHonest(result, s.events, subtasks.map(t => t.id), honest);
    for (const v of Object.values(result.results)) expect(v).not.toHaveProperty('forged');
    expect(rejections(s.events).length).toBeGreaterThanOrEqual(forged);
    expect(quarantined(s.events).filter(id => honest.includes(id))).toEqual([]);
  });

  it('rewrites the reply path of the assignments it relays to come back through it: the spokes refuse them (signed), the hub is charged, the task completes on direct assignments', async () => {
    const s = await start({ coordinator: { topology: 'star', heartbeat: { intervalMs: 100 }, ackTimeoutMs: 150, orphanTimeoutMs: 3000 } });
    const hub = await rogue(s.service.url, 'hub', { capabilities: LEADER });
    let rewritten = 0;
    hub.onFrame(m => {
      const body = assignOf(m);
      if (body === undefined || body.via.length === 0) return;
      rewritten++;
      hub.send(envelope('hub', body.via[0] as string, 'assign', { ...body, via: body.via.slice(1), replyPath: ['hub', 'coordinator'] }));
    });
    const honest = ['h-0', 'h-1', 'h-2'];
    await agents(s.service.url, honest, ['work']);
    const subtasks = work(12, 'rw', { sleepMs: 10 });
    const result = await bounded(submitTask({ url: s.service.url, token: TOKEN, task: { id: 'rewrite', subtasks } }), s.events);
    expect(rewritten).toBeGreaterThan(0);
    expectHonest(result, s.events, subtasks.map(t => t.id), honest);
    expect(quarantined(s.events).filter(id => honest.includes(id))).toEqual([]);
  });
});

describe('a rogue star hub that replays', () => {
  it('every assignment it ever relayed, again and again (stale attempts, their old reply paths): the spokes\' stale results are rejected, nobody honest is blamed, each subtask completes once', async () => {
    const s = await start({ coordinator: { topology: 'star', heartbeat: { intervalMs: 100 }, orphanTimeoutMs: 3000 } });
    const hub = await rogue(s.service.url, 'hub', { capabilities: LEADER });
    const seen: Array<{ to: string; body: AssignBody }> = [];
    hub.onFrame(m => {
      const body = assignOf(m);
      if (body === undefined || body.via.length === 0) return;
      const relayed = { to: body.via[0] as string, body: { ...body, via: body.via.slice(1) } };
      seen.push(relayed);
      // The new one, then every old one once more.
      for (const { to, body: b } of [relayed, ...seen]) hub.send(envelope('hub', to, 'assign', b));
    });
    const honest = ['h-0', 'h-1', 'h-2'];
    await agents(s.service.url, honest, ['work']);
    const subtasks = work(12, 'replay', { sleepMs: 10 });
    const result = await bounded(submitTask({ url: s.service.url, token: TOKEN, task: { id: 'replay', subtasks } }), s.events);
    expect(seen.length).toBeGreaterThan(1);
    expectHonest(result, s.events, subtasks.map(t => t.id), honest);
    expect(quarantined(s.events).filter(id => honest.includes(id))).toEqual([]);
  });
});

describe('a rogue star spoke', () => {
  it('reports results for another spoke\'s attempts (guessing tokens, in the other\'s name and its own): all rejected', async () => {
    const s = await start();
    await agents(s.service.url, ['h-0'], [...LEADER, 'work']); // the hub, honest
    const liar = await rogue(s.service.url, 'liar');
    const join = await liar.frame(m => m.type === 'join');
    const key = keyFrom((join as { key: string }).key) as Buffer;
    const honest = ['h-0', 'h-1', 'h-2'];
    await agents(s.service.url, ['h-1', 'h-2'], ['work']);
    const subtasks = work(10, 'g', { sleepMs: 40 });
    const task = submitTask({ url: s.service.url, token: TOKEN, task: { id: 'guessed', subtasks } });
    await s.event(e => e.type === 'subtask.assigned', 'the first assignment');
    let sent = 0;
    for (let attempt = 1; attempt <= 12; attempt++) {
      for (const { id } of subtasks) {
        for (const agentId of ['h-1', 'h-2', 'liar']) {
          const claim = { via: [], taskId: 'guessed', subtaskId: id, attempt, agentId, ok: true, value: { subtaskId: id, agentId, forged: true } } as ResultBody;
          liar.send(envelope('liar', 'coordinator', 'result', { ...claim, mac: signResult(key, claim) }));
          sent++;
        }
      }
    }
    const result = await bounded(task, s.events);
    expect(sent).toBe(360);
    expectHonest(result, s.events, subtasks.map(t => t.id), honest);
    for (const v of Object.values(result.results)) expect(v).not.toHaveProperty('forged');
    expect(quarantined(s.events).filter(id => honest.includes(id))).toEqual([]);
    expect(liar.socket.readyState).toBe(liar.socket.OPEN); // refused results, not a refused connection
  });

  it('does its work but sends its signed result through the hub (via: [hub, coordinator]): refused as not from its reply path; the honest hub is not charged; each subtask completes once', async () => {
    const s = await start({ coordinator: { topology: 'star', heartbeat: { intervalMs: 100 }, ackTimeoutMs: 150, orphanTimeoutMs: 3000 } });
    await agents(s.service.url, ['h-0'], [...LEADER, 'work']); // the hub, honest
    const detour = await rogue(s.service.url, 'detour', { capabilities: ['work'] });
    const join = await detour.frame(m => m.type === 'join');
    const key = keyFrom((join as { key: string }).key) as Buffer;
    let detoured = 0;
    detour.onFrame(m => {
      const body = assignOf(m);
      if (body === undefined || body.via.length > 0) return;
      detour.send(envelope('detour', 'coordinator', 'progress', { taskId: body.taskId, subtaskId: body.subtask.id, attempt: body.attempt, progress: 0 }));
      const claim = { via: ['coordinator'], taskId: body.taskId, subtaskId: body.subtask.id, attempt: body.attempt, agentId: 'detour', ok: true, value: { subtaskId: body.subtask.id, agentId: 'detour' } } as ResultBody;
      detour.send(envelope('detour', 'h-0', 'result', { ...claim, mac: signResult(key, claim) }));
      detour.send(envelope('detour', 'coordinator', 'progress', { taskId: body.taskId, subtaskId: body.subtask.id, attempt: body.attempt, progress: 1, done: true }));
      detoured++;
    });
    const honest = ['h-0', 'h-1'];
    await agents(s.service.url, ['h-1'], ['work']);
    const subtasks = work(9, 'dt', { sleepMs: 10 });
    const result = await bounded(submitTask({ url: s.service.url, token: TOKEN, task: { id: 'detour', subtasks: subtasks.map(t => ({ ...t, timeoutMs: 400 })) } }), s.events);
    expect(detoured).toBeGreaterThan(0);
    expectHonest(result, s.events, subtasks.map(t => t.id), honest);
    expect(rejections(s.events).filter(r => r.agentId === 'detour').map(r => r.reason)).toContainEqual(expect.stringMatching(/sent by h-0/));
    expect(quarantined(s.events).filter(id => honest.includes(id))).toEqual([]);
  });
});

describe('a spoke that takes in only what comes straight from the coordinator', () => {
  // Through the hub it acknowledges nothing, so each relayed assignment charges the hub; sent
  // straight to it (after such a loss) it works honestly, and the next one goes through the hub again.
  it('does not get its honest hub quarantined (nor the next hub): one agent\'s word is not enough to blame a relay', async () => {
    const s = await start({ coordinator: { topology: 'star', heartbeat: { intervalMs: 100 }, ackTimeoutMs: 150, orphanTimeoutMs: 3000 } });
    await agents(s.service.url, ['h-0'], LEADER); // the hub: relays only
    const sly = await rogue(s.service.url, 'sly', { capabilities: ['work'] });
    const join = await sly.frame(m => m.type === 'join');
    const key = keyFrom((join as { key: string }).key) as Buffer;
    let ignored = 0;
    let worked = 0;
    sly.onFrame(m => {
      const body = assignOf(m);
      if (body === undefined || body.via.length > 0 || m.type !== 'envelope') return;
      if (m.from !== 'coordinator') return void ignored++; // relayed by the hub: never acknowledged
      worked++;
      sly.send(envelope('sly', 'coordinator', 'progress', { taskId: body.taskId, subtaskId: body.subtask.id, attempt: body.attempt, progress: 0 }));
      const claim = { via: [], taskId: body.taskId, subtaskId: body.subtask.id, attempt: body.attempt, agentId: 'sly', ok: true, value: { subtaskId: body.subtask.id, agentId: 'sly' } } as ResultBody;
      sly.send(envelope('sly', body.replyPath[0] as string, 'result', { ...claim, mac: signResult(key, claim) }));
    });
    await agents(s.service.url, ['h-1'], ['work']);
    // The honest spoke is slow: no honest result clears the hub's charges for a while.
    const subtasks = work(4, 'sly', { sleepMs: 2500 });
    const result = await bounded(submitTask({ url: s.service.url, token: TOKEN, task: { id: 'sly', subtasks } }), s.events);
    expect(ignored).toBeGreaterThan(0);
    expect(worked).toBeGreaterThan(0);
    expect(result.success).toBe(true);
    expect(Object.keys(result.results).sort()).toEqual(subtasks.map(t => t.id).sort());
    expect(quarantined(s.events).filter(id => id.startsWith('h-'))).toEqual([]);
  });
});

describe('a forged `done` on a reply path with relays (hierarchical: results come back through the root)', () => {
  it('a member that says its results are on their way and never sends them does not get its honest root quarantined', async () => {
    const s = await start({ coordinator: { topology: 'hierarchical', heartbeat: { intervalMs: 100 }, ackTimeoutMs: 150, orphanTimeoutMs: 3000 } });
    await agents(s.service.url, ['h-root'], LEADER); // relays only
    const liar = await rogue(s.service.url, 'liar', { capabilities: ['work'], slots: 4 });
    let lies = 0;
    liar.onFrame(m => {
      const body = assignOf(m);
      if (body === undefined || body.via.length > 0) return;
      liar.send(envelope('liar', 'coordinator', 'progress', { taskId: body.taskId, subtaskId: body.subtask.id, attempt: body.attempt, progress: 0 }));
      liar.send(envelope('liar', 'coordinator', 'progress', { taskId: body.taskId, subtaskId: body.subtask.id, attempt: body.attempt, progress: 1, done: true }));
      lies++;
    });
    const honest = ['h-root', 'h-1'];
    await agents(s.service.url, ['h-1'], ['work']);
    // The honest member is slow: no honest result crosses the root for a while to clear its charges.
    const subtasks = work(4, 'lie', { sleepMs: 2500 }).map(t => ({ ...t, timeoutMs: 4000 }));
    const result = await bounded(submitTask({ url: s.service.url, token: TOKEN, task: { id: 'lies', subtasks } }), s.events);
    expect(lies).toBeGreaterThan(0);
    expectHonest(result, s.events, subtasks.map(t => t.id), ['h-1']);
    expect(quarantined(s.events).filter(id => honest.includes(id))).toEqual([]);
    // Found out: after a result lost in transit its next assignment goes straight to it, where a
    // `done` without a result is just silence, and it is not handed work through the root again and again.
    const lost = s.events.filter(e => e.type === 'subtask.requeued' && /lost in transit/.test(String((e as { reason?: string }).reason)));
    expect(lost.length).toBeLessThanOrEqual(4);
  });

  it('an honest member alone behind a root that drops every result it relays is heard straight: the task completes, the member is not quarantined', async () => {
    const s = await start({ coordinator: { topology: 'hierarchical', heartbeat: { intervalMs: 100 }, ackTimeoutMs: 150, orphanTimeoutMs: 3000 } });
    const root = await rogue(s.service.url, 'dropper', { capabilities: LEADER });
    root.onFrame(m => {
      if (m.type !== 'envelope' || m.kind === 'result') return; // results die here
      const body = m.body as { via?: string[] };
      if (body.via !== undefined && body.via.length > 0) root.send(envelope('dropper', body.via[0] as string, m.kind, { ...body, via: body.via.slice(1) }));
    });
    await agents(s.service.url, ['h-0'], ['work']);
    const subtasks = work(6, 'alone', { sleepMs: 10 });
    const result = await bounded(submitTask({ url: s.service.url, token: TOKEN, task: { id: 'alone', subtasks } }), s.events);
    expectHonest(result, s.events, subtasks.map(t => t.id), ['h-0']);
    expect(quarantined(s.events)).not.toContain('h-0');
  });
});
