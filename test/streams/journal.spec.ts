import { appendFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileJournal, JournalDamaged, MemoryJournal, crc32hex, type JournalFs } from '../../streams/journal.js';

const dirs: string[] = [];
const open: FileJournal[] = [];

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'rxswarm-journal-'));
  dirs.push(dir);
  return dir;
}

function openJournal(dir: string, fs?: JournalFs): FileJournal {
  const journal = FileJournal.open(dir, fs === undefined ? {} : { fs });
  open.push(journal);
  return journal;
}

afterEach(async () => {
  for (const j of open.splice(0)) await j.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const segment = (dir: string): string => join(dir, readdirSync(dir).filter(n => n.startsWith('journal-')).sort().at(-1) as string);

describe('crc32hex', () => {
  // Each UTF-16 code unit feeds its low byte, then its high byte: the IEEE CRC-32 of the text as
  // UTF-16LE, checked against Python's zlib.crc32(text.encode('utf-16-le')).
  it.each([
    ['', '00000000'],
    ['a', '3d3f4819'],
    ['abc', 'ad957ab0'],
    ['{"type":"a"}', '2caa9fd2'],
  ])('of %j is %s', (text, crc) => {
    expect(crc32hex(text)).toBe(crc);
  });

  it('tells apart records that differ in one character', () => {
    expect(crc32hex('{"type":"a"}')).not.toBe(crc32hex('{"type":"b"}'));
  });
});

describe('FileJournal', () => {
  it('gives back what it was given, in order, after it is closed and opened again', async () => {
    const dir = tempDir();
    const journal = openJournal(dir);
    expect(journal.recover()).toEqual({ snapshot: undefined, records: [], tornBytes: 0 });
    for (let i = 0; i < 100; i++) journal.append({ type: 'e', i, text: 'ä\t"\n' });
    await journal.durable();
    await journal.close();
    const again = openJournal(dir);
    const { records } = again.recover();
    expect(records).toHaveLength(100);
    expect(records[99]).toEqual({ type: 'e', i: 99, text: 'ä\t"\n' });
  });

  it('writes what is appended in one turn as one batch: one write and one fdatasync', async () => {
    const dir = tempDir();
    const calls: string[] = [];
    const fs: JournalFs = {
      write: (fd, data, cb) => {
        calls.push(`write ${data.toString().split('\n').length - 1}`);
        appendFileSync(fd, data);
        cb(null);
      },
      fdatasync: (_fd, cb) => {
        calls.push('sync');
        cb(null);
      },
    };
    const journal = openJournal(dir, fs);
    for (let i = 0; i < 500; i++) journal.append({ i });
    await journal.durable();
    expect(calls).toEqual(['write 500', 'sync']);
  });

  it('drops a torn last record (a crash in the middle of its write) and truncates the file there', async () => {
    const dir = tempDir();
    const journal = openJournal(dir);
    journal.append({ i: 1 });
    journal.append({ i: 2 });
    await journal.close();
    const path = segment(dir);
    const whole = readFileSync(path).length;
    appendFileSync(path, '{"i":3,"half');
    const again = openJournal(dir);
    const recovered = again.recover();
    expect(recovered.records).toEqual([{ i: 1 }, { i: 2 }]);
    expect(recovered.tornBytes).toBe('{"i":3,"half'.length);
    expect(readFileSync(path).length).toBe(whole);
    again.append({ i: 3 });
    await again.close();
    expect(openJournal(dir).recover().records).toEqual([{ i: 1 }, { i: 2 }, { i: 3 }]);
  });

  it('drops a last record whose checksum does not match (its bytes were not all written)', async () => {
    const dir = tempDir();
    const journal = openJournal(dir);
    journal.append({ i: 1 });
    await journal.close();
    appendFileSync(segment(dir), '{"i":2}\t00000000\n');
    expect(openJournal(dir).recover().records).toEqual([{ i: 1 }]);
  });

  it('refuses a journal damaged before its last record, naming the file and the offset, and changes nothing', async () => {
    const dir = tempDir();
    const journal = openJournal(dir);
    for (let i = 0; i < 3; i++) journal.append({ i });
    await journal.close();
    const path = segment(dir);
    const text = readFileSync(path, 'utf8');
    const second = text.indexOf('\n') + 1;
    const damaged = `${text.slice(0, second)}${text.slice(second).replace('"i":1', '"i":7')}`;
    writeFileSync(path, damaged);
    let error: unknown;
    try {
      FileJournal.open(dir);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(JournalDamaged);
    expect((error as JournalDamaged).file).toBe(path);
    expect((error as JournalDamaged).offset).toBe(second);
    expect((error as Error).message).toContain(`${path} at byte ${second}`);
    expect(readFileSync(path, 'utf8')).toBe(damaged);
    // The lock was let go: once the file is mended, it opens.
    writeFileSync(path, text);
    expect(openJournal(dir).recover().records).toHaveLength(3);
  });

  it('refuses a damaged snapshot', async () => {
    const dir = tempDir();
    const journal = openJournal(dir);
    journal.snapshot({ n: 1 });
    await journal.close();
    writeFileSync(join(dir, 'snapshot.json'), readFileSync(join(dir, 'snapshot.json'), 'utf8').replace('"n":1', '"n":2'));
    expect(() => FileJournal.open(dir)).toThrow(JournalDamaged);
  });

  it('compacts: a snapshot replaces the records before it, the old segments go, and later records follow it', async () => {
    const dir = tempDir();
    const journal = openJournal(dir);
    for (let i = 0; i < 10; i++) journal.append({ i });
    await journal.durable();
    journal.snapshot({ upTo: 9 });
    expect(journal.sinceSnapshot).toBe(0);
    journal.append({ i: 10 });
    await journal.close();
    expect(readdirSync(dir).filter(n => n.startsWith('journal-'))).toEqual(['journal-00000002.log']);
    expect(readdirSync(dir)).not.toContain('snapshot.json.tmp');
    expect(openJournal(dir).recover()).toEqual({ snapshot: { upTo: 9 }, records: [{ i: 10 }], tornBytes: 0 });
  });

  it('a snapshot taken while records wait to be written covers them: they are not written again', async () => {
    const dir = tempDir();
    const journal = openJournal(dir);
    journal.append({ i: 1 });
    journal.snapshot({ upTo: 1 });
    await journal.durable();
    await journal.close();
    expect(openJournal(dir).recover()).toEqual({ snapshot: { upTo: 1 }, records: [], tornBytes: 0 });
  });

  it('ENOSPC: it stops, says why, rejects whoever waits and every later append; what was durable stays', async () => {
    const dir = tempDir();
    let full = false;
    const fs: JournalFs = {
      write: (fd, data, cb) => {
        if (full) return cb(Object.assign(new Error('no space left on device'), { code: 'ENOSPC' }));
        appendFileSync(fd, data);
        cb(null);
      },
      fdatasync: (_fd, cb) => cb(null),
    };
    const journal = openJournal(dir, fs);
    const failures: Error[] = [];
    journal.onFailure(err => failures.push(err));
    journal.append({ i: 1 });
    await journal.durable();
    full = true;
    journal.append({ i: 2 });
    await expect(journal.durable()).rejects.toThrow(/ENOSPC.*takes no more work.*is kept/);
    expect(failures).toHaveLength(1);
    expect(journal.failure?.message).toContain('ENOSPC');
    expect(() => journal.append({ i: 3 })).toThrow(/ENOSPC/);
    await journal.close();
    expect(openJournal(dir).recover().records).toEqual([{ i: 1 }]);
  });

  it('EIO from fdatasync stops it the same way', async () => {
    const dir = tempDir();
    const journal = openJournal(dir, {
      write: (fd, data, cb) => {
        appendFileSync(fd, data);
        cb(null);
      },
      fdatasync: (_fd, cb) => cb(Object.assign(new Error('i/o error'), { code: 'EIO' })),
    });
    journal.append({ i: 1 });
    await expect(journal.durable()).rejects.toThrow(/EIO/);
  });

  it('a real full device (/dev/full) is a failure, not a crash', async () => {
    const dir = tempDir();
    const journal = openJournal(dir);
    // The segment a snapshot starts next is the full device: the kernel answers its writes with ENOSPC.
    symlinkSync('/dev/full', join(dir, 'journal-00000002.log'));
    journal.snapshot({ n: 0 });
    journal.append({ i: 1 });
    await expect(journal.durable()).rejects.toThrow(/ENOSPC/);
    expect(() => journal.append({ i: 2 })).toThrow(/ENOSPC/);
  });

  it('one coordinator per directory: a second open while the first holds it is refused', async () => {
    const dir = tempDir();
    openJournal(dir);
    // The lock names this process: another process would be refused; this one takes it over only
    // when its holder is gone, which a lock file naming a live process other than itself shows.
    writeFileSync(join(dir, 'lock'), String(process.ppid));
    expect(() => FileJournal.open(dir)).toThrow(`is in use by process ${process.ppid}`);
  });

  it('takes over the lock of a process that is gone', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'lock'), '2147483646');
    const journal = openJournal(dir);
    await journal.close();
    expect(existsSync(join(dir, 'lock'))).toBe(false);
  });
});

describe('MemoryJournal', () => {
  it('keeps copies: what it recovers shares nothing with what was appended', () => {
    const journal = new MemoryJournal();
    const record = { nested: { n: 1 } };
    journal.append(record);
    record.nested.n = 2;
    const { records } = journal.recover();
    expect(records).toEqual([{ nested: { n: 1 } }]);
    journal.snapshot({ s: 1 });
    expect(journal.recover()).toEqual({ snapshot: { s: 1 }, records: [], tornBytes: 0 });
  });
});
