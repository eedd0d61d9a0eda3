/**
 * `registry migrate`: applies the metadata database's schema migrations and exits, so that an
 * upgrade can migrate once before the new replicas start (they also migrate on start; the
 * migration lock makes replicas starting together take turns). Prints what it applied.
 */
import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { migrateMetadata } from '../metadata/backend.js';

export function registerMetadataCommands(program: Command): void {
  program
    .command('migrate')
    .description('apply the metadata database migrations (metadata.driver: sqlite under storage.root, or postgres at metadata.postgres.url) and exit')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const config = loadConfig({ file: program.opts<{ config?: string }>().config });
      const result = await migrateMetadata(config);
      if (options.json) return void process.stdout.write(`${JSON.stringify({ driver: config.metadata.driver, ...result })}\n`);
      const where = config.metadata.driver === 'postgres' ? 'PostgreSQL' : 'SQLite';
      process.stdout.write(
        result.applied.length === 0
          ? `${where} metadata schema up to date (${result.alreadyApplied.length} migrations)\n`
          : `${where} metadata schema migrated: applied ${result.applied.join(', ')}\n`,
      );
    });
}
