/**
 * Dispatch over WebSocket: subtasks/s and assign→result latency of a coordinator service with
 * {@link AGENTS} agents doing 1 ms of work each, against a plain `ws` job server doing the same.
 *
 * Processes: this one runs both servers and the submitter; the agents live in {@link CHILDREN}
 * child processes (benchmarks/dispatchAgents.ts), {@link AGENTS}/{@link CHILDREN} each, both kinds
 * connected at once (the idle kind costs a heartbeat a second). Per topology (star, then
 * hierarchical):
 *
 * - baseline, "raw ws jobs": a plain `ws` WebSocketServer and {@link AGENTS} plain `ws` client
 *   connections; the server keeps one job in flight per connection (`{"id":…,"payload":{"sleepMs":1}}`,
 *   JSON), the client answers after a 1 ms timer with a result frame (JSON), the server sends that
 *   connection its next job: the same concurrency as one slot per agent, with nothing but the wire
 *   and JSON in between. Jobs/s = jobs / (first job sent → last result read); latency = job written
 *   → its result read.
 * - baseline, "raw ws jobs with the topology's frames": the same server and connections, but the
 *   first connection is a hub that only relays: each job goes to it and straight back to be
 *   forwarded to its spoke, a hierarchy's results go up through it too, and every result is
 *   answered with a `received` frame. That is what rxswarm's topology puts through its server per
 *   subtask (star: 3 writes and 2 reads; hierarchical: 4 and 3) with nothing else: the floor of
 *   the topology's frames, beside which rxswarm's own cost per subtask shows (no target).
 * - rxswarm: `Service.start` (coordinator with that topology, heartbeats every 1 s, the rate limit
 *   raised out of the way: {@link RATE_LIMIT}) and {@link AGENTS} agents from `startAgent`
 *   (built-in worker, payload `{ sleepMs: 1 }`, 1 slot each); tasks are submitted with `submitTask`
 *   from this process. Subtasks/s = subtasks / (first `subtask.assigned` → last
 *   `subtask.completed`), the end-to-end time (submit → outcome received) is in the note; latency =
 *   `performance.now()` at the service's `onEvent` of a subtask's `subtask.assigned` → of its
 *   `subtask.completed` (the coordinator emits the first right after writing the assignment, the
 *   second right after reading the result). In star every assignment and result crosses the hub
 *   agent (coordinator → hub → spoke → hub → coordinator, each hop a frame through this server); in
 *   hierarchical a group leader, the same way. The coordinator's own detectors stay on: what they
 *   did during the measured tasks (faults, healing, protocol switches) is listed as `incidents`.
 *
 * - baseline, "BullMQ + Redis": a `redis-server` (Debian's package, started on a free port and
 *   stopped by the benchmark; skipped with a printed line when it is not installed) and BullMQ
 *   (benchmarks/bullmqBaseline.ts): a Queue here adds the jobs in bulk, one Worker per agent process
 *   of concurrency {@link AGENTS}/{@link CHILDREN} runs each as the same 1 ms timer. Jobs/s = jobs /
 *   (first added → last `completed` event heard here); its latencies count from the bulk add, so
 *   they are mostly queueing and are not compared. Target from the issue: rxswarm ≥ 2× BullMQ.
 * - rxswarm, signing off: a second service, the same but `sign: false` (no session keys: its
 *   assignments, cancellations and results carry no signature, and nothing is checked), with its
 *   own {@link AGENTS} agents. Signed ÷ unsigned throughput is what authenticating every
 *   assignment and result through relays costs.
 *
 * Each side runs a warm-up of {@link WARMUP} (not measured), then {@link SUBTASKS}
 * (`DISPATCH_SUBTASKS`) in {@link ROUNDS} rounds, the sides alternating, so that the load of the
 * shared machine falls on both alike; the rounds are pooled and the per-round ratios are in the
 * note. Every agent always has one subtask in flight, so the latency is mostly queueing: p50 ≈
 * agents ÷ throughput (Little's law); it is not the latency of an idle system. Ratios: throughput
 * rxswarm / baseline (higher is better); latency rxswarm / baseline (LOWER is better). The machine
 * is shared (2 cores, three busy processes here): read the ratios and the CPU notes, not the
 * absolutes. `DISPATCH_TOPOLOGIES=star` measures fewer topologies.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { CoordinationEvent } from '../src/events.js';
import { submitTask } from '../src/remote.js';
import { Service } from '../src/service.js';
import type { TopologyName } from '../src/topology.js';
import { nearestRank } from '../operators/internal/rollingWindow.js';
import type { Subtask } from '../streams/task.js';
import { DEFAULT_MAX_BYTES } from '../streams/wsCodec.js';
import type { WsServerEvent } from '../streams/wsNetwork.js';
import type { AgentsCommand, AgentsReport, RawJob, RawResult } from './dispatchAgents.js';
import { formatNumber, ratioRow, type BenchRow } from './harness.js';
import { roundTally } from './roundProbe.js';
import { BenchChild } from './child.js';
import { startBullBaseline, type BullBaseline } from './bullmqBaseline.js';

/** `DISPATCH_AGENTS` (a multiple of {@link CHILDREN}) to measure another team size. */
const AGENTS = Number(process.env['DISPATCH_AGENTS'] ?? 100);
const CHILDREN = 2;
const WORK_MS = 1;
const HEARTBEAT_MS = 1000;
const WARMUP = 1000;
const SUBTASKS = Number(process.env['DISPATCH_SUBTASKS'] ?? 10_000);
/** The measured work of each side comes in this many rounds, the sides alternating. */
const ROUNDS = 5;
/** Most subtasks in one task (measured rounds are smaller; this bounds the warm-up and DISPATCH_SUBTASKS). */
const MAX_PER_TASK = 10_000;
/** A task that takes longer than this fails the benchmark instead of hanging it. */
const TASK_TIMEOUT_MS = 60_000;
/** `DISPATCH_TOPOLOGIES=star` (comma-separated) to measure fewer. */
const TOPOLOGIES = (process.env['DISPATCH_TOPOLOGIES'] ?? 'star,hierarchical').split(',') as TopologyName[];
const TOKEN = 'dispatch-bench-token';
/** `DISPATCH_COALESCE=0`: rxswarm's connections write each frame at once (coalesceWrites off, both ends), to measure what coalescing does. */
const COALESCE = process.env['DISPATCH_COALESCE'] !== '0';
/** `DISPATCH_SIDES=rx` (comma-separated among raw, relayed, rx, bull, unsigned): measure only those, e.g. to profile one side alone; the ratios need raw and bull. */
const SIDES = process.env['DISPATCH_SIDES']?.split(',');

