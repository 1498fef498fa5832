import { Observable, catchError, forkJoin, map, of, switchMap, timer } from 'rxjs';
import { createCoordinator, type AgentSlot, type CoordinatorOptions } from '../../src/coordinator.js';
import type { CoordinationEvent, CoordinationResult } from '../../src/events.js';
import type { InProcessAgent, Subtask, Task } from '../../streams/task.js';
import { VirtualScheduler } from '../../streams/virtualScheduler.js';
import { InMemoryNetwork, type Envelope } from '../../streams/network.js';
import { createRandom } from '../../streams/random.js';

// Delegation in virtual time: a running attempt asks for a child subtask of its task
// (`context.delegate$`/`delegate`), which is dispatched like any subtask and made once; the
// parent waits in its slot (its waiting is progress), and waits that close a circle are a
// protocol_deadlock that healing breaks.

interface Plan {
  /** Children the subtask asks for before its own work. */
  readonly children?: readonly Subtask[];
  /** Its own work, ms (after the children). */
  readonly workMs?: number;
  /** Catch a child's failure and finish anyway. */
  readonly tolerate?: boolean;
}

/** Runs `plan(subtask)`: asks for the children (all at once), then works; logs every run. */
function delegator(id: string, capabilities: string[], scheduler: VirtualScheduler, plan: (s: Subtask) => Plan, runs: string[], concurrency = 1): InProcessAgent {
  return {
    id,
    capabilities,
    concurrency,
    handle: (subtask, context) => {
      runs.push(`${id}:${subtask.id}`);
      if ((subtask.payload as { fail?: boolean } | undefined)?.fail === true) throw new Error(`${subtask.id} fails`);
      const { children = [], workMs = 100, tolerate = false } = plan(subtask);
      const asked = children.length === 0 ? of([] as unknown[]) : forkJoin(children.map(c => context.delegate$(c)));
      const waited = tolerate ? asked.pipe(catchError((e: Error) => of([`tolerated: ${e.message}`]))) : asked;
      return waited.pipe(
        switchMap(values => new Observable<unknown>(sub => {
          // Progress every second of its own work.
          const beat = scheduler.schedule(function () {
            context.heartbeat();
            this.schedule(undefined, 1000);
          }, 1000);
          const done = scheduler.schedule(() => {
            beat.unsubscribe();
            sub.next({ by: id, children: values });
            sub.complete();
          }, workMs);
          return () => {
            beat.unsubscribe();
            done.unsubscribe();
          };
        })),
      );
    },
  };
}

function run(scheduler: VirtualScheduler, slots: AgentSlot[], task: Task, options: Partial<CoordinatorOptions> = {}) {
  const coordinator = createCoordinator({ agents: slots, topology: 'star', scheduler, seed: 1, heartbeat: { intervalMs: 1000, jitterMs: 50 }, ...options });
  const events: CoordinationEvent[] = [];
  let result: CoordinationResult | undefined;
  coordinator.run$(task).subscribe(e => {
    events.push(e);
    if (e.type === 'task.completed') result = e.result;
  });
  for (let t = 0; result === undefined && t < 3_600_000; t += 500) scheduler.advanceTo(t);
  if (result === undefined) throw new Error('the task did not finish within a virtual hour');
  return { result, events, of: <T extends CoordinationEvent['type']>(type: T) => events.filter((e): e is Extract<CoordinationEvent, { type: T }> => e.type === type) };
}

const count = (runs: string[], subtaskId: string): number => runs.filter(r => r.endsWith(`:${subtaskId}`)).length;

