/**
 * Change notices between replicas, over one listening connection per process:
 * - outbox writes send NOTIFY on `outbox` (in their transaction, so delivered when it commits,
 *   never before), and the dispatchers of other replicas fan the change out at once instead of
 *   at their next poll;
 * - triggers (migration `read-cache-notices`) send NOTIFY on `accounts` and `blobLinks` when the
 *   rows behind a cached read change, whoever changed them (any replica, the CLI, an operator's
 *   SQL), and each replica's read caches (read-cache.ts) forget what they hold.
 * A notice lost while the connection is down must not be trusted away: the outbox poll stays
 * the fallback, every listener is called again on reconnect, and `listening` tells the caches
 * to read through the database until then.
 */
import pg from 'pg';
import type { PostgresSettings } from '../../config/metadata.js';
import { connectionString } from './pool.js';

export const CHANNELS = {
  outbox: 'registry_outbox',
  accounts: 'registry_accounts',
  blobLinks: 'registry_blob_links',
} as const;
export type Channel = keyof typeof CHANNELS;

const MAX_RECONNECT_DELAY_MS = 30_000;

export interface ChangeFeed {
  /**
   * Calls `listener` after every committed change on `channel`, on any replica (this one
   * included), and after every (re)connection, for whatever committed while nothing listened.
   */
  onChange(channel: Channel, listener: () => void): void;
  /** True while notices arrive; false before the first connection and while reconnecting. */
  readonly listening: boolean;
  close(): Promise<void>;
}

export function listenForChanges(settings: PostgresSettings): ChangeFeed {
  const listeners = new Map<string, Array<() => void>>(Object.values(CHANNELS).map((name) => [name, []]));
  const callAll = () => {
    for (const list of listeners.values()) for (const listener of list) listener();
  };
  let client: pg.Client | undefined;
  let closed = false;
  let delay = 500;
  let timer: NodeJS.Timeout | undefined;

  const connect = async () => {
    if (closed) return;
    const next = new pg.Client({ connectionString: connectionString(settings.url), application_name: 'harbormaster-registry-listen' });
    next.on('notification', (notice) => {
      for (const listener of listeners.get(notice.channel) ?? []) listener();
    });
    next.on('error', () => reconnect(next));
    next.on('end', () => reconnect(next));
    try {
      await next.connect();
      await next.query(Object.values(CHANNELS).map((name) => `LISTEN ${name};`).join(' '));
      if (closed) return void (await next.end().catch(() => undefined));
      client = next;
      delay = 500;
      callAll();
    } catch {
      reconnect(next);
    }
  };
  const reconnect = (failed: pg.Client) => {
    if (closed || (client !== undefined && client !== failed)) return;
    client = undefined;
    failed.end().catch(() => undefined);
    if (timer) return;
    timer = setTimeout(() => {
      timer = undefined;
      void connect();
    }, delay);
    timer.unref();
    delay = Math.min(delay * 2, MAX_RECONNECT_DELAY_MS);
  };
  void connect();

  return {
    onChange: (channel, listener) => void listeners.get(CHANNELS[channel])!.push(listener),
    get listening() {
      return client !== undefined;
    },
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      const last = client;
      client = undefined;
      await last?.end().catch(() => undefined);
    },
  };
}
