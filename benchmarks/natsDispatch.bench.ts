/**
 * Dispatch over NATS (issue 15): subtasks/s and assign → result latency of the coordinator service
 * with {@link AGENTS} agents doing 1 ms of work each, over NATS and over WebSocket, against a raw
 * NATS request/reply job loop doing the same work through the same kind of server.
 *
 * Processes: this one runs the coordinators, the baseline's requester and the submitter; the
 * agents live in {@link CHILDREN} child processes (benchmarks/dispatchAgents.ts), every kind
 * connected at once (the idle kinds cost a heartbeat a second each); two `nats-server`s (Debian's
 * package, as the tests start them: JetStream on, storage in a temporary directory) are started
 * and stopped here. Sides, in alternating rounds:
 *
 * - baseline, "raw NATS request/reply": {@link AGENTS} responders, each on a NATS connection of its
 *   own, subscribed to `jobs.<i>`; this process keeps one request in flight per responder
 *   (`nc.request`, JSON job `{"id":…,"payload":{"sleepMs":1}}`), the responder answers after a
 *   1 ms timer (JSON result), and the next job goes to that responder once its answer is read:
 *   the same concurrency as one slot per agent, with nothing but NATS and JSON in between.
 *   Jobs/s = jobs / (first request → last answer); latency = request → its answer.
 * - rxswarm over NATS: the service on a `NatsNetwork` (`NatsNode`: the same `Service`, ledger in
 *   memory, as `serve` over WebSocket without `--data-dir`), {@link AGENTS} agents from
 *   `startAgent` with a `nats://` URL (built-in worker, payload `{ sleepMs: 1 }`, 1 slot each).
 * - rxswarm over WebSocket: `Service.start` (ledger in memory), the same agents over `ws`: the
 *   transport is the only difference with the side above.
 * - rxswarm cluster leader over NATS: a `NatsClusterNode` (what `serve --nats` runs) on the second
 *   server: the lease, and every ledger event appended to the JetStream journal before its effect
 *   is visible (an assignment journaled before it is sent). Its own {@link AGENTS} agents.
 *
 * rxswarm subtasks/s = subtasks / (first `subtask.assigned` → last `subtask.completed`), the
 * submit → outcome time is in the note; latency = `subtask.assigned` → `subtask.completed` as
 * the coordinator's `onEvent` sees them. The topology is {@link TOPOLOGY} on every side (star: every
 * assignment and result crosses the hub agent, two hops each way). Each side runs a warm-up of
 * {@link WARMUP}, then {@link SUBTASKS} (`NATS_DISPATCH_SUBTASKS`) in {@link ROUNDS} rounds, the
 * order rotating, so that the load of the shared machine falls on every side alike. Every agent
 * always has one subtask in flight, so the latency is mostly queueing (Little's law: p50 ≈ agents
 * ÷ throughput). Ratios: throughput against the raw loop (higher is better), NATS against
 * WebSocket, latency against the raw loop (LOWER is better). CPU of this process, of the agent
 * processes and of the nats-server over each side's rounds is in the notes.
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import type { NatsConnection } from '@nats-io/transport-node';
import type { CoordinationEvent } from '../src/events.js';
import { NatsClusterNode } from '../src/natsCluster.js';
import { NatsNode } from '../src/natsNode.js';
import { submitTask } from '../src/remote.js';
import { Service } from '../src/service.js';
import type { TopologyName } from '../src/topology.js';
import { nearestRank } from '../operators/internal/rollingWindow.js';
import { connectNats } from '../streams/natsConnect.js';
import type { Subtask } from '../streams/task.js';
import { startNatsServer, type NatsServer } from '../test/streams/natsServer.js';
import { BenchChild } from './child.js';
import type { AgentsCommand, AgentsReport, RawJob, RawResult } from './dispatchAgents.js';
import { formatNumber, ratioRow, type BenchRow } from './harness.js';
import { roundTally } from './roundProbe.js';

const AGENTS = 100;
const CHILDREN = 2;
const WORK_MS = 1;
const HEARTBEAT_MS = 1000;
const WARMUP = 1000;
const SUBTASKS = Number(process.env['NATS_DISPATCH_SUBTASKS'] ?? 5000);
const ROUNDS = 5;
/** A task or a baseline round that takes longer than this fails the benchmark instead of hanging it. */
const TASK_TIMEOUT_MS = 60_000;
const TOPOLOGY = (process.env['NATS_DISPATCH_TOPOLOGY'] ?? 'star') as TopologyName;
const TOKEN = 'natsDispatch-bench-token';
const RAW_SUBJECT = 'jobs';
const SUITE = `dispatch over NATS, ${AGENTS} agents, 1 ms work, ${TOPOLOGY}`;

