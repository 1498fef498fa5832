import { closeSync, fdatasync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, ftruncateSync, write, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';

/**
 * Where a coordinator records what must survive it: an append-only log of events (JSON values)
 * and, now and then, a snapshot of the state they built, after which the log before it is
 * dropped. Appends are buffered and made durable in batches (group commit); `durable()` says when
 * everything appended so far is. A journal that cannot write (a full disk, an I/O error) stops:
 * `failure` says why, appends throw it, and nothing appended before is forgotten.
 */
export interface Journal {
  /** What was recorded: the latest snapshot (if any) and every record appended after it, in order. */
  recover(): Recovered;
  /** Records one event (a JSON value). Throws the journal's failure once it has one. */
  append(record: unknown): void;
  /** Resolves once every record appended so far is durable; rejects with the failure if it cannot be. */
  durable(): Promise<void>;
  /**
   * Replaces everything recorded so far with `state` (the state all the records built): written
   * aside and renamed into place, then the records before it are dropped.
   */
  snapshot(state: unknown): void;
  /** Why the journal stopped (it takes nothing more), or undefined while it works. */
  readonly failure: Error | undefined;
  /** Called once when the journal stops. */
  onFailure(listener: (error: Error) => void): void;
  /** Records appended since the last snapshot. */
  readonly sinceSnapshot: number;
  /** Some record appended is not durable yet. */
  readonly pending: boolean;
  /** Writes what is buffered and lets go of the files. */
  close(): Promise<void>;
}

export interface Recovered {
  readonly snapshot: unknown;
  readonly records: readonly unknown[];
  /** Bytes of a torn last record that were dropped (a crash in the middle of a write). */
  readonly tornBytes: number;
}

/** The journal is damaged somewhere other than its last record: recovery stops rather than lose what it holds. */
export class JournalDamaged extends Error {
  override readonly name = 'JournalDamaged';
  constructor(
    readonly file: string,
    readonly offset: number,
    why: string,
  ) {
    super(`the journal is damaged: ${file} at byte ${offset}: ${why}. Nothing was changed; move the file aside to start without what it holds, or restore it from a copy`);
  }
}

/**
 * A journal in memory: every append is durable at once. What a simulated coordinator crash keeps.
 *
 * @example const journal = new MemoryJournal(); journal.append({ type: 'x' }); journal.recover().records // [{ type: 'x' }]
 */
export class MemoryJournal implements Journal {
  private state: unknown;
  private records: unknown[] = [];
  readonly failure = undefined;

  recover(): Recovered {
    // Copies: a recovering coordinator must not share objects with the one that crashed.
    return structuredClone({ snapshot: this.state, records: this.records, tornBytes: 0 });
  }

  append(record: unknown): void {
    this.records.push(structuredClone(record));
  }

  durable(): Promise<void> {
    return Promise.resolve();
  }

  snapshot(state: unknown): void {
    this.state = structuredClone(state);
    this.records = [];
  }

  get sinceSnapshot(): number {
    return this.records.length;
  }

  readonly pending = false;

  onFailure(): void {}

  async close(): Promise<void> {}
}

/** What a file journal does to its files: the `node:fs` calls it uses, replaceable to inject faults. */
export interface JournalFs {
  write(fd: number, data: Uint8Array, callback: (err: Error | null) => void): void;
  fdatasync(fd: number, callback: (err: Error | null) => void): void;
}

const nodeFs: JournalFs = {
  write: (fd, data, callback) => write(fd, data, 0, data.length, null, err => callback(err)),
  fdatasync: (fd, callback) => fdatasync(fd, callback),
};

export interface FileJournalOptions {
  /** Replaces the `node:fs` calls of appending (tests inject ENOSPC and EIO here). */
  readonly fs?: JournalFs;
}

const SNAPSHOT = 'snapshot.json';
const SEGMENT = /^journal-(\d{8})\.log$/;
const segmentName = (n: number): string => `journal-${String(n).padStart(8, '0')}.log`;

/**
 * An append-only file journal in a directory: JSON lines, each with its CRC-32, in numbered
 * segment files; a snapshot starts a new segment and the older ones are deleted. One write and one
 * `fdatasync` per batch: records appended while a batch is written go together in the next.
 *
 * Recovery reads the snapshot and the segments after it. A last record cut short (a crash while
 * writing it) is dropped and the file truncated there; any other damage — a bad checksum or a
 * line that does not parse in the middle, a damaged snapshot — throws {@link JournalDamaged}
 * naming the file and offset, and changes nothing. The directory is held by a lock file while the
 * journal is open: a second coordinator on it is refused.
 *
 * @example
 * const journal = FileJournal.open('./.rxswarm');
 * const { snapshot, records } = journal.recover();
 * journal.append({ type: 'task.submitted', … }); await journal.durable();
 */
export class FileJournal implements Journal {
  private fd: number;
  private segment: number;
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;
  private waiting: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  private writing = false;
  private flushQueued = false;
  private failed: Error | undefined;
  private readonly listeners: Array<(error: Error) => void> = [];
  private appended = 0;
  private closed = false;
  private recovered: Recovered | undefined;

  private constructor(
    readonly dir: string,
    private readonly fs: JournalFs,
    recovered: Recovered,
    segment: number,
  ) {
    this.recovered = recovered;
    this.segment = segment;
    this.appended = recovered.records.length;
    this.fd = openSync(join(dir, segmentName(segment)), 'a');
  }

  /** Opens (creating it if needed) the journal in `dir`, reading what it holds. Throws {@link JournalDamaged} or why the directory cannot be used. */
  static open(dir: string, options: FileJournalOptions = {}): FileJournal {
    mkdirSync(dir, { recursive: true });
    lock(dir);
    try {
      const { recovered, segment } = read(dir);
      return new FileJournal(dir, options.fs ?? nodeFs, recovered, segment);
    } catch (err) {
      unlock(dir);
      throw err;
    }
  }

  get failure(): Error | undefined {
    return this.failed;
  }

  get sinceSnapshot(): number {
    return this.appended;
  }

  get pending(): boolean {
    return this.writing || this.buffered.length > 0;
  }

  recover(): Recovered {
    const recovered = this.recovered ?? read(this.dir).recovered;
    this.recovered = undefined; // read once at open; later calls read the files again
    return recovered;
  }

  append(record: unknown): void {
    if (this.failed !== undefined) throw this.failed;
    if (this.closed) throw new Error('the journal is closed');
    const text = JSON.stringify(record);
    const line = Buffer.from(`${text}\t${crc32hex(text)}\n`, 'utf8');
    this.buffered.push(line);
    this.bufferedBytes += line.length;
    this.appended++;
    if (!this.flushQueued && !this.writing) {
      // Written once what runs now has appended all it will: one batch per turn (group commit);
      // while a batch is on its way to disk, the next one fills.
      this.flushQueued = true;
      queueMicrotask(() => this.flush());
    }
  }

  durable(): Promise<void> {
    if (this.failed !== undefined) return Promise.reject(this.failed);
    if (this.buffered.length === 0 && !this.writing) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  onFailure(listener: (error: Error) => void): void {
    this.listeners.push(listener);
  }

  snapshot(state: unknown): void {
    if (this.failed !== undefined) throw this.failed;
    // Everything before the snapshot is in it: what is buffered goes with the old segment's
    // deletion, so it is dropped here rather than written.
    const dropped = this.buffered;
    this.buffered = [];
    this.bufferedBytes = 0;
    const next = this.segment + 1;
    const data = Buffer.from(JSON.stringify({ segment: next, state }), 'utf8');
    const tmp = join(this.dir, `${SNAPSHOT}.tmp`);
    try {
      writeFileSync(tmp, Buffer.concat([data, Buffer.from(`\t${sha256(data)}\n`)]));
      const fd = openSync(tmp, 'r');
      fsyncSync(fd);
      closeSync(fd);
      renameSync(tmp, join(this.dir, SNAPSHOT));
      syncDir(this.dir);
    } catch (err) {
      this.buffered = dropped; // not replaced: the records stay to be written
      for (const b of dropped) this.bufferedBytes += b.length;
      this.fail(err as Error);
      throw this.failed;
    }
    // Appends go to the new segment from now on; the old ones are no longer needed.
    const old = this.fd;
    this.segment = next;
    this.fd = openSync(join(this.dir, segmentName(next)), 'a');
    this.appended = 0;
    if (!this.writing) closeSync(old);
    else this.closeAfterWrite = old;
    for (const name of readdirSync(this.dir)) {
      const m = SEGMENT.exec(name);
      if (m !== null && Number(m[1]) < next) rmSync(join(this.dir, name), { force: true });
    }
    if (this.buffered.length === 0 && !this.writing) this.settle();
  }

  private closeAfterWrite: number | undefined;

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.durable();
    } catch {
      // it failed: what it could not write is said by its failure
    }
    this.closed = true;
    try {
      closeSync(this.fd);
    } catch {
      // already gone
    }
    unlock(this.dir);
  }

  private flush(): void {
    this.flushQueued = false;
    if (this.buffered.length === 0 || this.failed !== undefined) return this.settle();
    const batch = Buffer.concat(this.buffered, this.bufferedBytes);
    const waiting = this.waiting;
    this.buffered = [];
    this.bufferedBytes = 0;
    this.waiting = [];
    this.writing = true;
    const fd = this.fd;
    const done = (err: Error | null): void => {
      this.writing = false;
      if (this.closeAfterWrite !== undefined) {
        closeSync(this.closeAfterWrite);
        this.closeAfterWrite = undefined;
      }
      if (err !== null) {
        this.fail(err);
        for (const w of waiting) w.reject(this.failed as Error);
        return;
      }
      for (const w of waiting) w.resolve();
      if (this.buffered.length > 0) this.flush();
      else this.settle();
    };
    this.fs.write(fd, batch, err => (err !== null ? done(err) : this.fs.fdatasync(fd, done)));
  }

  /** Nothing is buffered or being written: whoever waits for durability may go on. */
  private settle(): void {
    if (this.failed !== undefined || this.writing || this.buffered.length > 0) return;
    const waiting = this.waiting;
    this.waiting = [];
    for (const w of waiting) w.resolve();
  }

  private fail(err: Error): void {
    if (this.failed !== undefined) return;
    const code = (err as NodeJS.ErrnoException).code;
    this.failed = new Error(`the journal in ${this.dir} cannot be written (${code ?? err.message}): the coordinator takes no more work; what it accepted before is kept. Free space or fix the disk, then restart it`);
    for (const w of this.waiting) w.reject(this.failed);
    this.waiting = [];
    for (const listener of this.listeners) listener(this.failed);
  }
}

