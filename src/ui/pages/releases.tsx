/**
 * Releases and deploys of a repository: the timeline of tag events (pushed, moved, deleted, by
 * whom) from GET /api/v1/events, each with the deploy results the agents reported and, for
 * admins, the webhook deliveries it caused, with a redeliver button.
 */
import { useLocation } from 'preact-iso';
import { ADMIN, api, authMode, isAdmin, pullScope, session } from '../api.js';
import { ErrorNote, Loading, Pager, Status, useAction, useAsync, useCursorPages } from '../components.js';
import { age, dateTime, shortDigest } from '../format.js';
import { RepositoryHeader, imageHref } from './repository.js';

export interface DeployReport {
  deliveryId: number;
  subscriptionId: string;
  agent: string;
  status: 'running' | 'succeeded' | 'failed';
  attempt: number;
  exitCode: number | null;
  durationMs: number | null;
  finishedAt: string | null;
  reportedAt: string;
}

interface EventDelivery {
  id: number;
  subscriptionId: string;
  state: string;
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
}

interface TimelineEvent {
  seq: number;
  id: string;
  type: string;
  repository: string;
  tag: string | null;
  digest: string | null;
  previousDigest: string | null;
  actor: { name: string; kind: string };
  createdAt: string;
  deploys: DeployReport[];
  deliveries?: EventDelivery[];
}

/** "reached 3 hosts, failed on host-4 (exit 3), running on host-5". */
export function deploySummary(deploys: Array<Pick<DeployReport, 'agent' | 'status' | 'exitCode'>>): string {
  if (deploys.length === 0) return 'no deploy reported';
  const succeeded = deploys.filter((deploy) => deploy.status === 'succeeded');
  const failed = deploys.filter((deploy) => deploy.status === 'failed');
  const running = deploys.filter((deploy) => deploy.status === 'running');
  const parts: string[] = [];
  if (succeeded.length) parts.push(`reached ${succeeded.length} ${succeeded.length === 1 ? 'host' : 'hosts'}`);
  if (failed.length) parts.push(`failed on ${failed.map((deploy) => `${deploy.agent}${deploy.exitCode === null ? '' : ` (exit ${deploy.exitCode})`}`).join(', ')}`);
  if (running.length) parts.push(`running on ${running.map((deploy) => deploy.agent).join(', ')}`);
  return parts.join(', ');
}

function headline(event: TimelineEvent): string {
  switch (event.type) {
    case 'tag.created':
      return `${event.tag} pushed`;
    case 'tag.updated':
      return `${event.tag} moved from ${shortDigest(event.previousDigest)} to ${shortDigest(event.digest)}`;
    case 'tag.deleted':
      return `${event.tag} deleted`;
    case 'manifest.deleted':
      return `image ${shortDigest(event.digest)} deleted`;
    case 'repository.created':
      return 'repository created';
    default:
      return event.type;
  }
}

export function webhookDeliveryHref(subscription: string, delivery: number): string {
  return `/ui/webhooks?${new URLSearchParams({ subscription, delivery: String(delivery) })}`;
}

function Deliveries({ deliveries, onRedelivered }: { deliveries: EventDelivery[]; onRedelivered(): void }) {
  const redelivery = useAction();
  if (deliveries.length === 0) return <p class="muted">No webhook delivery.</p>;
  return (
    <>
      <ul class="plain deliveries">
        {deliveries.map((delivery) => (
          <li>
            <a href={webhookDeliveryHref(delivery.subscriptionId, delivery.id)}>
              delivery {delivery.id} to {delivery.subscriptionId}
            </a>{' '}
            <span class={`badge state-${delivery.state}`}>{delivery.state}</span> {delivery.attempts} attempt{delivery.attempts === 1 ? '' : 's'}
            {delivery.lastStatus !== null && ` · HTTP ${delivery.lastStatus}`}
            {delivery.lastError && <span class="error-text"> · {delivery.lastError}</span>}{' '}
            <button
              type="button"
              disabled={redelivery.busy}
              onClick={() =>
                redelivery.run(async () => {
                  await api(`/api/v1/webhooks/${encodeURIComponent(delivery.subscriptionId)}/deliveries/${delivery.id}/redeliver`, { method: 'POST', scopes: [ADMIN] });
                  onRedelivered();
                  return `Delivery ${delivery.id} queued again.`;
                })
              }
            >
              Redeliver
            </button>
          </li>
        ))}
      </ul>
      <Status action={redelivery} />
    </>
  );
}

