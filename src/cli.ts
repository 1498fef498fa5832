#!/usr/bin/env node
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { FAULT_SPEC_HELP, parseFaultSpec } from '../streams/faultSpec.js';
import { JournalDamaged } from '../streams/journal.js';
import { PacedScheduler } from '../streams/pacedScheduler.js';
import type { StateBody } from '../streams/protocol.js';
import type { Task } from '../streams/task.js';
import { checkBody } from '../streams/wsCodec.js';
import { validateTask } from './coordinator.js';
import { expectedDemoMs, runDemo, switchVerdict, whyNoSwitch } from './demo.js';
import { runDetectorDemo, type AgentScript } from './detectorDemo.js';
import type { CoordinationEvent, CoordinationResult } from './events.js';
import { ConfigError, configurable } from './cliConfig.js';
import { execHandler, parseByteSize, type ExecAgent } from './execHandler.js';
import { HandlerLoadError, loadHandler } from './handlerModule.js';
import { LiveView, eventText, reportLines } from './liveView.js';
import { AgentLog } from './agentLog.js';
import { LOG_LEVELS, cliLog, unrefTimer, type CliLog, type LogFormat, type LogLevel } from './cliLog.js';
import { lineLimit } from '../operators/internal/lineLimit.js';
import { CoordinatorSilentError, NotConnectedError, TaskRefusedError, cancelServiceTask, followTask, natsCredentialsFromEnv, readServiceState, startAgent, type Handler } from './remote.js';
import { statusLines, statusJson, taskLines } from './statusText.js';
import { simulationHtml } from './simulationHtml.js';
import { Service } from './service.js';
import { NatsClusterNode, readClusterMembers, type ClusterMember } from './natsCluster.js';
import { clusterHttpRoutes } from './clusterHttp.js';
import { connectNats } from '../streams/natsConnect.js';
import { simulate, type SimulationReport } from './simulate.js';
import { costWarning } from './simulationCost.js';
import { progressLine, simulationLines } from './simulationText.js';
import { TOPOLOGY_NAMES, type TopologyName } from './topology.js';

/** Exit codes of the contract. */
const EXIT = { ok: 0, taskFailed: 1, usage: 2 } as const;

/** Bad usage: exit 2 with the message and a pointer to --help. */
class UsageError extends Error {}

/** A connection refused or lost: exit 2 with the message (help would not help). */
class ConnectionError extends UsageError {}

const integer =
  (min: number, max: number) =>
  (text: string): number => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < min || value > max) throw new InvalidArgumentError(`must be an integer in [${min}, ${max}]`);
    return value;
  };

/**
 * Agents a simulation may have. Each is a simulated process with its own timers and detector state:
 * 10,000 on a star take a few seconds; a mesh of a few thousand (every agent heartbeats every other)
 * takes minutes and gigabytes, and is warned about before it starts.
 */
const MAX_SIMULATED_AGENTS = 10_000;

/** What a simulation costs by topology, n agents (simulate --help). */
const SIMULATE_COST_HELP = [
  'Cost by topology (n agents):',
  '  star, hierarchical  a few messages per subtask whatever n: 10,000 agents cost about what 100 do per subtask',
  '  ring                O(n) per subtask by nature: work travels successor to successor to the member',
  '                      that runs it and its result comes back the same way (hundreds of hops at 1,000)',
  '  mesh                O(n²) by nature: every peer heartbeats every other, n × (n − 1) beats a virtual',
  '                      second (a million at 1,000 agents, a hundred million at 10,000)',
].join('\n');

const simulatedAgents = (text: string): number => {
  if (Number.isInteger(Number(text)) && Number(text) > MAX_SIMULATED_AGENTS) {
    throw new InvalidArgumentError(`at most ${MAX_SIMULATED_AGENTS} agents can be simulated (every one is a simulated process held in memory); got ${text}`);
  }
  return integer(1, MAX_SIMULATED_AGENTS)(text);
};

const topology = (text: string): TopologyName | 'adaptive' => {
  if (text !== 'adaptive' && !TOPOLOGY_NAMES.includes(text as TopologyName)) throw new InvalidArgumentError(`must be one of ${[...TOPOLOGY_NAMES, 'adaptive'].join(', ')}`);
  return text as TopologyName | 'adaptive';
};

const wsUrl = (text: string): string => {
  if (!/^wss?:\/\/[^/]+/.test(text)) throw new InvalidArgumentError('must be ws://HOST:PORT');
  return text;
};

const natsUrl = (text: string): string => {
  if (!/^(nats|tls):\/\/[^/]+/.test(text)) throw new InvalidArgumentError('must be nats://[USER:PASS@]HOST:PORT');
  return text;
};

/** `--nats`: the NATS server instead of a coordinator's address (credentials in the URL or RXSWARM_NATS_USER/_PASSWORD/_TOKEN). */
/** Where a client command reaches the coordinator over WebSocket (also from RXSWARM_CONNECT). */
const connectOption = (): Option => new Option('--connect <url>', 'the coordinator, ws://HOST:PORT (or --nats)').argParser(wsUrl).env('RXSWARM_CONNECT');
const natsOption = (what: string): Option => new Option('--nats <url>', `${what} over NATS: nats://[USER:PASS@]HOST:PORT (credentials also from RXSWARM_NATS_USER, RXSWARM_NATS_PASSWORD, RXSWARM_NATS_TOKEN)`).argParser(natsUrl);

const byteSize = (text: string): number => {
  try {
    return parseByteSize(text);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
};

/** A duration: `90s`, `30m`, `24h`, `7d` (or a number of ms). */
const duration = (text: string): number => {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
  const ms = m === null ? NaN : Number(m[1]) * unit[(m[2] ?? 'ms') as keyof typeof unit];
  if (!(ms > 0 && ms <= 365 * 86_400_000)) throw new InvalidArgumentError('must be a duration like 90s, 30m, 24h or 7d (at most a year)');
  return ms;
};

const list = (text: string): string[] => text.split(',').map(s => s.trim()).filter(s => s.length > 0);

/** The token from `--token` or `RXSWARM_TOKEN` (or a config file); there is no default: an open coordinator would take anyone's work. */
function tokenOf(token: string | undefined): string {
  if (token === undefined || token === '') throw new UsageError('a token is required: --token T or RXSWARM_TOKEN');
  return token;
}

const logOptions = (): Option[] => [
  new Option('--log-format <format>', 'text: a timestamped line per event; json: one JSON object a line').choices(['text', 'json']).default('text'),
  new Option('--log-level <level>', 'debug shows every assignment and result; warn only what went wrong').choices([...LOG_LEVELS]).default('info'),
];

const tokenOption = (): Option => new Option('--token <token>', 'shared secret; better as RXSWARM_TOKEN (kept out of ps)').env('RXSWARM_TOKEN');
const heartbeatOption = (): Option => new Option('--heartbeat-ms <ms>', 'heartbeat interval; the same on the service and its agents').argParser(integer(10, 60_000)).default(1000);

/** The version in rxswarm's package.json, found upwards from this file (src/ when run from the sources, dist/src/ when built). */
function packageVersion(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const manifest = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (manifest.name === 'rxswarm' && typeof manifest.version === 'string') return manifest.version;
    }
    if (dirname(dir) === dir) return 'unknown';
  }
}

