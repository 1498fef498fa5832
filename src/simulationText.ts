import { describeFault } from '../streams/faultSpec.js';
import type { Fault } from '../streams/faults.js';
import type { CoordinationEvent } from './events.js';
import { FAULT_TABLE } from './faultDetector.js';
import { describeEvent, reportLines } from './liveView.js';
import type { SimulationProgress, SimulationReport } from './simulate.js';

type Colors = Parameters<typeof reportLines>[1];

/** A verdict about an agent: the detector suspected it, or the fault detector named a fault of it. */
/** What detects a fault of an agent: a suspicion, a detected fault, or an attempt of its gone silent (a hang). */
export type Verdict = Extract<CoordinationEvent, { type: 'agent.suspected' | 'fault.detected' | 'subtask.silent' }>;

/** The verdicts about agents among a run's events, in order. */
export function verdictsOf(events: readonly CoordinationEvent[]): Verdict[] {
  return events.filter((e): e is Verdict => (e.type === 'agent.suspected' || e.type === 'fault.detected' || e.type === 'subtask.silent') && e.agentId !== undefined);
}

/** Agents a fault harms; undefined for a restart and a coordinator crash (nothing for the coordinator to detect). */
export function targets(f: Fault, ids: readonly string[]): readonly string[] | undefined {
  switch (f.kind) {
    case 'crash':
    case 'hang':
    case 'slow':
    case 'exhaust':
      return [f.agent];
    case 'restart':
    case 'coordinatorCrash':
      return undefined;
    case 'drop':
      return f.agents ?? ids;
    case 'partition':
      return f.groups.slice(1).flat();
    case 'deadlock':
      return f.agents;
  }
}

