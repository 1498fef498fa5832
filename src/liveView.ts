import { createLogUpdate } from 'log-update';
import picocolors from 'picocolors';
import { defaultScore } from '../operators/index.js';
import type { CoordinationEvent, CoordinationResult } from './events.js';

type Colors = ReturnType<typeof picocolors.createColors>;

/** Colours for what goes to `stream`: only on a terminal (picocolors alone would also colour under CI, into logs and pipes). */
function colorsFor(stream: NodeJS.WriteStream): Colors {
  return picocolors.createColors(stream.isTTY === true && process.env.NO_COLOR === undefined);
}

const stdoutColors = colorsFor(process.stdout);

type AgentState = 'live' | 'suspected' | 'down' | 'quarantined';

/** What a run showed, counted by the view for its final report. */
export interface ViewTally {
  /** `fault.detected` by kind. */
  readonly faults: Readonly<Record<string, number>>;
  readonly healed: number;
  readonly hedged: number;
  readonly switches: number;
}

interface AgentRow {
  state: AgentState;
  completed: number;
  running: number;
  /** Why it is suspected or down (the detector's words, e.g. its phi). */
  detail: string;
}

export interface LiveViewOptions {
  /** Subtasks of the task, for the progress bar. */
  readonly total: number;
  /** Default `process.stdout`. */
  readonly stream?: NodeJS.WriteStream;
  /** A redrawn view; default: when `stream` is a terminal. Otherwise notable events as plain lines. */
  readonly live?: boolean;
}

/** Most agents listed one per line; the rest are summed up. */
const AGENT_ROWS = 12;
/** Failed subtasks listed in a report; the rest are counted. */
const FAILED_ROWS = 10;
/** Redraws at most this often. */
const FRAME_MS = 100;

/** Rejections a live view remembers, to show each once (the oldest is forgotten first). */
const REMEMBERED_REJECTIONS = 1000;

/**
 * The terminal view of a run: notable events (faults, suspicions, healing, switches, repairs) as
 * lines that stay, and below them a redrawn panel — progress of the subtasks, and every agent with
 * its state and what it has done. Not on a terminal (a pipe, a log file, CI), only the lines are
 * written, and nothing is redrawn.
 */
export class LiveView {
  private readonly stream: NodeJS.WriteStream;
  private readonly pc: Colors;
  private readonly live: boolean;
  private readonly update: ReturnType<typeof createLogUpdate> | undefined;
  private readonly agents = new Map<string, AgentRow>();
  /** Who holds each assigned subtask (two agents while it is hedged), for the agents' running counts. */
  private readonly holders = new Map<string, string[]>();
  private readonly faultKinds = new Map<string, number>();
  /** The task's subtasks, and the children they delegated so far. */
  private total: number;
  private completed = 0;
  private failed = 0;
  private faults = 0;
  private healed = 0;
  private hedged = 0;
  private switches = 0;
  private protocol = '';
  private origin: number | undefined;
  private frame: ReturnType<typeof setTimeout> | undefined;
  /**
   * Results rejected lately, by subtask and attempt: a copy of one already rejected (its agent sent
   * it again before it heard it was received: a slow route) is not news, and is not shown again.
   * The last {@link REMEMBERED_REJECTIONS} only: a rogue agent can make rejections without end.
   */
  private readonly rejected = new Set<string>();

  constructor({ total, stream = process.stdout, live = stream.isTTY === true }: LiveViewOptions) {
    this.total = total;
    this.stream = stream;
    this.pc = colorsFor(stream);
    this.live = live;
    this.update = live ? createLogUpdate(stream) : undefined;
  }

  /** What it has counted so far. */
  get tally(): ViewTally {
    return { faults: Object.fromEntries(this.faultKinds), healed: this.healed, hedged: this.hedged, switches: this.switches };
  }