const CONFIG_HELP = `
Every option can also come from an environment variable, RXSWARM_ and the flag in capitals
(--heartbeat-ms: RXSWARM_HEARTBEAT_MS), or from --config FILE, a JSON object whose keys are the
long flags in camelCase ({"heartbeatMs": 500}); unknown keys are refused. A flag wins over the
environment, the environment over the file, the file over the default.`;

function print(lines: readonly string[], stream: NodeJS.WriteStream = process.stdout): void {
  for (const line of lines) stream.write(`${line}\n`);
}

/** Wall ms between the demo's catch-ups with the wall clock (`PacedScheduler`'s default). */
const DEMO_TICK_MS = 20;

/** A demo expected to take longer than this at speed 1 runs faster by default, to end in about this long. */
const DEMO_WATCH_MS = 30_000;

async function demo({ agents, subtasks, seed, speed }: { agents: number; subtasks: number; seed: number; speed?: number }): Promise<number> {
  const expected = expectedDemoMs(agents, subtasks);
  const pace = speed ?? Math.max(1, Math.round((10 * expected) / DEMO_WATCH_MS) / 10);
  const about = expected < 10_000 ? `${(expected / 1000).toFixed(1)} s` : expected < 90_000 ? `${Math.round(expected / 1000)} s` : `${Math.round(expected / 60_000)} min`;
  console.log(
    `${agents} agents, ${subtasks} subtasks, adaptive protocol, seed ${seed}; the work takes about ${about} (more with the faults injected while it runs)` +
      `${pace === 1 ? '' : `, shown at ${pace}× speed`}; the same seed gives the same run\n`,
  );
  const view = new LiveView({ total: subtasks });
  // The run is in virtual time, moved along with the wall clock: what happens, and when (in
  // virtual time), depends on the seed alone, not on how busy the machine is.
  // A catch-up may run twice what a tick should at this pace: the default (1 s a tick, 50× at
  // most) held a long run (past ~50,000 subtasks at 12 agents) below the speed announced.
  const scheduler = new PacedScheduler({ speed: pace, tickMs: DEMO_TICK_MS, maxStepMs: Math.max(1000, 2 * pace * DEMO_TICK_MS) });
  const started = performance.now();
  scheduler.start();
  let outcome;
  try {
    outcome = await runDemo({
      agents,
      subtasks,
      seed,
      scheduler,
      onEvent: event => view.event(event),
    });
  } finally {
    scheduler.stop();
    view.close();
  }
  const { result, faults, longCall, congestion } = outcome;
  const tally = view.tally;
  console.log('');
  if (congestion !== undefined) console.log(`congestion: from ${congestion.atMs} ms every message between two agents took ${congestion.latencyMs} ms (relays pay it on every hop; the coordinator's links stayed fast)`);
  console.log(`injected: ${faults.map(f => `${f.kind} ${f.agent} at ${Math.round(f.atMs)} ms`).join('; ') || 'nothing (the task finished before the first fault was due)'}`);
  const detected = Object.entries(tally.faults).map(([kind, n]) => `${kind} ${n}`);
  console.log(`detected: ${detected.join(', ') || 'nothing'}; healed ${tally.healed}; hedged ${tally.hedged}`);
  if (longCall.tookMs !== undefined) {
    console.log(
      `long call ${longCall.subtaskId} (silent, four times the others' work): started on ${longCall.startedOn ?? '?'}, done by ${longCall.doneBy ?? '?'} ${(longCall.tookMs / 1000).toFixed(2)} s later` +
        (longCall.hedged > 0 ? `, hedged ${longCall.hedged} time(s)` : ', not hedged'),
    );
  }
  print(['', ...reportLines(result)]);
  const stayed = whyNoSwitch(result, agents) ?? switchVerdict(result);
  if (stayed !== undefined) console.log(stayed);
  console.log(`\n(${(result.metrics.durationMs / 1000).toFixed(2)} s of virtual time in ${((performance.now() - started) / 1000).toFixed(1)} s of wall time)`);
  return result.success ? EXIT.ok : EXIT.taskFailed;
}

interface SimulateFlags {
  topology: TopologyName | 'adaptive';
  agents: number;
  subtasks: number;
  hours: number;
  seed: number;
  faults: string;
  json: boolean;
  html?: string;
}

function simulateCommand(flags: SimulateFlags): number {
  const ids = Array.from({ length: flags.agents }, (_, i) => `agent-${i}`);
  let faults;
  try {
    faults = parseFaultSpec(flags.faults, ids);
  } catch (err) {
    throw new UsageError(`--faults: ${(err as Error).message}`);
  }
  const untilMs = flags.hours * 3_600_000;
  const warning = costWarning({ topology: flags.topology, agents: flags.agents, subtasks: flags.subtasks, untilMs, faults });
  if (warning !== undefined) console.error(warning);
  const progress = progressLine(process.stderr, () => performance.now());
  const started = performance.now();
  let report: SimulationReport;
  try {
    report = simulate({ seed: flags.seed, topology: flags.topology, agents: flags.agents, subtasks: flags.subtasks, faults, untilMs }, progress);
  } finally {
    progress.done();
  }
  const wallMs = performance.now() - started;
  if (flags.json) {
    const { events: _events, ...rest } = report;
    console.log(JSON.stringify(rest, null, 2));
  } else {
    console.log(`simulated ${(report.finishedAtMs / 1000).toFixed(1)} virtual s in ${wallMs.toFixed(0)} ms of wall time`);
    print(simulationLines(report, faults, ids));
  }
  if (flags.html !== undefined) {
    const title = `rxswarm simulate: ${flags.topology}, ${flags.agents} agents, ${flags.subtasks} subtasks, seed ${flags.seed}${flags.faults === '' ? '' : `, faults ${flags.faults}`}`;
    try {
      writeFileSync(flags.html, simulationHtml(report, faults, ids, title));
    } catch (err) {
      throw new UsageError(`--html ${flags.html}: ${(err as Error).message}`);
    }
    (flags.json ? console.error : console.log)(`wrote ${flags.html}`);
  }
  return report.failed === 0 ? EXIT.ok : EXIT.taskFailed;
}

