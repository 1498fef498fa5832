#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { parseFaultSpec } from '../streams/faultSpec.js';
import { runDemo } from './demo.js';
import { runDetectorDemo, type AgentScript } from './detectorDemo.js';
import type { CoordinationEvent, CoordinationResult } from './events.js';
import { simulate, type SimulationReport } from './simulate.js';
import { TOPOLOGY_NAMES, type TopologyName } from './topology.js';

const usage = `usage: rxswarm <command> [options]

commands
  demo       [--agents 12] [--subtasks 300] [--seed N]
             the main job: in-process agents on the embedded network, the adaptive protocol,
             a crash, a hang, a slowdown and a partition injected while it runs; a live view
             and a final report
  simulate   [--topology T] [--agents N] [--subtasks N] [--hours H] [--seed N] [--faults SPEC] [--json]
             a whole coordination in virtual time; T is ${[...TOPOLOGY_NAMES, 'adaptive'].join(', ')}
             SPEC e.g. crash:agent-1@5s,hang:agent-2@8s,slow:agent-3@1sx4,partition:agent-4@3s-9s
  detectors  [--agents N] [--minutes M]
             phiAccrual and heartbeatDeadline side by side on simulated heartbeats

exit codes: 0 success, 1 the task failed, 2 bad usage`;

class UsageError extends Error {}

function integer(name: string, text: string | undefined, min: number, max: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) throw new UsageError(`--${name} must be an integer in [${min}, ${max}], got ${text}`);
  return value;
}

const paint = (code: number, text: string): string => (process.stdout.isTTY ? `\x1b[${code}m${text}\x1b[0m` : text);

/** One readable line for the events a person watching wants to see; undefined for the rest. */
function describe(e: CoordinationEvent, originMs: number): string | undefined {
  const at = `${((e.at - originMs) / 1000).toFixed(2).padStart(7)}s`;
  switch (e.type) {
    case 'protocol.selected':
      return `${at}  protocol  ${e.protocol} (${e.reason})`;
    case 'protocol.switched':
      return `${at}  ${paint(36, 'switch')}    ${e.switch.from} → ${e.switch.to}: ${e.switch.reason}; ${e.inFlight} in flight handed over`;
    case 'protocol.repaired':
      return `${at}  repair    ${e.repair}`;
    case 'agent.suspected':
      return `${at}  ${paint(33, 'suspect')}   ${e.agentId}: ${e.detail}`;
    case 'agent.down':
      return `${at}  ${paint(31, 'down')}      ${e.agentId}: ${e.reason}`;
    case 'agent.recovered':
      return `${at}  ${paint(32, 'back')}      ${e.agentId}`;
    case 'fault.detected':
      return `${at}  ${paint(31, 'fault')}     ${e.kind} (${e.severity})${e.agentId ? ` ${e.agentId}` : ''}: ${e.detail}`;
    case 'healing.succeeded':
    case 'healing.failed':
      return `${at}  ${paint(e.type === 'healing.succeeded' ? 32 : 33, 'heal')}      ${e.strategy} → ${e.ok ? 'ok' : 'no'}: ${e.detail}`;
    case 'consensus.decided':
      return `${at}  consensus ${e.proposalId}: ${e.outcome} (${e.yes} yes, ${e.no} no)`;
    default:
      return undefined;
  }
}

function printResult(result: CoordinationResult): void {
  const m = result.metrics;
  console.log(`\n${result.success ? paint(32, 'done') : paint(31, 'failed')}: ${m.completed} of ${m.subtasks} subtasks completed, ${m.failed} failed, in ${(m.durationMs / 1000).toFixed(2)} s`);
  console.log(`protocol at the end: ${result.protocol}; switches: ${result.switches.map(s => `${s.from}→${s.to}`).join(', ') || 'none'}`);
  console.log(`assignments: ${m.assignments} (reruns: ${m.assignments - m.subtasks}), stale results rejected: ${m.staleResultsRejected}`);
  const kinds = Object.entries(m.messagesByKind).map(([k, n]) => `${k} ${n}`).join(', ');
  console.log(`messages: ${m.messages} (${m.messagesPerSubtask.toFixed(1)} per subtask): ${kinds}`);
  const healed = result.healing.filter(h => h.ok).length;
  console.log(`healing: ${result.healing.length} attempt(s), ${healed} succeeded`);
  for (const [id, reason] of Object.entries(result.failed).slice(0, 10)) console.log(`  failed ${id}: ${reason}`);
}

