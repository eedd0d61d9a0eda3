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
import { loadConfig } from '../config/load.js';
import { isRegistryError } from '../registry/errors.js';
import type { Actor } from '../registry/ports.js';
import type { Registry } from '../registry/registry.js';
import { ArchiveError } from '../transfer/tar-reader.js';

const EXIT_FAILED = 1;
const EXIT_USAGE = 2;
const CLI_ACTOR: Actor = { name: 'cli', kind: 'system' };

/** Registry refusals that come from what the user asked (bad names, digests, manifests) rather than the registry's state. */
const USAGE_CODES = new Set(['NAME_INVALID', 'TAG_INVALID', 'DIGEST_INVALID', 'MANIFEST_INVALID', 'SIZE_INVALID']);

function print(line = ''): void {
  process.stdout.write(`${line}\n`);
}

async function withRegistry(program: Command, run: (registry: Registry) => Promise<void>): Promise<void> {
  const config = loadConfig({ file: program.opts<{ config?: string }>().config });
  // Loaded on use: the rest of the CLI starts without the server's modules.
  const { openRegistry } = await import('../server.js');
  const opened = await openRegistry(config);
  try {
    await run(opened.registry);
  } catch (error) {
    if (error instanceof ArchiveError) {
      process.stderr.write(`registry: ${error.message}\n`);
      process.exitCode = EXIT_USAGE;
    } else if (isRegistryError(error)) {
      process.stderr.write(`registry: ${error.code}: ${error.message}\n`);
      process.exitCode = USAGE_CODES.has(error.code) ? EXIT_USAGE : EXIT_FAILED;
    } else {
      throw error;
    }
  } finally {
    await opened.close();
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
      await withRegistry(program, async (registry) => {
        const { ImageImporter } = await import('../transfer/import.js');
        const result = await new ImageImporter(registry).import(path.resolve(file), { ...options, actor: CLI_ACTOR });
        if (options.json) return print(JSON.stringify(result, null, 2));
        print(
          `imported ${result.repository}:${result.tag} ${result.digest} (${result.format}): ` +
            `${result.blobs} blobs, ${result.blobsUploaded} stored (${result.bytesUploaded} bytes), ${result.blobsExisting} already present`,
        );
        for (const note of result.notes) process.stderr.write(`registry: note: ${note}\n`);
      });
    });

  program
    .command('export <image>')
    .description('export <repository>:<tag> (or <repository>@<digest>) as an OCI image layout tarball')
    .requiredOption('-o, --output <file>', "the tarball to write ('-' for standard output)")
    .action(async (image: string, options: { output: string }) => {
      await withRegistry(program, async (registry) => {
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
        process.stderr.write(`exported ${repository}:${reference} ${exported.digest}: ${exported.manifests} manifests, ${exported.blobs} blobs to ${options.output}\n`);
      });
    });
}