function detectors({ agents, minutes }: { agents: number; minutes: number }): number {
  const untilMs = minutes * 60_000;
  const scripts: AgentScript[] = Array.from({ length: agents }, (_, i) => ({ id: `agent-${i}`, intervalMs: 1000, jitter: 0.1 }));
  scripts[0] = { ...scripts[0]!, crashAtMs: untilMs * 0.25 };
  scripts[1] = { ...scripts[1]!, slowAtMs: untilMs * 0.5, slowFactor: 6 };
  scripts[2] = { ...scripts[2]!, leaveAtMs: untilMs * 0.75 };
  const report = runDetectorDemo(scripts, untilMs);
  console.log(`${agents} agents at 1 Hz ±10 % for ${minutes} virtual minute(s): ${report.heartbeats} heartbeats`);
  for (const detector of ['phi', 'deadline'] as const) {
    const mine = report.events.filter(e => e.detector === detector);
    const crash = mine.find(e => e.agentId === 'agent-0' && e.type === 'suspected');
    const slow = mine.filter(e => e.agentId === 'agent-1' && e.type === 'suspected').length;
    const others = mine.filter(e => e.type === 'suspected' && e.agentId !== 'agent-0' && e.agentId !== 'agent-1').length;
    console.log(`  ${detector.padEnd(8)} crash detected after ${crash ? crash.at - scripts[0]!.crashAtMs! : '—'} ms; slowed agent suspected ${slow}×; false suspicions: ${others}`);
  }
  return EXIT.ok;
}

/** Resolves with the signal that asked the process to stop. */
function stopSignal(): Promise<NodeJS.Signals> {
  return new Promise(resolve => {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => resolve(signal));
  });
}

/** PEM contents of `--tls-cert` and `--tls-key` (both or neither). */
function tlsOf(cert: string | undefined, key: string | undefined): { cert: Buffer; key: Buffer } | undefined {
  if (cert === undefined && key === undefined) return undefined;
  if (cert === undefined || key === undefined) throw new UsageError('--tls-cert and --tls-key go together');
  const read = (flag: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new UsageError(`${flag} ${path}: ${(err as Error).message}`);
    }
  };
  return { cert: read('--tls-cert', cert), key: read('--tls-key', key) };
}

/**
 * The coordinator is the process whose death loses every task: an error that escapes every
 * connection's own guard (a bug) is reported and the service goes on.
 */
