import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CoordinationResult } from '../../src/events.js';
import type { LedgerEvent } from '../../src/ledger.js';
import { FileJournal } from '../../streams/journal.js';
import { createRandom } from '../../streams/random.js';
import { freePort } from '../streams/natsServer.js';
import { cliProcesses, root, type Proc } from './cliProcesses.js';

// The coordinator itself killed and restarted, as real processes on loopback: `serve --data-dir`,
// agents that reconnect, and a `run` that follows its task across every restart. Waits are on what
// the processes print; the timeouts only bound a test that has gone wrong.
const countingPath = join(root, 'test', 'fixtures', 'countingHandler.mjs');
const TOKEN = 'durable-secret';
const WAIT_MS = 60_000;
/** Coordinator kills per CI run; more with RXSWARM_KILLS. */
const KILLS = Number(process.env['RXSWARM_KILLS'] ?? 10);

const { start, killAll, dataDir } = cliProcesses(TOKEN, WAIT_MS);
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rxswarm-durable-e2e-'));
});
afterEach(() => killAll());
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function serve(port: number, data: string, ...more: string[]): Promise<Proc> {
  const server = start('serve', '--port', String(port), '--heartbeat-ms', '200', '--data-dir', data, ...more);
  await server.line(/listening on ws:\/\//);
  return server;
}

function taskFile(name: string, task: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(task));
  return path;
}

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms));

