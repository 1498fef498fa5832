/**
 * Agent side of dispatch.bench.ts, run in a child process (`fork` with `--import tsx`): hosts a
 * share of the benchmark's agents, either as rxswarm agents (`startAgent` with the built-in worker,
 * so a subtask `{ sleepMs: 1 }` is a 1 ms timer) or as plain `ws` clients of the baseline server,
 * which answer each job frame `{"id":…,"payload":{"sleepMs":1}}` after the same 1 ms timer with a
 * result frame `{"id":…,"result":{…}}`.
 *
 * ```
 * parent ──agents {url, token, ids}──▶ child: startAgent × ids, waits until each has joined ──started──▶ parent
 * parent ──raw {port, count}─────────▶ child: count plain ws connections, open ─────────────started──▶ parent
 * parent ──bullmq {port, queue, n}──▶ child: one BullMQ Worker of concurrency n on Redis, ready ─started──▶ parent
 * parent ──natsRaw {url, subject, count}─▶ child: count NATS connections answering requests on SUBJECT.<i> ─started──▶ parent
 * parent ──mark──────────────────────▶ child: CPU since the last mark, counts anew ─marked {cpuMs}──▶ parent
 * parent ──stop──────────────────────▶ child: agents leave, connections close ─stopped {cpuMs}──▶ parent
 * parent ──exit──────────────────────▶ child exits
 * ```
 *
 * `cpuMs` is this process's CPU time since the last `mark` (or since it started): what the agents
 * cost over a measured step. Both kinds of agents may be up at once; the idle ones cost little
 * (rxswarm agents beat once a second). The BullMQ worker (the third baseline) takes each job
 * `{ sleepMs: 1 }` and returns after the same 1 ms timer; it polls Redis while idle. The raw NATS
 * responders (natsDispatch.bench.ts) answer each request `{"id":…,"payload":{"sleepMs":1}}` on
 * their subject after the same 1 ms timer with the same result frame, each on a NATS connection
 * of its own (as each rxswarm agent over NATS has). rxswarm agents over NATS come from the same
 * `agents` command with a `nats://` URL.
 */
import type { Worker } from 'bullmq';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { WebSocket } from 'ws';
import { startAgent, type AgentProcess } from '../src/remote.js';

export type AgentsCommand =
  | { readonly type: 'agents'; readonly url: string; readonly token: string; readonly ids: readonly string[]; readonly heartbeatIntervalMs: number; readonly coalesceWrites: boolean }
  | { readonly type: 'raw'; readonly port: number; readonly count: number }
  /** One BullMQ Worker on the Redis at 127.0.0.1:`port`, taking `concurrency` jobs of `queue` at once. */
  | { readonly type: 'bullmq'; readonly port: number; readonly queue: string; readonly concurrency: number }
  /** `count` NATS connections at `url`, the i-th answering requests on `subject`.`<first + i>`. */
  | { readonly type: 'natsRaw'; readonly url: string; readonly subject: string; readonly first: number; readonly count: number }
  /** Reports CPU and lost connections since the last mark (or start), and counts again from now. */
  | { readonly type: 'mark' }
  | { readonly type: 'stop' }
  | { readonly type: 'exit' };

export type AgentsReport =
  | { readonly type: 'ready' }
  | { readonly type: 'started'; readonly count: number; readonly ms: number }
  | { readonly type: 'marked'; readonly cpuMs: number; readonly disconnects: number }
  | { readonly type: 'stopped'; readonly cpuMs: number; readonly disconnects: number }
  | { readonly type: 'error'; readonly message: string };

/** A job of the baseline protocol and its answer. */
export interface RawJob {
  readonly id: number;
  readonly payload: { readonly sleepMs: number };
}
export interface RawResult {
  readonly id: number;
  readonly result: { readonly agentId: string; readonly jobId: number; readonly sleptMs: number };
}

let agents: AgentProcess[] = [];
let sockets: WebSocket[] = [];
let workers: Worker[] = [];
let natsConnections: NatsConnection[] = [];
let cpu = process.cpuUsage();
/** Connections lost while a step ran (none expected). */
let disconnects = 0;

const report = (message: AgentsReport): void => {
  process.send?.(message);
};

async function startAgents(url: string, token: string, ids: readonly string[], heartbeatIntervalMs: number, coalesceWrites: boolean): Promise<number> {
  const joined = ids.map(
    id =>
      new Promise<void>((resolve, reject) => {
        const agent = startAgent({
          url,
          token,
          id,
          heartbeatIntervalMs,
          coalesceWrites,
          onEvent: event => {
            if (event.type === 'joined') resolve();
            if (event.type === 'disconnected') disconnects++;
          },
        });
        agents.push(agent);
        agent.done.catch(reject);
      }),
  );
  await Promise.all(joined);
  return ids.length;
}

