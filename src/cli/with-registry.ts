/**
 * What CLI commands that read or change images share: the configured storage root opened as the
 * server opens it (the YAML file and REGISTRY_* variables), changes made as the `cli` actor through
 * the same domain services the HTTP API calls (so they are checked, and their events recorded in
 * the outbox, as the API's are), and refusals turned into a message and an exit status. Safe beside
 * a running server: it sees the changes, and its webhook dispatcher the events, on its next poll.
 */
import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { isRegistryError } from '../registry/errors.js';
import type { Actor } from '../registry/ports.js';
import type { Registry } from '../registry/registry.js';

/** Exit statuses: 1 refused by the registry (unknown image, immutable tag, quota), 2 bad input. */
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/** Who the CLI's changes are recorded as. */
export const CLI_ACTOR: Actor = { name: 'cli', kind: 'system' };

/** Registry refusals that come from what the user asked (bad names, digests, manifests) rather than the registry's state. */
const USAGE_CODES = new Set(['NAME_INVALID', 'TAG_INVALID', 'DIGEST_INVALID', 'MANIFEST_INVALID', 'SIZE_INVALID']);

export function print(line = ''): void {
  process.stdout.write(`${line}\n`);
}

export async function withRegistry(program: Command, run: (registry: Registry) => Promise<void>): Promise<void> {
  const config = loadConfig({ file: program.opts<{ config?: string }>().config });
  // Loaded on use: the rest of the CLI starts without the server's modules.
  const { openRegistry } = await import('../server.js');
  const opened = await openRegistry(config);
  try {
    await run(opened.registry);
  } catch (error) {
    if (!isRegistryError(error)) throw error;
    process.stderr.write(`registry: ${error.code}: ${error.message}\n`);
    process.exitCode = USAGE_CODES.has(error.code) ? EXIT_USAGE : EXIT_FAILED;
  } finally {
    await opened.close();
  }
}
