/**
 * Load generator of wsIngest.bench.ts, run in a child process (`fork` with `--import tsx`): opens
 * WebSocket connections over plain TCP and writes pre-built, pre-masked heartbeat frames, a few per
 * write, so that the client side costs little more than the syscalls and the CPU goes to the server
 * under test. The same generator drives both servers of the benchmark.
 *
 * ```
 * parent ──connect {target, port, ids, token?}──▶ child: handshakes (+ hello, waits for join) ──connected──▶
 * parent ──send {target, perSecond | null, credit}▶ child: writes what is due and within the credit
 * parent ──credit {upTo} (every ~20 ms)─────────▶ child: more may be written
 * parent ──stop─────────────────────────────────▶ child ──stopped {written, behind, closed, cpuMs}──▶ parent
 * ```
 *
 * Flow control: the parent grants credit as the server counts frames (counted + a fixed window), so
 * no more than the window is ever in flight. Without it, a server that falls behind leaves
 * hundreds of MB in loopback socket buffers (autotuned up to `tcp_rmem` max), which pushes the
 * kernel into TCP memory pressure and slows every later step, whichever server it belongs to.
 *
 * The handshake is RFC 6455's (the accept hash is checked); frames are masked with a random key per
 * connection, as a browser or `ws` client masks them, so the server unmasks every byte as usual.
 * Whatever the server sends back (echoes, the join frame, errors) is read and discarded, so its
 * writes never back up.
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { encodeBeatFrame } from '../streams/wsBeatFrame.js';

export type Target = 'raw' | 'rx';

export type LoadCommand =
  /** Opens one connection per id to `127.0.0.1:port`; with `token`, says hello as the id and waits for the join frame. */
  | { readonly type: 'connect'; readonly target: Target; readonly port: number; readonly ids: readonly string[]; readonly token?: string }
  /**
   * Starts sending heartbeats on the connections to `target`: `perSecond` in total for this child,
   * or `null` for as fast as the credit allows; at most `credit` frames until a `credit` raises it.
   */
  | { readonly type: 'send'; readonly target: Target; readonly perSecond: number | null; readonly credit: number }
  /** Frames this child may have written in all since `send` (the parent grants what the server has counted, plus a window). */
  | { readonly type: 'credit'; readonly upTo: number }
  | { readonly type: 'stop' }
  | { readonly type: 'exit' };

export type LoadReport =
  | { readonly type: 'ready' }
  | { readonly type: 'connected'; readonly target: Target; readonly count: number; readonly ms: number }
  | {
      readonly type: 'stopped';
      /** Heartbeat frames handed to the sockets since `send`. */
      readonly written: number;
      /** Frames due by the pacing but not written (no credit: the server was behind). */
      readonly behind: number;
      /** Connections closed by the peer so far (any target). */
      readonly closed: number;
      /** This process's CPU time since `send`, ms. */
      readonly cpuMs: number;
    }
  | { readonly type: 'error'; readonly message: string };

/** Frames per write: one connection's heartbeats go out in small batches, as a busy agent's would. */
const CHUNK = 4;
/** Unsent bytes a socket may hold before it is skipped for a round. */
const BACKLOG_BYTES = 64 * 1024;
const TICK_MS = 10;
/** Handshakes in flight per child, so the server's accept backlog never overflows. */
const CONNECT_CONCURRENCY = 100;
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** A masked client frame of `data` (RFC 6455 §5.2): a text frame of a string, a binary frame of bytes. */
export function clientFrame(data: string | Buffer, mask: Buffer): Buffer {
  const payload = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const n = payload.length;
  if (n >= 65536) throw new RangeError(`frame of ${n} bytes: this generator writes short frames only`);
  const header = n < 126 ? 2 : 4;
  const frame = Buffer.allocUnsafe(header + 4 + n);
  frame[0] = typeof data === 'string' ? 0x81 : 0x82; // FIN, text or binary
  if (n < 126) {
    frame[1] = 0x80 | n;
  } else {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(n, 2);
  }
  mask.copy(frame, header, 0, 4);
  for (let i = 0; i < n; i++) frame[header + 4 + i] = (payload[i] as number) ^ (mask[i & 3] as number);
  return frame;
}

