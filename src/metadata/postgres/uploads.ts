/**
 * Upload sessions on PostgreSQL: the record that lets any replica continue an upload, and its
 * writer lease as one compare-and-set `UPDATE … WHERE … RETURNING`, with expiry compared on
 * the database's clock, so that replicas whose clocks differ still agree on who holds it.
 */
import type { UploadLease, UploadRecord, UploadUpdate } from '../../registry/ports.js';
import { NOW_MS, type Queryable } from './pool.js';
import { toUploadRecord as toRecord, UPLOAD_COLUMNS as COLUMNS, type UploadRow } from '../rows.js';

export class PostgresUploads {
  constructor(private readonly db: Queryable) {}

  async create(upload: UploadRecord): Promise<void> {
    await this.db.query(
      `INSERT INTO uploads (id, repository, created_at, size, hash_state, driver_state, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [upload.id, upload.repository, upload.createdAt, upload.size, upload.hashState, upload.driverState, upload.updatedAt],
    );
  }

  async get(id: string): Promise<UploadRecord | null> {
    const { rows } = await this.db.query<UploadRow>(`SELECT ${COLUMNS} FROM uploads WHERE id = $1`, [id]);
    return rows[0] ? toRecord(rows[0]) : null;
  }

  async lease(id: string, writer: string, ttlMs: number): Promise<UploadLease> {
    const { rows } = await this.db.query<UploadRow>(
      `UPDATE uploads SET writer = $2, writer_expires_at = ${NOW_MS} + $3
       WHERE id = $1 AND (writer IS NULL OR writer = $2 OR writer_expires_at <= ${NOW_MS})
       RETURNING ${COLUMNS}`,
      [id, writer, ttlMs],
    );
    if (rows[0]) return { state: 'acquired', upload: toRecord(rows[0]) };
    const exists = await this.db.query('SELECT 1 FROM uploads WHERE id = $1', [id]);
    return { state: exists.rowCount ? 'busy' : 'unknown' };
  }

  async save(id: string, writer: string, update: UploadUpdate): Promise<boolean> {
    // GREATEST: updated_at never goes backwards, whatever the clock of the replica that created the session.
    const result = await this.db.query(
      `UPDATE uploads SET size = $3, hash_state = $4, driver_state = $5, updated_at = GREATEST(updated_at + 1, ${NOW_MS})
       WHERE id = $1 AND writer = $2`,
      [id, writer, update.size, update.hashState, update.driverState],
    );
    return (result.rowCount ?? 0) > 0;
  }

  async release(id: string, writer: string): Promise<void> {
    await this.db.query('UPDATE uploads SET writer = NULL, writer_expires_at = 0 WHERE id = $1 AND writer = $2', [id, writer]);
  }

  async delete(id: string): Promise<void> {
    await this.db.query('DELETE FROM uploads WHERE id = $1', [id]);
  }

  async idleSince(instant: number): Promise<UploadRecord[]> {
    const { rows } = await this.db.query<UploadRow>(`SELECT ${COLUMNS} FROM uploads WHERE updated_at < $1 ORDER BY updated_at`, [instant]);
    return rows.map(toRecord);
  }
}

