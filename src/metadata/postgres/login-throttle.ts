/**
 * Login throttling shared by every replica, in the database (the LoginThrottle port of
 * auth/throttle.ts, with the in-memory throttle's rules): an attempt is reserved, as a row per
 * key, before the credentials are checked, under each key's advisory lock, so however many
 * replicas receive guesses at once no more than the limit's number of checks run per account
 * and per address within the window. Times are the database's clock.
 */
import { addressGroup, type AttemptOutcome, type LoginKeys, type LoginThrottle, type Refusal, type Reservation, type ThrottleLimits } from '../../auth/throttle.js';
import { LOCKS, NOW_MS, transaction, type Pool, type Queryable } from './pool.js';

interface DatabaseReservation extends Reservation {
  readonly rows: number[];
}

/** Rows older than the window are deleted for every key at most this often (per process). */
const PURGE_EVERY_MS = 60_000;

export class PostgresLoginThrottle implements LoginThrottle {
  private lastPurge = 0;

  constructor(
    private readonly pool: Pool,
    private readonly limits: ThrottleLimits,
  ) {}

  async reserve(keys: LoginKeys): Promise<Reservation | Refusal> {
    await this.purgeNowAndThen();
    return transaction(this.pool, async (client) => {
      const keyed = this.keysOf(keys);
      for (const [key] of [...keyed].sort(([a], [b]) => (a < b ? -1 : 1))) {
        await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCKS.throttle, key]);
      }
      const now = await this.clock(client);
      const wait = await this.waitFor(client, keyed, now);
      if (wait > 0) return { retryAfterSeconds: wait };
      const rows: number[] = [];
      for (const [key] of keyed) {
        const { rows: inserted } = await client.query<{ id: number }>('INSERT INTO login_attempts (key, at, in_flight) VALUES ($1, $2, true) RETURNING id', [key, now]);
        rows.push(inserted[0]!.id);
      }
      const reservation: DatabaseReservation = { keys, at: now, rows };
      return reservation;
    });
  }

  async settle(reservation: Reservation, outcome: AttemptOutcome): Promise<void> {
    const { rows } = reservation as DatabaseReservation;
    if (!rows) throw new Error('a reservation of another throttle');
    const [addressRow, accountRow] = rows;
    if (outcome === 'failed') {
      await this.pool.query('UPDATE login_attempts SET in_flight = false WHERE id = ANY($1::bigint[])', [rows]);
    } else if (outcome === 'released') {
      await this.pool.query('DELETE FROM login_attempts WHERE id = ANY($1::bigint[])', [rows]);
    } else {
      // A success releases the address's count of it and clears the account's failures; checks of it still in flight stay counted.
      await transaction(this.pool, async (client) => {
        await client.query('DELETE FROM login_attempts WHERE id = $1', [addressRow]);
        if (accountRow !== undefined && reservation.keys.account !== null) {
          await client.query('DELETE FROM login_attempts WHERE key = $1 AND (id = $2 OR NOT in_flight)', [ACCOUNT + reservation.keys.account, accountRow]);
        }
      });
    }
  }

  async retryAfter(keys: LoginKeys): Promise<number> {
    return this.waitFor(this.pool, this.keysOf(keys), await this.clock(this.pool));
  }

  /** Address first, then account: the order of a reservation's rows. */
  private keysOf(keys: LoginKeys): Array<[string, number]> {
    const result: Array<[string, number]> = [[ADDRESS + addressGroup(keys.address), this.limits.maxFailuresPerAddress]];
    if (keys.account !== null) result.push([ACCOUNT + keys.account, this.limits.maxFailuresPerAccount]);
    return result;
  }

  /** Seconds until every key is below its limit (0: now): a key at its limit waits for its oldest counted attempt to leave the window. */
  private async waitFor(db: Queryable, keyed: Array<[string, number]>, now: number): Promise<number> {
    const windowMs = this.limits.windowSeconds * 1000;
    let wait = 0;
    for (const [key, limit] of keyed) {
      // The limit-th newest attempt inside the window: while it counts, the key is at its limit.
      const { rows } = await db.query<{ at: number }>('SELECT at FROM login_attempts WHERE key = $1 AND at > $2 ORDER BY at DESC, id DESC OFFSET $3 LIMIT 1', [
        key,
        now - windowMs,
        limit - 1,
      ]);
      if (rows[0]) wait = Math.max(wait, Math.max(1, Math.ceil((rows[0].at + windowMs - now) / 1000)));
    }
    return wait;
  }

  private async clock(db: Queryable): Promise<number> {
    return (await db.query<{ now: number }>(`SELECT ${NOW_MS} AS now`)).rows[0]!.now;
  }

  private async purgeNowAndThen(): Promise<void> {
    if (Date.now() - this.lastPurge < PURGE_EVERY_MS) return;
    this.lastPurge = Date.now();
    await this.pool.query(`DELETE FROM login_attempts WHERE at <= ${NOW_MS} - $1::bigint`, [this.limits.windowSeconds * 1000]);
  }
}

const ADDRESS = 'address:';
const ACCOUNT = 'account:';