/** Reads the snapshot and the segments after it; drops a torn last record. */
function read(dir: string): { recovered: Recovered; segment: number } {
  let snapshot: unknown;
  let from = 1;
  const snapshotPath = join(dir, SNAPSHOT);
  let bytes: Buffer | undefined;
  try {
    bytes = readFileSync(snapshotPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (bytes !== undefined) {
    const parsed = parseSnapshot(bytes);
    if (parsed === undefined || typeof parsed !== 'object' || parsed === null || !Number.isSafeInteger((parsed as { segment?: unknown }).segment)) {
      throw new JournalDamaged(snapshotPath, 0, 'the snapshot does not match its checksum');
    }
    snapshot = (parsed as { state: unknown }).state;
    from = (parsed as { segment: number }).segment;
  }
  const segments = readdirSync(dir)
    .map(name => SEGMENT.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map(m => Number(m[1]))
    .filter(n => n >= from)
    .sort((a, b) => a - b);
  const records: unknown[] = [];
  let tornBytes = 0;
  segments.forEach((n, i) => {
    const path = join(dir, segmentName(n));
    const data = readFileSync(path);
    const last = i === segments.length - 1;
    let offset = 0;
    while (offset < data.length) {
      const end = data.indexOf(10, offset);
      const record = end === -1 ? undefined : parseLine(data.toString('utf8', offset, end));
      if (record === undefined) {
        // The last record of the last segment, cut short by a crash: dropped. Anything else is damage.
        if (last && (end === -1 || end === data.length - 1)) {
          tornBytes = data.length - offset;
          truncate(path, offset);
          break;
        }
        throw new JournalDamaged(path, offset, end === -1 ? 'a record without its end before the last one' : 'a record that does not match its checksum');
      }
      records.push(record);
      offset = end + 1;
    }
  });
  const segment = segments.length === 0 ? from : Math.max(from, segments[segments.length - 1] as number);
  return { recovered: { snapshot, records, tornBytes }, segment };
}

/** A snapshot `JSON<TAB>sha256\n` (a hash computed natively: a snapshot may be tens of megabytes), or undefined when it is not one. */
function parseSnapshot(bytes: Buffer): unknown {
  const end = bytes.length > 0 && bytes[bytes.length - 1] === 10 ? bytes.length - 1 : bytes.length;
  const tab = bytes.lastIndexOf(9, end);
  if (tab === -1) return undefined;
  const body = bytes.subarray(0, tab);
  if (sha256(body) !== bytes.toString('latin1', tab + 1, end)) return undefined;
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A line `JSON<TAB>crc32`, or undefined when it is not one. */
function parseLine(line: string): unknown {
  const tab = line.lastIndexOf('\t');
  if (tab === -1) return undefined;
  const text = line.slice(0, tab);
  if (crc32hex(text) !== line.slice(tab + 1)) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function truncate(path: string, length: number): void {
  const fd = openSync(path, 'r+');
  try {
    ftruncateSync(fd, length);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // some file systems cannot sync a directory; the rename is still atomic
  }
}

/** Takes the directory's lock, or throws naming the process that holds it (a stale lock of a dead process is taken over). */
function lock(dir: string): void {
  const path = join(dir, 'lock');
  for (let tries = 0; tries < 2; tries++) {
    try {
      writeFileSync(path, String(process.pid), { flag: 'wx' });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number(readFileSync(path, 'utf8'));
      if (Number.isSafeInteger(holder) && holder > 0 && holder !== process.pid && alive(holder)) {
        throw new Error(`the data directory ${dir} is in use by process ${holder}: one coordinator per directory (another --data-dir, or stop that one)`);
      }
      rmSync(path, { force: true }); // its process is gone
    }
  }
  throw new Error(`cannot lock the data directory ${dir}`);
}

function unlock(dir: string): void {
  const path = join(dir, 'lock');
  try {
    if (Number(readFileSync(path, 'utf8')) === process.pid) rmSync(path, { force: true });
  } catch {
    // gone already
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Bytes of the directory's journal files (segments and snapshot). */
export function journalBytes(dir: string): number {
  let bytes = 0;
  for (const name of readdirSync(dir)) if (name === SNAPSHOT || SEGMENT.test(name)) bytes += statSync(join(dir, name)).size;
  return bytes;
}

const CRC_TABLE = (() => {
  const table = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  return table;
})();

/** CRC-32 (IEEE) of the string as UTF-16LE bytes (its code units, low byte first), as 8 hex digits. */
export function crc32hex(text: string): string {
  let crc = -1;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    crc = (CRC_TABLE[(crc ^ c) & 0xff] as number) ^ (crc >>> 8);
    crc = (CRC_TABLE[(crc ^ (c >>> 8)) & 0xff] as number) ^ (crc >>> 8);
  }
  return ((crc ^ -1) >>> 0).toString(16).padStart(8, '0');
}
