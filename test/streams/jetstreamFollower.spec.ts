import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import { connectNats } from '../../streams/natsConnect.js';
import { JetStreamJournal, JetStreamJournalDamaged } from '../../streams/jetstreamJournal.js';
import { JetStreamFollower, JetStreamFollowerLost } from '../../streams/jetstreamFollower.js';
import { startNatsServer } from './natsServer.js';

// A standby's follower of the journal on a real nats-server per test: what it holds at an
// election is what a fresh open reads, it reads only the tail then, and it refuses what it cannot trust.

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(): Promise<{ connect(): Promise<NatsConnection> }> {
  const server = await startNatsServer();
  cleanups.push(() => server.stop());
  return {
    connect: async () => {
      const nc = await connectNats({ url: server.url });
      cleanups.push(() => nc.close());
      return nc;
    },
  };
}

async function follow(nc: NatsConnection, options: { stream?: string; subject?: string } = {}): Promise<JetStreamFollower> {
  const follower = await JetStreamFollower.start({ connection: nc, ...options });
  cleanups.push(() => follower.close());
  return follower;
}

/** Waits (bounded) until the follower has applied up to `seq`. */
async function reaches(follower: JetStreamFollower, seq: number): Promise<void> {
  for (let i = 0; i < 250 && follower.sequence < seq; i++) await new Promise(r => setTimeout(r, 20));
  expect(follower.sequence).toBe(seq);
}

const record = (i: number) => ({ type: 'subtask.accepted', subtaskId: `s${i}`, result: { n: i } });

async function rawPublish(nc: NatsConnection, subject: string, data: string): Promise<number> {
  const h = headers();
  h.set('Rxswarm-Journal', '1');
  return (await jetstream(nc).publish(subject, new TextEncoder().encode(data), { headers: h })).seq;
}