function keepServing(): void {
  const report = (what: string) => (err: unknown) => console.error(`internal error (${what}), the coordinator keeps serving: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.on('uncaughtException', report('uncaught exception'));
  process.on('unhandledRejection', report('unhandled rejection'));
}

/** What a coordination event is worth in `serve`'s log: trouble is a warning, routine work is debug. */
function eventLevel(event: CoordinationEvent): LogLevel {
  if (event.type === 'subtask.assigned' || event.type === 'subtask.completed') return 'debug';
  if (event.type === 'agent.down' || event.type === 'agent.suspected' || event.type === 'agent.quarantined' || event.type === 'fault.detected' || event.type === 'subtask.failed' || event.type === 'healing.exhausted' || event.type === 'subtask.waiting') return 'warn';
  return 'info';
}

interface LogFlags {
  logFormat: LogFormat;
  logLevel: LogLevel;
}

function logOf(flags: LogFlags): CliLog {
  return cliLog({ format: flags.logFormat, level: flags.logLevel });
}

/** What serve's attempt flags set on the coordinator. */
function attemptsOf(flags: { maxAttempts: number; attemptTimeout: number; progressTimeout: number; deadlockTimeout: number }): { maxSubtaskAttempts: number; attemptTimeoutMs: number; progressTimeoutMs: number; deadlockMs: number } {
  return { maxSubtaskAttempts: flags.maxAttempts, attemptTimeoutMs: flags.attemptTimeout, progressTimeoutMs: flags.progressTimeout, deadlockMs: flags.deadlockTimeout };
}

/** Lines a second at most of refused connections and frames, and of rejected results (each a flood an attacker can make). */
const LOGGED_PER_SECOND = 10;

/** How serve logs the coordinator's events: a task's with its id, the engine's (agents, faults) as they are. */
function logEvent(log: CliLog): (event: CoordinationEvent, taskId: string) => void {
  // A rogue agent's results are rejected as fast as it sends them: a few lines a second, and a count.
  const rejections = lineLimit({ perSecond: LOGGED_PER_SECOND, summary: n => log.info(`${n} more result(s) rejected in that second (not shown: more than ${LOGGED_PER_SECOND} a second)`, { event: 'subtask.rejected', hidden: n }), now: Date.now, later: unrefTimer });
  return (event, taskId) => {
    if (event.type === 'task.completed') {
      const m = event.result.metrics;
      const failed = !event.result.success;
      log[failed ? 'warn' : 'info'](`task ${event.result.taskId}: ${failed ? 'failed' : 'done'}, ${m.completed} of ${m.subtasks} completed in ${(m.durationMs / 1000).toFixed(2)} s`, { task: event.result.taskId, event: event.type, completed: m.completed, subtasks: m.subtasks, durationMs: m.durationMs });
      return;
    }
    if (event.type === 'coordinator.halted') return log.error(`stopped taking work: ${event.reason}`, { event: event.type });
    const text = eventText(event);
    if (text !== undefined && event.type === 'subtask.rejected') return rejections(() => log[eventLevel(event)](taskId === '' ? text : `task ${taskId}: ${text}`, { ...(taskId === '' ? {} : { task: taskId }), event: event.type, agent: event.agentId, subtask: event.subtaskId }));
    if (text !== undefined) log[eventLevel(event)](taskId === '' ? text : `task ${taskId}: ${text}`, { ...(taskId === '' ? {} : { task: taskId }), event: event.type, ...('agentId' in event && typeof event.agentId === 'string' ? { agent: event.agentId } : {}), ...('subtaskId' in event ? { subtask: event.subtaskId } : {}) });
  };
}

async function serve(flags: LogFlags & { host: string; port: number; token?: string; topology: TopologyName | 'adaptive'; heartbeatMs: number; tlsCert?: string; tlsKey?: string; maxConnections?: number; maxSlots: number; metricsPublic: boolean; dataDir: string; maxTasks: number; retention: number; maxAttempts: number; attemptTimeout: number; progressTimeout: number; deadlockTimeout: number }): Promise<number> {
  const token = tokenOf(flags.token);
  const tls = tlsOf(flags.tlsCert, flags.tlsKey);
  const log = logOf(flags);
  let service: Service;
  try {
    service = await Service.start({
      token,
      host: flags.host,
      port: flags.port,
      ...(tls === undefined ? {} : { tls }),
      ...(flags.maxConnections === undefined ? {} : { maxConnections: flags.maxConnections }),
      coordinator: { topology: flags.topology, heartbeat: { intervalMs: flags.heartbeatMs }, ...attemptsOf(flags), maxSlotsPerAgent: flags.maxSlots, maxTasks: flags.maxTasks, retentionMs: flags.retention },
      dataDir: flags.dataDir,
      metricsPublic: flags.metricsPublic,
      version: packageVersion(),
      log: () => undefined, // refusals are printed below, with every other connection event
      onEvent: logEvent(log),
    });
  } catch (err) {
    if (err instanceof JournalDamaged || /data directory|journal/.test((err as Error).message)) throw new UsageError((err as Error).message);
    throw new ConnectionError(`cannot listen on ${flags.host}:${flags.port}: ${(err as Error).message}`);
  }
  // A stranger can be refused as fast as it connects: refusals are a few lines a second, and a count.
  const refusals = lineLimit({ perSecond: LOGGED_PER_SECOND, summary: n => log.warn(`refused ${n} more connection(s) or frame(s) in that second (not shown: more than ${LOGGED_PER_SECOND} a second)`, { event: 'refused', hidden: n }), now: Date.now, later: unrefTimer });
  service.server.events$.subscribe(event => {
    if (event.type === 'connected') log.info(`${event.role} ${event.agentId} connected from ${event.remote}${event.role === 'agent' ? ` (capabilities: ${event.capabilities.join(', ') || 'none'}; slots ${event.slots})` : ''}`, { event: 'connected', agent: event.agentId, role: event.role, remote: event.remote });
    else if (event.type === 'disconnected') log.info(`${event.agentId} disconnected (close ${event.code}${event.reason ? `: ${event.reason}` : ''})`, { event: 'disconnected', agent: event.agentId, code: event.code });
    else refusals(() => log.warn(`refused ${event.agentId ?? event.remote}: ${event.error} (close ${event.code})`, { event: 'refused', remote: event.remote, code: event.code }));
  });
  keepServing();
  const held = service.coordinator.tasks();
  const unfinished = held.filter(t => t.state === 'queued' || t.state === 'running').length;
  if (flags.dataDir !== ':memory:') log.info(`journal in ${flags.dataDir}: ${unfinished === 0 ? 'nothing to resume' : `resuming ${unfinished} unfinished task(s)`}${held.length > unfinished ? `, ${held.length - unfinished} finished kept` : ''}`, { event: 'journal', dataDir: flags.dataDir, resumed: unfinished });
  const http = service.url.replace(/^ws/, 'http');
  log.info(`rxswarm coordinator listening on ${service.url} (topology ${flags.topology}, heartbeat ${flags.heartbeatMs} ms); Ctrl-C stops it`, { url: service.url });
  log.info(`dashboard: ${http}/ (it asks for the token once); metrics: ${http}/metrics (${flags.metricsPublic ? 'public' : 'Authorization: Bearer TOKEN'})`, { dashboard: `${http}/`, metrics: `${http}/metrics` });
  const signal = await stopSignal();
  log.info(`${signal}: closing`);
  await service.close();
  return EXIT.ok;
}

/** `serve --nats URL`: one node of a coordinator cluster (leader lease, JetStream journal); agents and clients come over NATS. */
async function serveNats(flags: LogFlags & { nats: string; token?: string; topology: TopologyName | 'adaptive'; heartbeatMs: number; maxSlots: number; maxTasks: number; retention: number; maxAttempts: number; attemptTimeout: number; progressTimeout: number; deadlockTimeout: number; leaseTtl: number; nodeId?: string; host: string; port: number; metricsPublic: boolean; http: boolean }): Promise<number> {
  const token = tokenOf(flags.token);
  const log = logOf(flags);
  const id = flags.nodeId ?? `${hostname()}-${process.pid}`;
  let node: NatsClusterNode;
  try {
    node = await NatsClusterNode.start({
      ...natsCredentialsFromEnv(),
      url: flags.nats,
      token,
      id,
      leaseTtlMs: flags.leaseTtl,
      coordinator: { topology: flags.topology, heartbeat: { intervalMs: flags.heartbeatMs }, ...attemptsOf(flags), maxSlotsPerAgent: flags.maxSlots, maxTasks: flags.maxTasks, retentionMs: flags.retention },
      log: () => undefined,
      onEvent: logEvent(log),
      onError: err => log.warn(err.message, { event: 'cluster.error' }),
      onRole: role => {
        if (role.type === 'standby') return log.info(`standby ${id}: ${role.reason}${role.leader ? ` (leader ${role.leader.id} on ${role.leader.host}, pid ${role.leader.pid})` : ''}`, { event: 'cluster.standby', reason: role.reason });
        if (role.type === 'elected') return log.info(`elected ${id} (lease revision ${role.term}): reading the journal`, { event: 'cluster.elected', term: role.term });
        const service = node?.leaderService;
        log.info(`leader ${id} (lease revision ${role.term}, journal at sequence ${role.journalSequence}, ${role.journalRead === undefined ? 'read whole' : `${role.journalRead} messages read at the election, the rest followed`}${role.journalMs === undefined ? '' : ` in ${role.journalMs} ms`}): rxswarm coordinator on NATS ${service?.server.url ?? flags.nats.replace(/\/\/[^@/]*@/, '//')} (topology ${flags.topology}, heartbeat ${flags.heartbeatMs} ms)`, { event: 'cluster.leader', term: role.term });
        service?.server.events$.subscribe(event => {
          if (event.type === 'connected') log.info(`${event.role} ${event.agentId} joined over NATS${event.role === 'agent' ? ` (capabilities: ${event.capabilities.join(', ') || 'none'}; slots ${event.slots})` : ''}`, { event: 'connected', agent: event.agentId, role: event.role });
          else if (event.type === 'disconnected') log.info(`${event.agentId} left (${event.code}${event.reason ? `: ${event.reason}` : ''})`, { event: 'disconnected', agent: event.agentId, code: event.code });
          else log.warn(`refused ${event.agentId ?? event.remote}: ${event.error} (code ${event.code})`, { event: 'refused', code: event.code });
        });
      },
    });
  } catch (err) {
    throw new ConnectionError(`--nats ${flags.nats.replace(/\/\/[^@/]*@/, '//')}: ${(err as Error).message}`);
  }
  // HTTP only when a port is asked for: several nodes of a cluster may share a machine.
  let http: Server | undefined;
  if (flags.http) {
    const routes = clusterHttpRoutes(node, { token, metricsPublic: flags.metricsPublic });
    http = createServer((request, response) => void routes(request, response));
    try {
      await new Promise<void>((resolve, reject) => {
        (http as Server).once('error', reject);
        (http as Server).listen(flags.port, flags.host, () => resolve());
      });
    } catch (err) {
      await node.close();
      throw new ConnectionError(`cannot listen on ${flags.host}:${flags.port}: ${(err as Error).message}`);
    }
    const { port } = http.address() as AddressInfo;
    log.info(`http://${flags.host}:${port}/: this node's role and who leads; /metrics: the coordinator's metrics while it leads, and rxswarm_cluster_leader (${flags.metricsPublic ? 'public' : 'Authorization: Bearer TOKEN'})`, { event: 'cluster.http', port });
  }
  keepServing();
  log.info(`node ${node.id} of a coordinator cluster on NATS (lease TTL ${flags.leaseTtl} ms); Ctrl-C stops it`, { event: 'cluster.node', id: node.id });
  const signal = await stopSignal();
  log.info(`${signal}: closing`);
  http?.close();
  await node.close();
  return EXIT.ok;
}

