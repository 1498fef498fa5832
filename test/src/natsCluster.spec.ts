import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { CoordinationResult } from '../../src/events.js';
import { WRITER } from '../../streams/jetstreamJournal.js';
import { connectNats } from '../../streams/natsConnect.js';
import { createRandom } from '../../streams/random.js';
import type { LeaseHolder } from '../../streams/natsLease.js';
import { startNatsServer, type NatsServer } from '../streams/natsServer.js';
import { cliProcesses, root, type Proc } from './cliProcesses.js';

// A coordinator cluster as real processes: a nats-server, three `serve --nats` nodes, agents and
// `run --nats`. The leader is killed (SIGKILL) at random points, or paused (SIGSTOP) past its
// lease and resumed. Every wait is bounded; every process is killed after each test.
const TOKEN = 'cluster-e2e-secret';
const WAIT_MS = 45_000;
/** The lease TTL of the SIGSTOP test: its pause outlasts it. */
const TTL = 2000;
/** The lease TTL of the SIGKILL test: the command line's default. */
const KILL_TTL = 4000;
/** How often a standby tries for the lease (the node's renewal pace, TTL / 8): the detection interval of a lapsed lease. */
const DETECTION_MS = KILL_TTL / 8;
/** serve's line once a node has the lease (a failover is decided), and once it leads (the journal read, the service running). */
const ELECTED = / info  elected \S+ \(lease revision /;
const LEADS = / info  leader \S+ \(lease revision /;
/** The time a log line was printed (its ISO prefix). */
const printedAt = (line: string): number => Date.parse(line.slice(0, line.indexOf(' ')));
const countingPath = join(root, 'test', 'fixtures', 'countingHandler.mjs');
const KILLS = Number(process.env['RXSWARM_KILLS'] ?? 5);
const SEED = Number(process.env['RXSWARM_SEED'] ?? Date.now() % 1_000_000);

const { start, killAll } = cliProcesses(TOKEN, WAIT_MS);
let dir: string;
let nats: NatsServer | undefined;
let nc: NatsConnection | undefined;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rxswarm-cluster-e2e-'));
});

afterEach(async () => {
  killAll();
  delete process.env['RXSWARM_EXECUTIONS'];
  await nc?.close();
  nc = undefined;
  await nats?.stop();
  nats = undefined;
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms));

/** Polls `check` every 50 ms until it returns a value, at most `ms`. */
async function until<T>(what: string, check: () => Promise<T | undefined> | T | undefined, ms = WAIT_MS): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(50);
  }
}

interface Cluster {
  readonly nodes: Map<number, Proc>;
  node(id: string): Proc;
  holder(): Promise<LeaseHolder | undefined>;
  leader(): Promise<{ holder: LeaseHolder; proc: Proc }>;
}

async function cluster(count: number, ttl = TTL): Promise<{ url: string; c: Cluster }> {
  nats = await startNatsServer();
  const url = nats.url;
  nc = await connectNats({ url });
  const kv = await new Kvm(nc).create('rxswarm-leader', { ttl, history: 1 });
  const nodes = new Map<number, Proc>();
  const node = (id: string): Proc => {
    const proc = start('serve', '--nats', url, '--node-id', id, '--lease-ttl', String(ttl), '--heartbeat-ms', '250', '--topology', 'star');
    nodes.set(proc.child.pid as number, proc);
    return proc;
  };
  const holder = async (): Promise<LeaseHolder | undefined> => {
    const entry = await kv.get('leader').catch(() => null);
    return entry === null || entry.operation !== 'PUT' ? undefined : (JSON.parse(entry.string()) as LeaseHolder);
  };
  const c: Cluster = {
    nodes,
    node,
    holder,
    // The lease's holder, once it is one of ours and says it leads.
    leader: () =>
      until('a leader', async () => {
        const h = await holder();
        const proc = h === undefined ? undefined : nodes.get(h.pid);
        return proc !== undefined && proc.child.exitCode === null && proc.lines.some(l => l.includes(`leader ${h?.id} `)) ? { holder: h as LeaseHolder, proc } : undefined;
      }),
  };
  for (let i = 0; i < count; i++) node(`node-${i}`);
  return { url, c };
}

