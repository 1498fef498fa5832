import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CoordinationResult } from '../../src/events.js';
import { scanGroup } from '../../src/processGroup.js';
import { cliProcesses, type Proc } from './cliProcesses.js';

// `rxswarm agent --exec` as a user runs it, beside `serve` and `run`, on loopback. Each command
// writes its process group id ($$ of the shell) to a file, so the test can check /proc for it.
const TOKEN = 'exec-secret';
const WAIT_MS = 30_000;
const { start, killAll } = cliProcesses(TOKEN, WAIT_MS);
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rxswarm-exec-'));
});
afterEach(() => killAll());
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function serve(): Promise<string> {
  const server: Proc = start('serve', '--port', '0', '--heartbeat-ms', '200');
  return (/ws:\/\/[\d.]+:\d+/.exec(await server.line(/listening on ws:\/\//)) as RegExpExecArray)[0];
}

async function until(check: () => boolean, what: string): Promise<void> {
  const end = performance.now() + WAIT_MS;
  while (!check()) {
    if (performance.now() > end) throw new Error(`not within ${WAIT_MS} ms: ${what}`);
    await new Promise(resolve => setTimeout(resolve, 25));
  }
}

const pids = (file: string): number[] => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).map(Number) : []);

/**
 * An `--exec` agent `id` running `command` (SIGTERM-deaf, hanging) for a one-subtask task, once the
 * command's group holds `members` processes; the command writes its group id to `log`.
 */
async function hanging(id: string, command: string, members: number): Promise<{ agent: Proc; log: string }> {
  const url = await serve();
  const log = join(dir, `groups-${id}`);
  const agent = start('agent', '--connect', url, '--id', id, '--heartbeat-ms', '200', '--exec', `echo $$ >> ${log}; ${command}`);
  await agent.line(/joined/);
  const path = join(dir, `${id}.json`);
  writeFileSync(path, JSON.stringify({ id, subtasks: [{ id: 'a' }] }));
  start('run', path, '--connect', url, '--json');
  await until(() => pids(log).length === 1 && scanGroup(pids(log)[0]!).pids.length >= members, `the command and its ${members - 1} children up`);
  return { agent, log };
}

describe('rxswarm agent --exec', () => {
  it(
    'runs a command per subtask: payload on stdin, stdout the result, a failing exit retried elsewhere with its stderr',
    async () => {
      const url = await serve();
      const log = join(dir, 'groups-1');
      const command = `echo $$ >> ${log}; n=$(cat | tr -dc 0-9); [ "$n" = 13 ] && { echo unlucky >&2; exit 4; }; echo "{\\"square\\": $((n * n))}"`;
      const agents = ['x-1', 'x-2'].map(id => start('agent', '--connect', url, '--id', id, '--heartbeat-ms', '200', '--exec', command, '--max-rss', '256M'));
      await Promise.all(agents.map(a => a.line(/joined/)));
      expect(agents[0]!.lines.join('\n')).toMatch(/with --exec .* \(--max-rss 268435456 bytes\)/);
      const subtasks = [2, 3, 13, 7].map(n => ({ id: `n-${n}`, payload: n }));
      const path = join(dir, 'squares.json');
      writeFileSync(path, JSON.stringify({ id: 'squares', subtasks }));
      const run = start('run', path, '--connect', url, '--json');
      expect(await run.exited).toBe(1);
      const result = JSON.parse(run.lines.join('\n')) as CoordinationResult;
      expect(result.results).toEqual({ 'n-2': { square: 4 }, 'n-3': { square: 9 }, 'n-7': { square: 49 } });
      expect(result.failed['n-13']).toMatch(/exited with code 4: unlucky/);
      // Every group that ran is gone.
      await until(() => pids(log).every(pgid => scanGroup(pgid).pids.length === 0), 'no process of any group left');
      expect(pids(log).length).toBeGreaterThanOrEqual(6); // 3 results + 3 attempts of n-13
    },
    WAIT_MS * 2,
  );

  it(
    'an agent told to leave ends its running commands, grandchildren and SIGTERM-deaf ones included',
    async () => {
      const { agent, log } = await hanging('x-3', `trap '' TERM; sh -c "trap '' TERM; sleep 1000" & sleep 1000 & wait`, 4);
      agent.child.kill('SIGTERM');
      expect(await agent.exited).toBe(0);
      for (const pgid of pids(log)) expect(scanGroup(pgid).pids).toEqual([]);
    },
    WAIT_MS * 2,
  );

  it(
    'an agent told twice to go exits at once (130), and its commands go with it',
    async () => {
      const { agent, log } = await hanging('x-4', `trap '' TERM; sleep 1000 & wait`, 2);
      agent.child.kill('SIGTERM');
      await agent.line(/left/);
      agent.child.kill('SIGTERM'); // within the commands' 2 s grace: the process exits now
      expect(await agent.exited).toBe(130);
      await until(() => scanGroup(pids(log)[0]!).pids.length === 0, 'no process of the group left');
    },
    WAIT_MS * 2,
  );

  it('refuses --exec with --handler, and --max-rss without --exec or unreadable', async () => {
    const both = start('agent', '--connect', 'ws://127.0.0.1:1', '--exec', 'cat', '--handler', 'x.mjs');
    expect(await both.exited).toBe(2);
    expect(both.stderr()).toMatch(/--exec and --handler/);
    const alone = start('agent', '--connect', 'ws://127.0.0.1:1', '--max-rss', '1G');
    expect(await alone.exited).toBe(2);
    expect(alone.stderr()).toMatch(/--max-rss is the budget of --exec/);
    const bad = start('agent', '--connect', 'ws://127.0.0.1:1', '--exec', 'cat', '--max-rss', 'lots');
    expect(await bad.exited).toBe(2);
    expect(bad.stderr()).toMatch(/must be a size in bytes/);
  });
});
