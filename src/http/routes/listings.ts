/** Tag listing and the catalog, with the spec's `n` / `last` pagination and `Link` header. */
import type { Router } from 'express';
import type { Registry } from '../../registry/registry.js';
import { V2_ENDPOINTS } from '../endpoints.js';
import { UNRESTRICTED_ACCESS } from '../../registry/ports.js';
import { caller, nextPageLink, pageSizeParam, queryParam, repositoryParam } from '../wire.js';

export function registerListingRoutes(router: Router, registry: Registry): void {
  router.get(V2_ENDPOINTS.catalog.path, async (req, res) => {
    const n = pageSizeParam(req);
    const { access } = caller(res);
    // Only what the caller may pull (an open registry lists everything).
    const visible = access === UNRESTRICTED_ACCESS ? undefined : (repository: string) => access.canPull(repository);
    const page = await registry.listings.catalog({ n, last: queryParam(req, 'last') }, visible);
    if (page.next !== null) res.set('Link', nextPageLink('/v2/_catalog', n ?? page.entries.length, page.next));
    res.json({ repositories: page.entries });
  });

  router.get(V2_ENDPOINTS.tags.path, async (req, res) => {
    const name = repositoryParam(req);
    const n = pageSizeParam(req);
    const page = await registry.listings.tags(name, { n, last: queryParam(req, 'last') });
    if (page.next !== null) res.set('Link', nextPageLink(`/v2/${name}/tags/list`, n ?? page.entries.length, page.next));
    res.json({ name, tags: page.entries });
  });
}
