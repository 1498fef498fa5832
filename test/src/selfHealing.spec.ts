import fc from 'fast-check';
import { NEVER, Observable, map, throwError, timer, EMPTY, type SchedulerLike } from 'rxjs';
import { FAULT_KINDS, FAULT_TABLE, faultKey, type DetectedFault, type FaultKind } from '../../src/faultDetector.js';
import {
  DEFAULT_FALLBACK_PREFERENCE,
  FallbackPolicy,
  HEALING_CHAINS,
  HEALING_STRATEGIES,
  SelfHealingManager,
  type ActionReply,
  type EngineActions,
  type HealingEvent,
  type HealingResult,
  type HealingStrategy,
  type SelfHealingOptions,
} from '../../src/selfHealing.js';
import { VirtualScheduler } from '../../streams/virtualScheduler.js';

/** A detected fault of `kind` about `subject` (an agent, a link, or cycle members joined by spaces). */
function fault(kind: FaultKind, subject = 'a', at = 0): DetectedFault {
  const base = { type: 'detected', kind, severity: FAULT_TABLE[kind].severity, at, detail: 'test' } as const;
  if (kind === 'communication_failure') return { ...base, link: subject };
  if (kind === 'protocol_deadlock') return { ...base, members: subject.split(' ') };
  return { ...base, agentId: subject };
}

type Script = Partial<Record<HealingStrategy, (fault: DetectedFault) => ActionReply>>;

/** The test double of the engine: records each call, answers from `script` or `otherwise`. */
function recording(script: Script = {}, otherwise: ActionReply = false) {
  const calls: Array<{ strategy: HealingStrategy; key: string }> = [];
  const actions = Object.fromEntries(
    HEALING_STRATEGIES.map(strategy => [
      strategy,
      (f: DetectedFault): ActionReply => {
        calls.push({ strategy, key: faultKey(f) });
        const answer = script[strategy];
        return answer === undefined ? otherwise : answer(f);
      },
    ]),
  ) as unknown as EngineActions;
  return { actions, calls, strategies: () => calls.map(c => c.strategy) };
}

function setup(script: Script = {}, options: SelfHealingOptions = {}, otherwise: ActionReply = false) {
  const scheduler = new VirtualScheduler();
  const double = recording(script, otherwise);
  const manager = new SelfHealingManager(double.actions, { scheduler, ...options });
  const events: HealingEvent[] = [];
  let completed = false;
  manager.events$.subscribe({ next: e => events.push(e), complete: () => (completed = true) });
  /** Heals and returns the result once there is one (synchronously for synchronous actions). */
  const heal = (f: DetectedFault) => {
    let result: HealingResult | undefined;
    manager.heal(f).subscribe(r => (result = r));
    return () => result;
  };
  return { scheduler, manager, events, heal, ...double, completed: () => completed, types: () => events.map(e => e.type) };
}