describe('a coordinator that survives its own death (real processes)', () => {
  it(
    `SIGKILL the coordinator at ${KILLS} random points of a 200-subtask task: run exits 0 with all 200 results, each accepted once, and nothing accepted runs again`,
    async () => {
      const seed = Number(process.env['RXSWARM_SEED'] ?? Date.now() % 2 ** 31);
      console.log(`coordinator kills: ${KILLS}, seed ${seed} (RXSWARM_SEED=${seed} replays the kill points)`);
      const random = createRandom(seed);
      const port = await freePort();
      const data = dataDir();
      const log = join(dir, 'executions.log');
      process.env['RXSWARM_EXECUTIONS'] = log;
      let server = await serve(port, data);
      const url = `ws://127.0.0.1:${port}`;
      const agents = [0, 1, 2, 3].map(i => start('agent', '--connect', url, '--id', `d-${i}`, '--heartbeat-ms', '200', '--handler', countingPath));
      await Promise.all(agents.map(a => a.line(/joined/)));
      const subtasks = Array.from({ length: 200 }, (_, i) => ({ id: `s-${i}`, payload: { sleepMs: 30 } }));
      const run = start('run', taskFile('durable.json', { id: 'durable', subtasks }), '--connect', url, '--json', '--silence-ms', '60000');

      const executed = (): string[] => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').filter(Boolean) : []);
      for (let k = 0; k < KILLS && run.child.exitCode === null; k++) {
        // A random point: some executions further on (the agents work while the coordinator is down too).
        const target = Math.min(195, executed().length + 3 + Math.floor(random.next() * 15));
        const deadline = Date.now() + WAIT_MS;
        while (executed().length < target && Date.now() < deadline && run.child.exitCode === null) await sleep(20);
        server.child.kill('SIGKILL');
        await server.exited;
        server = await serve(port, data);
      }

      expect(await run.exited, run.stderr()).toBe(0);
      const result = JSON.parse(run.lines.join('\n')) as CoordinationResult;
      expect(result.success).toBe(true);
      expect(Object.keys(result.results).sort()).toEqual(subtasks.map(s => s.id).sort());

      // The journal: every subtask accepted once over all the coordinator's lives.
      server.child.kill('SIGKILL');
      await server.exited;
      const journal = FileJournal.open(data);
      const records = journal.recover().records as LedgerEvent[];
      await journal.close();
      const accepted = new Map<string, number>();
      for (const e of records) {
        if (e.type !== 'subtask.accepted') continue;
        expect(accepted.has(e.subtaskId), `${e.subtaskId} accepted twice`).toBe(false);
        accepted.set(e.subtaskId, e.attempt);
      }
      expect(accepted.size).toBe(200);
      // Nothing accepted ran again: every execution's attempt is at most the one accepted.
      const runs = executed().map(line => line.split(' ') as [string, string]);
      const again = runs.filter(([id, attempt]) => Number(attempt) > (accepted.get(id) ?? Infinity));
      expect(again).toEqual([]);
      // Executions per subtask: at most 1 + what was in flight at each kill (4 agents, 1 slot each).
      console.log(`executions: ${runs.length} for 200 subtasks over ${KILLS} coordinator kills (${(runs.length / 200).toFixed(3)} per subtask; bound ${(1 + (KILLS * 4) / 200).toFixed(3)})`);
      expect(runs.length).toBeLessThanOrEqual(200 + KILLS * 4);
    },
    600_000,
  );

  it('SIGSTOP the coordinator: run says so within its silence limit and exits 2; --detach, attach, tasks and Ctrl-C off a terminal', async () => {
    const port = await freePort();
    const data = dataDir();
    const server = await serve(port, data, '--max-tasks', '1');
    const url = `ws://127.0.0.1:${port}`;
    const agent = start('agent', '--connect', url, '--id', 'w-0', '--heartbeat-ms', '200');
    await agent.line(/joined/);

    // --detach: the id, once the coordinator has it; attach follows it to its result.
    const detached = start('run', taskFile('detached.json', { id: 'later', subtasks: [{ id: 'a', payload: { sleepMs: 300 } }] }), '--connect', url, '--detach');
    expect(await detached.exited).toBe(0);
    expect(detached.lines).toEqual(['later']);
    const attached = start('attach', 'later', '--connect', url, '--json');
    expect(await attached.exited).toBe(0);
    expect((JSON.parse(attached.lines.join('\n')) as CoordinationResult).results).toHaveProperty('a');

    // A queued task shows its position; Ctrl-C off a terminal cancels it.
    const long = start('run', taskFile('long.json', { id: 'long', subtasks: Array.from({ length: 30 }, (_, i) => ({ id: `l-${i}`, payload: { sleepMs: 3000 } })) }), '--connect', url, '--json');
    const running = Date.now() + WAIT_MS;
    while (!/task long: running/.test(long.stderr()) && Date.now() < running) await sleep(50);
    const queued = start('run', taskFile('queued.json', { id: 'queued', subtasks: [{ id: 'q' }] }), '--connect', url, '--json');
    const deadline = Date.now() + WAIT_MS;
    while (!/queued, position 1/.test(queued.stderr()) && Date.now() < deadline) await sleep(50);
    expect(queued.stderr()).toMatch(/task queued: queued, position 1/);
    const tasks = start('tasks', '--connect', url, '--json');
    expect(await tasks.exited).toBe(0);
    expect(JSON.parse(tasks.lines.join('\n'))).toEqual(expect.arrayContaining([expect.objectContaining({ id: 'long', state: 'running' }), expect.objectContaining({ id: 'queued', state: 'queued', queuePosition: 1 })]));
    queued.child.kill('SIGINT');
    expect(await queued.exited).toBe(1);
    expect(JSON.parse(queued.lines.join('\n'))).toMatchObject({ taskId: 'queued', success: false, failed: { q: 'cancelled' } });

    // SIGSTOP: the run waits at most its silence limit.
    const silent = start('run', taskFile('silent.json', { id: 'silent', subtasks: [{ id: 's' }] }), '--connect', url, '--silence-ms', '3000');
    const until = Date.now() + WAIT_MS;
    while (!/task silent: queued, position 1/.test(silent.stderr()) && Date.now() < until) await sleep(50);
    const stoppedAt = Date.now();
    server.child.kill('SIGSTOP');
    expect(await silent.exited).toBe(2);
    expect(Date.now() - stoppedAt).toBeLessThan(3000 + 10_000);
    expect(silent.stderr()).toMatch(/said nothing for 3000 ms; task silent may still run \(rxswarm attach silent follows it\)/);
    server.child.kill('SIGCONT');
    long.child.kill('SIGKILL');
  }, 180_000);

  it('a damaged journal is refused at start with the file and offset; a torn last record is dropped', async () => {
    const port = await freePort();
    const data = dataDir();
    const first = await serve(port, data);
    first.child.kill('SIGKILL');
    await first.exited;
    const segment = join(data, 'journal-00000001.log');
    writeFileSync(segment, '{"type":"attempts.reserved","upTo":5}\t00000000\n{"type":"task.forgotten","taskId":"x"}\tffffffff\n');
    const refused = start('serve', '--port', String(port), '--data-dir', data);
    expect(await refused.exited).toBe(2);
    expect(refused.stderr()).toContain(`the journal is damaged: ${segment} at byte 0`);
    writeFileSync(segment, '{"type":"attempts.re');
    const torn = await serve(port, data);
    expect(torn.child.exitCode).toBe(null);
  }, 120_000);
});
