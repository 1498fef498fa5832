
/**
 * Faults a simulation injects: what happens to an agent's process, or to the messages on the
 * network, and when. Times are virtual milliseconds from the start of the run.
 *
 * Agent faults drive one small state machine per agent: `up` → `crash` → `crashed`, `up` → `hang` →
 * `hung`; `slow` sets the speed factor of the work it does while `up`; `restart` brings any state back
 * to `up` at speed 1. So `hang` and `slow` change nothing on a crashed agent: only a restart revives
 * it, afresh. Faults due at the same time apply in array order.
 *
 * Network faults judge each message once, when it is sent, over the half-open windows
 * `[fromMs, toMs)` and `[atMs, healAtMs)`. A node is an agent or the coordinator; a link is the pair of
 * a message's sender and receiver.
 *
 * A valid list satisfies `validateFaults`; `parseFaultSpec` reads the CLI's compact form,
 * `formatFaultSpec` writes it back, `describeFault` writes one line for people.
 */
export type Fault = CrashFault | HangFault | SlowFault | RestartFault | DropFault | PartitionFault | ExhaustFault | DeadlockFault | CoordinatorCrashFault;

/** The fault kinds, simplest first (the order `faultPlan` shrinks towards). */
export const FAULT_KINDS = ['crash', 'hang', 'slow', 'restart', 'drop', 'partition', 'exhaust', 'deadlock', 'coordinatorCrash'] as const;

/** One of `FAULT_KINDS`. */
export type FaultKind = Fault['kind'];

/**
 * At `atMs` the agent's process stops everything: no heartbeats, no progress, no messages sent or
 * answered. Work it held is never finished by it. It stays down until a later `restart`.
 */
export interface CrashFault {
  readonly kind: 'crash';
  readonly agent: string;
  readonly atMs: number;
}

/**
 * At `atMs` the agent stops making progress but keeps heartbeating and receiving: a liveness
 * detector sees it alive, yet it never finishes the work it holds or is given. Until a `restart`.
 */
export interface HangFault {
  readonly kind: 'hang';
  readonly agent: string;
  readonly atMs: number;
}

/**
 * From `atMs` every piece of the agent's work takes `factor` times as long (`factor > 1` slows it,
 * `factor < 1` speeds it up); heartbeats are unaffected. A later `slow` replaces the factor; a
 * `restart` resets it to 1.
 */
export interface SlowFault {
  readonly kind: 'slow';
  readonly agent: string;
  readonly atMs: number;
  /** Finite and > 0. */
  readonly factor: number;
}

/**
 * At `atMs` the agent's process restarts: whatever work it held in flight is lost, then it comes
 * back `up` at speed 1 (clearing an earlier crash, hang or slow) and rejoins with a fresh heartbeat.
 * On a healthy agent this is a bounce that loses its in-flight work.
 */
export interface RestartFault {
  readonly kind: 'restart';
  readonly agent: string;
  readonly atMs: number;
}

/**
 * Message loss: while `fromMs <= t < toMs` (defaults 0 and forever) each message on an affected link
 * is lost independently with probability `rate`, drawn from the run's seeded random source.
 *
 * `agents` (an extension of the DESIGN.md shape, optional so that shape stays valid) limits the loss
 * to links with at least one endpoint among those agents, i.e. their messages to and from anyone.
 * Without it every link loses messages, the coordinator's and every agent's: `faultPlan` therefore
 * always sets it, so that agents it leaves out keep lossless links among themselves and to the
 * coordinator.
 */
export interface DropFault {
  readonly kind: 'drop';
  /** In `[0, 1)`: total loss is a `partition`, not a drop. */
  readonly rate: number;
  readonly fromMs?: number;
  /** `>= fromMs`; absent: the loss never ends. */
  readonly toMs?: number;
  /** Non-empty, no id twice; absent: every link. */
  readonly agents?: readonly string[];
}