async function demo(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { agents: { type: 'string', default: '12' }, subtasks: { type: 'string', default: '300' }, seed: { type: 'string', default: '1' } } });
  const agents = integer('agents', values.agents, 4, 1000);
  const subtasks = integer('subtasks', values.subtasks, 1, 100_000);
  const seed = integer('seed', values.seed, 0, 2 ** 31 - 1);
  console.log(`${agents} agents, ${subtasks} subtasks, adaptive protocol, seed ${seed}; faults are injected while it runs\n`);
  let done = 0;
  let origin: number | undefined;
  const live = process.stdout.isTTY;
  const status = (): void => {
    if (!live) return;
    const width = 30;
    const filled = Math.round((done / subtasks) * width);
    process.stdout.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${subtasks}`);
  };
  const { result, faults } = await runDemo({
    agents,
    subtasks,
    seed,
    onEvent: event => {
      if (event.type === 'subtask.completed' || event.type === 'subtask.failed') {
        done++;
        status();
      }
      origin ??= event.at;
      const line = describe(event, origin);
      if (line !== undefined) {
        if (live) process.stdout.write('\r\x1b[K');
        console.log(line);
        status();
      }
    },
  });
  if (live) process.stdout.write('\r\x1b[K');
  console.log(`\ninjected: ${faults.map(f => `${f.kind} ${f.agent} at ${f.atMs} ms`).join('; ')}`);
  printResult(result);
  return result.success ? 0 : 1;
}

function simulateCommand(args: string[]): number {
  const { values } = parseArgs({
    args,
    options: {
      topology: { type: 'string', default: 'adaptive' },
      agents: { type: 'string', default: '10' },
      subtasks: { type: 'string', default: '200' },
      hours: { type: 'string', default: '1' },
      seed: { type: 'string', default: '1' },
      faults: { type: 'string', default: '' },
      json: { type: 'boolean', default: false },
    },
  });
  const topology = values.topology as TopologyName | 'adaptive';
  if (topology !== 'adaptive' && !TOPOLOGY_NAMES.includes(topology)) throw new UsageError(`--topology must be one of ${[...TOPOLOGY_NAMES, 'adaptive'].join(', ')}, got ${topology}`);
  const agents = integer('agents', values.agents, 1, 100_000);
  const subtasks = integer('subtasks', values.subtasks, 0, 10_000_000);
  const hours = Number(values.hours);
  if (!(hours > 0 && hours <= 24 * 365)) throw new UsageError(`--hours must be a number in (0, 8760], got ${values.hours}`);
  const seed = integer('seed', values.seed, -(2 ** 31), 2 ** 31 - 1);
  const ids = Array.from({ length: agents }, (_, i) => `agent-${i}`);
  let faults;
  try {
    faults = parseFaultSpec(values.faults, ids);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const started = performance.now();
  const report: SimulationReport = simulate({ seed, topology, agents, subtasks, faults, untilMs: hours * 3_600_000 });
  const wallMs = performance.now() - started;
  if (values.json) {
    const { events: _events, ...rest } = report;
    console.log(JSON.stringify(rest, null, 2));
  } else {
    console.log(`simulated ${(report.finishedAtMs / 1000).toFixed(1)} virtual s in ${wallMs.toFixed(0)} ms of wall time`);
    console.log(`completed ${report.completed}, failed ${report.failed}, lost ${report.lost}, accepted twice ${report.duplicatesAccepted}, runs ${report.executions}`);
    for (const d of report.detections) {
      console.log(`  ${d.agentId}: fault at ${d.faultAtMs} ms, detected ${d.suspectedAtMs === undefined ? 'never' : `at ${Math.round(d.suspectedAtMs)} ms (+${Math.round(d.suspectedAtMs - d.faultAtMs)} ms)`}`);
    }
    console.log(`false suspicions ${report.falseSuspicions}; detection bound ${report.detectionBoundMs} ms`);
    printResult(report.result);
  }
  return report.failed === 0 ? 0 : 1;
}

function detectors(args: string[]): number {
  const { values } = parseArgs({ args, options: { agents: { type: 'string', default: '12' }, minutes: { type: 'string', default: '2' } } });
  const agents = integer('agents', values.agents, 3, 100_000);
  const minutes = integer('minutes', values.minutes, 1, 24 * 60);
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
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'demo':
        return await demo(rest);
      case 'simulate':
        return simulateCommand(rest);
      case 'detectors':
        return detectors(rest);
      case '--help':
      case '-h':
      case 'help':
        console.log(usage);
        return 0;
      default:
        console.error(command === undefined ? usage : `unknown command: ${command}\n\n${usage}`);
        return 2;
    }
  } catch (err) {
    if (err instanceof UsageError || (err instanceof RangeError && command === 'simulate') || String((err as { code?: string }).code).startsWith('ERR_PARSE_ARGS')) {
      console.error(`${(err as Error).message}\n\n${usage}`);
      return 2;
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
