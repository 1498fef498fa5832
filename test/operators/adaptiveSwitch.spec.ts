import { marbles } from 'rxjs-marbles/jest';
import { NEVER, Observable, Subject, of, takeUntil, type SchedulerAction } from 'rxjs';
import fc from 'fast-check';
import {
  adaptiveSwitch,
  beatsBy,
  decideProtocol,
  defaultScore,
  matrixPrior,
  type AdaptiveSwitchOptions,
  type PriorScore,
  type ProtocolSwitch,
} from '../../operators/adaptiveSwitch.js';
import type { ExecutionRecord, PerformanceSnapshot } from '../../operators/performanceWindow.js';
import { createRandom } from '../../streams/random.js';
import { VirtualScheduler } from '../../streams/virtualScheduler.js';

const rec = (protocol: string, ok: boolean, latencyMs = 0, messages = 0): ExecutionRecord => ({ protocol, ok, latencyMs, messages });
const snap = (successRate: number, p95LatencyMs: number, messagesPerExecution: number): PerformanceSnapshot => ({
  at: 0, count: 1, successRate, meanLatencyMs: p95LatencyMs, p50LatencyMs: p95LatencyMs, p95LatencyMs, throughputPerSec: 1, messagesPerExecution,
});
const successRate = (s: PerformanceSnapshot): number => s.successRate;

/** Records for marbles: f/o = star failed/ok, F/O = mesh failed/ok, r/x = ring ok/failed, g = an unknown protocol. */
const R = { f: rec('star', false), o: rec('star', true), F: rec('mesh', false), O: rec('mesh', true), r: rec('ring', true), x: rec('ring', false), g: rec('gossip', true) };

describe('defaultScore', () => {
  it.each([
    [snap(1, 0, 0), 1],
    [snap(0.5, 0, 0), 0.5],
    [snap(1, 1000, 0), 0.5],
    [snap(1, 0, 10), 0.5],
    [snap(1, 1000, 10), 0.25],
    [snap(0, 200, 4), 0],
    [snap(0.8, 250, 5), 0.8 / 1.25 / 1.5],
  ])('%j → %d', (s, expected) => {
    expect(defaultScore(s)).toBeCloseTo(expected, 12);
  });

  it('property: rises with success rate, falls with p95 latency and messages', () => {
    const n = fc.double({ min: 0, max: 1e5, noNaN: true });
    fc.assert(
      fc.property(fc.double({ min: 0, max: 1, noNaN: true }), n, n, n, (sr, p95, msgs, more) => {
        const base = defaultScore(snap(sr, p95, msgs));
        expect(base).toBeGreaterThanOrEqual(0);
        expect(base).toBeLessThanOrEqual(1);
        expect(defaultScore(snap(Math.min(1, sr + more), p95, msgs))).toBeGreaterThanOrEqual(base);
        expect(defaultScore(snap(sr, p95 + more, msgs))).toBeLessThanOrEqual(base);
        expect(defaultScore(snap(sr, p95, msgs + more))).toBeLessThanOrEqual(base);
      }),
      { numRuns: 200 },
    );
  });
});

describe('beatsBy', () => {
  it.each([
    [1.31, 1, 0.3, true],
    [1.3, 1, 0.3, false], // exactly the margin is not more than it
    [0.65, 0.5, 0.3, false],
    [0.66, 0.5, 0.3, true],
    [0.1, 0, 0.3, true], // from 0 any gain counts
    [0, 0, 0.3, false],
    [-0.5, -1, 0.3, true], // +0.5 over |−1|
    [-0.8, -1, 0.3, false],
    [1.0001, 1, 0, true],
    [1, 1, 0, false],
    [0.9, 1, 0, false],
  ])('%d over %d with threshold %d: %s', (challenger, current, threshold, expected) => {
    expect(beatsBy(challenger, current, threshold)).toBe(expected);
  });
});

describe('decideProtocol', () => {
  it.each<[number, 'low' | 'medium' | 'high' | undefined, 'low' | 'medium' | 'high' | undefined, string]>([
    [0, 'high', 'high', 'hierarchical'],
    [3, 'high', 'high', 'hierarchical'],
    [11, 'high', 'high', 'hierarchical'],
    [50, 'low', 'low', 'hierarchical'],
    [4, 'high', 'high', 'mesh'],
    [10, 'high', 'high', 'mesh'],
    [6, 'high', 'medium', 'ring'],
    [6, 'medium', 'high', 'ring'],
    [6, 'low', 'low', 'star'],
    [6, 'high', 'low', 'star'],
    [6, 'medium', 'medium', 'ring'],
    [6, undefined, undefined, 'ring'],
    [6, undefined, 'low', 'star'],
  ])('%d agents, complexity %s, intensity %s → %s', (agentCount, complexity, coordinationIntensity, expected) => {
    const context = {
      agentCount,
      ...(complexity === undefined ? {} : { complexity }),
      ...(coordinationIntensity === undefined ? {} : { coordinationIntensity }),
    };
    expect(decideProtocol(context)).toBe(expected);
  });

  it.each<[string, object]>([
    ['agentCount', { agentCount: -1 }],
    ['agentCount', { agentCount: 2.5 }],
    ['agentCount', {}],
    ['complexity', { agentCount: 5, complexity: 'extreme' }],
    ['coordinationIntensity', { agentCount: 5, coordinationIntensity: 3 }],
  ])('rejects a bad %s: %j', (name, context) => {
    expect(() => decideProtocol(context as never)).toThrow(new RegExp(name));
  });
});