const gc = (): void => (globalThis as { gc?: () => void }).gc?.();

// ---- the agent processes --------------------------------------------------------------------

type AgentsChild = BenchChild<AgentsCommand, AgentsReport>;
const startAgentsChild = (): Promise<AgentsChild> => BenchChild.start<AgentsCommand, AgentsReport>('dispatchAgents.ts', 'agent process');

/** Sends `command(i)` to every child, waits for all to report `started`; returns how many they opened. */
async function startAll(children: readonly AgentsChild[], command: (i: number) => AgentsCommand): Promise<number> {
  children.forEach((c, i) => c.send(command(i)));
  const started = await Promise.all(children.map(c => c.next('started')));
  return started.reduce((sum, r) => sum + r.count, 0);
}

/** Every child's CPU (ms) and lost connections since the last mark; they count anew from now. */
async function markAll(children: readonly AgentsChild[]): Promise<{ cpuMs: number; disconnects: number }> {
  children.forEach(c => c.send({ type: 'mark' }));
  const marked = await Promise.all(children.map(c => c.next('marked')));
  return { cpuMs: marked.reduce((sum, r) => sum + r.cpuMs, 0), disconnects: marked.reduce((sum, r) => sum + r.disconnects, 0) };
}

/** Stops every child's agents; returns their CPU (ms) since they started and connections lost. */
async function stopAll(children: readonly AgentsChild[]): Promise<{ cpuMs: number; disconnects: number }> {
  children.forEach(c => c.send({ type: 'stop' }));
  const stopped = await Promise.all(children.map(c => c.next('stopped')));
  return { cpuMs: stopped.reduce((sum, r) => sum + r.cpuMs, 0), disconnects: stopped.reduce((sum, r) => sum + r.disconnects, 0) };
}

// ---- measurements ---------------------------------------------------------------------------

interface Measured {
  /** Jobs or subtasks done. */
  readonly count: number;
  /** First dispatch → last result, ms. */
  readonly windowMs: number;
  /** Per job: dispatch → result, ms, sorted. */
  readonly latencies: Float64Array;
  /** This process's CPU over the window, in cores. */
  readonly serverCores: number;
}