/** The heartbeat body of the load: an idle agent's first incarnation. */
const BEAT = { load: 0, incarnation: 1 } as const;

/**
 * The heartbeat an agent sends to the coordinator, as the agents' client (`WsClientNetwork`)
 * writes it: the binary frame of `streams/wsBeatFrame.ts` when the server's join takes it (rxswarm
 * does), else the JSON envelope.
 */
export function heartbeatPayload(agentId: string, binary: boolean): string | Buffer {
  const frame = binary ? encodeBeatFrame('coordinator', BEAT) : undefined;
  return frame ?? JSON.stringify({ v: 1, type: 'envelope', from: agentId, to: 'coordinator', kind: 'heartbeat', body: BEAT });
}

interface Connection {
  readonly socket: Socket;
  /** `CHUNK` copies of this connection's heartbeat frame, back to back. */
  readonly burst: Buffer;
  readonly frameBytes: number;
}

/** One server frame from the start of `buffer`: its opcode, payload and length, or undefined if incomplete. */
function serverFrame(buffer: Buffer): { opcode: number; payload: Buffer; length: number } | undefined {
  if (buffer.length < 2) return undefined;
  const opcode = (buffer[0] as number) & 0x0f;
  let n = (buffer[1] as number) & 0x7f;
  let offset = 2;
  if (n === 126) {
    if (buffer.length < 4) return undefined;
    n = buffer.readUInt16BE(2);
    offset = 4;
  } else if (n === 127) {
    if (buffer.length < 10) return undefined;
    n = Number(buffer.readBigUInt64BE(2));
    offset = 10;
  }
  if (buffer.length < offset + n) return undefined;
  return { opcode, payload: buffer.subarray(offset, offset + n), length: offset + n };
}

let closed = 0;

/** Handshakes (and for rxswarm says hello and waits for the join frame); then drains all input. */
function open(port: number, agentId: string, token: string | undefined): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const key = randomBytes(16).toString('base64');
    const accept = createHash('sha1').update(key + GUID).digest('base64');
    const mask = randomBytes(4);
    const socket = connect({ host: '127.0.0.1', port, noDelay: true });
    let pending: Buffer = Buffer.alloc(0);
    let upgraded = false;
    let settled = false;
    const fail = (why: string): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      reject(new Error(`${agentId}: ${why}`));
    };
    /** `binary`: heartbeats go as binary frames (the join took them; the raw server gets the same bytes). */
    const done = (binary: boolean): void => {
      settled = true;
      socket.removeAllListeners('data');
      socket.on('data', () => undefined); // drain: echoes, pongs, error frames
      const frame = clientFrame(heartbeatPayload(agentId, binary), mask);
      resolve({ socket, burst: Buffer.concat(Array.from({ length: CHUNK }, () => frame)), frameBytes: frame.length });
    };
    socket.on('error', err => fail(err.message));
    socket.on('close', () => {
      if (settled) closed++;
      else fail('closed during the handshake');
    });
    socket.on('connect', () => {
      socket.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    });
    socket.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      if (!upgraded) {
        const end = pending.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = pending.subarray(0, end).toString('latin1');
        if (!head.startsWith('HTTP/1.1 101') || !head.includes(accept)) return fail(`handshake refused: ${head.split('\r\n')[0] ?? ''}`);
        upgraded = true;
        pending = pending.subarray(end + 4);
        if (token === undefined) return done(true);
        socket.write(clientFrame(JSON.stringify({ v: 1, type: 'hello', agentId, capabilities: [], token }), mask));
      }
      for (let frame = serverFrame(pending); frame !== undefined; frame = serverFrame(pending)) {
        pending = pending.subarray(frame.length);
        const text = frame.payload.toString('utf8');
        if (frame.opcode === 0x8) return fail(`closed by the server: ${frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : ''} ${frame.payload.subarray(2).toString('utf8')}`);
        if (frame.opcode === 0x1 && text.includes('"type":"join"')) return done(text.includes('"beatFrames":1'));
        if (frame.opcode === 0x1 && text.includes('"type":"error"')) return fail(`refused: ${text}`);
      }
    });
  });
}

