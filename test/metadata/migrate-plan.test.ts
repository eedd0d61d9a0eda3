/**
 * The metadata migration's plan against the real SQLite schema: every table the migrations
 * create is either copied (with exactly its columns) or named as left behind with a reason, so a
 * table or column added to the schema without teaching the migration fails here first. (The
 * PostgreSQL side is checked the same way on a real server by test/e2e/migrate-scale-out.test.ts,
 * where the migrator refuses a target with an unknown table.)
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { checkSchema, COPIED_TABLES, SQLITE_ONLY } from '../../src/metadata/migrate/plan.js';
import { openSqliteSnapshot } from '../../src/metadata/sqlite/export.js';
import { openSqliteBackend } from '../../src/metadata/sqlite/index.js';

describe('the metadata migration plan', () => {
  let root: string;
  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'migrate-plan-'));
    await openSqliteBackend(root).close();
  });
  after(() => fs.rm(root, { recursive: true, force: true }));

  it('covers every table and column of the SQLite schema', () => {
    const snapshot = openSqliteSnapshot(root);
    try {
      assert.deepEqual(snapshot.pendingMigrations(), []);
      assert.deepEqual(checkSchema('SQLite', snapshot.schema(), SQLITE_ONLY), []);
    } finally {
      snapshot.close();
    }
  });

  it('names a table or column added to the schema that it would not copy', () => {
    const db = new Database(path.join(root, 'registry.db'));
    db.exec('CREATE TABLE audit_log (id INTEGER PRIMARY KEY, what TEXT); ALTER TABLE tags ADD COLUMN pinned INTEGER');
    db.close();
    const snapshot = openSqliteSnapshot(root);
    try {
      assert.deepEqual(
        checkSchema('SQLite', snapshot.schema(), SQLITE_ONLY).map((problem) => problem.problem),
        ['table audit_log is not known to the migration', 'column tags.pinned is not known to the migration'],
      );
    } finally {
      snapshot.close();
    }
  });

  it('copies every table after the tables its foreign keys reference', () => {
    const db = new Database(path.join(root, 'registry.db'), { readonly: true });
    try {
      const order = COPIED_TABLES.map((table) => table.name);
      let checked = 0;
      for (const table of order) {
        for (const { table: parent } of db.prepare(`PRAGMA foreign_key_list(${table})`).all() as Array<{ table: string }>) {
          assert.ok(order.indexOf(parent) >= 0 && order.indexOf(parent) < order.indexOf(table), `${table} after ${parent}`);
          checked++;
        }
      }
      assert.ok(checked >= 10, `${checked} foreign keys checked`);
    } finally {
      db.close();
    }
  });
});