/** `[from, to)` in which a verdict about a target counts as detecting the fault: to its end, plus the detection bound. */
function span(f: Fault, boundMs: number): [number, number] {
  if (f.kind === 'drop') return [f.fromMs ?? 0, (f.toMs ?? Infinity) + boundMs];
  if (f.kind === 'partition') return [f.atMs, (f.healAtMs ?? Infinity) + boundMs];
  return [f.atMs, Infinity];
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

/** How the faults' targets were detected, e.g. `detected at 5.21 s (+3212 ms)` or `agent-2 at 4.31 s (+3309 ms), agent-3 not detected`. */
export function detectionOf(f: Fault, ids: readonly string[], verdicts: readonly Verdict[], boundMs: number): string | undefined {
  const harmed = targets(f, ids);
  if (harmed === undefined) return undefined;
  const { threshold } = FAULT_TABLE.resource_exhaustion;
  if (f.kind === 'exhaust' && f.usage < threshold) return `below the threshold of ${threshold * 100} %: nothing to detect`;
  const [from, to] = span(f, boundMs);
  // An exhausted agent is detected by its usage alone, not by a suspicion.
  const counts = (v: Verdict): boolean => f.kind !== 'exhaust' || (v.type === 'fault.detected' && v.kind === 'resource_exhaustion');
  const first = (id: string): number | undefined => verdicts.find(v => v.agentId === id && v.at >= from && v.at < to && counts(v))?.at;
  const when = (at: number | undefined): string => (at === undefined ? 'not detected' : `at ${seconds(at)} (+${Math.round(at - from)} ms)`);
  if (harmed.length === 1) {
    const at = first(harmed[0] as string);
    return at === undefined ? 'not detected' : `detected ${when(at)}`;
  }
  const found = harmed.map(id => [id, first(id)] as const);
  if (harmed.length <= 5) return found.map(([id, at]) => `${id} ${when(at)}`).join(', ');
  const detected = found.filter(([, at]) => at !== undefined).map(([, at]) => at as number);
  return `${detected.length} of ${harmed.length} agents detected${detected.length === 0 ? '' : `, the first ${when(Math.min(...detected))}`}`;
}

/**
 * What a coordinator crash did to an agent's fault: nothing to act on while the coordinator (and
 * the agents living in its process) was down; a crash or hang of an agent then revived by the
 * coordinator's restart before any verdict is not a miss of the detector. Undefined otherwise.
 */
function coordinatorNote(f: Fault, faults: readonly Fault[]): string | undefined {
  if (f.kind !== 'crash' && f.kind !== 'hang' && f.kind !== 'slow' && f.kind !== 'restart' && f.kind !== 'exhaust') return undefined;
  const crashes = faults.filter((c): c is Extract<Fault, { kind: 'coordinatorCrash' }> => c.kind === 'coordinatorCrash');
  const down = crashes.find(c => c.atMs <= f.atMs && f.atMs < c.restartAtMs);
  if (down !== undefined && f.kind !== 'slow') return `nothing to act on: the coordinator and its agents were down until ${seconds(down.restartAtMs)}`;
  return undefined;
}

/** How a circular wait ended: found (protocol_deadlock) and when, or why there was nothing to find. */
function deadlockNote(f: Extract<Fault, { kind: 'deadlock' }>, report: SimulationReport): string {
  const found = report.detections.find(d => d.kind === 'deadlock' && d.faultAtMs === f.atMs && d.agentId === f.agents[0]);
  if (found === undefined) return 'nothing to act on: the coordinator and its agents were down';
  if (found.suspectedAtMs !== undefined) return `protocol_deadlock detected at ${seconds(found.suspectedAtMs)} (+${Math.round(found.suspectedAtMs - f.atMs)} ms)`;
  return 'no circular wait formed (an agent outside the circle could take the children, or a slot stayed free)';
}

/**
 * The text report of `rxswarm simulate`: the outcome, every injected fault (in `describeFault`'s
 * words) with how it was detected, every detection the engine made (suspicions and detected faults,
 * one line each, timed from the start), the false suspicions against the detection bound, then the
 * coordination's own report.
 */
export function simulationLines(report: SimulationReport, faults: readonly Fault[], agentIds: readonly string[], pc?: Colors): string[] {
  const lines = [`completed ${report.completed}, failed ${report.failed}, lost ${report.lost}, accepted twice ${report.duplicatesAccepted}, runs ${report.executions}`];
  const verdicts = verdictsOf(report.events);
  lines.push(`faults injected: ${faults.length === 0 ? 'none' : faults.length}`);
  for (const f of faults) {
    let detection = f.kind === 'deadlock' ? deadlockNote(f, report) : (coordinatorNote(f, faults) ?? detectionOf(f, agentIds, verdicts, report.detectionBoundMs));
    const after = f.kind === 'crash' || f.kind === 'hang' ? f.atMs : Infinity;
    const crashedAfter = detection === 'not detected' ? faults.find((c): c is Extract<Fault, { kind: 'coordinatorCrash' }> => c.kind === 'coordinatorCrash' && c.atMs >= after) : undefined;
    if (crashedAfter !== undefined) detection += ` before the coordinator crashed at ${seconds(crashedAfter.atMs)} (its restart brought the agent back)`;
    lines.push(`  ${describeFault(f)}${detection === undefined ? '' : `: ${detection}`}`);
  }
  // A detected fault names what the suspicion before it at the same instant said: one line for both.
  const faulted = new Set(report.events.flatMap(e => (e.type === 'fault.detected' && e.agentId !== undefined ? [`${e.agentId}@${e.at}`] : [])));
  const detections = report.events.filter(e => e.type === 'fault.detected' || (e.type === 'agent.suspected' && !faulted.has(`${e.agentId}@${e.at}`)));
  lines.push(`detections: ${detections.length === 0 ? 'none' : detections.length}`);
  for (const e of detections) lines.push(`  ${describeEvent(e, 0, pc)}`);
  lines.push(`false suspicions ${report.falseSuspicions}; detection bound ${report.detectionBoundMs} ms`);
  return [...lines, ...reportLines(report.result, pc)];
}

/** Redraws the progress line at most this often (wall time). */
const PROGRESS_EVERY_MS = 200;

/**
 * A progress line for a long simulation on a terminal, redrawn in place on `stream` (stderr, so the
 * report on stdout stays clean) at most every 200 ms of `clock` time; `done()` erases it. Nothing
 * at all when `stream` is not a terminal. `clock` is wall time in ms (`performance.now`).
 */
export function progressLine(stream: NodeJS.WriteStream, clock: () => number): { onProgress?: (p: SimulationProgress) => void; done(): void } {
  if (stream.isTTY !== true) return { done: () => undefined };
  let last = clock();
  let drawn = false;
  return {
    onProgress: p => {
      const now = clock();
      if (now - last < PROGRESS_EVERY_MS) return;
      last = now;
      drawn = true;
      stream.write(`\r\x1b[Ksimulating: ${(p.atMs / 1000).toFixed(1)} virtual s, ${p.ended} of ${p.subtasks} subtasks ended`);
    },
    done: () => {
      if (drawn) stream.write('\r\x1b[K');
    },
  };
}
