import { asyncScheduler, lastValueFrom, throwError, type Subscription } from 'rxjs';
import { execHandler, parseByteSize, type ExecAgent, type ExecOptions } from '../../src/execHandler.js';
import { scanGroup } from '../../src/processGroup.js';
import type { AgentContext, Subtask } from '../../streams/task.js';

// Real processes. Every test ends by asserting that no live process of any group it started is
// left (read from /proc by process group id), within a bounded wait; afterEach kills what is left.
const GONE_WITHIN_MS = 5000;
const agents: ExecAgent[] = [];
afterEach(async () => {
  for (const agent of agents.splice(0)) await agent.close();
});

function make(command: string, options: Omit<ExecOptions, 'command'> = {}): ExecAgent {
  const agent = execHandler({ command, ...options });
  agents.push(agent);
  return agent;
}

function context(heartbeats: number[] = []): AgentContext & { controller: AbortController } {
  const controller = new AbortController();
  return { agentId: 'x-1', attempt: 1, scheduler: asyncScheduler, signal: controller.signal, heartbeat: p => void heartbeats.push(p ?? 0), usage: () => undefined, delegate: () => Promise.reject(new Error('no coordinator here')), delegate$: () => throwError(() => new Error('no coordinator here')), controller };
}

const subtask = (payload?: unknown): Subtask => ({ id: 's-1', payload });

function run(agent: ExecAgent, payload?: unknown, ctx = context()): Promise<unknown> {
  return lastValueFrom(agent.handle(subtask(payload), ctx) as never);
}

async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const end = performance.now() + ms;
  while (!check()) {
    if (performance.now() > end) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise(resolve => setTimeout(resolve, 20));
  }
}

/** The running groups once they are all up (each has written its pid), then their members. */
async function started(agent: ExecAgent, count = 1): Promise<number[]> {
  await until(() => agent.groups().length === count, GONE_WITHIN_MS, `${count} group(s) running`);
  return agent.groups();
}

async function noneLeft(pgids: readonly number[]): Promise<void> {
  await until(() => pgids.every(pgid => scanGroup(pgid).pids.length === 0), GONE_WITHIN_MS, `groups ${pgids.join(', ')} gone (left: ${pgids.flatMap(g => scanGroup(g).pids).join(', ')})`);
}

/** Starts the attempt and returns its subscription, its groups once the children are up, and its outcome. */
async function startRun(agent: ExecAgent, members: number, payload?: unknown, ctx = context()): Promise<{ sub: Subscription; pgid: number; outcome: Promise<unknown> }> {
  let sub!: Subscription;
  const outcome = new Promise<unknown>((resolve, reject) => {
    sub = agent.handle(subtask(payload), ctx).subscribe({ next: resolve, error: reject });
  });
  outcome.catch(() => undefined);
  const [pgid] = await started(agent);
  await until(() => scanGroup(pgid as number).pids.length >= members, GONE_WITHIN_MS, `${members} processes in the group`);
  return { sub, pgid: pgid as number, outcome };
}

