/**
 * The compact fault syntax of the command line's `--faults` flag, and readable descriptions of faults.
 */
import { FAULT_KINDS, faultProblem, show, validateFaults, type Fault } from './faults.js';

/** Characters with a meaning in a fault spec; agent ids written in one must avoid them. */
const RESERVED = /[\s,:@+/]/;

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

class SpecError extends Error {}

function parseNumber(text: string, what: string, example: string): number {
  if (!/^(\d+\.?\d*|\.\d+)$/.test(text)) throw new SpecError(`bad ${what} ${show(text)} (e.g. ${example})`);
  return Number(text);
}

/** A fraction, or a percentage (`10%`). */
function parseRate(text: string, what: string, example: string): number {
  return text.endsWith('%') ? Number((parseNumber(text.slice(0, -1), what, example) / 100).toPrecision(15)) : parseNumber(text, what, example);
}

function parseTime(text: string): number {
  const match = /^(\d+\.?\d*|\.\d+)(ms|s|m|h)?$/.exec(text);
  if (match === null) throw new SpecError(`bad time ${show(text)} (e.g. 5000, 5000ms, 5s, 2m, 1h)`);
  const value = Number(match[1]);
  const unit = UNITS[match[2] ?? 'ms'] as number;
  // toPrecision(15) drops the binary fuzz of e.g. 1.1 × 3,600,000.
  return unit === 1 ? value : Number((value * unit).toPrecision(15));
}

/** `FROM` or `FROM-TO`. */
function parseWindow(text: string): [from: number, to: number | undefined] {
  const parts = text.split('-');
  if (parts.length > 2) throw new SpecError(`bad time window ${show(text)} (expected FROM or FROM-TO, e.g. 3s-9s)`);
  return [parseTime(parts[0] as string), parts[1] === undefined ? undefined : parseTime(parts[1])];
}

function parseIds(text: string): string[] {
  const ids = text.split('+');
  if (ids.some(id => id === '')) throw new SpecError(`empty agent id in ${show(text)} (ids are joined by "+")`);
  return ids;
}

/** Splits `HEAD@TAIL` at the last `@`. */
function splitAt(body: string, example: string): [head: string, tail: string] {
  const at = body.lastIndexOf('@');
  if (at < 0) throw new SpecError(`missing "@TIME" (e.g. ${example})`);
  return [body.slice(0, at), body.slice(at + 1)];
}

/** `AGENT@TIME<sep>VALUE` (slow's `x4`, exhaust's `=0.95`): the agent, the time, and the value's text. */
function agentTimeValue(body: string, sep: string, value: string, example: string): [agent: string, atMs: number, value: string] {
  const [agent, rest] = splitAt(body, example);
  if (agent === '') throw new SpecError(`missing agent (e.g. ${example})`);
  const at = rest.lastIndexOf(sep);
  if (at < 0) throw new SpecError(`missing "${sep}${value}" (e.g. ${example})`);
  return [agent, parseTime(rest.slice(0, at)), rest.slice(at + 1)];
}