async function agent(flags: LogFlags & { connect?: string; nats?: string; token?: string; id?: string; capabilities: string[]; handler?: string; exec?: string; maxRss?: number; slots: number; heartbeatMs: number; graceMs: number }): Promise<number> {
  const out = logOf(flags);
  const connect = urlOf(flags, '; or RXSWARM_CONNECT, or "connect" in --config');
  const token = tokenOf(flags.token);
  if (flags.exec !== undefined && flags.handler !== undefined) throw new UsageError('--exec and --handler are two ways to do the work: give one');
  if (flags.maxRss !== undefined && flags.exec === undefined) throw new UsageError('--max-rss is the budget of --exec children: give --exec too');
  let handler: Handler | undefined;
  let exec: ExecAgent | undefined;
  try {
    if (flags.exec !== undefined) {
      exec = execHandler({ command: flags.exec, ...(flags.maxRss === undefined ? {} : { maxRssBytes: flags.maxRss }) });
      handler = exec.handle;
    } else if (flags.handler !== undefined) {
      handler = await loadHandler(flags.handler);
    }
  } catch (err) {
    if (err instanceof HandlerLoadError || err instanceof RangeError) throw new UsageError(err.message);
    throw err;
  }
  const id = flags.id ?? `agent-${hostname()}-${process.pid}`;
  const log = new AgentLog({ id, url: connect });
  let running;
  try {
    running = startAgent({
      url: connect,
      token,
      id,
      capabilities: flags.capabilities,
      slots: flags.slots,
      heartbeatIntervalMs: flags.heartbeatMs,
      ...(handler === undefined ? {} : { handler }),
      ...(exec === undefined ? {} : { usage: { children: exec.usage } }),
      onEvent: event => {
        if (event.type === 'error') return out.error(`${id}: ${event.error}`, { agent: id });
        const line = log.line(event);
        if (line !== undefined) out[event.type === 'disconnected' ? 'warn' : 'info'](line, { agent: id, event: event.type });
        if (event.type === 'joined' && event.connects === 1 && event.heartbeatMs !== undefined && event.heartbeatMs !== flags.heartbeatMs) {
          out.info(`${id} beats every ${event.heartbeatMs} ms, the coordinator's interval (--heartbeat-ms ${flags.heartbeatMs} is used only until it says)`);
        }
      },
    });
  } catch (err) {
    if (err instanceof RangeError) throw new UsageError(err.message); // a bad id or capability
    throw err;
  }
  const doer = exec !== undefined ? `--exec ${JSON.stringify(flags.exec)}${flags.maxRss === undefined ? '' : ` (--max-rss ${flags.maxRss} bytes)`}` : handler === undefined ? 'the built-in worker' : flags.handler;
  out.info(`${id} connecting to ${connect.replace(/\/\/[^@/]*@/, '//')} with ${doer}`);
  const outcome = await Promise.race([running.done.then(() => 'done' as const, (err: Error) => err), stopSignal()]);
  if (outcome instanceof Error) {
    out.error(`${id}: ${outcome.message}`, { agent: id });
    return EXIT.usage;
  }
  // SIGTERM/SIGINT: hand back what it holds and leave cleanly; the coordinator reassigns at once.
  // Running handlers are aborted and get the grace period to end; a second signal ends it now.
  const now = (signal: NodeJS.Signals): void => {
    out.warn(`${id}: ${signal} again: exiting now`);
    process.exit(130);
  };
  process.on('SIGINT', now).on('SIGTERM', now);
  await running.leave();
  out.info(`${id} left (${outcome})`, { agent: id, event: 'left' });
  // Commands still running get SIGTERM now and SIGKILL after their own grace: none outlives the agent.
  const [still] = await Promise.all([running.settled(flags.graceMs), exec?.close()]);
  if (still > 0) out.warn(`${id}: ${still} handler${still === 1 ? '' : 's'} still running ${flags.graceMs} ms after being aborted; exiting without ${still === 1 ? 'it' : 'them'}`);
  exitWhenDone(); // what a handler left behind (a timer, a socket) must not keep the process up
  return EXIT.ok;
}

/** Ends the process once the command has returned and its exit code is set, whatever still holds the event loop. */
function exitWhenDone(): void {
  setTimeout(() => process.exit(), 0).unref();
}

function readTask(path: string): Task {
  let task: Task;
  try {
    task = JSON.parse(readFileSync(path, 'utf8')) as Task;
  } catch (err) {
    throw new UsageError(`${path}: ${(err as Error).message}`);
  }
  try {
    validateTask(task);
  } catch (err) {
    throw new UsageError(`${path}: ${(err as Error).message}`);
  }
  const invalid = checkBody('submit', { task });
  if (invalid !== undefined) {
    // `body.task.subtasks.0: …` as validateTask says it: `subtasks[0]: …`, and nothing before a key of the task itself.
    const at = invalid.indexOf(': ');
    const where = invalid.slice(0, at).replace(/^body\.task\.?/, '').replace(/\.(\d+)/g, '[$1]');
    throw new UsageError(`${path}: ${where === '' ? '' : `${where}: `}${invalid.slice(at + 2)}`);
  }
  return task;
}

