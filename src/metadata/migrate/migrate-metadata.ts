/**
 * `registry migrate-metadata`: copies the embedded database into an empty PostgreSQL database,
 * table by table (plan.ts), in one transaction on the target: either everything is copied and
 * verified, or nothing is kept. Ids and sequence numbers are kept as they are (tokens name
 * account ids, deliveries name event ids, the fan-out cursor names an outbox position), and the
 * PostgreSQL sequences continue past them.
 */
import { COPIED_TABLES, checkSchema, NOT_COPIED, POSTGRES_ONLY, SQLITE_ONLY, type SchemaProblem } from './plan.js';
import type { MetadataSnapshot, MetadataTarget } from './ports.js';

/** `refused`: the target holds data, or a schema is not the one the plan knows; nothing was written. */
export class MetadataMigrationError extends Error {
  constructor(
    message: string,
    readonly kind: 'refused' | 'failed',
  ) {
    super(message);
  }
}

export interface TableResult {
  table: string;
  /** Rows in the source snapshot. */
  source: number;
  /** Rows the target holds after the copy (counted inside the transaction). */
  copied: number;
}

export interface MetadataMigrationSummary {
  source: string;
  target: string;
  /** PostgreSQL migrations this run applied first. */
  migrationsApplied: string[];
  tables: TableResult[];
  /** The next value of each identity sequence after the copy. */
  nextIds: Record<string, number>;
  /** Rows of the tables not copied (upload sessions in progress, claims, leases). */
  dropped: Record<string, number>;
  /** Whether the single node's token signing key became the one the replicas share. */
  signingKeyCopied: boolean;
  durationMs: number;
}

export interface SigningKeyToMove {
  pem: string;
  algorithm: string;
  createdAt: number;
}

export interface MetadataMigrationOptions {
  snapshot: MetadataSnapshot;
  target: MetadataTarget;
  /** The key file the single node generated (absent when auth.token.signingKey names one all replicas read). */
  signingKey?: SigningKeyToMove;
  /** Called after each table (progress). */
  onTable?: (result: TableResult) => void;
}

function refuseOnProblems(problems: SchemaProblem[]): void {
  if (problems.length === 0) return;
  const lines = problems.map((problem) => `  ${problem.side}: ${problem.problem}`).join('\n');
  throw new MetadataMigrationError(`the schemas are not the ones this migration copies; nothing was written:\n${lines}`, 'refused');
}

export async function migrateMetadata({ snapshot, target, signingKey, onTable }: MetadataMigrationOptions): Promise<MetadataMigrationSummary> {
  const started = Date.now();
  const pending = snapshot.pendingMigrations();
  if (pending.length > 0) {
    throw new MetadataMigrationError(
      `the SQLite database ${snapshot.description} lacks migrations ${pending.join(', ')}: start this version of the registry on it once (or run registry migrate with metadata.driver sqlite), then migrate again`,
      'refused',
    );
  }
  refuseOnProblems(checkSchema('SQLite', snapshot.schema(), SQLITE_ONLY));
  const { applied } = await target.migrate();
  const targetSchema = await target.schema();
  refuseOnProblems(checkSchema('PostgreSQL', targetSchema, POSTGRES_ONLY));
  const others = [...targetSchema.keys()].filter((table) => table !== 'schema_migrations' && !COPIED_TABLES.some((plan) => plan.name === table));

  return target.transaction(async (tx) => {
    await tx.lock([...COPIED_TABLES.map((table) => table.name), ...others]);
    const occupied = await tx.occupied(COPIED_TABLES, others);
    if (occupied.length > 0) {
      const found = occupied.map(({ table, rows }) => `${table} (${rows} rows)`).join(', ');
      throw new MetadataMigrationError(
        `the target database ${target.description} already holds data (${found}); migrate into an empty database (drop and create it again to retry)`,
        'refused',
      );
    }
    const tables: TableResult[] = [];
    const nextIds: Record<string, number> = {};
    for (const table of COPIED_TABLES) {
      const source = snapshot.count(table.name);
      await tx.clearSeeded(table);
      for (const batch of snapshot.rows(table)) await tx.insert(table, batch);
      if (table.identity) nextIds[`${table.name}.${table.identity}`] = await tx.advanceIdentity(table, snapshot.counterFloor(table.name));
      const copied = await tx.count(table.name);
      if (copied !== source) {
        throw new MetadataMigrationError(`verification failed: ${table.name} has ${copied} rows in PostgreSQL, ${source} in SQLite; nothing was kept`, 'failed');
      }
      const result = { table: table.name, source, copied };
      tables.push(result);
      onTable?.(result);
    }
    if (signingKey) await tx.storeSigningKey(signingKey.pem, signingKey.algorithm, signingKey.createdAt);
    const schema = snapshot.schema();
    const dropped = Object.fromEntries(
      Object.keys(NOT_COPIED)
        .filter((table) => schema.has(table) && table !== 'schema_migrations')
        .map((table) => [table, snapshot.count(table)]),
    );
    return {
      source: snapshot.description,
      target: target.description,
      migrationsApplied: applied,
      tables,
      nextIds,
      dropped,
      signingKeyCopied: signingKey !== undefined,
      durationMs: Date.now() - started,
    };
  });
}
