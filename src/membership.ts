import type { Subscription } from 'rxjs';
import type { AgentHost } from '../streams/agentHost.js';
import { canRun, type Subtask } from '../streams/task.js';
import type { Attempt } from './taskRun.js';
import { COORDINATOR, type AgentProfile } from './topology.js';

/** `quarantined`: it forged, stalled or never acknowledged; it gets no work and relays nothing for the rest of the run. */
export type AgentStatus = 'live' | 'suspected' | 'down' | 'standby' | 'quarantined';

export interface AgentRecord {
  readonly id: string;
  /** Its position in the run's agent list (and its bit in the free-agent set). */
  readonly index: number;
  readonly capabilities: readonly string[];
  /** Its host, for its slots; none for an agent in another process. */
  readonly host: AgentHost | undefined;
  /** Slots of a remote agent (an in-process one's are its host's). */
  readonly slots: number;
  status: AgentStatus;
  readonly inFlight: Set<Attempt>;
  completed: number;
  failures: number;
  /** Healing in progress for this agent: a second verdict waits for it. */
  healing: boolean;
  /** The host's start count last heard (0: none yet). */
  incarnation: number;
  /** Assignments in a row it did not acknowledge. */
  unacked: number;
  /** Deliveries through it in a row that failed (it relays: an assignment or a result lost). */
  dropped: number;
  /** The agents those failed deliveries were for: one agent alone does not condemn a relay (see `chargeRelays`). */
  readonly droppedFor: Set<string>;
  /** A remote agent's heartbeat targets as last told (in-process hosts read the layout); {@link COORDINATOR_ONLY} at first. */
  told: readonly string[];
  /** Slots granted to a remote agent so far (it earns them by delivering results). */
  granted: number;
  /** Its attempts in a row that timed out. */
  timeouts: number;
  /** A remote agent's process (from its hello): another one under the same id is a restart. */
  instance: string | undefined;
  /** Its status was `live` when the dispatch counts last looked (see `refresh`). */
  wasLive: boolean;
  /** Its connection closed without a leave: the grace timer that declares it down unless it reconnects. */
  closed: Subscription | undefined;
  /**
   * An assignment relayed to it went unacknowledged: the relay or the agent is at fault, and its
   * next assignment goes straight to it to tell which (no answer there either: the agent).
   */
  probeDirect: boolean;
}

/**
 * The team of one engine: a record per agent, and what dispatch asks of it quickly — the live
 * agents with a free slot (a bitset), how many are live, how many of those can run a capability
 * set. Records are added, never removed; their order is the order agents were added. Whoever
 * changes a record's status, work in flight or slots calls `touch`, which keeps the counts true.
 */
/** What an agent beats before it is told otherwise: the coordinator alone. */
export const COORDINATOR_ONLY: readonly string[] = Object.freeze([COORDINATOR]);

