import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { Observable } from 'rxjs';
import { nestingDepth } from '../streams/wsCodec.js';
import { sampleGroup, scanGroup, signalGroup } from './processGroup.js';
import type { AgentContext, Subtask } from '../streams/task.js';

export interface ExecOptions {
  /** Run by `/bin/sh -c`, once per attempt, in a process group of its own. */
  readonly command: string;
  /**
   * Resident memory one attempt's process group may use, in bytes: above it the group is killed
   * and the attempt fails saying so. Default: no limit. Checked every `sampleEveryMs`, so a
   * fast-growing child can overshoot it by what it allocates in between.
   */
  readonly maxRssBytes?: number;
  /** After SIGTERM, how long the group gets before SIGKILL. Default 2000. Longer: more time to clean up; a hung child holds its slot longer. */
  readonly killGraceMs?: number;
  /** Most stdout bytes taken from one attempt; more kills the group and fails the attempt. Default 1 MiB (the coordinator's largest result). */
  readonly maxStdoutBytes?: number;
  /** How much of stderr's end a failure quotes. Default 2048 bytes. */
  readonly stderrTailBytes?: number;
  /** Output on stderr is progress, reported at most once per this many ms. Default 1000. */
  readonly progressEveryMs?: number;
  /** How often the process groups' memory and CPU are read from /proc. Default 500. Shorter: a memory budget is held more tightly, at more reads of /proc. */
  readonly sampleEveryMs?: number;
}

/** What the running children use together, from the last sample. */
export interface ExecUsage {
  readonly rssBytes: number;
  /** CPU time per wall time over the last sample period: 1 is one core busy. */
  readonly cpuCores: number;
  /** `rssBytes` against the budget (the busiest group's share of `maxRssBytes`); undefined without one. */
  readonly memoryFraction: number | undefined;
}

export interface ExecAgent {
  /** A {@link Handler}: one process group per call, ended when its subscription ends. */
  readonly handle: (subtask: Subtask, context: AgentContext) => Observable<unknown>;
  /** Memory and CPU of the children running now (zero when none). */
  usage(): ExecUsage;
  /** Process group ids (the leaders' pids) of the attempts running now, or still ending. */
  groups(): number[];
  /** Ends every running group (SIGTERM, SIGKILL after the grace) and resolves once none is left. */
  close(): Promise<void>;
}

type Child = ChildProcessByStdio<Writable, Readable, Readable>;

/** Result text deeper than this stays text: a result nests inside the messages that carry it. */
const MAX_RESULT_DEPTH = 32;

/** One attempt's process group, from spawn until none of its processes is left. */
class GroupRun {
  rssBytes = 0;
  cpuCores = 0;
  private cpuMs = 0;
  /** Members found by the last sample: where the next one starts looking (besides the leader). */
  private members: readonly number[] = [];
  private sampledAt: number;
  private killTimer: ReturnType<typeof setTimeout> | undefined;
  /** Why we ended it, when we did: the attempt fails with this. */
  reason: string | undefined;
  exited = false;
  readonly gone: Promise<void>;

  constructor(
    readonly child: Child,
    private readonly killGraceMs: number,
  ) {
    this.sampledAt = performance.now();
    this.gone = new Promise(resolve => child.once('exit', () => resolve()));
  }

  get pgid(): number {
    return this.child.pid as number;
  }

  sample(): ReturnType<typeof sampleGroup> {
    const now = performance.now();
    const group = sampleGroup(this.pgid, this.members);
    this.members = group.pids;
    const elapsed = now - this.sampledAt;
    // A member that exited took its CPU time with it: a drop is not negative use.
    if (elapsed > 0) this.cpuCores = Math.max(0, group.cpuMs - this.cpuMs) / elapsed;
    this.cpuMs = group.cpuMs;
    this.sampledAt = now;
    this.rssBytes = group.rssBytes;
    return group;
  }

  /** SIGTERM to the whole group, SIGKILL after the grace; `reason` (the first given) fails the attempt. */
  terminate(reason?: string): void {
    this.reason ??= reason;
    if (this.killTimer !== undefined) return;
    signalGroup(this.pgid, 'SIGTERM');
    this.killTimer = setTimeout(() => this.kill(), this.killGraceMs);
    this.killTimer.unref();
  }

