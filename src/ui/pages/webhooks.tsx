/**
 * Webhooks (admins): subscriptions (create, edit, pause and resume, ping, delete), a
 * subscription's delivery log with every attempt, its error and the deploy results agents
 * reported, redelivery of one delivery and of every failed one.
 */
import { useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { ADMIN, api } from '../api.js';
import { CopyField, DataTable, ErrorNote, Loading, Status, useAction, useAsync, useConfirm } from '../components.js';
import { age, dateTime } from '../format.js';
import { deploySummary, type DeployReport } from './releases.js';

interface Subscription {
  id: string;
  url: string;
  events: string[];
  repositories: string[];
  tags: string[];
  format: string;
  active: boolean;
  /** Where the registry tells pausing (events queued) from disabling (events dropped); `active` alone otherwise. */
  state?: 'active' | 'paused' | 'disabled';
  source: 'api' | 'config';
}

const stateOf = (subscription: Subscription) => subscription.state ?? (subscription.active ? 'active' : 'paused');

interface Delivery {
  id: number;
  subscriptionId: string;
  eventType: string;
  repository: string | null;
  state: 'pending' | 'delivered' | 'failed';
  attempts: number;
  createdAt: string;
  lastStatus: number | null;
  lastError: string | null;
  payload: { tag?: string | null; digest?: string | null };
  log?: Array<{ attempt: number; at: string; status: number | null; latencyMs: number; error: string | null }>;
  /** Reported by deploy agents (contract 1): present once the registry records deploy results. */
  deploy?: 'running' | 'succeeded' | 'failed' | null;
  deploys?: Array<Omit<DeployReport, 'deliveryId' | 'subscriptionId'> & { output: string | null; startedAt: string }>;
}

const EVENT_TYPES = ['repository.created', 'tag.created', 'tag.updated', 'tag.deleted', 'manifest.deleted', 'manifest.pulled'];
const FORMATS = ['native', 'distribution', 'cloudevents', 'dockerhub'];
const hooks = '/api/v1/webhooks';
const admin = { scopes: [ADMIN] };
const patterns = (text: string) => text.split(/[\s,]+/).filter(Boolean);

function SubscriptionForm({ editing, onSaved, onCancel }: { editing: Subscription | null; onSaved(message: string, secret?: string): void; onCancel(): void }) {
  const save = useAction();
  const submit = (event: Event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget as HTMLFormElement);
    const body: Record<string, unknown> = {
      url: String(form.get('url')),
      events: EVENT_TYPES.filter((type) => form.get(`event-${type}`) === 'on'),
      repositories: patterns(String(form.get('repositories'))),
      tags: patterns(String(form.get('tags'))),
      format: String(form.get('format')),
    };
    const secret = String(form.get('secret') ?? '');
    if (secret) body.secret = secret;
    void save.run(async () => {
      if (editing) {
        await api(`${hooks}/${encodeURIComponent(editing.id)}`, { ...admin, method: 'PATCH', body });
        onSaved(`Subscription ${editing.id} saved.`);
      } else {
        const created = await api<Subscription & { secret: string }>(hooks, { ...admin, method: 'POST', body });
        onSaved(`Subscription ${created.id} created.`, created.secret);
      }
    });
  };
  return (
    <form class="panel stack" onSubmit={submit} aria-label={editing ? `Edit ${editing.id}` : 'New subscription'}>
      <h2>{editing ? `Edit ${editing.id}` : 'New subscription'}</h2>
      <label>
        <span>Receiver URL</span>
        <input name="url" type="url" required defaultValue={editing?.url} placeholder="http://app-host:9400/" />
      </label>
      <label>
        <span>Secret {editing ? '(leave empty to keep)' : '(empty: generated, shown once)'}</span>
        <input name="secret" type="password" minLength={16} autoComplete="new-password" />
      </label>
      <fieldset>
        <legend>Events (none ticked: every change)</legend>
        {EVENT_TYPES.map((type) => (
          <label class="inline">
            <input type="checkbox" name={`event-${type}`} defaultChecked={editing?.events.includes(type)} /> {type}
          </label>
        ))}
      </fieldset>
      <label>
        <span>Repositories (patterns, comma separated; empty: all)</span>
        <input name="repositories" defaultValue={editing?.repositories.join(', ')} placeholder="team/*" />
      </label>
      <label>
        <span>Tags (patterns; empty: all)</span>
        <input name="tags" defaultValue={editing?.tags.join(', ')} placeholder="semver:stable" />
      </label>
      <label>
        <span>Format</span>
        <select name="format" defaultValue={editing?.format ?? 'native'}>
          {FORMATS.map((format) => (
            <option value={format}>{format}</option>
          ))}
        </select>
      </label>
      <div class="actions">
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" class="primary" disabled={save.busy}>
          {editing ? 'Save' : 'Create'}
        </button>
      </div>
      <Status action={save} />
    </form>
  );
}

