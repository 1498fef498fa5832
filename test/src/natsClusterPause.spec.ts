import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { CoordinationEvent } from '../../src/events.js';
import { NatsClusterNode, type ClusterRole } from '../../src/natsCluster.js';
import { WRITER } from '../../streams/jetstreamJournal.js';
import { connectNats } from '../../streams/natsConnect.js';
import { startNatsServer, type NatsServer } from '../streams/natsServer.js';
import { cliProcesses } from './cliProcesses.js';

// A leader paused at the worst moment: a ledger record appended and not yet written (the
// journal writes it in the next turn), then the process frozen past its lease while another node
// takes over. This node runs in the test's process and is frozen by blocking its event loop
// (as SIGSTOP would, in a place SIGSTOP lands only by chance); the other is a `serve --nats`
// process. Woken, the first thing to run is the journal's write, which the new leader's fence
// refuses: the node must step down as one that lost its lease — quietly, no coordinator halted,
// no error — and nothing of it may reach the stream after the fence. Every wait is bounded.
const TOKEN = 'pause-spec-secret';
const TTL = 1000;
const WAIT_MS = 30_000;

const { start, killAll } = cliProcesses(TOKEN, WAIT_MS);
let nats: NatsServer | undefined;
let node: NatsClusterNode | undefined;
let nc: NatsConnection | undefined;

afterEach(async () => {
  killAll();
  await node?.close().catch(() => undefined);
  node = undefined;
  await nc?.close();
  nc = undefined;
  await nats?.stop();
  nats = undefined;
});

async function until<T>(what: string, check: () => T | undefined): Promise<T> {
  const end = Date.now() + WAIT_MS;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`${what}: not within ${WAIT_MS} ms`);
    await new Promise(resolve => setTimeout(resolve, 20));
  }
}

/** Blocks this process's event loop for `ms`: nothing of it runs, timers and messages pile up. */
function freeze(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

describe('a cluster leader frozen with a journal write pending', () => {
  it('woken after another node took over, it steps down quietly: no halt, no error, nothing in the stream after the fence', async () => {
    nats = await startNatsServer();
    const events: CoordinationEvent[] = [];
    const errors: Error[] = [];
    const roles: ClusterRole[] = [];
    node = await NatsClusterNode.start({ url: nats.url, token: TOKEN, id: 'frozen', leaseTtlMs: TTL, onEvent: e => events.push(e), onError: e => errors.push(e), onRole: r => roles.push(r), log: () => undefined });
    const service = await until('leading', () => node?.leaderService);
    const other = start('serve', '--nats', nats.url, '--node-id', 'other', '--lease-ttl', String(TTL), '--heartbeat-ms', '250');
    await other.line(/standby other: held by frozen/);

    const seen = events.length;
    const rolesSeen = roles.length;
    // A record appended (the journal writes it once this turn is over), then frozen in the same turn.
    service.coordinator.submit({ id: 'late', subtasks: [{ id: 's-0', payload: { sleepMs: 1 } }] });
    freeze(TTL + 2500);
    await other.line(/leader other \(/);
    await until('stepped down', () => (roles.at(-1)?.type === 'standby' ? true : undefined));
    await new Promise(resolve => setTimeout(resolve, 500)); // whatever else it would do, it does now

    // Its first word after the freeze: the lease ran out (then, perhaps, `released` and who holds it now).
    const after = roles.slice(rolesSeen);
    expect(after.every(r => r.type === 'standby')).toBe(true);
    expect((after[0] as Extract<ClusterRole, { type: 'standby' }>).reason).toMatch(/validity ran out/);
    expect(errors.map(e => e.message)).toEqual([]);
    // Before the freeze the task was taken (its own events); after it, nothing.
    expect(events.slice(seen).filter(e => e.type === 'coordinator.halted')).toEqual([]);
    nc = await connectNats({ url: nats.url });
    const jsm = await jetstreamManager(nc);
    const { state } = await jsm.streams.info('RXSWARM_JOURNAL');
    const writers: Array<{ seq: number; subject: string; writer: string }> = [];
    for (let seq = state.first_seq; seq <= state.last_seq; seq++) {
      const m = await jsm.streams.getMessage('RXSWARM_JOURNAL', { seq });
      if (m !== null) writers.push({ seq, subject: m.subject, writer: m.header.get(WRITER) });
    }
    const fence = writers.find(m => m.subject.endsWith('.fence') && m.writer === 'other');
    expect(fence).toBeDefined();
    expect(writers.filter(m => m.seq > (fence?.seq ?? 0) && m.writer === 'frozen')).toEqual([]);
  }, 90_000);
});
