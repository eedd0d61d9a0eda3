/**
 * The two sides of a metadata migration, each implemented inside its backend's folder (the
 * drivers stay there): a consistent snapshot to read rows from, and a database to write them
 * into in one transaction. The orchestration (migrate-metadata.ts) knows neither driver.
 */
import type { TablePlan } from './plan.js';

export type Row = Record<string, unknown>;

/** A read-only snapshot of the source database: every read sees the same moment. */
export interface MetadataSnapshot {
  /** Where it reads from, for messages. */
  readonly description: string;
  /** Every table with its columns, as the database has them. */
  schema(): Map<string, string[]>;
  /** Names of the source's schema migrations that have not been applied (an older database). */
  pendingMigrations(): string[];
  count(table: string): number;
  /** The table's rows in batches (bounded in rows and in bytes), ordered by primary key. */
  rows(table: TablePlan): Iterable<Row[]>;
  /** The highest value the table's counter ever handed out (SQLite AUTOINCREMENT), or 0. */
  counterFloor(table: string): number;
  close(): void;
}

/** The target database. */
export interface MetadataTarget {
  readonly description: string;
  /** Applies the target's own schema migrations. */
  migrate(): Promise<{ applied: string[]; alreadyApplied: string[] }>;
  schema(): Promise<Map<string, string[]>>;
  /** Runs `work` in one transaction: committed when it resolves, rolled back (nothing kept) when it throws. */
  transaction<T>(work: (tx: MetadataImport) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface MetadataImport {
  /** Keeps every other writer out of the tables until the transaction ends. */
  lock(tables: readonly string[]): Promise<void>;
  /** Row counts of the tables that hold anything beyond their seeded rows. */
  occupied(tables: readonly TablePlan[], extra: readonly string[]): Promise<Array<{ table: string; rows: number }>>;
  /** Removes the rows the target's schema seeded in the table (replaced by the copied ones). */
  clearSeeded(table: TablePlan): Promise<void>;
  insert(table: TablePlan, rows: Row[]): Promise<void>;
  /** Moves the identity's sequence so that the next value is above `floor` and above every copied one. */
  advanceIdentity(table: TablePlan, floor: number): Promise<number>;
  count(table: string): Promise<number>;
  /** Stores the token signing key every replica will sign with (the table token_signing_keys). */
  storeSigningKey(pem: string, algorithm: string, createdAt: number): Promise<void>;
}
