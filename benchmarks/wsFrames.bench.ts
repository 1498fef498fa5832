/**
 * Fewer, fuller frames, measured: how to send what a connection has to say within one turn of the
 * event loop. 50 `ws` connections on 127.0.0.1 (server and clients in this process, so a message's
 * whole cost — write, read, parse — is on one clock); every turn, the server has {@link BURST}
 * envelope-sized JSON messages (~{@link MESSAGE_BYTES} bytes, an assignment's size) for each
 * connection, sent three ways, the ways alternating over {@link ROUNDS} rounds:
 *
 * - baseline, "a frame each, a write each": `socket.send` per message, as rxswarm did before
 *   (each frame its own `writev`);
 * - "a frame each, corked per turn": the same frames, the TCP socket corked at the turn's first
 *   send and uncorked once at the turn's end (`streams/wsCork.ts`, what rxswarm does now): one
 *   `writev` per connection per turn, nothing changes on the wire;
 * - "one batched frame per turn": the turn's messages joined in one text frame (a JSON array): one
 *   frame to parse and one `message` event instead of {@link BURST}, but a wire format of its own
 *   (the receiver must split it), and every limit that counts frames (rate limits) or bounds a frame
 *   (max payload) would have to count and bound what is inside instead.
 *
 * Rate: messages received and parsed per second; CPU: this process's CPU per message (lower is
 * better). Ratios against the baseline.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { TurnCork } from '../streams/wsCork.js';
import { formatNumber, median, ratioRow, type BenchRow } from './harness.js';

const CONNECTIONS = 50;
const BURST = 8;
const MESSAGE_BYTES = 220;
const TURNS = 400;
const ROUNDS = 5;
const SUITE = `ws frames, ${CONNECTIONS} connections, ${BURST} messages per connection per turn`;

type Mode = 'each' | 'corked' | 'batched';

const message = (i: number): string => {
  const body = JSON.stringify({ v: 1, type: 'envelope', from: 'coordinator', to: 'agent-017', kind: 'assign', body: { via: [], subtask: { id: `task-7-s-${i}`, payload: { sleepMs: 1 } }, attempt: 1, replyPath: ['coordinator'], mac: 'x'.repeat(43) } });
  return body + ' '.repeat(Math.max(0, MESSAGE_BYTES - body.length));
};

async function pair(): Promise<{ servers: WebSocket[]; clients: WebSocket[]; close: () => Promise<void> }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, clientTracking: false });
  await once(wss, 'listening');
  const servers: WebSocket[] = [];
  wss.on('connection', socket => servers.push(socket));
  const clients = await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      const socket = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, { perMessageDeflate: false });
      await once(socket, 'open');
      return socket;
    }),
  );
  while (servers.length < CONNECTIONS) await new Promise(resolve => setImmediate(resolve));
  return {
    servers,
    clients,
    close: async () => {
      for (const c of clients) c.terminate();
      await new Promise<void>(resolve => wss.close(() => resolve()));
    },
  };
}

/** Sends TURNS turns in `mode`; resolves with messages/s and CPU µs per message once all are parsed. */
function run(servers: readonly WebSocket[], clients: readonly WebSocket[], mode: Mode, messages: readonly string[]): Promise<{ rate: number; cpuUs: number }> {
  const total = TURNS * BURST * CONNECTIONS;
  let received = 0;
  const cork = new TurnCork();
  return new Promise(resolve => {
    const cpu = process.cpuUsage();
    const start = performance.now();
    const onMessage = (data: WebSocket.RawData): void => {
      const parsed = JSON.parse(String(data)) as unknown;
      received += Array.isArray(parsed) ? parsed.length : 1;
      if (received < total) return;
      const used = process.cpuUsage(cpu);
      const ms = performance.now() - start;
      for (const c of clients) c.off('message', onMessage);
      resolve({ rate: (total * 1000) / ms, cpuUs: ((used.user + used.system) / total) });
    };
    for (const c of clients) c.on('message', onMessage);
    let turn = 0;
    const next = (): void => {
      if (turn++ >= TURNS) return;
      for (const socket of servers) {
        if (mode === 'batched') {
          socket.send(`[${messages.join(',')}]`);
          continue;
        }
        for (const m of messages) {
          if (mode === 'corked') cork.hold(socket);
          socket.send(m);
        }
      }
      // The next turn once these are written (a sender that outruns its peers only measures buffers).
      setImmediate(next);
    };
    next();
  });
}

export default async function bench(): Promise<BenchRow[]> {
  const { servers, clients, close } = await pair();
  const messages = Array.from({ length: BURST }, (_, i) => message(i));
  const results: Record<Mode, Array<{ rate: number; cpuUs: number }>> = { each: [], corked: [], batched: [] };
  try {
    for (const mode of ['each', 'corked', 'batched'] as const) await run(servers, clients, mode, messages); // warm-up
    const modes: Mode[] = ['each', 'corked', 'batched'];
    for (let round = 0; round < ROUNDS; round++) {
      for (const mode of [...modes.slice(round % 3), ...modes.slice(0, round % 3)]) {
        (globalThis as { gc?: () => void }).gc?.();
        results[mode].push(await run(servers, clients, mode, messages));
      }
    }
  } finally {
    await close();
  }
  const rate = (mode: Mode): number => median(results[mode].map(r => r.rate));
  const cpu = (mode: Mode): number => median(results[mode].map(r => r.cpuUs));
  const note = (mode: Mode): string => `medians of ${ROUNDS} alternating rounds of ${formatNumber(TURNS * BURST * CONNECTIONS)} messages; rates per round ${results[mode].map(r => formatNumber(r.rate)).join('/')}`;
  return [
    { suite: SUITE, case: 'baseline: a frame each, a write each', value: rate('each'), unit: 'msg/s', note: note('each') },
    ratioRow(SUITE, 'a frame each, corked per turn (rxswarm)', rate('corked'), 'msg/s', 'a write each', rate('each'), undefined, note('corked')),
    ratioRow(SUITE, 'one batched frame per turn', rate('batched'), 'msg/s', 'a write each', rate('each'), undefined, note('batched')),
    { suite: SUITE, case: 'baseline: CPU per message, a write each', value: cpu('each'), unit: 'µs' },
    ratioRow(SUITE, 'CPU per message, corked per turn (lower is better)', cpu('corked'), 'µs', 'a write each', cpu('each')),
    ratioRow(SUITE, 'CPU per message, one batched frame (lower is better)', cpu('batched'), 'µs', 'a write each', cpu('each')),
  ];
}
