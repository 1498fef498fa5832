import {
  asyncScheduler,
  defer,
  filter,
  finalize,
  isObservable,
  map,
  merge,
  type Observable,
  type OperatorFunction,
  type SchedulerLike,
} from 'rxjs';
import { consecutiveFailures, type ConsecutiveFailuresOptions, type DeliveryInput } from '../operators/consecutiveFailures.js';
import { degradation, type DegradationOptions, type LatencyInput } from '../operators/degradation.js';
import { heartbeatDeadline } from '../operators/heartbeatDeadline.js';
import { requireNumber, requireScheduler } from '../operators/internal/validate.js';
import type { Heartbeat, Liveness } from '../operators/liveness.js';
import { phiAccrual } from '../operators/phiAccrual.js';
import type { PhiAccrualDetectorOptions } from '../operators/phiAccrualDetector.js';
import { resourcePressure, type ResourcePressureOptions, type UsageInput } from '../operators/resourcePressure.js';
import { waitForCycles, type WaitForCyclesOptions, type WaitForEdge } from '../operators/waitForCycles.js';

/** The seed's five faults. */
export type FaultKind =
  | 'agent_timeout'
  | 'communication_failure'
  | 'performance_degradation'
  | 'resource_exhaustion'
  | 'protocol_deadlock';

export type FaultSeverity = 'medium' | 'high' | 'critical';

/** One row of the seed's fault table. */
export interface FaultTableEntry {
  readonly severity: FaultSeverity;
  /** The default threshold, in `unit`. */
  readonly threshold: number;
  readonly unit: string;
  /** The option of {@link detectFaults} that sets the threshold. */
  readonly option: string;
  /** The operator that watches for it. */
  readonly operator: string;
}

const row = (entry: FaultTableEntry): FaultTableEntry => Object.freeze(entry);

/** The seed's table: default threshold and severity of each fault, and what sets and detects it. */
export const FAULT_TABLE: Readonly<Record<FaultKind, FaultTableEntry>> = Object.freeze({
  agent_timeout: row({
    severity: 'medium',
    threshold: 60_000,
    unit: 'ms without a heartbeat',
    option: 'detector.timeoutMs',
    operator: 'heartbeatDeadline (or phiAccrual)',
  }),
  communication_failure: row({
    severity: 'high',
    threshold: 5,
    unit: 'consecutive delivery failures on a link',
    option: 'communication.limit',
    operator: 'consecutiveFailures',
  }),
  performance_degradation: row({
    severity: 'medium',
    threshold: 2,
    unit: '× the agent’s baseline response time',
    option: 'degradation.factor',
    operator: 'degradation',
  }),
  resource_exhaustion: row({
    severity: 'high',
    threshold: 0.9,
    unit: 'fraction of capacity in use',
    option: 'resources.threshold',
    operator: 'resourcePressure',
  }),
  protocol_deadlock: row({
    severity: 'critical',
    threshold: 120_000,
    unit: 'ms of circular wait',
    option: 'deadlock.minDurationMs',
    operator: 'waitForCycles',
  }),
});

/** Every fault kind, in the table's order. */
export const FAULT_KINDS: readonly FaultKind[] = Object.freeze(Object.keys(FAULT_TABLE) as FaultKind[]);

interface FaultFields {
  readonly kind: FaultKind;
  /** From {@link FAULT_TABLE}; a resolution carries its fault's severity. */
  readonly severity: FaultSeverity;
  /** Scheduler time of the verdict. */
  readonly at: number;
  /** The agent at fault: agent_timeout, performance_degradation, resource_exhaustion. */
  readonly agentId?: string;
  /** The failing link (`"a->b"` or whatever names it): communication_failure. */
  readonly link?: string;
  /** The circular wait, in cycle order from the smallest id: protocol_deadlock. */
  readonly members?: readonly string[];
  /** The exhausted resource, when the usage sample named one: resource_exhaustion. */
  readonly resource?: string;
  /** What was measured, for people: `"no heartbeat from a for 60000 ms"`. */
  readonly detail: string;
}

