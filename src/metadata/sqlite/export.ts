/**
 * The embedded database as the source of `registry migrate-metadata`: opened read-only beside a
 * running (read-only) server, every read inside one transaction so that the whole copy sees one
 * moment of it (WAL keeps that snapshot while the server goes on).
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { ConfigError } from '../../config/load.js';
import type { TablePlan } from '../migrate/plan.js';
import type { MetadataSnapshot, Row } from '../migrate/ports.js';
import { MIGRATIONS } from './migrations.js';

/** A batch ends at this many rows or about this many bytes (manifests are up to megabytes each). */
const BATCH_ROWS = 500;
const BATCH_BYTES = 4 * 1024 * 1024;

function quoted(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function approximateBytes(row: Row): number {
  let bytes = 0;
  for (const value of Object.values(row)) bytes += Buffer.isBuffer(value) || typeof value === 'string' ? value.length : 8;
  return bytes;
}

export function openSqliteSnapshot(root: string): MetadataSnapshot {
  const file = path.join(path.resolve(root), 'registry.db');
  if (!fs.existsSync(file)) throw new ConfigError(`storage.root (REGISTRY_STORAGE_ROOT): no SQLite metadata database at ${file}; point it at the single node's storage root`);
  const db = new Database(file, { readonly: true, fileMustExist: true });
  db.pragma('busy_timeout = 5000');
  db.exec('BEGIN');
  // The first read fixes the snapshot every later read of this transaction sees.
  const tableNames = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all() as string[];
  const hasCounters = tableNames.includes('sqlite_sequence');
  return {
    description: file,
    schema() {
      const schema = new Map<string, string[]>();
      for (const table of tableNames) {
        schema.set(table, (db.prepare(`PRAGMA table_info(${quoted(table)})`).all() as Array<{ name: string }>).map((column) => column.name));
      }
      return schema;
    },
    pendingMigrations() {
      if (!tableNames.includes('schema_migrations')) return MIGRATIONS.map((migration) => migration.name);
      const applied = new Set(db.prepare('SELECT name FROM schema_migrations').pluck().all() as string[]);
      return MIGRATIONS.map((migration) => migration.name).filter((name) => !applied.has(name));
    },
    count(table) {
      return db.prepare(`SELECT COUNT(*) FROM ${quoted(table)}`).pluck().get() as number;
    },
    *rows(table) {
      const order = table.identity ? ` ORDER BY ${quoted(table.identity)}` : '';
      const statement = db.prepare(`SELECT ${table.columns.map(quoted).join(', ')} FROM ${quoted(table.name)}${order}`);
      let batch: Row[] = [];
      let bytes = 0;
      for (const row of statement.iterate() as Iterable<Row>) {
        batch.push(row);
        bytes += approximateBytes(row);
        if (batch.length >= BATCH_ROWS || bytes >= BATCH_BYTES) {
          yield batch;
          batch = [];
          bytes = 0;
        }
      }
      if (batch.length > 0) yield batch;
    },
    counterFloor(table) {
      if (!hasCounters) return 0;
      return (db.prepare('SELECT seq FROM sqlite_sequence WHERE name = ?').pluck().get(table) as number | undefined) ?? 0;
    },
    close() {
      if (db.open) {
        db.exec('COMMIT');
        db.close();
      }
    },
  };
}
