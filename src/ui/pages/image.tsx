/**
 * One image: an index's platforms; an image's layers and config (created, entrypoint, cmd,
 * env, ports, labels, user, working dir, HEALTHCHECK, history); referrers (signatures, SBOMs,
 * attestations) with their artifact types; the raw manifest, prettified.
 */
import { useLocation } from 'preact-iso';
import { api, pullScope, repositoryPath } from '../api.js';
import { DataTable, ErrorNote, Loading, useAsync } from '../components.js';
// Types only (erased from the bundle): the API's answer is the server's own ImageDetails.
import type { DescriptorView as Descriptor, ImageConfigView, ImageDetails } from '../../registry/image-details.js';
import { bytes, dateTime, duration, platform, shortDigest } from '../format.js';
import { repositoryHref } from './repositories.js';
import { imageHref, PullCommands } from './repository.js';

type ImageConfig = ImageConfigView;

const command = (value: string[] | null) => (value ? JSON.stringify(value) : '—');

function pretty(raw: string): string {
  try {
    return JSON.stringify(JSON.parse(raw), null, 2);
  } catch {
    return raw;
  }
}

function Healthcheck({ check }: { check: ImageConfig['healthcheck'] }) {
  if (!check) return <p class="muted">No HEALTHCHECK in this image.</p>;
  const [kind, ...rest] = check.test;
  return (
    <dl class="facts" aria-label="Healthcheck">
      <dt>Test</dt>
      <dd>
        <code>{kind === 'CMD-SHELL' ? rest.join(' ') : kind === 'NONE' ? 'NONE (disabled)' : JSON.stringify(rest)}</code> <span class="muted">({kind})</span>
      </dd>
      <dt>Interval</dt>
      <dd>{duration(check.intervalSeconds)}</dd>
      <dt>Timeout</dt>
      <dd>{duration(check.timeoutSeconds)}</dd>
      <dt>Start period</dt>
      <dd>{duration(check.startPeriodSeconds)}</dd>
      <dt>Retries</dt>
      <dd>{check.retries ?? 'default'}</dd>
    </dl>
  );
}

function ConfigSection({ config }: { config: ImageConfig }) {
  return (
    <>
      <section aria-labelledby="config-title">
        <h2 id="config-title">Config</h2>
        <dl class="facts">
          <dt>Created</dt>
          <dd>{dateTime(config.created)}</dd>
          <dt>Platform</dt>
          <dd>{platform(config.platform)}</dd>
          <dt>Entrypoint</dt>
          <dd>
            <code>{command(config.entrypoint)}</code>
          </dd>
          <dt>Cmd</dt>
          <dd>
            <code>{command(config.cmd)}</code>
          </dd>
          <dt>User</dt>
          <dd>{config.user ?? '— (root)'}</dd>
          <dt>Working dir</dt>
          <dd>{config.workingDir ?? '—'}</dd>
          <dt>Exposed ports</dt>
          <dd>{config.exposedPorts.join(', ') || '—'}</dd>
          <dt>Volumes</dt>
          <dd>{config.volumes.join(', ') || '—'}</dd>
          {config.stopSignal && (
            <>
              <dt>Stop signal</dt>
              <dd>{config.stopSignal}</dd>
            </>
          )}
        </dl>
      </section>
      <section aria-labelledby="healthcheck-title">
        <h2 id="healthcheck-title">Healthcheck</h2>
        <Healthcheck check={config.healthcheck} />
      </section>
      <section aria-labelledby="env-title">
        <h2 id="env-title">Environment</h2>
        {config.env.length ? (
          <ul class="plain">
            {config.env.map((entry) => (
              <li>
                <code>{entry}</code>
              </li>
            ))}
          </ul>
        ) : (
          <p class="muted">None.</p>
        )}
      </section>
      <section aria-labelledby="labels-title">
        <h2 id="labels-title">Labels</h2>
        {Object.keys(config.labels).length ? (
          <dl class="facts">
            {Object.entries(config.labels).map(([key, value]) => (
              <>
                <dt>
                  <code>{key}</code>
                </dt>
                <dd>{value}</dd>
              </>
            ))}
          </dl>
        ) : (
          <p class="muted">None.</p>
        )}
      </section>
      <section aria-labelledby="history-title">
        <h2 id="history-title">History</h2>
        <DataTable label="History" columns={['Created', 'Step']}>
          {config.history.map((step) => (
            <tr class={step.emptyLayer ? 'muted' : undefined}>
              <td>{dateTime(step.created)}</td>
              <td>
                <code class="wrap">{step.createdBy ?? step.comment ?? '—'}</code>
                {step.emptyLayer && <span class="badge">no layer</span>}
              </td>
            </tr>
          ))}
        </DataTable>
      </section>
    </>
  );
}