  /** Takes one event of the run. */
  event(e: CoordinationEvent): void {
    this.origin ??= e.at;
    this.track(e);
    const line = this.repeated(e) ? undefined : describeEvent(e, this.origin, this.pc);
    if (line !== undefined) {
      if (this.update !== undefined) this.update.persist(line);
      else this.stream.write(`${line}\n`);
    }
    this.schedule();
  }

  /** Takes the panel down (the lines stay) before the report is printed. */
  close(): void {
    clearTimeout(this.frame);
    this.frame = undefined;
    this.update?.clear();
  }

  /** A rejection of a result it has shown rejected already (another copy of it). */
  private repeated(e: CoordinationEvent): boolean {
    if (e.type !== 'subtask.rejected') return false;
    const key = `${e.subtaskId}\u0000${e.attempt}\u0000${e.reason}`;
    if (this.rejected.has(key)) return true;
    this.rejected.add(key);
    if (this.rejected.size > REMEMBERED_REJECTIONS) this.rejected.delete(this.rejected.values().next().value as string);
    return false;
  }

  private track(e: CoordinationEvent): void {
    switch (e.type) {
      case 'subtask.delegated':
        this.total++;
        return;
      case 'subtask.hedged':
        this.hedged++;
        this.hold(e.subtaskId, e.agentId, true);
        return;
      case 'agent.joined':
        this.agents.set(e.agentId, { state: 'live', completed: 0, running: 0, detail: '' });
        return;
      case 'agent.suspected':
        return this.set(e.agentId, 'suspected', e.detail);
      case 'agent.down':
        return this.set(e.agentId, 'down', e.reason);
      case 'agent.quarantined':
        return this.set(e.agentId, 'quarantined', e.reason);
      case 'agent.recovered':
        return this.set(e.agentId, 'live', '');
      case 'subtask.assigned':
        return this.hold(e.subtaskId, e.agentId, false);
      case 'subtask.completed': {
        this.completed++;
        this.release(e.subtaskId);
        const row = this.agents.get(e.agentId);
        if (row !== undefined) row.completed++;
        return;
      }
      case 'subtask.requeued':
        return this.release(e.subtaskId);
      case 'subtask.failed':
        this.failed++;
        return this.release(e.subtaskId);
      case 'fault.detected':
        this.faults++;
        this.faultKinds.set(e.kind, (this.faultKinds.get(e.kind) ?? 0) + 1);
        return;
      case 'healing.succeeded':
        this.healed++;
        return;
      case 'protocol.selected':
        this.protocol = e.protocol;
        return;
      case 'protocol.switched':
        this.switches++;
        this.protocol = e.switch.to;
        return;
      default:
        return;
    }
  }

  private set(agentId: string, state: AgentState, detail: string): void {
    const row = this.agents.get(agentId);
    if (row === undefined) return;
    row.state = state;
    row.detail = detail;
  }

  /** `agentId` runs the subtask: instead of whoever ran it before, or beside them (`beside`: a hedge). */
  private hold(subtaskId: string, agentId: string, beside: boolean): void {
    const holders = this.holders.get(subtaskId);
    if (holders?.includes(agentId) === true) return; // a hedge's backup, announced twice
    if (!beside || holders === undefined || holders.length > 1) this.release(subtaskId);
    const held = this.holders.get(subtaskId);
    if (held === undefined) this.holders.set(subtaskId, [agentId]);
    else held.push(agentId);
    const row = this.agents.get(agentId);
    if (row !== undefined) row.running++;
  }

  private release(subtaskId: string): void {
    const holders = this.holders.get(subtaskId);
    if (holders === undefined) return;
    this.holders.delete(subtaskId);
    for (const holder of holders) {
      const row = this.agents.get(holder);
      if (row !== undefined) row.running--;
    }
  }

  private schedule(): void {
    if (this.update === undefined || this.frame !== undefined) return;
    this.frame = setTimeout(() => {
      this.frame = undefined;
      this.update?.(this.render());
    }, FRAME_MS);
    this.frame.unref();
  }

