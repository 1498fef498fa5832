/**
 * The JetStream journal: records per message (group commit) against one message per record, with
 * a file journal (one fdatasync per batch) as the baseline, in the same run against one
 * nats-server (file storage). The workload is the coordinator's: a few records per turn of the
 * event loop (an assignment, an ack, an accepted result), `JS_JOURNAL_RECORDS` in all (default
 * 20,000), then `durable()`. Also the latency of one append made durable (a submit's).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JetStreamJournal } from '../streams/jetstreamJournal.js';
import { FileJournal, type Journal } from '../streams/journal.js';
import { connectNats } from '../streams/natsConnect.js';
import { startNatsServer } from '../test/streams/natsServer.js';
import { median, type BenchRow } from './harness.js';

const RECORDS = Number(process.env['JS_JOURNAL_RECORDS'] ?? 20_000);
const PER_TURN = 4;
const ROUNDS = 3;
const record = (i: number) => ({ type: 'subtask.accepted', taskId: 'bench', subtaskId: `s-${i}`, attempt: i, value: { agentId: 'a-1', n: i } });

async function throughput(journal: Journal): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < RECORDS; i += PER_TURN) {
    for (let j = 0; j < PER_TURN; j++) journal.append(record(i + j));
    await new Promise(resolve => setImmediate(resolve));
  }
  await journal.durable();
  return (RECORDS * 1000) / (performance.now() - started);
}

async function latency(journal: Journal): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t = performance.now();
    journal.append(record(i));
    await journal.durable();
    times.push(performance.now() - t);
  }
  return median(times);
}

export default async function bench(): Promise<BenchRow[]> {
  const server = await startNatsServer();
  const nc = await connectNats({ url: server.url });
  const dirs: string[] = [];
  const rows: BenchRow[] = [];
  try {
    const cases: Array<[string, () => Promise<Journal>]> = [
      ['file journal (fdatasync per batch)', async () => {
        const dir = mkdtempSync(join(tmpdir(), 'rxswarm-jsj-bench-'));
        dirs.push(dir);
        return FileJournal.open(dir);
      }],
      ['JetStream, 1 record per message', () => JetStreamJournal.open({ connection: nc, stream: `B1_${dirs.length}_${Math.random().toString(36).slice(2, 8)}`, subject: `b1.${Math.random().toString(36).slice(2, 8)}`, recordsPerMessage: 1 })],
      ['JetStream, up to 256 records per message', () => JetStreamJournal.open({ connection: nc, stream: `B256_${Math.random().toString(36).slice(2, 8)}`, subject: `b256.${Math.random().toString(36).slice(2, 8)}`, recordsPerMessage: 256 })],
    ];
    const results = new Map<string, { rate: number[]; latency: number[] }>();
    for (let r = 0; r < ROUNDS; r++) {
      for (const [name, open] of cases) {
        const journal = await open();
        const rate = await throughput(journal);
        const lat = await latency(journal);
        await journal.close();
        const entry = results.get(name) ?? { rate: [], latency: [] };
        entry.rate.push(rate);
        entry.latency.push(lat);
        results.set(name, entry);
      }
    }
    const base = median((results.get(cases[0]?.[0] as string) as { rate: number[] }).rate);
    for (const [name] of cases) {
      const { rate, latency: lat } = results.get(name) as { rate: number[]; latency: number[] };
      rows.push({
        suite: 'jetstream journal: appends',
        case: `${name}, ${PER_TURN} per turn`,
        value: median(rate),
        unit: 'records/s',
        ratio: { against: 'file journal', value: median(rate) / base },
        note: `median of ${ROUNDS} rounds of ${RECORDS} records (${rate.map(Math.round).join(', ')}); one append made durable: median ${median(lat).toFixed(2)} ms`,
      });
    }
    return rows;
  } finally {
    await nc.close();
    await server.stop();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  }
}