/** A fault has begun: something to heal. At most one per episode and subject. */
export interface DetectedFault extends FaultFields {
  readonly type: 'detected';
}

/**
 * A detected fault no longer stands: the agent heartbeats again, the link delivers again, the
 * agent's response time or usage is back to normal, the circular wait was broken.
 */
export interface ResolvedFault extends FaultFields {
  readonly type: 'resolved';
}

export type FaultEvent = DetectedFault | ResolvedFault;

/**
 * Identifies a fault's subject: the same key for a fault and its resolution, and for a repeated
 * episode of the same fault (kind + agent, link or cycle). Resource names are not part of it: two
 * exhausted resources of one agent are one agent to heal.
 */
export function faultKey(fault: Pick<FaultFields, 'kind' | 'agentId' | 'link' | 'members'>): string {
  const subject = fault.agentId ?? fault.link ?? fault.members?.join(' ') ?? '';
  return `${fault.kind}:${subject}`;
}

/** How agent liveness is judged. */
export type LivenessDetector =
  | {
      readonly kind: 'deadline';
      /** Silence after which an agent has timed out (> 0, default 60 000: the seed's table). */
      readonly timeoutMs?: number;
    }
  | ({ readonly kind: 'phi' } & PhiAccrualDetectorOptions);

export interface FaultDetectorInputs {
  readonly heartbeats: Observable<Heartbeat>;
  readonly latencies?: Observable<LatencyInput>;
  readonly deliveries?: Observable<DeliveryInput>;
  readonly usage?: Observable<UsageInput>;
  readonly waits?: Observable<WaitForEdge>;
}

export interface DetectFaultsOptions {
  /**
   * agent_timeout. Default `{ kind: 'deadline', timeoutMs: 60_000 }` (the seed's table). `phi`
   * adapts to each agent's own rhythm: faster detection of a crash among fast, regular beaters and
   * fewer false suspicions among jittery ones, at the price of a bound that is not a fixed number.
   */
  readonly detector?: LivenessDetector;
  /** communication_failure: `consecutiveFailures` options, `limit` 5 by default. */
  readonly communication?: Omit<ConsecutiveFailuresOptions, 'scheduler'>;
  /** performance_degradation: `degradation` options, `factor` 2 by default. */
  readonly degradation?: Omit<DegradationOptions, 'scheduler'>;
  /** resource_exhaustion: `resourcePressure` options, `threshold` 0.9 by default. */
  readonly resources?: Omit<ResourcePressureOptions, 'scheduler'>;
  /** protocol_deadlock: `waitForCycles` options, `minDurationMs` 120 000 by default. */
  readonly deadlock?: Omit<WaitForCyclesOptions, 'scheduler'>;
  /** Clock and timers of every detector (default `asyncScheduler`). */
  readonly scheduler?: SchedulerLike;
}

/** Object options only; `undefined` is "all defaults". */
function requireGroup<T extends object>(name: string, value: T | undefined): T {
  if (value === undefined) return {} as T;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new RangeError(`${name} must be an options object, got ${String(value)}`);
  }
  return value;
}

/** Builds an operator, naming the option group in its RangeError: `communication.limit must be …`. */
function built<T>(group: string, make: () => T): T {
  try {
    return make();
  } catch (err) {
    if (err instanceof RangeError) throw new RangeError(`${group}.${err.message}`);
    throw err;
  }
}

function requireInput(name: string, value: unknown, required: boolean): void {
  if (value === undefined && !required) return;
  if (!isObservable(value)) throw new RangeError(`inputs.${name} must be an Observable, got ${String(value)}`);
}

const notUndefined = <T>(value: T | undefined): value is T => value !== undefined;

const fixed = (value: number, digits: number): string => String(Number(value.toFixed(digits)));

/**
 * Liveness verdicts → agent_timeout faults. `suspected` is the fault; `alive` after it is the
 * resolution (an agent's first `alive` is not); `left` ends an episode silently: a departed agent
 * is neither faulty nor back, and the engine learns departures from the heartbeats themselves.
 */
