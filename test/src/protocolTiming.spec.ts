/**
 * Protocol timing in marble diagrams: when each topology notices a crashed member, repairs itself
 * and resends the work that was lost with it, and how a protocol switch hands over work in flight.
 *
 * Every instant is exact and follows from the configuration below: no jitter on heartbeats or
 * links, a deadline detector, work that takes a fixed time. A run's events are mapped to letters
 * (see LETTERS) and compared with a diagram built from those instants.
 */
import { marbles } from 'rxjs-marbles/jest';
import { filter, map, share, take, timer, type OperatorFunction } from 'rxjs';
import type { TestScheduler } from 'rxjs/testing';
import { createCoordinator, type Coordinator, type CoordinatorOptions } from '../../src/coordinator.js';
import type { CoordinationEvent } from '../../src/events.js';
import { hierarchical, ring } from '../../src/topologies/index.js';
import type { TopologyName } from '../../src/topology.js';
import { InMemoryNetwork, type Envelope, type Outgoing } from '../../streams/network.js';
import type { AssignBody } from '../../streams/protocol.js';
import type { InProcessAgent, Subtask } from '../../streams/task.js';

// ---- the configuration every instant follows from ------------------------------------------------

/** One hop on any link. Above 2, so that events a round trip apart do not overlap in a diagram's groups. */
const LATENCY_MS = 5;
/** Beats leave at 0, 100, 200, … (no jitter) and arrive LATENCY_MS later. */
const HEARTBEAT_MS = 100;
/** Deadline detector: suspected exactly at the last beat's arrival + TIMEOUT_MS. */
const TIMEOUT_MS = 300;
/** An agent's work on one subtask, unless its payload says otherwise (`{ workMs }`). */
const WORK_MS = 1000;
/**
 * Star, ring, hierarchical: a suspect is probed this long (`consensusWindowMs`) before it is
 * declared down; a crashed one never answers, so its verdict comes exactly this much after the suspicion.
 */
const PROBE_MS = 50;
/** Between two beats: the crashed agent's last beat left at 200. */
const CRASH_AT = 250;

/** When the detector suspects an agent that crashed at `crashAt`: its last beat's arrival + the timeout. */
function suspectedAt(crashAt: number): number {
  const lastBeatSent = Math.floor(crashAt / HEARTBEAT_MS) * HEARTBEAT_MS;
  return lastBeatSent + LATENCY_MS + TIMEOUT_MS;
}

/** From an assignment to its result's arrival: the assignment travels `hops` hops, the result `back` (as many by default). */
function trip(hops: number, workMs = WORK_MS, back = hops): number {
  return (hops + back) * LATENCY_MS + workMs;
}

/** A star's round trip: out through the hub (`hops`), the result straight back (one hop). */
function starTrip(hops: number): number {
  return trip(hops, WORK_MS, 1);
}

// ---- events as letters -----------------------------------------------------------------------------

/**
 * The events that tell protocol timing, one letter each; the others (joins, healing steps, the
 * fault record that accompanies `agent.down`) are left out. `task.completed` ends the run: `|`.
 */
const LETTERS = {
  S: 'agent.suspected',
  V: 'consensus.decided: accepted',
  T: 'consensus.decided: timeout',
  N: 'consensus.decided: rejected',
  D: 'agent.down',
  R: 'protocol.repaired',
  W: 'protocol.switched',
  r: 'subtask.requeued',
  a: 'subtask.assigned',
  c: 'subtask.completed',
  x: 'subtask.rejected (a stale result)',
  f: 'subtask.failed',
} as const;

type Letter = keyof typeof LETTERS;

function letter(event: CoordinationEvent): Letter | undefined {
  switch (event.type) {
    case 'agent.suspected':
      return 'S';
    case 'consensus.decided':
      return event.outcome === 'accepted' ? 'V' : event.outcome === 'timeout' ? 'T' : 'N';
    case 'agent.down':
      return 'D';
    case 'protocol.repaired':
      return 'R';
    case 'protocol.switched':
      return 'W';
    case 'subtask.requeued':
      return 'r';
    case 'subtask.assigned':
      return 'a';
    case 'subtask.completed':
      return 'c';
    case 'subtask.rejected':
      return 'x';
    case 'subtask.failed':
      return 'f';
    default:
      return undefined;
  }
}