export function ReleasesPage() {
  const { query } = useLocation();
  const name = query.repository ?? '';
  const pages = useCursorPages(name);
  const timeline = useAsync(async () => {
    const params = new URLSearchParams({ repository: name, limit: '50' });
    if (pages.cursor) params.set('before', pages.cursor);
    // Admins also see the deliveries each event caused: their token carries registry:admin:* too.
    const admin = isAdmin(await authMode());
    const page = await api<{ events: TimelineEvent[]; next: number | null }>(`/api/v1/events?${params}`, { scopes: admin ? [pullScope(name), ADMIN] : [pullScope(name)] });
    return { ...page, admin };
  }, [name, pages.cursor, session()?.username]);
  const admin = timeline.data?.admin ?? false;

  return (
    <section>
      <RepositoryHeader name={name} current="releases" />
      <ErrorNote error={timeline.error} />
      {timeline.loading && !timeline.data && <Loading what="the timeline" />}
      {timeline.data && (
        <>
          <ol class="timeline">
            {timeline.data.events.map((event) => (
              <li key={event.seq} class={`event ${event.type.replace('.', '-')}`}>
                <p class="event-title">
                  <strong>{event.tag && event.type !== 'tag.deleted' ? <a href={imageHref(name, event.digest ?? event.tag)}>{headline(event)}</a> : headline(event)}</strong>
                  <span class="muted">
                    {' '}
                    by {event.actor.name} ·{' '}
                    <time dateTime={event.createdAt} title={dateTime(event.createdAt)}>
                      {age(event.createdAt)}
                    </time>
                  </span>
                </p>
                {event.type !== 'repository.created' && event.type !== 'tag.deleted' && (
                  <p class={`deploy-summary ${event.deploys.some((deploy) => deploy.status === 'failed') ? 'error-text' : ''}`}>
                    {deploySummary(event.deploys)}
                    {event.deploys.length > 0 && ` · ${age(event.deploys.map((deploy) => deploy.reportedAt).sort().at(-1))}`}
                  </p>
                )}
                {event.deploys.length > 0 && (
                  <ul class="plain deploys">
                    {event.deploys.map((deploy) => (
                      <li>
                        <span class={`badge state-${deploy.status}`}>{deploy.status}</span> {deploy.agent} · attempt {deploy.attempt}
                        {deploy.exitCode !== null && ` · exit ${deploy.exitCode}`}
                        {deploy.durationMs !== null && ` · ${(deploy.durationMs / 1000).toFixed(1)} s`}
                        {admin && (
                          <>
                            {' · '}
                            <a href={webhookDeliveryHref(deploy.subscriptionId, deploy.deliveryId)}>delivery {deploy.deliveryId}</a>
                          </>
                        )}
                      </li>
                    ))}
                  </ul>
                )}
                {event.deliveries && <Deliveries deliveries={event.deliveries} onRedelivered={timeline.reload} />}
              </li>
            ))}
          </ol>
          {timeline.data.events.length === 0 && <p class="muted">No events recorded for {name}.</p>}
          <Pager label="Timeline" page={pages.page} hasNext={timeline.data.next !== null} onPrevious={pages.previous} onNext={() => pages.next(String(timeline.data!.next))} />
        </>
      )}
    </section>
  );
}
