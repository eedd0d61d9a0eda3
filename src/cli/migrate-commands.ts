/**
 * Graduating from one box (docs/migrate.md):
 *
 *   registry migrate-blobs --to s3              the filesystem store under storage.root into storage.s3.bucket
 *   registry migrate-metadata --to postgres://… storage.root/registry.db into an empty PostgreSQL database
 *
 * Both read the configuration as the server does (the YAML file and REGISTRY_* variables), print
 * a summary (`--json` for scripts) and exit 1 when anything was refused, corrupt or failed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { loadSigningKey } from '../auth/keys.js';
import { defaultSigningKeyFile } from '../auth/service.js';
import { ConfigError, loadConfig } from '../config/load.js';
import { hideUrlPassword } from '../config/metadata.js';
import type { Config } from '../config/schema.js';
import { MetadataMigrationError, migrateMetadata, type MetadataMigrationSummary, type SigningKeyToMove } from '../metadata/migrate/migrate-metadata.js';
import { openPostgresDestination, openSqliteSource } from '../metadata/migrate/open.js';
import { migrateBlobs, type BlobMigrationSummary, type BlobProgress } from '../storage/migrate/migrate-blobs.js';
import { openFilesystemSource, openS3Target } from '../storage/migrate/open.js';
import { count } from './format.js';
import { EXIT_FAILED, print } from './with-registry.js';

const MiB = 1024 * 1024;

function positiveInteger(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1 || parsed > 64) throw new InvalidArgumentError('expected a whole number from 1 to 64');
  return parsed;
}

function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}

/** `--to postgres://…`, or `--to postgres` for metadata.postgres.url (keeps a password off the command line). */
function targetUrl(to: string, config: Config): string {
  if (to === 'postgres') {
    if (!config.metadata.postgres.url) throw new ConfigError('--to postgres needs metadata.postgres.url (REGISTRY_METADATA_POSTGRES_URL)');
    return config.metadata.postgres.url;
  }
  if (!/^postgres(ql)?:\/\//.test(to) || !URL.canParse(to)) throw new ConfigError('--to must be a postgres:// URL, or postgres for metadata.postgres.url');
  return to;
}

/** The key the single node generated under storage.root: the replicas keep signing with it (tokens already issued stay valid). */
function generatedSigningKey(config: Config): SigningKeyToMove | undefined {
  if (config.auth.token.signingKey) return undefined; // every replica reads that file itself
  const file = defaultSigningKeyFile(path.resolve(config.storage.root));
  if (!fs.existsSync(file)) return undefined;
  const key = loadSigningKey(file);
  return { pem: fs.readFileSync(file, 'utf8'), algorithm: key.algorithm, createdAt: Math.round(fs.statSync(file).mtimeMs) };
}

function printMetadataSummary(summary: MetadataMigrationSummary): void {
  print(`copied ${summary.source} into ${summary.target} in ${(summary.durationMs / 1000).toFixed(1)} s; every table's row count checked before committing`);
  if (summary.migrationsApplied.length > 0) print(`PostgreSQL migrations applied first: ${summary.migrationsApplied.join(', ')}`);
  const width = Math.max(...summary.tables.map((table) => table.table.length));
  for (const table of summary.tables) print(`  ${table.table.padEnd(width)}  ${table.copied}`);
  print(`next ids: ${Object.entries(summary.nextIds).map(([column, next]) => `${column} ${next}`).join(', ')}`);
  const dropped = Object.entries(summary.dropped).filter(([, rows]) => rows > 0);
  if (dropped.length > 0) print(`not copied: ${dropped.map(([table, rows]) => `${table} ${rows}`).join(', ')} (see docs/migrate.md)`);
  print(summary.signingKeyCopied ? 'token signing key: the generated key file is now the one the replicas share' : 'token signing key: not copied (auth.token.signingKey names a file, or none was generated)');
}

function printBlobSummary(summary: BlobMigrationSummary): void {
  print(
    `${count(summary.total, 'blob')} (${mib(summary.totalBytes)}): ${summary.copied} copied, ${summary.present} already present, ` +
      `${summary.replaced} replaced, ${summary.corrupt.length} corrupt, ${summary.failed.length} failed; ` +
      `${mib(summary.bytesCopied)} in ${(summary.durationMs / 1000).toFixed(1)} s`,
  );
  for (const blob of summary.corrupt) print(`corrupt: ${blob.digest}: ${blob.detail} (not copied; run registry fsck)`);
  for (const blob of summary.failed) print(`failed: ${blob.digest}: ${blob.detail} (run the command again)`);
}

function progressLine(progress: BlobProgress): string {
  const detail = progress.detail ? `: ${progress.detail}` : '';
  return `[${progress.done}/${progress.total}] ${progress.outcome} ${progress.digest} ${mib(progress.size)}${detail}\n`;
}

export function registerMigrateCommands(program: Command): void {
  program
    .command('migrate-metadata')
    .description('copy the SQLite metadata (storage.root/registry.db) into an empty PostgreSQL database, in one transaction, verified (docs/migrate.md)')
    .requiredOption('--to <url>', 'postgres://user:pass@host:5432/db, or postgres for metadata.postgres.url')
    .option('--json', 'print the summary as JSON')
    .action(async (options: { to: string; json?: boolean }) => {
      const config = loadConfig({ file: program.opts<{ config?: string }>().config });
      const url = targetUrl(options.to, config);
      const signingKey = generatedSigningKey(config);
      const snapshot = await openSqliteSource(config.storage.root);
      const target = await openPostgresDestination({ ...config.metadata.postgres, url });
      try {
        const summary = await migrateMetadata({ snapshot, target, signingKey });
        if (options.json) print(JSON.stringify(summary));
        else printMetadataSummary(summary);
      } catch (error) {
        const message = error instanceof MetadataMigrationError ? error.message : `cannot migrate into ${hideUrlPassword(url)}: ${(error as Error).message}`;
        process.stderr.write(`registry: migrate-metadata: ${message}\n`);
        process.exitCode = EXIT_FAILED;
      } finally {
        snapshot.close();
        await target.close();
      }
    });

  program
    .command('migrate-blobs')
    .description('copy every blob of the filesystem store (storage.root) into the S3 bucket of storage.s3.*, verified by digest; run it again to resume (docs/migrate.md)')
    .requiredOption('--to <driver>', 'the target store: s3 (storage.s3.bucket, .endpoint, ... as the replicas will use it)')
    .option('--concurrency <n>', 'blobs copied at once', positiveInteger, 4)
    .option('--json', 'print the summary as JSON')
    .option('--quiet', 'no line per blob on stderr')
    .action(async (options: { to: string; concurrency: number; json?: boolean; quiet?: boolean }) => {
      if (options.to !== 's3') throw new ConfigError('--to must be s3 (the only other store is the filesystem, the source)');
      const config = loadConfig({ file: program.opts<{ config?: string }>().config });
      const source = await openFilesystemSource(config.storage);
      const target = await openS3Target(config.storage);
      const summary = await migrateBlobs({
        source,
        target,
        concurrency: options.concurrency,
        onProgress: options.quiet ? undefined : (progress) => process.stderr.write(progressLine(progress)),
      });
      if (options.json) print(JSON.stringify(summary));
      else printBlobSummary(summary);
      if (summary.corrupt.length > 0 || summary.failed.length > 0) process.exitCode = EXIT_FAILED;
    });
}