/** A run's events as letters, in order; what has no letter is dropped. */
const letters: OperatorFunction<CoordinationEvent, Letter> = source =>
  source.pipe(
    map(letter),
    filter((l): l is Letter => l !== undefined),
  );

/**
 * A marble diagram from instants, so that expected timings read as the sums they are:
 * `diagram([0, 'aaa'], [505, 'SD'], [1515, 'c|'])` is `'(aaa) 500ms (SD) 1006ms (c|)'`.
 * Entries are taken in time order, letters of one instant joined in the order given, and they
 * form a group: a group of k letters spans k + 2 frames, so the next instant must not come sooner.
 */
function diagram(...entries: ReadonlyArray<readonly [atMs: number, letters: string]>): string {
  const byTime = new Map<number, string>();
  for (const [at, group] of [...entries].sort((a, b) => a[0] - b[0])) byTime.set(at, (byTime.get(at) ?? '') + group);
  const parts: string[] = [];
  let frame = 0;
  for (const [at, group] of byTime) {
    if (at < frame) throw new RangeError(`diagram: "${group}" at ${at} ms overlaps the group before it (free from ${frame} ms)`);
    if (at > frame) parts.push(`${at - frame}ms`);
    const token = group.length === 1 ? group : `(${group})`;
    parts.push(token);
    frame = at + token.length;
  }
  return parts.join(' ');
}

// ---- a run on the marble scheduler -----------------------------------------------------------------

interface Sent {
  readonly at: number;
  readonly from: string;
  readonly to: string;
  readonly kind: string;
  readonly body: unknown;
}

/** The in-memory network, keeping a log of every message sent (relay hops included), with its send time. */
class RecordingNetwork extends InMemoryNetwork {
  readonly log: Sent[] = [];

  override send(message: Outgoing<Envelope>): void {
    this.log.push({ at: this.scheduler.now(), from: message.from, to: message.to, kind: message.kind, body: message.body });
    super.send(message);
  }

  /** Assignments as the coordinator sent them: the first hop and the rest of the route. */
  assignments(): Array<{ at: number; subtaskId: string; attempt: number; path: string[] }> {
    return this.log
      .filter(s => s.kind === 'assign' && s.from === 'coordinator')
      .map(s => {
        const body = s.body as AssignBody;
        return { at: s.at, subtaskId: body.subtask.id, attempt: body.attempt, path: [s.to, ...body.via] };
      });
  }
}

/** A run of a handler: when an agent started work on an attempt. */
interface Start {
  readonly at: number;
  readonly agentId: string;
  readonly subtaskId: string;
  readonly attempt: number;
}

/** An agent whose work is `timer(workMs)` on the marble scheduler; it notes when each run starts. */
function worker(id: string, scheduler: TestScheduler, starts: Start[]): InProcessAgent {
  return {
    id,
    capabilities: [],
    handle: (subtask: Subtask, context) => {
      starts.push({ at: scheduler.now(), agentId: id, subtaskId: subtask.id, attempt: context.attempt });
      return timer((subtask.payload as { workMs?: number } | undefined)?.workMs ?? WORK_MS, scheduler).pipe(map(() => subtask.id));
    },
  };
}

const ids = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

interface Setup {
  readonly coordinator: Coordinator;
  readonly network: RecordingNetwork;
  /** Everything the coordinator emitted, in order (filled while the scheduler flushes). */
  readonly events: CoordinationEvent[];
  /** Every handler run, in order. */
  readonly starts: Start[];
  readonly task: { readonly id: string; readonly subtasks: Subtask[] };
}

/** `agents` agents `agent-0…` and `subtasks` subtasks `s-0…` (or the given ones) on the marble scheduler, every timing exact. */
function setup(
  scheduler: TestScheduler,
  topology: TopologyName | 'adaptive',
  agents: number,
  subtasks: number | Subtask[],
  options: Partial<CoordinatorOptions> = {},
): Setup {
  const network = new RecordingNetwork({ scheduler, latency: { meanMs: LATENCY_MS, jitterMs: 0 } });
  const starts: Start[] = [];
  const coordinator = createCoordinator({
    agents: ids('agent', agents).map(id => worker(id, scheduler, starts)),
    topology,
    scheduler,
    network,
    heartbeat: { intervalMs: HEARTBEAT_MS, jitterMs: 0 },
    detector: { kind: 'deadline', timeoutMs: TIMEOUT_MS },
    ...options,
  });
  const events: CoordinationEvent[] = [];
  coordinator.events$.subscribe(e => events.push(e));
  const list = typeof subtasks === 'number' ? ids('s', subtasks).map(id => ({ id })) : subtasks;
  return { coordinator, network, events, starts, task: { id: 't', subtasks: list } };
}