const gc = (): void => (globalThis as { gc?: () => void }).gc?.();
const encoder = new TextEncoder();

type AgentsChild = BenchChild<AgentsCommand, AgentsReport>;

async function startAll(children: readonly AgentsChild[], command: (i: number) => AgentsCommand): Promise<number> {
  children.forEach((c, i) => c.send(command(i)));
  const started = await Promise.all(children.map(c => c.next('started')));
  return started.reduce((sum, r) => sum + r.count, 0);
}

async function markAll(children: readonly AgentsChild[]): Promise<number> {
  children.forEach(c => c.send({ type: 'mark' }));
  const marked = await Promise.all(children.map(c => c.next('marked')));
  return marked.reduce((sum, r) => sum + r.cpuMs, 0);
}

/** CPU time (ms) of another process so far, from /proc (Linux): the nats-servers'. */
function processCpuMs(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime + stime, in USER_HZ (100)
  } catch {
    return 0;
  }
}

interface Measured {
  readonly count: number;
  /** First dispatch → last result, ms. */
  readonly windowMs: number;
  /** Per job: dispatch → result, ms. */
  readonly latencies: Float64Array;
  /** This process's CPU over the window, ms. */
  readonly cpuMs: number;
  /** rxswarm: submit → outcome, ms (the baseline: its window). */
  readonly endToEndMs: number;
  /** rxswarm: assignments beyond one per subtask, and other events than assignments and completions. */
  readonly reassigned: number;
  readonly incidents: ReadonlyMap<string, number>;
}

const perSecond = (m: Measured): number => (m.count * 1000) / m.windowMs;

function pool(parts: readonly Measured[]): Measured {
  const count = parts.reduce((sum, m) => sum + m.count, 0);
  const latencies = new Float64Array(count);
  let at = 0;
  const incidents = new Map<string, number>();
  for (const m of parts) {
    latencies.set(m.latencies, at);
    at += m.latencies.length;
    for (const [k, n] of m.incidents) incidents.set(k, (incidents.get(k) ?? 0) + n);
  }
  const total = (f: (m: Measured) => number): number => parts.reduce((sum, m) => sum + f(m), 0);
  return { count, windowMs: total(m => m.windowMs), latencies: latencies.sort(), cpuMs: total(m => m.cpuMs), endToEndMs: total(m => m.endToEndMs), reassigned: total(m => m.reassigned), incidents };
}

// ---- baseline: a raw NATS request/reply job loop ----------------------------------------------

async function rawRound(nc: NatsConnection, jobs: number): Promise<Measured> {
  const sentAt = new Float64Array(jobs);
  const latencies = new Float64Array(jobs);
  let next = 0;
  let done = 0;
  gc();
  const cpu = process.cpuUsage();
  const start = performance.now();
  let end = start;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`raw NATS: ${done} of ${jobs} jobs done after ${TASK_TIMEOUT_MS} ms`)), TASK_TIMEOUT_MS);
    const send = (agent: number): void => {
      if (next >= jobs) return;
      const id = next++;
      const job: RawJob = { id, payload: { sleepMs: WORK_MS } };
      sentAt[id] = performance.now();
      nc.request(`${RAW_SUBJECT}.${agent}`, encoder.encode(JSON.stringify(job)), { timeout: TASK_TIMEOUT_MS }).then(
        answer => {
          const now = performance.now();
          const { id: got } = JSON.parse(answer.string()) as RawResult;
          if (got !== id) return reject(new Error(`raw NATS: answer for job ${got} where ${id} was asked`));
          latencies[id] = now - (sentAt[id] as number);
          if (++done === jobs) {
            end = now;
            clearTimeout(timer);
            return resolve();
          }
          send(agent);
        },
        (err: unknown) => reject(err instanceof Error ? err : new Error(String(err))),
      );
    };
    for (let agent = 0; agent < AGENTS; agent++) send(agent);
  });
  const used = process.cpuUsage(cpu);
  return { count: jobs, windowMs: end - start, latencies: latencies.sort(), cpuMs: (used.user + used.system) / 1000, endToEndMs: end - start, reassigned: 0, incidents: new Map() };
}

