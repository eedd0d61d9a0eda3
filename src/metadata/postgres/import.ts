/**
 * PostgreSQL as the target of `registry migrate-metadata`: its own migrations first, then the
 * copy in one transaction that locks every table against writers (a replica started too early
 * waits, or is seen), checks they hold nothing, inserts the rows with their ids as they are
 * (OVERRIDING SYSTEM VALUE) and moves each identity sequence past them.
 */
import { hideUrlPassword, type PostgresSettings } from '../../config/metadata.js';
import type { TablePlan } from '../migrate/plan.js';
import type { MetadataImport, MetadataTarget, Row } from '../migrate/ports.js';
import { migrate } from './migrations.js';
import { createPool, transaction, type PoolClient, type Queryable } from './pool.js';
import { storeSigningKey } from './signing-key.js';

/** Bind parameters per INSERT stay well under PostgreSQL's limit of 65535. */
const MAX_PARAMETERS = 30_000;

function quoted(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function sameRow(a: Row, b: Row): boolean {
  const keys = Object.keys(b);
  return Object.keys(a).length === keys.length && keys.every((key) => a[key] === b[key]);
}

async function unseededCount(db: Queryable, table: string, seeded: readonly Row[] = []): Promise<number> {
  if (seeded.length === 0) return (await db.query<{ n: number }>(`SELECT COUNT(*) AS n FROM ${quoted(table)}`)).rows[0]!.n;
  const { rows } = await db.query<Row>(`SELECT * FROM ${quoted(table)}`);
  return rows.filter((row) => !seeded.some((seed) => sameRow(row, seed))).length;
}

function values(table: TablePlan, row: Row): unknown[] {
  return table.columns.map((column) => {
    const value = row[column];
    if (table.booleans?.includes(column) && value !== null && value !== undefined) return value !== 0;
    return value;
  });
}

class Import implements MetadataImport {
  constructor(private readonly client: PoolClient) {}

  async clearSeeded(table: TablePlan): Promise<void> {
    for (const seed of table.seeded ?? []) {
      const columns = Object.keys(seed);
      const where = columns.map((column, i) => `${quoted(column)} = $${i + 1}`).join(' AND ');
      await this.client.query(`DELETE FROM ${quoted(table.name)} WHERE ${where}`, columns.map((column) => seed[column]));
    }
  }

  async insert(table: TablePlan, rows: Row[]): Promise<void> {
    const perStatement = Math.max(1, Math.floor(MAX_PARAMETERS / table.columns.length));
    const overriding = table.identity ? ' OVERRIDING SYSTEM VALUE' : '';
    for (let start = 0; start < rows.length; start += perStatement) {
      const chunk = rows.slice(start, start + perStatement);
      const parameters: unknown[] = [];
      const tuples = chunk.map((row) => {
        const first = parameters.length;
        parameters.push(...values(table, row));
        return `(${table.columns.map((_, i) => `$${first + i + 1}`).join(', ')})`;
      });
      await this.client.query(
        `INSERT INTO ${quoted(table.name)} (${table.columns.map(quoted).join(', ')})${overriding} VALUES ${tuples.join(', ')}`,
        parameters,
      );
    }
  }

  async advanceIdentity(table: TablePlan, floor: number): Promise<number> {
    const column = table.identity!;
    const highest = (await this.client.query<{ n: number }>(`SELECT COALESCE(MAX(${quoted(column)}), 0) AS n FROM ${quoted(table.name)}`)).rows[0]!.n;
    const last = Math.max(highest, floor);
    // setval(seq, n, true): the next value is n + 1; with nothing ever drawn, start at 1.
    await this.client.query('SELECT setval(pg_get_serial_sequence($1, $2), $3, $4)', [table.name, column, Math.max(last, 1), last > 0]);
    return last + 1;
  }

  async lock(tables: readonly string[]): Promise<void> {
    // Writers wait until the copy commits; readers (a replica's start-up checks) do not.
    await this.client.query(`LOCK TABLE ${tables.map(quoted).join(', ')} IN EXCLUSIVE MODE`);
  }

  async occupied(tables: readonly TablePlan[], extra: readonly string[]): Promise<Array<{ table: string; rows: number }>> {
    const found: Array<{ table: string; rows: number }> = [];
    const all = [...tables.map((plan) => ({ name: plan.name, seeded: plan.seeded })), ...extra.map((name) => ({ name, seeded: undefined }))];
    for (const table of all) {
      const rows = await unseededCount(this.client, table.name, table.seeded as Row[] | undefined);
      if (rows > 0) found.push({ table: table.name, rows });
    }
    return found;
  }

  count(table: string): Promise<number> {
    return unseededCount(this.client, table);
  }

  storeSigningKey(pem: string, algorithm: string, createdAt: number): Promise<void> {
    return storeSigningKey(this.client, pem, algorithm, createdAt);
  }
}

export function openPostgresTarget(settings: PostgresSettings): MetadataTarget {
  const pool = createPool({ ...settings, statementTimeoutMs: 0 });
  const description = hideUrlPassword(settings.url);
  return {
    description,
    migrate: () => migrate(pool),
    async schema() {
      const { rows } = await pool.query<{ table_name: string; column_name: string }>(
        `SELECT c.table_name, c.column_name FROM information_schema.columns c
           JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
          WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
          ORDER BY c.table_name, c.ordinal_position`,
      );
      const schema = new Map<string, string[]>();
      for (const row of rows) schema.set(row.table_name, [...(schema.get(row.table_name) ?? []), row.column_name]);
      return schema;
    },
    transaction: (work) => transaction(pool, (client) => work(new Import(client))),
    close: () => pool.end(),
  };
}