/**
 * A network partition: while `atMs <= t < healAtMs` (absent: forever) every message between nodes
 * of different groups is lost, in both directions; messages within a group pass.
 *
 * **The first group implicitly holds every node named in no group**: the coordinator, and agents
 * not mentioned. So `groups: [[], ['agent-1', 'agent-2']]` cuts agent-1 and agent-2 (still together)
 * off from the coordinator and all other agents, and `[['agent-0'], ['agent-1'], ['agent-2']]` makes
 * three islands with the coordinator beside agent-0. At least two groups; only the first may be
 * empty; no agent in two groups. `faultPlan` names the agents it cuts off in later groups only, so
 * agents it leaves out stay with the coordinator.
 */
export interface PartitionFault {
  readonly kind: 'partition';
  readonly groups: readonly (readonly string[])[];
  readonly atMs: number;
  /** `>= atMs`; absent: the partition never heals. */
  readonly healAtMs?: number;
}

/**
 * From `atMs` the agent's reported usage (what its heartbeats carry, as `context.usage` would) is
 * `usage`, a fraction of its capacity: at 0.9 or more the coordinator detects resource_exhaustion
 * and heals it (less load, its work moved, a standby in its place). The agent keeps working. A later
 * `exhaust` replaces the value (0: relieved); a `restart` clears it.
 */
export interface ExhaustFault {
  readonly kind: 'exhaust';
  readonly agent: string;
  readonly atMs: number;
  /** Finite and >= 0 (above 1 allowed: over budget). */
  readonly usage: number;
}

/**
 * At `atMs` each of `agents` has its work wait for the next one's (the last's for the first's):
 * every subtask it holds then, and the next it starts while it has a slot free, asks for a child
 * (`context.delegate`) with the next agent's capabilities, and finishes only once that child has.
 * Where nobody outside the circle can take those children (capabilities only the next agent has,
 * or every agent is in it), the circle is a deadlock the coordinator must find (protocol_deadlock)
 * and break; where somebody can, the children run there and the work goes on. Each agent's work
 * waits this way once per slot: work run again after the deadlock was broken does not wait.
 */
export interface DeadlockFault {
  readonly kind: 'deadlock';
  /** Distinct agent ids, at least one (one alone waits for itself). */
  readonly agents: readonly string[];
  readonly atMs: number;
}

/**
 * At `atMs` the coordinator's process dies: it loses everything but its journal, sends nothing more
 * (no goodbye, no cancellation), runs no more timers, and the in-process agents that live in it die
 * with it, their work in flight lost. At `restartAtMs` a new coordinator starts on the same journal,
 * network and clock and resumes the task: accepted results are kept and never run again, unfinished
 * assignments are issued anew with attempt tokens above every earlier one, and the agents come back
 * fresh with it (an agent crashed or hung before is running again; a `slow` factor, a property of
 * the machine, stays). `restartAtMs >= atMs`; a coordinator crash starts after the previous one
 * restarted (`atMs > restartAtMs` of the one before it in time).
 */
export interface CoordinatorCrashFault {
  readonly kind: 'coordinatorCrash';
  readonly atMs: number;
  readonly restartAtMs: number;
}

const FIELDS: Record<FaultKind, readonly string[]> = {
  crash: ['kind', 'agent', 'atMs'],
  hang: ['kind', 'agent', 'atMs'],
  slow: ['kind', 'agent', 'atMs', 'factor'],
  restart: ['kind', 'agent', 'atMs'],
  drop: ['kind', 'rate', 'fromMs', 'toMs', 'agents'],
  partition: ['kind', 'groups', 'atMs', 'healAtMs'],
  exhaust: ['kind', 'agent', 'atMs', 'usage'],
  deadlock: ['kind', 'agents', 'atMs'],
  coordinatorCrash: ['kind', 'atMs', 'restartAtMs'],
};

/** @internal A value as it reads in an error message. */
export function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'object' && value !== null) {
    try {
      return JSON.stringify(value);
    } catch {
      return String(value);
    }
  }
  return String(value);
}

function knownList(known: ReadonlySet<string>): string {
  const ids = [...known];
  if (ids.length === 0) return 'no agents are known';
  const shown = ids.slice(0, 8).join(', ');
  return `known agents: ${shown}${ids.length > 8 ? ` and ${ids.length - 8} more` : ''}`;
}