// ---- rxswarm -----------------------------------------------------------------------------------

type Probe = ((event: CoordinationEvent) => void) | undefined;

/** Runs `count` subtasks of 1 ms on a coordinator reached at `url`, timed from its events. */
async function rxRound(url: string, setProbe: (probe: Probe) => void, id: string, count: number): Promise<Measured> {
  const subtasks: Subtask[] = Array.from({ length: count }, (_, i) => ({ id: `${id}-${i}`, payload: { sleepMs: WORK_MS } }));
  const tally = roundTally(count);
  setProbe(tally.probe);
  gc();
  const cpu = process.cpuUsage();
  const start = performance.now();
  try {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const result = await Promise.race([
      submitTask({ url, token: TOKEN, task: { id, subtasks } }),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`natsDispatch: task ${id} did not finish within ${TASK_TIMEOUT_MS} ms (${tally.completed()} of ${count} completed)`)), TASK_TIMEOUT_MS))),
    ]).finally(() => clearTimeout(timer));
    const endToEndMs = performance.now() - start;
    const used = process.cpuUsage(cpu);
    const completed = tally.completed();
    if (!result.success || completed !== count) throw new Error(`natsDispatch: task ${id} ended with ${completed} of ${count} completed, ${Object.keys(result.failed).length} failed (${Object.values(result.failed)[0] ?? ''})`);
    return { count, windowMs: tally.windowMs(), latencies: tally.latencies(), cpuMs: (used.user + used.system) / 1000, endToEndMs, reassigned: tally.reassigned(), incidents: tally.incidents };
  } finally {
    setProbe(undefined);
  }
}

// ---- the benchmark -----------------------------------------------------------------------------

type Side = 'raw' | 'nats' | 'ws' | 'cluster';
const SIDES: readonly Side[] = ['raw', 'nats', 'ws', 'cluster'];

interface SideTotals {
  readonly rounds: Measured[];
  agentsCpuMs: number;
  serverCpuMs: number;
}