async function startRaw(port: number, count: number): Promise<number> {
  const opened = Array.from(
    { length: count },
    (_, i) =>
      new Promise<void>((resolve, reject) => {
        const agentId = `raw-${process.pid}-${i}`;
        const socket = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false });
        sockets.push(socket);
        socket.on('open', () => resolve());
        socket.on('error', reject);
        socket.on('close', () => disconnects++);
        socket.on('message', data => {
          const job = JSON.parse(String(data)) as RawJob & { to?: number; up?: boolean; received?: number };
          // Relayed rounds (dispatch.bench.ts): as the hub, send a job or result straight back to be forwarded; a `received` needs nothing.
          if (job.to !== undefined || job.up === true) return socket.send(String(data));
          if (job.received !== undefined) return;
          setTimeout(() => {
            if (socket.readyState !== WebSocket.OPEN) return;
            const answer: RawResult = { id: job.id, result: { agentId, jobId: job.id, sleptMs: job.payload.sleepMs } };
            socket.send(JSON.stringify(answer));
          }, job.payload.sleepMs);
        });
      }),
  );
  await Promise.all(opened);
  return count;
}

async function startBullmq(port: number, queue: string, concurrency: number): Promise<number> {
  const { Worker } = await import('bullmq');
  const worker = new Worker<{ sleepMs: number }>(
    queue,
    job => new Promise(resolve => setTimeout(() => resolve({ agentId: `bullmq-${process.pid}`, jobId: job.id, sleptMs: job.data.sleepMs }), job.data.sleepMs)),
    { connection: { host: '127.0.0.1', port }, concurrency },
  );
  worker.on('error', () => disconnects++);
  workers.push(worker);
  await worker.waitUntilReady();
  return concurrency;
}

async function startNatsRaw(url: string, subject: string, first: number, count: number): Promise<number> {
  const encoder = new TextEncoder();
  await Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const agentId = `nats-raw-${first + i}`;
      const nc = await connect({ servers: url, name: agentId });
      natsConnections.push(nc);
      void nc.closed().then(err => {
        if (err) disconnects++;
      });
      nc.subscribe(`${subject}.${first + i}`, {
        callback: (err, msg) => {
          if (err !== null) return;
          const job = JSON.parse(msg.string()) as RawJob;
          setTimeout(() => {
            const answer: RawResult = { id: job.id, result: { agentId, jobId: job.id, sleptMs: job.payload.sleepMs } };
            msg.respond(encoder.encode(JSON.stringify(answer)));
          }, job.payload.sleepMs);
        },
      });
      await nc.flush();
    }),
  );
  return count;
}

async function stop(): Promise<{ cpuMs: number; disconnects: number }> {
  const used = process.cpuUsage(cpu);
  const lost = disconnects;
  await Promise.all(agents.map(a => a.leave()));
  agents = [];
  for (const socket of sockets) {
    socket.removeAllListeners('close');
    socket.on('error', () => undefined);
    socket.close();
  }
  sockets = [];
  await Promise.all(workers.map(w => w.close()));
  workers = [];
  await Promise.all(natsConnections.map(nc => nc.close()));
  natsConnections = [];
  return { cpuMs: (used.user + used.system) / 1000, disconnects: lost };
}

process.on('message', (command: AgentsCommand) => {
  const started = performance.now();
  const fail = (err: unknown): void => report({ type: 'error', message: err instanceof Error ? err.message : String(err) });
  switch (command.type) {
    case 'agents':
      startAgents(command.url, command.token, command.ids, command.heartbeatIntervalMs, command.coalesceWrites).then(count => report({ type: 'started', count, ms: performance.now() - started }), fail);
      return;
    case 'raw':
      startRaw(command.port, command.count).then(count => report({ type: 'started', count, ms: performance.now() - started }), fail);
      return;
    case 'bullmq':
      startBullmq(command.port, command.queue, command.concurrency).then(count => report({ type: 'started', count, ms: performance.now() - started }), fail);
      return;
    case 'natsRaw':
      startNatsRaw(command.url, command.subject, command.first, command.count).then(count => report({ type: 'started', count, ms: performance.now() - started }), fail);
      return;
    case 'mark': {
      const used = process.cpuUsage(cpu);
      report({ type: 'marked', cpuMs: (used.user + used.system) / 1000, disconnects });
      cpu = process.cpuUsage();
      disconnects = 0;
      return;
    }
    case 'stop':
      stop().then(r => report({ type: 'stopped', ...r }), fail);
      return;
    case 'exit':
      stop().finally(() => process.exit(0));
      return;
  }
});
// The parent went away (crashed, killed): do not linger.
process.on('disconnect', () => process.exit(0));
report({ type: 'ready' });