function DeliveryDetails({ subscription, id, onChanged }: { subscription: string; id: number; onChanged(): void }) {
  const delivery = useAsync(() => api<Delivery>(`${hooks}/${encodeURIComponent(subscription)}/deliveries/${id}`, admin), [subscription, id]);
  const redeliver = useAction();
  const data = delivery.data;
  return (
    <section class="panel" aria-labelledby="delivery-title">
      <h3 id="delivery-title">Delivery {id}</h3>
      <ErrorNote error={delivery.error} />
      {data && (
        <>
          <p>
            {data.eventType} {data.repository ?? ''}
            {data.payload.tag ? `:${data.payload.tag}` : ''} · <span class={`badge state-${data.state}`}>{data.state}</span> after {data.attempts} attempt
            {data.attempts === 1 ? '' : 's'}
          </p>
          {data.deploy !== undefined && (
            <p class="deploy-result">
              Deploy: <span class={`badge state-${data.deploy ?? 'none'}`}>{data.deploy ?? 'no report'}</span>
              {data.deploys && data.deploys.length > 0 && ` · ${deploySummary(data.deploys)}`}
            </p>
          )}
          {data.deploys && data.deploys.length > 0 && (
            <DataTable label="Deploy reports" columns={['Agent', 'Status', 'Attempt', 'Exit', 'Reported', 'Output']}>
              {data.deploys.map((deploy) => (
                <tr>
                  <td>{deploy.agent}</td>
                  <td>{deploy.status}</td>
                  <td>{deploy.attempt}</td>
                  <td>{deploy.exitCode ?? '—'}</td>
                  <td>{age(deploy.reportedAt)}</td>
                  <td>
                    <pre class="output">{deploy.output ?? ''}</pre>
                  </td>
                </tr>
              ))}
            </DataTable>
          )}
          <DataTable label="Attempts" columns={['Attempt', 'At', 'Status', 'Latency', 'Error']}>
            {(data.log ?? []).map((attempt) => (
              <tr>
                <td>{attempt.attempt}</td>
                <td>{dateTime(attempt.at)}</td>
                <td>{attempt.status ?? '—'}</td>
                <td>{attempt.latencyMs} ms</td>
                <td class="error-text">{attempt.error ?? ''}</td>
              </tr>
            ))}
          </DataTable>
          <button
            type="button"
            disabled={redeliver.busy}
            onClick={() =>
              redeliver.run(async () => {
                await api(`${hooks}/${encodeURIComponent(subscription)}/deliveries/${id}/redeliver`, { ...admin, method: 'POST' });
                delivery.reload();
                onChanged();
                return `Delivery ${id} queued again.`;
              })
            }
          >
            Redeliver
          </button>
          <Status action={redeliver} />
        </>
      )}
    </section>
  );
}

