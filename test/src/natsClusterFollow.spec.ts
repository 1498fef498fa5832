import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers } from '@nats-io/transport-node';
import { NatsClusterNode, type ClusterRole } from '../../src/natsCluster.js';
import { connectNats } from '../../streams/natsConnect.js';
import { startNatsServer } from '../streams/natsServer.js';

// Two cluster nodes in this process on a real nats-server: the standby follows the journal, so
// that once elected it reads only the tail; a follower that saw damage says so, and the node
// elected then reads the stream whole, where the damage stops it. Every wait is bounded.
const TOKEN = 'follow-spec-secret';
const TTL = 1000;
const WAIT_MS = 20_000;

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
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

async function cluster(): Promise<{ url: string; node(id: string): Promise<{ node: NatsClusterNode; roles: ClusterRole[]; errors: Error[] }> }> {
  const server = await startNatsServer();
  cleanups.push(() => server.stop());
  return {
    url: server.url,
    node: async id => {
      const roles: ClusterRole[] = [];
      const errors: Error[] = [];
      const node = await NatsClusterNode.start({ url: server.url, token: TOKEN, id, leaseTtlMs: TTL, onRole: r => roles.push(r), onError: e => errors.push(e), log: () => undefined });
      cleanups.push(() => node.close());
      return { node, roles, errors };
    },
  };
}

const leaderRole = (roles: readonly ClusterRole[]) => roles.find((r): r is Extract<ClusterRole, { type: 'leader' }> => r.type === 'leader');

describe('NatsClusterNode: standbys follow the journal', () => {
  it('the standby elected reads only the tail of the journal it followed', async () => {
    const { node } = await cluster();
    const a = await node('a');
    const service = await until('a leads', () => a.node.leaderService);
    const b = await node('b');
    await until('b stands by', () => (b.roles.some(r => r.type === 'standby' && r.leader?.id === 'a') ? true : undefined));
    for (let i = 0; i < 20; i++) service.coordinator.submit({ id: `t-${i}`, subtasks: [{ id: 's-0', payload: { sleepMs: 1 } }] });
    await new Promise(resolve => setTimeout(resolve, 500)); // written, and followed
    await a.node.close();
    const led = await until('b leads', () => leaderRole(b.roles));
    expect(led.journalRead).toBeDefined();
    expect(led.journalRead).toBeLessThanOrEqual(1); // at most the fence a wrote last
    expect(led.journalSequence).toBeGreaterThan(3); // a's fence, its records, b's fence
    expect(b.errors.map(e => e.message)).toEqual([]);
  });

  it('a follower that saw damage says so; the node elected reads the journal whole and refuses it there', async () => {
    const { node, url } = await cluster();
    const a = await node('a');
    await until('a leads', () => a.node.leaderService);
    const b = await node('b');
    await until('b stands by', () => (b.roles.some(r => r.type === 'standby' && r.leader?.id === 'a') ? true : undefined));
    const nc = await connectNats({ url });
    cleanups.push(() => nc.close());
    const h = headers();
    h.set('Rxswarm-Journal', '1');
    await jetstream(nc).publish('rxswarm.journal.records', new TextEncoder().encode('[{"type":'), { headers: h });
    await until('b says its follower stopped', () => (b.errors.some(e => /the journal's follower stopped: .*does not parse/.test(e.message)) ? true : undefined));
    await a.node.close();
    await until('b refuses the journal', () => (b.errors.some(e => /JetStream journal is damaged: stream RXSWARM_JOURNAL at sequence \d+: a records message that does not parse/.test(e.message)) ? true : undefined));
    expect(leaderRole(b.roles)).toBeUndefined();
    expect((await (await jetstreamManager(nc)).streams.info('RXSWARM_JOURNAL')).state.messages).toBeGreaterThan(0); // nothing changed
  });
});