function agentTimeouts(
  liveness: OperatorFunction<Heartbeat, Liveness>,
  describe: (event: Liveness) => string,
): OperatorFunction<Heartbeat, FaultEvent> {
  const { severity } = FAULT_TABLE.agent_timeout;
  return source =>
    defer(() => {
      const suspected = new Set<string>();
      const step = (event: Liveness): FaultEvent | undefined => {
        const { agentId, at } = event;
        if (event.type === 'suspected') {
          suspected.add(agentId);
          return { type: 'detected', kind: 'agent_timeout', severity, at, agentId, detail: describe(event) };
        }
        if (!suspected.delete(agentId) || event.type === 'left') return undefined;
        return { type: 'resolved', kind: 'agent_timeout', severity, at, agentId, detail: `${agentId} heartbeats again` };
      };
      return source.pipe(
        liveness,
        map(step),
        filter(notUndefined),
        finalize(() => suspected.clear()),
      );
    });
}

/**
 * Watches the seed's five faults over the operators: heartbeats → agent_timeout, delivery outcomes
 * → communication_failure, response times → performance_degradation, usage → resource_exhaustion,
 * wait-for edges → protocol_deadlock. Each fault is `detected` once per episode and `resolved`
 * when it ends.
 *
 * ```
 * heartbeats: a--a----------a--    detector { kind: 'deadline', timeoutMs: 5 }
 * deliveries: -xxx-o-----------    x: failure on "a->b", o: success; communication { limit: 3 }
 * faults:     ---C-c--T-----t--    C: communication_failure detected (3rd x), c: resolved (o)
 *                                  T: agent_timeout detected (a's last beat + 5), t: resolved (a beats)
 * ```
 *
 * Options and thresholds are those of the operators (see {@link FAULT_TABLE} for the defaults);
 * they are checked here, when the detector is built: a RangeError names the group and option
 * (`communication.limit must be an integer >= 1, got 0`). The one `scheduler` drives every operator.
 * Inputs that are left out are not watched. Errors of any input pass through and end the whole
 * stream; it completes when every input has. Unsubscribing releases every timer and per-agent entry.
 *
 * @example
 * detectFaults({ heartbeats$, deliveries$ }, { scheduler })
 *   .subscribe(f => f.type === 'detected' ? healer.heal(f) : console.log('resolved', f.kind));
 */
