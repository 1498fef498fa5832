import type { SubtaskRow } from '../src/swarmRows.js';
import { INDEX_DIGIT, LETTER_STATE, STATE_LETTER, intern, type Column, type IdRuns, type SubtaskColumns, type SubtaskTuple } from '../src/swarmWire.js';

const LETTERS = ['p', 'w', 'r', 'd', 'f'] as const;
const CODE: Record<string, number> = { p: 0, w: 1, r: 2, d: 3, f: 4 };
const CODE_OF = new Uint8Array(128);
for (const [letter, code] of Object.entries(CODE)) CODE_OF[letter.charCodeAt(0)] = code;

type Numbers = Int32Array | Float64Array | Uint8Array;

/** `c` (see {@link Column}) into `out[0..n)`, without an array in between. */
function fill(out: Numbers, c: Column, n: number): void {
  if (typeof c === 'number') out.fill(c, 0, n);
  else if ('runs' in c) {
    const runs = c.runs;
    let i = 0;
    for (let k = 0; k + 1 < runs.length && i < n; k += 2) {
      const end = Math.min(n, i + (runs[k + 1] as number));
      out.fill(runs[k] as number, i, end);
      i = end;
    }
  } else {
    const values = c as readonly number[];
    for (let i = 0; i < n; i++) out[i] = values[i] as number;
  }
}

/** Where a numbered run of ids starts, for finding a row by id without a map of every id. */
interface Run {
  readonly prefix: string;
  readonly first: number;
  readonly count: number;
  /** Index of its first row. */
  readonly at: number;
}

/**
 * A task's subtask rows as the page keeps them: columns in the task's order, as they came (see
 * `SubtaskColumns` in src/swarmWire.ts), changed in place by the rows of later batches. Rows are
 * made only for the few on screen; the list filters by the state column (a byte a row).
 *
 * Made from a first frame at once: the columns are decoded straight into typed arrays (no array
 * of 50,000 numbers in between), and the ids stay numbered runs — an id is made when its row is
 * drawn, and a row is found by its id from its run (its number less the run's first), so the
 * first batch of changed rows builds no map of 50,000 ids either.
 */
export class SubtaskTable {
  private n: number;
  /** Ids as they came, in runs; `runIndex` finds a run's rows, `named` the rows not in a run. */
  private readonly runs: Run[] = [];
  /** Run starts in row order (binary search from a row to its run). */
  private readonly runAt: number[] = [];
  /** Runs by prefix (usually one prefix: `s-`). */
  private readonly byPrefix = new Map<string, Run[]>();
  /** Ids not in a numbered run (and rows added later), by id; `nameOf` the reverse. */
  private readonly named = new Map<string, number>();
  private readonly nameOf = new Map<number, string>();
  /** State code a row (index into `p w r d f`). */
  private state: Uint8Array;
  private agent: Int32Array;
  private readonly agents: string[];
  private readonly agentIndex = new Map<string, number>();
  private attempt: Int32Array;
  private attempts: Int32Array;
  /** Thousandths. */
  private progress: Int32Array;
  private hedged: Uint8Array;
  private since: Float64Array;
  private reason: Int32Array;
  private readonly reasons: string[];
  private readonly reasonIndex = new Map<string, number>();
  /** Changes of each row: what a rendered row compares to skip drawing itself again. */
  private revision: Int32Array;

  constructor(
    readonly taskId: string,
    c?: SubtaskColumns,
  ) {
    const n = c === undefined ? 0 : this.takeIds(c.ids);
    this.n = n;
    const room = Math.max(16, n);
    this.state = new Uint8Array(room);
    this.agent = new Int32Array(room);
    this.attempt = new Int32Array(room);
    this.attempts = new Int32Array(room);
    this.progress = new Int32Array(room);
    this.hedged = new Uint8Array(room);
    this.since = new Float64Array(room);
    this.reason = new Int32Array(room);
    this.revision = new Int32Array(room);
    this.agents = (c?.agents as string[] | undefined)?.slice() ?? [];
    this.agents.forEach((a, i) => this.agentIndex.set(a, i));
    this.reasons = (c?.reasons as string[] | undefined)?.slice() ?? [];
    this.reasons.forEach((r, i) => this.reasonIndex.set(r, i));
    if (c === undefined) return;
    this.takeStates(c.states, n);
    this.takeIndices(c.agent, n);
    fill(this.attempt, c.attempt, n);
    fill(this.attempts, c.attempts, n);
    fill(this.progress, c.progress, n);
    fill(this.hedged, c.hedged, n);
    fill(this.reason, c.reason, n);
    // Steps from the row before into times: a running sum from `sinceBase`.
    fill(this.since, c.since, n);
    let t = c.sinceBase;
    for (let i = 0; i < n; i++) this.since[i] = t += this.since[i] as number;
  }

  get length(): number {
    return this.n;
  }