const perSecond = (m: Measured): number => (m.count * 1000) / m.windowMs;
/** The server process's CPU per job, µs, over `overMs` (the window its `serverCores` was taken over). */
const cpuPerJobUs = (m: Measured, overMs: number): number => (m.serverCores * overMs * 1000) / m.count;

// ---- baseline: plain ws jobs ----------------------------------------------------------------

interface RawServer {
  readonly port: number;
  readonly connections: () => number;
  /** `relayed`: with the frames of a topology, see {@link Relayed}. */
  run(jobs: number, relayed?: Relayed): Promise<Measured>;
  close(): Promise<void>;
}

/**
 * The frames rxswarm's topology puts through its server per subtask, with nothing else: the first
 * connection is the hub (it relays only); a job for a spoke goes to the hub, which sends it
 * straight back to be forwarded (two frames more than a plain job); the result comes back (through
 * the hub too when `resultsViaHub`: a hierarchy's) and the server answers it with a `received`
 * frame, as rxswarm's coordinator does. Star: 3 writes and 2 reads per job; hierarchical: 4 and 3.
 */
interface Relayed {
  readonly resultsViaHub: boolean;
}

/** A job or a result of a relayed round, as the server and the hub pass it (the server answers a result with `{"received":id}`). */
interface RelayFrame {
  readonly id: number;
  readonly payload?: RawJob['payload'];
  readonly result?: RawResult['result'];
  /** Job to the hub: forward it to spoke `to`. */
  readonly to?: number;
  /** Result to the hub, from spoke `spoke`: it comes back up. */
  readonly up?: boolean;
  readonly spoke?: number;
}

