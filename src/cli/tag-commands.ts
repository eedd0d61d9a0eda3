/**
 * Tags from the command line, on the configured storage root (safe beside a running server):
 *
 *   registry tag list team/app [--json]     every tag with the digest it names, in lexical order
 *   registry tag delete team/app:1.0        the tag alone; the manifest stays, reachable by its digest
 *
 * A delete goes through the same checks as `DELETE /v2/<name>/manifests/<tag>` (storage.deleteEnabled,
 * immutable tags) and records the same tag.deleted event, so webhooks hear of it.
 * Exit status: 0 done, 1 refused (unknown repository or tag, deletion disabled, immutable), 2 bad input.
 */
import type { Command } from 'commander';
import { RegistryError } from '../registry/errors.js';
import { assertName, assertTag } from '../registry/references.js';
import { CLI_ACTOR, EXIT_USAGE, print, withRegistry } from './with-registry.js';

/** `<repository>:<tag>`; the repository part holds no `:`, so the last one separates. */
function parseTagReference(program: Command, text: string): { repository: string; tag: string } {
  const colon = text.lastIndexOf(':');
  if (colon <= 0 || text.slice(colon).includes('/') || text.includes('@')) {
    program.error(`error: expected <repository>:<tag>, e.g. team/app:1.0, not ${JSON.stringify(text)}`, { exitCode: EXIT_USAGE });
  }
  return { repository: text.slice(0, colon), tag: text.slice(colon + 1) };
}

export function registerTagCommands(program: Command): void {
  const tag = program.command('tag').description('list or delete the tags of a repository');

  tag
    .command('list <repository>')
    .description('list the tags of a repository with the digest each names')
    .option('--json', 'print JSON: {"name", "tags": [{"tag", "digest"}]}')
    .action(async (repository: string, options: { json?: boolean }) => {
      await withRegistry(program, async (registry) => {
        const { entries } = await registry.listings.tags(assertName(repository), {});
        const tags = [];
        for (const name of entries) tags.push({ tag: name, digest: await registry.metadata.resolveTag(repository, name) });
        if (options.json) return print(JSON.stringify({ name: repository, tags }, null, 2));
        for (const entry of tags) print(`${entry.tag}\t${entry.digest ?? '-'}`);
      });
    });

  tag
    .command('delete <repository:tag>')
    .description('delete one tag (the manifest stays, reachable by its digest; see lifecycle.gc.untaggedManifestAgeSeconds)')
    .action(async (reference: string) => {
      const { repository, tag: name } = parseTagReference(program, reference);
      await withRegistry(program, async (registry) => {
        assertTag(name);
        if (!registry.options.deleteEnabled) {
          throw new RegistryError('UNSUPPORTED', 'deletion is disabled on this registry (storage.deleteEnabled: false)');
        }
        const digest = await registry.metadata.resolveTag(assertName(repository), name);
        await registry.manifests.delete(repository, name, CLI_ACTOR);
        print(`deleted tag ${repository}:${name} (it named ${digest})`);
      });
    });
}