describe('context.delegate: a child subtask of the same task', () => {
  it('runs the child on an agent with its capability and gives its result to the parent; the task reports both', () => {
    const scheduler = new VirtualScheduler();
    const runs: string[] = [];
    const plan = (s: Subtask): Plan => (s.id === 'write' ? { children: [{ id: 'search', capabilities: ['web'], payload: { q: 'x' } }] } : {});
    const slots = [{ agent: delegator('writer', ['text'], scheduler, plan, runs) }, { agent: delegator('searcher', ['web'], scheduler, plan, runs) }];
    const { result, of: events } = run(scheduler, slots, { id: 't', subtasks: [{ id: 'write', capabilities: ['text'] }] });
    expect(result.success).toBe(true);
    expect(result.results['write/search']).toEqual({ by: 'searcher', children: [] });
    expect(result.results['write']).toEqual({ by: 'writer', children: [{ by: 'searcher', children: [] }] });
    expect(result.metrics.subtasks).toBe(2);
    expect(runs).toEqual(['writer:write', 'searcher:write/search']);
    expect(events('subtask.delegated')).toEqual([expect.objectContaining({ subtaskId: 'write/search', parentId: 'write', agentId: 'writer' })]);
  });

  it('a parent waiting a minute for its child is not taken for hung (its asks are progress), and nothing is hedged', () => {
    const scheduler = new VirtualScheduler();
    const runs: string[] = [];
    const plan = (s: Subtask): Plan => (s.id === 'p' ? { children: [{ id: 'slow', capabilities: ['c'] }], workMs: 10 } : { workMs: 60_000 });
    const slots = [{ agent: delegator('a', ['p'], scheduler, plan, runs) }, { agent: delegator('b', ['c'], scheduler, plan, runs) }, { agent: delegator('spare', ['p'], scheduler, plan, runs) }];
    const { result, of: events } = run(scheduler, slots, { id: 't', subtasks: [{ id: 'p', capabilities: ['p'] }] }, { progressTimeoutMs: 5000 });
    expect(result.success).toBe(true);
    expect(events('subtask.silent')).toEqual([]);
    expect(count(runs, 'p')).toBe(1);
  });

  it('a child is made once: the parent run again elsewhere (its agent crashed after the child ended) gets the same child, not a new run of it', () => {
    const scheduler = new VirtualScheduler();
    const runs: string[] = [];
    // The parent works 10 s after its child; its first agent crashes in that time.
    const plan = (s: Subtask): Plan => (s.id === 'p' ? { children: [{ id: 'c', capabilities: ['c'] }], workMs: 10_000 } : { workMs: 500 });
    const a = delegator('a', ['p'], scheduler, plan, runs);
    const slots: AgentSlot[] = [{ agent: a }, { agent: delegator('b', ['c'], scheduler, plan, runs) }, { agent: delegator('a2', ['p'], scheduler, plan, runs) }];
    const coordinator = createCoordinator({ agents: slots, topology: 'star', scheduler, seed: 1, heartbeat: { intervalMs: 1000, jitterMs: 50 } });
    let result: CoordinationResult | undefined;
    coordinator.run$({ id: 't', subtasks: [{ id: 'p', capabilities: ['p'] }] }).subscribe(e => {
      if (e.type === 'task.completed') result = e.result;
    });
    let crashed = '';
    for (let t = 0; result === undefined && t < 600_000; t += 100) {
      scheduler.advanceTo(t);
      if (crashed === '' && runs.includes('b:p/c') && t > 3000) {
        crashed = runs.find(r => r.endsWith(':p'))?.split(':')[0] ?? '';
        coordinator.hosts.get(crashed)?.crash();
      }
    }
    expect(result?.success).toBe(true);
    expect(count(runs, 'p')).toBe(2);
    expect(count(runs, 'p/c')).toBe(1);
    expect(result?.results['p']).toMatchObject({ children: [{ by: 'b' }] });
  });

  it('a child that fails after its attempts fails the parent’s wait with the reason; a parent that tolerates it finishes', () => {
    const scheduler = new VirtualScheduler();
    const runs: string[] = [];
    const plan = (s: Subtask): Plan => (s.id === 'p' ? { children: [{ id: 'bad', capabilities: ['c'], payload: { fail: true }, maxAttempts: 2 }], tolerate: true } : {});
    const slots = [{ agent: delegator('a', ['p'], scheduler, plan, runs) }, { agent: delegator('b', ['c'], scheduler, plan, runs) }];
    const { result } = run(scheduler, slots, { id: 't', subtasks: [{ id: 'p', capabilities: ['p'] }] });
    expect(count(runs, 'p/bad')).toBe(2);
    expect(result.results['p']).toEqual({ by: 'a', children: [expect.stringMatching(/^tolerated: handler failed 2 time\(s\): p\/bad fails/)] });
    // The child is a subtask of the task: its failure is the task's to report.
    expect(result.failed['p/bad']).toMatch(/p\/bad fails/);
    expect(result.success).toBe(false);
  });

  it('a handler that does not wait for its child (the promise dropped) is not brought down when the child fails', async () => {
    const scheduler = new VirtualScheduler();
    const agent: InProcessAgent = {
      id: 'a',
      capabilities: [],
      handle: (subtask, context) => {
        if (subtask.id === 'p') void context.delegate({ id: 'doomed', payload: { fail: true }, maxAttempts: 1 });
        // The parent goes on working (10 s) while its child fails: the answer reaches a live run.
        return subtask.id === 'p' ? timer(10_000, scheduler).pipe(map(() => 'parent done')) : new Observable(sub => sub.error(new Error('child fails')));
      },
      concurrency: 2,
    };
    const { result } = run(scheduler, [{ agent }], { id: 't', subtasks: [{ id: 'p' }] });
    // The rejection reaches no one: it settles in the next microtasks, unhandled only if nothing caught it.
    await new Promise(resolve => setImmediate(resolve));
    expect(result.results['p']).toBe('parent done');
    expect(result.failed['p/doomed']).toMatch(/child fails/);
  });

  it('refuses a chain of children deeper than the bound, with the reason, and loses nothing', () => {
    const scheduler = new VirtualScheduler();
    const runs: string[] = [];
    // Every subtask delegates one more level: refused at depth 8, that child's parent fails, and so on up.
    const plan = (): Plan => ({ children: [{ id: 'd' }], workMs: 1 });
    const { result } = run(scheduler, [{ agent: delegator('a', [], scheduler, plan, runs, 16) }], { id: 't', subtasks: [{ id: 'r', maxAttempts: 1 }] });
    expect(result.success).toBe(false);
    const deepest = Object.keys(result.failed).sort((x, y) => y.length - x.length)[0] as string;
    expect(deepest.split('/')).toHaveLength(9);
    expect(result.failed[deepest]).toMatch(/nested 8 deep at most/);
    expect(Object.keys(result.results)).toEqual([]);
    expect(Object.keys(result.failed)).toHaveLength(9);
  });
});

