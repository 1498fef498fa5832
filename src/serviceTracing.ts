import { SpanStatusCode, context, trace, type Span, type Tracer } from '@opentelemetry/api';
import type { CoordinationEvent } from './events.js';

/**
 * Traces of tasks and subtasks through `@opentelemetry/api`: a span per task (`rxswarm.task`, from
 * its start to its end) and, inside it, a span per attempt of a subtask (`rxswarm.subtask`, from
 * its assignment to its result, failure, requeue or cancellation), with faults, healing and
 * protocol switches as events on the task's span. Without an OpenTelemetry SDK registered in the
 * process (when a task starts) the API is a no-op, and this costs a map lookup per event. Spans
 * open only for attempts out now: bounded by the runs.
 *
 * @example
 * const tracing = new ServiceTracing();
 * tracing.taskStarted('t', Date.now()); coordinator.run$(task).subscribe(e => tracing.event(e, 't'));
 */
export class ServiceTracing {
  private readonly tracer: Tracer;
  private readonly tasks = new Map<string, Span>();
  /** Spans of attempts out now, by task, subtask and attempt. */
  private readonly attempts = new Map<string, { readonly span: Span; readonly taskId: string }>();

  constructor(version = '0') {
    this.tracer = trace.getTracer('rxswarm', version);
  }

  taskStarted(taskId: string, at: number, subtasks: number): void {
    this.tasks.set(taskId, this.tracer.startSpan('rxswarm.task', { startTime: at, attributes: { 'rxswarm.task.id': taskId, 'rxswarm.task.subtasks': subtasks } }));
  }

  taskEnded(taskId: string, at: number, outcome: { success: boolean; completed: number; failed: number; error?: string }): void {
    const span = this.tasks.get(taskId);
    if (span === undefined) return;
    this.tasks.delete(taskId);
    span.setAttributes({ 'rxswarm.task.completed': outcome.completed, 'rxswarm.task.failed': outcome.failed });
    span.setStatus(outcome.success ? { code: SpanStatusCode.OK } : { code: SpanStatusCode.ERROR, message: outcome.error ?? `${outcome.failed} subtask(s) failed` });
    span.end(at);
    // Attempts still open belonged to it (a cancelled or failed run): they end with it.
    for (const [attempt, open] of this.attempts) {
      if (open.taskId !== taskId) continue;
      open.span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.error ?? 'the task ended' });
      open.span.end(at);
      this.attempts.delete(attempt);
    }
  }

  event(e: CoordinationEvent, taskId: string): void {
    const task = this.tasks.get(taskId);
    switch (e.type) {
      case 'subtask.assigned': {
        // No SDK when the task started (its span a no-op, of an invalid context): its attempts'
        // spans would be no-ops too, and they are most of the calls; they are not made.
        if (task !== undefined && !trace.isSpanContextValid(task.spanContext())) return;
        const parent = task === undefined ? context.active() : trace.setSpan(context.active(), task);
        const span = this.tracer.startSpan('rxswarm.subtask', { startTime: e.at, attributes: { 'rxswarm.task.id': taskId, 'rxswarm.subtask.id': e.subtaskId, 'rxswarm.agent.id': e.agentId, 'rxswarm.attempt': e.attempt, 'rxswarm.hops': e.hops } }, parent);
        this.attempts.set(`${taskId}\u0000${e.subtaskId}#${e.attempt}`, { span, taskId });
        return;
      }
      case 'subtask.completed':
        return this.endAttempt(`${taskId}\u0000${e.subtaskId}#${e.attempt}`, e.at, undefined);
      case 'subtask.rejected':
        return this.endAttempt(`${taskId}\u0000${e.subtaskId}#${e.attempt}`, e.at, `rejected: ${e.reason}`);
      case 'subtask.requeued':
        return this.endAttempt(`${taskId}\u0000${e.subtaskId}#${e.attempt}`, e.at, `requeued: ${e.reason}`);
      case 'subtask.hedged':
        task?.addEvent('subtask.hedged', { subtask: e.subtaskId, agent: e.agentId, attempt: e.attempt, 'of.agent': e.of.agentId, 'of.attempt': e.of.attempt }, e.at);
        return;
      case 'fault.detected':
        task?.addEvent('fault.detected', { kind: e.kind, severity: e.severity, detail: e.detail, ...(e.agentId === undefined ? {} : { agent: e.agentId }) }, e.at);
        return;
      case 'healing.succeeded':
      case 'healing.failed':
        task?.addEvent(e.type, { strategy: e.strategy, fault: e.faultKind, detail: e.detail }, e.at);
        return;
      case 'protocol.switched':
        task?.addEvent('protocol.switched', { from: e.switch.from, to: e.switch.to, reason: e.switch.reason }, e.at);
        return;
      case 'agent.suspected':
      case 'agent.down':
        task?.addEvent(e.type, { agent: e.agentId }, e.at);
        return;
      default:
        return;
    }
  }

  private endAttempt(attempt: string, at: number, error: string | undefined): void {
    const span = this.attempts.get(attempt)?.span;
    if (span === undefined) return;
    this.attempts.delete(attempt);
    span.setStatus(error === undefined ? { code: SpanStatusCode.OK } : { code: SpanStatusCode.ERROR, message: error });
    span.end(at);
  }
}