describe('SelfHealingManager', () => {
  describe('chains', () => {
    it.each([
      ['agent_timeout', ['restartAgent', 'reassignSubtasks', 'replaceAgent']],
      ['communication_failure', ['resetChannels', 'switchRoute', 'useAlternativeRoutes']],
      ['performance_degradation', ['rebalanceResources', 'reduceLoad', 'switchToCheaperProtocol']],
      ['resource_exhaustion', ['reduceLoad', 'reassignSubtasks', 'replaceAgent']],
      ['protocol_deadlock', ['breakWaitChain', 'restartCoordination', 'switchProtocol']],
    ] as const)('%s: %j, in order, until one works', (kind, chain) => {
      expect(HEALING_CHAINS[kind]).toEqual(chain);
      const h = setup();
      const result = h.heal(fault(kind));
      expect(h.strategies()).toEqual(chain);
      expect(result()).toMatchObject({ status: 'exhausted', attempts: chain.map((strategy, i) => ({ strategy, ok: false, attempt: i + 1 })) });
      expect(h.types()).toEqual([
        'healing.attempted',
        'healing.failed',
        'healing.attempted',
        'healing.failed',
        'healing.attempted',
        'healing.failed',
        'healing.exhausted',
      ]);
    });

    it('stops at the first strategy that works', () => {
      const h = setup({ reassignSubtasks: () => true });
      const result = h.heal(fault('agent_timeout'));
      expect(h.strategies()).toEqual(['restartAgent', 'reassignSubtasks']);
      expect(result()).toMatchObject({ status: 'healed', strategy: 'reassignSubtasks' });
      expect(h.types()).toEqual(['healing.attempted', 'healing.failed', 'healing.attempted', 'healing.succeeded']);
    });

    it.each([1, 2])('tries at most maxAttempts = %d strategies', maxAttempts => {
      const h = setup({}, { maxAttempts });
      const result = h.heal(fault('protocol_deadlock', 'a b'));
      expect(h.strategies()).toEqual(HEALING_CHAINS.protocol_deadlock.slice(0, maxAttempts));
      expect(result()?.attempts).toHaveLength(maxAttempts);
      expect(h.manager.history).toHaveLength(maxAttempts);
    });

    it('cuts a longer custom chain to maxAttempts (3 by default); an empty chain is exhausted at once', () => {
      const h = setup({}, { chains: { agent_timeout: ['reduceLoad', 'restartAgent', 'switchRoute', 'replaceAgent'], resource_exhaustion: [] } });
      expect(h.manager.chains.agent_timeout).toEqual(['reduceLoad', 'restartAgent', 'switchRoute']);
      h.heal(fault('agent_timeout'));
      expect(h.strategies()).toEqual(['reduceLoad', 'restartAgent', 'switchRoute']);
      const empty = h.heal(fault('resource_exhaustion'));
      expect(empty()).toMatchObject({ status: 'exhausted', attempts: [] });
      expect(h.types().at(-1)).toBe('healing.exhausted');
    });
  });

  describe('history', () => {
    it('records every attempt with its fault, strategy, outcome, time and position', () => {
      const h = setup({ switchRoute: () => ({ ok: true, detail: 'via c' }), resetChannels: () => ({ ok: false, detail: 'still down' }) });
      h.scheduler.advanceTo(1000);
      h.heal(fault('communication_failure', 'a->b'));
      h.scheduler.advanceTo(2000);
      h.heal(fault('protocol_deadlock', 'a b c'));
      expect(h.manager.history).toEqual([
        { faultKind: 'communication_failure', link: 'a->b', strategy: 'resetChannels', ok: false, detail: 'still down', at: 1000, durationMs: 0, attempt: 1 },
        { faultKind: 'communication_failure', link: 'a->b', strategy: 'switchRoute', ok: true, detail: 'via c', at: 1000, durationMs: 0, attempt: 2 },
        { faultKind: 'protocol_deadlock', members: ['a', 'b', 'c'], strategy: 'breakWaitChain', ok: false, detail: 'breakWaitChain failed', at: 2000, durationMs: 0, attempt: 1 },
        { faultKind: 'protocol_deadlock', members: ['a', 'b', 'c'], strategy: 'restartCoordination', ok: false, detail: 'restartCoordination failed', at: 2000, durationMs: 0, attempt: 2 },
        { faultKind: 'protocol_deadlock', members: ['a', 'b', 'c'], strategy: 'switchProtocol', ok: false, detail: 'switchProtocol failed', at: 2000, durationMs: 0, attempt: 3 },
      ]);
    });

    it('emits typed events carrying the fault and the record', () => {
      const f = fault('agent_timeout', 'x');
      const h = setup({ restartAgent: () => true });
      h.scheduler.advanceTo(5);
      h.heal(f);
      expect(h.events).toEqual([
        { type: 'healing.attempted', at: 5, fault: f, strategy: 'restartAgent', attempt: 1 },
        { type: 'healing.succeeded', fault: f, faultKind: 'agent_timeout', agentId: 'x', strategy: 'restartAgent', ok: true, detail: 'restartAgent succeeded', at: 5, durationMs: 0, attempt: 1 },
      ]);
    });

    it('history is in order of outcome, consistent when a listener reads it', () => {
      const h = setup();
      const seen: number[] = [];
      h.manager.events$.subscribe(e => {
        if (e.type === 'healing.failed') seen.push(h.manager.history.length);
      });
      h.heal(fault('agent_timeout'));
      expect(seen).toEqual([1, 2, 3]);
    });
  });

  describe('actions that fail badly', () => {
    it('a throwing action is a failed attempt with the error message, and the chain goes on', () => {
      const h = setup({
        restartAgent: () => {
          throw new Error('no such process');
        },
        reassignSubtasks: () => {
          throw 'plain string';
        },
        replaceAgent: () => true,
      });
      const result = h.heal(fault('agent_timeout'));
      expect(result()).toMatchObject({ status: 'healed', strategy: 'replaceAgent' });
      expect(h.manager.history.map(a => [a.ok, a.detail])).toEqual([
        [false, 'restartAgent threw: no such process'],
        [false, 'reassignSubtasks threw: plain string'],
        [true, 'replaceAgent succeeded'],
      ]);
    });

    it.each([
      ['undefined', undefined],
      ['a number', 1],
      ['an object without ok', { detail: 'x' }],
      ['null', null],
    ])('an answer that is %s is a failed attempt', (_, answer) => {
      const h = setup({ restartAgent: () => answer as ActionReply, reassignSubtasks: () => true });
      const result = h.heal(fault('agent_timeout'));
      expect(result()?.status).toBe('healed');
      expect(h.manager.history[0]).toMatchObject({ ok: false, detail: expect.stringContaining('not a boolean or { ok, detail }') as unknown });
    });

    it('an action answering later, on the scheduler, is waited for', () => {
      const scheduler = new VirtualScheduler();
      const double = recording({ restartAgent: () => timer(250, scheduler).pipe(map(() => ({ ok: true, detail: 'back' }))) });
      const manager = new SelfHealingManager(double.actions, { scheduler });
      let result: HealingResult | undefined;
      manager.heal(fault('agent_timeout')).subscribe(r => (result = r));
      expect(result).toBeUndefined();
      expect(manager.isHealing(fault('agent_timeout'))).toBe(true);
      scheduler.advanceTo(250);
      expect(result).toMatchObject({ status: 'healed', attempts: [{ strategy: 'restartAgent', ok: true, detail: 'back', at: 0, durationMs: 250 }] });
      expect(manager.isHealing(fault('agent_timeout'))).toBe(false);
      expect(scheduler.pending).toBe(0);
    });

    it('an Observable that errors or completes without an answer is a failed attempt', () => {
      const h = setup({ resetChannels: () => throwError(() => new Error('socket gone')), switchRoute: () => EMPTY, useAlternativeRoutes: () => true });
      const result = h.heal(fault('communication_failure', 'a->b'));
      expect(result()?.status).toBe('healed');
      expect(h.manager.history.map(a => a.detail)).toEqual([
        'resetChannels failed: socket gone',
        'switchRoute completed without an answer',
        'useAlternativeRoutes succeeded',
      ]);
    });

    it('an action that never answers times out after actionTimeoutMs, and the chain goes on', () => {
      const h = setup({ restartAgent: () => NEVER, reassignSubtasks: () => true }, { actionTimeoutMs: 1000 });
      const result = h.heal(fault('agent_timeout'));
      h.scheduler.advanceTo(999);
      expect(result()).toBeUndefined();
      h.scheduler.advanceTo(1000);
      expect(result()).toMatchObject({ status: 'healed', strategy: 'reassignSubtasks' });
      expect(h.manager.history[0]).toMatchObject({ ok: false, detail: 'restartAgent gave no answer within 1000 ms', durationMs: 1000 });
      expect(h.scheduler.pending).toBe(0);
    });

    it('a Promise answer is awaited; a rejection is a failed attempt', async () => {
      const h = setup({ restartAgent: () => Promise.reject(new Error('denied')), reassignSubtasks: () => Promise.resolve(true) }, { actionTimeoutMs: Infinity });
      const result = await new Promise<HealingResult>(resolve => h.manager.heal(fault('agent_timeout')).subscribe(resolve));
      expect(result.status).toBe('healed');
      expect(h.manager.history.map(a => a.detail)).toEqual(['restartAgent failed: denied', 'reassignSubtasks succeeded']);
    });
  });

  describe('deduplication', () => {
    it('the same fault reported while its chain runs is skipped (re-entrant report)', () => {
      let inner: (() => HealingResult | undefined) | undefined;
      const h = setup({
        restartAgent: f => {
          inner = h.heal(f);
          return false;
        },
        reassignSubtasks: () => true,
      });
      const outer = h.heal(fault('agent_timeout'));
      expect(inner?.()).toEqual({ fault: fault('agent_timeout'), status: 'skipped', attempts: [] });
      expect(outer()?.status).toBe('healed');
      expect(h.strategies()).toEqual(['restartAgent', 'reassignSubtasks']);
      expect(h.types()).toContain('healing.skipped');
    });

    it('the same fault reported while an action is pending is skipped; another agent is not', () => {
      const h = setup({ restartAgent: () => timer(100, h.scheduler).pipe(map(() => true)) });
      const first = h.heal(fault('agent_timeout', 'a'));
      const again = h.heal(fault('agent_timeout', 'a', 50));
      const other = h.heal(fault('agent_timeout', 'b'));
      const otherKind = h.heal(fault('resource_exhaustion', 'a'));
      expect(again()?.status).toBe('skipped');
      expect(otherKind()?.status).toBe('exhausted');
      h.scheduler.advanceTo(100);
      expect(first()?.status).toBe('healed');
      expect(other()?.status).toBe('healed');
      expect(h.calls.filter(c => c.strategy === 'restartAgent').map(c => c.key)).toEqual(['agent_timeout:a', 'agent_timeout:b']);
    });

    it('a fault reported again after its chain ended is a new episode', () => {
      const h = setup({ restartAgent: () => true });
      h.heal(fault('agent_timeout'));
      const again = h.heal(fault('agent_timeout'));
      expect(again()?.status).toBe('healed');
      expect(h.calls).toHaveLength(2);
    });

    it('a listener may report the fault again as soon as it hears the chain ended', () => {
      const h = setup();
      const results: Array<HealingResult | undefined> = [];
      let once = true;
      h.manager.events$.subscribe(e => {
        if (e.type === 'healing.exhausted' && once) {
          once = false;
          h.manager.heal(e.fault).subscribe(r => results.push(r));
        }
      });
      h.heal(fault('agent_timeout'));
      expect(results.map(r => r?.status)).toEqual(['exhausted']);
      expect(h.calls).toHaveLength(6);
    });
  });

  describe('fallback', () => {
    it('FallbackPolicy picks by preference, never the current nor the last pick, at most maxFallbacks', () => {
      const policy = new FallbackPolicy({ preference: ['hierarchical', 'star', 'ring'], maxFallbacks: 3 });
      expect(policy.next('mesh')).toBe('hierarchical');
      expect(policy.next('hierarchical')).toBe('star');
      expect(policy.next('star')).toBe('ring');
      expect(policy.next('ring')).toBeUndefined();
      expect(policy.decide('ring')).toEqual({ reason: 'limit' });
      expect(policy.used).toBe(3);
      policy.reset();
      expect(policy.remaining).toBe(3);
      expect(policy.next('hierarchical')).toBe('star');
    });

    it('defaults to 2 fallbacks', () => {
      const policy = new FallbackPolicy({ preference: ['a', 'b', 'c', 'd'] });
      expect([policy.next('x'), policy.next('a'), policy.next('b')]).toEqual(['a', 'b', undefined]);
    });

    it('prefers protocols not yet tried, then any but the current and the last pick', () => {
      const policy = new FallbackPolicy({ preference: ['a', 'b'], maxFallbacks: 5 });
      expect(policy.next('a')).toBe('b');
      expect(policy.next('b')).toBe('a');
      // 'b' was the last pick before 'a'; current 'a' and last pick 'a' are excluded: 'b' again is fine
      expect(policy.next('a')).toBe('b');
      const lonely = new FallbackPolicy({ preference: ['a'] });
      expect(lonely.decide('a')).toEqual({ reason: 'no_candidate' });
      expect(lonely.used).toBe(0);
      // the engine did not move to the pick: the pick is not offered twice in a row
      const stuck = new FallbackPolicy({ preference: ['a', 'b', 'c'], maxFallbacks: 5 });
      expect(stuck.next('x')).toBe('a');
      expect(stuck.next('x')).toBe('b');
    });

    it('the manager emits healing.fallback and healing.fallback_refused', () => {
      const h = setup({}, { fallback: { preference: ['star', 'ring'], maxFallbacks: 1 } });
      h.scheduler.advanceTo(7);
      expect(h.manager.fallback('mesh')).toBe('star');
      expect(h.manager.fallback('star')).toBeUndefined();
      expect(h.events).toEqual([
        { type: 'healing.fallback', at: 7, from: 'mesh', to: 'star', fallbacks: 1 },
        { type: 'healing.fallback_refused', at: 7, from: 'star', reason: 'limit', fallbacks: 1 },
      ]);
      h.manager.resetFallbacks();
      expect(h.manager.fallback('star')).toBe('ring');
    });

    it('uses the default preference without options', () => {
      const h = setup();
      expect(h.manager.fallbackPolicy.preference).toEqual(DEFAULT_FALLBACK_PREFERENCE);
      expect(h.manager.fallbackPolicy.maxFallbacks).toBe(2);
      expect(h.manager.fallback('hierarchical')).toBe('star');
    });

    it('the exhausted → fallback loop ends within maxFallbacks, however often healing fails', () => {
      const h = setup({}, { fallback: { preference: ['hierarchical', 'star', 'ring', 'mesh'] } });
      let protocol = 'adaptive';
      const switches: string[] = [];
      h.manager.events$.subscribe(e => {
        if (e.type !== 'healing.exhausted') return;
        const to = h.manager.fallback(protocol);
        if (to === undefined) return;
        protocol = to;
        switches.push(to);
        h.manager.heal({ ...e.fault, at: h.scheduler.now() }); // the fault persists under the new protocol
      });
      h.heal(fault('protocol_deadlock', 'a b'));
      expect(switches).toEqual(['hierarchical', 'star']);
      expect(h.calls).toHaveLength(9);
      expect(h.types().filter(t => t === 'healing.fallback_refused')).toHaveLength(1);
    });
  });

  describe('dispose', () => {
    it('cancels pending actions, ends their faults, completes events$, and heals nothing more', () => {
      const h = setup({ restartAgent: () => NEVER });
      const pending = h.heal(fault('agent_timeout'));
      expect(h.scheduler.pending).toBe(1);
      h.manager.dispose();
      expect(pending()).toMatchObject({ status: 'cancelled', attempts: [{ ok: false, detail: 'restartAgent cancelled: the manager was disposed' }] });
      expect(h.manager.history).toHaveLength(1);
      expect(h.completed()).toBe(true);
      expect(h.scheduler.pending).toBe(0);
      expect(h.heal(fault('agent_timeout', 'b'))()).toMatchObject({ status: 'cancelled', attempts: [] });
      expect(h.calls).toHaveLength(1);
    });

    it('an action that disposes the manager ends its chain', () => {
      const h = setup({
        restartAgent: () => {
          h.manager.dispose();
          return false;
        },
      });
      const result = h.heal(fault('agent_timeout'));
      expect(result()).toMatchObject({ status: 'cancelled', attempts: [{ strategy: 'restartAgent' }] });
      expect(h.calls).toHaveLength(1);
    });
  });

  describe('options', () => {
    const actions = recording().actions;
    it.each([
      ['maxAttempts', { maxAttempts: 0 }],
      ['maxAttempts', { maxAttempts: 1.5 }],
      ['actionTimeoutMs', { actionTimeoutMs: 0 }],
      ['actionTimeoutMs', { actionTimeoutMs: Number.NaN }],
      ['scheduler', { scheduler: {} as SchedulerLike }],
      ['chains.agent_timeout', { chains: { agent_timeout: ['restartAgent', 'pray'] } }],
      ['chains.agent_timeout', { chains: { agent_timeout: 'restartAgent' } }],
      ['chains', { chains: { byzantine: [] } }],
      ['maxFallbacks', { fallback: { preference: ['a'], maxFallbacks: -1 } }],
      ['preference', { fallback: { preference: 'mesh' } }],
    ])('rejects a bad %s with a RangeError naming it', (name, options) => {
      const build = () => new SelfHealingManager(actions, options as SelfHealingOptions);
      expect(build).toThrow(RangeError);
      expect(build).toThrow(new RegExp(`^${name.replace('.', '\\.')}\\b`));
    });

    it('rejects EngineActions missing a strategy its chains use', () => {
      const { restartAgent: _, ...partial } = recording().actions;
      expect(() => new SelfHealingManager(partial as EngineActions)).toThrow(/^actions\.restartAgent must be a function/);
      // …unless no chain uses it
      expect(() => new SelfHealingManager(partial as EngineActions, { chains: { agent_timeout: ['reassignSubtasks'] } })).not.toThrow();
    });

    it('rejects a fault of an unknown kind', () => {
      const manager = new SelfHealingManager(actions);
      expect(() => manager.heal({ ...fault('agent_timeout'), kind: 'gremlins' as FaultKind })).toThrow(/fault\.kind/);
    });
  });

  describe('properties', () => {
    type Reply = 'ok' | 'fail' | 'throw' | 'junk' | 'hang' | { later: number; ok: boolean };
    const reply: fc.Arbitrary<Reply> = fc.oneof(
      fc.constantFrom<Reply>('ok', 'fail', 'throw', 'junk', 'hang'),
      fc.record({ later: fc.integer({ min: 0, max: 80 }), ok: fc.boolean() }),
    );
    const step = fc.record({
      dt: fc.integer({ min: 0, max: 60 }),
      kind: fc.constantFrom(...FAULT_KINDS),
      subject: fc.constantFrom('a', 'b'),
      fallbackFrom: fc.option(fc.constantFrom('hierarchical', 'mesh', 'ring', 'star', 'adaptive'), { nil: undefined }),
    });

    it('no fault gets more than maxAttempts attempts, every attempt is recorded, fallbacks stay bounded', () => {
      fc.assert(
        fc.property(
          fc.array(step, { maxLength: 40 }),
          fc.array(reply, { minLength: 1, maxLength: 30 }),
          fc.integer({ min: 1, max: 4 }),
          fc.integer({ min: 0, max: 3 }),
          (steps, replies, maxAttempts, maxFallbacks) => {
            const scheduler = new VirtualScheduler();
            let n = 0;
            const answer = (): ActionReply => {
              const r = replies[n++ % replies.length] as Reply;
              if (r === 'ok') return true;
              if (r === 'fail') return { ok: false, detail: 'no' };
              if (r === 'throw') throw new Error('boom');
              if (r === 'junk') return 'yes' as unknown as ActionReply;
              if (r === 'hang') return new Observable<boolean>(() => undefined);
              return timer(r.later, scheduler).pipe(map(() => r.ok));
            };
            const double = recording(Object.fromEntries(HEALING_STRATEGIES.map(s => [s, answer])));
            const manager = new SelfHealingManager(double.actions, {
              scheduler,
              maxAttempts,
              actionTimeoutMs: 50,
              chains: { agent_timeout: [...HEALING_STRATEGIES] }, // longer than any maxAttempts
              fallback: { preference: ['hierarchical', 'mesh', 'ring', 'star'], maxFallbacks },
            });
            const events: HealingEvent[] = [];
            manager.events$.subscribe(e => events.push(e));
            const results: Array<HealingResult | undefined> = [];
            for (const s of steps) {
              scheduler.advanceBy(s.dt);
              const slot = results.length;
              results.push(undefined);
              manager.heal(fault(s.kind, s.subject, scheduler.now())).subscribe(r => (results[slot] = r));
              if (s.fallbackFrom !== undefined) manager.fallback(s.fallbackFrom);
            }
            scheduler.flush();

            expect(scheduler.pending).toBe(0);
            // every heal ended, within maxAttempts, its attempts numbered 1…n
            for (const r of results) {
              expect(r).toBeDefined();
              const attempts = (r as HealingResult).attempts;
              expect(attempts.length).toBeLessThanOrEqual(maxAttempts);
              expect(attempts.map(a => a.attempt)).toEqual(attempts.map((_, i) => i + 1));
              if (r?.status === 'healed') expect(attempts.at(-1)?.ok).toBe(true);
              if (r?.status === 'exhausted') expect(attempts.every(a => !a.ok)).toBe(true);
            }
            // every call recorded once: calls = attempted events = history = settled events
            const attempted = events.filter(e => e.type === 'healing.attempted');
            const settled = events.filter((e): e is Extract<HealingEvent, { type: 'healing.succeeded' | 'healing.failed' }> => e.type === 'healing.succeeded' || e.type === 'healing.failed');
            expect(attempted).toHaveLength(double.calls.length);
            expect(manager.history).toHaveLength(double.calls.length);
            expect(settled.map(({ type: _t, fault: _f, ...record }) => record)).toEqual(manager.history);
            expect(results.flatMap(r => r?.attempts ?? [])).toHaveLength(manager.history.length);
            // one chain per fault at a time
            const open = new Set<string>();
            for (const e of events) {
              if (e.type === 'healing.attempted' && e.attempt === 1) {
                expect(open.has(faultKey(e.fault))).toBe(false);
                open.add(faultKey(e.fault));
              }
              if (e.type === 'healing.succeeded' || e.type === 'healing.exhausted') open.delete(faultKey(e.fault));
            }
            // bounded fallback, never to the current protocol nor twice in a row to the same one
            const fallbacks = events.filter(e => e.type === 'healing.fallback');
            expect(fallbacks.length).toBeLessThanOrEqual(maxFallbacks);
            fallbacks.forEach((e, i) => {
              expect(e.to).not.toBe(e.from);
              if (i > 0) expect(e.to).not.toBe(fallbacks[i - 1]?.to);
            });
          },
        ),
        { numRuns: 150 },
      );
    });
  });
});
