import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CoordinationResult } from '../../src/events.js';
import { freePort, startNatsServer, type NatsServer } from '../streams/natsServer.js';
import { cliProcesses, root, type Proc } from './cliProcesses.js';

// The command line over NATS as real processes: a nats-server of its own, `serve --nats`, two
// `agent --nats` and `run --nats`. Waits are on printed lines, each bounded; every process is
// killed after each test (stopped ones too), and the server stopped.
const TOKEN = 'nats-e2e-secret';
const WAIT_MS = 30_000;

const { start, killAll } = cliProcesses(TOKEN, WAIT_MS);
let dir: string;
let nats: NatsServer | undefined;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rxswarm-nats-e2e-'));
});

afterEach(async () => {
  killAll();
  await nats?.stop();
  nats = undefined;
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The process's exit code, waited for `ms` at most (then an error with its stderr and `context`). */
async function exitCode(proc: Proc, ms = WAIT_MS, context = ''): Promise<number | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([proc.exited, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`run did not exit within ${ms} ms; stderr:\n${proc.stderr()}${context}`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

describe('serve, agent and run over NATS as real processes', () => {
  it('serve --nats (a leader and a standby, each with HTTP), 2 agent --nats and run --nats complete a task: exit 0, every subtask once', async () => {
    nats = await startNatsServer({ user: 'swarm', pass: 'pw' });
    const url = `nats://swarm:pw@127.0.0.1:${nats.port}`;
    const [port, standbyPort] = [await freePort(), await freePort()];
    const server = start('serve', '--nats', url, '--heartbeat-ms', '200', '--topology', 'star', '--node-id', 'lead', '--port', String(port));
    await server.line(/rxswarm coordinator on NATS/);
    const standby = start('serve', '--nats', url, '--node-id', 'wait', '--port', String(standbyPort));
    await standby.line(/standby wait: held by lead/);
    // HTTP of each node: the leader's metrics and the role gauge; a standby's page names the leader.
    const get = async (p: number, path: string): Promise<{ status: number; text: string }> => {
      const answer = await fetch(`http://127.0.0.1:${p}${path}`, { headers: { authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(WAIT_MS) });
      return { status: answer.status, text: await answer.text() };
    };
    const leaderMetrics = await get(port, '/metrics');
    expect(leaderMetrics.status).toBe(200);
    expect(leaderMetrics.text).toMatch(/rxswarm_cluster_leader\{node="lead"\} 1/);
    expect(leaderMetrics.text).toMatch(/^rxswarm_\w+/m);
    expect((await get(standbyPort, '/metrics')).text).toMatch(/rxswarm_cluster_leader\{node="wait"\} 0\n$/);
    expect((await get(standbyPort, '/')).text).toMatch(/^rxswarm cluster node wait: standby \(held by lead\)\nleader: lead on /);
    const agents = [0, 1].map(i => start('agent', '--nats', url, '--id', `n-${i}`, '--heartbeat-ms', '200', '--slots', '2'));
    await Promise.all([0, 1].map(i => server.line(new RegExp(`agent n-${i} joined over NATS`))));
    const subtasks = Array.from({ length: 30 }, (_, i) => ({ id: `s-${i}`, payload: { sleepMs: 20 } }));
    const path = join(dir, 'task.json');
    writeFileSync(path, JSON.stringify({ id: 'nats-e2e', subtasks }));
    const run = start('run', path, '--nats', url, '--json');
    const code = await exitCode(run);
    expect(code, run.stderr()).toBe(0);
    const result = JSON.parse(run.lines.join('\n')) as CoordinationResult;
    expect(result.success).toBe(true);
    expect(Object.keys(result.results).sort()).toEqual(subtasks.map(s => s.id).sort());
    expect(result.failed).toEqual({});
    const ran = Object.values(result.results).map(v => (v as { agentId: string }).agentId);
    expect(new Set(ran).size).toBeGreaterThanOrEqual(1);
    expect(agents.every(a => a.child.exitCode === null)).toBe(true);
    // The other client commands over NATS: tasks lists it, attach gets its result, cancel says it is not running.
    const tasks = start('tasks', '--nats', url, '--json');
    expect(await tasks.exited, tasks.stderr()).toBe(0);
    expect(JSON.parse(tasks.lines.join('\n'))).toEqual(expect.arrayContaining([expect.objectContaining({ id: 'nats-e2e', state: 'done' })]));
    const attached = start('attach', 'nats-e2e', '--nats', url, '--json');
    expect(await attached.exited, attached.stderr()).toBe(0);
    expect(Object.keys((JSON.parse(attached.lines.join('\n')) as CoordinationResult).results)).toHaveLength(subtasks.length);
    const cancel = start('cancel', 'nats-e2e', '--nats', url, '--json');
    expect(await cancel.exited).toBe(2);
    expect(JSON.parse(cancel.lines.join('\n'))).toMatchObject({ taskId: 'nats-e2e', ok: false });
  }, 120_000);

  it('a NATS server restarted mid-task (same port, same storage): the task completes, every subtask once', async () => {
    const storeDir = mkdtempSync(join(tmpdir(), 'rxswarm-nats-store-'));
    try {
      nats = await startNatsServer({ storeDir });
      const { port, url } = nats;
      const server = start('serve', '--nats', url, '--heartbeat-ms', '200', '--topology', 'star');
      await server.line(/rxswarm coordinator on NATS/);
      [0, 1].map(i => start('agent', '--nats', url, '--id', `r-${i}`, '--heartbeat-ms', '200', '--slots', '2'));
      await Promise.all([0, 1].map(i => server.line(new RegExp(`agent r-${i} joined over NATS`))));
      // About 4 s of work on 4 slots: the restart lands in its middle.
      const subtasks = Array.from({ length: 40 }, (_, i) => ({ id: `s-${i}`, payload: { sleepMs: 400 } }));
      const path = join(dir, 'restart.json');
      writeFileSync(path, JSON.stringify({ id: 'nats-restart', subtasks }));
      const run = start('run', path, '--nats', url, '--json');
      await server.line(/protocol/); // work under way
      await nats.stop();
      nats = await startNatsServer({ storeDir, port });
      const code = await exitCode(run, 2 * WAIT_MS, `\nserve:\n${server.lines.slice(-20).join('\n')}`);
      expect(code, run.stderr()).toBe(0);
      const result = JSON.parse(run.lines.join('\n')) as CoordinationResult;
      expect(result.success).toBe(true);
      expect(Object.keys(result.results).sort()).toEqual(subtasks.map(s => s.id).sort());
      expect(result.metrics.durationMs).toBeGreaterThan(2000); // it was still running when the server went
    } finally {
      killAll();
      await nats?.stop();
      nats = undefined;
      rmSync(storeDir, { recursive: true, force: true });
    }
  }, 150_000);

  it.each([
    [['agent', '--nats', 'ws://127.0.0.1:1', '--token', 't'], /must be nats:\/\/\[USER:PASS@\]HOST:PORT/],
    [['agent', '--nats', 'nats://127.0.0.1:1', '--connect', 'ws://127.0.0.1:1', '--token', 't'], /--connect and --nats are two ways/],
    [['run', 'task.json', '--token', 't'], /required option '--connect <url>' not specified \(or --nats <url>\)/],
    [['tasks', '--token', 't'], /required option '--connect <url>' not specified \(or --nats <url>\)/],
    [['cancel', 'x', '--token', 't'], /required option '--connect <url>' not specified \(or --nats <url>\)/],
    [['attach', 'x', '--token', 't'], /required option '--connect <url>' not specified \(or --nats <url>\)/],
  ])('exits 2 with a clear message for %j', async (args, message) => {
    const proc = start(...args);
    expect(await proc.exited).toBe(2);
    expect(proc.stderr()).toMatch(message);
  });

  it('delegation over NATS: a writer agent waits for children only a searcher agent can run; each runs once, the writer gets their results', async () => {
    nats = await startNatsServer({ user: 'swarm', pass: 'pw' });
    const url = `nats://swarm:pw@127.0.0.1:${nats.port}`;
    const log = join(dir, 'nats-delegations.log');
    process.env['RXSWARM_EXECUTIONS'] = log;
    const server = start('serve', '--nats', url, '--heartbeat-ms', '200', '--topology', 'star', '--node-id', 'lead');
    await server.line(/rxswarm coordinator on NATS/);
    const handler = join(root, 'test', 'fixtures', 'delegatingHandler.mjs');
    start('agent', '--nats', url, '--id', 'writer', '--capabilities', 'text', '--heartbeat-ms', '200', '--handler', handler);
    start('agent', '--nats', url, '--id', 'searcher', '--capabilities', 'web', '--slots', '2', '--heartbeat-ms', '200', '--handler', handler);
    await Promise.all(['writer', 'searcher'].map(id => server.line(new RegExp(`agent ${id} joined over NATS`))));
    const children = ['a', 'b'].map(id => ({ id, capabilities: ['web'], payload: { sleepMs: 300 } }));
    const path = join(dir, 'delegating.json');
    writeFileSync(path, JSON.stringify({ id: 'nats-delegation', subtasks: [{ id: 'write', capabilities: ['text'], payload: { children } }] }));
    const run = start('run', path, '--nats', url, '--json');
    const code = await exitCode(run);
    expect(code, run.stderr()).toBe(0);
    const result = JSON.parse(run.lines.join('\n')) as CoordinationResult;
    expect(result.results['write']).toEqual({ by: 'writer', subtaskId: 'write', children: ['a', 'b'].map(id => ({ by: 'searcher', subtaskId: `write/${id}`, children: [] })) });
    const executions = readFileSync(log, 'utf8').trim().split('\n').map(line => line.split(' ').slice(0, 2).join(' '));
    expect(executions.sort()).toEqual(['searcher write/a', 'searcher write/b', 'writer write']);
  }, 90_000);

  it('says clearly when the NATS server has no JetStream', async () => {
    nats = await startNatsServer({ jetstream: false });
    const server = start('serve', '--nats', nats.url);
    expect(await server.exited).toBe(2);
    expect(server.stderr()).toMatch(/JetStream disabled: start it with -js/);
  });
});
