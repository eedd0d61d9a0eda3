/**
 * The token signing key every replica signs with, held by the database: the first replica to
 * start generates it and inserts it (ON CONFLICT DO NOTHING), every other one reads that row, so
 * a token issued by one replica verifies on all of them. Kept as PKCS#8 PEM in the
 * `token_signing_keys` table: whoever can read the database can mint tokens, as with the
 * accounts it holds (docs/scale-out.md).
 */
import { LOCKS, NOW_MS, transaction, type Pool, type Queryable } from './pool.js';

const KEY_NAME = 'default';

export interface SharedSigningKey {
  pem: string;
  algorithm: string;
  /** Whether this call generated it. */
  created: boolean;
}

export async function sharedSigningKey(pool: Pool, algorithm: string, generate: () => string): Promise<SharedSigningKey> {
  const read = async () =>
    (await pool.query<{ pem: string; algorithm: string }>('SELECT pem, algorithm FROM token_signing_keys WHERE name = $1', [KEY_NAME])).rows[0];
  const existing = await read();
  if (existing) return { ...existing, created: false };
  const pem = generate();
  const inserted = await pool.query(
    `INSERT INTO token_signing_keys (name, algorithm, pem, created_at) VALUES ($1, $2, $3, ${NOW_MS}) ON CONFLICT (name) DO NOTHING`,
    [KEY_NAME, algorithm, pem],
  );
  if ((inserted.rowCount ?? 0) > 0) return { pem, algorithm, created: true };
  // Another replica inserted its key first: that one is the key.
  return { ...(await read())!, created: false };
}

/** Stores a key made elsewhere (the single node's key file, moved by `registry migrate-metadata`) as the shared one. */
export async function storeSigningKey(client: Queryable, pem: string, algorithm: string, createdAt: number): Promise<void> {
  await client.query('INSERT INTO token_signing_keys (name, algorithm, pem, created_at) VALUES ($1, $2, $3, $4)', [KEY_NAME, algorithm, pem, createdAt]);
}

/** Records `kid` as the key replicas sign with; returns the one recorded before (null: none). Replicas starting together take turns. */
export async function announceSigner(pool: Pool, kid: string): Promise<string | null> {
  return transaction(pool, async (client) => {
    await client.query('SELECT pg_advisory_xact_lock($1, 0)', [LOCKS.signer]);
    const previous = (await client.query<{ kid: string }>('SELECT kid FROM token_signer WHERE id = 1')).rows[0]?.kid ?? null;
    await client.query(
      `INSERT INTO token_signer (id, kid, updated_at) VALUES (1, $1, ${NOW_MS})
       ON CONFLICT (id) DO UPDATE SET kid = excluded.kid, updated_at = excluded.updated_at`,
      [kid],
    );
    return previous;
  });
}