async function rawServer(): Promise<RawServer> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, clientTracking: false, perMessageDeflate: false });
  const sockets = new Set<WebSocket>();
  let onResult: ((socket: WebSocket, data: string) => void) | undefined;
  const order = new Map<WebSocket, number>();
  wss.on('connection', socket => {
    sockets.add(socket);
    order.set(socket, order.size);
    socket.on('message', data => onResult?.(socket, String(data)));
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await once(wss, 'listening');
  return {
    port: (wss.address() as AddressInfo).port,
    connections: () => sockets.size,
    run: (jobs, relayed) =>
      new Promise<Measured>((resolve, reject) => {
        const sentAt = new Float64Array(jobs);
        const latencies = new Float64Array(jobs);
        // Relayed: the first connection to have come is the hub; the others work.
        const [hub, ...spokes] = [...sockets].sort((a, b) => (order.get(a) as number) - (order.get(b) as number));
        const spokeOf = new Map(spokes.map((socket, i) => [socket, i]));
        let next = 0;
        let done = 0;
        const send = (socket: WebSocket): void => {
          if (next >= jobs) return;
          const job: RelayFrame = relayed === undefined ? { id: next, payload: { sleepMs: WORK_MS } } : { id: next, payload: { sleepMs: WORK_MS }, to: spokeOf.get(socket) as number };
          sentAt[next++] = performance.now();
          (relayed === undefined ? socket : (hub as WebSocket)).send(JSON.stringify(job));
        };
        const timer = setTimeout(() => {
          onResult = undefined;
          reject(new Error(`baseline: ${done} of ${jobs} jobs done after ${TASK_TIMEOUT_MS} ms`));
        }, TASK_TIMEOUT_MS);
        gc();
        const cpu = process.cpuUsage();
        const start = performance.now();
        onResult = (from, data) => {
          const frame = JSON.parse(data) as RelayFrame;
          let socket = from;
          if (relayed !== undefined) {
            // The hub sent back a job to forward, or a result to take; a spoke's result goes up through the hub first.
            if (frame.to !== undefined) return void spokes[frame.to]?.send(JSON.stringify({ id: frame.id, payload: frame.payload }));
            if (frame.up === true) socket = spokes[frame.spoke ?? -1] as WebSocket;
            else if (relayed.resultsViaHub) return void (hub as WebSocket).send(JSON.stringify({ ...frame, up: true, spoke: spokeOf.get(from) ?? -1 } satisfies RelayFrame));
            if (socket === undefined) return reject(new Error('baseline: a relayed result from no spoke'));
            socket.send(JSON.stringify({ received: frame.id }));
          }
          const { id } = frame;
          const now = performance.now();
          if (!(id >= 0 && id < next) || latencies[id] !== 0) return reject(new Error(`baseline: unexpected result for job ${id}`));
          latencies[id] = now - (sentAt[id] as number);
          send(socket);
          if (++done < jobs) return;
          onResult = undefined;
          clearTimeout(timer);
          const used = process.cpuUsage(cpu);
          const windowMs = now - start;
          resolve({ count: jobs, windowMs, latencies: latencies.sort(), serverCores: (used.user + used.system) / 1000 / windowMs });
        };
        for (const socket of relayed === undefined ? sockets : spokes) send(socket);
      }),
    close: async () => {
      for (const socket of sockets) socket.terminate();
      await new Promise<void>(resolve => wss.close(() => resolve()));
    },
  };
}

// ---- rxswarm: the coordinator service -------------------------------------------------------

interface RxMeasured extends Measured {
  /** submitTask called → result received, ms. */
  readonly endToEndMs: number;
  /** Assignments beyond one per subtask (reassignments), and results the coordinator refused. */
  readonly reassigned: number;
  readonly rejected: number;
  /** Assignments by hop count (1: direct, 2: through a relay). */
  readonly hops: ReadonlyMap<number, number>;
  /** Other events by type (faults by kind, repairs, switches): none expected. */
  readonly incidents: ReadonlyMap<string, number>;
}

/** Runs `count` subtasks of 1 ms on the service, timing them from its events. */
async function runTask(service: Service, setProbe: (probe: ((event: CoordinationEvent) => void) | undefined) => void, id: string, count: number): Promise<RxMeasured> {
  const subtasks: Subtask[] = Array.from({ length: count }, (_, i) => ({ id: `${id}-${i}`, payload: { sleepMs: WORK_MS } }));
  const tally = roundTally(count);
  setProbe(tally.probe);
  gc();
  const cpu = process.cpuUsage();
  const start = performance.now();
  try {
    const task = { id, subtasks };
    const submitBytes = Buffer.byteLength(JSON.stringify(task), 'utf8');
    // The submit frame and the outcome (every result) travel as one frame each, both under 1 MiB:
    // a bigger one is refused (1009) and submitTask would wait forever (it does not resubmit).
    if (submitBytes > DEFAULT_MAX_BYTES / 2 || count > MAX_PER_TASK) throw new RangeError(`dispatch bench: a task of ${count} subtasks (${submitBytes} bytes) is too big for one frame; lower DISPATCH_SUBTASKS (at most ${ROUNDS * MAX_PER_TASK})`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const result = await Promise.race([
      submitTask({ url: service.url, token: TOKEN, task }),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`dispatch bench: task ${id} did not finish within ${TASK_TIMEOUT_MS} ms (${tally.completed()} of ${count} completed)`)), TASK_TIMEOUT_MS))),
    ]).finally(() => clearTimeout(timer));
    const endToEndMs = performance.now() - start;
    const used = process.cpuUsage(cpu);
    const completed = tally.completed();
    if (tally.orphans() > 0) throw new Error(`dispatch bench: ${tally.orphans()} completion(s) without an assignment in task ${id}`);
    if (!result.success || completed !== count) {
      throw new Error(`dispatch bench: task ${id} ended with ${completed} of ${count} completed, ${Object.keys(result.failed).length} failed (${Object.values(result.failed)[0] ?? ''})`);
    }
    return { count, windowMs: tally.windowMs(), latencies: tally.latencies(), serverCores: (used.user + used.system) / 1000 / endToEndMs, endToEndMs, reassigned: tally.reassigned(), rejected: tally.rejected(), hops: tally.hops, incidents: tally.incidents };
  } finally {
    setProbe(undefined);
  }
}

// ---- the benchmark --------------------------------------------------------------------------

interface Pair {
  readonly topology: TopologyName;
  readonly raw: Measured;
  readonly rawAgentsCores: number;
  /** The raw ws jobs with the frames of the topology (see {@link Relayed}). */
  readonly relayed: Measured;
  readonly relayedAgentsCores: number;
  /** Per round: rxswarm subtasks/s ÷ relayed jobs/s. */
  readonly relayedRatios: readonly number[];
  readonly rx: RxMeasured;
  readonly rxAgentsCores: number;
  /** The same service with signing off. */
  readonly unsigned: RxMeasured;
  /** Per round: rxswarm subtasks/s ÷ baseline jobs/s. */
  readonly roundRatios: readonly number[];
  /** Per round: signed ÷ unsigned subtasks/s. */
  readonly signingRatios: readonly number[];
  readonly refusals: readonly string[];
  readonly agentDisconnects: number;
  /** The BullMQ + Redis baseline, when it ran. */
  readonly bull?: { readonly measured: Measured; readonly agentsCores: number; readonly redisCores: number; readonly roundRatios: readonly number[] };
}