describe('asks that are not the asker’s to make', () => {
  it('an ask for another agent’s attempt, or for an attempt that is over, is answered with why and makes no child', () => {
    const scheduler = new VirtualScheduler();
    const network = new InMemoryNetwork({ scheduler, random: createRandom(1) });
    const runs: string[] = [];
    const plan = (): Plan => ({ workMs: 10_000 });
    const coordinator = createCoordinator({ agents: [delegator('a', [], scheduler, plan, runs)], topology: 'star', scheduler, network, seed: 1 });
    const events: CoordinationEvent[] = [];
    let result: CoordinationResult | undefined;
    coordinator.run$({ id: 't', subtasks: [{ id: 'p' }] }).subscribe(e => {
      events.push(e);
      if (e.type === 'task.completed') result = e.result;
    });
    const answers: Envelope[] = [];
    network.join('mallory').subscribe(e => answers.push(e));
    scheduler.advanceTo(1000);
    const token = events.find(e => e.type === 'subtask.assigned')?.attempt as number;
    network.send({ from: 'mallory', to: 'coordinator', kind: 'delegate', body: { taskId: 't', subtaskId: 'p', attempt: token, subtask: { id: 'steal' } } });
    network.send({ from: 'mallory', to: 'coordinator', kind: 'delegate', body: { taskId: 'nope', subtaskId: 'p', attempt: token, subtask: { id: 'steal' } } });
    scheduler.advanceTo(60_000);
    expect(answers.map(a => [a.kind, (a.body as { ok: boolean }).ok, (a.body as { error: string }).error])).toEqual([
      ['delegated', false, `attempt ${token} of p is not mallory's to delegate from (it ended, or went elsewhere)`],
      ['delegated', false, `attempt ${token} of p is not mallory's to delegate from (it ended, or went elsewhere)`],
    ]);
    expect(events.filter(e => e.type === 'subtask.delegated')).toEqual([]);
    expect(result?.success).toBe(true);
    expect(Object.keys(result?.results ?? {})).toEqual(['p']);
  });
});

