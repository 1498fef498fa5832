import { readFileSync, readdirSync } from 'node:fs';

/**
 * What `/proc` says of one process group (Linux): its live members, their resident memory and the
 * CPU time they have used. Read by scanning `/proc/<pid>/stat`, one small read per process on the
 * machine: a sampler calls it about twice a second, not on a hot path. Zombies (exited, not yet
 * reaped) are not members: they hold no memory and run nothing.
 */
export interface GroupSample {
  readonly pids: readonly number[];
  readonly rssBytes: number;
  /** User + system CPU time of the live members, in ms (a member that exits takes its share along). */
  readonly cpuMs: number;
}

/** Kernel clock ticks per second of `/proc` times (USER_HZ: 100 on every Linux architecture Node runs on). */
const TICKS_PER_SECOND = 100;
const PAGE_BYTES = 4096;

/** Fields of `/proc/<pid>/stat` after the command name, which may itself hold spaces and parentheses. */
function statFields(text: string): string[] | undefined {
  const end = text.lastIndexOf(')');
  return end < 0 ? undefined : text.slice(end + 2).split(' ');
}

/**
 * The live members of process group `pgid`, from `/proc` (`root` for tests). A process that ends
 * while it is read is skipped.
 */
export function sampleGroup(pgid: number, root = '/proc'): GroupSample {
  const pids: number[] = [];
  let rssBytes = 0;
  let cpuTicks = 0;
  let entries: string[];
  try {
    entries = readdirSync(root);
  } catch {
    return { pids, rssBytes, cpuMs: 0 };
  }
  for (const entry of entries) {
    const code = entry.charCodeAt(0);
    if (code < 48 || code > 57) continue; // not a pid
    let fields: string[] | undefined;
    try {
      fields = statFields(readFileSync(`${root}/${entry}/stat`, 'latin1'));
    } catch {
      continue; // gone meanwhile
    }
    // After the name: [0] state, [2] pgrp, [11] utime, [12] stime, [21] rss (pages).
    if (fields === undefined || Number(fields[2]) !== pgid || fields[0] === 'Z' || fields[0] === 'X') continue;
    pids.push(Number(entry));
    cpuTicks += Number(fields[11]) + Number(fields[12]);
    rssBytes += Number(fields[21]) * PAGE_BYTES;
  }
  return { pids, rssBytes, cpuMs: (cpuTicks * 1000) / TICKS_PER_SECOND };
}

/** Signals every process of group `pgid`; false when none is left to signal. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false; // ESRCH: the group is empty
  }
}
