/**
 * Lifecycle commands of the admin CLI, working on the configured storage root (the YAML file
 * and REGISTRY_* variables, as the server reads them). Safe while the server runs: collections
 * and repairs take a lease in the database, and pushes in flight are protected as with an
 * online collection.
 *
 *   registry gc [--dry-run] [--grace-period SECONDS] [--json]
 *   registry fsck [--repair] [--grace-period SECONDS] [--json]     exit 1 while problems remain
 *   registry usage [REPOSITORY] [--json]
 */
import { InvalidArgumentError, type Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { isRegistryError } from '../registry/errors.js';
import type { FsckReport } from '../registry/fsck.js';
import type { GcReport, ListedSection } from '../registry/gc.js';
import { createLifecycle, type Lifecycle, type UsageReport } from '../registry/lifecycle.js';
import type { RepositoryUsage } from '../registry/lifecycle-store.js';
import { formatBytes } from '../registry/policies.js';
import { count } from './format.js';

const EXIT_FAILED = 1;

function print(line = ''): void {
  process.stdout.write(`${line}\n`);
}

function seconds(value: string): number {
  if (!/^\d{1,9}$/.test(value)) throw new InvalidArgumentError('expected a whole number of seconds');
  return Number(value);
}

/** Opens the storage root's blob store and database for one command, and closes them after. */
async function withLifecycle<T>(program: Command, run: (lifecycle: Lifecycle) => Promise<T>): Promise<T | undefined> {
  const config = loadConfig({ file: program.opts<{ config?: string }>().config });
  const { openRegistry } = await import('../server.js');
  const opened = await openRegistry(config);
  try {
    return await run(createLifecycle(opened.registry, opened.lifecycleStore, config.lifecycle.gc));
  } catch (error) {
    // Refusals (a collection already running, an unknown repository) are answers, not crashes.
    if (!isRegistryError(error)) throw error;
    process.stderr.write(`registry: ${error.message}\n`);
    process.exitCode = EXIT_FAILED;
    return undefined;
  } finally {
    await opened.close();
  }
}

export function registerLifecycleCommands(program: Command): void {
  program
    .command('gc')
    .description('garbage-collect: apply retention, remove unreachable manifests, delete unreferenced blobs, purge stale uploads')
    .option('--dry-run', 'list what would be deleted, delete nothing')
    .option('--grace-period <seconds>', 'keep anything pushed or linked this recently (default: lifecycle.gc.gracePeriodSeconds)', seconds)
    .option('--json', 'print the full report as JSON')
    .action(async (options: { dryRun?: boolean; gracePeriod?: number; json?: boolean }) => {
      await withLifecycle(program, async (lifecycle) => {
        const report = await lifecycle.gc.run({ dryRun: options.dryRun, gracePeriodSeconds: options.gracePeriod, trigger: 'cli' });
        if (options.json) print(JSON.stringify(report, null, 2));
        else printGcReport(report);
      });
    });

  program
    .command('fsck')
    .description('verify every blob against its digest and metadata against storage; --repair fixes what can be fixed')
    .option('--repair', 'repair every repairable finding')
    .option('--grace-period <seconds>', 'files younger than this are not called orphans (default: lifecycle.gc.gracePeriodSeconds)', seconds)
    .option('--json', 'print the full report as JSON')
    .action(async (options: { repair?: boolean; gracePeriod?: number; json?: boolean }) => {
      await withLifecycle(program, async (lifecycle) => {
        const report = await lifecycle.fsck.run({ repair: options.repair, gracePeriodSeconds: options.gracePeriod });
        if (options.json) print(JSON.stringify(report, null, 2));
        else printFsckReport(report);
        if (report.problems > 0) process.exitCode = EXIT_FAILED;
      });
    });

  program
    .command('usage [repository]')
    .description('storage use: logical and unique bytes per repository, stored and logical totals')
    .option('--json', 'print JSON')
    .action(async (repository: string | undefined, options: { json?: boolean }) => {
      await withLifecycle(program, async (lifecycle) => {
        if (repository !== undefined) {
          const usage = await lifecycle.usage.repository(repository);
          if (!usage) {
            process.stderr.write(`registry: repository ${repository} is not known to the registry\n`);
            process.exitCode = EXIT_FAILED;
            return;
          }
          if (options.json) return print(JSON.stringify(usage, null, 2));
          return printRepositoryUsage(usage);
        }
        const report = await lifecycle.usage.registry();
        if (options.json) return print(JSON.stringify(report, null, 2));
        printUsageReport(report);
      });
    });
}

function printGcReport(report: GcReport): void {
  const [remove, purge] = report.dryRun ? ['to delete', 'to purge'] : ['deleted', 'purged'];
  print(`garbage collection${report.dryRun ? ' (dry run)' : ''}, grace period ${report.gracePeriodSeconds} s:`);
  const section = <T>(label: string, list: ListedSection<T>, describe: (item: T) => string) => {
    print(`  ${label}: ${list.count}${list.bytes ? ` (${formatBytes(list.bytes)})` : ''}`);
    for (const item of list.items) print(`    ${describe(item)}`);
    if (list.truncated) print(`    … and ${list.count - list.items.length} more`);
  };
  section(`tags ${remove} by retention`, report.tagsDeleted, (d) => `${d.repository}:${d.tag} (${d.digest}, ${d.policy})`);
  section('manifests removed from repositories', report.manifestsRemoved, (m) => `${m.repository}@${m.digest} (${m.reason})`);
  section(`manifests ${remove}`, report.manifestsPurged, (m) => `${m.digest} (${formatBytes(m.size)})`);
  section(`blobs ${remove}`, report.blobsDeleted, (b) => `${b.digest} (${formatBytes(b.size)})`);
  section(`orphan files ${remove}`, report.orphanFilesDeleted, (b) => `${b.digest} (${formatBytes(b.size)})`);
  section(`uploads ${purge}`, report.uploadsPurged, (u) => `${u.id}${u.repository ? ` (${u.repository})` : ''}`);
  print(`  ${report.dryRun ? 'bytes to reclaim' : 'bytes reclaimed'}: ${formatBytes(report.bytesReclaimed)}`);
}

function printFsckReport(report: FsckReport): void {
  const { checked } = report;
  print(`checked ${count(checked.blobs, 'blob')} (${formatBytes(checked.bytes)}), ${count(checked.files, 'file')}, ${count(checked.manifests, 'manifest')}`);
  for (const finding of report.findings) {
    print(`${finding.kind}: ${finding.problem}`);
    const state = finding.repaired === undefined ? '' : finding.repaired ? ' [repaired]' : finding.repairable ? ` [not repaired: ${finding.repairError}]` : '';
    print(`  repair: ${finding.repair}${state}`);
    for (const image of finding.affects ?? []) {
      print(`  affects ${image.repository}@${image.manifest}${image.tags.length ? ` (${image.tags.join(', ')})` : ''}`);
    }
  }
  if (report.findings.length === 0) print('no problems found');
  else print(`${count(report.findings.length, 'problem')} found, ${report.repaired} repaired, ${report.problems} remaining`);
}

function printRepositoryUsage(usage: RepositoryUsage): void {
  print(`repository:    ${usage.repository}`);
  print(`tags:          ${usage.tags}`);
  print(`manifests:     ${usage.manifests}`);
  print(`blobs:         ${usage.blobs}`);
  print(`logical bytes: ${formatBytes(usage.logicalBytes)}`);
  print(`unique bytes:  ${formatBytes(usage.uniqueBytes)}`);
}

function printUsageReport(report: UsageReport): void {
  print(['REPOSITORY', 'TAGS', 'MANIFESTS', 'BLOBS', 'LOGICAL', 'UNIQUE'].join('\t'));
  for (const usage of report.repositories) {
    print([usage.repository, usage.tags, usage.manifests, usage.blobs, usage.logicalBytes, usage.uniqueBytes].join('\t'));
  }
  const { totals } = report;
  print(`total: ${count(totals.repositories, 'repository', 'repositories')}, ${count(totals.manifests, 'manifest')}, ${count(totals.blobs, 'blob')}`);
  print(`stored (deduplicated): ${formatBytes(totals.storedBytes)}`);
  print(`logical (sum of repositories): ${formatBytes(totals.logicalBytes)}`);
  print(`unreferenced: ${count(totals.unreferencedBlobs, 'blob')}, ${formatBytes(totals.unreferencedBytes)}`);
}
