/**
 * The BullMQ + Redis baseline of dispatch.bench.ts: a `redis-server` (Debian's package) started on
 * a free port for the benchmark and stopped after it, a BullMQ `Queue` in the benchmark's process
 * adding 1 ms jobs, and one BullMQ `Worker` per agent process (benchmarks/dispatchAgents.ts) of
 * concurrency agents ÷ processes: the same 100 jobs in flight as 100 agents with one slot each.
 * Jobs/s = jobs / (first job added → last `completed` event heard); latency = added → completed
 * heard (QueueEvents, a Redis stream read by this process). Nothing persists: no RDB, no AOF.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import type { Queue, QueueEvents } from 'bullmq';

export const REDIS_SERVER = '/usr/bin/redis-server';

/** What one run of jobs measured (the shape of dispatch.bench.ts's `Measured`). */
export interface BullMeasured {
  readonly count: number;
  readonly windowMs: number;
  readonly latencies: Float64Array;
  readonly serverCores: number;
}

export interface BullBaseline {
  /** Redis's port, for the workers. */
  readonly port: number;
  readonly queueName: string;
  /** Adds `jobs` jobs of `sleepMs`, resolves once every one has completed. */
  run(jobs: number, sleepMs: number, timeoutMs: number): Promise<BullMeasured>;
  /** Redis's CPU (ms, user + system) so far, from its own INFO: the broker's share of the work. */
  redisCpuMs(): Promise<number>;
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise<void>(resolve => server.close(() => resolve()));
  return port;
}

/** Starts Redis and a queue on it; or says why the baseline cannot run here (no redis-server, no bullmq). */
export async function startBullBaseline(): Promise<BullBaseline | string> {
  if (!existsSync(REDIS_SERVER)) return `${REDIS_SERVER} not found (Debian: apt-get install redis-server)`;
  let bullmq: typeof import('bullmq');
  try {
    bullmq = await import('bullmq');
  } catch (err) {
    return `bullmq cannot be loaded (npm install; it is a devDependency): ${err instanceof Error ? err.message : String(err)}`;
  }
  const port = await freePort();
  const redis: ChildProcess = spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server did not start within 10 s: ${output.slice(-500)}`)), 10_000);
    redis.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
      if (output.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    });
    redis.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    redis.once('exit', code => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited with ${String(code)}: ${output.slice(-500)}`));
    });
  });
  try {
    await ready;
  } catch (err) {
    redis.kill('SIGKILL');
    return err instanceof Error ? err.message : String(err);
  }
  const connection = { host: '127.0.0.1', port };
  const queueName = 'dispatch-bench';
  const queue: Queue = new bullmq.Queue(queueName, { connection, defaultJobOptions: { removeOnComplete: true, removeOnFail: true } });
  const events: QueueEvents = new bullmq.QueueEvents(queueName, { connection });
  await Promise.all([queue.waitUntilReady(), events.waitUntilReady()]);
  let onCompleted: ((jobId: string) => void) | undefined;
  events.on('completed', ({ jobId }) => onCompleted?.(jobId));
  const client = await queue.client;
  let round = 0;
  return {
    port,
    queueName,
    run: async (jobs, sleepMs, timeoutMs) => {
      const prefix = `r${round++}-`;
      const addedAt = new Float64Array(jobs);
      const latencies = new Float64Array(jobs);
      let done = 0;
      let last = 0;
      const finished = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          onCompleted = undefined;
          reject(new Error(`BullMQ baseline: ${done} of ${jobs} jobs done after ${timeoutMs} ms`));
        }, timeoutMs);
        onCompleted = jobId => {
          if (!jobId.startsWith(prefix)) return;
          const i = Number(jobId.slice(prefix.length));
          if (!(i >= 0 && i < jobs) || latencies[i] !== 0) return;
          last = performance.now();
          latencies[i] = last - (addedAt[i] as number);
          if (++done < jobs) return;
          onCompleted = undefined;
          clearTimeout(timer);
          resolve();
        };
      });
      (globalThis as { gc?: () => void }).gc?.();
      const cpu = process.cpuUsage();
      const start = performance.now();
      // Added as a producer would: in bulk (one round trip), each job stamped when its batch goes.
      addedAt.fill(start);
      await queue.addBulk(Array.from({ length: jobs }, (_, i) => ({ name: 'job', data: { sleepMs }, opts: { jobId: `${prefix}${i}` } })));
      await finished;
      const used = process.cpuUsage(cpu);
      const windowMs = last - start;
      return { count: jobs, windowMs, latencies: latencies.sort(), serverCores: (used.user + used.system) / 1000 / windowMs };
    },
    redisCpuMs: async () => {
      const info = await client.info();
      const field = (name: string): number => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? NaN);
      return (field('used_cpu_user') + field('used_cpu_sys')) * 1000;
    },
    close: async () => {
      onCompleted = undefined;
      await events.close();
      await queue.close();
      redis.kill('SIGTERM');
      if (redis.exitCode === null && redis.signalCode === null) await once(redis, 'exit');
    },
  };
}