/** Every message of the journal stream: its subject, writer and records. */
async function journalMessages(connection: NatsConnection): Promise<Array<{ seq: number; subject: string; writer: string; records: unknown[] }>> {
  const jsm = await jetstreamManager(connection);
  const { state } = await jsm.streams.info('RXSWARM_JOURNAL');
  const out: Array<{ seq: number; subject: string; writer: string; records: unknown[] }> = [];
  for (let seq = state.first_seq; seq <= state.last_seq; seq++) {
    const m = await jsm.streams.getMessage('RXSWARM_JOURNAL', { seq });
    if (m === null) continue;
    const text = new TextDecoder().decode(m.data);
    out.push({ seq, subject: m.subject, writer: m.header.get(WRITER), records: m.subject.endsWith('.records') ? (JSON.parse(text) as unknown[]) : [] });
  }
  return out;
}

function runTask(id: string, n: number, sleepMs: number, url: string): Proc {
  const subtasks = Array.from({ length: n }, (_, i) => ({ id: `s-${i}`, payload: { sleepMs } }));
  const path = join(dir, `${id}.json`);
  writeFileSync(path, JSON.stringify({ id, subtasks }));
  return start('run', path, '--nats', url, '--json');
}

async function exitOf(proc: Proc, ms: number, context: () => string): Promise<number | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([proc.exited, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`did not exit within ${ms} ms; stderr:\n${proc.stderr()}\n${context()}`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

describe('a coordinator cluster on NATS as real processes', () => {
  it(`3 nodes, 6 agent processes, a 300-subtask task, SIGKILL of the leader at ${KILLS} random points: a standby takes the lease within the lease TTL + one detection interval each time, the task completes, every subtask accepted once`, async () => {
    console.log(`natsCluster: seed ${SEED} (RXSWARM_SEED=${SEED} replays the kill points), ${KILLS} kills`);
    const random = createRandom(SEED);
    const log = join(dir, 'executions.log');
    process.env['RXSWARM_EXECUTIONS'] = log; // inherited by the agents: the counting handler logs every execution there
    const executed = (): string[] => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').filter(Boolean) : []);
    const { url, c } = await cluster(3, KILL_TTL);
    const first = await c.leader();
    const AGENTS = 6;
    for (let i = 0; i < AGENTS; i++) start('agent', '--nats', url, '--id', `a-${i}`, '--heartbeat-ms', '250', '--slots', '2', '--handler', countingPath);
    await Promise.all(Array.from({ length: AGENTS }, (_, i) => first.proc.line(new RegExp(`agent a-${i} joined over NATS`))));
    // status --nats: the leader and the standbys (each says it is alive within the TTL)
    const status = await until('status with 2 standbys', async () => {
      const proc = start('status', '--nats', url, '--json');
      if ((await exitOf(proc, WAIT_MS, () => '')) !== 0) return undefined;
      const json = JSON.parse(proc.lines.join('\n')) as { leader: { id: string; host: string; pid: number }; standbys: Array<{ id: string }>; agents: unknown[] };
      return json.standbys.length === 2 ? json : undefined;
    });
    expect(status.leader).toEqual({ id: first.holder.id, host: first.holder.host, pid: first.holder.pid });
    expect(status.standbys.map(s => s.id).sort()).toEqual(['node-0', 'node-1', 'node-2'].filter(id => id !== first.holder.id));
    expect(status.agents).toHaveLength(AGENTS);
    const SUBTASKS = 300;
    const runStarted = Date.now();
    const run = runTask('cluster-kills', SUBTASKS, 100, url); // ~2.5 s of work on 12 slots, without the failovers
    const killed: string[] = [];
    /** Kill → the lease taken by a standby, and → it leading, by the clocks of the test and of that node's log (one machine). */
    const elected: number[] = [];
    const led: number[] = [];
    for (let k = 0; k < KILLS; k++) {
      const { holder, proc } = await c.leader();
      // A random point of the task's progress, in the k-th of KILLS equal stretches of its executions
      // (the agents count them): every kill lands while there is work left, whatever the failovers take.
      const stretch = (SUBTASKS - 30) / KILLS;
      const target = Math.floor(10 + stretch * (k + 0.2 + 0.7 * random.next()));
      await until(`${target} executions`, () => (executed().length >= target || run.child.exitCode !== null ? true : undefined));
      if (run.child.exitCode !== null) break;
      // Each node's lines so far: the new leader's next "elected" and "leader" lines are of this failover.
      const before = new Map([...c.nodes.values()].map(p => [p, { elected: p.lines.filter(l => ELECTED.test(l)).length, led: p.lines.filter(l => LEADS.test(l)).length }] as const));
      const killedAt = Date.now();
      proc.child.kill('SIGKILL');
      killed.push(holder.id);
      c.node(`node-${3 + k}`); // a fresh standby in its place
      const next = await until('a new leader', async () => {
        const h = await c.holder();
        return h !== undefined && h.nonce !== holder.nonce ? h : undefined;
      });
      const nextProc = c.nodes.get(next.pid) as Proc;
      elected.push(printedAt(await nextProc.line(ELECTED, (before.get(nextProc)?.elected ?? 0) + 1)) - killedAt);
      led.push(printedAt(await nextProc.line(LEADS, (before.get(nextProc)?.led ?? 0) + 1)) - killedAt);
    }
    const code = await exitOf(run, 4 * WAIT_MS, () => [...c.nodes.values()].map(p => p.lines.slice(-8).join('\n')).join('\n---\n'));
    expect(code, run.stderr()).toBe(0);
    console.log(`natsCluster: killed ${killed.join(', ')}; lease taken ${elected.join(', ')} ms after the kill (bound ${KILL_TTL + DETECTION_MS} ms), leading (journal read) ${led.join(', ')} ms after; run exited after ${Date.now() - runStarted} ms`);
    expect(killed, 'the task ended before every kill').toHaveLength(KILLS);
    // Each time a standby has the lease within TTL + one detection interval of the kill: the lease
    // ran out at most a TTL after it (the last renewal was before it), and standbys try every TTL / 8.
    for (const t of elected) expect(t).toBeLessThanOrEqual(KILL_TTL + DETECTION_MS);
    const result = JSON.parse(run.lines.join('\n')) as CoordinationResult;
    expect(result.success).toBe(true);
    expect(Object.keys(result.results).sort()).toEqual(Array.from({ length: SUBTASKS }, (_, i) => `s-${i}`).sort());
    for (const [id, value] of Object.entries(result.results)) expect((value as { subtaskId: string }).subtaskId).toBe(id);
    // Read after: every subtask accepted exactly once in the journal, over every leader.
    const messages = await journalMessages(nc as NatsConnection);
    const accepted = new Map<string, number>();
    for (const r of messages.flatMap(m => m.records) as Array<{ type: string; taskId: string; subtaskId: string; attempt: number }>) {
      if (r.type !== 'subtask.accepted' || r.taskId !== 'cluster-kills') continue;
      expect(accepted.has(r.subtaskId), `${r.subtaskId} accepted twice`).toBe(false);
      accepted.set(r.subtaskId, r.attempt);
    }
    expect(accepted.size).toBe(SUBTASKS);
    const writers = new Set(messages.filter(m => m.subject.endsWith('.fence')).map(m => m.writer));
    expect(writers.size).toBeGreaterThanOrEqual(killed.length + 1);
    // The agents' own count: every subtask ran, and none ran again once accepted (an execution's
    // attempt is at most the accepted one: attempts are numbered above every earlier leader's).
    const runs = executed().map(l => l.split(' ') as [string, string]);
    expect(new Set(runs.map(([id]) => id)).size).toBe(SUBTASKS);
    // A backup attempt (a hedge, journaled as `subtask.hedged` before the subtask was accepted)
    // may run above the attempt that won its race: it started before the result was in.
    const records = messages.flatMap(m => m.records) as Array<{ type: string; subtaskId: string; attempt: number; upTo?: number }>;
    const hedgedBeforeAccepted = new Set<string>();
    const acceptedSoFar = new Set<string>();
    for (const r of records) {
      if (r.type === 'subtask.accepted') acceptedSoFar.add(r.subtaskId);
      else if (r.type === 'subtask.hedged' && !acceptedSoFar.has(r.subtaskId)) hedgedBeforeAccepted.add(`${r.subtaskId} ${r.attempt}`);
    }
    expect(runs.filter(([id, attempt]) => Number(attempt) > (accepted.get(id) ?? Infinity) && !hedgedBeforeAccepted.has(`${id} ${attempt}`))).toEqual([]);
    // Every execution is of an attempt under a journaled reservation (tokens are reserved durably
    // before any is sent), and no attempt ran twice: what runs again after a kill runs as a new
    // attempt of the new leader. An assignment is sent in the turn its record is appended, and the
    // append reaches the stream at the end of that turn: a leader killed in between leaves at most
    // what was in flight then unjournaled (its results are refused by token, the work runs again).
    const reserved = Math.max(0, ...records.filter(r => r.type === 'attempts.reserved').map(r => r.upTo ?? 0));
    expect(runs.filter(([, attempt]) => Number(attempt) >= reserved)).toEqual([]);
    const journaled = new Set(records.filter(r => r.type === 'subtask.assigned' || r.type === 'subtask.hedged').map(r => `${r.subtaskId} ${r.attempt}`));
    const unjournaled = runs.map(([id, attempt]) => `${id} ${attempt}`).filter(run => !journaled.has(run));
    expect(unjournaled.length, `unjournaled: ${unjournaled.join(', ')}`).toBeLessThanOrEqual(killed.length * AGENTS * 2);
    const hedges = records.filter(r => r.type === 'subtask.hedged').length;
    expect(new Set(runs.map(([id, attempt]) => `${id} ${attempt}`)).size).toBe(runs.length);
    console.log(`natsCluster: ${runs.length} executions for ${SUBTASKS} subtasks over ${killed.length} kills (${AGENTS * 2} slots could be busy at each), ${hedges} backup attempts (hedges)`);
  }, 180_000);

  it('SIGSTOP of the leader past its TTL, then SIGCONT: it appends and dispatches nothing after it lost the lease', async () => {
    const log = join(dir, 'pause-executions.log');
    process.env['RXSWARM_EXECUTIONS'] = log; // the agents log every execution (subtask, attempt)
    const { url, c } = await cluster(2);
    const first = await c.leader();
    for (let i = 0; i < 2; i++) start('agent', '--nats', url, '--id', `p-${i}`, '--heartbeat-ms', '250', '--slots', '4', '--handler', countingPath);
    await Promise.all([0, 1].map(i => first.proc.line(new RegExp(`agent p-${i} joined over NATS`))));
    const run = runTask('cluster-pause', 150, 200, url); // ~3.8 s of work on 8 slots: most of it after the pause
    await first.proc.line(/protocol/);
    await sleep(500);
    first.proc.child.kill('SIGSTOP');
    const next = await until('another leader', async () => {
      const h = await c.holder();
      return h !== undefined && h.nonce !== first.holder.nonce ? h : undefined;
    });
    await sleep(1500); // the new leader at work
    const linesBefore = first.proc.lines.length;
    first.proc.child.kill('SIGCONT');
    await first.proc.line(/standby .*(validity ran out|came back too late|lease was taken|lost the leader lease|refused a write)/);
    const code = await exitOf(run, 2 * WAIT_MS, () => first.proc.lines.join('\n'));
    expect(code, run.stderr()).toBe(0);
    const result = JSON.parse(run.lines.join('\n')) as CoordinationResult;
    expect(Object.keys(result.results)).toHaveLength(150);
    // After the new leader's fence, nothing in the stream was written by the paused one.
    const messages = await journalMessages(nc as NatsConnection);
    const fence = messages.find(m => m.subject.endsWith('.fence') && m.writer === next.id) as { seq: number };
    expect(fence).toBeDefined();
    expect(messages.filter(m => m.seq > fence.seq && m.writer === first.holder.id)).toEqual([]);
    const after = first.proc.lines.slice(linesBefore);
    console.log(`natsCluster: ${first.holder.id} after SIGCONT (${next.id} leads):\n${after.join('\n')}`);
    // What the resumed node printed: that it stepped down, and nothing else — no engine or task
    // event, no agent joining or leaving (what came in during the pause is not told), no halted
    // coordinator or refused journal write (it closes its service before one could be heard of).
    expect(after.some(l => /standby /.test(l))).toBe(true);
    expect(after.filter(l => !/ standby /.test(l))).toEqual([]);
    const accepted = messages.flatMap(m => m.records).filter(r => (r as { type: string }).type === 'subtask.accepted').map(r => (r as { subtaskId: string }).subtaskId);
    expect(new Set(accepted).size).toBe(accepted.length);
    // Dispatched nothing it could not journal: every execution is of an attempt in the stream
    // (an assignment sent by the woken node, whose appends are refused, would not be).
    const assigned = new Set(messages.flatMap(m => m.records).filter(r => (r as { type: string }).type === 'subtask.assigned').map(r => `${(r as { subtaskId: string }).subtaskId} ${(r as { attempt: number }).attempt}`));
    const runs = readFileSync(log, 'utf8').trim().split('\n').filter(Boolean);
    expect(runs.filter(r => !assigned.has(r))).toEqual([]);
  }, 200_000);
});