function DeliveryLog({ subscription, selected, onSelect }: { subscription: string; selected: number | null; onSelect(id: number): void }) {
  const [state, setState] = useState('');
  const deliveries = useAsync(
    () => api<{ deliveries: Delivery[] }>(`${hooks}/${encodeURIComponent(subscription)}/deliveries?limit=50${state ? `&state=${state}` : ''}`, admin),
    [subscription, state],
  );
  const bulk = useAction();
  const redeliverFailed = () =>
    bulk.run(async () => {
      // Bulk redelivery (issue 16.6): every failed delivery of the subscription is queued again.
      const result = await api<{ redelivered?: number; deliveries?: unknown[] }>(`${hooks}/${encodeURIComponent(subscription)}/deliveries/redeliver`, {
        ...admin,
        method: 'POST',
        body: { state: 'failed' },
      });
      deliveries.reload();
      return `${result?.redelivered ?? result?.deliveries?.length ?? 0} failed deliveries queued again.`;
    });
  return (
    <section aria-labelledby="log-title">
      <h2 id="log-title">Deliveries of {subscription}</h2>
      <div class="toolbar">
        <label>
          <span>State</span>
          <select value={state} onChange={(event) => setState(event.currentTarget.value)}>
            <option value="">all</option>
            <option value="pending">pending</option>
            <option value="delivered">delivered</option>
            <option value="failed">failed</option>
          </select>
        </label>
        <button type="button" onClick={deliveries.reload}>
          Refresh
        </button>
        <button type="button" onClick={redeliverFailed} disabled={bulk.busy}>
          Redeliver all failed
        </button>
      </div>
      <Status action={bulk} />
      <ErrorNote error={deliveries.error} />
      {deliveries.data && (
        <DataTable label="Deliveries" columns={['#', 'Event', 'State', 'Attempts', 'Last status', 'Last error', 'Created']}>
          {deliveries.data.deliveries.map((delivery) => (
            <tr class={delivery.id === selected ? 'selected' : undefined} data-delivery={delivery.id}>
              <td>
                <button type="button" class="link" onClick={() => onSelect(delivery.id)} aria-label={`Delivery ${delivery.id} details`}>
                  {delivery.id}
                </button>
              </td>
              <td>
                {delivery.eventType} {delivery.repository ?? ''}
                {delivery.payload.tag ? `:${delivery.payload.tag}` : ''}
              </td>
              <td>
                <span class={`badge state-${delivery.state}`}>{delivery.state}</span>
              </td>
              <td>{delivery.attempts}</td>
              <td>{delivery.lastStatus ?? '—'}</td>
              <td class="error-text">{delivery.lastError ?? ''}</td>
              <td>{age(delivery.createdAt)}</td>
            </tr>
          ))}
        </DataTable>
      )}
      {deliveries.data?.deliveries.length === 0 && <p class="muted">No deliveries{state ? ` in state ${state}` : ''}.</p>}
      {selected !== null && <DeliveryDetails subscription={subscription} id={selected} onChanged={deliveries.reload} />}
    </section>
  );
}