describe('matrixPrior', () => {
  it("gives the matrix's choice the preferred score and every other protocol less", () => {
    const prior = matrixPrior({ agentCount: 6, complexity: 'high', coordinationIntensity: 'high' });
    expect(['hierarchical', 'mesh', 'ring', 'star', 'gossip'].map(prior)).toEqual([0.25, 0.5, 0.25, 0.25, 0.25]);
    const custom = matrixPrior({ agentCount: 2 }, { preferred: 2, other: -1 });
    expect([custom('hierarchical'), custom('mesh')]).toEqual([2, -1]);
  });

  it('is validated when built', () => {
    expect(() => matrixPrior({ agentCount: NaN })).toThrow(/agentCount/);
    expect(() => matrixPrior({ agentCount: 5 }, { preferred: NaN })).toThrow(/preferred/);
    expect(() => matrixPrior({ agentCount: 5 }, { other: Infinity })).toThrow(/other/);
  });
});

describe('adaptiveSwitch', () => {
  const base = { initial: 'star', candidates: ['mesh', 'star'], evaluateEveryMs: 10, windowMs: 100, minDwellMs: 0, minRecords: 1 } as const;

  it('switches at the evaluation tick when a candidate is clearly better', marbles(m => {
    const source = m.hot('  -fo-O----------|', R);
    const expected = '      ----------x----|';
    m.expect(source.pipe(adaptiveSwitch({ ...base, score: successRate, scheduler: m.scheduler }))).toBeObservable(expected, {
      x: { from: 'star', to: 'mesh', at: m.time('----------|'), reason: 'mesh scored 1 (1 run) vs star 0.5 (2 runs): +100%', scores: { mesh: 1, star: 0.5 } },
    });
  }));

  it('does not switch within the threshold', marbles(m => {
    // star 4/5 = 0.8, mesh 1: +25%, under the default 30 %.
    const source = m.hot('  -ooooO-f----------------|', R);
    const expected = '      ------------------------|';
    m.expect(source.pipe(adaptiveSwitch({ ...base, score: successRate, scheduler: m.scheduler }))).toBeObservable(expected);
  }));

  it('switches on the same measurements once the threshold is lower', marbles(m => {
    const source = m.hot('  -ooooO-f----------------|', R);
    const expected = '      ----------x-------------|';
    m.expect(source.pipe(adaptiveSwitch({ ...base, switchThreshold: 0.2, score: successRate, scheduler: m.scheduler }))).toBeObservable(expected, {
      x: { from: 'star', to: 'mesh', at: 10, reason: 'mesh scored 1 (1 run) vs star 0.8 (5 runs): +25%', scores: { mesh: 1, star: 0.8 } },
    });
  }));

  it('respects minDwellMs from subscription and between switches (default 2 × evaluateEveryMs)', marbles(m => {
    const { minDwellMs: _, ...options } = base;
    // Ticks every 10: at 10 mesh is better but the initial choice is only 10 old. mesh then fails
    // twice: at 30 its probation is not due (the switch is only 10 old), at 40 it is switched back.
    const source = m.hot('  -fO------------------FFo---------------------|', R);
    const expected = '      --------------------x-------------------y----|';
    m.expect(source.pipe(adaptiveSwitch({ ...options, score: successRate, scheduler: m.scheduler }))).toBeObservable(expected, {
      x: { from: 'star', to: 'mesh', at: 20, reason: 'mesh scored 1 (1 run) vs star 0 (1 run)', scores: { mesh: 1, star: 0 } },
      y: {
        from: 'mesh', to: 'star', at: 40, revert: true,
        reason: 'switch back: mesh measured 0 (2 runs since the switch), star had 0; next dwell 40 ms',
        scores: { mesh: 0, star: 0 },
      },
    });
  }));

  it("scores unmeasured candidates from the prior: the matrix's choice displaces a failing protocol", marbles(m => {
    const prior = matrixPrior({ agentCount: 6, complexity: 'high', coordinationIntensity: 'high' });
    const candidates = ['hierarchical', 'mesh', 'ring', 'star'];
    const source = m.hot('  -f--------------|', R);
    const expected = '      ----------x-----|';
    m.expect(source.pipe(adaptiveSwitch({ ...base, candidates, prior, scheduler: m.scheduler }))).toBeObservable(expected, {
      x: {
        from: 'star', to: 'mesh', at: 10,
        reason: 'mesh scored 0.5 (prior) vs star 0 (1 run)',
        scores: { hierarchical: 0.25, mesh: 0.5, ring: 0.25, star: 0 },
      },
    });
  }));

  it('never lets a prior displace a healthy measured protocol', marbles(m => {
    const prior = matrixPrior({ agentCount: 6, complexity: 'high', coordinationIntensity: 'high' });
    const source = m.hot('  -o--------------------------------|', R);
    const expected = '      ----------------------------------|';
    m.expect(source.pipe(adaptiveSwitch({ ...base, windowMs: 1000, prior, scheduler: m.scheduler }))).toBeObservable(expected);
  }));

  it('forgets records older than windowMs: the protocol falls back to its prior', marbles(m => {
    // star's failure at 1 has left a 5 ms window by the tick at 10: star and mesh both score the prior.
    const source = m.hot('  -f--------------|', R);
    m.expect(source.pipe(adaptiveSwitch({ ...base, windowMs: 5, scheduler: m.scheduler }))).toBeObservable('----------------|');
  }));

  it('ignores records of protocols outside candidates ∪ initial', marbles(m => {
    const source = m.hot('  -gfgO-----------|', R);
    const expected = '      ----------x-----|';
    m.expect(source.pipe(adaptiveSwitch({ ...base, score: successRate, scheduler: m.scheduler }))).toBeObservable(expected, {
      x: { from: 'star', to: 'mesh', at: 10, reason: 'mesh scored 1 (1 run) vs star 0 (1 run)', scores: { mesh: 1, star: 0 } },
    });
  }));

  it('breaks ties by candidate order; initial is a target even when not a candidate', marbles(m => {
    const options = { ...base, initial: 'ring', candidates: ['mesh', 'star'], score: successRate };
    // At 10 mesh and star tie at 1 over ring's prior 0.25: mesh is listed first. By 20 mesh has
    // failed twice since the switch (0 ≤ ring's 0.25 then): back to ring, the initial protocol.
    const source = m.hot('  -Oo--------FFfffr--------|', R);
    const expected = '      ----------x---------y----|';
    m.expect(source.pipe(adaptiveSwitch({ ...options, scheduler: m.scheduler }))).toBeObservable(expected, {
      x: { from: 'ring', to: 'mesh', at: 10, reason: 'mesh scored 1 (1 run) vs ring 0.25 (prior): +300%', scores: { mesh: 1, star: 1, ring: 0.25 } },
      y: {
        from: 'mesh', to: 'ring', at: 20, revert: true,
        reason: 'switch back: mesh measured 0 (2 runs since the switch), ring had 0.25; next dwell 20 ms',
        scores: { mesh: 0, star: 0.25, ring: 0.25 },
      },
    });
  }));

  describe('probation', () => {
    // Judged once minDwellMs has passed and the target has 2 runs of its own since the switch.
    const trial = { ...base, minDwellMs: 20, minRecords: 2, score: successRate } as const;

    it('keeps a switch whose target confirms the gain with its own runs', marbles(m => {
      // star fails twice; at 20 mesh's prior (0.25) beats it. mesh's runs after the switch score
      // 1 > star's 0: at 40 the switch is confirmed, and nothing is emitted for it.
      const source = m.hot('  -ff------------------OO--------------------------------|', R);
      const expected = '      --------------------x----------------------------------|';
      m.expect(source.pipe(adaptiveSwitch({ ...trial, scheduler: m.scheduler }))).toBeObservable(expected, {
        x: { from: 'star', to: 'mesh', at: 20, reason: 'mesh scored 0.25 (prior) vs star 0 (2 runs)', scores: { mesh: 0.25, star: 0 } },
      });
    }));

    describe('a close call waits for as many runs as the score it was compared with; a clear loss does not', () => {
      // star scores 0.6 on 5 runs; at 20 mesh's prior (0.9) beats it. By 40 mesh has 2 runs at
      // 0.5: below 0.6, but not by the 30 % a switch needs, and on 2 runs against 5. So it waits
      // for 5 runs (at 50) and is judged on them.
      const prior = (): number => 0.9;
      const x = { from: 'star', to: 'mesh', at: 20, reason: 'mesh scored 0.9 (prior) vs star 0.6 (5 runs): +50%', scores: { mesh: 0.9, star: 0.6 } };

      it('confirmed on the fuller count: 4 of 5 beat 0.6', marbles(m => {
        const source = m.hot('  -oooff---------------OF------------------OOO--------------------|', R);
        const expected = '      --------------------x-------------------------------------------|';
        m.expect(source.pipe(adaptiveSwitch({ ...trial, prior, scheduler: m.scheduler }))).toBeObservable(expected, { x });
      }));

      const back = (at: number, measured: number, runs: number) => ({
        from: 'mesh', to: 'star', at, revert: true as const,
        reason: `switch back: mesh measured ${measured} (${runs} runs since the switch), star had 0.6; next dwell 40 ms`,
        scores: { mesh: measured, star: 0.6 },
      });
      it.each([
        ['switched back on the fuller count: 1 of 5 does not', '-oooff---------------OF------------------FFF--------------------|', '--------------------x-----------------------------y-------------|', back(50, 0.2, 5)],
        ['a clear loss is undone on minRecords runs: 0 of 2 against 0.6', '-oooff---------------FF-----------------------------------------|', '--------------------x-------------------y-----------------------|', back(40, 0, 2)],
      ])('%s', (_, records, expected, y) => marbles(m => {
        m.expect(m.hot(records, R).pipe(adaptiveSwitch({ ...trial, prior, scheduler: m.scheduler }))).toBeObservable(expected, { x, y });
      })());
    });

    it('switches back at the first tick the probation is due when the gain is not confirmed, and backs off', marbles(m => {
      const candidates = ['mesh', 'ring', 'star'];
      // mesh (x at 20, on its prior) fails its 2 runs: 0 is not above star's 0, so back at 40 (y),
      // and the next dwell doubles. (Priors are now taken at mesh's 0 / 0.25 = 0: ring's is 0.)
      // ring, measured at 1 from 50, goes at 80 (z), not 60. It fails too: back at 100 (w), and the
      // dwell doubles again.
      const source = m.hot('  -ff------------------FF----------------------rr----------------------------------xx-----------------------------------------------|', R);
      const expected = '      --------------------x-------------------y---------------------------------------z-------------------w-----------------------------|';
      m.expect(source.pipe(adaptiveSwitch({ ...trial, candidates, scheduler: m.scheduler }))).toBeObservable(expected, {
        x: { from: 'star', to: 'mesh', at: 20, reason: 'mesh scored 0.25 (prior) vs star 0 (2 runs)', scores: { mesh: 0.25, ring: 0.25, star: 0 } },
        y: {
          from: 'mesh', to: 'star', at: 40, revert: true,
          reason: 'switch back: mesh measured 0 (2 runs since the switch), star had 0; next dwell 40 ms',
          scores: { mesh: 0, ring: 0, star: 0 },
        },
        z: { from: 'star', to: 'ring', at: 80, reason: 'ring scored 1 (2 runs) vs star 0 (2 runs)', scores: { mesh: 0, ring: 1, star: 0 } },
        w: {
          from: 'ring', to: 'star', at: 100, revert: true,
          reason: 'switch back: ring measured 0 (2 runs since the switch), star had 0; next dwell 80 ms',
          scores: { mesh: 0, ring: 0, star: 0 },
        },
      });
    }));

    it('switches back at most once per switch: a switch back is not itself on probation', marbles(m => {
      // After the switch back at 40, star fails five times: were the switch back on probation,
      // star's 0 against mesh's 0 would send it to mesh again at 60.
      const source = m.hot('  -ff------------------FF------------------fffff----------------------------------|', R);
      const expected = '      --------------------x-------------------y---------------------------------------|';
      m.expect(source.pipe(adaptiveSwitch({ ...trial, scheduler: m.scheduler }))).toBeObservable(expected, {
        x: { from: 'star', to: 'mesh', at: 20, reason: 'mesh scored 0.25 (prior) vs star 0 (2 runs)', scores: { mesh: 0.25, star: 0 } },
        y: {
          from: 'mesh', to: 'star', at: 40, revert: true,
          reason: 'switch back: mesh measured 0 (2 runs since the switch), star had 0; next dwell 40 ms',
          scores: { mesh: 0, star: 0 },
        },
      });
    }));

    it('switches back at the deadline, max(minDwellMs, windowMs), when the target finishes nothing', marbles(m => {
      const source = m.hot('  -ff---------------------------------------------------------------------------------------|', R);
      const expected = '      --------------------x-------------------------------------------------y-------------------|';
      m.expect(source.pipe(adaptiveSwitch({ ...trial, windowMs: 50, scheduler: m.scheduler }))).toBeObservable(expected, {
        x: { from: 'star', to: 'mesh', at: 20, reason: 'mesh scored 0.25 (prior) vs star 0 (2 runs)', scores: { mesh: 0.25, star: 0 } },
        y: {
          from: 'mesh', to: 'star', at: 70, revert: true,
          reason: 'switch back: mesh finished nothing in 50 ms after the switch, star had 0; next dwell 40 ms',
          scores: { mesh: 0, star: 0 },
        },
      });
    }));

    it('a measured protocol is never scored from its prior again: an optimistic prior wins once, not every window', marbles(m => {
      // Stationary conditions: both protocols succeed half the time. The prior (0.8) beats star's
      // 0.5 once; mesh measures 0.5 too and is switched back. Its runs leave the 30 ms window by 52,
      // but it keeps its measured 0.5 rather than the prior, so nothing more happens.
      const source = m.hot('  -fo------------------FO-------------------------------------------------------------------------------------------------------------------------------|', R);
      const expected = '      --------------------x-------------------y-------------------------------------------------------------------------------------------------------------|';
      m.expect(source.pipe(adaptiveSwitch({ ...trial, windowMs: 30, prior: () => 0.8, scheduler: m.scheduler }))).toBeObservable(expected, {
        x: { from: 'star', to: 'mesh', at: 20, reason: 'mesh scored 0.8 (prior) vs star 0.5 (2 runs): +60%', scores: { mesh: 0.8, star: 0.5 } },
        y: {
          from: 'mesh', to: 'star', at: 40, revert: true,
          reason: 'switch back: mesh measured 0.5 (2 runs since the switch), star had 0.5; next dwell 40 ms',
          scores: { mesh: 0.5, star: 0.5 },
        },
      });
    }));

    it('takes the other priors at the fraction of its prior that a protocol chosen on it measured', marbles(m => {
      // Every prior is 0.8. mesh, chosen on it, measures 0.5 (0.625 of it) and is switched back:
      // ring's prior is now taken at 0.5, no better than star's 0.5, so ring is not tried at 80.
      const source = m.hot('  -fo------------------FO---------------------------------------------------------------|', R);
      const expected = '      --------------------x-------------------y---------------------------------------------|';
      m.expect(source.pipe(adaptiveSwitch({ ...trial, candidates: ['mesh', 'ring', 'star'], prior: () => 0.8, scheduler: m.scheduler }))).toBeObservable(expected, {
        x: { from: 'star', to: 'mesh', at: 20, reason: 'mesh scored 0.8 (prior) vs star 0.5 (2 runs): +60%', scores: { mesh: 0.8, ring: 0.8, star: 0.5 } },
        y: {
          from: 'mesh', to: 'star', at: 40, revert: true,
          reason: 'switch back: mesh measured 0.5 (2 runs since the switch), star had 0.5; next dwell 40 ms',
          scores: { mesh: 0.5, ring: 0.5, star: 0.5 },
        },
      });
    }));

    it('counts only runs finished after the switch: a straggler stamped before it does not confirm', marbles(m => {
      // mesh's ok at 21 is stamped 15 (it ran under mesh before the switch): only the failures count.
      const late = { protocol: 'mesh', ok: true, latencyMs: 0, messages: 0, at: 15 };
      const source = m.hot('  -ff------------------lFF-------------------|', { ...R, l: late });
      const expected = '      --------------------x-------------------y--|';
      m.expect(source.pipe(adaptiveSwitch({ ...trial, scheduler: m.scheduler }))).toBeObservable(expected, {
        x: { from: 'star', to: 'mesh', at: 20, reason: 'mesh scored 0.25 (prior) vs star 0 (2 runs)', scores: { mesh: 0.25, star: 0 } },
        y: {
          from: 'mesh', to: 'star', at: 40, revert: true,
          reason: 'switch back: mesh measured 0 (2 runs since the switch), star had 0; next dwell 40 ms',
          scores: { mesh: 0, star: 0 },
        },
      });
    }));
  });

  describe('inForce: switches made by something else', () => {
    const trial = { ...base, minDwellMs: 20, minRecords: 2, score: successRate } as const;

    it('follows an outside switch: the dwell starts again and the protocol left is held at what it measured', marbles(m => {
      // star measures 0; at 5 something else puts mesh in force. At 20 mesh (prior 0.25) would have
      // displaced star: now nothing happens — mesh is in force, and star is held at its 0.
      const source = m.hot('  -ff---------------------------------|', R);
      const inForce = m.hot(' -----m------------------------------', { m: 'mesh' });
      m.expect(source.pipe(adaptiveSwitch({ ...trial, inForce, scheduler: m.scheduler }))).toBeObservable('------------------------------------|');
    }));

    it('drops a switch on probation that an outside switch overrules; later decisions start from the protocol in force', marbles(m => {
      const candidates = ['mesh', 'ring', 'star'];
      // star → mesh at 20; at 25 ring is put in force (gossip, unknown, is ignored at 23). mesh's
      // runs then fail, but its probation was dropped: no switch back at 40. ring fails twice: at 50
      // (dwell from 25) mesh displaces ring's 0 — held at what it had when left (its prior 0.25),
      // as every protocol left is.
      const source = m.hot('  -ff------------------------FFxx-----------------------|', R);
      const inForce = m.hot(' -----------------------g-r----------------------------', { g: 'gossip', r: 'ring' });
      const expected = '      --------------------x-----------------------------y---|';
      m.expect(source.pipe(adaptiveSwitch({ ...trial, candidates, inForce, scheduler: m.scheduler }))).toBeObservable(expected, {
        x: { from: 'star', to: 'mesh', at: 20, reason: 'mesh scored 0.25 (prior) vs star 0 (2 runs)', scores: { mesh: 0.25, ring: 0.25, star: 0 } },
        y: { from: 'ring', to: 'mesh', at: 50, reason: 'mesh scored 0.25 (prior) vs ring 0 (2 runs)', scores: { mesh: 0.25, ring: 0, star: 0 } },
      });
    }));

    it('errors downstream when inForce errors, and is validated when built', marbles(m => {
      const source = m.hot('  -f--------|', R);
      const inForce = m.hot(' ---#', undefined, new Error('control'));
      m.expect(source.pipe(adaptiveSwitch({ ...base, inForce, scheduler: m.scheduler }))).toBeObservable('---#', undefined, new Error('control'));
      expect(() => adaptiveSwitch({ ...base, inForce: ['mesh'] as never })).toThrow(/inForce must be an Observable/);
    }));
  });

  it('passes a source error through', marbles(m => {
    const source = m.hot('  -f--#', R);
    m.expect(source.pipe(adaptiveSwitch({ ...base, scheduler: m.scheduler }))).toBeObservable('----#');
  }));

  it('errors downstream when score throws, at the tick', marbles(m => {
    const boom = new Error('boom');
    const score = (): number => {
      throw boom;
    };
    const source = m.hot('  -f--------------|', R);
    m.expect(source.pipe(adaptiveSwitch({ ...base, score, scheduler: m.scheduler }))).toBeObservable('----------#', undefined, boom);
  }));

  it('errors downstream when prior throws or a score is not finite', marbles(m => {
    const boom = new Error('prior');
    const prior: PriorScore = () => {
      throw boom;
    };
    m.expect(m.hot('---------------|').pipe(adaptiveSwitch({ ...base, prior, scheduler: m.scheduler }))).toBeObservable('----------#', undefined, boom);
    m.expect(m.hot('-f--------------|', R).pipe(adaptiveSwitch({ ...base, score: () => NaN, scheduler: m.scheduler }))).toBeObservable(
      '----------#', undefined, new RangeError('score must return a finite number, got NaN for star'),
    );
  }));

  it('errors downstream on a malformed record of a tracked protocol', marbles(m => {
    const source = m.hot('-b-|', { b: { protocol: 'star', ok: true, latencyMs: -1, messages: 0 } });
    m.expect(source.pipe(adaptiveSwitch({ ...base, scheduler: m.scheduler }))).toBeObservable(
      '-#', undefined, new RangeError('record.latencyMs must be a finite number >= 0, got -1'),
    );
  }));

  it('keeps one timer, released on unsubscribe, completion and error', () => {
    const scheduler = new VirtualScheduler();
    const sub = NEVER.pipe(adaptiveSwitch({ ...base, scheduler })).subscribe();
    expect(scheduler.pending).toBe(1);
    scheduler.advanceBy(35);
    expect(scheduler.pending).toBe(1);
    sub.unsubscribe();
    expect(scheduler.pending).toBe(0);

    const records = new Subject<ExecutionRecord>();
    let completed = false;
    records.pipe(adaptiveSwitch({ ...base, scheduler })).subscribe({ complete: () => (completed = true) });
    records.next(R.f);
    records.complete();
    expect(completed).toBe(true);
    expect(scheduler.pending).toBe(0);

    const failing = new Subject<ExecutionRecord>();
    let failed: unknown;
    failing.pipe(adaptiveSwitch({ ...base, score: () => { throw new Error('x'); }, scheduler })).subscribe({ error: e => (failed = e) });
    failing.next(R.f);
    scheduler.advanceBy(10);
    expect(failed).toBeInstanceOf(Error);
    expect(scheduler.pending).toBe(0);
    expect(failing.observed).toBe(false);
  });

  it('stops a synchronous source when unsubscribed', () => {
    const stop = new Subject<void>();
    let sent = 0;
    const endless = new Observable<ExecutionRecord>(s => {
      for (let i = 0; i < 100_000 && !s.closed; i++) {
        sent++;
        s.next(R.f);
        if (sent === 5) stop.next();
      }
    });
    const scheduler = new VirtualScheduler();
    endless.pipe(adaptiveSwitch({ ...base, scheduler }), takeUntil(stop)).subscribe();
    expect(sent).toBe(5);
    expect(scheduler.pending).toBe(0);
  });

  it.each<[string, Partial<Record<keyof AdaptiveSwitchOptions, unknown>>]>([
    ['initial', { initial: undefined }],
    ['initial', { initial: 3 }],
    ['candidates', { candidates: [] }],
    ['candidates', { candidates: 'mesh' }],
    ['candidates', { candidates: ['mesh', 2] }],
    ['switchThreshold', { switchThreshold: -0.1 }],
    ['switchThreshold', { switchThreshold: NaN }],
    ['windowMs', { windowMs: 0 }],
    ['evaluateEveryMs', { evaluateEveryMs: 0 }],
    ['evaluateEveryMs', { evaluateEveryMs: Infinity }],
    ['minDwellMs', { minDwellMs: -1 }],
    ['minRecords', { minRecords: 0 }],
    ['minRecords', { minRecords: 1.5 }],
    ['maxBackoff', { maxBackoff: 0.5 }],
    ['maxBackoff', { maxBackoff: Infinity }],
    ['score', { score: 'fast' }],
    ['prior', { prior: { agentCount: 3 } }],
    ['scheduler', { scheduler: Date }],
  ])('rejects a bad %s when built: %j', (name, bad) => {
    const build = (): unknown => adaptiveSwitch({ ...base, ...bad } as never);
    expect(build).toThrow(RangeError);
    expect(build).toThrow(new RegExp(name));
  });

  it('rejects missing options', () => {
    expect(() => adaptiveSwitch(undefined as never)).toThrow(/initial/);
  });

  it('types: infers ProtocolSwitch through pipe; initial and candidates are required', () => {
    expectTypeOf(of(R.f).pipe(adaptiveSwitch(base))).toEqualTypeOf<Observable<ProtocolSwitch>>();
    // @ts-expect-error initial is required
    expect(() => adaptiveSwitch({ candidates: ['mesh'] })).toThrow(/initial/);
    // @ts-expect-error score takes a snapshot and returns a number
    expect(() => adaptiveSwitch({ ...base, score: (s: PerformanceSnapshot) => s.count > 0 })).not.toThrow();
  });

  describe('property: random record streams', () => {
    const PROTOCOLS = ['hierarchical', 'mesh', 'ring', 'star'] as const;
    const level = fc.constantFrom('low' as const, 'medium' as const, 'high' as const);
    const scenario = fc.record({
      start: fc.integer({ min: 0, max: 50 }),
      evaluateEveryMs: fc.integer({ min: 1, max: 20 }),
      minDwellMs: fc.integer({ min: 0, max: 60 }),
      windowMs: fc.integer({ min: 1, max: 120 }),
      switchThreshold: fc.constantFrom(0, 0.1, 0.3, 0.5, 1),
      minRecords: fc.integer({ min: 1, max: 4 }),
      maxBackoff: fc.constantFrom(1, 2, 3, 8),
      initial: fc.constantFrom(...PROTOCOLS),
      candidates: fc.subarray([...PROTOCOLS], { minLength: 1 }),
      context: fc.option(fc.record({ agentCount: fc.integer({ min: 0, max: 15 }), complexity: level, coordinationIntensity: level }), { nil: undefined }),
      records: fc.array(
        fc.record({
          t: fc.integer({ min: 0, max: 300 }),
          protocol: fc.constantFrom(...PROTOCOLS, 'gossip'),
          ok: fc.boolean(),
          latencyMs: fc.integer({ min: 0, max: 3000 }),
          messages: fc.integer({ min: 0, max: 30 }),
          atOffset: fc.option(fc.integer({ min: -60, max: 5 }), { nil: undefined }),
        }),
        { maxLength: 120 },
      ),
    });
    const HORIZON = 320;
    type Scenario = typeof scenario extends fc.Arbitrary<infer T> ? T : never;

    /** The decision rule written out against the naive window, tick by tick: memory, probation, back-off. */
    function reference(s: Scenario, prior: PriorScore, stamped: { arrival: number; t: number; r: ExecutionRecord }[]) {
      const protocols = [...new Set([...s.candidates, s.initial])];
      const switches: Omit<ProtocolSwitch, 'reason'>[] = [];
      const scoreOf = (inside: ExecutionRecord[]): number => {
        if (inside.length === 0) return 0;
        const lat = inside.map(r => r.latencyMs).sort((a, b) => a - b);
        const p95 = lat[Math.max(1, Math.ceil((95 * lat.length) / 100)) - 1]!;
        const ok = inside.filter(r => r.ok).length / inside.length;
        const msgs = inside.reduce((sum, r) => sum + r.messages, 0) / inside.length;
        return ok / (1 + p95 / 1000) / (1 + msgs / 10);
      };
      const remembered: Record<string, number> = {};
      const left = new Set<string>();
      let scale = 1;
      let fromPrior = new Set<string>();
      let current: string = s.initial;
      let chosenAt = s.start;
      let reverts = 0;
      let trial: { from: string; to: string; at: number; before: number; evidence: number; prior: number | undefined } | undefined;
      const counts: Record<string, number> = {};
      const scoresAt = (at: number): Record<string, number> => {
        const scores: Record<string, number> = {};
        fromPrior = new Set();
        for (const p of protocols) {
          const inside = stamped.filter(x => x.r.protocol === p && x.arrival <= at && x.t > at - s.windowMs).map(x => x.r);
          counts[p] = inside.length;
          if (inside.length >= s.minRecords && !left.has(p)) remembered[p] = scoreOf(inside);
          if (remembered[p] !== undefined) {
            scores[p] = remembered[p];
          } else {
            const guess = prior(p);
            scores[p] = guess > 0 ? guess * scale : guess;
            fromPrior.add(p);
          }
        }
        return scores;
      };
      const moved = (from: string, to: string, fromScore: number, revert: boolean): void => {
        if (revert || !fromPrior.has(from)) remembered[from] = fromScore;
        left.add(from);
        left.delete(to);
        current = to;
      };
      for (let at = s.start + s.evaluateEveryMs; at <= s.start + HORIZON; at += s.evaluateEveryMs) {
        let scores = scoresAt(at);
        if (trial !== undefined) {
          const t0 = trial.at;
          // Records queued at the tick's instant ran before it: only later arrivals count.
          const runs = stamped.filter(x => x.r.protocol === trial!.to && x.arrival > t0 && x.arrival <= at && x.t > t0 && x.t > at - s.windowMs).map(x => x.r);
          const elapsed = at - t0;
          const due = (needed: number): boolean => (elapsed >= s.minDwellMs && runs.length >= needed) || elapsed >= Math.max(s.minDwellMs, s.windowMs);
          const measured = scoreOf(runs);
          const gain = runs.length > 0 && measured > trial.before;
          // A clear loss is judged on minRecords runs, a close call on as many as the score it was compared with.
          const clearLoss = trial.before > measured + s.switchThreshold * Math.abs(measured);
          if (due(clearLoss ? s.minRecords : trial.evidence)) {
            const { from, to, before, prior: guessed } = trial;
            trial = undefined;
            if (guessed !== undefined && guessed > 0 && runs.length > 0) scale = Math.min(scale, Math.max(0, measured) / guessed);
            scores = scoresAt(at);
            if (gain) {
              reverts = 0;
            } else {
              reverts++;
              switches.push({ from: to, to: from, at, scores: { ...scores, [to]: measured, [from]: before }, revert: true });
              moved(to, from, measured, true);
              chosenAt = at;
              continue;
            }
          } else {
            continue;
          }
        }
        const dwell = reverts === 0 ? s.minDwellMs : Math.max(s.minDwellMs, s.evaluateEveryMs) * Math.min(2 ** reverts, s.maxBackoff);
        if (at - chosenAt < dwell) continue;
        let best: string | undefined;
        for (const p of protocols) if (p !== current && (best === undefined || scores[p]! > scores[best]!)) best = p;
        if (best === undefined) continue;
        const cur = scores[current]!;
        const top = scores[best]!;
        if (top > cur + s.switchThreshold * Math.abs(cur)) {
          switches.push({ from: current, to: best, at, scores });
          trial = { from: current, to: best, at, before: cur, evidence: Math.max(s.minRecords, counts[current]!), prior: fromPrior.has(best) ? prior(best) : undefined };
          moved(current, best, cur, false);
          chosenAt = at;
        }
      }
      return switches;
    }

    it('switches only at ticks, never within minDwellMs, by more than the threshold or back once on probation — as the reference decides', () => {
      let total = 0;
      let reverted = 0;
      fc.assert(
        fc.property(scenario, s => {
          const scheduler = new VirtualScheduler({ startMs: s.start });
          const prior = s.context === undefined ? () => 0.25 : matrixPrior(s.context);
          const records = new Subject<ExecutionRecord>();
          const stamped: { arrival: number; t: number; r: ExecutionRecord }[] = [];
          // Records are queued before the operator's timer, so at a shared instant they run first.
          for (const { t, protocol, ok, latencyMs, messages, atOffset } of [...s.records].sort((a, b) => a.t - b.t)) {
            const arrival = s.start + t;
            const r: ExecutionRecord = atOffset === undefined
              ? { protocol, ok, latencyMs, messages }
              : { protocol, ok, latencyMs, messages, at: arrival + atOffset };
            stamped.push({ arrival, t: r.at ?? arrival, r });
            scheduler.schedule(() => records.next(r), t);
          }
          const out: ProtocolSwitch[] = [];
          const sub = records
            .pipe(adaptiveSwitch({ ...s, ...(s.context === undefined ? {} : { prior }), scheduler }))
            .subscribe(x => out.push(x));
          scheduler.advanceBy(HORIZON);
          sub.unsubscribe();
          expect(scheduler.pending).toBe(0);
          total += out.length;
          reverted += out.filter(x => x.revert).length;

          let current: string = s.initial;
          let last = s.start;
          let previous: ProtocolSwitch | undefined;
          for (const x of out) {
            expect((x.at - s.start) % s.evaluateEveryMs).toBe(0);
            expect(x.at).toBeGreaterThan(s.start);
            expect(x.at - last).toBeGreaterThanOrEqual(s.minDwellMs);
            expect(x.from).toBe(current);
            expect(x.to).not.toBe(x.from);
            const [to, from] = [x.scores[x.to]!, x.scores[x.from]!];
            if (x.revert) {
              // Undoes the switch just before it, which was not itself a switch back, and only
              // when the target did not measure above what it replaced.
              expect(previous).toBeDefined();
              expect(previous!.revert).toBeUndefined();
              expect([x.from, x.to]).toEqual([previous!.to, previous!.from]);
              expect(from).toBeLessThanOrEqual(to);
              expect(x.reason.startsWith('switch back: ')).toBe(true);
            } else {
              expect(to).toBeGreaterThan(from);
              expect(to).toBeGreaterThan(from + s.switchThreshold * Math.abs(from));
              expect(x.reason.startsWith(`${x.to} scored `)).toBe(true);
            }
            current = x.to;
            last = x.at;
            previous = x;
          }
          expect(out.map(({ reason: _, ...rest }) => rest)).toEqual(reference(s, prior, stamped));
        }),
        { numRuns: 200 },
      );
      // The property is not vacuous: random streams do make it switch, and switch back.
      expect(total).toBeGreaterThan(0);
      expect(reverted).toBeGreaterThan(0);
    });
  });
  describe('property: stationary conditions', () => {
    // Records arrive under the protocol in force (as the engine produces them), each drawn from a
    // fixed distribution per protocol: loss-like failures, a share of slow runs (a slow agent),
    // messages per run. Nothing changes over the span, so there is nothing to chase: after at most
    // one exploration per protocol, switching must die out. Engine-like cadence, scaled down: a
    // 1 s tick, a 10 s window, a 2 s dwell, the default minRecords and maxBackoff, for an hour.
    const PROTOCOLS = ['hierarchical', 'mesh', 'ring', 'star'] as const;
    const K = PROTOCOLS.length;
    const SPAN_MS = 3_600_000;
    const conditions = fc.record({
      okRate: fc.double({ min: 0.3, max: 1, noNaN: true }),
      latencyMs: fc.integer({ min: 50, max: 500 }),
      slowShare: fc.double({ min: 0, max: 0.3, noNaN: true }),
      slowFactor: fc.double({ min: 2, max: 10, noNaN: true }),
      messages: fc.integer({ min: 2, max: 40 }),
    });
    type Conditions = typeof conditions extends fc.Arbitrary<infer T> ? T : never;
    const world = fc.record({
      seed: fc.integer({ min: 0, max: 2 ** 30 }),
      initial: fc.constantFrom(...PROTOCOLS),
      perSecond: fc.integer({ min: 5, max: 20 }),
      // Either every protocol suffers the same (loss and slowness hit all alike) or each has its own.
      shared: fc.boolean(),
      each: fc.tuple(conditions, conditions, conditions, conditions),
    });

    function run(w: typeof world extends fc.Arbitrary<infer T> ? T : never): ProtocolSwitch[] {
      const scheduler = new VirtualScheduler();
      const random = createRandom(w.seed);
      const conditionsOf = (p: string): Conditions => (w.shared ? w.each[0] : w.each[PROTOCOLS.indexOf(p as (typeof PROTOCOLS)[number])]!);
      const records = new Subject<ExecutionRecord>();
      let current: string = w.initial;
      const out: ProtocolSwitch[] = [];
      const sub = records
        .pipe(adaptiveSwitch({ initial: w.initial, candidates: [...PROTOCOLS], evaluateEveryMs: 1000, windowMs: 10_000, minDwellMs: 2000, scheduler }))
        .subscribe(x => {
          current = x.to;
          out.push(x);
        });
      scheduler.schedule(function (this: SchedulerAction<undefined>) {
        const c = conditionsOf(current);
        const slow = random.next() < c.slowShare ? c.slowFactor : 1;
        records.next({ protocol: current, ok: random.next() < c.okRate, latencyMs: c.latencyMs * (0.8 + 0.4 * random.next()) * slow, messages: c.messages });
        this.schedule(undefined, 1000 / w.perSecond);
      }, 0);
      scheduler.advanceBy(SPAN_MS);
      sub.unsubscribe();
      return out;
    }

    it('switches back at most once per switch, and switches stay few over a long span', () => {
      fc.assert(
        fc.property(world, w => {
          const out = run(w);
          out.forEach((x, i) => {
            if (!x.revert) return;
            const before = out[i - 1];
            expect(before).toBeDefined();
            expect(before!.revert).toBeUndefined(); // one switch back per switch, right after it
            expect([x.from, x.to]).toEqual([before!.to, before!.from]);
          });
          const reverts = out.filter(x => x.revert).length;
          const kept = out.length - 2 * reverts; // confirmed, or the last one still on probation
          // Each switch back costs two switches; without them, only the kept ones remain. Before
          // probation and held scores this was thousands in an hour (a cycle through the priors).
          expect(out.length).toBeLessThanOrEqual(kept + 2 * K);
          // Settled: the second half of the hour sees at most a few noise-driven switches.
          expect(out.filter(x => x.at > SPAN_MS / 2).length).toBeLessThanOrEqual(4);
        }),
        { numRuns: Number(process.env["ADAPTIVE_STATIONARY_RUNS"] ?? 30), verbose: 1 },
      );
    });
  });
});
