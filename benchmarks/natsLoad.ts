/**
 * Load generator of natsIngest.bench.ts, run in a child process (`fork` with `--import tsx`): one
 * NATS connection that opens a session per agent id with the coordinator's NatsNetwork (hello,
 * join, ready: the real handshake) and then publishes pre-encoded heartbeat frames on the sessions'
 * subjects, round-robin, paced, within the credit the parent grants as the receiver counts (NATS
 * core has no back-pressure: a receiver that falls behind would otherwise be cut by the server as a
 * slow consumer). The same frames go to `rxswarm.in.<sid>` (NatsNetwork) or `raw.in.<sid>` (the
 * raw subscriber), so both receivers get byte-identical messages on subjects of the same shape.
 *
 * ```
 * parent ──connect {url, ids, token}──▶ child: handshakes ──connected──▶
 * parent ──send {prefix, perSecond | null, credit}──▶ child publishes; ──credit {upTo}──▶ more
 * parent ──stop──▶ child ──stopped {written, behind, cpuMs}──▶ parent
 * ```
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { READY_FRAME, natsSubjects } from '../streams/natsNetwork.js';
import { decodeHandshake, openHandshake, tokenKey } from '../streams/natsSession.js';

export type NatsLoadCommand =
  | { readonly type: 'connect'; readonly url: string; readonly ids: readonly string[]; readonly token: string }
  | { readonly type: 'send'; readonly prefix: string; readonly perSecond: number | null; readonly credit: number }
  | { readonly type: 'credit'; readonly upTo: number }
  | { readonly type: 'stop' }
  | { readonly type: 'exit' };

export type NatsLoadReport =
  | { readonly type: 'ready' }
  | { readonly type: 'connected'; readonly count: number; readonly ms: number }
  | { readonly type: 'stopped'; readonly written: number; readonly behind: number; readonly cpuMs: number }
  | { readonly type: 'error'; readonly message: string };

const TICK_MS = 5;
const encoder = new TextEncoder();
const report = (r: NatsLoadReport): void => void process.send?.(r);

let nc: NatsConnection | undefined;
let sessions: Array<{ sid: string; frame: Uint8Array }> = [];
let timer: ReturnType<typeof setInterval> | undefined;
let credit = 0;
let written = 0;
let behind = 0;
let cpu0 = process.cpuUsage();

async function open(url: string, ids: readonly string[], token: string): Promise<void> {
  const started = performance.now();
  nc = await connect({ servers: url, name: 'natsLoad' });
  const subjects = natsSubjects('rxswarm');
  const tkey = tokenKey(token);
  sessions = [];
  for (let i = 0; i < ids.length; i += 50) {
    await Promise.all(
      ids.slice(i, i + 50).map(async id => {
        const { hello, finish } = openHandshake(tkey, { agentId: id, capabilities: [], role: 'agent', slots: 1, instance: `load-${id}`, maxFrameBytes: 1 << 20 });
        const answer = await (nc as NatsConnection).request(subjects.hello, JSON.stringify(hello), { timeout: 10_000 });
        const join = decodeHandshake('join', answer.string(), 1 << 16);
        if (!join.ok) throw new Error(`hello of ${id} refused: ${answer.string()}`);
        const secrets = finish(join.message);
        if (secrets === undefined) throw new Error(`join of ${id} does not prove the token`);
        (nc as NatsConnection).publish(subjects.in(secrets.sid), READY_FRAME);
        // Exactly what NatsClientNetwork sends for AgentHost's beat (encode's spelling: the decoder's fast path).
        sessions.push({ sid: secrets.sid, frame: encoder.encode(`{"v":1,"type":"envelope","from":"${id}","to":"coordinator","kind":"heartbeat","body":{"load":0,"incarnation":1}}`) });
      }),
    );
  }
  await nc.flush();
  report({ type: 'connected', count: sessions.length, ms: performance.now() - started });
}

function send(prefix: string, perSecond: number | null, initialCredit: number): void {
  const conn = nc as NatsConnection;
  credit = initialCredit;
  written = 0;
  behind = 0;
  cpu0 = process.cpuUsage();
  const subjects = sessions.map(s => `${prefix}.in.${s.sid}`);
  const started = performance.now();
  let next = 0;
  timer = setInterval(() => {
    const due = perSecond === null ? Infinity : Math.floor(((performance.now() - started) * perSecond) / 1000);
    const upTo = Math.min(due, credit);
    if (perSecond !== null && due > credit) behind = due - credit;
    let n = 0;
    while (written < upTo && n < 20_000) {
      const i = next++ % sessions.length;
      conn.publish(subjects[i] as string, (sessions[i] as { frame: Uint8Array }).frame);
      written++;
      n++;
    }
  }, TICK_MS);
}

process.on('message', (command: NatsLoadCommand) => {
  void (async () => {
    try {
      switch (command.type) {
        case 'connect':
          return await open(command.url, command.ids, command.token);
        case 'send':
          return send(command.prefix, command.perSecond, command.credit);
        case 'credit':
          credit = Math.max(credit, command.upTo);
          return;
        case 'stop': {
          clearInterval(timer);
          await nc?.flush();
          const cpu = process.cpuUsage(cpu0);
          return report({ type: 'stopped', written, behind, cpuMs: (cpu.user + cpu.system) / 1000 });
        }
        case 'exit':
          await nc?.close();
          process.exit(0);
      }
    } catch (err) {
      report({ type: 'error', message: err instanceof Error ? err.message : String(err) });
    }
  })();
});

report({ type: 'ready' });
