/** Repositories the caller may pull: searchable, paged from the API (never all at once). */
import { useEffect, useState } from 'preact/hooks';
import { api, CATALOG, session } from '../api.js';
import { DataTable, ErrorNote, Loading, Pager, useAsync, useCursorPages } from '../components.js';
import { age, bytes, dateTime } from '../format.js';

export interface RepositorySummary {
  name: string;
  tagCount: number;
  lastPushAt: string | null;
  storedBytes: number;
}

const PAGE_SIZE = 50;

/** The search text once typing pauses, so each keystroke does not ask the server. */
export function useDebounced(value: string, ms = 250): string {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const timer = setTimeout(() => setSettled(value), ms);
    return () => clearTimeout(timer);
  }, [value, ms]);
  return settled;
}

export function repositoryHref(name: string, page = 'repository'): string {
  return `/ui/${page}?${new URLSearchParams(page === 'repository' ? { name } : { repository: name })}`;
}

export function RepositoriesPage() {
  const [search, setSearch] = useState('');
  const query = useDebounced(search.trim());
  const pages = useCursorPages(query);
  const list = useAsync(() => {
    const params = new URLSearchParams({ n: String(PAGE_SIZE) });
    if (query) params.set('q', query);
    if (pages.cursor) params.set('last', pages.cursor);
    return api<{ repositories: RepositorySummary[]; next: string | null }>(`/api/v1/repositories?${params}`, { scopes: [CATALOG] });
  }, [query, pages.cursor, session()?.username]);

  return (
    <section>
      <h1>Repositories</h1>
      {!session() && (
        <p class="muted">
          Showing public repositories. <a href="/ui/sign-in">Sign in</a> to see the ones your account may pull.
        </p>
      )}
      <form role="search" class="toolbar" onSubmit={(event) => event.preventDefault()}>
        <label>
          <span>Search repositories</span>
          <input type="search" value={search} onInput={(event) => setSearch(event.currentTarget.value)} placeholder="team/app" />
        </label>
      </form>
      <ErrorNote error={list.error} />
      {list.loading && !list.data && <Loading what="repositories" />}
      {list.data && (
        <>
          <DataTable label="Repositories" columns={['Repository', { label: 'Tags', number: true }, 'Last push', { label: 'Stored', number: true }]}>
            {list.data.repositories.map((repository) => (
              <tr key={repository.name}>
                <th scope="row">
                  <a href={repositoryHref(repository.name)}>{repository.name}</a>
                </th>
                <td class="number">{repository.tagCount}</td>
                <td>
                  <time dateTime={repository.lastPushAt ?? undefined} title={dateTime(repository.lastPushAt)}>
                    {age(repository.lastPushAt)}
                  </time>
                </td>
                <td class="number">{bytes(repository.storedBytes)}</td>
              </tr>
            ))}
          </DataTable>
          {list.data.repositories.length === 0 && <p class="muted">{query ? `No repository matches “${query}”.` : 'No repositories yet.'}</p>}
          <Pager label="Repository" page={pages.page} hasNext={list.data.next !== null} onPrevious={pages.previous} onNext={() => pages.next(list.data!.next!)} />
        </>
      )}
    </section>
  );
}
