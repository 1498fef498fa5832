import { usageSampler } from '../../src/usageSampler.js';

const spin = (ms: number): void => {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // busy on purpose
  }
};
const tick = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms));

describe('usageSampler', () => {
  const samplers: Array<ReturnType<typeof usageSampler>> = [];
  afterEach(() => samplers.splice(0).forEach(s => s.stop()));
  const make = (...args: Parameters<typeof usageSampler>) => {
    const sampler = usageSampler(...args);
    samplers.push(sampler);
    return sampler;
  };

  it('names the highest measure: a blocked event loop', async () => {
    const sampler = make({ loopBudgetMs: 100 });
    await tick(50);
    spin(300);
    await tick(50); // the histogram records the late timer
    const usage = sampler.read();
    expect(usage.what).toBe('event loop');
    expect(usage.fraction).toBeGreaterThanOrEqual(2);
  });

  it('names the highest measure: CPU of the process and its children, over the cores', async () => {
    // Injected children: the process's own CPU share depends on what else the machine runs.
    const withChildren = make({ loopBudgetMs: 1e9, cores: 4, children: () => ({ rssBytes: 0, cpuCores: 3.9, memoryFraction: 0.5 }) });
    await tick(20);
    expect(withChildren.read()).toEqual({ fraction: expect.closeTo(1, 1), what: 'cpu' });
  });

  it('names the highest measure: the busiest child against its memory budget', async () => {
    const sampler = make({ loopBudgetMs: 1e9, cores: 64, children: () => ({ rssBytes: 1e9, cpuCores: 0, memoryFraction: 0.97 }) });
    await tick(20);
    expect(sampler.read()).toEqual({ fraction: 0.97, what: 'memory' });
  });

  it('refuses bad options', () => {
    expect(() => usageSampler({ loopBudgetMs: 0 })).toThrow(/loopBudgetMs/);
    expect(() => usageSampler({ cores: 0 })).toThrow(/cores/);
  });
});
