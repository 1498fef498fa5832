import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CoordinationResult } from '../../src/events.js';
import { freePort } from '../streams/natsServer.js';
import { cliProcesses, root } from './cliProcesses.js';

// Real agents as processes. A long call that never reports progress: `serve` with a progress
// deadline shorter than the call, two agents. The call is hedged, not restarted: it completes once,
// and no attempt loop follows (before, it was reassigned at every deadline and never finished).
// Delegation across processes: a handler in one agent process asks (`context.delegate`, over the
// WebSocket) for children that only another agent process can run; each child runs once, its
// result comes back to the waiting parent, and the task reports parent and children.
const countingPath = join(root, 'test', 'fixtures', 'countingHandler.mjs');
const handlerPath = join(root, 'test', 'fixtures', 'delegatingHandler.mjs');
const TOKEN = 'long-call-secret';
const { start, killAll } = cliProcesses(TOKEN, 60_000);
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rxswarm-long-call-'));
});
afterEach(() => killAll());
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a long call with no progress (real processes)', () => {
  it('runs past the progress deadline, is hedged once, and its result is accepted once: no reassignment loop', async () => {
    const port = await freePort();
    const log = join(dir, 'executions.log');
    process.env['RXSWARM_EXECUTIONS'] = log;
    // 3.5 s of silent work against a 2 s deadline: the 35 s call against 30 s, scaled down.
    const server = start('serve', '--port', String(port), '--heartbeat-ms', '200', '--progress-timeout', '2s');
    await server.line(/listening on ws:\/\//);
    const url = `ws://127.0.0.1:${port}`;
    const agents = ['x', 'y'].map(id => start('agent', '--connect', url, '--id', id, '--heartbeat-ms', '200', '--handler', countingPath));
    await Promise.all(agents.map(a => a.line(/joined/)));
    const file = join(dir, 'long.json');
    writeFileSync(file, JSON.stringify({ id: 'long', subtasks: [{ id: 'call', payload: { sleepMs: 3500 } }] }));
    const run = start('run', file, '--connect', url, '--json');
    expect(await run.exited, run.stderr()).toBe(0);
    const result = JSON.parse(run.lines.join('\n')) as CoordinationResult;
    expect(result.success).toBe(true);
    expect(Object.keys(result.results)).toEqual(['call']);
    // The call and, once it was silent past the deadline, one backup: nothing more.
    const executions = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : [];
    expect(executions.length).toBeGreaterThanOrEqual(1);
    expect(executions.length).toBeLessThanOrEqual(2);
    expect(result.metrics.staleResultsRejected).toBe(0);
  }, 90_000);
});

describe('delegation between agent processes', () => {
  it('a writer waits for three searches a searcher runs; each runs once and the writer gets their results', async () => {
    const port = await freePort();
    const log = join(dir, 'delegations.log');
    process.env['RXSWARM_EXECUTIONS'] = log;
    const server = start('serve', '--port', String(port), '--heartbeat-ms', '200', '--progress-timeout', '2s');
    await server.line(/listening on ws:\/\//);
    const url = `ws://127.0.0.1:${port}`;
    const writer = start('agent', '--connect', url, '--id', 'writer', '--capabilities', 'text', '--heartbeat-ms', '200', '--handler', handlerPath);
    const searcher = start('agent', '--connect', url, '--id', 'searcher', '--capabilities', 'web', '--slots', '2', '--heartbeat-ms', '200', '--handler', handlerPath);
    await Promise.all([writer, searcher].map(a => a.line(/joined/)));
    // The searches take longer than the progress deadline: the waiting writer must not be taken for hung.
    const children = ['a', 'b', 'c'].map(id => ({ id, capabilities: ['web'], payload: { sleepMs: 1500 } }));
    const file = join(dir, 'write.json');
    writeFileSync(file, JSON.stringify({ id: 'report', subtasks: [{ id: 'write', capabilities: ['text'], payload: { children } }] }));
    const run = start('run', file, '--connect', url, '--json');
    expect(await run.exited, run.stderr()).toBe(0);
    const result = JSON.parse(run.lines.join('\n')) as CoordinationResult;
    expect(result.success).toBe(true);
    expect(Object.keys(result.results).sort()).toEqual(['write', 'write/a', 'write/b', 'write/c']);
    expect(result.results['write']).toEqual({
      by: 'writer',
      subtaskId: 'write',
      children: ['a', 'b', 'c'].map(id => ({ by: 'searcher', subtaskId: `write/${id}`, children: [] })),
    });
    const executions = readFileSync(log, 'utf8').trim().split('\n').map(line => line.split(' ').slice(0, 2).join(' '));
    expect(executions.sort()).toEqual(['searcher write/a', 'searcher write/b', 'searcher write/c', 'writer write']);
  }, 90_000);
});
