/**
 * The `events` outbox on SQLite: one writer shared by every store that records changes
 * (metadata pushes and deletions, lifecycle retention and GC), so an event row always has
 * the same columns filled the same way, and one reader that turns rows back into events.
 * Callers write inside the transaction of the change the event reports.
 */
import type Database from 'better-sqlite3';
import type { RegistryEvent } from '../../registry/events.js';
import { EVENT_COLUMNS, eventValues, toRegistryEvent, type EventInput, type EventRow } from '../rows.js';

export type OutboxEvent = EventInput;
export type { EventRow };

export interface Outbox {
  /** Appends one event; call it inside the change's transaction. */
  record(event: OutboxEvent, now: number): void;
  /** Events after `afterSeq`, oldest first. */
  read(afterSeq: number, limit: number): RegistryEvent[];
}

export function prepareOutbox(db: Database.Database): Outbox {
  const insert = db.prepare(`INSERT INTO events (${EVENT_COLUMNS}) VALUES (${EVENT_COLUMNS.split(',').map(() => '?').join(', ')})`);
  const read = db.prepare('SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?');
  return {
    record: (event, now) => void insert.run(...eventValues(event), now),
    read: (afterSeq, limit) => (read.all(afterSeq, limit) as EventRow[]).map(eventFromRow),
  };
}

export const eventFromRow = toRegistryEvent;