/** Crashes `agentId`'s host at `atMs` (scheduler time). */
function crashAt(scheduler: TestScheduler, coordinator: Coordinator, agentId: string, atMs: number): void {
  scheduler.schedule(() => coordinator.hosts.get(agentId)!.crash(), atMs);
}

/** How many times each subtask was accepted. */
function completions(events: readonly CoordinationEvent[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const e of events) if (e.type === 'subtask.completed') counts.set(e.subtaskId, (counts.get(e.subtaskId) ?? 0) + 1);
  return counts;
}

function expectEachCompletedOnce(events: readonly CoordinationEvent[], subtaskIds: readonly string[]): void {
  expect(Object.fromEntries(completions(events))).toEqual(Object.fromEntries(subtaskIds.map(id => [id, 1])));
  expect(events.filter(e => e.type === 'subtask.failed' || e.type === 'subtask.rejected')).toEqual([]);
  const end = events.find(e => e.type === 'task.completed');
  expect(end?.type === 'task.completed' && end.result.success).toBe(true);
}

function eventOf<K extends CoordinationEvent['type']>(events: readonly CoordinationEvent[], type: K): Extract<CoordinationEvent, { type: K }> {
  const found = events.find(e => e.type === type);
  if (found === undefined) throw new Error(`no ${type} event`);
  return found as Extract<CoordinationEvent, { type: K }>;
}

// ---- the protocols -----------------------------------------------------------------------------------