/** Counts added up by key. */
function sum<K>(maps: ReadonlyArray<ReadonlyMap<K, number>>): Map<K, number> {
  const all = new Map<K, number>();
  for (const m of maps) for (const [k, n] of m) all.set(k, (all.get(k) ?? 0) + n);
  return all;
}

/** Rounds of the same measured work, pooled. */
function pool<M extends Measured>(parts: readonly M[]): Measured {
  const count = parts.reduce((sum, m) => sum + m.count, 0);
  const windowMs = parts.reduce((sum, m) => sum + m.windowMs, 0);
  const latencies = new Float64Array(count);
  let at = 0;
  for (const m of parts) {
    latencies.set(m.latencies, at);
    at += m.latencies.length;
  }
  return { count, windowMs, latencies: latencies.sort(), serverCores: parts.reduce((sum, m) => sum + m.serverCores * m.windowMs, 0) / windowMs };
}

/** Rounds of one service's measured tasks, pooled. */
function poolRx(rxs: readonly RxMeasured[]): RxMeasured {
  const endToEndMs = rxs.reduce((sum, m) => sum + m.endToEndMs, 0);
  return {
    ...pool(rxs),
    serverCores: rxs.reduce((sum, m) => sum + m.serverCores * m.endToEndMs, 0) / endToEndMs,
    endToEndMs,
    reassigned: rxs.reduce((sum, m) => sum + m.reassigned, 0),
    rejected: rxs.reduce((sum, m) => sum + m.rejected, 0),
    hops: sum(rxs.map(m => m.hops)),
    incidents: sum(rxs.map(m => m.incidents)),
  };
}

