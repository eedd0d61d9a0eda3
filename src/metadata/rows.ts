/**
 * The rows both database backends read, as their tables name the columns, and how each
 * becomes the record the ports speak: one mapping whichever database returned the row. Also
 * the SQL both dialects share word for word (queries without parameters).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Grant, RefreshTokenRecord, RobotRecord, Role, UserRecord } from '../auth/accounts.js';
import { REPOSITORY_ACTIONS } from '../auth/scopes.js';
import type { EventType, RegistryEvent } from '../registry/events.js';
import type { Actor, ManifestRecord, RequestContext, UploadRecord } from '../registry/ports.js';

export interface UserRow {
  id: number;
  instance: string;
  name: string;
  role: Role;
  password_hash: string;
  created_at: number;
  updated_at: number;
}

export interface RobotRow {
  id: number;
  instance: string;
  name: string;
  description: string;
  secret_hash: string;
  created_by: string | null;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
}

export interface GrantRow {
  id: number;
  pattern: string;
  actions: string;
}

export interface UploadRow {
  id: string;
  repository: string;
  created_at: number;
  size: number;
  hash_state: string | null;
  driver_state: string | null;
  updated_at: number;
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

export interface ManifestRow {
  digest: string;
  media_type: string;
  size: number;
  content: Buffer;
  subject: string | null;
  artifact_type: string | null;
}

export interface RefreshTokenRow {
  id: string;
  user_id: number | null;
  robot_id: number | null;
  owner_instance: string;
  service: string;
  secret_hash: string;
  created_at: number;
  expires_at: number;
}

/** A domain event about to be recorded in the outbox. */
export interface EventInput {
  type: EventType;
  repository: string;
  tag?: string | null;
  digest?: string | null;
  mediaType?: string | null;
  size?: number | null;
  previousDigest?: string | null;
  actor: Actor;
}

/** The outbox's columns, in the order {@link eventValues} gives their values (created_at last, each backend's clock). */
export const EVENT_COLUMNS =
  'id, type, repository, tag, digest, media_type, size, previous_digest, actor_name, actor_kind, request_id, request_host, request_scheme, request_addr, request_user_agent, request_method, created_at';

/** The values of an outbox row for {@link EVENT_COLUMNS}, all but created_at (a new id each call). */
export function eventValues(event: EventInput): Array<string | number | null> {
  const request = event.actor.request;
  return [
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
    request?.id ?? null,
    request?.host ?? null,
    request?.scheme ?? null,
    request?.addr ?? null,
    request?.userAgent ?? null,
    request?.method ?? null,
  ];
}

export const USER_COLUMNS = 'id, instance, name, role, password_hash, created_at, updated_at';
export const ROBOT_COLUMNS = 'id, instance, name, description, secret_hash, created_by, created_at, expires_at, revoked_at';
export const UPLOAD_COLUMNS = 'id, repository, created_at, size, hash_state, driver_state, updated_at';

export function toUser(row: UserRow | undefined): UserRecord | null {
  if (!row) return null;
  return { id: row.id, instance: row.instance, name: row.name, role: row.role, passwordHash: row.password_hash, createdAt: row.created_at, updatedAt: row.updated_at };
}

export function toRobot(row: RobotRow | undefined): RobotRecord | null {
  if (!row) return null;
  return {
    id: row.id,
    instance: row.instance,
    name: row.name,
    description: row.description,
    secretHash: row.secret_hash,
    createdBy: row.created_by,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
  };
}

export function toGrant(row: GrantRow): Grant {
  const actions = row.actions.split(',');
  return { id: row.id, pattern: row.pattern, actions: REPOSITORY_ACTIONS.filter((action) => actions.includes(action)) };
}

export function toRefreshToken(row: RefreshTokenRow | undefined): RefreshTokenRecord | null {
  if (!row) return null;
  return {
    id: row.id,
    owner: row.user_id !== null ? { kind: 'user', id: row.user_id } : { kind: 'robot', id: row.robot_id! },
    ownerInstance: row.owner_instance,
    service: row.service,
    secretHash: row.secret_hash,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
  };
}

export function toUploadRecord(row: UploadRow): UploadRecord {
  return {
    id: row.id,
    repository: row.repository,
    createdAt: row.created_at,
    size: row.size,
    hashState: row.hash_state,
    driverState: row.driver_state,
    updatedAt: row.updated_at,
  };
}

export function toRegistryEvent(row: EventRow): RegistryEvent {
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

export function toManifestRecord(row: ManifestRow): ManifestRecord {
  return { digest: row.digest, mediaType: row.media_type, size: row.size, content: row.content, subject: row.subject, artifactType: row.artifact_type };
}

/** A random id per account instance, carried by its tokens. */
export function newInstance(): string {
  return randomBytes(16).toString('hex');
}

/** fsck: references of repository manifests that are missing or not linked in the repository. */
export const MANIFEST_PROBLEMS_SQL = `
  SELECT CASE
           WHEN mr.kind = 'manifest' THEN 'manifest-child-missing'
           WHEN b.digest IS NULL OR b.deleting_since IS NOT NULL THEN 'manifest-blob-missing'
           ELSE 'manifest-blob-unlinked' END AS kind,
         r.name AS repository, rm.digest AS manifest, mr.target_digest AS digest
  FROM repository_manifests rm
  JOIN repositories r ON r.id = rm.repository_id
  JOIN manifest_references mr ON mr.manifest_digest = rm.digest
  LEFT JOIN blobs b ON b.digest = mr.target_digest
  WHERE (mr.kind = 'blob' AND NOT EXISTS (
           SELECT 1 FROM repository_blobs l WHERE l.repository_id = rm.repository_id AND l.digest = mr.target_digest))
     OR (mr.kind = 'manifest' AND NOT EXISTS (
           SELECT 1 FROM repository_manifests c WHERE c.repository_id = rm.repository_id AND c.digest = mr.target_digest))
  ORDER BY r.name, rm.digest, mr.target_digest`;

/** fsck: tags pointing at a manifest their repository does not hold. */
export const DANGLING_TAGS_SQL = `
  SELECT r.name AS repository, t.name AS tag, t.digest FROM tags t JOIN repositories r ON r.id = t.repository_id
  WHERE NOT EXISTS (SELECT 1 FROM repository_manifests rm WHERE rm.repository_id = t.repository_id AND rm.digest = t.digest)
  ORDER BY r.name, t.name`;

/** Registry-wide counts both backends report (inventory and usage): the same columns, in either dialect. */
export const REGISTRY_COUNTS_SQL = `
  (SELECT COUNT(*) FROM repositories) AS repositories,
  (SELECT COUNT(*) FROM manifests) AS manifests,
  (SELECT COALESCE(SUM(size), 0) FROM manifests) AS manifest_bytes,
  (SELECT COUNT(*) FROM blobs WHERE deleting_since IS NULL) AS blobs,
  (SELECT COALESCE(SUM(size), 0) FROM blobs WHERE deleting_since IS NULL) AS blob_bytes,
  (SELECT COUNT(*) FROM blobs b WHERE b.deleting_since IS NULL
     AND NOT EXISTS (SELECT 1 FROM manifest_references mr WHERE mr.target_digest = b.digest)) AS unreferenced_blobs,
  (SELECT COALESCE(SUM(size), 0) FROM blobs b WHERE b.deleting_since IS NULL
     AND NOT EXISTS (SELECT 1 FROM manifest_references mr WHERE mr.target_digest = b.digest)) AS unreferenced_bytes`;
