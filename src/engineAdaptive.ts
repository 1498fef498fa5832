import { Subscription, groupBy, map, mergeMap, type Observable } from 'rxjs';
import { adaptiveSwitch, matrixPrior, performanceWindow, type ExecutionRecord, type PerformanceSnapshot, type ProtocolSwitch } from '../operators/index.js';
import type { Task } from '../streams/task.js';
import type { Settings } from './engineSettings.js';
import { ProtocolProbe } from './protocolProbe.js';
import { chooseInitial } from './topologies/index.js';
import { TOPOLOGY_NAMES, type TopologyName } from './topology.js';

/** What measuring and switching protocols needs of the engine. */
export interface AdaptiveEngine {
  readonly settings: Settings;
  /** Every attempt's outcome, under the protocol that routed it. */
  readonly executions: Observable<ExecutionRecord>;
  /** Every protocol put in force, for `adaptiveSwitch` (and the probe) to follow the switches it did not make. */
  readonly inForce: Observable<string>;
  /** Where each protocol's latest snapshot is kept. */
  readonly performance: Map<string, PerformanceSnapshot>;
  /** The protocol in force now. */
  readonly protocol: TopologyName;
  /** Live agents now. */
  readonly agentCount: number;
  /** The first task (its traits inform the prior). */
  readonly first: Task | undefined;
  /** `adaptiveSwitch` decided a switch. */
  switchTo(to: TopologyName, change: ProtocolSwitch): void;
}

/** The protocol an engine starts with: the configured one, or under `adaptive` the decision matrix's for the team and the first task. */
export function initialProtocol(topology: TopologyName | 'adaptive', agentCount: number, first: Task | undefined): TopologyName {
  if (topology !== 'adaptive') return topology;
  return chooseInitial({
    agentCount,
    ...(first?.complexity === undefined ? {} : { complexity: first.complexity }),
    ...(first?.coordinationIntensity === undefined ? {} : { coordinationIntensity: first.coordinationIntensity }),
  }) as TopologyName;
}

/**
 * Measures the protocols, one performance window each (an execution counts for the protocol that
 * routed it), and under `adaptive` follows the measurements with `adaptiveSwitch`, with a
 * `ProtocolProbe` to route a share of assignments under the candidates when exploring. Returns the
 * subscriptions, in the order made, and the probe if any.
 */
export function wireAdaptive(engine: AdaptiveEngine): { subscriptions: Subscription[]; probe: ProtocolProbe | undefined } {
  const { settings, first } = engine;
  const scheduler = settings.scheduler;
  const subscriptions: Subscription[] = [];
  subscriptions.push(
    // One window per protocol: an execution counts for the protocol that routed it.
    engine.executions
      .pipe(
        groupBy(record => record.protocol),
        mergeMap(group => group.pipe(performanceWindow({ windowMs: settings.adaptive.windowMs, scheduler }), map(snapshot => [group.key, snapshot] as const))),
      )
      .subscribe(([protocol, snapshot]) => engine.performance.set(protocol, snapshot)),
  );
  if (settings.topology !== 'adaptive') return { subscriptions, probe: undefined };
  const candidates = TOPOLOGY_NAMES.filter(n => n !== engine.protocol);
  const probe = (settings.adaptive.explore ?? 0) > 0 ? new ProtocolProbe({ share: settings.adaptive.explore as number, candidates, initial: engine.protocol, inForce: engine.inForce }) : undefined;
  if (probe !== undefined) subscriptions.push(new Subscription(() => probe.close()));
  subscriptions.push(
    engine.executions
      .pipe(
        adaptiveSwitch({
          initial: engine.protocol,
          candidates,
          ...settings.adaptive,
          prior: matrixPrior({ agentCount: engine.agentCount, ...(first?.complexity ? { complexity: first.complexity } : {}), ...(first?.coordinationIntensity ? { coordinationIntensity: first.coordinationIntensity } : {}) }),
          // Switches made elsewhere (healing's fallback, a request): it follows them.
          inForce: engine.inForce,
          scheduler,
        }),
      )
      .subscribe(change => engine.switchTo(change.to as TopologyName, change)),
  );
  return { subscriptions, probe };
}