  /** SIGKILL to the whole group: what is left of it once its leader has exited, or after the grace. */
  kill(): void {
    signalGroup(this.pgid, 'SIGKILL');
  }

  /** Resolves once no live process is left in the group (polled; SIGKILL has been or will be sent). */
  async ended(): Promise<void> {
    await this.gone;
    // Usually nothing is left once the leader has been reaped: a SIGKILL to the group finds no one (ESRCH) and /proc is not read.
    // Otherwise poll /proc, which tells the live members from zombies awaiting their reaper.
    while (signalGroup(this.pgid, 'SIGKILL') && scanGroup(this.pgid).pids.length > 0) await new Promise(resolve => setTimeout(resolve, 20));
    clearTimeout(this.killTimer);
  }
}

/**
 * A handler (`Handler` of `startAgent`) that runs a command per subtask, as `rxswarm agent --exec` does:
 *
 * - `/bin/sh -c COMMAND` in a process group of its own, the payload as JSON on stdin;
 * - stdout is the result: parsed as JSON when it parses, else the text without its trailing newlines;
 *   more than `maxStdoutBytes` fails the attempt;
 * - exit code 0 succeeds; another code or a signal fails the attempt with the end of stderr;
 * - output on stderr is progress (`context.heartbeat`, at most once per `progressEveryMs`);
 * - a cancelled or revoked attempt (its subscription ends, `context.signal` aborts) and {@link ExecAgent.close}
 *   end the whole group: SIGTERM, then SIGKILL after `killGraceMs`; once the command's own process
 *   has exited, whatever it left running in its group is killed at once;
 * - the group's resident memory and CPU (read from /proc) are the agent's usage, and a group above
 *   `maxRssBytes` is killed, failing the attempt with its size.
 *
 * No process of a group outlives its attempt. A process that leaves its group (`setsid`) is out of reach.
 *
 * @example
 * const agent = execHandler({ command: 'claude --print', maxRssBytes: 2 * 1024 ** 3 });
 * startAgent({ url, token, id: 'llm-1', handler: agent.handle });
 */
