#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { runDetectorDemo, type AgentScript } from './detectorDemo.js';

const usage = `usage: rxswarm demo [--agents N] [--minutes M]

  demo   simulated heartbeats in virtual time through phiAccrual and heartbeatDeadline:
         one agent crashes, one slows down, one leaves; prints what each detector saw.`;

function demo(args: string[]): number {
  const { values } = parseArgs({ args, options: { agents: { type: 'string', default: '12' }, minutes: { type: 'string', default: '2' } } });
  const agents = Number(values.agents);
  const minutes = Number(values.minutes);
  if (!Number.isInteger(agents) || agents < 3 || agents > 100_000) throw new UsageError(`--agents must be an integer in [3, 100000], got ${values.agents}`);
  if (!(minutes > 0 && minutes <= 24 * 60)) throw new UsageError(`--minutes must be in (0, 1440], got ${values.minutes}`);
  const untilMs = minutes * 60_000;
  const scripts: AgentScript[] = Array.from({ length: agents }, (_, i) => ({ id: `agent-${i}`, intervalMs: 1000, jitter: 0.1 }));
  scripts[0] = { ...scripts[0]!, crashAtMs: untilMs * 0.25 };
  scripts[1] = { ...scripts[1]!, slowAtMs: untilMs * 0.5, slowFactor: 6 };
  scripts[2] = { ...scripts[2]!, leaveAtMs: untilMs * 0.75 };

  const started = performance.now();
  const report = runDetectorDemo(scripts, untilMs);
  const wallMs = performance.now() - started;

  console.log(`${agents} agents beating at 1 Hz ±10 % for ${minutes} virtual minute(s): ${report.heartbeats.toLocaleString('en-US')} heartbeats`);
  console.log(`scripted: agent-0 crashes at ${scripts[0]!.crashAtMs} ms, agent-1 slows ×6 at ${scripts[1]!.slowAtMs} ms, agent-2 leaves at ${scripts[2]!.leaveAtMs} ms\n`);
  console.log('detector  event       agent      at (ms)    phi / elapsed');
  const shown = report.events.filter(e => !(e.type === 'alive' && e.at < 1000)); // start-up joins are noise
  for (const e of shown.slice(0, 16)) {
    console.log(`${e.detector.padEnd(9)} ${e.type.padEnd(11)} ${e.agentId.padEnd(10)} ${String(e.at).padStart(8)}    ${e.phi.toFixed(2)}`);
  }
  if (shown.length > 16) console.log(`… ${shown.length - 16} more`);
  console.log('\nsummary');
  for (const detector of ['phi', 'deadline'] as const) {
    const mine = report.events.filter(e => e.detector === detector);
    const crash = mine.find(e => e.agentId === 'agent-0' && e.type === 'suspected');
    const slow = mine.filter(e => e.agentId === 'agent-1' && e.type === 'suspected').length;
    const others = mine.filter(e => e.type === 'suspected' && e.agentId !== 'agent-0' && e.agentId !== 'agent-1').length;
    console.log(
      `  ${detector.padEnd(8)} crash detected after ${crash ? crash.at - scripts[0]!.crashAtMs! : '—'} ms; slowed agent suspected ${slow}×; ` +
        `false suspicions of healthy agents: ${others}`,
    );
  }
  const joined = report.events.filter(e => e.type === 'alive' && e.at < 1000).length / 2;
  console.log(`\n${joined} agents joined in the first second; virtual ${minutes} min ran in ${wallMs.toFixed(0)} ms of wall time.`);
  return 0;
}

class UsageError extends Error {}

function main(argv: string[]): number {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'demo':
        return demo(rest);
      case undefined:
      case '--help':
      case '-h':
      case 'help':
        console.log(usage);
        return command === undefined ? 2 : 0;
      default:
        console.error(`unknown command: ${command}\n${usage}`);
        return 2;
    }
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`${(err as Error).message}\n${usage}`);
      return 2;
    }
    throw err;
  }
}

process.exitCode = main(process.argv.slice(2));