export function detectFaults(inputs: FaultDetectorInputs, options: DetectFaultsOptions = {}): Observable<FaultEvent> {
  const {
    detector = { kind: 'deadline' } as LivenessDetector,
    communication,
    degradation: degradationOptions,
    resources,
    deadlock,
    scheduler = asyncScheduler,
  } = options ?? {};
  requireScheduler(scheduler);
  const { heartbeats, latencies, deliveries, usage, waits } = inputs ?? ({} as FaultDetectorInputs);
  requireInput('heartbeats', heartbeats, true);
  requireInput('latencies', latencies, false);
  requireInput('deliveries', deliveries, false);
  requireInput('usage', usage, false);
  requireInput('waits', waits, false);

  const timeouts = livenessFaults(requireGroup('detector', detector), scheduler);
  const links = built('communication', () =>
    consecutiveFailures({ ...requireGroup('communication', communication), scheduler }),
  );
  const slowness = built('degradation', () => degradation({ ...requireGroup('degradation', degradationOptions), scheduler }));
  const resourcesOptions = requireGroup('resources', resources);
  const pressure = built('resources', () => resourcePressure({ ...resourcesOptions, scheduler }));
  const deadlockOptions = requireGroup('deadlock', deadlock);
  const cycles = built('deadlock', () => waitForCycles({ ...deadlockOptions, scheduler }));
  const usageThreshold = resourcesOptions.threshold ?? FAULT_TABLE.resource_exhaustion.threshold;
  const waitMs = deadlockOptions.minDurationMs ?? FAULT_TABLE.protocol_deadlock.threshold;

  const streams: Array<Observable<FaultEvent>> = [heartbeats.pipe(timeouts)];

  if (deliveries !== undefined) {
    const { severity } = FAULT_TABLE.communication_failure;
    streams.push(
      deliveries.pipe(
        links,
        map(({ type, link, at, failures }): FaultEvent =>
          type === 'failing'
            ? { type: 'detected', kind: 'communication_failure', severity, at, link, detail: `${failures} consecutive delivery failures on ${link}` }
            : { type: 'resolved', kind: 'communication_failure', severity, at, link, detail: `${link} delivers again after ${failures} failures` },
        ),
      ),
    );
  }

  if (latencies !== undefined) {
    const { severity } = FAULT_TABLE.performance_degradation;
    streams.push(
      latencies.pipe(
        slowness,
        map(({ type, agentId, at, latencyMs, baselineMs, ratio }): FaultEvent => {
          const measured = `${fixed(latencyMs, 1)} ms, ${fixed(ratio, 2)} × its baseline of ${fixed(baselineMs, 1)} ms`;
          return type === 'degraded'
            ? { type: 'detected', kind: 'performance_degradation', severity, at, agentId, detail: `${agentId} responds in ${measured}` }
            : { type: 'resolved', kind: 'performance_degradation', severity, at, agentId, detail: `${agentId} is back to ${measured}` };
        }),
      ),
    );
  }

  if (usage !== undefined) {
    const { severity } = FAULT_TABLE.resource_exhaustion;
    streams.push(
      usage.pipe(
        pressure,
        map((event): FaultEvent => {
          const { agentId, at, resource } = event;
          const what = resource === undefined ? 'its capacity' : resource;
          const detected = event.type === 'exhausted';
          const detail = detected
            ? `${agentId} uses ${fixed(event.usage * 100, 1)} % of ${what} (threshold ${fixed(usageThreshold * 100, 1)} %)`
            : `${agentId} is down to ${fixed(event.usage * 100, 1)} % of ${what}`;
          const fields = { kind: 'resource_exhaustion', severity, at, agentId, detail } as const;
          const withResource = resource === undefined ? fields : { ...fields, resource };
          return detected ? { type: 'detected', ...withResource } : { type: 'resolved', ...withResource };
        }),
      ),
    );
  }

  if (waits !== undefined) {
    const { severity } = FAULT_TABLE.protocol_deadlock;
    streams.push(
      waits.pipe(
        cycles,
        map(({ type, members, since, at }): FaultEvent => {
          const cycle = [...members, members[0]].join(' → ');
          return type === 'deadlock'
            ? { type: 'detected', kind: 'protocol_deadlock', severity, at, members, detail: `circular wait ${cycle} since ${since} (≥ ${waitMs} ms)` }
            : { type: 'resolved', kind: 'protocol_deadlock', severity, at, members, detail: `circular wait ${cycle} broken` };
        }),
      ),
    );
  }

  return merge(...streams);
}

/** The agent_timeout part, from the `detector` option. */
function livenessFaults(detector: LivenessDetector, scheduler: SchedulerLike): OperatorFunction<Heartbeat, FaultEvent> {
  if (detector.kind === 'deadline') {
    const { timeoutMs = FAULT_TABLE.agent_timeout.threshold } = detector;
    built('detector', () => requireNumber('timeoutMs', timeoutMs, 0, true));
    const liveness = heartbeatDeadline({ timeoutMs, scheduler });
    // heartbeatDeadline's phi is elapsed / timeout: 1 at the deadline.
    return agentTimeouts(liveness, e => `no heartbeat from ${e.agentId} for ${Math.round(e.phi * timeoutMs)} ms (timeout ${timeoutMs} ms)`);
  }
  if (detector.kind === 'phi') {
    const { kind: _kind, ...phiOptions } = detector;
    const liveness = built('detector', () => phiAccrual({ ...phiOptions, scheduler }));
    const threshold = phiOptions.threshold ?? 8;
    return agentTimeouts(liveness, e => `phi ${fixed(e.phi, 2)} ≥ ${threshold} for ${e.agentId}: its heartbeats stopped`);
  }
  const kind: unknown = (detector as { kind?: unknown }).kind;
  throw new RangeError(`detector.kind must be 'deadline' or 'phi', got ${typeof kind === 'string' ? JSON.stringify(kind) : String(kind)}`);
}
