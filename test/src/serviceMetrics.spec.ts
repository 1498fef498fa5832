import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { startAgent, submitTask, type AgentProcess } from '../../src/remote.js';
import { Service } from '../../src/service.js';

// /metrics as Prometheus reads it: the text format parsed by a parser of its own, the counts
// compared with the coordinator's own result.

const TOKEN = 'metrics-token';

const value = (families: ReturnType<typeof parsePrometheusTextFormat>, name: string, labels: Record<string, string> = {}): number => {
  const family = families.find(f => f.name === name);
  if (family === undefined) throw new Error(`no ${name}`);
  const sample = family.metrics.find(m => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  if (sample === undefined) throw new Error(`no ${name}${JSON.stringify(labels)}`);
  return Number(sample.value ?? sample.count);
};

describe('/metrics', () => {
  let service: Service;
  const agents: AgentProcess[] = [];

  afterEach(async () => {
    for (const agent of agents.splice(0)) await agent.leave().catch(() => undefined);
    await service?.close();
  });

  async function serve(metricsPublic = false): Promise<string> {
    service = await Service.start({ token: TOKEN, port: 0, metricsPublic, coordinator: { topology: 'star', heartbeat: { intervalMs: 100 } }, metrics: { processMetrics: false } });
    return service.url.replace(/^ws/, 'http');
  }

  it('asks for the token unless public, and counts what the coordinator counted', async () => {
    const http = await serve();
    expect((await fetch(`${http}/metrics`)).status).toBe(401);
    expect((await fetch(`${http}/metrics`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    for (const id of ['m-0', 'm-1', 'm-2']) agents.push(startAgent({ url: service.url, token: TOKEN, id, heartbeatIntervalMs: 100 }));
    await new Promise(resolve => setTimeout(resolve, 400));
    const subtasks = [...Array.from({ length: 30 }, (_, i) => ({ id: `ok-${i}`, payload: { sleepMs: 5 } })), ...Array.from({ length: 3 }, (_, i) => ({ id: `bad-${i}`, payload: { fail: true } }))];
    const result = await submitTask({ url: service.url, token: TOKEN, task: { id: 'counted', subtasks } });
    const response = await fetch(`${http}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const families = parsePrometheusTextFormat(await response.text());
    expect(result.metrics.completed).toBe(30);
    expect(result.metrics.failed).toBe(3);
    expect(value(families, 'rxswarm_subtasks_ended_total', { outcome: 'completed' })).toBe(result.metrics.completed);
    expect(value(families, 'rxswarm_subtasks_ended_total', { outcome: 'failed' })).toBe(result.metrics.failed);
    expect(value(families, 'rxswarm_subtasks', { state: 'done' })).toBe(result.metrics.completed);
    expect(value(families, 'rxswarm_subtasks', { state: 'failed' })).toBe(result.metrics.failed);
    expect(value(families, 'rxswarm_tasks', { state: 'failed' })).toBe(1);
    expect(value(families, 'rxswarm_agents', { state: 'alive' })).toBe(3);
    expect(value(families, 'rxswarm_protocol', { protocol: 'star' })).toBe(1);
    // This parser keeps a histogram's buckets only (not its labels): one protocol ran, one series.
    const latency = families.find(f => f.name === 'rxswarm_subtask_latency_seconds')!;
    expect(latency.metrics).toHaveLength(1);
    expect(Number(latency.metrics[0]!.buckets!['+Inf'])).toBe(result.metrics.completed);
    expect(value(families, 'rxswarm_detections_total', { kind: 'suspicion' })).toBe(0);
    expect(value(families, 'rxswarm_subtasks_hedged_total')).toBe(0); // nothing kept silent
    expect(families.find(f => f.name === 'rxswarm_subtask_latency_seconds')?.type).toBe('HISTOGRAM');
    // Phi is the view's, from the beats it has seen: an agent whose connection blinked on a loaded
    // machine has none until its next beat (seen once in a full run), so this is asked again for a while.
    const phiOf = async (): Promise<string[]> => {
      const text = await (await fetch(`${http}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
      return (parsePrometheusTextFormat(text).find(f => f.name === 'rxswarm_agent_phi')?.metrics ?? []).map(m => m.labels?.['agent'] ?? '').sort();
    };
    let phis = await phiOf();
    for (let i = 0; i < 50 && phis.length < 3; i++) {
      await new Promise(resolve => setTimeout(resolve, 100));
      phis = await phiOf();
    }
    expect(phis).toEqual(['m-0', 'm-1', 'm-2']);
  });

  it('counts the children that running attempts asked for', async () => {
    const http = await serve();
    // Each parent asks for two children; a child answers at once.
    const handler = async (subtask: { id: string }, context: { delegate(s: { id: string }): Promise<unknown> }) =>
      subtask.id.includes('/') ? 'leaf' : Promise.all([context.delegate({ id: 'x' }), context.delegate({ id: 'y' })]);
    for (const id of ['d-0', 'd-1']) agents.push(startAgent({ url: service.url, token: TOKEN, id, slots: 4, heartbeatIntervalMs: 100, handler }));
    await new Promise(resolve => setTimeout(resolve, 400));
    const result = await submitTask({ url: service.url, token: TOKEN, task: { id: 'delegating', subtasks: [{ id: 'p-0' }, { id: 'p-1' }, { id: 'p-2' }] } });
    expect(result.success).toBe(true);
    expect(result.results['p-1']).toEqual(['leaf', 'leaf']);
    const families = parsePrometheusTextFormat(await (await fetch(`${http}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text());
    expect(value(families, 'rxswarm_subtasks_delegated_total')).toBe(6);
    expect(value(families, 'rxswarm_subtasks_ended_total', { outcome: 'completed' })).toBe(9);
  });

  it('is open with metricsPublic; other paths and methods are refused', async () => {
    const http = await serve(true);
    expect((await fetch(`${http}/metrics`)).status).toBe(200);
    expect((await fetch(`${http}/nothing-here`)).status).toBe(404);
    expect((await fetch(`${http}/metrics`, { method: 'POST', body: 'x' })).status).toBe(405);
    const page = await fetch(`${http}/`);
    expect(page.headers.get('content-security-policy')).toMatch(/default-src 'none'/);
  });
});
