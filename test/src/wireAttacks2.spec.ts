import { submitTask } from '../../src/remote.js';
import type { ResultBody } from '../../streams/protocol.js';
import { agents, bounded, cleanUp, envelope, expectHonest, quarantined, rogue, start, work, TOKEN } from '../streams/attackKit.js';

// More attacks by token-holding agents over real sockets, on what the earlier attack specs leave
// out. Every wait is bounded; every server, agent and socket is closed after each test.
afterEach(cleanUp);

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
