/**
 * `agent --exec` overhead per subtask: {@link execHandler} running a command for each of
 * {@link SUBTASKS} subtasks one after another, against a plain loop spawning the same command the same
 * way (`/bin/sh -c`, its own process group, the payload written to stdin, stdout read to its end,
 * the exit awaited) in the same process. The two alternate in rounds and each takes its median round,
 * so a neighbour's burst on the shared machine hits both. The ratio is exec / plain time per
 * subtask (lower is better); the target is <= 1.2×.
 */
import { spawn } from 'node:child_process';
import { asyncScheduler, lastValueFrom, throwError } from 'rxjs';
import { execHandler } from '../src/execHandler.js';
import type { AgentContext } from '../streams/task.js';
import { formatNumber, median, ratioRow, type BenchRow } from './harness.js';

const COMMAND = 'cat';
const SUBTASKS = 100;
const ROUNDS = 5;
const PAYLOAD = { prompt: 'summarise chapter 1', n: 1 };

function plainOnce(): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', COMMAND], { detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.resume();
    child.once('error', reject);
    child.once('close', code => (code === 0 ? resolve(Buffer.concat(out).toString('utf8')) : reject(new Error(`exit ${code}`))));
    child.stdin.end(JSON.stringify(PAYLOAD));
  });
}

async function timed(once: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < SUBTASKS; i++) await once();
  return (performance.now() - start) / SUBTASKS;
}

export default async function bench(): Promise<BenchRow[]> {
  const agent = execHandler({ command: COMMAND });
  const context: AgentContext = { agentId: 'bench', attempt: 1, scheduler: asyncScheduler, signal: new AbortController().signal, heartbeat: () => undefined, usage: () => undefined, delegate: () => Promise.reject(new Error('no coordinator here')), delegate$: () => throwError(() => new Error('no coordinator here')) };
  const viaExec = (): Promise<unknown> => lastValueFrom(agent.handle({ id: 's', payload: PAYLOAD }, context));
  await timed(plainOnce);
  await timed(viaExec);
  const plain: number[] = [];
  const exec: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    if (round % 2 === 0) plain.push(await timed(plainOnce));
    exec.push(await timed(viaExec));
    if (round % 2 === 1) plain.push(await timed(plainOnce));
  }
  await agent.close();
  const suite = 'agent --exec overhead';
  const plainMs = median(plain);
  const execMs = median(exec);
  return [
    { suite, case: `plain spawn loop (sh -c ${COMMAND}, own group)`, value: plainMs, unit: 'ms/subtask', note: `${SUBTASKS} subtasks × ${ROUNDS} rounds, median round` },
    ratioRow(suite, 'execHandler (group, /proc, kill of leftovers)', execMs, 'ms/subtask', 'plain', plainMs, '<= 1.2x', `${formatNumber(1000 / execMs)} subtasks/s one at a time`),
  ];
}