export function execHandler(options: ExecOptions): ExecAgent {
  const {
    command,
    maxRssBytes,
    killGraceMs = 2000,
    maxStdoutBytes = 1024 * 1024,
    stderrTailBytes = 2048,
    progressEveryMs = 1000,
    sampleEveryMs = 500,
  } = options;
  if (typeof command !== 'string' || command.trim() === '') throw new RangeError(`command must be a non-empty string, got ${JSON.stringify(command)}`);
  if (maxRssBytes !== undefined && !(maxRssBytes > 0)) throw new RangeError(`maxRssBytes must be > 0, got ${String(maxRssBytes)}`);
  for (const [name, value] of Object.entries({ killGraceMs, maxStdoutBytes, stderrTailBytes, progressEveryMs, sampleEveryMs })) {
    if (!(Number.isFinite(value) && value >= 0)) throw new RangeError(`${name} must be a number >= 0, got ${String(value)}`);
  }

  const runs = new Set<GroupRun>();
  let sampler: ReturnType<typeof setInterval> | undefined;
  // An agent process that exits (a second Ctrl-C, an uncaught error) takes its children along.
  const onExit = (): void => {
    for (const run of runs) run.kill();
  };

  const sampleAll = (): void => {
    for (const run of runs) {
      if (run.exited) continue;
      run.sample();
      if (maxRssBytes !== undefined && run.rssBytes > maxRssBytes) run.terminate(`used ${mib(run.rssBytes)} of memory, over its budget of ${mib(maxRssBytes)} (--max-rss): killed`);
    }
  };

  const track = (run: GroupRun): void => {
    if (runs.size === 0) {
      process.on('exit', onExit);
      sampler = setInterval(sampleAll, sampleEveryMs);
      sampler.unref();
    }
    runs.add(run);
    void run.ended().then(() => {
      runs.delete(run);
      if (runs.size > 0) return;
      process.off('exit', onExit);
      clearInterval(sampler);
    });
  };

  const handle: ExecAgent['handle'] = (subtask, context) =>
    new Observable<unknown>(subscriber => {
      context.signal.throwIfAborted();
      const child: Child = spawn('/bin/sh', ['-c', command], { detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
      if (child.pid === undefined) {
        // spawn failed before a process existed (no /bin/sh, EAGAIN): the error event says why.
        child.once('error', err => subscriber.error(new Error(`cannot run ${JSON.stringify(command)}: ${err.message}`)));
        return undefined;
      }
      const run = new GroupRun(child, killGraceMs);
      track(run);
      const stdout: Buffer[] = [];
      let stdoutBytes = 0;
      let stderrTail = Buffer.alloc(0);
      let lastProgress = -Infinity;

      child.stdin.on('error', () => undefined); // a command that does not read its stdin
      child.stdin.end(JSON.stringify(subtask.payload ?? null));
      child.stdout.on('data', (chunk: Buffer) => {
        stdoutBytes += chunk.length;
        if (stdoutBytes > maxStdoutBytes) return run.terminate(`wrote more than ${maxStdoutBytes} bytes on stdout (the limit of a result): killed`);
        stdout.push(chunk);
      });
      child.stderr.on('data', (chunk: Buffer) => {
        stderrTail = Buffer.concat([stderrTail, chunk]);
        if (stderrTail.length > 2 * stderrTailBytes) stderrTail = stderrTail.subarray(stderrTail.length - stderrTailBytes);
        const now = performance.now();
        if (now - lastProgress >= progressEveryMs) {
          lastProgress = now;
          context.heartbeat();
        }
      });
      child.once('exit', () => {
        run.exited = true;
        // The leader is gone: what it left in its group would be orphaned.
        run.kill();
      });
      // Every stdio stream has ended: all of the output is in.
      child.once('close', (code, signal) => {
        const tail = stderrTail.subarray(Math.max(0, stderrTail.length - stderrTailBytes)).toString('utf8').trimEnd();
        const said = tail === '' ? '' : `: ${tail}`;
        if (run.reason !== undefined) return subscriber.error(new Error(`${JSON.stringify(command)} ${run.reason}${said}`));
        if (code !== 0) return subscriber.error(new Error(`${JSON.stringify(command)} ${code === null ? `was killed by ${signal}` : `exited with code ${code}`}${said}`));
        subscriber.next(resultOf(Buffer.concat(stdout).toString('utf8')));
        subscriber.complete();
      });
      child.once('error', err => run.terminate(`failed: ${err.message}`));
      const abort = (): void => run.terminate('was cancelled');
      context.signal.addEventListener('abort', abort, { once: true });
      return () => {
        context.signal.removeEventListener('abort', abort);
        if (!run.exited) run.terminate('was cancelled');
      };
    });

  return {
    handle,
    groups: () => [...runs].map(run => run.pgid),
    usage: () => {
      let rssBytes = 0;
      let cpuCores = 0;
      let busiest = 0;
      for (const run of runs) {
        if (run.exited) continue; // its leftovers are being killed
        rssBytes += run.rssBytes;
        cpuCores += run.cpuCores;
        busiest = Math.max(busiest, run.rssBytes);
      }
      return { rssBytes, cpuCores, memoryFraction: maxRssBytes === undefined ? undefined : busiest / maxRssBytes };
    },
    close: async () => {
      const all = [...runs];
      for (const run of all) run.terminate('was stopped: the agent is leaving');
      await Promise.all(all.map(run => run.ended()));
    },
  };
}

/** stdout as a result: JSON when it parses (and nests reasonably), else the text without trailing newlines. */
function resultOf(text: string): unknown {
  const trimmed = text.replace(/\n+$/, '');
  if (trimmed.trim() === '' || nestingDepth(trimmed, MAX_RESULT_DEPTH) > MAX_RESULT_DEPTH) return trimmed;
  try {
    return JSON.parse(trimmed) as unknown;
  } catch {
    return trimmed;
  }
}

/**
 * A size in bytes as people write it (`--max-rss`): `1048576`, `512K`, `512M`, `2G`, `1.5T`, in
 * powers of 1024, with an optional `B` or `iB` (`512MiB`, `2GB`). A RangeError for anything else.
 */
export function parseByteSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(text.trim());
  const value = match === null ? NaN : Math.floor(Number(match[1]) * 1024 ** 'BKMGT'.indexOf((match[2] || 'B').toUpperCase()));
  if (!(value >= 1 && Number.isSafeInteger(value))) throw new RangeError(`must be a size in bytes, e.g. 536870912, 512M or 2G; got ${JSON.stringify(text)}`);
  return value;
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