async function measurePair(children: readonly AgentsChild[], topology: TopologyName, bull: BullBaseline | undefined): Promise<Pair | undefined> {
  const refusals: string[] = [];
  let probe: ((event: CoordinationEvent) => void) | undefined;
  const setProbe = (p: typeof probe): void => {
    probe = p;
  };
  const raw = await rawServer();
  const start = (sign: boolean): Promise<Service> =>
    Service.start({
      token: TOKEN,
      port: 0,
      sign,
      coalesceWrites: COALESCE,
      log: (event: WsServerEvent) => {
        if (event.type === 'rejected') refusals.push(`${event.agentId ?? event.remote}: ${event.error} (${event.code})`);
      },
      coordinator: { topology, heartbeat: { intervalMs: HEARTBEAT_MS } },
      onEvent: event => probe?.(event),
    });
  const service = await start(true);
  const plain = await start(false);
  try {
    // Both kinds of agents stay connected throughout; the idle kind costs a heartbeat a second.
    const opened = await startAll(children, () => ({ type: 'raw', port: raw.port, count: AGENTS / CHILDREN }));
    if (opened !== AGENTS || raw.connections() !== AGENTS) throw new Error(`dispatch bench: ${raw.connections()} of ${AGENTS} baseline connections open`);
    const ids = Array.from({ length: AGENTS }, (_, i) => `agent-${String(i).padStart(3, '0')}`);
    const joinTo = async (target: Service): Promise<void> => {
      const joined = await startAll(children, i => ({ type: 'agents', url: target.url, token: TOKEN, ids: ids.filter((_, k) => k % CHILDREN === i), heartbeatIntervalMs: HEARTBEAT_MS, coalesceWrites: COALESCE }));
      const members = [...target.server.remoteAgents.values()].filter(a => a.role === 'agent').length;
      if (joined !== AGENTS || members !== AGENTS) throw new Error(`dispatch bench: ${members} of ${AGENTS} agents joined the service`);
    };
    await joinTo(service);
    await joinTo(plain);
    if (bull !== undefined) {
      const workers = await startAll(children, () => ({ type: 'bullmq', port: bull.port, queue: bull.queueName, concurrency: AGENTS / CHILDREN }));
      if (workers !== AGENTS) throw new Error(`dispatch bench: BullMQ workers of concurrency ${workers} in all, not ${AGENTS}`);
      await bull.run(WARMUP, WORK_MS, TASK_TIMEOUT_MS);
    }

    await raw.run(WARMUP);
    // A star's results come straight back; a hierarchy's through their leader.
    const shape: Relayed = { resultsViaHub: topology !== 'star' };
    await raw.run(WARMUP, shape);
    await runTask(service, setProbe, `${topology}-warmup`, WARMUP);
    await runTask(plain, setProbe, `${topology}-warmup-unsigned`, WARMUP);

    const perRound = Math.ceil(SUBTASKS / ROUNDS);
    const raws: Measured[] = [];
    const relays: Measured[] = [];
    const rxs: RxMeasured[] = [];
    const unsigned: RxMeasured[] = [];
    let rawAgentsMs = 0;
    let relayedAgentsMs = 0;
    let rxAgentsMs = 0;
    let agentDisconnects = 0;
    const bulls: Measured[] = [];
    let bullAgentsMs = 0;
    let redisMs = 0;
    const sides = (bull === undefined ? (['raw', 'relayed', 'rx', 'unsigned'] as const) : (['raw', 'relayed', 'rx', 'bull', 'unsigned'] as const)).filter(side => SIDES === undefined || SIDES.includes(side));
    for (let round = 0; round < ROUNDS; round++) {
      // Rotating order: no side always runs right after another's burst.
      for (const side of [...sides.slice(round % sides.length), ...sides.slice(0, round % sides.length)]) {
        await markAll(children);
        if (side === 'bull' && bull !== undefined) {
          const redisBefore = await bull.redisCpuMs();
          bulls.push(await bull.run(perRound, WORK_MS, TASK_TIMEOUT_MS));
          redisMs += (await bull.redisCpuMs()) - redisBefore;
        } else if (side === 'raw') raws.push(await raw.run(perRound));
        else if (side === 'relayed') relays.push(await raw.run(perRound, shape));
        else if (side === 'rx') rxs.push(await runTask(service, setProbe, `${topology}-${round}`, perRound));
        else unsigned.push(await runTask(plain, setProbe, `${topology}-${round}-unsigned`, perRound));
        const { cpuMs, disconnects } = await markAll(children);
        agentDisconnects += disconnects;
        if (side === 'raw') rawAgentsMs += cpuMs;
        else if (side === 'relayed') relayedAgentsMs += cpuMs;
        else if (side === 'rx') rxAgentsMs += cpuMs;
        else if (side === 'bull') bullAgentsMs += cpuMs;
      }
    }
    if (SIDES !== undefined) {
      // Profiling: no ratios, only what each side that ran did.
      const said = [['raw', raws], ['relayed', relays], ['rx', rxs], ['bull', bulls], ['unsigned', unsigned]] as const;
      for (const [side, ms] of said) {
        if (ms.length === 0) continue;
        const m = pool(ms);
        process.stderr.write(`  ${topology}, ${side} alone: ${formatNumber(perSecond(m))}/s, this process ${formatNumber(m.serverCores, 2)} cores, ${formatNumber(cpuPerJobUs(m, m.windowMs), 1)} µs CPU each\n`);
        if (side === 'rx' || side === 'unsigned') {
          // What crossed the service's server per subtask (warm-up included; heartbeats too), by kind.
          const { byKind } = (side === 'rx' ? service : plain).server.stats;
          const subtasks = WARMUP + SUBTASKS;
          const kinds = Object.entries(byKind).map(([kind, k]) => `${kind} ${formatNumber((k?.sent ?? 0) / subtasks, 2)}`);
          process.stderr.write(`    messages per subtask through the server: ${kinds.join(', ')}\n`);
        }
      }
      await stopAll(children);
      return undefined;
    }
    const rawPooled = pool(raws);
    const rx = poolRx(rxs);
    const roundRatios = rxs.map((m, i) => perSecond(m) / perSecond(raws[i] as Measured));
    const relayedRatios = rxs.map((m, i) => perSecond(m) / perSecond(relays[i] as Measured));
    const relayedPooled = pool(relays);
    const signingRatios = rxs.map((m, i) => perSecond(m) / perSecond(unsigned[i] as RxMeasured));
    const bullPooled = bulls.length === 0 ? undefined : pool(bulls);
    const bullRatios = bulls.map((m, i) => perSecond(rxs[i] as RxMeasured) / perSecond(m));
    process.stderr.write(
      `  ${topology}: raw ws jobs ${formatNumber(perSecond(rawPooled))}/s, with the topology's frames ${formatNumber(perSecond(relayedPooled))}/s, p50 ${formatNumber(nearestRank(rawPooled.latencies, 50), 2)} ms, p99 ${formatNumber(nearestRank(rawPooled.latencies, 99), 2)} ms; ` +
        `rxswarm ${formatNumber(perSecond(rx))}/s, p50 ${formatNumber(nearestRank(rx.latencies, 50), 2)} ms, p99 ${formatNumber(nearestRank(rx.latencies, 99), 2)} ms; per-round ratios ${roundRatios.map(r => r.toFixed(2)).join(' ')}; signed/unsigned ${signingRatios.map(r => r.toFixed(2)).join(' ')}` +
        `${bullPooled === undefined ? '' : `; BullMQ ${formatNumber(perSecond(bullPooled))}/s, rxswarm ÷ BullMQ per round ${bullRatios.map(r => r.toFixed(2)).join(' ')}`}\n`,
    );
    await stopAll(children);
    return {
      topology,
      raw: rawPooled,
      rawAgentsCores: rawAgentsMs / rawPooled.windowMs,
      relayed: relayedPooled,
      relayedAgentsCores: relayedAgentsMs / relayedPooled.windowMs,
      relayedRatios,
      rx,
      rxAgentsCores: rxAgentsMs / rx.endToEndMs,
      unsigned: poolRx(unsigned),
      roundRatios,
      signingRatios,
      refusals,
      agentDisconnects,
      ...(bullPooled === undefined ? {} : { bull: { measured: bullPooled, agentsCores: bullAgentsMs / bullPooled.windowMs, redisCores: redisMs / bullPooled.windowMs, roundRatios: bullRatios } }),
    };
  } finally {
    await service.close();
    await plain.close();
    await raw.close();
  }
}