describe('circular waits', () => {
  /** a runs p1 (needs A) which waits for a child needing B; b runs p2 (needs B) which waits for a child needing A: one slot each. */
  const crossed = (scheduler: VirtualScheduler, runs: string[], childMs = 100) => {
    const plan = (s: Subtask): Plan =>
      s.id === 'p1' ? { children: [{ id: 'c1', capabilities: ['B'] }] } : s.id === 'p2' ? { children: [{ id: 'c2', capabilities: ['A'] }] } : { workMs: childMs };
    return [{ agent: delegator('a', ['A'], scheduler, plan, runs) }, { agent: delegator('b', ['B'], scheduler, plan, runs) }];
  };
  const task: Task = { id: 't', subtasks: [{ id: 'p1', capabilities: ['A'] }, { id: 'p2', capabilities: ['B'] }] };

  it('each agent’s only slot waits for work only the other can take: protocol_deadlock after deadlockMs, one waiter aborted, everything finishes, each child runs once', () => {
    const scheduler = new VirtualScheduler();
    const runs: string[] = [];
    const { result, of: events } = run(scheduler, crossed(scheduler, runs), task, { deadlockMs: 10_000 });
    expect(result.success).toBe(true);
    const [fault] = events('fault.detected').filter(f => f.kind === 'protocol_deadlock');
    expect(fault?.detail).toMatch(/circular wait a → b → a/);
    expect(fault?.at).toBeGreaterThanOrEqual(10_000);
    expect(fault?.at).toBeLessThan(12_000);
    expect(events('healing.succeeded')).toEqual([expect.objectContaining({ strategy: 'breakWaitChain' })]);
    expect(count(runs, 'p1/c1')).toBe(1);
    expect(count(runs, 'p2/c2')).toBe(1);
    // One parent was aborted and ran again.
    expect(count(runs, 'p1') + count(runs, 'p2')).toBe(3);
  });

  it('a busy team is not a deadlock: a waits for a child only b can run, and b is busy with a long subtask of its own', () => {
    const scheduler = new VirtualScheduler();
    const runs: string[] = [];
    const plan = (s: Subtask): Plan => (s.id === 'p1' ? { children: [{ id: 'c1', capabilities: ['B'] }] } : { workMs: s.id === 'long' ? 60_000 : 100 });
    const slots = [{ agent: delegator('a', ['A'], scheduler, plan, runs) }, { agent: delegator('b', ['B'], scheduler, plan, runs) }];
    const { result, of: events } = run(scheduler, slots, { id: 't', subtasks: [{ id: 'long', capabilities: ['B'] }, { id: 'p1', capabilities: ['A'] }] }, { deadlockMs: 10_000 });
    expect(result.success).toBe(true);
    expect(events('fault.detected').filter(f => f.kind === 'protocol_deadlock')).toEqual([]);
    expect([...runs].sort()).toEqual(['a:p1', 'b:long', 'b:p1/c1']);
  });
});
