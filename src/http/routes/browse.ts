/**
 * The browsing API (docs/ui.md), what the web interface reads beyond /v2:
 *
 *   GET /api/v1/repositories?q=&n=&last=                      repositories with tag count, last push, stored size
 *   GET /api/v1/repositories/<name>                           one repository's summary
 *   GET /api/v1/repositories/<name>/_tags?sort=&q=&n=&last=   tags with digest, size, platforms, push time, pusher
 *   GET /api/v1/repositories/<name>/_images/<tag|digest>      an image's platforms, layers, config, referrers
 *
 * (`_` cannot start a name component, so these never collide with a repository name.) Access
 * is checked as /v2 checks it, by the same guard: the list needs `registry:catalog:*` and shows
 * only what the caller may pull; the rest need `repository:<name>:pull`.
 */
import type { Request, RequestHandler, Router } from 'express';
import { CATALOG_SCOPE } from '../../auth/scopes.js';
import type { RepositorySummary } from '../../registry/browse-store.js';
import { TAG_SORTS, type BrowseService, type TagSort, type TagView } from '../../registry/browse.js';
import { RegistryError } from '../../registry/errors.js';
import { UNRESTRICTED_ACCESS } from '../../registry/ports.js';
import { decodeParam, type RequiredAccess } from '../required-access.js';
import { caller, pageSizeParam, pathParam, queryParam, repositoryParam } from '../wire.js';

export const BROWSE_ROUTES = {
  list: /^\/api\/v1\/repositories\/?$/,
  tags: /^\/api\/v1\/repositories\/(.+)\/_tags$/,
  image: /^\/api\/v1\/repositories\/(.+)\/_images\/([^/]+)$/,
  summary: /^\/api\/v1\/repositories\/(.+)$/,
} as const;

const MAX_SEARCH_LENGTH = 128;

/** The access a browsing request needs, as {@link requiredAccess} says it for /v2. */
export function browseAccess(req: Request): RequiredAccess {
  if (BROWSE_ROUTES.list.test(req.path)) return { kind: 'scope', scope: CATALOG_SCOPE };
  const match = BROWSE_ROUTES.tags.exec(req.path) ?? BROWSE_ROUTES.image.exec(req.path) ?? BROWSE_ROUTES.summary.exec(req.path);
  const name = match ? decodeParam(match[1]!) : null;
  // No repository to name (an undecodable path): the router refuses it after the identity check.
  if (name === null) return { kind: 'identity' };
  return { kind: 'scope', scope: { type: 'repository', name, actions: ['pull'] } };
}

/** Registers the browsing routes behind `guard` (the /v2 guard applied with {@link browseAccess}). */
export function registerBrowseRoutes(router: Router, browse: BrowseService, guard: RequestHandler): void {
  router.get(BROWSE_ROUTES.list, guard, async (req, res) => {
    const { access } = caller(res);
    const visible = access === UNRESTRICTED_ACCESS ? undefined : (repository: string) => access.canPull(repository);
    const page = await browse.repositories({ n: pageSizeParam(req), last: queryParam(req, 'last'), search: searchParam(req) }, visible);
    res.json({ repositories: page.repositories.map(repositoryJson), next: page.next });
  });

  router.get(BROWSE_ROUTES.tags, guard, async (req, res) => {
    const repository = repositoryParam(req);
    const page = await browse.tags(repository, { sort: sortParam(req), n: pageSizeParam(req), last: queryParam(req, 'last'), search: searchParam(req) });
    res.json({ repository, tags: page.tags.map(tagJson), total: page.total, next: page.next });
  });

  router.get(BROWSE_ROUTES.image, guard, async (req, res) => {
    res.json(await browse.image(repositoryParam(req), pathParam(req, 1)));
  });

  router.get(BROWSE_ROUTES.summary, guard, async (req, res) => {
    res.json(repositoryJson(await browse.repository(repositoryParam(req))));
  });
}

function repositoryJson(summary: RepositorySummary): Record<string, unknown> {
  return { ...summary, lastPushAt: isoOrNull(summary.lastPushAt) };
}

function tagJson(tag: TagView): Record<string, unknown> {
  return { ...tag, pushedAt: new Date(tag.pushedAt).toISOString() };
}

const isoOrNull = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

function searchParam(req: Request): string | undefined {
  const search = queryParam(req, 'q');
  if (search !== undefined && search.length > MAX_SEARCH_LENGTH) {
    throw new RegistryError('INVALID_REQUEST', `q must be at most ${MAX_SEARCH_LENGTH} characters`);
  }
  return search || undefined;
}

function sortParam(req: Request): TagSort | undefined {
  const sort = queryParam(req, 'sort');
  if (sort === undefined || sort === '') return undefined;
  if (!(TAG_SORTS as readonly string[]).includes(sort)) throw new RegistryError('INVALID_REQUEST', `sort must be one of ${TAG_SORTS.join(', ')}`);
  return sort as TagSort;
}