function rows(pair: Pair): BenchRow[] {
  const { topology, raw, rx } = pair;
  const suite = `dispatch, ${AGENTS} agents, 1 ms work, ${topology}${COALESCE ? '' : ', coalesceWrites off'}`;
  const p = (m: Measured, percent: number): number => nearestRank(m.latencies, percent);
  const hops = [...rx.hops].sort((a, b) => a[0] - b[0]).map(([h, n]) => `${formatNumber(n)} × ${h} hop${h === 1 ? '' : 's'}`).join(', ');
  const rounds = `${ROUNDS} rounds of ${formatNumber(raw.count / ROUNDS)}, alternating with the other side`;
  const rawNote = `${formatNumber(raw.count)} jobs (${rounds}) on ${AGENTS} plain ws connections in ${CHILDREN} processes, 1 in flight each; server ${formatNumber(raw.serverCores, 2)} cores, clients ${formatNumber(pair.rawAgentsCores, 2)} cores`;
  const rxNote =
    `${formatNumber(rx.count)} subtasks (${rounds}) in ${formatNumber(rx.windowMs)} ms first assign → last result, ${formatNumber(rx.endToEndMs)} ms submit → outcome (${formatNumber((rx.count * 1000) / rx.endToEndMs)}/s); ` +
    `ratio per round ${pair.roundRatios.map(r => r.toFixed(2)).join('/')}; service process ${formatNumber(rx.serverCores, 2)} cores, agent processes ${formatNumber(pair.rxAgentsCores, 2)} cores; ${hops}; ` +
    `incidents: ${rx.incidents.size === 0 ? 'none' : [...rx.incidents].map(([k, n]) => `${k} ×${n}`).join(', ')}; reassigned ${rx.reassigned}, rejected ${rx.rejected}, agent disconnects ${pair.agentDisconnects}${pair.refusals.length > 0 ? `, refusals ${pair.refusals.length}: ${pair.refusals[0]}` : ''}`;
  const bull = pair.bull;
  const bullRows: BenchRow[] =
    bull === undefined
      ? []
      : [
          {
            suite,
            case: 'baseline: BullMQ + Redis, throughput',
            value: perSecond(bull.measured),
            unit: 'jobs/s',
            note: `${formatNumber(bull.measured.count)} jobs (${rounds}), added in bulk here, ${CHILDREN} workers of concurrency ${AGENTS / CHILDREN}; this process ${formatNumber(bull.measured.serverCores, 2)} cores, redis-server ${formatNumber(bull.redisCores, 2)} cores, workers ${formatNumber(bull.agentsCores, 2)} cores; p50 added → completed ${formatNumber(p(bull.measured, 50), 1)} ms (queueing: not compared)`,
          },
          ratioRow(suite, 'rxswarm service: throughput ÷ BullMQ', perSecond(rx), 'subtasks/s', 'BullMQ', perSecond(bull.measured), '>= 2x', `ratio per round ${bull.roundRatios.map(r => r.toFixed(2)).join('/')}`),
        ];
  const { relayed } = pair;
  const frames = topology === 'star' ? '3 writes and 2 reads' : '4 writes and 3 reads';
  const relayedNote = `${formatNumber(relayed.count)} jobs (${rounds}): the ${AGENTS - 1} spokes' jobs go through the hub connection and back, ${topology === 'star' ? 'results straight back' : 'results up through the hub'}, each answered by a received frame (${frames} per job, as rxswarm's ${topology}); server ${formatNumber(relayed.serverCores, 2)} cores, clients ${formatNumber(pair.relayedAgentsCores, 2)} cores`;
  return [
    { suite, case: 'baseline: raw ws jobs, throughput', value: perSecond(raw), unit: 'jobs/s', note: rawNote },
    ratioRow(suite, 'rxswarm service: throughput', perSecond(rx), 'subtasks/s', 'raw ws', perSecond(raw), '>= 0.6x', rxNote),
    { suite, case: `baseline: raw ws jobs with ${topology}'s frames, throughput`, value: perSecond(relayed), unit: 'jobs/s', note: relayedNote },
    ratioRow(suite, `rxswarm service: throughput ÷ raw ws with ${topology}'s frames`, perSecond(rx), 'subtasks/s', 'relayed raw ws', perSecond(relayed), undefined, `ratio per round ${pair.relayedRatios.map(r => r.toFixed(2)).join('/')}`),
    {
      suite,
      case: 'server CPU per job or subtask: raw ws, with the frames, rxswarm',
      value: cpuPerJobUs(rx, rx.endToEndMs),
      unit: 'µs',
      note: `raw ws ${formatNumber(cpuPerJobUs(raw, raw.windowMs), 1)} µs per job, with ${topology}'s frames ${formatNumber(cpuPerJobUs(relayed, relayed.windowMs), 1)} µs, rxswarm ${formatNumber(cpuPerJobUs(rx, rx.endToEndMs), 1)} µs per subtask (target ≤ 60 µs)`,
    },
    ...bullRows,
    { suite, case: 'baseline: raw ws jobs, p50 round trip', value: p(raw, 50), unit: 'ms', note: `p99 ${formatNumber(p(raw, 99), 2)} ms, max ${formatNumber(p(raw, 100), 2)} ms` },
    ratioRow(suite, 'rxswarm: p50 assign → result (lower is better)', p(rx, 50), 'ms', 'raw ws p50', p(raw, 50)),
    ratioRow(suite, 'rxswarm: p99 assign → result (lower is better)', p(rx, 99), 'ms', 'raw ws p99', p(raw, 99), undefined, `max ${formatNumber(p(rx, 100), 2)} ms`),
    ratioRow(
      suite,
      'rxswarm, signing on ÷ off: throughput (the cost of authentication)',
      perSecond(rx),
      'subtasks/s',
      'signing off',
      perSecond(pair.unsigned),
      undefined,
      `ratio per round ${pair.signingRatios.map(r => r.toFixed(2)).join('/')}; service CPU per subtask ${formatNumber(cpuPerJobUs(rx, rx.endToEndMs), 1)} µs signed, ${formatNumber(cpuPerJobUs(pair.unsigned, pair.unsigned.endToEndMs), 1)} µs unsigned`,
    ),
  ];
}

