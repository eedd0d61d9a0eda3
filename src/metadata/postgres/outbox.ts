/**
 * Writing the events outbox inside the transaction that makes the change. Events are collected
 * while the transaction works and written last, under the outbox advisory lock that the
 * transaction keeps until it commits: sequence numbers are therefore drawn, and become
 * visible, in commit order. A reader that has seen event n has seen every event below n, so
 * a cursor moving past n never skips one committed later (the naive port's lost event).
 */
import type { RegistryEvent } from '../../registry/events.js';
import { EVENT_COLUMNS, eventValues, toRegistryEvent, type EventInput, type EventRow } from '../rows.js';
import { CHANNELS } from './notifications.js';
import { LOCKS, NOW_MS, type Queryable } from './pool.js';

export type { EventInput };

/** Appends the events, in order, as the transaction's last writes (the caller commits right after). */
export async function writeEvents(client: Queryable, events: EventInput[]): Promise<void> {
  if (events.length === 0) return;
  await client.query('SELECT pg_advisory_xact_lock($1, 0)', [LOCKS.outbox]);
  const placeholders = EVENT_COLUMNS.split(',').map((_, i, all) => (i === all.length - 1 ? NOW_MS : `$${i + 1}`)).join(', ');
  for (const event of events) await client.query(`INSERT INTO events (${EVENT_COLUMNS}) VALUES (${placeholders})`, eventValues(event));
  // Delivered to every listening replica when (and only if) the transaction commits.
  await client.query(`SELECT pg_notify('${CHANNELS.outbox}', '')`);
}

export async function readEvents(db: Queryable, afterSeq: number, limit: number): Promise<RegistryEvent[]> {
  const { rows } = await db.query<EventRow>('SELECT * FROM events WHERE seq > $1 ORDER BY seq LIMIT $2', [afterSeq, limit]);
  return rows.map(toRegistryEvent);
}
