/**
 * The metadata backends a suite runs against: SQLite always, PostgreSQL when the machine has it
 * (skipped with the reason otherwise; CI installs it). One PostgreSQL server per test file,
 * started on first use and stopped after the file; a fresh database per fixture.
 *
 *   for (const kind of METADATA_BACKENDS) describe(`... (${kind.name})`, { skip: kind.skip }, () => { ... kind.open() ... });
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import type { MetadataConfig } from '../../src/config/metadata.js';
import { openPostgresBackend, type PostgresBackend, type PostgresBackendOptions } from '../../src/metadata/postgres/index.js';
import { openSqliteBackend, type SqliteBackend } from '../../src/metadata/sqlite/index.js';
import type { NewManifest } from '../../src/registry/ports.js';
import { postgresUnavailable, startPostgres, type PostgresServer } from './postgres.js';

const unavailable = postgresUnavailable();
if (unavailable) console.log(`# PostgreSQL suites skipped: ${unavailable}`);

let server: Promise<PostgresServer> | undefined;
after(async () => {
  if (server) await (await server).stop();
});

/** The file's PostgreSQL server (started on first call). */
export function postgresServer(): Promise<PostgresServer> {
  server ??= startPostgres();
  return server;
}

/** A fresh database on the file's server. */
export async function freshPostgresDatabase(): Promise<string> {
  return (await postgresServer()).createDatabase();
}

export const POSTGRES_SKIP: string | false = unavailable ? `PostgreSQL not available: ${unavailable}` : false;

/** The `metadata` section of a configuration for a fresh database of this backend. */
export interface BackendKind {
  name: 'sqlite' | 'postgres';
  skip: string | false;
  /** Configuration (`metadata` section) pointing at a fresh database; SQLite lives under storage.root. */
  metadataConfig(): Promise<MetadataConfig | undefined>;
}

export const METADATA_BACKENDS: BackendKind[] = [
  { name: 'sqlite', skip: false, metadataConfig: async () => undefined },
  {
    name: 'postgres',
    skip: POSTGRES_SKIP,
    metadataConfig: async () => ({
      driver: 'postgres',
      postgres: { url: await freshPostgresDatabase(), poolSize: 10, statementTimeoutMs: 30_000, connectionTimeoutMs: 10_000 },
    }),
  },
];

export interface OpenedBackend<B> {
  backend: B;
  cleanup(): Promise<void>;
}

export async function openSqliteForTest(): Promise<OpenedBackend<SqliteBackend>> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'metadata-backend-'));
  const backend = openSqliteBackend(dir);
  return {
    backend,
    async cleanup() {
      await backend.close();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

export async function openPostgresForTest(options: PostgresBackendOptions = {}, url?: string): Promise<OpenedBackend<PostgresBackend>> {
  const backend = await openPostgresBackend(
    { url: url ?? (await freshPostgresDatabase()), poolSize: 10, statementTimeoutMs: 30_000, connectionTimeoutMs: 10_000 },
    options,
  );
  return { backend, cleanup: () => backend.close() };
}

/** An image manifest as the domain hands it to a store: unique per seed, referencing `layers` (blob digests). */
export function manifestOf(seed: string, layers: string[] = []): NewManifest {
  const content = Buffer.from(JSON.stringify({ schemaVersion: 2, seed, layers }));
  return {
    digest: `sha256:${createHash('sha256').update(content).digest('hex')}`,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    size: content.length,
    content,
    subject: null,
    artifactType: null,
    annotations: null,
    references: layers.map((digest) => ({ digest, kind: 'blob' as const })),
  };
}
