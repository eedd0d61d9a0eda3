/**
 * The agent's memory of event ids, on disk, so that a delivery the registry sends twice (a
 * retry after a lost response, a redelivery, a replay) deploys once, across restarts too.
 * An append-only JSON-lines file: one `{"id","outcome","at"}` per line, the last line for an
 * id wins. Bounded: it keeps the newest `capacity` ids and rewrites itself (temp file, fsync,
 * rename) when it holds twice that many lines.
 */
import fs from 'node:fs';
import path from 'node:path';

/**
 * `accepted`: taken, deploy queued or running; `succeeded` / `failed`: the deploy's result;
 * `superseded`: a newer event for the same target replaced it before it ran.
 */
export type EventOutcome = 'accepted' | 'succeeded' | 'failed' | 'superseded';

interface Entry {
  id: string;
  outcome: EventOutcome;
  at: number;
}

export class EventLog {
  private readonly entries = new Map<string, Entry>();
  private lines = 0;
  private fd: number;

  private constructor(
    private readonly file: string,
    private readonly capacity: number,
  ) {
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    this.load();
    this.fd = fs.openSync(file, 'a', 0o600);
    if (this.lines > this.capacity * 2) this.compact();
  }

  static open(file: string, capacity: number): EventLog {
    return new EventLog(file, capacity);
  }

  outcome(id: string): EventOutcome | undefined {
    return this.entries.get(id)?.outcome;
  }

  /**
   * Whether a delivery of this event should be dropped: it was seen and did not fail (a failed
   * deploy may be retried by redelivering the event).
   */
  isDuplicate(id: string): boolean {
    const outcome = this.outcome(id);
    return outcome !== undefined && outcome !== 'failed';
  }

  /** Records an outcome durably (append + fsync) before returning. */
  record(id: string, outcome: EventOutcome, at: number = Date.now()): void {
    const entry = { id, outcome, at };
    fs.writeSync(this.fd, `${JSON.stringify(entry)}\n`);
    fs.fsyncSync(this.fd);
    this.lines++;
    this.entries.delete(id);
    this.entries.set(id, entry);
    while (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!);
    if (this.lines > this.capacity * 2) this.compact();
  }

  close(): void {
    fs.closeSync(this.fd);
  }

  private load(): void {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      this.lines++;
      try {
        const entry = JSON.parse(line) as Entry;
        if (typeof entry.id !== 'string' || typeof entry.outcome !== 'string') continue;
        this.entries.delete(entry.id);
        this.entries.set(entry.id, entry);
      } catch {
        // A line torn by a crash mid-write is skipped; the ones before it still count.
      }
    }
    while (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!);
  }

  private compact(): void {
    const temp = `${this.file}.${process.pid}.tmp`;
    const text = [...this.entries.values()].map((entry) => `${JSON.stringify(entry)}\n`).join('');
    const fd = fs.openSync(temp, 'w', 0o600);
    try {
      fs.writeSync(fd, text);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temp, this.file);
    fs.closeSync(this.fd);
    this.fd = fs.openSync(this.file, 'a', 0o600);
    this.lines = this.entries.size;
  }
}
