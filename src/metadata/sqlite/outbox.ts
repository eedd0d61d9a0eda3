/**
 * The `events` outbox on SQLite: one writer shared by every store that records changes
 * (metadata pushes and deletions, lifecycle retention and GC), so an event row always has
 * the same columns filled the same way, and one reader that turns rows back into events.
 * Callers write inside the transaction of the change the event reports.
 */
import { randomUUID } from 'node:crypto';
import type Database from 'better-sqlite3';
import type { EventType, RegistryEvent } from '../../registry/events.js';
import type { Actor, RequestContext } from '../../registry/ports.js';

export interface OutboxEvent {
  type: EventType;
  repository: string;
  tag?: string | null;
  digest?: string | null;
  mediaType?: string | null;
  size?: number | null;
  previousDigest?: string | null;
  actor: Actor;
}

export interface EventRow {
  seq: number;
  id: string;
  type: EventType;
  repository: string;
  tag: string | null;
  digest: string | null;
  media_type: string | null;
  size: number | null;
  previous_digest: string | null;
  actor_name: string;
  actor_kind: string;
  created_at: number;
  request_id: string | null;
  request_host: string | null;
  request_scheme: string | null;
  request_addr: string | null;
  request_user_agent: string | null;
  request_method: string | null;
}

export interface Outbox {
  /** Appends one event; call it inside the change's transaction. */
  record(event: OutboxEvent, now: number): void;
  /** Events after `afterSeq`, oldest first. */
  read(afterSeq: number, limit: number): RegistryEvent[];
}

export function prepareOutbox(db: Database.Database): Outbox {
  const insert = db.prepare(
    `INSERT INTO events (id, type, repository, tag, digest, media_type, size, previous_digest, actor_name, actor_kind, created_at,
       request_id, request_host, request_scheme, request_addr, request_user_agent, request_method)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const read = db.prepare('SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?');
  return {
    record(event, now) {
      const request = event.actor.request;
      insert.run(
        randomUUID(),
        event.type,
        event.repository,
        event.tag ?? null,
        event.digest ?? null,
        event.mediaType ?? null,
        event.size ?? null,
        event.previousDigest ?? null,
        event.actor.name,
        event.actor.kind,
        now,
        request?.id ?? null,
        request?.host ?? null,
        request?.scheme ?? null,
        request?.addr ?? null,
        request?.userAgent ?? null,
        request?.method ?? null,
      );
    },
    read: (afterSeq, limit) => (read.all(afterSeq, limit) as EventRow[]).map(eventFromRow),
  };
}

export function eventFromRow(row: EventRow): RegistryEvent {
  return {
    id: row.id,
    seq: row.seq,
    type: row.type,
    repository: row.repository,
    tag: row.tag,
    digest: row.digest,
    mediaType: row.media_type,
    size: row.size,
    previousDigest: row.previous_digest,
    actor: { name: row.actor_name, kind: row.actor_kind },
    request: requestFromRow(row),
    createdAt: row.created_at,
  };
}

function requestFromRow(row: EventRow): RequestContext | null {
  if (row.request_id === null) return null;
  return {
    id: row.request_id,
    host: row.request_host,
    scheme: row.request_scheme === 'https' ? 'https' : 'http',
    addr: row.request_addr,
    userAgent: row.request_user_agent,
    method: row.request_method ?? '',
  };
}