/** Whether two target lists are the same (layouts share their lists, so mostly by reference). */
export function sameTargets(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class Membership {
  private readonly byId = new Map<string, AgentRecord>();
  /** The same records in the same order, for the scans of dispatch. */
  readonly list: AgentRecord[] = [];
  /**
   * The live agents with a free slot, one bit each by `index`: dispatch finds candidates among
   * them in agent order at O(agents / 32 + free) rather than scanning every agent per subtask.
   */
  private freeBits = new Uint32Array(4);
  /** Live agents now, and a count bumped whenever one becomes live or stops being. */
  private liveCount = 0;
  private liveCounter = 0;
  /** Capable live agents per capability set, valid while `liveChanges` is `capableAt`. */
  private readonly capable = new Map<string, number>();
  private capableAt = -1;
  /**
   * Bumped whenever an agent's status, in-flight set or slots change: a dispatch pass reuses what
   * it found about free agents only while nothing but its own assignments changed.
   */
  private changes = 0;

  constructor(private readonly maxSlotsPerAgent: number) {}

  /** Bumped by every `touch`. */
  get version(): number {
    return this.changes;
  }

  /** Agents live now. */
  get live(): number {
    return this.liveCount;
  }

  /** Bumped whenever an agent becomes live or stops being. */
  get liveChanges(): number {
    return this.liveCounter;
  }

  get size(): number {
    return this.byId.size;
  }

  get(id: string): AgentRecord | undefined {
    return this.byId.get(id);
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  values(): IterableIterator<AgentRecord> {
    return this.byId.values();
  }

  add(id: string, capabilities: readonly string[], host: AgentHost | undefined, slots: number, status: AgentStatus): AgentRecord {
    const record: AgentRecord = { id, index: this.list.length, capabilities, host, slots, status, inFlight: new Set(), completed: 0, failures: 0, healing: false, incarnation: 0, unacked: 0, dropped: 0, droppedFor: new Set(), told: COORDINATOR_ONLY, granted: 1, timeouts: 0, instance: undefined, wasLive: false, closed: undefined, probeDirect: false };
    this.byId.set(id, record);
    this.list.push(record);
    if (this.list.length > this.freeBits.length * 32) {
      const grown = new Uint32Array(this.freeBits.length * 2);
      grown.set(this.freeBits);
      this.freeBits = grown;
    }
    this.refresh(record);
    return record;
  }

  /** Something about `record` changed (status, work in flight, slots): dispatch looks again. */
  touch(record: AgentRecord | undefined): void {
    this.changes++;
    if (record !== undefined) this.refresh(record);
  }

  /** Keeps the record's bit in the free-agent set and the live count true to its state. */
  private refresh(record: AgentRecord): void {
    const word = record.index >>> 5;
    const bit = 1 << (record.index & 31);
    const wasLive = record.wasLive;
    const live = record.status === 'live';
    if (live !== wasLive) {
      record.wasLive = live;
      this.liveCount += live ? 1 : -1;
      this.liveCounter++;
    }
    const bits = this.freeBits;
    if (live && record.inFlight.size < this.slotsOf(record)) bits[word] = (bits[word] as number) | bit;
    else bits[word] = (bits[word] as number) & ~bit;
  }

  /**
   * The live agents that can run `subtask`, and those of them with a free slot (in agent order);
   * one entry per capability set. The free ones come from the free-agent bits; how many are
   * capable is counted once per change of the live agents.
   */
  candidates(subtask: Subtask, groups: Map<string, Candidates>): Candidates {
    const needed = subtask.capabilities;
    const signature = needed === undefined || needed.length === 0 ? '' : JSON.stringify(needed);
    let group = groups.get(signature);
    if (group === undefined) {
      group = new Candidates();
      group.live = this.liveCount;
      group.capable = signature === '' ? this.liveCount : this.capableOf(signature, subtask);
      const bits = this.freeBits;
      const list = this.list;
      for (let word = 0; word < bits.length; word++) {
        let w = bits[word] as number;
        while (w !== 0) {
          const low = w & -w;
          const record = list[(word << 5) + (31 - Math.clz32(low))] as AgentRecord;
          w ^= low;
          if (signature === '' || canRun(record.capabilities, subtask)) group.add(record);
        }
      }
      groups.set(signature, group);
    }
    return group;
  }

  /** Live agents that can run subtasks of this capability set (counted anew when the live agents change). */
  private capableOf(signature: string, subtask: Subtask): number {
    if (this.capableAt !== this.liveCounter) {
      this.capable.clear();
      this.capableAt = this.liveCounter;
    }
    let n = this.capable.get(signature);
    if (n === undefined) {
      n = 0;
      for (const r of this.list) if (r.status === 'live' && canRun(r.capabilities, subtask)) n++;
      this.capable.set(signature, n);
    }
    return n;
  }

  slotsOf(record: AgentRecord): number {
    return record.host?.slots ?? Math.min(record.slots, record.granted, this.maxSlotsPerAgent);
  }

  capableLive(subtask: Subtask): AgentRecord[] {
    const out: AgentRecord[] = [];
    for (const r of this.byId.values()) if (r.status === 'live' && canRun(r.capabilities, subtask)) out.push(r);
    return out;
  }

  liveIds(): string[] {
    return [...this.byId.values()].filter(r => r.status === 'live').map(r => r.id);
  }

  profile(record: AgentRecord): AgentProfile {
    const runs = record.completed + record.failures;
    return { id: record.id, capabilities: record.capabilities, successRate: runs === 0 ? 1 : record.completed / runs };
  }

  liveProfiles(): AgentProfile[] {
    return [...this.byId.values()].filter(r => r.status === 'live').map(r => this.profile(r));
  }
}

/** Capable agents for one capability set during a dispatch pass: how many, and the free ones in agent order. */
export class Candidates {
  /** Live agents, capable or not. */
  live = 0;
  capable = 0;
  readonly free: AgentRecord[] = [];
  /** Ids of `free`, what the layout picks from. */
  readonly ids: string[] = [];

  add(record: AgentRecord): void {
    this.free.push(record);
    this.ids.push(record.id);
  }

  /** The agent has no free slot left. */
  remove(record: AgentRecord): void {
    const at = this.free.indexOf(record);
    if (at < 0) return;
    this.free.splice(at, 1);
    this.ids.splice(at, 1);
  }
}

/** Whether `a` has every capability of `b` (it can stand in for it). */
export function sameCapabilities(a: AgentRecord, b: AgentRecord): boolean {
  return b.capabilities.every(c => a.capabilities.includes(c));
}