describe('protocol timing', () => {
  describe('star', () => {
    // Three agents without coordination capabilities: agent-0 is the hub (ties go to the smaller
    // id), agent-1 and agent-2 are spokes. Round-robin from the hub: s-i goes to agent-i.
    it(
      'replaces a crashed hub by election exactly when the detector suspects it; the work it relayed, acknowledged, runs on (its results come straight back), only its own runs again',
      marbles(m => {
        const { coordinator, network, events, task } = setup(m.scheduler, 'star', 3, 3, { consensusWindowMs: PROBE_MS });
        crashAt(m.scheduler, coordinator, 'agent-0', CRASH_AT);
        const T = suspectedAt(CRASH_AT);
        const D = T + PROBE_MS; // silent to every probe: down // 205 + 300
        const expected = diagram(
          [0, 'aaa'], //                         s-0 to the hub itself, s-1 and s-2 through it
          // No peers' vote in a star: down once silent to the probes; the hub is re-elected; only its own work is
          // requeued: s-1 and s-2 reached their spokes (acknowledged) and answer the coordinator straight.
          [T, 'S'],
          [D, 'DRr'],
          [starTrip(2), 'cac'], //               s-1 and s-2 done as if nothing happened; s-0 takes agent-1's free slot
          [starTrip(2) + trip(1), 'c|'], //      s-0, run by the new hub itself (1 hop)
        );
        m.expect(coordinator.run$(task).pipe(letters)).toBeObservable(expected);
        m.flush();

        expect(eventOf(events, 'protocol.repaired')).toMatchObject({ at: D, failed: 'agent-0', repair: 'hub agent-0 failed: agent-1 elected by 1 votes' });
        // The election costs one vote from the remaining spoke, sent at the repair.
        expect(network.log.filter(s => s.kind === 'election')).toEqual([{ at: D, from: 'agent-2', to: 'agent-1', kind: 'election', body: { failed: 'agent-0' } }]);
        // Nothing is sent again at the repair: the relayed work was already where it runs. The hub's own
        // subtask goes to the new hub once it is free, straight.
        expect(network.assignments().filter(a => a.at === D)).toEqual([]);
        expect(network.assignments().filter(a => a.subtaskId === 's-0').map(a => [a.at, a.path])).toEqual([
          [0, ['agent-0']],
          [starTrip(2), ['agent-1']],
        ]);
        // From the election on, nothing is sent to the dead hub: spokes beat to the new one.
        expect(network.log.filter(s => s.at >= D && s.to === 'agent-0')).toEqual([]);
        expect(network.log.some(s => s.at > D && s.kind === 'heartbeat' && s.from === 'agent-2' && s.to === 'agent-1')).toBe(true);
        expectEachCompletedOnce(events, ['s-0', 's-1', 's-2']);
      }),
    );

    it(
      'drops a crashed spoke at detection without an election: the hub and the other spoke carry on',
      marbles(m => {
        const { coordinator, network, events, task } = setup(m.scheduler, 'star', 3, 3, { consensusWindowMs: PROBE_MS });
        crashAt(m.scheduler, coordinator, 'agent-2', CRASH_AT);
        const T = suspectedAt(CRASH_AT);
        const D = T + PROBE_MS; // silent to every probe: down
        const expected = diagram(
          [0, 'aaa'],
          [T, 'S'],
          [D, 'DRr'], //                         only the spoke's own subtask is requeued
          [starTrip(1), 'ca'], //                     s-0 done on the hub, which takes s-2
          [starTrip(2), 'c'], //                      s-1 never noticed anything
          [starTrip(1) + starTrip(1), 'c|'],
        );
        m.expect(coordinator.run$(task).pipe(letters)).toBeObservable(expected);
        m.flush();

        expect(eventOf(events, 'protocol.repaired')).toMatchObject({ at: D, failed: 'agent-2', repair: 'spoke agent-2 dropped' });
        expect(network.log.filter(s => s.kind === 'election')).toEqual([]);
        expectEachCompletedOnce(events, ['s-0', 's-1', 's-2']);
      }),
    );
  });

  describe('mesh', () => {
    const CONSENSUS_MS = 50;

    it(
      'confirms a crash only through the peers’ vote: suspected at the deadline, down when the vote is won, one round trip later',
      marbles(m => {
        const { coordinator, network, events, task } = setup(m.scheduler, 'mesh', 3, 3, { consensusWindowMs: CONSENSUS_MS });
        crashAt(m.scheduler, coordinator, 'agent-0', CRASH_AT);
        const T = suspectedAt(CRASH_AT);
        const decided = T + 2 * LATENCY_MS; // vote requests out, votes back: both live peers say gone
        const expected = diagram(
          [0, 'aaa'], //                          direct routes: s-i to agent-i
          [T, 'S'], //                            suspected, not yet down: nothing moves
          [decided, 'VDRr'], //                   accepted → down → removed → its work requeued
          [trip(1), 'cac'], //                    s-1 done, s-0 to agent-1; s-2 done
          [trip(1) + trip(1), 'c|'],
        );
        m.expect(coordinator.run$(task).pipe(letters)).toBeObservable(expected);
        m.flush();

        expect(decided - T).toBeLessThanOrEqual(CONSENSUS_MS + 2 * LATENCY_MS);
        expect(eventOf(events, 'consensus.decided')).toMatchObject({ at: decided, outcome: 'accepted', yes: 2, no: 0 });
        expect(network.log.filter(s => s.kind === 'vote-request').map(s => [s.at, s.to])).toEqual([
          [T, 'agent-1'],
          [T, 'agent-2'],
        ]);
        expect(network.log.filter(s => s.kind === 'redistribute').map(s => [s.at, s.to])).toEqual([
          [decided, 'agent-1'],
          [decided, 'agent-2'],
        ]);
        expectEachCompletedOnce(events, ['s-0', 's-1', 's-2']);
      }),
    );

    it(
      'holds the verdict for the whole consensus window when a voter does not answer, then takes the agent down',
      marbles(m => {
        const { coordinator, network, events, task } = setup(m.scheduler, 'mesh', 3, 3, { consensusWindowMs: CONSENSUS_MS });
        crashAt(m.scheduler, coordinator, 'agent-0', CRASH_AT);
        // agent-2 keeps beating and working, but hears nothing from the coordinator from 400 on:
        // its vote never comes, and the quorum (2 of 2) is neither won nor lost.
        m.scheduler.schedule(() => network.setLink('coordinator', 'agent-2', { down: true, oneWay: true }), 400);
        const T = suspectedAt(CRASH_AT);
        const opened = T + 2 * LATENCY_MS; // the window opens at the first vote (agent-1's)
        const decided = opened + CONSENSUS_MS;
        const expected = diagram(
          [0, 'aaa'],
          [T, 'S'],
          [decided, 'TDRr'], //                   no quorum either way: the coordinator cannot hear it, so it is down
          [trip(1), 'cac'],
          [trip(1) + trip(1), 'c|'],
        );
        m.expect(coordinator.run$(task).pipe(letters)).toBeObservable(expected);
        m.flush();

        expect(eventOf(events, 'consensus.decided')).toMatchObject({ at: decided, outcome: 'timeout', yes: 1, no: 0 });
        expectEachCompletedOnce(events, ['s-0', 's-1', 's-2']);
      }),
    );

    it(
      'keeps a suspect its peers still hear: the vote is lost at once, nothing is repaired, and only its stalled work is hedged (progress deadline)',
      marbles(m => {
        const PROGRESS_MS = 5000;
        const { coordinator, events, network, task } = setup(m.scheduler, 'mesh', 3, 3, { consensusWindowMs: CONSENSUS_MS, progressTimeoutMs: PROGRESS_MS });
        // agent-0 → coordinator fails at 250; agent-0 still beats to its peers and still works.
        m.scheduler.schedule(() => network.setLink('agent-0', 'coordinator', { down: true, oneWay: true }), CRASH_AT);
        const T = suspectedAt(CRASH_AT);
        const rejected = T + 2 * LATENCY_MS; // the first "no" makes a 2-of-2 quorum impossible
        const acked = 2 * LATENCY_MS; //       agent-0's acknowledgement of s-0 came back before the cut
        const stalled = acked + PROGRESS_MS;
        const expected = diagram(
          [0, 'aaa'],
          [T, 'S'],
          [rejected, 'N'], //                     no D, no R: the layout keeps agent-0
          [trip(1), 'cc'], //                     s-1, s-2; s-0's result never reaches the coordinator
          [stalled, 'a'], //                      no progress on s-0: a backup attempt on agent-1 (the first stays out)
          [stalled + trip(1), 'c|'],
        );
        m.expect(coordinator.run$(task).pipe(letters)).toBeObservable(expected);
        m.flush();

        expect(events.filter(e => e.type === 'protocol.repaired' || e.type === 'agent.down')).toEqual([]);
        expect(eventOf(events, 'consensus.decided')).toMatchObject({ at: rejected, outcome: 'rejected' });
        expectEachCompletedOnce(events, ['s-0', 's-1', 's-2']);
      }),
    );
  });

  describe('ring', () => {
    // Four agents in id order; work enters at agent-0 and travels successor to successor, so
    // agent-i is i + 1 hops away. s-i goes to agent-i.
    it(
      'splices a crashed member out at detection; work before it carries on, work routed past it is resent on the shorter ring',
      marbles(m => {
        const { coordinator, network, events, task } = setup(m.scheduler, 'ring', 4, 4, { consensusWindowMs: PROBE_MS });
        crashAt(m.scheduler, coordinator, 'agent-1', CRASH_AT);
        const T = suspectedAt(CRASH_AT);
        const D = T + PROBE_MS; // silent to every probe: down
        const expected = diagram(
          [0, 'aaaa'],
          // Down once silent to the probes (no peers' vote); spliced; s-2 and s-3 (their results would come back through
          // agent-1) requeued, then agent-1's own s-1; s-2 and s-3 resent at once by the spliced ring.
          [T, 'S'],
          [D, 'DRrrraa'],
          [trip(1), 'ca'], //                     s-0, before the break, never noticed; agent-0 takes s-1
          [D + trip(2), 'c'], //                  s-2: 3 hops before, 2 now
          [D + trip(3), 'c'], //                  s-3: 4 hops before, 3 now
          [trip(1) + trip(1), 'c|'],
        );
        m.expect(coordinator.run$(task).pipe(letters)).toBeObservable(expected);
        m.flush();

        expect(eventOf(events, 'protocol.repaired')).toMatchObject({ at: D, failed: 'agent-1', repair: 'agent-1 spliced out: agent-0 → agent-2' });
        // The member that watched agent-1 (its successor) links up with agent-1's predecessor.
        expect(network.log.filter(s => s.kind === 'splice')).toEqual([{ at: D, from: 'agent-2', to: 'agent-0', kind: 'splice', body: { failed: 'agent-1' } }]);
        expect(network.assignments().filter(a => a.at === D).map(a => [a.subtaskId, a.path])).toEqual([
          ['s-2', ['agent-0', 'agent-2']],
          ['s-3', ['agent-0', 'agent-2', 'agent-3']],
        ]);
        // s-0's first attempt is the one accepted: the splice did not touch it.
        expect(events.find(e => e.type === 'subtask.completed' && e.subtaskId === 's-0')).toMatchObject({ agentId: 'agent-0', attempt: 1 });
        expectEachCompletedOnce(events, ['s-0', 's-1', 's-2', 's-3']);
      }),
    );
  });

  describe('hierarchical', () => {
    // Nine agents, groups of ceil(√9) = 3: root agent-0 over sub-coordinators agent-1, agent-2,
    // agent-3; agent-1 directs agent-4 and agent-7, agent-2 directs agent-5 and agent-8, agent-3
    // directs agent-6. The turn cycle gives s-i to agent-i.
    it(
      'replaces a crashed sub-coordinator by promoting the best agent it directed, at detection, and resends its group’s work through it',
      marbles(m => {
        const { coordinator, network, events, task } = setup(m.scheduler, 'hierarchical', 9, 9, { consensusWindowMs: PROBE_MS });
        crashAt(m.scheduler, coordinator, 'agent-1', CRASH_AT);
        const T = suspectedAt(CRASH_AT);
        const D = T + PROBE_MS; // silent to every probe: down
        const expected = diagram(
          [0, 'aaaaaaaaa'],
          // Down, promotion, the group's work (s-4, s-7) requeued then agent-1's own (s-1); s-4 and
          // s-7 resent at once under agent-4, now the group's sub-coordinator.
          [T, 'S'],
          [D, 'DRrrraa'],
          [trip(1), 'ca'], //                     root's s-0; the root takes s-1
          [trip(2), 'cc'], //                     s-2, s-3 on the other sub-coordinators
          [trip(3), 'ccc'], //                    s-5, s-6, s-8 in the untouched groups
          [D + trip(2), 'c'], //                  s-4 on agent-4 (root → agent-4)
          [D + trip(3), 'c'], //                  s-7 (root → agent-4 → agent-7)
          [trip(1) + trip(1), 'c|'],
        );
        m.expect(coordinator.run$(task).pipe(letters)).toBeObservable(expected);
        m.flush();

        expect(eventOf(events, 'protocol.repaired')).toMatchObject({ at: D, failed: 'agent-1', repair: 'sub-coordinator agent-1 failed: agent-4 promoted to sub-coordinator' });
        expect(network.log.filter(s => s.kind === 'promotion')).toEqual([{ at: D, from: 'agent-4', to: 'agent-7', kind: 'promotion', body: { failed: 'agent-1' } }]);
        expect(network.assignments().filter(a => a.at === D).map(a => [a.subtaskId, a.path])).toEqual([
          ['s-4', ['agent-0', 'agent-4']],
          ['s-7', ['agent-0', 'agent-4', 'agent-7']],
        ]);
        expectEachCompletedOnce(events, ids('s', 9));
      }),
    );

    it(
      'replaces a crashed root by promotion, cascading down the tree, at detection',
      marbles(m => {
        const { coordinator, network, events, task } = setup(m.scheduler, 'hierarchical', 9, 9, { consensusWindowMs: PROBE_MS });
        crashAt(m.scheduler, coordinator, 'agent-0', CRASH_AT);
        const T = suspectedAt(CRASH_AT);
        const D = T + PROBE_MS; // silent to every probe: down
        // Everything but the root's own work went through the root: all eight relayed subtasks are
        // requeued at T, then the root's own, and the eight go out again at once by the new tree.
        // (The diagram stops there: `take` ends it with the last of those letters, while a second
        // subscriber, scheduled after the diagram's, keeps the run going to its end.)
        const upToResend = 'DR' + 'r'.repeat(9) + 'a'.repeat(8);
        const expected = diagram([0, 'a'.repeat(9)], [T, 'S'], [D, `${upToResend}|`]);
        const run$ = coordinator.run$(task).pipe(share());
        m.expect(run$.pipe(letters, take(9 + 1 + upToResend.length))).toBeObservable(expected);
        m.scheduler.schedule(() => run$.subscribe(), 0);
        m.flush();

        expect(eventOf(events, 'protocol.repaired')).toMatchObject({
          at: D,
          failed: 'agent-0',
          repair: 'root agent-0 failed: agent-1 promoted to root, agent-4 promoted to sub-coordinator',
        });
        // The new root directs the old sub-coordinators and agent-4; agent-4 directs agent-7.
        expect(network.log.filter(s => s.kind === 'promotion').map(s => [s.at, s.from, s.to])).toEqual([
          [D, 'agent-1', 'agent-4'],
          [D, 'agent-1', 'agent-2'],
          [D, 'agent-1', 'agent-3'],
          [D, 'agent-4', 'agent-7'],
        ]);
        // Nothing is routed through the old root once it is replaced.
        expect(network.assignments().filter(a => a.at >= D).every(a => !a.path.includes('agent-0'))).toBe(true);
        expectEachCompletedOnce(events, ids('s', 9));
      }),
    );
  });

  describe('adaptive', () => {
    // Six agents, medium complexity and coordination: the decision matrix starts a ring. Slow work
    // makes the ring's measured score (default score: p95 ≈ 3 s, 7 messages per execution ≈ 0.15)
    // trail the prior of the protocols it has not measured (0.25) by more than the switch threshold,
    // so the first evaluation switches, to hierarchical (the first candidate; the priors tie).
    // Each agent runs one subtask at a time: s-0…s-5 start at once (s-i on agent-i, i + 1 hops
    // round the ring), s-6…s-11 as slots free up, still on the ring; s-12…s-17 (fast) after the
    // switch, on the tree. The run ends before the second evaluation.
    const SLOW_MS = 3000;
    const FAST_MS = 500;
    const EVALUATE_MS = 4000;
    const AGENTS = ids('agent', 6);
    const profiles = AGENTS.map(id => ({ id, capabilities: [], successRate: 1 }));
    const ringHops = (agentId: string): number => ring.layout(profiles).route(agentId).length + 1;
    const treePath = (agentId: string): string[] => [...hierarchical.layout(profiles).route(agentId), agentId];
    const subtasks = (): Subtask[] =>
      ids('s', 18).map((id, i) => ({ id, payload: { workMs: i < 12 ? SLOW_MS : FAST_MS } }));
    const adaptiveRun = (scheduler: TestScheduler): Setup =>
      setup(scheduler, 'adaptive', AGENTS.length, subtasks(), {
        adaptive: { evaluateEveryMs: EVALUATE_MS, minDwellMs: EVALUATE_MS, switchThreshold: 0.3 },
      });

    it(
      'switches at the evaluation tick and hands over the work in flight: none lost, none run twice, old work returns by its old routes, new work takes the new ones',
      marbles(m => {
        const { coordinator, network, events, task } = adaptiveRun(m.scheduler);
        const entries: Array<readonly [number, string]> = [[0, 'aaaaaa'], [EVALUATE_MS, 'W']];
        AGENTS.forEach((agentId, i) => {
          const first = trip(ringHops(agentId), SLOW_MS); //   s-i done; s-(6+i) goes out on the ring
          const second = first + trip(ringHops(agentId), SLOW_MS); // s-(6+i) done, after the switch; s-(12+i) out on the tree
          const third = second + trip(treePath(agentId).length, FAST_MS);
          entries.push([first, 'ca'], [second, 'ca'], [third, i === AGENTS.length - 1 ? 'c|' : 'c']);
        });
        expect(Math.max(...entries.map(([at]) => at))).toBeLessThan(2 * EVALUATE_MS); // one evaluation that matters
        m.expect(coordinator.run$(task).pipe(letters)).toBeObservable(diagram(...entries));
        m.flush();

        const switched = eventOf(events, 'protocol.switched');
        expect(switched).toMatchObject({ at: EVALUATE_MS, switch: { from: 'ring', to: 'hierarchical', at: EVALUATE_MS }, inFlight: AGENTS.length });
        expectEachCompletedOnce(events, ids('s', 18));
        // Handed over, not restarted: every subtask was assigned once.
        const assigned = events.flatMap(e => (e.type === 'subtask.assigned' ? [e.subtaskId] : []));
        expect(new Set(assigned).size).toBe(assigned.length);
        expect(events.filter(e => e.type === 'subtask.requeued')).toEqual([]);
        // The work in flight at the switch came back along the ring, hop by hop.
        const resultHops = (subtaskId: string): number => network.log.filter(s => s.kind === 'result' && (s.body as { subtaskId: string }).subtaskId === subtaskId).length;
        expect(AGENTS.map((_, i) => resultHops(`s-${6 + i}`))).toEqual(AGENTS.map(ringHops)); // 1, 2, … 6
        // Work dispatched after the switch took the tree's routes.
        const after = network.assignments().filter(a => a.at > EVALUATE_MS);
        expect(after.map(a => [a.subtaskId, a.path])).toEqual(AGENTS.map((agentId, i) => [`s-${12 + i}`, treePath(agentId)]));
      }),
    );

    // Regression: executions once counted for the protocol in force when their result arrived, in
    // one window shared by all protocols; s-6…s-11 ran on the ring and must count for it.
    it(
      'measures each execution under the protocol that routed it (metrics.performance by protocol)',
      marbles(m => {
        const { coordinator, events, task } = adaptiveRun(m.scheduler);
        // The same run as above (whose timing the previous test checks), driven to its end.
        m.scheduler.schedule(() => coordinator.run$(task).subscribe(), 0);
        m.flush();
        const end = eventOf(events, 'task.completed');
        const { performance } = end.result.metrics;
        const treeMessages = AGENTS.reduce((sum, agentId) => sum + 2 * treePath(agentId).length, 0) / AGENTS.length;
        expect(performance['ring']).toMatchObject({ count: 12 });
        expect(performance['hierarchical']).toMatchObject({ count: 6, messagesPerExecution: treeMessages });
      }),
    );
  });

  // Regressions found by these scenarios: the timing the engine keeps for requeued work.
  describe('requeued work', () => {
    it(
      'starts work sent to an agent when it arrives, not after an attempt of that agent that the coordinator has already written off',
      marbles(m => {
        // Star, hub agent-0 crashes: the spokes' runs of s-1…s-3 can no longer report back, so the
        // coordinator cancels them by the new routes; s-4…s-6 sent at T must start on arrival,
        // not wait behind the written-off runs.
        const { coordinator, events, starts, task } = setup(m.scheduler, 'star', 4, 8);
        crashAt(m.scheduler, coordinator, 'agent-0', CRASH_AT);
        m.scheduler.schedule(() => coordinator.run$(task).subscribe(), 0);
        m.flush();
        const T = suspectedAt(CRASH_AT);
        const late = events.flatMap(e => {
          if (e.type !== 'subtask.assigned' || e.at < T) return [];
          const started = starts.find(st => st.subtaskId === e.subtaskId && st.attempt === e.attempt)?.at;
          const arrives = e.at + e.hops * LATENCY_MS;
          return started === arrives ? [] : [{ subtask: e.subtaskId, agent: e.agentId, arrives, started }];
        });
        expect(late).toEqual([]); // today: s-4, s-5, s-6 arrive at T + 1 or 2 hops and start at 1010
      }),
    );

    it(
      'gives a requeued subtask its priority back: it goes out at the first free slot, before lower-priority work',
      marbles(m => {
        // Mesh: the urgent subtask is dispatched first, to agent-0, which crashes. Requeued, it is
        // appended behind every waiting low-priority subtask and runs last (at ~4 s instead of trip(1)).
        const subtasks: Subtask[] = [{ id: 'low-0' }, { id: 'low-1' }, { id: 'urgent', priority: 10 }, ...ids('low', 8).slice(2).map(id => ({ id }))];
        const { coordinator, events, task } = setup(m.scheduler, 'mesh', 3, subtasks, { consensusWindowMs: 50 });
        crashAt(m.scheduler, coordinator, 'agent-0', CRASH_AT);
        m.scheduler.schedule(() => coordinator.run$(task).subscribe(), 0);
        m.flush();
        const down = eventOf(events, 'agent.down').at;
        const next = events.find(e => e.type === 'subtask.assigned' && e.at > down);
        expect(next).toMatchObject({ subtaskId: 'urgent', at: trip(1) });
      }),
    );
  });
});
