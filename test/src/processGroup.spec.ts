import { spawn } from 'node:child_process';
import { sampleGroup, scanGroup, signalGroup } from '../../src/processGroup.js';

async function until(check: () => boolean, what: string): Promise<void> {
  const end = performance.now() + 5000;
  while (!check()) {
    if (performance.now() > end) throw new Error(`not within 5 s: ${what}`);
    await new Promise(resolve => setTimeout(resolve, 20));
  }
}

describe('processGroup', () => {
  it('finds a group from its leader down through its children as a full scan does, and reads its memory', async () => {
    const child = spawn('/bin/sh', ['-c', 'sleep 1000 & sh -c "sleep 1000 & wait" & wait'], { detached: true, stdio: 'ignore' });
    const pgid = child.pid as number;
    const exited = new Promise(resolve => child.once('exit', resolve));
    try {
      await until(() => scanGroup(pgid).pids.length === 4, 'four processes up');
      const walked = sampleGroup(pgid);
      expect([...walked.pids].sort()).toEqual([...scanGroup(pgid).pids].sort());
      expect(walked.rssBytes).toBeGreaterThan(0);
      expect(walked.cpuMs).toBeGreaterThanOrEqual(0);
    } finally {
      signalGroup(pgid, 'SIGKILL');
    }
    await exited;
    await until(() => scanGroup(pgid).pids.length === 0, 'the group gone');
    expect(sampleGroup(pgid)).toEqual({ pids: [], rssBytes: 0, cpuMs: 0 });
  });
});
