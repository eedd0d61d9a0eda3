/**
 * Storage (admins): totals and the usage of each repository (largest first), past garbage
 * collections and the next scheduled one, and a dry run started from here (nothing deleted).
 */
import { useState } from 'preact/hooks';
import { ADMIN, api } from '../api.js';
import { DataTable, ErrorNote, Loading, Pager, Status, useAction, useAsync } from '../components.js';
import { age, bytes, dateTime } from '../format.js';
import { repositoryHref } from './repositories.js';

interface Usage {
  totals: { repositories: number; manifests: number; blobs: number; storedBytes: number; logicalBytes: number; unreferencedBlobs: number; unreferencedBytes: number };
  repositories: Array<{ repository: string; tags: number; manifests: number; blobs: number; logicalBytes: number; uniqueBytes: number }>;
}

interface Section {
  count: number;
  bytes: number;
}

interface GcReport {
  dryRun: boolean;
  bytesReclaimed: number;
  blobsDeleted: Section;
  manifestsRemoved: Section;
  tagsDeleted: Section;
  uploadsPurged: Section;
}

interface GcRun {
  id: number;
  startedAt: number;
  finishedAt: number;
  dryRun: boolean;
  trigger: string;
  report: GcReport;
}

const admin = { scopes: [ADMIN] };
const PAGE = 50;

function ReportSummary({ report }: { report: GcReport }) {
  return (
    <>
      {bytes(report.bytesReclaimed)} {report.dryRun ? 'would be reclaimed' : 'reclaimed'} · {report.blobsDeleted.count} blobs · {report.manifestsRemoved.count} manifests ·{' '}
      {report.tagsDeleted.count} tags · {report.uploadsPurged.count} uploads
    </>
  );
}

function Collections() {
  const runs = useAsync(() => api<{ runs: GcRun[]; schedule?: { intervalSeconds: number; nextRunAt: string | null } }>('/api/v1/gc?limit=20&dryRuns=true', admin), []);
  const dryRun = useAction();
  const [report, setReport] = useState<GcReport | null>(null);
  const schedule = runs.data?.schedule;
  return (
    <section aria-labelledby="gc-title">
      <h2 id="gc-title">Garbage collection</h2>
      {schedule && (
        <p>
          {schedule.intervalSeconds > 0 ? (
            <>
              Scheduled every {Math.round(schedule.intervalSeconds / 3600)} h; next run{' '}
              <time dateTime={schedule.nextRunAt ?? undefined} title={dateTime(schedule.nextRunAt)}>
                {schedule.nextRunAt ? age(schedule.nextRunAt) : 'when the running one ends'}
              </time>
              .
            </>
          ) : (
            'No schedule (lifecycle.gc.intervalSeconds is 0).'
          )}
        </p>
      )}
      <button
        type="button"
        disabled={dryRun.busy}
        onClick={() =>
          dryRun.run(async () => {
            setReport(await api<GcReport>('/api/v1/gc', { ...admin, method: 'POST', body: { dryRun: true } }));
            runs.reload();
            return 'Dry run finished: nothing was deleted.';
          })
        }
      >
        {dryRun.busy ? 'Running…' : 'Start a dry run'}
      </button>
      <Status action={dryRun} />
      {report && (
        <p class="note" role="status">
          Dry run: <ReportSummary report={report} />
        </p>
      )}
      <ErrorNote error={runs.error} />
      {runs.data && (
        <DataTable label="Recent collections" columns={['Started', 'Trigger', 'Kind', 'Result', { label: 'Took', number: true }]}>
          {runs.data.runs.map((run) => (
            <tr>
              <td title={dateTime(run.startedAt)}>{age(run.startedAt)}</td>
              <td>{run.trigger}</td>
              <td>{run.dryRun ? 'dry run' : 'collection'}</td>
              <td>
                <ReportSummary report={run.report} />
              </td>
              <td class="number">{run.finishedAt - run.startedAt} ms</td>
            </tr>
          ))}
        </DataTable>
      )}
      {runs.data?.runs.length === 0 && <p class="muted">No collection has run yet.</p>}
    </section>
  );
}

function RepositoryUsage({ usage }: { usage: Usage }) {
  const [page, setPage] = useState(0);
  const sorted = [...usage.repositories].sort((a, b) => b.logicalBytes - a.logicalBytes);
  const shown = sorted.slice(page * PAGE, (page + 1) * PAGE);
  return (
    <section aria-labelledby="usage-title">
      <h2 id="usage-title">Usage per repository</h2>
      <DataTable label="Usage per repository" columns={['Repository', { label: 'Tags', number: true }, { label: 'Manifests', number: true }, { label: 'Stored', number: true }, { label: 'Only here', number: true }]}>
        {shown.map((repository) => (
          <tr>
            <th scope="row">
              <a href={repositoryHref(repository.repository)}>{repository.repository}</a>
            </th>
            <td class="number">{repository.tags}</td>
            <td class="number">{repository.manifests}</td>
            <td class="number">{bytes(repository.logicalBytes)}</td>
            <td class="number">{bytes(repository.uniqueBytes)}</td>
          </tr>
        ))}
      </DataTable>
      <Pager label="Usage" page={page} hasNext={(page + 1) * PAGE < sorted.length} onPrevious={() => setPage(page - 1)} onNext={() => setPage(page + 1)} summary={`${sorted.length} repositories`} />
    </section>
  );
}

export function StoragePage() {
  const usage = useAsync(() => api<Usage>('/api/v1/usage', admin), []);
  const totals = usage.data?.totals;
  return (
    <section>
      <h1>Storage</h1>
      <ErrorNote error={usage.error} />
      {usage.loading && !usage.data && <Loading what="usage" />}
      {totals && (
        <dl class="facts totals">
          <dt>Stored</dt>
          <dd>{bytes(totals.storedBytes)} (each blob once)</dd>
          <dt>Without sharing</dt>
          <dd>{bytes(totals.logicalBytes)}</dd>
          <dt>Repositories</dt>
          <dd>{totals.repositories}</dd>
          <dt>Manifests · blobs</dt>
          <dd>
            {totals.manifests} · {totals.blobs}
          </dd>
          <dt>Unreferenced</dt>
          <dd>
            {totals.unreferencedBlobs} blobs, {bytes(totals.unreferencedBytes)}
          </dd>
        </dl>
      )}
      <Collections />
      {usage.data && <RepositoryUsage usage={usage.data} />}
    </section>
  );
}
