/**
 * Failover of a coordinator cluster (issue 15): the leader `serve --nats` process is SIGKILLed
 * while a task runs; the time from the kill to the first assignment sent by the new leader (seen
 * on the coordinator-to-session subjects, `rxswarm.to.*`, once the lease has a new holder).
 * Median and p99 over `FAILOVER_KILLS` kills (default 10), against the target lease TTL + 1 s,
 * with the lease TTL (`FAILOVER_TTL_MS`, default the CLI's 4000) as the baseline: no failover
 * can be shorter than the TTL, which the standbys must wait out. 3 nodes (a killed one replaced
 * by a fresh standby), 3 agents of 4 slots, subtasks of 100 ms (15,000: the task file stays under the NATS max_payload).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kvm } from '@nats-io/kv';
import { connectNats } from '../streams/natsConnect.js';
import type { LeaseHolder } from '../streams/natsLease.js';
import { cliProcesses, type Proc } from '../test/src/cliProcesses.js';
import { startNatsServer } from '../test/streams/natsServer.js';
import { median, type BenchRow } from './harness.js';

const KILLS = Number(process.env['FAILOVER_KILLS'] ?? 10);
const TTL = Number(process.env['FAILOVER_TTL_MS'] ?? 4000);
const WAIT_MS = 60_000;

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms));
const percentile = (values: number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
};

export default async function bench(): Promise<BenchRow[]> {
  const server = await startNatsServer();
  const dir = mkdtempSync(join(tmpdir(), 'rxswarm-failover-bench-'));
  const { start, killAll } = cliProcesses('failover-bench', WAIT_MS);
  const nc = await connectNats({ url: server.url });
  try {
    const kv = await new Kvm(nc).create('rxswarm-leader', { ttl: TTL, history: 1 });
    const holder = async (): Promise<LeaseHolder | undefined> => {
      const entry = await kv.get('leader').catch(() => null);
      return entry === null || entry.operation !== 'PUT' ? undefined : (JSON.parse(entry.string()) as LeaseHolder);
    };
    const nodes = new Map<number, Proc>();
    let n = 0;
    const node = (): void => {
      const proc = start('serve', '--nats', server.url, '--node-id', `node-${n++}`, '--lease-ttl', String(TTL), '--heartbeat-ms', '250', '--topology', 'star');
      nodes.set(proc.child.pid as number, proc);
    };
    for (let i = 0; i < 3; i++) node();
    // Every assignment the coordinator sends, timed as it passes the NATS server.
    let lastAssign = 0;
    const sub = nc.subscribe('rxswarm.to.>', {
      callback: (_err, msg) => {
        if (msg.data.length > 0 && msg.string().includes('"assign"')) lastAssign = performance.now();
      },
    });
    const until = async <T>(what: string, check: () => Promise<T | undefined>): Promise<T> => {
      const end = Date.now() + WAIT_MS;
      for (;;) {
        const value = await check();
        if (value !== undefined) return value;
        if (Date.now() > end) throw new Error(`failover bench: ${what} not within ${WAIT_MS} ms`);
        await sleep(20);
      }
    };
    await until('a leader', async () => ((await holder()) !== undefined ? true : undefined));
    for (let i = 0; i < 3; i++) start('agent', '--nats', server.url, '--id', `f-${i}`, '--heartbeat-ms', '250', '--slots', '4');
    const path = join(dir, 'task.json');
    writeFileSync(path, JSON.stringify({ id: 'failover', subtasks: Array.from({ length: 15_000 }, (_, i) => ({ id: `s-${i}`, payload: { sleepMs: 100 } })) }));
    const run = start('run', path, '--nats', server.url, '--json');
    await until('the first assignment', async () => (lastAssign > 0 ? true : undefined));
    const times: number[] = [];
    // From each new leader's log: "elected …" (the lease won) to "leader …" (the journal read, the service up).
    const takeovers: number[] = [];
    const reads: string[] = [];
    const journalMs: number[] = [];
    const stamp = (line: string): number => Date.parse(line.slice(0, 24));
    const takeover = async (pid: number): Promise<void> => {
      const proc = nodes.get(pid) as Proc;
      const elected = await proc.line(/ elected /);
      const leading = await proc.line(/ leader .*journal at sequence/);
      takeovers.push(stamp(leading) - stamp(elected));
      reads.push(/read whole/.test(leading) ? 'whole' : (/(\d+) messages read at the election/.exec(leading)?.[1] ?? '?'));
      journalMs.push(Number(/ in (\d+) ms\)/.exec(leading)?.[1] ?? NaN));
    };
    for (let k = 0; k < KILLS; k++) {
      const leader = await until('a leader that assigns', async () => {
        const h = await holder();
        return h !== undefined && nodes.has(h.pid) && performance.now() - lastAssign < 200 ? h : undefined;
      });
      await sleep(500 + ((k * 377) % 1000)); // a point in the leader's work that varies, fixed per kill
      const killedAt = performance.now();
      (nodes.get(leader.pid) as Proc).child.kill('SIGKILL');
      node(); // a fresh standby in its place
      // What the killed process wrote to its socket just before still reaches the server after
      // the kill: the first assignment counted is the first one after the lease has a new holder
      // (polled every 20 ms: a bound on what this adds).
      const newLeaderAt = await until('a new leader', async () => ((await holder())?.nonce !== leader.nonce && (await holder()) !== undefined ? performance.now() : undefined));
      const firstAssign = await until('an assignment by the new leader', async () => (lastAssign > newLeaderAt ? lastAssign : undefined));
      times.push(firstAssign - killedAt);
      await takeover((await holder())?.pid ?? -1);
    }
    sub.unsubscribe();
    if (run.child.exitCode !== null) throw new Error(`failover bench: the run ended early (${run.child.exitCode}): ${run.stderr()}`);
    const med = median(times);
    const p99 = percentile(times, 99);
    const note = `${KILLS} kills, lease TTL ${TTL} ms (renewals every ${TTL / 8} ms): ${times.map(t => Math.round(t)).join(', ')} ms`;
    return [
      { suite: 'cluster: failover', case: 'baseline: the lease TTL (a standby must wait it out)', value: TTL, unit: 'ms' },
      { suite: 'cluster: failover', case: 'leader SIGKILL → first assignment by the new leader, median', value: med, unit: 'ms', ratio: { against: 'lease TTL', value: med / TTL }, target: `<= ${TTL + 1000} ms`, note },
      { suite: 'cluster: failover', case: 'leader SIGKILL → first assignment by the new leader, p99', value: p99, unit: 'ms', ratio: { against: 'lease TTL', value: p99 / TTL }, target: `<= ${TTL + 1000} ms` },
      { suite: 'cluster: failover', case: 'elected → leader (journal read, service up), median', value: median(takeovers), unit: 'ms', note: `from the new leaders' logs: ${takeovers.join(', ')} ms; journal messages read at the election: ${reads.join(', ')}` },
      { suite: 'cluster: failover', case: 'elected → leader (journal read, service up), max', value: Math.max(...takeovers), unit: 'ms' },
      { suite: 'cluster: failover', case: 'elected → journal open (its part of the above), median', value: median(journalMs), unit: 'ms', note: `${journalMs.join(', ')} ms` },
    ];
  } finally {
    killAll();
    await nc.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