function parseToken(token: string): Fault {
  // The coordinator's fault names no agent: `coordinatorCrash@AT-RESTART`.
  if (token.startsWith('coordinatorCrash')) {
    const example = 'coordinatorCrash@5s-8s';
    const rest = token.slice('coordinatorCrash'.length);
    if (!rest.startsWith('@')) throw new SpecError(`expected coordinatorCrash@AT-RESTART (e.g. ${example})`);
    const [atMs, restartAtMs] = parseWindow(rest.slice(1));
    if (restartAtMs === undefined) throw new SpecError(`missing "-RESTART": when the coordinator comes back (e.g. ${example})`);
    return { kind: 'coordinatorCrash', atMs, restartAtMs };
  }
  const colon = token.indexOf(':');
  if (colon < 0) throw new SpecError('expected KIND:…, e.g. crash:agent-1@5s');
  const kind = token.slice(0, colon);
  const body = token.slice(colon + 1);
  switch (kind) {
    case 'crash':
    case 'hang':
    case 'restart': {
      const [agent, time] = splitAt(body, `${kind}:agent-1@5s`);
      if (agent === '') throw new SpecError(`missing agent (e.g. ${kind}:agent-1@5s)`);
      return { kind, agent, atMs: parseTime(time) };
    }
    case 'slow': {
      const [agent, atMs, factor] = agentTimeValue(body, 'x', 'FACTOR', 'slow:agent-1@5sx4');
      return { kind, agent, atMs, factor: parseNumber(factor, 'factor', 'x4 or x1.5') };
    }
    case 'exhaust': {
      const [agent, atMs, usage] = agentTimeValue(body, '=', 'USAGE', 'exhaust:agent-1@5s=0.95');
      return { kind, agent, atMs, usage: parseRate(usage, 'usage', '0.95 or 95%') };
    }
    case 'drop': {
      const at = body.lastIndexOf('@');
      const head = at < 0 ? body : body.slice(0, at);
      const scope = head.indexOf(':');
      const rateText = scope < 0 ? head : head.slice(0, scope);
      const rate = parseRate(rateText, 'rate', '0.1 or 10%');
      const [fromMs, toMs] = at < 0 ? [undefined, undefined] : parseWindow(body.slice(at + 1));
      return {
        kind,
        rate,
        ...(fromMs === undefined ? {} : { fromMs }),
        ...(toMs === undefined ? {} : { toMs }),
        ...(scope < 0 ? {} : { agents: parseIds(head.slice(scope + 1)) }),
      };
    }
    case 'deadlock': {
      const [head, time] = splitAt(body, 'deadlock:agent-1+agent-2@5s');
      if (head === '') throw new SpecError('missing agents (e.g. deadlock:agent-1+agent-2@5s)');
      return { kind, agents: parseIds(head), atMs: parseTime(time) };
    }
    case 'partition': {
      const [head, window] = splitAt(body, 'partition:agent-1+agent-2@3s-9s');
      if (head === '') throw new SpecError('missing agents to cut off (e.g. partition:agent-1+agent-2@3s-9s)');
      const [atMs, healAtMs] = parseWindow(window);
      const groups = [[], ...head.split('/').map(parseIds)];
      return { kind, groups, atMs, ...(healAtMs === undefined ? {} : { healAtMs }) };
    }
    default:
      throw new SpecError(`unknown kind ${show(kind)} (expected ${FAULT_KINDS.join(', ')})`);
  }
}

/**
 * The fault syntax for people (`rxswarm simulate --help`): each form, an example and what it does.
 * Every example parses against agents `agent-0 … agent-9` (a test checks it).
 */
export const FAULT_SPEC_HELP = `Faults (--faults): separated by commas. TIME is ms, or a number with ms, s, m or h.
  crash:AGENT@TIME                   crash:agent-1@5s          stops: no beats, no work, no messages
  hang:AGENT@TIME                    hang:agent-2@8s           keeps heartbeating, makes no progress
  slow:AGENT@TIMExFACTOR             slow:agent-3@1sx4         its work takes FACTOR times as long
  restart:AGENT@TIME                 restart:agent-1@9s        comes back afresh, losing its work in flight
  drop:RATE[:AGENTS][@FROM[-TO]]     drop:10%@0-60s            loses RATE (0.1 or 10%) of the messages on
                                     drop:0.2:agent-4+agent-5@10s   every link, or to and from AGENTS only
  partition:AGENTS[/AGENTS…]@AT[-HEAL]
                                     partition:agent-1+agent-2@3s-9s   cuts agent-1 and agent-2 off together
                                     partition:agent-1/agent-2@3s      two islands; never heals
  exhaust:AGENT@TIME=USAGE           exhaust:agent-1@5s=0.95   its reported usage rises to USAGE (0.95 or 95%)
  deadlock:AGENTS@TIME               deadlock:agent-1+agent-2@5s   each one's work waits for a child with the
                                     next one's capabilities (the last's for the first's): a circular wait
  coordinatorCrash@AT-RESTART        coordinatorCrash@5s-8s    the coordinator dies (its in-process agents
                                     with it) and resumes from its journal at RESTART
AGENTS are ids joined by "+" (the simulated agents are agent-0 … agent-(N-1)); a partition's
groups are separated by "/", and everything it does not name (the coordinator, the other agents)
stays together. Without -TO or -HEAL a drop or partition lasts to the end of the run.`;

