import type { SubtaskRow } from './swarmRows.js';
import { column, intern, packIndices, STATE_LETTER, type IdRuns, type SubtaskColumns } from './swarmWire.js';

const STATE_CODE: Readonly<Record<SubtaskRow['state'], number>> = { pending: 0, waiting: 1, running: 2, done: 3, failed: 4 };
/** The wire's letter of each state code. */
const CODE_LETTER: string[] = [];
for (const [state, code] of Object.entries(STATE_CODE)) CODE_LETTER[code] = STATE_LETTER[state as SubtaskRow['state']];

/** What a row shows of a subtask (a `SubtaskEntry` of the view): a row without its ids, its reason always present (maybe undefined). */
export type RowFields = Omit<SubtaskRow, 'id' | 'taskId' | 'reason'> & { readonly reason: string | undefined };

/**
 * A task's subtask rows kept as typed columns, one slot a row, written when a row changes: what a
 * page opening now gets is encoded from them (a few tight loops over typed arrays) instead of
 * gathered from 50,000 entries on demand, while the coordinator runs the task. Ids never change:
 * they are folded into runs once, when the task is queued; a child a subtask delegates is a row
 * appended (`append`), its id added as itself.
 *
 * @example
 * const rows = new TaskColumns('t', packIds(ids), ids.length, now);
 * rows.write(3, entry); // at every change of row 3
 * rows.encode();        // SubtaskColumns: the wire form of every row now
 */
export class TaskColumns {
  private state: Uint8Array;
  private agent: Int32Array;
  private attempt: Int32Array;
  private attempts: Int32Array;
  /** Thousandths. */
  private progress: Int32Array;
  private hedged: Uint8Array;
  private since: Float64Array;
  private reason: Int32Array;
  /** The rows' ids, folded (see `packIds`), children appended as themselves. */
  private readonly idRuns: Array<IdRuns[number]>;
  /** Rows (the columns may hold room for more). */
  private rowCount: number;
  /** Agents and reasons ever named by a row of the task, in the order first named (few: the agents of the swarm). */
  private readonly agents: string[] = [];
  private readonly agentIndex = new Map<string, number>();
  private readonly reasons: string[] = [];
  private readonly reasonIndex = new Map<string, number>();

  constructor(
    readonly taskId: string,
    /** The rows' ids, folded (see `packIds`). */
    ids: IdRuns,
    length: number,
    /** When the rows were made (every row's `since` until it changes). */
    at: number,
  ) {
    this.idRuns = [...ids];
    this.rowCount = length;
    this.state = new Uint8Array(length);
    this.agent = new Int32Array(length).fill(-1);
    this.attempt = new Int32Array(length).fill(-1);
    this.attempts = new Int32Array(length);
    this.progress = new Int32Array(length);
    this.hedged = new Uint8Array(length);
    this.since = new Float64Array(length).fill(at);
    this.reason = new Int32Array(length).fill(-1);
  }

  /** The rows' ids, folded. */
  get ids(): IdRuns {
    return this.idRuns;
  }

  get length(): number {
    return this.rowCount;
  }

  /** A row more at the end (a child a subtask delegated), pending since `at`: its index. */
  append(id: string, at: number): number {
    const i = this.rowCount++;
    this.idRuns.push(id);
    if (i >= this.state.length) {
      // Room doubles: a task's children cost amortised O(1) each.
      const room = Math.max(8, 2 * this.state.length);
      const grown = <T extends Uint8Array | Int32Array | Float64Array>(a: T, make: (n: number) => T, fill: number): T => {
        const b = make(room);
        b.set(a);
        b.fill(fill, a.length);
        return b;
      };
      this.state = grown(this.state, n => new Uint8Array(n), 0);
      this.agent = grown(this.agent, n => new Int32Array(n), -1);
      this.attempt = grown(this.attempt, n => new Int32Array(n), -1);
      this.attempts = grown(this.attempts, n => new Int32Array(n), 0);
      this.progress = grown(this.progress, n => new Int32Array(n), 0);
      this.hedged = grown(this.hedged, n => new Uint8Array(n), 0);
      this.since = grown(this.since, n => new Float64Array(n), at);
      this.reason = grown(this.reason, n => new Int32Array(n), -1);
    }
    this.since[i] = at;
    return i;
  }

  /** Row `i` now shows `s`. */
  write(i: number, s: RowFields): void {
    this.state[i] = STATE_CODE[s.state];
    this.agent[i] = s.agent === null ? -1 : intern(this.agents, this.agentIndex, s.agent);
    this.attempt[i] = s.attempt ?? -1;
    this.attempts[i] = s.attempts;
    this.progress[i] = s.state === 'done' ? 1000 : Math.round(s.progress * 1000);
    this.hedged[i] = s.hedged ? 1 : 0;
    this.since[i] = s.since;
    this.reason[i] = s.reason === undefined ? -1 : intern(this.reasons, this.reasonIndex, s.reason);
  }

  /** Every row as the wire's columns (see {@link SubtaskColumns}). */
  encode(): SubtaskColumns {
    const n = this.rowCount;
    const rows = <T extends Uint8Array | Int32Array>(a: T): T => (a.length === n ? a : (a.subarray(0, n) as T));
    const base = n === 0 ? 0 : (this.since[0] as number);
    const steps = new Float64Array(n);
    for (let i = 0, previous = base; i < n; i++) {
      const t = this.since[i] as number;
      steps[i] = t - previous;
      previous = t;
    }
    return {
      taskId: this.taskId,
      ids: this.idRuns.slice(),
      states: this.packedStates(),
      agents: this.agents.slice(),
      agent: packIndices(rows(this.agent), this.agents.length - 1),
      attempt: column(rows(this.attempt)),
      attempts: column(rows(this.attempts)),
      progress: column(rows(this.progress)),
      hedged: column(rows(this.hedged)),
      sinceBase: base,
      since: column(steps),
      reasons: this.reasons.slice(),
      reason: column(rows(this.reason)),
    };
  }

  /** State letters with runs folded (`d49000r800p200`), straight from the codes. */
  private packedStates(): string {
    const parts: string[] = [];
    const n = this.rowCount;
    for (let i = 0; i < n; ) {
      const code = this.state[i] as number;
      let j = i + 1;
      while (j < n && this.state[j] === code) j++;
      const letter = CODE_LETTER[code] as string;
      parts.push(j - i > 1 ? `${letter}${j - i}` : letter);
      i = j;
    }
    return parts.join('');
  }
}

