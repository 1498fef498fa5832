import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { CoordinationEvent } from './events.js';
import { FAULT_KINDS } from './faultDetector.js';
import type { AgentState, SubtaskState, TaskState } from './swarmRows.js';
import type { SwarmView } from './swarmView.js';

export interface ServiceMetricsOptions {
  /** Agents that get their own `rxswarm_agent_phi` series, highest phi first (bounds the label's cardinality). Default 100. */
  readonly maxAgentSeries?: number;
  /** Also the process's own metrics (`process_*`, `nodejs_*`, prom-client's defaults). Default true. */
  readonly processMetrics?: boolean;
}

/** Attempts timed at once at most (far above any run's attempts in flight). */
const MAX_TIMED = 100_000;

const AGENT_STATES: readonly AgentState[] = ['alive', 'suspected', 'down', 'quarantined', 'gone'];
const SUBTASK_STATES: readonly SubtaskState[] = ['pending', 'waiting', 'running', 'done', 'failed'];
const TASK_STATES: readonly TaskState[] = ['queued', 'running', 'done', 'failed', 'cancelled'];

/**
 * The service's Prometheus metrics (`/metrics`), in a registry of its own. Every label has a
 * bounded set of values: states, fault kinds, healing strategies and outcomes, protocol names —
 * except `agent` on `rxswarm_agent_phi`, which is limited to `maxAgentSeries` agents (those with
 * the highest phi; `rxswarm_agent_phi_max` covers them all).
 *
 * | metric | type | labels |
 * | --- | --- | --- |
 * | `rxswarm_agents` | gauge | `state` |
 * | `rxswarm_tasks` | gauge | `state` |
 * | `rxswarm_subtasks` | gauge | `state` (subtasks of the tasks held) |
 * | `rxswarm_subtasks_ended_total` | counter | `outcome` (`completed`, `failed`) |
 * | `rxswarm_detections_total` | counter | `kind` (a fault kind, or `suspicion`) |
 * | `rxswarm_false_suspicions_total` | counter | — |
 * | `rxswarm_false_suspicion_free_seconds` | gauge | — |
 * | `rxswarm_healing_attempts_total` | counter | `strategy`, `outcome` (`ok`, `failed`) |
 * | `rxswarm_protocol_switches_total` | counter | `from`, `to` |
 * | `rxswarm_protocol` | gauge (1) | `protocol` |
 * | `rxswarm_subtask_latency_seconds` | histogram | `protocol` |
 * | `rxswarm_agent_phi` | gauge | `agent` (at most `maxAgentSeries`) |
 * | `rxswarm_agent_phi_max` | gauge | — |
 */
export class ServiceMetrics {
  readonly registry = new Registry();
  private readonly subtasksEnded: Counter<'outcome'>;
  private readonly hedged: Counter;
  private readonly delegated: Counter;
  private readonly detections: Counter<'kind'>;
  private readonly falseSuspicions: Counter;
  private readonly healing: Counter<'strategy' | 'outcome'>;
  private readonly switches: Counter<'from' | 'to'>;
  private readonly latency: Histogram<'protocol'>;
  /** Assignment times of attempts out now, by subtask and attempt (released at their end). */
  private readonly assigned = new Map<string, number>();
  private readonly suspects = new Set<string>();
  private protocol = 'none';
  private cleanSince: number;

