/**
 * Upload sessions in SQLite: the record that lets any process continue an upload, and its
 * writer lease. The lease is one compare-and-set UPDATE (taken when free, expired or already
 * ours), so a PostgreSQL store implements it the same way with `UPDATE … WHERE … RETURNING`,
 * comparing expiries on the database's clock (`now()`) since several replicas take leases.
 */
import type Database from 'better-sqlite3';
import type { UploadLease, UploadRecord, UploadUpdate } from '../../registry/ports.js';
import { toUploadRecord as toRecord, UPLOAD_COLUMNS as COLUMNS, type UploadRow } from '../rows.js';

export class SqliteUploads {
  private readonly statements;

  constructor(db: Database.Database) {
    this.statements = {
      insert: db.prepare(
        `INSERT INTO uploads (id, repository, created_at, size, hash_state, driver_state, updated_at)
         VALUES (@id, @repository, @createdAt, @size, @hashState, @driverState, @updatedAt)`,
      ),
      get: db.prepare(`SELECT ${COLUMNS} FROM uploads WHERE id = ?`),
      lease: db.prepare(
        `UPDATE uploads SET writer = @writer, writer_expires_at = @expiresAt
         WHERE id = @id AND (writer IS NULL OR writer = @writer OR writer_expires_at <= @now)
         RETURNING ${COLUMNS}`,
      ),
      save: db.prepare(
        `UPDATE uploads SET size = @size, hash_state = @hashState, driver_state = @driverState, updated_at = @now
         WHERE id = @id AND writer = @writer`,
      ),
      release: db.prepare('UPDATE uploads SET writer = NULL, writer_expires_at = 0 WHERE id = ? AND writer = ?'),
      delete: db.prepare('DELETE FROM uploads WHERE id = ?'),
      idleSince: db.prepare(`SELECT ${COLUMNS} FROM uploads WHERE updated_at < ? ORDER BY updated_at`),
    };
  }

  create(upload: UploadRecord): void {
    this.statements.insert.run(upload);
  }

  get(id: string): UploadRecord | null {
    const row = this.statements.get.get(id) as UploadRow | undefined;
    return row ? toRecord(row) : null;
  }

  lease(id: string, writer: string, ttlMs: number, now = Date.now()): UploadLease {
    const row = this.statements.lease.get({ id, writer, expiresAt: now + ttlMs, now }) as UploadRow | undefined;
    if (row) return { state: 'acquired', upload: toRecord(row) };
    return { state: this.statements.get.get(id) ? 'busy' : 'unknown' };
  }

  save(id: string, writer: string, update: UploadUpdate, now = Date.now()): boolean {
    return this.statements.save.run({ id, writer, now, ...update }).changes > 0;
  }

  release(id: string, writer: string): void {
    this.statements.release.run(id, writer);
  }

  delete(id: string): void {
    this.statements.delete.run(id);
  }

  idleSince(instant: number): UploadRecord[] {
    return (this.statements.idleSince.all(instant) as UploadRow[]).map(toRecord);
  }
}

