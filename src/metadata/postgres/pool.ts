/**
 * The connection pool every PostgreSQL store shares, and the three things every query needs:
 * numbers parsed once (BIGINT and NUMERIC come back from node-postgres as strings; here, and
 * only here, they become numbers), transactions that always end, and a database that cannot be
 * reached reported as such (503 with Retry-After, not a 500 that clients give up on).
 */
import pg from 'pg';
import type { PostgresSettings } from '../../config/metadata.js';
import { retryShortly } from '../../registry/errors.js';
import { isUnreachable } from '../../runtime/unreachable.js';

const INT8_OID = 20;
const NUMERIC_OID = 1700;

/** BIGINT (ids, sizes, ms timestamps, COUNT(*)) and NUMERIC (SUM of BIGINT) as JavaScript numbers; beyond 2^53 is an error, never a silent rounding. */
function parseNumber(text: string): number {
  const value = Number(text);
  if (Number.isInteger(value) && !Number.isSafeInteger(value)) {
    throw new Error(`PostgreSQL returned ${text}, beyond the integers JavaScript represents exactly`);
  }
  return value;
}

const TYPES = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if ((oid === INT8_OID || oid === NUMERIC_OID) && format !== 'binary') return parseNumber;
    return pg.types.getTypeParser(oid, format as 'text');
  },
} as unknown as pg.CustomTypesConfig;

/** What a query runs on: the pool (one statement, autocommit) or a client inside a transaction. */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

/**
 * libpq's meaning of `sslmode` (disable, prefer/require: encrypted without verifying the
 * server, verify-ca, verify-full), which is what operators mean; node-postgres alone treats
 * `require` as `verify-full` and warns.
 */
export function connectionString(url: string): string {
  const parsed = new URL(url);
  if (parsed.searchParams.has('sslmode') && !parsed.searchParams.has('uselibpqcompat')) parsed.searchParams.set('uselibpqcompat', 'true');
  return parsed.toString();
}

export function createPool(settings: PostgresSettings): Pool {
  const pool = new pg.Pool({
    connectionString: connectionString(settings.url),
    max: settings.poolSize,
    connectionTimeoutMillis: settings.connectionTimeoutMs,
    idleTimeoutMillis: 30_000,
    statement_timeout: settings.statementTimeoutMs > 0 ? settings.statementTimeoutMs : undefined,
    application_name: 'harbormaster-registry',
    types: TYPES,
  });
  // An idle connection the server dropped (restart, failover) must not crash the process: the next query reconnects.
  pool.on('error', () => undefined);
  // Every store queries through the pool (or a client of transaction(), which translates too).
  const query = pool.query.bind(pool) as (...args: unknown[]) => Promise<unknown>;
  (pool as unknown as { query: (...args: unknown[]) => Promise<unknown> }).query = (...args) => query(...args).catch(rethrowUnavailable);
  return pool;
}

/** SQLSTATEs of a server shutting down or not accepting connections yet (class 08 is checked as a class). */
const SERVER_GOING = new Set(['57P01', '57P02', '57P03', '53300']);

/**
 * Whether an error means the database cannot be reached right now: a socket error, a
 * connection exception (SQLSTATE class 08), the server shutting down or refusing connections,
 * or node-postgres's own connect timeout and "connection terminated".
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (isUnreachable(error)) return true;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && (SERVER_GOING.has(code) || /^08/.test(code))) return true;
  return /^Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/.test(error.message);
}

function rethrowUnavailable(error: unknown): never {
  if (isDatabaseUnavailable(error)) {
    throw retryShortly('the metadata database is unavailable; try again shortly', undefined, error);
  }
  throw error;
}

/**
 * A statement of a hot path (manifest GET, blob HEAD), prepared once per connection under its
 * name: later runs skip PostgreSQL's parse and plan and send only Bind and Execute. Only for
 * statements whose plan does not depend on the values (lookups by unique keys).
 */
export interface PreparedStatement {
  name: string;
  text: string;
}

export function queryPrepared<R extends pg.QueryResultRow>(pool: Pool, statement: PreparedStatement, values: unknown[]): Promise<pg.QueryResult<R>> {
  return pool.query<R>({ name: statement.name, text: statement.text, values });
}

/** SQLSTATEs after which a transaction may simply run again: serialization failure, deadlock detected. */
const RETRYABLE = new Set(['40001', '40P01']);
const MAX_ATTEMPTS = 5;

/**
 * Runs `work` in one READ COMMITTED transaction on one connection: committed when it resolves,
 * rolled back when it throws (the error passes through). A deadlock or serialization failure
 * runs the whole transaction again, a few times at most.
 */
export function transaction<T>(pool: Pool, work: (client: PoolClient) => Promise<T>): Promise<T> {
  return retryOnConflict(() => transactionOnce(pool, work));
}

async function transactionOnce<T>(pool: Pool, work: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect().catch(rethrowUnavailable);
  let broken = false;
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    try {
      await client.query('ROLLBACK');
    } catch {
      broken = true;
    }
    rethrowUnavailable(error);
  } finally {
    client.release(broken);
  }
}

/**
 * Runs `attempt` (one statement alone, or a whole transaction) again after a deadlock or
 * serialization failure, which rolled it back whole, a few times at most.
 */
export async function retryOnConflict<T>(attempt: () => Promise<T>): Promise<T> {
  for (let tries = 1; ; tries++) {
    try {
      return await attempt();
    } catch (error) {
      if (tries >= MAX_ATTEMPTS || !RETRYABLE.has((error as { code?: string }).code ?? '')) throw error;
    }
  }
}

/** The database's clock in ms since the epoch, as SQL: every instant more than one replica compares is taken from it. */
export const NOW_MS = '(extract(epoch from now()) * 1000)::bigint';

/** Namespaces (the first key) of the advisory locks, so that they never collide. */
export const LOCKS = {
  migrations: 7_301,
  /** One per digest without a blob row (orphan marks against claims and links). */
  digest: 7_302,
  /** Held from writing outbox events to commit: events become visible in sequence order. */
  outbox: 7_303,
  /** One per login-throttle key. */
  throttle: 7_304,
  /** Replicas announcing the key they sign with. */
  signer: 7_305,
} as const;
