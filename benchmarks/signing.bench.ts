/**
 * What authenticating work through relays costs the coordinator per subtask: signing its assignment
 * (`signOrder`) and checking the agent's result (`verifyResult`), against the codec work the same
 * subtask costs without them in the same run — encoding the assignment frame and decoding the result
 * frame, as the WebSocket server does for every subtask. A ratio near 1 means signing is a small part
 * of what a subtask costs the coordinator; the dispatch benchmark measures the whole service with
 * signing on and off, with far more noise. Two payload sizes: a built-in worker's `{ sleepMs: 1 }`
 * and a 1 KiB prompt (the payload is signed as its JSON text, so its size counts twice).
 */
import type { AssignBody, ResultBody } from '../streams/protocol.js';
import { keyFrom, newSessionKey, signOrder, signResult, verifyResult } from '../streams/signing.js';
import { decode, encode } from '../streams/wsCodec.js';
import { formatNumber, rate, ratioRow, type BenchRow } from './harness.js';

const BATCH = 20_000;

function subtaskWork(payload: unknown, signed: boolean): () => number {
  const key = keyFrom(newSessionKey()) as Buffer;
  const assign: AssignBody = { via: ['agent-017'], subtask: { id: 'task-7-s-12345', payload }, attempt: 40_321, replyPath: ['agent-017', 'coordinator'] };
  const result: ResultBody = { via: ['coordinator'], subtaskId: 'task-7-s-12345', attempt: 40_321, agentId: 'agent-042', ok: true, value: { agentId: 'agent-042', subtaskId: 'task-7-s-12345', echo: payload } };
  const resultFrame = encode({ v: 1, type: 'envelope', from: 'agent-017', to: 'coordinator', kind: 'result', body: signed ? { ...result, mac: signResult(key, result) } : result });
  return () => {
    let bytes = 0;
    for (let i = 0; i < BATCH; i++) {
      const body = signed ? { ...assign, mac: signOrder(key, 'assign', 'agent-042', assign) } : assign;
      bytes += encode({ v: 1, type: 'envelope', from: 'coordinator', to: 'agent-017', kind: 'assign', body }).length;
      const decoded = decode(resultFrame);
      if (!decoded.ok || decoded.message.type !== 'envelope') throw new Error('signing bench: the result frame did not decode');
      if (signed && !verifyResult(key, decoded.message.body as ResultBody)) throw new Error('signing bench: the result did not verify');
    }
    if (bytes === 0) throw new Error('unreachable');
    return BATCH;
  };
}

export default function bench(): BenchRow[] {
  const rows: BenchRow[] = [];
  for (const [name, payload] of [
    ['payload { sleepMs: 1 }', { sleepMs: 1 }],
    ['payload of 1 KiB', { prompt: 'x'.repeat(1024) }],
  ] as const) {
    const suite = `signing, per subtask at the coordinator, ${name}`;
    // Interleaved samples: both sides see the same load.
    const plainRates: number[] = [];
    const signedRates: number[] = [];
    const plain = subtaskWork(payload, false);
    const signed = subtaskWork(payload, true);
    for (let i = 0; i < 5; i++) {
      plainRates.push(rate(plain, { samples: 1, warmups: i === 0 ? 1 : 0 }));
      signedRates.push(rate(signed, { samples: 1, warmups: i === 0 ? 1 : 0 }));
    }
    const median = (values: number[]): number => [...values].sort((a, b) => a - b)[values.length >> 1] as number;
    const p = median(plainRates);
    const s = median(signedRates);
    rows.push({ suite, case: 'baseline: encode the assignment + decode the result', value: p, unit: 'subtasks/s', note: `${formatNumber(1e6 / p, 2)} µs per subtask` });
    rows.push(ratioRow(suite, 'the same, signed and checked', s, 'subtasks/s', 'unsigned codec work', p, undefined, `${formatNumber(1e6 / s, 2)} µs per subtask: signing adds ${formatNumber(1e6 / s - 1e6 / p, 2)} µs`));
  }
  return rows;
}
