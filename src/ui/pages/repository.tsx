/**
 * A repository's tags: sorted by push time, semver or name, filtered, paged from the API;
 * digest, size, platforms, age and pusher; pull commands; deleting a tag or a manifest where
 * the account may, after a confirmation naming what else goes.
 */
import { useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { api, pullScope, repositoryActions, repositoryPath, session } from '../api.js';
import { CopyField, DataTable, ErrorNote, Loading, Pager, Status, useAction, useAsync, useConfirm, useCursorPages } from '../components.js';
import { age, bytes, dateTime, platform, shortDigest, type Platform } from '../format.js';
import { repositoryHref, useDebounced, type RepositorySummary } from './repositories.js';

export interface TagSummary {
  name: string;
  digest: string;
  mediaType: string | null;
  size: number | null;
  platforms: Platform[];
  pushedAt: string;
  pusher: { name: string; kind: string } | null;
}

const PAGE_SIZE = 50;
const SORTS = [
  ['pushed', 'Newest push first'],
  ['semver', 'Highest version first'],
  ['name', 'Name'],
] as const;

export function imageHref(repository: string, reference: string): string {
  return `/ui/image?${new URLSearchParams({ repository, reference })}`;
}

/** docker and podman pull commands for a tag and for its digest. */
export function PullCommands({ repository, tag, digest }: { repository: string; tag?: string; digest: string }) {
  const image = `${location.host}/${repository}`;
  return (
    <div class="pull-commands">
      {tag && <CopyField label={`docker pull (tag ${tag})`} value={`docker pull ${image}:${tag}`} />}
      <CopyField label="docker pull (by digest)" value={`docker pull ${image}@${digest}`} />
      {tag && <CopyField label={`podman pull (tag ${tag})`} value={`podman pull ${image}:${tag}`} />}
      <CopyField label="podman pull (by digest)" value={`podman pull ${image}@${digest}`} />
    </div>
  );
}

export function RepositoryHeader({ name, current }: { name: string; current: 'tags' | 'releases' }) {
  const summary = useAsync(() => api<RepositorySummary>(repositoryPath(name), { scopes: [pullScope(name)] }), [name]);
  return (
    <header class="page-header">
      <p class="breadcrumbs">
        <a href="/ui/">Repositories</a> /
      </p>
      <h1>{name}</h1>
      {summary.data && (
        <p class="muted">
          {summary.data.tagCount} tags · {bytes(summary.data.storedBytes)} stored · last push {age(summary.data.lastPushAt)}
        </p>
      )}
      <ErrorNote error={summary.error} />
      <nav class="tabs" aria-label="Repository">
        <a href={repositoryHref(name)} aria-current={current === 'tags' ? 'page' : undefined}>
          Tags
        </a>
        <a href={repositoryHref(name, 'releases')} aria-current={current === 'releases' ? 'page' : undefined}>
          Releases &amp; deploys
        </a>
      </nav>
    </header>
  );
}

export function RepositoryPage() {
  const { query } = useLocation();
  const name = query.name ?? '';
  const [sort, setSort] = useState<string>('pushed');
  const [filter, setFilter] = useState('');
  const search = useDebounced(filter.trim());
  const pages = useCursorPages(`${name} ${sort} ${search}`);
  const [selected, setSelected] = useState<TagSummary | null>(null);
  const [dialog, confirm] = useConfirm();
  const deletion = useAction();
  const actions = useAsync(() => repositoryActions(name, ['pull', 'delete']), [name, session()?.username]);
  const tags = useAsync(() => {
    const params = new URLSearchParams({ sort, n: String(PAGE_SIZE) });
    if (search) params.set('q', search);
    if (pages.cursor) params.set('last', pages.cursor);
    return api<{ tags: TagSummary[]; total: number; next: string | null }>(repositoryPath(name, `/_tags?${params}`), { scopes: [pullScope(name)] });
  }, [name, sort, search, pages.cursor, session()?.username]);
  const mayDelete = actions.data?.has('delete') ?? false;
  const shown = selected ?? tags.data?.tags[0] ?? null;

  const otherTags = async (tag: TagSummary) => {
    const image = await api<{ tags: string[] }>(repositoryPath(name, `/_images/${tag.digest}`), { scopes: [pullScope(name)] });
    return image.tags.filter((other) => other !== tag.name);
  };

  const deleteTag = (tag: TagSummary) =>
    deletion.run(async () => {
      const others = await otherTags(tag);
      const yes = await confirm({
        title: `Delete tag ${tag.name}?`,
        confirm: 'Delete tag',
        body: (
          <p>
            Only the tag goes. The image {shortDigest(tag.digest)}{' '}
            {others.length ? (
              <>
                stays, still tagged <strong>{others.join(', ')}</strong>.
              </>
            ) : (
              'stays without a tag (garbage collection may then remove it).'
            )}
          </p>
        ),
      });
      if (!yes) return;
      await api(`/v2/${name}/manifests/${encodeURIComponent(tag.name)}`, { method: 'DELETE', scopes: [`repository:${name}:delete`] });
      setSelected(null);
      tags.reload();
      return `Tag ${tag.name} deleted.`;
    });

  const deleteManifest = (tag: TagSummary) =>
    deletion.run(async () => {
      const others = await otherTags(tag);
      const yes = await confirm({
        title: `Delete image ${shortDigest(tag.digest)}?`,
        confirm: 'Delete image and its tags',
        body: (
          <>
            <p>
              The manifest {tag.digest} is removed from {name} with every tag on it: <strong>{[tag.name, ...others].join(', ')}</strong>.
            </p>
            {others.length > 0 && <p>The other tags on this digest ({others.join(', ')}) go too.</p>}
          </>
        ),
      });
      if (!yes) return;
      await api(`/v2/${name}/manifests/${tag.digest}`, { method: 'DELETE', scopes: [`repository:${name}:delete`] });
      setSelected(null);
      tags.reload();
      return `Image ${shortDigest(tag.digest)} and its tags ${[tag.name, ...others].join(', ')} deleted.`;
    });

  return (
    <section>
      <RepositoryHeader name={name} current="tags" />
      <form class="toolbar" onSubmit={(event) => event.preventDefault()}>
        <label>
          <span>Sort</span>
          <select value={sort} onChange={(event) => setSort(event.currentTarget.value)}>
            {SORTS.map(([value, label]) => (
              <option value={value}>{label}</option>
            ))}
          </select>
        </label>
        <label>
          <span>Filter tags</span>
          <input type="search" value={filter} onInput={(event) => setFilter(event.currentTarget.value)} placeholder="1.4" />
        </label>
      </form>
      {dialog}
      <Status action={deletion} />
      <ErrorNote error={tags.error} />
      {tags.loading && !tags.data && <Loading what="tags" />}
      {shown && (
        <details class="panel" open>
          <summary>
            Pull <strong>{shown.name}</strong>
          </summary>
          <PullCommands repository={name} tag={shown.name} digest={shown.digest} />
        </details>
      )}
      {tags.data && (
        <>
          <DataTable label={`Tags of ${name}`} columns={['Tag', 'Digest', 'Platforms', { label: 'Size', number: true }, 'Pushed', 'By', { label: 'Actions', hidden: true }]} class="tags">
            {tags.data.tags.map((tag) => (
              <tr key={tag.name} data-tag={tag.name}>
                <th scope="row">
                  <a href={imageHref(name, tag.name)}>{tag.name}</a>
                </th>
                <td>
                  <a href={imageHref(name, tag.digest)}>
                    <code title={tag.digest}>{shortDigest(tag.digest)}</code>
                  </a>
                </td>
                <td>{tag.platforms.map(platform).join(', ') || '—'}</td>
                <td class="number">{bytes(tag.size)}</td>
                <td>
                  <time dateTime={tag.pushedAt} title={dateTime(tag.pushedAt)}>
                    {age(tag.pushedAt)}
                  </time>
                </td>
                <td>{tag.pusher?.name ?? '—'}</td>
                <td class="row-actions">
                  <button type="button" onClick={() => setSelected(tag)} aria-label={`Pull commands for ${tag.name}`}>
                    Pull
                  </button>
                  {mayDelete && (
                    <>
                      <button type="button" onClick={() => deleteTag(tag)} aria-label={`Delete tag ${tag.name}`}>
                        Delete tag
                      </button>
                      <button type="button" class="danger" onClick={() => deleteManifest(tag)} aria-label={`Delete image of ${tag.name}`}>
                        Delete image
                      </button>
                    </>
                  )}
                </td>
              </tr>
            ))}
          </DataTable>
          {tags.data.tags.length === 0 && <p class="muted">No tags{search ? ` match “${search}”` : ''}.</p>}
          <Pager
            label="Tag"
            page={pages.page}
            hasNext={tags.data.next !== null}
            summary={`${tags.data.total} tags${search ? ' match' : ''}`}
            onPrevious={pages.previous}
            onNext={() => pages.next(tags.data!.next!)}
          />
        </>
      )}
    </section>
  );
}
