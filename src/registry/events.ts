/**
 * The domain events the registry records, in the metadata store's outbox, in the same
 * transaction as the change they report. Webhooks read them from there; the domain itself
 * never knows who listens.
 */
import type { RequestContext } from './ports.js';

export const EVENT_TYPES = [
  'repository.created',
  'tag.created',
  'tag.updated',
  'tag.deleted',
  'manifest.deleted',
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

export interface RegistryEvent {
  /** Stable id, the same on every delivery attempt. */
  id: string;
  /** Position in the outbox; strictly increasing. */
  seq: number;
  type: EventType;
  repository: string;
  tag: string | null;
  digest: string | null;
  mediaType: string | null;
  size: number | null;
  /** For `tag.updated`: the digest the tag pointed at before. */
  previousDigest: string | null;
  actor: { name: string; kind: string };
  /** The request that made the change; null for the registry's own changes (retention, GC). */
  request: RequestContext | null;
  /** Milliseconds since the epoch. */
  createdAt: number;
}
