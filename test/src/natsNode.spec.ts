import { filter, firstValueFrom, timeout } from 'rxjs';
import { NatsNode } from '../../src/natsNode.js';
import { cancelServiceTask, startAgent, submitTask, type AgentProcess } from '../../src/remote.js';
import { startNatsServer, type NatsServer } from '../streams/natsServer.js';

// A coordinator node on NATS with agents and clients of this process (startAgent, submitTask over
// nats:// URLs), against a real nats-server per test. Every wait is bounded.
const TOKEN = 'nats-node-secret';
const WAIT_MS = 10_000;

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(agents: number): Promise<{ server: NatsServer; node: NatsNode; url: string }> {
  const server = await startNatsServer({ token: 'nats-level-token' });
  cleanups.push(() => server.stop());
  const url = `nats://nats-level-token@127.0.0.1:${server.port}`;
  const node = await NatsNode.start({ url, token: TOKEN, coordinator: { topology: 'star', heartbeat: { intervalMs: 100 } }, log: () => undefined });
  cleanups.push(() => node.close());
  const processes: AgentProcess[] = [];
  for (let i = 0; i < agents; i++) {
    const agent = startAgent({ url, token: TOKEN, id: `w-${i}`, slots: 2, usage: false, heartbeatIntervalMs: 100 });
    cleanups.push(() => agent.leave());
    processes.push(agent);
  }
  await Promise.all(processes.map(p => firstValueFrom(p.network.events$.pipe(filter(e => e.type === 'joined'), timeout(WAIT_MS)))));
  return { server, node, url };
}

describe('NatsNode', () => {
  it('runs a submitted task on agents that came over NATS and sends back the events and the result', async () => {
    const { url } = await setup(2);
    const events: string[] = [];
    const result = await submitTask({ url, token: TOKEN, task: { id: 't-1', subtasks: Array.from({ length: 10 }, (_, i) => ({ id: `s-${i}`, payload: { sleepMs: 5 } })) }, onEvent: e => events.push(e.type) });
    expect(result.success).toBe(true);
    expect(Object.keys(result.results)).toHaveLength(10);
    expect(events).toContain('subtask.completed');
  });

  it('refuses a task with the id of one running, and cancels a running task', async () => {
    const { url, node } = await setup(1);
    const long = { id: 'long', subtasks: Array.from({ length: 4 }, (_, i) => ({ id: `s-${i}`, payload: { sleepMs: 60_000 } })) };
    const assigned = firstValueFrom(node.coordinator.events$.pipe(filter(e => e.type === 'subtask.assigned'), timeout(WAIT_MS)));
    const running = submitTask({ url, token: TOKEN, task: long });
    await assigned;
    await expect(submitTask({ url, token: TOKEN, task: long })).rejects.toThrow(/already running/);
    const answer = await cancelServiceTask({ url, token: TOKEN, taskId: 'long', timeoutMs: WAIT_MS });
    expect(answer).toEqual({ taskId: 'long', ok: true });
    const result = await running;
    expect(result.success).toBe(false);
    expect(Object.values(result.failed)).toContain('cancelled');
  });

  it('refuses the wrong NATS credentials with a clear error', async () => {
    const server = await startNatsServer({ token: 'right' });
    cleanups.push(() => server.stop());
    await expect(NatsNode.start({ url: `nats://wrong@127.0.0.1:${server.port}`, token: TOKEN })).rejects.toThrow(/refused the credentials/);
  });
});
