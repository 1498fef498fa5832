import { readFileSync, readdirSync } from 'node:fs';

/**
 * What `/proc` says of one process group (Linux): its live members, their resident memory and the
 * CPU time they have used. Zombies (exited, not yet reaped) are not members: they hold no memory
 * and run nothing. A process that ends while it is read is skipped.
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

/** What one `/proc/<pid>/stat` says, or undefined when the process is gone (or a zombie). */
function readStat(root: string, pid: number | string): { pgrp: number; ticks: number; rssBytes: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`${root}/${pid}/stat`, 'latin1');
  } catch {
    return undefined; // gone meanwhile
  }
  // The command name, in parentheses, may itself hold spaces and parentheses: fields start after the last ')'.
  const end = text.lastIndexOf(')');
  if (end < 0) return undefined;
  const fields = text.slice(end + 2).split(' ');
  // After the name: [0] state, [2] pgrp, [11] utime, [12] stime, [21] rss (pages).
  if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
  return { pgrp: Number(fields[2]), ticks: Number(fields[11]) + Number(fields[12]), rssBytes: Number(fields[21]) * PAGE_BYTES };
}

function childrenOf(root: string, pid: number): number[] {
  const found: number[] = [];
  try {
    // Children are listed per thread that forked them.
    for (const task of readdirSync(`${root}/${pid}/task`)) {
      const text = readFileSync(`${root}/${pid}/task/${task}/children`, 'latin1').trim();
      if (text !== '') for (const child of text.split(' ')) found.push(Number(child));
    }
  } catch {
    // gone meanwhile
  }
  return found;
}

function sample(root: string, pgid: number, pids: Iterable<number | string>, follow: boolean): GroupSample {
  const members: number[] = [];
  let rssBytes = 0;
  let ticks = 0;
  const seen = new Set<number>();
  const queue = [...pids].map(Number);
  while (queue.length > 0) {
    const pid = queue.pop() as number;
    if (seen.has(pid)) continue;
    seen.add(pid);
    const stat = readStat(root, pid);
    if (stat === undefined || stat.pgrp !== pgid) continue;
    members.push(pid);
    ticks += stat.ticks;
    rssBytes += stat.rssBytes;
    if (follow) queue.push(...childrenOf(root, pid));
  }
  return { pids: members, rssBytes, cpuMs: (ticks * 1000) / TICKS_PER_SECOND };
}

/**
 * The live members of process group `pgid` found from its leader and `known` members (those of an
 * earlier sample) down through their children (`/proc/<pid>/task/<tid>/children`): cost in
 * proportion to the group, not to the machine. A member orphaned since the last sample (its parent
 * exited, so it hangs under init now) is found again only if it was known; the signals that end a
 * group reach every member whatever this finds.
 */
export function sampleGroup(pgid: number, known: Iterable<number> = [], root = '/proc'): GroupSample {
  return sample(root, pgid, [pgid, ...known], true);
}

/** Every live member of `pgid`, by reading the stat of every process on the machine (`root` for tests): the exact answer, at a cost of milliseconds. */
export function scanGroup(pgid: number, root = '/proc'): GroupSample {
  let entries: string[];
  try {
    entries = readdirSync(root).filter(entry => entry.charCodeAt(0) >= 48 && entry.charCodeAt(0) <= 57);
  } catch {
    entries = [];
  }
  return sample(root, pgid, entries, false);
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
