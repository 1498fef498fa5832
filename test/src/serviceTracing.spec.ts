import { INVALID_SPAN_CONTEXT, trace, type Span, type SpanOptions, type Tracer, type TracerProvider } from '@opentelemetry/api';
import { ServiceTracing } from '../../src/serviceTracing.js';

// Spans as an OpenTelemetry SDK would get them, through a provider of our own that records them.

interface Recorded {
  readonly name: string;
  readonly options: SpanOptions | undefined;
  readonly parent: Recorded | undefined;
  status?: { code: number; message?: string };
  endedAt?: number | undefined;
  readonly events: string[];
}

function recordingProvider(spans: Recorded[]): TracerProvider {
  const bySpan = new Map<Span, Recorded>();
  const tracer: Tracer = {
    startSpan(name, options, context) {
      const parentSpan = context === undefined ? undefined : trace.getSpan(context);
      const record: Recorded = { name, options, parent: parentSpan === undefined ? undefined : bySpan.get(parentSpan), events: [] };
      spans.push(record);
      const span = {
        spanContext: () => ({ traceId: '1'.repeat(32), spanId: String(spans.length).padStart(16, '0'), traceFlags: 1 }),
        setAttribute: () => span,
        setAttributes: () => span,
        addEvent: (event: string) => (record.events.push(event), span),
        addLink: () => span,
        addLinks: () => span,
        setStatus: (status: { code: number; message?: string }) => ((record.status = status), span),
        updateName: () => span,
        end: (at?: number) => void (record.endedAt = at),
        isRecording: () => true,
        recordException: () => undefined,
      } as unknown as Span;
      bySpan.set(span, record);
      return span;
    },
    startActiveSpan: (() => {
      throw new Error('not used');
    }) as Tracer['startActiveSpan'],
  };
  return { getTracer: () => tracer };
}

describe('ServiceTracing', () => {
  const spans: Recorded[] = [];
  beforeAll(() => void trace.setGlobalTracerProvider(recordingProvider(spans)));
  afterAll(() => trace.disable());

  it('makes a span per task and one per attempt inside it, ended with their outcome', () => {
    const tracing = new ServiceTracing('1.0.0');
    tracing.taskStarted('t', 1000, 2);
    tracing.event({ type: 'subtask.assigned', at: 1010, subtaskId: 'a', agentId: 'x', attempt: 1, hops: 1 }, 't');
    tracing.event({ type: 'subtask.assigned', at: 1011, subtaskId: 'b', agentId: 'y', attempt: 1, hops: 1 }, 't');
    tracing.event({ type: 'subtask.requeued', at: 1500, subtaskId: 'b', attempt: 1, reason: 'y down' }, 't');
    tracing.event({ type: 'fault.detected', at: 1500, kind: 'agent_timeout', severity: 'medium', agentId: 'y', detail: 'phi' }, 't');
    tracing.event({ type: 'subtask.assigned', at: 1501, subtaskId: 'b', agentId: 'x', attempt: 2, hops: 1 }, 't');
    tracing.event({ type: 'subtask.completed', at: 1600, subtaskId: 'a', agentId: 'x', attempt: 1 }, 't');
    tracing.taskEnded('t', 1700, { success: false, completed: 1, failed: 1, error: 'cancelled' });
    const [task, a, b1, b2] = spans;
    expect(spans.map(s => s.name)).toEqual(['rxswarm.task', 'rxswarm.subtask', 'rxswarm.subtask', 'rxswarm.subtask']);
    expect([a, b1, b2].every(s => s?.parent === task)).toBe(true);
    expect(a).toMatchObject({ status: { code: 1 }, endedAt: 1600 });
    expect(b1).toMatchObject({ status: { code: 2, message: 'requeued: y down' }, endedAt: 1500 });
    expect(b2).toMatchObject({ status: { code: 2, message: 'cancelled' }, endedAt: 1700 }); // open when the task ended
    expect(task).toMatchObject({ status: { code: 2, message: 'cancelled' }, endedAt: 1700, events: ['fault.detected'] });
    expect(task!.options?.startTime).toBe(1000);
  });

  it('makes no attempt spans for a task whose span is a no-op (no SDK when it started): a map lookup per event', () => {
    // A provider whose spans are the API's no-op spans (an invalid context), recording what is asked of it.
    const asked: string[] = [];
    const noop = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);
    trace.disable();
    trace.setGlobalTracerProvider({ getTracer: () => ({ startSpan: (name: string) => (asked.push(name), noop) }) as unknown as Tracer });
    try {
      const tracing = new ServiceTracing('1.0.0');
      tracing.taskStarted('quiet', 0, 1);
      tracing.event({ type: 'subtask.assigned', at: 1, subtaskId: 'a', agentId: 'x', attempt: 1, hops: 1 }, 'quiet');
      tracing.event({ type: 'subtask.completed', at: 2, subtaskId: 'a', agentId: 'x', attempt: 1 }, 'quiet');
      tracing.taskEnded('quiet', 3, { success: true, completed: 1, failed: 0 });
      expect(asked).toEqual(['rxswarm.task']);
    } finally {
      trace.disable();
      trace.setGlobalTracerProvider(recordingProvider(spans));
    }
  });
});