function DescriptorRows({ repository, entries, link }: { repository: string; entries: Descriptor[]; link: boolean }) {
  return (
    <>
      {entries.map((entry, index) => (
        <tr>
          <td class="number">{index + 1}</td>
          <td>
            {link ? (
              <a href={imageHref(repository, entry.digest)}>
                <code title={entry.digest}>{shortDigest(entry.digest)}</code>
              </a>
            ) : (
              <code title={entry.digest}>{shortDigest(entry.digest)}</code>
            )}
          </td>
          <td>
            <code class="wrap">{entry.artifactType ?? entry.mediaType ?? '—'}</code>
          </td>
          <td class="number">{bytes(entry.size)}</td>
        </tr>
      ))}
    </>
  );
}

export function ImagePage() {
  const { query } = useLocation();
  const repository = query.repository ?? '';
  const reference = query.reference ?? '';
  const image = useAsync(
    () => api<ImageDetails>(repositoryPath(repository, `/_images/${encodeURIComponent(reference)}`), { scopes: [pullScope(repository)] }),
    [repository, reference],
  );
  const data = image.data;
  return (
    <section>
      <p class="breadcrumbs">
        <a href="/ui/">Repositories</a> / <a href={repositoryHref(repository)}>{repository}</a> /
      </p>
      <h1>
        {repository}
        {reference.includes(':') ? `@${shortDigest(reference)}` : `:${reference}`}
      </h1>
      <ErrorNote error={image.error} />
      {image.loading && !data && <Loading what="image" />}
      {data && (
        <>
          <dl class="facts">
            <dt>Digest</dt>
            <dd>
              <code class="wrap">{data.digest}</code>
            </dd>
            <dt>Kind</dt>
            <dd>{data.kind === 'index' ? 'Multi-platform index' : data.kind === 'image' ? 'Image' : `Artifact (${data.artifactType ?? 'no artifact type'})`}</dd>
            <dt>Media type</dt>
            <dd>
              <code class="wrap">{data.mediaType}</code>
            </dd>
            <dt>Size</dt>
            <dd>
              {bytes(data.totalSize)} to pull <span class="muted">(manifest {bytes(data.size)})</span>
            </dd>
            <dt>Tags</dt>
            <dd>{data.tags.length ? data.tags.map((tag) => <a href={imageHref(repository, tag)} class="chip">{tag}</a>) : 'untagged'}</dd>
            {data.subject && (
              <>
                <dt>Subject</dt>
                <dd>
                  <a href={imageHref(repository, data.subject)}>
                    <code>{shortDigest(data.subject)}</code>
                  </a>
                </dd>
              </>
            )}
          </dl>
          <details class="panel">
            <summary>Pull commands</summary>
            <PullCommands repository={repository} tag={reference.includes(':') ? undefined : reference} digest={data.digest} />
          </details>
          {data.kind === 'index' && (
            <section aria-labelledby="platforms-title">
              <h2 id="platforms-title">Platforms</h2>
              <DataTable label="Platforms" columns={['Platform', 'Manifest', { label: 'Size', number: true }]}>
                {data.manifests.map((entry) => (
                  <tr>
                    <td>{platform(entry.platform)}</td>
                    <td>
                      <a href={imageHref(repository, entry.digest)}>
                        <code title={entry.digest}>{shortDigest(entry.digest)}</code>
                      </a>
                    </td>
                    <td class="number">{bytes(entry.size)}</td>
                  </tr>
                ))}
              </DataTable>
            </section>
          )}
          {data.layers.length > 0 && (
            <section aria-labelledby="layers-title">
              <h2 id="layers-title">Layers</h2>
              <DataTable label="Layers" columns={[{ label: '#', number: true }, 'Digest', 'Media type', { label: 'Size (compressed)', number: true }]}>
                <DescriptorRows repository={repository} entries={data.layers} link={false} />
              </DataTable>
            </section>
          )}
          {data.config?.image && <ConfigSection config={data.config.image} />}
          <section aria-labelledby="referrers-title">
            <h2 id="referrers-title">Referrers</h2>
            {data.referrers.length ? (
              <DataTable label="Referrers" columns={[{ label: '#', number: true }, 'Digest', 'Artifact type', { label: 'Size', number: true }]}>
                <DescriptorRows repository={repository} entries={data.referrers} link />
              </DataTable>
            ) : (
              <p class="muted">No signatures, SBOMs or attestations refer to this manifest.</p>
            )}
          </section>
          <section aria-labelledby="raw-title">
            <h2 id="raw-title">Manifest</h2>
            <pre class="raw" tabIndex={0} aria-label="Raw manifest">
              {pretty(data.raw)}
            </pre>
          </section>
        </>
      )}
    </section>
  );
}
