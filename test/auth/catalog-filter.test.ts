/** The catalog's visibility filter: pages by index over visible entries, bounded scans, no hidden name as cursor. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CATALOG_SCAN_LIMIT, ListingService } from '../../src/registry/listings.js';
import type { MetadataStore, PageRequest } from '../../src/registry/ports.js';

function serviceOver(names: string[]): { listings: ListingService; scanned: () => number } {
  const sorted = [...names].sort();
  let scanned = 0;
  const metadata = {
    async listRepositories(page: PageRequest): Promise<string[]> {
      const start = page.after === undefined ? 0 : sorted.findIndex((name) => name > page.after!);
      const rows = start < 0 ? [] : sorted.slice(start, page.limit === undefined ? undefined : start + page.limit);
      scanned += rows.length;
      return rows;
    },
  } as unknown as MetadataStore;
  return { listings: new ListingService(metadata, { defaultCatalogPageSize: 100, maxPageSize: 1000 }), scanned: () => scanned };
}

describe('filtered catalog', () => {
  const names = Array.from({ length: 500 }, (_, i) => `repo${String(i).padStart(4, '0')}`);
  const visible = (name: string) => Number(name.slice(4)) % 7 === 0;
  const expected = names.filter(visible);

  it('pages forward over the visible entries only, with a visible cursor', async () => {
    const { listings } = serviceOver(names);
    const seen: string[] = [];
    let last: string | undefined;
    for (let pages = 0; pages < 100; pages++) {
      const page = await listings.catalog({ n: 10, last }, visible);
      assert.ok(page.entries.every(visible));
      seen.push(...page.entries);
      if (page.next === null) break;
      assert.ok(visible(page.next), 'the cursor names a visible repository');
      assert.equal(page.next, page.entries[page.entries.length - 1]);
      last = page.next;
    }
    assert.deepEqual(seen, expected);
  });

  it('without n uses the default page size, and n=0 lists nothing', async () => {
    const { listings } = serviceOver(names);
    assert.equal((await listings.catalog({}, visible)).entries.length, Math.min(100, expected.length));
    assert.deepEqual(await listings.catalog({ n: 0 }, visible), { entries: [], next: null });
  });

  it('reads a bounded number of names per request, and never hands out a hidden one', async () => {
    const many = Array.from({ length: CATALOG_SCAN_LIMIT + 5_000 }, (_, i) => `r${String(i).padStart(7, '0')}`);
    const { listings, scanned } = serviceOver(many);
    const onlyLast = (name: string) => name === many[many.length - 1];
    const page = await listings.catalog({ n: 10 }, onlyLast);
    assert.ok(scanned() <= CATALOG_SCAN_LIMIT + 1_000, `scanned ${scanned()}`);
    assert.deepEqual(page, { entries: [], next: null });
  });
});
