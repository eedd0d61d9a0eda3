/**
 * Wake-ups between replicas: a transaction that writes outbox events also sends NOTIFY on
 * OUTBOX_CHANNEL (delivered when it commits, never before), and each replica LISTENs on one
 * connection of its own, so the dispatchers of other replicas fan the change out at once
 * instead of at their next poll. The poll stays the fallback: a notification lost while the
 * listening connection reconnects delays delivery by one poll interval, never loses it.
 */
import pg from 'pg';
import type { PostgresSettings } from '../../config/metadata.js';
import { connectionString } from './pool.js';

export const OUTBOX_CHANNEL = 'registry_outbox';

const MAX_RECONNECT_DELAY_MS = 30_000;

export interface ChangeListener {
  /** Calls `listener` after every committed outbox write, on any replica (this one included). */
  onChange(listener: () => void): void;
  close(): Promise<void>;
}

export function listenForChanges(settings: PostgresSettings): ChangeListener {
  const listeners: Array<() => void> = [];
  let client: pg.Client | undefined;
  let closed = false;
  let delay = 500;
  let timer: NodeJS.Timeout | undefined;

  const connect = async () => {
    if (closed) return;
    const next = new pg.Client({ connectionString: connectionString(settings.url), application_name: 'harbormaster-registry-listen' });
    next.on('notification', () => {
      for (const listener of listeners) listener();
    });
    next.on('error', () => reconnect(next));
    next.on('end', () => reconnect(next));
    try {
      await next.connect();
      await next.query(`LISTEN ${OUTBOX_CHANNEL}`);
      if (closed) return void (await next.end().catch(() => undefined));
      client = next;
      delay = 500;
      // Whatever committed while no connection listened: one wake-up covers it.
      for (const listener of listeners) listener();
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
    onChange: (listener) => void listeners.push(listener),
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      await client?.end().catch(() => undefined);
    },
  };
}