/**
 * Reads the CLI's `--faults SPEC`: faults separated by commas, each checked against `agentIds`.
 * A bad fault throws a `RangeError` quoting it: `bad fault "slow:agent-1@5s": missing "xFACTOR" …`.
 *
 * ```
 * crash:AGENT@TIME                 crash:agent-1@5000
 * hang:AGENT@TIME                  hang:agent-2@8s
 * slow:AGENT@TIMExFACTOR           slow:agent-3@1sx4           (agent-3 4× slower from 1 s)
 * restart:AGENT@TIME               restart:agent-1@9s
 * drop:RATE[:AGENTS][@FROM[-TO]]   drop:0.1@0-60000, drop:5%:agent-1+agent-2@10s
 * partition:AGENTS[/AGENTS…]@AT[-HEAL]
 *                                  partition:agent-1+agent-2@3s-9s   (the two, together, cut off)
 *                                  partition:agent-1/agent-2@3s      (two islands, never heals)
 * exhaust:AGENT@TIME=USAGE         exhaust:agent-1@5s=0.95, exhaust:agent-2@1m=120%
 * deadlock:AGENTS@TIME             deadlock:agent-1+agent-2@5s (each one's work waits for the next one's)
 * coordinatorCrash@AT-RESTART      coordinatorCrash@5s-8s      (down from 5 s, resumes from its journal at 8 s)
 * ```
 * TIME is milliseconds, or a number with `ms`, `s`, `m` or `h`. RATE is a fraction in `[0, 1)` or a
 * percentage (`10%`); USAGE a fraction of capacity or a percentage, above 1 allowed. AGENTS are ids joined by `+`. A drop without `:AGENTS` hits every link; without
 * `@` it lasts the whole run. A partition lists the groups it cuts off, separated by `/`; everything
 * not listed (the coordinator, the other agents) forms the first group. Whitespace around a fault is
 * ignored; an empty or blank spec is no faults. Agent ids in a spec cannot contain whitespace or any
 * of `, : @ + /`. No character needs quoting in a POSIX shell.
 *
 * @example
 * parseFaultSpec('crash:agent-1@5s,partition:agent-2@3s-9s', ['agent-1', 'agent-2']);
 * // [{ kind: 'crash', agent: 'agent-1', atMs: 5000 },
 * //  { kind: 'partition', groups: [[], ['agent-2']], atMs: 3000, healAtMs: 9000 }]
 */
export function parseFaultSpec(spec: string, agentIds: readonly string[]): Fault[] {
  if (typeof spec !== 'string') throw new RangeError(`a fault spec must be a string, got ${show(spec)}`);
  if (spec.trim() === '') return [];
  const known = new Set(agentIds);
  const faults = spec.split(',').map((raw, i) => {
    const token = raw.trim();
    if (token === '') throw new RangeError(`bad fault spec ${show(spec)}: fault ${i + 1} is empty (stray comma?)`);
    let fault: Fault;
    try {
      fault = parseToken(token);
    } catch (err) {
      if (err instanceof SpecError) throw new RangeError(`bad fault ${show(token)}: ${err.message}`);
      throw err;
    }
    const problem = faultProblem(fault, known);
    if (problem !== undefined) throw new RangeError(`bad fault ${show(token)}: ${problem}`);
    return fault;
  });
  // Across faults: coordinator crashes that overlap.
  validateFaults(faults, agentIds);
  return faults;
}