export function WebhooksPage() {
  const { query, route } = useLocation();
  const subscriptions = useAsync(() => api<{ subscriptions: Subscription[] }>(hooks, admin), []);
  const [form, setForm] = useState<{ editing: Subscription | null } | null>(null);
  const [secret, setSecret] = useState<string | null>(null);
  const action = useAction();
  const [dialog, confirm] = useConfirm();
  const selected = query.subscription ?? null;
  const select = (subscription: string, delivery?: number) =>
    route(`/ui/webhooks?${new URLSearchParams({ subscription, ...(delivery === undefined ? {} : { delivery: String(delivery) }) })}`);

  const change = (subscription: Subscription, body: object, done: string) =>
    action.run(async () => {
      await api(`${hooks}/${encodeURIComponent(subscription.id)}`, { ...admin, method: 'PATCH', body });
      subscriptions.reload();
      return done;
    });

  return (
    <section>
      <h1>Webhooks</h1>
      {dialog}
      <div class="toolbar">
        <button type="button" class="primary" onClick={() => setForm({ editing: null })}>
          New subscription
        </button>
      </div>
      {secret && (
        <div class="note ok" role="status">
          <p>The subscription's secret, shown only now: configure the receiver with it.</p>
          <CopyField label="Webhook secret" value={secret} />
        </div>
      )}
      {form && (
        <SubscriptionForm
          editing={form.editing}
          onCancel={() => setForm(null)}
          onSaved={(_message, created) => {
            setForm(null);
            setSecret(created ?? null);
            subscriptions.reload();
          }}
        />
      )}
      <Status action={action} />
      <ErrorNote error={subscriptions.error} />
      {subscriptions.loading && !subscriptions.data && <Loading what="subscriptions" />}
      {subscriptions.data && (
        <DataTable label="Subscriptions" columns={['Subscription', 'Receiver', 'Filters', 'State', { label: 'Actions', hidden: true }]}>
          {subscriptions.data.subscriptions.map((subscription) => (
            <tr key={subscription.id} data-subscription={subscription.id} class={subscription.id === selected ? 'selected' : undefined}>
              <th scope="row">
                {subscription.id}
                {subscription.source === 'config' && <span class="badge">config</span>}
              </th>
              <td>
                <code class="wrap">{subscription.url}</code> <span class="muted">({subscription.format})</span>
              </td>
              <td>
                {subscription.events.join(', ') || 'every change'} · {subscription.repositories.join(', ') || 'all repositories'}
                {subscription.tags.length > 0 && ` · tags ${subscription.tags.join(', ')}`}
              </td>
              <td>
                <span class={`badge state-${stateOf(subscription)}`}>{stateOf(subscription)}</span>
              </td>
              <td class="row-actions">
                <button type="button" onClick={() => select(subscription.id)} aria-label={`Deliveries of ${subscription.id}`}>
                  Deliveries
                </button>
                <button
                  type="button"
                  onClick={() =>
                    action.run(async () => {
                      const result = await fetchPing(subscription.id);
                      select(subscription.id);
                      return result;
                    })
                  }
                  aria-label={`Ping ${subscription.id}`}
                >
                  Ping
                </button>
                {subscription.source === 'api' && (
                  <>
                    <button
                      type="button"
                      onClick={() => change(subscription, { active: !subscription.active }, subscription.active ? `${subscription.id} paused: events wait until it is resumed.` : `${subscription.id} resumed.`)}
                      aria-label={`${subscription.active ? 'Pause' : 'Resume'} ${subscription.id}`}
                    >
                      {subscription.active ? 'Pause' : 'Resume'}
                    </button>
                    {subscription.state === 'active' && (
                      <button
                        type="button"
                        onClick={() => change(subscription, { state: 'disabled' }, `${subscription.id} disabled: events are dropped until it is resumed.`)}
                        aria-label={`Disable ${subscription.id}`}
                      >
                        Disable
                      </button>
                    )}
                    <button type="button" onClick={() => setForm({ editing: subscription })} aria-label={`Edit ${subscription.id}`}>
                      Edit
                    </button>
                    <button
                      type="button"
                      class="danger"
                      aria-label={`Delete ${subscription.id}`}
                      onClick={() =>
                        action.run(async () => {
                          const yes = await confirm({ title: `Delete ${subscription.id}?`, confirm: 'Delete subscription', body: <p>Its delivery log goes with it.</p> });
                          if (!yes) return;
                          await api(`${hooks}/${encodeURIComponent(subscription.id)}`, { ...admin, method: 'DELETE' });
                          subscriptions.reload();
                          return `${subscription.id} deleted.`;
                        })
                      }
                    >
                      Delete
                    </button>
                  </>
                )}
              </td>
            </tr>
          ))}
        </DataTable>
      )}
      {subscriptions.data?.subscriptions.length === 0 && <p class="muted">No subscriptions yet.</p>}
      {selected && <DeliveryLog subscription={selected} selected={query.delivery ? Number(query.delivery) : null} onSelect={(id) => select(selected, id)} />}
    </section>
  );
}

/** A ping answers 200 or 502 with the attempt either way: both are results to show, not failures of the page. */
async function fetchPing(id: string): Promise<string> {
  try {
    await api(`${hooks}/${encodeURIComponent(id)}/ping`, { ...admin, method: 'POST' });
    return `Ping to ${id} delivered.`;
  } catch (error) {
    if (error instanceof Error && 'status' in error && error.status === 502) return `Ping to ${id} failed: the receiver did not accept it (see the delivery log).`;
    throw error;
  }
}