export default async function bench(): Promise<BenchRow[]> {
  if (!(Number.isInteger(SUBTASKS) && SUBTASKS >= ROUNDS && SUBTASKS <= ROUNDS * 10_000)) throw new RangeError(`NATS_DISPATCH_SUBTASKS must be an integer in [${ROUNDS}, ${ROUNDS * 10_000}], got ${String(process.env['NATS_DISPATCH_SUBTASKS'])}`);
  const servers: NatsServer[] = [];
  const children: AgentsChild[] = [];
  const closers: Array<() => Promise<void>> = [];
  const load = [loadavg()[0] as number];
  try {
    // The raw loop and rxswarm over NATS share one server; the cluster (lease, journal, subjects of its own) has the other.
    const natsA = await startNatsServer();
    servers.push(natsA);
    const natsB = await startNatsServer();
    servers.push(natsB);
    for (let i = 0; i < CHILDREN; i++) children.push(await BenchChild.start<AgentsCommand, AgentsReport>('dispatchAgents.ts', 'agent process'));

    let probe: Probe;
    const setProbe = (p: Probe): void => {
      probe = p;
    };
    const onEvent = (event: CoordinationEvent): void => probe?.(event);
    const coordinator = { topology: TOPOLOGY, heartbeat: { intervalMs: HEARTBEAT_MS } };
    const quiet = (): undefined => undefined;

    const natsNode = await NatsNode.start({ url: natsA.url, token: TOKEN, coordinator, onEvent, log: quiet });
    closers.push(() => natsNode.close());
    const wsService = await Service.start({ token: TOKEN, port: 0, coordinator, onEvent, log: quiet });
    closers.push(() => wsService.close());
    const clusterNode = await NatsClusterNode.start({ url: natsB.url, token: TOKEN, id: 'bench-node', coordinator, onEvent, log: quiet });
    closers.push(() => clusterNode.close());
    const leaderBy = performance.now() + TASK_TIMEOUT_MS;
    while (clusterNode.leaderService === undefined) {
      if (performance.now() > leaderBy) throw new Error('natsDispatch: the cluster node did not lead');
      await new Promise(resolve => setTimeout(resolve, 20));
    }
    const leader = clusterNode.leaderService;

    const raw = await connectNats({ url: natsA.url, name: 'natsDispatch requester' });
    closers.push(() => raw.close());
    const perChild = AGENTS / CHILDREN;
    const opened = await startAll(children, i => ({ type: 'natsRaw', url: natsA.url, subject: RAW_SUBJECT, first: i * perChild, count: perChild }));
    if (opened !== AGENTS) throw new Error(`natsDispatch: ${opened} of ${AGENTS} raw responders`);
    const ids = (prefix: string, i: number): string[] => Array.from({ length: AGENTS }, (_, k) => `${prefix}-${String(k).padStart(3, '0')}`).filter((_, k) => k % CHILDREN === i);
    const join = async (url: string, prefix: string, members: () => number): Promise<void> => {
      const joined = await startAll(children, i => ({ type: 'agents', url, token: TOKEN, ids: ids(prefix, i), heartbeatIntervalMs: HEARTBEAT_MS, coalesceWrites: true }));
      // Over NATS an agent has joined once it got its join; the coordinator counts it once its `ready` follows.
      const by = performance.now() + 10_000;
      while (members() < AGENTS && performance.now() < by) await new Promise(resolve => setTimeout(resolve, 20));
      if (joined !== AGENTS || members() !== AGENTS) throw new Error(`natsDispatch: ${members()} of ${AGENTS} ${prefix} agents joined`);
    };
    const agentsOf = (service: Service): number => [...service.server.remoteAgents.values()].filter(a => a.role === 'agent').length;
    await join(natsA.url, 'nats', () => agentsOf(natsNode.service));
    await join(wsService.url, 'ws', () => agentsOf(wsService));
    await join(natsB.url, 'cluster', () => agentsOf(leader));

    const urls: Record<Exclude<Side, 'raw'>, string> = { nats: natsA.url, ws: wsService.url, cluster: natsB.url };
    const serverOf: Record<Side, NatsServer | undefined> = { raw: natsA, nats: natsA, ws: undefined, cluster: natsB };
    const run = (side: Side, id: string, count: number): Promise<Measured> => (side === 'raw' ? rawRound(raw, count) : rxRound(urls[side], setProbe, id, count));

    for (const side of SIDES) await run(side, `${side}-warmup`, WARMUP);
    const totals = new Map<Side, SideTotals>(SIDES.map(s => [s, { rounds: [], agentsCpuMs: 0, serverCpuMs: 0 }]));
    const perRound = Math.ceil(SUBTASKS / ROUNDS);
    for (let round = 0; round < ROUNDS; round++) {
      // Rotating order: no side always runs right after another's burst.
      for (const side of [...SIDES.slice(round % SIDES.length), ...SIDES.slice(0, round % SIDES.length)]) {
        const t = totals.get(side) as SideTotals;
        await markAll(children);
        const server = serverOf[side]?.process.pid;
        const serverBefore = processCpuMs(server);
        t.rounds.push(await run(side, `${side}-${round}`, perRound));
        t.serverCpuMs += processCpuMs(server) - serverBefore;
        t.agentsCpuMs += await markAll(children);
      }
      load.push(loadavg()[0] as number);
    }

    const pooled = new Map(SIDES.map(s => [s, pool((totals.get(s) as SideTotals).rounds)] as const));
    const m = (s: Side): Measured => pooled.get(s) as Measured;
    const perRoundRatio = (a: Side, b: Side): string =>
      (totals.get(a) as SideTotals).rounds.map((r, i) => (perSecond(r) / perSecond((totals.get(b) as SideTotals).rounds[i] as Measured)).toFixed(2)).join('/');
    const p = (s: Side, percent: number): number => nearestRank(m(s).latencies, percent);
    const cpuNote = (s: Side): string => {
      const t = totals.get(s) as SideTotals;
      const ms = m(s).endToEndMs;
      return `this process ${formatNumber(m(s).cpuMs / ms, 2)} cores, agent processes ${formatNumber(t.agentsCpuMs / ms, 2)} cores${serverOf[s] === undefined ? '' : `, nats-server ${formatNumber(t.serverCpuMs / ms, 2)} cores`}; CPU per ${s === 'raw' ? 'job' : 'subtask'}: ${formatNumber(((m(s).cpuMs + t.agentsCpuMs + t.serverCpuMs) * 1000) / m(s).count, 0)} µs in all`;
    };
    const rxNote = (s: Side): string =>
      `${formatNumber(m(s).count)} subtasks in ${formatNumber(m(s).windowMs)} ms first assign → last result, ${formatNumber(m(s).endToEndMs)} ms submit → outcome; ratio to raw per round ${perRoundRatio(s, 'raw')}; ${cpuNote(s)}; ` +
      `reassigned ${m(s).reassigned}; incidents: ${m(s).incidents.size === 0 ? 'none' : [...m(s).incidents].map(([k, n]) => `${k} ×${n}`).join(', ')}`;
    const rounds = `${ROUNDS} rounds of ${formatNumber(perRound)}, the four sides alternating; load average ${load.map(l => l.toFixed(1)).join('→')}`;
    process.stderr.write(`  natsDispatch: raw ${formatNumber(perSecond(m('raw')))}/s, nats ${formatNumber(perSecond(m('nats')))}/s, ws ${formatNumber(perSecond(m('ws')))}/s, cluster ${formatNumber(perSecond(m('cluster')))}/s; nats/ws per round ${perRoundRatio('nats', 'ws')}\n`);
    return [
      { suite: SUITE, case: 'baseline: raw NATS request/reply, throughput', value: perSecond(m('raw')), unit: 'jobs/s', note: `${formatNumber(m('raw').count)} jobs (${rounds}), ${AGENTS} responders on connections of their own in ${CHILDREN} processes, 1 in flight each; ${cpuNote('raw')}` },
      ratioRow(SUITE, 'rxswarm over NATS: throughput', perSecond(m('nats')), 'subtasks/s', 'raw NATS', perSecond(m('raw')), undefined, rxNote('nats')),
      ratioRow(SUITE, 'rxswarm over WebSocket: throughput', perSecond(m('ws')), 'subtasks/s', 'raw NATS', perSecond(m('raw')), undefined, rxNote('ws')),
      ratioRow(SUITE, 'rxswarm over NATS ÷ over WebSocket: throughput', perSecond(m('nats')), 'subtasks/s', 'WebSocket', perSecond(m('ws')), undefined, `ratio per round ${perRoundRatio('nats', 'ws')}`),
      ratioRow(SUITE, 'rxswarm cluster leader (JetStream journal): throughput', perSecond(m('cluster')), 'subtasks/s', 'raw NATS', perSecond(m('raw')), undefined, `÷ rxswarm over NATS without a journal: ${formatNumber(perSecond(m('cluster')) / perSecond(m('nats')), 2)}× (per round ${perRoundRatio('cluster', 'nats')}); ${rxNote('cluster')}`),
      { suite: SUITE, case: 'baseline: raw NATS request/reply, p50 round trip', value: p('raw', 50), unit: 'ms', note: `p99 ${formatNumber(p('raw', 99), 2)} ms, max ${formatNumber(p('raw', 100), 2)} ms` },
      ratioRow(SUITE, 'rxswarm over NATS: p50 assign → result (lower is better)', p('nats', 50), 'ms', 'raw NATS p50', p('raw', 50), undefined, `p99 ${formatNumber(p('nats', 99), 2)} ms (${formatNumber(p('nats', 99) / p('raw', 99), 2)}× raw p99)`),
      ratioRow(SUITE, 'rxswarm over WebSocket: p50 assign → result (lower is better)', p('ws', 50), 'ms', 'raw NATS p50', p('raw', 50), undefined, `p99 ${formatNumber(p('ws', 99), 2)} ms (${formatNumber(p('ws', 99) / p('raw', 99), 2)}× raw p99)`),
      ratioRow(SUITE, 'rxswarm cluster leader: p50 assign → result (lower is better)', p('cluster', 50), 'ms', 'raw NATS p50', p('raw', 50), undefined, `p99 ${formatNumber(p('cluster', 99), 2)} ms (${formatNumber(p('cluster', 99) / p('raw', 99), 2)}× raw p99)`),
    ];
  } finally {
    await Promise.all(children.map(c => c.exit()));
    for (const close of closers.reverse()) await close().catch(() => undefined);
    for (const server of servers) await server.stop();
  }
}