export default async function bench(): Promise<BenchRow[]> {
  if (!(Number.isInteger(AGENTS) && AGENTS >= CHILDREN && AGENTS % CHILDREN === 0)) {
    throw new RangeError(`DISPATCH_AGENTS must be a multiple of ${CHILDREN} (the agent processes share them evenly), got ${String(process.env['DISPATCH_AGENTS'])}`);
  }
  if (!(Number.isInteger(SUBTASKS) && SUBTASKS >= ROUNDS && SUBTASKS <= ROUNDS * MAX_PER_TASK)) {
    throw new RangeError(`DISPATCH_SUBTASKS must be an integer in [${ROUNDS}, ${ROUNDS * MAX_PER_TASK}] (${ROUNDS} rounds of at most ${MAX_PER_TASK}), got ${String(process.env['DISPATCH_SUBTASKS'])}`);
  }
  const children: AgentsChild[] = [];
  const started = await startBullBaseline();
  const bull = typeof started === 'string' ? undefined : started;
  if (typeof started === 'string') console.log(`dispatch: BullMQ + Redis baseline skipped: ${started}`);
  try {
    for (let i = 0; i < CHILDREN; i++) children.push(await startAgentsChild());
    const out: BenchRow[] = [];
    for (const topology of TOPOLOGIES) {
      const pair = await measurePair(children, topology, bull);
      if (pair !== undefined) out.push(...rows(pair));
    }
    return out;
  } finally {
    await Promise.all(children.map(c => c.exit()));
    await bull?.close();
  }
}