const connections: Record<Target, Connection[]> = { raw: [], rx: [] };

async function connectAll(target: Target, port: number, ids: readonly string[], token: string | undefined): Promise<void> {
  const start = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < ids.length) {
      const id = ids[next++] as string;
      connections[target].push(await open(port, id, token));
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONNECT_CONCURRENCY, ids.length) }, worker));
  reply({ type: 'connected', target, count: connections[target].length, ms: performance.now() - start });
}

/**
 * One `send`: writes what is both due (paced: `perSecond` since the start; unpaced: everything) and
 * allowed by the credit, in chunks of up to {@link CHUNK} frames per connection, round-robin, so
 * every connection carries its share.
 */
class Sender {
  written = 0;
  private allowed: number;
  private cursor = 0;
  private readonly start = performance.now();
  private readonly cpu = process.cpuUsage();
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(
    private readonly list: readonly Connection[],
    private readonly perSecond: number | null,
    credit: number,
  ) {
    this.allowed = credit;
    this.timer = setInterval(() => this.pump(), TICK_MS);
    this.pump();
  }

  credit(upTo: number): void {
    if (upTo <= this.allowed) return;
    this.allowed = upTo;
    this.pump();
  }

  /** Frames due by the pacing and not written (0 when unpaced). */
  get behind(): number {
    return this.perSecond === null ? 0 : Math.max(0, this.due() - this.written);
  }

  get cpuMs(): number {
    const { user, system } = process.cpuUsage(this.cpu);
    return (user + system) / 1000;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private due(): number {
    return this.perSecond === null ? Infinity : Math.floor((this.perSecond * (performance.now() - this.start)) / 1000);
  }

  private pump(): void {
    let budget = Math.min(this.due(), this.allowed) - this.written;
    const n = this.list.length;
    // One round at most per pump: a connection gets at most CHUNK frames per write.
    for (let k = 0; k < n && budget > 0; k++) {
      const c = this.list[this.cursor] as Connection;
      this.cursor = (this.cursor + 1) % n;
      if (c.socket.destroyed || c.socket.writableLength > BACKLOG_BYTES) continue;
      const frames = Math.min(CHUNK, budget);
      c.socket.write(c.burst.subarray(0, frames * c.frameBytes));
      this.written += frames;
      budget -= frames;
    }
  }
}

let sender: Sender | undefined;

function reply(report: LoadReport): void {
  process.send?.(report);
}

process.on('message', (command: LoadCommand) => {
  switch (command.type) {
    case 'connect':
      connectAll(command.target, command.port, command.ids, command.token).catch((err: unknown) => reply({ type: 'error', message: err instanceof Error ? err.message : String(err) }));
      return;
    case 'send':
      sender?.stop();
      sender = new Sender(connections[command.target], command.perSecond, command.credit);
      return;
    case 'credit':
      sender?.credit(command.upTo);
      return;
    case 'stop': {
      const stopped = sender;
      sender = undefined;
      stopped?.stop();
      reply({ type: 'stopped', written: stopped?.written ?? 0, behind: stopped?.behind ?? 0, closed, cpuMs: stopped?.cpuMs ?? 0 });
      return;
    }
    case 'exit':
      sender?.stop();
      for (const c of [...connections.raw, ...connections.rx]) c.socket.destroy();
      process.disconnect();
      return;
  }
});
process.on('disconnect', () => process.exit(0));
reply({ type: 'ready' });
