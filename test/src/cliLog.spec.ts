import { cliLog, type LogLevel } from '../../src/cliLog.js';
import { statusLines, taskLines } from '../../src/statusText.js';
import { cliProcesses } from './cliProcesses.js';

describe('cliLog', () => {
  const lines: Array<[string, LogLevel]> = [];
  const write = (line: string, level: LogLevel): void => void lines.push([line, level]);
  beforeEach(() => void lines.splice(0));

  it('stamps each line with its time and level, and leaves out what is below the level', () => {
    const log = cliLog({ level: 'info', now: () => Date.UTC(2026, 0, 5, 10, 0, 0, 7), write });
    log.debug('hidden');
    log.info('agent a-1 connected');
    log.error('refused');
    expect(lines).toEqual([
      ['2026-01-05T10:00:00.007Z info  agent a-1 connected', 'info'],
      ['2026-01-05T10:00:00.007Z error refused', 'error'],
    ]);
  });

  it('writes one JSON object a line with the fields given', () => {
    cliLog({ format: 'json', level: 'warn', now: () => 0, write }).warn('refused x', { code: 4001 });
    expect(JSON.parse(lines[0]![0])).toEqual({ time: '1970-01-01T00:00:00.000Z', level: 'warn', msg: 'refused x', code: 4001 });
  });

  it.each([['format', { format: 'xml' }], ['level', { level: 'loud' }]] as const)('refuses a bad %s', (name, options) => {
    expect(() => cliLog(options as never)).toThrow(new RegExp(`^${name} must be`));
  });
});

describe('status text', () => {
  it('lists tasks running and queued first, then agents with what needs attention', () => {
    const task = { subtasks: 10, completed: 5, failed: 0, running: 2, progress: 0.5, submittedAt: 0, startedAt: null, finishedAt: null, protocol: null };
    const tasks = [
      { ...task, id: 'old', state: 'done' as const, queuePosition: null, progress: 1 },
      { ...task, id: 'next', state: 'queued' as const, queuePosition: 1, progress: 0 },
      { ...task, id: 'now', state: 'running' as const, queuePosition: null, protocol: 'star' },
    ];
    expect(taskLines(tasks).map(l => l.split(/\s+/)[0])).toEqual(['TASK', 'now', 'next', 'old']);
    const agent = { id: 'a-1', state: 'suspected', phi: 9.5, lastBeatAt: 1000, slots: 2, running: 1, usage: 0.5, capabilities: [], since: 0, transitions: [] };
    const lines = statusLines({ seq: 0, full: true, at: 0, protocol: 'star', agents: [agent], tasks, attention: [{ kind: 'suspected', text: 'a-1 suspected: phi 9.5', at: 0 }] }, 4000);
    expect(lines[0]).toBe('protocol star; 0 of 1 agents alive; 1 task(s) running, 1 queued');
    expect(lines.join('\n')).toMatch(/suspected\s+a-1 suspected: phi 9\.5/);
    expect(lines.join('\n')).toMatch(/a-1\s+suspected\s+9\.50\s+3\.0 s ago\s+1\s+2\s+50%/);
  });
});

describe('serve --log-format json', () => {
  const { start, killAll } = cliProcesses('log-token', 30_000);
  afterAll(() => killAll());

  it('writes one JSON object a line, stamped, with the dashboard and metrics addresses', async () => {
    const serve = start('serve', '--port', '0', '--log-format', 'json', '--log-level', 'info');
    const first = JSON.parse(await serve.line(/listening on/)) as { time: string; level: string; msg: string; url: string };
    expect(first).toMatchObject({ level: 'info', url: expect.stringMatching(/^ws:\/\/127\.0\.0\.1:\d+$/) });
    expect(Date.parse(first.time)).toBeGreaterThan(Date.now() - 60_000);
    const second = JSON.parse(await serve.line(/dashboard/)) as { dashboard: string; metrics: string };
    expect(second.dashboard).toBe(`${first.url.replace(/^ws/, 'http')}/`);
    expect(second.metrics).toBe(`${first.url.replace(/^ws/, 'http')}/metrics`);
  });
});
