import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { asyncScheduler, filter, firstValueFrom, take, timeout, toArray, type SchedulerAction, type SchedulerLike } from 'rxjs';
import { connectNats } from '../../streams/natsConnect.js';
import { NatsLease, type LeaseState } from '../../streams/natsLease.js';
import { root } from '../src/cliProcesses.js';
import { startNatsServer, type NatsServer } from './natsServer.js';

// The leader lease against a real nats-server per test. Times are short (TTL 2 s: renewals every
// 500 ms, so an event loop held up to a second on a loaded machine keeps the lease) so that a
// takeover happens within a test; every wait is on an event and bounded by WAIT_MS.
const WAIT_MS = 15_000;
const TTL = 2000;

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(): Promise<{ server: NatsServer; lease(id: string, scheduler?: SchedulerLike): Promise<NatsLease> }> {
  const server = await startNatsServer();
  cleanups.push(() => server.stop());
  const connections: NatsConnection[] = [];
  cleanups.push(() => Promise.all(connections.map(c => c.close())));
  return {
    server,
    lease: async (id, scheduler = asyncScheduler) => {
      const nc = await connectNats({ url: server.url });
      connections.push(nc);
      const lease = await NatsLease.open({ connection: nc, id, ttlMs: TTL, scheduler });
      cleanups.push(() => lease.abandon());
      return lease;
    },
  };
}

function state(lease: NatsLease, type: LeaseState['type'], ms = WAIT_MS): Promise<LeaseState> {
  return firstValueFrom(lease.state$.pipe(filter(s => s.type === type), take(1), timeout(ms)));
}

/** Timers of this scheduler do not run while paused; they run, late, on resume (as a SIGSTOPped process's do). Its clock goes on. */
function pausable(): SchedulerLike & { pause(): void; resume(): void } {
  let paused = false;
  const held: Array<() => void> = [];
  return {
    now: () => asyncScheduler.now(),
    schedule<T>(work: (this: SchedulerAction<T>, state?: T) => void, delay = 0, state?: T) {
      return asyncScheduler.schedule<T>(function (this: SchedulerAction<T>, s?: T) {
        if (paused) held.push(() => work.call(this, s));
        else work.call(this, s);
      }, delay, state);
    },
    pause: () => void (paused = true),
    resume: () => {
      paused = false;
      for (const run of held.splice(0)) run();
    },
  };
}