describe('execHandler', () => {
  it('gives the payload as JSON on stdin and takes stdout as the result, parsed when it is JSON', async () => {
    expect(await run(make('cat'), { text: 'hi', n: [1, 2] })).toEqual({ text: 'hi', n: [1, 2] });
    expect(await run(make('echo hello; echo world'))).toBe('hello\nworld');
    expect(await run(make('cat'))).toBeNull();
  });

  it('fails an attempt that exits non-zero with the end of its stderr, bounded', async () => {
    await expect(run(make('echo oops >&2; exit 3'))).rejects.toThrow(/exited with code 3: oops/);
    const error = await run(make(`head -c 100000 /dev/zero | tr '\\0' x >&2; echo THE-END >&2; exit 1`), undefined).catch((e: Error) => e);
    expect((error as Error).message).toMatch(/THE-END$/);
    expect((error as Error).message.length).toBeLessThan(2200);
  });

  it('counts output on stderr as progress, at most once per progressEveryMs', async () => {
    const beats: number[] = [];
    const result = await run(make(`for i in 1 2 3 4 5 6; do echo step $i >&2; sleep 0.1; done; echo '{"done":true}'`, { progressEveryMs: 200 }), undefined, context(beats));
    expect(result).toEqual({ done: true });
    expect(beats.length).toBeGreaterThanOrEqual(2);
    expect(beats.length).toBeLessThanOrEqual(4);
  });

  it('ends a cancelled hung attempt with its grandchildren', async () => {
    const agent = make('sleep 1000 & sh -c "sleep 1000 & wait" & wait');
    const { sub, pgid } = await startRun(agent, 4);
    sub.unsubscribe();
    await noneLeft([pgid]);
  });

  it('ends an attempt when its signal aborts (revoked)', async () => {
    const ctx = context();
    const { pgid, outcome } = await startRun(make('sleep 1000 & wait'), 2, undefined, ctx);
    ctx.controller.abort(new DOMException('revoked', 'AbortError'));
    await expect(outcome).rejects.toThrow(/was cancelled/);
    await noneLeft([pgid]);
  });

  it('SIGKILLs children that ignore SIGTERM after the grace', async () => {
    const agent = make(`trap '' TERM; sh -c "trap '' TERM; sleep 1000" & sleep 1000 & wait`, { killGraceMs: 300 });
    const { sub, pgid } = await startRun(agent, 4);
    const cancelledAt = performance.now();
    sub.unsubscribe();
    await new Promise(resolve => setTimeout(resolve, 150));
    expect(scanGroup(pgid).pids.length).toBeGreaterThan(0); // SIGTERM was ignored…
    await noneLeft([pgid]); // …SIGKILL was not
    expect(performance.now() - cancelledAt).toBeGreaterThanOrEqual(290);
  });

  it('kills what the command left running in its group when it exits', async () => {
    const agent = make('sleep 1000 & echo done');
    const result = run(agent);
    const [pgid] = await started(agent);
    expect(await result).toBe('done');
    await noneLeft([pgid as number]);
  });

  it('kills a child that spews on stdout and fails the attempt, its memory bounded', async () => {
    const agent = make('yes', { maxStdoutBytes: 64 * 1024 });
    const outcome = run(agent).catch((e: Error) => e);
    const [pgid] = await started(agent);
    expect(String(await outcome)).toMatch(/more than 65536 bytes on stdout/);
    await noneLeft([pgid as number]);
  });

  it('kills a child over its memory budget and says so', async () => {
    const leak = `${process.execPath} -e "const a = []; setInterval(() => a.push(Buffer.alloc(8 * 1024 * 1024, 1)), 10)"`;
    const agent = make(leak, { maxRssBytes: 128 * 1024 * 1024, sampleEveryMs: 50 });
    const outcome = run(agent).catch((e: Error) => e);
    const [pgid] = await started(agent);
    expect(String(await outcome)).toMatch(/used [\d.]+ MiB of memory, over its budget of 128\.0 MiB/);
    await noneLeft([pgid as number]);
  });

  it('reports the children’s memory and CPU as usage while they run', async () => {
    const agent = make('while :; do :; done', { maxRssBytes: 64 * 1024 * 1024, sampleEveryMs: 50 });
    const { sub, pgid } = await startRun(agent, 1);
    await until(() => agent.usage().cpuCores > 0.3, GONE_WITHIN_MS, 'a busy core seen');
    const usage = agent.usage();
    expect(usage.rssBytes).toBeGreaterThan(0);
    expect(usage.memoryFraction).toBeGreaterThan(0);
    expect(usage.memoryFraction).toBeLessThan(1);
    sub.unsubscribe();
    await noneLeft([pgid]);
    await until(() => agent.groups().length === 0, GONE_WITHIN_MS, 'the run forgotten');
    expect(agent.usage()).toEqual({ rssBytes: 0, cpuCores: 0, memoryFraction: 0 });
  });

  it('ends every running group on close (the agent leaving)', async () => {
    const agent = make('sleep 1000 & wait', { killGraceMs: 200 });
    for (let i = 0; i < 3; i++) agent.handle(subtask(), context()).subscribe({ error: () => undefined });
    const pgids = await started(agent, 3);
    await agent.close();
    for (const pgid of pgids) expect(scanGroup(pgid).pids).toEqual([]);
  });

  it('refuses bad options', () => {
    expect(() => execHandler({ command: ' ' })).toThrow(RangeError);
    expect(() => execHandler({ command: 'cat', maxRssBytes: 0 })).toThrow(/maxRssBytes/);
    expect(() => execHandler({ command: 'cat', killGraceMs: -1 })).toThrow(/killGraceMs/);
  });

  it('reads sizes as people write them', () => {
    expect(parseByteSize('1048576')).toBe(1048576);
    expect(parseByteSize('512M')).toBe(512 * 1024 ** 2);
    expect(parseByteSize('2G')).toBe(2 * 1024 ** 3);
    expect(parseByteSize('2gb')).toBe(2 * 1024 ** 3);
    expect(parseByteSize('1.5GiB')).toBe(1.5 * 1024 ** 3);
    expect(parseByteSize('64k')).toBe(65536);
    for (const bad of ['', 'M', '-1M', '0', '2X', '1e9']) expect(() => parseByteSize(bad)).toThrow(RangeError);
  });
});
