import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNatsServer } from '../streams/natsServer.js';
import { cliProcesses, type Proc } from './cliProcesses.js';

// A client command that cannot make its connection says why at once and exits 2; one whose
// connection was open and then went silent waits out --silence-ms, as the task may be running.
// Each process is bounded by WAIT_MS (well under the silence limit given): a command that waited
// for the silence limit would be killed and fail the test, with no wall-clock assertion.
const TOKEN = 'connect-secret';
const WAIT_MS = 30_000;
const SILENCE = ['--silence-ms', '120000'];

const { start, killAll } = cliProcesses(TOKEN, WAIT_MS);
let dir: string;
let task: string;

/** A port on 127.0.0.1 that nothing listens on: taken from the system, then let go. */
function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Its exit code and stderr, or an error (after killing it) when it has not exited within WAIT_MS. */
async function ended(proc: Proc): Promise<{ code: number | null; stderr: string }> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      proc.child.kill('SIGKILL');
      reject(new Error(`still running after ${WAIT_MS} ms; stderr:\n${proc.stderr()}`));
    }, WAIT_MS);
  });
  try {
    const code = await Promise.race([proc.exited, bound]);
    return { code, stderr: proc.stderr() };
  } finally {
    clearTimeout(timer);
  }
}

const commands = (url: string): Array<[string, string[]]> => [
  ['run', ['run', task, '--connect', url, ...SILENCE]],
  ['run --detach', ['run', task, '--connect', url, '--detach', ...SILENCE]],
  ['attach', ['attach', 'review-42', '--connect', url, ...SILENCE]],
  ['status', ['status', '--connect', url]],
  ['tasks', ['tasks', '--connect', url]],
  ['cancel', ['cancel', 'review-42', '--connect', url]],
];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rxswarm-connect-'));
  task = join(dir, 'review.json');
  writeFileSync(task, JSON.stringify({ id: 'review-42', subtasks: [{ id: 's-1', payload: { sleepMs: 60_000 } }] }));
});

afterEach(() => killAll());

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a client command that cannot connect', () => {
  it('to a closed port: each command exits 2 at once, saying the connection was refused and to check that rxswarm serve runs there', async () => {
    const port = await closedPort();
    for (const [name, args] of commands(`ws://127.0.0.1:${port}`)) {
      const { code, stderr } = await ended(start(...args));
      expect({ name, code }).toEqual({ name, code: 2 });
      expect(stderr).toContain(`cannot connect: connection refused by 127.0.0.1:${port} (ECONNREFUSED): is \`rxswarm serve\` running on that host and port?`);
      expect(stderr).not.toMatch(/may still run|said nothing|close 1006/);
      if (name.startsWith('run')) expect(stderr).toMatch(/^error: task review-42 was not submitted: /);
    }
  });

  it('to a host name that does not resolve: each command exits 2 at once, naming the host and what to check', async () => {
    for (const [name, args] of commands('ws://nosuchhost.invalid:7070')) {
      const { code, stderr } = await ended(start(...args));
      expect({ name, code }).toEqual({ name, code: 2 });
      expect(stderr).toMatch(/cannot connect: host nosuchhost\.invalid not found \((ENOTFOUND|EAI_AGAIN|EAI_NONAME|EAI_FAIL|EAI_NODATA)\): check the host name in the URL and this machine's DNS/);
      expect(stderr).not.toMatch(/may still run|said nothing|close 1006/);
    }
  });

  it('to a port that takes TCP but never upgrades: the attempt is abandoned and said to have had no answer', async () => {
    // A listener that accepts and says nothing: the WebSocket upgrade never comes.
    const silent = createServer(socket => socket.on('error', () => undefined));
    await new Promise<void>(resolve => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as { port: number };
    try {
      const { code, stderr } = await ended(start('run', task, '--connect', `ws://127.0.0.1:${port}`, '--silence-ms', '2000'));
      expect(code).toBe(2);
      expect(stderr).toContain(`error: task review-42 was not submitted: ws://127.0.0.1:${port}: cannot connect: no answer from 127.0.0.1:${port} within 2000 ms: is the host up, is \`rxswarm serve\` listening there`);
      expect(stderr).not.toMatch(/may still run/);
    } finally {
      silent.close();
    }
  });

  it('with a token the coordinator does not take: exits 2 at once, saying to check the token', async () => {
    const server = start('serve', '--port', '0');
    const url = (/ws:\/\/[\d.]+:\d+/.exec(await server.line(/listening on ws:\/\//)) as RegExpExecArray)[0];
    for (const [name, args] of commands(url)) {
      const { code, stderr } = await ended(start(...args, '--token', 'not-the-token'));
      expect({ name, code }).toEqual({ name, code: 2 });
      expect(stderr).toContain('the coordinator refused the token (close 4001: invalid token): check --token or RXSWARM_TOKEN');
      expect(stderr).not.toMatch(/may still run|said nothing/);
    }
  });

  it('over NATS with no coordinator answering: run keeps trying within --silence-ms (a failover may be under way), then says the task was not submitted and why; tasks says why at once', async () => {
    const nats = await startNatsServer({ jetstream: false });
    try {
      const run = await ended(start('run', task, '--nats', nats.url, '--silence-ms', '2000'));
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(/^error: task review-42 was not submitted: nats:\/\/.*: cannot connect within 2000 ms: no coordinator answers on rxswarm\.hello: is `rxswarm serve --nats` running against this NATS server/);
      expect(run.stderr).not.toMatch(/may still run/);
      const tasks = await ended(start('tasks', '--nats', nats.url));
      expect(tasks.code).toBe(2);
      expect(tasks.stderr).toMatch(/cannot connect: no coordinator answers on rxswarm\.hello/);
    } finally {
      await nats.stop();
    }
  });

  it('a run whose connection was open and then went silent still waits out --silence-ms and says how to follow the task', async () => {
    const server = start('serve', '--port', '0');
    const url = (/ws:\/\/[\d.]+:\d+/.exec(await server.line(/listening on ws:\/\//)) as RegExpExecArray)[0];
    const run = start('run', task, '--connect', url, '--silence-ms', '2000');
    // No agents: the task is taken and waits; then the coordinator is gone without a word.
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the task was not taken within ${WAIT_MS} ms; stderr:\n${run.stderr()}`)), WAIT_MS);
      const taken = (): void => {
        if (!/task review-42: (running|queued)/.test(run.stderr())) return;
        clearTimeout(timer);
        run.child.stderr?.off('data', taken);
        resolve();
      };
      run.child.stderr?.on('data', taken);
      taken();
    });
    server.child.kill('SIGKILL');
    const { code, stderr } = await ended(run);
    expect(code).toBe(2);
    expect(stderr).toContain('the coordinator has said nothing for 2000 ms; task review-42 may still run (rxswarm attach review-42 follows it)');
  });
});