interface FollowFlags {
  connect?: string;
  nats?: string;
  token?: string;
  json: boolean;
  silenceMs: number;
}

async function run(file: string, flags: FollowFlags & { detach: boolean }): Promise<number> {
  urlOf(flags); // where to, before what
  return follow(readTask(file), true, flags, file);
}

/** The coordinator to reach: `--connect` or `--nats`, exactly one (`more`: other ways the command takes it). */
function urlOf(flags: { connect?: string; nats?: string }, more = ''): string {
  if (flags.connect !== undefined && flags.nats !== undefined) throw new UsageError('--connect and --nats are two ways to reach the coordinator: give one');
  const url = flags.connect ?? flags.nats;
  if (url === undefined) throw new UsageError(`required option '--connect <url>' not specified (or --nats <url>${more})`);
  return url;
}

async function attach(taskId: string, flags: FollowFlags): Promise<number> {
  return follow({ id: taskId }, false, { ...flags, detach: false });
}

/**
 * Submits (or attaches to) a task and follows it to its result, across lost connections and
 * coordinator restarts; `--detach` returns once the coordinator has it. Ctrl-C on a terminal asks
 * whether to cancel the task or leave it running; off a terminal it cancels it (unless --detach).
 */
async function follow(task: Task | { id: string }, submit: boolean, flags: FollowFlags & { detach: boolean }, file?: string): Promise<number> {
  const url = urlOf(flags);
  const shown = url.replace(/\/\/[^@/]*@/, '//');
  const token = tokenOf(flags.token);
  let total = 'subtasks' in task ? task.subtasks.length : 0;
  let view: LiveView | undefined;
  let lastSaid = '';
  const followed = followTask({
    url,
    token,
    task,
    submit,
    silenceMs: flags.silenceMs,
    onState: state => {
      if (flags.detach) return followed.detach();
      total ||= state.subtasks;
      // Said when it changes: queued at a position, or running (also after a coordinator restart).
      const said = state.queuePosition === undefined ? `task ${task.id}: ${state.state}` : `task ${task.id}: queued, position ${state.queuePosition}`;
      if (said !== lastSaid) {
        lastSaid = said;
        process.stderr.write(`${said}\n`);
      }
    },
    ...(flags.json || flags.detach ? {} : { onEvent: (event: CoordinationEvent) => (view ??= new LiveView({ total })).event(event) }),
  });
  const stopAsking = onInterrupt(task.id, url, token, followed);
  let result: CoordinationResult;
  try {
    result = await followed.result;
  } catch (err) {
    view?.close();
    if ((err as Error).message === 'detached') {
      console.log(task.id);
      exitWhenDone();
      return EXIT.ok;
    }
    if (err instanceof TaskRefusedError) throw new UsageError(`${file ?? task.id}: ${err.message}`);
    // Never connected: nothing was sent, so the task is neither running nor to be attached to.
    if (err instanceof NotConnectedError) throw new ConnectionError(`${submit ? `task ${task.id} was not submitted: ` : ''}${shown}: ${err.message}`);
    if (err instanceof CoordinatorSilentError) throw new ConnectionError(`${shown}: ${err.message}`);
    throw new ConnectionError(`${shown}: ${(err as Error).message}`);
  } finally {
    stopAsking();
    // A stopped coordinator would hold the close handshake of the connection for half a minute.
    exitWhenDone();
  }
  view?.close();
  if (flags.json) console.log(JSON.stringify(result, null, 2));
  else print(['', ...reportLines(result)]);
  exitWhenDone();
  return result.success ? EXIT.ok : EXIT.taskFailed;
}

/**
 * Ctrl-C while following a task. On a terminal it asks: `c` cancels the task, anything else leaves
 * it running (and `rxswarm attach ID` follows it again); a second Ctrl-C leaves at once. Off a
 * terminal (a script, a CI job) it cancels the task unless `--detach`: nobody is left to want it.
 */
function onInterrupt(taskId: string, url: string, token: string, followed: { detach(): void }): () => void {
  let asked = false;
  const cancel = (): void => {
    void cancelServiceTask({ url, token, taskId }).catch(() => undefined);
  };
  const handler = (): void => {
    if (!process.stdin.isTTY) {
      process.stderr.write(`\ninterrupted: cancelling task ${taskId}\n`);
      cancel(); // its outcome (cancelled) comes to this follower
      return;
    }
    if (asked) {
      process.stderr.write(`\nleft running: rxswarm attach ${taskId} follows it\n`);
      return followed.detach();
    }
    asked = true;
    process.stderr.write(`\ntask ${taskId} is still running. Cancel it? [c = cancel, Enter = leave it running] `);
    process.stdin.setEncoding('utf8');
    process.stdin.once('data', answer => {
      process.stdin.pause();
      if (String(answer).trim().toLowerCase().startsWith('c')) cancel();
      else {
        process.stderr.write(`left running: rxswarm attach ${taskId} follows it\n`);
        followed.detach();
      }
    });
    process.stdin.resume();
  };
  process.on('SIGINT', handler);
  return () => process.off('SIGINT', handler);
}

