import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CoordinationResult } from '../../src/events.js';
import { cliProcesses, root, type Proc } from './cliProcesses.js';

// The command line across real processes on loopback: `serve`, `agent` and `run` as a user runs
// them. Waits are on what the processes print; the timeouts only bound a test that has gone wrong.
const handlerPath = join(root, 'test', 'fixtures', 'announcingHandler.mjs');
const stubbornPath = join(root, 'test', 'fixtures', 'stubbornHandler.mjs');
const TOKEN = 'e2e-secret';
const WAIT_MS = 30_000;

const { start, killAll } = cliProcesses(TOKEN, WAIT_MS);
let dir: string;

async function serve(): Promise<{ server: Proc; url: string }> {
  const server = start('serve', '--port', '0', '--heartbeat-ms', '200');
  const url = (/ws:\/\/[\d.]+:\d+/.exec(await server.line(/listening on ws:\/\//)) as RegExpExecArray)[0];
  return { server, url };
}

/** Writes a task file: a value as JSON, a string as it is (to write broken files). */
function taskFile(name: string, task: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof task === 'string' ? task : JSON.stringify(task));
  return path;
}

async function runTask(url: string, path: string): Promise<{ code: number | null; result: CoordinationResult }> {
  const run = start('run', path, '--connect', url, '--json');
  const code = await run.exited;
  return { code, result: JSON.parse(run.lines.join('\n')) as CoordinationResult };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rxswarm-e2e-'));
});

afterEach(async () => {
  killAll();
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('serve, agent and run as real processes', () => {
  it(
    '4 agents, 200 subtasks, one agent SIGKILLed and one SIGSTOPped while they hold work: all 200 results, exit 0, the server still up',
    async () => {
      const { server, url } = await serve();
      const agents = [0, 1, 2, 3].map(i =>
        i < 2
          ? start('agent', '--connect', url, '--id', `e2e-${i}`, '--heartbeat-ms', '200', '--slots', '2', '--handler', handlerPath)
          : start('agent', '--connect', url, '--id', `e2e-${i}`, '--heartbeat-ms', '200', '--slots', '2'),
      );
      await Promise.all(agents.map(a => a.line(/joined/)));
      const subtasks = Array.from({ length: 200 }, (_, i) => ({ id: `s-${i}`, payload: { sleepMs: 40 } }));
      const run = start('run', taskFile('big.json', { id: 'e2e', subtasks }), '--connect', url, '--json');

      // Kill each of the two announcing agents once it has started its fifth subtask.
      const [killed, stopped] = agents as [Proc, Proc];
      await killed.line(/^start /, 5);
      killed.child.kill('SIGKILL');
      await stopped.line(/^start /, 5);
      stopped.child.kill('SIGSTOP');

      expect(await run.exited).toBe(0);
      const result = JSON.parse(run.lines.join('\n')) as CoordinationResult;
      expect(result.success).toBe(true);
      expect(result.failed).toEqual({});
      expect(Object.keys(result.results).sort()).toEqual(subtasks.map(s => s.id).sort());
      expect(result.metrics.completed).toBe(200);
      // The dead and the stopped agent were detected and their work went elsewhere.
      expect(result.metrics.assignments).toBeGreaterThan(200);
      const by = Object.values(result.results).map(r => (r as { agentId?: string; by?: string }).agentId ?? (r as { by: string }).by);
      expect(by.filter(a => a === 'e2e-2' || a === 'e2e-3').length).toBeGreaterThan(100);
      // The killed one by its closed connection (its work moved within the grace), the stopped one by phi.
      expect(server.lines.join('\n')).toMatch(/\sdown\s+e2e-0: connection closed and not back within 500 ms/);
      expect(server.lines.join('\n')).toMatch(/down\s+e2e-1/);

      // The server is still up and takes the next task.
      expect(server.child.exitCode).toBeNull();
      const next = await runTask(url, taskFile('small.json', { id: 'after', subtasks: [{ id: 'x', payload: { sleepMs: 1 } }] }));
      expect(next.code).toBe(0);
      expect(next.result.results.x).toMatchObject({ subtaskId: 'x' });
    },
    90_000,
  );

  it(
    'an agent stopped with SIGTERM hands its work back and leaves cleanly; the task still completes',
    async () => {
      const { server, url } = await serve();
      const leaving = start('agent', '--connect', url, '--id', 'term-0', '--heartbeat-ms', '200', '--handler', handlerPath);
      const staying = start('agent', '--connect', url, '--id', 'term-1', '--heartbeat-ms', '200');
      await Promise.all([leaving.line(/joined/), staying.line(/joined/)]);
      const subtasks = Array.from({ length: 20 }, (_, i) => ({ id: `t-${i}`, payload: { sleepMs: 200 } }));
      const run = start('run', taskFile('term.json', { id: 'term', subtasks }), '--connect', url, '--json');
      await leaving.line(/^start /);
      const killedAt = performance.now();
      leaving.child.kill('SIGTERM');
      expect(await leaving.exited).toBe(0);
      expect(performance.now() - killedAt).toBeLessThan(5000); // the default grace period: its handler ends within 200 ms
      expect(leaving.lines.join('\n')).toMatch(/term-0 left \(SIGTERM\)/);
      expect(await run.exited).toBe(0);
      const result = JSON.parse(run.lines.join('\n')) as CoordinationResult;
      expect(result.failed).toEqual({});
      expect(Object.keys(result.results)).toHaveLength(20);
      expect(server.lines.join('\n')).toMatch(/down\s+term-0: left/);
      expect(server.lines.join('\n')).not.toMatch(/fault\s+agent_timeout term-0/); // a departure, not a failure
    },
    60_000,
  );

  it(
    'an agent whose handler ignores its abort signal and never settles exits within --grace-ms of SIGTERM, and at once on a second Ctrl-C; the task completes elsewhere',
    async () => {
      const { url } = await serve();
      const term = start('agent', '--connect', url, '--id', 'stub-term', '--heartbeat-ms', '200', '--handler', stubbornPath, '--grace-ms', '1000');
      const int = start('agent', '--connect', url, '--id', 'stub-int', '--heartbeat-ms', '200', '--handler', stubbornPath, '--grace-ms', '600000');
      await Promise.all([term.line(/joined/), int.line(/joined/)]);
      const subtasks = Array.from({ length: 6 }, (_, i) => ({ id: `g-${i}`, payload: { sleepMs: 50 } }));
      const run = start('run', taskFile('grace.json', { id: 'grace', subtasks }), '--connect', url, '--json');
      await Promise.all([term.line(/^start /), int.line(/^start /)]);
      const worker = start('agent', '--connect', url, '--id', 'stub-ok', '--heartbeat-ms', '200');
      await worker.line(/joined/);

      const termAt = performance.now();
      term.child.kill('SIGTERM');
      expect(await term.exited).toBe(0);
      const termMs = performance.now() - termAt;
      expect(termMs).toBeGreaterThanOrEqual(900);
      expect(termMs).toBeLessThan(4000);
      expect(term.lines.join('\n')).toMatch(/stub-term: 1 handler still running 1000 ms after being aborted; exiting without it/);

      int.child.kill('SIGINT');
      await int.line(/stub-int left \(SIGINT\)/);
      const intAt = performance.now();
      int.child.kill('SIGINT');
      expect(await int.exited).toBe(130);
      expect(performance.now() - intAt).toBeLessThan(3000);

      expect(await run.exited).toBe(0);
      const result = JSON.parse(run.lines.join('\n')) as CoordinationResult;
      expect(Object.keys(result.results)).toHaveLength(6);
      expect(new Set(Object.values(result.results).map(r => (r as { agentId: string }).agentId))).toEqual(new Set(['stub-ok']));
    },
    60_000,
  );

  it(
    'refuses bad tokens, bad task files and reserved ids with exit 2, and the server stays up',
    async () => {
      const { server, url } = await serve();
      const intruder = start('agent', '--connect', url, '--id', 'intruder', '--token', 'wrong');
      expect(await intruder.exited).toBe(2);
      const badRun = start('run', taskFile('dup.json', { id: 'dup', subtasks: [{ id: 'a' }, { id: 'a' }] }), '--connect', url);
      expect(await badRun.exited).toBe(2);
      const notJson = start('run', taskFile('broken.json', '{"id": '), '--connect', url);
      expect(await notJson.exited).toBe(2);
      const notWire = start('run', taskFile('extreme.json', { id: 'x', subtasks: [{ id: 'a' }], complexity: 'extreme' }), '--connect', url);
      expect(await notWire.exited).toBe(2);
      const squatter = start('agent', '--connect', url, '--id', 'coordinator');
      expect(await squatter.exited).toBe(2);
      expect(server.lines.join('\n')).toMatch(/refused .*invalid token \(close 4001\)/);
      expect(server.child.exitCode).toBeNull();
    },
    60_000,
  );
});