function agentProblem(name: string, value: unknown, known: ReadonlySet<string>): string | undefined {
  if (typeof value !== 'string') return `${name} must be an agent id (a string), got ${show(value)}`;
  if (!known.has(value)) return `${name} names unknown agent ${show(value)} (${knownList(known)})`;
  return undefined;
}

function timeProblem(name: string, value: unknown): string | undefined {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    return `${name} must be a finite number >= 0, got ${show(value)}`;
  }
  return undefined;
}

/** Checks an agent-id list: an array of known ids, none twice; `seen` collects across lists. */
function idsProblem(name: string, value: unknown, known: ReadonlySet<string>, seen: Map<string, string>): string | undefined {
  if (!Array.isArray(value)) return `${name} must be an array of agent ids, got ${show(value)}`;
  for (const [i, id] of (value as unknown[]).entries()) {
    const problem = agentProblem(`${name}[${i}]`, id, known);
    if (problem !== undefined) return problem;
    const first = seen.get(id as string);
    if (first !== undefined) return `agent ${show(id)} is named twice (${first} and ${name})`;
    seen.set(id as string, name);
  }
  return undefined;
}

/** What is wrong with one fault, or `undefined` when it is valid. */
/** @internal What is wrong with one fault, or undefined. */
export function faultProblem(value: unknown, known: ReadonlySet<string>): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return `a fault must be an object, got ${show(value)}`;
  }
  const f = value as Record<string, unknown>;
  const kind = f['kind'];
  if (typeof kind !== 'string' || !Object.hasOwn(FIELDS, kind)) {
    return `unknown kind ${show(kind)} (expected ${FAULT_KINDS.join(', ')})`;
  }
  const fields = FIELDS[kind as FaultKind];
  // A typo such as `healAt` would otherwise silently make a partition permanent.
  const extra = Object.keys(f).find(key => !fields.includes(key));
  if (extra !== undefined) return `unknown field ${show(extra)} on a ${kind} fault (fields: ${fields.join(', ')})`;

  switch (kind as FaultKind) {
    case 'crash':
    case 'hang':
    case 'restart':
      return agentProblem('agent', f['agent'], known) ?? timeProblem('atMs', f['atMs']);
    case 'slow': {
      const factor = f['factor'];
      return (
        agentProblem('agent', f['agent'], known) ??
        timeProblem('atMs', f['atMs']) ??
        (typeof factor !== 'number' || !Number.isFinite(factor) || factor <= 0
          ? `factor must be a finite number > 0, got ${show(factor)}`
          : undefined)
      );
    }
    case 'exhaust': {
      const usage = f['usage'];
      return (
        agentProblem('agent', f['agent'], known) ??
        timeProblem('atMs', f['atMs']) ??
        (typeof usage !== 'number' || !Number.isFinite(usage) || usage < 0 ? `usage must be a finite number >= 0 (a fraction of capacity), got ${show(usage)}` : undefined)
      );
    }
    case 'drop': {
      const { rate, fromMs, toMs, agents } = f;
      if (typeof rate !== 'number' || !Number.isFinite(rate) || rate < 0 || rate >= 1) {
        return `rate must be a number in [0, 1), got ${show(rate)} (total loss is a partition)`;
      }
      const from = fromMs ?? 0;
      const timing = timeProblem('fromMs', from) ?? (toMs === undefined ? undefined : timeProblem('toMs', toMs));
      if (timing !== undefined) return timing;
      if (toMs !== undefined && (toMs as number) < (from as number)) {
        return `toMs must be >= fromMs (${show(from)}), got ${show(toMs)}`;
      }
      if (agents === undefined) return undefined;
      if (Array.isArray(agents) && agents.length === 0) {
        return 'agents must name at least one agent (omit it for loss on every link)';
      }
      return idsProblem('agents', agents, known, new Map());
    }
    case 'partition': {
      const { groups, atMs, healAtMs } = f;
      if (!Array.isArray(groups)) return `groups must be an array of agent-id arrays, got ${show(groups)}`;
      if (groups.length < 2) {
        return (
          `groups must hold at least two groups, got ${groups.length}; the first group also holds every node ` +
          'named in no group, so [[], ["a"]] cuts "a" off from everyone else'
        );
      }
      const seen = new Map<string, string>();
      for (const [i, group] of (groups as unknown[]).entries()) {
        const problem = idsProblem(`groups[${i}]`, group, known, seen);
        if (problem !== undefined) return problem;
        if (i > 0 && (group as unknown[]).length === 0) return `groups[${i}] is empty; only the first group may be`;
      }
      const timing = timeProblem('atMs', atMs);
      if (timing !== undefined) return timing;
      if (healAtMs !== undefined && (typeof healAtMs !== 'number' || !Number.isFinite(healAtMs) || healAtMs < (atMs as number))) {
        return `healAtMs must be a finite number >= atMs (${show(atMs)}), got ${show(healAtMs)} (omit it for a partition that never heals)`;
      }
      return undefined;
    }
    case 'deadlock': {
      const { agents } = f;
      if (Array.isArray(agents) && agents.length === 0) return 'agents must name at least one agent (each waits for the next)';
      return idsProblem('agents', agents, known, new Map()) ?? timeProblem('atMs', f['atMs']);
    }
    case 'coordinatorCrash': {
      const { atMs, restartAtMs } = f;
      const timing = timeProblem('atMs', atMs) ?? timeProblem('restartAtMs', restartAtMs);
      if (timing !== undefined) return timing;
      if ((restartAtMs as number) < (atMs as number)) return `restartAtMs must be >= atMs (${show(atMs)}), got ${show(restartAtMs)}`;
      return undefined;
    }
  }
}