describe('JetStreamFollower', () => {
  it('follows records and snapshots (in parts, the stream purged behind them); at an election it reads only the tail and recovers what a fresh open does', async () => {
    const { connect } = await setup();
    const leader = await JetStreamJournal.open({ connection: await connect(), owner: 'a', recordsPerMessage: 1, maxMessageBytes: 16 * 1024 });
    const follower = await follow(await connect());
    const big = (n: number) => ({ after: n, items: Array.from({ length: 3000 }, (_, i) => `item ${i} of ${n} ✓`) });
    for (let i = 0; i < 30; i++) leader.append(record(i));
    leader.snapshot(big(30));
    for (let i = 30; i < 60; i++) leader.append(record(i));
    leader.snapshot(big(60));
    for (let i = 60; i < 80; i++) leader.append(record(i));
    await leader.durable();
    await reaches(follower, leader.sequence);
    const followed = follower.read;
    expect(followed).toBeGreaterThan(80);
    // The leader's last words, then it dies: the follower may not have them yet.
    for (let i = 80; i < 84; i++) leader.append(record(i));
    await leader.durable();
    const lastSeq = leader.sequence;

    const journal = await JetStreamJournal.open({ connection: await connect(), owner: 'b', follower });
    expect(follower.read - followed).toBeLessThanOrEqual(4); // the tail, not the stream
    expect(journal.sequence).toBe(lastSeq + 1); // its fence, right after the last message read
    const got = journal.recover();
    expect(got).toEqual({ snapshot: big(60), records: Array.from({ length: 24 }, (_, i) => record(60 + i)), tornBytes: 0 });
    const fresh = await JetStreamJournal.open({ connection: await connect(), owner: 'c' });
    expect(fresh.recover()).toEqual(got);
  });

  it('catchUp says how many messages it read: none when it is up to date, the tail when the stream moved on', async () => {
    const { connect } = await setup();
    const leader = await JetStreamJournal.open({ connection: await connect(), recordsPerMessage: 1 });
    for (let i = 0; i < 50; i++) leader.append(record(i));
    await leader.durable();
    const follower = await follow(await connect());
    await reaches(follower, leader.sequence);
    const first = await follower.catchUp();
    expect(first.tail).toBe(0);
    expect(first.lastSeq).toBe(51);
    expect(first.recovered.records).toHaveLength(50);
    // Stopped following: what comes now is read at the next catchUp, and only that.
    for (let i = 50; i < 53; i++) leader.append(record(i));
    await leader.durable();
    const second = await follower.catchUp();
    expect(second.tail).toBe(3);
    expect(second.lastSeq).toBe(54);
    expect(second.recovered.records).toEqual(Array.from({ length: 53 }, (_, i) => record(i)));
  });

  it('a follower that starts (or falls) behind a snapshot picks up at it: the records purged before it are not missed', async () => {
    const { connect } = await setup();
    const nc = await connect();
    const leader = await JetStreamJournal.open({ connection: nc, recordsPerMessage: 1 });
    for (let i = 0; i < 10; i++) leader.append(record(i));
    leader.snapshot({ after: 10 });
    leader.append(record(10));
    await leader.durable();
    const jsm = await jetstreamManager(nc);
    for (let i = 0; i < 50 && (await jsm.streams.info('RXSWARM_JOURNAL')).state.first_seq === 1; i++) await new Promise(r => setTimeout(r, 20));
    const follower = await follow(await connect());
    const { recovered, tail } = await follower.catchUp();
    expect(recovered).toEqual({ snapshot: { after: 10 }, records: [record(10)], tornBytes: 0 });
    expect(tail).toBeLessThanOrEqual(2);
  });

  it('fencing stays as strict: the new leader reads what was written after its follower caught up before it fences, and the old one cannot append', async () => {
    const { connect } = await setup();
    const a = await JetStreamJournal.open({ connection: await connect(), owner: 'a' });
    a.append(record(1));
    await a.durable();
    const follower = await follow(await connect());
    await follower.catchUp();
    a.append(record(2)); // written after the follower caught up: the new leader must read it
    await a.durable();
    const b = await JetStreamJournal.open({ connection: await connect(), owner: 'b', follower });
    expect(b.recover().records).toEqual([record(1), record(2)]);
    a.append(record(3));
    await expect(a.durable()).rejects.toThrow(/another coordinator has written to it since/);
    b.append(record(4));
    await b.durable();
    const c = await JetStreamJournal.open({ connection: await connect() });
    expect(c.recover().records).toEqual([record(1), record(2), record(4)]);
  });

  describe('says what it cannot trust, rather than hand over a wrong journal', () => {
    it('a damaged message it followed: it fails at once, and catchUp and open throw it', async () => {
      const { connect } = await setup();
      const nc = await connect();
      const leader = await JetStreamJournal.open({ connection: nc });
      leader.append(record(1));
      await leader.durable();
      const follower = await follow(await connect());
      const failures: Error[] = [];
      follower.onFailure(err => failures.push(err));
      const seq = await rawPublish(nc, 'rxswarm.journal.records', '[{"type":');
      for (let i = 0; i < 250 && failures.length === 0; i++) await new Promise(r => setTimeout(r, 20));
      expect(failures[0]).toBeInstanceOf(JetStreamJournalDamaged);
      expect((failures[0] as JetStreamJournalDamaged).seq).toBe(seq);
      expect(follower.failure).toBe(failures[0]);
      await expect(follower.catchUp()).rejects.toThrow(/at sequence 3: a records message that does not parse/);
      await expect(JetStreamJournal.open({ connection: nc, follower })).rejects.toBeInstanceOf(JetStreamJournalDamaged);
    });

    it('a message deleted inside the stream after it was followed, and a stream purged without a snapshot', async () => {
      const { connect } = await setup();
      const nc = await connect();
      const leader = await JetStreamJournal.open({ connection: nc, recordsPerMessage: 1 });
      for (let i = 0; i < 5; i++) leader.append(record(i));
      await leader.durable();
      const jsm = await jetstreamManager(nc);
      const follower = await follow(await connect());
      await reaches(follower, 6);
      await jsm.streams.deleteMessage('RXSWARM_JOURNAL', 3);
      const err = await follower.catchUp().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(JetStreamFollowerLost);
      expect((err as Error).message).toMatch(/RXSWARM_JOURNAL cannot vouch for what it holds: 1 messages were deleted inside the stream/);

      // One that starts now meets the gap itself, or finds the stream says so, whichever comes first.
      const late = await follow(await connect());
      await expect(late.catchUp()).rejects.toThrow(/at sequence 3: messages 3 to 3 are missing|1 messages were deleted inside the stream/);

      const other = await setup();
      const nc2 = await other.connect();
      const leader2 = await JetStreamJournal.open({ connection: nc2, recordsPerMessage: 1 });
      for (let i = 0; i < 5; i++) leader2.append(record(i));
      await leader2.durable();
      const again = await follow(await other.connect());
      await reaches(again, 6);
      await (await jetstreamManager(nc2)).streams.purge('RXSWARM_JOURNAL');
      await expect(again.catchUp()).rejects.toThrow(/empty after sequence 6: its records were purged without a snapshot/);
    });

    it('records purged up to a point that is no snapshot (it falls behind into a gap)', async () => {
      const { connect } = await setup();
      const nc = await connect();
      const leader = await JetStreamJournal.open({ connection: nc, recordsPerMessage: 1 });
      for (let i = 0; i < 5; i++) leader.append(record(i));
      await leader.durable();
      await (await jetstreamManager(nc)).streams.purge('RXSWARM_JOURNAL', { seq: 4 });
      const follower = await follow(await connect());
      await expect(follower.catchUp()).rejects.toThrow(/messages 1 to 3 are missing/);
    });
  });

  it('checks its options, and open checks that it follows the same stream', async () => {
    const { connect } = await setup();
    const nc = await connect();
    await expect(JetStreamFollower.start({ connection: nc, stream: 'a.b' })).rejects.toThrow(/stream must be/);
    await expect(JetStreamFollower.start({ connection: nc, subject: 'a.*' })).rejects.toThrow(/subject must be/);
    const follower = await follow(nc, { stream: 'OTHER', subject: 'other' });
    await expect(JetStreamJournal.open({ connection: nc, follower })).rejects.toThrow(/follower follows OTHER \(other\), not RXSWARM_JOURNAL/);
  });
});
