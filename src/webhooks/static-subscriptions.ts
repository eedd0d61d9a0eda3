/**
 * Subscriptions declared in the config file (`webhooks.subscriptions`): at every start they are
 * made to exist as declared (created, updated when changed, deleted when no longer declared),
 * and stay read-only through the API. An id already taken by an API-created one is an error.
 */
import fs from 'node:fs';
import type { StaticSubscriptionConfig } from './config.js';
import type { SubscriptionPatch, WebhookStore } from './store.js';
import type { Subscription } from './types.js';

type DeclaredFields = Required<SubscriptionPatch>;

export async function syncStaticSubscriptions(
  store: WebhookStore,
  declared: readonly StaticSubscriptionConfig[],
  now: number,
  check: (fields: DeclaredFields) => void,
): Promise<void> {
  const existing = new Map((await store.listSubscriptions()).map((s) => [s.id, s]));
  for (const entry of declared) {
    const fields: DeclaredFields = {
      url: entry.url,
      secret: entry.secret ?? readSecretFile(entry.secretFile!, entry.id),
      events: entry.events,
      repositories: entry.repositories,
      tags: entry.tags,
      headers: entry.headers,
      format: entry.format,
      state: entry.state ?? (entry.active ? 'active' : 'paused'),
    };
    try {
      check(fields);
    } catch (error) {
      throw new Error(`webhooks.subscriptions ${entry.id}: ${(error as Error).message}`);
    }
    const current = existing.get(entry.id);
    if (!current) {
      await store.createSubscription({ ...fields, id: entry.id, source: 'config' }, now);
    } else if (current.source !== 'config') {
      throw new Error(`webhooks.subscriptions ${entry.id}: the id is taken by a subscription created through the API`);
    } else if (!sameFields(current, fields)) {
      await store.updateSubscription(entry.id, fields, now);
    }
  }
  const declaredIds = new Set(declared.map((entry) => entry.id));
  for (const subscription of existing.values()) {
    if (subscription.source === 'config' && !declaredIds.has(subscription.id)) await store.deleteSubscription(subscription.id);
  }
}

function readSecretFile(file: string, id: string): string {
  try {
    return fs.readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (error) {
    throw new Error(`webhooks.subscriptions ${id}: cannot read secretFile: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

function sameFields(current: Subscription, fields: DeclaredFields): boolean {
  return (
    current.url === fields.url &&
    current.secret === fields.secret &&
    current.format === fields.format &&
    current.state === fields.state &&
    JSON.stringify(current.events) === JSON.stringify(fields.events) &&
    JSON.stringify(current.repositories) === JSON.stringify(fields.repositories) &&
    JSON.stringify(current.tags) === JSON.stringify(fields.tags) &&
    JSON.stringify(current.headers) === JSON.stringify(fields.headers)
  );
}
