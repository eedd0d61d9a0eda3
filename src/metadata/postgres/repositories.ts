/**
 * The repository row lock every change to a repository's contents takes first. It serialises,
 * across replicas, what SQLite's single writer serialised: the previous-tag read, immutable-tag
 * and quota guards, the reference check of a push, and deletions. Creating a repository is an
 * upsert, so two replicas creating one at once both succeed and only one records the event.
 */
import type { Actor } from '../../registry/ports.js';
import type { EventInput } from './outbox.js';
import { NOW_MS, type Queryable } from './pool.js';

/** The repository's id, locked FOR UPDATE until the transaction ends; null when it does not exist. */
export async function lockRepository(client: Queryable, name: string): Promise<number | null> {
  const { rows } = await client.query<{ id: number }>('SELECT id FROM repositories WHERE name = $1 FOR UPDATE', [name]);
  return rows[0]?.id ?? null;
}

/**
 * The repository's id, locked, creating it (and queueing its `repository.created` event) when
 * it does not exist. A concurrent creator makes the insert wait for its commit and then do
 * nothing: the row is then read (and locked) as an existing one.
 */
export async function lockOrCreateRepository(
  client: Queryable,
  name: string,
  actor: Actor,
  events: EventInput[],
): Promise<{ id: number; created: boolean }> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const existing = await lockRepository(client, name);
    if (existing !== null) return { id: existing, created: false };
    const inserted = await client.query<{ id: number }>(
      `INSERT INTO repositories (name, created_at) VALUES ($1, ${NOW_MS}) ON CONFLICT (name) DO NOTHING RETURNING id`,
      [name],
    );
    if (inserted.rows[0]) {
      events.push({ type: 'repository.created', repository: name, actor });
      return { id: inserted.rows[0].id, created: true };
    }
  }
  throw new Error(`repository ${name} was created and deleted concurrently; try again`);
}

export async function repositoryId(db: Queryable, name: string): Promise<number | null> {
  const { rows } = await db.query<{ id: number }>('SELECT id FROM repositories WHERE name = $1', [name]);
  return rows[0]?.id ?? null;
}
