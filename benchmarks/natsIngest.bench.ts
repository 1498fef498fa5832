/**
 * Heartbeat ingest over NATS: 1,000 agent sessions, opened by one load-generator process
 * (benchmarks/natsLoad.ts) with the real handshake, publish heartbeat frames through a nats-server
 * this benchmark starts (Debian's package, as the tests). Two receivers in this process take the
 * same frames from the same generator, one after the other at each step (the order alternates):
 *
 * - baseline, "raw @nats-io subscriber": a plain `nc.subscribe('raw.in.*', { callback })` on its own
 *   connection that counts every message: what the NATS client itself costs per message received;
 * - rxswarm: `NatsNetwork` (subjects `rxswarm.in.*`) with the coordinator joined locally, its inbox
 *   piped into the real detector, `phiAccrual()`: a heartbeat is counted once its session is found,
 *   it is rate-checked, size-checked, decoded, validated, its sender checked, routed and handed to
 *   the detector (all synchronous in the subscription's callback).
 *
 * Each step warms up for {@link WARMUP_MS}, then counts over {@link WINDOW_MS}; the generator never
 * has more than {@link IN_FLIGHT} frames unconsumed (credit granted as the receiver counts). The
 * saturation rows take each receiver's best sustained rate against the issue's target, >= 0.7×
 * the raw subscriber; the CPU per message of this process is the figure least moved by the other
 * work on a shared machine.
 */
import { loadavg } from 'node:os';
import type { NatsConnection } from '@nats-io/transport-node';
import { filter, map, tap } from 'rxjs';
import { phiAccrual } from '../operators/phiAccrual.js';
import type { Liveness } from '../operators/liveness.js';
import { connectNats } from '../streams/natsConnect.js';
import { NatsNetwork } from '../streams/natsNetwork.js';
import { startNatsServer } from '../test/streams/natsServer.js';
import { BenchChild } from './child.js';
import { formatNumber, ratioRow, type BenchRow } from './harness.js';
import type { NatsLoadCommand, NatsLoadReport } from './natsLoad.js';

const AGENTS = 1000;
const RATES: ReadonlyArray<number | null> = [25_000, 50_000, 100_000, null];
const WARMUP_MS = 1000;
const WINDOW_MS = 3000;
const IN_FLIGHT = 20_000;
const CREDIT_MS = 20;
const TOKEN = 'natsIngest-bench-token';
const SUITE = 'nats heartbeat ingest, 1,000 sessions';

type Target = 'raw' | 'rx';
const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms));

interface Step {
  readonly target: Target;
  readonly offered: number | null;
  readonly rate: number;
  readonly cores: number;
  readonly clientCores: number;
  readonly behind: number;
}

