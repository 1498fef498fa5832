import type { SubtaskRow } from '../src/swarmRows.js';
import { expandColumn, LETTER_STATE, STATE_LETTER, unpackIds, unpackIndices, unpackSince, unpackStates, type Column, type SubtaskColumns, type SubtaskTuple } from '../src/swarmWire.js';

const LETTERS = ['p', 'w', 'r', 'd', 'f'] as const;
const CODE: Record<string, number> = { p: 0, w: 1, r: 2, d: 3, f: 4 };
const CODE_OF = new Uint8Array(128);
for (const [letter, code] of Object.entries(CODE)) CODE_OF[letter.charCodeAt(0)] = code;

/**
 * A task's subtask rows as the page keeps them: columns in the task's order, as they came (see
 * `SubtaskColumns` in src/swarmWire.ts), changed in place by the rows of later batches. Rows are
 * made only for the few on screen; the list filters by the state column (a byte a row).
 */
export class SubtaskTable {
  readonly ids: string[];
  /** State code a row (index into `p w r d f`). */
  private state: Uint8Array;
  private readonly agent: number[];
  private readonly agents: string[];
  private readonly agentIndex = new Map<string, number>();
  private readonly attempt: number[];
  private readonly attempts: number[];
  private readonly progress: number[];
  private readonly hedged: number[];
  private readonly since: number[];
  private readonly reason: number[];
  private readonly reasons: string[];
  private readonly reasonIndex = new Map<string, number>();
  /** Changes of each row: what a rendered row compares to skip drawing itself again. */
  private readonly revision: number[];
  /** Row index by id, made at the first row that comes alone (a table only drawn needs none). */
  private index: Map<string, number> | undefined;

  constructor(
    readonly taskId: string,
    c?: SubtaskColumns,
  ) {
    this.ids = c === undefined ? [] : unpackIds(c.ids);
    const n = this.ids.length;
    this.state = new Uint8Array(Math.max(16, n));
    const states = unpackStates(c?.states ?? '');
    for (let i = 0; i < n; i++) this.state[i] = CODE_OF[states.charCodeAt(i) & 127] as number;
    const expand = (col: Column | undefined): number[] => (col === undefined ? [] : expandColumn(col, n));
    this.agent = c === undefined ? [] : unpackIndices(c.agent, n);
    this.agents = (c?.agents as string[] | undefined) ?? [];
    this.agents.forEach((a, i) => this.agentIndex.set(a, i));
    this.attempt = expand(c?.attempt);
    this.attempts = expand(c?.attempts);
    this.progress = expand(c?.progress);
    this.hedged = expand(c?.hedged);
    this.since = c === undefined ? [] : unpackSince(c, n);
    this.reason = expand(c?.reason);
    this.reasons = (c?.reasons as string[] | undefined) ?? [];
    this.reasons.forEach((r, i) => this.reasonIndex.set(r, i));
    this.revision = new Array<number>(n).fill(0);
  }

  get length(): number {
    return this.ids.length;
  }

  /** Sets one row from a batch's tuple (a row not known yet is added at the end). Returns its `since`. */
  set(tuple: SubtaskTuple): number {
    const [id, state, agent, attempt, attempts, progress, hedged, since, reason] = tuple;
    let i = (this.index ??= this.indexIds()).get(id);
    if (i === undefined) {
      i = this.ids.length;
      this.ids.push(id);
      this.index.set(id, i);
      this.revision.push(0);
      if (i >= this.state.length) {
        const grown = new Uint8Array(this.state.length * 2);
        grown.set(this.state);
        this.state = grown;
      }
    }
    this.state[i] = CODE_OF[STATE_LETTER[state].charCodeAt(0)] as number;
    this.agent[i] = agent === null ? -1 : this.intern(this.agents, this.agentIndex, agent);
    this.attempt[i] = attempt ?? -1;
    this.attempts[i] = attempts;
    this.progress[i] = Math.round(progress * 1000);
    this.hedged[i] = hedged;
    this.since[i] = since;
    this.reason[i] = reason === undefined ? -1 : this.intern(this.reasons, this.reasonIndex, reason);
    this.revision[i] = (this.revision[i] ?? 0) + 1;
    return since;
  }

  private indexIds(): Map<string, number> {
    const index = new Map<string, number>();
    for (let i = 0; i < this.ids.length; i++) index.set(this.ids[i] as string, i);
    return index;
  }

  /** Row indices whose state is `state`, in the task's order. */
  select(state: SubtaskRow['state'] | string): Int32Array {
    const n = this.ids.length;
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
      id: this.ids[i] ?? '',
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

  private intern(values: string[], index: Map<string, number>, value: string): number {
    let i = index.get(value);
    if (i === undefined) {
      i = values.length;
      values.push(value);
      index.set(value, i);
    }
    return i;
  }
}