describe('NatsLease', () => {
  it('refuses a renewal interval that leaves no time to renew before validity ends', async () => {
    const nc = await connectNats({ url: (await setup()).server.url });
    cleanups.push(() => nc.close());
    await expect(NatsLease.open({ connection: nc, id: 'x', ttlMs: 1000, renewEveryMs: 600, safetyMs: 500 })).rejects.toThrow(/renewEveryMs \+ safetyMs must be below ttlMs/);
  });

  it('one of two nodes leads, and keeps the lease by renewing it for many TTLs', async () => {
    const { lease } = await setup();
    const a = await lease('a');
    const b = await lease('b');
    a.start();
    await state(a, 'leader');
    b.start();
    const bStates: LeaseState[] = [];
    b.state$.subscribe(s => bStates.push(s));
    // 10 renewals at TTL/4 apart: two and a half TTLs.
    const revisions = await firstValueFrom(a.renewals$.pipe(take(10), toArray(), timeout(WAIT_MS)));
    expect(revisions).toEqual([...revisions].sort((x, y) => x - y));
    expect(a.isLeader()).toBe(true);
    expect(b.isLeader()).toBe(false);
    expect(bStates.every(s => s.type === 'follower')).toBe(true);
    expect(bStates.at(-1)).toMatchObject({ type: 'follower', holder: { id: 'a' } });
  });

  it('hands over at once on release, and after the TTL when the leader dies silently', async () => {
    const { lease } = await setup();
    const a = await lease('a');
    const b = await lease('b');
    const c = await lease('c');
    a.start();
    await state(a, 'leader');
    b.start();
    c.start();
    const released = Date.now();
    await a.release();
    const next = await Promise.race([state(b, 'leader').then(() => b), state(c, 'leader').then(() => c)]);
    expect(Date.now() - released).toBeLessThan(TTL); // the entry was deleted: no TTL to wait out
    const other = next === b ? c : b;
    expect(other.isLeader()).toBe(false);
    const validUntil = next.validity;
    next.abandon(); // a crash: nothing deleted
    await state(other, 'leader');
    const tookAt = Date.now();
    expect(tookAt).toBeGreaterThanOrEqual(validUntil);
    expect(tookAt - validUntil).toBeLessThan(TTL + 1000);
  });

  it('a holder paused past its TTL knows it lost the lease before anyone else can take it, and steps down on waking', async () => {
    const { lease } = await setup();
    const clock = pausable();
    const a = await lease('a', clock);
    a.start();
    await state(a, 'leader');
    await firstValueFrom(a.renewals$.pipe(take(2), timeout(WAIT_MS)));
    const b = await lease('b');
    b.start();
    clock.pause(); // no renewal from now on; a's clock goes on
    const validUntil = a.validity;
    await state(b, 'leader');
    const tookAt = Date.now();
    // b got it only after a's own validity had ended, and a, asked now, says it is not leader.
    expect(tookAt).toBeGreaterThanOrEqual(validUntil);
    expect(a.isLeader()).toBe(false);
    const aStates: LeaseState[] = [];
    a.state$.subscribe(s => aStates.push(s));
    clock.resume();
    await state(a, 'follower');
    expect(aStates.at(-1)).toMatchObject({ type: 'follower' });
    // b keeps leading: a's late timers wrote nothing over it.
    await firstValueFrom(b.renewals$.pipe(take(3), timeout(WAIT_MS)));
    expect(b.isLeader()).toBe(true);
    expect(a.isLeader()).toBe(false);
  });

  it('a real SIGSTOPped holder: the other node leads only after its validity ended; after SIGCONT it steps down and never claims again', async () => {
    const { server, lease } = await setup();
    const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', join(root, 'test', 'fixtures', 'leaseHolder.ts'), server.url, 'stopped', String(TTL)], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    cleanups.push(() => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGCONT');
        child.kill('SIGKILL');
      }
    });
    const lines: Array<{ type: string; at: number; validUntil: number; leaderNow?: boolean }> = [];
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const seen = (test: (l: (typeof lines)[number]) => boolean): Promise<void> =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no such line within ${WAIT_MS} ms: ${JSON.stringify(lines)}\n${stderr}`)), WAIT_MS);
        const check = (): void => {
          if (lines.some(test)) {
            clearTimeout(timer);
            child.stdout?.off('data', check);
            resolve();
          }
        };
        child.stdout?.on('data', check);
        check();
      });
    let buffer = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      buffer += d;
      const parts = buffer.split('\n');
      buffer = parts.pop() ?? '';
      for (const p of parts) lines.push(JSON.parse(p) as (typeof lines)[number]);
    });
    await seen(l => l.type === 'renewed');
    await seen(l => lines.filter(x => x.type === 'renewed').length >= 3);
    const b = await lease('b');
    b.start();
    child.kill('SIGSTOP');
    const stoppedAt = Date.now();
    await state(b, 'leader');
    const tookAt = Date.now();
    const lastValid = Math.max(...lines.filter(l => l.type === 'renewed' || l.type === 'leader').map(l => l.validUntil));
    expect(tookAt).toBeGreaterThanOrEqual(lastValid);
    expect(tookAt - stoppedAt).toBeLessThan(TTL + 2000);
    const before = lines.length;
    child.kill('SIGCONT');
    await seen(l => l.type === 'follower' && l.at >= tookAt);
    const after = lines.slice(before);
    // On waking its first word is that it lost the lease; no renewal went through.
    expect(after[0]).toMatchObject({ type: 'follower', leaderNow: false });
    expect(after.some(l => l.type === 'renewed')).toBe(false);
    await firstValueFrom(b.renewals$.pipe(take(4), timeout(WAIT_MS)));
    expect(b.isLeader()).toBe(true);
    expect(lines.slice(before).some(l => l.type === 'leader' || l.type === 'renewed')).toBe(false);
  });
});