export default async function bench(): Promise<BenchRow[]> {
  const server = await startNatsServer();
  const connections: NatsConnection[] = [];
  let load: BenchChild<NatsLoadCommand, NatsLoadReport> | undefined;
  try {
    // rxswarm: the coordinator's inbox on a NatsNetwork, heartbeats into phiAccrual.
    const rxConnection = await connectNats({ url: server.url });
    connections.push(rxConnection);
    const network = await NatsNetwork.start({ connection: rxConnection, token: TOKEN, idleMs: 3_600_000, rateLimit: { perSecond: 1_000_000, burst: 1_000_000 }, log: () => undefined });
    let beats = 0;
    const verdicts: Record<Liveness['type'], number> = { alive: 0, suspected: 0, left: 0 };
    const subscription = network
      .join('coordinator')
      .pipe(
        filter(envelope => envelope.kind === 'heartbeat'),
        map(envelope => ({ agentId: envelope.from })),
        tap(() => beats++),
        phiAccrual({ acceptableHeartbeatPauseMs: 60_000 }),
      )
      .subscribe(verdict => verdicts[verdict.type]++);
    // The baseline: a raw subscriber counting what it receives.
    const rawConnection = await connectNats({ url: server.url, requireJetStream: false });
    connections.push(rawConnection);
    let raw = 0;
    rawConnection.subscribe('raw.in.*', { callback: () => void raw++ });
    await rawConnection.flush();

    load = await BenchChild.start<NatsLoadCommand, NatsLoadReport>('natsLoad.ts', 'nats load generator');
    const generator = load;
    generator.send({ type: 'connect', url: server.url, ids: Array.from({ length: AGENTS }, (_, i) => `agent-${i}`), token: TOKEN });
    const connected = await generator.next('connected');
    // Sessions are admitted when their ready frame arrives.
    for (let waited = 0; network.remoteAgents.size < AGENTS && waited < 10_000; waited += 50) await sleep(50);
    if (network.remoteAgents.size !== AGENTS) throw new Error(`natsIngest: ${network.remoteAgents.size} of ${AGENTS} sessions admitted`);
    process.stderr.write(`  ${AGENTS} sessions (hello, join, ready) in ${formatNumber(connected.ms)} ms\n`);

    const counted = (target: Target): number => (target === 'raw' ? raw : beats);
    const quiet = async (): Promise<void> => {
      let last = -1;
      for (let still = 0, waited = 0; still < 300 && waited < 30_000; waited += 100) {
        const now = raw + beats;
        still = now === last ? still + 100 : 0;
        last = now;
        await sleep(100);
      }
    };

    const step = async (target: Target, offered: number | null): Promise<Step> => {
      await quiet();
      const sent = performance.now();
      const base = counted(target);
      generator.send({ type: 'send', prefix: target === 'raw' ? 'raw' : 'rxswarm', perSecond: offered, credit: IN_FLIGHT });
      let granted = IN_FLIGHT;
      const credit = setInterval(() => {
        const upTo = counted(target) - base + IN_FLIGHT;
        if (upTo === granted) return;
        granted = upTo;
        generator.send({ type: 'credit', upTo });
      }, CREDIT_MS);
      try {
        await sleep(WARMUP_MS);
        const c0 = counted(target);
        const t0 = performance.now();
        const cpu0 = process.cpuUsage();
        await sleep(WINDOW_MS);
        const c1 = counted(target);
        const t1 = performance.now();
        const cpu = process.cpuUsage(cpu0);
        generator.send({ type: 'stop' });
        const stopped = await generator.next('stopped');
        const result: Step = {
          target,
          offered,
          rate: ((c1 - c0) * 1000) / (t1 - t0),
          cores: (cpu.user + cpu.system) / 1000 / (t1 - t0),
          clientCores: stopped.cpuMs / (performance.now() - sent),
          behind: stopped.behind,
        };
        process.stderr.write(`  ${target === 'rx' ? 'rxswarm' : 'raw subscriber'} @ ${offered === null ? 'unpaced' : formatNumber(offered)}: ${formatNumber(result.rate)}/s, receiver ${formatNumber(result.cores, 2)} cores, generator ${formatNumber(result.clientCores, 2)} cores\n`);
        return result;
      } finally {
        clearInterval(credit);
      }
    };

    const rows: BenchRow[] = [];
    const steps: Step[] = [];
    for (const [i, offered] of RATES.entries()) {
      const order: Target[] = i % 2 === 0 ? ['raw', 'rx'] : ['rx', 'raw'];
      const measured = new Map<Target, Step>();
      for (const target of order) measured.set(target, await step(target, offered));
      const r = measured.get('raw') as Step;
      const x = measured.get('rx') as Step;
      steps.push(r, x);
      const at = offered === null ? 'unpaced (as fast as the receiver counts)' : `${formatNumber(offered)}/s offered`;
      rows.push({ suite: SUITE, case: `raw @nats-io subscriber, ${at}`, value: r.rate, unit: 'msg/s', note: describe(r) });
      rows.push(ratioRow(SUITE, `rxswarm NatsNetwork → phiAccrual, ${at}`, x.rate, 'heartbeats/s', 'raw @nats-io subscriber', r.rate, '>= 0.7x raw', describe(x)));
    }
    const sustained = (s: Step): number => (s.offered === null ? s.rate : Math.min(s.rate, s.offered));
    const best = (target: Target): Step => steps.filter(s => s.target === target).reduce((a, b) => (sustained(b) > sustained(a) ? b : a));
    const perMessage = (s: Step): number => (s.cores * 1e6) / s.rate;
    const rawBest = best('raw');
    const rxBest = best('rx');
    const rawUnpaced = steps.find(s => s.target === 'raw' && s.offered === null) as Step;
    const rxUnpaced = steps.find(s => s.target === 'rx' && s.offered === null) as Step;
    const stats = network.stats;
    const check = `load average ${loadavg()[0]?.toFixed(1)} (other work on the machine); coordinator counted ${formatNumber(beats)} heartbeats, network received ${formatNumber(stats.received)}, rejected ${stats.rejected}; phiAccrual verdicts: alive ${verdicts.alive}, suspected ${verdicts.suspected}, left ${verdicts.left}`;
    rows.push({ suite: SUITE, case: 'raw @nats-io subscriber, max sustained', value: sustained(rawBest), unit: 'msg/s', note: describe(rawBest) });
    rows.push(ratioRow(SUITE, 'rxswarm NatsNetwork → phiAccrual, max sustained', sustained(rxBest), 'heartbeats/s', 'raw @nats-io subscriber', sustained(rawBest), '>= 0.7x raw', `${describe(rxBest)}; ${check}`));
    rows.push(
      ratioRow(SUITE, 'rxswarm receiver CPU per heartbeat, unpaced (lower is better)', perMessage(rxUnpaced), 'µs/msg', 'raw @nats-io subscriber', perMessage(rawUnpaced), undefined, `rxswarm's own work per heartbeat on top of the NATS client's: ${formatNumber(perMessage(rxUnpaced) - perMessage(rawUnpaced), 2)} µs`),
    );
    subscription.unsubscribe();
    await network.close();
    if (stats.received !== beats || stats.rejected !== 0 || verdicts.alive !== AGENTS) throw new Error(`natsIngest: inconsistent counts: ${check}`);
    return rows;
  } finally {
    await load?.exit();
    await Promise.all(connections.map(c => c.close()));
    await server.stop();
  }
}

function describe(s: Step): string {
  const offered = s.offered === null ? '' : `${formatNumber((100 * s.rate) / s.offered)} % of offered; `;
  return `${offered}receiver ${formatNumber(s.cores, 2)} cores (${formatNumber((s.cores * 1e6) / s.rate, 2)} µs CPU/msg), generator ${formatNumber(s.clientCores, 2)} cores${s.behind > 0 ? `; ${formatNumber(s.behind)} behind the pacing` : ''}`;
}