/** A duration in the largest unit that states it exactly: `0s`, `250ms`, `1.5s`, `2m`, `1h`. */
function formatMs(ms: number): string {
  if (ms === 0) return '0s';
  if (!Number.isInteger(ms) || ms < 1000) return `${ms}ms`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${ms / 1000}s`;
}

function specIds(ids: readonly string[]): string {
  for (const id of ids) {
    if (id === '' || RESERVED.test(id)) {
      throw new RangeError(`agent id ${show(id)} cannot be written in a fault spec (no whitespace or , : @ + /)`);
    }
  }
  return ids.join('+');
}

/**
 * Writes faults in `parseFaultSpec`'s syntax, e.g. to print a failing plan so that the run can be
 * replayed with `--faults`. `parseFaultSpec(formatFaultSpec(faults), ids)` gives the same faults,
 * except that a partition's first group comes back empty (the agents named in it were in the first
 * group anyway) and a drop with `toMs` but no `fromMs` comes back with `fromMs: 0` (its default). Throws a `RangeError` for an agent id the syntax cannot hold.
 *
 * @example
 * formatFaultSpec([{ kind: 'slow', agent: 'agent-3', atMs: 1000, factor: 4 }]); // 'slow:agent-3@1sx4'
 */
export function formatFaultSpec(faults: readonly Fault[]): string {
  return faults
    .map(f => {
      switch (f.kind) {
        case 'crash':
        case 'hang':
        case 'restart':
          return `${f.kind}:${specIds([f.agent])}@${formatMs(f.atMs)}`;
        case 'slow':
          return `slow:${specIds([f.agent])}@${formatMs(f.atMs)}x${f.factor}`;
        case 'exhaust':
          return `exhaust:${specIds([f.agent])}@${formatMs(f.atMs)}=${f.usage}`;
        case 'deadlock':
          return `deadlock:${specIds(f.agents)}@${formatMs(f.atMs)}`;
        case 'drop': {
          const scope = f.agents === undefined ? '' : `:${specIds(f.agents)}`;
          const from = f.fromMs ?? 0;
          const window =
            f.toMs !== undefined ? `@${formatMs(from)}-${formatMs(f.toMs)}` : f.fromMs !== undefined ? `@${formatMs(from)}` : '';
          return `drop:${f.rate}${scope}${window}`;
        }
        case 'partition': {
          const cut = f.groups.slice(1).map(specIds).join('/');
          return `partition:${cut}@${formatMs(f.atMs)}${f.healAtMs === undefined ? '' : `-${formatMs(f.healAtMs)}`}`;
        }
        case 'coordinatorCrash':
          return `coordinatorCrash@${formatMs(f.atMs)}-${formatMs(f.restartAtMs)}`;
      }
    })
    .join(',');
}

function percent(rate: number): string {
  return `${Number((rate * 100).toPrecision(12))}%`;
}

/**
 * One line for people (CLI live view, reports), e.g. `agent-3 slows down 4× at 1s` or
 * `partition at 3s: {agent-1, agent-2} | {everyone else}, heals at 9s`.
 *
 * @example
 * describeFault({ kind: 'drop', rate: 0.1, fromMs: 0, toMs: 60_000 });
 * // '10% of messages on every link lost from 0s to 1m'
 */
export function describeFault(f: Fault): string {
  switch (f.kind) {
    case 'crash':
      return `${f.agent} crashes at ${formatMs(f.atMs)}`;
    case 'hang':
      return `${f.agent} hangs at ${formatMs(f.atMs)} (keeps heartbeating, makes no progress)`;
    case 'slow':
      return `${f.agent} slows down ${f.factor}× at ${formatMs(f.atMs)}`;
    case 'exhaust':
      return `${f.agent} reports ${percent(f.usage)} usage from ${formatMs(f.atMs)}`;
    case 'restart':
      return `${f.agent} restarts at ${formatMs(f.atMs)} (loses its work in flight)`;
    case 'drop': {
      const scope = f.agents === undefined ? 'on every link' : `to or from ${f.agents.join(', ')}`;
      const window =
        f.toMs !== undefined
          ? `from ${formatMs(f.fromMs ?? 0)} to ${formatMs(f.toMs)}`
          : f.fromMs !== undefined
            ? `from ${formatMs(f.fromMs)} on`
            : 'throughout';
      return `${percent(f.rate)} of messages ${scope} lost ${window}`;
    }
    case 'partition': {
      const [first = [], ...cut] = f.groups;
      const rest = first.length === 0 ? '{everyone else}' : `{${first.join(', ')} and everyone else}`;
      const islands = [...cut.map(g => `{${g.join(', ')}}`), rest].join(' | ');
      const heal = f.healAtMs === undefined ? 'never heals' : `heals at ${formatMs(f.healAtMs)}`;
      return `partition at ${formatMs(f.atMs)}: ${islands}, ${heal}`;
    }
    case 'deadlock':
      return `${[...f.agents, f.agents[0]].join(' → ')}: each one's work waits for the next one's from ${formatMs(f.atMs)} (a circular wait)`;
    case 'coordinatorCrash':
      return `the coordinator crashes at ${formatMs(f.atMs)} (its in-process agents with it) and resumes from its journal at ${formatMs(f.restartAtMs)}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Property-based fault plans (rxswarm/testing)