function program(setExit: (code: number) => void): Command {
  const cli = new Command('rxswarm')
    .description('Coordinate a team of agents: failure detection, quorum windows and measured protocol switching.')
    .version(packageVersion(), '-V, --version', 'print the version')
    .exitOverride()
    .showHelpAfterError('(rxswarm --help for usage)')
    .addHelpText('after', '\nexit codes: 0 success, 1 the task failed, 2 bad usage or connection');
  const action =
    <A extends unknown[]>(body: (...args: A) => number | Promise<number>) =>
    async (...args: A): Promise<void> =>
      setExit(await body(...args));

  cli
    .command('demo')
    .description(
      'the main job: in-process agents on the embedded network, the adaptive protocol, a relay that stops forwarding, a crash, a hang, a slowdown, a partition, a rate limit cut and a circular wait between two agents injected while it runs, and congestion between the agents that makes relayed routes cost more (the adaptive protocol measures it and switches); a live view and a final report. It runs in virtual time paced to the wall clock: the same seed gives the same run',
    )
    .addOption(new Option('--agents <n>', 'agents').argParser(integer(4, 1000)).default(12))
    .addOption(new Option('--subtasks <n>', 'subtasks').argParser(integer(1, 100_000)).default(300))
    .addOption(new Option('--seed <n>', 'seed of every random choice').argParser(integer(0, 2 ** 31 - 1)).default(1))
    .addOption(
      new Option('--speed <x>', 'virtual seconds per wall second; the run is the same at any speed (default: 1, or faster for a run longer than 30 s, to end in about 30 s)').argParser(text => {
        const value = Number(text);
        if (!(value > 0 && value <= 1_000_000)) throw new InvalidArgumentError('must be a number in (0, 1000000]');
        return value;
      }),
    )
    .action(action(demo));

  cli
    .command('simulate')
    .description('a whole coordination in virtual time, from the command line; prints the report')
    .addOption(new Option('--topology <t>', `${[...TOPOLOGY_NAMES, 'adaptive'].join(', ')}`).argParser(topology).default('adaptive'))
    .addOption(new Option('--agents <n>', `agents, named agent-0 … (at most ${MAX_SIMULATED_AGENTS})`).argParser(simulatedAgents).default(10))
    .addOption(new Option('--subtasks <n>', 'subtasks').argParser(integer(0, 10_000_000)).default(200))
    .addOption(
      new Option('--hours <h>', 'virtual time limit')
        .argParser(text => {
          const hours = Number(text);
          if (!(hours > 0 && hours <= 24 * 365)) throw new InvalidArgumentError('must be a number in (0, 8760]');
          return hours;
        })
        .default(1),
    )
    .addOption(new Option('--seed <n>', 'seed').argParser(integer(-(2 ** 31), 2 ** 31 - 1)).default(1))
    .option('--faults <spec>', 'faults to inject, e.g. crash:agent-1@5s,partition:agent-2+agent-3@3s-9s (syntax below)', '')
    .option('--json', 'the report as JSON', false)
    .option('--html <file>', 'also write the run as a self-contained page: agents up/suspected/down, faults injected vs detected, healing, switches')
    .addHelpText('after', `\n${FAULT_SPEC_HELP}\n\n${SIMULATE_COST_HELP}\n\nA run estimated to take over 20 s of wall time is announced on stderr with its expected cost;\non a terminal, progress is shown on stderr while it runs.`)
    .action(action(simulateCommand));

  cli
    .command('detectors')
    .description('phiAccrual and heartbeatDeadline side by side on simulated heartbeats')
    .addOption(new Option('--agents <n>', 'agents').argParser(integer(3, 100_000)).default(12))
    .addOption(new Option('--minutes <m>', 'virtual minutes').argParser(integer(1, 24 * 60)).default(2))
    .action(action(detectors));

  // serve and agent also read RXSWARM_<FLAG> variables and --config FILE.
  configurable(
    cli
      .command('serve')
      .description('the coordinator over WebSocket: agents connect, `rxswarm run` submits tasks (several run at once; all survive a restart through --data-dir)')
      .addHelpText('after', CONFIG_HELP),
    [
      new Option('--host <host>', 'interface to listen on').default('127.0.0.1'),
      new Option('--port <port>', 'port (0: any free one); with --nats, HTTP (/ and /metrics) only when a port is given').argParser(integer(0, 65535)).default(7070),
      tokenOption(),
      new Option('--topology <t>', 'protocol of every task').argParser(topology).default('adaptive'),
      heartbeatOption(),
      new Option('--tls-cert <file>', 'PEM certificate: serve wss:// (with --tls-key)'),
      new Option('--tls-key <file>', 'PEM private key of --tls-cert'),
      new Option('--max-connections <n>', 'open connections at most (default: the open-file limit less 64)').argParser(integer(1, 1_000_000)),
      new Option('--max-slots <n>', 'most subtasks one agent runs at once, whatever it claims').argParser(integer(1, 1024)).default(64),
      new Option('--metrics-public', 'serve /metrics without the token (the dashboard still asks for it)').default(false),
      new Option('--data-dir <dir>', 'the journal: tasks survive a restart of the coordinator and resume (:memory: for none; one coordinator per directory)').default('./.rxswarm'),
      new Option('--max-tasks <n>', 'tasks that run at once, sharing the agents in turn; the others wait in order').argParser(integer(1, 1000)).default(4),
      new Option('--retention <duration>', 'how long results of finished tasks stay retrievable (attach, tasks), e.g. 30m, 24h, 7d').argParser(duration).default(24 * 3_600_000, '24h'),
      new Option('--max-attempts <n>', 'unsuccessful attempts (failed or timed out) after which a subtask fails with the reason; a task file may set its own').argParser(integer(1, 100)).default(3),
      new Option('--attempt-timeout <duration>', 'start-to-close limit of an attempt whose task sets no timeoutMs, whatever progress it reports').argParser(duration).default(30 * 60_000, '30m'),
      new Option('--progress-timeout <duration>', 'least progress deadline: an attempt silent this long (before its task has finished work to learn a longer one from) gets a backup attempt on another agent; the first result wins').argParser(duration).default(30_000, '30s'),
      new Option('--deadlock-timeout <duration>', 'a circular wait (agents whose every slot waits for a child that only the next of them can run) lasting this long is a protocol_deadlock: one waiter is aborted and runs again').argParser(duration).default(120_000, '2m'),
      natsOption('a coordinator node whose agents and clients come'),
      new Option('--lease-ttl <ms>', 'with --nats: the leader lease TTL (failover within about TTL + TTL/8; lower: faster failover, higher: survives longer pauses)').argParser(integer(400, 600_000)).default(4000),
      new Option('--node-id <id>', 'with --nats: this node\'s id in the cluster (default HOST-PID)'),
      ...logOptions(),
    ],
  ).action(action((flags: Parameters<typeof serve>[0] & { nats?: string; leaseTtl: number; nodeId?: string }, command: Command) => (flags.nats === undefined ? serve(flags) : serveNats({ ...flags, nats: flags.nats, http: command.getOptionValueSource('port') !== 'default' }))));

  configurable(
    cli
      .command('agent')
      .description('an agent process; without --handler or --exec, a built-in worker doing what the payload says: {"sleepMs":50}, {"spinMs":5}, {"fail":true}')
      .addHelpText('after', CONFIG_HELP),
    [
      // Required, but also from RXSWARM_CONNECT or a config file: checked by agent() once all are read.
      new Option('--connect <url>', 'the coordinator, ws://HOST:PORT (required, or --nats)').argParser(wsUrl),
      natsOption('the coordinator'),
      tokenOption(),
      new Option('--id <id>', 'agent id (default: agent-HOSTNAME-PID); a second process under a connected id waits until it is free'),
      new Option('--capabilities <list>', 'comma-separated, e.g. code,review').argParser(list).default([]),
      new Option('--handler <module>', 'an ES module exporting handle(subtask, context) (named or default)'),
      new Option('--exec <command>', 'run COMMAND (via /bin/sh -c) per subtask: payload as JSON on stdin, stdout the result, stderr progress, non-zero exit a failure'),
      new Option('--max-rss <bytes>', 'memory budget of one --exec command (its whole process group), e.g. 512M or 2G: above it the command is killed and the attempt fails').argParser(byteSize),
      new Option('--slots <n>', 'subtasks run at once').argParser(integer(1, 1024)).default(1),
      heartbeatOption(),
      new Option('--grace-ms <ms>', 'on SIGTERM/Ctrl-C: how long aborted handlers get to end before the agent exits anyway (a second Ctrl-C: at once)').argParser(integer(0, 600_000)).default(5000),
      ...logOptions(),
    ],
  ).action(action(agent));

  const silenceOption = (): Option =>
    new Option('--silence-ms <ms>', 'give up (exit 2) when the coordinator says nothing for this long; meanwhile it reconnects and re-attaches, also across a restart').argParser(integer(1000, 86_400_000)).default(30_000);
  cli
    .command('run')
    .description('submits a task file to a coordinator and waits for its result, across a restart of the coordinator; Ctrl-C asks whether to cancel it')
    .argument('<task.json>', '{ "id", "subtasks": [{ "id", "payload", "capabilities"?, "priority"?, "timeoutMs"?, "maxAttempts"? }], "complexity"?, "coordinationIntensity"?, "timeoutMs"?, "maxAttempts"?, "deadlineMs"? }')
    .addOption(connectOption())
    .addOption(natsOption('the coordinator'))
    .addOption(tokenOption())
    .option('--json', 'print the CoordinationResult as JSON (and nothing else on stdout)', false)
    .option('--detach', 'print the task id once the coordinator has it, and return (rxswarm attach ID follows it)', false)
    .addOption(silenceOption())
    .action(action(run));

  cli
    .command('attach')
    .description('follows a task by id to its result (a task submitted with run --detach, or whose run was interrupted)')
    .argument('<task-id>', 'the task')
    .addOption(connectOption())
    .addOption(natsOption('the coordinator'))
    .addOption(tokenOption())
    .option('--json', 'print the CoordinationResult as JSON (and nothing else on stdout)', false)
    .addOption(silenceOption())
    .action(action(attach));

  const asking = (name: string, description: string): Command =>
    cli
      .command(name)
      .description(description)
      .addOption(connectOption())
      .addOption(natsOption('the coordinator'))
      .addOption(tokenOption())
      .option('--json', 'print JSON (and nothing else on stdout)', false);
  // status also over NATS: the cluster's leader and standbys besides what the leader says.
  const statusCommand = cli
    .command('status')
    .description("the coordinator's agents (state, phi, slots, running, usage), protocol, tasks and what needs attention (with --nats: the cluster's leader and standbys too)")
    .addOption(connectOption())
    .addOption(natsOption('the coordinator cluster'))
    .addOption(tokenOption())
    .option('--json', 'print JSON (and nothing else on stdout)', false);
  statusCommand.action(action(status));
  asking('tasks', 'the tasks the coordinator holds: running, queued (with their position) and the last finished, with progress').action(action(tasks));
  asking('cancel', 'cancels a queued or running task: its unfinished subtasks fail with the reason cancelled').argument('<task-id>', 'the task').action(action(cancel));

  return cli;
}