  private render(): string {
    const pc = this.pc;
    const width = 30;
    const done = this.completed + this.failed;
    const filled = this.total === 0 ? width : Math.round((done / this.total) * width);
    const lines = [
      `${pc.green('#'.repeat(filled))}${pc.dim('.'.repeat(width - filled))} ${done}/${this.total} subtasks (${this.failed} failed) · ${this.protocol} · faults ${this.faults} · healed ${this.healed} · hedged ${this.hedged} · switches ${this.switches}`,
    ];
    const rows = [...this.agents.entries()];
    for (const [id, row] of rows.slice(0, AGENT_ROWS)) {
      const state = row.state === 'live' ? pc.green('live     ') : row.state === 'suspected' ? pc.yellow('suspected') : row.state === 'quarantined' ? pc.red('quarantin') : pc.red('down     ');
      lines.push(`  ${id.padEnd(14)} ${state} ${String(row.completed).padStart(5)} done ${String(row.running).padStart(3)} running ${pc.dim(row.detail)}`);
    }
    if (rows.length > AGENT_ROWS) {
      const rest = rows.slice(AGENT_ROWS);
      const count = (s: AgentState): number => rest.filter(([, r]) => r.state === s).length;
      lines.push(pc.dim(`  … ${rest.length} more: ${count('live')} live, ${count('suspected')} suspected, ${count('down')} down`));
    }
    return lines.join('\n');
  }
}

/**
 * One readable line for the events a person watching wants to see, timed from `originMs`;
 * undefined for the rest.
 */
export function describeEvent(e: CoordinationEvent, originMs: number, pc: Colors = stdoutColors): string | undefined {
  const text = eventText(e, pc);
  return text === undefined ? undefined : `${((e.at - originMs) / 1000).toFixed(2).padStart(7)}s  ${text}`;
}

/** `describeEvent` without the time. */
export function eventText(e: CoordinationEvent, pc: Colors = stdoutColors): string | undefined {
  switch (e.type) {
    case 'subtask.hedged':
      return `${pc.yellow('hedge')}     ${e.subtaskId}: backup attempt ${e.attempt} on ${e.agentId} beside attempt ${e.of.attempt} on ${e.of.agentId}, which shows no progress`;
    case 'subtask.delegated':
      return `delegate  ${e.parentId} on ${e.agentId} waits for its child ${e.subtaskId}`;
    case 'protocol.selected':
      return `protocol  ${e.protocol} (${e.reason})`;
    case 'protocol.switched':
      return `${pc.cyan('switch')}    ${e.switch.from} → ${e.switch.to}: ${e.switch.reason}; ${e.inFlight} in flight handed over${scoresText(e.switch.scores, ' [scores: ', ']')}`;
    case 'protocol.repaired':
      return `repair    ${e.repair}`;
    case 'agent.suspected':
      return `${pc.yellow('suspect')}   ${e.agentId}: ${e.detail}`;
    case 'agent.down':
      return `${pc.red('down')}      ${e.agentId}: ${e.reason}`;
    case 'agent.recovered':
      return `${pc.green('back')}      ${e.agentId}`;
    case 'agent.refused':
      return `${pc.red('refused')}   ${e.agentId}: ${e.reason}`;
    case 'agent.quarantined':
      return `${pc.red('quarantine')} ${e.agentId}: ${e.reason}`;
    case 'fault.detected':
      return `${pc.red('fault')}     ${e.kind} (${e.severity})${e.agentId ? ` ${e.agentId}` : ''}: ${e.detail}`;
    case 'healing.succeeded':
    case 'healing.failed':
      return `${(e.type === 'healing.succeeded' ? pc.green : pc.yellow)('heal')}      ${e.strategy} → ${e.ok ? 'ok' : 'no'}: ${e.detail}`;
    case 'consensus.decided':
      return `consensus ${e.proposalId}: ${e.outcome} (${e.yes} yes, ${e.no} no)`;
    case 'subtask.rejected':
      return `${pc.yellow('rejected')}  result of ${e.subtaskId} (attempt ${e.attempt}) from ${e.agentId}: ${e.reason}`;
    case 'subtask.waiting':
      return `${pc.yellow('waiting')}   ${waitingText(e)}`;
    default:
      return undefined;
  }
}

