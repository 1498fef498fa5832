import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager, StorageType } from '@nats-io/jetstream';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import { connectNats } from '../../streams/natsConnect.js';
import { JetStreamJournal, JetStreamJournalDamaged } from '../../streams/jetstreamJournal.js';
import { startNatsServer, type NatsServer } from './natsServer.js';

// The journal on a real nats-server per test (file storage in a temporary directory).

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(): Promise<{ server: NatsServer; connect(): Promise<NatsConnection> }> {
  const server = await startNatsServer();
  cleanups.push(() => server.stop());
  return {
    server,
    connect: async () => {
      const nc = await connectNats({ url: server.url });
      cleanups.push(() => nc.close());
      return nc;
    },
  };
}

const record = (i: number) => ({ type: 'subtask.accepted', subtaskId: `s${i}`, result: { n: i } });

async function rawPublish(nc: NatsConnection, subject: string, data: string, header: Record<string, string> = { 'Rxswarm-Journal': '1' }): Promise<number> {
  const h = headers();
  for (const [k, v] of Object.entries(header)) h.set(k, v);
  return (await jetstream(nc).publish(subject, new TextEncoder().encode(data), { headers: h })).seq;
}

describe('JetStreamJournal', () => {
  it('keeps every record appended, in order, across a reopen (several records per message, acks pipelined)', async () => {
    const { connect } = await setup();
    const nc = await connect();
    const journal = await JetStreamJournal.open({ connection: nc, recordsPerMessage: 64 });
    expect(journal.recover()).toEqual({ snapshot: undefined, records: [], tornBytes: 0 });
    for (let i = 0; i < 1000; i++) journal.append(record(i));
    expect(journal.pending).toBe(true);
    expect(journal.sinceSnapshot).toBe(1000);
    await journal.durable();
    expect(journal.pending).toBe(false);
    // 1 fence, 1000 records in messages of at most 64
    const info = await (await jetstreamManager(nc)).streams.info('RXSWARM_JOURNAL');
    expect(info.config.storage).toBe(StorageType.File);
    expect(info.state.messages).toBeGreaterThanOrEqual(1 + Math.ceil(1000 / 64));
    expect(info.state.messages).toBeLessThan(1000);
    await journal.close();

    const again = await JetStreamJournal.open({ connection: await connect() });
    const { snapshot, records } = again.recover();
    expect(snapshot).toBeUndefined();
    expect(records).toEqual(Array.from({ length: 1000 }, (_, i) => record(i)));
    expect(() => again.recover()).toThrow(/answered once/);
  });

  it('one message per record also works (recordsPerMessage 1)', async () => {
    const { connect } = await setup();
    const journal = await JetStreamJournal.open({ connection: await connect(), recordsPerMessage: 1 });
    for (let i = 0; i < 50; i++) journal.append(record(i));
    await journal.durable();
    expect(journal.sequence).toBe(51); // fence + 50
    const again = await JetStreamJournal.open({ connection: await connect() });
    expect(again.recover().records).toHaveLength(50);
  });

  it('fences: once another writer opened the stream, the first one cannot append and fails', async () => {
    const { connect } = await setup();
    const a = await JetStreamJournal.open({ connection: await connect(), owner: 'a' });
    a.append(record(1));
    await a.durable();
    const b = await JetStreamJournal.open({ connection: await connect(), owner: 'b' });
    expect(b.recover().records).toEqual([record(1)]);
    const failures: Error[] = [];
    a.onFailure(err => failures.push(err));
    a.append(record(2));
    await expect(a.durable()).rejects.toThrow(/another coordinator has written to it since/);
    expect(failures).toHaveLength(1);
    expect(a.failure?.message).toMatch(/no longer the leader/);
    expect(() => a.append(record(3))).toThrow(/another coordinator/);
    // b goes on, and what a tried to write is nowhere
    b.append(record(4));
    await b.durable();
    const c = await JetStreamJournal.open({ connection: await connect() });
    expect(c.recover().records).toEqual([record(1), record(4)]);
  });

  it('a writer whose expected sequence is stale fails even when the other one has not written yet (the fence at open)', async () => {
    const { connect } = await setup();
    const a = await JetStreamJournal.open({ connection: await connect() });
    await JetStreamJournal.open({ connection: await connect() });
    a.append(record(1));
    await expect(a.durable()).rejects.toThrow(/refused a write/);
  });

  it('a snapshot replaces the records before it: the stream is purged up to it and recovery starts there', async () => {
    const { connect } = await setup();
    const nc = await connect();
    const journal = await JetStreamJournal.open({ connection: nc });
    for (let i = 0; i < 10; i++) journal.append(record(i));
    journal.snapshot({ state: 'after 10' });
    expect(journal.sinceSnapshot).toBe(0);
    for (let i = 10; i < 15; i++) journal.append(record(i));
    await journal.durable();
    const jsm = await jetstreamManager(nc);
    // the purge follows the snapshot's ack
    for (let i = 0; i < 50 && (await jsm.streams.info('RXSWARM_JOURNAL')).state.first_seq === 1; i++) await new Promise(r => setTimeout(r, 20));
    const { state } = await jsm.streams.info('RXSWARM_JOURNAL');
    expect(state.first_seq).toBe(3); // fence, records, then the snapshot
    const again = await JetStreamJournal.open({ connection: await connect() });
    expect(again.recover()).toEqual({ snapshot: { state: 'after 10' }, records: Array.from({ length: 5 }, (_, i) => record(10 + i)), tornBytes: 0 });
  });

  it('a snapshot larger than a message may be goes in parts', async () => {
    const { connect } = await setup();
    const journal = await JetStreamJournal.open({ connection: await connect(), maxMessageBytes: 16 * 1024 });
    const big = { items: Array.from({ length: 5000 }, (_, i) => `item ${i} ✓`) };
    journal.append(record(0));
    journal.snapshot(big);
    journal.append(record(1));
    await journal.durable();
    const again = await JetStreamJournal.open({ connection: await connect() });
    expect(again.recover()).toEqual({ snapshot: big, records: [record(1)], tornBytes: 0 });
  });

  describe('refuses a stream it cannot trust, naming the stream and sequence', () => {
    it('a records message that does not parse', async () => {
      const { connect } = await setup();
      const nc = await connect();
      const journal = await JetStreamJournal.open({ connection: nc });
      journal.append(record(1));
      await journal.durable();
      const seq = await rawPublish(nc, 'rxswarm.journal.records', '[{"type":');
      const err = await JetStreamJournal.open({ connection: nc }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(JetStreamJournalDamaged);
      expect((err as JetStreamJournalDamaged).seq).toBe(seq);
      expect((err as Error).message).toMatch(/stream RXSWARM_JOURNAL at sequence 3: a records message that does not parse/);
    });

    it('a message of another format or on a subject the journal does not write', async () => {
      const { connect } = await setup();
      const nc = await connect();
      await JetStreamJournal.open({ connection: nc });
      await rawPublish(nc, 'rxswarm.journal.records', '[]', {});
      await expect(JetStreamJournal.open({ connection: nc })).rejects.toThrow(/journal format "none"/);
      const { server } = await setup();
      const nc2 = await connectNats({ url: server.url });
      cleanups.push(() => nc2.close());
      await JetStreamJournal.open({ connection: nc2 });
      await rawPublish(nc2, 'rxswarm.journal.other', '{}');
      await expect(JetStreamJournal.open({ connection: nc2 })).rejects.toThrow(/a message on rxswarm.journal.other, which the journal does not write/);
    });

    it('records purged without a snapshot, and a deleted message in the middle', async () => {
      const { connect } = await setup();
      const nc = await connect();
      const journal = await JetStreamJournal.open({ connection: nc, recordsPerMessage: 1 });
      for (let i = 0; i < 5; i++) journal.append(record(i));
      await journal.durable();
      const jsm = await jetstreamManager(nc);
      await jsm.streams.deleteMessage('RXSWARM_JOURNAL', 3);
      await expect(JetStreamJournal.open({ connection: nc })).rejects.toThrow(/at sequence 3: messages 3 to 3 are missing/);
      await jsm.streams.purge('RXSWARM_JOURNAL', { seq: 5 });
      await expect(JetStreamJournal.open({ connection: nc })).rejects.toThrow(/starts at sequence 5 without a snapshot: records 1 to 4 are gone/);
      await jsm.streams.purge('RXSWARM_JOURNAL');
      await expect(JetStreamJournal.open({ connection: nc })).rejects.toThrow(/empty after sequence 6: its records were purged without a snapshot/);
    });

    it('a snapshot cut short', async () => {
      const { connect } = await setup();
      const nc = await connect();
      await JetStreamJournal.open({ connection: nc });
      await rawPublish(nc, 'rxswarm.journal.snapshot', '{"a":', { 'Rxswarm-Journal': '1', 'Rxswarm-Snapshot-Part': '1/2' });
      await expect(JetStreamJournal.open({ connection: nc })).rejects.toThrow(/the last snapshot message is part 1 of 2: a snapshot cut short/);
    });

    it('a stream in memory, or with limits that would drop records', async () => {
      const { connect } = await setup();
      const nc = await connect();
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: 'MEM', subjects: ['mem.>'], storage: StorageType.Memory });
      await expect(JetStreamJournal.open({ connection: nc, stream: 'MEM', subject: 'mem' })).rejects.toThrow(/stream MEM: its storage is memory, not file/);
      await jsm.streams.add({ name: 'AGED', subjects: ['aged.>'], storage: StorageType.File, max_age: 60_000_000_000 });
      await expect(JetStreamJournal.open({ connection: nc, stream: 'AGED', subject: 'aged' })).rejects.toThrow(/limits .* that would drop records/);
    });
  });

  it('keeps what was acknowledged across a restart of the server (file storage)', async () => {
    const storeDir = mkdtempSync(join(tmpdir(), 'rxswarm-js-store-'));
    cleanups.push(() => rmSync(storeDir, { recursive: true, force: true }));
    let server = await startNatsServer({ storeDir });
    const port = server.port;
    const nc = await connectNats({ url: server.url });
    cleanups.push(() => nc.close());
    const journal = await JetStreamJournal.open({ connection: nc });
    for (let i = 0; i < 100; i++) journal.append(record(i));
    await journal.durable();
    await server.stop();
    server = await startNatsServer({ storeDir, port });
    cleanups.push(() => server.stop());
    const again = await JetStreamJournal.open({ connection: await connectNats({ url: server.url }) });
    expect(again.recover().records).toHaveLength(100);
  });

  it('rides out a restart of the server in the middle of appending: nothing lost, nothing twice, in order', async () => {
    const storeDir = mkdtempSync(join(tmpdir(), 'rxswarm-js-store-'));
    cleanups.push(() => rmSync(storeDir, { recursive: true, force: true }));
    let server = await startNatsServer({ storeDir });
    const port = server.port;
    const nc = await connectNats({ url: server.url });
    cleanups.push(() => nc.close());
    const journal = await JetStreamJournal.open({ connection: nc, recordsPerMessage: 4 });
    let n = 0;
    const timer = setInterval(() => {
      for (let i = 0; i < 3; i++) journal.append(record(n++));
    }, 2);
    cleanups.push(() => clearInterval(timer));
    await new Promise(resolve => setTimeout(resolve, 200));
    await server.stop();
    server = await startNatsServer({ storeDir, port });
    cleanups.push(() => server.stop());
    await new Promise(resolve => setTimeout(resolve, 300));
    clearInterval(timer);
    await journal.durable();
    expect(journal.failure).toBeUndefined();
    const again = await JetStreamJournal.open({ connection: await connectNats({ url: server.url }) });
    expect(again.recover().records).toEqual(Array.from({ length: n }, (_, i) => record(i)));
  });

  it('checks its options', async () => {
    const { connect } = await setup();
    const nc = await connect();
    await expect(JetStreamJournal.open({ connection: nc, recordsPerMessage: 0 })).rejects.toThrow(RangeError);
    await expect(JetStreamJournal.open({ connection: nc, stream: 'a.b' })).rejects.toThrow(/stream must be/);
    await expect(JetStreamJournal.open({ connection: nc, subject: 'a.*' })).rejects.toThrow(/subject must be/);
  });
});