interface AskFlags {
  connect?: string;
  nats?: string;
  token?: string;
  json: boolean;
}

async function stateOf(flags: AskFlags): Promise<StateBody> {
  const url = urlOf(flags);
  try {
    return await readServiceState({ url, token: tokenOf(flags.token) });
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new ConnectionError(`${url.replace(/\/\/[^@/]*@/, '//')}: ${(err as Error).message}`);
  }
}

async function status(flags: AskFlags): Promise<number> {
  urlOf(flags); // where to, before what
  const cluster = flags.nats === undefined ? undefined : await clusterOf(flags.nats);
  const state = await stateOf(flags);
  if (flags.json) console.log(JSON.stringify(cluster === undefined ? statusJson(state) : { ...cluster, ...statusJson(state) }, null, 2));
  else {
    if (cluster !== undefined) {
      const who = (m: ClusterMember): string => `${m.id} on ${m.host} (pid ${m.pid})`;
      print([`leader    ${cluster.leader === null ? 'none' : who(cluster.leader)}`, `standbys  ${cluster.standbys.length === 0 ? 'none' : cluster.standbys.map(who).join(', ')}`, '']);
    }
    print(statusLines(state, Date.now()));
  }
  exitWhenDone();
  return EXIT.ok;
}

/** The cluster's leader and standbys, read from its KV buckets. */
async function clusterOf(url: string): Promise<{ leader: ClusterMember | null; standbys: ClusterMember[] }> {
  let connection;
  try {
    connection = await connectNats({ ...natsCredentialsFromEnv(), url, name: 'rxswarm status' });
    return await readClusterMembers(connection);
  } catch (err) {
    throw new ConnectionError(`--nats ${url.replace(/\/\/[^@/]*@/, '//')}: ${(err as Error).message}`);
  } finally {
    await connection?.close();
  }
}

async function tasks(flags: AskFlags): Promise<number> {
  const state = await stateOf(flags);
  if (flags.json) console.log(JSON.stringify(statusJson(state).tasks, null, 2));
  else print(taskLines(statusJson(state).tasks));
  exitWhenDone();
  return EXIT.ok;
}

async function cancel(taskId: string, flags: AskFlags): Promise<number> {
  const url = urlOf(flags);
  let answer;
  try {
    answer = await cancelServiceTask({ url, token: tokenOf(flags.token), taskId });
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new ConnectionError(`${url.replace(/\/\/[^@/]*@/, '//')}: ${(err as Error).message}`);
  }
  if (flags.json) console.log(JSON.stringify(answer));
  else console.log(answer.ok ? `task ${taskId} cancelled` : `task ${taskId} not cancelled: ${answer.error ?? ''}`);
  exitWhenDone();
  return answer.ok ? EXIT.ok : EXIT.usage; // no such task queued or running
}

async function main(argv: string[]): Promise<number> {
  let code: number = EXIT.ok;
  try {
    await program(c => (code = c)).parseAsync(argv, { from: 'user' });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage; // commander printed the message
    if (err instanceof ConfigError) {
      console.error(`error: ${err.message}`);
      return EXIT.usage;
    }
    if (err instanceof UsageError) {
      console.error(err instanceof ConnectionError ? `error: ${err.message}` : `error: ${err.message}\n(rxswarm --help for usage)`);
      return EXIT.usage;
    }
    throw err;
  }
}

// A reader that stops early (`rxswarm demo | head`) is not an error of ours.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

process.exitCode = await main(process.argv.slice(2));