/**
 * "3 subtasks need capability gpu, which no live agent has; they fail in 60 s unless one joins",
 * "no agents connected yet: 50 subtasks wait (they fail in 60 s unless one joins)".
 */
function waitingText(e: Extract<CoordinationEvent, { type: 'subtask.waiting' }>): string {
  const n = e.subtaskIds.length;
  const subtasks = `${n} subtask${n === 1 ? '' : 's'}`;
  const ms = Math.max(0, e.failsAt - e.at);
  const fails = `${n === 1 ? 'it fails' : 'they fail'} in ${ms >= 10_000 ? Math.round(ms / 1000) : Number((ms / 1000).toFixed(1))} s unless one joins`;
  if (e.capabilities.length === 0) return `${e.reason}: ${subtasks} wait${n === 1 ? 's' : ''} (${fails})`;
  const capabilities = `capabilit${e.capabilities.length === 1 ? 'y' : 'ies'} ${e.capabilities.join(', ')}`;
  return `${subtasks} need${n === 1 ? 's' : ''} ${capabilities}, which no live agent has; ${fails}`;
}

/** `hierarchical 0.283, mesh 0.25`: a switch's scores, best first, between `before` and `after`; empty when it has none (a switch healing or an operator asked for). */
export function scoresText(scores: Readonly<Record<string, number>>, before = '', after = ''): string {
  const entries = Object.entries(scores).sort((a, b) => b[1] - a[1]);
  return entries.length === 0 ? '' : `${before}${entries.map(([p, v]) => `${p} ${Number(v.toPrecision(3))}`).join(', ')}${after}`;
}

/** The final report of a run, as lines. */
export function reportLines(result: CoordinationResult, pc: Colors = stdoutColors): string[] {
  const m = result.metrics;
  const lines = [
    `${result.success ? pc.green('done') : pc.red('failed')}: ${m.completed} of ${m.subtasks} subtasks completed, ${m.failed} failed, in ${(m.durationMs / 1000).toFixed(2)} s`,
    `protocol at the end: ${result.protocol}; switches: ${result.switches.map(s => `${s.from}→${s.to}`).join(', ') || 'none'}`,
    ...result.switches.map(s => `  at ${((s.at - m.startedAt) / 1000).toFixed(2)} s ${s.from} → ${s.to}: ${s.reason}${scoresText(s.scores, '; scores: ')}`),
    ...Object.entries(m.performance).map(
      ([protocol, p]) =>
        `  measured under ${protocol}: score ${Number(defaultScore(p).toPrecision(3))} (${p.count} runs, ${Math.round(100 * p.successRate)} % ok, p95 ${(p.p95LatencyMs / 1000).toFixed(2)} s, ${p.messagesPerExecution.toFixed(1)} messages each)`,
    ),
    `assignments: ${m.assignments} for ${m.subtasks} subtasks, stale results rejected: ${m.staleResultsRejected}`,
    `messages: ${m.messages} (${m.messagesPerSubtask.toFixed(1)} per subtask)${(m.tasksAlongside ?? 0) > 0 ? `, with the ${m.tasksAlongside} other task(s) that ran alongside (the network's count; the scores above are theirs too)` : ''}${Object.keys(m.messagesByKind).length === 0 ? '' : `: ${Object.entries(m.messagesByKind).map(([k, n]) => `${k} ${n}`).join(', ')}`}`,
    `healing: ${result.healing.length} attempt(s), ${result.healing.filter(h => h.ok).length} succeeded`,
  ];
  const failed = Object.entries(result.failed);
  for (const [id, reason] of failed.slice(0, FAILED_ROWS)) lines.push(`  failed ${id}: ${reason}`);
  if (failed.length > FAILED_ROWS) lines.push(`  … and ${failed.length - FAILED_ROWS} more`);
  return lines;
}
