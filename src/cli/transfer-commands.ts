/**
 * Moving images in and out without a daemon, on the configured storage root (safe beside a
 * running server):
 *
 *   registry import app.tar --repository team/app --tag 1.0 [--source app:1.0]   docker save or OCI layout tarball
 *   registry export team/app:1.0 --output app-1.0.tar                             OCI layout tarball ('-': stdout)
 *
 * Exit status: 0 done, 1 refused by the registry (unknown image, immutable tag, quota), 2 bad
 * input (unreadable or malformed archive, bad name).
 */
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { formatBytes } from '../registry/policies.js';
import type { Registry } from '../registry/registry.js';
import { ArchiveError } from '../transfer/tar-reader.js';
import { count } from './format.js';
import { CLI_ACTOR, EXIT_USAGE, print, withRegistry } from './with-registry.js';

/** withRegistry, plus: an unreadable or malformed archive is bad input (exit 2). */
async function withArchives(program: Command, run: (registry: Registry) => Promise<void>): Promise<void> {
  try {
    await withRegistry(program, run);
  } catch (error) {
    if (!(error instanceof ArchiveError)) throw error;
    process.stderr.write(`registry: ${error.message}\n`);
    process.exitCode = EXIT_USAGE;
  }
}

export function registerTransferCommands(program: Command): void {
  program
    .command('import <file>')
    .description('import an image from a docker save or OCI image layout tarball (plain or gzip) into a repository and tag')
    .requiredOption('-r, --repository <name>', 'target repository, e.g. team/app')
    .requiredOption('-t, --tag <tag>', 'target tag, e.g. 1.0')
    .option('-s, --source <ref>', 'which image of a multi-image archive: its ref name, digest or RepoTag')
    .option('--json', 'print the result as JSON')
    .action(async (file: string, options: { repository: string; tag: string; source?: string; json?: boolean }) => {
      const stat = await fs.stat(file).catch(() => null);
      if (!stat?.isFile()) program.error(`error: ${file} is not a readable file`, { exitCode: EXIT_USAGE });
      await withArchives(program, async (registry) => {
        const { ImageImporter } = await import('../transfer/import.js');
        const result = await new ImageImporter(registry).import(path.resolve(file), { ...options, actor: CLI_ACTOR });
        if (options.json) return print(JSON.stringify(result, null, 2));
        print(
          `imported ${result.repository}:${result.tag} ${result.digest} (${result.format}): ` +
            `${count(result.blobs, 'blob')}, ${result.blobsUploaded} stored (${formatBytes(result.bytesUploaded)}), ${result.blobsExisting} already present`,
        );
        for (const note of result.notes) process.stderr.write(`registry: note: ${note}\n`);
      });
    });

  program
    .command('export <image>')
    .description('export <repository>:<tag> (or <repository>@<digest>) as an OCI image layout tarball')
    .requiredOption('-o, --output <file>', "the tarball to write ('-' for standard output)")
    .action(async (image: string, options: { output: string }) => {
      await withArchives(program, async (registry) => {
        const { ImageExporter, parseImageReference } = await import('../transfer/export.js');
        const { repository, reference } = parseImageReference(image);
        const exported = await new ImageExporter(registry).export(repository, reference);
        if (options.output === '-') {
          await pipeline(exported.stream, process.stdout);
          return;
        }
        // Written beside the target and renamed when complete: a failed export leaves no half file.
        const partial = `${options.output}.partial-${process.pid}`;
        try {
          await pipeline(exported.stream, createWriteStream(partial));
          await fs.rename(partial, options.output);
        } catch (error) {
          await fs.rm(partial, { force: true });
          throw error;
        }
        process.stderr.write(
          `exported ${repository}:${reference} ${exported.digest}: ${count(exported.manifests, 'manifest')}, ${count(exported.blobs, 'blob')} to ${options.output}\n`,
        );
      });
    });
}