  /** The id of row `i` (made now: ids in runs are not kept as strings). */
  idAt(i: number): string {
    const name = this.nameOf.get(i);
    if (name !== undefined) return name;
    // The last run starting at or before i.
    let lo = 0;
    let hi = this.runAt.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.runAt[mid] as number) <= i) lo = mid;
      else hi = mid - 1;
    }
    const run = this.runs[lo];
    return run === undefined ? '' : `${run.prefix}${run.first + i - run.at}`;
  }

  /** The row of `id`, or undefined. */
  indexOf(id: string): number | undefined {
    const named = this.named.get(id);
    if (named !== undefined || this.runs.length === 0) return named;
    // As packIds reads a numbered id: decimal digits at the end, no leading zero, at most 15.
    let j = id.length;
    while (j > 0 && id.charCodeAt(j - 1) >= 48 && id.charCodeAt(j - 1) <= 57) j--;
    const digits = id.length - j;
    if (digits === 0 || digits > 15 || (digits > 1 && id.charCodeAt(j) === 48)) return undefined;
    const number = Number(id.slice(j));
    for (const run of this.byPrefix.get(id.slice(0, j)) ?? []) if (number >= run.first && number < run.first + run.count) return run.at + number - run.first;
    return undefined;
  }

  /** Sets one row from a batch's tuple (a row not known yet is added at the end). Returns its `since`. */
  set(tuple: SubtaskTuple): number {
    const [id, state, agent, attempt, attempts, progress, hedged, since, reason] = tuple;
    let i = this.indexOf(id);
    if (i === undefined) {
      i = this.n++;
      this.named.set(id, i);
      this.nameOf.set(i, id);
      if (i >= this.state.length) this.grow();
    }
    this.state[i] = CODE_OF[STATE_LETTER[state].charCodeAt(0)] as number;
    this.agent[i] = agent === null ? -1 : intern(this.agents, this.agentIndex, agent);
    this.attempt[i] = attempt ?? -1;
    this.attempts[i] = attempts;
    this.progress[i] = Math.round(progress * 1000);
    this.hedged[i] = hedged;
    this.since[i] = since;
    this.reason[i] = reason === undefined ? -1 : intern(this.reasons, this.reasonIndex, reason);
    this.revision[i] = (this.revision[i] as number) + 1;
    return since;
  }

  /** Row indices whose state is `state`, in the task's order. */
  select(state: SubtaskRow['state'] | string): Int32Array {
    const n = this.n;
    const code = CODE[STATE_LETTER[state as SubtaskRow['state']] ?? ''] ?? -1;
    let count = 0;
    for (let i = 0; i < n; i++) if (this.state[i] === code) count++;
    const out = new Int32Array(count);
    for (let i = 0, k = 0; i < n; i++) if (this.state[i] === code) out[k++] = i;
    return out;
  }

  revisionOf(i: number): number {
    return this.revision[i] ?? 0;
  }

  row(i: number): SubtaskRow {
    const agent = this.agent[i] ?? -1;
    const attempt = this.attempt[i] ?? -1;
    const reason = this.reason[i] ?? -1;
    const row: SubtaskRow = {
      id: this.idAt(i),
      taskId: this.taskId,
      state: LETTER_STATE[LETTERS[this.state[i] ?? 0] ?? 'p'] ?? 'pending',
      agent: agent < 0 ? null : (this.agents[agent] ?? null),
      attempt: attempt < 0 ? null : attempt,
      attempts: this.attempts[i] ?? 0,
      progress: (this.progress[i] ?? 0) / 1000,
      hedged: this.hedged[i] === 1,
      since: this.since[i] ?? 0,
    };
    return reason < 0 ? row : { ...row, reason: this.reasons[reason] ?? '' };
  }

  /** Numbered runs kept as runs, other ids by name. Returns how many rows. */
  private takeIds(ids: IdRuns): number {
    let n = 0;
    for (const r of ids) {
      if (typeof r === 'string') {
        this.named.set(r, n);
        this.nameOf.set(n, r);
        n++;
        continue;
      }
      const run: Run = { prefix: r[0], first: r[1], count: r[2], at: n };
      this.runs.push(run);
      this.runAt.push(n);
      let same = this.byPrefix.get(run.prefix);
      if (same === undefined) this.byPrefix.set(run.prefix, (same = []));
      same.push(run);
      n += r[2];
    }
    return n;
  }

  /** States as they travel (`d49000r800p200`: runs folded) into codes, with no string of 50,000 letters between. */
  private takeStates(packed: string, n: number): void {
    let i = 0;
    for (let k = 0; k < packed.length && i < n; ) {
      const code = CODE_OF[packed.charCodeAt(k) & 127] as number;
      let j = k + 1;
      let count = 0;
      while (j < packed.length && packed.charCodeAt(j) >= 48 && packed.charCodeAt(j) <= 57) count = count * 10 + packed.charCodeAt(j++) - 48;
      const end = Math.min(n, i + (j > k + 1 ? count : 1));
      this.state.fill(code, i, end);
      i = end;
      k = j;
    }
  }

  /** The agent column (fixed-width base-64 indices, see `packIndices`) into the typed column. */
  private takeIndices(packed: string, n: number): void {
    const width = n === 0 ? 1 : packed.length / n;
    for (let i = 0, p = 0; i < n; i++) {
      let x = 0;
      for (let k = 0; k < width; k++) x = x * 64 + (INDEX_DIGIT[packed.charCodeAt(p++) & 127] as number);
      this.agent[i] = x - 1;
    }
  }

  private grow(): void {
    const room = this.state.length * 2;
    const grown = <T extends Numbers>(a: T, make: (n: number) => T): T => {
      const b = make(room);
      b.set(a as never);
      return b;
    };
    this.state = grown(this.state, k => new Uint8Array(k));
    this.agent = grown(this.agent, k => new Int32Array(k));
    this.attempt = grown(this.attempt, k => new Int32Array(k));
    this.attempts = grown(this.attempts, k => new Int32Array(k));
    this.progress = grown(this.progress, k => new Int32Array(k));
    this.hedged = grown(this.hedged, k => new Uint8Array(k));
    this.since = grown(this.since, k => new Float64Array(k));
    this.reason = grown(this.reason, k => new Int32Array(k));
    this.revision = grown(this.revision, k => new Int32Array(k));
  }
}