  constructor(
    private readonly view: SwarmView,
    private readonly now: () => number,
    { maxAgentSeries = 100, processMetrics = true }: ServiceMetricsOptions = {},
  ) {
    if (!(Number.isInteger(maxAgentSeries) && maxAgentSeries >= 0)) throw new RangeError(`maxAgentSeries must be an integer >= 0, got ${maxAgentSeries}`);
    const registers = [this.registry];
    this.cleanSince = now();
    const counts = <S extends string>(states: readonly S[], rows: readonly { state: S }[]): Map<S, number> => {
      const out = new Map<S, number>(states.map(s => [s, 0]));
      for (const row of rows) out.set(row.state, (out.get(row.state) ?? 0) + 1);
      return out;
    };
    new Gauge({
      name: 'rxswarm_agents', help: 'Agents by state.', labelNames: ['state'], registers,
      collect() {
        for (const [state, n] of counts(AGENT_STATES, view.agentRows(false))) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'rxswarm_tasks', help: 'Tasks held by the service (running, queued, and the last finished ones) by state.', labelNames: ['state'], registers,
      collect() {
        for (const [state, n] of counts(TASK_STATES, view.taskRows())) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'rxswarm_subtasks', help: 'Subtasks of the tasks held, by state.', labelNames: ['state'], registers,
      collect() {
        const counted = view.subtaskCounts();
        for (const state of SUBTASK_STATES) this.set({ state }, counted[state]);
      },
    });
    this.subtasksEnded = new Counter({ name: 'rxswarm_subtasks_ended_total', help: 'Subtasks ended since the service started, by outcome.', labelNames: ['outcome'], registers });
    this.hedged = new Counter({ name: 'rxswarm_subtasks_hedged_total', help: 'Backup attempts started beside an attempt silent past its progress deadline.', registers });
    this.delegated = new Counter({ name: 'rxswarm_subtasks_delegated_total', help: 'Child subtasks that running attempts asked for (context.delegate).', registers });
    this.detections = new Counter({ name: 'rxswarm_detections_total', help: 'Faults detected, by kind (suspicion: an agent suspected by the failure detector).', labelNames: ['kind'], registers });
    for (const outcome of ['completed', 'failed']) this.subtasksEnded.inc({ outcome }, 0);
    for (const kind of ['suspicion', ...FAULT_KINDS]) this.detections.inc({ kind }, 0);
    this.falseSuspicions = new Counter({ name: 'rxswarm_false_suspicions_total', help: 'Suspected agents that were heard from again (recovered) before being declared down.', registers });
    const metrics = this;
    new Gauge({
      name: 'rxswarm_false_suspicion_free_seconds', help: 'Seconds since the last false suspicion (or since the service started).', registers,
      collect() {
        this.set((metrics.now() - metrics.cleanSince) / 1000);
      },
    });
    this.healing = new Counter({ name: 'rxswarm_healing_attempts_total', help: 'Healing attempts, by strategy and outcome.', labelNames: ['strategy', 'outcome'], registers });
    this.switches = new Counter({ name: 'rxswarm_protocol_switches_total', help: 'Protocol switches, by the protocols switched from and to.', labelNames: ['from', 'to'], registers });
    new Gauge({
      name: 'rxswarm_protocol', help: 'The protocol in force (1), by name.', labelNames: ['protocol'], registers,
      collect() {
        this.reset();
        this.set({ protocol: view.protocolName ?? 'none' }, 1);
      },
    });
    this.latency = new Histogram({
      name: 'rxswarm_subtask_latency_seconds', help: 'From an assignment to its accepted result, by protocol.', labelNames: ['protocol'], registers,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800],
    });
    new Gauge({
      name: 'rxswarm_agent_phi', help: `Phi of each agent (at most ${maxAgentSeries} series: the agents with the highest phi).`, labelNames: ['agent'], registers,
      collect() {
        this.reset();
        const rows = view.agentRows(false).filter(a => a.phi !== null).sort((a, b) => (b.phi as number) - (a.phi as number));
        for (const a of rows.slice(0, maxAgentSeries)) this.set({ agent: a.id }, a.phi as number);
      },
    });
    new Gauge({
      name: 'rxswarm_agent_phi_max', help: 'The highest phi of any agent.', registers,
      collect() {
        let max = 0;
        for (const a of view.agentRows(false)) if (a.phi !== null && a.phi > max) max = a.phi;
        this.set(max);
      },
    });
    if (processMetrics) collectDefaultMetrics({ register: this.registry });
  }

  /** Counts one coordination event. */
  event(e: CoordinationEvent): void {
    switch (e.type) {
      case 'subtask.assigned':
        this.assigned.set(`${e.subtaskId}#${e.attempt}`, e.at);
        // Attempts that end without a result of theirs (cancelled, revoked, lost a hedge) are
        // dropped oldest first: the map stays bounded whatever the runs do.
        if (this.assigned.size > MAX_TIMED) this.assigned.delete(this.assigned.keys().next().value as string);
        return;
      case 'subtask.completed': {
        const at = this.assigned.get(`${e.subtaskId}#${e.attempt}`);
        this.assigned.delete(`${e.subtaskId}#${e.attempt}`);
        if (at !== undefined) this.latency.observe({ protocol: this.protocol }, Math.max(0, e.at - at) / 1000);
        this.subtasksEnded.inc({ outcome: 'completed' });
        return;
      }
      case 'subtask.requeued':
        this.assigned.delete(`${e.subtaskId}#${e.attempt}`);
        return;
      case 'subtask.failed':
        this.subtasksEnded.inc({ outcome: 'failed' });
        return;
      case 'subtask.hedged':
        this.hedged.inc();
        return;
      case 'subtask.delegated':
        this.delegated.inc();
        return;
      case 'agent.suspected':
        this.suspects.add(e.agentId);
        this.detections.inc({ kind: 'suspicion' });
        return;
      case 'agent.down':
        this.suspects.delete(e.agentId);
        return;
      case 'agent.recovered':
        if (this.suspects.delete(e.agentId)) {
          this.falseSuspicions.inc();
          this.cleanSince = e.at;
        }
        return;
      case 'fault.detected':
        this.detections.inc({ kind: e.kind });
        return;
      case 'healing.succeeded':
      case 'healing.failed':
        this.healing.inc({ strategy: e.strategy, outcome: e.ok ? 'ok' : 'failed' });
        return;
      case 'protocol.selected':
        this.protocol = e.protocol;
        return;
      case 'protocol.switched':
        this.protocol = e.switch.to;
        this.switches.inc({ from: e.switch.from, to: e.switch.to });
        return;
      default:
        return;
    }
  }

  /** The text format, for `/metrics`. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