/**
 * Checks a fault list against the run's agent ids and throws a `RangeError` naming the first
 * malformed fault (`faults[2]: …`) and what is wrong: an unknown kind or field, an unknown agent,
 * a negative or non-finite time, a `factor` not finite and > 0, a `usage` not finite and >= 0, a `rate` outside `[0, 1)`, a window
 * that ends before it starts (`toMs < fromMs`, `healAtMs < atMs`), partition groups that name an
 * unknown agent, an agent twice, fewer than two groups or an empty group after the first, a
 * coordinator crash that restarts before it crashes or starts before the previous one restarted. A field
 * present with the value `undefined` counts as absent. Takes `unknown` so JSON input can be checked.
 *
 * @example
 * validateFaults([{ kind: 'crash', agent: 'agent-0', atMs: 5000 }], ['agent-0', 'agent-1']); // fine
 * validateFaults([{ kind: 'slow', agent: 'agent-0', atMs: 0, factor: 0 }], ['agent-0']);
 * // RangeError: faults[0]: factor must be a finite number > 0, got 0
 */
export function validateFaults(faults: unknown, agentIds: readonly string[]): asserts faults is readonly Fault[] {
  if (!Array.isArray(faults)) throw new RangeError(`faults must be an array, got ${show(faults)}`);
  const known = new Set(agentIds);
  for (const [i, fault] of (faults as unknown[]).entries()) {
    const problem = faultProblem(fault, known);
    if (problem !== undefined) throw new RangeError(`faults[${i}]: ${problem}`);
  }
  // One coordinator at a time: a crash while it is down has no process to kill.
  const crashes = (faults as Fault[])
    .map((f, i) => ({ f, i }))
    .filter((x): x is { f: CoordinatorCrashFault; i: number } => x.f.kind === 'coordinatorCrash')
    .sort((a, b) => a.f.atMs - b.f.atMs || a.i - b.i);
  for (let k = 1; k < crashes.length; k++) {
    const before = crashes[k - 1] as { f: CoordinatorCrashFault; i: number };
    const next = crashes[k] as { f: CoordinatorCrashFault; i: number };
    if (next.f.atMs <= before.f.restartAtMs) {
      throw new RangeError(`faults[${next.i}]: the coordinator is down from ${before.f.atMs} to ${before.f.restartAtMs} (faults[${before.i}]): it cannot crash again at ${next.f.atMs}; crashes must not overlap`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The compact text form (CLI `--faults SPEC`)
