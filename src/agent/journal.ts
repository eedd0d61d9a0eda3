/**
 * A durable JSON-lines file that survives a crash at any instant:
 * - `append` writes one line and fsyncs it before returning, so what was acknowledged is on disk;
 * - `rewrite` (compaction) writes a temp file, fsyncs it, renames it over the journal and fsyncs
 *   the directory, so a reader sees the old file or the new one, never a mix;
 * - `open` reads tolerantly: a line torn by a crash mid-write, or damaged (garbage, the zeros a
 *   filesystem may leave after a power cut), is skipped and counted; the torn tail is cut off before
 *   the next append (else that append would be glued to the fragment and lost too), and a damaged
 *   file is kept aside as `<file>.damaged` before it is rewritten clean.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface OpenedJournal {
  journal: Journal;
  /** Every line that parsed as JSON, in file order. */
  records: unknown[];
  /** Lines that did not (torn or damaged). */
  damaged: number;
}

export class Journal {
  private fd: number;
  /** Lines in the file now. */
  lines: number;

  private constructor(
    readonly file: string,
    lines: number,
  ) {
    this.fd = fs.openSync(file, 'a', 0o600);
    this.lines = lines;
  }

  static open(file: string): OpenedJournal {
    const resolved = path.resolve(file);
    fs.mkdirSync(path.dirname(resolved), { recursive: true, mode: 0o700 });
    // A compaction cut short by a crash leaves its temp file; the journal itself is intact.
    fs.rmSync(tempName(resolved), { force: true });
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(resolved);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      bytes = Buffer.alloc(0);
    }
    const end = bytes.lastIndexOf(0x0a) + 1;
    const records: unknown[] = [];
    let damaged = 0;
    let lines = 0;
    for (const line of bytes.subarray(0, end).toString('utf8').split('\n')) {
      if (line.trim() === '') continue;
      lines++;
      try {
        records.push(JSON.parse(line));
      } catch {
        damaged++;
      }
    }
    if (end < bytes.length) {
      // The last line was torn by a crash mid-write: cut it off, so the next append starts a line.
      damaged++;
      fs.truncateSync(resolved, end);
    }
    if (damaged > 0) fs.writeFileSync(`${resolved}.damaged`, bytes, { mode: 0o600 });
    return { journal: new Journal(resolved, lines), records, damaged };
  }

  /** Appends one record durably (write + fsync) before returning. */
  append(record: object): void {
    fs.writeSync(this.fd, `${JSON.stringify(record)}\n`);
    fs.fsyncSync(this.fd);
    this.lines++;
  }

  /** Replaces the whole file with these records, atomically. */
  rewrite(records: Iterable<object>): void {
    const temp = tempName(this.file);
    let text = '';
    let count = 0;
    for (const record of records) {
      text += `${JSON.stringify(record)}\n`;
      count++;
    }
    const fd = fs.openSync(temp, 'w', 0o600);
    try {
      fs.writeSync(fd, text);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temp, this.file);
    syncDirectory(path.dirname(this.file));
    fs.closeSync(this.fd);
    this.fd = fs.openSync(this.file, 'a', 0o600);
    this.lines = count;
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

function tempName(file: string): string {
  return `${file}.tmp`;
}

/** Makes a rename durable: the directory entry is data too. */
function syncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Some filesystems refuse fsync on a directory; the rename itself is still atomic.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}
